/*
 * Differential fuzzing of qkv_attention: a bounded descriptor decoded from
 * the input (shapes, strides with padding and both layouts, mask kinds with
 * broadcast strides, window, soft-cap, ALiBi, sinks, GQA, lse, Q, K and V
 * stored as f32, f16 or bf16, a qkv_pool of 1-3 threads) run on every
 * supported ISA against the scalar ISA, the scalar ISA against the double
 * oracle, and, with a hook, the same ISA on two thread counts bit for bit.
 * (fuzz_batch.c fuzzes paged K/V, ragged batches and the block types.)
 */
#include "fuzz_common.h"
#include "../oracle.h"

/* Pools live for the whole run: creating threads per input would cost more
   than the attention itself. pools[t] has t threads (t = 1..3). */
static qkv_pool *pools[4];

static qkv_pool *pool_of(unsigned threads)
{
    if (!pools[threads])
        FUZZ_REQUIRE(qkv_pool_create(threads, &pools[threads]) == QKV_OK, "pool create");
    return pools[threads];
}

typedef struct layout {
    size_t bs, hs, rs;
} layout;

/* Strides for [n0][heads][rows][len] in one of the two layouts, with pads. */
static layout make_layout(reader *r, size_t heads, size_t rows, size_t len)
{
    layout l;
    const size_t rowpad = rd_range(r, 0, 3), headpad = rd_range(r, 0, 2), batchpad = rd_range(r, 0, 5);
    if (rd_u8(r) & 1) {                  /* [b][h][i][c] */
        l.rs = len + rowpad;
        l.hs = rows * l.rs + headpad;
        l.bs = heads * l.hs + batchpad;
    } else {                             /* [b][i][h][c] */
        l.hs = len + headpad;
        l.rs = heads * l.hs + rowpad;
        l.bs = rows * l.rs + batchpad;
    }
    return l;
}

static size_t elems(size_t n0, size_t n1, size_t n2, layout l, size_t len)
{
    return tensor_elems(n0, l.bs, n1, l.hs, n2, l.rs, len);
}

/* Whether query row i (position pos) sees key j through causal and window. */
static int sees(const qkv_attention_desc *d, size_t i, size_t j)
{
    const long long pos = (long long)i + (long long)d->kv_len - (long long)d->q_len;
    if (d->mask == QKV_MASK_CAUSAL && (long long)j > pos)
        return 0;
    if (d->window && d->window <= (size_t)1 << 62 && (long long)j <= pos - (long long)d->window)
        return 0;
    return 1;
}

static const size_t dims[] = {1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 80, 96, 128};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    reader rd = {data, size}, *r = &rd;
    const enum fuzz_mode mode = fuzz_begin(r);
    qkv_isa isas[QKV_ISA_COUNT];
    const int nisa = fuzz_isas(isas);

    qkv_attention_desc d;
    memset(&d, 0, sizeof d);
    d.batch = rd_range(r, 1, 2);
    d.kv_heads = rd_range(r, 1, 3);
    d.q_heads = d.kv_heads * rd_range(r, 1, 4);
    const unsigned shape_kind = rd_u8(r) % 8;
    d.q_len = shape_kind == 7 ? rd_range(r, 60, 70) : rd_range(r, 1, 9);   /* past one 64-row block */
    d.kv_len = shape_kind == 6 ? rd_range(r, 1020, 1100) : rd_range(r, 1, 40); /* key splits */
    d.head_dim = dims[rd_u8(r) % (sizeof dims / sizeof dims[0])];
    d.v_head_dim = rd_u8(r) & 1 ? d.head_dim : dims[rd_u8(r) % (sizeof dims / sizeof dims[0])];
    const layout lq = make_layout(r, d.q_heads, d.q_len, d.head_dim);
    const layout lk = make_layout(r, d.kv_heads, d.kv_len, d.head_dim);
    const layout lv = make_layout(r, d.kv_heads, d.kv_len, d.v_head_dim);
    const layout lo = make_layout(r, d.q_heads, d.q_len, d.v_head_dim);
    const size_t nq = elems(d.batch, d.q_heads, d.q_len, lq, d.head_dim);
    const size_t nk = elems(d.batch, d.kv_heads, d.kv_len, lk, d.head_dim);
    const size_t nv = elems(d.batch, d.kv_heads, d.kv_len, lv, d.v_head_dim);
    const size_t no = elems(d.batch, d.q_heads, d.q_len, lo, d.v_head_dim);
    d.q.batch_stride = lq.bs; d.q.head_stride = lq.hs; d.q.row_stride = lq.rs;
    d.k.batch_stride = lk.bs; d.k.head_stride = lk.hs; d.k.row_stride = lk.rs;
    d.v.batch_stride = lv.bs; d.v.head_stride = lv.hs; d.v.row_stride = lv.rs;
    d.o.batch_stride = lo.bs; d.o.head_stride = lo.hs; d.o.row_stride = lo.rs;

    /* The usual scale times a factor in [0, 1]: larger scales make the
       scores (and the float rounding of them) grow past what the 1e-5
       promise covers. */
    const unsigned sc = rd_u8(r) % 4;
    d.scale = sc == 0 ? 0.0f : qkv_default_scale(d.head_dim) * (sc == 1 ? 1.0f : rd_unit01(r));

    const unsigned mk = rd_u8(r) % 3;
    d.mask = (qkv_mask_kind)mk;
    size_t nm = 0;
    if (d.mask == QKV_MASK_ADDITIVE) {
        /* 0 strides broadcast over batch or heads. */
        const unsigned bc = rd_u8(r) % 4;
        d.mask_add.row_stride = d.kv_len + rd_range(r, 0, 2);
        d.mask_add.head_stride = bc & 1 ? 0 : d.q_len * d.mask_add.row_stride;
        d.mask_add.batch_stride = bc & 2 ? 0 : d.q_heads * d.q_len * d.mask_add.row_stride;
        nm = tensor_elems(d.batch, d.mask_add.batch_stride, d.q_heads, d.mask_add.head_stride,
                          d.q_len, d.mask_add.row_stride, d.kv_len);
    }
    const unsigned wk = rd_u8(r) % 8;
    if (wk >= 4)
        d.window = rd_range(r, 1, d.kv_len + 3);
    else if (wk == 3) {
        static const size_t big[] = {(size_t)1 << 40, (size_t)PTRDIFF_MAX - 1, (size_t)PTRDIFF_MAX,
                                     (size_t)PTRDIFF_MAX + 1, SIZE_MAX - 1, SIZE_MAX};
        d.window = big[rd_u8(r) % 6];
        if (FUZZ_AVOID_WINDOW_CAST && d.window > (size_t)PTRDIFF_MAX - 64)
            d.window = (size_t)1 << 40;
    }
    const unsigned feat = rd_u8(r);
    if (feat & 1)
        d.softcap = 0.5f + 50.0f * rd_unit01(r);
    const int alibi = feat & 2, sinks = feat & 4, want_lse = feat & 8;
    const unsigned threads = feat >> 4 & 3;    /* 0: no hook */
    const unsigned threads2 = 1 + (feat >> 6 & 3) % 3;
    uint64_t seed = rd_u64(r);

    pbuf q = pbuf_new(nq), k = pbuf_new(nk), v = pbuf_new(nv), m = pbuf_new(nm ? nm : 1);
    pbuf sl = pbuf_new(d.q_heads), sk = pbuf_new(d.q_heads);
    fill_unit(&seed, q.data, nq);
    fill_unit(&seed, k.data, nk);
    fill_unit(&seed, v.data, nv);
    fill_unit(&seed, m.data, m.n);
    fill_unit(&seed, sk.data, sk.n);
    /* ALiBi terms grow with the distance to the key; real slopes are
       2^-k. Scaled so slope·distance stays within about 8. */
    const float slope_scale = 8.0f / (float)(d.kv_len > 8 ? d.kv_len : 8);
    for (size_t h = 0; h < d.q_heads; h++)
        sl.data[h] = rng_unit(&seed) * slope_scale;
    if (nm) {                             /* hidden keys, and sometimes whole rows */
        const size_t holes = rd_range(r, 0, 8);
        for (size_t i = 0; i < holes; i++)
            m.data[rng_next(&seed) % nm] = -INFINITY;
        if (rd_u8(r) & 1) {
            const size_t row = rng_next(&seed) % (nm / d.mask_add.row_stride + 1);
            for (size_t j = 0; j < d.kv_len && row * d.mask_add.row_stride + j < nm; j++)
                m.data[row * d.mask_add.row_stride + j] = -INFINITY;
        }
    }
    /* Special values at a few places of q, k, v, sinks are never special
       (they are validated). */
    const size_t nspecial = mode == MODE_SPECIAL ? rd_range(r, 1, 6) : 0;
    for (size_t s = 0; s < nspecial; s++) {
        const float x = fuzz_specials[rd_u8(r) % FUZZ_NSPECIALS];
        const unsigned where = rd_u8(r) % 3;
        pbuf *b = where == 0 ? &q : where == 1 ? &k : &v;
        b->data[rng_next(&seed) % b->n] = x;
    }

    /* Q, K and V stored as 16-bit now and then: the f32 arrays are then
       replaced by the stored values widened, so that every check below
       (specials, NaN rules, the oracle) sees what the kernels read. */
    void *stored[3] = {NULL, NULL, NULL};
    pbuf *wide[3] = {&q, &k, &v};
    qkv_tensor *tens[3] = {&d.q, &d.k, &d.v};
    const unsigned dt = mode == MODE_INVALID ? 0 : rd_u8(r);
    for (int t = 0; t < 3; t++) {
        tens[t]->data = wide[t]->data;
        const qkv_dtype type = (qkv_dtype)(dt >> (2 * t) & 3) == 3 ? QKV_F32 : (qkv_dtype)(dt >> (2 * t) & 3);
        if (type == QKV_F32)
            continue;
        stored[t] = malloc(wide[t]->n * 2);
        const qkv_funcs *sc = funcs_of(QKV_ISA_SCALAR);
        FUZZ_REQUIRE(sc->convert(wide[t]->n, wide[t]->data, QKV_F32, stored[t], type) == QKV_OK &&
                         sc->convert(wide[t]->n, stored[t], type, wide[t]->data, QKV_F32) == QKV_OK,
                     "store as %d", (int)type);
        tens[t]->data = stored[t];
        tens[t]->dtype = type;
    }
    d.mask_add.data = nm ? m.data : NULL;
    d.alibi_slopes = alibi ? sl.data : NULL;
    d.sinks = sinks ? sk.data : NULL;
    if (threads) {
        d.parallel_for = qkv_pool_parallel_for;
        d.pool = pool_of(threads);
    }
    const size_t rows = d.batch * d.q_heads * d.q_len;
    /* The output elements a call owns, marked before an invalid case
       changes the sizes. */
    unsigned char *own = calloc(no, 1);
    tensor_mark(own, d.batch, lo.bs, d.q_heads, lo.hs, d.q_len, lo.rs, d.v_head_dim);

    /* ---- invalid descriptors ------------------------------------------- */
    qkv_status want = QKV_OK;
    int o_on_q = 0;
    if (mode == MODE_INVALID) {
        switch (rd_u8(r) % 20) {
        case 0: d.batch = 0; want = QKV_ERR_ARG; break;
        case 1: d.kv_len = 0; want = QKV_ERR_ARG; break;
        case 2: d.q_heads = d.kv_heads * 2 + 1; if (d.kv_heads > 1) want = QKV_ERR_ARG; else d.q_heads = 0, want = QKV_ERR_ARG; break;
        case 3: d.k.row_stride = d.head_dim - 1; want = QKV_ERR_ARG; break;
        case 4: d.o.row_stride = d.v_head_dim - 1; want = QKV_ERR_ARG; break;
        case 5: d.scale = (rd_u8(r) & 1) ? NAN : -INFINITY; want = QKV_ERR_ARG; break;
        case 6: d.scale = -rd_unit01(r) - 1e-3f; want = QKV_ERR_ARG; break;
        case 7: d.softcap = (rd_u8(r) & 1) ? NAN : -1.0f; want = QKV_ERR_ARG; break;
        case 8: d.mask = (qkv_mask_kind)(3 + rd_u8(r) % 5); want = QKV_ERR_ARG; break;
        case 9:
            if (nm) d.mask_add.data = NULL; else d.mask_add.data = m.data;
            want = QKV_ERR_ARG;
            break;
        case 10: d.pool = pool_of(1); d.parallel_for = NULL; want = QKV_ERR_ARG; break;
        case 11: d.q.dtype = QKV_Q8_0; want = QKV_ERR_UNSUPPORTED; break;
        case 12: d.o.dtype = QKV_Q4_0; want = QKV_ERR_UNSUPPORTED; break;
        case 13: d.q.dtype = (qkv_dtype)(QKV_DTYPE_COUNT + rd_u8(r)); want = QKV_ERR_ARG; break;
        case 14: d.alibi_slopes = sl.data; sl.data[rd_u8(r) % d.q_heads] = NAN; want = QKV_ERR_ARG; break;
        case 15: d.sinks = sk.data; sk.data[rd_u8(r) % d.q_heads] = -INFINITY; want = QKV_ERR_ARG; break;
        case 16: d.v.batch_stride = SIZE_MAX / (1 + rd_u8(r) % 3); d.batch = 2; want = QKV_ERR_OVERFLOW; break;
        case 17:
            /* (kv_len - 1) · row_stride must wrap: needs two keys. */
            if (d.kv_len >= 2) d.k.row_stride = SIZE_MAX - rd_u8(r); else d.q_len = SIZE_MAX;
            want = QKV_ERR_OVERFLOW;
            break;
        case 18: d.q_len = SIZE_MAX / 2 + rd_u8(r); want = QKV_ERR_OVERFLOW; break;
        default:
            /* o overlapping q: refused, and q not written either. */
            o_on_q = 1;
            want = QKV_ERR_ARG;
            break;
        }
    }
    pbuf q_before = pbuf_new(nq);
    memcpy(q_before.data, q.data, nq * sizeof(float));

    /* ---- run every ISA ---------------------------------------------------- */
    pbuf *outs = calloc((size_t)nisa, sizeof *outs), *lses = calloc((size_t)nisa, sizeof *lses);
    for (int i = 0; i < nisa; i++) {
        const qkv_funcs *f = funcs_of(isas[i]);
        outs[i] = pbuf_new(no);
        lses[i] = pbuf_new(rows);
        qkv_attention_desc di = d;
        di.o.data = o_on_q ? q.data + rd_range(r, 0, nq - 1) : outs[i].data;
        di.lse = want_lse ? lses[i].data : NULL;
        const qkv_status st = f->attention(&di);
        fuzz_runs[isas[i]]++;
        FUZZ_REQUIRE(st == want, "%s: status %s, want %s", qkv_isa_name(isas[i]),
                     qkv_status_string(st), qkv_status_string(want));
        if (want != QKV_OK) {
            FUZZ_REQUIRE(pbuf_untouched(&outs[i]) && pbuf_untouched(&lses[i]) &&
                             same_bits(q.data, q_before.data, nq),
                         "%s: output written on error", qkv_isa_name(isas[i]));
            continue;
        }
        FUZZ_REQUIRE(gaps_untouched(&outs[i], own), "%s: stray write in o", qkv_isa_name(isas[i]));
        FUZZ_REQUIRE(want_lse ? pbuf_guards_ok(&lses[i]) : pbuf_untouched(&lses[i]),
                     "%s: stray write around lse", qkv_isa_name(isas[i]));
        if (threads) {
            /* Bit-identical whatever the number of threads behind the hook. */
            pbuf o2 = pbuf_new(no), l2 = pbuf_new(rows);
            di.o.data = o2.data;
            di.lse = want_lse ? l2.data : NULL;
            di.pool = pool_of(threads2);
            FUZZ_REQUIRE(f->attention(&di) == QKV_OK, "second run");
            FUZZ_REQUIRE(same_bits(o2.base, outs[i].base, no + 2 * o2.pad) &&
                             same_bits(l2.base, lses[i].base, rows + 2 * l2.pad),
                         "%s: %u and %u threads differ", qkv_isa_name(isas[i]), threads, threads2);
            pbuf_free(&o2);
            pbuf_free(&l2);
        }
    }

    if (want == QKV_OK) {
        /* Rows that touch a special value, and the NaN rules. */
        double *ro = malloc(rows * d.v_head_dim * sizeof *ro), *rl = malloc(rows * sizeof *rl);
        if (mode == MODE_COMPARE) {
            /* The oracle reads the widened values, as f32. */
            qkv_attention_desc dw = d;
            dw.q.data = q.data, dw.k.data = k.data, dw.v.data = v.data;
            dw.q.dtype = dw.k.dtype = dw.v.dtype = QKV_F32;
            oracle_attention(&dw, ro, rl);
        }
        for (size_t b = 0; b < d.batch; b++)
        for (size_t h = 0; h < d.q_heads; h++)
        for (size_t i = 0; i < d.q_len; i++) {
            const size_t g = h / (d.q_heads / d.kv_heads), row = (b * d.q_heads + h) * d.q_len + i;
            const float *qi = q.data + b * lq.bs + h * lq.hs + i * lq.rs;
            int q_nan = 0, q_special = 0, touched, any_seen = 0, k_nan_seen = 0;
            for (size_t c = 0; c < d.head_dim; c++) {
                q_nan |= isnan(qi[c]);
                q_special |= is_special(qi[c]);
            }
            touched = q_special;
            int *v_nan = calloc(d.v_head_dim, sizeof *v_nan);
            for (size_t j = 0; j < d.kv_len; j++) {
                const float *kj = k.data + b * lk.bs + g * lk.hs + j * lk.rs;
                const float *vj = v.data + b * lv.bs + g * lv.hs + j * lv.rs;
                int k_special = 0, k_nan = 0;
                for (size_t c = 0; c < d.head_dim; c++) {
                    k_special |= is_special(kj[c]);
                    k_nan |= isnan(kj[c]);
                }
                int v_special = 0;
                for (size_t c = 0; c < d.v_head_dim; c++)
                    v_special |= is_special(vj[c]);
                if (FUZZ_AVOID_V_LEAK)
                    touched |= k_special | v_special;
                if (!sees(&d, i, j))
                    continue;
                touched |= k_special | v_special;   /* a key the row sees */
                any_seen = 1;
                k_nan_seen |= k_nan;
                if (!k_special)
                    for (size_t c = 0; c < d.v_head_dim; c++)
                        v_nan[c] |= isnan(vj[c]);
            }
            /* The NaN rules hold when no additive mask can hide a key
               (NaN + -inf is NaN, not a hidden key) and no other special
               value of q could turn the scores into something else. */
            int rules = d.mask != QKV_MASK_ADDITIVE && any_seen;
            if (FUZZ_AVOID_NAN_SPLIT && threads && d.kv_len >= 1024)
                rules = 0;
            const int row_nan = rules && (q_nan || k_nan_seen);
            for (int a = 0; a < nisa; a++) {
                const float *o = outs[a].data + b * lo.bs + h * lo.hs + i * lo.rs;
                const float *lse = lses[a].data + row;
                const float *o0 = outs[0].data + b * lo.bs + h * lo.hs + i * lo.rs;
                for (size_t c = 0; c < d.v_head_dim; c++) {
                    if (row_nan)
                        FUZZ_REQUIRE(isnan(o[c]), "%s: row b%zu h%zu i%zu: NaN input, o[%zu] = %g",
                                     qkv_isa_name(isas[a]), b, h, i, c, o[c]);
                    else if (rules && !q_special && v_nan[c])
                        FUZZ_REQUIRE(isnan(o[c]), "%s: row b%zu h%zu i%zu: NaN in V column %zu, o = %g",
                                     qkv_isa_name(isas[a]), b, h, i, c, o[c]);
                    else if (!touched && a > 0)
                        /* A clean row: same as scalar within the promise. */
                        FUZZ_REQUIRE(close_to(o[c], o0[c], TOL),
                                     "%s: row b%zu h%zu i%zu o[%zu] = %.9g, scalar %.9g",
                                     qkv_isa_name(isas[a]), b, h, i, c, o[c], o0[c]);
                    if (!touched && a == 0 && mode == MODE_COMPARE)
                        FUZZ_REQUIRE(close_to(o[c], ro[row * d.v_head_dim + c], TOL),
                                     "scalar: row b%zu h%zu i%zu o[%zu] = %.9g, oracle %.9g", b, h,
                                     i, c, o[c], ro[row * d.v_head_dim + c]);
                }
                if (!want_lse)
                    continue;
                if (row_nan)
                    FUZZ_REQUIRE(isnan(*lse), "%s: row b%zu h%zu i%zu: NaN input, lse %g",
                                 qkv_isa_name(isas[a]), b, h, i, *lse);
                else if (!touched && a > 0)
                    /* lse is a log-sum: its error grows with its size. */
                    FUZZ_REQUIRE(close_to(*lse, lses[0].data[row], TOL_LSE_REL * fmax(1.0, fabsf(*lse))),
                                 "%s: row b%zu h%zu i%zu lse %.9g, scalar %.9g",
                                 qkv_isa_name(isas[a]), b, h, i, *lse, lses[0].data[row]);
                if (!touched && a == 0 && mode == MODE_COMPARE)
                    FUZZ_REQUIRE(close_to(*lse, rl[row], TOL_LSE_REL * fmax(1.0, fabs(rl[row]))),
                                 "scalar: row b%zu h%zu i%zu lse %.9g, oracle %.9g", b, h, i, *lse,
                                 rl[row]);
            }
            free(v_nan);
        }
        free(ro);
        free(rl);
    }

    for (int i = 0; i < nisa; i++) {
        pbuf_free(&outs[i]);
        pbuf_free(&lses[i]);
    }
    free(outs);
    free(lses);
    free(own);
    for (int t = 0; t < 3; t++)
        free(stored[t]);
    pbuf *all[] = {&q, &k, &v, &m, &sl, &sk, &q_before};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        pbuf_free(all[i]);
    return 0;
}

/*
 * Differential fuzzing of what an engine passes qkv_attention: ragged
 * batches (q_start, kv_lens, empty sequences, more rows than keys) over
 * paged K/V (a shuffled table, shared pages, page sizes 1..40) stored as
 * f32, f16, bf16, Q8_0 or Q4_0, with masks and modifiers. Every supported
 * ISA against the scalar ISA within the 1e-5 promise, the same ISA bit for
 * bit on two thread counts, and nothing written outside the output rows.
 * Invalid inputs (page ids out of range, a bad q_start or kv_lens) must
 * get QKV_ERR_ARG and write nothing.
 */
#include "fuzz_common.h"

static qkv_pool *pools[4];

static qkv_pool *pool_of(unsigned threads)
{
    if (!pools[threads])
        FUZZ_REQUIRE(qkv_pool_create(threads, &pools[threads]) == QKV_OK, "pool create");
    return pools[threads];
}

static const size_t dims[] = {1, 3, 8, 16, 32, 33, 64, 96, 128};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    reader rd = {data, size}, *r = &rd;
    const enum fuzz_mode mode = fuzz_begin(r);
    qkv_isa isas[QKV_ISA_COUNT];
    const int nisa = fuzz_isas(isas);

    qkv_attention_desc d;
    memset(&d, 0, sizeof d);
    d.batch = rd_range(r, 1, 4);
    d.kv_heads = rd_range(r, 1, 2);
    d.q_heads = d.kv_heads * rd_range(r, 1, 4);
    d.head_dim = dims[rd_u8(r) % (sizeof dims / sizeof dims[0])];
    d.v_head_dim = rd_u8(r) & 1 ? d.head_dim : dims[rd_u8(r) % (sizeof dims / sizeof dims[0])];
    /* Stored dtypes of K and V; the block types need whole blocks. */
    qkv_dtype kt = (qkv_dtype)(rd_u8(r) % QKV_DTYPE_COUNT), vt = (qkv_dtype)(rd_u8(r) % QKV_DTYPE_COUNT);
    if (kt >= QKV_Q8_0 && d.head_dim % 32)
        kt = QKV_F16;
    if (vt >= QKV_Q8_0 && d.v_head_dim % 32)
        vt = QKV_BF16;

    int32_t q_start[5], kv_lens[4];
    size_t rows = 0, most_keys = 1, most_rows = 0;
    q_start[0] = 0;
    for (size_t b = 0; b < d.batch; b++) {
        const size_t n = rd_u8(r) % 4 == 0 ? 0 : rd_range(r, 1, 12);
        rows += n;
        most_rows = n > most_rows ? n : most_rows;
        q_start[b + 1] = (int32_t)rows;
        kv_lens[b] = rd_u8(r) % 5 == 0 ? 0 : (int32_t)rd_range(r, 1, 90);
        most_keys = (size_t)kv_lens[b] > most_keys ? (size_t)kv_lens[b] : most_keys;
    }
    if (!rows) {
        rows = most_rows = 1;
        for (size_t b = 1; b <= d.batch; b++)
            q_start[b] = 1;
    }
    d.q_len = rows;
    d.kv_len = most_keys;
    d.q_start = q_start;
    d.kv_lens = kv_lens;

    /* Packed Q and O, [row][head][dim]. */
    d.q.row_stride = d.q_heads * d.head_dim;
    d.q.head_stride = d.head_dim;
    d.o.row_stride = d.q_heads * d.v_head_dim + rd_range(r, 0, 2);
    d.o.head_stride = d.v_head_dim;
    const size_t nq = rows * d.q.row_stride, no = (rows - 1) * d.o.row_stride + d.q_heads * d.v_head_dim;

    /* The page pool, [pages][kv_heads][page_size][dim], and a shuffled
       table; sequence b > 0 may share sequence 0's first page. */
    d.page_size = rd_range(r, 1, 40);
    const size_t per_seq = (d.kv_len + d.page_size - 1) / d.page_size;
    d.num_pages = d.batch * per_seq + rd_range(r, 0, 2);
    d.page_table_stride = per_seq;
    d.k.row_stride = d.head_dim, d.k.head_stride = d.page_size * d.head_dim;
    d.v.row_stride = d.v_head_dim, d.v.head_stride = d.page_size * d.v_head_dim;
    d.k_page_stride = d.kv_heads * d.page_size * d.head_dim;
    d.v_page_stride = d.kv_heads * d.page_size * d.v_head_dim;
    int32_t *table = calloc(d.batch * per_seq, sizeof *table);
    int32_t *perm = malloc(d.num_pages * sizeof *perm);
    uint64_t seed = rd_u64(r);
    for (size_t i = 0; i < d.num_pages; i++)
        perm[i] = (int32_t)i;
    for (size_t i = d.num_pages; i > 1; i--) {
        const size_t j = rng_next(&seed) % i;
        const int32_t t = perm[i - 1];
        perm[i - 1] = perm[j], perm[j] = t;
    }
    for (size_t i = 0; i < d.batch * per_seq; i++)
        table[i] = perm[i];
    if (d.batch > 1 && rd_u8(r) % 3 == 0)
        table[per_seq] = table[0];      /* a shared prefix page */
    d.page_table = table;
    free(perm);

    const size_t nk = d.num_pages * d.k_page_stride, nv = d.num_pages * d.v_page_stride;
    pbuf q = pbuf_new(nq);
    float *kf = malloc(nk * sizeof *kf), *vf = malloc(nv * sizeof *vf);
    fill_unit(&seed, q.data, nq);
    fill_unit(&seed, kf, nk);
    fill_unit(&seed, vf, nv);
    const qkv_funcs *scalar = funcs_of(QKV_ISA_SCALAR);
    const size_t kb = kt == QKV_F32 ? nk * 4 : kt == QKV_Q8_0 ? nk / 32 * 34 : kt == QKV_Q4_0 ? nk / 32 * 18 : nk * 2;
    const size_t vb = vt == QKV_F32 ? nv * 4 : vt == QKV_Q8_0 ? nv / 32 * 34 : vt == QKV_Q4_0 ? nv / 32 * 18 : nv * 2;
    unsigned char *ks = malloc(kb), *vs = malloc(vb);
    if (kt == QKV_F32)
        memcpy(ks, kf, kb);
    else
        FUZZ_REQUIRE(scalar->convert(nk, kf, QKV_F32, ks, kt) == QKV_OK, "store K");
    if (vt == QKV_F32)
        memcpy(vs, vf, vb);
    else
        FUZZ_REQUIRE(scalar->convert(nv, vf, QKV_F32, vs, vt) == QKV_OK, "store V");
    d.q.data = q.data;
    d.k.data = ks, d.k.dtype = kt;
    d.v.data = vs, d.v.dtype = vt;
    d.scale = qkv_default_scale(d.head_dim) * (rd_u8(r) & 1 ? 1.0f : rd_unit01(r));

    d.mask = (qkv_mask_kind)(rd_u8(r) % 3);
    pbuf m = pbuf_new(1);
    if (d.mask == QKV_MASK_ADDITIVE) {
        d.mask_add.row_stride = d.kv_len;
        d.mask_add.head_stride = most_rows * d.kv_len;
        d.mask_add.batch_stride = d.q_heads * d.mask_add.head_stride;
        pbuf_free(&m);
        m = pbuf_new(d.batch * d.mask_add.batch_stride + 1);
        fill_unit(&seed, m.data, m.n);
        for (size_t i = 0; i < m.n; i++)
            if (rng_next(&seed) % 10 == 0)
                m.data[i] = -INFINITY;
        d.mask_add.data = m.data;
    }
    const unsigned feat = rd_u8(r);
    if (feat & 1)
        d.window = rd_range(r, 1, d.kv_len + 2);
    if (feat & 2)
        d.softcap = 0.5f + 20.0f * rd_unit01(r);
    pbuf sl = pbuf_new(d.q_heads), sk = pbuf_new(d.q_heads);
    for (size_t h = 0; h < d.q_heads; h++)
        sl.data[h] = rng_unit(&seed) * 0.1f;
    fill_unit(&seed, sk.data, sk.n);
    d.alibi_slopes = feat & 4 ? sl.data : NULL;
    d.sinks = feat & 8 ? sk.data : NULL;
    const unsigned threads = feat >> 4 & 3, threads2 = 1 + (feat >> 6 & 3) % 3;
    if (threads) {
        d.parallel_for = qkv_pool_parallel_for;
        d.pool = pool_of(threads);
    }
    unsigned char *own = calloc(no, 1);
    for (size_t row = 0; row < rows; row++)
        for (size_t h = 0; h < d.q_heads; h++)
            memset(own + row * d.o.row_stride + h * d.o.head_stride, 1, d.v_head_dim);

    qkv_status want = QKV_OK;
    if (mode == MODE_INVALID) {
        switch (rd_u8(r) % 6) {
        case 0: if (kv_lens[0]) table[0] = (int32_t)d.num_pages; else table[0] = -1, kv_lens[0] = 1; break;
        case 1: kv_lens[d.batch - 1] = -1 - (int32_t)rd_u8(r); break;
        case 2: kv_lens[0] = (int32_t)d.kv_len + 1 + (int32_t)rd_u8(r); break;
        case 3: q_start[0] = 1; break;
        case 4: d.q_len = rows + 1 + rd_u8(r); break;
        default: d.num_pages = 0; break;
        }
        want = QKV_ERR_ARG;
    }

    const size_t nl = d.q_heads * rows;
    pbuf *outs = calloc((size_t)nisa, sizeof *outs), *lses = calloc((size_t)nisa, sizeof *lses);
    for (int i = 0; i < nisa; i++) {
        const qkv_funcs *f = funcs_of(isas[i]);
        outs[i] = pbuf_new(no);
        lses[i] = pbuf_new(nl);
        qkv_attention_desc di = d;
        di.o.data = outs[i].data;
        di.lse = lses[i].data;
        const qkv_status st = f->attention(&di);
        fuzz_runs[isas[i]]++;
        FUZZ_REQUIRE(st == want, "%s: status %s, want %s", qkv_isa_name(isas[i]),
                     qkv_status_string(st), qkv_status_string(want));
        if (want != QKV_OK) {
            FUZZ_REQUIRE(pbuf_untouched(&outs[i]) && pbuf_untouched(&lses[i]),
                         "%s: output written on error", qkv_isa_name(isas[i]));
            continue;
        }
        FUZZ_REQUIRE(gaps_untouched(&outs[i], own) && pbuf_guards_ok(&lses[i]),
                     "%s: stray write", qkv_isa_name(isas[i]));
        if (threads) {
            pbuf o2 = pbuf_new(no), l2 = pbuf_new(nl);
            di.o.data = o2.data;
            di.lse = l2.data;
            di.pool = pool_of(threads2);
            FUZZ_REQUIRE(f->attention(&di) == QKV_OK, "second run");
            FUZZ_REQUIRE(same_bits(o2.base, outs[i].base, no + 2 * o2.pad) &&
                             same_bits(l2.base, lses[i].base, nl + 2 * l2.pad),
                         "%s: %u and %u threads differ", qkv_isa_name(isas[i]), threads, threads2);
            pbuf_free(&o2);
            pbuf_free(&l2);
        }
        /* Against the scalar ISA (isas[0]) within the promise. */
        for (size_t x = 0; i > 0 && x < no; x++)
            if (own[x])
                FUZZ_REQUIRE(close_to(outs[i].data[x], outs[0].data[x], TOL),
                             "%s: o[%zu] = %.9g, scalar %.9g", qkv_isa_name(isas[i]), x,
                             outs[i].data[x], outs[0].data[x]);
        for (size_t x = 0; i > 0 && x < nl; x++)
            FUZZ_REQUIRE(close_to(lses[i].data[x], lses[0].data[x],
                                  TOL_LSE_REL * fmax(1.0, fabsf(lses[0].data[x]))),
                         "%s: lse[%zu] = %.9g, scalar %.9g", qkv_isa_name(isas[i]), x,
                         lses[i].data[x], lses[0].data[x]);
    }

    for (int i = 0; i < nisa; i++) {
        pbuf_free(&outs[i]);
        pbuf_free(&lses[i]);
    }
    free(outs), free(lses), free(own), free(table), free(kf), free(vf), free(ks), free(vs);
    pbuf_free(&q), pbuf_free(&m), pbuf_free(&sl), pbuf_free(&sk);
    return 0;
}

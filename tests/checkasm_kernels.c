/*
 * checkasm's kernel group: the registry entries (kernels/kernels.h) that
 * each ISA itself registers, called directly, against the scalar
 * reference's entries and a double-precision reference. An entry an ISA
 * inherits from its parent is tested under the parent's name only (dav1d's
 * rule), and a failure names the kernel as <kernel>_<dtype>_<isa>.
 *
 * The fused driver (ctx->attention) is driven with jobs the planner would
 * never make on its own: any row ranges (empty ones too) inside the job's
 * range, 1 .. max_rows rows, every modifier, every stored dtype, contiguous
 * or paged K/V, and exactly the workspace its attention_ws asks for, with
 * guards around every buffer it writes.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "isa_emu.h"
#include "checkasm_kernels.h"
#include "kernels.h"
#include "registry.h"

static tally *T;
static uint64_t rng;

static const char *const dtype_names[QKV_DTYPE_COUNT] = {"f32", "f16", "bf16", "q8_0", "q4_0"};

static size_t urand(size_t lo, size_t hi)
{
    return rng_range(&rng, lo, hi);
}

static int coin(int percent)
{
    return rng_percent(&rng, percent);
}

/* Whether an ISA registers entry `slot` itself (it differs from its
   parent's); scalar's entries are the reference, tested against the
   double oracle only where the entry is the driver. */
#define OWN(ctx, parent, field) ((parent) == NULL || (ctx)->field != (parent)->field)

/* ---- values stored in a dtype, and read back through the scalar reference ---- */

typedef struct stored {
    unsigned char *bytes;        /* the stored values */
    float *wide;                 /* the same, widened exactly (scalar converters) */
    size_t n;
} stored;

static stored store(const qkv_ctx *scalar, qkv_dtype t, size_t n, float lo, float hi)
{
    stored s = {NULL, malloc(n * sizeof(float)), n};
    fill_range(&rng, s.wide, n, lo, hi);
    const size_t bytes = qkv_dtype_bytes(t, n);
    s.bytes = malloc(bytes ? bytes : 1);
    if (t == QKV_F32) {
        memcpy(s.bytes, s.wide, n * sizeof(float));
        return s;
    }
    scalar->conv.from_f32[t](n, s.wide, s.bytes);
    scalar->conv.to_f32[t](n, s.bytes, s.wide);
    return s;
}

static void stored_free(stored *s)
{
    free(s->bytes), free(s->wide);
}

/* ---- the converters ------------------------------------------------------------ */

static void test_converters(const qkv_ctx *c, const qkv_ctx *parent, const qkv_ctx *scalar,
                            const char *isa, int cases)
{
    for (int t = 1; t < QKV_DTYPE_COUNT; t++) {
        const int own_to = OWN(c, parent, conv.to_f32[t]), own_from = OWN(c, parent, conv.from_f32[t]);
        if (!own_to && !own_from)
            continue;
        const size_t blk = qkv_dtype_block((qkv_dtype)t);
        for (int k = 0; k < cases; k++) {
            const size_t n = blk * urand(1, blk > 1 ? 9 : 300);
            float *x = malloc(n * sizeof *x), *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
            fill_range(&rng, x, n, -70000.0f, 70000.0f);
            for (size_t i = 0; i < n; i++)   /* small, tiny and special values too */
                x[i] = coin(30) ? x[i] * 1e-5f : coin(3) ? (float)(coin(50) ? INFINITY : NAN) : x[i];
            const size_t bytes = qkv_dtype_bytes((qkv_dtype)t, n);
            pbuf sa = pbuf_new((bytes + 3) / 4), sb = pbuf_new((bytes + 3) / 4);
            if (own_from) {
                c->conv.from_f32[t](n, x, sa.data);
                scalar->conv.from_f32[t](n, x, sb.data);
                /* Bit for bit, but for the payload of a NaN (a NaN of its
                   sign either way); a block holding one is stored by one rule. */
                size_t bad = 0;
                const uint16_t *ha = (const uint16_t *)sa.data, *hb = (const uint16_t *)sb.data;
                for (size_t i = 0; i < (blk > 1 ? 0 : n); i++)
                    bad += !isnan(x[i]) && ha[i] != hb[i];
                if (blk > 1)
                    bad = memcmp(sa.data, sb.data, bytes) != 0;
                tally_check(T, bad == 0, "from_f32_%s_%s: n %zu: stored values differ from scalar",
                            dtype_names[t], isa, n);
                tally_check(T, pbuf_guards_ok(&sa), "from_f32_%s_%s: n %zu: wrote past the end",
                            dtype_names[t], isa, n);
            } else {
                scalar->conv.from_f32[t](n, x, sa.data);
                memcpy(sb.data, sa.data, bytes);
            }
            /* Widening: bit for bit the scalar reference's (NaN: a NaN). */
            pbuf wa = pbuf_new(n);
            (own_to ? c : scalar)->conv.to_f32[t](n, sb.data, wa.data);
            scalar->conv.to_f32[t](n, sb.data, b);
            size_t bad = 0;
            for (size_t i = 0; i < n; i++)
                bad += isnan(b[i]) ? !isnan(wa.data[i]) : memcmp(&wa.data[i], &b[i], 4) != 0;
            tally_check(T, bad == 0 && pbuf_guards_ok(&wa), "to_f32_%s_%s: n %zu: %zu values differ "
                        "from scalar, or a write past the end", dtype_names[t], isa, n, bad);
            (void)a;
            free(x), free(a), free(b);
            pbuf_free(&sa), pbuf_free(&sb), pbuf_free(&wa);
        }
    }
}

/* ---- the merge kernel -------------------------------------------------------------- */

static void test_merge(const qkv_ctx *c, const qkv_ctx *scalar, const char *isa, int cases)
{
    for (int k = 0; k < cases; k++) {
        const size_t rows = urand(1, 40), dv = urand(1, 130), ldo = dv + urand(0, 3);
        const size_t n = (rows - 1) * ldo + dv;
        float *o = malloc(n * sizeof *o), *o2 = malloc(n * sizeof *o2);
        float *lse = malloc(rows * sizeof *lse), *lse2 = malloc(rows * sizeof *lse2);
        fill_unit(&rng, o, n);
        fill_unit(&rng, o2, n);
        fill_range(&rng, lse, rows, -5, 5);
        fill_range(&rng, lse2, rows, -5, 5);
        for (size_t r = 0; r < rows; r++) {   /* the exact rows */
            if (coin(10))
                lse[r] = -INFINITY;
            if (coin(10))
                lse2[r] = -INFINITY;
            if (coin(5))
                lse2[r] = NAN;
        }
        float *oa = malloc(n * sizeof *oa), *ob = malloc(n * sizeof *ob);
        float *la = malloc(rows * sizeof *la), *lb = malloc(rows * sizeof *lb);
        memcpy(oa, o, n * sizeof *o), memcpy(ob, o, n * sizeof *o);
        memcpy(la, lse, rows * sizeof *lse), memcpy(lb, lse, rows * sizeof *lse);
        c->merge_states(rows, dv, oa, ldo, la, o2, ldo, lse2);
        scalar->merge_states(rows, dv, ob, ldo, lb, o2, ldo, lse2);
        /* Every ISA follows the scalar blend bit for bit (kernels.h). */
        tally_check(T, same_bits(oa, ob, n) && same_bits(la, lb, rows),
                    "merge_states_f32_%s: rows %zu dv %zu: differs from scalar", isa, rows, dv);
        free(o), free(o2), free(lse), free(lse2), free(oa), free(ob), free(la), free(lb);
    }
}

/* ---- the fused driver, job by job ----------------------------------------------------- */

typedef struct row_ref {
    double lse;
    double *o;       /* v_head_dim */
    double spread;   /* the tolerance's factor for this row, >= 1 */
} row_ref;

/* f32's error in a score grows with the magnitudes it sums, A = scale ·
   Σ|q_c·k_c| + |ALiBi term| + |mask|, and the output's error with it.
   Inputs within the contract (Q, K, V in [-1, 1], scale <= 1) reach A of
   about 64 at head_dim 256 and scale 1, where TOL holds; rows drawn beyond
   it (Q of ±60, large slopes) get TOL · A / 64. Both sides' errors, scalar
   included, follow this; a wrong rescale or a lost key stays far above. */
#define CONTRACT_SPREAD 64.0

/* One row by the definition, in double, on the widened values. */
static void reference_row(const qkv_attn_job *j, const qkv_attn_row *r, const float *q,
                          const float *const *k, const float *const *v, row_ref *out)
{
    const size_t d = j->head_dim, dv = j->v_head_dim;
    double m = -INFINITY, l = 0, spread = CONTRACT_SPREAD;
    for (size_t c = 0; c < dv; c++)
        out->o[c] = 0;
    for (size_t key = r->kv_begin; key < r->kv_end; key++) {
        double s = 0, a = 0;
        for (size_t c = 0; c < d; c++) {
            s += (double)q[c] * k[key][c];
            a += fabs((double)q[c] * k[key][c]);
        }
        s *= j->scale;
        a *= j->scale;
        if (j->softcap > 0)
            s = j->softcap * tanh(s / j->softcap);
        if (r->slope != 0) {
            const double t = (double)r->slope * (double)((ptrdiff_t)key - r->pos);
            s += t;
            a += fabs(t);
        }
        if (r->mask) {
            s += r->mask[key];
            a += fabs(r->mask[key]);
        }
        if (s == -INFINITY)
            continue;
        spread = a > spread ? a : spread;
        if (s > m) {
            const double f = exp(m - s);
            l *= f;
            for (size_t c = 0; c < dv; c++)
                out->o[c] *= f;
            m = s;
        }
        const double w = exp(s - m);
        l += w;
        for (size_t c = 0; c < dv; c++)
            out->o[c] += w * v[key][c];
    }
    for (size_t c = 0; c < dv && l > 0; c++)
        out->o[c] /= l;
    out->lse = l > 0 ? m + log(l) : -INFINITY;
    out->spread = spread / CONTRACT_SPREAD;
}

static const size_t job_dims[] = {1, 2, 6, 13, 32, 47, 64, 96, 128, 256};

static void test_driver(const qkv_ctx *c, const qkv_ctx *scalar, const char *isa, int cases)
{
    for (int k = 0; k < cases; k++) {
        qkv_attn_job j;
        memset(&j, 0, sizeof j);
        const size_t max_rows = c->blocks.max_rows;
        /* Now and then a prefill's job on an f32 or 16-bit V in pages
           shorter than a tile, mostly of whole 64-column panels, every row
           seeing all its keys (plain, below): P·V then reads V's rows by
           pointer on some ISAs (pv_by_rows). */
        const int short_pages = coin(10);
        j.rows = short_pages ? urand(max_rows < 9 ? 1 : 9, max_rows)
                 : coin(30)  ? urand(1, 4)
                 : coin(30)  ? urand(5, 8)
                             : urand(1, max_rows);
        j.head_dim = job_dims[urand(0, sizeof job_dims / sizeof *job_dims - 1)];
        j.v_head_dim = short_pages && coin(70) ? (size_t)64 << urand(0, 2)
                       : coin(70)              ? j.head_dim
                                               : job_dims[urand(0, sizeof job_dims / sizeof *job_dims - 1)];
        qkv_dtype kt = (qkv_dtype)urand(0, j.head_dim % 32 ? 2 : 4);
        const qkv_dtype vt = (qkv_dtype)urand(0, short_pages || j.v_head_dim % 32 ? 2 : 4);
        j.q_dtype = (qkv_dtype)(coin(60) ? 0 : urand(1, 2));
        /* Q and K in the same 16-bit dtype half the time that Q is one: the
           pairs some ISAs multiply without widening (bf16 dot products,
           FMLAL on f16). */
        if (j.q_dtype != QKV_F32 && coin(50))
            kt = j.q_dtype;
        const size_t keys = coin(20) ? urand(1, 20) : urand(20, 700);
        j.kv_begin = urand(0, keys - 1);
        j.kv_end = urand(j.kv_begin + 1, keys);
        j.scale = coin(80) ? qkv_default_scale(j.head_dim) : rng_float(&rng, 0, 1);   /* the contract's range */
        j.softcap = coin(25) ? rng_float(&rng, 0.5f, 5) : 0.0f;

        /* K and V: contiguous rows, or pages of page_size rows in a
           shuffled order. */
        const size_t ps = short_pages ? urand(1, 63) : coin(40) ? urand(1, 70) : SIZE_MAX;
        const size_t npages = ps == SIZE_MAX ? 1 : (keys + ps - 1) / ps;
        const size_t rows_stored = ps == SIZE_MAX ? keys : npages * ps;
        const size_t kld = j.head_dim + (kt >= QKV_Q8_0 ? 32 : 1) * urand(0, 2);
        const size_t vld = j.v_head_dim + (vt >= QKV_Q8_0 ? 32 : 1) * urand(0, 2);
        stored ks = store(scalar, kt, rows_stored * kld, -1, 1);
        stored vs = store(scalar, vt, rows_stored * vld, -1, 1);
        int32_t *pages = NULL;
        if (ps != SIZE_MAX) {
            pages = malloc(npages * sizeof *pages);
            for (size_t i = 0; i < npages; i++)
                pages[i] = (int32_t)i;
            for (size_t i = npages; i > 1; i--) {
                const size_t x = urand(0, i - 1);
                const int32_t t = pages[i - 1];
                pages[i - 1] = pages[x], pages[x] = t;
            }
        }
        j.k = (qkv_kv_src){ks.bytes, qkv_dtype_bytes(kt, kld), qkv_dtype_bytes(kt, ps == SIZE_MAX ? 0 : ps * kld),
                           ps, pages, kt, kt == QKV_F32 ? NULL : c->conv.to_f32[kt]};
        j.v = (qkv_kv_src){vs.bytes, qkv_dtype_bytes(vt, vld), qkv_dtype_bytes(vt, ps == SIZE_MAX ? 0 : ps * vld),
                           ps, pages, vt, vt == QKV_F32 ? NULL : c->conv.to_f32[vt]};
        j.q_to_f32 = j.q_dtype == QKV_F32 ? NULL : c->conv.to_f32[j.q_dtype];
        /* The widened rows of key j, through the same addressing. */
        const float **kw = malloc(keys * sizeof *kw), **vw = malloc(keys * sizeof *vw);
        for (size_t key = 0; key < keys; key++) {
            const size_t row = ps == SIZE_MAX ? key : (size_t)pages[key / ps] * ps + key % ps;
            kw[key] = ks.wide + row * kld;
            vw[key] = vs.wide + row * vld;
        }

        /* The rows: each its own Q, mask row, slope, position and a range
           inside the job's (empty now and then); or, now and then, every
           row sees all the job's keys, plainly (no mask, slope or cap), as
           a prefill's rows away from the diagonal: the kernels' plain
           tiles. */
        const int plain = short_pages || coin(25);
        if (plain)
            j.softcap = 0.0f;
        qkv_attn_row *rw = calloc(j.rows, sizeof *rw);
        stored *qs = calloc(j.rows, sizeof *qs);
        pbuf *acc = calloc(j.rows, sizeof *acc);
        float **masks = calloc(j.rows, sizeof *masks);
        for (size_t r = 0; r < j.rows; r++) {
            /* Now and then a row whose scores lie far from the others'. */
            const float spread = coin(10) ? 60.0f : 1.0f;
            qs[r] = store(scalar, j.q_dtype, j.head_dim, -spread, spread);
            rw[r].q = qs[r].bytes;
            acc[r] = pbuf_new(j.v_head_dim);
            rw[r].acc = acc[r].data;
            if (!plain && coin(20)) {
                masks[r] = malloc(keys * sizeof *masks[r]);
                fill_range(&rng, masks[r], keys, -3, 0);
                for (size_t x = 0; x < keys; x++)
                    if (coin(15))
                        masks[r][x] = -INFINITY;
                rw[r].mask = masks[r];
            }
            rw[r].slope = !plain && coin(20) ? rng_float(&rng, 0, 0.2f) : 0.0f;
            rw[r].pos = (ptrdiff_t)urand(0, keys) - (ptrdiff_t)urand(0, 3);
            if (plain) {
                rw[r].kv_begin = j.kv_begin;
                rw[r].kv_end = j.kv_end;
            } else if (coin(15)) {
                rw[r].kv_begin = rw[r].kv_end = 0;     /* sees nothing */
            } else {
                rw[r].kv_begin = urand(j.kv_begin, j.kv_end - 1);
                rw[r].kv_end = urand(rw[r].kv_begin + 1, j.kv_end);
            }
        }
        j.row = rw;
        const qkv_attn_shape shape = {j.head_dim, j.v_head_dim, j.q_dtype, kt, vt, 0, QKV_FPMATH_STRICT};
        qkv_attn_shape sm = shape;
        for (size_t r = 0; r < j.rows; r++)
            sm.masked |= rw[r].mask != NULL;
        size_t wsn = c->attention_ws(j.rows, &sm, QKV_ATTN_WS_FLOATS);
        wsn = wsn > QKV_ATTN_WS_FLOATS ? QKV_ATTN_WS_FLOATS : wsn;
        if (coin(25))
            wsn = QKV_ATTN_WS_FLOATS;
        /* The workspace the kernel owns: 64-byte aligned, guarded. */
        pbuf ws = pbuf_new(wsn + 16);
        j.ws = (float *)(((uintptr_t)ws.data + 63) & ~(uintptr_t)63);
        j.ws_floats = wsn;
        /* Now and then in pieces, each going on from the last (resume), as
           the planner's walks run a job, and with rows to prefetch handed
           in (any rows: a hint, which must not change a result). */
        const size_t pieces = coin(30) ? urand(2, 4) : 1;
        const int handed = pieces > 1 && coin(50);
        size_t cut[5] = {j.kv_begin, 0, 0, 0, j.kv_end};
        for (size_t i = 1; i < pieces; i++)
            cut[i] = urand(cut[i - 1], j.kv_end);
        cut[pieces] = j.kv_end;
        size_t *rb = malloc(j.rows * 2 * sizeof *rb);
        const unsigned char **pre = handed ? malloc(2 * keys * sizeof *pre) : NULL;
        for (size_t r = 0; r < j.rows; r++)
            rb[2 * r] = rw[r].kv_begin, rb[2 * r + 1] = rw[r].kv_end;
        for (size_t i = 0; i < pieces; i++) {
            qkv_attn_job piece = j;
            piece.kv_begin = cut[i];
            piece.kv_end = cut[i + 1];
            piece.resume = i > 0;
            for (size_t r = 0; r < j.rows; r++) {
                const size_t b = rb[2 * r] > cut[i] ? rb[2 * r] : cut[i];
                const size_t e = rb[2 * r + 1] < cut[i + 1] ? rb[2 * r + 1] : cut[i + 1];
                rw[r].kv_begin = b < e ? b : 0;
                rw[r].kv_end = b < e ? e : 0;
            }
            if (handed) {
                for (size_t x = 0; x < 2 * keys; x++)
                    pre[x] = coin(20) ? NULL : (const unsigned char *)(x < keys ? kw : vw)[urand(0, keys - 1)];
                piece.k_pre = pre;
                piece.v_pre = pre + keys;
            }
            c->attention(&piece);
        }
        for (size_t r = 0; r < j.rows; r++)
            rw[r].kv_begin = rb[2 * r], rw[r].kv_end = rb[2 * r + 1];
        free(rb);
        free(pre);

        char text[300];
        snprintf(text, sizeof text, "attention_%s%s%s_%s: rows %zu d %zu dv %zu keys [%zu, %zu) "
                 "page %zu softcap %g ws %zu pieces %zu%s", dtype_names[kt],
                 kt == vt ? "" : "_", kt == vt ? "" : dtype_names[vt], isa, j.rows, j.head_dim,
                 j.v_head_dim, j.kv_begin, j.kv_end, ps == SIZE_MAX ? 0 : ps, j.softcap, wsn,
                 pieces, handed ? " prefetch handed" : "");
        double worst = 0, worst_lse = 0;
        int empty_ok = 1, guards = pbuf_guards_ok(&ws);
        row_ref ref = {0, malloc(j.v_head_dim * sizeof(double)), 1};
        for (size_t r = 0; r < j.rows; r++) {
            guards &= pbuf_guards_ok(&acc[r]);
            reference_row(&j, &rw[r], qs[r].wide, kw, vw, &ref);
            if (rw[r].sum == 0.0f) {   /* no key: exactly the empty state */
                empty_ok &= isinf(ref.lse) && rw[r].max == -INFINITY;
                for (size_t x = 0; x < j.v_head_dim; x++)
                    empty_ok &= acc[r].data[x] == 0.0f;
                continue;
            }
            /* Errors in units of this row's tolerance factor. */
            for (size_t x = 0; x < j.v_head_dim; x++) {
                const double e = fabs(acc[r].data[x] / rw[r].sum - ref.o[x]) / ref.spread;
                worst = isnan(e) ? INFINITY : fmax(worst, e);
            }
            const double lse = rw[r].max + log(rw[r].sum);
            const double e = isinf(ref.lse) ? INFINITY
                                             : fabs(lse - ref.lse) / fmax(1, fabs(ref.lse)) / ref.spread;
            worst_lse = isnan(e) ? INFINITY : fmax(worst_lse, e);
        }
        tally_check(T, worst <= TOL && worst_lse <= TOL_LSE_REL,
                    "%s: output error %.3g, lse %.3g (over each row's spread factor) against the "
                    "double reference", text, worst,
                    worst_lse);
        tally_check(T, empty_ok, "%s: a row that sees no key is not the empty state", text);
        tally_check(T, guards, "%s: wrote past its workspace or an acc row", text);

        free(ref.o);
        for (size_t r = 0; r < j.rows; r++) {
            stored_free(&qs[r]);
            pbuf_free(&acc[r]);
            free(masks[r]);
        }
        free(qs), free(acc), free(masks), free(rw), free(kw), free(vw), free(pages);
        stored_free(&ks), stored_free(&vs);
        pbuf_free(&ws);
    }
}

/* ---- the stage kernels ----------------------------------------------------------------- */

static void test_stages(const qkv_ctx *c, const qkv_ctx *parent, const qkv_ctx *scalar,
                        const char *isa, int cases)
{
    for (int k = 0; k < cases; k++) {
        const size_t m = urand(1, 70), n = urand(1, 140), d = job_dims[urand(0, 9)];
        const size_t ld = d + urand(0, 3), lds = n + urand(0, 3);
        float *q = malloc(m * ld * sizeof *q), *kk = malloc(n * ld * sizeof *kk);
        fill_unit(&rng, q, m * ld);
        fill_unit(&rng, kk, n * ld);
        pbuf s = pbuf_new(m * lds), r = pbuf_new(m * lds);
        if (OWN(c, parent, scores)) {
            c->scores(m, n, d, 0.3f, q, ld, kk, ld, s.data, lds);
            scalar->scores(m, n, d, 0.3f, q, ld, kk, ld, r.data, lds);
            const double worst = max_diff(s.data, r.data, m, lds, n);
            tally_check(T, worst <= 2 * TOL && pbuf_guards_ok(&s),
                        "scores_f32_%s: m %zu n %zu d %zu: %.3g from scalar", isa, m, n, d, worst);
        }
        if (OWN(c, parent, softmax)) {
            for (size_t i = 0; i < m * lds; i++)
                s.data[i] = r.data[i] = coin(5) ? -INFINITY : rng_float(&rng, -10, 10);
            c->softmax(m, n, s.data, lds);
            scalar->softmax(m, n, r.data, lds);
            const double worst = max_diff(s.data, r.data, m, lds, n);
            tally_check(T, worst <= TOL && pbuf_guards_ok(&s),
                        "softmax_f32_%s: m %zu n %zu: %.3g from scalar", isa, m, n, worst);
        }
        if (OWN(c, parent, weighted_sum)) {
            pbuf o = pbuf_new(m * ld), orf = pbuf_new(m * ld);
            for (size_t i = 0; i < m * lds; i++)
                s.data[i] = rng_float(&rng, 0, 1.0f / (float)n);
            c->weighted_sum(m, n, d, s.data, lds, kk, ld, o.data, ld);
            scalar->weighted_sum(m, n, d, s.data, lds, kk, ld, orf.data, ld);
            const double worst = max_diff(o.data, orf.data, m, ld, d);
            tally_check(T, worst <= TOL && pbuf_guards_ok(&o),
                        "weighted_sum_f32_%s: m %zu n %zu dv %zu: %.3g from scalar", isa, m, n, d,
                        worst);
            pbuf_free(&o), pbuf_free(&orf);
        }
        free(q), free(kk);
        pbuf_free(&s), pbuf_free(&r);
    }
}

/* An ISA's own entries (those its parent does not give it) against the
   scalar ones. */
static void test_isa(const qkv_ctx *c, const qkv_ctx *parent, const qkv_ctx *scalar,
                     const char *isa, int scale)
{
    T->isa = isa;
    T->fn = "kernels";
    const unsigned long before = T->passed + T->failed;
    if (parent) {
        test_stages(c, parent, scalar, isa, 6 * scale);
        test_converters(c, parent, scalar, isa, 3 * scale);
        if (OWN(c, parent, merge_states))
            test_merge(c, scalar, isa, 5 * scale);
    }
    /* The scalar driver too: against the double reference. Jobs whose rows
       see different key ranges (a tile's first key kmin > 0) and resumed
       jobs are met here, not in the API-level groups. */
    if (OWN(c, parent, attention))
        test_driver(c, scalar, isa, 30 * scale);
    printf("checkasm kernels: %s: %lu checks of its own entries\n", isa,
           T->passed + T->failed - before);
}

void test_kernels(tally *t, uint64_t seed, int scale, const char *only_isa, int native)
{
    T = t;
    rng = seed ^ 0x6b65726e656c73ull;   /* its own stream: the other groups' draws stay as they were */
    const qkv_ctx *scalar = qkv_ctx_for(QKV_ISA_SCALAR);
    for (int i = 0; i < QKV_ISA_COUNT; i++) {
        const qkv_ctx *c = qkv_ctx_for((qkv_isa)i);
        if (!c || (only_isa && strcmp(only_isa, qkv_isa_name((qkv_isa)i)) != 0))
            continue;
        const qkv_ctx *parent = i == QKV_ISA_SCALAR ? NULL : qkv_ctx_for(qkv_isa_parent((qkv_isa)i));
        test_isa(c, parent, scalar, qkv_isa_name((qkv_isa)i), scale);
    }
    /* The AVX-512 family on the C emulation of AVX-512 (and of AMX). */
    const isa_emu *emu;
    const size_t n_emu = native ? 0 : isa_emus(&emu);
    for (size_t e = 0; e < n_emu; e++)
        if (!only_isa || strcmp(only_isa, emu[e].name) == 0)
            test_isa(emu[e].ctx, emu[e].parent, scalar, emu[e].name, scale);
    T->isa = T->fn = "-";
}

int isa_rounds_bf16(int isa)
{
    const qkv_ctx *c = qkv_ctx_for((qkv_isa)isa);
    return c && c->rounds_bf16;
}

int isa_rounds_bf16_decode(int isa)
{
    const qkv_ctx *c = qkv_ctx_for((qkv_isa)isa);
    return c && c->rounds_bf16_decode;
}

int isa_f32_ancestor(int isa)
{
    /* Up the list, past ancestors this CPU cannot run (amx-emu's amx). */
    qkv_isa a = (qkv_isa)isa;
    while (a != QKV_ISA_SCALAR && (!qkv_ctx_for(a) || isa_rounds_bf16(a)))
        a = qkv_isa_parent(a);
    return a;
}

int isa_bf16_shape_off(int isa, size_t rows, const qkv_attention_desc *d)
{
    /* Its tiles' buffers are part of the workspace it asks for: with the
       same request in both modes, BF16 mode has no tiles for this shape
       (svebf16 at 2048 bits, where a 64-lane score tile leaves no room). */
    const qkv_ctx *c = qkv_ctx_for((qkv_isa)isa);
    if (!c || !c->rounds_bf16)
        return 0;
    qkv_attn_shape s = {d->head_dim, d->v_head_dim, d->q.dtype, d->k.dtype, d->v.dtype,
                        d->mask == QKV_MASK_ADDITIVE, QKV_FPMATH_BF16};
    const size_t bf = c->attention_ws(rows, &s, QKV_ATTN_WS_FLOATS);
    s.fpmath = QKV_FPMATH_STRICT;
    return bf == c->attention_ws(rows, &s, QKV_ATTN_WS_FLOATS);
}

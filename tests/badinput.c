/*
 * Bad input, complete: every row of the error table of API.md and the
 * header, plus the edge cases a user can hit with valid arguments (NaN/Inf
 * data, fully masked rows, huge scores, a window longer than the keys).
 * Each case runs for every supported ISA, through its qkv_funcs table and
 * through the dispatched entry points after qkv_isa_set, with outputs in
 * sentinel-filled padded buffers: on an error nothing may change, on
 * success nothing outside the output elements may change.
 *
 * docs/errors.md is the user-facing table of what this file asserts.
 */
#include <float.h>
#include <stdint.h>

#include "oracle.h"
#include "qkvtest.h"

static tally T;
static qkv_isa isas[QKV_ISA_COUNT];
static int nisa;
static unsigned long cases;       /* (case, ISA, path) triples run */

/* One way of calling the library: an ISA's table, or the dispatched entry
   points with the process-wide choice set to that ISA. */
typedef struct caller {
    qkv_isa isa;
    int dispatched;
    qkv_funcs f;
} caller;

static const qkv_funcs dispatched_funcs = {
    QKV_ISA_NONE, qkv_scores, qkv_softmax, qkv_weighted_sum, qkv_attention, qkv_convert,
    qkv_merge_states,
};

static int ncallers;
static caller callers[2 * QKV_ISA_COUNT];

static void make_callers(void)
{
    nisa = supported_isas(isas);
    for (int i = 0; i < nisa; i++) {
        callers[ncallers++] = (caller){isas[i], 0, *funcs_of(isas[i])};
        callers[ncallers++] = (caller){isas[i], 1, dispatched_funcs};
    }
}

/* Makes the call about to happen use the caller's ISA. */
static const qkv_funcs *use(const caller *c)
{
    if (c->dispatched && qkv_isa_set(c->isa) != QKV_OK)
        tally_check(&T, 0, "qkv_isa_set(%s) failed for a supported ISA", qkv_isa_name(c->isa));
    cases++;
    return &c->f;
}

static const char *path_name(const caller *c)
{
    return c->dispatched ? "dispatched" : "table";
}

/* ======================================================================== */
/* The three stages                                                          */
/* ======================================================================== */

enum { SM = 5, SN = 19, SD = 17 };   /* not multiples of any vector width */

typedef struct stage_case {
    const char *name;
    qkv_status want;
    size_t m, n, d, lda, ldb, ldc;  /* scores: ldq ldk lds; wsum: ldp ldv ldo */
    float scale;
    int null_a, null_b, null_c;     /* pass NULL for that pointer */
    int c_overlaps;                 /* 1: c = a, 2: c inside b */
} stage_case;

static void test_scores(void)
{
    const size_t big = SIZE_MAX / 2;
    const stage_case cs[] = {
        {"valid", QKV_OK, SM, SN, SD, SD + 3, SD + 1, SN + 2, 0.3f, 0, 0, 0, 0},
        {"valid, scale -0", QKV_OK, SM, SN, SD, SD, SD, SN, -0.0f, 0, 0, 0, 0},
        {"m = 0", QKV_ERR_ARG, 0, SN, SD, SD, SD, SN, 1, 0, 0, 0, 0},
        {"n = 0", QKV_ERR_ARG, SM, 0, SD, SD, SD, SN, 1, 0, 0, 0, 0},
        {"d = 0", QKV_ERR_ARG, SM, SN, 0, SD, SD, SN, 1, 0, 0, 0, 0},
        {"q NULL", QKV_ERR_ARG, SM, SN, SD, SD, SD, SN, 1, 1, 0, 0, 0},
        {"k NULL", QKV_ERR_ARG, SM, SN, SD, SD, SD, SN, 1, 0, 1, 0, 0},
        {"s NULL", QKV_ERR_ARG, SM, SN, SD, SD, SD, SN, 1, 0, 0, 1, 0},
        {"ldq < d", QKV_ERR_ARG, SM, SN, SD, SD - 1, SD, SN, 1, 0, 0, 0, 0},
        {"ldk < d", QKV_ERR_ARG, SM, SN, SD, SD, SD - 1, SN, 1, 0, 0, 0, 0},
        {"lds < n", QKV_ERR_ARG, SM, SN, SD, SD, SD, SN - 1, 1, 0, 0, 0, 0},
        {"scale NaN", QKV_ERR_ARG, SM, SN, SD, SD, SD, SN, NAN, 0, 0, 0, 0},
        {"scale < 0", QKV_ERR_ARG, SM, SN, SD, SD, SD, SN, -0.5f, 0, 0, 0, 0},
        {"scale +inf", QKV_ERR_ARG, SM, SN, SD, SD, SD, SN, INFINITY, 0, 0, 0, 0},
        {"scale -inf", QKV_ERR_ARG, SM, SN, SD, SD, SD, SN, -INFINITY, 0, 0, 0, 0},
        {"s = q", QKV_ERR_ARG, SM, SN, SD, SD, SD, SN, 1, 0, 0, 0, 1},
        {"s overlaps k", QKV_ERR_ARG, SM, SN, SD, SD, SD, SN, 1, 0, 0, 0, 2},
        /* (m-1)·ldq·4 wraps size_t: must be refused before any read. */
        {"ldq overflows", QKV_ERR_OVERFLOW, SM, SN, SD, SIZE_MAX, SD, SN, 1, 0, 0, 0, 0},
        {"ldk overflows", QKV_ERR_OVERFLOW, SM, SN, SD, SD, big, SN, 1, 0, 0, 0, 0},
        {"lds overflows", QKV_ERR_OVERFLOW, SM, SN, SD, SD, SD, big, 1, 0, 0, 0, 0},
        {"m·lds·4 overflows", QKV_ERR_OVERFLOW, big, SN, SD, SD, SD, SN, 1, 0, 0, 0, 0},
        /* Fits size_t but not ptrdiff_t: no pointer difference could span it. */
        {"span > PTRDIFF_MAX", QKV_ERR_OVERFLOW, SM, SN, SD, SD, SD, SIZE_MAX / 16, 1, 0, 0, 0, 0},
    };
    uint64_t seed = 1;
    pbuf q = pbuf_new(SM * (SD + 3)), k = pbuf_new(SN * (SD + 1) + 64);
    fill_unit(&seed, q.data, q.n);
    fill_unit(&seed, k.data, k.n);
    double ref[SM * SN];
    for (size_t c = 0; c < sizeof cs / sizeof cs[0]; c++) {
        const stage_case *t = &cs[c];
        const size_t mm = t->m < SM ? t->m : SM;
        const size_t ldc = t->ldc < SN + 2 ? t->ldc : SN + 2;
        pbuf s = pbuf_new(SM * (SN + 2));
        for (int ci = 0; ci < ncallers; ci++) {
            pbuf_reset(&s);
            float *dst = t->null_c ? NULL : t->c_overlaps == 1 ? q.data
                                          : t->c_overlaps == 2 ? k.data + 7 : s.data;
            const qkv_funcs *f = use(&callers[ci]);
            qkv_status st = f->scores(t->m, t->n, t->d, t->scale, t->null_a ? NULL : q.data,
                                      t->lda, t->null_b ? NULL : k.data, t->ldb, dst, t->ldc);
            tally_check(&T, st == t->want, "scores %s [%s %s]: status %s, want %s", t->name,
                        qkv_isa_name(callers[ci].isa), path_name(&callers[ci]),
                        qkv_status_string(st), qkv_status_string(t->want));
            if (t->want != QKV_OK) {
                tally_check(&T, pbuf_untouched(&s), "scores %s [%s %s]: output written on error",
                            t->name, qkv_isa_name(callers[ci].isa), path_name(&callers[ci]));
                continue;
            }
            oracle_scores(mm, t->n, t->d, t->scale, q.data, t->lda, k.data, t->ldb, ref);
            int bad = 0;
            unsigned char own[SM * (SN + 2)] = {0};
            for (size_t i = 0; i < mm; i++)
                for (size_t j = 0; j < t->n; j++) {
                    own[i * ldc + j] = 1;
                    /* Scores are not bounded by 1: the 1e-5 promise scales
                       with the dot product's magnitude (at most d·scale). */
                    bad += !close_to(s.data[i * ldc + j], ref[i * t->n + j],
                                     TOL * (1.0 + t->d * fabs(t->scale)));
                }
            tally_check(&T, !bad, "scores %s [%s %s]: %d values off the oracle", t->name,
                        qkv_isa_name(callers[ci].isa), path_name(&callers[ci]), bad);
            tally_check(&T, gaps_untouched(&s, own), "scores %s [%s %s]: stray write", t->name,
                        qkv_isa_name(callers[ci].isa), path_name(&callers[ci]));
        }
        pbuf_free(&s);
    }
    pbuf_free(&q);
    pbuf_free(&k);
}

static void test_softmax(void)
{
    const stage_case cs[] = {
        {"valid", QKV_OK, SM, SN, 0, 0, 0, SN + 3, 0, 0, 0, 0, 0},
        {"m = 0", QKV_ERR_ARG, 0, SN, 0, 0, 0, SN, 0, 0, 0, 0, 0},
        {"n = 0", QKV_ERR_ARG, SM, 0, 0, 0, 0, SN, 0, 0, 0, 0, 0},
        {"s NULL", QKV_ERR_ARG, SM, SN, 0, 0, 0, SN, 0, 0, 0, 1, 0},
        {"lds < n", QKV_ERR_ARG, SM, SN, 0, 0, 0, SN - 1, 0, 0, 0, 0, 0},
        {"lds overflows", QKV_ERR_OVERFLOW, SM, SN, 0, 0, 0, SIZE_MAX / 2, 0, 0, 0, 0, 0},
        {"m·lds·4 overflows", QKV_ERR_OVERFLOW, SIZE_MAX / 4, SN, 0, 0, 0, SN, 0, 0, 0, 0, 0},
    };
    uint64_t seed = 2;
    pbuf in = pbuf_new(SM * (SN + 3));
    fill_unit(&seed, in.data, in.n);
    for (size_t c = 0; c < sizeof cs / sizeof cs[0]; c++) {
        const stage_case *t = &cs[c];
        pbuf s = pbuf_new(SM * (SN + 3));
        for (int ci = 0; ci < ncallers; ci++) {
            memcpy(s.data, in.data, s.n * sizeof(float));
            pbuf before = pbuf_new(s.n);
            memcpy(before.base, s.base, (s.n + 2 * s.pad) * sizeof(float));
            const qkv_funcs *f = use(&callers[ci]);
            qkv_status st = f->softmax(t->m, t->n, t->null_c ? NULL : s.data, t->ldc);
            tally_check(&T, st == t->want, "softmax %s [%s %s]: status %s, want %s", t->name,
                        qkv_isa_name(callers[ci].isa), path_name(&callers[ci]),
                        qkv_status_string(st), qkv_status_string(t->want));
            if (t->want != QKV_OK)
                tally_check(&T, same_bits(before.base, s.base, s.n + 2 * s.pad),
                            "softmax %s [%s %s]: data changed on error", t->name,
                            qkv_isa_name(callers[ci].isa), path_name(&callers[ci]));
            pbuf_free(&before);
        }
        pbuf_free(&s);
    }
    pbuf_free(&in);
}

/* Rows with special values: what softmax promises for each (header). */
static void test_softmax_special(void)
{
    enum { N = 21 };   /* odd, so vector tails are exercised */
    const float F = 3e38f;
    struct row {
        const char *name;
        float v[3];    /* v[0] at j = 0, v[1] at j = 7, v[2] at j = N-1; the rest per `rest` */
        float rest;
        int want;      /* 0: finite, sums to 1; 1: all zeros; 2: all NaN */
    } rows[] = {
        {"finite", {0.5f, -0.25f, 1.0f}, 0.125f, 0},
        {"some -inf", {-INFINITY, 0.5f, -INFINITY}, 0.0f, 0},
        {"all -inf", {-INFINITY, -INFINITY, -INFINITY}, -INFINITY, 1},
        {"one NaN", {NAN, 0.5f, 0.0f}, 0.0f, 2},
        {"NaN last", {0.0f, 0.5f, NAN}, 0.0f, 2},
        {"one +inf", {0.0f, INFINITY, 0.0f}, 0.0f, 2},
        /* A NaN among -inf entries is still a NaN entry (the AVX2/AVX-512
           softmax once made such rows zeros; fixed in 188a162). */
        {"NaN with -inf", {-INFINITY, NAN, -INFINITY}, -INFINITY, 2},
        {"all NaN", {NAN, NAN, NAN}, NAN, 2},
        /* ±3e38: the max is subtracted first, so the row stays finite;
           -3e38 - 3e38 rounds to -inf and gets weight 0. */
        {"+-3e38", {F, -F, -F}, -F, 0},
        {"all -3e38", {-F, -F, -F}, -F, 0},
    };
    const size_t n = sizeof rows / sizeof rows[0];
    pbuf s = pbuf_new(n * N);
    pbuf in = pbuf_new(n * N);
    for (size_t r = 0; r < n; r++) {
        for (size_t j = 0; j < N; j++)
            in.data[r * N + j] = rows[r].rest;
        in.data[r * N] = rows[r].v[0];
        in.data[r * N + 7] = rows[r].v[1];
        in.data[r * N + N - 1] = rows[r].v[2];
    }
    double ref[N];
    for (int ci = 0; ci < ncallers; ci++) {
        const caller *c = &callers[ci];
        memcpy(s.data, in.data, in.n * sizeof(float));
        const qkv_funcs *f = use(c);
        tally_check(&T, f->softmax(n, N, s.data, N) == QKV_OK, "softmax special: status");
        tally_check(&T, pbuf_guards_ok(&s), "softmax special [%s %s]: stray write",
                    qkv_isa_name(c->isa), path_name(c));
        for (size_t r = 0; r < n; r++) {
            const float *o = s.data + r * N;
            int ok = 1;
            if (rows[r].want == 0) {
                oracle_softmax(1, N, in.data + r * N, N, ref);
                for (size_t j = 0; j < N; j++)
                    ok &= close_to(o[j], ref[j], TOL);   /* weights in [0,1]: 1e-5 absolute */
            } else {
                for (size_t j = 0; j < N; j++)
                    ok &= rows[r].want == 1 ? o[j] == 0.0f : isnan(o[j]);
            }
            tally_check(&T, ok, "softmax row \"%s\" [%s %s]: want %s, got %g %g %g", rows[r].name,
                        qkv_isa_name(c->isa), path_name(c),
                        rows[r].want == 0 ? "the oracle" : rows[r].want == 1 ? "zeros" : "NaN",
                        o[0], o[7], o[N - 1]);
        }
    }
    pbuf_free(&s);
    pbuf_free(&in);
}

static void test_weighted_sum(void)
{
    const size_t big = SIZE_MAX / 2;
    const stage_case cs[] = {
        {"valid", QKV_OK, SM, SN, SD, SN + 1, SD + 2, SD + 3, 0, 0, 0, 0, 0},
        {"m = 0", QKV_ERR_ARG, 0, SN, SD, SN, SD, SD, 0, 0, 0, 0, 0},
        {"n = 0", QKV_ERR_ARG, SM, 0, SD, SN, SD, SD, 0, 0, 0, 0, 0},
        {"dv = 0", QKV_ERR_ARG, SM, SN, 0, SN, SD, SD, 0, 0, 0, 0, 0},
        {"p NULL", QKV_ERR_ARG, SM, SN, SD, SN, SD, SD, 0, 1, 0, 0, 0},
        {"v NULL", QKV_ERR_ARG, SM, SN, SD, SN, SD, SD, 0, 0, 1, 0, 0},
        {"o NULL", QKV_ERR_ARG, SM, SN, SD, SN, SD, SD, 0, 0, 0, 1, 0},
        {"ldp < n", QKV_ERR_ARG, SM, SN, SD, SN - 1, SD, SD, 0, 0, 0, 0, 0},
        {"ldv < dv", QKV_ERR_ARG, SM, SN, SD, SN, SD - 1, SD, 0, 0, 0, 0, 0},
        {"ldo < dv", QKV_ERR_ARG, SM, SN, SD, SN, SD, SD - 1, 0, 0, 0, 0, 0},
        {"o = p", QKV_ERR_ARG, SM, SN, SD, SN, SD, SD, 0, 0, 0, 0, 1},
        {"o overlaps v", QKV_ERR_ARG, SM, SN, SD, SN, SD, SD, 0, 0, 0, 0, 2},
        {"ldp overflows", QKV_ERR_OVERFLOW, SM, SN, SD, SIZE_MAX, SD, SD, 0, 0, 0, 0, 0},
        {"ldv overflows", QKV_ERR_OVERFLOW, SM, SN, SD, SN, big, SD, 0, 0, 0, 0, 0},
        {"ldo overflows", QKV_ERR_OVERFLOW, SM, SN, SD, SN, SD, big, 0, 0, 0, 0, 0},
        {"n·ldv·4 overflows", QKV_ERR_OVERFLOW, SM, big, SD, big, SD, SD, 0, 0, 0, 0, 0},
    };
    uint64_t seed = 3;
    pbuf p = pbuf_new(SM * (SN + 1)), v = pbuf_new(SN * (SD + 2) + 64);
    fill_unit(&seed, v.data, v.n);
    for (size_t i = 0; i < p.n; i++)          /* weights: a row sums to about 1 */
        p.data[i] = (rng_unit(&seed) + 1.0f) / SN;
    double ref[SM * SD];
    for (size_t c = 0; c < sizeof cs / sizeof cs[0]; c++) {
        const stage_case *t = &cs[c];
        pbuf o = pbuf_new(SM * (SD + 3));
        for (int ci = 0; ci < ncallers; ci++) {
            pbuf_reset(&o);
            float *dst = t->null_c ? NULL : t->c_overlaps == 1 ? p.data
                                          : t->c_overlaps == 2 ? v.data + 5 : o.data;
            const qkv_funcs *f = use(&callers[ci]);
            qkv_status st = f->weighted_sum(t->m, t->n, t->d, t->null_a ? NULL : p.data, t->lda,
                                            t->null_b ? NULL : v.data, t->ldb, dst, t->ldc);
            tally_check(&T, st == t->want, "weighted_sum %s [%s %s]: status %s, want %s",
                        t->name, qkv_isa_name(callers[ci].isa), path_name(&callers[ci]),
                        qkv_status_string(st), qkv_status_string(t->want));
            if (t->want != QKV_OK) {
                tally_check(&T, pbuf_untouched(&o), "weighted_sum %s [%s]: output written",
                            t->name, qkv_isa_name(callers[ci].isa));
                continue;
            }
            oracle_weighted_sum(t->m, t->n, t->d, p.data, t->lda, v.data, t->ldb, ref);
            int bad = 0;
            unsigned char own[SM * (SD + 3)] = {0};
            for (size_t i = 0; i < t->m; i++)
                for (size_t cc = 0; cc < t->d; cc++) {
                    own[i * t->ldc + cc] = 1;
                    bad += !close_to(o.data[i * t->ldc + cc], ref[i * t->d + cc], TOL);
                }
            tally_check(&T, !bad, "weighted_sum %s [%s %s]: %d values off the oracle", t->name,
                        qkv_isa_name(callers[ci].isa), path_name(&callers[ci]), bad);
            tally_check(&T, gaps_untouched(&o, own), "weighted_sum %s [%s]: stray write",
                        t->name, qkv_isa_name(callers[ci].isa));
        }
        pbuf_free(&o);
    }
    pbuf_free(&p);
    pbuf_free(&v);
}

/* ======================================================================== */
/* Fused attention                                                           */
/* ======================================================================== */

/* A valid descriptor over padded, sentinel-guarded buffers. Strides leave
   gaps between rows, heads and batches so stray writes are caught. */
typedef struct fixture {
    qkv_attention_desc d;
    pbuf q, k, v, o, lse, mask, alibi, sinks;
    unsigned char *own;   /* elements of o that a call writes */
} fixture;

typedef struct shape {
    size_t batch, q_heads, kv_heads, q_len, kv_len, head_dim, v_head_dim;
} shape;

static void fx_layout(fixture *fx)
{
    qkv_attention_desc *d = &fx->d;
    free(fx->own);
    fx->own = calloc(fx->o.n, 1);
    tensor_mark(fx->own, d->batch, d->o.batch_stride, d->q_heads, d->o.head_stride, d->q_len,
                d->o.row_stride, d->v_head_dim);
}

static void fx_init(fixture *fx, shape s, uint64_t seed)
{
    memset(fx, 0, sizeof *fx);
    qkv_attention_desc *d = &fx->d;
    d->batch = s.batch;
    d->q_heads = s.q_heads;
    d->kv_heads = s.kv_heads;
    d->q_len = s.q_len;
    d->kv_len = s.kv_len;
    d->head_dim = s.head_dim;
    d->v_head_dim = s.v_head_dim;
    d->scale = qkv_default_scale(s.head_dim);
    /* q: [b][h][i][c] with gaps; k: [b][j][g][c] (the interleaved layout);
       v: [b][g][j][c]; o: [b][i][h][c] with gaps. */
    d->q.row_stride = s.head_dim + 1;
    d->q.head_stride = s.q_len * d->q.row_stride + 3;
    d->q.batch_stride = s.q_heads * d->q.head_stride + 2;
    d->k.head_stride = s.head_dim + 2;
    d->k.row_stride = s.kv_heads * d->k.head_stride;
    d->k.batch_stride = s.kv_len * d->k.row_stride + 1;
    d->v.row_stride = s.v_head_dim;
    d->v.head_stride = s.kv_len * s.v_head_dim;
    d->v.batch_stride = s.kv_heads * d->v.head_stride;
    d->o.head_stride = s.v_head_dim + 1;
    d->o.row_stride = s.q_heads * d->o.head_stride + 2;
    d->o.batch_stride = s.q_len * d->o.row_stride + 1;
    fx->q = pbuf_new(tensor_elems(s.batch, d->q.batch_stride, s.q_heads, d->q.head_stride,
                                  s.q_len, d->q.row_stride, s.head_dim));
    fx->k = pbuf_new(tensor_elems(s.batch, d->k.batch_stride, s.kv_heads, d->k.head_stride,
                                  s.kv_len, d->k.row_stride, s.head_dim));
    fx->v = pbuf_new(tensor_elems(s.batch, d->v.batch_stride, s.kv_heads, d->v.head_stride,
                                  s.kv_len, d->v.row_stride, s.v_head_dim));
    fx->o = pbuf_new(tensor_elems(s.batch, d->o.batch_stride, s.q_heads, d->o.head_stride,
                                  s.q_len, d->o.row_stride, s.v_head_dim));
    fx->lse = pbuf_new(s.batch * s.q_heads * s.q_len);
    /* The mask broadcasts over batch and is given per head. */
    fx->mask = pbuf_new(s.q_heads * s.q_len * (s.kv_len + 1));
    fx->alibi = pbuf_new(s.q_heads);
    fx->sinks = pbuf_new(s.q_heads);
    fill_unit(&seed, fx->q.data, fx->q.n);
    fill_unit(&seed, fx->k.data, fx->k.n);
    fill_unit(&seed, fx->v.data, fx->v.n);
    fill_unit(&seed, fx->mask.data, fx->mask.n);
    fill_unit(&seed, fx->alibi.data, fx->alibi.n);
    fill_unit(&seed, fx->sinks.data, fx->sinks.n);
    d->q.data = fx->q.data;
    d->k.data = fx->k.data;
    d->v.data = fx->v.data;
    d->o.data = fx->o.data;
    d->lse = fx->lse.data;
    d->mask_add.batch_stride = 0;
    d->mask_add.head_stride = s.q_len * (s.kv_len + 1);
    d->mask_add.row_stride = s.kv_len + 1;
    fx_layout(fx);
}

static void fx_free(fixture *fx)
{
    pbuf *all[] = {&fx->q, &fx->k, &fx->v, &fx->o, &fx->lse, &fx->mask, &fx->alibi, &fx->sinks};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        pbuf_free(all[i]);
    free(fx->own);
}

static void fx_reset_out(fixture *fx)
{
    pbuf_reset(&fx->o);
    pbuf_reset(&fx->lse);
}

static float *fx_out(const fixture *fx, size_t b, size_t h, size_t i)
{
    const qkv_attention_desc *d = &fx->d;
    return (float *)d->o.data + b * d->o.batch_stride + h * d->o.head_stride + i * d->o.row_stride;
}

/* ---- error cases -------------------------------------------------------- */

typedef void (*corrupt_fn)(fixture *fx);
typedef struct bad_case {
    const char *name;
    qkv_status want;
    corrupt_fn corrupt;
} bad_case;

#define BAD(name_, want_, body)                  \
    static void corrupt_##name_(fixture *fx)     \
    {                                            \
        qkv_attention_desc *d = &fx->d;          \
        (void)d;                                 \
        body;                                    \
    }
BAD(batch0, QKV_ERR_ARG, d->batch = 0)
BAD(qheads0, QKV_ERR_ARG, d->q_heads = 0)
BAD(kvheads0, QKV_ERR_ARG, d->kv_heads = 0)
BAD(qlen0, QKV_ERR_ARG, d->q_len = 0)
BAD(kvlen0, QKV_ERR_ARG, d->kv_len = 0)
BAD(hd0, QKV_ERR_ARG, d->head_dim = 0)
BAD(vhd0, QKV_ERR_ARG, d->v_head_dim = 0)
BAD(gqa, QKV_ERR_ARG, d->kv_heads = 3)              /* 4 % 3 != 0 */
BAD(kvmore, QKV_ERR_ARG, d->kv_heads = 8)           /* more KV heads than query heads */
BAD(qnull, QKV_ERR_ARG, d->q.data = NULL)
BAD(knull, QKV_ERR_ARG, d->k.data = NULL)
BAD(vnull, QKV_ERR_ARG, d->v.data = NULL)
BAD(onull, QKV_ERR_ARG, d->o.data = NULL)
BAD(qld, QKV_ERR_ARG, d->q.row_stride = d->head_dim - 1)
BAD(kld, QKV_ERR_ARG, d->k.row_stride = d->head_dim - 1)
BAD(vld, QKV_ERR_ARG, d->v.row_stride = d->v_head_dim - 1)
BAD(old, QKV_ERR_ARG, d->o.row_stride = d->v_head_dim - 1)
BAD(ohead_alias, QKV_ERR_ARG, d->o.head_stride = 0)  /* two heads write one row */
BAD(orow_alias, QKV_ERR_ARG, d->o.row_stride = d->o.head_stride) /* rows overlap heads */
BAD(scale_nan, QKV_ERR_ARG, d->scale = NAN)
BAD(scale_neg, QKV_ERR_ARG, d->scale = -1.0f)
BAD(scale_inf, QKV_ERR_ARG, d->scale = INFINITY)
BAD(scale_ninf, QKV_ERR_ARG, d->scale = -INFINITY)
BAD(cap_nan, QKV_ERR_ARG, d->softcap = NAN)
BAD(cap_neg, QKV_ERR_ARG, d->softcap = -30.0f)
BAD(cap_inf, QKV_ERR_ARG, d->softcap = INFINITY)
BAD(alibi_nan, QKV_ERR_ARG, d->alibi_slopes = fx->alibi.data; fx->alibi.data[1] = NAN)
BAD(alibi_inf, QKV_ERR_ARG, d->alibi_slopes = fx->alibi.data; fx->alibi.data[3] = -INFINITY)
BAD(sink_nan, QKV_ERR_ARG, d->sinks = fx->sinks.data; fx->sinks.data[0] = NAN)
BAD(sink_inf, QKV_ERR_ARG, d->sinks = fx->sinks.data; fx->sinks.data[2] = INFINITY)
BAD(mask_enum, QKV_ERR_ARG, d->mask = (qkv_mask_kind)7)
BAD(mask_enum_neg, QKV_ERR_ARG, d->mask = (qkv_mask_kind)-1)
BAD(add_nodata, QKV_ERR_ARG, d->mask = QKV_MASK_ADDITIVE)
BAD(none_data, QKV_ERR_ARG, d->mask_add.data = fx->mask.data)
BAD(causal_data, QKV_ERR_ARG, d->mask = QKV_MASK_CAUSAL; d->mask_add.data = fx->mask.data)
BAD(mask_ld, QKV_ERR_ARG, d->mask = QKV_MASK_ADDITIVE; d->mask_add.data = fx->mask.data;
    d->mask_add.row_stride = d->kv_len - 1)
BAD(pool_nohook, QKV_ERR_ARG, d->parallel_for = NULL; d->pool = (void *)fx)
BAD(fpmath_enum, QKV_ERR_ARG, d->fpmath = (qkv_fpmath)2)
BAD(fpmath_enum_neg, QKV_ERR_ARG, d->fpmath = (qkv_fpmath)-1)
/* Q and O are never block-quantized; K/V blocks need whole-block rows and
   strides (the fixture's strides are not multiples of 32). */
BAD(qdtype_q8, QKV_ERR_UNSUPPORTED, d->q.dtype = QKV_Q8_0)
BAD(odtype_q4, QKV_ERR_UNSUPPORTED, d->o.dtype = QKV_Q4_0)
BAD(kdtype_q8_layout, QKV_ERR_ARG, d->k.dtype = QKV_Q8_0)
BAD(vdtype_q4_layout, QKV_ERR_ARG, d->v.dtype = QKV_Q4_0)
BAD(dtype_enum, QKV_ERR_ARG, d->k.dtype = (qkv_dtype)9)
BAD(odtype_enum, QKV_ERR_ARG, d->o.dtype = QKV_DTYPE_COUNT)
BAD(o_is_q, QKV_ERR_ARG, d->o.data = fx->q.data)
BAD(o_in_k, QKV_ERR_ARG, d->o.data = fx->k.data + fx->k.n / 2)
BAD(o_in_v, QKV_ERR_ARG, d->o.data = fx->v.data + fx->v.n - 1)
BAD(o_over_mask, QKV_ERR_ARG, d->mask = QKV_MASK_ADDITIVE; d->mask_add.data = fx->o.data + 3)
BAD(o_over_alibi, QKV_ERR_ARG, d->alibi_slopes = fx->o.data)
BAD(o_over_sinks, QKV_ERR_ARG, d->sinks = fx->o.data + 1)
BAD(lse_in_o, QKV_ERR_ARG, d->lse = fx->o.data + 2)
BAD(lse_in_q, QKV_ERR_ARG, d->lse = fx->q.data)
BAD(lse_in_v, QKV_ERR_ARG, d->lse = fx->v.data + 1)
/* Strides and sizes whose products wrap size_t: refused before any read. */
BAD(qbs_ovf, QKV_ERR_OVERFLOW, d->q.batch_stride = SIZE_MAX / 2)
BAD(khs_ovf, QKV_ERR_OVERFLOW, d->k.head_stride = SIZE_MAX / 3)
BAD(vrs_ovf, QKV_ERR_OVERFLOW, d->v.row_stride = SIZE_MAX)
BAD(ors_ovf, QKV_ERR_OVERFLOW, d->o.row_stride = SIZE_MAX / 4 + 1)
BAD(mask_ovf, QKV_ERR_OVERFLOW, d->mask = QKV_MASK_ADDITIVE; d->mask_add.data = fx->mask.data;
    d->mask_add.head_stride = SIZE_MAX / 2)
BAD(sum_ovf, QKV_ERR_OVERFLOW, d->q.batch_stride = SIZE_MAX / 4; d->q.head_stride = SIZE_MAX / 4)
BAD(ptrdiff_ovf, QKV_ERR_OVERFLOW, d->k.batch_stride = SIZE_MAX / 8)  /* > PTRDIFF_MAX bytes */
BAD(qlen_ovf, QKV_ERR_OVERFLOW, d->q_len = SIZE_MAX / 2)
BAD(batch_ovf, QKV_ERR_OVERFLOW, d->batch = SIZE_MAX; d->q.batch_stride = 1)
BAD(kvlen_ovf, QKV_ERR_OVERFLOW, d->kv_len = SIZE_MAX / 2 + 7)
BAD(hd_ovf, QKV_ERR_OVERFLOW, d->head_dim = SIZE_MAX / 2; d->q.row_stride = SIZE_MAX / 2;
    d->k.row_stride = SIZE_MAX / 2)
#undef BAD

#define ROW(name_, want_) {#name_, want_, corrupt_##name_}
static const bad_case bad_cases[] = {
    ROW(batch0, QKV_ERR_ARG), ROW(qheads0, QKV_ERR_ARG), ROW(kvheads0, QKV_ERR_ARG),
    ROW(qlen0, QKV_ERR_ARG), ROW(kvlen0, QKV_ERR_ARG), ROW(hd0, QKV_ERR_ARG),
    ROW(vhd0, QKV_ERR_ARG), ROW(gqa, QKV_ERR_ARG), ROW(kvmore, QKV_ERR_ARG),
    ROW(qnull, QKV_ERR_ARG), ROW(knull, QKV_ERR_ARG), ROW(vnull, QKV_ERR_ARG),
    ROW(onull, QKV_ERR_ARG), ROW(qld, QKV_ERR_ARG), ROW(kld, QKV_ERR_ARG),
    ROW(vld, QKV_ERR_ARG), ROW(old, QKV_ERR_ARG), ROW(ohead_alias, QKV_ERR_ARG),
    ROW(orow_alias, QKV_ERR_ARG), ROW(scale_nan, QKV_ERR_ARG), ROW(scale_neg, QKV_ERR_ARG),
    ROW(scale_inf, QKV_ERR_ARG), ROW(scale_ninf, QKV_ERR_ARG), ROW(cap_nan, QKV_ERR_ARG),
    ROW(cap_neg, QKV_ERR_ARG), ROW(cap_inf, QKV_ERR_ARG), ROW(alibi_nan, QKV_ERR_ARG),
    ROW(alibi_inf, QKV_ERR_ARG), ROW(sink_nan, QKV_ERR_ARG), ROW(sink_inf, QKV_ERR_ARG),
    ROW(mask_enum, QKV_ERR_ARG), ROW(mask_enum_neg, QKV_ERR_ARG), ROW(add_nodata, QKV_ERR_ARG),
    ROW(none_data, QKV_ERR_ARG), ROW(causal_data, QKV_ERR_ARG), ROW(mask_ld, QKV_ERR_ARG),
    ROW(pool_nohook, QKV_ERR_ARG), ROW(fpmath_enum, QKV_ERR_ARG), ROW(fpmath_enum_neg, QKV_ERR_ARG),
    ROW(qdtype_q8, QKV_ERR_UNSUPPORTED),
    ROW(odtype_q4, QKV_ERR_UNSUPPORTED), ROW(kdtype_q8_layout, QKV_ERR_ARG),
    ROW(vdtype_q4_layout, QKV_ERR_ARG), ROW(dtype_enum, QKV_ERR_ARG), ROW(odtype_enum, QKV_ERR_ARG),
    ROW(o_is_q, QKV_ERR_ARG), ROW(o_in_k, QKV_ERR_ARG), ROW(o_in_v, QKV_ERR_ARG),
    ROW(o_over_mask, QKV_ERR_ARG), ROW(o_over_alibi, QKV_ERR_ARG),
    ROW(o_over_sinks, QKV_ERR_ARG), ROW(lse_in_o, QKV_ERR_ARG), ROW(lse_in_q, QKV_ERR_ARG),
    ROW(lse_in_v, QKV_ERR_ARG), ROW(qbs_ovf, QKV_ERR_OVERFLOW), ROW(khs_ovf, QKV_ERR_OVERFLOW),
    ROW(vrs_ovf, QKV_ERR_OVERFLOW), ROW(ors_ovf, QKV_ERR_OVERFLOW),
    ROW(mask_ovf, QKV_ERR_OVERFLOW), ROW(sum_ovf, QKV_ERR_OVERFLOW),
    ROW(ptrdiff_ovf, QKV_ERR_OVERFLOW), ROW(qlen_ovf, QKV_ERR_OVERFLOW),
    ROW(batch_ovf, QKV_ERR_OVERFLOW), ROW(kvlen_ovf, QKV_ERR_OVERFLOW),
    ROW(hd_ovf, QKV_ERR_OVERFLOW),
};
#undef ROW

/* Snapshot of every input buffer, to prove an error also reads-only. */
static int inputs_same(const fixture *a, const fixture *b)
{
    return same_bits(a->q.base, b->q.base, a->q.n + 2 * a->q.pad) &&
           same_bits(a->k.base, b->k.base, a->k.n + 2 * a->k.pad) &&
           same_bits(a->v.base, b->v.base, a->v.n + 2 * a->v.pad);
}

static void test_attention_errors(void)
{
    const shape s = {2, 4, 2, 5, 7, 9, 6};
    const size_t n = sizeof bad_cases / sizeof bad_cases[0];
    qkv_pool *pool = NULL;
    qkv_pool_create(2, &pool);
    for (size_t c = 0; c < n; c++) {
        for (int hook = 0; hook < 2; hook++) {
            for (int ci = 0; ci < ncallers; ci++) {
                fixture fx, ref;
                fx_init(&fx, s, 100 + c);
                fx_init(&ref, s, 100 + c);
                if (hook) {
                    fx.d.parallel_for = qkv_pool_parallel_for;
                    fx.d.pool = pool;
                }
                bad_cases[c].corrupt(&fx);
                const qkv_funcs *f = use(&callers[ci]);
                const qkv_status st = f->attention(&fx.d);
                tally_check(&T, st == bad_cases[c].want,
                            "attention %s [%s %s%s]: status %s, want %s", bad_cases[c].name,
                            qkv_isa_name(callers[ci].isa), path_name(&callers[ci]),
                            hook ? " hook" : "", qkv_status_string(st),
                            qkv_status_string(bad_cases[c].want));
                tally_check(&T, pbuf_untouched(&fx.o) && pbuf_untouched(&fx.lse),
                            "attention %s [%s %s]: output written on error", bad_cases[c].name,
                            qkv_isa_name(callers[ci].isa), path_name(&callers[ci]));
                /* Also when o or lse overlap an input: nothing is written. */
                tally_check(&T, inputs_same(&fx, &ref), "attention %s [%s]: inputs changed",
                            bad_cases[c].name, qkv_isa_name(callers[ci].isa));
                fx_free(&fx);
                fx_free(&ref);
            }
        }
    }
    /* A NULL descriptor. */
    for (int ci = 0; ci < ncallers; ci++)
        tally_check(&T, use(&callers[ci])->attention(NULL) == QKV_ERR_ARG,
                    "attention(NULL) [%s]", qkv_isa_name(callers[ci].isa));
    qkv_pool_destroy(pool);
}

/* ---- valid edge cases --------------------------------------------------- */

/* Runs the fixture on a caller; checks status OK and no stray writes. */
static int run_ok(fixture *fx, const caller *c, const char *what)
{
    fx_reset_out(fx);
    qkv_status st = use(c)->attention(&fx->d);
    int ok = tally_check(&T, st == QKV_OK, "%s [%s %s]: status %s", what, qkv_isa_name(c->isa),
                         path_name(c), qkv_status_string(st));
    const size_t rows = fx->d.batch * fx->d.q_heads * fx->d.q_len;
    int lse_ok = pbuf_guards_ok(&fx->lse);
    if (!fx->d.lse)
        lse_ok = pbuf_untouched(&fx->lse);
    for (size_t r = 0; fx->d.lse && r < rows; r++)
        lse_ok &= !is_sentinel(fx->lse.data[r]);
    ok &= tally_check(&T, gaps_untouched(&fx->o, fx->own) && lse_ok,
                      "%s [%s %s]: stray write or lse not written", what, qkv_isa_name(c->isa),
                      path_name(c));
    return ok;
}

/* Output and lse against the oracle, row by row. Rows whose index is set in
   `skip` are left to the caller. Returns the number of bad rows. */
static int compare_oracle_of(const fixture *fx, const qkv_attention_desc *od,
                             const unsigned char *skip, const char *what, const caller *c)
{
    const qkv_attention_desc *d = &fx->d;
    const size_t rows = d->batch * d->q_heads * d->q_len, dv = d->v_head_dim;
    double *ro = malloc(rows * dv * sizeof *ro), *rl = malloc(rows * sizeof *rl);
    oracle_attention(od, ro, rl);
    int bad = 0;
    for (size_t b = 0; b < d->batch; b++)
        for (size_t h = 0; h < d->q_heads; h++)
            for (size_t i = 0; i < d->q_len; i++) {
                const size_t r = (b * d->q_heads + h) * d->q_len + i;
                if (skip && skip[r])
                    continue;
                const float *o = fx_out(fx, b, h, i);
                int ok = 1;
                for (size_t cc = 0; cc < dv; cc++)
                    ok &= close_to(o[cc], ro[r * dv + cc], TOL);
                /* lse is a log-sum-exp: its error scales with its size. */
                if (d->lse)
                    ok &= close_to(d->lse[r], rl[r], TOL_LSE_REL * fmax(1.0, fabs(rl[r])));
                if (!ok && bad++ < 3)
                    tally_check(&T, 0, "%s [%s %s]: row b%zu h%zu i%zu o[0]=%g want %g lse=%g want %g",
                                what, qkv_isa_name(c->isa), path_name(c), b, h, i, o[0], ro[r * dv],
                                d->lse ? d->lse[r] : 0.0, rl[r]);
            }
    tally_check(&T, !bad, "%s [%s %s]: %d rows off the oracle", what, qkv_isa_name(c->isa),
                path_name(c), bad);
    free(ro);
    free(rl);
    return bad;
}

static int compare_oracle(const fixture *fx, const unsigned char *skip, const char *what,
                          const caller *c)
{
    return compare_oracle_of(fx, &fx->d, skip, what, c);
}

/* Valid descriptors across the features, against the oracle. */
static void test_attention_valid(void)
{
    const shape shapes[] = {
        {1, 1, 1, 1, 1, 1, 1},       /* everything 1 */
        {2, 4, 2, 5, 7, 9, 6},       /* GQA 2, head_dim != v_head_dim */
        {1, 6, 1, 3, 33, 17, 19},    /* MQA, odd sizes */
        {1, 2, 2, 9, 4, 8, 8},       /* q_len > kv_len: rows before the keys */
        {1, 8, 2, 1, 70, 16, 16},    /* decode, GQA 4 */
    };
    qkv_pool *pool = NULL;
    qkv_pool_create(3, &pool);
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        for (unsigned feat = 0; feat < 32; feat++) {
            fixture fx;
            fx_init(&fx, shapes[si], 1000 + si * 64 + feat);
            qkv_attention_desc *d = &fx.d;
            /* bit 0..1: mask kind; 2: window; 3: softcap and ALiBi; 4: sinks and hook */
            d->mask = (qkv_mask_kind)(feat & 3) == 3 ? QKV_MASK_NONE : (qkv_mask_kind)(feat & 3);
            if (d->mask == QKV_MASK_ADDITIVE) {
                d->mask_add.data = fx.mask.data;
                fx.mask.data[0] = -INFINITY;      /* a hidden key */
            }
            if (feat & 4)
                d->window = 3;
            if (feat & 8) {
                d->softcap = 0.7f;               /* below typical scores: tanh bends */
                d->alibi_slopes = fx.alibi.data;
            }
            if (feat & 16) {
                d->sinks = fx.sinks.data;
                d->parallel_for = qkv_pool_parallel_for;
                d->pool = pool;
            }
            if ((feat & 3) == 3)
                d->lse = NULL;                   /* lse is optional */
            char what[96];
            snprintf(what, sizeof what, "attention valid shape %zu features %u", si, feat);
            for (int ci = 0; ci < ncallers; ci++)
                if (run_ok(&fx, &callers[ci], what))
                    compare_oracle(&fx, NULL, what, &callers[ci]);
            fx_free(&fx);
        }
    }
    qkv_pool_destroy(pool);
}

/* A window at least as long as the keys hides nothing: the result must be
   bit-identical to no window at all, whatever the window's size. */
static void test_window_large(void)
{
    const shape s = {1, 2, 1, 6, 11, 8, 5};
    /* Windows >= 2^63 once turned negative in a cast to ptrdiff_t (fixed;
       kept as a regression). */
    static const size_t windows[] = {11, 12, 100, SIZE_MAX / 4, (size_t)PTRDIFF_MAX,
                                     (size_t)PTRDIFF_MAX + 1, SIZE_MAX - 1, SIZE_MAX};
    const size_t nwin = sizeof windows / sizeof windows[0];
    fixture fx;
    fx_init(&fx, s, 77);
    const size_t no = fx.o.n, nl = fx.lse.n;
    float *want_o = malloc(no * sizeof(float)), *want_l = malloc(nl * sizeof(float));
    for (int causal = 0; causal < 2; causal++) {
        fx.d.mask = causal ? QKV_MASK_CAUSAL : QKV_MASK_NONE;
        for (int ci = 0; ci < ncallers; ci++) {
            fx.d.window = 0;
            run_ok(&fx, &callers[ci], "window 0");
            memcpy(want_o, fx.o.data, no * sizeof(float));
            memcpy(want_l, fx.lse.data, nl * sizeof(float));
            for (size_t w = 0; w < nwin; w++) {
                fx.d.window = windows[w];
                char what[80];
                snprintf(what, sizeof what, "window %zu (kv_len 11, %s)", windows[w],
                         causal ? "causal" : "no mask");
                run_ok(&fx, &callers[ci], what);
                tally_check(&T, same_bits(fx.o.data, want_o, no) && same_bits(fx.lse.data, want_l, nl),
                            "%s [%s %s]: differs from no window (o[0] %g vs %g)", what,
                            qkv_isa_name(callers[ci].isa), path_name(&callers[ci]),
                            fx.o.data[0], want_o[0]);
            }
        }
    }
    free(want_o);
    free(want_l);
    fx_free(&fx);
}

/* Rows that see no key: zeros and lse = -inf; with a sink, zeros and
   lse = the sink (the sink is the only term of the denominator). */
static void test_all_masked(void)
{
    const shape s = {2, 2, 2, 6, 3, 5, 7};   /* q_len > kv_len: the first 3 rows see nothing */
    for (int variant = 0; variant < 4; variant++) {
        fixture fx;
        fx_init(&fx, s, 300 + variant);
        qkv_attention_desc *d = &fx.d;
        const int sinks = variant & 1, additive = variant & 2;
        if (sinks)
            d->sinks = fx.sinks.data;
        unsigned char *hidden = calloc(d->batch * d->q_heads * d->q_len, 1);
        if (additive) {
            /* An all -inf mask row hides every key of that row (row 1 and 4
               of each head; the mask broadcasts over batch). */
            d->mask = QKV_MASK_ADDITIVE;
            d->mask_add.data = fx.mask.data;
            for (size_t h = 0; h < d->q_heads; h++)
                for (size_t i = 1; i < d->q_len; i += 3)
                    for (size_t j = 0; j < d->kv_len; j++)
                        fx.mask.data[h * d->mask_add.head_stride + i * d->mask_add.row_stride + j] =
                            -INFINITY;
        } else {
            d->mask = QKV_MASK_CAUSAL;  /* rows i with i + kv_len - q_len < 0 */
        }
        for (size_t b = 0; b < d->batch; b++)
            for (size_t h = 0; h < d->q_heads; h++)
                for (size_t i = 0; i < d->q_len; i++)
                    hidden[(b * d->q_heads + h) * d->q_len + i] =
                        additive ? i % 3 == 1 : i + d->kv_len < d->q_len;
        char what[64];
        snprintf(what, sizeof what, "all-masked rows (%s%s)", additive ? "additive" : "causal",
                 sinks ? ", sinks" : "");
        for (int ci = 0; ci < ncallers; ci++) {
            if (!run_ok(&fx, &callers[ci], what))
                continue;
            int bad = 0;
            for (size_t b = 0; b < d->batch; b++)
                for (size_t h = 0; h < d->q_heads; h++)
                    for (size_t i = 0; i < d->q_len; i++) {
                        const size_t r = (b * d->q_heads + h) * d->q_len + i;
                        if (!hidden[r])
                            continue;
                        const float *o = fx_out(&fx, b, h, i);
                        for (size_t c = 0; c < d->v_head_dim; c++)
                            bad += o[c] != 0.0f;
                        /* Exact: lse = sink + log(1) with nothing else summed. */
                        bad += sinks ? d->lse[r] != fx.sinks.data[h] : d->lse[r] != -INFINITY;
                    }
            tally_check(&T, !bad, "%s [%s %s]: %d wrong values in hidden rows", what,
                        qkv_isa_name(callers[ci].isa), path_name(&callers[ci]), bad);
            compare_oracle(&fx, hidden, what, &callers[ci]);
        }
        free(hidden);
        fx_free(&fx);
    }
}

/* NaN or Inf in one place of Q, K or V: the rows that use it become NaN
   (V: that column non-finite), every other row is untouched by it. */
typedef enum { IN_Q, IN_K, IN_V } where;

/* Poisons batch 1, query head 2 (KV head 1), row/key 3, column 0 with
   `put`, and shapes the data around it as a poison `x` needs it. */
static void poison(fixture *fx, where w, float put, float x)
{
    qkv_attention_desc *d = &fx->d;
    const size_t b0 = 1, h0 = 2, g0 = 1, at = 3;
    float *qrow = (float *)d->q.data + b0 * d->q.batch_stride + h0 * d->q.head_stride;
    float *krow = (float *)d->k.data + b0 * d->k.batch_stride + g0 * d->k.head_stride;
    float *vrow = (float *)d->v.data + b0 * d->v.batch_stride + g0 * d->v.head_stride;
    if (w == IN_Q) {
        qrow[at * d->q.row_stride] = put;
        /* With +-inf, make the dot product +inf for sure: every key of that
           head gets a first entry of the same sign as x. */
        for (size_t j = 0; j < d->kv_len; j++)
            krow[j * d->k.row_stride] = x < 0 ? -0.5f : 0.5f;
    } else if (w == IN_K) {
        krow[at * d->k.row_stride] = put;
        for (size_t h = 2; h < 4; h++)
            for (size_t i = 0; i < d->q_len; i++)
                ((float *)d->q.data)[b0 * d->q.batch_stride + h * d->q.head_stride +
                                     i * d->q.row_stride] = x < 0 ? -0.5f : 0.5f;
    } else {
        vrow[at * d->v.row_stride] = put;
    }
}

static void test_nonfinite(void)
{
    const shape s = {2, 4, 2, 5, 5, 6, 4};   /* q_len == kv_len, causal: row i sees keys <= i */
    const float specials[] = {NAN, INFINITY, -INFINITY};
    for (int w = IN_Q; w <= IN_V; w++) {
        for (size_t sp = 0; sp < 3; sp++) {
            for (int hook = 0; hook < 2; hook++) {
                fixture fx;
                fx_init(&fx, s, 500 + w * 8 + sp);
                qkv_attention_desc *d = &fx.d;
                d->mask = QKV_MASK_CAUSAL;
                qkv_pool *pool = NULL;
                if (hook) {
                    qkv_pool_create(2, &pool);
                    d->parallel_for = qkv_pool_parallel_for;
                    d->pool = pool;
                }
                const float x = specials[sp];
                const size_t b0 = 1, h0 = 2, at = 3;   /* where poison() puts x */
                /* The oracle multiplies a hidden key's weight 0 by its V
                   row, so a NaN there would reach rows that never see it:
                   the unaffected rows are compared with the oracle of a
                   clean copy instead (they do not depend on the poison). */
                fixture clean;
                fx_init(&clean, s, 500 + w * 8 + sp);
                clean.d.mask = QKV_MASK_CAUSAL;
                poison(&fx, (where)w, x, x);
                poison(&clean, (where)w, 0.0f, x);
                /* Affected rows: batch 1, heads using KV head 1 (2 and 3),
                   rows that see key 3 (i >= 3); for Q only head 2 row 3. */
                unsigned char *hit = calloc(d->batch * d->q_heads * d->q_len, 1);
                for (size_t h = 2; h < 4; h++)
                    for (size_t i = 0; i < d->q_len; i++)
                        hit[(b0 * d->q_heads + h) * d->q_len + i] =
                            w == IN_Q ? h == h0 && i == at : i >= at;
                char what[64];
                snprintf(what, sizeof what, "%g in %s%s", x, w == IN_Q ? "Q" : w == IN_K ? "K" : "V",
                         hook ? " (pool)" : "");
                for (int ci = 0; ci < ncallers; ci++) {
                    if (!run_ok(&fx, &callers[ci], what))
                        continue;
                    int bad = 0;
                    for (size_t h = 0; h < d->q_heads; h++)
                        for (size_t i = 0; i < d->q_len; i++) {
                            const size_t r = (b0 * d->q_heads + h) * d->q_len + i;
                            if (!hit[r])
                                continue;
                            const float *o = fx_out(&fx, b0, h, i);
                            if (w == IN_V) {
                                /* x·w for a weight in (0, 1]: the column becomes
                                   non-finite (NaN for NaN); other columns stay finite. */
                                bad += isnan(x) ? !isnan(o[0]) : isfinite(o[0]);
                                for (size_t c = 1; c < d->v_head_dim; c++)
                                    bad += !isfinite(o[c]);
                            } else {
                                /* A NaN or +inf score: the whole row and its lse are NaN. */
                                for (size_t c = 0; c < d->v_head_dim; c++)
                                    bad += !isnan(o[c]);
                                bad += !isnan(d->lse[r]);
                            }
                        }
                    tally_check(&T, !bad, "%s [%s %s]: %d wrong values in affected rows", what,
                                qkv_isa_name(callers[ci].isa), path_name(&callers[ci]), bad);
                    /* Rows that do not see the poisoned key match the
                       oracle: a non-finite V must not reach them through a
                       weight of 0 (0 · NaN is NaN; the AVX2/AVX-512 kernel
                       once did that, fixed in 7016319). */
                    compare_oracle_of(&fx, &clean.d, hit, what, &callers[ci]);
                }
                free(hit);
                fx_free(&fx);
                fx_free(&clean);
                qkv_pool_destroy(pool);
            }
        }
    }
}

/* Q, K and V stored as f16 or bf16 behave exactly as the same values given
   as f32 (docs/errors.md): widened exactly, nothing flushed. Each holds
   subnormals of its dtype, signed zeros, and now and then ±Inf or NaN;
   subnormal Q values meet large K values, so that a flush to zero would
   move the scores by far more than the tolerance. The f32 call on the
   widened values is the reference: NaN and ±Inf where it has them, finite
   values within TOL (both runs are the same arithmetic; only how a tile
   of V is chunked may move the last bits). Prefill (q_len 70) and decode
   (q_len 1, GQA 4) shapes, every caller. */
static void test_stored_as_f32(void)
{
    const size_t shapes[2][2] = {{70, 90}, {1, 300}};   /* q_len, kv_len */
    for (int dt = QKV_F16; dt <= QKV_BF16; dt++) {
        for (int sh = 0; sh < 2; sh++) {
            for (int special = 0; special < 2; special++) {
                const size_t hq = 4, hkv = sh ? 1 : 4, ql = shapes[sh][0], kl = shapes[sh][1];
                const size_t d = 40, nq = hq * ql * d, nk = hkv * kl * d;
                uint64_t seed = 77 + (uint64_t)(dt * 4 + sh * 2 + special);
                float *q = new_unit_floats(&seed, nq), *k = new_unit_floats(&seed, nk);
                float *v = new_unit_floats(&seed, nk);
                /* Subnormals of the dtype in Q, large values in K. */
                const float sub = dt == QKV_F16 ? 0x1p-22f : 0x1p-130f;
                const float big = dt == QKV_F16 ? 32768.0f : 0x1p120f;
                /* Column c of Q and K: subnormal against large (c % 4 == 0)
                   or large against subnormal (c % 4 == 1), so that both the
                   widened Q and the widened K must keep their subnormals. */
                for (size_t i = 0; i < nq; i++) {
                    const float sign = (i / d) % 2 ? -1.0f : 1.0f;
                    if (i % d % 4 == 0)
                        q[i] = sign * sub * (float)(1 + i % 3);
                    else if (i % d % 4 == 1)
                        q[i] = sign * big * (0.5f + 0.25f * (float)(i % 3));
                }
                for (size_t i = 0; i < nk; i++) {
                    const float sign = (i / d) % 3 ? -1.0f : 1.0f;
                    if (i % d % 4 == 0)
                        k[i] = sign * big * 0.25f * (float)(1 + i % 2);
                    else if (i % d % 4 == 1)
                        k[i] = sign * sub * (float)(1 + i % 3);
                }
                for (size_t i = 1; i < nk; i += 7)
                    v[i] = i & 16 ? -0.0f : 0.0f;
                if (special) {
                    k[nk / 3] = NAN;
                    v[nk / 2] = INFINITY;
                    v[nk / 2 + 1] = -INFINITY;
                    q[nq / 4] = -INFINITY;
                }
                uint16_t *qs = malloc(nq * 2), *ks = malloc(nk * 2), *vs = malloc(nk * 2);
                const qkv_funcs *sc = funcs_of(QKV_ISA_SCALAR);
                sc->convert(nq, q, QKV_F32, qs, (qkv_dtype)dt);
                sc->convert(nk, k, QKV_F32, ks, (qkv_dtype)dt);
                sc->convert(nk, v, QKV_F32, vs, (qkv_dtype)dt);
                sc->convert(nq, qs, (qkv_dtype)dt, q, QKV_F32);   /* the values as stored */
                sc->convert(nk, ks, (qkv_dtype)dt, k, QKV_F32);
                sc->convert(nk, vs, (qkv_dtype)dt, v, QKV_F32);
                float *o16 = malloc(nq * sizeof *o16), *o32 = malloc(nq * sizeof *o32);
                qkv_attention_desc de = {0};
                de.batch = 1, de.q_heads = hq, de.kv_heads = hkv, de.q_len = ql, de.kv_len = kl;
                de.head_dim = de.v_head_dim = d;
                de.scale = 1.0f / 64;
                de.mask = sh ? QKV_MASK_NONE : QKV_MASK_CAUSAL;
                for (int ci = 0; ci < ncallers; ci++) {
                    char what[80];
                    snprintf(what, sizeof what, "%s Q/K/V %s%s", dt == QKV_F16 ? "f16" : "bf16",
                             sh ? "decode" : "prefill", special ? " with NaN and Inf" : "");
                    de.q = (qkv_tensor){q, QKV_F32, 0, ql * d, d};
                    de.k = (qkv_tensor){k, QKV_F32, 0, kl * d, d};
                    de.v = (qkv_tensor){v, QKV_F32, 0, kl * d, d};
                    de.o = (qkv_out_tensor){o32, 0, ql * d, d, QKV_F32};
                    const qkv_status s32 = use(&callers[ci])->attention(&de);
                    de.q = (qkv_tensor){qs, (qkv_dtype)dt, 0, ql * d, d};
                    de.k = (qkv_tensor){ks, (qkv_dtype)dt, 0, kl * d, d};
                    de.v = (qkv_tensor){vs, (qkv_dtype)dt, 0, kl * d, d};
                    de.o = (qkv_out_tensor){o16, 0, ql * d, d, QKV_F32};
                    const qkv_status s16 = use(&callers[ci])->attention(&de);
                    size_t bad = 0, nan = 0;
                    for (size_t i = 0; i < nq; i++) {
                        nan += isnan(o32[i]);
                        bad += !close_to(o16[i], o32[i], TOL);
                    }
                    tally_check(&T, s32 == QKV_OK && s16 == QKV_OK && bad == 0 &&
                                        (!special || nan > 0),
                                "%s [%s %s]: %zu of %zu outputs differ from the f32 call on the "
                                "same values (%zu NaN there)", what, qkv_isa_name(callers[ci].isa),
                                path_name(&callers[ci]), bad, nq, nan);
                }
                free(q), free(k), free(v), free(qs), free(ks), free(vs), free(o16), free(o32);
            }
        }
    }
}

/* A NaN query with enough keys that the keys are split: a hooked call
   splits them (decode, kv_len >= 1024), and where the fixture's
   [row][head][dim] K/V holds two KV heads side by side, both calls walk
   the heads together a chunk of keys at a time, each chunk going on from
   the last. The NaN must survive the chunks and the merge of the splits;
   the other head's row stays finite. */
static void test_nan_split(void)
{
    const shape shapes[] = {{1, 1, 1, 1, 2048, 4, 4}, {1, 2, 2, 1, 4200, 4, 4}};
    qkv_pool *pool = NULL;
    qkv_pool_create(2, &pool);
    for (int si = 0; si < 2; si++) {
        const shape s = shapes[si];
        for (int hook = 0; hook < 2; hook++) {
            fixture fx;
            fx_init(&fx, s, 900);
            ((float *)fx.d.q.data)[0] = NAN;
            if (hook) {
                fx.d.parallel_for = qkv_pool_parallel_for;
                fx.d.pool = pool;
            }
            char what[96];
            snprintf(what, sizeof what, "NaN query, %zu KV head(s) side by side, kv_len %zu%s",
                     s.kv_heads, s.kv_len, hook ? ", pool (split keys)" : "");
            for (int ci = 0; ci < ncallers; ci++) {
                if (!run_ok(&fx, &callers[ci], what))
                    continue;
                const float *o = fx.d.o.data;
                int bad = 0;
                for (size_t c = 0; c < 4; c++)
                    bad += !isnan(o[c]);
                bad += !isnan(fx.d.lse[0]);
                for (size_t h = 1; h < s.q_heads; h++) {   /* the other heads: numbers */
                    for (size_t c = 0; c < 4; c++)
                        bad += !isfinite(o[h * fx.d.o.head_stride + c]);
                    bad += !isfinite(fx.d.lse[h]);
                }
                tally_check(&T, !bad, "%s [%s %s]: output %g %g %g %g lse %g, want NaN (other heads finite)",
                            what, qkv_isa_name(callers[ci].isa), path_name(&callers[ci]), o[0], o[1],
                            o[2], o[3], fx.d.lse[0]);
            }
            fx_free(&fx);
        }
    }
    qkv_pool_destroy(pool);
}

/* Scores near the float limit. Finite ±3e38 scores are fine (the maximum is
   subtracted first); a dot product that overflows to +inf makes the row NaN
   unless a soft-cap bends it back to the cap; -FLT_MAX in an additive mask
   (a common stand-in for -inf) does not hide a key when every key of the
   row has it: the row becomes the plain average of V. */
static void test_huge_scores(void)
{
    const shape s = {1, 1, 1, 1, 3, 1, 2};
    const float F = 3e38f;
    for (int ci = 0; ci < ncallers; ci++) {
        fixture fx;
        fx_init(&fx, s, 42);
        qkv_attention_desc *d = &fx.d;
        float *q = (float *)d->q.data, *k = (float *)d->k.data, *v = (float *)d->v.data;
        const size_t ks = d->k.row_stride;
        d->scale = 1.0f;
        q[0] = 1.0f;
        k[0] = -F;
        k[ks] = F;
        k[2 * ks] = -F;
        /* Scores -3e38, 3e38, -3e38: all weight on key 1, lse = 3e38. */
        if (run_ok(&fx, &callers[ci], "scores +-3e38")) {
            /* Weights are exactly 1 and 0 here (exp(0), exp(-inf)); lse is
               3e38 + log 1, up to one rounding of 3e38. */
            tally_check(&T, close_to(((float *)d->o.data)[0], v[2], TOL) && close_to(((float *)d->o.data)[1], v[3], TOL) &&
                            close_to(d->lse[0], F, F * 1e-6),
                        "scores +-3e38 [%s %s]: o %g %g (want %g %g) lse %g (want 3e38)",
                        qkv_isa_name(callers[ci].isa), path_name(&callers[ci]), ((float *)d->o.data)[0],
                        ((float *)d->o.data)[1], v[2], v[3], d->lse[0]);
        }
        /* q = 3e38 · k = 3e38 overflows to +inf: a NaN row. */
        q[0] = F;
        k[ks] = F;
        if (run_ok(&fx, &callers[ci], "score overflow to +inf"))
            tally_check(&T, isnan(((float *)d->o.data)[0]) && isnan(((float *)d->o.data)[1]) && isnan(d->lse[0]),
                        "score overflow [%s %s]: o %g lse %g, want NaN",
                        qkv_isa_name(callers[ci].isa), path_name(&callers[ci]), ((float *)d->o.data)[0],
                        d->lse[0]);
        /* The same with a soft-cap: +inf becomes the cap and -inf its
           negative, so all weight (up to e^-60) goes to key 1 again. */
        d->softcap = 30.0f;
        if (run_ok(&fx, &callers[ci], "score overflow with softcap"))
            tally_check(&T,
                        close_to(((float *)d->o.data)[0], v[2], TOL) && close_to(((float *)d->o.data)[1], v[3], TOL) &&
                            close_to(d->lse[0], 30.0, TOL * 31),
                        "score overflow with softcap [%s %s]: o %g %g want %g %g, lse %g want 30",
                        qkv_isa_name(callers[ci].isa), path_name(&callers[ci]), ((float *)d->o.data)[0],
                        ((float *)d->o.data)[1], v[2], v[3], d->lse[0]);
        d->softcap = 0.0f;
        /* -FLT_MAX on every key: scores within rounding of -FLT_MAX are
           all equal, so the weights are uniform. */
        q[0] = 0.5f;
        k[0] = 0.25f;
        k[ks] = -0.5f;
        k[2 * ks] = 1.0f;
        d->mask = QKV_MASK_ADDITIVE;
        d->mask_add.data = fx.mask.data;
        d->mask_add.row_stride = 3;
        for (int j = 0; j < 3; j++)
            fx.mask.data[j] = -FLT_MAX;
        if (run_ok(&fx, &callers[ci], "mask -FLT_MAX everywhere")) {
            const size_t vs = d->v.row_stride;
            const double m0 = (v[0] + v[vs] + v[2 * vs]) / 3.0;
            const double m1 = (v[1] + v[vs + 1] + v[2 * vs + 1]) / 3.0;
            tally_check(&T, close_to(((float *)d->o.data)[0], m0, TOL) && close_to(((float *)d->o.data)[1], m1, TOL),
                        "mask -FLT_MAX [%s %s]: o %g %g, want the mean %g %g",
                        qkv_isa_name(callers[ci].isa), path_name(&callers[ci]), ((float *)d->o.data)[0],
                        ((float *)d->o.data)[1], m0, m1);
        }
        fx_free(&fx);
    }
}

/* A hook with a NULL pool (qkv_pool_parallel_for runs inline) is valid, and
   lse on/off gives the same output. */
static void test_hook_null_pool(void)
{
    const shape s = {1, 2, 1, 4, 9, 3, 3};
    fixture fx;
    fx_init(&fx, s, 61);
    fx.d.parallel_for = qkv_pool_parallel_for;
    fx.d.pool = NULL;
    for (int ci = 0; ci < ncallers; ci++)
        if (run_ok(&fx, &callers[ci], "hook with NULL pool"))
            compare_oracle(&fx, NULL, "hook with NULL pool", &callers[ci]);
    fx_free(&fx);
}

/* ======================================================================== */
/* Dispatch, names and pool arguments                                        */
/* ======================================================================== */

/* An f16 output keeps its rows' f32 acc in the stack workspace, at most
   half of it; wider rows go in passes of columns (one row of 9200 had
   overrun it: wrong values, hangs, crashes). Against the same call with
   an f32 output, rounded: within the f32 tolerance plus half an f16 ulp,
   for a width in one pass, one just past it and one of three passes, with
   Q8_0 V too (passes of whole blocks); lse, written by the first pass
   only, within TOL_LSE_REL of the f32 call's. */
static void test_o16_wide(void)
{
    enum { H = 2, L = 3, K = 5, D = 4, W = 9280 };
    static float v[K * W], o32[H * L * W], got[H * L * W];
    float lse32[H * L], lse16[H * L];
    static uint16_t o16[H * L * W];
    static unsigned char v8[K * W / 32 * 34];
    static float vq[K * W];               /* v8's values, for the oracle */
    static double want[H * L * W], want_lse[H * L];
    float q[H * L * D], k[K * D];
    uint64_t st = 11;
    fill_unit(&st, q, H * L * D);
    fill_unit(&st, k, K * D);
    fill_unit(&st, v, K * W);
    qkv_convert(K * W, v, QKV_F32, v8, QKV_Q8_0);
    qkv_convert(K * W, v8, QKV_Q8_0, vq, QKV_F32);
    const size_t widths[] = {4608, 4640, W};
    for (int i = 0; i < ncallers; i++) {
        for (size_t wi = 0; wi < sizeof widths / sizeof widths[0]; wi++) {
            for (int q8 = 0; q8 < 2; q8++) {
                const size_t dv = widths[wi];
                qkv_attention_desc d = {0};
                d.batch = 1, d.q_heads = H, d.kv_heads = 1, d.q_len = L, d.kv_len = K;
                d.head_dim = D, d.v_head_dim = dv;
                d.q = (qkv_tensor){q, QKV_F32, 0, L * D, D};
                d.k = (qkv_tensor){k, QKV_F32, 0, 0, D};
                d.v = q8 ? (qkv_tensor){v8, QKV_Q8_0, 0, 0, W} : (qkv_tensor){v, QKV_F32, 0, 0, W};
                d.scale = 0.5f, d.mask = QKV_MASK_CAUSAL;
                d.o = (qkv_out_tensor){o32, 0, L * dv, dv, QKV_F32};
                d.lse = lse32;
                const qkv_status s32 = use(&callers[i])->attention(&d);
                /* The f32 output of these widths against the oracle too. */
                qkv_attention_desc od = d;
                od.v = (qkv_tensor){q8 ? vq : v, QKV_F32, 0, 0, W};
                oracle_attention(&od, want, want_lse);
                double worst32 = 0.0;
                for (size_t e = 0; e < H * L * dv; e++) {
                    const double err = fabs(o32[e] - want[e]);
                    worst32 = err > worst32 || err != err ? err : worst32;   /* NaN fails */
                }
                tally_check(&T, s32 == QKV_OK && worst32 <= TOL,
                            "[%s] f32 output, v_head_dim %zu, V %s: status %s, error %g from "
                            "the oracle", path_name(&callers[i]), dv, q8 ? "Q8_0" : "f32",
                            qkv_status_string(s32), worst32);
                d.o = (qkv_out_tensor){o16, 0, L * dv, dv, QKV_F16};
                d.lse = lse16;
                for (size_t r = 0; r < H * L; r++)
                    lse16[r] = NAN;
                const qkv_status s16 = use(&callers[i])->attention(&d);
                cases++;
                qkv_convert(H * L * dv, o16, QKV_F16, got, QKV_F32);
                double worst = 0.0, worst_lse = 0.0;
                for (size_t e = 0; e < H * L * dv; e++) {
                    const double err = fabs((double)got[e] - o32[e]) -
                                       fabs((double)o32[e]) * 0x1p-11;
                    worst = err > worst || err != err ? err : worst;   /* NaN fails */
                }
                for (size_t r = 0; r < H * L; r++) {
                    const double err = fabs((double)lse16[r] - lse32[r]) / (1.0 + fabs(lse32[r]));
                    worst_lse = err > worst_lse || err != err ? err : worst_lse;
                }
                tally_check(&T, s32 == QKV_OK && s16 == QKV_OK && worst <= 1e-5 &&
                                    worst_lse <= TOL_LSE_REL,
                            "[%s] f16 output, v_head_dim %zu, V %s: status %s / %s, error %g "
                            "past half an f16 ulp, lse relative error %g", path_name(&callers[i]),
                            dv, q8 ? "Q8_0" : "f32", qkv_status_string(s32),
                            qkv_status_string(s16), worst, worst_lse);
            }
        }
    }
}

static void count_task(void *ctx, size_t i)
{
    (void)i;
    ++*(size_t *)ctx;
}

static void test_misc(void)
{
    const qkv_funcs *f = (const qkv_funcs *)&T;   /* must stay untouched */
    const qkv_funcs *keep = f;
    tally_check(&T, qkv_isa_funcs(QKV_ISA_SCALAR, NULL) == QKV_ERR_ARG, "qkv_isa_funcs(out NULL)");
    const int bad_isas[] = {QKV_ISA_NONE, QKV_ISA_COUNT, 99, -7};
    const qkv_isa before = qkv_isa_get();
    for (size_t i = 0; i < sizeof bad_isas / sizeof bad_isas[0]; i++) {
        const qkv_isa isa = (qkv_isa)bad_isas[i];
        tally_check(&T, qkv_isa_funcs(isa, &f) == QKV_ERR_UNSUPPORTED && f == keep,
                    "qkv_isa_funcs(%d) must be UNSUPPORTED and leave *out", bad_isas[i]);
        tally_check(&T, qkv_isa_set(isa) == QKV_ERR_UNSUPPORTED && qkv_isa_get() == before,
                    "qkv_isa_set(%d) must be UNSUPPORTED and keep the choice", bad_isas[i]);
        tally_check(&T, !qkv_isa_supported(isa), "qkv_isa_supported(%d)", bad_isas[i]);
        tally_check(&T, strcmp(qkv_isa_name(isa), isa == QKV_ISA_NONE ? "none" : "unknown") == 0,
                    "qkv_isa_name(%d)", bad_isas[i]);
    }
    /* ISAs compiled out or not runnable here. */
    for (int i = 0; i < QKV_ISA_COUNT; i++)
        if (!qkv_isa_supported((qkv_isa)i))
            tally_check(&T, qkv_isa_funcs((qkv_isa)i, &f) == QKV_ERR_UNSUPPORTED && f == keep &&
                                qkv_isa_set((qkv_isa)i) == QKV_ERR_UNSUPPORTED,
                        "unsupported ISA %s must be refused", qkv_isa_name((qkv_isa)i));
    qkv_isa got = QKV_ISA_SCALAR;
    tally_check(&T, qkv_isa_from_name(NULL, &got) == QKV_ERR_ARG, "qkv_isa_from_name(NULL)");
    tally_check(&T, qkv_isa_from_name("scalar", NULL) == QKV_ERR_ARG, "qkv_isa_from_name(, NULL)");
    const char *names[] = {"", "AVX2", "avx", "avx512 ", "sse4", "none", "unknown"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        tally_check(&T, qkv_isa_from_name(names[i], &got) == QKV_ERR_UNSUPPORTED,
                    "qkv_isa_from_name(\"%s\") must be UNSUPPORTED", names[i]);
    const int statuses[] = {QKV_OK, QKV_ERR_ARG, QKV_ERR_OVERFLOW, QKV_ERR_UNSUPPORTED,
                            QKV_ERR_NOMEM, -1, 5, 1000};
    for (size_t i = 0; i < sizeof statuses / sizeof statuses[0]; i++) {
        const char *t = qkv_status_string((qkv_status)statuses[i]);
        tally_check(&T, t && *t, "qkv_status_string(%d) must be a text", statuses[i]);
    }
    tally_check(&T, qkv_default_scale(0) == 0.0f && qkv_default_scale(4) == 0.5f,
                "qkv_default_scale");

    tally_check(&T, qkv_pool_create(2, NULL) == QKV_ERR_ARG, "qkv_pool_create(out NULL)");
    qkv_pool_destroy(NULL);                    /* a no-op */
    size_t n = 0;
    qkv_pool_parallel_for(NULL, 5, count_task, &n);   /* NULL pool: inline */
    tally_check(&T, n == 5, "parallel_for with a NULL pool ran %zu of 5 tasks", n);
    qkv_pool *p = NULL;
    for (unsigned t = 0; t < 3; t++) {        /* 0 and 1: no extra thread */
        tally_check(&T, qkv_pool_create(t, &p) == QKV_OK && p, "qkv_pool_create(%u)", t);
        n = 0;
        qkv_pool_parallel_for(p, 0, count_task, &n);   /* count 0: nothing */
        qkv_pool_parallel_for(p, 3, NULL, &n);         /* no task: nothing */
        tally_check(&T, n == 0, "empty parallel_for ran tasks");
        qkv_pool_parallel_for(p, 1, count_task, &n);
        tally_check(&T, n == 1, "parallel_for(1) ran %zu tasks", n);
        qkv_pool_destroy(p);
    }
    qkv_isa_set(before);
}

int main(void)
{
    make_callers();
    printf("badinput: %d supported ISA(s):", nisa);
    for (int i = 0; i < nisa; i++)
        printf(" %s", qkv_isa_name(isas[i]));
    printf(", each through its table and the dispatcher\n");
    const qkv_isa start = qkv_isa_get();

    test_scores();
    test_softmax();
    test_softmax_special();
    test_weighted_sum();
    test_attention_errors();
    test_attention_valid();
    test_window_large();
    test_nan_split();
    test_all_masked();
    test_nonfinite();
    test_stored_as_f32();
    test_huge_scores();
    test_hook_null_pool();
    test_o16_wide();
    test_misc();

    qkv_isa_set(start);
    printf("badinput: %zu attention error cases, %lu (case, ISA, path) calls\n",
           sizeof bad_cases / sizeof bad_cases[0], cases);
    return tally_finish(&T);
}

/*
 * checkasm: every supported ISA against the scalar reference and a
 * double-precision oracle, on the same seeded random inputs.
 *
 *   checkasm [--seed=N] [--isa=NAME] [--function=NAMES] [--skip=NAMES] [--quick]
 *            [--verbose] [--native] [--expect-isas=a,b,...] [--expect-best=NAME]
 *
 * --function picks groups, --skip leaves groups out (comma-separated):
 * api, seed, scores, softmax, weighted_sum, attention, kernels, fpmath,
 * badinput, pool, dispatch. --isa picks one ISA: a supported one, or an
 * emulated one of the AVX-512 family (avx512-emu, avx512bf16-emu, amx-emu:
 * isa_emu.h), which run on any CPU with AVX2; an AVX-512 ISA this CPU
 * lacks says "skipped" (its emulation ran in its place). --native leaves the
 * emulated ones out (scripts/test.sh's runs under qemu: the native run
 * already tested them). Outputs live in buffers with guard
 * zones and leading-dimension padding filled with a sentinel, which must be
 * intact afterwards; inputs are allocated to their exact extent so that
 * ASan or valgrind see any read past the end. The seed is printed; rerun
 * with --seed to reproduce. Ends with "N passed, M failed".
 */
#include <stdatomic.h>
#include <time.h>

#include "checkasm_kernels.h"
#include "isa_emu.h"
#include "oracle.h"
#include "qkvtest.h"
#include "registry.h"

/* ---- reporting: one tally, failures name the ISA, the group and the seed */

static tally T;
static int verbose;
static uint64_t seed;

#define check(...) tally_check(&T, __VA_ARGS__)

/* ---- random numbers: one stream, so that --seed=N reproduces a whole run */

static uint64_t rng;

static float frand(float lo, float hi)
{
    return rng_float(&rng, lo, hi);
}

static size_t urand(size_t lo, size_t hi) /* inclusive */
{
    return rng_range(&rng, lo, hi);
}

static int coin(int percent)
{
    return rng_percent(&rng, percent);
}

/* An input of exactly n floats in [lo, hi]: no slack to hide over-reads. */
static float *input(size_t n, float lo, float hi)
{
    return new_floats_in(&rng, n, lo, hi);
}

/* ---- guarded outputs: pbuf (qkvtest.h), written cells flagged --------- */

/* The flags of a rows × len matrix with leading dimension ld. */
static unsigned char *matrix_cells(size_t rows, size_t ld, size_t len)
{
    if (!rows || !len)
        return NULL;
    unsigned char *w = calloc((rows - 1) * ld + len, 1);
    for (size_t i = 0; i < rows; i++)
        memset(w + i * ld, 1, len);
    return w;
}

static double max_err_matrix(const float *got, size_t ld, const double *want,
                             size_t rows, size_t len)
{
    double worst = 0;
    for (size_t i = 0; i < rows; i++)
        for (size_t c = 0; c < len; c++) {
            const double w = want[i * len + c], x = got[i * ld + c];
            double e;
            if (isnan(w) || isnan(x))
                e = isnan(w) && isnan(x) ? 0 : INFINITY;
            else
                e = fabs(x - w);
            if (e > worst)
                worst = e;
        }
    return worst;
}

/* ---- the ISAs under test ---------------------------------------------------- */

/* The ISAs under test: the supported ones, then the emulated AVX-512
   family (isa_emu.h), each with the name its results are reported under. */
typedef struct isa_under_test {
    const char *name;
    const qkv_funcs *f;
    int rounds_bf16;    /* its bf16 tiles may round in QKV_FPMATH_BF16 */
    int rounds_decode;  /* and its decode forms' Q·Kᵀ */
} isa_under_test;

static isa_under_test isas[QKV_ISA_COUNT + 3];
static size_t n_isas;
static const qkv_funcs *scalar_funcs;

static void find_isas(const char *only, int native)
{
    for (int i = 0; i < QKV_ISA_COUNT; i++) {
        const qkv_funcs *f;
        if (qkv_isa_funcs((qkv_isa)i, &f) != QKV_OK)
            continue;
        if (i == QKV_ISA_SCALAR)
            scalar_funcs = f;
        if (only && strcmp(only, qkv_isa_name((qkv_isa)i)) != 0)
            continue;
        isas[n_isas++] = (isa_under_test){qkv_isa_name((qkv_isa)i), f, isa_rounds_bf16(i),
                                          isa_rounds_bf16_decode(i)};
    }
    const isa_emu *emu;
    const size_t n_emu = native ? 0 : isa_emus(&emu);
    for (size_t e = 0; e < n_emu; e++)
        if (!only || strcmp(only, emu[e].name) == 0)
            isas[n_isas++] = (isa_under_test){emu[e].name, &emu[e].f, emu[e].ctx->rounds_bf16,
                                              emu[e].ctx->rounds_bf16_decode};
}

/* ---- api: names, status strings, the ISA queries ---------------------------- */

static void test_api(void)
{
    T.fn = "api";
    const qkv_status all[] = {QKV_OK, QKV_ERR_ARG, QKV_ERR_OVERFLOW, QKV_ERR_UNSUPPORTED,
                              QKV_ERR_NOMEM};
    for (size_t i = 0; i < 5; i++) {
        check(qkv_status_string(all[i]) && *qkv_status_string(all[i]), "status %zu has no text", i);
        for (size_t j = 0; j < i; j++)
            check(strcmp(qkv_status_string(all[i]), qkv_status_string(all[j])) != 0,
                  "statuses %zu and %zu share a text", i, j);
    }
    check(qkv_status_string((qkv_status)99) != NULL, "unknown status gives NULL");
    for (int i = 0; i < QKV_ISA_COUNT; i++) {
        qkv_isa back = QKV_ISA_NONE;
        check(qkv_isa_from_name(qkv_isa_name((qkv_isa)i), &back) == QKV_OK && back == i,
              "name of ISA %d does not round-trip", i);
    }
    qkv_isa out = QKV_ISA_SCALAR;
    check(qkv_isa_from_name("avx1024", &out) == QKV_ERR_UNSUPPORTED && out == QKV_ISA_SCALAR,
          "unknown ISA name accepted");
    check(qkv_isa_from_name(NULL, &out) == QKV_ERR_ARG, "NULL name accepted");
    check(qkv_isa_from_name("scalar", NULL) == QKV_ERR_ARG, "NULL out accepted");
    check(strcmp(qkv_isa_name(QKV_ISA_NONE), "none") == 0, "QKV_ISA_NONE not named none");
    check(strcmp(qkv_isa_name((qkv_isa)42), "unknown") == 0, "bad ISA not named unknown");
    check(qkv_isa_supported(QKV_ISA_SCALAR), "scalar not supported");
    check(!qkv_isa_supported(QKV_ISA_NONE) && !qkv_isa_supported(QKV_ISA_COUNT),
          "non-ISAs reported supported");
    check(qkv_isa_supported(qkv_isa_best()), "best ISA not supported");
    /* Within an architecture's ladder a later value is a better ISA, unless
       the registry passes it over (it gains nothing on this CPU: then it
       says why, and it is never the best). */
#define ARM_ISA(i) ((i) == QKV_ISA_NEON || (i) == QKV_ISA_SVE)
    for (int i = 0; i < QKV_ISA_COUNT; i++) {
        const char *over = qkv_isa_passed_over_reason((qkv_isa)i);
        if (qkv_isa_supported((qkv_isa)i) && !over)
            check(i <= qkv_isa_best() || ARM_ISA(qkv_isa_best()) != ARM_ISA(i),
                  "ISA %d beats the best", i);
        check(!over || (qkv_isa_supported((qkv_isa)i) && *over && qkv_isa_best() != (qkv_isa)i),
              "ISA %d passed over wrongly", i);
    }
    check(qkv_isa_passed_over_reason(QKV_ISA_AVX512BF16) == NULL ||
              qkv_isa_best() == QKV_ISA_AVX512 || qkv_isa_best() == QKV_ISA_AMX,
          "avx512bf16 passed over, but best is %s", qkv_isa_name(qkv_isa_best()));
#undef ARM_ISA
    const qkv_funcs *f = NULL;
    check(qkv_isa_funcs(QKV_ISA_SCALAR, NULL) == QKV_ERR_ARG, "qkv_isa_funcs(NULL out)");
    for (int i = 0; i < QKV_ISA_COUNT; i++) {
        const qkv_status st = qkv_isa_funcs((qkv_isa)i, &f);
        check((st == QKV_OK) == qkv_isa_supported((qkv_isa)i), "qkv_isa_funcs(%d) = %d", i, st);
        if (st == QKV_OK)
            check(f->isa == i, "qkv_isa_funcs(%d) gives ISA %d", i, f->isa);
    }
    check(qkv_default_scale(64) == 0.125f && qkv_default_scale(1) == 1.0f &&
              qkv_default_scale(0) == 0.0f, "qkv_default_scale");
}

/* ---- seed: the tutorial's worked example and its exercise ------------------- */

/* Keys = values = the three 4-d embeddings of "The", "cat", "sat".
   Unscaled (scale 1), as in the tutorial.

   Query [0,1,0,0]: scores [0, 1, 1]; softmax weights
       [1, e, e] / (1 + 2e) = [0.155362, 0.422319, 0.422319]
   context = w0·[1,0,1,0] + w1·[0,1,0,1] + w2·[1,1,0,0]
           = [w0 + w2, w1 + w2, w0, w1] = [0.577681, 0.844638, 0.155362, 0.422319].
   (The tutorial prints 0.21194156/0.39402922 and a context to match; its own
   code computes the numbers above.)

   Exercise, "The" as the query, Query = [1,0,1,0]: scores [2, 0, 1];
       weights [e², 1, e] / (e² + 1 + e) = [0.665241, 0.090031, 0.244728]
   context = [w0 + w2, w1 + w2, w0, w1] = [0.909969, 0.334759, 0.665241, 0.090031].

   Full self-attention (every word a query) adds "cat" [0,1,0,1]: scores
   [0, 2, 1], weights [0.090031, 0.665241, 0.244728], context
   [0.334759, 0.909969, 0.090031, 0.665241]; and "sat" [1,1,0,0]: scores
   [1, 1, 2], weights [0.211942, 0.211942, 0.576117], context
   [0.788058, 0.788058, 0.211942, 0.211942]. */
static const float seed_kv[3][4] = {{1, 0, 1, 0}, {0, 1, 0, 1}, {1, 1, 0, 0}};
static const float seed_q[4][4] = {{0, 1, 0, 0}, {1, 0, 1, 0}, {0, 1, 0, 1}, {1, 1, 0, 0}};
static const double seed_weights[4][3] = {
    {0.155362, 0.422319, 0.422319},
    {0.665241, 0.090031, 0.244728},
    {0.090031, 0.665241, 0.244728},
    {0.211942, 0.211942, 0.576117},
};
static const double seed_context[4][4] = {
    {0.577681, 0.844638, 0.155362, 0.422319},
    {0.909969, 0.334759, 0.665241, 0.090031},
    {0.334759, 0.909969, 0.090031, 0.665241},
    {0.788058, 0.788058, 0.211942, 0.211942},
};
/* The constants above are rounded to 6 decimals: TOL_SEED. */

static void test_seed(const qkv_funcs *f)
{
    T.fn = "seed";
    float s[4][3], o[4][4];
    check(f->scores(4, 3, 4, 1.0f, &seed_q[0][0], 4, &seed_kv[0][0], 4, &s[0][0], 3) == QKV_OK,
          "scores failed");
    check(s[0][0] == 0 && s[0][1] == 1 && s[0][2] == 1 && s[1][0] == 2 && s[1][1] == 0 &&
              s[1][2] == 1, "scores are not [0,1,1] and [2,0,1]");
    check(f->softmax(4, 3, &s[0][0], 3) == QKV_OK, "softmax failed");
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 3; j++)
            check(fabs(s[i][j] - seed_weights[i][j]) <= TOL_SEED, "weight %d,%d = %.7f, want %.6f",
                  i, j, s[i][j], seed_weights[i][j]);
    check(f->weighted_sum(4, 3, 4, &s[0][0], 3, &seed_kv[0][0], 4, &o[0][0], 4) == QKV_OK,
          "weighted_sum failed");
    for (int i = 0; i < 4; i++)
        for (int c = 0; c < 4; c++)
            check(fabs(o[i][c] - seed_context[i][c]) <= TOL_SEED, "context %d,%d = %.7f, want %.6f",
                  i, c, o[i][c], seed_context[i][c]);

    /* The same in one fused call: one batch, one head, four queries. */
    float fused[4][4], lse[4];
    qkv_attention_desc d = {0};
    d.batch = d.q_heads = d.kv_heads = 1;
    d.q_len = 4;
    d.kv_len = 3;
    d.head_dim = d.v_head_dim = 4;
    d.q = (qkv_tensor){seed_q, QKV_F32, 16, 16, 4};
    d.k = d.v = (qkv_tensor){seed_kv, QKV_F32, 12, 12, 4};
    d.o = (qkv_out_tensor){&fused[0][0], 16, 16, 4, QKV_F32};
    d.scale = 1.0f;
    d.lse = lse;
    check(f->attention(&d) == QKV_OK, "fused attention failed");
    for (int i = 0; i < 4; i++)
        for (int c = 0; c < 4; c++)
            check(fabs(fused[i][c] - seed_context[i][c]) <= TOL_SEED,
                  "fused context %d,%d = %.7f, want %.6f", i, c, fused[i][c], seed_context[i][c]);
    /* lse of [0,1,1] is log(1 + 2e) = 1.861995. */
    check(fabs(lse[0] - 1.861995) <= TOL_SEED, "lse = %.7f, want 1.861995", lse[0]);
}

/* ---- the three stages on random shapes -------------------------------------- */

/* Sizes that are no multiple of any vector width or tile, and the usual ones. */
static const size_t odd_sizes[] = {1, 2, 3, 5, 7, 8, 15, 16, 17, 31, 33, 63, 64, 65, 100, 127, 129};
/* Head dims: every remainder mod 4 (NEON's lane-by-lane tails: 2, 6 and
   22 give two lanes), a partial second vector of the two-vector GEMM tile
   at every SVE length (6, 22, 47 at 128 bits; 11, 47 at 256; 22 at
   512; 33, 47 at 1024; 96 at 2048), a partial third of NEON's four-vector
   one (11), and the usual sizes; 64 and up are whole Q8_0/Q4_0 blocks. */
static const size_t head_dims[] = {1, 2, 3, 6, 11, 22, 33, 47, 64, 96, 128, 256};
#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static size_t pick_size(void)
{
    return odd_sizes[urand(0, COUNT(odd_sizes) - 1)];
}

/* Rows of Q or P: sometimes past the x86 stage kernels' row blocks (192
   and 384 rows), so that a block boundary falls inside the matrix. */
static size_t pick_rows(void)
{
    return pick_size() + (coin(20) ? urand(100, 450) : 0);
}

static size_t pad(void)
{
    return coin(50) ? 0 : urand(1, 19);
}

/* One scores call on every ISA: against the oracle, the scalar reference
   and the cells around S. lined: S on 64-byte lines. */
static void check_scores(size_t m, size_t n, size_t d, size_t ldq, size_t ldk, size_t lds,
                         int lined, float scale)
{
    float *q = input((m - 1) * ldq + d, -1, 1), *k = input((n - 1) * ldk + d, -1, 1);
    double *want = malloc(m * n * sizeof *want);
    oracle_scores(m, n, d, scale, q, ldq, k, ldk, want);
    pbuf s = pbuf_new_at((m - 1) * lds + n, lined), ref = pbuf_new((m - 1) * lds + n);
    unsigned char *cells = matrix_cells(m, lds, n);
    scalar_funcs->scores(m, n, d, scale, q, ldq, k, ldk, ref.data, lds);
    for (size_t i = 0; i < n_isas; i++) {
        T.isa = isas[i].name;
        pbuf_reset(&s);
        qkv_status st = isas[i].f->scores(m, n, d, scale, q, ldq, k, ldk, s.data, lds);
        double e = max_err_matrix(s.data, lds, want, m, n);
        check(st == QKV_OK && e <= TOL, "m=%zu n=%zu d=%zu: status %d, error %.3g vs oracle",
              m, n, d, st, e);
        check(gaps_untouched(&s, cells), "m=%zu n=%zu d=%zu lds=%zu: wrote outside S", m, n, d, lds);
        const double worst = max_diff(s.data, ref.data, m, lds, n);
        check(worst <= 2 * TOL, "m=%zu n=%zu d=%zu: %.3g from scalar", m, n, d, worst);
    }
    T.isa = "-";
    free(q), free(k), free(want), free(cells);
    pbuf_free(&s), pbuf_free(&ref);
}

static void test_scores(int cases, int quick)
{
    T.fn = "scores";
    for (int t = 0; t < cases; t++) {
        /* Now and then an S on whole lines (from a 64-byte boundary, rows
           a multiple of 16 floats) of more than 16k floats, which
           AVX-512's scores streams to memory where it is bigger than L3:
           avx512-emu's is 64 KiB (tests/isa_emu.c). */
        const int lined = coin(25);
        const size_t m = lined ? 256 + pick_size() : pick_rows();
        const size_t n = lined ? urand(64, 160) : pick_size();
        const size_t d = head_dims[urand(0, COUNT(head_dims) - 1)];
        const size_t ldq = d + pad(), ldk = d + pad();
        const size_t lds = lined ? (n + pad() + 15) / 16 * 16 : n + pad();
        const float scale = coin(20) ? 1.0f / (float)d : qkv_default_scale(d);
        check_scores(m, n, d, ldq, ldk, lds, lined, scale);
    }
    /* And, unless quick, one S past this CPU's own L3 (up to 64 MiB; a
       short head_dim keeps the oracle quick) where AVX-512 streams it (on
       256-bit FMA units): the native non-temporal stores, whose logic
       avx512-emu checks. */
    const qkv_ctx *c = qkv_ctx_for(QKV_ISA_AVX512);
    if (quick || !c || !c->cpu.fma_256_bit || !c->cpu.l3 || c->cpu.l3 > (64u << 20))
        return;
    size_t n = 64;
    while (n * n * sizeof(float) <= c->cpu.l3)
        n += 64;
    check_scores(n + 5, n, 3, 3, 3, n, 1, qkv_default_scale(3));
}

static void test_softmax(int cases)
{
    T.fn = "softmax";
    for (int t = 0; t < cases; t++) {
        const size_t m = pick_size(), n = pick_size() + (coin(30) ? urand(0, 300) : 0);
        const size_t lds = n + pad();
        /* Scores as attention makes them, with hidden keys and now and then
           a row that hides all of them, or one with a NaN. */
        float *in = input((m - 1) * lds + n, -12, 12);
        for (size_t r = 0; r < m; r++) {
            const int all_hidden = coin(10), has_nan = coin(5);
            for (size_t c = 0; c < n; c++)
                if (all_hidden || coin(10))
                    in[r * lds + c] = -INFINITY;
            if (has_nan)
                in[r * lds + urand(0, n - 1)] = NAN;
        }
        double *want = malloc(m * n * sizeof *want);
        oracle_softmax(m, n, in, lds, want);
        pbuf s = pbuf_new((m - 1) * lds + n);
        unsigned char *cells = matrix_cells(m, lds, n);
        for (size_t i = 0; i < n_isas; i++) {
            T.isa = isas[i].name;
            pbuf_reset(&s);
            for (size_t r = 0; r < m; r++)
                memcpy(s.data + r * lds, in + r * lds, n * sizeof(float));
            qkv_status st = isas[i].f->softmax(m, n, s.data, lds);
            double e = max_err_matrix(s.data, lds, want, m, n);
            check(st == QKV_OK && e <= TOL, "m=%zu n=%zu: status %d, error %.3g (NaN rows must stay NaN, "
                  "hidden rows zero)", m, n, st, e);
            check(gaps_untouched(&s, cells), "m=%zu n=%zu lds=%zu: wrote outside the rows", m, n, lds);
        }
        T.isa = "-";
        free(in), free(want), free(cells);
        pbuf_free(&s);
    }
}

static void test_weighted_sum(int cases)
{
    T.fn = "weighted_sum";
    for (int t = 0; t < cases; t++) {
        const size_t m = pick_rows(), n = pick_size() + (coin(30) ? urand(0, 300) : 0);
        const size_t dv = head_dims[urand(0, COUNT(head_dims) - 1)];
        const size_t ldp = n + pad(), ldv = dv + pad(), ldo = dv + pad();
        /* P as a softmax makes it (rows summing to 1), so |O| <= 1. */
        float *p = input((m - 1) * ldp + n, 0, 1), *v = input((n - 1) * ldv + dv, -1, 1);
        for (size_t r = 0; r < m; r++) {
            float sum = 0;
            for (size_t c = 0; c < n; c++)
                sum += p[r * ldp + c];
            for (size_t c = 0; c < n; c++)
                p[r * ldp + c] /= sum;
        }
        double *want = malloc(m * dv * sizeof *want);
        oracle_weighted_sum(m, n, dv, p, ldp, v, ldv, want);
        pbuf o = pbuf_new((m - 1) * ldo + dv);
        unsigned char *cells = matrix_cells(m, ldo, dv);
        for (size_t i = 0; i < n_isas; i++) {
            T.isa = isas[i].name;
            pbuf_reset(&o);
            qkv_status st = isas[i].f->weighted_sum(m, n, dv, p, ldp, v, ldv, o.data, ldo);
            double e = max_err_matrix(o.data, ldo, want, m, dv);
            check(st == QKV_OK && e <= TOL, "m=%zu n=%zu dv=%zu: status %d, error %.3g", m, n, dv, st, e);
            check(gaps_untouched(&o, cells), "m=%zu n=%zu dv=%zu ldo=%zu: wrote outside O", m, n, dv, ldo);
        }
        T.isa = "-";
        free(p), free(v), free(want), free(cells);
        pbuf_free(&o);
    }
}

/* ---- fused attention on random descriptors ---------------------------------- */

/* A test pool for the hook: qkv's own. */
static qkv_pool *pools[4];   /* 1, 2 and 3 threads; [0] unused */

typedef struct layout {
    size_t batch_stride, head_stride, row_stride, total;
} layout;

/* [batch][head][row][dim] or [batch][row][head][dim], rows padded now and
   then (by whole blocks of blk values: 32 for Q8_0/Q4_0, else 1). */
static layout make_layout(size_t batch, size_t heads, size_t rows, size_t dim, int bshd, size_t blk)
{
    layout l;
    const size_t padded = dim + (coin(30) ? blk * urand(1, blk > 1 ? 2 : 7) : 0);
    if (bshd) {
        l.head_stride = padded;
        l.row_stride = heads * padded;
        l.batch_stride = rows * l.row_stride;
    } else {
        l.row_stride = padded;
        l.head_stride = rows * padded;
        l.batch_stride = heads * l.head_stride;
    }
    l.total = (batch - 1) * l.batch_stride + (heads - 1) * l.head_stride +
              (rows - 1) * l.row_stride + dim;
    return l;
}

typedef struct attn_case {
    qkv_attention_desc d;
    float *q, *k, *v, *mask, *slopes, *sinks;
    void *q_st, *k_st, *v_st;   /* q, k, v as stored in their dtypes (NULL: f32) */
    layout lo;
    pbuf o, lse;
    unsigned char *o_cells;
    double *want_o, *want_lse;
} attn_case;

static const char *const dtype_names[QKV_DTYPE_COUNT] = {"f32", "f16", "bf16", "q8_0", "q4_0"};

static void describe(const qkv_attention_desc *d, char *buf, size_t n)
{
    snprintf(buf, n, "b=%zu hq=%zu hkv=%zu q_len=%zu kv_len=%zu d=%zu dv=%zu mask=%d window=%zu "
             "softcap=%g alibi=%d sinks=%d lse=%d q/k/v/o=%s/%s/%s/%s%s",
             d->batch, d->q_heads, d->kv_heads, d->q_len, d->kv_len, d->head_dim, d->v_head_dim,
             d->mask, d->window, d->softcap, !!d->alibi_slopes, !!d->sinks, !!d->lse,
             dtype_names[d->q.dtype], dtype_names[d->k.dtype], dtype_names[d->v.dtype],
             dtype_names[d->o.dtype], d->fpmath == QKV_FPMATH_BF16 ? " fpmath=bf16" : "");
}

/* A dtype for a tensor of rows of dim values: mostly f32, else 16-bit, and
   for K/V (quant) the block types when dim is whole blocks. */
static qkv_dtype pick_dtype(size_t dim, int quant)
{
    if (coin(40))
        return QKV_F32;
    const int blocks = quant && dim % 32 == 0;
    return (qkv_dtype)urand(1, blocks ? 4 : 2);
}

/* What a caller fixes of a random case (0 / NULL: drawn). The draws are
   made either way, so a seed gives the same cases whatever is fixed. */
typedef struct case_spec case_spec;
struct case_spec {
    int decode;
    size_t q_len, kv_len, head_dim;  /* kv_len: also one batch, no shrinking */
    size_t q_heads;                  /* and one KV head */
    const qkv_dtype *dtypes;         /* q, k, v, o */
    qkv_fpmath fpmath;
    int plain;                       /* the default scale, no mask, window or
                                        score modifier */
    /* Edits the inputs (as floats, before they are stored in their
       dtypes and widened back for the oracle). */
    void (*plant)(attn_case *c, const layout *lq, const layout *lk, const layout *lv);
};

static void make_case_spec(attn_case *c, const case_spec *spec)
{
    const int decode = spec->decode;
    memset(c, 0, sizeof *c);
    qkv_attention_desc *d = &c->d;
    d->batch = urand(1, 2);
    d->kv_heads = urand(1, 3);
    d->q_heads = d->kv_heads * (size_t[]){1, 1, 2, 4, 8}[urand(0, 4)];
    d->head_dim = head_dims[urand(0, COUNT(head_dims) - 1)];
    d->v_head_dim = coin(70) ? d->head_dim : head_dims[urand(0, COUNT(head_dims) - 1)];
    if (decode) {
        /* Decode: long enough to make a hooked call split the keys. */
        d->q_len = urand(1, 2);
        d->kv_len = urand(1000, 2600);
        d->head_dim = d->v_head_dim = coin(50) ? 64 : 33;
    } else {
        d->q_len = pick_size();
        d->kv_len = coin(20) ? d->q_len : pick_size() + (coin(20) ? urand(0, 200) : 0);
    }
    if (spec->head_dim)
        d->head_dim = d->v_head_dim = spec->head_dim;
    if (spec->q_len)
        d->q_len = spec->q_len;
    if (spec->kv_len)
        d->kv_len = spec->kv_len, d->batch = 1;
    if (spec->q_heads)
        d->q_heads = spec->q_heads, d->kv_heads = 1;
    /* Keep the oracle's O(b·h·q·kv·d) work small. */
    while (!spec->kv_len &&
           d->batch * d->q_heads * d->q_len * d->kv_len * (d->head_dim + d->v_head_dim) > 3000000)
        d->q_len = d->q_len / 2 + 1, d->kv_len = d->kv_len * 3 / 4 + 1;
    const int bshd = coin(40);
    qkv_dtype qt = pick_dtype(d->head_dim, 0), kt = pick_dtype(d->head_dim, 1);
    qkv_dtype vt = pick_dtype(d->v_head_dim, 1), ot = pick_dtype(d->v_head_dim, 0);
    if (spec->dtypes)
        qt = spec->dtypes[0], kt = spec->dtypes[1], vt = spec->dtypes[2], ot = spec->dtypes[3];
    d->fpmath = spec->fpmath;
    layout lq = make_layout(d->batch, d->q_heads, d->q_len, d->head_dim, bshd, 1);
    layout lk = make_layout(d->batch, d->kv_heads, d->kv_len, d->head_dim, bshd, kt >= QKV_Q8_0 ? 32 : 1);
    layout lv = make_layout(d->batch, d->kv_heads, d->kv_len, d->v_head_dim, bshd, vt >= QKV_Q8_0 ? 32 : 1);
    c->lo = make_layout(d->batch, d->q_heads, d->q_len, d->v_head_dim, coin(40), 1);
    c->q = input(lq.total, -1, 1);
    c->k = input(lk.total, -1, 1);
    c->v = input(lv.total, -1, 1);
    if (spec->plant)
        spec->plant(c, &lq, &lk, &lv);
    c->q_st = test_store_as(scalar_funcs, c->q, lq.total, qt);
    c->k_st = test_store_as(scalar_funcs, c->k, lk.total, kt);
    c->v_st = test_store_as(scalar_funcs, c->v, lv.total, vt);
    d->q = (qkv_tensor){c->q_st ? c->q_st : c->q, qt, lq.batch_stride, lq.head_stride, lq.row_stride};
    d->k = (qkv_tensor){c->k_st ? c->k_st : c->k, kt, lk.batch_stride, lk.head_stride, lk.row_stride};
    d->v = (qkv_tensor){c->v_st ? c->v_st : c->v, vt, lv.batch_stride, lv.head_stride, lv.row_stride};
    /* A 16-bit output lives in the first half of as many guarded floats. */
    c->o = pbuf_new(ot == QKV_F32 ? c->lo.total : (c->lo.total + 1) / 2);
    d->o = (qkv_out_tensor){c->o.data, c->lo.batch_stride, c->lo.head_stride, c->lo.row_stride, ot};
    d->scale = coin(80) ? qkv_default_scale(d->head_dim) : frand(0, 1);

    const int m = (int)urand(0, 2);
    d->mask = (qkv_mask_kind)m;
    if (m == QKV_MASK_ADDITIVE) {
        /* Broadcast over batch and/or heads now and then (stride 0). */
        const size_t ld = d->kv_len + (coin(30) ? urand(1, 5) : 0);
        const size_t hs = coin(50) ? 0 : d->q_len * ld;
        const size_t bs = coin(50) ? 0 : (hs ? d->q_heads * hs : d->q_len * ld);
        const size_t total = (d->batch - 1) * bs + (d->q_heads - 1) * hs + (d->q_len - 1) * ld + d->kv_len;
        c->mask = input(total, -2, 0);
        for (size_t i = 0; i < total; i++)
            if (coin(15))
                c->mask[i] = -INFINITY;
        /* Now and then one key far above the rest of its row (scores are a
           few units from 0): rows of one job then have maxima 200 apart,
           and a kernel that let one row's max stand in for another's (a
           reduction mixing the rows' lanes) would underflow the other
           row's exp() to 0. Mask rows start at multiples of ld. */
        for (size_t at = 0; at + d->kv_len <= total; at += ld)
            if (coin(25))
                c->mask[at + urand(0, d->kv_len - 1)] = 200.0f;
        d->mask_add = (qkv_float_mask){c->mask, bs, hs, ld};
    }
    if (coin(25))
        d->window = urand(1, d->kv_len + 3);
    if (coin(25))
        d->softcap = frand(0.5f, 5);
    if (coin(25)) {
        c->slopes = input(d->q_heads, 0, 0.2f);
        d->alibi_slopes = c->slopes;
    }
    if (coin(25)) {
        c->sinks = input(d->q_heads, -1, 2);
        d->sinks = c->sinks;
    }
    if (spec->plain) {
        d->mask = QKV_MASK_NONE;
        d->mask_add = (qkv_float_mask){0};
        d->window = 0;
        d->softcap = 0;
        d->alibi_slopes = d->sinks = NULL;
        d->scale = qkv_default_scale(d->head_dim);
    }
    const size_t rows = d->batch * d->q_heads * d->q_len;
    c->lse = pbuf_new(rows);
    if (coin(60))
        d->lse = c->lse.data;

    c->o_cells = calloc(c->lo.total, 1);
    for (size_t b = 0; b < d->batch; b++)
        for (size_t h = 0; h < d->q_heads; h++)
            for (size_t i = 0; i < d->q_len; i++)
                memset(c->o_cells + b * c->lo.batch_stride + h * c->lo.head_stride +
                           i * c->lo.row_stride, 1, d->v_head_dim);
    c->want_o = malloc(rows * d->v_head_dim * sizeof(double));
    c->want_lse = malloc(rows * sizeof(double));
    /* The oracle on the values as stored, widened. */
    qkv_attention_desc wide = *d;
    wide.q.data = c->q, wide.q.dtype = QKV_F32;
    wide.k.data = c->k, wide.k.dtype = QKV_F32;
    wide.v.data = c->v, wide.v.dtype = QKV_F32;
    oracle_attention(&wide, c->want_o, c->want_lse);
}

static void make_case(attn_case *c, int decode)
{
    const case_spec spec = {.decode = decode};
    make_case_spec(c, &spec);
}

static void free_case(attn_case *c)
{
    free(c->q), free(c->k), free(c->v), free(c->mask), free(c->slopes), free(c->sinks);
    free(c->q_st), free(c->k_st), free(c->v_st);
    free(c->o_cells), free(c->want_o), free(c->want_lse);
    pbuf_free(&c->o), pbuf_free(&c->lse);
}

/* What run_case asserts against the oracle: the f32 contract, or (group
   fpmath) QKV_FPMATH_BF16's bound. */
static double case_tol = TOL, case_tol_lse = TOL_LSE_REL;
/* The largest errors run_case saw, over the factor the tolerance was
   widened by (group fpmath reports them). */
static double seen_err, seen_err_lse, case_spread = 1;

/* Runs one ISA on the case and checks it against the oracle; keeps the
   output in `keep` (dense rows) for comparisons between runs. */
static void run_case(attn_case *c, const qkv_funcs *f, int threads, float *keep, const char *what)
{
    qkv_attention_desc d = c->d;
    if (threads) {
        d.parallel_for = qkv_pool_parallel_for;
        d.pool = pools[threads];
    }
    pbuf_reset(&c->o);
    pbuf_reset(&c->lse);
    char text[300];
    describe(&d, text, sizeof text);
    const qkv_status st = f->attention(&d);
    check(st == QKV_OK, "%s: status %d (%s)", text, st, what);
    if (st != QKV_OK)
        return;
    double worst = 0, worst_lse = 0;
    size_t row = 0;
    for (size_t b = 0; b < d.batch; b++)
        for (size_t h = 0; h < d.q_heads; h++)
            for (size_t i = 0; i < d.q_len; i++, row++) {
                const size_t at = b * d.o.batch_stride + h * d.o.head_stride + i * d.o.row_stride;
                for (size_t x = 0; x < d.v_head_dim; x++) {
                    /* A 16-bit output is the f32 result rounded to nearest:
                       within TOL plus half its unit in the last place. */
                    const double want = c->want_o[row * d.v_head_dim + x];
                    const float o = out_value(scalar_funcs, &d.o, at + x);
                    const double e = fabs(o - want) - half_ulp(d.o.dtype, fabs(want) + case_tol);
                    worst = isnan(e) ? INFINITY : fmax(worst, e);
                    keep[row * d.v_head_dim + x] = o;
                }
                if (d.lse) {
                    const double w = c->want_lse[row], g = d.lse[row];
                    const double e = isinf(w) ? (g == w ? 0 : INFINITY)
                                              : fabs(g - w) / fmax(1, fabs(w));
                    worst_lse = isnan(e) ? INFINITY : fmax(worst_lse, e);
                }
            }
    check(worst <= case_tol, "%s (%s): output error %.3g", text, what, worst);
    check(worst_lse <= case_tol_lse, "%s (%s): lse relative error %.3g", text, what, worst_lse);
    seen_err = fmax(seen_err, worst / case_spread);
    seen_err_lse = fmax(seen_err_lse, worst_lse / case_spread);
    check(d.o.dtype == QKV_F32 ? gaps_untouched(&c->o, c->o_cells)
                               : guarded_intact16(&c->o, c->o_cells, c->lo.total),
          "%s (%s): wrote outside the output rows", text, what);
    check(d.lse ? pbuf_guards_ok(&c->lse) : pbuf_untouched(&c->lse),
          "%s (%s): wrote outside lse, or lse although none was asked", text, what);
}

static void test_attention(int cases, int decode_cases)
{
    T.fn = "attention";
    for (int t = 0; t < cases + decode_cases; t++) {
        attn_case c;
        make_case(&c, t >= cases);
        const size_t rows = c.d.batch * c.d.q_heads * c.d.q_len;
        float *ref = malloc(rows * c.d.v_head_dim * sizeof *ref);
        float *one = malloc(rows * c.d.v_head_dim * sizeof *one);
        float *three = malloc(rows * c.d.v_head_dim * sizeof *three);
        char text[300];
        describe(&c.d, text, sizeof text);
        for (size_t i = 0; i < n_isas; i++) {
            T.isa = isas[i].name;
            run_case(&c, isas[i].f, 0, ref, "calling thread");
            /* With a hook the split follows from the shapes and strides only: the same
               bits for one thread as for three. */
            if (t % 3 == 0 || t >= cases) {
                run_case(&c, isas[i].f, 1, one, "pool of 1");
                run_case(&c, isas[i].f, 3, three, "pool of 3");
                check(memcmp(one, three, rows * c.d.v_head_dim * sizeof *one) == 0,
                      "%s: 1 and 3 threads differ", text);
            }
        }
        T.isa = "-";
        free(ref), free(one), free(three);
        free_case(&c);
    }
}

/* ---- fpmath: the bf16 ISAs in both modes, and AMX on the tile emulation ----
   Which ISAs round to bf16 is the registry's answer (rounds_bf16), so a
   new one is tested here by itself. */

/* QKV_FPMATH_BF16's bound (qkv.h): with Q, K, V in [-1, 1] and the
   default scale the output stays within TOL_BF16 (absolute) and lse within
   TOL_BF16_LSE_REL (of max(1, |lse|)) of the double oracle on the stored
   values; a larger scale spreads the scores, and with them the error of
   rounding Q and K, by scale·sqrt(head_dim). Measured over random prefill
   and decode cases of every dtype and score modifier, head_dim up to 256
   and kv_len up to 32768 (qkv.h has the figures); the bound leaves room
   above the largest error seen. */
#define TOL_BF16 6e-3
#define TOL_BF16_LSE_REL 5e-3

/* The bound's factor for the scale of d: 1 up to the default scale. */
static double bf16_spread(const qkv_attention_desc *d)
{
    return fmax(1.0, d->scale * sqrt((double)d->head_dim));
}

static void set_tol(const qkv_attention_desc *d, qkv_fpmath m)
{
    case_spread = m == QKV_FPMATH_BF16 ? bf16_spread(d) : 1;
    case_tol = m == QKV_FPMATH_BF16 ? TOL_BF16 * case_spread : TOL;
    case_tol_lse = m == QKV_FPMATH_BF16 ? TOL_BF16_LSE_REL * case_spread : TOL_LSE_REL;
}

/* Runs a case on one implementation in one mode against the oracle (and,
   threaded, 1 and 3 threads for the same bits). */
static void fp_run(attn_case *c, const isa_under_test *im, qkv_fpmath m, float *keep, int threads)
{
    T.isa = im->name;
    c->d.fpmath = m;
    set_tol(&c->d, m);
    run_case(c, im->f, 0, keep, m == QKV_FPMATH_BF16 ? "fpmath bf16" : "fpmath strict");
    if (threads) {
        const size_t n = c->d.batch * c->d.q_heads * c->d.q_len * c->d.v_head_dim;
        float *one = malloc(n * sizeof *one), *three = malloc(n * sizeof *three);
        run_case(c, im->f, 1, one, "pool of 1");
        run_case(c, im->f, 3, three, "pool of 3");
        check(memcmp(one, three, n * sizeof *one) == 0, "fpmath %d: 1 and 3 threads differ", m);
        free(one), free(three);
    }
    set_tol(&c->d, QKV_FPMATH_STRICT);
    T.isa = "-";
}

/* Strict mode and subnormal bf16: vdpbf16ps and tdpbf16ps read them as
   zero, so Q·Kᵀ must not go through them. Each plant makes the subnormals
   carry a visible part of the score (a partner of 2^120 or 2^126 in the
   other operand; both are exact in bf16). */
static float subnormal_bf16(void)
{
    return (coin(50) ? -1.0f : 1.0f) * ldexpf((float)urand(1, 127), -133);
}

/* K: key 64 .. 127 (the second tile) has a subnormal first value; every Q
   row has 2^120 there (other keys 0), so tiles of both kinds meet. */
static void plant_k_subnormal(attn_case *c, const layout *lq, const layout *lk, const layout *lv)
{
    (void)lv;
    for (size_t h = 0; h < c->d.q_heads; h++)
        for (size_t i = 0; i < c->d.q_len; i++)
            c->q[h * lq->head_stride + i * lq->row_stride] = coin(50) ? -0x1p120f : 0x1p120f;
    for (size_t j = 0; j < c->d.kv_len; j++)
        c->k[j * lk->row_stride] = j >= 64 && j < 128 ? subnormal_bf16() : 0.0f;
}

/* Q: every other row has a subnormal first value, every key 2^126 there. */
static void plant_q_subnormal(attn_case *c, const layout *lq, const layout *lk, const layout *lv)
{
    (void)lv;
    for (size_t h = 0; h < c->d.q_heads; h++)
        for (size_t i = 0; i < c->d.q_len; i++)
            c->q[h * lq->head_stride + i * lq->row_stride] = i % 2 ? 0.0f : subnormal_bf16();
    for (size_t j = 0; j < c->d.kv_len; j++)
        c->k[j * lk->row_stride] = coin(50) ? -0x1p126f : 0x1p126f;
}

/* Hidden keys and V that is not finite, in both modes: a row that does not
   see key j must not get its Inf or NaN (the bf16 P·V weighs hidden keys
   by -0.0 too). Causal, so that tiles on the diagonal hide keys from some
   rows only. V[j][col] becomes `bad` (stored as vt) after the oracle ran
   on the clean V, so the other rows and columns must match the oracle; the
   rows that see it must not be finite when must_spread (Inf, NaN; a value
   only bf16 cannot hold is infinite where BF16 mode rounds, which a job of
   few rows does not). */
static void fp_nonfinite(const isa_under_test *im, size_t n_im, qkv_dtype vt, float bad, int must_spread)
{
    const qkv_dtype dt[4] = {QKV_F32, QKV_F32, vt, QKV_F32};
    for (qkv_fpmath m = QKV_FPMATH_STRICT; m <= QKV_FPMATH_BF16; m++) {
        case_spec spec = {.q_len = 100, .kv_len = 100, .head_dim = 64, .q_heads = 1, .dtypes = dt};
        attn_case c;
        make_case_spec(&c, &spec);
        c.d.mask = QKV_MASK_CAUSAL;
        c.d.mask_add = (qkv_float_mask){0};
        c.d.window = 0;
        c.d.softcap = 0;
        c.d.alibi_slopes = NULL;
        c.d.sinks = NULL;
        c.d.lse = NULL;
        qkv_attention_desc wide = c.d;
        wide.q.data = c.q, wide.q.dtype = QKV_F32;
        wide.k.data = c.k, wide.k.dtype = QKV_F32;
        wide.v.data = c.v, wide.v.dtype = QKV_F32;
        oracle_attention(&wide, c.want_o, c.want_lse);
        /* Key 71 of the diagonal tile 64 .. 127: row 70 does not see it but
           shares a block of rows and a pair of keys with rows that do. */
        const size_t j = 71, col = 5;
        const size_t at = j * c.d.v.row_stride + col;
        if (vt == QKV_F32) {
            c.v[at] = bad;   /* f32 V is read where it is */
        } else {
            uint16_t bits;
            scalar_funcs->convert(1, &bad, QKV_F32, &bits, vt);
            ((uint16_t *)c.v_st)[at] = bits;
        }
        for (size_t k = 0; k < n_im; k++) {
            c.d.fpmath = m;
            pbuf_reset(&c.o);
            const qkv_status st = im[k].f->attention(&c.d);
            T.isa = im[k].name;
            int clean = 1, spread = 1;
            for (size_t i = 0; i < c.d.q_len && st == QKV_OK; i++) {
                const size_t row = i * c.d.o.row_stride;
                for (size_t x = 0; x < c.d.v_head_dim; x++) {
                    const float o = out_value(scalar_funcs, &c.d.o, row + x);
                    if (i >= j && x == col) {       /* sees key j */
                        spread &= !isfinite(o);
                        continue;
                    }
                    const double tol = m == QKV_FPMATH_BF16 ? TOL_BF16 * bf16_spread(&c.d) : TOL;
                    clean &= fabs(o - c.want_o[i * c.d.v_head_dim + x]) <= tol;
                }
            }
            check(st == QKV_OK && clean, "fpmath %d, V %s holding %g at key %zu: other rows or "
                  "columns changed", m, dtype_names[vt], bad, j);
            if (must_spread)
                check(spread, "fpmath %d, V %s holding %g: the rows that see it are finite", m,
                      dtype_names[vt], bad);
        }
        T.isa = "-";
        free_case(&c);
    }
}

static void test_fpmath(int cases, int quick)
{
    T.fn = "fpmath";
    const isa_under_test *im = isas;   /* the ISAs under test, the emulated ones among them */
    const size_t n_im = n_isas;
    seen_err = seen_err_lse = 0;
    double bf16_err = 0, bf16_err_lse = 0, dec_err = 0, dec_err_lse = 0;
    size_t bf16_runs = 0;
    /* The errors of a run in BF16 mode, also apart for decode (jobs of at
       most 8 query rows a KV head: c's shape). */
#define BF16_SEEN()                                                   \
    do {                                                              \
        bf16_err = fmax(bf16_err, seen_err);                          \
        bf16_err_lse = fmax(bf16_err_lse, seen_err_lse);              \
        if (c.d.q_len * (c.d.q_heads / c.d.kv_heads) <= 8) {          \
            dec_err = fmax(dec_err, seen_err);                        \
            dec_err_lse = fmax(dec_err_lse, seen_err_lse);            \
        }                                                             \
        seen_err = seen_err_lse = 0;                                  \
        bf16_runs++;                                                  \
    } while (0)

    /* Every dtype combination on a prefill shape (the GEMM form, where the
       bf16 tiles are), strict mode on every ISA and BF16 mode where it
       rounds; --quick draws a quarter of them (they were three quarters of
       a quick run under qemu at 256-bit SVE). */
    static const qkv_dtype all[] = {QKV_F32, QKV_F16, QKV_BF16, QKV_Q8_0, QKV_Q4_0};
    for (size_t a = 0; a < 3; a++)
        for (size_t b = 0; b < 5; b++)
            for (size_t v = 0; v < 5; v++)
                for (size_t o = 0; o < 3; o++) {
                    if (quick && !coin(25))
                        continue;
                    const qkv_dtype dt[4] = {all[a], all[b], all[v], all[o]};
                    case_spec spec = {.q_len = urand(17, 40), .kv_len = urand(40, 160),
                                      .head_dim = coin(50) ? 64 : 96, .q_heads = 2, .dtypes = dt};
                    attn_case c;
                    make_case_spec(&c, &spec);
                    const size_t n = c.d.batch * c.d.q_heads * c.d.q_len * c.d.v_head_dim;
                    float *keep = malloc(2 * n_im * n * sizeof *keep);   /* [impl][mode] */
                    for (size_t k = 0; k < n_im; k++) {
                        fp_run(&c, &im[k], QKV_FPMATH_STRICT, keep + 2 * k * n, 0);
                        /* Without tiles BF16 mode is strict mode, bit for bit (the
                           random descriptors below check it): not run again. */
                        if (!im[k].rounds_bf16)
                            continue;
                        seen_err = seen_err_lse = 0;
                        fp_run(&c, &im[k], QKV_FPMATH_BF16, keep + (2 * k + 1) * n, 0);
                        BF16_SEEN();
                    }
                    /* The bf16 ISAs, the emulated AMX driver among them, next to
                       the strict result of the f32 ISA they build on (avx512,
                       neon, sve): each within its tolerance of the oracle, so
                       within that plus 1e-5 of each other (f32 output: no
                       rounding of the output to allow for). */
                    for (size_t k = 0; k < n_im && all[o] == QKV_F32; k++) {
                        if (!im[k].rounds_bf16)
                            continue;
                        size_t ref = n_im;
                        for (size_t x = 0; x < n_im; x++)
                            if (!im[x].rounds_bf16 && (int)im[x].f->isa == isa_f32_ancestor(im[k].f->isa))
                                ref = x;
                        if (ref == n_im)
                            continue;
                        T.isa = im[k].name;
                        const double ds = max_diff(keep + 2 * k * n, keep + 2 * ref * n, 1, n, n);
                        const double db = max_diff(keep + (2 * k + 1) * n, keep + 2 * ref * n, 1, n, n);
                        check(ds <= 2 * TOL, "q/k/v %s/%s/%s: strict %.3g from %s", dtype_names[all[a]],
                              dtype_names[all[b]], dtype_names[all[v]], ds, im[ref].name);
                        check(db <= TOL_BF16 * bf16_spread(&c.d) + TOL, "q/k/v %s/%s/%s: bf16 %.3g from "
                              "%s strict", dtype_names[all[a]], dtype_names[all[b]],
                              dtype_names[all[v]], db, im[ref].name);
                        T.isa = "-";
                    }
                    free(keep);
                    free_case(&c);
                }

    /* Runs c on every ISA in both modes (threaded: also on pools of 1 and
       3); a mode an ISA has no tiles for changes no bit, nor does it on
       jobs of at most 4 rows. */
#define FP_BOTH_MODES(threaded)                                                            \
    do {                                                                                   \
        const size_t n = c.d.batch * c.d.q_heads * c.d.q_len * c.d.v_head_dim;            \
        float *strict = malloc(n * sizeof *strict), *bf = malloc(n * sizeof *bf);         \
        for (size_t k = 0; k < n_im; k++) {                                                \
            fp_run(&c, &im[k], QKV_FPMATH_STRICT, strict, threaded);                       \
            seen_err = seen_err_lse = 0;                                                   \
            fp_run(&c, &im[k], QKV_FPMATH_BF16, bf, threaded);                             \
            BF16_SEEN();                                                                   \
            T.isa = im[k].name;                                                            \
            if (!im[k].rounds_bf16)                                                        \
                check(memcmp(strict, bf, n * sizeof *bf) == 0,                             \
                      "QKV_FPMATH_BF16 changed bits on an ISA without bf16 tiles");        \
            else if (!im[k].rounds_decode && c.d.q_len * (c.d.q_heads / c.d.kv_heads) <= 4) { \
                /* qkv.h: jobs of at most 8 query rows a KV head (4 on Arm                 \
                   under 512-bit vectors) compute as in STRICT mode, unless                \
                   the decode forms round Q·Kᵀ. */                                         \
                char what[300];                                                            \
                describe(&c.d, what, sizeof what);                                         \
                check(memcmp(strict, bf, n * sizeof *bf) == 0,                             \
                      "QKV_FPMATH_BF16 changed bits on jobs of %zu rows: %s",              \
                      c.d.q_len * (c.d.q_heads / c.d.kv_heads), what);                     \
            }                                                                              \
            T.isa = "-";                                                                   \
        }                                                                                  \
        free(strict), free(bf);                                                            \
        free_case(&c);                                                                     \
    } while (0)

    /* Random descriptors (every modifier, decode and prefill). */
    for (int t = 0; t < cases; t++) {
        attn_case c;
        make_case(&c, t % 4 == 3);
        FP_BOTH_MODES(t % 2 == 0);
    }
    /* Decode with Q8_0 or Q4_0 K or V, 4 rows a job: where a vector spans
       two blocks (SVE at 2048 bits) these are GEMM jobs, which must not
       take the bf16 tiles (random descriptors draw it now and then). */
    static const qkv_dtype few_rows[][4] = {{QKV_F32, QKV_Q8_0, QKV_F32, QKV_F32},
                                            {QKV_BF16, QKV_BF16, QKV_Q4_0, QKV_F32},
                                            {QKV_F16, QKV_Q4_0, QKV_Q8_0, QKV_BF16}};
    for (size_t t = 0; t < COUNT(few_rows); t++) {
        const case_spec spec = {.decode = 1, .q_len = 1, .kv_len = urand(100, 300), .head_dim = 64,
                                .q_heads = 4, .dtypes = few_rows[t]};
        attn_case c;
        make_case_spec(&c, &spec);
        FP_BOTH_MODES(0);
    }
#undef FP_BOTH_MODES

    /* The bound's far corners: head_dim 256 and kv_len 32768 (4096 for the
       emulated ISAs: an emulated AMX tile costs 8192 scalar FMAs). */
    const size_t big_kv[] = {32768, 4096, 300};
    for (size_t g = 0; g < 2 * COUNT(big_kv); g++) {
        /* prefill, then decode (4 query heads: the decode forms' bf16) */
        const int decode = g >= COUNT(big_kv);
        if (quick && g % COUNT(big_kv) == 0)
            continue;
        const qkv_dtype dt[4] = {QKV_BF16, QKV_BF16, QKV_BF16, QKV_F32};
        case_spec spec = {.q_len = decode ? 1 : urand(17, 32), .kv_len = big_kv[g % COUNT(big_kv)],
                          .head_dim = 256, .q_heads = decode ? 4 : 1,
                          .dtypes = coin(50) ? dt : NULL};
        attn_case c;
        make_case_spec(&c, &spec);
        float *keep = malloc(c.d.q_heads * c.d.q_len * c.d.v_head_dim * sizeof *keep);
        for (size_t k = 0; k < n_im; k++) {
            /* 32768 keys only where BF16 mode rounds: an ISA without tiles
               would run strict mode there, no test of the bound, and slow
               under qemu (the scalar reference at head_dim 256). */
            if (spec.kv_len > 4096 && (!im[k].rounds_bf16 || strstr(im[k].name, "-emu")))
                continue;
            seen_err = seen_err_lse = 0;
            fp_run(&c, &im[k], QKV_FPMATH_BF16, keep, 0);
            BF16_SEEN();
        }
        free(keep);
        free_case(&c);
    }

    /* BF16 mode does round where there are tiles: f32 inputs on a prefill
       shape come out measurably different from strict mode (else the
       bound above would hold for a kernel that never used its tiles); and
       on a decode shape (4 and 8 query heads on one KV head: both decode
       forms) where the decode forms round, K of each dtype, V bf16 (so
       that their bf16 P·V runs, checked against the bound). */
    for (int shape = 0; shape < 7; shape++) {
        static const qkv_dtype kt[5] = {QKV_F32, QKV_F16, QKV_BF16, QKV_Q8_0, QKV_Q4_0};
        const int decode = shape > 0;
        const qkv_dtype dt[4] = {QKV_F32, decode ? kt[(shape - 1) % 5] : QKV_F32,
                                 decode ? QKV_BF16 : QKV_F32, QKV_F32};
        case_spec spec = {.q_len = decode ? 1 : 32, .kv_len = decode ? 48 : 200, .head_dim = 64,
                          .q_heads = decode ? (shape < 6 ? 4 : 8) : 1, .dtypes = dt,
                          .plain = decode};   /* a window of one key would hide the rounding */
        attn_case c;
        make_case_spec(&c, &spec);
        const size_t n = c.d.q_heads * c.d.q_len * c.d.v_head_dim;
        float *strict = malloc(n * sizeof *strict), *bf = malloc(n * sizeof *bf);
        for (size_t k = 0; k < n_im; k++) {
            if (!im[k].rounds_bf16 || (decode && !im[k].rounds_decode))
                continue;
            fp_run(&c, &im[k], QKV_FPMATH_STRICT, strict, 0);
            seen_err = seen_err_lse = 0;
            fp_run(&c, &im[k], QKV_FPMATH_BF16, bf, 0);
            BF16_SEEN();
            T.isa = im[k].name;
            if (!decode && isa_bf16_shape_off(im[k].f->isa, c.d.q_len, &c.d))
                printf("fpmath: %s has no bf16 tiles for this shape (no room): not checked\n",
                       im[k].name);
            else
                check(max_diff(strict, bf, 1, n, n) > 1e-5, "QKV_FPMATH_BF16 rounded nothing "
                      "(%s, K %s)", decode ? "decode" : "prefill", dtype_names[dt[1]]);
            T.isa = "-";
        }
        free(strict), free(bf);
        free_case(&c);
    }

    /* Strict mode, bf16 Q and K holding subnormals: the f32 contract, in
       prefill and in both decode forms (4 and 8 query heads, one row). */
    for (int w = 0; w < 6; w++) {
        const qkv_dtype dt[4] = {QKV_BF16, QKV_BF16, QKV_F32, QKV_F32};
        const int decode = w >= 2;
        case_spec spec = {.q_len = decode ? 1 : urand(17, 32), .kv_len = 200, .head_dim = 64,
                          .q_heads = decode ? (w < 4 ? 4 : 8) : 2, .dtypes = dt,
                          .plant = w % 2 ? plant_q_subnormal : plant_k_subnormal};
        attn_case c;
        make_case_spec(&c, &spec);
        float *keep = malloc(c.d.q_heads * c.d.q_len * c.d.v_head_dim * sizeof *keep);
        for (size_t k = 0; k < n_im; k++)
            fp_run(&c, &im[k], QKV_FPMATH_STRICT, keep, 0);
        free(keep);
        free_case(&c);
    }

    /* Inf and NaN in V, and an f32 value that bf16 cannot hold. */
    fp_nonfinite(im, n_im, QKV_F32, INFINITY, 1);
    fp_nonfinite(im, n_im, QKV_BF16, NAN, 1);
    fp_nonfinite(im, n_im, QKV_F32, 3.4e38f, 0);

    printf("fpmath: QKV_FPMATH_BF16 max error %.3g (bound %.3g), lse %.3g (bound %.3g; decode "
           "jobs %.3g and %.3g), %zu runs on", bf16_err, TOL_BF16, bf16_err_lse, TOL_BF16_LSE_REL,
           dec_err, dec_err_lse, bf16_runs);
    for (size_t k = 0; k < n_im; k++)
        printf(" %s", im[k].name);
    printf("\n");
#undef BF16_SEEN
}

/* ---- bad input: each error of API.md, and nothing written ------------------- */

static void valid_desc(qkv_attention_desc *d, const float *q, const float *k, const float *v,
                       float *o)
{
    memset(d, 0, sizeof *d);
    d->batch = 1;
    d->q_heads = 2;
    d->kv_heads = 1;
    d->q_len = 3;
    d->kv_len = 5;
    d->head_dim = d->v_head_dim = 4;
    d->q = (qkv_tensor){q, QKV_F32, 24, 12, 4};
    d->k = (qkv_tensor){k, QKV_F32, 20, 20, 4};
    d->v = (qkv_tensor){v, QKV_F32, 20, 20, 4};
    d->o = (qkv_out_tensor){o, 24, 12, 4, QKV_F32};
    d->scale = 0.5f;
}

static void test_badinput(const qkv_funcs *f)
{
    T.fn = "badinput";
    float *q = input(24, -1, 1), *k = input(20, -1, 1), *v = input(20, -1, 1);
    pbuf s = pbuf_new(64);
    const size_t big = SIZE_MAX / 2;
    struct expectation { qkv_status want, got; const char *what; } r[80];
    size_t n = 0;
#define EXPECT(want_, call_) (r[n++] = (struct expectation){want_, call_, #call_})
    EXPECT(QKV_ERR_ARG, f->scores(0, 3, 4, 1, q, 4, k, 4, s.data, 3));
    EXPECT(QKV_ERR_ARG, f->scores(3, 0, 4, 1, q, 4, k, 4, s.data, 3));
    EXPECT(QKV_ERR_ARG, f->scores(3, 3, 0, 1, q, 4, k, 4, s.data, 3));
    EXPECT(QKV_ERR_ARG, f->scores(3, 3, 4, 1, NULL, 4, k, 4, s.data, 3));
    EXPECT(QKV_ERR_ARG, f->scores(3, 3, 4, 1, q, 4, NULL, 4, s.data, 3));
    EXPECT(QKV_ERR_ARG, f->scores(3, 3, 4, 1, q, 4, k, 4, NULL, 3));
    EXPECT(QKV_ERR_ARG, f->scores(3, 3, 4, 1, q, 3, k, 4, s.data, 3));
    EXPECT(QKV_ERR_ARG, f->scores(3, 3, 4, 1, q, 4, k, 3, s.data, 3));
    EXPECT(QKV_ERR_ARG, f->scores(3, 3, 4, 1, q, 4, k, 4, s.data, 2));
    EXPECT(QKV_ERR_ARG, f->scores(3, 3, 4, NAN, q, 4, k, 4, s.data, 3));
    EXPECT(QKV_ERR_ARG, f->scores(3, 3, 4, -1, q, 4, k, 4, s.data, 3));
    EXPECT(QKV_ERR_ARG, f->scores(3, 3, 4, INFINITY, q, 4, k, 4, s.data, 3));
    EXPECT(QKV_ERR_OVERFLOW, f->scores(3, 3, 4, 1, q, big, k, 4, s.data, 3));
    EXPECT(QKV_ERR_OVERFLOW, f->scores(3, 3, 4, 1, q, 4, k, 4, s.data, big));
    EXPECT(QKV_ERR_ARG, f->scores(3, 3, 4, 1, q, 4, k, 4, q + 2, 3));   /* S overlaps Q */
    EXPECT(QKV_ERR_ARG, f->softmax(0, 3, s.data, 3));
    EXPECT(QKV_ERR_ARG, f->softmax(3, 0, s.data, 3));
    EXPECT(QKV_ERR_ARG, f->softmax(3, 3, NULL, 3));
    EXPECT(QKV_ERR_ARG, f->softmax(3, 3, s.data, 2));
    EXPECT(QKV_ERR_OVERFLOW, f->softmax(3, 3, s.data, big));
    EXPECT(QKV_ERR_ARG, f->weighted_sum(0, 3, 4, q, 3, v, 4, s.data, 4));
    EXPECT(QKV_ERR_ARG, f->weighted_sum(3, 3, 0, q, 3, v, 4, s.data, 4));
    EXPECT(QKV_ERR_ARG, f->weighted_sum(3, 3, 4, NULL, 3, v, 4, s.data, 4));
    EXPECT(QKV_ERR_ARG, f->weighted_sum(3, 3, 4, q, 2, v, 4, s.data, 4));
    EXPECT(QKV_ERR_ARG, f->weighted_sum(3, 3, 4, q, 3, v, 3, s.data, 4));
    EXPECT(QKV_ERR_ARG, f->weighted_sum(3, 3, 4, q, 3, v, 4, s.data, 3));
    EXPECT(QKV_ERR_OVERFLOW, f->weighted_sum(3, 3, 4, q, 3, v, big, s.data, 4));
    EXPECT(QKV_ERR_ARG, f->weighted_sum(3, 3, 4, q, 3, v, 4, v, 4));    /* O is V */

    float *o = s.data;
    float *lse = s.data + 30;
    qkv_attention_desc d;
    float bad_slopes[2] = {0.1f, NAN}, slopes[2] = {0.1f, 0.2f};
#define EXPECT_DESC(want_, edit_) \
    (valid_desc(&d, q, k, v, o), (edit_), r[n++] = (struct expectation){want_, f->attention(&d), #edit_})
    EXPECT(QKV_ERR_ARG, f->attention(NULL));
    EXPECT_DESC(QKV_ERR_ARG, d.batch = 0);
    EXPECT_DESC(QKV_ERR_ARG, d.q_heads = 0);
    EXPECT_DESC(QKV_ERR_ARG, d.kv_heads = 0);
    EXPECT_DESC(QKV_ERR_ARG, d.q_len = 0);
    EXPECT_DESC(QKV_ERR_ARG, d.kv_len = 0);
    EXPECT_DESC(QKV_ERR_ARG, d.head_dim = 0);
    EXPECT_DESC(QKV_ERR_ARG, d.v_head_dim = 0);
    EXPECT_DESC(QKV_ERR_ARG, (d.q_heads = 3, d.kv_heads = 2));
    EXPECT_DESC(QKV_ERR_ARG, d.q.data = NULL);
    EXPECT_DESC(QKV_ERR_ARG, d.k.data = NULL);
    EXPECT_DESC(QKV_ERR_ARG, d.v.data = NULL);
    EXPECT_DESC(QKV_ERR_ARG, d.o.data = NULL);
    EXPECT_DESC(QKV_ERR_ARG, d.q.row_stride = 3);
    EXPECT_DESC(QKV_ERR_ARG, d.o.row_stride = 3);
    EXPECT_DESC(QKV_ERR_ARG, d.o.head_stride = 4);            /* output rows overlap */
    EXPECT_DESC(QKV_ERR_ARG, d.scale = NAN);
    EXPECT_DESC(QKV_ERR_ARG, d.scale = -0.5f);
    EXPECT_DESC(QKV_ERR_ARG, d.softcap = -1);
    EXPECT_DESC(QKV_ERR_ARG, d.softcap = INFINITY);
    EXPECT_DESC(QKV_ERR_ARG, d.mask = (qkv_mask_kind)7);
    EXPECT_DESC(QKV_ERR_ARG, d.mask = QKV_MASK_ADDITIVE);     /* no mask data */
    EXPECT_DESC(QKV_ERR_ARG, (d.mask = QKV_MASK_CAUSAL, d.mask_add.data = q, d.mask_add.row_stride = 5));
    EXPECT_DESC(QKV_ERR_ARG, (d.mask = QKV_MASK_ADDITIVE, d.mask_add.data = k, d.mask_add.row_stride = 4));
    EXPECT_DESC(QKV_ERR_ARG, d.alibi_slopes = bad_slopes);
    EXPECT_DESC(QKV_ERR_ARG, d.sinks = bad_slopes);
    EXPECT_DESC(QKV_ERR_ARG, d.pool = pools[2]);             /* a pool but no hook */
    EXPECT_DESC(QKV_ERR_ARG, d.q.dtype = (qkv_dtype)9);
    EXPECT_DESC(QKV_ERR_UNSUPPORTED, d.q.dtype = QKV_Q8_0);
    EXPECT_DESC(QKV_ERR_UNSUPPORTED, d.o.dtype = QKV_Q4_0);
    EXPECT_DESC(QKV_ERR_ARG, d.k.dtype = QKV_Q8_0);           /* head_dim 4: no whole blocks */
    EXPECT_DESC(QKV_ERR_ARG, d.o.dtype = (qkv_dtype)9);
    EXPECT_DESC(QKV_ERR_ARG, d.fpmath = (qkv_fpmath)2);
    EXPECT_DESC(QKV_ERR_ARG, d.fpmath = (qkv_fpmath)-1);
    EXPECT_DESC(QKV_ERR_OVERFLOW, d.k.row_stride = big);
    EXPECT_DESC(QKV_ERR_OVERFLOW, (d.q_len = big, d.o.batch_stride = 0, d.o.head_stride = 0));
    EXPECT_DESC(QKV_ERR_ARG, d.o.data = (float *)q);          /* O overlaps Q */
    EXPECT_DESC(QKV_ERR_ARG, d.lse = o + 10);                 /* lse overlaps O */
    EXPECT_DESC(QKV_ERR_ARG, (d.alibi_slopes = slopes, d.lse = slopes));
    for (size_t i = 0; i < n; i++)
        check(r[i].got == r[i].want, "%s returned %d, want %d", r[i].what, r[i].got, r[i].want);
    check(pbuf_untouched(&s), "an output was written by a call that failed");
    (void)lse;
    free(q), free(k), free(v);
    pbuf_free(&s);
#undef EXPECT
#undef EXPECT_DESC
}

/* ---- the pool ------------------------------------------------------------------ */

typedef struct count_ctx {
    atomic_int *hits;
    qkv_pool *pool;
    atomic_int nested;
} count_ctx;

static void count_task(void *arg, size_t i)
{
    count_ctx *c = arg;
    atomic_fetch_add(&c->hits[i], 1);
}

static void nested_task(void *arg, size_t i)
{
    count_ctx *c = arg;
    (void)i;
    /* A task calling its own pool runs inline instead of deadlocking. */
    atomic_int local[3] = {0, 0, 0};
    count_ctx inner = {local, NULL, 0};
    qkv_pool_parallel_for(c->pool, 3, count_task, &inner);
    if (local[0] == 1 && local[1] == 1 && local[2] == 1)
        atomic_fetch_add(&c->nested, 1);
}

static void test_pool(void)
{
    T.fn = "pool";
    check(qkv_pool_create(2, NULL) == QKV_ERR_ARG, "qkv_pool_create(NULL out)");
    qkv_pool_destroy(NULL);
    const unsigned threads[] = {0, 1, 2, 4};
    for (size_t t = 0; t < COUNT(threads); t++) {
        qkv_pool *pool = NULL;
        check(qkv_pool_create(threads[t], &pool) == QKV_OK && pool, "create %u", threads[t]);
        for (size_t count = 0; count < 300; count += 37) {
            atomic_int hits[300];
            for (size_t i = 0; i < 300; i++)
                atomic_init(&hits[i], 0);
            count_ctx c = {hits, pool, 0};
            for (int rep = 0; rep < 5; rep++)
                qkv_pool_parallel_for(pool, count, count_task, &c);
            int ok = 1;
            for (size_t i = 0; i < 300; i++)
                ok &= hits[i] == (i < count ? 5 : 0);
            check(ok, "%u threads, %zu tasks: not every index exactly once", threads[t], count);
        }
        count_ctx c = {NULL, pool, 0};
        qkv_pool_parallel_for(pool, 8, nested_task, &c);
        check(c.nested == 8, "%u threads: nested parallel_for", threads[t]);
        qkv_pool_destroy(pool);
    }
    atomic_int hits[4] = {0, 0, 0, 0};
    count_ctx c = {hits, NULL, 0};
    qkv_pool_parallel_for(NULL, 4, count_task, &c);
    check(hits[0] == 1 && hits[3] == 1, "NULL pool does not run inline");
}

/* ---- dispatch: QKV_ISA and the process-wide choice --------------------------- */

static int same_bits_as_direct(const qkv_funcs *f)
{
    float *q = input(7 * 33, -1, 1), *k = input(9 * 33, -1, 1);
    float a[63], b[63];
    const qkv_status sa = qkv_scores(7, 9, 33, 0.2f, q, 33, k, 33, a, 9);
    const qkv_status sb = f->scores(7, 9, 33, 0.2f, q, 33, k, 33, b, 9);
    free(q), free(k);
    return sa == QKV_OK && sb == QKV_OK && memcmp(a, b, sizeof a) == 0;
}

static void test_dispatch(const char *expect_isas, const char *expect_best)
{
    T.fn = "dispatch";
    const char *env = getenv("QKV_ISA");
    if (env && *env) {
        qkv_isa named = QKV_ISA_NONE;
        const int known = qkv_isa_from_name(env, &named) == QKV_OK;
        if (known && qkv_isa_supported(named)) {
            check(qkv_isa_get() == named, "QKV_ISA=%s but %s is active", env, qkv_isa_name(qkv_isa_get()));
            const qkv_funcs *f;
            qkv_isa_funcs(named, &f);
            check(same_bits_as_direct(f), "QKV_ISA=%s: dispatched results differ from %s's", env, env);
        } else {
            printf("QKV_ISA=%s cannot run here: checking that the entry points refuse\n", env);
            check(qkv_isa_get() == (known ? named : QKV_ISA_NONE), "QKV_ISA=%s: qkv_isa_get() = %d",
                  env, qkv_isa_get());
            pbuf s = pbuf_new(16);
            float x[16] = {0};
            qkv_attention_desc d;
            valid_desc(&d, x, x, x, s.data);
            d.q_heads = 1, d.q_len = 1, d.kv_len = 1;
            check(qkv_scores(2, 2, 2, 1, x, 2, x, 2, s.data, 2) == QKV_ERR_UNSUPPORTED &&
                  qkv_softmax(1, 2, s.data, 2) == QKV_ERR_UNSUPPORTED &&
                  qkv_weighted_sum(2, 2, 2, x, 2, x, 2, s.data, 2) == QKV_ERR_UNSUPPORTED &&
                  qkv_attention(&d) == QKV_ERR_UNSUPPORTED,
                  "QKV_ISA=%s: an entry point did not return QKV_ERR_UNSUPPORTED", env);
            check(pbuf_untouched(&s), "QKV_ISA=%s: a refused call wrote its output", env);
            pbuf_free(&s);
            check(qkv_isa_set(qkv_isa_best()) == QKV_OK && qkv_isa_get() == qkv_isa_best(),
                  "qkv_isa_set(best) after a bad QKV_ISA");
        }
    } else {
        check(qkv_isa_get() == qkv_isa_best(), "without QKV_ISA the best ISA is not chosen");
    }
    /* Every runnable ISA can be chosen and is then really used; every other
       one is refused and leaves the choice alone. */
    const qkv_isa before = qkv_isa_get();
    for (int i = 0; i < QKV_ISA_COUNT; i++) {
        const qkv_funcs *f;
        if (qkv_isa_funcs((qkv_isa)i, &f) == QKV_OK) {
            check(qkv_isa_set((qkv_isa)i) == QKV_OK && qkv_isa_get() == i, "cannot choose %s",
                  qkv_isa_name((qkv_isa)i));
            check(same_bits_as_direct(f), "chose %s but results differ from its own", qkv_isa_name((qkv_isa)i));
        } else {
            const qkv_isa now = qkv_isa_get();
            check(qkv_isa_set((qkv_isa)i) == QKV_ERR_UNSUPPORTED && qkv_isa_get() == now,
                  "unsupported %s was accepted", qkv_isa_name((qkv_isa)i));
        }
    }
    check(qkv_isa_set(QKV_ISA_NONE) == QKV_ERR_UNSUPPORTED, "QKV_ISA_NONE accepted");
    if (qkv_isa_supported(before))
        qkv_isa_set(before);

    if (expect_isas) {
        char list[256] = "";
        for (int i = 0; i < QKV_ISA_COUNT; i++)
            if (qkv_isa_supported((qkv_isa)i))
                snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", *list ? "," : "",
                         qkv_isa_name((qkv_isa)i));
        check(strcmp(list, expect_isas) == 0, "supported ISAs are %s, expected %s", list, expect_isas);
    }
    if (expect_best)
        check(strcmp(qkv_isa_name(qkv_isa_best()), expect_best) == 0, "best ISA is %s, expected %s",
              qkv_isa_name(qkv_isa_best()), expect_best);
}

/* ---- main ----------------------------------------------------------------------- */

static const char *arg_value(const char *arg, const char *name)
{
    const size_t n = strlen(name);
    return strncmp(arg, name, n) == 0 && arg[n] == '=' ? arg + n + 1 : NULL;
}

static const char *const groups[] = {"dispatch", "api", "pool", "seed", "badinput", "scores",
                                     "softmax", "weighted_sum", "attention", "kernels", "fpmath"};

/* The groups that a comma-separated list names, as bits of groups[]; -1
   when a name is not a group. */
static long group_bits(const char *list)
{
    long bits = 0;
    for (const char *p = list; p; p = strchr(p, ',')) {
        p += *p == ',';
        const size_t n = strcspn(p, ",");
        size_t g = 0;
        while (g < COUNT(groups) && !(strlen(groups[g]) == n && strncmp(p, groups[g], n) == 0))
            g++;
        if (g == COUNT(groups))
            return -1;
        bits |= 1L << g;
    }
    return bits;
}

/* Whether `emu` names the emulation of ISA `name` (name + "-emu"). */
static int emulates(const char *emu, const char *name)
{
    const size_t n = strlen(name);
    return strncmp(emu, name, n) == 0 && strcmp(emu + n, "-emu") == 0;
}

/* The AVX-512 family's ISAs this CPU lacks: not passed, skipped, and
   whether their emulation ran instead. */
static void say_skipped(const char *only, int native)
{
    const qkv_isa family[] = {QKV_ISA_AVX512, QKV_ISA_AVX512BF16, QKV_ISA_AMX};
    for (size_t i = 0; i < COUNT(family); i++) {
        const char *name = qkv_isa_name(family[i]);
        if (!qkv_isa_built(family[i]) || qkv_isa_supported(family[i]) ||
            (only && strcmp(only, name) != 0 && !emulates(only, name)))
            continue;
        int emulated = 0;
        for (size_t k = 0; k < n_isas; k++)
            emulated |= emulates(isas[k].name, name);
        printf("%s: skipped: no %s (native); %s\n", name, name,
               emulated ? "its kernels ran on the C emulation of AVX-512 as the -emu ISA"
               : native ? "its emulation left out (--native)"
                        : "its emulation did not run either (it needs AVX2, FMA, F16C)");
    }
}

int main(int argc, char **argv)
{
    const char *only_isa = NULL, *only_fn = NULL, *skip_fn = NULL, *expect_isas = NULL;
    const char *expect_best = NULL, *v;
    int quick = 0, native = 0;
    seed = (uint64_t)time(NULL);
    for (int i = 1; i < argc; i++) {
        if ((v = arg_value(argv[i], "--seed")))
            seed = strtoull(v, NULL, 0);
        else if ((v = arg_value(argv[i], "--isa")))
            only_isa = v;
        else if ((v = arg_value(argv[i], "--function")))
            only_fn = v;
        else if ((v = arg_value(argv[i], "--skip")))
            skip_fn = v;
        else if ((v = arg_value(argv[i], "--expect-isas")))
            expect_isas = v;
        else if ((v = arg_value(argv[i], "--expect-best")))
            expect_best = v;
        else if (strcmp(argv[i], "--quick") == 0)
            quick = 1;
        else if (strcmp(argv[i], "--verbose") == 0)
            verbose = 1;
        else if (strcmp(argv[i], "--native") == 0)
            native = 1;
        else {
            fprintf(stderr, "usage: %s [--seed=N] [--isa=NAME] [--function=NAMES] [--skip=NAMES] "
                            "[--quick] [--verbose] [--native] [--expect-isas=a,b] [--expect-best=NAME]\n",
                    argv[0]);
            return 2;
        }
    }
    const long only_bits = only_fn ? group_bits(only_fn) : (1L << COUNT(groups)) - 1;
    const long skip_bits = skip_fn ? group_bits(skip_fn) : 0;
    if (only_bits < 0 || skip_bits < 0) {
        fprintf(stderr, "checkasm: unknown group in --function or --skip (groups:");
        for (size_t g = 0; g < COUNT(groups); g++)
            fprintf(stderr, " %s", groups[g]);
        fprintf(stderr, ")\n");
        return 2;
    }
    rng = seed;
    T.seed = &seed;
    find_isas(only_isa, native);
    printf("checkasm: seed %" PRIu64 ", ISAs:", seed);
    for (size_t i = 0; i < n_isas; i++)
        printf(" %s", isas[i].name);
    printf(" (best %s, active %s)\n", qkv_isa_name(qkv_isa_best()), qkv_isa_name(qkv_isa_get()));
    if (only_isa && !n_isas) {
        fprintf(stderr, "checkasm: ISA %s is not supported here\n", only_isa);
        return 1;
    }
    for (unsigned t = 1; t <= 3; t++)
        qkv_pool_create(t, &pools[t]);

    const int scale = quick ? 1 : 4;
#define GROUP(name) ((only_bits & ~skip_bits & group_bits(name)) != 0)
    if (GROUP("dispatch"))
        test_dispatch(expect_isas, expect_best);
    if (GROUP("api"))
        test_api();
    if (GROUP("pool"))
        test_pool();
    for (size_t i = 0; i < n_isas; i++) {
        T.isa = isas[i].name;
        if (GROUP("seed"))
            test_seed(isas[i].f);
        if (GROUP("badinput"))
            test_badinput(isas[i].f);
    }
    T.isa = "-";
    if (GROUP("scores"))
        test_scores(15 * scale, quick);
    if (GROUP("softmax"))
        test_softmax(15 * scale);
    if (GROUP("weighted_sum"))
        test_weighted_sum(15 * scale);
    if (GROUP("attention"))
        test_attention(25 * scale, 3 * scale);
    if (GROUP("kernels"))
        test_kernels(&T, seed, scale, only_isa, native);
    if (GROUP("fpmath"))
        test_fpmath(6 * scale, quick);
    if (verbose)
        printf("checkasm: %d cases per group (quick: %d)\n", 15 * scale, quick);
    say_skipped(only_isa, native);

    for (unsigned t = 1; t <= 3; t++)
        qkv_pool_destroy(pools[t]);
    return tally_finish(&T);
}

/*
 * AArch64 SVE kernels, vector-length agnostic: one binary for every vector
 * length from 128 to 2048 bits. VL below is svcntw(), the floats per
 * vector, known only at run time.
 *
 *   qk_f32_4x4_sve    Q·Kᵀ tile: 4 query rows × 4 keys, dot products along d
 *   softmax_f32_sve   max, SLEEF Sleef_expfx_u10sve, 1/sum
 *   pv_f32_4x2v_sve   P·V tile: 4 output rows × 2 vectors (2·VL columns)
 *   attention_f32_sve the blocked online softmax of attention_tiled.h
 *
 * Tails need no scalar code: the last partial vector of every loop runs
 * under an svwhilelt predicate, and predicated loads and stores do not
 * touch memory in their inactive lanes, so no access passes a row's end.
 */
#include <arm_sve.h>
#include <math.h>
#include <sleef.h>
#include <string.h>

#include "kernels.h"

#define ALWAYS_INLINE static inline __attribute__((always_inline))

/* ---- Q·Kᵀ ---------------------------------------------------------------- */

/* A 4 × 4 tile of scores. Q and K are both row-major along d, so each score
   is a dot product along d: 16 vector accumulators (16 + 4 q + 4 k = 24 of
   the 32 registers), 16 FMAs per 8 loads, reduced across lanes once at the
   end. SVE vectors cannot live in arrays, hence the spelled-out names. The
   accumulators merge (_m) under the loop predicate, so the last partial
   vector of d leaves their inactive lanes as they were. */
static void qk_f32_4x4_sve(size_t d, float scale, const float *const *q, const float *k,
                           size_t ldk, float *s, size_t lds)
{
    const float *q0 = q[0], *q1 = q[1], *q2 = q[2], *q3 = q[3];
    const float *k0 = k, *k1 = k + ldk, *k2 = k + 2 * ldk, *k3 = k + 3 * ldk;
    svfloat32_t a00 = svdup_n_f32(0.0f), a01 = a00, a02 = a00, a03 = a00;
    svfloat32_t a10 = a00, a11 = a00, a12 = a00, a13 = a00;
    svfloat32_t a20 = a00, a21 = a00, a22 = a00, a23 = a00;
    svfloat32_t a30 = a00, a31 = a00, a32 = a00, a33 = a00;
    for (size_t c = 0; c < d; c += svcntw()) {
        const svbool_t pg = svwhilelt_b32_u64(c, d);
        const svfloat32_t vk0 = svld1_f32(pg, k0 + c), vk1 = svld1_f32(pg, k1 + c);
        const svfloat32_t vk2 = svld1_f32(pg, k2 + c), vk3 = svld1_f32(pg, k3 + c);
        svfloat32_t vq;
#define QK_ROW(r)                                   \
        vq = svld1_f32(pg, q##r + c);               \
        a##r##0 = svmla_f32_m(pg, a##r##0, vq, vk0); \
        a##r##1 = svmla_f32_m(pg, a##r##1, vq, vk1); \
        a##r##2 = svmla_f32_m(pg, a##r##2, vq, vk2); \
        a##r##3 = svmla_f32_m(pg, a##r##3, vq, vk3);
        QK_ROW(0) QK_ROW(1) QK_ROW(2) QK_ROW(3)
#undef QK_ROW
    }
    const svbool_t all = svptrue_b32();
#define QK_STORE(r)                                      \
    s[r * lds + 0] = scale * svaddv_f32(all, a##r##0);   \
    s[r * lds + 1] = scale * svaddv_f32(all, a##r##1);   \
    s[r * lds + 2] = scale * svaddv_f32(all, a##r##2);   \
    s[r * lds + 3] = scale * svaddv_f32(all, a##r##3);
    QK_STORE(0) QK_STORE(1) QK_STORE(2) QK_STORE(3)
#undef QK_STORE
}

/* One row x against four rows y0..y3: the 1 × 4 tile (x a query, y keys)
   and, with the roles swapped, the 4 × 1 tile of the key tail. */
static void dot_f32_1x4_sve(size_t d, const float *x, const float *y0, const float *y1,
                            const float *y2, const float *y3, float out[4])
{
    svfloat32_t a0 = svdup_n_f32(0.0f), a1 = a0, a2 = a0, a3 = a0;
    for (size_t c = 0; c < d; c += svcntw()) {
        const svbool_t pg = svwhilelt_b32_u64(c, d);
        const svfloat32_t vx = svld1_f32(pg, x + c);
        a0 = svmla_f32_m(pg, a0, vx, svld1_f32(pg, y0 + c));
        a1 = svmla_f32_m(pg, a1, vx, svld1_f32(pg, y1 + c));
        a2 = svmla_f32_m(pg, a2, vx, svld1_f32(pg, y2 + c));
        a3 = svmla_f32_m(pg, a3, vx, svld1_f32(pg, y3 + c));
    }
    const svbool_t all = svptrue_b32();
    out[0] = svaddv_f32(all, a0);
    out[1] = svaddv_f32(all, a1);
    out[2] = svaddv_f32(all, a2);
    out[3] = svaddv_f32(all, a3);
}

static float dot_f32_1x1_sve(size_t d, const float *x, const float *y)
{
    svfloat32_t a = svdup_n_f32(0.0f);
    for (size_t c = 0; c < d; c += svcntw()) {
        const svbool_t pg = svwhilelt_b32_u64(c, d);
        a = svmla_f32_m(pg, a, svld1_f32(pg, x + c), svld1_f32(pg, y + c));
    }
    return svaddv_f32(svptrue_b32(), a);
}

/* ---- softmax --------------------------------------------------------------- */

/* Max over x[0..n) ignoring NaN: FMAXNM returns the number when one operand
   is a NaN, which is what the scalar `if (x > max)` does. */
static float row_max_f32_sve(const float *x, size_t n)
{
    svfloat32_t m = svdup_n_f32(-INFINITY);
    for (size_t j = 0; j < n; j += svcntw()) {
        const svbool_t pg = svwhilelt_b32_u64(j, n);
        m = svmaxnm_f32_m(pg, m, svld1_f32(pg, x + j));
    }
    return svmaxnmv_f32(svptrue_b32(), m);
}

/* The same, and the minimum, in one pass: the fused kernel wants to know
   whether the tile has a hidden key (min == -INFINITY). */
static float row_max_min_f32_sve(const float *x, size_t n, float *min)
{
    svfloat32_t hi = svdup_n_f32(-INFINITY), lo = svdup_n_f32(INFINITY);
    for (size_t j = 0; j < n; j += svcntw()) {
        const svbool_t pg = svwhilelt_b32_u64(j, n);
        const svfloat32_t v = svld1_f32(pg, x + j);
        hi = svmaxnm_f32_m(pg, hi, v);
        lo = svminnm_f32_m(pg, lo, v);
    }
    *min = svminnmv_f32(svptrue_b32(), lo);
    return svmaxnmv_f32(svptrue_b32(), hi);
}

/* Whether n rows of dv floats hold only finite numbers: |x| < INFINITY is
   false for both infinities and for NaN. */
static int all_finite_rows_f32_sve(const float *v, size_t ldv, size_t n, size_t dv)
{
    svbool_t bad = svpfalse_b();
    for (size_t j = 0; j < n; j++) {
        const float *row = v + j * ldv;
        for (size_t c = 0; c < dv; c += svcntw()) {
            const svbool_t pg = svwhilelt_b32_u64(c, dv);
            const svfloat32_t a = svabs_f32_x(pg, svld1_f32(pg, row + c));
            /* Not (|x| < INFINITY) among the active lanes. */
            bad = svorr_b_z(svptrue_b32(), bad,
                            svnot_b_z(pg, svcmplt_n_f32(pg, a, INFINITY)));
        }
    }
    return !svptest_any(svptrue_b32(), bad);
}

/* x[j] = exp(x[j] - sub); returns the sum. SLEEF evaluates every lane; the
   inactive ones of the last vector are neither stored nor summed. */
static float row_exp_sum_f32_sve(float *x, size_t n, float sub)
{
    svfloat32_t sum = svdup_n_f32(0.0f);
    for (size_t j = 0; j < n; j += svcntw()) {
        const svbool_t pg = svwhilelt_b32_u64(j, n);
        const svfloat32_t e = Sleef_expfx_u10sve(svsub_n_f32_x(pg, svld1_f32(pg, x + j), sub));
        svst1_f32(pg, x + j, e);
        sum = svadd_f32_m(pg, sum, e);
    }
    return svaddv_f32(svptrue_b32(), sum);
}

static void row_scale_f32_sve(float *x, size_t n, float f)
{
    for (size_t j = 0; j < n; j += svcntw()) {
        const svbool_t pg = svwhilelt_b32_u64(j, n);
        svst1_f32(pg, x + j, svmul_n_f32_x(pg, svld1_f32(pg, x + j), f));
    }
}

/* ---- P·V ----------------------------------------------------------------- */

/* MR (<= 4, a constant after inlining) rows × 2 vectors of O at column c:
   O's columns are V's, so V rows load straight into vectors. P is read four
   keys at a time with LD1RQ (the 4 floats replicated into every 128-bit
   segment) and applied with indexed FMLA, which saves a broadcast per row
   and key. With `accumulate` the tile starts from O (the fused kernel's
   running acc), otherwise from 0. The second vector is addressed with
   _vnum so that no pointer past the row is formed when it is all inactive. */
ALWAYS_INLINE void pv_f32_tile_sve(const int mr, size_t n, const float *p, size_t ldp,
                                   const float *v, size_t ldv, float *const *o, size_t c,
                                   size_t dv, int accumulate)
{
    const size_t vl = svcntw();
    const svbool_t pg0 = svwhilelt_b32_u64(c, dv), pg1 = svwhilelt_b32_u64(c + vl, dv);
    const svbool_t all = svptrue_b32();
    const svfloat32_t zero = svdup_n_f32(0.0f);
    svfloat32_t a00 = zero, a01 = zero, a10 = zero, a11 = zero;
    svfloat32_t a20 = zero, a21 = zero, a30 = zero, a31 = zero;
#define PV_LOAD(r)                                                \
    if (mr > r && accumulate) {                                   \
        a##r##0 = svld1_f32(pg0, o[r] + c);                       \
        a##r##1 = svld1_vnum_f32(pg1, o[r] + c, 1);               \
    }
    PV_LOAD(0) PV_LOAD(1) PV_LOAD(2) PV_LOAD(3)
#undef PV_LOAD

    size_t j = 0;
    for (; j + 4 <= n; j += 4) {
        svfloat32_t w0 = zero, w1 = zero, w2 = zero, w3 = zero, v0, v1;
        w0 = svld1rq_f32(all, p + j);
        if (mr > 1) w1 = svld1rq_f32(all, p + ldp + j);
        if (mr > 2) w2 = svld1rq_f32(all, p + 2 * ldp + j);
        if (mr > 3) w3 = svld1rq_f32(all, p + 3 * ldp + j);
#define PV_ROW(r, lane)                                   \
        if (mr > r) {                                     \
            a##r##0 = svmla_lane_f32(a##r##0, v0, w##r, lane); \
            a##r##1 = svmla_lane_f32(a##r##1, v1, w##r, lane); \
        }
#define PV_KEY(lane)                                                  \
        v0 = svld1_f32(pg0, v + (j + lane) * ldv + c);                \
        v1 = svld1_vnum_f32(pg1, v + (j + lane) * ldv + c, 1);        \
        PV_ROW(0, lane) PV_ROW(1, lane) PV_ROW(2, lane) PV_ROW(3, lane)
        PV_KEY(0) PV_KEY(1) PV_KEY(2) PV_KEY(3)
#undef PV_KEY
#undef PV_ROW
    }
    for (; j < n; j++) {
        const svfloat32_t v0 = svld1_f32(pg0, v + j * ldv + c);
        const svfloat32_t v1 = svld1_vnum_f32(pg1, v + j * ldv + c, 1);
#define PV_ROW(r)                                                          \
        if (mr > r) {                                                      \
            a##r##0 = svmla_n_f32_x(all, a##r##0, v0, p[r * ldp + j]);     \
            a##r##1 = svmla_n_f32_x(all, a##r##1, v1, p[r * ldp + j]);     \
        }
        PV_ROW(0) PV_ROW(1) PV_ROW(2) PV_ROW(3)
#undef PV_ROW
    }

#define PV_STORE(r)                                   \
    if (mr > r) {                                     \
        svst1_f32(pg0, o[r] + c, a##r##0);            \
        svst1_vnum_f32(pg1, o[r] + c, 1, a##r##1);    \
    }
    PV_STORE(0) PV_STORE(1) PV_STORE(2) PV_STORE(3)
#undef PV_STORE
}

static void pv_f32_4x2v_sve(size_t n, size_t dv, const float *p, size_t ldp, const float *v,
                            size_t ldv, float *const *o, int accumulate)
{
    for (size_t c = 0; c < dv; c += 2 * svcntw())
        pv_f32_tile_sve(4, n, p, ldp, v, ldv, o, c, dv, accumulate);
}

static void pv_f32_1x2v_sve(size_t n, size_t dv, const float *p, size_t ldp, const float *v,
                            size_t ldv, float *const *o, int accumulate)
{
    for (size_t c = 0; c < dv; c += 2 * svcntw())
        pv_f32_tile_sve(1, n, p, ldp, v, ldv, o, c, dv, accumulate);
}

#define ROWS4_SUFFIX sve
#define ROWS4_PV4 pv_f32_4x2v_sve
#define ROWS4_PV1 pv_f32_1x2v_sve
#include "stages_4rows.h"

/* ---- fused attention ----------------------------------------------------- */

/* Soft-cap, ALiBi, additive mask and the row's key range applied to the
   scores of keys key0 .. key0 + n, in the order scalar.c applies them.
   Only the lanes below n are loaded or stored. */
static void row_modify_f32_sve(float *s, size_t n, size_t key0, float softcap,
                               const qkv_attn_row *row)
{
    /* The row's range relative to key0, clamped to [0, n]. */
    const size_t b = row->kv_begin > key0 ? row->kv_begin - key0 : 0;
    size_t e = row->kv_end > key0 ? row->kv_end - key0 : 0;
    if (e > n)
        e = n;
    if (b >= e) {                 /* sees none of these keys */
        for (size_t j = 0; j < n; j++)
            s[j] = -INFINITY;
        return;
    }
    const svfloat32_t ninf = svdup_n_f32(-INFINITY);
    for (size_t j = 0; j < n; j += svcntw()) {
        const svbool_t pg = svwhilelt_b32_u64(j, n);
        svfloat32_t x = svld1_f32(pg, s + j);
        if (softcap > 0.0f)
            x = svmul_n_f32_x(pg, Sleef_tanhfx_u10sve(svdiv_n_f32_x(pg, x, softcap)), softcap);
        if (row->slope != 0.0f) {
            /* (float)(key - pos) per lane as base + lane index: exact while
               |key - pos| < 2^24, i.e. for any realistic context length. */
            const float base = (float)((ptrdiff_t)(key0 + j) - row->pos);
            const svfloat32_t dist =
                svadd_n_f32_x(pg, svcvt_f32_s32_x(pg, svindex_s32(0, 1)), base);
            x = svadd_f32_x(pg, x, svmul_n_f32_x(pg, dist, row->slope));
        }
        if (row->mask)
            x = svadd_f32_x(pg, x, svld1_f32(pg, row->mask + key0 + j));
        /* Lanes j + l in [b, e): below e and not below b. */
        const svbool_t seen = svbic_b_z(pg, svwhilelt_b32_u64(j, e), svwhilelt_b32_u64(j, b));
        svst1_f32(pg, s + j, svsel_f32(seen, x, ninf));
    }
}

#define ATT_NAME attention_f32_sve
#define ATT_SCORES qk_rows_f32_sve
#define ATT_ROW_MODIFY row_modify_f32_sve
#define ATT_ROW_MAX_MIN row_max_min_f32_sve
#define ATT_ALL_FINITE all_finite_rows_f32_sve
#define ATT_ROW_EXP_SUM row_exp_sum_f32_sve
#define ATT_ROW_SCALE row_scale_f32_sve
#define ATT_PV_ACC pv_acc_rows_f32_sve
#include "attention_tiled.h"

void qkv_kernels_init_sve(qkv_kernels *k)
{
    k->scores = scores_f32_sve;
    k->softmax = softmax_f32_sve;
    k->weighted_sum = weighted_sum_f32_sve;
    k->attention = attention_f32_sve;
    qkv_converters_init_sve(&k->conv);
    k->merge_states = merge_states_f32_sve;
}

/*
 * AArch64 Advanced SIMD (NEON) kernels: 128-bit vectors of 4 floats,
 * 32 vector registers, FMA always available.
 *
 *   qk_f32_4x4_neon   Q·Kᵀ tile: 4 query rows × 4 keys, dot products along d
 *   softmax_f32_neon  max, SLEEF Sleef_expf4_u10advsimd, 1/sum
 *   pv_f32_4x16_neon  P·V tile: 4 output rows × 16 columns
 *   attention_f32_neon  the blocked online softmax of attention_tiled.h
 *
 * Tails: rows and keys that do not fill a Q·Kᵀ tile go through 1 × 4 and
 * 1 × 1 dot products, P·V rows and columns through the same tile with
 * MR = 1 or one vector; the last d % 4 or dv % 4 elements of a row through
 * scalar code or a bounce buffer, so no load or store ever passes the last
 * element of a row.
 */
#include <arm_neon.h>
#include <math.h>
#include <sleef.h>
#include <string.h>

#include "kernels.h"

#define ALWAYS_INLINE static inline __attribute__((always_inline))

/* The first n < 4 floats of p in the low lanes, `fill` above them. Through
   a stack buffer because a 16-byte load would read past the row's end. */
ALWAYS_INLINE float32x4_t load_tail_f32x4(const float *p, size_t n, float fill)
{
    float b[4] = {fill, fill, fill, fill};
    for (size_t i = 0; i < n; i++)
        b[i] = p[i];
    return vld1q_f32(b);
}

ALWAYS_INLINE void store_tail_f32x4(float *p, size_t n, float32x4_t v)
{
    float b[4];
    vst1q_f32(b, v);
    for (size_t i = 0; i < n; i++)
        p[i] = b[i];
}

/* ---- Q·Kᵀ ---------------------------------------------------------------- */

/* The last d % 4 products of a dot product, scalar: a vector load there
   would pass the row's end. */
ALWAYS_INLINE float dot_tail_f32(const float *x, const float *y, size_t c, size_t d)
{
    float t = 0.0f;
    for (; c < d; c++)
        t += x[c] * y[c];
    return t;
}

/* A 4 × 4 tile of scores. Q and K are both row-major along d, so each
   score is a dot product along d: 16 vector accumulators (16 + 4 q + 4 k =
   24 of the 32 registers), 16 FMAs per 8 loads, and 16 independent chains
   that cover the FMA latency; reduced across lanes once at the end.
   Spelled out rather than in arrays: GCC keeps arrays of vectors on the
   stack and stores them back on every iteration. */
static void qk_f32_4x4_neon(size_t d, float scale, const float *const *q, const float *k,
                            size_t ldk, float *s, size_t lds)
{
    const float *q0 = q[0], *q1 = q[1], *q2 = q[2], *q3 = q[3];
    const float *k0 = k, *k1 = k + ldk, *k2 = k + 2 * ldk, *k3 = k + 3 * ldk;
    float32x4_t a00 = vdupq_n_f32(0.0f), a01 = a00, a02 = a00, a03 = a00;
    float32x4_t a10 = a00, a11 = a00, a12 = a00, a13 = a00;
    float32x4_t a20 = a00, a21 = a00, a22 = a00, a23 = a00;
    float32x4_t a30 = a00, a31 = a00, a32 = a00, a33 = a00;
    size_t c = 0;
    for (; c + 4 <= d; c += 4) {
        const float32x4_t vk0 = vld1q_f32(k0 + c), vk1 = vld1q_f32(k1 + c);
        const float32x4_t vk2 = vld1q_f32(k2 + c), vk3 = vld1q_f32(k3 + c);
        float32x4_t vq;
#define QK_ROW(r)                                \
        vq = vld1q_f32(q##r + c);                \
        a##r##0 = vfmaq_f32(a##r##0, vq, vk0);   \
        a##r##1 = vfmaq_f32(a##r##1, vq, vk1);   \
        a##r##2 = vfmaq_f32(a##r##2, vq, vk2);   \
        a##r##3 = vfmaq_f32(a##r##3, vq, vk3);
        QK_ROW(0) QK_ROW(1) QK_ROW(2) QK_ROW(3)
#undef QK_ROW
    }
    /* Pairwise adds transpose-and-reduce a row's four accumulators into
       one vector of its four dot products. */
#define QK_STORE(r)                                                                    \
    {                                                                                  \
        float32x4_t dot = vpaddq_f32(vpaddq_f32(a##r##0, a##r##1),                     \
                                     vpaddq_f32(a##r##2, a##r##3));                    \
        if (c < d) {                                                                   \
            const float t[4] = {dot_tail_f32(q##r, k0, c, d), dot_tail_f32(q##r, k1, c, d), \
                                dot_tail_f32(q##r, k2, c, d), dot_tail_f32(q##r, k3, c, d)}; \
            dot = vaddq_f32(dot, vld1q_f32(t));                                        \
        }                                                                              \
        vst1q_f32(s + r * lds, vmulq_n_f32(dot, scale));                               \
    }
    QK_STORE(0) QK_STORE(1) QK_STORE(2) QK_STORE(3)
#undef QK_STORE
}

/* One row x against four rows y0..y3: the 1 × 4 tile (x a query, y keys)
   and, with the roles swapped, the 4 × 1 tile of the key tail. */
static void dot_f32_1x4_neon(size_t d, const float *x, const float *y0, const float *y1,
                             const float *y2, const float *y3, float out[4])
{
    float32x4_t a0 = vdupq_n_f32(0.0f), a1 = a0, a2 = a0, a3 = a0;
    size_t c = 0;
    for (; c + 4 <= d; c += 4) {
        const float32x4_t vx = vld1q_f32(x + c);
        a0 = vfmaq_f32(a0, vx, vld1q_f32(y0 + c));
        a1 = vfmaq_f32(a1, vx, vld1q_f32(y1 + c));
        a2 = vfmaq_f32(a2, vx, vld1q_f32(y2 + c));
        a3 = vfmaq_f32(a3, vx, vld1q_f32(y3 + c));
    }
    out[0] = vaddvq_f32(a0) + dot_tail_f32(x, y0, c, d);
    out[1] = vaddvq_f32(a1) + dot_tail_f32(x, y1, c, d);
    out[2] = vaddvq_f32(a2) + dot_tail_f32(x, y2, c, d);
    out[3] = vaddvq_f32(a3) + dot_tail_f32(x, y3, c, d);
}

static float dot_f32_1x1_neon(size_t d, const float *x, const float *y)
{
    /* Two accumulators: a single one would wait on its own FMA latency. */
    float32x4_t a0 = vdupq_n_f32(0.0f), a1 = a0;
    size_t c = 0;
    for (; c + 8 <= d; c += 8) {
        a0 = vfmaq_f32(a0, vld1q_f32(x + c), vld1q_f32(y + c));
        a1 = vfmaq_f32(a1, vld1q_f32(x + c + 4), vld1q_f32(y + c + 4));
    }
    if (c + 4 <= d) {
        a0 = vfmaq_f32(a0, vld1q_f32(x + c), vld1q_f32(y + c));
        c += 4;
    }
    return vaddvq_f32(vaddq_f32(a0, a1)) + dot_tail_f32(x, y, c, d);
}

/* ---- softmax --------------------------------------------------------------- */

/* Max over x[0..n) ignoring NaN: FMAXNM returns the number when one operand
   is a NaN, which is what the scalar `if (x > max)` does. */
static float row_max_f32_neon(const float *x, size_t n)
{
    float32x4_t m = vdupq_n_f32(-INFINITY);
    size_t j = 0;
    for (; j + 4 <= n; j += 4)
        m = vmaxnmq_f32(m, vld1q_f32(x + j));
    if (j < n)
        m = vmaxnmq_f32(m, load_tail_f32x4(x + j, n - j, -INFINITY));
    return vmaxnmvq_f32(m);
}

/* The same, and the minimum, in one pass: the fused kernel wants to know
   whether the tile has a hidden key (min == -INFINITY). */
static float row_max_min_f32_neon(const float *x, size_t n, float *min)
{
    float32x4_t hi = vdupq_n_f32(-INFINITY), lo = vdupq_n_f32(INFINITY);
    size_t j = 0;
    for (; j + 4 <= n; j += 4) {
        const float32x4_t v = vld1q_f32(x + j);
        hi = vmaxnmq_f32(hi, v);
        lo = vminnmq_f32(lo, v);
    }
    for (; j < n; j++) {
        /* Scalar tail: a padded vector would need two fill values. */
        const float32x4_t v = vdupq_n_f32(x[j]);
        hi = vmaxnmq_f32(hi, v);
        lo = vminnmq_f32(lo, v);
    }
    *min = vminnmvq_f32(lo);
    return vmaxnmvq_f32(hi);
}

/* Whether n rows of dv floats hold only finite numbers: |x| < INFINITY is
   false for both infinities and for NaN. */
static int all_finite_rows_f32_neon(const float *v, size_t ldv, size_t n, size_t dv)
{
    const float32x4_t inf = vdupq_n_f32(INFINITY);
    uint32x4_t ok = vdupq_n_u32(~0u);
    for (size_t j = 0; j < n; j++) {
        const float *row = v + j * ldv;
        size_t c = 0;
        for (; c + 4 <= dv; c += 4)
            ok = vandq_u32(ok, vcltq_f32(vabsq_f32(vld1q_f32(row + c)), inf));
        if (c < dv)
            ok = vandq_u32(ok, vcltq_f32(vabsq_f32(load_tail_f32x4(row + c, dv - c, 0.0f)), inf));
    }
    return vminvq_u32(ok) != 0;
}

/* x[j] = exp(x[j] - sub); returns the sum. Two accumulators so that the
   adds do not wait on each other. */
static float row_exp_sum_f32_neon(float *x, size_t n, float sub)
{
    const float32x4_t vs = vdupq_n_f32(sub);
    float32x4_t s0 = vdupq_n_f32(0.0f), s1 = vdupq_n_f32(0.0f);
    size_t j = 0;
    for (; j + 8 <= n; j += 8) {
        const float32x4_t e0 = Sleef_expf4_u10advsimd(vsubq_f32(vld1q_f32(x + j), vs));
        const float32x4_t e1 = Sleef_expf4_u10advsimd(vsubq_f32(vld1q_f32(x + j + 4), vs));
        vst1q_f32(x + j, e0);
        vst1q_f32(x + j + 4, e1);
        s0 = vaddq_f32(s0, e0);
        s1 = vaddq_f32(s1, e1);
    }
    for (; j + 4 <= n; j += 4) {
        const float32x4_t e = Sleef_expf4_u10advsimd(vsubq_f32(vld1q_f32(x + j), vs));
        vst1q_f32(x + j, e);
        s0 = vaddq_f32(s0, e);
    }
    if (j < n) {
        /* -INFINITY in the unused lanes: exp gives 0 there, so they add
           nothing to the sum. */
        const float32x4_t e =
            Sleef_expf4_u10advsimd(vsubq_f32(load_tail_f32x4(x + j, n - j, -INFINITY), vs));
        store_tail_f32x4(x + j, n - j, e);
        s0 = vaddq_f32(s0, e);
    }
    return vaddvq_f32(vaddq_f32(s0, s1));
}

static void row_scale_f32_neon(float *x, size_t n, float f)
{
    size_t j = 0;
    for (; j + 4 <= n; j += 4)
        vst1q_f32(x + j, vmulq_n_f32(vld1q_f32(x + j), f));
    for (; j < n; j++)
        x[j] *= f;
}

/* ---- P·V ----------------------------------------------------------------- */

/* An MR × (4·NV) tile of O (MR <= 4, NV <= 4 vectors, constants after
   inlining): O's columns are V's columns, so V rows load straight into
   vectors and P is broadcast. 4 × 16 keeps 16 accumulators + 4 V vectors
   live and does 16 FMAs per 4 vector loads + 4 broadcasts. With
   `accumulate` the tile starts from O (the fused kernel's running acc),
   otherwise from 0. */
ALWAYS_INLINE void pv_f32_tile_neon(const int mr, const int nv, size_t n, const float *p,
                                    size_t ldp, const float *v, size_t ldv, float *const *o,
                                    size_t c, int accumulate)
{
    float32x4_t acc[4][4];
    for (int r = 0; r < mr; r++)
        for (int x = 0; x < nv; x++)
            acc[r][x] = accumulate ? vld1q_f32(o[r] + c + 4 * x) : vdupq_n_f32(0.0f);
    for (size_t j = 0; j < n; j++) {
        float32x4_t vv[4];
        for (int x = 0; x < nv; x++)
            vv[x] = vld1q_f32(v + j * ldv + c + 4 * x);
        for (int r = 0; r < mr; r++) {
            const float w = p[r * ldp + j];
            for (int x = 0; x < nv; x++)
                acc[r][x] = vfmaq_n_f32(acc[r][x], vv[x], w);
        }
    }
    for (int r = 0; r < mr; r++)
        for (int x = 0; x < nv; x++)
            vst1q_f32(o[r] + c + 4 * x, acc[r][x]);
}

/* The last dv % 4 columns (1 to 3) of MR rows: one vector through bounce
   buffers, since full-width loads or stores would pass the rows' ends. */
ALWAYS_INLINE void pv_f32_tail_neon(const int mr, size_t n, const float *p, size_t ldp,
                                    const float *v, size_t ldv, float *const *o, size_t c,
                                    size_t cols, int accumulate)
{
    float32x4_t acc[4];
    for (int r = 0; r < mr; r++)
        acc[r] = accumulate ? load_tail_f32x4(o[r] + c, cols, 0.0f) : vdupq_n_f32(0.0f);
    for (size_t j = 0; j < n; j++) {
        const float32x4_t vv = load_tail_f32x4(v + j * ldv + c, cols, 0.0f);
        for (int r = 0; r < mr; r++)
            acc[r] = vfmaq_n_f32(acc[r], vv, p[r * ldp + j]);
    }
    for (int r = 0; r < mr; r++)
        store_tail_f32x4(o[r] + c, cols, acc[r]);
}

/* All dv columns of MR rows: 16 columns at a time, then 4, then the tail. */
ALWAYS_INLINE void pv_f32_rows_neon(const int mr, size_t n, size_t dv, const float *p,
                                    size_t ldp, const float *v, size_t ldv, float *const *o,
                                    int accumulate)
{
    size_t c = 0;
    for (; c + 16 <= dv; c += 16)
        pv_f32_tile_neon(mr, 4, n, p, ldp, v, ldv, o, c, accumulate);
    for (; c + 4 <= dv; c += 4)
        pv_f32_tile_neon(mr, 1, n, p, ldp, v, ldv, o, c, accumulate);
    if (c < dv)
        pv_f32_tail_neon(mr, n, p, ldp, v, ldv, o, c, dv - c, accumulate);
}

static void pv_f32_4x16_neon(size_t n, size_t dv, const float *p, size_t ldp, const float *v,
                             size_t ldv, float *const *o, int accumulate)
{
    pv_f32_rows_neon(4, n, dv, p, ldp, v, ldv, o, accumulate);
}

static void pv_f32_1x16_neon(size_t n, size_t dv, const float *p, size_t ldp, const float *v,
                             size_t ldv, float *const *o, int accumulate)
{
    pv_f32_rows_neon(1, n, dv, p, ldp, v, ldv, o, accumulate);
}

#define ROWS4_SUFFIX neon
#define ROWS4_PV4 pv_f32_4x16_neon
#define ROWS4_PV1 pv_f32_1x16_neon
#include "stages_4rows.h"

/* ---- fused attention ----------------------------------------------------- */

/* Soft-cap, ALiBi, additive mask and the row's key range applied to the
   scores of keys key0 .. key0 + n, in the order scalar.c applies them.
   Works on whole vectors up to round_up(n, 4) <= 64 (the tile buffer's
   width): the lanes past n, and any key the row does not see, become
   -INFINITY through the range test. */
static void row_modify_f32_neon(float *s, size_t n, size_t key0, float softcap,
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
    const float32x4_t cap = vdupq_n_f32(softcap), ninf = vdupq_n_f32(-INFINITY);
    const uint32x4_t vb = vdupq_n_u32((uint32_t)b), ve = vdupq_n_u32((uint32_t)e);
    static const uint32_t lane_u[4] = {0, 1, 2, 3};
    static const float lane_f[4] = {0.0f, 1.0f, 2.0f, 3.0f};
    const uint32x4_t lane = vld1q_u32(lane_u);
    for (size_t j = 0; j < n; j += 4) {
        float32x4_t x = vld1q_f32(s + j);
        if (softcap > 0.0f)
            x = vmulq_f32(cap, Sleef_tanhf4_u10advsimd(vdivq_f32(x, cap)));
        if (row->slope != 0.0f) {
            /* (float)(key - pos) per lane as base + lane index: exact while
               |key - pos| < 2^24, i.e. for any realistic context length. */
            const float base = (float)((ptrdiff_t)(key0 + j) - row->pos);
            const float32x4_t dist = vaddq_f32(vdupq_n_f32(base), vld1q_f32(lane_f));
            x = vaddq_f32(x, vmulq_n_f32(dist, row->slope));
        }
        if (row->mask) {
            /* The mask row ends at kv_len: never load past it. */
            const float *mk = row->mask + key0 + j;
            x = vaddq_f32(x, n - j >= 4 ? vld1q_f32(mk) : load_tail_f32x4(mk, n - j, 0.0f));
        }
        const uint32x4_t idx = vaddq_u32(vdupq_n_u32((uint32_t)j), lane);
        const uint32x4_t seen = vandq_u32(vcgeq_u32(idx, vb), vcltq_u32(idx, ve));
        vst1q_f32(s + j, vbslq_f32(seen, x, ninf));
    }
}

#define ATT_NAME attention_f32_neon
#define ATT_SCORES qk_rows_f32_neon
#define ATT_ROW_MODIFY row_modify_f32_neon
#define ATT_ROW_MAX_MIN row_max_min_f32_neon
#define ATT_ALL_FINITE all_finite_rows_f32_neon
#define ATT_ROW_EXP_SUM row_exp_sum_f32_neon
#define ATT_ROW_SCALE row_scale_f32_neon
#define ATT_PV_ACC pv_acc_rows_f32_neon
#include "attention_tiled.h"

void qkv_kernels_init_neon(qkv_kernels *k)
{
    k->scores = scores_f32_neon;
    k->softmax = softmax_f32_neon;
    k->weighted_sum = weighted_sum_f32_neon;
    k->attention = attention_f32_neon;
    qkv_converters_init_neon(&k->conv);
    k->merge_states = merge_states_f32_neon;
}

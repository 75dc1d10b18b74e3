/*
 * The AArch64 Advanced SIMD (NEON) vocabulary of 4-lane vector operations
 * that the fused driver (kernels/simd/attention.h) and the shared Arm
 * kernels (kernels/arm/kernels_tmpl.h) are written in (neon.c includes it
 * once; neonbf16.c through neon.c). NEON has no masked loads or stores: a
 * partial vector is read and written lane by lane, so no access passes a
 * row's end. The fused kernels' exp and tanh are simd/exp_tanh.h's,
 * inline; the stage softmax's exp (v_exp_sleef) is SLEEF's 1-ULP AdvSIMD
 * version.
 */
#ifndef QKV_NEON_VOCAB_H
#define QKV_NEON_VOCAB_H

#include <arm_neon.h>
#include <math.h>
#include <sleef.h>
#include <stdint.h>
#include <string.h>

#define VL 4
#define VL_MAX 4

#define V_INLINE static inline __attribute__((always_inline))

typedef float32x4_t vf;
typedef uint32x4_t vm;     /* all-ones or all-zeros per lane */

V_INLINE vf v_zero(void) { return vdupq_n_f32(0.0f); }
V_INLINE vf v_set1(float x) { return vdupq_n_f32(x); }
V_INLINE vf v_load(const float *p) { return vld1q_f32(p); }
V_INLINE void v_store(float *p, vf x) { vst1q_f32(p, x); }
V_INLINE vf v_add(vf a, vf b) { return vaddq_f32(a, b); }
V_INLINE vf v_sub(vf a, vf b) { return vsubq_f32(a, b); }
V_INLINE vf v_mul(vf a, vf b) { return vmulq_f32(a, b); }
V_INLINE vf v_div(vf a, vf b) { return vdivq_f32(a, b); }
V_INLINE vf v_fmadd(vf a, vf b, vf c) { return vfmaq_f32(c, a, b); }
/* max(x, m): FMAXNM returns the number when one operand is a NaN, so m
   where x is NaN (the driver's m never is), like the scalar `if (x > m)`. */
V_INLINE vf v_max(vf x, vf m) { return vmaxnmq_f32(x, m); }
V_INLINE vm v_gt(vf a, vf b) { return vcgtq_f32(a, b); }
V_INLINE vm v_eq(vf a, vf b) { return vceqq_f32(a, b); }
/* Not equal, or unordered: FCMEQ is false for a NaN. */
V_INLINE vm v_ne(vf a, vf b) { return vmvnq_u32(vceqq_f32(a, b)); }
/* m ? b : a, lane by lane. */
V_INLINE vf v_sel(vm m, vf a, vf b) { return vbslq_f32(m, b, a); }
V_INLINE int v_any(vm m) { return vmaxvq_u32(m) != 0; }
V_INLINE float v_hmax(vf x) { return vmaxnmvq_f32(x); }
V_INLINE float v_hsum(vf x) { return vaddvq_f32(x); }
V_INLINE void v_prefetch(const void *p) { __builtin_prefetch(p); }

/* The first n lanes, 1 <= n <= VL. */
V_INLINE vm v_tailmask(size_t n)
{
    static const uint32_t lane[4] = {0, 1, 2, 3};
    return vcltq_u32(vld1q_u32(lane), vdupq_n_u32((uint32_t)n));
}

/* Masked-off lanes are never touched in memory and read as `fill`. */
V_INLINE vf v_loadm_or(const float *p, vm m, vf fill)
{
    if (vgetq_lane_u32(m, 0)) fill = vld1q_lane_f32(p, fill, 0);
    if (vgetq_lane_u32(m, 1)) fill = vld1q_lane_f32(p + 1, fill, 1);
    if (vgetq_lane_u32(m, 2)) fill = vld1q_lane_f32(p + 2, fill, 2);
    if (vgetq_lane_u32(m, 3)) fill = vld1q_lane_f32(p + 3, fill, 3);
    return fill;
}
V_INLINE vf v_loadm(const float *p, vm m) { return v_loadm_or(p, m, v_zero()); }
V_INLINE void v_storem(float *p, vm m, vf x)
{
    if (vgetq_lane_u32(m, 0)) vst1q_lane_f32(p, x, 0);
    if (vgetq_lane_u32(m, 1)) vst1q_lane_f32(p + 1, x, 1);
    if (vgetq_lane_u32(m, 2)) vst1q_lane_f32(p + 2, x, 2);
    if (vgetq_lane_u32(m, 3)) vst1q_lane_f32(p + 3, x, 3);
}

/* Lanes i with lo[i] <= j < hi[i]. */
V_INLINE vm v_in_range(const int32_t *lo, const int32_t *hi, int32_t j)
{
    const int32x4_t vj = vdupq_n_s32(j);
    return vandq_u32(vcleq_s32(vld1q_s32(lo), vj), vcgtq_s32(vld1q_s32(hi), vj));
}

/* (float)(p[i] + j), exactly as the scalar code converts a key distance. */
V_INLINE vf v_i32_to_f(const int32_t *p, int32_t j)
{
    return vcvtq_f32_s32(vaddq_s32(vld1q_s32(p), vdupq_n_s32(j)));
}

/* With 4 lanes a vector is one group of 4: each lane is already the whole
   of its row. */
V_INLINE vf v_fold4_max(vf x) { return x; }
V_INLINE vf v_fold4_add(vf x) { return x; }
/* Lanes 2k + r likewise (the decode form of 2 rows): lanes r and r + 2. */
V_INLINE vf v_fold2_max(vf x) { return v_max(x, vextq_f32(x, x, 2)); }
V_INLINE vf v_fold2_add(vf x) { return vaddq_f32(x, vextq_f32(x, x, 2)); }

/* SLEEF's exp, for the stage softmax (the contract's); the fused kernels
   take simd/exp_tanh.h's v_exp and v_tanh, inline, built on the five
   below. */
V_INLINE vf v_exp_sleef(vf x) { return Sleef_expf4_u10advsimd(x); }
V_INLINE vf v_abs(vf x) { return vabsq_f32(x); }
/* |m| with the sign of s (m's sign bit must be clear). */
V_INLINE vf v_copysign(vf m, vf s)
{
    return vreinterpretq_f32_u32(vorrq_u32(vreinterpretq_u32_f32(m),
                                           vandq_u32(vreinterpretq_u32_f32(s), vdupq_n_u32(0x80000000u))));
}
/* x clamped to [lo, hi], NaN kept: FMAX and FMIN return a NaN operand. */
V_INLINE vf v_clamp(vf x, vf lo, vf hi) { return vminq_f32(vmaxq_f32(x, lo), hi); }
/* To the nearest integer, ties to even (FRINTN). */
V_INLINE vf v_round(vf x) { return vrndnq_f32(x); }
/* p · 2^n for an integral n in [-150, 128], rounded once: as AVX2's (x86
   vocabularies), two normal power-of-two factors, the first product
   exact (p is within [1/2, 2]). */
V_INLINE vf v_scale2(vf p, vf n)
{
    const int32x4_t ni = vcvtq_s32_f32(n), half = vshrq_n_s32(ni, 1), bias = vdupq_n_s32(127);
    const vf a = vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(half, bias), 23));
    const vf b = vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(vsubq_s32(ni, half), bias), 23));
    return vmulq_f32(vmulq_f32(p, a), b);
}

/* p · 2^n where the product is a normal float (n integral, p in [1/2, 2]):
   n added to p's exponent field, exact. */
V_INLINE vf v_scale2_normal(vf p, vf n)
{
    const int32x4_t e = vshlq_n_s32(vcvtq_s32_f32(n), 23);
    return vreinterpretq_f32_s32(vaddq_s32(vreinterpretq_s32_f32(p), e));
}
/* Every lane of a below c (a NaN is not). */
V_INLINE int v_all_below(vf a, vf c) { return vminvq_u32(vcltq_f32(a, c)) != 0; }

#include "simd/exp_tanh.h"

#endif

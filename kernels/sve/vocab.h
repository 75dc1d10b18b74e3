/*
 * The AArch64 SVE vocabulary, vector-length agnostic (one binary for
 * every vector length from 128 to 2048 bits), that the fused driver
 * (kernels/simd/attention.h) and the shared Arm kernels
 * (kernels/arm/kernels_tmpl.h) are written in (sve.c includes it once;
 * svebf16.c through sve.c). VL is svcntw(), known only at run time; VL_MAX
 * bounds it at compile time for the driver's per-lane arrays. SVE vectors
 * and predicates are sizeless (no arrays of them, no struct members).
 * Tails need no scalar code: the last partial vector runs under an
 * svwhilelt predicate, and predicated loads and stores do not touch
 * memory in their inactive lanes. The fused kernels' exp and tanh are
 * simd/exp_tanh.h's, inline; the stage softmax's exp (v_exp_sleef) is
 * SLEEF's 1-ULP SVE version.
 */
#ifndef QKV_SVE_VOCAB_H
#define QKV_SVE_VOCAB_H

#include <arm_sve.h>
#include <math.h>
#include <sleef.h>
#include <stdint.h>
#include <string.h>

#define VL ((size_t)svcntw())
#define VL_MAX 64          /* 2048 bits, the architecture's limit */

#define V_INLINE static inline __attribute__((always_inline))

typedef svfloat32_t vf;
typedef svbool_t vm;

#define V_ALL svptrue_b32()

V_INLINE vf v_zero(void) { return svdup_n_f32(0.0f); }
V_INLINE vf v_set1(float x) { return svdup_n_f32(x); }
V_INLINE vf v_load(const float *p) { return svld1_f32(V_ALL, p); }
V_INLINE void v_store(float *p, vf x) { svst1_f32(V_ALL, p, x); }
V_INLINE vf v_add(vf a, vf b) { return svadd_f32_x(V_ALL, a, b); }
V_INLINE vf v_sub(vf a, vf b) { return svsub_f32_x(V_ALL, a, b); }
V_INLINE vf v_mul(vf a, vf b) { return svmul_f32_x(V_ALL, a, b); }
V_INLINE vf v_div(vf a, vf b) { return svdiv_f32_x(V_ALL, a, b); }
V_INLINE vf v_fmadd(vf a, vf b, vf c) { return svmla_f32_x(V_ALL, c, a, b); }
/* max(x, m): FMAXNM returns the number when one operand is a NaN, so m
   where x is NaN (the driver's m never is), like the scalar `if (x > m)`. */
V_INLINE vf v_max(vf x, vf m) { return svmaxnm_f32_x(V_ALL, x, m); }
V_INLINE vm v_gt(vf a, vf b) { return svcmpgt_f32(V_ALL, a, b); }
V_INLINE vm v_eq(vf a, vf b) { return svcmpeq_f32(V_ALL, a, b); }
/* Not equal, or unordered: FCMNE is true for a NaN. */
V_INLINE vm v_ne(vf a, vf b) { return svcmpne_f32(V_ALL, a, b); }
/* m ? b : a, lane by lane. */
V_INLINE vf v_sel(vm m, vf a, vf b) { return svsel_f32(m, b, a); }
V_INLINE int v_any(vm m) { return svptest_any(V_ALL, m); }
V_INLINE float v_hmax(vf x) { return svmaxnmv_f32(V_ALL, x); }
V_INLINE float v_hsum(vf x) { return svaddv_f32(V_ALL, x); }
V_INLINE void v_prefetch(const void *p) { __builtin_prefetch(p); }

/* The first n lanes, 1 <= n <= VL. */
V_INLINE vm v_tailmask(size_t n) { return svwhilelt_b32_u64(0, n); }
/* Inactive lanes are never touched in memory and read as 0 (v_loadm) or
   as `fill` (v_loadm_or). */
V_INLINE vf v_loadm(const float *p, vm m) { return svld1_f32(m, p); }
V_INLINE vf v_loadm_or(const float *p, vm m, vf fill) { return svsel_f32(m, svld1_f32(m, p), fill); }
V_INLINE void v_storem(float *p, vm m, vf x) { svst1_f32(m, p, x); }

/* Lanes i with lo[i] <= j < hi[i]. */
V_INLINE vm v_in_range(const int32_t *lo, const int32_t *hi, int32_t j)
{
    return svand_b_z(V_ALL, svcmple_n_s32(V_ALL, svld1_s32(V_ALL, lo), j),
                     svcmpgt_n_s32(V_ALL, svld1_s32(V_ALL, hi), j));
}

/* (float)(p[i] + j), exactly as the scalar code converts a key distance. */
V_INLINE vf v_i32_to_f(const int32_t *p, int32_t j)
{
    return svcvt_f32_s32_x(V_ALL, svadd_n_s32_x(V_ALL, svld1_s32(V_ALL, p), j));
}

/* Lanes 4k + r, for all k, combined over k, into every group of 4: one
   reduction per r over the lanes r, r + 4, ... (whatever VL is), then
   DUPQ repeats the four results in every 128-bit segment. */
V_INLINE vf v_fold4_max(vf x)
{
    return svdupq_n_f32(svmaxnmv_f32(svdupq_n_b32(1, 0, 0, 0), x),
                        svmaxnmv_f32(svdupq_n_b32(0, 1, 0, 0), x),
                        svmaxnmv_f32(svdupq_n_b32(0, 0, 1, 0), x),
                        svmaxnmv_f32(svdupq_n_b32(0, 0, 0, 1), x));
}
V_INLINE vf v_fold4_add(vf x)
{
    return svdupq_n_f32(svaddv_f32(svdupq_n_b32(1, 0, 0, 0), x),
                        svaddv_f32(svdupq_n_b32(0, 1, 0, 0), x),
                        svaddv_f32(svdupq_n_b32(0, 0, 1, 0), x),
                        svaddv_f32(svdupq_n_b32(0, 0, 0, 1), x));
}

/* Lanes 2k + r likewise (the decode form of 2 rows): a reduction over the
   even lanes and one over the odd, DUPQ'd. */
#define V_FOLD2(RED)                                                            \
    const float r0 = RED(svdupq_n_b32(1, 0, 1, 0), x), r1 = RED(svdupq_n_b32(0, 1, 0, 1), x); \
    return svdupq_n_f32(r0, r1, r0, r1)
V_INLINE vf v_fold2_max(vf x) { V_FOLD2(svmaxnmv_f32); }
V_INLINE vf v_fold2_add(vf x) { V_FOLD2(svaddv_f32); }
#undef V_FOLD2

/* Lanes 8k + r likewise, into every group of 8 (the 8-row decode form,
   which runs where VL >= 16): a reduction per r over the lanes r, r + 8,
   ..., the results of rows 0-3 and 4-7 DUPQ'd, each group's upper half
   taken from the second. */
#define SIMD_ROWS8 1
V_INLINE svuint32_t v_lane_mod8(void) { return svand_n_u32_x(V_ALL, svindex_u32(0, 1), 7); }
#define V_FOLD8(RED)                                                                          \
    const svuint32_t m8 = v_lane_mod8();                                                      \
    const vf lo = svdupq_n_f32(RED(svcmpeq_n_u32(V_ALL, m8, 0), x), RED(svcmpeq_n_u32(V_ALL, m8, 1), x), \
                               RED(svcmpeq_n_u32(V_ALL, m8, 2), x), RED(svcmpeq_n_u32(V_ALL, m8, 3), x)); \
    const vf hi = svdupq_n_f32(RED(svcmpeq_n_u32(V_ALL, m8, 4), x), RED(svcmpeq_n_u32(V_ALL, m8, 5), x), \
                               RED(svcmpeq_n_u32(V_ALL, m8, 6), x), RED(svcmpeq_n_u32(V_ALL, m8, 7), x)); \
    return svsel_f32(svcmpge_n_u32(V_ALL, m8, 4), hi, lo)
V_INLINE vf v_fold8_max(vf x) { V_FOLD8(svmaxnmv_f32); }
V_INLINE vf v_fold8_add(vf x) { V_FOLD8(svaddv_f32); }
#undef V_FOLD8

/* SLEEF's exp, for the stage softmax (the contract's); the fused kernels
   take simd/exp_tanh.h's v_exp and v_tanh, inline, built on the five
   below. */
V_INLINE vf v_exp_sleef(vf x) { return Sleef_expfx_u10sve(x); }
V_INLINE vf v_abs(vf x) { return svabs_f32_x(V_ALL, x); }
/* |m| with the sign of s (m's sign bit must be clear). */
V_INLINE vf v_copysign(vf m, vf s)
{
    const svuint32_t sign = svand_n_u32_x(V_ALL, svreinterpret_u32_f32(s), 0x80000000u);
    return svreinterpret_f32_u32(svorr_u32_x(V_ALL, svreinterpret_u32_f32(m), sign));
}
/* x clamped to [lo, hi], NaN kept: FMAX and FMIN return a NaN operand. */
V_INLINE vf v_clamp(vf x, vf lo, vf hi)
{
    return svmin_f32_x(V_ALL, svmax_f32_x(V_ALL, x, lo), hi);
}
/* To the nearest integer, ties to even (FRINTN). */
V_INLINE vf v_round(vf x) { return svrintn_f32_x(V_ALL, x); }
/* p · 2^n for an integral n, rounded once (FSCALE). */
V_INLINE vf v_scale2(vf p, vf n) { return svscale_f32_x(V_ALL, p, svcvt_s32_f32_x(V_ALL, n)); }

/* FSCALE is exact wherever the product is a normal float. */
V_INLINE vf v_scale2_normal(vf p, vf n) { return v_scale2(p, n); }
/* Every lane of a below c (a NaN is not). */
V_INLINE int v_all_below(vf a, vf c)
{
    return !svptest_any(V_ALL, svnot_b_z(V_ALL, svcmplt_f32(V_ALL, a, c)));
}

#include "simd/exp_tanh.h"

#endif

/*
 * AArch64 Advanced SIMD (NEON): the vocabulary of 4-lane vector operations
 * that the fused driver (kernels/simd/attention.h) and the shared Arm
 * kernels (kernels/arm/kernels_tmpl.h) are written in, the loads that
 * widen stored K/V values in registers, and the GEMM microkernel
 *
 *   gemm_f32_4x16_neon   C := post·(pre·C + A·B), 4 rows × 16 columns
 *
 * NEON has no masked loads or stores: a partial last vector of a row is
 * read and written lane by lane, so no access passes the row's end. The
 * exponential and tanh are SLEEF's 1-ULP AdvSIMD versions.
 */
#include <arm_neon.h>
#include <math.h>
#include <sleef.h>
#include <stdint.h>
#include <string.h>

#include "kernels.h"

#ifndef SIMD_SUFFIX        /* neonbf16.c builds on this vocabulary under its own name */
#define SIMD_SUFFIX _neon
#endif
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
V_INLINE vf v_exp(vf x) { return Sleef_expf4_u10advsimd(x); }
V_INLINE vf v_tanh(vf x) { return Sleef_tanhf4_u10advsimd(x); }
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

/* The first n floats at p (1 <= n <= 3), zeros above. */
V_INLINE vf load_part(const float *p, size_t n)
{
    vf x = vld1q_lane_f32(p, v_zero(), 0);
    if (n > 1) x = vld1q_lane_f32(p + 1, x, 1);
    if (n > 2) x = vld1q_lane_f32(p + 2, x, 2);
    return x;
}

V_INLINE void store_part(float *p, size_t n, vf x)
{
    vst1q_lane_f32(p, x, 0);
    if (n > 1) vst1q_lane_f32(p + 1, x, 1);
    if (n > 2) vst1q_lane_f32(p + 2, x, 2);
}

/* ---- the microkernel ------------------------------------------------------ */

/* Register blocking: 4 rows × 4 vectors = 16 of the 32 vector registers
   hold C, 4 the row of B and 4 the A element of each row, used
   by-element (FMLA v, v, v.s[0]): 24 in all. Per step 4 + 4 loads feed 16
   FMAs, which leaves the FMA pipes as the limit on cores with two load
   pipes, and 16 independent chains cover an FMA latency of 4 cycles on
   up to 4 pipes. A 6 × 4 tile needs 24 + 4 + 6 = 34 registers: GCC 12
   spilled one accumulator to the stack on every step. */
#define GEMM_MR 4
#define GEMM_NV 4
#define GEMM_NR (GEMM_NV * VL)

#if defined(__clang__)
#define NEON_UNROLL _Pragma("clang loop unroll(full)")
#else
#define NEON_UNROLL _Pragma("GCC unroll 8")
#endif

/* mr, nv and tail are constants at every call (arm/kernels_tmpl.h), so
   the loops unroll and acc[][] lives in registers. With tail the last
   vector holds nc % 4 columns and is read and written lane by lane. */
V_INLINE void gemm_f32_4x16_neon(const int mr, const int nv, const int tail, size_t nc,
                                 size_t k, const float *a, size_t rsa, size_t csa,
                                 const float *b, size_t ldb, float *const *c, size_t coff,
                                 int load_c, const float *pre, float post, float *cmax)
{
    const size_t nt = nc % 4;
    vf acc[GEMM_MR][GEMM_NV];
    const float *ar[GEMM_MR];
NEON_UNROLL
    for (int i = 0; i < mr; i++) {
        ar[i] = a + (size_t)i * rsa;
NEON_UNROLL
        for (int v = 0; v < nv; v++)
            acc[i][v] = v_zero();
    }
    for (size_t p = 0, ap = 0; p < k; p++, ap += csa, b += ldb) {
        vf bv[GEMM_NV];
NEON_UNROLL
        for (int v = 0; v < nv; v++)
            bv[v] = tail && v == nv - 1 ? load_part(b + v * 4, nt) : vld1q_f32(b + v * 4);
NEON_UNROLL
        for (int i = 0; i < mr; i++) {
            const float ai = ar[i][ap];
NEON_UNROLL
            for (int v = 0; v < nv; v++)
                acc[i][v] = vfmaq_n_f32(acc[i][v], bv[v], ai);
        }
    }
NEON_UNROLL
    for (int i = 0; i < mr; i++) {
        float *cr = c[i] + coff;
NEON_UNROLL
        for (int v = 0; v < nv; v++) {
            const int part = tail && v == nv - 1;
            vf x = acc[i][v];
            if (load_c) {
                vf old = part ? load_part(cr + v * 4, nt) : vld1q_f32(cr + v * 4);
                if (pre)
                    old = vmulq_n_f32(old, pre[i]);
                x = vaddq_f32(old, x);
            }
            x = vmulq_n_f32(x, post);
            if (cmax)
                vst1q_f32(cmax + v * 4, v_max(x, vld1q_f32(cmax + v * 4)));
            if (part)
                store_part(cr + v * 4, nt, x);
            else
                vst1q_f32(cr + v * 4, x);
        }
    }
}

#define ARM_GEMM_SHAPE(MR_, NV_)                                                         \
    do {                                                                                 \
        if (nc % 4)                                                                      \
            gemm_f32_4x16_neon(MR_, NV_, 1, nc, k, a, rsa, csa, b, ldb, c, coff, load_c, \
                               pre, post, cmax);                                         \
        else                                                                             \
            gemm_f32_4x16_neon(MR_, NV_, 0, nc, k, a, rsa, csa, b, ldb, c, coff, load_c, \
                               pre, post, cmax);                                         \
    } while (0)

/* ---- the decode kernels' hooks (arm/kernels_tmpl.h) --------------------------- */

V_INLINE vf v_load_rep4(const float *p) { return vld1q_f32(p); }
#define v_fmadd_lane(a, x, w, i) vfmaq_laneq_f32(a, x, w, i)
/* Pairwise adds turn the 4 vectors into one of their 4 sums. */
V_INLINE void v_store_sum4(float *p, vf a, vf b, vf c, vf d, float s)
{
    vst1q_f32(p, vmulq_n_f32(vpaddq_f32(vpaddq_f32(a, b), vpaddq_f32(c, d)), s));
}

/* 4 stored values widened exactly to f32 (simd/load_dt.h): f16 by FCVTL,
   bf16 by SHLL, the int8 of Q8_0 and the bytes of Q4_0 from one 32-bit
   load each (4 bytes: the last block of the last row ends the buffer),
   widened by SXTL/UXTL. A NaN stays a NaN (a bf16 one maybe signalling:
   only its being NaN matters to the kernels). */
V_INLINE vf v_load_f16(const void *p)
{
    return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16((const uint16_t *)p)));
}
V_INLINE vf v_load_bf16(const void *p)
{
    return vreinterpretq_f32_u32(vshll_n_u16(vld1_u16((const uint16_t *)p), 16));
}
/* The first n < 4 16-bit values, lane by lane; zeros above. */
V_INLINE uint16x4_t loadn_u16(const void *p, size_t n)
{
    const uint16_t *h = p;
    uint16x4_t x = vdup_n_u16(0);
    if (n > 0) x = vld1_lane_u16(h, x, 0);
    if (n > 1) x = vld1_lane_u16(h + 1, x, 1);
    if (n > 2) x = vld1_lane_u16(h + 2, x, 2);
    return x;
}
V_INLINE vf v_loadn_f16(const void *p, size_t n)
{
    return vcvt_f32_f16(vreinterpret_f16_u16(loadn_u16(p, n)));
}
V_INLINE vf v_loadn_bf16(const void *p, size_t n)
{
    return vreinterpretq_f32_u32(vshll_n_u16(loadn_u16(p, n), 16));
}
V_INLINE uint8x8_t load4_u8(const void *p)
{
    uint32_t w;
    memcpy(&w, p, sizeof w);
    return vreinterpret_u8_u32(vdup_n_u32(w));
}
V_INLINE vf v_load_i8(const void *p)
{
    const int16x8_t h = vmovl_s8(vreinterpret_s8_u8(load4_u8(p)));
    return vcvtq_f32_s32(vmovl_s16(vget_low_s16(h)));
}
V_INLINE vf v_load_q4(const void *p, int high)
{
    const uint8x8_t b = load4_u8(p);
    const uint8x8_t nib = high ? vshr_n_u8(b, 4) : vand_u8(b, vdup_n_u8(15));
    const int16x8_t h = vsubq_s16(vreinterpretq_s16_u16(vmovl_u8(nib)), vdupq_n_s16(8));
    return vcvtq_f32_s32(vmovl_s16(vget_low_s16(h)));
}

/* neonbf16.c takes the vocabulary above and adds its tiles before the template. */
#ifndef ARM_VOCABULARY_ONLY
#include "arm/kernels_tmpl.h"

void qkv_ctx_init_neon(qkv_ctx *c)
{
    SIMD_NAME(ctx_fill)(c);
    qkv_converters_init_neon(&c->conv);
    c->merge_states = merge_states_f32_neon;
}
#endif

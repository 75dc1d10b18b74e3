/*
 * AArch64 Advanced SIMD (NEON), in the 4-lane vocabulary of neon/vocab.h:
 * the loads that widen stored K/V values in registers and the GEMM
 * microkernel
 *
 *   gemm_f32_4x16_neon   C := post·(pre·C + A·B), 4 rows × 16 columns
 *
 * for the fused driver (kernels/simd/attention.h) and the shared Arm
 * kernels (kernels/arm/kernels_tmpl.h).
 */
#include <arm_neon.h>
#include <string.h>

#include "kernels.h"

#ifndef SIMD_SUFFIX        /* neonbf16.c builds on this vocabulary under its own name */
#define SIMD_SUFFIX _neon
#endif
#include "neon/vocab.h"
#include "simd/unroll.h"

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

/* mr, nv, tail and byrow are constants at every call (arm/kernels_tmpl.h),
   so the loops unroll and acc[][] lives in registers. With tail the last
   vector holds nc % 4 columns and is read and written lane by lane. byrow:
   B's rows by pointer instead, row p the floats from ldb on of the row at
   bp[p]; ap (not NULL) likewise A's, row i the floats from rsa on of the
   row at ap[i]. */
V_INLINE void gemm_f32_4x16_neon(const int mr, const int nv, const int tail, const int byrow,
                                 size_t nc, size_t k, const float *a, const unsigned char *const *ap,
                                 size_t rsa, size_t csa, const float *b,
                                 const unsigned char *const *bp, size_t ldb,
                                 float *const *c, size_t coff, int load_c, const float *pre,
                                 float post, float *cmax)
{
    const size_t nt = nc % 4;
    vf acc[GEMM_MR][GEMM_NV];
    const float *ar[GEMM_MR];
SIMD_UNROLL
    for (int i = 0; i < mr; i++) {
        ar[i] = ap ? (const float *)(const void *)ap[i] + rsa : a + (size_t)i * rsa;
SIMD_UNROLL
        for (int v = 0; v < nv; v++)
            acc[i][v] = v_zero();
    }
    for (size_t p = 0, ac = 0; p < k; p++, ac += csa, b += ldb) {
        if (byrow)
            b = (const float *)(const void *)bp[p] + ldb;
        vf bv[GEMM_NV];
SIMD_UNROLL
        for (int v = 0; v < nv; v++)
            bv[v] = tail && v == nv - 1 ? load_part(b + v * 4, nt) : vld1q_f32(b + v * 4);
SIMD_UNROLL
        for (int i = 0; i < mr; i++) {
            const float ai = ar[i][ac];
SIMD_UNROLL
            for (int v = 0; v < nv; v++)
                acc[i][v] = vfmaq_n_f32(acc[i][v], bv[v], ai);
        }
    }
SIMD_UNROLL
    for (int i = 0; i < mr; i++) {
        float *cr = c[i] + coff;
SIMD_UNROLL
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

#define ARM_GEMM_SHAPE(MR_, NV_)                                                          \
    do {                                                                                  \
        if (nc % 4)                                                                       \
            gemm_f32_4x16_neon(MR_, NV_, 1, 0, nc, k, a, ap, rsa, csa, b, NULL, ldb, c,   \
                               coff, load_c, pre, post, cmax);                            \
        else                                                                              \
            gemm_f32_4x16_neon(MR_, NV_, 0, 0, nc, k, a, ap, rsa, csa, b, NULL, ldb, c,   \
                               coff, load_c, pre, post, cmax);                            \
    } while (0)
#define ARM_GEMM_ROWS(MR_)                                                                \
    gemm_f32_4x16_neon(MR_, GEMM_NV, 0, 1, GEMM_NR, k, a, NULL, rsa, csa, NULL, bp, boff, c, \
                       coff, 1, pre, 1.0f, NULL)

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

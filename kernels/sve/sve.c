/*
 * AArch64 SVE, in the vector-length agnostic vocabulary of sve/vocab.h:
 * the loads that widen stored K/V values in registers and the GEMM
 * microkernel
 *
 *   gemm_f32_8x2v_sve   C := post·(pre·C + A·B), 8 rows × 2 vectors
 *
 * for the fused driver (kernels/simd/attention.h) and the shared Arm
 * kernels (kernels/arm/kernels_tmpl.h). The accumulators are spelled out:
 * sizeless vectors make no arrays.
 */
#include <arm_sve.h>
#include <string.h>

#include "kernels.h"

#ifndef SIMD_SUFFIX        /* svebf16.c builds on this vocabulary under its own name */
#define SIMD_SUFFIX _sve
#endif
#include "sve/vocab.h"

/* ---- the microkernel ------------------------------------------------------ */

/* Register blocking: 8 rows × 2 vectors = 16 of the 32 vector registers
   hold C, 2 the row of B and 8 the broadcast A element of each row (LD1RW):
   26 in all, so nothing spills. Per step 8 + 2 loads feed 16 FMAs and 16
   independent chains cover an FMA latency of 4 cycles on up to 4 pipes.
   Two vectors rather than four: the driver's score tiles are 8..32 lanes
   of rows wide, which 2 vectors cover in one or two column blocks at 256
   bits and more, where 4 × 4 would leave half its accumulators idle. */
#define GEMM_MR 8
#define GEMM_NV 2
#define GEMM_NR (GEMM_NV * VL)

/* mr, nv and byrow are constants at every call (arm/kernels_tmpl.h): the
   row and vector tests fold away. Columns from nc on are inactive lanes of
   m0/m1; the second vector is addressed with _vnum so that no pointer past
   the row is formed when it is all inactive. byrow: B's rows by pointer
   instead, row p the floats from ldb on of the row at bp[p]; ap (not
   NULL) likewise A's, row i the floats from rsa on of the row at ap[i]. */
V_INLINE void gemm_f32_8x2v_sve(const int mr, const int nv, const int byrow, size_t nc, size_t k,
                                const float *a, const unsigned char *const *ap, size_t rsa,
                                size_t csa, const float *b, const unsigned char *const *bp,
                                size_t ldb, float *const *c,
                                size_t coff, int load_c, const float *pre, float post,
                                float *cmax)
{
    const svbool_t m0 = svwhilelt_b32_u64(0, nc), m1 = svwhilelt_b32_u64(VL, nc);
    const vf z = v_zero();
    vf c00 = z, c01 = z, c10 = z, c11 = z, c20 = z, c21 = z, c30 = z, c31 = z;
    vf c40 = z, c41 = z, c50 = z, c51 = z, c60 = z, c61 = z, c70 = z, c71 = z;
#define GEMM_AROW(i)                                                                   \
    const float *a##i = ap ? (const float *)(const void *)ap[mr > i ? i : 0] + rsa    \
                           : a + (size_t)(mr > i ? i : 0) * rsa;
    GEMM_AROW(0) GEMM_AROW(1) GEMM_AROW(2) GEMM_AROW(3)
    GEMM_AROW(4) GEMM_AROW(5) GEMM_AROW(6) GEMM_AROW(7)
#undef GEMM_AROW
    for (size_t p = 0, ac = 0; p < k; p++, ac += csa, b += ldb) {
        if (byrow)
            b = (const float *)(const void *)bp[p] + ldb;
        const vf b0 = svld1_f32(m0, b);
        const vf b1 = nv > 1 ? svld1_vnum_f32(m1, b, 1) : z;
#define GEMM_STEP(i)                                                \
        if (mr > i) {                                               \
            const vf ai = svdup_n_f32(a##i[ac]);                    \
            c##i##0 = svmla_f32_x(V_ALL, c##i##0, ai, b0);          \
            if (nv > 1)                                             \
                c##i##1 = svmla_f32_x(V_ALL, c##i##1, ai, b1);      \
        }
        GEMM_STEP(0) GEMM_STEP(1) GEMM_STEP(2) GEMM_STEP(3)
        GEMM_STEP(4) GEMM_STEP(5) GEMM_STEP(6) GEMM_STEP(7)
#undef GEMM_STEP
    }
#define GEMM_OUT(i, v)                                                                     \
    if (mr > i && nv > v) {                                                                \
        vf x = c##i##v;                                                                    \
        if (load_c) {                                                                      \
            vf old = svld1_vnum_f32(m##v, c[i] + coff, v);                                 \
            if (pre)                                                                       \
                old = svmul_n_f32_x(V_ALL, old, pre[i]);                                   \
            x = svadd_f32_x(V_ALL, old, x);                                                \
        }                                                                                  \
        x = svmul_n_f32_x(V_ALL, x, post);                                                 \
        if (cmax)                                                                          \
            svst1_vnum_f32(V_ALL, cmax, v, v_max(x, svld1_vnum_f32(V_ALL, cmax, v)));      \
        svst1_vnum_f32(m##v, c[i] + coff, v, x);                                           \
    }
    GEMM_OUT(0, 0) GEMM_OUT(0, 1) GEMM_OUT(1, 0) GEMM_OUT(1, 1)
    GEMM_OUT(2, 0) GEMM_OUT(2, 1) GEMM_OUT(3, 0) GEMM_OUT(3, 1)
    GEMM_OUT(4, 0) GEMM_OUT(4, 1) GEMM_OUT(5, 0) GEMM_OUT(5, 1)
    GEMM_OUT(6, 0) GEMM_OUT(6, 1) GEMM_OUT(7, 0) GEMM_OUT(7, 1)
#undef GEMM_OUT
}

#define ARM_GEMM_SHAPE(MR_, NV_) \
    gemm_f32_8x2v_sve(MR_, NV_, 0, nc, k, a, ap, rsa, csa, b, NULL, ldb, c, coff, load_c, pre, post, \
                      cmax)
#define ARM_GEMM_ROWS(MR_) \
    gemm_f32_8x2v_sve(MR_, GEMM_NV, 1, GEMM_NR, k, a, NULL, rsa, csa, NULL, bp, boff, c, coff, 1, pre, \
                      1.0f, NULL)

/* ---- the decode kernels' hooks (arm/kernels_tmpl.h) --------------------------- */

/* LD1RQW: 4 floats repeated in every 128-bit segment, which is what FMLA
   by element indexes into. */
V_INLINE vf v_load_rep4(const float *p) { return svld1rq_f32(V_ALL, p); }
#define v_fmadd_lane(a, x, w, i) svmla_lane_f32(a, x, w, i)
V_INLINE void v_store_sum4(float *p, vf a, vf b, vf c, vf d, float s)
{
    p[0] = s * v_hsum(a);
    p[1] = s * v_hsum(b);
    p[2] = s * v_hsum(c);
    p[3] = s * v_hsum(d);
}

/* VL stored values widened exactly to f32 (simd/load_dt.h), each element
   loaded into its own 32-bit lane (LD1H, LD1SB, LD1B), so a predicate
   covers a tail and nothing past it is read: f16 by FCVT of the low half
   of each lane, bf16 by a shift. */
V_INLINE vf v_loadn_f16(const void *p, size_t n)
{
    const svuint32_t h = svld1uh_u32(svwhilelt_b32_u64(0, n), (const uint16_t *)p);
    return svcvt_f32_f16_x(V_ALL, svreinterpret_f16_u32(h));
}
V_INLINE vf v_loadn_bf16(const void *p, size_t n)
{
    const svuint32_t h = svld1uh_u32(svwhilelt_b32_u64(0, n), (const uint16_t *)p);
    return svreinterpret_f32_u32(svlsl_n_u32_x(V_ALL, h, 16));
}
V_INLINE vf v_load_f16(const void *p) { return v_loadn_f16(p, VL); }
V_INLINE vf v_load_bf16(const void *p) { return v_loadn_bf16(p, VL); }
V_INLINE vf v_load_i8(const void *p)
{
    return svcvt_f32_s32_x(V_ALL, svld1sb_s32(V_ALL, (const int8_t *)p));
}
/* The low (high) nibbles of VL bytes, minus 8. At 1024 bits (VL = 32, the
   longest vector that reads blocks in place) one vector is a whole Q4_0
   block, its 16 bytes' low nibbles then their high ones (high is then
   never set): lane l takes byte l % 16, its high nibble from lane 16 on. */
V_INLINE vf v_load_q4(const void *p, int high)
{
    svuint32_t x;
    if (VL <= 16) {
        x = svld1ub_u32(V_ALL, (const uint8_t *)p);
        if (high)
            x = svlsr_n_u32_x(V_ALL, x, 4);
    } else {
        const svuint32_t lane = svindex_u32(0, 1);
        x = svld1ub_u32(svwhilelt_b32_u64(0, 16), (const uint8_t *)p);
        x = svtbl_u32(x, svand_n_u32_x(V_ALL, lane, 15));
        x = svlsr_u32_x(V_ALL, x, svlsr_n_u32_x(V_ALL, svand_n_u32_x(V_ALL, lane, 16), 2));
    }
    const svint32_t v = svreinterpret_s32_u32(svand_n_u32_x(V_ALL, x, 15));
    return svcvt_f32_s32_x(V_ALL, svsub_n_s32_x(V_ALL, v, 8));
}

/* svebf16.c takes the vocabulary above and adds its tiles before the template. */
#ifndef ARM_VOCABULARY_ONLY
#include "arm/kernels_tmpl.h"

void qkv_ctx_init_sve(qkv_ctx *c)
{
    SIMD_NAME(ctx_fill)(c);
    qkv_converters_init_sve(&c->conv);
    c->merge_states = merge_states_f32_sve;
}
#endif

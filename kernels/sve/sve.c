/*
 * AArch64 SVE, vector-length agnostic: one binary for every vector length
 * from 128 to 2048 bits. The vocabulary that the fused driver
 * (kernels/simd/attention.h) and the shared Arm kernels
 * (kernels/arm/kernels_tmpl.h) are written in, the loads that widen stored
 * K/V values in registers, and the GEMM microkernel
 *
 *   gemm_f32_8x2v_sve   C := post·(pre·C + A·B), 8 rows × 2 vectors
 *
 * VL is svcntw(), known only at run time; VL_MAX bounds it at compile
 * time for the driver's per-lane arrays. SVE vectors and predicates are
 * sizeless (no arrays of them, no struct members), so the accumulators
 * are spelled out. Tails need no scalar code: the last partial vector
 * runs under an svwhilelt predicate, and predicated loads and stores do
 * not touch memory in their inactive lanes. The exponential and tanh are
 * SLEEF's 1-ULP SVE versions.
 */
#include <arm_sve.h>
#include <math.h>
#include <sleef.h>
#include <stdint.h>
#include <string.h>

#include "kernels.h"

#ifndef SIMD_SUFFIX        /* svebf16.c builds on this vocabulary under its own name */
#define SIMD_SUFFIX _sve
#endif
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
V_INLINE vf v_exp(vf x) { return Sleef_expfx_u10sve(x); }
V_INLINE vf v_tanh(vf x) { return Sleef_tanhfx_u10sve(x); }
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

/* mr and nv are constants at every call (arm/kernels_tmpl.h): the row and
   vector tests fold away. Columns from nc on are inactive lanes of m0/m1;
   the second vector is addressed with _vnum so that no pointer past the
   row is formed when it is all inactive. */
V_INLINE void gemm_f32_8x2v_sve(const int mr, const int nv, size_t nc, size_t k,
                                const float *a, size_t rsa, size_t csa, const float *b,
                                size_t ldb, float *const *c, size_t coff, int load_c,
                                const float *pre, float post, float *cmax)
{
    const svbool_t m0 = svwhilelt_b32_u64(0, nc), m1 = svwhilelt_b32_u64(VL, nc);
    const vf z = v_zero();
    vf c00 = z, c01 = z, c10 = z, c11 = z, c20 = z, c21 = z, c30 = z, c31 = z;
    vf c40 = z, c41 = z, c50 = z, c51 = z, c60 = z, c61 = z, c70 = z, c71 = z;
#define GEMM_AROW(i) const float *a##i = a + (size_t)(mr > i ? i : 0) * rsa;
    GEMM_AROW(0) GEMM_AROW(1) GEMM_AROW(2) GEMM_AROW(3)
    GEMM_AROW(4) GEMM_AROW(5) GEMM_AROW(6) GEMM_AROW(7)
#undef GEMM_AROW
    for (size_t p = 0, ap = 0; p < k; p++, ap += csa, b += ldb) {
        const vf b0 = svld1_f32(m0, b);
        const vf b1 = nv > 1 ? svld1_vnum_f32(m1, b, 1) : z;
#define GEMM_STEP(i)                                                \
        if (mr > i) {                                               \
            const vf ai = svdup_n_f32(a##i[ap]);                    \
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
    gemm_f32_8x2v_sve(MR_, NV_, nc, k, a, rsa, csa, b, ldb, c, coff, load_c, pre, post, cmax)

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

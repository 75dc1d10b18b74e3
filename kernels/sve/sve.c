/*
 * AArch64 SVE, vector-length agnostic: one binary for every vector length
 * from 128 to 2048 bits. The vocabulary that the fused driver
 * (kernels/simd/attention.h) and the shared Arm kernels
 * (kernels/arm/kernels_tmpl.h) are written in, and the two microkernels:
 *
 *   gemm_f32_8x2v_sve   C := post·(pre·C + A·B), 8 rows × 2 vectors
 *   dot_f32_4x4_sve     4 query rows × 4 keys, dot products along d
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

#include "kernels.h"

#define SIMD_SUFFIX _sve
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

/* ---- dot products for few rows ------------------------------------------------ */

/* out[4kk + r] = scale · dot(q[r], k[kk]) for kk < nk (the keys of
   arm/kernels_tmpl.h's qk_dot4): 16 accumulators along d (+ 4 k + 1 q = 21
   registers, 16 FMAs per 8 loads), each reduced with FADDV. They merge
   (_m) under the loop predicate, so the last partial vector of d leaves
   their inactive lanes as they were. */
V_INLINE void dot_f32_4x4_sve(const float *const *q, const float *const *k, size_t d,
                              float scale, size_t nk, float *out)
{
    vf a00 = v_zero(), a01 = a00, a02 = a00, a03 = a00, a10 = a00, a11 = a00, a12 = a00;
    vf a13 = a00, a20 = a00, a21 = a00, a22 = a00, a23 = a00, a30 = a00, a31 = a00;
    vf a32 = a00, a33 = a00;
    for (size_t c = 0; c < d; c += VL) {
        const svbool_t pg = svwhilelt_b32_u64(c, d);
        const vf vk0 = svld1_f32(pg, k[0] + c), vk1 = svld1_f32(pg, k[1] + c);
        const vf vk2 = svld1_f32(pg, k[2] + c), vk3 = svld1_f32(pg, k[3] + c);
        vf vq;
#define DOT_ROW(r)                                   \
        vq = svld1_f32(pg, q[r] + c);                \
        a##r##0 = svmla_f32_m(pg, a##r##0, vq, vk0); \
        a##r##1 = svmla_f32_m(pg, a##r##1, vq, vk1); \
        a##r##2 = svmla_f32_m(pg, a##r##2, vq, vk2); \
        a##r##3 = svmla_f32_m(pg, a##r##3, vq, vk3);
        DOT_ROW(0) DOT_ROW(1) DOT_ROW(2) DOT_ROW(3)
#undef DOT_ROW
    }
#define DOT_KEY(kk)                                   \
    if (kk < nk) {                                    \
        out[4 * kk + 0] = scale * v_hsum(a0##kk);     \
        out[4 * kk + 1] = scale * v_hsum(a1##kk);     \
        out[4 * kk + 2] = scale * v_hsum(a2##kk);     \
        out[4 * kk + 3] = scale * v_hsum(a3##kk);     \
    }
    DOT_KEY(0) DOT_KEY(1) DOT_KEY(2) DOT_KEY(3)
#undef DOT_KEY
}

#include "arm/kernels_tmpl.h"

void qkv_ctx_init_sve(qkv_ctx *c)
{
    SIMD_NAME(ctx_fill)(c);
    qkv_converters_init_sve(&c->conv);
    c->merge_states = merge_states_f32_sve;
}

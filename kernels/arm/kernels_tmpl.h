/*
 * NEON and SVE written once: the ISA file (neon/neon.c, sve/sve.c) defines
 * the vector vocabulary of kernels/simd/attention.h and its GEMM
 * microkernel, then includes this file once. It adds what the two share:
 * the microkernel's shape switch, the decode kernels (simd_qk_dot,
 * simd_pv_rows over K and V in place, widened by simd/load_dt.h), the mask
 * copy, the fused driver (simd/attention.h), the stage kernels
 * (arm/stages.h) and the registry entry, SIMD_NAME(ctx_fill).
 *
 * The includer provides, besides the vocabulary (SIMD_SUFFIX, VL, VL_MAX,
 * vf, vm, v_*, the loads of simd/load_dt.h but v_f16_scalar) and v_hmax /
 * v_hsum (a float: the max ignoring NaN / the sum of the lanes),
 *   GEMM_MR, GEMM_NV        the microkernel's tile: MR rows (4 or 8) ×
 *                           NV vectors (4 or 2)
 *   GEMM_NR                 its columns, GEMM_NV · VL
 *   ARM_GEMM_SHAPE(MR, NV)  a statement: the microkernel inlined for these
 *                           constants, run on gemm_any's arguments
 *   ARM_GEMM_ROWS(MR)       the same for a full panel of GEMM_NR columns,
 *                           B's rows by pointer, run on gemm_rows's
 *   v_load_rep4(p)          p[0..3] in every group of 4 lanes
 *   v_fmadd_lane(a, x, w, i)  a + x · w[i], w[i] the lane i of each group
 *                           of 4 (i a constant: a macro)
 *   v_store_sum4(p, a, b, c, d, s)
 *                           p[0..3] = s · the sums of the lanes of a, b,
 *                           c, d
 */
#ifndef ARM_KERNELS_TMPL_H
#define ARM_KERNELS_TMPL_H
#else
#error "arm/kernels_tmpl.h is included once per ISA translation unit"
#endif

#include <stddef.h>
#include <string.h>

#include "kernels.h"

#define ARM_CAT_(a, b) a##b
#define ARM_CAT(a, b) ARM_CAT_(a, b)

/* simd_gemm for any 1 <= mr <= GEMM_MR and 1 <= nc <= GEMM_NR: one
   inlined copy of the microkernel per shape, so that its accumulators are
   registers for edge tiles too. */
#if GEMM_NV == 4
#define GEMM_COLS(MR_)                                 \
    if (nv == 1) ARM_GEMM_SHAPE(MR_, 1);               \
    else if (nv == 2) ARM_GEMM_SHAPE(MR_, 2);          \
    else if (nv == 3) ARM_GEMM_SHAPE(MR_, 3);          \
    else ARM_GEMM_SHAPE(MR_, 4)
#elif GEMM_NV == 2
#define GEMM_COLS(MR_)                                 \
    if (nv == 1) ARM_GEMM_SHAPE(MR_, 1);               \
    else ARM_GEMM_SHAPE(MR_, 2)
#else
#error "gemm_f32_any is written for GEMM_NV 2 or 4"
#endif
#if GEMM_MR != 4 && GEMM_MR != 8
#error "gemm_f32_any is written for GEMM_MR 4 or 8"
#endif
/* CASE(MR) for the constant MR equal to mr (1 <= mr <= GEMM_MR). */
#if GEMM_MR == 8
#define ARM_MR_SWITCH(CASE)                                           \
    switch (mr) {                                                     \
    case 1: CASE(1); break;                                           \
    case 2: CASE(2); break;                                           \
    case 3: CASE(3); break;                                           \
    case 4: CASE(4); break;                                           \
    case 5: CASE(5); break;                                           \
    case 6: CASE(6); break;                                           \
    case 7: CASE(7); break;                                           \
    default: CASE(8); break;                                          \
    }
#else
#define ARM_MR_SWITCH(CASE)                                           \
    switch (mr) {                                                     \
    case 1: CASE(1); break;                                           \
    case 2: CASE(2); break;                                           \
    case 3: CASE(3); break;                                           \
    default: CASE(4); break;                                          \
    }
#endif
static void ARM_CAT(gemm_f32_any, SIMD_SUFFIX)(int mr, size_t nc, size_t k, const float *a,
                                               const unsigned char *const *ap, size_t rsa, size_t csa,
                                               const float *b, size_t ldb, float *const *c,
                                               size_t coff, int load_c, const float *pre,
                                               float post, float *cmax)
{
    const size_t nv = (nc + VL - 1) / VL;
    ARM_MR_SWITCH(GEMM_COLS)
}
#undef GEMM_COLS

/* simd_gemm_rows: gemm_f32_any with load_c, post 1 and no cmax for a full
   panel of GEMM_NR columns, B[p] the floats from boff on of the row at
   bp[p] (the fused driver's P·V on an f32 V in short pages). f32 only:
   without simd_gemm_b16 the driver reads no other V in place, so bt is
   always QKV_F32 here. */
static void ARM_CAT(gemm_rows, SIMD_SUFFIX)(qkv_dtype bt, int mr, size_t k, const float *a,
                                            size_t rsa, size_t csa,
                                            const unsigned char *const *bp, size_t boff,
                                            float *const *c, size_t coff, const float *pre)
{
    (void)bt;
    ARM_MR_SWITCH(ARM_GEMM_ROWS)
}
#undef ARM_MR_SWITCH

/* The additive mask in the layout of the scores, mt[j·rp + r], copied
   element by element. x86 transposes VL × VL blocks in registers instead,
   which there cut the mask's cost in a masked prefill from 26% to 15%;
   untried here, for want of Arm hardware to measure on. */
static void ARM_CAT(mask_t, SIMD_SUFFIX)(const float *const *mask, size_t rows, size_t key0,
                                         size_t n, size_t rp, float *mt)
{
    for (size_t r = 0; r < rows; r++)
        for (size_t j = 0; j < n; j++)
            mt[j * rp + r] = mask[r] ? mask[r][key0 + j] : 0.0f;
}

/* ---- decode: K and V read in place ------------------------------------------- */

/* A block's f16 scale: FCVT, exact. */
V_INLINE float v_f16_scalar(const void *p)
{
    __fp16 h;
    memcpy(&h, p, sizeof h);
    return h;
}
#include "simd/load_dt.h"

/* Rows past 4 (8-row jobs) come only with the dot form, which needs VL >= 16. */
#define ARM_ROWS8 (VL_MAX >= 16)

/* The 16 accumulators a0..a15 of the decode kernels, in 4 groups of 4
   rows: X(a, b, c, d, v, r0, x, w, qa, qb, qc, qd) for the group of rows
   r0..r0+3 at v, a key (dot) or a vector of V columns (P·V); x is that key
   or V vector, w the P·V weights of the group's rows (lanes 0..3 of each
   group of 4), qa..qd their Q rows. R = 4: 4 rows × 4 keys or vectors;
   R = 8: 8 rows × 2. A constant R folds the branch. */
#define ARM_GROUPS(R, X)                                           \
    if ((R) == 4) {                                                \
        X(a0, a1, a2, a3, 0, 0, x0, w0, q0, q1, q2, q3)            \
        X(a4, a5, a6, a7, 1, 0, x1, w0, q0, q1, q2, q3)            \
        X(a8, a9, a10, a11, 2, 0, x2, w0, q0, q1, q2, q3)          \
        X(a12, a13, a14, a15, 3, 0, x3, w0, q0, q1, q2, q3)        \
    } else {                                                       \
        X(a0, a1, a2, a3, 0, 0, x0, w0, q0, q1, q2, q3)            \
        X(a4, a5, a6, a7, 0, 4, x0, w1, q4, q5, q6, q7)            \
        X(a8, a9, a10, a11, 1, 0, x1, w0, q0, q1, q2, q3)          \
        X(a12, a13, a14, a15, 1, 4, x1, w1, q4, q5, q6, q7)        \
    }
#define ARM_ACCS(z)                                                            \
    vf a0 = z, a1 = z, a2 = z, a3 = z, a4 = z, a5 = z, a6 = z, a7 = z, a8 = z, \
       a9 = z, a10 = z, a11 = z, a12 = z, a13 = z, a14 = z, a15 = z

/* out[v·ors + r] = scale · dot(q[r], K_v) for R rows (4 or 8) and the
   keys v < nk of kr (16/R of them, all valid rows): 16 dot products along
   d at once, each K vector loaded and widened once for R rows, each Q
   vector used for 16/R keys (R = 4: 16 accumulators + 4 K + 4 Q = 24 of
   the 32 registers; R = 8: 16 + 2 + 8 = 26). Block types have no tail
   (d is whole blocks, VL divides 32). */
V_INLINE void SIMD_NAME(dot_blk)(const int R, const qkv_dtype t, const float *const *q,
                                 size_t d, const unsigned char *const *kr, size_t nk,
                                 float scale, float *out, size_t ors)
{
    const size_t nfull = d / VL * VL;
    const vf z = v_zero();
    ARM_ACCS(z);
    vf x0 = z, x1 = z, x2 = z, x3 = z, q0 = z, q1 = z, q2 = z, q3 = z;
    vf q4 = z, q5 = z, q6 = z, q7 = z;
#define DOT_FMA(A, B, C, D, V, R0, X, W, QA, QB, QC, QD) \
    A = v_fmadd(X, QA, A);                               \
    B = v_fmadd(X, QB, B);                               \
    C = v_fmadd(X, QC, C);                               \
    D = v_fmadd(X, QD, D);
#define DOT_STEP(LOADK, LOADQ)                                                        \
    x0 = LOADK(0), x1 = LOADK(1);                                                     \
    if (R == 4)                                                                       \
        x2 = LOADK(2), x3 = LOADK(3);                                                 \
    q0 = LOADQ(0), q1 = LOADQ(1), q2 = LOADQ(2), q3 = LOADQ(3);                       \
    if (R == 8)                                                                       \
        q4 = LOADQ(4), q5 = LOADQ(5), q6 = LOADQ(6), q7 = LOADQ(7);                   \
    ARM_GROUPS(R, DOT_FMA)
#define K_FULL(i) SIMD_NAME(load_dt)(t, kr[i], c)
#define Q_FULL(i) v_load(q[i] + c)
    for (size_t c = 0; c < nfull; c += VL) {
        DOT_STEP(K_FULL, Q_FULL)
    }
    if (nfull < d) {
        const vm tm = v_tailmask(d - nfull);
#define K_TAIL(i) SIMD_NAME(load_dtn)(t, kr[i], nfull, d - nfull)
#define Q_TAIL(i) v_loadm(q[i] + nfull, tm)
        DOT_STEP(K_TAIL, Q_TAIL)
    }
#define DOT_OUT(A, B, C, D, V, R0, X, W, QA, QB, QC, QD) \
    if ((size_t)(V) < nk)                                \
        v_store_sum4(out + (size_t)(V) * ors + (R0), A, B, C, D, scale);
    ARM_GROUPS(R, DOT_OUT)
#undef DOT_OUT
#undef Q_TAIL
#undef K_TAIL
#undef Q_FULL
#undef K_FULL
#undef DOT_STEP
#undef DOT_FMA
}

/* The 16 accumulators for R = 1 or 2 rows (a job's only rows: MHA, GQA
   groups of 2) as 16/R keys or V vectors × R rows: ONE(a, k) names row 0's
   accumulator of k, TWO(a, b, k) rows 0 and 1's. */
#define ARM_FEW(R, ONE, TWO)                                                              \
    if ((R) == 1) {                                                                       \
        ONE(a0, 0) ONE(a1, 1) ONE(a2, 2) ONE(a3, 3) ONE(a4, 4) ONE(a5, 5) ONE(a6, 6)      \
        ONE(a7, 7) ONE(a8, 8) ONE(a9, 9) ONE(a10, 10) ONE(a11, 11) ONE(a12, 12)           \
        ONE(a13, 13) ONE(a14, 14) ONE(a15, 15)                                            \
    } else {                                                                              \
        TWO(a0, a1, 0) TWO(a2, a3, 1) TWO(a4, a5, 2) TWO(a6, a7, 3) TWO(a8, a9, 4)        \
        TWO(a10, a11, 5) TWO(a12, a13, 6) TWO(a14, a15, 7)                                \
    }

/* dot_blk for R = 1 or 2 rows, 16/R keys (each K vector loaded and
   widened once for its R rows): out[k·ors + r] = scale · dot(q[r], K_k)
   for the keys k < nk and r < R. */
V_INLINE void SIMD_NAME(dot_blk_few)(const int R, const qkv_dtype t, const float *const *q,
                                     size_t d, const unsigned char *const *kr, size_t nk,
                                     float scale, float *out, size_t ors)
{
    const size_t nfull = d / VL * VL;
    const vf z = v_zero();
    ARM_ACCS(z);
    vf q0 = z, q1 = z;
#define DOT_ONE(A, K) A = v_fmadd(LOADK(K), q0, A);
#define DOT_TWO(A, B, K)              \
    {                                 \
        const vf x_ = LOADK(K);       \
        A = v_fmadd(x_, q0, A);       \
        B = v_fmadd(x_, q1, B);       \
    }
#define LOADK(K) SIMD_NAME(load_dt)(t, kr[K], c)
    for (size_t c = 0; c < nfull; c += VL) {
        q0 = v_load(q[0] + c);
        if (R == 2)
            q1 = v_load(q[1] + c);
        ARM_FEW(R, DOT_ONE, DOT_TWO)
    }
#undef LOADK
    if (nfull < d) {
        const vm tm = v_tailmask(d - nfull);
#define LOADK(K) SIMD_NAME(load_dtn)(t, kr[K], nfull, d - nfull)
        q0 = v_loadm(q[0] + nfull, tm);
        if (R == 2)
            q1 = v_loadm(q[1] + nfull, tm);
        ARM_FEW(R, DOT_ONE, DOT_TWO)
#undef LOADK
    }
#undef DOT_TWO
#undef DOT_ONE
    float sc[16];
    v_store_sum4(sc, a0, a1, a2, a3, scale);
    v_store_sum4(sc + 4, a4, a5, a6, a7, scale);
    v_store_sum4(sc + 8, a8, a9, a10, a11, scale);
    v_store_sum4(sc + 12, a12, a13, a14, a15, scale);
    for (size_t k = 0; k < nk; k++)
        memcpy(out + k * ors, sc + k * (size_t)R, (size_t)R * sizeof *out);
}

/* simd_qk_dot (simd/attention.h) in blocks of 16/R keys, a key past n
   standing in as key n - 1 (computed, not stored), each block followed by
   the prefetch of its keys' kpre rows; then the keys from n up to whole
   vectors of the driver's [key][R] layout (VL/R keys) get key n - 1's
   scores. */
V_INLINE void SIMD_NAME(qk_dot_t)(const int R, const qkv_dtype t, const float *const *q,
                                  size_t d, const unsigned char *const *krow, size_t n,
                                  float scale, float *out, size_t ors,
                                  const unsigned char *const *kpre)
{
    const size_t kb = 16 / (size_t)R, kbytes = qkv_dtype_bytes(t, d);
    for (size_t j0 = 0; j0 < n; j0 += kb) {
        const unsigned char *kr[16];
        for (size_t kk = 0; kk < kb; kk++)
            kr[kk] = krow[j0 + kk < n ? j0 + kk : n - 1];
        const size_t nk = n - j0 < kb ? n - j0 : kb;
        if (R < 4)
            SIMD_NAME(dot_blk_few)(R, t, q, d, kr, nk, scale, out + j0 * ors, ors);
        else
            SIMD_NAME(dot_blk)(R, t, q, d, kr, nk, scale, out + j0 * ors, ors);
        for (size_t j = j0; kpre && j < j0 + kb && j < n; j++)
            SIMD_NAME(prefetch_part)(kpre[j], 0, kbytes, SIMD_NAME(prefetch_l2));
    }
    const size_t per_vec = (size_t)VL >= (size_t)R ? (size_t)VL / (size_t)R : 1;
    const size_t whole = (n + per_vec - 1) / per_vec * per_vec;
    for (size_t j = n; j < whole; j++)
        memcpy(out + j * ors, out + (n - 1) * ors, (size_t)R * sizeof *out);
}

/* Out of line, as on x86 (there, inlined into the driver, Q was kept on
   the stack for want of registers). */
static __attribute__((noinline)) void SIMD_NAME(qk_dot)(int rows, qkv_dtype t,
                                                      const float *const *q, size_t d,
                                                      const unsigned char *const *krow, size_t n,
                                                      float scale, float *out, size_t ors,
                                                      const unsigned char *const *kpre)
{
#define QK_DOT1(T_) SIMD_NAME(qk_dot_t)(1, T_, q, d, krow, n, scale, out, ors, kpre)
#define QK_DOT2(T_) SIMD_NAME(qk_dot_t)(2, T_, q, d, krow, n, scale, out, ors, kpre)
#define QK_DOT4(T_) SIMD_NAME(qk_dot_t)(4, T_, q, d, krow, n, scale, out, ors, kpre)
#define QK_DOT8(T_) SIMD_NAME(qk_dot_t)(8, T_, q, d, krow, n, scale, out, ors, kpre)
#if ARM_ROWS8
    if (rows == 8) {
        SIMD_DTYPE_SWITCH(t, QK_DOT8)
        return;
    }
#endif
    if (rows == 1) {
        SIMD_DTYPE_SWITCH(t, QK_DOT1)
    } else if (rows == 2) {
        SIMD_DTYPE_SWITCH(t, QK_DOT2)
    } else {
        SIMD_DTYPE_SWITCH(t, QK_DOT4)
    }
#undef QK_DOT8
#undef QK_DOT4
#undef QK_DOT2
#undef QK_DOT1
}

/* acc[r] + c0 for the lanes of row r; rows past the job's read its last
   row (computed, never stored). */
V_INLINE vf SIMD_NAME(pv_in)(float *const *acc, size_t rows, size_t r, size_t at, int part,
                             vm tm, const float *pre)
{
    const size_t ri = r < rows ? r : rows - 1;
    const vf x = part ? v_loadm(acc[ri] + at, tm) : v_load(acc[ri] + at);
    return pre ? v_mul(x, v_set1(pre[ri])) : x;
}

V_INLINE void SIMD_NAME(pv_out)(float *const *acc, size_t rows, size_t r, size_t at, int part,
                                vm tm, vf x)
{
    if (r >= rows)
        return;
    if (part)
        v_storem(acc[r] + at, tm, x);
    else
        v_store(acc[r] + at, x);
}

/* P·V for R rows (4 or 8; rows <= R of them real) and NV vectors of V
   columns from c0, the last one `tail` columns wide when tailed: the
   R × NV accumulators (16 at most) stay in registers while every key's V
   vectors are loaded and widened once for all rows, and its R weights
   come in as one or two groups of 4 (FMLA by element). The rows vpre are
   prefetched as pf says (vpre NULL: none). */
V_INLINE void SIMD_NAME(pv_blk)(const int R, const int NV, const int tailed, const qkv_dtype t,
                                size_t rows, const float *p, size_t prs,
                                const unsigned char *const *vrow, size_t n, size_t c0,
                                size_t tail, float *const *acc, const float *pre,
                                const unsigned char *const *vpre, const SIMD_NAME(pv_pf) pf)
{
    const vm tm = v_tailmask(tailed ? tail : VL);
    const vf z = v_zero();
    ARM_ACCS(z);
#define PV_IN(A, B, C, D, V, R0, X, W, QA, QB, QC, QD)                                     \
    if ((V) < NV) {                                                                        \
        const size_t at = c0 + (size_t)(V) * VL;                                           \
        const int part = tailed && (V) == NV - 1;                                          \
        A = SIMD_NAME(pv_in)(acc, rows, (R0) + 0, at, part, tm, pre);                      \
        B = SIMD_NAME(pv_in)(acc, rows, (R0) + 1, at, part, tm, pre);                      \
        C = SIMD_NAME(pv_in)(acc, rows, (R0) + 2, at, part, tm, pre);                      \
        D = SIMD_NAME(pv_in)(acc, rows, (R0) + 3, at, part, tm, pre);                      \
    }
    ARM_GROUPS(R, PV_IN)
#undef PV_IN
    /* Block dtypes whose columns here lie in one block (NEON: 16 columns
       of a 4-row block, 8 of an 8-row one): its scale read once a key
       (simd/load_dt.h); whole blocks, where a key's vectors would need
       several scales, go through load_dt. */
    SIMD_NAME(blk_cols) ob = SIMD_NAME(blk_cols_at)(t, c0, (size_t)NV * VL);
    ob.on = ob.on && (size_t)NV * VL <= QKV_BLOCK_VALUES;
    size_t pf_next = pf.first;
    for (size_t j = 0; j < n; j++) {
        const float *pj = p + j * prs;
        const unsigned char *vr = vrow[j];
        if (vpre && j == pf_next) {
            SIMD_NAME(prefetch_part)(vpre[j], pf.b0, pf.b1, SIMD_NAME(prefetch_l2));
            pf_next += pf.step;
        }
        const vf w0 = v_load_rep4(pj);
        vf w1 = w0, x0 = z, x1 = z, x2 = z, x3 = z;
        if (R == 8)
            w1 = v_load_rep4(pj + 4);
        const unsigned char *vb = vr + ob.at;
        const vf sc = ob.on ? SIMD_NAME(block_scale)(t, vb) : z;
#define PV_X(v)                                                                        \
        (ob.on ? SIMD_NAME(block_vec)(t, vb, ob.off + (size_t)(v) * VL, sc)              \
         : tailed && (v) == NV - 1 ? SIMD_NAME(load_dtn)(t, vr, c0 + (size_t)(v) * VL, tail) \
                                   : SIMD_NAME(load_dt)(t, vr, c0 + (size_t)(v) * VL))
        x0 = PV_X(0);
        if (NV > 1)
            x1 = PV_X(1);
        if (NV > 2)
            x2 = PV_X(2);
        if (NV > 3)
            x3 = PV_X(3);
#undef PV_X
#define PV_FMA(A, B, C, D, V, R0, X, W, QA, QB, QC, QD) \
        if ((V) < NV) {                                 \
            A = v_fmadd_lane(A, X, W, 0);               \
            B = v_fmadd_lane(B, X, W, 1);               \
            C = v_fmadd_lane(C, X, W, 2);               \
            D = v_fmadd_lane(D, X, W, 3);               \
        }
        ARM_GROUPS(R, PV_FMA)
#undef PV_FMA
    }
#define PV_OUT(A, B, C, D, V, R0, X, W, QA, QB, QC, QD)           \
    if ((V) < NV) {                                               \
        const size_t at = c0 + (size_t)(V) * VL;                  \
        const int part = tailed && (V) == NV - 1;                 \
        SIMD_NAME(pv_out)(acc, rows, (R0) + 0, at, part, tm, A);  \
        SIMD_NAME(pv_out)(acc, rows, (R0) + 1, at, part, tm, B);  \
        SIMD_NAME(pv_out)(acc, rows, (R0) + 2, at, part, tm, C);  \
        SIMD_NAME(pv_out)(acc, rows, (R0) + 3, at, part, tm, D);  \
    }
    ARM_GROUPS(R, PV_OUT)
#undef PV_OUT
}

/* pv_blk for R = 1 or 2 rows (the job's only rows) and NV <= 16/R vectors
   of V columns from c0: 16/R vectors × R rows of accumulators, where the
   4-row kernel would hold 4 vectors × 4 lanes of which 4 - R are copies. */
V_INLINE void SIMD_NAME(pv_blk_few)(const int R, const int NV, const int tailed,
                                    const qkv_dtype t, size_t rows, const float *p, size_t prs,
                                    const unsigned char *const *vrow, size_t n, size_t c0,
                                    size_t tail, float *const *acc, const float *pre,
                                    const unsigned char *const *vpre,
                                    const SIMD_NAME(pv_pf) pf)
{
    const vm tm = v_tailmask(tailed ? tail : VL);
    const vf z = v_zero();
    ARM_ACCS(z);
#define PV_AT(V) (c0 + (size_t)(V) * VL)
#define PV_PART(V) (tailed && (V) == NV - 1)
#define IN_ONE(A, V) \
    if ((V) < NV) A = SIMD_NAME(pv_in)(acc, rows, 0, PV_AT(V), PV_PART(V), tm, pre);
#define IN_TWO(A, B, V)                                                       \
    if ((V) < NV) {                                                           \
        A = SIMD_NAME(pv_in)(acc, rows, 0, PV_AT(V), PV_PART(V), tm, pre);    \
        B = SIMD_NAME(pv_in)(acc, rows, 1, PV_AT(V), PV_PART(V), tm, pre);    \
    }
    ARM_FEW(R, IN_ONE, IN_TWO)
#undef IN_TWO
#undef IN_ONE
    /* one block's scale a key, as in pv_blk */
    SIMD_NAME(blk_cols) ob = SIMD_NAME(blk_cols_at)(t, c0, (size_t)NV * VL);
    ob.on = ob.on && (size_t)NV * VL <= QKV_BLOCK_VALUES;
    size_t pf_next = pf.first;
    for (size_t j = 0; j < n; j++) {
        const float *pj = p + j * prs;
        const unsigned char *vr = vrow[j];
        if (vpre && j == pf_next) {
            SIMD_NAME(prefetch_part)(vpre[j], pf.b0, pf.b1, SIMD_NAME(prefetch_l2));
            pf_next += pf.step;
        }
        const vf w0 = v_set1(pj[0]), w1 = R == 2 ? v_set1(pj[1]) : z;
        const unsigned char *vb = vr + ob.at;
        const vf sc = ob.on ? SIMD_NAME(block_scale)(t, vb) : z;
#define PV_X(V)                                                                       \
    (ob.on ? SIMD_NAME(block_vec)(t, vb, ob.off + (size_t)(V) * VL, sc)                 \
     : PV_PART(V) ? SIMD_NAME(load_dtn)(t, vr, PV_AT(V), tail)                          \
                  : SIMD_NAME(load_dt)(t, vr, PV_AT(V)))
#define FMA_ONE(A, V) \
    if ((V) < NV) A = v_fmadd(PV_X(V), w0, A);
#define FMA_TWO(A, B, V)              \
    if ((V) < NV) {                   \
        const vf x_ = PV_X(V);        \
        A = v_fmadd(x_, w0, A);       \
        B = v_fmadd(x_, w1, B);       \
    }
        ARM_FEW(R, FMA_ONE, FMA_TWO)
#undef FMA_TWO
#undef FMA_ONE
#undef PV_X
    }
#define OUT_ONE(A, V) \
    if ((V) < NV) SIMD_NAME(pv_out)(acc, rows, 0, PV_AT(V), PV_PART(V), tm, A);
#define OUT_TWO(A, B, V)                                                  \
    if ((V) < NV) {                                                       \
        SIMD_NAME(pv_out)(acc, rows, 0, PV_AT(V), PV_PART(V), tm, A);     \
        SIMD_NAME(pv_out)(acc, rows, 1, PV_AT(V), PV_PART(V), tm, B);     \
    }
    ARM_FEW(R, OUT_ONE, OUT_TWO)
#undef OUT_TWO
#undef OUT_ONE
#undef PV_PART
#undef PV_AT
}

/* simd_pv_rows (simd/attention.h): blocks of 16/R whole vectors of
   columns, then the rest one vector at a time (its last one the partial
   vector of an f32/f16/bf16 row), so that only two widths of the kernel
   are inlined per row count and dtype. */
static __attribute__((noinline)) void SIMD_NAME(pv_rows)(size_t rows, const float *p,
                                                       size_t prs,
                                                       const unsigned char *const *vrow,
                                                       size_t n, size_t dv, qkv_dtype t,
                                                       float *const *acc, const float *pre,
                                                       const unsigned char *const *vpre)
{
    /* The V prefetches as on x86 (simd/load_dt.h's pv_prefetch; timed
       there, not here: qemu). */
    const size_t vbytes = qkv_dtype_bytes(t, dv);
#define PV_CALL(R_, NV_, TL_, T_, C0_, TAIL_)                                           \
    do {                                                                                  \
        const size_t nc_ = (TL_) ? (TAIL_) : (size_t)(NV_) * VL;                          \
        const SIMD_NAME(pv_pf) pf = SIMD_NAME(pv_prefetch)(bi, blocks, C0_, nc_, dv, vbytes); \
        if ((R_) < 4)                                                                     \
            SIMD_NAME(pv_blk_few)(R_, NV_, TL_, T_, rows, p, prs, vrow, n, C0_, TAIL_, acc, \
                                  pre, vpre, pf);                                         \
        else                                                                              \
            SIMD_NAME(pv_blk)(R_, NV_, TL_, T_, rows, p, prs, vrow, n, C0_, TAIL_, acc,     \
                              pre, vpre, pf);                                             \
    } while (0)
#define PV_T(R_, NV_, TL_, C0_, TAIL_)                                                \
    switch (t) {                                                                      \
    case QKV_F16: PV_CALL(R_, NV_, TL_, QKV_F16, C0_, TAIL_); break;                  \
    case QKV_BF16: PV_CALL(R_, NV_, TL_, QKV_BF16, C0_, TAIL_); break;                \
    case QKV_Q8_0: if (!(TL_)) PV_CALL(R_, NV_, 0, QKV_Q8_0, C0_, TAIL_); break;      \
    case QKV_Q4_0: if (!(TL_)) PV_CALL(R_, NV_, 0, QKV_Q4_0, C0_, TAIL_); break;      \
    default: PV_CALL(R_, NV_, TL_, QKV_F32, C0_, TAIL_); break;                       \
    }
#define PV_ROWS(R_)                                                                   \
    do {                                                                              \
        const size_t blk = (16 / (R_)) * VL, rest = dv % blk;                         \
        const size_t blocks = dv / blk + (rest + VL - 1) / VL;                        \
        size_t c0 = 0, bi = 0;                                                        \
        for (; c0 + blk <= dv; c0 += blk, bi++)                                       \
            PV_T(R_, 16 / (R_), 0, c0, 0)                                             \
        for (; c0 + VL <= dv; c0 += VL, bi++)                                         \
            PV_T(R_, 1, 0, c0, 0)                                                     \
        if (c0 < dv)                                                                  \
            PV_T(R_, 1, 1, c0, dv - c0)                                               \
    } while (0)
#if ARM_ROWS8
    if (rows > 4) {
        PV_ROWS(8);
        return;
    }
#endif
    if (rows == 1)
        PV_ROWS(1);
    else if (rows == 2)
        PV_ROWS(2);
    else
        PV_ROWS(4);
#undef PV_ROWS
#undef PV_T
#undef PV_CALL
}
#undef ARM_ACCS
#undef ARM_FEW
#undef ARM_GROUPS

#define simd_gemm ARM_CAT(gemm_f32_any, SIMD_SUFFIX)
#define simd_gemm_rows ARM_CAT(gemm_rows, SIMD_SUFFIX)
#define simd_mask_t ARM_CAT(mask_t, SIMD_SUFFIX)
#define simd_qk_dot SIMD_NAME(qk_dot)
#define simd_pv_rows SIMD_NAME(pv_rows)
/* The 8-row dot products (ARM_ROWS8) are written for 16 lanes or more. */
#define ATT_ROWS8_VL 16
#include "simd/attention.h"
#include "arm/stages.h"

/* The registry entry of this ISA: the stage kernels, the fused driver and
   the block sizes the planner shares with it. The converters stay the
   parent's. */
static void SIMD_NAME(ctx_fill)(qkv_ctx *c)
{
    c->scores = SIMD_NAME(scores_f32);
    c->softmax = SIMD_NAME(softmax_f32);
    c->weighted_sum = SIMD_NAME(weighted_sum_f32);
    c->attention = SIMD_NAME(attention);
    c->attention_ws = SIMD_NAME(attention_ws);
    c->walk_sweeps = SIMD_NAME(walk_sweeps);
    c->blocks.tile_keys = ATT_BN;
    c->blocks.max_rows = QKV_ATTN_MAX_ROWS;
    SIMD_NAME(att_feed_for)(&c->cpu);
}

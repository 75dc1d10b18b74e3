/*
 * NEON and SVE written once: the ISA file (neon/neon.c, sve/sve.c) defines
 * the vector vocabulary of kernels/simd/attention.h and its two
 * microkernels, then includes this file once. It adds what the two share:
 * the microkernel's shape switch, the mask copy, the fused driver
 * (simd/attention.h), the stage kernels (arm/stages.h) and the registry
 * entry, SIMD_NAME(ctx_fill).
 *
 * The includer provides, besides the vocabulary (SIMD_SUFFIX, VL, VL_MAX,
 * vf, vm, v_*) and v_hmax / v_hsum (a float: the max ignoring NaN / the
 * sum of the lanes),
 *   GEMM_MR, GEMM_NV        the microkernel's tile: MR rows (4 or 8) ×
 *                           NV vectors (4 or 2)
 *   GEMM_NR                 its columns, GEMM_NV · VL
 *   ARM_GEMM_SHAPE(MR, NV)  a statement: the microkernel inlined for these
 *                           constants, run on gemm_any's arguments
 *   dot_f32_4x4<sfx>(q, k, d, scale, nk, out)
 *                           out[4kk + r] = scale · dot(q[r], k[kk]) for 4
 *                           rows and kk < nk <= 4 (k[kk] for kk >= nk:
 *                           valid rows, never stored)
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
static void ARM_CAT(gemm_f32_any, SIMD_SUFFIX)(int mr, size_t nc, size_t k, const float *a,
                                               size_t rsa, size_t csa, const float *b,
                                               size_t ldb, float *const *c, size_t coff,
                                               int load_c, const float *pre, float post,
                                               float *cmax)
{
    const size_t nv = (nc + VL - 1) / VL;
    switch (mr) {
    case 1: GEMM_COLS(1); break;
    case 2: GEMM_COLS(2); break;
    case 3: GEMM_COLS(3); break;
#if GEMM_MR == 8
    case 4: GEMM_COLS(4); break;
    case 5: GEMM_COLS(5); break;
    case 6: GEMM_COLS(6); break;
    case 7: GEMM_COLS(7); break;
#endif
    default: GEMM_COLS(GEMM_MR); break;
    }
}
#undef GEMM_COLS

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

/* simd_qk_dot4 (simd/attention.h) in blocks of 4 keys. Keys of the last
   block past n repeat key n - 1 and are not stored; then the keys from n
   up to a whole vector of the driver's [key][4] layout (VL/4 keys) get
   key n - 1's scores. */
static void ARM_CAT(qk_dot4_f32, SIMD_SUFFIX)(const float *const *q, size_t d, const float *k,
                                              size_t ldk, size_t n, float scale, float *out)
{
    for (size_t j0 = 0; j0 < n; j0 += 4) {
        const float *kr[4];
        for (size_t kk = 0; kk < 4; kk++)
            kr[kk] = k + (j0 + kk < n ? j0 + kk : n - 1) * ldk;
        ARM_CAT(dot_f32_4x4, SIMD_SUFFIX)(q, kr, d, scale, n - j0 < 4 ? n - j0 : 4, out + 4 * j0);
    }
    const size_t whole = (n + VL / 4 - 1) / (VL / 4) * (VL / 4);
    for (size_t j = n; j < whole; j++)
        memcpy(out + 4 * j, out + 4 * (n - 1), 4 * sizeof *out);
}

#define simd_gemm ARM_CAT(gemm_f32_any, SIMD_SUFFIX)
#define simd_mask_t ARM_CAT(mask_t, SIMD_SUFFIX)
#define simd_qk_dot4 ARM_CAT(qk_dot4_f32, SIMD_SUFFIX)
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
    c->blocks.tile_keys = ATT_BN;
    c->blocks.max_rows = QKV_ATTN_MAX_ROWS;
}

/*
 * The stage kernels of NEON and SVE (qkv_scores, qkv_softmax,
 * qkv_weighted_sum), written once over the vocabulary and the microkernels
 * each ISA already has for the fused driver (simd_qk_dot, simd_gemm).
 * Included by arm/kernels_tmpl.h after simd/attention.h; defines
 * scores_f32<sfx>, softmax_f32<sfx> and weighted_sum_f32<sfx>.
 */
#ifndef SIMD_NAME
#error "include arm/stages.h through arm/kernels_tmpl.h"
#endif

#include <math.h>
#include <string.h>

/* Keys per call of the dot-product kernel: its [key][4] output (1 KiB)
   stays in L1 until it is copied into the rows of S. A multiple of VL/4
   for every vector length up to VL_MAX, so the kernel's rounding up to
   whole vectors never passes the buffer. */
#define ROWS4_KEYS 64

/* Q·Kᵀ four query rows at a time, through the fused driver's decode
   kernel: each K row loaded serves 4 rows of Q. A last block of fewer rows
   repeats its last row (computed, never stored). */
static void SIMD_NAME(scores_f32)(size_t m, size_t n, size_t d, float scale,
                                  const float *q, size_t ldq, const float *k, size_t ldk,
                                  float *s, size_t lds)
{
    _Alignas(64) float blk[ROWS4_KEYS * 4];
    const unsigned char *krow[ROWS4_KEYS];
    for (size_t i = 0; i < m; i += 4) {
        const size_t rows = m - i < 4 ? m - i : 4;
        const float *qr[4];
        for (size_t r = 0; r < 4; r++)
            qr[r] = q + (i + (r < rows ? r : rows - 1)) * ldq;
        for (size_t j0 = 0; j0 < n; j0 += ROWS4_KEYS) {
            const size_t nk = n - j0 < ROWS4_KEYS ? n - j0 : ROWS4_KEYS;
            for (size_t j = 0; j < nk; j++)
                krow[j] = (const unsigned char *)(k + (j0 + j) * ldk);
            simd_qk_dot(4, QKV_F32, qr, d, krow, nk, scale, blk, 4, NULL);
            for (size_t r = 0; r < rows; r++)
                for (size_t j = 0; j < nk; j++)
                    s[(i + r) * lds + j0 + j] = blk[4 * j + r];
        }
    }
}

/* Max over x[0..n) ignoring NaN, as the scalar `if (x > max)` does. */
static float SIMD_NAME(row_max_f32)(const float *x, size_t n)
{
    const size_t nfull = n / VL * VL;
    const vf ninf = v_set1(-INFINITY);
    vf m = ninf;
    for (size_t j = 0; j < nfull; j += VL)
        m = v_max(v_load(x + j), m);
    if (nfull < n)
        m = v_max(v_loadm_or(x + nfull, v_tailmask(n - nfull), ninf), m);
    return v_hmax(m);
}

/* x[j] = exp(x[j] - sub); returns the sum. The tail's idle lanes read
   -INFINITY, whose exp adds 0. */
static float SIMD_NAME(row_exp_sum_f32)(float *x, size_t n, float sub)
{
    const size_t nfull = n / VL * VL;
    const vf vsub = v_set1(sub);
    vf sum = v_zero();
    for (size_t j = 0; j < nfull; j += VL) {
        const vf e = v_exp_sleef(v_sub(v_load(x + j), vsub));
        v_store(x + j, e);
        sum = v_add(sum, e);
    }
    if (nfull < n) {
        const vm tm = v_tailmask(n - nfull);
        const vf e = v_exp_sleef(v_sub(v_loadm_or(x + nfull, tm, v_set1(-INFINITY)), vsub));
        v_storem(x + nfull, tm, e);
        sum = v_add(sum, e);
    }
    return v_hsum(sum);
}

static int SIMD_NAME(all_hidden_f32)(const float *x, size_t n)
{
    for (size_t j = 0; j < n; j++)
        if (x[j] != -INFINITY)
            return 0;
    return 1;
}

static void SIMD_NAME(softmax_f32)(size_t m, size_t n, float *s, size_t lds)
{
    for (size_t i = 0; i < m; i++) {
        float *row = s + i * lds;
        const float max = SIMD_NAME(row_max_f32)(row, n);
        /* Nothing but -INFINITY: zeros rather than 0/0. A NaN is never the
           maximum, so max == -INFINITY also when the row holds a NaN; then
           the code below runs on and makes the whole row NaN, as scalar.c
           does. The scan runs only for such rows. */
        if (max == -INFINITY && SIMD_NAME(all_hidden_f32)(row, n)) {
            memset(row, 0, n * sizeof *row);
            continue;
        }
        const float sum = SIMD_NAME(row_exp_sum_f32)(row, n, max);
        SIMD_NAME(row_scale)(row, n, 1.0f / sum);
    }
}

/* P·V through the fused driver's microkernel, GEMM_MR rows of P by
   GEMM_NR columns of V over all n keys; V is read in place, its last
   vector of a row only through the microkernel's tail. */
static void SIMD_NAME(weighted_sum_f32)(size_t m, size_t n, size_t dv, const float *p,
                                        size_t ldp, const float *v, size_t ldv, float *o,
                                        size_t ldo)
{
    float *crow[GEMM_MR];
    for (size_t i0 = 0; i0 < m; i0 += GEMM_MR) {
        const int mr = (int)(m - i0 < GEMM_MR ? m - i0 : GEMM_MR);
        for (size_t jc = 0; jc < dv; jc += GEMM_NR) {
            const size_t nc = dv - jc < GEMM_NR ? dv - jc : GEMM_NR;
            for (int i = 0; i < mr; i++)
                crow[i] = o + (i0 + (size_t)i) * ldo + jc;
            simd_gemm(mr, nc, n, p + i0 * ldp, NULL, ldp, 1, v + jc, ldv, crow, 0, 0, NULL, 1.0f,
                      NULL);
        }
    }
}

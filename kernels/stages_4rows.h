/*
 * The blocked drivers of the three stages, written once for the ISAs whose
 * microkernels work on 4 rows at a time (NEON and SVE): they cut Q, P and
 * the rows of a fused-attention block into groups of 4 rows (then single
 * rows) and keys into groups of 4 (then single keys), and leave every
 * vector instruction to the microkernels. Compiled per ISA, like
 * attention_tiled.h: the ISA file defines, before including this header,
 *
 *   ROWS4_SUFFIX                  the ISA's name suffix (neon, sve)
 *   void  qk_f32_4x4_<isa>(d, scale, q[4], k, ldk, s, lds)     4 rows × 4 keys
 *   void  dot_f32_1x4_<isa>(d, x, y0, y1, y2, y3, out[4])      one x, four y
 *   float dot_f32_1x1_<isa>(d, x, y)
 *   float row_max_f32_<isa>(x, n)            max ignoring NaN
 *   float row_exp_sum_f32_<isa>(x, n, sub)   x = exp(x - sub), returns Σ
 *   void  row_scale_f32_<isa>(x, n, f)
 *   void  ROWS4_PV4(n, dv, p, ldp, v, ldv, o[4], accumulate)   P·V, 4 rows
 *   void  ROWS4_PV1(n, dv, p, ldp, v, ldv, o[1], accumulate)   P·V, 1 row
 *
 * and gets qk_rows_f32_<isa>, scores_f32_<isa>, softmax_f32_<isa>,
 * pv_acc_rows_f32_<isa> and weighted_sum_f32_<isa> (all static).
 */
#ifndef ROWS4_SUFFIX
#error "define ROWS4_SUFFIX and the microkernels before including stages_4rows.h"
#endif

#include <math.h>
#include <string.h>

#define ROWS4_CAT_(a, b) a##_##b
#define ROWS4_CAT(a, b) ROWS4_CAT_(a, b)
#define ROWS4_FN(name) ROWS4_CAT(name, ROWS4_SUFFIX)

/* Scores of `rows` query rows (given by pointer: the fused kernel's rows
   are not evenly strided) against n keys. */
static void ROWS4_FN(qk_rows_f32)(size_t rows, size_t n, size_t d, float scale,
                                  const float *const *q, const float *k, size_t ldk,
                                  float *s, size_t lds)
{
    float dot[4];
    size_t r = 0;
    for (; r + 4 <= rows; r += 4) {
        size_t j = 0;
        for (; j + 4 <= n; j += 4)
            ROWS4_FN(qk_f32_4x4)(d, scale, q + r, k + j * ldk, ldk, s + r * lds + j, lds);
        for (; j < n; j++) {
            ROWS4_FN(dot_f32_1x4)(d, k + j * ldk, q[r], q[r + 1], q[r + 2], q[r + 3], dot);
            for (size_t t = 0; t < 4; t++)
                s[(r + t) * lds + j] = scale * dot[t];
        }
    }
    for (; r < rows; r++) {
        size_t j = 0;
        for (; j + 4 <= n; j += 4) {
            const float *kj = k + j * ldk;
            ROWS4_FN(dot_f32_1x4)(d, q[r], kj, kj + ldk, kj + 2 * ldk, kj + 3 * ldk, dot);
            for (size_t t = 0; t < 4; t++)
                s[r * lds + j + t] = scale * dot[t];
        }
        for (; j < n; j++)
            s[r * lds + j] = scale * ROWS4_FN(dot_f32_1x1)(d, q[r], k + j * ldk);
    }
}

static void ROWS4_FN(scores_f32)(size_t m, size_t n, size_t d, float scale,
                                 const float *q, size_t ldq, const float *k, size_t ldk,
                                 float *s, size_t lds)
{
    for (size_t i = 0; i < m; i += 4) {
        const size_t rows = m - i < 4 ? m - i : 4;
        const float *qr[4];
        for (size_t r = 0; r < rows; r++)
            qr[r] = q + (i + r) * ldq;
        ROWS4_FN(qk_rows_f32)(rows, n, d, scale, qr, k, ldk, s + i * lds, lds);
    }
}

static int ROWS4_FN(all_hidden_f32)(const float *x, size_t n)
{
    for (size_t j = 0; j < n; j++)
        if (x[j] != -INFINITY)
            return 0;
    return 1;
}

static void ROWS4_FN(softmax_f32)(size_t m, size_t n, float *s, size_t lds)
{
    for (size_t i = 0; i < m; i++) {
        float *row = s + i * lds;
        const float max = ROWS4_FN(row_max_f32)(row, n);
        /* Nothing but -INFINITY: zeros rather than 0/0. A NaN is never the
           maximum, so max == -INFINITY also when the row holds a NaN; then
           the code below runs on and makes the whole row NaN, as scalar.c
           does. The scan runs only for such rows. */
        if (max == -INFINITY && ROWS4_FN(all_hidden_f32)(row, n)) {
            memset(row, 0, n * sizeof *row);
            continue;
        }
        const float sum = ROWS4_FN(row_exp_sum_f32)(row, n, max);
        ROWS4_FN(row_scale_f32)(row, n, 1.0f / sum);
    }
}

static void ROWS4_FN(pv_rows_f32)(size_t rows, size_t n, size_t dv, const float *p, size_t ldp,
                                  const float *v, size_t ldv, float *const *o, int accumulate)
{
    size_t r = 0;
    for (; r + 4 <= rows; r += 4)
        ROWS4_PV4(n, dv, p + r * ldp, ldp, v, ldv, o + r, accumulate);
    for (; r < rows; r++)
        ROWS4_PV1(n, dv, p + r * ldp, ldp, v, ldv, o + r, accumulate);
}

/* The fused kernel's P·V: onto the running accumulators. */
static void ROWS4_FN(pv_acc_rows_f32)(size_t rows, size_t n, size_t dv, const float *p,
                                      size_t ldp, const float *v, size_t ldv, float *const *o)
{
    ROWS4_FN(pv_rows_f32)(rows, n, dv, p, ldp, v, ldv, o, 1);
}

static void ROWS4_FN(weighted_sum_f32)(size_t m, size_t n, size_t dv, const float *p,
                                       size_t ldp, const float *v, size_t ldv, float *o,
                                       size_t ldo)
{
    for (size_t i = 0; i < m; i += 4) {
        const size_t rows = m - i < 4 ? m - i : 4;
        float *orow[4];
        for (size_t r = 0; r < rows; r++)
            orow[r] = o + (i + r) * ldo;
        ROWS4_FN(pv_rows_f32)(rows, n, dv, p + i * ldp, ldp, v, ldv, orow, 0);
    }
}

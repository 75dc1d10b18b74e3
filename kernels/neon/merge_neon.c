/*
 * merge_states_f32_neon (kernels.h): the row decision and weights of
 * merge_row.h, then a 4-lane sweep along dv. Multiply and add stay separate
 * (no vfmaq) so that the result is the scalar reference's, bit for bit; the
 * sweep is memory-bound either way.
 */
#include <arm_neon.h>
#include <math.h>
#include <string.h>

#include "kernels.h"
#include "merge_row.h"

static void merge_blend_row_neon(size_t dv, float *out, const float *other, float w, float w2)
{
    size_t c = 0;
    for (; c + 8 <= dv; c += 8) {
        const float32x4_t a0 = vld1q_f32(out + c), a1 = vld1q_f32(out + c + 4);
        const float32x4_t b0 = vld1q_f32(other + c), b1 = vld1q_f32(other + c + 4);
        vst1q_f32(out + c, vaddq_f32(vmulq_n_f32(a0, w), vmulq_n_f32(b0, w2)));
        vst1q_f32(out + c + 4, vaddq_f32(vmulq_n_f32(a1, w), vmulq_n_f32(b1, w2)));
    }
    for (; c + 4 <= dv; c += 4)
        vst1q_f32(out + c, vaddq_f32(vmulq_n_f32(vld1q_f32(out + c), w),
                                     vmulq_n_f32(vld1q_f32(other + c), w2)));
    /* The last dv % 4 columns one by one: a vector access would pass the
       row's end. -ffp-contract=off keeps this a multiply and an add too. */
    for (; c < dv; c++)
        out[c] = out[c] * w + other[c] * w2;
}

static void merge_nan_row_neon(size_t dv, float *out)
{
    for (size_t c = 0; c < dv; c++)
        out[c] = NAN;
}

void merge_states_f32_neon(size_t rows, size_t dv, float *o, size_t ldo, float *lse,
                           const float *o2, size_t ldo2, const float *lse2)
{
    merge_rows(rows, dv, o, ldo, lse, o2, ldo2, lse2, merge_blend_row_neon, merge_nan_row_neon);
}

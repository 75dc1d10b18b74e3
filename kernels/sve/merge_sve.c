/*
 * merge_states_f32_sve (kernels.h): the row decision and weights of
 * merge_row.h, then a vector-length-agnostic sweep along dv whose last
 * partial vector runs under an svwhilelt predicate (inactive lanes touch no
 * memory). Multiply and add stay separate (no svmla) so that the result is
 * the scalar reference's, bit for bit; the sweep is memory-bound either way.
 */
#include <arm_sve.h>
#include <math.h>
#include <string.h>

#include "kernels.h"
#include "merge_row.h"

static void merge_blend_row_sve(size_t dv, float *out, const float *other, float w, float w2)
{
    for (size_t c = 0; c < dv; c += svcntw()) {
        const svbool_t pg = svwhilelt_b32_u64(c, dv);
        const svfloat32_t a = svmul_n_f32_x(pg, svld1_f32(pg, out + c), w);
        const svfloat32_t b = svmul_n_f32_x(pg, svld1_f32(pg, other + c), w2);
        svst1_f32(pg, out + c, svadd_f32_x(pg, a, b));
    }
}

static void merge_nan_row_sve(size_t dv, float *out)
{
    const svfloat32_t nan = svdup_n_f32(NAN);
    for (size_t c = 0; c < dv; c += svcntw())
        svst1_f32(svwhilelt_b32_u64(c, dv), out + c, nan);
}

void merge_states_f32_sve(size_t rows, size_t dv, float *o, size_t ldo, float *lse,
                          const float *o2, size_t ldo2, const float *lse2)
{
    merge_rows(rows, dv, o, ldo, lse, o2, ldo2, lse2, merge_blend_row_sve, merge_nan_row_sve);
}

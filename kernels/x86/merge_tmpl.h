/*
 * merge_states_f32_<isa> (kernels.h) written once for the x86 vector
 * widths: the includer (avx2.c, avx512.c) defines X86_ISA_SUFFIX, VL, vf, vm
 * and the v_* vocabulary, then includes this file at its end.
 *
 * What happens to a row and its two weights come from merge_row.h, the same
 * scalar code the reference runs. The columns are then blended with a
 * separate multiply and add, not an FMA: FMA would round once where the
 * reference rounds twice, and the memory-bound sweep gains nothing from it,
 * so every ISA gives the reference's bits.
 */
#ifndef X86_MERGE_TMPL_H
#define X86_MERGE_TMPL_H
#else
#error "merge_tmpl.h is included once per ISA translation unit"
#endif

#include <math.h>
#include <string.h>

#include "merge_row.h"

#define X86_MERGE_CAT_(a, b) a##b
#define X86_MERGE_CAT(a, b) X86_MERGE_CAT_(a, b)
#define merge_states_f32_x86 X86_MERGE_CAT(merge_states_f32, X86_ISA_SUFFIX)

/* out[c] = out[c]·w + other[c]·w2 for c < dv. Two vectors a step keep two
   independent load streams per operand in flight; the last dv % VL columns
   go through masked accesses that never touch memory past the row. */
/* Plain static, not V_INLINE: merge_rows takes it by pointer, and at -O1
   (the sanitizer builds) gcc refuses always_inline through a pointer. */
static void merge_blend_row(size_t dv, float *out, const float *other, float w, float w2)
{
    const vf vw = v_set1(w), vw2 = v_set1(w2);
    size_t c = 0;
    for (; c + 2 * VL <= dv; c += 2 * VL) {
        const vf a0 = v_load(out + c), a1 = v_load(out + c + VL);
        const vf b0 = v_load(other + c), b1 = v_load(other + c + VL);
        v_store(out + c, v_add(v_mul(a0, vw), v_mul(b0, vw2)));
        v_store(out + c + VL, v_add(v_mul(a1, vw), v_mul(b1, vw2)));
    }
    for (; c + VL <= dv; c += VL)
        v_store(out + c, v_add(v_mul(v_load(out + c), vw), v_mul(v_load(other + c), vw2)));
    if (c < dv) {
        const vm m = v_tailmask(dv - c);
        v_storem(out + c, m,
                 v_add(v_mul(v_loadm(out + c, m), vw), v_mul(v_loadm(other + c, m), vw2)));
    }
}

static void merge_nan_row(size_t dv, float *out)
{
    const vf nan = v_set1(NAN);
    size_t c = 0;
    for (; c + VL <= dv; c += VL)
        v_store(out + c, nan);
    if (c < dv)
        v_storem(out + c, v_tailmask(dv - c), nan);
}

void merge_states_f32_x86(size_t rows, size_t dv, float *o, size_t ldo, float *lse,
                          const float *o2, size_t ldo2, const float *lse2)
{
    merge_rows(rows, dv, o, ldo, lse, o2, ldo2, lse2, merge_blend_row, merge_nan_row);
}

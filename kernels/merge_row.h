/*
 * The per-row half of merging two partial attention states (qkv_merge_states):
 * what happens to a row, and its two weights, decided from the two lse
 * values alone. Plain C, shared by the scalar reference and every SIMD
 * kernel, so that all ISAs make the same decision and get the same weights
 * bit for bit; the kernels differ only in how they sweep the dv columns.
 */
#ifndef QKV_MERGE_ROW_H
#define QKV_MERGE_ROW_H

#include <math.h>
#include <stddef.h>
#include <string.h>

typedef enum merge_row_kind {
    MERGE_ROW_KEEP,     /* the other side saw no key: o and lse stay as they are */
    MERGE_ROW_TAKE,     /* this side saw no key: o, lse := the other side's bits */
    MERGE_ROW_NAN,      /* a NaN or +INFINITY lse: o and lse become NaN */
    MERGE_ROW_BLEND     /* o := o·w + o2·w2, lse := *lse_out */
} merge_row_kind;

/* lse' = log(e^lse + e^lse2) = hi + log1p(e^(lo - hi)) with hi the larger:
   the exponent is <= 0, so nothing overflows, and log1p keeps the digits a
   plain log(1 + x) loses when one side dominates. The weights
   e^(lse - lse') are then 1/(1 + x) and x/(1 + x); they sum to 1 within an
   ulp. +INFINITY is not a state qkv_attention makes (a +inf score gives a
   NaN row and lse), and e^(inf - inf) has no value: such a row is NaN. */
static inline merge_row_kind merge_row_weights(float lse, float lse2, float *w, float *w2,
                                               float *lse_out)
{
    if (isnan(lse) || isnan(lse2) || lse == INFINITY || lse2 == INFINITY)
        return MERGE_ROW_NAN;
    if (lse2 == -INFINITY)
        return MERGE_ROW_KEEP;
    if (lse == -INFINITY)
        return MERGE_ROW_TAKE;
    const int first_larger = lse >= lse2;
    const float hi = first_larger ? lse : lse2, lo = first_larger ? lse2 : lse;
    const float x = expf(lo - hi);
    const float inv = 1.0f / (1.0f + x);
    *lse_out = hi + log1pf(x);
    *w = first_larger ? inv : x * inv;
    *w2 = first_larger ? x * inv : inv;
    return MERGE_ROW_BLEND;
}

/* The sweeps over a row's dv columns, the one part each ISA writes. */
typedef void (*merge_blend_fn)(size_t dv, float *out, const float *other, float w, float w2);
typedef void (*merge_nan_fn)(size_t dv, float *out);

/* qkv_merge_states row by row (kernels.h), with an ISA's two sweeps; each
   caller passes its own, so they are inlined. */
static inline void merge_rows(size_t rows, size_t dv, float *o, size_t ldo, float *lse,
                              const float *o2, size_t ldo2, const float *lse2,
                              merge_blend_fn blend, merge_nan_fn nan_row)
{
    for (size_t r = 0; r < rows; r++) {
        float *out = o + r * ldo;
        const float *other = o2 + r * ldo2;
        float w, w2, merged;
        switch (merge_row_weights(lse[r], lse2[r], &w, &w2, &merged)) {
        case MERGE_ROW_KEEP:
            break;
        case MERGE_ROW_TAKE:
            memcpy(out, other, dv * sizeof *out);
            lse[r] = lse2[r];
            break;
        case MERGE_ROW_NAN:
            nan_row(dv, out);
            lse[r] = NAN;
            break;
        case MERGE_ROW_BLEND:
            blend(dv, out, other, w, w2);
            lse[r] = merged;
            break;
        }
    }
}

#endif /* QKV_MERGE_ROW_H */

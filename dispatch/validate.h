/* Internal: checked size arithmetic and overlap tests for argument checks. */
#ifndef QKV_VALIDATE_H
#define QKV_VALIDATE_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

/* Bytes spanned by `rows` rows of `len` elements of `elem` bytes, rows `ld`
   elements apart: ((rows-1)·ld + len)·elem. 0 on overflow. */
static inline size_t qkv_span_bytes(size_t rows, size_t ld, size_t len, size_t elem)
{
    size_t span;
    if (__builtin_mul_overflow(rows - 1, ld, &span) ||
        __builtin_add_overflow(span, len, &span) ||
        __builtin_mul_overflow(span, elem, &span) || span > PTRDIFF_MAX)
        return 0;
    return span;
}

/* Whether the byte ranges [a, a+na) and [b, b+nb) share a byte. */
static inline int qkv_overlap(const void *a, size_t na, const void *b, size_t nb)
{
    const uintptr_t x = (uintptr_t)a, y = (uintptr_t)b;
    return x < y + nb && y < x + na;
}

/* A scale or cap must be a finite number >= 0. */
static inline int qkv_finite_nonneg(float x)
{
    return isfinite(x) && x >= 0.0f;
}

#endif

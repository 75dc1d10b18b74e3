/*
 * Row converters between the stored dtypes and f32, per ISA: what the fused
 * attention calls once per K/V tile chunk and what qkv_convert runs. An
 * ISA's converters start as its parent's and override what it vectorizes.
 */
#ifndef QKV_CONVERT_H
#define QKV_CONVERT_H

#include <stddef.h>

#include "qkv.h"

/* n elements (values); for QKV_Q8_0 and QKV_Q4_0 n is a multiple of 32 and
   src / dst point at whole blocks. Exact for to_f32; round to nearest even
   (NaN kept) for from_f32 to a 16-bit type. */
typedef void (*qkv_to_f32_fn)(size_t n, const void *src, float *dst);
typedef void (*qkv_from_f32_fn)(size_t n, const float *src, void *dst);

typedef struct qkv_converters {
    qkv_to_f32_fn to_f32[QKV_DTYPE_COUNT];     /* NULL: not available */
    qkv_from_f32_fn from_f32[QKV_DTYPE_COUNT];
} qkv_converters;

/* Bytes of n elements of a dtype (n a multiple of 32 for the block types). */
static inline size_t qkv_dtype_bytes(qkv_dtype t, size_t n)
{
    switch (t) {
    case QKV_F32: return n * 4;
    case QKV_F16:
    case QKV_BF16: return n * 2;
    case QKV_Q8_0: return n / 32 * 34;
    case QKV_Q4_0: return n / 32 * 18;
    case QKV_DTYPE_COUNT: break;
    }
    return 0;
}

/* Elements per block: 32 for the block types, else 1. */
static inline size_t qkv_dtype_block(qkv_dtype t)
{
    return t == QKV_Q8_0 || t == QKV_Q4_0 ? 32 : 1;
}

#endif

/*
 * Row converters between f32 and the storage dtypes: the contract between
 * dispatch/convert.c (qkv_convert) and the kernels, and what the fused
 * attention calls once per K/V tile chunk to widen a stored row.
 * Internal: not installed.
 *
 * to_f32[t](n, src, dst)   n values of dtype t at src  -> n floats at dst
 * from_f32[t](n, src, dst) n floats at src             -> n values of t at dst
 *
 * n counts values. For QKV_Q8_0 and QKV_Q4_0, n is a multiple of 32 and the
 * dtype side points at n / 32 whole blocks. No alignment is needed, src and
 * dst do not overlap, n >= 1; converters never fail and never allocate.
 * Every ISA's converters give the scalar reference's bits for every input
 * that is not NaN, and a NaN of the same sign for a NaN (the exact rules are
 * in kernels/convert_scalar.h and docs/errors.md).
 *
 * The QKV_F32 entries are NULL (f32 to f32 is a copy, done by the caller).
 */
#ifndef QKV_CONVERT_H
#define QKV_CONVERT_H

#include <stddef.h>

#include "qkv.h"

typedef void (*qkv_to_f32_fn)(size_t n, const void *src, float *dst);
typedef void (*qkv_from_f32_fn)(size_t n, const float *src, void *dst);

typedef struct qkv_converters {
    qkv_to_f32_fn   to_f32[QKV_DTYPE_COUNT];    /* NULL: not available */
    qkv_from_f32_fn from_f32[QKV_DTYPE_COUNT];
} qkv_converters;

/* The scalar init fills every entry; an ISA's init starts from its parent's
   table (a copy) and overrides only what it vectorizes. */
void qkv_converters_init_scalar(qkv_converters *c);
void qkv_converters_init_avx2(qkv_converters *c);
void qkv_converters_init_avx512(qkv_converters *c);
void qkv_converters_init_neon(qkv_converters *c);
void qkv_converters_init_sve(qkv_converters *c);

/* ggml's blocks: 32 values behind one f16 scale. */
#define QKV_BLOCK_VALUES 32
#define QKV_Q8_0_BLOCK_BYTES 34   /* f16 scale + 32 int8 */
#define QKV_Q4_0_BLOCK_BYTES 18   /* f16 scale + 16 bytes of nibbles */

/* Bytes of n values of a dtype (n a multiple of 32 for the block types):
   how the kernels step through rows and strides given in values. */
static inline size_t qkv_dtype_bytes(qkv_dtype t, size_t n)
{
    switch (t) {
    case QKV_F32: return n * 4;
    case QKV_F16:
    case QKV_BF16: return n * 2;
    case QKV_Q8_0: return n / QKV_BLOCK_VALUES * QKV_Q8_0_BLOCK_BYTES;
    case QKV_Q4_0: return n / QKV_BLOCK_VALUES * QKV_Q4_0_BLOCK_BYTES;
    case QKV_DTYPE_COUNT: break;
    }
    return 0;
}

/* Values per block: 32 for the block types, else 1. */
static inline size_t qkv_dtype_block(qkv_dtype t)
{
    return t == QKV_Q8_0 || t == QKV_Q4_0 ? QKV_BLOCK_VALUES : 1;
}

#endif /* QKV_CONVERT_H */

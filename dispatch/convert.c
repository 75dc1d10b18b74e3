/*
 * qkv_convert: argument checks, then the ISA's row converters
 * (kernels/convert.h). f32 is the hub: f32 <-> every dtype directly, f16 <->
 * bf16 through a small f32 buffer on the stack (exact, since widening to f32
 * is exact, so the result is the correctly rounded 16-bit value).
 */
#include <stdint.h>
#include <string.h>

#include "api.h"
#include "error.h"
#include "validate.h"

/* Floats per step of a 16-bit <-> 16-bit conversion: 1 KiB of stack, enough
   for the converters' vector loops to run at full speed. */
#define CONVERT_CHUNK 256

static int valid_dtype(qkv_dtype t)
{
    return (unsigned)t < (unsigned)QKV_DTYPE_COUNT;
}

static int is_block(qkv_dtype t)
{
    return t == QKV_Q8_0 || t == QKV_Q4_0;
}

/* Bytes taken by n values of t (n a multiple of 32 for the block types);
   0 when that overflows size_t or exceeds PTRDIFF_MAX. */
static size_t dtype_bytes(qkv_dtype t, size_t n)
{
    size_t count = n, unit = sizeof(float), bytes;
    switch (t) {
    case QKV_F32: break;
    case QKV_F16:
    case QKV_BF16: unit = 2; break;
    case QKV_Q8_0: count = n / QKV_BLOCK_VALUES; unit = QKV_Q8_0_BLOCK_BYTES; break;
    case QKV_Q4_0: count = n / QKV_BLOCK_VALUES; unit = QKV_Q4_0_BLOCK_BYTES; break;
    case QKV_DTYPE_COUNT: return 0;
    }
    if (__builtin_mul_overflow(count, unit, &bytes) || bytes > PTRDIFF_MAX)
        return 0;
    return bytes;
}

/* f32 to and from everything; f16 and bf16 into each other. */
static int supported_pair(qkv_dtype s, qkv_dtype d)
{
    return s == d || s == QKV_F32 || d == QKV_F32 || (!is_block(s) && !is_block(d));
}

qkv_status qkv_convert_with(const qkv_ctx *kern, size_t n, const void *src, qkv_dtype src_type,
                            void *dst, qkv_dtype dst_type)
{
    if (!src || !dst || !n || !valid_dtype(src_type) || !valid_dtype(dst_type))
        return qkv_fail(QKV_ERR_ARG, "qkv_convert: %s",
                        !src ? "src is NULL" : !dst ? "dst is NULL" : !n ? "n is 0"
                        : !valid_dtype(src_type) ? "src_type is no qkv_dtype"
                                                 : "dst_type is no qkv_dtype");
    if ((is_block(src_type) || is_block(dst_type)) && n % QKV_BLOCK_VALUES)
        return qkv_fail(QKV_ERR_ARG, "qkv_convert: n %zu is not a multiple of 32 (a block type)",
                        n);
    const size_t ns = dtype_bytes(src_type, n), nd = dtype_bytes(dst_type, n);
    if (!ns || !nd)
        return qkv_fail(QKV_ERR_OVERFLOW, "qkv_convert: n %zu values exceed PTRDIFF_MAX bytes",
                        n);
    if (qkv_overlap(src, ns, dst, nd))
        return qkv_fail(QKV_ERR_ARG, "qkv_convert: src and dst overlap");
    if (!supported_pair(src_type, dst_type))
        return qkv_fail(QKV_ERR_UNSUPPORTED, "qkv_convert: dtype %d to %d is not converted "
                        "(block types go to and from f32 only)", (int)src_type, (int)dst_type);
    if (!kern)
        return qkv_fail_isa_choice();

    const qkv_converters *c = &kern->conv;
    if (src_type == dst_type) {
        memcpy(dst, src, ns);
    } else if (src_type == QKV_F32) {
        c->from_f32[dst_type](n, src, dst);
    } else if (dst_type == QKV_F32) {
        c->to_f32[src_type](n, src, dst);
    } else {
        float buf[CONVERT_CHUNK];
        const unsigned char *s = src;
        unsigned char *d = dst;
        for (size_t i = 0; i < n; i += CONVERT_CHUNK) {
            const size_t m = n - i < CONVERT_CHUNK ? n - i : CONVERT_CHUNK;
            c->to_f32[src_type](m, s + 2 * i, buf);
            c->from_f32[dst_type](m, buf, d + 2 * i);
        }
    }
    return QKV_OK;
}

/*
 * The scalar reference row converters, one value at a time from the rules
 * of kernels/convert_scalar.h. Built without auto-vectorization like
 * scalar.c; every SIMD converter is tested against these.
 */
#include <math.h>
#include <string.h>

#include "convert_scalar.h"

static void cvt_f16_f32_scalar(size_t n, const void *src, float *dst)
{
    const unsigned char *s = src;
    for (size_t i = 0; i < n; i++)
        qkv_store_f32(dst + i, qkv_f16_to_f32(qkv_load_u16(s + 2 * i)));
}

static void cvt_f32_f16_scalar(size_t n, const float *src, void *dst)
{
    unsigned char *d = dst;
    for (size_t i = 0; i < n; i++)
        qkv_store_u16(d + 2 * i, qkv_f32_to_f16(qkv_load_f32(src + i)));
}

static void cvt_bf16_f32_scalar(size_t n, const void *src, float *dst)
{
    const unsigned char *s = src;
    for (size_t i = 0; i < n; i++)
        qkv_store_f32(dst + i, qkv_bf16_to_f32(qkv_load_u16(s + 2 * i)));
}

static void cvt_f32_bf16_scalar(size_t n, const float *src, void *dst)
{
    unsigned char *d = dst;
    for (size_t i = 0; i < n; i++)
        qkv_store_u16(d + 2 * i, qkv_f32_to_bf16(qkv_load_f32(src + i)));
}

/* value = d·q, exact in f32 (11 by 8 significant bits). */
static void cvt_q8_0_f32_scalar(size_t n, const void *src, float *dst)
{
    const unsigned char *blk = src;
    for (size_t b = 0; b < n / QKV_BLOCK_VALUES; b++, blk += QKV_Q8_0_BLOCK_BYTES) {
        const float d = qkv_f16_to_f32(qkv_load_u16(blk));
        const signed char *q = (const signed char *)(blk + 2);
        for (size_t j = 0; j < QKV_BLOCK_VALUES; j++)
            qkv_store_f32(dst++, (float)q[j] * d);
    }
}

static void cvt_f32_q8_0_scalar(size_t n, const float *src, void *dst)
{
    unsigned char *blk = dst;
    for (size_t b = 0; b < n / QKV_BLOCK_VALUES; b++, blk += QKV_Q8_0_BLOCK_BYTES) {
        float x[QKV_BLOCK_VALUES];
        memcpy(x, src + b * QKV_BLOCK_VALUES, sizeof x);
        float amax = 0.0f;
        for (size_t j = 0; j < QKV_BLOCK_VALUES; j++) {
            if (!isfinite(x[j])) {
                amax = NAN;
                break;
            }
            if (fabsf(x[j]) > amax)
                amax = fabsf(x[j]);
        }
        uint16_t d16;
        float id;
        signed char q[QKV_BLOCK_VALUES];
        if (qkv_q8_0_scale(amax, &d16, &id)) {
            for (size_t j = 0; j < QKV_BLOCK_VALUES; j++)
                q[j] = qkv_q8_0_quant(x[j], id);
        } else {
            d16 = QKV_BLOCK_NAN_SCALE;
            memset(q, 0, sizeof q);
        }
        qkv_store_u16(blk, d16);
        memcpy(blk + 2, q, sizeof q);
    }
}

/* value j = d·((qs[j] & 15) - 8) for j < 16, d·((qs[j-16] >> 4) - 8) after. */
static void cvt_q4_0_f32_scalar(size_t n, const void *src, float *dst)
{
    const unsigned char *blk = src;
    for (size_t b = 0; b < n / QKV_BLOCK_VALUES; b++, blk += QKV_Q4_0_BLOCK_BYTES) {
        const float d = qkv_f16_to_f32(qkv_load_u16(blk));
        const unsigned char *qs = blk + 2;
        for (size_t j = 0; j < QKV_BLOCK_VALUES / 2; j++) {
            qkv_store_f32(dst + j, (float)((qs[j] & 15) - 8) * d);
            qkv_store_f32(dst + j + QKV_BLOCK_VALUES / 2, (float)((qs[j] >> 4) - 8) * d);
        }
        dst += QKV_BLOCK_VALUES;
    }
}

static void cvt_f32_q4_0_scalar(size_t n, const float *src, void *dst)
{
    unsigned char *blk = dst;
    for (size_t b = 0; b < n / QKV_BLOCK_VALUES; b++, blk += QKV_Q4_0_BLOCK_BYTES) {
        float x[QKV_BLOCK_VALUES];
        memcpy(x, src + b * QKV_BLOCK_VALUES, sizeof x);
        float amax = 0.0f, max = 0.0f;
        int nonfinite = 0;
        for (size_t j = 0; j < QKV_BLOCK_VALUES; j++) {
            nonfinite |= !isfinite(x[j]);
            if (fabsf(x[j]) > amax) {             /* strictly: the first one wins */
                amax = fabsf(x[j]);
                max = x[j];
            }
        }
        uint16_t d16;
        float id;
        unsigned char qs[QKV_BLOCK_VALUES / 2];
        if (qkv_q4_0_scale(max, nonfinite, &d16, &id)) {
            for (size_t j = 0; j < QKV_BLOCK_VALUES / 2; j++)
                qs[j] = (unsigned char)(qkv_q4_0_quant(x[j], id) |
                                        qkv_q4_0_quant(x[j + QKV_BLOCK_VALUES / 2], id) << 4);
        } else {
            d16 = QKV_BLOCK_NAN_SCALE;
            memset(qs, QKV_Q4_0_ZERO_PAIR, sizeof qs);
        }
        qkv_store_u16(blk, d16);
        memcpy(blk + 2, qs, sizeof qs);
    }
}

void qkv_converters_init_scalar(qkv_converters *c)
{
    memset(c, 0, sizeof *c);
    c->to_f32[QKV_F16] = cvt_f16_f32_scalar;
    c->from_f32[QKV_F16] = cvt_f32_f16_scalar;
    c->to_f32[QKV_BF16] = cvt_bf16_f32_scalar;
    c->from_f32[QKV_BF16] = cvt_f32_bf16_scalar;
    c->to_f32[QKV_Q8_0] = cvt_q8_0_f32_scalar;
    c->from_f32[QKV_Q8_0] = cvt_f32_q8_0_scalar;
    c->to_f32[QKV_Q4_0] = cvt_q4_0_f32_scalar;
    c->from_f32[QKV_Q4_0] = cvt_f32_q4_0_scalar;
}

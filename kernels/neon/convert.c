/*
 * NEON row converters (kernels/convert.h). f16 through fcvtl / fcvtn
 * (the FPCR's rounding, nearest even by default; subnormals kept unless a
 * program sets FPCR.FZ), bf16 by shll and integer rounding narrowed with
 * shrn, Q8_0 / Q4_0 by widening bytes (sxtl) and one scale per block;
 * quantization rounds with fcvtas, which is roundf. Tails of 16-bit rows go
 * through a small buffer so that they take the same vector path.
 */
#include <arm_neon.h>
#include <stdint.h>
#include <string.h>

#include "convert_scalar.h"

/* f32 rows may start at any byte (qkv_convert's buffers need no
   alignment), and vld1q_f32 / vst1q_f32 on a float pointer assume 4 bytes
   (UBSan says so): they are moved as bytes, the same LDR/STR of a q
   register, which AArch64 performs at any address. */
static inline float32x4_t load_f32x4_neon(const float *p)
{
    return vreinterpretq_f32_u8(vld1q_u8((const uint8_t *)p));
}

static inline void store_f32x4_neon(float *p, float32x4_t x)
{
    vst1q_u8((uint8_t *)p, vreinterpretq_u8_f32(x));
}

/* ---- f16 ------------------------------------------------------------------------ */

static inline void f16x8_f32_neon(const unsigned char *s, float *d)
{
    const float16x8_t h = vreinterpretq_f16_u8(vld1q_u8(s));
    store_f32x4_neon(d, vcvt_f32_f16(vget_low_f16(h)));
    store_f32x4_neon(d + 4, vcvt_high_f32_f16(h));
}

static inline void f32x8_f16_neon(const float *s, unsigned char *d)
{
    const float16x8_t h = vcvt_high_f16_f32(vcvt_f16_f32(load_f32x4_neon(s)), load_f32x4_neon(s + 4));
    vst1q_u8(d, vreinterpretq_u8_f16(h));
}

static void cvt_f16_f32_neon(size_t n, const void *src, float *dst)
{
    const unsigned char *s = src;
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        f16x8_f32_neon(s + 2 * i, dst + i);
    if (i < n) {
        unsigned char h[16] = {0};
        float f[8];
        memcpy(h, s + 2 * i, 2 * (n - i));
        f16x8_f32_neon(h, f);
        memcpy(dst + i, f, sizeof(float) * (n - i));
    }
}

static void cvt_f32_f16_neon(size_t n, const float *src, void *dst)
{
    unsigned char *d = dst;
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        f32x8_f16_neon(src + i, d + 2 * i);
    if (i < n) {
        float f[8] = {0};
        unsigned char h[16];
        memcpy(f, src + i, sizeof(float) * (n - i));
        f32x8_f16_neon(f, h);
        memcpy(d + 2 * i, h, 2 * (n - i));
    }
}

/* ---- bf16 ----------------------------------------------------------------------- */

/* 4 bf16 -> 4 f32: shll puts the bits on top; a NaN gets its quiet bit. */
static inline float32x4_t bf16x4_f32_neon(uint16x4_t h)
{
    const uint32x4_t x = vshll_n_u16(h, 16);
    const uint32x4_t nan = vcgtq_u32(vandq_u32(x, vdupq_n_u32(0x7fffffff)), vdupq_n_u32(0x7f800000));
    return vreinterpretq_f32_u32(vorrq_u32(x, vandq_u32(nan, vdupq_n_u32(0x00400000))));
}

/* 4 f32 -> 4 bf16 as qkv_f32_to_bf16: the rounded (or quieted) word's top
   half, which shrn takes. */
static inline uint16x4_t f32x4_bf16_neon(float32x4_t f)
{
    const uint32x4_t x = vreinterpretq_u32_f32(f);
    const uint32x4_t nan = vcgtq_u32(vandq_u32(x, vdupq_n_u32(0x7fffffff)), vdupq_n_u32(0x7f800000));
    const uint32x4_t odd = vandq_u32(vshrq_n_u32(x, 16), vdupq_n_u32(1));
    const uint32x4_t rounded = vaddq_u32(vaddq_u32(x, vdupq_n_u32(0x7fff)), odd);
    const uint32x4_t quiet = vorrq_u32(x, vdupq_n_u32(0x00400000));
    return vshrn_n_u32(vbslq_u32(nan, quiet, rounded), 16);
}

static inline void bf16x8_f32_neon(const unsigned char *s, float *d)
{
    const uint16x8_t h = vreinterpretq_u16_u8(vld1q_u8(s));
    store_f32x4_neon(d, bf16x4_f32_neon(vget_low_u16(h)));
    store_f32x4_neon(d + 4, bf16x4_f32_neon(vget_high_u16(h)));
}

static inline void f32x8_bf16_neon(const float *s, unsigned char *d)
{
    const uint16x8_t h = vcombine_u16(f32x4_bf16_neon(load_f32x4_neon(s)), f32x4_bf16_neon(load_f32x4_neon(s + 4)));
    vst1q_u8(d, vreinterpretq_u8_u16(h));
}

static void cvt_bf16_f32_neon(size_t n, const void *src, float *dst)
{
    const unsigned char *s = src;
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        bf16x8_f32_neon(s + 2 * i, dst + i);
    if (i < n) {
        unsigned char h[16] = {0};
        float f[8];
        memcpy(h, s + 2 * i, 2 * (n - i));
        bf16x8_f32_neon(h, f);
        memcpy(dst + i, f, sizeof(float) * (n - i));
    }
}

static void cvt_f32_bf16_neon(size_t n, const float *src, void *dst)
{
    unsigned char *d = dst;
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        f32x8_bf16_neon(src + i, d + 2 * i);
    if (i < n) {
        float f[8] = {0};
        unsigned char h[16];
        memcpy(f, src + i, sizeof(float) * (n - i));
        f32x8_bf16_neon(f, h);
        memcpy(d + 2 * i, h, 2 * (n - i));
    }
}

/* ---- Q8_0 and Q4_0 ---------------------------------------------------------------- */

/* The block's f16 scale through fcvt, exact like qkv_f16_to_f32. */
static inline float block_scale_neon(const unsigned char *blk)
{
    return vgetq_lane_f32(vcvt_f32_f16(vreinterpret_f16_u16(vdup_n_u16(qkv_load_u16(blk)))), 0);
}

/* 16 int8 times d -> 16 floats. */
static inline void s8x16_scaled_neon(int8x16_t q, float d, float *dst)
{
    const int16x8_t lo = vmovl_s8(vget_low_s8(q)), hi = vmovl_high_s8(q);
    store_f32x4_neon(dst, vmulq_n_f32(vcvtq_f32_s32(vmovl_s16(vget_low_s16(lo))), d));
    store_f32x4_neon(dst + 4, vmulq_n_f32(vcvtq_f32_s32(vmovl_high_s16(lo)), d));
    store_f32x4_neon(dst + 8, vmulq_n_f32(vcvtq_f32_s32(vmovl_s16(vget_low_s16(hi))), d));
    store_f32x4_neon(dst + 12, vmulq_n_f32(vcvtq_f32_s32(vmovl_high_s16(hi)), d));
}

static void cvt_q8_0_f32_neon(size_t n, const void *src, float *dst)
{
    const unsigned char *blk = src;
    for (size_t b = 0; b < n / QKV_BLOCK_VALUES; b++, blk += QKV_Q8_0_BLOCK_BYTES, dst += 32) {
        const float d = block_scale_neon(blk);
        s8x16_scaled_neon(vreinterpretq_s8_u8(vld1q_u8(blk + 2)), d, dst);
        s8x16_scaled_neon(vreinterpretq_s8_u8(vld1q_u8(blk + 18)), d, dst + 16);
    }
}

static void cvt_q4_0_f32_neon(size_t n, const void *src, float *dst)
{
    const unsigned char *blk = src;
    for (size_t b = 0; b < n / QKV_BLOCK_VALUES; b++, blk += QKV_Q4_0_BLOCK_BYTES, dst += 32) {
        const float d = block_scale_neon(blk);
        const uint8x16_t qs = vld1q_u8(blk + 2);
        const int8x16_t eight = vdupq_n_s8(8);
        const int8x16_t lo = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(qs, vdupq_n_u8(15))), eight);
        const int8x16_t hi = vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(qs, 4)), eight);
        s8x16_scaled_neon(lo, d, dst);
        s8x16_scaled_neon(hi, d, dst + 16);
    }
}

/* max |x| over a block as bits: integer order on the magnitudes' bits is
   the order of |x|, with Inf and NaN above every finite value. */
static inline uint32_t block_amax_bits_neon(const float *x)
{
    const uint32x4_t abs = vdupq_n_u32(0x7fffffff);
    uint32x4_t m = vdupq_n_u32(0);
    for (int k = 0; k < 8; k++)
        m = vmaxq_u32(m, vandq_u32(vreinterpretq_u32_f32(load_f32x4_neon(x + 4 * k)), abs));
    return vmaxvq_u32(m);
}

static void cvt_f32_q8_0_neon(size_t n, const float *src, void *dst)
{
    unsigned char *blk = dst;
    for (size_t b = 0; b < n / QKV_BLOCK_VALUES; b++, blk += QKV_Q8_0_BLOCK_BYTES, src += 32) {
        uint16_t d16;
        float id;
        if (!qkv_q8_0_scale(qkv_bits_f32(block_amax_bits_neon(src)), &d16, &id)) {
            qkv_store_u16(blk, QKV_BLOCK_NAN_SCALE);
            memset(blk + 2, 0, 32);
            continue;
        }
        qkv_store_u16(blk, d16);
        for (int k = 0; k < 2; k++) {
            int16x8_t h[2];
            for (int j = 0; j < 2; j++) {
                const float *x = src + 16 * k + 8 * j;
                /* fcvtas: nearest, ties away from zero, as roundf */
                const int32x4_t a = vcvtaq_s32_f32(vmulq_n_f32(load_f32x4_neon(x), id));
                const int32x4_t c = vcvtaq_s32_f32(vmulq_n_f32(load_f32x4_neon(x + 4), id));
                h[j] = vcombine_s16(vmovn_s32(a), vmovn_s32(c));
            }
            vst1q_u8(blk + 2 + 16 * k,
                     vreinterpretq_u8_s8(vcombine_s8(vmovn_s16(h[0]), vmovn_s16(h[1]))));
        }
    }
}

static void cvt_f32_q4_0_neon(size_t n, const float *src, void *dst)
{
    unsigned char *blk = dst;
    for (size_t b = 0; b < n / QKV_BLOCK_VALUES; b++, blk += QKV_Q4_0_BLOCK_BYTES, src += 32) {
        const uint32_t amax = block_amax_bits_neon(src);
        /* The first value of largest magnitude keeps its sign; +0 when all
           are zero (ggml starts from 0.0f). */
        const float max = qkv_block_first_of_magnitude(src, amax);
        uint16_t d16;
        float id;
        if (!qkv_q4_0_scale(max, amax >= 0x7f800000u, &d16, &id)) {
            qkv_store_u16(blk, QKV_BLOCK_NAN_SCALE);
            memset(blk + 2, QKV_Q4_0_ZERO_PAIR, 16);
            continue;
        }
        uint16x8_t h[2];
        for (int j = 0; j < 2; j++) {
            uint32x4_t c[2];
            for (int k = 0; k < 2; k++) {
                const float *x = src + 8 * j + 4 * k;
                /* fcvtzs truncates, as the (int8_t) cast does */
                const int32x4_t lo = vminq_s32(vcvtq_s32_f32(vaddq_f32(
                    vmulq_n_f32(load_f32x4_neon(x), id), vdupq_n_f32(8.5f))), vdupq_n_s32(15));
                const int32x4_t hi = vminq_s32(vcvtq_s32_f32(vaddq_f32(
                    vmulq_n_f32(load_f32x4_neon(x + 16), id), vdupq_n_f32(8.5f))), vdupq_n_s32(15));
                c[k] = vorrq_u32(vreinterpretq_u32_s32(lo), vshlq_n_u32(vreinterpretq_u32_s32(hi), 4));
            }
            h[j] = vcombine_u16(vmovn_u32(c[0]), vmovn_u32(c[1]));
        }
        qkv_store_u16(blk, d16);
        vst1q_u8(blk + 2, vcombine_u8(vmovn_u16(h[0]), vmovn_u16(h[1])));
    }
}

void qkv_converters_init_neon(qkv_converters *c)
{
    c->to_f32[QKV_F16] = cvt_f16_f32_neon;
    c->from_f32[QKV_F16] = cvt_f32_f16_neon;
    c->to_f32[QKV_BF16] = cvt_bf16_f32_neon;
    c->from_f32[QKV_BF16] = cvt_f32_bf16_neon;
    c->to_f32[QKV_Q8_0] = cvt_q8_0_f32_neon;
    c->from_f32[QKV_Q8_0] = cvt_f32_q8_0_neon;
    c->to_f32[QKV_Q4_0] = cvt_q4_0_f32_neon;
    c->from_f32[QKV_Q4_0] = cvt_f32_q4_0_neon;
}

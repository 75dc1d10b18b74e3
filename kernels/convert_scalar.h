/*
 * The conversion rules, one value (or one block scale) at a time: portable
 * bit manipulation, no _Float16. kernels/scalar/convert.c builds the
 * reference row converters from these; the SIMD converters use them for
 * the one scale per block and for row tails, so every ISA applies the same
 * rules. Internal: not installed.
 *
 * The rules (docs/errors.md has them as a table):
 *   f16, bf16 -> f32   exact: subnormals, ±0, ±Inf; a NaN stays NaN with
 *                      its sign and payload, made quiet (as vcvtph2ps and
 *                      fcvtl do).
 *   f32 -> f16, bf16   round to nearest even, overflow to ±Inf, subnormals
 *                      rounded correctly and never flushed; a NaN becomes
 *                      a quiet NaN of the same sign that keeps the top of
 *                      its payload (so it never truncates into an Inf).
 *   f32 -> Q8_0, Q4_0  ggml's reference quantizer, plus rules for what it
 *                      leaves undefined (see qkv_q8_0_scale).
 */
#ifndef QKV_CONVERT_SCALAR_H
#define QKV_CONVERT_SCALAR_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "convert.h"

static inline uint32_t qkv_f32_bits(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return u;
}

static inline float qkv_bits_f32(uint32_t u)
{
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

/* qkv_convert takes any byte address for either side (its pointers are
   void *), so single values move through memcpy, never a float lvalue. */
static inline float qkv_load_f32(const float *p)
{
    float x;
    memcpy(&x, p, sizeof x);
    return x;
}

static inline void qkv_store_f32(float *p, float x)
{
    memcpy(p, &x, sizeof x);
}

/* ggml's blocks hold a little-endian f16; so do both hosts we build for. */
static inline uint16_t qkv_load_u16(const void *p)
{
    uint16_t h;
    memcpy(&h, p, sizeof h);
    return h;
}

static inline void qkv_store_u16(void *p, uint16_t h)
{
    memcpy(p, &h, sizeof h);
}

/* ---- f16 and bf16 ---------------------------------------------------------- */

static inline float qkv_f16_to_f32(uint16_t h)
{
    const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    const uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t mant = h & 0x3ffu;
    if (exp == 0x1f)
        return qkv_bits_f32(sign | 0x7f800000u | (mant ? 0x00400000u : 0) | (mant << 13));
    if (exp != 0)
        return qkv_bits_f32(sign | ((exp + 112) << 23) | (mant << 13));   /* bias 15 -> 127 */
    if (mant == 0)
        return qkv_bits_f32(sign);
    /* A subnormal, mant·2^-24: every one is a normal f32. Shift the leading
       one up to the implicit bit, one exponent step per place. */
    uint32_t e = 113;                           /* the f32 exponent of 2^-14 */
    while (!(mant & 0x400u)) {
        mant <<= 1;
        e--;
    }
    return qkv_bits_f32(sign | (e << 23) | ((mant & 0x3ffu) << 13));
}

static inline uint16_t qkv_f32_to_f16(float f)
{
    const uint32_t x = qkv_f32_bits(f);
    const uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    uint32_t a = x & 0x7fffffffu;
    if (a > 0x7f800000u)                        /* NaN: quiet, payload's top 10 bits */
        return (uint16_t)(sign | 0x7e00u | ((a >> 13) & 0x3ffu));
    if (a >= 0x477ff000u)                       /* >= 65520, the midpoint between the */
        return (uint16_t)(sign | 0x7c00u);      /* largest f16 (65504) and 2^16: Inf */
    if (a >= 0x38800000u) {                     /* >= 2^-14: a normal f16 */
        a += 0x0fffu + ((a >> 13) & 1u);        /* nearest even on the 13 bits dropped */
        return (uint16_t)(sign | ((a - 0x38000000u) >> 13));   /* bias 127 -> 15 */
    }
    /* An f16 subnormal (or 0): the value in units of 2^-24, rounded to
       nearest even. 2^-25 and below round to 0 (2^-25 itself is the tie). */
    const uint32_t e = a >> 23;
    if (e < 102)
        return sign;
    const uint32_t m = (a & 0x7fffffu) | 0x800000u;
    const uint32_t shift = 126 - e;             /* 14 .. 24 */
    const uint32_t q = m >> shift, rest = m & ((1u << shift) - 1), half = 1u << (shift - 1);
    return (uint16_t)(sign | (q + (rest > half || (rest == half && (q & 1u)))));
}

static inline float qkv_bf16_to_f32(uint16_t h)
{
    uint32_t x = (uint32_t)h << 16;
    if ((x & 0x7fffffffu) > 0x7f800000u)
        x |= 0x00400000u;
    return qkv_bits_f32(x);
}

static inline uint16_t qkv_f32_to_bf16(float f)
{
    const uint32_t x = qkv_f32_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u)        /* the quiet bit keeps a low payload */
        return (uint16_t)((x >> 16) | 0x0040u); /* from truncating into an Inf */
    /* Nearest even: adding 0x7fff (+1 when the kept part is odd) carries
       into bit 16 exactly when the dropped half is above (or at) the
       midpoint; a carry out of the largest finite value lands on Inf. */
    return (uint16_t)((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}

/* ---- Q8_0 and Q4_0 block scales ---------------------------------------------- */

/* The stored scale of a block that cannot be stored: a quiet NaN, so that
   all 32 values dequantize to NaN whatever the quants hold. */
#define QKV_BLOCK_NAN_SCALE 0x7e00u
#define QKV_Q4_0_ZERO_PAIR 0x88u     /* two nibbles of 8: the values 0, 0 */

/* 1/d, as ggml's `id = d ? 1/d : 0`, except that an id that overflows to
   Inf (|d| <= 2^-128) is 0 too: x·Inf would be ±Inf or NaN, whose
   conversion to an integer is undefined. Such a d is 0 in f16 anyway, so
   the block dequantizes to zeros either way. */
static inline float qkv_block_inverse(float d)
{
    if (d == 0.0f)
        return 0.0f;
    const float id = 1.0f / d;
    return isinf(id) ? 0.0f : id;
}

/* Finishes a block scale d (f32): its f16 in *d16 and the factor the quants
   are computed with in *id (from d in f32, as ggml does). Returns 0 when
   the block cannot be stored: d is NaN (the block held a NaN or an Inf) or
   d overflows f16. The caller then stores QKV_BLOCK_NAN_SCALE and zero
   quants. */
static inline int qkv_block_scale(float d, uint16_t *d16, float *id)
{
    *d16 = qkv_f32_to_f16(d);
    if ((*d16 & 0x7c00u) == 0x7c00u)
        return 0;
    *id = qkv_block_inverse(d);
    return 1;
}

/* Q8_0: amax = max |x| over the block, NaN or Inf when the block holds a
   non-finite value. d = amax / 127 (ggml's quantize_row_q8_0_ref). */
static inline int qkv_q8_0_scale(float amax, uint16_t *d16, float *id)
{
    if (!isfinite(amax))
        return 0;
    return qkv_block_scale(amax / 127.0f, d16, id);
}

/* The first of a block's 32 values whose magnitude's bits are amax_bits,
   sign kept; +0 when amax_bits is 0 (a block of zeros: ggml starts from
   0.0f). The SIMD converters that find it with a compare mask do not need
   this. */
static inline float qkv_block_first_of_magnitude(const float *src, uint32_t amax_bits)
{
    for (int j = 0; amax_bits && j < QKV_BLOCK_VALUES; j++)
        if ((qkv_f32_bits(qkv_load_f32(src + j)) & 0x7fffffffu) == amax_bits)
            return qkv_load_f32(src + j);
    return 0.0f;
}

/* Q4_0: max = the first value of largest magnitude, sign kept (+0 for a
   block of zeros, as ggml starts from 0.0f); nonfinite when the block holds
   NaN or Inf. d = max / -8, so that max itself maps to -8, the end of the
   nibble range with room (ggml's quantize_row_q4_0_ref). */
static inline int qkv_q4_0_scale(float max, int nonfinite, uint16_t *d16, float *id)
{
    if (nonfinite)
        return 0;
    return qkv_block_scale(max / -8.0f, d16, id);
}

/* q = roundf(x·id): round half away from zero, in [-127, 127] for a
   finite id from qkv_q8_0_scale. */
static inline int8_t qkv_q8_0_quant(float x, float id)
{
    return (int8_t)roundf(x * id);
}

/* q = min(15, (int8)(x·id + 8.5)): truncation of a value in [0.49, 16.5]
   for a finite id from qkv_q4_0_scale, so nearest with halves up. */
static inline uint8_t qkv_q4_0_quant(float x, float id)
{
    const int q = (int)(x * id + 8.5f);
    return (uint8_t)(q < 15 ? q : 15);
}

#endif /* QKV_CONVERT_SCALAR_H */

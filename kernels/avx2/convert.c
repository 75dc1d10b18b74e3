/*
 * AVX2 + F16C row converters (kernels/convert.h). f16 through vcvtph2ps /
 * vcvtps2ph (round to nearest even by the immediate, not MXCSR), bf16 by a
 * 16-bit shift and integer rounding, Q8_0 / Q4_0 by widening bytes
 * (vpmovsxbd) and one scale per block. Tails of 16-bit rows go through a
 * small buffer so that they take the same vector path; the block formats
 * have none (n is a multiple of 32).
 */
#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#include "convert_scalar.h"

#define I32(x) _mm256_set1_epi32((int)(x))

/* ---- f16 ------------------------------------------------------------------------ */

static void cvt_f16_f32_avx2(size_t n, const void *src, float *dst)
{
    const unsigned char *s = src;
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m256 a = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(s + 2 * i)));
        const __m256 b = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(s + 2 * i + 16)));
        _mm256_storeu_ps(dst + i, a);
        _mm256_storeu_ps(dst + i + 8, b);
    }
    for (; i < n; i += 8) {
        const size_t m = n - i < 8 ? n - i : 8;
        uint16_t h[8] = {0};
        float f[8];
        memcpy(h, s + 2 * i, 2 * m);
        _mm256_storeu_ps(f, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)h)));
        memcpy(dst + i, f, sizeof(float) * m);
    }
}

static void cvt_f32_f16_avx2(size_t n, const float *src, void *dst)
{
    unsigned char *d = dst;
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m128i a = _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT);
        const __m128i b = _mm256_cvtps_ph(_mm256_loadu_ps(src + i + 8), _MM_FROUND_TO_NEAREST_INT);
        _mm_storeu_si128((__m128i *)(d + 2 * i), a);
        _mm_storeu_si128((__m128i *)(d + 2 * i + 16), b);
    }
    for (; i < n; i += 8) {
        const size_t m = n - i < 8 ? n - i : 8;
        float f[8] = {0};
        uint16_t h[8];
        memcpy(f, src + i, sizeof(float) * m);
        _mm_storeu_si128((__m128i *)h, _mm256_cvtps_ph(_mm256_loadu_ps(f), _MM_FROUND_TO_NEAREST_INT));
        memcpy(d + 2 * i, h, 2 * m);
    }
}

/* ---- bf16 ----------------------------------------------------------------------- */

/* 8 bf16 -> 8 f32: the bits go to the top half; a NaN gets its quiet bit. */
static inline __m256 bf16x8_f32_avx2(__m128i h)
{
    const __m256i x = _mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16);
    const __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(x, I32(0x7fffffff)), I32(0x7f800000));
    return _mm256_castsi256_ps(_mm256_or_si256(x, _mm256_and_si256(nan, I32(0x00400000))));
}

/* 8 f32 -> 8 bf16 in the low halves of the 32-bit lanes, as
   qkv_f32_to_bf16: nearest even by integer addition, NaN made quiet. */
static inline __m256i f32x8_bf16_avx2(__m256 f)
{
    const __m256i x = _mm256_castps_si256(f);
    const __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(x, I32(0x7fffffff)), I32(0x7f800000));
    const __m256i odd = _mm256_and_si256(_mm256_srli_epi32(x, 16), I32(1));
    const __m256i rounded = _mm256_add_epi32(_mm256_add_epi32(x, I32(0x7fff)), odd);
    const __m256i quiet = _mm256_or_si256(x, I32(0x00400000));
    return _mm256_srli_epi32(_mm256_blendv_epi8(rounded, quiet, nan), 16);
}

static void cvt_bf16_f32_avx2(size_t n, const void *src, float *dst)
{
    const unsigned char *s = src;
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        _mm256_storeu_ps(dst + i, bf16x8_f32_avx2(_mm_loadu_si128((const __m128i *)(s + 2 * i))));
        _mm256_storeu_ps(dst + i + 8,
                         bf16x8_f32_avx2(_mm_loadu_si128((const __m128i *)(s + 2 * i + 16))));
    }
    for (; i < n; i += 8) {
        const size_t m = n - i < 8 ? n - i : 8;
        uint16_t h[8] = {0};
        float f[8];
        memcpy(h, s + 2 * i, 2 * m);
        _mm256_storeu_ps(f, bf16x8_f32_avx2(_mm_loadu_si128((const __m128i *)h)));
        memcpy(dst + i, f, sizeof(float) * m);
    }
}

static void cvt_f32_bf16_avx2(size_t n, const float *src, void *dst)
{
    unsigned char *d = dst;
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m256i a = f32x8_bf16_avx2(_mm256_loadu_ps(src + i));
        const __m256i b = f32x8_bf16_avx2(_mm256_loadu_ps(src + i + 8));
        /* packus works per 128-bit lane: a0-3 b0-3 | a4-7 b4-7, then put
           the 64-bit quarters back in order. Lanes hold 0..0xffff: no
           saturation. */
        const __m256i p = _mm256_permute4x64_epi64(_mm256_packus_epi32(a, b), 0xd8);
        _mm256_storeu_si256((__m256i *)(d + 2 * i), p);
    }
    for (; i < n; i += 8) {
        const size_t m = n - i < 8 ? n - i : 8;
        float f[8] = {0};
        uint16_t h[8];
        memcpy(f, src + i, sizeof(float) * m);
        const __m256i a = f32x8_bf16_avx2(_mm256_loadu_ps(f));
        const __m256i p = _mm256_permute4x64_epi64(_mm256_packus_epi32(a, a), 0xd8);
        _mm_storeu_si128((__m128i *)h, _mm256_castsi256_si128(p));
        memcpy(d + 2 * i, h, 2 * m);
    }
}

/* ---- Q8_0 and Q4_0 ---------------------------------------------------------------- */

static void cvt_q8_0_f32_avx2(size_t n, const void *src, float *dst)
{
    const unsigned char *blk = src;
    for (size_t b = 0; b < n / QKV_BLOCK_VALUES; b++, blk += QKV_Q8_0_BLOCK_BYTES, dst += 32) {
        const __m256 d = _mm256_set1_ps(_cvtsh_ss(qkv_load_u16(blk)));
        const __m128i q0 = _mm_loadu_si128((const __m128i *)(blk + 2));
        const __m128i q1 = _mm_loadu_si128((const __m128i *)(blk + 18));
        const __m256i i0 = _mm256_cvtepi8_epi32(q0);
        const __m256i i1 = _mm256_cvtepi8_epi32(_mm_srli_si128(q0, 8));
        const __m256i i2 = _mm256_cvtepi8_epi32(q1);
        const __m256i i3 = _mm256_cvtepi8_epi32(_mm_srli_si128(q1, 8));
        _mm256_storeu_ps(dst, _mm256_mul_ps(_mm256_cvtepi32_ps(i0), d));
        _mm256_storeu_ps(dst + 8, _mm256_mul_ps(_mm256_cvtepi32_ps(i1), d));
        _mm256_storeu_ps(dst + 16, _mm256_mul_ps(_mm256_cvtepi32_ps(i2), d));
        _mm256_storeu_ps(dst + 24, _mm256_mul_ps(_mm256_cvtepi32_ps(i3), d));
    }
}

static void cvt_q4_0_f32_avx2(size_t n, const void *src, float *dst)
{
    const unsigned char *blk = src;
    const __m128i low4 = _mm_set1_epi8(15), eight = _mm_set1_epi8(8);
    for (size_t b = 0; b < n / QKV_BLOCK_VALUES; b++, blk += QKV_Q4_0_BLOCK_BYTES, dst += 32) {
        const __m256 d = _mm256_set1_ps(_cvtsh_ss(qkv_load_u16(blk)));
        const __m128i qs = _mm_loadu_si128((const __m128i *)(blk + 2));
        const __m128i lo = _mm_sub_epi8(_mm_and_si128(qs, low4), eight);     /* values 0..15 */
        const __m128i hi = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(qs, 4), low4), eight);
        _mm256_storeu_ps(dst, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(lo)), d));
        _mm256_storeu_ps(dst + 8, _mm256_mul_ps(
            _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(lo, 8))), d));
        _mm256_storeu_ps(dst + 16, _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(hi)), d));
        _mm256_storeu_ps(dst + 24, _mm256_mul_ps(
            _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(hi, 8))), d));
    }
}

/* The largest of 8 unsigned 32-bit lanes, in every lane. */
static inline __m256i hmax_u32_avx2(__m256i v)
{
    __m128i m = _mm_max_epu32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    m = _mm_max_epu32(m, _mm_shuffle_epi32(m, _MM_SHUFFLE(1, 0, 3, 2)));
    m = _mm_max_epu32(m, _mm_shuffle_epi32(m, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm256_broadcastd_epi32(m);
}

/* The 32 values of a block, and their magnitudes as bits: integer order on
   those is the order of |x|, with Inf and then NaN above every finite
   value, so one integer max finds max |x| and flags a non-finite block. */
typedef struct block_avx2 {
    __m256 x[4];
    __m256i a[4];
    __m256i amax;       /* in every lane */
} block_avx2;

static inline block_avx2 load_block_avx2(const float *src)
{
    block_avx2 b;
    for (int k = 0; k < 4; k++) {
        b.x[k] = _mm256_loadu_ps(src + 8 * k);
        b.a[k] = _mm256_and_si256(_mm256_castps_si256(b.x[k]), I32(0x7fffffff));
    }
    b.amax = hmax_u32_avx2(_mm256_max_epu32(_mm256_max_epu32(b.a[0], b.a[1]),
                                            _mm256_max_epu32(b.a[2], b.a[3])));
    return b;
}

/* roundf: half away from zero. v - trunc(v) is exact, so the comparison
   with 0.5 decides ties exactly (v + 0.5 then truncation would not:
   0.49999997 + 0.5 rounds up to 1). */
static inline __m256i round_away_avx2(__m256 v)
{
    const __m256 t = _mm256_round_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    const __m256 frac = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), _mm256_sub_ps(v, t));
    const __m256i up = _mm256_castps_si256(_mm256_cmp_ps(frac, _mm256_set1_ps(0.5f), _CMP_GE_OQ));
    const __m256i sign = _mm256_or_si256(_mm256_srai_epi32(_mm256_castps_si256(v), 31), I32(1));
    return _mm256_add_epi32(_mm256_cvttps_epi32(t), _mm256_and_si256(up, sign));
}

/* 4 × 8 int32 lanes holding bytes (in order) -> 32 bytes in order. */
static inline __m256i pack_bytes_avx2(__m256i i0, __m256i i1, __m256i i2, __m256i i3)
{
    /* packs works per 128-bit lane, leaving dwords i0a i1a i2a i3a | i0b
       i1b i2b i3b (a, b: lanes 0-3, 4-7 of each); the permute restores
       the order. */
    const __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(i0, i1), _mm256_packs_epi32(i2, i3));
    return _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

static void cvt_f32_q8_0_avx2(size_t n, const float *src, void *dst)
{
    unsigned char *blk = dst;
    for (size_t b = 0; b < n / QKV_BLOCK_VALUES; b++, blk += QKV_Q8_0_BLOCK_BYTES, src += 32) {
        const block_avx2 x = load_block_avx2(src);
        uint16_t d16;
        float id;
        if (!qkv_q8_0_scale(qkv_bits_f32((uint32_t)_mm256_extract_epi32(x.amax, 0)), &d16, &id)) {
            qkv_store_u16(blk, QKV_BLOCK_NAN_SCALE);
            memset(blk + 2, 0, 32);
            continue;
        }
        const __m256 vid = _mm256_set1_ps(id);
        __m256i q[4];
        for (int k = 0; k < 4; k++)
            q[k] = round_away_avx2(_mm256_mul_ps(x.x[k], vid));
        qkv_store_u16(blk, d16);
        _mm256_storeu_si256((__m256i *)(blk + 2), pack_bytes_avx2(q[0], q[1], q[2], q[3]));
    }
}

static void cvt_f32_q4_0_avx2(size_t n, const float *src, void *dst)
{
    unsigned char *blk = dst;
    for (size_t b = 0; b < n / QKV_BLOCK_VALUES; b++, blk += QKV_Q4_0_BLOCK_BYTES, src += 32) {
        const block_avx2 x = load_block_avx2(src);
        const uint32_t amax = (uint32_t)_mm256_extract_epi32(x.amax, 0);
        /* The first value of largest magnitude keeps its sign; +0 when all
           are zero (ggml starts from 0.0f). */
        float max = 0.0f;
        if (amax) {
            uint32_t hit = 0;
            for (int k = 0; k < 4; k++)
                hit |= (uint32_t)_mm256_movemask_ps(
                           _mm256_castsi256_ps(_mm256_cmpeq_epi32(x.a[k], x.amax))) << (8 * k);
            max = qkv_load_f32(src + __builtin_ctz(hit));
        }
        uint16_t d16;
        float id;
        if (!qkv_q4_0_scale(max, amax >= 0x7f800000u, &d16, &id)) {
            qkv_store_u16(blk, QKV_BLOCK_NAN_SCALE);
            memset(blk + 2, QKV_Q4_0_ZERO_PAIR, 16);
            continue;
        }
        const __m256 vid = _mm256_set1_ps(id), half8 = _mm256_set1_ps(8.5f);
        __m256i q[4];
        for (int k = 0; k < 4; k++)
            q[k] = _mm256_min_epi32(
                _mm256_cvttps_epi32(_mm256_add_ps(_mm256_mul_ps(x.x[k], vid), half8)), I32(15));
        /* Byte j holds value j (low nibble) and value j + 16 (high). */
        const __m256i c0 = _mm256_or_si256(q[0], _mm256_slli_epi32(q[2], 4));
        const __m256i c1 = _mm256_or_si256(q[1], _mm256_slli_epi32(q[3], 4));
        const __m256i p = _mm256_packus_epi16(_mm256_packs_epi32(c0, c1), _mm256_setzero_si256());
        const __m256i ordered = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        qkv_store_u16(blk, d16);
        _mm_storeu_si128((__m128i *)(blk + 2), _mm256_castsi256_si128(ordered));
    }
}

void qkv_converters_init_avx2(qkv_converters *c)
{
    c->to_f32[QKV_F16] = cvt_f16_f32_avx2;
    c->from_f32[QKV_F16] = cvt_f32_f16_avx2;
    c->to_f32[QKV_BF16] = cvt_bf16_f32_avx2;
    c->from_f32[QKV_BF16] = cvt_f32_bf16_avx2;
    c->to_f32[QKV_Q8_0] = cvt_q8_0_f32_avx2;
    c->from_f32[QKV_Q8_0] = cvt_f32_q8_0_avx2;
    c->to_f32[QKV_Q4_0] = cvt_q4_0_f32_avx2;
    c->from_f32[QKV_Q4_0] = cvt_f32_q4_0_avx2;
}

/*
 * AVX-512 row converters (kernels/convert.h): 16 lanes, and masked loads
 * and stores for the tails (a masked-off lane is never touched, so a tail
 * needs no scalar code). f16 through vcvtph2ps / vcvtps2ph on zmm. bf16 by
 * shifts and integer rounding: vcvtneps2bf16 is AVX512-BF16, not AVX-512F,
 * and flushes subnormals, so it is not used. Q8_0 / Q4_0 by widening bytes
 * (vpmovsxbd; Q4_0's nibbles by a table lookup, vpermps) and narrowing back
 * (vpmovdb).
 */
#include <immintrin.h>
#ifdef QKV_AVX512_EMULATE   /* a test build: see avx512/emulate.h */
#include "avx512/emulate.h"
#endif
#include <stdint.h>
#include <string.h>

#include "convert_scalar.h"

#define I32(x) _mm512_set1_epi32((int)(x))

static inline __mmask16 tail_mask(size_t m)
{
    return (__mmask16)((1u << m) - 1);
}

/* ---- f16 ------------------------------------------------------------------------ */

static void cvt_f16_f32_avx512(size_t n, const void *src, float *dst)
{
    const unsigned char *s = src;
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        const __m512 a = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(s + 2 * i)));
        const __m512 b = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(s + 2 * i + 32)));
        _mm512_storeu_ps(dst + i, a);
        _mm512_storeu_ps(dst + i + 16, b);
    }
    for (; i < n; i += 16) {
        const __mmask16 k = n - i < 16 ? tail_mask(n - i) : 0xffff;
        const __m256i h = _mm256_maskz_loadu_epi16(k, s + 2 * i);
        _mm512_mask_storeu_ps(dst + i, k, _mm512_cvtph_ps(h));
    }
}

static void cvt_f32_f16_avx512(size_t n, const float *src, void *dst)
{
    unsigned char *d = dst;
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        const __m256i a = _mm512_cvtps_ph(_mm512_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT);
        const __m256i b = _mm512_cvtps_ph(_mm512_loadu_ps(src + i + 16), _MM_FROUND_TO_NEAREST_INT);
        _mm256_storeu_si256((__m256i *)(d + 2 * i), a);
        _mm256_storeu_si256((__m256i *)(d + 2 * i + 32), b);
    }
    for (; i < n; i += 16) {
        const __mmask16 k = n - i < 16 ? tail_mask(n - i) : 0xffff;
        const __m512 f = _mm512_maskz_loadu_ps(k, src + i);
        _mm256_mask_storeu_epi16(d + 2 * i, k, _mm512_cvtps_ph(f, _MM_FROUND_TO_NEAREST_INT));
    }
}

/* ---- bf16 ----------------------------------------------------------------------- */

/* 16 bf16 -> 16 f32: the bits go to the top half; a NaN gets its quiet bit. */
static inline __m512 bf16x16_f32_avx512(__m256i h)
{
    const __m512i x = _mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16);
    const __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(x, I32(0x7fffffff)), I32(0x7f800000));
    return _mm512_castsi512_ps(_mm512_mask_or_epi32(x, nan, x, I32(0x00400000)));
}

/* 16 f32 -> 16 bf16 in the low halves of the lanes, as qkv_f32_to_bf16. */
static inline __m512i f32x16_bf16_avx512(__m512 f)
{
    const __m512i x = _mm512_castps_si512(f);
    const __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(x, I32(0x7fffffff)), I32(0x7f800000));
    const __m512i odd = _mm512_and_si512(_mm512_srli_epi32(x, 16), I32(1));
    const __m512i rounded = _mm512_add_epi32(_mm512_add_epi32(x, I32(0x7fff)), odd);
    return _mm512_srli_epi32(_mm512_mask_or_epi32(rounded, nan, x, I32(0x00400000)), 16);
}

static void cvt_bf16_f32_avx512(size_t n, const void *src, float *dst)
{
    const unsigned char *s = src;
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        _mm512_storeu_ps(dst + i, bf16x16_f32_avx512(_mm256_loadu_si256((const __m256i *)(s + 2 * i))));
        _mm512_storeu_ps(dst + i + 16,
                         bf16x16_f32_avx512(_mm256_loadu_si256((const __m256i *)(s + 2 * i + 32))));
    }
    for (; i < n; i += 16) {
        const __mmask16 k = n - i < 16 ? tail_mask(n - i) : 0xffff;
        _mm512_mask_storeu_ps(dst + i, k, bf16x16_f32_avx512(_mm256_maskz_loadu_epi16(k, s + 2 * i)));
    }
}

static void cvt_f32_bf16_avx512(size_t n, const float *src, void *dst)
{
    unsigned char *d = dst;
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        const __m512i a = f32x16_bf16_avx512(_mm512_loadu_ps(src + i));
        const __m512i b = f32x16_bf16_avx512(_mm512_loadu_ps(src + i + 16));
        _mm256_storeu_si256((__m256i *)(d + 2 * i), _mm512_cvtepi32_epi16(a));
        _mm256_storeu_si256((__m256i *)(d + 2 * i + 32), _mm512_cvtepi32_epi16(b));
    }
    for (; i < n; i += 16) {
        const __mmask16 k = n - i < 16 ? tail_mask(n - i) : 0xffff;
        const __m512i h = f32x16_bf16_avx512(_mm512_maskz_loadu_ps(k, src + i));
        _mm512_mask_cvtepi32_storeu_epi16(d + 2 * i, k, h);
    }
}

/* ---- Q8_0 and Q4_0 ---------------------------------------------------------------- */

static void cvt_q8_0_f32_avx512(size_t n, const void *src, float *dst)
{
    const unsigned char *blk = src;
    for (size_t b = 0; b < n / QKV_BLOCK_VALUES; b++, blk += QKV_Q8_0_BLOCK_BYTES, dst += 32) {
        const __m512 d = _mm512_set1_ps(_cvtsh_ss(qkv_load_u16(blk)));
        const __m512i i0 = _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(blk + 2)));
        const __m512i i1 = _mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)(blk + 18)));
        _mm512_storeu_ps(dst, _mm512_mul_ps(_mm512_cvtepi32_ps(i0), d));
        _mm512_storeu_ps(dst + 16, _mm512_mul_ps(_mm512_cvtepi32_ps(i1), d));
    }
}

/* Nibbles looked up in a table of d·(i - 8) (exact products): vpermps
   reads only an index's low 4 bits, so neither a mask nor an int-to-float
   conversion is needed. */
static void cvt_q4_0_f32_avx512(size_t n, const void *src, float *dst)
{
    const unsigned char *blk = src;
    const __m512 minus8 = _mm512_setr_ps(-8, -7, -6, -5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 6, 7);
    for (size_t b = 0; b < n / QKV_BLOCK_VALUES; b++, blk += QKV_Q4_0_BLOCK_BYTES, dst += 32) {
        const __m512 table = _mm512_mul_ps(minus8, _mm512_set1_ps(_cvtsh_ss(qkv_load_u16(blk))));
        const __m512i qs = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(blk + 2)));
        _mm512_storeu_ps(dst, _mm512_permutexvar_ps(qs, table));
        _mm512_storeu_ps(dst + 16, _mm512_permutexvar_ps(_mm512_srli_epi32(qs, 4), table));
    }
}

/* roundf, half away from zero (see round_away_avx2): v - trunc(v) is exact. */
static inline __m512i round_away_avx512(__m512 v)
{
    const __m512 t = _mm512_roundscale_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    const __m512 frac = _mm512_abs_ps(_mm512_sub_ps(v, t));
    const __mmask16 up = _mm512_cmp_ps_mask(frac, _mm512_set1_ps(0.5f), _CMP_GE_OQ);
    const __m512i sign = _mm512_or_si512(_mm512_srai_epi32(_mm512_castps_si512(v), 31), I32(1));
    const __m512i q = _mm512_cvttps_epi32(t);
    return _mm512_mask_add_epi32(q, up, q, sign);
}

/* The 32 values of a block and max |x| as bits (integer order on the
   magnitudes' bits is the order of |x|, Inf and NaN above every finite). */
typedef struct block_avx512 {
    __m512 x[2];
    __m512i a[2];
    uint32_t amax;
} block_avx512;

static inline block_avx512 load_block_avx512(const float *src)
{
    block_avx512 b;
    for (int k = 0; k < 2; k++) {
        b.x[k] = _mm512_loadu_ps(src + 16 * k);
        b.a[k] = _mm512_and_si512(_mm512_castps_si512(b.x[k]), I32(0x7fffffff));
    }
    b.amax = _mm512_reduce_max_epu32(_mm512_max_epu32(b.a[0], b.a[1]));
    return b;
}

static void cvt_f32_q8_0_avx512(size_t n, const float *src, void *dst)
{
    unsigned char *blk = dst;
    for (size_t b = 0; b < n / QKV_BLOCK_VALUES; b++, blk += QKV_Q8_0_BLOCK_BYTES, src += 32) {
        const block_avx512 x = load_block_avx512(src);
        uint16_t d16;
        float id;
        if (!qkv_q8_0_scale(qkv_bits_f32(x.amax), &d16, &id)) {
            qkv_store_u16(blk, QKV_BLOCK_NAN_SCALE);
            memset(blk + 2, 0, 32);
            continue;
        }
        const __m512 vid = _mm512_set1_ps(id);
        qkv_store_u16(blk, d16);
        _mm_storeu_si128((__m128i *)(blk + 2),
                         _mm512_cvtepi32_epi8(round_away_avx512(_mm512_mul_ps(x.x[0], vid))));
        _mm_storeu_si128((__m128i *)(blk + 18),
                         _mm512_cvtepi32_epi8(round_away_avx512(_mm512_mul_ps(x.x[1], vid))));
    }
}

static void cvt_f32_q4_0_avx512(size_t n, const float *src, void *dst)
{
    unsigned char *blk = dst;
    for (size_t b = 0; b < n / QKV_BLOCK_VALUES; b++, blk += QKV_Q4_0_BLOCK_BYTES, src += 32) {
        const block_avx512 x = load_block_avx512(src);
        /* The first value of largest magnitude keeps its sign; +0 when all
           are zero (ggml starts from 0.0f). */
        float max = 0.0f;
        if (x.amax) {
            const __m512i m = _mm512_set1_epi32((int)x.amax);
            const uint32_t hit = (uint32_t)_mm512_cmpeq_epi32_mask(x.a[0], m) |
                                 (uint32_t)_mm512_cmpeq_epi32_mask(x.a[1], m) << 16;
            max = qkv_load_f32(src + __builtin_ctz(hit));
        }
        uint16_t d16;
        float id;
        if (!qkv_q4_0_scale(max, x.amax >= 0x7f800000u, &d16, &id)) {
            qkv_store_u16(blk, QKV_BLOCK_NAN_SCALE);
            memset(blk + 2, QKV_Q4_0_ZERO_PAIR, 16);
            continue;
        }
        const __m512 vid = _mm512_set1_ps(id), half8 = _mm512_set1_ps(8.5f);
        const __m512i lo = _mm512_min_epi32(
            _mm512_cvttps_epi32(_mm512_add_ps(_mm512_mul_ps(x.x[0], vid), half8)), I32(15));
        const __m512i hi = _mm512_min_epi32(
            _mm512_cvttps_epi32(_mm512_add_ps(_mm512_mul_ps(x.x[1], vid), half8)), I32(15));
        qkv_store_u16(blk, d16);
        _mm_storeu_si128((__m128i *)(blk + 2),
                         _mm512_cvtepi32_epi8(_mm512_or_si512(lo, _mm512_slli_epi32(hi, 4))));
    }
}

void qkv_converters_init_avx512(qkv_converters *c)
{
    c->to_f32[QKV_F16] = cvt_f16_f32_avx512;
    c->from_f32[QKV_F16] = cvt_f32_f16_avx512;
    c->to_f32[QKV_BF16] = cvt_bf16_f32_avx512;
    c->from_f32[QKV_BF16] = cvt_f32_bf16_avx512;
    c->to_f32[QKV_Q8_0] = cvt_q8_0_f32_avx512;
    c->from_f32[QKV_Q8_0] = cvt_f32_q8_0_avx512;
    c->to_f32[QKV_Q4_0] = cvt_q4_0_f32_avx512;
    c->from_f32[QKV_Q4_0] = cvt_f32_q4_0_avx512;
}

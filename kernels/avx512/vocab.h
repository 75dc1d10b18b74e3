/*
 * The AVX-512 (F/BW/DQ/VL) vocabulary of 16-lane vector operations that
 * kernels/x86/kernels_tmpl.h is written in, shared by the ISA files built
 * with AVX-512 flags (avx512.c, avx512bf16.c, amx.c); each defines
 * X86_ISA_SUFFIX, then includes this once. The fused kernels' exp and
 * tanh are simd/exp_tanh.h's, inline; the stage softmax's exp
 * (v_exp_sleef) is SLEEF's 1-ULP AVX-512 version.
 */
#ifndef QKV_AVX512_VOCAB_H
#define QKV_AVX512_VOCAB_H

#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <sleef.h>
#ifdef QKV_AVX512_EMULATE   /* a test build: see avx512/emulate.h */
#include "avx512/emulate.h"
#endif

#include "simd/unroll.h"

#define VL 16

/* Register blocking of the one microkernel (C := pre·C + A·B, see the
   template): 6 rows × 4 vectors = 24 of the 32 zmm registers hold C, 4 hold
   the row of B, 1 the broadcast of A. Per step 6 broadcasts + 4 loads feed
   24 FMAs, so the two FMA pipes, not the load ports, set the pace. */
#define GEMM_MR 6
#define GEMM_NV 4
#define GEMM_TILE 6x64

/* The decode P·V of a Q8_0/Q4_0 V scales V's vectors (see pv_weights in
   the template for what was measured). */
#define PV_FOLD_SCALES 0

/* scores: a packed Kᵀ panel of KC×64 floats is 32 KiB, inside the 48 KiB L1
   with room for the Q rows it is multiplied with. */
#define SCORES_KC 128
/* weighted_sum: a KC×64 panel of V rows (32 KiB) is reused by every block
   of 6 rows of P while it sits in L1. */
#define WSUM_KC 128

typedef __m512 vf;
typedef __mmask16 vm;      /* one bit per lane */

#define V_INLINE static inline __attribute__((always_inline))

V_INLINE vf v_zero(void) { return _mm512_setzero_ps(); }
V_INLINE vf v_set1(float x) { return _mm512_set1_ps(x); }
V_INLINE vf v_load(const float *p) { return _mm512_loadu_ps(p); }
V_INLINE void v_store(float *p, vf x) { _mm512_storeu_ps(p, x); }
/* A non-temporal store: p 64-byte aligned, the line written around the caches. */
V_INLINE void v_stream(float *p, vf x) { _mm512_stream_ps(p, x); }
/* The first n lanes, 1 <= n <= VL. */
V_INLINE vm v_tailmask(size_t n) { return (vm)((1u << n) - 1u); }
/* Masked-off lanes are never touched in memory (no fault past a row's end)
   and read as 0 (v_loadm) or as `fill` (v_loadm_or). */
V_INLINE vf v_loadm(const float *p, vm m) { return _mm512_maskz_loadu_ps(m, p); }
V_INLINE vf v_loadm_or(const float *p, vm m, vf fill) { return _mm512_mask_loadu_ps(fill, m, p); }
V_INLINE void v_storem(float *p, vm m, vf x) { _mm512_mask_storeu_ps(p, m, x); }
V_INLINE vf v_add(vf a, vf b) { return _mm512_add_ps(a, b); }
V_INLINE vf v_sub(vf a, vf b) { return _mm512_sub_ps(a, b); }
V_INLINE vf v_mul(vf a, vf b) { return _mm512_mul_ps(a, b); }
V_INLINE vf v_div(vf a, vf b) { return _mm512_div_ps(a, b); }
V_INLINE vf v_fmadd(vf a, vf b, vf c) { return _mm512_fmadd_ps(a, b, c); }
/* max(x, m): when x is NaN the result is m, like the scalar `if (x > max)`. */
V_INLINE vf v_max(vf x, vf m) { return _mm512_max_ps(x, m); }
V_INLINE vm v_gt(vf a, vf b) { return _mm512_cmp_ps_mask(a, b, _CMP_GT_OQ); }
V_INLINE vm v_eq(vf a, vf b) { return _mm512_cmp_ps_mask(a, b, _CMP_EQ_OQ); }
/* Not equal, or unordered (a NaN on either side). */
V_INLINE vm v_ne(vf a, vf b) { return _mm512_cmp_ps_mask(a, b, _CMP_NEQ_UQ); }
V_INLINE vm v_or(vm a, vm b) { return (vm)(a | b); }
/* m ? b : a, lane by lane. */
V_INLINE vf v_sel(vm m, vf a, vf b) { return _mm512_mask_blend_ps(m, a, b); }
V_INLINE unsigned v_bits(vm m) { return (unsigned)m; }
V_INLINE int v_any(vm m) { return v_bits(m) != 0; }
V_INLINE float v_hmax(vf x) { return _mm512_reduce_max_ps(x); }
V_INLINE float v_hsum(vf x) { return _mm512_reduce_add_ps(x); }
/* SLEEF's exp, for the stage softmax (the contract's); the fused kernels
   take simd/exp_tanh.h's v_exp and v_tanh, inline, built on the five
   below. */
V_INLINE vf v_exp_sleef(vf x) { return Sleef_expf16_u10avx512f(x); }
V_INLINE vf v_abs(vf x)
{
    return _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(x), _mm512_set1_epi32(0x7fffffff)));
}
/* |m| with the sign of s (m's sign bit must be clear). */
V_INLINE vf v_copysign(vf m, vf s)
{
    const __m512i sign = _mm512_and_si512(_mm512_castps_si512(s), _mm512_set1_epi32(INT32_MIN));
    return _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(m), sign));
}
/* x clamped to [lo, hi], NaN kept: min and max return their second
   operand when either is NaN. */
V_INLINE vf v_clamp(vf x, vf lo, vf hi) { return _mm512_min_ps(hi, _mm512_max_ps(lo, x)); }
V_INLINE vf v_round(vf x)
{
    return _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}
/* p · 2^n for an integral n, rounded once (vscalefps). */
V_INLINE vf v_scale2(vf p, vf n) { return _mm512_scalef_ps(p, n); }
/* vscalefps is exact wherever the product is a normal float. */
V_INLINE vf v_scale2_normal(vf p, vf n) { return v_scale2(p, n); }
/* Every lane of a below c (a NaN is not). */
V_INLINE int v_all_below(vf a, vf c) { return _mm512_cmp_ps_mask(a, c, _CMP_LT_OQ) == 0xffff; }

/* Not pinned (avx2/vocab.h): gcc folds some of Q's loads here too, but with 32
   registers the effect is unknown; no AVX-512 machine has measured it. */
V_INLINE vf v_pin(vf x) { return x; }

/* (float)(p[i] + j), exactly as the scalar code converts a key distance. */
V_INLINE vf v_i32_to_f(const int32_t *p, int32_t j)
{
    return _mm512_cvtepi32_ps(_mm512_add_epi32(_mm512_loadu_si512(p), _mm512_set1_epi32(j)));
}

/* Lane i = the sum of the lanes of x[i], for VL vectors at once: a
   transposing tree of 4 levels (15 adds) instead of 16 separate horizontal
   sums. The tree leaves lane 4Q+m with input 4m+Q, so the inputs are taken
   in that order. */
V_INLINE vf v_hsum_lanes(const vf *x)
{
#define XP(i) x[((i) % 4) * 4 + (i) / 4]
    vf y[8], z[4];
    for (int i = 0; i < 8; i++)
        y[i] = _mm512_add_ps(_mm512_shuffle_f32x4(XP(2 * i), XP(2 * i + 1), 0x44),
                             _mm512_shuffle_f32x4(XP(2 * i), XP(2 * i + 1), 0xEE));
#undef XP
    for (int i = 0; i < 4; i++)
        z[i] = _mm512_add_ps(_mm512_shuffle_f32x4(y[2 * i], y[2 * i + 1], 0x88),
                             _mm512_shuffle_f32x4(y[2 * i], y[2 * i + 1], 0xDD));
    const vf w0 = _mm512_add_ps(_mm512_unpacklo_ps(z[0], z[1]), _mm512_unpackhi_ps(z[0], z[1]));
    const vf w1 = _mm512_add_ps(_mm512_unpacklo_ps(z[2], z[3]), _mm512_unpackhi_ps(z[2], z[3]));
    const __m512d a = _mm512_castps_pd(w0), b = _mm512_castps_pd(w1);
    return _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(a, b)),
                         _mm512_castpd_ps(_mm512_unpackhi_pd(a, b)));
}

/* Lanes 4k + r, for all k, combined over k: every group of 4 lanes ends up
   holding the max (sum) of its row r across the groups. */
V_INLINE vf v_fold4_max(vf x)
{
    x = _mm512_max_ps(x, _mm512_shuffle_f32x4(x, x, 0x4E));
    return _mm512_max_ps(x, _mm512_shuffle_f32x4(x, x, 0xB1));
}
V_INLINE vf v_fold4_add(vf x)
{
    x = _mm512_add_ps(x, _mm512_shuffle_f32x4(x, x, 0x4E));
    return _mm512_add_ps(x, _mm512_shuffle_f32x4(x, x, 0xB1));
}
/* Lanes 2k + r likewise (the decode form of 2 rows): the pairs of each
   group of 4 combined, then the groups. */
V_INLINE vf v_fold2_max(vf x) { return v_fold4_max(_mm512_max_ps(x, _mm512_permute_ps(x, 0x4E))); }
V_INLINE vf v_fold2_add(vf x) { return v_fold4_add(_mm512_add_ps(x, _mm512_permute_ps(x, 0x4E))); }
/* Lanes 8k + r likewise (simd/attention.h's 8-row decode form). */
#define SIMD_ROWS8 1
V_INLINE vf v_fold8_max(vf x) { return _mm512_max_ps(x, _mm512_shuffle_f32x4(x, x, 0x4E)); }
V_INLINE vf v_fold8_add(vf x) { return _mm512_add_ps(x, _mm512_shuffle_f32x4(x, x, 0x4E)); }

/* x[i] = row i of a 16 × 16 block in, column i out. Pairs of rows are
   interleaved (floats, then float pairs) so that each 128-bit lane holds a
   4 × 4 sub-block transposed, then two rounds of lane shuffles put the
   sub-blocks in place: 64 shuffles in all. */
V_INLINE void v_transpose(vf *x)
{
    vf t[16], u[16];
SIMD_UNROLL
    for (int i = 0; i < 16; i += 2) {
        t[i] = _mm512_unpacklo_ps(x[i], x[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(x[i], x[i + 1]);
    }
    /* u[4k + c], lane L: rows 4k..4k+3 of column 4L + c. */
SIMD_UNROLL
    for (int k = 0; k < 16; k += 4) {
        const __m512d a = _mm512_castps_pd(t[k]), b = _mm512_castps_pd(t[k + 1]);
        const __m512d c = _mm512_castps_pd(t[k + 2]), d = _mm512_castps_pd(t[k + 3]);
        u[k] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
        u[k + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
        u[k + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
        u[k + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
    }
SIMD_UNROLL
    for (int c = 0; c < 4; c++) {
        const vf w0 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0x88);   /* lanes 0, 2 */
        const vf w1 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0xDD);   /* lanes 1, 3 */
        const vf w2 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0x88);
        const vf w3 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0xDD);
        x[c] = _mm512_shuffle_f32x4(w0, w2, 0x88);
        x[8 + c] = _mm512_shuffle_f32x4(w0, w2, 0xDD);
        x[4 + c] = _mm512_shuffle_f32x4(w1, w3, 0x88);
        x[12 + c] = _mm512_shuffle_f32x4(w1, w3, 0xDD);
    }
}

/* Lanes i with lo[i] <= j < hi[i]. */
V_INLINE vm v_in_range(const int32_t *lo, const int32_t *hi, int32_t j)
{
    const __m512i vj = _mm512_set1_epi32(j);
    return _mm512_cmple_epi32_mask(_mm512_loadu_si512(lo), vj) &
           _mm512_cmpgt_epi32_mask(_mm512_loadu_si512(hi), vj);
}

/* VL stored values widened exactly to f32, for the decode kernels that
   read K and V in place: f16, bf16 (a shift), the int8 of Q8_0, the
   nibbles of Q4_0 minus 8. v_loadn_*: the first n < VL values only. */
V_INLINE vf v_load_f16(const void *p)
{
    return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p));
}
V_INLINE vf v_load_bf16(const void *p)
{
    const __m512i x = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)p));
    return _mm512_castsi512_ps(_mm512_slli_epi32(x, 16));
}
V_INLINE vf v_load_i8(const void *p)
{
    return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128((const __m128i *)p)));
}
/* Q4_0 by table: vpermps reads only the low 4 bits of each index, so a
   nibble needs neither a mask nor an int-to-float conversion, and a table
   scaled by the block's d no multiply (Xeon of the Emerald Rapids class,
   32/8 heads, d = 128, paired: Q4_0 decode of 32768 keys from memory took
   0.87 of the time, of 1024 keys in L2 0.85; prefill n = 1024 0.99). */
V_INLINE vf v_q4_minus8(void)
{
    return _mm512_setr_ps(-8, -7, -6, -5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 6, 7);
}
V_INLINE vf v_q4_table(float d) { return _mm512_mul_ps(v_q4_minus8(), _mm512_set1_ps(d)); }
V_INLINE vf v_q4_lookup(const void *p, int high, vf table)
{
    __m512i x = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)p));
    if (high)
        x = _mm512_srli_epi32(x, 4);
    return _mm512_permutexvar_ps(x, table);
}
#define v_q4_lookup v_q4_lookup
V_INLINE vf v_load_q4(const void *p, int high) { return v_q4_lookup(p, high, v_q4_minus8()); }
V_INLINE vf v_loadn_f16(const void *p, size_t n)
{
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(v_tailmask(n), p));
}
V_INLINE vf v_loadn_bf16(const void *p, size_t n)
{
    const __m512i x = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(v_tailmask(n), p));
    return _mm512_castsi512_ps(_mm512_slli_epi32(x, 16));
}

#include "simd/exp_tanh.h"

#endif

/*
 * The AVX2 + FMA (+ F16C) vocabulary of 8-lane vector operations that
 * kernels/x86/kernels_tmpl.h is written in (avx2.c includes it once). The
 * fused kernels' exp and tanh are simd/exp_tanh.h's, inline; the stage
 * softmax's exp (v_exp_sleef) is SLEEF's 1-ULP AVX2 version.
 */
#ifndef QKV_AVX2_VOCAB_H
#define QKV_AVX2_VOCAB_H

#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <string.h>
#include <sleef.h>

#include "simd/unroll.h"

#define VL 8

/* Register blocking of the one microkernel (C := pre·C + A·B, see the
   template), BLIS haswell style: 6 rows × 2 vectors = 12 of the 16 ymm
   registers hold C, 2 the row of B, 1 the broadcast of A. Per step 6
   broadcasts + 2 loads feed 12 FMAs. */
#define GEMM_MR 6
#define GEMM_NV 2
#define GEMM_TILE 6x16

/* The decode P·V of a Q8_0/Q4_0 V folds the block scales into the
   weights (see pv_weights in the template). */
#define PV_FOLD_SCALES 1

/* scores: a packed Kᵀ panel of KC×16 floats is 16 KiB, well inside L1. */
#define SCORES_KC 256
/* weighted_sum: a KC×16 panel of V rows, 16 KiB, reused by every block of
   6 rows of P while it sits in L1. */
#define WSUM_KC 256

typedef __m256 vf;
typedef __m256 vm;         /* all-ones or all-zeros per lane */

#define V_INLINE static inline __attribute__((always_inline))

V_INLINE vf v_zero(void) { return _mm256_setzero_ps(); }
V_INLINE vf v_set1(float x) { return _mm256_set1_ps(x); }
V_INLINE vf v_load(const float *p) { return _mm256_loadu_ps(p); }
V_INLINE void v_store(float *p, vf x) { _mm256_storeu_ps(p, x); }
/* A non-temporal store: p 32-byte aligned, written around the caches. */
V_INLINE void v_stream(float *p, vf x) { _mm256_stream_ps(p, x); }
/* The first n lanes, 1 <= n <= VL: a window into -1,…,-1,0,…,0. */
V_INLINE vm v_tailmask(size_t n)
{
    static const int32_t ones_then_zeros[2 * VL] = {-1, -1, -1, -1, -1, -1, -1, -1,
                                                    0, 0, 0, 0, 0, 0, 0, 0};
    return _mm256_castsi256_ps(_mm256_loadu_si256((const __m256i *)(ones_then_zeros + VL - n)));
}
/* vmaskmovps: masked-off lanes are never touched in memory (no fault past
   a row's end) and read as 0 (v_loadm) or as `fill` (v_loadm_or). */
V_INLINE vf v_loadm(const float *p, vm m) { return _mm256_maskload_ps(p, _mm256_castps_si256(m)); }
V_INLINE vf v_loadm_or(const float *p, vm m, vf fill)
{
    return _mm256_blendv_ps(fill, _mm256_maskload_ps(p, _mm256_castps_si256(m)), m);
}
V_INLINE void v_storem(float *p, vm m, vf x) { _mm256_maskstore_ps(p, _mm256_castps_si256(m), x); }
V_INLINE vf v_add(vf a, vf b) { return _mm256_add_ps(a, b); }
V_INLINE vf v_sub(vf a, vf b) { return _mm256_sub_ps(a, b); }
V_INLINE vf v_mul(vf a, vf b) { return _mm256_mul_ps(a, b); }
V_INLINE vf v_div(vf a, vf b) { return _mm256_div_ps(a, b); }
V_INLINE vf v_fmadd(vf a, vf b, vf c) { return _mm256_fmadd_ps(a, b, c); }
/* max(x, m): when x is NaN the result is m, like the scalar `if (x > max)`. */
V_INLINE vf v_max(vf x, vf m) { return _mm256_max_ps(x, m); }
V_INLINE vm v_gt(vf a, vf b) { return _mm256_cmp_ps(a, b, _CMP_GT_OQ); }
V_INLINE vm v_eq(vf a, vf b) { return _mm256_cmp_ps(a, b, _CMP_EQ_OQ); }
/* Not equal, or unordered (a NaN on either side). */
V_INLINE vm v_ne(vf a, vf b) { return _mm256_cmp_ps(a, b, _CMP_NEQ_UQ); }
V_INLINE vm v_or(vm a, vm b) { return _mm256_or_ps(a, b); }
/* m ? b : a, lane by lane. */
V_INLINE vf v_sel(vm m, vf a, vf b) { return _mm256_blendv_ps(a, b, m); }
V_INLINE unsigned v_bits(vm m) { return (unsigned)_mm256_movemask_ps(m); }
V_INLINE int v_any(vm m) { return v_bits(m) != 0; }
V_INLINE float v_hmax(vf x)
{
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
}
V_INLINE float v_hsum(vf x)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(x), _mm256_extractf128_ps(x, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
/* SLEEF's exp, for the stage softmax (the contract's); the fused kernels
   take simd/exp_tanh.h's v_exp and v_tanh, inline, built on the five
   below. */
V_INLINE vf v_exp_sleef(vf x) { return Sleef_expf8_u10avx2(x); }
V_INLINE vf v_abs(vf x) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), x); }
/* |m| with the sign of s (m's sign bit must be clear). */
V_INLINE vf v_copysign(vf m, vf s) { return _mm256_or_ps(m, _mm256_and_ps(_mm256_set1_ps(-0.0f), s)); }
/* x clamped to [lo, hi], NaN kept: min and max return their second
   operand when either is NaN. */
V_INLINE vf v_clamp(vf x, vf lo, vf hi) { return _mm256_min_ps(hi, _mm256_max_ps(lo, x)); }
V_INLINE vf v_round(vf x) { return _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
/* p · 2^n for an integral n in [-150, 128], as simd/exp_tanh.h has it: the two
   factors 2^(n/2) and 2^(n - n/2) are normal floats, and p · 2^(n/2) is
   exact (p is within [1/2, 2]), so only the last product rounds, once,
   as AVX-512's vscalefps does (AVX2 has no scaling instruction). */
V_INLINE vf v_scale2(vf p, vf n)
{
    const __m256i ni = _mm256_cvtps_epi32(n), half = _mm256_srai_epi32(ni, 1);
    const __m256i bias = _mm256_set1_epi32(127);
    const vf a = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(half, bias), 23));
    const vf b = _mm256_castsi256_ps(
        _mm256_slli_epi32(_mm256_add_epi32(_mm256_sub_epi32(ni, half), bias), 23));
    return _mm256_mul_ps(_mm256_mul_ps(p, a), b);
}

/* p · 2^n where the product is a normal float (n integral, p in [1/2, 2]):
   n added to p's exponent field, exact. */
V_INLINE vf v_scale2_normal(vf p, vf n)
{
    const __m256i e = _mm256_slli_epi32(_mm256_cvtps_epi32(n), 23);
    return _mm256_castsi256_ps(_mm256_add_epi32(_mm256_castps_si256(p), e));
}
/* Every lane of a below c (a NaN is not): the signs of a - c, all set.
   No comparison: on Zen 4 vcmpps takes an FMA pipe, vsubps an adder. */
V_INLINE int v_all_below(vf a, vf c) { return _mm256_movemask_ps(_mm256_sub_ps(a, c)) == 0xff; }

/* x, kept in a register: the empty asm may have changed it, so the
   compiler cannot fold the load that made x into every instruction that
   uses it. The decode dot products of a 4-row job load a vector of each Q
   row and use it for 2 keys; short of the 16 ymm registers, gcc 12 read Q
   again for each FMA, 10 loads to 8 FMAs (see X86_NAME(q_vec)). */
V_INLINE vf v_pin(vf x)
{
    __asm__("" : "+x"(x));
    return x;
}

/* (float)(p[i] + j), exactly as the scalar code converts a key distance. */
V_INLINE vf v_i32_to_f(const int32_t *p, int32_t j)
{
    return _mm256_cvtepi32_ps(
        _mm256_add_epi32(_mm256_loadu_si256((const __m256i *)p), _mm256_set1_epi32(j)));
}

/* Lane i = the sum of the lanes of x[i], for VL vectors at once: a
   transposing tree (halves, then two hadds) instead of 8 separate
   horizontal sums. The tree leaves lane i with input 2i and lane 4+i with
   input 2i+1, so the inputs are taken in that order. */
V_INLINE vf v_hsum_lanes(const vf *x)
{
#define XP(i) x[((i) % 2) * 4 + (i) / 2]
    vf y[4];
    for (int i = 0; i < 4; i++)
        y[i] = _mm256_add_ps(_mm256_permute2f128_ps(XP(2 * i), XP(2 * i + 1), 0x20),
                             _mm256_permute2f128_ps(XP(2 * i), XP(2 * i + 1), 0x31));
#undef XP
    return _mm256_hadd_ps(_mm256_hadd_ps(y[0], y[1]), _mm256_hadd_ps(y[2], y[3]));
}

/* Lanes 4k + r, for all k, combined over k: every group of 4 lanes ends up
   holding the max (sum) of its row r across the groups. */
V_INLINE vf v_fold4_max(vf x) { return _mm256_max_ps(x, _mm256_permute2f128_ps(x, x, 1)); }
V_INLINE vf v_fold4_add(vf x) { return _mm256_add_ps(x, _mm256_permute2f128_ps(x, x, 1)); }
/* Lanes 2k + r likewise (the decode form of 2 rows): the pairs of each
   group of 4 combined, then the groups. */
V_INLINE vf v_fold2_max(vf x) { return v_fold4_max(_mm256_max_ps(x, _mm256_permute_ps(x, 0x4E))); }
V_INLINE vf v_fold2_add(vf x) { return v_fold4_add(_mm256_add_ps(x, _mm256_permute_ps(x, 0x4E))); }
/* Lanes 8k + r likewise (simd/attention.h's 8-row decode form): one group. */
#define SIMD_ROWS8 1
V_INLINE vf v_fold8_max(vf x) { return x; }
V_INLINE vf v_fold8_add(vf x) { return x; }

/* x[i] = row i of an 8 × 8 block in, column i out. Pairs of rows are
   interleaved (floats, then float pairs) so that each 128-bit half holds a
   4 × 4 sub-block transposed, then the halves are swapped into place: 24
   shuffles in all. */
V_INLINE void v_transpose(vf *x)
{
    vf t[8], u[8];
SIMD_UNROLL
    for (int i = 0; i < 8; i += 2) {
        t[i] = _mm256_unpacklo_ps(x[i], x[i + 1]);
        t[i + 1] = _mm256_unpackhi_ps(x[i], x[i + 1]);
    }
    /* u[4k + c], half L: rows 4k..4k+3 of column 4L + c. */
SIMD_UNROLL
    for (int k = 0; k < 8; k += 4) {
        const __m256d a = _mm256_castps_pd(t[k]), b = _mm256_castps_pd(t[k + 1]);
        const __m256d c = _mm256_castps_pd(t[k + 2]), d = _mm256_castps_pd(t[k + 3]);
        u[k] = _mm256_castpd_ps(_mm256_unpacklo_pd(a, c));
        u[k + 1] = _mm256_castpd_ps(_mm256_unpackhi_pd(a, c));
        u[k + 2] = _mm256_castpd_ps(_mm256_unpacklo_pd(b, d));
        u[k + 3] = _mm256_castpd_ps(_mm256_unpackhi_pd(b, d));
    }
SIMD_UNROLL
    for (int c = 0; c < 4; c++) {
        x[c] = _mm256_permute2f128_ps(u[c], u[4 + c], 0x20);
        x[4 + c] = _mm256_permute2f128_ps(u[c], u[4 + c], 0x31);
    }
}

/* Lanes i with lo[i] <= j < hi[i]. */
V_INLINE vm v_in_range(const int32_t *lo, const int32_t *hi, int32_t j)
{
    const __m256i vj = _mm256_set1_epi32(j);
    const __m256i before = _mm256_cmpgt_epi32(_mm256_loadu_si256((const __m256i *)lo), vj);
    const __m256i inside = _mm256_cmpgt_epi32(_mm256_loadu_si256((const __m256i *)hi), vj);
    return _mm256_castsi256_ps(_mm256_andnot_si256(before, inside));
}

/* VL stored values widened exactly to f32, for the decode kernels that
   read K and V in place: f16, bf16 (a shift), the int8 of Q8_0, the
   nibbles of Q4_0 minus 8. v_loadn_*: the first n < VL values only,
   through a buffer (AVX2 has no 16-bit masked load). */
V_INLINE vf v_load_f16(const void *p)
{
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
}
/* bf16 is the high half of an f32: both 128-bit lanes get the 8 values
   (a load alone) and each lane's byte shuffle puts its 4 as the high
   halves of its 4 floats, the low halves zero: one shuffle where widening
   then shifting took two. */
V_INLINE vf v_load_bf16(const void *p)
{
    const __m256i high = _mm256_setr_epi8(-1, -1, 0, 1, -1, -1, 2, 3, -1, -1, 4, 5, -1, -1, 6, 7,
                                          -1, -1, 8, 9, -1, -1, 10, 11, -1, -1, 12, 13, -1, -1, 14, 15);
    const __m256i x = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)p));
    return _mm256_castsi256_ps(_mm256_shuffle_epi8(x, high));
}
V_INLINE vf v_load_i8(const void *p)
{
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)p)));
}
V_INLINE vf v_load_q4(const void *p, int high)
{
    __m256i x = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)p));
    if (high)
        x = _mm256_srli_epi32(x, 4);
    x = _mm256_sub_epi32(_mm256_and_si256(x, _mm256_set1_epi32(15)), _mm256_set1_epi32(8));
    return _mm256_cvtepi32_ps(x);
}
V_INLINE vf v_loadn_f16(const void *p, size_t n)
{
    uint16_t h[8] = {0};
    memcpy(h, p, 2 * n);
    return v_load_f16(h);
}
V_INLINE vf v_loadn_bf16(const void *p, size_t n)
{
    uint16_t h[8] = {0};
    memcpy(h, p, 2 * n);
    return v_load_bf16(h);
}

#include "simd/exp_tanh.h"

#endif

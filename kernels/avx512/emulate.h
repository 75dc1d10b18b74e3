/*
 * The AVX-512 intrinsics the x86 kernels use, emulated in C on AVX2 (a test
 * build only: tests/meson.build compiles avx512.c, avx512bf16.c and amx.c
 * with QKV_AVX512_EMULATE and AVX2 flags, and checkasm runs them as
 * avx512-emu, avx512bf16-emu and amx-emu on any CPU with AVX2, FMA and
 * F16C). So the AVX-512 template's logic (its 16-lane blocking, masks,
 * decode forms, the bf16 packing and the AMX driver) is tested where no
 * AVX-512 unit exists; its speed, and the hardware's own bits, are not.
 *
 * Each emulation does what Intel's intrinsics guide says the instruction
 * does, lane by lane; where an AVX2 instruction has the same per-lane
 * semantics (add, mul, FMA, max, compares, conversions) it does each
 * 256-bit half with it, so the results are the same bits. Masked loads and
 * stores touch only the lanes whose bit is set, as the hardware does (no
 * access past a row's end). The names are #defined onto the emulations
 * after <immintrin.h>, so the kernels' source is the one the real build
 * compiles. VDPBF16PS follows the SDM's pseudo-code (odd pair, then even,
 * each step rounded, inputs and results denormal-flushed), as
 * kernels/amx/tile.h does for TDPBF16PS. The build has no AVX512_BF16
 * flag, so bf16_tmpl.h packs bf16 with its integer rounding there (the same
 * rounding as the vcvtne2ps2bf16 the real avx512bf16 build uses, which is
 * not emulated).
 */
#ifndef QKV_AVX512_EMULATE_H
#define QKV_AVX512_EMULATE_H

#include <immintrin.h>
#include <math.h>
#include <sleef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define QE_INLINE static inline __attribute__((always_inline))

typedef union {
    __m512 ps;
    __m512i si;
    __m512d pd;
    __m256 h[2];
    __m256i hi[2];
    float f[16];
    int32_t i[16];
    uint32_t u[16];
    int16_t w[32];
    uint16_t uw[32];
    double d[8];
    float q[4][4];   /* 128-bit lanes of floats */
} qe512;

QE_INLINE qe512 qe_ps(__m512 x) { qe512 r; r.ps = x; return r; }
QE_INLINE qe512 qe_si(__m512i x) { qe512 r; r.si = x; return r; }

/* ---- set, load, store ------------------------------------------------------ */

QE_INLINE __m512 qe_setzero_ps(void) { qe512 r; memset(&r, 0, sizeof r); return r.ps; }
QE_INLINE __m512i qe_setzero_si512(void) { qe512 r; memset(&r, 0, sizeof r); return r.si; }
QE_INLINE __m512 qe_set1_ps(float x)
{
    qe512 r;
    r.h[0] = r.h[1] = _mm256_set1_ps(x);
    return r.ps;
}
QE_INLINE __m512i qe_set1_epi32(int x)
{
    qe512 r;
    r.hi[0] = r.hi[1] = _mm256_set1_epi32(x);
    return r.si;
}
QE_INLINE __m512i qe_set1_epi16(short x)
{
    qe512 r;
    r.hi[0] = r.hi[1] = _mm256_set1_epi16(x);
    return r.si;
}
/* Arguments from the lowest lane up, as _mm512_setr_ps. */
QE_INLINE __m512 qe_setr_ps(float e0, float e1, float e2, float e3, float e4, float e5, float e6,
                            float e7, float e8, float e9, float e10, float e11, float e12,
                            float e13, float e14, float e15)
{
    const float v[16] = {e0, e1, e2, e3, e4, e5, e6, e7, e8, e9, e10, e11, e12, e13, e14, e15};
    qe512 r;
    memcpy(r.f, v, sizeof v);
    return r.ps;
}
/* Arguments from the highest lane down, as _mm512_set_*. */
QE_INLINE __m512i qe_set_epi32(int e15, int e14, int e13, int e12, int e11, int e10, int e9,
                               int e8, int e7, int e6, int e5, int e4, int e3, int e2, int e1,
                               int e0)
{
    const int32_t v[16] = {e0, e1, e2, e3, e4, e5, e6, e7, e8, e9, e10, e11, e12, e13, e14, e15};
    qe512 r;
    memcpy(r.i, v, sizeof v);
    return r.si;
}
QE_INLINE __m512i qe_set_epi16(short e31, short e30, short e29, short e28, short e27, short e26,
                               short e25, short e24, short e23, short e22, short e21, short e20,
                               short e19, short e18, short e17, short e16, short e15, short e14,
                               short e13, short e12, short e11, short e10, short e9, short e8,
                               short e7, short e6, short e5, short e4, short e3, short e2,
                               short e1, short e0)
{
    const int16_t v[32] = {e0,  e1,  e2,  e3,  e4,  e5,  e6,  e7,  e8,  e9,  e10,
                           e11, e12, e13, e14, e15, e16, e17, e18, e19, e20, e21,
                           e22, e23, e24, e25, e26, e27, e28, e29, e30, e31};
    qe512 r;
    memcpy(r.w, v, sizeof v);
    return r.si;
}
QE_INLINE __m512 qe_loadu_ps(const void *p) { qe512 r; memcpy(&r, p, 64); return r.ps; }
QE_INLINE void qe_storeu_ps(void *p, __m512 x) { memcpy(p, &x, 64); }
/* The hardware faults on an address off a 64-byte boundary: so does this. */
QE_INLINE void qe_stream_ps(void *p, __m512 x)
{
    if ((uintptr_t)p % 64)
        abort();
    memcpy(p, &x, 64);
}
QE_INLINE __m512i qe_loadu_si512(const void *p) { qe512 r; memcpy(&r, p, 64); return r.si; }
QE_INLINE void qe_storeu_si512(void *p, __m512i x) { memcpy(p, &x, 64); }

/* Masked: only the lanes whose bit is set are read or written. */
QE_INLINE __m512 qe_mask_loadu_ps(__m512 src, __mmask16 k, const void *p)
{
    qe512 r = qe_ps(src);
    const float *f = (const float *)p;
    for (int i = 0; i < 16; i++)
        if ((k >> i) & 1)
            memcpy(&r.f[i], f + i, 4);
    return r.ps;
}
QE_INLINE __m512 qe_maskz_loadu_ps(__mmask16 k, const void *p)
{
    return qe_mask_loadu_ps(qe_setzero_ps(), k, p);
}
QE_INLINE void qe_mask_storeu_ps(void *p, __mmask16 k, __m512 x)
{
    const qe512 a = qe_ps(x);
    float *f = (float *)p;
    for (int i = 0; i < 16; i++)
        if ((k >> i) & 1)
            memcpy(f + i, &a.f[i], 4);
}
QE_INLINE __m512i qe_maskz_loadu_epi16(__mmask32 k, const void *p)
{
    qe512 r = qe_si(qe_setzero_si512());
    const int16_t *s = (const int16_t *)p;
    for (int i = 0; i < 32; i++)
        if ((k >> i) & 1)
            memcpy(&r.w[i], s + i, 2);
    return r.si;
}
QE_INLINE void qe_mask_storeu_epi16(void *p, __mmask32 k, __m512i x)
{
    const qe512 a = qe_si(x);
    int16_t *d = (int16_t *)p;
    for (int i = 0; i < 32; i++)
        if ((k >> i) & 1)
            memcpy(d + i, &a.w[i], 2);
}
QE_INLINE __m256i qe256_maskz_loadu_epi16(__mmask16 k, const void *p)
{
    int16_t w[16] = {0};
    const int16_t *s = (const int16_t *)p;
    for (int i = 0; i < 16; i++)
        if ((k >> i) & 1)
            memcpy(&w[i], s + i, 2);
    __m256i r;
    memcpy(&r, w, 32);
    return r;
}
QE_INLINE void qe256_mask_storeu_epi16(void *p, __mmask16 k, __m256i x)
{
    int16_t w[16];
    memcpy(w, &x, 32);
    int16_t *d = (int16_t *)p;
    for (int i = 0; i < 16; i++)
        if ((k >> i) & 1)
            memcpy(d + i, &w[i], 2);
}

/* ---- float arithmetic: each half by the AVX2 instruction of the same
   per-lane semantics ---------------------------------------------------------- */

#define QE_HALVES2(name, op, T, F)                                                       \
    QE_INLINE T name(T a, T b)                                                           \
    {                                                                                    \
        qe512 x, y, r;                                                                   \
        x.F = a;                                                                         \
        y.F = b;                                                                         \
        r.h[0] = op(x.h[0], y.h[0]);                                                     \
        r.h[1] = op(x.h[1], y.h[1]);                                                     \
        return r.F;                                                                      \
    }
QE_HALVES2(qe_add_ps, _mm256_add_ps, __m512, ps)
QE_HALVES2(qe_sub_ps, _mm256_sub_ps, __m512, ps)
QE_HALVES2(qe_mul_ps, _mm256_mul_ps, __m512, ps)
QE_HALVES2(qe_div_ps, _mm256_div_ps, __m512, ps)
/* max, min: the second operand where either is NaN, as vmaxps, vminps. */
QE_HALVES2(qe_max_ps, _mm256_max_ps, __m512, ps)
QE_HALVES2(qe_min_ps, _mm256_min_ps, __m512, ps)
#undef QE_HALVES2

#define QE_IHALVES2(name, op)                                                            \
    QE_INLINE __m512i name(__m512i a, __m512i b)                                         \
    {                                                                                    \
        qe512 x, y, r;                                                                   \
        x.si = a;                                                                        \
        y.si = b;                                                                        \
        r.hi[0] = op(x.hi[0], y.hi[0]);                                                  \
        r.hi[1] = op(x.hi[1], y.hi[1]);                                                  \
        return r.si;                                                                     \
    }
QE_IHALVES2(qe_add_epi32, _mm256_add_epi32)
QE_IHALVES2(qe_sub_epi32, _mm256_sub_epi32)
QE_IHALVES2(qe_add_epi16, _mm256_add_epi16)
QE_IHALVES2(qe_mullo_epi32, _mm256_mullo_epi32)
QE_IHALVES2(qe_and_si512, _mm256_and_si256)
QE_IHALVES2(qe_or_si512, _mm256_or_si256)
QE_IHALVES2(qe_min_epi32, _mm256_min_epi32)
QE_IHALVES2(qe_max_epu32, _mm256_max_epu32)
#undef QE_IHALVES2

QE_INLINE __m512 qe_fmadd_ps(__m512 a, __m512 b, __m512 c)
{
    qe512 x = qe_ps(a), y = qe_ps(b), z = qe_ps(c), r;
    r.h[0] = _mm256_fmadd_ps(x.h[0], y.h[0], z.h[0]);
    r.h[1] = _mm256_fmadd_ps(x.h[1], y.h[1], z.h[1]);
    return r.ps;
}
QE_INLINE __m512 qe_abs_ps(__m512 a)
{
    return qe_si(qe_and_si512(qe_ps(a).si, qe_set1_epi32(0x7fffffff))).ps;
}

/* Shifts by a count that need not be a literal here (the vector-count
   forms); counts past 31 give 0, or the sign for srai, as the immediate
   forms do. */
#define QE_SHIFT(name, op)                                                               \
    QE_INLINE __m512i name(__m512i a, unsigned n)                                        \
    {                                                                                    \
        qe512 x = qe_si(a), r;                                                           \
        const __m128i c = _mm_cvtsi32_si128((int)n);                                     \
        r.hi[0] = op(x.hi[0], c);                                                        \
        r.hi[1] = op(x.hi[1], c);                                                        \
        return r.si;                                                                     \
    }
QE_SHIFT(qe_slli_epi32, _mm256_sll_epi32)
QE_SHIFT(qe_srli_epi32, _mm256_srl_epi32)
QE_SHIFT(qe_srai_epi32, _mm256_sra_epi32)
#undef QE_SHIFT

/* ---- compares to masks --------------------------------------------------------- */

QE_INLINE __mmask16 qe_mask_of(qe512 r)   /* lanes all-ones -> bits */
{
    return (__mmask16)((unsigned)_mm256_movemask_ps(r.h[0]) |
                       ((unsigned)_mm256_movemask_ps(r.h[1]) << 8));
}
/* The predicates the kernels use; vcmpps takes its predicate as an
   immediate, so each is spelled out. */
#define QE_CMP_CASE(P)                                                                   \
    case P:                                                                              \
        r.h[0] = _mm256_cmp_ps(x.h[0], y.h[0], P);                                       \
        r.h[1] = _mm256_cmp_ps(x.h[1], y.h[1], P);                                       \
        break;
QE_INLINE __mmask16 qe_cmp_ps_mask(__m512 a, __m512 b, int p)
{
    qe512 x = qe_ps(a), y = qe_ps(b), r;
    switch (p) {
        QE_CMP_CASE(_CMP_EQ_OQ)
        QE_CMP_CASE(_CMP_LT_OQ)
        QE_CMP_CASE(_CMP_LE_OQ)
        QE_CMP_CASE(_CMP_GT_OQ)
        QE_CMP_CASE(_CMP_GE_OQ)
        QE_CMP_CASE(_CMP_NEQ_UQ)
        QE_CMP_CASE(_CMP_UNORD_Q)
    default:
        abort();   /* a predicate this emulation does not know yet */
    }
    return qe_mask_of(r);
}
#undef QE_CMP_CASE

/* Integer compares and tests, lane by lane: 16 dwords or 32 words. */
#define QE_ICMP(name, M, lanes, expr)                                                    \
    QE_INLINE M name(__m512i a, __m512i b)                                               \
    {                                                                                    \
        const qe512 x = qe_si(a), y = qe_si(b);                                          \
        uint32_t k = 0;                                                                  \
        for (int i = 0; i < (lanes); i++)                                                \
            k |= (uint32_t)(expr) << i;                                                  \
        return (M)k;                                                                     \
    }
QE_ICMP(qe_cmpeq_epi32_mask, __mmask16, 16, x.i[i] == y.i[i])
QE_ICMP(qe_cmpgt_epi32_mask, __mmask16, 16, x.i[i] > y.i[i])
QE_ICMP(qe_cmple_epi32_mask, __mmask16, 16, x.i[i] <= y.i[i])
QE_ICMP(qe_cmpgt_epu32_mask, __mmask16, 16, x.u[i] > y.u[i])
QE_ICMP(qe_testn_epi32_mask, __mmask16, 16, (x.u[i] & y.u[i]) == 0)
QE_ICMP(qe_cmpeq_epi16_mask, __mmask32, 32, x.uw[i] == y.uw[i])
QE_ICMP(qe_test_epi16_mask, __mmask32, 32, (x.uw[i] & y.uw[i]) != 0)
QE_ICMP(qe_testn_epi16_mask, __mmask32, 32, (x.uw[i] & y.uw[i]) == 0)
#undef QE_ICMP

/* ---- masked moves and blends ------------------------------------------------------ */

QE_INLINE __m512 qe_mask_blend_ps(__mmask16 k, __m512 a, __m512 b)
{
    qe512 x = qe_ps(a);
    const qe512 y = qe_ps(b);
    for (int i = 0; i < 16; i++)
        if ((k >> i) & 1)
            x.f[i] = y.f[i];
    return x.ps;
}
QE_INLINE __m512i qe_mask_mov_epi32(__m512i src, __mmask16 k, __m512i a)
{
    qe512 r = qe_si(src);
    const qe512 x = qe_si(a);
    for (int i = 0; i < 16; i++)
        if ((k >> i) & 1)
            r.u[i] = x.u[i];
    return r.si;
}
QE_INLINE __m512i qe_mask_or_epi32(__m512i src, __mmask16 k, __m512i a, __m512i b)
{
    return qe_mask_mov_epi32(src, k, qe_or_si512(a, b));
}
QE_INLINE __m512i qe_mask_add_epi32(__m512i src, __mmask16 k, __m512i a, __m512i b)
{
    return qe_mask_mov_epi32(src, k, qe_add_epi32(a, b));
}

/* ---- reductions, in the order of GCC's own sequences: halves, quarters, then
   within 128 bits ----------------------------------------------------------------- */

QE_INLINE float qe_reduce_add_ps(__m512 a)
{
    const qe512 x = qe_ps(a);
    const __m256 t = _mm256_add_ps(x.h[1], x.h[0]);
    const __m128 u = _mm_add_ps(_mm256_extractf128_ps(t, 1), _mm256_castps256_ps128(t));
    const __m128 v = _mm_add_ps(u, _mm_shuffle_ps(u, u, _MM_SHUFFLE(1, 0, 3, 2)));
    return _mm_cvtss_f32(v) + _mm_cvtss_f32(_mm_shuffle_ps(v, v, _MM_SHUFFLE(0, 1, 0, 1)));
}
QE_INLINE float qe_reduce_max_ps(__m512 a)
{
    const qe512 x = qe_ps(a);
    const __m256 t = _mm256_max_ps(x.h[1], x.h[0]);
    const __m128 u = _mm_max_ps(_mm256_extractf128_ps(t, 1), _mm256_castps256_ps128(t));
    const __m128 v = _mm_max_ps(u, _mm_shuffle_ps(u, u, _MM_SHUFFLE(1, 0, 3, 2)));
    return _mm_cvtss_f32(_mm_max_ss(v, _mm_shuffle_ps(v, v, _MM_SHUFFLE(0, 1, 0, 1))));
}
QE_INLINE unsigned qe_reduce_max_epu32(__m512i a)
{
    const qe512 x = qe_si(a);
    unsigned m = x.u[0];
    for (int i = 1; i < 16; i++)
        m = x.u[i] > m ? x.u[i] : m;
    return m;
}

/* ---- shuffles and permutes ----------------------------------------------------------- */

/* 128-bit lanes: two of a (imm bits 1:0, 3:2), two of b (5:4, 7:6). */
QE_INLINE __m512 qe_shuffle_f32x4(__m512 a, __m512 b, int imm)
{
    const qe512 x = qe_ps(a), y = qe_ps(b);
    qe512 r;
    memcpy(r.q[0], x.q[imm & 3], 16);
    memcpy(r.q[1], x.q[(imm >> 2) & 3], 16);
    memcpy(r.q[2], y.q[(imm >> 4) & 3], 16);
    memcpy(r.q[3], y.q[(imm >> 6) & 3], 16);
    return r.ps;
}
/* Within each 128-bit lane: (a0, b0, a1, b1) and (a2, b2, a3, b3). */
QE_INLINE __m512 qe_unpack_ps(__m512 a, __m512 b, int high)
{
    const qe512 x = qe_ps(a), y = qe_ps(b);
    qe512 r;
    for (int l = 0; l < 4; l++) {
        const int s = high ? 2 : 0;
        r.q[l][0] = x.q[l][s];
        r.q[l][1] = y.q[l][s];
        r.q[l][2] = x.q[l][s + 1];
        r.q[l][3] = y.q[l][s + 1];
    }
    return r.ps;
}
QE_INLINE __m512 qe_unpacklo_ps(__m512 a, __m512 b) { return qe_unpack_ps(a, b, 0); }
QE_INLINE __m512 qe_unpackhi_ps(__m512 a, __m512 b) { return qe_unpack_ps(a, b, 1); }
/* Within each 128-bit lane of two doubles: (a0, b0) and (a1, b1). */
QE_INLINE __m512d qe_unpack_pd(__m512d a, __m512d b, int high)
{
    qe512 x, y, r;
    x.pd = a;
    y.pd = b;
    for (int l = 0; l < 4; l++) {
        r.d[2 * l] = x.d[2 * l + high];
        r.d[2 * l + 1] = y.d[2 * l + high];
    }
    return r.pd;
}
QE_INLINE __m512d qe_unpacklo_pd(__m512d a, __m512d b) { return qe_unpack_pd(a, b, 0); }
QE_INLINE __m512d qe_unpackhi_pd(__m512d a, __m512d b) { return qe_unpack_pd(a, b, 1); }
QE_INLINE __m512 qe_permutexvar_ps(__m512i idx, __m512 a)
{
    const qe512 k = qe_si(idx), x = qe_ps(a);
    qe512 r;
    for (int i = 0; i < 16; i++)
        r.f[i] = x.f[k.u[i] & 15];
    return r.ps;
}
/* Within each 128-bit lane, lane i takes lane (imm >> 2i) & 3. */
QE_INLINE __m512 qe_permute_ps(__m512 a, int imm)
{
    const qe512 x = qe_ps(a);
    qe512 r;
    for (int i = 0; i < 16; i++)
        r.f[i] = x.f[(i & ~3) | ((imm >> 2 * (i & 3)) & 3)];
    return r.ps;
}
QE_INLINE __m512 qe_permutex2var_ps(__m512 a, __m512i idx, __m512 b)
{
    const qe512 k = qe_si(idx), x = qe_ps(a), y = qe_ps(b);
    qe512 r;
    for (int i = 0; i < 16; i++)
        r.f[i] = (k.u[i] & 16) ? y.f[k.u[i] & 15] : x.f[k.u[i] & 15];
    return r.ps;
}
QE_INLINE __m512i qe_permutexvar_epi16(__m512i idx, __m512i a)
{
    const qe512 k = qe_si(idx), x = qe_si(a);
    qe512 r;
    for (int i = 0; i < 32; i++)
        r.uw[i] = x.uw[k.uw[i] & 31];
    return r.si;
}
/* Word i: index bit 5 picks b over a, bits 4:0 the word. */
QE_INLINE __m512i qe_permutex2var_epi16(__m512i a, __m512i idx, __m512i b)
{
    const qe512 k = qe_si(idx), x = qe_si(a), y = qe_si(b);
    qe512 r;
    for (int i = 0; i < 32; i++)
        r.uw[i] = (k.uw[i] & 32) ? y.uw[k.uw[i] & 31] : x.uw[k.uw[i] & 31];
    return r.si;
}
QE_INLINE __m512i qe_inserti64x4(__m512i a, __m256i b, int imm)
{
    qe512 r = qe_si(a);
    r.hi[imm & 1] = b;
    return r.si;
}

/* ---- casts (the bits as they are) ----------------------------------------------------- */

QE_INLINE __m512d qe_castps_pd(__m512 a) { qe512 r; r.ps = a; return r.pd; }
QE_INLINE __m512 qe_castpd_ps(__m512d a) { qe512 r; r.pd = a; return r.ps; }
QE_INLINE __m512i qe_castps_si512(__m512 a) { return qe_ps(a).si; }
QE_INLINE __m512 qe_castsi512_ps(__m512i a) { return qe_si(a).ps; }
/* The upper half is undefined in the real intrinsic; zero here. */
QE_INLINE __m512i qe_castsi256_si512(__m256i a)
{
    qe512 r = qe_si(qe_setzero_si512());
    r.hi[0] = a;
    return r.si;
}

/* ---- conversions ------------------------------------------------------------------------ */

QE_INLINE __m512 qe_cvtph_ps(__m256i a)
{
    qe512 r;
    r.h[0] = _mm256_cvtph_ps(_mm256_castsi256_si128(a));
    r.h[1] = _mm256_cvtph_ps(_mm256_extracti128_si256(a, 1));
    return r.ps;
}
/* vcvtps2ph's rounding is an immediate: the one the kernels use. */
QE_INLINE __m256i qe_cvtps_ph(__m512 a, int rounding)
{
    if (rounding != _MM_FROUND_TO_NEAREST_INT)
        abort();
    const qe512 x = qe_ps(a);
    return _mm256_set_m128i(_mm256_cvtps_ph(x.h[1], _MM_FROUND_TO_NEAREST_INT),
                            _mm256_cvtps_ph(x.h[0], _MM_FROUND_TO_NEAREST_INT));
}
/* vrndscaleps to whole numbers, by the two roundings the kernels use. */
QE_INLINE __m512 qe_roundscale_ps(__m512 a, int imm)
{
    qe512 x = qe_ps(a);
    if (imm == (_MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC)) {
        x.h[0] = _mm256_round_ps(x.h[0], _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
        x.h[1] = _mm256_round_ps(x.h[1], _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    } else if (imm == (_MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)) {
        x.h[0] = _mm256_round_ps(x.h[0], _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        x.h[1] = _mm256_round_ps(x.h[1], _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    } else {
        abort();
    }
    return x.ps;
}
/* vscalefps, a · 2^floor(b), for b finite or NaN (as the kernels give
   it): NaN where either is NaN, else ldexpf, which rounds a subnormal
   result to nearest as the instruction does without DAZ/FTZ. */
QE_INLINE __m512 qe_scalef_ps(__m512 a, __m512 b)
{
    qe512 x = qe_ps(a);
    const qe512 y = qe_ps(b);
    for (int i = 0; i < 16; i++) {
        const float e = y.f[i];
        if (isnan(x.f[i]) || isnan(e)) {
            x.f[i] = NAN;
            continue;
        }
        const float k = floorf(e < -1000.0f ? -1000.0f : e > 1000.0f ? 1000.0f : e);
        x.f[i] = ldexpf(x.f[i], (int)k);
    }
    return x.ps;
}
QE_INLINE __m512 qe_cvtepi32_ps(__m512i a)
{
    const qe512 x = qe_si(a);
    qe512 r;
    r.h[0] = _mm256_cvtepi32_ps(x.hi[0]);
    r.h[1] = _mm256_cvtepi32_ps(x.hi[1]);
    return r.ps;
}
QE_INLINE __m512i qe_cvttps_epi32(__m512 a)
{
    const qe512 x = qe_ps(a);
    qe512 r;
    r.hi[0] = _mm256_cvttps_epi32(x.h[0]);
    r.hi[1] = _mm256_cvttps_epi32(x.h[1]);
    return r.si;
}
QE_INLINE __m512i qe_cvtepi8_epi32(__m128i a)
{
    qe512 r;
    r.hi[0] = _mm256_cvtepi8_epi32(a);
    r.hi[1] = _mm256_cvtepi8_epi32(_mm_srli_si128(a, 8));
    return r.si;
}
QE_INLINE __m512i qe_cvtepu8_epi32(__m128i a)
{
    qe512 r;
    r.hi[0] = _mm256_cvtepu8_epi32(a);
    r.hi[1] = _mm256_cvtepu8_epi32(_mm_srli_si128(a, 8));
    return r.si;
}
QE_INLINE __m512i qe_cvtepu16_epi32(__m256i a)
{
    qe512 r;
    r.hi[0] = _mm256_cvtepu16_epi32(_mm256_castsi256_si128(a));
    r.hi[1] = _mm256_cvtepu16_epi32(_mm256_extracti128_si256(a, 1));
    return r.si;
}
/* Truncating narrowings (vpmovdw, vpmovdb). */
QE_INLINE __m256i qe_cvtepi32_epi16(__m512i a)
{
    const qe512 x = qe_si(a);
    uint16_t w[16];
    for (int i = 0; i < 16; i++)
        w[i] = (uint16_t)x.u[i];
    __m256i r;
    memcpy(&r, w, 32);
    return r;
}
QE_INLINE __m128i qe_cvtepi32_epi8(__m512i a)
{
    const qe512 x = qe_si(a);
    uint8_t b[16];
    for (int i = 0; i < 16; i++)
        b[i] = (uint8_t)x.u[i];
    __m128i r;
    memcpy(&r, b, 16);
    return r;
}
QE_INLINE void qe_mask_cvtepi32_storeu_epi16(void *p, __mmask16 k, __m512i a)
{
    const qe512 x = qe_si(a);
    uint16_t *d = (uint16_t *)p;
    for (int i = 0; i < 16; i++)
        if ((k >> i) & 1) {
            const uint16_t w = (uint16_t)x.u[i];
            memcpy(d + i, &w, 2);
        }
}

/* ---- VDPBF16PS ------------------------------------------------------------------------------ */

QE_INLINE float qe_daz(float x)   /* a subnormal to a zero of its sign */
{
    uint32_t u;
    memcpy(&u, &x, 4);
    if ((u & 0x7f800000u) == 0)
        u &= 0x80000000u;
    memcpy(&x, &u, 4);
    return x;
}
QE_INLINE float qe_bf16(uint16_t h)
{
    const uint32_t u = (uint32_t)h << 16;
    float x;
    memcpy(&x, &u, 4);
    return qe_daz(x);
}
/* src[i] += a.pair[i].hi · b.pair[i].hi, then += the lo pair's product:
   each product exact in f32 (8-bit significands), each sum rounded to
   nearest even, inputs and results flushed when subnormal. The volatile
   keeps the compiler from fusing a product into an FMA. */
QE_INLINE __m512 qe_dpbf16_ps(__m512 src, __m512bh a, __m512bh b)
{
    qe512 r = qe_ps(src), x, y;
    memcpy(&x, &a, 64);
    memcpy(&y, &b, 64);
    for (int i = 0; i < 16; i++) {
        volatile float p1 = qe_bf16(x.uw[2 * i + 1]) * qe_bf16(y.uw[2 * i + 1]);
        float s = qe_daz(qe_daz(r.f[i]) + qe_daz(p1));
        volatile float p0 = qe_bf16(x.uw[2 * i]) * qe_bf16(y.uw[2 * i]);
        r.f[i] = qe_daz(s + qe_daz(p0));
    }
    return r.ps;
}

/* ---- SLEEF: its AVX2 functions on each half (the same algorithm) ---------------- */

QE_INLINE __m512 qe_sleef_expf16(__m512 a)
{
    qe512 x = qe_ps(a);
    x.h[0] = Sleef_expf8_u10avx2(x.h[0]);
    x.h[1] = Sleef_expf8_u10avx2(x.h[1]);
    return x.ps;
}
QE_INLINE __m512 qe_sleef_tanhf16(__m512 a)
{
    qe512 x = qe_ps(a);
    x.h[0] = Sleef_tanhf8_u10avx2(x.h[0]);
    x.h[1] = Sleef_tanhf8_u10avx2(x.h[1]);
    return x.ps;
}

/* ---- the names the kernels use ---------------------------------------------------------- */

#undef _mm512_setzero_ps
#define _mm512_setzero_ps qe_setzero_ps
#undef _mm512_setzero_si512
#define _mm512_setzero_si512 qe_setzero_si512
#undef _mm512_set1_ps
#define _mm512_set1_ps qe_set1_ps
#undef _mm512_set1_epi32
#define _mm512_set1_epi32 qe_set1_epi32
#undef _mm512_set1_epi16
#define _mm512_set1_epi16 qe_set1_epi16
#undef _mm512_setr_ps
#define _mm512_setr_ps qe_setr_ps
#undef _mm512_set_epi32
#define _mm512_set_epi32 qe_set_epi32
#undef _mm512_set_epi16
#define _mm512_set_epi16 qe_set_epi16
#undef _mm512_loadu_ps
#define _mm512_loadu_ps qe_loadu_ps
#undef _mm512_storeu_ps
#define _mm512_storeu_ps qe_storeu_ps
#undef _mm512_stream_ps
#define _mm512_stream_ps qe_stream_ps
#undef _mm512_loadu_si512
#define _mm512_loadu_si512 qe_loadu_si512
#undef _mm512_storeu_si512
#define _mm512_storeu_si512 qe_storeu_si512
#undef _mm512_mask_loadu_ps
#define _mm512_mask_loadu_ps qe_mask_loadu_ps
#undef _mm512_maskz_loadu_ps
#define _mm512_maskz_loadu_ps qe_maskz_loadu_ps
#undef _mm512_mask_storeu_ps
#define _mm512_mask_storeu_ps qe_mask_storeu_ps
#undef _mm512_maskz_loadu_epi16
#define _mm512_maskz_loadu_epi16 qe_maskz_loadu_epi16
#undef _mm512_mask_storeu_epi16
#define _mm512_mask_storeu_epi16 qe_mask_storeu_epi16
#undef _mm256_maskz_loadu_epi16
#define _mm256_maskz_loadu_epi16 qe256_maskz_loadu_epi16
#undef _mm256_mask_storeu_epi16
#define _mm256_mask_storeu_epi16 qe256_mask_storeu_epi16
#undef _mm512_add_ps
#define _mm512_add_ps qe_add_ps
#undef _mm512_sub_ps
#define _mm512_sub_ps qe_sub_ps
#undef _mm512_mul_ps
#define _mm512_mul_ps qe_mul_ps
#undef _mm512_div_ps
#define _mm512_div_ps qe_div_ps
#undef _mm512_max_ps
#define _mm512_max_ps qe_max_ps
#undef _mm512_min_ps
#define _mm512_min_ps qe_min_ps
#undef _mm512_fmadd_ps
#define _mm512_fmadd_ps qe_fmadd_ps
#undef _mm512_abs_ps
#define _mm512_abs_ps qe_abs_ps
#undef _mm512_add_epi32
#define _mm512_add_epi32 qe_add_epi32
#undef _mm512_sub_epi32
#define _mm512_sub_epi32 qe_sub_epi32
#undef _mm512_add_epi16
#define _mm512_add_epi16 qe_add_epi16
#undef _mm512_mullo_epi32
#define _mm512_mullo_epi32 qe_mullo_epi32
#undef _mm512_and_si512
#define _mm512_and_si512 qe_and_si512
#undef _mm512_or_si512
#define _mm512_or_si512 qe_or_si512
#undef _mm512_min_epi32
#define _mm512_min_epi32 qe_min_epi32
#undef _mm512_max_epu32
#define _mm512_max_epu32 qe_max_epu32
#undef _mm512_slli_epi32
#define _mm512_slli_epi32 qe_slli_epi32
#undef _mm512_srli_epi32
#define _mm512_srli_epi32 qe_srli_epi32
#undef _mm512_srai_epi32
#define _mm512_srai_epi32 qe_srai_epi32
#undef _mm512_cmp_ps_mask
#define _mm512_cmp_ps_mask qe_cmp_ps_mask
#undef _mm512_cmpeq_epi32_mask
#define _mm512_cmpeq_epi32_mask qe_cmpeq_epi32_mask
#undef _mm512_cmpgt_epi32_mask
#define _mm512_cmpgt_epi32_mask qe_cmpgt_epi32_mask
#undef _mm512_cmple_epi32_mask
#define _mm512_cmple_epi32_mask qe_cmple_epi32_mask
#undef _mm512_cmpgt_epu32_mask
#define _mm512_cmpgt_epu32_mask qe_cmpgt_epu32_mask
#undef _mm512_testn_epi32_mask
#define _mm512_testn_epi32_mask qe_testn_epi32_mask
#undef _mm512_cmpeq_epi16_mask
#define _mm512_cmpeq_epi16_mask qe_cmpeq_epi16_mask
#undef _mm512_test_epi16_mask
#define _mm512_test_epi16_mask qe_test_epi16_mask
#undef _mm512_testn_epi16_mask
#define _mm512_testn_epi16_mask qe_testn_epi16_mask
#undef _mm512_mask_blend_ps
#define _mm512_mask_blend_ps qe_mask_blend_ps
#undef _mm512_mask_mov_epi32
#define _mm512_mask_mov_epi32 qe_mask_mov_epi32
#undef _mm512_mask_or_epi32
#define _mm512_mask_or_epi32 qe_mask_or_epi32
#undef _mm512_mask_add_epi32
#define _mm512_mask_add_epi32 qe_mask_add_epi32
#undef _mm512_reduce_add_ps
#define _mm512_reduce_add_ps qe_reduce_add_ps
#undef _mm512_reduce_max_ps
#define _mm512_reduce_max_ps qe_reduce_max_ps
#undef _mm512_reduce_max_epu32
#define _mm512_reduce_max_epu32 qe_reduce_max_epu32
#undef _mm512_shuffle_f32x4
#define _mm512_shuffle_f32x4 qe_shuffle_f32x4
#undef _mm512_unpacklo_ps
#define _mm512_unpacklo_ps qe_unpacklo_ps
#undef _mm512_unpackhi_ps
#define _mm512_unpackhi_ps qe_unpackhi_ps
#undef _mm512_unpacklo_pd
#define _mm512_unpacklo_pd qe_unpacklo_pd
#undef _mm512_unpackhi_pd
#define _mm512_unpackhi_pd qe_unpackhi_pd
#undef _mm512_permutexvar_ps
#define _mm512_permutexvar_ps qe_permutexvar_ps
#undef _mm512_permute_ps
#define _mm512_permute_ps qe_permute_ps
#undef _mm512_permutex2var_ps
#define _mm512_permutex2var_ps qe_permutex2var_ps
#undef _mm512_permutexvar_epi16
#define _mm512_permutexvar_epi16 qe_permutexvar_epi16
#undef _mm512_permutex2var_epi16
#define _mm512_permutex2var_epi16 qe_permutex2var_epi16
#undef _mm512_inserti64x4
#define _mm512_inserti64x4 qe_inserti64x4
#undef _mm512_castps_pd
#define _mm512_castps_pd qe_castps_pd
#undef _mm512_castpd_ps
#define _mm512_castpd_ps qe_castpd_ps
#undef _mm512_castps_si512
#define _mm512_castps_si512 qe_castps_si512
#undef _mm512_castsi512_ps
#define _mm512_castsi512_ps qe_castsi512_ps
#undef _mm512_castsi256_si512
#define _mm512_castsi256_si512 qe_castsi256_si512
#undef _mm512_cvtph_ps
#define _mm512_cvtph_ps qe_cvtph_ps
#undef _mm512_cvtps_ph
#define _mm512_cvtps_ph qe_cvtps_ph
#undef _mm512_roundscale_ps
#define _mm512_roundscale_ps qe_roundscale_ps
#undef _mm512_scalef_ps
#define _mm512_scalef_ps qe_scalef_ps
#undef _mm512_cvtepi32_ps
#define _mm512_cvtepi32_ps qe_cvtepi32_ps
#undef _mm512_cvttps_epi32
#define _mm512_cvttps_epi32 qe_cvttps_epi32
#undef _mm512_cvtepi8_epi32
#define _mm512_cvtepi8_epi32 qe_cvtepi8_epi32
#undef _mm512_cvtepu8_epi32
#define _mm512_cvtepu8_epi32 qe_cvtepu8_epi32
#undef _mm512_cvtepu16_epi32
#define _mm512_cvtepu16_epi32 qe_cvtepu16_epi32
#undef _mm512_cvtepi32_epi16
#define _mm512_cvtepi32_epi16 qe_cvtepi32_epi16
#undef _mm512_cvtepi32_epi8
#define _mm512_cvtepi32_epi8 qe_cvtepi32_epi8
#undef _mm512_mask_cvtepi32_storeu_epi16
#define _mm512_mask_cvtepi32_storeu_epi16 qe_mask_cvtepi32_storeu_epi16
#undef _mm512_dpbf16_ps
#define _mm512_dpbf16_ps qe_dpbf16_ps
#undef Sleef_expf16_u10avx512f
#define Sleef_expf16_u10avx512f qe_sleef_expf16
#undef Sleef_tanhf16_u10avx512f
#define Sleef_tanhf16_u10avx512f qe_sleef_tanhf16

#endif

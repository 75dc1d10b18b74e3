/*
 * bf16 tiles for the one fused driver (the SIMD_BF16 hooks of
 * kernels/simd/attention.h), shared by the x86 ISAs that multiply pairs of
 * bf16: avx512bf16.c (vdpbf16ps) and amx.c (tdpbf16ps). This file packs
 * the operands, decides per job what may be rounded, and leaves the
 * multiplying to two kernels of the includer.
 *
 * The includer defines the AVX-512 vocabulary (avx512/vocab.h) and
 * X86_ISA_SUFFIX, then
 *   BF16_DPAD           head_dim padded to a multiple of this in packed Qᵀ
 *                       and converted K rows (2; AMX: 32, a tile row)
 *   BF16_PAIR_PAD       pairs of keys padded to a multiple of this in P and
 *                       V (1; AMX: 16, a tile's depth)
 *   BF16_KROW_PAD       converted K rows padded (zero rows) to this (1; 16)
 *   BF16_KCH            K rows converted at a time (a multiple of the pad)
 *   BF16_K_IN_PLACE(d, n, k0, k1)  whether bf16 K rows [k0, k1) of a tile of
 *                       n keys can be read where they are
 *   BF16_EXTRA(rp)      floats of scratch of its own (b->extra)
 *   BF16_PREP_P(b, npp) after p2 is packed for a tile (AMX: transposes it)
 *   BF16_BEGIN(b), BF16_END(b)   around a job that uses the kernels
 * includes this file, defines the two kernels declared below, and then
 * includes kernels/x86/kernels_tmpl.h, which runs them through the driver.
 *
 * Layouts. A word is two bf16, the lower-addressed (low) half first:
 *   qt2[pp·rp + r] = (Q_r[2pp], Q_r[2pp+1])   dp rows of rp words, zero
 *                    past head_dim and for lanes past the job's rows
 *   K rows         bf16, in place or converted (2·dp values a row): the
 *                    words of a row are its pairs along head_dim
 *   p2[jj·rp + r]  = (P[kmin+2jj][r], P[kmin+2jj+1][r])   along keys
 *   v2[jj·cwp + c] = (V[kmin+2jj][c0+c], V[kmin+2jj+1][c0+c])
 * with zeros for a key past the tile's kmax, a pair past the pad and a
 * column past dv.
 *
 * What is rounded (qkv.h, qkv_fpmath):
 *   STRICT: bf16 Q·Kᵀ only when Q and K are stored as bf16, so that the
 *     products are exact in f32 and only the f32 sums round, as they do on
 *     avx512. Both instructions treat a subnormal input as zero, so Q is
 *     checked once per job and K once per tile: a subnormal sends the job
 *     (Q) or the tile (K) to the f32 microkernels. They also flush a
 *     subnormal sum to zero, which moves a score by less than 2^-126: no
 *     output can show it. P·V stays f32.
 *   BF16: Q, K, P and V are rounded to bf16 (nearest even, as
 *     vcvtne2ps2bf16 does: subnormals count as zero, NaN stays NaN, beyond
 *     bf16's range is infinite), products summed in f32.
 * Hidden keys have the weight -0.0 (see attention.h): exact in bf16 and
 * harmless unless their V row is not finite, which the V packing notices;
 * such a chunk goes through pv_exact_bf16, which skips the -0.0 weights.
 */
#ifndef X86_BF16_TMPL_H
#define X86_BF16_TMPL_H
#else
#error "bf16_tmpl.h is included once per ISA translation unit"
#endif

#include <stdint.h>
#include <string.h>

#define BF16_CAT_(a, b) a##b
#define BF16_CAT(a, b) BF16_CAT_(a, b)
#define BF16_NAME(f) BF16_CAT(f, X86_ISA_SUFFIX)

/* The driver's tile (ATT_BN in attention.h, checked where both are seen),
   and the V columns of one P·V chunk: 128 where the workspace has room,
   else 64. Packing whole rows of V (128 values at d = 128) streams them
   once from cache; in halves the second pass finds them gone (prefill on
   Zen 5, 8 heads, n = 2048, d = 128: 5% of the time; prefetching the
   halves did not help). */
#define BF16_BN 64
#define BF16_CW_MIN 64
#define BF16_CW_MAX 128
#define BF16_UP(n, m) (((n) + (m) - 1) / (m) * (m))
#define BF16_ALIGN(n) BF16_UP((size_t)(n), 16)

typedef struct simd_bf16 {
    int qk, pv;               /* the tiles this job runs in bf16 */
    int strict;               /* K tiles are checked for subnormals */
    size_t d, dp;             /* head_dim; its pairs, padded to BF16_DPAD / 2 */
    size_t rp;                /* lanes (words) of a row of qt2 and p2 */
    uint32_t *qt2;            /* dp × rp */
    uint16_t *k16;            /* BF16_KCH converted K rows of 2·dp */
    float *kf;                /* one K row as f32, for K in another dtype */
    uint32_t *p2;             /* BF16_BN / 2 (padded) × rp */
    uint32_t *v2;             /* the same pairs × cw */
    float *vf;                /* two V rows of a chunk as f32, likewise */
    size_t cw;                /* V columns of a chunk */
    float *extra;             /* BF16_EXTRA(rp) floats for the kernels */
} simd_bf16;

/* The includer's kernels.
   qk_kernel: s[j·rp + r] = post · Σ_pp pair(k + j·ldk, pp) · qt2[pp·rp + r]
   for j < nk (k: bf16 rows, ldk values apart, zero past d or d odd), all rp
   lanes; cmax (or NULL) takes the lane-wise max over those nk rows. Rows
   of s past nk are not its to write (the driver's tile may end there).
   pv_kernel: acc_r[c0 + c] = alpha_r · acc_r[c0 + c] + Σ_jj p2[jj·rp + r] ·
   v2[jj·cwp + c] for r < job->rows, c < nc, over the npp pairs of p2/v2
   (the pairs that row r's keys fall in, the rest add zero). */
static void BF16_NAME(qk_kernel)(const simd_bf16 *b, const uint16_t *k, size_t ldk, size_t nk,
                                 float *s, size_t rp, float post, float *cmax);
static void BF16_NAME(pv_kernel)(const simd_bf16 *b, const qkv_attn_job *job, size_t npp,
                                 size_t kmin, size_t kmax, const int32_t *lo, const int32_t *hi,
                                 const float *alpha, size_t cwp, size_t nc, size_t c0);

/* ---- rounding -------------------------------------------------------------- */

/* x to bf16 as vcvtne2ps2bf16 rounds it: NaN quiet, a subnormal to zero,
   nearest even otherwise (so past bf16's largest value: infinity). */
static inline uint16_t BF16_NAME(bf16_of)(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return (uint16_t)((u >> 16) | 0x40u);
    if ((u & 0x7f800000u) == 0)
        return (uint16_t)((u >> 16) & 0x8000u);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

#ifdef __AVX512BF16__
/* 32 bf16 in order: lo's 16 lanes, then hi's. */
V_INLINE __m512i BF16_NAME(bf16_cvt32)(vf lo, vf hi)
{
    return (__m512i)_mm512_cvtne2ps_pbh(hi, lo);
}
/* 16 words, word i = (lo[i], hi[i]). */
V_INLINE __m512i BF16_NAME(bf16_pack2)(vf lo, vf hi)
{
    const __m512i idx = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24,
                                         8, 23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    return _mm512_permutexvar_epi16(idx, BF16_NAME(bf16_cvt32)(lo, hi));
}
#else
/* Without AVX512_BF16 (the emulated AVX-512 family's test build, which
   runs on any CPU with AVX2): the same rounding in integer lanes, bf16 in
   the low half. */
V_INLINE __m512i BF16_NAME(bf16_round)(vf x)
{
    const __m512i u = _mm512_castps_si512(x);
    const __m512i sign = _mm512_and_si512(u, _mm512_set1_epi32((int)0x80000000u));
    const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
    __m512i r = _mm512_srli_epi32(_mm512_add_epi32(_mm512_add_epi32(u, _mm512_set1_epi32(0x7fff)), lsb), 16);
    const __mmask16 nan = _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q);
    const __mmask16 sub = _mm512_testn_epi32_mask(u, _mm512_set1_epi32(0x7f800000));
    r = _mm512_mask_mov_epi32(r, nan, _mm512_or_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(0x40)));
    return _mm512_mask_mov_epi32(r, sub, _mm512_srli_epi32(sign, 16));
}
V_INLINE __m512i BF16_NAME(bf16_cvt32)(vf lo, vf hi)
{
    const __m256i a = _mm512_cvtepi32_epi16(BF16_NAME(bf16_round)(lo));
    const __m256i b = _mm512_cvtepi32_epi16(BF16_NAME(bf16_round)(hi));
    return _mm512_inserti64x4(_mm512_castsi256_si512(a), b, 1);
}
V_INLINE __m512i BF16_NAME(bf16_pack2)(vf lo, vf hi)
{
    return _mm512_or_si512(BF16_NAME(bf16_round)(lo),
                           _mm512_slli_epi32(BF16_NAME(bf16_round)(hi), 16));
}
#endif

/* Some bf16 of the n at p is subnormal (exponent 0, mantissa not). */
static int BF16_NAME(any_subnormal)(const uint16_t *p, size_t n)
{
    const __m512i e = _mm512_set1_epi16(0x7f80), m = _mm512_set1_epi16(0x007f);
    __mmask32 any = 0;
    for (size_t c = 0; c < n; c += 32) {
        const __mmask32 lm = n - c >= 32 ? ~(__mmask32)0 : (((__mmask32)1 << (n - c)) - 1);
        const __m512i x = _mm512_maskz_loadu_epi16(lm, p + c);
        any |= _mm512_testn_epi16_mask(x, e) & _mm512_test_epi16_mask(x, m);
    }
    return any != 0;
}

/* ---- packing ------------------------------------------------------------- */

/* Values [c, c + n) of a row of Q (q_dtype) as bf16, n <= 32: the stored
   bits of a bf16 row, else widened exactly and rounded. */
static void BF16_NAME(q_part)(const qkv_attn_job *job, const void *q, size_t c, size_t n,
                              uint16_t *out)
{
    if (job->q_dtype == QKV_BF16) {
        memcpy(out, (const uint16_t *)q + c, n * sizeof *out);
        return;
    }
    float part[32];
    const float *f = (const float *)q + c;
    if (job->q_dtype != QKV_F32) {
        job->q_to_f32(n, (const unsigned char *)q + qkv_dtype_bytes(job->q_dtype, c), part);
        f = part;
    }
    for (size_t i = 0; i < n; i++)
        out[i] = BF16_NAME(bf16_of)(f[i]);
}

/* qt2 for the job; 0 when a value would be lost (strict: a subnormal).
   Rows of Q as bf16 words, 16 at a time in `rows` (16 · dp words), then
   transposed in 16 × 16 blocks (as floats: the bits go along unchanged). */
static int BF16_NAME(pack_qt2)(simd_bf16 *b, const qkv_attn_job *job, uint32_t *rows)
{
    const size_t d = b->d, dp = b->dp, rp = b->rp;
    for (size_t r0 = 0; r0 < rp; r0 += 16) {
        memset(rows, 0, 16 * dp * sizeof *rows);
        for (size_t i = 0; i < 16 && r0 + i < job->rows; i++) {
            uint16_t *row = (uint16_t *)(rows + i * dp);
            for (size_t c0 = 0; c0 < d; c0 += 32) {
                const size_t n = d - c0 < 32 ? d - c0 : 32;
                BF16_NAME(q_part)(job, job->row[r0 + i].q, c0, n, row + c0);
                if (b->strict && BF16_NAME(any_subnormal)(row + c0, n))
                    return 0;
            }
        }
        for (size_t p0 = 0; p0 < dp; p0 += 16) {
            const size_t np = dp - p0 < 16 ? dp - p0 : 16;
            vf x[16];
            for (size_t i = 0; i < 16; i++)
                x[i] = v_loadm((const float *)rows + i * dp + p0, v_tailmask(np));
            v_transpose(x);
            for (size_t k = 0; k < np; k++)
                v_store((float *)b->qt2 + (p0 + k) * rp + r0, x[k]);
        }
    }
    return 1;
}

/* Keys [j, j + n) of K as bf16 rows of 2·dp values (zero past d), and zero
   rows up to the pad; the rows may lie in any pages. */
static void BF16_NAME(k_rows)(const simd_bf16 *b, const qkv_attn_job *job, size_t j, size_t n)
{
    const size_t d = b->d, w = 2 * b->dp;
    qkv_kv_cursor kc = qkv_kv_at(&job->k, j);
    for (size_t i = 0; i < n; i++) {
        const unsigned char *row = qkv_kv_next(&kc);
        uint16_t *out = b->k16 + i * w;
        if (job->k.dtype == QKV_BF16) {
            memcpy(out, row, d * sizeof *out);
        } else {
            const float *f = (const float *)row;
            if (job->k.dtype != QKV_F32) {
                job->k.to_f32(d, row, b->kf);
                f = b->kf;
            }
            for (size_t c = 0; c < d; c += 32) {
                const size_t m = d - c;
                const vf lo = m >= 16 ? v_load(f + c) : v_loadm(f + c, v_tailmask(m));
                const vf hi = m >= 32 ? v_load(f + c + 16) : m > 16 ? v_loadm(f + c + 16, v_tailmask(m - 16)) : v_zero();
                const __mmask32 sm = m >= 32 ? ~(__mmask32)0 : (((__mmask32)1 << m) - 1);
                _mm512_mask_storeu_epi16(out + c, sm, BF16_NAME(bf16_cvt32)(lo, hi));
            }
        }
        memset(out + d, 0, (w - d) * sizeof *out);
    }
    const size_t padded = BF16_UP(n, BF16_KROW_PAD);
    memset(b->k16 + n * w, 0, (padded - n) * w * sizeof *b->k16);
}

/* p2 from the tile's P (S after the exp, [key][rp]) for keys [kmin, kmax):
   pairs along keys, npp rows (zero past the last pair). */
static void BF16_NAME(pack_p)(uint32_t *p2, const float *st, size_t rp, size_t kmin, size_t kmax,
                              size_t npp)
{
    const size_t np = (kmax - kmin + 1) / 2;
    for (size_t jj = 0; jj < np; jj++) {
        const float *lo = st + (kmin + 2 * jj) * rp;
        const int has_hi = kmin + 2 * jj + 1 < kmax;
        for (size_t l = 0; l < rp; l += VL) {
            const vf hi = has_hi ? v_load(lo + rp + l) : v_zero();
            _mm512_storeu_si512(p2 + jj * rp + l, BF16_NAME(bf16_pack2)(v_load(lo + l), hi));
        }
    }
    memset(p2 + np * rp, 0, (npp - np) * rp * sizeof *p2);
}

/* P = exp(S - msub) of a plain tile for lanes [l0, l0 + VL) and keys
   [kmin, kmax), packed into p2 as pack_p would from S (a pass over S
   fewer); returns the lanes' sums of P, in f32 as the driver sums it.
   bf16_pv then leaves p2 as it is. */
static vf BF16_NAME(bf16_exp_p)(const simd_bf16 *b, const float *st, size_t rp, size_t l0,
                                size_t kmin, size_t kmax, vf msub)
{
    vf sum0 = v_zero(), sum1 = v_zero();
    uint32_t *p2 = b->p2 + l0;
    size_t j = kmin;
    for (; j + 1 < kmax; j += 2, p2 += rp) {
        const vf e0 = v_exp(v_sub(v_load(st + j * rp + l0), msub));
        const vf e1 = v_exp(v_sub(v_load(st + (j + 1) * rp + l0), msub));
        _mm512_storeu_si512(p2, BF16_NAME(bf16_pack2)(e0, e1));
        sum0 = v_add(sum0, e0);
        sum1 = v_add(sum1, e1);
    }
    if (j < kmax) {
        const vf e0 = v_exp(v_sub(v_load(st + j * rp + l0), msub));
        _mm512_storeu_si512(p2, BF16_NAME(bf16_pack2)(e0, v_zero()));
        sum0 = v_add(sum0, e0);
    }
    return v_add(sum0, sum1);
}

/* v2 for keys [j, j + nk) (absolute; any pages), columns [c0, c0 + nc),
   cwp = nc rounded up to 16; npp rows. Returns whether every value packed
   is finite (an exponent of all ones is Inf or NaN); with `check` 0 it
   does not look and returns 1. */
static int BF16_NAME(pack_v)(const simd_bf16 *b, const qkv_attn_job *job, size_t j, size_t nk,
                             size_t c0, size_t nc, size_t cwp, size_t npp, int check)
{
    const size_t np = (nk + 1) / 2;
    const __m512i ex = _mm512_set1_epi16(0x7f80);
    /* Word i of the two halves: (a[i], b[i]) for i < 16, then i >= 16. */
    const __m512i lo_idx = _mm512_set_epi16(47, 15, 46, 14, 45, 13, 44, 12, 43, 11, 42, 10, 41, 9,
                                            40, 8, 39, 7, 38, 6, 37, 5, 36, 4, 35, 3, 34, 2, 33, 1,
                                            32, 0);
    const __m512i hi_idx = _mm512_add_epi16(lo_idx, _mm512_set1_epi16(16));
    const qkv_dtype t = job->v.dtype;
    __mmask32 bad = 0;
    qkv_kv_cursor vc = qkv_kv_at(&job->v, j);
    for (size_t jj = 0; jj < np; jj++) {
        const int has_hi = 2 * jj + 1 < nk;
        const unsigned char *ra = qkv_kv_next(&vc);
        const unsigned char *rb = has_hi ? qkv_kv_next(&vc) : NULL;
        uint32_t *out = b->v2 + jj * cwp;
        if (t == QKV_BF16) {
            /* 32 columns of both rows a step: two vpermt2w interleave them. */
            const uint16_t *a16 = (const uint16_t *)ra + c0, *b16 = rb ? (const uint16_t *)rb + c0 : NULL;
            for (size_t c = 0; c < cwp; c += 32) {
                const size_t m = nc - c < 32 ? nc - c : 32;
                /* Plain loads where the 32 columns are whole (1.7% of a
                   BF16-mode prefill on Zen 5: a masked load waits for
                   its mask). */
                const __mmask32 lm = m == 32 ? ~(__mmask32)0 : (((__mmask32)1 << m) - 1);
                const __m512i x = m == 32 ? _mm512_loadu_si512(a16 + c)
                                          : _mm512_maskz_loadu_epi16(lm, a16 + c);
                const __m512i y = !b16     ? _mm512_setzero_si512()
                                  : m == 32 ? _mm512_loadu_si512(b16 + c)
                                            : _mm512_maskz_loadu_epi16(lm, b16 + c);
                if (check)
                    bad |= _mm512_cmpeq_epi16_mask(_mm512_and_si512(x, ex), ex) |
                           _mm512_cmpeq_epi16_mask(_mm512_and_si512(y, ex), ex);
                _mm512_storeu_si512(out + c, _mm512_permutex2var_epi16(x, lo_idx, y));
                if (c + 16 < cwp)
                    _mm512_storeu_si512(out + c + 16, _mm512_permutex2var_epi16(x, hi_idx, y));
            }
            continue;
        }
        const float *fa = (const float *)ra + c0, *fb = rb ? (const float *)rb + c0 : NULL;
        if (t != QKV_F32) {   /* widened exactly first */
            const size_t skip = qkv_dtype_bytes(t, c0);
            job->v.to_f32(nc, ra + skip, b->vf);
            if (rb)
                job->v.to_f32(nc, rb + skip, b->vf + b->cw);
            fa = b->vf;
            fb = rb ? b->vf + b->cw : NULL;
        }
        for (size_t c = 0; c < cwp; c += 16) {
            const vm lm = v_tailmask(nc - c < 16 ? nc - c : 16);
            const __m512i w = BF16_NAME(bf16_pack2)(v_loadm(fa + c, lm), fb ? v_loadm(fb + c, lm) : v_zero());
            if (check)
                bad |= _mm512_cmpeq_epi16_mask(_mm512_and_si512(w, ex), ex);
            _mm512_storeu_si512(out + c, w);
        }
    }
    memset(b->v2 + np * cwp, 0, (npp - np) * cwp * sizeof *b->v2);
    return bad == 0;
}

/* P·V of a chunk whose V is not finite, on the same bf16 values, one key
   at a time: a hidden key (weight -0.0) is skipped, as the f32 pv_exact
   skips it, so its Inf or NaN reaches only the rows that see it. */
static void BF16_NAME(pv_exact_bf16)(const simd_bf16 *b, const qkv_attn_job *job, const float *st,
                                     size_t rp, size_t kmin, size_t kmax, const int32_t *lo,
                                     const int32_t *hi, const float *alpha, size_t cwp, size_t nc,
                                     size_t c0)
{
    for (size_t r = 0; r < job->rows; r++) {
        float *o = job->row[r].acc + c0;
        const vf a = v_set1(alpha[r]);
        for (size_t c = 0; c < nc && alpha[r] != 1.0f; c += VL) {
            const vm m = v_tailmask(nc - c < VL ? nc - c : VL);
            v_storem(o + c, m, v_mul(v_loadm(o + c, m), a));
        }
        const size_t kb = (size_t)lo[r] > kmin ? (size_t)lo[r] : kmin;
        const size_t ke = (size_t)hi[r] < kmax ? (size_t)hi[r] : kmax;
        for (size_t j = kb; j < ke; j++) {
            const float p = st[j * rp + r];
            uint32_t bits;
            memcpy(&bits, &p, sizeof bits);
            if (bits == 0x80000000u)
                continue;
            const uint32_t pb = (uint32_t)BF16_NAME(bf16_of)(p) << 16;
            float pf;
            memcpy(&pf, &pb, sizeof pf);
            const vf vp = v_set1(pf);
            const uint32_t *w = b->v2 + (j - kmin) / 2 * cwp;
            const int half = (int)((j - kmin) % 2);
            for (size_t c = 0; c < nc; c += VL) {
                const vm m = v_tailmask(nc - c < VL ? nc - c : VL);
                const __m512i x = _mm512_loadu_si512(w + c);
                const __m512i y = half ? _mm512_and_si512(x, _mm512_set1_epi32((int)0xffff0000u))
                                       : _mm512_slli_epi32(x, 16);
                v_storem(o + c, m, v_fmadd(vp, _mm512_castsi512_ps(y), v_loadm(o + c, m)));
            }
        }
    }
    (void)cwp;
}

/* ---- the hooks -------------------------------------------------------------- */

/* Which tiles a shape may run in bf16 (see the top of this file). */
static void BF16_NAME(bf16_use)(const qkv_attn_shape *s, int *qk, int *pv)
{
    *pv = s->fpmath == QKV_FPMATH_BF16;
    *qk = *pv || (s->q_dtype == QKV_BF16 && s->k_dtype == QKV_BF16);
}

/* The buffers of a job of rp lanes: qt2 for the job, then K's conversion
   and P·V's operands, which are never needed at once and share their
   floats, then the kernels' own; `least` is what the f32 fallback needs
   at the least (strict mode's tiles can be given back). */
typedef struct BF16_NAME(bf16_sizes) {
    size_t qt2, k16, kf, p2, v2, vf, shared, extra, least;
} BF16_NAME(bf16_sizes);

static BF16_NAME(bf16_sizes) BF16_NAME(bf16_sizes_of)(size_t rp, const qkv_attn_shape *s, int pv,
                                                      size_t cw)
{
    BF16_NAME(bf16_sizes) z;
    const size_t dp = BF16_UP(s->head_dim, BF16_DPAD) / 2, npp = BF16_UP(BF16_BN / 2, BF16_PAIR_PAD);
    /* A bf16 K with pairs unpadded is always read in place (bf16_qk). */
    const int k_conv = s->k_dtype != QKV_BF16 || BF16_DPAD > 2;
    z.qt2 = BF16_ALIGN(rp * dp);
    z.k16 = k_conv ? BF16_ALIGN(BF16_KCH * dp) : 0;   /* 2·dp bf16 = dp floats a row */
    z.kf = s->k_dtype != QKV_F32 && s->k_dtype != QKV_BF16 ? BF16_ALIGN(s->head_dim) : 0;
    z.p2 = pv ? BF16_ALIGN(npp * rp) : 0;
    z.v2 = pv ? BF16_ALIGN(npp * cw) : 0;
    z.vf = pv && s->v_dtype != QKV_F32 && s->v_dtype != QKV_BF16 ? BF16_ALIGN(2 * cw) : 0;
    const size_t kpart = z.k16 + z.kf, vpart = z.p2 + z.v2 + z.vf;
    z.shared = kpart > vpart ? kpart : vpart;
    z.shared = z.shared > 16 * dp ? z.shared : 16 * dp;   /* Q rows for pack_qt2 */
    z.extra = BF16_ALIGN(BF16_EXTRA(rp));
    /* Strict mode gives tiles back: Qᵀ as f32 in chunks of 32 values and
       64 floats of converted V (attention.h's GEMM loop). */
    z.least = pv ? 0 : BF16_ALIGN(rp * 32) + 64;
    return z;
}

static size_t BF16_NAME(bf16_ws)(size_t rp, const qkv_attn_shape *s, size_t room)
{
    int qk, pv;
    BF16_NAME(bf16_use)(s, &qk, &pv);
    if (!qk)
        return 0;
    /* And for strict mode's f32 P·V, converted V rows of 16 keys as the
       driver prefers them (ATT_CONV_KEYS). */
    const size_t dv = s->v_head_dim < 64 ? 64 : s->v_head_dim;
    const size_t v_conv = !pv && s->v_dtype != QKV_F32 ? 16 * dv : 0;
    /* The wide chunks where they fit in room, else the narrow ones (which
       the planner then sizes the jobs for); begin() takes the wide ones
       whenever the workspace it is given has room for them. While this
       asked for the narrow ones always, a d = 128 job of 32 rows never had
       the room (exactly the budget, QKV_ATTN_WS_FLOATS, with the wide):
       avx512bf16 on Zen 5, BF16 mode, bf16 Q/K/V, 8 heads, two builds
       alternating in one process, wide over narrow: n = 2048 0.93-0.95 of
       the time, causal or not, n = 512 0.97; the same bits. AMX's pads
       leave it no room for the wide at 32 rows. */
    for (size_t cw = pv && s->v_head_dim > BF16_CW_MIN ? BF16_CW_MAX : BF16_CW_MIN;;
         cw = BF16_CW_MIN) {
        const BF16_NAME(bf16_sizes) z = BF16_NAME(bf16_sizes_of)(rp, s, pv, cw);
        const size_t need = z.qt2 + z.shared + z.extra + (z.least > v_conv ? z.least : v_conv);
        if (need <= room || cw == BF16_CW_MIN)
            return need;
    }
}

static size_t BF16_NAME(bf16_begin)(simd_bf16 *b, const qkv_attn_job *job, size_t rp, float *ws,
                                    size_t floats)
{
    const qkv_attn_shape s = {job->head_dim, job->v_head_dim, job->q_dtype, job->k.dtype,
                              job->v.dtype, 0, job->fpmath};
    memset(b, 0, sizeof *b);
    int qk, pv;
    BF16_NAME(bf16_use)(&s, &qk, &pv);
    if (!qk)
        return 0;
    size_t cw = job->v_head_dim > BF16_CW_MIN ? BF16_CW_MAX : BF16_CW_MIN;
    BF16_NAME(bf16_sizes) z = BF16_NAME(bf16_sizes_of)(rp, &s, pv, cw);
    if (z.qt2 + z.shared + z.extra + z.least > floats && cw > BF16_CW_MIN)
        z = BF16_NAME(bf16_sizes_of)(rp, &s, pv, cw = BF16_CW_MIN);
    const size_t taken = z.qt2 + z.shared + z.extra;
    if (taken + z.least > floats)
        return 0;                    /* too little room: the f32 path, which copes */
    b->strict = !pv;
    b->d = job->head_dim;
    b->dp = BF16_UP(b->d, BF16_DPAD) / 2;
    b->rp = rp;
    b->cw = cw;
    b->qt2 = (uint32_t *)ws;
    b->k16 = (uint16_t *)(ws + z.qt2);
    b->kf = ws + z.qt2 + z.k16;
    b->p2 = (uint32_t *)(ws + z.qt2);
    b->v2 = (uint32_t *)(ws + z.qt2 + z.p2);
    b->vf = ws + z.qt2 + z.p2 + z.v2;
    b->extra = ws + z.qt2 + z.shared;
    if (!BF16_NAME(pack_qt2)(b, job, (uint32_t *)(ws + z.qt2))) {
        memset(b, 0, sizeof *b);
        return 0;
    }
    b->qk = 1;
    b->pv = pv;
    BF16_BEGIN(b);
    return taken;
}

static int BF16_NAME(bf16_qk)(const simd_bf16 *b, const qkv_attn_job *job, size_t t0, size_t n,
                              size_t kmin, size_t kmax, float *st, size_t rp, float *cmax)
{
    const size_t d = b->d;
    const int in_bf16 = job->k.dtype == QKV_BF16;
    const size_t ldk = job->k.row_bytes / sizeof(uint16_t);
    if (b->strict) {
        qkv_kv_cursor kc = qkv_kv_at(&job->k, t0 + kmin);
        for (size_t j = kmin; j < kmax; j++)
            if (BF16_NAME(any_subnormal)((const uint16_t *)qkv_kv_next(&kc), d))
                return 0;
    }
    /* A bf16 K goes page run by page run, read where it lies when the rows
       the kernel reads (up to its pad) stay in the run, a constant stride
       apart (avx512bf16 always: it has no buffer for bf16 K); other K, or
       an AMX run that ends mid-tile, converted BF16_KCH rows at a time. */
    for (size_t k0 = kmin, m; k0 < kmax; k0 += m) {
        const size_t end = in_bf16 ? k0 + qkv_kv_run(&job->k, t0 + k0, n - k0) : n;
        m = (end < kmax ? end : kmax) - k0;
        if (in_bf16 && BF16_K_IN_PLACE(d, end, k0, k0 + m)) {
            BF16_NAME(qk_kernel)(b, (const uint16_t *)qkv_kv_row(&job->k, t0 + k0), ldk, m,
                                 st + k0 * rp, rp, job->scale, cmax);
            continue;
        }
        for (size_t c0 = k0; c0 < k0 + m; c0 += BF16_KCH) {
            const size_t nk = k0 + m - c0 < BF16_KCH ? k0 + m - c0 : BF16_KCH;
            BF16_NAME(k_rows)(b, job, t0 + c0, nk);
            BF16_NAME(qk_kernel)(b, b->k16, 2 * b->dp, nk, st + c0 * rp, rp, job->scale, cmax);
        }
    }
    return 1;
}

static int BF16_NAME(bf16_pv)(const simd_bf16 *b, const qkv_attn_job *job, size_t t0, size_t kmin,
                              size_t kmax, const float *st, size_t rp, const int32_t *lo,
                              const int32_t *hi, const float *alpha, int plain)
{
    const size_t dv = job->v_head_dim, np = (kmax - kmin + 1) / 2, npp = BF16_UP(np, BF16_PAIR_PAD);
    if (plain)   /* P is in p2 already (bf16_exp_p): only the pad to clear */
        memset(b->p2 + np * rp, 0, (npp - np) * rp * sizeof *b->p2);
    else
        BF16_NAME(pack_p)(b->p2, st, rp, kmin, kmax, npp);
    BF16_PREP_P(b, npp);
    for (size_t c0 = 0; c0 < dv; c0 += b->cw) {
        const size_t nc = dv - c0 < b->cw ? dv - c0 : b->cw, cwp = BF16_UP(nc, 16);
        /* In a plain tile no key is hidden, so Inf and NaN go through the
           products as they would in f32. */
        if (!BF16_NAME(pack_v)(b, job, t0 + kmin, kmax - kmin, c0, nc, cwp, npp, !plain))
            BF16_NAME(pv_exact_bf16)(b, job, st, rp, kmin, kmax, lo, hi, alpha, cwp, nc, c0);
        else
            BF16_NAME(pv_kernel)(b, job, npp, kmin, kmax, lo, hi, alpha, cwp, nc, c0);
    }
    return 1;
}

static void BF16_NAME(bf16_end)(const simd_bf16 *b)
{
    if (b->qk)
        BF16_END(b);
}

#define SIMD_BF16 1
#define simd_bf16_ws BF16_NAME(bf16_ws)
#define simd_bf16_begin BF16_NAME(bf16_begin)
#define simd_bf16_qk BF16_NAME(bf16_qk)
#define simd_bf16_pv BF16_NAME(bf16_pv)
#define simd_bf16_exp_p BF16_NAME(bf16_exp_p)
#define simd_bf16_end BF16_NAME(bf16_end)

/*
 * e^x and tanh x for the fused kernels (kernels/simd/attention.h and the
 * bf16 tiles), inline, in the words of a vocabulary (avx2/vocab.h,
 * avx512/vocab.h, neon/vocab.h, sve/vocab.h), which includes this once at
 * its end after defining v_clamp (NaN kept), v_round (to nearest, ties to
 * even), v_scale2 (p · 2^n, rounded once), v_scale2_normal (the same where
 * the product is a normal float and p in [1/2, 2]), v_all_below (every
 * lane below, NaN not), v_abs and v_copysign (and the
 * comparisons, v_sel and v_any that simd/attention.h lists). Every
 * step is an IEEE operation rounded once, so every vocabulary gives the
 * same bits.
 *
 * Why not SLEEF's, which the stage softmax keeps (v_exp_sleef, the
 * contract's): each of its functions is a call through the PLT, and every
 * call spills the loop's live vectors (on x86 all vector registers are
 * caller-saved, on AArch64 all but the low halves of v8-v15) and keeps
 * the calls of a tile from overlapping. Paired
 * runs, Zen 5, one thread, 8 heads, n = 2048, AVX-512 f32: this exp took
 * 0.78-0.85 of the prefill's time at d = 64 and 0.82-0.97 at d = 128.
 *
 * e^x:
 * x = n·ln2 + r with |r| <= ln2/2 (ln2 in two parts: n·ln2_hi is exact),
 * e^r to degree 7 of its Taylor series (the next term is below 2^-26 of
 * e^r), times 2^n: within 0.94 ULP of e^x over every float x from -104
 * to 89, the subnormal results included (0.9386 at x = 26.688921; SLEEF's
 * expf_u10 0.988 on the same sweep; both against libm's double exp), and
 * AVX2's bits are AVX-512's on every one of those floats.
 * tests/exp_tanh.c asserts 1 ULP for both functions. NaN stays NaN; -Inf and x below -104 give 0
 * (e^x is below half the least subnormal there), +Inf and x above 89 give
 * Inf (x is clamped there: e^89 is beyond the largest float).
 */
#ifndef QKV_SIMD_EXP_TANH_H
#define QKV_SIMD_EXP_TANH_H

/* e^r's polynomial for x = n·ln2 + r, p in [1/2, 2]: e^x = p · 2^n. */
V_INLINE vf v_exp_poly(vf x, vf n)
{
    vf r = v_fmadd(n, v_set1(-0.693359375f), x);   /* 355/512: n·ln2_hi is exact */
    r = v_fmadd(n, v_set1(2.12194440e-4f), r);     /* ln2_hi - ln2 */
    vf p = v_set1(1.0f / 5040);
    p = v_fmadd(p, r, v_set1(1.0f / 720));
    p = v_fmadd(p, r, v_set1(1.0f / 120));
    p = v_fmadd(p, r, v_set1(1.0f / 24));
    p = v_fmadd(p, r, v_set1(1.0f / 6));
    p = v_fmadd(p, r, v_set1(0.5f));
    p = v_fmadd(p, r, v_set1(1.0f));
    p = v_fmadd(p, r, v_set1(1.0f));
    return p;
}

/* Where every lane has |x·log2 e| < 124.5 (no NaN), n lies in [-124, 124]
   and every p · 2^n is a normal float: no clamp, and 2^n goes into p's
   exponent field at once (v_scale2_normal), the same bits as the general
   way below (AVX2, all 2^32 inputs, NaNs included, against the exp before
   this path: no difference). A softmax's arguments are almost always
   there. Without the clamp's two operations and with one scaling step for
   AVX2's seven integer ones and two products, the exp alone took 0.70 of
   the time on a Zen 4 (AVX2, 7.8 cycles a vector, from 11.1), and the AVX2
   prefill (8 heads, n = 2048, f32, one thread, paired) 0.96 at d = 64,
   0.97-0.98 at d = 128, causal or not; AVX-512, which keeps vscalefps and
   saves only the clamp, 1.00-1.01. */
V_INLINE vf v_exp(vf x)
{
    const vf t = v_mul(x, v_set1(1.44269504f));
    if (v_all_below(v_abs(t), v_set1(124.5f))) {
        const vf n = v_round(t);
        return v_scale2_normal(v_exp_poly(x, n), n);
    }
    x = v_clamp(x, v_set1(-104.0f), v_set1(89.0f));
    const vf n = v_round(v_mul(x, v_set1(1.44269504f)));
    return v_scale2(v_exp_poly(x, n), n);
}

/* tanh x for the logit soft-cap, cap · tanh(s / cap): x + x³·P(x²) below
 * 1 (P of degree 7, fitted to the relative error on Chebyshev nodes),
 * 1 - 2 / (e^2|x| + 1) from there (e^2|x| by v_exp above; past 44.4 it is
 * Inf and gives 1), the sign of x put back: within 0.96 ULP of tanh x over
 * every float (0.9592 at x = 1.00854242, against libm's double tanh), odd,
 * AVX2's bits AVX-512's. NaN stays NaN, ±0 stay ±0, ±Inf give ±1.
 * SLEEF's tanhf was most of a soft-capped prefill's time: Zen 5, AVX-512,
 * 8 heads, n = 2048, cap 50, the call took 1.6-2.1x the time of one whose
 * tanh did nothing at d = 64, and 1.3-1.6x at d = 128. */
V_INLINE vf v_tanh(vf x)
{
    const vf a = v_abs(x), u = v_mul(a, a);
    vf p = v_set1(0.000120391873f);
    p = v_fmadd(p, u, v_set1(-0.000836785766f));
    p = v_fmadd(p, u, v_set1(0.00307145878f));
    p = v_fmadd(p, u, v_set1(-0.00858901907f));
    p = v_fmadd(p, u, v_set1(0.0217818469f));
    p = v_fmadd(p, u, v_set1(-0.0539523624f));
    p = v_fmadd(p, u, v_set1(0.13333191f));
    p = v_fmadd(p, u, v_set1(-0.333333284f));
    const vf small = v_fmadd(v_mul(a, u), p, a);
    const vm is_small = v_gt(v_set1(1.0f), a);   /* not NaN, nor |x| >= 1 */
    /* Soft-capped scores lie far below the cap (|s / cap| < 1): where no
       lane needs it, the exp and the division are skipped, the lanes'
       bits the same (Zen 5, AVX-512, 8 heads, n = 2048, d = 128, cap 50,
       paired: 0.83 of the speed without a cap before). */
    if (v_all_below(a, v_set1(1.0f)))   /* is_small in every lane */
        return v_copysign(small, x);
    const vf big = v_sub(v_set1(1.0f), v_div(v_set1(2.0f), v_add(v_exp(v_add(a, a)), v_set1(1.0f))));
    return v_copysign(v_sel(is_small, big, small), x);
}

#endif

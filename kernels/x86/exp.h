/*
 * e^x for the fused kernels (kernels/simd/attention.h, x86/bf16_tmpl.h),
 * inline, in the words of an x86 vocabulary (avx2/vocab.h,
 * avx512/vocab.h), which includes this once at its end after defining
 * v_min, v_round (to nearest) and v_scale2 (p · 2^n, rounded once).
 *
 * Why not SLEEF's, which the stage softmax keeps (v_exp_sleef, the
 * contract's): its exp is a call through the PLT, and every call spills
 * the loop's live vectors (all vector registers are caller-saved) and
 * keeps the exponentials of a tile from overlapping. Paired runs, Zen 5,
 * one thread, 8 heads, n = 2048, AVX-512 f32: this exp took 0.78-0.85 of
 * the prefill's time at d = 64 and 0.82-0.97 at d = 128.
 *
 * x = n·ln2 + r with |r| <= ln2/2 (ln2 in two parts: n·ln2_hi is exact),
 * e^r to degree 7 of its Taylor series (the next term is below 2^-26 of
 * e^r), times 2^n: within 0.94 ULP of e^x over every float x from -104
 * to 89, the subnormal results included (0.9386 at x = 26.688921; SLEEF's
 * expf_u10 0.988 on the same sweep; both against libm's double exp), and
 * AVX2's bits are AVX-512's on every one of those floats.
 * tests/exp.c asserts 1 ULP. NaN stays NaN; -Inf and x below -104 give 0
 * (e^x is below half the least subnormal there), +Inf and x above 89 give
 * Inf (x is clamped there: e^89 is beyond the largest float).
 */
#ifndef QKV_X86_EXP_H
#define QKV_X86_EXP_H

V_INLINE vf v_exp(vf x)
{
    /* min and max return their second operand when either is NaN */
    x = v_min(v_set1(89.0f), v_max(v_set1(-104.0f), x));
    const vf n = v_round(v_mul(x, v_set1(1.44269504f)));
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
    return v_scale2(p, n);
}

#endif

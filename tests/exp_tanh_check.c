/*
 * The fused kernels' inline exp and tanh (kernels/simd/exp_tanh.h) against
 * libm's double exp and tanh, built once per vocabulary by
 * tests/meson.build: x86, with AVX2 flags on AVX2's vocabulary, with
 * AVX-512 flags on AVX-512's (each run where the CPU has it), and on
 * kernels/avx512/emulate.h (any CPU with AVX2); AArch64, on NEON's and on
 * SVE's (where the CPU has SVE, at its vector length). EXP_VOCAB names the
 * vocabulary, EXP_CHECK this copy's entry point.
 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include EXP_VOCAB

/* 16 values at a time: x in, f(x) out (f: 0 exp, 1 tanh), in vectors of
   VL lanes (SVE's may be longer than 16: a partial vector then). */
static void apply16(int f, const float *x, float *out)
{
    for (size_t i = 0; i < 16; i += VL) {
        const vm m = v_tailmask(16 - i < VL ? 16 - i : VL);
        const vf y = v_loadm(x + i, m);
        v_storem(out + i, m, f ? v_tanh(y) : v_exp(y));
    }
}

/* |y - t| in units of the last place of t as a float (the spacing of
   floats at |t|, 2^-149 below the least normal); infinite for a NaN. */
static double ulp_err(float y, double t)
{
    if (isnan(y))
        return INFINITY;
    int ex;
    frexp(t, &ex);
    const double ulp = fabs(t) < FLT_MIN ? 0x1p-149 : ldexp(1.0, ex - 24);
    return fabs((double)y - t) / ulp;
}

static double ref(int f, float x) { return f ? tanh((double)x) : exp((double)x); }

/* FNV-1a over the bits of every result, so that the vocabularies can be
   compared bit for bit. */
static void fold_bits(uint64_t *h, const float *y, int n)
{
    for (int i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &y[i], sizeof u);
        *h = (*h ^ u) * 1099511628211u;
    }
}

/* The largest error in ULP of f over every step-th float of [lo, hi] and
   its sign flips, where the reference is a finite float; every result's
   bits go into *h. */
static double sweep(int f, float lo, float hi, uint32_t step, long *checked, uint64_t *h)
{
    double worst = 0.0;
    float x[16] = {0}, y[16];
    int n = 0;
    for (int side = 0; side < 2; side++) {
        uint32_t end, u;
        const float edge = side ? hi : lo;
        memcpy(&end, &edge, sizeof end);
        for (u = side ? 0u : 0x80000000u; u <= end; u += step) {
            memcpy(&x[n++], &u, sizeof(float));
            if (n == 16 || u + step > end) {
                apply16(f, x, y);
                fold_bits(h, y, n);
                for (int i = 0; i < n; i++)
                    worst = fmax(worst, ulp_err(y[i], ref(f, x[i])));
                *checked += n;
                n = 0;
            }
            if (u > UINT32_MAX - step)
                break;
        }
    }
    return worst;
}

/* The largest error in ULP over every step-th float of the range each
   function computes (exp: -104 to 89, subnormal results included; tanh:
   every finite float, both signs) and the points known to be the worst;
   counts the special cases that are wrong (NaN, infinities, clamps, ±0,
   oddness) into *bad; *bits: a hash of every result's bits. */
double EXP_CHECK(uint32_t step, long *checked, long *bad, double *worst_tanh, uint64_t *bits)
{
    *checked = 0;
    *bad = 0;
    *bits = 14695981039346656037u;
    double worst = sweep(0, -104.0f, 88.72f, step, checked, bits);   /* e^88.72 the last finite */
    *worst_tanh = sweep(1, -FLT_MAX, FLT_MAX, step, checked, bits);

    /* The worst points seen over every float in the range. */
    float x[16], y[16];
    for (int i = 0; i < 16; i++)
        x[i] = i < 8 ? 26.688921f : 1.00854242f;
    apply16(0, x, y);
    worst = fmax(worst, ulp_err(y[0], ref(0, x[0])));
    apply16(1, x, y);
    *worst_tanh = fmax(*worst_tanh, ulp_err(y[8], ref(1, x[8])));

    /* Special and clamped inputs. */
    const float sp[16] = {NAN, -INFINITY, INFINITY, -104.0f, -200.0f, 89.0f, 100.0f, 0.0f,
                          -0.0f, 88.73f, -1e30f, 1e30f, -103.97f, 1.0f, -1.0f, -87.5f};
    apply16(0, sp, y);
    fold_bits(bits, y, 16);
    *bad += !isnan(y[0]);
    *bad += y[1] != 0.0f || y[3] != 0.0f || y[4] != 0.0f || y[10] != 0.0f;
    *bad += signbit(y[1]) || signbit(y[3]);   /* +0: the fused kernels mark hidden keys -0 */
    *bad += !isinf(y[2]) || !isinf(y[5]) || !isinf(y[6]) || !isinf(y[9]) || !isinf(y[11]);
    *bad += y[7] != 1.0f || y[8] != 1.0f;
    for (int i = 12; i < 16; i++)
        *bad += !(ulp_err(y[i], ref(0, sp[i])) <= 1.0);
    apply16(1, sp, y);
    fold_bits(bits, y, 16);
    *bad += !isnan(y[0]);
    *bad += y[1] != -1.0f || y[2] != 1.0f || y[10] != -1.0f || y[11] != 1.0f || y[6] != 1.0f;
    *bad += y[7] != 0.0f || signbit(y[7]) || y[8] != 0.0f || !signbit(y[8]);
    *bad += y[13] != -y[14] || y[3] != -1.0f;
    *checked += 32;
    return worst;
}

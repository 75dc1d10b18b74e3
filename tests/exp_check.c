/*
 * The fused kernels' inline exp (kernels/x86/exp.h) against libm's double
 * exp, built three times by tests/meson.build: with AVX2 flags on AVX2's
 * vocabulary, with AVX-512 flags on AVX-512's (each run where the CPU has
 * it), and on kernels/avx512/emulate.h (any CPU with AVX2). EXP_VOCAB
 * names the vocabulary, EXP_CHECK this copy's entry point.
 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include EXP_VOCAB

/* 16 values at a time: x in, e^x out. */
static void exp16(const float *x, float *out)
{
    for (int i = 0; i < 16; i += VL)
        v_store(out + i, v_exp(v_load(x + i)));
}

/* |e - e^x| in units of the last place of e^x as a float (the spacing of
   floats at e^x, 2^-149 below the least normal); infinite for a NaN. */
static double ulp_err(float e, float x)
{
    const double t = exp((double)x);
    if (isnan(e))
        return INFINITY;
    int ex;
    frexp(t, &ex);
    const double ulp = t < FLT_MIN ? 0x1p-149 : ldexp(1.0, ex - 24);
    return fabs((double)e - t) / ulp;
}

/* The largest error in ULP over every step-th float from -104 to 89 (the
   range not clamped, subnormal results included) and the one known to be
   the worst; counts the other cases that are wrong (NaN, infinities,
   clamps, ±0) into *bad. */
double EXP_CHECK(uint32_t step, long *checked, long *bad)
{
    const float lo = -104.0f, hi = 88.72f;   /* e^hi is the last finite one */
    double worst = 0.0;
    float x[16] = {0}, e[16];
    int n = 0;
    *checked = 0;
    *bad = 0;
    for (int side = 0; side < 2; side++) {
        uint32_t end, u;
        const float edge = side ? hi : lo;
        memcpy(&end, &edge, sizeof end);
        for (u = side ? 0u : 0x80000000u; u <= end; u += step) {
            memcpy(&x[n++], &u, sizeof(float));
            if (n == 16 || u + step > end) {
                exp16(x, e);
                for (int i = 0; i < n; i++)
                    worst = fmax(worst, ulp_err(e[i], x[i]));
                *checked += n;
                n = 0;
            }
            if (u > UINT32_MAX - step)
                break;
        }
    }
    /* The worst point seen over every float in the range (0.939 ULP). */
    const float w = 26.688921f;
    for (int i = 0; i < 16; i++)
        x[i] = w;
    exp16(x, e);
    worst = fmax(worst, ulp_err(e[0], w));

    /* Special and clamped inputs. */
    const float sp[16] = {NAN, -INFINITY, INFINITY, -104.0f, -200.0f, 89.0f, 100.0f, 0.0f,
                          -0.0f, 88.73f, -1e30f, 1e30f, -103.97f, 1.0f, -1.0f, -87.5f};
    exp16(sp, e);
    *bad += !isnan(e[0]);
    *bad += e[1] != 0.0f || e[3] != 0.0f || e[4] != 0.0f || e[10] != 0.0f;
    *bad += signbit(e[1]) || signbit(e[3]);   /* +0: the fused kernels mark hidden keys -0 */
    *bad += !isinf(e[2]) || !isinf(e[5]) || !isinf(e[6]) || !isinf(e[9]) || !isinf(e[11]);
    *bad += e[7] != 1.0f || e[8] != 1.0f;
    for (int i = 12; i < 16; i++)
        *bad += !(ulp_err(e[i], sp[i]) <= 1.0);
    *checked += 16;
    return worst;
}

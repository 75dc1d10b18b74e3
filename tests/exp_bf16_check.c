/*
 * v_exp_bf16 (kernels/avx512/vocab.h) against libm's double exp, built
 * twice by tests/meson.build: with AVX-512 flags (run where the CPU has
 * AVX-512F) and on kernels/avx512/emulate.h (any CPU with AVX2).
 * EXP_BF16_CHECK names this copy's entry point.
 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "avx512/vocab.h"

/* 16 values at a time: x in, e^x out. */
static void exp16(const float *x, float *out)
{
    v_store(out, v_exp_bf16(v_load(x)));
}

/* Infinite for a NaN result, so that fmax and comparisons see it. */
static double rel_err(float e, float x)
{
    const double t = exp((double)x);
    return isnan(e) ? INFINITY : fabs((double)e - t) / t;
}

/* The largest relative error over floats x whose e^x is a normal float
   (every step-th bit pattern, and the one known to be the worst); counts
   the other cases that are wrong (NaN, infinities, clamps, subnormal
   results further than one subnormal step) into *bad. */
double EXP_BF16_CHECK(uint32_t step, long *checked, long *bad)
{
    const float lo = -87.3f, hi = 88.7f;   /* e^x normal inside */
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
                    worst = fmax(worst, rel_err(e[i], x[i]));
                *checked += n;
                n = 0;
            }
            if (u > UINT32_MAX - step)
                break;
        }
    }
    /* The worst point seen over every float (2.31e-7). */
    const float w = -27.3791676f;
    for (int i = 0; i < 16; i++)
        x[i] = w;
    exp16(x, e);
    worst = fmax(worst, rel_err(e[0], w));

    /* Special and clamped inputs, and subnormal results. */
    const float sp[16] = {NAN, -INFINITY, INFINITY, -104.0f, -200.0f, 89.0f, 100.0f, 0.0f,
                          -0.0f, -87.5f, -95.0f, -100.0f, -103.9f, -88.7f, 88.73f, 1.0f};
    exp16(sp, e);
    *bad += !isnan(e[0]);
    *bad += e[1] != 0.0f || e[3] != 0.0f || e[4] != 0.0f;
    *bad += !isinf(e[2]) || !isinf(e[5]) || !isinf(e[6]) || !isinf(e[14]);
    *bad += e[7] != 1.0f || e[8] != 1.0f;
    for (int i = 9; i <= 13; i++)   /* within one subnormal step of e^x */
        *bad += !(fabs((double)e[i] - exp((double)sp[i])) <= 0x1p-149);   /* NaN: bad */
    *bad += rel_err(e[15], 1.0f) > 2.4e-7;
    *checked += 16;
    return worst;
}

/*
 * FMA-throughput probe, written once and compiled per ISA (the way SLEEF
 * and BLIS build one source per ISA). The including file defines:
 *
 *   PROBE_NAME          the function to define, double NAME(double seconds)
 *   PROBE_VEC           the vector type
 *   PROBE_LANES         floats per vector (an expression: SVE knows it only
 *                       at run time)
 *   PROBE_SET1(x)       broadcast a float
 *   PROBE_FMA(x, a, b)  x * a + b, fused where the ISA has FMA
 *   PROBE_LANE0(x)      one float of the vector, to keep the result alive
 *   PROBE_CHAINS        12 or 16 independent accumulators
 *
 * Why independent chains: an FMA's result is ready only after its latency
 * (4-5 cycles on current x86 and Arm cores) and a core issues two per cycle,
 * so at least latency x 2 = 8-10 chains must be in flight to see the
 * throughput rather than the latency. 12 fit with the two constants in the
 * 16 registers of SSE/AVX2 without spilling; 16 are used where there are 32.
 * The accumulators are separate variables, not an array, so that they stay
 * in registers without relying on the optimiser (SVE types cannot even be
 * put in arrays).
 */
#include "probe.h"

#ifndef PROBE_CHAINS
#define PROBE_CHAINS 12
#endif
/* The steps of chains 12-15 (a directive cannot sit in a macro's
   arguments, QKV_PROBE_BEST's below). */
#if PROBE_CHAINS == 16
#define PROBE_MORE_CHAINS                                  \
    x12 = PROBE_FMA(x12, a, b); x13 = PROBE_FMA(x13, a, b); \
    x14 = PROBE_FMA(x14, a, b); x15 = PROBE_FMA(x15, a, b)
#else
#define PROBE_MORE_CHAINS (void)0
#endif

/* Large enough that a timing chunk lasts about a millisecond even at the
   AVX-512 rate (doubled where reading the clock is slow: probe.h). */
#define PROBE_INNER 200000L

/* Written once at the end, so the compiler must compute every chain. */
static volatile float PROBE_SINK_NAME;

double PROBE_NAME(double seconds)
{
    /* x -> x * a + b converges to b / (1 - a) = 1: values stay normal
       floats, never overflow or go subnormal (which would slow some cores). */
    const PROBE_VEC a = PROBE_SET1(0.999f), b = PROBE_SET1(0.001f);
    PROBE_VEC x0 = PROBE_SET1(0.10f), x1 = PROBE_SET1(0.11f), x2 = PROBE_SET1(0.12f);
    PROBE_VEC x3 = PROBE_SET1(0.13f), x4 = PROBE_SET1(0.14f), x5 = PROBE_SET1(0.15f);
    PROBE_VEC x6 = PROBE_SET1(0.16f), x7 = PROBE_SET1(0.17f), x8 = PROBE_SET1(0.18f);
    PROBE_VEC x9 = PROBE_SET1(0.19f), x10 = PROBE_SET1(0.20f), x11 = PROBE_SET1(0.21f);
#if PROBE_CHAINS == 16
    PROBE_VEC x12 = PROBE_SET1(0.22f), x13 = PROBE_SET1(0.23f);
    PROBE_VEC x14 = PROBE_SET1(0.24f), x15 = PROBE_SET1(0.25f);
#endif
    double best;
    QKV_PROBE_BEST(best, seconds, PROBE_INNER, 2.0 * PROBE_CHAINS * (double)(PROBE_LANES), {
        x0 = PROBE_FMA(x0, a, b); x1 = PROBE_FMA(x1, a, b); x2 = PROBE_FMA(x2, a, b);
        x3 = PROBE_FMA(x3, a, b); x4 = PROBE_FMA(x4, a, b); x5 = PROBE_FMA(x5, a, b);
        x6 = PROBE_FMA(x6, a, b); x7 = PROBE_FMA(x7, a, b); x8 = PROBE_FMA(x8, a, b);
        x9 = PROBE_FMA(x9, a, b); x10 = PROBE_FMA(x10, a, b); x11 = PROBE_FMA(x11, a, b);
        PROBE_MORE_CHAINS;
    });
#undef PROBE_MORE_CHAINS
    PROBE_SINK_NAME = PROBE_LANE0(x0) + PROBE_LANE0(x1) + PROBE_LANE0(x2) + PROBE_LANE0(x3) +
                      PROBE_LANE0(x4) + PROBE_LANE0(x5) + PROBE_LANE0(x6) + PROBE_LANE0(x7) +
                      PROBE_LANE0(x8) + PROBE_LANE0(x9) + PROBE_LANE0(x10) + PROBE_LANE0(x11)
#if PROBE_CHAINS == 16
                      + PROBE_LANE0(x12) + PROBE_LANE0(x13) + PROBE_LANE0(x14) + PROBE_LANE0(x15)
#endif
        ;
    return best;
}

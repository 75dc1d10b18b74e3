/*
 * Where a fused call's time goes, for profiling (issue 16's per-phase
 * timers): built with meson's -Dphase_timers=true (QKV_PHASE_TIMERS 1),
 * the fused driver (simd/attention.h) reads a counter between the phases
 * of each job and tile and adds what each phase took to process-wide
 * totals, which `qkv bench --phases` reads. Built without it (the
 * default), the marks compile to nothing and qkv_phase_built() is 0.
 *
 * The counter is the TSC on x86 (a constant rate, not the core's clock),
 * CNTVCT_EL0 on AArch64, nanoseconds elsewhere: read shares of a call,
 * not absolute times. Each mark costs a counter read (20-40 cycles on
 * x86), a few per tile of 64 keys: a profiling build took 0.999-1.000 of
 * the default build's time (Zen 5, AVX-512, prefill n = 256 and 2048, paired).
 * Not part of qkv.h: the tool links libqkv.a, where these are visible.
 */
#ifndef QKV_PHASE_H
#define QKV_PHASE_H

#include <stdint.h>

typedef enum qkv_phase {
    QKV_PHASE_JOB,       /* a job's set-up: Q rows (packed, widened), acc rows zeroed */
    QKV_PHASE_TILE,      /* a tile's set-up: the rows' key ranges, the mask tile */
    QKV_PHASE_FEED,      /* decode: K/V rows found and swept or prefetched (a walk's sweep too) */
    QKV_PHASE_QK,        /* S = scale·Q·Kᵀ, K widened where it is not f32 */
    QKV_PHASE_SOFTMAX,   /* modifiers, the online max, P = exp(S - max), the sums */
    QKV_PHASE_PV,        /* acc = alpha·acc + P·V, V widened where it is not f32 */
    QKV_PHASE_COUNT
} qkv_phase;

uint64_t qkv_phase_now(void);
/* Adds ticks[p] to phase p's total (atomically: any thread). */
void qkv_phase_add(const uint64_t ticks[QKV_PHASE_COUNT]);
/* The totals since the last take, which it zeroes. */
void qkv_phase_take(uint64_t ticks[QKV_PHASE_COUNT]);
/* Whether the marks are built in (-Dphase_timers=true). */
int qkv_phase_built(void);
const char *qkv_phase_name(qkv_phase p);

#ifndef QKV_PHASE_TIMERS
#define QKV_PHASE_TIMERS 0
#endif
#if QKV_PHASE_TIMERS
/* A job's marks: a clock and a total per phase, flushed once at its end. */
#define QKV_PHASE_START(ph)                                                                        \
    uint64_t ph##_ticks[QKV_PHASE_COUNT] = {0}, ph##_t = qkv_phase_now()
/* The time since the last mark goes to phase p. */
#define QKV_PHASE_MARK(ph, p)                                                                      \
    do {                                                                                           \
        const uint64_t ph##_now = qkv_phase_now();                                                 \
        ph##_ticks[p] += ph##_now - ph##_t;                                                        \
        ph##_t = ph##_now;                                                                         \
    } while (0)
#define QKV_PHASE_END(ph) qkv_phase_add(ph##_ticks)
#else
#define QKV_PHASE_START(ph) ((void)0)
#define QKV_PHASE_MARK(ph, p) ((void)0)
#define QKV_PHASE_END(ph) ((void)0)
#endif

#endif

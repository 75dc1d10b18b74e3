/* The phase timers' counter and totals (kernels/phase.h). */
#include "phase.h"

#include <stdatomic.h>
#include <time.h>
#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#endif

static _Atomic uint64_t totals[QKV_PHASE_COUNT];

uint64_t qkv_phase_now(void)
{
#if defined(__x86_64__) || defined(__i386__)
    return __rdtsc();
#elif defined(__aarch64__)
    uint64_t v;
    __asm__ volatile("mrs %0, cntvct_el0" : "=r"(v));
    return v;
#else
    struct timespec ts;
    timespec_get(&ts, TIME_UTC);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
#endif
}

void qkv_phase_add(const uint64_t ticks[QKV_PHASE_COUNT])
{
    for (int p = 0; p < QKV_PHASE_COUNT; p++)
        if (ticks[p])
            atomic_fetch_add_explicit(&totals[p], ticks[p], memory_order_relaxed);
}

void qkv_phase_take(uint64_t ticks[QKV_PHASE_COUNT])
{
    for (int p = 0; p < QKV_PHASE_COUNT; p++)
        ticks[p] = atomic_exchange_explicit(&totals[p], 0, memory_order_relaxed);
}

int qkv_phase_built(void)
{
    return QKV_PHASE_TIMERS;
}

const char *qkv_phase_name(qkv_phase p)
{
    static const char *const names[QKV_PHASE_COUNT] = {"job", "tile", "feed", "qk", "softmax",
                                                       "pv"};
    return (unsigned)p < QKV_PHASE_COUNT ? names[p] : "?";
}

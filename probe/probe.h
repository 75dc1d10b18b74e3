/*
 * Machine-limit probes for the benchmark report and `qkv bench`: the
 * single-core FP peak of each ISA and the memory read bandwidth (one core,
 * and N threads). Measured GFLOP/s divided by these gives "% of peak", and
 * decode times are compared with the time it takes just to stream K and V
 * from memory.
 *
 * Each ISA's probe lives in its own file built with that ISA's flags only
 * (the rule the library follows too); callers (bench/bench.cc, tools/qkv.c)
 * call it only when qkv_isa_supported() says the CPU can run it.
 */
#ifndef QKV_BENCH_PROBE_H
#define QKV_BENCH_PROBE_H

#include <stddef.h>
#include <time.h>

#include "qkv.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Best GFLOP/s (multiply + add counted as 2) seen on the calling thread in
   about `seconds` of dependent-chain-free FMA (or mul+add for scalar). */
double qkv_probe_fma_scalar(double seconds);
double qkv_probe_fma_avx2(double seconds);
double qkv_probe_fma_avx512(double seconds);
double qkv_probe_fma_neon(double seconds);
double qkv_probe_fma_sve(double seconds);
typedef double (*qkv_probe_fn)(double seconds);

/* peak[isa] for every ISA this CPU runs, about `seconds` per FMA unit (an
   ISA without a probe of its own gets its parent's figure); 0 for the
   others. */
void qkv_probe_fma_peaks(double peak[QKV_ISA_COUNT], double seconds);

/* The same for vdpbf16ps (probe/probe_avx512bf16.c): bf16 GFLOP/s. */
double qkv_probe_dpbf16_avx512bf16(double seconds);

/* The same for AMX's tdpbf16ps (probe/probe_amx.c): bf16 GFLOP/s. Call it
   only where qkv_isa_supported(QKV_ISA_AMX). */
double qkv_probe_tdpbf16_amx(double seconds);

/* The bytes a buffer must span so that a pass over it finds none of it
   still cached: 128 MiB, or twice the last-level cache the OS reports where
   that is more (a Xeon's L3 is shared by the socket, and one core can fill
   all of it: 260 MiB on an Emerald Rapids class VM, where 128 MiB passes
   read 25 GB/s on one core and 53 on two against 16 and 31 from memory),
   that twice capped at an eighth of the machine's memory. The read probes'
   buffer, and what the decode benchmarks' copies of K and V span. */
size_t qkv_probe_cold_bytes(void);

/* Best GB/s (1e9 bytes) of `passes` sequential reads of a `bytes` buffer,
   split into `threads` slices read at the same time (the calling thread
   reads one); 0 when the buffer or the threads cannot be had. */
double qkv_probe_read_gbs(size_t bytes, int passes, unsigned threads);

/* Best GB/s of `passes` reads of a `bytes` buffer in runs of run_bytes
   taken in a shuffled order, one thread (a paged cache's pages); 0 when the
   buffer cannot be had. */
double qkv_probe_read_runs_gbs(size_t bytes, size_t run_bytes, int passes);

static inline double qkv_probe_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The median time of one qkv_probe_now() call, in seconds. */
static inline double qkv_probe_clock_cost(void)
{
    enum { READS = 33 };
    double t[READS + 1], d[READS];
    for (int i = 0; i <= READS; i++)
        t[i] = qkv_probe_now();
    for (int i = 0; i < READS; i++) {   /* insertion sort of the gaps */
        const double x = t[i + 1] - t[i];
        int j = i;
        for (; j > 0 && d[j - 1] > x; j--)
            d[j] = d[j - 1];
        d[j] = x;
    }
    return d[READS / 2];
}

/* The shortest timed chunk of a peak probe that counts, in seconds: a
   shorter one doubles its work and is timed again. Chunks of a fixed
   0.4-1.1 ms had read every FMA peak of a 16-core Emerald Rapids class VM
   at 0.46-0.53 of a 2-core VM's of the same class, the shorter chunks the
   lower (as if each cost 0.5 ms more), while the kernels ran as fast on
   both. If a slow clock is the cause, chunks of 200 clock reads hold it
   to 1%; where the clock is fast (tens of ns) nothing changes: the best
   of many short chunks (about 100 in 0.1 s) is the steadiest reading on
   a shared host, where chunks of 20 ms read 0.68-0.96 of it (AVX-512,
   four runs). A chunk the clock did not see pass (dt = 0: a coarse
   clock) is lengthened too. */
static inline double qkv_probe_chunk_min(void)
{
    return 200.0 * qkv_probe_clock_cost();
}

/* The timing loop of the peak probes (probe_fma.h, probe_amx.c): STEP,
   `flops` flops, run `inner` times a chunk, chunks for about `seconds`;
   `best` gets the best chunk's flop rate in GFLOP/s. A chunk shorter than
   qkv_probe_chunk_min() (or that the clock did not see pass) is not
   counted: the chunks are lengthened and timed again. The best chunk and
   not the mean, because on a shared machine other work only ever makes a
   chunk slower, so the fastest is closest to the peak. A macro so that
   STEP's accumulators stay in the caller's registers. */
#define QKV_PROBE_BEST(best, seconds, inner, flops, STEP)                      \
    do {                                                                      \
        long inner_ = (inner);                                                \
        const double chunk_min_ = qkv_probe_chunk_min();                      \
        const double stop_ = qkv_probe_now() + (seconds);                     \
        (best) = 0.0;                                                         \
        do {                                                                  \
            const double t0_ = qkv_probe_now();                               \
            for (long i_ = 0; i_ < inner_; i_++) {                            \
                STEP;                                                         \
            }                                                                 \
            const double dt_ = qkv_probe_now() - t0_;                         \
            if (dt_ <= 0.0 || dt_ < chunk_min_) {                             \
                inner_ *= 2;                                                  \
                continue;                                                     \
            }                                                                 \
            const double rate_ = (double)(flops) * (double)inner_ / dt_ * 1e-9; \
            if (rate_ > (best))                                               \
                (best) = rate_;                                               \
        } while (qkv_probe_now() < stop_ || (best) == 0.0);                   \
    } while (0)

#ifdef __cplusplus
}
#endif

#endif

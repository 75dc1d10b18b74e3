/*
 * Memory read bandwidth: the bound for decode, which reads all of K and V
 * once per generated token and does little arithmetic on them. Measured on
 * one core and on as many threads as the thread-scaling rows use, since
 * cores share the memory and N threads seldom get N times one core's.
 *
 * DRAM moves whole 64-byte lines, so each thread reads one 8-byte word per
 * line: the loads then never limit how many lines are in flight. (Reading
 * every word with scalar loads measured 15-20% lower on Zen 5 than one word
 * per line: the loads were the limit, not the memory.) Plain C, the same
 * for every ISA.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "probe.h"

#define LINE_WORDS (64 / sizeof(uint64_t))
#define STEP (4 * LINE_WORDS)   /* four lines per loop step, four sums */

typedef struct shared {
    atomic_int pass;             /* the pass to run; -1: quit */
    atomic_uint done;            /* helpers done with the current pass */
} shared;

typedef struct reader {
    const uint64_t *words;       /* this thread's slice */
    size_t n;
    int passes;
    shared *sh;
    uint64_t sum;
} reader;

static uint64_t read_lines(const uint64_t *w, size_t n)
{
    uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (size_t i = 0; i < n; i += STEP) {
        s0 += w[i];
        s1 += w[i + LINE_WORDS];
        s2 += w[i + 2 * LINE_WORDS];
        s3 += w[i + 3 * LINE_WORDS];
    }
    return s0 + s1 + s2 + s3;
}

/* A helper thread: waits (spinning, so that every pass starts at once) for
   each pass, reads its slice, says so. */
static void *helper(void *arg)
{
    reader *r = arg;
    for (int p = 1; p <= r->passes; p++) {
        int now;
        while ((now = atomic_load(&r->sh->pass)) < p && now != -1)
            ;
        if (now == -1)
            return NULL;
        r->sum += read_lines(r->words, r->n);
        atomic_fetch_add(&r->sh->done, 1);
    }
    return NULL;
}

size_t qkv_probe_cold_bytes(void)
{
    const size_t floor = (size_t)128 << 20;
    size_t twice = 0;
#ifdef _SC_LEVEL3_CACHE_SIZE
    /* The largest cache glibc reports (from CPUID on x86; 0 where unknown). */
    const int levels[] = {_SC_LEVEL3_CACHE_SIZE, _SC_LEVEL4_CACHE_SIZE};
    for (size_t i = 0; i < sizeof levels / sizeof levels[0]; i++) {
        const long c = sysconf(levels[i]);
        if (c > 0 && 2 * (size_t)c > twice)
            twice = 2 * (size_t)c;
    }
#endif
    const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    if (pages > 0 && page > 0 && (size_t)pages / 8 * (size_t)page < twice)
        twice = (size_t)pages / 8 * (size_t)page;
    return twice > floor ? twice : floor;
}

static volatile uint64_t qkv_probe_sink_mem;

double qkv_probe_read_gbs(size_t bytes, int passes, unsigned threads)
{
    if (threads < 1 || threads > 1024 || passes < 1)
        return 0.0;
    const size_t slice = bytes / sizeof(uint64_t) / threads / STEP * STEP;
    if (slice == 0)
        return 0.0;
    uint64_t *buf = aligned_alloc(64, slice * threads * sizeof(uint64_t));
    reader *r = calloc(threads, sizeof *r);
    pthread_t *tid = calloc(threads, sizeof *tid);
    double best = 0.0;
    shared sh;
    atomic_init(&sh.pass, 0);
    atomic_init(&sh.done, 0);
    unsigned started = 1;        /* the calling thread reads slice 0 */
    if (!buf || !r || !tid)
        goto out;
    /* Writing every page first: untouched pages would all map the shared
       zero page, which sits in cache and fakes a huge bandwidth. */
    for (size_t i = 0; i < slice * threads; i++)
        buf[i] = i;
    for (unsigned t = 0; t < threads; t++)
        r[t] = (reader){buf + t * slice, slice, passes, &sh, 0};
    for (; started < threads; started++)
        if (pthread_create(&tid[started], NULL, helper, &r[started]) != 0)
            break;
    if (started < threads) {     /* no figure without all the threads */
        atomic_store(&sh.pass, -1);
        goto out;
    }
    for (int p = 1; p <= passes; p++) {
        atomic_store(&sh.done, 0);
        const double t0 = qkv_probe_now();
        atomic_store(&sh.pass, p);
        r[0].sum += read_lines(r[0].words, r[0].n);
        while (atomic_load(&sh.done) < threads - 1)
            ;
        const double dt = qkv_probe_now() - t0;
        /* Best pass: other tenants' traffic only ever slows a pass down. */
        if (dt > 0 && (double)(slice * threads * sizeof(uint64_t)) / dt > best)
            best = (double)(slice * threads * sizeof(uint64_t)) / dt;
    }
out:
    for (unsigned t = 1; t < started; t++)
        pthread_join(tid[t], NULL);
    for (unsigned t = 0; r && t < threads; t++)
        qkv_probe_sink_mem += r[t].sum;
    free(buf);
    free(r);
    free(tid);
    return best * 1e-9;
}

/* Runs read side by side by the shuffled-runs probe: the decode sweep
   reads 4 pages of K and 4 of V at a time (kernels/simd/attention.h). */
#define RUNS_SIDE_BY_SIDE 8

/* Best GB/s of `passes` reads of a `bytes` buffer in runs of run_bytes
   visited in a shuffled order, on the calling thread: what a paged KV
   cache's pages cost when they lie anywhere in memory. Hardware
   prefetchers follow a stream only within a run (and not across 4 KiB
   pages), so short runs read slower than one sequential stream; reading
   RUNS_SIDE_BY_SIDE of them at once, four lines of each in turn, keeps
   more lines in flight (Zen 5, runs of 8 KiB: 25 GB/s against 10 run
   after run). */
double qkv_probe_read_runs_gbs(size_t bytes, size_t run_bytes, int passes)
{
    const size_t run = run_bytes / sizeof(uint64_t) / STEP * STEP;
    if (passes < 1 || run == 0 || bytes / sizeof(uint64_t) < run)
        return 0.0;
    const size_t runs = bytes / sizeof(uint64_t) / run;
    uint64_t *buf = aligned_alloc(64, runs * run * sizeof(uint64_t));
    size_t *order = malloc(runs * sizeof *order);
    double best = 0.0;
    uint64_t sum = 0;
    if (!buf || !order)
        goto out;
    for (size_t i = 0; i < runs * run; i++)
        buf[i] = i;
    /* A fixed shuffle (xorshift), the same on every run of the probe. */
    uint64_t x = 0x9e3779b97f4a7c15u;
    for (size_t i = 0; i < runs; i++)
        order[i] = i;
    for (size_t i = runs - 1; i > 0; i--) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        const size_t j = (size_t)(x % (i + 1)), t = order[i];
        order[i] = order[j], order[j] = t;
    }
    for (int p = 0; p < passes; p++) {
        const double t0 = qkv_probe_now();
        for (size_t i = 0; i < runs; i += RUNS_SIDE_BY_SIDE) {
            const size_t side = runs - i < RUNS_SIDE_BY_SIDE ? runs - i : RUNS_SIDE_BY_SIDE;
            for (size_t w = 0; w < run; w += STEP)
                for (size_t g = 0; g < side; g++)
                    sum += read_lines(buf + order[i + g] * run + w, STEP);
        }
        const double dt = qkv_probe_now() - t0;
        if (dt > 0 && (double)(runs * run * sizeof(uint64_t)) / dt > best)
            best = (double)(runs * run * sizeof(uint64_t)) / dt;
    }
out:
    qkv_probe_sink_mem += sum;
    free(buf);
    free(order);
    return best * 1e-9;
}

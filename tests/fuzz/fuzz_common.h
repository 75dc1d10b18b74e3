/*
 * Shared by the libFuzzer targets: a reader that turns the fuzzer's bytes
 * into bounded choices (an exhausted input reads as zeros, so every input
 * decodes to something), the data modes, and the failure report.
 *
 * Every target decodes a descriptor and a data seed from the input, runs
 * every supported ISA (qkv_isa_supported, so ISAs added later are fuzzed
 * without a change here) and compares each with the scalar ISA. A broken
 * promise calls abort() after printing the case, which libFuzzer reports
 * as a crash and saves as a reproducer.
 */
#ifndef QKV_FUZZ_COMMON_H
#define QKV_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "../qkvtest.h"

/* Library bugs the fuzzers found: while a switch is 1, the decoders steer
   around that bug so fuzzing keeps finding new things. All are fixed now
   (0), and the inputs in corpus/ named regress-* cover them.
   - WINDOW_CAST: a window >= 2^63 was cast to ptrdiff_t in visible_keys().
   - NAN_SPLIT: with a hook and a key split, a split whose scores were all
     NaN reported max = -inf and merge_job() dropped its NaN sum. */
#ifndef FUZZ_AVOID_WINDOW_CAST
#define FUZZ_AVOID_WINDOW_CAST 0
#endif
#ifndef FUZZ_AVOID_NAN_SPLIT
#define FUZZ_AVOID_NAN_SPLIT 0
#endif
/* - V_LEAK (corpus/attention/regress-simd-v-leak): the AVX2/AVX-512 fused
     kernel weighed keys outside a row's range (causal, window) by 0, and
     0 * NaN (or inf) is NaN. Fixed in 7016319, so no longer avoided; when
     avoided, a row counts as clean only if no key of its KV head holds a
     special value, seen or not. */
#ifndef FUZZ_AVOID_V_LEAK
#define FUZZ_AVOID_V_LEAK 0
#endif
/* - SOFTMAX_NAN (found by fuzz_softmax, corpus/softmax/regress-*): the
     AVX2/AVX-512 softmax made a row of only NaN and -inf entries zeros.
     Fixed in 188a162, so no longer avoided. */
#ifndef FUZZ_AVOID_SOFTMAX_NAN
#define FUZZ_AVOID_SOFTMAX_NAN 0
#endif

typedef struct reader {
    const uint8_t *p;
    size_t n;
} reader;

static inline unsigned rd_u8(reader *r)
{
    if (!r->n)
        return 0;
    r->n--;
    return *r->p++;
}

static inline uint64_t rd_u64(reader *r)
{
    uint64_t x = 0;
    for (int i = 0; i < 8; i++)
        x = x << 8 | rd_u8(r);
    return x;
}

/* An integer in [lo, hi]. */
static inline size_t rd_range(reader *r, size_t lo, size_t hi)
{
    const size_t span = hi - lo + 1;
    size_t x = rd_u8(r);
    if (span > 256)
        x = x << 8 | rd_u8(r);
    return lo + x % span;
}

/* A uniform in [0, 1] from one byte. */
static inline float rd_unit01(reader *r)
{
    return (float)rd_u8(r) / 255.0f;
}

/* How data is drawn for one input. */
enum fuzz_mode {
    MODE_COMPARE,     /* inputs in [-1, 1]: every ISA within TOL of scalar */
    MODE_SPECIAL,     /* NaN, +-Inf, +-3e38 sprinkled: no crash, no stray write,
                         NaN stays in its rows, clean rows still compare */
    MODE_INVALID      /* one invalid argument: the documented error, nothing written */
};

static inline enum fuzz_mode rd_mode(reader *r)
{
    const unsigned x = rd_u8(r) % 8;   /* mostly comparisons: they find the most */
    return x < 5 ? MODE_COMPARE : x < 7 ? MODE_SPECIAL : MODE_INVALID;
}

static const float fuzz_specials[] = {NAN, INFINITY, -INFINITY, 3e38f, -3e38f, 0.0f, -0.0f};
#define FUZZ_NSPECIALS (sizeof fuzz_specials / sizeof fuzz_specials[0])

static inline int is_special(float x)
{
    return !(x >= -1.0f && x <= 1.0f);
}

/* The supported ISAs, found once. */
static inline int fuzz_isas(qkv_isa isas[QKV_ISA_COUNT])
{
    static qkv_isa list[QKV_ISA_COUNT];
    static int n = -1;
    if (n < 0)
        n = supported_isas(list);
    memcpy(isas, list, sizeof list);
    return n;
}

/* Reports a broken promise and stops: libFuzzer keeps the input. */
#define FUZZ_REQUIRE(cond, ...)                                   \
    do {                                                          \
        if (!(cond)) {                                            \
            fprintf(stderr, "fuzz: %s:%d: ", __FILE__, __LINE__); \
            fprintf(stderr, __VA_ARGS__);                         \
            fputc('\n', stderr);                                  \
            abort();                                              \
        }                                                         \
    } while (0)

/* The fuzz targets count their work in these, printed at exit. */
static unsigned long fuzz_runs[QKV_ISA_COUNT], fuzz_cases[3];

static inline void fuzz_print_counts(void)
{
    fprintf(stderr, "fuzz counts: inputs compare=%lu special=%lu invalid=%lu; ISA runs:",
            fuzz_cases[0], fuzz_cases[1], fuzz_cases[2]);
    for (int i = 0; i < QKV_ISA_COUNT; i++)
        if (fuzz_runs[i])
            fprintf(stderr, " %s=%lu", qkv_isa_name((qkv_isa)i), fuzz_runs[i]);
    fputc('\n', stderr);
}

/* Registers the counter print once (libFuzzer exits through exit()). */
static inline void fuzz_init_once(void)
{
    static int done;
    if (!done) {
        done = 1;
        atexit(fuzz_print_counts);
    }
}

/* What every target does first: the counters, and the mode of this input
   (its first byte). */
static inline enum fuzz_mode fuzz_begin(reader *r)
{
    fuzz_init_once();
    const enum fuzz_mode mode = rd_mode(r);
    fuzz_cases[mode]++;
    return mode;
}

#endif /* QKV_FUZZ_COMMON_H */

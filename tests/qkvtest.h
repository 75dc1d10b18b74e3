/*
 * The one test support header: the tolerances and why, a seeded generator,
 * sentinel-guarded buffers, a pass/fail tally, and the list of ISAs this
 * machine runs. checkasm, the reliability tests (badinput, concurrency,
 * soak, alloc, stack) and the fuzz targets all use it, so a seed means the
 * same numbers and a sentinel the same bits everywhere.
 *
 * Header-only with static inline functions so that each test is one source
 * file plus the oracle, and unused helpers cost no -Wunused warning.
 */
#ifndef QKV_TEST_H
#define QKV_TEST_H

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qkv.h"

/* ---- tolerances --------------------------------------------------------- */

/* The accuracy contract of API.md and include/qkv.h: for f32 inputs in
   [-1, 1], |V| <= 1 and scale <= 1 every ISA stays within 1e-5 (absolute)
   of the double oracle (a larger scale spreads the scores, and f32's
   relative error in them grows with it: scale 2 at head_dim 47 has shown
   1.6e-5, on AVX2 as on the others). Outputs that are not bounded by 1 (scores, sums of n products)
   scale it by their magnitude where they assert it. */
#define TOL 1e-5
/* lse is a logarithm of a sum that can reach kv_len·e^max: its float error
   grows with its magnitude, so it gets the same bound relative to
   max(1, |lse|). */
#define TOL_LSE_REL 1e-5
/* The tutorial's worked example (checkasm's seed group) states its numbers
   to 6 decimals. */
#define TOL_SEED 1e-6

/* ---- tally -------------------------------------------------------------- */

typedef struct tally {
    unsigned long passed, failed;
    /* Optional context printed with a failure: "FAIL [isa] fn: ..." and
       "(seed N)", so that a failure in CI can be rerun as it happened. */
    const char *isa, *fn;
    const uint64_t *seed;
} tally;

/* Records one assertion; prints the failing case (printf-style) so that a
   failure in CI can be reproduced without a debugger. Returns cond. */
static inline int tally_vcheck(tally *t, int cond, const char *fmt, va_list ap)
{
    if (cond) {
        t->passed++;
        return 1;
    }
    t->failed++;
    if (t->failed <= 200) {           /* a systematic bug would flood the log */
        fputs("FAIL", stdout);
        if (t->isa || t->fn)
            printf(" [%s] %s", t->isa ? t->isa : "-", t->fn ? t->fn : "-");
        fputs(": ", stdout);
        vprintf(fmt, ap);
        if (t->seed)
            printf(" (seed %" PRIu64 ")", *t->seed);
        fputc('\n', stdout);
    }
    return 0;
}

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static inline int tally_check(tally *t, int cond, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    const int ok = tally_vcheck(t, cond, fmt, ap);
    va_end(ap);
    return ok;
}

/* The closing line CI reads, and the exit status. */
static inline int tally_finish(const tally *t)
{
    printf("%lu passed, %lu failed\n", t->passed, t->failed);
    return t->failed ? 1 : 0;
}

/* ---- ISAs --------------------------------------------------------------- */

/* Fills isas[] with every ISA this build and CPU support, scalar first, so
   that ISAs added later are tested without touching the tests. */
static inline int supported_isas(qkv_isa isas[QKV_ISA_COUNT])
{
    int n = 0;
    for (int i = 0; i < QKV_ISA_COUNT; i++)
        if (qkv_isa_supported((qkv_isa)i))
            isas[n++] = (qkv_isa)i;
    return n;
}

static inline const qkv_funcs *funcs_of(qkv_isa isa)
{
    const qkv_funcs *f = NULL;
    if (qkv_isa_funcs(isa, &f) != QKV_OK)
        return NULL;
    return f;
}

/* ---- random numbers ----------------------------------------------------- */

/* splitmix64: tiny, seedable, the same sequence on every machine. Each test
   keeps its own state; the derived draws below are fixed, so that a printed
   seed reproduces a run after this header changes. */
static inline uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Uniform in [-1, 1] from 53 bits: the range the accuracy promise of API.md
   covers. */
static inline float rng_unit(uint64_t *s)
{
    return (float)((double)(rng_next(s) >> 11) * (2.0 / 9007199254740992.0) - 1.0);
}

/* Uniform in [lo, hi) from 24 bits, one float's mantissa (checkasm's draw). */
static inline float rng_float(uint64_t *s, float lo, float hi)
{
    return lo + (hi - lo) * (float)((rng_next(s) >> 40) * (1.0 / 16777216.0));
}

/* An integer in [lo, hi], both included. */
static inline size_t rng_range(uint64_t *s, size_t lo, size_t hi)
{
    return lo + (size_t)(rng_next(s) % (hi - lo + 1));
}

/* 1 with the given chance in percent. */
static inline int rng_percent(uint64_t *s, int percent)
{
    return (int)(rng_next(s) % 100) < percent;
}

static inline void fill_unit(uint64_t *s, float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] = rng_unit(s);
}

static inline void fill_range(uint64_t *s, float *x, size_t n, float lo, float hi)
{
    for (size_t i = 0; i < n; i++)
        x[i] = rng_float(s, lo, hi);
}

/* malloc that ends the test on failure: a test has no better answer. */
static inline void *test_malloc(size_t bytes)
{
    void *p = malloc(bytes ? bytes : 1);
    if (!p) {
        fprintf(stderr, "out of memory for a test buffer of %zu bytes\n", bytes);
        exit(2);
    }
    return p;
}

/* x[0, n) stored as dtype t in a new buffer of exactly its bytes (NULL
   for f32, which is used as it is), and x replaced by the stored values
   widened back, so that an oracle sees what the kernels read. Through f's
   converters (the tests pass the scalar reference's). */
static inline void *test_store_as(const qkv_funcs *f, float *x, size_t n, qkv_dtype t)
{
    if (t == QKV_F32)
        return NULL;
    const size_t bytes = t == QKV_Q8_0 ? n / 32 * 34 : t == QKV_Q4_0 ? n / 32 * 18 : n * 2;
    void *st = test_malloc(bytes);
    if (f->convert(n, x, QKV_F32, st, t) != QKV_OK || f->convert(n, st, t, x, QKV_F32) != QKV_OK) {
        fprintf(stderr, "qkv_convert of %zu values to dtype %d failed\n", n, (int)t);
        exit(2);
    }
    return st;
}

/* Inputs of exactly n floats, no slack around them, so that ASan and
   valgrind see any read past the end. */
static inline float *new_unit_floats(uint64_t *s, size_t n)
{
    float *x = test_malloc(n * sizeof *x);
    fill_unit(s, x, n);
    return x;
}

static inline float *new_floats_in(uint64_t *s, size_t n, float lo, float hi)
{
    float *x = test_malloc(n * sizeof *x);
    fill_range(s, x, n, lo, hi);
    return x;
}

/* ---- sentinel buffers --------------------------------------------------- */

/* A NaN with a payload no kernel produces (a computed NaN is the default
   quiet NaN 0x7fc00000 or its sign flip, or carries an input's payload):
   a stray write of any computed value, NaN included, changes the bits. */
#define SENTINEL_BITS 0x7fa5a5a5u

static inline float sentinel(void)
{
    float f;
    uint32_t u = SENTINEL_BITS;
    memcpy(&f, &u, sizeof f);
    return f;
}

static inline int is_sentinel(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u == SENTINEL_BITS;
}

/* A buffer of n floats with `pad` sentinel floats before and after it. */
typedef struct pbuf {
    float *base, *data;
    size_t n, pad;
} pbuf;

#define PBUF_PAD 64   /* one cache line of floats each side, wider than any vector */

/* With lined, data starts on a 64-byte line (PBUF_PAD floats are whole
   lines), as kernels that stream to memory need; else wherever malloc
   puts it. */
static inline pbuf pbuf_new_at(size_t n, int lined)
{
    pbuf b = {NULL, NULL, n, PBUF_PAD};
    const size_t bytes = (n + 2 * b.pad) * sizeof(float);
    b.base = lined ? aligned_alloc(64, (bytes + 63) / 64 * 64) : test_malloc(bytes);
    if (!b.base) {
        fprintf(stderr, "out of memory for a test buffer of %zu bytes\n", bytes);
        exit(2);
    }
    b.data = b.base + b.pad;
    for (size_t i = 0; i < n + 2 * b.pad; i++)
        b.base[i] = sentinel();
    return b;
}

static inline pbuf pbuf_new(size_t n)
{
    return pbuf_new_at(n, 0);
}

static inline void pbuf_free(pbuf *b)
{
    free(b->base);
    b->base = b->data = NULL;
}

/* Whether the padding on both sides still holds the sentinel. */
static inline int pbuf_guards_ok(const pbuf *b)
{
    for (size_t i = 0; i < b->pad; i++)
        if (!is_sentinel(b->base[i]) || !is_sentinel(b->base[b->pad + b->n + i]))
            return 0;
    return 1;
}

/* Whether every float of the buffer, padding included, is the sentinel:
   "nothing written" for an output that was sentinel-filled before a call. */
static inline int pbuf_untouched(const pbuf *b)
{
    for (size_t i = 0; i < b->n + 2 * b->pad; i++)
        if (!is_sentinel(b->base[i]))
            return 0;
    return 1;
}

static inline void pbuf_reset(pbuf *b)
{
    for (size_t i = 0; i < b->n + 2 * b->pad; i++)
        b->base[i] = sentinel();
}

/* ---- strided tensors ---------------------------------------------------- */

/* Elements spanned by a [n0][n1][n2][len] tensor with the given strides. */
static inline size_t tensor_elems(size_t n0, size_t s0, size_t n1, size_t s1, size_t n2,
                                  size_t s2, size_t len)
{
    return (n0 - 1) * s0 + (n1 - 1) * s1 + (n2 - 1) * s2 + len;
}

/* Marks in `own` (one byte per element) the elements a tensor covers. */
static inline void tensor_mark(unsigned char *own, size_t n0, size_t s0, size_t n1, size_t s1,
                               size_t n2, size_t s2, size_t len)
{
    for (size_t a = 0; a < n0; a++)
        for (size_t b = 0; b < n1; b++)
            for (size_t c = 0; c < n2; c++)
                memset(own + a * s0 + b * s1 + c * s2, 1, len);
}

/* Whether every element of the output buffer that the call does not own
   (gaps between rows, padding) still holds the sentinel. */
static inline int gaps_untouched(const pbuf *b, const unsigned char *own)
{
    if (!pbuf_guards_ok(b))
        return 0;
    for (size_t i = 0; i < b->n; i++)
        if (!own[i] && !is_sentinel(b->data[i]))
            return 0;
    return 1;
}

/* ---- comparisons -------------------------------------------------------- */

/* Half a unit in the last place of a 16-bit output near |x| <= 2: f16
   keeps 11 significant bits (subnormal spacing 2^-24), bf16 8. */
static inline double half_ulp(qkv_dtype t, double x)
{
    if (t == QKV_F32)
        return 0;
    int e;
    frexp(fabs(x), &e);   /* |x| in [2^(e-1), 2^e) */
    if (t == QKV_F16)
        return ldexp(1, (e - 1 > -14 ? e - 1 : -14) - 11);
    return ldexp(1, e - 1 - 8);
}

/* The output element at `at` (an element index) as f32, whatever its
   dtype, widened through f's converter (the tests pass the scalar
   reference's). */
static inline float out_value(const qkv_funcs *f, const qkv_out_tensor *o, size_t at)
{
    if (o->dtype == QKV_F32)
        return ((const float *)o->data)[at];
    float x;
    f->convert(1, (const uint16_t *)o->data + at, o->dtype, &x, QKV_F32);
    return x;
}

/* For a 16-bit output: its halves outside the written cells still hold the
   halves of the sentinel floats. */
static inline int guarded_intact16(const pbuf *g, const unsigned char *cells, size_t n16)
{
    if (!pbuf_guards_ok(g))
        return 0;
    uint16_t sentinel[2];
    const uint32_t bits = SENTINEL_BITS;
    memcpy(sentinel, &bits, sizeof sentinel);
    const uint16_t *h = (const uint16_t *)g->data;
    for (size_t i = 0; i < 2 * g->n; i++)
        if (!(i < n16 && cells[i]) && h[i] != sentinel[i % 2])
            return 0;
    return 1;
}

/* |got - want| <= tol, with NaN equal only to NaN and an infinity only to
   the same infinity. */
static inline int close_to(double got, double want, double tol)
{
    if (isnan(want) || isnan(got))
        return isnan(want) && isnan(got);
    if (isinf(want) || isinf(got))
        return got == want;
    return fabs(got - want) <= tol;
}

static inline int same_bits(const float *a, const float *b, size_t n)
{
    return memcmp(a, b, n * sizeof *a) == 0;
}

/* ---- resident memory ---------------------------------------------------- */

/* Resident set size in bytes from /proc/self/statm (0 if unavailable). */
static inline size_t rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size = 0, resident = 0;
    if (!f)
        return 0;
    if (fscanf(f, "%lu %lu", &size, &resident) != 2)
        resident = 0;
    fclose(f);
    return (size_t)resident * (size_t)sysconf(_SC_PAGESIZE);
}

/* Whether this build runs under AddressSanitizer, whose redzones and fake
   stacks change stack frames, and whose allocator holds freed memory
   (quarantine) and shadows it; ThreadSanitizer shadows memory too. Under
   either, RSS figures mean nothing. */
#if defined(__SANITIZE_ADDRESS__)
#define QKV_TEST_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define QKV_TEST_ASAN 1
#endif
#endif
#ifndef QKV_TEST_ASAN
#define QKV_TEST_ASAN 0
#endif
#if defined(__SANITIZE_THREAD__)
#define QKV_TEST_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define QKV_TEST_TSAN 1
#endif
#endif
#ifndef QKV_TEST_TSAN
#define QKV_TEST_TSAN 0
#endif
#define QKV_TEST_SANITIZED (QKV_TEST_ASAN || QKV_TEST_TSAN)

/* Whether the process runs under valgrind, whose own shadow memory shows in
   RSS: valgrind preloads its vgpreload_*.so into the client. */
static inline int under_valgrind(void)
{
    const char *p = getenv("LD_PRELOAD");
    return p && strstr(p, "vgpreload") != NULL;
}

/* The largest |a - b| over a rows × len matrix; a NaN on one side only is
   an infinite difference (fmax would silently drop it). */
static inline double max_diff(const float *a, const float *b, size_t rows, size_t ld, size_t len)
{
    double worst = 0;
    for (size_t i = 0; i < rows; i++)
        for (size_t c = 0; c < len; c++) {
            const float x = a[i * ld + c], y = b[i * ld + c];
            if (isnan(x) != isnan(y))
                return INFINITY;
            const double e = isnan(x) ? 0 : fabs((double)x - y);
            if (e > worst)
                worst = e;
        }
    return worst;
}

#endif /* QKV_TEST_H */

/*
 * Small helpers shared by the reliability tests (badinput, concurrency,
 * soak) and the fuzz targets: a seeded generator, sentinel-filled padded
 * buffers, a pass/fail tally, and the list of ISAs this machine runs.
 *
 * Header-only with static inline functions so that each test is one source
 * file plus the oracle, and unused helpers cost no -Wunused warning.
 */
#ifndef QKV_TEST_H
#define QKV_TEST_H

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qkv.h"

/* ---- tally -------------------------------------------------------------- */

typedef struct tally {
    unsigned long passed, failed;
} tally;

/* Records one assertion; prints the failing case (printf-style) so that a
   failure in CI can be reproduced without a debugger. Returns cond. */
static inline int tally_check(tally *t, int cond, const char *fmt, ...)
{
    if (cond) {
        t->passed++;
        return 1;
    }
    t->failed++;
    if (t->failed <= 200) {           /* a systematic bug would flood the log */
        va_list ap;
        va_start(ap, fmt);
        fputs("FAIL: ", stdout);
        vprintf(fmt, ap);
        fputc('\n', stdout);
        va_end(ap);
    }
    return 0;
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

/* splitmix64: tiny, seedable, and good enough for test data. */
static inline uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Uniform in [-1, 1]: the range the accuracy promise of API.md covers. */
static inline float rng_unit(uint64_t *s)
{
    return (float)((double)(rng_next(s) >> 11) * (2.0 / 9007199254740992.0) - 1.0);
}

static inline void fill_unit(uint64_t *s, float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] = rng_unit(s);
}

/* ---- sentinel buffers --------------------------------------------------- */

/* A NaN with a payload no computation produces: a stray write of any
   computed value, NaN included, changes the bits. */
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

static inline pbuf pbuf_new(size_t n)
{
    pbuf b = {NULL, NULL, n, PBUF_PAD};
    b.base = malloc((n + 2 * b.pad) * sizeof(float));
    if (!b.base) {
        fprintf(stderr, "out of memory for a test buffer of %zu floats\n", n);
        exit(2);
    }
    b.data = b.base + b.pad;
    for (size_t i = 0; i < n + 2 * b.pad; i++)
        b.base[i] = sentinel();
    return b;
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

/* Whether this build runs under a sanitizer whose allocator holds freed
   memory (quarantine) or shadows it, so RSS figures mean nothing. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define QKV_TEST_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define QKV_TEST_SANITIZED 1
#endif
#endif
#ifndef QKV_TEST_SANITIZED
#define QKV_TEST_SANITIZED 0
#endif

/* Whether the process runs under valgrind, whose own shadow memory shows in
   RSS: valgrind preloads its vgpreload_*.so into the client. */
static inline int under_valgrind(void)
{
    const char *p = getenv("LD_PRELOAD");
    return p && strstr(p, "vgpreload") != NULL;
}

#endif /* QKV_TEST_H */

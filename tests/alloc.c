/*
 * Every heap allocation libqkv makes, counted, against include/qkv.h:
 *   1. a call without a threading hook allocates nothing, on every ISA and
 *      through the dispatcher: the three stages, and qkv_attention on shapes
 *      that take each path of the fused driver and kernels;
 *   2. a hooked call that splits the keys allocates one merge buffer, of at
 *      most 64 · 64 · (v_head_dim + 2) floats, whatever kv_len;
 *   3. QKV_ERR_NOMEM: when memory or a thread cannot be had, qkv_pool_create
 *      and a split hooked qkv_attention fail with nothing written and nothing
 *      left behind, and succeed again once memory is back.
 *
 * The test is linked with -Wl,--wrap=malloc (and calloc, realloc, free,
 * aligned_alloc, posix_memalign, pthread_create: tests/meson.build), so these
 * calls from the static libqkv and from this file land in __wrap_* below.
 * They count only inside a window opened around the call under test, which
 * keeps the test's own buffers out of the figures, and fail on demand.
 * Allocations inside libc itself (a thread's stack) are not seen: they are
 * not qkv's. Pool workers call in from other threads, hence the atomics.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>

#include "qkvtest.h"

void *__real_malloc(size_t n);
void *__real_calloc(size_t count, size_t n);
void *__real_realloc(void *p, size_t n);
void *__real_aligned_alloc(size_t align, size_t n);
int __real_posix_memalign(void **out, size_t align, size_t n);
void __real_free(void *p);
int __real_pthread_create(pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *), void *arg);

static atomic_int counting, fail_allocs;
static atomic_long fail_thread, threads, allocs, frees, live;   /* live: blocks not yet freed */
static atomic_size_t bytes;                                     /* requested, failed ones too */

/* Counts a request; whether it is to fail. */
static int request(size_t n)
{
    if (!atomic_load(&counting))
        return 0;
    atomic_fetch_add(&allocs, 1);
    atomic_fetch_add(&bytes, n);
    return atomic_load(&fail_allocs);
}

static void *got(void *p)
{
    if (p && atomic_load(&counting))
        atomic_fetch_add(&live, 1);
    return p;
}

void *__wrap_malloc(size_t n)
{
    return request(n) ? NULL : got(__real_malloc(n));
}

void *__wrap_calloc(size_t count, size_t n)
{
    return request(count * n) ? NULL : got(__real_calloc(count, n));
}

void *__wrap_aligned_alloc(size_t align, size_t n)
{
    return request(n) ? NULL : got(__real_aligned_alloc(align, n));
}

void *__wrap_realloc(void *p, size_t n)
{
    if (request(n))
        return NULL;
    void *r = __real_realloc(p, n);
    return p ? r : got(r);   /* a moved block is still one block */
}

int __wrap_posix_memalign(void **out, size_t align, size_t n)
{
    if (request(n))
        return ENOMEM;
    const int e = __real_posix_memalign(out, align, n);
    if (!e)
        got(*out);
    return e;
}

void __wrap_free(void *p)
{
    if (atomic_load(&counting)) {
        atomic_fetch_add(&frees, 1);
        if (p)
            atomic_fetch_sub(&live, 1);
    }
    __real_free(p);
}

int __wrap_pthread_create(pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *), void *arg)
{
    if (atomic_load(&counting) && atomic_fetch_add(&threads, 1) == atomic_load(&fail_thread))
        return EAGAIN;
    return __real_pthread_create(t, attr, fn, arg);
}

typedef struct counts {
    long allocs, frees, live;
    size_t bytes;
} counts;

/* fail: every allocation returns NULL; fail_thread_at >= 0: that
   pthread_create of the window (from 0) fails. */
static void open_window(int fail, long fail_thread_at)
{
    atomic_store(&allocs, 0);
    atomic_store(&frees, 0);
    atomic_store(&live, 0);
    atomic_store(&bytes, 0);
    atomic_store(&threads, 0);
    atomic_store(&fail_allocs, fail);
    atomic_store(&fail_thread, fail_thread_at);
    atomic_store(&counting, 1);
}

static counts close_window(void)
{
    atomic_store(&counting, 0);
    return (counts){atomic_load(&allocs), atomic_load(&frees), atomic_load(&live),
                    atomic_load(&bytes)};
}

/* ---- 1. no hook, no allocation ------------------------------------------ */

static tally T;

static int all_finite(const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return 0;
    return 1;
}

/* Test buffers are made outside any window (new_unit_floats, pbuf_new). */

/* QKV_OK and a finite output prove the call really ran. */
static void expect_none(const char *what, const char *who, qkv_status st, counts c,
                        const float *out, size_t n)
{
    tally_check(&T, st == QKV_OK, "%s [%s]: status %s", what, who, qkv_status_string(st));
    tally_check(&T, all_finite(out, n), "%s [%s]: output not finite (not written?)", what, who);
    tally_check(&T, c.allocs == 0 && c.frees == 0,
                "%s [%s]: %ld allocations (%zu bytes) and %ld frees without a hook", what, who,
                c.allocs, c.bytes, c.frees);
}

static void stages(const qkv_funcs *f, const char *who, size_t m, size_t n, size_t d)
{
    uint64_t seed = 1;
    float *q = new_unit_floats(&seed, m * d), *k = new_unit_floats(&seed, n * d);
    float *v = new_unit_floats(&seed, n * d), *s = new_unit_floats(&seed, m * n);
    float *o = new_unit_floats(&seed, m * d);
    for (size_t i = 0; i < m * n; i++)   /* a NaN: an output left unwritten shows */
        s[i] = sentinel();
    for (size_t i = 0; i < m * d; i++)
        o[i] = sentinel();
    char what[64];
    snprintf(what, sizeof what, "scores %zux%zux%zu", m, n, d);
    open_window(0, -1);
    qkv_status st = f->scores(m, n, d, qkv_default_scale(d), q, d, k, d, s, n);
    expect_none(what, who, st, close_window(), s, m * n);
    snprintf(what, sizeof what, "softmax %zux%zu", m, n);
    open_window(0, -1);
    st = f->softmax(m, n, s, n);
    expect_none(what, who, st, close_window(), s, m * n);
    snprintf(what, sizeof what, "weighted_sum %zux%zux%zu", m, n, d);
    open_window(0, -1);
    st = f->weighted_sum(m, n, d, s, n, v, d, o, d);
    expect_none(what, who, st, close_window(), o, m * d);
    free(q), free(k), free(v), free(s), free(o);
}

typedef struct shape {
    const char *name;
    size_t batch, q_heads, kv_heads, q_len, kv_len, head_dim, v_head_dim;
    qkv_mask_kind mask;
    int features;   /* FEAT_* */
} shape;

enum {
    FEAT_MODIFIERS = 1,   /* broadcast additive mask, window, softcap, ALiBi, sinks */
    FEAT_BF16 = 2,        /* Q, K, V stored bf16, QKV_FPMATH_BF16 (the bf16 tiles) */
    FEAT_Q8 = 4,          /* K and V stored Q8_0 */
    FEAT_O16 = 8,         /* an f16 output */
    FEAT_PAGED = 16,      /* K and V through a page table of 16 keys a page */
};

static const shape no_hook[] = {
    {"prefill", 1, 4, 4, 200, 200, 64, 64, QKV_MASK_CAUSAL, 0},
    {"decode GQA 32/8", 1, 32, 8, 1, 5000, 128, 128, QKV_MASK_NONE, 0},
    /* 64 rows x 300 exceed the x86 kernels' packed Q^T (256 x 64 floats). */
    {"head_dim 300", 1, 2, 1, 70, 150, 300, 300, QKV_MASK_CAUSAL, 0},
    {"head_dim 40, v_head_dim 72", 1, 3, 1, 33, 97, 40, 72, QKV_MASK_NONE, 0},
    {"every feature", 2, 4, 2, 50, 180, 64, 64, QKV_MASK_ADDITIVE, FEAT_MODIFIERS},
    {"bf16 Q/K/V in BF16 mode", 1, 4, 2, 130, 200, 64, 64, QKV_MASK_CAUSAL, FEAT_BF16},
    {"paged Q8_0 decode, f16 output", 1, 32, 8, 1, 4096, 128, 128, QKV_MASK_NONE,
     FEAT_Q8 | FEAT_O16 | FEAT_PAGED},
    {"paged bf16 prefill in BF16 mode", 1, 4, 1, 70, 208, 64, 64, QKV_MASK_CAUSAL,
     FEAT_BF16 | FEAT_PAGED},
};

typedef struct problem {
    qkv_attention_desc d;
    float *q, *k, *v, *mask, *slopes, *sinks;
    void *q_st, *k_st, *v_st;   /* Q, K, V as stored, where not f32 */
    int32_t *table;
    pbuf o, lse;
} problem;

/* [batch][head][row][dim]. share_kv: every KV head reads the same rows
   (head_stride 0), which keeps a long cache of many heads small. */
static void problem_init(problem *p, const shape *s, int share_kv)
{
    uint64_t seed = 2;
    const size_t dk = s->head_dim, dv = s->v_head_dim, kvh = share_kv ? 1 : s->kv_heads;
    const size_t nq = s->batch * s->q_heads * s->q_len, nk = s->batch * kvh * s->kv_len;
    *p = (problem){.q = new_unit_floats(&seed, nq * dk), .k = new_unit_floats(&seed, nk * dk),
                   .v = new_unit_floats(&seed, nk * dv), .o = pbuf_new(nq * dv), .lse = pbuf_new(nq)};
    p->d = (qkv_attention_desc){
        .batch = s->batch, .q_heads = s->q_heads, .kv_heads = s->kv_heads, .q_len = s->q_len,
        .kv_len = s->kv_len, .head_dim = dk, .v_head_dim = dv,
        .q = {p->q, QKV_F32, s->q_heads * s->q_len * dk, s->q_len * dk, dk},
        .k = {p->k, QKV_F32, kvh * s->kv_len * dk, share_kv ? 0 : s->kv_len * dk, dk},
        .v = {p->v, QKV_F32, kvh * s->kv_len * dv, share_kv ? 0 : s->kv_len * dv, dv},
        .o = {p->o.data, s->q_heads * s->q_len * dv, s->q_len * dv, dv, QKV_F32},
        .scale = qkv_default_scale(dk), .mask = s->mask, .lse = p->lse.data,
    };
    if (s->features & (FEAT_BF16 | FEAT_Q8)) {
        const qkv_funcs *scalar = funcs_of(QKV_ISA_SCALAR);
        const qkv_dtype kv = s->features & FEAT_BF16 ? QKV_BF16 : QKV_Q8_0;
        if (s->features & FEAT_BF16) {
            p->d.q.data = p->q_st = test_store_as(scalar, p->q, nq * dk, QKV_BF16), p->d.q.dtype = QKV_BF16;
            p->d.fpmath = QKV_FPMATH_BF16;
        }
        p->d.k.data = p->k_st = test_store_as(scalar, p->k, nk * dk, kv), p->d.k.dtype = kv;
        p->d.v.data = p->v_st = test_store_as(scalar, p->v, nk * dv, kv), p->d.v.dtype = kv;
    }
    if (s->features & FEAT_O16)   /* pbuf holds o.n floats: room for as many halves */
        p->d.o.dtype = QKV_F16;
    if (s->features & FEAT_PAGED) {   /* pages in order: each head's rows as they lie */
        const size_t pages = (s->kv_len + 15) / 16;
        p->table = malloc(pages * sizeof *p->table);
        for (size_t i = 0; i < pages; i++)
            p->table[i] = (int32_t)i;
        p->d.page_size = 16, p->d.num_pages = pages, p->d.page_table = p->table;
        p->d.k_page_stride = 16 * dk, p->d.v_page_stride = 16 * dv;
        p->d.k.batch_stride = p->d.v.batch_stride = 0;
    }
    if (s->features & FEAT_MODIFIERS) {
        p->mask = new_unit_floats(&seed, s->q_len * s->kv_len);
        p->sinks = new_unit_floats(&seed, s->q_heads);
        p->slopes = new_unit_floats(&seed, s->q_heads);
        for (size_t h = 0; h < s->q_heads; h++)
            p->slopes[h] = 1.0f / (float)(8 << h);
        p->d.mask_add = (qkv_float_mask){p->mask, 0, 0, s->kv_len};   /* broadcast */
        p->d.window = s->kv_len / 3;
        p->d.softcap = 30.0f;
        p->d.alibi_slopes = p->slopes;
        p->d.sinks = p->sinks;
    }
}

static void problem_free(problem *p)
{
    free(p->q), free(p->k), free(p->v), free(p->mask), free(p->slopes), free(p->sinks);
    free(p->q_st), free(p->k_st), free(p->v_st), free(p->table);
    pbuf_free(&p->o);
    pbuf_free(&p->lse);
}

/* One call in a window, o and lse sentinel-filled first. */
static qkv_status attend(const qkv_funcs *f, problem *p, int fail, counts *c)
{
    pbuf_reset(&p->o);
    pbuf_reset(&p->lse);
    open_window(fail, -1);
    const qkv_status st = f->attention(&p->d);
    *c = close_window();
    return st;
}

/* The dispatched entry points, walked like an ISA's table. */
static const qkv_funcs dispatched = {QKV_ISA_NONE, qkv_scores, qkv_softmax, qkv_weighted_sum,
                                     qkv_attention, qkv_convert, qkv_merge_states};

/* ---- 2 and 3. with a hook, and when memory runs out ---------------------- */

/* GQA 32/8 decode: 8 jobs, which dispatch/plan.c splits into key ranges.
   Every KV head reads the same rows here (head_stride 0), so the heads
   count as side by side: the keys are split for walks (task_walk), more
   splits as kv_len grows, up to their cap: the buffer grows with them,
   and the header's bound must hold at any kv_len. */
static void hooked(qkv_pool *pool)
{
    /* include/qkv.h, qkv_attention: a hooked call that splits the keys
       "allocates one merge buffer of at most 64 · 64 · (v_head_dim + 2) floats". */
    shape s = {"pooled decode", 1, 32, 8, 1, 0, 64, 64, QKV_MASK_NONE, 0};
    const size_t bound = 64 * 64 * (s.v_head_dim + 2) * sizeof(float), lens[] = {4096, 65536};
    size_t got_bytes[2];
    problem p;
    counts c;
    for (int i = 0; i < 2; i++) {
        s.kv_len = lens[i];
        problem_init(&p, &s, 1);
        p.d.parallel_for = qkv_pool_parallel_for;
        p.d.pool = pool;
        qkv_status st = attend(&dispatched, &p, 0, &c);
        got_bytes[i] = c.bytes;
        printf("alloc: pooled decode, kv_len %zu: %ld allocation(s), %zu bytes (bound %zu)\n",
               lens[i], c.allocs, c.bytes, bound);
        tally_check(&T, st == QKV_OK && all_finite(p.o.data, p.o.n),
                    "pooled decode, kv_len %zu: status %s or output not finite", lens[i],
                    qkv_status_string(st));
        tally_check(&T, c.allocs <= 1 && c.live == 0 && c.bytes <= bound,
                    "pooled decode, kv_len %zu: %ld allocations of %zu bytes (bound %zu), "
                    "%ld not freed", lens[i], c.allocs, c.bytes, bound, c.live);
        if (i == 0) {   /* 3: no memory for the merge buffer, then memory again */
            st = attend(&dispatched, &p, 1, &c);
            tally_check(&T, st == QKV_ERR_NOMEM, "pooled decode, no memory: status %s",
                        qkv_status_string(st));
            tally_check(&T, pbuf_untouched(&p.o) && pbuf_untouched(&p.lse),
                        "pooled decode, no memory: o or lse written");
            tally_check(&T, c.live == 0, "pooled decode, no memory: %ld blocks leaked", c.live);
            st = attend(&dispatched, &p, 0, &c);
            tally_check(&T, st == QKV_OK && all_finite(p.o.data, p.o.n) && c.live == 0,
                        "pooled decode, memory back: status %s, %ld blocks not freed",
                        qkv_status_string(st), c.live);
        }
        problem_free(&p);
    }
    tally_check(&T, got_bytes[0] <= got_bytes[1],
                "pooled decode: %zu bytes at kv_len 4096 but %zu at 65536", got_bytes[0],
                got_bytes[1]);

    /* Keys not split (prefill): QKV_ERR_NOMEM is for splits only. */
    problem_init(&p, &no_hook[0], 0);
    p.d.parallel_for = qkv_pool_parallel_for;
    p.d.pool = pool;
    const qkv_status st = attend(&dispatched, &p, 1, &c);
    tally_check(&T, st == QKV_OK && c.allocs == 0, "pooled prefill, no memory: status %s, "
                "%ld allocations", qkv_status_string(st), c.allocs);
    problem_free(&p);
}

/* API.md: nothing is written to an output on error, so *out keeps its value;
   qkv.h: "nothing is left behind". */
static void pool_nomem(void)
{
    static char marker;
    qkv_pool *const before = (qkv_pool *)(void *)&marker, *p = before;
    const char *why[] = {"no memory", "no second thread", "memory back"};
    for (int i = 0; i < 3; i++) {
        open_window(i == 0, i == 1 ? 1 : -1);   /* i == 1: the first worker is running */
        const qkv_status st = qkv_pool_create(3, &p), want = i < 2 ? QKV_ERR_NOMEM : QKV_OK;
        if (st == QKV_OK)
            qkv_pool_destroy(p);
        const counts c = close_window();
        tally_check(&T, st == want && (st == QKV_OK || p == before) && c.live == 0,
                    "qkv_pool_create, %s: status %s (want %s), *out %s, %ld blocks not freed",
                    why[i], qkv_status_string(st), qkv_status_string(want),
                    p == before ? "unchanged" : "changed", c.live);
    }
}

int main(void)
{
    qkv_isa isas[QKV_ISA_COUNT];
    const int n = supported_isas(isas);
    const qkv_funcs *table[QKV_ISA_COUNT + 1];
    const char *name[QKV_ISA_COUNT + 1];
    printf("alloc: ISAs");
    for (int i = 0; i < n; i++) {
        table[i] = funcs_of(isas[i]);
        printf(" %s", name[i] = qkv_isa_name(isas[i]));
    }
    printf(", then dispatched (%s)\n", qkv_isa_name(qkv_isa_get()));
    table[n] = &dispatched;
    name[n] = "dispatched";

    for (int i = 0; i <= n; i++) {
        stages(table[i], name[i], 37, 131, 70);
        stages(table[i], name[i], 300, 300, 128);
    }
    for (size_t s = 0; s < sizeof no_hook / sizeof no_hook[0]; s++) {
        problem p;
        problem_init(&p, &no_hook[s], 0);
        for (int i = 0; i <= n; i++) {
            counts c;
            const qkv_status st = attend(table[i], &p, 0, &c);
            /* An f16 output fills the first half of the floats (two finite
               halves make a finite float). */
            expect_none(no_hook[s].name, name[i], st, c, p.o.data,
                        p.d.o.dtype == QKV_F16 ? p.o.n / 2 : p.o.n);
            tally_check(&T, all_finite(p.lse.data, p.lse.n), "%s [%s]: lse not finite",
                        no_hook[s].name, name[i]);
        }
        problem_free(&p);
    }

    qkv_pool *pool = NULL;
    if (qkv_pool_create(2, &pool) != QKV_OK) {
        fprintf(stderr, "alloc: no pool\n");
        return 2;
    }
    hooked(pool);
    qkv_pool_destroy(pool);
    pool_nomem();
    return tally_finish(&T);
}

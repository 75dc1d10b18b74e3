/*
 * Soak and memory: many calls through a pool without memory growth, pool
 * create/destroy cycles without growth, and a decode over 10^6 keys whose
 * peak memory stays at the inputs (the fused path keeps O(tile) state,
 * API.md: nothing proportional to kv_len).
 *
 *   soak [--quick]     --quick: 10^4 calls and 200 cycles (valgrind)
 *
 * Under ASan or TSan the allocator keeps freed memory in quarantine and
 * maps shadow memory, and under valgrind RSS is valgrind's own, so RSS
 * figures say nothing: the calls still run (and the tool checks them), the
 * RSS assertions are skipped and say so.
 */
#include <sys/resource.h>

#include "oracle.h"
#include "qkvtest.h"

static tally T;
static int rss_meaningless;   /* a sanitizer or valgrind owns the figures */

static long peak_rss_kib(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;   /* KiB on Linux */
}

typedef struct problem {
    qkv_attention_desc d;
    float *q, *k, *v, *o, *lse;
} problem;

static void problem_init(problem *p, size_t heads, size_t q_len, size_t kv_len, size_t dim,
                         uint64_t seed)
{
    memset(p, 0, sizeof *p);
    qkv_attention_desc *d = &p->d;
    d->batch = 1;
    d->q_heads = heads;
    d->kv_heads = 1;
    d->q_len = q_len;
    d->kv_len = kv_len;
    d->head_dim = d->v_head_dim = dim;
    d->scale = qkv_default_scale(dim);
    /* Writing every element makes the inputs resident before measuring. */
    p->q = new_unit_floats(&seed, heads * q_len * dim);
    p->k = new_unit_floats(&seed, kv_len * dim);
    p->v = new_unit_floats(&seed, kv_len * dim);
    p->o = test_malloc(heads * q_len * dim * sizeof(float));
    p->lse = test_malloc(heads * q_len * sizeof(float));
    memset(p->o, 0, heads * q_len * dim * sizeof(float));
    d->q = (qkv_tensor){p->q, QKV_F32, 0, q_len * dim, dim};
    d->k = (qkv_tensor){p->k, QKV_F32, 0, 0, dim};
    d->v = (qkv_tensor){p->v, QKV_F32, 0, 0, dim};
    d->o = (qkv_out_tensor){p->o, heads * q_len * dim, q_len * dim, dim, QKV_F32};
    d->lse = p->lse;
}

static void problem_free(problem *p)
{
    free(p->q);
    free(p->k);
    free(p->v);
    free(p->o);
    free(p->lse);
}

static int near_oracle(const problem *p)
{
    const size_t rows = p->d.q_heads * p->d.q_len, dv = p->d.v_head_dim;
    double *ro = malloc(rows * dv * sizeof *ro), *rl = malloc(rows * sizeof *rl);
    oracle_attention(&p->d, ro, rl);
    int ok = 1;
    for (size_t i = 0; i < rows * dv; i++)
        ok &= close_to(p->o[i], ro[i], TOL);
    for (size_t i = 0; i < rows; i++)      /* a log-sum: relative to its size */
        ok &= close_to(p->lse[i], rl[i], TOL_LSE_REL * fmax(1.0, fabs(rl[i])));
    free(ro);
    free(rl);
    return ok;
}

/* A decode over 10^6 keys: peak RSS may not grow past the inputs. */
static void decode_peak(void)
{
    const size_t kv_len = 1000000, dim = 8;
    qkv_pool *pool = NULL;
    qkv_pool_create(2, &pool);
    problem p;
    problem_init(&p, 2, 1, kv_len, dim, 7);
    const size_t inputs = 2 * kv_len * dim * sizeof(float);
    for (int hook = 0; hook < 2; hook++) {
        p.d.parallel_for = hook ? qkv_pool_parallel_for : NULL;
        p.d.pool = hook ? pool : NULL;
        const long before = peak_rss_kib();
        const qkv_status st = qkv_attention(&p.d);
        const long grew = peak_rss_kib() - before;
        tally_check(&T, st == QKV_OK, "decode kv_len 10^6%s: status %s", hook ? " (pool)" : "",
                    qkv_status_string(st));
        tally_check(&T, near_oracle(&p), "decode kv_len 10^6%s: off the oracle",
                    hook ? " (pool)" : "");
        /* 2 MiB: a few tiles, the split partials and thread stacks touched
           for the first time; one float per key would already be 4 MB. */
        const long limit_kib = 2048;
        printf("soak: decode kv_len %zu, %s: inputs %.1f MiB, peak RSS grew %ld KiB%s\n", kv_len,
               hook ? "qkv_pool (split keys)" : "no hook", inputs / 1048576.0, grew,
               rss_meaningless ? " (not asserted under a sanitizer or valgrind)" : "");
        if (!rss_meaningless)
            tally_check(&T, grew <= limit_kib,
                        "decode kv_len 10^6%s: peak RSS grew %ld KiB (limit %ld)",
                        hook ? " (pool)" : "", grew, limit_kib);
    }
    problem_free(&p);
    qkv_pool_destroy(pool);
}

/* Many calls through the pool: RSS after a warm-up must not grow. */
static void many_calls(unsigned long calls)
{
    qkv_pool *pool = NULL;
    qkv_pool_create(3, &pool);
    problem small, split;
    problem_init(&small, 2, 4, 16, 8, 1);
    problem_init(&split, 1, 1, 1100, 8, 2);   /* allocates its merge buffers per call */
    small.d.parallel_for = split.d.parallel_for = qkv_pool_parallel_for;
    small.d.pool = split.d.pool = pool;
    unsigned long bad = 0;
    for (unsigned long i = 0; i < 1000; i++)   /* warm-up: arenas, thread stacks */
        bad += qkv_attention(i % 100 ? &small.d : &split.d) != QKV_OK;
    const size_t before = rss_bytes();
    for (unsigned long i = 0; i < calls; i++)
        bad += qkv_attention(i % 100 ? &small.d : &split.d) != QKV_OK;
    const size_t after = rss_bytes();
    tally_check(&T, bad == 0, "%lu of %lu pooled calls failed", bad, calls);
    tally_check(&T, near_oracle(&small) && near_oracle(&split), "pooled calls off the oracle");
    const long grew_kib = ((long)after - (long)before) / 1024;
    printf("soak: %lu calls through qkv_pool: RSS %zu -> %zu KiB (%+ld KiB)%s\n", calls,
           before / 1024, after / 1024, grew_kib,
           rss_meaningless ? " (not asserted under a sanitizer or valgrind)" : "");
    /* 256 KiB: malloc may keep a few more pages; a leak of even 8 bytes per
       call would be 800 KiB over 10^5 calls. */
    if (!rss_meaningless)
        tally_check(&T, grew_kib <= 256, "RSS grew %ld KiB over %lu calls", grew_kib, calls);
    problem_free(&small);
    problem_free(&split);
    qkv_pool_destroy(pool);
}

static void count_task(void *ctx, size_t i)
{
    (void)i;
    __atomic_fetch_add((unsigned long *)ctx, 1, __ATOMIC_RELAXED);
}

/* Pools created, used and destroyed over and over. */
static void pool_cycles(unsigned long cycles)
{
    unsigned long ran = 0, bad = 0;
    size_t before = 0;
    for (unsigned long i = 0; i < cycles + 50; i++) {
        if (i == 50)
            before = rss_bytes();               /* after a warm-up */
        qkv_pool *p = NULL;
        if (qkv_pool_create(1 + i % 4, &p) != QKV_OK) {
            bad++;
            continue;
        }
        qkv_pool_parallel_for(p, 16, count_task, &ran);
        qkv_pool_destroy(p);
    }
    const size_t after = rss_bytes();
    const long grew_kib = ((long)after - (long)before) / 1024;
    tally_check(&T, bad == 0 && ran == 16 * (cycles + 50), "pool cycles: %lu failed, %lu tasks ran",
                bad, ran);
    printf("soak: %lu pool create/destroy cycles: RSS %+ld KiB%s\n", cycles, grew_kib,
           rss_meaningless ? " (not asserted under a sanitizer or valgrind)" : "");
    if (!rss_meaningless)
        tally_check(&T, grew_kib <= 256, "RSS grew %ld KiB over %lu pool cycles", grew_kib, cycles);
}

int main(int argc, char **argv)
{
    const int quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
    rss_meaningless = QKV_TEST_SANITIZED || under_valgrind();
    printf("soak: ISA %s\n", qkv_isa_name(qkv_isa_get()));
    decode_peak();             /* first: the peak is still the inputs' */
    many_calls(quick ? 10000 : 100000);
    pool_cycles(quick ? 200 : 2000);
    return tally_finish(&T);
}

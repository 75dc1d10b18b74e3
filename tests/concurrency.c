/*
 * Many threads calling every entry point at once, for TSan and for plain
 * runs: through the dispatcher while another thread keeps switching the
 * process-wide ISA, through each ISA's table, with and without a threading
 * hook (qkv's own pool, and a second, independent pthread pool written
 * here), while a further thread creates and destroys pools.
 *
 * Every result is checked: a dispatched call may run on any ISA (the choice
 * changes under it), so it is held to the documented tolerance against the
 * double oracle; a call through one ISA's table must be bit-identical to
 * that ISA's result computed beforehand on one thread, whatever the number
 * of threads behind the hook (API.md: the split depends on the shapes and strides only).
 *
 *   concurrency [--quick]     --quick: fewer iterations (valgrind, TSan)
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

#include "oracle.h"
#include "qkvtest.h"

/* ---- a second pool, independent of qkv's -------------------------------- */

/* The simplest correct pool: indices handed out under one mutex, the
   caller works too, one parallel_for at a time (others wait on `submit`). */
typedef struct mypool {
    pthread_mutex_t submit, lock;
    pthread_cond_t go, done;
    unsigned long generation;
    int stop;
    qkv_task_fn task;
    void *ctx;
    size_t count, next, finished;
    unsigned nworkers;
    pthread_t th[4];
} mypool;

/* Runs indices until none is left; called and returns with `lock` held. */
static void mypool_drain(mypool *p)
{
    while (p->next < p->count) {
        const size_t i = p->next++;
        qkv_task_fn task = p->task;
        void *ctx = p->ctx;
        pthread_mutex_unlock(&p->lock);
        task(ctx, i);
        pthread_mutex_lock(&p->lock);
        if (++p->finished == p->count)
            pthread_cond_broadcast(&p->done);
    }
}

static void *mypool_worker(void *arg)
{
    mypool *p = arg;
    unsigned long seen = 0;
    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (!p->stop && p->generation == seen)
            pthread_cond_wait(&p->go, &p->lock);
        if (p->stop)
            break;
        seen = p->generation;
        mypool_drain(p);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

static void mypool_init(mypool *p, unsigned workers)
{
    memset(p, 0, sizeof *p);
    pthread_mutex_init(&p->submit, NULL);
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->go, NULL);
    pthread_cond_init(&p->done, NULL);
    p->nworkers = workers;
    for (unsigned t = 0; t < workers; t++)
        pthread_create(&p->th[t], NULL, mypool_worker, p);
}

static void mypool_fini(mypool *p)
{
    pthread_mutex_lock(&p->lock);
    p->stop = 1;
    pthread_cond_broadcast(&p->go);
    pthread_mutex_unlock(&p->lock);
    for (unsigned t = 0; t < p->nworkers; t++)
        pthread_join(p->th[t], NULL);
    pthread_cond_destroy(&p->done);
    pthread_cond_destroy(&p->go);
    pthread_mutex_destroy(&p->lock);
    pthread_mutex_destroy(&p->submit);
}

/* A qkv_parallel_for_fn. */
static void mypool_parallel_for(void *pool, size_t count, qkv_task_fn task, void *ctx)
{
    mypool *p = pool;
    pthread_mutex_lock(&p->submit);
    pthread_mutex_lock(&p->lock);
    p->task = task;
    p->ctx = ctx;
    p->count = count;
    p->next = p->finished = 0;
    p->generation++;
    pthread_cond_broadcast(&p->go);
    mypool_drain(p);
    while (p->finished < p->count)
        pthread_cond_wait(&p->done, &p->lock);
    pthread_mutex_unlock(&p->lock);
    pthread_mutex_unlock(&p->submit);
}

/* ---- the problems ------------------------------------------------------- */

enum { P_SCORES, P_SOFTMAX, P_WSUM, P_ATT_PREFILL, P_ATT_DECODE, P_ATT_MASKED, P_ATT_SPANS, NPROB };
static const char *const prob_name[NPROB] = {"scores", "softmax", "weighted_sum",
                                             "attention prefill", "attention decode (split keys)",
                                             "attention masked",
                                             "attention decode (heads side by side, walks)"};

/* Stage shapes: not multiples of any vector width. */
enum { SM = 7, SN = 45, SD = 33, SDV = 17 };

static float *in_q, *in_k, *in_s, *in_p, *in_v;   /* stage inputs */
static double *oracle_out[NPROB], *oracle_lse[NPROB];
static size_t out_len[NPROB], lse_len[NPROB];

typedef struct att_problem {
    qkv_attention_desc d;          /* o.data and lse unset: per call */
    float *q, *k, *v, *mask, *alibi, *sinks;
} att_problem;
static att_problem att[NPROB];

/* Per ISA: the result without a hook, and with a hook on one thread. */
static float *ref_plain[QKV_ISA_COUNT][NPROB], *ref_hook[QKV_ISA_COUNT][NPROB];
static float *ref_lse_plain[QKV_ISA_COUNT][NPROB], *ref_lse_hook[QKV_ISA_COUNT][NPROB];

static qkv_isa isas[QKV_ISA_COUNT];
static int nisa;

static void make_attention(int p, size_t batch, size_t qh, size_t kvh, size_t ql, size_t kl,
                           size_t d, size_t dv, uint64_t seed)
{
    att_problem *a = &att[p];
    qkv_attention_desc *de = &a->d;
    memset(de, 0, sizeof *de);
    de->batch = batch;
    de->q_heads = qh;
    de->kv_heads = kvh;
    de->q_len = ql;
    de->kv_len = kl;
    de->head_dim = d;
    de->v_head_dim = dv;
    de->scale = qkv_default_scale(d);
    a->q = new_unit_floats(&seed, batch * qh * ql * d);
    a->k = new_unit_floats(&seed, batch * kvh * kl * d);
    a->v = new_unit_floats(&seed, batch * kvh * kl * dv);
    a->mask = new_unit_floats(&seed, qh * ql * kl);
    a->alibi = new_unit_floats(&seed, qh);
    a->sinks = new_unit_floats(&seed, qh);
    for (size_t h = 0; h < qh; h++)
        a->alibi[h] *= 0.125f;   /* real slopes are 2^-k */
    de->q = (qkv_tensor){a->q, QKV_F32, qh * ql * d, ql * d, d};
    de->k = (qkv_tensor){a->k, QKV_F32, kvh * kl * d, kl * d, d};
    de->v = (qkv_tensor){a->v, QKV_F32, kvh * kl * dv, kl * dv, dv};
    de->o = (qkv_out_tensor){NULL, qh * ql * dv, ql * dv, dv, QKV_F32};
    out_len[p] = batch * qh * ql * dv;
    lse_len[p] = batch * qh * ql;
}

static void setup_problems(void)
{
    uint64_t seed = 2024;
    in_q = new_unit_floats(&seed, SM * SD);
    in_k = new_unit_floats(&seed, SN * SD);
    in_s = new_unit_floats(&seed, SM * SN);
    in_p = new_unit_floats(&seed, SM * SN);
    in_v = new_unit_floats(&seed, SN * SDV);
    for (size_t i = 0; i < SM * SN; i++)
        in_s[i] *= 8.0f;                     /* softmax sees score-sized inputs */
    out_len[P_SCORES] = SM * SN;
    out_len[P_SOFTMAX] = SM * SN;
    out_len[P_WSUM] = SM * SDV;

    make_attention(P_ATT_PREFILL, 2, 4, 2, 9, 37, 32, 24, 11);
    att[P_ATT_PREFILL].d.mask = QKV_MASK_CAUSAL;
    att[P_ATT_PREFILL].d.alibi_slopes = att[P_ATT_PREFILL].alibi;
    att[P_ATT_PREFILL].d.sinks = att[P_ATT_PREFILL].sinks;
    /* One query row and 1500 keys: with a hook the keys are split. */
    make_attention(P_ATT_DECODE, 1, 2, 1, 1, 1500, 16, 16, 12);
    make_attention(P_ATT_MASKED, 1, 3, 3, 6, 29, 20, 9, 13);
    att[P_ATT_MASKED].d.mask = QKV_MASK_ADDITIVE;
    att[P_ATT_MASKED].d.mask_add = (qkv_float_mask){att[P_ATT_MASKED].mask, 0, 6 * 29, 29};
    att[P_ATT_MASKED].d.window = 7;
    att[P_ATT_MASKED].d.softcap = 2.0f;
    /* K/V as [kv_len][kv_heads][dim], the heads side by side: with a hook
       the keys are split, and each split's jobs walked together. */
    make_attention(P_ATT_SPANS, 1, 3, 3, 1, 2100, 8, 8, 14);
    att[P_ATT_SPANS].d.k = (qkv_tensor){att[P_ATT_SPANS].k, QKV_F32, 3 * 2100 * 8, 8, 3 * 8};
    att[P_ATT_SPANS].d.v = (qkv_tensor){att[P_ATT_SPANS].v, QKV_F32, 3 * 2100 * 8, 8, 3 * 8};

    for (int p = 0; p < NPROB; p++) {
        oracle_out[p] = malloc(out_len[p] * sizeof(double));
        oracle_lse[p] = lse_len[p] ? malloc(lse_len[p] * sizeof(double)) : NULL;
    }
    oracle_scores(SM, SN, SD, 0.25, in_q, SD, in_k, SD, oracle_out[P_SCORES]);
    oracle_softmax(SM, SN, in_s, SN, oracle_out[P_SOFTMAX]);
    oracle_weighted_sum(SM, SN, SDV, in_p, SN, in_v, SDV, oracle_out[P_WSUM]);
    for (int p = P_ATT_PREFILL; p < NPROB; p++)
        oracle_attention(&att[p].d, oracle_out[p], oracle_lse[p]);
}

/* Runs problem p with functions f and hook (NULL: none) into out/lse. */
static qkv_status run(int p, const qkv_funcs *f, qkv_parallel_for_fn hook, void *pool,
                      float *out, float *lse)
{
    switch (p) {
    case P_SCORES:
        return f->scores(SM, SN, SD, 0.25f, in_q, SD, in_k, SD, out, SN);
    case P_SOFTMAX:
        memcpy(out, in_s, SM * SN * sizeof *out);
        return f->softmax(SM, SN, out, SN);
    case P_WSUM:
        return f->weighted_sum(SM, SN, SDV, in_p, SN, in_v, SDV, out, SDV);
    default: {
        qkv_attention_desc d = att[p].d;
        d.o.data = out;
        d.lse = lse;
        d.parallel_for = hook;
        d.pool = pool;
        return f->attention(&d);
    }
    }
}

/* Within the documented tolerance of the oracle. */
static int near_oracle(int p, const float *out, const float *lse)
{
    for (size_t i = 0; i < out_len[p]; i++) {
        /* Scores and weighted sums are not bounded by 1: their error scales
           with d (resp. n) terms of size <= 1 times the scale. */
        const double tol = p == P_SCORES ? TOL * SD * 0.25 : p == P_WSUM ? TOL * SN : TOL;
        if (!close_to(out[i], oracle_out[p][i], tol))
            return 0;
    }
    for (size_t i = 0; i < lse_len[p]; i++)   /* a log-sum: relative to its size */
        if (!close_to(lse[i], oracle_lse[p][i], TOL_LSE_REL * fmax(1.0, fabs(oracle_lse[p][i]))))
            return 0;
    return 1;
}

/* ---- the threads -------------------------------------------------------- */

static atomic_int stop_switching;
static atomic_ulong switches, calls_checked, pool_cycles;
static atomic_ulong fails;
static qkv_pool *shared_qkv_pool;
static mypool my_pools[3];          /* 1, 2 and 3 threads in all */
static unsigned long iterations = 1500;

/* One broken check: counted, and the first few printed. */
static void fail(const char *fmt, int p, const char *how, qkv_isa isa)
{
    if (atomic_fetch_add(&fails, 1) < 20) {
        printf("FAIL: ");
        printf(fmt, prob_name[p], how, qkv_isa_name(isa));
        printf("\n");
    }
}

static void fail_msg(const char *msg, qkv_isa isa)
{
    if (atomic_fetch_add(&fails, 1) < 20)
        printf("FAIL: %s (%s)\n", msg, qkv_isa_name(isa));
}

static void *caller_thread(void *arg)
{
    uint64_t seed = (uint64_t)(uintptr_t)arg * 7919 + 1;
    size_t maxout = 0, maxlse = 1;
    for (int p = 0; p < NPROB; p++) {
        maxout = out_len[p] > maxout ? out_len[p] : maxout;
        maxlse = lse_len[p] > maxlse ? lse_len[p] : maxlse;
    }
    float *out = malloc(maxout * sizeof *out), *lse = malloc(maxlse * sizeof *lse);
    static const qkv_funcs dispatched = {QKV_ISA_NONE, qkv_scores, qkv_softmax, qkv_weighted_sum,
                                         qkv_attention, qkv_convert, qkv_merge_states};
    for (unsigned long it = 0; it < iterations; it++) {
        const int p = (int)(rng_next(&seed) % NPROB);
        const int path = (int)(rng_next(&seed) % 4);
        const qkv_isa isa = isas[rng_next(&seed) % (uint64_t)nisa];
        const int is_att = p >= P_ATT_PREFILL;
        qkv_status st;
        switch (path) {
        case 0:   /* dispatched, no hook: whatever ISA is current */
            st = run(p, &dispatched, NULL, NULL, out, is_att ? lse : NULL);
            if (st != QKV_OK || !near_oracle(p, out, lse))
                fail("%s via %s: off the oracle (ISA about %s)", p, "dispatcher", qkv_isa_get());
            break;
        case 1:   /* dispatched, qkv's pool shared by all threads */
            st = run(p, &dispatched, qkv_pool_parallel_for, shared_qkv_pool, out,
                     is_att ? lse : NULL);
            if (st != QKV_OK || !near_oracle(p, out, lse))
                fail("%s via %s: off the oracle (ISA about %s)", p, "dispatcher + qkv_pool",
                     qkv_isa_get());
            break;
        case 2: { /* one ISA's table, the test's pool with 1-3 threads */
            const qkv_funcs *f = funcs_of(isa);
            mypool *mp = &my_pools[rng_next(&seed) % 3];
            st = run(p, f, mypool_parallel_for, mp, out, is_att ? lse : NULL);
            if (st != QKV_OK || !same_bits(out, ref_hook[isa][p], out_len[p]) ||
                (is_att && !same_bits(lse, ref_lse_hook[isa][p], lse_len[p])))
                fail("%s via %s on %s: not bit-identical to one thread", p, "table + test pool", isa);
            break;
        }
        default: { /* one ISA's table, no hook */
            st = run(p, funcs_of(isa), NULL, NULL, out, is_att ? lse : NULL);
            if (st != QKV_OK || !same_bits(out, ref_plain[isa][p], out_len[p]) ||
                (is_att && !same_bits(lse, ref_lse_plain[isa][p], lse_len[p])))
                fail("%s via %s on %s: differs from the same call alone", p, "table", isa);
            break;
        }
        }
        atomic_fetch_add(&calls_checked, 1);
    }
    free(out);
    free(lse);
    return NULL;
}

/* Switches the process-wide ISA among the supported ones, and reads the
   dispatch state, until the callers are done. */
static void *switcher_thread(void *arg)
{
    (void)arg;
    unsigned long n = 0;
    while (!atomic_load(&stop_switching)) {
        const qkv_isa isa = isas[n % (unsigned long)nisa];
        if (qkv_isa_set(isa) != QKV_OK || !qkv_isa_supported(qkv_isa_get()) ||
            !qkv_isa_supported(qkv_isa_best()))
            fail_msg("qkv_isa_set or the state read back failed", isa);
        const qkv_funcs *f = NULL;
        if (qkv_isa_funcs(isa, &f) != QKV_OK || f->isa != isa)
            fail_msg("qkv_isa_funcs gave no table or another ISA's", isa);
        (void)qkv_status_string(QKV_ERR_ARG);
        (void)qkv_isa_name(isa);
        n++;
        /* A yield now and then lets the callers run on a busy machine
           without letting the choice sit still for long. */
        if (n % 16 == 0)
            sched_yield();
    }
    atomic_store(&switches, n);
    return NULL;
}

static void count_task(void *ctx, size_t i)
{
    atomic_fetch_add((atomic_ulong *)ctx, i + 1);
}

/* Pools created, used and destroyed while everything else runs. */
static void *pool_cycler_thread(void *arg)
{
    (void)arg;
    unsigned long n = 0;
    while (!atomic_load(&stop_switching)) {
        qkv_pool *p = NULL;
        if (qkv_pool_create(1 + n % 3, &p) != QKV_OK) {
            fail_msg("qkv_pool_create failed", QKV_ISA_SCALAR);
            break;
        }
        atomic_ulong sum = 0;
        qkv_pool_parallel_for(p, 10, count_task, &sum);
        if (atomic_load(&sum) != 55)
            fail_msg("qkv_pool_parallel_for lost or repeated tasks", QKV_ISA_SCALAR);
        qkv_pool_destroy(p);
        n++;
    }
    atomic_store(&pool_cycles, n);
    return NULL;
}

int main(int argc, char **argv)
{
    tally T = {0};
    unsigned ncallers = 6;
    if (argc > 1 && strcmp(argv[1], "--quick") == 0) {
        iterations = 150;
        ncallers = 4;
    }
    nisa = supported_isas(isas);
    setup_problems();

    /* The references, on this thread alone. */
    mypool serial;
    mypool_init(&serial, 0);
    for (int i = 0; i < nisa; i++) {
        const qkv_isa isa = isas[i];
        for (int p = 0; p < NPROB; p++) {
            ref_plain[isa][p] = malloc(out_len[p] * sizeof(float));
            ref_hook[isa][p] = malloc(out_len[p] * sizeof(float));
            ref_lse_plain[isa][p] = malloc((lse_len[p] + 1) * sizeof(float));
            ref_lse_hook[isa][p] = malloc((lse_len[p] + 1) * sizeof(float));
            const int is_att = p >= P_ATT_PREFILL;
            const qkv_status a = run(p, funcs_of(isa), NULL, NULL, ref_plain[isa][p],
                                     is_att ? ref_lse_plain[isa][p] : NULL);
            const qkv_status b = run(p, funcs_of(isa), mypool_parallel_for, &serial,
                                     ref_hook[isa][p], is_att ? ref_lse_hook[isa][p] : NULL);
            tally_check(&T, a == QKV_OK && b == QKV_OK, "reference run of %s on %s", prob_name[p],
                        qkv_isa_name(isa));
            tally_check(&T, near_oracle(p, ref_plain[isa][p], ref_lse_plain[isa][p]) &&
                                near_oracle(p, ref_hook[isa][p], ref_lse_hook[isa][p]),
                        "%s on %s alone is off the oracle", prob_name[p], qkv_isa_name(isa));
        }
    }
    mypool_fini(&serial);

    qkv_pool_create(3, &shared_qkv_pool);
    for (unsigned t = 0; t < 3; t++)
        mypool_init(&my_pools[t], t);

    const qkv_isa start = qkv_isa_get();
    pthread_t callers[8], switcher, cycler;
    pthread_create(&switcher, NULL, switcher_thread, NULL);
    pthread_create(&cycler, NULL, pool_cycler_thread, NULL);
    for (unsigned t = 0; t < ncallers; t++)
        pthread_create(&callers[t], NULL, caller_thread, (void *)(uintptr_t)(t + 1));
    for (unsigned t = 0; t < ncallers; t++)
        pthread_join(callers[t], NULL);
    atomic_store(&stop_switching, 1);
    pthread_join(switcher, NULL);
    pthread_join(cycler, NULL);
    qkv_isa_set(start);

    for (unsigned t = 0; t < 3; t++)
        mypool_fini(&my_pools[t]);
    qkv_pool_destroy(shared_qkv_pool);

    const unsigned long checked = atomic_load(&calls_checked), bad = atomic_load(&fails);
    T.passed += checked - (bad < checked ? bad : checked);
    T.failed += bad;
    printf("concurrency: %d ISA(s), %u caller threads x %lu calls (%lu checked), %lu ISA switches, "
           "%lu pool create/destroy cycles\n",
           nisa, ncallers, iterations, checked, atomic_load(&switches), atomic_load(&pool_cycles));

    for (int i = 0; i < nisa; i++)
        for (int p = 0; p < NPROB; p++) {
            free(ref_plain[isas[i]][p]);
            free(ref_hook[isas[i]][p]);
            free(ref_lse_plain[isas[i]][p]);
            free(ref_lse_hook[isas[i]][p]);
        }
    for (int p = 0; p < NPROB; p++) {
        free(oracle_out[p]);
        free(oracle_lse[p]);
        if (p >= P_ATT_PREFILL) {
            free(att[p].q); free(att[p].k); free(att[p].v);
            free(att[p].mask); free(att[p].alibi); free(att[p].sinks);
        }
    }
    free(in_q); free(in_k); free(in_s); free(in_p); free(in_v);
    return tally_finish(&T);
}

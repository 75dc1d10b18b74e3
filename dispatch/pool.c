/*
 * qkv's own thread pool: workers sleep on a condition variable, a
 * parallel_for hands out indices through an atomic counter, and the calling
 * thread works too. One parallel_for runs at a time per pool.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "error.h"
#include "qkv.h"

struct qkv_pool {
    pthread_mutex_t submit;       /* one parallel_for at a time */
    pthread_mutex_t lock;         /* guards the fields below */
    pthread_cond_t wake;          /* a new generation or stop */
    pthread_cond_t idle;          /* a worker left the current generation */
    unsigned long generation;
    int stop;
    unsigned busy;                /* workers inside the current generation */
    qkv_task_fn task;
    void *ctx;
    size_t count;
    atomic_size_t next;           /* next index to hand out */
    unsigned nthreads;            /* extra threads */
    pthread_t threads[];
};

/* The pool whose task this thread is running, so that a nested call runs
   inline instead of waiting for itself. */
static _Thread_local const qkv_pool *running_in;

static void work(qkv_pool *pool, qkv_task_fn task, void *ctx, size_t count)
{
    const qkv_pool *outer = running_in;
    running_in = pool;
    for (size_t i; (i = atomic_fetch_add(&pool->next, 1)) < count;)
        task(ctx, i);
    running_in = outer;
}

static void *worker(void *arg)
{
    qkv_pool *pool = arg;
    unsigned long seen = 0;
    pthread_mutex_lock(&pool->lock);
    for (;;) {
        while (!pool->stop && pool->generation == seen)
            pthread_cond_wait(&pool->wake, &pool->lock);
        if (pool->stop)
            break;
        seen = pool->generation;
        qkv_task_fn task = pool->task;
        void *ctx = pool->ctx;
        size_t count = pool->count;
        pool->busy++;
        pthread_mutex_unlock(&pool->lock);
        work(pool, task, ctx, count);
        pthread_mutex_lock(&pool->lock);
        if (--pool->busy == 0)
            pthread_cond_signal(&pool->idle);
    }
    pthread_mutex_unlock(&pool->lock);
    return NULL;
}

static void stop_workers(qkv_pool *pool, unsigned started)
{
    pthread_mutex_lock(&pool->lock);
    pool->stop = 1;
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->lock);
    for (unsigned t = 0; t < started; t++)
        pthread_join(pool->threads[t], NULL);
}

qkv_status qkv_pool_create(unsigned threads, qkv_pool **out)
{
    if (!out)
        return qkv_fail(QKV_ERR_ARG, "qkv_pool_create: out is NULL");
    const unsigned extra = threads > 1 ? threads - 1 : 0;
    qkv_pool *pool = calloc(1, sizeof *pool + extra * sizeof(pthread_t));
    if (!pool)
        return qkv_fail(QKV_ERR_NOMEM, "qkv_pool_create(%u): no memory for the pool", threads);
    pthread_mutex_init(&pool->submit, NULL);
    pthread_mutex_init(&pool->lock, NULL);
    pthread_cond_init(&pool->wake, NULL);
    pthread_cond_init(&pool->idle, NULL);
    atomic_init(&pool->next, 0);
    for (unsigned t = 0; t < extra; t++) {
        const int err = pthread_create(&pool->threads[t], NULL, worker, pool);
        if (err != 0) {
            stop_workers(pool, t);
            pool->nthreads = 0;
            qkv_pool_destroy(pool);
            return qkv_fail(QKV_ERR_NOMEM, "qkv_pool_create(%u): pthread_create failed (error %d) "
                            "for worker %u", threads, err, t + 1);
        }
    }
    pool->nthreads = extra;
    *out = pool;
    return QKV_OK;
}

void qkv_pool_destroy(qkv_pool *pool)
{
    if (!pool)
        return;
    stop_workers(pool, pool->nthreads);
    pthread_cond_destroy(&pool->idle);
    pthread_cond_destroy(&pool->wake);
    pthread_mutex_destroy(&pool->lock);
    pthread_mutex_destroy(&pool->submit);
    free(pool);
}

void qkv_pool_parallel_for(void *arg, size_t count, qkv_task_fn task, void *ctx)
{
    qkv_pool *pool = arg;
    if (!count || !task)
        return;
    if (!pool || pool->nthreads == 0 || running_in == pool || count == 1) {
        for (size_t i = 0; i < count; i++)
            task(ctx, i);
        return;
    }
    pthread_mutex_lock(&pool->submit);
    pthread_mutex_lock(&pool->lock);
    /* A worker that woke late for the previous call may still be on its way
       out (it found no index left); let it go before `next` is reset. */
    while (pool->busy)
        pthread_cond_wait(&pool->idle, &pool->lock);
    pool->task = task;
    pool->ctx = ctx;
    pool->count = count;
    atomic_store(&pool->next, 0);
    pool->generation++;
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->lock);

    work(pool, task, ctx, count);

    /* Every index is handed out; wait for the workers still running one.
       A worker that wakes after this finds no index left. */
    pthread_mutex_lock(&pool->lock);
    while (pool->busy)
        pthread_cond_wait(&pool->idle, &pool->lock);
    pthread_mutex_unlock(&pool->lock);
    pthread_mutex_unlock(&pool->submit);
}

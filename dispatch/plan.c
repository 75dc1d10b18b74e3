/*
 * The planner of the fused attention: the work of a validated descriptor
 * split into jobs (query rows of one KV head against a range of its keys),
 * each run by the ISA's attention kernel with a workspace on this stack,
 * and finished here: the sink term, 1/L, the output dtype and lse.
 *
 * The split depends on the shapes, the dtypes and the ISA (and on whether a
 * threading hook is given), never on the number of threads: with a hook
 * the output is bit-identical for any thread count.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "geometry.h"
#include "plan.h"

/* Splitting the keys pays when the other dimensions give too few tasks
   to keep a many-core machine busy; a split shorter than SPLIT_MIN_KEYS
   would cost more in merging than it gains. */
#define SPLIT_TARGET_TASKS 32
#define SPLIT_MIN_KEYS 512
/* It also pays where the KV heads lie side by side in memory (each key's
   row holds every head, or each page does, as in vLLM's
   [pages][kv_heads][page_size][dim]): walked one head after another, each
   head's rows come in short runs with the other heads' bytes between them,
   which the hardware prefetchers fetch past the run's end for nothing.
   Cut into spans of at most SPLIT_SPAN_KEYS keys and walked span by span
   (every head's tasks of a span before the next span's), the neighbours'
   bytes are read while still in cache. Zen 3, AVX2, a 1-thread pool, 32/8
   heads, d 128, 32768 f32 keys, paired with the walk head after head (4
   splits of 8192 keys): vLLM's pages of 16 keys 0.71-0.80 of the time
   (23-29 ms; contiguous K/V 22-27), [kv_len][kv_heads][dim] 0.63-0.74;
   spans of 4096 keys: the same for pages, 10-20% slower for
   [kv_len][kv_heads][dim]; of 8192 (emulated, no hook) 10% slower. With 2
   threads pages of 16 stayed at 1.00 (0.75-1.0 of contiguous's speed in a
   noisy hour, left alone), [kv_len][kv_heads][dim] took 0.68-0.70. The tasks stay within
   the merge buffer's documented bound (SPLIT_MAX_TASKS · QKV_ATTN_MAX_ROWS
   = 64 · 64 rows). */
#define SPLIT_SPAN_KEYS 2048
#define SPLIT_MAX_TASKS 128
/* Rows of the jobs task_walk takes at a time: two floats each on its
   stack (512 bytes; the avx2 decode's deepest stack grew by 88 bytes),
   16 KV heads of a GQA group of 4. */
#define WALK_ROWS 64
/* With a hook and more jobs than spans of SPLIT_SPAN_KEYS fit in
   SPLIT_MAX_TASKS tasks (a batch of long sequences), each sequence's jobs
   are walked span by span as one task instead, when that gives at least
   this many tasks. Zen 3, AVX2, 16 sequences, 32/8 heads, d 128, vLLM's
   pages of 16 keys, paired against head after head: 32768 keys each 0.77
   of the time with a 1-thread pool, 0.76-0.83 with 2; 8192 keys 0.84. */
#define WALK_MIN_TASKS 16

typedef struct plan {
    const qkv_attention_desc *d;
    const qkv_ctx *ctx;
    size_t group;                 /* query heads per KV head */
    size_t cap;                   /* the most rows a job may have */
    size_t jobs;                  /* over all sequences */
    size_t seq_jobs;              /* jobs of each sequence of a regular batch */
    size_t splits, split_len;     /* key ranges per job (1: no split) */
    int by_span;                  /* split tasks go split by split (else job by job) */
    size_t walk_jobs;             /* jobs task_walk can take at a time (0: no walk) */
    int walk;                     /* the splits are walked by task_walk */
    size_t part_rows;             /* the most rows a job has: a partial's row count */
    size_t acc_floats;            /* per row, when acc cannot be the output row */
    size_t ws_floats;             /* each job's workspace (on run_job's stack) */
    float *partial;               /* hooked splits: per task, a partial */
} plan;

/* How the rows of one sequence are cut into jobs: a job is a block of
   query rows; when there are few rows (decode) it takes several heads of
   the GQA group, so that each key serves them all. */
typedef struct seq_split {
    size_t rows_per_job, row_blocks, heads_per_job, head_blocks, jobs;
} seq_split;

static seq_split split_of(const plan *p, size_t rows)
{
    seq_split s = {0, 0, 0, 0, 0};
    if (!rows)
        return s;
    s.rows_per_job = rows < p->cap ? rows : p->cap;
    s.heads_per_job = p->cap / s.rows_per_job;
    if (s.heads_per_job > p->group)
        s.heads_per_job = p->group;
    s.head_blocks = (p->group + s.heads_per_job - 1) / s.heads_per_job;
    s.row_blocks = (rows + s.rows_per_job - 1) / s.rows_per_job;
    s.jobs = p->d->kv_heads * s.head_blocks * s.row_blocks;
    return s;
}

static size_t round16(size_t n)
{
    return (n + 15) & ~(size_t)15;
}

/* The most rows a job can have so that its acc rows (when the output is
   not f32) and the kernel's workspace fit QKV_ATTN_WS_FLOATS, and the
   workspace that takes (all of it for a head_dim so large that even one
   row does not fit: the kernel then works in chunks). */
static size_t rows_cap(const qkv_ctx *ctx, const qkv_attention_desc *d, size_t acc_floats,
                       size_t *ws_floats)
{
    const qkv_attn_shape s = {d->head_dim, d->v_head_dim, d->q.dtype, d->k.dtype, d->v.dtype,
                              d->mask == QKV_MASK_ADDITIVE, d->fpmath};
    size_t rows = ctx->blocks.max_rows, need = 0;
    for (;; rows /= 2) {
        need = rows * acc_floats + ctx->attention_ws(rows, &s);
        if (need <= QKV_ATTN_WS_FLOATS || rows == 1)
            break;
    }
    *ws_floats = need < QKV_ATTN_WS_FLOATS ? (need ? need : 1) : QKV_ATTN_WS_FLOATS;
    return rows;
}

/* Whether K or V keeps the KV heads side by side: closer together than
   its rows, or than its pages. */
static int heads_interleaved(const qkv_attention_desc *d)
{
    if (d->kv_heads < 2)
        return 0;
    const qkv_tensor *t[2] = {&d->k, &d->v};
    const size_t page_stride[2] = {d->k_page_stride, d->v_page_stride};
    for (int i = 0; i < 2; i++)
        if (t[i]->head_stride < t[i]->row_stride ||
            (d->page_size && t[i]->head_stride < page_stride[i]))
            return 1;
    return 0;
}

/* A job's partial result over a split of the keys: its rows' acc, then
   their max, then their sum (part_rows of each). */
static size_t partial_floats(const plan *p)
{
    return p->part_rows * (p->d->v_head_dim + 2);
}

static void make_plan(plan *p, const qkv_attention_desc *d, const qkv_ctx *ctx)
{
    memset(p, 0, sizeof *p);
    p->d = d;
    p->ctx = ctx;
    p->group = d->q_heads / d->kv_heads;
    p->acc_floats = d->o.dtype != QKV_F32 ? round16(d->v_head_dim) : 0;
    p->cap = rows_cap(ctx, d, p->acc_floats, &p->ws_floats);
    for (size_t b = 0; b < (d->q_start ? d->batch : 1); b++) {
        const seq_split s = split_of(p, d->q_start ? seq_rows(d, b) : d->q_len);
        if (p->part_rows < s.rows_per_job * s.heads_per_job)
            p->part_rows = s.rows_per_job * s.heads_per_job;
        if (d->q_start)
            p->jobs += s.jobs;
        else
            p->seq_jobs = s.jobs, p->jobs = d->batch * s.jobs;
    }
    p->splits = 1;
    p->split_len = d->kv_len;
    p->by_span = heads_interleaved(d);
    /* task_walk: each job's rows accumulate in the (f32) output rows, a
       later span's acc rows go to the job's workspace, which must have
       room for them beside the kernel's own. */
    if (p->by_span && p->part_rows && d->o.dtype == QKV_F32 && d->v_head_dim <= QKV_ATTN_WS_FLOATS) {
        const qkv_attn_shape sh = {d->head_dim, d->v_head_dim, d->q.dtype, d->k.dtype, d->v.dtype,
                                   d->mask == QKV_MASK_ADDITIVE, d->fpmath};
        const size_t acc = p->part_rows * round16(d->v_head_dim);
        if (acc <= p->ws_floats && ctx->attention_ws(p->part_rows, &sh) <= p->ws_floats - acc)
            p->walk_jobs = WALK_ROWS / p->part_rows;
    }
    if (p->jobs && d->kv_len >= 2 * SPLIT_MIN_KEYS && (d->parallel_for || p->walk_jobs)) {
        size_t want = d->parallel_for ? (SPLIT_TARGET_TASKS + p->jobs - 1) / p->jobs : 1;
        if (p->by_span) {
            const size_t spans = (d->kv_len + SPLIT_SPAN_KEYS - 1) / SPLIT_SPAN_KEYS;
            if (want < spans)
                want = spans;
            p->walk = p->walk_jobs && (!d->parallel_for || (want > SPLIT_MAX_TASKS / p->jobs &&
                                                            d->batch >= WALK_MIN_TASKS));
            if (!p->walk && want > SPLIT_MAX_TASKS / p->jobs)
                want = SPLIT_MAX_TASKS / p->jobs;
        }
        if (want > d->kv_len / SPLIT_MIN_KEYS)
            want = d->kv_len / SPLIT_MIN_KEYS;
        if (want > 1) {
            /* Whole tiles keep the kernels' tiles aligned. */
            const size_t tile = ctx->blocks.tile_keys;
            p->split_len = ((d->kv_len + want - 1) / want + tile - 1) / tile * tile;
            p->splits = (d->kv_len + p->split_len - 1) / p->split_len;
        }
    }
}

/* The visible keys of query position pos within [lo, hi). */
static void visible_keys(const qkv_attention_desc *d, ptrdiff_t pos, size_t lo, size_t hi,
                         size_t *begin, size_t *end)
{
    if (d->mask == QKV_MASK_CAUSAL) {
        const size_t last = pos < 0 ? 0 : (size_t)pos + 1;
        if (hi > last)
            hi = last;
    }
    /* Keys j > pos - window: only a position at least `window` keys in
       cuts anything, and comparing in size_t keeps any window valid (a
       cast to ptrdiff_t would turn windows >= 2^63 negative). */
    if (d->window && pos >= 0 && (size_t)pos >= d->window) {
        const size_t first = (size_t)pos - d->window + 1;
        if (lo < first)
            lo = first;
    }
    if (lo >= hi)
        lo = hi = 0;
    *begin = lo;
    *end = hi;
}

/* Job coordinates of a job index. */
typedef struct job_place {
    size_t b, g, h0, h1, i0, i1;  /* batch, KV head, query heads [h0,h1), rows [i0,i1) */
    size_t keys;                  /* the sequence's keys */
} job_place;

/* The place of job `job` of sequence b. */
static job_place place_in_seq(const plan *p, size_t b, size_t job)
{
    const qkv_attention_desc *d = p->d;
    job_place w;
    w.b = b;
    const size_t rows = seq_rows(d, b);
    const seq_split s = split_of(p, rows);
    const size_t rb = job % s.row_blocks;
    job /= s.row_blocks;
    const size_t hb = job % s.head_blocks;
    w.g = job / s.head_blocks;
    w.h0 = w.g * p->group + hb * s.heads_per_job;
    w.h1 = w.h0 + s.heads_per_job;
    if (w.h1 > (w.g + 1) * p->group)
        w.h1 = (w.g + 1) * p->group;
    w.i0 = rb * s.rows_per_job;
    w.i1 = w.i0 + s.rows_per_job < rows ? w.i0 + s.rows_per_job : rows;
    w.keys = seq_keys(d, w.b);
    return w;
}

/* Jobs go sequence by sequence; a ragged batch finds its sequence by
   walking them (O(batch) per job, no memory). */
static job_place place_of(const plan *p, size_t job)
{
    const qkv_attention_desc *d = p->d;
    if (!d->q_start)
        return place_in_seq(p, job / p->seq_jobs, job % p->seq_jobs);
    size_t b = 0;
    for (;; b++) {
        const size_t n = split_of(p, seq_rows(d, b)).jobs;
        if (job < n)
            break;
        job -= n;
    }
    return place_in_seq(p, b, job);
}

/* Output row (b, h, i), in the output's dtype. */
static void *out_row(const qkv_attention_desc *d, size_t b, size_t h, size_t i)
{
    const size_t at = row_offset(d, d->o.batch_stride, d->o.head_stride, d->o.row_stride, b, h, i);
    return (unsigned char *)d->o.data + qkv_dtype_bytes(d->o.dtype, at);
}

/* The softmax denominator joined by the sink, then o = acc / L in the
   output's dtype (acc is scaled in place when it is not the output row),
   and lse. */
static void finish_row(const plan *p, size_t b, size_t h, size_t i, float *acc, float max,
                       float sum)
{
    const qkv_attention_desc *d = p->d;
    void *o = out_row(d, b, h, i);
    float scale = 1.0f;
    if (d->sinks) {
        const float sink = d->sinks[h];
        if (sink > max) {          /* also when no key was seen (max = -inf) */
            scale = expf(max - sink);
            sum = sum * scale + 1.0f;
            max = sink;
        } else {
            sum += expf(sink - max);
        }
    }
    const size_t dv = d->v_head_dim;
    if (sum == 0.0f) {             /* no key and no sink: zeros, not 0/0 */
        memset(o, 0, qkv_dtype_bytes(d->o.dtype, dv));   /* +0 in every dtype */
    } else {
        const float inv = scale / sum;
        float *f = d->o.dtype == QKV_F32 ? o : acc;
        for (size_t c = 0; c < dv; c++)
            f[c] = acc[c] * inv;
        if (d->o.dtype != QKV_F32)
            p->ctx->conv.from_f32[d->o.dtype](dv, acc, o);
    }
    if (d->lse)
        d->lse[lse_index(d, b, h, i)] = sum == 0.0f ? -INFINITY : max + logf(sum);
}

/* Merges a row's result over a later split of the keys (pacc, pmax, psum)
   into its result so far (acc, *max, *sum). */
static void merge_row(size_t dv, float *acc, float *max, float *sum, const float *pacc,
                      float pmax, float psum)
{
    /* A split that saw no key adds nothing. One whose scores were all NaN
       also reports max = -inf, but its sum is NaN and must reach the
       output: skip on the sum, not the max. */
    if (psum == 0.0f)
        return;
    if (*sum == 0.0f) {     /* nothing yet: take this split as it is */
        memcpy(acc, pacc, dv * sizeof *acc);
        *max = pmax;
        *sum = psum;
        return;
    }
    const float top = pmax > *max ? pmax : *max;
    const float a = expf(*max - top), c = expf(pmax - top);
    *sum = *sum * a + psum * c;
    for (size_t k = 0; k < dv; k++)
        acc[k] = acc[k] * a + pacc[k] * c;
    *max = top;
}

/* One operand's rows for KV head g of sequence b. */
static qkv_kv_src kv_src(const plan *p, const qkv_tensor *t, size_t page_stride, size_t b,
                         size_t g)
{
    const qkv_attention_desc *d = p->d;
    qkv_kv_src s;
    s.row_bytes = qkv_dtype_bytes(t->dtype, t->row_stride);
    s.dtype = t->dtype;
    s.to_f32 = t->dtype == QKV_F32 ? NULL : p->ctx->conv.to_f32[t->dtype];
    if (d->page_size) {
        s.base = (const unsigned char *)t->data + qkv_dtype_bytes(t->dtype, g * t->head_stride);
        s.page_bytes = qkv_dtype_bytes(t->dtype, page_stride);
        s.page_size = d->page_size;
        s.pages = d->page_table + b * d->page_table_stride;
    } else {
        s.base = (const unsigned char *)t->data +
                 qkv_dtype_bytes(t->dtype, b * t->batch_stride + g * t->head_stride);
        s.page_bytes = 0;
        s.page_size = SIZE_MAX;
        s.pages = NULL;
    }
    return s;
}

/* Fills the rows of a job for the keys of split s (all keys when not
   split) and runs the kernel. Results go to the output rows directly (f32
   output), through acc rows in the workspace (other dtypes), or to
   `partial` (acc rows, then max and sum) when the keys are split. With
   `running` (task_walk; f32 output), the rows' max and then their sum
   (part_rows each): split 0 leaves acc in the output rows and its max and
   sum there, a later split merges into them from acc rows in the
   workspace. */
static void run_job(const plan *p, const job_place w, size_t s, float *partial,
                    float *running)
{
    const qkv_attention_desc *d = p->d;
    size_t lo = s * p->split_len, hi = lo + p->split_len;
    hi = hi < w.keys ? hi : w.keys;
    lo = lo < hi ? lo : hi;
    /* At most QKV_ATTN_WS_FLOATS: the bound of the stack this call uses. */
    _Alignas(64) float ws[p->ws_floats];
    qkv_attn_row rows[QKV_ATTN_MAX_ROWS];
    const size_t acc_rows = partial              ? 0
                            : running && s > 0 ? round16(d->v_head_dim)
                                               : p->acc_floats;   /* per row, in ws */
    qkv_attn_job j = {
        .k = kv_src(p, &d->k, d->k_page_stride, w.b, w.g),
        .v = kv_src(p, &d->v, d->v_page_stride, w.b, w.g),
        .q_dtype = d->q.dtype,
        .q_to_f32 = d->q.dtype == QKV_F32 ? NULL : p->ctx->conv.to_f32[d->q.dtype],
        .head_dim = d->head_dim,
        .v_head_dim = d->v_head_dim,
        .scale = d->scale,
        .softcap = d->softcap,
        .kv_begin = SIZE_MAX,
        .kv_end = 0,
        .rows = 0,
        .row = rows,
        .fpmath = d->fpmath,
    };
    for (size_t h = w.h0; h < w.h1; h++) {
        for (size_t i = w.i0; i < w.i1; i++) {
            qkv_attn_row *r = &rows[j.rows];
            const size_t qat =
                row_offset(d, d->q.batch_stride, d->q.head_stride, d->q.row_stride, w.b, h, i);
            r->q = (const unsigned char *)d->q.data + qkv_dtype_bytes(d->q.dtype, qat);
            r->acc = partial    ? partial + j.rows * d->v_head_dim
                     : acc_rows ? ws + j.rows * acc_rows
                                : out_row(d, w.b, h, i);
            r->mask = d->mask == QKV_MASK_ADDITIVE
                          ? d->mask_add.data + w.b * d->mask_add.batch_stride +
                                h * d->mask_add.head_stride + i * d->mask_add.row_stride
                          : NULL;
            r->slope = d->alibi_slopes ? d->alibi_slopes[h] : 0.0f;
            r->pos = (ptrdiff_t)i + (ptrdiff_t)w.keys - (ptrdiff_t)seq_rows(d, w.b);
            visible_keys(d, r->pos, lo, hi, &r->kv_begin, &r->kv_end);
            if (r->kv_begin < r->kv_end) {
                if (r->kv_begin < j.kv_begin)
                    j.kv_begin = r->kv_begin;
                if (r->kv_end > j.kv_end)
                    j.kv_end = r->kv_end;
            }
            j.rows++;
        }
    }
    if (j.kv_begin >= j.kv_end)
        j.kv_begin = j.kv_end = 0;
    j.ws = ws + j.rows * acc_rows;
    j.ws_floats = p->ws_floats - j.rows * acc_rows;
    p->ctx->attention(&j);

    if (partial) {
        float *max = partial + p->part_rows * d->v_head_dim, *sum = max + p->part_rows;
        for (size_t r = 0; r < j.rows; r++) {
            max[r] = rows[r].max;
            sum[r] = rows[r].sum;
        }
        return;
    }
    size_t r = 0;
    for (size_t h = w.h0; h < w.h1; h++) {
        for (size_t i = w.i0; i < w.i1; i++, r++) {
            if (!running) {
                finish_row(p, w.b, h, i, rows[r].acc, rows[r].max, rows[r].sum);
            } else if (s == 0) {
                running[r] = rows[r].max;
                running[p->part_rows + r] = rows[r].sum;
            } else {
                merge_row(d->v_head_dim, out_row(d, w.b, h, i), &running[r],
                          &running[p->part_rows + r], rows[r].acc, rows[r].max, rows[r].sum);
            }
        }
    }
}

/* Merges the partial `part` of a later split into `into`, row by row,
   for the `rows` rows of a job. */
static void merge_partial(const plan *p, size_t rows, float *into, const float *part)
{
    const size_t dv = p->d->v_head_dim, n = p->part_rows;
    for (size_t r = 0; r < rows; r++)
        merge_row(dv, into + r * dv, into + n * dv + r, into + n * dv + n + r, part + r * dv,
                  part[n * dv + r], part[n * dv + n + r]);
}

/* The rows of job w from their merged acc rows (acc, v_head_dim floats a
   row; NULL: the output rows themselves, as task_walk leaves them) and
   their running max and sum. */
static void finish_job(const plan *p, const job_place *w, float *acc, const float *max,
                       const float *sum)
{
    size_t r = 0;
    for (size_t h = w->h0; h < w->h1; h++)
        for (size_t i = w->i0; i < w->i1; i++, r++)
            finish_row(p, w->b, h, i, acc ? acc + r * p->d->v_head_dim : out_row(p->d, w->b, h, i),
                       max[r], sum[r]);
}

static size_t job_rows(const job_place *w)
{
    return (w->h1 - w->h0) * (w->i1 - w->i0);
}

/* Merges the key splits of a job in split order (a fixed order, so the
   result does not depend on which thread finished first), into the first
   split's partial. */
static void merge_job(const plan *p, size_t job)
{
    const job_place w = place_of(p, job);
    const size_t stride = partial_floats(p);
    float *first = p->partial + job * p->splits * stride;
    for (size_t s = 1; s < p->splits; s++)
        merge_partial(p, job_rows(&w), first, first + s * stride);
    const float *max = first + p->part_rows * p->d->v_head_dim;
    finish_job(p, &w, first, max, max + p->part_rows);
}

/* Sequence b's jobs walked span by span, every job's part of a span
   before the next span's (see SPLIT_SPAN_KEYS), walk_jobs of them at a
   time, each span merged as it comes into the job's output rows (run_job),
   so nothing is allocated and the stack holds two floats a row more.
   Spans past the sequence's keys are skipped. Merged in the order
   merge_job merges, so a hooked call cut into the same spans gives the
   same bits. */
static void task_walk(void *ctx, size_t b)
{
    const plan *p = ctx;
    const size_t jobs = split_of(p, seq_rows(p->d, b)).jobs, per = 2 * p->part_rows;
    const size_t spans = (seq_keys(p->d, b) + p->split_len - 1) / p->split_len;
    float running[p->walk_jobs * per];
    for (size_t j0 = 0; j0 < jobs; j0 += p->walk_jobs) {
        const size_t n = jobs - j0 < p->walk_jobs ? jobs - j0 : p->walk_jobs;
        for (size_t s = 0; s == 0 || s < spans; s++)
            for (size_t k = 0; k < n; k++)
                run_job(p, place_in_seq(p, b, j0 + k), s, NULL, running + k * per);
        for (size_t k = 0; k < n; k++) {
            const job_place w = place_in_seq(p, b, j0 + k);
            finish_job(p, &w, NULL, running + k * per, running + k * per + p->part_rows);
        }
    }
}

static void task_whole(void *ctx, size_t job)
{
    run_job(ctx, place_of(ctx, job), 0, NULL, NULL);
}

/* Tasks go job by job, each job's splits in turn, or, where the KV heads
   lie side by side, split by split, every job of a split before the next
   split's (see SPLIT_SPAN_KEYS). A job's own keys lie together otherwise,
   and cut into pieces they lost 2-8% (the same Zen 3 decode, pages of 16
   keys of one head at a time). Each task has its place in `partial` by
   job, then split. */
static void task_split(void *ctx, size_t index)
{
    const plan *p = ctx;
    const size_t job = p->by_span ? index % p->jobs : index / p->splits;
    const size_t s = p->by_span ? index / p->jobs : index % p->splits;
    run_job(p, place_of(p, job), s, p->partial + (job * p->splits + s) * partial_floats(p), NULL);
}

static void task_merge(void *ctx, size_t job)
{
    merge_job(ctx, job);
}

qkv_status qkv_attention_run(const qkv_ctx *ctx, const qkv_attention_desc *desc)
{
    plan p;
    make_plan(&p, desc, ctx);
    const size_t walks = p.walk && p.splits > 1 ? desc->batch : 0;   /* one a sequence */
    if (!desc->parallel_for) {
        for (size_t i = 0; i < walks; i++)
            task_walk(&p, i);
        for (size_t job = 0; !walks && job < p.jobs; job++)
            task_whole(&p, job);
        return QKV_OK;
    }
    if (walks) {
        desc->parallel_for(desc->pool, walks, task_walk, &p);
        return QKV_OK;
    }
    if (p.splits == 1) {
        desc->parallel_for(desc->pool, p.jobs, task_whole, &p);
        return QKV_OK;
    }
    /* jobs · splits <= SPLIT_MAX_TASKS here; only a huge v_head_dim could
       overflow the byte count. */
    size_t floats, bytes;
    if (__builtin_mul_overflow(p.part_rows, desc->v_head_dim + 2, &floats) ||
        __builtin_mul_overflow(floats, p.jobs * p.splits * sizeof(float), &bytes))
        return qkv_fail(QKV_ERR_OVERFLOW, "desc.v_head_dim %zu: the merge buffer size overflows",
                        desc->v_head_dim);
    p.partial = malloc(bytes);
    if (!p.partial)
        return qkv_fail(QKV_ERR_NOMEM, "no memory for the key-split merge buffer (%zu bytes)",
                        bytes);
    desc->parallel_for(desc->pool, p.jobs * p.splits, task_split, &p);
    desc->parallel_for(desc->pool, p.jobs, task_merge, &p);
    free(p.partial);
    return QKV_OK;
}

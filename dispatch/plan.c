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
#include "phase.h"
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
   The jobs of a sequence are then walked together (task_walk), a chunk of
   keys at a time, or, with a hook and too many jobs for that, split into
   spans of at most SPLIT_SPAN_KEYS keys whose tasks go span by span
   (every job's task of a span before the next span's): the neighbours'
   bytes are read while still in cache. Zen 3, AVX2, a 1-thread pool, 32/8
   heads, d 128, 32768 f32 keys, spans paired with the walk head after
   head (4 splits of 8192 keys): vLLM's pages of 16 keys 0.71-0.80 of the
   time (23-29 ms; contiguous K/V 22-27), [kv_len][kv_heads][dim]
   0.63-0.74; spans of 4096 keys: the same for pages, 10-20% slower for
   [kv_len][kv_heads][dim]; of 8192 (emulated, no hook) 10% slower. The
   tasks stay within the merge buffer's documented bound (SPLIT_MAX_TASKS ·
   QKV_ATTN_MAX_ROWS = 64 · 64 rows). */
#define SPLIT_SPAN_KEYS 2048
#define SPLIT_MAX_TASKS 128
/* Rows of the jobs a walk (task_walk) steps together: two floats each on
   its stack. Only decode-like calls walk: jobs of at most half of them,
   and no sequence whose rows take several jobs a head. A job of many rows
   would walk alone, with nothing to step with, and a batch's sequences as
   one task each balanced badly (a ragged batch of 16, half prefilling,
   with a 2-thread pool took 1.8-2.0x the time of 16 calls). */
#define WALK_ROWS 64
/* With a hook, each sequence is walked as one task when there are at
   least this many sequences (else its keys are split among tasks). Zen 3,
   AVX2, 16 sequences, 32/8 heads, d 128, vLLM's pages of 16 keys, walked
   in spans as one task a sequence, paired against head after head: 32768
   keys each 0.77 of the time with a 1-thread pool, 0.76-0.83 with 2; 8192
   keys 0.84. */
#define WALK_MIN_TASKS 16
/* The fewest keys a walk's chunk has (see walk_chunk). */
#define WALK_CHUNK_MIN 16
/* How a walk reads a chunk before its jobs run (plan.sweep; 0: it does
   not, the jobs fetch): key by key where every key's row holds the heads
   (sweep_keys), page by page where every page does (sweep_pages). */
enum { SWEEP_KEYS = 1, SWEEP_PAGES };
/* Pages a sweep_pages reads side by side. */
#define SWEEP_PAGE_RUNS 4

typedef struct plan {
    const qkv_attention_desc *d;
    const qkv_ctx *ctx;
    size_t group;                 /* query heads per KV head */
    size_t cap;                   /* the most rows a job may have */
    size_t jobs;                  /* over all sequences */
    size_t seq_jobs;              /* jobs of each sequence of a regular batch */
    size_t splits, split_len;     /* key ranges per job (1: no split) */
    int by_span;                  /* split tasks go split by split (else job by job) */
    size_t walk_jobs;             /* jobs task_walk steps together (0: no walk) */
    int walk;                     /* the tasks are walks (task_walk), one a sequence and split */
    size_t chunk;                 /* keys a walk steps its jobs through at a time */
    int share_next;               /* a walk's jobs ask for the next chunk's rows (walk_share) */
    int sweep;                    /* or the walk reads each chunk before its jobs (SWEEP_*) */
    size_t part_rows;             /* the most rows a job has: a partial's row count */
    size_t acc_cols;              /* columns of v a pass computes (v_head_dim or fewer) */
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

static qkv_attn_shape shape_of(const qkv_attention_desc *d)
{
    const qkv_attn_shape s = {d->head_dim, d->v_head_dim, d->q.dtype, d->k.dtype, d->v.dtype,
                              d->mask == QKV_MASK_ADDITIVE, d->fpmath};
    return s;
}

/* The floats a job of `rows` rows asks for, its acc rows (when the output
   is not f32) and the kernel's workspace. */
static size_t job_need(const qkv_ctx *ctx, const qkv_attn_shape *s, size_t rows, size_t acc_floats)
{
    const size_t acc = rows * acc_floats;
    return acc + ctx->attention_ws(rows, s, acc < QKV_ATTN_WS_FLOATS ? QKV_ATTN_WS_FLOATS - acc : 0);
}

/* A job's workspace for that need: all of QKV_ATTN_WS_FLOATS for a
   head_dim so large that even one row does not fit (the kernel then works
   in chunks). */
static size_t ws_of(size_t need)
{
    return need < QKV_ATTN_WS_FLOATS ? (need ? need : 1) : QKV_ATTN_WS_FLOATS;
}

/* The most rows a job can have so that what it asks for fits
   QKV_ATTN_WS_FLOATS, and the workspace that takes. */
static size_t rows_cap(const qkv_ctx *ctx, const qkv_attn_shape *s, size_t acc_floats,
                       size_t *ws_floats)
{
    size_t rows = ctx->blocks.max_rows, need = 0;
    for (;; rows /= 2) {
        need = job_need(ctx, s, rows, acc_floats);
        if (need <= QKV_ATTN_WS_FLOATS || rows == 1)
            break;
    }
    *ws_floats = ws_of(need);
    return rows;
}

/* Whether K or V keeps the KV heads side by side: closer together than
   its rows (each key's row holds every head: rows_too), or than its
   pages. */
static int heads_interleaved(const qkv_attention_desc *d, int rows_too)
{
    if (d->kv_heads < 2)
        return 0;
    const qkv_tensor *t[2] = {&d->k, &d->v};
    const size_t page_stride[2] = {d->k_page_stride, d->v_page_stride};
    for (int i = 0; i < 2; i++)
        if (t[i]->head_stride < t[i]->row_stride ||
            (!rows_too && d->page_size && t[i]->head_stride < page_stride[i]))
            return 1;
    return 0;
}

/* The keys a walk (task_walk) steps its jobs through at a time. Where each
   key's row holds every head, the rows of every head the walk reads of a
   chunk take at most half of L2, so that the next chunk, asked for
   meanwhile, fits beside it (or, swept, stays there while its jobs work
   on it; Zen 5, 1 MiB L2, AVX-512 f32: chunks of 64 keys, 512 KiB, beat
   32 and 128 in paired runs): tile_keys, or a half, a quarter ... down to
   WALK_CHUNK_MIN, below which the kernels' start-up per chunk costs more
   than the memory gains. Zen 3 (512 KiB L2), AVX2, one thread, 32/8 heads,
   d 128, 32768 keys, paired against the walk in spans of 2048 keys: f32
   (8 KiB a key over the heads) chunks of 64 keys 1.17-1.20 of the time,
   32 0.91-0.97, 16 0.92-0.99 (40% more instructions than 64); f16 64
   0.78-0.79, 32 0.80-0.82, 16 0.92. Where the heads lie side by side in
   pages only, each head's rows come in runs of a page, which the kernels'
   own prefetching brings in well: spans of SPLIT_SPAN_KEYS (the same Zen 3,
   vLLM's pages of 16 f32 keys: chunks of 64 keys shared as above took
   1.2-1.4 of the time), unless the walk sweeps whole pages (SWEEP_PAGES),
   in chunks as above (Zen 5, AVX-512, f16 pages of 16 keys, paired
   against chunks of 64 keys: 32 keys 1.15, 128 1.09). */
static size_t walk_chunk(const plan *p, size_t heads)
{
    const qkv_attention_desc *d = p->d;
    if (!p->share_next && !p->sweep)
        return SPLIT_SPAN_KEYS;
    const size_t l2 = p->ctx->cpu.l2 ? p->ctx->cpu.l2 : (size_t)512 << 10;
    const size_t key = heads * (qkv_dtype_bytes(d->k.dtype, d->head_dim) +
                                qkv_dtype_bytes(d->v.dtype, d->v_head_dim));
    size_t chunk = p->ctx->blocks.tile_keys;
    while (chunk > WALK_CHUNK_MIN && chunk * key > l2 / 2)
        chunk /= 2;
    return chunk;
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
    /* A 16-bit output keeps its rows' f32 acc in the stack workspace, at
       most half of it: a wider v_head_dim (from 4609 columns) goes in
       passes of acc_cols columns over all the keys, Q·Kᵀ again each pass
       (one acc row of 9200 columns had overrun the workspace). */
    p->acc_cols = d->v_head_dim;
    if (d->o.dtype != QKV_F32 && round16(p->acc_cols) > QKV_ATTN_WS_FLOATS / 2)
        p->acc_cols = QKV_ATTN_WS_FLOATS / 2 / 64 * 64;   /* whole Q8_0/Q4_0 blocks */
    p->acc_floats = d->o.dtype != QKV_F32 ? round16(p->acc_cols) : 0;
    const qkv_attn_shape shape = shape_of(d);
    p->cap = rows_cap(ctx, &shape, p->acc_floats, &p->ws_floats);
    int row_blocks = 0;   /* some sequence's rows take several jobs a head */
    for (size_t b = 0; b < (d->q_start ? d->batch : 1); b++) {
        const seq_split s = split_of(p, d->q_start ? seq_rows(d, b) : d->q_len);
        row_blocks |= s.row_blocks > 1;
        if (p->part_rows < s.rows_per_job * s.heads_per_job)
            p->part_rows = s.rows_per_job * s.heads_per_job;
        if (d->q_start)
            p->jobs += s.jobs;
        else
            p->seq_jobs = s.jobs, p->jobs = d->batch * s.jobs;
    }
    /* Jobs of fewer rows than cap (decode) get the workspace their rows
       ask for: the kernels size their tiles from what they are given, so
       it must not depend on what a job of cap rows would have needed (in
       QKV_FPMATH_BF16 more, for bf16 tiles these jobs do not take). */
    if (p->part_rows && p->part_rows < p->cap)
        p->ws_floats = ws_of(job_need(ctx, &shape, p->part_rows, p->acc_floats));
    p->splits = 1;
    p->split_len = d->kv_len;
    p->by_span = heads_interleaved(d, 0);
    if (p->by_span && p->part_rows && p->part_rows <= WALK_ROWS / 2 && !row_blocks) {
        p->walk_jobs = WALK_ROWS / p->part_rows;
        p->share_next = heads_interleaved(d, 1);
        const size_t heads = d->kv_heads < p->walk_jobs ? d->kv_heads : p->walk_jobs;
        if (ctx->walk_sweeps && d->k.head_stride < d->k.row_stride &&
            d->v.head_stride < d->v.row_stride && ctx->walk_sweeps(p->part_rows, &shape, 0))
            p->sweep = SWEEP_KEYS;
        else if (ctx->walk_sweeps && !p->share_next && ctx->walk_sweeps(p->part_rows, &shape, d->page_size))
            p->sweep = SWEEP_PAGES;
        p->chunk = walk_chunk(p, heads);
        if (p->sweep == SWEEP_PAGES && p->chunk % d->page_size) {
            /* Pages that do not divide the chunk: a chunk would end
               within a page, its heads' rows there apart, as a page
               longer than the chunk leaves them (pages of 128 keys swept
               so, over the jobs' own feed: f16 1.25, f32 1.23). */
            p->sweep = 0;
            p->chunk = walk_chunk(p, heads);
        }
    }
    /* A walk of a whole sequence keeps its acc rows in the (f32) output
       rows; a walk of a split keeps them in the split's partial. */
    const int walk_seqs = p->walk_jobs && d->o.dtype == QKV_F32 &&
                          (!d->parallel_for || d->batch >= WALK_MIN_TASKS);
    if (p->jobs && d->kv_len >= 2 * SPLIT_MIN_KEYS && d->parallel_for && !walk_seqs) {
        size_t want;
        if (p->walk_jobs) {          /* walks of splits: tasks = batch · splits */
            want = (SPLIT_TARGET_TASKS + d->batch - 1) / d->batch;
            if (want > SPLIT_MAX_TASKS / p->jobs)
                want = SPLIT_MAX_TASKS / p->jobs;
        } else {
            want = (SPLIT_TARGET_TASKS + p->jobs - 1) / p->jobs;
            if (p->by_span) {
                const size_t spans = (d->kv_len + SPLIT_SPAN_KEYS - 1) / SPLIT_SPAN_KEYS;
                want = want < spans ? spans : want;
                want = want > SPLIT_MAX_TASKS / p->jobs ? SPLIT_MAX_TASKS / p->jobs : want;
            }
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
    p->walk = walk_seqs || (p->walk_jobs && p->splits > 1);
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
   output's dtype for the columns [c0, c0 + dv) that acc holds (acc is
   scaled in place when it is not the output row), and lse. */
static void finish_row(const plan *p, size_t b, size_t h, size_t i, size_t c0, size_t dv,
                       float *acc, float max, float sum)
{
    const qkv_attention_desc *d = p->d;
    void *o = (unsigned char *)out_row(d, b, h, i) + qkv_dtype_bytes(d->o.dtype, c0);
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
    /* Every column pass of a row has the same max and sum: lse once. */
    if (d->lse && c0 == 0)
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

/* Fills the rows of a job for the keys [lo, hi) (cut to the sequence's)
   and runs the kernel. acc rows go to `part` (v_head_dim floats a row)
   when given, else to the output rows (f32 output) or to acc rows in the
   workspace (other dtypes). Without `state` the rows are finished here;
   with it, state[r] and state[part_rows + r] take row r's max and sum, and
   with `resume` they (and the acc rows) come in holding the result over
   the keys before lo. pre: the rows the kernel prefetches (qkv_attn_job's
   k_pre, then v_pre, tile_keys entries each), or NULL. */
static void run_job(const plan *p, const job_place w, size_t lo, size_t hi, float *part,
                    float *state, int resume, const unsigned char *const *pre)
{
    const qkv_attention_desc *d = p->d;
    hi = hi < w.keys ? hi : w.keys;
    lo = lo < hi ? lo : hi;
    /* At most QKV_ATTN_WS_FLOATS: the bound of the stack this call uses. */
    _Alignas(64) float ws[p->ws_floats];
    qkv_attn_row rows[QKV_ATTN_MAX_ROWS];
    const size_t acc_rows = part ? 0 : p->acc_floats;   /* per row, in ws */
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
        .resume = resume,
        .k_pre = pre,
        .v_pre = pre ? pre + p->ctx->blocks.tile_keys : NULL,
    };
    for (size_t h = w.h0; h < w.h1; h++) {
        for (size_t i = w.i0; i < w.i1; i++) {
            qkv_attn_row *r = &rows[j.rows];
            const size_t qat =
                row_offset(d, d->q.batch_stride, d->q.head_stride, d->q.row_stride, w.b, h, i);
            r->q = (const unsigned char *)d->q.data + qkv_dtype_bytes(d->q.dtype, qat);
            r->acc = part       ? part + j.rows * d->v_head_dim
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
            if (resume) {
                r->max = state[j.rows];
                r->sum = state[p->part_rows + j.rows];
            }
            j.rows++;
        }
    }
    if (j.kv_begin >= j.kv_end)
        j.kv_begin = j.kv_end = 0;
    j.ws = ws + j.rows * acc_rows;
    j.ws_floats = p->ws_floats - j.rows * acc_rows;
    /* Columns in passes only where acc is in ws (part is NULL and state too). */
    const size_t dv = d->v_head_dim, cols = acc_rows ? p->acc_cols : dv;
    const unsigned char *const v0 = j.v.base;
    for (size_t c0 = 0; c0 < dv; c0 += cols) {
        j.v_head_dim = dv - c0 < cols ? dv - c0 : cols;
        j.v.base = v0 + qkv_dtype_bytes(d->v.dtype, c0);
        p->ctx->attention(&j);
        size_t r = 0;
        for (size_t h = w.h0; h < w.h1; h++) {
            for (size_t i = w.i0; i < w.i1; i++, r++) {
                if (state) {
                    state[r] = rows[r].max;
                    state[p->part_rows + r] = rows[r].sum;
                } else {
                    finish_row(p, w.b, h, i, c0, j.v_head_dim, rows[r].acc, rows[r].max,
                               rows[r].sum);
                }
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
            finish_row(p, w->b, h, i, 0, p->d->v_head_dim,
                       acc ? acc + r * p->d->v_head_dim : out_row(p->d, w->b, h, i), max[r],
                       sum[r]);
}

static size_t job_rows(const job_place *w)
{
    return (w->h1 - w->h0) * (w->i1 - w->i0);
}

/* Job k's partial over split s (acc rows, then the rows' max and sum). */
static float *partial_of(const plan *p, size_t job, size_t s)
{
    return p->partial + (job * p->splits + s) * partial_floats(p);
}

/* Merges the key splits of a job in split order (a fixed order, so the
   result does not depend on which thread finished first), into the first
   split's partial. */
static void merge_job(const plan *p, size_t job)
{
    const job_place w = place_of(p, job);
    float *first = partial_of(p, job, 0);
    for (size_t s = 1; s < p->splits; s++)
        merge_partial(p, job_rows(&w), first, partial_of(p, job, s));
    const float *max = first + p->part_rows * p->d->v_head_dim;
    finish_job(p, &w, first, max, max + p->part_rows);
}

/* The index of sequence b's first job. */
static size_t first_job(const plan *p, size_t b)
{
    if (!p->d->q_start)
        return b * p->seq_jobs;
    size_t job = 0;
    for (size_t i = 0; i < b; i++)
        job += split_of(p, seq_rows(p->d, i)).jobs;
    return job;
}

/* What job k of the n that a walk steps together asks the memory for
   while it works on a chunk: its share of the rows of the next chunk,
   keys [c1, c2) of the KV heads from ks/vs's (the first) on, `heads` of
   them, that the n jobs read,
   taken key by key and, within a key, head by head (memory order where
   each key's row holds every head), cut into n equal runs. pre: tile_keys
   K rows then as many V rows (n >= heads, so a share fits). */
static void walk_share(const plan *p, const qkv_kv_src *ks, const qkv_kv_src *vs, size_t heads,
                       size_t k, size_t n, size_t c1, size_t c2, const unsigned char **pre)
{
    const qkv_attention_desc *d = p->d;
    const size_t tile = p->ctx->blocks.tile_keys;
    for (size_t i = 0; i < p->chunk; i++)   /* a job's keys: at most a chunk */
        pre[i] = pre[tile + i] = NULL;
    if (c1 >= c2)
        return;
    const size_t kh = qkv_dtype_bytes(d->k.dtype, d->k.head_stride);
    const size_t vh = qkv_dtype_bytes(d->v.dtype, d->v.head_stride);
    const size_t all = (c2 - c1) * heads, f0 = k * all / n, f1 = (k + 1) * all / n;
    for (size_t f = f0; f < f1;) {
        const size_t key = c1 + f / heads;
        const unsigned char *kr = qkv_kv_row(ks, key), *vr = qkv_kv_row(vs, key);
        for (size_t g = f % heads; g < heads && f < f1; g++, f++) {
            pre[f - f0] = kr + g * kh;
            pre[tile + f - f0] = vr + g * vh;
        }
    }
}

/* Reads keys [c0, c1) of `heads` KV heads from ks/vs's (the first) on,
   where every key's row holds them all, before the walk's jobs work on
   them (SWEEP_KEYS, see walk_sweeps in simd/attention.h): key by key, the
   bytes from the first head's K row to the end of the last's, then V's,
   in memory order (two streams side by side, as the decode feed sweeps);
   page by page, one page's keys at a time. */
static void sweep_keys(const plan *p, const qkv_kv_src *ks, const qkv_kv_src *vs, size_t heads,
                       size_t c0, size_t c1)
{
    const qkv_attention_desc *d = p->d;
    const size_t kspan = qkv_dtype_bytes(d->k.dtype, (heads - 1) * d->k.head_stride + d->head_dim);
    const size_t vspan =
        qkv_dtype_bytes(d->v.dtype, (heads - 1) * d->v.head_stride + d->v_head_dim);
    for (size_t j = c0; j < c1;) {
        const size_t run = qkv_kv_run(ks, j, c1 - j);
        const unsigned char *kr = qkv_kv_row(ks, j), *vr = qkv_kv_row(vs, j);
        for (const size_t e = j + run; j < e; j++, kr += ks->row_bytes, vr += vs->row_bytes) {
            qkv_touch_lines(kr, kspan);
            qkv_touch_lines(vr, vspan);
        }
    }
}

/* Reads keys [c0, c1), whole pages, of `heads` KV heads from ks/vs's (the
   first) on, where every page holds them side by side (vLLM's
   [pages][kv_heads][page_size][dim]), before the walk's jobs work on them
   (SWEEP_PAGES): SWEEP_PAGE_RUNS pages side by side, K and V, each read
   head by head, row by row, in memory order where the heads' rows fill
   the page. One head's rows of a page make a short run (4 KiB for 16 f16
   keys, d = 128), and one core reads shuffled runs of 4 KiB, 8 side by
   side, at 20 GB/s, against 24 for runs of 32 KiB (a page's 8 heads) and
   26 for one stream (Zen 5, loads alone). */
static void sweep_pages(const plan *p, const qkv_kv_src *ks, const qkv_kv_src *vs, size_t heads,
                        size_t c0, size_t c1)
{
    const qkv_attention_desc *d = p->d;
    const size_t kb = qkv_dtype_bytes(d->k.dtype, d->head_dim);
    const size_t vb = qkv_dtype_bytes(d->v.dtype, d->v_head_dim);
    const size_t kh = qkv_dtype_bytes(d->k.dtype, d->k.head_stride);
    const size_t vh = qkv_dtype_bytes(d->v.dtype, d->v.head_stride);
    for (size_t j = c0; j < c1;) {
        const unsigned char *k[SWEEP_PAGE_RUNS], *v[SWEEP_PAGE_RUNS];
        size_t len[SWEEP_PAGE_RUNS], most = 0;
        int runs = 0;
        for (; runs < SWEEP_PAGE_RUNS && j < c1; runs++) {
            len[runs] = qkv_kv_run(ks, j, c1 - j);
            k[runs] = qkv_kv_row(ks, j);
            v[runs] = qkv_kv_row(vs, j);
            most = len[runs] > most ? len[runs] : most;
            j += len[runs];
        }
        for (size_t g = 0; g < heads; g++)
            for (size_t i = 0; i < most; i++)
                for (int r = 0; r < runs; r++)
                    if (i < len[r]) {
                        qkv_touch_lines(k[r] + g * kh + i * ks->row_bytes, kb);
                        qkv_touch_lines(v[r] + g * vh + i * vs->row_bytes, vb);
                    }
    }
}

/* A walk: sequence b's jobs over the keys of split s (all its keys when
   not split), walk_jobs of them stepped together a chunk of tile_keys
   keys at a time, every job's part of a chunk before the next chunk's,
   each job going on from where its last chunk left (resume). Where the
   KV heads lie side by side in memory, walked one head after another each
   head's rows come in short runs with the other heads' bytes between
   them, which the hardware prefetchers fetch past the run's end for
   nothing; stepped together, the jobs read every head's bytes of a key
   while they are in cache, and each asks for its share of the next
   chunk's rows in memory order (walk_share), which brings them in at the
   speed of one stream; or, where the ISA's decode is memory-bound on a
   core the decode feed sweeps for (ctx->walk_sweeps), the walk reads each
   chunk in memory order before its jobs run (sweep_keys, sweep_pages).
   The acc rows are the output rows (no split, f32 output; finished here)
   or the split's partial (merged by merge_job). */
static void task_walk(void *ctx, size_t index)
{
    const plan *p = ctx;
    const size_t b = index / p->splits, s = index % p->splits;
    const size_t jobs = split_of(p, seq_rows(p->d, b)).jobs, per = 2 * p->part_rows;
    const size_t tile = p->ctx->blocks.tile_keys, chunk = p->chunk, first = first_job(p, b);
    const size_t keys = seq_keys(p->d, b);
    size_t lo = s * p->split_len, hi = lo + p->split_len;
    hi = hi < keys ? hi : keys;
    lo = lo < hi ? lo : hi;
    float running[p->walk_jobs * per];
    const unsigned char *pre[2 * tile];
    for (size_t i = 0; i < 2 * tile; i++)   /* a sweep's jobs fetch nothing */
        pre[i] = NULL;
    for (size_t j0 = 0; j0 < jobs; j0 += p->walk_jobs) {
        const size_t n = jobs - j0 < p->walk_jobs ? jobs - j0 : p->walk_jobs;
        const size_t g0 = place_in_seq(p, b, j0).g;
        const size_t heads = place_in_seq(p, b, j0 + n - 1).g - g0 + 1;
        const qkv_kv_src ks = kv_src(p, &p->d->k, p->d->k_page_stride, b, g0);
        const qkv_kv_src vs = kv_src(p, &p->d->v, p->d->v_page_stride, b, g0);
        /* One chunk at least, so that a split past the keys leaves the
           empty state. */
        size_t c0 = lo;
        do {
            const size_t c1 = hi - c0 < chunk ? hi : c0 + chunk;
            const size_t c2 = hi - c1 < chunk ? hi : c1 + chunk;
            QKV_PHASE_START(ph);
            if (p->sweep == SWEEP_KEYS)
                sweep_keys(p, &ks, &vs, heads, c0, c1);
            else if (p->sweep == SWEEP_PAGES)
                sweep_pages(p, &ks, &vs, heads, c0, c1);
            QKV_PHASE_MARK(ph, QKV_PHASE_FEED);
            QKV_PHASE_END(ph);
            for (size_t k = 0; k < n; k++) {
                float *part = p->partial ? partial_of(p, first + j0 + k, s) : NULL;
                float *state = part ? part + p->part_rows * p->d->v_head_dim : running + k * per;
                if (p->share_next && !p->sweep)
                    walk_share(p, &ks, &vs, heads, k, n, c1, c2, pre);
                run_job(p, place_in_seq(p, b, j0 + k), c0, c1, part, state, c0 > lo,
                        p->share_next || p->sweep ? pre : NULL);
            }
            c0 = c1;
        } while (c0 < hi);
        for (size_t k = 0; k < n && !p->partial; k++) {
            const job_place w = place_in_seq(p, b, j0 + k);
            finish_job(p, &w, NULL, running + k * per, running + k * per + p->part_rows);
        }
    }
}

static void task_whole(void *ctx, size_t job)
{
    const plan *p = ctx;
    run_job(p, place_of(p, job), 0, SIZE_MAX, NULL, NULL, 0, NULL);
}

/* Tasks go job by job, each job's splits in turn, or, where the KV heads
   lie side by side (and the jobs are not walked), split by split, every
   job of a split before the next split's (see SPLIT_SPAN_KEYS). A job's
   own keys lie together otherwise, and cut into pieces they lost 2-8%
   (the same Zen 3 decode, pages of 16 keys of one head at a time). Each
   task has its place in `partial` by job, then split. */
static void task_split(void *ctx, size_t index)
{
    const plan *p = ctx;
    const size_t job = p->by_span ? index % p->jobs : index / p->splits;
    const size_t s = p->by_span ? index / p->jobs : index % p->splits;
    float *part = partial_of(p, job, s);
    run_job(p, place_of(p, job), s * p->split_len, (s + 1) * p->split_len, part,
            part + p->part_rows * p->d->v_head_dim, 0, NULL);
}

static void task_merge(void *ctx, size_t job)
{
    merge_job(ctx, job);
}

qkv_status qkv_attention_run(const qkv_ctx *ctx, const qkv_attention_desc *desc)
{
    plan p;
    make_plan(&p, desc, ctx);
    /* A task a sequence (walks) or a job, and a split; keys are split only
       with a hook. */
    const size_t tasks = (p.walk ? desc->batch : p.jobs) * p.splits;
    void (*const task)(void *, size_t) = p.walk ? task_walk : p.splits > 1 ? task_split : task_whole;
    if (!desc->parallel_for) {
        for (size_t i = 0; i < tasks; i++)
            task(&p, i);
        return QKV_OK;
    }
    if (p.splits == 1) {
        desc->parallel_for(desc->pool, tasks, task, &p);
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
    desc->parallel_for(desc->pool, tasks, task, &p);
    desc->parallel_for(desc->pool, p.jobs, task_merge, &p);
    free(p.partial);
    return QKV_OK;
}

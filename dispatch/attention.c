/*
 * Fused attention: argument checks, then the work split into jobs (query
 * rows of one KV head against a range of its keys), run by the ISA's
 * attention kernel, and finished here: the sink term, 1/L and lse.
 *
 * The split depends on the shapes (and on whether a threading hook is
 * given), never on the number of threads: with a hook the output is
 * bit-identical for any thread count.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "error.h"
#include "validate.h"

/* Splitting the keys pays only when the other dimensions give too few
   tasks to keep a many-core machine busy; a split shorter than
   SPLIT_MIN_KEYS would cost more in merging than it gains. */
#define SPLIT_TARGET_TASKS 32
#define SPLIT_MIN_KEYS 512

/* ---- argument checks ---------------------------------------------------- */

/* Bytes spanned by a strided 4-d tensor; 0 on overflow. */
static size_t tensor_span(size_t n0, size_t s0, size_t n1, size_t s1, size_t n2, size_t s2,
                          size_t len, size_t elem)
{
    size_t off0, off1, off2, last;
    if (__builtin_mul_overflow(n0 - 1, s0, &off0) || __builtin_mul_overflow(n1 - 1, s1, &off1) ||
        __builtin_mul_overflow(n2 - 1, s2, &off2) || __builtin_add_overflow(off0, off1, &last) ||
        __builtin_add_overflow(last, off2, &last))
        return 0;
    return qkv_span_bytes(1, 0, last + len, elem) ? (last + len) * elem : 0;
}

/* Whether every (batch, head, row) of the output has rows of its own: with
   the dimensions sorted by stride, each stride must step over everything
   the smaller ones span. */
static int output_rows_distinct(const qkv_attention_desc *d)
{
    size_t count[3] = {d->batch, d->q_heads, d->q_len};
    size_t stride[3] = {d->o.batch_stride, d->o.head_stride, d->o.row_stride};
    for (int a = 0; a < 3; a++)         /* three elements: insertion sort */
        for (int b = a; b > 0 && stride[b] < stride[b - 1]; b--) {
            size_t t = stride[b]; stride[b] = stride[b - 1]; stride[b - 1] = t;
            t = count[b]; count[b] = count[b - 1]; count[b - 1] = t;
        }
    size_t span = d->v_head_dim;        /* no overflow: tensor_span passed */
    for (int a = 0; a < 3; a++) {
        if (count[a] == 1)
            continue;
        if (stride[a] < span)
            return 0;
        span = (count[a] - 1) * stride[a] + span;
    }
    return 1;
}

static int all_finite(const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return 0;
    return 1;
}

static qkv_status check_dtype(qkv_dtype t, const char *field)
{
    static const char *const names[] = {"QKV_F32", "QKV_F16", "QKV_BF16", "QKV_Q8_0", "QKV_Q4_0"};
    switch (t) {
    case QKV_F32: return QKV_OK;
    case QKV_F16:
    case QKV_BF16:
    case QKV_Q8_0:
    case QKV_Q4_0:
        return qkv_fail(QKV_ERR_UNSUPPORTED,
                        "desc.%s.dtype %s: attention is built for QKV_F32 only", field, names[t]);
    case QKV_DTYPE_COUNT: break;
    }
    return qkv_fail(QKV_ERR_ARG, "desc.%s.dtype %d is no qkv_dtype", field, (int)t);
}

/* The first zero size among the shapes, for the error detail. */
static const char *zero_size(const qkv_attention_desc *d)
{
    return !d->batch ? "batch" : !d->q_heads ? "q_heads" : !d->kv_heads ? "kv_heads"
         : !d->q_len ? "q_len" : !d->kv_len ? "kv_len" : !d->head_dim ? "head_dim" : "v_head_dim";
}

static qkv_status check_desc(const qkv_attention_desc *d)
{
    if (!d)
        return qkv_fail(QKV_ERR_ARG, "desc is NULL");
    if (!d->batch || !d->q_heads || !d->kv_heads || !d->q_len || !d->kv_len ||
        !d->head_dim || !d->v_head_dim)
        return qkv_fail(QKV_ERR_ARG, "desc.%s is 0", zero_size(d));
    if (d->q_heads % d->kv_heads)
        return qkv_fail(QKV_ERR_ARG, "desc.q_heads %zu is not a multiple of kv_heads %zu",
                        d->q_heads, d->kv_heads);
    if (!d->q.data || !d->k.data || !d->v.data || !d->o.data)
        return qkv_fail(QKV_ERR_ARG, "desc.%s.data is NULL",
                        !d->q.data ? "q" : !d->k.data ? "k" : !d->v.data ? "v" : "o");
    if (d->q.row_stride < d->head_dim)
        return qkv_fail(QKV_ERR_ARG, "desc.q.row_stride %zu < head_dim %zu", d->q.row_stride,
                        d->head_dim);
    if (d->k.row_stride < d->head_dim)
        return qkv_fail(QKV_ERR_ARG, "desc.k.row_stride %zu < head_dim %zu", d->k.row_stride,
                        d->head_dim);
    if (d->v.row_stride < d->v_head_dim)
        return qkv_fail(QKV_ERR_ARG, "desc.v.row_stride %zu < v_head_dim %zu", d->v.row_stride,
                        d->v_head_dim);
    if (d->o.row_stride < d->v_head_dim)
        return qkv_fail(QKV_ERR_ARG, "desc.o.row_stride %zu < v_head_dim %zu", d->o.row_stride,
                        d->v_head_dim);
    if (!qkv_finite_nonneg(d->scale))
        return qkv_fail(QKV_ERR_ARG, "desc.scale %g is not finite and >= 0", (double)d->scale);
    if (!qkv_finite_nonneg(d->softcap))
        return qkv_fail(QKV_ERR_ARG, "desc.softcap %g is not finite and >= 0 (0 = off)",
                        (double)d->softcap);
    if (d->mask != QKV_MASK_NONE && d->mask != QKV_MASK_CAUSAL && d->mask != QKV_MASK_ADDITIVE)
        return qkv_fail(QKV_ERR_ARG, "desc.mask %d is no qkv_mask_kind", (int)d->mask);
    if ((d->mask == QKV_MASK_ADDITIVE) != (d->mask_add.data != NULL))
        return qkv_fail(QKV_ERR_ARG, "desc.mask_add.data %s but desc.mask is %sQKV_MASK_ADDITIVE",
                        d->mask_add.data ? "is set" : "is NULL", d->mask_add.data ? "not " : "");
    if (d->mask == QKV_MASK_ADDITIVE && d->mask_add.row_stride < d->kv_len)
        return qkv_fail(QKV_ERR_ARG, "desc.mask_add.row_stride %zu < kv_len %zu",
                        d->mask_add.row_stride, d->kv_len);
    if (d->pool && !d->parallel_for)
        return qkv_fail(QKV_ERR_ARG, "desc.pool is set but desc.parallel_for is NULL");
    qkv_status st;
    if ((st = check_dtype(d->q.dtype, "q")) != QKV_OK ||
        (st = check_dtype(d->k.dtype, "k")) != QKV_OK ||
        (st = check_dtype(d->v.dtype, "v")) != QKV_OK)
        return st;
    /* The kernels write f32: any other output dtype would be overrun. */
    if (d->o.dtype == QKV_F16 || d->o.dtype == QKV_BF16)
        return qkv_fail(QKV_ERR_UNSUPPORTED, "desc.o.dtype %s: output is built for QKV_F32 only",
                        d->o.dtype == QKV_F16 ? "QKV_F16" : "QKV_BF16");
    if (d->o.dtype != QKV_F32)
        return qkv_fail(QKV_ERR_ARG, "desc.o.dtype %d is no output dtype (QKV_F32, QKV_F16, "
                        "QKV_BF16)", (int)d->o.dtype);

    const size_t f = sizeof(float);
    const size_t nq = tensor_span(d->batch, d->q.batch_stride, d->q_heads, d->q.head_stride,
                                  d->q_len, d->q.row_stride, d->head_dim, f);
    const size_t nk = tensor_span(d->batch, d->k.batch_stride, d->kv_heads, d->k.head_stride,
                                  d->kv_len, d->k.row_stride, d->head_dim, f);
    const size_t nv = tensor_span(d->batch, d->v.batch_stride, d->kv_heads, d->v.head_stride,
                                  d->kv_len, d->v.row_stride, d->v_head_dim, f);
    const size_t no = tensor_span(d->batch, d->o.batch_stride, d->q_heads, d->o.head_stride,
                                  d->q_len, d->o.row_stride, d->v_head_dim, f);
    size_t nm = 0, nlse = 0, rows;
    if (d->mask == QKV_MASK_ADDITIVE)
        nm = tensor_span(d->batch, d->mask_add.batch_stride, d->q_heads, d->mask_add.head_stride,
                         d->q_len, d->mask_add.row_stride, d->kv_len, f);
    if (!nq || !nk || !nv || !no || (d->mask == QKV_MASK_ADDITIVE && !nm))
        return qkv_fail(QKV_ERR_OVERFLOW, "desc.%s: sizes x strides exceed PTRDIFF_MAX bytes",
                        !nq ? "q" : !nk ? "k" : !nv ? "v" : !no ? "o" : "mask_add");
    if (__builtin_mul_overflow(d->batch, d->q_heads, &rows) ||
        __builtin_mul_overflow(rows, d->q_len, &rows) || !(nlse = qkv_span_bytes(1, 0, rows, f)))
        return qkv_fail(QKV_ERR_OVERFLOW,
                        "desc.lse: batch x q_heads x q_len floats exceed PTRDIFF_MAX bytes");
    if (!d->lse)
        nlse = 0;

    if (!output_rows_distinct(d))
        return qkv_fail(QKV_ERR_ARG, "desc.o strides (batch %zu, head %zu, row %zu) make two "
                        "output rows share elements", d->o.batch_stride, d->o.head_stride,
                        d->o.row_stride);
    const void *in[] = {d->q.data, d->k.data, d->v.data, d->mask_add.data,
                        d->alibi_slopes, d->sinks};
    const size_t nin[] = {nq, nk, nv, nm, d->alibi_slopes ? d->q_heads * f : 0,
                          d->sinks ? d->q_heads * f : 0};
    static const char *const in_name[] = {"q", "k", "v", "mask_add", "alibi_slopes", "sinks"};
    for (size_t i = 0; i < sizeof in / sizeof in[0]; i++)
        if (qkv_overlap(d->o.data, no, in[i], nin[i]) || qkv_overlap(d->lse, nlse, in[i], nin[i]))
            return qkv_fail(QKV_ERR_ARG, "desc.%s overlaps desc.%s",
                            qkv_overlap(d->o.data, no, in[i], nin[i]) ? "o" : "lse", in_name[i]);
    if (qkv_overlap(d->o.data, no, d->lse, nlse))
        return qkv_fail(QKV_ERR_ARG, "desc.lse overlaps desc.o");
    if ((d->alibi_slopes && !all_finite(d->alibi_slopes, d->q_heads)) ||
        (d->sinks && !all_finite(d->sinks, d->q_heads)))
        return qkv_fail(QKV_ERR_ARG, "desc.%s holds a NaN or an infinity",
                        d->sinks && !all_finite(d->sinks, d->q_heads) ? "sinks" : "alibi_slopes");
    return QKV_OK;
}

/* ---- the plan ----------------------------------------------------------- */

typedef struct plan {
    const qkv_attention_desc *d;
    const qkv_kernels *kern;
    size_t group;                 /* query heads per KV head */
    size_t heads_per_job, head_blocks;
    size_t rows_per_job, row_blocks;
    size_t jobs;                  /* batch · kv_heads · head_blocks · row_blocks */
    size_t splits, split_len;     /* key ranges per job (1: no split) */
    float *partial;               /* splits > 1: per task, rows · (v_head_dim + 2) */
} plan;

static void make_plan(plan *p, const qkv_attention_desc *d, const qkv_kernels *kern)
{
    memset(p, 0, sizeof *p);
    p->d = d;
    p->kern = kern;
    p->group = d->q_heads / d->kv_heads;
    /* A job is a block of query rows; when there are few rows (decode),
       it takes several heads of the GQA group so each key serves them all. */
    p->rows_per_job = d->q_len < QKV_ATTN_MAX_ROWS ? d->q_len : QKV_ATTN_MAX_ROWS;
    p->heads_per_job = QKV_ATTN_MAX_ROWS / p->rows_per_job;
    if (p->heads_per_job > p->group)
        p->heads_per_job = p->group;
    p->head_blocks = (p->group + p->heads_per_job - 1) / p->heads_per_job;
    p->row_blocks = (d->q_len + p->rows_per_job - 1) / p->rows_per_job;
    p->jobs = d->batch * d->kv_heads * p->head_blocks * p->row_blocks;
    p->splits = 1;
    p->split_len = d->kv_len;
    if (d->parallel_for && p->jobs < SPLIT_TARGET_TASKS && d->kv_len >= 2 * SPLIT_MIN_KEYS) {
        size_t want = (SPLIT_TARGET_TASKS + p->jobs - 1) / p->jobs;
        if (want > d->kv_len / SPLIT_MIN_KEYS)
            want = d->kv_len / SPLIT_MIN_KEYS;
        /* Whole multiples of 64 keys keep the kernels' tiles aligned. */
        p->split_len = ((d->kv_len + want - 1) / want + 63) / 64 * 64;
        p->splits = (d->kv_len + p->split_len - 1) / p->split_len;
    }
}

static size_t partial_floats(const plan *p)
{
    /* Only used with a merge buffer, whose size check covers this product. */
    return QKV_ATTN_MAX_ROWS * (p->d->v_head_dim + 2);
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
} job_place;

static job_place place_of(const plan *p, size_t job)
{
    const qkv_attention_desc *d = p->d;
    job_place w;
    const size_t rb = job % p->row_blocks;
    job /= p->row_blocks;
    const size_t hb = job % p->head_blocks;
    job /= p->head_blocks;
    w.g = job % d->kv_heads;
    w.b = job / d->kv_heads;
    w.h0 = w.g * p->group + hb * p->heads_per_job;
    w.h1 = w.h0 + p->heads_per_job;
    if (w.h1 > (w.g + 1) * p->group)
        w.h1 = (w.g + 1) * p->group;
    w.i0 = rb * p->rows_per_job;
    w.i1 = w.i0 + p->rows_per_job < d->q_len ? w.i0 + p->rows_per_job : d->q_len;
    return w;
}

static float *out_row(const qkv_attention_desc *d, size_t b, size_t h, size_t i)
{
    return (float *)d->o.data + b * d->o.batch_stride + h * d->o.head_stride + i * d->o.row_stride;
}

/* The softmax denominator joined by the sink, then o = acc / L and lse. */
static void finish_row(const qkv_attention_desc *d, size_t b, size_t h, size_t i,
                       const float *acc, float max, float sum)
{
    float *o = out_row(d, b, h, i);
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
        memset(o, 0, d->v_head_dim * sizeof *o);
    } else {
        const float inv = scale / sum;
        for (size_t c = 0; c < d->v_head_dim; c++)
            o[c] = acc[c] * inv;
    }
    if (d->lse)
        d->lse[(b * d->q_heads + h) * d->q_len + i] = sum == 0.0f ? -INFINITY : max + logf(sum);
}

/* Fills the rows of a job for keys [lo, hi) and runs the kernel. Results go
   to the output rows directly, or to `partial` (acc rows, then max and sum)
   when the keys are split. */
static void run_job(const plan *p, size_t job, size_t lo, size_t hi, float *partial)
{
    const qkv_attention_desc *d = p->d;
    const job_place w = place_of(p, job);
    qkv_attn_row rows[QKV_ATTN_MAX_ROWS];
    qkv_attn_job j = {
        .k = (const float *)d->k.data + w.b * d->k.batch_stride + w.g * d->k.head_stride,
        .ldk = d->k.row_stride,
        .v = (const float *)d->v.data + w.b * d->v.batch_stride + w.g * d->v.head_stride,
        .ldv = d->v.row_stride,
        .head_dim = d->head_dim,
        .v_head_dim = d->v_head_dim,
        .scale = d->scale,
        .softcap = d->softcap,
        .kv_begin = SIZE_MAX,
        .kv_end = 0,
        .rows = 0,
        .row = rows,
    };
    for (size_t h = w.h0; h < w.h1; h++) {
        for (size_t i = w.i0; i < w.i1; i++) {
            qkv_attn_row *r = &rows[j.rows];
            r->q = (const float *)d->q.data + w.b * d->q.batch_stride + h * d->q.head_stride +
                   i * d->q.row_stride;
            r->acc = partial ? partial + j.rows * d->v_head_dim : out_row(d, w.b, h, i);
            r->mask = d->mask == QKV_MASK_ADDITIVE
                          ? d->mask_add.data + w.b * d->mask_add.batch_stride +
                                h * d->mask_add.head_stride + i * d->mask_add.row_stride
                          : NULL;
            r->slope = d->alibi_slopes ? d->alibi_slopes[h] : 0.0f;
            r->pos = (ptrdiff_t)i + (ptrdiff_t)d->kv_len - (ptrdiff_t)d->q_len;
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
    p->kern->attention(&j);

    if (partial) {
        float *max = partial + QKV_ATTN_MAX_ROWS * d->v_head_dim, *sum = max + QKV_ATTN_MAX_ROWS;
        for (size_t r = 0; r < j.rows; r++) {
            max[r] = rows[r].max;
            sum[r] = rows[r].sum;
        }
        return;
    }
    size_t r = 0;
    for (size_t h = w.h0; h < w.h1; h++)
        for (size_t i = w.i0; i < w.i1; i++, r++)
            finish_row(d, w.b, h, i, rows[r].acc, rows[r].max, rows[r].sum);
}

/* Merges the key splits of a job in split order (a fixed order, so the
   result does not depend on which thread finished first). */
static void merge_job(const plan *p, size_t job)
{
    const qkv_attention_desc *d = p->d;
    const job_place w = place_of(p, job);
    const size_t dv = d->v_head_dim, stride = partial_floats(p);
    const float *first = p->partial + job * p->splits * stride;
    size_t r = 0;
    for (size_t h = w.h0; h < w.h1; h++) {
        for (size_t i = w.i0; i < w.i1; i++, r++) {
            float *acc = out_row(d, w.b, h, i);   /* accumulate in place */
            float max = -INFINITY, sum = 0.0f;
            memset(acc, 0, dv * sizeof *acc);
            for (size_t s = 0; s < p->splits; s++) {
                const float *part = first + s * stride;
                const float *pacc = part + r * dv;
                const float pmax = part[QKV_ATTN_MAX_ROWS * dv + r];
                const float psum = part[QKV_ATTN_MAX_ROWS * dv + QKV_ATTN_MAX_ROWS + r];
                /* A split that saw no key adds nothing. One whose scores were
                   all NaN also reports max = -inf, but its sum is NaN and
                   must reach the output: skip on the sum, not the max. */
                if (psum == 0.0f)
                    continue;
                const float top = pmax > max ? pmax : max;
                const float a = expf(max - top), c = expf(pmax - top);
                sum = sum * a + psum * c;
                for (size_t k = 0; k < dv; k++)
                    acc[k] = acc[k] * a + pacc[k] * c;
                max = top;
            }
            finish_row(d, w.b, h, i, acc, max, sum);
        }
    }
}

static void task_whole(void *ctx, size_t job)
{
    const plan *p = ctx;
    run_job(p, job, 0, p->d->kv_len, NULL);
}

static void task_split(void *ctx, size_t index)
{
    const plan *p = ctx;
    const size_t job = index / p->splits, s = index % p->splits;
    const size_t lo = s * p->split_len;
    const size_t hi = lo + p->split_len < p->d->kv_len ? lo + p->split_len : p->d->kv_len;
    run_job(p, job, lo, hi, p->partial + index * partial_floats(p));
}

static void task_merge(void *ctx, size_t job)
{
    merge_job(ctx, job);
}

qkv_status qkv_attention_with(const qkv_kernels *kern, const qkv_attention_desc *desc)
{
    qkv_status st = check_desc(desc);
    if (st != QKV_OK)
        return st;
    if (!kern)
        return qkv_fail_isa_choice();
    plan p;
    make_plan(&p, desc, kern);
    if (!desc->parallel_for) {
        for (size_t job = 0; job < p.jobs; job++)
            task_whole(&p, job);
        return QKV_OK;
    }
    if (p.splits == 1) {
        desc->parallel_for(desc->pool, p.jobs, task_whole, &p);
        return QKV_OK;
    }
    /* jobs · splits < 2·SPLIT_TARGET_TASKS here; only a huge v_head_dim
       could overflow the byte count. */
    size_t floats, bytes;
    if (__builtin_mul_overflow((size_t)QKV_ATTN_MAX_ROWS, desc->v_head_dim + 2, &floats) ||
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

/*
 * Fused attention: the argument checks, then the planner (dispatch/plan.c)
 * on the chosen ISA, if its context has what the dtypes need.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "error.h"
#include "geometry.h"
#include "plan.h"
#include "validate.h"

/* ---- argument checks ---------------------------------------------------- */

/* Bytes spanned by a strided 4-d tensor of a dtype; 0 on overflow. The
   element count is checked as f32 (4 bytes, the widest), so the bytes of
   any dtype fit too. */
static size_t tensor_span(size_t n0, size_t s0, size_t n1, size_t s1, size_t n2, size_t s2,
                          size_t len, qkv_dtype t)
{
    size_t off0, off1, off2, last;
    if (__builtin_mul_overflow(n0 - 1, s0, &off0) || __builtin_mul_overflow(n1 - 1, s1, &off1) ||
        __builtin_mul_overflow(n2 - 1, s2, &off2) || __builtin_add_overflow(off0, off1, &last) ||
        __builtin_add_overflow(last, off2, &last) || __builtin_add_overflow(last, len, &last))
        return 0;
    if (!qkv_span_bytes(1, 0, last, sizeof(float)))
        return 0;
    const size_t blk = qkv_dtype_block(t);   /* whole blocks, also for a Q or O */
    return qkv_dtype_bytes(t, (last + blk - 1) / blk * blk);
}

/* Whether every (batch, head, row) of the output has rows of its own: with
   the dimensions sorted by stride, each stride must step over everything
   the smaller ones span. */
static int output_rows_distinct(const qkv_attention_desc *d, size_t batch)
{
    size_t count[3] = {batch, d->q_heads, d->q_len};
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

/* A dtype value, and for K and V (kv) the block layout rules of
   Q8_0/Q4_0: rows of whole blocks that start on block boundaries; paged
   K/V do not use batch_stride (the page table places each sequence). (For
   Q and O a block type is valid but not supported: dtypes_supported.) */
static qkv_status check_dtype(const qkv_tensor *t, size_t dim, int kv, int paged,
                              const char *field)
{
    if ((unsigned)t->dtype >= QKV_DTYPE_COUNT)
        return qkv_fail(QKV_ERR_ARG, "desc.%s.dtype %d is no qkv_dtype", field, (int)t->dtype);
    const size_t blk = kv ? qkv_dtype_block(t->dtype) : 1;
    if (dim % blk)
        return qkv_fail(QKV_ERR_ARG, "desc.%s.dtype is a block type: its dimension %zu must be a "
                        "multiple of 32", field, dim);
    if ((!paged && t->batch_stride % blk) || t->head_stride % blk || t->row_stride % blk)
        return qkv_fail(QKV_ERR_ARG, "desc.%s.dtype is a block type: its strides (%zu, %zu, %zu) "
                        "must be multiples of 32", field, t->batch_stride, t->head_stride,
                        t->row_stride);
    return QKV_OK;
}

/* The first zero size among the shapes, for the error detail. */
static const char *zero_size(const qkv_attention_desc *d)
{
    return !d->batch ? "batch" : !d->q_heads ? "q_heads" : !d->kv_heads ? "kv_heads"
         : !d->q_len ? "q_len" : !d->kv_len ? "kv_len" : !d->head_dim ? "head_dim" : "v_head_dim";
}

/* Whether the ISA has what the dtypes need: a converter for every stored
   dtype that is not f32; Q and O are never block-quantized. */
static int dtypes_supported(const qkv_ctx *ctx, const qkv_attention_desc *d)
{
    if (d->q.dtype == QKV_Q8_0 || d->q.dtype == QKV_Q4_0 || d->o.dtype == QKV_Q8_0 ||
        d->o.dtype == QKV_Q4_0)
        return 0;
    const qkv_dtype in[] = {d->q.dtype, d->k.dtype, d->v.dtype};
    for (size_t i = 0; i < 3; i++)
        if (in[i] != QKV_F32 && !ctx->conv.to_f32[in[i]])
            return 0;
    return d->o.dtype == QKV_F32 || ctx->conv.from_f32[d->o.dtype];
}

/* Ragged batches: q_start from 0, never decreasing, ending at q_len;
   kv_lens within [0, kv_len]. *max_rows: the most query rows of one
   sequence. */
static qkv_status check_ragged(const qkv_attention_desc *d, size_t *max_rows)
{
    *max_rows = d->q_len;
    if (d->q_start) {
        if (d->q_start[0] != 0)
            return qkv_fail(QKV_ERR_ARG, "desc.q_start[0] %d is not 0", (int)d->q_start[0]);
        *max_rows = 0;
        for (size_t b = 0; b < d->batch; b++) {
            if (d->q_start[b + 1] < d->q_start[b])
                return qkv_fail(QKV_ERR_ARG, "desc.q_start[%zu] %d < q_start[%zu] %d", b + 1,
                                (int)d->q_start[b + 1], b, (int)d->q_start[b]);
            const size_t rows = (size_t)(d->q_start[b + 1] - d->q_start[b]);
            *max_rows = rows > *max_rows ? rows : *max_rows;
        }
        if ((size_t)d->q_start[d->batch] != d->q_len)
            return qkv_fail(QKV_ERR_ARG, "desc.q_start[batch] %d is not q_len %zu",
                            (int)d->q_start[d->batch], d->q_len);
    }
    if (d->kv_lens)
        for (size_t b = 0; b < d->batch; b++)
            if (d->kv_lens[b] < 0 || (size_t)d->kv_lens[b] > d->kv_len)
                return qkv_fail(QKV_ERR_ARG, "desc.kv_lens[%zu] %d is not in [0, kv_len %zu]", b,
                                (int)d->kv_lens[b], d->kv_len);
    return QKV_OK;
}

/* Paged K/V: a table, pages of whole blocks, a table whose size fits
   (*npt, its bytes), and every id the call will read within
   [0, num_pages). Reads only the table, once its size has passed. */
static qkv_status check_pages(const qkv_attention_desc *d, size_t *npt)
{
    *npt = 0;
    if (!d->page_size)
        return d->page_table || d->num_pages
                   ? qkv_fail(QKV_ERR_ARG, "desc.page_table or num_pages set but page_size is 0")
                   : QKV_OK;
    if (!d->page_table)
        return qkv_fail(QKV_ERR_ARG, "desc.page_size %zu but page_table is NULL", d->page_size);
    if (!d->num_pages || d->num_pages > INT32_MAX)
        return qkv_fail(QKV_ERR_ARG, "desc.num_pages %zu is not in [1, INT32_MAX]", d->num_pages);
    if (d->k_page_stride % qkv_dtype_block(d->k.dtype) ||
        d->v_page_stride % qkv_dtype_block(d->v.dtype))
        return qkv_fail(QKV_ERR_ARG, "desc.k_page_stride / v_page_stride must be multiples of 32 "
                        "for a block type");
    const size_t most = pages_of(d->kv_len, d->page_size);
    if (d->batch > 1 && d->page_table_stride < most)
        return qkv_fail(QKV_ERR_ARG, "desc.page_table_stride %zu < the %zu pages of kv_len %zu",
                        d->page_table_stride, most, d->kv_len);
    *npt = tensor_span(d->batch, d->page_table_stride, 1, 0, 1, 0, most, QKV_F32);
    if (!*npt)
        return qkv_fail(QKV_ERR_OVERFLOW,
                        "desc.page_table: sizes x strides exceed PTRDIFF_MAX bytes");
    for (size_t b = 0; b < d->batch; b++) {
        const int32_t *ids = d->page_table + b * d->page_table_stride;
        for (size_t i = 0; i < seq_pages(d, b); i++)
            if (ids[i] < 0 || (size_t)ids[i] >= d->num_pages)
                return qkv_fail(QKV_ERR_ARG, "desc.page_table[%zu][%zu] = %d is not a page in "
                                "[0, num_pages %zu)", b, i, (int)ids[i], d->num_pages);
    }
    return QKV_OK;
}

/* Bytes K or V spans: one block per (batch, KV head), or the page pool. */
static size_t kv_span(const qkv_attention_desc *d, const qkv_tensor *t, size_t page_stride,
                      size_t dim)
{
    if (!d->page_size)
        return tensor_span(d->batch, t->batch_stride, d->kv_heads, t->head_stride, d->kv_len,
                           t->row_stride, dim, t->dtype);
    const size_t rows = d->page_size < d->kv_len ? d->page_size : d->kv_len;
    return tensor_span(d->num_pages, page_stride, d->kv_heads, t->head_stride, rows,
                       t->row_stride, dim, t->dtype);
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
    if ((unsigned)d->fpmath > QKV_FPMATH_BF16)
        return qkv_fail(QKV_ERR_ARG, "desc.fpmath %d is no qkv_fpmath", (int)d->fpmath);
    qkv_status st;
    const int paged = d->page_size != 0;
    if ((st = check_dtype(&d->q, d->head_dim, 0, 0, "q")) != QKV_OK ||
        (st = check_dtype(&d->k, d->head_dim, 1, paged, "k")) != QKV_OK ||
        (st = check_dtype(&d->v, d->v_head_dim, 1, paged, "v")) != QKV_OK)
        return st;
    if ((unsigned)d->o.dtype >= QKV_DTYPE_COUNT)
        return qkv_fail(QKV_ERR_ARG, "desc.o.dtype %d is no qkv_dtype", (int)d->o.dtype);
    size_t max_rows, npt;
    if ((st = check_ragged(d, &max_rows)) != QKV_OK || (st = check_pages(d, &npt)) != QKV_OK)
        return st;

    /* A ragged batch's q and o are one packed block of q_len rows. */
    const size_t qb = d->q_start ? 1 : d->batch;
    const size_t f = sizeof(float);
    const size_t nq = tensor_span(qb, d->q.batch_stride, d->q_heads, d->q.head_stride,
                                  d->q_len, d->q.row_stride, d->head_dim, d->q.dtype);
    const size_t nk = kv_span(d, &d->k, d->k_page_stride, d->head_dim);
    const size_t nv = kv_span(d, &d->v, d->v_page_stride, d->v_head_dim);
    const size_t no = tensor_span(qb, d->o.batch_stride, d->q_heads, d->o.head_stride,
                                  d->q_len, d->o.row_stride, d->v_head_dim, d->o.dtype);
    size_t nm = 0, nlse = 0, rows;
    if (d->mask == QKV_MASK_ADDITIVE)
        nm = max_rows ? tensor_span(d->batch, d->mask_add.batch_stride, d->q_heads,
                                    d->mask_add.head_stride, max_rows, d->mask_add.row_stride,
                                    d->kv_len, QKV_F32)
                      : 1;
    if (!nq || !nk || !nv || !no || (d->mask == QKV_MASK_ADDITIVE && !nm))
        return qkv_fail(QKV_ERR_OVERFLOW, "desc.%s: sizes x strides exceed PTRDIFF_MAX bytes",
                        !nq ? "q" : !nk ? "k" : !nv ? "v" : !no ? "o" : "mask_add");
    if (__builtin_mul_overflow(qb, d->q_heads, &rows) ||
        __builtin_mul_overflow(rows, d->q_len, &rows) || !(nlse = qkv_span_bytes(1, 0, rows, f)))
        return qkv_fail(QKV_ERR_OVERFLOW,
                        "desc.lse: batch x q_heads x q_len floats exceed PTRDIFF_MAX bytes");
    if (!d->lse)
        nlse = 0;

    if (!output_rows_distinct(d, qb))
        return qkv_fail(QKV_ERR_ARG, "desc.o strides (batch %zu, head %zu, row %zu) do not "
                        "nest: each must step over what the smaller ones span, or output rows "
                        "could share elements", d->o.batch_stride, d->o.head_stride,
                        d->o.row_stride);
    const void *in[] = {d->q.data, d->k.data, d->v.data, d->mask_add.data,
                        d->alibi_slopes, d->sinks, d->page_table, d->q_start, d->kv_lens};
    const size_t nin[] = {nq, nk, nv, nm, d->alibi_slopes ? d->q_heads * f : 0,
                          d->sinks ? d->q_heads * f : 0, npt,
                          d->q_start ? (d->batch + 1) * sizeof(int32_t) : 0,
                          d->kv_lens ? d->batch * sizeof(int32_t) : 0};
    static const char *const in_name[] = {"q", "k", "v", "mask_add", "alibi_slopes", "sinks",
                                          "page_table", "q_start", "kv_lens"};
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

qkv_status qkv_attention_with(const qkv_ctx *ctx, const qkv_attention_desc *desc)
{
    qkv_status st = check_desc(desc);
    if (st != QKV_OK)
        return st;
    if (!ctx)
        return qkv_fail_isa_choice();
    if (!dtypes_supported(ctx, desc))
        return qkv_fail(QKV_ERR_UNSUPPORTED, "dtypes q %d, k %d, v %d, o %d: not supported on %s "
                        "(q and o are f32, f16 or bf16)", (int)desc->q.dtype, (int)desc->k.dtype,
                        (int)desc->v.dtype, (int)desc->o.dtype, qkv_isa_name(ctx->isa));
    return qkv_attention_run(ctx, desc);
}

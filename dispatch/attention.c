/*
 * Fused attention: the argument checks, then the planner (dispatch/plan.c)
 * on the chosen ISA, if its context has what the dtypes need.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
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

/* A dtype value, and for K and V the block layout rules of Q8_0/Q4_0:
   rows of whole blocks that start on block boundaries. (For Q and O a
   block type is valid but not supported: dtypes_supported.) */
static qkv_status check_dtype(const qkv_tensor *t, size_t dim, int kv)
{
    if ((unsigned)t->dtype >= QKV_DTYPE_COUNT)
        return QKV_ERR_ARG;
    const size_t blk = kv ? qkv_dtype_block(t->dtype) : 1;
    if (dim % blk || t->batch_stride % blk || t->head_stride % blk || t->row_stride % blk)
        return QKV_ERR_ARG;
    return QKV_OK;
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

static qkv_status check_desc(const qkv_attention_desc *d)
{
    if (!d)
        return QKV_ERR_ARG;
    if (!d->batch || !d->q_heads || !d->kv_heads || !d->q_len || !d->kv_len ||
        !d->head_dim || !d->v_head_dim || d->q_heads % d->kv_heads)
        return QKV_ERR_ARG;
    if (!d->q.data || !d->k.data || !d->v.data || !d->o.data)
        return QKV_ERR_ARG;
    if (d->q.row_stride < d->head_dim || d->k.row_stride < d->head_dim ||
        d->v.row_stride < d->v_head_dim || d->o.row_stride < d->v_head_dim)
        return QKV_ERR_ARG;
    if (!qkv_finite_nonneg(d->scale) || !qkv_finite_nonneg(d->softcap))
        return QKV_ERR_ARG;
    if (d->mask != QKV_MASK_NONE && d->mask != QKV_MASK_CAUSAL && d->mask != QKV_MASK_ADDITIVE)
        return QKV_ERR_ARG;
    if ((d->mask == QKV_MASK_ADDITIVE) != (d->mask_add.data != NULL))
        return QKV_ERR_ARG;
    if (d->mask == QKV_MASK_ADDITIVE && d->mask_add.row_stride < d->kv_len)
        return QKV_ERR_ARG;
    if (d->pool && !d->parallel_for)
        return QKV_ERR_ARG;
    if (d->fpmath != QKV_FPMATH_STRICT && d->fpmath != QKV_FPMATH_BF16)
        return QKV_ERR_ARG;
    if (check_dtype(&d->q, d->head_dim, 0) || check_dtype(&d->k, d->head_dim, 1) ||
        check_dtype(&d->v, d->v_head_dim, 1) || (unsigned)d->o.dtype >= QKV_DTYPE_COUNT)
        return QKV_ERR_ARG;

    const size_t f = sizeof(float);
    const size_t nq = tensor_span(d->batch, d->q.batch_stride, d->q_heads, d->q.head_stride,
                                  d->q_len, d->q.row_stride, d->head_dim, d->q.dtype);
    const size_t nk = tensor_span(d->batch, d->k.batch_stride, d->kv_heads, d->k.head_stride,
                                  d->kv_len, d->k.row_stride, d->head_dim, d->k.dtype);
    const size_t nv = tensor_span(d->batch, d->v.batch_stride, d->kv_heads, d->v.head_stride,
                                  d->kv_len, d->v.row_stride, d->v_head_dim, d->v.dtype);
    const size_t no = tensor_span(d->batch, d->o.batch_stride, d->q_heads, d->o.head_stride,
                                  d->q_len, d->o.row_stride, d->v_head_dim, d->o.dtype);
    size_t nm = 0, nlse = 0, rows;
    if (d->mask == QKV_MASK_ADDITIVE)
        nm = tensor_span(d->batch, d->mask_add.batch_stride, d->q_heads, d->mask_add.head_stride,
                         d->q_len, d->mask_add.row_stride, d->kv_len, QKV_F32);
    if (!nq || !nk || !nv || !no || (d->mask == QKV_MASK_ADDITIVE && !nm))
        return QKV_ERR_OVERFLOW;
    if (__builtin_mul_overflow(d->batch, d->q_heads, &rows) ||
        __builtin_mul_overflow(rows, d->q_len, &rows) || !(nlse = qkv_span_bytes(1, 0, rows, f)))
        return QKV_ERR_OVERFLOW;
    if (!d->lse)
        nlse = 0;

    if (!output_rows_distinct(d))
        return QKV_ERR_ARG;
    const void *in[] = {d->q.data, d->k.data, d->v.data, d->mask_add.data,
                        d->alibi_slopes, d->sinks};
    const size_t nin[] = {nq, nk, nv, nm, d->alibi_slopes ? d->q_heads * f : 0,
                          d->sinks ? d->q_heads * f : 0};
    for (size_t i = 0; i < sizeof in / sizeof in[0]; i++)
        if (qkv_overlap(d->o.data, no, in[i], nin[i]) || qkv_overlap(d->lse, nlse, in[i], nin[i]))
            return QKV_ERR_ARG;
    if (qkv_overlap(d->o.data, no, d->lse, nlse))
        return QKV_ERR_ARG;
    if ((d->alibi_slopes && !all_finite(d->alibi_slopes, d->q_heads)) ||
        (d->sinks && !all_finite(d->sinks, d->q_heads)))
        return QKV_ERR_ARG;
    return QKV_OK;
}

qkv_status qkv_attention_with(const qkv_ctx *ctx, const qkv_attention_desc *desc)
{
    qkv_status st = check_desc(desc);
    if (st != QKV_OK)
        return st;
    if (!ctx || !dtypes_supported(ctx, desc))
        return QKV_ERR_UNSUPPORTED;
    return qkv_attention_run(ctx, desc);
}

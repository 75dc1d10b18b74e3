/*
 * Internal: where a descriptor's sequences, rows and keys are, for the
 * argument checks (dispatch/attention.c) and the planner (dispatch/plan.c).
 * A batch is either regular (every sequence has q_len query rows and
 * kv_len keys) or ragged (q_start: packed query rows; kv_lens: keys per
 * sequence); K and V are either one block per (batch, KV head) or paged.
 * Every function here assumes a descriptor that passed the checks.
 */
#ifndef QKV_GEOMETRY_H
#define QKV_GEOMETRY_H

#include <stddef.h>

#include "qkv.h"

/* Query rows of sequence b. */
static inline size_t seq_rows(const qkv_attention_desc *d, size_t b)
{
    return d->q_start ? (size_t)(d->q_start[b + 1] - d->q_start[b]) : d->q_len;
}

/* Keys of sequence b. */
static inline size_t seq_keys(const qkv_attention_desc *d, size_t b)
{
    return d->kv_lens ? (size_t)d->kv_lens[b] : d->kv_len;
}

/* Element offset of query row i of head h of sequence b in q or o (given
   that tensor's strides). */
static inline size_t row_offset(const qkv_attention_desc *d, size_t batch_stride,
                                size_t head_stride, size_t row_stride, size_t b, size_t h,
                                size_t i)
{
    if (d->q_start)
        return ((size_t)d->q_start[b] + i) * row_stride + h * head_stride;
    return b * batch_stride + h * head_stride + i * row_stride;
}

/* Index of (b, h, i) in lse: [batch][q_heads][q_len], or [q_heads][q_len]
   over the packed rows of a ragged batch. */
static inline size_t lse_index(const qkv_attention_desc *d, size_t b, size_t h, size_t i)
{
    if (d->q_start)
        return h * d->q_len + (size_t)d->q_start[b] + i;
    return (b * d->q_heads + h) * d->q_len + i;
}

/* Pages that hold `keys` keys (page_size > 0), without the overflow of
   rounding up by adding page_size - 1 (a page_size near SIZE_MAX). */
static inline size_t pages_of(size_t keys, size_t page_size)
{
    return keys / page_size + (keys % page_size != 0);
}

/* Pages sequence b reads. */
static inline size_t seq_pages(const qkv_attention_desc *d, size_t b)
{
    return pages_of(seq_keys(d, b), d->page_size);
}

#endif

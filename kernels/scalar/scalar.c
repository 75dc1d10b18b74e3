/*
 * The scalar reference: the textbook's three steps and the fused
 * online-softmax loop, one number at a time. Built without
 * auto-vectorization (see meson.build) so that it stays what it reads as.
 * Every SIMD kernel is tested against these.
 */
#include <math.h>
#include <string.h>

#include "kernels.h"
#include "merge_row.h"

static float dot(const float *a, const float *b, size_t d)
{
    float acc = 0.0f;
    for (size_t c = 0; c < d; c++)
        acc += a[c] * b[c];
    return acc;
}

/* Step 1: how well each query matches each key. */
static void scores_scalar(size_t m, size_t n, size_t d, float scale,
                          const float *q, size_t ldq, const float *k, size_t ldk,
                          float *s, size_t lds)
{
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < n; j++)
            s[i * lds + j] = scale * dot(q + i * ldq, k + j * ldk, d);
}

static int all_hidden(const float *row, size_t n)
{
    for (size_t j = 0; j < n; j++)
        if (row[j] != -INFINITY)
            return 0;
    return 1;
}

/* Step 2: scores to weights that sum to 1. Subtracting the row maximum
   keeps exp() finite; a row with nothing above -INFINITY has no maximum to
   subtract and becomes zeros rather than 0/0. */
static void softmax_scalar(size_t m, size_t n, float *s, size_t lds)
{
    for (size_t i = 0; i < m; i++) {
        float *row = s + i * lds;
        float max = -INFINITY;
        for (size_t j = 0; j < n; j++)
            if (row[j] > max)
                max = row[j];
        /* A NaN entry is never the maximum, but its exp() makes the sum and
           so the whole row NaN, as it should; only a row of nothing but
           -INFINITY has no weights at all. */
        if (max == -INFINITY && all_hidden(row, n)) {
            memset(row, 0, n * sizeof *row);
            continue;
        }
        float sum = 0.0f;
        for (size_t j = 0; j < n; j++) {
            row[j] = expf(row[j] - max);
            sum += row[j];
        }
        float inv = 1.0f / sum;
        for (size_t j = 0; j < n; j++)
            row[j] *= inv;
    }
}

/* Step 3: blend the values by the weights. */
static void weighted_sum_scalar(size_t m, size_t n, size_t dv,
                                const float *p, size_t ldp, const float *v, size_t ldv,
                                float *o, size_t ldo)
{
    for (size_t i = 0; i < m; i++) {
        float *out = o + i * ldo;
        for (size_t c = 0; c < dv; c++)
            out[c] = 0.0f;
        for (size_t j = 0; j < n; j++) {
            float w = p[i * ldp + j];
            for (size_t c = 0; c < dv; c++)
                out[c] += w * v[j * ldv + c];
        }
    }
}

/* Values [c, c + n) of a row stored as `dtype`, widened to f32 (exactly):
   in place for f32, else through the converter into buf (n <= 32, c a
   multiple of 32 for the block types). */
static const float *widen(const void *row, qkv_dtype dtype, qkv_to_f32_fn to_f32, size_t c,
                          size_t n, float *buf)
{
    if (dtype == QKV_F32)
        return (const float *)row + c;
    to_f32(n, (const unsigned char *)row + qkv_dtype_bytes(dtype, c), buf);
    return buf;
}

/* dot(q, k) of head_dim values, each widened to f32, in order. */
static float dot_widened(const qkv_attn_job *job, const void *q, const void *k)
{
    float qb[32], kb[32], acc = 0.0f;
    for (size_t c = 0; c < job->head_dim; c += 32) {
        const size_t n = job->head_dim - c < 32 ? job->head_dim - c : 32;
        const float *qc = widen(q, job->q_dtype, job->q_to_f32, c, n, qb);
        const float *kc = widen(k, job->k.dtype, job->k.to_f32, c, n, kb);
        for (size_t i = 0; i < n; i++)
            acc += qc[i] * kc[i];
    }
    return acc;
}

/* All three steps at once, one key at a time (online softmax): keep the
   largest score so far and the sum of exp(score - largest); when a larger
   score arrives, rescale what was summed so far. No score matrix exists. */
static void attention_scalar(const qkv_attn_job *job)
{
    const size_t dv = job->v_head_dim;
    for (size_t r = 0; r < job->rows; r++) {
        qkv_attn_row *row = &job->row[r];
        float max = job->resume ? row->max : -INFINITY, sum = job->resume ? row->sum : 0.0f;
        for (size_t c = 0; c < dv && !job->resume; c++)
            row->acc[c] = 0.0f;
        for (size_t j = row->kv_begin; j < row->kv_end; j++) {
            float s = job->scale * dot_widened(job, row->q, qkv_kv_row(&job->k, j));
            if (job->softcap > 0.0f)
                s = job->softcap * tanhf(s / job->softcap);
            if (row->slope != 0.0f)
                s += row->slope * (float)((ptrdiff_t)j - row->pos);
            if (row->mask)
                s += row->mask[j];
            if (s == -INFINITY)
                continue;
            if (s > max) {
                float rescale = expf(max - s);
                sum *= rescale;
                for (size_t c = 0; c < dv; c++)
                    row->acc[c] *= rescale;
                max = s;
            }
            float w = expf(s - max);
            sum += w;
            const void *value = qkv_kv_row(&job->v, j);
            float vb[32];
            for (size_t c0 = 0; c0 < dv; c0 += 32) {
                const size_t n = dv - c0 < 32 ? dv - c0 : 32;
                const float *vc = widen(value, job->v.dtype, job->v.to_f32, c0, n, vb);
                for (size_t c = 0; c < n; c++)
                    row->acc[c0 + c] += w * vc[c];
            }
        }
        row->max = max;
        row->sum = sum;
    }
}

static void merge_blend_row_scalar(size_t dv, float *out, const float *other, float w, float w2)
{
    for (size_t c = 0; c < dv; c++)
        out[c] = out[c] * w + other[c] * w2;
}

static void merge_nan_row_scalar(size_t dv, float *out)
{
    for (size_t c = 0; c < dv; c++)
        out[c] = NAN;
}

/* Two partial results over disjoint keys become the result over both: each
   side's output is already divided by its own sum, so it is re-weighted by
   its share e^lse / (e^lse + e^lse2) of the joint sum. */
void merge_states_f32_scalar(size_t rows, size_t dv, float *o, size_t ldo, float *lse,
                             const float *o2, size_t ldo2, const float *lse2)
{
    merge_rows(rows, dv, o, ldo, lse, o2, ldo2, lse2, merge_blend_row_scalar, merge_nan_row_scalar);
}

/* The scalar attention keeps no tiles: it needs no workspace. */
static size_t attention_ws_scalar(size_t rows, const qkv_attn_shape *shape, size_t limit)
{
    (void)rows, (void)shape, (void)limit;
    return 0;
}

void qkv_ctx_init_scalar(qkv_ctx *c)
{
    c->scores = scores_scalar;
    c->softmax = softmax_scalar;
    c->weighted_sum = weighted_sum_scalar;
    c->attention = attention_scalar;
    c->attention_ws = attention_ws_scalar;
    c->blocks.tile_keys = 64;
    c->blocks.max_rows = QKV_ATTN_MAX_ROWS;
    qkv_converters_init_scalar(&c->conv);
    c->merge_states = merge_states_f32_scalar;
}

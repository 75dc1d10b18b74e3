#include <math.h>
#include <stdlib.h>

#include "oracle.h"

void oracle_scores(size_t m, size_t n, size_t d, double scale,
                   const float *q, size_t ldq, const float *k, size_t ldk, double *s)
{
    for (size_t i = 0; i < m; i++)
        for (size_t j = 0; j < n; j++) {
            double acc = 0;
            for (size_t c = 0; c < d; c++)
                acc += (double)q[i * ldq + c] * k[j * ldk + c];
            s[i * n + j] = scale * acc;
        }
}

/* exp(x - max) over a row; NaN anywhere makes the row NaN, no finite
   maximum (all -inf) makes it zeros. */
static void softmax_row(size_t n, double *x)
{
    double max = -INFINITY;
    int nan = 0;
    for (size_t j = 0; j < n; j++) {
        nan |= isnan(x[j]);
        if (x[j] > max)
            max = x[j];
    }
    if (nan || max == INFINITY) {
        for (size_t j = 0; j < n; j++)
            x[j] = NAN;
        return;
    }
    if (max == -INFINITY) {
        for (size_t j = 0; j < n; j++)
            x[j] = 0;
        return;
    }
    double sum = 0;
    for (size_t j = 0; j < n; j++)
        sum += x[j] = exp(x[j] - max);
    for (size_t j = 0; j < n; j++)
        x[j] /= sum;
}

void oracle_softmax(size_t m, size_t n, const float *s, size_t lds, double *out)
{
    for (size_t i = 0; i < m; i++) {
        for (size_t j = 0; j < n; j++)
            out[i * n + j] = s[i * lds + j];
        softmax_row(n, out + i * n);
    }
}

void oracle_weighted_sum(size_t m, size_t n, size_t dv,
                         const float *p, size_t ldp, const float *v, size_t ldv, double *o)
{
    for (size_t i = 0; i < m; i++)
        for (size_t c = 0; c < dv; c++) {
            double acc = 0;
            for (size_t j = 0; j < n; j++)
                acc += (double)p[i * ldp + j] * v[j * ldv + c];
            o[i * dv + c] = acc;
        }
}

void oracle_attention(const qkv_attention_desc *d, double *o, double *lse)
{
    const float *q = d->q.data, *k = d->k.data, *v = d->v.data;
    const size_t group = d->q_heads / d->kv_heads, dv = d->v_head_dim;
    double *s = malloc((d->kv_len + 1) * sizeof *s);
    for (size_t b = 0; b < d->batch; b++)
    for (size_t h = 0; h < d->q_heads; h++)
    for (size_t i = 0; i < d->q_len; i++) {
        const size_t g = h / group;
        const double pos = (double)i + (double)d->kv_len - (double)d->q_len;
        const float *qi = q + b * d->q.batch_stride + h * d->q.head_stride + i * d->q.row_stride;
        for (size_t j = 0; j < d->kv_len; j++) {
            const float *kj = k + b * d->k.batch_stride + g * d->k.head_stride + j * d->k.row_stride;
            double x = 0;
            for (size_t c = 0; c < d->head_dim; c++)
                x += (double)qi[c] * kj[c];
            x *= d->scale;
            if (d->softcap > 0)
                x = d->softcap * tanh(x / d->softcap);
            if (d->alibi_slopes)
                x += d->alibi_slopes[h] * ((double)j - pos);
            if (d->mask == QKV_MASK_ADDITIVE)
                x += d->mask_add.data[b * d->mask_add.batch_stride + h * d->mask_add.head_stride +
                                      i * d->mask_add.row_stride + j];
            if (d->mask == QKV_MASK_CAUSAL && (double)j > pos)
                x = -INFINITY;
            if (d->window && (double)j <= pos - (double)d->window)
                x = -INFINITY;
            s[j] = x;
        }
        /* The sink is one more logit in the softmax, with no value row. */
        size_t n = d->kv_len;
        if (d->sinks)
            s[n++] = d->sinks[h];
        double max = -INFINITY;
        int nan = 0;
        for (size_t j = 0; j < n; j++) {
            nan |= isnan(s[j]);
            if (s[j] > max)
                max = s[j];
        }
        double *out = o + ((b * d->q_heads + h) * d->q_len + i) * dv;
        double sum = 0;
        for (size_t c = 0; c < dv; c++)
            out[c] = nan ? NAN : 0;
        if (nan) {
            /* A NaN score is never the maximum, yet it makes the sum and so
               the whole row NaN. */
            max = sum = NAN;
        } else if (max > -INFINITY) {
            for (size_t j = 0; j < n; j++)
                sum += exp(s[j] - max);
            for (size_t j = 0; j < d->kv_len; j++) {
                /* A hidden key is left out, not weighed by 0: 0 · NaN in
                   its value row would reach rows that never see it. */
                if (s[j] == -INFINITY)
                    continue;
                const double w = exp(s[j] - max) / sum;
                const float *vj = v + b * d->v.batch_stride + g * d->v.head_stride + j * d->v.row_stride;
                for (size_t c = 0; c < dv; c++)
                    out[c] += w * vj[c];
            }
        }
        lse[(b * d->q_heads + h) * d->q_len + i] =
            nan ? NAN : max > -INFINITY ? max + log(sum) : -INFINITY;
    }
    free(s);
}

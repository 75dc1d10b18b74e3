/* The double-precision oracle: the definitions of API.md evaluated in
   double, two-pass softmax, no tiling. Test-only; never in the library. */
#ifndef QKV_ORACLE_H
#define QKV_ORACLE_H

#include <stddef.h>

#include "qkv.h"

void oracle_scores(size_t m, size_t n, size_t d, double scale,
                   const float *q, size_t ldq, const float *k, size_t ldk,
                   double *s /* m x n, dense */);
/* Softmax of each of m rows of n entries of s (lds apart) into out (dense). */
void oracle_softmax(size_t m, size_t n, const float *s, size_t lds, double *out);
void oracle_weighted_sum(size_t m, size_t n, size_t dv,
                         const float *p, size_t ldp, const float *v, size_t ldv,
                         double *o /* m x dv, dense */);
/* Whole fused attention of a valid f32 descriptor. o: [batch][q_heads][q_len]
   [v_head_dim] dense; lse: [batch][q_heads][q_len]. */
void oracle_attention(const qkv_attention_desc *d, double *o, double *lse);

#endif

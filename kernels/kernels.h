/*
 * The contract between the ISA-independent code (dispatch/) and the kernels
 * of one instruction set (kernels/<isa>/). Internal: not installed.
 *
 * Every ISA provides the four functions of qkv_kernels. Arguments are
 * already validated; kernels never fail and never allocate.
 */
#ifndef QKV_KERNELS_H
#define QKV_KERNELS_H

#include <stddef.h>

#include "qkv.h"

/* The most query rows one fused-attention job carries. Kernels may keep
   per-row state for this many rows on the stack. */
#define QKV_ATTN_MAX_ROWS 64

/* One query row of a fused-attention job. */
typedef struct qkv_attn_row {
    const float *q;        /* head_dim floats */
    float       *acc;      /* out: v_head_dim floats, Σ_j exp(s_j - max) · v_j */
    const float *mask;     /* additive mask row, mask[j] for key j; or NULL */
    float        slope;    /* ALiBi slope: s_j += slope · (j - pos); 0 for none */
    ptrdiff_t    pos;      /* p(i), the query's position among the keys */
    size_t       kv_begin; /* the keys this row sees: [kv_begin, kv_end), the */
    size_t       kv_end;   /* job's range cut by causal mask and window; may be empty */
    float        max;      /* out: the largest s_j seen (-INFINITY if none) */
    float        sum;      /* out: Σ_j exp(s_j - max) (0 if none) */
} qkv_attn_row;

/* Rows of queries that share one KV head (a block of query rows of one or
   more heads of a GQA group), against a contiguous range of its keys.
   For each row the kernel computes, for every key j of the row's range,
       s_j = scale · dot(q, k_j)
       s_j = softcap · tanh(s_j / softcap)        if softcap > 0
       s_j += slope · (float)(j - pos)            (when slope != 0)
       s_j += mask[j]                             if mask
   and writes acc, max and sum as an online softmax would. A key whose s_j is
   -INFINITY contributes nothing; a NaN propagates into acc and sum. Rows
   with an empty range get acc = 0, max = -INFINITY, sum = 0. */
typedef struct qkv_attn_job {
    const float  *k;          /* key 0 of this KV head; key j at k + j·ldk */
    size_t        ldk;
    const float  *v;          /* value 0; value j at v + j·ldv */
    size_t        ldv;
    size_t        head_dim;
    size_t        v_head_dim;
    float         scale;
    float         softcap;    /* 0: off */
    size_t        kv_begin;   /* the union of the rows' ranges lies in */
    size_t        kv_end;     /* [kv_begin, kv_end) */
    size_t        rows;       /* 1 .. QKV_ATTN_MAX_ROWS */
    qkv_attn_row *row;
} qkv_attn_job;

typedef void (*qkv_scores_kernel)(size_t m, size_t n, size_t d, float scale,
                                  const float *q, size_t ldq, const float *k, size_t ldk,
                                  float *s, size_t lds);
typedef void (*qkv_softmax_kernel)(size_t m, size_t n, float *s, size_t lds);
typedef void (*qkv_weighted_sum_kernel)(size_t m, size_t n, size_t dv,
                                        const float *p, size_t ldp, const float *v, size_t ldv,
                                        float *o, size_t ldo);
typedef void (*qkv_attention_kernel)(const qkv_attn_job *job);

/* Merges a second partial attention state into the first, row by row, by
   their log-sum-exp: the semantics of qkv_merge_states in qkv.h, whose
   rules for -INFINITY, +INFINITY and NaN every ISA follows bit for bit
   (kernels/merge_row.h decides them once per row for all ISAs). rows and
   dv >= 1, ldo and ldo2 >= dv, o/lse do not overlap o2/lse2 or each other.
   Implementations: merge_states_f32_<isa> below. */
typedef void (*qkv_merge_states_kernel)(size_t rows, size_t dv, float *o, size_t ldo, float *lse,
                                        const float *o2, size_t ldo2, const float *lse2);

/* The kernels of one ISA. dispatch/ fills one table per ISA with the scalar
   kernels, then lets each ISA level override what it implements. */
typedef struct qkv_kernels {
    qkv_scores_kernel       scores;
    qkv_softmax_kernel      softmax;
    qkv_weighted_sum_kernel weighted_sum;
    qkv_attention_kernel    attention;
    qkv_merge_states_kernel merge_states;
} qkv_kernels;

/* Each ISA folder defines one of these; it overrides the entries it has. */
void qkv_kernels_init_scalar(qkv_kernels *k);
void qkv_kernels_init_avx2(qkv_kernels *k);
void qkv_kernels_init_avx512(qkv_kernels *k);
void qkv_kernels_init_neon(qkv_kernels *k);
void qkv_kernels_init_sve(qkv_kernels *k);

/* The merge kernels, declared here because the x86 ones are defined by
   kernels/x86/merge_tmpl.h at the end of avx2.c / avx512.c, after the init
   that takes their address. */
void merge_states_f32_scalar(size_t rows, size_t dv, float *o, size_t ldo, float *lse,
                             const float *o2, size_t ldo2, const float *lse2);
void merge_states_f32_avx2(size_t rows, size_t dv, float *o, size_t ldo, float *lse,
                           const float *o2, size_t ldo2, const float *lse2);
void merge_states_f32_avx512(size_t rows, size_t dv, float *o, size_t ldo, float *lse,
                             const float *o2, size_t ldo2, const float *lse2);
void merge_states_f32_neon(size_t rows, size_t dv, float *o, size_t ldo, float *lse,
                           const float *o2, size_t ldo2, const float *lse2);
void merge_states_f32_sve(size_t rows, size_t dv, float *o, size_t ldo, float *lse,
                          const float *o2, size_t ldo2, const float *lse2);

#endif /* QKV_KERNELS_H */

/*
 * The contract between the ISA-independent code (dispatch/) and the kernels
 * of one instruction set (kernels/<isa>/). Internal: not installed.
 *
 * Each ISA registers a context (qkv_ctx, in the style of BLIS's
 * per-configuration contexts): its stage kernels, its fused-attention
 * driver, its row converters per dtype and the block sizes the planner
 * shares with the driver. A context starts as a copy of its parent's
 * (dispatch/isa_list.h), so an ISA overrides only what it has. Arguments
 * are validated before any kernel runs; kernels never fail and never
 * allocate.
 */
#ifndef QKV_KERNELS_H
#define QKV_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "convert.h"
#include "qkv.h"

/* f with the SIMD_SUFFIX of the translation unit that expands it (each
   ISA's file defines its own before including the shared templates), so
   one template gives every ISA its own names. */
#define SIMD_CAT_(a, b) a##b
#define SIMD_CAT(a, b) SIMD_CAT_(a, b)
#define SIMD_NAME(f) SIMD_CAT(f, SIMD_SUFFIX)

/* The most query rows one fused-attention job carries (lanes of the
   driver's score tile). 32 rather than 64: measured within noise on Zen 5
   (prefill d = 64/128, n = 256/2048), and it halves the tile buffers. */
#define QKV_ATTN_MAX_ROWS 32

/* The workspace of one fused-attention job, in floats (36 KiB). It is the
   bulk of qkv_attention's stack use (QKV_MAX_STACK_BYTES in qkv.h, tested
   by tests/stack): the planner gives each job its acc rows (when the
   output is not f32) and the driver its tiles from it, choosing rows per
   job so that they fit (32 rows of head_dim 128 with a mask or a 16-bit V,
   16 of head_dim 256). */
#define QKV_ATTN_WS_FLOATS 9216

/* Where the rows of one K or V operand are (one KV head of one sequence):
   key j is row j % page_size of page pages[j / page_size], or row j of one
   contiguous block when pages is NULL. Offsets in bytes, so that the same
   addressing serves every dtype (a Q8_0 row of d values is d/32 blocks). */
typedef struct qkv_kv_src {
    const unsigned char *base; /* page 0 (or the block), row 0 */
    size_t row_bytes;          /* between rows of a page */
    size_t page_bytes;         /* between pages */
    size_t page_size;          /* keys per page; SIZE_MAX when contiguous */
    const int32_t *pages;      /* page ids, validated; NULL when contiguous */
    qkv_dtype dtype;
    qkv_to_f32_fn to_f32;      /* the ISA's converter; NULL for f32 */
} qkv_kv_src;

static inline const void *qkv_kv_row(const qkv_kv_src *s, size_t j)
{
    if (!s->pages)
        return s->base + j * s->row_bytes;
    return s->base + (size_t)s->pages[j / s->page_size] * s->page_bytes +
           (j % s->page_size) * s->row_bytes;
}

/* The keys from j (of n wanted) that lie row_bytes apart from j's row:
   the rest of j's page, or all n when K/V is one block. Strided reads
   (the GEMM microkernels, the bf16 tiles' packing, the sweeps) go run by
   run: one division a page rather than one a key (a paged decode spent
   more on them than on its arithmetic). */
static inline size_t qkv_kv_run(const qkv_kv_src *s, size_t j, size_t n)
{
    const size_t run = s->pages ? s->page_size - j % s->page_size : n;
    return run < n ? run : n;
}

/* The rows of keys j, j + 1, ... taken in order (qkv_kv_next), for loops
   that go key by key across pages: one division a page run, as above. */
typedef struct qkv_kv_cursor {
    const qkv_kv_src *s;
    size_t j, left;            /* the next key; rows left in its run */
    const unsigned char *row;  /* its row, when left > 0 */
} qkv_kv_cursor;

static inline qkv_kv_cursor qkv_kv_at(const qkv_kv_src *s, size_t j)
{
    const qkv_kv_cursor c = {s, j, 0, NULL};
    return c;
}

static inline const unsigned char *qkv_kv_next(qkv_kv_cursor *c)
{
    if (!c->left) {
        c->row = (const unsigned char *)qkv_kv_row(c->s, c->j);
        c->left = qkv_kv_run(c->s, c->j, SIZE_MAX);
    }
    const unsigned char *r = c->row;
    c->row += c->s->row_bytes;
    c->left--;
    c->j++;
    return r;
}

/* Reads one byte of every cache line that holds bytes of p[0, len)
   (len > 0): the first byte, then each later line's first. Loads that
   nothing waits on, none outside the range: the decode sweeps (the
   driver's feed, simd/attention.h, and a walk's, plan.c) bring rows in
   with them. */
static inline void qkv_touch_lines(const void *p, size_t len)
{
    const uintptr_t a0 = (uintptr_t)p;
    (void)*(const volatile unsigned char *)p;
    for (uintptr_t a = (a0 | 63) + 1; a < a0 + len; a += 64)
        (void)*(const volatile unsigned char *)a;
}

/* The keys that the rows [i0, i0 + mr) of a job see within the keys
   [k0, k1), row i seeing [lo[i], hi[i]) (lo <= hi, both >= 0): the union
   of their ranges clipped to [k0, k1), as [*klo, *khi); 0 when none of
   them sees a key there. The fused driver and the bf16 tiles take a tile's
   or a block's keys from it. */
static inline int qkv_rows_key_span(const int32_t *lo, const int32_t *hi, size_t i0, size_t mr,
                                    size_t k0, size_t k1, size_t *klo, size_t *khi)
{
    size_t b0 = k1, e0 = k0;
    for (size_t i = i0; i < i0 + mr; i++) {
        const size_t b = (size_t)lo[i] > k0 ? (size_t)lo[i] : k0;
        const size_t e = (size_t)hi[i] < k1 ? (size_t)hi[i] : k1;
        if (b < e) {
            b0 = b < b0 ? b : b0;
            e0 = e > e0 ? e : e0;
        }
    }
    *klo = b0;
    *khi = e0;
    return b0 < e0;
}

/* One query row of a fused-attention job. */
typedef struct qkv_attn_row {
    const void  *q;        /* head_dim values of the job's q_dtype */
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
   more heads of a GQA group), against a range of its keys. For each row the
   kernel computes, for every key j of the row's range,
       s_j = scale · dot(q, k_j)                 (q and k_j widened exactly to f32)
       s_j = softcap · tanh(s_j / softcap)        if softcap > 0
       s_j += slope · (float)(j - pos)            (when slope != 0)
       s_j += mask[j]                             if mask
   and writes acc, max and sum as an online softmax would. A key whose s_j is
   -INFINITY contributes nothing, even when its V row holds Inf or NaN; a
   NaN propagates into acc and sum. Rows with an empty range get acc = 0,
   max = -INFINITY, sum = 0. With `resume` the rows' acc, max and sum come
   in holding that result over earlier keys (the empty state where a row
   saw none) and the kernel goes on from it, as if those keys had been the
   first of its range. */
typedef struct qkv_attn_job {
    qkv_kv_src    k, v;
    qkv_dtype     q_dtype;
    qkv_to_f32_fn q_to_f32;   /* NULL for f32 */
    size_t        head_dim;
    size_t        v_head_dim;
    float         scale;
    float         softcap;    /* 0: off */
    size_t        kv_begin;   /* the union of the rows' ranges lies in */
    size_t        kv_end;     /* [kv_begin, kv_end) */
    size_t        rows;       /* 1 .. QKV_ATTN_MAX_ROWS */
    qkv_attn_row *row;
    float        *ws;         /* the kernel's workspace, 64-byte aligned, */
    size_t        ws_floats;  /* at least ctx->attention_ws(rows, shape, 0) */
    qkv_fpmath    fpmath;     /* what the kernel may round (qkv.h) */
    int           resume;     /* go on from the rows' acc, max and sum */
    /* NULL, or the K and V rows the kernel asks the memory for while it
       works, in place of its own look ahead: k_pre[i] and v_pre[i] beside
       key kv_begin + i (NULL entries: nothing). The planner's walk hands a
       job its share of the next chunk of every head's keys (plan.c). */
    const unsigned char *const *k_pre, *const *v_pre;
} qkv_attn_job;

/* What a job's workspace depends on besides its row count. */
typedef struct qkv_attn_shape {
    size_t head_dim, v_head_dim;
    qkv_dtype q_dtype, k_dtype, v_dtype;
    int masked;               /* some row has an additive mask */
    qkv_fpmath fpmath;
} qkv_attn_shape;

typedef void (*qkv_scores_kernel)(size_t m, size_t n, size_t d, float scale,
                                  const float *q, size_t ldq, const float *k, size_t ldk,
                                  float *s, size_t lds);
typedef void (*qkv_softmax_kernel)(size_t m, size_t n, float *s, size_t lds);
typedef void (*qkv_weighted_sum_kernel)(size_t m, size_t n, size_t dv,
                                        const float *p, size_t ldp, const float *v, size_t ldv,
                                        float *o, size_t ldo);
typedef void (*qkv_attention_kernel)(const qkv_attn_job *job);
/* Floats of workspace a job of `rows` rows of this shape asks for: what it
   prefers (the bf16 tiles' V chunks of 128 columns, Qᵀ whole) where that
   stays within `limit` floats, else less (V chunks of 64 columns; on
   16-lane ISAs, Qᵀ in chunks along head_dim). The kernel works in any
   workspace of at least attention_ws(rows, shape, 0) floats. */
typedef size_t (*qkv_attention_ws_fn)(size_t rows, const qkv_attn_shape *shape, size_t limit);
/* Whether a walk (dispatch/plan.c) over K and V whose every key's row
   holds all the KV heads (page_size 0), or whose every page of page_size
   keys does, brings each chunk in by reading it in memory order before
   its jobs of `rows` rows run, rather than by their own feed (see
   walk_sweeps in simd/attention.h). */
typedef int (*qkv_walk_sweeps_fn)(size_t rows, const qkv_attn_shape *shape, size_t page_size);
/* Merges a second partial attention state into the first, row by row, by
   their log-sum-exp: the semantics of qkv_merge_states in qkv.h, whose
   rules for -INFINITY, +INFINITY and NaN every ISA follows bit for bit
   (kernels/merge_row.h decides them once per row for all ISAs). rows and
   dv >= 1, ldo and ldo_other >= dv, o/lse do not overlap the other side or
   each other. Implementations: merge_states_f32_<isa> below. */
typedef void (*qkv_merge_kernel)(size_t rows, size_t dv, float *o, size_t ldo, float *lse,
                                 const float *o_other, size_t ldo_other, const float *lse_other);

/* Block sizes the planner (dispatch/plan.c) and the driver share. */
typedef struct qkv_attn_blocks {
    size_t tile_keys;     /* keys per KV tile; key splits are whole tiles */
    size_t max_rows;      /* <= QKV_ATTN_MAX_ROWS query rows per job */
} qkv_attn_blocks;

/* What an ISA's init chooses its blocks and feeds from, filled in by the
   registry: the data caches one core sees, in bytes (0: not known), and
   dispatch/cpu.h's qkv_cpu_traits. */
typedef struct qkv_cpu_view {
    size_t l1d, l2, l3;
    int prefetch_l2, wide_converts_on_fma_ports, bf16_dot_half_rate, fma_256_bit;
} qkv_cpu_view;

/* The registry entry of one ISA. */
typedef struct qkv_ctx {
    qkv_isa                 isa;
    qkv_cpu_view            cpu;
    qkv_scores_kernel       scores;
    qkv_softmax_kernel      softmax;
    qkv_weighted_sum_kernel weighted_sum;
    qkv_attention_kernel    attention;
    qkv_attention_ws_fn     attention_ws;
    qkv_walk_sweeps_fn      walk_sweeps;  /* NULL: never */
    qkv_attn_blocks         blocks;
    qkv_converters          conv;
    qkv_merge_kernel        merge_states;
    int                     rounds_bf16;  /* its driver rounds to bf16 in
                                             QKV_FPMATH_BF16 (qkv_fpmath) */
    int                     rounds_bf16_decode;   /* and so do its decode
                                             forms (jobs of <= 8 rows), Q·Kᵀ */
} qkv_ctx;

/* Each ISA folder defines qkv_ctx_init_<name> (dispatch/isa_list.h), which
   overrides the entries it has in a copy of its parent's context. */
void qkv_ctx_init_scalar(qkv_ctx *c);
void qkv_ctx_init_avx2(qkv_ctx *c);
void qkv_ctx_init_avx512(qkv_ctx *c);
void qkv_ctx_init_neon(qkv_ctx *c);
void qkv_ctx_init_sve(qkv_ctx *c);
void qkv_ctx_init_avx512bf16(qkv_ctx *c);
void qkv_ctx_init_amx(qkv_ctx *c);
void qkv_ctx_init_neonbf16(qkv_ctx *c);
void qkv_ctx_init_svebf16(qkv_ctx *c);

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

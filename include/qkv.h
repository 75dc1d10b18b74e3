/*
 * qkv — hand-vectorized CPU kernels for scaled dot-product attention
 *
 *     O = softmax(scale · Q·Kᵀ + mask) · V
 *
 * One public header, C11, usable from C++. Every function returns a
 * qkv_status; none aborts, prints or exits on bad input, and nothing is
 * written to an output when a call returns an error.
 *
 * Conventions
 *   - Matrices are row-major. A leading dimension (ld*) is the distance in
 *     elements between consecutive rows and must be >= the row length.
 *   - Pointers need no particular alignment.
 *   - Outputs must not overlap inputs unless a function says it works in place.
 *   - All functions are thread-safe and reentrant. The only mutable global
 *     state is the one-time CPU detection and the process-wide ISA choice.
 *   - Accuracy: for inputs in [-1, 1], |V| <= 1 and a scale of at most 1
 *     (the default 1/sqrt(head_dim) is) every ISA stays within
 *     1e-5 (absolute) of a double-precision reference computed on the
 *     stored values (f16, bf16, Q8_0, Q4_0 widened exactly); a 16-bit
 *     output adds its own rounding, half a unit in the last place
 *     (qkv_attention with QKV_FPMATH_BF16: the bound next to qkv_fpmath).
 */
#ifndef QKV_H
#define QKV_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The library is built with hidden visibility; only what carries QKV_API
   is exported from libqkv.so. */
#if defined(QKV_BUILDING_LIBRARY) && defined(__GNUC__)
#define QKV_API __attribute__((visibility("default")))
#else
#define QKV_API
#endif

/* The most stack any qkv entry point uses (see qkv_attention). */
#define QKV_MAX_STACK_BYTES (48 * 1024)

#define QKV_VERSION_MAJOR 0
#define QKV_VERSION_MINOR 2
#define QKV_VERSION_PATCH 0

/* The version of the library actually loaded (the macros above are the
   header's): MAJOR·10000 + MINOR·100 + PATCH, and "MAJOR.MINOR.PATCH". */
QKV_API unsigned qkv_version(void);
QKV_API const char *qkv_version_string(void);

/* ------------------------------------------------------------------------ */
/* Status codes                                                              */
/* ------------------------------------------------------------------------ */

typedef enum qkv_status {
    QKV_OK = 0,              /* done */
    QKV_ERR_ARG,             /* NULL where data is needed, zero or inconsistent
                                size, leading dimension or stride too small,
                                q_heads not a multiple of kv_heads, NaN,
                                infinite or negative scale, bad enum value */
    QKV_ERR_OVERFLOW,        /* a size or offset computation overflows size_t */
    QKV_ERR_UNSUPPORTED,     /* ISA, dtype or dtype combination not available
                                in this build or on this CPU */
    QKV_ERR_NOMEM            /* an allocation failed: qkv_pool_create, or a
                                qkv_attention with a threading hook that
                                splits the keys (its small merge buffer) */
} qkv_status;

/* A short English text for a status ("ok", "invalid argument", ...). Never NULL. */
QKV_API const char *qkv_status_string(qkv_status status);

/* What the most recent failing qkv call on this thread objected to, naming
   the field and the rule, e.g. "desc.k.row_stride 64 < head_dim 128" or
   "QKV_ISA=avx512: the CPU lacks AVX512F (CPUID.7.0:EBX bit 16); ...". "" when no
   call on this thread has failed yet. A call that succeeds leaves it as it
   was. Per thread, never NULL, valid until the thread's next qkv call; no
   allocation and no printing. */
QKV_API const char *qkv_last_error_detail(void);

/* ------------------------------------------------------------------------ */
/* Instruction sets and dispatch                                             */
/* ------------------------------------------------------------------------ */

typedef enum qkv_isa {
    QKV_ISA_NONE = -1,       /* no usable ISA chosen: QKV_ISA named an unknown
                                ISA or one this machine cannot run */
    QKV_ISA_SCALAR = 0,      /* plain C, the reference */
    QKV_ISA_AVX2,            /* x86-64 AVX2 + FMA + F16C */
    QKV_ISA_AVX512,          /* x86-64 AVX-512 F/BW/DQ/VL */
    QKV_ISA_NEON,            /* AArch64 Advanced SIMD */
    QKV_ISA_SVE,             /* AArch64 SVE, any vector length */
    QKV_ISA_AVX512BF16,      /* x86-64 AVX-512 + AVX512_BF16 (vdpbf16ps) */
    QKV_ISA_AMX,             /* x86-64 AMX-TILE + AMX-BF16 on top of avx512bf16;
                                on Linux only once the kernel grants the
                                process the tile state */
    QKV_ISA_NEONBF16,        /* AArch64 NEON + FEAT_BF16 (BFMMLA) + FEAT_FHM
                                (FMLAL) */
    QKV_ISA_SVEBF16,         /* AArch64 SVE + FEAT_BF16 (SVE BFMMLA), any
                                vector length */
    QKV_ISA_COUNT            /* number of ISAs; not an ISA */
} qkv_isa;

/* "scalar", "avx2", "avx512", "neon", "sve", "avx512bf16", "amx", "neonbf16",
   "svebf16"; "none" for QKV_ISA_NONE and "unknown" for anything else.
   Never NULL. */
QKV_API const char *qkv_isa_name(qkv_isa isa);

/* The ISA with that name (exact, lower case). QKV_ERR_ARG for a NULL
   argument, QKV_ERR_UNSUPPORTED for a name that is no ISA. */
QKV_API qkv_status qkv_isa_from_name(const char *name, qkv_isa *out);

/* 1 when the ISA is compiled into this build AND the CPU and OS can run it
   (on x86 the OS must have enabled the YMM/ZMM register state; for amx,
   Linux must grant the process the tile state, which qkv asks for once
   with arch_prctl(ARCH_REQ_XCOMP_PERM) when the CPU has AMX), else 0. */
QKV_API int qkv_isa_supported(qkv_isa isa);

/* The best supported ISA on this machine (QKV_ISA_SCALAR at least): the
   deepest in its ladder, except that avx512bf16 is passed over where
   vdpbf16ps issues at half the FMA rate (Intel's cores), for avx512. */
QKV_API qkv_isa qkv_isa_best(void);

/* Sets the process-wide ISA used by the entry points below. An ISA that is
   not supported gives QKV_ERR_UNSUPPORTED and leaves the choice unchanged. */
QKV_API qkv_status qkv_isa_set(qkv_isa isa);

/* The ISA the entry points use now. At first use it is read from the
   environment variable QKV_ISA=<name> if set and not empty (QKV_ISA= with
   no name counts as unset), else qkv_isa_best(). There is
   no silent fallback: if QKV_ISA names an unknown ISA, or one this machine
   cannot run, this returns the named ISA (QKV_ISA_NONE for an unknown name)
   and every dispatched entry point returns QKV_ERR_UNSUPPORTED until
   qkv_isa_set() picks a supported one. */
QKV_API qkv_isa qkv_isa_get(void);

/* ------------------------------------------------------------------------ */
/* The three stages                                                          */
/* ------------------------------------------------------------------------ */

/* S[i][j] = scale · dot(Q[i][0..d), K[j][0..d))   for i < m, j < n.
   Needs ldq >= d, ldk >= d, lds >= n; s must not overlap q or k. */
QKV_API qkv_status qkv_scores(size_t m, size_t n, size_t d, float scale,
                              const float *q, size_t ldq, const float *k, size_t ldk,
                              float *s, size_t lds);

/* In place: each of the m rows of n entries becomes its softmax. The row
   maximum is subtracted first, so any finite input is stable. -INFINITY
   entries get weight 0; a row with no entry above -INFINITY becomes all
   zeros (never NaN). A NaN or +INFINITY entry makes its row NaN. Needs
   lds >= n. */
QKV_API qkv_status qkv_softmax(size_t m, size_t n, float *s, size_t lds);

/* O[i][c] = Σ_j P[i][j] · V[j][c]   for i < m, c < dv.
   Needs ldp >= n, ldv >= dv, ldo >= dv; o must not overlap p or v. */
QKV_API qkv_status qkv_weighted_sum(size_t m, size_t n, size_t dv,
                                    const float *p, size_t ldp, const float *v, size_t ldv,
                                    float *o, size_t ldo);

/* 1/sqrt(d), the usual scale; 0 for d == 0. */
QKV_API float qkv_default_scale(size_t d);

/* ------------------------------------------------------------------------ */
/* Fused attention                                                           */
/* ------------------------------------------------------------------------ */

typedef enum qkv_dtype {
    QKV_F32 = 0,             /* IEEE binary32 (float) */
    QKV_F16,                 /* IEEE binary16, stored as uint16_t */
    QKV_BF16,                /* bfloat16, stored as uint16_t */
    QKV_Q8_0,                /* ggml's block_q8_0: 32 values in 34 bytes, an
                                f16 scale d then 32 int8 q; value = d·q */
    QKV_Q4_0,                /* ggml's block_q4_0: 32 values in 18 bytes, an
                                f16 scale d then 16 bytes; value j =
                                d·((qs[j] & 15) - 8) for j < 16 and
                                d·((qs[j-16] >> 4) - 8) for j >= 16 */
    QKV_DTYPE_COUNT          /* number of dtypes; not a dtype */
} qkv_dtype;

/* Converts n elements from src (src_type) to dst (dst_type), the cache
   append an engine does every token. f32, f16 and bf16 convert into each
   other (to a 16-bit type: rounded to nearest even, NaN kept NaN, overflow
   to infinity); f32 converts to Q8_0 and Q4_0 (ggml's reference quantizer:
   d = max|x| / 127, or the value of largest magnitude / -8, rounded to
   nearest) and they convert back to f32. For Q8_0 and Q4_0, n must be a
   multiple of 32 and counts values, not blocks. src and dst must not
   overlap. QKV_ERR_ARG for NULL pointers, n == 0, a bad n, a value that is
   no qkv_dtype or overlap; QKV_ERR_OVERFLOW when n values take more than
   PTRDIFF_MAX bytes; QKV_ERR_UNSUPPORTED for any other pair (e.g. Q8_0 ->
   f16); a same-type pair is a copy. Every ISA gives the same bits for every
   input that is not NaN. A block holding NaN or Inf, or whose scale
   overflows f16, is stored as a NaN block (32 NaNs); docs/errors.md lists
   every such case. Runs on the process-wide ISA. */
QKV_API qkv_status qkv_convert(size_t n, const void *src, qkv_dtype src_type, void *dst,
                               qkv_dtype dst_type);

/* A 4-d tensor [batch][head][row][dim] seen through strides, in elements of
   its dtype. The last dimension is contiguous. With row_stride = heads·dim
   and head_stride = dim the [batch][row][head][dim] layout needs no copy. */
typedef struct qkv_tensor {
    const void *data;
    qkv_dtype   dtype;
    size_t      batch_stride;
    size_t      head_stride;
    size_t      row_stride;
} qkv_tensor;

/* The output tensor, same stride conventions, in elements of dtype (f32,
   f16 or bf16; zero-initialised means f32). dtype comes last so that
   positional initialisers written for the f32-only struct stay valid. */
typedef struct qkv_out_tensor {
    void     *data;
    size_t    batch_stride;
    size_t    head_stride;
    size_t    row_stride;
    qkv_dtype dtype;
} qkv_out_tensor;

/* How much precision a kernel may give up for speed (oneDNN's
   fpmath_mode). Any other value gives QKV_ERR_ARG.

   QKV_FPMATH_STRICT (the default): every stored value is widened exactly
   to f32 and all arithmetic is f32, so the f32 accuracy contract (1e-5)
   holds against the oracle on the stored values. ISAs with bf16 dot
   products use them only where that changes nothing: for Q·Kᵀ when Q and
   K are stored as bf16 (the products are exact in f32), in tiles with no
   subnormal bf16 value (vdpbf16ps, tdpbf16ps and Arm's BFMMLA read those
   as zero; such a job or tile of keys is computed with f32 FMAs;
   avx512bf16 and amx decode this way only on CPUs whose vdpbf16ps issues
   at the FMA's rate). BFMMLA
   (neonbf16, svebf16) rounds its f32 sums to odd rather than to nearest
   even (one unit in the last place at most, not half: Arm ARM, without
   FEAT_EBF16 or with FPCR.EBF = 0, as Linux starts a process), still f32
   arithmetic within the contract. neonbf16 multiplies f16 Q by f16 K with
   FMLAL, which rounds as widening and an f32 FMA do (under Linux's FPCR,
   FZ16 = 0): neon's bits.

   QKV_FPMATH_BF16: the kernel may round Q, K, P (the softmax weights) and
   V to bf16 (nearest even) and multiply them with bf16 dot products,
   summing in f32. Today avx512bf16, amx, neonbf16 and svebf16 do, on
   jobs of more than 8 query rows per KV head (prefill, or a decode step
   of an MQA model or of groups of more than 8 heads; more than 4 on Arm
   with vectors under 512 bits). On jobs of fewer rows (decode),
   avx512bf16 and amx round Q and K (any stored dtype) for Q·Kᵀ, and P
   for P·V where V is stored as bf16 (v_head_dim a multiple of 32; other
   V dtypes keep an f32 P·V), on CPUs whose vdpbf16ps issues as often as
   their FMA (AMD Zen 4 and 5; not Intel's cores, where it issues at half
   the rate and would gain nothing). Other jobs and the other ISAs
   compute as in STRICT mode. The bound, for Q, K and V in [-1, 1] and
   scale = 1/sqrt(head_dim): every output within 6e-3 of the oracle on the
   stored values, lse within 5e-3 · max(1, |lse|); a larger scale widens
   both by scale·sqrt(head_dim), the spread of the scores. It is measured,
   not a worst case: the largest errors seen were 3.8e-3 and 3.0e-3, over
   about 90 000 random calls with head_dim 1 to 256, kv_len 1 to 32768,
   every dtype, mask and score modifier (tests/checkasm --function=fpmath
   asserts it); inputs made to cancel can exceed it, since rounding moves
   each product by up to 2^-8 of itself. Where bf16 is used, subnormal
   values count as zero and values beyond bf16's range (|x| >= 3.3962e38)
   become infinite. */
typedef enum qkv_fpmath {
    QKV_FPMATH_STRICT = 0,
    QKV_FPMATH_BF16
} qkv_fpmath;

typedef enum qkv_mask_kind {
    QKV_MASK_NONE = 0,       /* every query sees every key */
    QKV_MASK_CAUSAL,         /* bottom-right aligned: query i sees key j iff
                                j <= p(i), p(i) = i + kv_len - q_len */
    QKV_MASK_ADDITIVE        /* desc.mask_add is added to the scores */
} qkv_mask_kind;

/* An additive float mask [q_len][kv_len] per batch and head. A stride of 0
   broadcasts over batch or heads; row_stride must be >= kv_len. Entries may
   be -INFINITY (key hidden) but not NaN or +INFINITY. */
typedef struct qkv_float_mask {
    const float *data;
    size_t       batch_stride;
    size_t       head_stride;
    size_t       row_stride;
} qkv_float_mask;

/* The parallel-for hook: call task(ctx, i) once for every i < count, in any
   order and on any threads, and return when all calls have returned. */
typedef void (*qkv_task_fn)(void *ctx, size_t index);
typedef void (*qkv_parallel_for_fn)(void *pool, size_t count, qkv_task_fn task, void *ctx);

/* Multi-head attention in one call. Zero-initialise, then fill in.
 *
 * Scores, for batch b, query head h, query row i < q_len, key j < kv_len:
 *
 *   p(i) = i + kv_len - q_len          (the query's position among the keys;
 *                                       may be negative when q_len > kv_len)
 *   s    = scale · dot(q[b][h][i], k[b][g][j])    g = h / (q_heads / kv_heads)
 *   s    = softcap · tanh(s / softcap)            if softcap > 0
 *   s   += alibi_slopes[h] · (j - p(i))           if alibi_slopes
 *   s   += mask_add[b][h][i][j]                   if mask == QKV_MASK_ADDITIVE
 *   s    = -INFINITY if mask == QKV_MASK_CAUSAL and j > p(i),
 *                    or if window > 0 and j <= p(i) - window
 *
 *   o[b][h][i] = Σ_j exp(s_j - M) · v[b][g][j] / L,
 *   L = Σ_j exp(s_j - M) + exp(sinks[h] - M)      (the sink term if sinks)
 *
 * with M the row maximum. A row that sees no key gets an all-zero output row.
 * lse, if given, receives log Σ exp over the same terms as L (M + log L),
 * -INFINITY for a row that sees no key and has no sink. To merge results
 * computed over shards of the keys, pass the sinks to one shard only.
 *
 * Threads: with parallel_for == NULL the call runs on the calling thread.
 * Otherwise the work is split into independent tasks (batch × KV head ×
 * query block, and for decode-like shapes also KV splits merged exactly) and
 * handed to parallel_for(pool, ...). The split follows from the call (its
 * shapes, strides and dtypes) and the CPU (the ISA, and the L2 size by which
 * some key ranges are cut: where K or V keeps the KV heads side by side, in
 * each row or in each page, long key ranges are cut shorter and walked range
 * by range), never from the number of threads, so with a hook the output is
 * bit-identical whatever the number of threads behind it (two CPUs running
 * the same ISA may differ in the last bits, within tolerance). Without a hook KV is split only where K or V keeps the KV
 * heads side by side (the ranges are then walked on the calling thread's
 * stack), so decode-like shapes may differ from the hooked result in the
 * last bits (both within tolerance).
 * A call without a hook allocates nothing; a hooked call that splits the
 * keys (kv_len >= 1024 with fewer than 32 jobs of batch × KV head × query
 * block, as in decode) allocates at most one merge buffer, of at most
 * 64 · 64 · (v_head_dim + 2) floats and may return QKV_ERR_NOMEM.
 *
 * Stack: every qkv entry point, on every ISA, uses at most
 * QKV_MAX_STACK_BYTES of the calling thread's stack (and of each pool
 * thread's), so it runs on small thread or fiber stacks (tested on a
 * thread with a 64 KiB stack).
 */
typedef struct qkv_attention_desc {
    /* Shapes. q_heads must be a multiple of kv_heads (GQA/MQA). head_dim is
       the dimension of q and k rows, v_head_dim that of v and o rows. */
    size_t batch;
    size_t q_heads;
    size_t kv_heads;
    size_t q_len;
    size_t kv_len;
    size_t head_dim;
    size_t v_head_dim;

    /* Tensors. q is f32, f16 or bf16; k and v any qkv_dtype, each its own
       (a block type, Q8_0 or Q4_0, needs its dimension and its strides,
       counted in values, to be multiples of 32: rows of whole blocks); o is
       f32, f16 or bf16. Stored values are widened exactly to f32 (see
       qkv_fpmath for what may be rounded); a 16-bit output is rounded to
       nearest even once, at the end. */
    qkv_tensor     q;   /* [batch][q_heads][q_len][head_dim]   */
    qkv_tensor     k;   /* [batch][kv_heads][kv_len][head_dim] */
    qkv_tensor     v;   /* [batch][kv_heads][kv_len][v_head_dim] */
    qkv_out_tensor o;   /* [batch][q_heads][q_len][v_head_dim] */

    /* Scale of the dot products, finite and >= 0; qkv_default_scale(head_dim)
       is the usual choice. */
    float scale;

    /* Masking. mask_add.data must be set iff mask == QKV_MASK_ADDITIVE.
       window == 0 means no sliding window. */
    qkv_mask_kind  mask;
    qkv_float_mask mask_add;
    size_t         window;

    /* Score modifiers (see above). softcap == 0 disables it; otherwise it
       must be finite and > 0. alibi_slopes and sinks are arrays of q_heads
       finite floats, or NULL. */
    float        softcap;
    const float *alibi_slopes;
    const float *sinks;

    /* Optional output [batch][q_heads][q_len], contiguous, or NULL. */
    float *lse;

    /* Optional threading hook, e.g. qkv_pool_parallel_for with a qkv_pool. */
    qkv_parallel_for_fn parallel_for;
    void               *pool;

    /* Precision the kernels may trade for speed; 0 = QKV_FPMATH_STRICT. */
    qkv_fpmath fpmath;

    /* Paged K/V (vLLM's block tables, OpenVINO's PagedAttention). With
       page_size > 0, k.data and v.data point at page 0 of a pool of
       num_pages pages, and key j of sequence b is row j % page_size of page
       page_table[b · page_table_stride + j / page_size]. Inside a page, rows
       are k.row_stride and KV heads k.head_stride apart, and pages
       k_page_stride elements apart (likewise for v); k.batch_stride and
       v.batch_stride are not used. So [pages][kv_heads][page_size][dim]
       (row_stride = dim, head_stride = page_size·dim) and
       [pages][page_size][kv_heads][dim] (head_stride = dim, row_stride =
       kv_heads·dim) both need no copy. Every page id the call reads (the
       first ceil(kv_len_b / page_size) of each sequence) must be in
       [0, num_pages): otherwise QKV_ERR_ARG before anything is read or
       written. Sequences may share pages (prefix caching). */
    size_t         page_size;          /* 0: K and V are not paged */
    size_t         num_pages;
    const int32_t *page_table;
    size_t         page_table_stride;  /* entries between sequences */
    size_t         k_page_stride;
    size_t         v_page_stride;

    /* Ragged batches (FlashAttention's cu_seqlens, vLLM's query_start_loc).
       With q_start set, sequence b owns the q_start[b + 1] - q_start[b]
       query rows that start at packed row q_start[b] of q and o (rows
       row_stride apart; q.batch_stride and o.batch_stride are not used),
       q_len is the number of packed rows (= q_start[batch]) and kv_lens[b]
       its number of keys, at most kv_len (kv_lens NULL: kv_len keys each).
       kv_lens without q_start gives each of the batch's sequences (q_len
       rows each, found by batch_stride) its own number of keys. Causal
       alignment, ALiBi positions and the window are per sequence: p(i) =
       i + kv_lens[b] - (its query rows). A sequence may have no query rows
       or no keys. lse, if given, is [q_heads][q_len] over the packed rows.
       The additive mask is indexed per sequence as [b][h][i][j]. K and V are
       found by batch_stride (a padded cache) or by pages. q_start must start
       at 0 and never decrease; negative or out-of-range values are
       QKV_ERR_ARG. */
    const int32_t *q_start;
    const int32_t *kv_lens;
} qkv_attention_desc;

QKV_API qkv_status qkv_attention(const qkv_attention_desc *desc);

/* Merges a partial attention result computed over other keys into (o, lse),
   in place, by their log-sum-exp (FlashInfer's merge_state; split-KV
   decoding, cascade and ring attention, KV sharded across machines). Both
   sides are qkv_attention results with lse for the same query rows over
   disjoint sets of keys (sinks given to one side only); the merge is the
   result over both sets. For each of the rows,
       lse' = log(exp(lse) + exp(lse_other))
       o'   = o · exp(lse - lse') + o_other · exp(lse_other - lse')
   with these exact rules, the same on every ISA:
     - lse_other == -INFINITY (that side saw no key): the row and its lse
       stay as they are, bit for bit, whatever o_other holds;
     - lse == -INFINITY, lse_other not: the row and lse become o_other's
       and lse_other, bit for bit; both -INFINITY: unchanged;
     - a NaN or +INFINITY lse on either side: the whole row and lse become
       NaN (qkv_attention gives no +INFINITY lse: a +inf score makes its
       row NaN, and exp(inf - inf) has no value); this rule comes first,
       also where the other side's lse is -INFINITY;
     - otherwise NaN and infinities in o and o_other go through the
       formula: a NaN stays NaN, also where its side's weight underflows
       to 0, and there an infinity becomes NaN (0 · inf).
   Every ISA gives the scalar reference's bits, and swapping the two sides
   gives the same bits (but for NaN payloads and rows with both lse
   -INFINITY). Like float addition the merge is not associative: merging
   several parts in another order or grouping changes the last bits.
   Rows are ldo / ldo_other floats apart (>= dv); lse and lse_other hold
   `rows` floats. o and lse must not overlap each other, o_other or
   lse_other, where o spans (rows - 1)·ldo + dv floats and o_other likewise
   (the two inputs may share memory). QKV_ERR_ARG for NULL pointers, rows or
   dv == 0, ldo or ldo_other < dv, or overlap; QKV_ERR_OVERFLOW when a span
   overflows size_t or exceeds PTRDIFF_MAX bytes. */
QKV_API qkv_status qkv_merge_states(size_t rows, size_t dv, float *o, size_t ldo, float *lse,
                                    const float *o_other, size_t ldo_other,
                                    const float *lse_other);

/* ------------------------------------------------------------------------ */
/* Direct access to one ISA                                                  */
/* ------------------------------------------------------------------------ */

/* The entry points above, bound to one ISA instead of the process-wide
   choice: for tests, benchmarks and side-by-side comparisons. Same
   validation and semantics as the dispatched functions. */
typedef struct qkv_funcs {
    qkv_isa isa;
    qkv_status (*scores)(size_t m, size_t n, size_t d, float scale,
                         const float *q, size_t ldq, const float *k, size_t ldk,
                         float *s, size_t lds);
    qkv_status (*softmax)(size_t m, size_t n, float *s, size_t lds);
    qkv_status (*weighted_sum)(size_t m, size_t n, size_t dv,
                               const float *p, size_t ldp, const float *v, size_t ldv,
                               float *o, size_t ldo);
    qkv_status (*attention)(const qkv_attention_desc *desc);
    qkv_status (*convert)(size_t n, const void *src, qkv_dtype src_type, void *dst,
                          qkv_dtype dst_type);
    qkv_status (*merge_states)(size_t rows, size_t dv, float *o, size_t ldo, float *lse,
                               const float *o_other, size_t ldo_other, const float *lse_other);
} qkv_funcs;

/* *out = the functions of that ISA. QKV_ERR_UNSUPPORTED (and *out untouched)
   when the ISA is not supported here; QKV_ERR_ARG for out == NULL. */
QKV_API qkv_status qkv_isa_funcs(qkv_isa isa, const qkv_funcs **out);

/* ------------------------------------------------------------------------ */
/* Thread pool                                                               */
/* ------------------------------------------------------------------------ */

typedef struct qkv_pool qkv_pool;

/* A pool of `threads` workers in all, the calling thread of
   qkv_pool_parallel_for counting as one (threads == 0 or 1: no extra
   thread). QKV_ERR_ARG for out == NULL, QKV_ERR_NOMEM when memory or a
   thread cannot be had (nothing is left behind). */
QKV_API qkv_status qkv_pool_create(unsigned threads, qkv_pool **out);

/* Joins the workers and frees the pool. NULL is a no-op. The pool must not
   be in use. */
QKV_API void qkv_pool_destroy(qkv_pool *pool);

/* A qkv_parallel_for_fn for desc.parallel_for with desc.pool = the pool.
   Calls from several threads at once are serialised; a call from inside a
   task of the same pool runs inline. A NULL pool runs everything on the
   calling thread. */
QKV_API void qkv_pool_parallel_for(void *pool, size_t count, qkv_task_fn task, void *ctx);

#ifdef __cplusplus
}
#endif

#endif /* QKV_H */

/*
 * The fused-attention driver of every SIMD ISA, written once against a
 * small vector vocabulary and compiled per ISA (as SLEEF and BLIS do): the
 * ISA file defines its vocabulary and microkernels, then includes this
 * header, which defines
 *
 *   static void   SIMD_NAME(attention)(const qkv_attn_job *job);
 *   static size_t SIMD_NAME(attention_ws)(size_t rows, const qkv_attn_shape *s, size_t limit);
 *
 * FlashAttention over KV tiles of at most ATT_BN keys, per tile:
 *   1. S = scale · Q·Kᵀ, kept transposed as S[key][row]: the job's rows are
 *      vector lanes, so the online softmax's per-row max, sum and rescale
 *      are lane-wise operations with no horizontal reduction;
 *   2. score modifiers (soft-cap, ALiBi, additive mask), each row's key
 *      range, the online max;
 *   3. P = exp(S - max) in place and the row sums; alpha = exp(old - new)
 *      only for rows whose max grew;
 *   4. acc = alpha · acc + P · V.
 * Three forms (chosen per job by its rows):
 *   - GEMM: Qᵀ packed once per job as the microkernel's B, K rows broadcast
 *     (no packing of K); P·V by the same microkernel;
 *   - ROWS4 (rows <= 4) and ROWS8 (5..8 rows, a GQA group of 8, where
 *     VL >= ATT_ROWS8_VL and the vocabulary defines SIMD_ROWS8; else
 *     GEMM): dot products along head_dim, N rows × VL/N keys per vector,
 *     into S kept as [key][N], so exp/max/sum run on full vectors (the
 *     per-row state is kept repeated in every group of N lanes, v_hmax /
 *     v_hsum and v_fold2_* / v_fold4_* / v_fold8_* combine the groups);
 *     P·V with all rows' accumulators in registers. N = 4 or 8, and N =
 *     rows for the ROWS4 jobs of 1 or 2 rows (MHA, GQA groups of 2).
 *
 * Stored dtypes. Q, K and V may be f32 or any dtype with a converter. The
 * decode forms read K and V in place and widen them in registers
 * (simd/load_dt.h): each K and V vector is loaded once per tile and serves
 * every row of the job (a GQA group never re-converts per head). GEMM
 * converts K and V into the workspace in chunks of keys, once per tile, Q
 * once per job; where the ISA's microkernel widens a 16-bit B as it loads
 * it (simd_gemm_b16: x86), a tile that needs no V check reads a 16-bit V
 * in place.
 *
 * Pages. The decode forms take K and V rows by pointer, so their tiles
 * cross pages freely. A GEMM tile crosses them too: K and V stored in
 * another dtype are widened into the workspace in chunks that cross pages
 * (kv_f32); Q·Kᵀ takes K's rows by pointer (k_rows_f32), in place or
 * widened, so its panels of keys cross pages as well; P·V on a V read in
 * place goes page run by page run (qkv_kv_run), inside which rows are a
 * constant stride apart, except that the P·V of a tile that needs no V
 * check reads a V it would read in place (f32, or 16-bit as above) in
 * pages shorter than a tile in one call a panel of rows (pv_by_rows).
 * The bf16 tiles pack K and V row by row from
 * any page, and read K in place only where the rows they read are one
 * run.
 *
 * Hidden keys and non-finite V. A key a row does not see gets the weight
 * -0.0, which exp() never returns; P·V multiplies it into V like any other
 * weight, which is exact unless that V row holds an Inf or NaN (0·Inf =
 * NaN would leak into rows that never see the key). So V rows are checked
 * for finiteness (one FMA per vector, on rows about to be read anyway) and
 * a chunk that is not finite goes through pv_exact, which skips the -0.0
 * weights as the scalar reference skips the keys. A plain tile (every row
 * sees all its keys, no modifier) hides no key and is not checked.
 *
 * The vocabulary (all `static inline`; vf a vector of floats, vm a lane
 * mask; neither is stored in arrays or structs here, so SVE's sizeless
 * types work):
 *   SIMD_SUFFIX            _avx512, _neon, ...: ends every function name
 *   VL, VL_MAX             lanes per vector (may be a run-time value), and a
 *                          compile-time bound on it (a power of 2, >= 4)
 *   v_zero v_set1 v_load v_store v_add v_sub v_mul v_div v_fmadd
 *   v_max(x, m)            m where x is NaN
 *   v_gt v_eq v_ne         v_ne: not equal or unordered
 *   v_sel(m, a, b)         m ? b : a
 *   v_any(m)               some lane set
 *   v_tailmask(n)          the first n lanes, 1 <= n <= VL
 *   v_loadm(p, m) v_loadm_or(p, m, fill) v_storem(p, m, x)
 *                          masked lanes never touch memory
 *   v_exp v_tanh           within 1 ULP, inline (simd/exp_tanh.h)
 *   v_in_range(lo, hi, j)  lanes i with lo[i] <= j < hi[i] (int32 arrays)
 *   v_i32_to_f(p, j)       (float)(p[i] + j)
 *   v_fold4_max v_fold4_add  every group of 4 lanes gets the max / sum of
 *                          its lane r over all the groups
 *   v_fold2_max v_fold2_add  the same for groups of 2 lanes
 *   v_fold8_max v_fold8_add  the same for groups of 8 lanes, with SIMD_ROWS8
 *                          defined (without, jobs of 5..8 rows take GEMM)
 *   v_prefetch(p)          a hint, may be a no-op
 *   and what simd/load_dt.h lists (stored dtypes widened in registers),
 * and the microkernels:
 *   GEMM_MR, GEMM_NR       the microkernel's tile (GEMM_NR may be run-time)
 *   simd_gemm(mr, nc, k, a, ap, rsa, csa, b, ldb, c, coff, load_c, pre, post, cmax)
 *                          C[i][coff + x] := post · (pre_i · C[i][coff + x]
 *                          + Σ_p A[i][p] · B[p][x]) for i < mr <= GEMM_MR,
 *                          x < nc <= GEMM_NR; A[i][p] = a[i·rsa + p·csa],
 *                          or with ap not NULL the value rsa + p·csa of
 *                          the row at ap[i] (A's rows by pointer, as
 *                          simd_gemm_rows takes B's: K's, across pages),
 *                          B[p][x] = b[p·ldb + x], C rows by pointer c[i];
 *                          load_c 0 starts from 0 (pre ignored), pre NULL
 *                          means 1; cmax (NULL or nc floats rounded up to
 *                          whole vectors) takes the max of what is stored.
 *                          Never reads or writes past column nc.
 *   simd_gemm_inline(...)  (optional) simd_gemm, inlined where it is
 *                          called (the Q·Kᵀ of a GEMM tile)
 *   simd_pv_wide(t, mr, k, a, csa, b, ldb, c, coff, pre)   (optional)
 *                          simd_gemm with rsa 1, load_c, post 1, no cmax
 *                          and nc = SIMD_PV_WIDE_NR, for mr <=
 *                          SIMD_PV_WIDE_MR, B stored as t (f32, f16,
 *                          bf16; ldb in its elements): pv_tile's panels
 *                          where defined
 *   simd_gemm_rows(t, mr, k, a, rsa, csa, bp, boff, c, coff, pre)
 *                          simd_gemm with load_c, post 1, no cmax, for
 *                          nc = GEMM_NR columns, B[p] the values from
 *                          boff on of the row at bp[p], stored as t (f32,
 *                          or f16/bf16 where simd_gemm_b16 is defined)
 *   simd_qk_dot(R, t, q, d, krow, n, scale, out, ors, kpre)
 *                          R = 1, 2, 4 or 8 (<= VL) query rows q[r] (f32,
 *                          d values) against n keys stored as t at
 *                          krow[j]: out[j·ors + r] = scale · dot(q[r], K_j)
 *                          for r < R, j < round_up(n, VL/R); krow[j >= n]
 *                          is never read (the key n - 1 stands in); ors
 *                          = R (the decode forms' S, [key][R]). kpre
 *                          NULL, or n rows (each NULL or d values as t)
 *                          to prefetch, kpre[j] about when key j is done.
 *   simd_pv_rows(rows, p, prs, vrow, n, dv, t, acc, pre, vpre)
 *                          rows <= 8, n <= ATT_BN: acc[r][c] = pre_r · acc[r][c] +
 *                          Σ_{j<n} p[j·prs + r] · V_j[c], c < dv, V_j
 *                          stored as t at vrow[j]; pre NULL means 1. May
 *                          read p's lanes up to 4 (8) past the rows. vpre
 *                          as kpre, rows of dv values.
 *   simd_mask_t(mask, rows, key0, n, rp, mt)
 *                          mt[j·rp + r] = mask[r][key0 + j] for j < n,
 *                          r < rows (0 for a NULL mask row); may write
 *                          lanes rows..rp-1 of those keys.
 *
 * bf16 tiles (optional; kernels/x86/bf16_tmpl.h). An ISA with bf16 dot
 * products defines SIMD_BF16 and these, and the GEMM form then lets them
 * take a tile's Q·Kᵀ and P·V when job->fpmath and the dtypes allow
 * (qkv.h's qkv_fpmath); without them, or for a tile they give back, the
 * f32 microkernels above run as they do for every other ISA:
 *   simd_bf16              a struct type with int members qk and pv (on
 *                          for this job); zero-initialised means off
 *   simd_bf16_ws(rp, shape, room)  floats of workspace it needs in a
 *                          GEMM job of rp lanes, the f32 fallback's least
 *                          included, and more where that is faster and
 *                          fits in room; 0 when it is off for this shape
 *   simd_bf16_begin(b, job, rp, ws, floats)
 *                          decides and fills *b for the job, packs what it
 *                          keeps for the whole job into ws; returns the
 *                          floats it took (0 and off when they don't fit)
 *   simd_bf16_qk(b, job, t0, n, kmin, kmax, st, rp, cmax)
 *                          S[j][r] = scale · K_j·Q_r as the GEMM loop
 *                          below leaves it (cmax: as simd_gemm's) for the
 *                          keys [kmin, kmax) of the tile of n keys at t0;
 *                          0 when it gives the tile back
 *   simd_bf16_pv(b, job, t0, kmin, kmax, st, rp, lo, hi, alpha, plain)
 *                          what pv_tile does, or 0 to give it back
 *   simd_bf16_exp_p(b, st, rp, l0, kmin, kmax, msub)   (optional)
 *                          in a plain tile whose P·V is bf16: P = exp(S -
 *                          msub) for lanes [l0, l0 + VL), written where
 *                          simd_bf16_pv wants it rather than into S;
 *                          returns the lanes' sums of P
 *   simd_bf16_end(b)       after the job's last tile
 *
 * bf16 decode (optional; kernels/x86/kernels_tmpl.h). An ISA whose decode
 * forms may multiply in bf16 (dec_bf16 below says where) defines
 * SIMD_BF16_DECODE and these:
 *   SIMD_BF16_DECODE_ON    whether they do on this CPU (set at init)
 *   SIMD_BF16_QK_DPAD(d)   head_dim padded as the rows below are
 *   simd_bf16_q_rows(R, q, d, buf, qb)
 *                          Q's R f32 rows rounded to bf16 into buf, zero
 *                          past d, qb[r] each row
 *   simd_bf16_qk_dot(R, t, exact, qb, d, krow, n, scale, out, ors, kpre)
 *                          simd_qk_dot on those rows, K rounded to bf16;
 *                          exact (STRICT, Q and K bf16): returns 1,
 *                          having stopped, where some K is subnormal
 *   simd_bf16_subnormal(p, n)   some of the n bf16 at p is subnormal
 *   simd_bf16_pv_rows(rows, p, prs, vrow, n, dv, acc, pre, vpre)
 *                          simd_pv_rows with P rounded to bf16, for V
 *                          stored as bf16 and dv a multiple of 32
 */
#ifndef SIMD_SUFFIX
#error "define SIMD_SUFFIX, the vocabulary and the microkernels before including simd/attention.h"
#endif

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "kernels.h"
#include "phase.h"
#include "simd/unroll.h"

/* 64 keys a tile: a 64 × 32 score tile (8 KiB) stays in L1 between its
   sweeps, and key splits (dispatch/plan.c) are whole tiles. */
#define ATT_BN 64
/* Lanes of the per-row state: the job's rows rounded up to whole vectors. */
#define ATT_LANES (((QKV_ATTN_MAX_ROWS + VL_MAX - 1) / VL_MAX) * VL_MAX)
/* Keys of K or V converted at a time when they are not f32, as preferred
   by the planner: 16 rows of 128 floats, 8 KiB. */
#define ATT_CONV_KEYS 16
#define ATT_ALIGN(n) (((n) + 15) & ~(size_t)15)   /* whole 64-byte lines */

enum { ATT_GEMM, ATT_ROWS4, ATT_ROWS8 };

/* A decode tile's K and V rows by pointer (any page), and the rows its
   kernels prefetch as they go (the decode feed), all indexed by the key's
   place in the tile. */
typedef struct SIMD_NAME(dot_rows) {
    const unsigned char *k[ATT_BN], *v[ATT_BN], *kpre[ATT_BN], *vpre[ATT_BN];
    int prefetch;   /* kpre and vpre are in use */
} SIMD_NAME(dot_rows);

/* The lanes of S per key: rows rounded up to whole vectors (4 for ROWS4). */
static size_t SIMD_NAME(att_rp)(int form, size_t rows)
{
    return form == ATT_ROWS4 ? 4 : form == ATT_ROWS8 ? 8 : (rows + VL - 1) / VL * VL;
}

/* Keys of the score tile: the dot forms write whole vectors of keys past
   the tile's last. */
static size_t SIMD_NAME(att_keys)(int form)
{
    return form == ATT_GEMM ? ATT_BN : ATT_BN + VL;
}

/* The columns of Qᵀ a GEMM job packs at a time where `fit` of them (a
   multiple of 32, at least 32) fit its workspace: all of head_dim d where
   they fit, else as many chunks as that takes, of even widths in whole
   blocks of 32 (256 as 128 + 128: in 224 + 32 the second chunk read S and
   K again for a sliver). The planner's request (att_need) and the kernel
   both size Qᵀ by it, so a job is given no more than it uses. */
static size_t SIMD_NAME(qt_cols)(size_t d, size_t fit)
{
    if (d <= fit)
        return d;
    const size_t chunks = (d + fit - 1) / fit;
    return ((d + chunks - 1) / chunks + 31) / 32 * 32;
}

/* How the decode forms may multiply in bf16: not at all; Q·Kᵀ with Q and
   K stored as bf16 in STRICT mode, where the products are exact (as the
   bf16 tiles do, a subnormal sends the job, for Q, or the tile, for K, to
   f32); or, in QKV_FPMATH_BF16, Q·Kᵀ rounding Q and K, and P·V rounding
   P where V is stored as bf16. */
enum { DEC_F32, DEC_BF16_EXACT, DEC_BF16_ROUND };

static int SIMD_NAME(dec_bf16)(qkv_fpmath m, qkv_dtype qt, qkv_dtype kt)
{
#ifdef SIMD_BF16_DECODE
    if (!SIMD_BF16_DECODE_ON)
        return DEC_F32;
    if (m == QKV_FPMATH_BF16)
        return DEC_BF16_ROUND;
    return qt == QKV_BF16 && kt == QKV_BF16 ? DEC_BF16_EXACT : DEC_F32;
#else
    (void)m, (void)qt, (void)kt;
    return DEC_F32;
#endif
}

/* The fewest lanes with which the ROWS8 form runs (8 rows in a vector at
   least); an ISA whose 8-row kernels need more defines it before this
   header (the Arm kernels: 16). */
#ifndef ATT_ROWS8_VL
#define ATT_ROWS8_VL 8
#endif
#ifndef simd_gemm_inline
#define simd_gemm_inline simd_gemm
#endif

/* The form a job of this many rows takes where nothing else decides. Only
   jobs this makes GEMM jobs take the bf16 tiles: one of a few rows that a
   block dtype (SVE at 2048 bits) or the workspace sends to GEMM computes
   as its decode form would, as qkv.h says of jobs of at most 8 rows (4
   where the ROWS8 form wants more lanes than the ISA has). */
static int SIMD_NAME(att_rows_form)(size_t rows)
{
    if (rows <= 4)
        return ATT_ROWS4;
#ifdef SIMD_ROWS8
    if (rows <= 8 && VL >= ATT_ROWS8_VL)
        return ATT_ROWS8;
#endif
    return ATT_GEMM;
}

/* Floats of workspace a form takes: S (and the mask tile in S's layout),
   Q as the form wants it, and `conv` floats of converted K/V rows; the
   bf16 tiles take more where it gains and the total stays within limit. */
static size_t SIMD_NAME(att_need)(int form, size_t rows, const qkv_attn_shape *s, size_t conv,
                                  size_t limit)
{
    const size_t rp = SIMD_NAME(att_rp)(form, rows), keys = SIMD_NAME(att_keys)(form);
    size_t n = ATT_ALIGN(keys * rp) * (s->masked ? 2 : 1);
#ifdef SIMD_BF16
    const size_t bf16 = form == ATT_GEMM && SIMD_NAME(att_rows_form)(rows) == ATT_GEMM
                            ? simd_bf16_ws(rp, s, limit > n ? limit - n : 0)
                            : 0;
    if (bf16)
        return n + bf16;
#endif
    if (form == ATT_GEMM) {
        /* Qᵀ whole where it fits within limit, else, with 16 lanes or
           more, in chunks along head_dim as wide as fit (32 columns at
           least): there a job of 32 rows with Qᵀ in chunks beat one of 16
           with it whole (AVX-512 on Zen 5, 8 heads, two builds alternating
           in one process: d = 256 f32 0.89-0.93 of the time, causal or
           not, n = 512 to 2048, f16 K/V 0.86-0.90, Q8_0 0.91; d = 512
           0.93), where AVX2's 32-row jobs lost (d = 256 causal 1.03-1.06).
           Arm: not measured. */
        size_t cols = s->head_dim;
        const size_t fixed = n + ATT_ALIGN(conv);
        if (fixed + ATT_ALIGN(rp * cols) > limit && cols > 32 && VL >= 16) {
            const size_t fit = limit > fixed ? (limit - fixed) / rp / 32 * 32 : 0;
            cols = SIMD_NAME(qt_cols)(cols, fit < 32 ? 32 : fit);
        }
        return n + ATT_ALIGN(rp * cols) + ATT_ALIGN(conv);
    }
    if (s->q_dtype != QKV_F32)
        n += ATT_ALIGN(rp * s->head_dim);
#ifdef SIMD_BF16_DECODE
    if (SIMD_NAME(dec_bf16)(s->fpmath, s->q_dtype, s->k_dtype))   /* Q's rows as bf16 */
        n += ATT_ALIGN(rp * SIMD_BF16_QK_DPAD(s->head_dim) / 2);
#endif
    return n;
}

/* The form of a job of this many rows in ws_floats of workspace. The dot
   forms read block types only where a vector never spans two blocks (VL
   divides 32), and need Q (when converted) in the workspace; where that
   does not fit (a huge head_dim), GEMM, which works in chunks of head_dim,
   takes any job. */
static int SIMD_NAME(att_form)(size_t rows, const qkv_attn_shape *s, size_t ws_floats)
{
    const int form = SIMD_NAME(att_rows_form)(rows);
    if (form == ATT_GEMM)
        return form;
    const int blocks = qkv_dtype_block(s->k_dtype) > 1 || qkv_dtype_block(s->v_dtype) > 1;
    if (blocks && 32 % VL)
        return ATT_GEMM;
    return SIMD_NAME(att_need)(form, rows, s, 0, 0) <= ws_floats ? form : ATT_GEMM;
}

/* The workspace a job asks for (qkv_attention_ws_fn): its form's needs,
   with (GEMM) a chunk of ATT_CONV_KEYS converted K rows or half a tile's V
   in 64-column blocks; within limit, the bf16 tiles' wider V chunks, and
   Qᵀ whole or (16 lanes) in chunks (att_need). The planner picks rows per
   job so that this fits; the kernel copes with less (smaller chunks). */
static size_t SIMD_NAME(attention_ws)(size_t rows, const qkv_attn_shape *s, size_t limit)
{
    size_t conv = 0;
    if (s->k_dtype != QKV_F32)
        conv = ATT_CONV_KEYS * s->head_dim;
    /* Half a tile of V keys in 64-column blocks: the acc rows are then
       reloaded once more per tile (about 3% of the FMAs' time), and the
       workspace stays within QKV_MAX_STACK_BYTES with 32 rows of d = 128. */
    const size_t vconv = ATT_BN / 2 * (s->v_head_dim < 64 ? s->v_head_dim : 64);
    if (s->v_dtype != QKV_F32 && vconv > conv)
        conv = vconv;
    return SIMD_NAME(att_need)(SIMD_NAME(att_form)(rows, s, SIZE_MAX), rows, s, conv, limit);
}

static qkv_attn_shape SIMD_NAME(shape_of)(const qkv_attn_job *job)
{
    qkv_attn_shape s = {job->head_dim, job->v_head_dim, job->q_dtype, job->k.dtype,
                        job->v.dtype, 0, job->fpmath};
    for (size_t r = 0; r < job->rows; r++)
        s.masked |= job->row[r].mask != NULL;
    return s;
}

/* ---- operands ------------------------------------------------------------- */

/* A bump allocator over the job's workspace. */
typedef struct SIMD_NAME(att_ws) {
    float *p;
    size_t left;
} SIMD_NAME(att_ws);

static float *SIMD_NAME(ws_take)(SIMD_NAME(att_ws) *w, size_t floats)
{
    float *p = w->p;
    floats = ATT_ALIGN(floats);
    floats = floats < w->left ? floats : w->left;
    w->p += floats;
    w->left -= floats;
    return p;
}

/* n rows of len values stored as t (rows `bytes` apart, from value c0)
   widened into buf, len floats a row, in registers (simd/load_dt.h): no
   call per row, and no NaN quieting, which only qkv_convert promises. */
V_INLINE void SIMD_NAME(widen_rows)(const qkv_dtype t, const unsigned char *row, size_t bytes,
                                    size_t n, size_t c0, size_t len, float *buf)
{
    const size_t nfull = len / VL * VL;
    for (size_t i = 0; i < n; i++, row += bytes, buf += len) {
        size_t c = 0;
        for (; c < nfull; c += VL)
            v_store(buf + c, SIMD_NAME(load_dt)(t, row, c0 + c));
        if (c < len)
            v_storem(buf + c, v_tailmask(len - c), SIMD_NAME(load_dtn)(t, row, c0 + c, len - c));
    }
}

/* widen_rows over the rows of keys [j, j + n), page run by page run. */
V_INLINE void SIMD_NAME(widen_keys)(const qkv_dtype t, const qkv_kv_src *s, size_t j, size_t n,
                                    size_t c0, size_t len, float *buf)
{
    for (size_t i = 0, run; i < n; i += run) {
        run = qkv_kv_run(s, j + i, n - i);
        const unsigned char *row = qkv_kv_row(s, j + i);
        if (qkv_dtype_block(t) > 1 && 32 % VL) {   /* a vector would span two blocks */
            const size_t skip = qkv_dtype_bytes(t, c0);
            for (size_t r = 0; r < run; r++)
                s->to_f32(len, row + r * s->row_bytes + skip, buf + (i + r) * len);
            continue;
        }
        SIMD_NAME(widen_rows)(t, row, s->row_bytes, run, c0, len, buf + i * len);
    }
}

/* Rows [j, j + n) of K or V as f32, columns [c0, c0 + len): in place when
   stored as f32 (the rows then lie within one page run), else widened into
   buf (len floats a row) page run by page run, so that a converted chunk
   crosses pages. *ld is the distance between the rows returned, in
   floats. c0 is a multiple of the dtype's block (32 for Q8_0/Q4_0). */
static const float *SIMD_NAME(kv_f32)(const qkv_kv_src *s, size_t j, size_t n, size_t c0,
                                      size_t len, float *buf, size_t *ld)
{
    if (s->dtype == QKV_F32) {
        *ld = s->row_bytes / sizeof(float);
        return (const float *)qkv_kv_row(s, j) + c0;
    }
    *ld = len;
#define WIDEN_KEYS(T_) SIMD_NAME(widen_keys)(T_, s, j, n, c0, len, buf)
    SIMD_DTYPE_SWITCH(s->dtype, WIDEN_KEYS)
#undef WIDEN_KEYS
    return buf;
}

/* Pointers to the rows of keys [j0, j0 + n), page run by page run: with
   qkv_kv_cursor's key-by-key steps instead, this took 4.2x the
   instructions (callgrind, AVX2 f32 decode, 4096 keys) and the decode
   1.5-3% more time (AVX-512, 32768 keys, Zen 5). */
static void SIMD_NAME(kv_rows)(const qkv_kv_src *s, size_t j0, size_t n, const unsigned char **out)
{
    for (size_t i = 0; i < n;) {
        const size_t run = qkv_kv_run(s, j0 + i, n - i);
        const unsigned char *r = qkv_kv_row(s, j0 + i);
        for (const size_t e = i + run; i < e; i++, r += s->row_bytes)
            out[i] = r;
    }
}

/* The rows of keys [j, j + n) of K as f32 (len columns from column c0)
   by pointer, for simd_gemm's ap: in place when stored as f32 (kv_rows),
   so that a microkernel panel of keys goes across pages, else widened
   into buf (kv_f32). Returns where column c0 is in each row (simd_gemm's
   rsa). Split at each page, vLLM's pages of 16 keys ran as x86 panels of
   6, 6 and 4 keys: Zen 5, AVX-512, 8 heads, d = 128, causal
   n = 2048, one thread, paired, contiguous K so split took 1.04 of the
   time; pages of 16 across over split 0.97-0.985 (AVX2 0.97; 32/8 heads,
   2 threads 0.98), contiguous K 1.00-1.01. */
static size_t SIMD_NAME(k_rows_f32)(const qkv_kv_src *s, size_t j, size_t n, size_t c0,
                                    size_t len, float *buf, const unsigned char **out)
{
    if (s->dtype == QKV_F32) {
        SIMD_NAME(kv_rows)(s, j, n, out);
        return c0;
    }
    size_t ld;
    const float *b = SIMD_NAME(kv_f32)(s, j, n, c0, len, buf, &ld);
    for (size_t i = 0; i < n; i++)
        out[i] = (const unsigned char *)(b + i * ld);
    return 0;
}

/* Where fetch_keys asks for rows: into L1, or into L2 only. */
enum { FETCH_L1, FETCH_L2 };

/* The first len bytes of the rows of keys [j0, j1), page run by page
   run, asked for as `how` says. */
static void SIMD_NAME(fetch_keys)(const qkv_kv_src *s, size_t j0, size_t j1, size_t len, int how)
{
    for (size_t j = j0; j < j1;) {
        const size_t run = qkv_kv_run(s, j, j1 - j);
        const unsigned char *r = qkv_kv_row(s, j);
        for (size_t i = 0; i < run; i++, r += s->row_bytes)
            SIMD_NAME(prefetch_part)(r, 0, len, how == FETCH_L2);
        j += run;
    }
}

/* The decode feed. Decode streams K and V from memory once, and its dot
   products leave too few loads per instruction window to keep enough
   misses in flight: read by the kernels alone, K and V come at a fraction
   of the memory's bandwidth. Two ways to bring them in ahead:
   - a sweep of a chunk of keys at a time, each key's K row then its V row,
     in a tight loop of loads that nothing waits on, after which the
     kernels compute from L1/L2. The chunk (att_sweep_bytes below) is big
     enough that the sweep's start-up is paid rarely, small enough to stay
     in L2 beside the rest. It runs near the full bandwidth, but nothing
     overlaps it;
   - the kernels prefetch the K and V rows FEED_AHEAD keys on as they go, a
     few lines with each key (simd_qk_dot's kpre, simd_pv_rows's vpre):
     the memory overlaps the arithmetic, at a lower bandwidth.
   The sweep wins where the bytes far outweigh the arithmetic: 16-lane
   vectors (or wider) with at least 8 bytes of K/V per vector FMA (f32 or
   16-bit K/V with a 4-row job; not Q8_0's 4.25), and on runs of rows long
   enough: through a page table it reads several pages side by side, and
   pages holding less than ATT_SWEEP_RUN bytes of K are prefetched. On a
   core whose FMA units are 256 bits wide (Zen 4), 8-lane vectors too, by
   the rows a job really has: there the kernels' prefetching brought
   K and V at 9-10 GB/s of the 22 one core reads, and AVX2 computes as
   fast as AVX-512. Zen 4 (EPYC, family 25 model 17, 1 MiB L2), one
   thread, 32768 keys, d = 128, paired, swept over prefetched: AVX2 f16
   8/8 heads (1-row jobs, 16 bytes a vector FMA) 0.58-0.60, 16/8 (8
   bytes) 0.66-0.69, f32 8/8 0.60-0.63, 16/8 0.59, 32/8 (8 bytes)
   0.79-0.86, Q8_0 8/8 0.88, 16/8 0.98 (2 threads: f16 8/8 0.68, f32
   32/8 0.89); where the rule says no: AVX2 f16 32/8
   (4 bytes) 1.00, f32 64/8 (4 bytes) 1.19, AVX-512 f16 64/8 1.10, Q8_0
   32/8 1.10; AVX-512 jobs of 1-2 rows by their rows over the 4-row rule
   0.99-1.02 (f32, Q8_0, Q4_0); and AVX-512 f16 32/8 prefetched over swept
   1.19.
   The sweep reads K and V key by key, two streams side by side: loads
   alone, a chunk's K rows and then its V rows read at 24 GB/s where the
   same bytes as one stream, or as two side by side, read at 34-36 (Zen 5,
   one core), and the decode sweeping K then V ran 10-13% slower than key
   by key (paired runs, AVX-512 f32 0.87-0.89, f16 swept 0.90).
   Measured on Zen 5 (1 MiB L2), one thread, 32 query heads on 8 KV heads,
   32768 keys, d = 128, paired runs of two builds, swept over prefetched:
   AVX-512 f32 0.84 with the K-then-V sweep (so about 0.74 now), f16 0.90
   key by key (bf16 on avx512bf16 0.90), Q8_0 1.03, Q4_0 1.18; AVX2 f32
   1.05, f16 1.22 (its 8-lane FMAs leave the arithmetic longer than the
   memory: 33 ns a key from L2, against 23 for AVX-512). Earlier, five
   alternating runs (ms): pages of 16 keys, K-then-V sweep / prefetched
   19.9 / 16.8, of 128 14.9 / 14.6; 128 or 256 keys ahead: within the
   noise (32..256: the same; 8 or 16: slower); a T1 hint instead of T0
   lost on AVX2, and on AVX-512 (f32) T1, T2, NTA and 4 or 8 tiles ahead
   all lost, 19-28% behind the sweep. On Zen 3 (32 KiB L1d, 512 KiB L2),
   AVX2, 11 pairs on each core, over 128 keys ahead: 64 keys f32
   0.94-0.96, f16 0.96-1.00, bf16 0.98, Q8_0/Q4_0 1.00; 96 keys f32
   0.94-0.96, f16 0.97-1.00; 32 keys f32 1.11, f16 1.14-1.16; 256 keys
   f32 1.05-1.09. Hence one tile ahead.
   What the prefetches buy is the start of each 4 KiB page: asking for
   only the first line of each page took the same time as asking for
   every line (AVX-512 f32 13.4 / 13.3 ms, f16 5.9 / 6.1): the hardware
   streamer fetches the rest.
   Where the time goes on a Zen 5 (EPYC, family 26 model 2, 1 MiB L2;
   same case, AVX-512, K and V from a cache line's start as `qkv bench`
   allocates them), by timers around each phase of a tile: f32 (11.9 ms)
   the sweep 68% (it alone reads at 93% of the probe's bandwidth), Q·Kᵀ
   15%, P·V 12%, the softmax 3%; f16 (8.05 ms) the sweep 46%, Q·Kᵀ 26%,
   P·V 21%, the softmax 5%. (A count with K and V 16 bytes off a line had
   Q·Kᵀ at 21% of the f32 call.)
   The arithmetic does not overlap the sweep, so the sum is what a call
   takes; ways to overlap them all lost: prefetching the next chunk into
   L1 (T0) or L2 (T1) while computing this one, beside the sweep, 12.9-17.2
   ms; the kernels' prefetching alone, T0 12.0-12.5, T1 15.7-16.2;
   sweeping every other line (or fewer) 12.6-19.2. The Q·Kᵀ loop runs at
   61-68% of the FMA peak even from L1 (a stand-alone copy, 4 keys × 4
   rows, d = 128), about 100% with its 8 steps along head_dim unrolled,
   but unrolled in place it took 2-4% off the Q·Kᵀ phase (K comes from
   L2 there), not worth a copy per head_dim.
   Those are AMD's cores. An Intel core (qkv_cpu_view.prefetch_l2) is
   fed by prefetches into L2 (T1), never by the sweep: on a Xeon of the
   Emerald Rapids class (2 MiB L2; from memory one core reads 16-17 GB/s,
   two 31), paired runs, same case, AVX-512: prefetching into L1 over the sweep f32
   1.03, f16 0.81, bf16 0.82, Q8_0 (prefetched either way) 1.00; into L2
   over into L1 f32 0.81, f16 0.90, and T2 as T1; 2 tiles ahead as one, 4
   tiles ahead 1.06 (f32). AVX2 (which never sweeps) into L2 over into L1:
   f32 0.93, f16 0.98, Q8_0 1.03. */
#define FEED_AHEAD ATT_BN
/* The sweep's chunk: 128 KiB, or a quarter of a smaller L2. A quarter of
   any L2 was the first rule (256 KiB on Zen 5's 1 MiB); on a Xeon of the
   Sapphire Rapids class (2 MiB L2, so 512 KiB chunks) the AVX-512 f32
   decode then took 30 ms where AVX2's prefetching took 25. Paired runs on
   that Xeon, chunk over 512 KiB: 1 MiB 1.14, 256 KiB 0.93, 128 KiB 0.88,
   64 KiB 0.88, 32 KiB 0.96 (no sweep: 0.94), so the chunk is not a share
   of L2. On Zen 5 (1 MiB L2), paired, over 256 KiB: 128 KiB 1.014-1.019
   (21 and 41 pairs), 64 KiB 1.12; 128 KiB costs it 2% at most. (Intel's
   cores no longer sweep at all: see above.) */
#define ATT_SWEEP_MAX (128 << 10)
/* A shuffled page table cuts the stream into runs of a page each, and the
   hardware prefetchers start over at every one: loads alone, run after
   run, read 8 KiB runs at 8-10 GB/s on Zen 5 (one core, 4 KiB at 7-8),
   against 32-36 streaming. Read ATT_SWEEP_PAGES pages side by side, a row
   of each in turn (K and V: 8 runs), the same runs came at 25-26 GB/s (2
   runs 15, 16: 23). The least bytes of K rows a page must hold to be
   swept: below it the prefetching kernels win or tie. Paired, shuffled
   pages, AVX-512, 4 pages side by side over prefetched: f32 pages of 4
   keys (2 KiB) 1.06, 8 (4 KiB) 0.93, 16 0.89, 32 0.83, 64 0.81; f16
   pages of 8 (2 KiB) 1.19, 16 (4 KiB) 1.00-1.02, 32 0.98, 64 0.91-0.93,
   128 0.91; f32 pages of 16, 2 pages side by side 0.95, 8 pages 0.97. (One page at a time,
   the sweep lost below 64 KiB: f32 pages of 16 keys 1.07, 32 1.11.) */
#define ATT_SWEEP_PAGES 4
#define ATT_SWEEP_RUN (8 << 10)
static size_t SIMD_NAME(att_sweep_bytes) = ATT_SWEEP_MAX;

/* Whether a 16-bit V is converted once per tile even where the
   microkernel could widen it in place (see pv_tile); set with the feed. */
static int SIMD_NAME(v16_per_tile);
/* This core's L2 in bytes (0: not known); set with the feed. */
static size_t SIMD_NAME(att_l2);
/* Whether this core's FMA units are 256 bits wide; set with the feed. */
static int SIMD_NAME(fma_256_bit);

static void SIMD_NAME(att_feed_for)(const qkv_cpu_view *c)
{
    SIMD_NAME(prefetch_l2) = c->prefetch_l2;
    SIMD_NAME(v16_per_tile) = c->wide_converts_on_fma_ports && VL >= 16;
    SIMD_NAME(att_l2) = c->l2;
    SIMD_NAME(fma_256_bit) = c->fma_256_bit;
    if (c->l2 && c->l2 / 4 < ATT_SWEEP_MAX)
        SIMD_NAME(att_sweep_bytes) = c->l2 / 4 < (32 << 10) ? (32 << 10) : c->l2 / 4;
}

/* Keys before `end` are in cache or on their way; a sweep goes `keys` at
   a time, or the kernels prefetch `ahead` keys on (0: they don't). */
typedef struct SIMD_NAME(att_feed) {
    size_t end, keys, ahead;
} SIMD_NAME(att_feed);

/* Whether a decode job whose kernels take `lanes` rows (4 or 8) reads at
   least 8 bytes of K and V per vector FMA, row · VL / (lanes · (head_dim +
   v_head_dim)) with row the bytes of a key's K and V rows: where the
   memory, not the arithmetic, sets its time. */
static int SIMD_NAME(memory_bound)(size_t row, size_t lanes, size_t head_dim, size_t v_head_dim)
{
    return row * (size_t)VL >= 8 * lanes * (head_dim + v_head_dim);
}

/* The rows a decode job of `rows` rows counts as in the feed's rule: on
   cores with 256-bit FMA units its kernels' rows (1, 2, 4 or 8), elsewhere
   at least 4: by the 1- or 2-row rule, AVX-512 Q8_0 and Q4_0 would sweep,
   which measured 0.88 of the time for 8/8-head Q8_0, 1.10 for Q4_0,
   1.02-1.13 for 16/8-head Q8_0 (Zen 5, paired). */
static size_t SIMD_NAME(feed_lanes)(size_t rows)
{
    const size_t n = rows <= 2 ? rows : rows <= 4 ? 4 : 8;
    return SIMD_NAME(fma_256_bit) || n == 8 ? n : 4;
}

/* The feed of a decode job whose kernels take `lanes` rows (feed_lanes). */
static SIMD_NAME(att_feed) SIMD_NAME(feed_start)(const qkv_attn_job *job, size_t lanes)
{
    const size_t kb = qkv_dtype_bytes(job->k.dtype, job->head_dim);
    const size_t row = kb + qkv_dtype_bytes(job->v.dtype, job->v_head_dim);
    const size_t keys = SIMD_NAME(att_sweep_bytes) / row / ATT_BN * ATT_BN;
    const size_t run = (ATT_SWEEP_RUN + kb - 1) / kb;   /* keys */
    const int sweep = !SIMD_NAME(prefetch_l2) && job->k.page_size >= run && job->v.page_size >= run &&
                      (VL >= 16 || SIMD_NAME(fma_256_bit)) &&
                      SIMD_NAME(memory_bound)(row, lanes, job->head_dim, job->v_head_dim);
    SIMD_NAME(att_feed) w = {job->kv_begin, keys < ATT_BN ? ATT_BN : keys,
                             sweep ? 0 : FEED_AHEAD};
    return w;
}

/* qkv_walk_sweeps_fn: whether a walk over K/V whose every key's row holds
   all the KV heads (llama.cpp's cache; plan.c's task_walk) reads each
   chunk of keys in memory order before its jobs run, the jobs then
   fetching nothing, rather than have them prefetch shares of the next
   chunk: on the cores the decode feed sweeps for (not fed into L2), for
   jobs of a decode form whose rows are memory-bound as above, 8-lane
   vectors included. Zen 5, one thread, 32/8 heads, d = 128, 32768 keys
   as [kv_len][kv_heads][d], ms, shares / sweep: AVX-512 f32 18.5-18.8 /
   12.1-13.7, f16 9.0 / 7.3; AVX2 f32 19-20 / 14.5-16.2; where the rule
   says no, AVX2 f16 9.0 / 10.5, Q8_0 and Q4_0 on either ISA within 5%.
   On cores with 256-bit FMA units, jobs of 1 or 2 rows count by their
   rows as in the feed (feed_lanes): Zen 4, same case, paired, over the
   4-row count: AVX2 f16 8/8 heads 0.72, 16/8 0.77, Q8_0 8/8 0.94;
   AVX-512 Q8_0 8/8 0.89, 16/8 0.93 (where the count changes nothing,
   0.96-1.03).
   Where the heads lie side by side in each page only (vLLM's
   [pages][kv_heads][page_size][dim]), only where a head's rows of a page
   are too short a run for the jobs' own sweep (ATT_SWEEP_RUN), and with
   16-lane vectors as above: same case, shuffled pages of 16 keys, paired,
   a walk's sweep of whole pages over the jobs' own feed: AVX-512 f16
   0.77-0.87 (2 threads 0.89-0.93), bf16 0.87 (0.94); f32, whose 8 KiB
   runs the jobs sweep, 0.96-1.04 (2 threads 1.06-1.08); pages of 8 keys
   f32 0.71 (0.80), f16 and bf16 0.86; at 4.25 bytes of K/V a vector FMA
   (Q8_0) 1.01-1.10, 4 (f16, 8 rows) 1.03. With 8-lane vectors, whose
   jobs never sweep on Zen 5, from 4 bytes a vector FMA (SVE at 256 bits by the
   same rule, untimed): AVX2 f16 0.88-0.94 (2 threads 1.00-1.01), bf16
   0.92-0.96 (0.95), f32 pages of 8 keys 0.90, f16 with 2 rows a job
   0.97, f32 with 8 rows (4 bytes) 0.99; below, Q8_0 1.10-1.12, Q4_0
   1.12. */
static int SIMD_NAME(walk_sweeps)(size_t rows, const qkv_attn_shape *s, size_t page_size)
{
    const int form = SIMD_NAME(att_form)(rows, s, SIZE_MAX);
    if (SIMD_NAME(prefetch_l2) || form == ATT_GEMM)
        return 0;
    const size_t kb = qkv_dtype_bytes(s->k_dtype, s->head_dim);
    const size_t row = kb + qkv_dtype_bytes(s->v_dtype, s->v_head_dim);
    const size_t lanes = SIMD_NAME(feed_lanes)(form == ATT_ROWS4 ? rows : 8);
    if (!page_size)
        return SIMD_NAME(memory_bound)(row, lanes, s->head_dim, s->v_head_dim);
    if (VL < 8)   /* NEON, SVE at 128 bits: untimed, the jobs' own feed */
        return 0;
    const size_t per_fma = VL >= 16 ? 8 : 4;   /* bytes of K/V a vector FMA, at least */
    return page_size * kb < ATT_SWEEP_RUN &&
           row * (size_t)VL >= per_fma * lanes * (s->head_dim + s->v_head_dim);
}

/* Before the tile of keys [t0, t1). A sweep: the next chunk's rows, each
   key's K row then its V row, once the tile reaches past what was swept.
   Prefetching: what the kernels will not ask for (the first `ahead` keys, or those
   after a jump) is asked for now, and kpre/vpre get the rows `ahead` keys
   on from each of the tile's keys (NULL past the job's keys). */
static void SIMD_NAME(feed_to)(const qkv_attn_job *job, SIMD_NAME(att_feed) *w, size_t t0,
                               size_t t1, const unsigned char **kpre,
                               const unsigned char **vpre)
{
    const size_t kb = qkv_dtype_bytes(job->k.dtype, job->head_dim);
    const size_t vb = qkv_dtype_bytes(job->v.dtype, job->v_head_dim);
    if (w->ahead) {
        const size_t end = t0 + w->ahead < job->kv_end ? t0 + w->ahead : job->kv_end;
        const size_t from = w->end > t0 ? w->end : t0;
        if (from < end) {
            const int how = SIMD_NAME(prefetch_l2) ? FETCH_L2 : FETCH_L1;
            SIMD_NAME(fetch_keys)(&job->k, from, end, kb, how);
            SIMD_NAME(fetch_keys)(&job->v, from, end, vb, how);
        }
        const size_t a = t0 + w->ahead, n = t1 - t0;
        const size_t have = a < job->kv_end ? (job->kv_end - a < n ? job->kv_end - a : n) : 0;
        SIMD_NAME(kv_rows)(&job->k, a, have, kpre);
        SIMD_NAME(kv_rows)(&job->v, a, have, vpre);
        for (size_t i = have; i < n; i++)
            kpre[i] = vpre[i] = NULL;
        w->end = a + n;
        return;
    }
    if (t1 <= w->end)
        return;
    const size_t j0 = t0 > w->end ? t0 : w->end;
    const size_t j1 = job->kv_end - j0 < w->keys ? job->kv_end : j0 + w->keys;
    for (size_t j = j0; j < j1;) {   /* ATT_SWEEP_PAGES page runs at a time */
        const unsigned char *k[ATT_SWEEP_PAGES], *v[ATT_SWEEP_PAGES];
        size_t len[ATT_SWEEP_PAGES], most = 0;
        int runs = 0;
        for (; runs < ATT_SWEEP_PAGES && j < j1; runs++) {
            const size_t rk = qkv_kv_run(&job->k, j, j1 - j);
            const size_t rv = qkv_kv_run(&job->v, j, j1 - j);
            len[runs] = rk < rv ? rk : rv;
            k[runs] = qkv_kv_row(&job->k, j);
            v[runs] = qkv_kv_row(&job->v, j);
            most = len[runs] > most ? len[runs] : most;
            j += len[runs];
        }
        if (runs == 1) {   /* contiguous K/V: one run, in pointer steps */
            const unsigned char *ke = k[0] + len[0] * job->k.row_bytes, *vr = v[0];
            for (const unsigned char *kr = k[0]; kr < ke;
                 kr += job->k.row_bytes, vr += job->v.row_bytes) {
                qkv_touch_lines(kr, kb);
                qkv_touch_lines(vr, vb);
            }
            continue;
        }
        for (size_t i = 0; i < most; i++)
            for (int r = 0; r < runs; r++)
                if (i < len[r]) {
                    qkv_touch_lines(k[r] + i * job->k.row_bytes, kb);
                    qkv_touch_lines(v[r] + i * job->v.row_bytes, vb);
                }
    }
    w->end = j1;
}

/* qt[p][r] = q_r[pc + p] for r < rows, 0 up to rp: Qᵀ as the microkernel's
   B, so that a step of the dot product is one vector per VL rows. A row
   stored in another dtype is converted 32 values at a time. */
static void SIMD_NAME(pack_qt)(float *qt, size_t rp, const qkv_attn_job *job, size_t pc,
                               size_t kc)
{
#ifdef SIMD_TRANSPOSE
    /* f32 rows in VL × VL blocks transposed in registers, lanes past the
       rows zero (AVX-512, 8 heads, n = 256, d = 64: the element-by-element
       copy below took 4% of the time). */
    if (job->q_dtype == QKV_F32 && rp % VL == 0) {
        for (size_t r0 = 0; r0 < rp; r0 += VL)
            for (size_t p0 = 0; p0 < kc; p0 += VL) {
                const size_t np = kc - p0 < VL ? kc - p0 : VL;
                const vm m = v_tailmask(np);
                vf x[VL];
SIMD_UNROLL
                for (size_t i = 0; i < VL; i++)
                    x[i] = r0 + i < job->rows
                               ? v_loadm((const float *)job->row[r0 + i].q + pc + p0, m)
                               : v_zero();
                v_transpose(x);
SIMD_UNROLL
                for (size_t k = 0; k < VL; k++)
                    if (k < np)
                        v_store(qt + (p0 + k) * rp + r0, x[k]);
            }
        return;
    }
#endif
    for (size_t r = 0; r < job->rows; r++) {
        if (job->q_dtype == QKV_F32) {
            const float *q = (const float *)job->row[r].q + pc;
            for (size_t p = 0; p < kc; p++)
                qt[p * rp + r] = q[p];
            continue;
        }
        const unsigned char *q = job->row[r].q;
        float part[32];
        for (size_t p0 = 0; p0 < kc; p0 += 32) {
            const size_t np = kc - p0 < 32 ? kc - p0 : 32;
            job->q_to_f32(np, q + qkv_dtype_bytes(job->q_dtype, pc + p0), part);
            for (size_t p = 0; p < np; p++)
                qt[(p0 + p) * rp + r] = part[p];
        }
    }
    for (size_t r = job->rows; r < rp; r++)
        for (size_t p = 0; p < kc; p++)
            qt[p * rp + r] = 0.0f;
}

/* Whether n rows of dv floats, ld apart, hold only finite numbers:
   x · 0 + s keeps s = 0 for finite x and turns it NaN for an Inf or NaN. */
static int SIMD_NAME(rows_finite)(const float *v, size_t ld, size_t n, size_t dv)
{
    const size_t nfull = dv / VL * VL;
    const vm tm = v_tailmask(dv > nfull ? dv - nfull : VL);
    const vf zero = v_zero();
    vf s0 = zero, s1 = zero;
    for (size_t j = 0; j < n; j++) {
        const float *row = v + j * ld;
        size_t c = 0;
        for (; c + 2 * VL <= nfull; c += 2 * VL) {
            s0 = v_fmadd(v_load(row + c), zero, s0);
            s1 = v_fmadd(v_load(row + c + VL), zero, s1);
        }
        if (c < nfull)
            s0 = v_fmadd(v_load(row + c), zero, s0);
        if (nfull < dv)
            s1 = v_fmadd(v_loadm(row + nfull, tm), zero, s1);
    }
    const vf s = v_add(s0, s1);
    return !v_any(v_ne(s, s));
}

/* x[c] *= f for c < n, never touching x[n] or beyond. */
static void SIMD_NAME(row_scale)(float *x, size_t n, float f)
{
    const size_t nfull = n / VL * VL;
    const vf vf_ = v_set1(f);
    for (size_t c = 0; c < nfull; c += VL)
        v_store(x + c, v_mul(v_load(x + c), vf_));
    if (nfull < n) {
        const vm tm = v_tailmask(n - nfull);
        v_storem(x + nfull, tm, v_mul(v_loadm(x + nfull, tm), vf_));
    }
}

/* ---- P·V ------------------------------------------------------------------ */

/* Rows of the microkernel's next panel when `left` rows (or keys) remain:
   GEMM_MR, but where a full panel would leave a last one of so few rows
   that its r · GEMM_NV accumulators are under 8 (two FMA pipes × 4 cycles
   of latency, on the x86 and Arm cores of today), the last two panels
   share the rows evenly. Each row is computed alone, so the result is the
   same. AVX2's 32-row prefill jobs ended in a panel of 2 rows, 4
   accumulators, at half speed: split 4 + 4, the AVX2 prefill (Zen 3, 8
   heads, n = 512, d = 64 and 128, 41 pairs on each core) took 0.977-0.991
   of the time; at n = 2048, 0.99-1.01 (noise). */
static inline size_t SIMD_NAME(panel_rows)(size_t left)
{
    if (left <= GEMM_MR)
        return left;
    const size_t last = left - GEMM_MR;   /* if this panel were full */
    return last < GEMM_MR && last * GEMM_NV < 8 ? (left + 1) / 2 : GEMM_MR;
}

/* pv_tile for a plain tile (every row sees the keys [kmin, kmax)) whose V,
   read in place (f32, or 16-bit where pv_tile would), lies in pages of
   fewer keys than a tile, v_head_dim whole microkernel panels: each panel
   of rows takes all the keys in one microkernel call, V's rows by
   pointer. Page by page, as pv_tile goes otherwise, the tile took a call
   a page for each panel of rows, each loading and storing its acc rows:
   Zen 5, AVX-512, 32/8 heads, d = 128, causal n = 2353 (the report's
   ragged batch's longest prefill), vLLM's pages of 16 keys, a 2-thread
   pool, paired: f32 236 ms where contiguous K/V took 159 (1 thread 348 /
   300); V copied into the workspace a page at a time the same, half a
   tile at a time 212, the tile at once 176; by pointer 170-180. 0: V is
   not so (pv_tile goes on). */
static int SIMD_NAME(pv_by_rows)(const qkv_attn_job *job, size_t t0, size_t kmin, size_t kmax,
                                 const float *st, size_t rp, const float *alpha)
{
    const size_t n = kmax - kmin, rows = job->rows, dv = job->v_head_dim;
    if (!job->v.pages || job->v.page_size >= ATT_BN || dv % GEMM_NR ||
        qkv_kv_run(&job->v, t0 + kmin, n) == n)
        return 0;
    const unsigned char *vr[ATT_BN];
    SIMD_NAME(kv_rows)(&job->v, t0 + kmin, n, vr);
    for (size_t i0 = 0, mr; i0 < rows; i0 += mr) {
        mr = SIMD_NAME(panel_rows)(rows - i0);
        int scale = 0;
        for (size_t i = 0; i < mr; i++)
            scale |= alpha[i0 + i] != 1.0f;
        float *crow[GEMM_MR];
        for (size_t i = 0; i < mr; i++)
            crow[i] = job->row[i0 + i].acc;
        for (size_t jc = 0; jc < dv; jc += GEMM_NR)
            simd_gemm_rows(job->v.dtype, (int)mr, n, st + kmin * rp + i0, 1, rp, vr, jc, crow, jc,
                           scale ? alpha + i0 : NULL);
    }
    return 1;
}

/* P·V of one tile for the keys [kmin, kmax) (relative to t0): acc_r =
   alpha_r · acc_r + Σ_j P[j][r] · V_j for every row r, over the keys r
   sees, lo[r] <= j < hi[r]. P is S after the exp, [key][rp]; rows go in
   blocks of GEMM_MR (panel_rows), or, where simd_pv_wide is defined and
   the chunk is whole panels of its columns, in as few blocks of at most
   SIMD_PV_WIDE_MR rows as there can be, of even size; each block over
   the keys one of its rows sees. V comes in chunks (read in place: one a
   page run; widened: as many keys as the workspace holds, across pages);
   a chunk that is not finite takes pv_exact. alpha is applied once per
   row, with the first chunk that reaches it. */
#if defined(simd_pv_wide) && SIMD_PV_WIDE_MR > GEMM_MR
#define PV_PANEL_MAX SIMD_PV_WIDE_MR
#else
#define PV_PANEL_MAX GEMM_MR
#endif
static void SIMD_NAME(pv_tile)(const qkv_attn_job *job, size_t t0, size_t kmin, size_t kmax,
                               const float *st, size_t rp, const int32_t *lo, const int32_t *hi,
                               const float *alpha, int plain, float *conv, size_t conv_floats)
{
    const size_t rows = job->rows, dv = job->v_head_dim;
    const int f32 = job->v.dtype == QKV_F32;
    /* Where the ISA's microkernel widens a 16-bit B as it loads it, a plain
       tile (no V check needed) reads a 16-bit V in place as it does f32:
       the conversions then run between the FMAs, where converting chunks
       first ran alone (AVX-512 prefill on Zen 5, 8 heads, n = 2048,
       d = 128, K f32, paired runs: f16 V took 9% longer than f32 V when
       converted, 6% less in place). Not where the conversions take the
       FMAs' ports (v16_per_tile): in place, each panel of rows converts
       the tile again, about 8% more work on those ports with panels of
       GEMM_MR rows (measured before pv_wide's panels of 12, which
       convert it half as often, on a Xeon of the Emerald Rapids class,
       same case with 16-bit K and V, paired, converted once per tile
       over in place, a noisy host: f16 0.945 and
       1.00 at d = 128, 0.96 and 1.01 at d = 64; bf16 0.965 and 0.96,
       0.955 and 0.98, in two series of 21 and 31 pairs; AVX2, whose
       conversions take a port the FMAs do not, f16 0.985, bf16 1.055). */
#ifdef simd_gemm_b16
    const int v16 = plain && !SIMD_NAME(v16_per_tile) &&
                    (job->v.dtype == QKV_F16 || job->v.dtype == QKV_BF16);
#else
    const int v16 = 0;
#endif
    if (((f32 && plain) || v16) && SIMD_NAME(pv_by_rows)(job, t0, kmin, kmax, st, rp, alpha))
        return;
    /* Converted chunks: ch keys × cw columns. All the tile's keys in
       column blocks, so that each acc row is read and written once per tile
       as with f32 V (keys in chunks would reload it per chunk); cw a
       multiple of 64 (whole Q8_0/Q4_0 blocks and microkernel panels) or all
       of dv. Fewer keys only when the workspace is short. */
    size_t cw = dv, ch = kmax - kmin;
    if (!f32 && !v16) {
        cw = conv_floats / ch;
        cw = cw >= dv ? dv : cw / 64 * 64;
        if (!cw) {
            cw = dv < 64 ? dv : 64;   /* the GEMM form always leaves this much */
            ch = conv_floats / cw < ch ? conv_floats / cw : ch;
        }
    }
    for (size_t c0 = 0; c0 < dv; c0 += cw) {
        const size_t nc_chunk = dv - c0 < cw ? dv - c0 : cw;
#ifdef simd_pv_wide
        const size_t wide = nc_chunk % SIMD_PV_WIDE_NR == 0
                                ? (rows + SIMD_PV_WIDE_MR - 1) / SIMD_PV_WIDE_MR
                                : 0;   /* panels of pv_wide, or none */
#else
        const size_t wide = 0;
#endif
        uint64_t pre_done = 0;   /* bit r: alpha applied to row r's columns of this chunk */
        for (size_t k0 = kmin, k1; k0 < kmax; k0 = k1) {
            /* at most ch keys; within one page where read in place */
            k1 = k0 + (kmax - k0 < ch ? kmax - k0 : ch);
            if (f32 || v16)
                k1 = k0 + qkv_kv_run(&job->v, t0 + k0, k1 - k0);
            size_t ldv = job->v.row_bytes / 2;   /* a 16-bit V in place */
            const float *vb = NULL;
#ifdef simd_gemm_b16
            const unsigned char *vb16 =
                v16 ? (const unsigned char *)qkv_kv_row(&job->v, t0 + k0) + 2 * c0 : NULL;
#endif
            if (!v16)
                vb = SIMD_NAME(kv_f32)(&job->v, t0 + k0, k1 - k0, c0, nc_chunk, conv, &ldv);
            const int finite = plain || SIMD_NAME(rows_finite)(vb, ldv, k1 - k0, nc_chunk);
            for (size_t i0 = 0, mr, pi = 1; i0 < rows; i0 += mr, pi++) {
                mr = wide ? rows * pi / wide - i0 : SIMD_NAME(panel_rows)(rows - i0);
                size_t klo, khi;
                if (!qkv_rows_key_span(lo, hi, i0, mr, k0, k1, &klo, &khi))
                    continue;          /* no key here for these rows */
                /* alpha once per row: the rows of the block not done yet. */
                const float *pre = NULL;
                const uint64_t block = (((uint64_t)1 << mr) - 1) << i0;
                if ((pre_done & block) != block) {
                    int scale = 0;
                    for (size_t i = 0; i < mr; i++)
                        scale |= alpha[i0 + i] != 1.0f;
                    pre = scale ? alpha + i0 : NULL;
                    pre_done |= block;
                }
                float *crow[PV_PANEL_MAX];
                for (size_t i = 0; i < mr; i++)
                    crow[i] = job->row[i0 + i].acc;
                if (!finite) {
                    for (size_t i = 0; i < mr; i++) {
                        float *o = crow[i] + c0;
                        if (pre && pre[i] != 1.0f)
                            SIMD_NAME(row_scale)(o, nc_chunk, pre[i]);
                        const size_t b = (size_t)lo[i0 + i] > klo ? (size_t)lo[i0 + i] : klo;
                        const size_t e = (size_t)hi[i0 + i] < khi ? (size_t)hi[i0 + i] : khi;
                        for (size_t j = b; j < e; j++) {
                            const float p = st[j * rp + i0 + i];
                            uint32_t bits;
                            memcpy(&bits, &p, sizeof bits);
                            if (bits == 0x80000000u)
                                continue;   /* hidden key: contributes nothing */
                            const float *vr = vb + (j - k0) * ldv;
                            const vf vp = v_set1(p);
                            size_t c = 0;
                            for (; c + VL <= nc_chunk; c += VL)
                                v_store(o + c, v_fmadd(vp, v_load(vr + c), v_load(o + c)));
                            if (c < nc_chunk) {
                                const vm tm = v_tailmask(nc_chunk - c);
                                v_storem(o + c, tm, v_fmadd(vp, v_loadm(vr + c, tm), v_loadm(o + c, tm)));
                            }
                        }
                    }
                    continue;
                }
                const float *pa = st + klo * rp + i0;
#ifdef simd_pv_wide
                if (wide) {
                    for (size_t jc = 0; jc < nc_chunk; jc += SIMD_PV_WIDE_NR) {
#ifdef simd_gemm_b16
                        if (v16) {
                            simd_pv_wide(job->v.dtype, (int)mr, khi - klo, pa, rp,
                                         vb16 + 2 * ((klo - k0) * ldv + jc), ldv, crow, c0 + jc,
                                         pre);
                            continue;
                        }
#endif
                        simd_pv_wide(QKV_F32, (int)mr, khi - klo, pa, rp,
                                     vb + (klo - k0) * ldv + jc, ldv, crow, c0 + jc, pre);
                    }
                    continue;
                }
#endif
                for (size_t jc = 0; jc < nc_chunk; jc += GEMM_NR) {
                    const size_t nc = nc_chunk - jc < GEMM_NR ? nc_chunk - jc : GEMM_NR;
#ifdef simd_gemm_b16
                    if (v16) {
                        simd_gemm_b16(job->v.dtype, (int)mr, nc, khi - klo, pa, 1, rp,
                                      vb16 + 2 * ((klo - k0) * ldv + jc), ldv, crow, c0 + jc, 1,
                                      pre, 1.0f, NULL);
                        continue;
                    }
#endif
                    simd_gemm((int)mr, nc, khi - klo, pa, NULL, 1, rp, vb + (klo - k0) * ldv + jc,
                              ldv, crow, c0 + jc, 1, pre, 1.0f, NULL);
                }
            }
        }
    }
}

/* ---- the modifier pass -------------------------------------------------------- */

/* The keys of row r in the tile at t0 of n keys, relative to t0. */
static void SIMD_NAME(tile_range)(const qkv_attn_row *rw, size_t t0, size_t n, int32_t *lo,
                                  int32_t *hi)
{
    size_t b = rw->kv_begin > t0 ? rw->kv_begin - t0 : 0;
    size_t e = rw->kv_end > t0 ? rw->kv_end - t0 : 0;
    b = b < n ? b : n;
    e = e < n ? e : n;
    if (b >= e)
        b = e = 0;
    *lo = (int32_t)b;
    *hi = (int32_t)e;
}

/* The additive mask of keys [kmin, kmax) in S's layout, mt[j·rp + r]. */
static void SIMD_NAME(mask_tile)(const qkv_attn_job *job, size_t t0, size_t kmin, size_t kmax,
                                 size_t rp, float *mt)
{
    const float *mask[ATT_LANES];
    for (size_t r = 0; r < job->rows; r++)
        mask[r] = job->row[r].mask;
    simd_mask_t(mask, job->rows, t0 + kmin, kmax - kmin, rp, mt + kmin * rp);
}

/* ---- decode: the dot forms -------------------------------------------------- */

/* Q rows as f32: in place, or converted into buf (d floats a row); rows
   past the job's repeat its last. */
static void SIMD_NAME(q_rows_f32)(const qkv_attn_job *job, size_t n, float *buf, const float **q)
{
    for (size_t r = 0; r < n; r++) {
        const size_t src = r < job->rows ? r : job->rows - 1;
        if (job->q_dtype == QKV_F32) {
            q[r] = job->row[src].q;
        } else {
            job->q_to_f32(job->head_dim, job->row[src].q, buf + r * job->head_dim);
            q[r] = buf + r * job->head_dim;
        }
    }
}

/* The rows of keys [t0 + kmin, t0 + kmax), fed first. */
static void SIMD_NAME(dot_tile_rows)(const qkv_attn_job *job, SIMD_NAME(att_feed) *w, size_t t0,
                                     size_t kmin, size_t kmax, SIMD_NAME(dot_rows) *rows)
{
    if (job->k_pre) {      /* the planner's rows: nothing of its own */
        for (size_t i = kmin; i < kmax; i++) {
            rows->kpre[i] = job->k_pre[t0 + i - job->kv_begin];
            rows->vpre[i] = job->v_pre[t0 + i - job->kv_begin];
        }
        rows->prefetch = 1;
    } else {
        SIMD_NAME(feed_to)(job, w, t0 + kmin, t0 + kmax, rows->kpre + kmin, rows->vpre + kmin);
        rows->prefetch = w->ahead != 0;
    }
    SIMD_NAME(kv_rows)(&job->k, t0 + kmin, kmax - kmin, rows->k + kmin);
    SIMD_NAME(kv_rows)(&job->v, t0 + kmin, kmax - kmin, rows->v + kmin);
}

/* Whether n V rows (by pointer, stored as t) hold only finite numbers:
   x · 0 + s keeps s = 0 for finite x and turns it NaN for an Inf or NaN. */
static int SIMD_NAME(rows_finite_dt)(const unsigned char *const *rows, size_t n, size_t dv,
                                     qkv_dtype t)
{
    const size_t nfull = dv / VL * VL;
    const vf zero = v_zero();
    vf s0 = zero, s1 = zero;
    for (size_t j = 0; j < n; j++) {
        size_t c = 0;
        for (; c + 2 * VL <= nfull; c += 2 * VL) {
            s0 = v_fmadd(SIMD_NAME(load_dt)(t, rows[j], c), zero, s0);
            s1 = v_fmadd(SIMD_NAME(load_dt)(t, rows[j], c + VL), zero, s1);
        }
        if (c < nfull)
            s0 = v_fmadd(SIMD_NAME(load_dt)(t, rows[j], c), zero, s0);
        if (nfull < dv)
            s1 = v_fmadd(SIMD_NAME(load_dtn)(t, rows[j], nfull, dv - nfull), zero, s1);
    }
    const vf s = v_add(s0, s1);
    return !v_any(v_ne(s, s));
}

/* P·V of a decode tile whose V rows hold an Inf or NaN: row by row, key
   by key, skipping the hidden keys (weight -0.0) exactly as the reference
   does. Rare, so simple. */
static void SIMD_NAME(pv_exact_dt)(const qkv_attn_job *job, const float *p, size_t prs,
                                   const unsigned char *const *vrow, size_t kmin,
                                   const int32_t *lo, const int32_t *hi, const float *alpha)
{
    const size_t dv = job->v_head_dim, nfull = dv / VL * VL;
    const qkv_dtype t = job->v.dtype;
    for (size_t r = 0; r < job->rows; r++) {
        if (lo[r] >= hi[r])
            continue;          /* no key here: max unchanged, alpha 1 */
        float *o = job->row[r].acc;
        if (alpha[r] != 1.0f)
            SIMD_NAME(row_scale)(o, dv, alpha[r]);
        for (size_t j = (size_t)lo[r]; j < (size_t)hi[r]; j++) {
            const float w = p[(j - kmin) * prs + r];
            uint32_t bits;
            memcpy(&bits, &w, sizeof bits);
            if (bits == 0x80000000u)
                continue;      /* hidden key: contributes nothing */
            const vf vw = v_set1(w);
            for (size_t c = 0; c < nfull; c += VL)
                v_store(o + c, v_fmadd(vw, SIMD_NAME(load_dt)(t, vrow[j], c), v_load(o + c)));
            if (nfull < dv) {
                const vm tm = v_tailmask(dv - nfull);
                v_storem(o + nfull, tm,
                         v_fmadd(vw, SIMD_NAME(load_dtn)(t, vrow[j], nfull, dv - nfull),
                                 v_loadm(o + nfull, tm)));
            }
        }
    }
}

/* P·V of a decode tile: every row of the job at once, V read once; the
   finiteness check only where a key can be hidden (plain: none is); how:
   the job's dec_bf16 (DEC_BF16_ROUND: P rounded to bf16 where V is bf16). */
static void SIMD_NAME(pv_dot_tile)(const qkv_attn_job *job, const float *p, size_t prs,
                                   const SIMD_NAME(dot_rows) *rows, size_t kmin, size_t kmax,
                                   const int32_t *lo, const int32_t *hi, const float *alpha,
                                   int plain, int how)
{
    const size_t n = kmax - kmin, dv = job->v_head_dim;
    const unsigned char *const *vrow = rows->v;
    if (!plain && !SIMD_NAME(rows_finite_dt)(vrow + kmin, n, dv, job->v.dtype)) {
        SIMD_NAME(pv_exact_dt)(job, p, prs, vrow, kmin, lo, hi, alpha);
        return;
    }
    int scale = 0;
    for (size_t r = 0; r < job->rows; r++)
        scale |= alpha[r] != 1.0f;
    float *acc[8];
    for (size_t r = 0; r < job->rows; r++)
        acc[r] = job->row[r].acc;
#ifdef SIMD_BF16_DECODE
    if (how == DEC_BF16_ROUND && job->v.dtype == QKV_BF16 && dv % 32 == 0) {
        simd_bf16_pv_rows(job->rows, p, prs, vrow + kmin, n, dv, acc, scale ? alpha : NULL,
                          rows->prefetch ? rows->vpre + kmin : NULL);
        return;
    }
#else
    (void)how;
#endif
    simd_pv_rows(job->rows, p, prs, vrow + kmin, n, dv, job->v.dtype, acc, scale ? alpha : NULL,
                 rows->prefetch ? rows->vpre + kmin : NULL);
}

/* Whether every row sees all of [kmin, kmax) and no mask can hide a key. */
static int SIMD_NAME(tile_plain)(const qkv_attn_job *job, const int32_t *lo, const int32_t *hi,
                                 size_t kmin, size_t kmax, int masked)
{
    if (masked)
        return 0;
    for (size_t r = 0; r < job->rows; r++)
        if ((size_t)lo[r] != kmin || (size_t)hi[r] != kmax)
            return 0;
    return 1;
}

/* The decode forms' R rows of Q as bf16 into the workspace (qb), where
   they multiply in bf16; returns how (dec_bf16: DEC_F32 when a bf16 Q
   holds a subnormal in STRICT mode). */
static int SIMD_NAME(dec_q_bf16)(const qkv_attn_job *job, int R, const float *const *q,
                                 SIMD_NAME(att_ws) *ws, const uint16_t **qb)
{
    const int how = SIMD_NAME(dec_bf16)(job->fpmath, job->q_dtype, job->k.dtype);
#ifdef SIMD_BF16_DECODE
    const size_t d = job->head_dim;
    for (size_t r = 0; r < job->rows && how == DEC_BF16_EXACT; r++)
        if (simd_bf16_subnormal((const uint16_t *)job->row[r].q, d))
            return DEC_F32;
    if (how != DEC_F32)
        simd_bf16_q_rows(R, q, d, (uint16_t *)(void *)SIMD_NAME(ws_take)(
                             ws, (size_t)R * SIMD_BF16_QK_DPAD(d) / 2), qb);
#else
    (void)R, (void)q, (void)ws, (void)qb;
#endif
    return how;
}

/* The decode forms' Q·Kᵀ of n keys (simd_qk_dot's contract), in bf16 where
   `how` says so (DEC_BF16_EXACT: in f32 again if the keys hold a
   subnormal). */
static void SIMD_NAME(dec_qk)(const qkv_attn_job *job, int R, int how, const float *const *q,
                              const uint16_t *const *qb, const unsigned char *const *krow,
                              size_t n, float *out, size_t ors, const unsigned char *const *kpre)
{
#ifdef SIMD_BF16_DECODE
    if (how != DEC_F32 && !simd_bf16_qk_dot(R, job->k.dtype, how == DEC_BF16_EXACT, qb,
                                            job->head_dim, krow, n, job->scale, out, ors, kpre))
        return;
#else
    (void)how, (void)qb;
#endif
    simd_qk_dot(R, job->k.dtype, q, job->head_dim, krow, n, job->scale, out, ors, kpre);
}

/* Lanes Nk + r (N = 1, 2, 4 or 8), for all k, combined over k: their
   max, or (max 0) their sum. */
V_INLINE vf SIMD_NAME(fold)(const int N, const int max, vf x)
{
    if (N == 1)
        return v_set1(max ? v_hmax(x) : v_hsum(x));
    if (N == 2)
        return max ? v_fold2_max(x) : v_fold2_add(x);
#ifdef SIMD_ROWS8
    if (N == 8)
        return max ? v_fold8_max(x) : v_fold8_add(x);
#endif
    return max ? v_fold4_max(x) : v_fold4_add(x);
}

/* Decode: jobs of 1..N rows (N = 1 or 2 for jobs of that many rows: MHA,
   GQA groups of 2; N = 4 for 3 or 4; where the vocabulary folds groups of
   8 lanes (SIMD_ROWS8), N = 8 for 5..8). With one lane per row a vector of
   scores would be mostly idle, so S and P are kept as [key][N] and a
   vector holds VL/N keys × N rows exactly as the dot products leave them:
   exp, max and sum then run on full vectors (a quarter as many exp calls
   for N = 4 on AVX-512). AMD EPYC Zen 5, one thread, d = 128, 32768 keys
   from memory, two builds alternating in one process, both orders: for N
   = 8, 64/8 heads, over the form that kept S as [key][rows rounded up to
   a vector], [key][16]: AVX-512 f32 0.975 of the time, f16 0.973, Q8_0
   0.964, avx512bf16 bf16 0.958; AVX2, where its layout was [key][8] too,
   f32 0.980, f16 0.992. For N = 1 and 2, over S as [key][4] with the rows'
   scores repeated: 8/8 heads AVX-512 f32 0.97, f16 0.96, bf16 0.97, Q8_0
   0.96, Q4_0 0.90, AVX2 0.78-0.90, avx512bf16 in QKV_FPMATH_BF16 (bf16
   K/V) 0.89; 16/8 heads AVX-512 0.96-0.98, AVX2 0.86-0.93, avx512bf16
   BF16 mode 0.94. */
V_INLINE void SIMD_NAME(attention_rows_n)(const qkv_attn_job *job, SIMD_NAME(att_ws) ws,
                                          const int N)
{
    QKV_PHASE_START(ph);
    const size_t rows = job->rows, dv = job->v_head_dim, keys = ATT_BN + VL;
    const float cap = job->softcap;
    _Alignas(64) float slope_l[VL_MAX], alpha_l[VL_MAX], out_l[VL_MAX];
    _Alignas(64) int32_t lo_l[VL_MAX], hi_l[VL_MAX], dist_l[VL_MAX];
    int32_t lo[8], hi[8];
    SIMD_NAME(dot_rows) kv;
    int any_slope = 0, any_mask = 0;
    for (size_t r = 0; r < rows; r++) {
        any_slope |= job->row[r].slope != 0.0f;
        any_mask |= job->row[r].mask != NULL;
    }
    float *st = SIMD_NAME(ws_take)(&ws, keys * (size_t)N);
    float *mt = any_mask ? SIMD_NAME(ws_take)(&ws, keys * (size_t)N) : NULL;
    float *qbuf = job->q_dtype != QKV_F32 ? SIMD_NAME(ws_take)(&ws, (size_t)N * job->head_dim)
                                          : NULL;
    const float *q[8];
    SIMD_NAME(q_rows_f32)(job, (size_t)N, qbuf, q);
    const uint16_t *qb[8];
    const int how = SIMD_NAME(dec_q_bf16)(job, N, q, &ws, qb);
    for (size_t l = 0; l < (size_t)VL; l++) {
        const size_t r = l % (size_t)N;
        slope_l[l] = r < rows ? job->row[r].slope : 0.0f;
        dist_l[l] = 0;
    }
    if (mt)   /* lanes past the rows or past a tile's keys: hidden, but defined */
        memset(mt, 0, keys * (size_t)N * sizeof *mt);
    const vf vzero = v_zero(), ninf = v_set1(-INFINITY), one = v_set1(1.0f);
    const vf nzero = v_set1(-0.0f), vcap = v_set1(cap), vslope = v_load(slope_l);
    for (size_t l = 0; l < (size_t)VL; l++) {   /* the rows' state, repeated */
        const size_t r = l % (size_t)N;
        out_l[l] = job->resume && r < rows ? job->row[r].max : -INFINITY;
        alpha_l[l] = job->resume && r < rows ? job->row[r].sum : 0.0f;
    }
    for (size_t r = 0; r < rows && !job->resume; r++)
        memset(job->row[r].acc, 0, dv * sizeof(float));
    vf m_rep = v_load(out_l), l_rep = v_load(alpha_l);
    SIMD_NAME(att_feed) feed = SIMD_NAME(feed_start)(job, SIMD_NAME(feed_lanes)((size_t)N));
    QKV_PHASE_MARK(ph, QKV_PHASE_JOB);

    for (size_t t0 = job->kv_begin; t0 < job->kv_end;) {
        const size_t n = job->kv_end - t0 < ATT_BN ? job->kv_end - t0 : ATT_BN;
        for (size_t r = 0; r < (size_t)N; r++) {
            lo[r] = hi[r] = 0;
            if (r < rows)
                SIMD_NAME(tile_range)(&job->row[r], t0, n, &lo[r], &hi[r]);
        }
        size_t kmin, kmax;
        if (!qkv_rows_key_span(lo, hi, 0, (size_t)N, 0, n, &kmin, &kmax)) {
            t0 += n;
            continue;
        }
        /* Lane Nk + r is row r at key j0 + k of the vector that starts at
           key j0: its range [lo, hi) is shifted by k, and so on. */
        for (size_t l = 0; l < (size_t)VL; l++) {
            const size_t r = l % (size_t)N, k = l / (size_t)N;
            lo_l[l] = lo[r] - (int32_t)k;
            hi_l[l] = hi[r] - (int32_t)k;
            if (any_slope && r < rows)
                dist_l[l] = (int32_t)((ptrdiff_t)(t0 + k) - job->row[r].pos);
        }

        QKV_PHASE_MARK(ph, QKV_PHASE_TILE);
        SIMD_NAME(dot_tile_rows)(job, &feed, t0, kmin, kmax, &kv);
        QKV_PHASE_MARK(ph, QKV_PHASE_FEED);
        SIMD_NAME(dec_qk)(job, N, how, q, qb, kv.k + kmin,
                          kmax - kmin, st + kmin * (size_t)N, (size_t)N,
                          kv.prefetch ? kv.kpre + kmin : NULL);
        QKV_PHASE_MARK(ph, QKV_PHASE_QK);
        if (mt) {
            SIMD_NAME(mask_tile)(job, t0, kmin, kmax, (size_t)N, mt);
            QKV_PHASE_MARK(ph, QKV_PHASE_TILE);
        }

        vf tmax = ninf;
        for (size_t j0 = kmin; j0 < kmax; j0 += (size_t)(VL / N)) {
            float *sp = st + j0 * (size_t)N;
            vf x = v_load(sp);
            if (cap > 0.0f)
                x = v_mul(vcap, v_tanh(v_div(x, vcap)));
            if (any_slope)
                x = v_add(x, v_mul(vslope, v_i32_to_f(dist_l, (int32_t)j0)));
            /* Also hides the keys past kmax of the last vector. */
            const vm act = v_in_range(lo_l, hi_l, (int32_t)j0);
            if (mt)
                x = v_add(x, v_load(mt + j0 * (size_t)N));
            x = v_sel(act, ninf, x);
            v_store(sp, x);
            tmax = v_max(x, tmax);
        }
        const vf m_new = v_max(SIMD_NAME(fold)(N, 1, tmax), m_rep);
        const vm grown = v_gt(m_new, m_rep);
        vf a = one;
        if (v_any(grown))
            a = v_sel(grown, one, v_exp(v_sub(m_rep, m_new)));
        /* A row that so far saw only -INFINITY subtracts 0, so its
           -INFINITY scores give exp(-inf) = 0 and not exp(NaN). */
        const vf msub = v_sel(v_eq(m_new, ninf), m_new, vzero);
        vf sum = vzero;
        for (size_t j0 = kmin; j0 < kmax; j0 += (size_t)(VL / N)) {
            float *sp = st + j0 * (size_t)N;
            const vf x = v_load(sp);
            const vf e = v_sel(v_eq(x, ninf), v_exp(v_sub(x, msub)), nzero);
            v_store(sp, e);
            sum = v_add(sum, e);
        }
        l_rep = v_add(v_mul(l_rep, a), SIMD_NAME(fold)(N, 0, sum));
        m_rep = m_new;
        v_store(alpha_l, a);
        QKV_PHASE_MARK(ph, QKV_PHASE_SOFTMAX);

        SIMD_NAME(pv_dot_tile)(job, st + kmin * (size_t)N, (size_t)N, &kv, kmin, kmax, lo, hi, alpha_l,
                               SIMD_NAME(tile_plain)(job, lo, hi, kmin, kmax, mt != NULL), how);
        QKV_PHASE_MARK(ph, QKV_PHASE_PV);
        t0 += n;
    }
    QKV_PHASE_END(ph);

    v_store(out_l, m_rep);
    v_store(alpha_l, l_rep);
    for (size_t r = 0; r < rows; r++) {
        job->row[r].max = out_l[r];
        job->row[r].sum = alpha_l[r];
    }
}

/* Out of line, so that their locals (3.5 KiB on AVX-512) are not also in
   the general job's frame, nor in each other's (clang gave one function
   holding N = 1, 2 and 4 the three frames' sum). A ROWS4 job of 1 or 2
   rows keeps S as [key][rows]. */
#define ATT_ROWS_N(N_)                                                                     \
    static __attribute__((noinline)) void SIMD_NAME(attention_rows##N_)(                    \
        const qkv_attn_job *job, SIMD_NAME(att_ws) ws)                                      \
    {                                                                                       \
        SIMD_NAME(attention_rows_n)(job, ws, N_);                                           \
    }
ATT_ROWS_N(1)
ATT_ROWS_N(2)
ATT_ROWS_N(4)
#ifdef SIMD_ROWS8
ATT_ROWS_N(8)
#endif
#undef ATT_ROWS_N

/* ---- the general job ---------------------------------------------------------- */

/* The GEMM form. Out of line, so that its frame (5.5 KiB on AVX-512) is
   not under ROWS4's: whether gcc made that call a tail call from the
   shared frame changed with unrelated edits (tests/stack). */
static __attribute__((noinline)) void SIMD_NAME(attention_gemm)(const qkv_attn_job *job)
{
    const int form = ATT_GEMM;
    QKV_PHASE_START(ph);
    SIMD_NAME(att_ws) ws = {job->ws, job->ws_floats};
    const size_t rows = job->rows, d = job->head_dim, dv = job->v_head_dim;
    const size_t rp = SIMD_NAME(att_rp)(form, rows), rv_count = rp / VL;
    const float scale = job->scale, cap = job->softcap;

    /* Per-row state, one lane per row, padded to whole vectors. */
    _Alignas(64) float m_run[ATT_LANES], l_run[ATT_LANES], alpha[ATT_LANES], slope[ATT_LANES];
    _Alignas(64) float tmax_of[ATT_LANES];
    _Alignas(64) int32_t lo[ATT_LANES], hi[ATT_LANES], dist0[ATT_LANES];
    int any_slope = 0, any_mask = 0;
    for (size_t r = 0; r < rp; r++) {
        m_run[r] = job->resume && r < rows ? job->row[r].max : -INFINITY;
        l_run[r] = job->resume && r < rows ? job->row[r].sum : 0.0f;
        slope[r] = r < rows ? job->row[r].slope : 0.0f;
        lo[r] = hi[r] = dist0[r] = 0;
        any_slope |= slope[r] != 0.0f;
        any_mask |= r < rows && job->row[r].mask != NULL;
    }
    for (size_t r = 0; r < rows && !job->resume; r++)
        memset(job->row[r].acc, 0, dv * sizeof(float));

    /* GEMM tiles of fewer keys where S, the mask tile and one 32-column
       chunk of Qᵀ (plus a little for conversions) would not fit: only where
       a vector holds 64 rows (SVE at 2048 bits, whose rp is 64 for any job)
       and a mask doubles S. Splits stay aligned: they are whole ATT_BN. */
    size_t keys = SIMD_NAME(att_keys)(form);
    while (keys > 8 && ATT_ALIGN(keys * rp) * (any_mask ? 2 : 1) + ATT_ALIGN(rp * 32) +
                           ATT_ALIGN(2 * 32) > ws.left)
        keys /= 2;
    const size_t tile = keys;

    float *st = SIMD_NAME(ws_take)(&ws, keys * rp);        /* S, then P, as [key][row] */
    float *mt = any_mask ? SIMD_NAME(ws_take)(&ws, keys * rp) : NULL;   /* the mask, as st */
    float *qt = NULL;
    size_t dc = d;
    int qt_lazy = 0;   /* Qᵀ as f32 only for tiles the bf16 path gives back */
#ifdef SIMD_BF16
    simd_bf16 b16 = {.qk = 0, .pv = 0};
#endif
#ifdef SIMD_BF16
    /* The bf16 tiles' buffers first: what is left serves the f32 path. */
    if (SIMD_NAME(att_rows_form)(job->rows) == ATT_GEMM)
        SIMD_NAME(ws_take)(&ws, simd_bf16_begin(&b16, job, rp, ws.p, ws.left));
    qt_lazy = b16.qk;
#endif
    /* Qᵀ in chunks of dc along head_dim so that it fits the workspace
       (for the usual shapes it is packed once per job), leaving room
       for at least one converted K row and 64 V columns when they are
       not f32. */
    size_t keep = job->k.dtype != QKV_F32 ? d : 0;
    const size_t vkeep = dv < 64 ? dv : 64;   /* pv_tile's narrowest chunk */
    keep = job->v.dtype != QKV_F32 && keep < vkeep ? vkeep : keep;
    if (qt_lazy) {          /* a small chunk: the rest is for V's conversions */
        dc = d < 32 ? d : 32;
    } else if (ATT_ALIGN(rp * d) + ATT_ALIGN(keep) > ws.left) {
        keep = job->k.dtype != QKV_F32 ? ws.left / 2 : keep;
        /* whole Q8_0/Q4_0 blocks; the planner leaves room for 32 */
        dc = (ws.left - ATT_ALIGN(keep)) / rp / 32 * 32;
        if (dc < 32)   /* 32 columns fit (keys above), the rest converts */
            dc = 32;
        dc = SIMD_NAME(qt_cols)(d, dc);
    }
    qt = SIMD_NAME(ws_take)(&ws, rp * dc);
    if (dc == d && !qt_lazy)
        SIMD_NAME(pack_qt)(qt, rp, job, 0, d);
    if (mt)                /* lanes past the rows: defined, and inactive */
        memset(mt, 0, keys * rp * sizeof *mt);
    float *conv = ws.p;

    const vf ninf = v_set1(-INFINITY), one = v_set1(1.0f), nzero = v_set1(-0.0f), vzero = v_zero();
    const vf vcap = v_set1(cap);
    float *crow[GEMM_MR];

#ifdef SIMD_BF16
    const size_t kv_bytes = (job->kv_end - job->kv_begin) * (qkv_dtype_bytes(job->k.dtype, d) +
                                                             qkv_dtype_bytes(job->v.dtype, dv));
    const int fetch_v = !SIMD_NAME(att_l2) || kv_bytes > SIMD_NAME(att_l2) / 2;
#endif
    QKV_PHASE_MARK(ph, QKV_PHASE_JOB);
    for (size_t t0 = job->kv_begin; t0 < job->kv_end;) {
        size_t n = job->kv_end - t0 < tile ? job->kv_end - t0 : tile;
        /* Each row's keys within this tile, as [lo, hi) relative to t0. */
        for (size_t r = 0; r < rows; r++)
            SIMD_NAME(tile_range)(&job->row[r], t0, n, &lo[r], &hi[r]);
        size_t kmin, kmax;
        if (!qkv_rows_key_span(lo, hi, 0, rows, 0, n, &kmin, &kmax)) {
            t0 += n;
            continue;          /* no row sees a key of this tile */
        }
        if (any_slope)
            for (size_t r = 0; r < rows; r++)
                dist0[r] = (int32_t)((ptrdiff_t)t0 - job->row[r].pos);
        if (mt)
            SIMD_NAME(mask_tile)(job, t0, kmin, kmax, rp, mt);

        /* A plain tile: every row sees all of [kmin, kmax) and no score
           modifier is on, so S needs no second look before its max, and
           the microkernel takes the max while S is still in registers. */
        int plain = cap <= 0.0f && !any_slope && !any_mask;
        for (size_t r = 0; r < rows && plain; r++)
            plain = (size_t)lo[r] == kmin && (size_t)hi[r] == kmax;
        for (size_t r = 0; r < rp; r++)
            tmax_of[r] = -INFINITY;
        QKV_PHASE_MARK(ph, QKV_PHASE_TILE);

#ifdef SIMD_BF16
        /* The tile's V rows, asked for into L2 now so that they are there
           when the bf16 P·V packs them: from L3 its loads stalled (Zen 5,
           1 MiB L2, BF16 mode, 8 heads, n = 2048, d = 128: 2% of the time;
           the f32 microkernel, which reads V in place, lost 2% to it).
           Only where the job's K and V would not stay in half of L2 from
           one job to the next: where they do, as on a 2 MiB L2 at that
           shape, the prefetches ask for lines L2 already has. Without them
           there (Emerald Rapids class Xeon, paired): amx 0.89 of the time
           (measured with a variant of its P·V since dropped), avx512bf16
           0.98. */
        if (b16.pv && fetch_v)
            SIMD_NAME(fetch_keys)(&job->v, t0 + kmin, t0 + kmax,
                                  qkv_dtype_bytes(job->v.dtype, dv), FETCH_L2);
#endif

        /* S[j][·] = scale · K_j · Qᵀ for the keys [kmin, kmax) some row sees.
           Where a GEMM tile's time goes (Zen 5, one thread, AVX-512 f32, 8
           heads, n = 2048, d = 64, timers around each phase): Q·Kᵀ 43%, the
           softmax pass 10%, P·V 47%; the two products at 76% and 69% of the
           FMA peak, where the same sequence of microkernel calls on
           operands in L1 runs at 95%. The rest is the tile's K and V (32
           KiB at d = 64) coming into L1 from L2: at n = 256, where every
           head's K and V stay in L2, a tile costs as much. Prefetching the
           next panel's K rows, or the tile's V rows, into L1 as Q·Kᵀ goes
           took 1.02-1.07 of the time (fastest of 10 alternating runs); 64
           query rows a job (each K/V tile serving twice the rows) 0.95 at
           d = 64, 1.02 causal, 0.99 on AVX2: not kept. At d = 128 (same
           case, rdtsc around the phases): with every tile's K and V the
           same 64 keys, so in cache, 79% of the peak, Q·Kᵀ 45% of the
           time, P·V 47%, the softmax pass 5.7%, the tile's set-up 1.7%;
           from memory 73%. The same microkernel calls in a harness, K
           and V from L1 to L3 alike: Q·Kᵀ 93-95%, P·V 87-90% (80% with
           V's rows 16 bytes off a line); 128-key tiles, or P·V's column
           panels outermost so V stays in L1: 0.98-0.99 of the time. */
        QKV_PHASE_MARK(ph, QKV_PHASE_FEED);   /* the bf16 P·V's V asked for into L2 */
        int qk_done = 0;
#ifdef SIMD_BF16
        if (b16.qk)
            qk_done = simd_bf16_qk(&b16, job, t0, n, kmin, kmax, st, rp, plain ? tmax_of : NULL);
#endif
        for (size_t pc = 0; pc < d && !qk_done; pc += dc) {
            const size_t kc = d - pc < dc ? d - pc : dc;
            if (dc != d || qt_lazy)
                SIMD_NAME(pack_qt)(qt, rp, job, pc, kc);
            const float post = pc + kc >= d ? scale : 1.0f;
            size_t ch = kmax - kmin;
            if (job->k.dtype != QKV_F32) {
                ch = ws.left / kc;
                ch = ch < kmax - kmin ? ch : kmax - kmin;
                ch = ch >= GEMM_MR ? ch / GEMM_MR * GEMM_MR : ch;
            }
            for (size_t k0 = kmin, k1; k0 < kmax; k0 = k1) {
                k1 = k0 + (kmax - k0 < ch ? kmax - k0 : ch);   /* at most ch keys */
                const unsigned char *kr[ATT_BN];   /* a GEMM tile has at most ATT_BN keys */
                const size_t koff =
                    SIMD_NAME(k_rows_f32)(&job->k, t0 + k0, k1 - k0, pc, kc, conv, kr);
                for (size_t j0 = k0, mr; j0 < k1; j0 += mr) {
                    mr = SIMD_NAME(panel_rows)(k1 - j0);
                    for (size_t i = 0; i < mr; i++)
                        crow[i] = st + (j0 + i) * rp;
                    for (size_t v0 = 0; v0 < rp; v0 += GEMM_NR) {
                        const size_t nc = rp - v0 < GEMM_NR ? rp - v0 : GEMM_NR;
                        simd_gemm_inline((int)mr, nc, kc, NULL, kr + (j0 - k0), koff, 1, qt + v0, rp, crow,
                                  v0, pc > 0, NULL, post,
                                  plain && pc + kc >= d ? tmax_of + v0 : NULL);
                    }
                }
            }
        }

        QKV_PHASE_MARK(ph, QKV_PHASE_QK);

        /* Score modifiers, the rows' key ranges, the online max; then
           P = exp(S - max) in place and its row sums. */
        for (size_t rv = 0; rv < rv_count; rv++) {
            const size_t l0 = rv * VL;
            const vf vslope = v_load(slope + l0);
            vf tmax = v_load(tmax_of + l0);
            for (size_t jj = kmin; jj < kmax && !plain; jj++) {
                float *sp = st + jj * rp + l0;
                vf x = v_load(sp);
                if (cap > 0.0f)
                    x = v_mul(vcap, v_tanh(v_div(x, vcap)));
                if (any_slope)
                    x = v_add(x, v_mul(vslope, v_i32_to_f(dist0 + l0, (int32_t)jj)));
                const vm act = v_in_range(lo + l0, hi + l0, (int32_t)jj);
                if (mt)
                    x = v_add(x, v_load(mt + jj * rp + l0));
                /* Keys a row does not see are -INFINITY: weight 0 below. */
                x = v_sel(act, ninf, x);
                v_store(sp, x);
                tmax = v_max(x, tmax);
            }
            const vf m_old = v_load(m_run + l0);
            const vf m_new = v_max(tmax, m_old);
            const vm grown = v_gt(m_new, m_old);
            vf a = one;
            /* exp(-inf - m) = 0 for a row's first keys: acc is zero. */
            if (v_any(grown))
                a = v_sel(grown, one, v_exp(v_sub(m_old, m_new)));
            /* A row that so far saw only -INFINITY subtracts 0, so its
               -INFINITY scores give exp(-inf) = 0 and not exp(NaN). */
            const vf msub = v_sel(v_eq(m_new, ninf), m_new, vzero);
            vf sum0 = vzero, sum1 = vzero;
            size_t jj = kmin;
            /* A hidden key (-INFINITY) gets the weight -0.0, which exp()
               never returns: it adds nothing, and pv_exact can tell it
               from a weight that underflowed to +0.0. */
#ifdef simd_bf16_exp_p
            if (plain && b16.pv) {   /* nothing hidden, and P goes to bf16 */
                sum0 = simd_bf16_exp_p(&b16, st, rp, l0, kmin, kmax, msub);
                jj = kmax;
            } else
#endif
            if (plain) {       /* nothing hidden: no marks to make */
                for (; jj + 1 < kmax; jj += 2) {
                    float *sp = st + jj * rp + l0;
                    const vf e0 = v_exp(v_sub(v_load(sp), msub));
                    const vf e1 = v_exp(v_sub(v_load(sp + rp), msub));
                    v_store(sp, e0);
                    v_store(sp + rp, e1);
                    sum0 = v_add(sum0, e0);
                    sum1 = v_add(sum1, e1);
                }
            } else {
                for (; jj + 1 < kmax; jj += 2) {
                    float *sp = st + jj * rp + l0;
                    const vf x0 = v_load(sp), x1 = v_load(sp + rp);
                    const vf e0 = v_sel(v_eq(x0, ninf), v_exp(v_sub(x0, msub)), nzero);
                    const vf e1 = v_sel(v_eq(x1, ninf), v_exp(v_sub(x1, msub)), nzero);
                    v_store(sp, e0);
                    v_store(sp + rp, e1);
                    sum0 = v_add(sum0, e0);
                    sum1 = v_add(sum1, e1);
                }
            }
            if (jj < kmax) {
                float *sp = st + jj * rp + l0;
                const vf x0 = v_load(sp);
                const vf e0 = v_sel(v_eq(x0, ninf), v_exp(v_sub(x0, msub)), nzero);
                v_store(sp, e0);
                sum0 = v_add(sum0, e0);
            }
            v_store(m_run + l0, m_new);
            v_store(l_run + l0, v_add(v_mul(v_load(l_run + l0), a), v_add(sum0, sum1)));
            v_store(alpha + l0, a);
        }
        QKV_PHASE_MARK(ph, QKV_PHASE_SOFTMAX);

#ifdef SIMD_BF16
        if (b16.pv && simd_bf16_pv(&b16, job, t0, kmin, kmax, st, rp, lo, hi, alpha, plain))
            ;
        else
#endif
            SIMD_NAME(pv_tile)(job, t0, kmin, kmax, st, rp, lo, hi, alpha, plain, conv, ws.left);
        QKV_PHASE_MARK(ph, QKV_PHASE_PV);
        t0 += n;
    }
    QKV_PHASE_END(ph);
#ifdef SIMD_BF16
    simd_bf16_end(&b16);
#endif

    for (size_t r = 0; r < rows; r++) {
        job->row[r].max = m_run[r];
        job->row[r].sum = l_run[r];
    }
}

static void SIMD_NAME(attention)(const qkv_attn_job *job)
{
    const qkv_attn_shape shape = SIMD_NAME(shape_of)(job);
    const int form = SIMD_NAME(att_form)(job->rows, &shape, job->ws_floats);
    const SIMD_NAME(att_ws) ws = {job->ws, job->ws_floats};
    if (form == ATT_ROWS4) {
        (job->rows == 1   ? SIMD_NAME(attention_rows1)
         : job->rows == 2 ? SIMD_NAME(attention_rows2)
                          : SIMD_NAME(attention_rows4))(job, ws);
#ifdef SIMD_ROWS8
    } else if (form == ATT_ROWS8) {
        SIMD_NAME(attention_rows8)(job, ws);
#endif
    } else {
        SIMD_NAME(attention_gemm)(job);
    }
}

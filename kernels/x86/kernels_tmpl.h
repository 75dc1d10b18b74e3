/*
 * The four kernels of kernels.h written once for any x86 vector width, in
 * the style of SLEEF's helper headers: the including file (avx2.c,
 * avx512.c) defines the vocabulary, then includes this file once.
 *
 * The includer provides
 *   VL                       lanes per vector (8 or 16)
 *   vf, vm                   a vector of floats, a lane mask
 *   X86_ISA_SUFFIX           _avx2, _avx512: ends every function name
 *   GEMM_MR, GEMM_NV         the microkernel's tile: MR rows × NV vectors
 *   GEMM_TILE                the tile as it reads in names, e.g. 6x64
 *   SCORES_KC, WSUM_KC       depth of the cache blocks (see there)
 *   v_zero v_set1 v_load v_store v_tailmask v_loadm v_loadm_or v_storem
 *   v_add v_sub v_mul v_div v_fmadd v_max v_gt v_eq v_ne v_or v_sel v_bits
 *   v_hmax v_hsum v_hsum_lanes v_fold4_max v_fold4_add v_exp v_tanh
 *   v_in_range v_transpose v_i32_to_f
 *
 * One microkernel does all the multiplying (BLIS style):
 *     C[i][·] := post · (pre_i · C[i][·] + Σ_p A[i][p] · B[p][·])
 * for i < mr <= GEMM_MR rows and nv <= GEMM_NV vectors of columns. A is
 * addressed through two strides (so it can be Q, P or the transposed P of
 * the fused kernel), B is row-major (a packed panel or V itself), C is one
 * pointer per row (so it can be the fused kernel's scattered output rows).
 * Each element of A is broadcast, each row of B is loaded once per step.
 */
#ifndef X86_KERNELS_TMPL_H
#define X86_KERNELS_TMPL_H
#else
#error "kernels_tmpl.h is included once per ISA translation unit"
#endif

#include <stdint.h>
#include <string.h>

#define X86_CAT_(a, b, c) a##b##c
#define X86_CAT(a, b, c) X86_CAT_(a, b, c)
#define X86_NAME(f) X86_CAT(f, X86_ISA_SUFFIX, )

#define gemm_ukr X86_CAT(gemm_f32_, GEMM_TILE, X86_ISA_SUFFIX)
#define gemm_any X86_NAME(gemm_f32_any)
#define pack_kt X86_NAME(pack_kt_f32)
#define pack_qt X86_NAME(pack_qt_f32)
#define scores_f32 X86_NAME(scores_f32)
#define softmax_f32 X86_NAME(softmax_f32)
#define weighted_sum_f32 X86_NAME(weighted_sum_f32)
#define attention_f32 X86_NAME(attention_f32)

#define GEMM_NR (GEMM_NV * VL)

/* Loops over a microkernel's rows and vectors must unroll completely so
   its accumulators become registers; clang needs its own spelling for it
   (without it the tile lives in memory, 4x slower). */
#if defined(__clang__)
#define X86_UNROLL _Pragma("clang loop unroll(full)")
#else
#define X86_UNROLL _Pragma("GCC unroll 8")
#endif
#define X86_ALIGN _Alignas(64)

/* ---- the microkernel ------------------------------------------------------ */

/* mr, nv and tail are compile-time constants at every call (see gemm_any),
   so the loops over them unroll and acc[][] lives in registers. With tail,
   the last vector of B and C is accessed through mask lm only, so a row of
   V or of the output may end exactly at its last element. */
V_INLINE void gemm_ukr(const int mr, const int nv, const int tail, size_t k,
                       const float *a, size_t rsa, size_t csa,
                       const float *b, size_t ldb,
                       float *const *c, size_t coff, vm lm,
                       int load_c, const float *pre, float post, vf *cmax)
{
    vf acc[GEMM_MR][GEMM_NV];
    const float *ar[GEMM_MR];
X86_UNROLL
    for (int i = 0; i < mr; i++) {
        ar[i] = a + (size_t)i * rsa;
X86_UNROLL
        for (int v = 0; v < nv; v++)
            acc[i][v] = v_zero();
    }
    for (size_t p = 0, ap = 0; p < k; p++, ap += csa, b += ldb) {
        vf bv[GEMM_NV];
X86_UNROLL
        for (int v = 0; v < nv; v++)
            bv[v] = (tail && v == nv - 1) ? v_loadm(b + v * VL, lm) : v_load(b + v * VL);
X86_UNROLL
        for (int i = 0; i < mr; i++) {
            const vf ai = v_set1(ar[i][ap]);
X86_UNROLL
            for (int v = 0; v < nv; v++)
                acc[i][v] = v_fmadd(ai, bv[v], acc[i][v]);
        }
    }
    const vf vpost = v_set1(post);
X86_UNROLL
    for (int i = 0; i < mr; i++) {
        float *cr = c[i] + coff;
        const vf vpre = pre ? v_set1(pre[i]) : v_zero();
X86_UNROLL
        for (int v = 0; v < nv; v++) {
            const int masked = tail && v == nv - 1;
            vf x = acc[i][v];
            if (load_c) {
                vf old = masked ? v_loadm(cr + v * VL, lm) : v_load(cr + v * VL);
                if (pre)
                    old = v_mul(old, vpre);
                x = v_add(old, x);
            }
            x = v_mul(x, vpost);
            if (cmax)
                cmax[v] = v_max(x, cmax[v]);
            if (masked)
                v_storem(cr + v * VL, lm, x);
            else
                v_store(cr + v * VL, x);
        }
    }
}

/* The microkernel for any 1 <= mr <= GEMM_MR, 1 <= nv <= GEMM_NV: one
   specialised copy per shape, so edge tiles run the same register code with
   fewer rows or vectors instead of a scalar loop. */
static void gemm_any(int mr, int nv, int tail, size_t k,
                     const float *a, size_t rsa, size_t csa, const float *b, size_t ldb,
                     float *const *c, size_t coff, vm lm, int load_c, const float *pre,
                     float post, vf *cmax)
{
#define GEMM_CALL(MR_, NV_)                                                               \
    do {                                                                                  \
        if (tail)                                                                         \
            gemm_ukr(MR_, NV_, 1, k, a, rsa, csa, b, ldb, c, coff, lm, load_c, pre, post, cmax); \
        else                                                                              \
            gemm_ukr(MR_, NV_, 0, k, a, rsa, csa, b, ldb, c, coff, lm, load_c, pre, post, cmax); \
    } while (0)
#if GEMM_NV == 2
#define GEMM_ROW(MR_)                                \
    case MR_:                                        \
        if (nv == 1) GEMM_CALL(MR_, 1);              \
        else GEMM_CALL(MR_, 2);                      \
        break
#elif GEMM_NV == 4
#define GEMM_ROW(MR_)                                \
    case MR_:                                        \
        if (nv == 1) GEMM_CALL(MR_, 1);              \
        else if (nv == 2) GEMM_CALL(MR_, 2);         \
        else if (nv == 3) GEMM_CALL(MR_, 3);         \
        else GEMM_CALL(MR_, 4);                      \
        break
#else
#error "GEMM_NV must be 2 or 4"
#endif
#if GEMM_MR != 6
#error "gemm_any is written for GEMM_MR == 6"
#endif
    switch (mr) {
        GEMM_ROW(1);
        GEMM_ROW(2);
        GEMM_ROW(3);
        GEMM_ROW(4);
        GEMM_ROW(5);
    default:
        GEMM_ROW(6);
    }
#undef GEMM_ROW
#undef GEMM_CALL
}

/* Columns [c0, c0 + nc) of a block: how many vectors, whether the last one
   is partial, and its mask. */
typedef struct X86_NAME(colblock) {
    int nv, tail;
    vm lm;
} X86_NAME(colblock);

V_INLINE X86_NAME(colblock) X86_NAME(cols)(size_t nc)
{
    X86_NAME(colblock) cb;
    cb.nv = (int)((nc + VL - 1) / VL);
    cb.tail = nc % VL != 0;
    cb.lm = v_tailmask(nc - (size_t)(cb.nv - 1) * VL);
    return cb;
}

/* ---- Q·Kᵀ ------------------------------------------------------------------ */

/* kt[p][j] = k[j][p] for j < nc, p < kc, zero for nc <= j < w: Kᵀ as the
   microkernel's B, so one key panel is one contiguous stream per step.
   Transposed in VL × VL blocks in registers; w is a multiple of VL. */
static void pack_kt(float *kt, size_t w, const float *k, size_t ldk, size_t nc, size_t kc)
{
    for (size_t p0 = 0; p0 < kc; p0 += VL) {
        const size_t np = kc - p0 < VL ? kc - p0 : VL;
        const vm pm = v_tailmask(np);
        for (size_t j0 = 0; j0 < w; j0 += VL) {
            vf x[VL];
            for (size_t i = 0; i < VL; i++) {
                const float *kr = k + (j0 + i) * ldk + p0;
                x[i] = j0 + i >= nc ? v_zero() : np == VL ? v_load(kr) : v_loadm(kr, pm);
            }
            v_transpose(x);
            for (size_t pp = 0; pp < np; pp++)
                v_store(kt + (p0 + pp) * w + j0, x[pp]);
        }
    }
}

/* Each panel of Kᵀ (SCORES_KC × GEMM_NR, in L1) is packed once and then
   serves every row of Q. Q is the microkernel's broadcast side: GEMM_MR
   floats per step of GEMM_MR × GEMM_NV FMAs, little enough to come from L2
   or L3, so Q needs no cache block of its own. */
static void scores_f32(size_t m, size_t n, size_t d, float scale,
                       const float *q, size_t ldq, const float *k, size_t ldk,
                       float *s, size_t lds)
{
    X86_ALIGN float kt[SCORES_KC * GEMM_NR];
    float *crow[GEMM_MR];
    for (size_t jc = 0; jc < n; jc += GEMM_NR) {
        const size_t nc = n - jc < GEMM_NR ? n - jc : GEMM_NR;
        const X86_NAME(colblock) cb = X86_NAME(cols)(nc);
        const size_t w = (size_t)cb.nv * VL;
        for (size_t pc = 0; pc < d; pc += SCORES_KC) {
            const size_t kc = d - pc < SCORES_KC ? d - pc : SCORES_KC;
            /* The scale is applied once, to the finished dot product, as
               the scalar reference does. */
            const float post = pc + kc >= d ? scale : 1.0f;
            pack_kt(kt, w, k + jc * ldk + pc, ldk, nc, kc);
            for (size_t ic = 0; ic < m; ic += GEMM_MR) {
                const int mr = (int)(m - ic < GEMM_MR ? m - ic : GEMM_MR);
                for (int i = 0; i < mr; i++)
                    crow[i] = s + (ic + (size_t)i) * lds + jc;
                /* kt is padded with zeros to w columns: only the store of
                   the last vector needs the mask. */
                gemm_any(mr, cb.nv, cb.tail, kc, q + ic * ldq + pc, ldq, 1, kt, w, crow, 0,
                         cb.lm, pc > 0, NULL, post, NULL);
            }
        }
    }
}

/* ---- softmax ----------------------------------------------------------- */

/* Three sweeps over the row (max; exp, store and sum; scale), each with a
   masked tail. A fused max-and-sum sweep would cost a second exp per entry,
   which is dearer than re-reading a row that is still in L1/L2. */
static void softmax_f32(size_t m, size_t n, float *s, size_t lds)
{
    const size_t nfull = n / VL * VL, rem = n - nfull;
    const vm tm = v_tailmask(rem ? rem : VL);
    const vf ninf = v_set1(-INFINITY);
    for (size_t i = 0; i < m; i++) {
        float *row = s + i * lds;
        vf mx0 = ninf, mx1 = ninf;    /* two chains hide the max latency */
        size_t j = 0;
        for (; j + 2 * VL <= nfull; j += 2 * VL) {
            mx0 = v_max(v_load(row + j), mx0);
            mx1 = v_max(v_load(row + j + VL), mx1);
        }
        for (; j < nfull; j += VL)
            mx0 = v_max(v_load(row + j), mx0);
        if (rem)
            mx1 = v_max(v_loadm_or(row + nfull, tm, ninf), mx1);
        const float max = v_hmax(v_max(mx0, mx1));
        if (max == -INFINITY) {
            /* NaNs are never the max. A row of nothing but -INFINITY has
               no weights: zeros rather than 0/0. A row of NaNs and
               -INFINITY is NaN throughout, as the reference's exp(NaN) sum
               makes it. */
            vm nan = v_ne(ninf, ninf);
            for (j = 0; j < nfull; j += VL)
                nan = v_or(nan, v_ne(v_load(row + j), ninf));
            if (rem)
                nan = v_or(nan, v_ne(v_loadm_or(row + nfull, tm, ninf), ninf));
            const vf fill = v_bits(nan) ? v_set1(NAN) : v_zero();
            for (j = 0; j < nfull; j += VL)
                v_store(row + j, fill);
            if (rem)
                v_storem(row + nfull, tm, fill);
            continue;
        }
        const vf vmax = v_set1(max);
        vf sum0 = v_zero(), sum1 = v_zero();
        for (j = 0; j + 2 * VL <= nfull; j += 2 * VL) {
            const vf e0 = v_exp(v_sub(v_load(row + j), vmax));
            const vf e1 = v_exp(v_sub(v_load(row + j + VL), vmax));
            v_store(row + j, e0);
            v_store(row + j + VL, e1);
            sum0 = v_add(sum0, e0);
            sum1 = v_add(sum1, e1);
        }
        for (; j < nfull; j += VL) {
            const vf e = v_exp(v_sub(v_load(row + j), vmax));
            v_store(row + j, e);
            sum0 = v_add(sum0, e);
        }
        if (rem) {
            /* Masked lanes read -INFINITY and so add exp(-inf) = 0. */
            const vf e = v_exp(v_sub(v_loadm_or(row + nfull, tm, ninf), vmax));
            v_storem(row + nfull, tm, e);
            sum1 = v_add(sum1, e);
        }
        /* A NaN entry makes the sum, and so every weight, NaN. */
        const vf inv = v_set1(1.0f / v_hsum(v_add(sum0, sum1)));
        for (j = 0; j < nfull; j += VL)
            v_store(row + j, v_mul(v_load(row + j), inv));
        if (rem)
            v_storem(row + nfull, tm, v_mul(v_loadm(row + nfull, tm), inv));
    }
}

/* ---- P·V --------------------------------------------------------------- */

/* Rows of P per block: MC × WSUM_KC floats of P (192 KiB at most) stay in
   L2 while every column block of V passes over them, so P, the one operand
   too big for any cache, is read from memory once. */
#define WSUM_MC 192

/* Blocked as BLIS does (A = P, B = V): a block of WSUM_MC rows × WSUM_KC
   keys of P in L2, a WSUM_KC × GEMM_NR panel of V in L1 reused by every
   micro-panel of GEMM_MR rows. V is used in place: its rows are already
   contiguous along the output columns, and the last vector of each row is
   read through the mask, never past the row's end. */
static void weighted_sum_f32(size_t m, size_t n, size_t dv,
                             const float *p, size_t ldp, const float *v, size_t ldv,
                             float *o, size_t ldo)
{
    float *crow[GEMM_MR];
    for (size_t ic0 = 0; ic0 < m; ic0 += WSUM_MC) {
        const size_t ic1 = m - ic0 < WSUM_MC ? m : ic0 + WSUM_MC;
        for (size_t pc = 0; pc < n; pc += WSUM_KC) {
            const size_t kc = n - pc < WSUM_KC ? n - pc : WSUM_KC;
            for (size_t jc = 0; jc < dv; jc += GEMM_NR) {
                const size_t nc = dv - jc < GEMM_NR ? dv - jc : GEMM_NR;
                const X86_NAME(colblock) cb = X86_NAME(cols)(nc);
                for (size_t ic = ic0; ic < ic1; ic += GEMM_MR) {
                    const int mr = (int)(ic1 - ic < GEMM_MR ? ic1 - ic : GEMM_MR);
                    for (int i = 0; i < mr; i++)
                        crow[i] = o + (ic + (size_t)i) * ldo + jc;
                    /* The first column block reads P from memory: its rows
                       lie a page or more apart, where hardware prefetchers
                       stop, so the next micro-panel is asked for while
                       this one is multiplied. */
                    if (jc == 0)
                        for (size_t i = ic + GEMM_MR; i < ic + 2 * GEMM_MR && i < ic1; i++)
                            for (size_t c = 0; c < kc; c += 64 / sizeof(float))
                                _mm_prefetch((const char *)(p + i * ldp + pc + c), _MM_HINT_T0);
                    gemm_any(mr, cb.nv, cb.tail, kc, p + ic * ldp + pc, ldp, 1,
                             v + pc * ldv + jc, ldv, crow, 0, cb.lm, pc > 0, NULL, 1.0f, NULL);
                }
            }
        }
    }
}

/* ---- fused attention ------------------------------------------------------ */

/* FlashAttention over KV tiles of ATT_BN keys, per tile:
     1. S = scale · K_tile · Qᵀ (Q packed transposed once per job),
     2. score modifiers, the rows' key ranges and the online max,
     3. P = exp(S - max) in place and the row sums, alpha = exp(old - new)
        only for rows whose max grew,
     4. acc = alpha · acc + P · V_tile, V rows read in place.
   The score tile is kept transposed, S[key][row], so the job's rows (up to
   64) are vector lanes: the online softmax's per-row max, sum and rescale
   are plain lane-wise operations, with no horizontal reduction anywhere,
   and Q·Kᵀ needs no packing of K (keys are the broadcast side of the
   microkernel, read straight from their rows). 64 keys × 64 rows is a
   16 KiB tile that stays in L1 between its sweeps. Jobs of few rows
   (decode) use a dot-product Q·Kᵀ instead (qk_dot_4xkeys), and jobs of at
   most 4 rows a [key][4] layout (attention_rows4). */
#define ATT_BN 64
/* Qᵀ of a whole job: 64 rows × head_dim 256 (64 KiB) in one piece. Larger
   head_dim × rows is done in chunks of the dot product, repacked per tile. */
#define ATT_QT_FLOATS (256 * QKV_ATTN_MAX_ROWS)
#define ATT_LANES QKV_ATTN_MAX_ROWS

/* qt[p][r] = q_r[pc + p] for r < rows, 0 up to rp: Qᵀ as the microkernel's
   B, so that a step of the dot product is one vector per VL rows. */
static void pack_qt(float *qt, size_t rp, const qkv_attn_row *row, size_t rows, size_t pc,
                    size_t kc)
{
    for (size_t r = 0; r < rows; r++) {
        const float *q = row[r].q + pc;
        for (size_t p = 0; p < kc; p++)
            qt[p * rp + r] = q[p];
    }
    for (size_t r = rows; r < rp; r++)
        for (size_t p = 0; p < kc; p++)
            qt[p * rp + r] = 0.0f;
}

/* Asks for the K and V rows of keys [j, j + n) (clipped to the job) to be
   brought in ATT_PF_KEYS keys ahead of use: decode streams K and V from
   DRAM exactly once. (Measured on Zen 5: within noise of the hardware
   prefetcher alone, kept because it costs nothing and helps CPUs whose
   prefetchers stop at 4 KiB pages.) */
#define ATT_PF_KEYS 256
static void X86_NAME(prefetch_rows)(const qkv_attn_job *job, size_t j, int n)
{
    const size_t lines_k = (job->head_dim * sizeof(float) + 63) / 64;
    const size_t lines_v = (job->v_head_dim * sizeof(float) + 63) / 64;
    for (int i = 0; i < n && j + (size_t)i < job->kv_end; i++) {
        const char *kr = (const char *)(job->k + (j + (size_t)i) * job->ldk);
        const char *vr = (const char *)(job->v + (j + (size_t)i) * job->ldv);
        for (size_t l = 0; l < lines_k; l++)
            _mm_prefetch(kr + 64 * l, _MM_HINT_T0);
        for (size_t l = 0; l < lines_v; l++)
            _mm_prefetch(vr + 64 * l, _MM_HINT_T0);
    }
}

/* Reads one float of every cache line of the rows [j0, j1) of x, in a
   tight sweep of loads that nothing waits on. Decode streams K from memory
   once, and its dot products leave few loads per instruction window: spread
   between their FMAs, the loads keep too few misses in flight to use the
   memory's bandwidth. Run first, they keep many in flight, and the dot
   products then read the rows from cache. (Measured on Zen 5, one thread,
   32 query heads on 8 KV heads, 32768 keys, d = 128: 19 ms without, 11 ms
   with; the software prefetch alone changes nothing.) */
static void X86_NAME(touch_rows)(const float *x, size_t ld, size_t len, size_t j0, size_t j1)
{
    const size_t step = 64 / sizeof(float);
    for (size_t j = j0; j < j1; j++) {
        const volatile float *row = x + j * ld;
        for (size_t c = 0; c < len; c += step)
            (void)row[c];
        (void)row[len - 1];   /* the last line, when the row is not aligned */
    }
}

/* Q·Kᵀ for a job of few rows (decode: a GQA group of 1..VL/2 query
   heads). Lanes as rows would leave most of each vector idle, so here the
   vectors run along head_dim instead: blocks of 4 rows × VL/4 keys keep VL
   dot products in flight (each K load serves 4 rows), and one transposing
   reduction turns them into one vector, lane 4·key + row. Writes
   st[j][r] = scale · dot(q_r, k_j) for j in [kmin, kmax), r < rows. */
#define DOT_KEYS (VL / 4)
static void X86_NAME(qk_dot_4xkeys)(const qkv_attn_job *job, size_t t0, size_t kmin,
                                    size_t kmax, size_t rp, float *st, int packed)
{
    const size_t d = job->head_dim, rows = job->rows, nfull = d / VL * VL;
    const vm dm = v_tailmask(d > nfull ? d - nfull : VL);
    const vf vscale = v_set1(job->scale);
    X86_NAME(touch_rows)(job->k, job->ldk, d, t0 + kmin, t0 + kmax);
    for (size_t r0 = 0; r0 < rows; r0 += 4) {
        /* Rows past the last repeat it: they are computed, never stored. */
        const float *q[4];
        for (size_t r = 0; r < 4; r++)
            q[r] = job->row[r0 + r < rows ? r0 + r : rows - 1].q;
        for (size_t j0 = kmin; j0 < kmax; j0 += DOT_KEYS) {
            const float *k[DOT_KEYS];
            for (size_t kk = 0; kk < DOT_KEYS; kk++)
                k[kk] = job->k + (t0 + (j0 + kk < kmax ? j0 + kk : kmax - 1)) * job->ldk;
            if (r0 == 0)
                X86_NAME(prefetch_rows)(job, t0 + j0 + ATT_PF_KEYS, DOT_KEYS);
            vf acc[VL];
            for (int i = 0; i < VL; i++)
                acc[i] = v_zero();
            size_t c = 0;
            for (; c < nfull; c += VL) {
                vf qv[4];
                for (int r = 0; r < 4; r++)
                    qv[r] = v_load(q[r] + c);
                for (int kk = 0; kk < DOT_KEYS; kk++) {
                    const vf kv = v_load(k[kk] + c);
                    for (int r = 0; r < 4; r++)
                        acc[kk * 4 + r] = v_fmadd(kv, qv[r], acc[kk * 4 + r]);
                }
            }
            if (c < d) {   /* the partial last vector of the rows, masked */
                vf qv[4];
                for (int r = 0; r < 4; r++)
                    qv[r] = v_loadm(q[r] + c, dm);
                for (int kk = 0; kk < DOT_KEYS; kk++) {
                    const vf kv = v_loadm(k[kk] + c, dm);
                    for (int r = 0; r < 4; r++)
                        acc[kk * 4 + r] = v_fmadd(kv, qv[r], acc[kk * 4 + r]);
                }
            }
            if (packed) {      /* st[j][4]: the vector as it is */
                v_store(st + j0 * 4, v_mul(v_hsum_lanes(acc), vscale));
                continue;
            }
            X86_ALIGN float out[VL];
            v_store(out, v_mul(v_hsum_lanes(acc), vscale));
            /* 4 lanes from r0 stay inside rp: rp >= 4 · ceil(rows / 4). */
            for (size_t kk = 0; kk < DOT_KEYS && j0 + kk < kmax; kk++)
                memcpy(st + (j0 + kk) * rp + r0, out + kk * 4, 4 * sizeof(float));
        }
    }
}

/* Whether rows [j0, j1) of V hold only finite numbers: x · 0 + s keeps
   s = 0 for finite x and turns it NaN for an Inf or NaN, one instruction
   per vector on rows the P·V step is about to read anyway. */
static int X86_NAME(rows_finite)(const float *v, size_t ldv, size_t dv, size_t j0, size_t j1)
{
    const size_t nfull = dv / VL * VL;
    const vm tm = v_tailmask(dv > nfull ? dv - nfull : VL);
    const vf zero = v_zero();
    vf s0 = zero, s1 = zero;
    for (size_t j = j0; j < j1; j++) {
        const float *row = v + j * ldv;
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
    return !v_bits(v_ne(s, s));
}

/* P·V for a tile whose V rows hold an Inf or NaN: row by row, key by key,
   skipping the hidden keys (weight -0.0) exactly as the reference does,
   vectorised along v_head_dim. Rare, so simple. */
static void X86_NAME(pv_exact)(const qkv_attn_job *job, size_t t0, const int32_t *lo,
                               const int32_t *hi, const float *st, size_t rp, float *const *acc,
                               const float *alpha, uint64_t grown_bits)
{
    const size_t dv = job->v_head_dim, nfull = dv / VL * VL;
    const vm tm = v_tailmask(dv > nfull ? dv - nfull : VL);
    for (size_t r = 0; r < job->rows; r++) {
        if (lo[r] >= hi[r])
            continue;          /* no key here: max unchanged, alpha 1 */
        float *o = acc[r];
        if ((grown_bits >> r) & 1) {
            const vf a = v_set1(alpha[r]);
            for (size_t c = 0; c < nfull; c += VL)
                v_store(o + c, v_mul(v_load(o + c), a));
            if (nfull < dv)
                v_storem(o + nfull, tm, v_mul(v_loadm(o + nfull, tm), a));
        }
        for (size_t j = (size_t)lo[r]; j < (size_t)hi[r]; j++) {
            const float p = st[j * rp + r];
            uint32_t bits;
            memcpy(&bits, &p, sizeof bits);
            if (bits == 0x80000000u)
                continue;      /* hidden key: contributes nothing */
            const vf vp = v_set1(p);
            const float *vr = job->v + (t0 + j) * job->ldv;
            for (size_t c = 0; c < nfull; c += VL)
                v_store(o + c, v_fmadd(vp, v_load(vr + c), v_load(o + c)));
            if (nfull < dv)
                v_storem(o + nfull, tm,
                         v_fmadd(vp, v_loadm(vr + nfull, tm), v_loadm(o + nfull, tm)));
        }
    }
}

/* mt[j][r] = mask_r[t0 + j] for the keys [kmin, kmax) of a tile: the
   additive mask in the layout of the scores, [key][row] with rp lanes a
   key, so that adding it is one vector load per vector of scores. Mask
   rows are [row][key] in memory, so this is a transpose, done once per
   tile in VL × VL blocks in registers. (A masked prefill, 8 heads, n =
   2048, d = 128, on Zen 5 took 35% longer than an unmasked one with a
   gather per vector of scores, 26% with an element-by-element copy, 15%
   with this.) Decode's 4 lanes a key (rp = 4) are few: copied one by one.
   Keys a row does not see are copied too; mask rows span all kv_len keys,
   and the range check hides those lanes afterwards. Rows without a mask
   read zeros. */
static void X86_NAME(transpose_mask)(const qkv_attn_job *job, size_t t0, size_t kmin,
                                     size_t kmax, size_t rp, float *mt)
{
    if (rp % VL) {
        for (size_t r = 0; r < job->rows; r++) {
            const float *mr = job->row[r].mask;
            for (size_t j = kmin; j < kmax; j++)
                mt[j * rp + r] = mr ? mr[t0 + j] : 0.0f;
        }
        return;
    }
    for (size_t r0 = 0; r0 < job->rows; r0 += VL) {
        for (size_t j0 = kmin; j0 < kmax; j0 += VL) {
            const size_t nk = kmax - j0 < VL ? kmax - j0 : VL;
            const vm km = v_tailmask(nk);
            vf x[VL];
            for (size_t i = 0; i < VL; i++) {
                const float *mr = r0 + i < job->rows ? job->row[r0 + i].mask : NULL;
                x[i] = !mr ? v_zero() : nk == VL ? v_load(mr + t0 + j0) : v_loadm(mr + t0 + j0, km);
            }
            v_transpose(x);
            for (size_t k = 0; k < nk; k++)
                v_store(mt + (j0 + k) * rp + r0, x[k]);
        }
    }
}

/* Decode: jobs of 1..4 rows (a GQA group of up to 4 heads, one query
   each). With one lane per row a vector of scores would be mostly idle, so
   S and P are kept as st[key][4] and a vector holds VL/4 keys × 4 rows
   exactly as the dot-product kernel leaves them: exp, max and sum then run
   on full vectors (a quarter as many exp calls), and the per-row state is
   kept repeated in every group of 4 lanes (v_fold4_* combine the groups).
   P·V reads P[j][r] = st[4j + r] through the same microkernel. */
static void X86_NAME(attention_rows4)(const qkv_attn_job *job)
{
    const size_t rows = job->rows, dv = job->v_head_dim;
    const float cap = job->softcap;
    X86_ALIGN float st[(ATT_BN + DOT_KEYS) * 4];
    X86_ALIGN float slope_l[VL], alpha_l[VL], out_l[VL];
    X86_ALIGN int32_t lo_l[VL], hi_l[VL], dist_l[VL];
    X86_ALIGN float mt[(ATT_BN + DOT_KEYS) * 4];   /* the mask, as st */
    int32_t lo[4], hi[4];
    float *acc[GEMM_MR];   /* 4 used; sized for gemm_any's widest case */
    int any_slope = 0, any_mask = 0;
    for (size_t r = 0; r < rows; r++) {
        any_slope |= job->row[r].slope != 0.0f;
        any_mask |= job->row[r].mask != NULL;
    }
    for (int l = 0; l < VL; l++) {
        const size_t r = (size_t)l % 4;
        slope_l[l] = r < rows ? job->row[r].slope : 0.0f;
        dist_l[l] = 0;
    }
    if (any_mask)   /* lanes past the rows or past a tile's keys: hidden, but defined */
        memset(mt, 0, sizeof mt);
    const vf vzero = v_zero(), ninf = v_set1(-INFINITY), one = v_set1(1.0f);
    const vf nzero = v_set1(-0.0f), vcap = v_set1(cap), vslope = v_load(slope_l);
    const X86_NAME(colblock) last = X86_NAME(cols)(dv - (dv - 1) / VL * VL);
    for (size_t r = 0; r < rows; r++) {
        acc[r] = job->row[r].acc;
        size_t c = 0;
        for (; c + VL < dv; c += VL)
            v_store(acc[r] + c, vzero);
        v_storem(acc[r] + c, last.lm, vzero);
    }
    vf m_rep = ninf, l_rep = vzero;

    for (size_t t0 = job->kv_begin; t0 < job->kv_end; t0 += ATT_BN) {
        size_t kmin = ATT_BN, kmax = 0;
        for (size_t r = 0; r < 4; r++) {
            size_t b = 0, e = 0;
            if (r < rows) {
                const qkv_attn_row *rw = &job->row[r];
                b = rw->kv_begin > t0 ? rw->kv_begin - t0 : 0;
                e = rw->kv_end > t0 ? rw->kv_end - t0 : 0;
                b = b < ATT_BN ? b : ATT_BN;
                e = e < ATT_BN ? e : ATT_BN;
                if (b >= e)
                    b = e = 0;
            }
            lo[r] = (int32_t)b;
            hi[r] = (int32_t)e;
            if (b < e) {
                kmin = b < kmin ? b : kmin;
                kmax = e > kmax ? e : kmax;
            }
        }
        if (kmin >= kmax)
            continue;
        /* Lane 4k + r is row r at key j0 + k of the vector that starts at
           key j0: its range [lo, hi) is shifted by k, and so on. */
        for (int l = 0; l < VL; l++) {
            const size_t r = (size_t)l % 4, k = (size_t)l / 4;
            lo_l[l] = lo[r] - (int32_t)k;
            hi_l[l] = hi[r] - (int32_t)k;
            if (any_slope && r < rows)
                dist_l[l] = (int32_t)((ptrdiff_t)(t0 + k) - job->row[r].pos);
        }

        X86_NAME(qk_dot_4xkeys)(job, t0, kmin, kmax, 4, st, 1);
        if (any_mask)
            X86_NAME(transpose_mask)(job, t0, kmin, kmax, 4, mt);

        vf tmax = ninf;
        for (size_t j0 = kmin; j0 < kmax; j0 += DOT_KEYS) {
            float *sp = st + j0 * 4;
            vf x = v_load(sp);
            if (cap > 0.0f)
                x = v_mul(vcap, v_tanh(v_div(x, vcap)));
            if (any_slope)
                x = v_add(x, v_mul(vslope, v_i32_to_f(dist_l, (int32_t)j0)));
            /* Also hides the keys past kmax of the last vector. */
            const vm act = v_in_range(lo_l, hi_l, (int32_t)j0);
            if (any_mask)
                x = v_add(x, v_load(mt + j0 * 4));
            x = v_sel(act, ninf, x);
            v_store(sp, x);
            tmax = v_max(x, tmax);
        }
        const vf m_new = v_max(v_fold4_max(tmax), m_rep);
        const vm grown = v_gt(m_new, m_rep);
        vf a = one;
        if (v_bits(grown))
            a = v_sel(grown, one, v_exp(v_sub(m_rep, m_new)));
        const unsigned grown_bits = v_bits(grown) & 0xFu;
        const vf msub = v_sel(v_eq(m_new, ninf), m_new, vzero);
        vf sum = vzero;
        for (size_t j0 = kmin; j0 < kmax; j0 += DOT_KEYS) {
            float *sp = st + j0 * 4;
            const vf x = v_load(sp);
            const vf e = v_sel(v_eq(x, ninf), v_exp(v_sub(x, msub)), nzero);
            v_store(sp, e);
            sum = v_add(sum, e);
        }
        l_rep = v_add(v_mul(l_rep, a), v_fold4_add(sum));
        m_rep = m_new;
        v_store(alpha_l, a);

        if (!X86_NAME(rows_finite)(job->v, job->ldv, dv, t0 + kmin, t0 + kmax)) {
            X86_NAME(pv_exact)(job, t0, lo, hi, st, 4, acc, alpha_l, grown_bits);
            continue;
        }
        const float *vb = job->v + (t0 + kmin) * job->ldv;
        for (size_t jc = 0; jc < dv; jc += GEMM_NR) {
            const size_t nc = dv - jc < GEMM_NR ? dv - jc : GEMM_NR;
            const X86_NAME(colblock) cb = X86_NAME(cols)(nc);
            gemm_any((int)rows, cb.nv, cb.tail, kmax - kmin, st + kmin * 4, 1, 4, vb + jc,
                     job->ldv, acc, jc, cb.lm, 1, grown_bits ? alpha_l : NULL, 1.0f, NULL);
        }
    }

    v_store(out_l, m_rep);
    v_store(alpha_l, l_rep);
    for (size_t r = 0; r < rows; r++) {
        job->row[r].max = out_l[r];
        job->row[r].sum = alpha_l[r];
    }
}

static void attention_f32(const qkv_attn_job *job)
{
    const size_t rows = job->rows, d = job->head_dim, dv = job->v_head_dim;
    const size_t rv_count = (rows + VL - 1) / VL, rp = rv_count * VL;
    const float scale = job->scale, cap = job->softcap;
    if (rows <= 4) {
        X86_NAME(attention_rows4)(job);
        return;
    }

    X86_ALIGN float qt[ATT_QT_FLOATS];
    X86_ALIGN float st[ATT_BN * ATT_LANES];   /* S, then P, as [key][row] */
    /* Per-row state, one lane per row, padded to whole vectors. */
    X86_ALIGN float m_run[ATT_LANES], l_run[ATT_LANES], alpha[ATT_LANES], slope[ATT_LANES];
    X86_ALIGN int32_t lo[ATT_LANES], hi[ATT_LANES], dist0[ATT_LANES];
    X86_ALIGN float mt[ATT_BN * ATT_LANES];   /* the mask, as st */
    float *acc[ATT_LANES];
    int any_slope = 0, any_mask = 0;

    for (size_t r = 0; r < rp; r++) {
        m_run[r] = -INFINITY;
        l_run[r] = 0.0f;
        slope[r] = r < rows ? job->row[r].slope : 0.0f;
        lo[r] = hi[r] = dist0[r] = 0;
        any_slope |= slope[r] != 0.0f;
        any_mask |= r < rows && job->row[r].mask != NULL;
    }
    const vf vzero = v_zero();
    const X86_NAME(colblock) last = X86_NAME(cols)(dv - (dv - 1) / VL * VL);
    for (size_t r = 0; r < rows; r++) {
        acc[r] = job->row[r].acc;
        size_t c = 0;
        for (; c + VL < dv; c += VL)
            v_store(acc[r] + c, vzero);
        v_storem(acc[r] + c, last.lm, vzero);
    }

    /* The dot product in chunks of dc so that Qᵀ fits its buffer; for the
       usual shapes (head_dim × rows <= 256 × 64) it is packed once. */
    const size_t dc = d * rp <= ATT_QT_FLOATS ? d : ATT_QT_FLOATS / rp;
    const int dot_form = rows <= VL / 2;
    if (any_mask)          /* lanes past the rows: defined, and inactive */
        memset(mt, 0, sizeof mt);
    if (dot_form)          /* lanes it never writes: defined, and inactive */
        memset(st, 0, sizeof st);
    else if (dc == d)
        pack_qt(qt, rp, job->row, rows, 0, d);

    const vf ninf = v_set1(-INFINITY), one = v_set1(1.0f), nzero = v_set1(-0.0f);
    const vf vcap = v_set1(cap);
    float *crow[GEMM_MR];

    for (size_t t0 = job->kv_begin; t0 < job->kv_end; t0 += ATT_BN) {
        /* Each row's keys within this tile, as [lo, hi) relative to t0. */
        size_t kmin = ATT_BN, kmax = 0;
        for (size_t r = 0; r < rows; r++) {
            const qkv_attn_row *rw = &job->row[r];
            size_t b = rw->kv_begin > t0 ? rw->kv_begin - t0 : 0;
            size_t e = rw->kv_end > t0 ? rw->kv_end - t0 : 0;
            b = b < ATT_BN ? b : ATT_BN;
            e = e < ATT_BN ? e : ATT_BN;
            if (b >= e)
                b = e = 0;
            lo[r] = (int32_t)b;
            hi[r] = (int32_t)e;
            if (b < e) {
                kmin = b < kmin ? b : kmin;
                kmax = e > kmax ? e : kmax;
            }
        }
        if (kmin >= kmax)
            continue;          /* no row sees a key of this tile */
        if (any_slope)
            for (size_t r = 0; r < rows; r++)
                dist0[r] = (int32_t)((ptrdiff_t)t0 - job->row[r].pos);
        if (any_mask)
            X86_NAME(transpose_mask)(job, t0, kmin, kmax, rp, mt);

        /* A plain tile: every row sees all of [kmin, kmax) and no score
           modifier is on, so S needs no second look before its max, and
           the microkernel takes the max while S is still in registers. */
        int plain = !dot_form && cap <= 0.0f && !any_slope && !any_mask;
        for (size_t r = 0; r < rows && plain; r++)
            plain = (size_t)lo[r] == kmin && (size_t)hi[r] == kmax;
        vf tmax_of[ATT_LANES / VL];
        for (size_t rv = 0; rv < rv_count; rv++)
            tmax_of[rv] = ninf;

        /* S[j][·] = scale · K_j · Qᵀ for the keys [kmin, kmax) some row sees. */
        if (dot_form) {
            X86_NAME(qk_dot_4xkeys)(job, t0, kmin, kmax, rp, st, 0);
        }
        for (size_t pc = 0; pc < d && !dot_form; pc += dc) {
            const size_t kc = d - pc < dc ? d - pc : dc;
            if (dc != d)
                pack_qt(qt, rp, job->row, rows, pc, kc);
            const float post = pc + kc >= d ? scale : 1.0f;
            for (size_t j0 = kmin; j0 < kmax; j0 += GEMM_MR) {
                const int mr = (int)(kmax - j0 < GEMM_MR ? kmax - j0 : GEMM_MR);
                for (int i = 0; i < mr; i++)
                    crow[i] = st + (j0 + (size_t)i) * rp;
                const float *kj = job->k + (t0 + j0) * job->ldk + pc;
                for (size_t v0 = 0; v0 < rv_count; v0 += GEMM_NV) {
                    const int nv = (int)(rv_count - v0 < GEMM_NV ? rv_count - v0 : GEMM_NV);
                    gemm_any(mr, nv, 0, kc, kj, job->ldk, 1, qt + v0 * VL, rp, crow, v0 * VL,
                             last.lm, pc > 0, NULL, post,
                             plain && pc + kc >= d ? tmax_of + v0 : NULL);
                }
            }
        }

        /* Score modifiers, the rows' key ranges, the online max; then
           P = exp(S - max) in place and its row sums. */
        uint64_t grown_bits = 0;
        for (size_t rv = 0; rv < rv_count; rv++) {
            const size_t l0 = rv * VL;
            const vf vslope = v_load(slope + l0);
            vf tmax = tmax_of[rv];
            for (size_t jj = kmin; jj < kmax && !plain; jj++) {
                float *sp = st + jj * rp + l0;
                vf x = v_load(sp);
                if (cap > 0.0f)
                    x = v_mul(vcap, v_tanh(v_div(x, vcap)));
                if (any_slope)
                    x = v_add(x, v_mul(vslope, v_i32_to_f(dist0 + l0, (int32_t)jj)));
                const vm act = v_in_range(lo + l0, hi + l0, (int32_t)jj);
                if (any_mask)
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
            if (v_bits(grown)) {
                /* exp(-inf - m) = 0 for a row's first keys: acc is zero. */
                a = v_sel(grown, one, v_exp(v_sub(m_old, m_new)));
                grown_bits |= (uint64_t)v_bits(grown) << l0;
            }
            /* A row that so far saw only -INFINITY subtracts 0, so its
               -INFINITY scores give exp(-inf) = 0 and not exp(NaN). */
            const vf msub = v_sel(v_eq(m_new, ninf), m_new, vzero);
            vf sum0 = vzero, sum1 = vzero;
            size_t jj = kmin;
            /* A hidden key (-INFINITY) gets the weight -0.0, which exp()
               never returns: it adds nothing, and pv_exact can tell it
               from a weight that underflowed to +0.0. */
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

        /* acc_i = alpha_i · acc_i + Σ_j P[j][i] · V_j, rows in blocks of
           GEMM_MR, over the keys the block sees. The blocks multiply the
           weight 0 of a hidden key into its V row too, which is exact
           unless that row holds an Inf or NaN (0 · Inf = NaN): then the
           tile goes through pv_exact, which skips hidden keys as the
           reference does. A plain tile hides no key (short of a dot
           product overflowing to -Inf against an Inf in V) and is not
           checked. */
        if (!plain && !X86_NAME(rows_finite)(job->v, job->ldv, dv, t0 + kmin, t0 + kmax)) {
            X86_NAME(pv_exact)(job, t0, lo, hi, st, rp, acc, alpha, grown_bits);
            continue;
        }
        for (size_t i0 = 0; i0 < rows; i0 += GEMM_MR) {
            const int mr = (int)(rows - i0 < GEMM_MR ? rows - i0 : GEMM_MR);
            int32_t klo = ATT_BN, khi = 0;
            for (int i = 0; i < mr; i++) {
                if (lo[i0 + i] < hi[i0 + i]) {
                    klo = lo[i0 + i] < klo ? lo[i0 + i] : klo;
                    khi = hi[i0 + i] > khi ? hi[i0 + i] : khi;
                }
            }
            if (klo >= khi)
                continue;      /* no key: max unchanged, nothing to add */
            const uint64_t block = ((uint64_t)1 << mr) - 1;
            const float *pre = (grown_bits >> i0) & block ? alpha + i0 : NULL;
            const float *pa = st + (size_t)klo * rp + i0;
            const float *vb = job->v + (t0 + (size_t)klo) * job->ldv;
            for (int i = 0; i < mr; i++)
                crow[i] = acc[i0 + (size_t)i];
            for (size_t jc = 0; jc < dv; jc += GEMM_NR) {
                const size_t nc = dv - jc < GEMM_NR ? dv - jc : GEMM_NR;
                const X86_NAME(colblock) cb = X86_NAME(cols)(nc);
                gemm_any(mr, cb.nv, cb.tail, (size_t)(khi - klo), pa, 1, rp, vb + jc, job->ldv,
                         crow, jc, cb.lm, 1, pre, 1.0f, NULL);
            }
        }
    }

    for (size_t r = 0; r < rows; r++) {
        job->row[r].max = m_run[r];
        job->row[r].sum = l_run[r];
    }
}

/*
 * bf16 tiles for the one fused driver (the SIMD_BF16 hooks of
 * kernels/simd/attention.h) on Arm's BFMMLA, written once for NEON
 * (neonbf16.c, vbfmmlaq_f32) and SVE (svebf16.c, svbfmmla_f32, any vector
 * length). The online softmax stays in the f32 driver; this file packs the
 * operands, decides per job what may be rounded and multiplies them.
 *
 * BFMMLA multiplies, in each 128-bit segment, a 2 × 4 matrix of bf16 (the
 * first source, rows i) by a 4 × 2 one (the second source, stored as its
 * 2 × 4 transpose, rows x) into a 2 × 2 block of f32, [C(i,x), C(i,x+1),
 * C(i+1,x), C(i+1,x+1)]. A segment (8 bf16) is thus a pair of rows × 4
 * values along the sum. One microkernel, bf16_mm, serves both products:
 *   C[i][x] += Σ_q A(i, q) · B(x, q)
 * with A a pair of rows per segment, loaded into every segment of a vector
 * (LD1RQ; NEON has one segment), and B a vector of VL/4 segments, i.e.
 * VL/2 consecutive x; two such accumulators of one A pair hold rows i and
 * i + 1 at VL lanes of x, which UZP1/UZP2 on 64-bit elements turn into the
 * two C rows. So whatever the vector length, a C row is whole vectors.
 *   Q·Kᵀ: i = keys (A: K packed per chunk of keys, two rows a pair), x = the
 *         job's rows (B: Qᵀ packed once per job), C = S[key][row];
 *   P·V:  i = the job's rows (A: P of the tile), x = V's columns (B: V of
 *         the tile packed per chunk of columns), C = acc.
 * Layouts, in segments of 8 bf16 (zeros past every edge):
 *   qt4[q·rp/2 + m]    = (Q_2m[4q..4q+3], Q_2m+1[4q..4q+3])
 *   k4[jp·nq + q]      = (K_2jp[4q..], K_2jp+1[4q..])   (keys of the chunk)
 *   p4[kq·rp/2 + m]    = (P[4kq..4kq+3][2m], P[4kq..4kq+3][2m+1])
 *   v4[kq·cwp/2 + m]   = (V[4kq..4kq+3][2m], V[4kq..4kq+3][2m+1])
 *
 * What BFMMLA computes (Arm ARM, BFMMLA; without FEAT_EBF16, or with
 * FPCR.EBF = 0, which is how Linux starts a process): each C element adds
 * two 2-way dot products, ((c + (a0·b0 + a1·b1)) + (a2·b2 + a3·b3)), every
 * product and sum rounded to f32 by round-to-odd (an inexact result gets
 * its last bit set: at most one unit in the last place off, where nearest
 * even is half of one), subnormal inputs and results flushed to zero, NaN
 * results the default NaN, whatever FPCR says. A bf16 × bf16 product has
 * 16 significant bits and is exact in f32 unless it underflows. With
 * FPCR.EBF = 1 the products are fused and FPCR's rounding applies: the
 * rules below hold for both.
 *
 * What is rounded (qkv.h, qkv_fpmath):
 *   STRICT: bf16 Q·Kᵀ only when Q and K are stored as bf16: the products
 *     are exact and only the f32 sums round, by one unit in the last place
 *     at most (x86's vdpbf16ps: half a unit), which is f32 arithmetic and
 *     well inside the 1e-5 contract (checkasm's fpmath group asserts it
 *     against neon's f32 result). Subnormal inputs would count as zero, so
 *     Q is checked once per job and K once per tile: a subnormal sends the
 *     job (Q) or the tile (K) to the f32 microkernels. Flushed products and
 *     sums below 2^-126 move a score by less than d·2^-126: no output can
 *     show it. P·V stays f32.
 *   BF16: Q, K, P and V are rounded to bf16 (BFCVT: nearest even under
 *     Linux's FPCR, NaN stays NaN, beyond bf16's range infinite; BFMMLA
 *     then reads a subnormal as zero), products summed in f32.
 * Hidden keys have the weight -0.0 (see attention.h): exact in bf16 and
 * harmless unless their V row is not finite, which the V packing notices;
 * such a chunk goes through pv_exact, which skips the -0.0 weights.
 *
 * The includer defines the vocabulary of simd/attention.h and, for 16-bit
 * lanes (a vector of VH = 2·VL of them):
 *   vh, VH                  the vector type and its lanes
 *   h_zero h_load(p) h_loadn(p, n) h_store(p, x) h_storen(p, x, n)
 *                           n <= VH lanes; the rest read as 0, never touched
 *   h_load_rep(p)           8 lanes (one segment) in every segment
 *   h_cvt2(lo, hi)          2·VL floats to bf16 (BFCVT), lo's lanes first
 *   h_zip{1,2}_{16,32,64}   ZIP1/ZIP2 on 16-, 32- and 64-bit elements
 *   h_any_subnormal(x) h_any_nonfinite(x)   as bf16 values
 *   v_bfmmla(acc, a, b)     BFMMLA, a the first source (rows i)
 *   v_uzp{1,2}_64(a, b)     UZP1/UZP2 on 64-bit elements of two vf
 * and, optionally, a widening f16 multiply-add (FEAT_FHM's FMLAL, exact:
 * an f16 product fits in f32 and is added with one rounding, as FCVTL and
 * FMLA do, so the f32 kernels' bits), which strict mode then uses for the
 * Q·Kᵀ of f16 Q and K, K read where it lies:
 *   ABF_F16_QK(k, ldk, nk, d, qt16, ld16, rp, s, post, cmax)
 *                           s[j·rp + x] = post · Σ_p K_j[p] · qt16[p·ld16 + x]
 *                           for j < nk (f16 rows ldk values apart), x < rp;
 *                           cmax as simd_gemm's; reads qt16 rows up to ld16
 * then includes this file, then arm/kernels_tmpl.h.
 */
#ifndef ARM_BF16_TMPL_H
#define ARM_BF16_TMPL_H
#else
#error "arm/bf16_tmpl.h is included once per ISA translation unit"
#endif

#include <stdint.h>
#include <string.h>

/* The driver's tile (ATT_BN, checked where both are seen), its quads of
   keys, and the keys of K packed at a time (8 KiB at d = 128): the Q·Kᵀ
   microkernel takes 8 keys a call, Qᵀ stays in L1 between chunks. */
#define ABF_BN 64
#define ABF_KQ (ABF_BN / 4)
#define ABF_KCH 16
/* V columns of one P·V chunk, as on x86 (bf16_tmpl.h): 128 where the
   workspace has room, else 64 (whole Q8_0/Q4_0 blocks either way). */
#define ABF_CW_MIN 64
#define ABF_CW_MAX 128
#define ABF_UP(n, m) (((n) + (m) - 1) / (m) * (m))
#define ABF_ALIGN(n) ABF_UP((size_t)(n), 16)

typedef struct simd_bf16 {
    int qk, pv;               /* the tiles this job runs in bf16 */
    int f16;                  /* Q·Kᵀ by ABF_F16_QK instead (qt4 is then qt16) */
    int strict;               /* K tiles are checked for subnormals */
    size_t d, nq;             /* head_dim; its quads (values 4 at a time) */
    size_t rp;                /* lanes of S: the job's rows, whole vectors */
    size_t cw;                /* V columns of a chunk */
    uint16_t *qt4;            /* nq × rp/2 segments */
    uint16_t *k4;             /* ABF_KCH/2 pairs × nq segments */
    float *kwide;             /* two K rows as f32, for K neither f32 nor bf16 */
    uint16_t *p4;             /* ABF_KQ × rp/2 segments */
    uint16_t *v4;             /* ABF_KQ × cwp/2 segments */
    float *vwide;             /* four V rows of a chunk as f32, likewise */
} simd_bf16;

/* ---- rounding, for the rare scalar path ------------------------------------ */

/* x as BFMMLA reads it after BFCVT: NaN stays NaN, a value below bf16's
   normal range is (signed) zero, nearest even otherwise. */
static inline float SIMD_NAME(bf16_round)(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        u |= 0x00400000u;
    else if ((u & 0x7f800000u) == 0)
        u &= 0x80000000u;
    else
        u = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
    memcpy(&x, &u, sizeof x);
    return x;
}

/* A stored bf16 as BFMMLA reads it. */
static inline float SIMD_NAME(bf16_value)(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    if ((u & 0x7f800000u) == 0)
        u &= 0x80000000u;
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

/* ---- packing --------------------------------------------------------------- */

/* Values [c, c + VH) of a bf16 row of n values as a vector, zeros past
   n (never read); a NULL row is all zeros. */
V_INLINE vh SIMD_NAME(row_h)(const uint16_t *row, size_t c, size_t n)
{
    if (!row || c >= n)
        return h_zero();
    return n - c >= VH ? h_load(row + c) : h_loadn(row + c, n - c);
}

/* The same from an f32 row, rounded to bf16. */
V_INLINE vh SIMD_NAME(row_f)(const float *row, size_t c, size_t n)
{
    if (!row || c >= n)
        return h_zero();
    const size_t m = n - c;
    const vf lo = m >= VL ? v_load(row + c) : v_loadm(row + c, v_tailmask(m));
    const vf hi = m >= 2 * VL ? v_load(row + c + VL)
                  : m > VL    ? v_loadm(row + c + VL, v_tailmask(m - VL))
                              : v_zero();
    return h_cvt2(lo, hi);
}

/* Two rows of n values (bf16 rows r0h/r1h, or f32 rows r0f/r1f; a NULL
   second row is zeros) as nq segments of pairs: out[q] = (row0[4q..4q+3],
   row1[4q..4q+3]). Returns whether a value read is a subnormal bf16 (with
   check set; f32 rows are not checked). */
static int SIMD_NAME(pack_pairs)(uint16_t *out, const uint16_t *r0h, const uint16_t *r1h,
                                 const float *r0f, const float *r1f, size_t n, size_t nq,
                                 int check)
{
    const size_t len = 8 * nq;   /* values of out */
    int sub = 0;
    for (size_t c = 0; c < 4 * nq; c += VH) {
        const vh x0 = r0f ? SIMD_NAME(row_f)(r0f, c, n) : SIMD_NAME(row_h)(r0h, c, n);
        const vh x1 = r0f ? SIMD_NAME(row_f)(r1f, c, n) : SIMD_NAME(row_h)(r1h, c, n);
        if (check)
            sub |= h_any_subnormal(x0) | h_any_subnormal(x1);
        /* 64-bit elements are quads: ZIP1 pairs the first half's, ZIP2 the
           second's, each VH/8 segments in order. */
        const size_t at = 2 * c;
        const vh lo = h_zip1_64(x0, x1), hi = h_zip2_64(x0, x1);
        if (len - at >= VH)
            h_store(out + at, lo);
        else
            h_storen(out + at, lo, len - at);
        if (at + VH < len) {
            if (len - at - VH >= VH)
                h_store(out + at + VH, hi);
            else
                h_storen(out + at + VH, hi, len - at - VH);
        }
    }
    return sub;
}

/* Four rows (keys) of n values (bf16 rows rh, or f32 rows rf; NULL rows
   are zeros) as segments of 4 keys × 2 columns for columns [0, ncol),
   ncol a multiple of VL: out[m] = (row0..3[2m], row0..3[2m+1]). Returns
   whether a value packed is Inf or NaN (with check set). */
static int SIMD_NAME(pack_quads)(uint16_t *out, const uint16_t *const *rh, const float *const *rf,
                                 size_t n, size_t ncol, int check)
{
    int bad = 0;
    for (size_t c = 0; c < ncol; c += VH) {
        vh x0, x1, x2, x3;
        if (rf) {
            x0 = SIMD_NAME(row_f)(rf[0], c, n), x1 = SIMD_NAME(row_f)(rf[1], c, n);
            x2 = SIMD_NAME(row_f)(rf[2], c, n), x3 = SIMD_NAME(row_f)(rf[3], c, n);
        } else {
            x0 = SIMD_NAME(row_h)(rh[0], c, n), x1 = SIMD_NAME(row_h)(rh[1], c, n);
            x2 = SIMD_NAME(row_h)(rh[2], c, n), x3 = SIMD_NAME(row_h)(rh[3], c, n);
        }
        if (check)
            bad |= h_any_nonfinite(x0) | h_any_nonfinite(x1) | h_any_nonfinite(x2) |
                   h_any_nonfinite(x3);
        /* 16-bit ZIPs pair keys 0,1 and 2,3 per column, 32-bit ZIPs join
           the pairs: each result is VL/2 columns of 4 keys, in order. */
        const vh z01l = h_zip1_16(x0, x1), z01h = h_zip2_16(x0, x1);
        const vh z23l = h_zip1_16(x2, x3), z23h = h_zip2_16(x2, x3);
        uint16_t *o = out + 4 * c;          /* 4 values a column */
        const size_t half = VL / 2;         /* columns of one result */
        h_store(o, h_zip1_32(z01l, z23l));
        if (c + half < ncol)
            h_store(o + VH, h_zip2_32(z01l, z23l));
        if (c + 2 * half < ncol)
            h_store(o + 2 * VH, h_zip1_32(z01h, z23h));
        if (c + 3 * half < ncol)
            h_store(o + 3 * VH, h_zip2_32(z01h, z23h));
    }
    return bad;
}

/* Whether a bf16 value of n rows of d values is subnormal. */
static int SIMD_NAME(rows_subnormal)(const qkv_kv_src *s, size_t j, size_t n, size_t d)
{
    qkv_kv_cursor rc = qkv_kv_at(s, j);
    for (size_t i = 0; i < n; i++) {
        const uint16_t *row = (const uint16_t *)qkv_kv_next(&rc);
        for (size_t c = 0; c < d; c += VH)
            if (h_any_subnormal(SIMD_NAME(row_h)(row, c, d)))
                return 1;
    }
    return 0;
}

/* ---- the microkernel -------------------------------------------------------- */

/* C[i][coff + x] := post · (pre_i · C[i][coff + x] + Σ_q A(i, q) · B(x, q))
   for i < mr <= 8, x < nc <= 2·VL (simd_gemm's contract on pairs): A's
   segment (pair ip, quad q) at a + 8·(ip·ars + q·acs), B's vectors for
   quad q at b + 8·q·ldb (4·VL lanes of x: 2 vectors of VH for each of the
   two output vectors; zeros past nc). 4 pairs × 2 output vectors are 16
   accumulators, 4 A and 4 B registers: 24 of the 32, and 16 independent
   BFMMLA chains. kp and nv are constants at every call (bf16_mm_any), so
   the tests fold away (SVE's sizeless vectors rule out arrays). */
V_INLINE void SIMD_NAME(bf16_mm)(const int kp, const int nv, size_t mr, size_t nc, size_t nq,
                                 const uint16_t *a, size_t ars, size_t acs, const uint16_t *b,
                                 size_t ldb, float *const *c, size_t coff, int load_c,
                                 const float *pre, float post, float *cmax)
{
    const vf z = v_zero();
    vf c000 = z, c001 = z, c010 = z, c011 = z, c100 = z, c101 = z, c110 = z, c111 = z;
    vf c200 = z, c201 = z, c210 = z, c211 = z, c300 = z, c301 = z, c310 = z, c311 = z;
    /* Rows of pairs past kp are never formed (they may lie past A). */
    const uint16_t *a0 = a, *a1 = a + 8 * ars * (kp > 1), *a2 = a + 16 * ars * (kp > 2);
    const uint16_t *a3 = a + 24 * ars * (kp > 3);
    for (size_t q = 0; q < nq; q++, b += 8 * ldb) {
        const size_t aq = 8 * q * acs;
        const vh b00 = h_load(b), b01 = h_load(b + VH);
        const vh b10 = nv > 1 ? h_load(b + 2 * VH) : h_zero();
        const vh b11 = nv > 1 ? h_load(b + 3 * VH) : h_zero();
#define ABF_STEP(i)                                          \
        if (kp > i) {                                        \
            const vh ai = h_load_rep(a##i + aq);             \
            c##i##00 = v_bfmmla(c##i##00, ai, b00);          \
            c##i##01 = v_bfmmla(c##i##01, ai, b01);          \
            if (nv > 1) {                                    \
                c##i##10 = v_bfmmla(c##i##10, ai, b10);      \
                c##i##11 = v_bfmmla(c##i##11, ai, b11);      \
            }                                                \
        }
        ABF_STEP(0) ABF_STEP(1) ABF_STEP(2) ABF_STEP(3)
#undef ABF_STEP
    }
    const vf vpost = v_set1(post);
#define ABF_ROW(r, x, v)                                                                     \
    if ((size_t)(r) < mr) {                                                                  \
        float *cr = c[r] + coff + (size_t)(v) * VL;                                          \
        const int full = nc >= ((size_t)(v) + 1) * VL;                                       \
        const vm tm = v_tailmask(full ? VL : nc - (size_t)(v) * VL);                         \
        vf y = (x);                                                                          \
        if (load_c) {                                                                        \
            vf old = full ? v_load(cr) : v_loadm(cr, tm);                                    \
            if (pre)                                                                         \
                old = v_mul(old, v_set1(pre[r]));                                            \
            y = v_add(old, y);                                                               \
        }                                                                                    \
        y = v_mul(y, vpost);                                                                 \
        if (cmax)                                                                            \
            v_store(cmax + (size_t)(v) * VL, v_max(y, v_load(cmax + (size_t)(v) * VL)));    \
        if (full)                                                                            \
            v_store(cr, y);                                                                  \
        else                                                                                 \
            v_storem(cr, tm, y);                                                             \
    }
#define ABF_OUT(i, v)                                                 \
    if (kp > i && nv > v) {                                           \
        ABF_ROW(2 * i, v_uzp1_64(c##i##v##0, c##i##v##1), v)          \
        ABF_ROW(2 * i + 1, v_uzp2_64(c##i##v##0, c##i##v##1), v)      \
    }
    ABF_OUT(0, 0) ABF_OUT(0, 1) ABF_OUT(1, 0) ABF_OUT(1, 1)
    ABF_OUT(2, 0) ABF_OUT(2, 1) ABF_OUT(3, 0) ABF_OUT(3, 1)
#undef ABF_OUT
#undef ABF_ROW
}

/* bf16_mm for any mr <= 8 and nc <= 2·VL: one inlined copy per shape. */
static void SIMD_NAME(bf16_mm_any)(size_t mr, size_t nc, size_t nq, const uint16_t *a, size_t ars,
                                   size_t acs, const uint16_t *b, size_t ldb, float *const *c,
                                   size_t coff, int load_c, const float *pre, float post,
                                   float *cmax)
{
#define ABF_CALL(KP_, NV_)                                                                      \
    SIMD_NAME(bf16_mm)(KP_, NV_, mr, nc, nq, a, ars, acs, b, ldb, c, coff, load_c, pre, post, \
                       cmax)
#define ABF_KP(KP_)           \
    if (nc > VL)              \
        ABF_CALL(KP_, 2);     \
    else                      \
        ABF_CALL(KP_, 1);
    switch ((mr + 1) / 2) {
    case 1: ABF_KP(1) break;
    case 2: ABF_KP(2) break;
    case 3: ABF_KP(3) break;
    default: ABF_KP(4) break;
    }
#undef ABF_KP
#undef ABF_CALL
}

/* ---- P·V of a chunk whose V is not finite ------------------------------------ */

/* On the same bf16 values, one key at a time: a hidden key (weight -0.0)
   is skipped, as the f32 pv_exact skips it, so its Inf or NaN reaches only
   the rows that see it. Rare, so scalar. */
static void SIMD_NAME(pv_exact_bf16)(const simd_bf16 *b, const qkv_attn_job *job, const float *st,
                                     size_t rp, size_t kmin, size_t kmax, const int32_t *lo,
                                     const int32_t *hi, const float *alpha, size_t cwp, size_t nc,
                                     size_t c0)
{
    for (size_t r = 0; r < job->rows; r++) {
        float *o = job->row[r].acc + c0;
        if (alpha[r] != 1.0f)
            for (size_t x = 0; x < nc; x++)
                o[x] *= alpha[r];
        const size_t kb = (size_t)lo[r] > kmin ? (size_t)lo[r] : kmin;
        const size_t ke = (size_t)hi[r] < kmax ? (size_t)hi[r] : kmax;
        for (size_t j = kb; j < ke; j++) {
            const float p = st[j * rp + r];
            uint32_t bits;
            memcpy(&bits, &p, sizeof bits);
            if (bits == 0x80000000u)
                continue;
            const float pb = SIMD_NAME(bf16_round)(p);
            const size_t kq = (j - kmin) / 4, t = (j - kmin) % 4;
            for (size_t x = 0; x < nc; x++) {
                uint16_t h;
                memcpy(&h, b->v4 + (kq * (cwp / 2) + x / 2) * 8 + (x % 2) * 4 + t, sizeof h);
                o[x] += pb * SIMD_NAME(bf16_value)(h);
            }
        }
    }
}

/* ---- the hooks ------------------------------------------------------------------ */

/* Which tiles a shape may run in bf16, or in f16 (see the top of this
   file). In BF16 mode f16 Q and K take BFMMLA too: four times FMLAL's
   multiply-adds per instruction. */
static void SIMD_NAME(bf16_use)(const qkv_attn_shape *s, int *qk, int *pv, int *f16)
{
    *pv = s->fpmath == QKV_FPMATH_BF16;
    *qk = *pv || (s->q_dtype == QKV_BF16 && s->k_dtype == QKV_BF16);
    *f16 = 0;
#ifdef ABF_F16_QK
    if (!*qk && s->q_dtype == QKV_F16 && s->k_dtype == QKV_F16)
        *qk = *f16 = 1;
#endif
}

/* Lanes of a row of qt16: whole 128-bit loads of 8. */
#define ABF_LD16(rp) ABF_UP(rp, 8)

/* The buffers of a job of rp lanes, in floats: qt4 for the job, then K's
   packing and P·V's operands, which are never needed at once and share
   their floats (as do Q's rows while qt4 is packed); `least` is what the
   f32 fallback needs at the least (strict mode's tiles can be given back:
   Qᵀ as f32 in chunks of 32 values and 64 floats of converted V). */
typedef struct SIMD_NAME(bf16_sizes) {
    size_t qt4, shared, least;
} SIMD_NAME(bf16_sizes);

static SIMD_NAME(bf16_sizes) SIMD_NAME(bf16_sizes_of)(size_t rp, const qkv_attn_shape *s, int pv,
                                                      int f16, size_t cw)
{
    SIMD_NAME(bf16_sizes) z;
    const size_t d = s->head_dim, nq = (d + 3) / 4, cwp = ABF_UP(cw, 2 * VL);
    if (f16) {                        /* Qᵀ as f16; K in place, P·V f32 */
        z.qt4 = ABF_ALIGN(d * ABF_LD16(rp) / 2);
        z.shared = 0;
        z.least = ABF_ALIGN(rp * 32) + 64;
        return z;
    }
    const int k_wide = s->k_dtype != QKV_F32 && s->k_dtype != QKV_BF16;
    const int v_wide = s->v_dtype != QKV_F32 && s->v_dtype != QKV_BF16;
    z.qt4 = ABF_ALIGN(nq * rp * 2);                            /* 8 bf16 = 4 floats a segment */
    const size_t kpart = ABF_ALIGN(ABF_KCH * nq * 2) + (k_wide ? ABF_ALIGN(2 * d) : 0);
    const size_t vpart = pv ? ABF_ALIGN(ABF_KQ * rp * 2) + ABF_ALIGN(ABF_KQ * cwp * 2) +
                                  (v_wide ? ABF_ALIGN(4 * cw) : 0)
                            : 0;
    const size_t qpart = ABF_ALIGN(nq * 4) + (s->q_dtype != QKV_F32 ? ABF_ALIGN(2 * d) : 0);
    z.shared = kpart > vpart ? kpart : vpart;
    z.shared = z.shared > qpart ? z.shared : qpart;
    z.least = pv ? 0 : ABF_ALIGN(rp * 32) + 64;
    return z;
}

static size_t SIMD_NAME(bf16_ws)(size_t rp, const qkv_attn_shape *s, size_t room)
{
    int qk, pv, f16;
    SIMD_NAME(bf16_use)(s, &qk, &pv, &f16);
    if (!qk)
        return 0;
    /* And for strict mode's f32 P·V, converted V rows of 16 keys as the
       driver prefers them (ATT_CONV_KEYS). */
    const size_t dv = s->v_head_dim < 64 ? 64 : s->v_head_dim;
    const size_t v_conv = !pv && s->v_dtype != QKV_F32 ? 16 * dv : 0;
    /* The wide chunks where they fit in room, else the narrow ones, as
       x86's bf16_ws (begin() takes the wide ones where it has room). */
    size_t need = 0;
    for (size_t cw = pv && s->v_head_dim > ABF_CW_MIN ? ABF_CW_MAX : ABF_CW_MIN;; cw = ABF_CW_MIN) {
        const SIMD_NAME(bf16_sizes) z = SIMD_NAME(bf16_sizes_of)(rp, s, pv, f16, cw);
        need = z.qt4 + z.shared + (z.least > v_conv ? z.least : v_conv);
        if (need <= room || cw == ABF_CW_MIN)
            break;
    }
    /* Where fewer rows cannot make a vector's worth of lanes smaller (SVE
       at 1024 and 2048 bits), a shape that does not fit stays f32, rather
       than driving the planner to jobs of a few rows. */
    if (rp <= VL && ABF_ALIGN(ABF_BN * rp) * (s->masked ? 2 : 1) + need > QKV_ATTN_WS_FLOATS)
        return 0;
    return need;
}

/* qt4 for the job; 0 when a value would be lost (strict: a subnormal).
   `tmp` holds one pair's segments and (Q neither f32 nor bf16) its two
   rows as f32. */
static int SIMD_NAME(pack_qt4)(simd_bf16 *b, const qkv_attn_job *job, float *tmp)
{
    const size_t d = b->d, nq = b->nq, half = b->rp / 2;
    uint16_t *seg = (uint16_t *)tmp;
    float *wide = tmp + ABF_ALIGN(nq * 4);
    for (size_t m = 0; m < half; m++) {
        const void *q0 = 2 * m < job->rows ? job->row[2 * m].q : NULL;
        const void *q1 = 2 * m + 1 < job->rows ? job->row[2 * m + 1].q : NULL;
        if (!q0) {
            for (size_t q = 0; q < nq; q++)
                memset(b->qt4 + (q * half + m) * 8, 0, 8 * sizeof *b->qt4);
            continue;
        }
        if (job->q_dtype == QKV_BF16) {
            if (SIMD_NAME(pack_pairs)(seg, q0, q1, NULL, NULL, d, nq, b->strict))
                return 0;
        } else if (job->q_dtype == QKV_F32) {
            SIMD_NAME(pack_pairs)(seg, NULL, NULL, q0, q1 ? q1 : NULL, d, nq, 0);
        } else {
            job->q_to_f32(d, q0, wide);
            if (q1)
                job->q_to_f32(d, q1, wide + d);
            SIMD_NAME(pack_pairs)(seg, NULL, NULL, wide, q1 ? wide + d : NULL, d, nq, 0);
        }
        for (size_t q = 0; q < nq; q++)
            memcpy(b->qt4 + (q * half + m) * 8, seg + q * 8, 8 * sizeof *seg);
    }
    return 1;
}

static size_t SIMD_NAME(bf16_begin)(simd_bf16 *b, const qkv_attn_job *job, size_t rp, float *ws,
                                    size_t floats)
{
    const qkv_attn_shape s = {job->head_dim, job->v_head_dim, job->q_dtype, job->k.dtype,
                              job->v.dtype, 0, job->fpmath};
    memset(b, 0, sizeof *b);
    int qk, pv, f16;
    SIMD_NAME(bf16_use)(&s, &qk, &pv, &f16);
    if (!qk)
        return 0;
    size_t cw = job->v_head_dim > ABF_CW_MIN ? ABF_CW_MAX : ABF_CW_MIN;
    SIMD_NAME(bf16_sizes) z = SIMD_NAME(bf16_sizes_of)(rp, &s, pv, f16, cw);
    if (z.qt4 + z.shared + z.least > floats && cw > ABF_CW_MIN)
        z = SIMD_NAME(bf16_sizes_of)(rp, &s, pv, f16, cw = ABF_CW_MIN);
    const size_t taken = z.qt4 + z.shared;
    if (taken + z.least > floats)
        return 0;                    /* too little room: the f32 path, which copes */
    if (f16) {
        /* Qᵀ as the stored f16 bits, lanes past the rows 0. */
        const size_t d = job->head_dim, ld = ABF_LD16(rp);
        uint16_t *qt = (uint16_t *)ws;
        memset(qt, 0, d * ld * sizeof *qt);
        for (size_t r = 0; r < job->rows; r++) {
            const uint16_t *q = job->row[r].q;
            for (size_t p = 0; p < d; p++)
                qt[p * ld + r] = q[p];
        }
        b->d = d;
        b->rp = rp;
        b->qt4 = qt;
        b->qk = b->f16 = 1;
        return taken;
    }
    const size_t nq = (job->head_dim + 3) / 4;
    b->strict = !pv;
    b->d = job->head_dim;
    b->nq = nq;
    b->rp = rp;
    b->cw = cw;
    b->qt4 = (uint16_t *)ws;
    float *sh = ws + z.qt4;
    b->k4 = (uint16_t *)sh;
    b->kwide = sh + ABF_ALIGN(ABF_KCH * nq * 2);
    b->p4 = (uint16_t *)sh;
    b->v4 = (uint16_t *)(sh + ABF_ALIGN(ABF_KQ * rp * 2));
    b->vwide = sh + ABF_ALIGN(ABF_KQ * rp * 2) + ABF_ALIGN(ABF_KQ * ABF_UP(cw, 2 * VL) * 2);
    if (!SIMD_NAME(pack_qt4)(b, job, sh)) {
        memset(b, 0, sizeof *b);
        return 0;
    }
    b->qk = 1;
    b->pv = pv;
    return taken;
}

static int SIMD_NAME(bf16_qk)(const simd_bf16 *b, const qkv_attn_job *job, size_t t0, size_t n,
                              size_t kmin, size_t kmax, float *st, size_t rp, float *cmax)
{
    const size_t d = b->d, nq = b->nq;
    const qkv_dtype t = job->k.dtype;
    (void)n;
#ifdef ABF_F16_QK
    if (b->f16) {   /* K in place, page run by page run */
        for (size_t k0 = kmin, m; k0 < kmax; k0 += m) {
            m = qkv_kv_run(&job->k, t0 + k0, kmax - k0);
            const uint16_t *k = qkv_kv_row(&job->k, t0 + k0);
            ABF_F16_QK(k, job->k.row_bytes / sizeof *k, m, d, b->qt4, ABF_LD16(rp), rp,
                       st + k0 * rp, job->scale, cmax);
        }
        return 1;
    }
#endif
    if (b->strict && SIMD_NAME(rows_subnormal)(&job->k, t0 + kmin, kmax - kmin, d))
        return 0;
    float *crow[8];
    for (size_t k0 = kmin; k0 < kmax; k0 += ABF_KCH) {
        const size_t nk = kmax - k0 < ABF_KCH ? kmax - k0 : ABF_KCH;
        qkv_kv_cursor kc = qkv_kv_at(&job->k, t0 + k0);
        for (size_t jp = 0; jp < (nk + 1) / 2; jp++) {
            const unsigned char *r0 = qkv_kv_next(&kc);
            const unsigned char *r1 = 2 * jp + 1 < nk ? qkv_kv_next(&kc) : NULL;
            uint16_t *out = b->k4 + jp * nq * 8;
            if (t == QKV_BF16) {
                SIMD_NAME(pack_pairs)(out, (const uint16_t *)r0, (const uint16_t *)r1, NULL, NULL,
                                      d, nq, 0);
            } else if (t == QKV_F32) {
                SIMD_NAME(pack_pairs)(out, NULL, NULL, (const float *)r0, (const float *)r1, d, nq, 0);
            } else {
                job->k.to_f32(d, r0, b->kwide);
                if (r1)
                    job->k.to_f32(d, r1, b->kwide + d);
                SIMD_NAME(pack_pairs)(out, NULL, NULL, b->kwide, r1 ? b->kwide + d : NULL, d, nq, 0);
            }
        }
        for (size_t j0 = 0; j0 < nk; j0 += 8) {
            const size_t mr = nk - j0 < 8 ? nk - j0 : 8;
            for (size_t i = 0; i < mr; i++)
                crow[i] = st + (k0 + j0 + i) * rp;
            for (size_t v0 = 0; v0 < rp; v0 += 2 * VL)
                SIMD_NAME(bf16_mm_any)(mr, rp - v0 < 2 * VL ? rp - v0 : 2 * VL, nq,
                                       b->k4 + j0 / 2 * nq * 8, nq, 1, b->qt4 + 4 * v0, rp / 2,
                                       crow, v0, 0, NULL, job->scale, cmax ? cmax + v0 : NULL);
        }
    }
    return 1;
}

/* The keys [klo, khi) that rows [i0, i0 + mr) see in [kmin, kmax), as a
   range of quads [*q0, *q1) of p4 / v4; 0 when there are none. */
static int SIMD_NAME(block_quads)(const int32_t *lo, const int32_t *hi, size_t i0, size_t mr,
                                  size_t kmin, size_t kmax, size_t *q0, size_t *q1)
{
    size_t klo, khi;
    if (!qkv_rows_key_span(lo, hi, i0, mr, kmin, kmax, &klo, &khi))
        return 0;
    *q0 = (klo - kmin) / 4;
    *q1 = (khi - kmin + 3) / 4;
    return 1;
}

static int SIMD_NAME(bf16_pv)(const simd_bf16 *b, const qkv_attn_job *job, size_t t0, size_t kmin,
                              size_t kmax, const float *st, size_t rp, const int32_t *lo,
                              const int32_t *hi, const float *alpha, int plain)
{
    const size_t dv = job->v_head_dim, nkq = (kmax - kmin + 3) / 4, half = rp / 2;
    const qkv_dtype t = job->v.dtype;
    for (size_t kq = 0; kq < nkq; kq++) {
        const float *rows[4];
        for (size_t u = 0; u < 4; u++)
            rows[u] = kmin + 4 * kq + u < kmax ? st + (kmin + 4 * kq + u) * rp : NULL;
        SIMD_NAME(pack_quads)(b->p4 + kq * half * 8, NULL, rows, rp, rp, 0);
    }
    float *crow[8];
    for (size_t c0 = 0; c0 < dv; c0 += b->cw) {
        const size_t nc = dv - c0 < b->cw ? dv - c0 : b->cw, cwp = ABF_UP(nc, 2 * VL);
        int bad = 0;
        qkv_kv_cursor vc = qkv_kv_at(&job->v, t0 + kmin);
        for (size_t kq = 0; kq < nkq; kq++) {
            const unsigned char *r[4];
            for (size_t u = 0; u < 4; u++)
                r[u] = kmin + 4 * kq + u < kmax ? qkv_kv_next(&vc) : NULL;
            uint16_t *out = b->v4 + kq * (cwp / 2) * 8;
            if (t == QKV_BF16) {
                const uint16_t *rh[4];
                for (size_t u = 0; u < 4; u++)
                    rh[u] = r[u] ? (const uint16_t *)r[u] + c0 : NULL;
                bad |= SIMD_NAME(pack_quads)(out, rh, NULL, nc, cwp, !plain);
            } else {
                const float *rf[4];
                for (size_t u = 0; u < 4; u++) {
                    if (!r[u] || t == QKV_F32) {
                        rf[u] = r[u] ? (const float *)r[u] + c0 : NULL;
                        continue;
                    }
                    job->v.to_f32(nc, r[u] + qkv_dtype_bytes(t, c0), b->vwide + u * b->cw);
                    rf[u] = b->vwide + u * b->cw;
                }
                bad |= SIMD_NAME(pack_quads)(out, NULL, rf, nc, cwp, !plain);
            }
        }
        /* In a plain tile no key is hidden, so Inf and NaN go through the
           products as they would in f32. */
        if (bad) {
            SIMD_NAME(pv_exact_bf16)(b, job, st, rp, kmin, kmax, lo, hi, alpha, cwp, nc, c0);
            continue;
        }
        for (size_t i0 = 0; i0 < job->rows; i0 += 8) {
            const size_t mr = job->rows - i0 < 8 ? job->rows - i0 : 8;
            size_t q0, q1;
            if (!SIMD_NAME(block_quads)(lo, hi, i0, mr, kmin, kmax, &q0, &q1))
                continue;
            int scale = 0;
            for (size_t i = 0; i < mr; i++) {
                crow[i] = job->row[i0 + i].acc;
                scale |= alpha[i0 + i] != 1.0f;
            }
            for (size_t jc = 0; jc < nc; jc += 2 * VL)
                SIMD_NAME(bf16_mm_any)(mr, nc - jc < 2 * VL ? nc - jc : 2 * VL, q1 - q0,
                                       b->p4 + (q0 * half + i0 / 2) * 8, 1, half,
                                       b->v4 + (q0 * (cwp / 2) + jc / 2) * 8, cwp / 2, crow,
                                       c0 + jc, 1, scale ? alpha + i0 : NULL, 1.0f, NULL);
        }
    }
    return 1;
}

static void SIMD_NAME(bf16_end)(const simd_bf16 *b)
{
    (void)b;
}

#define SIMD_BF16 1
#define simd_bf16_ws SIMD_NAME(bf16_ws)
#define simd_bf16_begin SIMD_NAME(bf16_begin)
#define simd_bf16_qk SIMD_NAME(bf16_qk)
#define simd_bf16_pv SIMD_NAME(bf16_pv)
#define simd_bf16_end SIMD_NAME(bf16_end)

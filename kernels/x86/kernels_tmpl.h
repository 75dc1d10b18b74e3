/*
 * The x86 kernels written once for any vector width, in the style of
 * SLEEF's helper headers: the including file (avx2.c, avx512.c) defines the
 * vocabulary (avx2/vocab.h, avx512/vocab.h), then includes this file
 * once. It holds the stage kernels (scores, softmax, weighted_sum) and the
 * microkernels of the one fused driver (kernels/simd/attention.h), which
 * it then includes.
 *
 * The includer provides
 *   VL                       lanes per vector (8 or 16)
 *   vf, vm                   a vector of floats, a lane mask
 *   X86_ISA_SUFFIX           _avx2, _avx512: ends every function name
 *   GEMM_MR, GEMM_NV         the microkernel's tile: MR rows × NV vectors
 *   GEMM_TILE                the tile as it reads in names, e.g. 6x64
 *   SCORES_KC, WSUM_KC       the largest depth of the cache blocks; the
 *                            ones used are chosen from the CPU's caches
 *                            (X86_NAME(blocks_for), see there)
 *   v_zero v_set1 v_load v_store v_tailmask v_loadm v_loadm_or v_storem
 *   v_add v_sub v_mul v_div v_fmadd v_max v_gt v_eq v_ne v_or v_sel v_bits
 *   v_hmax v_hsum v_hsum_lanes v_fold2_max v_fold2_add v_fold4_max v_fold4_add
 *   v_exp v_tanh
 *   v_exp_sleef (the stage softmax's: the contract names SLEEF's)
 *   v_in_range v_transpose v_i32_to_f v_pin
 *   PV_FOLD_SCALES           1: the decode P·V of a Q8_0/Q4_0 V folds each
 *                            key's block scale into its weights (see
 *                            pv_weights); 0: it scales V's vectors
 *
 * One microkernel does all the multiplying (BLIS style):
 *     C[i][·] := post · (pre_i · C[i][·] + Σ_p A[i][p] · B[p][·])
 * for i < mr <= GEMM_MR rows and nc <= GEMM_NV·VL columns. A is
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
/* The most rows gemm_ukr takes: GEMM_MR, and on 32 registers of 16 lanes
   also the P·V panels of pv_wide (PV_WIDE_MR rows × 2 vectors). */
#if VL == 16
#define PV_WIDE_MR 12
#define GEMM_MR_MAX PV_WIDE_MR
#else
#define GEMM_MR_MAX GEMM_MR
#endif

#define X86_ALIGN _Alignas(64)

/* The stored dtypes, widened as loaded (simd/load_dt.h): the microkernel's
   16-bit B and the decode kernels' K and V. */
#define SIMD_SUFFIX X86_ISA_SUFFIX
#define VL_MAX VL
V_INLINE float v_f16_scalar(const void *p)
{
    uint16_t h;
    memcpy(&h, p, sizeof h);
    return _cvtsh_ss(h);
}
V_INLINE void v_prefetch(const void *p) { _mm_prefetch((const char *)p, _MM_HINT_T0); }
#include "simd/load_dt.h"

/* ---- the microkernel ------------------------------------------------------ */

/* bt, mr, nv and tail are compile-time constants at every call (see
   gemm_any), so the loops over them unroll and acc[][] lives in registers.
   B is stored as bt (f32, f16 or bf16; ldb counts its elements), a 16-bit
   B widened as each vector is loaded. With tail, the last vector of B and
   C is accessed through mask lm (its first tn lanes) only, so a row of V or
   of the output may end exactly at its last element. byrow: B's rows by
   pointer instead, row p from value ldb of the row at bp[p]; ap (not NULL)
   likewise A's, row i from value rsa of the row at ap[i]. */
V_INLINE void gemm_ukr(const qkv_dtype bt, const int mr, const int nv, const int tail,
                       const int byrow, size_t k, const float *a, const unsigned char *const *ap,
                       size_t rsa, size_t csa,
                       const void *b, const unsigned char *const *bp, size_t ldb,
                       float *const *c, size_t coff, vm lm, size_t tn,
                       int load_c, const float *pre, float post, float *cmax)
{
    const size_t row_bytes = qkv_dtype_bytes(bt, ldb);
    const unsigned char *brow = (const unsigned char *)b;
    vf acc[GEMM_MR_MAX][GEMM_NV];
    const float *ar[GEMM_MR_MAX];
SIMD_UNROLL
    for (int i = 0; i < mr; i++) {
        ar[i] = ap ? (const float *)(const void *)ap[i] + rsa : a + (size_t)i * rsa;
SIMD_UNROLL
        for (int v = 0; v < nv; v++)
            acc[i][v] = v_zero();
    }
    for (size_t p = 0, ac = 0; p < k; p++, ac += csa, brow += row_bytes) {
        if (byrow)
            brow = bp[p] + qkv_dtype_bytes(bt, ldb);
        vf bv[GEMM_NV];
SIMD_UNROLL
        for (int v = 0; v < nv; v++) {
            const size_t col = (size_t)v * VL;
            if (!(tail && v == nv - 1))
                bv[v] = SIMD_NAME(load_dt)(bt, brow, col);
            else if (bt == QKV_F32)   /* the mask made once per call */
                bv[v] = v_loadm((const float *)brow + col, lm);
            else
                bv[v] = SIMD_NAME(load_dtn)(bt, brow, col, tn);
        }
SIMD_UNROLL
        for (int i = 0; i < mr; i++) {
            const vf ai = v_set1(ar[i][ac]);
SIMD_UNROLL
            for (int v = 0; v < nv; v++)
                acc[i][v] = v_fmadd(ai, bv[v], acc[i][v]);
        }
    }
    const vf vpost = v_set1(post);
SIMD_UNROLL
    for (int i = 0; i < mr; i++) {
        float *cr = c[i] + coff;
        const vf vpre = pre ? v_set1(pre[i]) : v_zero();
SIMD_UNROLL
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
                v_store(cmax + v * VL, v_max(x, v_load(cmax + v * VL)));
            if (masked)
                v_storem(cr + v * VL, lm, x);
            else
                v_store(cr + v * VL, x);
        }
    }
}

/* Columns [c0, c0 + nc) of a block: how many vectors, whether the last one
   is partial, its mask and its lanes. */
typedef struct X86_NAME(colblock) {
    int nv, tail;
    vm lm;
    size_t tn;
} X86_NAME(colblock);

V_INLINE X86_NAME(colblock) X86_NAME(cols)(size_t nc)
{
    X86_NAME(colblock) cb;
    cb.nv = (int)((nc + VL - 1) / VL);
    cb.tail = nc % VL != 0;
    cb.tn = nc - (size_t)(cb.nv - 1) * VL;
    cb.lm = v_tailmask(cb.tn);
    return cb;
}

/* The microkernel for any 1 <= mr <= GEMM_MR and 1 <= nc <= GEMM_NR
   columns, B stored as bt (rows by pointer with byrow, as gemm_ukr): one
   specialised copy per shape, so edge tiles run the same register code
   with fewer rows or vectors instead of a scalar loop; an nc known when
   compiled leaves only its copies. */
V_INLINE void X86_NAME(gemm_any_t)(const qkv_dtype bt, const int byrow, int mr, size_t nc,
                                   size_t k, const float *a, const unsigned char *const *ap, size_t rsa,
                                   size_t csa,
                                   const void *b, const unsigned char *const *bp, size_t ldb,
                                   float *const *c, size_t coff, int load_c, const float *pre,
                                   float post, float *cmax)
{
    const X86_NAME(colblock) cb = X86_NAME(cols)(nc);
    const int nv = cb.nv, tail = cb.tail;
    const vm lm = cb.lm;
    const size_t tn = cb.tn;
#define GEMM_CALL(MR_, NV_)                                                                \
    do {                                                                                   \
        if (tail)                                                                          \
            gemm_ukr(bt, MR_, NV_, 1, byrow, k, a, ap, rsa, csa, b, bp, ldb, c, coff, lm, tn,\
                     load_c, pre, post, cmax);                                             \
        else                                                                               \
            gemm_ukr(bt, MR_, NV_, 0, byrow, k, a, ap, rsa, csa, b, bp, ldb, c, coff, lm, tn,\
                     load_c, pre, post, cmax);                                             \
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

/* The microkernel for f32 B (gemm_any_t's shapes), inlined into its
   caller and specialised for its constants: the fused driver's Q·Kᵀ (A
   by row pointers, csa 1, no pre) calls it so; gemm_any is its copy out
   of line.
   gcc 12 inlined gemm_any there on AVX2 by itself until the file grew
   (the 8-row decode form), and then called it: AVX2 prefill, 8 heads,
   n = 512, d = 64, callgrind: 632 M instructions inlined by gcc, 644 M
   called, 589 M with this. Zen 5, paired against the build before the
   8-row form: AVX2 n = 2048 d = 128 0.969 of the time, n = 512 d = 64
   causal 0.966; AVX-512 n = 2048 d = 64 0.987-0.991, d = 128 causal 0.994
   (there gcc never inlined it). */
V_INLINE void X86_NAME(gemm_inline)(int mr, size_t nc, size_t k, const float *a,
                                    const unsigned char *const *ap, size_t rsa, size_t csa,
                                    const float *b, size_t ldb, float *const *c, size_t coff,
                                    int load_c, const float *pre, float post, float *cmax)
{
    X86_NAME(gemm_any_t)(QKV_F32, 0, mr, nc, k, a, ap, rsa, csa, b, NULL, ldb, c, coff, load_c,
                         pre, post, cmax);
}

static void gemm_any(int mr, size_t nc, size_t k, const float *a, const unsigned char *const *ap,
                     size_t rsa, size_t csa, const float *b, size_t ldb, float *const *c,
                     size_t coff, int load_c, const float *pre, float post, float *cmax)
{
    X86_NAME(gemm_inline)(mr, nc, k, a, ap, rsa, csa, b, ldb, c, coff, load_c, pre, post, cmax);
}

/* gemm_any with load_c, post 1 and no cmax for a full panel of GEMM_NR
   columns, B[p] the values from boff on of the row at bp[p], stored as bt
   (f32, f16, bf16): the fused driver's P·V on a V in short pages
   (simd_gemm_rows). Full panels only: 6 microkernel copies a dtype, where
   gemm_any has 48. */
static void X86_NAME(gemm_rows)(qkv_dtype bt, int mr, size_t k, const float *a, size_t rsa,
                                size_t csa, const unsigned char *const *bp, size_t boff,
                                float *const *c, size_t coff, const float *pre)
{
#define ROWS_T(T_)                                                                          \
    X86_NAME(gemm_any_t)(T_, 1, mr, GEMM_NR, k, a, NULL, rsa, csa, NULL, bp, boff, c, coff, 1, \
                         pre, 1.0f, NULL)
    if (bt == QKV_F16)
        ROWS_T(QKV_F16);
    else if (bt == QKV_BF16)
        ROWS_T(QKV_BF16);
    else
        ROWS_T(QKV_F32);
#undef ROWS_T
}

#if VL == 16
/* gemm_any with load_c, post 1 and no cmax for a panel of up to
   PV_WIDE_MR rows × 2 vectors (32 columns) of B stored as bt (f32, f16,
   bf16, widened as loaded): the fused driver's P·V (simd_pv_wide). A
   tile's V, 64 keys of v_head_dim values, does not stay in L1 beside the
   acc rows and P, so each panel of rows reads it again from L2 (and
   widens a 16-bit V again): panels of 12 rows read it 3 times for 32
   rows, where GEMM_MR = 6 rows × 64 columns read it 6 times (both keep
   24 accumulators). Zen 5, AVX-512, 8 heads, one thread, f32, paired
   against 6 × 64: n = 2048 d = 128 0.990-0.993 of the time, d = 64
   0.982-0.986, causal d = 64 0.983; n = 256 d = 64 0.971-0.989;
   avx512bf16 d = 64 0.980. Panels of 16 or 24 rows × 1 vector (2 passes
   over V) took 1.02-1.07: a broadcast a FMA. */
static void X86_NAME(pv_wide)(qkv_dtype bt, int mr, size_t k, const float *a, size_t csa,
                              const void *b, size_t ldb, float *const *c, size_t coff,
                              const float *pre)
{
    const vm lm = v_tailmask(VL);
#define PV_WIDE(T_, MR_)                                                                       \
    case MR_:                                                                                  \
        gemm_ukr(T_, MR_, 2, 0, 0, k, a, NULL, 1, csa, b, NULL, ldb, c, coff, lm, VL, 1, pre, \
                 1.0f, NULL);                                                                  \
        break
#define PV_WIDE_T(T_)                                                                          \
    switch (mr) {                                                                              \
        PV_WIDE(T_, 1); PV_WIDE(T_, 2); PV_WIDE(T_, 3); PV_WIDE(T_, 4);                        \
        PV_WIDE(T_, 5); PV_WIDE(T_, 6); PV_WIDE(T_, 7); PV_WIDE(T_, 8);                        \
        PV_WIDE(T_, 9); PV_WIDE(T_, 10); PV_WIDE(T_, 11);                                      \
    default:                                                                                   \
        PV_WIDE(T_, 12);                                                                       \
    }
    if (bt == QKV_F16)
        PV_WIDE_T(QKV_F16)
    else if (bt == QKV_BF16)
        PV_WIDE_T(QKV_BF16)
    else
        PV_WIDE_T(QKV_F32)
#undef PV_WIDE_T
#undef PV_WIDE
}
#endif

/* gemm_any with B stored as f16 or bf16 (bt), read in place: the fused
   driver's P·V on a 16-bit V (simd_gemm_b16 in simd/attention.h). */
static void X86_NAME(gemm_any_b16)(qkv_dtype bt, int mr, size_t nc, size_t k, const float *a,
                                   size_t rsa, size_t csa, const void *b, size_t ldb,
                                   float *const *c, size_t coff, int load_c, const float *pre,
                                   float post, float *cmax)
{
    if (bt == QKV_F16)
        X86_NAME(gemm_any_t)(QKV_F16, 0, mr, nc, k, a, NULL, rsa, csa, b, NULL, ldb, c, coff,
                             load_c, pre, post, cmax);
    else
        X86_NAME(gemm_any_t)(QKV_BF16, 0, mr, nc, k, a, NULL, rsa, csa, b, NULL, ldb, c, coff,
                             load_c, pre, post, cmax);
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

/* The cache blocks of the stage kernels, chosen once from the CPU's caches
   (BLIS's per-configuration block sizes, as data): a KC × GEMM_NR panel of
   V takes at most 2/3 of L1d, the rest being P's rows and the output's; a
   block of MC rows × KC keys of P takes about 3/16 of L2. On a 48 KiB L1d
   (Zen 5, Sapphire Rapids) that is the compile-time largest KC of each ISA
   (128 floats for AVX-512, 256 for AVX2); on a 32 KiB L1d (Zen 4,
   Skylake-SP) AVX-512's V panels are 80 deep (Zen 4, paired, 128 over 80:
   0.98-1.01 at m = n = 1024 and 4096, dv = 64 and 128).
   A panel of Kᵀ may fill L1d: the microkernel reads GEMM_NV vectors of it
   per GEMM_MR × GEMM_NV FMAs, which L2 serves where Q's rows push some of
   it out, while a head_dim cut in two passes writes S twice. Zen 4 (32 KiB
   L1d), AVX-512, d = 128, paired, one pass of 128 over two (80 + 48):
   m = n = 256 0.98, 1024 0.97, 2048 0.87, 4096 0.92-0.94. */
static size_t X86_NAME(scores_kc) = SCORES_KC, X86_NAME(wsum_kc) = WSUM_KC;
static size_t X86_NAME(wsum_mc) = 192;
/* The bytes of S from which scores streams it out (L3, on cores with
   256-bit FMA units; SIZE_MAX: never): see scores_f32. */
static size_t X86_NAME(scores_stream_from) = SIZE_MAX;

static size_t X86_NAME(clamp_round)(size_t x, size_t step, size_t lo, size_t hi)
{
    x = x / step * step;
    return x < lo ? lo : x > hi ? hi : x;
}

static void X86_NAME(blocks_for)(const qkv_cpu_view *c)
{
    if (c->l1d) {
        const size_t panel = c->l1d / (GEMM_NR * sizeof(float));
        X86_NAME(scores_kc) = X86_NAME(clamp_round)(panel, 16, 32, SCORES_KC);
        X86_NAME(wsum_kc) = X86_NAME(clamp_round)(panel * 2 / 3, 16, 32, WSUM_KC);
    }
    if (c->l3 && c->fma_256_bit)
        X86_NAME(scores_stream_from) = c->l3;
    if (c->l2)
        X86_NAME(wsum_mc) = X86_NAME(clamp_round)(c->l2 * 3 / 16 / (X86_NAME(wsum_kc) * sizeof(float)),
                                                  GEMM_MR, 96, 384);
}

/* Whether scores may stream S out with non-temporal stores: where a row
   of a micro-tile is whole lines, four of them (AVX-512's 64 columns).
   AVX2's one line a row lost: Zen 4, m = n = 4096, 1.33 of the time at
   d = 64, 1.19 at 128; so did four of its panels' tiles streamed out
   together as rows of 64 columns, 1.10 and 0.99. */
#define SCORES_STREAM (GEMM_NR * sizeof(float) >= 256)

/* Rows [0, mr) of a tile of sums into S (rows 64-byte aligned) with
   non-temporal stores, as gemm_ukr finishes them: with add, plus the
   partial sums S holds from an earlier pass over head_dim, then times
   post. */
static void X86_NAME(stream_tile)(int mr, float (*tile)[GEMM_NR], float *s, size_t lds, int add,
                                  float post)
{
    const vf vpost = v_set1(post);
    for (int i = 0; i < mr; i++, s += lds)
        for (int v = 0; v < GEMM_NV; v++) {
            vf x = v_load(tile[i] + v * VL);
            if (add)
                x = v_add(v_load(s + v * VL), x);
            v_stream(s + v * VL, v_mul(x, vpost));
        }
}

/* Each panel of Kᵀ (scores_kc × GEMM_NR) is packed once and then serves
   every row of Q. Q is the microkernel's broadcast side: GEMM_MR floats per
   step of GEMM_MR × GEMM_NV FMAs, little enough to come from L2 or L3, so
   Q needs no cache block of its own.
   An S bigger than L3 goes to memory whatever the stores, and each line
   stored the usual way is first read in: there (SCORES_STREAM, S on
   64-byte lines) the last pass over head_dim puts each tile in L1 and
   streams it out, whole lines that nothing reads first. Zen 4 (32 MiB
   L3), AVX-512, one head, m = n = 4096, paired, both orders: streamed
   over stored in one build, the host busy (load 2), d = 64 0.89 of the
   time, d = 128 0.96; over the build before, the host quiet, d = 64 0.97,
   d = 128 (with its one pass) 0.93, and with the softmax and the weighted
   sum after it 0.97-0.98 at either d. Writing each vector out from the
   microkernel's registers instead of through L1: 0.99-1.01 of that.
   Streamed, an S that fits L3 made scores alone faster (m = n = 1024,
   0.82-0.85) and the three stages slower (1.015; 1.01-1.02 at 512 and
   256), the softmax then reading S from memory. Only where it was
   measured to win: on Zen 5, whose FMA units are 512 bits wide, tiles
   streamed the same way took 1.05-1.3 of the time (AVX2 and AVX-512,
   m = n = 4096), so cores that are not fma_256_bit (Zen 5, Intel's,
   untimed since) store S the usual way. */
static void scores_f32(size_t m, size_t n, size_t d, float scale,
                       const float *q, size_t ldq, const float *k, size_t ldk,
                       float *s, size_t lds)
{
    X86_ALIGN float kt[SCORES_KC * GEMM_NR];
    X86_ALIGN float tile[GEMM_MR][GEMM_NR];
    float *crow[GEMM_MR];
    const int stream = SCORES_STREAM && (uintptr_t)s % 64 == 0 && lds % 16 == 0 &&
                       m * lds > X86_NAME(scores_stream_from) / sizeof(float);
    for (size_t jc = 0; jc < n; jc += GEMM_NR) {
        const size_t nc = n - jc < GEMM_NR ? n - jc : GEMM_NR;
        const X86_NAME(colblock) cb = X86_NAME(cols)(nc);
        const size_t w = (size_t)cb.nv * VL;
        for (size_t pc = 0; pc < d; pc += X86_NAME(scores_kc)) {
            const size_t kc = d - pc < X86_NAME(scores_kc) ? d - pc : X86_NAME(scores_kc);
            /* The scale is applied once, to the finished dot product, as
               the scalar reference does. */
            const float post = pc + kc >= d ? scale : 1.0f;
            pack_kt(kt, w, k + jc * ldk + pc, ldk, nc, kc);
            for (size_t ic = 0; ic < m; ic += GEMM_MR) {
                const int mr = (int)(m - ic < GEMM_MR ? m - ic : GEMM_MR);
                float *const c = s + ic * lds + jc;
                if (stream && nc == GEMM_NR && pc + kc >= d) {
                    for (int i = 0; i < mr; i++)
                        crow[i] = tile[i];
                    gemm_any(mr, nc, kc, q + ic * ldq + pc, NULL, ldq, 1, kt, w, crow, 0, 0,
                             NULL, 1.0f, NULL);
                    X86_NAME(stream_tile)(mr, tile, c, lds, pc > 0, post);
                    continue;
                }
                for (int i = 0; i < mr; i++)
                    crow[i] = c + (size_t)i * lds;
                /* kt is padded with zeros to w columns: only the store of
                   the last vector needs the mask. */
                gemm_any(mr, nc, kc, q + ic * ldq + pc, NULL, ldq, 1, kt, w, crow, 0, pc > 0, NULL,
                         post, NULL);
            }
        }
    }
    if (stream)   /* the streamed lines before any later store of the caller's */
        _mm_sfence();
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
        /* The next row is asked for, line by line, while this one's exps
           run: its max sweep would otherwise wait on memory with nothing
           to overlap. Zen 4, one thread, paired, both orders: m = n = 4096
           (S from memory) AVX-512 0.70-0.72 of the time, AVX2 0.83-0.87;
           1024 0.96 and 1.00, 256 0.99. */
        const unsigned char *next = i + 1 < m ? (const unsigned char *)(row + lds) : NULL;
        for (j = 0; j + 2 * VL <= nfull; j += 2 * VL) {
            SIMD_NAME(prefetch_part)(next, j * sizeof(float), (j + 2 * VL) * sizeof(float), 0);
            const vf e0 = v_exp_sleef(v_sub(v_load(row + j), vmax));
            const vf e1 = v_exp_sleef(v_sub(v_load(row + j + VL), vmax));
            v_store(row + j, e0);
            v_store(row + j + VL, e1);
            sum0 = v_add(sum0, e0);
            sum1 = v_add(sum1, e1);
        }
        for (; j < nfull; j += VL) {
            const vf e = v_exp_sleef(v_sub(v_load(row + j), vmax));
            v_store(row + j, e);
            sum0 = v_add(sum0, e);
        }
        if (rem) {
            /* Masked lanes read -INFINITY and so add exp(-inf) = 0. */
            const vf e = v_exp_sleef(v_sub(v_loadm_or(row + nfull, tm, ninf), vmax));
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

/* Rows of P per block (wsum_mc): MC × KC floats of P stay in L2 while
   every column block of V passes over them, so P, the one operand too big
   for any cache, is read from memory once. */

/* Blocked as BLIS does (A = P, B = V): a block of WSUM_MC rows × WSUM_KC
   keys of P in L2, a WSUM_KC × GEMM_NR panel of V in L1 reused by every
   micro-panel of GEMM_MR rows. V is used in place: its rows are already
   contiguous along the output columns, and the last vector of each row is
   read through the mask, never past the row's end.
   P comes from memory in the first column panel of a block, whose rows lie
   a page or more apart, where hardware prefetchers stop: each micro-panel
   asks for the next one's rows while it is multiplied. That reads P at the
   pace of one column panel's FMAs, sizeof(float) / GEMM_NV bytes a vector
   FMA. At 2 bytes (AVX2's 16-column panels), 4 bytes a cycle at two FMAs a
   cycle, 15 GB/s at 3.7 GHz: most of what one core reads from memory, and
   more than it gets with one micro-panel (6 KiB) asked for ahead. So there
   every micro-panel of every column panel also asks for its share of the
   next block's lines (into L2), and P streams at the pace of the whole
   block.
   Zen 4, one thread, m = n = 4096 (P from memory), paired, both orders:
   AVX2 dv = 64 0.81-0.85 of the time, 128 0.92-0.93, 256 0.98; where P
   stays in cache the extra prefetches cost a little or nothing (m = n =
   256 1.01, 1024 1.02-1.03 at dv = 64, 0.97-0.99 at 128). AVX-512 (1
   byte) took 1.07 at dv = 64 and 1.02-1.035 at 128 with them. */
#define WSUM_SPREAD (sizeof(float) / GEMM_NV >= 2)
static void weighted_sum_f32(size_t m, size_t n, size_t dv,
                             const float *p, size_t ldp, const float *v, size_t ldv,
                             float *o, size_t ldo)
{
    float *crow[GEMM_MR];
    const size_t mc = X86_NAME(wsum_mc), kcb = X86_NAME(wsum_kc), line = 64 / sizeof(float);
    for (size_t ic0 = 0; ic0 < m; ic0 += mc) {
        const size_t ic1 = m - ic0 < mc ? m : ic0 + mc;
        for (size_t pc = 0; pc < n; pc += kcb) {
            const size_t kc = n - pc < kcb ? n - pc : kcb;
            /* The next block: rows [nr0, nr1), nl lines from key np0 each,
               `share` of them a micro-panel, from line nline of row nrow. */
            const size_t np0 = pc + kc < n ? pc + kc : 0, nr0 = np0 ? ic0 : ic1;
            const size_t nr1 = np0 ? ic1 : m - ic1 < mc ? m : ic1 + mc;
            const size_t nl = ((n - np0 < kcb ? n - np0 : kcb) + line - 1) / line;
            const size_t calls =
                (dv + GEMM_NR - 1) / GEMM_NR * ((ic1 - ic0 + GEMM_MR - 1) / GEMM_MR);
            const size_t share = WSUM_SPREAD ? ((nr1 - nr0) * nl + calls - 1) / calls : 0;
            size_t nrow = nr0, nline = 0;
            for (size_t jc = 0; jc < dv; jc += GEMM_NR) {
                const size_t nc = dv - jc < GEMM_NR ? dv - jc : GEMM_NR;
                for (size_t ic = ic0; ic < ic1; ic += GEMM_MR) {
                    const int mr = (int)(ic1 - ic < GEMM_MR ? ic1 - ic : GEMM_MR);
                    for (int i = 0; i < mr; i++)
                        crow[i] = o + (ic + (size_t)i) * ldo + jc;
                    if (jc == 0)
                        for (size_t i = ic + GEMM_MR; i < ic + 2 * GEMM_MR && i < ic1; i++)
                            SIMD_NAME(prefetch_part)((const unsigned char *)(p + i * ldp + pc), 0,
                                                     kc * sizeof(float), 0);
                    for (size_t l = 0; l < share && nrow < nr1; l++) {
                        _mm_prefetch((const char *)(p + nrow * ldp + np0 + nline * line),
                                     _MM_HINT_T1);
                        if (++nline == nl)
                            nline = 0, nrow++;
                    }
                    gemm_any(mr, nc, kc, p + ic * ldp + pc, NULL, ldp, 1, v + pc * ldv + jc, ldv,
                             crow, 0, pc > 0, NULL, 1.0f, NULL);
                }
            }
        }
    }
}
#undef WSUM_SPREAD

/* ---- the microkernels of the fused driver --------------------------------- */

/* VL values of Q row p for the decode dot products, kept in a register
   (v_pin) where that measured faster: AVX2, Zen 3, 32/8 heads (R = 4),
   d = 128, paired, pinned over not: K/V from memory f16 0.86-0.90, bf16
   0.91-0.94, Q8_0 0.93-0.95, f32 0.96-1.00 (L2-resident 0.89); not where
   it lost: Q4_0 1.03 (its nibbles take two more registers), R = 8
   1.17-1.31 (8 Q vectors and 8 sums fill the 16 registers), R = 1 1.02;
   R = 2 was even. */
V_INLINE vf X86_NAME(q_vec)(const int R, const qkv_dtype t, const float *p)
{
    const vf x = v_load(p);
    return R == 4 && t != QKV_Q4_0 ? v_pin(x) : x;
}

/* The dot products of qk_dot_t for K stored in blocks (Q8_0, Q4_0; d a
   multiple of 32, which VL divides), block by block, each key's scale
   read once a block (AVX2, decode, 2048 keys: 13% fewer instructions for
   Q8_0, 17% for Q4_0, than through load_dt). What it costs beyond f32's
   FMAs is the scale's multiply, on the FMA ports: AVX-512 on Zen 5, 4
   rows, d = 128, 256 keys in L1, TSC ticks a key, f32 11.0 (the FMA
   peak), Q8_0 18.5-19.2, Q8_0 without the multiply 14.3 (the widening
   itself is almost free); the scales of 4 keys converted at once 18.7-19.1,
   the multiply moved after a reduction per block 22.9-23.1. */
V_INLINE void X86_NAME(qk_dot_blocks)(const int R, const qkv_dtype t, const float *const *q,
                                      size_t d, const unsigned char *const *kr, vf *acc)
{
    const int KK = VL / R;
    const size_t bytes = qkv_dtype_bytes(t, QKV_BLOCK_VALUES);
    for (size_t c = 0, o = 0; c < d; c += QKV_BLOCK_VALUES, o += bytes) {
        vf scale[VL];
SIMD_UNROLL
        for (int kk = 0; kk < KK; kk++)
            scale[kk] = SIMD_NAME(block_scale)(t, kr[kk] + o);
SIMD_UNROLL
        for (int h = 0; h < QKV_BLOCK_VALUES / VL; h++) {
            vf qv[8];
SIMD_UNROLL
            for (int r = 0; r < R; r++)
                qv[r] = X86_NAME(q_vec)(R, t, q[r] + c + h * VL);
SIMD_UNROLL
            for (int kk = 0; kk < KK; kk++) {
                const vf kv = SIMD_NAME(block_vec)(t, kr[kk] + o, (size_t)h * VL, scale[kk]);
SIMD_UNROLL
                for (int r = 0; r < R; r++)
                    acc[kk * R + r] = v_fmadd(kv, qv[r], acc[kk * R + r]);
            }
        }
    }
}

/* The start of a block of the decode dot products (qk_dot_t,
   qk_dot_bf16_t): the rows of keys j0 .. j0 + KK - 1 into kr (keys past n
   repeat the last), the VL accumulators zeroed. */
V_INLINE void X86_NAME(qk_block_start)(const int KK, const unsigned char *const *krow, size_t j0,
                                       size_t n, const unsigned char **kr, vf *acc)
{
SIMD_UNROLL
    for (int kk = 0; kk < KK; kk++)
        kr[kk] = krow[j0 + (size_t)kk < n ? j0 + (size_t)kk : n - 1];
SIMD_UNROLL
    for (int i = 0; i < VL; i++)
        acc[i] = v_zero();
}

/* Dot products for a job of few rows (decode: a GQA group of R = 4 or 8
   rows, or R = 1, 2). Lanes as rows would leave most of each vector idle, so
   here the vectors run along head_dim instead: blocks of R rows × VL/R
   keys keep VL dot products in flight (each K load serves R rows), and one
   transposing reduction turns them into one vector, lane R·key + row. K
   rows are read in place in their stored dtype, widened in registers:
   out[j·ors + r] = scale · dot(q_r, K_j) for j < round_up(n, VL/R), r < R;
   and after each block, the rows kpre[j] of the block's keys are
   prefetched (kpre NULL: none). */
V_INLINE void X86_NAME(qk_dot_t)(const int R, const qkv_dtype t, const float *const *q, size_t d,
                                 const unsigned char *const *krow, size_t n, float scale,
                                 float *out, size_t ors, const unsigned char *const *kpre)
{
    const size_t kbytes = qkv_dtype_bytes(t, d);
    const int KK = VL / R;
    const size_t nfull = d / VL * VL;
    const vm dm = v_tailmask(d > nfull ? d - nfull : VL);
    const vf vscale = v_set1(scale);
    for (size_t j0 = 0; j0 < n; j0 += (size_t)KK) {
        const unsigned char *kr[VL];
        vf acc[VL];
        X86_NAME(qk_block_start)(KK, krow, j0, n, kr, acc);
        size_t c = 0;
        if (qkv_dtype_block(t) > 1) {   /* d is whole blocks */
            X86_NAME(qk_dot_blocks)(R, t, q, d, kr, acc);
            c = d;
        }
        for (; c < nfull; c += VL) {
            vf qv[8];
SIMD_UNROLL
            for (int r = 0; r < R; r++)
                qv[r] = X86_NAME(q_vec)(R, t, q[r] + c);
SIMD_UNROLL
            for (int kk = 0; kk < KK; kk++) {
                const vf kv = SIMD_NAME(load_dt)(t, kr[kk], c);
SIMD_UNROLL
                for (int r = 0; r < R; r++)
                    acc[kk * R + r] = v_fmadd(kv, qv[r], acc[kk * R + r]);
            }
        }
        if (c < d) {   /* the partial last vector of the rows, masked */
            vf qv[8];
SIMD_UNROLL
            for (int r = 0; r < R; r++)
                qv[r] = v_loadm(q[r] + c, dm);
SIMD_UNROLL
            for (int kk = 0; kk < KK; kk++) {
                const vf kv = SIMD_NAME(load_dtn)(t, kr[kk], c, d - c);
SIMD_UNROLL
                for (int r = 0; r < R; r++)
                    acc[kk * R + r] = v_fmadd(kv, qv[r], acc[kk * R + r]);
            }
        }
        for (size_t j = j0; kpre && j < j0 + (size_t)KK && j < n; j++)
            SIMD_NAME(prefetch_part)(kpre[j], 0, kbytes, SIMD_NAME(prefetch_l2));
        /* lane R·key + row, as v_hsum_lanes leaves them: out[j·ors + r],
           ors being R (simd_qk_dot's contract) */
        v_store(out + j0 * ors, v_mul(v_hsum_lanes(acc), vscale));
    }
}

/* The out-of-line dot products, one function a row count R_ (1, 2, 4,
   8) with an instance a dtype, and the call of the one for `rows`. Out of
   line on purpose: inlined into the driver, gcc 12 ran short of registers
   there and kept Q's vectors on the stack (AVX2 decode, 32768 keys: 15.5
   against 13.5 ms out of line). One function a row count, as pv_rows:
   with every row count's instances in one function, clang 14 gave each
   instance stack slots of its own, 3-5.7 KiB of frame where a few-row
   job's stack is deepest. QK_ROWS_FN: the function of `rows` among F1,
   F2, F4, F8. */
#define QK_ROWS_FN(rows, F1, F2, F4, F8) ((rows) == 1 ? F1 : (rows) == 2 ? F2 : (rows) == 4 ? F4 : F8)

#define QK_DOT_T(T_) X86_NAME(qk_dot_t)(R, T_, q, d, krow, n, scale, out, ors, kpre)
#define QK_DOT_R(R_)                                                                      \
    static __attribute__((noinline)) void X86_NAME(qk_dot_r##R_)(                       \
        qkv_dtype t, const float *const *q, size_t d, const unsigned char *const *krow, \
        size_t n, float scale, float *out, size_t ors, const unsigned char *const *kpre) \
    {                                                                                     \
        enum { R = R_ };                                                                  \
        SIMD_DTYPE_SWITCH(t, QK_DOT_T)                                                    \
    }
QK_DOT_R(1)
QK_DOT_R(2)
QK_DOT_R(4)
QK_DOT_R(8)
#undef QK_DOT_R
#undef QK_DOT_T

static void X86_NAME(qk_dot)(int rows, qkv_dtype t, const float *const *q, size_t d,
                             const unsigned char *const *krow, size_t n, float scale,
                             float *out, size_t ors, const unsigned char *const *kpre)
{
    QK_ROWS_FN(rows, X86_NAME(qk_dot_r1), X86_NAME(qk_dot_r2), X86_NAME(qk_dot_r4),
               X86_NAME(qk_dot_r8))(t, q, d, krow, n, scale, out, ors, kpre);
}

#ifdef X86_BF16_TMPL_H
/* Decode Q·Kᵀ in QKV_FPMATH_BF16 on the bf16 ISAs: Q and K rounded to bf16
   and multiplied by vdpbf16ps, 32 products an instruction where an FMA
   does 16, as qk_dot_t does it otherwise (and with its layout of
   accumulators: lane R·key + row). Only where vdpbf16ps issues as often as
   the FMA (bf16_qk_full_rate, from qkv_cpu_view at init); Intel's cores,
   at half the rate, would gain nothing. K that is not bf16 is widened as
   qk_dot_t does it and rounded, which takes most of the gain back: AMD
   EPYC Zen 5, 32/8 heads, d = 128, one thread, BF16 over STRICT mode
   alternating in one process, this Q·Kᵀ alone (P·V f32), 512 keys in
   cache: K bf16 0.82, Q8_0 0.95, f32 0.94, f16 0.95, Q4_0 0.98; 32768
   keys from memory: bf16 0.83-0.87, Q8_0 0.95, f32 0.97, f16 0.95-0.97,
   Q4_0 0.98. */
static int X86_NAME(bf16_qk_full_rate);

/* Head_dim padded to whole vectors of 32 bf16 (the rows qk_dot_bf16 reads). */
#define SIMD_BF16_QK_DPAD(d) (((d) + 31) / 32 * 32)

/* Q's rows q[0 .. R-1] (f32, d values) rounded to bf16 (nearest even, as
   vcvtne2ps2bf16 rounds: bf16_cvt32), zero past d: qb[r] = buf + r · SIMD_BF16_QK_DPAD(d). */
static void X86_NAME(q_bf16_rows)(int R, const float *const *q, size_t d, uint16_t *buf,
                                  const uint16_t **qb)
{
    const size_t dp = SIMD_BF16_QK_DPAD(d);
    for (int r = 0; r < R; r++) {
        uint16_t *o = buf + (size_t)r * dp;
        for (size_t c = 0; c < dp; c += 32) {
            const size_t n = d - c < 32 ? d - c : 32;
            const vf lo = n >= 16 ? v_load(q[r] + c) : v_loadm(q[r] + c, v_tailmask(n));
            const vf hi = n > 16 ? v_loadm(q[r] + c + 16, v_tailmask(n - 16)) : v_zero();
            _mm512_storeu_si512(o + c, BF16_NAME(bf16_cvt32)(lo, hi));
        }
        qb[r] = o;
    }
}

/* Values [c, c + 32) of a K row stored as t, rounded to bf16 (zero past
   d): the words pair values 2i and 2i + 1, as Q's rows do. */
V_INLINE __m512bh X86_NAME(k_bf16)(const qkv_dtype t, const unsigned char *row, size_t c, size_t d)
{
    const size_t n = d - c < 32 ? d - c : 32;
    if (t == QKV_BF16) {
        const uint16_t *p = (const uint16_t *)(const void *)row + c;
        return (__m512bh)(n == 32 ? _mm512_loadu_si512(p)
                                  : _mm512_maskz_loadu_epi16((__mmask32)((1u << n) - 1), p));
    }
    vf lo, hi;
    if (qkv_dtype_block(t) > 1) {   /* c starts a block */
        const unsigned char *b = row + c / QKV_BLOCK_VALUES * qkv_dtype_bytes(t, QKV_BLOCK_VALUES);
        const vf sc = SIMD_NAME(block_scale)(t, b);
        lo = SIMD_NAME(block_vec)(t, b, 0, sc);
        hi = SIMD_NAME(block_vec)(t, b, VL, sc);
    } else {
        lo = n >= 16 ? SIMD_NAME(load_dt)(t, row, c) : SIMD_NAME(load_dtn)(t, row, c, n);
        hi = n == 32 ? SIMD_NAME(load_dt)(t, row, c + 16)
                     : n > 16 ? SIMD_NAME(load_dtn)(t, row, c + 16, n - 16) : v_zero();
    }
    return (__m512bh)BF16_NAME(bf16_cvt32)(lo, hi);
}

/* qk_dot_t with Q as bf16 rows qb (SIMD_BF16_QK_DPAD(d) values each). exact
   (STRICT mode, Q and K stored as bf16, no subnormal in Q): the K vectors
   are checked for subnormals as they are read, and at the first block of
   keys that holds one it stops and returns 1 (the caller computes the
   keys in f32); else 0. */
V_INLINE int X86_NAME(qk_dot_bf16_t)(const int R, const qkv_dtype t, const int exact,
                                     const uint16_t *const *qb, size_t d,
                                     const unsigned char *const *krow, size_t n, float scale,
                                     float *out, size_t ors, const unsigned char *const *kpre)
{
    const size_t kbytes = qkv_dtype_bytes(t, d);
    const int KK = VL / R;
    const vf vscale = v_set1(scale);
    const __m512i expo = _mm512_set1_epi16(0x7f80), mant = _mm512_set1_epi16(0x007f);
    for (size_t j0 = 0; j0 < n; j0 += (size_t)KK) {
        __mmask32 sub = 0;
        const unsigned char *kr[VL];
        vf acc[VL];
        X86_NAME(qk_block_start)(KK, krow, j0, n, kr, acc);
        for (size_t c = 0; c < d; c += 32) {
            __m512bh qv[8];
SIMD_UNROLL
            for (int r = 0; r < R; r++)
                qv[r] = (__m512bh)_mm512_loadu_si512(qb[r] + c);
SIMD_UNROLL
            for (int kk = 0; kk < KK; kk++) {
                const __m512bh kv = X86_NAME(k_bf16)(t, kr[kk], c, d);
                if (exact)
                    sub |= _mm512_testn_epi16_mask((__m512i)kv, expo) &
                           _mm512_test_epi16_mask((__m512i)kv, mant);
SIMD_UNROLL
                for (int r = 0; r < R; r++)
                    acc[kk * R + r] = _mm512_dpbf16_ps(acc[kk * R + r], qv[r], kv);
            }
        }
        for (size_t j = j0; kpre && j < j0 + (size_t)KK && j < n; j++)
            SIMD_NAME(prefetch_part)(kpre[j], 0, kbytes, SIMD_NAME(prefetch_l2));
        if (exact && sub)
            return 1;
        /* lane R·key + row, as v_hsum_lanes leaves them: out[j·ors + r],
           ors being R (simd_qk_dot's contract) */
        v_store(out + j0 * ors, v_mul(v_hsum_lanes(acc), vscale));
    }
    return 0;
}

/* simd_qk_dot's contract with Q as bf16 rows (q_bf16_rows); exact: as
   qk_dot_bf16_t says (K stored as bf16), and so is what it returns. Out
   of line and one function a row count, as qk_dot. */
#define QK_BF_T(T_) X86_NAME(qk_dot_bf16_t)(R, T_, 0, qb, d, krow, n, scale, out, ors, kpre)
#define QK_BF_R(R_)                                                                          \
    static __attribute__((noinline)) int X86_NAME(qk_dot_bf16_r##R_)(                       \
        qkv_dtype t, int exact, const uint16_t *const *qb, size_t d,                        \
        const unsigned char *const *krow, size_t n, float scale, float *out, size_t ors,   \
        const unsigned char *const *kpre)                                                   \
    {                                                                                        \
        enum { R = R_ };                                                                     \
        if (exact)                                                                           \
            return X86_NAME(qk_dot_bf16_t)(R, QKV_BF16, 1, qb, d, krow, n, scale, out, ors,  \
                                           kpre);                                            \
        SIMD_DTYPE_SWITCH(t, QK_BF_T)                                                        \
        return 0;                                                                            \
    }
QK_BF_R(1)
QK_BF_R(2)
QK_BF_R(4)
QK_BF_R(8)
#undef QK_BF_R
#undef QK_BF_T

static int X86_NAME(qk_dot_bf16)(int rows, qkv_dtype t, int exact, const uint16_t *const *qb,
                                 size_t d, const unsigned char *const *krow, size_t n,
                                 float scale, float *out, size_t ors,
                                 const unsigned char *const *kpre)
{
    return QK_ROWS_FN(rows, X86_NAME(qk_dot_bf16_r1), X86_NAME(qk_dot_bf16_r2),
                      X86_NAME(qk_dot_bf16_r4),
                      X86_NAME(qk_dot_bf16_r8))(t, exact, qb, d, krow, n, scale, out, ors, kpre);
}
/* Decode P·V in QKV_FPMATH_BF16 with V stored as bf16 (v_head_dim a
   multiple of 32), beside qk_dot_bf16 (same ISAs, same CPUs): P rounded
   to bf16 and V read in place, a pair of keys a vdpbf16ps. simd_pv_rows'
   contract otherwise (R lanes of p, rows <= R of them real, n <= ATT_BN
   keys, pre NULL or the rows' factors, vpre rows to prefetch). Only for a
   bf16 V: another dtype would be widened and rounded first, as K is for
   qk_dot_bf16, for little gain. With both, K and V bf16, same runs as
   there: 0.74 of STRICT's time in cache, 0.81 from memory; 64 query
   heads on 8 (in the 8-row form ROWS8 replaced) 0.94, 8 on 8 (one row)
   0.97. */

/* Keys a tile of P·V may have (ATT_BN, checked below attention.h). */
#define PV_BF16_KEYS 64

/* The weights of key pairs for R lanes a key (1, 2, 4 or 8, a constant,
   so that the permutes' indexes are too): p2[jj·R + r] = (P[2jj][r],
   P[2jj+1][r]) as a word of two bf16 (bf16_pack2) for the (n + 1) / 2
   pairs, the partner of an odd last key weighing 0. A step takes 32/R
   keys, 32 floats, and two permutes split them into the even keys' lanes
   and the odd keys'. */
V_INLINE void X86_NAME(p_pairs)(const int R, const float *p, size_t n, uint32_t *p2)
{
    int32_t ie[16], io[16];
    for (int i = 0; i < 16; i++) {
        ie[i] = i / R * 2 * R + i % R;
        io[i] = ie[i] + R;
    }
    const __m512i even_of = _mm512_loadu_si512(ie), odd_of = _mm512_loadu_si512(io);
    for (size_t j = 0; j < n; j += (size_t)(32 / R)) {
        const size_t at = j * (size_t)R, left = n * (size_t)R - at;   /* lanes below key n */
        const vf a = left >= 16 ? v_load(p + at) : v_loadm(p + at, v_tailmask(left));
        const vf b = left >= 32 ? v_load(p + at + 16)
                     : left > 16 ? v_loadm(p + at + 16, v_tailmask(left - 16)) : v_zero();
        _mm512_storeu_si512(p2 + at / 2,
                            BF16_NAME(bf16_pack2)(_mm512_permutex2var_ps(a, even_of, b),
                                                  _mm512_permutex2var_ps(a, odd_of, b)));
    }
}

/* Columns [c0, c0 + 16·NV) of P·V for R lanes: words of V pairs (V[2jj][c],
   V[2jj+1][c]) made by one permute per 16 columns, each serving every row. */
V_INLINE void X86_NAME(pv_bf16_blk)(const int R, const int NV, size_t rows, const uint32_t *p2,
                                    size_t ps, const unsigned char *const *vrow, size_t n,
                                    size_t c0, size_t vbytes, float *const *acc, const float *pre,
                                    const unsigned char *const *vpre)
{
    const __m512i ilo = _mm512_set_epi16(47, 15, 46, 14, 45, 13, 44, 12, 43, 11, 42, 10, 41, 9, 40, 8,
                                         39, 7, 38, 6, 37, 5, 36, 4, 35, 3, 34, 2, 33, 1, 32, 0);
    const __m512i ihi = _mm512_add_epi16(ilo, _mm512_set1_epi16(16));
    vf a[8][8];
SIMD_UNROLL
    for (int r = 0; r < R; r++)
SIMD_UNROLL
        for (int v = 0; v < NV; v++)
            a[r][v] = v_zero();
    for (size_t j = 0; j < n; j += 2) {
        const uint16_t *v0 = (const uint16_t *)(const void *)vrow[j] + c0;
        const uint16_t *v1 = j + 1 < n ? (const uint16_t *)(const void *)vrow[j + 1] + c0 : NULL;
        __m512bh w[8];
SIMD_UNROLL
        for (int h = 0; h < NV / 2; h++) {
            const __m512i x0 = _mm512_loadu_si512(v0 + 32 * h);
            const __m512i x1 = v1 ? _mm512_loadu_si512(v1 + 32 * h) : _mm512_setzero_si512();
            w[2 * h] = (__m512bh)_mm512_permutex2var_epi16(x0, ilo, x1);
            w[2 * h + 1] = (__m512bh)_mm512_permutex2var_epi16(x0, ihi, x1);
        }
SIMD_UNROLL
        for (int r = 0; r < R; r++) {
            const __m512bh pw = (__m512bh)_mm512_set1_epi32((int)p2[j / 2 * ps + (size_t)r]);
SIMD_UNROLL
            for (int v = 0; v < NV; v++)
                a[r][v] = _mm512_dpbf16_ps(a[r][v], pw, w[v]);
        }
        if (vpre && c0 == 0) {
            SIMD_NAME(prefetch_part)(vpre[j], 0, vbytes, SIMD_NAME(prefetch_l2));
            if (j + 1 < n)
                SIMD_NAME(prefetch_part)(vpre[j + 1], 0, vbytes, SIMD_NAME(prefetch_l2));
        }
    }
SIMD_UNROLL
    for (int r = 0; r < R; r++) {
        if ((size_t)r >= rows)
            break;
        const vf s = pre ? v_set1(pre[r]) : v_set1(1.0f);
SIMD_UNROLL
        for (int v = 0; v < NV; v++) {
            float *o = acc[r] + c0 + v * VL;
            v_store(o, v_fmadd(s, v_load(o), a[r][v]));
        }
    }
}

/* simd_pv_rows for V stored as bf16, dv a multiple of 32. Out of line, as
   pv_rows. */
static __attribute__((noinline)) void X86_NAME(pv_rows_bf16)(size_t rows, const float *p, size_t prs,
                                                           const unsigned char *const *vrow,
                                                           size_t n, size_t dv, float *const *acc,
                                                           const float *pre,
                                                           const unsigned char *const *vpre)
{
    X86_ALIGN uint32_t p2[PV_BF16_KEYS / 2 * 8];
    if (prs == 8)
        X86_NAME(p_pairs)(8, p, n, p2);
    else if (prs == 4)
        X86_NAME(p_pairs)(4, p, n, p2);
    else if (prs == 2)
        X86_NAME(p_pairs)(2, p, n, p2);
    else
        X86_NAME(p_pairs)(1, p, n, p2);
    const size_t vbytes = 2 * dv;
    /* R × NV accumulators: 16 where the columns allow (of 32 registers). */
#define PV_BF(R_, NV_)                                                                      \
    (X86_NAME(pv_bf16_blk)(R_, NV_, rows, p2, R_, vrow, n, c0, vbytes, acc, pre, vpre), \
     c0 += 16 * (NV_))
    for (size_t c0 = 0; c0 < dv;) {
        const size_t left = dv - c0;
        if (prs == 8)
            PV_BF(8, 2);
        else if (prs == 4)
            left >= 64 ? PV_BF(4, 4) : PV_BF(4, 2);
        else if (prs == 2)
            left >= 128 ? PV_BF(2, 8) : left >= 64 ? PV_BF(2, 4) : PV_BF(2, 2);
        else
            left >= 128 ? PV_BF(1, 8) : left >= 64 ? PV_BF(1, 4) : PV_BF(1, 2);
    }
#undef PV_BF
}
#define simd_bf16_pv_rows X86_NAME(pv_rows_bf16)
#define simd_bf16_subnormal BF16_NAME(any_subnormal)
#define SIMD_BF16_DECODE 1
#define SIMD_BF16_DECODE_ON X86_NAME(bf16_qk_full_rate)
#define simd_bf16_q_rows X86_NAME(q_bf16_rows)
#define simd_bf16_qk_dot X86_NAME(qk_dot_bf16)
#endif

/* P·V for a job of few rows (R = 1, 2, 4 or 8 lanes of P, rows <= R of them
   real): acc_r = pre_r · acc_r + Σ_j P[j·prs + r] · V_j over n keys, for
   the columns [c0, c0 + nv·VL) (the last vector `tail` columns when
   tail > 0), V rows read in place in their stored dtype and widened once:
   every row of the job takes each V vector from registers. For block
   dtypes, where the ISA folds the scales (PV_FOLD_SCALES), p holds the
   weights with each key's block scale folded in (pv_weights), those of
   the columns' second block pbs floats on, and V's quants are taken as
   they are; else V's vectors are scaled as they are widened, each block's
   scale made once a key (block_scale, block_vec). The rows vpre are
   prefetched as pf says (vpre NULL: none). */
V_INLINE void X86_NAME(pv_blk)(const int R, const int NV, const int tailed, const qkv_dtype t,
                               size_t rows, const float *p, size_t prs, size_t pbs,
                               const unsigned char *const *vrow, size_t n, size_t c0,
                               size_t tail, float *const *acc, const float *pre,
                               const unsigned char *const *vpre, const SIMD_NAME(pv_pf) pf)
{
    vf a[8][8];   /* R × NV of them used: 8 × 2, 4 × 4, 2 × 8 at most */
    const vm tm = v_tailmask(tailed ? tail : VL);
    const int blocked = qkv_dtype_block(t) > 1, spans2 = blocked && NV * VL > QKV_BLOCK_VALUES;
    const int two = PV_FOLD_SCALES && spans2;   /* two weights a row and key */
SIMD_UNROLL
    for (int r = 0; r < R; r++) {
        /* Lanes past the job's rows load the last row and never store. */
        const float *ar = acc[(size_t)r < rows ? (size_t)r : rows - 1] + c0;
        const vf s = pre ? v_set1(pre[(size_t)r < rows ? (size_t)r : rows - 1]) : v_set1(1.0f);
SIMD_UNROLL
        for (int v = 0; v < NV; v++) {
            const vf x = tailed && v == NV - 1 ? v_loadm(ar + v * VL, tm) : v_load(ar + v * VL);
            a[r][v] = pre ? v_mul(x, s) : x;
        }
    }
    /* Block dtypes: the columns are part of one block or whole blocks
       (pv_cols' steps), from byte `at` of the row. */
    const size_t bytes = qkv_dtype_bytes(t, QKV_BLOCK_VALUES), off = c0 % QKV_BLOCK_VALUES;
    const size_t at = qkv_dtype_bytes(t, c0 - off);
    size_t pf_next = pf.first;
    for (size_t j = 0; j < n; j++) {
        vf b[8], sc[2] = {v_zero(), v_zero()};
        if (blocked && !PV_FOLD_SCALES)
            for (int i = 0; i <= spans2; i++)
                sc[i] = SIMD_NAME(block_scale)(t, vrow[j] + at + (size_t)i * bytes);
SIMD_UNROLL
        for (int v = 0; v < NV; v++) {
            const size_t c = off + (size_t)v * VL;
            const unsigned char *blk = vrow[j] + at + c / QKV_BLOCK_VALUES * bytes;
            b[v] = blocked && PV_FOLD_SCALES ? SIMD_NAME(block_raw)(t, blk, c % QKV_BLOCK_VALUES)
                   : blocked ? SIMD_NAME(block_vec)(t, blk, c % QKV_BLOCK_VALUES,
                                                    sc[c / QKV_BLOCK_VALUES])
                   : tailed && v == NV - 1
                       ? SIMD_NAME(load_dtn)(t, vrow[j], c0 + (size_t)v * VL, tail)
                       : SIMD_NAME(load_dt)(t, vrow[j], c0 + (size_t)v * VL);
        }
        const float *pj = p + j * prs;
        if (vpre && j == pf_next) {
            SIMD_NAME(prefetch_part)(vpre[j], pf.b0, pf.b1, SIMD_NAME(prefetch_l2));
            pf_next += pf.step;
        }
SIMD_UNROLL
        for (int r = 0; r < R; r++) {
            const vf w0 = v_set1(pj[r]), w1 = two ? v_set1(pj[pbs + r]) : w0;
SIMD_UNROLL
            for (int v = 0; v < NV; v++)
                a[r][v] = v_fmadd(two && v * VL >= QKV_BLOCK_VALUES ? w1 : w0, b[v], a[r][v]);
        }
    }
SIMD_UNROLL
    for (int r = 0; r < R; r++) {
        if ((size_t)r >= rows)
            break;
SIMD_UNROLL
        for (int v = 0; v < NV; v++) {
            if (tailed && v == NV - 1)
                v_storem(acc[r] + c0 + v * VL, tm, a[r][v]);
            else
                v_store(acc[r] + c0 + v * VL, a[r][v]);
        }
    }
}

/* Columns per block: R × NV accumulators stay in registers (AVX-512:
   4 × 4 or 8 × 2 of 32 zmm; AVX2: 4 × 2 or 8 × 1 of 16 ymm; one or two
   rows: 4). With 32 registers (GEMM_NV 4), one or two rows of a dtype
   without blocks take 8 (PV_NV12_WIDE) where v_head_dim is whole steps of
   8 vectors, so that each key's row pointer and weights serve 8 or 16
   FMAs (AMD EPYC Zen 5, AVX-512, one thread, d = 128, 32768 keys from
   memory, paired, over 4: 8/8 heads f32 0.97-1.00 of the time, f16
   0.97-0.99, bf16 0.94-0.97; 16/8 heads f32 0.97-0.98, f16 0.96-0.97,
   bf16 0.97; AVX2, one row, 1.03-1.12). Every step of a block dtype
   divides a block of 32 columns or is two blocks, so with head_dim a
   multiple of 32 a column block of a block dtype is part of one block or
   whole blocks. */
#define PV_NV12 4
#define PV_NV12_WIDE 8
#define PV_NV4 (GEMM_NV)
#define PV_NV8 (GEMM_NV / 2)

/* Keys whose folded weights pv_cols holds: a decode tile (simd_pv_rows
   takes n <= ATT_BN, checked below attention.h); blocks a column block
   spans (AVX-512's 64 columns: 2); R lanes of weights a key. */
#define PV_WKEYS 64
#define PV_WBLOCKS ((PV_NV12 * VL + QKV_BLOCK_VALUES - 1) / QKV_BLOCK_VALUES)
#define PV_WFLOATS(R) (PV_FOLD_SCALES ? PV_WBLOCKS * PV_WKEYS * (R) : 1)

/* w[j·ws + l] = p[j·prs + l] · d_j for j < n, l < ws (1, 2, 4 or 8), d_j the
   scale of the block at byte `at` of V row j: the weights of a block
   dtype's P·V with the scales folded in, so that the quants need no
   multiply: a multiply once per key and block instead of once per key
   and vector, and no scale in the P·V loop's registers (AVX2 decode, Zen
   3, 32/8 heads, d 128, 1024 keys in cache, paired: Q8_0 0.93-0.95 of
   the time, Q4_0 0.96-0.98; from memory, 32768 keys, about the same).
   p·d rounds where d·q was exact: an error of 2^-24 of a weight, far
   inside the contract's tolerance; an Inf or NaN scale gives what it gave
   before (NaN where it meets a zero). AVX-512 scales V instead
   (PV_FOLD_SCALES 0; d·q exact again): there the weights' own pass, and
   where a column block of 64 spans two blocks two broadcasts a row and
   key, cost more than a multiply a vector (AMD EPYC Zen 5, one thread, d = 128,
   paired builds, scaled V over folded weights: 32/8 heads Q8_0 0.93 of
   the time with 1024 keys in cache, 0.88-0.92 with 32768 from memory,
   Q4_0, whose scaled table needs no multiply a vector, 0.98-0.99 and
   0.92-1.00; 8, 16 and 64 query heads, 1024 keys, Q8_0 0.94, 0.95, 0.99,
   Q4_0 0.94, 0.97, 0.95). On AVX2 there, scaling V took 1.04-1.05 of the
   folded weights' time (in cache; from memory 0.94-1.07). */
static void X86_NAME(pv_weights)(const float *p, size_t prs, size_t ws,
                                 const unsigned char *const *vrow, size_t at, size_t n, float *w)
{
    size_t j = 0;
    if (ws == 4 && prs == 4) {   /* two keys a ymm: their scales side by side */
        const __m256i twice = _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1);
        for (; j + 2 <= n; j += 2) {
            uint16_t h0, h1;
            memcpy(&h0, vrow[j] + at, 2);
            memcpy(&h1, vrow[j + 1] + at, 2);
            const __m128 d2 = _mm_cvtph_ps(_mm_cvtsi32_si128((int)(h0 | (uint32_t)h1 << 16)));
            const __m256 d = _mm256_permutevar8x32_ps(_mm256_castps128_ps256(d2), twice);
            _mm256_store_ps(w + j * 4, _mm256_mul_ps(_mm256_loadu_ps(p + j * 4), d));
        }
    }
    for (; j < n; j++) {
        const float d = v_f16_scalar(vrow[j] + at);
        if (ws < 4) {
            for (size_t l = 0; l < ws; l++)
                w[j * ws + l] = p[j * prs + l] * d;
            continue;
        }
        for (size_t l = 0; l < ws; l += 4)
            _mm_store_ps(w + j * ws + l, _mm_mul_ps(_mm_loadu_ps(p + j * prs + l), _mm_set1_ps(d)));
    }
}

/* simd_pv_rows for R lanes and V stored as T: the columns in blocks of NB
   vectors; w has room for PV_WBLOCKS blocks of PV_WKEYS keys' R lanes of
   weights. One copy per dtype, so that other dtypes carry nothing of the
   weights (with the dtype chosen inside, the 8-row f16 decode kept its key
   count on the stack: 5% slower). */
V_INLINE void X86_NAME(pv_cols)(const int R, const qkv_dtype T, size_t rows, const float *p,
                                size_t prs, const unsigned char *const *vrow, size_t n, size_t dv,
                                float *const *acc, const float *pre,
                                const unsigned char *const *vpre, float *w)
{
    const int blocked = qkv_dtype_block(T) > 1;
    const int wide = GEMM_NV == 4 && R <= 2 && !blocked && dv % (PV_NV12_WIDE * VL) == 0;
    const int NB = wide ? PV_NV12_WIDE : R <= 2 ? PV_NV12 : R == 4 ? PV_NV4 : PV_NV8;
    const size_t vbytes = qkv_dtype_bytes(T, dv), step = (size_t)NB * VL;
    const size_t blocks = (dv + step - 1) / step;
    const size_t ws = (size_t)R, wbs = PV_WKEYS * ws, bytes = qkv_dtype_bytes(T, QKV_BLOCK_VALUES);
    const float *pw = blocked && PV_FOLD_SCALES ? w : p;
    const size_t pws = blocked && PV_FOLD_SCALES ? ws : prs;
    for (size_t c0 = 0, blk = 0; c0 < dv; c0 += step, blk++) {
        const size_t nc = dv - c0 < step ? dv - c0 : step;
        /* A column block that starts a block (the steps divide a block or
           are whole blocks) takes the weights of the blocks it spans; the
           others lie in the block before. */
        if (PV_FOLD_SCALES && blocked && c0 % QKV_BLOCK_VALUES == 0)
            for (size_t i = 0; i * QKV_BLOCK_VALUES < nc; i++)
                X86_NAME(pv_weights)(p, prs, ws, vrow, (c0 / QKV_BLOCK_VALUES + i) * bytes, n,
                                     w + i * wbs);
        const SIMD_NAME(pv_pf) pf = SIMD_NAME(pv_prefetch)(blk, blocks, c0, nc, dv, vbytes);
        const int nv = (int)((nc + VL - 1) / VL);
        const size_t tail = nc % VL;
        /* Only rows of f32, f16, bf16 have a partial vector. */
#define PV_T(R_, NV_)                                                                        \
    do {                                                                                     \
        if (!blocked && tail)                                                                \
            X86_NAME(pv_blk)(R_, NV_, 1, T, rows, pw, pws, wbs, vrow, n, c0, tail, acc, pre, \
                             vpre, pf);                                                      \
        else                                                                                 \
            X86_NAME(pv_blk)(R_, NV_, 0, T, rows, pw, pws, wbs, vrow, n, c0, tail, acc, pre, \
                             vpre, pf);                                                      \
    } while (0)
        if (R == 1) {
#if GEMM_NV == 4
            if (nv == 8) PV_T(1, 8); else
#endif
            if (nv == 4) PV_T(1, 4); else if (nv == 3) PV_T(1, 3); else
            if (nv == 2) PV_T(1, 2); else PV_T(1, 1);
        } else if (R == 2) {
#if GEMM_NV == 4
            if (nv == 8) PV_T(2, 8); else
#endif
            if (nv == 4) PV_T(2, 4); else if (nv == 3) PV_T(2, 3); else
            if (nv == 2) PV_T(2, 2); else PV_T(2, 1);
        } else if (R == 4) {
#if GEMM_NV == 4
            if (nv == 4) PV_T(4, 4); else if (nv == 3) PV_T(4, 3); else
#endif
            if (nv == 2) PV_T(4, 2); else PV_T(4, 1);
        } else {
#if GEMM_NV == 4
            if (nv == 2) PV_T(8, 2); else
#endif
            PV_T(8, 1);
        }
#undef PV_T
    }
}

/* Out of line for the same reason as qk_dot, and one function for each R:
   in one function for all of them, gcc's register allocation of the 4-row
   blocks got worse as the others grew (AVX2 Q8_0 decode: 5% more
   instructions once R = 2 came). */
#define PV_COLS(T_) X86_NAME(pv_cols)(R, T_, rows, p, prs, vrow, n, dv, acc, pre, vpre, w)
#define PV_ROWS_R(R_)                                                                          \
    static __attribute__((noinline)) void X86_NAME(pv_rows##R_)(                               \
        size_t rows, const float *p, size_t prs, const unsigned char *const *vrow, size_t n,   \
        size_t dv, qkv_dtype t, float *const *acc, const float *pre,                          \
        const unsigned char *const *vpre)                                                     \
    {                                                                                          \
        enum { R = R_ };                                                                       \
        X86_ALIGN float w[PV_WFLOATS(R)];                                                       \
        SIMD_DTYPE_SWITCH(t, PV_COLS)                                                          \
    }
PV_ROWS_R(1)
PV_ROWS_R(2)
PV_ROWS_R(4)
PV_ROWS_R(8)
#undef PV_ROWS_R
#undef PV_COLS

static void X86_NAME(pv_rows)(size_t rows, const float *p, size_t prs,
                              const unsigned char *const *vrow, size_t n, size_t dv, qkv_dtype t,
                              float *const *acc, const float *pre,
                              const unsigned char *const *vpre)
{
    if (rows <= 2)
        (rows == 1 ? X86_NAME(pv_rows1) : X86_NAME(pv_rows2))(rows, p, prs, vrow, n, dv, t, acc,
                                                              pre, vpre);
    else if (rows <= 4)
        X86_NAME(pv_rows4)(rows, p, prs, vrow, n, dv, t, acc, pre, vpre);
    else
        X86_NAME(pv_rows8)(rows, p, prs, vrow, n, dv, t, acc, pre, vpre);
}

/* mt[j][r] = mask_r[key0 + j] for n keys: the additive mask in the layout
   of the scores, [key][row] with rp lanes a key, so that adding it is one
   vector load per vector of scores. Mask rows are [row][key] in memory, so
   this is a transpose, done in VL × VL blocks in registers. (A masked
   prefill, 8 heads, n = 2048, d = 128, on Zen 5 took 35% longer than an
   unmasked one with a gather per vector of scores, 26% with an
   element-by-element copy, 15% with this.) Decode's 1 to 8 lanes a key are few:
   copied one by one. Rows without a mask read zeros. */
static void X86_NAME(mask_t)(const float *const *mask, size_t rows, size_t key0, size_t n,
                             size_t rp, float *mt)
{
    if (rp % VL) {
        for (size_t r = 0; r < rows; r++)
            for (size_t j = 0; j < n; j++)
                mt[j * rp + r] = mask[r] ? mask[r][key0 + j] : 0.0f;
        return;
    }
    for (size_t r0 = 0; r0 < rows; r0 += VL) {
        for (size_t j0 = 0; j0 < n; j0 += VL) {
            const size_t nk = n - j0 < VL ? n - j0 : VL;
            const vm km = v_tailmask(nk);
            vf x[VL];
            for (size_t i = 0; i < VL; i++) {
                const float *mr = r0 + i < rows ? mask[r0 + i] : NULL;
                x[i] = !mr ? v_zero() : nk == VL ? v_load(mr + key0 + j0) : v_loadm(mr + key0 + j0, km);
            }
            v_transpose(x);
            for (size_t k = 0; k < nk; k++)
                v_store(mt + (j0 + k) * rp + r0, x[k]);
        }
    }
}

#define simd_gemm gemm_any
#define simd_gemm_inline X86_NAME(gemm_inline)
#if VL == 16
#define simd_pv_wide X86_NAME(pv_wide)
#define SIMD_PV_WIDE_MR PV_WIDE_MR
#define SIMD_PV_WIDE_NR (2 * VL)
#endif
#define simd_gemm_b16 X86_NAME(gemm_any_b16)
#define simd_gemm_rows X86_NAME(gemm_rows)
#define simd_qk_dot X86_NAME(qk_dot)
#define simd_pv_rows X86_NAME(pv_rows)
#define simd_mask_t X86_NAME(mask_t)
#define SIMD_TRANSPOSE 1   /* v_transpose, for pack_qt */
#include "simd/attention.h"
_Static_assert(ATT_BN <= PV_WKEYS, "pv_cols holds the folded weights of a decode tile");
#ifdef X86_BF16_TMPL_H
_Static_assert(ATT_BN <= PV_BF16_KEYS, "pv_rows_bf16 holds the weights of a decode tile");
#endif

/* The registry entry of this ISA: everything of the template, and the
   block sizes the planner shares with the driver. */
static void X86_NAME(ctx_fill)(qkv_ctx *c)
{
    c->scores = scores_f32;
    c->softmax = softmax_f32;
    c->weighted_sum = weighted_sum_f32;
    c->attention = SIMD_NAME(attention);
    c->attention_ws = SIMD_NAME(attention_ws);
    c->walk_sweeps = SIMD_NAME(walk_sweeps);
    c->blocks.tile_keys = ATT_BN;
    c->blocks.max_rows = QKV_ATTN_MAX_ROWS;
    X86_NAME(blocks_for)(&c->cpu);
    SIMD_NAME(att_feed_for)(&c->cpu);
#ifdef X86_BF16_TMPL_H
    X86_NAME(bf16_qk_full_rate) = !c->cpu.bf16_dot_half_rate;
    c->rounds_bf16_decode = X86_NAME(bf16_qk_full_rate);
#else
    c->rounds_bf16_decode = 0;
#endif
}

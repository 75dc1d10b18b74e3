/*
 * AVX512-BF16 kernels: the AVX-512 ones (avx512/vocab.h, the x86 template)
 * plus bf16 tiles for the fused driver's prefill form, on vdpbf16ps: one
 * instruction multiplies 16 lanes of bf16 pairs and adds both products to
 * f32, twice the multiply-adds of an FMA (kernels/x86/bf16_tmpl.h says
 * what may be rounded in which qkv_fpmath mode). Decode keeps the f32
 * forms, whose Q·Kᵀ and (V stored as bf16) P·V take vdpbf16ps in BF16
 * mode (x86/kernels_tmpl.h's qk_dot_bf16, pv_rows_bf16). Everything else comes
 * from avx512 (converters, merge), the parent in dispatch/isa_list.h.
 */
#include "kernels.h"

#define X86_ISA_SUFFIX _avx512bf16
#include "avx512/vocab.h"

/* Any head_dim, read in place: an odd last value is loaded alone. */
#define BF16_DPAD 2
#define BF16_PAIR_PAD 1
#define BF16_KROW_PAD 1
#define BF16_KCH 24
#define BF16_K_IN_PLACE(d, n, k0, k1) 1
#define BF16_EXTRA(rp) 0
#define BF16_PREP_P(b, npp) ((void)(b), (void)(npp))
#define BF16_BEGIN(b) ((void)(b))
#define BF16_END(b) ((void)(b))
#include "x86/bf16_tmpl.h"

/* ---- the microkernel ------------------------------------------------------ */

/* C[i][coff + x] := post · (pre_i · C[i][coff + x] + Σ_p A[i][p] · B[p][x]),
   the f32 microkernel's contract (kernels_tmpl.h) on pairs: A[i][p] is the
   word at a + i·rsa + p·csa (in bf16 units, any 2-byte address), B[p][x]
   the word b[p·ldb + x], padded to whole vectors (only the last vector of C
   goes through mask lm). With a_odd the last step's A is one bf16 (its
   pair's upper half is past the row). Q·Kᵀ runs 8 keys × 2 vectors of
   rows, P·V 4 rows × 4 vectors of V columns: 16 accumulators, enough to
   hide vdpbf16ps's latency at two a cycle, and blocks that divide a tile
   (64 keys, 32 rows) evenly. (Zen 5, prefill 8 heads, n = 2048, d = 128:
   12 × 2 and 6 × 4, with a short last block of 4 keys or 2 rows that
   runs latency-bound, took about 5% longer.) */
#define BF16_MR_MAX 8
V_INLINE __m512i bf16_bcast(const uint16_t *p, int single)
{
    uint32_t w;
    if (single)
        w = *p;
    else
        memcpy(&w, p, sizeof w);
    return _mm512_set1_epi32((int)w);
}

V_INLINE void bf16_gemm_ukr(const int mr, const int nv, size_t k, const uint16_t *a, size_t rsa,
                            size_t csa, int a_odd, const uint32_t *b, size_t ldb,
                            float *const *c, size_t coff, vm lm, int load_c, const float *pre,
                            float post, float *cmax)
{
    vf acc[BF16_MR_MAX][4];
    const uint16_t *ar[BF16_MR_MAX];
SIMD_UNROLL
    for (int i = 0; i < mr; i++) {
        ar[i] = a + (size_t)i * rsa;
SIMD_UNROLL
        for (int v = 0; v < nv; v++)
            acc[i][v] = v_zero();
    }
    const size_t steps = k - (size_t)(a_odd != 0);
    size_t p = 0, ap = 0;
    for (; p < steps; p++, ap += csa, b += ldb) {
        __m512i bv[4];
SIMD_UNROLL
        for (int v = 0; v < nv; v++)
            bv[v] = _mm512_loadu_si512(b + v * VL);
SIMD_UNROLL
        for (int i = 0; i < mr; i++) {
            const __m512i ai = bf16_bcast(ar[i] + ap, 0);
SIMD_UNROLL
            for (int v = 0; v < nv; v++)
                acc[i][v] = _mm512_dpbf16_ps(acc[i][v], (__m512bh)ai, (__m512bh)bv[v]);
        }
    }
    if (p < k) {
        __m512i bv[4];
SIMD_UNROLL
        for (int v = 0; v < nv; v++)
            bv[v] = _mm512_loadu_si512(b + v * VL);
SIMD_UNROLL
        for (int i = 0; i < mr; i++) {
            const __m512i ai = bf16_bcast(ar[i] + ap, 1);
SIMD_UNROLL
            for (int v = 0; v < nv; v++)
                acc[i][v] = _mm512_dpbf16_ps(acc[i][v], (__m512bh)ai, (__m512bh)bv[v]);
        }
    }
    const vf vpost = v_set1(post);
SIMD_UNROLL
    for (int i = 0; i < mr; i++) {
        float *cr = c[i] + coff;
        const vf vpre = pre ? v_set1(pre[i]) : v_zero();
SIMD_UNROLL
        for (int v = 0; v < nv; v++) {
            const int last = v == nv - 1;
            vf x = acc[i][v];
            if (load_c) {
                vf old = last ? v_loadm(cr + v * VL, lm) : v_load(cr + v * VL);
                if (pre)
                    old = v_mul(old, vpre);
                x = v_add(old, x);
            }
            x = v_mul(x, vpost);
            if (cmax)
                v_store(cmax + v * VL, v_max(x, v_load(cmax + v * VL)));
            if (last)
                v_storem(cr + v * VL, lm, x);
            else
                v_store(cr + v * VL, x);
        }
    }
}

/* One specialised copy per shape: mr <= 8 rows × 1 or 2 vectors (Q·Kᵀ,
   the job's rows as columns), mr <= 4 × 1 to 4 vectors (P·V). */
#define BF16_CALL(MR_, NV_) \
    bf16_gemm_ukr(MR_, NV_, k, a, rsa, csa, a_odd, b, ldb, c, coff, lm, load_c, pre, post, cmax)
#define BF16_ARGS                                                                             \
    int mr, size_t nc, size_t k, const uint16_t *a, size_t rsa, size_t csa, int a_odd,        \
        const uint32_t *b, size_t ldb, float *const *c, size_t coff, int load_c, const float *pre, \
        float post, float *cmax

static void bf16_gemm_8x2(BF16_ARGS)
{
    const int nv = (int)((nc + VL - 1) / VL);
    const vm lm = v_tailmask(nc - (size_t)(nv - 1) * VL);
#define BF16_ROW(MR_)                  \
    case MR_:                          \
        if (nv == 1) BF16_CALL(MR_, 1); \
        else BF16_CALL(MR_, 2);        \
        break
    switch (mr) {
        BF16_ROW(1); BF16_ROW(2); BF16_ROW(3); BF16_ROW(4); BF16_ROW(5); BF16_ROW(6); BF16_ROW(7);
    default:
        BF16_ROW(8);
    }
#undef BF16_ROW
}

static void bf16_gemm_4x4(BF16_ARGS)
{
    const int nv = (int)((nc + VL - 1) / VL);
    const vm lm = v_tailmask(nc - (size_t)(nv - 1) * VL);
#define BF16_ROW(MR_)                       \
    case MR_:                               \
        if (nv == 1) BF16_CALL(MR_, 1);      \
        else if (nv == 2) BF16_CALL(MR_, 2); \
        else if (nv == 3) BF16_CALL(MR_, 3); \
        else BF16_CALL(MR_, 4);             \
        break
    switch (mr) {
        BF16_ROW(1); BF16_ROW(2); BF16_ROW(3);
    default:
        BF16_ROW(4);
    }
#undef BF16_ROW
}
#undef BF16_CALL
#undef BF16_ARGS

/* The keys [klo, khi) that rows [i0, i0 + mr) see in [kmin, kmax), as a
   range of pairs [*pj0, *pj1) of p2 / v2; 0 when there are none. */
static int block_pairs(const int32_t *lo, const int32_t *hi, size_t i0, size_t mr,
                                  size_t kmin, size_t kmax, size_t *pj0, size_t *pj1)
{
    size_t klo, khi;
    if (!qkv_rows_key_span(lo, hi, i0, mr, kmin, kmax, &klo, &khi))
        return 0;
    *pj0 = (klo - kmin) / 2;
    *pj1 = (khi - kmin + 1) / 2;
    return 1;
}

/* ---- the kernels of bf16_tmpl.h ------------------------------------------------ */

static void BF16_NAME(qk_kernel)(const simd_bf16 *b, const uint16_t *k, size_t ldk, size_t nk,
                                 float *s, size_t rp, float post, float *cmax)
{
    float *crow[BF16_MR_MAX];
    const size_t pairs = (b->d + 1) / 2;
    for (size_t j0 = 0; j0 < nk; j0 += BF16_MR_MAX) {
        const int mr = (int)(nk - j0 < BF16_MR_MAX ? nk - j0 : BF16_MR_MAX);
        for (int i = 0; i < mr; i++)
            crow[i] = s + (j0 + (size_t)i) * rp;
        bf16_gemm_8x2(mr, rp, pairs, k + j0 * ldk, ldk, 2, (int)(b->d & 1), b->qt2, rp, crow, 0, 0,
                      NULL, post, cmax);
    }
}

static void BF16_NAME(pv_kernel)(const simd_bf16 *b, const qkv_attn_job *job, size_t npp,
                                 size_t kmin, size_t kmax, const int32_t *lo, const int32_t *hi,
                                 const float *alpha, size_t cwp, size_t nc, size_t c0)
{
    const size_t rows = job->rows, rp = b->rp;
    float *crow[4];
    (void)npp;
    for (size_t i0 = 0; i0 < rows; i0 += 4) {
        const size_t mr = rows - i0 < 4 ? rows - i0 : 4;
        size_t pj0, pj1;
        if (!block_pairs(lo, hi, i0, mr, kmin, kmax, &pj0, &pj1))
            continue;
        int scale = 0;
        for (size_t i = 0; i < mr; i++) {
            crow[i] = job->row[i0 + i].acc;
            scale |= alpha[i0 + i] != 1.0f;
        }
        for (size_t jc = 0; jc < nc; jc += 4 * VL)
            bf16_gemm_4x4((int)mr, nc - jc < 4 * VL ? nc - jc : 4 * VL, pj1 - pj0,
                          (const uint16_t *)(b->p2 + pj0 * rp + i0), 2, 2 * rp, 0,
                          b->v2 + pj0 * cwp + jc, cwp, crow, c0 + jc, 1, scale ? alpha + i0 : NULL,
                          1.0f, NULL);
    }
}

#include "x86/kernels_tmpl.h"

_Static_assert(ATT_BN == BF16_BN, "bf16_tmpl.h packs tiles of the driver's size");

void qkv_ctx_init_avx512bf16(qkv_ctx *c)
{
    X86_NAME(ctx_fill)(c);
    c->rounds_bf16 = 1;
}

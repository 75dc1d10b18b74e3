/*
 * AMX kernels: avx512bf16's, with the prefill tiles of the fused driver on
 * the tile unit (TDPBF16PS: a 16 × 16 f32 tile += 16 × 32 bf16 times
 * 32 × 16 bf16, 8192 multiply-adds an instruction) and the online softmax
 * between them left on AVX-512, in the one driver (kernels/simd/attention.h
 * through kernels/x86/bf16_tmpl.h, which also says what may be rounded).
 *
 * Q·Kᵀ: the C tile of 16 keys × 32 bf16 of head_dim (K rows as they lie,
 * or copied with zero padding) times Qᵀ in pairs (qt2) IS S[key][row], the
 * driver's layout. P·V: P transposed to [row][key pair] times V in pairs
 * gives 16 rows × 16 columns of O, added to acc with alpha on AVX-512.
 * 2 × 2 tiles of C at a time (tiles 0-3), two of A (4, 5), two of B (6, 7).
 *
 * The tile configuration belongs to the thread: each job loads it before
 * its first tile and releases it after its last, so jobs may run on any
 * thread (the caller's, qkv's pool, an engine's pool) and leave nothing
 * configured behind. Built with QKV_AMX_EMULATE (tests/meson.build), the
 * tile instructions are kernels/amx/tile.h's C emulation (and the AVX-512
 * ones kernels/avx512/emulate.h's), and this file runs on any CPU with
 * AVX2 as qkv_ctx_init_amx_emu.
 */
#include "kernels.h"

#ifdef QKV_AMX_EMULATE
#define X86_ISA_SUFFIX _amx_emu
#define AMX_INIT qkv_ctx_init_amx_emu
void qkv_ctx_init_amx_emu(qkv_ctx *c);
#else
#define X86_ISA_SUFFIX _amx
#define AMX_INIT qkv_ctx_init_amx
#endif
#include "avx512/vocab.h"
#include "amx/tile.h"

static void amx_begin(void)
{
    _Alignas(64) amx_palette cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette_id = 1;
    for (int t = 0; t < 8; t++) {
        cfg.rows[t] = 16;
        cfg.colsb[t] = 64;
    }
    amx_cfg_load(&cfg);
}

/* pt[r·npp + jj] = p2[jj·rp + r]: 16 × 16 blocks of words, transposed as
   floats (the bits go along unchanged). */
static void amx_transpose_p(float *pt, const uint32_t *p2w, size_t rp, size_t npp)
{
    const float *p2 = (const float *)p2w;
    for (size_t j0 = 0; j0 < npp; j0 += 16)
        for (size_t r0 = 0; r0 < rp; r0 += 16) {
            vf x[16];
            for (size_t i = 0; i < 16; i++)
                x[i] = v_load(p2 + (j0 + i) * rp + r0);
            v_transpose(x);
            for (size_t i = 0; i < 16; i++)
                v_store(pt + (r0 + i) * npp + j0, x[i]);
        }
}

/* Tiles read 32 bf16 of head_dim and 16 rows at once: K is read in place
   only when whole tiles of it lie in the tile of keys. */
#define BF16_DPAD 32
#define BF16_PAIR_PAD 16
#define BF16_KROW_PAD 16
#define BF16_KCH 32
#define BF16_K_IN_PLACE(d, n, k0, k1) ((d) % 32 == 0 && (k0) + BF16_UP((k1) - (k0), 16) <= (n))
/* P transposed, [rp][BF16_BN / 2] words, then one C tile of 16 × 16 f32. */
#define BF16_EXTRA(rp) ((rp) * (BF16_BN / 2) + 256)
#define BF16_PREP_P(b, npp) amx_transpose_p((b)->extra, (b)->p2, (b)->rp, npp)
#define BF16_BEGIN(b) amx_begin()
#define BF16_END(b) amx_release()
#include "x86/bf16_tmpl.h"

/* S rows [j0, j0 + 16) from C tiles t (lanes 0-15) and u (16-31), or as
   many as there are keys: a last, partial block goes through `spill`, for
   the driver's score tile has no rows past its keys (with kmin > 0 those
   rows would be another buffer's). */
#define AMX_STORE_KEYS(t, u, j0)                                                         \
    do {                                                                                 \
        const size_t have_ = nk - (j0) < 16 ? nk - (j0) : 16;                            \
        float *dst_ = have_ == 16 ? s + (j0) * rp : spill;                               \
        amx_store(t, dst_, qst);                                                         \
        if (two_r)                                                                       \
            amx_store(u, dst_ + 16, qst);                                                \
        if (have_ < 16)                                                                  \
            memcpy(s + (j0) * rp, spill, have_ * rp * sizeof *s);                        \
    } while (0)

static void BF16_NAME(qk_kernel)(const simd_bf16 *b, const uint16_t *k, size_t ldk, size_t nk,
                                 float *s, size_t rp, float post, float *cmax)
{
    float *spill = b->extra;   /* P·V's room (16 · rp floats of it), free until then */
    const size_t nb = (nk + 15) / 16, steps = b->dp / 16;
    const size_t kst = ldk * sizeof(uint16_t), qst = rp * sizeof(uint32_t);
    const int two_r = rp > 16;
    for (size_t kb = 0; kb < nb; kb += 2) {
        const int two_k = kb + 1 < nb;
        const uint16_t *k0 = k + kb * 16 * ldk;
        amx_zero(0);
        amx_zero(1);
        amx_zero(2);
        amx_zero(3);
        for (size_t t = 0; t < steps; t++) {
            const uint32_t *q = b->qt2 + t * 16 * rp;
            amx_load(4, k0 + t * 32, kst);
            amx_load(6, q, qst);
            amx_dp(0, 4, 6);
            if (two_r) {
                amx_load(7, q + 16, qst);
                amx_dp(1, 4, 7);
            }
            if (two_k) {
                amx_load(5, k0 + 16 * ldk + t * 32, kst);
                amx_dp(2, 5, 6);
                if (two_r)
                    amx_dp(3, 5, 7);
            }
        }
        AMX_STORE_KEYS(0, 1, kb * 16);
        if (two_k)
            AMX_STORE_KEYS(2, 3, kb * 16 + 16);
    }
    /* The scale after the sum, as everywhere; the max over the nk keys. */
    const vf vpost = v_set1(post);
    for (size_t j = 0; j < nk; j++)
        for (size_t l = 0; l < rp; l += VL) {
            const vf x = v_mul(v_load(s + j * rp + l), vpost);
            v_store(s + j * rp + l, x);
            if (cmax)
                v_store(cmax + l, v_max(x, v_load(cmax + l)));
        }
}
#undef AMX_STORE_KEYS

/* acc rows of block rb, columns cb·16 + [0, 16) of the chunk, += the C tile
   t (through the scratch tile), alpha first. */
#define AMX_ADD(t, rb, cb)                                                                   \
    do {                                                                                     \
        if ((size_t)(cb) * 16 < nc) {                                                        \
            amx_store(t, ct, 64);                                                            \
            BF16_NAME(add_tile)(job, ct, (size_t)(rb) * 16, (size_t)(cb) * 16, nc, c0, alpha); \
        }                                                                                    \
    } while (0)

static void BF16_NAME(add_tile)(const qkv_attn_job *job, const float *ct, size_t r0, size_t x0,
                                size_t nc, size_t c0, const float *alpha)
{
    const vm m = v_tailmask(nc - x0 < 16 ? nc - x0 : 16);
    /* One FMA, no branch: alpha is 1 for most rows of most tiles, but
       which ones the predictor cannot know (4% of the BF16-mode prefill on
       a Xeon with AMX), and acc · 1 + ct is acc + ct exactly. */
    for (size_t i = 0; i < 16 && r0 + i < job->rows; i++) {
        float *o = job->row[r0 + i].acc + c0 + x0;
        v_storem(o, m, v_fmadd(v_loadm(o, m), v_set1(alpha[r0 + i]), v_load(ct + i * 16)));
    }
}

static void BF16_NAME(pv_kernel)(const simd_bf16 *b, const qkv_attn_job *job, size_t npp,
                                 size_t kmin, size_t kmax, const int32_t *lo, const int32_t *hi,
                                 const float *alpha, size_t cwp, size_t nc, size_t c0)
{
    const uint32_t *pt = (const uint32_t *)b->extra;
    float *ct = b->extra + b->rp * (BF16_BN / 2);
    const size_t ncb = cwp / 16, steps = npp / 16;
    const size_t pst = npp * sizeof(uint32_t), vst = cwp * sizeof(uint32_t);
    const int two_r = b->rp > 16 && job->rows > 16;
    (void)kmin, (void)kmax, (void)lo, (void)hi;
    for (size_t cb = 0; cb < ncb; cb += 2) {
        const int two_c = cb + 1 < ncb;
        amx_zero(0);
        amx_zero(1);
        amx_zero(2);
        amx_zero(3);
        for (size_t t = 0; t < steps; t++) {
            const uint32_t *v = b->v2 + t * 16 * cwp + cb * 16;
            amx_load(4, pt + t * 16, pst);
            amx_load(6, v, vst);
            amx_dp(0, 4, 6);
            if (two_c) {
                amx_load(7, v + 16, vst);
                amx_dp(1, 4, 7);
            }
            if (two_r) {
                amx_load(5, pt + 16 * npp + t * 16, pst);
                amx_dp(2, 5, 6);
                if (two_c)
                    amx_dp(3, 5, 7);
            }
        }
        AMX_ADD(0, 0, cb);
        if (two_c)
            AMX_ADD(1, 0, cb + 1);
        if (two_r) {
            AMX_ADD(2, 1, cb);
            if (two_c)
                AMX_ADD(3, 1, cb + 1);
        }
    }
}
#undef AMX_ADD

#include "x86/kernels_tmpl.h"

_Static_assert(ATT_BN == BF16_BN, "bf16_tmpl.h packs tiles of the driver's size");

void AMX_INIT(qkv_ctx *c)
{
    X86_NAME(ctx_fill)(c);
    c->rounds_bf16 = 1;
}

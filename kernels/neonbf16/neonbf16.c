/*
 * NEON with FEAT_BF16 and FEAT_FHM: the NEON kernels (neon/neon.c's
 * vocabulary, the Arm template) plus, for the fused driver's prefill form,
 * bf16 tiles on BFMMLA and, in strict mode, the Q·Kᵀ of f16 Q and K on
 * FMLAL (kernels/arm/bf16_tmpl.h says what may be rounded in which
 * qkv_fpmath mode). Decode keeps the f32 forms, as on x86: with a few rows
 * there is no tile to fill (and its f16 K is widened in registers, where
 * FMLAL would only save the FCVTL). Everything else comes from neon
 * (converters, merge), the parent in dispatch/isa_list.h.
 */
#define SIMD_SUFFIX _neonbf16
#define ARM_VOCABULARY_ONLY
#include "neon/neon.c"

/* ---- 16-bit lanes for arm/bf16_tmpl.h ---------------------------------------- */

typedef uint16x8_t vh;
#define VH ((size_t)8)

V_INLINE vh h_zero(void) { return vdupq_n_u16(0); }
V_INLINE vh h_load(const uint16_t *p) { return vld1q_u16(p); }
V_INLINE vh h_load_rep(const uint16_t *p) { return vld1q_u16(p); }
V_INLINE void h_store(uint16_t *p, vh x) { vst1q_u16(p, x); }
/* Partial vectors through a buffer: no access past the n values. */
V_INLINE vh h_loadn(const uint16_t *p, size_t n)
{
    uint16_t t[8] = {0};
    memcpy(t, p, n * sizeof *p);
    return vld1q_u16(t);
}
V_INLINE void h_storen(uint16_t *p, vh x, size_t n)
{
    uint16_t t[8];
    vst1q_u16(t, x);
    memcpy(p, t, n * sizeof *p);
}
/* BFCVTN, BFCVTN2: nearest even under Linux's FPCR. */
V_INLINE vh h_cvt2(vf lo, vf hi)
{
    return vreinterpretq_u16_bf16(vcvtq_high_bf16_f32(vcvtq_low_bf16_f32(lo), hi));
}
V_INLINE vh h_zip1_16(vh a, vh b) { return vzip1q_u16(a, b); }
V_INLINE vh h_zip2_16(vh a, vh b) { return vzip2q_u16(a, b); }
V_INLINE vh h_zip1_32(vh a, vh b)
{
    return vreinterpretq_u16_u32(vzip1q_u32(vreinterpretq_u32_u16(a), vreinterpretq_u32_u16(b)));
}
V_INLINE vh h_zip2_32(vh a, vh b)
{
    return vreinterpretq_u16_u32(vzip2q_u32(vreinterpretq_u32_u16(a), vreinterpretq_u32_u16(b)));
}
V_INLINE vh h_zip1_64(vh a, vh b)
{
    return vreinterpretq_u16_u64(vzip1q_u64(vreinterpretq_u64_u16(a), vreinterpretq_u64_u16(b)));
}
V_INLINE vh h_zip2_64(vh a, vh b)
{
    return vreinterpretq_u16_u64(vzip2q_u64(vreinterpretq_u64_u16(a), vreinterpretq_u64_u16(b)));
}
/* Exponent 0 and a mantissa; exponent all ones. */
V_INLINE int h_any_subnormal(vh x)
{
    const uint16x8_t e0 = vceqq_u16(vandq_u16(x, vdupq_n_u16(0x7f80)), vdupq_n_u16(0));
    return vmaxvq_u16(vandq_u16(e0, vtstq_u16(x, vdupq_n_u16(0x007f)))) != 0;
}
V_INLINE int h_any_nonfinite(vh x)
{
    return vmaxvq_u16(vceqq_u16(vandq_u16(x, vdupq_n_u16(0x7f80)), vdupq_n_u16(0x7f80))) != 0;
}
V_INLINE vf v_bfmmla(vf acc, vh a, vh b)
{
    return vbfmmlaq_f32(acc, vreinterpretq_bf16_u16(a), vreinterpretq_bf16_u16(b));
}
V_INLINE vf v_uzp1_64(vf a, vf b)
{
    return vreinterpretq_f32_u64(vuzp1q_u64(vreinterpretq_u64_f32(a), vreinterpretq_u64_f32(b)));
}
V_INLINE vf v_uzp2_64(vf a, vf b)
{
    return vreinterpretq_f32_u64(vuzp2q_u64(vreinterpretq_u64_f32(a), vreinterpretq_u64_f32(b)));
}

/* ---- FMLAL: strict mode's Q·Kᵀ of f16 Q and K ------------------------------- */

/* s[i][x] = post · Σ_p K_i[p] · Q_x[p] for mr <= 4 keys and nv <= 4
   vectors of 4 lanes: the f32 microkernel's 4 × 16 tile (neon.c), with K
   read as f16 where it lies, 8 values a load, each value multiplied by
   element (FMLAL by lane) into the low and high halves of a row of f16 Qᵀ.
   The sum runs in the f32 kernel's order and FMLAL rounds as FCVTL + FMLA,
   so the scores are neon's bits. 16 accumulators, 4 K and 2 Q registers. */
#define F16_LANE(l)                                                                        \
    if ((size_t)(l) < np) {                                                                \
        const float16x8_t b0 = vreinterpretq_f16_u16(vld1q_u16(b + (p0 + (l)) * ldb));     \
        const float16x8_t b1 = nv > 2 ? vreinterpretq_f16_u16(vld1q_u16(b + (p0 + (l)) * ldb + 8)) \
                                      : b0;                                                \
SIMD_UNROLL                                                                                \
        for (int i = 0; i < mr; i++) {                                                     \
            acc[i][0] = vfmlalq_laneq_low_f16(acc[i][0], b0, kv[i], (l));                  \
            if (nv > 1)                                                                    \
                acc[i][1] = vfmlalq_laneq_high_f16(acc[i][1], b0, kv[i], (l));             \
            if (nv > 2)                                                                    \
                acc[i][2] = vfmlalq_laneq_low_f16(acc[i][2], b1, kv[i], (l));              \
            if (nv > 3)                                                                    \
                acc[i][3] = vfmlalq_laneq_high_f16(acc[i][3], b1, kv[i], (l));             \
        }                                                                                  \
    }
V_INLINE void qk_f16_4x16_neonbf16(const int mr, const int nv, size_t d, const uint16_t *k,
                                   size_t ldk, const uint16_t *b, size_t ldb, float *const *c,
                                   float post, float *cmax)
{
    float32x4_t acc[4][4];
SIMD_UNROLL
    for (int i = 0; i < mr; i++)
SIMD_UNROLL
        for (int v = 0; v < nv; v++)
            acc[i][v] = vdupq_n_f32(0.0f);
    for (size_t p0 = 0; p0 < d; p0 += 8) {
        const size_t np = d - p0 < 8 ? d - p0 : 8;
        float16x8_t kv[4];
SIMD_UNROLL
        for (int i = 0; i < mr; i++)
            kv[i] = vreinterpretq_f16_u16(np == 8 ? vld1q_u16(k + i * ldk + p0)
                                                  : h_loadn(k + i * ldk + p0, np));
        F16_LANE(0) F16_LANE(1) F16_LANE(2) F16_LANE(3)
        F16_LANE(4) F16_LANE(5) F16_LANE(6) F16_LANE(7)
    }
SIMD_UNROLL
    for (int i = 0; i < mr; i++)
SIMD_UNROLL
        for (int v = 0; v < nv; v++) {
            const float32x4_t x = vmulq_n_f32(acc[i][v], post);
            if (cmax)
                vst1q_f32(cmax + 4 * v, v_max(x, vld1q_f32(cmax + 4 * v)));
            vst1q_f32(c[i] + 4 * v, x);
        }
}
#undef F16_LANE

/* ABF_F16_QK (arm/bf16_tmpl.h): blocks of 4 keys × 16 lanes, one inlined
   copy of the tile per shape. */
static void qk_f16_neonbf16(const uint16_t *k, size_t ldk, size_t nk, size_t d,
                            const uint16_t *qt16, size_t ld16, size_t rp, float *s, float post,
                            float *cmax)
{
    float *c[4];
    for (size_t j0 = 0; j0 < nk; j0 += 4) {
        const int mr = (int)(nk - j0 < 4 ? nk - j0 : 4);
        for (size_t x0 = 0; x0 < rp; x0 += 16) {
            const int nv = (int)((rp - x0) / 4 < 4 ? (rp - x0) / 4 : 4);
            for (int i = 0; i < mr; i++)
                c[i] = s + (j0 + (size_t)i) * rp + x0;
            float *cm = cmax ? cmax + x0 : NULL;
#define F16_CALL(MR_, NV_) \
    qk_f16_4x16_neonbf16(MR_, NV_, d, k + j0 * ldk, ldk, qt16 + x0, ld16, c, post, cm)
#define F16_COLS(MR_)                     \
    if (nv == 1) F16_CALL(MR_, 1);        \
    else if (nv == 2) F16_CALL(MR_, 2);   \
    else if (nv == 3) F16_CALL(MR_, 3);   \
    else F16_CALL(MR_, 4)
            switch (mr) {
            case 1: F16_COLS(1); break;
            case 2: F16_COLS(2); break;
            case 3: F16_COLS(3); break;
            default: F16_COLS(4); break;
            }
#undef F16_COLS
#undef F16_CALL
        }
    }
}
#define ABF_F16_QK qk_f16_neonbf16

#include "arm/bf16_tmpl.h"
#include "arm/kernels_tmpl.h"

_Static_assert(ATT_BN == ABF_BN, "arm/bf16_tmpl.h packs tiles of the driver's size");

void qkv_ctx_init_neonbf16(qkv_ctx *c)
{
    SIMD_NAME(ctx_fill)(c);
    c->rounds_bf16 = 1;
}

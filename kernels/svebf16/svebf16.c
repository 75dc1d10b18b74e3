/*
 * SVE with FEAT_BF16, vector-length agnostic: the SVE kernels (sve/sve.c's
 * vocabulary, the Arm template) plus bf16 tiles for the fused driver's
 * prefill form on SVE's BFMMLA, which works per 128-bit segment, so one
 * binary serves every vector length (kernels/arm/bf16_tmpl.h says what may
 * be rounded in which qkv_fpmath mode). Decode keeps the f32 forms.
 * Everything else comes from sve (converters, merge), the parent in
 * dispatch/isa_list.h.
 *
 * It needs no FEAT_FHM: SVE's widening f16 multiply-adds (FMLALB/FMLALT)
 * are SVE2, and Advanced SIMD's FMLAL would tie the kernels to 128 bits.
 */
#define SIMD_SUFFIX _svebf16
#define ARM_VOCABULARY_ONLY
#include "sve/sve.c"

/* ---- 16-bit lanes for arm/bf16_tmpl.h ---------------------------------------- */

typedef svuint16_t vh;
#define VH ((size_t)svcnth())
#define H_ALL svptrue_b16()

V_INLINE vh h_zero(void) { return svdup_n_u16(0); }
V_INLINE vh h_load(const uint16_t *p) { return svld1_u16(H_ALL, p); }
V_INLINE vh h_loadn(const uint16_t *p, size_t n) { return svld1_u16(svwhilelt_b16_u64(0, n), p); }
/* LD1RQH: one segment in every 128-bit segment. */
V_INLINE vh h_load_rep(const uint16_t *p) { return svld1rq_u16(H_ALL, p); }
V_INLINE void h_store(uint16_t *p, vh x) { svst1_u16(H_ALL, p, x); }
V_INLINE void h_storen(uint16_t *p, vh x, size_t n) { svst1_u16(svwhilelt_b16_u64(0, n), p, x); }
/* BFCVT leaves each bf16 in the low half of its 32-bit lane (nearest even
   under Linux's FPCR); UZP1 gathers the low halves, lo's first. */
V_INLINE vh h_cvt2(vf lo, vf hi)
{
    const svuint16_t a = svreinterpret_u16_bf16(svcvt_bf16_f32_x(V_ALL, lo));
    const svuint16_t b = svreinterpret_u16_bf16(svcvt_bf16_f32_x(V_ALL, hi));
    return svuzp1_u16(a, b);
}
V_INLINE vh h_zip1_16(vh a, vh b) { return svzip1_u16(a, b); }
V_INLINE vh h_zip2_16(vh a, vh b) { return svzip2_u16(a, b); }
V_INLINE vh h_zip1_32(vh a, vh b)
{
    return svreinterpret_u16_u32(svzip1_u32(svreinterpret_u32_u16(a), svreinterpret_u32_u16(b)));
}
V_INLINE vh h_zip2_32(vh a, vh b)
{
    return svreinterpret_u16_u32(svzip2_u32(svreinterpret_u32_u16(a), svreinterpret_u32_u16(b)));
}
V_INLINE vh h_zip1_64(vh a, vh b)
{
    return svreinterpret_u16_u64(svzip1_u64(svreinterpret_u64_u16(a), svreinterpret_u64_u16(b)));
}
V_INLINE vh h_zip2_64(vh a, vh b)
{
    return svreinterpret_u16_u64(svzip2_u64(svreinterpret_u64_u16(a), svreinterpret_u64_u16(b)));
}
/* Exponent 0 and a mantissa; exponent all ones. */
V_INLINE int h_any_subnormal(vh x)
{
    const svbool_t e0 = svcmpeq_n_u16(H_ALL, svand_n_u16_x(H_ALL, x, 0x7f80), 0);
    return svptest_any(H_ALL, svcmpne_n_u16(e0, svand_n_u16_x(H_ALL, x, 0x007f), 0));
}
V_INLINE int h_any_nonfinite(vh x)
{
    return svptest_any(H_ALL, svcmpeq_n_u16(H_ALL, svand_n_u16_x(H_ALL, x, 0x7f80), 0x7f80));
}
V_INLINE vf v_bfmmla(vf acc, vh a, vh b)
{
    return svbfmmla_f32(acc, svreinterpret_bf16_u16(a), svreinterpret_bf16_u16(b));
}
V_INLINE vf v_uzp1_64(vf a, vf b)
{
    return svreinterpret_f32_u64(svuzp1_u64(svreinterpret_u64_f32(a), svreinterpret_u64_f32(b)));
}
V_INLINE vf v_uzp2_64(vf a, vf b)
{
    return svreinterpret_f32_u64(svuzp2_u64(svreinterpret_u64_f32(a), svreinterpret_u64_f32(b)));
}

#include "arm/bf16_tmpl.h"
#include "arm/kernels_tmpl.h"

_Static_assert(ATT_BN == ABF_BN, "arm/bf16_tmpl.h packs tiles of the driver's size");

void qkv_ctx_init_svebf16(qkv_ctx *c)
{
    SIMD_NAME(ctx_fill)(c);
    c->rounds_bf16 = 1;
}

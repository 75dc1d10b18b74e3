/*
 * SVE row converters (kernels/convert.h), vector-length agnostic. 16-bit
 * values are loaded widened into 32-bit lanes (ld1h) and stored narrowed
 * from them (st1h), so one predicate from svwhilelt covers a row's tail
 * without scalar code and without touching memory past its end. f16 through
 * fcvt (its f16 result sits in the low half of each lane, which st1h
 * keeps), bf16 by shifts and integer rounding, Q8_0 / Q4_0 by ld1sb / ld1b
 * with one scale per block, and quantization rounds with frinta (roundf).
 *
 * 16-bit rows are read through uint16_t pointers: SVE loads and stores
 * need no alignment on normal memory, as the API promises for every
 * pointer.
 */
#include <arm_sve.h>
#include <stdint.h>
#include <string.h>

#include "convert_scalar.h"

/* ---- f16 ------------------------------------------------------------------------ */

static void cvt_f16_f32_sve(size_t n, const void *src, float *dst)
{
    const uint16_t *s = src;
    for (size_t i = 0; i < n; i += svcntw()) {
        const svbool_t pg = svwhilelt_b32_u64(i, n);
        const svfloat16_t h = svreinterpret_f16_u32(svld1uh_u32(pg, s + i));
        svst1_f32(pg, dst + i, svcvt_f32_f16_x(pg, h));
    }
}

static void cvt_f32_f16_sve(size_t n, const float *src, void *dst)
{
    uint16_t *d = dst;
    for (size_t i = 0; i < n; i += svcntw()) {
        const svbool_t pg = svwhilelt_b32_u64(i, n);
        const svfloat16_t h = svcvt_f16_f32_x(pg, svld1_f32(pg, src + i));
        svst1h_u32(pg, d + i, svreinterpret_u32_f16(h));
    }
}

/* ---- bf16 ----------------------------------------------------------------------- */

static void cvt_bf16_f32_sve(size_t n, const void *src, float *dst)
{
    const uint16_t *s = src;
    for (size_t i = 0; i < n; i += svcntw()) {
        const svbool_t pg = svwhilelt_b32_u64(i, n);
        const svuint32_t x = svlsl_n_u32_x(pg, svld1uh_u32(pg, s + i), 16);
        const svbool_t nan = svcmpgt_n_u32(pg, svand_n_u32_x(pg, x, 0x7fffffff), 0x7f800000);
        svst1_f32(pg, dst + i, svreinterpret_f32_u32(svorr_n_u32_m(nan, x, 0x00400000)));
    }
}

/* As qkv_f32_to_bf16: nearest even by integer addition, NaN made quiet. */
static void cvt_f32_bf16_sve(size_t n, const float *src, void *dst)
{
    uint16_t *d = dst;
    for (size_t i = 0; i < n; i += svcntw()) {
        const svbool_t pg = svwhilelt_b32_u64(i, n);
        const svuint32_t x = svreinterpret_u32_f32(svld1_f32(pg, src + i));
        const svbool_t nan = svcmpgt_n_u32(pg, svand_n_u32_x(pg, x, 0x7fffffff), 0x7f800000);
        const svuint32_t odd = svand_n_u32_x(pg, svlsr_n_u32_x(pg, x, 16), 1);
        const svuint32_t rounded = svadd_u32_x(pg, svadd_n_u32_x(pg, x, 0x7fff), odd);
        const svuint32_t quiet = svorr_n_u32_x(pg, x, 0x00400000);
        svst1h_u32(pg, d + i, svlsr_n_u32_x(pg, svsel_u32(nan, quiet, rounded), 16));
    }
}

/* ---- Q8_0 and Q4_0 ---------------------------------------------------------------- */

static void cvt_q8_0_f32_sve(size_t n, const void *src, float *dst)
{
    const unsigned char *blk = src;
    for (size_t b = 0; b < n / QKV_BLOCK_VALUES; b++, blk += QKV_Q8_0_BLOCK_BYTES, dst += 32) {
        const float d = qkv_f16_to_f32(qkv_load_u16(blk));
        const int8_t *q = (const int8_t *)(blk + 2);
        for (uint32_t j = 0; j < QKV_BLOCK_VALUES; j += (uint32_t)svcntw()) {
            const svbool_t pg = svwhilelt_b32_u32(j, QKV_BLOCK_VALUES);
            const svfloat32_t f = svcvt_f32_s32_x(pg, svld1sb_s32(pg, q + j));
            svst1_f32(pg, dst + j, svmul_n_f32_x(pg, f, d));
        }
    }
}

static void cvt_q4_0_f32_sve(size_t n, const void *src, float *dst)
{
    const unsigned char *blk = src;
    for (size_t b = 0; b < n / QKV_BLOCK_VALUES; b++, blk += QKV_Q4_0_BLOCK_BYTES, dst += 32) {
        const float d = qkv_f16_to_f32(qkv_load_u16(blk));
        const uint8_t *qs = blk + 2;
        for (uint32_t j = 0; j < QKV_BLOCK_VALUES / 2; j += (uint32_t)svcntw()) {
            const svbool_t pg = svwhilelt_b32_u32(j, QKV_BLOCK_VALUES / 2);
            const svuint32_t q = svld1ub_u32(pg, qs + j);
            const svint32_t lo = svsub_n_s32_x(pg, svreinterpret_s32_u32(svand_n_u32_x(pg, q, 15)), 8);
            const svint32_t hi = svsub_n_s32_x(pg, svreinterpret_s32_u32(svlsr_n_u32_x(pg, q, 4)), 8);
            svst1_f32(pg, dst + j, svmul_n_f32_x(pg, svcvt_f32_s32_x(pg, lo), d));
            svst1_f32(pg, dst + j + 16, svmul_n_f32_x(pg, svcvt_f32_s32_x(pg, hi), d));
        }
    }
}

/* max |x| over a block as bits: integer order on the magnitudes' bits is
   the order of |x|, with Inf and NaN above every finite value. */
static inline uint32_t block_amax_bits_sve(const float *x)
{
    svuint32_t m = svdup_n_u32(0);
    for (uint32_t j = 0; j < QKV_BLOCK_VALUES; j += (uint32_t)svcntw()) {
        const svbool_t pg = svwhilelt_b32_u32(j, QKV_BLOCK_VALUES);
        const svuint32_t a = svand_n_u32_x(pg, svreinterpret_u32_f32(svld1_f32(pg, x + j)), 0x7fffffff);
        m = svmax_u32_m(pg, m, a);
    }
    return svmaxv_u32(svptrue_b32(), m);
}

static void cvt_f32_q8_0_sve(size_t n, const float *src, void *dst)
{
    unsigned char *blk = dst;
    for (size_t b = 0; b < n / QKV_BLOCK_VALUES; b++, blk += QKV_Q8_0_BLOCK_BYTES, src += 32) {
        uint16_t d16;
        float id;
        if (!qkv_q8_0_scale(qkv_bits_f32(block_amax_bits_sve(src)), &d16, &id)) {
            qkv_store_u16(blk, QKV_BLOCK_NAN_SCALE);
            memset(blk + 2, 0, 32);
            continue;
        }
        qkv_store_u16(blk, d16);
        int8_t *q = (int8_t *)(blk + 2);
        for (uint32_t j = 0; j < QKV_BLOCK_VALUES; j += (uint32_t)svcntw()) {
            const svbool_t pg = svwhilelt_b32_u32(j, QKV_BLOCK_VALUES);
            const svfloat32_t v = svmul_n_f32_x(pg, svld1_f32(pg, src + j), id);
            /* frinta: nearest, ties away from zero, as roundf */
            svst1b_s32(pg, q + j, svcvt_s32_f32_x(pg, svrinta_f32_x(pg, v)));
        }
    }
}

static void cvt_f32_q4_0_sve(size_t n, const float *src, void *dst)
{
    unsigned char *blk = dst;
    for (size_t b = 0; b < n / QKV_BLOCK_VALUES; b++, blk += QKV_Q4_0_BLOCK_BYTES, src += 32) {
        const uint32_t amax = block_amax_bits_sve(src);
        /* The first value of largest magnitude keeps its sign; +0 when all
           are zero (ggml starts from 0.0f). */
        const float max = qkv_block_first_of_magnitude(src, amax);
        uint16_t d16;
        float id;
        if (!qkv_q4_0_scale(max, amax >= 0x7f800000u, &d16, &id)) {
            qkv_store_u16(blk, QKV_BLOCK_NAN_SCALE);
            memset(blk + 2, QKV_Q4_0_ZERO_PAIR, 16);
            continue;
        }
        qkv_store_u16(blk, d16);
        uint8_t *qs = blk + 2;
        for (uint32_t j = 0; j < QKV_BLOCK_VALUES / 2; j += (uint32_t)svcntw()) {
            const svbool_t pg = svwhilelt_b32_u32(j, QKV_BLOCK_VALUES / 2);
            /* fcvtzs truncates, as the (int8_t) cast does */
            const svint32_t lo = svmin_n_s32_x(pg, svcvt_s32_f32_x(pg, svadd_n_f32_x(pg,
                svmul_n_f32_x(pg, svld1_f32(pg, src + j), id), 8.5f)), 15);
            const svint32_t hi = svmin_n_s32_x(pg, svcvt_s32_f32_x(pg, svadd_n_f32_x(pg,
                svmul_n_f32_x(pg, svld1_f32(pg, src + j + 16), id), 8.5f)), 15);
            svst1b_s32(pg, (int8_t *)qs + j, svorr_s32_x(pg, lo, svlsl_n_s32_x(pg, hi, 4)));
        }
    }
}

void qkv_converters_init_sve(qkv_converters *c)
{
    c->to_f32[QKV_F16] = cvt_f16_f32_sve;
    c->from_f32[QKV_F16] = cvt_f32_f16_sve;
    c->to_f32[QKV_BF16] = cvt_bf16_f32_sve;
    c->from_f32[QKV_BF16] = cvt_f32_bf16_sve;
    c->to_f32[QKV_Q8_0] = cvt_q8_0_f32_sve;
    c->from_f32[QKV_Q8_0] = cvt_f32_q8_0_sve;
    c->to_f32[QKV_Q4_0] = cvt_q4_0_f32_sve;
    c->from_f32[QKV_Q4_0] = cvt_f32_q4_0_sve;
}

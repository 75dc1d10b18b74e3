/*
 * The AMX tile operations of kernels/amx/amx.c, through one thin layer:
 * the instructions themselves, or, with QKV_AMX_EMULATE, a C emulation of
 * what Intel's SDM says they do, so that the AMX driver's blocking and
 * packing run (and are tested) without AMX: on any CPU with AVX2, where the
 * test build also emulates AVX-512 (kernels/avx512/emulate.h). t, c, a, b are tile
 * numbers (compile-time constants: the instructions encode them).
 *
 *   amx_cfg_load(cfg)        LDTILECFG: the palette below; zeroes the tiles
 *   amx_release()            TILERELEASE: back to the init state
 *   amx_zero(t)              TILEZERO
 *   amx_load(t, p, stride)   TILELOADD: rows[t] rows of colsb[t] bytes,
 *                            stride bytes apart
 *   amx_store(t, p, stride)  TILESTORED
 *   amx_dp(c, a, b)          TDPBF16PS: c[m][n] += Σ_k a[m].pair[k] ·
 *                            b[k].pair[n]
 *
 * TDPBF16PS (SDM vol. 2, and VDPBF16PS alike): "input denormals are always
 * treated as zero", "output denormals are always flushed to zero", round to
 * nearest even, MXCSR neither read nor written. Its pseudo-code sums each
 * row's even-indexed products (k = 0, 1, ...) in one f32 temporary and the
 * odd-indexed ones in another, each step an f32 FMA with DAZ and FTZ, then
 * adds the two temporaries and adds that to c[m][n], again with DAZ, FTZ and
 * RNE. The emulation does exactly that. (The intrinsics guide's older text
 * adds the two products straight into c; the SDM is the reference, and the
 * tests hold the native unit to the tolerance, not to these bits.) The
 * emulation flushes a result whose rounded value is subnormal; hardware
 * that judges before rounding differs only within half an ulp of 2^-126.
 */
#ifndef QKV_AMX_TILE_H
#define QKV_AMX_TILE_H

#include <stdint.h>
#include <string.h>

/* LDTILECFG's 64 bytes, palette 1: up to 8 tiles of 16 rows × 64 bytes. */
typedef struct amx_palette {
    uint8_t palette_id, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} amx_palette;

#ifndef QKV_AMX_EMULATE

#include <immintrin.h>

#define amx_cfg_load(cfg) _tile_loadconfig(cfg)
#define amx_release() _tile_release()
#define amx_zero(t) _tile_zero(t)
#define amx_load(t, p, stride) _tile_loadd(t, p, (long)(stride))
#define amx_store(t, p, stride) _tile_stored(t, p, (long)(stride))
#define amx_dp(c, a, b) _tile_dpbf16ps(c, a, b)

#else

#include <math.h>

/* Per thread, as the real registers are. */
static _Thread_local struct {
    amx_palette cfg;
    unsigned char t[8][16][64];
} amx_emu;

/* A subnormal to a zero of its sign: DAZ on an input, FTZ on a result. */
static inline float amx_emu_daz(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    if ((u & 0x7f800000u) == 0)
        u &= 0x80000000u;
    memcpy(&x, &u, sizeof x);
    return x;
}

static inline float amx_emu_bf16(const unsigned char *p)
{
    uint16_t h;
    memcpy(&h, p, sizeof h);
    const uint32_t u = (uint32_t)h << 16;
    float x;
    memcpy(&x, &u, sizeof x);
    return amx_emu_daz(x);
}

static inline void amx_cfg_load(const amx_palette *cfg)
{
    amx_emu.cfg = *cfg;
    memset(amx_emu.t, 0, sizeof amx_emu.t);
}

static inline void amx_release(void)
{
    memset(&amx_emu, 0, sizeof amx_emu);
}

static inline void amx_zero(int t)
{
    memset(amx_emu.t[t], 0, sizeof amx_emu.t[t]);
}

static inline void amx_load(int t, const void *p, size_t stride)
{
    const size_t rows = amx_emu.cfg.rows[t], colsb = amx_emu.cfg.colsb[t];
    amx_zero(t);
    for (size_t r = 0; r < rows; r++)
        memcpy(amx_emu.t[t][r], (const unsigned char *)p + r * stride, colsb);
}

static inline void amx_store(int t, void *p, size_t stride)
{
    const size_t rows = amx_emu.cfg.rows[t], colsb = amx_emu.cfg.colsb[t];
    for (size_t r = 0; r < rows; r++)
        memcpy((unsigned char *)p + r * stride, amx_emu.t[t][r], colsb);
}

static inline void amx_dp(int c, int a, int b)
{
    const size_t m_rows = amx_emu.cfg.rows[c], k_words = amx_emu.cfg.colsb[a] / 4;
    const size_t n_words = amx_emu.cfg.colsb[c] / 4;
    for (size_t m = 0; m < m_rows; m++) {
        float tmp[32] = {0};
        for (size_t k = 0; k < k_words; k++)
            for (size_t n = 0; n < n_words; n++)
                for (size_t h = 0; h < 2; h++) {
                    const float x = amx_emu_bf16(&amx_emu.t[a][m][4 * k + 2 * h]);
                    const float y = amx_emu_bf16(&amx_emu.t[b][k][4 * n + 2 * h]);
                    tmp[2 * n + h] = amx_emu_daz(fmaf(x, y, tmp[2 * n + h]));
                }
        for (size_t n = 0; n < n_words; n++) {
            float cv;
            memcpy(&cv, &amx_emu.t[c][m][4 * n], sizeof cv);
            const float sum = amx_emu_daz(tmp[2 * n] + tmp[2 * n + 1]);
            cv = amx_emu_daz(amx_emu_daz(cv) + sum);
            memcpy(&amx_emu.t[c][m][4 * n], &cv, sizeof cv);
        }
    }
}

#endif /* QKV_AMX_EMULATE */

#endif

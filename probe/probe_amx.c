/* The AMX-BF16 peak: tdpbf16ps adds a 16 × 32 by 32 × 16 bf16 product to
   a 16 × 16 f32 tile, 16384 flops an instruction. Built with the AMX flags
   only, through kernels/amx/tile.h's layer (its palette, its operations);
   called only where qkv_isa_supported(QKV_ISA_AMX), which means the kernel
   has granted this process the tile state (the library asked).
   Four independent C tiles from two A and two B tiles, the blocking of
   kernels/amx/amx.c, so that a product's latency never stalls the unit.
   The operands are bf16 0.01: each step adds 32 · 1e-4 to every sum, which
   stays a normal float for far longer than any probe runs. */
#include <stdint.h>
#include <string.h>

#include "amx/tile.h"
#include "probe.h"

#define PROBE_INNER 20000L   /* about 1 ms of products at 16 cycles each, at first */

double qkv_probe_tdpbf16_amx(double seconds)
{
    _Alignas(64) amx_palette cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette_id = 1;
    for (int t = 0; t < 8; t++) {
        cfg.rows[t] = 16;
        cfg.colsb[t] = 64;
    }
    static _Alignas(64) uint16_t ab[2][16 * 32];
    for (int i = 0; i < 16 * 32; i++)
        ab[0][i] = ab[1][i] = 0x3c24;   /* bf16 0.01 */
    static _Alignas(64) float c[16 * 16];
    amx_cfg_load(&cfg);
    amx_zero(0);
    amx_zero(1);
    amx_zero(2);
    amx_zero(3);
    amx_load(4, ab[0], 64);
    amx_load(5, ab[1], 64);
    amx_load(6, ab[0], 64);
    amx_load(7, ab[1], 64);
    double best;
    QKV_PROBE_BEST(best, seconds, PROBE_INNER, 4.0 * 16 * 16 * 32 * 2, {
        amx_dp(0, 4, 6);
        amx_dp(1, 4, 7);
        amx_dp(2, 5, 6);
        amx_dp(3, 5, 7);
    });
    amx_store(0, c, 64);   /* the sums are used: the loop stays */
    amx_release();
    return c[0] > 0.0f ? best : 0.0;
}

/*
 * Stored K/V values widened exactly to f32 in registers, written once over
 * the vector vocabulary (see simd/attention.h) for the decode kernels,
 * which read K and V in place, so a tile is converted as it is loaded and
 * never through a buffer. The includer defines the vocabulary, plus
 *   v_load_f16(p) v_load_bf16(p)    VL 16-bit values
 *   v_loadn_f16(p, n) v_loadn_bf16(p, n)   the first n < VL of them
 *   v_load_i8(p)                    VL int8 (Q8_0's quants)
 *   v_load_q4(p, high)              the low (high) nibbles of VL bytes, minus 8
 *   v_f16_scalar(p)                 one f16 (a block's scale) as a float
 *   v_prefetch(p)                   a hint (simd/attention.h)
 * and, where a nibble is looked up more cheaply than it is converted,
 *   v_q4_table(d)                   a vector holding d·(i - 8) for i < 16
 *   v_q4_lookup(p, high, table)     table[nibble] for those nibbles
 * Block types need VL to divide 32 (a vector never spans two blocks).
 */
#ifndef SIMD_SUFFIX
#error "define the vocabulary before including simd/load_dt.h"
#endif

#include "kernels.h"

/* CALL(T), T the constant of the run-time dtype t: one inlined copy of a
   template per stored dtype, the dtype chosen once per call rather than at
   every load. */
#define SIMD_DTYPE_SWITCH(t, CALL)          \
    switch (t) {                            \
    case QKV_F16: CALL(QKV_F16); break;     \
    case QKV_BF16: CALL(QKV_BF16); break;   \
    case QKV_Q8_0: CALL(QKV_Q8_0); break;   \
    case QKV_Q4_0: CALL(QKV_Q4_0); break;   \
    default: CALL(QKV_F32); break;          \
    }

/* The quants j .. j + VL - 1 of the Q8_0 or Q4_0 block at blk (j a
   multiple of VL) as f32, before the block's scale: q, or q - 8. */
V_INLINE vf SIMD_NAME(block_raw)(const qkv_dtype t, const unsigned char *blk, size_t j)
{
    const unsigned char *qs = blk + 2;
    return t == QKV_Q8_0 ? v_load_i8(qs + j) : v_load_q4(qs + j % 16, j >= 16);
}

/* The scale of the block at blk as block_vec takes it: d in every lane,
   or for Q4_0 where the ISA looks nibbles up, the table of d·(i - 8). */
V_INLINE vf SIMD_NAME(block_scale)(const qkv_dtype t, const unsigned char *blk)
{
#ifdef v_q4_lookup
    if (t == QKV_Q4_0)
        return v_q4_table(v_f16_scalar(blk));
#endif
    (void)t;
    return v_set1(v_f16_scalar(blk));
}

/* Those values times the block's d, given as block_scale made it: a
   caller that walks a row block by block makes it once a block, and with
   j known when compiled, Q4_0's nibble half is known too. d·q is exact in
   f32 (an 11-bit scale times an 8-bit int), in a table as in a multiply. */
V_INLINE vf SIMD_NAME(block_vec)(const qkv_dtype t, const unsigned char *blk, size_t j, vf scale)
{
#ifdef v_q4_lookup
    if (t == QKV_Q4_0)
        return v_q4_lookup(blk + 2 + j % 16, j >= 16, scale);
#endif
    return v_mul(SIMD_NAME(block_raw)(t, blk, j), scale);
}

/* Columns [c0, c0 + span) of rows stored as t, for the Arm decode P·V
   kernels, which load a column block's vectors key after key: when t is a
   block dtype and the columns are whole blocks from a block's start, or lie
   in one block (span divides a block, c0 a multiple of span), a kernel
   reads each block's scale once a key (block_vec), from byte `at` of the
   row and value `off` of its first block, instead of once a vector through
   load_dt (AVX2's 16 columns, half a block, when x86 did the same: its
   Q8_0/Q4_0 decode took 0.98/0.90 of the time; x86 now folds the scale
   into the weights, kernels/x86/kernels_tmpl.h's pv_weights). on is 0
   otherwise, and for other dtypes. */
typedef struct SIMD_NAME(blk_cols) {
    int on;
    size_t at, off;
} SIMD_NAME(blk_cols);

V_INLINE SIMD_NAME(blk_cols) SIMD_NAME(blk_cols_at)(const qkv_dtype t, size_t c0, size_t span)
{
    SIMD_NAME(blk_cols) b = {0, 0, 0};
    if (qkv_dtype_block(t) > 1 &&
        (span % QKV_BLOCK_VALUES == 0 ? c0 % QKV_BLOCK_VALUES == 0
                                      : QKV_BLOCK_VALUES % span == 0 && c0 % span == 0)) {
        b.on = 1;
        b.at = qkv_dtype_bytes(t, c0 / QKV_BLOCK_VALUES * QKV_BLOCK_VALUES);
        b.off = c0 % QKV_BLOCK_VALUES;
    }
    return b;
}

/* VL values of a row stored as t, from value c (a multiple of VL). */
V_INLINE vf SIMD_NAME(load_dt)(const qkv_dtype t, const unsigned char *row, size_t c)
{
    if (t == QKV_F16)
        return v_load_f16(row + 2 * c);
    if (t == QKV_BF16)
        return v_load_bf16(row + 2 * c);
    if (qkv_dtype_block(t) > 1) {
        const unsigned char *b = row + c / QKV_BLOCK_VALUES * qkv_dtype_bytes(t, QKV_BLOCK_VALUES);
        return SIMD_NAME(block_vec)(t, b, c % QKV_BLOCK_VALUES, SIMD_NAME(block_scale)(t, b));
    }
    return v_load((const float *)row + c);
}

/* The n < VL values of a row's tail from value c (f32, f16, bf16: block
   rows have no tails); the other lanes 0. */
V_INLINE vf SIMD_NAME(load_dtn)(const qkv_dtype t, const unsigned char *row, size_t c, size_t n)
{
    if (t == QKV_F16)
        return v_loadn_f16(row + 2 * c, n);
    if (t == QKV_BF16)
        return v_loadn_bf16(row + 2 * c, n);
    return v_loadm((const float *)row + c, v_tailmask(n));
}

/* Whether the decode kernels' prefetches ask for L2 rather than L1, and
   the decode feed prefetches where it would sweep: chosen from the CPU at
   init (att_feed_for, see the decode feed in simd/attention.h). */
static int SIMD_NAME(prefetch_l2);

/* Asks for the cache lines that hold bytes [b0, b1) of row (none for a
   NULL row), into L1, or into L2 only when l2: the decode kernels fetch
   the K and V rows of keys further on as they work (see the decode feed
   in simd/attention.h). */
V_INLINE void SIMD_NAME(prefetch_part)(const unsigned char *row, size_t b0, size_t b1, int l2)
{
    if (!row)
        return;
    const uintptr_t end = (uintptr_t)row + b1;
    for (uintptr_t a = ((uintptr_t)row + b0) & ~(uintptr_t)63; a < end; a += 64) {
        if (l2)
            __builtin_prefetch((const void *)a, 0, 2);
        else
            v_prefetch((const void *)a);
    }
}

/* The V prefetches of one column block of a decode P·V (the kernels' vpre,
   see the decode feed in simd/attention.h): bytes [b0, b1) of the rows
   vpre[j] of keys j = first, first + step, ... */
typedef struct SIMD_NAME(pv_pf) {
    size_t first, step, b0, b1;
} SIMD_NAME(pv_pf);

/* The prefetches of block blk of `blocks` that split a row of dv values
   (vbytes bytes), the block holding columns [c0, c0 + nc): every row is
   asked for once, spread over the blocks as the memory wants them (whole
   rows asked for by the first block alone: fewer instructions, but AVX2
   decode on Zen 5, f32 11.6 -> 17.2 ms, f16 8.6 -> 9.7). Up to 3 blocks,
   each asks for its share of the bytes of every row; from 4 (AVX2's
   4-row jobs have 8), where those shares cost more instructions than the
   FMAs, block blk asks for the whole rows of keys blk, blk + blocks, ...
   Zen 5, cold decode, 21 alternating runs, ms, shares / whole rows: AVX2
   f32 14.4 / 13.2, Q8_0 8.54 / 8.24; AVX-512 (2 blocks) f16 6.51 / 6.70,
   Q8_0 5.98 / 6.19. */
V_INLINE SIMD_NAME(pv_pf) SIMD_NAME(pv_prefetch)(size_t blk, size_t blocks, size_t c0, size_t nc,
                                               size_t dv, size_t vbytes)
{
    SIMD_NAME(pv_pf) pf = {0, 1, vbytes * c0 / dv, vbytes * (c0 + nc) / dv};
    if (blocks >= 4) {
        pf.first = blk;
        pf.step = blocks;
        pf.b0 = 0;
        pf.b1 = vbytes;
    }
    return pf;
}

/*
 * The blocked online-softmax driver of the fused attention kernel, written
 * once and compiled per ISA (as BLIS does with its blocked frame): an ISA
 * file defines its microkernels under the names below, then includes this
 * header, which defines one static function ATT_NAME(const qkv_attn_job *).
 *
 * Blocking. Keys go in tiles of ATT_TILE_KEYS; inside a tile the job's
 * rows go in blocks of ATT_TILE_ROWS. The tile loop is the outer one so
 * that one tile of K and V (64 keys · head_dim floats: 32 KiB at d = 128)
 * stays in L1/L2 while every row block of the job reuses it; for decode
 * with GQA (many heads' rows, one KV head) that reuse is the whole point.
 * The scores of one block and tile live in a small stack buffer and become
 * the probabilities in place; acc is accumulated in the caller's rows.
 *
 * Hidden keys. The scalar loop skips a key whose score is -INFINITY; the
 * blocked P·V instead multiplies it by its weight 0, which is the same
 * unless its V row holds an Inf or NaN (0·Inf = NaN would leak into rows
 * that never see that key, e.g. the earlier rows of a causal mask). So
 * when a row of the block has a hidden key in the tile, the tile's V rows
 * are checked once (cached for every block of the tile), and only if one
 * is not finite does that block take the exact path: P·V row by row over
 * the runs of keys the row does see.
 *
 * What the ISA file provides (all `static`, rows <= ATT_TILE_ROWS, n <=
 * ATT_TILE_KEYS):
 *   void  ATT_SCORES(size_t rows, size_t n, size_t d, float scale,
 *                    const float *const *q, const float *k, size_t ldk,
 *                    float *s, size_t lds);
 *         s[r][j] = scale · dot(q[r], k + j·ldk), j < n. May leave s[r][j]
 *         for j >= n untouched.
 *   void  ATT_ROW_MODIFY(float *s, size_t n, size_t key0, float softcap,
 *                        const qkv_attn_row *row);
 *         s[j] is the score of key key0 + j: soft-cap, ALiBi, additive mask,
 *         then -INFINITY for keys outside [row->kv_begin, row->kv_end).
 *         Owns s[0 .. round_up(n, its vector width)) where that fits in
 *         ATT_TILE_KEYS, and must leave the lanes >= n at -INFINITY if it
 *         touches them.
 *   float ATT_ROW_MAX_MIN(const float *s, size_t n, float *min);
 *         max over s[0..n) ignoring NaN (-INFINITY when none is larger),
 *         as the scalar `if (s > max)` does; *min likewise the minimum
 *         (-INFINITY exactly when some key is hidden).
 *   int   ATT_ALL_FINITE(const float *v, size_t ldv, size_t n, size_t dv);
 *         whether the n rows of dv floats at v hold only finite numbers.
 *   float ATT_ROW_EXP_SUM(float *s, size_t n, float sub);
 *         s[j] = exp(s[j] - sub) through SLEEF; returns the sum.
 *   void  ATT_ROW_SCALE(float *x, size_t n, float f);
 *         x[j] *= f for j < n, never touching x[n] or beyond.
 *   void  ATT_PV_ACC(size_t rows, size_t n, size_t dv, const float *p,
 *                    size_t ldp, const float *v, size_t ldv, float *const *o);
 *         o[r][c] += Σ_j p[r·ldp + j] · v[j·ldv + c], c < dv exactly.
 */
#ifndef ATT_NAME
#error "define ATT_NAME and the ATT_* microkernels before including attention_tiled.h"
#endif

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "kernels.h"

/* 64 keys: one bit each in a uint64_t of hidden keys; a whole number of vectors for NEON (4) and for SVE at every
   power-of-two length up to 2048 bits, and the split length dispatch/
   rounds key splits to, so tiles of split jobs start aligned. */
#define ATT_TILE_KEYS 64
/* 4 rows: what the Q·Kᵀ and P·V microkernels block by. */
#define ATT_TILE_ROWS 4

static void ATT_NAME(const qkv_attn_job *job)
{
    const size_t rows = job->rows, d = job->head_dim, dv = job->v_head_dim;
    float max[QKV_ATTN_MAX_ROWS], sum[QKV_ATTN_MAX_ROWS];
    /* Zeroed once so that the lanes past n that the row microkernels may
       read as whole vectors always hold numbers, never indeterminate bits. */
    float s[ATT_TILE_ROWS][ATT_TILE_KEYS];
    memset(s, 0, sizeof s);

    for (size_t r = 0; r < rows; r++) {
        max[r] = -INFINITY;
        sum[r] = 0.0f;
        memset(job->row[r].acc, 0, dv * sizeof(float));
    }

    for (size_t t0 = job->kv_begin; t0 < job->kv_end; t0 += ATT_TILE_KEYS) {
        const size_t t1 = job->kv_end - t0 < ATT_TILE_KEYS ? job->kv_end : t0 + ATT_TILE_KEYS;
        int v_finite = -1;        /* the tile's V rows all finite; -1: not checked yet */
        for (size_t r0 = 0; r0 < rows; r0 += ATT_TILE_ROWS) {
            const size_t rb = rows - r0 < ATT_TILE_ROWS ? rows - r0 : ATT_TILE_ROWS;
            const qkv_attn_row *row = job->row + r0;

            /* Only the keys of this tile that some row of the block sees:
               with a causal mask or a window most blocks need a part of a
               tile, or none of it. */
            size_t lo = t1, hi = t0;
            for (size_t r = 0; r < rb; r++) {
                const size_t b = row[r].kv_begin > t0 ? row[r].kv_begin : t0;
                const size_t e = row[r].kv_end < t1 ? row[r].kv_end : t1;
                if (b < e) {
                    lo = b < lo ? b : lo;
                    hi = e > hi ? e : hi;
                }
            }
            if (lo >= hi)
                continue;
            const size_t n = hi - lo;

            const float *q[ATT_TILE_ROWS];
            float *acc[ATT_TILE_ROWS];
            for (size_t r = 0; r < rb; r++) {
                q[r] = row[r].q;
                acc[r] = row[r].acc;
            }
            ATT_SCORES(rb, n, d, job->scale, q, job->k + lo * job->ldk, job->ldk,
                       s[0], ATT_TILE_KEYS);

            uint64_t hidden[ATT_TILE_ROWS];   /* bit j: key lo + j hidden from row r */
            int exact = 0;
            for (size_t r = 0; r < rb; r++) {
                float *sr = s[r];
                ATT_ROW_MODIFY(sr, n, lo, job->softcap, &row[r]);
                float tile_min;
                const float tile_max = ATT_ROW_MAX_MIN(sr, n, &tile_min);
                hidden[r] = 0;
                if (tile_min == -INFINITY) {
                    if (v_finite < 0)
                        v_finite = ATT_ALL_FINITE(job->v + t0 * job->ldv, job->ldv, t1 - t0, dv);
                    if (!v_finite) {
                        for (size_t j = 0; j < n; j++)
                            if (sr[j] == -INFINITY)
                                hidden[r] |= (uint64_t)1 << j;
                        exact = 1;
                    }
                }
                float m = max[r0 + r];
                /* Rescale only when the maximum grows, as the scalar loop
                   does key by key; here once per tile and row. */
                if (tile_max > m) {
                    const float f = expf(m - tile_max);
                    sum[r0 + r] *= f;
                    ATT_ROW_SCALE(acc[r], dv, f);
                    m = max[r0 + r] = tile_max;
                }
                /* While no key above -INFINITY has been seen the row holds
                   only -INFINITY (weight 0) or NaN (which must reach acc and
                   sum): subtracting 0 keeps both, subtracting -INFINITY
                   would turn the -INFINITY keys into NaN. */
                sum[r0 + r] += ATT_ROW_EXP_SUM(sr, n, m == -INFINITY ? 0.0f : m);
            }
            if (!exact) {
                ATT_PV_ACC(rb, n, dv, s[0], ATT_TILE_KEYS, job->v + lo * job->ldv, job->ldv, acc);
                continue;
            }
            for (size_t r = 0; r < rb; r++) {
                for (size_t j = 0; j < n;) {
                    if (hidden[r] >> j & 1) {
                        j++;
                        continue;
                    }
                    size_t e = j + 1;
                    while (e < n && !(hidden[r] >> e & 1))
                        e++;
                    ATT_PV_ACC(1, e - j, dv, s[r] + j, ATT_TILE_KEYS,
                               job->v + (lo + j) * job->ldv, job->ldv, &acc[r]);
                    j = e;
                }
            }
        }
    }

    for (size_t r = 0; r < rows; r++) {
        job->row[r].max = max[r];
        job->row[r].sum = sum[r];
    }
}

#undef ATT_TILE_KEYS
#undef ATT_TILE_ROWS

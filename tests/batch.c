/*
 * batch: what an engine's batch looks like, on every ISA. Random ragged
 * batches (packed Q/O by q_start, keys per sequence by kv_lens, empty
 * sequences, more query rows than keys) over contiguous or paged K/V
 * (shuffled page tables, pages shared between sequences, page sizes 1..256
 * including non-powers of two, both vLLM page layouts, 16-bit and block
 * K/V), now and then with a 16-bit output, in strict mode or now and then
 * QKV_FPMATH_BF16, each checked against the double oracle run per sequence
 * on a gathered contiguous copy (within the contract, or BF16 mode's
 * bound); bit-identical for 1 and 3 pool threads; and the bad page tables
 * and offsets, which must write nothing.
 *
 *   batch [--seed=N] [--quick]
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "oracle.h"
#include "qkvtest.h"
#include "registry.h"

/* API.md's accuracy contract, as in checkasm: 1e-5 absolute for the output,
   1e-5 relative to max(1, |lse|) for lse; with QKV_FPMATH_BF16, qkv.h's
   bound for inputs in [-1, 1] at the default scale (the cases' own). */
#define TOL 1e-5
#define TOL_LSE_REL 1e-5
#define TOL_BF16 6e-3
#define TOL_BF16_LSE_REL 5e-3

static tally T;
static uint64_t seed;

static size_t pick(uint64_t *s, const size_t *from, size_t n)
{
    return from[rng_next(s) % n];
}

static int coin(uint64_t *s, int percent)
{
    return (int)(rng_next(s) % 100) < percent;
}

/* Up to 5 sequences; now and then a batch of 16 to 18 long ones. */
#define MAX_SEQS 18

typedef struct batch_case {
    qkv_attention_desc d;
    size_t rows[MAX_SEQS], keys[MAX_SEQS];   /* per sequence */
    int32_t q_start[MAX_SEQS + 1], kv_lens[MAX_SEQS];
    int32_t *table;
    float *q, *k, *v, *mask, *slopes, *sinks;
    void *q_st, *k_st, *v_st;        /* Q, K, V as stored (16-bit, blocks), or NULL */
    size_t nq, nk, nv, no, nlse;
    double *want_o, *want_lse;       /* [b][h][i][c] over the packed rows, [h][row] */
} batch_case;

static const size_t page_sizes[] = {1, 3, 16, 17, 64, 100, 256};
static const size_t dims[] = {16, 33, 64, 128};
static const size_t row_counts[] = {0, 1, 2, 7, 33, 70};
static const size_t key_counts[] = {0, 1, 5, 64, 100, 300};
/* Long sequences, 16 to 18 of them, 8 KV heads side by side in the pages:
   the keys are walked in spans of 2048, with a hook one task a sequence
   (more jobs than split tasks of whole spans allow). Small heads keep the
   case cheap under qemu. */
static const size_t long_key_counts[] = {0, 1, 2100};

/* Key j of sequence b, KV head g, as an element offset in the K (or V)
   buffer of the case. */
static size_t kv_at(const qkv_attention_desc *d, const qkv_tensor *t, size_t page_stride, size_t b,
                    size_t g, size_t j)
{
    if (!d->page_size)
        return b * t->batch_stride + g * t->head_stride + j * t->row_stride;
    const int32_t page = d->page_table[b * d->page_table_stride + j / d->page_size];
    return (size_t)page * page_stride + g * t->head_stride + (j % d->page_size) * t->row_stride;
}

/* The oracle on one sequence: its Q rows and gathered K/V, contiguous. */
static void oracle_sequence(batch_case *c, size_t b)
{
    const qkv_attention_desc *d = &c->d;
    const size_t rows = c->rows[b], keys = c->keys[b], hd = d->head_dim, dv = d->v_head_dim;
    if (!rows)
        return;
    double *o = malloc(d->q_heads * rows * dv * sizeof *o), *lse = malloc(d->q_heads * rows * sizeof *lse);
    if (!keys) {           /* no key: zero rows, lse -inf (or the sink) */
        memset(o, 0, d->q_heads * rows * dv * sizeof *o);
        for (size_t h = 0; h < d->q_heads; h++)
            for (size_t i = 0; i < rows; i++)
                lse[h * rows + i] = d->sinks ? d->sinks[h] : -INFINITY;
    } else {
        float *q = malloc(d->q_heads * rows * hd * sizeof *q);
        float *k = malloc(d->kv_heads * keys * hd * sizeof *k);
        float *v = malloc(d->kv_heads * keys * dv * sizeof *v);
        for (size_t h = 0; h < d->q_heads; h++)
            for (size_t i = 0; i < rows; i++)
                memcpy(q + (h * rows + i) * hd,
                       c->q + ((size_t)c->q_start[b] + i) * d->q.row_stride + h * d->q.head_stride,
                       hd * sizeof *q);
        for (size_t g = 0; g < d->kv_heads; g++)
            for (size_t j = 0; j < keys; j++) {
                memcpy(k + (g * keys + j) * hd, c->k + kv_at(d, &d->k, d->k_page_stride, b, g, j),
                       hd * sizeof *k);
                memcpy(v + (g * keys + j) * dv, c->v + kv_at(d, &d->v, d->v_page_stride, b, g, j),
                       dv * sizeof *v);
            }
        qkv_attention_desc s = *d;
        s.batch = 1;
        s.q_len = rows;
        s.kv_len = keys;
        s.q = (qkv_tensor){q, QKV_F32, 0, rows * hd, hd};
        s.k = (qkv_tensor){k, QKV_F32, 0, keys * hd, hd};
        s.v = (qkv_tensor){v, QKV_F32, 0, keys * dv, dv};
        s.page_size = s.num_pages = 0;
        s.page_table = NULL;
        s.q_start = s.kv_lens = NULL;
        if (d->mask == QKV_MASK_ADDITIVE)
            s.mask_add.data = c->mask + b * d->mask_add.batch_stride;
        oracle_attention(&s, o, lse);
        free(q), free(k), free(v);
    }
    for (size_t h = 0; h < d->q_heads; h++)
        for (size_t i = 0; i < rows; i++) {
            const size_t row = (size_t)c->q_start[b] + i;
            memcpy(c->want_o + (h * d->q_len + row) * dv, o + (h * rows + i) * dv, dv * sizeof *o);
            c->want_lse[h * d->q_len + row] = lse[h * rows + i];
        }
    free(o), free(lse);
}

/* How K or V of rows of n values is stored: mostly f32, now and then f16
   or bf16, and Q8_0 or Q4_0 where n is whole blocks of 32. */
static qkv_dtype draw_kv_dtype(uint64_t *s, size_t n)
{
    if (!coin(s, 40))
        return QKV_F32;
    const qkv_dtype all[] = {QKV_F16, QKV_BF16, QKV_Q8_0, QKV_Q4_0};
    return all[rng_next(s) % (n % 32 == 0 ? 4 : 2)];
}

/* Whether the ISA's bf16 tiles may round in QKV_FPMATH_BF16 (qkv.h): the
   registry's answer, not a list of names to keep in step with it. */
static int has_bf16_tiles(qkv_isa isa)
{
    const qkv_ctx *c = qkv_ctx_for(isa);
    return c && c->rounds_bf16;
}

/* A random case; walk 1, 2, 3: a batch of long sequences whose K and V,
   f16, bf16 or f32, lie in pages of 16 keys in vLLM's layout, which a walk
   reads page by page where the ISA's decode is memory-bound (plan.c's
   sweep_pages, on AVX-512 where the CPU is swept for: its heads of 16
   dimensions make short runs of a page). */
static const qkv_dtype walk_dtypes[] = {QKV_F16, QKV_BF16, QKV_F32};
static void make_case(batch_case *c, uint64_t *s, int quick, int walk)
{
    memset(c, 0, sizeof *c);
    qkv_attention_desc *d = &c->d;
    const int long_keys = walk || coin(s, 8);
    d->batch = long_keys ? 16 + rng_next(s) % 3 : 1 + rng_next(s) % (quick ? 3 : 5);
    d->kv_heads = long_keys ? 8 : 1 + rng_next(s) % 2;
    d->q_heads = d->kv_heads * (long_keys ? 1 : (size_t[]){1, 2, 4}[rng_next(s) % 3]);
    d->head_dim = long_keys ? dims[0] : pick(s, dims, 4);
    d->v_head_dim = long_keys || coin(s, 70) ? d->head_dim : pick(s, dims, 4);
    /* Per-sequence lengths; now and then a batch with q_start only, kv_lens
       only, or neither, to cover the paths in between. */
    const int ragged = coin(s, 75), per_seq_keys = long_keys || coin(s, ragged ? 75 : 50);
    size_t total = 0, most_keys = 1, most_rows = 0;
    const size_t same_rows = 1 + rng_next(s) % (long_keys ? 2 : 40);
    for (size_t b = 0; b < d->batch; b++) {
        c->rows[b] = !ragged ? same_rows : long_keys ? rng_next(s) % 3 : pick(s, row_counts, 6);
        c->keys[b] = long_keys      ? pick(s, long_key_counts, 3)
                     : per_seq_keys ? pick(s, key_counts, 6)
                                    : 0;
        c->q_start[b] = (int32_t)total;
        total += c->rows[b];
        most_rows = c->rows[b] > most_rows ? c->rows[b] : most_rows;
        most_keys = c->keys[b] > most_keys ? c->keys[b] : most_keys;
    }
    if (!total) {           /* at least one query row in the batch */
        c->rows[0] = 1;
        for (size_t b = 1; b <= d->batch; b++)
            c->q_start[b] = 1;
        total = most_rows = 1;
    }
    c->q_start[d->batch] = (int32_t)total;
    if (!per_seq_keys)    /* every sequence has kv_len keys: from the same counts */
        most_keys = 1 + pick(s, key_counts, 5);
    d->kv_len = most_keys + (coin(s, 30) ? rng_next(s) % 5 : 0);
    for (size_t b = 0; b < d->batch; b++) {
        if (!per_seq_keys)
            c->keys[b] = d->kv_len;
        c->kv_lens[b] = (int32_t)c->keys[b];
    }
    if (!ragged)
        for (size_t b = 0; b <= d->batch; b++)
            c->q_start[b] = (int32_t)(b * same_rows);
    d->q_len = ragged ? total : same_rows;
    if (ragged)
        d->q_start = c->q_start;
    if (per_seq_keys)
        d->kv_lens = c->kv_lens;

    /* Q and O: packed [row][head][dim] (ragged) or [b][row][head][dim]. */
    const size_t hd = d->head_dim, dv = d->v_head_dim, rows_all = d->batch * 0 + total;
    d->q.row_stride = d->q_heads * hd;
    d->q.head_stride = hd;
    d->q.batch_stride = ragged ? 0 : d->q_len * d->q.row_stride;
    d->o.row_stride = d->q_heads * dv + (coin(s, 30) ? 3 : 0);
    d->o.head_stride = dv;
    d->o.batch_stride = ragged ? 0 : d->q_len * d->o.row_stride;
    c->nq = total * d->q.row_stride;
    c->no = (total - 1) * d->o.row_stride + d->q_heads * dv;
    (void)rows_all;

    /* Q, K and V: 16-bit or (head_dim a multiple of 32) Q8_0/Q4_0 blocks
       now and then, K/V paged or one block per sequence. */
    const qkv_dtype qt = coin(s, 20) ? (coin(s, 50) ? QKV_F16 : QKV_BF16) : QKV_F32;
    const qkv_dtype kt = walk ? walk_dtypes[walk - 1] : draw_kv_dtype(s, hd);
    const qkv_dtype vt = walk ? kt : draw_kv_dtype(s, dv);
    const size_t pad = kt == QKV_Q8_0 || kt == QKV_Q4_0 ? 32 : 1;   /* padded K rows stay whole blocks */
    if (walk || coin(s, 70)) {
        d->page_size = walk ? 16 : pick(s, page_sizes, 7);
        size_t needed = 0;
        for (size_t b = 0; b < d->batch; b++)
            needed += (c->keys[b] + d->page_size - 1) / d->page_size;
        d->num_pages = needed + 1 + rng_next(s) % 3;
        const size_t per_seq = (d->kv_len + d->page_size - 1) / d->page_size;
        d->page_table_stride = per_seq + (coin(s, 50) ? 2 : 0);
        c->table = malloc((d->batch * d->page_table_stride + 1) * sizeof *c->table);
        /* A shuffled pool; each sequence takes fresh pages, except that now
           and then it shares its first page with sequence 0 (a common
           prefix, as prefix caching makes it). */
        int32_t *perm = malloc(d->num_pages * sizeof *perm);
        for (size_t i = 0; i < d->num_pages; i++)
            perm[i] = (int32_t)i;
        for (size_t i = d->num_pages; i > 1; i--) {
            const size_t j = rng_next(s) % i;
            const int32_t t = perm[i - 1];
            perm[i - 1] = perm[j], perm[j] = t;
        }
        size_t next = 0;
        for (size_t b = 0; b < d->batch; b++)
            for (size_t i = 0; i < d->page_table_stride; i++) {
                int32_t id = -1;   /* past the pages a sequence reads: never looked at */
                if (i < (c->keys[b] + d->page_size - 1) / d->page_size)
                    id = b > 0 && i == 0 && c->keys[0] && coin(s, 30) ? c->table[0] : perm[next++];
                c->table[b * d->page_table_stride + i] = id;
            }
        free(perm);
        d->page_table = c->table;
        const int shd = !walk && coin(s, 50);   /* [pages][page_size][kv_heads][dim] or [pages][kv_heads][...] */
        const size_t ks = hd + (coin(s, 30) ? pad : 0), vs = dv;
        if (shd) {
            d->k.head_stride = ks, d->k.row_stride = d->kv_heads * ks;
            d->v.head_stride = vs, d->v.row_stride = d->kv_heads * vs;
        } else {
            d->k.row_stride = ks, d->k.head_stride = d->page_size * ks;
            d->v.row_stride = vs, d->v.head_stride = d->page_size * vs;
        }
        d->k_page_stride = d->page_size * d->kv_heads * ks;
        d->v_page_stride = d->page_size * d->kv_heads * vs;
        c->nk = d->num_pages * d->k_page_stride;
        c->nv = d->num_pages * d->v_page_stride;
    } else {
        d->k.row_stride = hd, d->k.head_stride = d->kv_len * hd;
        d->k.batch_stride = d->kv_heads * d->k.head_stride;
        d->v.row_stride = dv, d->v.head_stride = d->kv_len * dv;
        d->v.batch_stride = d->kv_heads * d->v.head_stride;
        c->nk = d->batch * d->k.batch_stride;
        c->nv = d->batch * d->v.batch_stride;
    }
    c->q = malloc(c->nq * sizeof *c->q);
    c->k = malloc(c->nk * sizeof *c->k);
    c->v = malloc(c->nv * sizeof *c->v);
    fill_unit(s, c->q, c->nq);
    fill_unit(s, c->k, c->nk);
    fill_unit(s, c->v, c->nv);
    /* Stored in their dtype (n whole blocks of 32 for the block types:
       every stride is); the oracle sees the same values. */
    const qkv_funcs *scalar = funcs_of(QKV_ISA_SCALAR);
    c->q_st = test_store_as(scalar, c->q, c->nq, qt);
    c->k_st = test_store_as(scalar, c->k, c->nk, kt);
    c->v_st = test_store_as(scalar, c->v, c->nv, vt);
    d->q.data = c->q_st ? c->q_st : c->q, d->q.dtype = qt;
    d->k.data = c->k_st ? c->k_st : c->k, d->k.dtype = kt;
    d->v.data = c->v_st ? c->v_st : c->v, d->v.dtype = vt;
    d->scale = qkv_default_scale(hd);

    d->mask = (qkv_mask_kind)(rng_next(s) % 3);
    if (d->mask == QKV_MASK_ADDITIVE) {
        const size_t ld = d->kv_len, hs = most_rows * ld, bs = d->q_heads * hs;
        const size_t n = d->batch * bs;
        c->mask = malloc((n ? n : 1) * sizeof *c->mask);
        fill_unit(s, c->mask, n);
        for (size_t i = 0; i < n; i++)
            if (coin(s, 10))
                c->mask[i] = -INFINITY;
        /* Now and then one mask for every head or every sequence (stride 0). */
        d->mask_add = (qkv_float_mask){c->mask, coin(s, 25) ? 0 : bs, coin(s, 25) ? 0 : hs, ld};
    }
    if (coin(s, 20))
        d->window = 1 + rng_next(s) % (d->kv_len + 2);
    if (coin(s, 20))
        d->softcap = 3.0f;
    if (coin(s, 20)) {
        c->slopes = malloc(d->q_heads * sizeof *c->slopes);
        for (size_t h = 0; h < d->q_heads; h++)
            c->slopes[h] = 0.05f * (float)(h + 1);
        d->alibi_slopes = c->slopes;
    }
    if (coin(s, 20)) {
        c->sinks = malloc(d->q_heads * sizeof *c->sinks);
        fill_unit(s, c->sinks, d->q_heads);
        d->sinks = c->sinks;
    }
    c->nlse = ragged ? d->q_heads * total : d->batch * d->q_heads * d->q_len;
    /* Now and then BF16 mode: the bf16 tiles (avx512bf16, amx, neonbf16,
       svebf16) pack K and V rows from any page. */
    d->fpmath = coin(s, 25) ? QKV_FPMATH_BF16 : QKV_FPMATH_STRICT;
    /* Now and then a 16-bit output (rounded once, at the end: the walks
       and key splits merge their partial rows in f32 first). */
    d->o.dtype = coin(s, 20) ? (coin(s, 50) ? QKV_F16 : QKV_BF16) : QKV_F32;

    /* The oracle, sequence by sequence, in the test's own packed layout:
       want_o[h][packed row][c], want_lse[h][packed row]. */
    c->want_o = calloc(d->q_heads * total * dv, sizeof *c->want_o);
    c->want_lse = calloc(d->q_heads * total, sizeof *c->want_lse);
    const size_t saved = d->q_len;
    d->q_len = total;    /* the want arrays are over all packed rows */
    for (size_t b = 0; b < d->batch; b++)
        oracle_sequence(c, b);
    d->q_len = saved;
}

static void free_case(batch_case *c)
{
    free(c->table), free(c->q), free(c->k), free(c->v), free(c->mask), free(c->slopes);
    free(c->sinks), free(c->q_st), free(c->k_st), free(c->v_st), free(c->want_o), free(c->want_lse);
}

static void describe(const batch_case *c, char *buf, size_t n)
{
    const qkv_attention_desc *d = &c->d;
    int at = snprintf(buf, n, "b=%zu hq=%zu hkv=%zu d=%zu dv=%zu q_len=%zu kv_len=%zu %s%s "
                      "page_size=%zu mask=%d window=%zu dtypes q/k/v/o=%d/%d/%d/%d%s rows/keys:",
                      d->batch, d->q_heads, d->kv_heads, d->head_dim, d->v_head_dim, d->q_len,
                      d->kv_len, d->q_start ? "ragged" : "regular", d->kv_lens ? "+kv_lens" : "",
                      d->page_size, d->mask, d->window, d->q.dtype, d->k.dtype, d->v.dtype, d->o.dtype,
                      d->fpmath == QKV_FPMATH_BF16 ? " fpmath=bf16" : "");
    for (size_t b = 0; b < d->batch && at > 0 && (size_t)at < n; b++)
        at += snprintf(buf + at, n - (size_t)at, " %zu/%zu", c->rows[b], c->keys[b]);
}

/* One run: every output row against the oracle, nothing outside them. */
static void run(batch_case *c, const qkv_funcs *f, qkv_pool *pool, float *keep, const char *what)
{
    qkv_attention_desc d = c->d;
    const size_t dv = d.v_head_dim;
    const int out16 = d.o.dtype != QKV_F32;
    pbuf o = pbuf_new(out16 ? (c->no + 1) / 2 : c->no), lse = pbuf_new(c->nlse);
    d.o.data = o.data;
    d.lse = lse.data;
    if (pool) {
        d.parallel_for = qkv_pool_parallel_for;
        d.pool = pool;
    }
    char text[512];
    describe(c, text, sizeof text);
    const qkv_status st = f->attention(&d);
    if (!tally_check(&T, st == QKV_OK, "[%s] %s (%s): status %s (seed %" PRIu64 ")",
                     qkv_isa_name(f->isa), text, what, qkv_status_string(st), seed)) {
        pbuf_free(&o), pbuf_free(&lse);
        return;
    }
    /* BF16 mode's bound where the ISA has bf16 tiles to round with; the
       others compute it as STRICT, within TOL (qkv.h). */
    const int bf16 = d.fpmath == QKV_FPMATH_BF16 && has_bf16_tiles(f->isa);
    const double tol = bf16 ? TOL_BF16 : TOL;
    const qkv_funcs *scalar = funcs_of(QKV_ISA_SCALAR);
    double worst = 0, worst_lse = 0;
    unsigned char *own = calloc(c->no, 1);
    size_t k = 0;
    for (size_t b = 0; b < d.batch; b++)
        for (size_t h = 0; h < d.q_heads; h++)
            for (size_t i = 0; i < c->rows[b]; i++) {
                const size_t row = (size_t)c->q_start[b] + i;
                const size_t at = d.q_start ? row * d.o.row_stride + h * d.o.head_stride
                                            : b * d.o.batch_stride + h * d.o.head_stride +
                                                  i * d.o.row_stride;
                const size_t li = d.q_start ? h * d.q_len + row : (b * d.q_heads + h) * d.q_len + i;
                const size_t wrow = h * (size_t)c->q_start[d.batch] + row;
                memset(own + at, 1, dv);
                for (size_t x = 0; x < dv; x++) {
                    /* A 16-bit output: within the tolerance plus half its
                       unit in the last place (qkv.h). */
                    const double want = c->want_o[wrow * dv + x];
                    const float got = out_value(scalar, &d.o, at + x);
                    const double e = fabs(got - want) - half_ulp(d.o.dtype, fabs(want) + tol);
                    worst = isnan(e) ? INFINITY : fmax(worst, e);
                    keep[k++] = got;
                }
                const double w = c->want_lse[wrow], g = lse.data[li];
                const double e = isinf(w) ? (g == w ? 0 : INFINITY) : fabs(g - w) / fmax(1, fabs(w));
                worst_lse = isnan(e) ? INFINITY : fmax(worst_lse, e);
                keep[k++] = lse.data[li];
            }
    tally_check(&T, worst <= tol &&
                        worst_lse <= (bf16 ? TOL_BF16_LSE_REL : TOL_LSE_REL),
                "[%s] %s (%s): output error %.3g, lse %.3g (seed %" PRIu64 ")",
                qkv_isa_name(f->isa), text, what, worst, worst_lse, seed);
    tally_check(&T, (out16 ? guarded_intact16(&o, own, c->no) : gaps_untouched(&o, own)) &&
                        pbuf_guards_ok(&lse),
                "[%s] %s (%s): wrote outside the output rows (seed %" PRIu64 ")",
                qkv_isa_name(f->isa), text, what, seed);
    free(own);
    pbuf_free(&o), pbuf_free(&lse);
}

static void test_random(int cases, int walks, int quick, qkv_pool *one, qkv_pool *three)
{
    qkv_isa isas[QKV_ISA_COUNT];
    const int n = supported_isas(isas);
    uint64_t s = seed;
    for (int t = 0; t < cases + walks; t++) {
        batch_case c;
        make_case(&c, &s, quick, t >= cases ? 1 + t - cases : 0);
        size_t cells = 0;
        for (size_t b = 0; b < c.d.batch; b++)
            cells += c.rows[b] * c.d.q_heads * (c.d.v_head_dim + 1);
        float *a = malloc((cells + 1) * sizeof *a), *b1 = malloc((cells + 1) * sizeof *b1);
        for (int i = 0; i < n; i++) {
            const qkv_funcs *f = funcs_of(isas[i]);
            run(&c, f, NULL, a, "calling thread");
            if (t % 2 == 0 || t >= cases) {
                /* The split follows from the shapes: 1 and 3 threads agree. */
                run(&c, f, one, a, "pool of 1");
                run(&c, f, three, b1, "pool of 3");
                char text[512];
                describe(&c, text, sizeof text);
                tally_check(&T, memcmp(a, b1, cells * sizeof *a) == 0,
                            "[%s] %s: 1 and 3 threads differ (seed %" PRIu64 ")",
                            qkv_isa_name(isas[i]), text, seed);
            }
        }
        free(a), free(b1);
        free_case(&c);
    }
}

/* ---- bad page tables and offsets: QKV_ERR_ARG, nothing written ------------- */

static void test_bad(void)
{
    /* Two sequences, page_size 4, 6 keys each (2 pages), 3 pages in the pool. */
    float q[2 * 2 * 8], kv[3 * 4 * 8];
    fill_unit(&(uint64_t){7}, q, sizeof q / sizeof *q);
    fill_unit(&(uint64_t){8}, kv, sizeof kv / sizeof *kv);
    static const char *const what[] = {
        "page id past num_pages", "negative page id", "num_pages 0", "no page table",
        "page table without page_size", "page_table_stride below the pages a sequence needs",
        "q_start[0] != 0", "q_start decreasing", "q_start[batch] != q_len", "negative kv_lens",
        "kv_lens past kv_len", "o over the page table", "lse over kv_lens",
        /* (kv_len + page_size - 1) / page_size had wrapped to 0 pages checked */
        "page_size near SIZE_MAX, a page id past num_pages",
        /* the table had been read before its size was checked */
        "page_table_stride whose table overflows",
        "num_pages past INT32_MAX",
        /* docs/errors.md: the page ids are checked before the sizes */
        "a negative page id and a page stride that overflows",
    };
    const size_t ncases = sizeof what / sizeof what[0];
    qkv_isa isas[QKV_ISA_COUNT];
    const int n = supported_isas(isas);
    for (size_t t = 0; t < ncases; t++) {
        for (int i = 0; i < n; i++) {
            int32_t tb[4] = {0, 1, 2, 0}, qs[3] = {0, 1, 2}, kl[2] = {6, 5};
            pbuf o = pbuf_new(2 * 2 * 8), lse = pbuf_new(4);
            qkv_attention_desc d = {0};
            d.batch = 2, d.q_heads = 2, d.kv_heads = 1, d.q_len = 2, d.kv_len = 6;
            d.head_dim = d.v_head_dim = 8;
            d.q = (qkv_tensor){q, QKV_F32, 0, 8, 16};
            d.k = d.v = (qkv_tensor){kv, QKV_F32, 0, 32, 8};
            d.k_page_stride = d.v_page_stride = 32;
            d.o = (qkv_out_tensor){o.data, 0, 8, 16, QKV_F32};
            d.lse = lse.data;
            d.scale = 0.3f;
            d.page_size = 4, d.num_pages = 3, d.page_table = tb, d.page_table_stride = 2;
            d.q_start = qs, d.kv_lens = kl;
            /* The unedited descriptor is valid. */
            if (t == 0)
                tally_check(&T, funcs_of(isas[i])->attention(&d) == QKV_OK,
                            "[%s] the valid paged ragged descriptor fails", qkv_isa_name(isas[i]));
            pbuf_reset(&o), pbuf_reset(&lse);
            switch (t) {
            case 0: tb[3] = 3; break;
            case 1: tb[1] = -1; break;
            case 2: d.num_pages = 0; break;
            case 3: d.page_table = NULL; break;
            case 4: d.page_size = 0; break;
            case 5: d.page_table_stride = 1; break;
            case 6: qs[0] = 1; break;
            case 7: qs[1] = 2, qs[2] = 1, d.q_len = 1; break;
            case 8: d.q_len = 3; break;
            case 9: kl[1] = -1; break;
            case 10: kl[0] = 7; break;
            case 11: d.o.data = tb; break;
            case 12: d.lse = (float *)kl; break;
            case 13: d.page_size = SIZE_MAX - 5, tb[2] = 1000000; break;
            case 14: d.page_table_stride = (size_t)1 << 61; break;
            case 15: d.num_pages = (size_t)INT32_MAX + 1; break;
            case 16: tb[1] = -1, d.k_page_stride = SIZE_MAX / 4; break;
            }
            const qkv_status st = funcs_of(isas[i])->attention(&d),
                             want = t == 14 ? QKV_ERR_OVERFLOW : QKV_ERR_ARG;
            tally_check(&T, st == want, "[%s] %s: status %s, want %s", qkv_isa_name(isas[i]),
                        what[t], qkv_status_string(st), qkv_status_string(want));
            tally_check(&T, pbuf_untouched(&o) && pbuf_untouched(&lse),
                        "[%s] %s: an output was written", qkv_isa_name(isas[i]), what[t]);
            pbuf_free(&o), pbuf_free(&lse);
        }
    }
}

/* Paged K/V do not use batch_stride (the table places each sequence), so
   a paged Q8_0 cache's batch_stride is not held to the block rule: any
   value gives the result of 0. */
static void test_paged_block_batch_stride(void)
{
    float q[2 * 32], kv[3 * 4 * 32], o0[2 * 32], o1[2 * 32];
    unsigned char k8[3 * 4 * 34];
    fill_unit(&(uint64_t){9}, q, sizeof q / sizeof *q);
    fill_unit(&(uint64_t){10}, kv, sizeof kv / sizeof *kv);
    qkv_convert(sizeof kv / sizeof *kv, kv, QKV_F32, k8, QKV_Q8_0);
    int32_t tb[2] = {2, 0};
    qkv_attention_desc d = {0};
    d.batch = 1, d.q_heads = 2, d.kv_heads = 1, d.q_len = 1, d.kv_len = 6;
    d.head_dim = d.v_head_dim = 32;
    d.q = (qkv_tensor){q, QKV_F32, 0, 32, 32};
    d.k = d.v = (qkv_tensor){k8, QKV_Q8_0, 0, 4 * 32, 32};
    d.k_page_stride = d.v_page_stride = 4 * 32;
    d.scale = 0.2f;
    d.page_size = 4, d.num_pages = 3, d.page_table = tb, d.page_table_stride = 2;
    qkv_isa isas[QKV_ISA_COUNT];
    const int n = supported_isas(isas);
    for (int i = 0; i < n; i++) {
        d.k.batch_stride = d.v.batch_stride = 0;
        d.o = (qkv_out_tensor){o0, 0, 32, 32, QKV_F32};
        const qkv_status s0 = funcs_of(isas[i])->attention(&d);
        d.k.batch_stride = d.v.batch_stride = 5;
        d.o = (qkv_out_tensor){o1, 0, 32, 32, QKV_F32};
        const qkv_status s1 = funcs_of(isas[i])->attention(&d);
        tally_check(&T, s0 == QKV_OK && s1 == QKV_OK && !memcmp(o0, o1, sizeof o0),
                    "[%s] paged Q8_0 with batch_stride 5: status %s (0: %s) or another result",
                    qkv_isa_name(isas[i]), qkv_status_string(s1), qkv_status_string(s0));
        /* The strides that do place rows must keep them on block
           boundaries: QKV_ERR_ARG, nothing written. */
        for (int bad = 0; bad < 3; bad++) {
            qkv_attention_desc e = d;
            if (bad == 0)
                e.k.row_stride = 33;
            else if (bad == 1)
                e.v.head_stride = 16;
            else
                e.k_page_stride = 4 * 32 + 1;
            pbuf o = pbuf_new(2 * 32);
            e.o = (qkv_out_tensor){o.data, 0, 32, 32, QKV_F32};
            const qkv_status st = funcs_of(isas[i])->attention(&e);
            tally_check(&T, st == QKV_ERR_ARG && pbuf_untouched(&o),
                        "[%s] paged Q8_0 with a %s off the blocks: status %s, or written",
                        qkv_isa_name(isas[i]),
                        bad == 0 ? "K row stride" : bad == 1 ? "V head stride" : "K page stride",
                        qkv_status_string(st));
            pbuf_free(&o);
        }
    }
}

int main(int argc, char **argv)
{
    int quick = 0;
    seed = (uint64_t)time(NULL);
    for (int i = 1; i < argc; i++) {
        if (strncmp(argv[i], "--seed=", 7) == 0)
            seed = strtoull(argv[i] + 7, NULL, 0);
        else if (strcmp(argv[i], "--quick") == 0)
            quick = 1;
        else {
            fprintf(stderr, "usage: %s [--seed=N] [--quick]\n", argv[0]);
            return 2;
        }
    }
    printf("batch: seed %" PRIu64 "\n", seed);
    qkv_pool *one = NULL, *three = NULL;
    if (qkv_pool_create(1, &one) != QKV_OK || qkv_pool_create(3, &three) != QKV_OK)
        return 1;
    test_random(quick ? 12 : 40, 3, quick, one, three);
    test_bad();
    test_paged_block_batch_stride();
    qkv_pool_destroy(one);
    qkv_pool_destroy(three);
    return tally_finish(&T);
}

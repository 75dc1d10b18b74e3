/*
 * qkv_merge_states, checkasm style: every supported ISA (its qkv_funcs
 * table, and the dispatched entry point with the process-wide choice set to
 * it) on the same seeded inputs, outputs in sentinel-guarded buffers.
 *
 *   merge [--seed=N] [--quick] [--group=split|kernel|badargs]
 *
 *   split     random attention problems (GQA, causal, window, additive
 *             masks, ALiBi, soft-cap, sinks, lse) computed over random
 *             shards of the keys with qkv_attention, merged in order, equal
 *             to the unsplit call and to the double oracle;
 *   kernel    random states with special rows (-inf on one or both sides,
 *             NaN or +inf lse, NaN or inf in o, ties, far-apart lse): every
 *             ISA gives the scalar reference's bits, the reference matches a
 *             double evaluation, and the exact rules hold bit for bit;
 *   badargs   each error of docs/errors.md, with nothing written.
 *
 * The seed is printed; rerun with --seed to reproduce. Ends with
 * "N passed, M failed".
 */
#include <inttypes.h>
#include <stdint.h>
#include <time.h>

#include "oracle.h"
#include "qkvtest.h"

/* API.md: every ISA within 1e-5 (absolute) of the double oracle for f32
   inputs in [-1, 1] and |V| <= 1; lse, whose float error grows with its
   magnitude, within 1e-5 relative to max(1, |lse|) as in checkasm. The
   merged result is held to the same bounds, against the oracle and against
   the unsplit call (both sit ~1e-7 from the oracle, so 1e-5 leaves room). */
#define TOL 1e-5
#define TOL_LSE_REL 1e-5
/* One merge of values in [-1, 1]: the weights carry ~3 ulp (expf, one
   division), the blend 1.5 more; 1e-6 is ~8 ulp at 1. */
#define TOL_ONE_MERGE 1e-6

static tally T;
static uint64_t seed, rng;
static qkv_isa isas[QKV_ISA_COUNT];
static int nisa;

static size_t urand(size_t lo, size_t hi) /* inclusive */
{
    return lo + (size_t)(rng_next(&rng) % (hi - lo + 1));
}

static int coin(int percent)
{
    return (int)(rng_next(&rng) % 100) < percent;
}

static float frand(float lo, float hi)
{
    return lo + (hi - lo) * (float)((double)(rng_next(&rng) >> 40) / 16777216.0);
}

/* An input of exactly n floats: no slack to hide over-reads from ASan. */
static float *input(size_t n, float lo, float hi)
{
    float *x = malloc((n ? n : 1) * sizeof *x);
    for (size_t i = 0; i < n; i++)
        x[i] = frand(lo, hi);
    return x;
}

static int bits_equal(float a, float b)
{
    return same_bits(&a, &b, 1);
}

/* One way of calling: an ISA's table, or the dispatched entry point after
   qkv_isa_set. */
typedef struct caller {
    qkv_isa isa;
    int dispatched;
    const qkv_funcs *f;
} caller;

static qkv_status call_merge(const caller *c, size_t rows, size_t dv, float *o, size_t ldo,
                             float *lse, const float *o2, size_t ldo2, const float *lse2)
{
    if (!c->dispatched)
        return c->f->merge_states(rows, dv, o, ldo, lse, o2, ldo2, lse2);
    if (qkv_isa_set(c->isa) != QKV_OK)
        tally_check(&T, 0, "qkv_isa_set(%s) failed for a supported ISA", qkv_isa_name(c->isa));
    return qkv_merge_states(rows, dv, o, ldo, lse, o2, ldo2, lse2);
}

static int ncallers;
static caller callers[2 * QKV_ISA_COUNT];

static const char *who(const caller *c)
{
    static char buf[2][40];
    static int k;
    k ^= 1;
    snprintf(buf[k], sizeof buf[k], "%s%s", qkv_isa_name(c->isa), c->dispatched ? " (dispatched)" : "");
    return buf[k];
}

/* ---- split: shards of the keys, merged, equal the whole ------------------- */

/* Strides of a [batch][heads][rows][dim] tensor, BHSD or BSHD, rows padded
   now and then. */
typedef struct layout {
    size_t bs, hs, rs, total;
} layout;

static layout make_layout(size_t batch, size_t heads, size_t rows, size_t dim)
{
    layout l;
    const size_t padded = dim + (coin(30) ? urand(1, 7) : 0);
    if (coin(40)) {
        l.hs = padded, l.rs = heads * padded, l.bs = rows * l.rs;
    } else {
        l.rs = padded, l.hs = rows * padded, l.bs = heads * l.hs;
    }
    l.total = tensor_elems(batch, l.bs, heads, l.hs, rows, l.rs, dim);
    return l;
}

static const size_t dims[] = {1, 3, 8, 16, 17, 33, 64, 80, 128};

typedef struct split_case {
    qkv_attention_desc d;           /* the whole problem */
    float *q, *k, *v, *mask, *slopes, *sinks;
    float *eff;                     /* the whole problem's scores modifiers as a
                                       dense additive mask [b][h][i][kv_len], or NULL */
    size_t nshards, cut[7];         /* shard s: keys [cut[s], cut[s+1]) */
    size_t sink_shard;
} split_case;

static void describe(const split_case *c, char *buf, size_t n)
{
    const qkv_attention_desc *d = &c->d;
    int at = snprintf(buf, n, "b=%zu hq=%zu hkv=%zu q_len=%zu kv_len=%zu d=%zu dv=%zu mask=%d "
                      "window=%zu softcap=%g alibi=%d sinks=%d shards",
                      d->batch, d->q_heads, d->kv_heads, d->q_len, d->kv_len, d->head_dim,
                      d->v_head_dim, d->mask, d->window, d->softcap, !!d->alibi_slopes,
                      !!d->sinks);
    for (size_t s = 0; s < c->nshards && at > 0 && (size_t)at < n; s++)
        at += snprintf(buf + at, n - (size_t)at, "%s%zu..%zu", s ? "," : "=", c->cut[s],
                       c->cut[s + 1]);
}

/* The causal and window cuts, ALiBi and the additive mask of the whole
   problem, as one additive mask over all its keys. A shard then sees exactly
   what the whole call sees through a pointer into it: data + first key, the
   same row stride. (Its own causal mask or ALiBi would be measured from the
   shard's end, not the sequence's.) */
static float *effective_mask(const qkv_attention_desc *d)
{
    const size_t n = d->batch * d->q_heads * d->q_len * d->kv_len;
    float *m = malloc(n * sizeof *m);
    size_t at = 0;
    for (size_t b = 0; b < d->batch; b++)
        for (size_t h = 0; h < d->q_heads; h++)
            for (size_t i = 0; i < d->q_len; i++) {
                const long long p = (long long)i + (long long)d->kv_len - (long long)d->q_len;
                for (size_t j = 0; j < d->kv_len; j++, at++) {
                    float x = 0.0f;
                    /* As the kernels compute it: slope · (float)(j - p). */
                    if (d->alibi_slopes)
                        x = d->alibi_slopes[h] * (float)((long long)j - p);
                    if (d->mask == QKV_MASK_ADDITIVE)
                        x += d->mask_add.data[b * d->mask_add.batch_stride +
                                              h * d->mask_add.head_stride +
                                              i * d->mask_add.row_stride + j];
                    if ((d->mask == QKV_MASK_CAUSAL && (long long)j > p) ||
                        (d->window && (long long)j + (long long)d->window <= p))
                        x = -INFINITY;
                    m[at] = x;
                }
            }
    return m;
}

static void make_split_case(split_case *c)
{
    memset(c, 0, sizeof *c);
    qkv_attention_desc *d = &c->d;
    d->batch = urand(1, 2);
    d->kv_heads = urand(1, 3);
    d->q_heads = d->kv_heads * (size_t[]){1, 1, 2, 4}[urand(0, 3)];
    d->head_dim = dims[urand(0, sizeof dims / sizeof dims[0] - 1)];
    d->v_head_dim = coin(70) ? d->head_dim : dims[urand(0, sizeof dims / sizeof dims[0] - 1)];
    d->q_len = coin(30) ? urand(1, 2) : urand(1, 40);
    d->kv_len = urand(2, coin(30) ? 600 : 90);
    while (d->batch * d->q_heads * d->q_len * d->kv_len * (d->head_dim + d->v_head_dim) > 1500000)
        d->q_len = d->q_len / 2 + 1, d->kv_len = d->kv_len * 3 / 4 + 2;
    layout lq = make_layout(d->batch, d->q_heads, d->q_len, d->head_dim);
    layout lk = make_layout(d->batch, d->kv_heads, d->kv_len, d->head_dim);
    layout lv = make_layout(d->batch, d->kv_heads, d->kv_len, d->v_head_dim);
    c->q = input(lq.total, -1, 1);
    c->k = input(lk.total, -1, 1);
    c->v = input(lv.total, -1, 1);
    d->q = (qkv_tensor){c->q, QKV_F32, lq.bs, lq.hs, lq.rs};
    d->k = (qkv_tensor){c->k, QKV_F32, lk.bs, lk.hs, lk.rs};
    d->v = (qkv_tensor){c->v, QKV_F32, lv.bs, lv.hs, lv.rs};
    d->scale = coin(80) ? qkv_default_scale(d->head_dim) : frand(0, 1);
    d->mask = (qkv_mask_kind)urand(0, 2);
    if (d->mask == QKV_MASK_ADDITIVE) {
        const size_t ld = d->kv_len + (coin(30) ? urand(1, 5) : 0);
        const size_t hs = coin(50) ? 0 : d->q_len * ld;
        const size_t bs = coin(50) ? 0 : (hs ? d->q_heads * hs : d->q_len * ld);
        const size_t total = tensor_elems(d->batch, bs, d->q_heads, hs, d->q_len, ld, d->kv_len);
        c->mask = input(total, -2, 0);
        for (size_t i = 0; i < total; i++)
            if (coin(15))
                c->mask[i] = -INFINITY;
        d->mask_add = (qkv_float_mask){c->mask, bs, hs, ld};
    }
    if (coin(20))
        d->window = urand(1, d->kv_len + 3);
    if (coin(20))
        d->softcap = frand(0.5f, 5);
    if (coin(20)) {
        c->slopes = input(d->q_heads, 0, 0.2f);
        d->alibi_slopes = c->slopes;
    }
    if (coin(30)) {
        c->sinks = input(d->q_heads, -1, 2);
        d->sinks = c->sinks;
    }
    /* 2 to 6 non-empty shards at random cuts; now and then 1 (no merge:
       a check of the harness itself). */
    c->nshards = coin(10) ? 1 : urand(2, d->kv_len < 6 ? d->kv_len : 6);
    c->cut[0] = 0;
    c->cut[c->nshards] = d->kv_len;
    for (size_t s = 1; s < c->nshards; s++)   /* increasing, each shard >= 1 key */
        c->cut[s] = urand(c->cut[s - 1] + 1, d->kv_len - (c->nshards - s));
    c->sink_shard = urand(0, c->nshards - 1);
    if (d->mask != QKV_MASK_NONE || d->window || d->alibi_slopes)
        c->eff = effective_mask(d);
}

static void free_split_case(split_case *c)
{
    free(c->q), free(c->k), free(c->v), free(c->mask), free(c->slopes), free(c->sinks);
    free(c->eff);
}

/* The descriptor of shard s writing into (o at layout lo, lse). */
static qkv_attention_desc shard_desc(const split_case *c, size_t s, float *o, layout lo, float *lse)
{
    const qkv_attention_desc *w = &c->d;
    qkv_attention_desc d = *w;
    const size_t j0 = c->cut[s];
    d.kv_len = c->cut[s + 1] - j0;
    d.k.data = (const float *)w->k.data + j0 * w->k.row_stride;
    d.v.data = (const float *)w->v.data + j0 * w->v.row_stride;
    d.window = 0;
    d.alibi_slopes = NULL;
    d.sinks = s == c->sink_shard ? w->sinks : NULL;
    if (c->eff) {
        d.mask = QKV_MASK_ADDITIVE;
        d.mask_add = (qkv_float_mask){c->eff + j0, w->q_heads * w->q_len * w->kv_len,
                                      w->q_len * w->kv_len, w->kv_len};
    } else {
        d.mask = QKV_MASK_NONE;
        d.mask_add = (qkv_float_mask){0};
    }
    d.o = (qkv_out_tensor){o, lo.bs, lo.hs, lo.rs, QKV_F32};
    d.lse = lse;
    return d;
}

static float *row_of(float *base, layout l, size_t b, size_t h, size_t i)
{
    return base + b * l.bs + h * l.hs + i * l.rs;
}

static void test_split_one(const split_case *c, const caller *cl, const double *want_o,
                           const double *want_lse, const float *whole_o, layout lw,
                           const float *whole_lse)
{
    const qkv_attention_desc *d = &c->d;
    const size_t rows = d->batch * d->q_heads * d->q_len, dv = d->v_head_dim;
    char text[400];
    describe(c, text, sizeof text);

    /* Shard 0 writes straight into the merge target (layout la); the others
       into a second layout, so ldo and ldo_other differ now and then. */
    const layout la = make_layout(d->batch, d->q_heads, d->q_len, dv);
    const layout lb = make_layout(d->batch, d->q_heads, d->q_len, dv);
    pbuf acc = pbuf_new(la.total), acc_lse = pbuf_new(rows);
    pbuf part = pbuf_new(lb.total), part_lse = pbuf_new(rows);
    unsigned char *own = calloc(la.total, 1);
    tensor_mark(own, d->batch, la.bs, d->q_heads, la.hs, d->q_len, la.rs, dv);
    /* One call over all rows when they are evenly spaced (BHSD, no gaps
       between heads), else one call per (batch, head). */
    const int one_call = la.hs == d->q_len * la.rs && la.bs == d->q_heads * la.hs &&
                         lb.hs == d->q_len * lb.rs && lb.bs == d->q_heads * lb.hs && coin(50);

    for (size_t s = 0; s < c->nshards; s++) {
        const int first = s == 0;
        qkv_attention_desc sd = shard_desc(c, s, first ? acc.data : part.data, first ? la : lb,
                                           first ? acc_lse.data : part_lse.data);
        qkv_status st = cl->f->attention(&sd);
        if (!tally_check(&T, st == QKV_OK, "%s [%s]: shard %zu attention status %d", text,
                         who(cl), s, st))
            goto out;
        if (first)
            continue;
        if (one_call) {
            st = call_merge(cl, rows, dv, acc.data, la.rs, acc_lse.data, part.data, lb.rs,
                            part_lse.data);
        } else {
            for (size_t b = 0; b < d->batch && st == QKV_OK; b++)
                for (size_t h = 0; h < d->q_heads && st == QKV_OK; h++) {
                    const size_t r0 = (b * d->q_heads + h) * d->q_len;
                    st = call_merge(cl, d->q_len, dv, row_of(acc.data, la, b, h, 0), la.rs,
                                    acc_lse.data + r0, row_of(part.data, lb, b, h, 0), lb.rs,
                                    part_lse.data + r0);
                }
        }
        if (!tally_check(&T, st == QKV_OK, "%s [%s]: merge of shard %zu status %d", text,
                         who(cl), s, st))
            goto out;
    }

    double worst = 0, worst_whole = 0, worst_lse = 0, worst_lse_whole = 0;
    for (size_t b = 0, r = 0; b < d->batch; b++)
        for (size_t h = 0; h < d->q_heads; h++)
            for (size_t i = 0; i < d->q_len; i++, r++) {
                const float *got = row_of(acc.data, la, b, h, i);
                const float *whole = whole_o + b * lw.bs + h * lw.hs + i * lw.rs;
                for (size_t x = 0; x < dv; x++) {
                    const double e = fabs(got[x] - want_o[r * dv + x]);
                    const double e2 = fabs((double)got[x] - whole[x]);
                    worst = isnan(e) ? INFINITY : fmax(worst, e);
                    worst_whole = isnan(e2) ? INFINITY : fmax(worst_whole, e2);
                }
                const double g = acc_lse.data[r], wl = want_lse[r], wh = whole_lse[r];
                const double el = isinf(wl) ? (g == wl ? 0 : INFINITY) : fabs(g - wl) / fmax(1, fabs(wl));
                const double eh = isinf(wh) ? (g == wh ? 0 : INFINITY) : fabs(g - wh) / fmax(1, fabs(wh));
                worst_lse = isnan(el) ? INFINITY : fmax(worst_lse, el);
                worst_lse_whole = isnan(eh) ? INFINITY : fmax(worst_lse_whole, eh);
            }
    tally_check(&T, worst <= TOL, "%s [%s]: merged o vs oracle %.3g", text, who(cl), worst);
    tally_check(&T, worst_whole <= TOL, "%s [%s]: merged o vs unsplit call %.3g", text, who(cl),
                worst_whole);
    tally_check(&T, worst_lse <= TOL_LSE_REL, "%s [%s]: merged lse vs oracle rel %.3g", text,
                who(cl), worst_lse);
    tally_check(&T, worst_lse_whole <= TOL_LSE_REL, "%s [%s]: merged lse vs unsplit rel %.3g",
                text, who(cl), worst_lse_whole);
    tally_check(&T, gaps_untouched(&acc, own) && pbuf_guards_ok(&acc_lse),
                "%s [%s]: wrote outside the output rows or lse", text, who(cl));
out:
    free(own);
    pbuf_free(&acc), pbuf_free(&acc_lse), pbuf_free(&part), pbuf_free(&part_lse);
}

static void test_split(int cases)
{
    for (int t = 0; t < cases; t++) {
        split_case c;
        make_split_case(&c);
        const qkv_attention_desc *d = &c.d;
        const size_t rows = d->batch * d->q_heads * d->q_len, dv = d->v_head_dim;
        double *want_o = malloc(rows * dv * sizeof *want_o);
        double *want_lse = malloc(rows * sizeof *want_lse);
        oracle_attention(d, want_o, want_lse);
        const layout lw = make_layout(d->batch, d->q_heads, d->q_len, dv);
        float *whole_o = malloc(lw.total * sizeof *whole_o);
        float *whole_lse = malloc(rows * sizeof *whole_lse);
        for (int k = 0; k < ncallers; k++) {
            const caller *cl = &callers[k];
            qkv_attention_desc w = *d;
            w.o = (qkv_out_tensor){whole_o, lw.bs, lw.hs, lw.rs, QKV_F32};
            w.lse = whole_lse;
            const qkv_status st = cl->f->attention(&w);
            if (tally_check(&T, st == QKV_OK, "whole call status %d [%s]", st, who(cl)))
                test_split_one(&c, cl, want_o, want_lse, whole_o, lw, whole_lse);
        }
        free(want_o), free(want_lse), free(whole_o), free(whole_lse);
        free_split_case(&c);
    }
}

/* ---- kernel: every ISA gives the reference's bits; the exact rules -------- */

enum special {
    SP_NONE, SP_NEG_INF_1, SP_NEG_INF_2, SP_NEG_INF_BOTH, SP_NAN_1, SP_NAN_2, SP_POS_INF_1,
    SP_POS_INF_2, SP_TIE, SP_FAR_1, SP_FAR_2, SP_NAN_IN_O, SP_NAN_IN_O2, SP_INF_IN_O,
    SP_NAN_O2_UNSEEN, SP_FAR_NAN_IN_O, SP_FAR_INF_IN_O, SP_COUNT
};

typedef struct kernel_case {
    size_t rows, dv, ldo, ldo2;
    float *o, *lse, *o2, *lse2;     /* the inputs, exact extents */
    unsigned char *kind;            /* enum special per row */
} kernel_case;

static void make_kernel_case(kernel_case *k)
{
    k->rows = coin(30) ? urand(1, 3) : urand(1, 70);
    k->dv = coin(50) ? (size_t[]){1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 33, 64, 65, 128}[urand(0, 13)]
                     : urand(1, 300);
    k->ldo = k->dv + (coin(40) ? urand(1, 9) : 0);
    k->ldo2 = k->dv + (coin(40) ? urand(1, 9) : 0);
    const size_t n1 = (k->rows - 1) * k->ldo + k->dv, n2 = (k->rows - 1) * k->ldo2 + k->dv;
    k->o = input(n1, -1, 1);
    k->o2 = input(n2, -1, 1);
    k->lse = input(k->rows, -30, 30);
    k->lse2 = input(k->rows, -30, 30);
    k->kind = malloc(k->rows);
    for (size_t r = 0; r < k->rows; r++) {
        const unsigned char sp = coin(50) ? SP_NONE : (unsigned char)urand(1, SP_COUNT - 1);
        float *a = k->o + r * k->ldo, *b = k->o2 + r * k->ldo2;
        k->kind[r] = sp;
        switch (sp) {
        case SP_NEG_INF_1: k->lse[r] = -INFINITY; break;
        case SP_NEG_INF_2: k->lse2[r] = -INFINITY; break;
        case SP_NEG_INF_BOTH: k->lse[r] = k->lse2[r] = -INFINITY; break;
        case SP_NAN_1: k->lse[r] = NAN; break;
        case SP_NAN_2: k->lse2[r] = NAN; break;
        case SP_POS_INF_1: k->lse[r] = INFINITY; break;
        case SP_POS_INF_2: k->lse2[r] = INFINITY; break;
        case SP_TIE: k->lse2[r] = k->lse[r]; break;
        /* A weight that underflows to 0 in float. */
        case SP_FAR_1: k->lse[r] = k->lse2[r] + 200.0f; break;
        case SP_FAR_2: k->lse2[r] = k->lse[r] + 200.0f; break;
        case SP_NAN_IN_O: a[urand(0, k->dv - 1)] = NAN; break;
        case SP_NAN_IN_O2: b[urand(0, k->dv - 1)] = NAN; break;
        case SP_INF_IN_O: a[urand(0, k->dv - 1)] = coin(50) ? INFINITY : -INFINITY; break;
        /* The side that saw no key is skipped, whatever its o holds. */
        case SP_NAN_O2_UNSEEN: k->lse2[r] = -INFINITY, b[urand(0, k->dv - 1)] = NAN; break;
        /* Non-finite o on the side whose weight underflows: NaN stays NaN,
           ±inf becomes NaN (0 · inf), as docs/errors.md says. */
        case SP_FAR_NAN_IN_O: k->lse2[r] = k->lse[r] + 200.0f, a[urand(0, k->dv - 1)] = NAN; break;
        case SP_FAR_INF_IN_O:
            k->lse2[r] = k->lse[r] + 200.0f;
            a[urand(0, k->dv - 1)] = coin(50) ? INFINITY : -INFINITY;
            break;
        }
    }
}

static void free_kernel_case(kernel_case *k)
{
    free(k->o), free(k->lse), free(k->o2), free(k->lse2), free(k->kind);
}

/* Copies the inputs into fresh guarded outputs and runs one caller. */
static qkv_status run_kernel_case(const kernel_case *k, const caller *cl, pbuf *o, pbuf *lse)
{
    *o = pbuf_new((k->rows - 1) * k->ldo + k->dv);
    *lse = pbuf_new(k->rows);
    for (size_t r = 0; r < k->rows; r++)
        memcpy(o->data + r * k->ldo, k->o + r * k->ldo, k->dv * sizeof(float));
    memcpy(lse->data, k->lse, k->rows * sizeof(float));
    return call_merge(cl, k->rows, k->dv, o->data, k->ldo, lse->data, k->o2, k->ldo2, k->lse2);
}

/* The reference's rows against their rules, in double for the blends with
   the weights as floats (a weight that underflows is 0, and 0 · inf NaN). */
static void check_rules(const kernel_case *k, const float *o, const float *lse, const char *text)
{
    for (size_t r = 0; r < k->rows; r++) {
        const float *got = o + r * k->ldo, *a = k->o + r * k->ldo, *b = k->o2 + r * k->ldo2;
        const float l1 = k->lse[r], l2 = k->lse2[r];
        if (isnan(l1) || isnan(l2) || l1 == INFINITY || l2 == INFINITY) {
            int all_nan = isnan(lse[r]);
            for (size_t c = 0; c < k->dv; c++)
                all_nan &= isnan(got[c]);
            tally_check(&T, all_nan, "%s row %zu: lse %g, %g must give a NaN row", text, r, l1, l2);
        } else if (l2 == -INFINITY) {
            tally_check(&T, same_bits(got, a, k->dv) && bits_equal(lse[r], l1),
                        "%s row %zu: other side saw no key, row must stay bit for bit", text, r);
        } else if (l1 == -INFINITY) {
            tally_check(&T, same_bits(got, b, k->dv) && bits_equal(lse[r], l2),
                        "%s row %zu: this side saw no key, row must be the other's bits", text, r);
        } else {
            const double hi = fmax(l1, l2), lo = fmin(l1, l2);
            const double want = hi + log1p(exp(lo - hi));
            const double w1 = (float)exp(l1 - want), w2 = (float)exp(l2 - want);
            double worst = 0;
            for (size_t c = 0; c < k->dv; c++) {
                const double x = (double)a[c] * w1 + (double)b[c] * w2;
                if (!close_to(got[c], x, TOL_ONE_MERGE))
                    worst = INFINITY;
                else if (isfinite(x))
                    worst = fmax(worst, fabs(got[c] - x));
            }
            tally_check(&T, worst <= TOL_ONE_MERGE, "%s row %zu (lse %.9g, %.9g): o error %.3g",
                        text, r, l1, l2, worst);
            tally_check(&T, fabs(lse[r] - want) <= TOL_ONE_MERGE * fmax(1, fabs(want)),
                        "%s row %zu: lse %.9g, want %.9g", text, r, lse[r], want);
        }
    }
}

/* qkv.h promises that merging b into a gives a's merge with b, bit for bit,
   except where both sides saw no key (each keeps its own o) and in NaN
   payloads; the MPI example declares its MPI_Op commutative on it. */
static void check_symmetric(const kernel_case *k, const caller *cl, const float *o,
                            const float *lse, const char *text)
{
    const size_t n2 = (k->rows - 1) * k->ldo2 + k->dv;
    float *swapped = malloc(n2 * sizeof *swapped), *swapped_lse = malloc(k->rows * sizeof(float));
    memcpy(swapped, k->o2, n2 * sizeof *swapped);
    memcpy(swapped_lse, k->lse2, k->rows * sizeof(float));
    const qkv_status st = cl->f->merge_states(k->rows, k->dv, swapped, k->ldo2, swapped_lse, k->o,
                                              k->ldo, k->lse);
    int same = st == QKV_OK;
    for (size_t r = 0; r < k->rows && same; r++) {
        if (k->lse[r] == -INFINITY && k->lse2[r] == -INFINITY)
            continue;
        same = bits_equal(lse[r], swapped_lse[r]) || (isnan(lse[r]) && isnan(swapped_lse[r]));
        for (size_t c = 0; c < k->dv && same; c++) {
            const float x = o[r * k->ldo + c], y = swapped[r * k->ldo2 + c];
            same = bits_equal(x, y) || (isnan(x) && isnan(y));
        }
    }
    tally_check(&T, same, "%s [%s]: merging the other way round differs", text, who(cl));
    free(swapped), free(swapped_lse);
}

static void test_kernel(int cases)
{
    for (int t = 0; t < cases; t++) {
        kernel_case k;
        make_kernel_case(&k);
        char text[160];
        snprintf(text, sizeof text, "rows=%zu dv=%zu ldo=%zu ldo2=%zu", k.rows, k.dv, k.ldo, k.ldo2);
        const size_t n1 = (k.rows - 1) * k.ldo + k.dv;
        unsigned char *own = calloc(n1, 1);
        tensor_mark(own, 1, 0, 1, 0, k.rows, k.ldo, k.dv);
        const size_t n2 = (k.rows - 1) * k.ldo2 + k.dv;
        float *o2_before = malloc(n2 * sizeof *o2_before), *lse2_before = malloc(k.rows * sizeof(float));
        memcpy(o2_before, k.o2, n2 * sizeof *o2_before);
        memcpy(lse2_before, k.lse2, k.rows * sizeof(float));

        pbuf ref, ref_lse;
        const caller scalar = {QKV_ISA_SCALAR, 0, funcs_of(QKV_ISA_SCALAR)};
        qkv_status st = run_kernel_case(&k, &scalar, &ref, &ref_lse);
        tally_check(&T, st == QKV_OK, "%s: scalar status %d", text, st);
        check_rules(&k, ref.data, ref_lse.data, text);

        for (int i = 0; i < ncallers; i++) {
            const caller *cl = &callers[i];
            pbuf o, lse;
            st = run_kernel_case(&k, cl, &o, &lse);
            tally_check(&T, st == QKV_OK, "%s [%s]: status %d", text, who(cl), st);
            /* Same row decisions and weights (merge_row.h), multiply and add
               kept apart: the reference's bits, NaN payloads included. */
            tally_check(&T, memcmp(o.data, ref.data, n1 * sizeof(float)) == 0 &&
                                memcmp(lse.data, ref_lse.data, k.rows * sizeof(float)) == 0,
                        "%s [%s]: differs from the scalar reference", text, who(cl));
            tally_check(&T, gaps_untouched(&o, own) && pbuf_guards_ok(&lse),
                        "%s [%s]: wrote outside the rows or lse", text, who(cl));
            tally_check(&T, memcmp(o2_before, k.o2, n2 * sizeof(float)) == 0 &&
                                memcmp(lse2_before, k.lse2, k.rows * sizeof(float)) == 0,
                        "%s [%s]: changed o_other or lse_other", text, who(cl));
            if (!cl->dispatched)
                check_symmetric(&k, cl, o.data, lse.data, text);
            pbuf_free(&o), pbuf_free(&lse);
        }
        pbuf_free(&ref), pbuf_free(&ref_lse);
        free(own), free(o2_before), free(lse2_before);
        free_kernel_case(&k);
    }
}

/* ---- badargs: each error, and nothing written -------------------------------- */

static void test_badargs(const caller *cl)
{
    enum { DV = 5, ROWS = 3, LD = 7, N = (ROWS - 1) * LD + DV };
    pbuf o = pbuf_new(N), lse = pbuf_new(ROWS), o2 = pbuf_new(N), lse2 = pbuf_new(ROWS);
    pbuf big = pbuf_new(4 * N);      /* for overlaps: everything in one buffer */
    const char *w = who(cl);

#define EXPECT(want, ...)                                                                        \
    do {                                                                                         \
        pbuf_reset(&o), pbuf_reset(&lse), pbuf_reset(&big);                                      \
        const qkv_status st_ = call_merge(cl, __VA_ARGS__);                                      \
        tally_check(&T, st_ == (want), "[%s] merge(%s): status %d, want %d", w, #__VA_ARGS__,    \
                    st_, want);                                                                  \
        tally_check(&T, pbuf_untouched(&o) && pbuf_untouched(&lse) && pbuf_untouched(&big),      \
                    "[%s] merge(%s): wrote on a failed call", w, #__VA_ARGS__);                  \
    } while (0)

    float *O = o.data, *L = lse.data, *B = big.data;
    const float *O2 = o2.data, *L2 = lse2.data;
    EXPECT(QKV_ERR_ARG, 0, DV, O, LD, L, O2, LD, L2);
    EXPECT(QKV_ERR_ARG, ROWS, 0, O, LD, L, O2, LD, L2);
    EXPECT(QKV_ERR_ARG, ROWS, DV, NULL, LD, L, O2, LD, L2);
    EXPECT(QKV_ERR_ARG, ROWS, DV, O, LD, NULL, O2, LD, L2);
    EXPECT(QKV_ERR_ARG, ROWS, DV, O, LD, L, NULL, LD, L2);
    EXPECT(QKV_ERR_ARG, ROWS, DV, O, LD, L, O2, LD, NULL);
    EXPECT(QKV_ERR_ARG, ROWS, DV, O, DV - 1, L, O2, LD, L2);
    EXPECT(QKV_ERR_ARG, ROWS, DV, O, LD, L, O2, DV - 1, L2);
    /* Spans past size_t or PTRDIFF_MAX bytes: refused before any access. */
    EXPECT(QKV_ERR_OVERFLOW, ROWS, DV, O, SIZE_MAX, L, O2, LD, L2);
    EXPECT(QKV_ERR_OVERFLOW, ROWS, DV, O, LD, L, O2, SIZE_MAX / 8, L2);
    EXPECT(QKV_ERR_OVERFLOW, SIZE_MAX / 2, DV, O, LD, L, O2, LD, L2);
    EXPECT(QKV_ERR_OVERFLOW, SIZE_MAX / 4 + 1, 1, O, 1, L, O2, 1, L2);
    /* Overlaps: the outputs with each other and with either input. */
    EXPECT(QKV_ERR_ARG, ROWS, DV, B, LD, B + N - 1, O2, LD, L2);            /* lse in o */
    EXPECT(QKV_ERR_ARG, ROWS, DV, B, LD, L, B + LD, LD, L2);                /* o on o_other */
    EXPECT(QKV_ERR_ARG, ROWS, DV, B, LD, L, B, LD, L2);                     /* in place */
    EXPECT(QKV_ERR_ARG, ROWS, DV, B, LD, L, O2, LD, B + DV + 1);            /* lse_other in o's span */
    EXPECT(QKV_ERR_ARG, ROWS, DV, O, LD, B + 2, B, LD, L2);                 /* lse in o_other */
    EXPECT(QKV_ERR_ARG, ROWS, DV, O, LD, B + 1, O2, LD, B);                 /* lse on lse_other */
    EXPECT(QKV_ERR_ARG, ROWS, DV, O, LD, L, O2, LD, L);                     /* lse_other is lse */
#undef EXPECT

    /* Valid neighbours: lse right after o's last row, the inputs sharing
       memory, and a row of dv + 1 floats with lse at its end (the MPI
       example's layout). Each merges and touches nothing else. */
    pbuf_reset(&big);
    for (size_t i = 0; i < 4 * N; i++)
        B[i] = 0.5f;
    B[N] = -INFINITY;
    qkv_status st = call_merge(cl, ROWS, DV, B, LD, B + N, B + 2 * N, LD, B + 2 * N);
    tally_check(&T, st == QKV_OK && pbuf_guards_ok(&big), "[%s] adjacent o and lse: status %d", w, st);
    st = call_merge(cl, 1, DV, B, DV + 1, B + DV, B + 2 * N, DV + 1, B + 2 * N + DV);
    tally_check(&T, st == QKV_OK && pbuf_guards_ok(&big), "[%s] row of dv + 1: status %d", w, st);

    pbuf_free(&o), pbuf_free(&lse), pbuf_free(&o2), pbuf_free(&lse2), pbuf_free(&big);
}

/* ---- main -------------------------------------------------------------------- */

int main(int argc, char **argv)
{
    int quick = 0;
    const char *group = NULL;
    seed = (uint64_t)time(NULL);
    for (int i = 1; i < argc; i++) {
        if (strncmp(argv[i], "--seed=", 7) == 0)
            seed = strtoull(argv[i] + 7, NULL, 0);
        else if (strcmp(argv[i], "--quick") == 0)
            quick = 1;
        else if (strncmp(argv[i], "--group=", 8) == 0)
            group = argv[i] + 8;
        else {
            fprintf(stderr, "usage: %s [--seed=N] [--quick] [--group=split|kernel|badargs]\n",
                    argv[0]);
            return 2;
        }
    }
    rng = seed;
    nisa = supported_isas(isas);
    for (int i = 0; i < nisa; i++) {
        callers[ncallers++] = (caller){isas[i], 0, funcs_of(isas[i])};
        callers[ncallers++] = (caller){isas[i], 1, funcs_of(isas[i])};
    }
    printf("merge: seed %" PRIu64 ", ISAs:", seed);
    for (int i = 0; i < nisa; i++)
        printf(" %s", qkv_isa_name(isas[i]));
    printf("\n");
    const qkv_isa start = qkv_isa_get();

#define GROUP(name) (!group || strcmp(group, name) == 0)
    if (GROUP("badargs"))
        for (int i = 0; i < ncallers; i++)
            test_badargs(&callers[i]);
    if (GROUP("kernel"))
        test_kernel(quick ? 40 : 200);
    if (GROUP("split"))
        test_split(quick ? 10 : 60);

    qkv_isa_set(start);
    return tally_finish(&T);
}

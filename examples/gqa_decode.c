/*
 * What an inference engine does with qkv: a KV cache laid out
 * [batch][token][kv_head][dim] (appending a token writes one contiguous
 * row of kv_heads·dim per sequence), 32 query heads over 8 KV heads (GQA),
 * a prompt prefilled in one causal call, then one token at a time: append
 * its K and V, attend its query to the whole cache. The cache, Q and O are
 * read and written in place through strides, on a qkv_pool.
 *
 * Checks every output against a plain double-precision loop (1e-5, the
 * header's accuracy contract for inputs in [-1, 1]).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include <qkv.h>

enum { BATCH = 2, Q_HEADS = 32, KV_HEADS = 8, DIM = 128, PROMPT = 48, STEPS = 16,
       MAX_TOKENS = PROMPT + STEPS };

static float k_cache[BATCH][MAX_TOKENS][KV_HEADS][DIM];
static float v_cache[BATCH][MAX_TOKENS][KV_HEADS][DIM];
static float q[BATCH][PROMPT][Q_HEADS][DIM];   /* this call's queries, [batch][token][head][dim] */
static float o[BATCH][PROMPT][Q_HEADS][DIM];

static unsigned long long rng = 42;
static float uniform(void)
{
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((double)(rng >> 40) / (double)(1ull << 23) - 1.0);
}

/* The model's projections, here random: token t's K and V into the cache. */
static void append_kv(size_t t)
{
    for (int b = 0; b < BATCH; b++)
        for (int g = 0; g < KV_HEADS; g++)
            for (int c = 0; c < DIM; c++) {
                k_cache[b][t][g][c] = uniform();
                v_cache[b][t][g][c] = uniform();
            }
}

/* Attention of the new_tokens queries (positions len - new_tokens ..) over
   the cache's first len tokens, in place. */
static qkv_status attend(size_t new_tokens, size_t len, qkv_pool *pool)
{
    qkv_attention_desc d = {0};
    d.batch = BATCH, d.q_heads = Q_HEADS, d.kv_heads = KV_HEADS;
    d.q_len = new_tokens, d.kv_len = len, d.head_dim = d.v_head_dim = DIM;
    /* strides in floats: batch, head, row (token) */
    d.q = (qkv_tensor){q, QKV_F32, PROMPT * Q_HEADS * DIM, DIM, Q_HEADS * DIM};
    d.k = (qkv_tensor){k_cache, QKV_F32, MAX_TOKENS * KV_HEADS * DIM, DIM, KV_HEADS * DIM};
    d.v = (qkv_tensor){v_cache, QKV_F32, MAX_TOKENS * KV_HEADS * DIM, DIM, KV_HEADS * DIM};
    d.o = (qkv_out_tensor){o, PROMPT * Q_HEADS * DIM, DIM, Q_HEADS * DIM, QKV_F32};
    d.scale = qkv_default_scale(DIM);
    d.mask = QKV_MASK_CAUSAL;        /* bottom-right: new token i sees keys <= its position */
    d.parallel_for = qkv_pool_parallel_for;
    d.pool = pool;
    return qkv_attention(&d);
}

/* The largest difference between o and a double-precision recomputation. */
static double check(size_t new_tokens, size_t len)
{
    double worst = 0, s[MAX_TOKENS];
    for (int b = 0; b < BATCH; b++)
        for (size_t i = 0; i < new_tokens; i++)
            for (int h = 0; h < Q_HEADS; h++) {
                const int g = h / (Q_HEADS / KV_HEADS);
                const size_t seen = len - new_tokens + i + 1;
                double m = -INFINITY, sum = 0;
                for (size_t j = 0; j < seen; j++) {
                    s[j] = 0;
                    for (int c = 0; c < DIM; c++)
                        s[j] += (double)q[b][i][h][c] * k_cache[b][j][g][c];
                    s[j] /= sqrt((double)DIM);
                    m = s[j] > m ? s[j] : m;
                }
                for (size_t j = 0; j < seen; j++)
                    sum += (s[j] = exp(s[j] - m));
                for (int c = 0; c < DIM; c++) {
                    double want = 0;
                    for (size_t j = 0; j < seen; j++)
                        want += s[j] / sum * v_cache[b][j][g][c];
                    const double err = fabs(want - o[b][i][h][c]);
                    worst = err > worst || err != err ? err : worst;
                }
            }
    return worst;
}

static void fill_queries(size_t n)
{
    for (int b = 0; b < BATCH; b++)
        for (size_t i = 0; i < n; i++)
            for (int h = 0; h < Q_HEADS; h++)
                for (int c = 0; c < DIM; c++)
                    q[b][i][h][c] = uniform();
}

int main(void)
{
    qkv_pool *pool;
    qkv_status st = qkv_pool_create(2, &pool);
    if (st != QKV_OK) {
        fprintf(stderr, "qkv_pool_create: %s: %s\n", qkv_status_string(st),
                qkv_last_error_detail());
        return 1;
    }
    /* The prompt: all its tokens' K and V, then one causal call. */
    for (size_t t = 0; t < PROMPT; t++)
        append_kv(t);
    fill_queries(PROMPT);
    st = attend(PROMPT, PROMPT, pool);
    double worst = st == QKV_OK ? check(PROMPT, PROMPT) : 0;
    printf("prefill: %d sequences x %d tokens, %d query heads on %d KV heads, dim %d: "
           "max |err| %.2g\n", BATCH, PROMPT, Q_HEADS, KV_HEADS, DIM, worst);
    /* Decode: one token per step. */
    for (size_t len = PROMPT + 1; st == QKV_OK && len <= MAX_TOKENS; len++) {
        append_kv(len - 1);
        fill_queries(1);
        st = attend(1, len, pool);
        const double err = st == QKV_OK ? check(1, len) : 0;
        worst = err > worst || err != err ? err : worst;
    }
    qkv_pool_destroy(pool);
    if (st != QKV_OK) {
        fprintf(stderr, "qkv_attention: %s: %s\n", qkv_status_string(st), qkv_last_error_detail());
        return 1;
    }
    printf("decode:  %d steps up to kv_len %d on %s: max |err| over all steps %.2g\n", STEPS,
           MAX_TOKENS, qkv_isa_name(qkv_isa_get()), worst);
    if (!(worst <= 1e-5)) {
        fprintf(stderr, "gqa_decode: error %.3g above the 1e-5 contract\n", worst);
        return 1;
    }
    return 0;
}

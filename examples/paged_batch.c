/*
 * An engine's step over a paged f16 KV cache (vLLM's block tables) with a
 * ragged batch (FlashAttention's cu_seqlens), in one call: three sequences
 * with 5 new query rows (a prefill chunk), 1 (a decode step) and 0 (idle),
 * 300, 531 and 0 keys, their pages scattered over a shared pool
 * [page][slot][kv_head][dim]. Tokens are appended as an engine does, f32
 * from the model converted to f16 in the cache slot with qkv_convert.
 *
 * Checks every output row against a plain double-precision loop over the
 * cached (f16) values: within 1e-5, the header's accuracy contract.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <qkv.h>

enum { SEQS = 3, Q_HEADS = 32, KV_HEADS = 8, DIM = 128, PAGE = 16, MAX_PAGES = 40,
       POOL_PAGES = SEQS * MAX_PAGES, ROW = KV_HEADS * DIM, PAGE_VALUES = PAGE * ROW };

static const int32_t q_start[SEQS + 1] = {0, 5, 6, 6};
static const int32_t kv_lens[SEQS] = {300, 531, 0};
enum { Q_ROWS = 6, KV_LEN = 531 };

static uint16_t k_pool[POOL_PAGES * PAGE_VALUES], v_pool[POOL_PAGES * PAGE_VALUES];
static int32_t table[SEQS][MAX_PAGES];
static float q[Q_ROWS][Q_HEADS][DIM], o[Q_ROWS][Q_HEADS][DIM];

static unsigned long long rng = 7;
static float uniform(void)
{
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((double)(rng >> 40) / (double)(1ull << 23) - 1.0);
}

/* Where token t of sequence s lives: its page's slot, all KV heads. */
static size_t slot(int s, int t)
{
    return (size_t)table[s][t / PAGE] * PAGE_VALUES + (size_t)(t % PAGE) * ROW;
}

/* The model's K and V for one token, appended as f16. */
static int append(int s, int t)
{
    float k[ROW], v[ROW];
    for (int i = 0; i < ROW; i++) {
        k[i] = uniform();
        v[i] = uniform();
    }
    return qkv_convert(ROW, k, QKV_F32, k_pool + slot(s, t), QKV_F16) ||
           qkv_convert(ROW, v, QKV_F32, v_pool + slot(s, t), QKV_F16);
}

/* One cached head row, widened back to f32 (exactly). */
static void cached(const uint16_t *pool, size_t at, float *row)
{
    qkv_convert(DIM, pool + at, QKV_F16, row, QKV_F32);
}

int main(void)
{
    /* Pages handed out shuffled, as a long-running engine's free list does. */
    int32_t ids[POOL_PAGES];
    for (int i = 0; i < POOL_PAGES; i++)
        ids[i] = i;
    for (int i = POOL_PAGES - 1; i > 0; i--) {
        const int j = (int)((uniform() + 1.0f) * 0.5f * (float)i);
        const int32_t t = ids[i];
        ids[i] = ids[j];
        ids[j] = t;
    }
    for (int s = 0; s < SEQS; s++)
        for (int p = 0; p < MAX_PAGES; p++)
            table[s][p] = ids[s * MAX_PAGES + p];
    for (int s = 0; s < SEQS; s++)
        for (int t = 0; t < kv_lens[s]; t++)
            if (append(s, t)) {
                fprintf(stderr, "qkv_convert: %s\n", qkv_last_error_detail());
                return 1;
            }
    for (int r = 0; r < Q_ROWS; r++)
        for (int h = 0; h < Q_HEADS; h++)
            for (int c = 0; c < DIM; c++)
                q[r][h][c] = uniform();

    qkv_attention_desc d = {0};
    d.batch = SEQS;
    d.q_heads = Q_HEADS;
    d.kv_heads = KV_HEADS;
    d.head_dim = d.v_head_dim = DIM;
    d.q_len = Q_ROWS;           /* packed rows: q_start[batch] */
    d.kv_len = KV_LEN;          /* the longest sequence */
    d.q_start = q_start;
    d.kv_lens = kv_lens;
    d.q = (qkv_tensor){q, QKV_F32, 0, DIM, Q_HEADS * DIM};   /* [row][head][dim] */
    d.k = (qkv_tensor){k_pool, QKV_F16, 0, DIM, ROW};        /* [page][slot][kv_head][dim] */
    d.v = (qkv_tensor){v_pool, QKV_F16, 0, DIM, ROW};
    d.o = (qkv_out_tensor){o, 0, DIM, Q_HEADS * DIM, QKV_F32};
    d.page_size = PAGE;
    d.num_pages = POOL_PAGES;
    d.page_table = &table[0][0];
    d.page_table_stride = MAX_PAGES;
    d.k_page_stride = d.v_page_stride = PAGE_VALUES;
    d.scale = qkv_default_scale(DIM);
    d.mask = QKV_MASK_CAUSAL;   /* per sequence: row i sees keys j <= i + kv_len - rows */
    qkv_pool *pool = NULL;
    if (qkv_pool_create(0, &pool) == QKV_OK) {
        d.parallel_for = qkv_pool_parallel_for;
        d.pool = pool;
    }
    const qkv_status st = qkv_attention(&d);
    qkv_pool_destroy(pool);
    if (st != QKV_OK) {
        fprintf(stderr, "qkv_attention: %s\n", qkv_last_error_detail());
        return 1;
    }

    double worst = 0.0;
    for (int s = 0; s < SEQS; s++) {
        const int rows = q_start[s + 1] - q_start[s], n = kv_lens[s];
        for (int i = 0; i < rows; i++) {
            const int r = q_start[s] + i, last = i + n - rows;   /* causal, bottom-right */
            for (int h = 0; h < Q_HEADS; h++) {
                const int g = h / (Q_HEADS / KV_HEADS);
                double *p = malloc(sizeof(double) * (size_t)(n > 0 ? n : 1)), m = -INFINITY,
                       sum = 0.0, out[DIM] = {0};
                float row[DIM];
                for (int j = 0; j <= last && j < n; j++) {
                    double x = 0.0;
                    cached(k_pool, slot(s, j) + (size_t)g * DIM, row);
                    for (int c = 0; c < DIM; c++)
                        x += (double)q[r][h][c] * row[c];
                    p[j] = x * d.scale;
                    m = p[j] > m ? p[j] : m;
                }
                for (int j = 0; j <= last && j < n; j++) {
                    p[j] = exp(p[j] - m);
                    sum += p[j];
                    cached(v_pool, slot(s, j) + (size_t)g * DIM, row);
                    for (int c = 0; c < DIM; c++)
                        out[c] += p[j] * row[c];
                }
                for (int c = 0; c < DIM; c++) {
                    const double want = sum > 0.0 ? out[c] / sum : 0.0;
                    const double e = fabs((double)o[r][h][c] - want);
                    worst = e > worst || e != e ? e : worst;
                }
                free(p);
            }
        }
    }
    printf("paged f16 cache, %d sequences (%d, %d, %d query rows over %d, %d, %d keys), "
           "pages of %d: max |o - double| = %.3g\n",
           SEQS, q_start[1] - q_start[0], q_start[2] - q_start[1], q_start[3] - q_start[2],
           kv_lens[0], kv_lens[1], kv_lens[2], PAGE, worst);
    if (!(worst <= 1e-5)) {
        printf("FAIL: above the 1e-5 contract\n");
        return 1;
    }
    return 0;
}

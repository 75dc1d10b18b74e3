/*
 * One attention shape on every ISA side by side, through qkv_isa_funcs():
 * the time per call, GFLOP/s, the speed-up over the scalar reference and
 * the largest difference from its output; for an ISA this machine cannot
 * run, the library's reason. (The installed `qkv bench` does this with
 * more options and the machine's measured peaks.)
 *   compare_isas [heads q_len kv_len dim]   default 8 256 1024 64, causal
 */
#define _POSIX_C_SOURCE 199309L   /* clock_gettime under -std=c11 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <qkv.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Uniform in [-1, 1], the division in double: RAND_MAX is not a float. */
static float uniform(void)
{
    return (float)(2.0 * rand() / RAND_MAX - 1.0);
}

int main(int argc, char **argv)
{
    size_t heads = 8, q_len = 256, kv_len = 1024, dim = 64;
    if (argc == 5) {
        heads = strtoul(argv[1], NULL, 10), q_len = strtoul(argv[2], NULL, 10);
        kv_len = strtoul(argv[3], NULL, 10), dim = strtoul(argv[4], NULL, 10);
    } else if (argc != 1) {
        fprintf(stderr, "usage: compare_isas [heads q_len kv_len dim]\n");
        return 2;
    }
    const size_t nq = heads * q_len * dim, nkv = heads * kv_len * dim;
    float *q = malloc(nq * sizeof *q), *k = malloc(nkv * sizeof *k), *v = malloc(nkv * sizeof *v);
    float *o = malloc(nq * sizeof *o), *ref = malloc(nq * sizeof *ref);
    if (!q || !k || !v || !o || !ref)
        return 1;
    srand(1);
    for (size_t i = 0; i < nkv; i++) {
        k[i] = uniform();
        v[i] = uniform();
        if (i < nq)
            q[i] = uniform();
    }
    qkv_attention_desc d = {0};
    d.batch = 1, d.q_heads = d.kv_heads = heads, d.q_len = q_len, d.kv_len = kv_len;
    d.head_dim = d.v_head_dim = dim;
    d.q = (qkv_tensor){q, QKV_F32, nq, q_len * dim, dim};
    d.k = (qkv_tensor){k, QKV_F32, nkv, kv_len * dim, dim};
    d.v = (qkv_tensor){v, QKV_F32, nkv, kv_len * dim, dim};
    d.o = (qkv_out_tensor){o, nq, q_len * dim, dim, QKV_F32};
    d.scale = qkv_default_scale(dim);
    d.mask = QKV_MASK_CAUSAL;

    /* Useful work: 4·dim flops per (query, visible key) pair and head. */
    double pairs = 0;
    for (size_t i = 0; i < q_len; i++) {
        const double p = (double)i + (double)kv_len - (double)q_len + 1;
        pairs += p < 0 ? 0 : p > (double)kv_len ? (double)kv_len : p;
    }
    const double flops = 4.0 * (double)dim * pairs * (double)heads;

    printf("%zu heads, q_len %zu, kv_len %zu, dim %zu, causal; qkv %s\n", heads, q_len, kv_len,
           dim, qkv_version_string());
    printf("%-8s %10s %9s %9s %10s\n", "isa", "ms/call", "GFLOP/s", "speed-up", "max|diff|");
    double scalar_s = 0;
    int bad = 0;
    for (int i = 0; i < QKV_ISA_COUNT; i++) {
        const qkv_funcs *f;
        if (qkv_isa_funcs((qkv_isa)i, &f) != QKV_OK) {
            printf("%-8s %s\n", qkv_isa_name((qkv_isa)i), qkv_last_error_detail());
            continue;
        }
        /* The median of 5 calls after one warm-up. */
        double t[5];
        qkv_status st = f->attention(&d);
        for (int r = 0; r < 5 && st == QKV_OK; r++) {
            const double t0 = now();
            st = f->attention(&d);
            t[r] = now() - t0;
        }
        if (st != QKV_OK) {
            printf("%-8s %s: %s\n", qkv_isa_name((qkv_isa)i), qkv_status_string(st),
                   qkv_last_error_detail());
            bad = 1;
            continue;
        }
        for (int a = 1; a < 5; a++)
            for (int b = a; b > 0 && t[b] < t[b - 1]; b--) {
                const double x = t[b]; t[b] = t[b - 1]; t[b - 1] = x;
            }
        double diff = 0;
        if (i == QKV_ISA_SCALAR) {
            scalar_s = t[2];
            for (size_t j = 0; j < nq; j++)
                ref[j] = o[j];
        }
        for (size_t j = 0; j < nq; j++) {
            const double e = o[j] > ref[j] ? o[j] - ref[j] : ref[j] - o[j];
            diff = e > diff || e != e ? e : diff;
        }
        printf("%-8s %10.3f %9.2f %8.1fx %10.2g\n", qkv_isa_name((qkv_isa)i), t[2] * 1e3,
               flops / t[2] * 1e-9, scalar_s / t[2], diff);
        /* Each ISA is within 1e-5 of the exact result, so two are within 2e-5. */
        if (!(diff <= 2e-5))
            bad = 1;
    }
    free(q), free(k), free(v), free(o), free(ref);
    return bad;
}

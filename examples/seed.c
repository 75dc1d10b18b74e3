/* The tutorial's worked example: one query [0,1,0,0] against the keys and
   values "The" [1,0,1,0], "cat" [0,1,0,1], "sat" [1,1,0,0], unscaled, in the
   three textbook steps. Prints the scores, the weights and the context, and
   checks them against the closed form: weights [1, e, e] / (1 + 2e). */
#include <stdio.h>

#include <qkv.h>

#define DIFF(a, b) ((a) > (b) ? (a) - (b) : (b) - (a))

int main(void)
{
    const float keys[3][4] = {{1, 0, 1, 0}, {0, 1, 0, 1}, {1, 1, 0, 0}};
    const float query[4] = {0, 1, 0, 0};
    float weights[3], context[4];

    qkv_status st = qkv_scores(1, 3, 4, 1.0f, query, 4, &keys[0][0], 4, weights, 3);
    if (st == QKV_OK)
        printf("scores:  %g %g %g\n", weights[0], weights[1], weights[2]);
    if (st == QKV_OK)
        st = qkv_softmax(1, 3, weights, 3);
    if (st == QKV_OK)
        st = qkv_weighted_sum(1, 3, 4, weights, 3, &keys[0][0], 4, context, 4);
    if (st != QKV_OK) {
        fprintf(stderr, "qkv: %s: %s\n", qkv_status_string(st), qkv_last_error_detail());
        return 1;
    }
    printf("weights: %.6f %.6f %.6f\n", weights[0], weights[1], weights[2]);
    printf("context: %.6f %.6f %.6f %.6f\n", context[0], context[1], context[2], context[3]);
    printf("isa:     %s (qkv %s)\n", qkv_isa_name(qkv_isa_get()), qkv_version_string());

    /* 1e-6: a few float roundings of numbers below 1. */
    const double e = 2.718281828459045, w[3] = {1 / (1 + 2 * e), e / (1 + 2 * e), e / (1 + 2 * e)};
    const double want[4] = {w[0] + w[2], w[1] + w[2], w[0], w[1]};
    for (int j = 0; j < 4; j++)
        if (!(DIFF(context[j], want[j]) <= 1e-6) || (j < 3 && !(DIFF(weights[j], w[j]) <= 1e-6))) {
            fprintf(stderr, "seed: context[%d] = %.7f, want %.7f\n", j, context[j], want[j]);
            return 1;
        }
    return 0;
}

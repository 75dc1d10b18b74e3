/*
 * Differential fuzzing of qkv_softmax (in place): every supported ISA
 * against the scalar ISA, with -inf holes, whole hidden rows, special values
 * and invalid arguments.
 */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    reader rd = {data, size}, *r = &rd;
    const enum fuzz_mode mode = fuzz_begin(r);
    qkv_isa isas[QKV_ISA_COUNT];
    const int nisa = fuzz_isas(isas);

    size_t m = rd_range(r, 1, 12), n = rd_range(r, 1, rd_u8(r) & 1 ? 300 : 40);
    size_t lds = n + rd_range(r, 0, 3);
    /* Softmax is promised stable for any finite input: scores up to +-60
       (what a scaled dot product of a long head reaches) are compared too. */
    static const float amp[] = {1.0f, 8.0f, 60.0f};
    const float a = amp[rd_u8(r) % 3];
    uint64_t seed = rd_u64(r);
    const size_t ns = (m - 1) * lds + n;
    pbuf in = pbuf_new(ns);
    fill_unit(&seed, in.data, ns);
    for (size_t i = 0; i < ns; i++)
        in.data[i] *= a;
    for (size_t h = rd_range(r, 0, 6); h; h--)
        in.data[rng_next(&seed) % ns] = -INFINITY;
    if (rd_u8(r) % 4 == 0) {                       /* a row with nothing to weigh */
        const size_t row = rng_next(&seed) % m;
        for (size_t j = 0; j < n; j++)
            in.data[row * lds + j] = -INFINITY;
    }
    if (mode == MODE_SPECIAL)
        for (size_t s = rd_range(r, 1, 5); s; s--)
            in.data[rng_next(&seed) % ns] = fuzz_specials[rd_u8(r) % FUZZ_NSPECIALS];

    qkv_status want = QKV_OK;
    int null = 0;
    if (mode == MODE_INVALID) {
        switch (rd_u8(r) % 5) {
        case 0: m = 0; want = QKV_ERR_ARG; break;
        case 1: n = 0; want = QKV_ERR_ARG; break;
        case 2: lds = n - 1; want = QKV_ERR_ARG; break;
        case 3: null = 1; want = QKV_ERR_ARG; break;
        default: lds = SIZE_MAX / (1 + rd_u8(r) % 8); m = m < 2 ? 2 : m; want = QKV_ERR_OVERFLOW; break;
        }
    }

    pbuf *outs = calloc((size_t)nisa, sizeof *outs);
    for (int i = 0; i < nisa; i++) {
        outs[i] = pbuf_new(ns);
        memcpy(outs[i].data, in.data, ns * sizeof(float));
        const qkv_status st = funcs_of(isas[i])->softmax(m, n, null ? NULL : outs[i].data, lds);
        fuzz_runs[isas[i]]++;
        FUZZ_REQUIRE(st == want, "%s: status %s, want %s", qkv_isa_name(isas[i]),
                     qkv_status_string(st), qkv_status_string(want));
        FUZZ_REQUIRE(pbuf_guards_ok(&outs[i]), "%s: stray write", qkv_isa_name(isas[i]));
        if (want != QKV_OK) {
            FUZZ_REQUIRE(same_bits(outs[i].data, in.data, ns), "%s: changed on error",
                         qkv_isa_name(isas[i]));
            continue;
        }
        /* The gaps between rows are not part of any row. */
        for (size_t row = 0; row + 1 < m; row++)
            FUZZ_REQUIRE(same_bits(outs[i].data + row * lds + n, in.data + row * lds + n, lds - n),
                         "%s: wrote between rows", qkv_isa_name(isas[i]));
    }
    for (size_t row = 0; want == QKV_OK && row < m; row++) {
        const float *x = in.data + row * lds;
        int nan = 0, finite = 0;
        for (size_t j = 0; j < n; j++) {
            nan |= isnan(x[j]) || x[j] == INFINITY;
            finite |= isfinite(x[j]);
        }
        for (int i = 0; i < nisa; i++) {
            const float *y = outs[i].data + row * lds, *y0 = outs[0].data + row * lds;
            for (size_t j = 0; j < n; j++) {
                if (nan && FUZZ_AVOID_SOFTMAX_NAN && !finite)
                    continue;      /* known bug, see fuzz_common.h */
                if (nan)           /* header: a NaN or +inf entry makes its row NaN */
                    FUZZ_REQUIRE(isnan(y[j]), "%s: row %zu[%zu] = %g, want NaN",
                                 qkv_isa_name(isas[i]), row, j, y[j]);
                else if (!finite)  /* nothing above -inf: zeros, never NaN */
                    FUZZ_REQUIRE(y[j] == 0.0f, "%s: hidden row %zu[%zu] = %g, want 0",
                                 qkv_isa_name(isas[i]), row, j, y[j]);
                else if (i > 0)    /* weights in [0, 1]: 1e-5 absolute */
                    FUZZ_REQUIRE(close_to(y[j], y0[j], TOL),
                                 "%s: row %zu[%zu] = %.9g, scalar %.9g (n %zu)",
                                 qkv_isa_name(isas[i]), row, j, y[j], y0[j], n);
            }
        }
    }
    for (int i = 0; i < nisa; i++)
        pbuf_free(&outs[i]);
    free(outs);
    pbuf_free(&in);
    return 0;
}

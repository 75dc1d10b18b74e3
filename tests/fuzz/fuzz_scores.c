/*
 * Differential fuzzing of qkv_scores: every supported ISA against the
 * scalar ISA on a decoded shape (sizes not multiples of any vector width,
 * padded leading dimensions), special values, and invalid arguments.
 */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    reader rd = {data, size}, *r = &rd;
    const enum fuzz_mode mode = fuzz_begin(r);
    qkv_isa isas[QKV_ISA_COUNT];
    const int nisa = fuzz_isas(isas);

    const int big = rd_u8(r) % 8 == 0;       /* past the kernels' register tiles */
    size_t m = big ? rd_range(r, 1, 70) : rd_range(r, 1, 12);
    size_t n = big ? rd_range(r, 1, 150) : rd_range(r, 1, 40);
    size_t d = rd_range(r, 1, 140);
    size_t ldq = d + rd_range(r, 0, 3), ldk = d + rd_range(r, 0, 3), lds = n + rd_range(r, 0, 3);
    const unsigned sc = rd_u8(r) % 4;
    float scale = sc == 0 ? 0.0f : sc == 1 ? 1.0f : qkv_default_scale(d) * rd_unit01(r);
    uint64_t seed = rd_u64(r);
    const size_t nq = (m - 1) * ldq + d, nk = (n - 1) * ldk + d, ns = (m - 1) * lds + n;
    pbuf q = pbuf_new(nq), k = pbuf_new(nk);
    fill_unit(&seed, q.data, nq);
    fill_unit(&seed, k.data, nk);
    if (mode == MODE_SPECIAL)
        for (size_t s = rd_range(r, 1, 6); s; s--) {
            pbuf *b = rd_u8(r) & 1 ? &q : &k;
            b->data[rng_next(&seed) % b->n] = fuzz_specials[rd_u8(r) % FUZZ_NSPECIALS];
        }

    qkv_status want = QKV_OK;
    const float *qa = q.data, *ka = k.data;
    int s_on_q = 0;
    if (mode == MODE_INVALID) {
        switch (rd_u8(r) % 10) {
        case 0: m = 0; want = QKV_ERR_ARG; break;
        case 1: d = 0; want = QKV_ERR_ARG; break;
        case 2: ldk = d - 1; want = QKV_ERR_ARG; break;
        case 3: lds = n - 1; want = QKV_ERR_ARG; break;
        case 4: scale = rd_u8(r) & 1 ? NAN : INFINITY; want = QKV_ERR_ARG; break;
        case 5: scale = -1e-30f - rd_unit01(r); want = QKV_ERR_ARG; break;
        case 6: qa = NULL; want = QKV_ERR_ARG; break;
        case 7: s_on_q = 1; want = QKV_ERR_ARG; break;
        case 8: ldq = SIZE_MAX - rd_u8(r); m = m < 2 ? 2 : m; want = QKV_ERR_OVERFLOW; break;
        default: lds = SIZE_MAX / (2 + rd_u8(r) % 4); m = m < 2 ? 2 : m; want = QKV_ERR_OVERFLOW; break;
        }
    }

    pbuf *outs = calloc((size_t)nisa, sizeof *outs);
    pbuf q0 = pbuf_new(nq);
    memcpy(q0.data, q.data, nq * sizeof(float));
    for (int i = 0; i < nisa; i++) {
        outs[i] = pbuf_new(ns);
        float *dst = s_on_q ? q.data + rng_next(&seed) % nq : outs[i].data;
        const qkv_status st = funcs_of(isas[i])->scores(m, n, d, scale, qa, ldq, ka, ldk, dst, lds);
        fuzz_runs[isas[i]]++;
        FUZZ_REQUIRE(st == want, "%s: status %s, want %s", qkv_isa_name(isas[i]),
                     qkv_status_string(st), qkv_status_string(want));
        FUZZ_REQUIRE(want == QKV_OK ? pbuf_guards_ok(&outs[i])
                                    : pbuf_untouched(&outs[i]) && same_bits(q.data, q0.data, nq),
                     "%s: %s", qkv_isa_name(isas[i]),
                     want == QKV_OK ? "stray write" : "written on error");
        if (want != QKV_OK)
            continue;
        for (size_t a = 0; a < m; a++)
            FUZZ_REQUIRE(lds == n || is_sentinel(outs[i].data[a * lds + n]) || a == m - 1,
                         "%s: stray write between rows", qkv_isa_name(isas[i]));
    }
    for (size_t a = 0; want == QKV_OK && a < m; a++)
        for (size_t j = 0; j < n; j++) {
            const float *qi = q.data + a * ldq, *kj = k.data + j * ldk;
            int special = 0, nan = 0;
            double mag = 0;
            for (size_t c = 0; c < d; c++) {
                special |= is_special(qi[c]) | is_special(kj[c]);
                nan |= isnan(qi[c]) | isnan(kj[c]);
                mag += fabs((double)qi[c] * kj[c]);
            }
            const float s0 = outs[0].data[a * lds + j];
            for (int i = 1; i < nisa; i++) {
                const float s = outs[i].data[a * lds + j];
                if (nan)
                    FUZZ_REQUIRE(isnan(s), "%s: s[%zu][%zu] = %g from a NaN input",
                                 qkv_isa_name(isas[i]), a, j, s);
                else if (!special)
                    /* Scores are not bounded by 1: the promise scales with
                       the size of the terms summed (d rounding steps). */
                    FUZZ_REQUIRE(close_to(s, s0, TOL * (1 + scale * mag)),
                                 "%s: s[%zu][%zu] = %.9g, scalar %.9g (m %zu n %zu d %zu)",
                                 qkv_isa_name(isas[i]), a, j, s, s0, m, n, d);
            }
            if (nan)
                FUZZ_REQUIRE(isnan(s0), "scalar: s[%zu][%zu] = %g from a NaN input", a, j, s0);
        }
    for (int i = 0; i < nisa; i++)
        pbuf_free(&outs[i]);
    free(outs);
    pbuf_free(&q);
    pbuf_free(&k);
    pbuf_free(&q0);
    return 0;
}

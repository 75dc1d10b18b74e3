/*
 * Differential fuzzing of qkv_weighted_sum: every supported ISA against the
 * scalar ISA, with special values in P or V and invalid arguments.
 */
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    reader rd = {data, size}, *r = &rd;
    const enum fuzz_mode mode = fuzz_begin(r);
    qkv_isa isas[QKV_ISA_COUNT];
    const int nisa = fuzz_isas(isas);

    const int big = rd_u8(r) % 8 == 0;
    size_t m = big ? rd_range(r, 1, 70) : rd_range(r, 1, 12);
    size_t n = big ? rd_range(r, 1, 300) : rd_range(r, 1, 40);
    size_t dv = rd_range(r, 1, 140);
    size_t ldp = n + rd_range(r, 0, 3), ldv = dv + rd_range(r, 0, 3), ldo = dv + rd_range(r, 0, 3);
    uint64_t seed = rd_u64(r);
    const size_t np = (m - 1) * ldp + n, nv = (n - 1) * ldv + dv, no = (m - 1) * ldo + dv;
    pbuf p = pbuf_new(np), v = pbuf_new(nv);
    /* P as softmax makes it: weights in [0, 1]; sometimes signed, since the
       stage is a plain product and promises nothing about P's sign. */
    fill_unit(&seed, p.data, np);
    if (rd_u8(r) & 1)
        for (size_t i = 0; i < np; i++)
            p.data[i] = (p.data[i] + 1.0f) / (float)n;
    fill_unit(&seed, v.data, nv);
    if (mode == MODE_SPECIAL)
        for (size_t s = rd_range(r, 1, 5); s; s--) {
            pbuf *b = rd_u8(r) & 1 ? &p : &v;
            b->data[rng_next(&seed) % b->n] = fuzz_specials[rd_u8(r) % FUZZ_NSPECIALS];
        }

    qkv_status want = QKV_OK;
    int o_on_v = 0;
    const float *pa = p.data;
    if (mode == MODE_INVALID) {
        switch (rd_u8(r) % 8) {
        case 0: dv = 0; want = QKV_ERR_ARG; break;
        case 1: n = 0; want = QKV_ERR_ARG; break;
        case 2: ldp = n - 1; want = QKV_ERR_ARG; break;
        case 3: ldo = dv - 1; want = QKV_ERR_ARG; break;
        case 4: pa = NULL; want = QKV_ERR_ARG; break;
        case 5: o_on_v = 1; want = QKV_ERR_ARG; break;
        case 6: ldv = SIZE_MAX - rd_u8(r); n = n < 2 ? 2 : n; ldp = ldp < n ? n : ldp; want = QKV_ERR_OVERFLOW; break;
        default: ldo = SIZE_MAX / (2 + rd_u8(r) % 4); m = m < 2 ? 2 : m; want = QKV_ERR_OVERFLOW; break;
        }
    }

    pbuf *outs = calloc((size_t)nisa, sizeof *outs);
    pbuf v0 = pbuf_new(nv);
    memcpy(v0.data, v.data, nv * sizeof(float));
    for (int i = 0; i < nisa; i++) {
        outs[i] = pbuf_new(no);
        float *dst = o_on_v ? v.data + rng_next(&seed) % nv : outs[i].data;
        const qkv_status st = funcs_of(isas[i])->weighted_sum(m, n, dv, pa, ldp, v.data, ldv, dst, ldo);
        fuzz_runs[isas[i]]++;
        FUZZ_REQUIRE(st == want, "%s: status %s, want %s", qkv_isa_name(isas[i]),
                     qkv_status_string(st), qkv_status_string(want));
        FUZZ_REQUIRE(want == QKV_OK ? pbuf_guards_ok(&outs[i])
                                    : pbuf_untouched(&outs[i]) && same_bits(v.data, v0.data, nv),
                     "%s: %s", qkv_isa_name(isas[i]), want == QKV_OK ? "stray write" : "written on error");
        for (size_t a = 0; want == QKV_OK && a + 1 < m; a++)
            for (size_t c = dv; c < ldo; c++)
                FUZZ_REQUIRE(is_sentinel(outs[i].data[a * ldo + c]), "%s: wrote between rows",
                             qkv_isa_name(isas[i]));
    }
    for (size_t a = 0; want == QKV_OK && a < m; a++) {
        const float *pi = p.data + a * ldp;
        int p_nan = 0, p_special = 0;
        for (size_t j = 0; j < n; j++) {
            p_nan |= isnan(pi[j]);
            p_special |= is_special(pi[j]);
        }
        for (size_t c = 0; c < dv; c++) {
            int v_nan = 0, v_special = 0;
            double mag = 0;
            for (size_t j = 0; j < n; j++) {
                const float x = v.data[j * ldv + c];
                v_nan |= isnan(x);
                v_special |= is_special(x);
                mag += fabs((double)pi[j] * x);
            }
            const int nan = p_nan || (v_nan && !p_special);
            const float o0 = outs[0].data[a * ldo + c];
            for (int i = 0; i < nisa; i++) {
                const float o = outs[i].data[a * ldo + c];
                if (nan)   /* NaN·w and 0·NaN are NaN: it reaches the sum */
                    FUZZ_REQUIRE(isnan(o), "%s: o[%zu][%zu] = %g from a NaN input",
                                 qkv_isa_name(isas[i]), a, c, o);
                else if (!p_special && !v_special && i > 0)
                    /* 1e-5 of the size of the terms: n rounding steps. */
                    FUZZ_REQUIRE(close_to(o, o0, TOL * (1 + mag)),
                                 "%s: o[%zu][%zu] = %.9g, scalar %.9g (m %zu n %zu dv %zu)",
                                 qkv_isa_name(isas[i]), a, c, o, o0, m, n, dv);
            }
        }
    }
    for (int i = 0; i < nisa; i++)
        pbuf_free(&outs[i]);
    free(outs);
    pbuf_free(&p);
    pbuf_free(&v);
    pbuf_free(&v0);
    return 0;
}

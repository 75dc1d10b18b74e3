/* See isa_emu.h. Built for the baseline; the emulated kernels themselves
   are AVX2 code, so their contexts are made only on a CPU that runs avx2
   (an emulated ISA starts, as in the registry, from its parent's context:
   avx512-emu from avx2's). */
#include <pthread.h>

#include "api.h"
#include "isa_emu.h"
#include "registry.h"

#ifdef QKV_TEST_ISA_EMU
void qkv_ctx_init_avx512_emu(qkv_ctx *c);
void qkv_ctx_init_avx512bf16_emu(qkv_ctx *c);
void qkv_ctx_init_amx_emu(qkv_ctx *c);

enum { EMU_AVX512, EMU_AVX512BF16, EMU_AMX, EMU_COUNT };
static qkv_ctx ctxs[EMU_COUNT];

/* The entry points of emulated ISA E, bound to its context. */
#define BIND(E)                                                                             \
    static qkv_status scores_##E(size_t m, size_t n, size_t d, float scale, const float *q,  \
                                 size_t ldq, const float *k, size_t ldk, float *s, size_t lds) \
    {                                                                                       \
        return qkv_scores_with(&ctxs[E], m, n, d, scale, q, ldq, k, ldk, s, lds);           \
    }                                                                                       \
    static qkv_status softmax_##E(size_t m, size_t n, float *s, size_t lds)                 \
    {                                                                                       \
        return qkv_softmax_with(&ctxs[E], m, n, s, lds);                                    \
    }                                                                                       \
    static qkv_status weighted_sum_##E(size_t m, size_t n, size_t dv, const float *p,       \
                                       size_t ldp, const float *v, size_t ldv, float *o,    \
                                       size_t ldo)                                          \
    {                                                                                       \
        return qkv_weighted_sum_with(&ctxs[E], m, n, dv, p, ldp, v, ldv, o, ldo);           \
    }                                                                                       \
    static qkv_status attention_##E(const qkv_attention_desc *desc)                         \
    {                                                                                       \
        return qkv_attention_with(&ctxs[E], desc);                                          \
    }                                                                                       \
    static qkv_status convert_##E(size_t n, const void *src, qkv_dtype st, void *dst,       \
                                  qkv_dtype dt)                                             \
    {                                                                                       \
        return qkv_convert_with(&ctxs[E], n, src, st, dst, dt);                             \
    }                                                                                       \
    static qkv_status merge_states_##E(size_t rows, size_t dv, float *o, size_t ldo,        \
                                       float *lse, const float *o2, size_t ldo2,            \
                                       const float *lse2)                                   \
    {                                                                                       \
        return qkv_merge_states_with(&ctxs[E], rows, dv, o, ldo, lse, o2, ldo2, lse2);      \
    }
BIND(EMU_AVX512)
BIND(EMU_AVX512BF16)
BIND(EMU_AMX)
#undef BIND

#define FUNCS(E, ISA)                                                                       \
    {ISA, scores_##E, softmax_##E, weighted_sum_##E, attention_##E, convert_##E,            \
     merge_states_##E}

static isa_emu emus[EMU_COUNT] = {
    {"avx512-emu", FUNCS(EMU_AVX512, QKV_ISA_AVX512), &ctxs[EMU_AVX512], NULL, 0},
    {"avx512bf16-emu", FUNCS(EMU_AVX512BF16, QKV_ISA_AVX512BF16), &ctxs[EMU_AVX512BF16],
     &ctxs[EMU_AVX512], 0},
    {"amx-emu", FUNCS(EMU_AMX, QKV_ISA_AMX), &ctxs[EMU_AMX], &ctxs[EMU_AVX512BF16], 0},
};
#undef FUNCS
static size_t n_emus;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void init(void)
{
    const qkv_ctx *avx2 = qkv_ctx_for(QKV_ISA_AVX2);
    if (!avx2)
        return;
    void (*const inits[EMU_COUNT])(qkv_ctx *) = {
        qkv_ctx_init_avx512_emu, qkv_ctx_init_avx512bf16_emu, qkv_ctx_init_amx_emu};
    for (int e = 0; e < EMU_COUNT; e++) {
        ctxs[e] = e ? ctxs[e - 1] : *avx2;
        inits[e](&ctxs[e]);
        ctxs[e].isa = emus[e].f.isa;
        emus[e].rounds_bf16 = ctxs[e].rounds_bf16;
    }
    emus[EMU_AVX512].parent = avx2;
    n_emus = EMU_COUNT;
}

size_t isa_emus(const isa_emu **out)
{
    pthread_once(&once, init);
    *out = emus;
    return n_emus;
}
#else
size_t isa_emus(const isa_emu **out)
{
    *out = NULL;
    return 0;
}
#endif

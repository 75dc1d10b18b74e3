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
QKV_BOUND_FUNCS(&ctxs[EMU_AVX512], EMU_AVX512)
QKV_BOUND_FUNCS(&ctxs[EMU_AVX512BF16], EMU_AVX512BF16)
QKV_BOUND_FUNCS(&ctxs[EMU_AMX], EMU_AMX)

static isa_emu emus[EMU_COUNT] = {
    {"avx512-emu", QKV_BOUND_FUNCS_TABLE(QKV_ISA_AVX512, EMU_AVX512), &ctxs[EMU_AVX512], NULL},
    {"avx512bf16-emu", QKV_BOUND_FUNCS_TABLE(QKV_ISA_AVX512BF16, EMU_AVX512BF16),
     &ctxs[EMU_AVX512BF16], &ctxs[EMU_AVX512]},
    {"amx-emu", QKV_BOUND_FUNCS_TABLE(QKV_ISA_AMX, EMU_AMX), &ctxs[EMU_AMX],
     &ctxs[EMU_AVX512BF16]},
};
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
        /* Both families' choices (simd/attention.h) on any x86 CPU, whatever
           its vendor: avx512-emu and avx512bf16-emu sweep K/V in decode and
           read a 16-bit V in place in prefill as AMD's cores do, amx-emu
           prefetches into L2 and converts V once per tile as Intel's do. */
        ctxs[e].cpu.prefetch_l2 = ctxs[e].cpu.wide_converts_on_fma_ports = e == EMU_AMX;
        ctxs[e].cpu.bf16_dot_half_rate = e == EMU_AMX;
        inits[e](&ctxs[e]);
        ctxs[e].isa = emus[e].f.isa;
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

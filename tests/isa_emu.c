/* See isa_emu.h. Built for the baseline; the emulated kernels themselves
   are AVX2 code, so their contexts are made only on a CPU that runs avx2.
   An emulated ISA starts, as in the registry, from its parent's context:
   the parent's emulation where meson built it, else the real parent where
   this CPU runs it (the sanitizer builds emulate only what the CPU lacks,
   scripts/unrunnable-isas.sh), else it is left out. */
#include <pthread.h>

#include "api.h"
#include "isa_emu.h"
#include "registry.h"

#ifdef QKV_TEST_ISA_EMU
/* Meson's -Demulate: which kernel files were built on the emulation. */
#if QKV_TEST_EMU_AVX512
void qkv_ctx_init_avx512_emu(qkv_ctx *c);
#define EMU_INIT_AVX512 qkv_ctx_init_avx512_emu
#else
#define EMU_INIT_AVX512 NULL
#endif
#if QKV_TEST_EMU_AVX512BF16
void qkv_ctx_init_avx512bf16_emu(qkv_ctx *c);
#define EMU_INIT_AVX512BF16 qkv_ctx_init_avx512bf16_emu
#else
#define EMU_INIT_AVX512BF16 NULL
#endif
#if QKV_TEST_EMU_AMX
void qkv_ctx_init_amx_emu(qkv_ctx *c);
#define EMU_INIT_AMX qkv_ctx_init_amx_emu
#else
#define EMU_INIT_AMX NULL
#endif

enum { EMU_AVX512, EMU_AVX512BF16, EMU_AMX, EMU_COUNT };
static qkv_ctx ctxs[EMU_COUNT];

/* The entry points of emulated ISA E, bound to its context. */
QKV_BOUND_FUNCS(&ctxs[EMU_AVX512], EMU_AVX512)
QKV_BOUND_FUNCS(&ctxs[EMU_AVX512BF16], EMU_AVX512BF16)
QKV_BOUND_FUNCS(&ctxs[EMU_AMX], EMU_AMX)

static const struct {
    const char *name;
    qkv_funcs f;
    qkv_isa parent;
    void (*init)(qkv_ctx *);
} all[EMU_COUNT] = {
    {"avx512-emu", QKV_BOUND_FUNCS_TABLE(QKV_ISA_AVX512, EMU_AVX512), QKV_ISA_AVX2,
     EMU_INIT_AVX512},
    {"avx512bf16-emu", QKV_BOUND_FUNCS_TABLE(QKV_ISA_AVX512BF16, EMU_AVX512BF16),
     QKV_ISA_AVX512, EMU_INIT_AVX512BF16},
    {"amx-emu", QKV_BOUND_FUNCS_TABLE(QKV_ISA_AMX, EMU_AMX), QKV_ISA_AVX512BF16, EMU_INIT_AMX},
};
static isa_emu emus[EMU_COUNT];
static size_t n_emus;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void init(void)
{
    if (!qkv_ctx_for(QKV_ISA_AVX2))
        return;
    const qkv_ctx *prev = NULL;   /* the emulated parent's context, if made */
    for (int e = 0; e < EMU_COUNT; e++) {
        const qkv_ctx *parent = prev ? prev : qkv_ctx_for(all[e].parent);
        prev = NULL;
        if (!all[e].init || !parent)
            continue;
        ctxs[e] = *parent;
        /* Every family's choices (simd/attention.h) on any x86 CPU, whatever
           its vendor: avx512-emu and avx512bf16-emu sweep K/V in decode and
           read a 16-bit V in place in prefill as AMD's cores do (avx512-emu
           feeding jobs of 1 or 2 rows by their rows, as Zen 4 does), amx-emu
           prefetches into L2 and converts V once per tile as Intel's do. */
        ctxs[e].cpu.prefetch_l2 = ctxs[e].cpu.wide_converts_on_fma_ports = e == EMU_AMX;
        ctxs[e].cpu.bf16_dot_half_rate = e == EMU_AMX;
        ctxs[e].cpu.fma_256_bit = e == EMU_AVX512;
        /* And a 64 KiB L3, so that avx512-emu's scores streams S from
           16k floats on (checkasm's S on whole lines are bigger). */
        ctxs[e].cpu.l3 = 64 << 10;
        all[e].init(&ctxs[e]);
        ctxs[e].isa = all[e].f.isa;
        emus[n_emus++] = (isa_emu){all[e].name, all[e].f, &ctxs[e], parent};
        prev = &ctxs[e];
    }
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

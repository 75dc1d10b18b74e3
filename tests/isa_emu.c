/* See amx_emu.h. Built for the baseline; the emulated driver itself is
   AVX-512 code, so its context is made only on a CPU that runs avx512.
   Its parent is avx512 rather than avx512bf16: the emulation build packs
   bf16 with integer rounding, so it needs no AVX512_BF16. */
#include <pthread.h>

#include "amx_emu.h"
#include "api.h"
#include "registry.h"

#ifdef QKV_TEST_AMX_EMU
void qkv_ctx_init_amx_emu(qkv_ctx *c);

static qkv_ctx emu;
static int emu_ok;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void init(void)
{
    const qkv_ctx *base = qkv_ctx_for(QKV_ISA_AVX512);
    if (!base)
        return;
    emu = *base;
    qkv_ctx_init_amx_emu(&emu);
    emu.isa = QKV_ISA_AMX;
    emu_ok = 1;
}

static qkv_status attention(const qkv_attention_desc *desc)
{
    return qkv_attention_with(&emu, desc);
}

amx_emu_attention_fn amx_emu_attention(void)
{
    pthread_once(&once, init);
    return emu_ok ? attention : NULL;
}

const qkv_ctx *amx_emu_ctx(void)
{
    pthread_once(&once, init);
    return emu_ok ? &emu : NULL;
}
#else
amx_emu_attention_fn amx_emu_attention(void)
{
    return NULL;
}

const qkv_ctx *amx_emu_ctx(void)
{
    return NULL;
}
#endif

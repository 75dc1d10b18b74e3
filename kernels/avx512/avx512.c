/*
 * AVX-512 (F/BW/DQ/VL) kernels: the vocabulary of 16-lane vector operations
 * (avx512/vocab.h, shared with the AVX512-BF16 and AMX files) that
 * kernels/x86/kernels_tmpl.h is written in, then the template itself.
 * Only the ISA folders' files are compiled with AVX-512 flags.
 */
#include "kernels.h"

#define X86_ISA_SUFFIX _avx512
#include "avx512/vocab.h"

#include "x86/kernels_tmpl.h"

void qkv_ctx_init_avx512(qkv_ctx *c)
{
    X86_NAME(ctx_fill)(c);
    qkv_converters_init_avx512(&c->conv);
    c->merge_states = merge_states_f32_avx512;
}

#include "x86/merge_tmpl.h"

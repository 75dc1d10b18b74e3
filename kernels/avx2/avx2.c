/*
 * AVX2 + FMA (+ F16C) kernels: the vocabulary of 8-lane vector operations
 * (avx2/vocab.h) that kernels/x86/kernels_tmpl.h is written in, then the
 * template itself. Only this file (and avx512.c for its ISA) is compiled
 * with AVX2 flags.
 */
#include "kernels.h"

#define X86_ISA_SUFFIX _avx2
#include "avx2/vocab.h"

#include "x86/kernels_tmpl.h"

void qkv_ctx_init_avx2(qkv_ctx *c)
{
    X86_NAME(ctx_fill)(c);
    qkv_converters_init_avx2(&c->conv);
    c->merge_states = merge_states_f32_avx2;
}

#include "x86/merge_tmpl.h"

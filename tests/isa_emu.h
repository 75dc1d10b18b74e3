/* The AVX-512 kernels (avx512.c, avx512bf16.c, amx.c) built against
   kernels/avx512/emulate.h's C emulation of the AVX-512 instructions, and
   the AMX driver also against kernels/amx/tile.h's emulation of the tile
   instructions: they run on any x86 CPU with AVX2, FMA and F16C, so that
   checkasm tests the AVX-512 family's logic where its hardware is missing
   (as avx512-emu, avx512bf16-emu, amx-emu). The real ISAs are tested
   natively where the CPU has them. */
#ifndef QKV_TEST_ISA_EMU_H
#define QKV_TEST_ISA_EMU_H

#include <stddef.h>

#include "qkv.h"

struct qkv_ctx;

typedef struct isa_emu {
    const char *name;              /* "avx512-emu", ... */
    qkv_funcs f;                   /* the entry points, bound to ctx */
    const struct qkv_ctx *ctx;     /* its kernels */
    const struct qkv_ctx *parent;  /* its parent's (emulated or real) */
} isa_emu;

/* The emulated ISAs this build has and this CPU runs (none without AVX2,
   FMA and F16C, or where meson did not build them): *out, and how many. */
size_t isa_emus(const isa_emu **out);

#endif

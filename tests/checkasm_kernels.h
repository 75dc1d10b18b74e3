/* checkasm's kernel group (tests/checkasm_kernels.c). */
#ifndef QKV_CHECKASM_KERNELS_H
#define QKV_CHECKASM_KERNELS_H

#include <stdint.h>

#include "qkv.h"
#include "qkvtest.h"

/* Every supported ISA's own registry entries (or only_isa's), and the
   emulated AVX-512 family's unless `native`, with `scale` times the base
   number of cases, drawn from seed. */
void test_kernels(tally *t, uint64_t seed, int scale, const char *only_isa, int native);

/* What the registry says of a supported ISA: whether its driver rounds to
   bf16 in QKV_FPMATH_BF16, and its nearest supported ancestor whose driver
   does not (the f32 kernels it builds on; itself when it does not round).
   For an ISA this CPU cannot run, the first only says no. */
int isa_rounds_bf16(int isa);
int isa_f32_ancestor(int isa);
/* Whether its decode forms also round (Q·Kᵀ) in QKV_FPMATH_BF16. */
int isa_rounds_bf16_decode(int isa);
/* Whether a supported ISA that rounds to bf16 keeps its tiles off, for
   want of room, on jobs of `rows` rows of this descriptor's shape (0 when
   the registry has no entry for it: amx-emu). */
int isa_bf16_shape_off(int isa, size_t rows, const qkv_attention_desc *d);

#endif

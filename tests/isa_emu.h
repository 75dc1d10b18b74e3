/* The AMX driver (kernels/amx/amx.c) built against kernels/amx/tile.h's
   emulation of the tile instructions: runs on any CPU with AVX-512, so
   that checkasm tests the AMX blocking and packing where there is no AMX. */
#ifndef QKV_TEST_AMX_EMU_H
#define QKV_TEST_AMX_EMU_H

#include "qkv.h"

/* The emulated AMX ISA's attention (with the argument checks of
   qkv_attention), or NULL when this build has none or this CPU lacks
   AVX-512. */
typedef qkv_status (*amx_emu_attention_fn)(const qkv_attention_desc *desc);
amx_emu_attention_fn amx_emu_attention(void);

/* Its context, for the kernel-level tests (checkasm_kernels.c), or NULL
   likewise. */
struct qkv_ctx;
const struct qkv_ctx *amx_emu_ctx(void);

#endif

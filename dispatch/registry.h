/* Internal: the registry of ISA contexts and the process-wide choice. */
#ifndef QKV_REGISTRY_H
#define QKV_REGISTRY_H

#include "kernels.h"

/* The context of a supported ISA, or NULL when it is not supported here. */
const qkv_ctx *qkv_ctx_for(qkv_isa isa);

/* The ISA whose context an ISA's starts from (scalar for scalar). */
qkv_isa qkv_isa_parent(qkv_isa isa);

/* Whether an ISA's kernels are compiled into this build (it may still not
   run on this CPU). */
int qkv_isa_built(qkv_isa isa);

/* Why an ISA cannot run here ("not built", "the CPU lacks avx512bw", ...),
   or NULL when it is supported. Never allocates. */
const char *qkv_isa_unsupported_reason(qkv_isa isa);

/* Why a supported ISA is not chosen as the best although it is the deepest
   (its instructions gain nothing on this CPU), or NULL. */
const char *qkv_isa_passed_over_reason(qkv_isa isa);

/* The names of all ISAs, ", "-separated, for "known: ..." details. */
const char *qkv_isa_names_list(void);

/* QKV_ISA as it was when the choice was made ("" if unset), for details. */
const char *qkv_isa_env_choice(void);

#endif

/* Internal: the per-ISA kernel tables and the process-wide choice. */
#ifndef QKV_DISPATCH_H
#define QKV_DISPATCH_H

#include "kernels.h"

/* The kernels of a supported ISA, or NULL when it is not supported here. */
const qkv_kernels *qkv_kernels_for(qkv_isa isa);

/* QKV_ISA as it was when the choice was made ("" if unset), for details. */
const char *qkv_isa_env_choice(void);

#endif

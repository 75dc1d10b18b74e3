/* Internal: the per-ISA kernel tables and the process-wide choice. */
#ifndef QKV_DISPATCH_H
#define QKV_DISPATCH_H

#include "kernels.h"

/* The kernels of a supported ISA, or NULL when it is not supported here. */
const qkv_kernels *qkv_kernels_for(qkv_isa isa);

#endif

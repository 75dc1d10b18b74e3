/* Internal: the fused-attention planner (dispatch/plan.c). */
#ifndef QKV_PLAN_H
#define QKV_PLAN_H

#include "kernels.h"

/* Runs a descriptor that passed the checks of dispatch/attention.c on an
   ISA whose context supports its dtypes. QKV_ERR_NOMEM or QKV_ERR_OVERFLOW
   only for the merge buffer of a hooked call that splits the keys. */
qkv_status qkv_attention_run(const qkv_ctx *ctx, const qkv_attention_desc *desc);

#endif

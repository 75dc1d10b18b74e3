/* qkv_merge_states: argument checks, then the ISA's merge kernel.
   PLACEHOLDER until the merge kernels land (issue 14). */
#include "api.h"

qkv_status qkv_merge_states_with(const qkv_ctx *kern, size_t rows, size_t dv, float *o,
                                 size_t ldo, float *lse, const float *o_other, size_t ldo_other,
                                 const float *lse_other)
{
    (void)kern, (void)rows, (void)dv, (void)o, (void)ldo, (void)lse, (void)o_other;
    (void)ldo_other, (void)lse_other;
    return QKV_ERR_UNSUPPORTED;
}

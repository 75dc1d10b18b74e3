/* qkv_convert: argument checks, then the ISA's row converters.
   PLACEHOLDER until the conversion kernels land (issue 11/15). */
#include "api.h"

qkv_status qkv_convert_with(const qkv_ctx *kern, size_t n, const void *src, qkv_dtype src_type,
                            void *dst, qkv_dtype dst_type)
{
    (void)kern, (void)n, (void)src, (void)src_type, (void)dst, (void)dst_type;
    return QKV_ERR_UNSUPPORTED;
}

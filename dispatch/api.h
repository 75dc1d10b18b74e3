/* Internal: the entry points with an explicit ISA context (NULL: the ISA
   is not supported, so QKV_ERR_UNSUPPORTED after the argument checks). */
#ifndef QKV_API_H
#define QKV_API_H

#include "kernels.h"

qkv_status qkv_scores_with(const qkv_ctx *kern, size_t m, size_t n, size_t d, float scale,
                           const float *q, size_t ldq, const float *k, size_t ldk,
                           float *s, size_t lds);
qkv_status qkv_softmax_with(const qkv_ctx *kern, size_t m, size_t n, float *s, size_t lds);
qkv_status qkv_weighted_sum_with(const qkv_ctx *kern, size_t m, size_t n, size_t dv,
                                 const float *p, size_t ldp, const float *v, size_t ldv,
                                 float *o, size_t ldo);
qkv_status qkv_attention_with(const qkv_ctx *kern, const qkv_attention_desc *desc);
qkv_status qkv_convert_with(const qkv_ctx *kern, size_t n, const void *src, qkv_dtype src_type,
                            void *dst, qkv_dtype dst_type);
qkv_status qkv_merge_states_with(const qkv_ctx *kern, size_t rows, size_t dv, float *o,
                                 size_t ldo, float *lse, const float *o_other, size_t ldo_other,
                                 const float *lse_other);

#endif

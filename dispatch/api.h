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


/* The entry points bound to one table: QKV_BOUND_FUNCS(CTX, name) defines
   scores_name ... merge_states_name, each calling the _with function with
   the context CTX (an expression, evaluated at each call), and
   QKV_BOUND_FUNCS_TABLE(ISA, name) is their qkv_funcs. api.c binds every
   ISA's registry table; the tests bind the emulated ISAs' (isa_emu.c). */
#define QKV_BOUND_FUNCS(CTX, name)                                                          \
    static qkv_status scores_##name(size_t m, size_t n, size_t d, float scale,              \
                                    const float *q, size_t ldq, const float *k, size_t ldk, \
                                    float *s, size_t lds)                                   \
    {                                                                                       \
        return qkv_scores_with(CTX, m, n, d, scale, q, ldq, k, ldk, s, lds);                \
    }                                                                                       \
    static qkv_status softmax_##name(size_t m, size_t n, float *s, size_t lds)              \
    {                                                                                       \
        return qkv_softmax_with(CTX, m, n, s, lds);                                         \
    }                                                                                       \
    static qkv_status weighted_sum_##name(size_t m, size_t n, size_t dv,                    \
                                          const float *p, size_t ldp,                       \
                                          const float *v, size_t ldv, float *o, size_t ldo) \
    {                                                                                       \
        return qkv_weighted_sum_with(CTX, m, n, dv, p, ldp, v, ldv, o, ldo);                \
    }                                                                                       \
    static qkv_status attention_##name(const qkv_attention_desc *desc)                      \
    {                                                                                       \
        return qkv_attention_with(CTX, desc);                                               \
    }                                                                                       \
    static qkv_status convert_##name(size_t n, const void *src, qkv_dtype st, void *dst,    \
                                     qkv_dtype dt)                                          \
    {                                                                                       \
        return qkv_convert_with(CTX, n, src, st, dst, dt);                                  \
    }                                                                                       \
    static qkv_status merge_states_##name(size_t rows, size_t dv, float *o, size_t ldo,     \
                                          float *lse, const float *o2, size_t ldo2,         \
                                          const float *lse2)                                \
    {                                                                                       \
        return qkv_merge_states_with(CTX, rows, dv, o, ldo, lse, o2, ldo2, lse2);           \
    }
#define QKV_BOUND_FUNCS_TABLE(ISA, name)                                                    \
    {(ISA), scores_##name, softmax_##name, weighted_sum_##name, attention_##name,           \
     convert_##name, merge_states_##name}

#endif

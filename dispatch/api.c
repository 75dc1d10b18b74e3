/*
 * The three stage entry points: argument checks, then the kernel of the
 * chosen ISA. Each entry point exists once, taking the kernel table; the
 * dispatched functions and the per-ISA qkv_funcs tables are thin wrappers.
 */
#include "api.h"
#include "isa_list.h"
#include "registry.h"
#include "validate.h"

const char *qkv_status_string(qkv_status status)
{
    switch (status) {
    case QKV_OK: return "ok";
    case QKV_ERR_ARG: return "invalid argument";
    case QKV_ERR_OVERFLOW: return "size computation overflows";
    case QKV_ERR_UNSUPPORTED: return "not supported by this build or CPU";
    case QKV_ERR_NOMEM: return "out of memory";
    }
    return "unknown status";
}

float qkv_default_scale(size_t d)
{
    return d ? (float)(1.0 / sqrt((double)d)) : 0.0f;
}

qkv_status qkv_scores_with(const qkv_ctx *kern, size_t m, size_t n, size_t d, float scale,
                           const float *q, size_t ldq, const float *k, size_t ldk,
                           float *s, size_t lds)
{
    if (!m || !n || !d || !q || !k || !s || ldq < d || ldk < d || lds < n ||
        !qkv_finite_nonneg(scale))
        return QKV_ERR_ARG;
    const size_t nq = qkv_span_bytes(m, ldq, d, sizeof *q);
    const size_t nk = qkv_span_bytes(n, ldk, d, sizeof *k);
    const size_t ns = qkv_span_bytes(m, lds, n, sizeof *s);
    if (!nq || !nk || !ns)
        return QKV_ERR_OVERFLOW;
    if (qkv_overlap(s, ns, q, nq) || qkv_overlap(s, ns, k, nk))
        return QKV_ERR_ARG;
    if (!kern)
        return QKV_ERR_UNSUPPORTED;
    kern->scores(m, n, d, scale, q, ldq, k, ldk, s, lds);
    return QKV_OK;
}

qkv_status qkv_softmax_with(const qkv_ctx *kern, size_t m, size_t n, float *s, size_t lds)
{
    if (!m || !n || !s || lds < n)
        return QKV_ERR_ARG;
    if (!qkv_span_bytes(m, lds, n, sizeof *s))
        return QKV_ERR_OVERFLOW;
    if (!kern)
        return QKV_ERR_UNSUPPORTED;
    kern->softmax(m, n, s, lds);
    return QKV_OK;
}

qkv_status qkv_weighted_sum_with(const qkv_ctx *kern, size_t m, size_t n, size_t dv,
                                 const float *p, size_t ldp, const float *v, size_t ldv,
                                 float *o, size_t ldo)
{
    if (!m || !n || !dv || !p || !v || !o || ldp < n || ldv < dv || ldo < dv)
        return QKV_ERR_ARG;
    const size_t np = qkv_span_bytes(m, ldp, n, sizeof *p);
    const size_t nv = qkv_span_bytes(n, ldv, dv, sizeof *v);
    const size_t no = qkv_span_bytes(m, ldo, dv, sizeof *o);
    if (!np || !nv || !no)
        return QKV_ERR_OVERFLOW;
    if (qkv_overlap(o, no, p, np) || qkv_overlap(o, no, v, nv))
        return QKV_ERR_ARG;
    if (!kern)
        return QKV_ERR_UNSUPPORTED;
    kern->weighted_sum(m, n, dv, p, ldp, v, ldv, o, ldo);
    return QKV_OK;
}

/* The dispatched entry points: the process-wide choice. */

static const qkv_ctx *chosen(void)
{
    return qkv_ctx_for(qkv_isa_get());
}

qkv_status qkv_scores(size_t m, size_t n, size_t d, float scale,
                      const float *q, size_t ldq, const float *k, size_t ldk,
                      float *s, size_t lds)
{
    return qkv_scores_with(chosen(), m, n, d, scale, q, ldq, k, ldk, s, lds);
}

qkv_status qkv_softmax(size_t m, size_t n, float *s, size_t lds)
{
    return qkv_softmax_with(chosen(), m, n, s, lds);
}

qkv_status qkv_weighted_sum(size_t m, size_t n, size_t dv,
                            const float *p, size_t ldp, const float *v, size_t ldv,
                            float *o, size_t ldo)
{
    return qkv_weighted_sum_with(chosen(), m, n, dv, p, ldp, v, ldv, o, ldo);
}

qkv_status qkv_attention(const qkv_attention_desc *desc)
{
    return qkv_attention_with(chosen(), desc);
}

qkv_status qkv_convert(size_t n, const void *src, qkv_dtype src_type, void *dst, qkv_dtype dst_type)
{
    return qkv_convert_with(chosen(), n, src, src_type, dst, dst_type);
}

qkv_status qkv_merge_states(size_t rows, size_t dv, float *o, size_t ldo, float *lse,
                            const float *o_other, size_t ldo_other, const float *lse_other)
{
    return qkv_merge_states_with(chosen(), rows, dv, o, ldo, lse, o_other, ldo_other, lse_other);
}

/* One qkv_funcs per ISA: functions bound to that ISA's table. */

#define QKV_BOUND_FUNCS(ISA, name)                                                          \
    static qkv_status scores_##name(size_t m, size_t n, size_t d, float scale,              \
                                    const float *q, size_t ldq, const float *k, size_t ldk, \
                                    float *s, size_t lds)                                   \
    {                                                                                       \
        return qkv_scores_with(qkv_ctx_for(ISA), m, n, d, scale, q, ldq, k, ldk, s, lds); \
    }                                                                                       \
    static qkv_status softmax_##name(size_t m, size_t n, float *s, size_t lds)              \
    {                                                                                       \
        return qkv_softmax_with(qkv_ctx_for(ISA), m, n, s, lds);                        \
    }                                                                                       \
    static qkv_status weighted_sum_##name(size_t m, size_t n, size_t dv,                    \
                                          const float *p, size_t ldp,                       \
                                          const float *v, size_t ldv, float *o, size_t ldo) \
    {                                                                                       \
        return qkv_weighted_sum_with(qkv_ctx_for(ISA), m, n, dv, p, ldp, v, ldv, o, ldo); \
    }                                                                                       \
    static qkv_status attention_##name(const qkv_attention_desc *desc)                      \
    {                                                                                       \
        return qkv_attention_with(qkv_ctx_for(ISA), desc);                              \
    }                                                                                       \
    static qkv_status convert_##name(size_t n, const void *src, qkv_dtype st, void *dst,    \
                                     qkv_dtype dt)                                          \
    {                                                                                       \
        return qkv_convert_with(qkv_ctx_for(ISA), n, src, st, dst, dt);                 \
    }                                                                                       \
    static qkv_status merge_states_##name(size_t rows, size_t dv, float *o, size_t ldo,     \
                                          float *lse, const float *o2, size_t ldo2,         \
                                          const float *lse2)                                \
    {                                                                                       \
        return qkv_merge_states_with(qkv_ctx_for(ISA), rows, dv, o, ldo, lse, o2, ldo2, lse2); \
    }

#define X(E, n, P, f) QKV_BOUND_FUNCS(QKV_ISA_##E, n)
QKV_ISA_LIST(X)
#undef X

#define X(E, n, P, f)                                                                        \
    [QKV_ISA_##E] = {QKV_ISA_##E, scores_##n, softmax_##n, weighted_sum_##n, attention_##n,    \
                     convert_##n, merge_states_##n},
static const qkv_funcs bound[QKV_ISA_COUNT] = {QKV_ISA_LIST(X)};
#undef X

qkv_status qkv_isa_funcs(qkv_isa isa, const qkv_funcs **out)
{
    if (!out)
        return QKV_ERR_ARG;
    if (!qkv_isa_supported(isa))
        return QKV_ERR_UNSUPPORTED;
    *out = &bound[isa];
    return QKV_OK;
}

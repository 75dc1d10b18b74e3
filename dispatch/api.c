/*
 * The three stage entry points: argument checks, then the kernel of the
 * chosen ISA. Each entry point exists once, taking the kernel table; the
 * dispatched functions and the per-ISA qkv_funcs tables are thin wrappers.
 */
#include "api.h"
#include "isa_list.h"
#include "registry.h"
#include "error.h"
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
    if (!m || !n || !d)
        return qkv_fail(QKV_ERR_ARG, "m %zu, n %zu, d %zu: sizes must be >= 1", m, n, d);
    if (!q || !k || !s)
        return qkv_fail(QKV_ERR_ARG, "%s is NULL", !q ? "q" : !k ? "k" : "s");
    if (ldq < d || ldk < d)
        return qkv_fail(QKV_ERR_ARG, "%s %zu < d %zu", ldq < d ? "ldq" : "ldk",
                        ldq < d ? ldq : ldk, d);
    if (lds < n)
        return qkv_fail(QKV_ERR_ARG, "lds %zu < n %zu", lds, n);
    if (!qkv_finite_nonneg(scale))
        return qkv_fail(QKV_ERR_ARG, "scale %g is not finite and >= 0", (double)scale);
    const size_t nq = qkv_span_bytes(m, ldq, d, sizeof *q);
    const size_t nk = qkv_span_bytes(n, ldk, d, sizeof *k);
    const size_t ns = qkv_span_bytes(m, lds, n, sizeof *s);
    if (!nq || !nk || !ns)
        return qkv_fail(QKV_ERR_OVERFLOW, "%s: rows x leading dimension exceed PTRDIFF_MAX bytes",
                        !nq ? "q" : !nk ? "k" : "s");
    if (qkv_overlap(s, ns, q, nq) || qkv_overlap(s, ns, k, nk))
        return qkv_fail(QKV_ERR_ARG, "s overlaps %s", qkv_overlap(s, ns, q, nq) ? "q" : "k");
    if (!kern)
        return qkv_fail_isa_choice();
    kern->scores(m, n, d, scale, q, ldq, k, ldk, s, lds);
    return QKV_OK;
}

qkv_status qkv_softmax_with(const qkv_ctx *kern, size_t m, size_t n, float *s, size_t lds)
{
    if (!m || !n)
        return qkv_fail(QKV_ERR_ARG, "m %zu, n %zu: sizes must be >= 1", m, n);
    if (!s)
        return qkv_fail(QKV_ERR_ARG, "s is NULL");
    if (lds < n)
        return qkv_fail(QKV_ERR_ARG, "lds %zu < n %zu", lds, n);
    if (!qkv_span_bytes(m, lds, n, sizeof *s))
        return qkv_fail(QKV_ERR_OVERFLOW, "s: rows x leading dimension exceed PTRDIFF_MAX bytes");
    if (!kern)
        return qkv_fail_isa_choice();
    kern->softmax(m, n, s, lds);
    return QKV_OK;
}

qkv_status qkv_weighted_sum_with(const qkv_ctx *kern, size_t m, size_t n, size_t dv,
                                 const float *p, size_t ldp, const float *v, size_t ldv,
                                 float *o, size_t ldo)
{
    if (!m || !n || !dv)
        return qkv_fail(QKV_ERR_ARG, "m %zu, n %zu, dv %zu: sizes must be >= 1", m, n, dv);
    if (!p || !v || !o)
        return qkv_fail(QKV_ERR_ARG, "%s is NULL", !p ? "p" : !v ? "v" : "o");
    if (ldp < n)
        return qkv_fail(QKV_ERR_ARG, "ldp %zu < n %zu", ldp, n);
    if (ldv < dv || ldo < dv)
        return qkv_fail(QKV_ERR_ARG, "%s %zu < dv %zu", ldv < dv ? "ldv" : "ldo",
                        ldv < dv ? ldv : ldo, dv);
    const size_t np = qkv_span_bytes(m, ldp, n, sizeof *p);
    const size_t nv = qkv_span_bytes(n, ldv, dv, sizeof *v);
    const size_t no = qkv_span_bytes(m, ldo, dv, sizeof *o);
    if (!np || !nv || !no)
        return qkv_fail(QKV_ERR_OVERFLOW, "%s: rows x leading dimension exceed PTRDIFF_MAX bytes",
                        !np ? "p" : !nv ? "v" : "o");
    if (qkv_overlap(o, no, p, np) || qkv_overlap(o, no, v, nv))
        return qkv_fail(QKV_ERR_ARG, "o overlaps %s", qkv_overlap(o, no, p, np) ? "p" : "v");
    if (!kern)
        return qkv_fail_isa_choice();
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
#define X(E, n, P, f) QKV_BOUND_FUNCS(qkv_ctx_for(QKV_ISA_##E), n)
QKV_ISA_LIST(X)
#undef X

#define X(E, n, P, f) [QKV_ISA_##E] = QKV_BOUND_FUNCS_TABLE(QKV_ISA_##E, n),
static const qkv_funcs bound[QKV_ISA_COUNT] = {QKV_ISA_LIST(X)};
#undef X

qkv_status qkv_isa_funcs(qkv_isa isa, const qkv_funcs **out)
{
    if (!out)
        return qkv_fail(QKV_ERR_ARG, "qkv_isa_funcs: out is NULL");
    if (!qkv_isa_supported(isa))
        return qkv_fail_isa("qkv_isa_funcs", isa);
    *out = &bound[isa];
    return QKV_OK;
}

/* qkv_merge_states: argument checks, then the ISA's merge kernel. */
#include "api.h"
#include "error.h"
#include "validate.h"

qkv_status qkv_merge_states_with(const qkv_ctx *kern, size_t rows, size_t dv, float *o,
                                 size_t ldo, float *lse, const float *o_other, size_t ldo_other,
                                 const float *lse_other)
{
    if (!o || !lse || !o_other || !lse_other)
        return qkv_fail(QKV_ERR_ARG, "qkv_merge_states: %s is NULL",
                        !o ? "o" : !lse ? "lse" : !o_other ? "o_other" : "lse_other");
    if (!rows || !dv)
        return qkv_fail(QKV_ERR_ARG, "qkv_merge_states: %s is 0", !rows ? "rows" : "dv");
    if (ldo < dv || ldo_other < dv)
        return qkv_fail(QKV_ERR_ARG, "qkv_merge_states: %s %zu < dv %zu",
                        ldo < dv ? "ldo" : "ldo_other", ldo < dv ? ldo : ldo_other, dv);
    const size_t no = qkv_span_bytes(rows, ldo, dv, sizeof *o);
    const size_t no2 = qkv_span_bytes(rows, ldo_other, dv, sizeof *o_other);
    const size_t nl = qkv_span_bytes(rows, 1, 1, sizeof *lse);
    if (!no || !no2 || !nl)
        return qkv_fail(QKV_ERR_OVERFLOW, "qkv_merge_states: rows x ld floats exceed "
                        "PTRDIFF_MAX bytes");
    /* The kernel reads the other side while it writes this one, row by row:
       any shared byte would feed it its own output. The two inputs may
       share memory; they are only read. */
    if (qkv_overlap(o, no, lse, nl) || qkv_overlap(o, no, o_other, no2) ||
        qkv_overlap(o, no, lse_other, nl) || qkv_overlap(lse, nl, o_other, no2) ||
        qkv_overlap(lse, nl, lse_other, nl))
        return qkv_fail(QKV_ERR_ARG, "qkv_merge_states: o or lse shares memory with another "
                        "argument");
    if (!kern)
        return qkv_fail_isa_choice();
    kern->merge_states(rows, dv, o, ldo, lse, o_other, ldo_other, lse_other);
    return QKV_OK;
}

/*
 * The per-thread error detail. A fixed thread-local buffer: failing calls
 * must not allocate (they may be reporting that memory ran out) and must
 * not print, and two threads must not see each other's text.
 */
#include <stdarg.h>
#include <stdio.h>
#include <strings.h>

#include "error.h"
#include "registry.h"

/* Long enough for the longest message with its numbers (a size_t prints
   as up to 20 digits); a longer one is cut, never overrun. */
#define DETAIL_BYTES 256

static _Thread_local char detail[DETAIL_BYTES];

const char *qkv_last_error_detail(void)
{
    return detail;
}

qkv_status qkv_fail(qkv_status st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    return st;
}

qkv_status qkv_fail_isa(const char *who, qkv_isa isa)
{
    const char *why = qkv_isa_unsupported_reason(isa);
    return qkv_fail(QKV_ERR_UNSUPPORTED, "%s(%s): %s", who, qkv_isa_name(isa),
                    why ? why : "not supported here");
}

qkv_status qkv_fail_isa_choice(void)
{
    const qkv_isa isa = qkv_isa_get();
    /* Only QKV_ISA can make the choice unusable: qkv_isa_set() refuses
       what cannot run. A name is cut at 32 characters. */
    const char *env = qkv_isa_env_choice();
    if (isa == QKV_ISA_NONE) {
        /* The common slip is the case ("AVX2"): name the ISA meant. */
        const char *meant = NULL;
        for (int i = 0; i < QKV_ISA_COUNT; i++)
            if (strcasecmp(env, qkv_isa_name((qkv_isa)i)) == 0)
                meant = qkv_isa_name((qkv_isa)i);
        return qkv_fail(QKV_ERR_UNSUPPORTED,
                        "QKV_ISA=%.32s: unknown ISA name%s%s (known: %s); fix or unset QKV_ISA, or "
                        "call qkv_isa_set()", env, meant ? "; names are lower case: " : "",
                        meant ? meant : "", qkv_isa_names_list());
    }
    const char *why = qkv_isa_unsupported_reason(isa);
    return qkv_fail(QKV_ERR_UNSUPPORTED,
                    "QKV_ISA=%.32s: %s; unset QKV_ISA or call qkv_isa_set() (best here: %s)", env,
                    why ? why : "not supported here", qkv_isa_name(qkv_isa_best()));
}

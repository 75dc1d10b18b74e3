/* Internal: the per-thread detail text behind qkv_last_error_detail(). */
#ifndef QKV_ERROR_H
#define QKV_ERROR_H

#include "qkv.h"

#if defined(__GNUC__)
#define QKV_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define QKV_PRINTF(f, a)
#endif

/* Records on this thread why a call fails (printf-style, cut to the
   buffer's fixed size) and returns st, so that a check reads
   `return qkv_fail(QKV_ERR_ARG, "ldq %zu < d %zu", ldq, d);`. */
qkv_status qkv_fail(qkv_status st, const char *fmt, ...) QKV_PRINTF(2, 3);

/* QKV_ERR_UNSUPPORTED with the reason the process-wide ISA choice cannot
   run (an unknown QKV_ISA name, or an ISA not built or not runnable). */
qkv_status qkv_fail_isa_choice(void);

/* QKV_ERR_UNSUPPORTED for `who` asked for an ISA that is not supported. */
qkv_status qkv_fail_isa(const char *who, qkv_isa isa);


#endif

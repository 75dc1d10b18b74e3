/* CPU feature detection: which ISAs this CPU and OS can run. */
#ifndef QKV_CPU_H
#define QKV_CPU_H

#include "qkv.h"

/* Bit (1u << isa) is set for every ISA the CPU and OS can run, whether or
   not it is compiled in. Scalar is always set. Detected once per call; the
   caller caches it. */
unsigned qkv_cpu_isa_mask(void);

/* Why this CPU or OS cannot run isa, an ISA of this architecture (the
   first missing CPUID or hwcap bit, or register state the OS does not
   save); NULL when it can. Agrees with qkv_cpu_isa_mask(). */
const char *qkv_cpu_isa_reason(qkv_isa isa);

/* Why isa is not supported here: no such ISA, not built into this library
   (another architecture, or configured out), or qkv_cpu_isa_reason(); NULL
   when it is supported. For error details and `qkv info`. */
const char *qkv_isa_unsupported_reason(qkv_isa isa);

#endif

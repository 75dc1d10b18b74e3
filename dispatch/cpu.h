/* CPU feature detection: which ISAs this CPU and OS can run. */
#ifndef QKV_CPU_H
#define QKV_CPU_H

/* Bit (1u << isa) is set for every ISA the CPU and OS can run, whether or
   not it is compiled in. Scalar is always set. Detected once per call; the
   caller caches it. */
unsigned qkv_cpu_isa_mask(void);

#endif

/*
 * The one list of qkv's instruction sets. Dispatch, the per-ISA function
 * tables and the registry walk it; tests, the benchmark and the report
 * enumerate the public qkv_isa values, which this list mirrors (checked at
 * compile time in dispatch/registry.c).
 *
 *   X(ENUM, name, PARENT, features)
 *
 * ENUM is the qkv_isa suffix (QKV_ISA_<ENUM>), name its public name and the
 * folder and meson row of its kernels, PARENT the ISA whose registry entry
 * it starts from (it needs everything the parent needs), features the CPU
 * feature bits (dispatch/cpu.h) it needs on top of its parent's. A parent
 * comes before its children.
 *
 * Adding an ISA: a row here and its enum value in include/qkv.h, its
 * feature bits in dispatch/cpu_<arch>.c, its row in meson.build's
 * isa_table, and its folder kernels/<name>/ defining qkv_ctx_init_<name>.
 */
#ifndef QKV_ISA_LIST_H
#define QKV_ISA_LIST_H

#include "cpu.h"

#define QKV_ISA_LIST(X)                                                                        \
    X(SCALAR, scalar, SCALAR, 0)                                                               \
    X(AVX2, avx2, SCALAR, QKV_CPU_AVX2 | QKV_CPU_FMA | QKV_CPU_F16C | QKV_CPU_OS_YMM)         \
    X(AVX512, avx512, AVX2,                                                                    \
      QKV_CPU_AVX512F | QKV_CPU_AVX512BW | QKV_CPU_AVX512DQ | QKV_CPU_AVX512VL | QKV_CPU_OS_ZMM) \
    X(NEON, neon, SCALAR, QKV_CPU_ASIMD)                                                       \
    X(SVE, sve, NEON, QKV_CPU_SVE)                                                             \
    X(AVX512BF16, avx512bf16, AVX512, QKV_CPU_AVX512BF16)                                      \
    X(AMX, amx, AVX512BF16, QKV_CPU_AMX_TILE | QKV_CPU_AMX_BF16 | QKV_CPU_OS_AMX)             \
    X(NEONBF16, neonbf16, NEON, QKV_CPU_BF16 | QKV_CPU_ASIMDFHM)                               \
    X(SVEBF16, svebf16, SVE, QKV_CPU_SVEBF16 | QKV_CPU_BF16)

#endif

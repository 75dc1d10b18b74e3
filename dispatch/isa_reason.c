/* qkv_isa_unsupported_reason: what the build lacks, else what the CPU lacks. */
#include "cpu.h"
#include "qkv_config.h"

#if defined(__x86_64__)
#define ON_X86 1
#define ON_ARM 0
#define THIS_ARCH "x86-64"
#elif defined(__aarch64__)
#define ON_X86 0
#define ON_ARM 1
#define THIS_ARCH "AArch64"
#else
#define ON_X86 0
#define ON_ARM 0
#define THIS_ARCH "another architecture"
#endif

#define X86_ONLY "not built: an x86-64 ISA, and this library is for " THIS_ARCH
#define ARM_ONLY "not built: an AArch64 ISA, and this library is for " THIS_ARCH

static const struct isa_build {
    int this_arch;          /* an ISA of the architecture built for */
    int built;
    const char *other_arch; /* otherwise: why not */
} builds[QKV_ISA_COUNT] = {
    [QKV_ISA_SCALAR] = {1, 1, ""},
    [QKV_ISA_AVX2] = {ON_X86, QKV_HAVE_AVX2, X86_ONLY},
    [QKV_ISA_AVX512] = {ON_X86, QKV_HAVE_AVX512, X86_ONLY},
    [QKV_ISA_NEON] = {ON_ARM, QKV_HAVE_NEON, ARM_ONLY},
    [QKV_ISA_SVE] = {ON_ARM, QKV_HAVE_SVE, ARM_ONLY},
};

const char *qkv_isa_unsupported_reason(qkv_isa isa)
{
    if (isa < 0 || isa >= QKV_ISA_COUNT)
        return "no such ISA";
    const struct isa_build *b = &builds[isa];
    if (!b->this_arch)
        return b->other_arch;
    if (!b->built)
        return "not built into this library (configured with -Dsimd=disabled or -D<isa>=disabled, "
               "or the compiler cannot build it)";
    return qkv_cpu_isa_reason(isa);
}

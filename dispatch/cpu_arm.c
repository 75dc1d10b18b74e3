/* AArch64 detection through the kernel's hardware capabilities. */
#include <sys/auxv.h>

#include "cpu.h"
#include "qkv.h"

#ifndef HWCAP_ASIMD
#define HWCAP_ASIMD (1ul << 1)
#endif
#ifndef HWCAP_SVE
#define HWCAP_SVE (1ul << 22)
#endif

unsigned qkv_cpu_isa_mask(void)
{
    unsigned mask = 1u << QKV_ISA_SCALAR;
    const unsigned long hwcap = getauxval(AT_HWCAP);
    if (hwcap & HWCAP_ASIMD) {
        mask |= 1u << QKV_ISA_NEON;
        if (hwcap & HWCAP_SVE)
            mask |= 1u << QKV_ISA_SVE;
    }
    return mask;
}

const char *qkv_cpu_isa_reason(qkv_isa isa)
{
    const unsigned long hwcap = getauxval(AT_HWCAP);
    if (isa == QKV_ISA_SCALAR)
        return NULL;
    if (isa != QKV_ISA_NEON && isa != QKV_ISA_SVE)
        return "not an AArch64 ISA";
    if (!(hwcap & HWCAP_ASIMD))
        return "the kernel reports no Advanced SIMD (AT_HWCAP bit ASIMD)";
    if (isa == QKV_ISA_SVE && !(hwcap & HWCAP_SVE))
        return "the CPU lacks SVE, or the kernel does not enable it (AT_HWCAP bit SVE)";
    return NULL;
}

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

/* AArch64 detection through the kernel's hardware capabilities. */
#include <sys/auxv.h>

#include "cpu.h"

/* The bits of <asm/hwcap.h>, spelled out for older headers. */
#define HWCAP_ASIMD_BIT (1ul << 1)
#define HWCAP_ASIMDFHM_BIT (1ul << 23)
#define HWCAP_SVE_BIT (1ul << 22)
#define HWCAP2_SVEBF16_BIT (1ul << 12)
#define HWCAP2_BF16_BIT (1ul << 14)

uint32_t qkv_cpu_features(void)
{
    uint32_t f = 0;
    const unsigned long hwcap = getauxval(AT_HWCAP), hwcap2 = getauxval(AT_HWCAP2);
    if (hwcap & HWCAP_ASIMD_BIT)
        f |= QKV_CPU_ASIMD;
    if (hwcap & HWCAP_ASIMDFHM_BIT)
        f |= QKV_CPU_ASIMDFHM;
    if (hwcap & HWCAP_SVE_BIT)
        f |= QKV_CPU_SVE;
    if (hwcap2 & HWCAP2_BF16_BIT)
        f |= QKV_CPU_BF16;
    if (hwcap2 & HWCAP2_SVEBF16_BIT)
        f |= QKV_CPU_SVEBF16;
    return f;
}

qkv_cpu_caches qkv_cpu_cache_sizes(void)
{
    return qkv_cpu_cache_sizes_sysfs();
}

qkv_cpu_traits qkv_cpu_family_traits(void)
{
    return (qkv_cpu_traits){0};
}

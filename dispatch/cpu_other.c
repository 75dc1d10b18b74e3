/* Any other architecture: no feature qkv uses, the scalar reference only. */
#include "cpu.h"

uint32_t qkv_cpu_features(void)
{
    return 0;
}

qkv_cpu_caches qkv_cpu_cache_sizes(void)
{
    return qkv_cpu_cache_sizes_sysfs();
}

qkv_cpu_traits qkv_cpu_family_traits(void)
{
    return (qkv_cpu_traits){0};
}

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

int qkv_cpu_bf16_dot_half_rate(void)
{
    return 0;   /* no AVX512_BF16 here */
}

/* Any other architecture: no feature qkv uses, the scalar reference only. */
#include "cpu.h"

uint32_t qkv_cpu_features(void)
{
    return 0;
}

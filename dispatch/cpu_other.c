/* Any other architecture: the scalar reference only. */
#include "cpu.h"
#include "qkv.h"

unsigned qkv_cpu_isa_mask(void)
{
    return 1u << QKV_ISA_SCALAR;
}

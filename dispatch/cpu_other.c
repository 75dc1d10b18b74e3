/* Any other architecture: the scalar reference only. */
#include "cpu.h"
#include "qkv.h"

unsigned qkv_cpu_isa_mask(void)
{
    return 1u << QKV_ISA_SCALAR;
}

const char *qkv_cpu_isa_reason(qkv_isa isa)
{
    return isa == QKV_ISA_SCALAR ? NULL : "no SIMD ISA is known for this architecture";
}

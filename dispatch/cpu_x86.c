/*
 * x86-64 detection. A CPUID bit only says the CPU has the instructions; the
 * OS must also save the wider registers on a context switch, which XCR0
 * (read with XGETBV, allowed once CPUID says OSXSAVE) tells.
 */
#include <cpuid.h>
#include <stdint.h>

#include "cpu.h"
#include "qkv.h"

#ifdef __AVX__
#error "dispatch is built for the baseline: no ISA flags here"
#endif

/* XCR0 bits: SSE and AVX (YMM upper halves) state; opmask, ZMM upper
   halves of 0-15 and ZMM 16-31. */
#define XCR0_YMM 0x06u
#define XCR0_ZMM 0xe6u

static uint64_t xgetbv0(void)
{
    uint32_t lo, hi;
    /* The instruction's bytes, so that no -mxsave is needed here. */
    __asm__ volatile(".byte 0x0f, 0x01, 0xd0" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

unsigned qkv_cpu_isa_mask(void)
{
    unsigned mask = 1u << QKV_ISA_SCALAR;
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d))
        return mask;
    const int fma = (c >> 12) & 1, osxsave = (c >> 27) & 1;
    const int avx = (c >> 28) & 1, f16c = (c >> 29) & 1;
    if (!osxsave || !avx)
        return mask;
    const uint64_t xcr0 = xgetbv0();
    if ((xcr0 & XCR0_YMM) != XCR0_YMM)
        return mask;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d))
        return mask;
    const int avx2 = (b >> 5) & 1;
    const int avx512f = (b >> 16) & 1, avx512dq = (b >> 17) & 1;
    const int avx512bw = (b >> 30) & 1, avx512vl = (b >> 31) & 1;
    if (!(avx2 && fma && f16c))
        return mask;
    mask |= 1u << QKV_ISA_AVX2;
    /* Levels are monotonic: AVX-512 is offered only on top of AVX2. */
    if (avx512f && avx512dq && avx512bw && avx512vl && (xcr0 & XCR0_ZMM) == XCR0_ZMM)
        mask |= 1u << QKV_ISA_AVX512;
    return mask;
}

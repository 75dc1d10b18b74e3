/*
 * x86-64 detection. A CPUID bit only says the CPU has the instructions; the
 * OS must also save the wider registers on a context switch, which XCR0
 * (read with XGETBV, allowed once CPUID says OSXSAVE) tells.
 */
#include <cpuid.h>
#include <stdint.h>

#include "cpu.h"

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

uint32_t qkv_cpu_features(void)
{
    uint32_t f = 0;
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d))
        return f;
    const int osxsave = (c >> 27) & 1;
    if ((c >> 12) & 1)
        f |= QKV_CPU_FMA;
    if ((c >> 29) & 1)
        f |= QKV_CPU_F16C;
    if (osxsave) {
        const uint64_t xcr0 = xgetbv0();
        if ((xcr0 & XCR0_YMM) == XCR0_YMM && ((c >> 28) & 1))
            f |= QKV_CPU_OS_YMM;
        if ((xcr0 & XCR0_ZMM) == XCR0_ZMM)
            f |= QKV_CPU_OS_ZMM;
    }
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d))
        return f;
    if ((b >> 5) & 1)
        f |= QKV_CPU_AVX2;
    if ((b >> 16) & 1)
        f |= QKV_CPU_AVX512F;
    if ((b >> 17) & 1)
        f |= QKV_CPU_AVX512DQ;
    if ((b >> 30) & 1)
        f |= QKV_CPU_AVX512BW;
    if ((b >> 31) & 1)
        f |= QKV_CPU_AVX512VL;
    if ((d >> 24) & 1)
        f |= QKV_CPU_AMX_TILE;
    if ((d >> 22) & 1)
        f |= QKV_CPU_AMX_BF16;
    if (__get_cpuid_count(7, 1, &a, &b, &c, &d) && ((a >> 5) & 1))
        f |= QKV_CPU_AVX512BF16;
    return f;
}

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

const char *qkv_cpu_isa_reason(qkv_isa isa)
{
    if (isa == QKV_ISA_SCALAR)
        return NULL;
    if (isa != QKV_ISA_AVX2 && isa != QKV_ISA_AVX512)
        return "not an x86-64 ISA";
    /* The same tests as qkv_cpu_isa_mask, in its order, naming the first
       that fails. */
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d))
        return "the CPU has no CPUID leaf 1";
    if (!((c >> 28) & 1))
        return "the CPU lacks AVX (CPUID.1:ECX bit 28)";
    if (!((c >> 27) & 1))
        return "the OS has not enabled XSAVE (CPUID.1:ECX bit 27 OSXSAVE is 0)";
    if ((xgetbv0() & XCR0_YMM) != XCR0_YMM)
        return "the OS does not save the YMM registers (XCR0 bits 1-2 not both set)";
    const int fma = (c >> 12) & 1, f16c = (c >> 29) & 1;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d))
        return "the CPU has no CPUID leaf 7";
    if (!((b >> 5) & 1))
        return "the CPU lacks AVX2 (CPUID.7.0:EBX bit 5)";
    if (!fma)
        return "the CPU lacks FMA (CPUID.1:ECX bit 12)";
    if (!f16c)
        return "the CPU lacks F16C (CPUID.1:ECX bit 29)";
    if (isa == QKV_ISA_AVX2)
        return NULL;
    if (!((b >> 16) & 1))
        return "the CPU lacks AVX512F (CPUID.7.0:EBX bit 16)";
    if (!((b >> 17) & 1))
        return "the CPU lacks AVX512DQ (CPUID.7.0:EBX bit 17)";
    if (!((b >> 30) & 1))
        return "the CPU lacks AVX512BW (CPUID.7.0:EBX bit 30)";
    if (!((b >> 31) & 1))
        return "the CPU lacks AVX512VL (CPUID.7.0:EBX bit 31)";
    if ((xgetbv0() & XCR0_ZMM) != XCR0_ZMM)
        return "the OS does not save the ZMM and opmask registers (XCR0 bits 5-7 not all set)";
    return NULL;
}

/*
 * x86-64 detection. A CPUID bit only says the CPU has the instructions; the
 * OS must also save the wider registers on a context switch, which XCR0
 * (read with XGETBV, allowed once CPUID says OSXSAVE) tells.
 */
#include <cpuid.h>
#include <stdint.h>
#include <string.h>
#ifdef __linux__
#include <sys/syscall.h>
#include <unistd.h>
#endif

#include "cpu.h"

#ifdef __AVX__
#error "dispatch is built for the baseline: no ISA flags here"
#endif

/* XCR0 bits: SSE and AVX (YMM upper halves) state; opmask, ZMM upper
   halves of 0-15 and ZMM 16-31. */
#define XCR0_YMM 0x06u
#define XCR0_ZMM 0xe6u
/* AMX tile configuration and tile data state. */
#define XCR0_AMX 0x60000u

/* Linux gives a process the 8 KiB of AMX tile data state only when asked
   (arch_prctl ARCH_REQ_XCOMP_PERM for XFEATURE_XTILEDATA, Linux 5.16+);
   without it the first tile instruction kills the process with SIGILL. A
   kernel that refuses, or that is too old to know the request, leaves AMX
   off. Other systems: no known way to ask, so AMX stays off. */
static int amx_permitted(void)
{
#if defined(__linux__) && defined(SYS_arch_prctl)
    const long ARCH_REQ_XCOMP_PERM = 0x1023, XFEATURE_XTILEDATA = 18;
    return syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) == 0;
#else
    return 0;
#endif
}

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
    const int amx = (f & QKV_CPU_AMX_TILE) && (f & QKV_CPU_AMX_BF16);
    if (__get_cpuid_count(7, 1, &a, &b, &c, &d) && ((a >> 5) & 1))
        f |= QKV_CPU_AVX512BF16;
    /* Asked once (the registry caches these bits), and only of a CPU that
       has the tiles and an OS that enabled their state in XCR0. */
    if (amx && osxsave && (xgetbv0() & XCR0_AMX) == XCR0_AMX && amx_permitted())
        f |= QKV_CPU_OS_AMX;
    return f;
}

/* The data caches one core sees, from CPUID's deterministic cache leaf:
   leaf 4 on Intel, 0x8000001D on AMD (with topology extensions). Each
   subleaf describes one cache: type (EAX 4:0, 1 data, 3 unified), level
   (EAX 7:5), and size = ways · partitions · line size · sets. */
static qkv_cpu_caches cache_leaves(void)
{
    qkv_cpu_caches c = {0, 0, 0};
    unsigned a, b, cx, d, leaf = 4;
    if (__get_cpuid(0x80000000, &a, &b, &cx, &d) && a >= 0x8000001D &&
        __get_cpuid(0x80000001, &a, &b, &cx, &d) && ((cx >> 22) & 1))
        leaf = 0x8000001D;
    else if (!__get_cpuid(0, &a, &b, &cx, &d) || a < 4)
        return qkv_cpu_cache_sizes_sysfs();
    for (unsigned i = 0; i < 16; i++) {
        if (!__get_cpuid_count(leaf, i, &a, &b, &cx, &d))
            break;
        const unsigned type = a & 31, level = (a >> 5) & 7;
        if (!type)
            break;
        const size_t size = (size_t)((b >> 22) + 1) * (((b >> 12) & 1023) + 1) *
                            ((b & 4095) + 1) * ((size_t)cx + 1);
        if (level == 1 && type == 1)
            c.l1d = size;
        else if (level == 2 && type == 3)
            c.l2 = size;
        else if (level == 3 && type == 3)
            c.l3 = size;
    }
    if (!c.l1d || !c.l2)
        return qkv_cpu_cache_sizes_sysfs();
    return c;
}

qkv_cpu_caches qkv_cpu_cache_sizes(void)
{
    return cache_leaves();
}

/* Whether CPUID leaf 0's vendor string (EBX, EDX, ECX: its bytes in
   order on x86) is `name`. */
static int vendor_is(const unsigned vendor[3], const char name[12])
{
    return memcmp(vendor, name, 12) == 0;
}

int qkv_cpu_x86_fma_256_bit(const unsigned vendor[3], unsigned leaf1_eax, unsigned leaf7_ebx)
{
    const unsigned base = (leaf1_eax >> 8) & 0xf;
    const unsigned family = base + (base == 0xf ? (leaf1_eax >> 20) & 0xff : 0);
    return vendor_is(vendor, "AuthenticAMD") && family == 0x19 && ((leaf7_ebx >> 16) & 1);
}

/* Intel's traits were all measured on Xeons of the Sapphire and Emerald
   Rapids class, and are assumed for Intel's other cores; fma_256_bit was
   measured on Zen 4 only (Zen 5's FMA units are 512 bits wide). */
qkv_cpu_traits qkv_cpu_family_traits(void)
{
    unsigned a, b, c, d;
    if (!__get_cpuid(0, &a, &b, &c, &d))
        return (qkv_cpu_traits){0};
    const unsigned vendor[3] = {b, d, c};
    const int i = vendor_is(vendor, "GenuineIntel");
    int fma_256_bit = 0;
    if (a >= 7) {
        unsigned eax1;
        __cpuid(1, eax1, b, c, d);
        __cpuid_count(7, 0, a, b, c, d);
        fma_256_bit = qkv_cpu_x86_fma_256_bit(vendor, eax1, b);
    }
    return (qkv_cpu_traits){.prefetch_l2 = i, .bf16_dot_half_rate = i, .wide_converts_on_fma_ports = i,
                            .fma_256_bit = fma_256_bit};
}

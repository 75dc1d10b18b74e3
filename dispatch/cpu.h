/*
 * CPU features, detected once per architecture (dispatch/cpu_<arch>.c). A
 * feature bit is one thing the CPU and the OS provide; an ISA of qkv may
 * need several (dispatch/isa_list.h), so the two are kept apart.
 */
#ifndef QKV_CPU_H
#define QKV_CPU_H

#include <stddef.h>
#include <stdint.h>

enum {
    /* x86-64: instruction sets (CPUID) ... */
    QKV_CPU_AVX2 = 1u << 0,
    QKV_CPU_FMA = 1u << 1,
    QKV_CPU_F16C = 1u << 2,
    QKV_CPU_AVX512F = 1u << 3,
    QKV_CPU_AVX512BW = 1u << 4,
    QKV_CPU_AVX512DQ = 1u << 5,
    QKV_CPU_AVX512VL = 1u << 6,
    QKV_CPU_AVX512BF16 = 1u << 7,
    QKV_CPU_AMX_TILE = 1u << 8,
    QKV_CPU_AMX_BF16 = 1u << 9,
    /* ... and the register state the OS saves (XCR0, arch_prctl) */
    QKV_CPU_OS_YMM = 1u << 10,
    QKV_CPU_OS_ZMM = 1u << 11,
    QKV_CPU_OS_AMX = 1u << 12,
    /* AArch64 (AT_HWCAP, AT_HWCAP2) */
    QKV_CPU_ASIMD = 1u << 16,
    QKV_CPU_SVE = 1u << 17,
    QKV_CPU_ASIMDFHM = 1u << 18,
    QKV_CPU_BF16 = 1u << 19,
    QKV_CPU_SVEBF16 = 1u << 20,
};

/* The features of this CPU and OS. Called once; the caller caches it. */
uint32_t qkv_cpu_features(void);

/* The data caches one core sees, in bytes (0: not known): what the block
   sizes of the kernels are chosen from. */
typedef struct qkv_cpu_caches {
    size_t l1d, l2, l3;
} qkv_cpu_caches;

qkv_cpu_caches qkv_cpu_cache_sizes(void);

/* What was measured to differ between core families beyond their features
   and caches (x86: Intel's cores against AMD's, told apart by CPUID's
   vendor string). Read once, at the registry's init. */
typedef struct qkv_cpu_traits {
    /* Software prefetches of a stream from memory pay best into L2 (Intel
       cores), not into L1 or replaced by a sweep of loads (AMD): see the
       decode feed in kernels/simd/attention.h. */
    int prefetch_l2;
    /* AVX512_BF16's vdpbf16ps issues at half the rate of an f32 FMA
       (Intel's cores: the bench's probes, one core, 88 against 179 GFLOP/s
       on an Emerald Rapids class Xeon, 121 against 243 on Sapphire Rapids;
       Zen 5 issues both at one rate), so its bf16 tiles gain nothing over
       the FMAs they replace: the registry then does not pick avx512bf16 as
       best. */
    int bf16_dot_half_rate;
    /* 512-bit conversions (vcvtph2ps, the widening moves) issue on the two
       ports that also do the FMAs (Intel's cores; Zen 5 runs them beside
       its FMAs), so a 16-bit V that the prefill reads once per panel of
       rows is better converted once per tile: see pv_tile in
       kernels/simd/attention.h. */
    int wide_converts_on_fma_ports;
    /* The FMA units are 256 bits wide: an AVX-512 FMA issues as two halves
       (AMD Zen 4), so AVX2's arithmetic is as fast as AVX-512's and the
       decode feed treats their jobs alike (see feed_start in
       kernels/simd/attention.h). */
    int fma_256_bit;
} qkv_cpu_traits;

qkv_cpu_traits qkv_cpu_family_traits(void);

/* x86: fma_256_bit from CPUID's answers: the vendor string (leaf 0's EBX,
   EDX, ECX), leaf 1's EAX and leaf 7's EBX. AMD family 0x19 (Zen 3 and
   Zen 4) with AVX-512F (Zen 4 only). Apart from reading them, for
   tests/cpu_traits.c. */
int qkv_cpu_x86_fma_256_bit(const unsigned vendor[3], unsigned leaf1_eax, unsigned leaf7_ebx);

/* The same read from Linux's sysfs (cpu0); zeros where it says nothing. */
qkv_cpu_caches qkv_cpu_cache_sizes_sysfs(void);

/* A short name for one feature bit ("avx2", "OS ZMM state", ...); NULL for
   an unknown bit. */
const char *qkv_cpu_feature_name(uint32_t bit);

#endif

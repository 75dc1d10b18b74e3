/* The CPU family traits decoded from fixed CPUID answers (dispatch/cpu.h):
   which cores count as having 256-bit FMA units, whatever CPU runs the
   test. Each signature is leaf 1's EAX as that core reports it (family,
   model and stepping), with or without leaf 7's AVX-512F bit. */
#include <stdio.h>

#include "cpu.h"

static const unsigned amd[3] = {0x68747541, 0x69746e65, 0x444d4163};     /* AuthenticAMD */
static const unsigned intel[3] = {0x756e6547, 0x49656e69, 0x6c65746e};   /* GenuineIntel */
#define AVX512F (1u << 16)

int main(void)
{
    static const struct {
        const char *core;
        const unsigned *vendor;
        unsigned eax1, ebx7;
        int want;
    } cases[] = {
        {"Zen 4 (EPYC Genoa, family 0x19 model 0x11)", amd, 0x00A10F11, AVX512F, 1},
        {"Zen 4 (Ryzen 7000, family 0x19 model 0x61)", amd, 0x00A60F12, AVX512F, 1},
        {"Zen 3 (EPYC Milan, family 0x19 model 0x01, no AVX-512)", amd, 0x00A00F11, 0, 0},
        {"Zen 5 (EPYC Turin, family 0x1A model 0x02)", amd, 0x00B00F21, AVX512F, 0},
        {"Zen 2 (family 0x17)", amd, 0x00830F10, 0, 0},
        {"Sapphire Rapids (family 6 model 0x8F)", intel, 0x000806F8, AVX512F, 0},
        {"Intel with a Zen 4 signature", intel, 0x00A10F11, AVX512F, 0},
    };
    int fails = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const int got = qkv_cpu_x86_fma_256_bit(cases[i].vendor, cases[i].eax1, cases[i].ebx7);
        if (got != cases[i].want) {
            printf("FAIL %s: fma_256_bit %d, want %d\n", cases[i].core, got, cases[i].want);
            fails++;
        }
    }
    const qkv_cpu_traits t = qkv_cpu_family_traits();
    printf("%s: %zu cores decoded; this CPU: fma_256_bit %d, prefetch_l2 %d\n",
           fails ? "FAIL" : "ok", sizeof cases / sizeof cases[0], t.fma_256_bit, t.prefetch_l2);
    return fails != 0;
}

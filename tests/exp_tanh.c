/*
 * The fused kernels' inline exp and tanh (v_exp, v_tanh,
 * kernels/simd/exp_tanh.h): each within 1 ULP of the exact value, exp over
 * every float x from -104 to 89 (subnormal results in units of 2^-149),
 * tanh over every finite float; exp keeps NaN and gives 0 (+0) for -Inf
 * and below -104, Inf for +Inf and above 89; tanh keeps NaN and ±0, gives
 * ±1 for ±Inf, and is odd. On x86, on AVX2's vocabulary and AVX-512's
 * natively where the CPU has them, and on the C emulation of AVX-512
 * wherever the test build has it; on AArch64, on NEON's and, where the
 * CPU has SVE, on SVE's. "skipped" says which did not run. Every
 * vocabulary that runs must give the same bits on every value (x86's and
 * AArch64's agree too: the same hash over every 331st float, 5 December
 * 2026, Zen 5 and qemu-aarch64).
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define BOUND 1.0   /* ULP; measured over every float: exp 0.939, tanh 0.959 */

/* One build of tests/exp_tanh_check.c per vocabulary (those not built are
   declared, never called). */
typedef double check_fn(uint32_t step, long *checked, long *bad, double *worst_tanh,
                        uint64_t *bits);
check_fn exp_check_avx2, exp_check_avx512, exp_check_emu, exp_check_neon, exp_check_sve;
#ifdef QKV_TEST_EXP_SVE
#include <sys/auxv.h>
#ifndef HWCAP_SVE
#define HWCAP_SVE (1UL << 22)
#endif
#endif

/* The first build that ran: every other must give the same bits. */
static const char *first_name;
static uint64_t first_bits;

/* Runs one build of the check where this CPU can (`here`), else says
   why not; returns 1 on a failure. */
static __attribute__((unused)) int run_check(const char *what, int here, const char *missing,
                                             check_fn *check, uint32_t step, int *ran)
{
    if (!here) {
        printf("exp_tanh %s: skipped: %s\n", what, missing);
        return 0;
    }
    long checked, bad;
    double worst_tanh;
    uint64_t bits;
    const double worst = check(step, &checked, &bad, &worst_tanh, &bits);
    const int same = !first_name || bits == first_bits;
    const int ok = worst <= BOUND && worst_tanh <= BOUND && bad == 0 && same;
    printf("exp_tanh %s: max error exp %.3f, tanh %.3f ULP (bound %.1f) over %ld values, %ld "
           "special cases wrong, bits %s%s: %s\n",
           what, worst, worst_tanh, BOUND, checked, bad,
           !first_name ? "the first" : same ? "the same as " : "NOT the same as ",
           first_name ? first_name : "", ok ? "ok" : "FAILED");
    if (!first_name) {
        first_name = what;
        first_bits = bits;
    }
    (*ran)++;
    return ok ? 0 : 1;
}

int main(int argc, char **argv)
{
    /* Every 113th bit pattern (about 20 million floats for exp, 38 million
       for tanh); --quick: every 997th. */
    const uint32_t step = argc > 1 && strcmp(argv[1], "--quick") == 0 ? 997u : 113u;
    int fails = 0, ran = 0;
    (void)step;
#if defined(QKV_TEST_EXP_AVX2) || defined(QKV_TEST_EXP_AVX512) || defined(QKV_TEST_EXP_EMU)
    __builtin_cpu_init();
    /* The AVX2 vocabulary and the emulation are AVX2 and FMA code. */
    const int avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    (void)avx2;
#endif
#ifdef QKV_TEST_EXP_AVX2
    fails += run_check("avx2", avx2, "no avx2 and fma", exp_check_avx2, step, &ran);
#endif
#ifdef QKV_TEST_EXP_AVX512
    fails += run_check("avx512", __builtin_cpu_supports("avx512f"), "no avx512f",
                       exp_check_avx512, step, &ran);
#endif
#ifdef QKV_TEST_EXP_EMU
    fails += run_check("avx512 emulated", avx2, "no avx2 and fma", exp_check_emu, step, &ran);
#endif
#ifdef QKV_TEST_EXP_NEON
    fails += run_check("neon", 1, "", exp_check_neon, step, &ran);   /* AArch64's baseline */
#endif
#ifdef QKV_TEST_EXP_SVE
    fails += run_check("sve", (getauxval(AT_HWCAP) & HWCAP_SVE) != 0, "no sve", exp_check_sve, step,
                       &ran);
#endif
#if !defined(QKV_TEST_EXP_AVX2) && !defined(QKV_TEST_EXP_AVX512) && !defined(QKV_TEST_EXP_EMU) && \
    !defined(QKV_TEST_EXP_NEON) && !defined(QKV_TEST_EXP_SVE)
    printf("exp_tanh: skipped: no SIMD kernels are built\n");
#endif
    printf("%d passed, %d failed\n", ran - fails, fails);
    return fails != 0;
}

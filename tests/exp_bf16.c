/*
 * The inline exp of BF16 mode (v_exp_bf16, kernels/avx512/vocab.h): within
 * 2.4e-7 of e^x relative wherever e^x is a normal float, NaN kept, 0 for
 * -Inf and below -104, Inf for +Inf and above 89, subnormal results within
 * one subnormal step. Natively where the CPU has AVX-512F, on the C
 * emulation of AVX-512 wherever the test build has it; "skipped" says
 * which did not run.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define BOUND 2.4e-7

#ifdef QKV_TEST_EXP_NATIVE
double exp_bf16_check_native(uint32_t step, long *checked, long *bad);
#endif
#ifdef QKV_TEST_EXP_EMU
double exp_bf16_check_emu(uint32_t step, long *checked, long *bad);
#endif

/* Runs one build of the check where this CPU can (`here`), else says
   why not; returns 1 on a failure. */
static __attribute__((unused)) int run_check(const char *what, int here, const char *missing,
                                             double (*check)(uint32_t, long *, long *),
                                             uint32_t step, int *ran)
{
    if (!here) {
        printf("exp_bf16 %s: skipped: %s\n", what, missing);
        return 0;
    }
    long checked, bad;
    const double worst = check(step, &checked, &bad);
    const int ok = worst <= BOUND && bad == 0;
    printf("exp_bf16 %s: max relative error %.3g (bound %.1e) over %ld values, %ld special "
           "cases wrong: %s\n",
           what, worst, BOUND, checked, bad, ok ? "ok" : "FAILED");
    (*ran)++;
    return ok ? 0 : 1;
}

int main(int argc, char **argv)
{
    /* Every 61st bit pattern (about 36 million floats); --quick: every 997th. */
    const uint32_t step = argc > 1 && strcmp(argv[1], "--quick") == 0 ? 997u : 61u;
    int fails = 0, ran = 0;
    (void)step;
#if defined(QKV_TEST_EXP_NATIVE) || defined(QKV_TEST_EXP_EMU)
    __builtin_cpu_init();
#endif
#ifdef QKV_TEST_EXP_NATIVE
    fails += run_check("native", __builtin_cpu_supports("avx512f"), "no avx512f",
                       exp_bf16_check_native, step, &ran);
#endif
#ifdef QKV_TEST_EXP_EMU
    /* The emulation is AVX2 and FMA code (tests/meson.build's emu_flags). */
    fails += run_check("emulated", __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"),
                       "no avx2 and fma", exp_bf16_check_emu, step, &ran);
#endif
#if !defined(QKV_TEST_EXP_NATIVE) && !defined(QKV_TEST_EXP_EMU)
    printf("exp_bf16: skipped: neither AVX-512 nor its emulation is built\n");
#endif
    printf("%d passed, %d failed\n", ran - fails, fails);
    return fails != 0;
}

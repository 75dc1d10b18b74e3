/*
 * One kernel table per ISA, filled once: every table starts as the scalar
 * reference, then each ISA level starts from the level below it and
 * overrides what it implements (so an ISA that lacks a kernel runs the best
 * one below it). All the wiring of the ISA ladder is the table `levels`.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu.h"
#include "dispatch.h"
#include "error.h"
#include "qkv_config.h"

static const char *const isa_names[QKV_ISA_COUNT] = {
    [QKV_ISA_SCALAR] = "scalar",
    [QKV_ISA_AVX2] = "avx2",
    [QKV_ISA_AVX512] = "avx512",
    [QKV_ISA_NEON] = "neon",
    [QKV_ISA_SVE] = "sve",
};

static const struct level {
    qkv_isa isa;
    qkv_isa below;
    void (*init)(qkv_kernels *k);
} levels[] = {
    {QKV_ISA_SCALAR, QKV_ISA_SCALAR, qkv_kernels_init_scalar},
#if QKV_HAVE_AVX2
    {QKV_ISA_AVX2, QKV_ISA_SCALAR, qkv_kernels_init_avx2},
#endif
#if QKV_HAVE_AVX512
    {QKV_ISA_AVX512, QKV_ISA_AVX2, qkv_kernels_init_avx512},
#endif
#if QKV_HAVE_NEON
    {QKV_ISA_NEON, QKV_ISA_SCALAR, qkv_kernels_init_neon},
#endif
#if QKV_HAVE_SVE
    {QKV_ISA_SVE, QKV_ISA_NEON, qkv_kernels_init_sve},
#endif
};

static pthread_once_t once = PTHREAD_ONCE_INIT;
static qkv_kernels tables[QKV_ISA_COUNT];
static unsigned supported;        /* bit per ISA: compiled in and runnable */
static atomic_int current;        /* the process-wide choice, a qkv_isa */
static char env_choice[40];       /* QKV_ISA as read at init, for error details */

static int isa_by_name(const char *name, qkv_isa *out)
{
    for (int i = 0; i < QKV_ISA_COUNT; i++) {
        if (strcmp(name, isa_names[i]) == 0) {
            *out = (qkv_isa)i;
            return 1;
        }
    }
    return 0;
}

/* The highest level in `levels` (they climb) among the supported ISAs. */
static qkv_isa best_supported(void)
{
    qkv_isa best = QKV_ISA_SCALAR;
    for (size_t i = 0; i < sizeof levels / sizeof levels[0]; i++)
        if ((supported >> levels[i].isa) & 1u)
            best = levels[i].isa;
    return best;
}

static qkv_isa choice_from_environment(void)
{
    const char *name = getenv("QKV_ISA");
    if (!name || !*name)
        return best_supported();
    snprintf(env_choice, sizeof env_choice, "%s", name);
    qkv_isa isa;
    if (!isa_by_name(name, &isa))
        return QKV_ISA_NONE;
    return isa;   /* maybe unsupported: the entry points then refuse */
}

static void init(void)
{
    const unsigned cpu = qkv_cpu_isa_mask();
    for (size_t i = 0; i < QKV_ISA_COUNT; i++)
        qkv_kernels_init_scalar(&tables[i]);
    supported = 0;
    for (size_t i = 0; i < sizeof levels / sizeof levels[0]; i++) {
        const qkv_isa isa = levels[i].isa;
        /* An ISA's init lives in that ISA's file and is compiled with its
           flags (the compiler may use them even to fill a table), so it is
           called only on a CPU that can run it. */
        if (!((cpu >> isa) & 1u))
            continue;
        tables[isa] = tables[levels[i].below];
        levels[i].init(&tables[isa]);
        supported |= 1u << isa;
    }
    atomic_store(&current, choice_from_environment());
}

static void ensure_init(void)
{
    pthread_once(&once, init);
}

const char *qkv_isa_name(qkv_isa isa)
{
    if (isa == QKV_ISA_NONE)
        return "none";
    if (isa < 0 || isa >= QKV_ISA_COUNT)
        return "unknown";
    return isa_names[isa];
}

qkv_status qkv_isa_from_name(const char *name, qkv_isa *out)
{
    if (!name || !out)
        return qkv_fail(QKV_ERR_ARG, "qkv_isa_from_name: %s is NULL", !name ? "name" : "out");
    if (!isa_by_name(name, out))
        return qkv_fail(QKV_ERR_UNSUPPORTED,
                        "\"%.32s\": unknown ISA name (known: " QKV_ISA_NAMES_LIST ")", name);
    return QKV_OK;
}

int qkv_isa_supported(qkv_isa isa)
{
    ensure_init();
    return isa >= 0 && isa < QKV_ISA_COUNT && ((supported >> isa) & 1u);
}

qkv_isa qkv_isa_best(void)
{
    ensure_init();
    return best_supported();
}

qkv_status qkv_isa_set(qkv_isa isa)
{
    if (!qkv_isa_supported(isa))
        return qkv_fail_isa("qkv_isa_set", isa);
    atomic_store(&current, isa);
    return QKV_OK;
}

qkv_isa qkv_isa_get(void)
{
    ensure_init();
    return (qkv_isa)atomic_load(&current);
}

const char *qkv_isa_env_choice(void)
{
    ensure_init();
    return env_choice;
}

const qkv_kernels *qkv_kernels_for(qkv_isa isa)
{
    return qkv_isa_supported(isa) ? &tables[isa] : NULL;
}

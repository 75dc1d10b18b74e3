/*
 * The registry: one context per ISA, filled once. Each ISA's context starts
 * as a copy of its parent's and its own init overrides what it implements
 * (so an ISA that lacks a kernel runs the best one below it). Everything
 * about the ladder comes from dispatch/isa_list.h; which ISAs are compiled
 * in comes from meson (QKV_BUILT_ISAS in qkv_config.h).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "isa_list.h"
#include "qkv_config.h"
#include "registry.h"

/* The public enum mirrors the list, in order. */
enum { LIST_INDEX_BASE = -1,
#define X(E, n, P, f) LIST_INDEX_##E,
       QKV_ISA_LIST(X)
#undef X
       LIST_COUNT };
#define X(E, n, P, f) _Static_assert((int)LIST_INDEX_##E == (int)QKV_ISA_##E, "isa_list.h order");
QKV_ISA_LIST(X)
#undef X
_Static_assert((int)LIST_COUNT == (int)QKV_ISA_COUNT, "isa_list.h and qkv_isa differ");

typedef void (*ctx_init_fn)(qkv_ctx *c);

static const struct isa_row {
    const char *name;
    qkv_isa parent;
    uint32_t features;            /* its own, without the parent's */
} rows[QKV_ISA_COUNT] = {
#define X(E, n, P, f) [QKV_ISA_##E] = {#n, QKV_ISA_##P, (f)},
    QKV_ISA_LIST(X)
#undef X
};

/* The inits of the ISAs compiled into this build. */
#define BUILT(n) void qkv_ctx_init_##n(qkv_ctx *c);
QKV_BUILT_ISAS(BUILT)
#undef BUILT
static ctx_init_fn built_init(qkv_isa isa)
{
    const char *name = rows[isa].name;
#define BUILT(n)                     \
    if (strcmp(name, #n) == 0)       \
        return qkv_ctx_init_##n;
    QKV_BUILT_ISAS(BUILT)
#undef BUILT
    return NULL;
}

static pthread_once_t once = PTHREAD_ONCE_INIT;
static qkv_ctx ctxs[QKV_ISA_COUNT];
static uint32_t cpu;              /* qkv_cpu_features() */
static unsigned supported;        /* bit per ISA: compiled in and runnable */
static qkv_cpu_traits traits;     /* qkv_cpu_family_traits(), read once */
static atomic_int current;        /* the process-wide choice, a qkv_isa */
static char env_choice[40];       /* QKV_ISA as read at init, for error details */

static int isa_by_name(const char *name, qkv_isa *out)
{
    for (int i = 0; i < QKV_ISA_COUNT; i++) {
        if (strcmp(name, rows[i].name) == 0) {
            *out = (qkv_isa)i;
            return 1;
        }
    }
    return 0;
}

/* Everything an ISA needs: its features and its ancestors'. */
static uint32_t needs(qkv_isa isa)
{
    uint32_t f = rows[isa].features;
    for (qkv_isa a = isa; a != rows[a].parent; a = rows[a].parent)
        f |= rows[rows[a].parent].features;
    return f;
}

static int built(qkv_isa isa)
{
    for (qkv_isa a = isa;; a = rows[a].parent) {
        if (!built_init(a))
            return 0;
        if (a == rows[a].parent)
            return 1;
    }
}

/* Why a supported ISA is not the best even where it is the deepest: its
   instructions gain nothing on this CPU (NULL: it would be chosen). */
static const char *passed_over(qkv_isa isa)
{
    if (isa == QKV_ISA_AVX512BF16 && traits.bf16_dot_half_rate)
        return "vdpbf16ps issues at half the FMA rate on this CPU: avx512 is as fast for "
               "f32 data and faster for bf16 (QKV_ISA=avx512bf16 still runs it)";
    return NULL;
}

/* The best supported ISA: the deepest in the ladder (an ISA is better than
   its parent) that is not passed over; between branches of other
   architectures the later row. */
static int depth(qkv_isa isa)
{
    int n = 0;
    for (qkv_isa a = isa; a != rows[a].parent; a = rows[a].parent)
        n++;
    return n;
}

static qkv_isa best_supported(void)
{
    qkv_isa best = QKV_ISA_SCALAR;
    for (int i = 0; i < QKV_ISA_COUNT; i++)
        if (((supported >> i) & 1u) && !passed_over((qkv_isa)i) && depth((qkv_isa)i) >= depth(best))
            best = (qkv_isa)i;
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
    cpu = qkv_cpu_features();
    traits = qkv_cpu_family_traits();
    const qkv_cpu_caches cc = qkv_cpu_cache_sizes();
    const qkv_cpu_view view = {cc.l1d, cc.l2, cc.l3, traits.prefetch_l2,
                               traits.wide_converts_on_fma_ports, traits.bf16_dot_half_rate,
                               traits.fma_256_bit};
    supported = 0;
    /* Rows come parent first, so a parent's context is ready in time. An
       ISA's init lives in that ISA's file and is compiled with its flags
       (the compiler may use them even to fill a table), so it is called
       only on a CPU that can run it. */
    for (int i = 0; i < QKV_ISA_COUNT; i++) {
        const qkv_isa isa = (qkv_isa)i;
        if (!built(isa) || (cpu & needs(isa)) != needs(isa))
            continue;
        if (isa != QKV_ISA_SCALAR)
            ctxs[isa] = ctxs[rows[isa].parent];
        ctxs[isa].cpu = view;
        built_init(isa)(&ctxs[isa]);
        ctxs[isa].isa = isa;
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
    return rows[isa].name;
}

qkv_status qkv_isa_from_name(const char *name, qkv_isa *out)
{
    if (!name || !out)
        return qkv_fail(QKV_ERR_ARG, "qkv_isa_from_name: %s is NULL", !name ? "name" : "out");
    if (!isa_by_name(name, out))
        return qkv_fail(QKV_ERR_UNSUPPORTED, "\"%.32s\": unknown ISA name (known: %s)", name,
                        qkv_isa_names_list());
    return QKV_OK;
}

const char *qkv_isa_names_list(void)
{
#define X(E, n, P, f) ", " #n
    static const char list[] = QKV_ISA_LIST(X);
#undef X
    return list + 2;
}

const char *qkv_isa_env_choice(void)
{
    ensure_init();
    return env_choice;
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

int qkv_isa_built(qkv_isa isa)
{
    return isa == QKV_ISA_SCALAR || (isa > 0 && isa < QKV_ISA_COUNT && built_init(isa) != NULL);
}

qkv_isa qkv_isa_parent(qkv_isa isa)
{
    return isa >= 0 && isa < QKV_ISA_COUNT ? rows[isa].parent : QKV_ISA_SCALAR;
}

const qkv_ctx *qkv_ctx_for(qkv_isa isa)
{
    return qkv_isa_supported(isa) ? &ctxs[isa] : NULL;
}

static const struct {
    uint32_t bit;
    const char *name, *why;       /* why: the reason an ISA lacking it gives */
} feature_names[] = {
#define CPU_BIT(bit, name, where) {bit, name, "the CPU lacks " name " (" where ")"}
    CPU_BIT(QKV_CPU_AVX2, "AVX2", "CPUID.7.0:EBX bit 5"),
    CPU_BIT(QKV_CPU_FMA, "FMA", "CPUID.1:ECX bit 12"),
    CPU_BIT(QKV_CPU_F16C, "F16C", "CPUID.1:ECX bit 29"),
    {QKV_CPU_OS_YMM, "OS_YMM",
     "the CPU lacks AVX, or the OS does not save the YMM registers (CPUID.1:ECX AVX, OSXSAVE; "
     "XCR0 bits 1-2)"},
    CPU_BIT(QKV_CPU_AVX512F, "AVX512F", "CPUID.7.0:EBX bit 16"),
    CPU_BIT(QKV_CPU_AVX512DQ, "AVX512DQ", "CPUID.7.0:EBX bit 17"),
    CPU_BIT(QKV_CPU_AVX512BW, "AVX512BW", "CPUID.7.0:EBX bit 30"),
    CPU_BIT(QKV_CPU_AVX512VL, "AVX512VL", "CPUID.7.0:EBX bit 31"),
    {QKV_CPU_OS_ZMM, "OS_ZMM", "the OS does not save the ZMM and opmask registers (XCR0 bits 5-7)"},
    CPU_BIT(QKV_CPU_AVX512BF16, "AVX512_BF16", "CPUID.7.1:EAX bit 5"),
    CPU_BIT(QKV_CPU_AMX_TILE, "AMX-TILE", "CPUID.7.0:EDX bit 24"),
    CPU_BIT(QKV_CPU_AMX_BF16, "AMX-BF16", "CPUID.7.0:EDX bit 22"),
    {QKV_CPU_OS_AMX, "OS_AMX", "the OS refused the AMX tile state (arch_prctl XTILEDATA)"},
    {QKV_CPU_ASIMD, "ASIMD", "the kernel reports no Advanced SIMD (AT_HWCAP bit ASIMD)"},
    {QKV_CPU_SVE, "SVE", "the CPU lacks SVE, or the kernel does not enable it (AT_HWCAP bit SVE)"},
    CPU_BIT(QKV_CPU_ASIMDFHM, "FHM", "AT_HWCAP bit ASIMDFHM"),
    CPU_BIT(QKV_CPU_BF16, "BF16", "AT_HWCAP2 bit BF16"),
    CPU_BIT(QKV_CPU_SVEBF16, "SVE BF16", "AT_HWCAP2 bit SVEBF16"),
#undef CPU_BIT
};

const char *qkv_cpu_feature_name(uint32_t bit)
{
    for (size_t i = 0; i < sizeof feature_names / sizeof feature_names[0]; i++)
        if (feature_names[i].bit == bit)
            return feature_names[i].name;
    return NULL;
}

const char *qkv_isa_passed_over_reason(qkv_isa isa)
{
    ensure_init();
    return qkv_isa_supported(isa) ? passed_over(isa) : NULL;
}

const char *qkv_isa_unsupported_reason(qkv_isa isa)
{
    if (isa < 0 || isa >= QKV_ISA_COUNT)
        return "no such ISA";
    if (qkv_isa_supported(isa))
        return NULL;
    if (!built(isa))
        return "not built into this library (another architecture, -Dsimd=disabled or "
               "-D<isa>=disabled, or the compiler cannot build it)";
    /* The first missing feature names the reason; the text is static. */
    const uint32_t missing = needs(isa) & ~cpu;
    for (size_t i = 0; i < sizeof feature_names / sizeof feature_names[0]; i++)
        if (missing & feature_names[i].bit)
            return feature_names[i].why;
    return "not supported here";
}

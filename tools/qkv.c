/*
 * qkv: the installed command-line tool.
 *
 *   qkv info     the CPU, the ISAs built in, which this CPU runs, which one
 *                is chosen, and why not the others
 *   qkv bench    one attention shape on every runnable ISA side by side
 *   qkv version
 *
 * Plain C over the library's public API, plus two internal functions it
 * links from libqkv.a: qkv_isa_unsupported_reason() (the "why not") and
 * the build's qkv_config.h. `qkv --help` is the reference; tools/qkv.1 is
 * the same as a man page.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

#include "cpu.h"
#include "phase.h"
#include "registry.h"
#include "probe.h"
#include "qkv.h"
#include "qkv_config.h"

#define EXIT_USAGE 2        /* bad command line */
#define EXIT_UNSUPPORTED 3  /* the dtype or shape is not supported by this build */
#define MAX_THREADS 1024    /* --threads */
#define MAX_REPEATS 64      /* --repeats: the medians are taken on the stack */

static const char usage_text[] =
    "usage: qkv info [--probe] [--json]\n"
    "       qkv bench [options]\n"
    "       qkv version\n"
    "       qkv --help\n"
    "\n"
    "qkv info\n"
    "  Prints the CPU, the ISAs built into this qkv, which of them this CPU and\n"
    "  OS can run (and, for each that it cannot, why: the missing CPUID or hwcap\n"
    "  bit, register state the OS does not save, or not built), and the ISA\n"
    "  qkv chooses (the best one, or the one QKV_ISA names).\n"
    "  --probe      also measure the single-core FMA peak of each runnable ISA\n"
    "               and the memory read bandwidth (a second or two)\n"
    "  --json       one JSON object on stdout instead of the text\n"
    "\n"
    "qkv bench\n"
    "  Runs one fused attention shape (qkv_attention) on every ISA this CPU\n"
    "  runs, side by side, on the same seeded random inputs in [-1, 1], and\n"
    "  prints per ISA: milliseconds per call (the median of the repeats),\n"
    "  GFLOP/s and its share of that ISA's measured FMA peak (times the\n"
    "  threads), GB/s of K and V read and its share of the measured read\n"
    "  bandwidth, the speed-up over scalar, and the largest absolute\n"
    "  difference from the scalar reference's output.\n"
    "  --heads Q[/KV]     query heads, and KV heads for GQA/MQA (default 32/8;\n"
    "                     Q alone means KV = Q)\n"
    "  --batch N          sequences (default 1)\n"
    "  --q-len N          query rows per sequence (default 1: decode)\n"
    "  --kv-len N         keys per sequence (default 4096)\n"
    "  --dim N            head_dim of Q and K (default 128)\n"
    "  --v-dim N          v_head_dim of V and O (default: --dim)\n"
    "  --dtype T          storage of K and V: f32 (default), f16, bf16, q8_0,\n"
    "                     q4_0; made from f32 with qkv_convert. Q and O are f32.\n"
    "  --kv-layout L      K and V as head-major, [batch][kv_heads][kv_len][dim]\n"
    "                     (default), or token-major, [batch][kv_len][kv_heads][dim]\n"
    "                     (each key's row holds every head: llama.cpp's cache)\n"
    "  --page-size N      K and V in pages of N keys (vLLM's cache): a page\n"
    "                     holds every KV head, laid out as --kv-layout says,\n"
    "                     and each sequence takes its pages through a page\n"
    "                     table in a shuffled order (default 0: not paged)\n"
    "  --fpmath M         strict (default: f32 arithmetic, within 1e-5) or bf16\n"
    "                     (QKV_FPMATH_BF16: an ISA with bf16 tiles, avx512bf16,\n"
    "                     amx, neonbf16 and svebf16, may round Q, K, P and V\n"
    "                     to bf16 where a KV head has more than 8 query rows,\n"
    "                     as in prefill, and avx512bf16 and amx in decode too\n"
    "                     on AMD's cores; the error column then shows what that\n"
    "                     costs, and % peak, still of the FMA peak, can pass\n"
    "                     100)\n"
    "  --causal           causal mask, aligned bottom-right\n"
    "  --window N         sliding window of N keys (default 0: none)\n"
    "  --threads N        threads of a qkv_pool, 1 to 1024 (default 1; the pool's\n"
    "                     hook is used at every count, so the work split is\n"
    "                     the same)\n"
    "  --isa LIST         only these ISAs, comma-separated (default: all that\n"
    "                     run here); scalar is always run once for the errors\n"
    "  --repeats N        timed repeats, 1 to 64; the median is shown (default 5)\n"
    "  --min-time S       each repeat runs calls for at least S seconds\n"
    "                     (default 0.05, at most 3600)\n"
    "  --warm             reuse one copy of K and V; by default decode-like\n"
    "                     shapes (q-len <= 16) cycle through copies spanning\n"
    "                     128 MiB or twice the L3, so every call reads K and V\n"
    "                     from memory as an engine does between layers\n"
    "  --no-probe         skip the peak probes (no % columns)\n"
    "  --seed N           the inputs' seed (default 1)\n"
    "  --json             one JSON object on stdout instead of the table\n"
    "  --phases           also show where each ISA's time goes: the fused\n"
    "                     driver's phases (job and tile set-up, K/V feed, Q·Kᵀ,\n"
    "                     softmax, P·V) as shares of the calls' time; needs a\n"
    "                     qkv built with -Dphase_timers=true (exit status 3\n"
    "                     otherwise; its calls take the time of the default\n"
    "                     build, within the noise)\n"
    "  Work counted: 2·(dim + v-dim) flops per visible (query row, key) pair\n"
    "  and head (causal and window cut the pairs), and the K and V bytes once\n"
    "  per call. Progress goes to stderr once a run lasts over a second.\n"
    "\n"
    "Environment: QKV_ISA=<name> forces the ISA of the library's dispatched\n"
    "calls (shown by `qkv info`; `qkv bench` runs each ISA directly).\n"
    "Exit status: 0 done, 1 failure, 2 bad command line, 3 not supported by\n"
    "this build (e.g. a --dtype whose kernels have not landed).\n";

/* ---- small helpers -------------------------------------------------------- */

static void die_usage(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("qkv: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputs("\n(qkv --help for the options)\n", stderr);
    va_end(ap);
    exit(EXIT_USAGE);
}

static size_t parse_size(const char *opt, const char *s, size_t min)
{
    char *end;
    errno = 0;
    const unsigned long long v = strtoull(s, &end, 10);
    if (!*s || *end || errno || s[0] == '-' || v < min || v > SIZE_MAX)
        die_usage("%s wants a whole number >= %zu, not \"%s\"", opt, min, s);
    return (size_t)v;
}

/* A whole number in [min, max], refused rather than cut to fit. */
static unsigned parse_upto(const char *opt, const char *s, unsigned min, unsigned max)
{
    const size_t v = parse_size(opt, s, min);
    if (v > max)
        die_usage("%s wants a whole number from %u to %u, not \"%s\"", opt, min, max, s);
    return (unsigned)v;
}

static double parse_seconds(const char *opt, const char *s)
{
    char *end;
    const double v = strtod(s, &end);
    if (!*s || *end || !(v >= 0 && v <= 3600))
        die_usage("%s wants seconds between 0 and 3600, not \"%s\"", opt, s);
    return v;
}

/* "--opt value" or "--opt=value": the value, advancing *i; NULL if argv[*i]
   is not this option. */
static const char *option_value(int argc, char **argv, int *i, const char *opt)
{
    const size_t n = strlen(opt);
    if (strncmp(argv[*i], opt, n) != 0)
        return NULL;
    if (argv[*i][n] == '=')
        return argv[*i] + n + 1;
    if (argv[*i][n] != 0)
        return NULL;
    if (*i + 1 >= argc)
        die_usage("%s needs a value", opt);
    return argv[++*i];
}

static void json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            fprintf(f, "\\%c", *s);
        else if ((unsigned char)*s < 0x20)
            fprintf(f, "\\u%04x", *s);
        else
            fputc(*s, f);
    }
    fputc('"', f);
}

/* ---- the CPU ---------------------------------------------------------------- */

static void cpuinfo_field(const char *field, char *out, size_t n)
{
    out[0] = 0;
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f)
        return;
    char line[512];
    const size_t len = strlen(field);
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, field, len) != 0 || (line[len] != ' ' && line[len] != '\t' &&
                                               line[len] != ':'))
            continue;
        const char *colon = strchr(line, ':');
        if (!colon)
            continue;
        colon++;
        while (*colon == ' ')
            colon++;
        snprintf(out, n, "%s", colon);
        out[strcspn(out, "\n")] = 0;
        break;
    }
    fclose(f);
}

/* The CPU's name: the x86 brand string with family and model, or what
   /proc/cpuinfo says (model name; on Arm the implementer and part). */
static void cpu_model(char *out, size_t n)
{
#if defined(__x86_64__) || defined(__i386__)
    unsigned r[12], a, b, c, d;
    if (__get_cpuid(0x80000000u, &a, &b, &c, &d) && a >= 0x80000004u) {
        for (unsigned i = 0; i < 3; i++)
            __get_cpuid(0x80000002u + i, &r[4 * i], &r[4 * i + 1], &r[4 * i + 2], &r[4 * i + 3]);
        char brand[49];
        memcpy(brand, r, 48);
        brand[48] = 0;
        const char *s = brand;
        while (*s == ' ')
            s++;
        __get_cpuid(1, &a, &b, &c, &d);
        unsigned family = (a >> 8) & 15, model = (a >> 4) & 15;
        if (family == 15)
            family += (a >> 20) & 255;
        if (family == 6 || family >= 15)
            model |= ((a >> 16) & 15) << 4;
        snprintf(out, n, "%s (family %u, model %u)", s, family, model);
        return;
    }
#endif
    cpuinfo_field("model name", out, n);
    if (out[0])
        return;
    char impl[64], part[64];
    cpuinfo_field("CPU implementer", impl, sizeof impl);
    cpuinfo_field("CPU part", part, sizeof part);
    if (impl[0])
        snprintf(out, n, "CPU implementer %s, part %s", impl, part);
    else
        snprintf(out, n, "unknown");
}

static const char *arch_name(void)
{
#if defined(__x86_64__)
    return "x86-64";
#elif defined(__aarch64__)
    return "AArch64";
#else
    return "other";
#endif
}

/* ---- probes ------------------------------------------------------------------ */

typedef struct peaks {
    double fma[QKV_ISA_COUNT];   /* GFLOP/s, one core; 0: not measured */
    double read_gbs;             /* GB/s with the benchmark's thread count */
} peaks;

/* 0.1 s per ISA (its best chunk of about 1 ms, longer where the clock
   is slow: probe.h), then the best of 10 passes over 128 MiB or twice the
   L3 (qkv_probe_cold_bytes): a second or two in all, mostly the buffer's
   page faults. */
static void run_probes(peaks *p, unsigned threads)
{
    memset(p, 0, sizeof *p);
    qkv_probe_fma_peaks(p->fma, 0.1);
    /* Several threads seldom get several times one core's bandwidth, but
       on a shared host their figure swings: never take less than one core. */
    const size_t bytes = qkv_probe_cold_bytes();
    p->read_gbs = qkv_probe_read_gbs(bytes, 10, 1);
    if (threads > 1) {
        const double t = qkv_probe_read_gbs(bytes, 10, threads);
        if (t > p->read_gbs)
            p->read_gbs = t;
    }
}

/* ---- qkv info -------------------------------------------------------------- */

static int cmd_info(int argc, char **argv)
{
    int json = 0, probe = 0;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            json = 1;
        else if (strcmp(argv[i], "--probe") == 0)
            probe = 1;
        else
            die_usage("info: unknown option %s", argv[i]);
    }
    char model[256];
    cpu_model(model, sizeof model);
    const long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    const char *env = getenv("QKV_ISA");
    const qkv_isa chosen = qkv_isa_get();
    /* The chosen ISA cannot run when QKV_ISA names a bad one: a dispatched
       call then fails, and its detail says why. */
    char chosen_problem[256] = "";
    if (!qkv_isa_supported(chosen)) {
        float s = 0;
        qkv_softmax(1, 1, &s, 1);
        snprintf(chosen_problem, sizeof chosen_problem, "%s", qkv_last_error_detail());
    }
    peaks pk;
    if (probe)
        run_probes(&pk, 1);

    if (json) {
        printf("{\"version\": ");
        json_string(stdout, qkv_version_string());
        printf(", \"arch\": ");
        json_string(stdout, arch_name());
        printf(", \"cpu\": ");
        json_string(stdout, model);
        int simd = 0;
        for (int i = 1; i < QKV_ISA_COUNT; i++)
            simd |= qkv_isa_built((qkv_isa)i);
        printf(", \"cpus\": %ld, \"simd\": %s, \"qkv_isa_env\": ", cpus, simd ? "true" : "false");
        if (env)
            json_string(stdout, env);
        else
            printf("null");
        printf(", \"chosen\": ");
        json_string(stdout, qkv_isa_name(chosen));
        printf(", \"chosen_problem\": ");
        json_string(stdout, chosen_problem);
        printf(", \"best\": ");
        json_string(stdout, qkv_isa_name(qkv_isa_best()));
        printf(", \"isas\": [");
        for (int i = 0; i < QKV_ISA_COUNT; i++) {
            const char *why = qkv_isa_unsupported_reason((qkv_isa)i);
            printf("%s\n  {\"name\": ", i ? "," : "");
            json_string(stdout, qkv_isa_name((qkv_isa)i));
            printf(", \"built\": %s, \"runs\": %s, \"why_not\": ",
                   qkv_isa_built((qkv_isa)i) ? "true" : "false", why ? "false" : "true");
            if (why)
                json_string(stdout, why);
            else
                printf("null");
            if (probe && pk.fma[i] > 0)
                printf(", \"fma_peak_gflops\": %.2f", pk.fma[i]);
            printf("}");
        }
        printf("]");
        if (probe)
            printf(", \"read_gbs\": %.2f", pk.read_gbs);
        printf("}\n");
        return 0;
    }

    printf("qkv %s\n", qkv_version_string());
    printf("CPU:     %s, %s, %ld logical CPUs online\n", model, arch_name(), cpus);
    const qkv_cpu_caches cc = qkv_cpu_cache_sizes();
    printf("Caches:  L1d %zu KiB, L2 %zu KiB, L3 %zu KiB per core's view (0: not known; "
           "the kernels' blocks follow them)\n", cc.l1d >> 10, cc.l2 >> 10, cc.l3 >> 10);
    const qkv_cpu_traits traits = qkv_cpu_family_traits();
    printf("Decode:  K/V %s\n",
           traits.prefetch_l2   ? "prefetched into L2 (an Intel core)"
           : traits.fma_256_bit ? "swept or prefetched into L1, AVX2 by AVX-512's rule (256-bit "
                                  "FMA units, as Zen 4's)"
                                : "swept or prefetched into L1");
#if defined(__x86_64__) || defined(__i386__)
    printf("Prefill: a 16-bit V %s\n",
           traits.wide_converts_on_fma_ports
               ? "converted once per tile on AVX-512 (an Intel core: its 512-bit "
                 "conversions take the FMA ports), widened as loaded on AVX2"
               : "widened in the microkernel as it is loaded");
#endif
    printf("ISAs:    (built: compiled into this qkv; runs: this CPU and OS can run it)\n");
    for (int i = 0; i < QKV_ISA_COUNT; i++) {
        const char *why = qkv_isa_unsupported_reason((qkv_isa)i);
        printf("  %-10s %-6s %s", qkv_isa_name((qkv_isa)i), qkv_isa_built((qkv_isa)i) ? "built" : "-",
               why ? "-   " : "runs");
        if (probe && pk.fma[i] > 0)
            printf("  FMA peak %.1f GFLOP/s on 1 core", pk.fma[i]);
        if (why)
            printf("  %s", why);
        else if ((why = qkv_isa_passed_over_reason((qkv_isa)i)) != NULL)
            printf("  not the best here: %s", why);
        if ((qkv_isa)i == chosen)
            printf("  <- chosen");
        printf("\n");
    }
    if (probe)
        printf("Memory:  read bandwidth %.1f GB/s (1 core, %zu MiB)\n", pk.read_gbs,
               qkv_probe_cold_bytes() >> 20);
    if (chosen_problem[0])
        printf("Chosen:  %s, which cannot run: every dispatched call fails with\n"
               "         QKV_ERR_UNSUPPORTED: %s\n", qkv_isa_name(chosen), chosen_problem);
    else if (env && *env)
        printf("Chosen:  %s, forced by QKV_ISA=%s (the best here is %s)\n", qkv_isa_name(chosen),
               env, qkv_isa_name(qkv_isa_best()));
    else
        printf("Chosen:  %s, the best this CPU runs (QKV_ISA=<name> forces another)\n",
               qkv_isa_name(chosen));
    return 0;
}

/* ---- qkv bench --------------------------------------------------------------- */

typedef struct shape {
    size_t batch, q_heads, kv_heads, q_len, kv_len, dim, v_dim, window;
    qkv_dtype dtype;
    int causal;
    int token_major;   /* K and V as [batch][kv_len][kv_heads][dim] */
    qkv_fpmath fpmath;
    size_t page_size;  /* > 0: K and V in pages of this many keys */
} shape;

typedef struct bench_opts {
    shape s;
    unsigned threads, repeats;
    double min_time;
    int warm, probe, json, phases;
    uint64_t seed;
    unsigned isa_mask;       /* bit per ISA asked for */
} bench_opts;

static const char *const dtype_names[QKV_DTYPE_COUNT] = {"f32", "f16", "bf16", "q8_0", "q4_0"};

/* Bytes of n values of t; 0 for a block type when n is no multiple of 32. */
static size_t dtype_bytes(qkv_dtype t, size_t n)
{
    switch (t) {
    case QKV_F32: return 4 * n;
    case QKV_F16:
    case QKV_BF16: return 2 * n;
    case QKV_Q8_0: return n % 32 ? 0 : n / 32 * 34;
    case QKV_Q4_0: return n % 32 ? 0 : n / 32 * 18;
    default: return 0;
    }
}

/* The (query row, key) pairs one head of one sequence computes. */
static double visible_pairs(const shape *s)
{
    double pairs = 0;
    for (size_t i = 0; i < s->q_len; i++) {
        /* p = i + kv_len - q_len, the row's position among the keys */
        const double p = (double)i + (double)s->kv_len - (double)s->q_len;
        double hi = (double)s->kv_len;             /* keys [lo, hi) */
        double lo = 0;
        if (s->causal)
            hi = fmin(hi, p + 1);
        if (s->window)
            lo = fmax(lo, p - (double)s->window + 1);
        if (hi > lo)
            pairs += hi - lo;
    }
    return pairs;
}

static uint64_t rng_state;

static float rng_uniform(void)     /* splitmix64, in [-1, 1) */
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return (float)((double)(z >> 40) / (double)(1ull << 23) - 1.0);
}

static double now_s(void)
{
    return qkv_probe_now();
}

static double run_start;

/* Progress on stderr, once the run has lasted a second: short runs stay
   quiet, long ones say where they are. */
static void progress(const char *fmt, ...)
{
    if (now_s() - run_start < 1.0)
        return;
    va_list ap;
    va_start(ap, fmt);
    fputs("qkv bench: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static int cmp_double(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef struct result {
    qkv_isa isa;
    qkv_status status;
    char detail[256];
    double ms;              /* median per call */
    double max_err;         /* against scalar */
    double phase[QKV_PHASE_COUNT];   /* --phases: shares of threads × the repeats' time */
} result;

static void parse_heads(const char *v, shape *s)
{
    char *end;
    errno = 0;
    const unsigned long long q = strtoull(v, &end, 10);
    unsigned long long kv = q;
    if (*end == '/') {
        const char *k = end + 1;
        kv = strtoull(k, &end, 10);
        if (k == end)
            end = (char *)"x";
    }
    if (end == v || *end || errno || !q || !kv || v[0] == '-')
        die_usage("--heads wants Q or Q/KV (e.g. 32/8), not \"%s\"", v);
    s->q_heads = (size_t)q;
    s->kv_heads = (size_t)kv;
}

static void parse_isas(const char *v, unsigned *mask)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", v);
    *mask = 0;
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        qkv_isa isa;
        if (qkv_isa_from_name(tok, &isa) != QKV_OK)
            die_usage("--isa: %s", qkv_last_error_detail());
        *mask |= 1u << isa;
    }
}

static void parse_bench(int argc, char **argv, bench_opts *o)
{
    memset(o, 0, sizeof *o);
    o->s = (shape){1, 32, 8, 1, 4096, 128, 0, 0, QKV_F32, 0, 0, QKV_FPMATH_STRICT, 0};
    o->threads = 1;
    o->repeats = 5;
    o->min_time = 0.05;
    o->probe = 1;
    o->seed = 1;
    o->isa_mask = ~0u;
    for (int i = 2; i < argc; i++) {
        const char *v;
        if ((v = option_value(argc, argv, &i, "--heads")))
            parse_heads(v, &o->s);
        else if ((v = option_value(argc, argv, &i, "--batch")))
            o->s.batch = parse_size("--batch", v, 1);
        else if ((v = option_value(argc, argv, &i, "--q-len")))
            o->s.q_len = parse_size("--q-len", v, 1);
        else if ((v = option_value(argc, argv, &i, "--kv-len")))
            o->s.kv_len = parse_size("--kv-len", v, 1);
        else if ((v = option_value(argc, argv, &i, "--dim")))
            o->s.dim = parse_size("--dim", v, 1);
        else if ((v = option_value(argc, argv, &i, "--v-dim")))
            o->s.v_dim = parse_size("--v-dim", v, 1);
        else if ((v = option_value(argc, argv, &i, "--page-size")))
            o->s.page_size = parse_size("--page-size", v, 0);
        else if ((v = option_value(argc, argv, &i, "--window")))
            o->s.window = parse_size("--window", v, 0);
        else if ((v = option_value(argc, argv, &i, "--threads")))
            o->threads = parse_upto("--threads", v, 1, MAX_THREADS);
        else if ((v = option_value(argc, argv, &i, "--repeats")))
            o->repeats = parse_upto("--repeats", v, 1, MAX_REPEATS);
        else if ((v = option_value(argc, argv, &i, "--min-time")))
            o->min_time = parse_seconds("--min-time", v);
        else if ((v = option_value(argc, argv, &i, "--seed")))
            o->seed = parse_size("--seed", v, 0);
        else if ((v = option_value(argc, argv, &i, "--isa")))
            parse_isas(v, &o->isa_mask);
        else if ((v = option_value(argc, argv, &i, "--dtype"))) {
            int found = 0;
            for (int t = 0; t < QKV_DTYPE_COUNT; t++)
                if (strcmp(v, dtype_names[t]) == 0)
                    o->s.dtype = (qkv_dtype)t, found = 1;
            if (!found)
                die_usage("--dtype wants f32, f16, bf16, q8_0 or q4_0, not \"%s\"", v);
        } else if ((v = option_value(argc, argv, &i, "--kv-layout"))) {
            if (strcmp(v, "head-major") == 0 || strcmp(v, "token-major") == 0)
                o->s.token_major = strcmp(v, "token-major") == 0;
            else
                die_usage("--kv-layout wants head-major or token-major, not \"%s\"", v);
        } else if ((v = option_value(argc, argv, &i, "--fpmath"))) {
            if (strcmp(v, "strict") == 0 || strcmp(v, "bf16") == 0)
                o->s.fpmath = strcmp(v, "bf16") == 0 ? QKV_FPMATH_BF16 : QKV_FPMATH_STRICT;
            else
                die_usage("--fpmath wants strict or bf16, not \"%s\"", v);
        } else if (strcmp(argv[i], "--causal") == 0)
            o->s.causal = 1;
        else if (strcmp(argv[i], "--warm") == 0)
            o->warm = 1;
        else if (strcmp(argv[i], "--no-probe") == 0)
            o->probe = 0;
        else if (strcmp(argv[i], "--json") == 0)
            o->json = 1;
        else if (strcmp(argv[i], "--phases") == 0)
            o->phases = 1;
        else
            die_usage("bench: unknown option %s", argv[i]);
    }
    if (!o->s.v_dim)
        o->s.v_dim = o->s.dim;
}

/* n bytes rounded up to whole cache lines (of 64 bytes). */
static size_t round_to_line(size_t n)
{
    return n > SIZE_MAX - 63 ? SIZE_MAX / 64 * 64 : (n + 63) / 64 * 64;
}

/* n bytes from a cache line's start, as PyTorch's allocator gives a KV
   cache. malloc's 16 bytes past a line put every 64-byte load of an f32
   K row across two lines: the decode's Q·Kᵀ phase took 1.2 times as long
   (Zen 5, AVX-512, 32/8 heads, d = 128, --phases), the call 1.12 times
   (README, "Start V's rows on 64-byte boundaries"). */
static void *alloc_lines(size_t n)
{
    return aligned_alloc(64, round_to_line(n ? n : 1));
}

/* Element counts and bytes of the tensors, [batch][head][row][dim] (K and
   V paged: every sequence's pages, the last one whole); 0 when a product
   overflows. */
typedef struct sizes {
    size_t q, k, v, o;                /* elements */
    size_t k_bytes, v_bytes;          /* of one copy */
    size_t v_at, copy_bytes;          /* V's offset in a copy, a copy's size: lines */
    size_t copies;
    size_t pages_per_seq;             /* paged: pages a sequence takes */
    double read_bytes;                /* the K and V bytes a call reads */
} sizes;

static int get_sizes(const bench_opts *o, sizes *z)
{
    const shape *s = &o->s;
    size_t qr, kr, keys = s->kv_len;
    z->pages_per_seq = 0;
    if (s->page_size) {   /* whole pages: the pool holds every sequence's */
        z->pages_per_seq = s->kv_len / s->page_size + (s->kv_len % s->page_size != 0);
        size_t pages;
        if (__builtin_mul_overflow(z->pages_per_seq, s->page_size, &keys) ||
            __builtin_mul_overflow(z->pages_per_seq, s->batch, &pages) || pages > INT32_MAX)
            return 0;
    }
    if (__builtin_mul_overflow(s->batch, s->q_heads, &qr) ||
        __builtin_mul_overflow(qr, s->q_len, &qr) ||
        __builtin_mul_overflow(s->batch, s->kv_heads, &kr) ||
        __builtin_mul_overflow(kr, keys, &kr) ||
        __builtin_mul_overflow(qr, s->dim, &z->q) || __builtin_mul_overflow(qr, s->v_dim, &z->o) ||
        __builtin_mul_overflow(kr, s->dim, &z->k) || __builtin_mul_overflow(kr, s->v_dim, &z->v) ||
        z->q > SIZE_MAX / 8 || z->o > SIZE_MAX / 8 || z->k > SIZE_MAX / 8 || z->v > SIZE_MAX / 8)
        return 0;
    z->k_bytes = dtype_bytes(s->dtype, z->k);
    z->v_bytes = dtype_bytes(s->dtype, z->v);
    z->v_at = round_to_line(z->k_bytes);
    z->copy_bytes = z->v_at + round_to_line(z->v_bytes);
    const size_t kv = z->k_bytes + z->v_bytes;
    z->read_bytes = (double)kv * (double)s->kv_len / (double)keys;
    z->copies = 1;
    /* Decode-like shapes read each K/V byte for few query rows: from
       memory in an engine, so from memory here (see --warm). */
    const size_t cold = qkv_probe_cold_bytes();
    if (!o->warm && s->q_len <= 16 && kv && kv < cold)
        z->copies = (cold + kv - 1) / kv;
    return z->copy_bytes && z->copies <= SIZE_MAX / z->copy_bytes;
}

static void print_dtype_refusal(qkv_status st, const char *what, const shape *s)
{
    const char *detail = qkv_last_error_detail();
    fprintf(stderr, "qkv bench: --dtype %s: %s is not supported by this build yet (%s%s%s)\n",
            dtype_names[s->dtype], what, qkv_status_string(st), detail[0] ? ": " : "", detail);
}

/* --phases: each ISA's calls cut into the fused driver's phases
   (kernels/phase.h), as shares of the threads' time; "outside" is the
   rest: the plan, finishing and merging rows, the pool, idle threads. */
static void print_phases(const result *res, int nres, unsigned threads)
{
    printf("\nwhere the time goes, %% of %sthe calls' time (phase timers):\n%-10s",
           threads == 1 ? "" : "the threads × ", "isa");
    for (int p = 0; p < QKV_PHASE_COUNT; p++)
        printf(" %7s", qkv_phase_name((qkv_phase)p));
    printf(" %7s\n", "outside");
    for (int i = 0; i < nres; i++) {
        const result *r = &res[i];
        if (r->status != QKV_OK)
            continue;
        if (r->isa == QKV_ISA_SCALAR) {   /* its own kernel, not the SIMD driver */
            printf("%-10s (the scalar reference has no phase marks)\n", "scalar");
            continue;
        }
        double in = 0;
        printf("%-10s", qkv_isa_name(r->isa));
        for (int p = 0; p < QKV_PHASE_COUNT; p++) {
            printf(" %7.2f", 100.0 * r->phase[p]);
            in += r->phase[p];
        }
        printf(" %7.2f\n", 100.0 * (1.0 - in));
    }
}

static int cmd_bench(int argc, char **argv)
{
    bench_opts o;
    parse_bench(argc, argv, &o);
    const shape *s = &o.s;
    run_start = now_s();
    rng_state = o.seed;

    if (o.phases && !qkv_phase_built()) {
        fprintf(stderr, "qkv bench: --phases needs a qkv built with the phase timers "
                        "(meson configure -Dphase_timers=true)\n");
        return EXIT_UNSUPPORTED;
    }
    sizes z;
    if (!get_sizes(&o, &z))
        die_usage("the shape's sizes overflow");
    if (s->dtype >= QKV_Q8_0 && (s->dim % 32 || s->v_dim % 32))
        die_usage("--dtype %s stores blocks of 32 values: --dim and --v-dim must be "
                  "multiples of 32", dtype_names[s->dtype]);

    float *q = alloc_lines(z.q * sizeof(float)), *o_ref = malloc(z.o * sizeof(float));
    float *out = alloc_lines(z.o * sizeof(float));
    float *k32 = malloc(z.k * sizeof(float)), *v32 = malloc(z.v * sizeof(float));
    unsigned char *kv = alloc_lines(z.copies * z.copy_bytes);
    int32_t *table = malloc((s->batch * z.pages_per_seq + 1) * sizeof *table);
    qkv_pool *pool = NULL;
    int rc = 1;
    if (!q || !o_ref || !out || !k32 || !v32 || !kv || !table) {
        fprintf(stderr, "qkv bench: not enough memory for this shape\n");
        goto done;
    }
    for (size_t i = 0; i < z.q; i++)
        q[i] = rng_uniform();
    for (size_t i = 0; i < z.k; i++)
        k32[i] = rng_uniform();
    for (size_t i = 0; i < z.v; i++)
        v32[i] = rng_uniform();
    /* K and V in their storage type, through the library's own converter:
       the cache append an engine does. */
    unsigned char *k0 = kv, *v0 = kv + z.v_at;
    qkv_status st = qkv_convert(z.k, k32, QKV_F32, k0, s->dtype);
    if (st == QKV_OK)
        st = qkv_convert(z.v, v32, QKV_F32, v0, s->dtype);
    if (st != QKV_OK && s->dtype == QKV_F32) {
        /* f32 needs no conversion; copy if the converter is not there. */
        memcpy(k0, k32, z.k_bytes);
        memcpy(v0, v32, z.v_bytes);
        st = QKV_OK;
    }
    if (st != QKV_OK) {
        print_dtype_refusal(st, "qkv_convert from f32", s);
        rc = st == QKV_ERR_UNSUPPORTED ? EXIT_UNSUPPORTED : 1;
        goto done;
    }
    if ((st = qkv_pool_create(o.threads, &pool)) != QKV_OK) {
        fprintf(stderr, "qkv bench: %s: %s\n", qkv_status_string(st), qkv_last_error_detail());
        goto done;
    }
    peaks pk;
    memset(&pk, 0, sizeof pk);
    if (o.probe) {
        progress("probing the FMA peaks and the read bandwidth");
        run_probes(&pk, o.threads);
    }

    qkv_attention_desc d = {0};
    d.batch = s->batch, d.q_heads = s->q_heads, d.kv_heads = s->kv_heads;
    d.q_len = s->q_len, d.kv_len = s->kv_len, d.head_dim = s->dim, d.v_head_dim = s->v_dim;
    d.q = (qkv_tensor){q, QKV_F32, s->q_heads * s->q_len * s->dim, s->q_len * s->dim, s->dim};
    d.k = (qkv_tensor){k0, s->dtype, s->kv_heads * s->kv_len * s->dim, s->kv_len * s->dim, s->dim};
    d.v = (qkv_tensor){v0, s->dtype, s->kv_heads * s->kv_len * s->v_dim, s->kv_len * s->v_dim,
                       s->v_dim};
    d.o = (qkv_out_tensor){out, s->q_heads * s->q_len * s->v_dim, s->q_len * s->v_dim, s->v_dim,
                           QKV_F32};
    if (s->token_major) {   /* the same bytes, each key's row holding every head */
        d.k.head_stride = s->dim, d.k.row_stride = s->kv_heads * s->dim;
        d.v.head_stride = s->v_dim, d.v.row_stride = s->kv_heads * s->v_dim;
    }
    if (s->page_size) {
        /* vLLM's pools: a page holds every KV head, [kv_heads][page_size][dim]
           (or [page_size][kv_heads][dim] token-major); the sequences take
           the pages in a shuffled order, as a cache that has served a while
           hands them out. */
        const size_t ps = s->page_size, n = s->batch * z.pages_per_seq;
        for (size_t i = 0; i < n; i++)
            table[i] = (int32_t)i;
        for (size_t i = n; i > 1; i--) {
            const size_t x = (size_t)((rng_uniform() + 1.0f) * 0.5f * (float)i) % i;
            const int32_t t = table[i - 1];
            table[i - 1] = table[x], table[x] = t;
        }
        d.page_size = ps, d.num_pages = n, d.page_table = table;
        d.page_table_stride = z.pages_per_seq;
        d.k_page_stride = s->kv_heads * ps * s->dim;
        d.v_page_stride = s->kv_heads * ps * s->v_dim;
        if (!s->token_major) {
            d.k.head_stride = ps * s->dim, d.k.row_stride = s->dim;
            d.v.head_stride = ps * s->v_dim, d.v.row_stride = s->v_dim;
        }
    }
    d.scale = qkv_default_scale(s->dim);
    d.mask = s->causal ? QKV_MASK_CAUSAL : QKV_MASK_NONE;
    d.window = s->window;
    d.fpmath = s->fpmath;
    d.parallel_for = qkv_pool_parallel_for;
    d.pool = pool;

    const double pairs = visible_pairs(s) * (double)s->batch * (double)s->q_heads;
    const double flops = 2.0 * (double)(s->dim + s->v_dim) * pairs;
    const double bytes = z.read_bytes;

    result res[QKV_ISA_COUNT];
    int nres = 0, have_ref = 0;
    size_t filled = 1;   /* copies of K and V holding their values */
    for (int i = 0; i < QKV_ISA_COUNT; i++) {
        const qkv_isa isa = (qkv_isa)i;
        const qkv_funcs *f;
        const int wanted = (o.isa_mask >> i) & 1u;
        if ((!wanted && isa != QKV_ISA_SCALAR) || qkv_isa_funcs(isa, &f) != QKV_OK)
            continue;
        result *r = &res[nres];
        memset(r, 0, sizeof *r);
        r->isa = isa;
        d.k.data = k0, d.v.data = v0, d.o.data = out;
        double t0 = now_s();
        r->status = f->attention(&d);
        double first = now_s() - t0;
        if (r->status != QKV_OK) {
            snprintf(r->detail, sizeof r->detail, "%s", qkv_last_error_detail());
            if (isa == QKV_ISA_SCALAR && r->status != QKV_ERR_UNSUPPORTED) {
                fprintf(stderr, "qkv bench: %s: %s\n", qkv_status_string(r->status), r->detail);
                rc = r->status == QKV_ERR_NOMEM ? 1 : EXIT_USAGE;
                goto done;
            }
            if (wanted)
                nres++;
            continue;
        }
        if (isa == QKV_ISA_SCALAR) {
            memcpy(o_ref, out, z.o * sizeof(float));
            have_ref = 1;
        }
        r->max_err = have_ref ? 0 : NAN;   /* NaN: no reference to compare with */
        for (size_t j = 0; have_ref && j < z.o; j++) {
            const double e = fabs((double)out[j] - (double)o_ref[j]);
            if (!(e <= r->max_err))      /* NaN counts as the largest */
                r->max_err = e;
        }
        if (!wanted)
            continue;
        /* The other copies of K and V once a call has been accepted: at
           128 MiB or more they take seconds to fill, which a refused shape
           should not wait for. */
        for (; filled < z.copies; filled++)
            memcpy(kv + filled * z.copy_bytes, kv, z.copy_bytes);
        /* Calls per repeat so that a repeat lasts min_time. */
        const unsigned calls = first >= o.min_time ? 1u
                             : (unsigned)fmin(1e6, ceil(o.min_time / fmax(first, 1e-7)));
        double times[MAX_REPEATS];
        const unsigned reps = o.repeats;
        size_t call = 1;
        uint64_t ticks[QKV_PHASE_COUNT];
        qkv_phase_take(ticks);   /* from zero: the calls above are not counted */
        const uint64_t tick0 = qkv_phase_now();
        for (unsigned rep = 0; rep < reps; rep++) {
            progress("%s: repeat %u of %u (%u call%s of %.3g ms)", qkv_isa_name(isa), rep + 1, reps,
                     calls, calls == 1 ? "" : "s", first * 1e3);
            t0 = now_s();
            for (unsigned c = 0; c < calls; c++, call++) {
                unsigned char *base = kv + (call % z.copies) * z.copy_bytes;
                d.k.data = base, d.v.data = base + z.v_at;
                f->attention(&d);
            }
            times[rep] = (now_s() - t0) / calls;
        }
        const double all = (double)(qkv_phase_now() - tick0) * o.threads;
        qkv_phase_take(ticks);
        for (int p = 0; p < QKV_PHASE_COUNT; p++)
            r->phase[p] = all > 0 ? (double)ticks[p] / all : 0;
        qsort(times, reps, sizeof times[0], cmp_double);
        r->ms = 1e3 * (reps % 2 ? times[reps / 2] : 0.5 * (times[reps / 2 - 1] + times[reps / 2]));
        nres++;
    }
    double scalar_ms = 0;
    for (int i = 0; i < nres; i++)
        if (res[i].isa == QKV_ISA_SCALAR && res[i].status == QKV_OK)
            scalar_ms = res[i].ms;
    int ok = 0, unsupported = 0;
    for (int i = 0; i < nres; i++)
        res[i].status == QKV_OK ? ok++ : unsupported++;

    if (o.json) {
        printf("{\"version\": ");
        json_string(stdout, qkv_version_string());
        char model[256];
        cpu_model(model, sizeof model);
        printf(", \"cpu\": ");
        json_string(stdout, model);
        printf(",\n \"shape\": {\"batch\": %zu, \"q_heads\": %zu, \"kv_heads\": %zu, "
               "\"q_len\": %zu, \"kv_len\": %zu, \"dim\": %zu, \"v_dim\": %zu, \"dtype\": \"%s\", "
               "\"kv_layout\": \"%s\", \"page_size\": %zu, \"fpmath\": \"%s\", \"causal\": %s, "
               "\"window\": %zu, \"threads\": %u, \"kv_copies\": %zu},\n",
               s->batch, s->q_heads, s->kv_heads, s->q_len, s->kv_len, s->dim, s->v_dim,
               dtype_names[s->dtype], s->token_major ? "token-major" : "head-major", s->page_size,
               s->fpmath == QKV_FPMATH_BF16 ? "bf16" : "strict", s->causal ? "true" : "false",
               s->window, o.threads, z.copies);
        printf(" \"flops_per_call\": %.6g, \"kv_bytes_per_call\": %.6g,\n", flops, bytes);
        if (o.probe) {
            printf(" \"probe\": {\"read_gbs\": %.2f", pk.read_gbs);
            for (int i = 0; i < QKV_ISA_COUNT; i++)
                if (pk.fma[i] > 0)
                    printf(", \"fma_peak_gflops_%s\": %.2f", qkv_isa_name((qkv_isa)i), pk.fma[i]);
            printf("},\n");
        }
        printf(" \"results\": [");
        for (int i = 0; i < nres; i++) {
            const result *r = &res[i];
            printf("%s\n  {\"isa\": \"%s\", \"status\": ", i ? "," : "", qkv_isa_name(r->isa));
            json_string(stdout, qkv_status_string(r->status));
            if (r->status != QKV_OK) {
                printf(", \"detail\": ");
                json_string(stdout, r->detail);
                printf("}");
                continue;
            }
            const double sec = r->ms * 1e-3;
            printf(", \"ms\": %.6g, \"gflops\": %.6g, \"gbs\": %.6g", r->ms, flops / sec * 1e-9,
                   bytes / sec * 1e-9);
            if (have_ref)
                printf(", \"max_abs_err\": %.3g", r->max_err);
            if (scalar_ms > 0)
                printf(", \"speedup\": %.4g", scalar_ms / r->ms);
            if (o.probe && pk.fma[r->isa] > 0)
                printf(", \"pct_fma_peak\": %.4g",
                       100.0 * flops / sec * 1e-9 / (pk.fma[r->isa] * o.threads));
            if (o.probe && pk.read_gbs > 0)
                printf(", \"pct_read_bw\": %.4g", 100.0 * bytes / sec * 1e-9 / pk.read_gbs);
            if (o.phases) {
                double in = 0;
                printf(", \"pct_phases\": {");
                for (int p = 0; p < QKV_PHASE_COUNT; p++) {
                    printf("\"%s\": %.4g, ", qkv_phase_name((qkv_phase)p), 100.0 * r->phase[p]);
                    in += r->phase[p];
                }
                printf("\"outside\": %.4g}", 100.0 * (1.0 - in));
            }
            printf("}");
        }
        printf("]}\n");
        rc = ok ? 0 : EXIT_UNSUPPORTED;
        goto done;
    }

    printf("qkv %s bench: batch %zu, heads %zu/%zu, q_len %zu, kv_len %zu, dim %zu",
           qkv_version_string(), s->batch, s->q_heads, s->kv_heads, s->q_len, s->kv_len, s->dim);
    if (s->v_dim != s->dim)
        printf("/%zu", s->v_dim);
    printf(", K/V %s%s, %s%s", dtype_names[s->dtype], s->token_major ? " token-major" : "",
           s->causal ? "causal" : "no mask",
           s->window ? " + window" : "");
    if (s->page_size)
        printf(", pages of %zu keys", s->page_size);
    if (s->fpmath == QKV_FPMATH_BF16)
        printf(", fpmath bf16");
    printf(", %u thread%s\n", o.threads, o.threads == 1 ? "" : "s");
    printf("per call: %.4g GFLOP, K+V %.1f MiB read", flops * 1e-9, bytes / 1048576.0);
    if (z.copies > 1)
        printf(" (from memory: %zu copies span %zu MiB)", z.copies,
               z.copies * z.copy_bytes >> 20);
    printf("\n");
    if (o.probe) {
        printf("measured: FMA peak (1 core)");
        for (int i = 0; i < QKV_ISA_COUNT; i++)
            if (pk.fma[i] > 0)
                printf(" %s %.1f", qkv_isa_name((qkv_isa)i), pk.fma[i]);
        printf(" GFLOP/s; read bandwidth %.1f GB/s (%u thread%s)\n", pk.read_gbs, o.threads,
               o.threads == 1 ? "" : "s");
    }
    printf("\n%-10s %10s %9s %7s %9s %7s %8s %11s\n", "isa", "ms/call", "GFLOP/s", "%peak", "GB/s",
           "%BW", "speed-up", "max|err|");
    for (int i = 0; i < nres; i++) {
        const result *r = &res[i];
        if (r->status != QKV_OK) {
            printf("%-10s %s%s%s\n", qkv_isa_name(r->isa), qkv_status_string(r->status),
                   r->detail[0] ? ": " : "", r->detail);
            continue;
        }
        const double sec = r->ms * 1e-3, gf = flops / sec * 1e-9, gb = bytes / sec * 1e-9;
        char peak[16] = "-", bw[16] = "-", up[16] = "-", err[16] = "-";
        if (o.probe && pk.fma[r->isa] > 0)
            snprintf(peak, sizeof peak, "%.0f%%", 100.0 * gf / (pk.fma[r->isa] * o.threads));
        if (o.probe && pk.read_gbs > 0)
            snprintf(bw, sizeof bw, "%.0f%%", 100.0 * gb / pk.read_gbs);
        if (scalar_ms > 0)
            snprintf(up, sizeof up, "x%.1f", scalar_ms / r->ms);
        if (have_ref)
            snprintf(err, sizeof err, "%.2g", r->max_err);
        printf("%-10s %10.4g %9.4g %7s %9.4g %7s %8s %11s\n", qkv_isa_name(r->isa), r->ms, gf,
               peak, gb, bw, up, err);
    }
    if (o.phases)
        print_phases(res, nres, o.threads);
    rc = ok ? 0 : unsupported ? EXIT_UNSUPPORTED : 1;
done:
    qkv_pool_destroy(pool);
    free(q), free(o_ref), free(out), free(k32), free(v32), free(kv), free(table);
    return rc;
}

/* ---- main ------------------------------------------------------------------- */

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        fputs(usage_text, argc < 2 ? stderr : stdout);
        return argc < 2 ? EXIT_USAGE : 0;
    }
    /* `qkv info --help`, `qkv bench -h`: the one reference text. */
    for (int i = 2; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(usage_text, stdout);
            return 0;
        }
    if (strcmp(argv[1], "info") == 0)
        return cmd_info(argc, argv);
    if (strcmp(argv[1], "bench") == 0)
        return cmd_bench(argc, argv);
    if (strcmp(argv[1], "version") == 0 || strcmp(argv[1], "--version") == 0) {
        printf("qkv %s\n", qkv_version_string());
        return 0;
    }
    die_usage("unknown command \"%s\"", argv[1]);
    return EXIT_USAGE;
}

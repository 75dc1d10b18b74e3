/*
 * qkv benchmarks (Google Benchmark).
 *
 * Every supported ISA is registered by itself in a loop over qkv_isa
 * (scalar included: it is the baseline the speed-ups are taken over), plus
 * OpenBLAS as a peer when built with it. Names are readable paths:
 *
 *   scores/<impl>/m:1024/n:1024/d:64          one stage, one head
 *   softmax/<impl>/m:1024/n:1024
 *   weighted_sum/<impl>/m:1024/n:1024/d:64
 *   attention/<impl>/n:2048/d:64/causal:0/threads:1
 *                          prefill: 8 heads, q_len = kv_len = n
 *   decode/<impl>/kv_len:4096/threads:1
 *                          one token: 32 query heads on 8 KV heads, d = 128,
 *                          K and V read from memory (see kv_copies)
 *   decode_parts/<impl>/kv_len:1024/kv:f16/threads:1
 *                          the decode shape from memory and with K and V
 *                          left in cache (the arithmetic without the
 *                          memory), side by side: counters cold_ms, warm_ms
 *   attention/<impl>/n:2048/d:128/causal:0/qkv:bf16/fpmath:bf16/threads:1
 *                          prefill with Q, K and V stored as bf16, in one
 *                          qkv_fpmath mode, with its max error (counter
 *                          max_err) next to the speed
 *
 * Counters: FLOPS (useful flops per second: causal counts half), bytes_per_second
 * (each tensor read or written once); on the rows timed against a baseline
 * (bm_pair: 16-bit and quantized K/V against f32, paged and token-major
 * K/V against head-major, soft-cap against none; bm_batch: one call
 * against separate calls) vs_base and base_ms. The context holds the CPU, the ISAs and
 * the machine limits measured at start (FMA peak per ISA on one core, read
 * bandwidth of one core and of each thread count of the scaling rows), which
 * the report turns into "% of peak" and "% BW".
 *
 * Own flags (taken out of argv before Google Benchmark sees it):
 *   --qkv_set=quick|default|full   which shapes get registered (default: default)
 *   --qkv_threads=1,2,...          thread counts of the scaling rows (default 1..nproc)
 *   --qkv_min_time=SECONDS         per repetition (default 0.1; quick 0.005)
 *   --qkv_reps=N                   repetitions, aggregates only (default 3; quick 1)
 *   --qkv_probe=0|1                measure the machine limits (default 1)
 */
#include <benchmark/benchmark.h>

#include <qkv.h>

#include "probe.h"

#ifdef QKV_BENCH_OPENBLAS
#include <cblas.h>
#endif

#include <sched.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace {

/* ---- configuration ------------------------------------------------------ */

struct Config {
    std::string set = "default";
    std::vector<unsigned> threads;   /* empty: 1..nproc */
    double min_time = -1;            /* < 0: the set's default */
    int reps = -1;
    bool probe = true;
};

/* The shapes of one set. The scalar reference runs at about one
   hundredth of the SIMD speed, so its prefill shapes stop at scalar_max_n
   to keep a default run within minutes; the report marks the rest "not run". */
struct Sizes {
    std::vector<size_t> stage_n, stage_d;          /* stages: m = n */
    std::vector<size_t> prefill_n, prefill_d;
    std::vector<size_t> decode_kv;
    size_t scaling_n, scaling_d, scaling_kv;       /* the thread-scaling rows */
    size_t scalar_max_n;
    bool scale_everything;                         /* every fused case at every thread count */
};

Sizes sizes_for(const std::string &set)
{
    if (set == "quick")
        return {{128}, {64}, {128, 256}, {64}, {256, 1024}, 256, 64, 1024, 256, false};
    if (set == "full")
        return {{256, 1024, 4096}, {64, 128},
                {256, 512, 1024, 2048, 4096, 8192, 16384}, {64, 128},
                {1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072},
                2048, 128, 32768, 2048, true};
    return {{256, 1024, 4096}, {64, 128},
            {256, 512, 1024, 2048, 4096}, {64, 128},
            {1024, 2048, 4096, 8192, 16384, 32768},
            2048, 128, 32768, 1024, false};
}

/* Prefill and decode shapes, fixed so that runs compare across commits.
   8 prefill heads give the pool enough independent tasks while keeping the
   4096-token case under a second; the decode shape is Llama-3-8B's GQA
   (32 query heads sharing 8 KV heads, d = 128). */
constexpr size_t kPrefillHeads = 8;
constexpr size_t kDecodeQHeads = 32, kDecodeKvHeads = 8, kDecodeDim = 128;
/* Keys of the decode breakdown's rows (decode_parts): K and V of 8 MiB in
   f32, 1.1 in Q4_0, which stay in a server core's share of L3 or a
   client's L2 + L3 when warm, and enough keys that a call's start-up
   weighs little. */
constexpr size_t kPartsKv = 1024;

unsigned cpu_count()
{
    /* The affinity mask, not the machine: under taskset or a container
       limit only those CPUs can run the pool. */
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0)
        return (unsigned)CPU_COUNT(&set);
    const unsigned n = std::thread::hardware_concurrency();
    return n ? n : 1;
}

/* The thread counts of the scaling rows. */
std::vector<unsigned> scaling_threads(const Config &cfg)
{
    std::vector<unsigned> threads = cfg.threads;
    if (threads.empty())
        for (unsigned t = 1; t <= cpu_count(); t++)
            threads.push_back(t);
    return threads;
}

/* ---- inputs ------------------------------------------------------------- */

/* One growing 64-byte-aligned buffer per role, filled once with values in
   [-1, 1]. Google Benchmark calls a benchmark function several times (to
   size the iteration count, then once per repetition); refilling a 64 MiB
   tensor each time would cost more than the kernel at small shapes. The
   kernels have no data-dependent paths, so reusing contents is harmless. */
enum Role { kQ, kK, kV, kO, kS, kRoles };

float *buffer(Role role, size_t floats)
{
    struct Buf {
        float *p = nullptr;
        size_t n = 0;
    };
    static Buf bufs[kRoles];
    Buf &b = bufs[role];
    if (b.n >= floats)
        return b.p;
    std::free(b.p);
    b.p = nullptr;
    b.n = 0;
    const size_t bytes = (floats * sizeof(float) + 63) / 64 * 64;
    float *p = static_cast<float *>(std::aligned_alloc(64, bytes));
    if (!p)
        return nullptr;
    uint64_t x = 0x9E3779B97F4A7C15ull * (uint64_t)(role + 1);
    for (size_t i = 0; i < floats; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;   /* LCG: cheap */
        p[i] = (float)((double)(x >> 40) / (double)(1ull << 23) - 1.0);
    }
    b.p = p;
    b.n = floats;
    return p;
}

void set_counters(benchmark::State &st, double flops, double bytes)
{
    if (flops > 0)
        st.counters["FLOPS"] = benchmark::Counter(flops, benchmark::Counter::kIsIterationInvariantRate);
    st.SetBytesProcessed((int64_t)((double)st.iterations() * bytes));
}

/* ---- fused attention ---------------------------------------------------- */

/* Bytes of n values stored as t (n a multiple of 32 for the block types). */
size_t kv_dtype_bytes(qkv_dtype t, size_t n)
{
    switch (t) {
    case QKV_F16:
    case QKV_BF16: return 2 * n;
    case QKV_Q8_0: return n / 32 * 34;
    case QKV_Q4_0: return n / 32 * 18;
    default: return 4 * n;
    }
}

const char *dtype_name(qkv_dtype t)
{
    static const char *const names[] = {"f32", "f16", "bf16", "q8_0", "q4_0"};
    return (unsigned)t < sizeof names / sizeof names[0] ? names[t] : "?";
}

struct AttnShape {
    size_t q_heads, kv_heads, q_len, kv_len, d;
    bool causal;
    qkv_dtype kv = QKV_F32;    /* how K and V are stored */
    size_t page_size = 0;      /* > 0: K and V read through a shuffled page table */
    bool token_major = false;  /* K and V as [kv_len][kv_heads][d] (llama.cpp's cache) */
    qkv_dtype q = QKV_F32;     /* how Q is stored */
    qkv_fpmath fpmath = QKV_FPMATH_STRICT;
    float softcap = 0.0f;      /* > 0: the logit soft-cap, cap · tanh(s / cap) */

    /* Bytes of K and V as stored. */
    double kv_bytes() const
    {
        return (double)kv_dtype_bytes(kv, 2 * kv_heads * kv_len * d);
    }

    double flops() const
    {
        /* Q·Kᵀ and P·V, 2 flops per multiply-add each. Causal: only the
           visible half is useful work (what every implementation is
           credited with, whether it skips the masked half or not). */
        const double f = 4.0 * (double)q_heads * (double)q_len * (double)kv_len * (double)d;
        return causal ? f / 2 : f;
    }
    double bytes() const
    {
        return (double)kv_dtype_bytes(q, q_heads * q_len * d) + 4.0 * (double)(q_heads * q_len * d) +
               kv_bytes();
    }
};

struct Tensors {
    void *q;               /* in the shape's q dtype */
    float *o;
    void *k, *v;           /* in the shape's kv dtype */
};

/* Bytes of the memory probe's buffer, also the least the decode benchmark
   cycles through (see kv_copies): more than the last-level cache holds.
   The quick set, a smoke test whose timings mean nothing, sets cold_limit
   to probe.h's floor, 128 MiB: a Zen 5 VM reports its socket's 512 MiB of
   L3, and filling buffers of twice that was half of a quick run. */
size_t cold_limit = SIZE_MAX;

size_t cold_bytes()
{
    static const size_t bytes = std::min(qkv_probe_cold_bytes(), cold_limit);
    return bytes;
}

/* A real decode finds the KV cache in memory, not in cache: between two
   tokens of one layer, every other layer's cache passes through. So decode
   cycles through enough copies of K and V to span cold_bytes(), and no call
   finds the previous call's K and V still cached (8 MiB at kv_len 1024
   would otherwise sit in a 32 MiB L3 and beat DRAM; with one 128 MiB copy,
   f16 at kv_len 32768, a Xeon's 260 MiB L3 cut the time by 10%). Prefill
   reuses its tiles many times over and is timed on one copy. */
size_t kv_copies(const AttnShape &s)
{
    const size_t bytes = (size_t)s.kv_bytes();
    return s.q_len == 1 ? (cold_bytes() + bytes - 1) / bytes : 1;
}

/* The tensors of call i: copy i % kv_copies of K and V. */
Tensors tensors_at(const AttnShape &s, const Tensors &t, size_t i)
{
    const size_t per = kv_dtype_bytes(s.kv, s.kv_heads * s.kv_len * s.d), c = i % kv_copies(s);
    return {t.q, t.o, (char *)t.k + c * per, (char *)t.v + c * per};
}

/* `copies` copies of a role's n values stored as `dtype`. f32: the role's
   buffer itself. Others: its first n values converted (by the best ISA)
   into each copy of a buffer kept, one per role and dtype, for every later
   case: the interleaved order switches dtypes between repetitions, and a
   buffer made anew right before a repetition read slower for a while (see
   bm_attention). The copies hold the same values (the kernels have no
   data-dependent paths), so the f32 source never grows past one copy:
   Q4_0 decode at kv_len 32768 cycles through four copies, whose f32
   values were 512 MiB a role. */
void *stored(Role role, qkv_dtype dtype, size_t n, size_t copies)
{
    if (dtype == QKV_F32)
        return buffer(role, copies * n);
    struct Conv {
        void *p = nullptr;
        size_t n = 0;
    };
    static Conv conv[kRoles][QKV_Q4_0 + 1];
    if ((int)dtype < 0 || dtype > QKV_Q4_0)
        return nullptr;
    Conv &c = conv[role][dtype];
    if (c.n >= copies * n)
        return c.p;
    std::free(c.p);
    c = Conv{};
    const float *f = buffer(role, n);
    const size_t per = kv_dtype_bytes(dtype, n);
    c.p = f ? std::aligned_alloc(64, (copies * per + 63) / 64 * 64) : nullptr;
    for (size_t i = 0; c.p && i < copies; i++)
        if (qkv_convert(n, f, QKV_F32, (char *)c.p + i * per, dtype) != QKV_OK) {
            std::free(c.p);
            c.p = nullptr;
        }
    if (!c.p)
        return nullptr;
    c.n = copies * n;
    return c.p;
}

bool get_tensors(const AttnShape &s, Tensors *t)
{
    t->q = stored(kQ, s.q, s.q_heads * s.q_len * s.d, 1);
    t->k = stored(kK, s.kv, s.kv_heads * s.kv_len * s.d, kv_copies(s));
    t->v = stored(kV, s.kv, s.kv_heads * s.kv_len * s.d, kv_copies(s));
    t->o = buffer(kO, s.q_heads * s.q_len * s.d);
    return t->q && t->k && t->v && t->o;
}

/* A page table over a pool of pages, pages visited in a shuffled order as
   an engine's cache hands them out (the same order for every copy of K and
   V). */
const int32_t *page_table(const AttnShape &s)
{
    static std::vector<int32_t> table;
    const size_t n = (s.kv_len + s.page_size - 1) / s.page_size;
    if (table.size() != n) {
        table.resize(n);
        for (size_t i = 0; i < n; i++)
            table[i] = (int32_t)i;
        uint64_t x = 0x2545F4914F6CDD1Dull;
        for (size_t i = n; i > 1; i--) {
            x = x * 6364136223846793005ull + 1442695040888963407ull;
            std::swap(table[i - 1], table[(x >> 33) % i]);
        }
    }
    return table.data();
}

/* The fused call on the benchmark tensors, [head][row][dim] layout, writing o. */
qkv_attention_desc make_desc(const AttnShape &s, const Tensors &t, float *o, qkv_pool *pool)
{
    qkv_attention_desc desc{};
    desc.batch = 1;
    desc.q_heads = s.q_heads;
    desc.kv_heads = s.kv_heads;
    desc.q_len = s.q_len;
    desc.kv_len = s.kv_len;
    desc.head_dim = s.d;
    desc.v_head_dim = s.d;
    desc.q = {t.q, s.q, s.q_heads * s.q_len * s.d, s.q_len * s.d, s.d};
    desc.k = {t.k, s.kv, s.kv_heads * s.kv_len * s.d, s.kv_len * s.d, s.d};
    desc.v = {t.v, s.kv, s.kv_heads * s.kv_len * s.d, s.kv_len * s.d, s.d};
    desc.o = {o, s.q_heads * s.q_len * s.d, s.q_len * s.d, s.d, QKV_F32};
    desc.scale = qkv_default_scale(s.d);
    desc.mask = s.causal ? QKV_MASK_CAUSAL : QKV_MASK_NONE;
    desc.parallel_for = qkv_pool_parallel_for;
    desc.pool = pool;
    if (s.token_major) {
        desc.k.head_stride = desc.v.head_stride = s.d;
        desc.k.row_stride = desc.v.row_stride = s.kv_heads * s.d;
    }
    if (s.page_size) {
        /* vLLM's layout, [pages][kv_heads][page_size][d]: the heads of a
           page side by side, each head's page_size rows together. */
        desc.page_size = s.page_size;
        desc.num_pages = (s.kv_len + s.page_size - 1) / s.page_size;
        desc.page_table = page_table(s);
        desc.page_table_stride = desc.num_pages;
        desc.k.head_stride = desc.v.head_stride = s.page_size * s.d;
        desc.k_page_stride = desc.v_page_stride = s.kv_heads * s.page_size * s.d;
    }
    desc.fpmath = s.fpmath;
    desc.softcap = s.softcap;
    return desc;
}

/* The largest |o - o_ref| of an implementation on a shape, o_ref being the
   same call in strict mode on avx512 or on Arm neon (no bf16 tiles, so
   within 1e-5 of the exact result on these inputs; else the best ISA).
   Once per ISA and shape: a negative value says the calls failed. */
double max_error(const qkv_funcs *f, const AttnShape &s, const Tensors &t, qkv_pool *pool)
{
    static std::map<std::string, double> seen;
    const std::string id = std::to_string(f->isa) + "/" + std::to_string(s.q_len) + "/" +
                           std::to_string(s.kv_len) + "/" + std::to_string(s.d) + "/" +
                           std::to_string(s.causal) + "/" + std::to_string(s.q) + "/" +
                           std::to_string(s.kv) + "/" + std::to_string(s.fpmath) + "/" +
                           std::to_string(s.page_size) + "/" + std::to_string(s.token_major) +
                           "/" + std::to_string(s.softcap);
    const auto it = seen.find(id);
    if (it != seen.end())
        return it->second;
    const qkv_funcs *ref = nullptr;
    if (qkv_isa_funcs(QKV_ISA_AVX512, &ref) != QKV_OK && qkv_isa_funcs(QKV_ISA_NEON, &ref) != QKV_OK)
        qkv_isa_funcs(qkv_isa_best(), &ref);
    const size_t n = s.q_heads * s.q_len * s.d;
    std::vector<float> a(n), b(n);
    qkv_attention_desc da = make_desc(s, t, a.data(), pool), db = make_desc(s, t, b.data(), pool);
    da.fpmath = QKV_FPMATH_STRICT;
    double worst = -1;
    if (ref && ref->attention(&da) == QKV_OK && f->attention(&db) == QKV_OK) {
        worst = 0;
        for (size_t i = 0; i < n; i++)
            worst = std::max(worst, std::isnan(a[i] - b[i]) ? INFINITY : (double)std::fabs(a[i] - b[i]));
    }
    seen[id] = worst;
    return worst;
}

/* One call of the shape per copy of K and V (kv_copies), each made once,
   untimed, where there are several (decode). Right after its buffers were
   made, the first pass over them ran up to 4x slower on a Zen 5 VM, and a
   repetition that caught it moved the median of three: when a buffer was
   converted anew at each change of K/V dtype in the interleaved order,
   f16 took 10.5 ms against 6.8, Q4_0 20-25 against 5.2, their
   repetitions spread 22-62%; with this pass 0.5-5%, and with the buffers
   kept (see stored) 0.2-3%. */
std::vector<qkv_attention_desc> copy_descs(const qkv_funcs *f, const AttnShape &s,
                                           const Tensors &t, qkv_pool *pool)
{
    std::vector<qkv_attention_desc> desc;
    for (size_t c = 0; c < kv_copies(s); c++)
        desc.push_back(make_desc(s, tensors_at(s, t, c), t.o, pool));
    if (desc.size() > 1)
        for (const qkv_attention_desc &d : desc)
            f->attention(&d);
    return desc;
}

void bm_attention(benchmark::State &st, const qkv_funcs *f, AttnShape s, unsigned threads)
{
    Tensors t;
    if (!get_tensors(s, &t)) {
        st.SkipWithError("out of memory");
        return;
    }
    /* The hook is set at every thread count, 1 included, so the work split
       (and thus the work) is the same across a scaling row and only the
       number of threads changes. */
    qkv_pool *pool = nullptr;
    if (qkv_pool_create(threads, &pool) != QKV_OK) {
        st.SkipWithError("qkv_pool_create failed");
        return;
    }
    /* The rows of a qkv_fpmath mode carry their error next to their speed. */
    const bool with_error = s.q != QKV_F32 || s.fpmath != QKV_FPMATH_STRICT;
    const double err = with_error ? max_error(f, s, t, pool) : 0;
    const std::vector<qkv_attention_desc> desc = copy_descs(f, s, t, pool);
    size_t call = 0;
    for (auto _ : st) {
        const qkv_status rc = f->attention(&desc[call++ % desc.size()]);
        if (rc != QKV_OK) {
            st.SkipWithError(qkv_status_string(rc));
            break;
        }
        benchmark::ClobberMemory();
    }
    qkv_pool_destroy(pool);
    set_counters(st, s.flops(), s.bytes());
    if (with_error)
        st.counters["max_err"] = err;
}

double median_of(std::vector<double> &x)
{
    std::sort(x.begin(), x.end());
    return x.empty() ? 0.0 : x[x.size() / 2];
}

/* The iterations of a benchmark that times a case against its baseline:
   each runs the baseline, the case, the case, the baseline (call(0),
   call(1): one run of that side, returning its status), so that a slow
   minute on a shared host moves both and neither always runs first (the
   second of two back-to-back calls ran 1-2% faster or slower, depending
   on the pair). Timed as the case alone (manual time, its two runs'
   mean); counters vs_base, the median over the iterations of the
   baseline's time over the case's, and base_ms, the baseline's median
   time. */
template <class Call>
void time_in_turns(benchmark::State &st, Call &&call)
{
    std::vector<double> ratio, base_ms;
    for (auto _ : st) {
        double ms[2] = {0, 0};   /* baseline, case */
        qkv_status rc = QKV_OK;
        for (int w : {0, 1, 1, 0}) {
            const auto t0 = std::chrono::steady_clock::now();
            rc = call(w);
            ms[w] += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
            if (rc != QKV_OK)
                break;
        }
        if (rc != QKV_OK) {
            st.SkipWithError(qkv_status_string(rc));
            break;
        }
        st.SetIterationTime(ms[1] / 2 / 1e3);
        ratio.push_back(ms[0] / ms[1]);
        base_ms.push_back(ms[0] / 2);
        benchmark::ClobberMemory();
    }
    st.counters["vs_base"] = median_of(ratio);
    st.counters["base_ms"] = median_of(base_ms);
}

/* A case and its baseline (the same call on f32 K/V, or on contiguous
   K/V), timed in turn (time_in_turns): run as two benchmarks seconds to
   minutes apart, the f16 decode of one Zen 5 report was 1.32 and of
   another 1.90 times as fast as f32 on the same code. Each side cycles
   through its copies of K and V. */
void bm_pair(benchmark::State &st, const qkv_funcs *f, AttnShape s, AttnShape base)
{
    Tensors tb, t;
    /* The baseline first: f32 K/V is the role's own buffer, which a later
       f32 request may grow (freeing it), where the stored dtypes' copies
       never move. */
    if (!get_tensors(base, &tb) || !get_tensors(s, &t)) {
        st.SkipWithError("out of memory");
        return;
    }
    qkv_pool *pool = nullptr;
    if (qkv_pool_create(1, &pool) != QKV_OK) {
        st.SkipWithError("qkv_pool_create failed");
        return;
    }
    /* The rows of a qkv_fpmath mode carry their error next to their speed. */
    const bool with_error = s.q != QKV_F32 || s.fpmath != QKV_FPMATH_STRICT;
    const double err = with_error ? max_error(f, s, t, pool) : 0;
    const std::vector<qkv_attention_desc> side[2] = {copy_descs(f, base, tb, pool),
                                                     copy_descs(f, s, t, pool)};
    size_t calls[2] = {0, 0};
    time_in_turns(st, [&](int w) { return f->attention(&side[w][calls[w]++ % side[w].size()]); });
    qkv_pool_destroy(pool);
    set_counters(st, s.flops(), s.bytes());
    if (with_error)
        st.counters["max_err"] = err;
}

/* The decode breakdown: one decode from memory and one with K and V in
   cache in every iteration, side by side, so that a slow minute on a
   shared host moves both (run as two benchmarks, minutes apart, their
   difference drifted by more than it measured: Q4_0 on Zen 5 read -0.03
   ms from memory in one report). From memory: the copies of copy_descs
   but the first, in turn; in cache: the first copy, called twice, the
   second call timed. Counters cold_ms and warm_ms: the medians of each. */
void bm_decode_parts(benchmark::State &st, const qkv_funcs *f, AttnShape s)
{
    Tensors t;
    if (kv_copies(s) < 2 || !get_tensors(s, &t)) {
        st.SkipWithError(kv_copies(s) < 2 ? "K and V fill the cold buffer alone" : "out of memory");
        return;
    }
    qkv_pool *pool = nullptr;
    if (qkv_pool_create(1, &pool) != QKV_OK) {
        st.SkipWithError("qkv_pool_create failed");
        return;
    }
    const std::vector<qkv_attention_desc> desc = copy_descs(f, s, t, pool);
    std::vector<double> cold, warm;
    size_t call = 0;
    for (auto _ : st) {
        const auto t0 = std::chrono::steady_clock::now();
        qkv_status rc = f->attention(&desc[1 + call++ % (desc.size() - 1)]);
        const auto t1 = std::chrono::steady_clock::now();
        if (rc == QKV_OK)
            rc = f->attention(&desc[0]);
        const auto t2 = std::chrono::steady_clock::now();
        if (rc == QKV_OK)
            rc = f->attention(&desc[0]);
        const auto t3 = std::chrono::steady_clock::now();
        if (rc != QKV_OK) {
            st.SkipWithError(qkv_status_string(rc));
            break;
        }
        cold.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
        warm.push_back(std::chrono::duration<double, std::milli>(t3 - t2).count());
        benchmark::ClobberMemory();
    }
    qkv_pool_destroy(pool);
    st.counters["cold_ms"] = median_of(cold);
    st.counters["warm_ms"] = median_of(warm);
}

/* ---- an engine's batch and merging --------------------------------------- */

/* 16 sequences of the decode shape, lengths from 1 to 4096 keys (evenly on
   a log scale); the odd ones decode one token, the even ones prefill all
   their keys (a causal chunk). K and V in pages of 16 keys. */
constexpr size_t kBatchSeqs = 16, kBatchPage = 16;

struct BatchData {
    std::vector<size_t> rows, keys;
    std::vector<int32_t> q_start, kv_lens, table;
    size_t total_rows = 0, pages = 0, max_keys = 0;
    float *q = nullptr, *k = nullptr, *v = nullptr, *o = nullptr;
    double flops = 0;
};

const BatchData *batch_data()
{
    static BatchData b;
    if (b.q)
        return &b;
    const size_t d = kDecodeDim, hq = kDecodeQHeads, hkv = kDecodeKvHeads;
    b.q_start.push_back(0);
    for (size_t i = 0; i < kBatchSeqs; i++) {
        const size_t len = (size_t)std::lround(std::pow(4096.0, (double)i / (kBatchSeqs - 1)));
        const size_t rows = i % 2 ? 1 : len;
        b.rows.push_back(rows);
        b.keys.push_back(len);
        b.total_rows += rows;
        b.q_start.push_back((int32_t)b.total_rows);
        b.kv_lens.push_back((int32_t)len);
        b.max_keys = std::max(b.max_keys, len);
        /* Useful flops: causal for the prefill rows, all keys for decode. */
        const double pairs = rows == 1 ? (double)len : (double)len * (double)(len + 1) / 2;
        b.flops += 4.0 * (double)hq * pairs * (double)d;
    }
    const size_t per_seq = (b.max_keys + kBatchPage - 1) / kBatchPage;
    for (size_t i = 0; i < kBatchSeqs; i++) {
        for (size_t p = 0; p < per_seq; p++)
            b.table.push_back(p < (b.keys[i] + kBatchPage - 1) / kBatchPage ? (int32_t)b.pages++ : 0);
    }
    /* Pages [pages][kv_heads][page][d], visited in table order: fine. */
    b.q = buffer(kQ, b.total_rows * hq * d);
    b.k = buffer(kK, b.pages * hkv * kBatchPage * d);
    b.v = buffer(kV, b.pages * hkv * kBatchPage * d);
    b.o = buffer(kO, b.total_rows * hq * d);
    return &b;
}

/* The descriptor of the whole batch, or of sequence `only` alone. */
qkv_attention_desc batch_desc(const BatchData &b, qkv_pool *pool, long only)
{
    const size_t d = kDecodeDim, hq = kDecodeQHeads, hkv = kDecodeKvHeads;
    const size_t per_seq = (b.max_keys + kBatchPage - 1) / kBatchPage;
    qkv_attention_desc desc{};
    desc.q_heads = hq;
    desc.kv_heads = hkv;
    desc.head_dim = desc.v_head_dim = d;
    desc.q = {b.q, QKV_F32, 0, d, hq * d};
    desc.k = {b.k, QKV_F32, 0, kBatchPage * d, d};
    desc.v = {b.v, QKV_F32, 0, kBatchPage * d, d};
    desc.o = {b.o, 0, d, hq * d, QKV_F32};
    desc.scale = qkv_default_scale(d);
    desc.mask = QKV_MASK_CAUSAL;
    desc.page_size = kBatchPage;
    desc.num_pages = b.pages;
    desc.k_page_stride = desc.v_page_stride = hkv * kBatchPage * d;
    desc.page_table_stride = per_seq;
    desc.parallel_for = qkv_pool_parallel_for;
    desc.pool = pool;
    if (only < 0) {
        desc.batch = kBatchSeqs;
        desc.q_len = b.total_rows;
        desc.kv_len = b.max_keys;
        desc.q_start = b.q_start.data();
        desc.kv_lens = b.kv_lens.data();
        desc.page_table = b.table.data();
    } else {
        const size_t i = (size_t)only;
        desc.batch = 1;
        desc.q_len = b.rows[i];
        desc.kv_len = b.keys[i];
        desc.page_table = b.table.data() + i * per_seq;
        desc.q.data = b.q + (size_t)b.q_start[i] * hq * d;
        desc.o.data = b.o + (size_t)b.q_start[i] * hq * d;
    }
    return desc;
}

/* The batch in one call against the same work as one call a sequence,
   both with the same pool, timed in turn (time_in_turns: the separate
   calls are the baseline): timed as the one call. */
void bm_batch(benchmark::State &st, const qkv_funcs *f, unsigned threads)
{
    const BatchData *b = batch_data();
    qkv_pool *pool = nullptr;
    if (!b->q || !b->k || !b->v || !b->o || qkv_pool_create(threads, &pool) != QKV_OK) {
        st.SkipWithError("setup failed");
        return;
    }
    std::vector<qkv_attention_desc> desc[2];   /* separate calls, one call */
    desc[1].push_back(batch_desc(*b, pool, -1));
    for (size_t i = 0; i < kBatchSeqs; i++)
        desc[0].push_back(batch_desc(*b, pool, (long)i));
    time_in_turns(st, [&](int w) {
        qkv_status rc = QKV_OK;
        for (size_t i = 0; i < desc[w].size() && rc == QKV_OK; i++)
            rc = f->attention(&desc[w][i]);
        return rc;
    });
    qkv_pool_destroy(pool);
    set_counters(st, b->flops, 0);
}

/* Merging two partial results of merge_rows(dv) rows of dv: reads both
   sides and writes one (12 bytes an element), from memory: the two span
   cold_bytes() at least (262144 rows of 128, 256 MiB, are most of a Xeon's
   260 MiB L3; there the merge read 120% of the read probe's GB/s over them,
   112% over 520 MiB: reads and writes together outrun one core's reads). */
size_t merge_rows(size_t dv)
{
    const size_t rows = cold_bytes() / (2 * dv * sizeof(float));
    return rows > 262144 ? rows : 262144;
}

void bm_merge(benchmark::State &st, const qkv_funcs *f, size_t rows, size_t dv)
{
    float *o = buffer(kO, rows * dv), *o2 = buffer(kS, rows * dv);
    std::vector<float> lse(rows), lse2(rows);
    if (!o || !o2) {
        st.SkipWithError("out of memory");
        return;
    }
    for (size_t r = 0; r < rows; r++) {
        lse[r] = (float)(r % 7);
        lse2[r] = (float)(r % 5);
    }
    for (auto _ : st) {
        const qkv_status rc = f->merge_states(rows, dv, o, dv, lse.data(), o2, dv, lse2.data());
        if (rc != QKV_OK) {
            st.SkipWithError(qkv_status_string(rc));
            break;
        }
        benchmark::ClobberMemory();
    }
    set_counters(st, 0, 12.0 * (double)(rows * dv));
}

#ifdef QKV_BENCH_OPENBLAS
/* The peer: attention as most frameworks wrote it before fused kernels,
   S = scale·Q·Kᵀ (sgemm), mask, softmax (qkv's best ISA, SLEEF-based),
   O = P·V (sgemm), one head at a time with S materialised in memory.
   OpenBLAS threads the GEMMs itself; the softmax rows go to the qkv pool
   so that both halves use the same number of threads. */
struct SoftmaxJob {
    const qkv_funcs *f;
    float *s;
    size_t rows, cols, ld;
    ptrdiff_t first_pos;      /* key position of row 0 (causal), kv_len - q_len */
    bool causal;
    std::atomic<int> failed{0};
};

/* Rows per softmax task: enough work per task (64 rows × n keys) that the
   hand-off costs nothing, and many tasks at prefill sizes. */
constexpr size_t kSoftmaxRows = 64;

void softmax_task(void *ctx, size_t index)
{
    SoftmaxJob *j = static_cast<SoftmaxJob *>(ctx);
    const size_t r0 = index * kSoftmaxRows;
    const size_t r1 = std::min(r0 + kSoftmaxRows, j->rows);
    if (j->causal) {
        for (size_t i = r0; i < r1; i++) {
            const ptrdiff_t p = j->first_pos + (ptrdiff_t)i;
            const size_t from = p < 0 ? 0 : (size_t)p + 1;
            for (size_t c = from; c < j->cols; c++)
                j->s[i * j->ld + c] = -INFINITY;
        }
    }
    if (j->f->softmax(r1 - r0, j->cols, j->s + r0 * j->ld, j->ld) != QKV_OK)
        j->failed = 1;
}

/* One pass of the pipeline over every head into t.o; false if a softmax
   call failed. */
bool openblas_pipeline(const AttnShape &s, const Tensors &t, float *S, qkv_pool *pool,
                       const qkv_funcs *best)
{
    /* With q_len == 1 (decode) the query heads of one KV head are stacked
       into one GEMM of `group` rows: what a BLAS-based decoder does to read
       each K and V row once per group instead of once per head. */
    const size_t group = s.q_heads / s.kv_heads;
    const size_t rows = s.q_len == 1 ? group : s.q_len;
    const size_t steps = s.q_len == 1 ? s.kv_heads : s.q_heads;
    const size_t d = s.d, n = s.kv_len;
    for (size_t h = 0; h < steps; h++) {
        const size_t g = s.q_len == 1 ? h : h / group;     /* KV head */
        const float *q = (const float *)t.q + h * rows * d;
        float *o = t.o + h * rows * d;
        const float *k = (const float *)t.k + g * n * d, *v = (const float *)t.v + g * n * d;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, (int)n, (int)d,
                    qkv_default_scale(d), q, (int)d, k, (int)d, 0.0f, S, (int)n);
        SoftmaxJob job;
        job.f = best;
        job.s = S;
        job.rows = rows;
        job.cols = n;
        job.ld = n;
        job.first_pos = (ptrdiff_t)s.kv_len - (ptrdiff_t)s.q_len;
        job.causal = s.causal;
        qkv_pool_parallel_for(pool, (rows + kSoftmaxRows - 1) / kSoftmaxRows, softmax_task, &job);
        if (job.failed)
            return false;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)d, (int)n, 1.0f,
                    S, (int)n, v, (int)d, 0.0f, o, (int)d);
    }
    return true;
}

/* A peer that computed something else (a wrong mask, scale or head
   mapping) would make the comparison meaningless, so each shape is checked
   once against qkv's best ISA before it is timed. Both stay within 1e-5 of
   the exact result for these inputs, so 1e-4 separates rounding from a
   mistake, which would be off by 1e-2 or more. Shapes beyond 4096 x 4096
   scores are not checked: same code path, and the check would cost as
   much as the benchmark. Returns an error text, or nullptr. */
const char *openblas_check(const AttnShape &s, const Tensors &t, float *S, qkv_pool *pool,
                           const qkv_funcs *best)
{
    static std::set<std::string> checked;
    if ((double)s.q_len * (double)s.kv_len > 4096.0 * 4096.0)
        return nullptr;
    const std::string id = std::to_string(s.q_heads) + "/" + std::to_string(s.kv_heads) + "/" +
                           std::to_string(s.q_len) + "/" + std::to_string(s.kv_len) + "/" +
                           std::to_string(s.d) + "/" + std::to_string(s.causal);
    if (checked.count(id))
        return nullptr;
    if (!openblas_pipeline(s, t, S, pool, best))
        return "softmax failed";
    std::vector<float> ref(s.q_heads * s.q_len * s.d);
    const qkv_attention_desc desc = make_desc(s, t, ref.data(), pool);
    if (best->attention(&desc) != QKV_OK)
        return "qkv_attention failed on the check";
    for (size_t i = 0; i < ref.size(); i++)
        if (!(std::fabs(ref[i] - t.o[i]) <= 1e-4f))
            return "OpenBLAS pipeline disagrees with qkv_attention";
    checked.insert(id);
    return nullptr;
}

void bm_attention_openblas(benchmark::State &st, const qkv_funcs *best, AttnShape s, unsigned threads)
{
    Tensors t;
    const size_t rows = s.q_len == 1 ? s.q_heads / s.kv_heads : s.q_len;
    float *S = buffer(kS, rows * s.kv_len);
    if (!get_tensors(s, &t) || !S) {
        st.SkipWithError("out of memory");
        return;
    }
    qkv_pool *pool = nullptr;
    if (qkv_pool_create(threads, &pool) != QKV_OK) {
        st.SkipWithError("qkv_pool_create failed");
        return;
    }
    openblas_set_num_threads((int)threads);
    if (const char *err = openblas_check(s, t, S, pool, best)) {
        st.SkipWithError(err);
    } else {
        size_t call = 0;
        for (auto _ : st) {
            if (!openblas_pipeline(s, tensors_at(s, t, call++), S, pool, best)) {
                st.SkipWithError("softmax failed");
                break;
            }
            benchmark::ClobberMemory();
        }
    }
    /* Back to one thread: idle OpenBLAS workers spin for a while after a
       call and would steal the cores from the next benchmark. */
    openblas_set_num_threads(1);
    qkv_pool_destroy(pool);
    set_counters(st, s.flops(), s.bytes());
}
#endif

/* ---- the three stages (one head, prefill-like m = n) --------------------- */

void bm_scores(benchmark::State &st, const qkv_funcs *f, size_t m, size_t n, size_t d)
{
    float *q = buffer(kQ, m * d), *k = buffer(kK, n * d), *s = buffer(kS, m * n);
    if (!q || !k || !s) {
        st.SkipWithError("out of memory");
        return;
    }
    const float scale = qkv_default_scale(d);
    for (auto _ : st) {
        const qkv_status rc = f->scores(m, n, d, scale, q, d, k, d, s, n);
        if (rc != QKV_OK) {
            st.SkipWithError(qkv_status_string(rc));
            break;
        }
        benchmark::ClobberMemory();
    }
    set_counters(st, 2.0 * (double)m * (double)n * (double)d, 4.0 * (double)(m * d + n * d + m * n));
}

void bm_softmax(benchmark::State &st, const qkv_funcs *f, size_t m, size_t n)
{
    float *s = buffer(kS, m * n);
    if (!s) {
        st.SkipWithError("out of memory");
        return;
    }
    /* In place: from the second iteration on the input is the previous
       output (probabilities), which times the same as fresh scores since the
       kernels have no data-dependent paths; refilling would dominate. */
    for (auto _ : st) {
        const qkv_status rc = f->softmax(m, n, s, n);
        if (rc != QKV_OK) {
            st.SkipWithError(qkv_status_string(rc));
            break;
        }
        benchmark::ClobberMemory();
    }
    st.SetItemsProcessed((int64_t)st.iterations() * (int64_t)(m * n));
    set_counters(st, 0, 8.0 * (double)(m * n));
}

void bm_weighted_sum(benchmark::State &st, const qkv_funcs *f, size_t m, size_t n, size_t d)
{
    float *p = buffer(kS, m * n), *v = buffer(kV, n * d), *o = buffer(kO, m * d);
    if (!p || !v || !o) {
        st.SkipWithError("out of memory");
        return;
    }
    for (auto _ : st) {
        const qkv_status rc = f->weighted_sum(m, n, d, p, n, v, d, o, d);
        if (rc != QKV_OK) {
            st.SkipWithError(qkv_status_string(rc));
            break;
        }
        benchmark::ClobberMemory();
    }
    set_counters(st, 2.0 * (double)m * (double)n * (double)d, 4.0 * (double)(m * n + n * d + m * d));
}

#ifdef QKV_BENCH_OPENBLAS
void bm_scores_openblas(benchmark::State &st, size_t m, size_t n, size_t d)
{
    float *q = buffer(kQ, m * d), *k = buffer(kK, n * d), *s = buffer(kS, m * n);
    if (!q || !k || !s) {
        st.SkipWithError("out of memory");
        return;
    }
    openblas_set_num_threads(1);
    for (auto _ : st) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)m, (int)n, (int)d,
                    qkv_default_scale(d), q, (int)d, k, (int)d, 0.0f, s, (int)n);
        benchmark::ClobberMemory();
    }
    set_counters(st, 2.0 * (double)m * (double)n * (double)d, 4.0 * (double)(m * d + n * d + m * n));
}

void bm_weighted_sum_openblas(benchmark::State &st, size_t m, size_t n, size_t d)
{
    float *p = buffer(kS, m * n), *v = buffer(kV, n * d), *o = buffer(kO, m * d);
    if (!p || !v || !o) {
        st.SkipWithError("out of memory");
        return;
    }
    openblas_set_num_threads(1);
    for (auto _ : st) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m, (int)d, (int)n, 1.0f,
                    p, (int)n, v, (int)d, 0.0f, o, (int)d);
        benchmark::ClobberMemory();
    }
    set_counters(st, 2.0 * (double)m * (double)n * (double)d, 4.0 * (double)(m * n + n * d + m * d));
}
#endif

/* ---- registration ------------------------------------------------------- */

struct Impl {
    std::string name;
    const qkv_funcs *f;       /* openblas: the best ISA, for its softmax */
    bool is_scalar, is_blas;
};

std::vector<Impl> implementations()
{
    std::vector<Impl> out;
    for (int i = QKV_ISA_SCALAR; i < QKV_ISA_COUNT; i++) {
        const qkv_isa isa = (qkv_isa)i;
        const qkv_funcs *f = nullptr;
        if (qkv_isa_supported(isa) && qkv_isa_funcs(isa, &f) == QKV_OK)
            out.push_back({qkv_isa_name(isa), f, isa == QKV_ISA_SCALAR, false});
    }
#ifdef QKV_BENCH_OPENBLAS
    const qkv_funcs *best = nullptr;
    if (qkv_isa_funcs(qkv_isa_best(), &best) == QKV_OK)
        out.push_back({"openblas", best, false, true});
#endif
    return out;
}

class Registrar {
public:
    explicit Registrar(const Config &c) : cfg_(c) {}

    /* manual: the benchmark times itself (bm_pair, bm_batch), at least
       min_scale times the min_time. */
    template <class Fn>
    void add(const std::string &name, Fn &&fn, bool manual = false, double min_scale = 1)
    {
        if (!names_.insert(name).second)
            return;             /* a scaling row that equals a sweep row */
        benchmark::internal::Benchmark *b = benchmark::RegisterBenchmark(name.c_str(), fn);
        /* Real time: the pool's workers do the work, the main thread's CPU
           time would miss it. Milliseconds suit everything from the
           smallest stage to the 16k prefill. */
        if (manual)
            b->UseManualTime();
        else
            b->UseRealTime();
        b->Unit(benchmark::kMillisecond)->MinTime(min_scale * cfg_.min_time);
        /* Medians of a few repetitions: the machines this runs on are often
           shared, and a median shrugs off a repetition that was disturbed. */
        if (cfg_.reps > 1)
            b->Repetitions(cfg_.reps)->ReportAggregatesOnly(true);
    }

private:
    const Config &cfg_;
    std::set<std::string> names_;
};

std::string key(const char *k, size_t v)
{
    return std::string("/") + k + ":" + std::to_string(v);
}

void register_all(const Config &cfg)
{
    const Sizes z = sizes_for(cfg.set);
    Registrar reg(cfg);
    const std::vector<Impl> impls = implementations();

    for (const Impl &im : impls) {
        for (size_t n : z.stage_n) {
            if (im.is_scalar && n > z.scalar_max_n)
                continue;
            for (size_t d : z.stage_d) {
                const std::string shape = key("m", n) + key("n", n) + key("d", d);
                if (im.is_blas) {
#ifdef QKV_BENCH_OPENBLAS
                    reg.add("scores/" + im.name + shape,
                            [=](benchmark::State &st) { bm_scores_openblas(st, n, n, d); });
                    reg.add("weighted_sum/" + im.name + shape,
                            [=](benchmark::State &st) { bm_weighted_sum_openblas(st, n, n, d); });
#endif
                    continue;
                }
                const qkv_funcs *f = im.f;
                reg.add("scores/" + im.name + shape,
                        [=](benchmark::State &st) { bm_scores(st, f, n, n, d); });
                reg.add("weighted_sum/" + im.name + shape,
                        [=](benchmark::State &st) { bm_weighted_sum(st, f, n, n, d); });
            }
            if (!im.is_blas) {
                const qkv_funcs *f = im.f;
                reg.add("softmax/" + im.name + key("m", n) + key("n", n),
                        [=](benchmark::State &st) { bm_softmax(st, f, n, n); });
            }
        }
    }

    auto add_fused = [&](const Impl &im, const std::string &prefix, AttnShape s, unsigned t) {
        const std::string name = prefix + key("threads", t);
        const qkv_funcs *f = im.f;
        if (im.is_blas) {
#ifdef QKV_BENCH_OPENBLAS
            reg.add(name, [=](benchmark::State &st) { bm_attention_openblas(st, f, s, t); });
#endif
        } else {
            reg.add(name, [=](benchmark::State &st) { bm_attention(st, f, s, t); });
        }
    };

    /* One thread, against a baseline (bm_pair); not for the OpenBLAS peer.
       A pair's time is its case's alone, a quarter of what an iteration
       takes: at the plain min_time the 50 ms prefills got two iterations
       a repetition, and the same pair's ratio read 0.94, 0.97 and 0.99 in
       three runs (at three times the min_time 0.96-0.98, the report then
       taking twice as long); prefills get twice the min_time, decodes
       (5-15 ms a call, 10-20 iterations) the plain one. */
    auto add_pair = [&](const Impl &im, const std::string &prefix, AttnShape s, AttnShape base) {
        const qkv_funcs *f = im.f;
        reg.add(prefix + key("threads", 1), [=](benchmark::State &st) { bm_pair(st, f, s, base); },
                true, s.q_len > 16 ? 2.0 : 1.0);
    };

    const std::vector<unsigned> threads = scaling_threads(cfg);

    /* Grouped by implementation so that a run (and the report's progress)
       goes one implementation at a time. */
    for (const Impl &im : impls) {
        for (size_t n : z.prefill_n) {
            if (im.is_scalar && n > z.scalar_max_n)
                continue;
            for (size_t d : z.prefill_d)
                for (int causal = 0; causal < 2; causal++) {
                    const AttnShape s{kPrefillHeads, kPrefillHeads, n, n, d, causal != 0};
                    const std::string prefix = "attention/" + im.name + key("n", n) + key("d", d) +
                                               key("causal", (size_t)causal);
                    const bool scaling = z.scale_everything ||
                                         (n == z.scaling_n && d == z.scaling_d && !causal);
                    add_fused(im, prefix, s, 1);
                    if (scaling)
                        for (unsigned t : threads)
                            add_fused(im, prefix, s, t);
                }
        }
        for (size_t kv : z.decode_kv) {
            const AttnShape s{kDecodeQHeads, kDecodeKvHeads, 1, kv, kDecodeDim, false};
            const std::string prefix = "decode/" + im.name + key("kv_len", kv);
            add_fused(im, prefix, s, 1);
            if (z.scale_everything || kv == z.scaling_kv)
                for (unsigned t : threads)
                    add_fused(im, prefix, s, t);
        }
        /* The stored K/V dtypes, on the scaling shapes: decode reads a
           half (16-bit) or about a quarter (Q8_0) of f32's bytes; prefill
           must not lose speed to the conversion. (f32 rows are the ones
           above, named without a kv key so that reports of older commits
           compare.) Not for scalar or the OpenBLAS peer. */
        if (im.is_scalar || im.is_blas)
            continue;
        /* Paged K/V: the same decode through a shuffled page table (whole
           pages: the pool holds the contiguous rows' bytes), f32 and f16
           (engines keep their caches in 16 bits). */
        for (size_t ps : {(size_t)16, (size_t)128})
            for (qkv_dtype dt : {QKV_F32, QKV_F16}) {
                if (z.scaling_kv % ps)
                    continue;
                AttnShape s{kDecodeQHeads, kDecodeKvHeads, 1, z.scaling_kv, kDecodeDim, false};
                s.kv = dt;
                const AttnShape contiguous = s;
                s.page_size = ps;
                add_pair(im, "decode/" + im.name + key("kv_len", z.scaling_kv) + key("page", ps) +
                                 (dt == QKV_F32 ? std::string() : std::string("/kv:") + dtype_name(dt)),
                         s, contiguous);
            }
        /* A causal prefill (as a chunked prefill runs) through pages of 16
           keys, vLLM's default, against the same call on contiguous K/V;
           on the ISAs with bf16 tiles also with bf16 Q/K/V in BF16 mode,
           whose tiles cross pages. */
        {
            const std::string causal = "attention/" + im.name + key("n", z.scaling_n) +
                                       key("d", z.scaling_d) + key("causal", 1);
            AttnShape s{kPrefillHeads, kPrefillHeads, z.scaling_n, z.scaling_n, z.scaling_d, true};
            AttnShape contiguous = s;
            s.page_size = 16;
            add_pair(im, causal + key("page", 16), s, contiguous);
            const qkv_isa isa = im.f->isa;
            if (isa == QKV_ISA_AVX512BF16 || isa == QKV_ISA_AMX || isa == QKV_ISA_NEONBF16 ||
                isa == QKV_ISA_SVEBF16) {
                s.q = s.kv = contiguous.q = contiguous.kv = QKV_BF16;
                s.fpmath = contiguous.fpmath = QKV_FPMATH_BF16;
                add_pair(im, causal + key("page", 16) + "/qkv:bf16/fpmath:bf16", s, contiguous);
                add_fused(im, causal + "/qkv:bf16/fpmath:bf16", contiguous, 1);
            }
        }
        /* A logit soft-cap of 50 (Gemma 2's), against the same prefill
           without one: what the modifier pass and its tanh cost. */
        {
            AttnShape s{kPrefillHeads, kPrefillHeads, z.scaling_n, z.scaling_n, z.scaling_d, false};
            const AttnShape no_cap = s;
            s.softcap = 50.0f;
            add_pair(im, "softcap/" + im.name + key("n", z.scaling_n) + key("d", z.scaling_d) +
                             key("causal", 0) + key("cap", 50), s, no_cap);
        }
        /* The same decode with every key's heads side by side, f32 and f16
           (llama.cpp's cache and its default dtype). */
        for (qkv_dtype dt : {QKV_F32, QKV_F16}) {
            AttnShape s{kDecodeQHeads, kDecodeKvHeads, 1, z.scaling_kv, kDecodeDim, false};
            s.kv = dt;
            const AttnShape head_major = s;
            s.token_major = true;
            add_pair(im, "decode/" + im.name + key("kv_len", z.scaling_kv) + "/layout:token_major" +
                             (dt == QKV_F32 ? std::string() : std::string("/kv:") + dtype_name(dt)),
                     s, head_major);
        }
        /* One, two or eight query heads per KV head (MHA: Llama 2, Phi;
           groups of 2: Gemma 2; of 8: Llama 3 70B): the decode kernels'
           one- and two-row forms and the DOT form, f32 and f16, K/V the
           same bytes as the rows of groups of 4. */
        for (size_t hq : {kDecodeKvHeads, 2 * kDecodeKvHeads, 8 * kDecodeKvHeads})
            for (qkv_dtype dt : {QKV_F32, QKV_F16}) {
                AttnShape s{hq, kDecodeKvHeads, 1, z.scaling_kv, kDecodeDim, false};
                s.kv = dt;
                add_fused(im, "decode/" + im.name + key("kv_len", z.scaling_kv) + key("q_heads", hq) +
                                  (dt == QKV_F32 ? std::string() : std::string("/kv:") + dtype_name(dt)),
                          s, 1);
            }
        /* An engine's batch: one ragged call against the same work as
           separate calls, with the scaling thread counts. */
        for (unsigned t : threads) {
            const qkv_funcs *f = im.f;
            reg.add("batch/" + im.name + "/calls:one" + key("threads", t),
                    [=](benchmark::State &st) { bm_batch(st, f, t); }, true);
        }
        {
            const qkv_funcs *f = im.f;
            const size_t rows = merge_rows(kDecodeDim);
            reg.add("merge/" + im.name + key("rows", rows) + key("dv", kDecodeDim),
                    [=](benchmark::State &st) { bm_merge(st, f, rows, kDecodeDim); });
        }
        /* Q, K and V stored as bf16, prefill, in each qkv_fpmath mode: what
           the bf16 tiles of avx512bf16, amx, neonbf16 and svebf16 buy, and what they cost in
           accuracy (every SIMD ISA runs both modes; those without bf16
           tiles run BF16 as STRICT). */
        for (qkv_fpmath m : {QKV_FPMATH_STRICT, QKV_FPMATH_BF16}) {
            AttnShape p{kPrefillHeads, kPrefillHeads, z.scaling_n, z.scaling_n, z.scaling_d, false};
            p.q = p.kv = QKV_BF16;
            p.fpmath = m;
            add_fused(im, "attention/" + im.name + key("n", z.scaling_n) + key("d", z.scaling_d) +
                              key("causal", 0) + "/qkv:bf16/fpmath:" +
                              (m == QKV_FPMATH_BF16 ? "bf16" : "strict"), p, 1);
        }
        /* The decode shape from memory and with K and V left in cache
           (the arithmetic without the memory), side by side: the report's
           decode breakdown (where the time goes) sets the difference
           against the time the bytes take to stream. */
        for (qkv_dtype dt : {QKV_F32, QKV_F16, QKV_BF16, QKV_Q8_0, QKV_Q4_0}) {
            AttnShape s{kDecodeQHeads, kDecodeKvHeads, 1, kPartsKv, kDecodeDim, false};
            s.kv = dt;
            const qkv_funcs *f = im.f;
            reg.add("decode_parts/" + im.name + key("kv_len", kPartsKv) + "/kv:" + dtype_name(dt) +
                        key("threads", 1),
                    [=](benchmark::State &st) { bm_decode_parts(st, f, s); });
        }
        for (qkv_dtype dt : {QKV_F16, QKV_BF16, QKV_Q8_0, QKV_Q4_0}) {
            const std::string kvkey = std::string("/kv:") + dtype_name(dt);
            AttnShape s{kDecodeQHeads, kDecodeKvHeads, 1, z.scaling_kv, kDecodeDim, false};
            s.kv = dt;
            const std::string prefix = "decode/" + im.name + key("kv_len", z.scaling_kv) + kvkey;
            AttnShape f32 = s;
            f32.kv = QKV_F32;
            add_pair(im, prefix, s, f32);
            for (unsigned t : threads)
                add_fused(im, prefix, s, t);
            if (dt != QKV_F16 && dt != QKV_BF16)
                continue;
            /* The same decode in BF16 mode where the decode forms take
               bf16 dot products (Q·Kᵀ; P·V too with a bf16 V), and, with
               Q stored as bf16 too, in strict mode (exact bf16 Q·Kᵀ there;
               on every ISA, for the comparison). */
            if (im.f->isa == QKV_ISA_AVX512BF16 || im.f->isa == QKV_ISA_AMX) {
                AttnShape b = s;
                b.fpmath = QKV_FPMATH_BF16;
                add_fused(im, prefix + "/fpmath:bf16", b, 1);
            }
            if (dt == QKV_BF16) {
                AttnShape b = s;
                b.q = QKV_BF16;
                add_fused(im, prefix + "/q:bf16", b, 1);
            }
            for (size_t d : z.prefill_d)
                for (int causal = 0; causal < 2; causal++) {
                    AttnShape p{kPrefillHeads, kPrefillHeads, z.scaling_n, z.scaling_n, d, causal != 0};
                    const AttnShape f32p = p;
                    p.kv = dt;
                    add_pair(im, "attention/" + im.name + key("n", z.scaling_n) + key("d", d) +
                                     key("causal", (size_t)causal) + kvkey, p, f32p);
                }
        }
    }
}

/* ---- context and probes ------------------------------------------------- */

std::string cpuinfo_field(const char *field)
{
    std::ifstream in("/proc/cpuinfo");
    std::string line;
    while (std::getline(in, line)) {
        if (line.compare(0, std::strlen(field), field) != 0)
            continue;
        const size_t colon = line.find(':');
        if (colon == std::string::npos)
            continue;
        /* The field name must end at the colon (modulo tabs): "model" must
           not match "model name". */
        std::string name = line.substr(0, colon);
        name.erase(name.find_last_not_of(" \t") + 1);
        if (name != field)
            continue;
        std::string value = line.substr(colon + 1);
        value.erase(0, value.find_first_not_of(' '));
        return value;
    }
    return "";
}

std::string fmt(double x)
{
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.2f", x);
    return buf;
}

void add_context(const Config &cfg)
{
    std::string model = cpuinfo_field("model name");
    if (model.empty())
        model = cpuinfo_field("Hardware");       /* some Arm kernels */
    benchmark::AddCustomContext("cpu_model", model.empty() ? "unknown" : model);
    const std::string family = cpuinfo_field("cpu family"), id = cpuinfo_field("model");
    if (!family.empty())
        benchmark::AddCustomContext("cpu_family_model", family + "/" + id);

    std::string isas;
    for (int i = QKV_ISA_SCALAR; i < QKV_ISA_COUNT; i++)
        if (qkv_isa_supported((qkv_isa)i))
            isas += std::string(isas.empty() ? "" : ",") + qkv_isa_name((qkv_isa)i);
    benchmark::AddCustomContext("qkv_isas", isas);
    benchmark::AddCustomContext("qkv_isa_best", qkv_isa_name(qkv_isa_best()));
    benchmark::AddCustomContext("qkv_set", cfg.set);
    benchmark::AddCustomContext("scalar_max_n", std::to_string(sizes_for(cfg.set).scalar_max_n));
    benchmark::AddCustomContext("qkv_cpus", std::to_string(cpu_count()));
    benchmark::AddCustomContext("prefill_heads", std::to_string(kPrefillHeads));
    benchmark::AddCustomContext("decode_shape", "q_heads=" + std::to_string(kDecodeQHeads) +
                                                    " kv_heads=" + std::to_string(kDecodeKvHeads) +
                                                    " d=" + std::to_string(kDecodeDim));
#ifdef QKV_BENCH_OPENBLAS
    benchmark::AddCustomContext("openblas", openblas_get_config());
    benchmark::AddCustomContext("openblas_core", openblas_get_corename());
    /* A forced core type (e.g. Haswell kernels on an AVX-512 CPU) makes the
       peer slower than it can be; the report says so next to its numbers. */
    if (const char *core = std::getenv("OPENBLAS_CORETYPE"))
        benchmark::AddCustomContext("openblas_coretype_env", core);
#else
    benchmark::AddCustomContext("openblas", "not built");
#endif
}

/* About a second in all on an idle machine with a 128 MiB buffer (two
   with 520 MiB): 0.1 s per ISA (the best chunk of about 1 ms of it,
   longer where the clock is slow: probe.h), then ten passes over a buffer
   far larger than the last-level cache, once per thread count, whose
   first filling (page faults) takes most of it. */
void run_probes(const Config &cfg)
{
    const double t0 = qkv_probe_now();
    /* What reading the clock costs: where it is not a few tens of ns, the
       peak probes lengthen their chunks (probe.h), and this says why. */
    const double clock_us = qkv_probe_clock_cost() * 1e6;
    benchmark::AddCustomContext("clock_read_us", fmt(clock_us));
    std::fprintf(stderr, "probe: a clock read takes %.3f us\n", clock_us);
    double peak[QKV_ISA_COUNT];
    qkv_probe_fma_peaks(peak, 0.1);
    for (int i = 0; i < QKV_ISA_COUNT; i++) {
        if (peak[i] <= 0.0)
            continue;
        const qkv_isa isa = (qkv_isa)i;
        benchmark::AddCustomContext(std::string("peak_gflops_") + qkv_isa_name(isa), fmt(peak[i]));
        std::fprintf(stderr, "probe: %s peak %.1f GFLOP/s (1 core)\n", qkv_isa_name(isa), peak[i]);
    }
#ifdef QKV_BENCH_PROBE_AVX512BF16
    /* vdpbf16ps: the ceiling of the bf16 tiles of avx512bf16. Whether it
       issues as often as an FMA decides what they can gain (2x if so). */
    if (qkv_isa_supported(QKV_ISA_AVX512BF16)) {
        const double g = qkv_probe_dpbf16_avx512bf16(0.1);
        benchmark::AddCustomContext("peak_gflops_dpbf16", fmt(g));
        std::fprintf(stderr, "probe: vdpbf16ps peak %.1f GFLOP/s (1 core, bf16)\n", g);
    }
#endif
#ifdef QKV_BENCH_PROBE_AMX
    /* tdpbf16ps: the ceiling of amx's bf16 tiles. */
    if (qkv_isa_supported(QKV_ISA_AMX)) {
        const double g = qkv_probe_tdpbf16_amx(0.1);
        benchmark::AddCustomContext("peak_gflops_tdpbf16", fmt(g));
        std::fprintf(stderr, "probe: amx tdpbf16ps peak %.1f GFLOP/s (1 core, bf16)\n", g);
    }
#endif
    /* More than the last-level cache (probe.h): a sequential stream over
       more than the cache finds none of its lines still cached. A bigger
       buffer only costs fill time: its page faults are most of the probes'
       time. */
    const size_t bytes = cold_bytes();
    /* Best of 10 passes of a few ms each: on a shared machine a pass often
       shares the memory with another tenant, and 3 passes left the
       2-thread figure anywhere between 32 and 100 GB/s on the same host. */
    constexpr int kReadPasses = 10;
    const double gbs = qkv_probe_read_gbs(bytes, kReadPasses, 1);
    benchmark::AddCustomContext("read_gbs", fmt(gbs));
    benchmark::AddCustomContext("read_buffer_mib", std::to_string(bytes >> 20));
    std::fprintf(stderr, "probe: read bandwidth %.1f GB/s (1 core, %zu MiB buffer)\n", gbs,
                 bytes >> 20);
    /* The bound of the decode rows run on more threads. */
    for (unsigned t : scaling_threads(cfg)) {
        if (t < 2)
            continue;
        const double g = qkv_probe_read_gbs(bytes, kReadPasses, t);
        benchmark::AddCustomContext("read_gbs_t" + std::to_string(t), fmt(g));
        std::fprintf(stderr, "probe: read bandwidth %.1f GB/s (%u threads)\n", g, t);
    }
    /* The bound of the paged decode rows: their pages (page_size keys of
       f32 rows of kDecodeDim, every KV head's, side by side in vLLM's
       layout) in a shuffled order. */
    for (size_t ps : {(size_t)16, (size_t)128}) {
        const size_t run = ps * kDecodeKvHeads * kDecodeDim * sizeof(float);
        const double g = qkv_probe_read_runs_gbs(bytes, run, 5);
        benchmark::AddCustomContext("read_gbs_page_" + std::to_string(ps), fmt(g));
        std::fprintf(stderr, "probe: read bandwidth %.1f GB/s in shuffled runs of %zu KiB (1 core)\n",
                     g, run >> 10);
    }
    std::fprintf(stderr, "probe: probes took %.2f s\n", qkv_probe_now() - t0);
}

bool parse_flag(const char *arg, Config *cfg)
{
    auto value = [&](const char *name) -> const char * {
        const size_t n = std::strlen(name);
        return std::strncmp(arg, name, n) == 0 && arg[n] == '=' ? arg + n + 1 : nullptr;
    };
    const char *v;
    if ((v = value("--qkv_set"))) {
        cfg->set = v;
        return cfg->set == "quick" || cfg->set == "default" || cfg->set == "full";
    }
    if ((v = value("--qkv_threads"))) {
        std::stringstream ss(v);
        std::string item;
        while (std::getline(ss, item, ',')) {
            const long t = std::strtol(item.c_str(), nullptr, 10);
            if (t < 1 || t > 1024)
                return false;
            cfg->threads.push_back((unsigned)t);
        }
        return !cfg->threads.empty();
    }
    if ((v = value("--qkv_min_time"))) {
        cfg->min_time = std::strtod(v, nullptr);
        return cfg->min_time > 0;
    }
    if ((v = value("--qkv_reps"))) {
        cfg->reps = (int)std::strtol(v, nullptr, 10);
        return cfg->reps >= 1;
    }
    if ((v = value("--qkv_probe"))) {
        cfg->probe = std::strcmp(v, "0") != 0 && std::strcmp(v, "false") != 0;
        return true;
    }
    return false;
}

}  // namespace

int main(int argc, char **argv)
{
    Config cfg;
    bool listing = false;
    int kept = 1;
    for (int i = 1; i < argc; i++) {
        if (std::strncmp(argv[i], "--qkv_", 6) == 0) {
            if (!parse_flag(argv[i], &cfg)) {
                std::fprintf(stderr,
                             "qkv_bench: bad flag %s\n"
                             "own flags: --qkv_set=quick|default|full --qkv_threads=1,2,.. "
                             "--qkv_min_time=SECONDS --qkv_reps=N --qkv_probe=0|1\n",
                             argv[i]);
                return 2;
            }
            continue;
        }
        /* Listing runs nothing, so it needs no probes (report.py lists first). */
        if (std::strcmp(argv[i], "--benchmark_list_tests") == 0 ||
            std::strcmp(argv[i], "--benchmark_list_tests=true") == 0 ||
            std::strcmp(argv[i], "--benchmark_list_tests=1") == 0)
            listing = true;
        argv[kept++] = argv[i];
    }
    argc = kept;
    const bool quick = cfg.set == "quick";
    if (cfg.min_time < 0)
        cfg.min_time = quick ? 0.005 : 0.1;
    if (cfg.reps < 0)
        cfg.reps = quick ? 1 : 3;
    if (quick)
        cold_limit = (size_t)128 << 20;

#ifdef QKV_BENCH_OPENBLAS
    /* One thread unless a benchmark asks for more (see bm_attention_openblas). */
    openblas_set_num_threads(1);
#endif
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv))
        return 1;
    add_context(cfg);
    if (cfg.probe && !listing)
        run_probes(cfg);
    register_all(cfg);
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}

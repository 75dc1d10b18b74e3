/*
 * Stack use of every public entry point on every supported ISA, against the
 * bound include/qkv.h promises (QKV_MAX_STACK_BYTES): engines run kernels on
 * small thread and fiber stacks (musl's default is 128 KiB, fiber pools
 * less), where a deep frame is a crash, not a slowdown.
 *
 *   stack [--stack-kib=N] [--verbose]
 *
 * measure: each case (ISA × entry point × shape) runs on a fresh thread
 *   whose stack this test maps itself (pthread_attr_setstack): N KiB usable,
 *   default 64, everything below PROT_NONE. The stack is painted with a
 *   pattern first; afterwards the deepest word that lost the pattern, taken
 *   from the frame that makes the call, is what the call used. Asserted
 *   <= QKV_MAX_STACK_BYTES and printed per ISA and entry point (the deepest
 *   case). An overflow runs into the PROT_NONE pages; a SIGSEGV handler on
 *   an alternate stack turns it into a failure ("> N KiB") and the test
 *   goes on. A larger --stack-kib measures what such a case really uses.
 * plain: every case of an ISA, one after the other, on one thread created
 *   with pthread_attr_setstacksize(64 KiB) (glibc's own stack, guard page
 *   and TLS placement): no crash, QKV_OK. AArch64 glibc refuses stacks
 *   below 128 KiB (PTHREAD_STACK_MIN); there plain gets 128 KiB, and
 *   measure, which gives the thread only the top 64 KiB of a 128 KiB
 *   mapping, is what shows the 64 KiB.
 *
 * Painting misses a frame that reserves stack and never writes its deepest
 * part, but such a frame's calls (SLEEF, memcpy, the next level) push below
 * it, so the figure is the depth that must be mapped. It includes the few
 * hundred bytes of the test's own frame that makes the call, and, for the
 * first call of a thread into libm or SLEEF, the dynamic linker's lazy
 * binding, which saves the vector registers on the stack (2.8 KB with
 * AVX-512): a real program's thread pays that too. Under ASan (its
 * redzones and fake stacks change every frame) and valgrind (memcheck takes
 * the paint and the scan of a thread's stack for invalid accesses) the
 * measurement is skipped; the plain run still runs.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <sys/mman.h>

#include "qkvtest.h"

static tally T;
static int verbose;

/* ---- the cases ---------------------------------------------------------- */

enum entry { E_SCORES, E_SOFTMAX, E_WSUM, E_ATTENTION, E_CONVERT, E_MERGE, E_COUNT };
static const char *const entry_name[E_COUNT] = {"scores", "softmax", "weighted_sum",
                                                "attention", "convert", "merge_states"};

typedef struct stack_case {
    enum entry entry;
    char what[120];
    size_t m, n, d;             /* stages; convert: n; merge: m rows of d */
    qkv_attention_desc att;
    qkv_dtype from, to;         /* convert */
    float *a, *b, *c, *e;       /* inputs and outputs, heap: the frame stays small */
    float *s;                   /* softmax works in place on a copy of a */
} stack_case;

#define MAX_CASES 64
static stack_case cases[MAX_CASES];
static int ncases;

static uint64_t rng = 20240611;

static stack_case *add_case(enum entry e)
{
    if (ncases == MAX_CASES) {
        fprintf(stderr, "stack: MAX_CASES too small\n");
        exit(2);
    }
    stack_case *c = &cases[ncases++];
    memset(c, 0, sizeof *c);
    c->entry = e;
    return c;
}

static void add_stage(enum entry e, size_t m, size_t n, size_t d)
{
    stack_case *c = add_case(e);
    c->m = m, c->n = n, c->d = d;
    if (e == E_SCORES) {
        snprintf(c->what, sizeof c->what, "m=%zu n=%zu d=%zu", m, n, d);
        c->a = new_unit_floats(&rng, m * d);
        c->b = new_unit_floats(&rng, n * d);
        c->c = test_malloc(m * n * sizeof(float));
    } else if (e == E_SOFTMAX) {
        snprintf(c->what, sizeof c->what, "m=%zu n=%zu", m, n);
        c->a = new_floats_in(&rng, m * n, -12, 12);
        c->s = test_malloc(m * n * sizeof(float));
    } else {
        snprintf(c->what, sizeof c->what, "m=%zu n=%zu dv=%zu", m, n, d);
        c->a = new_floats_in(&rng, m * n, 0, 1.0f / (float)n);
        c->b = new_unit_floats(&rng, n * d);
        c->c = test_malloc(m * d * sizeof(float));
    }
}

enum { F_CAUSAL = 1, F_ADDITIVE = 2, F_WINDOW = 4, F_SOFTCAP = 8, F_ALIBI = 16, F_SINKS = 32,
       F_LSE = 64, F_HOOK = 128, F_SIDE = 256, F_BF16 = 512, F_Q8 = 1024, F_O16 = 2048,
       F_PAGED = 4096, F_F16KV = 8192 };

/* [batch][head][row][dim], one batch (F_SIDE: K and V as [row][head][dim],
   the heads side by side, which makes the jobs walk together (plan.c's
   task_walk), on this stack without a hook). F_HOOK: qkv_pool_parallel_for with a
   NULL pool, which runs every task on the calling thread, so the hooked
   path (tasks, key splits and their merge) is measured on this stack too.
   The other paths of the driver: F_BF16 Q, K and V stored as bf16 in
   QKV_FPMATH_BF16 (the bf16 tiles), F_F16KV K and V stored as f16 in
   QKV_FPMATH_BF16 with Q f32 (K widened, then rounded to bf16, in the
   decode forms' dot products), F_Q8 K and V as Q8_0, F_O16 an f16
   output, F_PAGED K and V ([row][head][dim]) in pages of 16 keys taken
   through a table in reverse order (kv_len a multiple of 16). */
static void add_attention(size_t hq, size_t hkv, size_t q_len, size_t kv_len, size_t d, size_t dv,
                          int flags)
{
    stack_case *c = add_case(E_ATTENTION);
    snprintf(c->what, sizeof c->what, "hq=%zu hkv=%zu q_len=%zu kv_len=%zu d=%zu dv=%zu%s%s%s%s%s%s%s%s%s",
             hq, hkv, q_len, kv_len, d, dv, flags & F_CAUSAL ? " causal" : "",
             flags & F_ADDITIVE ? " additive" : "", flags & F_WINDOW ? " window" : "",
             flags & F_SOFTCAP ? " softcap" : "", flags & F_ALIBI ? " alibi" : "",
             flags & F_SINKS ? " sinks" : "", flags & F_LSE ? " lse" : "",
             flags & F_HOOK ? " hook" : "", flags & F_SIDE ? " side-by-side" : "");
    snprintf(c->what + strlen(c->what), sizeof c->what - strlen(c->what), "%s%s%s%s%s",
             flags & F_BF16 ? " bf16-mode" : "", flags & F_F16KV ? " f16-kv bf16-mode" : "",
             flags & F_Q8 ? " q8_0" : "",
             flags & F_O16 ? " o-f16" : "", flags & F_PAGED ? " paged" : "");
    qkv_attention_desc *a = &c->att;
    a->batch = 1, a->q_heads = hq, a->kv_heads = hkv, a->q_len = q_len, a->kv_len = kv_len;
    a->head_dim = d, a->v_head_dim = dv;
    c->a = new_unit_floats(&rng, hq * q_len * d);
    c->b = new_unit_floats(&rng, hkv * kv_len * d);
    c->c = new_unit_floats(&rng, hkv * kv_len * dv);
    c->e = test_malloc(hq * q_len * (dv + 1) * sizeof(float));   /* o, then lse */
    a->q = (qkv_tensor){c->a, QKV_F32, hq * q_len * d, q_len * d, d};
    a->k = (qkv_tensor){c->b, QKV_F32, hkv * kv_len * d, kv_len * d, d};
    a->v = (qkv_tensor){c->c, QKV_F32, hkv * kv_len * dv, kv_len * dv, dv};
    if (flags & (F_SIDE | F_PAGED)) {
        a->k.head_stride = d, a->k.row_stride = hkv * d;
        a->v.head_stride = dv, a->v.row_stride = hkv * dv;
    }
    if (flags & F_PAGED) {
        const size_t pages = kv_len / 16;
        int32_t *table = test_malloc(pages * sizeof *table);
        for (size_t i = 0; i < pages; i++)
            table[i] = (int32_t)(pages - 1 - i);
        a->page_size = 16, a->num_pages = pages, a->page_table = table;
        a->k.batch_stride = a->v.batch_stride = 0;
        a->k_page_stride = 16 * hkv * d, a->v_page_stride = 16 * hkv * dv;
    }
    const qkv_funcs *scalar = funcs_of(QKV_ISA_SCALAR);
    if (flags & F_BF16) {
        a->q.data = test_store_as(scalar, c->a, hq * q_len * d, QKV_BF16), a->q.dtype = QKV_BF16;
        a->k.data = test_store_as(scalar, c->b, hkv * kv_len * d, QKV_BF16), a->k.dtype = QKV_BF16;
        a->v.data = test_store_as(scalar, c->c, hkv * kv_len * dv, QKV_BF16), a->v.dtype = QKV_BF16;
        a->fpmath = QKV_FPMATH_BF16;
    }
    if (flags & F_F16KV) {
        a->k.data = test_store_as(scalar, c->b, hkv * kv_len * d, QKV_F16), a->k.dtype = QKV_F16;
        a->v.data = test_store_as(scalar, c->c, hkv * kv_len * dv, QKV_F16), a->v.dtype = QKV_F16;
        a->fpmath = QKV_FPMATH_BF16;
    }
    if (flags & F_Q8) {
        a->k.data = test_store_as(scalar, c->b, hkv * kv_len * d, QKV_Q8_0), a->k.dtype = QKV_Q8_0;
        a->v.data = test_store_as(scalar, c->c, hkv * kv_len * dv, QKV_Q8_0), a->v.dtype = QKV_Q8_0;
    }
    a->o = (qkv_out_tensor){c->e, hq * q_len * dv, q_len * dv, dv,
                            flags & F_O16 ? QKV_F16 : QKV_F32};
    a->scale = qkv_default_scale(d);
    a->mask = flags & F_CAUSAL ? QKV_MASK_CAUSAL : QKV_MASK_NONE;
    if (flags & F_ADDITIVE) {
        a->mask = QKV_MASK_ADDITIVE;
        a->mask_add = (qkv_float_mask){new_floats_in(&rng, q_len * kv_len, -2, 0), 0, 0, kv_len};
    }
    if (flags & F_WINDOW)
        a->window = kv_len / 3 + 1;
    if (flags & F_SOFTCAP)
        a->softcap = 20.0f;
    if (flags & F_ALIBI)
        a->alibi_slopes = new_floats_in(&rng, hq, 0, 0.125f);
    if (flags & F_SINKS)
        a->sinks = new_unit_floats(&rng, hq);
    if (flags & F_LSE)
        a->lse = c->e + hq * q_len * dv;
    if (flags & F_HOOK)
        a->parallel_for = qkv_pool_parallel_for;
}

/* Element sizes for the convert buffers: bytes per 32 values. */
static size_t block_bytes(qkv_dtype t)
{
    return t == QKV_F32 ? 128 : t == QKV_Q8_0 ? 34 : t == QKV_Q4_0 ? 18 : 64;
}

static void add_convert(qkv_dtype from, qkv_dtype to, size_t n)
{
    static const char *const names[] = {"f32", "f16", "bf16", "q8_0", "q4_0"};
    stack_case *c = add_case(E_CONVERT);
    snprintf(c->what, sizeof c->what, "%s -> %s, n=%zu", names[from], names[to], n);
    c->from = from, c->to = to, c->n = n;
    /* Any bit pattern is a valid f16, bf16 or block: random bytes will do. */
    const size_t src_bytes = n / 32 * block_bytes(from);
    c->a = test_malloc(src_bytes);
    if (from == QKV_F32)
        fill_unit(&rng, c->a, n);
    else
        for (size_t i = 0; i < src_bytes; i++)
            ((unsigned char *)c->a)[i] = (unsigned char)rng_next(&rng);
    c->c = test_malloc(n / 32 * block_bytes(to));
}

static void add_merge(size_t rows, size_t dv)
{
    stack_case *c = add_case(E_MERGE);
    snprintf(c->what, sizeof c->what, "rows=%zu dv=%zu", rows, dv);
    c->m = rows, c->d = dv;
    c->a = new_unit_floats(&rng, rows * dv);        /* o, in place */
    c->b = new_unit_floats(&rng, rows);             /* lse, in place */
    c->c = new_unit_floats(&rng, rows * dv);        /* o_other */
    c->e = new_unit_floats(&rng, rows);             /* lse_other */
    c->s = test_malloc(rows * (dv + 1) * sizeof(float));
}

static void make_cases(void)
{
    /* Past the x86 stage kernels' row blocks (192 and 384 rows), the usual
       head dimensions and one that is no multiple of any vector. */
    add_stage(E_SCORES, 400, 300, 64);
    add_stage(E_SCORES, 130, 257, 128);
    add_stage(E_SCORES, 64, 100, 256);
    add_stage(E_SCORES, 7, 5, 3);
    add_stage(E_SOFTMAX, 64, 4096, 0);
    add_stage(E_SOFTMAX, 400, 300, 0);
    add_stage(E_SOFTMAX, 3, 17, 0);
    add_stage(E_WSUM, 400, 300, 64);
    add_stage(E_WSUM, 130, 257, 128);
    add_stage(E_WSUM, 64, 100, 256);
    add_stage(E_WSUM, 7, 5, 3);
    /* Prefill: q_len >= 64, the fast head dimensions, every modifier. */
    add_attention(4, 2, 200, 300, 64, 64, F_CAUSAL | F_LSE);
    add_attention(4, 2, 200, 300, 64, 64, F_CAUSAL | F_LSE | F_HOOK);
    add_attention(2, 1, 64, 256, 128, 128, 0);
    add_attention(2, 1, 130, 200, 128, 128, F_CAUSAL | F_SOFTCAP | F_ALIBI | F_SINKS | F_LSE);
    add_attention(2, 1, 70, 130, 256, 256, F_ADDITIVE | F_WINDOW | F_SOFTCAP | F_ALIBI | F_SINKS | F_LSE);
    add_attention(2, 1, 70, 130, 256, 256, F_CAUSAL | F_WINDOW | F_LSE | F_HOOK);
    add_attention(2, 2, 65, 97, 80, 96, F_CAUSAL | F_ALIBI);
    add_attention(2, 1, 70, 150, 300, 300, F_CAUSAL | F_LSE);
    /* 32 rows whose S and whole Qᵀ take all of QKV_ATTN_WS_FLOATS. */
    add_attention(2, 1, 70, 150, 224, 224, F_CAUSAL | F_LSE);
    /* Decode with GQA: one query row, 4 query heads per KV head; with the
       hook the keys are split (kv_len >= 1024) and merged. */
    add_attention(16, 4, 1, 2048, 128, 128, F_SINKS | F_LSE);
    add_attention(16, 4, 1, 2048, 128, 128, F_SINKS | F_LSE | F_HOOK);
    add_attention(8, 1, 2, 1500, 64, 64, F_CAUSAL | F_SOFTCAP | F_ALIBI | F_HOOK);
    add_attention(16, 4, 1, 2100, 128, 128, F_SINKS | F_LSE | F_SIDE);
    add_attention(16, 4, 1, 2100, 128, 128, F_SINKS | F_LSE | F_SIDE | F_HOOK);
    add_attention(16, 8, 2, 2100, 256, 256, F_CAUSAL | F_LSE | F_SIDE);
    add_attention(4, 2, 64, 2100, 128, 128, F_CAUSAL | F_SIDE);
    /* The stored dtypes, BF16 mode and pages, prefill and decode. */
    add_attention(2, 1, 130, 208, 128, 128, F_CAUSAL | F_LSE | F_BF16);
    add_attention(2, 1, 130, 208, 128, 128, F_CAUSAL | F_LSE | F_BF16 | F_PAGED | F_HOOK);
    /* f32 and f16 V in pages of 16 keys: P·V by V's row pointers
       (pv_by_rows; F_F16KV is BF16 mode too, strict where an ISA has no
       bf16 tiles). */
    add_attention(2, 1, 130, 208, 128, 128, F_CAUSAL | F_LSE | F_PAGED);
    add_attention(2, 1, 130, 208, 128, 128, F_CAUSAL | F_LSE | F_PAGED | F_F16KV);
    /* A last job of one row (129 = 4 · 32 + 1), given the workspace of the
       plan's 32-row jobs, in a decode form's deepest dot product (clang
       14's frames). */
    add_attention(1, 1, 129, 208, 128, 128, F_CAUSAL | F_LSE | F_F16KV);
    add_attention(16, 4, 1, 2048, 128, 128, F_SINKS | F_LSE | F_BF16 | F_HOOK);
    add_attention(64, 8, 1, 2048, 128, 128, F_WINDOW | F_LSE | F_BF16);
    add_attention(2, 1, 70, 256, 64, 64, F_CAUSAL | F_Q8 | F_O16 | F_PAGED);
    add_attention(16, 4, 1, 2048, 128, 128, F_SINKS | F_LSE | F_Q8 | F_O16 | F_HOOK);
    add_attention(16, 4, 1, 2048, 128, 128, F_LSE | F_Q8 | F_PAGED);
    static const qkv_dtype conv[][2] = {
        {QKV_F32, QKV_F16}, {QKV_F16, QKV_F32}, {QKV_F32, QKV_BF16}, {QKV_BF16, QKV_F32},
        {QKV_F16, QKV_BF16}, {QKV_BF16, QKV_F16}, {QKV_F32, QKV_Q8_0}, {QKV_Q8_0, QKV_F32},
        {QKV_F32, QKV_Q4_0}, {QKV_Q4_0, QKV_F32}, {QKV_F32, QKV_F32},
    };
    for (size_t i = 0; i < sizeof conv / sizeof conv[0]; i++)
        add_convert(conv[i][0], conv[i][1], 4096);
    add_merge(64, 128);
    add_merge(7, 33);
}



/* The call under measurement. Everything it needs is on the heap, so its
   own frame is small. */
static qkv_status run_case(const qkv_funcs *f, stack_case *c)
{
    switch (c->entry) {
    case E_SCORES:
        return f->scores(c->m, c->n, c->d, qkv_default_scale(c->d), c->a, c->d, c->b, c->d, c->c,
                         c->n);
    case E_SOFTMAX:
        memcpy(c->s, c->a, c->m * c->n * sizeof(float));
        return f->softmax(c->m, c->n, c->s, c->n);
    case E_WSUM:
        return f->weighted_sum(c->m, c->n, c->d, c->a, c->n, c->b, c->d, c->c, c->d);
    case E_ATTENTION:
        return f->attention(&c->att);
    case E_CONVERT:
        return f->convert(c->n, c->a, c->from, c->c, c->to);
    case E_MERGE:
        /* In place on a copy, so that every run merges the same values. */
        memcpy(c->s, c->a, c->m * c->d * sizeof(float));
        memcpy(c->s + c->m * c->d, c->b, c->m * sizeof(float));
        return f->merge_states(c->m, c->d, c->s, c->d, c->s + c->m * c->d, c->c, c->d, c->e);
    default:
        return QKV_ERR_ARG;
    }
}

/* ---- a thread that runs cases, and survives an overflow ------------------ */

typedef struct job {
    const qkv_funcs *f;
    int first, last;            /* cases [first, last) */
    uintptr_t frame;            /* the frame that makes the calls */
    volatile int current;       /* the case running, for an overflow report */
    volatile int overflowed;
    qkv_status status[MAX_CASES];
    void *altstack;
    size_t altstack_len;
} job;

/* Where the SIGSEGV handler of a thread running cases goes back to. */
static _Thread_local sigjmp_buf *overflow_return;

static void on_sigsegv(int sig, siginfo_t *info, void *uc)
{
    (void)info, (void)uc;
    if (overflow_return)
        siglongjmp(*overflow_return, 1);
    /* Not an overflow of ours: die of it as without the handler. */
    signal(sig, SIG_DFL);
    raise(sig);
}

static __attribute__((noinline)) void run_cases(job *j)
{
    j->frame = (uintptr_t)__builtin_frame_address(0);
    for (int i = j->first; i < j->last; i++) {
        j->current = i;
        j->status[i] = run_case(j->f, &cases[i]);
    }
}

static void *job_thread(void *arg)
{
    job *j = arg;
    /* The handler cannot run on the stack that just overflowed. */
    stack_t ss = {.ss_sp = j->altstack, .ss_size = j->altstack_len, .ss_flags = 0};
    stack_t old;
    sigaltstack(&ss, &old);
    sigjmp_buf back;
    if (sigsetjmp(back, 1) == 0) {
        overflow_return = &back;
        run_cases(j);
    } else {
        j->overflowed = 1;
    }
    overflow_return = NULL;
    sigaltstack(&old, NULL);
    return NULL;
}

static size_t page_size(void)
{
    return (size_t)sysconf(_SC_PAGESIZE);
}

/* glibc refuses stacks below PTHREAD_STACK_MIN (16 KiB on x86-64, 128 KiB
   on AArch64, where pages may be 64 KiB). */
static size_t min_thread_stack(void)
{
    const long m = sysconf(_SC_THREAD_STACK_MIN);
    return m > 0 ? (size_t)m : 16384;
}

/* Runs the job on a new thread with attr; 0 on success, else errno. */
static int run_job(job *j, pthread_attr_t *attr)
{
    pthread_t t;
    const int err = pthread_create(&t, attr, job_thread, j);
    if (err)
        return err;
    pthread_join(t, NULL);
    return 0;
}

/* ---- measure: a painted stack of our own ---------------------------------- */

#define PAINT 0x5aa5c33cf00f9669ull   /* no kernel stores this word */

typedef struct own_stack {
    unsigned char *map, *lo, *top;    /* usable: [lo, top) */
    size_t map_len;
} own_stack;

/* How far below a stack an overflow must still fault: a frame that
   reserves 100 KB at once and writes its deepest word first would jump a
   single guard page and scribble on whatever is mapped below. */
#define GUARD_BYTES (1024 * 1024)

/* `usable` bytes of stack and GUARD_BYTES of PROT_NONE below them, in a
   mapping at least as large as glibc accepts (on AArch64 a 64 KiB stack is
   the top of a 128 KiB one whose rest is PROT_NONE). */
static own_stack own_stack_new(size_t usable)
{
    own_stack s;
    const size_t page = page_size(), min = min_thread_stack();
    usable = (usable + page - 1) / page * page;
    s.map_len = (usable > min ? usable : min) + GUARD_BYTES;
    s.map = mmap(NULL, s.map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK,
                 -1, 0);
    if (s.map == MAP_FAILED) {
        perror("stack: mmap");
        exit(2);
    }
    s.top = s.map + s.map_len;
    s.lo = s.top - usable;
    if (mprotect(s.map, (size_t)(s.lo - s.map), PROT_NONE) != 0) {
        perror("stack: mprotect");
        exit(2);
    }
    return s;
}

static void own_stack_paint(own_stack *s)
{
    for (uint64_t *w = (uint64_t *)s->lo; w < (uint64_t *)s->top; w++)
        *w = PAINT;
}

/* The lowest address written since painting. */
static uintptr_t own_stack_deepest(const own_stack *s)
{
    const uint64_t *w = (const uint64_t *)s->lo;
    while (w < (const uint64_t *)s->top && *w == PAINT)
        w++;
    return (uintptr_t)w;
}

typedef struct figure {
    size_t bytes;               /* of the deepest case, SIZE_MAX for an overflow */
    int worst, overflowed, ran;
} figure;

static void measure(const qkv_isa *isas, int nisa, size_t stack_kib)
{
    const size_t usable = stack_kib * 1024;
    own_stack st = own_stack_new(usable);
    const size_t alt_len = 64 * 1024;
    void *alt = test_malloc(alt_len);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    /* glibc's view: the whole mapping but the guard. */
    const size_t span = (size_t)(st.top - (st.map + GUARD_BYTES));
    int err = pthread_attr_setstack(&attr, st.map + GUARD_BYTES, span);
    if (err) {
        tally_check(&T, 0, "pthread_attr_setstack(%zu bytes): error %d", span, err);
        return;
    }
    printf("stack: measure: bytes of stack each call uses below its caller, on a thread stack of "
           "%zu KiB mapped here; bound QKV_MAX_STACK_BYTES = %d\n", stack_kib,
           QKV_MAX_STACK_BYTES);
    size_t above = 0;
    printf("  %-8s", "isa");
    for (int e = 0; e < E_COUNT; e++)
        printf(" %13s", entry_name[e]);
    printf("\n");
    for (int i = 0; i < nisa; i++) {
        figure fig[E_COUNT];
        memset(fig, 0, sizeof fig);
        for (int c = 0; c < ncases; c++) {
            job j = {.f = funcs_of(isas[i]), .first = c, .last = c + 1, .altstack = alt,
                     .altstack_len = alt_len};
            own_stack_paint(&st);
            err = run_job(&j, &attr);
            if (!tally_check(&T, err == 0, "pthread_create on a %zu KiB stack: error %d",
                             stack_kib, err))
                return;
            stack_case *k = &cases[c];
            figure *g = &fig[k->entry];
            const size_t used = j.overflowed ? SIZE_MAX : j.frame - own_stack_deepest(&st);
            if (!j.overflowed && (size_t)((uintptr_t)st.top - j.frame) > above)
                above = (size_t)((uintptr_t)st.top - j.frame);
            if (verbose)
                printf("    %s %s %s: %s%zu bytes\n", qkv_isa_name(isas[i]), entry_name[k->entry],
                       k->what, j.overflowed ? "overflow, > " : "",
                       j.overflowed ? usable : used);
            if (!g->ran++ || used > g->bytes)
                g->bytes = used, g->worst = c;
            g->overflowed |= j.overflowed;
            tally_check(&T, !j.overflowed,
                        "%s %s (%s): overflowed the %zu KiB stack, needs more than %zu bytes "
                        "(--stack-kib=N measures it)", qkv_isa_name(isas[i]),
                        entry_name[k->entry], k->what, stack_kib, usable - above);
            if (j.overflowed)
                continue;
            tally_check(&T, used <= QKV_MAX_STACK_BYTES,
                        "%s %s (%s): %zu bytes of stack, more than QKV_MAX_STACK_BYTES = %d",
                        qkv_isa_name(isas[i]), entry_name[k->entry], k->what, used,
                        QKV_MAX_STACK_BYTES);
            tally_check(&T, j.status[c] == QKV_OK, "%s %s (%s): status %s",
                        qkv_isa_name(isas[i]), entry_name[k->entry], k->what,
                        qkv_status_string(j.status[c]));
        }
        printf("  %-8s", qkv_isa_name(isas[i]));
        for (int e = 0; e < E_COUNT; e++) {
            if (fig[e].overflowed)
                printf(" %6s>%3zuKiB", "", stack_kib);
            else
                printf(" %13zu", fig[e].bytes);
        }
        printf("\n");
        for (int e = 0; e < E_COUNT; e++)
            if (fig[e].ran && (fig[e].overflowed || fig[e].bytes > QKV_MAX_STACK_BYTES))
                printf("  %-8s   deepest %s: %s\n", "", entry_name[e], cases[fig[e].worst].what);
    }
    printf("stack: the thread's start and TLS above the calling frame: %zu bytes\n", above);
    pthread_attr_destroy(&attr);
    munmap(st.map, st.map_len);
    free(alt);
}

/* ---- plain: a thread of 64 KiB from pthread_attr_setstacksize --------------- */

static void plain(const qkv_isa *isas, int nisa)
{
    size_t size = 64 * 1024;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    if (QKV_TEST_ASAN) {
        /* ASan's redzones grow frames severalfold (AVX-512 scores: 34 KB
           becomes more than 60 KB): the run is for ASan's checks here, the
           64 KiB are shown by the builds without it. */
        size = 512 * 1024;
        printf("stack: plain: under ASan, %zu KiB\n", size / 1024);
    }
    if (pthread_attr_setstacksize(&attr, size) == EINVAL) {
        /* AArch64 glibc: the measure run above has shown the 64 KiB. */
        size = min_thread_stack();
        printf("stack: plain: this libc refuses a 64 KiB thread stack (PTHREAD_STACK_MIN "
               "%zu), using %zu KiB\n", size, size / 1024);
        pthread_attr_setstacksize(&attr, size);
    }
    /* glibc adds the guard to the stack size, so the thread still has the
       size above; the large guard makes an overflow by a big frame fault
       instead of writing into whatever lies below. */
    pthread_attr_setguardsize(&attr, GUARD_BYTES);
    const size_t alt_len = 64 * 1024;
    void *alt = test_malloc(alt_len);
    for (int i = 0; i < nisa; i++) {
        job j = {.f = funcs_of(isas[i]), .first = 0, .last = ncases, .altstack = alt,
                 .altstack_len = alt_len};
        const int err = run_job(&j, &attr);
        if (!tally_check(&T, err == 0, "pthread_create with a %zu KiB stack: error %d", size / 1024,
                         err))
            break;
        tally_check(&T, !j.overflowed, "%s %s (%s): crashed on a plain %zu KiB thread stack",
                    qkv_isa_name(isas[i]), entry_name[cases[j.current].entry],
                    cases[j.current].what, size / 1024);
        int bad = 0;
        for (int c = 0; c < ncases && !j.overflowed; c++)
            bad += j.status[c] != QKV_OK;
        tally_check(&T, !bad, "%s: %d calls failed on a plain %zu KiB thread", qkv_isa_name(isas[i]),
                    bad, size / 1024);
        printf("stack: plain %zu KiB thread, %s: %d calls %s\n", size / 1024, qkv_isa_name(isas[i]),
               ncases, j.overflowed ? "CRASHED" : "ran");
    }
    pthread_attr_destroy(&attr);
    free(alt);
}

int main(int argc, char **argv)
{
    size_t stack_kib = 64;
    for (int i = 1; i < argc; i++) {
        if (strncmp(argv[i], "--stack-kib=", 12) == 0 && atoi(argv[i] + 12) > 0)
            stack_kib = (size_t)atoi(argv[i] + 12);
        else if (strcmp(argv[i], "--verbose") == 0)
            verbose = 1;
        else {
            fprintf(stderr, "usage: %s [--stack-kib=N] [--verbose]\n", argv[0]);
            return 2;
        }
    }
    qkv_isa isas[QKV_ISA_COUNT];
    const int nisa = supported_isas(isas);
    make_cases();
    printf("stack: %d cases per ISA, ISAs:", ncases);
    for (int i = 0; i < nisa; i++)
        printf(" %s", qkv_isa_name(isas[i]));
    printf("\n");

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_sigsegv;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, NULL);
    sigaction(SIGBUS, &sa, NULL);

    if (QKV_TEST_ASAN || under_valgrind())
        printf("stack: measure: skipped under %s\n",
               QKV_TEST_ASAN ? "ASan (its redzones and fake stacks change the frames)"
                             : "valgrind (memcheck reports the paint and the scan of a "
                               "thread's stack as invalid accesses)");
    else
        measure(isas, nisa, stack_kib);
    plain(isas, nisa);
    return tally_finish(&T);
}

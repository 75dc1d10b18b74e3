/*
 * qkv_last_error_detail(): every bad call of a table gets its status and a
 * detail that names the field and the rule, through every supported ISA's
 * table and the dispatched entry points; the detail is per thread, ""
 * before any failure, left alone by a call that succeeds; the reason an
 * ISA is unsupported agrees with qkv_isa_supported(); and, run with
 * QKV_ISA set, a dispatched call says what is wrong with QKV_ISA.
 */
#include <pthread.h>
#include <stdint.h>

#include "qkvtest.h"
#include "registry.h"

static tally T;

/* ---- a valid call, and one field made bad at a time --------------------- */

enum { B = 1, HQ = 4, HKV = 2, LQ = 3, LK = 5, D = 8 };

/* k, sinks and slopes are larger than the call reads, so that an output
   aimed into them overlaps them and nothing else. */
static float q[B * HQ * LQ * D], k[2 * B * HQ * LQ * D], v[B * HKV * LK * D];
static float o[B * HQ * LQ * D], mask[LQ * LK], sinks[64], slopes[64];

static qkv_attention_desc valid_desc(void)
{
    qkv_attention_desc d = {0};
    d.batch = B, d.q_heads = HQ, d.kv_heads = HKV, d.q_len = LQ, d.kv_len = LK;
    d.head_dim = d.v_head_dim = D;
    d.q = (qkv_tensor){q, QKV_F32, HQ * LQ * D, LQ * D, D};
    d.k = (qkv_tensor){k, QKV_F32, HKV * LK * D, LK * D, D};
    d.v = (qkv_tensor){v, QKV_F32, HKV * LK * D, LK * D, D};
    d.o = (qkv_out_tensor){o, HQ * LQ * D, LQ * D, D, QKV_F32};
    d.scale = qkv_default_scale(D);
    return d;
}

typedef struct attn_case {
    const char *what;
    qkv_status want;
    const char *detail;        /* a substring the detail must hold */
} attn_case;

/* Row i of this table is made by case i of bad_desc(). */
static const attn_case attn_cases[] = {
    {"desc NULL", QKV_ERR_ARG, "desc is NULL"},
    {"batch 0", QKV_ERR_ARG, "desc.batch is 0"},
    {"kv_len 0", QKV_ERR_ARG, "desc.kv_len is 0"},
    {"v_head_dim 0", QKV_ERR_ARG, "desc.v_head_dim is 0"},
    {"q_heads 3, kv_heads 2", QKV_ERR_ARG, "desc.q_heads 3 is not a multiple of kv_heads 2"},
    {"kv_heads > q_heads", QKV_ERR_ARG, "desc.q_heads 4 is not a multiple of kv_heads 8"},
    {"k.data NULL", QKV_ERR_ARG, "desc.k.data is NULL"},
    {"o.data NULL", QKV_ERR_ARG, "desc.o.data is NULL"},
    {"q.row_stride < head_dim", QKV_ERR_ARG, "desc.q.row_stride 7 < head_dim 8"},
    {"k.row_stride < head_dim", QKV_ERR_ARG, "desc.k.row_stride 4 < head_dim 8"},
    {"v.row_stride < v_head_dim", QKV_ERR_ARG, "desc.v.row_stride 0 < v_head_dim 8"},
    {"o.row_stride < v_head_dim", QKV_ERR_ARG, "desc.o.row_stride 6 < v_head_dim 8"},
    {"scale NaN", QKV_ERR_ARG, "desc.scale nan is not finite and >= 0"},
    {"scale -1", QKV_ERR_ARG, "desc.scale -1 is not finite and >= 0"},
    {"softcap +inf", QKV_ERR_ARG, "desc.softcap inf is not finite"},
    {"mask 7", QKV_ERR_ARG, "desc.mask 7 is no qkv_mask_kind"},
    {"additive, no data", QKV_ERR_ARG, "desc.mask_add.data is NULL but desc.mask is QKV_MASK_ADDITIVE"},
    {"causal with data", QKV_ERR_ARG, "desc.mask_add.data is set but desc.mask is not QKV_MASK_ADDITIVE"},
    {"mask_add.row_stride < kv_len", QKV_ERR_ARG, "desc.mask_add.row_stride 4 < kv_len 5"},
    {"pool without hook", QKV_ERR_ARG, "desc.pool is set but desc.parallel_for is NULL"},
    {"k q8_0, head_dim 8", QKV_ERR_ARG, "desc.k.dtype is a block type: its dimension 8 must be a multiple of 32"},
    {"v dtype 99", QKV_ERR_ARG, "desc.v.dtype 99 is no qkv_dtype"},
    {"o dtype 7", QKV_ERR_ARG, "desc.o.dtype 7 is no qkv_dtype"},
    {"o q8_0", QKV_ERR_UNSUPPORTED, "dtypes q 0, k 0, v 0, o 3: not supported on"},
    {"q.batch_stride huge", QKV_ERR_OVERFLOW, "desc.q: sizes x strides exceed PTRDIFF_MAX bytes"},
    {"v.head_stride huge", QKV_ERR_OVERFLOW, "desc.v: sizes x strides exceed"},
    {"o.head_stride 0", QKV_ERR_ARG, "desc.o strides (batch 96, head 0, row 8) do not nest"},
    {"o on k", QKV_ERR_ARG, "desc.o overlaps desc.k"},
    {"lse on sinks", QKV_ERR_ARG, "desc.lse overlaps desc.sinks"},
    {"lse on o", QKV_ERR_ARG, "desc.lse overlaps desc.o"},
    {"sinks NaN", QKV_ERR_ARG, "desc.sinks holds a NaN or an infinity"},
    {"alibi -inf", QKV_ERR_ARG, "desc.alibi_slopes holds a NaN or an infinity"},
    {"page id 7 of 6", QKV_ERR_ARG, "desc.page_table[0][1] = 7 is not a page in [0, num_pages 6)"},
    {"q_start[batch] != q_len", QKV_ERR_ARG, "desc.q_start[batch] 2 is not q_len 3"},
};
#define ATTN_CASES (sizeof attn_cases / sizeof attn_cases[0])

/* Case i of attn_cases; NULL for "desc NULL". */
static const qkv_attention_desc *bad_desc(size_t i, qkv_attention_desc *d)
{
    *d = valid_desc();
    switch (i) {
    case 0: return NULL;
    case 1: d->batch = 0; break;
    case 2: d->kv_len = 0; break;
    case 3: d->v_head_dim = 0; break;
    case 4: d->q_heads = 3; break;
    case 5: d->kv_heads = 8; break;
    case 6: d->k.data = NULL; break;
    case 7: d->o.data = NULL; break;
    case 8: d->q.row_stride = 7; break;
    case 9: d->k.row_stride = 4; break;
    case 10: d->v.row_stride = 0; break;
    case 11: d->o.row_stride = 6; break;
    case 12: d->scale = NAN; break;
    case 13: d->scale = -1.0f; break;
    case 14: d->softcap = INFINITY; break;
    case 15: d->mask = (qkv_mask_kind)7; break;
    case 16: d->mask = QKV_MASK_ADDITIVE; break;
    case 17: d->mask = QKV_MASK_CAUSAL, d->mask_add.data = mask; break;
    case 18:
        d->mask = QKV_MASK_ADDITIVE;
        d->mask_add = (qkv_float_mask){mask, 0, 0, 4};
        break;
    case 19: d->pool = (void *)mask; break;
    case 20: d->k.dtype = QKV_Q8_0; break;
    case 21: d->v.dtype = (qkv_dtype)99; break;
    case 22: d->o.dtype = (qkv_dtype)7; break;
    case 23: d->o.dtype = QKV_Q8_0; break;
    case 24: d->batch = 3, d->q.batch_stride = SIZE_MAX / 2; break;
    case 25: d->v.head_stride = SIZE_MAX / 2; break;
    case 26: d->o.head_stride = 0; break;
    case 27: d->o.data = k; break;
    case 28: d->sinks = sinks, d->lse = sinks; break;
    case 29: d->lse = o + 5; break;
    case 30: d->sinks = sinks, sinks[2] = NAN; break;
    case 31: d->alibi_slopes = slopes, slopes[3] = -INFINITY; break;
    case 32: {   /* pages of 4 keys, [pages][kv_heads][4][D]; the second id bad */
        static int32_t table[2] = {0, 7};
        d->page_size = 4, d->num_pages = 6, d->page_table = table;
        d->k.head_stride = d->v.head_stride = 4 * D;
        d->k_page_stride = d->v_page_stride = HKV * 4 * D;
        break;
    }
    case 33: {   /* ragged: rows 0..1 and 1..2, but q_len 3 */
        static int32_t starts[B + 1] = {0, 2};
        d->q_start = starts;
        break;
    }
    }
    return d;
}

/* ---- the stages and the dispatch functions ------------------------------- */

typedef struct call_case {
    const char *what;
    qkv_status want;
    const char *detail;
} call_case;

static const call_case stage_cases[] = {
    {"scores d 0", QKV_ERR_ARG, "m 2, n 3, d 0: sizes must be >= 1"},
    {"scores k NULL", QKV_ERR_ARG, "k is NULL"},
    {"scores ldk < d", QKV_ERR_ARG, "ldk 3 < d 4"},
    {"scores lds < n", QKV_ERR_ARG, "lds 2 < n 3"},
    {"scores scale -inf", QKV_ERR_ARG, "scale -inf is not finite and >= 0"},
    {"scores ldq huge", QKV_ERR_OVERFLOW, "q: rows x leading dimension exceed PTRDIFF_MAX"},
    {"scores s on k", QKV_ERR_ARG, "s overlaps k"},
    {"softmax s NULL", QKV_ERR_ARG, "s is NULL"},
    {"softmax lds < n", QKV_ERR_ARG, "lds 1 < n 3"},
    {"weighted_sum ldo < dv", QKV_ERR_ARG, "ldo 2 < dv 4"},
    {"weighted_sum ldp < n", QKV_ERR_ARG, "ldp 2 < n 3"},
    {"weighted_sum o on v", QKV_ERR_ARG, "o overlaps v"},
};
#define STAGE_CASES (sizeof stage_cases / sizeof stage_cases[0])

static qkv_status run_stage_case(const qkv_funcs *f, size_t i)
{
    static float a[64], b[64], c[64];
    switch (i) {
    case 0: return f->scores(2, 3, 0, 1.0f, a, 4, b, 4, c, 3);
    case 1: return f->scores(2, 3, 4, 1.0f, a, 4, NULL, 4, c, 3);
    case 2: return f->scores(2, 3, 4, 1.0f, a, 4, b, 3, c, 3);
    case 3: return f->scores(2, 3, 4, 1.0f, a, 4, b, 4, c, 2);
    case 4: return f->scores(2, 3, 4, -INFINITY, a, 4, b, 4, c, 3);
    case 5: return f->scores(2, 3, 4, 1.0f, a, SIZE_MAX, b, 4, c, 3);
    case 6: return f->scores(2, 3, 4, 1.0f, a, 4, b, 4, b + 2, 3);
    case 7: return f->softmax(2, 3, NULL, 3);
    case 8: return f->softmax(2, 3, c, 1);
    case 9: return f->weighted_sum(2, 3, 4, a, 3, b, 4, c, 2);
    case 10: return f->weighted_sum(2, 3, 4, a, 2, b, 4, c, 4);
    case 11: return f->weighted_sum(2, 3, 4, a, 3, b, 4, b + 1, 4);
    }
    return QKV_OK;
}

/* ---- checks ---------------------------------------------------------------- */

static int check_detail_is(const char *want)
{
    const char *got = qkv_last_error_detail();
    if (!want)
        return tally_check(&T, got && strcmp(got, "qkv_isa_funcs: out is NULL") == 0,
                           "reset detail: got \"%s\"", got ? got : "(null)");
    return tally_check(&T, got && strstr(got, want), "detail \"%s\" lacks \"%s\"",
                       got ? got : "(null)", want);
}

/* A failure with a detail that no case expects, so that a case whose call
   forgot to set its detail cannot pass on a stale one. */
static void clear_detail(void)
{
    qkv_isa_funcs(QKV_ISA_SCALAR, NULL);
    check_detail_is(NULL);
}

static void check_case(const char *via, const char *what, qkv_status got, qkv_status want,
                       const char *detail)
{
    tally_check(&T, got == want, "%s %s: status %d, want %d", via, what, got, want);
    check_detail_is(detail);
}

static void test_tables(const qkv_funcs *f, const char *via)
{
    for (size_t i = 0; i < ATTN_CASES; i++) {
        qkv_attention_desc d;
        const qkv_attention_desc *p = bad_desc(i, &d);
        clear_detail();
        check_case(via, attn_cases[i].what, f->attention(p), attn_cases[i].want,
                   attn_cases[i].detail);
    }
    for (size_t i = 0; i < STAGE_CASES; i++) {
        clear_detail();
        check_case(via, stage_cases[i].what, run_stage_case(f, i), stage_cases[i].want,
                   stage_cases[i].detail);
    }
    /* qkv_convert and qkv_merge_states say why too. */
    float x[64] = {0}, y[64] = {0}, l1[2] = {0}, l2[2] = {0};
    clear_detail();
    check_case(via, "convert n 0", f->convert(0, x, QKV_F32, y, QKV_F16), QKV_ERR_ARG,
               "qkv_convert: n is 0");
    clear_detail();
    check_case(via, "convert n 33 to Q8_0", f->convert(33, x, QKV_F32, y, QKV_Q8_0), QKV_ERR_ARG,
               "n 33 is not a multiple of 32");
    clear_detail();
    check_case(via, "convert in place", f->convert(8, x, QKV_F32, x + 4, QKV_F16), QKV_ERR_ARG,
               "qkv_convert: src and dst overlap");
    clear_detail();
    check_case(via, "convert Q8_0 to f16", f->convert(32, x, QKV_Q8_0, y, QKV_F16),
               QKV_ERR_UNSUPPORTED, "is not converted");
    clear_detail();
    check_case(via, "merge rows 0", f->merge_states(0, 4, x, 4, l1, y, 4, l2), QKV_ERR_ARG,
               "qkv_merge_states: rows is 0");
    clear_detail();
    check_case(via, "merge ldo < dv", f->merge_states(2, 4, x, 3, l1, y, 4, l2), QKV_ERR_ARG,
               "qkv_merge_states: ldo 3 < dv 4");
    clear_detail();
    check_case(via, "merge in place", f->merge_states(2, 4, x, 4, l1, x, 4, l2), QKV_ERR_ARG,
               "shares memory");
}

/* "scalar, avx2, ...": every ISA's name, as the details list them. */
static const char *names_list(void)
{
    static char names[256];
    names[0] = 0;
    for (int i = 0; i < QKV_ISA_COUNT; i++)
        snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s", i ? ", " : "",
                 qkv_isa_name((qkv_isa)i));
    return names;
}

static void test_dispatch_calls(void)
{
    const qkv_funcs *f = NULL;
    qkv_isa out = QKV_ISA_SCALAR;
    clear_detail();
    char want_known[300];
    snprintf(want_known, sizeof want_known, "\"AVX2\": unknown ISA name (known: %s)", names_list());
    check_case("", "qkv_isa_from_name(AVX2)", qkv_isa_from_name("AVX2", &out),
               QKV_ERR_UNSUPPORTED, want_known);
    clear_detail();
    check_case("", "qkv_isa_from_name(NULL)", qkv_isa_from_name(NULL, &out), QKV_ERR_ARG,
               "qkv_isa_from_name: name is NULL");
    clear_detail();
    check_case("", "qkv_isa_set(COUNT)", qkv_isa_set(QKV_ISA_COUNT), QKV_ERR_UNSUPPORTED,
               "qkv_isa_set(unknown): no such ISA");
    clear_detail();
    check_case("", "qkv_isa_set(NONE)", qkv_isa_set(QKV_ISA_NONE), QKV_ERR_UNSUPPORTED,
               "qkv_isa_set(none): no such ISA");
    clear_detail();
    check_case("", "qkv_isa_funcs(COUNT)", qkv_isa_funcs(QKV_ISA_COUNT, &f), QKV_ERR_UNSUPPORTED,
               "qkv_isa_funcs(unknown): no such ISA");
    clear_detail();
    check_case("", "qkv_pool_create(NULL)", qkv_pool_create(2, NULL), QKV_ERR_ARG,
               "qkv_pool_create: out is NULL");
    /* Every ISA this machine cannot run: set and funcs say why, in the
       words of qkv_isa_unsupported_reason(). */
    for (int i = 0; i < QKV_ISA_COUNT; i++) {
        const char *why = qkv_isa_unsupported_reason((qkv_isa)i);
        if (!why)
            continue;
        char want[300];
        snprintf(want, sizeof want, "qkv_isa_set(%s): %s", qkv_isa_name((qkv_isa)i), why);
        clear_detail();
        check_case("", want, qkv_isa_set((qkv_isa)i), QKV_ERR_UNSUPPORTED, want);
        snprintf(want, sizeof want, "qkv_isa_funcs(%s): %s", qkv_isa_name((qkv_isa)i), why);
        clear_detail();
        check_case("", want, qkv_isa_funcs((qkv_isa)i, &f), QKV_ERR_UNSUPPORTED, want);
    }
}

/* The reason is NULL exactly for the supported ISAs, and the list of names
   in the "known:" details is every ISA's name. */
static void test_reasons(void)
{
    for (int i = QKV_ISA_NONE; i <= QKV_ISA_COUNT; i++) {
        const char *why = qkv_isa_unsupported_reason((qkv_isa)i);
        tally_check(&T, (why == NULL) == qkv_isa_supported((qkv_isa)i),
                    "ISA %d: supported %d but reason \"%s\"", i, qkv_isa_supported((qkv_isa)i),
                    why ? why : "(none)");
        printf("  %-7s %s\n", qkv_isa_name((qkv_isa)i), why ? why : "supported");
    }
}

/* A call that succeeds leaves the detail as it was. */
static void test_success_keeps_detail(const qkv_funcs *f)
{
    qkv_attention_desc d;
    bad_desc(9, &d);
    f->attention(&d);
    const char *before = qkv_last_error_detail();
    char copy[256];
    snprintf(copy, sizeof copy, "%s", before);
    d = valid_desc();
    tally_check(&T, f->attention(&d) == QKV_OK, "valid call failed: %s", qkv_last_error_detail());
    tally_check(&T, strcmp(qkv_last_error_detail(), copy) == 0,
                "a successful call changed the detail to \"%s\"", qkv_last_error_detail());
}

/* ---- per thread ------------------------------------------------------------ */

enum { ROUNDS = 2000 };
static pthread_barrier_t barrier;

typedef struct worker {
    size_t attn_case;
    int fresh_empty;          /* the detail was "" before the first failure */
    unsigned long wrong;
} worker;

static void *per_thread(void *arg)
{
    worker *w = arg;
    const char *fresh = qkv_last_error_detail();
    w->fresh_empty = fresh && fresh[0] == 0;
    const qkv_funcs *f = funcs_of(QKV_ISA_SCALAR);
    for (int r = 0; r < ROUNDS; r++) {
        qkv_attention_desc d;
        const qkv_attention_desc *p = bad_desc(w->attn_case, &d);
        f->attention(p);
        /* Both threads have failed with their own case before either
           reads. */
        pthread_barrier_wait(&barrier);
        if (!strstr(qkv_last_error_detail(), attn_cases[w->attn_case].detail))
            w->wrong++;
        pthread_barrier_wait(&barrier);
    }
    return NULL;
}

static void test_per_thread(void)
{
    worker w[2] = {{9, 0, 0}, {4, 0, 0}};   /* k.row_stride; q_heads % kv_heads */
    pthread_t t[2];
    pthread_barrier_init(&barrier, NULL, 2);
    for (int i = 0; i < 2; i++)
        pthread_create(&t[i], NULL, per_thread, &w[i]);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    pthread_barrier_destroy(&barrier);
    for (int i = 0; i < 2; i++) {
        tally_check(&T, w[i].fresh_empty, "a new thread's detail is not \"\"");
        tally_check(&T, w[i].wrong == 0, "thread %d saw another thread's detail in %lu of %d rounds",
                    i, w[i].wrong, ROUNDS);
    }
}

/* ---- QKV_ISA ------------------------------------------------------------- */

/* Run with QKV_ISA set: a dispatched call works if that ISA runs here, and
   otherwise refuses with a detail that quotes QKV_ISA and says why. */
static void test_env(const char *env)
{
    float s[3] = {1, 2, 3};
    const qkv_status st = qkv_softmax(1, 3, s, 3);
    qkv_isa named = QKV_ISA_NONE;
    int known = 0;
    for (int i = 0; i < QKV_ISA_COUNT; i++)
        if (strcmp(env, qkv_isa_name((qkv_isa)i)) == 0)
            known = 1, named = (qkv_isa)i;
    if (known && qkv_isa_supported(named)) {
        tally_check(&T, st == QKV_OK, "QKV_ISA=%s runs here, but softmax gave %d (%s)", env, st,
                    qkv_last_error_detail());
        return;
    }
    tally_check(&T, st == QKV_ERR_UNSUPPORTED, "QKV_ISA=%s: softmax gave %d", env, st);
    char want[128];
    snprintf(want, sizeof want, "QKV_ISA=%.32s: ", env);
    check_detail_is(want);
    check_detail_is(known ? qkv_isa_unsupported_reason(named) : "unknown ISA name");
    if (!known) {
        char known_list[300];
        snprintf(known_list, sizeof known_list, "(known: %s)", names_list());
        check_detail_is(known_list);
    }
    for (int i = 0; i < QKV_ISA_COUNT; i++)
        if (!known && strcasecmp(env, qkv_isa_name((qkv_isa)i)) == 0) {
            snprintf(want, sizeof want, "names are lower case: %s", qkv_isa_name((qkv_isa)i));
            check_detail_is(want);
        }
    /* The same through the fused and the three-stage entry points. */
    qkv_attention_desc d = valid_desc();
    tally_check(&T, qkv_attention(&d) == QKV_ERR_UNSUPPORTED, "QKV_ISA=%s: attention ran", env);
    check_detail_is("QKV_ISA=");
    clear_detail();
    tally_check(&T, qkv_scores(1, 1, 1, 1.0f, s, 1, s + 1, 1, s + 2, 1) == QKV_ERR_UNSUPPORTED,
                "QKV_ISA=%s: scores ran", env);
    check_detail_is("QKV_ISA=");
    clear_detail();
    float y[32] = {0}, l[2] = {0};
    tally_check(&T, qkv_convert(2, s, QKV_F32, y, QKV_F16) == QKV_ERR_UNSUPPORTED,
                "QKV_ISA=%s: convert ran", env);
    check_detail_is("QKV_ISA=");
    clear_detail();
    tally_check(&T, qkv_merge_states(1, 2, y, 2, l, y + 8, 2, l + 1) == QKV_ERR_UNSUPPORTED,
                "QKV_ISA=%s: merge_states ran", env);
    check_detail_is("QKV_ISA=");
    tally_check(&T, strlen(qkv_last_error_detail()) < 256, "detail longer than its buffer");
}

int main(void)
{
    const char *env = getenv("QKV_ISA");
    if (env && *env) {
        printf("QKV_ISA=%s\n", env);
        test_env(env);
        return tally_finish(&T);
    }
    printf("why each ISA is or is not supported here:\n");
    test_reasons();
    test_per_thread();
    qkv_isa isas[QKV_ISA_COUNT];
    const int n = supported_isas(isas);
    for (int i = 0; i < n; i++)
        test_tables(funcs_of(isas[i]), qkv_isa_name(isas[i]));
    static const qkv_funcs dispatched = {QKV_ISA_NONE, qkv_scores, qkv_softmax, qkv_weighted_sum,
                                         qkv_attention, qkv_convert, qkv_merge_states};
    test_tables(&dispatched, "dispatched");
    test_dispatch_calls();
    test_success_keeps_detail(&dispatched);
    return tally_finish(&T);
}

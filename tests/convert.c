/*
 * qkv_convert on every supported ISA (through qkv_isa_funcs, and the
 * dispatched entry point), checkasm style: seeded inputs (seed printed),
 * each ISA against references written here independently of the library
 * (decoding by ldexp, rounding in double, the ggml quantizers written from
 * their description) and against the scalar ISA, outputs in guarded
 * buffers at unaligned addresses, inputs allocated to their exact size.
 *
 *   convert [--seed=N] [--quick] [--isa=NAME]
 *
 * Groups:
 *   exhaustive  all 65536 f16 and bf16 patterns -> f32 -> back, and f16 <-> bf16
 *   round       f32 -> f16 / bf16: specials, every midpoint of both types and
 *               its neighbours, every exponent, random bit patterns
 *   blocks      Q8_0 / Q4_0 quantize and dequantize: zero, NaN/Inf, constant,
 *               huge, tiny, tie blocks; dequantize(quantize(x)) error bounds;
 *               dequantize of arbitrary bytes
 *   rows        every supported pair, n = 1..300, src/dst offsets 0..3 bytes
 *   badargs     every error of docs/errors.md for qkv_convert, nothing written
 * Ends with "N passed, M failed"; exit status 1 on any failure.
 */
#include <float.h>
#include <inttypes.h>
#include <time.h>

#include "qkvtest.h"

static tally T;
static uint64_t rng;
static int quick;
static qkv_isa isas[QKV_ISA_COUNT];
static int nisa;
static const qkv_funcs *scalar;

static const char *const dtype_names[QKV_DTYPE_COUNT] = {"f32", "f16", "bf16", "q8_0", "q4_0"};

/* ---- bits ------------------------------------------------------------------------ */

static float bitsf(uint32_t u)
{
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

static uint16_t ld16(const unsigned char *p)
{
    return (uint16_t)(p[0] | p[1] << 8);          /* ggml's blocks are little-endian */
}

static void st16(unsigned char *p, uint16_t h)
{
    p[0] = (unsigned char)h;
    p[1] = (unsigned char)(h >> 8);
}

static int is_block(qkv_dtype t)
{
    return t == QKV_Q8_0 || t == QKV_Q4_0;
}

static size_t bytes_of(qkv_dtype t, size_t n)
{
    switch (t) {
    case QKV_F32: return 4 * n;
    case QKV_F16:
    case QKV_BF16: return 2 * n;
    case QKV_Q8_0: return n / 32 * 34;
    case QKV_Q4_0: return n / 32 * 18;
    default: return 0;
    }
}

/* ---- buffers -------------------------------------------------------------------- */

/* An output of `bytes` bytes at `off` bytes past a 64-byte guard, the rest
   filled with a sentinel byte: a stray write before or after shows. */
#define GUARD 64
#define FILL 0xa5

typedef struct gbuf {
    unsigned char *base, *data;
    size_t bytes, total;
} gbuf;

static gbuf gbuf_new(size_t bytes, size_t off)
{
    gbuf g;
    g.total = bytes + off + 2 * GUARD;
    g.base = malloc(g.total);
    if (!g.base) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    memset(g.base, FILL, g.total);
    g.data = g.base + GUARD + off;
    g.bytes = bytes;
    return g;
}

static int gbuf_guards_ok(const gbuf *g)
{
    for (unsigned char *p = g->base; p < g->data; p++)
        if (*p != FILL)
            return 0;
    for (unsigned char *p = g->data + g->bytes; p < g->base + g->total; p++)
        if (*p != FILL)
            return 0;
    return 1;
}

static int gbuf_untouched(const gbuf *g)
{
    for (size_t i = 0; i < g->total; i++)
        if (g->base[i] != FILL)
            return 0;
    return 1;
}

/* An input of exactly `bytes` bytes (after `off` leading bytes), so that
   ASan and valgrind see any read past its end. */
static unsigned char *input_new(size_t bytes, size_t off, unsigned char **base)
{
    *base = malloc(bytes + off + 1);
    if (!*base) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    return *base + off;
}

/* ---- references, written independently of kernels/ ------------------------------ */

/* The value of a 16-bit pattern, from its fields by ldexp. */
static double ref_f16_value(uint16_t h)
{
    const int e = (h >> 10) & 31, m = h & 1023;
    double v;
    if (e == 31)
        v = m ? NAN : INFINITY;
    else
        v = e ? ldexp(1024 + m, e - 25) : ldexp(m, -24);
    return (h & 0x8000) ? -v : v;
}

static double ref_bf16_value(uint16_t h)
{
    const int e = (h >> 7) & 255, m = h & 127;
    double v;
    if (e == 255)
        v = m ? NAN : INFINITY;
    else
        v = e ? ldexp(128 + m, e - 134) : ldexp(m, -133);
    return (h & 0x8000) ? -v : v;
}

/* A 16-bit format: mantissa bits, the exponent of its smallest normal,
   and the encoding of an exactly representable |v|. */
typedef struct fmt16 {
    int mant_bits;
    int min_exp;        /* smallest normal is 2^min_exp */
    int max_exp;        /* values >= 2^(max_exp + 1) overflow */
    int bias;
} fmt16;

static const fmt16 FMT_F16 = {10, -14, 15, 15};
static const fmt16 FMT_BF16 = {7, -126, 127, 127};

static uint16_t ref_encode(const fmt16 *f, double a)   /* a >= 0, representable */
{
    if (a < ldexp(1, f->min_exp))
        return (uint16_t)(a / ldexp(1, f->min_exp - f->mant_bits));
    int e;
    frexp(a, &e);                                      /* a = [0.5, 1) · 2^e */
    const double mant = (a / ldexp(1, e - 1) - 1) * ldexp(1, f->mant_bits);
    return (uint16_t)((e - 1 + f->bias) << f->mant_bits | (int)mant);
}

/* Rounds x to the format, nearest even, in double: the quantum at x's
   binade (or the subnormal quantum), x / quantum rounded by nearbyint
   (the default mode is to nearest even), overflow to Inf. NaN gives the
   canonical quiet NaN of x's sign (callers compare NaN loosely). */
static uint16_t ref_round(const fmt16 *f, float x)
{
    const uint16_t sign = signbit(x) ? 0x8000 : 0;
    const uint16_t inf = (uint16_t)(((1 << (15 - f->mant_bits)) - 1) << f->mant_bits);
    if (isnan(x))
        return (uint16_t)(sign | inf | 1 << (f->mant_bits - 1));
    const double a = fabs((double)x);
    if (isinf(x))
        return sign | inf;
    if (a == 0)
        return sign;
    int e;
    frexp(a, &e);
    const int qexp = a >= ldexp(1, f->min_exp) ? e - 1 - f->mant_bits : f->min_exp - f->mant_bits;
    const double v = nearbyint(a / ldexp(1, qexp)) * ldexp(1, qexp);
    if (v >= ldexp(1, f->max_exp + 1))
        return sign | inf;
    return sign | ref_encode(f, v);
}

static const fmt16 *fmt_of(qkv_dtype t)
{
    return t == QKV_F16 ? &FMT_F16 : &FMT_BF16;
}

static double ref_value16(qkv_dtype t, uint16_t h)
{
    return t == QKV_F16 ? ref_f16_value(h) : ref_bf16_value(h);
}

static int is_nan16(qkv_dtype t, uint16_t h)
{
    return isnan(ref_value16(t, h));
}

/* roundf written another way: |v| + 0.5 is exact in double, then floor. */
static double ref_round_away(float v)
{
    return copysign(floor(fabs((double)v) + 0.5), v);
}

/* 1/d as the quantizers use it: 0 for d = 0, and 0 where 1/d overflows (the
   library's documented rule for |d| <= 2^-128). */
static float ref_inverse(float d)
{
    if (d == 0)
        return 0;
    const float id = 1.0f / d;
    return isinf(id) ? 0.0f : id;
}

/* The stored scale says whether the block is storable: an f16 scale that is
   Inf or NaN makes a NaN block (scale 0x7e00, zero quants). */
static int storable(uint16_t d16)
{
    return (d16 & 0x7c00) != 0x7c00;
}

/* Q8_0, from the description: d = max|x| / 127 in f32, stored as f16;
   q = roundf(x · (1/d)). A block with a NaN or Inf, or whose scale
   overflows f16, becomes a NaN block. */
static void ref_quant_q8_0(const float *x, unsigned char *blk)
{
    int finite = 1;
    float amax = 0;
    for (int j = 0; j < 32; j++) {
        finite &= isfinite(x[j]) != 0;
        if (isfinite(x[j]) && fabsf(x[j]) > amax)
            amax = fabsf(x[j]);
    }
    const float d = amax / 127.0f;
    const uint16_t d16 = ref_round(&FMT_F16, d);
    if (!finite || !storable(d16)) {
        st16(blk, 0x7e00);
        memset(blk + 2, 0, 32);
        return;
    }
    const float id = ref_inverse(d);
    st16(blk, d16);
    for (int j = 0; j < 32; j++) {
        const float v = x[j] * id;
        blk[2 + j] = (unsigned char)(signed char)ref_round_away(v);
    }
}

/* Q4_0, from the description: max = the first value of largest |x| (0 if
   none is above 0), d = max / -8, q = min(15, trunc(x · (1/d) + 8.5)), the
   sum in f32; byte j = q_j | q_{j+16} << 4. */
static void ref_quant_q4_0(const float *x, unsigned char *blk)
{
    int finite = 1;
    float max = 0;
    for (int j = 0; j < 32; j++) {
        finite &= isfinite(x[j]) != 0;
        if (isfinite(x[j]) && fabsf(x[j]) > fabsf(max))
            max = x[j];
    }
    const float d = max / -8.0f;
    const uint16_t d16 = ref_round(&FMT_F16, d);
    if (!finite || !storable(d16)) {
        st16(blk, 0x7e00);
        memset(blk + 2, 0x88, 16);
        return;
    }
    const float id = ref_inverse(d);
    st16(blk, d16);
    int q[32];
    for (int j = 0; j < 32; j++) {
        const float v = x[j] * id + 8.5f;
        const double t = trunc((double)v);
        q[j] = t > 15 ? 15 : (int)t;
    }
    for (int j = 0; j < 16; j++)
        blk[2 + j] = (unsigned char)(q[j] | q[j + 16] << 4);
}

/* Dequantization: value = d·q, computed in double (exact, then exact in
   f32); NaN where d is NaN, or Inf times 0. */
static float ref_deq(uint16_t d16, int q)
{
    return (float)(ref_f16_value(d16) * q);
}

static void ref_dequant(qkv_dtype t, const unsigned char *blk, float *out)
{
    const uint16_t d16 = ld16(blk);
    for (int j = 0; j < 32; j++) {
        int q;
        if (t == QKV_Q8_0)
            q = (signed char)blk[2 + j];
        else
            q = (j < 16 ? blk[2 + j] & 15 : blk[2 + j - 16] >> 4) - 8;
        out[j] = ref_deq(d16, q);
    }
}

/* The whole conversion, element by element, into want (dst_type's bytes). */
static void ref_convert(size_t n, const unsigned char *src, qkv_dtype st, unsigned char *want,
                        qkv_dtype dt)
{
    if (st == dt) {
        memcpy(want, src, bytes_of(st, n));
        return;
    }
    float *f = malloc(n * sizeof *f);
    if (st == QKV_F32)
        memcpy(f, src, 4 * n);
    else if (is_block(st))
        for (size_t b = 0; b < n / 32; b++)
            ref_dequant(st, src + b * bytes_of(st, 32), f + 32 * b);
    else
        for (size_t i = 0; i < n; i++) {
            const double v = ref_value16(st, ld16(src + 2 * i));
            /* a NaN keeps its sign; the payload is not part of the rule */
            f[i] = isnan(v) ? ((ld16(src + 2 * i) & 0x8000) ? -NAN : NAN) : (float)v;
        }
    if (dt == QKV_F32)
        memcpy(want, f, 4 * n);
    else if (dt == QKV_Q8_0)
        for (size_t b = 0; b < n / 32; b++)
            ref_quant_q8_0(f + 32 * b, want + 34 * b);
    else if (dt == QKV_Q4_0)
        for (size_t b = 0; b < n / 32; b++)
            ref_quant_q4_0(f + 32 * b, want + 18 * b);
    else
        for (size_t i = 0; i < n; i++)
            st16(want + 2 * i, ref_round(fmt_of(dt), f[i]));
    free(f);
}

/* Whether element i of got matches want. Exact bits, except NaN: a NaN
   must be a NaN of the same sign, made quiet, where the source was a
   16-bit or f32 value; a NaN dequantized from a block (d NaN, or Inf·0)
   has no sign to keep, and any NaN will do. Blocks compare byte for byte:
   their NaN rule is exact. */
static int same_elem(qkv_dtype st, qkv_dtype dt, const unsigned char *got,
                     const unsigned char *want, size_t i)
{
    if (dt == QKV_F32) {
        uint32_t g, w;
        memcpy(&g, got + 4 * i, 4);
        memcpy(&w, want + 4 * i, 4);
        if (isnan(bitsf(w))) {
            if (!isnan(bitsf(g)))
                return 0;
            if (is_block(st))
                return 1;
            return (g >> 31) == (w >> 31) && (st == QKV_F32 || (g & 0x00400000u));
        }
        return g == w;
    }
    if (is_block(dt))
        return memcmp(got + bytes_of(dt, 32) * i, want + bytes_of(dt, 32) * i, bytes_of(dt, 32)) == 0;
    const uint16_t g = ld16(got + 2 * i), w = ld16(want + 2 * i);
    if (is_nan16(dt, w)) {
        const uint16_t quiet = dt == QKV_F16 ? 0x0200 : 0x0040;
        return is_nan16(dt, g) && (g & 0x8000) == (w & 0x8000) && (st == dt || (g & quiet));
    }
    return g == w;
}

/* Elements of dt in n values: blocks for the block types. */
static size_t elems_of(qkv_dtype t, size_t n)
{
    return is_block(t) ? n / 32 : n;
}

static void describe(char *buf, size_t len, qkv_dtype t, const unsigned char *p, size_t i)
{
    if (t == QKV_F32) {
        uint32_t u;
        memcpy(&u, p + 4 * i, 4);
        snprintf(buf, len, "0x%08" PRIx32 " (%g)", u, (double)bitsf(u));
    } else if (is_block(t)) {
        const unsigned char *b = p + bytes_of(t, 32) * i;
        int k = snprintf(buf, len, "block d16 0x%04x q", ld16(b));
        for (size_t j = 2; j < bytes_of(t, 32) && k > 0 && (size_t)k < len; j++)
            k += snprintf(buf + k, len - (size_t)k, "%02x", b[j]);
    } else {
        snprintf(buf, len, "0x%04x", ld16(p + 2 * i));
    }
}

/* Compares a whole output with want; reports the first few mismatches. */
static int compare_out(const char *what, qkv_isa isa, size_t n, qkv_dtype st, const unsigned char *src,
                       qkv_dtype dt, const unsigned char *got, const unsigned char *want)
{
    const size_t m = elems_of(dt, n);
    size_t bad = 0, first = 0;
    for (size_t i = 0; i < m; i++)
        if (!same_elem(st, dt, got, want, i) && bad++ == 0)
            first = i;
    if (bad) {
        char a[128], g[128], w[128];
        describe(a, sizeof a, st, src, is_block(dt) && !is_block(st) ? first * 32 : first);
        describe(g, sizeof g, dt, got, first);
        describe(w, sizeof w, dt, want, first);
        tally_check(&T, 0, "[%s] %s %s -> %s, n %zu: %zu of %zu elements differ; first #%zu: "
                    "src %s%s got %s want %s", qkv_isa_name(isa), what, dtype_names[st],
                    dtype_names[dt], n, bad, m, first, a, is_block(dt) ? " (first value)" : "", g, w);
        return 0;
    }
    tally_check(&T, 1, "%s", what);
    return 1;
}

/* One conversion on one ISA into a guarded buffer at dst_off; checks the
   status and the guards, returns the buffer (caller frees). */
static gbuf run(qkv_isa isa, size_t n, const void *src, qkv_dtype st, qkv_dtype dt, size_t dst_off)
{
    const qkv_funcs *f = funcs_of(isa);
    gbuf out = gbuf_new(bytes_of(dt, n), dst_off);
    const qkv_status s = f->convert(n, src, st, out.data, dt);
    tally_check(&T, s == QKV_OK, "[%s] convert %s -> %s, n %zu: status %s", qkv_isa_name(isa),
                dtype_names[st], dtype_names[dt], n, qkv_status_string(s));
    tally_check(&T, gbuf_guards_ok(&out), "[%s] convert %s -> %s, n %zu (dst offset %zu): "
                "wrote outside the output", qkv_isa_name(isa), dtype_names[st], dtype_names[dt], n,
                dst_off);
    return out;
}

/* Runs src on every ISA: each against want, and each against scalar's
   output (the same comparison, so that an ISA that differs from the
   reference and from scalar alike is told apart from one that differs from
   scalar only). */
static void check_all(const char *what, size_t n, const unsigned char *src, qkv_dtype st,
                      qkv_dtype dt, const unsigned char *want, size_t dst_off)
{
    gbuf ref = run(QKV_ISA_SCALAR, n, src, st, dt, dst_off);
    compare_out(what, QKV_ISA_SCALAR, n, st, src, dt, ref.data, want);
    for (int k = 0; k < nisa; k++) {
        if (isas[k] == QKV_ISA_SCALAR)
            continue;
        gbuf got = run(isas[k], n, src, st, dt, dst_off);
        compare_out(what, isas[k], n, st, src, dt, got.data, want);
        char vs[96];
        snprintf(vs, sizeof vs, "%s (against scalar)", what);
        compare_out(vs, isas[k], n, st, src, dt, got.data, ref.data);
        free(got.base);
    }
    free(ref.base);
}

/* ---- exhaustive: every 16-bit pattern --------------------------------------------- */

static void test_exhaustive(void)
{
    const size_t n = 65536;
    unsigned char *base, *src = input_new(2 * n, 0, &base);
    for (size_t h = 0; h < n; h++)
        st16(src + 2 * h, (uint16_t)h);
    unsigned char *want = malloc(4 * n), *want16 = malloc(2 * n), *wide = malloc(4 * n);
    for (int k = 0; k < 2; k++) {
        const qkv_dtype t = k ? QKV_BF16 : QKV_F16, other = k ? QKV_F16 : QKV_BF16;
        /* -> f32, against the ldexp decoding */
        ref_convert(n, src, t, want, QKV_F32);
        check_all("every pattern", n, src, t, QKV_F32, want, 0);
        /* -> f32 -> back: the same pattern, NaN for NaN */
        for (int k2 = 0; k2 < nisa; k2++) {
            const qkv_isa i = isas[k2];
            gbuf f = run(i, n, src, t, QKV_F32, 0);
            memcpy(wide, f.data, 4 * n);
            gbuf back = run(i, n, wide, QKV_F32, t, 0);
            size_t bad = 0, first = 0;
            for (size_t h = 0; h < n; h++) {
                const uint16_t g = ld16(back.data + 2 * h);
                const int ok = is_nan16(t, (uint16_t)h)
                    ? is_nan16(t, g) && (g & 0x8000) == (h & 0x8000) : g == h;
                if (!ok && bad++ == 0)
                    first = h;
            }
            tally_check(&T, bad == 0, "[%s] %s -> f32 -> %s: %zu patterns do not round-trip, "
                        "first 0x%04zx -> 0x%04x", qkv_isa_name(i), dtype_names[t], dtype_names[t],
                        bad, first, ld16(back.data + 2 * first));
            free(f.base);
            free(back.base);
        }
        /* straight into the other 16-bit type (through the f32 chunks) */
        ref_convert(n, src, t, want16, other);
        check_all("every pattern", n, src, t, other, want16, 1);
    }
    free(want);
    free(want16);
    free(wide);
    free(base);
}

/* ---- round: f32 -> f16 / bf16 ----------------------------------------------------- */

typedef struct vlist {
    float *v;
    size_t n, cap;
} vlist;

static void add(vlist *l, float x)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 1024;
        l->v = realloc(l->v, l->cap * sizeof *l->v);
    }
    l->v[l->n++] = x;
}

/* x, its neighbours one ulp either way, and all three negated. */
static void add_around(vlist *l, float x)
{
    const float xs[3] = {x, nextafterf(x, INFINITY), nextafterf(x, -INFINITY)};
    for (int k = 0; k < 3; k++) {
        add(l, xs[k]);
        add(l, -xs[k]);
    }
}

static void test_round(void)
{
    vlist l = {0};
    static const uint32_t special[] = {
        0x00000000, 0x80000000, 0x7f800000, 0xff800000,                 /* ±0, ±Inf */
        0x7fc00000, 0xffc00000, 0x7f800001, 0xff800001, 0x7fbfffff,     /* NaNs: quiet, */
        0x7fffffff, 0xffffffff, 0x7f801fff, 0x7f802000, 0x7f80ffff,     /* signalling, payload */
        0x7f810000, 0xff80e000,                                         /* only in low bits */
        0x477fe000, 0x477fefff, 0x477ff000, 0x477ff001, 0x47800000,     /* f16: 65504 .. 2^16 */
        0x7f7fffff, 0xff7fffff, 0x7f7f7fff, 0x7f7f8000, 0x7f7f8001,     /* bf16 max / overflow */
        0x38800000, 0x387fffff, 0x387fe000, 0x387ff000, 0x33800000,     /* f16 2^-14, 2^-24 */
        0x33000000, 0x33000001, 0x32ffffff, 0x33400000, 0x32800000,     /* 2^-25 ties, 1.5·2^-25 */
        0x00000001, 0x007fffff, 0x00800000, 0x00008000, 0x00018000,     /* f32 subnormals, */
        0x00408000, 0x00418000, 0x007f8000, 0x3f808000, 0x3f818000,     /* bf16 ties */
        0x3f800000, 0x3f801000, 0x3f803000, 0x3f802000, 0x3f802001,     /* f16 ties at 1 */
    };
    for (size_t i = 0; i < sizeof special / sizeof special[0]; i++)
        add(&l, bitsf(special[i]));
    /* Every midpoint between neighbouring finite values of both formats
       (exact in f32), and the largest value's midpoint towards 2^16 / 2^128. */
    for (uint32_t h = 0; h < 0x7c00; h++) {
        const double a = ref_f16_value((uint16_t)h);
        const double b = h + 1 < 0x7c00 ? ref_f16_value((uint16_t)(h + 1)) : 65536.0;
        add_around(&l, (float)((a + b) / 2));
    }
    for (uint32_t h = 0; h < 0x7f80; h++) {
        const double a = ref_bf16_value((uint16_t)h);
        const double b = h + 1 < 0x7f80 ? ref_bf16_value((uint16_t)(h + 1)) : ldexp(1, 128);
        if ((a + b) / 2 <= FLT_MAX)
            add_around(&l, (float)((a + b) / 2));
    }
    /* Every exponent with random mantissas, and random bit patterns. */
    for (uint32_t e = 0; e < 256; e++)
        for (int k = 0; k < (quick ? 8 : 64); k++)
            add(&l, bitsf(e << 23 | (uint32_t)(rng_next(&rng) & 0x807fffffu)));
    for (int k = 0; k < (quick ? 20000 : 200000); k++)
        add(&l, bitsf((uint32_t)rng_next(&rng)));

    const size_t n = l.n;
    unsigned char *base, *src = input_new(4 * n, 0, &base);
    memcpy(src, l.v, 4 * n);
    unsigned char *want = malloc(2 * n);
    for (int k = 0; k < 2; k++) {
        const qkv_dtype t = k ? QKV_BF16 : QKV_F16;
        ref_convert(n, src, QKV_F32, want, t);
        check_all("rounding", n, src, QKV_F32, t, want, 0);
    }
    free(want);
    free(base);
    free(l.v);
}

/* ---- blocks: Q8_0 and Q4_0 --------------------------------------------------------- */

enum { B_RANDOM, B_ZERO, B_NONFINITE, B_CONST, B_HUGE, B_TINY, B_TIES, B_SIGNED_TIE, B_KINDS };
static const char *const kind_names[B_KINDS] = {"random", "zero", "nonfinite", "constant",
                                                "huge", "tiny", "ties", "signed tie"};

static float rnd_unit(void)
{
    return rng_unit(&rng);
}

static void make_block(int kind, qkv_dtype t, float *x)
{
    const int r = (int)(rng_next(&rng) % 32);
    switch (kind) {
    case B_RANDOM: {                     /* any magnitude from 2^-140 to 2^20 */
        const int e = (int)(rng_next(&rng) % 161) - 140;
        for (int j = 0; j < 32; j++)
            x[j] = ldexpf(rnd_unit(), e);
        break;
    }
    case B_ZERO:                         /* ±0 */
        for (int j = 0; j < 32; j++)
            x[j] = (rng_next(&rng) & 1) ? -0.0f : 0.0f;
        break;
    case B_NONFINITE: {
        static const uint32_t bad[] = {0x7f800000, 0xff800000, 0x7fc00000, 0xffc00001, 0x7f800001};
        for (int j = 0; j < 32; j++)
            x[j] = rnd_unit();
        x[r] = bitsf(bad[rng_next(&rng) % 5]);
        break;
    }
    case B_CONST: {                      /* one value, any sign and size */
        const float c = ldexpf(rnd_unit(), (int)(rng_next(&rng) % 40) - 20);
        for (int j = 0; j < 32; j++)
            x[j] = c;
        break;
    }
    case B_HUGE: {                       /* around where the f16 scale overflows */
        const double limit = t == QKV_Q8_0 ? 127.0 * 65520 : 8.0 * 65520;
        const double m = limit * (1 + ldexp(rnd_unit(), -(int)(rng_next(&rng) % 24)));
        for (int j = 0; j < 32; j++)
            x[j] = (float)(m * rnd_unit());
        x[r] = (float)((rng_next(&rng) & 1) ? m : -m);
        if (rng_next(&rng) % 4 == 0)
            x[r] = (float)((rng_next(&rng) & 1) ? limit : -limit);
        break;
    }
    case B_TINY: {                       /* subnormal f16 scales, and scales below 2^-128 */
        const int e = -(int)(rng_next(&rng) % 30) - 110;
        for (int j = 0; j < 32; j++)
            x[j] = ldexpf(rnd_unit(), e);
        if (rng_next(&rng) % 4 == 0)
            x[r] = bitsf((uint32_t)(rng_next(&rng) % 64));     /* a few f32 subnormal steps */
        break;
    }
    case B_TIES:                         /* d = 1 exactly: x·id lands on halves */
        for (int j = 0; j < 32; j++) {
            const int q = (int)(rng_next(&rng) % 17) - 8;
            x[j] = t == QKV_Q8_0 ? (float)((int)(rng_next(&rng) % 255) - 127) + 0.5f * (float)(q & 1)
                                 : (float)q + 0.5f * (float)(rng_next(&rng) & 1);
        }
        if (t == QKV_Q8_0)
            x[r] = (rng_next(&rng) & 1) ? 127.0f : -127.0f;
        else
            x[r] = -8.0f;                /* max -8: d = 1 */
        for (int j = 0; j < 32; j++)
            if (j != r && fabsf(x[j]) >= fabsf(x[r]))
                x[j] = 0.5f;
        break;
    case B_SIGNED_TIE: {                 /* -a first and +a later (or the reverse) */
        const float a = ldexpf(fabsf(rnd_unit()) + 0.5f, (int)(rng_next(&rng) % 20) - 10);
        for (int j = 0; j < 32; j++)
            x[j] = a * 0.9f * rnd_unit();
        const int s = (rng_next(&rng) & 1) ? 1 : -1;
        x[r / 2] = (float)s * a;
        x[16 + r / 2] = -(float)s * a;
        break;
    }
    }
}

/* dequantize(quantize(x)) against x, per finite, storable block:
   Q8_0: |x - d16·q| <= |d16|/2 + 127·|d - d16| (+ 2^-20·amax): the
         rounding to the nearest q costs half a step of d, and the f16
         rounding of d moves each of up to 127 steps by d - d16;
   Q4_0: the same with a full step |d16| (the clamp of +8 to 7 loses one
         step on the side opposite to max) and 8 steps.
   d is the exact quotient (f32's loses bits where it is subnormal, and
   with them the block). The 2^-20·amax term covers the f32 roundings of
   d, 1/d and x·id. */
static void check_roundtrip(qkv_dtype t, const float *x, const unsigned char *blk, int kind)
{
    const uint16_t d16 = ld16(blk);
    if (!storable(d16))
        return;
    float amax = 0, max = 0;
    for (int j = 0; j < 32; j++) {
        if (fabsf(x[j]) > amax)
            amax = fabsf(x[j]);
        if (fabsf(x[j]) > fabsf(max))
            max = x[j];
    }
    const double d = t == QKV_Q8_0 ? amax / 127.0 : max / -8.0;     /* exact, not f32's */
    const double dd = ref_f16_value(d16);
    const double tol = (t == QKV_Q8_0 ? 0.5 * fabs(dd) + 127 * fabs(d - dd)
                                      : fabs(dd) + 8 * fabs(d - dd)) + ldexp(amax, -20);
    float y[32];
    ref_dequant(t, blk, y);
    double worst = 0;
    for (int j = 0; j < 32; j++)       /* no fmax: gcc 12 for aarch64 ICEs vectorizing it */
        if (fabs((double)y[j] - x[j]) > worst)
            worst = fabs((double)y[j] - x[j]);
    tally_check(&T, worst <= tol, "%s round trip (%s block, max|x| %g, d16 %g): error %g > %g",
                dtype_names[t], kind_names[kind], (double)amax, dd, worst, tol);
}

static void test_blocks(void)
{
    const size_t nb = quick ? 8 * B_KINDS : 64 * B_KINDS;
    const size_t n = 32 * nb;
    for (int k = 0; k < 2; k++) {
        const qkv_dtype t = k ? QKV_Q4_0 : QKV_Q8_0;
        const size_t bb = bytes_of(t, 32);
        unsigned char *base, *src = input_new(4 * n, 0, &base);
        float x[32];
        int kinds[64 * B_KINDS];
        for (size_t b = 0; b < nb; b++) {
            kinds[b] = (int)(b % B_KINDS);
            make_block(kinds[b], t, x);
            memcpy(src + 4 * 32 * b, x, sizeof x);
        }
        unsigned char *want = malloc(bytes_of(t, n));
        ref_convert(n, src, QKV_F32, want, t);
        check_all("quantize", n, src, QKV_F32, t, want, 0);
        /* the rules' outcomes on the reference's own blocks */
        for (size_t b = 0; b < nb; b++) {
            const float *xb = (const float *)(void *)(src + 4 * 32 * b);
            const unsigned char *blk = want + bb * b;
            check_roundtrip(t, xb, blk, kinds[b]);
            if (kinds[b] == B_NONFINITE)
                tally_check(&T, ld16(blk) == 0x7e00, "%s: a block with NaN/Inf has scale 0x%04x",
                            dtype_names[t], ld16(blk));
            if (kinds[b] == B_ZERO)
                tally_check(&T, (ld16(blk) & 0x7fff) == 0, "%s: a zero block has scale 0x%04x",
                            dtype_names[t], ld16(blk));
        }
        /* dequantize: the reference's blocks, then arbitrary bytes (every
           kind of f16 scale: subnormal, Inf, NaN; every quant) */
        unsigned char *wantf = malloc(4 * n);
        ref_convert(n, want, t, wantf, QKV_F32);
        check_all("dequantize", n, want, t, QKV_F32, wantf, 0);
        unsigned char *rbase, *raw = input_new(bytes_of(t, n), 0, &rbase);
        for (size_t i = 0; i < bytes_of(t, n); i++)
            raw[i] = (unsigned char)rng_next(&rng);
        ref_convert(n, raw, t, wantf, QKV_F32);
        check_all("dequantize random bytes", n, raw, t, QKV_F32, wantf, 0);
        free(rbase);
        free(wantf);
        free(want);
        free(base);
    }
    /* ggml's own examples of the rules, spelled out */
    {
        float x[32] = {0};
        unsigned char blk[34];
        x[3] = -0.0f;
        ref_quant_q4_0(x, blk);
        tally_check(&T, ld16(blk) == 0x8000 && blk[2] == 0x88,
                    "q4_0 zero block: ggml's d = 0 / -8 = -0 (0x8000), quants 8; got 0x%04x %02x",
                    ld16(blk), blk[2]);
        x[5] = -2.0f;
        x[9] = 2.0f;
        ref_quant_q4_0(x, blk);
        tally_check(&T, ld16(blk) == 0x3400 && (blk[2 + 5] & 15) == 0 && (blk[2 + 9] & 15) == 15,
                    "q4_0: max = -2 (first of ±2): d = 0.25, -2 -> 0, +2 -> 16 clamped to 15");
    }
}

/* ---- rows: every pair, every n, unaligned ------------------------------------------ */

/* Source values of type t: f32 mostly ordinary with some specials,
   16-bit as random patterns, blocks quantized from random floats (and a
   few raw blocks). */
static void fill_src(qkv_dtype t, size_t n, unsigned char *src)
{
    if (t == QKV_F32) {
        for (size_t i = 0; i < n; i++) {
            float v = ldexpf(rnd_unit(), (int)(rng_next(&rng) % 40) - 20);
            if (rng_next(&rng) % 50 == 0)
                v = bitsf((uint32_t)rng_next(&rng));
            memcpy(src + 4 * i, &v, 4);
        }
    } else if (!is_block(t)) {
        for (size_t i = 0; i < n; i++)
            st16(src + 2 * i, (uint16_t)rng_next(&rng));
    } else {
        float x[32];
        for (size_t b = 0; b < n / 32; b++) {
            make_block((int)(rng_next(&rng) % B_KINDS), t, x);
            if (t == QKV_Q8_0)
                ref_quant_q8_0(x, src + 34 * b);
            else
                ref_quant_q4_0(x, src + 18 * b);
        }
    }
}

static int pair_supported(qkv_dtype s, qkv_dtype d)
{
    return s == d || s == QKV_F32 || d == QKV_F32 || (!is_block(s) && !is_block(d));
}

static void test_rows(void)
{
    const size_t nmax = 300;
    for (int s = 0; s < QKV_DTYPE_COUNT; s++)
        for (int d = 0; d < QKV_DTYPE_COUNT; d++) {
            const qkv_dtype st = (qkv_dtype)s, dt = (qkv_dtype)d;
            if (!pair_supported(st, dt))
                continue;
            const size_t step = is_block(st) || is_block(dt) ? 32 : 1;
            for (size_t n = step; n <= nmax + step; n += step) {
                if (quick && step == 1 && n > 40 && n % 7)
                    continue;
                const size_t so = rng_next(&rng) % 4, doff = rng_next(&rng) % 4;
                unsigned char *base, *src = input_new(bytes_of(st, n), so, &base);
                fill_src(st, n, src);
                unsigned char *want = malloc(bytes_of(dt, n));
                ref_convert(n, src, st, want, dt);
                char what[64];
                snprintf(what, sizeof what, "row (src +%zu, dst +%zu)", so, doff);
                check_all(what, n, src, st, dt, want, doff);
                free(want);
                free(base);
            }
        }
}

/* ---- badargs: every error, nothing written ------------------------------------------ */

typedef struct bad {
    const char *what;
    size_t n;
    int src_null, dst_null;
    qkv_dtype st, dt;
    int shared;            /* src and dst in one buffer, dst = src + dst_at bytes */
    ptrdiff_t dst_at;
    qkv_status want;
} bad;

static void test_badargs(void)
{
    const qkv_dtype F32 = QKV_F32, F16 = QKV_F16, BF16 = QKV_BF16, Q8 = QKV_Q8_0, Q4 = QKV_Q4_0;
    const qkv_dtype NEG = (qkv_dtype)-1, END = QKV_DTYPE_COUNT, BIG = (qkv_dtype)1000;
    const bad cases[] = {
        {"NULL src", 64, 1, 0, F32, F16, 0, 0, QKV_ERR_ARG},
        {"NULL dst", 64, 0, 1, F32, F16, 0, 0, QKV_ERR_ARG},
        {"n == 0", 0, 0, 0, F32, F16, 0, 0, QKV_ERR_ARG},
        {"n == 0 (copy)", 0, 0, 0, F32, F32, 0, 0, QKV_ERR_ARG},
        {"src dtype -1", 64, 0, 0, NEG, F32, 0, 0, QKV_ERR_ARG},
        {"src dtype QKV_DTYPE_COUNT", 64, 0, 0, END, F32, 0, 0, QKV_ERR_ARG},
        {"dst dtype QKV_DTYPE_COUNT", 64, 0, 0, F32, END, 0, 0, QKV_ERR_ARG},
        {"dst dtype 1000", 64, 0, 0, F16, BIG, 0, 0, QKV_ERR_ARG},
        {"q8_0 n % 32", 48, 0, 0, F32, Q8, 0, 0, QKV_ERR_ARG},
        {"q4_0 n % 32 (src)", 33, 0, 0, Q4, F32, 0, 0, QKV_ERR_ARG},
        {"q8_0 copy n % 32", 31, 0, 0, Q8, Q8, 0, 0, QKV_ERR_ARG},
        {"bad n before an unsupported pair", 40, 0, 0, Q8, F16, 0, 0, QKV_ERR_ARG},
        {"overflow f32 bytes", SIZE_MAX / 2, 0, 0, F32, F16, 0, 0, QKV_ERR_OVERFLOW},
        {"over PTRDIFF_MAX f16 bytes", SIZE_MAX / 2 - 1, 0, 0, F16, BF16, 0, 0, QKV_ERR_OVERFLOW},
        {"overflow q8_0 bytes", SIZE_MAX - 31, 0, 0, Q8, F32, 0, 0, QKV_ERR_OVERFLOW},
        {"overflow f32 copy", (size_t)1 << 62, 0, 0, F32, F32, 0, 0, QKV_ERR_OVERFLOW},
        {"dst == src", 64, 0, 0, F32, F16, 1, 0, QKV_ERR_ARG},
        {"dst inside src", 64, 0, 0, F32, F16, 1, 100, QKV_ERR_ARG},
        {"dst overlaps src's end", 64, 0, 0, F32, BF16, 1, 255, QKV_ERR_ARG},
        {"src inside dst", 64, 0, 0, BF16, F32, 1, -20, QKV_ERR_ARG},
        {"same-type overlap", 64, 0, 0, F16, F16, 1, 2, QKV_ERR_ARG},
        {"q8_0 -> f16", 64, 0, 0, Q8, F16, 0, 0, QKV_ERR_UNSUPPORTED},
        {"q4_0 -> bf16", 64, 0, 0, Q4, BF16, 0, 0, QKV_ERR_UNSUPPORTED},
        {"f16 -> q8_0", 64, 0, 0, F16, Q8, 0, 0, QKV_ERR_UNSUPPORTED},
        {"bf16 -> q4_0", 64, 0, 0, BF16, Q4, 0, 0, QKV_ERR_UNSUPPORTED},
        {"q8_0 -> q4_0", 64, 0, 0, Q8, Q4, 0, 0, QKV_ERR_UNSUPPORTED},
        {"q4_0 -> q8_0", 64, 0, 0, Q4, Q8, 0, 0, QKV_ERR_UNSUPPORTED},
    };
    const size_t ncase = sizeof cases / sizeof cases[0];
    /* Valid memory for the pointers: 4 KiB of source, 4 KiB of output. The
       overflow cases must fail before reading any of it. */
    unsigned char *sbase, *src = input_new(4096, 0, &sbase);
    for (size_t i = 0; i < 4096; i++)
        src[i] = (unsigned char)rng_next(&rng);
    const qkv_funcs dispatched = {QKV_ISA_NONE, qkv_scores, qkv_softmax, qkv_weighted_sum,
                                  qkv_attention, qkv_convert, qkv_merge_states};
    for (int k = 0; k < nisa; k++)
        for (int path = 0; path < 2; path++) {
            const qkv_funcs *f = path ? &dispatched : funcs_of(isas[k]);
            if (path && qkv_isa_set(isas[k]) != QKV_OK)
                tally_check(&T, 0, "qkv_isa_set(%s) failed", qkv_isa_name(isas[k]));
            for (size_t c = 0; c < ncase; c++) {
                const bad *b = &cases[c];
                gbuf out = gbuf_new(4096, 0);
                unsigned char snapshot[4096];
                void *dst = out.data;
                const void *s = b->src_null ? NULL : src;
                if (b->shared) {
                    /* both inside one buffer: the output buffer, whose
                       bytes (source too) must not change */
                    s = out.data + 512;
                    dst = out.data + 512 + b->dst_at;
                }
                memcpy(snapshot, out.data, sizeof snapshot);
                const qkv_status got = f->convert(b->n, s, b->st, b->dst_null ? NULL : dst, b->dt);
                tally_check(&T, got == b->want, "[%s%s] %s: %s, want %s", qkv_isa_name(isas[k]),
                            path ? " dispatched" : "", b->what, qkv_status_string(got),
                            qkv_status_string(b->want));
                tally_check(&T, gbuf_untouched(&out) && !memcmp(snapshot, out.data, 4096),
                            "[%s%s] %s: wrote on a failed call", qkv_isa_name(isas[k]),
                            path ? " dispatched" : "", b->what);
                free(out.base);
            }
            /* The edges of the overlap rule: adjacent buffers do not overlap. */
            gbuf out = gbuf_new(4096, 0);
            unsigned char *a = out.data;
            tally_check(&T, f->convert(64, a, QKV_F32, a + 256, QKV_F16) == QKV_OK,
                        "[%s%s] f32 -> f16 into the bytes right after the source: refused",
                        qkv_isa_name(isas[k]), path ? " dispatched" : "");
            tally_check(&T, f->convert(64, a + 128, QKV_F16, a, QKV_F16) == QKV_OK,
                        "[%s%s] f16 copy into the bytes right before the source: refused",
                        qkv_isa_name(isas[k]), path ? " dispatched" : "");
            free(out.base);
        }
    qkv_isa_set(qkv_isa_best());
    free(sbase);
}

/* ---- main --------------------------------------------------------------------------- */

static const char *arg_value(const char *arg, const char *name)
{
    const size_t n = strlen(name);
    return strncmp(arg, name, n) == 0 && arg[n] == '=' ? arg + n + 1 : NULL;
}

int main(int argc, char **argv)
{
    uint64_t seed = (uint64_t)time(NULL);
    const char *only_isa = NULL, *v;
    for (int i = 1; i < argc; i++) {
        if ((v = arg_value(argv[i], "--seed")))
            seed = strtoull(v, NULL, 0);
        else if ((v = arg_value(argv[i], "--isa")))
            only_isa = v;
        else if (strcmp(argv[i], "--quick") == 0)
            quick = 1;
        else {
            fprintf(stderr, "usage: %s [--seed=N] [--quick] [--isa=NAME]\n", argv[0]);
            return 2;
        }
    }
    rng = seed;
    qkv_isa all[QKV_ISA_COUNT];
    const int nall = supported_isas(all);
    for (int i = 0; i < nall; i++)
        if (!only_isa || all[i] == QKV_ISA_SCALAR || strcmp(only_isa, qkv_isa_name(all[i])) == 0)
            isas[nisa++] = all[i];
    scalar = funcs_of(QKV_ISA_SCALAR);
    printf("convert: seed %" PRIu64 "%s, ISAs:", seed, quick ? " (quick)" : "");
    for (int i = 0; i < nisa; i++)
        printf(" %s", qkv_isa_name(isas[i]));
    printf("\n");
    if (!scalar) {
        printf("convert: no scalar table\n");
        return 1;
    }

    test_exhaustive();
    test_round();
    test_blocks();
    test_rows();
    test_badargs();
    return tally_finish(&T);
}

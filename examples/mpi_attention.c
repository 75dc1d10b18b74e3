/*
 * Attention over one long sequence whose keys and values are spread across
 * MPI ranks (machines, or processes on one machine). qkv computes each
 * rank's part; MPI moves the data; qkv_merge_states combines the parts by
 * their log-sum-exp. Two ways:
 *
 *   allreduce  decoding: every rank holds the same few new queries and one
 *              shard of the KV cache. Each computes attention over its shard
 *              with lse, then one MPI_Allreduce with an MPI_Op built on
 *              qkv_merge_states leaves the whole result on every rank.
 *   ring       prefill (ring attention): rank r holds chunk r of the
 *              queries and of K/V. The K/V blocks travel around the ring,
 *              the next one in flight while the current one is used; each
 *              rank merges what its queries see of every block into its own
 *              running result.
 *
 * Both are causal, GQA, with an attention sink per head (given to one part
 * only, so that it joins the softmax once). Rank 0 also runs the same
 * attention in one qkv_attention call and checks the distributed result
 * against it: output within 1e-5, lse within 1e-5 relative; the exit status
 * is non-zero otherwise.
 *
 *   mpirun -np 4 ./mpi_attention [--mode=allreduce|ring|both] [--kv-len=N]
 *                                [--ring-len=N] [--seed=N]
 *
 * The test data is drawn from the seed identically on every rank so that
 * rank 0 can check; in the ring, each rank uses only its own block of it
 * and the blocks it receives.
 */
#include <math.h>
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qkv.h"

/* API.md's accuracy contract, which the merged result keeps: within 1e-5
   of the one-call result (absolute for o, relative to max(1, |lse|) for
   lse); the merges add a few ulp. */
#define TOL 1e-5

#define Q_HEADS 8
#define KV_HEADS 2
#define DIM 64

static int rank, nranks;

static void fail(const char *what, qkv_status st)
{
    fprintf(stderr, "rank %d: %s: %s\n", rank, what, qkv_status_string(st));
    MPI_Abort(MPI_COMM_WORLD, 2);
}

static void check_ok(const char *what, qkv_status st)
{
    if (st != QKV_OK)
        fail(what, st);
}

static void *alloc_floats(size_t n)
{
    float *p = malloc((n ? n : 1) * sizeof *p);
    if (!p) {
        fprintf(stderr, "rank %d: out of memory\n", rank);
        MPI_Abort(MPI_COMM_WORLD, 2);
    }
    return p;
}

/* splitmix64 into [-1, 1]: the same numbers on every rank and machine. */
static void fill(float *x, size_t n, uint64_t *s)
{
    for (size_t i = 0; i < n; i++) {
        uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        z ^= z >> 31;
        x[i] = (float)((double)(z >> 11) * (2.0 / 9007199254740992.0) - 1.0);
    }
}

/* One sequence (batch 1): q [Q_HEADS][q_len][DIM], k and v
   [KV_HEADS][kv_len][DIM], one sink logit per query head. */
typedef struct problem {
    size_t q_len, kv_len;
    float *q, *k, *v, sinks[Q_HEADS];
} problem;

static problem make_problem(size_t q_len, size_t kv_len, uint64_t seed)
{
    problem p = {q_len, kv_len, alloc_floats(Q_HEADS * q_len * DIM),
                 alloc_floats(KV_HEADS * kv_len * DIM), alloc_floats(KV_HEADS * kv_len * DIM), {0}};
    fill(p.q, Q_HEADS * q_len * DIM, &seed);
    fill(p.k, KV_HEADS * kv_len * DIM, &seed);
    fill(p.v, KV_HEADS * kv_len * DIM, &seed);
    fill(p.sinks, Q_HEADS, &seed);
    return p;
}

static void free_problem(problem *p)
{
    free(p->q), free(p->k), free(p->v);
}

/* Attention of q_len query rows (q_head_stride floats between heads)
   against kv_len keys (k and v: kv_head_stride floats between heads), into
   o [Q_HEADS][q_len] rows ldo apart, and lse [Q_HEADS][q_len]. */
static void attend(size_t q_len, const float *q, size_t q_head_stride, size_t kv_len,
                   const float *k, const float *v, size_t kv_head_stride, qkv_mask_kind mask,
                   const float *sinks, float *o, size_t ldo, float *lse)
{
    qkv_attention_desc d = {0};
    d.batch = 1;
    d.q_heads = Q_HEADS;
    d.kv_heads = KV_HEADS;
    d.q_len = q_len;
    d.kv_len = kv_len;
    d.head_dim = d.v_head_dim = DIM;
    d.q = (qkv_tensor){q, QKV_F32, 0, q_head_stride, DIM};
    d.k = (qkv_tensor){k, QKV_F32, 0, kv_head_stride, DIM};
    d.v = (qkv_tensor){v, QKV_F32, 0, kv_head_stride, DIM};
    d.o = (qkv_out_tensor){o, 0, q_len * ldo, ldo, QKV_F32};
    d.scale = qkv_default_scale(DIM);
    d.mask = mask;
    d.sinks = sinks;
    d.lse = lse;
    check_ok("qkv_attention", qkv_attention(&d));
}

/* Worst errors of `rows` result rows against the one-call reference. */
typedef struct errors {
    double o, lse;
} errors;

static void compare(errors *e, size_t rows, const float *o, size_t ldo, const float *lse,
                    const float *ref_o, size_t ref_ldo, const float *ref_lse)
{
    for (size_t r = 0; r < rows; r++) {
        for (size_t c = 0; c < DIM; c++) {
            const double x = fabs((double)o[r * ldo + c] - ref_o[r * ref_ldo + c]);
            e->o = isnan(x) ? INFINITY : fmax(e->o, x);
        }
        const double x = fabs((double)lse[r] - ref_lse[r]) / fmax(1.0, fabs(ref_lse[r]));
        e->lse = isnan(x) ? INFINITY : fmax(e->lse, x);
    }
}

/* Rank 0 prints the verdict; every rank returns it. */
static int verdict(const char *mode, errors e)
{
    int bad = !(e.o <= TOL && e.lse <= TOL);
    MPI_Bcast(&bad, 1, MPI_INT, 0, MPI_COMM_WORLD);
    if (rank == 0)
        printf("%-9s %d ranks: max |o - one call| = %.3g, lse relative %.3g: %s\n", mode, nranks,
               e.o, e.lse, bad ? "FAILED" : "ok");
    return bad;
}

/* ---- allreduce: decode over a sharded KV cache ----------------------------- */

/* The reduction element: one query row's partial state, its DIM outputs
   followed by its lse. */
static void merge_rows(void *in, void *inout, int *len, MPI_Datatype *type)
{
    int bytes;
    MPI_Type_size(*type, &bytes);
    const size_t w = (size_t)bytes / sizeof(float), dv = w - 1;
    const float *x = in;
    float *acc = inout;
    for (int i = 0; i < *len; i++, x += w, acc += w)
        check_ok("qkv_merge_states", qkv_merge_states(1, dv, acc, w, acc + dv, x, w, x + dv));
}

static int run_allreduce(size_t kv_len, uint64_t seed)
{
    const size_t q_len = 4, rows = Q_HEADS * q_len, w = DIM + 1;
    /* The last shard must hold at least q_len keys: then the causal mask
       hides keys from the last shard only, and there it is the shard's own
       bottom-right causal mask (its keys end where the sequence ends), while
       every other shard is seen whole. */
    if (kv_len / (size_t)nranks < q_len) {
        if (rank == 0)
            fprintf(stderr, "allreduce: --kv-len must be at least %zu for %d ranks\n",
                    q_len * (size_t)nranks, nranks);
        return 1;
    }
    problem p = make_problem(q_len, kv_len, seed);
    const size_t j0 = kv_len * (size_t)rank / (size_t)nranks;
    const size_t j1 = kv_len * ((size_t)rank + 1) / (size_t)nranks;

    /* qkv writes o straight into the elements (rows w floats apart); lse
       goes to the last float of each. */
    float *state = alloc_floats(rows * w), *lse = alloc_floats(rows);
    attend(q_len, p.q, q_len * DIM, j1 - j0, p.k + j0 * DIM, p.v + j0 * DIM, kv_len * DIM,
           rank == nranks - 1 ? QKV_MASK_CAUSAL : QKV_MASK_NONE, rank == 0 ? p.sinks : NULL,
           state, w, lse);
    for (size_t r = 0; r < rows; r++)
        state[r * w + DIM] = lse[r];

    MPI_Datatype row;
    MPI_Type_contiguous(DIM + 1, MPI_FLOAT, &row);
    MPI_Type_commit(&row);
    /* Declared commutative: merge(a, b) and merge(b, a) give the same bits
       (tests/merge.c asserts it). Like MPI_SUM on floats, the merge is
       associative only up to rounding, and MPI may group the operands as it
       likes whether or not an op commutes, so declaring it non-commutative
       would constrain MPI's algorithm without fixing the last bits. */
    MPI_Op merge;
    MPI_Op_create(merge_rows, 1, &merge);
    MPI_Allreduce(MPI_IN_PLACE, state, (int)rows, row, merge, MPI_COMM_WORLD);
    MPI_Op_free(&merge);
    MPI_Type_free(&row);

    errors e = {0, 0};
    if (rank == 0) {
        float *ref = alloc_floats(rows * DIM), *ref_lse = alloc_floats(rows);
        attend(q_len, p.q, q_len * DIM, kv_len, p.k, p.v, kv_len * DIM, QKV_MASK_CAUSAL, p.sinks,
               ref, DIM, ref_lse);
        for (size_t r = 0; r < rows; r++)
            lse[r] = state[r * w + DIM];
        compare(&e, rows, state, w, lse, ref, DIM, ref_lse);
        free(ref), free(ref_lse);
    }
    free(state), free(lse);
    free_problem(&p);
    return verdict("allreduce", e);
}

/* ---- ring: causal prefill, K/V blocks passed around ------------------------- */

static size_t chunk_begin(size_t len, int c)
{
    return len * (size_t)c / (size_t)nranks;
}

static int run_ring(size_t len, uint64_t seed)
{
    if (len < (size_t)nranks) {
        if (rank == 0)
            fprintf(stderr, "ring: --ring-len must be at least %d\n", nranks);
        return 1;
    }
    problem p = make_problem(len, len, seed);
    const size_t q0 = chunk_begin(len, rank), nq = chunk_begin(len, rank + 1) - q0;
    const size_t max_block = len / (size_t)nranks + 1, rows = Q_HEADS * nq;
    /* A block in flight: K then V, [KV_HEADS][max_block][DIM] each. */
    const size_t block_floats = 2 * KV_HEADS * max_block * DIM;
    float *blocks[2] = {alloc_floats(block_floats), alloc_floats(block_floats)};
    for (size_t g = 0; g < KV_HEADS; g++) {
        memcpy(blocks[0] + g * max_block * DIM, p.k + (g * len + q0) * DIM, nq * DIM * sizeof(float));
        memcpy(blocks[0] + (KV_HEADS + g) * max_block * DIM, p.v + (g * len + q0) * DIM,
               nq * DIM * sizeof(float));
    }
    float *o = alloc_floats(rows * DIM), *lse = alloc_floats(rows);
    /* Also where rank 0 receives the other chunks, which may be a row longer. */
    float *part = alloc_floats(Q_HEADS * max_block * DIM), *part_lse = alloc_floats(Q_HEADS * max_block);
    const int right = (rank + 1) % nranks, left = (rank + nranks - 1) % nranks;

    for (int t = 0; t < nranks; t++) {
        MPI_Request req[2];
        const int more = t + 1 < nranks;
        if (more) {
            MPI_Irecv(blocks[1], (int)block_floats, MPI_FLOAT, left, t, MPI_COMM_WORLD, &req[0]);
            MPI_Isend(blocks[0], (int)block_floats, MPI_FLOAT, right, t, MPI_COMM_WORLD, &req[1]);
        }
        /* At step t this rank holds block b. Its queries see blocks before
           their own whole, their own block causally (query and key chunks
           are the same rows, so bottom-right is the sequence's alignment),
           and nothing after it. Step 0 is the own block, with the sinks. */
        const int b = (rank - t + nranks) % nranks;
        if (b <= rank) {
            const float *k = blocks[0], *v = blocks[0] + KV_HEADS * max_block * DIM;
            const size_t nk = chunk_begin(len, b + 1) - chunk_begin(len, b);
            const qkv_mask_kind mask = b == rank ? QKV_MASK_CAUSAL : QKV_MASK_NONE;
            if (t == 0) {
                attend(nq, p.q + q0 * DIM, len * DIM, nk, k, v, max_block * DIM, mask, p.sinks,
                       o, DIM, lse);
            } else {
                attend(nq, p.q + q0 * DIM, len * DIM, nk, k, v, max_block * DIM, mask, NULL,
                       part, DIM, part_lse);
                check_ok("qkv_merge_states",
                         qkv_merge_states(rows, DIM, o, DIM, lse, part, DIM, part_lse));
            }
        }
        if (more) {
            MPI_Waitall(2, req, MPI_STATUSES_IGNORE);
            float *tmp = blocks[0];
            blocks[0] = blocks[1], blocks[1] = tmp;
        }
    }

    errors e = {0, 0};
    if (rank == 0) {
        float *ref = alloc_floats(Q_HEADS * len * DIM), *ref_lse = alloc_floats(Q_HEADS * len);
        attend(len, p.q, len * DIM, len, p.k, p.v, len * DIM, QKV_MASK_CAUSAL, p.sinks, ref, DIM,
               ref_lse);
        for (int src = 0; src < nranks; src++) {
            const size_t c0 = chunk_begin(len, src), n = chunk_begin(len, src + 1) - c0;
            if (src) {
                MPI_Recv(part, (int)(Q_HEADS * n * DIM), MPI_FLOAT, src, 1000, MPI_COMM_WORLD,
                         MPI_STATUS_IGNORE);
                MPI_Recv(part_lse, (int)(Q_HEADS * n), MPI_FLOAT, src, 1001, MPI_COMM_WORLD,
                         MPI_STATUS_IGNORE);
            }
            const float *got = src ? part : o, *got_lse = src ? part_lse : lse;
            for (size_t h = 0; h < Q_HEADS; h++)
                compare(&e, n, got + h * n * DIM, DIM, got_lse + h * n,
                        ref + (h * len + c0) * DIM, DIM, ref_lse + h * len + c0);
        }
        free(ref), free(ref_lse);
    } else {
        MPI_Send(o, (int)(rows * DIM), MPI_FLOAT, 0, 1000, MPI_COMM_WORLD);
        MPI_Send(lse, (int)rows, MPI_FLOAT, 0, 1001, MPI_COMM_WORLD);
    }
    free(blocks[0]), free(blocks[1]), free(o), free(lse), free(part), free(part_lse);
    free_problem(&p);
    return verdict("ring", e);
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &nranks);

    const char *mode = "both";
    size_t kv_len = 8192, ring_len = 1024;
    uint64_t seed = 1;
    for (int i = 1; i < argc; i++) {
        if (strncmp(argv[i], "--mode=", 7) == 0)
            mode = argv[i] + 7;
        else if (strncmp(argv[i], "--kv-len=", 9) == 0)
            kv_len = strtoull(argv[i] + 9, NULL, 0);
        else if (strncmp(argv[i], "--ring-len=", 11) == 0)
            ring_len = strtoull(argv[i] + 11, NULL, 0);
        else if (strncmp(argv[i], "--seed=", 7) == 0)
            seed = strtoull(argv[i] + 7, NULL, 0);
        else {
            if (rank == 0)
                fprintf(stderr, "usage: mpirun -np N %s [--mode=allreduce|ring|both] "
                                "[--kv-len=N] [--ring-len=N] [--seed=N]\n", argv[0]);
            MPI_Finalize();
            return 2;
        }
    }
    const int all = strcmp(mode, "both") == 0;
    if (!all && strcmp(mode, "allreduce") != 0 && strcmp(mode, "ring") != 0) {
        if (rank == 0)
            fprintf(stderr, "unknown --mode=%s (allreduce, ring, both)\n", mode);
        MPI_Finalize();
        return 2;
    }
    if (rank == 0)
        printf("qkv on %s, seed %llu\n", qkv_isa_name(qkv_isa_get()), (unsigned long long)seed);
    int bad = 0;
    if (all || strcmp(mode, "allreduce") == 0)
        bad |= run_allreduce(kv_len, seed);
    if (all || strcmp(mode, "ring") == 0)
        bad |= run_ring(ring_len, seed);
    MPI_Finalize();
    return bad;
}

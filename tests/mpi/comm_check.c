/* Multi-rank checks of the communicator and the engine (run by tests/test_parallel_mpi.sh). */
/* Usage: mpi_comm_check MODE, MODE one of
 *   collectives  every collective on odd sizes, uneven and empty parts, non-blocking overlap
 *   engine       ZeRO stages 0-3 on the toy model against the serial reference
 *   timeout      the last rank skips a collective: the others must stop the job (time-out 2 s)
 *   die          rank 1 is killed during step 3: the job must end, naming the rank
 *   die-handler-before, die-handler-after   the same with a SIGTERM handler of the program's
 *                own, installed before or after the communicator
 * Prints "comm_check MODE: ok" on rank 0 when every check passed; exits 1 on a failed check. */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lmforge/comm.h"
#include "lmforge/ddp.h"
#include "lmforge/kernels.h"
#include "lib/test_util.h"
#include "mpi/toy_model.h"

static int g_rank, g_size, g_failures;
static volatile sig_atomic_t g_stop;

/* a graceful-stop handler as a trainer has one */
static void on_stop(int sig) { g_stop = sig; }
static void on_stop_noting(int sig) {
    lmf_comm_note_signal(sig);
    g_stop = sig;
}

#define CHECK(cond, ...)                                                        \
    do {                                                                        \
        if (!(cond)) {                                                          \
            fprintf(stderr, "rank %d: %s:%d: check failed: %s: ", g_rank,       \
                    __FILE__, __LINE__, #cond);                                 \
            fprintf(stderr, __VA_ARGS__);                                       \
            fprintf(stderr, "\n");                                              \
            g_failures++;                                                       \
        }                                                                       \
    } while (0)

#define OK(expr) CHECK((expr) == LMF_OK, "%s", lmf_last_error())

/* small integers, so sums of up to a few ranks are exact in float */
static float val(size_t i) { return (float)((i * 7919u) % 97u) - 48.0f; }

static void check_allreduce(lmf_comm *c, size_t n) {
    float *x = malloc((n ? n : 1) * sizeof(float));
    for (size_t i = 0; i < n; i++) x[i] = (float)(g_rank + 1) * val(i);
    OK(lmf_comm_allreduce_f32(c, x, n));
    float tri = (float)(g_size * (g_size + 1) / 2);
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) bad += x[i] != tri * val(i);
    CHECK(bad == 0, "allreduce of %zu floats: %zu wrong", n, bad);
    free(x);
}

static void check_scalars(lmf_comm *c) {
    double d[3] = {g_rank + 0.5, -g_rank - 0.25, 1e300 * (g_rank == g_size - 1)};
    double mx[3], mn[3];
    memcpy(mx, d, sizeof d);
    memcpy(mn, d, sizeof d);
    OK(lmf_comm_allreduce_f64(c, d, 3, LMF_COMM_SUM));
    OK(lmf_comm_allreduce_f64(c, mx, 3, LMF_COMM_MAX));
    OK(lmf_comm_allreduce_f64(c, mn, 3, LMF_COMM_MIN));
    double W = g_size;
    CHECK(d[0] == W * (W - 1) / 2 + 0.5 * W, "f64 sum %g", d[0]);
    CHECK(mx[0] == W - 0.5 && mx[1] == -0.25 && mx[2] == 1e300, "f64 max %g %g", mx[0], mx[1]);
    CHECK(mn[0] == 0.5 && mn[1] == -W + 0.75, "f64 min %g %g", mn[0], mn[1]);
    int64_t k[2] = {((int64_t)1 << 50) + g_rank, -g_rank};
    OK(lmf_comm_allreduce_i64(c, k, 2, LMF_COMM_SUM));
    CHECK(k[0] == ((int64_t)g_size << 50) + g_size * (g_size - 1) / 2, "i64 sum %lld",
          (long long)k[0]);
    int64_t flag = g_rank == g_size - 1 ? 3 : 0;
    OK(lmf_comm_allreduce_i64(c, &flag, 1, LMF_COMM_MAX));
    CHECK(flag == 3, "i64 max %lld", (long long)flag);
}

/* reduce-scatter and all-gather with these per-rank counts */
static void check_v(lmf_comm *c, const size_t *counts, int nonblocking) {
    size_t total = 0, disp = 0;
    for (int r = 0; r < g_size; r++) {
        if (r < g_rank) disp += counts[r];
        total += counts[r];
    }
    size_t mine = counts[g_rank];
    float *send = malloc((total + 1) * sizeof(float)), *recv = malloc((mine + 1) * sizeof(float));
    for (size_t i = 0; i < total; i++) send[i] = (float)(g_rank + 1) * val(i);
    if (nonblocking) {
        lmf_comm_req *q;
        OK(lmf_comm_ireduce_scatter_f32(c, recv, send, counts, &q));
        OK(lmf_comm_wait(c, &q));
    } else {
        OK(lmf_comm_reduce_scatter_f32(c, recv, send, counts));
    }
    float tri = (float)(g_size * (g_size + 1) / 2);
    size_t bad = 0;
    for (size_t i = 0; i < mine; i++) bad += recv[i] != tri * val(disp + i);
    CHECK(bad == 0, "reduce-scatter total %zu, mine %zu: %zu wrong", total, mine, bad);
    /* in place: this rank's part of the sum lands at the start of the input */
    OK(lmf_comm_reduce_scatter_f32(c, send, send, counts));
    bad = 0;
    for (size_t i = 0; i < mine; i++) bad += send[i] != tri * val(disp + i);
    CHECK(bad == 0, "in-place reduce-scatter total %zu, mine %zu: %zu wrong", total, mine, bad);
    /* all-gather: from a separate buffer, then in place */
    float *all = malloc((total + 1) * sizeof(float));
    for (size_t i = 0; i < mine; i++) recv[i] = val(disp + i) + 0.5f;
    for (size_t i = 0; i < total; i++) all[i] = -1000;
    if (nonblocking) {
        lmf_comm_req *q;
        OK(lmf_comm_iallgather_f32(c, all, recv, counts, &q));
        OK(lmf_comm_wait(c, &q));
    } else {
        OK(lmf_comm_allgather_f32(c, all, recv, counts));
    }
    bad = 0;
    for (size_t i = 0; i < total; i++) bad += all[i] != val(i) + 0.5f;
    CHECK(bad == 0, "all-gather total %zu: %zu wrong", total, bad);
    for (size_t i = 0; i < total; i++) all[i] = (i >= disp && i < disp + mine) ? val(i) : -7;
    OK(lmf_comm_allgather_f32(c, all, NULL, counts));
    bad = 0;
    for (size_t i = 0; i < total; i++) bad += all[i] != val(i);
    CHECK(bad == 0, "in-place all-gather total %zu: %zu wrong", total, bad);
    free(send);
    free(recv);
    free(all);
}

static void check_nonblocking_overlap(lmf_comm *c) {
    /* three collectives in flight together while this rank computes and polls */
    size_t n = (size_t)3 << 20 | 1, m = 100003;
    float *a = malloc(n * sizeof(float)), *s = malloc(m * sizeof(float));
    size_t *counts = malloc((size_t)g_size * sizeof(size_t));
    lmf_partition_counts(m, g_size, (lmf_range){0, m}, counts);
    lmf_range my = lmf_partition_range(m, g_size, g_rank);
    float *r = malloc((lmf_range_len(my) + 1) * sizeof(float)), *g = malloc(m * sizeof(float));
    for (size_t i = 0; i < n; i++) a[i] = (float)(g_rank + 1) * val(i);
    for (size_t i = 0; i < m; i++) s[i] = (float)(g_rank + 1) * val(i);
    for (size_t i = my.begin; i < my.end; i++) g[i] = val(i) * 2;
    lmf_comm_req *q[3];
    OK(lmf_comm_iallreduce(c, a, n, LMF_COMM_F32, LMF_COMM_SUM, &q[0]));
    OK(lmf_comm_ireduce_scatter_f32(c, r, s, counts, &q[1]));
    OK(lmf_comm_iallgather_f32(c, g, NULL, counts, &q[2]));
    CHECK(lmf_comm_pending(c) == 3, "pending %d", lmf_comm_pending(c));
    double work = 0;
    int polls = 0, left = 3;
    while (left > 0 && polls < 10000000) {
        for (int k = 0; k < 2000; k++) work += sqrt((double)k + polls); /* "a kernel" */
        OK(lmf_comm_progress(c));
        polls++;
        left = 0;
        for (int k = 0; k < 3; k++) {
            int done;
            OK(lmf_comm_test(c, &q[k], &done));
            left += !done;
        }
    }
    CHECK(left == 0 && work > 0, "non-blocking collectives did not finish while polling");
    float tri = (float)(g_size * (g_size + 1) / 2);
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) bad += a[i] != tri * val(i);
    for (size_t i = 0; i < lmf_range_len(my); i++) bad += r[i] != tri * val(my.begin + i);
    for (size_t i = 0; i < m; i++) bad += g[i] != val(i) * 2;
    CHECK(bad == 0, "overlapped collectives: %zu wrong values", bad);
    CHECK(lmf_comm_pending(c) == 0, "pending %d after completion", lmf_comm_pending(c));
    free(a);
    free(s);
    free(r);
    free(g);
    free(counts);
}

static void mode_collectives(lmf_comm *c) {
    size_t sizes[] = {0, 1, 2, 7, 1000003, (size_t)g_size * 3 + 1, 65537};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) check_allreduce(c, sizes[i]);
    check_scalars(c);
    size_t *counts = malloc((size_t)g_size * sizeof(size_t));
    /* balanced shards of sizes that do not divide, including fewer elements than ranks */
    size_t totals[] = {0, 1, (size_t)g_size - 1, 5, 1001, 262147};
    for (size_t t = 0; t < sizeof totals / sizeof totals[0]; t++) {
        lmf_partition_counts(totals[t], g_size, (lmf_range){0, totals[t]}, counts);
        check_v(c, counts, (int)(t & 1));
    }
    /* irregular counts with empty parts */
    for (int r = 0; r < g_size; r++) counts[r] = r % 2 == 0 ? 0 : (size_t)r * 3 + 1;
    check_v(c, counts, 0);
    for (int r = 0; r < g_size; r++) counts[r] = r == g_size - 1 ? 12345 : 0;
    check_v(c, counts, 1);
    free(counts);
    char text[12345];
    for (size_t i = 0; i < sizeof text; i++)
        text[i] = g_rank == g_size - 1 ? (char)(i * 31 + 7) : 0;
    OK(lmf_comm_broadcast(c, text, sizeof text, g_size - 1));
    size_t bad = 0;
    for (size_t i = 0; i < sizeof text; i++) bad += text[i] != (char)(i * 31 + 7);
    CHECK(bad == 0, "broadcast: %zu wrong bytes", bad);
    check_nonblocking_overlap(c);
    OK(lmf_comm_barrier(c));
}

/* the toy model trained with every stage, compared against the serial reference */
static void engine_case(lmf_comm *c, int L, const size_t *sizes, int stage, size_t bucket_bytes,
                        int G, int steps, float clip, int no_overlap) {
    lmf_param_layout l;
    toy_layout(&l, L, sizes);
    size_t n = l.total;
    float *params = malloc((n + 1) * sizeof(float));
    double *rp = malloc((n + 1) * sizeof(double)), *rm = calloc(n + 1, sizeof(double)),
           *rv = calloc(n + 1, sizeof(double));
    /* every rank but 0 starts from wrong weights: the engine must broadcast rank 0's */
    for (size_t i = 0; i < n; i++) {
        rp[i] = toy_init(i);
        params[i] = g_rank == 0 ? toy_init(i) : 99.0f;
    }
    lmf_ddp_config cfg = {.zero_stage = stage, .bucket_bytes = bucket_bytes,
                          .no_overlap = no_overlap};
    lmf_ddp *d;
    OK(lmf_ddp_create(c, &l, &cfg, params, &d));
    if (!d) return;
    lmf_gpt_hooks h;
    lmf_ddp_hooks(d, &h);
    lmf_adamw_hp hp = {0.9f, 0.95f, 1e-8f, 0.1f};
    lmf_optimizer *o = NULL;
    OK(lmf_ddp_optimizer_create(d, lmf_kernels_ref(), &hp, clip, &o));
    float lr = 0.03f;
    int accum = G / g_size; /* micro-batches per rank; rank r takes [r*accum, (r+1)*accum) */
    for (int s = 0; s < steps; s++) {
        lmf_comm_set_context(c, "stage %d, step %d", stage, s);
        double loss = 0;
        for (int j = 0; j < accum; j++) {
            OK(lmf_ddp_begin_micro(d, j, accum));
            loss += toy_micro(&h, &l, s, g_rank * accum + j, 1.0f / (float)accum, 1);
        }
        OK(lmf_comm_allreduce_f64(c, &loss, 1, LMF_COMM_SUM));
        loss /= G;
        float norm = 0;
        OK(lmf_test_dp_step(d, o, lr, s + 1, &norm));
        double rnorm;
        double rloss = toy_reference_step(&l, rp, rm, rv, s, G, lr, hp.beta1, hp.beta2, hp.eps,
                                          hp.weight_decay, clip, s + 1, &rnorm);
        CHECK(fabs(loss - rloss) <= 1e-5 * fabs(rloss), "stage %d step %d: loss %.9g, reference "
              "%.9g", stage, s, loss, rloss);
        CHECK(fabs(norm - rnorm) <= 1e-5 * rnorm + 1e-12, "stage %d step %d: norm %.9g, "
              "reference %.9g", stage, s, norm, rnorm);
    }
    float *full = malloc((n + 1) * sizeof(float));
    OK(lmf_ddp_gather_params(d, full));
    double worst = 0;
    for (size_t i = 0; i < n; i++) worst = fmax(worst, fabs(full[i] - rp[i]));
    CHECK(worst <= 1e-5, "stage %d: final weights differ from the reference by %.3g", stage,
          worst);
    /* memory: the sharded kinds hold this rank's shard only */
    lmf_ddp_memory mem;
    lmf_ddp_memory_used(d, &mem);
    size_t sh = lmf_range_len(lmf_partition_range(n, g_size, g_rank));
    CHECK(lmf_optimizer_bytes(o) == 2 * 4 * (stage >= 1 ? sh : n), "optimizer bytes %zu",
          lmf_optimizer_bytes(o));
    CHECK(mem.grads == 4 * (stage >= 2 ? sh : n), "gradient bytes %zu", mem.grads);
    CHECK(mem.weights == 4 * (stage >= 3 ? sh : n), "weight bytes %zu", mem.weights);
    lmf_optimizer_free(o);
    lmf_ddp_free(d);
    free(full);
    free(params);
    free(rp);
    free(rm);
    free(rv);
    toy_layout_free(&l);
}

/* Overlap: with a few milliseconds of computation per layer, reductions of the first buckets
 * complete in the background (moved by the progress calls between layers) before the backward
 * ends; with no_overlap none does. Typically a third to most of them do; the check asks for at
 * least one, as the share depends on how the ranks' layers line up in time. */
static void engine_overlap(lmf_comm *c, int stage, int no_overlap) {
    static const size_t sizes[8] = {5000, 20011, 20011, 20011, 20011, 20011, 20011, 7};
    lmf_param_layout l;
    toy_layout(&l, 6, sizes);
    float *params = malloc(l.total * sizeof(float));
    for (size_t i = 0; i < l.total; i++) params[i] = toy_init(i);
    lmf_ddp_config cfg = {.zero_stage = stage, .bucket_bytes = 1, .no_overlap = no_overlap};
    lmf_ddp *d;
    OK(lmf_ddp_create(c, &l, &cfg, params, &d));
    lmf_gpt_hooks h;
    lmf_ddp_hooks(d, &h);
    lmf_adamw_hp hp = {0.9f, 0.95f, 1e-8f, 0.0f};
    lmf_optimizer *o = NULL;
    OK(lmf_ddp_optimizer_create(d, lmf_kernels_ref(), &hp, 0, &o));
    for (int s = 0; s < 4; s++) {
        OK(lmf_ddp_begin_micro(d, 0, 1));
        toy_micro_slow(&h, &l, s, g_rank, 1.0f, 1, 3000000);
        OK(lmf_test_dp_step(d, o, 1e-3f, s + 1, NULL));
    }
    lmf_optimizer_free(o);
    lmf_ddp_stats st;
    lmf_ddp_stats_get(d, &st);
    if (no_overlap)
        CHECK(st.hidden == 0, "stage %d without overlap: %ld reductions in the background",
              stage, st.hidden);
    else
        CHECK(st.hidden >= 1, "stage %d: none of %ld reductions completed in the background",
              stage, st.hidden + st.waited);
    lmf_ddp_free(d);
    free(params);
    toy_layout_free(&l);
}

static void mode_engine(lmf_comm *c) {
    static const size_t sizes[6] = {301, 97, 131, 89, 113, 3}; /* L = 4 */
    static const size_t tiny[2] = {1, 1};                      /* fewer floats than ranks */
    int G = 6 % g_size == 0 ? 6 : 2 * g_size; /* global micro-batches per step */
    for (int stage = 0; stage <= 3; stage++) {
        engine_case(c, 4, sizes, stage, 0, G, 8, 0.3f, 0);          /* one layer bucket */
        engine_case(c, 4, sizes, stage, 100 * 4, G, 4, 0, 0);       /* several buckets */
        engine_case(c, 4, sizes, stage, 1, G, 3, 0, 1);             /* block buckets, no overlap */
        engine_case(c, 0, tiny, stage, 0, G, 3, 0, 0);
    }
    if (g_size > 1)
        for (int stage = 0; stage <= 3; stage += 2) {
            engine_overlap(c, stage, 0);
            engine_overlap(c, stage, 1);
        }
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "collectives";
    if (strcmp(mode, "die-handler-before") == 0) signal(SIGTERM, on_stop);
    lmf_comm *c;
    if (lmf_comm_create("auto", &c) != LMF_OK) {
        fprintf(stderr, "comm_check: %s\n", lmf_last_error());
        return 1;
    }
    g_rank = lmf_comm_rank(c);
    g_size = lmf_comm_size(c);
    if (strcmp(mode, "collectives") == 0) {
        mode_collectives(c);
    } else if (strcmp(mode, "engine") == 0) {
        mode_engine(c);
    } else if (strcmp(mode, "timeout") == 0) {
        lmf_comm_set_timeout(c, 2.0);
        for (int step = 15; step < 20; step++) {
            lmf_comm_set_context(c, "step %d", step);
            float x[3] = {1, 2, 3};
            if (step == 17 && g_rank == g_size - 1) sleep(30); /* misses the collective */
            OK(lmf_comm_allreduce_f32(c, x, 3));
        }
    } else if (strncmp(mode, "die", 3) == 0) {
        if (strcmp(mode, "die-handler-after") == 0) signal(SIGTERM, on_stop_noting);
        for (int step = 0; step < 6; step++) {
            lmf_comm_set_context(c, "step %d", step);
            if (step == 3 && g_rank == 1) raise(SIGKILL);
            float x[3] = {1, 2, 3};
            OK(lmf_comm_allreduce_f32(c, x, 3));
        }
    } else {
        fprintf(stderr, "comm_check: unknown mode '%s'\n", mode);
        g_failures++;
    }
    int64_t bad = g_failures;
    if (lmf_comm_allreduce_i64(c, &bad, 1, LMF_COMM_SUM) != LMF_OK) bad++;
    if (g_rank == 0 && bad == 0) printf("comm_check %s: ok (%d ranks)\n", mode, g_size);
    lmf_comm_free(c);
    return bad == 0 ? 0 : 1;
}

/* Data-parallel benchmarks under mpirun: all-reduce bandwidth, ZeRO memory, training rate. */
/* All-reduce bus bandwidth of lmforge's bucketed path against a plain MPI_Allreduce of the same
 * size; ZeRO per-rank memory against theory; GPT training throughput of the engine.
 *   bench_comm allreduce [BUCKET_MB]   sizes 1 MB .. 512 MB
 *   bench_comm memory [PRESET]         stages 0-3 at this rank count (default gpt2, 124M)
 *   bench_comm train [PRESET] [T] [STEPS] [ZERO] [OVERLAP]   tokens/s, B=1 x T micro-batches,
 *                                   2 per rank and step; OVERLAP 0 reduces after each bucket
 *                                   without overlapping (default 1) */
#define _GNU_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lmforge/comm.h"
#include "lmforge/config.h"
#include "lmforge/ddp.h"
#include "lmforge/kernels.h"
#include "lmforge/model.h"
#include "lmforge/optim.h"
#include "lmforge/perf.h"
#include "bench_util.h"

#if LMF_HAVE_MPI
#include <mpi.h>
#endif

static int rank0(lmf_comm *c) { return lmf_comm_rank(c) == 0; }

static int die(lmf_comm *c, const char *what) {
    fprintf(stderr, "bench_comm: %s: %s\n", what, lmf_last_error());
    lmf_comm_abort(c, 1, NULL);
    return 1;
}

#if LMF_HAVE_MPI
/* ---- all-reduce bandwidth ---- */

#define MAX_REPS 20

/* time of one lmforge bucketed all-reduce of buf[n]: buckets of `bucket` floats started one
 * after another (as the backward pass does), then all waited for */
static double time_bucketed(lmf_comm *c, float *buf, size_t n, size_t bucket,
                            lmf_comm_req **reqs) {
    lmf_comm_barrier(c);
    double t0 = lmf_now_s();
    int k = 0;
    for (size_t off = 0; off < n; off += bucket, k++) {
        size_t len = n - off < bucket ? n - off : bucket;
        if (lmf_comm_iallreduce(c, buf + off, len, LMF_COMM_F32, LMF_COMM_SUM, &reqs[k]) != LMF_OK)
            return -1;
        lmf_comm_progress(c);
    }
    for (int i = 0; i < k; i++)
        if (lmf_comm_wait(c, &reqs[i]) != LMF_OK) return -1;
    return lmf_now_s() - t0;
}

#endif

static int bench_allreduce(lmf_comm *c, int argc, char **argv) {
#if LMF_HAVE_MPI
    int W = lmf_comm_size(c);
    double bucket_mb = argc > 0 ? atof(argv[0]) : (double)LMF_DDP_DEFAULT_BUCKET_BYTES / 1048576;
    size_t bucket = (size_t)(bucket_mb * 1048576 / 4);
    if (bucket == 0) bucket = 1;
    static const double sizes_mb[] = {1, 4, 16, 64, 256, 512};
    size_t nmax = (size_t)(512.0 * 1048576 / 4);
    float *buf = malloc(nmax * sizeof(float));
    lmf_comm_req **reqs = calloc(nmax / bucket + 2, sizeof *reqs);
    if (!buf || !reqs) return die(c, "cannot allocate 512 MB");
    for (size_t i = 0; i < nmax; i++) buf[i] = 1.0f;
    if (rank0(c)) {
        printf("all-reduce bus bandwidth, %d ranks, bucket %.0f MB "
               "(busbw = 2(n-1)/n * bytes / time, median of repeats)\n", W, bucket_mb);
        printf("%10s %16s %16s %16s %8s\n", "size MB", "MPI_Allreduce", "lmforge bucketed",
               "lmforge 1 call", "ratio");
    }
    for (size_t si = 0; si < sizeof sizes_mb / sizeof sizes_mb[0]; si++) {
        size_t n = (size_t)(sizes_mb[si] * 1048576 / 4);
        int reps = sizes_mb[si] <= 16 ? MAX_REPS : sizes_mb[si] <= 64 ? 10 : 5;
        double tm[MAX_REPS], tb[MAX_REPS], t1[MAX_REPS];
        /* warm-up of each path, then alternate so both see the same machine state */
        MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        if (time_bucketed(c, buf, n, bucket, reqs) < 0) return die(c, "bucketed all-reduce");
        for (int r = 0; r < reps; r++) {
            MPI_Barrier(MPI_COMM_WORLD);
            double t0 = lmf_now_s();
            MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
            tm[r] = lmf_now_s() - t0;
            tb[r] = time_bucketed(c, buf, n, bucket, reqs);
            t1[r] = time_bucketed(c, buf, n, n, reqs);
            if (tb[r] < 0 || t1[r] < 0) return die(c, "bucketed all-reduce");
        }
        /* every rank's time counts: the slowest one sets the pace */
        double med[3] = {lmf_bench_median(tm, reps), lmf_bench_median(tb, reps), lmf_bench_median(t1, reps)};
        lmf_comm_allreduce_f64(c, med, 3, LMF_COMM_MAX);
        double bytes = (double)n * 4, f = 2.0 * (W - 1) / W;
        if (rank0(c))
            printf("%10.0f %13.2f GB/s %13.2f GB/s %13.2f GB/s %8.2f\n", sizes_mb[si],
                   f * bytes / med[0] / 1e9, f * bytes / med[1] / 1e9, f * bytes / med[2] / 1e9,
                   med[0] / med[1]);
    }
    if (rank0(c)) printf("ratio: MPI_Allreduce time / lmforge bucketed time (>= 1: not slower)\n");
    free(buf);
    free(reqs);
    return 0;
#else
    (void)argc;
    (void)argv;
    if (rank0(c)) printf("bench_comm allreduce: this build has no MPI\n");
    return 0;
#endif
}

/* ---- ZeRO memory ---- */

static long rss_kb(void) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return 0;
    char line[256];
    long kb = 0;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0) kb = atol(line + 6);
    fclose(f);
    return kb;
}

/* one synthetic backward through the hooks (every gradient 1e-3) and an optimizer step, so
 * every byte the engine holds is touched */
static lmf_status fake_step(lmf_ddp *d, const lmf_param_layout *l, size_t *optim_bytes) {
    lmf_gpt_hooks h;
    lmf_ddp_hooks(d, &h);
    LMF_TRY(lmf_ddp_begin_micro(d, 0, 1));
    for (int b = 0; b < l->n_blocks; b++) {
        h.block_params(h.ctx, b, 0);
        if (b > 0) h.release_params(h.ctx, b, 0);
    }
    for (int b = l->n_blocks - 1; b >= 0; b--) {
        if (b > 0) h.block_params(h.ctx, b, 1);
        float *g = h.block_grads(h.ctx, b);
        size_t n = l->block_offset[b + 1] - l->block_offset[b];
        for (size_t i = 0; i < n; i++) g[i] += 1e-3f;
        h.grads_ready(h.ctx, b);
        h.release_params(h.ctx, b, 1);
    }
    lmf_adamw_hp hp = {0.9f, 0.95f, 1e-8f, 0.1f};
    lmf_optimizer *o = NULL;
    lmf_status s = lmf_ddp_optimizer_create(d, lmf_kernels_fast(), &hp, 1.0f, &o);
    if (s == LMF_OK) s = lmf_ddp_reduce_wait(d);
    if (s == LMF_OK)
        s = lmf_optimizer_step(o, lmf_ddp_owned_params(d), lmf_ddp_owned_grads(d), 1e-4f, 1, NULL);
    if (s == LMF_OK) *optim_bytes = lmf_optimizer_bytes(o);
    lmf_optimizer_free(o);
    return s;
}

static int bench_memory(lmf_comm *c, int argc, char **argv) {
    const char *preset = argc > 0 ? argv[0] : "gpt2";
    lmf_gpt_config cfg;
    lmf_param_layout l;
    if (lmf_config_preset(preset, &cfg) != LMF_OK || lmf_layout_build(&cfg, &l) != LMF_OK)
        return die(c, "model preset");
    int W = lmf_comm_size(c);
    if (rank0(c))
        printf("ZeRO memory per rank, %s (%zu floats), %d ranks, MB (1e6 bytes); theory: "
               "4N weights + 4N grads + 8N AdamW, sharded parts / %d\n"
               "%5s %22s %22s %9s %9s %9s\n",
               preset, l.total, W, W, "stage", "theory W+G+O=total", "engine W+G+O=total",
               "buffers", "max RSS+", "ratio");
    for (int stage = 0; stage <= 3; stage++) {
        long before = rss_kb();
        float *params = malloc(l.total * sizeof(float));
        if (!params) return die(c, "allocate weights");
        for (size_t i = 0; i < l.total; i++) params[i] = 0.01f;
        lmf_ddp_config dc = {.zero_stage = stage};
        lmf_ddp *d;
        if (lmf_ddp_create(c, &l, &dc, params, &d) != LMF_OK)
            return die(c, "engine");
        if (stage == 3) {
            free(params); /* what lmf_gpt_drop_params does */
            params = NULL;
        }
        size_t optim = 0;
        if (fake_step(d, &l, &optim) != LMF_OK) return die(c, "step");
        double grown = (double)(rss_kb() - before) * 1024;
        lmf_ddp_memory th, m;
        lmf_ddp_memory_theory(l.total, W, stage, &th);
        lmf_ddp_memory_used(d, &m);
        m.optim = optim; /* held by the optimizer over the engine's range */
        double rss = grown;
        lmf_comm_allreduce_f64(c, &rss, 1, LMF_COMM_MAX);
        double tt = (double)(th.weights + th.grads + th.optim),
               mt = (double)(m.weights + m.grads + m.optim);
        if (rank0(c))
            printf("%5d %6.0f+%4.0f+%4.0f=%5.0f %6.0f+%4.0f+%4.0f=%5.0f %9.0f %9.0f %9.3f\n",
                   stage, th.weights / 1e6, th.grads / 1e6, th.optim / 1e6, tt / 1e6,
                   m.weights / 1e6, m.grads / 1e6, m.optim / 1e6, mt / 1e6, m.buffers / 1e6,
                   rss / 1e6, mt / tt);
        lmf_ddp_free(d);
        free(params);
    }
    if (rank0(c))
        printf("ratio: engine W+G+O / theory; max RSS+: largest growth of resident memory over "
               "the ranks across create + one step (includes buffers)\n");
    lmf_layout_free(&l);
    return 0;
}

/* ---- training throughput ---- */

static int bench_train(lmf_comm *c, int argc, char **argv) {
    const char *preset = argc > 0 ? argv[0] : "gpt2";
    int T = argc > 1 ? atoi(argv[1]) : 256;
    int steps = argc > 2 ? atoi(argv[2]) : 3;
    int stage = argc > 3 ? atoi(argv[3]) : 0;
    int overlap = argc > 4 ? atoi(argv[4]) : 1;
    int W = lmf_comm_size(c), rank = lmf_comm_rank(c), accum = 2;
    lmf_gpt_config cfg;
    if (lmf_config_preset(preset, &cfg) != LMF_OK) return die(c, "preset");
    if (T > cfg.n_positions) T = cfg.n_positions;
    lmf_gpt *m;
    const lmf_kernels *k = lmf_kernels_fast();
    if (lmf_gpt_create(&cfg, k, &m) != LMF_OK) return die(c, "model");
    lmf_gpt_init_weights(m, 1);
    lmf_ddp_config dc = {.zero_stage = stage, .no_overlap = !overlap};
    lmf_ddp *d;
    if (lmf_ddp_create(c, lmf_gpt_layout(m), &dc, lmf_gpt_params(m), &d) != LMF_OK)
        return die(c, "engine");
    lmf_adamw_hp hp = {0.9f, 0.95f, 1e-8f, 0.1f};
    lmf_optimizer *o = NULL;
    if (lmf_ddp_optimizer_create(d, k, &hp, 1.0f, &o) != LMF_OK) return die(c, "optimizer");
    if (stage == 3) lmf_gpt_drop_params(m);
    lmf_gpt_hooks h;
    lmf_ddp_hooks(d, &h);
    lmf_gpt_set_hooks(m, &h);
    if (lmf_gpt_reserve(m, 1, T, LMF_RESERVE_TRAIN_HOOKED) != LMF_OK) return die(c, "reserve");
    int32_t *in = malloc((size_t)T * sizeof(int32_t)), *tg = malloc((size_t)T * sizeof(int32_t));
    double t_first = 0;
    lmf_ddp_stats st0 = {0}, st1;
    for (int s = 0; s <= steps; s++) { /* step 0 warms up and is not timed */
        if (s == 1) {
            lmf_comm_barrier(c);
            t_first = lmf_now_s();
            lmf_ddp_stats_get(d, &st0);
        }
        for (int j = 0; j < accum; j++) {
            for (int i = 0; i < T; i++) {
                in[i] = (int32_t)((i * 31 + j * 7 + rank * 13 + s) % cfg.vocab_size);
                tg[i] = (int32_t)((in[i] + 1) % cfg.vocab_size);
            }
            float loss;
            if (lmf_ddp_begin_micro(d, j, accum) != LMF_OK ||
                lmf_gpt_forward(m, in, tg, 1, T, 1, 1.0f / (float)accum, &loss) != LMF_OK)
                return die(c, "forward");
            lmf_gpt_backward(m);
        }
        if (lmf_ddp_reduce_wait(d) != LMF_OK ||
            lmf_optimizer_step(o, lmf_ddp_owned_params(d), lmf_ddp_owned_grads(d), 1e-4f, s + 1,
                               NULL) != LMF_OK)
            return die(c, "step");
    }
    lmf_comm_barrier(c);
    double dt = lmf_now_s() - t_first;
    lmf_ddp_stats_get(d, &st1);
    double waits[2] = {(st1.wait_s - st0.wait_s) / steps, (st1.step_s - st0.step_s) / steps};
    lmf_comm_allreduce_f64(c, waits, 2, LMF_COMM_MAX);
    double tokens = (double)steps * accum * T * W;
    if (rank0(c))
        printf("train %s T=%d zero=%d ranks=%d overlap=%d: %d steps of %d x %d tokens per rank, "
               "%.1f tokens/s, %.3f s/step, waiting for collectives %.3f s/step, in the "
               "optimizer step %.3f s/step\n", preset, T, stage, W, overlap, steps, accum, T,
               tokens / dt, dt / steps, waits[0], waits[1]);
    free(in);
    free(tg);
    lmf_optimizer_free(o);
    lmf_ddp_free(d);
    lmf_gpt_free(m);
    return 0;
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "allreduce";
    lmf_comm *c;
    if (lmf_comm_create("auto", &c) != LMF_OK) {
        fprintf(stderr, "bench_comm: %s\n", lmf_last_error());
        return 1;
    }
    lmf_comm_set_timeout(c, 600);
    int rc;
    if (strcmp(mode, "allreduce") == 0) rc = bench_allreduce(c, argc - 2, argv + 2);
    else if (strcmp(mode, "memory") == 0) rc = bench_memory(c, argc - 2, argv + 2);
    else if (strcmp(mode, "train") == 0) rc = bench_train(c, argc - 2, argv + 2);
    else {
        fprintf(stderr, "bench_comm: unknown mode '%s' (allreduce, memory, train)\n", mode);
        rc = 2;
    }
    lmf_comm_free(c);
    return rc;
}

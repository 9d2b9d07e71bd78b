/* Planner calibration: measure this machine (FMA peak, sgemm efficiency by size, lmforge's
 * kernels, memory and copy bandwidth, all-reduce over the communicator, the bare process's
 * memory) and describe it as a cluster. */
#include "plan/plan_model.h"

#include <cblas.h>
#include <malloc.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lmforge/perf.h"
#include "lmforge/threads.h"

#define GiB 1073741824.0
#define CALIB_TRIALS 5 /* each measurement keeps the best of this many trials */

static lmf_status sync_ranks(lmf_comm *comm) {
    return comm && lmf_comm_size(comm) > 1 ? lmf_comm_barrier(comm) : LMF_OK;
}

/* FLOP/s of cblas_sgemm on n x n matrices: the best of CALIB_TRIALS trials of about
 * seconds / CALIB_TRIALS each (at least one call each). */
static lmf_status sgemm_rate(int n, double seconds, double *flops) {
    size_t nn = (size_t)n * (size_t)n;
    float *A = malloc(nn * sizeof *A), *B = malloc(nn * sizeof *B), *C = malloc(nn * sizeof *C);
    if (!A || !B || !C) {
        free(A);
        free(B);
        free(C);
        return lmf_fail(LMF_ERR_NOMEM, "calibration: cannot allocate %d x %d matrices", n, n);
    }
    for (size_t i = 0; i < nn; i++) {
        A[i] = (float)((i * 7) % 13) * 0.01f;
        B[i] = (float)((i * 5) % 11) * 0.01f;
        C[i] = 0.0f;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, A, n, B, n, 0.0f, C, n);
    /* the best of several trials: other processes on the machine only ever slow it down */
    *flops = 0.0;
    for (int trial = 0; trial < CALIB_TRIALS; trial++) {
        long reps = 0;
        double t0 = lmf_now_s(), el = 0.0;
        do {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, A, n, B, n,
                        0.0f, C, n);
            reps++;
            el = lmf_now_s() - t0;
        } while (el < seconds / CALIB_TRIALS);
        *flops = fmax(*flops, 2.0 * (double)n * n * n * (double)reps / el);
    }
    free(A);
    free(B);
    free(C);
    return LMF_OK;
}

/* Bytes/s of a triad a = b + s*c (3 arrays counted) and of memcpy (2 counted), each the best
 * of CALIB_TRIALS trials. */
static lmf_status memory_rates(int threads, double seconds, double *triad, double *copy) {
    size_t n = (size_t)16 << 20; /* 64 MiB per array, well beyond the caches */
    float *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b), *c = malloc(n * sizeof *c);
    if (!a || !b || !c) {
        free(a);
        free(b);
        free(c);
        return lmf_fail(LMF_ERR_NOMEM, "calibration: cannot allocate 192 MiB for the bandwidth test");
    }
    long ln = (long)n;
#pragma omp parallel for num_threads(threads) schedule(static)
    for (long i = 0; i < ln; i++) {
        a[i] = 0.0f;
        b[i] = 1.0f;
        c[i] = 2.0f;
    }
    *triad = *copy = 0.0;
    for (int trial = 0; trial < CALIB_TRIALS; trial++) {
        long reps = 0;
        double t0 = lmf_now_s(), el = 0.0;
        do {
#pragma omp parallel for num_threads(threads) schedule(static)
            for (long i = 0; i < ln; i++) a[i] = b[i] + 0.5f * c[i];
            reps++;
            el = lmf_now_s() - t0;
        } while (el < seconds / CALIB_TRIALS);
        *triad = fmax(*triad, 3.0 * (double)n * sizeof(float) * (double)reps / el);
        reps = 0;
        t0 = lmf_now_s();
        do {
            memcpy(reps % 2 ? a : c, b, n * sizeof *a);
            reps++;
            el = lmf_now_s() - t0;
        } while (el < seconds / CALIB_TRIALS);
        *copy = fmax(*copy, 2.0 * (double)n * sizeof(float) * (double)reps / el);
    }
    volatile float sink = a[n / 2] + c[n / 3];
    (void)sink;
    free(a);
    free(b);
    free(c);
    return LMF_OK;
}

/* The collectives the data-parallel engine makes. */
typedef enum coll_kind { COLL_ALLREDUCE, COLL_REDUCE_SCATTER, COLL_ALLGATHER } coll_kind;

/* One collective call on fixed buffers, for timed_calls. */
typedef struct coll_call {
    lmf_comm *comm;
    coll_kind kind;
    float *a, *b;      /* all-reduce: a[count]; reduce-scatter a -> b; all-gather b+off -> a */
    size_t count, off;
    size_t *counts;
} coll_call;

static lmf_status coll_run(const coll_call *c) {
    switch (c->kind) {
    case COLL_ALLREDUCE: return lmf_comm_allreduce_f32(c->comm, c->a, c->count);
    case COLL_REDUCE_SCATTER: return lmf_comm_reduce_scatter_f32(c->comm, c->b, c->a, c->counts);
    default: return lmf_comm_allgather_f32(c->comm, c->a, c->b + c->off, c->counts);
    }
}

/* Seconds per call of c: a warm-up, a probe of `probe` calls sets the count for about
 * `seconds` (at least min_reps), the largest count over the ranks is agreed so every rank
 * makes the same calls, and a barrier starts the timed loop. */
static lmf_status timed_calls(const coll_call *c, double seconds, int probe, double min_reps,
                              double *per) {
    lmf_status st = coll_run(c); /* warm-up */
    double t0 = lmf_now_s();
    for (int i = 0; i < probe && st == LMF_OK; i++) st = coll_run(c);
    double reps[1] = {ceil(seconds / fmax((lmf_now_s() - t0) / probe, 1e-9))};
    reps[0] = fmin(fmax(reps[0], min_reps), 1e6);
    if (st == LMF_OK) st = lmf_comm_allreduce_f64(c->comm, reps, 1, LMF_COMM_MAX);
    if (st == LMF_OK) st = lmf_comm_barrier(c->comm);
    long r = (long)reps[0];
    t0 = lmf_now_s();
    for (long i = 0; i < r && st == LMF_OK; i++) st = coll_run(c);
    *per = (lmf_now_s() - t0) / (double)r;
    return st;
}

/* All-reduce bus bandwidth (large message) and per-step latency (small message). */
static lmf_status allreduce_rates(lmf_comm *comm, double seconds, double *busbw, double *lat) {
    int n = lmf_comm_size(comm);
    size_t big = (size_t)4 << 20; /* 16 MiB of floats */
    float *buf = calloc(big, sizeof *buf);
    if (!buf) return lmf_fail(LMF_ERR_NOMEM, "calibration: cannot allocate the all-reduce buffer");
    lmf_status st = LMF_OK;
    for (int phase = 0; phase < 2 && st == LMF_OK; phase++) {
        coll_call c = {.comm = comm, .kind = COLL_ALLREDUCE, .a = buf, .count = phase == 0 ? 1 : big};
        double per = 0.0;
        st = timed_calls(&c, seconds, 5, 5.0, &per);
        if (phase == 0) *lat = per / (2.0 * (n - 1));
        else *busbw = 2.0 * (n - 1) / n * (double)big * sizeof(float) / fmax(per - 2.0 * (n - 1) * *lat, 1e-9);
    }
    free(buf);
    return st;
}

/* Bus bandwidth of a reduce-scatter or an all-gather (kind) of `bytes` split evenly over the
 * ranks, as the data-parallel engine calls them: (n-1)/n * S / t, less the latency term. */
static lmf_status shard_collective_rate(lmf_comm *comm, coll_kind kind, size_t bytes,
                                        double seconds, double lat, double *busbw) {
    int n = lmf_comm_size(comm);
    size_t total = bytes / sizeof(float);
    float *a = calloc(total, sizeof *a), *b = calloc(total, sizeof *b);
    size_t *counts = calloc((size_t)n, sizeof *counts);
    lmf_status st = LMF_OK;
    if (!a || !b || !counts) {
        st = lmf_fail(LMF_ERR_NOMEM, "calibration: cannot allocate %zu MiB for the collectives",
                      2 * bytes >> 20);
    } else {
        coll_call c = {.comm = comm, .kind = kind, .a = a, .b = b, .counts = counts};
        for (int i = 0; i < n; i++) counts[i] = total / n + ((size_t)i < total % n);
        for (int i = 0; i < lmf_comm_rank(comm); i++) c.off += counts[i];
        double per = 0.0;
        st = timed_calls(&c, seconds, 3, 3.0, &per);
        *busbw = (double)(n - 1) / n * (double)bytes / fmax(per - (n - 1) * lat, 1e-9);
    }
    free(a);
    free(b);
    free(counts);
    return st;
}

/* Resident bytes of this process now (VmRSS), after handing freed heap memory back to the
 * system; 0 when unknown. */
static double resident_bytes(void) {
    malloc_trim(0);
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return 0.0;
    char line[256];
    double kb = 0.0;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0) {
            kb = strtod(line + 6, NULL);
            break;
        }
    fclose(f);
    return kb * 1024.0;
}

static void cpu_name(char *dst, size_t cap) {
    snprintf(dst, cap, "CPU");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10) == 0) {
            char *colon = strchr(line, ':');
            if (colon) {
                colon++;
                while (*colon == ' ') colon++;
                colon[strcspn(colon, "\n")] = '\0';
                snprintf(dst, cap, "%s", colon);
            }
            break;
        }
    }
    fclose(f);
}

lmf_status lmf_plan_calibrate(const lmf_plan_calib_opts *o, lmf_comm *comm, lmf_cluster *out,
                              FILE *log) {
    memset(out, 0, sizeof *out);
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    int cores = online > 0 ? (int)online : 1;
    int threads = o->threads > 0 ? o->threads : cores;
    int ranks = comm && lmf_comm_size(comm) > 1 ? lmf_comm_size(comm) : o->ranks;
    if (ranks < 1 || ranks > 4096) return lmf_fail(LMF_ERR_ARG, "calibration: ranks must be 1..4096");
    int per_rank = threads / ranks > 0 ? threads / ranks : 1;
    double secs = o->seconds_per_point > 0.0 ? o->seconds_per_point : 0.2;
    int max_n = o->max_size > 0 ? o->max_size : 2048;
    if (max_n < 64) return lmf_fail(LMF_ERR_ARG, "calibration: largest sgemm size must be at least 64");

    char cpu[64];
    cpu_name(cpu, sizeof cpu);
    snprintf(out->name, sizeof out->name, "local");
    snprintf(out->device, sizeof out->device, "%s, %d thread%s", cpu, per_rank, per_rank > 1 ? "s" : "");
    out->nodes = 1;
    out->devices_per_node = ranks;
    out->cpu_cores_per_node = cores;
    lmf_plan_say(log, "calibrate: %d processors, %d rank%s of %d thread%s\n", cores, ranks, ranks > 1 ? "s" : "",
        per_rank, per_rank > 1 ? "s" : "");

    LMF_TRY(sync_ranks(comm));
    double peak = 0.0;
    for (int trial = 0; trial < CALIB_TRIALS; trial++)
        peak = fmax(peak, lmf_peak_gflops(per_rank, fmax(secs, 0.3) / CALIB_TRIALS) * 1e9);
    if (!(peak > 0.0)) return lmf_fail(LMF_ERR_STATE, "calibration: the FMA peak measurement failed");
    out->peak_flops[LMF_PLAN_FP32] = peak;
    lmf_plan_say(log, "  fp32 FMA peak      %8.1f GFLOP/s\n", peak / 1e9);

    /* lmforge's own kernels as a run uses them: the OpenMP team of per_rank threads,
     * OpenBLAS single-threaded inside; then the rank link; then the bare process's memory,
     * before the multi-threaded sgemm below starts OpenBLAS's own threads */
    lmf_status st = LMF_OK;
    if (!o->no_kernels) {
        int saved_omp = lmf_threads_get();
        lmf_threads_set(per_rank);
        st = lmf_plan_calibrate_kernels(lmf_kernels_fast(), secs, comm, &out->kernels, log);
        out->kernels.threads = per_rank;
        lmf_threads_set(saved_omp);
        LMF_TRY(st);
    }
    out->comm_efficiency = 1.0;
    if (comm && lmf_comm_size(comm) > 1) {
        double busbw = 0.0, lat = 0.0;
        LMF_TRY(sync_ranks(comm));
        LMF_TRY(allreduce_rates(comm, secs, &busbw, &lat));
        out->intra_bandwidth = busbw;
        out->intra_latency = lat;
        lmf_plan_say(log, "  all-reduce         %8.2f GB/s bus bandwidth, %.1f us per step (%d ranks)\n",
            busbw / 1e9, lat * 1e6, lmf_comm_size(comm));
        /* the engine's other collectives: reduce-scatter per gradient bucket (25 MiB), the
         * weights' all-gather in one piece (a model's weights: beyond the caches, 64 MiB) */
        LMF_TRY(shard_collective_rate(comm, COLL_REDUCE_SCATTER, (size_t)25 << 20, secs, lat,
                                      &out->intra_rs_bandwidth));
        LMF_TRY(shard_collective_rate(comm, COLL_ALLGATHER, (size_t)64 << 20, secs, lat,
                                      &out->intra_ag_bandwidth));
        LMF_TRY(shard_collective_rate(comm, COLL_ALLGATHER, (size_t)4 << 20, secs, lat,
                                      &out->intra_ag_small_bandwidth));
        lmf_plan_say(log, "  reduce-scatter     %8.2f GB/s bus bandwidth (25 MiB)\n", out->intra_rs_bandwidth / 1e9);
        lmf_plan_say(log, "  all-gather         %8.2f GB/s bus bandwidth (64 MiB), %.2f GB/s (4 MiB)\n",
            out->intra_ag_bandwidth / 1e9, out->intra_ag_small_bandwidth / 1e9);
    }
    if (!o->no_kernels) {
        out->kernels.process_bytes = resident_bytes();
        lmf_plan_say(log, "  bare process       %8.1f MiB resident (libraries, threads%s)\n",
            out->kernels.process_bytes / 1048576.0, comm ? ", communicator" : "");
    }

    int saved_threads = openblas_get_num_threads();
    openblas_set_num_threads(per_rank);
    lmf_plan_eff_curve *cv = &out->gemm_eff[LMF_PLAN_FP32];
    double rates[LMF_PLAN_MAX_EFF], best = 0.0;
    for (int n = 64; n <= max_n && cv->n < LMF_PLAN_MAX_EFF && st == LMF_OK; n *= 2) {
        double rate = 0.0;
        st = sync_ranks(comm);
        if (st == LMF_OK) st = sgemm_rate(n, secs, &rate);
        if (st != LMF_OK) break;
        lmf_plan_say(log, "  sgemm n=%-5d      %8.1f GFLOP/s = %.3f of the FMA peak\n", n, rate / 1e9, rate / peak);
        cv->size[cv->n] = n;
        rates[cv->n++] = rate;
        best = fmax(best, rate);
    }
    openblas_set_num_threads(saved_threads);
    LMF_TRY(st);
    /* OpenBLAS may use wider instructions than the FMA loop: the peak is what was reached */
    if (best > peak) {
        lmf_plan_say(log, "  peak raised to the best sgemm rate, %.1f GFLOP/s\n", best / 1e9);
        peak = best;
        out->peak_flops[LMF_PLAN_FP32] = peak;
    }
    for (int i = 0; i < cv->n; i++) cv->frac[i] = rates[i] / peak;

    double triad = 0.0, copy = 0.0;
    LMF_TRY(sync_ranks(comm));
    LMF_TRY(memory_rates(per_rank, secs, &triad, &copy));
    out->memory_bandwidth = triad;
    lmf_plan_say(log, "  memory (triad)     %8.2f GB/s\n  copy (memcpy)      %8.2f GB/s\n", triad / 1e9, copy / 1e9);

    if (!(comm && lmf_comm_size(comm) > 1)) {
        /* a shared-memory transport copies every byte twice (into and out of the segment) */
        out->intra_bandwidth = copy / 2.0;
        out->intra_latency = 1e-6;
        lmf_plan_say(log, "  rank link          %8.2f GB/s estimated (copy / 2; no communicator measured)\n",
            out->intra_bandwidth / 1e9);
    }

    long pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGESIZE);
    double ram = pages > 0 && psize > 0 ? (double)pages * (double)psize : 4.0 * GiB;
    out->device_memory = ram / ranks;
    out->memory_reserved = 0.1 * ram / ranks; /* system, libraries, page cache headroom */
    /* on CPUs the communication copies run on the same cores as the kernels */
    out->overlap_dp = 0.0;
    out->overlap_zero3 = 0.0;
    out->inter_bandwidth = 0.0;
    return lmf_cluster_validate(out);
}

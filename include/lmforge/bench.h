/* Benchmarks of lmforge's own training step: throughput, MFU, time and idle threads per phase
 * (what `lmforge bench` prints). */
#ifndef LMFORGE_BENCH_H
#define LMFORGE_BENCH_H

#include "lmforge/comm.h"
#include "lmforge/config.h"
#include "lmforge/kernels.h"
#include "lmforge/model.h"
#include "lmforge/pipeline.h"
#include "lmforge/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Most pipeline stages lmf_bench_pipeline measures. */
#define LMF_BENCH_MAX_STAGES 16

typedef struct lmf_bench_result {
    double tokens_per_s, gflops, mfu, step_s, rss_mb;
    double act_mb; /* the step's activation and scratch buffers (lmf_gpt_activation_bytes) */
    double phase_s[LMF_PHASE_COUNT + 2]; /* model phases, optimizer, other; per step */
    /* idle fraction of the thread team per phase (same order) and over the whole step:
     * 1 - busy thread-seconds / (threads x wall seconds); < 0 when not measured (the
     * optimizer when its kernel has no busy accounting, "other" under 0.1% of the step) */
    double idle[LMF_PHASE_COUNT + 2], idle_step;
    /* tensor parallelism: seconds per step this rank spent in the group's collectives (the
     * model's and the gradient reduction's) and their number; every one blocks until the
     * group has joined, so none of it is hidden behind compute */
    double tp_comm_s, tp_calls;
} lmf_bench_result;

/* A tensor-parallel group for the benchmark (NULL, or a group of one: a single rank). */
typedef struct lmf_bench_tp {
    lmf_comm *group;
    int sequence_parallel;
} lmf_bench_tp;

/* Time `steps` full training steps of a model of shape cfg on random tokens (forward,
 * backward, AdamW over every parameter) on B x T, after `warm` untimed ones, with kernel table
 * k, recomputation rc and the current thread count; MFU against peak FLOP/s (one rank's).
 * With tp (collective over its group): every rank of the group trains its slices of the same
 * model on the same tokens, the replicated tensors' gradients made whole before AdamW, as
 * `lmforge train --tp` does; tokens/s are the group's, GFLOP/s and MFU per rank. */
lmf_status lmf_bench_train_step(const lmf_gpt_config *cfg, int B, int T, const lmf_kernels *k,
                                lmf_recompute rc, int warm, int steps, double peak,
                                const lmf_bench_tp *tp, lmf_bench_result *res);

/* One pipeline schedule measured by lmf_bench_pipeline. */
typedef struct lmf_bench_pp_result {
    double tokens_per_s;     /* the pipeline's, over the timed steps */
    double step_s;
    double bubble[LMF_BENCH_MAX_STAGES]; /* each stage's idle fraction of the step's forwards
                                          * and backwards (lmf_pp_step_stats), mean of steps */
    double busy_s[LMF_BENCH_MAX_STAGES]; /* each stage's computing seconds per step */
    double schedule_bubble;  /* the schedule's own with equal forward, input-gradient and
                              * weight-gradient times (lmf_pp_simulate): (P-1)/(M+P-1) for 1F1B */
    int layers[LMF_BENCH_MAX_STAGES];    /* each stage's layers (the trainer's balanced split;
                                          * interleaved: over all its chunks) */
} lmf_bench_pp_result;

/* Collective over group (P = its size <= LMF_BENCH_MAX_STAGES ranks, one stage each): the
 * model's stages as `lmforge train --pp P` splits them (the interleaved schedule: V model
 * chunks per stage, as `--virtual-stages V` does; V is ignored for the others), each step's M
 * micro-batches of B x T random tokens through `schedule` (forwards and backwards, no
 * optimizer), `warm` untimed steps then `steps` timed ones. Every rank gets the result. */
lmf_status lmf_bench_pipeline(const lmf_gpt_config *cfg, lmf_comm *group, lmf_pp_schedule schedule,
                              int V, int M, int B, int T, const lmf_kernels *k, int warm,
                              int steps, lmf_bench_pp_result *res);

#ifdef __cplusplus
}
#endif
#endif

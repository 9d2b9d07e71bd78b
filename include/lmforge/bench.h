/* Benchmarks of lmforge's own training step: throughput, MFU, time and idle threads per phase
 * (what `lmforge bench` prints). */
#ifndef LMFORGE_BENCH_H
#define LMFORGE_BENCH_H

#include "lmforge/comm.h"
#include "lmforge/config.h"
#include "lmforge/kernels.h"
#include "lmforge/model.h"
#include "lmforge/status.h"

#ifdef __cplusplus
extern "C" {
#endif

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

#ifdef __cplusplus
}
#endif
#endif

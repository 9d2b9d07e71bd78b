/* Trainer: data, model, optimizer and checkpoints wired into optimizer steps. */
#ifndef LMFORGE_TRAIN_H
#define LMFORGE_TRAIN_H

#include <stdint.h>
#include "lmforge/config.h"
#include "lmforge/optim.h"
#include "lmforge/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lmf_train_opts {
    lmf_gpt_config cfg;        /* model shape (vocab_size may be raised to fit the data) */
    const char *init_dir;      /* start from these weights (model directory) or NULL */
    const char *data;          /* training shard */
    const char *val_data;      /* validation shard or NULL */
    const char *out_dir;       /* run directory */
    const char *resume_dir;    /* resume from this run directory's latest checkpoint, or NULL */
    int steps, batch, seq, grad_accum;
    float lr, min_lr, weight_decay, beta1, beta2, adam_eps, grad_clip;
    lmf_lr_kind lr_schedule;
    int warmup;
    uint64_t seed;
    int shuffle;
    int eval_every, eval_batches, save_every, keep_checkpoints;
    int threads;
    const char *kernels;       /* "ref" or "fast" */
    /* data parallelism */
    int zero_stage;            /* 0..3 */
    int recompute;             /* lmf_recompute: 0 none, 1 selective, 2 full */
    int64_t global_batch;      /* tokens per optimizer step over all ranks; 0: batch*seq*grad_accum*ranks */
    const char *comm;          /* "auto", "single" or "mpi" */
    double comm_timeout;       /* seconds before a collective that does not complete aborts the job */
    /* numeric faults (docs/checkpoints.md) */
    int max_bad_steps;         /* roll back to the latest checkpoint after this many NaN/Inf steps
                                * in a row (default 3); 0: stop with an error at the first */
    float spike_factor;        /* log a loss above this times its running mean (default 2; 0: off) */
} lmf_train_opts;

/* Defaults documented in docs/cli.md. */
void lmf_train_opts_default(lmf_train_opts *o);

typedef struct lmf_step_stats {
    int step;                  /* 0-based index of the step just taken */
    float loss, lr, grad_norm;
    double seconds, tokens_per_s, flops_per_s;
    int64_t tokens;            /* tokens in this step */
    /* numeric faults */
    int skipped;               /* 1: the loss or gradient norm was NaN/Inf: no update was made */
    int bad_in_row;            /* such steps in a row, this one included (0 after a good step) */
    int rolled_back_to;        /* >= 0: after max_bad_steps such steps the trainer went back to
                                * the checkpoint of this step (the data stays past the bad
                                * batches); -1 otherwise */
    int spike;                 /* 1: loss above spike_factor x its running mean */
    float loss_mean;           /* that running mean before this step (0 before 10 good steps) */
} lmf_step_stats;

typedef struct lmf_trainer lmf_trainer;

/* Build everything: open shards, create or load the model (init_dir / resume_dir), allocate
 * activations, gradients and optimizer state, open the run directory. */
lmf_status lmf_trainer_create(const lmf_train_opts *o, lmf_trainer **out);
void lmf_trainer_free(lmf_trainer *t);

/* The step to run next (0-based; > 0 after a resume) and the total. */
int lmf_trainer_next_step(const lmf_trainer *t);
const lmf_train_opts *lmf_trainer_opts(const lmf_trainer *t);
int64_t lmf_trainer_num_params(const lmf_trainer *t);
double lmf_trainer_flops_per_token(const lmf_trainer *t);
struct lmf_gpt *lmf_trainer_model(lmf_trainer *t);
int lmf_trainer_rank(const lmf_trainer *t);
int lmf_trainer_world(const lmf_trainer *t);
/* micro-batches per rank per optimizer step */
int lmf_trainer_grad_accum(const lmf_trainer *t);
/* Bytes this rank holds: weights, gradients, optimizer state, activations, buffers. */
typedef struct lmf_train_memory {
    size_t weights, grads, optim, activations, buffers;
} lmf_train_memory;
void lmf_trainer_memory(const lmf_trainer *t, lmf_train_memory *m);
/* Collective: make the model hold the full current weights on every rank (after ZeRO-3
 * training), for sampling or export. */
lmf_status lmf_trainer_materialize(lmf_trainer *t);
/* Collective: 1 on every rank when flag is non-zero on any rank (e.g. a stop signal). */
int lmf_trainer_any(lmf_trainer *t, int flag);
/* A failure seen by this rank only: with several ranks, end the whole job now (naming this
 * rank and msg) instead of letting the others wait for a collective to time out. Returns when
 * there is a single rank. */
void lmf_trainer_abort(lmf_trainer *t, const char *msg);

/* One optimizer step (grad_accum micro-batches), collective. A NaN/Inf loss or gradient norm
 * skips the update (st->skipped; the step still counts and its data is consumed); after
 * max_bad_steps of them in a row the trainer rolls back to the latest checkpoint
 * (st->rolled_back_to). LMF_ERR_NUMERIC when max_bad_steps is 0, when there is no checkpoint
 * to roll back to, or when the steps after a rollback fail again. Also reports a failed
 * background checkpoint write. */
lmf_status lmf_trainer_step(lmf_trainer *t, lmf_step_stats *st);
/* Mean loss over eval_batches validation batches in file order (NaN if no val data). */
lmf_status lmf_trainer_eval(lmf_trainer *t, float *val_loss);
/* Collective: checkpoint the state after the last completed step. The state is copied and
 * written in the background (the step loop goes on); it appears atomically when complete. */
lmf_status lmf_trainer_save(lmf_trainer *t);
/* Collective: wait until the checkpoint being written (if any) is complete and named by
 * `latest`; returns its failure, on every rank, if it could not be written. */
lmf_status lmf_trainer_wait_save(lmf_trainer *t);
/* Write the run directory's config.json and model.safetensors (the current weights). */
lmf_status lmf_trainer_export(lmf_trainer *t);

#ifdef __cplusplus
}
#endif
#endif

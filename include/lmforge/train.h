/* Training: data, model, optimizer, parallel engine and checkpoints wired into optimizer steps,
 * and the training loop with its policy (evaluation, saving, stopping, rank agreement). A
 * program that embeds liblmforge and calls lmf_trainer_run gets the run `lmforge train` does. */
#ifndef LMFORGE_TRAIN_H
#define LMFORGE_TRAIN_H

#include <stddef.h>
#include <stdint.h>
#include "lmforge/ckpt.h"
#include "lmforge/config.h"
#include "lmforge/model.h"
#include "lmforge/optim.h"
#include "lmforge/perf.h"
#include "lmforge/pipeline.h"
#include "lmforge/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Faults a test asks for (docs/checkpoints.md, "Testing failures"); none in a real run. */
typedef struct lmf_train_test_faults {
    const int64_t *nan_steps;  /* 0-based steps whose gradient is made NaN (each once) */
    int n_nan_steps;
    int ckpt_write_delay_ms;   /* every checkpoint shard write sleeps this long half way */
    int ckpt_fail_rank;        /* this rank's shard writes fail half way; -1: none */
} lmf_train_test_faults;

typedef struct lmf_train_opts {
    lmf_gpt_config cfg;        /* model shape (vocab_size may be raised to fit the data) */
    const char *init_dir;      /* start from these weights (any model path, formats.h) or NULL */
    const char *data;          /* training token file */
    const char *val_data;      /* validation token file or NULL */
    const char *out_dir;       /* run directory */
    const char *resume_dir;    /* resume from this run directory's latest checkpoint, or NULL */
    const char *run_id;        /* the run's identity (lmf_run_dir_id; rank 0's counts), or NULL:
                                * a new one, or on resume the checkpoint's. A resume or a
                                * rollback into a checkpoint of another run is refused. */
    int steps, batch, seq, grad_accum;
    float lr, min_lr, weight_decay, beta1, beta2, adam_eps, grad_clip;
    lmf_lr_kind lr_schedule;
    int warmup;
    uint64_t seed;
    int shuffle;
    int eval_every, eval_batches, save_every, keep_checkpoints;
    int stop_after;            /* stop with a checkpoint after this step, as a pre-emption would
                                * (0: off) */
    int threads;               /* compute threads per rank (0: lmf_train_set_threads's default) */
    const char *kernels;       /* "ref" or "fast" */
    /* tensor parallelism: ranks per model replica (the innermost groups of the world) */
    int tp;                    /* 0 or 1: none */
    int sequence_parallel;     /* 1: norms and the residual stream split over positions (--sp) */
    /* pipeline parallelism: stages of contiguous layers (the outermost groups of the world) */
    int pp;                    /* 0 or 1: none */
    lmf_pp_schedule schedule;  /* --schedule (1F1B by default) */
    int virtual_stages;        /* 0 or 1: none */
    const char *stage_layers;  /* "a,b,...": layers per stage (NULL: balanced) */
    /* data parallelism */
    int zero_stage;            /* 0..3 */
    lmf_recompute recompute;
    int doc_mask_eot;          /* document masking (--doc-mask): attention stays inside the
                                * documents that this end-of-text id separates; -1: off */
    int64_t global_batch;      /* tokens per optimizer step over all ranks; 0: batch*seq*grad_accum*ranks */
    const char *comm;          /* "auto", "single" or "mpi" */
    double comm_timeout;       /* seconds before a collective that does not complete aborts the job */
    /* numeric faults (docs/checkpoints.md) */
    int max_bad_steps;         /* roll back to the latest checkpoint after this many NaN/Inf steps
                                * in a row (default 3); 0: stop with an error at the first */
    float spike_factor;        /* log a loss above this times its running mean (default 2; 0: off) */
    int profile_every;         /* every N steps, time that step by phase and gather each rank's
                                * peak memory into metrics.jsonl (0: never, the default; the
                                * command line's default is 10) */
    int sample_every;          /* every N steps, rank 0 writes a sample of the model's text to
                                * metrics.jsonl (0: never; not with ZeRO-3) */
    const char *sample_prompt; /* the samples' prompt (NULL or "": none) */
    lmf_train_test_faults test;
} lmf_train_opts;

/* Defaults documented in docs/cli.md. */
void lmf_train_opts_default(lmf_train_opts *o);

/* Set the kernels' threads for this rank: o->threads, or when 0 the machine's cores shared among
 * the ranks the launcher started on it (OMP_NUM_THREADS when set; lmf_threads_default). Returns
 * the number now in effect. */
int lmf_train_set_threads(const lmf_train_opts *o);

/* The options a run directory's newest checkpoint was saved with, to resume it: *o is filled
 * (fields the checkpoint does not record keep their values); its data, val_data and kernels
 * point into *saved, which must outlive their use. The parallel layout (--tp, --sp, --pp,
 * --schedule, --virtual-stages, --stage-layers) goes into *saved only: apply it with
 * lmf_train_opts_restore_layout unless a new layout is given. Then set resume_dir and
 * override what should change. */
typedef struct lmf_saved_opts {
    char data[4096], val_data[4096];
    int data_in_run_dir, val_data_in_run_dir; /* stored relative to the run directory (the
                                               * token files inside it), which
                                               * lmf_train_opts_from_run puts in front */
    char kernels[16], stage_layers[1024];
    int has_layout;                           /* the checkpoint recorded a layout: */
    int tp, sequence_parallel, pp, virtual_stages;
    lmf_pp_schedule schedule;
    int layout_fits;                          /* this launch has the checkpoint's ranks */
} lmf_saved_opts;
lmf_status lmf_train_opts_from_run(const char *run_dir, lmf_train_opts *o, lmf_saved_opts *saved);
/* The saved layout into *o, as a whole, when this launch has the checkpoint's number of ranks
 * (at another number the run reshards as data-parallel unless given a layout); its
 * stage_layers points into *saved. */
void lmf_train_opts_restore_layout(lmf_train_opts *o, const lmf_saved_opts *saved);
/* The options a checkpoint records (data, batch and sequence, optimizer, schedule, seed, the
 * evaluation, checkpoint and fault settings), as a JSON object: malloc'd text, NULL when out of
 * memory. */
char *lmf_train_opts_to_json(const lmf_train_opts *o);
/* Overwrite the options of *o that the JSON object `text` (untrusted) records; strings go into
 * *saved. LMF_ERR_FORMAT with a message naming `what` for anything malformed. */
lmf_status lmf_train_opts_from_json(const char *text, const char *what, lmf_train_opts *o,
                                    lmf_saved_opts *saved);

typedef struct lmf_step_stats {
    int step;                  /* 0-based index of the step just taken */
    float loss, lr, grad_norm;
    double seconds, tokens_per_s, flops_per_s;
    double mfu;                /* flops_per_s over the peak of every rank's threads */
    int64_t tokens;            /* tokens in this step */
    double tp_comm_s;          /* this rank's seconds in tensor-parallel collectives during the
                                * step (they block: none is hidden behind computation) */
    double tp_grads_s;         /* ... of which the gradients' sum over the group before the
                                * optimizer (outside the model's profiled phases) */
    double optimizer_s;        /* this rank's seconds in the optimizer's arithmetic (norm,
                                * clipping, AdamW), its communication left out */
    double dp_comm_s;          /* this rank's seconds blocked in data-parallel communication:
                                * the gradient reductions and weight gathers not hidden behind
                                * computation, the gradient norm's sum, the weights shared after
                                * the update, the loss's mean over the ranks */
    double pp_bubble;          /* pipeline parallelism: the measured idle fraction of this
                                * rank's stage in the step's forwards and backwards (0: none) */
    /* numeric faults */
    int skipped;               /* 1: the loss or gradient norm was NaN/Inf: no update was made */
    int bad_in_row;            /* such steps in a row, this one included (0 after a good step) */
    int rolled_back_to;        /* >= 0: after max_bad_steps such steps the trainer went back to
                                * the checkpoint of this step (the data stays past the bad
                                * batches); -1 otherwise */
    int spike;                 /* 1: loss above spike_factor x its running mean */
    float loss_mean;           /* that running mean before this step (0 before 10 good steps) */
    uint64_t data_new_epochs;  /* bit i: data source i was used up by this step and starts its
                                * next epoch (lmf_loader_advance) */
} lmf_step_stats;

typedef struct lmf_trainer lmf_trainer;

/* Build everything: set the thread count, open the token files, create or load the model
 * (init_dir / resume_dir), allocate activations, gradients and optimizer state, resume the
 * checkpoint, measure the peak for MFU. Collective under MPI. */
lmf_status lmf_trainer_create(const lmf_train_opts *o, lmf_trainer **out);
void lmf_trainer_free(lmf_trainer *t);

/* The step to run next (0-based; > 0 after a resume) and the total. */
int lmf_trainer_next_step(const lmf_trainer *t);
const lmf_train_opts *lmf_trainer_opts(const lmf_trainer *t);
int64_t lmf_trainer_num_params(const lmf_trainer *t);
double lmf_trainer_flops_per_token(const lmf_trainer *t);
/* FLOP/s the MFU of every step is taken against: the sum over the ranks of each rank's FMA peak
 * (lmf_peak_get: cached per machine, or measured) */
double lmf_trainer_peak_flops(const lmf_trainer *t);
/* This rank's part of that peak and where it came from (perf.h: cached or measured now) */
void lmf_trainer_peak(const lmf_trainer *t, lmf_peak *p);
struct lmf_gpt *lmf_trainer_model(lmf_trainer *t);
int lmf_trainer_rank(const lmf_trainer *t);
/* The run's identity (LMF_RUN_ID_LEN hex digits), stored in its checkpoints and metrics. */
const char *lmf_trainer_run_id(const lmf_trainer *t);
int lmf_trainer_world(const lmf_trainer *t);
/* Where this rank sits: rank = (pp_rank * dp + dp_rank) * tp + tp_rank (tensor-parallel groups
 * innermost, pipeline stages outermost); the stage holds `layers` layers, its first chunk's
 * from layer0 (lmf_trainer_stage_layers: each chunk's). */
typedef struct lmf_rank_layout {
    int tp, tp_rank, dp, dp_rank, pp, pp_rank, layer0, layers;
} lmf_rank_layout;
void lmf_trainer_ranks(const lmf_trainer *t, lmf_rank_layout *out);
/* The layers [*layer0, *layer0 + *layers) of model chunk `chunk` (0..V-1, V
 * lmf_trainer_virtual_stages) of pipeline stage `stage` (0..pp-1). */
void lmf_trainer_stage_layers(const lmf_trainer *t, int stage, int chunk, int *layer0,
                              int *layers);
/* Model chunks per pipeline stage (the interleaved schedule's V; 1 otherwise). */
int lmf_trainer_virtual_stages(const lmf_trainer *t);
/* micro-batches per rank per optimizer step */
int lmf_trainer_grad_accum(const lmf_trainer *t);
/* the training data, and the loader's state after the last completed step */
const lmf_dataset *lmf_trainer_data(const lmf_trainer *t);
void lmf_trainer_loader_state(const lmf_trainer *t, lmf_loader_state *st);
/* Bytes this rank holds: weights, gradients, optimizer state, activations, buffers. */
typedef struct lmf_train_memory {
    size_t weights, grads, optim, activations, buffers;
} lmf_train_memory;
void lmf_trainer_memory(const lmf_trainer *t, lmf_train_memory *m);
/* What the first rank of pipeline stage `stage` holds (shared at start-up; without --pp this
 * rank's). */
void lmf_trainer_stage_memory(const lmf_trainer *t, int stage, lmf_train_memory *m);
/* Timings of the last committed checkpoint write (zero before the first). */
void lmf_trainer_ckpt_stats(const lmf_trainer *t, lmf_ckpt_write_stats *st);
/* Collective: make the model hold the full current weights on every rank (after ZeRO-3
 * training), for sampling or export. */
lmf_status lmf_trainer_materialize(lmf_trainer *t);
/* Collective where the weights are spread over the ranks (ZeRO-3, tensor parallelism; there
 * every rank takes part in one gather of the whole weights): the current whole model on rank 0
 * for inference, e.g. a sample during training. *out on rank 0: the trainer's own model
 * (*made 0) or a new one (*made 1: lmf_gpt_free it); NULL on the other ranks. The training
 * state is not changed. */
lmf_status lmf_trainer_whole_model(lmf_trainer *t, lmf_gpt **out, int *made);
/* Collective: the largest flag of all ranks, on every rank (non-zero when any rank's is, e.g. a
 * stop signal's number). */
int lmf_trainer_any(lmf_trainer *t, int flag);
/* A failure seen by this rank only: with several ranks, end the whole job now (naming this
 * rank and msg) instead of letting the others wait for a collective to time out. Returns when
 * there is a single rank. */
void lmf_trainer_abort(lmf_trainer *t, const char *msg);

/* A stop check polled between the micro-steps of lmf_trainer_step (NULL: none), so that a
 * signal during a long step (many micro-steps) is honoured within one micro-step: non-zero
 * (a signal number, say) on any rank abandons the step on every rank; lmf_trainer_step then
 * returns LMF_ERR_INTERRUPTED with the state of the last completed step, and
 * lmf_trainer_stop_value gives the largest value any rank's check returned. lmf_trainer_run
 * installs its callbacks' stop_requested. */
void lmf_trainer_set_stop_check(lmf_trainer *t, int (*check)(void *ctx), void *ctx);
int lmf_trainer_stop_value(const lmf_trainer *t);

/* One optimizer step (grad_accum micro-batches), collective. A NaN/Inf loss or gradient norm
 * skips the update (st->skipped; the step still counts and its data is consumed); after
 * max_bad_steps of them in a row the trainer rolls back to the latest checkpoint
 * (st->rolled_back_to). LMF_ERR_NUMERIC when max_bad_steps is 0, when there is no checkpoint
 * to roll back to, or when the steps after a rollback fail again. Also reports a failed
 * background checkpoint write. */
lmf_status lmf_trainer_step(lmf_trainer *t, lmf_step_stats *st);
/* Mean loss over eval_batches validation batches in file order (NaN if no val data); every
 * data-parallel replica evaluates the same batches. Collective where the model is spread over
 * the ranks: with --pp the batches go through the stages (lmf_pp_engine_eval) and every rank
 * gets the loss. */
lmf_status lmf_trainer_eval(lmf_trainer *t, float *val_loss);
/* Collective: checkpoint the state after the last completed step. The state is copied and
 * written in the background (the step loop goes on); it appears atomically when complete. */
lmf_status lmf_trainer_save(lmf_trainer *t);
/* Collective: wait until the checkpoint being written (if any) is complete and named by
 * `latest`; returns its failure, on every rank, if it could not be written. */
lmf_status lmf_trainer_wait_save(lmf_trainer *t);
/* Write the run directory's config.json and model.safetensors (the current weights). */
lmf_status lmf_trainer_export(lmf_trainer *t);

/* The evaluation both `lmforge eval` and the trainer run: the mean loss of model m over the
 * first `batches` batches of loader l in file order (lmf_loader_fill_eval); B x T must be the
 * loader's batch shape (and the model reserved for it); inputs and targets are B*T ints of
 * scratch. */
struct lmf_loader;
lmf_status lmf_evaluate(struct lmf_gpt *m, struct lmf_loader *l, int B, int T, int batches,
                        int32_t *inputs, int32_t *targets, double *mean_loss);

/* ---- the training loop ---- */

/* What the loop tells its caller; every callback is optional and runs on every rank. */
typedef struct lmf_train_callbacks {
    /* after each step: its numbers; done = completed steps (step + 1, or fewer after a
     * rollback), eta_s = seconds left at the mean time of the steps so far */
    void (*on_step)(void *ctx, const lmf_step_stats *st, int done, int total, double eta_s);
    /* after each evaluation: the validation loss after `done` completed steps */
    void (*on_eval)(void *ctx, int done, float val_loss);
    /* polled after each step and between micro-steps: non-zero (a signal's number, say) asks
     * every rank to stop with a checkpoint of the last completed step; a step in progress is
     * abandoned at the next micro-step */
    int (*stop_requested)(void *ctx);
    /* a remark that does not stop the run (the loss chart could not be drawn, ...) */
    void (*on_note)(void *ctx, const char *msg);
    void *ctx;
} lmf_train_callbacks;

typedef enum lmf_run_end {
    LMF_RUN_COMPLETED = 0,   /* all steps done */
    LMF_RUN_STOPPED,         /* a stop was requested (on this rank or another) */
    LMF_RUN_STOPPED_AFTER    /* opts.stop_after was reached */
} lmf_run_end;

typedef struct lmf_run_result {
    lmf_run_end end;
    int steps_done;          /* completed steps at the end */
    int stop_requested_here; /* LMF_RUN_STOPPED: 1 when this rank's stop_requested asked */
    int stop_value;          /* LMF_RUN_STOPPED: the largest value a rank's stop_requested
                              * returned (a signal number, say) */
} lmf_run_result;

/* Collective: train from the next step to opts.steps. After each step: metrics.jsonl (rank 0:
 * one line per step, evaluation, skipped step, rollback and loss spike), evaluation every
 * eval_every steps and at the end, a checkpoint every save_every steps and at the end (and
 * when stopping); every rank stops after the same step when any asks. At the end the model
 * holds its full weights (lmf_trainer_materialize) and rank 0 writes the run directory's
 * model (lmf_trainer_export) and loss.svg. A failure of any step, evaluation or checkpoint
 * ends the run with its status. */
lmf_status lmf_trainer_run(lmf_trainer *t, const lmf_train_callbacks *cb, lmf_run_result *res);

#ifdef __cplusplus
}
#endif
#endif

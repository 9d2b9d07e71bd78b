/* Training checkpoints (format version 2, sharded): RUN_DIR/checkpoints/step_N/ written in the
 * background by every rank and renamed into place when complete, then `latest` moves; resume at
 * any world size and ZeRO stage; rollback; consolidation into one model file. The layout and
 * the guarantees are described in docs/checkpoints.md. */
#ifndef LMF_CKPT_CHECKPOINT_H
#define LMF_CKPT_CHECKPOINT_H

#include "lmforge/kernels.h"
#include "lmforge/model.h"
#include "lmforge/train.h"

typedef struct lmf_ckpt_info {
    char dir[4096];   /* the checkpoint directory */
    int step;         /* completed steps it holds */
} lmf_ckpt_info;

/* Find RUN_DIR's newest complete checkpoint: the step_N directory `latest` names, or a newer
 * complete one (a crash can fall between the rename and the move of `latest`). Fails with a
 * message when there is none, or when `latest` is malformed or names a missing checkpoint. */
lmf_status lmf_ckpt_find_latest(const char *run_dir, lmf_ckpt_info *out);
/* Read the options a checkpointed run was started with (strings point into storage that lives
 * until the next call). The index and trainer_state.json are verified. */
lmf_status lmf_ckpt_read_opts(const char *run_dir, lmf_train_opts *o);
/* The model configuration of checkpoint ck (config.json, verified against the index). */
lmf_status lmf_ckpt_model_config(const lmf_ckpt_info *ck, lmf_gpt_config *cfg);

/* Collective: wait for the previous write, copy this rank's part of the state (weights, AdamW
 * m and v over lmf_partition_range(total, world, rank); rank 0 also the trainer state) and start
 * writing it in the background. */
lmf_status lmf_ckpt_save(struct lmf_trainer *t);
/* Collective: commit a background write once every rank has finished it (cheap otherwise). */
lmf_status lmf_ckpt_poll(struct lmf_trainer *t);
/* Collective: wait for the background write and commit it. */
lmf_status lmf_ckpt_wait(struct lmf_trainer *t);
/* Collective: load weights, AdamW state, step, data position and fault counters from ck into
 * t, whatever world size and ZeRO stage wrote it. Rank 0 reads (and verifies) every shard for
 * the weights and broadcasts them; each rank reads only the shards that hold its range of m
 * and v. The run's sequence length and tokens per step must equal the checkpoint's. */
lmf_status lmf_ckpt_load_state(struct lmf_trainer *t, const lmf_ckpt_info *ck);
/* Collective: go back to the latest checkpoint (after a run of NaN/Inf steps), keeping the
 * data position (past the bad batches) and the run's fault counters; *to_step = its step. */
lmf_status lmf_ckpt_rollback(struct lmf_trainer *t, int *to_step);
/* Join and free t's background writer (not collective; a write not committed is abandoned). */
void lmf_ckpt_trainer_free(struct lmf_trainer *t);

/* Create a model from a checkpoint: path is a checkpoint directory (with index.json) or a run
 * directory (its newest complete checkpoint). Every shard is verified. */
lmf_status lmf_ckpt_load_model(const char *path, const lmf_kernels *k, lmf_gpt **out);
/* Write out_model_dir/config.json + model.safetensors (Hugging Face GPT-2 names, fp32) from
 * the sharded checkpoint at ckpt_dir (a checkpoint or run directory, as above). */
lmf_status lmf_ckpt_consolidate(const char *ckpt_dir, const char *out_model_dir);

#endif

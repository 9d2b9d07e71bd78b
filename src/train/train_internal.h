/* Shared by the trainer's files (internal to src/train): restoring and rolling back its state. */
#ifndef LMF_TRAIN_INTERNAL_H
#define LMF_TRAIN_INTERNAL_H

#include "lmforge/ckpt.h"
#include "lmforge/train.h"

/* Collective: load checkpoint ck into t (weights, AdamW state, step, and unless rollback, the
 * data position and fault counters), whatever world size and ZeRO stage wrote it. The run's
 * sequence length and tokens per step must equal the checkpoint's. */
lmf_status lmf_train_restore(lmf_trainer *t, const lmf_ckpt_info *ck, int rollback);
/* Collective: go back to the latest checkpoint (after a run of NaN/Inf steps), keeping the
 * data position (past the bad batches) and the run's fault counters; *to_step = its step. */
lmf_status lmf_train_rollback(lmf_trainer *t, int *to_step);

/* Collective, before the first collective of the run's set-up: the ranks compare the options
 * that must be equal (model shape, batch, schedule, optimizer, seed, data order, kernels,
 * ZeRO stage, evaluation and checkpoint settings, run directory) and the contents of the token
 * files; LMF_ERR_ARG on every rank naming the options and ranks that differ. */
/* Before the model is made: the memory a rank of this run will hold (weights, gradients,
 * AdamW moments, activations, a checkpoint's copy; from the model's description) against
 * what the process can have (lmf_memory_available, shared by the ranks of one machine).
 * LMF_ERR_NOMEM naming the estimate, the limit and the options that would make it fit. */
struct lmf_kernels;
lmf_status lmf_train_check_memory(const lmf_train_opts *o, const lmf_gpt_config *cfg,
                                  const struct lmf_kernels *k, int world);

#define LMF_TRAIN_MAX_STAGES 1024 /* --pp at most */

/* Model chunks per pipeline stage: --virtual-stages, 2 for --schedule interleaved without
 * it, else 1. */
int lmf_train_virtual_stages(const lmf_train_opts *o);
/* The layers of each of the P x V virtual stages into layers[P * V] (--pp P, V
 * lmf_train_virtual_stages; LMF_TRAIN_MAX_STAGES at most), in pipeline order: virtual stage
 * c * P + s is model chunk c of stage s. --stage-layers (P * V values), or balanced;
 * LMF_ERR_ARG saying what to change. */
lmf_status lmf_train_stage_layers(const lmf_train_opts *o, const lmf_gpt_config *cfg,
                                  int *layers);
/* The V model chunks of pipeline stage `stage`: chunk c holds layers
 * [layer0[c], layer0[c] + layers[c]). Fails as lmf_train_stage_layers. */
lmf_status lmf_train_stage_chunks(const lmf_train_opts *o, const lmf_gpt_config *cfg, int stage,
                                  int *layer0, int *layers);

struct lmf_comm;
lmf_status lmf_train_agree_options(struct lmf_comm *c, const lmf_train_opts *o);

#endif

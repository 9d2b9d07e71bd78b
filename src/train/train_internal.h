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

#endif

/* Training checkpoints: RUN_DIR/checkpoints/step_N/ written atomically, with a latest pointer. */
#ifndef LMF_TRAIN_CHECKPOINT_H
#define LMF_TRAIN_CHECKPOINT_H

#include "lmforge/train.h"

typedef struct lmf_ckpt_info {
    char dir[4096];   /* the checkpoint directory */
    int step;         /* completed steps it holds */
} lmf_ckpt_info;

/* Find RUN_DIR's newest complete checkpoint (the one `latest` names). */
lmf_status lmf_ckpt_find_latest(const char *run_dir, lmf_ckpt_info *out);
/* Save the trainer's state after its last completed step. */
lmf_status lmf_ckpt_save(struct lmf_trainer *t);
/* Load optimizer state, step and data position from ck into t (the weights were loaded with
 * the model from ck->dir). */
lmf_status lmf_ckpt_load_state(struct lmf_trainer *t, const lmf_ckpt_info *ck);
/* Read the options a checkpointed run was started with (strings point into storage that lives
 * until the next call). */
lmf_status lmf_ckpt_read_opts(const char *run_dir, lmf_train_opts *o);

#endif

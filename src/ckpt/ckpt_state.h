/* trainer_state.json of a checkpoint: the step, data position, fault counters and the run's
 * options (internal to src/train). */
#ifndef LMF_CKPT_STATE_H
#define LMF_CKPT_STATE_H

#include <stddef.h>
#include <stdint.h>

#include "lmforge/data.h"
#include "lmforge/train.h"

#define LMF_CKPT_STATE_FORMAT "lmforge.trainer_state"
#define LMF_CKPT_STATE_VERSION 2

/* What trainer_state.json holds besides the options. */
typedef struct lmf_ckpt_saved {
    int step;                 /* completed optimizer steps */
    int world_size, zero_stage, batch, grad_accum, seq;
    int64_t tokens_per_step;  /* the global batch in tokens */
    lmf_loader_state loader;
    /* numeric faults */
    int bad_in_row, rollbacks, stuck;
    int64_t skipped_total, good_steps;
    double loss_ema;
} lmf_ckpt_saved;

/* The text of trainer_state.json for saved state s and options o (malloc'd), or NULL with a
 * message when out of memory. */
char *lmf_ckpt_state_format(const lmf_ckpt_saved *s, const lmf_train_opts *o);
/* Parse and validate text[len] (untrusted); `what` names it in messages. */
lmf_status lmf_ckpt_state_parse(const char *text, size_t len, const char *what, lmf_ckpt_saved *s);
/* Overwrite the options in *o that text[len] records (strings point into storage that lives
 * until the next call). */
lmf_status lmf_ckpt_state_opts(const char *text, size_t len, const char *what, lmf_train_opts *o);

#endif

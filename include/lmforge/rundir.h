/* A run directory held by one training: its lock, its identity (run.json) and what may be done
 * with a directory that holds another run (docs/checkpoints.md, "Run directories"). */
#ifndef LMFORGE_RUNDIR_H
#define LMFORGE_RUNDIR_H

#include "lmforge/ckpt.h"
#include "lmforge/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum lmf_run_dir_mode {
    LMF_RUN_DIR_NEW,        /* a new run; refused when the directory holds another run */
    LMF_RUN_DIR_MOVE_ASIDE, /* a new run; another run there is first renamed to PATH.RUN_ID */
    LMF_RUN_DIR_RESUME      /* continue the run the directory holds */
} lmf_run_dir_mode;

typedef struct lmf_run_dir lmf_run_dir;

/* Take run directory `path` for one training (on one process: rank 0 under MPI). Creates it
 * when missing, locks PATH/.lock (an advisory flock the kernel drops when the process ends, even
 * by kill -9) and records the run's identity in PATH/run.json: a new one (NEW, MOVE_ASIDE) or
 * the one there (RESUME; "" when the directory predates identities). Fails with LMF_ERR_ARG and
 * a message saying what to do when another process holds the lock (naming its pid), when NEW
 * finds another run there (run.json, metrics.jsonl, model.safetensors or checkpoints/), or when
 * RESUME finds no run. */
lmf_status lmf_run_dir_open(const char *path, lmf_run_dir_mode mode, lmf_run_dir **out);
/* The run's identity ("" for a resumed run without one: the checkpoint's is taken then). */
const char *lmf_run_dir_id(const lmf_run_dir *d);
/* Where MOVE_ASIDE moved the run that was there; "" when there was none. */
const char *lmf_run_dir_moved_to(const lmf_run_dir *d);
/* Record the identity a resumed run got from its checkpoint (writes run.json if it had none). */
lmf_status lmf_run_dir_adopt(lmf_run_dir *d, const char *run_id);
/* Record what a training is set to do in run_dir/run.json when it starts (rank 0), beside the
 * identity already there: "total_steps", "started" (seconds since the epoch), "model" (the
 * shape, GPT2Config names plus "family"), "train" (the options a checkpoint records) and
 * "layout" (world_size, zero_stage, batch, seq, grad_accum, tokens_per_step), so that a reader
 * knows them before the first checkpoint. */
struct lmf_trainer;
lmf_status lmf_run_dir_record_start(const char *run_dir, struct lmf_trainer *t);
/* Release the lock. failed != 0: the training did not complete; when it left no run (no
 * metrics.jsonl, checkpoint or model), its run.json and .lock are removed, and the directory
 * too when this open created it and nothing else is in it. */
void lmf_run_dir_close(lmf_run_dir *d, int failed);

#ifdef __cplusplus
}
#endif
#endif

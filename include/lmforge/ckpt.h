/* Checkpointing a training run: a plain snapshot of the training state written by every rank
 * in the background and committed atomically, and restored at any world size and ZeRO stage.
 * The files themselves (index.json, shard files, reading them) are ckpt_format.h's; the layout
 * and the guarantees are in docs/checkpoints.md. */
#ifndef LMFORGE_CKPT_H
#define LMFORGE_CKPT_H

#include <stddef.h>
#include <stdint.h>
#include "lmforge/ckpt_format.h"
#include "lmforge/comm.h"
#include "lmforge/config.h"
#include "lmforge/data.h"
#include "lmforge/model.h"
#include "lmforge/partition.h"
#include "lmforge/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The trainer's record of numeric faults, carried across a resume (docs/checkpoints.md). */
typedef struct lmf_fault_counters {
    int bad_in_row;         /* steps with a NaN/Inf loss or gradient norm in a row */
    int rollbacks;          /* rollbacks in the whole run */
    int stuck;              /* 1: rolled back and no good step since */
    int64_t skipped_total;  /* NaN/Inf steps in the whole run */
    int64_t good_steps;     /* good steps so far (the loss-spike watch starts after 10) */
    double loss_ema;        /* running mean of the loss over good steps */
} lmf_fault_counters;

/* A run's identity: LMF_RUN_ID_LEN lower-case hex digits, made at random when the run starts
 * and kept by every resume (docs/checkpoints.md, "Run directories"). */
#define LMF_RUN_ID_LEN 16

/* The training state besides the tensors (trainer_state.json). */
typedef struct lmf_train_state {
    char run_id[LMF_RUN_ID_LEN + 1]; /* the run that wrote it; "" in checkpoints made before
                                      * runs had one */
    int step;                  /* completed optimizer steps */
    int world_size, zero_stage, batch, grad_accum, seq;
    int64_t tokens_per_step;   /* the global batch in tokens */
    lmf_loader_state loader;
    lmf_fault_counters faults;
} lmf_train_state;

/* What one rank contributes to a checkpoint. Every rank writes the part of the flat vector that
 * lmf_partition_range(total, world, rank) gives it, so it must hold the weights and AdamW
 * moments of a range that covers that part (its ZeRO range, or all of it). */
typedef struct lmf_ckpt_snapshot {
    lmf_train_state state;          /* rank 0's is written */
    const char *opts_json;          /* rank 0: the run's options, a JSON object stored as given
                                     * (NULL: none); read back with lmf_ckpt_read_opts */
    const lmf_gpt_config *cfg;      /* written as config.json (rank 0) */
    const lmf_param_layout *layout; /* the tensor table of index.json */
    lmf_range held;                 /* the range this rank holds */
    const float *params, *m, *v;    /* [len(held)] each: the floats of that range */
} lmf_ckpt_snapshot;

/* ---- writing ---- */
typedef struct lmf_ckpt_writer lmf_ckpt_writer;

typedef struct lmf_ckpt_write_stats {
    uint64_t bytes;          /* bytes this rank wrote (its shard, plus the meta files on 0) */
    double write_s;          /* this rank's thread: start to its files fsynced */
    double total_s;          /* start to the checkpoint committed (after the collective wait) */
} lmf_ckpt_write_stats;

/* A writer for RUN_DIR/checkpoints over comm (which must outlive it), keeping the newest `keep`
 * checkpoints. test_faults (NULL in real runs): what this rank's shard writes are made to do. */
lmf_status lmf_ckpt_writer_create(lmf_comm *comm, const char *run_dir, int keep,
                                  const lmf_ckpt_faults *test_faults, lmf_ckpt_writer **out);
/* Joins a write in flight; one not committed is abandoned (its .tmp- directory is removed by
 * the next save). Not collective. */
void lmf_ckpt_writer_free(lmf_ckpt_writer *w);
/* Collective: wait for the previous write, copy this rank's part of the snapshot and start
 * writing it in the background (the caller's buffers may change right after). A checkpoint of
 * step N is written into RUN_DIR/checkpoints/.tmp-step_N; when every rank's thread has finished
 * (checked collectively by lmf_ckpt_poll or lmf_ckpt_wait), rank 0 writes index.json, renames
 * the directory to step_N, moves `latest` and removes all but the newest `keep`. Fails on
 * every rank when any rank failed. */
lmf_status lmf_ckpt_save(lmf_ckpt_writer *w, const lmf_ckpt_snapshot *snap);
/* 1 while a write is in flight */
int lmf_ckpt_pending(const lmf_ckpt_writer *w);
/* Collective: commit the write in flight once every rank has finished it (cheap otherwise). */
lmf_status lmf_ckpt_poll(lmf_ckpt_writer *w);
/* Collective: wait for the write in flight (if any) and commit it. A failure on any rank
 * leaves the previous checkpoint as it was and is returned on every rank. */
lmf_status lmf_ckpt_wait(lmf_ckpt_writer *w);
/* Timings and bytes of the last committed write. */
void lmf_ckpt_writer_stats(const lmf_ckpt_writer *w, lmf_ckpt_write_stats *st);

/* ---- reading ---- */

/* Collective: restore checkpoint ck, whatever world size and ZeRO stage wrote it. Rank 0 reads
 * (and so verifies) every shard for the weights and broadcasts them into params_full
 * (layout->total floats on every rank); each rank reads only the shards that hold its range
 * `held` of AdamW m and v (m, v: len(held) floats each). *state gets trainer_state.json. The
 * layout must be the checkpoint's (config.json and index.json are checked against it). */
lmf_status lmf_ckpt_restore(lmf_comm *comm, const lmf_ckpt_info *ck, const lmf_param_layout *layout,
                            float *params_full, lmf_range held, float *m, float *v,
                            lmf_train_state *state);
/* The options the newest checkpoint of RUN_DIR was saved with (the snapshot's opts_json), as a
 * new JSON text (free() it); "{}" when it stored none. The index and trainer_state.json are
 * verified. */
lmf_status lmf_ckpt_read_opts(const char *run_dir, char **opts_json);

/* ---- trainer_state.json ---- */
#define LMF_CKPT_STATE_FORMAT "lmforge.trainer_state"
#define LMF_CKPT_STATE_VERSION 2
/* The text of trainer_state.json for state s and the options object opts_json (NULL: none),
 * malloc'd; NULL with a message when out of memory or when opts_json is not a JSON object. */
char *lmf_ckpt_state_format(const lmf_train_state *s, const char *opts_json);
/* 1 when id is a run identity (LMF_RUN_ID_LEN lower-case hex digits). */
int lmf_run_id_valid(const char *id);
/* A new random run identity into id[LMF_RUN_ID_LEN + 1]. */
void lmf_run_id_new(char *id);
/* Parse and validate text[len] (untrusted); `what` names it in messages. opts_json (may be
 * NULL) receives the options object as a new JSON text (free() it). */
lmf_status lmf_ckpt_state_parse(const char *text, size_t len, const char *what,
                                lmf_train_state *s, char **opts_json);

/* Collective: every rank passes its own status; lmf_comm_agree (all LMF_OK: LMF_OK everywhere;
 * otherwise every rank returns the lowest failing rank's status and message, "rank R of N: "). */
lmf_status lmf_ckpt_agree(lmf_comm *c, lmf_status s);

#ifdef __cplusplus
}
#endif
#endif

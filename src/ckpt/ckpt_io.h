/* Sharded checkpoint I/O: shard files, verified reads, rank agreement and the background writer
 * (internal to src/train; the trainer-level API is train/checkpoint.h). */
#ifndef LMF_CKPT_IO_H
#define LMF_CKPT_IO_H

#include <stddef.h>
#include <stdint.h>

#include "lmforge/comm.h"
#include "lmforge/config.h"
#include "lmforge/model.h"
#include "lmforge/status.h"
#include "ckpt/ckpt_index.h"

#define LMF_CKPT_SHARD_FORMAT "lmforge.ckpt_shard"

/* ---- shard files (ckpt_shard.c) ----
 * A shard is a safetensors file: __metadata__ {format "lmforge.ckpt_shard", checkpoint (id,
 * 16 hex digits), rank, world_size, step, begin, end} and three 1-D F32 tensors "params",
 * "exp_avg", "exp_avg_sq" of end - begin floats each, in that order, back to back. */
typedef struct lmf_ckpt_shard_meta {
    uint64_t id;
    int rank, world;
    int64_t step;
    uint64_t begin, end;
} lmf_ckpt_shard_meta;

/* Write the shard file at path (which must not exist) from data[3 * (end - begin)] (params,
 * then m, then v), hashing while writing, then fsync. Sets *bytes and *xxh3 (of the whole file).
 * On failure the partial file is removed and the message names the file and the cause (a full
 * disk is reported as such). Test hooks (environment): LMF_TEST_CKPT_WRITE_DELAY_MS=N sleeps N ms
 * half way through; LMF_TEST_CKPT_FAIL_RANK=R makes rank R's write fail half way. */
lmf_status lmf_ckpt_shard_write(const char *path, const lmf_ckpt_shard_meta *m, const float *data,
                                uint64_t *bytes, uint64_t *xxh3);

/* Write a small file (path must not exist): text, fsync; sets *xxh3 of its bytes. */
lmf_status lmf_ckpt_small_write(const char *path, const void *data, size_t len, uint64_t *xxh3);

/* What a reader wants of one array (0 params, 1 exp_avg, 2 exp_avg_sq): floats [begin, end)
 * of the flat vector into dst[0 .. end - begin); dst NULL (or begin >= end): nothing. */
typedef struct lmf_ckpt_want {
    uint64_t begin, end;
    float *dst;
} lmf_ckpt_want;

/* Verify shard f of ix (in dir) and copy what it holds of want[0..2]: the file must exist with
 * f->bytes bytes, a valid header naming this checkpoint's id and f's range, and f->xxh3 over
 * the whole file (all of it is read). Errors name the file and say what is wrong. */
lmf_status lmf_ckpt_shard_read(const char *dir, const lmf_ckpt_index *ix, const lmf_ckpt_file *f,
                               const lmf_ckpt_want want[LMF_CKPT_N_ARRAYS]);

/* ---- reading a checkpoint directory (ckpt_load.c) ---- */

/* Read and validate dir/index.json into *ix (free with lmf_ckpt_index_free). */
lmf_status lmf_ckpt_index_load(const char *dir, lmf_ckpt_index *ix);
/* Read meta file `name` of ix whole into *buf (NUL-terminated, free()), checking that it is
 * listed, its size and its checksum. */
lmf_status lmf_ckpt_read_meta(const char *dir, const lmf_ckpt_index *ix, const char *name,
                              char **buf, size_t *len);
/* The model configuration of the checkpoint (config.json, verified), checked against the
 * index's tensor table and flat size. */
lmf_status lmf_ckpt_read_config(const char *dir, const lmf_ckpt_index *ix, lmf_gpt_config *cfg);
/* Verify every shard that holds part of a wanted range and copy those parts. */
lmf_status lmf_ckpt_read_ranges(const char *dir, const lmf_ckpt_index *ix,
                                const lmf_ckpt_want want[LMF_CKPT_N_ARRAYS]);
/* LMF_OK when layout l matches the index's tensor table and size; else LMF_ERR_FORMAT with a
 * message naming `what` (the directory) and the first difference. */
lmf_status lmf_ckpt_check_layout(const char *what, const lmf_ckpt_index *ix,
                                 const lmf_param_layout *l);

/* ---- ranks (ckpt_writer.c) ---- */

/* Collective: every rank passes its own status. All LMF_OK: LMF_OK everywhere. Otherwise every
 * rank returns the status of the lowest failing rank with its message (other ranks prefix it
 * with "rank R: "). */
lmf_status lmf_ckpt_agree(lmf_comm *c, lmf_status s);

/* ---- the background writer (ckpt_writer.c) ----
 * A checkpoint of step N is written into RUN_DIR/checkpoints/.tmp-step_N: each rank writes its
 * shard (params, m, v over lmf_partition_range(total, world, rank)) from a snapshot buffer on a
 * thread of its own, rank 0 also config.json and trainer_state.json. When every rank's thread
 * has finished (checked collectively by poll or wait), rank 0 writes index.json, renames the
 * directory to step_N, moves `latest` and removes all but the newest `keep` checkpoints. */
typedef struct lmf_ckpt_writer lmf_ckpt_writer;

typedef struct lmf_ckpt_desc {
    int64_t step;
    int zero_stage;
    uint64_t total;                 /* floats in the flat vector */
    /* rank 0 only (ignored elsewhere): */
    const lmf_gpt_config *cfg;      /* written as config.json */
    const lmf_param_layout *layout; /* the tensor table of the index */
    const char *state_json;         /* trainer_state.json (copied) */
} lmf_ckpt_desc;

typedef struct lmf_ckpt_write_stats {
    uint64_t bytes;          /* bytes this rank wrote (its shard, plus the meta files on 0) */
    double write_s;          /* this rank's thread: start to its files fsynced */
    double total_s;          /* start to the checkpoint committed (after the collective wait) */
} lmf_ckpt_write_stats;

lmf_status lmf_ckpt_writer_create(lmf_comm *comm, const char *run_dir, int keep,
                                  lmf_ckpt_writer **out);
/* Joins a write in flight; one not committed is abandoned (its .tmp- directory is removed by
 * the next save). Not collective. */
void lmf_ckpt_writer_free(lmf_ckpt_writer *w);
/* The snapshot buffer for this rank's range of a vector of `total` floats: 3 * len(*r) floats
 * (params, m, v), grown as needed; NULL with a message when it cannot be allocated. Only valid
 * while no write is in flight. */
float *lmf_ckpt_writer_buffer(lmf_ckpt_writer *w, uint64_t total, uint64_t *begin, uint64_t *end);
/* Collective: start writing the snapshot in the background. `local` is this rank's status for
 * its snapshot (every rank calls even after a local failure, so that all agree). No write may
 * be in flight. Fails on every rank when any rank failed. */
lmf_status lmf_ckpt_writer_start(lmf_ckpt_writer *w, lmf_status local, const lmf_ckpt_desc *d);
int lmf_ckpt_writer_pending(const lmf_ckpt_writer *w);
/* Collective: when a write is in flight and every rank's thread has finished, commit it. */
lmf_status lmf_ckpt_writer_poll(lmf_ckpt_writer *w);
/* Collective: wait for the write in flight (if any) and commit it. A failure on any rank
 * leaves the previous checkpoint as it was and is returned on every rank. */
lmf_status lmf_ckpt_writer_wait(lmf_ckpt_writer *w);
/* Timings and bytes of the last committed write. */
void lmf_ckpt_writer_stats(const lmf_ckpt_writer *w, lmf_ckpt_write_stats *st);

#endif

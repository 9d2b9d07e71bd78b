/* lmforge checkpoint directories as files: index.json (the files, their sizes and XXH3-64
 * checksums, the range of the flat parameter vector each shard file covers, the tensor table),
 * the per-rank shard files, verified reads at any world size, finding a run's newest
 * checkpoint, and a model from a checkpoint. Writing checkpoints during training (when, by
 * which rank, atomically) is the ckpt module's (ckpt.h). Layout: docs/checkpoints.md. */
#ifndef LMFORGE_CKPT_FORMAT_H
#define LMFORGE_CKPT_FORMAT_H

#include <stddef.h>
#include <stdint.h>
#include "lmforge/config.h"
#include "lmforge/kernels.h"
#include "lmforge/model.h"
#include "lmforge/status.h"

#ifdef __cplusplus
extern "C" {
#endif

#define LMF_CKPT_FORMAT "lmforge.checkpoint"
#define LMF_CKPT_VERSION 2
#define LMF_CKPT_INDEX_MAX_BYTES ((size_t)64 << 20) /* index.json size accepted */
#define LMF_CKPT_MAX_WORLD (1 << 20)                /* ranks */
#define LMF_CKPT_MAX_TOTAL ((uint64_t)1 << 46)      /* floats in the flat vector */
#define LMF_CKPT_MAX_TENSORS 1000000
#define LMF_CKPT_NAME_CAP 128                       /* file names: 1..127 bytes */
#define LMF_CKPT_TENSOR_NAME_CAP 64                 /* tensor names: 1..63 bytes */
#define LMF_CKPT_N_ARRAYS 3 /* a shard holds params, exp_avg, exp_avg_sq over its range */

/* the arrays of a shard in file order: "params", "exp_avg", "exp_avg_sq" */
extern const char *const lmf_ckpt_array_names[LMF_CKPT_N_ARRAYS];

typedef enum lmf_ckpt_kind { LMF_CKPT_META = 0, LMF_CKPT_SHARD = 1 } lmf_ckpt_kind;

typedef struct lmf_ckpt_file {
    char name[LMF_CKPT_NAME_CAP]; /* a plain name inside the checkpoint directory */
    lmf_ckpt_kind kind;
    uint64_t bytes;               /* exact file size */
    uint64_t xxh3;                /* XXH3-64 (seed 0) of the whole file */
    int rank;                     /* shard: the rank that wrote it; meta: -1 */
    uint64_t begin, end;          /* shard: floats [begin, end) of the flat vector; meta: 0 */
} lmf_ckpt_file;

typedef struct lmf_ckpt_tensor {
    char name[LMF_CKPT_TENSOR_NAME_CAP];
    int ndim;                     /* 1 or 2 */
    int64_t shape[2];             /* external shape (shape[1] = 1 when ndim is 1) */
    uint64_t offset, numel;       /* floats [offset, offset + numel) of the flat vector */
} lmf_ckpt_tensor;

typedef struct lmf_ckpt_index {
    uint64_t id;                  /* random id of this checkpoint, also in every shard */
    int64_t step;                 /* completed optimizer steps */
    int world_size, zero_stage;   /* of the run that wrote it */
    uint64_t total;               /* floats in the flat parameter vector */
    int n_tensors;
    lmf_ckpt_tensor *tensors;     /* ascending, non-overlapping offsets */
    int n_files;
    lmf_ckpt_file *files;         /* shards by ascending begin (they tile [0, total)), then
                                   * meta files (config.json, trainer_state.json) */
} lmf_ckpt_index;

/* Parse and validate index text[len] (untrusted; need not be NUL-terminated). Checks the
 * format name and version, every field's type and range, file names (no paths), that the
 * shards tile [0, total) exactly, that config.json and trainer_state.json are listed, that the
 * tensors lie inside the vector without overlapping, and the index's own checksum
 * ("index_xxh3" over the canonical form of the rest). On failure returns LMF_ERR_FORMAT with
 * a message naming `what`; *out is then empty (safe to free). */
lmf_status lmf_ckpt_index_parse(const char *text, size_t len, const char *what,
                                lmf_ckpt_index *out);

/* Format ix as JSON text with its checksum (malloc'd, NUL-terminated) into *text; fails only
 * with LMF_ERR_NOMEM or LMF_ERR_ARG (an index that would not parse back). */
lmf_status lmf_ckpt_index_format(const lmf_ckpt_index *ix, char **text);

void lmf_ckpt_index_free(lmf_ckpt_index *ix);

/* the file called name, or NULL */
const lmf_ckpt_file *lmf_ckpt_index_find(const lmf_ckpt_index *ix, const char *name);

/* 1 when name is acceptable as a checkpoint file name: 1..127 bytes of [A-Za-z0-9._-], not
 * starting with '.' */
int lmf_ckpt_name_ok(const char *name);

/* ---- shard files ----
 * A shard is a safetensors file: __metadata__ {format "lmforge.ckpt_shard", checkpoint (id,
 * 16 hex digits), rank, world_size, step, begin, end} and three 1-D F32 tensors "params",
 * "exp_avg", "exp_avg_sq" of end - begin floats each, in that order, back to back. */
#define LMF_CKPT_SHARD_FORMAT "lmforge.ckpt_shard"

typedef struct lmf_ckpt_shard_meta {
    uint64_t id;
    int rank, world;
    int64_t step;
    uint64_t begin, end;
} lmf_ckpt_shard_meta;

/* Faults a test asks for (docs/checkpoints.md, "Testing failures"); all 0 in a real run. */
typedef struct lmf_ckpt_faults {
    int write_delay_ms;   /* every shard write sleeps this long half way (kills land inside) */
    int fail;             /* 1: this shard write fails half way */
} lmf_ckpt_faults;

/* Write the shard file at path (which must not exist) from data[3 * (end - begin)] (params,
 * then m, then v), hashing while writing, then fsync. Sets *bytes and *xxh3 (of the whole file).
 * On failure the partial file is removed and the message names the file and the cause (a full
 * disk is reported as such). faults may be NULL. */
lmf_status lmf_ckpt_shard_write(const char *path, const lmf_ckpt_shard_meta *m, const float *data,
                                const lmf_ckpt_faults *faults, uint64_t *bytes, uint64_t *xxh3);

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

/* ---- a checkpoint directory ---- */

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

/* ---- a run directory's checkpoints ---- */

typedef struct lmf_ckpt_info {
    char dir[4096];   /* the checkpoint directory */
    int step;         /* completed steps it holds */
} lmf_ckpt_info;

/* Find RUN_DIR's newest complete checkpoint: the step_N directory `latest` names, or a newer
 * complete one (a crash can fall between the rename and the move of `latest`). Fails with a
 * message when there is none, or when `latest` is malformed or names a missing checkpoint. */
lmf_status lmf_ckpt_find_latest(const char *run_dir, lmf_ckpt_info *out);
/* The model configuration of checkpoint ck (config.json, verified against the index). */
lmf_status lmf_ckpt_model_config(const lmf_ckpt_info *ck, lmf_gpt_config *cfg);
/* Create a model from a checkpoint: path is a checkpoint directory (with index.json) or a run
 * directory (its newest complete checkpoint). Every shard is verified. */
lmf_status lmf_ckpt_load_model(const char *path, const lmf_kernels *k, lmf_gpt **out);
/* Write out_model_dir/config.json + model.safetensors (Hugging Face GPT-2 names, fp32) from
 * the sharded checkpoint at ckpt_dir (a checkpoint or run directory, as above). */
lmf_status lmf_ckpt_consolidate(const char *ckpt_dir, const char *out_model_dir);

#ifdef __cplusplus
}
#endif
#endif

/* Index of a sharded checkpoint (index.json): the files, their sizes and XXH3-64 checksums,
 * the ranges of the flat parameter vector each shard covers, and the tensor table. */
#ifndef LMF_CKPT_INDEX_H
#define LMF_CKPT_INDEX_H

#include <stddef.h>
#include <stdint.h>
#include "lmforge/status.h"

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

#endif

/* Token files (llm.c .bin layout) and a rank-aware, resumable batch loader. */
#ifndef LMFORGE_DATA_H
#define LMFORGE_DATA_H

#include <stddef.h>
#include <stdint.h>
#include "lmforge/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Token file layout: 256 int32 header, little-endian: [0] magic 20240520, [1] version, [2] token
 * count (low 32 bits), then tokens. Version 1: uint16 tokens (llm.c). Version 2 (lmforge):
 * uint32 tokens, for vocabularies over 65,535; header[3] holds the token count's high 32 bits
 * (0 in version 1). */
#define LMF_TOKENS_MAGIC 20240520
#define LMF_TOKENS_HEADER_INTS 256

#define LMF_TOKENS_HEADER_BYTES (LMF_TOKENS_HEADER_INTS * 4)

/* Validate a token-file header without opening a file: header holds the first header_len bytes of
 * a file of file_size bytes (header_len >= min(file_size, LMF_TOKENS_HEADER_BYTES)). Checks the
 * magic, the version (1 or 2), header word 3 (0 in version 1) and that file_size equals
 * 1024 + count * token size exactly. On success sets *n_tokens and *token_bytes; on failure
 * returns LMF_ERR_FORMAT with a message naming `what`. */
lmf_status lmf_tokens_validate_header(const void *header, size_t header_len, uint64_t file_size,
                                     const char *what, uint64_t *n_tokens, int *token_bytes);

/* A read-only token file, memory-mapped. */
typedef struct lmf_tokens lmf_tokens;
/* Open and validate: magic, version, size == header + count * token size. */
lmf_status lmf_tokens_open(const char *path, lmf_tokens **out);
void lmf_tokens_close(lmf_tokens *s);
uint64_t lmf_tokens_num_tokens(const lmf_tokens *s);
int lmf_tokens_token_bytes(const lmf_tokens *s); /* 2 or 4 */
const char *lmf_tokens_path(const lmf_tokens *s); /* the path it was opened from */
/* copy tokens [start, start+n) as int32 */
void lmf_tokens_read(const lmf_tokens *s, uint64_t start, size_t n, int32_t *dst);
/* largest token id in the token file (scanned once, cached) */
uint32_t lmf_tokens_max_token(lmf_tokens *s);

/* Write a whole token file atomically (path.tmp, fsync, rename). token_bytes: 2 or 4;
 * with 2 every id must be < 65536. */
lmf_status lmf_tokens_write(const char *path, const uint32_t *tokens, uint64_t n, int token_bytes);

/* Streaming writer for token files larger than memory. */
typedef struct lmf_tokens_writer lmf_tokens_writer;
lmf_status lmf_tokens_writer_open(const char *path, int token_bytes, lmf_tokens_writer **out);
/* Append tokens; with 2-byte tokens every id must be < 65536 and a version-1 token file holds at most
 * 2^31 - 1 tokens (llm.c reads the count as int32). A failed append writes nothing, so the
 * writer stays usable (or can be aborted). */
lmf_status lmf_tokens_writer_append(lmf_tokens_writer *w, const uint32_t *tokens, size_t n);
uint64_t lmf_tokens_writer_count(const lmf_tokens_writer *w); /* tokens appended so far */
/* fills in the header, fsyncs, renames into place, frees w */
lmf_status lmf_tokens_writer_close(lmf_tokens_writer *w);
void lmf_tokens_writer_abort(lmf_tokens_writer *w); /* removes the temporary file, frees w */

/* Batch loader. The token file is cut into rows of T+1 tokens that overlap by one: row k holds
 * tokens [k*T, k*T + T + 1) (inputs are the first T, targets the last T), and there are
 * n_rows = (num_tokens - 1) / T rows. Rows are visited in an order: the identity
 * (shuffle = 0: B consecutive rows are exactly the next B*T+1 contiguous tokens, as llm.c
 * and nanoGPT read them) or a pseudo-random permutation of [0, n_rows) seeded by
 * (seed, epoch) that needs no memory (a Feistel network with cycle walking).
 * Each optimizer step reads a global batch of n micro-batches of B rows; micro-batch i of it
 * takes rows order[position + i*B .. position + i*B + B). In data parallelism rank r
 * takes micro-batches r, r + world_size, ... When a global batch would run past n_rows, the
 * epoch advances and position restarts at 0 (the tail rows of that epoch are skipped).
 * (lmf_loader_advance(n) moves position by n*B rows, then starts the next epoch when another
 * n*B rows would not fit. If a fill still reaches past n_rows - a global batch larger than the
 * token file, or a restored position near the end - slot j of the row stream is read as slot
 * j - n_rows of the next epoch, so every fill stays defined.) */
typedef struct lmf_loader_state {
    uint64_t epoch;      /* completed passes over the token file */
    uint64_t position;   /* next window index (file order) or index into the permutation */
    uint64_t seed;
    int shuffle;
} lmf_loader_state;

typedef struct lmf_loader lmf_loader;
/* The loader borrows s (keep it open while the loader lives). Fails with LMF_ERR_ARG when B or
 * T is not positive or the token file holds fewer than B*T+1 tokens. */
lmf_status lmf_loader_create(lmf_tokens *s, int B, int T, int shuffle, uint64_t seed,
                             lmf_loader **out);
void lmf_loader_free(lmf_loader *l);
/* Fill inputs[B*T] and targets[B*T] with micro-batch number `index` of the next global batch
 * (0 <= index < micro_batches_per_step); call lmf_loader_advance after the step. */
void lmf_loader_fill(lmf_loader *l, uint64_t index, int32_t *inputs, int32_t *targets);
/* move past a global batch of n micro-batches */
void lmf_loader_advance(lmf_loader *l, uint64_t n);
/* sequential evaluation: micro-batch k in file order from the start (no state) */
void lmf_loader_fill_eval(lmf_loader *l, uint64_t k, int32_t *inputs, int32_t *targets);
uint64_t lmf_loader_num_windows(const lmf_loader *l);
void lmf_loader_get_state(const lmf_loader *l, lmf_loader_state *st);
/* Replace epoch, position, seed and shuffle with *st (a saved state continues the same row
 * stream). Fails with LMF_ERR_FORMAT, state unchanged, when shuffle is not 0/1 or position is
 * not below the number of rows. */
lmf_status lmf_loader_set_state(lmf_loader *l, const lmf_loader_state *st);

#ifdef __cplusplus
}
#endif
#endif

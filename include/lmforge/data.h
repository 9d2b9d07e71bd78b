/* Token files (llm.c .bin layout), datasets of many token files and weighted sources, and a
 * rank-aware, resumable batch loader over them. */
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

/* ---- datasets: many token files, one or more weighted sources ---- */

/* The most sources a mixture may name (the loader's state holds a position for each). */
#define LMF_DATA_MAX_SOURCES 64

/* A dataset: one or more sources, each a list of token files (of either version, any sizes),
 * with a weight. A spec (docs/file-formats.md, "Data specs") is one of:
 *   FILE.bin | DIR (its *.bin files, sorted) | 'GLOB' (sorted) | ITEM,ITEM,...  one source
 *   W:ITEM,W:ITEM,...          one source per item, weighted (weights are normalised)
 *   MIX.json                   {"sources": [{"name": N, "weight": W, "data": ITEM[,ITEM]}, ...]},
 *                              relative paths taken from the JSON file's directory
 * Opening checks every token file's header and size (a missing, empty or malformed one is named
 * in the error) and keeps no file open: token files are opened when read, a few at a time, and
 * read with pread or native AIO (at most LMF_DATASET_MAX_OPEN descriptors), so memory and descriptors do not grow with their number and a file truncated
 * later gives an error, never a signal. */
/* descriptors a dataset keeps open at most */
#define LMF_DATASET_MAX_OPEN 64

typedef struct lmf_dataset lmf_dataset;
lmf_status lmf_dataset_open(const char *spec, lmf_dataset **out);
void lmf_dataset_close(lmf_dataset *d);
int lmf_dataset_num_sources(const lmf_dataset *d);
const char *lmf_dataset_source_name(const lmf_dataset *d, int source);
double lmf_dataset_source_weight(const lmf_dataset *d, int source); /* normalised: sum 1 */
/* the source's token files are files [first, first + count) of the dataset */
void lmf_dataset_source_files(const lmf_dataset *d, int source, int *first, int *count);
uint64_t lmf_dataset_source_tokens(const lmf_dataset *d, int source);
int lmf_dataset_num_files(const lmf_dataset *d);
uint64_t lmf_dataset_file_tokens(const lmf_dataset *d, int file);
const char *lmf_dataset_file_path(const lmf_dataset *d, int file);
int lmf_dataset_open_files(const lmf_dataset *d); /* descriptors held now (at most a few) */
/* Copy tokens [start, start + n) of one file as int32. Fails with LMF_ERR_IO naming the file
 * when it cannot be opened or read, or is no longer the size it had when the dataset was opened
 * (truncated or rewritten while in use). */
lmf_status lmf_dataset_read(lmf_dataset *d, int file, uint64_t start, size_t n, int32_t *dst);
/* Tokens [start, start + n) of file into dst[n] as int32, for many spans at once: what
 * lmf_dataset_read of each gives (the same failures), with one system call for up to
 * LMF_DATASET_MAX_OPEN spans that fit 256 KiB together (Linux native AIO, whose buffered
 * reads complete inside io_submit) instead of one pread each; where the system offers no AIO,
 * one pread each. */
typedef struct lmf_dataset_span {
    int file;
    uint64_t start;
    size_t n;
    int32_t *dst;
} lmf_dataset_span;
lmf_status lmf_dataset_read_spans(lmf_dataset *d, const lmf_dataset_span *spans, size_t n);
/* Largest token id in the whole dataset (reads every file once). */
lmf_status lmf_dataset_max_token(lmf_dataset *d, uint32_t *out);

/* ---- the batch loader ----
 * Rows. Each token file is cut into rows of T+1 tokens that overlap by one: row k of a file holds
 * its tokens [k*T, k*T + T + 1) (inputs the first T, targets the last T); a file of n tokens gives
 * (n - 1) / T rows, and a row never spans two files (the shard-end rule: files whose sizes are
 * multiples of T read as their concatenation without the one row at each junction). A source's
 * rows are its files' rows in file order.
 * Mixture. Rows are drawn one global row at a time. Global row g (counted from the start of
 * training over all ranks) comes from source i when x_g = (u + g * 0x9E3779B97F4A7C15) mod 2^64
 * falls in [2^64 * (w_0 + .. + w_{i-1}), 2^64 * (w_0 + .. + w_i)), u a 64-bit number drawn
 * from the seed: a Weyl sequence, so each source's share is its weight in expectation over u
 * and within about log(g)/g of it after g rows. With one source every row is from it.
 * Order in a source. Each source is read in its own order, epoch by epoch: the identity
 * (shuffle = 0: consecutive rows are consecutive tokens, as llm.c and nanoGPT read them) or a
 * pseudo-random permutation of its rows seeded by (seed, source, epoch) that needs no memory (a
 * Feistel network with cycle walking).
 * Global batches. Each optimizer step reads a global batch of n micro-batches of B rows:
 * global rows [rows, rows + n*B); micro-batch i takes the B rows from rows + i*B. In data
 * parallelism rank r takes micro-batches r, r + world_size, ..., so every layout reads the same
 * rows per step. Within a batch each source takes its next rows in its order. After a batch
 * (lmf_loader_advance), a source whose rows for the next batch of the same size would run past
 * its end starts its next epoch at position 0 (its tail rows of that epoch are skipped). A fill
 * that still reaches past the end (a source smaller than its share of one batch) reads slot j
 * past the end as slot j - n_rows of the next epoch, so every fill stays defined.
 * State: the global row counter and each source's (epoch, position): a few numbers per source. */
typedef struct lmf_loader_source_state {
    uint64_t epoch;      /* completed passes over the source */
    uint64_t position;   /* next row of the source's order */
} lmf_loader_source_state;

typedef struct lmf_loader_state {
    uint64_t seed;
    int shuffle;
    uint64_t rows;       /* global rows drawn so far */
    int n_sources;
    lmf_loader_source_state src[LMF_DATA_MAX_SOURCES];
} lmf_loader_state;

typedef struct lmf_loader lmf_loader;
/* The loader borrows d (keep it open while the loader lives). Fails with LMF_ERR_ARG when B or
 * T is not positive, a single source has fewer than B rows (B*T+1 tokens in one file), or a
 * source of a mixture has no row. */
lmf_status lmf_loader_create(lmf_dataset *d, int B, int T, int shuffle, uint64_t seed,
                             lmf_loader **out);
void lmf_loader_free(lmf_loader *l);
/* Token ids at or above vocab_size found in a fill fail it (LMF_ERR_ARG naming the file);
 * 0 (the default) checks nothing. */
void lmf_loader_set_vocab(lmf_loader *l, int vocab_size);
/* How a fill reads its B rows: on (the default), sorted by file and position, rows of one file
 * that lie close together (gaps of at most T tokens) come from one read; off, one read per row
 * (the benchmark's baseline). The rows are the same either way. */
void lmf_loader_set_batch_reads(lmf_loader *l, int on);
/* Fill inputs[B*T] and targets[B*T] with micro-batch number `index` of the next global batch
 * (0 <= index < micro-batches per step); call lmf_loader_advance after the step. Fails as
 * lmf_dataset_read does, or for a token outside the vocabulary. */
lmf_status lmf_loader_fill(lmf_loader *l, uint64_t index, int32_t *inputs, int32_t *targets);
/* Rows each source gives to the next global batch of n micro-batches: counts[n_sources]. */
void lmf_loader_batch_counts(const lmf_loader *l, uint64_t n, uint64_t *counts);
/* Move past a global batch of n micro-batches. Returns a bit mask of the sources that started a
 * new epoch (bit i for source i < 64). */
uint64_t lmf_loader_advance(lmf_loader *l, uint64_t n);
/* sequential evaluation: micro-batch k of all rows in file order (source 0's files first), no
 * state, no mixture */
lmf_status lmf_loader_fill_eval(lmf_loader *l, uint64_t k, int32_t *inputs, int32_t *targets);
uint64_t lmf_loader_num_windows(const lmf_loader *l);             /* rows of all sources */
uint64_t lmf_loader_batch_tokens(const lmf_loader *l);            /* B * T */
uint64_t lmf_loader_source_rows(const lmf_loader *l, int source);  /* rows of one source */
void lmf_loader_get_state(const lmf_loader *l, lmf_loader_state *st);
/* Replace the state with *st (a saved state continues the same row stream). Fails with
 * LMF_ERR_FORMAT, state unchanged, when shuffle is not 0/1, the number of sources differs from
 * the dataset's, or a position is not below its source's rows. */
lmf_status lmf_loader_set_state(lmf_loader *l, const lmf_loader_state *st);

/* Benchmark (`lmforge bench loader`): batch assembly as the trainer does it (every micro-batch of
 * a global batch of `micro`, then advance), one untimed step, then steps until `seconds` have
 * passed (at least 3). tokens_per_s counts the B*T input tokens of each micro-batch. Fails as
 * lmf_loader_fill does. */
typedef struct lmf_loader_bench_result {
    double tokens_per_s, seconds;
    uint64_t tokens, steps;
} lmf_loader_bench_result;
lmf_status lmf_loader_bench(lmf_loader *l, uint64_t micro, double seconds,
                            lmf_loader_bench_result *r);

#ifdef __cplusplus
}
#endif
#endif

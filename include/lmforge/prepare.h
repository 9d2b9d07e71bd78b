/* Data preparation: text files -> train/val token files (llm.c .bin layout); the default data. */
/* Every document is followed by the end-of-text token; encoding runs on all cores and the
 * output does not depend on the thread count. */
#ifndef LMFORGE_PREPARE_H
#define LMFORGE_PREPARE_H

#include <stddef.h>
#include <stdint.h>
#include "lmforge/status.h"
#include "lmforge/tokenizer.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lmf_prepare_opts {
    const lmf_tokenizer *tok;     /* NULL: raw bytes (ids 0..255, end-of-text 256, 257 ids) */
    const char *const *inputs;    /* UTF-8 text files, read in this order: plain text; *.zst
                                   * zstd-compressed text; *.jsonl (and *.jsonl.zst) JSON Lines,
                                   * one document per line in the field jsonl_key (the doc
                                   * separator does not apply); compressed and JSON Lines inputs
                                   * are decoded as streams, window_bytes at a time (memory does
                                   * not grow with the file) */
    int n_inputs;
    const char *out_dir;          /* train.bin (and val.bin) go here; created if missing */
    double val_fraction;          /* in [0, 1): the last fraction of the documents, rounded,
                                   * at least one when > 0 and there are two or more, go to
                                   * val.bin; 0 writes no val.bin */
    const char *doc_separator;    /* a line holding exactly this string (then "\n", "\r\n" or the
                                   * end) ends a document; NULL: each file is one document */
    int threads;                  /* 0 = all cores */
    /* called on the calling thread after each batch: input bytes done so far, of total */
    void (*progress)(void *ctx, uint64_t bytes_done, uint64_t bytes_total, uint64_t tokens);
    void *progress_ctx;
    const char *jsonl_key;        /* the text field of JSON Lines inputs; NULL: "text" */
    size_t window_bytes;          /* decoded bytes read at a time from a compressed or JSON Lines
                                   * input (0: 16 MiB; the output does not depend on it) */
} lmf_prepare_opts;

typedef struct lmf_prepare_stats {
    uint64_t bytes;               /* input bytes */
    uint64_t docs, val_docs;      /* non-empty documents, of which in val.bin */
    uint64_t train_tokens, val_tokens;
    int token_bytes;              /* 2 (uint16, vocabulary <= 65536) or 4 */
    int vocab_size;
    int threads;
    double seconds;
    size_t window_bytes;          /* the largest buffer of decoded text held for a compressed or
                                   * JSON Lines input (a window, plus a document carried into the
                                   * next one: at most about 2 MiB more, or a longer line) */
} lmf_prepare_stats;

/* Write OUT_DIR/train.bin and, with val_fraction > 0, OUT_DIR/val.bin (with 0, a val.bin there
 * from an earlier preparation is removed). Each non-empty document becomes its ids followed by
 * the end-of-text id (lmf_tok_eot); special-token strings in the text are plain text. All or
 * nothing: the files are written into a temporary directory in OUT_DIR and moved into place at
 * the end; a failure leaves OUT_DIR as it was (and removes it when this call created it). Fails
 * with LMF_ERR_ARG for bad options, a tokenizer without an end-of-text token or, with
 * val_fraction > 0, fewer than two documents; LMF_ERR_FORMAT for plain text that is not UTF-8 (naming the
 * file and the first bad byte's offset) and for bad JSON Lines or zstd inputs; LMF_ERR_IO for
 * unreadable inputs or unwritable outputs. stats may be NULL. */
lmf_status lmf_data_prepare(const lmf_prepare_opts *o, lmf_prepare_stats *stats);

/* Documents of `docs` that a validation fraction puts in the validation split: round(docs *
 * fraction), at least one and at most docs - 1; 0 when fraction is 0 or docs < 2. */
uint64_t lmf_data_val_docs(uint64_t docs, double fraction);

/* ---- sharded preparation, split over ranks ----
 * OUT/train_000000.bin, train_000001.bin, ...: the documents of every input, in input order, each
 * followed by end-of-text, cut into token files of exactly shard_tokens tokens (the last one
 * shorter). With val_fraction > 0 the last lmf_data_val_docs(documents, val_fraction) documents
 * of all inputs go instead to OUT/val/val_000000.bin, ... (cut the same way): the same split as
 * lmf_data_prepare's val.bin, so the train files joined hold train.bin's tokens and the val files
 * joined val.bin's. The result depends only on the inputs and options, not on the number of
 * ranks or threads. Three collective phases, each called by every rank with its rank and world size,
 * separated by a barrier the caller provides:
 *   1. lmf_shards_begin (rank 0 writes OUT/manifest.json: the inputs and options; a directory
 *      with a manifest of other inputs or options is refused) and lmf_shards_tokenize (rank r
 *      tokenizes inputs r, r + world, ... into OUT/.parts/part_NNNNNN.bin);
 *   2. lmf_shards_write: rank r writes token files r, r + world, ... (the train files, then the
 *      val files) from the parts;
 *   3. lmf_shards_finish (rank 0): the manifest lists the shards and says complete; the parts go.
 * Every file is written to a temporary name and renamed into place, so a crash leaves complete
 * parts and shards only; a rerun with the same inputs and options keeps them and does the rest. */
typedef struct lmf_shards_opts {
    const lmf_tokenizer *tok;     /* NULL: raw bytes */
    const char *const *inputs;    /* as lmf_prepare_opts.inputs */
    int n_inputs;
    const char *out_dir;
    uint64_t shard_tokens;        /* > 0 */
    const char *doc_separator;    /* as lmf_prepare_opts */
    const char *jsonl_key;        /* as lmf_prepare_opts */
    const char *tokenizer_id;     /* recorded in the manifest to refuse mixing ("bytes", a path) */
    int threads;                  /* encoding threads per rank; 0 = all cores */
    int test_fail_after;          /* test: > 0 fails with LMF_ERR_STATE once this rank has written
                                   * that many files (parts and token files), as a crash would
                                   * stop it */
    double val_fraction;          /* in [0, 1): as lmf_prepare_opts; 0 writes no OUT/val/ */
} lmf_shards_opts;

typedef struct lmf_shards_stats {
    int parts_done, parts_kept;   /* inputs tokenized by this rank now / found done */
    int shards_done, shards_kept; /* shards written by this rank now / found done */
    int complete;                 /* the manifest already said complete: nothing was done */
    int n_shards;                 /* train token files, in all */
    int n_val_shards;             /* val token files, in all */
    uint64_t tokens;              /* in all, train and val */
    uint64_t val_tokens;          /* of them in the val files */
    uint64_t docs, val_docs;      /* documents in all, of which in the val files */
} lmf_shards_stats;

lmf_status lmf_shards_begin(const lmf_shards_opts *o, int rank);
lmf_status lmf_shards_tokenize(const lmf_shards_opts *o, int rank, int world, lmf_shards_stats *st);
lmf_status lmf_shards_write(const lmf_shards_opts *o, int rank, int world, lmf_shards_stats *st);
lmf_status lmf_shards_finish(const lmf_shards_opts *o, int rank, lmf_shards_stats *st);

/* ---- corpus directories ---- */

/* The default corpus: Debian's fortunes (package fortunes), records ended by "%" lines. */
#define LMF_DEFAULT_CORPUS "/usr/share/games/fortunes"

/* The text files of a corpus directory, sorted by path: regular files (not links: fortune's
 * .u8 names link to the same text), not hidden, not fortune index files (*.dat), not empty;
 * at most 4096. */
typedef struct lmf_corpus {
    char **paths;                 /* [n] "DIR/NAME" */
    int n;
} lmf_corpus;
/* List dir into *out (free it with lmf_data_corpus_free). Fails with LMF_ERR_IO when dir cannot
 * be read (for LMF_DEFAULT_CORPUS the message says how to install it), LMF_ERR_ARG when it
 * holds no such file, LMF_ERR_NOMEM; *out is empty on failure. */
lmf_status lmf_data_corpus_list(const char *dir, lmf_corpus *out);
void lmf_data_corpus_free(lmf_corpus *c);

/* ---- the default training data: a corpus -> a tokenizer -> train/val token files ---- */

typedef enum lmf_default_data_event {
    LMF_DEFAULT_DATA_TRAINING,    /* a tokenizer is about to be trained: vocab_size, n_files */
    LMF_DEFAULT_DATA_WRITTEN,     /* the token files were written: stats, data_dir */
} lmf_default_data_event;

typedef struct lmf_default_data_progress {
    lmf_default_data_event event;
    int vocab_size;               /* LMF_DEFAULT_DATA_TRAINING: ids of the tokenizer to train */
    int n_files;                  /* LMF_DEFAULT_DATA_TRAINING: corpus files it learns from */
    const lmf_prepare_stats *stats; /* LMF_DEFAULT_DATA_WRITTEN */
    const char *data_dir;         /* LMF_DEFAULT_DATA_WRITTEN: where train.bin and val.bin are */
} lmf_default_data_progress;

typedef struct lmf_default_data_opts {
    const char *corpus;           /* directory of text files (lmf_data_corpus_list); NULL:
                                   * LMF_DEFAULT_CORPUS */
    const char *tokenizer;        /* an existing tokenizer (a path for lmf_tok_load), or NULL to
                                   * train one */
    int vocab_size;               /* ids of the tokenizer to train: the 256 byte tokens, merges
                                   * and <|endoftext|> (257: bytes only) */
    const char *run_dir;          /* RUN_DIR/tokenizer/ and RUN_DIR/data/ are written here */
    /* called on the calling thread at each event; may be NULL */
    void (*progress)(void *ctx, const lmf_default_data_progress *p);
    void *progress_ctx;
} lmf_default_data_opts;

/* Make RUN_DIR/data/train.bin and RUN_DIR/data/val.bin from the corpus. Documents are its
 * records (separated by lines holding only "%"); the last 5% go to val.bin. The tokenizer is
 * o->tokenizer; else the one an earlier run left in RUN_DIR/tokenizer/ when it has vocab_size
 * ids; else a new one, trained on the corpus (all cores) and saved there. The token files are
 * kept, not rewritten, when the tokenizer was kept from an earlier run (neither given nor
 * trained now) and train.bin and val.bin exist, train.bin not older than its tokenizer.json. train_path and val_path (cap bytes each) get the token files'
 * paths, *vocab_size the tokenizer's ids (the model's vocab_size). Fails with LMF_ERR_ARG for a
 * corpus of fewer than two documents, and as lmf_data_corpus_list, lmf_tok_load,
 * lmf_tok_train_files, lmf_tok_save and lmf_data_prepare do. */
lmf_status lmf_data_prepare_default(const lmf_default_data_opts *o, char *train_path,
                                    char *val_path, size_t cap, int *vocab_size);

#ifdef __cplusplus
}
#endif
#endif

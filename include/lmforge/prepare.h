/* Data preparation: text files -> train/val token files (llm.c .bin layout). */
/* Every document is followed by the end-of-text token; encoding runs on all cores and the
 * output does not depend on the thread count. */
#ifndef LMFORGE_PREPARE_H
#define LMFORGE_PREPARE_H

#include <stdint.h>
#include "lmforge/status.h"
#include "lmforge/tokenizer.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lmf_prepare_opts {
    const lmf_tokenizer *tok;     /* NULL: raw bytes (ids 0..255, end-of-text 256, 257 ids) */
    const char *const *inputs;    /* text files, read in this order */
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
} lmf_prepare_opts;

typedef struct lmf_prepare_stats {
    uint64_t bytes;               /* input bytes */
    uint64_t docs, val_docs;      /* non-empty documents, of which in val.bin */
    uint64_t train_tokens, val_tokens;
    int token_bytes;              /* 2 (uint16, vocabulary <= 65536) or 4 */
    int vocab_size;
    int threads;
    double seconds;
} lmf_prepare_stats;

/* Write OUT_DIR/train.bin and, with val_fraction > 0, OUT_DIR/val.bin. Each non-empty
 * document becomes its ids followed by the end-of-text id (lmf_tok_eot); special-token strings
 * in the text are plain text. Fails with LMF_ERR_ARG for bad options or a tokenizer without an
 * end-of-text token, LMF_ERR_IO for unreadable inputs or unwritable outputs (no partial token file
 * is left behind). stats may be NULL. */
lmf_status lmf_data_prepare(const lmf_prepare_opts *o, lmf_prepare_stats *stats);

#ifdef __cplusplus
}
#endif
#endif

/* lmforge train's default data: the corpus, tokenizer and run-directory flags, and their progress lines. */
#ifndef LMF_CLI_DEFAULT_DATA_H
#define LMF_CLI_DEFAULT_DATA_H

#include <stddef.h>
#include "lmforge/status.h"

typedef struct lmf_default_data {
    const char *corpus;     /* directory of text files; NULL = /usr/share/games/fortunes */
    const char *tokenizer;  /* existing tokenizer directory, or NULL to train one */
    int bpe_vocab;          /* size of the tokenizer to train; 0 = raw bytes */
    const char *run_dir;    /* tokenizer/ and data/ are written here */
    int quiet;              /* no progress lines on stderr */
} lmf_default_data;

/* lmf_data_prepare_default (include/lmforge/prepare.h) with these flags: makes
 * RUN_DIR/data/{train,val}.bin and RUN_DIR/tokenizer/, or reuses those of an earlier run.
 * Returns the token files' paths and the vocabulary size the model needs; progress goes to
 * stderr unless quiet. */
lmf_status lmf_cli_default_data(const lmf_default_data *d, char *train_path, char *val_path,
                                size_t cap, int *vocab_size);

#endif

/* The default training data: the fortunes corpus, a tokenizer trained on it, train/val shards. */
#ifndef LMF_CLI_DEFAULT_DATA_H
#define LMF_CLI_DEFAULT_DATA_H

#include <stddef.h>
#include "lmforge/status.h"

typedef struct lmf_default_data {
    const char *corpus;     /* directory of text files; NULL = /usr/share/games/fortunes */
    const char *tokenizer;  /* existing tokenizer directory, or NULL to train one */
    int bpe_vocab;          /* size of the tokenizer to train; 0 = raw bytes */
    const char *run_dir;    /* tokenizer/ and data/ are written here */
    int quiet;
} lmf_default_data;

/* Make RUN_DIR/data/{train,val}.bin (reused when present and newer than the corpus) and
 * RUN_DIR/tokenizer/. Returns the shard paths and the vocabulary size the model needs. */
lmf_status lmf_cli_default_data(const lmf_default_data *d, char *train_path, char *val_path,
                                size_t cap, int *vocab_size);

#endif

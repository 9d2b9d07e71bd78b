/* lmforge train's default data: the flags mapped onto lmf_data_prepare_default, its progress printed. */
#include "cli/default_data.h"

#include <stdio.h>

#include "lmforge/prepare.h"

static void print_progress(void *ctx, const lmf_default_data_progress *p) {
    const lmf_default_data *d = ctx;
    if (d->quiet) return;
    if (p->event == LMF_DEFAULT_DATA_TRAINING && p->vocab_size > 257)
        fprintf(stderr, "training a %d-token BPE vocabulary on %d files...\n", p->vocab_size,
                p->n_files);
    if (p->event == LMF_DEFAULT_DATA_WRITTEN)
        fprintf(stderr, "default data: %llu documents, %llu train + %llu val tokens in %s\n",
                (unsigned long long)p->stats->docs, (unsigned long long)p->stats->train_tokens,
                (unsigned long long)p->stats->val_tokens, p->data_dir);
}

lmf_status lmf_cli_default_data(const lmf_default_data *d, char *train_path, char *val_path,
                                size_t cap, int *vocab_size) {
    /* --bpe-vocab 0: raw bytes, that is the 256 byte tokens and <|endoftext|> */
    lmf_default_data_opts o = {d->corpus, d->tokenizer, d->bpe_vocab > 0 ? d->bpe_vocab : 257,
                               d->run_dir, print_progress, (void *)d};
    return lmf_data_prepare_default(&o, train_path, val_path, cap, vocab_size);
}

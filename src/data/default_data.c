/* The default training data: a corpus -> a tokenizer (given, kept or trained) -> train/val token files. */
/* Everything goes into the run directory (tokenizer/, data/), and a later run reuses it. */
#include "lmforge/prepare.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "lmforge/fsutil.h"
#include "lmforge/tokenizer.h"

#define VAL_FRACTION 0.05
#define DOC_SEPARATOR "%"

static void report(const lmf_default_data_opts *o, const lmf_default_data_progress *p) {
    if (o->progress) o->progress(o->progress_ctx, p);
}

/* Tokenizer for the default data: the one given, the one an earlier run trained here (when it
 * has the asked size), or a new one trained on the corpus (*trained = 1; saved by the caller
 * once the token files are made). */
static lmf_status default_tokenizer(const lmf_default_data_opts *o, const lmf_corpus *c,
                                    const char *tokdir, lmf_tokenizer **tok, int *trained) {
    char probe[4200];
    snprintf(probe, sizeof probe, "%s/tokenizer.json", tokdir);
    if (o->tokenizer) return lmf_tok_load(o->tokenizer, tok);
    if (lmf_file_exists(probe)) {
        LMF_TRY(lmf_tok_load(tokdir, tok));
        if (lmf_tok_vocab_size(*tok) == o->vocab_size) return LMF_OK;
        lmf_tok_free(*tok); /* a different size was asked for: train anew */
        *tok = NULL;
    }
    lmf_default_data_progress p = {LMF_DEFAULT_DATA_TRAINING, o->vocab_size, c->n, NULL, NULL};
    report(o, &p);
    lmf_tok_train_opts to = {.vocab_size = o->vocab_size};
    LMF_TRY(lmf_tok_train_files((const char *const *)c->paths, c->n, &to, tok));
    *trained = 1;
    return LMF_OK;
}

/* A tokenizer trained now goes into tokdir only with the token files made with it: written to
 * a temporary directory before them (so that they are newer), moved into place after. */
static lmf_status save_tokenizer(const lmf_tokenizer *tok, const char *tmpdir) {
    lmf_remove_tree(tmpdir); /* a leftover of an interrupted start */
    return lmf_tok_save(tok, tmpdir);
}

static lmf_status commit_tokenizer(const char *tmpdir, const char *tokdir) {
    lmf_remove_tree(tokdir); /* one of another size */
    if (rename(tmpdir, tokdir) != 0)
        return lmf_fail(LMF_ERR_IO, "cannot move %s to %s: %s", tmpdir, tokdir, strerror(errno));
    return lmf_fsync_parent_dir(tokdir);
}

/* Documents are the corpus's records (separated by lines holding only "%"); the last 5% go to
 * validation. Token files made by an earlier run with the same tokenizer are reused: the
 * tokenizer was kept (not given, not trained now) and train.bin is not older than it. */
static lmf_status prepare(const lmf_default_data_opts *o, const lmf_corpus *c, const char *tokdir,
                          const char *datadir, const char *train_path, const char *val_path,
                          int *vocab_size) {
    lmf_tokenizer *tok = NULL;
    char stamp[4200];
    snprintf(stamp, sizeof stamp, "%s/tokenizer.json", tokdir);
    int had_tok = lmf_file_exists(stamp) && !o->tokenizer, trained = 0;
    LMF_TRY(default_tokenizer(o, c, tokdir, &tok, &trained));
    *vocab_size = lmf_tok_vocab_size(tok);
    char tok_tmp[4300];
    snprintf(tok_tmp, sizeof tok_tmp, "%s.tmp", tokdir);
    lmf_status s = trained ? save_tokenizer(tok, tok_tmp) : LMF_OK;
    struct stat ts, ds;
    int fresh = had_tok && !trained && lmf_file_exists(train_path) && lmf_file_exists(val_path) &&
                stat(stamp, &ts) == 0 && stat(train_path, &ds) == 0 &&
                ds.st_mtime >= ts.st_mtime;
    if (s == LMF_OK && !fresh) {
        lmf_prepare_opts po;
        memset(&po, 0, sizeof po);
        po.tok = tok;
        po.inputs = (const char *const *)c->paths;
        po.n_inputs = c->n;
        po.out_dir = datadir;
        po.val_fraction = VAL_FRACTION;
        po.doc_separator = DOC_SEPARATOR;
        lmf_prepare_stats st;
        s = lmf_data_prepare(&po, &st);
        if (s == LMF_OK) {
            lmf_default_data_progress p = {LMF_DEFAULT_DATA_WRITTEN, 0, 0, &st, datadir};
            report(o, &p);
        }
    }
    if (s == LMF_OK && trained) s = commit_tokenizer(tok_tmp, tokdir);
    if (trained) lmf_remove_tree(tok_tmp); /* gone after a commit; after a failure, removed */
    lmf_tok_free(tok);
    return s;
}

lmf_status lmf_data_prepare_default(const lmf_default_data_opts *o, char *train_path,
                                    char *val_path, size_t cap, int *vocab_size) {
    const char *corpus = o->corpus ? o->corpus : LMF_DEFAULT_CORPUS;
    char datadir[4096], tokdir[4096];
    if (!o->run_dir) return lmf_fail(LMF_ERR_ARG, "default data: no run directory given");
    snprintf(datadir, sizeof datadir, "%s/data", o->run_dir);
    snprintf(tokdir, sizeof tokdir, "%s/tokenizer", o->run_dir);
    snprintf(train_path, cap, "%s/train.bin", datadir);
    snprintf(val_path, cap, "%s/val.bin", datadir);
    lmf_corpus c;
    LMF_TRY(lmf_data_corpus_list(corpus, &c));
    lmf_status s = prepare(o, &c, tokdir, datadir, train_path, val_path, vocab_size);
    if (s != LMF_OK) s = lmf_fail_context(s, "default data from %s: ", corpus);
    lmf_data_corpus_free(&c);
    return s;
}

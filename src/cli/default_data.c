/* The default training data: fortunes corpus -> tokenizer -> train/val token files in the run dir. */
#include "cli/default_data.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "lmforge/data.h"
#include "lmforge/fsutil.h"
#include "lmforge/prepare.h"
#include "lmforge/tokenizer.h"

#define DEFAULT_CORPUS "/usr/share/games/fortunes"
#define MAX_FILES 4096

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Text files of a corpus directory, sorted: regular files, not fortune index files (.dat) and
 * not links (the .u8 names are links to the same text). */
static lmf_status list_corpus(const char *dir, char ***out, int *n_out) {
    DIR *d = opendir(dir);
    if (!d)
        return lmf_fail(LMF_ERR_IO, "corpus %s: %s%s", dir, strerror(errno),
                        strcmp(dir, DEFAULT_CORPUS) == 0
                            ? " (install it with: sudo apt-get install fortunes, or pass --data)"
                            : "");
    char **files = calloc(MAX_FILES, sizeof(char *));
    int n = 0;
    struct dirent *e;
    while (files && (e = readdir(d)) != NULL && n < MAX_FILES) {
        const char *nm = e->d_name;
        size_t l = strlen(nm);
        if (nm[0] == '.' || (l > 4 && strcmp(nm + l - 4, ".dat") == 0)) continue;
        char p[4096];
        struct stat st;
        snprintf(p, sizeof p, "%s/%s", dir, nm);
        if (lstat(p, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size == 0) continue;
        files[n++] = strdup(p);
    }
    closedir(d);
    if (!files) return lmf_fail(LMF_ERR_NOMEM, "cannot list %s", dir);
    if (n == 0) {
        free(files);
        return lmf_fail(LMF_ERR_ARG, "corpus %s is empty: it holds no non-empty text files", dir);
    }
    qsort(files, (size_t)n, sizeof(char *), cmp_str);
    *out = files;
    *n_out = n;
    return LMF_OK;
}

static void free_list(char **f, int n) {
    for (int i = 0; i < n; i++) free(f[i]);
    free(f);
}

/* Tokenizer for the default data: the one given, the one an earlier run trained here, or a
 * new one (bpe_vocab ids; with 0, the 256 byte tokens and <|endoftext|> only). */
static lmf_status default_tokenizer(const lmf_default_data *d, const char *const *files,
                                    int n_files, const char *tokdir, lmf_tokenizer **tok) {
    char probe[4200];
    snprintf(probe, sizeof probe, "%s/tokenizer.json", tokdir);
    if (d->tokenizer) return lmf_tok_load(d->tokenizer, tok);
    int want = d->bpe_vocab > 0 ? d->bpe_vocab : 257;
    if (lmf_file_exists(probe)) {
        LMF_TRY(lmf_tok_load(tokdir, tok));
        if (lmf_tok_vocab_size(*tok) == want) return LMF_OK;
        lmf_tok_free(*tok); /* a different size was asked for: train anew */
        *tok = NULL;
    }
    if (!d->quiet && want > 257)
        fprintf(stderr, "training a %d-token BPE vocabulary on %d files...\n", want, n_files);
    lmf_tok_train_opts o = {want, NULL, 0, 0};
    LMF_TRY(lmf_tok_train_files(files, n_files, &o, tok));
    return lmf_tok_save(*tok, tokdir);
}

/* Documents are the fortunes: records separated by lines holding only "%"; the last 5% go to
 * validation. Shards made by an earlier run with the same tokenizer are reused. */
static lmf_status lmf_default_data_prepare(const lmf_default_data *d, const char *const *files,
                                           int n_files, const char *tokdir, const char *datadir,
                                           const char *train_path, const char *val_path,
                                           int *vocab_size) {
    lmf_tokenizer *tok = NULL;
    char stamp[4200];
    snprintf(stamp, sizeof stamp, "%s/tokenizer.json", tokdir);
    int had_tok = lmf_file_exists(stamp) && !d->tokenizer;
    LMF_TRY(default_tokenizer(d, files, n_files, tokdir, &tok));
    *vocab_size = lmf_tok_vocab_size(tok);
    struct stat ts, ds;
    int fresh = had_tok && lmf_file_exists(train_path) && lmf_file_exists(val_path) &&
                stat(stamp, &ts) == 0 && stat(train_path, &ds) == 0 &&
                ds.st_mtime >= ts.st_mtime;
    lmf_status s = LMF_OK;
    if (!fresh) {
        lmf_prepare_opts po;
        memset(&po, 0, sizeof po);
        po.tok = tok;
        po.inputs = files;
        po.n_inputs = n_files;
        po.out_dir = datadir;
        po.val_fraction = 0.05;
        po.doc_separator = "%";
        lmf_prepare_stats st;
        s = lmf_data_prepare(&po, &st);
        if (s == LMF_OK && st.val_tokens == 0)
            s = lmf_fail(LMF_ERR_ARG, "the corpus is empty or too small: it needs at least two "
                         "documents (records separated by '%%' lines)");
        if (s == LMF_OK && !d->quiet)
            fprintf(stderr, "default data: %llu documents, %llu train + %llu val tokens in %s\n",
                    (unsigned long long)st.docs, (unsigned long long)st.train_tokens,
                    (unsigned long long)st.val_tokens, datadir);
    }
    lmf_tok_free(tok);
    return s;
}

lmf_status lmf_cli_default_data(const lmf_default_data *d, char *train_path, char *val_path,
                                size_t cap, int *vocab_size) {
    const char *corpus = d->corpus ? d->corpus : DEFAULT_CORPUS;
    char datadir[4096], tokdir[4096];
    snprintf(datadir, sizeof datadir, "%s/data", d->run_dir);
    snprintf(tokdir, sizeof tokdir, "%s/tokenizer", d->run_dir);
    snprintf(train_path, cap, "%s/train.bin", datadir);
    snprintf(val_path, cap, "%s/val.bin", datadir);
    char **files = NULL;
    int n = 0;
    LMF_TRY(list_corpus(corpus, &files, &n));
    lmf_status s = lmf_default_data_prepare(d, (const char *const *)files, n, tokdir, datadir,
                                            train_path, val_path, vocab_size);
    free_list(files, n);
    return s;
}

/* The default training data: fortunes corpus -> tokenizer -> train/val shards in the run dir. */
#include "cli/default_data.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "lmforge/data.h"
#include "lmforge/fsutil.h"
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

/* Append the ids of one document (tokenizer or raw bytes) and an end-of-text id. */
static lmf_status encode_doc(const lmf_tokenizer *tok, const char *text, size_t len, uint32_t eot,
                             uint32_t **ids, size_t *n, size_t *cap) {
    size_t need = *n + len + 1;
    if (need > *cap) {
        size_t nc = need * 2;
        uint32_t *ni = realloc(*ids, nc * sizeof(uint32_t));
        if (!ni) return lmf_fail(LMF_ERR_NOMEM, "cannot hold the tokenized corpus");
        *ids = ni;
        *cap = nc;
    }
    size_t got = 0;
    if (tok) {
        LMF_TRY(lmf_tok_encode(tok, text, len, 0, *ids + *n, *cap - *n, &got));
    } else {
        for (size_t i = 0; i < len; i++) (*ids)[*n + i] = (unsigned char)text[i];
        got = len;
    }
    *n += got;
    (*ids)[(*n)++] = eot;
    return LMF_OK;
}

/* Documents are the fortunes: records separated by lines holding only "%". */
static lmf_status lmf_default_data_prepare(const lmf_default_data *d, const char *const *files,
                                           int n_files, const char *tokdir, const char *datadir,
                                           const char *train_path, const char *val_path,
                                           int *vocab_size) {
    lmf_tokenizer *tok = NULL;
    struct stat st;
    char probe[4200];
    snprintf(probe, sizeof probe, "%s/tokenizer.json", tokdir);
    if (d->tokenizer) {
        LMF_TRY(lmf_tok_load(d->tokenizer, &tok));
    } else if (d->bpe_vocab > 0 && stat(probe, &st) == 0) {
        LMF_TRY(lmf_tok_load(tokdir, &tok));
    } else if (d->bpe_vocab > 0) {
        if (!d->quiet) fprintf(stderr, "training a %d-token BPE vocabulary on %d files...\n", d->bpe_vocab, n_files);
        lmf_tok_train_opts o = {d->bpe_vocab, NULL, 0, 0};
        LMF_TRY(lmf_tok_train_files(files, n_files, &o, &tok));
        lmf_status s = lmf_tok_save(tok, tokdir);
        if (s != LMF_OK) { lmf_tok_free(tok); return s; }
    }
    if (lmf_file_exists(train_path) && lmf_file_exists(val_path) && (tok || d->bpe_vocab == 0)) {
        *vocab_size = tok ? lmf_tok_vocab_size(tok) : 257;
        lmf_tok_free(tok);
        return LMF_OK; /* made by an earlier run in this directory */
    }
    uint32_t eot = tok ? (uint32_t)lmf_tok_eot(tok) : 256;
    int vocab = tok ? lmf_tok_vocab_size(tok) : 257;
    /* gather documents, then the last 5% (at least one) go to validation */
    typedef struct { const char *p; size_t n; } doc;
    doc *docs = NULL;
    size_t nd = 0, capd = 0;
    char **bufs = calloc((size_t)n_files, sizeof(char *));
    lmf_status s = bufs ? LMF_OK : lmf_fail(LMF_ERR_NOMEM, "out of memory");
    for (int f = 0; s == LMF_OK && f < n_files; f++) {
        size_t len;
        s = lmf_read_file(files[f], &bufs[f], &len, (size_t)1 << 32);
        const char *p = bufs[f], *end = bufs[f] + (s == LMF_OK ? len : 0);
        while (s == LMF_OK && p < end) {
            const char *q = p;
            /* find "\n%\n" or the end */
            while (q < end && !(q[0] == '%' && (q == bufs[f] || q[-1] == '\n') && (q + 1 == end || q[1] == '\n'))) q++;
            if (q > p) {
                if (nd == capd) {
                    capd = capd ? capd * 2 : 1024;
                    doc *nd2 = realloc(docs, capd * sizeof(doc));
                    if (!nd2) { s = lmf_fail(LMF_ERR_NOMEM, "out of memory"); break; }
                    docs = nd2;
                }
                docs[nd].p = p;
                docs[nd].n = (size_t)(q - p);
                nd++;
            }
            p = q + 2;
        }
    }
    if (s == LMF_OK && nd < 2) s = lmf_fail(LMF_ERR_ARG, "the corpus is empty: it holds fewer than two documents");
    size_t nval = nd / 20 ? nd / 20 : 1;
    uint32_t *ids = NULL;
    size_t n = 0, cap = 0, ntrain = 0;
    for (size_t i = 0; s == LMF_OK && i < nd; i++) {
        s = encode_doc(tok, docs[i].p, docs[i].n, eot, &ids, &n, &cap);
        if (i + 1 == nd - nval) ntrain = n;
    }
    if (s == LMF_OK) s = lmf_mkdir_p(datadir);
    int tb = vocab > 65536 ? 4 : 2;
    if (s == LMF_OK) s = lmf_shard_write(train_path, ids, ntrain, tb);
    if (s == LMF_OK) s = lmf_shard_write(val_path, ids + ntrain, n - ntrain, tb);
    if (s == LMF_OK && !d->quiet)
        fprintf(stderr, "default data: %zu documents, %zu train + %zu val tokens in %s\n", nd,
                ntrain, n - ntrain, datadir);
    *vocab_size = vocab;
    for (int f = 0; bufs && f < n_files; f++) free(bufs[f]);
    free(bufs);
    free(docs);
    free(ids);
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

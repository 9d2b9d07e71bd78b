/* Corpus directories: the text files of a directory, sorted, as inputs for training and preparation. */
#include "lmforge/prepare.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_FILES 4096

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void lmf_data_corpus_free(lmf_corpus *c) {
    if (!c) return;
    for (int i = 0; i < c->n; i++) free(c->paths[i]);
    free(c->paths);
    c->paths = NULL;
    c->n = 0;
}

lmf_status lmf_data_corpus_list(const char *dir, lmf_corpus *out) {
    out->paths = NULL;
    out->n = 0;
    DIR *d = opendir(dir);
    if (!d)
        return lmf_fail(LMF_ERR_IO, "corpus %s: %s%s", dir, strerror(errno),
                        strcmp(dir, LMF_DEFAULT_CORPUS) == 0
                            ? " (install it with: sudo apt-get install fortunes, or pass --data)"
                            : "");
    lmf_corpus c = {calloc(MAX_FILES, sizeof(char *)), 0};
    int nomem = !c.paths;
    struct dirent *e;
    while (!nomem && (e = readdir(d)) != NULL && c.n < MAX_FILES) {
        const char *nm = e->d_name;
        size_t l = strlen(nm);
        if (nm[0] == '.' || (l > 4 && strcmp(nm + l - 4, ".dat") == 0)) continue;
        char p[4096];
        struct stat st;
        snprintf(p, sizeof p, "%s/%s", dir, nm);
        if (lstat(p, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size == 0) continue;
        if ((c.paths[c.n] = strdup(p)) == NULL) nomem = 1;
        else c.n++;
    }
    closedir(d);
    if (nomem) {
        lmf_data_corpus_free(&c);
        return lmf_fail(LMF_ERR_NOMEM, "cannot list %s", dir);
    }
    if (c.n == 0) {
        lmf_data_corpus_free(&c);
        return lmf_fail(LMF_ERR_ARG, "corpus %s is empty: it holds no non-empty text files", dir);
    }
    qsort(c.paths, (size_t)c.n, sizeof(char *), cmp_str);
    *out = c;
    return LMF_OK;
}

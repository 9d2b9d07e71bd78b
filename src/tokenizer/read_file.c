/* Reading a whole input file (a vocabulary file or training text) into memory, and parsing one. */
/* Messages name the file first ("PATH: cannot open: ..."), as every tokenizer message does. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "lmforge/fsutil.h"

#include "tokenizer/tok_internal.h"

lmf_status lmf_tok_read_file(const char *path, char **data, size_t *len) {
    *data = NULL;
    *len = 0;
    struct stat sb;
    /* a FIFO, directory or device is refused by kind before fopen would wait on a FIFO */
    if (stat(path, &sb) != 0) return lmf_fail(LMF_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    if (!S_ISREG(sb.st_mode))
        return lmf_fail(LMF_ERR_IO, "%s: is %s, not a regular file; give the path of a file", path,
                        lmf_file_kind(sb.st_mode));
    FILE *f = fopen(path, "rb");
    if (!f) return lmf_fail(LMF_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        fclose(f);
        return lmf_fail(LMF_ERR_IO, "%s: not a regular file", path);
    }
    size_t n = (size_t)sb.st_size;
    char *buf = malloc(n + 1);
    if (!buf) {
        fclose(f);
        return lmf_fail(LMF_ERR_NOMEM, "%s: out of memory reading %zu bytes", path, n);
    }
    size_t got = fread(buf, 1, n, f);
    int bad = ferror(f);
    fclose(f);
    if (bad || got != n) {
        free(buf);
        return lmf_fail(LMF_ERR_IO, "%s: read failed", path);
    }
    buf[n] = '\0';
    *data = buf;
    *len = n;
    return LMF_OK;
}

lmf_status lmf_tok_load_file(const char *path, lmf_tok_parse_fn parse, lmf_tokenizer **out) {
    char *data = NULL;
    size_t len = 0;
    *out = NULL;
    LMF_TRY(lmf_tok_read_file(path, &data, &len));
    lmf_status st = parse(data, len, path, out);
    free(data);
    return st;
}

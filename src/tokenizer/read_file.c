/* Reading a whole input file (a vocabulary file or training text) into memory. */
/* Messages name the file first ("PATH: cannot open: ..."), as every tokenizer message does. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lmforge/fsutil.h"

#include "tokenizer/tok_internal.h"

lmf_status lmf_tok_read_file(const char *path, char **data, size_t *len) {
    *data = NULL;
    *len = 0;
    int fd;
    LMF_TRY(lmf_open_regular(path, NULL, &fd)); /* a FIFO is refused, not waited on */
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        lmf_status s = lmf_fail(LMF_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        close(fd);
        return s;
    }
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0) {
        fclose(f);
        return lmf_fail(LMF_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
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

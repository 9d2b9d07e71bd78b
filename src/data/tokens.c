/* Token files (llm.c .bin layout, version 1 uint16 / version 2 uint32): validate, map, write. */
#include "lmforge/data.h"
#include "lmforge/fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define V1_MAX_TOKENS 0x7fffffffULL /* llm.c reads header[2] as int32 */

struct lmf_tokens {
    uint8_t *map;       /* whole file */
    size_t map_len;
    const uint8_t *tok; /* map + 1024 */
    uint64_t n;
    int tb;             /* bytes per token: 2 or 4 */
    int have_max;
    uint32_t max_tok;
    char *path;
};

static uint32_t le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_le32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

lmf_status lmf_tokens_validate_header(const void *header, size_t header_len, uint64_t file_size,
                                     const char *what, uint64_t *n_tokens, int *token_bytes) {
    const uint8_t *h = header;
    if (file_size < LMF_TOKENS_HEADER_BYTES || header_len < LMF_TOKENS_HEADER_BYTES)
        return lmf_fail(LMF_ERR_FORMAT,
                        "%s: not a token file: %llu bytes, shorter than the %d-byte header", what,
                        (unsigned long long)file_size, LMF_TOKENS_HEADER_BYTES);
    uint32_t magic = le32(h), version = le32(h + 4), lo = le32(h + 8), hi = le32(h + 12);
    if (magic != LMF_TOKENS_MAGIC)
        return lmf_fail(LMF_ERR_FORMAT,
                        "%s: not a token file: magic number %u, expected %u (make token files with "
                        "'lmforge data prepare' or llm.c's data scripts)",
                        what, magic, (unsigned)LMF_TOKENS_MAGIC);
    int tb;
    if (version == 1)
        tb = 2;
    else if (version == 2)
        tb = 4;
    else
        return lmf_fail(LMF_ERR_FORMAT,
                        "%s: token file version %u is not supported (1: uint16 tokens, 2: uint32 "
                        "tokens)",
                        what, version);
    if (version == 1 && hi != 0)
        return lmf_fail(LMF_ERR_FORMAT,
                        "%s: version-1 token file has header word 3 = %u, expected 0", what, hi);
    uint64_t count = (uint64_t)hi << 32 | lo;
    /* count * tb + 1024 must not wrap: count < 2^64 / 4 always holds for a real file size */
    if (count > (UINT64_MAX - LMF_TOKENS_HEADER_BYTES) / (uint64_t)tb)
        return lmf_fail(LMF_ERR_FORMAT, "%s: token count %llu in the header is impossibly large",
                        what, (unsigned long long)count);
    uint64_t expect = LMF_TOKENS_HEADER_BYTES + count * (uint64_t)tb;
    if (expect != file_size)
        return lmf_fail(LMF_ERR_FORMAT,
                        "%s: header says %llu tokens of %d bytes, so the file should be %llu "
                        "bytes, but it is %llu (%s)",
                        what, (unsigned long long)count, tb, (unsigned long long)expect,
                        (unsigned long long)file_size,
                        file_size < expect ? "truncated" : "extra bytes at the end");
    *n_tokens = count;
    *token_bytes = tb;
    return LMF_OK;
}

lmf_status lmf_tokens_open(const char *path, lmf_tokens **out) {
    *out = NULL;
    int fd;
    LMF_TRY(lmf_open_regular(path, "token file", &fd));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        lmf_status s = lmf_fail(LMF_ERR_IO, "%s is not a readable regular file", path);
        close(fd);
        return s;
    }
    uint64_t size = (uint64_t)st.st_size;
    uint8_t hdr[LMF_TOKENS_HEADER_BYTES];
    size_t hl = size < sizeof hdr ? (size_t)size : sizeof hdr;
    lmf_status s = lmf_pread_all(fd, hdr, hl, 0, path);
    uint64_t n = 0;
    int tb = 0;
    if (s == LMF_OK) s = lmf_tokens_validate_header(hdr, hl, size, path, &n, &tb);
    if (s == LMF_OK && size > (uint64_t)SIZE_MAX)
        s = lmf_fail(LMF_ERR_IO, "%s is too large to map on this machine", path);
    if (s != LMF_OK) {
        close(fd);
        return s;
    }
    void *map = mmap(NULL, (size_t)size, PROT_READ, MAP_PRIVATE, fd, 0);
    int e = errno;
    close(fd);
    if (map == MAP_FAILED) return lmf_fail(LMF_ERR_IO, "cannot map %s: %s", path, strerror(e));
    lmf_tokens *sh = calloc(1, sizeof *sh);
    if (!sh) {
        munmap(map, (size_t)size);
        return lmf_fail(LMF_ERR_NOMEM, "out of memory opening %s", path);
    }
    sh->map = map;
    sh->map_len = (size_t)size;
    sh->tok = sh->map + LMF_TOKENS_HEADER_BYTES;
    sh->n = n;
    sh->tb = tb;
    sh->path = strdup(path);
    if (!sh->path) {
        lmf_tokens_close(sh);
        return lmf_fail(LMF_ERR_NOMEM, "out of memory opening %s", path);
    }
    *out = sh;
    return LMF_OK;
}

void lmf_tokens_close(lmf_tokens *s) {
    if (!s) return;
    munmap(s->map, s->map_len);
    free(s->path);
    free(s);
}

uint64_t lmf_tokens_num_tokens(const lmf_tokens *s) { return s->n; }
int lmf_tokens_token_bytes(const lmf_tokens *s) { return s->tb; }
const char *lmf_tokens_path(const lmf_tokens *s) { return s->path; }

void lmf_tokens_read(const lmf_tokens *s, uint64_t start, size_t n, int32_t *dst) {
    LMF_ASSERT(start <= s->n && n <= s->n - start);
    if (s->tb == 2) {
        const uint8_t *p = s->tok + start * 2;
        for (size_t i = 0; i < n; i++) dst[i] = (int32_t)((uint32_t)p[2 * i] | (uint32_t)p[2 * i + 1] << 8);
    } else {
        const uint8_t *p = s->tok + start * 4;
        for (size_t i = 0; i < n; i++) dst[i] = (int32_t)le32(p + 4 * i);
    }
}

uint32_t lmf_tokens_max_token(lmf_tokens *s) {
    if (s->have_max) return s->max_tok;
    uint32_t mx = 0;
    if (s->tb == 2) {
        for (uint64_t i = 0; i < s->n; i++) {
            uint32_t v = (uint32_t)s->tok[2 * i] | (uint32_t)s->tok[2 * i + 1] << 8;
            mx = v > mx ? v : mx;
        }
    } else {
        for (uint64_t i = 0; i < s->n; i++) {
            uint32_t v = le32(s->tok + 4 * i);
            mx = v > mx ? v : mx;
        }
    }
    s->max_tok = mx;
    s->have_max = 1;
    return mx;
}

/* ---- writing ---- */

struct lmf_tokens_writer {
    int fd;
    int tb;
    uint64_t n;
    char path[4096];
    char tmp[4200];
};

#define WRITE_CHUNK 16384 /* tokens converted per write() */

lmf_status lmf_tokens_writer_open(const char *path, int token_bytes, lmf_tokens_writer **out) {
    *out = NULL;
    if (token_bytes != 2 && token_bytes != 4)
        return lmf_fail(LMF_ERR_ARG, "%s: token size must be 2 (version 1) or 4 (version 2), got %d",
                        path, token_bytes);
    if (strlen(path) >= sizeof((lmf_tokens_writer *)0)->path)
        return lmf_fail(LMF_ERR_ARG, "path too long: %s", path);
    lmf_tokens_writer *w = calloc(1, sizeof *w);
    if (!w) return lmf_fail(LMF_ERR_NOMEM, "out of memory writing %s", path);
    strcpy(w->path, path);
    w->tb = token_bytes;
    lmf_status s = lmf_tmp_path(w->tmp, sizeof w->tmp, path);
    if (s != LMF_OK) {
        free(w);
        return s;
    }
    w->fd = open(w->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (w->fd < 0) {
        s = lmf_fail(LMF_ERR_IO, "cannot create %s: %s", w->tmp, strerror(errno));
        free(w);
        return s;
    }
    uint8_t zero[LMF_TOKENS_HEADER_BYTES] = {0}; /* placeholder, filled in on close */
    s = lmf_write_all(w->fd, zero, sizeof zero, w->tmp);
    if (s != LMF_OK) {
        lmf_tokens_writer_abort(w);
        return s;
    }
    *out = w;
    return LMF_OK;
}

lmf_status lmf_tokens_writer_append(lmf_tokens_writer *w, const uint32_t *tokens, size_t n) {
    if (w->tb == 2) {
        for (size_t i = 0; i < n; i++)
            if (tokens[i] > 0xffff)
                return lmf_fail(LMF_ERR_ARG,
                                "%s: token id %u (at position %llu) does not fit in a uint16 "
                                "(version 1) token file; write 4-byte tokens (version 2) instead",
                                w->path, tokens[i], (unsigned long long)(w->n + i));
        if (n > V1_MAX_TOKENS - w->n)
            return lmf_fail(LMF_ERR_ARG,
                            "%s: a version-1 token file holds at most %llu tokens; split the data "
                            "into several token files or write version 2",
                            w->path, V1_MAX_TOKENS);
    }
    uint8_t buf[WRITE_CHUNK * 4];
    for (size_t off = 0; off < n; off += WRITE_CHUNK) {
        size_t m = n - off < WRITE_CHUNK ? n - off : WRITE_CHUNK;
        const uint32_t *t = tokens + off;
        if (w->tb == 2) {
            for (size_t i = 0; i < m; i++) {
                buf[2 * i] = (uint8_t)t[i];
                buf[2 * i + 1] = (uint8_t)(t[i] >> 8);
            }
        } else {
            for (size_t i = 0; i < m; i++) put_le32(buf + 4 * i, t[i]);
        }
        LMF_TRY(lmf_write_all(w->fd, buf, m * (size_t)w->tb, w->tmp));
        w->n += m;
    }
    return LMF_OK;
}

uint64_t lmf_tokens_writer_count(const lmf_tokens_writer *w) { return w->n; }

lmf_status lmf_tokens_writer_close(lmf_tokens_writer *w) {
    uint8_t hdr[LMF_TOKENS_HEADER_BYTES] = {0};
    put_le32(hdr, LMF_TOKENS_MAGIC);
    put_le32(hdr + 4, w->tb == 2 ? 1u : 2u);
    put_le32(hdr + 8, (uint32_t)w->n);
    put_le32(hdr + 12, (uint32_t)(w->n >> 32));
    lmf_status s = LMF_OK;
    if (pwrite(w->fd, hdr, sizeof hdr, 0) != (ssize_t)sizeof hdr)
        s = lmf_fail(LMF_ERR_IO, "cannot write the header of %s: %s", w->tmp, strerror(errno));
    if (s != LMF_OK) {
        lmf_tokens_writer_abort(w);
        return s;
    }
    s = lmf_commit_tmp(w->fd, w->tmp, w->path);
    free(w);
    return s;
}

void lmf_tokens_writer_abort(lmf_tokens_writer *w) {
    if (!w) return;
    close(w->fd);
    unlink(w->tmp);
    free(w);
}

lmf_status lmf_tokens_write(const char *path, const uint32_t *tokens, uint64_t n, int token_bytes) {
    if (n > (uint64_t)SIZE_MAX) return lmf_fail(LMF_ERR_ARG, "%s: too many tokens", path);
    lmf_tokens_writer *w = NULL;
    LMF_TRY(lmf_tokens_writer_open(path, token_bytes, &w));
    lmf_status s = lmf_tokens_writer_append(w, tokens, (size_t)n);
    if (s != LMF_OK) {
        lmf_tokens_writer_abort(w);
        return s;
    }
    return lmf_tokens_writer_close(w);
}

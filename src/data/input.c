/* Inputs of data preparation read as streams: zstd-compressed files (decompressed through
 * libzstd a block at a time) and JSON Lines (the text of one key per line, documents separated
 * by NUL bytes), so memory does not grow with the file; errors name the file and line; the
 * UTF-8 check of plain text. */
#include "data/input.h"

#include <errno.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>
#include <zstd.h>

#define READ_BYTES ((size_t)1 << 17)  /* compressed (or raw) bytes read at a time */
#define LINE_MAX_BYTES ((size_t)1 << 30) /* the longest JSON Lines line */

struct lmf_input_reader {
    const char *path;
    lmf_input_kind kind;
    const char *key;
    FILE *f;
    ZSTD_DStream *z;
    char *in;              /* [READ_BYTES] compressed bytes read, in[in_pos..in_len) unused */
    size_t in_pos, in_len;
    uint64_t in_total;     /* compressed bytes consumed before in[0] */
    size_t zret;           /* the last ZSTD_decompressStream result: 0 at a frame's end */
    int file_eof;          /* the file is read to its end */
    uint64_t decoded;      /* decompressed bytes so far */
    char *line;            /* JSON Lines: decoded bytes not yet parsed, line[0..line_len) */
    size_t line_len, line_cap;
    size_t lineno;         /* lines parsed */
};

static int ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcmp(s + a - b, suf) == 0;
}

lmf_input_kind lmf_input_kind_of(const char *path) {
    int zst = ends_with(path, ".zst");
    size_t n = strlen(path) - (zst ? 4 : 0);
    int jsonl = (n >= 6 && strncmp(path + n - 6, ".jsonl", 6) == 0);
    if (jsonl) return zst ? LMF_INPUT_JSONL_ZSTD : LMF_INPUT_JSONL;
    return zst ? LMF_INPUT_TEXT_ZSTD : LMF_INPUT_TEXT;
}

size_t lmf_input_utf8_check(const char *s, size_t n) {
    const uint8_t *u = (const uint8_t *)s;
    size_t i = 0;
    while (i < n) {
        if (i + 8 <= n) { /* eight ASCII bytes at a time */
            uint64_t w;
            memcpy(&w, u + i, 8);
            if (!(w & 0x8080808080808080ull)) {
                i += 8;
                continue;
            }
        }
        if (u[i] < 0x80) {
            i++;
            continue;
        }
        utf8proc_int32_t cp;
        utf8proc_ssize_t k = utf8proc_iterate(u + i, (utf8proc_ssize_t)(n - i), &cp);
        if (k <= 0) return i;
        i += (size_t)k;
    }
    return n;
}

/* make room for `more` bytes after *len in a growable buffer */
static lmf_status reserve(const char *path, char **buf, size_t *len, size_t *cap, size_t more) {
    if (*cap - *len >= more + 1) return LMF_OK;
    size_t c = *cap ? *cap : 65536;
    while (c - *len < more + 1) c *= 2;
    char *nb = realloc(*buf, c);
    if (!nb) return lmf_fail(LMF_ERR_NOMEM, "%s: out of memory decoding", path);
    *buf = nb;
    *cap = c;
    return LMF_OK;
}

lmf_status lmf_input_open(const char *path, lmf_input_kind kind, const char *jsonl_key,
                          lmf_input_reader **out) {
    *out = NULL;
    lmf_input_reader *r = calloc(1, sizeof *r);
    if (!r || !(r->in = malloc(READ_BYTES))) {
        free(r);
        return lmf_fail(LMF_ERR_NOMEM, "%s: out of memory", path);
    }
    r->path = path;
    r->kind = kind;
    r->key = jsonl_key ? jsonl_key : "text";
    r->f = fopen(path, "rb");
    lmf_status s = LMF_OK;
    if (!r->f) s = lmf_fail(LMF_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    if (s == LMF_OK && (kind == LMF_INPUT_TEXT_ZSTD || kind == LMF_INPUT_JSONL_ZSTD)) {
        r->z = ZSTD_createDStream();
        if (!r->z) s = lmf_fail(LMF_ERR_NOMEM, "%s: out of memory decompressing", path);
        else ZSTD_initDStream(r->z);
    }
    if (s != LMF_OK) {
        lmf_input_close(r);
        return s;
    }
    *out = r;
    return LMF_OK;
}

void lmf_input_close(lmf_input_reader *r) {
    if (!r) return;
    if (r->f) fclose(r->f);
    ZSTD_freeDStream(r->z);
    free(r->in);
    free(r->line);
    free(r);
}

/* Decoded bytes of the file (decompressed, or as they are) appended to buf: up to `want` of
 * them, fewer at the end (*eof then set). */
static lmf_status decode_some(lmf_input_reader *r, char **buf, size_t *len, size_t *cap,
                              size_t want, int *eof) {
    *eof = 0;
    LMF_TRY(reserve(r->path, buf, len, cap, want));
    size_t target = *len + want;
    while (*len < target) {
        if (r->in_pos == r->in_len && !r->file_eof) { /* refill */
            r->in_total += r->in_len;
            r->in_len = fread(r->in, 1, READ_BYTES, r->f);
            r->in_pos = 0;
            if (r->in_len < READ_BYTES) {
                if (ferror(r->f))
                    return lmf_fail(LMF_ERR_IO, "%s: cannot read: %s", r->path, strerror(errno));
                r->file_eof = 1;
            }
        }
        if (!r->z) { /* not compressed: copy */
            size_t m = r->in_len - r->in_pos;
            if (m > target - *len) m = target - *len;
            memcpy(*buf + *len, r->in + r->in_pos, m);
            r->in_pos += m;
            *len += m;
            r->decoded += m;
        } else {
            ZSTD_inBuffer in = {r->in, r->in_len, r->in_pos};
            ZSTD_outBuffer ob = {*buf + *len, target - *len, 0};
            size_t ret = ZSTD_decompressStream(r->z, &ob, &in);
            if (ZSTD_isError(ret))
                return lmf_fail(LMF_ERR_FORMAT, "%s: not a valid zstd stream at compressed byte "
                                "%llu: %s", r->path, (unsigned long long)(r->in_total + in.pos),
                                ZSTD_getErrorName(ret));
            if (in.pos > r->in_pos || ob.pos > 0) r->zret = ret; /* a call that did nothing
                                                                  * only asks for a next frame */
            r->in_pos = in.pos;
            *len += ob.pos;
            r->decoded += ob.pos;
            /* the decoder may hold output back while input remains: go on until it gives none */
            if (ob.pos > 0 || r->in_pos < r->in_len) continue;
        }
        if (r->in_pos == r->in_len && r->file_eof) {
            if (r->z && r->zret != 0) /* input used up inside a frame */
                return lmf_fail(LMF_ERR_FORMAT, "%s: truncated zstd stream: the file ends inside a "
                                "frame after %llu decompressed bytes; the file is incomplete, "
                                "fetch or compress it again", r->path,
                                (unsigned long long)r->decoded);
            *eof = 1;
            break;
        }
    }
    (*buf)[*len] = '\0';
    return LMF_OK;
}

/* one JSON Lines line (without its newline): its text and a NUL appended to buf */
static lmf_status parse_line(lmf_input_reader *r, const char *src, size_t n, char **buf,
                             size_t *len, size_t *cap) {
    r->lineno++;
    size_t a = 0, b = n;
    while (a < b && (src[a] == ' ' || src[a] == '\t' || src[a] == '\r')) a++;
    if (a == b) return LMF_OK; /* blank line */
    json_error_t e;
    json_t *j = json_loadb(src + a, b - a, JSON_REJECT_DUPLICATES, &e);
    if (!j)
        return lmf_fail(LMF_ERR_FORMAT, "%s:%zu: not valid JSON: %s (column %d)", r->path,
                        r->lineno, e.text, e.column);
    json_t *v = json_object_get(j, r->key);
    if (!json_is_object(j) || !json_is_string(v)) {
        json_decref(j);
        return lmf_fail(LMF_ERR_FORMAT, "%s:%zu: expected a JSON object with a string \"%s\" "
                        "(choose the field with --jsonl-key)", r->path, r->lineno, r->key);
    }
    size_t t = json_string_length(v);
    lmf_status s = LMF_OK;
    if (t > 0) { /* an empty text is no document */
        s = reserve(r->path, buf, len, cap, t + 1);
        if (s == LMF_OK) {
            memcpy(*buf + *len, json_string_value(v), t);
            *len += t;
            (*buf)[(*len)++] = '\0';
            (*buf)[*len] = '\0';
        }
    }
    json_decref(j);
    return s;
}

lmf_status lmf_input_read(lmf_input_reader *r, char **buf, size_t *len, size_t *cap, size_t want,
                          int *eof) {
    if (r->kind == LMF_INPUT_TEXT || r->kind == LMF_INPUT_TEXT_ZSTD)
        return decode_some(r, buf, len, cap, want, eof);
    *eof = 0;
    size_t start = *len;
    while (*len - start < want && !*eof) {
        int in_eof = 0;
        LMF_TRY(decode_some(r, &r->line, &r->line_len, &r->line_cap,
                            want < READ_BYTES ? want : READ_BYTES, &in_eof));
        size_t pos = 0;
        for (;;) { /* the whole lines in r->line */
            char *nl = memchr(r->line + pos, '\n', r->line_len - pos);
            if (!nl) break;
            size_t end = (size_t)(nl - r->line);
            LMF_TRY(parse_line(r, r->line + pos, end - pos, buf, len, cap));
            pos = end + 1;
        }
        if (in_eof && pos < r->line_len) { /* the last line, without a newline */
            LMF_TRY(parse_line(r, r->line + pos, r->line_len - pos, buf, len, cap));
            pos = r->line_len;
        }
        memmove(r->line, r->line + pos, r->line_len - pos);
        r->line_len -= pos;
        if (r->line_len > LINE_MAX_BYTES)
            return lmf_fail(LMF_ERR_FORMAT, "%s:%zu: a line longer than %zu bytes; split the "
                            "document", r->path, r->lineno + 1, LINE_MAX_BYTES);
        *eof = in_eof;
    }
    LMF_TRY(reserve(r->path, buf, len, cap, 0));
    (*buf)[*len] = '\0';
    return LMF_OK;
}

uint64_t lmf_input_decoded(const lmf_input_reader *r) { return r->decoded; }

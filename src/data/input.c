/* Inputs of data preparation that are not plain text on disk: zstd-compressed files (read whole
 * through libzstd) and JSON Lines (one document per line, the text of one key), decoded into
 * memory as documents separated by NUL bytes; errors name the file and line. */
#include "data/input.h"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>
#include <zstd.h>

#include "lmforge/fsutil.h"

#define INPUT_MAX ((size_t)1 << 36) /* bytes of one input file, compressed or decoded */

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

/* the whole decompressed content of a zstd file */
static lmf_status unzstd(const char *path, const char *src, size_t len, char **out, size_t *out_len) {
    ZSTD_DStream *z = ZSTD_createDStream();
    size_t cap = len * 4 + 65536, n = 0;
    char *buf = malloc(cap + 1);
    if (!z || !buf) {
        ZSTD_freeDStream(z);
        free(buf);
        return lmf_fail(LMF_ERR_NOMEM, "%s: out of memory decompressing", path);
    }
    ZSTD_initDStream(z);
    ZSTD_inBuffer in = {src, len, 0};
    size_t ret = 0;
    lmf_status s = LMF_OK;
    while (in.pos < in.size) {
        if (cap - n < 65536) {
            if (cap > INPUT_MAX) {
                s = lmf_fail(LMF_ERR_ARG, "%s: decompresses to more than %zu bytes; split it",
                             path, INPUT_MAX);
                break;
            }
            char *nb = realloc(buf, cap * 2 + 1);
            if (!nb) {
                s = lmf_fail(LMF_ERR_NOMEM, "%s: out of memory decompressing", path);
                break;
            }
            buf = nb;
            cap *= 2;
        }
        ZSTD_outBuffer ob = {buf + n, cap - n, 0};
        ret = ZSTD_decompressStream(z, &ob, &in);
        if (ZSTD_isError(ret)) {
            s = lmf_fail(LMF_ERR_FORMAT, "%s: not a valid zstd stream at compressed byte %zu: %s",
                         path, in.pos, ZSTD_getErrorName(ret));
            break;
        }
        n += ob.pos;
    }
    if (s == LMF_OK && ret != 0) /* input used up inside a frame */
        s = lmf_fail(LMF_ERR_FORMAT, "%s: truncated zstd stream: the file ends inside a frame "
                     "after %zu decompressed bytes; the file is incomplete, fetch or compress it "
                     "again", path, n);
    ZSTD_freeDStream(z);
    if (s != LMF_OK) {
        free(buf);
        return s;
    }
    buf[n] = '\0';
    *out = buf;
    *out_len = n;
    return LMF_OK;
}

/* JSON Lines -> the texts of `key`, each followed by a NUL byte (written over src's own bytes:
 * a JSON string's text is never longer than its escaped form plus the line's other bytes) */
static lmf_status jsonl_docs(const char *path, char *src, size_t len, const char *key,
                             size_t *out_len) {
    size_t w = 0, line = 0;
    for (size_t pos = 0; pos < len;) {
        char *nl = memchr(src + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - src) : len;
        line++;
        size_t a = pos, b = end;
        while (a < b && (src[a] == ' ' || src[a] == '\t' || src[a] == '\r')) a++;
        pos = nl ? end + 1 : len;
        if (a == b) continue; /* blank line */
        json_error_t e;
        json_t *j = json_loadb(src + a, b - a, JSON_REJECT_DUPLICATES, &e);
        if (!j)
            return lmf_fail(LMF_ERR_FORMAT, "%s:%zu: not valid JSON: %s (column %d)", path, line,
                            e.text, e.column);
        json_t *v = json_object_get(j, key);
        if (!json_is_object(j) || !json_is_string(v)) {
            json_decref(j);
            return lmf_fail(LMF_ERR_FORMAT, "%s:%zu: expected a JSON object with a string \"%s\" "
                            "(choose the field with --jsonl-key)", path, line, key);
        }
        size_t n = json_string_length(v);
        if (n > 0) { /* an empty text is no document */
            LMF_ASSERT(w + n + 1 <= pos);
            memcpy(src + w, json_string_value(v), n);
            w += n;
            src[w++] = '\0';
        }
        json_decref(j);
    }
    *out_len = w;
    return LMF_OK;
}

lmf_status lmf_input_decode(const char *path, lmf_input_kind kind, const char *jsonl_key,
                            char **out, size_t *out_len) {
    *out = NULL;
    *out_len = 0;
    char *raw = NULL;
    size_t len = 0;
    LMF_TRY(lmf_read_file(path, &raw, &len, INPUT_MAX));
    lmf_status s = LMF_OK;
    if (kind == LMF_INPUT_TEXT_ZSTD || kind == LMF_INPUT_JSONL_ZSTD) {
        char *dec = NULL;
        s = unzstd(path, raw, len, &dec, &len);
        free(raw);
        raw = dec;
    }
    if (s == LMF_OK && (kind == LMF_INPUT_JSONL || kind == LMF_INPUT_JSONL_ZSTD))
        s = jsonl_docs(path, raw, len, jsonl_key ? jsonl_key : "text", &len);
    if (s != LMF_OK) {
        free(raw);
        return s;
    }
    *out = raw;
    *out_len = len;
    return LMF_OK;
}

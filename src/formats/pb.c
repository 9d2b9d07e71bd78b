/* Protocol-buffer wire-format encoder: counting, in-memory and buffered-file output. */
#include "formats/pb.h"

#include <stdlib.h>
#include <string.h>

#include "lmforge/fsutil.h"

#define PB_FILE_BUFFER (1u << 20)

void lmf_pb_init(lmf_pb *e, lmf_pb_mode mode, int fd, const char *path) {
    memset(e, 0, sizeof *e);
    e->mode = mode;
    e->fd = fd;
    e->path = path ? path : "(memory)";
    e->err = LMF_OK;
}

static void flush(lmf_pb *e) {
    if (e->err == LMF_OK && e->len > 0) e->err = lmf_write_all(e->fd, e->buf, e->len, e->path);
    e->len = 0;
}

static int reserve(lmf_pb *e, size_t more) {
    if (e->len + more <= e->cap) return 1;
    size_t cap = e->cap ? e->cap : 256;
    if (e->mode == LMF_PB_FILE && cap < PB_FILE_BUFFER) cap = PB_FILE_BUFFER;
    while (cap < e->len + more) cap *= 2;
    uint8_t *nb = realloc(e->buf, cap);
    if (!nb) {
        e->err = lmf_fail(LMF_ERR_NOMEM, "%s: cannot allocate %zu bytes to encode the model", e->path, cap);
        return 0;
    }
    e->buf = nb;
    e->cap = cap;
    return 1;
}

void lmf_pb_raw(lmf_pb *e, const void *p, size_t len) {
    if (e->err != LMF_OK || len == 0) return;
    e->n += len;
    if (e->mode == LMF_PB_COUNT) return;
    const uint8_t *b = p;
    if (e->mode == LMF_PB_FILE && len >= PB_FILE_BUFFER) { /* big payloads go straight out */
        flush(e);
        if (e->err == LMF_OK) e->err = lmf_write_all(e->fd, b, len, e->path);
        return;
    }
    if (e->mode == LMF_PB_FILE && e->len + len > PB_FILE_BUFFER) flush(e);
    if (e->err != LMF_OK || !reserve(e, len)) return;
    memcpy(e->buf + e->len, b, len);
    e->len += len;
}

lmf_status lmf_pb_finish(lmf_pb *e) {
    if (e->mode == LMF_PB_FILE) flush(e);
    if (e->mode != LMF_PB_MEMORY) {
        free(e->buf);
        e->buf = NULL;
        e->cap = e->len = 0;
    }
    return e->err;
}

void lmf_pb_varint(lmf_pb *e, uint64_t v) {
    uint8_t b[10];
    size_t n = 0;
    do {
        b[n] = (uint8_t)(v & 0x7f);
        v >>= 7;
        if (v) b[n] |= 0x80;
        n++;
    } while (v);
    lmf_pb_raw(e, b, n);
}

void lmf_pb_key(lmf_pb *e, int field, lmf_pb_wire w) {
    lmf_pb_varint(e, ((uint64_t)field << 3) | (uint64_t)w);
}

void lmf_pb_int(lmf_pb *e, int field, int64_t v) {
    lmf_pb_key(e, field, LMF_PB_VARINT);
    lmf_pb_varint(e, (uint64_t)v);
}

void lmf_pb_float(lmf_pb *e, int field, float v) {
    uint32_t u;
    memcpy(&u, &v, 4);
    uint8_t b[4] = {(uint8_t)u, (uint8_t)(u >> 8), (uint8_t)(u >> 16), (uint8_t)(u >> 24)};
    lmf_pb_key(e, field, LMF_PB_FIXED32);
    lmf_pb_raw(e, b, 4);
}

void lmf_pb_len(lmf_pb *e, int field, uint64_t len) {
    lmf_pb_key(e, field, LMF_PB_LEN);
    lmf_pb_varint(e, len);
}

void lmf_pb_bytes(lmf_pb *e, int field, const void *p, uint64_t len) {
    lmf_pb_len(e, field, len);
    lmf_pb_raw(e, p, (size_t)len);
}

void lmf_pb_str(lmf_pb *e, int field, const char *s) {
    lmf_pb_bytes(e, field, s, strlen(s));
}

void lmf_pb_msg(lmf_pb *e, int field, lmf_pb_body body, const void *arg) {
    if (e->err != LMF_OK) return;
    lmf_pb c;
    lmf_pb_init(&c, LMF_PB_COUNT, -1, e->path);
    body(&c, arg);
    if (c.err != LMF_OK) { e->err = c.err; return; }
    lmf_pb_len(e, field, c.n);
    body(e, arg);
}

/* Protocol-buffer wire-format encoder (varints, fixed32, length-delimited fields) for the ONNX writer. */
#ifndef LMF_FORMATS_PB_H
#define LMF_FORMATS_PB_H

#include <stddef.h>
#include <stdint.h>

#include "lmforge/status.h"

/* Wire types of the protobuf encoding (protobuf.dev/programming-guides/encoding). */
typedef enum lmf_pb_wire {
    LMF_PB_VARINT = 0,
    LMF_PB_FIXED64 = 1,
    LMF_PB_LEN = 2,
    LMF_PB_FIXED32 = 5
} lmf_pb_wire;

typedef enum lmf_pb_mode {
    LMF_PB_COUNT = 0,  /* bytes are only counted (to size a nested message) */
    LMF_PB_MEMORY,     /* bytes collect in a growing buffer (buf, len) */
    LMF_PB_FILE        /* bytes go to fd through a buffer, written when full */
} lmf_pb_mode;

/* An encoder. The first failure (allocation, write) is kept in err and later calls do
 * nothing; check it once at the end (lmf_pb_finish). */
typedef struct lmf_pb {
    lmf_pb_mode mode;
    int fd;              /* LMF_PB_FILE */
    const char *path;    /* names the file in errors */
    uint8_t *buf;
    size_t len, cap;
    uint64_t n;          /* bytes encoded so far */
    lmf_status err;
} lmf_pb;

/* A message body: writes the fields of one message into e, the same way every call. */
typedef void (*lmf_pb_body)(lmf_pb *e, const void *arg);

void lmf_pb_init(lmf_pb *e, lmf_pb_mode mode, int fd, const char *path);
/* Write what is buffered (LMF_PB_FILE) and return the first failure, if any. The buffer of a
 * LMF_PB_MEMORY encoder stays in e->buf (free it); the others' is freed. */
lmf_status lmf_pb_finish(lmf_pb *e);

void lmf_pb_raw(lmf_pb *e, const void *p, size_t len);
void lmf_pb_varint(lmf_pb *e, uint64_t v);
/* the key of field `field` with wire type w */
void lmf_pb_key(lmf_pb *e, int field, lmf_pb_wire w);
/* a varint field (int32, int64, enum; negative values as 10-byte two's complement) */
void lmf_pb_int(lmf_pb *e, int field, int64_t v);
/* a float field (fixed32, little-endian IEEE 754) */
void lmf_pb_float(lmf_pb *e, int field, float v);
/* a string or bytes field */
void lmf_pb_str(lmf_pb *e, int field, const char *s);
void lmf_pb_bytes(lmf_pb *e, int field, const void *p, uint64_t len);
/* the key and length of a length-delimited field whose len bytes the caller writes next */
void lmf_pb_len(lmf_pb *e, int field, uint64_t len);
/* a nested message: body runs once counting (for the length) and once writing */
void lmf_pb_msg(lmf_pb *e, int field, lmf_pb_body body, const void *arg);

#endif

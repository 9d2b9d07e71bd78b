/* Decoding the inputs of data preparation as streams: zstd-compressed files and JSON Lines. */
#ifndef LMFORGE_DATA_INPUT_H
#define LMFORGE_DATA_INPUT_H

#include <stddef.h>
#include <stdint.h>
#include "lmforge/status.h"

typedef enum lmf_input_kind {
    LMF_INPUT_TEXT,        /* plain text, read as it is (mapped) */
    LMF_INPUT_TEXT_ZSTD,   /* *.zst: zstd-compressed text */
    LMF_INPUT_JSONL,       /* *.jsonl: one JSON object per line, the document in one key */
    LMF_INPUT_JSONL_ZSTD   /* *.jsonl.zst */
} lmf_input_kind;

/* The kind of an input, from its name. */
lmf_input_kind lmf_input_kind_of(const char *path);

/* A streaming reader of one input: compressed text decompressed a block at a time; JSON Lines
 * (compressed or not) parsed line by line into the documents' texts (jsonl_key, NULL: "text"),
 * each followed by a NUL byte, blank lines and empty texts skipped. Memory: a read buffer, and
 * for JSON Lines the longest line. */
typedef struct lmf_input_reader lmf_input_reader;
/* Fails with LMF_ERR_IO when the file cannot be opened. */
lmf_status lmf_input_open(const char *path, lmf_input_kind kind, const char *jsonl_key,
                          lmf_input_reader **out);
/* Append decoded bytes to the growable buffer (*buf, *len, *cap; realloc'd, NUL after *len):
 * text: up to `want` bytes, fewer only at the end; JSON Lines: whole documents until at least
 * `want` bytes were appended or the input ends. *eof = 1 once the input is used up. Fails with
 * LMF_ERR_FORMAT naming the file (and line, for JSON Lines: bad JSON, invalid UTF-8, a missing
 * or non-string key) or a truncated or corrupt zstd stream; LMF_ERR_IO when unreadable. */
lmf_status lmf_input_read(lmf_input_reader *r, char **buf, size_t *len, size_t *cap, size_t want,
                          int *eof);
void lmf_input_close(lmf_input_reader *r);
/* decoded (decompressed) bytes read so far */
uint64_t lmf_input_decoded(const lmf_input_reader *r);
/* Offset of the first byte of s[0..n) that does not start a valid UTF-8 sequence (a stray
 * continuation byte, a truncated or overlong sequence, a surrogate, a code point above
 * U+10FFFF); n when all of it is valid. */
size_t lmf_input_utf8_check(const char *s, size_t n);

#endif

/* Decoding the inputs of data preparation: zstd-compressed files and JSON Lines. */
#ifndef LMFORGE_DATA_INPUT_H
#define LMFORGE_DATA_INPUT_H

#include <stddef.h>
#include "lmforge/status.h"

typedef enum lmf_input_kind {
    LMF_INPUT_TEXT,        /* plain text, read as it is (mapped) */
    LMF_INPUT_TEXT_ZSTD,   /* *.zst: zstd-compressed text */
    LMF_INPUT_JSONL,       /* *.jsonl: one JSON object per line, the document in one key */
    LMF_INPUT_JSONL_ZSTD   /* *.jsonl.zst */
} lmf_input_kind;

/* The kind of an input, from its name. */
lmf_input_kind lmf_input_kind_of(const char *path);

/* Read and decode a non-plain input into a malloc'd buffer (*out, *out_len bytes, NUL after
 * them). Compressed text decodes to the text; JSON Lines to the documents' texts (jsonl_key, NULL:
 * "text"), each followed by a NUL byte, blank lines and empty texts skipped. Fails with
 * LMF_ERR_FORMAT naming the file (and line, for JSON Lines: bad JSON, invalid UTF-8, a missing or
 * non-string key) or a truncated or corrupt zstd stream; LMF_ERR_IO when unreadable. */
lmf_status lmf_input_decode(const char *path, lmf_input_kind kind, const char *jsonl_key,
                            char **out, size_t *out_len);

/* Offset of the first byte of s[0..n) that does not start a valid UTF-8 sequence (a stray
 * continuation byte, a truncated or overlong sequence, a surrogate, a code point above
 * U+10FFFF); n when all of it is valid. */
size_t lmf_input_utf8_check(const char *s, size_t n);

#endif

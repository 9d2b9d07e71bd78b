/* The pre-tokenisations as hand-written scanners (GPT-2's and cl100k's patterns), and the Unicode classes they use. */
#ifndef LMF_TOK_PRETOK_H
#define LMF_TOK_PRETOK_H

#include <stddef.h>
#include <stdint.h>

#include "lmforge/tokenizer.h"

/* Character classes of GPT-2's pattern: \p{L}, \p{N}, \s (Unicode White_Space), the rest. */
enum { LMF_CC_OTHER = 0, LMF_CC_LETTER = 1, LMF_CC_NUMBER = 2, LMF_CC_SPACE = 3 };

/* Build the class tables from utf8proc (once per process; thread-safe, cheap after the first
 * call). Every tokenizer constructor calls it. */
void lmf_pretok_init(void);

/* Class of a code point (any value; > 0x10FFFF is OTHER). */
int lmf_pretok_class(uint32_t cp);

/* Decode the character at s[i] (i < n): returns its class and sets *len to its byte length.
 * A byte that does not start a well-formed UTF-8 sequence is one OTHER character of length 1. */
int lmf_pretok_char(const uint8_t *s, size_t n, size_t i, size_t *len);

/* GPT-2's pattern
 *   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 * applied at position i (< n): returns the end of the piece that starts at i (> i). */
size_t lmf_pretok_next(const uint8_t *s, size_t n, size_t i);

/* cl100k_base's pattern (also Llama 3's)
 *   (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|
 *   \s*[\r\n]+|\s+(?!\S)|\s+
 * applied at position i (< n): returns the end of the piece that starts at i (> i). */
size_t lmf_pretok_next_cl100k(const uint8_t *s, size_t n, size_t i);

/* The piece of pattern p that starts at i (< n): its end (> i). */
static inline size_t lmf_pretok_piece(lmf_tok_pattern p, const uint8_t *s, size_t n, size_t i) {
    return p == LMF_TOK_PATTERN_CL100K ? lmf_pretok_next_cl100k(s, n, i) : lmf_pretok_next(s, n, i);
}

#endif

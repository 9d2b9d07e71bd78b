/* GPT-2's pre-tokenisation as a hand-written scanner, and the Unicode character classes it uses. */
#ifndef LMF_TOK_PRETOK_H
#define LMF_TOK_PRETOK_H

#include <stddef.h>
#include <stdint.h>

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

#endif

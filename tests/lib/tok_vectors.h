/* Tokenizer test vectors (JSON Lines of {"text", "ids"[, "special"]}) checked against a tokenizer. */
#ifndef LMF_TEST_TOK_VECTORS_H
#define LMF_TEST_TOK_VECTORS_H

#include "lmforge/tokenizer.h"

/* Every line of the vectors file `path`: encoding "text" (special tokens allowed where the line
 * says "special": true) gives exactly "ids", and decoding gives the text back. Fails the cmocka
 * test at the first difference, naming the line; returns the number of lines checked. */
int lmf_test_tok_vectors(const lmf_tokenizer *t, const char *path);

#endif

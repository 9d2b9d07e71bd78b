/* Shared by the tokenizer fuzz harnesses: the encode/decode round trip every loaded tokenizer must pass. */
#ifndef LMF_FUZZ_COMMON_H
#define LMF_FUZZ_COMMON_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lmforge/tokenizer.h"

/* encode then decode: the bytes must come back (abort otherwise, so the fuzzer reports it) */
static inline void lmf_fuzz_roundtrip(const lmf_tokenizer *t, const char *s, size_t n,
                                      int allow_special) {
    uint32_t *ids = malloc((n + 1) * sizeof *ids);
    char *back = malloc(n + 1);
    size_t ni = 0, nb = 0;
    if (!ids || !back) abort();
    if (lmf_tok_encode(t, s, n, allow_special, ids, n + 1, &ni) != LMF_OK) abort();
    if (lmf_tok_decode(t, ids, ni, back, n + 1, &nb) != LMF_OK) abort();
    if (nb != n || memcmp(back, s, n) != 0) abort();
    free(ids);
    free(back);
}

#endif

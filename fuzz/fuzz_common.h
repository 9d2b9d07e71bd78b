/* Shared by the tokenizer fuzz harnesses: the encode/decode round trips every loaded tokenizer must pass. */
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

/* The checks every loaded tokenizer gets: a sample with special-token text round trips with
 * and without special tokens, so does (the start of) the fuzzer's input, and every id's bytes
 * can be read. Frees t. */
static inline void lmf_fuzz_check_tokenizer(lmf_tokenizer *t, const char *input, size_t n) {
    static const char sample[] = "Hello world, it's 2024!\n\n  caf\xc3\xa9 \xff<|endoftext|> DON'T\r\n";
    lmf_fuzz_roundtrip(t, sample, sizeof sample - 1, 0);
    lmf_fuzz_roundtrip(t, sample, sizeof sample - 1, 1);
    lmf_fuzz_roundtrip(t, input, n < 4096 ? n : 4096, 0);
    size_t len;
    for (int id = 0; id < lmf_tok_vocab_size(t) && id < 1000; id++) (void)lmf_tok_token_bytes(t, (uint32_t)id, &len);
    lmf_tok_free(t);
}

#endif

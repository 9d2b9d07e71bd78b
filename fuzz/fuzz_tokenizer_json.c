/* libFuzzer harness: tokenizer.json parsing. */
/* A tokenizer that loads must round-trip text through encode and decode. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lmforge/tokenizer.h"
#include "tokenizer/tok_internal.h"

/* encode then decode: the bytes must come back (abort otherwise, so the fuzzer reports it) */
static void roundtrip(const lmf_tokenizer *t, const char *s, size_t n, int allow_special) {
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    lmf_tokenizer *t = NULL;
    if (lmf_tok_parse_hf_json((const char *)data, size, "tokenizer.json", &t) != LMF_OK) {
        if (t) abort(); /* failure leaves no tokenizer */
        return 0;
    }
    static const char sample[] = "Hello world, it's 2024!\n\n  caf\xc3\xa9 \xff<|endoftext|>";
    roundtrip(t, sample, sizeof sample - 1, 0);
    roundtrip(t, sample, sizeof sample - 1, 1);
    roundtrip(t, (const char *)data, size < 4096 ? size : 4096, 0);
    size_t n;
    for (int id = 0; id < lmf_tok_vocab_size(t) && id < 1000; id++) (void)lmf_tok_token_bytes(t, (uint32_t)id, &n);
    lmf_tok_free(t);
    return 0;
}

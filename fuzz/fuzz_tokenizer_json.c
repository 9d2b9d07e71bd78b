/* libFuzzer harness: tokenizer.json parsing. */
/* A tokenizer that loads must round-trip text through encode and decode. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lmforge/tokenizer.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    lmf_tokenizer *t = NULL;
    if (lmf_tok_parse_hf_json((const char *)data, size, "tokenizer.json", &t) != LMF_OK) {
        if (t) abort(); /* failure leaves no tokenizer */
        return 0;
    }
    static const char sample[] = "Hello world, it's 2024!\n\n  caf\xc3\xa9 \xff<|endoftext|>";
    lmf_fuzz_roundtrip(t, sample, sizeof sample - 1, 0);
    lmf_fuzz_roundtrip(t, sample, sizeof sample - 1, 1);
    lmf_fuzz_roundtrip(t, (const char *)data, size < 4096 ? size : 4096, 0);
    size_t n;
    for (int id = 0; id < lmf_tok_vocab_size(t) && id < 1000; id++) (void)lmf_tok_token_bytes(t, (uint32_t)id, &n);
    lmf_tok_free(t);
    return 0;
}

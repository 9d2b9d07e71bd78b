/* libFuzzer harness: GPT-2's encoder.json + vocab.bpe pair. */
/* The input is the two files joined by one NUL byte (no NUL: all of it is encoder.json and
 * vocab.bpe is empty). A pair that loads must round-trip text through encode and decode. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lmforge/tokenizer.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *s = (const char *)data;
    const char *nul = memchr(s, '\0', size);
    size_t enc_len = nul ? (size_t)(nul - s) : size;
    const char *merges = nul ? nul + 1 : s + size;
    size_t merges_len = nul ? size - enc_len - 1 : 0;
    lmf_tokenizer *t = NULL;
    if (lmf_tok_parse_gpt2_pair(s, enc_len, "encoder.json", merges, merges_len, "vocab.bpe", &t) != LMF_OK) {
        if (t) abort();
        return 0;
    }
    lmf_fuzz_check_tokenizer(t, merges, merges_len);
    return 0;
}

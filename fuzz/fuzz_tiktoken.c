/* libFuzzer harness: tiktoken BPE file parsing. */
/* A tokenizer that loads must round-trip text through encode and decode. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lmforge/tokenizer.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    lmf_tokenizer *t = NULL;
    if (lmf_tok_parse_tiktoken((const char *)data, size, "cl100k_base.tiktoken", &t) != LMF_OK) {
        if (t) abort(); /* failure leaves no tokenizer */
        return 0;
    }
    lmf_fuzz_check_tokenizer(t, (const char *)data, size);
    return 0;
}

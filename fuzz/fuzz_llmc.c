/* libFuzzer harness: llm.c checkpoint and tokenizer files parsed from memory. */
/* An input with the tokenizer magic is parsed as an llm.c tokenizer file; anything else as an
 * llm.c checkpoint (header, size, then the weights). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lmforge/formats.h"

static void checkpoint(const uint8_t *data, size_t size) {
    lmf_llmc_header h;
    lmf_status hs = lmf_llmc_parse_header(data, size, size, "fuzz-input", &h);
    lmf_gpt *m = NULL;
    lmf_status ls = lmf_llmc_load_buffer(data, size, "fuzz-input", lmf_kernels_ref(), &m);
    /* loading succeeds exactly when the header and size check out (or memory ran out) */
    if (ls == LMF_OK && hs != LMF_OK) abort();
    if (hs == LMF_OK && ls != LMF_OK && ls != LMF_ERR_NOMEM) abort();
    if (ls != LMF_OK) {
        if (m != NULL) abort();
        return;
    }
    const lmf_gpt_config *c = lmf_gpt_cfg(m);
    if (memcmp(c, &h.cfg, sizeof *c) != 0) abort();
    /* version 3: the real wte rows are the file's floats, unchanged */
    if (h.version == 3 && memcmp(lmf_gpt_params(m), data + LMF_LLMC_HEADER_BYTES,
                                 (size_t)c->vocab_size * (size_t)c->n_embd * sizeof(float)) != 0)
        abort();
    lmf_gpt_free(m);
}

static void tokenizer(const uint8_t *data, size_t size) {
    lmf_tokenizer *t = NULL;
    if (lmf_tok_parse_llmc(data, size, "fuzz-input", &t) != LMF_OK) {
        if (t != NULL) abort();
        return;
    }
    int n = lmf_tok_vocab_size(t);
    for (int i = 0; i < n; i++) {
        size_t len = 0;
        if (!lmf_tok_token_bytes(t, (uint32_t)i, &len) || len == 0) abort(); /* every id decodes */
    }
    if (lmf_tok_eot(t) < 0 || lmf_tok_eot(t) >= n) abort();
    lmf_tok_free(t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    int32_t magic = 0;
    if (size >= 4) memcpy(&magic, data, 4);
    if (magic == LMF_LLMC_TOKENIZER_MAGIC) tokenizer(data, size);
    else checkpoint(data, size);
    return 0;
}

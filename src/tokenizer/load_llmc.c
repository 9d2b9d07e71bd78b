/* llm.c tokenizer files (magic 20240328, versions 1 and 2): the id -> bytes table, for decoding. */
#include "lmforge/tokenizer.h"

#include <stdlib.h>
#include <string.h>

#include "lmforge/fsutil.h"
#include "tokenizer/tok_internal.h"

#define HEADER_WORDS 256
#define HEADER_BYTES (HEADER_WORDS * 4)
#define GPT2_VOCAB 50257
#define GPT2_EOT 50256

static uint32_t get_u32(const uint8_t *b, int i) {
    uint32_t v;
    memcpy(&v, b + 4 * i, 4);
    return v;
}

static lmf_status parse_into(lmf_tokenizer *t, const uint8_t *b, size_t len, const char *what) {
    if (len < 4 || get_u32(b, 0) != LMF_LLMC_TOKENIZER_MAGIC)
        return lmf_fail(LMF_ERR_FORMAT, "%s: not an llm.c tokenizer file (magic %u, expected %d)",
                        what, len < 4 ? 0u : get_u32(b, 0), LMF_LLMC_TOKENIZER_MAGIC);
    if (len < HEADER_BYTES)
        return lmf_fail(LMF_ERR_FORMAT, "%s: truncated llm.c tokenizer file: %zu bytes, shorter "
                        "than its %d-byte header", what, len, HEADER_BYTES);
    uint32_t version = get_u32(b, 1), n = get_u32(b, 2), eot;
    if (version == 1) {
        /* version 1 carries no end-of-text id: llm.c takes it as GPT-2's */
        if (n != GPT2_VOCAB)
            return lmf_fail(LMF_ERR_FORMAT, "%s: llm.c tokenizer version 1 must hold GPT-2's %d "
                            "ids (it has %u); version 2 files name their end-of-text id", what,
                            GPT2_VOCAB, n);
        eot = GPT2_EOT;
    } else if (version == 2) {
        eot = get_u32(b, 3);
    } else {
        return lmf_fail(LMF_ERR_FORMAT, "%s: llm.c tokenizer version %u is not supported (1 or 2)",
                        what, version);
    }
    if (n == 0 || n > LMF_TOK_MAX_IDS)
        return lmf_fail(LMF_ERR_FORMAT, "%s: llm.c tokenizer vocab_size %u is out of range "
                        "(1..%u)", what, n, LMF_TOK_MAX_IDS);
    if (eot >= n)
        return lmf_fail(LMF_ERR_FORMAT, "%s: llm.c tokenizer end-of-text id %u is not below its "
                        "vocab_size %u", what, eot, n);
    size_t p = HEADER_BYTES;
    for (uint32_t id = 0; id < n; id++) {
        if (p >= len)
            return lmf_fail(LMF_ERR_FORMAT, "%s: truncated llm.c tokenizer file: it ends before "
                            "token %u of %u", what, id, n);
        size_t l = b[p++];
        if (l == 0)
            return lmf_fail(LMF_ERR_FORMAT, "%s: token %u has length 0 (every llm.c token has at "
                            "least one byte)", what, id);
        if (l > len - p)
            return lmf_fail(LMF_ERR_FORMAT, "%s: truncated llm.c tokenizer file: token %u needs %zu "
                            "bytes, %zu remain", what, id, l, len - p);
        LMF_TRY(lmf_tok_set_token(t, id, (const char *)b + p, l,
                                  id == eot ? LMF_TOK_KIND_SPECIAL : LMF_TOK_KIND_NORMAL, what));
        p += l;
    }
    if (p != len)
        return lmf_fail(LMF_ERR_FORMAT, "%s: %zu bytes follow the last of the %u tokens; the file "
                        "is not an llm.c tokenizer or is damaged", what, len - p, n);
    return lmf_tok_finish(t, 0, what);
}

lmf_status lmf_tok_parse_llmc(const void *buf, size_t len, const char *what,
                                    lmf_tokenizer **out) {
    *out = NULL;
    lmf_tokenizer *t = lmf_tok_alloc();
    if (!t) return LMF_ERR_NOMEM;
    lmf_status s = parse_into(t, buf, len, what);
    if (s != LMF_OK) {
        lmf_tok_free(t);
        return s;
    }
    *out = t;
    return LMF_OK;
}

lmf_status lmf_tok_load_llmc(const char *path, lmf_tokenizer **out) {
    char *buf = NULL;
    size_t len = 0;
    *out = NULL;
    /* 2^24 ids of at most 255 bytes each bound a valid file; real ones are well under 1 MB */
    LMF_TRY(lmf_read_file(path, &buf, &len, (size_t)1 << 32));
    lmf_status s = lmf_tok_parse_llmc(buf, len, path, out);
    free(buf);
    return s;
}

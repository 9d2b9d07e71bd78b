/* Loading GPT-2's vocabulary pair: encoder.json (token -> id) and vocab.bpe (merges). */
/* As published with GPT-2 (also named vocab.json + merges.txt). */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tok_internal.h"

static lmf_status parse_encoder(lmf_tokenizer *t, const char *enc, size_t enc_len, const char *name) {
    json_error_t err;
    json_t *root = json_loadb(enc, enc_len, JSON_REJECT_DUPLICATES, &err);
    if (!root)
        return lmf_fail(LMF_ERR_FORMAT, "%s: not valid JSON (line %d, column %d: %s)", name,
                        err.line, err.column, err.text);
    lmf_status st = LMF_OK;
    if (!json_is_object(root)) {
        st = lmf_fail(LMF_ERR_FORMAT, "%s: expected a JSON object mapping tokens to ids", name);
        goto done;
    }
    const char *key;
    json_t *val;
    char *buf = NULL;
    size_t buf_cap = 0;
    json_object_foreach(root, key, val) {
        if (!json_is_integer(val)) {
            st = lmf_fail(LMF_ERR_FORMAT, "%s: the id of token '%.60s' is not an integer", name, key);
            break;
        }
        json_int_t id = json_integer_value(val);
        if (id < 0 || id >= (json_int_t)LMF_TOK_MAX_IDS) {
            st = lmf_fail(LMF_ERR_FORMAT, "%s: token '%.60s' has id %lld, outside [0, %u)", name,
                          key, (long long)id, LMF_TOK_MAX_IDS);
            break;
        }
        size_t kl = strlen(key);
        if (kl + 1 > buf_cap) {
            buf_cap = 2 * kl + 64;
            char *nb = realloc(buf, buf_cap);
            if (!nb) {
                st = lmf_fail(LMF_ERR_NOMEM, "tokenizer: out of memory");
                break;
            }
            buf = nb;
        }
        long n = lmf_tok_unicode_to_bytes(key, kl, buf);
        /* a string outside the byte-level alphabet can only be a special token, kept as is */
        st = n >= 0 ? lmf_tok_set_token(t, (uint32_t)id, buf, (size_t)n, LMF_TOK_KIND_NORMAL, name)
                    : lmf_tok_set_token(t, (uint32_t)id, key, kl, LMF_TOK_KIND_NORMAL, name);
        if (st != LMF_OK) break;
    }
    free(buf);
done:
    json_decref(root);
    return st;
}

/* id of a byte-level spelled token s[0..n), or LMF_TOK_NONE (buf holds n bytes) */
static uint32_t find_spelled(const lmf_tokenizer *t, const char *s, size_t n, char *buf) {
    long b = lmf_tok_unicode_to_bytes(s, n, buf);
    if (b <= 0) return LMF_TOK_NONE;
    return lmf_tok_find(t, buf, (size_t)b);
}

static lmf_status parse_merges(lmf_tokenizer *t, const char *m, size_t len, const char *name,
                               const char *enc_name) {
    size_t line = 0;
    char *buf = malloc(len + 1);
    if (!buf) return lmf_fail(LMF_ERR_NOMEM, "tokenizer: out of memory");
    lmf_status st = LMF_OK;
    for (size_t pos = 0; pos < len;) {
        const char *nl = memchr(m + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - m) : len;
        const char *s = m + pos;
        size_t n = end - pos;
        pos = end + 1;
        line++;
        if (n > 0 && s[n - 1] == '\r') n--;
        if (n == 0) continue;
        if (line == 1 && n >= 8 && memcmp(s, "#version", 8) == 0) continue;
        const char *sp = memchr(s, ' ', n);
        if (!sp || sp == s || sp == s + n - 1 || memchr(sp + 1, ' ', (size_t)(s + n - sp - 1))) {
            st = lmf_fail(LMF_ERR_FORMAT, "%s: line %zu: expected two tokens separated by one space, "
                          "got '%.*s'", name, line, (int)(n < 60 ? n : 60), s);
            break;
        }
        size_t nl_ = (size_t)(sp - s), nr = n - nl_ - 1;
        uint32_t l = find_spelled(t, s, nl_, buf), r = find_spelled(t, sp + 1, nr, buf);
        if (l == LMF_TOK_NONE || r == LMF_TOK_NONE) {
            const char *bad = l == LMF_TOK_NONE ? s : sp + 1;
            size_t bl = l == LMF_TOK_NONE ? nl_ : nr;
            st = lmf_fail(LMF_ERR_FORMAT, "%s: line %zu: token '%.*s' is not in %s", name, line,
                          (int)(bl < 60 ? bl : 60), bad, enc_name);
            break;
        }
        st = lmf_tok_add_merge(t, l, r, name);
        if (st != LMF_OK) {
            lmf_fail_context(st, "line %zu: ", line);
            break;
        }
    }
    free(buf);
    return st;
}

lmf_status lmf_tok_parse_gpt2_pair(const char *enc, size_t enc_len, const char *enc_name,
                                   const char *merges, size_t merges_len, const char *merges_name,
                                   lmf_tokenizer **out) {
    *out = NULL;
    lmf_tokenizer *t = lmf_tok_alloc();
    if (!t) return LMF_ERR_NOMEM;
    lmf_status st = parse_encoder(t, enc, enc_len, enc_name);
    if (st == LMF_OK) st = parse_merges(t, merges, merges_len, merges_name, enc_name);
    if (st == LMF_OK) st = lmf_tok_finish(t, 1, enc_name);
    if (st != LMF_OK) {
        lmf_tok_free(t);
        return st;
    }
    *out = t;
    return LMF_OK;
}

lmf_status lmf_tok_load_gpt2_pair(const char *encoder_path, const char *merges_path,
                                  lmf_tokenizer **out) {
    char *enc = NULL, *mer = NULL;
    size_t el = 0, ml = 0;
    *out = NULL;
    lmf_status st = lmf_tok_read_file(encoder_path, &enc, &el);
    if (st == LMF_OK) st = lmf_tok_read_file(merges_path, &mer, &ml);
    if (st == LMF_OK) st = lmf_tok_parse_gpt2_pair(enc, el, encoder_path, mer, ml, merges_path, out);
    free(enc);
    free(mer);
    return st;
}

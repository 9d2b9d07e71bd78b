/* Public encode and decode: special tokens, id -> bytes, safe cut points. */
/* Special tokens are split out around the plain BPE encoder; cut points let a long text be
 * encoded in independent pieces. */
#define _GNU_SOURCE /* memmem */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tok_internal.h"

static lmf_status encode_specials(const lmf_tokenizer *t, lmf_tok_ctx *c, const uint8_t *s,
                                  size_t n, uint32_t *ids, size_t cap, size_t *cnt) {
    /* next[k]: position of the next occurrence of special k at or after pos (n: none) */
    size_t *next = malloc(t->n_special * sizeof *next);
    if (!next) return lmf_fail(LMF_ERR_NOMEM, "tokenizer: out of memory");
    for (uint32_t k = 0; k < t->n_special; k++) next[k] = (size_t)-1; /* not searched yet */
    size_t pos = 0;
    lmf_status st = LMF_OK;
    while (pos < n) {
        size_t best = n;
        uint32_t best_id = LMF_TOK_NONE;
        for (uint32_t k = 0; k < t->n_special; k++) {
            uint32_t id = t->special_ids[k];
            if (next[k] == (size_t)-1 || (next[k] < pos)) {
                const void *f = memmem(s + pos, n - pos, t->bytes + t->off[id], t->len[id]);
                next[k] = f ? (size_t)((const uint8_t *)f - s) : n;
            }
            if (next[k] < best) { /* longest first: a later, shorter one at the same place loses */
                best = next[k];
                best_id = id;
            }
        }
        st = lmf_tok_encode_plain(t, c, s + pos, best - pos, ids, cap, cnt);
        if (st != LMF_OK || best_id == LMF_TOK_NONE) break;
        if (*cnt < cap) ids[*cnt] = best_id;
        (*cnt)++;
        pos = best + t->len[best_id];
    }
    free(next);
    return st;
}

lmf_status lmf_tok_encode(const lmf_tokenizer *t, const char *text, size_t len, int allow_special,
                          uint32_t *ids, size_t cap, size_t *n_out) {
    size_t cnt = 0;
    *n_out = 0;
    if (len == 0) return LMF_OK;
    lmf_tok_ctx *c = lmf_tok_ctx_get(t);
    if (!c) return lmf_fail(LMF_ERR_NOMEM, "tokenizer: out of memory");
    lmf_status st;
    if (allow_special && t->n_special > 0)
        st = encode_specials(t, c, (const uint8_t *)text, len, ids, cap, &cnt);
    else
        st = lmf_tok_encode_plain(t, c, (const uint8_t *)text, len, ids, cap, &cnt);
    lmf_tok_ctx_put(t, c);
    if (st != LMF_OK) return st;
    *n_out = cnt;
    if (cnt > cap)
        return lmf_fail(LMF_ERR_ARG, "tokenizer: the text needs %zu ids but the buffer holds %zu",
                        cnt, cap);
    return LMF_OK;
}

lmf_status lmf_tok_decode(const lmf_tokenizer *t, const uint32_t *ids, size_t n, char *out,
                          size_t cap, size_t *n_out) {
    size_t total = 0;
    *n_out = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t id = ids[i];
        if (id >= t->n_ids || t->len[id] == LMF_TOK_NONE)
            return lmf_fail(LMF_ERR_ARG, "tokenizer: id %u (at position %zu) is not in the "
                            "vocabulary of %u ids", id, i, t->n_ids);
        uint32_t l = t->len[id];
        if (total + l <= cap) memcpy(out + total, t->bytes + t->off[id], l);
        total += l;
    }
    *n_out = total;
    if (total > cap)
        return lmf_fail(LMF_ERR_ARG, "tokenizer: the ids decode to %zu bytes but the buffer holds %zu",
                        total, cap);
    return LMF_OK;
}

/* A piece of either pattern never holds a non-space character and a space (U+0020) after it
 * (only cl100k's punctuation pieces run on past their last character, and only over CR and
 * LF), so between an ASCII non-space byte and a space every match ends and the next one starts
 * afresh: the two sides encode independently. */
size_t lmf_tok_split_point(const char *text, size_t len, size_t from) {
    const uint8_t *s = (const uint8_t *)text;
    if (from < 1) from = 1;
    for (size_t p = from; p < len; p++)
        if (s[p] == ' ' && s[p - 1] > 0x20 && s[p - 1] < 0x7F) return p;
    return len;
}

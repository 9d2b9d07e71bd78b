/* The tokenizer handle: allocation, freeing and the read-only queries (sizes, ids, token bytes). */
/* Every constructor (loaders, trainer) starts from lmf_tok_alloc; lmf_tok_free also frees the
 * pooled encoding contexts. */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/pretok.h"
#include "tokenizer/tok_internal.h"

lmf_tokenizer *lmf_tok_alloc(void) {
    lmf_pretok_init();
    lmf_tokenizer *t = calloc(1, sizeof *t);
    lmf_tok_pool *p = calloc(1, sizeof *p);
    if (!t || !p || pthread_mutex_init(&p->mu, NULL) != 0) {
        free(t);
        free(p);
        lmf_fail(LMF_ERR_NOMEM, "tokenizer: out of memory");
        return NULL;
    }
    t->pool = p;
    t->eot = -1;
    return t;
}

void lmf_tok_free(lmf_tokenizer *t) {
    if (!t) return;
    if (t->pool) {
        lmf_tok_pool_drain(t->pool);
        pthread_mutex_destroy(&t->pool->mu);
        free(t->pool);
    }
    free(t->off);
    free(t->len);
    free(t->kind);
    free(t->bytes);
    free(t->map);
    free(t->merge_left);
    free(t->merge_right);
    free(t->merge_result);
    free(t->mtab);
    free(t->jtab);
    free(t->special_ids);
    free(t);
}

int lmf_tok_vocab_size(const lmf_tokenizer *t) { return (int)t->n_ids; }
int lmf_tok_eot(const lmf_tokenizer *t) { return t->eot; }

int lmf_tok_bos(const lmf_tokenizer *t) {
    if (t->eot < 0) return -1;
    uint32_t bos = lmf_tok_find(t, "<|begin_of_text|>", 17);
    return bos == LMF_TOK_NONE || t->kind[bos] != LMF_TOK_KIND_SPECIAL ? t->eot : (int)bos;
}

int lmf_tok_is_special(const lmf_tokenizer *t, uint32_t id) {
    return id < t->n_ids && t->kind[id] == LMF_TOK_KIND_SPECIAL;
}

lmf_tok_pattern lmf_tok_get_pattern(const lmf_tokenizer *t) { return t->pattern; }

const char *lmf_tok_pattern_name(lmf_tok_pattern p) {
    return p == LMF_TOK_PATTERN_CL100K ? "cl100k" : p == LMF_TOK_PATTERN_GPT2 ? "gpt2" : "?";
}

lmf_status lmf_tok_pattern_parse(const char *s, lmf_tok_pattern *p) {
    if (strcmp(s, "gpt2") == 0) *p = LMF_TOK_PATTERN_GPT2;
    else if (strcmp(s, "cl100k") == 0) *p = LMF_TOK_PATTERN_CL100K;
    else return lmf_fail(LMF_ERR_ARG, "unknown pre-tokenizer pattern '%s' (gpt2 or cl100k)", s);
    return LMF_OK;
}

int lmf_tok_num_merges(const lmf_tokenizer *t) { return (int)t->n_merges; }

const char *lmf_tok_token_bytes(const lmf_tokenizer *t, uint32_t id, size_t *len) {
    if (id >= t->n_ids || t->len[id] == LMF_TOK_NONE) {
        if (len) *len = 0;
        return NULL;
    }
    if (len) *len = t->len[id];
    return t->bytes + t->off[id];
}

/* Only an llm.c tokenizer file gives a vocabulary without merges whose normal tokens are longer
 * than one byte: such a table decodes, but encoding would need the merges it lacks. */
int lmf_tok_decode_only(const lmf_tokenizer *t) {
    if (t->n_merges > 0) return 0;
    for (uint32_t i = 0; i < t->n_ids; i++)
        if (t->len[i] != LMF_TOK_NONE && t->len[i] > 1 && t->kind[i] == LMF_TOK_KIND_NORMAL) return 1;
    return 0;
}

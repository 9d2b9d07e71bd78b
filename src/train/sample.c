/* Samples during training: the model being trained continues a prompt, decoded to text. */
#include "train/sample.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

typedef struct ids {
    int32_t *v;
    int n, cap;
} ids;

static int keep(void *ctx, int32_t id) {
    ids *s = ctx;
    if (s->n < s->cap) s->v[s->n++] = id;
    return 0;
}

/* bytes[n] as valid UTF-8 (each invalid byte becomes U+FFFD), malloc'd */
static char *valid_utf8(const char *bytes, size_t n) {
    char *out = malloc(3 * n + 1), *w = out;
    if (!out) return NULL;
    for (size_t i = 0; i < n;) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)bytes + i,
                                              (utf8proc_ssize_t)(n - i), &cp);
        if (k > 0) {
            memcpy(w, bytes + i, (size_t)k);
            w += k;
            i += (size_t)k;
        } else {
            memcpy(w, "\xef\xbf\xbd", 3);
            w += 3;
            i++;
        }
    }
    *w = '\0';
    return out;
}

lmf_status lmf_train_sample(lmf_gpt *m, const lmf_tokenizer *tok, const char *prompt, int n_new,
                            uint64_t seed, char **text) {
    *text = NULL;
    const lmf_gpt_config *c = lmf_gpt_cfg(m);
    size_t plen = prompt ? strlen(prompt) : 0;
    if (plen > 0 && !tok)
        return lmf_fail(LMF_ERR_ARG, "a sample's prompt needs the run's tokenizer, and the run "
                        "directory has none: leave the prompt out (the samples are token ids)");
    size_t cap = plen + 1 + (size_t)n_new;
    uint32_t *u = malloc(cap * sizeof *u);
    ids all = {malloc(cap * sizeof(int32_t)), 0, (int)cap};
    char *bytes = NULL;
    lmf_status s = LMF_OK;
    size_t np = 0;
    if (!u || !all.v) { s = lmf_fail(LMF_ERR_NOMEM, "cannot allocate for a sample"); goto done; }
    if (plen > 0 && (s = lmf_tok_encode(tok, prompt, plen, 0, u, cap, &np)) != LMF_OK) goto done;
    if ((int)np >= c->n_positions) {
        s = lmf_fail(LMF_ERR_ARG, "the sample prompt has %zu tokens; the model's context is %d",
                     np, c->n_positions);
        goto done;
    }
    if (np == 0) { /* no prompt: the end-of-text token starts it, and is not shown */
        int eot = tok ? lmf_tok_eot(tok) : -1;
        int32_t start = eot >= 0 && eot < c->vocab_size ? eot : c->vocab_size - 1;
        int made = 0;
        s = lmf_gpt_generate(m, &start, 1, n_new, &(lmf_sampling){0.8f, 40, 1.0f, seed}, keep,
                             &all, &made);
    } else {
        for (size_t i = 0; i < np; i++) all.v[all.n++] = (int32_t)u[i];
        int made = 0;
        s = lmf_gpt_generate(m, (const int32_t *)u, (int)np, n_new,
                             &(lmf_sampling){0.8f, 40, 1.0f, seed}, keep, &all, &made);
    }
    if (s != LMF_OK) goto done;
    size_t len = 0;
    if (tok) {
        for (int i = 0; i < all.n; i++) u[i] = (uint32_t)all.v[i];
        size_t room = 16 * (size_t)all.n + 16;
        bytes = malloc(room);
        if (!bytes) { s = lmf_fail(LMF_ERR_NOMEM, "cannot allocate for a sample"); goto done; }
        s = lmf_tok_decode(tok, u, (size_t)all.n, bytes, room, &len);
        if (s == LMF_ERR_ARG && len > room) { /* longer tokens: the size it needs */
            char *b = realloc(bytes, len);
            if (!b) { s = lmf_fail(LMF_ERR_NOMEM, "cannot allocate for a sample"); goto done; }
            bytes = b;
            room = len;
            s = lmf_tok_decode(tok, u, (size_t)all.n, bytes, room, &len);
        }
        if (s != LMF_OK) goto done;
    } else {
        bytes = malloc(12 * (size_t)all.n + 1);
        if (!bytes) { s = lmf_fail(LMF_ERR_NOMEM, "cannot allocate for a sample"); goto done; }
        for (int i = 0; i < all.n; i++)
            len += (size_t)sprintf(bytes + len, i ? " %d" : "%d", (int)all.v[i]);
    }
    *text = valid_utf8(bytes, len);
    if (!*text) s = lmf_fail(LMF_ERR_NOMEM, "cannot allocate for a sample");
done:
    free(u);
    free(all.v);
    free(bytes);
    return s;
}

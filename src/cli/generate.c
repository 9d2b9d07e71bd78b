/* Text generation for the CLI: the prompt encoded, each token printed as the model's
 * generation (lmf_gpt_generate) makes it. */
#include <stdlib.h>
#include <string.h>

#include "cli/cli_util.h"
#include "lmforge/model.h"

static void emit_id(const lmf_tokenizer *tok, uint32_t id, FILE *out) {
    if (!tok) {
        fprintf(out, "%u ", id);
        return;
    }
    size_t len = 0;
    const char *b = lmf_tok_token_bytes(tok, id, &len);
    if (b) fwrite(b, 1, len, out);
    fflush(out);
}

typedef struct emit_ctx {
    const lmf_tokenizer *tok;
    FILE *out;
} emit_ctx;

static int emit(void *ctx, int32_t id) {
    emit_ctx *e = ctx;
    emit_id(e->tok, (uint32_t)id, e->out);
    return 0;
}

lmf_status lmf_cli_generate(lmf_gpt *m, const lmf_tokenizer *tok, const char *prompt, int n,
                            float temperature, int top_k, float top_p, uint64_t seed, FILE *out,
                            int *n_out) {
    const lmf_gpt_config *c = lmf_gpt_cfg(m);
    int V = c->vocab_size, maxT = c->n_positions;
    /* the tokens a tokenizer.json's template puts in front of a text (Llama 3's
     * <|begin_of_text|>), as transformers' tokenizer(text) does; not echoed */
    const uint32_t *pre = NULL, *suf = NULL;
    size_t n_pre = 0, n_suf = 0;
    if (tok) lmf_tok_template(tok, &pre, &n_pre, &suf, &n_suf);
    size_t plen = prompt ? strlen(prompt) : 0, cap = plen + n_pre + 2;
    uint32_t *ids = malloc(cap * sizeof(uint32_t));
    int32_t *prompt_ids = malloc(cap * sizeof(int32_t));
    lmf_status s = LMF_OK;
    size_t np = 0;
    *n_out = 0;
    if (!ids || !prompt_ids) { s = lmf_fail(LMF_ERR_NOMEM, "cannot allocate for sampling"); goto done; }
    if (n_pre > 0) memcpy(ids, pre, n_pre * sizeof *ids);
    if (plen > 0 && tok) {
        s = lmf_tok_encode(tok, prompt, plen, 0, ids + n_pre, cap - n_pre, &np);
        if (s != LMF_OK) goto done;
        np += n_pre;
    } else if (plen > 0) {
        char *end;
        const char *q = prompt;
        for (;;) {
            long v = strtol(q, &end, 10);
            if (end == q) break;
            if (v < 0 || v >= V) { s = lmf_fail(LMF_ERR_ARG, "prompt token %ld is outside the vocabulary (size %d)", v, V); goto done; }
            ids[np++] = (uint32_t)v;
            q = end;
        }
        if (*q != '\0' && strspn(q, " \t\n") != strlen(q)) {
            s = lmf_fail(LMF_ERR_ARG, "the model has no tokenizer: give --prompt as token ids separated by spaces");
            goto done;
        }
    }
    if ((int)np >= maxT) { /* checked before the prompt is echoed */
        s = lmf_fail(LMF_ERR_ARG, "the prompt has %zu tokens; the model's context is %d: give a "
                     "prompt of at most %d tokens", np, maxT, maxT - 1);
        goto done;
    }
    if (np == 0) np = n_pre; /* no prompt: the template's beginning, else the end-of-text token */
    for (size_t i = 0; i < np; i++)
        if (ids[i] >= (uint32_t)V) {
            s = lmf_fail(LMF_ERR_ARG, "the prompt's token %u is outside the model's vocabulary "
                         "(size %d): the tokenizer does not belong to this model", ids[i], V);
            goto done;
        }
    if (np == 0) {
        int eot = tok ? lmf_tok_eot(tok) : -1;
        ids[np++] = (uint32_t)(eot >= 0 && eot < V ? eot : V - 1);
    } else {
        for (size_t i = n_pre; i < np; i++) emit_id(tok, ids[i], out);
    }
    for (size_t i = 0; i < np; i++) prompt_ids[i] = (int32_t)ids[i];
    lmf_sampling smp = {temperature, top_k, top_p, seed};
    emit_ctx e = {tok, out};
    s = lmf_gpt_generate(m, prompt_ids, (int)np, n, &smp, emit, &e, n_out);
    fputc('\n', out);
    fflush(out); /* before any later line on stderr, when both go to one file */
done:
    free(ids);
    free(prompt_ids);
    return s;
}

void lmf_cli_format_duration(double sec, char *buf, size_t cap) {
    if (!(sec >= 0) || sec > 1e8) { snprintf(buf, cap, "?"); return; }
    long s = (long)(sec + 0.5);
    if (s >= 3600) snprintf(buf, cap, "%ldh%02ldm", s / 3600, (s % 3600) / 60);
    else if (s >= 60) snprintf(buf, cap, "%ldm%02lds", s / 60, s % 60);
    else snprintf(buf, cap, "%lds", s);
}

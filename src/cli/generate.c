/* Text generation for the CLI: prompt encoding, KV-cached sampling loop, decoding. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli_util.h"
#include "lmforge/convert.h"
#include "lmforge/rng.h"

/* the tokenizer files in or beside any model path (see lmf_model_find_tokenizer) */
lmf_status lmf_cli_find_tokenizer(const char *dir, lmf_tokenizer **out) {
    return lmf_model_find_tokenizer(dir, out);
}

static void emit(const lmf_tokenizer *tok, uint32_t id, FILE *out) {
    if (!tok) {
        fprintf(out, "%u ", id);
        return;
    }
    size_t len = 0;
    const char *b = lmf_tok_token_bytes(tok, id, &len);
    if (b) fwrite(b, 1, len, out);
    fflush(out);
}

lmf_status lmf_cli_generate(lmf_gpt *m, const lmf_tokenizer *tok, const char *prompt, int n,
                            float temperature, int top_k, float top_p, uint64_t seed, FILE *out) {
    const lmf_gpt_config *c = lmf_gpt_cfg(m);
    int V = c->vocab_size, maxT = c->n_positions;
    size_t plen = prompt ? strlen(prompt) : 0, cap = plen + 2;
    uint32_t *ids = malloc(cap * sizeof(uint32_t));
    float *logits = malloc((size_t)V * sizeof(float));
    void *work = malloc(lmf_sampler_work_bytes(V));
    lmf_kv_cache *kv = NULL;
    lmf_status s = LMF_OK;
    size_t np = 0;
    if (!ids || !logits || !work) { s = lmf_fail(LMF_ERR_NOMEM, "cannot allocate for sampling"); goto done; }
    if (plen > 0 && tok) {
        s = lmf_tok_encode(tok, prompt, plen, 0, ids, cap, &np);
        if (s != LMF_OK) goto done;
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
    if (np == 0) {
        int eot = tok ? lmf_tok_eot(tok) : -1;
        ids[np++] = (uint32_t)(eot >= 0 && eot < V ? eot : V - 1);
    } else {
        for (size_t i = 0; i < np; i++) emit(tok, ids[i], out);
    }
    if ((int)np >= maxT) { s = lmf_fail(LMF_ERR_ARG, "the prompt has %zu tokens; the model's context is %d", np, maxT); goto done; }
    s = lmf_gpt_kv_create(m, maxT, &kv);
    if (s != LMF_OK) goto done;
    lmf_rng rng;
    lmf_rng_seed(&rng, seed);
    int pos = 0;
    for (size_t i = 0; i < np && s == LMF_OK; i++) s = lmf_gpt_infer_next(m, kv, (int32_t)ids[i], pos++, logits);
    for (int i = 0; i < n && s == LMF_OK; i++) {
        int next = lmf_sample_logits(logits, V, temperature, top_k, top_p, lmf_rng_uniform(&rng), work);
        emit(tok, (uint32_t)next, out);
        if (pos >= maxT) break; /* context full */
        s = lmf_gpt_infer_next(m, kv, next, pos++, logits);
    }
    fputc('\n', out);
    fflush(out); /* before any later line on stderr, when both go to one file */
done:
    lmf_gpt_kv_free(kv);
    free(ids);
    free(logits);
    free(work);
    return s;
}

void lmf_cli_format_duration(double sec, char *buf, size_t cap) {
    if (!(sec >= 0) || sec > 1e8) { snprintf(buf, cap, "?"); return; }
    long s = (long)(sec + 0.5);
    if (s >= 3600) snprintf(buf, cap, "%ldh%02ldm", s / 3600, (s % 3600) / 60);
    else if (s >= 60) snprintf(buf, cap, "%ldm%02lds", s / 60, s % 60);
    else snprintf(buf, cap, "%lds", s);
}

/* Inference with a key/value cache through the model's own layer code and kernel table, and
 * text generation: a prompt fed in chunks, then one token at a time. */
#include <stdlib.h>
#include <string.h>

#include "lmforge/model.h"
#include "lmforge/rng.h"
#include "model/gpt_internal.h"

struct lmf_kv_cache {
    int max_T, chunk, len;
    layer_cache *layers;   /* [L]: their k, v point into kv */
    float *kv;             /* [L][2][max_T][C] */
    float *acts;           /* one set of layer activations for `chunk` positions, and: */
    layer_acts la;
    float *encoded, *lnf, *lnf_mean, *lnf_rstd, *att_scratch;
};

lmf_status lmf_gpt_kv_create(lmf_gpt *m, int max_T, int chunk, lmf_kv_cache **out) {
    const lmf_gpt_config *c = lmf_gpt_cfg(m);
    const lmf_kernels *k = lmf_gpt_kernels(m);
    *out = NULL;
    if (max_T < 1 || max_T > c->n_positions)
        return lmf_fail(LMF_ERR_ARG, "cache length %d must be in 1..n_positions (%d)", max_T,
                        c->n_positions);
    if (lmf_gpt_layout(m)->tp.size > 1)
        return lmf_fail(LMF_ERR_ARG, "inference runs on the whole model, not on one "
                        "tensor-parallel rank's slice of it");
    if (chunk <= 0) chunk = 64;
    if (chunk > max_T) chunk = max_T;
    lmf_kv_cache *kv = calloc(1, sizeof *kv);
    if (!kv) return lmf_fail(LMF_ERR_NOMEM, "cannot allocate the key/value cache");
    int L = c->n_layer;
    lmf_act_widths w;
    lmf_gpt_act_widths(c, &lmf_gpt_layout(m)->tp, &w);
    size_t C = (size_t)c->n_embd, n = (size_t)chunk;
    size_t per = (size_t)max_T * (size_t)lmf_config_kv_heads(c) * (C / (size_t)c->n_head);
    size_t scratch = k->attention_kv_scratch_floats(max_T);
    /* ln1, atty, residual2, ln2, residual3: 5 rows of C; qkv, fch, the activation; the two
     * norms' statistics; then encoded, lnf and its statistics (GPT-2: 16 rows of C, 4 + 2
     * statistics) */
    size_t floats = n * (5 * C + w.qkv + w.fch + w.act) + 2 * w.stats * n + 2 * n * C +
                    w.stats * n + scratch;
    size_t st = w.stats - 1; /* the mean: LayerNorm only */
    kv->layers = calloc((size_t)L, sizeof *kv->layers);
    kv->kv = malloc((size_t)L * 2 * per * sizeof(float));
    kv->acts = malloc(floats * sizeof(float));
    if (!kv->layers || !kv->kv || !kv->acts) {
        lmf_gpt_kv_free(kv);
        return lmf_fail(LMF_ERR_NOMEM, "cannot allocate a %d-position key/value cache (%.1f MB)",
                        max_T, (double)L * 2 * per * 4 / 1e6);
    }
    kv->max_T = max_T;
    kv->chunk = chunk;
    float *p = kv->acts;
    layer_acts *a = &kv->la;
    a->ln1 = take(&p, n * C); a->ln1_mean = take(&p, st * n); a->ln1_rstd = take(&p, n);
    a->qkv = take(&p, w.qkv * n); a->atty = take(&p, n * C); a->att_saved = NULL;
    a->residual2 = take(&p, n * C); a->ln2 = take(&p, n * C); a->ln2_mean = take(&p, st * n); a->ln2_rstd = take(&p, n);
    a->fch = take(&p, w.fch * n); a->fch_gelu = take(&p, w.act * n); a->residual3 = take(&p, n * C);
    kv->encoded = take(&p, n * C); kv->lnf = take(&p, n * C); kv->lnf_mean = take(&p, st * n); kv->lnf_rstd = take(&p, n);
    kv->att_scratch = take(&p, scratch);
    LMF_ASSERT((size_t)(p - kv->acts) == floats);
    for (int l = 0; l < L; l++) {
        kv->layers[l].k = kv->kv + (size_t)l * 2 * per;
        kv->layers[l].v = kv->layers[l].k + per;
        kv->layers[l].scratch = kv->att_scratch;
    }
    *out = kv;
    return LMF_OK;
}

void lmf_gpt_kv_free(lmf_kv_cache *kv) {
    if (!kv) return;
    free(kv->layers);
    free(kv->kv);
    free(kv->acts);
    free(kv);
}

int lmf_gpt_kv_length(const lmf_kv_cache *kv) { return kv->len; }

lmf_status lmf_gpt_kv_append(lmf_gpt *m, lmf_kv_cache *kv, const int32_t *tokens, int n,
                             float *logits) {
    const lmf_gpt_config *c = lmf_gpt_cfg(m);
    int C = c->n_embd, V = c->vocab_size;
    if (n < 1 || n > kv->max_T - kv->len)
        return lmf_fail(LMF_ERR_ARG, "%d more positions do not fit the cache (%d of %d used)", n,
                        kv->len, kv->max_T);
    for (int i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= V)
            return lmf_fail(LMF_ERR_ARG, "token id %d is outside the vocabulary (size %d)",
                            tokens[i], V);
    for (int done = 0; done < n;) {
        int T = n - done < kv->chunk ? n - done : kv->chunk;
        int pos = kv->len;
        float *p0 = lmf_gpt_block_params(m, 0, 0);
        const float *wte = p0, *wcls = p0 + lmf_gpt_classifier_offset(m);
        /* positions pos.. take their rows of wpe (GPT-2; Llama has none) */
        const float *wpe = c->family == LMF_FAMILY_LLAMA
                               ? NULL
                               : p0 + lmf_gpt_layout(m)->tensors[1].offset + (size_t)pos * C;
        encoder_forward(&m->ops, kv->encoded, tokens + done, wte, wpe, 1, T, C);
        lmf_gpt_layers_forward(m, &kv->la, 1, kv->encoded, kv->lnf, kv->lnf_mean, kv->lnf_rstd, 1,
                               T, kv->layers);
        kv->len += T;
        done += T;
        if (done == n) logits_forward(&m->ops, logits, kv->lnf + (size_t)(T - 1) * C, wcls, 1, C, V);
        lmf_gpt_release_params(m, 0, 0);
    }
    return LMF_OK;
}

lmf_status lmf_gpt_generate(lmf_gpt *m, const int32_t *prompt, int n_prompt, int n_new,
                            const lmf_sampling *s, int (*emit)(void *ctx, int32_t id), void *ctx,
                            int *n_out) {
    const lmf_gpt_config *c = lmf_gpt_cfg(m);
    int V = c->vocab_size, maxT = c->n_positions;
    *n_out = 0;
    if (n_prompt < 1) return lmf_fail(LMF_ERR_ARG, "generation needs a prompt of at least one token");
    if (n_prompt >= maxT)
        return lmf_fail(LMF_ERR_ARG, "the prompt has %d tokens; the model's context is %d", n_prompt,
                        maxT);
    float *logits = malloc((size_t)V * sizeof(float));
    void *work = malloc(lmf_sampler_work_bytes(V));
    lmf_kv_cache *kv = NULL;
    lmf_status st = logits && work ? LMF_OK : lmf_fail(LMF_ERR_NOMEM, "cannot allocate for sampling");
    if (st == LMF_OK) st = lmf_gpt_kv_create(m, maxT, 0, &kv);
    if (st == LMF_OK) st = lmf_gpt_kv_append(m, kv, prompt, n_prompt, logits);
    lmf_rng rng;
    lmf_rng_seed(&rng, s->seed);
    for (int i = 0; i < n_new && st == LMF_OK; i++) {
        int32_t next = lmf_sample_logits(logits, V, s->temperature, s->top_k, s->top_p,
                                         lmf_rng_uniform(&rng), work);
        (*n_out)++;
        if (emit(ctx, next) != 0) break;
        if (lmf_gpt_kv_length(kv) >= maxT) break; /* context full */
        if (i + 1 < n_new) st = lmf_gpt_kv_append(m, kv, &next, 1, logits);
    }
    lmf_gpt_kv_free(kv);
    free(logits);
    free(work);
    return st;
}

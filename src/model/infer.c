/* Token-by-token inference with a key/value cache (for sampling). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lmforge/model.h"

struct lmf_kv_cache {
    int max_T, L, C;
    float *k, *v;          /* [L, max_T, C] each */
    float *x, *ln, *qkv, *att, *proj, *h, *scores; /* one position's activations */
};

lmf_status lmf_gpt_kv_create(lmf_gpt *m, int max_T, lmf_kv_cache **out) {
    const lmf_gpt_config *c = lmf_gpt_cfg(m);
    *out = NULL;
    if (max_T < 1 || max_T > c->n_positions)
        return lmf_fail(LMF_ERR_ARG, "cache length %d must be in 1..n_positions (%d)", max_T,
                        c->n_positions);
    lmf_kv_cache *kv = calloc(1, sizeof *kv);
    if (!kv) return lmf_fail(LMF_ERR_NOMEM, "cannot allocate the key/value cache");
    size_t C = (size_t)c->n_embd, per = (size_t)c->n_layer * (size_t)max_T * C;
    kv->max_T = max_T;
    kv->L = c->n_layer;
    kv->C = c->n_embd;
    kv->k = malloc(per * sizeof(float));
    kv->v = malloc(per * sizeof(float));
    kv->x = malloc((C * 11 + (size_t)max_T) * sizeof(float));
    if (!kv->k || !kv->v || !kv->x) {
        lmf_gpt_kv_free(kv);
        return lmf_fail(LMF_ERR_NOMEM, "cannot allocate a %d-position key/value cache", max_T);
    }
    kv->ln = kv->x + C;
    kv->qkv = kv->ln + C;
    kv->att = kv->qkv + 3 * C;
    kv->proj = kv->att + C;
    kv->h = kv->proj + C;
    kv->scores = kv->h + 4 * C; /* max_T floats */
    *out = kv;
    return LMF_OK;
}

void lmf_gpt_kv_free(lmf_kv_cache *kv) {
    if (!kv) return;
    free(kv->k);
    free(kv->v);
    free(kv->x);
    free(kv);
}

lmf_status lmf_gpt_infer_next(lmf_gpt *m, lmf_kv_cache *kv, int32_t token, int pos, float *logits) {
    const lmf_gpt_config *c = lmf_gpt_cfg(m);
    const lmf_param_layout *lay = lmf_gpt_layout(m);
    const lmf_kernels *k = lmf_kernels_ref();
    int C = c->n_embd, NH = c->n_head, hs = C / NH, V = c->vocab_size;
    if (pos < 0 || pos >= kv->max_T)
        return lmf_fail(LMF_ERR_ARG, "position %d outside the cache (0..%d)", pos, kv->max_T - 1);
    if (token < 0 || token >= V)
        return lmf_fail(LMF_ERR_ARG, "token id %d is outside the vocabulary (size %d)", token, V);
    float *P = lmf_gpt_params(m);
    const float *wte = P, *wpe = P + lay->tensors[1].offset;
    float mean, rstd;
    for (int i = 0; i < C; i++) kv->x[i] = wte[(size_t)token * C + i] + wpe[(size_t)pos * C + i];
    float scale = 1.0f / sqrtf((float)hs);
    for (int l = 0; l < c->n_layer; l++) {
        lmf_layer_view w;
        lmf_layout_layer_view(c, P + lay->block_offset[1 + l], &w);
        float *kc = kv->k + ((size_t)l * kv->max_T) * C, *vc = kv->v + ((size_t)l * kv->max_T) * C;
        k->layernorm_forward(kv->ln, &mean, &rstd, kv->x, w.ln1w, w.ln1b, 1, C);
        k->matmul_forward(kv->qkv, kv->ln, w.qkvw, w.qkvb, 1, C, 3 * C);
        memcpy(kc + (size_t)pos * C, kv->qkv + C, (size_t)C * sizeof(float));
        memcpy(vc + (size_t)pos * C, kv->qkv + 2 * C, (size_t)C * sizeof(float));
        for (int h = 0; h < NH; h++) {
            const float *q = kv->qkv + h * hs;
            float mx = -INFINITY, sum = 0.0f;
            for (int t = 0; t <= pos; t++) {
                const float *kt = kc + (size_t)t * C + h * hs;
                float s = 0.0f;
                for (int i = 0; i < hs; i++) s += q[i] * kt[i];
                kv->scores[t] = s * scale;
                if (kv->scores[t] > mx) mx = kv->scores[t];
            }
            for (int t = 0; t <= pos; t++) {
                kv->scores[t] = expf(kv->scores[t] - mx);
                sum += kv->scores[t];
            }
            float *o = kv->att + h * hs;
            for (int i = 0; i < hs; i++) o[i] = 0.0f;
            for (int t = 0; t <= pos; t++) {
                const float *vt = vc + (size_t)t * C + h * hs;
                float p = kv->scores[t] / sum;
                for (int i = 0; i < hs; i++) o[i] += p * vt[i];
            }
        }
        k->matmul_forward(kv->proj, kv->att, w.attprojw, w.attprojb, 1, C, C);
        k->residual_forward(kv->x, kv->x, kv->proj, (size_t)C);
        k->layernorm_forward(kv->ln, &mean, &rstd, kv->x, w.ln2w, w.ln2b, 1, C);
        k->matmul_forward(kv->h, kv->ln, w.fcw, w.fcb, 1, C, 4 * C);
        k->gelu_forward(kv->h, kv->h, 4 * (size_t)C);
        k->matmul_forward(kv->proj, kv->h, w.fcprojw, w.fcprojb, 1, 4 * C, C);
        k->residual_forward(kv->x, kv->x, kv->proj, (size_t)C);
    }
    float *lnf = P + lay->block_offset[c->n_layer + 1];
    k->layernorm_forward(kv->ln, &mean, &rstd, kv->x, lnf, lnf + C, 1, C);
    for (int v = 0; v < V; v++) {
        const float *wr = wte + (size_t)v * C;
        float s = 0.0f;
        for (int i = 0; i < C; i++) s += kv->ln[i] * wr[i];
        logits[v] = s;
    }
    return LMF_OK;
}

/* The Llama family's transformer layer, forward and backward over the kernel table: RMSNorm,
 * q/k/v with grouped key/value heads, rotary positions, attention, o; RMSNorm, gate and up,
 * SwiGLU, down; no biases. gpt.c runs it in place of the GPT-2 layer. */
#include <string.h>

#include "model/gpt_internal.h"

/* the shapes of one layer */
typedef struct llama_dims {
    int C, NH, NKV, hs, KV, W, F, BT;
    int R;          /* rows of x, the norms and the residual stream on this rank */
    size_t RC;
    size_t BTC, BTF;
    float eps, theta;
} llama_dims;

/* the shapes this rank computes (its heads and feed-forward columns under tensor parallelism) */
static llama_dims dims(const lmf_gpt *m, int B, int T) {
    const lmf_gpt_config *c = &m->cfg;
    const lmf_tp_dims *tp = &m->layout.tp;
    llama_dims d;
    d.C = c->n_embd;
    d.NH = tp->heads;
    d.NKV = tp->kv_heads;
    d.hs = d.C / c->n_head;
    d.KV = tp->kv_width;
    d.W = tp->width;
    d.F = tp->ffn;
    d.BT = B * T;
    d.R = lmf_gpt_local_rows(m, d.BT);
    d.RC = (size_t)d.R * d.C;
    d.BTC = (size_t)d.BT * d.C;
    d.BTF = (size_t)d.BT * d.F;
    d.eps = c->rms_norm_eps;
    d.theta = c->rope_theta;
    return d;
}

/* Activations (a->qkv holds q [BT,C], then k and v [BT,KV]; a->fch holds gate, then up
 * [BT,F]; a->fch_gelu the SwiGLU [BT,F]). to_output = 0 stops after the SwiGLU: what a
 * recomputing backward needs again; with 1, a->residual3 = residual2 + down(SwiGLU). With a
 * cache (B = 1), the keys and values of the T new positions are appended to it and attention
 * runs over all of it; the rotary positions start at the cache's length. */
void lmf_llama_layer_forward(lmf_gpt *m, const lmf_layer_view *w, layer_acts *a, const float *x,
                             int B, int T, int to_output, layer_cache *cache) {
    lmf_ops *o = &m->ops;
    llama_dims d = dims(m, B, T);
    float *q = a->qkv, *k = q + (size_t)d.BT * d.W, *v = k + (size_t)d.BT * d.KV;
    float *gate = a->fch, *up = gate + d.BTF;
    rmsnorm_forward(o, a->ln1, a->ln1_rstd, x, w->ln1w, d.eps, d.R, d.C);
    const float *ln1 = lmf_gpt_sp_gather(m, a->ln1, d.BT); /* every row */
    matmul_forward(o, q, ln1, w->qw, NULL, d.BT, d.C, d.W);
    matmul_forward(o, k, ln1, w->kw, NULL, d.BT, d.C, d.KV);
    matmul_forward(o, v, ln1, w->vw, NULL, d.BT, d.C, d.KV);
    rope_forward(o, q, k, B, T, d.NH, d.NKV, d.hs, cache ? cache->past : 0, d.theta);
    if (cache) {
        size_t rows = (size_t)T * d.KV * sizeof(float);
        memcpy(cache->k + (size_t)cache->past * d.KV, k, rows);
        memcpy(cache->v + (size_t)cache->past * d.KV, v, rows);
        gqa_attention_kv_forward(o, a->atty, cache->scratch, q, cache->k, cache->v, cache->past, T,
                                 d.NH, d.NKV, d.hs);
        cache->past += T;
    } else {
        gqa_attention_forward(o, a->atty, a->att_saved, q, k, v, m->cur_doc, B, T, d.NH, d.NKV,
                              d.hs);
    }
    /* row-parallel: partial sums, summed over the group (or summed and scattered by rows) */
    float *part = lmf_gpt_sp_partial(m, a->residual2);
    matmul_forward(o, part, a->atty, w->ow, NULL, d.BT, d.W, d.C);
    lmf_gpt_sp_reduce(m, part, a->residual2, d.BT);
    residual_forward(o, a->residual2, x, a->residual2, d.RC);
    rmsnorm_forward(o, a->ln2, a->ln2_rstd, a->residual2, w->ln2w, d.eps, d.R, d.C);
    const float *ln2 = lmf_gpt_sp_gather(m, a->ln2, d.BT);
    matmul_forward(o, gate, ln2, w->gatew, NULL, d.BT, d.C, d.F);
    matmul_forward(o, up, ln2, w->upw, NULL, d.BT, d.C, d.F);
    swiglu_forward(o, a->fch_gelu, gate, up, d.BTF);
    if (!to_output) return;
    part = lmf_gpt_sp_partial(m, a->residual3);
    matmul_forward(o, part, a->fch_gelu, w->downw, NULL, d.BT, d.F, d.C);
    lmf_gpt_sp_reduce(m, part, a->residual3, d.BT);
    residual_forward(o, a->residual3, a->residual2, a->residual3, d.RC);
}

/* The layer's backward: m->dres holds d residual3 and receives d x (the norms' backward adds
 * into it: the residual stream). Weight gradients accumulate into g. Scratch: m->dbtc, m->dqkv
 * (dq, dk, dv; first the temporary of up's input gradient), m->d4a (d SwiGLU, then d gate in
 * place and d up after it; later the temporary of k's and v's input gradients). */
void lmf_llama_layer_backward(lmf_gpt *m, const lmf_layer_view *w, const lmf_layer_view *g,
                              layer_acts *a, const float *x, int B, int T) {
    lmf_ops *o = &m->ops;
    llama_dims d = dims(m, B, T);
    const float *q = a->qkv, *k = q + (size_t)d.BT * d.W, *v = k + (size_t)d.BT * d.KV;
    const float *gate = a->fch, *up = gate + d.BTF;
    if (m->reserved_recompute == LMF_RECOMPUTE_FULL)
        lmf_llama_layer_forward(m, w, a, x, B, T, 0, NULL);
    else if (m->reserved_recompute == LMF_RECOMPUTE_SELECTIVE)
        swiglu_forward(o, a->fch_gelu, gate, up, d.BTF);
    /* MLP branch */
    float *dgate = m->d4a, *dup = m->d4a + d.BTF;
    float *dl = lmf_gpt_sp_partial(m, m->dbtc); /* a norm's output gradient, this rank's rows */
    matmul_backward(o, dgate, g->downw, NULL, lmf_gpt_sp_gather(m, m->dres, d.BT), a->fch_gelu,
                    w->downw, d.BT, d.F, d.C);
    swiglu_backward(o, dgate, dup, dgate, gate, up, d.BTF);
    const float *ln2 = lmf_gpt_sp_gather(m, a->ln2, d.BT);
    matmul_backward(o, m->dbtc, g->gatew, NULL, dgate, ln2, w->gatew, d.BT, d.C, d.F);
    matmul_backward(o, m->dqkv, g->upw, NULL, dup, ln2, w->upw, d.BT, d.C, d.F);
    residual_forward(o, m->dbtc, m->dbtc, m->dqkv, d.BTC);
    lmf_gpt_sp_reduce(m, m->dbtc, dl, d.BT);
    rmsnorm_backward(o, m->dres, g->ln2w, dl, a->residual2, w->ln2w, a->ln2_rstd, d.R, d.C);
    /* attention branch */
    float *dq = m->dqkv, *dk = dq + (size_t)d.BT * d.W, *dv = dk + (size_t)d.BT * d.KV;
    matmul_backward(o, m->dbtc, g->ow, NULL, lmf_gpt_sp_gather(m, m->dres, d.BT), a->atty, w->ow,
                    d.BT, d.W, d.C);
    gqa_attention_backward(o, dq, dk, dv, m->att_scratch, m->dbtc, q, k, v, a->att_saved,
                           m->cur_doc, B, T, d.NH, d.NKV, d.hs);
    rope_backward(o, dq, dk, B, T, d.NH, d.NKV, d.hs, 0, d.theta);
    const float *ln1 = lmf_gpt_sp_gather(m, a->ln1, d.BT);
    matmul_backward(o, m->dbtc, g->qw, NULL, dq, ln1, w->qw, d.BT, d.C, d.W);
    matmul_backward(o, m->d4a, g->kw, NULL, dk, ln1, w->kw, d.BT, d.C, d.KV);
    residual_forward(o, m->dbtc, m->dbtc, m->d4a, d.BTC);
    matmul_backward(o, m->d4a, g->vw, NULL, dv, ln1, w->vw, d.BT, d.C, d.KV);
    residual_forward(o, m->dbtc, m->dbtc, m->d4a, d.BTC);
    lmf_gpt_sp_reduce(m, m->dbtc, dl, d.BT);
    rmsnorm_backward(o, m->dres, g->ln1w, dl, x, w->ln1w, a->ln1_rstd, d.R, d.C);
}

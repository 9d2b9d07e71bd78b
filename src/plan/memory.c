/* Planner memory formulas (parameter state by ZeRO stage and dtype, activations by
 * recomputation mode and parallel split, parameters per stage from the model's description)
 * and the generic device's memory per pipeline stage. */
#include "plan/plan_model.h"

#include <assert.h>
#include <math.h>

void lmf_plan_param_bytes(lmf_plan_dtype d, double *w, double *g, double *opt) {
    if (d == LMF_PLAN_FP32) {
        /* lmforge's trainer: fp32 weights and gradients, AdamW m and v (DESIGN.md: 16 B) */
        *w = 4.0;
        *g = 4.0;
        *opt = 8.0;
    } else {
        /* mixed precision (Rajbhandari et al. 2020, Sec. 3.1): 16-bit weights and gradients
         * (bf16 or fp16; fp8 keeps 16-bit copies too), fp32 master weights, m and v: K = 12 */
        *w = 2.0;
        *g = 2.0;
        *opt = 12.0;
    }
}

double lmf_plan_act_elem_bytes(lmf_plan_dtype d) {
    /* fp8 training keeps activations outside the matrix-product operands in 16 bits; the
     * planner counts all of them at 2 bytes (an upper bound). */
    return d == LMF_PLAN_FP32 ? 4.0 : 2.0;
}

void lmf_plan_state_bytes(lmf_plan_dtype d, int zero, int dp, double P, double *w, double *g,
                          double *opt) {
    double bw, bg, bo;
    assert(dp >= 1 && zero >= 0 && zero <= 3);
    lmf_plan_param_bytes(d, &bw, &bg, &bo);
    *w = P * bw / (zero >= 3 ? dp : 1);
    *g = P * bg / (zero >= 2 ? dp : 1);
    *opt = P * bo / (zero >= 1 ? dp : 1);
}

double lmf_plan_act_layer_bytes(const lmf_plan_act_shape *sh, lmf_recompute rc) {
    double t = sh->t, e = sh->e;
    double r = sh->sp ? 1.0 / t : 1.0;          /* share of the replicated regions kept */
    double mask = sh->dropout ? 1.0 : 0.0;      /* one byte per dropout mask value */
    double sbh = sh->s * sh->b * sh->h;
    if (rc == LMF_RECOMPUTE_FULL) return sbh * e * r;
    /* Outside the tensor-parallel regions: inputs of the two LayerNorms, of the QKV and of
     * the first MLP product (4 values), plus two dropout masks. Inside: Q, K, V (3), the input
     * of the attention output product (1), of the GELU (4) and of the second MLP product (4). */
    double inner = sh->inner > 0 ? sh->inner / sh->h : 12.0;
    double per_token = (4.0 * e + 2.0 * mask) * r + inner * e / t;
    double bytes = sbh * per_token;
    if (sh->flash) {
        bytes += sh->a * sh->s * sh->b * 4.0 / t;
    } else if (rc == LMF_RECOMPUTE_NONE) {
        /* attention matrix: softmax output, plus dropout mask and output with dropout */
        double per_score = sh->dropout ? 2.0 * e + 1.0 : e;
        bytes += sh->a * sh->s * sh->s * sh->b * per_score / t;
    }
    return bytes;
}

double lmf_plan_layer_inner_width(const lmf_gpt_config *cfg) {
    lmf_linear_desc lin[LMF_LAYER_LINEARS];
    int n = lmf_layer_linears(cfg, lin);
    double w = 0.0;
    for (int i = 0; i < n; i++) w += lin[i].split == LMF_SPLIT_COLUMN ? lin[i].out : lin[i].in;
    return w;
}

double lmf_plan_kv_width(const lmf_gpt_config *cfg) {
    lmf_linear_desc lin[LMF_LAYER_LINEARS];
    int n = lmf_layer_linears(cfg, lin);
    double attn_in = 0.0;
    for (int i = 0; i < n && lin[i].split == LMF_SPLIT_COLUMN; i++) attn_in += lin[i].out;
    return attn_in - cfg->n_embd;
}

double lmf_plan_layer_params(const lmf_gpt_config *m, int tp) {
    int64_t split, replicated;
    lmf_layer_params_split(m, &split, &replicated);
    return (double)split / tp + (double)replicated;
}

double lmf_plan_stage_layers(const lmf_gpt_config *m, int pp) {
    return ceil((double)m->n_layer / pp);
}

int lmf_plan_chunks_fit(const lmf_gpt_config *m, int pp, int v) {
    return pp >= 1 && v >= 1 && (int64_t)pp * v <= m->n_layer && (int)lmf_plan_stage_layers(m, pp) % v == 0;
}

double lmf_plan_stage_params(const lmf_gpt_config *m, int tp, int pp, lmf_plan_stage stage) {
    double h = m->n_embd;
    double vocab_rows = ceil((double)lmf_config_padded_vocab(m) / tp);
    double layers = lmf_plan_stage_layers(m, pp) * lmf_plan_layer_params(m, tp);
    int llama = m->family == LMF_FAMILY_LLAMA;
    /* GPT-2: token and position embeddings, LayerNorm weight and bias; Llama: token embedding,
     * RMSNorm weight, and an untied lm_head on the last stage */
    double embed = vocab_rows * h + (llama ? 0.0 : (double)m->n_positions * h);
    double final_ln = (llama ? 1.0 : 2.0) * h;
    if (pp == 1) return layers + embed + final_ln + (lmf_config_tied(m) ? 0.0 : vocab_rows * h);
    if (stage == LMF_PLAN_STAGE_FIRST) return layers + embed;
    return layers + final_ln + vocab_rows * h; /* tied output embedding copy (Megatron-LM) */
}

void lmf_plan_generic_memory(const lmf_plan_setup *s, int micro_batches, lmf_plan_stage stage,
                             lmf_plan_memory *out) {
    const lmf_cluster *c = s->cluster;
    const lmf_plan_job *job = s->job;
    const lmf_plan_layout *l = s->layout;
    const lmf_gpt_config *m = &job->model;
    double P = lmf_plan_stage_params(m, l->tp, l->pp, stage);
    double bw, bg, bo;
    lmf_plan_param_bytes(l->dtype, &bw, &bg, &bo);
    int nd = lmf_plan_grad_ranks(l), cp = lmf_plan_cp(l);
    lmf_plan_state_bytes(l->dtype, l->zero, nd, P, &out->weights, &out->grads, &out->optimizer);

    /* the layer's activations for whole sequences; context parallelism keeps 1/cp of every
     * term: s/cp tokens, and their scores against all s keys */
    lmf_plan_act_shape sh = {
        .s = job->seq, .b = l->micro_batch, .h = m->n_embd, .a = m->n_head, .t = l->tp,
        .sp = l->sequence_parallel, .e = lmf_plan_act_elem_bytes(l->dtype), .dropout = job->dropout,
        .inner = lmf_plan_layer_inner_width(m), .flash = job->attention == LMF_PLAN_ATTN_FLASH};
    double r = l->sequence_parallel ? 1.0 / l->tp : 1.0;
    double sbh = sh.s * sh.b * sh.h / cp;
    int first = stage == LMF_PLAN_STAGE_FIRST, last = l->pp == 1 || stage == LMF_PLAN_STAGE_LAST;
    /* micro-batches' worth of the stage's layers held at its peak, from the schedule's
     * simulation (lmf_plan_schedule_prepare): 1F1B keeps min(pp - i, m) on stage i; interleaved
     * over v chunks, the first rank pp + (pp - 1)/v (Korthikanti et al. 2022: L(1 + (p - 1)/(pv))
     * layers); GPipe all m; ZB-H1 at most pp on any stage */
    double inflight = 1.0;
    if (l->pp > 1) {
        LMF_ASSERT(s->pipe.ready);
        inflight = s->pipe.inflight[first ? LMF_PLAN_STAGE_FIRST : LMF_PLAN_STAGE_LAST];
    }
    (void)micro_batches;
    double layers = lmf_plan_stage_layers(m, l->pp);
    double act = inflight * layers * lmf_plan_act_layer_bytes(&sh, l->recompute) / cp;
    /* working set of the layer being back-propagated (or recomputed): its full activations */
    act += lmf_plan_act_layer_bytes(&sh, LMF_RECOMPUTE_NONE) / cp;
    if (first && job->dropout) act += inflight * sbh * r; /* embedding dropout mask */
    if (last) {
        double vocab_cols = ceil((double)lmf_config_padded_vocab(m) / l->tp);
        /* final LayerNorm input and output, fp32 logits for the cross-entropy */
        act += 2.0 * sbh * sh.e * r + 4.0 * sh.s / cp * sh.b * vocab_cols;
    }
    out->activations = act;

    /* buffers as lmforge's data-parallel engine (src/parallel/ddp.c) holds them: stages 0/1
     * reduce in place; stages 2/3 stage gradient buckets (the embedding bucket and two
     * rotating ones, each with its reduce-scatter output); stage 3 also keeps gathered weights
     * (the embeddings, the current and the prefetched layer) */
    double buf = 0.0;
    double emb = first ? ceil((double)lmf_config_padded_vocab(m) / l->tp) * m->n_embd +
                             (m->family == LMF_FAMILY_LLAMA ? 0.0 : (double)m->n_positions * m->n_embd)
                       : 0.0;
    double layer_p = lmf_plan_layer_params(m, l->tp);
    if (nd > 1 && l->zero >= 2) {
        double per_bucket = ceil(LMF_PLAN_BUCKET_BYTES / (layer_p * bg));
        double cap = fmin(layers, per_bucket) * layer_p * bg;
        buf += (emb * bg + 2.0 * cap) * (1.0 + 1.0 / nd);
    }
    if (nd > 1 && l->zero == 3) buf += (emb + 2.0 * layer_p) * bw;
    if (l->pp > 1) buf += 2.0 * sbh * sh.e * r; /* send and receive of the boundary activation */
    out->buffers = buf;
    out->checkpoint = 0.0;
    out->process = 0.0;

    out->total = out->weights + out->grads + out->optimizer + out->activations + out->buffers;
    out->capacity = c->device_memory - c->memory_reserved;
    out->margin = out->capacity - out->total;
    out->fits = out->margin >= 0.0;
    out->stage = stage;
}

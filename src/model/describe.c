/* The model described once: the layer's products and parameter counts, attention FLOPs, the
 * kernel work of a training step and the activation block's size, all without a model.
 * test_model_description checks them against what gpt.c really calls. */
#include "lmforge/model.h"

#include <string.h>

#include "model/gpt_internal.h"

lmf_status lmf_tp_dims_get(const lmf_gpt_config *c, const lmf_tp_config *tp, lmf_tp_dims *d) {
    memset(d, 0, sizeof *d);
    int T = tp && tp->size > 1 ? tp->size : 1, r = T > 1 ? tp->rank : 0;
    int NH = c->n_head, NKV = lmf_config_kv_heads(c), hs = c->n_embd / c->n_head;
    int F = lmf_config_ffn(c), Vp = lmf_config_padded_vocab(c);
    if (r < 0 || r >= T)
        return lmf_fail(LMF_ERR_ARG, "tensor-parallel rank %d outside 0..%d", r, T - 1);
    if (NH % T != 0)
        return lmf_fail(LMF_ERR_ARG, "--tp %d does not divide the model's %d attention heads; "
                        "choose a divisor of %d", T, NH, NH);
    if (NKV % T != 0 && T % NKV != 0)
        return lmf_fail(LMF_ERR_ARG, "--tp %d and the model's %d key/value heads: one must "
                        "divide the other", T, NKV);
    if (F % T != 0)
        return lmf_fail(LMF_ERR_ARG, "--tp %d does not divide the feed-forward width %d", T, F);
    if (Vp % T != 0)
        return lmf_fail(LMF_ERR_ARG, "--tp %d does not divide the padded vocabulary %d (a "
                        "multiple of %d); choose a power of two up to %d", T, Vp, LMF_VOCAB_PAD,
                        LMF_VOCAB_PAD);
    d->size = T;
    d->rank = r;
    d->heads = NH / T;
    d->kv_shared = NKV % T == 0 ? 1 : T / NKV;
    d->kv_heads = NKV % T == 0 ? NKV / T : 1;
    d->kv_head0 = NKV % T == 0 ? r * d->kv_heads : r / d->kv_shared;
    d->width = d->heads * hs;
    d->kv_width = d->kv_heads * hs;
    d->ffn = F / T;
    d->vocab_rows = Vp / T;
    d->vocab0 = r * d->vocab_rows;
    int real = c->vocab_size - d->vocab0;
    d->vocab_real = real < 0 ? 0 : real > d->vocab_rows ? d->vocab_rows : real;
    d->sequence_parallel = T > 1 && tp->sequence_parallel;
    return LMF_OK;
}

int lmf_layer_linears(const lmf_gpt_config *c, lmf_linear_desc out[LMF_LAYER_LINEARS]) {
    int C = c->n_embd;
    if (c->family == LMF_FAMILY_LLAMA) {
        int KV = lmf_config_kv_heads(c) * (C / c->n_head), F = lmf_config_ffn(c);
        out[0] = (lmf_linear_desc){"self_attn.q_proj", C, C, 0, 0, LMF_SPLIT_COLUMN};
        out[1] = (lmf_linear_desc){"self_attn.k_proj", C, KV, 0, 0, LMF_SPLIT_COLUMN};
        out[2] = (lmf_linear_desc){"self_attn.v_proj", C, KV, 0, 0, LMF_SPLIT_COLUMN};
        out[3] = (lmf_linear_desc){"self_attn.o_proj", C, C, 0, 0, LMF_SPLIT_ROW};
        out[4] = (lmf_linear_desc){"mlp.gate_proj", C, F, 0, 0, LMF_SPLIT_COLUMN};
        out[5] = (lmf_linear_desc){"mlp.up_proj", C, F, 0, 0, LMF_SPLIT_COLUMN};
        out[6] = (lmf_linear_desc){"mlp.down_proj", F, C, 0, 0, LMF_SPLIT_ROW};
        return 7;
    }
    out[0] = (lmf_linear_desc){"attn.c_attn", C, 3 * C, 1, 0, LMF_SPLIT_COLUMN};
    out[1] = (lmf_linear_desc){"attn.c_proj", C, C, 1, 0, LMF_SPLIT_ROW};
    out[2] = (lmf_linear_desc){"mlp.c_fc", C, 4 * C, 1, 1, LMF_SPLIT_COLUMN};
    out[3] = (lmf_linear_desc){"mlp.c_proj", 4 * C, C, 1, 0, LMF_SPLIT_ROW};
    return 4;
}

void lmf_layer_params_split(const lmf_gpt_config *c, int64_t *split, int64_t *replicated) {
    lmf_linear_desc lin[LMF_LAYER_LINEARS];
    int n = lmf_layer_linears(c, lin);
    /* two LayerNorms, weight and bias (GPT-2), or two RMSNorm weights (Llama) */
    int64_t s = 0, r = (c->family == LMF_FAMILY_LLAMA ? 2 : 4) * (int64_t)c->n_embd;
    for (int i = 0; i < n; i++) {
        s += (int64_t)lin[i].in * lin[i].out;
        if (lin[i].bias) *(lin[i].split == LMF_SPLIT_COLUMN ? &s : &r) += lin[i].out;
    }
    *split = s;
    *replicated = r;
}

int64_t lmf_layer_params(const lmf_gpt_config *c) {
    int64_t s, r;
    lmf_layer_params_split(c, &s, &r);
    return s + r;
}

double lmf_attention_flops(int B, int T, int C, int backward) {
    double f = 2.0 * (double)B * (double)C * (double)T * ((double)T + 1.0);
    return backward ? 2.5 * f : f;
}

const char *lmf_op_name(lmf_op op) {
    static const char *const names[LMF_OP_COUNT] = {
        "encoder_forward", "encoder_backward", "layernorm_forward", "residual_layernorm_forward",
        "layernorm_backward", "matmul_forward", "matmul_backward", "attention_forward",
        "attention_backward", "gelu_forward", "gelu_bias_backward", "classifier", "zero",
        "rmsnorm_forward", "rmsnorm_backward", "rope", "swiglu_forward", "swiglu_backward",
        "residual"};
    return (int)op >= 0 && op < LMF_OP_COUNT ? names[op] : "?";
}

static void add(lmf_step_work *w, lmf_op op, double calls, double flops, double values) {
    w->op[op].calls += calls;
    w->op[op].flops += calls * flops;
    w->op[op].values += calls * values;
}

/* The layer's products as one rank computes them: a column-parallel weight's outputs and a
 * row-parallel one's inputs divided over the group (grouped key/value heads: the rank's own). */
static int rank_linears(const lmf_gpt_config *c, const lmf_tp_dims *d,
                        lmf_linear_desc lin[LMF_LAYER_LINEARS]) {
    int n = lmf_layer_linears(c, lin);
    for (int i = 0; i < n && d->size > 1; i++) {
        if (lin[i].split == LMF_SPLIT_ROW) lin[i].in /= d->size;
        else if (c->family == LMF_FAMILY_LLAMA && (i == 1 || i == 2)) /* k_proj, v_proj */
            lin[i].out = d->kv_width;
        else lin[i].out /= d->size;
    }
    return n;
}

/* the layer's products in the forward (all, or those a full recomputation re-runs: every one
 * but the MLP's down projection, whose output the backward does not need) */
static void layer_products_forward(lmf_step_work *w, const lmf_gpt_config *c,
                                   const lmf_tp_dims *d, double N, double L, int recompute) {
    lmf_linear_desc lin[LMF_LAYER_LINEARS];
    int n = rank_linears(c, d, lin);
    for (int i = 0; i < n - (recompute ? 1 : 0); i++)
        add(w, LMF_OP_MATMUL_FORWARD, L, 2.0 * N * lin[i].in * lin[i].out, N * lin[i].out);
}

static void layer_products_backward(lmf_step_work *w, const lmf_gpt_config *c,
                                    const lmf_tp_dims *d, double N, double L) {
    lmf_linear_desc lin[LMF_LAYER_LINEARS];
    int n = rank_linears(c, d, lin);
    for (int i = 0; i < n; i++)
        add(w, LMF_OP_MATMUL_BACKWARD, L, 4.0 * N * lin[i].in * lin[i].out, N * lin[i].in);
}

/* Mirrors lmf_gpt_forward and lmf_gpt_backward (gpt.c) call by call. */
const char *lmf_recompute_name(lmf_recompute r) {
    switch (r) {
    case LMF_RECOMPUTE_NONE: return "none";
    case LMF_RECOMPUTE_SELECTIVE: return "selective";
    case LMF_RECOMPUTE_FULL: return "full";
    default: return "?";
    }
}

lmf_status lmf_recompute_parse(const char *s, lmf_recompute *r) {
    for (int i = LMF_RECOMPUTE_NONE; i <= LMF_RECOMPUTE_FULL; i++)
        if (s && strcmp(s, lmf_recompute_name((lmf_recompute)i)) == 0) {
            *r = (lmf_recompute)i;
            return LMF_OK;
        }
    return lmf_fail(LMF_ERR_ARG, "recomputation mode must be none, selective or full (got '%s')",
                    s ? s : "");
}

/* The Llama family: mirrors llama.c call by call. Per layer forward: two RMSNorms, the seven
 * products, the rotary embedding of q and k, attention, the SwiGLU, two residual adds.
 * Backward: what recomputation brings back, the seven products' backward, the SwiGLU's, three
 * adds (the input gradients of gate and up, of q and k, of v summed), attention, the rotary
 * transpose, two RMSNorms. */
static void llama_step_work(const lmf_gpt_config *c, const lmf_tp_dims *d, int B, int T,
                            lmf_recompute rc, lmf_step_work *fw, lmf_step_work *bw) {
    double L = c->n_layer, C = c->n_embd, N = (double)B * T;
    double R = d->sequence_parallel ? N / d->size : N, E = R * C; /* the residual stream's rows */
    double A = N * d->width, KV = d->kv_width, F = d->ffn;         /* the rank's heads */
    double att_f = lmf_attention_flops(B, T, d->width, 0);
    double att_b = lmf_attention_flops(B, T, d->width, 1);

    add(fw, LMF_OP_ENCODER_FORWARD, 1, 0, E);
    add(fw, LMF_OP_RMSNORM_FORWARD, 2 * L + 1, 0, E);
    layer_products_forward(fw, c, d, N, L, 0);
    add(fw, LMF_OP_ROPE, L, 0, A + N * KV);
    add(fw, LMF_OP_ATTENTION_FORWARD, L, att_f, A);
    add(fw, LMF_OP_RESIDUAL, 2 * L, 0, E);
    add(fw, LMF_OP_SWIGLU_FORWARD, L, 0, N * F);
    add(fw, LMF_OP_CLASSIFIER, 1, 3.0 * 2.0 * N * C * d->vocab_real, N * d->vocab_real);

    add(bw, LMF_OP_ZERO, 1, 0, E);
    add(bw, LMF_OP_RMSNORM_BACKWARD, 1 + 2 * L, 0, E);
    if (rc == LMF_RECOMPUTE_FULL) {
        add(bw, LMF_OP_RMSNORM_FORWARD, 2 * L, 0, E);
        layer_products_forward(bw, c, d, N, L, 1);
        add(bw, LMF_OP_ROPE, L, 0, A + N * KV);
        add(bw, LMF_OP_ATTENTION_FORWARD, L, att_f, A);
        add(bw, LMF_OP_RESIDUAL, L, 0, E);
        add(bw, LMF_OP_SWIGLU_FORWARD, L, 0, N * F);
    } else if (rc == LMF_RECOMPUTE_SELECTIVE) {
        add(bw, LMF_OP_SWIGLU_FORWARD, L, 0, N * F);
    }
    layer_products_backward(bw, c, d, N, L);
    add(bw, LMF_OP_SWIGLU_BACKWARD, L, 0, N * F);
    add(bw, LMF_OP_RESIDUAL, 3 * L, 0, E);
    add(bw, LMF_OP_ATTENTION_BACKWARD, L, att_b, A);
    add(bw, LMF_OP_ROPE, L, 0, A + N * KV);
    add(bw, LMF_OP_ENCODER_BACKWARD, 1, 0, E);
}

void lmf_gpt_step_work(const lmf_gpt_config *c, int B, int T, lmf_recompute rc,
                       lmf_step_work *fw, lmf_step_work *bw) {
    lmf_gpt_step_work_tp(c, NULL, B, T, rc, fw, bw);
}

void lmf_gpt_step_work_tp(const lmf_gpt_config *c, const lmf_tp_config *tp, int B, int T,
                          lmf_recompute rc, lmf_step_work *fw, lmf_step_work *bw) {
    memset(fw, 0, sizeof *fw);
    memset(bw, 0, sizeof *bw);
    lmf_tp_config one = {1, 0, 0};
    lmf_tp_dims d;
    if (lmf_tp_dims_get(c, tp && tp->size > 1 ? tp : &one, &d) != LMF_OK) return;
    if (c->family == LMF_FAMILY_LLAMA) {
        llama_step_work(c, &d, B, T, rc, fw, bw);
        return;
    }
    double L = c->n_layer, C = c->n_embd, N = (double)B * T;
    double R = d.sequence_parallel ? N / d.size : N, E = R * C; /* the residual stream's rows */
    double A = N * d.width, F = N * d.ffn;                      /* the rank's heads, MLP */
    double att_f = lmf_attention_flops(B, T, d.width, 0);
    double att_b = lmf_attention_flops(B, T, d.width, 1);

    /* forward: embeddings; layer 0's ln1 alone, every later ln1 fused with the previous
     * layer's last residual add, each layer's ln2 fused with its first, the final LayerNorm
     * fused with the last layer's; the four products and attention per layer; the classifier
     * with its backward (vocabulary parallel: the rank's rows of the vocabulary, every row) */
    add(fw, LMF_OP_ENCODER_FORWARD, 1, 0, E);
    add(fw, LMF_OP_LAYERNORM_FORWARD, 1, 0, E);
    add(fw, LMF_OP_RESIDUAL_LAYERNORM_FORWARD, 2 * L, 0, E);
    layer_products_forward(fw, c, &d, N, L, 0);
    add(fw, LMF_OP_ATTENTION_FORWARD, L, att_f, A);
    add(fw, LMF_OP_CLASSIFIER, 1, 3.0 * 2.0 * N * C * d.vocab_real, N * d.vocab_real);

    /* backward: the residual stream's gradient cleared once; the final LayerNorm; per layer
     * what recomputation brings back, the products' backward, the GELU with the MLP bias's
     * gradient, attention, two LayerNorms; the embeddings */
    add(bw, LMF_OP_ZERO, 1, 0, E);
    add(bw, LMF_OP_LAYERNORM_BACKWARD, 1 + 2 * L, 0, E);
    if (rc == LMF_RECOMPUTE_FULL) {
        add(bw, LMF_OP_LAYERNORM_FORWARD, L, 0, E);
        add(bw, LMF_OP_RESIDUAL_LAYERNORM_FORWARD, L, 0, E);
        layer_products_forward(bw, c, &d, N, L, 1);
        add(bw, LMF_OP_ATTENTION_FORWARD, L, att_f, A);
    } else if (rc == LMF_RECOMPUTE_SELECTIVE) {
        add(bw, LMF_OP_GELU_FORWARD, L, 0, F);
    }
    layer_products_backward(bw, c, &d, N, L);
    add(bw, LMF_OP_GELU_BIAS_BACKWARD, L, 0, F);
    add(bw, LMF_OP_ATTENTION_BACKWARD, L, att_b, A);
    add(bw, LMF_OP_ENCODER_BACKWARD, 1, 0, E);
}

/* The same sum as lmf_gpt_reserve's views (gpt.c), so planners can size a run without
 * allocating it. */
size_t lmf_gpt_activation_floats(const lmf_gpt_config *cfg, const lmf_kernels *k, int B, int T,
                                 lmf_reserve_mode mode, lmf_recompute recompute) {
    return lmf_gpt_activation_floats_tp(cfg, NULL, k, B, T, mode, recompute);
}

size_t lmf_gpt_activation_floats_tp(const lmf_gpt_config *cfg, const lmf_tp_config *tp,
                                    const lmf_kernels *k, int B, int T, lmf_reserve_mode mode,
                                    lmf_recompute recompute) {
    return lmf_gpt_stage_activation_floats(cfg, tp, k, B, T, mode, recompute, cfg->n_layer, 1);
}

size_t lmf_gpt_stage_activation_floats(const lmf_gpt_config *cfg, const lmf_tp_config *tp,
                                       const lmf_kernels *k, int B, int T, lmf_reserve_mode mode,
                                       lmf_recompute recompute, int layers, int classifier) {
    lmf_tp_dims d;
    if (lmf_tp_dims_get(cfg, tp, &d) != LMF_OK) return 0;
    int L = layers, C = cfg->n_embd;
    size_t BT = (size_t)B * T, BTC = BT * C;
    /* the residual stream's and the norms' rows: 1/size of them under sequence parallelism */
    size_t R = d.sequence_parallel ? BT / (size_t)d.size : BT, RC = R * C;
    size_t att = k->attention_saved_floats(B, T, d.heads);
    lmf_act_widths w;
    lmf_gpt_act_widths(cfg, &d, &w);
    size_t gelu = BT * w.act;
    size_t inner = RC /*ln1*/ + w.stats * R + BT * w.qkv /*qkv*/ + BT * d.width /*atty*/ + att +
                   RC /*residual2*/ + RC /*ln2*/ + w.stats * R + BT * w.fch /*fch*/;
    int training = mode != LMF_RESERVE_INFERENCE;
    lmf_recompute rc = training ? recompute : LMF_RECOMPUTE_NONE;
    size_t per_layer = RC /*residual3*/ + (rc == LMF_RECOMPUTE_FULL ? 0 : inner) +
                       (rc == LMF_RECOMPUTE_NONE ? gelu : 0);
    size_t shared = (rc == LMF_RECOMPUTE_FULL ? inner : 0) + (rc != LMF_RECOMPUTE_NONE ? gelu : 0);
    size_t total = RC /*encoded*/ + (size_t)L * per_layer + shared + RC + w.stats * R /*lnf*/ +
                   BT /*losses*/ + (classifier ? lmf_gpt_classifier_floats(cfg, &d, k, (int)BT) : 0);
    if (d.sequence_parallel) total += 2 * BTC; /* gathered rows, partial sums */
    if (training)
        total += RC /*dres*/ + BTC /*dbtc*/ + BT * w.dqkv /*dqkv*/ + BT * w.d4a /*d4a*/ +
                 lmf_gpt_attention_scratch(cfg, &d, k, B, T);
    return total;
}

size_t lmf_gpt_classifier_floats(const lmf_gpt_config *c, const lmf_tp_dims *d,
                                 const lmf_kernels *k, int N) {
    if (d->size == 1) return k->classifier_scratch_floats(N, c->vocab_size);
    /* one chunk's logits, every rank's statistics and the log-sum-exp of its rows */
    int R = N < LMF_VP_LOSS_ROWS ? N : LMF_VP_LOSS_ROWS;
    return k->classifier_vp_scratch_floats(R, d->vocab_real) + (size_t)3 * d->size * R + (size_t)R;
}

void lmf_gpt_act_widths(const lmf_gpt_config *c, const lmf_tp_dims *d, lmf_act_widths *w) {
    size_t C = (size_t)c->n_embd, F = (size_t)d->ffn, W = (size_t)d->width;
    if (c->family == LMF_FAMILY_LLAMA) {
        size_t KV = (size_t)d->kv_width;
        w->stats = 1;
        w->qkv = W + 2 * KV;
        w->dqkv = w->qkv > C ? w->qkv : C; /* also up's input gradient */
        w->fch = 2 * F;
        w->act = F;
        w->d4a = 2 * F > C ? 2 * F : C; /* also the input gradients' temporary */
    } else {
        w->stats = 2;
        w->qkv = w->dqkv = 3 * W;
        w->fch = w->act = w->d4a = F;
    }
}

size_t lmf_gpt_attention_scratch(const lmf_gpt_config *c, const lmf_tp_dims *d,
                                 const lmf_kernels *k, int B, int T) {
    if (c->family == LMF_FAMILY_LLAMA)
        return k->gqa_attention_scratch_floats(B, T, d->heads, d->kv_heads);
    return k->attention_scratch_floats(B, T, d->heads, d->width);
}

/* the FLOPs of a training step's work: every kernel, or op alone */
static double step_flops(const lmf_gpt_config *c, const lmf_tp_config *tp, int B, int T,
                         lmf_recompute rc, int op) {
    lmf_step_work fw, bw;
    lmf_gpt_step_work_tp(c, tp, B, T, rc, &fw, &bw);
    double f = 0.0;
    for (int i = 0; i < LMF_OP_COUNT; i++)
        if (op < 0 || i == op) f += fw.op[i].flops + bw.op[i].flops;
    return f;
}

double lmf_gpt_classifier_layers(const lmf_gpt_config *cfg, const lmf_tp_config *tp, int B, int T,
                                 lmf_recompute rc) {
    lmf_gpt_config one = *cfg, two = *cfg;
    one.n_layer = 1;
    two.n_layer = 2;
    double layer = step_flops(&two, tp, B, T, rc, -1) - step_flops(&one, tp, B, T, rc, -1);
    double cls = step_flops(cfg, tp, B, T, rc, LMF_OP_CLASSIFIER);
    return layer > 0 ? cls / layer : 0.0;
}

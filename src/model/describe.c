/* The model described once: the layer's products and parameter counts, attention FLOPs, the
 * kernel work of a training step and the activation block's size, all without a model.
 * test_model_description checks them against what gpt.c really calls. */
#include "lmforge/model.h"

#include <string.h>

int lmf_layer_linears(const lmf_gpt_config *c, lmf_linear_desc out[LMF_LAYER_LINEARS]) {
    int C = c->n_embd;
    out[0] = (lmf_linear_desc){"attn.c_attn", C, 3 * C, 1, 0, LMF_SPLIT_COLUMN};
    out[1] = (lmf_linear_desc){"attn.c_proj", C, C, 1, 0, LMF_SPLIT_ROW};
    out[2] = (lmf_linear_desc){"mlp.c_fc", C, 4 * C, 1, 1, LMF_SPLIT_COLUMN};
    out[3] = (lmf_linear_desc){"mlp.c_proj", 4 * C, C, 1, 0, LMF_SPLIT_ROW};
    return LMF_LAYER_LINEARS;
}

void lmf_layer_params_split(const lmf_gpt_config *c, int64_t *split, int64_t *replicated) {
    lmf_linear_desc lin[LMF_LAYER_LINEARS];
    int n = lmf_layer_linears(c, lin);
    int64_t s = 0, r = 4 * (int64_t)c->n_embd; /* two LayerNorms, weight and bias */
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
        "attention_backward", "gelu_forward", "gelu_bias_backward", "classifier", "zero"};
    return (int)op >= 0 && op < LMF_OP_COUNT ? names[op] : "?";
}

static void add(lmf_step_work *w, lmf_op op, double calls, double flops, double values) {
    w->op[op].calls += calls;
    w->op[op].flops += calls * flops;
    w->op[op].values += calls * values;
}

/* the layer's products in the forward (all, or those a full recomputation re-runs: every one
 * but the MLP's down projection, whose output the backward does not need) */
static void layer_products_forward(lmf_step_work *w, const lmf_gpt_config *c, double N, double L,
                                   int recompute) {
    lmf_linear_desc lin[LMF_LAYER_LINEARS];
    int n = lmf_layer_linears(c, lin);
    for (int i = 0; i < n - (recompute ? 1 : 0); i++)
        add(w, LMF_OP_MATMUL_FORWARD, L, 2.0 * N * lin[i].in * lin[i].out, N * lin[i].out);
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

void lmf_gpt_step_work(const lmf_gpt_config *c, int B, int T, lmf_recompute rc,
                       lmf_step_work *fw, lmf_step_work *bw) {
    memset(fw, 0, sizeof *fw);
    memset(bw, 0, sizeof *bw);
    double L = c->n_layer, C = c->n_embd, V = c->vocab_size, N = (double)B * T, E = N * C;
    double att_f = lmf_attention_flops(B, T, c->n_embd, 0);
    double att_b = lmf_attention_flops(B, T, c->n_embd, 1);
    lmf_linear_desc lin[LMF_LAYER_LINEARS];
    int n = lmf_layer_linears(c, lin);

    /* forward: embeddings; layer 0's ln1 alone, every later ln1 fused with the previous
     * layer's last residual add, each layer's ln2 fused with its first, the final LayerNorm
     * fused with the last layer's; the four products and attention per layer; the classifier
     * with its backward */
    add(fw, LMF_OP_ENCODER_FORWARD, 1, 0, E);
    add(fw, LMF_OP_LAYERNORM_FORWARD, 1, 0, E);
    add(fw, LMF_OP_RESIDUAL_LAYERNORM_FORWARD, 2 * L, 0, E);
    layer_products_forward(fw, c, N, L, 0);
    add(fw, LMF_OP_ATTENTION_FORWARD, L, att_f, E);
    add(fw, LMF_OP_CLASSIFIER, 1, 3.0 * 2.0 * N * C * V, N * V);

    /* backward: the residual stream's gradient cleared once; the final LayerNorm; per layer
     * what recomputation brings back, the products' backward, the GELU with the MLP bias's
     * gradient, attention, two LayerNorms; the embeddings */
    add(bw, LMF_OP_ZERO, 1, 0, E);
    add(bw, LMF_OP_LAYERNORM_BACKWARD, 1 + 2 * L, 0, E);
    if (rc == LMF_RECOMPUTE_FULL) {
        add(bw, LMF_OP_LAYERNORM_FORWARD, L, 0, E);
        add(bw, LMF_OP_RESIDUAL_LAYERNORM_FORWARD, L, 0, E);
        layer_products_forward(bw, c, N, L, 1);
        add(bw, LMF_OP_ATTENTION_FORWARD, L, att_f, E);
    } else if (rc == LMF_RECOMPUTE_SELECTIVE) {
        add(bw, LMF_OP_GELU_FORWARD, L, 0, 4 * E);
    }
    for (int i = 0; i < n; i++)
        add(bw, LMF_OP_MATMUL_BACKWARD, L, 4.0 * N * lin[i].in * lin[i].out, N * lin[i].in);
    add(bw, LMF_OP_GELU_BIAS_BACKWARD, L, 0, 4 * E);
    add(bw, LMF_OP_ATTENTION_BACKWARD, L, att_b, E);
    add(bw, LMF_OP_ENCODER_BACKWARD, 1, 0, E);
}

/* The same sum as lmf_gpt_reserve's views (gpt.c), so planners can size a run without
 * allocating it. */
size_t lmf_gpt_activation_floats(const lmf_gpt_config *cfg, const lmf_kernels *k, int B, int T,
                                 lmf_reserve_mode mode, lmf_recompute recompute) {
    int L = cfg->n_layer, C = cfg->n_embd, NH = cfg->n_head, V = cfg->vocab_size;
    size_t BT = (size_t)B * T, BTC = BT * C;
    size_t att = k->attention_saved_floats(B, T, NH);
    size_t gelu = 4 * BTC;
    size_t inner = BTC /*ln1*/ + 2 * BT + 3 * BTC /*qkv*/ + BTC /*atty*/ + att +
                   BTC /*residual2*/ + BTC /*ln2*/ + 2 * BT + 4 * BTC /*fch*/;
    int training = mode != LMF_RESERVE_INFERENCE;
    lmf_recompute rc = training ? recompute : LMF_RECOMPUTE_NONE;
    size_t per_layer = BTC /*residual3*/ + (rc == LMF_RECOMPUTE_FULL ? 0 : inner) +
                       (rc == LMF_RECOMPUTE_NONE ? gelu : 0);
    size_t shared = (rc == LMF_RECOMPUTE_FULL ? inner : 0) + (rc != LMF_RECOMPUTE_NONE ? gelu : 0);
    size_t total = BTC /*encoded*/ + (size_t)L * per_layer + shared + BTC + 2 * BT /*lnf*/ +
                   BT /*losses*/ + k->classifier_scratch_floats((int)BT, V);
    if (training)
        total += BTC /*dres*/ + BTC /*dbtc*/ + 3 * BTC /*dqkv*/ + 4 * BTC /*d4a*/ +
                 k->attention_scratch_floats(B, T, NH, C);
    return total;
}

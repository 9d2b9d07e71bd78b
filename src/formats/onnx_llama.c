/* The Llama family as an ONNX graph: token embeddings, RMSNorm blocks of rotary grouped-query
 * attention and a SwiGLU MLP, no biases, tied or untied logits; optionally with the key/value
 * cache (n_kv_head heads) as inputs and outputs. The arithmetic of src/model/llama.c. */
#include "formats/onnx_graph.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "lmforge/model.h"

/* the model's tensor, by its Hugging Face name */
#define W(...) lmf_onnx_model_weight(g, m, __VA_ARGS__)

/* x * w / sqrt(mean(x^2) + eps) over the last axis, as the reference RMSNorm computes it */
static int rmsnorm(lmf_onnx_graph *g, const char *name, int x, int w, float eps) {
    char n[96];
#define NM(s) (snprintf(n, sizeof n, "%s/%s", name, s), n)
    int sq = lmf_onnx_mul(g, NM("square"), x, x);
    const lmf_onnx_value *sv = sq >= 0 ? &g->values[sq] : NULL;
    int64_t dims[LMF_ONNX_MAX_RANK];
    int r = sv ? sv->rank : -1;
    for (int i = 0; i < r; i++) dims[i] = i == r - 1 ? 1 : sv->dim[i];
    /* opset 17's ReduceMean takes its axes as an attribute (an input from opset 18) */
    lmf_onnx_attr at = {.name = "axes", .kind = LMF_ONNX_ATTR_INTS, .n = 1, .ints = {-1}};
    int ms = lmf_onnx_node1(g, "ReduceMean", NM("mean_square"), 1, &sq, LMF_ONNX_T_FLOAT, r,
                            r >= 0 ? dims : NULL, 1, &at);
    int e = lmf_onnx_const_f32(g, NM("eps"), eps), one = lmf_onnx_const_f32(g, NM("one"), 1.0f);
    int rms = lmf_onnx_unary(g, "Sqrt", NM("rms"), lmf_onnx_add(g, NM("plus_eps"), ms, e));
    int in[2] = {one, rms};
    int rstd = lmf_onnx_node1(g, "Div", NM("rstd"), 2, in, LMF_ONNX_T_FLOAT, r, r >= 0 ? dims : NULL, 0, NULL);
    return lmf_onnx_mul(g, NM("scaled"), lmf_onnx_mul(g, NM("normalized"), x, rstd), w);
#undef NM
}

/* x [B, heads, T, D] rotated by its positions' angles (Hugging Face's rotate_half):
 * x * cos + concat(-x2, x1) * sin, with x1, x2 the two halves of each head */
static int rotate(lmf_onnx_graph *g, const char *name, int x, int cos, int sin, int D) {
    char n[96];
#define NM(s) (snprintf(n, sizeof n, "%s/%s", name, s), n)
    int x1 = lmf_onnx_slice_last(g, NM("first_half"), x, 0, D / 2);
    int x2 = lmf_onnx_slice_last(g, NM("second_half"), x, D / 2, D);
    int rot = lmf_onnx_concat(g, NM("rotate_half"), lmf_onnx_unary(g, "Neg", NM("neg"), x2), x1, 3);
    return lmf_onnx_add(g, NM("rotated"), lmf_onnx_mul(g, NM("cos_part"), x, cos),
                        lmf_onnx_mul(g, NM("sin_part"), rot, sin));
#undef NM
}

/* [B, kv_heads, T, D] -> [B, kv_heads * rep, T, D], kv head h serving query heads h * rep ..
 * h * rep + rep - 1 (the reference kernel's h / (NH / NKV)) */
static int repeat_kv(lmf_onnx_graph *g, const char *name, int x, int kv_heads, int rep, int D) {
    if (rep == 1) return x;
    char n[96];
#define NM(s) (snprintf(n, sizeof n, "%s/%s", name, s), n)
    const int64_t ax2 = 2, rep_shape[5] = {1, 1, rep, 1, 1}, merged[4] = {0, (int64_t)kv_heads * rep, -1, D};
    int u = lmf_onnx_unsqueeze(g, NM("unsqueeze"), x, 1, &ax2);
    int s = lmf_onnx_const_i64(g, NM("repeats"), 5, rep_shape);
    const lmf_onnx_value *uv = u >= 0 ? &g->values[u] : NULL;
    int64_t dims[5];
    int r = uv && uv->rank == 5 ? 5 : -1;
    for (int i = 0; i < r; i++) dims[i] = i == 2 ? rep : uv->dim[i];
    int in[2] = {u, s};
    int e = lmf_onnx_node1(g, "Expand", NM("expand"), 2, in, LMF_ONNX_T_FLOAT, r, r >= 0 ? dims : NULL, 0, NULL);
    return lmf_onnx_reshape(g, NM("merge"), e, 4, merged);
#undef NM
}

lmf_status lmf_onnx_build_llama(lmf_onnx_graph *g, lmf_gpt *m, int kv_cache) {
    const lmf_gpt_config *c = lmf_gpt_cfg(m);
    const int C = c->n_embd, H = c->n_head, NKV = lmf_config_kv_heads(c), D = C / H, V = c->vocab_size;
    const float eps = c->rms_norm_eps, scale = 1.0f / sqrtf((float)D);

    int *present = calloc((size_t)c->n_layer * 2, sizeof *present);
    float *inv_freq = malloc((size_t)(D / 2) * sizeof *inv_freq);
    if (!present || !inv_freq) {
        free(present);
        free(inv_freq);
        return g->err = lmf_fail(LMF_ERR_NOMEM, "cannot allocate the ONNX graph");
    }
    lmf_onnx_scope(g, "%s", "");
    int mask_in, pos, first_past;
    int ids = lmf_onnx_decoder_inputs(g, c->n_layer, NKV, D, kv_cache, &mask_in, &pos, &first_past);

    lmf_onnx_scope(g, "/embeddings");
    int wte = W("model.embed_tokens.weight");
    int x = lmf_onnx_gather(g, "tokens", wte, ids, 0);

    /* rotary angles: position * theta^(-2i/D), i < D/2 (the frequencies in double, as the
     * reference kernel has them), repeated for both halves; cos and sin of [T, D] (plain:
     * positions 0 .. T-1) or [B, 1, T, D] (position_ids) for every layer */
    lmf_onnx_scope(g, "/rotary");
    if (!kv_cache) pos = lmf_onnx_positions(g, ids); /* positions 0 .. T-1 */
    for (int i = 0; i < D / 2; i++) inv_freq[i] = (float)pow((double)c->rope_theta, -2.0 * i / (double)D);
    int freq = lmf_onnx_const_f32v(g, "inv_freq", D / 2, inv_freq);
    free(inv_freq);
    const int64_t last_axis = kv_cache ? 2 : 1, heads_axis = 1;
    int pf = lmf_onnx_unsqueeze(g, "positions_column", lmf_onnx_cast(g, "positions_float", pos, LMF_ONNX_T_FLOAT),
                                1, &last_axis);
    int ang = lmf_onnx_mul(g, "angles_half", pf, freq);
    ang = lmf_onnx_concat(g, "angles", ang, ang, kv_cache ? 2 : 1);
    int cos = lmf_onnx_unary(g, "Cos", "cos", ang), sin = lmf_onnx_unary(g, "Sin", "sin", ang);
    if (kv_cache) {
        cos = lmf_onnx_unsqueeze(g, "cos_heads", cos, 1, &heads_axis);
        sin = lmf_onnx_unsqueeze(g, "sin_heads", sin, 1, &heads_axis);
    }

    int mask = -1;
    for (int l = 0; l < c->n_layer; l++) {
        lmf_onnx_scope(g, "/layers.%d", l);
        int h = rmsnorm(g, "input_layernorm", x, W("model.layers.%d.input_layernorm.weight", l), eps);
        int q = lmf_onnx_linear(g, "attn/q_proj", h, W("model.layers.%d.self_attn.q_proj.weight", l), -1);
        int k = lmf_onnx_linear(g, "attn/k_proj", h, W("model.layers.%d.self_attn.k_proj.weight", l), -1);
        int v = lmf_onnx_linear(g, "attn/v_proj", h, W("model.layers.%d.self_attn.v_proj.weight", l), -1);
        q = rotate(g, "attn/q_rotary", lmf_onnx_split_heads(g, "attn/q", q, H, D), cos, sin, D);
        k = rotate(g, "attn/k_rotary", lmf_onnx_split_heads(g, "attn/k", k, NKV, D), cos, sin, D);
        v = lmf_onnx_split_heads(g, "attn/v", v, NKV, D);
        if (kv_cache) { /* the cache holds the rotated keys of the n_kv_head heads */
            k = present[2 * l] = lmf_onnx_concat(g, "attn/present_key", first_past + 2 * l, k, 2);
            v = present[2 * l + 1] = lmf_onnx_concat(g, "attn/present_value", first_past + 2 * l + 1, v, 2);
        }
        if (l == 0) {
            lmf_onnx_scope(g, "/mask");
            mask = lmf_onnx_causal_mask(g, ids, k, mask_in);
            lmf_onnx_scope(g, "/layers.%d", l);
        }
        k = repeat_kv(g, "attn/k_repeated", k, NKV, H / NKV, D);
        v = repeat_kv(g, "attn/v_repeated", v, NKV, H / NKV, D);
        int a = lmf_onnx_attention(g, q, k, v, mask, scale, H, D);
        a = lmf_onnx_linear(g, "attn/o_proj", a, W("model.layers.%d.self_attn.o_proj.weight", l), -1);
        x = lmf_onnx_add(g, "residual_attn", x, a);
        h = rmsnorm(g, "post_attention_layernorm", x, W("model.layers.%d.post_attention_layernorm.weight", l), eps);
        int gate = lmf_onnx_linear(g, "mlp/gate_proj", h, W("model.layers.%d.mlp.gate_proj.weight", l), -1);
        int up = lmf_onnx_linear(g, "mlp/up_proj", h, W("model.layers.%d.mlp.up_proj.weight", l), -1);
        /* SwiGLU: gate * sigmoid(gate) * up */
        int silu = lmf_onnx_mul(g, "mlp/silu", gate, lmf_onnx_unary(g, "Sigmoid", "mlp/sigmoid", gate));
        h = lmf_onnx_mul(g, "mlp/swiglu", silu, up);
        h = lmf_onnx_linear(g, "mlp/down_proj", h, W("model.layers.%d.mlp.down_proj.weight", l), -1);
        x = lmf_onnx_add(g, "residual_mlp", x, h);
    }

    lmf_onnx_scope(g, "/head");
    x = rmsnorm(g, "norm", x, W("model.norm.weight"), eps);
    /* the classifier: x @ lm_head^T, or the embedding's transpose when tied */
    const int64_t perm[2] = {1, 0};
    int head = lmf_config_tied(c) ? wte : W("lm_head.weight");
    int logits = lmf_onnx_matmul(g, "logits", x, lmf_onnx_transpose(g, "classifier_transposed", head, 2, perm));
    lmf_onnx_decoder_outputs(g, logits, V, c->n_layer, kv_cache, present);
    free(present);
    return g->err;
}

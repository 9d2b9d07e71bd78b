/* The GPT-2 family as an ONNX graph: embeddings, pre-LayerNorm blocks of causal attention and a
 * GELU MLP, tied logits; optionally with the key/value cache as inputs and outputs. */
#include "formats/onnx_graph.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "lmforge/model.h"

/* the model's tensor, by its Hugging Face name */
#define W(...) lmf_onnx_model_weight(g, m, __VA_ARGS__)

lmf_status lmf_onnx_build_gpt2(lmf_onnx_graph *g, lmf_gpt *m, int kv_cache) {
    const lmf_gpt_config *c = lmf_gpt_cfg(m);
    const int C = c->n_embd, H = c->n_head, D = C / H, V = c->vocab_size;
    const float eps = 1e-5f, scale = 1.0f / sqrtf((float)D);

    int *present = calloc((size_t)c->n_layer * 2, sizeof *present);
    if (!present) return g->err = lmf_fail(LMF_ERR_NOMEM, "cannot allocate the ONNX graph");
    lmf_onnx_scope(g, "%s", "");
    int mask_in, pos, first_past;
    int ids = lmf_onnx_decoder_inputs(g, c->n_layer, H, D, kv_cache, &mask_in, &pos, &first_past);

    lmf_onnx_scope(g, "/embeddings");
    if (!kv_cache) pos = lmf_onnx_positions(g, ids); /* positions 0 .. T-1 */
    int wte = W("wte.weight"), wpe = W("wpe.weight");
    int x = lmf_onnx_add(g, "sum", lmf_onnx_gather(g, "tokens", wte, ids, 0),
                         lmf_onnx_gather(g, "positions_embedded", wpe, pos, 0));

    int mask = -1;
    for (int l = 0; l < c->n_layer; l++) {
        lmf_onnx_scope(g, "/h.%d", l);
        int h = lmf_onnx_layernorm(g, "ln_1", x, W("h.%d.ln_1.weight", l),
                                   W("h.%d.ln_1.bias", l), eps);
        int qkv = lmf_onnx_linear(g, "attn/c_attn", h, W("h.%d.attn.c_attn.weight", l),
                                  W("h.%d.attn.c_attn.bias", l));
        int q = lmf_onnx_split_heads(g, "attn/q", lmf_onnx_slice_last(g, "attn/q_part", qkv, 0, C), H, D);
        int k = lmf_onnx_split_heads(g, "attn/k", lmf_onnx_slice_last(g, "attn/k_part", qkv, C, 2 * C), H, D);
        int v = lmf_onnx_split_heads(g, "attn/v", lmf_onnx_slice_last(g, "attn/v_part", qkv, 2 * C, 3 * C), H, D);
        if (kv_cache) {
            k = present[2 * l] = lmf_onnx_concat(g, "attn/present_key", first_past + 2 * l, k, 2);
            v = present[2 * l + 1] = lmf_onnx_concat(g, "attn/present_value", first_past + 2 * l + 1, v, 2);
        }
        if (l == 0) { /* one mask for every layer */
            lmf_onnx_scope(g, "/mask");
            mask = lmf_onnx_causal_mask(g, ids, k, mask_in);
            lmf_onnx_scope(g, "/h.%d", l);
        }
        int a = lmf_onnx_attention(g, q, k, v, mask, scale, H, D);
        a = lmf_onnx_linear(g, "attn/c_proj", a, W("h.%d.attn.c_proj.weight", l),
                            W("h.%d.attn.c_proj.bias", l));
        x = lmf_onnx_add(g, "residual_attn", x, a);
        h = lmf_onnx_layernorm(g, "ln_2", x, W("h.%d.ln_2.weight", l),
                               W("h.%d.ln_2.bias", l), eps);
        h = lmf_onnx_linear(g, "mlp/c_fc", h, W("h.%d.mlp.c_fc.weight", l),
                            W("h.%d.mlp.c_fc.bias", l));
        h = lmf_onnx_gelu_tanh(g, "mlp/gelu", h);
        h = lmf_onnx_linear(g, "mlp/c_proj", h, W("h.%d.mlp.c_proj.weight", l),
                            W("h.%d.mlp.c_proj.bias", l));
        x = lmf_onnx_add(g, "residual_mlp", x, h);
    }

    lmf_onnx_scope(g, "/head");
    x = lmf_onnx_layernorm(g, "ln_f", x, W("ln_f.weight"), W("ln_f.bias"), eps);
    /* tied classifier: x @ wte^T (the Transpose of a weight is folded by the runtime) */
    const int64_t perm[2] = {1, 0};
    int wte_t = lmf_onnx_transpose(g, "wte_transposed", wte, 2, perm);
    int logits = lmf_onnx_matmul(g, "logits", x, wte_t);
    lmf_onnx_decoder_outputs(g, logits, V, c->n_layer, kv_cache, present);
    free(present);
    return g->err;
}

/* Model configurations of both families: presets, validation, parameter counts and training
 * FLOPs. */
#include "lmforge/config.h"

#include <stdio.h>
#include <string.h>

typedef struct preset {
    const char *name;
    lmf_gpt_config c;
} preset;

/* GPT-2 shapes: Radford et al. 2019. GPT-3 shapes: Brown et al. 2020, Table 2.1 (the 13B
 * model's width is listed there as 5140, which 40 heads do not divide; 5120 is used, as in
 * common implementations). 1T: Narayanan et al. 2021, Table 1 (vocabulary 51,200). */
static const preset presets[] = {
    {"tiny", {2, 2, 64, 64, 256}},
    {"mini", {4, 4, 256, 256, 50257}},
    {"small", {6, 6, 384, 256, 50257}},
    {"gpt2", {12, 12, 768, 1024, 50257}},
    {"gpt2-medium", {24, 16, 1024, 1024, 50257}},
    {"gpt2-large", {36, 20, 1280, 1024, 50257}},
    {"gpt2-xl", {48, 25, 1600, 1024, 50257}},
    {"gpt3-125m", {12, 12, 768, 2048, 50257}},
    {"gpt3-350m", {24, 16, 1024, 2048, 50257}},
    {"gpt3-760m", {24, 16, 1536, 2048, 50257}},
    {"gpt3-1.3b", {24, 16, 2048, 2048, 50257}},
    {"gpt3-2.7b", {32, 32, 2560, 2048, 50257}},
    {"gpt3-6.7b", {32, 32, 4096, 2048, 50257}},
    {"gpt3-13b", {40, 40, 5120, 2048, 50257}},
    {"gpt3-175b", {96, 96, 12288, 2048, 50257}},
    {"gpt-1t", {128, 160, 25600, 2048, 51200}},
    /* The Llama family at the sizes of tiny, mini and small: the SwiGLU's hidden width about
     * 8/3 of the width (as Llama's, so the three matrices hold what GPT-2's two 4x ones do),
     * rounded to a multiple of 16; half as many key/value heads as query heads. */
    {"llama-tiny", {2, 2, 64, 64, 256, LMF_FAMILY_LLAMA, 1, 176, 1e-5f, 10000.0f, 0}},
    {"llama-mini", {4, 4, 256, 256, 50257, LMF_FAMILY_LLAMA, 2, 688, 1e-5f, 10000.0f, 0}},
    {"llama-small", {6, 6, 384, 256, 50257, LMF_FAMILY_LLAMA, 3, 1024, 1e-5f, 10000.0f, 0}},
    /* Llama 2: Touvron et al. 2023, Table 1 and the Hugging Face configs of
     * meta-llama/Llama-2-{7b,13b,70b}-hf (hidden_size, intermediate_size, heads, key/value
     * heads, 4096 positions, vocabulary 32000, rms_norm_eps 1e-5, rope_theta 10000). */
    {"llama2-7b", {32, 32, 4096, 4096, 32000, LMF_FAMILY_LLAMA, 32, 11008, 1e-5f, 10000.0f, 0}},
    {"llama2-13b", {40, 40, 5120, 4096, 32000, LMF_FAMILY_LLAMA, 40, 13824, 1e-5f, 10000.0f, 0}},
    {"llama2-70b", {80, 64, 8192, 4096, 32000, LMF_FAMILY_LLAMA, 8, 28672, 1e-5f, 10000.0f, 0}},
    /* Llama 3: Dubey et al. 2024 ("The Llama 3 Herd of Models"), Table 3 (layers, width, FFN
     * width, heads, 8 key/value heads, vocabulary 128K, RoPE base 500,000) and the Hugging Face
     * configs of meta-llama/Meta-Llama-3-8B and -70B (vocab_size 128256, 8192 positions,
     * rms_norm_eps 1e-5); 405B at the 8K pre-training context. */
    {"llama3-8b", {32, 32, 4096, 8192, 128256, LMF_FAMILY_LLAMA, 8, 14336, 1e-5f, 500000.0f, 0}},
    {"llama3-70b", {80, 64, 8192, 8192, 128256, LMF_FAMILY_LLAMA, 8, 28672, 1e-5f, 500000.0f, 0}},
    {"llama3-405b",
     {126, 128, 16384, 8192, 128256, LMF_FAMILY_LLAMA, 8, 53248, 1e-5f, 500000.0f, 0}},
};
#define N_PRESETS (sizeof presets / sizeof presets[0])

lmf_status lmf_config_preset(const char *name, lmf_gpt_config *out) {
    for (size_t i = 0; i < N_PRESETS; i++) {
        if (strcmp(presets[i].name, name) == 0) {
            *out = presets[i].c;
            return LMF_OK;
        }
    }
    char list[1024] = "";
    for (size_t i = 0; i < N_PRESETS; i++) {
        strncat(list, presets[i].name, sizeof list - strlen(list) - 1);
        if (i + 1 < N_PRESETS) strncat(list, ", ", sizeof list - strlen(list) - 1);
    }
    return lmf_fail(LMF_ERR_ARG, "unknown model preset '%s' (known: %s)", name, list);
}

lmf_status lmf_config_validate(const lmf_gpt_config *c) {
    if (c->n_layer < 1 || c->n_head < 1 || c->n_embd < 1 || c->n_positions < 1 || c->vocab_size < 1)
        return lmf_fail(LMF_ERR_ARG,
                        "model config needs positive n_layer, n_head, n_embd, n_positions, "
                        "vocab_size (got %d, %d, %d, %d, %d)",
                        c->n_layer, c->n_head, c->n_embd, c->n_positions, c->vocab_size);
    if (c->n_embd % c->n_head != 0)
        return lmf_fail(LMF_ERR_ARG, "model config: n_embd %d is not divisible by n_head %d",
                        c->n_embd, c->n_head);
    if (c->n_layer > 100000 || c->n_embd > 1000000 || c->n_positions > 10000000 ||
        c->vocab_size > 100000000)
        return lmf_fail(LMF_ERR_ARG, "model config: sizes are implausibly large");
    if (c->family == LMF_FAMILY_GPT2) return LMF_OK;
    if (c->family != LMF_FAMILY_LLAMA)
        return lmf_fail(LMF_ERR_ARG, "model config: unknown family %d", (int)c->family);
    if (c->n_kv_head < 1 || c->n_head % c->n_kv_head != 0)
        return lmf_fail(LMF_ERR_ARG, "model config: %d key/value heads do not divide %d heads",
                        c->n_kv_head, c->n_head);
    if ((c->n_embd / c->n_head) % 2 != 0)
        return lmf_fail(LMF_ERR_ARG, "model config: the head size %d must be even for the rotary "
                        "embedding", c->n_embd / c->n_head);
    if (c->ffn_hidden < 1 || c->ffn_hidden > 10000000)
        return lmf_fail(LMF_ERR_ARG, "model config: the feed-forward width %d is not in 1..1e7",
                        c->ffn_hidden);
    if (!(c->rms_norm_eps > 0.0f && c->rms_norm_eps < 1.0f) || !(c->rope_theta > 1.0f))
        return lmf_fail(LMF_ERR_ARG, "model config: rms_norm_eps must be in (0, 1) and rope_theta "
                        "above 1 (got %g, %g)", (double)c->rms_norm_eps, (double)c->rope_theta);
    return LMF_OK;
}

const char *lmf_family_name(lmf_family f) {
    switch (f) {
    case LMF_FAMILY_GPT2: return "gpt2";
    case LMF_FAMILY_LLAMA: return "llama";
    default: return "?";
    }
}

int lmf_config_kv_heads(const lmf_gpt_config *c) {
    return c->family == LMF_FAMILY_LLAMA ? c->n_kv_head : c->n_head;
}

int lmf_config_ffn(const lmf_gpt_config *c) {
    return c->family == LMF_FAMILY_LLAMA ? c->ffn_hidden : 4 * c->n_embd;
}

int lmf_config_tied(const lmf_gpt_config *c) {
    return c->family == LMF_FAMILY_LLAMA ? c->tie_embeddings != 0 : 1;
}

int lmf_config_padded_vocab(const lmf_gpt_config *c) {
    return (c->vocab_size + LMF_VOCAB_PAD - 1) / LMF_VOCAB_PAD * LMF_VOCAB_PAD;
}

/* weights of the products of one Llama layer: q, o; k, v; gate, up, down */
static int64_t llama_layer_matrices(const lmf_gpt_config *c) {
    int64_t C = c->n_embd, KV = (int64_t)lmf_config_kv_heads(c) * (C / c->n_head);
    return 2 * C * C + 2 * C * KV + 3 * C * (int64_t)c->ffn_hidden;
}

int64_t lmf_config_num_params(const lmf_gpt_config *c) {
    int64_t C = c->n_embd, L = c->n_layer;
    if (c->family == LMF_FAMILY_LLAMA) /* embeddings, lm_head, two RMSNorms a layer, the last */
        return (int64_t)c->vocab_size * C * (lmf_config_tied(c) ? 1 : 2) +
               L * (llama_layer_matrices(c) + 2 * C) + C;
    int64_t per_layer = 2 * C                 /* ln_1 */
                        + C * 3 * C + 3 * C   /* attn.c_attn */
                        + C * C + C           /* attn.c_proj */
                        + 2 * C               /* ln_2 */
                        + C * 4 * C + 4 * C   /* mlp.c_fc */
                        + 4 * C * C + C;      /* mlp.c_proj */
    return (int64_t)c->vocab_size * C + (int64_t)c->n_positions * C + L * per_layer + 2 * C;
}

double lmf_config_train_flops_per_token(const lmf_gpt_config *c, int T) {
    if (c->family == LMF_FAMILY_LLAMA)
        return 6.0 * ((double)c->n_layer * (double)llama_layer_matrices(c) +
                      (double)c->vocab_size * (double)c->n_embd) +
               12.0 * (double)c->n_layer * (double)c->n_embd * (double)T;
    return 6.0 * (double)lmf_config_num_params(c) +
           12.0 * (double)c->n_layer * (double)c->n_embd * (double)T;
}

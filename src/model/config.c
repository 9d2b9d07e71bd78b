/* GPT configurations: presets, validation, parameter counts and training FLOPs. */
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
};
#define N_PRESETS (sizeof presets / sizeof presets[0])

lmf_status lmf_config_preset(const char *name, lmf_gpt_config *out) {
    for (size_t i = 0; i < N_PRESETS; i++) {
        if (strcmp(presets[i].name, name) == 0) {
            *out = presets[i].c;
            return LMF_OK;
        }
    }
    char list[512] = "";
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
    return LMF_OK;
}

int lmf_config_padded_vocab(const lmf_gpt_config *c) {
    return (c->vocab_size + LMF_VOCAB_PAD - 1) / LMF_VOCAB_PAD * LMF_VOCAB_PAD;
}

int64_t lmf_config_num_params(const lmf_gpt_config *c) {
    int64_t C = c->n_embd, L = c->n_layer;
    int64_t per_layer = 2 * C                 /* ln_1 */
                        + C * 3 * C + 3 * C   /* attn.c_attn */
                        + C * C + C           /* attn.c_proj */
                        + 2 * C               /* ln_2 */
                        + C * 4 * C + 4 * C   /* mlp.c_fc */
                        + 4 * C * C + C;      /* mlp.c_proj */
    return (int64_t)c->vocab_size * C + (int64_t)c->n_positions * C + L * per_layer + 2 * C;
}

double lmf_config_train_flops_per_token(const lmf_gpt_config *c, int T) {
    return 6.0 * (double)lmf_config_num_params(c) +
           12.0 * (double)c->n_layer * (double)c->n_embd * (double)T;
}

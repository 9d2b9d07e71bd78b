/* Model configuration (GPT-2 and Llama families): shapes, presets, parameter counts and FLOP
 * arithmetic. */
#ifndef LMFORGE_CONFIG_H
#define LMFORGE_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include "lmforge/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The model families: the transformer block each builds (docs/architecture.md, "The model"). */
typedef enum lmf_family {
    LMF_FAMILY_GPT2 = 0, /* LayerNorm, learned positions, GELU MLP, biases, tied embeddings */
    LMF_FAMILY_LLAMA     /* RMSNorm, rotary positions, SwiGLU, grouped-query attention, no
                          * biases, untied embeddings unless tie_embeddings */
} lmf_family;

/* Hugging Face GPT2Config names; the fields after vocab_size are the Llama family's
 * (LlamaConfig's num_key_value_heads, intermediate_size, rms_norm_eps, rope_theta,
 * tie_word_embeddings) and stay zero for GPT-2, so a GPT-2 configuration is its first five
 * fields. */
typedef struct lmf_gpt_config {
    int n_layer;
    int n_head;
    int n_embd;
    int n_positions;   /* maximum sequence length (context) */
    int vocab_size;    /* real vocabulary; padded internally to padded_vocab_size() */
    lmf_family family;
    int n_kv_head;      /* Llama: key/value heads, dividing n_head */
    int ffn_hidden;     /* Llama: the SwiGLU's hidden width */
    float rms_norm_eps; /* Llama: RMSNorm's epsilon */
    float rope_theta;   /* Llama: the rotary embedding's base */
    int tie_embeddings; /* Llama: 1 = the classifier is the token embedding (no lm_head) */
} lmf_gpt_config;

/* "gpt2" or "llama" ("?" outside the enum) */
const char *lmf_family_name(lmf_family f);
/* Key/value heads: n_kv_head for Llama, n_head for GPT-2. */
int lmf_config_kv_heads(const lmf_gpt_config *c);
/* The feed-forward's hidden width: ffn_hidden for Llama, 4 * n_embd for GPT-2. */
int lmf_config_ffn(const lmf_gpt_config *c);
/* 1 when the classifier is the token embedding (always for GPT-2). */
int lmf_config_tied(const lmf_gpt_config *c);

#define LMF_VOCAB_PAD 64

/* Look up a named preset (gpt2, gpt2-medium, gpt2-large, gpt2-xl, tiny, small, ...,
 * llama-tiny, llama-mini, llama-small, llama2-7b, ..., llama3-405b).
 * Fails with LMF_ERR_ARG and a list of names when unknown. */
lmf_status lmf_config_preset(const char *name, lmf_gpt_config *out);

/* Check a configuration for consistency (positive sizes, n_embd divisible by n_head; Llama:
 * n_kv_head dividing n_head, an even head size, positive ffn_hidden, eps and theta). */
lmf_status lmf_config_validate(const lmf_gpt_config *c);

/* vocab_size rounded up to a multiple of LMF_VOCAB_PAD. */
int lmf_config_padded_vocab(const lmf_gpt_config *c);

/* Trainable parameters, tied embedding counted once, real (unpadded) vocabulary. */
int64_t lmf_config_num_params(const lmf_gpt_config *c);

/* Training FLOPs per token (forward + backward). GPT-2: 6*N + 12*n_layer*n_embd*T.
 * Llama: 6*P + 12*n_layer*n_embd*T with P the weights of the products (per layer q, o:
 * C^2 each; k, v: C*kv_width each; gate, up, down: C*ffn each; and the classifier, V*C):
 * the token embedding's lookup and the norms do no multiply-adds. */
double lmf_config_train_flops_per_token(const lmf_gpt_config *c, int T);

/* config.json is read and written by the formats module (lmf_config_read, lmf_config_write in
 * formats.h). */

#ifdef __cplusplus
}
#endif
#endif

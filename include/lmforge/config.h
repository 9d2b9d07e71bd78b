/* GPT model configuration: shapes, presets, parameter counts and FLOP arithmetic. */
#ifndef LMFORGE_CONFIG_H
#define LMFORGE_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include "lmforge/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Hugging Face GPT2Config names. */
typedef struct lmf_gpt_config {
    int n_layer;
    int n_head;
    int n_embd;
    int n_positions;   /* maximum sequence length (context) */
    int vocab_size;    /* real vocabulary; padded internally to padded_vocab_size() */
} lmf_gpt_config;

#define LMF_VOCAB_PAD 64

/* Look up a named preset (gpt2, gpt2-medium, gpt2-large, gpt2-xl, tiny, small, ...).
 * Fails with LMF_ERR_ARG and a list of names when unknown. */
lmf_status lmf_config_preset(const char *name, lmf_gpt_config *out);

/* Check a configuration for consistency (positive sizes, n_embd divisible by n_head). */
lmf_status lmf_config_validate(const lmf_gpt_config *c);

/* vocab_size rounded up to a multiple of LMF_VOCAB_PAD. */
int lmf_config_padded_vocab(const lmf_gpt_config *c);

/* Trainable parameters, tied embedding counted once, real (unpadded) vocabulary. */
int64_t lmf_config_num_params(const lmf_gpt_config *c);

/* Training FLOPs per token: 6*N + 12*n_layer*n_embd*T (forward + backward). */
double lmf_config_train_flops_per_token(const lmf_gpt_config *c, int T);

/* config.json is read and written by the formats module (lmf_config_read, lmf_config_write in
 * formats.h). */

#ifdef __cplusplus
}
#endif
#endif

/* Samples during training: text from the model being trained, for metrics.jsonl. */
#ifndef LMF_TRAIN_SAMPLE_H
#define LMF_TRAIN_SAMPLE_H

#include <stdint.h>
#include "lmforge/model.h"
#include "lmforge/tokenizer.h"

/* The tokens per sample written during training. */
#define LMF_TRAIN_SAMPLE_TOKENS 64

/* Generate n_new tokens after prompt (encoded with tok; "" or NULL: start from the end-of-text
 * token) at temperature 0.8 and top-k 40 with seed, into *text (malloc'd, valid UTF-8: bytes
 * that are not become U+FFFD): the prompt and what followed, decoded, or the ids separated by
 * spaces when tok is NULL (a prompt then is an error). */
lmf_status lmf_train_sample(lmf_gpt *m, const lmf_tokenizer *tok, const char *prompt, int n_new,
                            uint64_t seed, char **text);

#endif

/* Helpers shared by CLI subcommands: model/tokenizer lookup, generation, progress output. */
#ifndef LMF_CLI_UTIL_H
#define LMF_CLI_UTIL_H

#include <stdint.h>
#include <stdio.h>

#include "lmforge/model.h"
#include "lmforge/tokenizer.h"

/* Load the tokenizer that belongs to a model or run directory (DIR/tokenizer/ or DIR itself);
 * *out = NULL (and LMF_OK) when there is none. */
lmf_status lmf_cli_find_tokenizer(const char *dir, lmf_tokenizer **out);

/* Generate n tokens after the prompt (text, encoded with tok; or decimal ids separated by
 * spaces when tok is NULL; an empty prompt starts from the end-of-text token) and print them
 * to out as text (or ids). */
lmf_status lmf_cli_generate(lmf_gpt *m, const lmf_tokenizer *tok, const char *prompt, int n,
                            float temperature, int top_k, float top_p, uint64_t seed, FILE *out);

/* "1h02m", "3m05s", "12s" */
void lmf_cli_format_duration(double seconds, char *buf, size_t cap);

#endif

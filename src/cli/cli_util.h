/* Helpers shared by CLI subcommands: printing generated text, durations, --model. */
#ifndef LMF_CLI_UTIL_H
#define LMF_CLI_UTIL_H

#include <stdint.h>
#include <stdio.h>

#include "lmforge/model.h"
#include "lmforge/tokenizer.h"

/* Generate n tokens after the prompt (text, encoded with tok; or decimal ids separated by
 * spaces when tok is NULL; an empty prompt starts from the end-of-text token) and print them
 * to out as text (or ids); *n_out: how many were made (fewer when the context filled up). */
lmf_status lmf_cli_generate(lmf_gpt *m, const lmf_tokenizer *tok, const char *prompt, int n,
                            float temperature, int top_k, float top_p, uint64_t seed, FILE *out,
                            int *n_out);

/* A --model argument: a preset name, or a config.json (a path ending in .json or holding a
 * '/'); the configuration is validated. */
lmf_status lmf_cli_model_config(const char *arg, lmf_gpt_config *cfg);

/* "1h02m", "3m05s", "12s" */
void lmf_cli_format_duration(double seconds, char *buf, size_t cap);

#endif

/* Plain double-precision GPT-2 and Llama forwards for tests: the independent truth for
 * gradient checks. */
#ifndef LMF_TEST_GPT_DOUBLE_H
#define LMF_TEST_GPT_DOUBLE_H

#include <stdint.h>
#include "lmforge/model.h"

/* Mean cross-entropy loss of the model whose parameters are p (a double copy of the flat
 * parameter block, laid out by `layout`) on inputs/targets[B*T]. */
double lmf_test_gpt_loss_double(const lmf_gpt_config *c, const lmf_param_layout *layout,
                                const double *p, const int32_t *inputs, const int32_t *targets,
                                int B, int T);

/* The same for the Llama family (llama_double.c); lmf_test_gpt_loss_double hands a Llama
 * configuration to it. */
double lmf_test_llama_loss_double(const lmf_gpt_config *c, const lmf_param_layout *layout,
                                  const double *p, const int32_t *inputs, const int32_t *targets,
                                  int B, int T);

#endif

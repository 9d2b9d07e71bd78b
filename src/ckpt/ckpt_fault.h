/* Numeric-fault test hook of the trainer (internal to src/train and the CLI); the lines that
 * record skipped steps, rollbacks and spikes are written through lmforge/metrics.h. */
#ifndef LMF_CKPT_FAULT_H
#define LMF_CKPT_FAULT_H

#include <stdint.h>
#include "lmforge/status.h"

/* Parse the test hook LMF_INJECT_NAN_STEPS ("5,6,7": 0-based step indices, as in
 * metrics.jsonl) into a new array *steps[*n] (NULL, 0 when unset or empty). A malformed value
 * is LMF_ERR_ARG with a message. */
lmf_status lmf_fault_parse_inject(const char *text, int64_t **steps, int *n);

#endif

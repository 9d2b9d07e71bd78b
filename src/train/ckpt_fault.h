/* Numeric-fault helpers of the trainer: the NaN injection test hook and the lines that record
 * skipped steps, rollbacks and loss spikes in metrics.jsonl (internal to src/train and the CLI). */
#ifndef LMF_TRAIN_CKPT_FAULT_H
#define LMF_TRAIN_CKPT_FAULT_H

#include <stdint.h>
#include "lmforge/status.h"

/* Parse the test hook LMF_INJECT_NAN_STEPS ("5,6,7": 0-based step indices, as in
 * metrics.jsonl) into a new array *steps[*n] (NULL, 0 when unset or empty). A malformed value
 * is LMF_ERR_ARG with a message. */
lmf_status lmf_fault_parse_inject(const char *text, int64_t **steps, int *n);

/* Append one JSON line to metrics.jsonl beside lmf_metrics' own lines (both append and flush
 * whole lines): {"step": step, "skipped": why, "bad_in_row": k}. */
lmf_status lmf_fault_note_skip(const char *metrics_path, int step, const char *why, int bad_in_row);
/* {"step": step, "rolled_back_to": to_step} */
lmf_status lmf_fault_note_rollback(const char *metrics_path, int step, int to_step);
/* {"step": step, "spike": loss, "running_mean": mean} */
lmf_status lmf_fault_note_spike(const char *metrics_path, int step, double loss, double mean);

#endif

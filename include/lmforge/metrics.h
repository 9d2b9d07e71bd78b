/* Run metrics: one JSON object per line in RUN_DIR/metrics.jsonl, and an SVG loss chart. */
#ifndef LMFORGE_METRICS_H
#define LMFORGE_METRICS_H

#include <stdio.h>
#include "lmforge/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lmf_metrics lmf_metrics;

/* Open path for appending. Lines for steps >= keep_before_step (a resumed run's future) are
 * dropped first, so the file tells one consistent history; pass -1 to truncate. */
lmf_status lmf_metrics_open(const char *path, int keep_before_step, lmf_metrics **out);
void lmf_metrics_close(lmf_metrics *m);
lmf_status lmf_metrics_step(lmf_metrics *m, int step, double loss, double lr, double grad_norm,
                            double tokens_per_s, double mfu);
lmf_status lmf_metrics_eval(lmf_metrics *m, int step, double val_loss);
/* Numeric faults: {"step", "skipped": why, "bad_in_row"}, {"step", "rolled_back_to"},
 * {"step", "spike": loss, "running_mean"}. */
lmf_status lmf_metrics_skip(lmf_metrics *m, int step, const char *why, int bad_in_row);
lmf_status lmf_metrics_rollback(lmf_metrics *m, int step, int to_step);
lmf_status lmf_metrics_spike(lmf_metrics *m, int step, double loss, double mean);

/* Read RUN_DIR/metrics.jsonl and write an SVG chart of train and validation loss to out_path. */
lmf_status lmf_plot_losses(const char *metrics_path, const char *out_path, const char *title);

#ifdef __cplusplus
}
#endif
#endif

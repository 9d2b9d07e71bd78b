/* Run metrics: one JSON object per line in RUN_DIR/metrics.jsonl, and an SVG loss chart. */
#ifndef LMFORGE_METRICS_H
#define LMFORGE_METRICS_H

#include <stdint.h>
#include <stdio.h>
#include "lmforge/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lmf_metrics lmf_metrics;

/* Open path for appending; every line written carries "run": run_id (NULL or "": none).
 * resume_step >= 0: a run resumed from the checkpoint of that step keeps the lines of the work
 * that checkpoint holds (step lines below it, evaluations taken at it or before) and of no
 * other run, so the file tells one consistent history; -1 truncates. */
lmf_status lmf_metrics_open(const char *path, int resume_step, const char *run_id,
                            lmf_metrics **out);
void lmf_metrics_close(lmf_metrics *m);
lmf_status lmf_metrics_step(lmf_metrics *m, int step, double loss, double lr, double grad_norm,
                            double tokens_per_s, double mfu);
lmf_status lmf_metrics_eval(lmf_metrics *m, int step, double val_loss);
/* Numeric faults: {"step", "skipped": why, "bad_in_row"}, {"step", "rolled_back_to"},
 * {"step", "spike": loss, "running_mean"}. */
lmf_status lmf_metrics_skip(lmf_metrics *m, int step, const char *why, int bad_in_row);
lmf_status lmf_metrics_rollback(lmf_metrics *m, int step, int to_step);
lmf_status lmf_metrics_spike(lmf_metrics *m, int step, double loss, double mean);
/* Where a profiled step's time went: {"step", "step_seconds", "phases": {"NAME_s": seconds,
 * ...}} for each names[i] in the order given (the "_s" keeps a phase named "loss" from reading
 * as the step's loss to a reader that greps). */
lmf_status lmf_metrics_phases(lmf_metrics *m, int step, double step_seconds, int n,
                              const char *const *names, const double *seconds);
/* Text the model generated after `step` steps: {"step", "sample": text, "prompt": prompt}. */
lmf_status lmf_metrics_sample(lmf_metrics *m, int step, const char *prompt, const char *text);
/* Each rank's peak resident memory after a step: {"step", "rss_bytes": [rank 0, rank 1, ...]}. */
lmf_status lmf_metrics_memory(lmf_metrics *m, int step, const int64_t *rss_bytes, int n_ranks);

/* The curves of metrics.jsonl a chart can show (the dashboard's charts). */
typedef enum lmf_plot_kind {
    LMF_PLOT_LOSS,         /* training loss per step, validation loss as dots */
    LMF_PLOT_LR,           /* learning rate */
    LMF_PLOT_GRAD_NORM,    /* gradient norm */
    LMF_PLOT_TOKENS_PER_S, /* throughput */
    LMF_PLOT_MFU,          /* MFU, percent of the peak */
    LMF_PLOT_MEMORY        /* each rank's peak resident memory (MiB) at the profiled steps; the
                            * first 8 ranks */
} lmf_plot_kind;
/* Read metrics.jsonl and write a chart of those curves over the steps to out_path (SVG, or PNG
 * when it ends in ".png"); the title NULL: the curve's name. LMF_ERR_FORMAT when the file
 * holds none of its values. */
lmf_status lmf_plot_curves(const char *metrics_path, const char *out_path, lmf_plot_kind kind,
                           const char *title);
/* lmf_plot_curves with LMF_PLOT_LOSS */
lmf_status lmf_plot_losses(const char *metrics_path, const char *out_path, const char *title);
/* Read metrics.jsonl and write a chart of the profiled steps' time by phase (stacked bars, one
 * per profiled step, "other" on top) to out_path: SVG, or PNG when it ends in ".png". A later
 * line of a step replaces an earlier one (a rollback). LMF_ERR_FORMAT when it holds no profiled
 * step. */
lmf_status lmf_plot_phases(const char *metrics_path, const char *out_path, const char *title);

#ifdef __cplusplus
}
#endif
#endif

/* lmforge plot: draw RUN_DIR/metrics.jsonl as a chart (SVG, or PNG): the loss curves, another
 * of the dashboard's curves, or the profiled steps' time by phase. */
#include <stdio.h>
#include <string.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "lmforge/metrics.h"

#define PHASES (-1) /* not a curve: the phase chart */

static const struct {
    const char *name;
    int kind; /* lmf_plot_kind, or PHASES */
    const char *title;
} charts[] = {
    {"loss", LMF_PLOT_LOSS, "lmforge training loss"},
    {"lr", LMF_PLOT_LR, "learning rate"},
    {"grad_norm", LMF_PLOT_GRAD_NORM, "gradient norm"},
    {"tokens_per_s", LMF_PLOT_TOKENS_PER_S, "throughput (tokens/s)"},
    {"mfu", LMF_PLOT_MFU, "MFU (% of peak)"},
    {"memory", LMF_PLOT_MEMORY, "peak resident memory per rank"},
    {"phases", PHASES, "step time by phase"},
};

int lmf_cmd_plot(int argc, char **argv) {
    const char *out = NULL, *chart = "loss", *pos[1];
    int np = 0;
    lmf_opt opts[] = {
        {"--out", LMF_OPT_STR, &out, "FILE.svg|FILE.png", "chart file; a name ending in .png is a PNG image (default RUN_DIR/CHART.svg)", LMF_NOLIMIT, NULL},
        {"--chart", LMF_OPT_STR, &chart, "CHART", "loss (default), lr, grad_norm, tokens_per_s, mfu, memory (each rank's, at the steps train --profile-every profiled) or phases (the step time by phase of those steps)", LMF_NOLIMIT, NULL},
    };
    int r = lmf_args_parse("plot", "RUN_DIR [--chart CHART] [--out FILE.svg|FILE.png]", opts, 2, argc, argv, pos, 1, &np);
    if (r) return r == 1 ? 0 : 2;
    if (np != 1) { lmf_cli_error("plot", "give the run directory: lmforge plot RUN_DIR"); return 2; }
    int c = -1;
    for (int i = 0; i < (int)(sizeof charts / sizeof charts[0]); i++)
        if (strcmp(chart, charts[i].name) == 0) c = i;
    if (c < 0) {
        lmf_cli_error("plot", "--chart %s is not a chart: use loss, lr, grad_norm, tokens_per_s, "
                      "mfu, memory or phases", chart);
        return 2;
    }
    char metrics[4096], file[4200];
    snprintf(metrics, sizeof metrics, "%s/metrics.jsonl", pos[0]);
    snprintf(file, sizeof file, "%s/%s.svg", pos[0], charts[c].name);
    const char *path = out ? out : file;
    lmf_status s = charts[c].kind == PHASES
                       ? lmf_plot_phases(metrics, path, charts[c].title)
                       : lmf_plot_curves(metrics, path, (lmf_plot_kind)charts[c].kind, charts[c].title);
    if (s != LMF_OK) {
        lmf_cli_error("plot", "%s", lmf_last_error());
        return 1;
    }
    printf("%s\n", path);
    return 0;
}

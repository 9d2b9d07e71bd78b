/* lmforge plot: draw RUN_DIR/metrics.jsonl as a chart (SVG, or PNG): the loss curves, or the
 * profiled steps' time by phase. */
#include <stdio.h>
#include <string.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "lmforge/metrics.h"

typedef enum plot_chart { CHART_LOSS, CHART_PHASES } plot_chart;

int lmf_cmd_plot(int argc, char **argv) {
    const char *out = NULL, *chart = "loss", *pos[1];
    int np = 0;
    lmf_opt opts[] = {
        {"--out", LMF_OPT_STR, &out, "FILE.svg|FILE.png", "chart file; a name ending in .png is a PNG image (default RUN_DIR/loss.svg, RUN_DIR/phases.svg)", LMF_NOLIMIT, NULL},
        {"--chart", LMF_OPT_STR, &chart, "loss|phases", "the loss curves (default), or the step time by phase of the steps profiled with train --profile-every", LMF_NOLIMIT, NULL},
    };
    int r = lmf_args_parse("plot", "RUN_DIR [--chart loss|phases] [--out FILE.svg|FILE.png]", opts, 2, argc, argv, pos, 1, &np);
    if (r) return r == 1 ? 0 : 2;
    if (np != 1) { lmf_cli_error("plot", "give the run directory: lmforge plot RUN_DIR"); return 2; }
    plot_chart which;
    if (strcmp(chart, "loss") == 0) which = CHART_LOSS;
    else if (strcmp(chart, "phases") == 0) which = CHART_PHASES;
    else { lmf_cli_error("plot", "--chart %s is not a chart: use loss or phases", chart); return 2; }
    char metrics[4096], file[4096];
    snprintf(metrics, sizeof metrics, "%s/metrics.jsonl", pos[0]);
    snprintf(file, sizeof file, "%s/%s.svg", pos[0], which == CHART_LOSS ? "loss" : "phases");
    const char *path = out ? out : file;
    lmf_status s = which == CHART_LOSS ? lmf_plot_losses(metrics, path, "lmforge training loss")
                                       : lmf_plot_phases(metrics, path, "lmforge step time by phase");
    if (s != LMF_OK) {
        lmf_cli_error("plot", "%s", lmf_last_error());
        return 1;
    }
    printf("%s\n", path);
    return 0;
}

/* lmforge plot: draw RUN_DIR/metrics.jsonl as a chart of the loss curves (SVG, or PNG). */
#include <stdio.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "lmforge/metrics.h"

int lmf_cmd_plot(int argc, char **argv) {
    const char *out = NULL, *pos[1];
    int np = 0;
    lmf_opt opts[] = {
        {"--out", LMF_OPT_STR, &out, "FILE.svg|FILE.png", "chart file; a name ending in .png is a PNG image (default RUN_DIR/loss.svg)", LMF_NOLIMIT, NULL},
    };
    int r = lmf_args_parse("plot", "RUN_DIR [--out FILE.svg|FILE.png]", opts, 1, argc, argv, pos, 1, &np);
    if (r) return r == 1 ? 0 : 2;
    if (np != 1) { lmf_cli_error("plot", "give the run directory: lmforge plot RUN_DIR"); return 2; }
    char metrics[4096], svg[4096];
    snprintf(metrics, sizeof metrics, "%s/metrics.jsonl", pos[0]);
    snprintf(svg, sizeof svg, "%s/loss.svg", pos[0]);
    if (lmf_plot_losses(metrics, out ? out : svg, "lmforge training loss") != LMF_OK) {
        lmf_cli_error("plot", "%s", lmf_last_error());
        return 1;
    }
    printf("%s\n", out ? out : svg);
    return 0;
}

/* The charts of metrics.jsonl's curves over the steps (SVG or PNG): training and validation
 * loss, learning rate, gradient norm, throughput, MFU, each rank's memory. */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lmforge/fsutil.h"
#include "lmforge/metrics.h"
#include "train/plot_canvas.h"

typedef struct series {
    double *x, *y;
    size_t n, cap;
} series;

static int push(series *s, double x, double y) {
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 256;
        double *nx = realloc(s->x, cap * sizeof(double));
        if (!nx) return -1;
        s->x = nx;
        double *ny = realloc(s->y, cap * sizeof(double));
        if (!ny) return -1;
        s->y = ny;
        s->cap = cap;
    }
    s->x[s->n] = x;
    s->y[s->n] = y;
    s->n++;
    return 0;
}

#define W 800
#define H 480
#define ML 70
#define MR 20
#define MT 40
#define MB 50

#define TRAIN_RGB 0x1f77b4u
#define VAL_RGB 0xd62728u

/* a series in pixels, with dots at its points when dots */
static lmf_status curve(plot_canvas *c, const series *s, double x0, double x1, double y0,
                        double y1, unsigned rgb, int dots) {
    if (s->n == 0) return LMF_OK;
    double sx = (W - ML - MR) / (x1 - x0), sy = (H - MT - MB) / (y1 - y0);
    double *px = malloc(s->n * sizeof *px), *py = malloc(s->n * sizeof *py);
    if (!px || !py) {
        free(px);
        free(py);
        return lmf_fail(LMF_ERR_NOMEM, "cannot hold the loss curve");
    }
    for (size_t i = 0; i < s->n; i++) {
        px[i] = ML + (s->x[i] - x0) * sx;
        py[i] = H - MB - (s->y[i] - y0) * sy;
        if (dots) plot_dot(c, px[i], py[i], 3, rgb);
    }
    if (!dots || s->n > 1) plot_polyline(c, px, py, (int)s->n, rgb, 1.5);
    free(px);
    free(py);
    return LMF_OK;
}

/* what a chart shows: its series' key in metrics.jsonl, axis label, file name */
typedef struct chart_kind {
    const char *key, *ylabel, *what;
    double scale; /* multiplies the values */
} chart_kind;

static const chart_kind kinds[] = {
    [LMF_PLOT_LOSS] = {"loss", "loss (nats/token)", "loss values", 1},
    [LMF_PLOT_LR] = {"lr", "learning rate", "learning rates", 1},
    [LMF_PLOT_GRAD_NORM] = {"grad_norm", "gradient norm", "gradient norms", 1},
    [LMF_PLOT_TOKENS_PER_S] = {"tokens_per_s", "tokens/s", "throughputs", 1},
    [LMF_PLOT_MFU] = {"mfu", "MFU (% of peak)", "MFU values", 100},
    [LMF_PLOT_MEMORY] = {"rss_bytes", "peak resident memory (MiB)",
                         "memory records (train --profile-every)", 1.0 / (1 << 20)},
};

#define MAX_SERIES 8 /* the memory chart's first ranks */

static const unsigned rank_rgb[MAX_SERIES] = {0x1f77b4u, 0xd62728u, 0x2ca02cu, 0x9467bdu,
                                               0xff7f0eu, 0x17becfu, 0x8c564bu, 0xe377c2u};

/* the series of one line: [0] the key's value at step + 1 (the loss chart: [1] the validation
 * loss at step, the steps done); the memory chart: [r] rank r's bytes */
static int take_line(const chart_kind *k, lmf_plot_kind kind, json_t *j, series *s, int *n_series) {
    double step = (double)json_integer_value(json_object_get(j, "step"));
    json_t *v = json_object_get(j, k->key);
    int r = 0;
    if (kind == LMF_PLOT_MEMORY) {
        size_t i;
        json_t *x;
        json_array_foreach(v, i, x) {
            if (i >= MAX_SERIES) break;
            if (json_is_number(x)) r |= push(&s[i], step + 1, json_number_value(x) * k->scale);
            if ((int)i + 1 > *n_series) *n_series = (int)i + 1;
        }
        return r;
    }
    if (json_is_number(v)) r = push(&s[0], step + 1, json_number_value(v) * k->scale);
    json_t *val = kind == LMF_PLOT_LOSS ? json_object_get(j, "val_loss") : NULL;
    if (json_is_number(val)) r |= push(&s[1], step, json_number_value(val));
    return r;
}

lmf_status lmf_plot_curves(const char *metrics_path, const char *out_path, lmf_plot_kind kind,
                           const char *title) {
    if ((unsigned)kind >= sizeof kinds / sizeof kinds[0])
        return lmf_fail(LMF_ERR_ARG, "not a chart of metrics.jsonl's curves: %d", (int)kind);
    const chart_kind *k = &kinds[kind];
    char *buf = NULL;
    size_t len = 0;
    LMF_TRY(lmf_read_file(metrics_path, &buf, &len, (size_t)1 << 31));
    series s[MAX_SERIES];
    memset(s, 0, sizeof s);
    int n_series = kind == LMF_PLOT_LOSS ? 2 : 1;
    lmf_status st = LMF_OK;
    char *line = buf;
    while (line < buf + len) {
        char *nl = memchr(line, '\n', (size_t)(buf + len - line));
        size_t ll = nl ? (size_t)(nl - line) : (size_t)(buf + len - line);
        json_t *j = json_loadb(line, ll, 0, NULL);
        if (j) {
            int r = take_line(k, kind, j, s, &n_series);
            json_decref(j);
            if (r) { st = lmf_fail(LMF_ERR_NOMEM, "cannot hold the curves"); break; }
        }
        line += ll + 1;
    }
    free(buf);
    size_t points = 0;
    for (int i = 0; i < n_series; i++) points += s[i].n;
    if (st == LMF_OK && points == 0)
        st = lmf_fail(LMF_ERR_FORMAT, "%s holds no %s to plot", metrics_path, k->what);
    if (st != LMF_OK) goto done;
    double x0 = 0, x1 = 1, y0 = INFINITY, y1 = -INFINITY;
    for (int i = 0; i < n_series; i++)
        for (size_t p = 0; p < s[i].n; p++) {
            if (s[i].x[p] > x1) x1 = s[i].x[p];
            if (s[i].y[p] < y0) y0 = s[i].y[p];
            if (s[i].y[p] > y1) y1 = s[i].y[p];
        }
    double span = fabs(y1) > 0 ? fabs(y1) : 1; /* a flat curve: half its value either side */
    if (y1 - y0 < 1e-6 * span) { y0 -= 0.5 * span; y1 += 0.5 * span; }
    double ys = plot_nice_step(y1 - y0, 6), xs = plot_nice_step(x1 - x0, 8);
    y0 = floor(y0 / ys) * ys;
    y1 = ceil(y1 / ys) * ys;
    plot_canvas *c = NULL;
    if ((st = plot_canvas_open(plot_format_of(out_path), out_path, W, H, &c)) != LMF_OK) goto done;
    char label[64];
    plot_text(c, W / 2, 24, PLOT_MIDDLE, 15, 0, title ? title : k->ylabel);
    for (double y = y0; y <= y1 + ys * 1e-6; y += ys) {
        double py = H - MB - (y - y0) * (H - MT - MB) / (y1 - y0);
        plot_line(c, ML, py, W - MR, py, 0xddddddu, 1);
        snprintf(label, sizeof label, "%g", fabs(y) < ys * 1e-6 ? 0.0 : y);
        plot_text(c, ML - 6, py + 4, PLOT_END, 12, 0, label);
    }
    for (double x = 0; x <= x1 + xs * 1e-6; x += xs) {
        double px = ML + (x - x0) * (W - ML - MR) / (x1 - x0);
        plot_line(c, px, MT, px, H - MB, 0xddddddu, 1);
        snprintf(label, sizeof label, "%g", x);
        plot_text(c, px, H - MB + 18, PLOT_MIDDLE, 12, 0, label);
    }
    plot_rect(c, ML, MT, W - ML - MR, H - MT - MB, 0x444444u, 0);
    plot_text(c, W / 2, H - 12, PLOT_MIDDLE, 12, 0, "step");
    plot_text(c, 14, H / 2, PLOT_MIDDLE, 12, 1, k->ylabel);
    /* the loss chart: train blue, validation red dots; the memory chart: a color per rank */
    for (int i = 0; st == LMF_OK && i < n_series; i++) {
        unsigned rgb = kind == LMF_PLOT_MEMORY ? rank_rgb[i] : i == 0 ? TRAIN_RGB : VAL_RGB;
        st = curve(c, &s[i], x0, x1, y0, y1, rgb, kind == LMF_PLOT_LOSS && i == 1);
        if (kind != LMF_PLOT_LOSS && kind != LMF_PLOT_MEMORY) continue;
        if (kind == LMF_PLOT_MEMORY) snprintf(label, sizeof label, "rank %d", i);
        else snprintf(label, sizeof label, "%s", i == 0 ? "train" : "validation");
        plot_rect(c, W - MR - 120, MT + 14 + 18 * i, 14, 3, rgb, 1);
        plot_text(c, W - MR - 100, MT + 18 + 18 * i, PLOT_START, 12, 0, label);
    }
    lmf_status fs = plot_canvas_finish(c);
    if (st == LMF_OK) st = fs;
done:
    for (int i = 0; i < MAX_SERIES; i++) {
        free(s[i].x);
        free(s[i].y);
    }
    return st;
}

lmf_status lmf_plot_losses(const char *metrics_path, const char *out_path, const char *title) {
    return lmf_plot_curves(metrics_path, out_path, LMF_PLOT_LOSS, title);
}

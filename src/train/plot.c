/* The chart of the training and validation loss curves from metrics.jsonl (SVG or PNG). */
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

lmf_status lmf_plot_losses(const char *metrics_path, const char *out_path, const char *title) {
    char *buf = NULL;
    size_t len = 0;
    LMF_TRY(lmf_read_file(metrics_path, &buf, &len, (size_t)1 << 31));
    series tr = {0}, va = {0};
    lmf_status st = LMF_OK;
    char *line = buf;
    while (line < buf + len) {
        char *nl = memchr(line, '\n', (size_t)(buf + len - line));
        size_t ll = nl ? (size_t)(nl - line) : (size_t)(buf + len - line);
        json_t *j = json_loadb(line, ll, 0, NULL);
        if (j) {
            double step = (double)json_integer_value(json_object_get(j, "step"));
            json_t *l = json_object_get(j, "loss"), *v = json_object_get(j, "val_loss");
            int r = 0;
            if (json_is_number(l)) r = push(&tr, step + 1, json_number_value(l));
            if (json_is_number(v)) r |= push(&va, step, json_number_value(v));
            json_decref(j);
            if (r) { st = lmf_fail(LMF_ERR_NOMEM, "cannot hold the loss curve"); break; }
        }
        line += ll + 1;
    }
    free(buf);
    if (st == LMF_OK && tr.n == 0 && va.n == 0)
        st = lmf_fail(LMF_ERR_FORMAT, "%s holds no loss values to plot", metrics_path);
    if (st != LMF_OK) goto done;
    double x0 = 0, x1 = 1, y0 = INFINITY, y1 = -INFINITY;
    for (int k = 0; k < 2; k++) {
        const series *s = k ? &va : &tr;
        for (size_t i = 0; i < s->n; i++) {
            if (s->x[i] > x1) x1 = s->x[i];
            if (s->y[i] < y0) y0 = s->y[i];
            if (s->y[i] > y1) y1 = s->y[i];
        }
    }
    if (y1 - y0 < 1e-6) { y0 -= 0.5; y1 += 0.5; }
    double ys = plot_nice_step(y1 - y0, 6), xs = plot_nice_step(x1 - x0, 8);
    y0 = floor(y0 / ys) * ys;
    y1 = ceil(y1 / ys) * ys;
    plot_canvas *c = NULL;
    if ((st = plot_canvas_open(plot_format_of(out_path), out_path, W, H, &c)) != LMF_OK) goto done;
    char label[64];
    plot_text(c, W / 2, 24, PLOT_MIDDLE, 15, 0, title ? title : "loss");
    for (double y = y0; y <= y1 + ys * 1e-6; y += ys) {
        double py = H - MB - (y - y0) * (H - MT - MB) / (y1 - y0);
        plot_line(c, ML, py, W - MR, py, 0xddddddu, 1);
        snprintf(label, sizeof label, "%g", y);
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
    plot_text(c, 18, H / 2, PLOT_MIDDLE, 12, 1, "loss (nats/token)");
    st = curve(c, &tr, x0, x1, y0, y1, TRAIN_RGB, 0);
    if (st == LMF_OK) st = curve(c, &va, x0, x1, y0, y1, VAL_RGB, 1);
    plot_rect(c, W - MR - 120, MT + 14, 14, 3, TRAIN_RGB, 1);
    plot_text(c, W - MR - 100, MT + 18, PLOT_START, 12, 0, "train");
    plot_rect(c, W - MR - 120, MT + 32, 14, 3, VAL_RGB, 1);
    plot_text(c, W - MR - 100, MT + 36, PLOT_START, 12, 0, "validation");
    lmf_status fs = plot_canvas_finish(c);
    if (st == LMF_OK) st = fs;
done:
    free(tr.x); free(tr.y); free(va.x); free(va.y);
    return st;
}

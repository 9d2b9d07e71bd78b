/* SVG chart of the training and validation loss curves from metrics.jsonl. */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lmforge/fsutil.h"
#include "lmforge/metrics.h"

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

/* a "nice" tick step for a range: 1, 2 or 5 times a power of ten */
static double nice_step(double range, int ticks) {
    double raw = range / ticks, p = pow(10.0, floor(log10(raw))), f = raw / p;
    return (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * p;
}

#define W 800
#define H 480
#define ML 70
#define MR 20
#define MT 40
#define MB 50

static void polyline(FILE *f, const series *s, double x0, double x1, double y0, double y1,
                     const char *color, int dots) {
    if (s->n == 0) return;
    double sx = (W - ML - MR) / (x1 - x0), sy = (H - MT - MB) / (y1 - y0);
    if (!dots) fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\" points=\"", color);
    for (size_t i = 0; i < s->n; i++) {
        double px = ML + (s->x[i] - x0) * sx, py = H - MB - (s->y[i] - y0) * sy;
        if (dots)
            fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>\n", px, py, color);
        else
            fprintf(f, "%.1f,%.1f ", px, py);
    }
    if (!dots) fprintf(f, "\"/>\n");
    if (dots && s->n > 1) polyline(f, s, x0, x1, y0, y1, color, 0);
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
    double ys = nice_step(y1 - y0, 6), xs = nice_step(x1 - x0, 8);
    y0 = floor(y0 / ys) * ys;
    y1 = ceil(y1 / ys) * ys;
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", out_path);
    FILE *f = fopen(tmp, "w");
    if (!f) { st = lmf_fail(LMF_ERR_IO, "cannot create %s: %s", tmp, strerror(errno)); goto done; }
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
               "font-family=\"sans-serif\" font-size=\"12\">\n", W, H);
    fprintf(f, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
    fprintf(f, "<text x=\"%d\" y=\"24\" text-anchor=\"middle\" font-size=\"15\">%s</text>\n", W / 2,
            title ? title : "loss");
    for (double y = y0; y <= y1 + ys * 1e-6; y += ys) {
        double py = H - MB - (y - y0) * (H - MT - MB) / (y1 - y0);
        fprintf(f, "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", ML, py,
                W - MR, py);
        fprintf(f, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%g</text>\n", ML - 6, py + 4, y);
    }
    for (double x = 0; x <= x1 + xs * 1e-6; x += xs) {
        double px = ML + (x - x0) * (W - ML - MR) / (x1 - x0);
        fprintf(f, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#ddd\"/>\n", px, MT,
                px, H - MB);
        fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%g</text>\n", px, H - MB + 18, x);
    }
    fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#444\"/>\n",
            ML, MT, W - ML - MR, H - MT - MB);
    fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">step</text>\n", W / 2, H - 12);
    fprintf(f, "<text x=\"18\" y=\"%d\" text-anchor=\"middle\" transform=\"rotate(-90 18 %d)\">"
               "loss (nats/token)</text>\n", H / 2, H / 2);
    polyline(f, &tr, x0, x1, y0, y1, "#1f77b4", 0);
    polyline(f, &va, x0, x1, y0, y1, "#d62728", 1);
    fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"14\" height=\"3\" fill=\"#1f77b4\"/>"
               "<text x=\"%d\" y=\"%d\">train</text>\n", W - MR - 120, MT + 14, W - MR - 100, MT + 18);
    fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"14\" height=\"3\" fill=\"#d62728\"/>"
               "<text x=\"%d\" y=\"%d\">validation</text>\n", W - MR - 120, MT + 32, W - MR - 100,
            MT + 36);
    fprintf(f, "</svg>\n");
    if (fclose(f) != 0 || rename(tmp, out_path) != 0)
        st = lmf_fail(LMF_ERR_IO, "cannot write %s: %s", out_path, strerror(errno));
done:
    free(tr.x); free(tr.y); free(va.x); free(va.y);
    return st;
}

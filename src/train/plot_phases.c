/* The chart of the profiled steps' time by phase from metrics.jsonl: stacked bars (SVG or PNG). */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lmforge/fsutil.h"
#include "lmforge/metrics.h"
#include "train/plot_canvas.h"

#define MAX_PHASES 16
#define W 800
#define H 480
#define ML 70
#define MR 130 /* the legend */
#define MT 40
#define MB 50

/* the dashboard's colors (web/app.js), others in turn */
static unsigned color_of(const char *name, int i) {
    static const struct { const char *name; unsigned rgb; } known[] = {
        {"matmul", 0x1f77b4u}, {"attention", 0xff7f0eu}, {"elementwise", 0x2ca02cu},
        {"loss", 0x9467bdu}, {"tp_comm", 0xe377c2u}, {"optimizer", 0x17becfu},
        {"dp_comm", 0xd62728u}, {"other", 0xbbbbbbu}};
    static const unsigned spare[] = {0x8c564bu, 0xbcbd22u, 0x7f7f7fu, 0xaec7e8u};
    for (size_t k = 0; k < sizeof known / sizeof known[0]; k++)
        if (strcmp(known[k].name, name) == 0) return known[k].rgb;
    return spare[i % 4];
}

typedef struct bars {
    char names[MAX_PHASES][40];
    int n_names, n, cap;
    int *step;
    double *sec; /* n x MAX_PHASES */
} bars;

/* phase index of NAME (from the key NAME_s), added when new; -1 when not a phase key or full */
static int phase_index(bars *b, const char *key) {
    size_t len = strlen(key);
    if (len < 3 || len > 34 || strcmp(key + len - 2, "_s") != 0) return -1;
    for (int i = 0; i < b->n_names; i++)
        if (strlen(b->names[i]) == len - 2 && strncmp(b->names[i], key, len - 2) == 0) return i;
    if (b->n_names == MAX_PHASES) return -1;
    snprintf(b->names[b->n_names], sizeof b->names[0], "%.*s", (int)(len - 2), key);
    return b->n_names++;
}

static lmf_status take(bars *b, int step, json_t *ph) {
    if (b->n == b->cap) {
        int cap = b->cap ? 2 * b->cap : 64;
        int *ns = realloc(b->step, (size_t)cap * sizeof *ns);
        if (!ns) return lmf_fail(LMF_ERR_NOMEM, "cannot hold the phases");
        b->step = ns;
        double *nv = realloc(b->sec, (size_t)cap * MAX_PHASES * sizeof *nv);
        if (!nv) return lmf_fail(LMF_ERR_NOMEM, "cannot hold the phases");
        b->sec = nv;
        b->cap = cap;
    }
    double *row = b->sec + (size_t)b->n * MAX_PHASES;
    for (int i = 0; i < MAX_PHASES; i++) row[i] = 0;
    const char *k;
    json_t *v;
    json_object_foreach(ph, k, v) {
        int i = phase_index(b, k);
        double x = json_is_number(v) ? json_number_value(v) : 0;
        if (i >= 0 && isfinite(x) && x > 0) row[i] = x;
    }
    b->step[b->n++] = step;
    return LMF_OK;
}

/* the lines of profiled steps; a later line of the same step (after a rollback) replaces it */
static lmf_status read_bars(const char *metrics_path, bars *b) {
    char *buf = NULL;
    size_t len = 0;
    LMF_TRY(lmf_read_file(metrics_path, &buf, &len, (size_t)1 << 31));
    lmf_status st = LMF_OK;
    for (char *line = buf; st == LMF_OK && line < buf + len;) {
        char *nl = memchr(line, '\n', (size_t)(buf + len - line));
        size_t ll = nl ? (size_t)(nl - line) : (size_t)(buf + len - line);
        json_t *j = json_loadb(line, ll, 0, NULL), *ph = j ? json_object_get(j, "phases") : NULL;
        if (json_is_object(ph)) {
            int step = (int)json_integer_value(json_object_get(j, "step"));
            while (b->n > 0 && b->step[b->n - 1] >= step) b->n--;
            st = take(b, step, ph);
        }
        json_decref(j);
        line += ll + 1;
    }
    free(buf);
    if (st == LMF_OK && b->n == 0)
        st = lmf_fail(LMF_ERR_FORMAT, "%s holds no profiled steps to plot: train with "
                      "--profile-every N", metrics_path);
    return st;
}

/* "other" drawn last (on top), the rest in the order first seen */
static void draw_order(const bars *b, int *order) {
    int k = 0, other = -1;
    for (int i = 0; i < b->n_names; i++) {
        if (strcmp(b->names[i], "other") == 0) other = i;
        else order[k++] = i;
    }
    if (other >= 0) order[k] = other;
}

lmf_status lmf_plot_phases(const char *metrics_path, const char *out_path, const char *title) {
    bars b = {0};
    lmf_status st = read_bars(metrics_path, &b);
    if (st != LMF_OK) goto done;
    /* x: steps (1-based, as on the loss chart); y: milliseconds */
    double x0 = b.step[0] + 1, x1 = b.step[b.n - 1] + 1, y1 = 0;
    for (int r = 0; r < b.n; r++) {
        double sum = 0;
        for (int i = 0; i < b.n_names; i++) sum += b.sec[(size_t)r * MAX_PHASES + i];
        if (sum * 1e3 > y1) y1 = sum * 1e3;
    }
    if (y1 <= 0) y1 = 1;
    double ys = plot_nice_step(y1, 6);
    y1 = ceil(y1 / ys) * ys;
    double pad = b.n > 1 ? (x1 - x0) / (b.n - 1) / 2 : 1; /* half a bar's spacing each side */
    x0 -= pad;
    x1 += pad;
    double xs = plot_nice_step(x1 - x0, 8), pw = W - ML - MR, phh = H - MT - MB;
    double bw = pw / b.n * 0.8;
    if (bw > 40) bw = 40;
    if (bw < 1) bw = 1;
    plot_canvas *c = NULL;
    if ((st = plot_canvas_open(plot_format_of(out_path), out_path, W, H, &c)) != LMF_OK) goto done;
    char label[64];
    plot_text(c, ML + pw / 2, 24, PLOT_MIDDLE, 15, 0, title ? title : "step time by phase");
    for (double y = 0; y <= y1 + ys * 1e-6; y += ys) {
        double py = H - MB - y / y1 * phh;
        plot_line(c, ML, py, ML + pw, py, 0xddddddu, 1);
        snprintf(label, sizeof label, "%g", y);
        plot_text(c, ML - 6, py + 4, PLOT_END, 12, 0, label);
    }
    for (double x = ceil(x0 / xs) * xs; x <= x1 + xs * 1e-6; x += xs) {
        double px = ML + (x - x0) / (x1 - x0) * pw;
        snprintf(label, sizeof label, "%g", x);
        plot_text(c, px, H - MB + 18, PLOT_MIDDLE, 12, 0, label);
    }
    int order[MAX_PHASES];
    draw_order(&b, order);
    for (int r = 0; r < b.n; r++) {
        double px = ML + (b.step[r] + 1 - x0) / (x1 - x0) * pw, base = 0;
        for (int k = 0; k < b.n_names; k++) {
            int i = order[k];
            double v = b.sec[(size_t)r * MAX_PHASES + i] * 1e3;
            if (v <= 0) continue;
            double top = H - MB - (base + v) / y1 * phh, bottom = H - MB - base / y1 * phh;
            plot_rect(c, px - bw / 2, top, bw, bottom - top, color_of(b.names[i], i), 1);
            base += v;
        }
    }
    plot_rect(c, ML, MT, pw, phh, 0x444444u, 0);
    plot_text(c, ML + pw / 2, H - 12, PLOT_MIDDLE, 12, 0, "step");
    plot_text(c, 18, H / 2, PLOT_MIDDLE, 12, 1, "milliseconds per step");
    for (int k = b.n_names - 1, row = 0; k >= 0; k--, row++) { /* top to bottom, as stacked */
        int i = order[k];
        plot_rect(c, W - MR + 12, MT + 8 + row * 18, 12, 12, color_of(b.names[i], i), 1);
        plot_text(c, W - MR + 30, MT + 18 + row * 18, PLOT_START, 12, 0, b.names[i]);
    }
    st = plot_canvas_finish(c);
done:
    free(b.step);
    free(b.sec);
    return st;
}

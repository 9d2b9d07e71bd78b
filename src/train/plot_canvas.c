/* The canvases a chart is drawn on: SVG text, or a PNG image rasterized by cairo. */
#include "train/plot_canvas.h"

#include <cairo.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct plot_canvas {
    plot_format fmt;
    char path[4096], tmp[4200];
    FILE *f;          /* SVG */
    cairo_surface_t *surface; /* PNG */
    cairo_t *cr;
};

static void rgb_of(cairo_t *cr, unsigned rgb) {
    cairo_set_source_rgb(cr, ((rgb >> 16) & 255) / 255.0, ((rgb >> 8) & 255) / 255.0,
                         (rgb & 255) / 255.0);
}

lmf_status plot_canvas_open(plot_format fmt, const char *path, int w, int h, plot_canvas **out) {
    *out = NULL;
    plot_canvas *c = calloc(1, sizeof *c);
    if (!c) return lmf_fail(LMF_ERR_NOMEM, "cannot allocate a chart");
    c->fmt = fmt;
    snprintf(c->path, sizeof c->path, "%s", path);
    snprintf(c->tmp, sizeof c->tmp, "%s.tmp", path);
    if (fmt == PLOT_SVG) {
        c->f = fopen(c->tmp, "w");
        if (!c->f) {
            lmf_status s = lmf_fail(LMF_ERR_IO, "cannot create %s: %s", c->tmp, strerror(errno));
            free(c);
            return s;
        }
        fprintf(c->f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
                      "font-family=\"sans-serif\" font-size=\"12\">\n", w, h);
        fprintf(c->f, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
    } else {
        c->surface = cairo_image_surface_create(CAIRO_FORMAT_RGB24, w, h);
        c->cr = cairo_create(c->surface);
        if (cairo_status(c->cr) != CAIRO_STATUS_SUCCESS) {
            cairo_destroy(c->cr);
            cairo_surface_destroy(c->surface);
            free(c);
            return lmf_fail(LMF_ERR_NOMEM, "cannot allocate a %d x %d image", w, h);
        }
        cairo_set_source_rgb(c->cr, 1, 1, 1);
        cairo_paint(c->cr);
        cairo_select_font_face(c->cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL,
                               CAIRO_FONT_WEIGHT_NORMAL);
    }
    *out = c;
    return LMF_OK;
}

void plot_line(plot_canvas *c, double x1, double y1, double x2, double y2, unsigned rgb,
               double width) {
    if (c->fmt == PLOT_SVG) {
        fprintf(c->f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#%06x\" "
                      "stroke-width=\"%g\"/>\n", x1, y1, x2, y2, rgb, width);
        return;
    }
    rgb_of(c->cr, rgb);
    cairo_set_line_width(c->cr, width);
    cairo_move_to(c->cr, x1, y1);
    cairo_line_to(c->cr, x2, y2);
    cairo_stroke(c->cr);
}

void plot_polyline(plot_canvas *c, const double *x, const double *y, int n, unsigned rgb,
                   double width) {
    if (n <= 0) return;
    if (c->fmt == PLOT_SVG) {
        fprintf(c->f, "<polyline fill=\"none\" stroke=\"#%06x\" stroke-width=\"%g\" points=\"", rgb,
                width);
        for (int i = 0; i < n; i++) fprintf(c->f, "%.1f,%.1f ", x[i], y[i]);
        fprintf(c->f, "\"/>\n");
        return;
    }
    rgb_of(c->cr, rgb);
    cairo_set_line_width(c->cr, width);
    cairo_set_line_join(c->cr, CAIRO_LINE_JOIN_ROUND);
    cairo_move_to(c->cr, x[0], y[0]);
    for (int i = 1; i < n; i++) cairo_line_to(c->cr, x[i], y[i]);
    cairo_stroke(c->cr);
}

void plot_rect(plot_canvas *c, double x, double y, double w, double h, unsigned rgb, int filled) {
    if (c->fmt == PLOT_SVG) {
        if (filled)
            fprintf(c->f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" "
                          "fill=\"#%06x\"/>\n", x, y, w, h, rgb);
        else
            fprintf(c->f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" "
                          "stroke=\"#%06x\"/>\n", x, y, w, h, rgb);
        return;
    }
    rgb_of(c->cr, rgb);
    if (filled) {
        cairo_rectangle(c->cr, x, y, w, h);
        cairo_fill(c->cr);
    } else { /* a 1-pixel stroke on pixel centres */
        cairo_set_line_width(c->cr, 1);
        cairo_rectangle(c->cr, floor(x) + 0.5, floor(y) + 0.5, w, h);
        cairo_stroke(c->cr);
    }
}

void plot_dot(plot_canvas *c, double x, double y, double r, unsigned rgb) {
    if (c->fmt == PLOT_SVG) {
        fprintf(c->f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"%g\" fill=\"#%06x\"/>\n", x, y, r, rgb);
        return;
    }
    rgb_of(c->cr, rgb);
    cairo_arc(c->cr, x, y, r, 0, 2 * M_PI);
    cairo_fill(c->cr);
}

static void xml_text(FILE *f, const char *s) {
    for (; *s; s++) {
        if (*s == '<') fputs("&lt;", f);
        else if (*s == '>') fputs("&gt;", f);
        else if (*s == '&') fputs("&amp;", f);
        else fputc(*s, f);
    }
}

void plot_text(plot_canvas *c, double x, double y, plot_anchor a, double size, int vertical,
               const char *text) {
    static const char *const anchors[] = {"start", "middle", "end"};
    if (c->fmt == PLOT_SVG) {
        fprintf(c->f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"%s\"", x, y, anchors[a]);
        if (size != 12) fprintf(c->f, " font-size=\"%g\"", size);
        if (vertical) fprintf(c->f, " transform=\"rotate(-90 %.1f %.1f)\"", x, y);
        fputc('>', c->f);
        xml_text(c->f, text);
        fprintf(c->f, "</text>\n");
        return;
    }
    cairo_save(c->cr);
    cairo_set_source_rgb(c->cr, 0.2, 0.2, 0.2);
    cairo_set_font_size(c->cr, size);
    cairo_translate(c->cr, x, y);
    if (vertical) cairo_rotate(c->cr, -M_PI / 2);
    cairo_text_extents_t e;
    cairo_text_extents(c->cr, text, &e);
    double dx = a == PLOT_START ? 0 : a == PLOT_MIDDLE ? -e.x_advance / 2 : -e.x_advance;
    cairo_move_to(c->cr, dx, 0);
    cairo_show_text(c->cr, text);
    cairo_restore(c->cr);
}

lmf_status plot_canvas_finish(plot_canvas *c) {
    lmf_status s = LMF_OK;
    if (c->fmt == PLOT_SVG) {
        fprintf(c->f, "</svg>\n");
        if (fclose(c->f) != 0) s = lmf_fail(LMF_ERR_IO, "cannot write %s: %s", c->tmp, strerror(errno));
    } else {
        cairo_destroy(c->cr);
        cairo_surface_flush(c->surface);
        cairo_status_t cs = cairo_surface_write_to_png(c->surface, c->tmp);
        cairo_surface_destroy(c->surface);
        if (cs != CAIRO_STATUS_SUCCESS)
            s = lmf_fail(LMF_ERR_IO, "cannot write %s: %s", c->tmp, cairo_status_to_string(cs));
    }
    if (s == LMF_OK && rename(c->tmp, c->path) != 0)
        s = lmf_fail(LMF_ERR_IO, "cannot write %s: %s", c->path, strerror(errno));
    if (s != LMF_OK) remove(c->tmp);
    free(c);
    return s;
}

plot_format plot_format_of(const char *path) {
    size_t n = strlen(path);
    return n >= 4 && strcasecmp(path + n - 4, ".png") == 0 ? PLOT_PNG : PLOT_SVG;
}

double plot_nice_step(double range, int ticks) {
    double raw = range / ticks, p = pow(10.0, floor(log10(raw))), f = raw / p;
    return (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * p;
}

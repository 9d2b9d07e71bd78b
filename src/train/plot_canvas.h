/* The drawing operations a chart is made of, written as SVG text or rasterized to PNG. */
#ifndef LMF_TRAIN_PLOT_CANVAS_H
#define LMF_TRAIN_PLOT_CANVAS_H

#include "lmforge/status.h"

typedef enum plot_format { PLOT_SVG, PLOT_PNG } plot_format;
typedef enum plot_anchor { PLOT_START, PLOT_MIDDLE, PLOT_END } plot_anchor;

typedef struct plot_canvas plot_canvas;

/* a canvas of w x h pixels (white) that plot_canvas_finish writes to path atomically */
lmf_status plot_canvas_open(plot_format fmt, const char *path, int w, int h, plot_canvas **out);
/* colors are 0xRRGGBB; coordinates in pixels from the top left */
void plot_line(plot_canvas *c, double x1, double y1, double x2, double y2, unsigned rgb, double width);
void plot_polyline(plot_canvas *c, const double *x, const double *y, int n, unsigned rgb, double width);
void plot_rect(plot_canvas *c, double x, double y, double w, double h, unsigned rgb, int filled);
void plot_dot(plot_canvas *c, double x, double y, double r, unsigned rgb);
/* text with its baseline at y; rotated 90 degrees counter-clockwise about (x, y) when vertical */
void plot_text(plot_canvas *c, double x, double y, plot_anchor a, double size, int vertical,
               const char *text);
/* write the file and free the canvas (also on failure) */
lmf_status plot_canvas_finish(plot_canvas *c);

/* ".png" (any case) at the end of path: PNG, else SVG */
plot_format plot_format_of(const char *path);
/* a "nice" tick step for a range: 1, 2 or 5 times a power of ten */
double plot_nice_step(double range, int ticks);

#endif

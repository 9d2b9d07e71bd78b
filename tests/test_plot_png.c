/* The loss chart as PNG: decoded with libpng, its size, its frame found from its pixels, and
 * the curve's pixels where the values put them; the same chart as SVG; a file that cannot be
 * written. The other curves (gradient norm, each rank's memory) and the phase chart's bars,
 * measured in pixels the same way. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lmforge/metrics.h"

#include "lib/test_util.h"

typedef struct image {
    int w, h;
    unsigned char *rgb;
} image;

static image decode(const char *path) {
    png_image pi;
    memset(&pi, 0, sizeof pi);
    pi.version = PNG_IMAGE_VERSION;
    assert_true(png_image_begin_read_from_file(&pi, path));
    pi.format = PNG_FORMAT_RGB;
    image im = {(int)pi.width, (int)pi.height, malloc(PNG_IMAGE_SIZE(pi))};
    assert_non_null(im.rgb);
    assert_true(png_image_finish_read(&pi, NULL, im.rgb, 0, NULL));
    return im;
}

static const unsigned char *px(const image *im, int x, int y) { return im->rgb + 3 * ((size_t)y * im->w + x); }
static int is_rgb(const image *im, int x, int y, unsigned rgb) {
    const unsigned char *p = px(im, x, y);
    return p[0] == (rgb >> 16) && p[1] == ((rgb >> 8) & 255) && p[2] == (rgb & 255);
}
/* the plot's frame (0x444444): the first frame pixels seen going out from the middle */
static void find_frame(const image *im, int *left, int *right, int *top, int *bottom) {
    int cx = im->w / 2, cy = im->h / 2;
    *left = *right = *top = *bottom = -1;
    for (int x = cx; x >= 0 && *left < 0; x--) if (is_rgb(im, x, cy, 0x444444)) *left = x;
    for (int x = cx; x < im->w && *right < 0; x++) if (is_rgb(im, x, cy, 0x444444)) *right = x;
    for (int y = cy; y >= 0 && *top < 0; y--) if (is_rgb(im, cx, y, 0x444444)) *top = y;
    for (int y = cy; y < im->h && *bottom < 0; y++) if (is_rgb(im, cx, y, 0x444444)) *bottom = y;
    assert_true(*left > 0 && *right > *left + 400 && *top > 0 && *bottom > *top + 200);
}

/* the training curve's blue (0x1f77b4, lightened at anti-aliased edges) and the validation red */
static int bluish(const image *im, int x, int y) { const unsigned char *p = px(im, x, y); return p[2] > p[0] + 40; }
static int reddish(const image *im, int x, int y) { const unsigned char *p = px(im, x, y); return p[0] > p[2] + 40; }

/* loss of the 0-based step s: a V from 4.94 down to 2 (step 49) and up to 5 (step 99) */
static double loss_at(int s) { return 2 + 3 * fabs((s + 1) - 50.0) / 50.0; }

static void write_metrics(const char *path) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    for (int s = 0; s < 100; s++)
        fprintf(f, "{\"step\":%d,\"loss\":%.9g,\"lr\":0.001,\"grad_norm\":%.9g,\"tokens_per_s\":5,\"mfu\":0.1}\n",
                s, loss_at(s), loss_at(s));
    /* validation after 50 and 100 steps; a phases line whose "loss_s" is not a loss */
    fprintf(f, "{\"step\":50,\"val_loss\":3.0}\n{\"step\":99,\"step_seconds\":1,\"phases\":{\"loss_s\":9}}\n"
               "{\"step\":100,\"val_loss\":4.0}\n");
    fclose(f);
}

/* a PNG's curve of the values loss_at(step) over steps 0..100, on an axis 2..5 (the data's
 * range, on round ticks): each column of the curve holds its blue pixels where the value of
 * that step lies */
static void check_v_curve(const image *im) {
    int left, right, top, bottom;
    find_frame(im, &left, &right, &top, &bottom);
    for (int s = 4; s < 95; s += 5) { /* inside the frame */
        double x = left + (s + 1) / 100.0 * (right - left);
        double want = bottom - (loss_at(s) - 2) / 3.0 * (bottom - top);
        int col = (int)lround(x), nb = 0;
        double sum = 0, far = 0;
        for (int y = top + 1; y < bottom; y++)
            if (bluish(im, col, y)) {
                nb++;
                sum += y;
                if (fabs(y - want) > far) far = fabs(y - want);
            }
        if (nb == 0 || fabs(sum / nb - want) > 2 || far > 4)
            fail_msg("step %d: column %d has %d curve pixels around row %.1f (farthest %.1f away); "
                     "the value %.3f is at row %.1f", s, col, nb, nb ? sum / nb : -1.0, far,
                     loss_at(s), want);
    }
}

static void test_png(void **state) {
    (void)state;
    char metrics[512], png[512];
    write_metrics(lmf_test_path(metrics, sizeof metrics, "metrics.jsonl"));
    lmf_test_path(png, sizeof png, "loss.png");
    assert_int_equal(lmf_plot_losses(metrics, png, "a title"), LMF_OK);
    size_t n = 0;
    char *bytes = lmf_test_read_file(png, &n);
    assert_true(n > 8 && memcmp(bytes, "\x89PNG\r\n\x1a\n", 8) == 0);
    free(bytes);
    image im = decode(png);
    assert_int_equal(im.w, 800);
    assert_int_equal(im.h, 480);

    int left, right, top, bottom;
    find_frame(&im, &left, &right, &top, &bottom);

    check_v_curve(&im);
    /* the validation points: red dots at (50, 3.0) and (100, 4.0) */
    const double val[2][2] = {{50, 3.0}, {100, 4.0}};
    for (int k = 0; k < 2; k++) {
        int x = (int)lround(left + val[k][0] / 100.0 * (right - left));
        int y = (int)lround(bottom - (val[k][1] - 2) / 3.0 * (bottom - top));
        assert_true(reddish(&im, x, y));
        assert_false(reddish(&im, x, y + 12)); /* a dot, not a column of red */
    }
    free(im.rgb);
}

static void test_svg_and_errors(void **state) {
    (void)state;
    char metrics[512], svg[512], bad[512];
    write_metrics(lmf_test_path(metrics, sizeof metrics, "metrics.jsonl"));
    assert_int_equal(lmf_plot_losses(metrics, lmf_test_path(svg, sizeof svg, "loss.svg"), "a <title>"), LMF_OK);
    char *text = lmf_test_read_file(svg, NULL);
    assert_non_null(strstr(text, "<svg "));
    assert_non_null(strstr(text, "<polyline"));
    assert_non_null(strstr(text, "a &lt;title&gt;"));
    free(text);
    lmf_test_path(bad, sizeof bad, "no/such/dir/loss.png");
    assert_int_equal(lmf_plot_losses(metrics, bad, NULL), LMF_ERR_IO);
    assert_non_null(strstr(lmf_last_error(), "loss.png"));
}

/* pixels of exactly this color in column x between rows y0 and y1 */
static int count_rgb(const image *im, int x, int y0, int y1, unsigned rgb) {
    int n = 0;
    for (int y = y0; y <= y1; y++) n += is_rgb(im, x, y, rgb);
    return n;
}

/* the phase chart: one stacked bar per profiled step, each phase's height its share of the
 * axis (0..4 ms here), "other" on top; a later line of a step replaces the earlier ones */
static void test_phases(void **state) {
    (void)state;
    char metrics[512], png[512], svg[512];
    FILE *f = fopen(lmf_test_path(metrics, sizeof metrics, "phases.jsonl"), "w");
    assert_non_null(f);
    fprintf(f, "{\"step\":0,\"loss\":5}\n");
    for (int s = 9; s < 40; s += 10) {
        if (s == 29) /* a rollback to step 20 re-runs 29: the first line of step 29 is dropped */
            fprintf(f, "{\"step\":29,\"step_seconds\":0.1,\"phases\":{\"matmul_s\":0.1}}\n");
        fprintf(f, "{\"step\":%d,\"step_seconds\":0.004,\"phases\":{\"matmul_s\":0.002,"
                "\"optimizer_s\":0.001,\"other_s\":0.0005,\"dp_comm_s\":0.0005}}\n", s);
    }
    fclose(f);
    lmf_test_path(png, sizeof png, "phases.png");
    assert_int_equal(lmf_plot_phases(metrics, png, NULL), LMF_OK);
    image im = decode(png);
    int left, right, top, bottom;
    find_frame(&im, &left, &right, &top, &bottom);
    /* bars at steps 10, 20, 30, 40 (1-based) on an axis from 5 to 45 */
    double hpx = bottom - top;
    const struct { unsigned rgb; double ms; } part[4] = {
        {0x1f77b4, 2}, {0x17becf, 1}, {0xd62728, 0.5}, {0xbbbbbb, 0.5}};
    for (int b = 0; b < 4; b++) {
        int col = (int)lround(left + (10.0 * (b + 1) - 5) / 40 * (right - left));
        for (int k = 0; k < 4; k++) {
            int n = count_rgb(&im, col, top + 1, bottom - 1, part[k].rgb);
            double want = part[k].ms / 4 * hpx;
            if (fabs(n - want) > 2)
                fail_msg("bar %d: %d pixels of 0x%06x, %.1f expected", b, n, part[k].rgb, want);
        }
        /* matmul at the bottom, other on top */
        assert_true(is_rgb(&im, col, bottom - 3, 0x1f77b4));
        assert_true(is_rgb(&im, col, (int)lround(top + 3), 0xbbbbbb));
    }
    free(im.rgb);
    assert_int_equal(lmf_plot_phases(metrics, lmf_test_path(svg, sizeof svg, "phases.svg"), NULL), LMF_OK);
    char *text = lmf_test_read_file(svg, NULL);
    assert_non_null(strstr(text, ">optimizer<"));
    assert_non_null(strstr(text, ">dp_comm<"));
    free(text);
    /* a run without profiled steps: an error that says how to get them */
    char plain[512];
    f = fopen(lmf_test_path(plain, sizeof plain, "plain.jsonl"), "w");
    assert_non_null(f);
    fprintf(f, "{\"step\":0,\"loss\":5}\n");
    fclose(f);
    assert_int_equal(lmf_plot_phases(plain, svg, NULL), LMF_ERR_FORMAT);
    assert_non_null(strstr(lmf_last_error(), "--profile-every"));
}

/* the other curves: the gradient norm (the loss's values here) drawn as the loss is, without
 * validation dots; each rank's memory in its color; a chart of values the file lacks */
static void test_other_curves(void **state) {
    (void)state;
    char metrics[512], png[512];
    write_metrics(lmf_test_path(metrics, sizeof metrics, "metrics.jsonl"));
    FILE *f = fopen(metrics, "a");
    assert_non_null(f);
    /* rank 0: 100 MiB after 10 steps, 200 after 100; rank 1: 200, 300 */
    fprintf(f, "{\"step\":9,\"rss_bytes\":[%d,%d]}\n{\"step\":99,\"rss_bytes\":[%d,%d]}\n",
            100 << 20, 200 << 20, 200 << 20, 300 << 20);
    fclose(f);
    lmf_test_path(png, sizeof png, "grad_norm.png");
    assert_int_equal(lmf_plot_curves(metrics, png, LMF_PLOT_GRAD_NORM, NULL), LMF_OK);
    image im = decode(png);
    check_v_curve(&im);
    int left, right, top, bottom;
    find_frame(&im, &left, &right, &top, &bottom);
    for (int x = left + 1; x < right; x++)
        for (int y = top + 1; y < bottom; y++)
            if (reddish(&im, x, y)) fail_msg("a red pixel at (%d, %d): no validation here", x, y);
    free(im.rgb);

    lmf_test_path(png, sizeof png, "memory.png");
    assert_int_equal(lmf_plot_curves(metrics, png, LMF_PLOT_MEMORY, NULL), LMF_OK);
    im = decode(png);
    find_frame(&im, &left, &right, &top, &bottom);
    /* axis 100..300 MiB over steps 0..100: at step 55 rank 0 is at 150, rank 1 at 250 */
    int col = (int)lround(left + 0.55 * (right - left));
    int r0 = (int)lround(bottom - (150 - 100) / 200.0 * (bottom - top));
    int r1 = (int)lround(bottom - (250 - 100) / 200.0 * (bottom - top));
    int blue = 0, red = 0;
    for (int d = -2; d <= 2; d++) {
        blue |= bluish(&im, col, r0 + d);
        red |= reddish(&im, col, r1 + d);
    }
    assert_true(blue && red);
    assert_false(bluish(&im, col, r1) || reddish(&im, col, r0));
    free(im.rgb);

    /* a file without the values: an error naming what is missing */
    char plain[512];
    f = fopen(lmf_test_path(plain, sizeof plain, "plain.jsonl"), "w");
    assert_non_null(f);
    fprintf(f, "{\"step\":0,\"loss\":5}\n");
    fclose(f);
    assert_int_equal(lmf_plot_curves(plain, png, LMF_PLOT_MEMORY, NULL), LMF_ERR_FORMAT);
    assert_non_null(strstr(lmf_last_error(), "memory records"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_png),
        cmocka_unit_test(test_svg_and_errors),
        cmocka_unit_test(test_phases),
        cmocka_unit_test(test_other_curves),
    };
    return cmocka_run_group_tests(tests, lmf_test_tmpdir_setup, lmf_test_tmpdir_teardown);
}

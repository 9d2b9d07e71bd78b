/* The loss chart as PNG: decoded with libpng, its size, its frame found from its pixels, and
 * the curve's pixels where the values put them; the same chart as SVG; a file that cannot be
 * written. */
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
/* the training curve's blue (0x1f77b4, lightened at anti-aliased edges) and the validation red */
static int bluish(const image *im, int x, int y) { const unsigned char *p = px(im, x, y); return p[2] > p[0] + 40; }
static int reddish(const image *im, int x, int y) { const unsigned char *p = px(im, x, y); return p[0] > p[2] + 40; }

/* loss of the 0-based step s: a V from 4.94 down to 2 (step 49) and up to 5 (step 99) */
static double loss_at(int s) { return 2 + 3 * fabs((s + 1) - 50.0) / 50.0; }

static void write_metrics(const char *path) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    for (int s = 0; s < 100; s++)
        fprintf(f, "{\"step\":%d,\"loss\":%.9g,\"lr\":0.001,\"grad_norm\":1,\"tokens_per_s\":5,\"mfu\":0.1}\n",
                s, loss_at(s));
    /* validation after 50 and 100 steps; a phases line whose "loss_s" is not a loss */
    fprintf(f, "{\"step\":50,\"val_loss\":3.0}\n{\"step\":99,\"step_seconds\":1,\"phases\":{\"loss_s\":9}}\n"
               "{\"step\":100,\"val_loss\":4.0}\n");
    fclose(f);
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

    /* the plot's frame (0x444444): the first frame pixels seen going out from the middle */
    int cx = im.w / 2, cy = im.h / 2, left = -1, right = -1, top = -1, bottom = -1;
    for (int x = cx; x >= 0 && left < 0; x--) if (is_rgb(&im, x, cy, 0x444444)) left = x;
    for (int x = cx; x < im.w && right < 0; x++) if (is_rgb(&im, x, cy, 0x444444)) right = x;
    for (int y = cy; y >= 0 && top < 0; y--) if (is_rgb(&im, cx, y, 0x444444)) top = y;
    for (int y = cy; y < im.h && bottom < 0; y++) if (is_rgb(&im, cx, y, 0x444444)) bottom = y;
    assert_true(left > 0 && right > left + 400 && top > 0 && bottom > top + 200);

    /* the axes span steps 0..100 and losses 2..5 (the data's range, on round ticks): each
     * column of the curve holds its blue pixels where the loss of that step lies */
    for (int s = 4; s < 95; s += 5) { /* inside the frame */
        double x = left + (s + 1) / 100.0 * (right - left);
        double want = bottom - (loss_at(s) - 2) / 3.0 * (bottom - top);
        int col = (int)lround(x), nb = 0;
        double sum = 0, far = 0;
        for (int y = top + 1; y < bottom; y++)
            if (bluish(&im, col, y)) {
                nb++;
                sum += y;
                if (fabs(y - want) > far) far = fabs(y - want);
            }
        if (nb == 0 || fabs(sum / nb - want) > 2 || far > 4)
            fail_msg("step %d: column %d has %d curve pixels around row %.1f (farthest %.1f away); "
                     "the loss %.3f is at row %.1f", s, col, nb, nb ? sum / nb : -1.0, far,
                     loss_at(s), want);
    }
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

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_png),
        cmocka_unit_test(test_svg_and_errors),
    };
    return cmocka_run_group_tests(tests, lmf_test_tmpdir_setup, lmf_test_tmpdir_teardown);
}

/* Helpers shared by the C tests (see test_util.h). */
#define _XOPEN_SOURCE 700
#include "lib/test_util.h"

#include <errno.h>
#include <math.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "lmforge/fsutil.h"
#include "lmforge/kernels.h"
#include "lmforge/model.h"
#include "lmforge/rng.h"

static char g_dir[1024];

int lmf_test_tmpdir_setup(void **state) {
    (void)state;
    const char *base = getenv("TMPDIR");
    snprintf(g_dir, sizeof g_dir, "%s/lmf-test.XXXXXX", base && *base ? base : "/tmp");
    return mkdtemp(g_dir) ? 0 : -1;
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(p);
}

int lmf_test_remove_tree(const char *path) {
    return nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

int lmf_test_tmpdir_teardown(void **state) {
    (void)state;
    return g_dir[0] ? lmf_test_remove_tree(g_dir) : 0;
}

const char *lmf_test_dir(void) { return g_dir; }

char *lmf_test_path(char *buf, size_t cap, const char *fmt, ...) {
    int n = snprintf(buf, cap, "%s/", g_dir);
    va_list ap;
    va_start(ap, fmt);
    if (n >= 0 && (size_t)n < cap) vsnprintf(buf + n, cap - (size_t)n, fmt, ap);
    va_end(ap);
    return buf;
}

char *lmf_test_fresh_dir(char *buf, size_t cap, const char *fmt, ...) {
    if (!g_dir[0]) fail_msg("lmf_test_fresh_dir: no test directory (lmf_test_tmpdir_setup not run)");
    char name[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    if (n <= 0 || (size_t)n >= sizeof name) fail_msg("lmf_test_fresh_dir: bad name");
    n = snprintf(buf, cap, "%s/%s", g_dir, name);
    if (n < 0 || (size_t)n >= cap) fail_msg("lmf_test_fresh_dir: %s/%s is too long", g_dir, name);
    struct stat st;
    if (lstat(buf, &st) == 0 && lmf_test_remove_tree(buf) != 0) fail_msg("cannot remove %s", buf);
    if (mkdir(buf, 0777) != 0) fail_msg("cannot create directory %s: %s", buf, strerror(errno));
    return buf;
}

void lmf_test_write_bytes(const char *path, const void *data, size_t len) {
    FILE *f = fopen(path, "wb");
    if (!f) fail_msg("cannot create %s", path);
    if (len && fwrite(data, 1, len, f) != len) {
        fclose(f);
        fail_msg("cannot write %s", path);
    }
    if (fclose(f) != 0) fail_msg("cannot write %s", path);
}

void lmf_test_write_text(const char *path, const char *text) {
    lmf_test_write_bytes(path, text, strlen(text));
}

char *lmf_test_read_file(const char *path, size_t *len) {
    char *b = NULL;
    size_t n = 0;
    if (lmf_read_file(path, &b, &n, (size_t)1 << 30) != LMF_OK) fail_msg("%s", lmf_last_error());
    if (len) *len = n;
    return b;
}

static uint64_t g_rng;

void lmf_test_rng_seed(uint64_t seed) { g_rng = seed * 0x9E3779B97F4A7C15ull + 1; }

double lmf_test_uniform(void) {
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (double)(g_rng >> 11) / 9007199254740992.0;
}

float lmf_test_sym(float a) { return (float)((2.0 * lmf_test_uniform() - 1.0) * a); }

float *lmf_test_fbuf(size_t n, float a) {
    float *p = malloc((n ? n : 1) * sizeof *p);
    if (!p) fail_msg("out of memory");
    for (size_t i = 0; i < n; i++) p[i] = lmf_test_sym(a);
    return p;
}

float *lmf_test_fdup(const float *f, size_t n) {
    float *p = malloc((n ? n : 1) * sizeof *p);
    if (!p) fail_msg("out of memory");
    memcpy(p, f, n * sizeof *p);
    return p;
}

int *lmf_test_doc_starts(int B, int T, const int *eot, int n) {
    int32_t *ids = calloc((size_t)B * T, sizeof *ids);
    int *ds = malloc((size_t)B * T * sizeof *ds);
    if (!ids || !ds) fail_msg("out of memory");
    for (int b = 0; b < B; b++)
        for (int i = 0; i < n; i++)
            if (eot[i] + b < T) ids[(size_t)b * T + eot[i] + b] = 7;
    lmf_doc_starts(ds, ids, B, T, 7);
    free(ids);
    return ds;
}

void lmf_test_perturb_params(lmf_gpt *m, uint64_t seed, float amp) {
    const lmf_param_layout *l = lmf_gpt_layout(m);
    lmf_rng r;
    lmf_rng_seed(&r, seed);
    float *p = lmf_gpt_params(m);
    for (int i = 0; i < l->n_tensors; i++) {
        const lmf_tensor_info *t = &l->tensors[i];
        size_t real = (size_t)t->shape[0] * (size_t)(t->ndim > 1 ? t->shape[1] : 1);
        for (size_t j = 0; j < real; j++) p[t->offset + j] += amp * (lmf_rng_uniform(&r) - 0.5f);
    }
}

char *lmf_test_pseudo_text(size_t len, uint64_t seed) {
    static const char *const w[] = {"the", " cat", " sat", " on", " mat", ".", "\n", "  ", " 1984",
                                    "'s", " caf\xc3\xa9", " \xe6\x97\xa5", "\n\n", " a", "!!", " ok"};
    char *s = malloc(len + 1);
    if (!s) fail_msg("out of memory");
    size_t i = 0;
    uint64_t x = seed | 1;
    while (i < len) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        const char *p = w[x % 16];
        for (size_t k = 0; p[k] && i < len; k++) s[i++] = p[k];
    }
    s[len] = '\0';
    return s;
}

void lmf_test_close_rel(const char *what, const float *got, const float *want, size_t n,
                        double tol, double floor, int verbose) {
    double scale = floor, worst = 0.0;
    size_t wi = 0;
    for (size_t i = 0; i < n; i++) scale = fmax(scale, fabs((double)want[i]));
    for (size_t i = 0; i < n; i++) {
        double e = fabs((double)got[i] - (double)want[i]);
        if (!(e <= worst)) { /* also catches NaN */
            worst = isnan(e) ? INFINITY : e;
            wi = i;
        }
    }
    if (verbose) printf("  %-28s relative difference %.2e\n", what, worst / scale);
    if (!(worst <= tol * scale))
        fail_msg("%s: element %zu got %.9g, expected %.9g (difference %.3g > %.3g)", what, wi,
                 (double)got[wi], (double)want[wi], worst, tol * scale);
}

void lmf_test_ok(lmf_status s, const char *what) {
    if (s != LMF_OK) fail_msg("%s: %s (%s)", what, lmf_status_name(s), lmf_last_error());
}

lmf_status lmf_test_dp_step(lmf_ddp *d, lmf_optimizer *o, float lr, int t, float *grad_norm) {
    LMF_TRY(lmf_ddp_reduce_wait(d));
    return lmf_optimizer_step(o, lmf_ddp_owned_params(d), lmf_ddp_owned_grads(d), lr, t, grad_norm);
}

int lmf_test_shared_dir(char *dir, size_t cap, const char *sub, const char *const *files) {
    const char *d = getenv("LMF_SHARED_DIR");
    if (!d || (size_t)snprintf(dir, cap, "%s/%s", d, sub) >= cap) return 0;
    for (; *files; files++) {
        char p[8192];
        snprintf(p, sizeof p, "%s/%s", dir, *files);
        if (access(p, R_OK) != 0) return 0;
    }
    return 1;
}

/* Helpers shared by the C tests (see test_util.h). */
#define _XOPEN_SOURCE 700
#include "lib/test_util.h"

#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

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

void lmf_test_write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (!f) fail_msg("cannot create %s", path);
    fputs(text, f);
    if (fclose(f) != 0) fail_msg("cannot write %s", path);
}

lmf_status lmf_test_dp_step(lmf_ddp *d, lmf_optimizer *o, float lr, int t, float *grad_norm) {
    LMF_TRY(lmf_ddp_reduce_wait(d));
    return lmf_optimizer_step(o, lmf_ddp_owned_params(d), lmf_ddp_owned_grads(d), lr, t, grad_norm);
}

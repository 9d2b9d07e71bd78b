/* File-system helper tests: mkdir -p, atomic writes, bounded reads, path joins. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lmforge/fsutil.h"

#include "lib/test_util.h"

static int is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static void test_mkdir_p(void **state) {
    char p[512];
    lmf_test_path(p, sizeof p, "a/b//c/");
    assert_int_equal(lmf_mkdir_p(p), LMF_OK);
    lmf_test_path(p, sizeof p, "a/b/c");
    assert_true(is_dir(p));
    assert_int_equal(lmf_mkdir_p(p), LMF_OK); /* already there */
    lmf_test_path(p, sizeof p, "a/file");
    assert_int_equal(lmf_write_file_atomic(p, "x", 1), LMF_OK);
    assert_int_equal(lmf_mkdir_p(p), LMF_ERR_IO);
    assert_non_null(strstr(lmf_last_error(), p));
    lmf_test_path(p, sizeof p, "a/file/sub");
    assert_int_equal(lmf_mkdir_p(p), LMF_ERR_IO);
    assert_int_equal(lmf_mkdir_p(""), LMF_ERR_ARG);
}

static void test_write_read(void **state) {
    char p[512], tmp[600];
    lmf_test_path(p, sizeof p, "data.bin");
    snprintf(tmp, sizeof tmp, "%s.tmp", p);
    const char bytes[] = {'a', 0, 'b', '\n', (char)0xff};
    assert_int_equal(lmf_write_file_atomic(p, bytes, sizeof bytes), LMF_OK);
    assert_false(lmf_file_exists(tmp));
    char *buf = NULL;
    size_t len = 0;
    assert_int_equal(lmf_read_file(p, &buf, &len, 5), LMF_OK);
    assert_int_equal(len, 5);
    assert_memory_equal(buf, bytes, 5);
    assert_int_equal(buf[5], '\0');
    free(buf);
    /* over the limit */
    buf = (char *)0x1;
    assert_int_equal(lmf_read_file(p, &buf, &len, 4), LMF_ERR_IO);
    assert_null(buf);
    assert_non_null(strstr(lmf_last_error(), p));
    /* replace with something shorter, then empty */
    assert_int_equal(lmf_write_file_atomic(p, "hi", 2), LMF_OK);
    assert_int_equal(lmf_read_file(p, &buf, &len, 100), LMF_OK);
    assert_int_equal(len, 2);
    assert_string_equal(buf, "hi");
    free(buf);
    assert_int_equal(lmf_write_file_atomic(p, NULL, 0), LMF_OK);
    assert_int_equal(lmf_read_file(p, &buf, &len, 100), LMF_OK);
    assert_int_equal(len, 0);
    assert_string_equal(buf, "");
    free(buf);
}

static void test_errors(void **state) {
    const char *dir = lmf_test_dir();
    char p[512];
    char *buf = NULL;
    size_t len = 0;
    lmf_test_path(p, sizeof p, "missing.txt");
    assert_false(lmf_file_exists(p));
    assert_int_equal(lmf_read_file(p, &buf, &len, 100), LMF_ERR_IO);
    assert_non_null(strstr(lmf_last_error(), p));
    assert_int_equal(lmf_read_file(dir, &buf, &len, 100), LMF_ERR_IO); /* a directory */
    lmf_test_path(p, sizeof p, "no/such/dir/f.txt");
    assert_int_equal(lmf_write_file_atomic(p, "x", 1), LMF_ERR_IO);
    assert_non_null(strstr(lmf_last_error(), p));
    assert_false(lmf_file_exists(p));
    assert_true(lmf_file_exists(dir));
}

static void test_path_join(void **state) {
    char b[16];
    assert_int_equal(lmf_path_join(b, sizeof b, "a", "b"), LMF_OK);
    assert_string_equal(b, "a/b");
    assert_int_equal(lmf_path_join(b, sizeof b, "a/", "b.txt"), LMF_OK);
    assert_string_equal(b, "a/b.txt");
    assert_int_equal(lmf_path_join(b, sizeof b, "", "b"), LMF_OK);
    assert_string_equal(b, "b");
    assert_int_equal(lmf_path_join(b, sizeof b, "run", "/abs"), LMF_OK);
    assert_string_equal(b, "/abs");
    assert_int_equal(lmf_path_join(b, sizeof b, "0123456", "89abcde"), LMF_OK); /* 15 chars */
    assert_string_equal(b, "0123456/89abcde");
    assert_int_equal(lmf_path_join(b, sizeof b, "0123456", "89abcdef"), LMF_ERR_ARG);
    assert_string_equal(b, "");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mkdir_p),
        cmocka_unit_test(test_write_read),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_path_join),
    };
    return cmocka_run_group_tests(tests, lmf_test_tmpdir_setup, lmf_test_tmpdir_teardown);
}

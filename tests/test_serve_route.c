/* Run server request targets: percent-decoding, which paths are accepted and what they name,
 * run names from directories. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "lmforge/serve.h"

/* decode like the server, then parse */
static lmf_serve_request parse(const char *target, const char *since) {
    char buf[2048];
    snprintf(buf, sizeof buf, "%s", target);
    size_t n = lmf_serve_unescape(buf);
    lmf_serve_request r;
    lmf_serve_parse(buf, n, since, &r);
    return r;
}

static void test_unescape(void **state) {
    (void)state;
    char a[] = "/a%2Fb%2e%zz%4";
    assert_int_equal(lmf_serve_unescape(a), 10);
    assert_string_equal(a, "/a/b.%zz%4");
    char b[] = "x%00y+";
    assert_int_equal(lmf_serve_unescape(b), 4);
    assert_memory_equal(b, "x\001y+", 5);
}

static void test_routes(void **state) {
    (void)state;
    lmf_serve_request r = parse("/", NULL);
    assert_int_equal(r.target, LMF_SERVE_ASSET);
    assert_string_equal(r.asset, "index.html");
    r = parse("/app.js", NULL);
    assert_int_equal(r.target, LMF_SERVE_ASSET);
    assert_string_equal(r.asset, "app.js");
    assert_int_equal(parse("/metrics", NULL).target, LMF_SERVE_PROMETHEUS);
    assert_int_equal(parse("/api/runs", NULL).target, LMF_SERVE_API_RUNS);
    assert_int_equal(parse("/api/runs/", NULL).target, LMF_SERVE_API_RUNS);
    r = parse("/api/runs/my-run_1.b/metrics", "42");
    assert_int_equal(r.target, LMF_SERVE_API_METRICS);
    assert_string_equal(r.run, "my-run_1.b");
    assert_int_equal(r.since, 42);
    assert_int_equal(parse("/api/runs/a/config", NULL).target, LMF_SERVE_API_CONFIG);
    assert_int_equal(parse("/api/runs/a/checkpoints", NULL).target, LMF_SERVE_API_CHECKPOINTS);
    assert_int_equal(parse("/api/runs/a/events", NULL).target, LMF_SERVE_API_EVENTS);
    assert_string_equal(parse("/api/runs/a/events", NULL).run, "a");
    assert_int_equal(parse("/api/runs/a/other", NULL).target, LMF_SERVE_NOT_FOUND);
    assert_int_equal(parse("/api/x", NULL).target, LMF_SERVE_NOT_FOUND);
    assert_int_equal(parse("/api", NULL).target, LMF_SERVE_NOT_FOUND);
}

static void test_rejected(void **state) {
    (void)state;
    static const char *const bad[] = {
        "", "api/runs", "//", "/..", "/.", "/api/runs/..", "/api/runs/../config",
        "/api/runs/%2e%2e/config", "/api/runs/%2E%2e%2Fx/config", "/api/runs/a%5cb/config",
        "/api/runs/a%00/config", "/api//runs", "/api/runs/a b/config", "/api/runs/a%0a/config",
        "/%2e%2e%2fetc%2fpasswd", "/a/b/c/d/e/f/g/h/i/j",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        lmf_serve_request r = parse(bad[i], NULL);
        if (r.target != LMF_SERVE_BAD_REQUEST) fail_msg("accepted '%s' as %d", bad[i], r.target);
    }
    static const char *const since[] = {"", "-1", "1e3", "12a", "0x10", "1234567890", " 1"};
    for (size_t i = 0; i < sizeof since / sizeof since[0]; i++) {
        lmf_serve_request r = parse("/api/runs/a/metrics", since[i]);
        if (r.target != LMF_SERVE_BAD_REQUEST) fail_msg("accepted since='%s'", since[i]);
    }
    char nul[] = "/api/runs/a\0b/config";
    lmf_serve_request r;
    lmf_serve_parse(nul, sizeof nul - 1, NULL, &r);
    assert_int_equal(r.target, LMF_SERVE_BAD_REQUEST);
    char longname[100] = "/api/runs/";
    memset(longname + 10, 'x', 70);
    assert_int_equal(parse(longname, NULL).target, LMF_SERVE_BAD_REQUEST);
}

static void test_run_names(void **state) {
    (void)state;
    char b[LMF_SERVE_NAME_MAX];
    lmf_serve_run_name("runs/small", b, sizeof b);
    assert_string_equal(b, "small");
    lmf_serve_run_name("/x/y/run 2 (lr=3e-4)/", b, sizeof b);
    assert_string_equal(b, "run_2__lr_3e-4_");
    lmf_serve_run_name("..", b, sizeof b);
    assert_string_equal(b, "run");
    lmf_serve_run_name("/", b, sizeof b);
    assert_string_equal(b, "run");
    /* every name made is one the routes accept */
    lmf_serve_run_name("/tmp/üñí/..%2f", b, sizeof b);
    char path[200];
    snprintf(path, sizeof path, "/api/runs/%s/config", b);
    lmf_serve_request r;
    lmf_serve_parse(path, strlen(path), NULL, &r);
    assert_int_equal(r.target, LMF_SERVE_API_CONFIG);
    assert_string_equal(r.run, b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unescape),
        cmocka_unit_test(test_routes),
        cmocka_unit_test(test_rejected),
        cmocka_unit_test(test_run_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

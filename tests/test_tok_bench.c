/* Tests: the tokenizer benchmark functions (lmf_tok_bench, lmf_tok_bench_train). */
/* On a small trained vocabulary and two text files: the figures are consistent with a direct
 * encode (bytes, ids, exactness, round trip, positive times), training runs on files and on
 * repeated text, and bad arguments fail with a message. Public API only. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "lmforge/tokenizer.h"
#include "lib/test_util.h"

static char g_tok[1200], g_a[1200], g_b[1200];
static char *g_text;
static size_t g_len;

/* a 400-id vocabulary in DIR/tok; the text: 150 KB in a.txt, 50 KB in b.txt (cut mid-line) */
static int setup(void **state) {
    (void)state;
    if (lmf_test_tmpdir_setup(state) != 0) return -1;
    lmf_test_path(g_tok, sizeof g_tok, "tok");
    lmf_test_path(g_a, sizeof g_a, "a.txt");
    lmf_test_path(g_b, sizeof g_b, "b.txt");
    g_len = 200000;
    g_text = lmf_test_pseudo_text(g_len, 7);
    lmf_tok_train_opts to = {.vocab_size = 400, .threads = 1};
    lmf_tokenizer *t = NULL;
    if (lmf_tok_train_buffer(g_text, g_len, &to, &t) != LMF_OK || lmf_tok_save(t, g_tok) != LMF_OK)
        return -1;
    lmf_tok_free(t);
    lmf_test_write_bytes(g_a, g_text, 150000);
    lmf_test_write_bytes(g_b, g_text + 150000, g_len - 150000);
    return 0;
}

static int teardown(void **state) {
    free(g_text);
    return lmf_test_tmpdir_teardown(state);
}

static void test_bench_figures(void **state) {
    (void)state;
    const char *in[] = {g_a, g_b};
    lmf_tok_bench_opts o = {g_tok, in, 2, 2, 2};
    lmf_tok_bench_result r;
    if (lmf_tok_bench(&o, &r) != LMF_OK) fail_msg("%s", lmf_last_error());
    /* the ids of the joined text, encoded in one call */
    lmf_tokenizer *t = NULL;
    assert_int_equal(lmf_tok_load(g_tok, &t), LMF_OK);
    uint32_t *ids = malloc(g_len * sizeof *ids);
    size_t n = 0;
    assert_int_equal(lmf_tok_encode(t, g_text, g_len, 0, ids, g_len, &n), LMF_OK);
    assert_int_equal(r.vocab_size, lmf_tok_vocab_size(t));
    assert_int_equal(r.vocab_size, 400);
    lmf_tok_free(t);
    free(ids);
    assert_int_equal(r.bytes, g_len);
    assert_int_equal(r.n_ids, n);
    assert_int_equal(r.threads, 2);
    assert_int_equal(r.exact, 1);
    assert_int_equal(r.roundtrip, 1);
    double times[] = {r.cold_s, r.cold_cpu_s, r.warm_s, r.warm_cpu_s, r.parallel_s, r.decode_s};
    for (int k = 0; k < 6; k++) {
        assert_true(times[k] >= 0.0);
        assert_true(times[k] < 60.0);
    }
    assert_true(r.cold_s > 0.0 && r.warm_s > 0.0 && r.parallel_s > 0.0);
    /* threads 0: all cores */
    o.threads = 0;
    o.repeat = 1;
    o.n_inputs = 1;
    assert_int_equal(lmf_tok_bench(&o, &r), LMF_OK);
    assert_true(r.threads >= 1);
    assert_int_equal(r.bytes, 150000);
    assert_int_equal(r.exact && r.roundtrip, 1);
}

static void test_bench_errors(void **state) {
    (void)state;
    const char *in[] = {g_a};
    lmf_tok_bench_opts o = {g_tok, in, 1, 1, 0};
    lmf_tok_bench_result r;
    assert_int_equal(lmf_tok_bench(&o, &r), LMF_ERR_ARG); /* repeat 0 */
    assert_non_null(strstr(lmf_last_error(), "repeat"));
    o.repeat = 1;
    o.n_inputs = 0;
    assert_int_equal(lmf_tok_bench(&o, &r), LMF_ERR_ARG);
    char missing[320], empty[320];
    lmf_test_path(missing, sizeof missing, "missing.txt");
    const char *in2[] = {missing};
    o.inputs = in2;
    o.n_inputs = 1;
    assert_int_equal(lmf_tok_bench(&o, &r), LMF_ERR_IO);
    assert_non_null(strstr(lmf_last_error(), "missing.txt: cannot open"));
    lmf_test_path(empty, sizeof empty, "empty.txt");
    lmf_test_write_bytes(empty, "", 0);
    in2[0] = empty;
    assert_int_equal(lmf_tok_bench(&o, &r), LMF_ERR_ARG);
    assert_non_null(strstr(lmf_last_error(), "no text"));
    o.inputs = in;
    o.tokenizer = missing;
    assert_int_equal(lmf_tok_bench(&o, &r), LMF_ERR_IO);
}

static void test_bench_train(void **state) {
    (void)state;
    const char *in[] = {g_a, g_b};
    lmf_tok_bench_train_opts o = {in, 2, LMF_TOK_BENCH_FILES, 0, 300, 1};
    lmf_tok_bench_train_result r;
    if (lmf_tok_bench_train(&o, &r) != LMF_OK) fail_msg("%s", lmf_last_error());
    assert_true(r.vocab_size > 256 && r.vocab_size <= 300);
    assert_int_equal(r.input_bytes, g_len);
    assert_int_equal(r.bytes, g_len);
    assert_true(r.seconds >= 0.0);
    /* the text repeated: 450 KB from 200 KB */
    o.text = LMF_TOK_BENCH_REPEATED;
    o.bytes = 450000;
    if (lmf_tok_bench_train(&o, &r) != LMF_OK) fail_msg("%s", lmf_last_error());
    assert_int_equal(r.bytes, 450000);
    assert_int_equal(r.input_bytes, g_len);
    assert_true(r.vocab_size > 256 && r.vocab_size <= 300);
    /* errors: no text to repeat, a vocabulary too small, no inputs */
    o.bytes = 0;
    assert_int_equal(lmf_tok_bench_train(&o, &r), LMF_ERR_ARG);
    o.bytes = 1000;
    o.vocab_size = 10;
    assert_int_equal(lmf_tok_bench_train(&o, &r), LMF_ERR_ARG);
    o.vocab_size = 300;
    o.text = LMF_TOK_BENCH_FILES;
    o.n_inputs = 0;
    assert_int_equal(lmf_tok_bench_train(&o, &r), LMF_ERR_ARG);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bench_figures),
        cmocka_unit_test(test_bench_errors),
        cmocka_unit_test(test_bench_train),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

/* Tests: GPT-2's tokenizer against the shared reference vectors, specials, threads. */
/* GPT-2's tokenizer, exactly: the shared reference vectors ($LMF_SHARED_DIR/gpt2, skipped when
 * absent) through every file format lmforge reads and writes, special tokens, buffer sizes,
 * and encoding from several threads at once. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <omp.h>

#include "lmforge/tokenizer.h"

#include "lib/test_util.h"
#include "lib/tok_vectors.h"

static char g_gpt2[4096];

/* $LMF_SHARED_DIR/gpt2 when it holds GPT-2's files; otherwise the test is skipped */
static int have_gpt2(void) {
    static const char *const files[] = {"vectors.jsonl", "encoder.json", NULL};
    return lmf_test_shared_dir(g_gpt2, sizeof g_gpt2, "gpt2", files);
}

#define NEED_GPT2() do { \
        if (!have_gpt2()) { \
            fprintf(stderr, "SKIP: GPT-2 reference files not found ($LMF_SHARED_DIR/gpt2)\n"); \
            skip(); \
        } \
    } while (0)

static lmf_tokenizer *load(const char *path) {
    lmf_tokenizer *t = NULL;
    lmf_status st = lmf_tok_load(path, &t);
    if (st != LMF_OK) fail_msg("loading %s: %s", path, lmf_last_error());
    return t;
}

/* every vector: ids match exactly, and decoding gives the text back */
static void check_vectors(const lmf_tokenizer *t) {
    char p[4200];
    snprintf(p, sizeof p, "%s/vectors.jsonl", g_gpt2);
    int n = lmf_test_tok_vectors(t, p);
    assert_int_equal(n, 72);
}

static void test_vectors_gpt2_pair(void **state) {
    (void)state;
    NEED_GPT2();
    lmf_tokenizer *t = load(g_gpt2);
    assert_int_equal(lmf_tok_vocab_size(t), 50257);
    assert_int_equal(lmf_tok_eot(t), 50256);
    assert_int_equal(lmf_tok_bos(t), 50256); /* no <|begin_of_text|>: bos is the end-of-text id */
    check_vectors(t);
    lmf_tok_free(t);
}

/* GPT-2's vocabulary written by lmforge and read back, through both formats */
static void test_vectors_after_save(void **state) {
    (void)state;
    NEED_GPT2();
    lmf_tokenizer *t = load(g_gpt2);
    char dir[4096];
    lmf_test_fresh_dir(dir, sizeof dir, "saved");
    assert_int_equal(lmf_tok_save(t, dir), LMF_OK);
    lmf_tok_free(t);
    char p[4200];
    snprintf(p, sizeof p, "%s/tokenizer.json", dir);
    t = load(p);
    assert_int_equal(lmf_tok_vocab_size(t), 50257);
    assert_int_equal(lmf_tok_eot(t), 50256);
    check_vectors(t);
    lmf_tok_free(t);
    snprintf(p, sizeof p, "%s/encoder.json", dir);
    t = load(p);
    check_vectors(t);
    lmf_tok_free(t);
}

static void expect_ids(const lmf_tokenizer *t, const char *text, int allow, const uint32_t *want,
                       size_t n_want) {
    uint32_t ids[64];
    size_t n;
    assert_int_equal(lmf_tok_encode(t, text, strlen(text), allow, ids, 64, &n), LMF_OK);
    assert_int_equal(n, n_want);
    for (size_t i = 0; i < n; i++) assert_int_equal(ids[i], want[i]);
}

static void test_special_tokens(void **state) {
    (void)state;
    NEED_GPT2();
    lmf_tokenizer *t = load(g_gpt2);
    /* plain text unless allowed */
    static const uint32_t plain[] = {27, 91, 437, 1659, 5239, 91, 29};
    expect_ids(t, "<|endoftext|>", 0, plain, 7);
    static const uint32_t eot[] = {50256};
    expect_ids(t, "<|endoftext|>", 1, eot, 1);
    static const uint32_t mixed[] = {15496, 50256, 995, 50256};
    expect_ids(t, "Hello<|endoftext|> world<|endoftext|>", 1, mixed, 4);
    static const uint32_t mixed_plain[] = {64, 27, 91, 437, 1659, 5239, 91, 29, 65};
    expect_ids(t, "a<|endoftext|>b", 0, mixed_plain, 9);
    size_t len;
    const char *b = lmf_tok_token_bytes(t, 50256, &len);
    assert_non_null(b);
    assert_int_equal(len, 13);
    assert_memory_equal(b, "<|endoftext|>", 13);
    assert_null(lmf_tok_token_bytes(t, 50257, &len));
    lmf_tok_free(t);
}

static void test_buffers_and_errors(void **state) {
    (void)state;
    NEED_GPT2();
    lmf_tokenizer *t = load(g_gpt2);
    uint32_t ids[4];
    size_t n;
    /* "x\n\n\n\ny" -> x, "\n\n", "\n", "\n", y */
    assert_int_equal(lmf_tok_encode(t, "x\n\n\n\ny", 6, 0, ids, 4, &n), LMF_ERR_ARG);
    assert_int_equal(n, 5);
    assert_true(strstr(lmf_last_error(), "5") != NULL);
    uint32_t all[5];
    assert_int_equal(lmf_tok_encode(t, "x\n\n\n\ny", 6, 0, all, 5, &n), LMF_OK);
    static const uint32_t want[] = {87, 628, 198, 198, 88};
    assert_memory_equal(all, want, sizeof want);
    char out[4];
    assert_int_equal(lmf_tok_decode(t, all, 5, out, 4, &n), LMF_ERR_ARG);
    assert_int_equal(n, 6);
    uint32_t bad[2] = {87, 50257};
    char big[64];
    assert_int_equal(lmf_tok_decode(t, bad, 2, big, 64, &n), LMF_ERR_ARG);
    assert_true(strstr(lmf_last_error(), "50257") != NULL);
    assert_int_equal(lmf_tok_encode(t, "", 0, 0, ids, 4, &n), LMF_OK);
    assert_int_equal(n, 0);
    /* invalid UTF-8: each byte is a byte token, and it decodes back */
    static const uint32_t inv[] = {187, 186, 12515, 6184};
    expect_ids(t, "\xff\xfe invalid \xc3", 0, inv, 4);
    lmf_tok_free(t);
}

/* The same text encoded by many threads at once, each call in pieces, equals one call. */
static void test_threads(void **state) {
    (void)state;
    NEED_GPT2();
    lmf_tokenizer *t = load(g_gpt2);
    size_t len = 0;
    char *text = malloc(1 << 20);
    assert_non_null(text);
    uint64_t x = 88172645463325252ull;
    static const char *const words[] = {"the", " quick", " brown", "fox", " jumps", "\n", "  ",
                                        " over", " 1234", ",", " lazy", "'s", " d\xc3\xa9j\xc3\xa0",
                                        "\xe6\x97\xa5\xe6\x9c\xac", " dog", ".", "\xf0\x9f\xa4\x96"};
    while (len < (1 << 20) - 32) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        const char *w = words[x % (sizeof words / sizeof words[0])];
        memcpy(text + len, w, strlen(w));
        len += strlen(w);
    }
    uint32_t *ref = malloc(len * sizeof *ref);
    size_t n_ref;
    assert_int_equal(lmf_tok_encode(t, text, len, 0, ref, len, &n_ref), LMF_OK);
    int bad = 0;
#pragma omp parallel num_threads(4) reduction(+ : bad)
    {
        uint32_t *ids = malloc(len * sizeof *ids);
        size_t have = 0, pos = 0;
        while (pos < len) {
            size_t cut = lmf_tok_split_point(text, len, pos + 1000 + 37 * (size_t)omp_get_thread_num());
            size_t n;
            if (lmf_tok_encode(t, text + pos, cut - pos, 0, ids + have, len - have, &n) != LMF_OK) bad++;
            have += n;
            pos = cut;
        }
        if (have != n_ref || memcmp(ids, ref, have * sizeof *ids) != 0) bad++;
        free(ids);
    }
    assert_int_equal(bad, 0);
    free(ref);
    free(text);
    lmf_tok_free(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors_gpt2_pair),  cmocka_unit_test(test_vectors_after_save),
        cmocka_unit_test(test_special_tokens),     cmocka_unit_test(test_buffers_and_errors),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, lmf_test_tmpdir_setup, lmf_test_tmpdir_teardown);
}

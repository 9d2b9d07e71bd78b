/* Tests: BPE training results, determinism, special tokens, errors. */
/* BPE training: merges of a small corpus worked out by hand, re-encoding the training corpus
 * with the written files gives the trainer's ids, training is deterministic (also across
 * thread counts), special tokens, and argument errors. */
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
#include "tokenizer/tok_internal.h"

#include "lib/test_util.h"

static lmf_tokenizer *train(const char *text, size_t len, int vocab, const char *const *specials,
                            int threads) {
    lmf_tok_train_opts o = {.vocab_size = vocab, .specials = specials, .threads = threads};
    lmf_tokenizer *t = NULL;
    if (lmf_tok_train_buffer(text, len, &o, &t) != LMF_OK) fail_msg("training: %s", lmf_last_error());
    return t;
}

static void expect_token(const lmf_tokenizer *t, uint32_t id, const char *bytes) {
    size_t n;
    const char *b = lmf_tok_token_bytes(t, id, &n);
    if (!b) fail_msg("id %u: no token, expected '%s'", id, bytes);
    if (n != strlen(bytes) || memcmp(b, bytes, n) != 0)
        fail_msg("id %u is '%.*s', expected '%s'", id, (int)n, b, bytes);
}

/* "aaabdaaabac" is one pre-token. Pair counts (overlapping occurrences count): aa 4, ab 2, then
 * 1 each. Merges, with ties going to the smaller (left bytes, right bytes):
 *   1 a+a -> aa        word: aa a b d aa a b a c    (aa,a)=2 (a,b)=2: "a" < "aa"
 *   2 a+b -> ab        word: aa ab d aa ab a c      (aa,ab)=2
 *   3 aa+ab -> aaab    word: aaab d aaab a c        all 1: left "a" < "aaab" < "d"
 *   4 a+c -> ac        word: aaab d aaab ac         (aaab,ac) < (aaab,d): "ac" < "d"
 *   5 aaab+ac -> aaabac, 6 aaab+d -> aaabd, 7 aaabd+aaabac -> the word; then nothing is left. */
static void test_hand_example(void **state) {
    (void)state;
    lmf_tokenizer *t = train("aaabdaaabac", 11, 300, NULL, 1);
    assert_int_equal(lmf_tok_vocab_size(t), 256 + 7 + 1);
    for (int b = 0; b < 256; b++) {
        char c[2] = {(char)b, 0};
        size_t n;
        const char *s = lmf_tok_token_bytes(t, (uint32_t)b, &n);
        assert_int_equal(n, 1);
        assert_int_equal((uint8_t)s[0], (uint8_t)c[0]);
    }
    static const char *const want[] = {"aa", "ab", "aaab", "ac", "aaabac", "aaabd", "aaabdaaabac"};
    for (int k = 0; k < 7; k++) expect_token(t, 256u + (uint32_t)k, want[k]);
    expect_token(t, 263, "<|endoftext|>");
    assert_int_equal(lmf_tok_eot(t), 263);
    assert_int_equal(t->n_merges, 7);
    static const uint32_t left[] = {'a', 'a', 256, 'a', 258, 258, 261};
    static const uint32_t right[] = {'a', 'b', 257, 'c', 259, 'd', 260};
    for (int k = 0; k < 7; k++) {
        assert_int_equal(t->merge_left[k], left[k]);
        assert_int_equal(t->merge_right[k], right[k]);
    }
    uint32_t ids[16];
    size_t n;
    assert_int_equal(lmf_tok_encode(t, "aaabdaaabac", 11, 0, ids, 16, &n), LMF_OK);
    assert_int_equal(n, 1);
    assert_int_equal(ids[0], 262);
    /* "aaaa": a+a twice, left to right */
    assert_int_equal(lmf_tok_encode(t, "aaaa", 4, 0, ids, 16, &n), LMF_OK);
    assert_int_equal(n, 2);
    assert_int_equal(ids[0], 256);
    assert_int_equal(ids[1], 256);
    lmf_tok_free(t);
}

/* deterministic pseudo-text with many short words over a small alphabet (so that different
 * merge paths reach the same bytes), some Unicode, digits and whitespace runs */
static char *make_corpus(size_t len, uint64_t seed) {
    char *s = malloc(len + 1);
    static const char *const extra[] = {" ", "  ", "\n", "\n\n", "'s", "'t", ", ", ". ", "123", "4",
                                        "\xc3\xa9", "\xe6\x97\xa5", "\xf0\x9f\x98\x80", "\xff", "\t"};
    size_t i = 0;
    uint64_t x = seed * 2654435761u + 1;
    while (i < len) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        if (x % 3 == 0) {
            const char *e = extra[(x >> 8) % (sizeof extra / sizeof extra[0])];
            for (size_t k = 0; e[k] && i < len; k++) s[i++] = e[k];
        } else {
            size_t wl = 1 + (x >> 12) % 6;
            for (size_t k = 0; k < wl && i < len; k++) s[i++] = "abcabd"[(x >> (20 + 3 * k)) % 6];
            if (i < len) s[i++] = ' ';
        }
    }
    s[len] = '\0';
    return s;
}

/* every distinct word of the corpus encodes to the trainer's own final ids */
static void check_words(const lmf_tokenizer *t, const lmf_tok_train_trace *tr) {
    uint32_t *ids = malloc(70000 * sizeof *ids);
    size_t bad = 0;
    for (size_t w = 0; w < tr->n_words; w++) {
        size_t wl = tr->word_off[w + 1] - tr->word_off[w], n;
        assert_true(wl < 70000);
        assert_int_equal(lmf_tok_encode(t, tr->word_bytes + tr->word_off[w], wl, 0, ids, 70000, &n), LMF_OK);
        size_t want = tr->ids_off[w + 1] - tr->ids_off[w];
        if (n != want || memcmp(ids, tr->ids + tr->ids_off[w], n * sizeof *ids) != 0) bad++;
    }
    free(ids);
    if (bad) fail_msg("%zu of %zu words encode differently from training", bad, tr->n_words);
}

static void test_reencode_matches_training(void **state) {
    (void)state;
    size_t len = 300000;
    char *text = make_corpus(len, 7);
    lmf_tok_train_opts o = {.vocab_size = 3000, .threads = 2};
    lmf_tokenizer *t = NULL;
    lmf_tok_train_trace tr;
    assert_int_equal(lmf_tok_train_buffer_traced(text, len, &o, &t, &tr), LMF_OK);
    assert_true(tr.n_words > 1000);
    /* every merge made a new token: ids = 256 bytes + merges + 1 special */
    assert_int_equal(lmf_tok_vocab_size(t), 256 + (int)t->n_merges + 1);
    assert_int_equal(lmf_tok_vocab_size(t), 3000);
    check_words(t, &tr);
    /* the whole corpus, in one call, is the words' ids in order */
    uint32_t *ids = malloc(len * sizeof *ids);
    size_t n;
    assert_int_equal(lmf_tok_encode(t, text, len, 0, ids, len, &n), LMF_OK);
    char *dec = malloc(len);
    size_t nd;
    assert_int_equal(lmf_tok_decode(t, ids, n, dec, len, &nd), LMF_OK);
    assert_int_equal(nd, len);
    assert_memory_equal(dec, text, len);
    /* the written files give the same ids */
    char dir[512];
    lmf_test_fresh_dir(dir, sizeof dir, "reencode");
    assert_int_equal(lmf_tok_save(t, dir), LMF_OK);
    const char *names[] = {"tokenizer.json", "encoder.json"};
    for (int k = 0; k < 2; k++) {
        char p[600];
        snprintf(p, sizeof p, "%s/%s", dir, names[k]);
        lmf_tokenizer *u = NULL;
        if (lmf_tok_load(p, &u) != LMF_OK) fail_msg("%s", lmf_last_error());
        assert_int_equal(lmf_tok_vocab_size(u), 3000);
        assert_int_equal(lmf_tok_eot(u), 2999);
        check_words(u, &tr);
        uint32_t *ids2 = malloc(len * sizeof *ids2);
        size_t n2;
        assert_int_equal(lmf_tok_encode(u, text, len, 0, ids2, len, &n2), LMF_OK);
        assert_int_equal(n2, n);
        assert_memory_equal(ids2, ids, n * sizeof *ids);
        free(ids2);
        lmf_tok_free(u);
    }
    free(dec);
    free(ids);
    lmf_tok_train_trace_free(&tr);
    lmf_tok_free(t);
    free(text);
}

/* two trainings (1 and 2 threads) write byte-identical files */
static void test_deterministic(void **state) {
    (void)state;
    size_t len = 200000;
    char *text = make_corpus(len, 11);
    char d1[512], d2[512];
    lmf_test_fresh_dir(d1, sizeof d1, "det1");
    lmf_test_fresh_dir(d2, sizeof d2, "det2");
    lmf_tokenizer *a = train(text, len, 1500, NULL, 1), *b = train(text, len, 1500, NULL, 2);
    assert_int_equal(lmf_tok_save(a, d1), LMF_OK);
    assert_int_equal(lmf_tok_save(b, d2), LMF_OK);
    const char *names[] = {"encoder.json", "vocab.bpe", "tokenizer.json"};
    for (int k = 0; k < 3; k++) {
        char p1[600], p2[600];
        snprintf(p1, sizeof p1, "%s/%s", d1, names[k]);
        snprintf(p2, sizeof p2, "%s/%s", d2, names[k]);
        size_t n1, n2;
        char *f1 = lmf_test_read_file(p1, &n1), *f2 = lmf_test_read_file(p2, &n2);
        assert_true(n1 > 100);
        assert_int_equal(n1, n2);
        assert_memory_equal(f1, f2, n1);
        free(f1);
        free(f2);
    }
    lmf_tok_free(a);
    lmf_tok_free(b);
    free(text);
}

static void test_specials(void **state) {
    (void)state;
    static const char *const sp[] = {"<|bos|>", "<|eos|>", NULL};
    lmf_tokenizer *t = train("hello hello world", 17, 262, sp, 1);
    assert_int_equal(lmf_tok_vocab_size(t), 262);
    expect_token(t, 260, "<|bos|>");
    expect_token(t, 261, "<|eos|>");
    assert_int_equal(lmf_tok_eot(t), 260); /* no <|endoftext|>: the first special token */
    uint32_t ids[32];
    size_t n;
    assert_int_equal(lmf_tok_encode(t, "<|eos|>x<|bos|>", 15, 1, ids, 32, &n), LMF_OK);
    assert_int_equal(n, 3);
    assert_int_equal(ids[0], 261);
    assert_int_equal(ids[1], 'x');
    assert_int_equal(ids[2], 260);
    lmf_tok_free(t);
    static const char *const none[] = {NULL};
    t = train("hello hello world", 17, 258, none, 1);
    assert_int_equal(lmf_tok_vocab_size(t), 258);
    assert_int_equal(lmf_tok_eot(t), -1);
    lmf_tok_free(t);
}

static void test_errors(void **state) {
    (void)state;
    lmf_tok_train_opts o = {.vocab_size = 256};
    lmf_tokenizer *t = NULL;
    assert_int_equal(lmf_tok_train_buffer("abc", 3, &o, &t), LMF_ERR_ARG); /* no room for <|endoftext|> */
    assert_null(t);
    assert_true(strstr(lmf_last_error(), "vocab size") != NULL);
    static const char *const twice[] = {"<a>", "<a>", NULL};
    o = (lmf_tok_train_opts){.vocab_size = 300, .specials = twice};
    assert_int_equal(lmf_tok_train_buffer("abc", 3, &o, &t), LMF_ERR_ARG);
    static const char *const byte[] = {"a", NULL};
    o.specials = byte;
    assert_int_equal(lmf_tok_train_buffer("abc", 3, &o, &t), LMF_ERR_ARG);
    static const char *const bad_utf8[] = {"<\xff>", NULL};
    o.specials = bad_utf8;
    assert_int_equal(lmf_tok_train_buffer("abc", 3, &o, &t), LMF_ERR_ARG);
    const char *missing[] = {"/nonexistent/lmf/file.txt"};
    o.specials = NULL;
    assert_int_equal(lmf_tok_train_files(missing, 1, &o, &t), LMF_ERR_IO);
    assert_true(strstr(lmf_last_error(), "/nonexistent/lmf/file.txt") != NULL);
    assert_null(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hand_example), cmocka_unit_test(test_reencode_matches_training),
        cmocka_unit_test(test_deterministic), cmocka_unit_test(test_specials),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, lmf_test_tmpdir_setup, lmf_test_tmpdir_teardown);
}

/* Tests: lmf_data_prepare shards, validation split, thread independence, errors. */
/* lmf_data_prepare: documents and end-of-text ids in raw-byte and tokenizer modes against ids
 * built by hand or by encoding each document directly, the validation split, long documents
 * cut into pieces, identical shards for any thread count, progress, and argument errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "lmforge/data.h"
#include "lmforge/prepare.h"
#include "lmforge/tokenizer.h"

static char g_dir[] = "/tmp/lmf_prep_XXXXXX";

static void write_file(const char *name, const char *data, size_t len) {
    char p[256];
    snprintf(p, sizeof p, "%s/%s", g_dir, name);
    FILE *f = fopen(p, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
}

static const char *path(const char *name) {
    static char p[16][256];
    static int k;
    k = (k + 1) % 16; /* a few results stay valid at once */
    snprintf(p[k], sizeof p[k], "%s/%s", g_dir, name);
    return p[k];
}

/* the whole shard as uint32 */
static uint32_t *read_shard(const char *file, size_t *n, int *token_bytes) {
    lmf_tokens *s = NULL;
    if (lmf_tokens_open(path(file), &s) != LMF_OK) fail_msg("%s", lmf_last_error());
    *n = (size_t)lmf_tokens_num_tokens(s);
    *token_bytes = lmf_tokens_token_bytes(s);
    int32_t *tmp = malloc((*n + 1) * sizeof *tmp);
    uint32_t *ids = malloc((*n + 1) * sizeof *ids);
    lmf_tokens_read(s, 0, *n, tmp);
    for (size_t i = 0; i < *n; i++) ids[i] = (uint32_t)tmp[i];
    free(tmp);
    lmf_tokens_close(s);
    return ids;
}

static void expect_shard(const char *file, const uint32_t *want, size_t n_want) {
    size_t n;
    int tb;
    uint32_t *ids = read_shard(file, &n, &tb);
    if (n != n_want) fail_msg("%s: %zu tokens, expected %zu", file, n, n_want);
    for (size_t i = 0; i < n; i++)
        if (ids[i] != want[i]) fail_msg("%s: token %zu is %u, expected %u", file, i, ids[i], want[i]);
    free(ids);
}

static int setup(void **state) {
    (void)state;
    return mkdtemp(g_dir) ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    return system(cmd) == 0 ? 0 : -1;
}

typedef struct progress_seen {
    int calls;
    uint64_t last_done, total;
} progress_seen;

static void on_progress(void *ctx, uint64_t done, uint64_t total, uint64_t tokens) {
    progress_seen *p = ctx;
    (void)tokens;
    assert_true(done >= p->last_done && done <= total);
    p->calls++;
    p->last_done = done;
    p->total = total;
}

/* docs "ab\n", "cd\n", (an empty one, skipped), "ef" | an empty file | "xyz" | "g\r\n", "h" */
static void test_bytes_mode(void **state) {
    (void)state;
    write_file("a.txt", "ab\n%\ncd\n%\n%\nef", 14);
    write_file("b.txt", "", 0);
    write_file("c.txt", "xyz", 3);
    write_file("d.txt", "g\r\n%\r\nh\n%", 9);
    const char *in[] = {path("a.txt"), path("b.txt"), path("c.txt"), path("d.txt")};
    progress_seen ps = {0};
    lmf_prepare_opts o = {NULL, in, 4, path("out1"), 0.34, "%", 2, on_progress, &ps};
    lmf_prepare_stats st;
    if (lmf_data_prepare(&o, &st) != LMF_OK) fail_msg("%s", lmf_last_error());
    /* 6 documents, round(0.34 * 6) = 2 go to val: "g\r\n" and "h\n" */
    assert_int_equal(st.docs, 6);
    assert_int_equal(st.val_docs, 2);
    assert_int_equal(st.token_bytes, 2);
    assert_int_equal(st.vocab_size, 257);
    assert_int_equal(st.bytes, 14 + 3 + 9);
    static const uint32_t train[] = {'a', 'b', '\n', 256, 'c', 'd', '\n', 256, 'e', 'f', 256,
                                     'x', 'y', 'z', 256};
    static const uint32_t val[] = {'g', '\r', '\n', 256, 'h', '\n', 256};
    expect_shard("out1/train.bin", train, 15);
    expect_shard("out1/val.bin", val, 7);
    assert_int_equal(st.train_tokens, 15);
    assert_int_equal(st.val_tokens, 7);
    assert_true(ps.calls >= 1);
    assert_int_equal(ps.last_done, ps.total);
    assert_int_equal(ps.total, 26);
    /* no separator: one document per non-empty file; no validation shard */
    lmf_prepare_opts o2 = {NULL, in, 4, path("out2"), 0.0, NULL, 1, NULL, NULL};
    assert_int_equal(lmf_data_prepare(&o2, &st), LMF_OK);
    assert_int_equal(st.docs, 3);
    static const uint32_t whole[] = {'a', 'b', '\n', '%', '\n', 'c', 'd', '\n', '%', '\n', '%', '\n',
                                     'e', 'f', 256, 'x', 'y', 'z', 256, 'g', '\r', '\n', '%', '\r',
                                     '\n', 'h', '\n', '%', 256};
    expect_shard("out2/train.bin", whole, sizeof whole / sizeof whole[0]);
    assert_int_equal(access(path("out2/val.bin"), F_OK), -1);
}

static char *pseudo_text(size_t len, uint64_t seed) {
    static const char *const w[] = {"the", " cat", " sat", " on", " mat", ".", "\n", "  ", " 1984",
                                    "'s", " caf\xc3\xa9", " \xe6\x97\xa5", "\n\n", " a", "!!", " ok"};
    char *s = malloc(len + 1);
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

/* expected ids: each document encoded in one call, then end-of-text */
static uint32_t *encode_docs(const lmf_tokenizer *t, const char *const *docs, int n, size_t *n_out) {
    size_t total = 0;
    for (int i = 0; i < n; i++) total += strlen(docs[i]) + 1;
    uint32_t *ids = malloc(total * sizeof *ids);
    size_t o = 0;
    for (int i = 0; i < n; i++) {
        size_t k;
        assert_int_equal(lmf_tok_encode(t, docs[i], strlen(docs[i]), 0, ids + o, total - o, &k), LMF_OK);
        o += k;
        ids[o++] = (uint32_t)lmf_tok_eot(t);
    }
    *n_out = o;
    return ids;
}

static void test_tokenizer_mode_and_threads(void **state) {
    (void)state;
    char *corpus = pseudo_text(200000, 5);
    lmf_tok_train_opts to = {600, NULL, 1, 0};
    lmf_tokenizer *t = NULL;
    assert_int_equal(lmf_tok_train_buffer(corpus, 200000, &to, &t), LMF_OK);
    /* one short-document file (separator "##"), and one 5 MB document cut into pieces */
    char *big = pseudo_text(5000000, 9);
    char *d1 = pseudo_text(3000, 1), *d2 = pseudo_text(50, 2), *d3 = pseudo_text(700, 3);
    size_t l1 = strlen(d1), l2 = strlen(d2), l3 = strlen(d3);
    char *small = malloc(l1 + l2 + l3 + 64);
    size_t n = 0;
    memcpy(small + n, d1, l1), n += l1;
    memcpy(small + n, "\n##\n", 4), n += 4;
    memcpy(small + n, d2, l2), n += l2;
    memcpy(small + n, "\n##\n", 4), n += 4;
    memcpy(small + n, d3, l3), n += l3;
    write_file("small.txt", small, n);
    write_file("big.txt", big, 5000000);
    /* the documents as prepare sees them: the text before "##" lines, newline included */
    char *e1 = malloc(l1 + 2), *e2 = malloc(l2 + 2);
    memcpy(e1, d1, l1), memcpy(e1 + l1, "\n", 2);
    memcpy(e2, d2, l2), memcpy(e2 + l2, "\n", 2);
    const char *docs[] = {e1, e2, d3, big};
    size_t n_want;
    uint32_t *want = encode_docs(t, docs, 4, &n_want);
    const char *in[] = {path("small.txt"), path("big.txt")};
    for (int threads = 1; threads <= 3; threads++) {
        char out[32];
        snprintf(out, sizeof out, "tok%d", threads);
        lmf_prepare_opts o = {t, in, 2, path(out), 0.0, "##", threads, NULL, NULL};
        lmf_prepare_stats st;
        if (lmf_data_prepare(&o, &st) != LMF_OK) fail_msg("%s", lmf_last_error());
        assert_int_equal(st.docs, 4);
        char shard[64];
        snprintf(shard, sizeof shard, "%s/train.bin", out);
        expect_shard(shard, want, n_want);
    }
    /* the big document into val: train keeps the first three */
    lmf_prepare_opts o = {t, in, 2, path("tokval"), 0.2, "##", 2, NULL, NULL};
    lmf_prepare_stats st;
    assert_int_equal(lmf_data_prepare(&o, &st), LMF_OK);
    assert_int_equal(st.val_docs, 1); /* round(0.8) */
    size_t n_first3;
    uint32_t *first3 = encode_docs(t, docs, 3, &n_first3);
    expect_shard("tokval/train.bin", first3, n_first3);
    expect_shard("tokval/val.bin", want + n_first3, n_want - n_first3);
    free(first3);
    free(want);
    free(e1);
    free(e2);
    free(d1);
    free(d2);
    free(d3);
    free(small);
    free(big);
    free(corpus);
    lmf_tok_free(t);
}

static void test_errors(void **state) {
    (void)state;
    write_file("e.txt", "hello\n", 6);
    const char *in[] = {path("e.txt")};
    lmf_prepare_opts o = {NULL, in, 1, path("err"), 1.0, NULL, 1, NULL, NULL};
    assert_int_equal(lmf_data_prepare(&o, NULL), LMF_ERR_ARG);
    o.val_fraction = -0.1;
    assert_int_equal(lmf_data_prepare(&o, NULL), LMF_ERR_ARG);
    o.val_fraction = 0.1;
    o.doc_separator = "a\nb";
    assert_int_equal(lmf_data_prepare(&o, NULL), LMF_ERR_ARG);
    o.doc_separator = NULL;
    const char *missing[] = {path("e.txt"), path("missing.txt")};
    o.inputs = missing;
    o.n_inputs = 2;
    assert_int_equal(lmf_data_prepare(&o, NULL), LMF_ERR_IO);
    assert_non_null(strstr(lmf_last_error(), "missing.txt"));
    assert_int_equal(access(path("err/train.bin"), F_OK), -1); /* nothing half-written */
    o.n_inputs = 0;
    assert_int_equal(lmf_data_prepare(&o, NULL), LMF_ERR_ARG);
    /* a tokenizer without an end-of-text token */
    static const char *const none[] = {NULL};
    lmf_tok_train_opts to = {260, none, 1, 0};
    lmf_tokenizer *t = NULL;
    assert_int_equal(lmf_tok_train_buffer("hello hello", 11, &to, &t), LMF_OK);
    lmf_prepare_opts o2 = {t, in, 1, path("err2"), 0.0, NULL, 1, NULL, NULL};
    assert_int_equal(lmf_data_prepare(&o2, NULL), LMF_ERR_ARG);
    assert_non_null(strstr(lmf_last_error(), "end-of-text"));
    lmf_tok_free(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bytes_mode),
        cmocka_unit_test(test_tokenizer_mode_and_threads),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

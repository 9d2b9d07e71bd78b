/* Tests: lmf_data_prepare token files, validation split, thread independence, errors; default data. */
/* lmf_data_prepare: documents and end-of-text ids in raw-byte and tokenizer modes against ids
 * built by hand or by encoding each document directly, the validation split, long documents
 * cut into pieces, identical token files for any thread count, progress, and argument errors.
 * lmf_data_corpus_list and lmf_data_prepare_default: listing, reuse, retraining, errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "lmforge/data.h"
#include "lmforge/prepare.h"
#include "lmforge/tokenizer.h"

#include "lib/test_util.h"

static void write_file(const char *name, const char *data, size_t len) {
    char p[512];
    lmf_test_write_bytes(lmf_test_path(p, sizeof p, "%s", name), data, len);
}

static const char *path(const char *name) {
    static char p[16][512];
    static int k;
    k = (k + 1) % 16; /* a few results stay valid at once */
    return lmf_test_path(p[k], sizeof p[k], "%s", name);
}

/* the whole token file as uint32 */
static uint32_t *read_tokens(const char *file, size_t *n, int *token_bytes) {
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

static void expect_tokens(const char *file, const uint32_t *want, size_t n_want) {
    size_t n;
    int tb;
    uint32_t *ids = read_tokens(file, &n, &tb);
    if (n != n_want) fail_msg("%s: %zu tokens, expected %zu", file, n, n_want);
    for (size_t i = 0; i < n; i++)
        if (ids[i] != want[i]) fail_msg("%s: token %zu is %u, expected %u", file, i, ids[i], want[i]);
    free(ids);
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
    lmf_prepare_opts o = {NULL, in, 4, path("out1"), 0.34, "%", 2, on_progress, &ps, NULL};
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
    expect_tokens("out1/train.bin", train, 15);
    expect_tokens("out1/val.bin", val, 7);
    assert_int_equal(st.train_tokens, 15);
    assert_int_equal(st.val_tokens, 7);
    assert_true(ps.calls >= 1);
    assert_int_equal(ps.last_done, ps.total);
    assert_int_equal(ps.total, 26);
    /* no separator: one document per non-empty file; no validation file */
    lmf_prepare_opts o2 = {NULL, in, 4, path("out2"), 0.0, NULL, 1, NULL, NULL, NULL};
    assert_int_equal(lmf_data_prepare(&o2, &st), LMF_OK);
    assert_int_equal(st.docs, 3);
    static const uint32_t whole[] = {'a', 'b', '\n', '%', '\n', 'c', 'd', '\n', '%', '\n', '%', '\n',
                                     'e', 'f', 256, 'x', 'y', 'z', 256, 'g', '\r', '\n', '%', '\r',
                                     '\n', 'h', '\n', '%', 256};
    expect_tokens("out2/train.bin", whole, sizeof whole / sizeof whole[0]);
    assert_int_equal(access(path("out2/val.bin"), F_OK), -1);
    /* into out1 without validation: its val.bin from the first preparation goes */
    const char *names[] = {"a.txt", "b.txt", "c.txt", "d.txt"};
    for (int i = 0; i < 4; i++) in[i] = path(names[i]); /* path() reuses its buffers */
    o2.out_dir = path("out1");
    assert_int_equal(lmf_data_prepare(&o2, &st), LMF_OK);
    expect_tokens("out1/train.bin", whole, sizeof whole / sizeof whole[0]);
    assert_int_equal(access(path("out1/val.bin"), F_OK), -1);
    /* a failure (one document cannot be split) changes nothing and makes no directory */
    in[0] = path("a.txt");
    o.out_dir = path("out2");
    o.n_inputs = 1;
    o.doc_separator = NULL;
    assert_int_equal(lmf_data_prepare(&o, &st), LMF_ERR_ARG);
    assert_non_null(strstr(lmf_last_error(), "too small"));
    expect_tokens("out2/train.bin", whole, sizeof whole / sizeof whole[0]);
    o.out_dir = path("out3");
    assert_int_equal(lmf_data_prepare(&o, &st), LMF_ERR_ARG);
    assert_int_equal(access(path("out3"), F_OK), -1);
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

/* pseudo text that ends on a whole character (inputs must be UTF-8): a multi-byte character cut
 * by the length becomes spaces */
static char *utf8_text(size_t len, uint64_t seed) {
    char *s = lmf_test_pseudo_text(len, seed);
    size_t lead = len;
    while (lead > 0 && len - lead < 4 && ((unsigned char)s[lead - 1] & 0xC0) == 0x80) lead--;
    if (lead > 0 && (unsigned char)s[lead - 1] >= 0xC0) {
        unsigned char b = (unsigned char)s[lead - 1];
        size_t k = b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : 2;
        if (len - (lead - 1) < k) memset(s + lead - 1, ' ', len - (lead - 1));
    }
    return s;
}

static void test_tokenizer_mode_and_threads(void **state) {
    (void)state;
    char *corpus = lmf_test_pseudo_text(200000, 5);
    lmf_tok_train_opts to = {.vocab_size = 600, .threads = 1};
    lmf_tokenizer *t = NULL;
    assert_int_equal(lmf_tok_train_buffer(corpus, 200000, &to, &t), LMF_OK);
    /* one short-document file (separator "##"), and one 5 MB document cut into pieces */
    char *big = utf8_text(5000000, 9);
    char *d1 = utf8_text(3000, 1), *d2 = utf8_text(50, 2), *d3 = utf8_text(700, 3);
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
        lmf_prepare_opts o = {t, in, 2, path(out), 0.0, "##", threads, NULL, NULL, NULL};
        lmf_prepare_stats st;
        if (lmf_data_prepare(&o, &st) != LMF_OK) fail_msg("%s", lmf_last_error());
        assert_int_equal(st.docs, 4);
        char file[64];
        snprintf(file, sizeof file, "%s/train.bin", out);
        expect_tokens(file, want, n_want);
    }
    /* the big document into val: train keeps the first three */
    lmf_prepare_opts o = {t, in, 2, path("tokval"), 0.2, "##", 2, NULL, NULL, NULL};
    lmf_prepare_stats st;
    assert_int_equal(lmf_data_prepare(&o, &st), LMF_OK);
    assert_int_equal(st.val_docs, 1); /* round(0.8) */
    size_t n_first3;
    uint32_t *first3 = encode_docs(t, docs, 3, &n_first3);
    expect_tokens("tokval/train.bin", first3, n_first3);
    expect_tokens("tokval/val.bin", want + n_first3, n_want - n_first3);
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
    lmf_prepare_opts o = {NULL, in, 1, path("err"), 1.0, NULL, 1, NULL, NULL, NULL};
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
    lmf_tok_train_opts to = {.vocab_size = 260, .specials = none, .threads = 1};
    lmf_tokenizer *t = NULL;
    assert_int_equal(lmf_tok_train_buffer("hello hello", 11, &to, &t), LMF_OK);
    lmf_prepare_opts o2 = {t, in, 1, path("err2"), 0.0, NULL, 1, NULL, NULL, NULL};
    assert_int_equal(lmf_data_prepare(&o2, NULL), LMF_ERR_ARG);
    assert_non_null(strstr(lmf_last_error(), "end-of-text"));
    lmf_tok_free(t);
}

/* a corpus directory: text files listed in name order; links, hidden files, .dat index files,
 * empty files and directories left out */
static void test_corpus_list(void **state) {
    (void)state;
    assert_int_equal(mkdir(path("corp"), 0777), 0);
    write_file("corp/b", "b text\n", 7);
    write_file("corp/a", "a text\n", 7);
    write_file("corp/a.dat", "index", 5);
    write_file("corp/.hidden", "hidden", 6);
    write_file("corp/empty", "", 0);
    assert_int_equal(symlink("a", path("corp/a.u8")), 0);
    assert_int_equal(mkdir(path("corp/sub"), 0777), 0);
    lmf_corpus c;
    if (lmf_data_corpus_list(path("corp"), &c) != LMF_OK) fail_msg("%s", lmf_last_error());
    assert_int_equal(c.n, 2);
    assert_string_equal(c.paths[0], path("corp/a"));
    assert_string_equal(c.paths[1], path("corp/b"));
    lmf_data_corpus_free(&c);
    assert_null(c.paths);
    assert_int_equal(c.n, 0);
    /* missing and empty directories */
    assert_int_equal(lmf_data_corpus_list(path("nodir"), &c), LMF_ERR_IO);
    assert_non_null(strstr(lmf_last_error(), "corpus"));
    assert_null(strstr(lmf_last_error(), "apt-get"));
    assert_null(c.paths);
    assert_int_equal(mkdir(path("corp/sub/none"), 0777), 0);
    assert_int_equal(lmf_data_corpus_list(path("corp/sub"), &c), LMF_ERR_ARG);
    assert_non_null(strstr(lmf_last_error(), "is empty"));
    assert_int_equal(c.n, 0);
}

typedef struct events {
    int training, written;
    int vocab_size, n_files;
    uint64_t docs, train_tokens, val_tokens;
    char data_dir[256];
} events;

static void on_event(void *ctx, const lmf_default_data_progress *p) {
    events *e = ctx;
    if (p->event == LMF_DEFAULT_DATA_TRAINING) {
        e->training++;
        e->vocab_size = p->vocab_size;
        e->n_files = p->n_files;
    } else {
        assert_int_equal(p->event, LMF_DEFAULT_DATA_WRITTEN);
        e->written++;
        e->docs = p->stats->docs;
        e->train_tokens = p->stats->train_tokens;
        e->val_tokens = p->stats->val_tokens;
        snprintf(e->data_dir, sizeof e->data_dir, "%s", p->data_dir);
    }
}

/* lmf_data_prepare_default: a trained tokenizer and token files in the run directory, reused by
 * a second call, retrained for another size; a given tokenizer; too small a corpus */
static void test_default_data(void **state) {
    (void)state;
    assert_int_equal(mkdir(path("dcorp"), 0777), 0);
    /* 40 records in two files: the last 5% (2) go to val.bin */
    char text[4096];
    size_t n = 0;
    for (int i = 0; i < 20; i++)
        n += (size_t)snprintf(text + n, sizeof text - n, "fortune %d: the cat sat on the mat\n%%\n", i);
    write_file("dcorp/one", text, n);
    write_file("dcorp/two", text, n);
    events ev = {0};
    lmf_default_data_opts o = {path("dcorp"), NULL, 257, path("run"), on_event, &ev};
    char train[512], val[512];
    int vocab = 0;
    if (lmf_data_prepare_default(&o, train, val, sizeof train, &vocab) != LMF_OK)
        fail_msg("%s", lmf_last_error());
    assert_string_equal(train, path("run/data/train.bin"));
    assert_string_equal(val, path("run/data/val.bin"));
    assert_int_equal(vocab, 257);
    assert_int_equal(ev.training, 1);
    assert_int_equal(ev.vocab_size, 257);
    assert_int_equal(ev.n_files, 2);
    assert_int_equal(ev.written, 1);
    assert_int_equal(ev.docs, 40);
    assert_string_equal(ev.data_dir, path("run/data"));
    assert_int_equal(access(path("run/tokenizer/tokenizer.json"), F_OK), 0);
    /* raw bytes: every document is its bytes then 256 */
    size_t nt;
    int tb;
    uint32_t *ids = read_tokens("run/data/val.bin", &nt, &tb);
    assert_int_equal(nt, ev.val_tokens);
    assert_int_equal(tb, 2);
    assert_int_equal(ids[nt - 1], 256);
    assert_int_equal(ids[0], 'f'); /* "fortune 18: ..." */
    free(ids);
    /* again: the tokenizer and the token files are kept */
    ev = (events){0};
    assert_int_equal(lmf_data_prepare_default(&o, train, val, sizeof train, &vocab), LMF_OK);
    assert_int_equal(ev.training + ev.written, 0);
    assert_int_equal(vocab, 257);
    /* another size: trained again, the files rewritten */
    o.vocab_size = 270;
    assert_int_equal(lmf_data_prepare_default(&o, train, val, sizeof train, &vocab), LMF_OK);
    assert_int_equal(ev.training, 1);
    assert_int_equal(ev.vocab_size, 270);
    assert_int_equal(ev.written, 1);
    assert_int_equal(vocab, 270);
    lmf_tokenizer *t = NULL;
    assert_int_equal(lmf_tok_load(path("run/tokenizer"), &t), LMF_OK);
    assert_int_equal(lmf_tok_vocab_size(t), 270);
    lmf_tok_free(t);
    /* a given tokenizer: loaded, never trained, the files always rewritten */
    ev = (events){0};
    lmf_default_data_opts g = {path("dcorp"), path("run/tokenizer"), 0, path("run2"), on_event, &ev};
    assert_int_equal(lmf_data_prepare_default(&g, train, val, sizeof train, &vocab), LMF_OK);
    assert_int_equal(vocab, 270);
    assert_int_equal(ev.training, 0);
    assert_int_equal(ev.written, 1);
    assert_int_equal(access(path("run2/tokenizer"), F_OK), -1);
    assert_int_equal(lmf_data_prepare_default(&g, train, val, sizeof train, &vocab), LMF_OK);
    assert_int_equal(ev.written, 2);
    /* no progress callback is fine; a corpus of one document is too small */
    assert_int_equal(mkdir(path("tiny"), 0777), 0);
    write_file("tiny/only", "one record\n", 11);
    lmf_default_data_opts s = {path("tiny"), NULL, 257, path("run3"), NULL, NULL};
    assert_int_equal(lmf_data_prepare_default(&s, train, val, sizeof train, &vocab), LMF_ERR_ARG);
    assert_non_null(strstr(lmf_last_error(), "too small"));
    /* all or nothing: no tokenizer, token file or directory is left, so a rerun fails alike */
    assert_int_equal(access(path("run3/tokenizer"), F_OK), -1);
    assert_int_equal(access(path("run3/tokenizer.tmp"), F_OK), -1);
    assert_int_equal(access(path("run3/data"), F_OK), -1);
    assert_int_equal(lmf_data_prepare_default(&s, train, val, sizeof train, &vocab), LMF_ERR_ARG);
    assert_non_null(strstr(lmf_last_error(), "too small"));
    s.corpus = path("no-such-corpus");
    assert_int_equal(lmf_data_prepare_default(&s, train, val, sizeof train, &vocab), LMF_ERR_IO);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bytes_mode),
        cmocka_unit_test(test_tokenizer_mode_and_threads),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_corpus_list),
        cmocka_unit_test(test_default_data),
    };
    return cmocka_run_group_tests(tests, lmf_test_tmpdir_setup, lmf_test_tmpdir_teardown);
}

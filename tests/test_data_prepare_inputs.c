/* Data preparation from JSON Lines and zstd-compressed inputs: the same tokens as the plain
 * documents, and errors (bad JSON, invalid UTF-8, a missing field, a truncated zstd stream) that
 * name the file and line; plain text that is not UTF-8, named by file and byte offset; streamed
 * inputs read in windows smaller than the file give the same tokens. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "lmforge/data.h"
#include "lmforge/fsutil.h"
#include "lmforge/prepare.h"
#include "lmforge/tokenizer.h"

#include "lib/test_util.h"

/* compress text into path with libzstd; keep only `keep` bytes of the frame when keep > 0 */
static void write_zst(const char *path, const char *text, size_t keep) {
    size_t len = strlen(text), cap = ZSTD_compressBound(len);
    char *buf = malloc(cap);
    size_t n = ZSTD_compress(buf, cap, text, len, 3);
    assert_false(ZSTD_isError(n));
    lmf_test_write_bytes(path, buf, keep ? keep : n);
    free(buf);
}

/* prepare the one input with raw bytes, no validation split */
static lmf_status prepare(const char *input, const char *out, const char *key) {
    const char *in[1] = {input};
    lmf_prepare_opts o = {NULL, in, 1, out, 0.0, NULL, 1, NULL, NULL, key};
    return lmf_data_prepare(&o, NULL);
}

/* the token file's tokens must be the documents' bytes, each followed by end-of-text (256) */
static void expect_docs(const char *bin, const char *const *docs, int n) {
    lmf_tokens *t = NULL;
    lmf_test_ok(lmf_tokens_open(bin, &t), bin);
    size_t want = 0;
    for (int i = 0; i < n; i++) want += strlen(docs[i]) + 1;
    assert_int_equal(lmf_tokens_num_tokens(t), want);
    int32_t *got = malloc(want * sizeof *got);
    lmf_tokens_read(t, 0, want, got);
    size_t k = 0;
    for (int i = 0; i < n; i++) {
        for (const unsigned char *c = (const unsigned char *)docs[i]; *c; c++)
            assert_int_equal(got[k++], *c);
        assert_int_equal(got[k++], 256);
    }
    free(got);
    lmf_tokens_close(t);
}

static const char *JSONL =
    "{\"text\": \"first document\\nwith two lines\", \"id\": 1}\n"
    "\n"
    "{\"id\": 2, \"text\": \"caf\\u00e9 \\ud83d\\ude00 second\"}\r\n"
    "{\"text\": \"\"}\n"
    "{\"body\": \"the other field\", \"text\": \"third\"}";

static void test_jsonl_and_zstd(void **state) {
    char in[512], out[512], bin[600], ref[600];
    const char *docs[3] = {"first document\nwith two lines", "caf\xc3\xa9 \xf0\x9f\x98\x80 second",
                           "third"};
    lmf_test_write_text(lmf_test_path(in, sizeof in, "docs.jsonl"), JSONL);
    lmf_test_ok(prepare(in, lmf_test_path(out, sizeof out, "j"), NULL), "jsonl");
    snprintf(ref, sizeof ref, "%s/train.bin", out);
    expect_docs(ref, docs, 3);
    /* compressed: the same bytes out */
    write_zst(lmf_test_path(in, sizeof in, "docs.jsonl.zst"), JSONL, 0);
    lmf_test_ok(prepare(in, lmf_test_path(out, sizeof out, "jz"), NULL), "jsonl.zst");
    snprintf(bin, sizeof bin, "%s/train.bin", out);
    size_t la, lb;
    char *a = lmf_test_read_file(ref, &la), *b = lmf_test_read_file(bin, &lb);
    assert_int_equal(la, lb);
    assert_memory_equal(a, b, la);
    free(a);
    free(b);
    /* another field */
    lmf_test_write_text(lmf_test_path(in, sizeof in, "body.jsonl"), "{\"body\": \"only this\"}\n");
    lmf_test_ok(prepare(in, lmf_test_path(out, sizeof out, "jb"), "body"), "--jsonl-key body");
    snprintf(bin, sizeof bin, "%s/train.bin", out);
    const char *body[1] = {"only this"};
    expect_docs(bin, body, 1);
    /* compressed plain text: one document, its text */
    write_zst(lmf_test_path(in, sizeof in, "plain.txt.zst"), "plain text, compressed", 0);
    lmf_test_ok(prepare(in, lmf_test_path(out, sizeof out, "tz"), NULL), "txt.zst");
    snprintf(bin, sizeof bin, "%s/train.bin", out);
    const char *plain[1] = {"plain text, compressed"};
    expect_docs(bin, plain, 1);
}

static void expect_error(const char *name, const char *text, int zst, size_t keep,
                         const char *needle1, const char *needle2) {
    char in[512], out[512];
    lmf_test_path(in, sizeof in, "%s", name);
    if (zst) write_zst(in, text, keep);
    else lmf_test_write_text(in, text);
    assert_int_equal(prepare(in, lmf_test_path(out, sizeof out, "err"), NULL), LMF_ERR_FORMAT);
    const char *m = lmf_last_error();
    if (!strstr(m, needle1) || !strstr(m, needle2))
        fail_msg("%s: '%s' does not say '%s' and '%s'", name, m, needle1, needle2);
    char bin[600];
    snprintf(bin, sizeof bin, "%s/train.bin", out);
    assert_false(lmf_file_exists(bin)); /* no partial token file */
}

static void test_errors_name_file_and_line(void **state) {
    expect_error("badline.jsonl", "{\"text\": \"a\"}\n{\"text\": \"b\"}\n{\"text\": \"c\"\n", 0, 0,
                 "badline.jsonl:3:", "not valid JSON");
    expect_error("utf8.jsonl", "{\"text\": \"a\"}\n{\"text\": \"bad \xff\xfe byte\"}\n", 0, 0,
                 "utf8.jsonl:2:", "0xff");
    expect_error("nokey.jsonl", "{\"text\": \"a\"}\n{\"title\": \"b\"}\n", 0, 0, "nokey.jsonl:2:",
                 "\"text\"");
    expect_error("notstr.jsonl", "{\"text\": 5}\n", 0, 0, "notstr.jsonl:1:", "string");
    expect_error("cut.jsonl.zst", JSONL, 1, 20, "cut.jsonl.zst", "truncated zstd stream");
    expect_error("cutz.txt.zst", "some text that compresses into a frame, cut short", 1, 12,
                 "cutz.txt.zst", "truncated");
    expect_error("garbage.txt.zst", "this is not a zstd frame", 0, 0, "garbage.txt.zst", "zstd");
}

/* plain text (and compressed plain text) must be UTF-8: the first bad byte is named by its
 * offset in the (decompressed) file, also far past the first work unit and on several threads;
 * valid multi-byte text passes */
static void test_plain_text_utf8(void **state) {
    expect_error("latin1.txt", "caf\xe9 au lait\n", 0, 0, "latin1.txt", "byte offset 3 (0xe9)");
    expect_error("cont.txt", "ok \xc3\xa9 then \x80 stray\n", 0, 0, "cont.txt", "byte offset 11");
    expect_error("surrogate.txt", "x\xed\xa0\x80y", 0, 0, "surrogate.txt", "byte offset 1");
    expect_error("overlong.txt", "ab\xc0\xaf" "cd", 0, 0, "overlong.txt", "byte offset 2");
    expect_error("cut.txt", "ends inside \xe2\x82", 0, 0, "cut.txt", "byte offset 12");
    expect_error("latin1.txt.zst", "zstd caf\xe9", 1, 0, "latin1.txt.zst",
                 "decompressed byte offset 8");
    /* 3 MB of valid text (many work units, long documents cut into pieces), one bad byte late */
    size_t len = (size_t)3 << 20, at = len - 1000;
    char *text = lmf_test_pseudo_text(len, 7), in[512], out[512], want[64];
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)text[i] >= 0x80 || text[i] == '\0') text[i] = 'x';
    memcpy(text + 5000, "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9); /* é € 😀 */
    lmf_test_write_bytes(lmf_test_path(in, sizeof in, "big.txt"), text, len);
    for (int threads = 1; threads <= 3; threads += 2) {
        const char *inputs[1] = {in};
        lmf_prepare_opts o = {NULL, inputs, 1, lmf_test_path(out, sizeof out, "big%d", threads),
                              0.0, NULL, threads, NULL, NULL, NULL};
        lmf_test_ok(lmf_data_prepare(&o, NULL), "valid UTF-8 text");
    }
    text[at] = '\xff';
    lmf_test_write_bytes(in, text, len);
    free(text);
    for (int threads = 1; threads <= 3; threads += 2) {
        const char *inputs[1] = {in};
        lmf_prepare_opts o = {NULL, inputs, 1, lmf_test_path(out, sizeof out, "bad%d", threads),
                              0.0, "%", threads, NULL, NULL, NULL};
        assert_int_equal(lmf_data_prepare(&o, NULL), LMF_ERR_FORMAT);
        snprintf(want, sizeof want, "byte offset %zu (0xff)", at);
        if (!strstr(lmf_last_error(), "big.txt") || !strstr(lmf_last_error(), want))
            fail_msg("'%s' does not say big.txt and '%s'", lmf_last_error(), want);
    }
}

/* compress len bytes into path */
static void write_zst_bytes(const char *path, const char *data, size_t len) {
    size_t cap = ZSTD_compressBound(len);
    char *buf = malloc(cap);
    size_t n = ZSTD_compress(buf, cap, data, len, 1);
    assert_false(ZSTD_isError(n));
    lmf_test_write_bytes(path, buf, n);
    free(buf);
}

/* pseudo text ending on a whole character (trailing bytes of a cut one become spaces) */
static char *text_of(size_t len, uint64_t seed) {
    char *t = lmf_test_pseudo_text(len, seed);
    for (size_t i = len; i > 0 && (unsigned char)t[i - 1] >= 0x80; i--) t[i - 1] = ' ';
    return t;
}

/* prepare one input (threads 2, the given window) into out; the stats in *st */
static void prepare_window(const lmf_tokenizer *tok, const char *input, const char *out,
                           const char *sep, double val, size_t window, lmf_prepare_stats *st) {
    const char *in[1] = {input};
    lmf_prepare_opts o = {tok, in, 1, out, val, sep, 2, NULL, NULL, NULL, window};
    lmf_test_ok(lmf_data_prepare(&o, st), input);
}

static void expect_same_file(const char *a, const char *b) {
    size_t la, lb;
    char *x = lmf_test_read_file(a, &la), *y = lmf_test_read_file(b, &lb);
    if (la != lb || memcmp(x, y, la) != 0) fail_msg("%s and %s differ (%zu, %zu bytes)", a, b, la, lb);
    free(x);
    free(y);
}

/* Streamed inputs read in windows much smaller than the file give the tokens of the whole file
 * at once: compressed text with a separator (short documents carried across windows, a 2.3 MB
 * document cut into pieces across them, a validation split), compressed text as one document,
 * and JSON Lines, whose decoded buffer stays near the window size. */
static void test_streaming_windows(void **state) {
    char *corpus = text_of(100000, 11);
    lmf_tok_train_opts to = {.vocab_size = 320, .threads = 1};
    lmf_tokenizer *tok = NULL;
    lmf_test_ok(lmf_tok_train_buffer(corpus, 100000, &to, &tok), "train a tokenizer");
    free(corpus);
    /* 800 documents of 100..3000 bytes, a 2.3 MB one after the 300th, "%" lines between */
    size_t cap = (size_t)6 << 20, len = 0;
    char *text = malloc(cap);
    for (int d = 0; d < 800; d++) {
        size_t n = d == 300 ? (size_t)2300000 : 100 + (size_t)(d * 7919) % 2900;
        char *t = text_of(n, (uint64_t)d + 1);
        memcpy(text + len, t, n);
        len += n;
        free(t);
        len += (size_t)snprintf(text + len, cap - len, d % 5 ? "\n%%\n" : "\r\n%%\r\n");
    }
    char plain[512], zst[512], a[512], b[512], fa[600], fb[600];
    lmf_test_write_bytes(lmf_test_path(plain, sizeof plain, "stream.txt"), text, len);
    write_zst_bytes(lmf_test_path(zst, sizeof zst, "stream.txt.zst"), text, len);
    lmf_prepare_stats sa, sb;
    prepare_window(tok, plain, lmf_test_path(a, sizeof a, "sa"), "%", 0.1, 0, &sa);
    prepare_window(tok, zst, lmf_test_path(b, sizeof b, "sb"), "%", 0.1, 65536, &sb);
    assert_int_equal(sb.docs, 800);
    assert_int_equal(sb.val_docs, 80);
    assert_int_equal(sb.train_tokens, sa.train_tokens);
    for (int k = 0; k < 2; k++) {
        snprintf(fa, sizeof fa, "%s/%s", a, k ? "val.bin" : "train.bin");
        snprintf(fb, sizeof fb, "%s/%s", b, k ? "val.bin" : "train.bin");
        expect_same_file(fa, fb);
    }
    /* one document: the whole text, pieces cut as the windows come */
    prepare_window(tok, plain, lmf_test_path(a, sizeof a, "oa"), NULL, 0, 0, &sa);
    prepare_window(tok, zst, lmf_test_path(b, sizeof b, "ob"), NULL, 0, 65536, &sb);
    snprintf(fa, sizeof fa, "%s/train.bin", a);
    snprintf(fb, sizeof fb, "%s/train.bin", b);
    expect_same_file(fa, fb);
    assert_int_equal(sb.docs, 1);
    free(text);
    lmf_tok_free(tok);

    /* JSON Lines, 2,000 documents (about 1 MB): windows of 4 KB against one window */
    char *jl = malloc((size_t)2 << 20);
    size_t jn = 0;
    for (int d = 0; d < 2000; d++) {
        char *t = text_of(100 + (size_t)(d * 31) % 800, (uint64_t)d + 7);
        jn += (size_t)sprintf(jl + jn, "{\"id\": %d, \"text\": \"", d);
        for (char *c = t; *c; c++) {
            if (*c == '\n') jn += (size_t)sprintf(jl + jn, "\\n");
            else if (*c == '"' || *c == '\\') jn += (size_t)sprintf(jl + jn, "\\%c", *c);
            else jl[jn++] = *c;
        }
        jn += (size_t)sprintf(jl + jn, "\"}\n");
        free(t);
    }
    lmf_test_write_bytes(lmf_test_path(plain, sizeof plain, "stream.jsonl"), jl, jn);
    write_zst_bytes(lmf_test_path(zst, sizeof zst, "stream.jsonl.zst"), jl, jn);
    free(jl);
    prepare_window(NULL, plain, lmf_test_path(a, sizeof a, "ja"), NULL, 0.05, (size_t)64 << 20, &sa);
    prepare_window(NULL, zst, lmf_test_path(b, sizeof b, "jb"), NULL, 0.05, 4096, &sb);
    assert_int_equal(sb.docs, 2000);
    for (int k = 0; k < 2; k++) {
        snprintf(fa, sizeof fa, "%s/%s", a, k ? "val.bin" : "train.bin");
        snprintf(fb, sizeof fb, "%s/%s", b, k ? "val.bin" : "train.bin");
        expect_same_file(fa, fb);
    }
    /* the decoded text (about 900 KB) was never held at once */
    uint64_t decoded = sa.train_tokens + sa.val_tokens - sa.docs;
    if (!(sb.window_bytes <= 65536 && decoded > 10 * (uint64_t)sb.window_bytes))
        fail_msg("a 4 KB window held %zu bytes of %llu decoded", sb.window_bytes,
                 (unsigned long long)decoded);
    if (sa.window_bytes < decoded) fail_msg("one window held only %zu bytes", sa.window_bytes);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_jsonl_and_zstd),
        cmocka_unit_test(test_errors_name_file_and_line),
        cmocka_unit_test(test_plain_text_utf8),
        cmocka_unit_test(test_streaming_windows),
    };
    return cmocka_run_group_tests(tests, lmf_test_tmpdir_setup, lmf_test_tmpdir_teardown);
}

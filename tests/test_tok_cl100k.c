/* Tests: cl100k_base / Llama 3 tokenizers: tiktoken files, tiktoken's merge order, vectors, saving. */
/* cl100k_base from its tiktoken file against the shared reference vectors ($LMF_SHARED_DIR/cl100k,
 * those tests skipped when absent), the same after saving as tokenizer.json, cut points, the
 * merge loops against each other and the join table against every split; tiktoken's merge
 * order and the file parser's errors on small hand-made files. */
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

#include "lmforge/tokenizer.h"
#include "tokenizer/tok_internal.h"

#include "lib/test_util.h"
#include "lib/tok_vectors.h"

static char g_dir[4096];

/* $LMF_SHARED_DIR/cl100k when it holds the tiktoken file and the vectors */
static int have_cl100k(void) {
    static const char *const files[] = {"vectors.jsonl", "cl100k_base.tiktoken", NULL};
    return lmf_test_shared_dir(g_dir, sizeof g_dir, "cl100k", files);
}

#define NEED_CL100K() do { \
        if (!have_cl100k()) { \
            fprintf(stderr, "SKIP: cl100k reference files not found ($LMF_SHARED_DIR/cl100k)\n"); \
            skip(); \
        } \
    } while (0)

static lmf_tokenizer *g_tok; /* cl100k_base, loaded once */

static const lmf_tokenizer *cl100k(void) {
    if (!g_tok) {
        char p[4200];
        snprintf(p, sizeof p, "%s/cl100k_base.tiktoken", g_dir);
        if (lmf_tok_load(p, &g_tok) != LMF_OK) fail_msg("loading %s: %s", p, lmf_last_error());
    }
    return g_tok;
}

/* every vector: ids match exactly, and decoding gives the text back; returns the count */
static int check_vectors(const lmf_tokenizer *t) {
    char p[4200];
    snprintf(p, sizeof p, "%s/vectors.jsonl", g_dir);
    int n = lmf_test_tok_vectors(t, p);
    assert_true(n > 50);
    return n;
}

static void test_vectors_tiktoken_file(void **state) {
    (void)state;
    NEED_CL100K();
    const lmf_tokenizer *t = cl100k();
    assert_int_equal(lmf_tok_vocab_size(t), 100277);
    assert_int_equal(lmf_tok_get_pattern(t), LMF_TOK_PATTERN_CL100K);
    assert_int_equal(lmf_tok_eot(t), 100257);
    check_vectors(t);
}

/* the vectors again after writing tokenizer.json (Split with cl100k's pattern) and reading it */
static void test_vectors_after_save(void **state) {
    (void)state;
    NEED_CL100K();
    char dir[4200], p[4300];
    lmf_test_fresh_dir(dir, sizeof dir, "saved");
    lmf_test_ok(lmf_tok_save(cl100k(), dir), "save");
    snprintf(p, sizeof p, "%s/encoder.json", dir);
    assert_int_not_equal(access(p, F_OK), 0); /* the GPT-2 pair cannot carry the pattern */
    lmf_tokenizer *t = NULL;
    lmf_test_ok(lmf_tok_load(dir, &t), "load tokenizer.json");
    assert_int_equal(lmf_tok_get_pattern(t), LMF_TOK_PATTERN_CL100K);
    assert_int_equal(lmf_tok_vocab_size(t), 100277);
    assert_int_equal(lmf_tok_eot(t), 100257);
    check_vectors(t);
    lmf_tok_free(t);
}

/* encoding a text in pieces cut at lmf_tok_split_point gives the ids of the whole */
static void test_split_points(void **state) {
    (void)state;
    NEED_CL100K();
    const lmf_tokenizer *t = cl100k();
    const char *unit = "Don'T stop:\r\n  x = 1234567;\n\n\tfoo(bar) \xe4\xbd\xa0\xe5\xa5\xbd !!\n"
                       "   \xf0\x9f\x98\x80 it's 3.14  ...\r\n";
    size_t ul = strlen(unit), len = ul * 40;
    char *text = malloc(len);
    assert_non_null(text);
    for (size_t k = 0; k < 40; k++) memcpy(text + k * ul, unit, ul);
    size_t cap = len + 1, n_whole, n_parts = 0, n_cuts = 0;
    uint32_t *whole = malloc(cap * sizeof *whole), *parts = malloc(cap * sizeof *parts);
    assert_true(whole && parts);
    lmf_test_ok(lmf_tok_encode(t, text, len, 0, whole, cap, &n_whole), "encode whole");
    for (size_t pos = 0; pos < len;) {
        size_t cut = lmf_tok_split_point(text, len, pos + 7), n;
        lmf_test_ok(lmf_tok_encode(t, text + pos, cut - pos, 0, parts + n_parts, cap - n_parts, &n), "encode part");
        n_parts += n;
        n_cuts++;
        pos = cut;
    }
    assert_true(n_cuts > 40);
    assert_int_equal(n_parts, n_whole);
    assert_memory_equal(parts, whole, n_whole * sizeof *whole);
    free(text);
    free(whole);
    free(parts);
}

/* the array and heap merge loops give the same ids on long pieces (tiktoken's order) */
static void test_merge_loops_agree(void **state) {
    (void)state;
    NEED_CL100K();
    const lmf_tokenizer *t = cl100k();
    lmf_tok_ctx *c = lmf_tok_ctx_create();
    assert_non_null(c);
    char *w = lmf_test_pseudo_text(4096, 7);
    /* the pseudo text without its spaces: long pieces of letters and other characters */
    size_t n = 0;
    for (size_t i = 0; w[i]; i++)
        if (w[i] != ' ' && w[i] != '\n') w[n++] = w[i];
    uint32_t *a = malloc(n * sizeof *a), *h = malloc(n * sizeof *h);
    assert_true(a && h);
    for (size_t len = 2; len <= n; len = len * 3 / 2 + 1) {
        size_t na = lmf_tok_bpe_word(t, c, (const uint8_t *)w, len, a, LMF_TOK_BPE_ARRAY);
        size_t nh = lmf_tok_bpe_word(t, c, (const uint8_t *)w, len, h, LMF_TOK_BPE_HEAP);
        assert_int_equal(na, nh);
        assert_memory_equal(a, h, na * sizeof *a);
        assert_true(na < len);
    }
    free(a);
    free(h);
    free(w);
    lmf_tok_ctx_free(c);
}

/* pairs held in a join table */
static size_t join_pairs(const lmf_tokenizer *t) {
    size_t n = 0;
    for (uint64_t i = 0; t->jtab && i <= t->jtab_mask; i++) n += t->jtab[i] != LMF_TOK_EMPTY_SLOT;
    return n;
}

/* BPE of w[0..n) with the join table and with every split (the table set aside): the same ids */
static void expect_same_bpe(lmf_tokenizer *t, lmf_tok_ctx *c, const uint8_t *w, size_t n, uint32_t *a,
                            uint32_t *b) {
    uint64_t *jtab = t->jtab;
    for (int m = LMF_TOK_BPE_ARRAY; m <= LMF_TOK_BPE_HEAP; m++) {
        size_t na = lmf_tok_bpe_word(t, c, w, n, a, (lmf_tok_bpe_method)m);
        t->jtab = NULL;
        size_t nb = lmf_tok_bpe_word(t, c, w, n, b, (lmf_tok_bpe_method)m);
        t->jtab = jtab;
        assert_int_equal(na, nb);
        assert_memory_equal(a, b, na * sizeof *a);
    }
}

/* cl100k_base's join table keeps one pair per token of its 233,378 splits, and BPE with it
 * equals BPE over every split: on every token's bytes, on 20,000 runs of 2 to 5 random tokens
 * (pieces the pre-tokenizer would never make, so merges across token edges are tried too) and
 * on long pieces of pseudo text. */
static void test_join_table_changes_nothing(void **state) {
    (void)state;
    NEED_CL100K();
    lmf_tokenizer *t = (lmf_tokenizer *)cl100k();
    size_t pairs = join_pairs(t);
    fprintf(stderr, "cl100k_base: %zu pairs in the join table of %u splits\n", pairs, t->n_merges);
    assert_non_null(t->jtab);
    assert_true(pairs > 90000 && pairs < (size_t)t->n_ids && pairs < t->n_merges / 2);
    lmf_tok_ctx *c = lmf_tok_ctx_create();
    uint32_t a[4096], b[4096];
    uint8_t w[4096];
    assert_non_null(c);
    for (uint32_t id = 0; id < 100256; id++) {
        size_t n;
        const char *tb = lmf_tok_token_bytes(t, id, &n);
        if (tb && n >= 2) expect_same_bpe(t, c, (const uint8_t *)tb, n, a, b);
    }
    uint64_t rng = 12345;
    for (int k = 0; k < 20000; k++) {
        size_t n = 0;
        rng = rng * 6364136223846793005ull + 1442695040888963407ull;
        int parts = 2 + (int)(rng >> 60) % 4;
        for (int p = 0; p < parts; p++) {
            rng = rng * 6364136223846793005ull + 1442695040888963407ull;
            size_t tl;
            const char *tb = lmf_tok_token_bytes(t, (uint32_t)((rng >> 33) % 100256), &tl);
            if (tb && n + tl <= sizeof w) {
                memcpy(w + n, tb, tl);
                n += tl;
            }
        }
        if (n >= 2) expect_same_bpe(t, c, w, n, a, b);
    }
    char *text = lmf_test_pseudo_text(sizeof w, 11);
    for (size_t len = 2; len <= sizeof w && text[len - 1]; len = len * 3 / 2 + 1)
        expect_same_bpe(t, c, (const uint8_t *)text, len, a, b);
    free(text);
    lmf_tok_ctx_free(c);
}

/* a tiktoken file of the 256 bytes (in byte order) and then `extra`, one token a line */
static char *tiktoken_text(const char *const *extra, size_t n_extra, size_t *len) {
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t cap = 64 * (256 + n_extra) + 4096, o = 0;
    char *s = malloc(cap);
    assert_non_null(s);
    for (size_t r = 0; r < 256 + n_extra; r++) {
        const uint8_t *tok = NULL;
        uint8_t one = (uint8_t)r;
        size_t tl = 1;
        if (r < 256) tok = &one;
        else {
            tok = (const uint8_t *)extra[r - 256];
            tl = strlen(extra[r - 256]);
        }
        for (size_t i = 0; i < tl; i += 3) {
            uint32_t v = (uint32_t)tok[i] << 16 | (i + 1 < tl ? (uint32_t)tok[i + 1] << 8 : 0) |
                         (i + 2 < tl ? tok[i + 2] : 0);
            s[o++] = b64[v >> 18];
            s[o++] = b64[v >> 12 & 63];
            s[o++] = i + 1 < tl ? b64[v >> 6 & 63] : '=';
            s[o++] = i + 2 < tl ? b64[v & 63] : '=';
        }
        o += (size_t)snprintf(s + o, cap - o, " %zu\n", r);
    }
    *len = o;
    return s;
}

static uint32_t encode1(const lmf_tokenizer *t, const char *text, uint32_t *ids, size_t cap) {
    size_t n;
    lmf_test_ok(lmf_tok_encode(t, text, strlen(text), 0, ids, cap, &n), "encode");
    return (uint32_t)n;
}

/* tiktoken merges the leftmost pair of the lowest-ranked result, one at a time: with "aba"
 * ranked before "ab", "ababab" is [a b][a] first, then "aba" takes the following a, and the
 * rest pairs up: aba, b, ab. GPT-2's order (every "ab" in one pass) would give ab ab ab. */
static void test_tiktoken_merge_order(void **state) {
    (void)state;
    static const char *const extra[] = {"aba", "ab"};
    size_t len;
    char *file = tiktoken_text(extra, 2, &len);
    lmf_tokenizer *t = NULL;
    lmf_test_ok(lmf_tok_parse_tiktoken(file, len, "small.tiktoken", &t), "parse");
    assert_int_equal(lmf_tok_vocab_size(t), 258); /* an unknown rank count: no special tokens */
    assert_int_equal(lmf_tok_eot(t), -1);
    uint32_t ids[16];
    assert_int_equal(encode1(t, "ababab", ids, 16), 3);
    assert_int_equal(ids[0], 256);
    assert_int_equal(ids[1], 'b');
    assert_int_equal(ids[2], 257);
    /* a piece that is a token stays whole */
    assert_int_equal(encode1(t, "aba", ids, 16), 1);
    assert_int_equal(ids[0], 256);
    /* both merge loops: a b a b a b a b -> ab a b a b a b -> aba b a b a b -> aba b ab a b ->
     * aba b aba b */
    lmf_tok_ctx *c = lmf_tok_ctx_create();
    assert_non_null(c);
    for (int m = LMF_TOK_BPE_ARRAY; m <= LMF_TOK_BPE_HEAP; m++) {
        assert_int_equal(lmf_tok_bpe_word(t, c, (const uint8_t *)"abababab", 8, ids, (lmf_tok_bpe_method)m), 4);
        assert_int_equal(ids[0], 256);
        assert_int_equal(ids[1], 'b');
        assert_int_equal(ids[2], 256);
        assert_int_equal(ids[3], 'b');
    }
    lmf_tok_ctx_free(c);
    lmf_tok_free(t);
    free(file);
}

/* With "ab", "bc", "abc" ranked in that order, BPE of "abc" joins ab first, so (ab, c) is the
 * only pair that makes abc: the join table leaves (a, bc) out, and "abc", "bcabc" and "abcbc"
 * encode as with every split. */
static void test_join_table_small(void **state) {
    (void)state;
    static const char *const extra[] = {"ab", "bc", "abc"};
    size_t len;
    char *file = tiktoken_text(extra, 3, &len);
    lmf_tokenizer *t = NULL;
    lmf_test_ok(lmf_tok_parse_tiktoken(file, len, "small.tiktoken", &t), "parse");
    assert_int_equal(t->n_merges, 4);
    assert_int_equal(join_pairs(t), 3);
    assert_int_equal(lmf_tok_pair_find(t->jtab, t->jtab_mask, t->jtab_shift, 256, 'c'), 258);
    assert_int_equal(lmf_tok_pair_find(t->jtab, t->jtab_mask, t->jtab_shift, 'a', 257), LMF_TOK_NONE);
    lmf_tok_ctx *c = lmf_tok_ctx_create();
    assert_non_null(c);
    uint32_t a[16], b[16];
    static const char *const words[] = {"abc", "bcabc", "abcbc", "aabcc", "babcab"};
    for (size_t k = 0; k < sizeof words / sizeof *words; k++)
        expect_same_bpe(t, c, (const uint8_t *)words[k], strlen(words[k]), a, b);
    assert_int_equal(encode1(t, "bcabc", a, 16), 2); /* bc abc */
    assert_int_equal(a[0], 257);
    assert_int_equal(a[1], 258);
    lmf_tok_ctx_free(c);
    lmf_tok_free(t);
    free(file);
}

/* A file of Llama 3's size (128,000 ranks) gets Llama 3's 256 special tokens from 128000 on */
static void test_llama3_specials(void **state) {
    (void)state;
    size_t n_extra = 128000 - 256;
    char **extra = malloc(n_extra * sizeof *extra), *store = malloc(n_extra * 4);
    assert_true(extra && store);
    for (size_t k = 0; k < n_extra; k++) { /* distinct 3-byte tokens of letters and digits */
        static const char al[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        char *w = store + 4 * k;
        w[0] = al[k % 62];
        w[1] = al[k / 62 % 62];
        w[2] = al[k / (62 * 62)];
        w[3] = '\0';
        extra[k] = w;
    }
    size_t len;
    char *file = tiktoken_text((const char *const *)extra, n_extra, &len);
    lmf_tokenizer *t = NULL;
    lmf_test_ok(lmf_tok_parse_tiktoken(file, len, "tokenizer.model", &t), "parse");
    assert_int_equal(lmf_tok_vocab_size(t), 128256);
    assert_int_equal(lmf_tok_eot(t), 128001);
    static const struct { uint32_t id; const char *s; } want[] = {
        {128000, "<|begin_of_text|>"}, {128001, "<|end_of_text|>"},
        {128002, "<|reserved_special_token_0|>"}, {128005, "<|reserved_special_token_3|>"},
        {128006, "<|start_header_id|>"}, {128007, "<|end_header_id|>"},
        {128008, "<|reserved_special_token_4|>"}, {128009, "<|eot_id|>"},
        {128010, "<|reserved_special_token_5|>"}, {128255, "<|reserved_special_token_250|>"},
    };
    for (size_t k = 0; k < sizeof want / sizeof want[0]; k++) {
        size_t n;
        const char *b = lmf_tok_token_bytes(t, want[k].id, &n);
        assert_non_null(b);
        assert_int_equal(n, strlen(want[k].s));
        assert_memory_equal(b, want[k].s, n);
        assert_true(lmf_tok_is_special(t, want[k].id));
    }
    uint32_t ids[16];
    size_t n;
    lmf_test_ok(lmf_tok_encode(t, "<|begin_of_text|>AAA<|eot_id|>", 30, 1, ids, 16, &n), "encode");
    assert_int_equal(n, 3);
    assert_int_equal(ids[0], 128000);
    assert_int_equal(ids[1], 256); /* "AAA", the first extra token */
    assert_int_equal(ids[2], 128009);
    /* tokenizer_config.json beside a Hugging Face export: the class that reads tokenizer.json
     * as it is, Llama 3's begin and end tokens, the context */
    char dir[4200], path[4300];
    lmf_test_fresh_dir(dir, sizeof dir, "llama3-hf");
    lmf_test_ok(lmf_tok_save_hf_config(t, dir, 8192), "save tokenizer_config.json");
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    json_error_t err;
    json_t *cfg = json_load_file(path, 0, &err);
    assert_non_null(cfg);
    assert_string_equal(json_string_value(json_object_get(cfg, "tokenizer_class")), "PreTrainedTokenizerFast");
    assert_string_equal(json_string_value(json_object_get(cfg, "bos_token")), "<|begin_of_text|>");
    assert_string_equal(json_string_value(json_object_get(cfg, "eos_token")), "<|end_of_text|>");
    assert_int_equal(json_integer_value(json_object_get(cfg, "model_max_length")), 8192);
    json_decref(cfg);
    lmf_tok_free(t);
    free(file);
    free(extra);
    free(store);
}

static void expect_parse_error(const char *text, const char *pattern) {
    lmf_tokenizer *t = NULL;
    assert_int_equal(lmf_tok_parse_tiktoken(text, strlen(text), "bad.tiktoken", &t), LMF_ERR_FORMAT);
    assert_null(t);
    if (!strstr(lmf_last_error(), pattern))
        fail_msg("error '%s' does not say '%s'", lmf_last_error(), pattern);
}

static void test_tiktoken_errors(void **state) {
    (void)state;
    size_t len;
    static const char *const extra[] = {"ab"};
    char *file = tiktoken_text(extra, 1, &len);
    char *buf = malloc(len + 256);
    assert_non_null(buf);
    expect_parse_error("", "no tokens");
    expect_parse_error("YQ== 0\nYg== x\n", "line 2 is not");
    expect_parse_error("YQ 0\n", "line 1 is not");          /* base64 without padding */
    expect_parse_error("Y!== 0\n", "line 1 is not");        /* not base64 */
    expect_parse_error("YR== 0\n", "line 1 is not");        /* stray bits */
    expect_parse_error("YQ== 0\nYQ== 1\n", "appears twice");  /* repeated token */
    expect_parse_error("YQ== 0\nYg== 0\n", "two tokens");  /* repeated rank */
    expect_parse_error("YQ== 0\nYg== 2\n", "without gaps");
    expect_parse_error("YQ== 0\n", "byte 0x00");            /* not every byte */
    /* the whole file minus its line for byte 'A' (rank 65, "QQ==") */
    const char *a = strstr(file, "QQ== 65\n");
    assert_non_null(a);
    memcpy(buf, file, (size_t)(a - file));
    strcpy(buf + (a - file), a + 8);
    expect_parse_error(buf, "without gaps");
    /* the whole file parses, with \r\n line ends too */
    lmf_tokenizer *t = NULL;
    lmf_test_ok(lmf_tok_parse_tiktoken(file, len, "ok.tiktoken", &t), "parse");
    assert_int_equal(lmf_tok_num_merges(t), 1);
    lmf_tok_free(t);
    char *crlf = malloc(2 * len);
    assert_non_null(crlf);
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (file[i] == '\n') crlf[o++] = '\r';
        crlf[o++] = file[i];
    }
    lmf_test_ok(lmf_tok_parse_tiktoken(crlf, o, "crlf.tiktoken", &t), "parse with CRLF");
    assert_int_equal(lmf_tok_vocab_size(t), 257);
    lmf_tok_free(t);
    free(crlf);
    free(buf);
    free(file);
}

static int teardown_all(void **state) {
    lmf_tok_free(g_tok);
    g_tok = NULL;
    return lmf_test_tmpdir_teardown(state);
}

int main(void) {
    have_cl100k();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors_tiktoken_file), cmocka_unit_test(test_vectors_after_save),
        cmocka_unit_test(test_split_points),          cmocka_unit_test(test_merge_loops_agree),
        cmocka_unit_test(test_tiktoken_merge_order),  cmocka_unit_test(test_tiktoken_errors),
        cmocka_unit_test(test_llama3_specials),       cmocka_unit_test(test_join_table_changes_nothing),
        cmocka_unit_test(test_join_table_small),
    };
    return cmocka_run_group_tests(tests, lmf_test_tmpdir_setup, teardown_all);
}

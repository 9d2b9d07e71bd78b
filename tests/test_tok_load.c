/* Tests: vocabulary file loading, hand-computed ids, malformed files. */
/* Vocabulary files: a small hand-written tokenizer.json and GPT-2 pair give hand-computed ids;
 * malformed files (bad JSON, unknown merge tokens, duplicate ids, missing bytes, truncation,
 * unsupported pipelines) fail with a clear message, never a crash; lmf_tok_load finds files;
 * the public parsers from memory name their inputs as told. */
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
#include <jansson.h>

#include "lmforge/tokenizer.h"
#include "tokenizer/tok_internal.h"

#include "lib/test_util.h"

/* encoder.json text for the 256 byte tokens (id = byte value) plus extra "spelling": id pairs */
static char *encoder_json(const char *const *extra, const int *extra_ids, int n_extra) {
    json_t *o = json_object();
    for (int b = 0; b < 256; b++) {
        char c = (char)b, sp[8];
        lmf_tok_bytes_to_unicode(&c, 1, sp);
        json_object_set_new(o, sp, json_integer(b));
    }
    for (int k = 0; k < n_extra; k++) json_object_set_new(o, extra[k], json_integer(extra_ids[k]));
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s;
}

static const char *const EXTRA[] = {"he", "ll", "hell", "\xc4\xa0w", "<|endoftext|>"}; /* Ġw */
static const int EXTRA_IDS[] = {256, 257, 258, 259, 260};
static const char MERGES[] = "#version: 0.2\nh e\nl l\nhe ll\n\xc4\xa0 w\n";

static lmf_status parse_pair(const char *enc, const char *merges, lmf_tokenizer **t) {
    return lmf_tok_parse_gpt2_pair(enc, strlen(enc), "encoder.json", merges, strlen(merges), "vocab.bpe", t);
}

/* "hello world": pieces "hello", " world". hello: h+e (rank 0), l+l (1), he+ll (2) -> hell o.
 * " world": Ġ+w (rank 3) -> Ġw o r l d. */
static void check_small(const lmf_tokenizer *t) {
    static const uint32_t want[] = {258, 'o', 259, 'o', 'r', 'l', 'd', 260};
    uint32_t ids[16];
    size_t n;
    assert_int_equal(lmf_tok_encode(t, "hello world<|endoftext|>", 24, 1, ids, 16, &n), LMF_OK);
    assert_int_equal(n, 8);
    assert_memory_equal(ids, want, sizeof want);
    assert_int_equal(lmf_tok_vocab_size(t), 261);
    assert_int_equal(lmf_tok_eot(t), 260);
}

static void test_small_pair(void **state) {
    (void)state;
    char *enc = encoder_json(EXTRA, EXTRA_IDS, 5);
    lmf_tokenizer *t = NULL;
    if (parse_pair(enc, MERGES, &t) != LMF_OK) fail_msg("%s", lmf_last_error());
    check_small(t);
    lmf_tok_free(t);
    /* CRLF line ends, blank lines and no #version line are accepted */
    assert_int_equal(parse_pair(enc, "h e\r\nl l\r\n\r\nhe ll\r\n\xc4\xa0 w", &t), LMF_OK);
    check_small(t);
    lmf_tok_free(t);
    free(enc);
}

static void test_small_hf_json(void **state) {
    (void)state;
    json_t *vocab = json_object();
    for (int b = 0; b < 256; b++) {
        char c = (char)b, sp[8];
        lmf_tok_bytes_to_unicode(&c, 1, sp);
        json_object_set_new(vocab, sp, json_integer(b));
    }
    for (int k = 0; k < 4; k++) json_object_set_new(vocab, EXTRA[k], json_integer(EXTRA_IDS[k]));
    /* merges in both forms: "a b" strings and ["a", "b"] pairs */
    json_t *root = json_pack("{s:[{s:i, s:s, s:b}], s:n, s:{s:s, s:b}, s:{s:s}, s:{s:s, s:o, s:[s, [s, s], s, [s, s]]}}",
                             "added_tokens", "id", 260, "content", "<|endoftext|>", "special", 1,
                             "normalizer", "pre_tokenizer", "type", "ByteLevel", "add_prefix_space", 0,
                             "decoder", "type", "ByteLevel", "model", "type", "BPE", "vocab", vocab,
                             "merges", "h e", "l", "l", "he ll", "\xc4\xa0", "w");
    assert_non_null(root);
    char *s = json_dumps(root, 0);
    lmf_tokenizer *t = NULL;
    if (lmf_tok_parse_hf_json(s, strlen(s), "tokenizer.json", &t) != LMF_OK) fail_msg("%s", lmf_last_error());
    check_small(t);
    lmf_tok_free(t);
    free(s);

    /* unsupported pipelines are refused by name */
    struct { const char *key, *type, *msg; } bad[] = {
        {"normalizer", "NFC", "normalizer 'NFC'"},
        {"pre_tokenizer", "Metaspace", "pre_tokenizer 'Metaspace'"},
        {"decoder", "WordPiece", "decoder 'WordPiece'"},
    };
    for (int k = 0; k < 3; k++) {
        json_t *copy = json_deep_copy(root);
        json_object_set_new(copy, bad[k].key, json_pack("{s:s}", "type", bad[k].type));
        s = json_dumps(copy, 0);
        assert_int_equal(lmf_tok_parse_hf_json(s, strlen(s), "tokenizer.json", &t), LMF_ERR_FORMAT);
        assert_null(t);
        if (!strstr(lmf_last_error(), bad[k].msg)) fail_msg("message: %s", lmf_last_error());
        free(s);
        json_decref(copy);
    }
    json_t *copy = json_deep_copy(root);
    json_object_set_new(json_object_get(copy, "model"), "type", json_string("WordPiece"));
    s = json_dumps(copy, 0);
    assert_int_equal(lmf_tok_parse_hf_json(s, strlen(s), "tokenizer.json", &t), LMF_ERR_FORMAT);
    assert_non_null(strstr(lmf_last_error(), "WordPiece"));
    free(s);
    json_decref(copy);
    copy = json_deep_copy(root);
    json_object_set_new(json_object_get(copy, "pre_tokenizer"), "add_prefix_space", json_true());
    s = json_dumps(copy, 0);
    assert_int_equal(lmf_tok_parse_hf_json(s, strlen(s), "tokenizer.json", &t), LMF_ERR_FORMAT);
    assert_non_null(strstr(lmf_last_error(), "add_prefix_space"));
    free(s);
    json_decref(copy);
    json_decref(root);
}

/* parse and expect a format error whose message holds `needle` */
static void expect_pair_error(const char *enc, const char *merges, const char *needle) {
    lmf_tokenizer *t = (lmf_tokenizer *)1;
    lmf_status st = parse_pair(enc, merges, &t);
    if (st != LMF_ERR_FORMAT) fail_msg("expected a format error about '%s', got status %d", needle, st);
    assert_null(t);
    if (!strstr(lmf_last_error(), needle)) fail_msg("message '%s' lacks '%s'", lmf_last_error(), needle);
}

static void test_malformed_pair(void **state) {
    (void)state;
    char *enc = encoder_json(EXTRA, EXTRA_IDS, 5);
    expect_pair_error("{\"a\": 1,", MERGES, "not valid JSON");
    expect_pair_error("[1, 2]", MERGES, "JSON object");
    expect_pair_error("{\"a\": \"x\"}", MERGES, "not an integer");
    expect_pair_error("{\"a\": -1}", MERGES, "outside");
    expect_pair_error("{\"a\": 1, \"a\": 2}", MERGES, "not valid JSON"); /* duplicate key */
    expect_pair_error(enc, "#version: 0.2\nh e\nq z\n", "makes 'qz'");  /* qz is no token */
    expect_pair_error(enc, "h e\nh x\xc3\xa7\n", "line 2");              /* unknown token */
    expect_pair_error(enc, "h e\nhe\n", "line 2");                       /* one token */
    expect_pair_error(enc, "h e\nh  e\n", "line 2");                     /* two spaces */
    expect_pair_error(enc, "h e\nh e\n", "repeats");
    expect_pair_error(enc, "h e\nh <|endoftext|>\n", "line 2");
    /* duplicate ids */
    static const char *const dup[] = {"he", "xy"};
    static const int dup_ids[] = {256, 256};
    char *e2 = encoder_json(dup, dup_ids, 2);
    expect_pair_error(e2, "h e\n", "id 256 is given to two tokens");
    free(e2);
    /* a missing byte token */
    json_error_t err;
    json_t *o = json_loads(enc, 0, &err);
    json_object_del(o, "A");
    e2 = json_dumps(o, JSON_COMPACT);
    expect_pair_error(e2, "h e\n", "byte 0x41");
    free(e2);
    json_decref(o);
    /* ids far beyond the number of tokens */
    static const char *const far[] = {"he"};
    static const int far_ids[] = {1000000};
    e2 = encoder_json(far, far_ids, 1);
    expect_pair_error(e2, "h e\n", "contiguous");
    free(e2);
    /* truncated files: encoder.json cut anywhere, vocab.bpe cut inside a line */
    size_t el = strlen(enc);
    for (size_t cut = 0; cut < el; cut += el / 37 + 1) {
        char *part = strndup(enc, cut);
        lmf_tokenizer *t = NULL;
        assert_int_equal(parse_pair(part, MERGES, &t), LMF_ERR_FORMAT);
        assert_null(t);
        free(part);
    }
    expect_pair_error(enc, "#version: 0.2\nh e\nl l\nhe l", "not in");
    free(enc);
}

/* GPT-2's own vocab.bpe cut short: too many tokens are made by no merge */
static void test_truncated_gpt2(void **state) {
    (void)state;
    const char *sd = getenv("LMF_SHARED_DIR");
    char p[4096], q[4096];
    snprintf(p, sizeof p, "%s/gpt2/encoder.json", sd ? sd : ".");
    snprintf(q, sizeof q, "%s/gpt2/vocab.bpe", sd ? sd : ".");
    FILE *fe = fopen(p, "rb"), *fm = fopen(q, "rb");
    if (!sd || !fe || !fm) {
        if (fe) fclose(fe);
        if (fm) fclose(fm);
        fprintf(stderr, "SKIP: GPT-2 files not found ($LMF_SHARED_DIR/gpt2)\n");
        skip();
    }
    static char enc[1 << 21], mer[1 << 20];
    size_t el = fread(enc, 1, sizeof enc - 1, fe), ml = fread(mer, 1, sizeof mer - 1, fm);
    fclose(fe);
    fclose(fm);
    const char *half = memchr(mer + ml / 2, '\n', ml / 2);
    lmf_tokenizer *t = NULL;
    assert_int_equal(lmf_tok_parse_gpt2_pair(enc, el, "encoder.json", mer, (size_t)(half - mer + 1),
                                             "vocab.bpe", &t), LMF_ERR_FORMAT);
    assert_non_null(strstr(lmf_last_error(), "truncated"));
    assert_int_equal(lmf_tok_parse_gpt2_pair(enc, el / 2, "encoder.json", mer, ml, "vocab.bpe", &t),
                     LMF_ERR_FORMAT);
    assert_int_equal(lmf_tok_parse_gpt2_pair(enc, el, "encoder.json", mer, ml, "vocab.bpe", &t), LMF_OK);
    assert_int_equal(lmf_tok_vocab_size(t), 50257);
    lmf_tok_free(t);
}

/* The public parsers from memory name their inputs as told, and leave no tokenizer on failure. */
static void test_public_parsers_name_inputs(void **state) {
    (void)state;
    char *enc = encoder_json(EXTRA, EXTRA_IDS, 5);
    lmf_tokenizer *t = (lmf_tokenizer *)&t; /* overwritten with NULL on failure */
    assert_int_equal(lmf_tok_parse_gpt2_pair("{\"a\": 1,", 8, "mem:enc", MERGES, strlen(MERGES),
                                             "mem:merges", &t), LMF_ERR_FORMAT);
    assert_null(t);
    assert_non_null(strstr(lmf_last_error(), "mem:enc: not valid JSON"));
    static const char bad_merges[] = "h e\nh \xc3\xa7x\n";
    assert_int_equal(lmf_tok_parse_gpt2_pair(enc, strlen(enc), "mem:enc", bad_merges,
                                             strlen(bad_merges), "mem:merges", &t), LMF_ERR_FORMAT);
    assert_null(t);
    assert_non_null(strstr(lmf_last_error(), "mem:merges: line 2"));
    assert_non_null(strstr(lmf_last_error(), "is not in mem:enc"));
    /* the buffers need no NUL: the lengths bound them */
    size_t el = strlen(enc), ml = strlen(MERGES);
    char *e2 = malloc(el), *m2 = malloc(ml);
    memcpy(e2, enc, el);
    memcpy(m2, MERGES, ml);
    assert_int_equal(lmf_tok_parse_gpt2_pair(e2, el, "e", m2, ml, "m", &t), LMF_OK);
    check_small(t);
    lmf_tok_free(t);
    free(e2);
    free(m2);
    /* tokenizer.json from memory: the same vocabulary, saved by lmf_tok_save, read back */
    assert_int_equal(parse_pair(enc, MERGES, &t), LMF_OK);
    char dir[512], p[600];
    lmf_test_fresh_dir(dir, sizeof dir, "hf_json");
    assert_int_equal(lmf_tok_save(t, dir), LMF_OK);
    lmf_tok_free(t);
    snprintf(p, sizeof p, "%s/tokenizer.json", dir);
    FILE *f = fopen(p, "rb");
    assert_non_null(f);
    static char json[1 << 16];
    size_t jl = fread(json, 1, sizeof json, f);
    fclose(f);
    assert_int_equal(lmf_tok_parse_hf_json(json, jl, "mem:tokenizer", &t), LMF_OK);
    check_small(t);
    lmf_tok_free(t);
    t = (lmf_tokenizer *)&t;
    assert_int_equal(lmf_tok_parse_hf_json(json, jl / 2, "mem:tokenizer", &t), LMF_ERR_FORMAT);
    assert_null(t);
    assert_non_null(strstr(lmf_last_error(), "mem:tokenizer: not valid JSON"));
    static const char wp[] = "{\"model\": {\"type\": \"WordPiece\"}}";
    assert_int_equal(lmf_tok_parse_hf_json(wp, sizeof wp - 1, "mem:wp", &t), LMF_ERR_FORMAT);
    assert_non_null(strstr(lmf_last_error(), "mem:wp: model type 'WordPiece'"));
    free(enc);
}

static void test_load_paths(void **state) {
    (void)state;
    char dir[512];
    lmf_test_fresh_dir(dir, sizeof dir, "load_paths");
    char p[700], q[700];
    lmf_tokenizer *t = NULL;
    assert_int_equal(lmf_tok_load(dir, &t), LMF_ERR_IO); /* empty directory */
    assert_non_null(strstr(lmf_last_error(), "no tokenizer files"));
    snprintf(p, sizeof p, "%s/nope", dir);
    assert_int_equal(lmf_tok_load(p, &t), LMF_ERR_IO);
    assert_null(t);
    /* HF's names for the pair */
    char *enc = encoder_json(EXTRA, EXTRA_IDS, 5);
    snprintf(p, sizeof p, "%s/vocab.json", dir);
    snprintf(q, sizeof q, "%s/merges.txt", dir);
    lmf_test_write_text(p, enc);
    assert_int_equal(lmf_tok_load(dir, &t), LMF_ERR_IO); /* merges.txt missing */
    assert_non_null(strstr(lmf_last_error(), "merges.txt"));
    lmf_test_write_text(q, MERGES);
    assert_int_equal(lmf_tok_load(dir, &t), LMF_OK);
    check_small(t);
    lmf_tok_free(t);
    assert_int_equal(lmf_tok_load(q, &t), LMF_OK); /* a path to one file of the pair */
    check_small(t);
    /* saved and reloaded (tokenizer.json is preferred in a directory) */
    char sub[600];
    snprintf(sub, sizeof sub, "%s/out/deeper", dir);
    assert_int_equal(lmf_tok_save(t, sub), LMF_OK);
    lmf_tok_free(t);
    assert_int_equal(lmf_tok_load(sub, &t), LMF_OK);
    check_small(t);
    lmf_tok_free(t);
    /* a corrupt tokenizer.json in the directory is reported, not skipped */
    snprintf(p, sizeof p, "%s/tokenizer.json", sub);
    lmf_test_write_text(p, "{\"model\": ");
    assert_int_equal(lmf_tok_load(sub, &t), LMF_ERR_FORMAT);
    assert_non_null(strstr(lmf_last_error(), "tokenizer.json"));
    free(enc);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_small_pair),     cmocka_unit_test(test_small_hf_json),
        cmocka_unit_test(test_malformed_pair), cmocka_unit_test(test_truncated_gpt2),
        cmocka_unit_test(test_load_paths),     cmocka_unit_test(test_public_parsers_name_inputs),
    };
    return cmocka_run_group_tests(tests, lmf_test_tmpdir_setup, lmf_test_tmpdir_teardown);
}

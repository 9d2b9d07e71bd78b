/* Tests: Llama 3 / 3.1 tokenizer.json files: their added tokens and their post-processor's template. */
/* A small tokenizer.json written here in Llama 3's shape (cl100k's Split, ByteLevel, BPE with
 * ignore_merges, 256 byte tokens, a few merges, Llama 3.1's or 3.0's first eleven added tokens,
 * Llama 3's post_processor: Sequence [ByteLevel, TemplateProcessing with <|begin_of_text|>]).
 * The expected ids are derived by hand from the file's merges in the comments below. With
 * --write-fixture PATH it writes the Llama 3.1 file for tests/test_tok_cli.sh. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "lmforge/tokenizer.h"
#include "tokenizer/tok_internal.h"

#include "lib/test_util.h"

/* ids 256..263: merged tokens (byte-level spelling; \xc4\xa0 is the space, "Ġ") */
static const char *const MERGED[] = {"He", "ll", "Hell", "\xc4\xa0w", "or", "\xc4\xa0wor", "ld",
                                     "\xc4\xa0world"};
static const char *const MERGES[] = {"H e", "l l", "He ll", "\xc4\xa0 w", "o r", "\xc4\xa0w or",
                                     "l d", "\xc4\xa0wor ld"};
/* ids 264..274: the first eleven of Llama 3.1's 256 (its 128000..128010) */
static const char *const ADDED_31[] = {
    "<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>",
    "<|reserved_special_token_1|>", "<|finetune_right_pad_id|>", "<|reserved_special_token_2|>",
    "<|start_header_id|>", "<|end_header_id|>", "<|eom_id|>", "<|eot_id|>", "<|python_tag|>"};
/* Llama 3.0's names of the same ids */
static const char *const ADDED_30[] = {
    "<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>",
    "<|reserved_special_token_1|>", "<|reserved_special_token_2|>", "<|reserved_special_token_3|>",
    "<|start_header_id|>", "<|end_header_id|>", "<|reserved_special_token_4|>", "<|eot_id|>",
    "<|reserved_special_token_5|>"};
enum { BOS = 264, EOS = 265, EOM = 272, EOT = 273, PYTHON_TAG = 274, VOCAB = 275 };

/* Llama 3's post_processor, as its tokenizer.json has it */
static const char LLAMA3_POST[] =
    "{\"type\": \"Sequence\", \"processors\": ["
    "{\"type\": \"ByteLevel\", \"add_prefix_space\": true, \"trim_offsets\": false, \"use_regex\": true},"
    "{\"type\": \"TemplateProcessing\","
    " \"single\": [{\"SpecialToken\": {\"id\": \"<|begin_of_text|>\", \"type_id\": 0}},"
    "            {\"Sequence\": {\"id\": \"A\", \"type_id\": 0}}],"
    " \"pair\": [{\"SpecialToken\": {\"id\": \"<|begin_of_text|>\", \"type_id\": 0}},"
    "          {\"Sequence\": {\"id\": \"A\", \"type_id\": 0}},"
    "          {\"SpecialToken\": {\"id\": \"<|begin_of_text|>\", \"type_id\": 1}},"
    "          {\"Sequence\": {\"id\": \"B\", \"type_id\": 1}}],"
    " \"special_tokens\": {\"<|begin_of_text|>\": {\"id\": \"<|begin_of_text|>\", \"ids\": [264],"
    "                      \"tokens\": [\"<|begin_of_text|>\"]}}}]}";

/* the tokenizer.json text with the given added tokens and post_processor (JSON text or NULL) */
static char *llama_json(const char *const *added, const char *post) {
    json_t *vocab = json_object(), *merges = json_array(), *add = json_array();
    for (int b = 0; b < 256; b++) {
        char c = (char)b, sp[8];
        lmf_tok_bytes_to_unicode(&c, 1, sp);
        json_object_set_new(vocab, sp, json_integer(b));
    }
    for (int k = 0; k < 8; k++) {
        json_object_set_new(vocab, MERGED[k], json_integer(256 + k));
        json_array_append_new(merges, json_string(MERGES[k]));
    }
    for (int k = 0; k < 11; k++)
        json_array_append_new(add, json_pack("{s:i, s:s, s:b, s:b, s:b, s:b, s:b}", "id", 264 + k,
                                             "content", added[k], "single_word", 0, "lstrip", 0,
                                             "rstrip", 0, "normalized", 0, "special", 1));
    json_t *pp = post ? json_loads(post, 0, NULL) : json_null();
    assert_non_null(pp);
    json_t *root = json_pack(
        "{s:s, s:n, s:n, s:o, s:n, s:{s:s, s:[{s:s, s:{s:s}, s:s, s:b}, {s:s, s:b, s:b, s:b}]},"
        " s:o, s:{s:s, s:b, s:b, s:b},"
        " s:{s:s, s:n, s:n, s:n, s:n, s:b, s:b, s:b, s:o, s:o}}",
        "version", "1.0", "truncation", "padding", "added_tokens", add, "normalizer",
        "pre_tokenizer", "type", "Sequence", "pretokenizers", "type", "Split", "pattern", "Regex",
        lmf_tok_cl100k_regex, "behavior", "Isolated", "invert", 0, "type", "ByteLevel",
        "add_prefix_space", 0, "trim_offsets", 1, "use_regex", 0,
        "post_processor", pp, "decoder", "type", "ByteLevel", "add_prefix_space", 1,
        "trim_offsets", 1, "use_regex", 1,
        "model", "type", "BPE", "dropout", "unk_token", "continuing_subword_prefix",
        "end_of_word_suffix", "fuse_unk", 0, "byte_fallback", 0, "ignore_merges", 1, "vocab",
        vocab, "merges", merges);
    assert_non_null(root);
    char *s = json_dumps(root, JSON_INDENT(1));
    json_decref(root);
    return s;
}

static lmf_tokenizer *parse(const char *const *added, const char *post) {
    char *s = llama_json(added, post);
    lmf_tokenizer *t = NULL;
    if (lmf_tok_parse_hf_json(s, strlen(s), "tokenizer.json", &t) != LMF_OK)
        fail_msg("%s", lmf_last_error());
    free(s);
    return t;
}

static void expect_ids(const uint32_t *got, size_t n, const uint32_t *want, size_t n_want) {
    if (n != n_want) fail_msg("%zu ids, expected %zu", n, n_want);
    for (size_t i = 0; i < n; i++)
        if (got[i] != want[i]) fail_msg("id %zu is %u, expected %u", i, got[i], want[i]);
}

/* "Hello world!": cl100k's pattern cuts "Hello", " world", "!". Hello: H e -> He (merge 0),
 * l l -> ll (1), He ll -> Hell (2), then o: [258, 'o']. " world" is the token Ġworld (263;
 * ignore_merges, and the merges 3..7 reach it too). "!" is byte 33. */
static const uint32_t HELLO[] = {258, 'o', 263, '!'};

/* Llama 3.1's renamed reserved tokens load as special tokens, and Llama 3.0's names too */
static void test_llama31_added_tokens(void **state) {
    (void)state;
    for (int v = 0; v < 2; v++) {
        lmf_tokenizer *t = parse(v ? ADDED_30 : ADDED_31, LLAMA3_POST);
        assert_int_equal(lmf_tok_vocab_size(t), VOCAB);
        assert_int_equal(lmf_tok_eot(t), EOS);
        assert_int_equal(lmf_tok_bos(t), BOS); /* config.json's bos_token_id on export */
        assert_int_equal(lmf_tok_get_pattern(t), LMF_TOK_PATTERN_CL100K);
        for (uint32_t id = BOS; id < VOCAB; id++) assert_true(lmf_tok_is_special(t, id));
        const char *const *names = v ? ADDED_30 : ADDED_31;
        char text[128];
        /* <|python_tag|>Hello<|eom_id|> (3.1), <|reserved_special_token_5|>Hello<|reserved_special_token_4|> (3.0) */
        int len = snprintf(text, sizeof text, "%sHello%s", names[10], names[8]);
        uint32_t ids[64];
        size_t n = 0;
        lmf_test_ok(lmf_tok_encode(t, text, (size_t)len, 1, ids, 64, &n), "encode");
        const uint32_t want[] = {PYTHON_TAG, 258, 'o', EOM};
        expect_ids(ids, n, want, 4);
        size_t bl = 0;
        const char *b = lmf_tok_token_bytes(t, EOM, &bl);
        assert_int_equal(bl, strlen(names[8]));
        assert_memory_equal(b, names[8], bl);
        /* decoding gives the renamed token's text */
        char out[128];
        size_t no = 0;
        lmf_test_ok(lmf_tok_decode(t, ids, n, out, sizeof out, &no), "decode");
        assert_int_equal(no, (size_t)len);
        assert_memory_equal(out, text, no);
        lmf_tok_free(t);
    }
}

/* Llama 3's template: <|begin_of_text|> before the text's ids, as transformers' tokenizer(text)
 * gives; lmf_tok_encode alone adds nothing */
static void test_template_begin_of_text(void **state) {
    (void)state;
    lmf_tokenizer *t = parse(ADDED_31, LLAMA3_POST);
    const uint32_t *pre, *suf;
    size_t np, ns;
    lmf_tok_template(t, &pre, &np, &suf, &ns);
    assert_int_equal(np, 1);
    assert_int_equal(pre[0], BOS);
    assert_int_equal(ns, 0);
    uint32_t ids[64];
    size_t n = 0;
    lmf_test_ok(lmf_tok_encode(t, "Hello world!", 12, 0, ids, 64, &n), "encode");
    expect_ids(ids, n, HELLO, 4);
    lmf_test_ok(lmf_tok_encode_template(t, "Hello world!", 12, 0, ids, 64, &n), "encode_template");
    const uint32_t want[] = {BOS, 258, 'o', 263, '!'};
    expect_ids(ids, n, want, 5);
    /* an empty text is the template alone */
    lmf_test_ok(lmf_tok_encode_template(t, "", 0, 0, ids, 64, &n), "empty");
    expect_ids(ids, n, want, 1);
    /* too small: the count needed */
    assert_int_equal(lmf_tok_encode_template(t, "Hello world!", 12, 0, ids, 4, &n), LMF_ERR_ARG);
    assert_int_equal(n, 5);
    assert_int_equal(lmf_tok_encode_template(t, "Hello world!", 12, 0, ids, 1, &n), LMF_ERR_ARG);
    assert_int_equal(n, 5);
    lmf_tok_free(t);
}

/* A template with tokens on both sides, straight (no Sequence): prefix and suffix in order */
static void test_template_both_sides(void **state) {
    (void)state;
    static const char post[] =
        "{\"type\": \"TemplateProcessing\", \"single\": ["
        "{\"SpecialToken\": {\"id\": \"<|begin_of_text|>\", \"type_id\": 0}},"
        "{\"SpecialToken\": {\"id\": \"<|start_header_id|>\", \"type_id\": 0}},"
        "{\"Sequence\": {\"id\": \"A\", \"type_id\": 0}},"
        "{\"SpecialToken\": {\"id\": \"<|eot_id|>\", \"type_id\": 0}}], \"special_tokens\": {"
        "\"<|begin_of_text|>\": {\"id\": \"<|begin_of_text|>\", \"ids\": [264], \"tokens\": [\"<|begin_of_text|>\"]},"
        "\"<|start_header_id|>\": {\"id\": \"<|start_header_id|>\", \"ids\": [270], \"tokens\": [\"<|start_header_id|>\"]},"
        "\"<|eot_id|>\": {\"id\": \"<|eot_id|>\", \"ids\": [273], \"tokens\": [\"<|eot_id|>\"]}}}";
    lmf_tokenizer *t = parse(ADDED_31, post);
    uint32_t ids[64];
    size_t n = 0;
    lmf_test_ok(lmf_tok_encode_template(t, "Hello world!", 12, 0, ids, 64, &n), "encode_template");
    const uint32_t want[] = {BOS, 270, 258, 'o', 263, '!', EOT};
    expect_ids(ids, n, want, 7);
    lmf_tok_free(t);
}

/* lmf_tok_save writes the template back (as Llama 3's Sequence); the file read again gives the
 * same ids. Without a template the post_processor stays ByteLevel. */
static void test_template_saved(void **state) {
    (void)state;
    lmf_tokenizer *t = parse(ADDED_31, LLAMA3_POST), *u = NULL;
    char dir[4096], p[4200];
    lmf_test_fresh_dir(dir, sizeof dir, "saved");
    lmf_test_ok(lmf_tok_save(t, dir), "save");
    snprintf(p, sizeof p, "%s/tokenizer.json", dir);
    lmf_test_ok(lmf_tok_load(p, &u), "reload");
    uint32_t ids[64];
    size_t n = 0;
    lmf_test_ok(lmf_tok_encode_template(u, "Hello world!", 12, 0, ids, 64, &n), "encode_template");
    const uint32_t want[] = {BOS, 258, 'o', 263, '!'};
    expect_ids(ids, n, want, 5);
    json_t *root = json_load_file(p, 0, NULL);
    assert_non_null(root);
    json_t *procs = json_object_get(json_object_get(root, "post_processor"), "processors");
    assert_int_equal(json_array_size(procs), 2);
    json_t *tp = json_array_get(procs, 1);
    assert_string_equal(json_string_value(json_object_get(tp, "type")), "TemplateProcessing");
    json_t *ix = json_object_get(json_object_get(json_object_get(tp, "special_tokens"),
                                                 "<|begin_of_text|>"), "ids");
    assert_int_equal(json_integer_value(json_array_get(ix, 0)), BOS);
    assert_int_equal(json_array_size(json_object_get(tp, "pair")), 4);
    json_decref(root);
    lmf_tok_free(u);
    lmf_tok_free(t);
    /* no template: ByteLevel, and nothing added */
    t = parse(ADDED_31, NULL);
    const uint32_t *pre, *suf;
    size_t np, ns;
    lmf_tok_template(t, &pre, &np, &suf, &ns);
    assert_int_equal(np + ns, 0);
    lmf_test_ok(lmf_tok_encode_template(t, "Hello world!", 12, 0, ids, 64, &n), "no template");
    expect_ids(ids, n, HELLO, 4);
    lmf_test_fresh_dir(dir, sizeof dir, "plain");
    lmf_test_ok(lmf_tok_save(t, dir), "save plain");
    snprintf(p, sizeof p, "%s/tokenizer.json", dir);
    root = json_load_file(p, 0, NULL);
    assert_non_null(root);
    assert_string_equal(json_string_value(json_object_get(json_object_get(root, "post_processor"),
                                                          "type")), "ByteLevel");
    json_decref(root);
    lmf_tok_free(t);
}

/* post-processors lmforge does not apply are refused by name, never ignored */
static void test_post_processor_refused(void **state) {
    (void)state;
    static const struct { const char *post, *msg; } bad[] = {
        {"{\"type\": \"RobertaProcessing\", \"sep\": [\"</s>\", 2], \"cls\": [\"<s>\", 0]}",
         "post_processor 'RobertaProcessing' is not supported"},
        {"{\"type\": \"TemplateProcessing\", \"single\": [{\"SpecialToken\": {\"id\": \"<s>\", \"type_id\": 0}},"
         " {\"Sequence\": {\"id\": \"A\", \"type_id\": 0}}], \"special_tokens\": {}}",
         "special token '<s>', which its special_tokens do not give ids"},
        {"{\"type\": \"TemplateProcessing\", \"single\": [{\"SpecialToken\": {\"id\": \"<s>\", \"type_id\": 0}},"
         " {\"Sequence\": {\"id\": \"A\", \"type_id\": 0}}], \"special_tokens\": {\"<s>\": {\"id\": \"<s>\","
         " \"ids\": [9999], \"tokens\": [\"<s>\"]}}}",
         "has id 9999, which is not in the vocabulary"},
        {"{\"type\": \"TemplateProcessing\", \"single\": [{\"Sequence\": {\"id\": \"A\", \"type_id\": 0}},"
         " {\"Sequence\": {\"id\": \"A\", \"type_id\": 0}}], \"special_tokens\": {}}",
         "must hold the sequence A once"},
        {"{\"type\": \"Sequence\", \"processors\": [{\"type\": \"BertProcessing\"}]}",
         "post_processor Sequence holds 'BertProcessing'"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        char *s = llama_json(ADDED_31, bad[k].post);
        lmf_tokenizer *t = NULL;
        assert_int_equal(lmf_tok_parse_hf_json(s, strlen(s), "tokenizer.json", &t), LMF_ERR_FORMAT);
        assert_null(t);
        if (!strstr(lmf_last_error(), bad[k].msg) || !strstr(lmf_last_error(), "tokenizer.json"))
            fail_msg("case %zu, message: %s", k, lmf_last_error());
        free(s);
    }
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "--write-fixture") == 0) {
        char *s = llama_json(ADDED_31, LLAMA3_POST);
        FILE *f = fopen(argv[2], "w");
        int ok = f && fputs(s, f) >= 0;
        if (f && fclose(f) != 0) ok = 0;
        free(s);
        return ok ? 0 : 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_llama31_added_tokens),
        cmocka_unit_test(test_template_begin_of_text),
        cmocka_unit_test(test_template_both_sides),
        cmocka_unit_test(test_template_saved),
        cmocka_unit_test(test_post_processor_refused),
    };
    return cmocka_run_group_tests(tests, lmf_test_tmpdir_setup, lmf_test_tmpdir_teardown);
}

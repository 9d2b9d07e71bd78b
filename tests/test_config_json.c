/* config.json tests: save/load round trip, the saved keys, real Hugging Face files, bad values. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lmforge/config.h"
#include "lmforge/formats.h"
#include "lmforge/fsutil.h"

#include "lib/test_util.h"

static char path[512];

static int setup(void **state) {
    if (lmf_test_tmpdir_setup(state) != 0) return -1;
    lmf_test_path(path, sizeof path, "config.json");
    return 0;
}

static void put(const char *text) { lmf_test_write_text(path, text); }

static void test_roundtrip_and_keys(void **state) {
    const lmf_gpt_config c = {3, 4, 64, 128, 1000};
    assert_int_equal(lmf_config_write(path, &c, -1), LMF_OK);
    lmf_gpt_config d;
    memset(&d, 0xff, sizeof d);
    assert_int_equal(lmf_config_read(path, &d), LMF_OK);
    assert_memory_equal(&c, &d, sizeof c);

    /* the saved file, read with jansson directly */
    json_error_t e;
    json_t *j = json_load_file(path, 0, &e);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_array_get(json_object_get(j, "architectures"), 0)),
                        "GPT2LMHeadModel");
    assert_int_equal(json_array_size(json_object_get(j, "architectures")), 1);
    assert_string_equal(json_string_value(json_object_get(j, "model_type")), "gpt2");
    static const struct {
        const char *k;
        int v;
    } ints[] = {{"n_layer", 3}, {"n_head", 4}, {"n_embd", 64}, {"n_positions", 128},
                {"n_ctx", 128}, {"vocab_size", 1000}, {"bos_token_id", 999}, {"eos_token_id", 999}};
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        json_t *v = json_object_get(j, ints[i].k);
        assert_true(json_is_integer(v));
        assert_int_equal(json_integer_value(v), ints[i].v);
    }
    assert_string_equal(json_string_value(json_object_get(j, "activation_function")), "gelu_new");
    assert_true(json_real_value(json_object_get(j, "layer_norm_epsilon")) == 1e-5);
    assert_true(json_real_value(json_object_get(j, "initializer_range")) == 0.02);
    static const char *const zero[] = {"resid_pdrop", "embd_pdrop", "attn_pdrop"};
    for (int i = 0; i < 3; i++) {
        json_t *v = json_object_get(j, zero[i]);
        assert_true(json_is_real(v) && json_real_value(v) == 0.0);
    }
    assert_true(json_is_true(json_object_get(j, "tie_word_embeddings")));
    assert_string_equal(json_string_value(json_object_get(j, "torch_dtype")), "float32");
    assert_true(json_is_null(json_object_get(j, "n_inner")));
    assert_true(json_is_true(json_object_get(j, "scale_attn_weights")));
    assert_true(json_is_true(json_object_get(j, "use_cache")));
    assert_int_equal(json_object_size(j), 21);
    json_decref(j);
    char *txt = NULL;
    size_t len = 0;
    assert_int_equal(lmf_read_file(path, &txt, &len, 1 << 16), LMF_OK);
    assert_null(strstr(txt, "0000000")); /* reals in their short form: 1e-5, 0.02 */
    assert_non_null(strstr(txt, "\"initializer_range\": 0.02,"));
    assert_int_equal(txt[len - 1], '\n');
    free(txt);

    /* an end-of-text id: bos and eos */
    assert_int_equal(lmf_config_write(path, &c, 7), LMF_OK);
    j = json_load_file(path, 0, &e);
    assert_non_null(j);
    assert_int_equal(json_integer_value(json_object_get(j, "bos_token_id")), 7);
    assert_int_equal(json_integer_value(json_object_get(j, "eos_token_id")), 7);
    json_decref(j);

    lmf_gpt_config bad = {3, 4, 65, 128, 1000}; /* 65 % 4 != 0 */
    assert_int_equal(lmf_config_write(path, &bad, -1), LMF_ERR_ARG);
}

/* the config.json published with the gpt2 checkpoint on the Hugging Face hub */
static const char *hf_gpt2 =
    "{\n  \"activation_function\": \"gelu_new\",\n  \"architectures\": [\"GPT2LMHeadModel\"],\n"
    "  \"attn_pdrop\": 0.1,\n  \"bos_token_id\": 50256,\n  \"embd_pdrop\": 0.1,\n"
    "  \"eos_token_id\": 50256,\n  \"initializer_range\": 0.02,\n  \"layer_norm_epsilon\": 1e-05,\n"
    "  \"model_type\": \"gpt2\",\n  \"n_ctx\": 1024,\n  \"n_embd\": 768,\n  \"n_head\": 12,\n"
    "  \"n_layer\": 12,\n  \"n_positions\": 1024,\n  \"resid_pdrop\": 0.1,\n"
    "  \"summary_activation\": null,\n  \"summary_first_dropout\": 0.1,\n"
    "  \"summary_proj_to_labels\": true,\n  \"summary_type\": \"cls_index\",\n"
    "  \"summary_use_proj\": true,\n  \"task_specific_params\": {\"text-generation\": "
    "{\"do_sample\": true, \"max_length\": 50}},\n  \"vocab_size\": 50257\n}\n";

static void test_hf_files(void **state) {
    lmf_gpt_config c;
    put(hf_gpt2);
    assert_int_equal(lmf_config_read(path, &c), LMF_OK);
    assert_int_equal(c.n_layer, 12);
    assert_int_equal(c.n_head, 12);
    assert_int_equal(c.n_embd, 768);
    assert_int_equal(c.n_positions, 1024);
    assert_int_equal(c.vocab_size, 50257);

    put("{\"n_ctx\": 512, \"n_embd\": 64, \"n_head\": 4, \"n_layer\": 2, \"vocab_size\": 100,"
        " \"activation_function\": \"gelu_pytorch_tanh\", \"tie_word_embeddings\": true}");
    assert_int_equal(lmf_config_read(path, &c), LMF_OK);
    assert_int_equal(c.n_positions, 512); /* from n_ctx */
    assert_int_equal(c.n_layer, 2);
    assert_int_equal(c.vocab_size, 100);

    put("{\"n_ctx\": 512, \"n_positions\": 256}");
    assert_int_equal(lmf_config_read(path, &c), LMF_OK);
    assert_int_equal(c.n_positions, 256); /* n_positions wins */

    /* transformers' attribute_map names, agreeing with the GPT-2 names where both are given */
    put("{\"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"hidden_size\": 64, "
        "\"n_embd\": 64, \"max_position_embeddings\": 32, \"vocab_size\": 100, \"n_inner\": 256}");
    assert_int_equal(lmf_config_read(path, &c), LMF_OK);
    assert_int_equal(c.n_layer, 2);
    assert_int_equal(c.n_head, 4);
    assert_int_equal(c.n_embd, 64);
    assert_int_equal(c.n_positions, 32);

    put("{}"); /* GPT2Config() defaults */
    assert_int_equal(lmf_config_read(path, &c), LMF_OK);
    assert_int_equal(c.n_layer, 12);
    assert_int_equal(c.n_head, 12);
    assert_int_equal(c.n_embd, 768);
    assert_int_equal(c.n_positions, 1024);
    assert_int_equal(c.vocab_size, 50257);
}

/* Hugging Face LlamaConfig: the fields, transformers' defaults for absent ones, and a round
 * trip through the writer */
static void test_llama_config(void **state) {
    (void)state;
    lmf_gpt_config c;
    /* meta-llama/Meta-Llama-3-8B's config.json, the keys that set the arithmetic */
    put("{\"architectures\": [\"LlamaForCausalLM\"], \"model_type\": \"llama\", "
        "\"hidden_size\": 4096, \"intermediate_size\": 14336, \"num_hidden_layers\": 32, "
        "\"num_attention_heads\": 32, \"num_key_value_heads\": 8, "
        "\"max_position_embeddings\": 8192, \"rms_norm_eps\": 1e-05, \"rope_theta\": 500000.0, "
        "\"tie_word_embeddings\": false, \"vocab_size\": 128256, \"hidden_act\": \"silu\", "
        "\"rope_scaling\": null, \"attention_bias\": false, \"torch_dtype\": \"bfloat16\"}");
    assert_int_equal(lmf_config_read(path, &c), LMF_OK);
    lmf_gpt_config want;
    assert_int_equal(lmf_config_preset("llama3-8b", &want), LMF_OK);
    assert_memory_equal(&c, &want, sizeof c);
    /* written and read back: the same configuration */
    assert_int_equal(lmf_config_write(path, &c, 128001), LMF_OK);
    lmf_gpt_config back;
    assert_int_equal(lmf_config_read(path, &back), LMF_OK);
    assert_memory_equal(&back, &c, sizeof c);
    /* Llama 3's two ids: bos <|begin_of_text|> 128000, eos <|end_of_text|> 128001 */
    assert_int_equal(lmf_config_write_ids(path, &c, 128000, 128001, LMF_BF16), LMF_OK);
    json_error_t jerr;
    json_t *ids = json_load_file(path, 0, &jerr);
    assert_non_null(ids);
    assert_int_equal(json_integer_value(json_object_get(ids, "bos_token_id")), 128000);
    assert_int_equal(json_integer_value(json_object_get(ids, "eos_token_id")), 128001);
    assert_string_equal(json_string_value(json_object_get(ids, "torch_dtype")), "bfloat16");
    json_decref(ids);
    /* LlamaConfig() defaults: 32 layers of 4096, 32 heads (key/value heads = heads), 11008,
     * 2048 positions, vocabulary 32000, eps 1e-6, theta 10000, untied */
    put("{\"model_type\": \"llama\"}");
    assert_int_equal(lmf_config_read(path, &c), LMF_OK);
    assert_int_equal(c.family, LMF_FAMILY_LLAMA);
    assert_int_equal(c.n_layer, 32);
    assert_int_equal(c.n_kv_head, 32);
    assert_int_equal(c.ffn_hidden, 11008);
    assert_int_equal(c.n_positions, 2048);
    assert_int_equal(c.vocab_size, 32000);
    assert_true(c.rms_norm_eps == 1e-6f && c.rope_theta == 10000.0f && c.tie_embeddings == 0);
    /* a GPT-2 file stays GPT-2, its Llama fields zero */
    put("{\"n_layer\": 2, \"n_head\": 2, \"n_embd\": 8}");
    assert_int_equal(lmf_config_read(path, &c), LMF_OK);
    assert_int_equal(c.family, LMF_FAMILY_GPT2);
    assert_int_equal(c.n_kv_head, 0);
}

static void expect_bad(const char *text, lmf_status code, const char *needle) {
    put(text);
    lmf_gpt_config c = {1, 1, 1, 1, 1}, before = c;
    lmf_status s = lmf_config_read(path, &c);
    if (s != code) fail_msg("%s: got %d (%s), want %d", text, s, lmf_last_error(), code);
    const char *m = lmf_last_error();
    if (!strstr(m, path)) fail_msg("message '%s' does not name the file", m);
    if (needle && !strstr(m, needle)) fail_msg("message '%s' lacks '%s'", m, needle);
    assert_memory_equal(&c, &before, sizeof c); /* untouched on failure */
}

static void test_bad_values(void **state) {
    expect_bad("{\"n_layer\": \"12\"}", LMF_ERR_FORMAT, "n_layer");
    expect_bad("{\"n_layer\": -1}", LMF_ERR_FORMAT, "non-negative");
    expect_bad("{\"n_head\": 1.5}", LMF_ERR_FORMAT, "n_head");
    expect_bad("{\"n_embd\": true}", LMF_ERR_FORMAT, "n_embd");
    expect_bad("{\"vocab_size\": null}", LMF_ERR_FORMAT, "vocab_size");
    expect_bad("{\"n_positions\": 99999999999}", LMF_ERR_FORMAT, "n_positions");
    expect_bad("{\"n_ctx\": -5}", LMF_ERR_FORMAT, "n_ctx");
    expect_bad("{\"n_layer\": 0}", LMF_ERR_ARG, "positive");
    expect_bad("{\"n_embd\": 100, \"n_head\": 12}", LMF_ERR_ARG, "divisible");
    expect_bad("{\"activation_function\": \"relu\"}", LMF_ERR_FORMAT, "relu");
    expect_bad("{\"activation_function\": \"gelu\"}", LMF_ERR_FORMAT, "gelu_new");
    expect_bad("{\"activation_function\": 3}", LMF_ERR_FORMAT, "activation_function");
    expect_bad("{\"model_type\": \"falcon\"}", LMF_ERR_FORMAT, "falcon");
    /* LlamaConfig settings lmforge does not compute */
    expect_bad("{\"model_type\": \"llama\", \"rope_scaling\": {\"rope_type\": \"llama3\", "
               "\"factor\": 8.0}}", LMF_ERR_FORMAT, "rope_scaling of type llama3");
    expect_bad("{\"model_type\": \"llama\", \"attention_bias\": true}", LMF_ERR_FORMAT, "biases");
    expect_bad("{\"model_type\": \"llama\", \"mlp_bias\": true}", LMF_ERR_FORMAT, "mlp_bias");
    expect_bad("{\"model_type\": \"llama\", \"hidden_act\": \"gelu\"}", LMF_ERR_FORMAT, "silu");
    expect_bad("{\"model_type\": \"llama\", \"head_dim\": 64, \"hidden_size\": 256, "
               "\"num_attention_heads\": 2}", LMF_ERR_FORMAT, "head_dim");
    expect_bad("{\"model_type\": \"llama\", \"num_key_value_heads\": 5}", LMF_ERR_ARG,
               "key/value heads");
    expect_bad("{\"model_type\": \"llama\", \"rms_norm_eps\": \"small\"}", LMF_ERR_FORMAT,
               "rms_norm_eps");
    expect_bad("{\"layer_norm_epsilon\": 1e-6}", LMF_ERR_FORMAT, "layer_norm_epsilon");
    expect_bad("{\"tie_word_embeddings\": false}", LMF_ERR_FORMAT, "tie_word_embeddings");
    expect_bad("{\"scale_attn_by_inverse_layer_idx\": true}", LMF_ERR_FORMAT, "scale_attn");
    expect_bad("{\"scale_attn_weights\": false}", LMF_ERR_FORMAT, "scale_attn_weights");
    expect_bad("{\"add_cross_attention\": true}", LMF_ERR_FORMAT, "cross");
    expect_bad("{\"n_embd\": 64, \"n_head\": 4, \"n_inner\": 128}", LMF_ERR_FORMAT, "n_inner");
    expect_bad("{\"n_layer\": 2, \"num_hidden_layers\": 3}", LMF_ERR_FORMAT, "num_hidden_layers");
    expect_bad("{\"n_layer\": 2, \"n_layer\": 3}", LMF_ERR_FORMAT, "duplicate");
    expect_bad("{\"n_layer\": 2,", LMF_ERR_FORMAT, "line 1");
    expect_bad("[12]", LMF_ERR_FORMAT, "object");
    expect_bad("", LMF_ERR_FORMAT, NULL);
    unlink(path);
    lmf_gpt_config c;
    assert_int_equal(lmf_config_read(path, &c), LMF_ERR_IO);
    assert_non_null(strstr(lmf_last_error(), path));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_and_keys),
        cmocka_unit_test(test_hf_files),
        cmocka_unit_test(test_bad_values),
        cmocka_unit_test(test_llama_config),
    };
    return cmocka_run_group_tests(tests, setup, lmf_test_tmpdir_teardown);
}

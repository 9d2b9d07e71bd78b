/* Hugging Face GPT2Config config.json: load (with HF defaults) and save (atomic). */
#include "lmforge/config.h"
#include "lmforge/fsutil.h"

#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define CONFIG_MAX_BYTES (1u << 20)

/* An integer field: the first of the names present (canonical name, then aliases); def when
 * none is. Non-integers and negatives are rejected. */
static lmf_status get_int(const char *path, json_t *root, const char *const *names, int def,
                          int *out) {
    for (int i = 0; names[i]; i++) {
        json_t *v = json_object_get(root, names[i]);
        if (!v) continue;
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > INT_MAX)
            return lmf_fail(LMF_ERR_FORMAT, "%s: \"%s\" must be a non-negative integer", path,
                            names[i]);
        *out = (int)json_integer_value(v);
        return LMF_OK;
    }
    *out = def;
    return LMF_OK;
}

/* settings of GPT2Config that change the model's arithmetic: only GPT-2's own values are
 * implemented, so other values are refused rather than silently ignored */
static lmf_status check_variant(const char *path, json_t *root) {
    json_t *v = json_object_get(root, "activation_function");
    if (v) {
        const char *a = json_string_value(v);
        if (!a || (strcmp(a, "gelu_new") != 0 && strcmp(a, "gelu_pytorch_tanh") != 0))
            return lmf_fail(LMF_ERR_FORMAT,
                            "%s: activation_function %s is not supported (lmforge implements the "
                            "tanh GELU: \"gelu_new\" or \"gelu_pytorch_tanh\")",
                            path, a ? a : "(not a string)");
    }
    v = json_object_get(root, "model_type");
    if (v && (!json_is_string(v) || strcmp(json_string_value(v), "gpt2") != 0))
        return lmf_fail(LMF_ERR_FORMAT, "%s: model_type %s is not \"gpt2\"", path,
                        json_is_string(v) ? json_string_value(v) : "(not a string)");
    v = json_object_get(root, "layer_norm_epsilon");
    if (v && (!json_is_number(v) || fabs(json_number_value(v) - 1e-5) > 1e-12))
        return lmf_fail(LMF_ERR_FORMAT, "%s: layer_norm_epsilon must be 1e-05 (GPT-2's value)", path);
    static const struct {
        const char *key;
        int want;
    } flags[] = {{"tie_word_embeddings", 1}, {"scale_attn_weights", 1},
                 {"scale_attn_by_inverse_layer_idx", 0}, {"add_cross_attention", 0}};
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++) {
        v = json_object_get(root, flags[i].key);
        if (v && (!json_is_boolean(v) || json_is_true(v) != flags[i].want))
            return lmf_fail(LMF_ERR_FORMAT, "%s: %s must be %s (other values are not supported)",
                            path, flags[i].key, flags[i].want ? "true" : "false");
    }
    return LMF_OK;
}

lmf_status lmf_config_load_json(const char *path, lmf_gpt_config *out) {
    char *buf = NULL;
    size_t len = 0;
    LMF_TRY(lmf_read_file(path, &buf, &len, CONFIG_MAX_BYTES));
    json_error_t e;
    json_t *root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &e);
    free(buf);
    if (!root)
        return lmf_fail(LMF_ERR_FORMAT, "%s: bad JSON: %s (line %d, column %d)", path, e.text,
                        e.line, e.column);
    lmf_status s = LMF_OK;
    lmf_gpt_config c;
    static const char *const k_layer[] = {"n_layer", "num_hidden_layers", NULL};
    static const char *const k_head[] = {"n_head", "num_attention_heads", NULL};
    static const char *const k_embd[] = {"n_embd", "hidden_size", NULL};
    static const char *const k_pos[] = {"n_positions", "max_position_embeddings", "n_ctx", NULL};
    static const char *const k_vocab[] = {"vocab_size", NULL};
    if (!json_is_object(root)) {
        s = lmf_fail(LMF_ERR_FORMAT, "%s: a config.json must hold a JSON object", path);
        goto out;
    }
    /* defaults: transformers' GPT2Config() */
    if ((s = get_int(path, root, k_layer, 12, &c.n_layer)) != LMF_OK) goto out;
    if ((s = get_int(path, root, k_head, 12, &c.n_head)) != LMF_OK) goto out;
    if ((s = get_int(path, root, k_embd, 768, &c.n_embd)) != LMF_OK) goto out;
    if ((s = get_int(path, root, k_pos, 1024, &c.n_positions)) != LMF_OK) goto out;
    if ((s = get_int(path, root, k_vocab, 50257, &c.vocab_size)) != LMF_OK) goto out;
    if ((s = check_variant(path, root)) != LMF_OK) goto out;
    if ((s = lmf_config_validate(&c)) != LMF_OK) {
        s = lmf_fail_context(s, "%s: ", path);
        goto out;
    }
    *out = c;
out:
    json_decref(root);
    return s;
}

lmf_status lmf_config_save_json(const char *path, const lmf_gpt_config *c) {
    LMF_TRY(lmf_config_validate(c));
    json_t *j = json_pack(
        "{s:[s], s:s, s:i, s:i, s:i, s:i, s:i, s:i, s:s, s:f, s:f, s:f, s:f, s:f, s:i, s:i, s:b, "
        "s:s}",
        "architectures", "GPT2LMHeadModel", "model_type", "gpt2", "n_layer", c->n_layer, "n_head",
        c->n_head, "n_embd", c->n_embd, "n_positions", c->n_positions, "n_ctx", c->n_positions,
        "vocab_size", c->vocab_size, "activation_function", "gelu_new", "layer_norm_epsilon",
        1e-5, "initializer_range", 0.02, "resid_pdrop", 0.0, "embd_pdrop", 0.0, "attn_pdrop",
        0.0, "bos_token_id", c->vocab_size - 1, "eos_token_id", c->vocab_size - 1,
        "tie_word_embeddings", 1, "torch_dtype", "float32");
    char *txt = j ? json_dumps(j, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_REAL_PRECISION(15)) : NULL;
    json_decref(j);
    if (!txt) return lmf_fail(LMF_ERR_NOMEM, "%s: cannot format the model config", path);
    size_t n = strlen(txt);
    char *t2 = realloc(txt, n + 2);
    if (!t2) {
        free(txt);
        return lmf_fail(LMF_ERR_NOMEM, "%s: out of memory", path);
    }
    t2[n] = '\n';
    t2[n + 1] = '\0';
    lmf_status s = lmf_write_file_atomic(path, t2, n + 1);
    free(t2);
    return s;
}

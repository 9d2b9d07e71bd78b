/* config.json, the one codec: Hugging Face GPT2Config and LlamaConfig read as transformers
 * reads them (absent keys take the class's defaults, GPT2Config's attribute_map aliases are
 * accepted) with every setting lmforge does not compute exactly refused, and written for
 * transformers' GPT2LMHeadModel or LlamaForCausalLM. */
#include "lmforge/formats.h"

#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lmforge/fsutil.h"

#define CONFIG_MAX_BYTES ((size_t)1 << 20)

/* One integer field: its name, the other names transformers accepts for it, and
 * GPT2Config's default. */
typedef struct int_field {
    const char *name;
    const char *alias;      /* attribute_map name, or NULL */
    const char *legacy;     /* older files' name, read only when the others are absent, or NULL */
    int def;
} int_field;

static const int_field fields[5] = {
    {"n_layer", "num_hidden_layers", NULL, 12},
    {"n_head", "num_attention_heads", NULL, 12},
    {"n_embd", "hidden_size", NULL, 768},
    {"n_positions", "max_position_embeddings", "n_ctx", 1024},
    {"vocab_size", NULL, NULL, 50257},
};

/* 1 and *out set when key is present, 0 when absent, -1 on a bad value (message set) */
static int get_int(const char *path, json_t *root, const char *key, int *out) {
    json_t *v = key ? json_object_get(root, key) : NULL;
    if (!v) return 0;
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > INT_MAX) {
        lmf_fail(LMF_ERR_FORMAT, "%s: \"%s\" must be a non-negative integer", path, key);
        return -1;
    }
    *out = (int)json_integer_value(v);
    return 1;
}

static lmf_status read_field(const char *path, json_t *root, const int_field *f, int *out) {
    int a = 0, b = 0;
    int ra = get_int(path, root, f->name, &a), rb = get_int(path, root, f->alias, &b);
    if (ra < 0 || rb < 0) return LMF_ERR_FORMAT;
    if (ra && rb && a != b)
        return lmf_fail(LMF_ERR_FORMAT, "%s: \"%s\" (%d) and \"%s\" (%d) name the same setting "
                        "with different values", path, f->name, a, f->alias, b);
    if (ra || rb) {
        *out = ra ? a : b;
        return LMF_OK;
    }
    int rl = get_int(path, root, f->legacy, &a);
    if (rl < 0) return LMF_ERR_FORMAT;
    *out = rl ? a : f->def;
    return LMF_OK;
}

/* a boolean key that must have the value `want` when present (null: absent) */
static lmf_status want_bool(const char *path, json_t *root, const char *key, int want,
                            const char *why) {
    json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) return LMF_OK;
    if (!json_is_boolean(v))
        return lmf_fail(LMF_ERR_FORMAT, "%s: \"%s\" must be true or false", path, key);
    if (json_is_true(v) != want)
        return lmf_fail(LMF_ERR_FORMAT, "%s: \"%s\": %s is not supported: %s", path, key,
                        want ? "false" : "true", why);
    return LMF_OK;
}

/* the settings of GPT2Config that change the arithmetic: only GPT-2's own values are
 * implemented, so other values are refused rather than silently ignored */
static lmf_status check_variant(const char *path, json_t *root, int n_embd) {
    json_t *v = json_object_get(root, "model_type");
    if (v && !json_is_null(v) && (!json_is_string(v) || strcmp(json_string_value(v), "gpt2") != 0))
        return lmf_fail(LMF_ERR_FORMAT, "%s: model_type %s%s%s is not \"gpt2\" or \"llama\"; "
                        "lmforge reads GPT-2 and Llama models", path, json_is_string(v) ? "\"" : "",
                        json_is_string(v) ? json_string_value(v) : "(not a string)",
                        json_is_string(v) ? "\"" : "");
    v = json_object_get(root, "activation_function");
    if (v && !json_is_null(v)) {
        const char *a = json_is_string(v) ? json_string_value(v) : "(not a string)";
        if (strcmp(a, "gelu_new") != 0 && strcmp(a, "gelu_pytorch_tanh") != 0)
            return lmf_fail(LMF_ERR_FORMAT, "%s: activation_function %s is not supported; lmforge "
                            "computes GPT-2's tanh-approximate GELU (\"gelu_new\" or "
                            "\"gelu_pytorch_tanh\")", path, a);
    }
    v = json_object_get(root, "layer_norm_epsilon");
    if (v && !json_is_null(v) && (!json_is_number(v) || fabs(json_number_value(v) - 1e-5) > 1e-12))
        return lmf_fail(LMF_ERR_FORMAT, "%s: layer_norm_epsilon must be 1e-05 (GPT-2's value, the "
                        "one lmforge's LayerNorm uses)", path);
    v = json_object_get(root, "n_inner");
    if (v && !json_is_null(v) &&
        (!json_is_integer(v) || json_integer_value(v) != 4 * (json_int_t)n_embd))
        return lmf_fail(LMF_ERR_FORMAT, "%s: n_inner must be null or 4 * n_embd = %d; lmforge's "
                        "MLP is 4 times the width", path, 4 * n_embd);
    LMF_TRY(want_bool(path, root, "scale_attn_weights", 1,
                      "lmforge always scales attention scores by 1/sqrt(head size)"));
    LMF_TRY(want_bool(path, root, "scale_attn_by_inverse_layer_idx", 0,
                      "lmforge does not scale attention by layer index"));
    LMF_TRY(want_bool(path, root, "tie_word_embeddings", 1,
                      "lmforge's output layer is the token embedding (tied, as in GPT-2)"));
    LMF_TRY(want_bool(path, root, "add_cross_attention", 0, "lmforge models have no cross-attention"));
    return LMF_OK;
}

/* ---- LlamaConfig ---- */

static const int_field llama_fields[6] = {
    {"num_hidden_layers", NULL, NULL, 32},
    {"num_attention_heads", NULL, NULL, 32},
    {"hidden_size", NULL, NULL, 4096},
    {"max_position_embeddings", NULL, NULL, 2048},
    {"vocab_size", NULL, NULL, 32000},
    {"intermediate_size", NULL, NULL, 11008},
};

/* a number key: 1 and *out when present, 0 absent or null, -1 not a number (message set) */
static int get_number(const char *path, json_t *root, const char *key, double *out) {
    json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_number(v)) {
        lmf_fail(LMF_ERR_FORMAT, "%s: \"%s\" must be a number", path, key);
        return -1;
    }
    *out = json_number_value(v);
    return 1;
}

/* LlamaConfig's fields (transformers' defaults for absent keys), with what lmforge does not
 * compute refused: rope_scaling, biases, other activations, a head_dim other than
 * hidden_size / num_attention_heads. */
static lmf_status read_llama(const char *path, json_t *root, lmf_gpt_config *c) {
    int *dst[6] = {&c->n_layer, &c->n_head, &c->n_embd, &c->n_positions, &c->vocab_size,
                   &c->ffn_hidden};
    for (int i = 0; i < 6; i++) LMF_TRY(read_field(path, root, &llama_fields[i], dst[i]));
    c->family = LMF_FAMILY_LLAMA;
    int r = get_int(path, root, "num_key_value_heads", &c->n_kv_head);
    if (r < 0) return LMF_ERR_FORMAT;
    if (r == 0 || json_is_null(json_object_get(root, "num_key_value_heads"))) c->n_kv_head = c->n_head;
    double eps = 1e-6, theta = 10000.0;
    if (get_number(path, root, "rms_norm_eps", &eps) < 0 ||
        get_number(path, root, "rope_theta", &theta) < 0)
        return LMF_ERR_FORMAT;
    c->rms_norm_eps = (float)eps;
    c->rope_theta = (float)theta;
    json_t *v = json_object_get(root, "tie_word_embeddings");
    if (v && !json_is_null(v) && !json_is_boolean(v))
        return lmf_fail(LMF_ERR_FORMAT, "%s: \"tie_word_embeddings\" must be true or false", path);
    c->tie_embeddings = v && json_is_true(v);
    v = json_object_get(root, "rope_scaling");
    if (v && !json_is_null(v)) {
        json_t *t = json_is_object(v) ? json_object_get(v, "rope_type") : NULL;
        if (!t && json_is_object(v)) t = json_object_get(v, "type");
        return lmf_fail(LMF_ERR_FORMAT, "%s: rope_scaling of type %s is not supported; lmforge "
                        "computes the plain rotary embedding (remove rope_scaling, or set it to "
                        "null, to train or run at the model's own context)", path,
                        t && json_is_string(t) ? json_string_value(t) : "(unnamed)");
    }
    v = json_object_get(root, "hidden_act");
    if (v && !json_is_null(v) && (!json_is_string(v) || strcmp(json_string_value(v), "silu") != 0))
        return lmf_fail(LMF_ERR_FORMAT, "%s: hidden_act %s is not supported; lmforge's Llama "
                        "feed-forward is SwiGLU (\"silu\")", path,
                        json_is_string(v) ? json_string_value(v) : "(not a string)");
    LMF_TRY(want_bool(path, root, "attention_bias", 0,
                      "lmforge's Llama projections have no biases"));
    LMF_TRY(want_bool(path, root, "mlp_bias", 0, "lmforge's Llama projections have no biases"));
    int hd = 0;
    r = get_int(path, root, "head_dim", &hd);
    if (r < 0) return LMF_ERR_FORMAT;
    if (r > 0 && c->n_head > 0 && hd * c->n_head != c->n_embd)
        return lmf_fail(LMF_ERR_FORMAT, "%s: head_dim %d is not hidden_size / num_attention_heads "
                        "= %d; lmforge's heads split the width", path, hd,
                        c->n_embd / c->n_head);
    return LMF_OK;
}

lmf_status lmf_config_read(const char *path, lmf_gpt_config *out) {
    char *buf = NULL;
    size_t len = 0;
    LMF_TRY(lmf_read_file(path, &buf, &len, CONFIG_MAX_BYTES));
    json_error_t e;
    json_t *root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &e);
    free(buf);
    if (!root)
        return lmf_fail(LMF_ERR_FORMAT, "%s: not valid JSON: %s (line %d, column %d)", path, e.text,
                        e.line, e.column);
    lmf_status s = LMF_OK;
    lmf_gpt_config c;
    memset(&c, 0, sizeof c);
    int *dst[5] = {&c.n_layer, &c.n_head, &c.n_embd, &c.n_positions, &c.vocab_size};
    if (!json_is_object(root)) {
        s = lmf_fail(LMF_ERR_FORMAT, "%s: a config.json must hold a JSON object", path);
        goto out;
    }
    json_t *mt = json_object_get(root, "model_type");
    int llama = mt && json_is_string(mt) && strcmp(json_string_value(mt), "llama") == 0;
    if (llama) {
        s = read_llama(path, root, &c);
    } else {
        for (int i = 0; i < 5 && s == LMF_OK; i++) s = read_field(path, root, &fields[i], dst[i]);
    }
    if (s == LMF_OK && (s = lmf_config_validate(&c)) != LMF_OK) s = lmf_fail_context(s, "%s: ", path);
    if (s == LMF_OK && !llama) s = check_variant(path, root, c.n_embd);
    if (s == LMF_OK) *out = c;
out:
    json_decref(root);
    return s;
}

/* the shortest decimal that reads back as the float x */
static double float_decimal(float x) {
    char b[32];
    for (int prec = 1; prec < 10; prec++) {
        snprintf(b, sizeof b, "%.*g", prec, (double)x);
        if ((float)strtod(b, NULL) == x) break;
    }
    return strtod(b, NULL);
}

static json_t *llama_json(const lmf_gpt_config *c, int bos, int eot, const char *torch_dtype) {
    return json_pack(
        "{s:[s], s:s, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:i, s:s, s:f, s:f, s:n, s:b, s:b, "
        "s:b, s:f, s:f, s:b, s:i, s:i, s:s}",
        "architectures", "LlamaForCausalLM", "model_type", "llama", "vocab_size", c->vocab_size,
        "hidden_size", c->n_embd, "intermediate_size", c->ffn_hidden, "num_hidden_layers",
        c->n_layer, "num_attention_heads", c->n_head, "num_key_value_heads", c->n_kv_head,
        "head_dim", c->n_embd / c->n_head, "max_position_embeddings", c->n_positions,
        "hidden_act", "silu", "rms_norm_eps", float_decimal(c->rms_norm_eps), "rope_theta",
        float_decimal(c->rope_theta), "rope_scaling", "tie_word_embeddings",
        c->tie_embeddings != 0, "attention_bias", 0, "mlp_bias", 0, "attention_dropout", 0.0,
        "initializer_range", 0.02, "use_cache", 1, "bos_token_id", bos, "eos_token_id", eot,
        "torch_dtype", torch_dtype);
}

/* lmforge trains without dropout, so the dropout rates are written as 0 */
lmf_status lmf_config_write_as(const char *path, const lmf_gpt_config *c, int eot, lmf_dtype dtype) {
    return lmf_config_write_ids(path, c, -1, eot, dtype);
}

lmf_status lmf_config_write_ids(const char *path, const lmf_gpt_config *c, int bos, int eot,
                                lmf_dtype dtype) {
    LMF_TRY(lmf_config_validate(c));
    if (eot < 0 || eot >= c->vocab_size) eot = c->vocab_size - 1;
    if (bos < 0 || bos >= c->vocab_size) bos = eot;
    const char *torch_dtype = dtype == LMF_BF16 ? "bfloat16" : dtype == LMF_F16 ? "float16" : "float32";
    json_t *root = c->family == LMF_FAMILY_LLAMA ? llama_json(c, bos, eot, torch_dtype) : json_pack(
        "{s:[s], s:s, s:i, s:i, s:i, s:i, s:i, s:i, s:n, s:s, s:f, s:f, s:f, s:f, s:f, s:b, "
        "s:b, s:b, s:i, s:i, s:s}",
        "architectures", "GPT2LMHeadModel", "model_type", "gpt2", "vocab_size", c->vocab_size,
        "n_positions", c->n_positions, "n_ctx", c->n_positions, "n_embd", c->n_embd, "n_layer",
        c->n_layer, "n_head", c->n_head, "n_inner", "activation_function", "gelu_new",
        "layer_norm_epsilon", 1e-5, "initializer_range", 0.02, "resid_pdrop", 0.0, "embd_pdrop",
        0.0, "attn_pdrop", 0.0, "scale_attn_weights", 1, "tie_word_embeddings", 1, "use_cache",
        1, "bos_token_id", bos, "eos_token_id", eot, "torch_dtype", torch_dtype);
    char *text = root ? json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10))
                      : NULL;
    json_decref(root);
    if (!text) return lmf_fail(LMF_ERR_NOMEM, "%s: cannot build config.json", path);
    size_t n = strlen(text);
    char *withnl = realloc(text, n + 2);
    if (!withnl) {
        free(text);
        return lmf_fail(LMF_ERR_NOMEM, "%s: cannot build config.json", path);
    }
    withnl[n] = '\n';
    withnl[n + 1] = '\0';
    lmf_status s = lmf_write_file_atomic(path, withnl, n + 1);
    free(withnl);
    return s;
}

lmf_status lmf_config_write(const char *path, const lmf_gpt_config *c, int eot) {
    return lmf_config_write_as(path, c, eot, LMF_F32);
}

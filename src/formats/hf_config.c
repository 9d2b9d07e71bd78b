/* Hugging Face GPT2Config (config.json): reading with compatibility checks, writing for export. */
#include "lmforge/convert.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/hf_internal.h"
#include "lmforge/fsutil.h"

#define CONFIG_MAX_BYTES ((size_t)1 << 20)

/* key as an int in [1, INT32_MAX]: 1 found, 0 absent or null, -1 wrong type (message set) */
static int get_int(json_t *root, const char *key, const char *path, int *out) {
    json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > INT32_MAX) {
        lmf_fail(LMF_ERR_FORMAT, "%s: \"%s\" must be a positive integer", path, key);
        return -1;
    }
    *out = (int)json_integer_value(v);
    return 1;
}

/* a boolean key that must have the value `want` when present */
static lmf_status want_bool(json_t *root, const char *key, int want, const char *path,
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

static lmf_status check_compat(json_t *root, const char *path, int n_embd) {
    json_t *v = json_object_get(root, "model_type");
    if (v && !json_is_null(v) && (!json_is_string(v) || strcmp(json_string_value(v), "gpt2") != 0))
        return lmf_fail(LMF_ERR_FORMAT, "%s: model_type is %s%s%s, not \"gpt2\"; lmforge reads "
                        "GPT-2 models only", path, json_is_string(v) ? "\"" : "",
                        json_is_string(v) ? json_string_value(v) : "not a string",
                        json_is_string(v) ? "\"" : "");
    v = json_object_get(root, "activation_function");
    if (v && !json_is_null(v)) {
        const char *a = json_is_string(v) ? json_string_value(v) : "";
        if (strcmp(a, "gelu_new") != 0 && strcmp(a, "gelu_pytorch_tanh") != 0)
            return lmf_fail(LMF_ERR_FORMAT, "%s: activation_function \"%s\" is not supported; "
                            "lmforge computes GPT-2's tanh-approximate GELU (\"gelu_new\")", path, a);
    }
    v = json_object_get(root, "layer_norm_epsilon");
    if (v && !json_is_null(v)) {
        double e = json_is_number(v) ? json_number_value(v) : -1.0;
        if (!(fabs(e - 1e-5) <= 1e-12))
            return lmf_fail(LMF_ERR_FORMAT, "%s: layer_norm_epsilon %g is not supported; lmforge's "
                            "LayerNorm uses GPT-2's 1e-5", path, e);
    }
    v = json_object_get(root, "n_inner");
    if (v && !json_is_null(v) &&
        (!json_is_integer(v) || json_integer_value(v) != 4 * (json_int_t)n_embd))
        return lmf_fail(LMF_ERR_FORMAT, "%s: n_inner must be null or 4 * n_embd = %d; lmforge's "
                        "MLP is 4 times the width", path, 4 * n_embd);
    LMF_TRY(want_bool(root, "scale_attn_weights", 1, path,
                      "lmforge always scales attention scores by 1/sqrt(head size)"));
    LMF_TRY(want_bool(root, "scale_attn_by_inverse_layer_idx", 0, path,
                      "lmforge does not scale attention by layer index"));
    LMF_TRY(want_bool(root, "tie_word_embeddings", 1, path,
                      "lmforge's output layer is the token embedding (tied, as in GPT-2)"));
    LMF_TRY(want_bool(root, "add_cross_attention", 0, path,
                      "lmforge models have no cross-attention"));
    return LMF_OK;
}

lmf_status lmf_hf_read_config(const char *path, lmf_gpt_config *out) {
    char *buf = NULL;
    size_t len = 0;
    memset(out, 0, sizeof *out);
    LMF_TRY(lmf_read_file(path, &buf, &len, CONFIG_MAX_BYTES));
    json_error_t err;
    json_t *root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &err);
    free(buf);
    if (!root)
        return lmf_fail(LMF_ERR_FORMAT, "%s: not valid JSON (line %d: %s)", path, err.line, err.text);
    lmf_status s = LMF_OK;
    if (!json_is_object(root)) {
        s = lmf_fail(LMF_ERR_FORMAT, "%s: not a JSON object", path);
        goto done;
    }
    static const char *const req[] = {"n_layer", "n_head", "n_embd", "vocab_size"};
    int *dst[] = {&out->n_layer, &out->n_head, &out->n_embd, &out->vocab_size};
    for (int i = 0; i < 4; i++) {
        int r = get_int(root, req[i], path, dst[i]);
        if (r < 0) { s = LMF_ERR_FORMAT; goto done; }
        if (r == 0) {
            s = lmf_fail(LMF_ERR_FORMAT, "%s: \"%s\" is missing; a GPT-2 config.json needs "
                         "n_layer, n_head, n_embd, n_positions and vocab_size", path, req[i]);
            goto done;
        }
    }
    int r = get_int(root, "n_positions", path, &out->n_positions);
    if (r == 0) r = get_int(root, "n_ctx", path, &out->n_positions); /* older configs */
    if (r <= 0) {
        s = r < 0 ? LMF_ERR_FORMAT
                  : lmf_fail(LMF_ERR_FORMAT, "%s: \"n_positions\" is missing (the context length)",
                             path);
        goto done;
    }
    if (lmf_config_validate(out) != LMF_OK) {
        s = lmf_fail_context(LMF_ERR_FORMAT, "%s: ", path);
        goto done;
    }
    s = check_compat(root, path, out->n_embd);
done:
    json_decref(root);
    return s;
}

/* config.json for transformers' GPT2LMHeadModel; lmforge trains without dropout, so the
 * dropout rates are written as 0. */
lmf_status lmf_hf_write_config(const char *path, const lmf_gpt_config *c, int eot) {
    if (eot < 0 || eot >= c->vocab_size) eot = c->vocab_size - 1;
    json_t *root = json_pack(
        "{s:[s], s:s, s:i, s:i, s:i, s:i, s:i, s:i, s:n, s:s, s:f, s:f, s:f, s:f, s:f, s:b, "
        "s:b, s:b, s:i, s:i, s:s}",
        "architectures", "GPT2LMHeadModel", "model_type", "gpt2", "vocab_size", c->vocab_size,
        "n_positions", c->n_positions, "n_ctx", c->n_positions, "n_embd", c->n_embd, "n_layer",
        c->n_layer, "n_head", c->n_head, "n_inner", "activation_function", "gelu_new",
        "layer_norm_epsilon", 1e-5, "initializer_range", 0.02, "resid_pdrop", 0.0, "embd_pdrop",
        0.0, "attn_pdrop", 0.0, "scale_attn_weights", 1, "tie_word_embeddings", 1, "use_cache",
        1, "bos_token_id", eot, "eos_token_id", eot, "torch_dtype", "float32");
    if (!root) return lmf_fail(LMF_ERR_NOMEM, "%s: cannot build config.json", path);
    char *text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10));
    json_decref(root);
    if (!text) return lmf_fail(LMF_ERR_NOMEM, "%s: cannot build config.json", path);
    size_t n = strlen(text);
    char *withnl = malloc(n + 2);
    if (!withnl) {
        free(text);
        return lmf_fail(LMF_ERR_NOMEM, "%s: cannot build config.json", path);
    }
    memcpy(withnl, text, n);
    withnl[n] = '\n';
    free(text);
    lmf_status s = lmf_write_file_atomic(path, withnl, n + 1);
    free(withnl);
    return s;
}

/* Loading a Hugging Face tokenizer.json that holds a byte-level BPE (GPT-2's or cl100k's pattern). */
/* model.type BPE with pre_tokenizer ByteLevel (GPT-2), or a Sequence of Split with cl100k's
 * pattern and ByteLevel without its regex (Llama 3); the post_processor's template is read by
 * post.c; anything else is refused with a message saying which part is not supported. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tok_internal.h"

static int is_null_or_empty_string(const json_t *v) {
    return !v || json_is_null(v) || (json_is_string(v) && json_string_length(v) == 0);
}

static const char *type_of(const json_t *v) {
    const char *s = json_string_value(json_object_get(v, "type"));
    return s ? s : "(no type)";
}

/* cl100k_base's pattern as tokenizer.json spells it (Llama 3's) */
const char *const lmf_tok_cl100k_regex =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/* ByteLevel without add_prefix_space; with GPT-2's regex when `regex`, without when not */
static lmf_status check_byte_level(const json_t *pre, int regex, const char *name) {
    if (!json_is_object(pre) || strcmp(type_of(pre), "ByteLevel") != 0)
        return lmf_fail(LMF_ERR_FORMAT, "%s: pre_tokenizer '%s' is not supported (only ByteLevel "
                        "with GPT-2's pattern, or Split with cl100k's pattern then ByteLevel)", name,
                        json_is_object(pre) ? type_of(pre) : "?");
    if (json_is_true(json_object_get(pre, "add_prefix_space")))
        return lmf_fail(LMF_ERR_FORMAT, "%s: pre_tokenizer ByteLevel with add_prefix_space "
                        "is not supported", name);
    const json_t *use = json_object_get(pre, "use_regex");
    if (regex && json_is_false(use))
        return lmf_fail(LMF_ERR_FORMAT, "%s: pre_tokenizer ByteLevel without GPT-2's pattern "
                        "(use_regex false) is not supported", name);
    if (!regex && !json_is_false(use))
        return lmf_fail(LMF_ERR_FORMAT, "%s: pre_tokenizer ByteLevel after a Split must have "
                        "use_regex false (two patterns in a row are not supported)", name);
    return LMF_OK;
}

/* Split { pattern: { Regex: cl100k's }, behavior: Isolated, invert: false } */
static lmf_status check_split(const json_t *sp, const char *name) {
    const char *re = json_string_value(json_object_get(json_object_get(sp, "pattern"), "Regex"));
    const char *beh = json_string_value(json_object_get(sp, "behavior"));
    if (!re || strcmp(re, lmf_tok_cl100k_regex) != 0)
        return lmf_fail(LMF_ERR_FORMAT, "%s: pre_tokenizer Split has a pattern other than "
                        "cl100k's (Llama 3's); only GPT-2's and cl100k's patterns are supported", name);
    if (!beh || strcmp(beh, "Isolated") != 0 || json_is_true(json_object_get(sp, "invert")))
        return lmf_fail(LMF_ERR_FORMAT, "%s: pre_tokenizer Split must have behavior Isolated and "
                        "invert false", name);
    return LMF_OK;
}

/* The parts of the pipeline around the model must be GPT-2's or Llama 3's; sets t->pattern. */
static lmf_status check_pipeline(lmf_tokenizer *t, const json_t *root, const char *name) {
    const json_t *norm = json_object_get(root, "normalizer");
    if (norm && !json_is_null(norm))
        return lmf_fail(LMF_ERR_FORMAT, "%s: normalizer '%s' is not supported (only byte-level "
                        "BPE without a normalizer)", name, type_of(norm));
    const json_t *pre = json_object_get(root, "pre_tokenizer");
    t->pattern = LMF_TOK_PATTERN_GPT2;
    if (json_is_object(pre) && strcmp(type_of(pre), "Sequence") == 0) {
        const json_t *list = json_object_get(pre, "pretokenizers");
        if (!json_is_array(list) || json_array_size(list) != 2 ||
            strcmp(type_of(json_array_get(list, 0)), "Split") != 0)
            return lmf_fail(LMF_ERR_FORMAT, "%s: pre_tokenizer Sequence must be [Split, ByteLevel] "
                            "(as Llama 3's)", name);
        LMF_TRY(check_split(json_array_get(list, 0), name));
        LMF_TRY(check_byte_level(json_array_get(list, 1), 0, name));
        t->pattern = LMF_TOK_PATTERN_CL100K;
    } else if (pre && !json_is_null(pre)) {
        LMF_TRY(check_byte_level(pre, 1, name));
    }
    const json_t *dec = json_object_get(root, "decoder");
    if (dec && !json_is_null(dec) && (!json_is_object(dec) || strcmp(type_of(dec), "ByteLevel") != 0))
        return lmf_fail(LMF_ERR_FORMAT, "%s: decoder '%s' is not supported (only ByteLevel)", name,
                        json_is_object(dec) ? type_of(dec) : "?");
    return LMF_OK;
}

static lmf_status check_model(const json_t *model, const char *name) {
    if (!json_is_object(model))
        return lmf_fail(LMF_ERR_FORMAT, "%s: no \"model\" object; not a tokenizer.json file", name);
    const char *type = json_string_value(json_object_get(model, "type"));
    if (type && strcmp(type, "BPE") != 0)
        return lmf_fail(LMF_ERR_FORMAT, "%s: model type '%s' is not supported (only BPE)", name, type);
    const json_t *drop = json_object_get(model, "dropout");
    if (drop && !json_is_null(drop) && !(json_is_number(drop) && json_number_value(drop) == 0.0))
        return lmf_fail(LMF_ERR_FORMAT, "%s: BPE dropout is not supported", name);
    if (!is_null_or_empty_string(json_object_get(model, "continuing_subword_prefix")) ||
        !is_null_or_empty_string(json_object_get(model, "end_of_word_suffix")))
        return lmf_fail(LMF_ERR_FORMAT, "%s: continuing_subword_prefix / end_of_word_suffix are "
                        "not supported (byte-level BPE uses neither)", name);
    if (json_is_true(json_object_get(model, "byte_fallback")))
        return lmf_fail(LMF_ERR_FORMAT, "%s: byte_fallback is not supported (byte-level BPE "
                        "needs none)", name);
    if (!json_is_object(json_object_get(model, "vocab")))
        return lmf_fail(LMF_ERR_FORMAT, "%s: model.vocab is missing or not an object", name);
    if (!json_is_array(json_object_get(model, "merges")))
        return lmf_fail(LMF_ERR_FORMAT, "%s: model.merges is missing or not an array", name);
    return LMF_OK;
}

static lmf_status get_id(const json_t *v, const char *name, const char *what, uint32_t *id) {
    if (!json_is_integer(v) || json_integer_value(v) < 0 ||
        json_integer_value(v) >= (json_int_t)LMF_TOK_MAX_IDS)
        return lmf_fail(LMF_ERR_FORMAT, "%s: %s has no id in [0, %u)", name, what, LMF_TOK_MAX_IDS);
    *id = (uint32_t)json_integer_value(v);
    return LMF_OK;
}

static lmf_status parse_root(lmf_tokenizer *t, json_t *root, const char *name) {
    if (!json_is_object(root))
        return lmf_fail(LMF_ERR_FORMAT, "%s: expected a JSON object (a tokenizer.json file)", name);
    const json_t *model = json_object_get(root, "model");
    LMF_TRY(check_model(model, name));
    LMF_TRY(check_pipeline(t, root, name));
    t->ignore_merges = json_is_true(json_object_get(model, "ignore_merges"));

    /* added tokens: raw content, recognised as special tokens */
    const json_t *added = json_object_get(root, "added_tokens");
    if (added && !json_is_null(added) && !json_is_array(added))
        return lmf_fail(LMF_ERR_FORMAT, "%s: added_tokens is not an array", name);
    uint8_t *is_added = NULL;
    size_t n_added = json_is_array(added) ? json_array_size(added) : 0;
    uint32_t *added_ids = calloc(n_added ? n_added : 1, sizeof *added_ids);
    if (!added_ids) return lmf_fail(LMF_ERR_NOMEM, "tokenizer: out of memory");
    lmf_status st = LMF_OK;
    uint32_t max_added = 0;
    for (size_t i = 0; i < n_added && st == LMF_OK; i++) {
        const json_t *a = json_array_get(added, i);
        const json_t *content = json_object_get(a, "content");
        if (!json_is_object(a) || !json_is_string(content) || json_string_length(content) == 0) {
            st = lmf_fail(LMF_ERR_FORMAT, "%s: added_tokens[%zu] has no content string", name, i);
            break;
        }
        st = get_id(json_object_get(a, "id"), name, "an added token", &added_ids[i]);
        if (added_ids[i] + 1 > max_added) max_added = added_ids[i] + 1;
    }
    if (st == LMF_OK) {
        is_added = calloc(max_added ? max_added : 1, 1);
        if (!is_added) st = lmf_fail(LMF_ERR_NOMEM, "tokenizer: out of memory");
        for (size_t i = 0; st == LMF_OK && i < n_added; i++) is_added[added_ids[i]] = 1;
    }

    /* model vocabulary in GPT-2's byte-level spelling */
    const json_t *vocab = json_object_get(model, "vocab");
    const char *key;
    json_t *val;
    char *buf = NULL;
    size_t buf_cap = 0;
    if (st == LMF_OK) {
        json_object_foreach((json_t *)vocab, key, val) {
            uint32_t id = 0;
            st = get_id(val, name, "a model.vocab entry", &id);
            if (st != LMF_OK) break;
            if (id < max_added && is_added[id]) continue; /* defined by added_tokens */
            size_t kl = strlen(key);
            if (kl + 1 > buf_cap) {
                buf_cap = 2 * kl + 64;
                char *nb = realloc(buf, buf_cap);
                if (!nb) {
                    st = lmf_fail(LMF_ERR_NOMEM, "tokenizer: out of memory");
                    break;
                }
                buf = nb;
            }
            long n = lmf_tok_unicode_to_bytes(key, kl, buf);
            if (n < 0) {
                st = lmf_fail(LMF_ERR_FORMAT, "%s: model.vocab token '%.60s' (id %u) is not spelled "
                              "in GPT-2's byte-level alphabet; only byte-level BPE is supported",
                              name, key, id);
                break;
            }
            st = lmf_tok_set_token(t, id, buf, (size_t)n, LMF_TOK_KIND_NORMAL, name);
            if (st != LMF_OK) break;
        }
    }
    for (size_t i = 0; i < n_added && st == LMF_OK; i++) {
        const json_t *content = json_object_get(json_array_get(added, i), "content");
        uint32_t id = added_ids[i];
        /* the same token may be listed twice (same id, same content) */
        size_t have_len;
        const char *have = lmf_tok_token_bytes(t, id, &have_len);
        if (have && have_len == json_string_length(content) &&
            memcmp(have, json_string_value(content), have_len) == 0)
            continue;
        st = lmf_tok_set_token(t, id, json_string_value(content), json_string_length(content),
                               LMF_TOK_KIND_SPECIAL, name);
    }
    free(is_added);
    free(added_ids);

    /* merges: "a b" strings or ["a", "b"] pairs */
    const json_t *merges = json_object_get(model, "merges");
    size_t n_merges = json_array_size(merges);
    for (size_t i = 0; i < n_merges && st == LMF_OK; i++) {
        const json_t *m = json_array_get(merges, i);
        const char *parts[2] = {NULL, NULL};
        size_t lens[2] = {0, 0};
        if (json_is_string(m)) {
            const char *s = json_string_value(m);
            size_t n = json_string_length(m);
            const char *sp = memchr(s, ' ', n);
            if (sp && sp > s && sp < s + n - 1 && !memchr(sp + 1, ' ', (size_t)(s + n - sp - 1))) {
                parts[0] = s;
                lens[0] = (size_t)(sp - s);
                parts[1] = sp + 1;
                lens[1] = n - lens[0] - 1;
            }
        } else if (json_is_array(m) && json_array_size(m) == 2 &&
                   json_is_string(json_array_get(m, 0)) && json_is_string(json_array_get(m, 1))) {
            for (int k = 0; k < 2; k++) {
                parts[k] = json_string_value(json_array_get(m, (size_t)k));
                lens[k] = json_string_length(json_array_get(m, (size_t)k));
            }
        }
        if (!parts[0]) {
            st = lmf_fail(LMF_ERR_FORMAT, "%s: model.merges[%zu] is not \"a b\" or [\"a\", \"b\"]",
                          name, i);
            break;
        }
        uint32_t ids[2];
        for (int k = 0; k < 2 && st == LMF_OK; k++) {
            if (lens[k] + 1 > buf_cap) {
                buf_cap = 2 * lens[k] + 64;
                char *nb = realloc(buf, buf_cap);
                if (!nb) {
                    st = lmf_fail(LMF_ERR_NOMEM, "tokenizer: out of memory");
                    break;
                }
                buf = nb;
            }
            long n = lmf_tok_unicode_to_bytes(parts[k], lens[k], buf);
            ids[k] = n > 0 ? lmf_tok_find(t, buf, (size_t)n) : LMF_TOK_NONE;
            if (ids[k] == LMF_TOK_NONE)
                st = lmf_fail(LMF_ERR_FORMAT, "%s: model.merges[%zu] names token '%.*s', which is "
                              "not in model.vocab", name, i, (int)(lens[k] < 60 ? lens[k] : 60), parts[k]);
        }
        if (st == LMF_OK) st = lmf_tok_add_merge(t, ids[0], ids[1], name);
    }
    free(buf);
    if (st == LMF_OK) st = lmf_tok_finish(t, 0, name);
    if (st == LMF_OK) st = lmf_tok_parse_post(t, json_object_get(root, "post_processor"), name);
    if (st == LMF_OK) st = lmf_tok_prune_whole_words(t);
    return st;
}

lmf_status lmf_tok_parse_hf_json(const char *json, size_t len, const char *name, lmf_tokenizer **out) {
    *out = NULL;
    json_error_t err;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &err);
    if (!root)
        return lmf_fail(LMF_ERR_FORMAT, "%s: not valid JSON (line %d, column %d: %s)", name,
                        err.line, err.column, err.text);
    lmf_tokenizer *t = lmf_tok_alloc();
    lmf_status st = t ? parse_root(t, root, name) : LMF_ERR_NOMEM;
    json_decref(root);
    if (st != LMF_OK) {
        lmf_tok_free(t);
        return st;
    }
    *out = t;
    return LMF_OK;
}

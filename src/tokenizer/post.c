/* tokenizer.json's post-processor: the template's special tokens around one text (read, applied, written). */
/* Hugging Face's TemplateProcessing (Llama 3's adds <|begin_of_text|> in front) and ByteLevel
 * (offsets only: no ids), alone or in a Sequence. The single-text template must be special
 * tokens around the one sequence "A"; each names an entry of special_tokens whose ids are
 * tokens of the vocabulary. */
#include <jansson.h>
#include <string.h>

#include "tokenizer/tok_internal.h"

static const char *type_of(const json_t *v) {
    const char *s = json_string_value(json_object_get(v, "type"));
    return s ? s : "(no type)";
}

/* append the ids of special_tokens[name] to the template */
static lmf_status add_special(lmf_tokenizer *t, const json_t *specials, const char *name,
                              int before, const char *what) {
    const json_t *e = json_object_get(specials, name);
    const json_t *ids = json_object_get(e, "ids");
    if (!json_is_array(ids) || json_array_size(ids) == 0)
        return lmf_fail(LMF_ERR_FORMAT, "%s: post_processor's template names the special token "
                        "'%.60s', which its special_tokens do not give ids", what, name);
    for (size_t i = 0; i < json_array_size(ids); i++) {
        const json_t *v = json_array_get(ids, i);
        json_int_t id = json_is_integer(v) ? json_integer_value(v) : -1;
        if (id < 0 || id >= (json_int_t)t->n_ids || t->len[id] == LMF_TOK_NONE)
            return lmf_fail(LMF_ERR_FORMAT, "%s: post_processor's special token '%.60s' has id "
                            "%lld, which is not in the vocabulary", what, name, (long long)id);
        if (t->n_tpl_prefix + t->n_tpl_suffix >= LMF_TOK_TEMPLATE_MAX)
            return lmf_fail(LMF_ERR_FORMAT, "%s: post_processor's template adds more than %d "
                            "tokens; lmforge supports up to %d", what, LMF_TOK_TEMPLATE_MAX,
                            LMF_TOK_TEMPLATE_MAX);
        if (before) {
            t->tpl[t->n_tpl_prefix++] = (uint32_t)id;
        } else {
            t->tpl[t->n_tpl_prefix + t->n_tpl_suffix++] = (uint32_t)id;
        }
    }
    return LMF_OK;
}

/* TemplateProcessing: "single" is [SpecialToken..., Sequence A, SpecialToken...] */
static lmf_status parse_template(lmf_tokenizer *t, const json_t *tp, const char *what) {
    const json_t *single = json_object_get(tp, "single");
    const json_t *specials = json_object_get(tp, "special_tokens");
    if (!json_is_array(single))
        return lmf_fail(LMF_ERR_FORMAT, "%s: post_processor TemplateProcessing has no \"single\" "
                        "template", what);
    int seen_seq = 0;
    for (size_t i = 0; i < json_array_size(single); i++) {
        const json_t *item = json_array_get(single, i);
        const json_t *sp = json_object_get(item, "SpecialToken");
        const json_t *seq = json_object_get(item, "Sequence");
        if (json_is_object(seq) && !sp) {
            const char *id = json_string_value(json_object_get(seq, "id"));
            if (seen_seq || !id || strcmp(id, "A") != 0)
                return lmf_fail(LMF_ERR_FORMAT, "%s: post_processor's single template must hold "
                                "the sequence A once", what);
            seen_seq = 1;
        } else if (json_is_object(sp) && !seq && json_is_string(json_object_get(sp, "id"))) {
            LMF_TRY(add_special(t, specials, json_string_value(json_object_get(sp, "id")),
                                !seen_seq, what));
        } else {
            return lmf_fail(LMF_ERR_FORMAT, "%s: post_processor's single template item %zu is "
                            "neither {\"SpecialToken\": ...} nor {\"Sequence\": ...}", what, i);
        }
    }
    if (!seen_seq)
        return lmf_fail(LMF_ERR_FORMAT, "%s: post_processor's single template has no sequence A",
                        what);
    return LMF_OK;
}

lmf_status lmf_tok_parse_post(lmf_tokenizer *t, const json_t *pp, const char *what) {
    t->n_tpl_prefix = t->n_tpl_suffix = 0;
    if (!pp || json_is_null(pp)) return LMF_OK;
    const char *type = json_is_object(pp) ? type_of(pp) : "?";
    if (strcmp(type, "ByteLevel") == 0) return LMF_OK; /* offsets only */
    if (strcmp(type, "TemplateProcessing") == 0) return parse_template(t, pp, what);
    if (strcmp(type, "Sequence") == 0) {
        const json_t *list = json_object_get(pp, "processors");
        if (!json_is_array(list))
            return lmf_fail(LMF_ERR_FORMAT, "%s: post_processor Sequence has no processors list",
                            what);
        int templates = 0;
        for (size_t i = 0; i < json_array_size(list); i++) {
            const json_t *p = json_array_get(list, i);
            const char *ty = json_is_object(p) ? type_of(p) : "?";
            if (strcmp(ty, "ByteLevel") == 0) continue;
            if (strcmp(ty, "TemplateProcessing") != 0 || templates++)
                return lmf_fail(LMF_ERR_FORMAT, "%s: post_processor Sequence holds '%s'; only "
                                "ByteLevel and one TemplateProcessing are supported", what,
                                templates > 1 ? "a second TemplateProcessing" : ty);
            LMF_TRY(parse_template(t, p, what));
        }
        return LMF_OK;
    }
    return lmf_fail(LMF_ERR_FORMAT, "%s: post_processor '%s' is not supported (only "
                    "TemplateProcessing, ByteLevel or a Sequence of them)", what, type);
}

json_t *lmf_tok_post_json(const lmf_tokenizer *t) {
    json_t *bl = json_pack("{s:s, s:b, s:b, s:b}", "type", "ByteLevel", "add_prefix_space", 1,
                           "trim_offsets", 0, "use_regex", 1);
    if (!bl || t->n_tpl_prefix + t->n_tpl_suffix == 0) return bl;
    json_t *single = json_array(), *pair = json_array(), *specials = json_object();
    int bad = !single || !pair || !specials;
    /* the pair template: the single one for A, then again for B (type_id 1), as Llama 3's */
    for (int pass = 0; pass < 2 && !bad; pass++) {
        json_t *dst = pass == 0 ? single : pair;
        for (int copy = 0; copy < (pass == 0 ? 1 : 2) && !bad; copy++) {
            uint32_t n = t->n_tpl_prefix + t->n_tpl_suffix;
            for (uint32_t k = 0; k <= n && !bad; k++) {
                json_t *item;
                if (k == t->n_tpl_prefix) {
                    item = json_pack("{s:{s:s, s:i}}", "Sequence", "id", copy ? "B" : "A",
                                     "type_id", copy);
                } else {
                    uint32_t id = t->tpl[k < t->n_tpl_prefix ? k : k - 1];
                    json_t *content = json_stringn(t->bytes + t->off[id], t->len[id]);
                    item = content ? json_pack("{s:{s:O, s:i}}", "SpecialToken", "id", content,
                                               "type_id", copy) : NULL;
                    if (content && !json_object_get(specials, json_string_value(content)))
                        bad |= json_object_set_new(specials, json_string_value(content),
                                                   json_pack("{s:O, s:[i], s:[O]}", "id", content,
                                                             "ids", (json_int_t)id, "tokens",
                                                             content)) != 0;
                    json_decref(content);
                }
                bad |= !item || json_array_append_new(dst, item) != 0;
            }
        }
    }
    json_t *tp = bad ? NULL : json_pack("{s:s, s:o, s:o, s:o}", "type", "TemplateProcessing",
                                        "single", single, "pair", pair, "special_tokens", specials);
    if (!tp) {
        if (bad) {
            json_decref(single);
            json_decref(pair);
            json_decref(specials);
        }
        json_decref(bl);
        return NULL;
    }
    json_t *seq = json_pack("{s:s, s:[o, o]}", "type", "Sequence", "processors", bl, tp);
    return seq;
}

void lmf_tok_template(const lmf_tokenizer *t, const uint32_t **prefix, size_t *n_prefix,
                      const uint32_t **suffix, size_t *n_suffix) {
    *prefix = t->tpl;
    *n_prefix = t->n_tpl_prefix;
    *suffix = t->tpl + t->n_tpl_prefix;
    *n_suffix = t->n_tpl_suffix;
}

lmf_status lmf_tok_encode_template(const lmf_tokenizer *t, const char *text, size_t len,
                                   int allow_special, uint32_t *ids, size_t cap, size_t *n_out) {
    size_t np = t->n_tpl_prefix, ns = t->n_tpl_suffix, n = 0;
    lmf_status s = lmf_tok_encode(t, text, len, allow_special, cap > np ? ids + np : ids,
                                  cap > np ? cap - np : 0, &n);
    if (s != LMF_OK && s != LMF_ERR_ARG) return s;
    *n_out = np + n + ns;
    if (s == LMF_ERR_ARG || *n_out > cap)
        return lmf_fail(LMF_ERR_ARG, "tokenizer: %zu ids do not fit in %zu", *n_out, cap);
    memcpy(ids, t->tpl, np * sizeof *ids);
    memcpy(ids + np + n, t->tpl + np, ns * sizeof *ids);
    return LMF_OK;
}

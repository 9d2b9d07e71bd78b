/* Writing a tokenizer as encoder.json + vocab.bpe (GPT-2's pattern), tokenizer.json and tokenizer_config.json, atomically. */
/* Each file goes to a temporary name and is renamed into place when complete. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tokenizer/tok_internal.h"

/* mkdir -p */
static lmf_status make_dirs(const char *dir) {
    char p[4096];
    size_t n = strlen(dir);
    if (n == 0 || n >= sizeof p) return lmf_fail(LMF_ERR_ARG, "tokenizer: bad output directory '%s'", dir);
    memcpy(p, dir, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (p[i] != '/' && p[i] != '\0') continue;
        char c = p[i];
        p[i] = '\0';
        if (mkdir(p, 0777) != 0 && errno != EEXIST)
            return lmf_fail(LMF_ERR_IO, "%s: cannot create directory: %s", p, strerror(errno));
        p[i] = c;
    }
    struct stat sb;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return lmf_fail(LMF_ERR_IO, "%s: not a directory", dir);
    return LMF_OK;
}

static int valid_utf8(const char *s, size_t n) {
    const uint8_t *u = (const uint8_t *)s;
    for (size_t i = 0; i < n;) {
        uint8_t b = u[i];
        size_t k = b < 0x80 ? 1 : (b >= 0xC2 && b <= 0xDF) ? 2 : (b >= 0xE0 && b <= 0xEF) ? 3
                 : (b >= 0xF0 && b <= 0xF4) ? 4 : 0;
        if (k == 0 || i + k > n) return 0;
        for (size_t j = 1; j < k; j++)
            if ((u[i + j] & 0xC0) != 0x80) return 0;
        if (k == 3 && ((b == 0xE0 && u[i + 1] < 0xA0) || (b == 0xED && u[i + 1] > 0x9F))) return 0;
        if (k == 4 && ((b == 0xF0 && u[i + 1] < 0x90) || (b == 0xF4 && u[i + 1] > 0x8F))) return 0;
        if (b == 0) return 0; /* JSON strings here never hold NUL */
        i += k;
    }
    return 1;
}

/* byte-level spelling of id (NUL-terminated, in buf of capacity >= 2 * len + 1) */
static const char *spell(const lmf_tokenizer *t, uint32_t id, char *buf) {
    lmf_tok_bytes_to_unicode(t->bytes + t->off[id], t->len[id], buf);
    return buf;
}

static lmf_status finish_file(FILE *f, const char *tmp, const char *path) {
    int bad = ferror(f) != 0;
    if (fflush(f) != 0) bad = 1;
    if (!bad && fsync(fileno(f)) != 0) bad = 1;
    if (fclose(f) != 0) bad = 1;
    if (bad) {
        remove(tmp);
        return lmf_fail(LMF_ERR_IO, "%s: write failed: %s", tmp, strerror(errno));
    }
    if (rename(tmp, path) != 0) {
        lmf_status st = lmf_fail(LMF_ERR_IO, "%s: cannot rename into place: %s", path, strerror(errno));
        remove(tmp);
        return st;
    }
    return LMF_OK;
}

static lmf_status dump_json(json_t *root, const char *path, size_t flags) {
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) return lmf_fail(LMF_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
    if (json_dumpf(root, f, flags) != 0 || fputc('\n', f) == EOF) {
        fclose(f);
        remove(tmp);
        return lmf_fail(LMF_ERR_IO, "%s: write failed", tmp);
    }
    return finish_file(f, tmp, path);
}

static size_t max_token_len(const lmf_tokenizer *t) {
    size_t m = 1;
    for (uint32_t i = 0; i < t->n_ids; i++)
        if (t->len[i] != LMF_TOK_NONE && t->len[i] > m) m = t->len[i];
    return m;
}

static lmf_status save_encoder(const lmf_tokenizer *t, const char *path, char *buf) {
    json_t *root = json_object();
    if (!root) return lmf_fail(LMF_ERR_NOMEM, "tokenizer: out of memory");
    for (uint32_t i = 0; i < t->n_ids; i++) {
        if (t->len[i] == LMF_TOK_NONE) continue;
        if (json_object_set_new(root, spell(t, i, buf), json_integer(i)) != 0) {
            json_decref(root);
            return lmf_fail(LMF_ERR_NOMEM, "tokenizer: out of memory");
        }
    }
    lmf_status st = dump_json(root, path, JSON_COMPACT);
    json_decref(root);
    return st;
}

static lmf_status save_merges(const lmf_tokenizer *t, const char *path, char *buf) {
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) return lmf_fail(LMF_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
    fputs("#version: 0.2\n", f);
    for (uint32_t r = 0; r < t->n_merges; r++) {
        fputs(spell(t, t->merge_left[r], buf), f);
        fputc(' ', f);
        fputs(spell(t, t->merge_right[r], buf), f);
        fputc('\n', f);
    }
    return finish_file(f, tmp, path);
}

static json_t *byte_level(const char *type, int add_prefix_space, int trim_offsets) {
    return json_pack("{s:s, s:b, s:b, s:b}", "type", type, "add_prefix_space", add_prefix_space,
                     "trim_offsets", trim_offsets, "use_regex", 1);
}

static lmf_status save_hf(const lmf_tokenizer *t, const char *path, char *buf) {
    json_t *added = json_array(), *vocab = json_object(), *merges = json_array();
    int bad = !added || !vocab || !merges;
    for (uint32_t i = 0; i < t->n_ids && !bad; i++) {
        if (t->len[i] == LMF_TOK_NONE) continue;
        const char *b = t->bytes + t->off[i];
        /* special tokens are written as text; one that is not valid UTF-8 (possible only for a
         * GPT-2 pair's unreached token) keeps its byte-level spelling as an ordinary entry */
        if (t->kind[i] == LMF_TOK_KIND_SPECIAL && valid_utf8(b, t->len[i])) {
            json_t *c = json_stringn_nocheck(b, t->len[i]);
            bad |= json_object_set_new_nocheck(vocab, json_string_value(c), json_integer(i)) != 0;
            bad |= json_array_append_new(added, json_pack("{s:i, s:o, s:b, s:b, s:b, s:b, s:b}",
                                                          "id", (int)i, "content", c, "single_word", 0,
                                                          "lstrip", 0, "rstrip", 0, "normalized", 0,
                                                          "special", 1)) != 0;
        } else {
            bad |= json_object_set_new(vocab, spell(t, i, buf), json_integer(i)) != 0;
        }
    }
    for (uint32_t r = 0; r < t->n_merges && !bad; r++) {
        size_t a = lmf_tok_bytes_to_unicode(t->bytes + t->off[t->merge_left[r]], t->len[t->merge_left[r]], buf);
        buf[a] = ' ';
        lmf_tok_bytes_to_unicode(t->bytes + t->off[t->merge_right[r]], t->len[t->merge_right[r]], buf + a + 1);
        bad |= json_array_append_new(merges, json_string(buf)) != 0;
    }
    if (bad) {
        json_decref(added);
        json_decref(vocab);
        json_decref(merges);
        return lmf_fail(LMF_ERR_NOMEM, "tokenizer: out of memory");
    }
    json_t *model = json_pack("{s:s, s:n, s:n, s:s, s:s, s:b, s:b}", "type", "BPE", "dropout",
                              "unk_token", "continuing_subword_prefix", "", "end_of_word_suffix", "",
                              "fuse_unk", 0, "byte_fallback", 0);
    if (model && t->ignore_merges) json_object_set_new(model, "ignore_merges", json_true());
    if (model) {
        json_object_set_new(model, "vocab", vocab);
        json_object_set_new(model, "merges", merges);
    } else {
        json_decref(vocab);
        json_decref(merges);
    }
    /* cl100k's pattern as Llama 3's file has it: Split, then ByteLevel without GPT-2's regex */
    json_t *pre = byte_level("ByteLevel", 0, 1);
    if (pre && t->pattern == LMF_TOK_PATTERN_CL100K) {
        json_object_set_new(pre, "use_regex", json_false());
        pre = json_pack("{s:s, s:[{s:s, s:{s:s}, s:s, s:b}, o]}", "type", "Sequence", "pretokenizers",
                        "type", "Split", "pattern", "Regex", lmf_tok_cl100k_regex, "behavior",
                        "Isolated", "invert", 0, pre);
    }
    json_t *root = json_pack("{s:s, s:n, s:n, s:o, s:n, s:o, s:o, s:o, s:o}", "version", "1.0",
                             "truncation", "padding", "added_tokens", added, "normalizer",
                             "pre_tokenizer", pre, "post_processor",
                             lmf_tok_post_json(t), "decoder", byte_level("ByteLevel", 1, 1),
                             "model", model);
    if (!root) return lmf_fail(LMF_ERR_NOMEM, "tokenizer: out of memory");
    lmf_status st = dump_json(root, path, JSON_INDENT(2));
    json_decref(root);
    return st;
}

lmf_status lmf_tok_save(const lmf_tokenizer *t, const char *dir) {
    LMF_TRY(make_dirs(dir));
    if (strlen(dir) > 4000) return lmf_fail(LMF_ERR_ARG, "tokenizer: output path too long");
    char *buf = malloc(2 * max_token_len(t) * 2 + 8);
    if (!buf) return lmf_fail(LMF_ERR_NOMEM, "tokenizer: out of memory");
    char path[4100];
    lmf_status st = LMF_OK;
    if (t->pattern == LMF_TOK_PATTERN_GPT2) {
        snprintf(path, sizeof path, "%s/encoder.json", dir);
        st = save_encoder(t, path, buf);
    }
    if (st == LMF_OK && t->pattern == LMF_TOK_PATTERN_GPT2) {
        snprintf(path, sizeof path, "%s/vocab.bpe", dir);
        st = save_merges(t, path, buf);
    }
    if (st == LMF_OK) {
        snprintf(path, sizeof path, "%s/tokenizer.json", dir);
        st = save_hf(t, path, buf);
    }
    free(buf);
    return st;
}

lmf_status lmf_tok_save_hf_config(const lmf_tokenizer *t, const char *dir, int model_max_length) {
    LMF_TRY(make_dirs(dir));
    char path[4200];
    if (snprintf(path, sizeof path, "%s/tokenizer_config.json", dir) >= (int)sizeof path)
        return lmf_fail(LMF_ERR_ARG, "tokenizer: output path too long");
    json_t *root = json_pack("{s:s, s:b}", "tokenizer_class", "PreTrainedTokenizerFast",
                             "clean_up_tokenization_spaces", 0);
    if (!root) return lmf_fail(LMF_ERR_NOMEM, "tokenizer: out of memory");
    if (t->eot >= 0) {
        uint32_t bos = (uint32_t)lmf_tok_bos(t), eos = (uint32_t)t->eot;
        json_object_set_new(root, "bos_token", json_stringn(t->bytes + t->off[bos], t->len[bos]));
        json_object_set_new(root, "eos_token", json_stringn(t->bytes + t->off[eos], t->len[eos]));
    }
    if (model_max_length > 0) json_object_set_new(root, "model_max_length", json_integer(model_max_length));
    lmf_status st = dump_json(root, path, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(root);
    return st;
}

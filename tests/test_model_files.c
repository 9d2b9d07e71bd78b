/* Interoperability tests: Hugging Face and llm.c files written here byte by byte. */
/* Hugging Face GPT-2 directories (fp32/fp16/bf16, single and sharded) and llm.c checkpoints
 * (v3 fp32, v5 bf16) and tokenizers, each written from the format descriptions; exact round
 * trips; bad files rejected with messages naming them. With --write-fixtures DIR the program
 * writes sample foreign files for tests/test_model_files_cli.sh. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lmforge/formats.h"
#include "lmforge/rng.h"
#include "lmforge/safetensors.h"
#include "lmforge/train.h"

#include "lib/test_util.h"

/* vocabulary 50: llm.c pads it to 128 rows, lmforge to 64 */
static const lmf_gpt_config CFG = {2, 2, 16, 12, 50};

/* ---- small file helpers (paths and writing: tests/lib/test_util.h) ---- */

static void mkdir_new(const char *p) { assert_int_equal(mkdir(p, 0777), 0); }

/* ---- the weights, as a dictionary of Hugging Face tensors ---- */

#define MAXT 64
typedef struct dict {
    lmf_gpt_config c;
    int n;
    char name[MAXT][64];
    int nd[MAXT];
    int64_t shape[MAXT][2];
    size_t numel[MAXT];
    float *val[MAXT];          /* row-major in the Hugging Face shape: Conv1D (in, out) */
    uint16_t *f16[MAXT];       /* binary16 bits of val (exact kinds only) */
    uint16_t *b16[MAXT];       /* bfloat16 bits of val (exact kinds only) */
} dict;

/* K_EXACT: every value exact in fp16 and in bf16 (magnitudes 2^-6 .. 4); K_SMALL: the same,
 * 2^-10 .. 2^-2 (a model whose predictions are spread over the whole vocabulary) */
enum { K_F32 = 0, K_EXACT = 1, K_SMALL = 2 };

static void add_tensor(dict *d, const char *name, int64_t r, int64_t c) {
    int i = d->n++;
    snprintf(d->name[i], 64, "%s", name);
    d->nd[i] = c ? 2 : 1;
    d->shape[i][0] = r;
    d->shape[i][1] = c;
    d->numel[i] = (size_t)r * (size_t)(c ? c : 1);
}

/* GPT-2's tensors with their Hugging Face shapes (Conv1D weights are (in, out)) */
static void dict_names(dict *d, const lmf_gpt_config *c) {
    memset(d, 0, sizeof *d);
    d->c = *c;
    int64_t C = c->n_embd;
    char nm[64];
    add_tensor(d, "wte.weight", c->vocab_size, C);
    add_tensor(d, "wpe.weight", c->n_positions, C);
    for (int l = 0; l < c->n_layer; l++) {
        static const struct { const char *s; int r, c; } per[12] = {
            {"ln_1.weight", 1, 0}, {"ln_1.bias", 1, 0}, {"attn.c_attn.weight", 1, 3},
            {"attn.c_attn.bias", 3, 0}, {"attn.c_proj.weight", 1, 1}, {"attn.c_proj.bias", 1, 0},
            {"ln_2.weight", 1, 0}, {"ln_2.bias", 1, 0}, {"mlp.c_fc.weight", 1, 4},
            {"mlp.c_fc.bias", 4, 0}, {"mlp.c_proj.weight", 4, 1}, {"mlp.c_proj.bias", 1, 0}};
        for (int k = 0; k < 12; k++) {
            snprintf(nm, sizeof nm, "h.%d.%s", l, per[k].s);
            add_tensor(d, nm, per[k].r * C, per[k].c * C);
        }
    }
    add_tensor(d, "ln_f.weight", C, 0);
    add_tensor(d, "ln_f.bias", C, 0);
}

static void dict_make(dict *d, const lmf_gpt_config *c, int kind, uint64_t seed) {
    dict_names(d, c);
    lmf_rng r;
    lmf_rng_seed(&r, seed);
    for (int i = 0; i < d->n; i++) {
        d->val[i] = malloc(d->numel[i] * sizeof(float));
        d->f16[i] = malloc(d->numel[i] * 2);
        d->b16[i] = malloc(d->numel[i] * 2);
        for (size_t j = 0; j < d->numel[i]; j++) {
            if (kind == K_F32) {
                d->val[i][j] = (float)(lmf_rng_uniform(&r) - 0.5) * 0.5f;
                continue;
            }
            /* sign, exponent, 7 mantissa bits: exact in binary16 and bfloat16 */
            unsigned s = (unsigned)(lmf_rng_u64(&r) & 1), e = (unsigned)(lmf_rng_u64(&r) % 8),
                     m = (unsigned)(lmf_rng_u64(&r) % 128);
            int ex = (int)e - (kind == K_SMALL ? 10 : 6);
            d->val[i][j] = (s ? -1.0f : 1.0f) * ldexpf(1.0f + (float)m / 128.0f, ex);
            d->f16[i][j] = (uint16_t)(s << 15 | (unsigned)(ex + 15) << 10 | m << 3);
            d->b16[i][j] = (uint16_t)(s << 15 | (unsigned)(ex + 127) << 7 | m);
        }
    }
}

static void dict_free(dict *d) {
    for (int i = 0; i < d->n; i++) {
        free(d->val[i]);
        free(d->f16[i]);
        free(d->b16[i]);
    }
}

static int dict_find(const dict *d, const char *name) {
    for (int i = 0; i < d->n; i++)
        if (strcmp(d->name[i], name) == 0) return i;
    fail_msg("no tensor %s", name);
    return -1;
}

/* the model's weights equal the dictionary bit for bit, padded wte rows are zero */
static void check_model(lmf_gpt *m, const dict *d) {
    const lmf_param_layout *l = lmf_gpt_layout(m);
    assert_int_equal(lmf_gpt_cfg(m)->n_layer, d->c.n_layer);
    assert_int_equal(lmf_gpt_cfg(m)->n_head, d->c.n_head);
    assert_int_equal(lmf_gpt_cfg(m)->n_embd, d->c.n_embd);
    assert_int_equal(lmf_gpt_cfg(m)->n_positions, d->c.n_positions);
    assert_int_equal(lmf_gpt_cfg(m)->vocab_size, d->c.vocab_size);
    assert_int_equal(l->n_tensors, d->n);
    for (int i = 0; i < d->n; i++) {
        int k = lmf_layout_find(l, d->name[i]);
        assert_true(k >= 0);
        const float *p = lmf_gpt_params(m) + l->tensors[k].offset;
        if (memcmp(p, d->val[i], d->numel[i] * sizeof(float)) != 0)
            fail_msg("tensor %s differs", d->name[i]);
        for (size_t j = d->numel[i]; j < l->tensors[k].numel; j++) assert_true(p[j] == 0.0f);
    }
}

/* ---- safetensors, written by hand: 8-byte little-endian header length, JSON, data ---- */

typedef struct st_out {
    char name[96];
    const char *dtype;
    int nd;
    int64_t shape[4];
    const void *data;
    size_t nbytes;
} st_out;

static void write_st(const char *path, const st_out *t, int n, int meta) {
    size_t cap = 1 << 20, off = 0;
    char *h = malloc(cap);
    int pos = snprintf(h, cap, "{%s", meta ? "\"__metadata__\":{\"format\":\"pt\"}" : "");
    for (int i = 0; i < n; i++) {
        pos += snprintf(h + pos, cap - (size_t)pos, "%s\"%s\":{\"dtype\":\"%s\",\"shape\":[",
                        (meta || i) ? "," : "", t[i].name, t[i].dtype);
        for (int k = 0; k < t[i].nd; k++)
            pos += snprintf(h + pos, cap - (size_t)pos, "%s%lld", k ? "," : "", (long long)t[i].shape[k]);
        pos += snprintf(h + pos, cap - (size_t)pos, "],\"data_offsets\":[%zu,%zu]}", off, off + t[i].nbytes);
        off += t[i].nbytes;
    }
    pos += snprintf(h + pos, cap - (size_t)pos, "}");
    while (pos % 8) h[pos++] = ' ';
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    uint64_t hl = (uint64_t)pos;
    fwrite(&hl, 8, 1, f);
    fwrite(h, 1, (size_t)pos, f);
    for (int i = 0; i < n; i++) fwrite(t[i].data, 1, t[i].nbytes, f);
    assert_int_equal(fclose(f), 0);
    free(h);
}

/* config.json with the keys of the GPT-2 configs published on the Hugging Face hub; extra:
 * "key": value to set (replacing the standard value of that key, or added) */
static void config_json(const char *path, const lmf_gpt_config *c, const char *extra) {
    char vals[16][128], buf[4096];
    const char *keys[] = {"activation_function", "architectures", "attn_pdrop", "bos_token_id",
                          "embd_pdrop", "eos_token_id", "initializer_range", "layer_norm_epsilon",
                          "model_type", "n_ctx", "n_embd", "n_head", "n_layer", "n_positions",
                          "summary_activation", "vocab_size"};
    snprintf(vals[0], 128, "\"gelu_new\"");
    snprintf(vals[1], 128, "[\"GPT2LMHeadModel\"]");
    snprintf(vals[2], 128, "0.1");
    snprintf(vals[3], 128, "%d", c->vocab_size - 1);
    snprintf(vals[4], 128, "0.1");
    snprintf(vals[5], 128, "%d", c->vocab_size - 1);
    snprintf(vals[6], 128, "0.02");
    snprintf(vals[7], 128, "1e-05");
    snprintf(vals[8], 128, "\"gpt2\"");
    snprintf(vals[9], 128, "%d", c->n_positions);
    snprintf(vals[10], 128, "%d", c->n_embd);
    snprintf(vals[11], 128, "%d", c->n_head);
    snprintf(vals[12], 128, "%d", c->n_layer);
    snprintf(vals[13], 128, "%d", c->n_positions);
    snprintf(vals[14], 128, "null");
    snprintf(vals[15], 128, "%d", c->vocab_size);
    int pos = snprintf(buf, sizeof buf, "{\n  \"task_specific_params\": {\"text-generation\": "
                       "{\"do_sample\": true, \"max_length\": 50}}");
    int replaced = 0;
    for (int i = 0; i < 16; i++) {
        char key[64];
        snprintf(key, sizeof key, "\"%s\":", keys[i]);
        if (extra && strncmp(extra, key, strlen(key)) == 0) {
            pos += snprintf(buf + pos, sizeof buf - (size_t)pos, ",\n  %s", extra);
            replaced = 1;
        } else {
            pos += snprintf(buf + pos, sizeof buf - (size_t)pos, ",\n  \"%s\": %s", keys[i], vals[i]);
        }
    }
    if (extra && !replaced) pos += snprintf(buf + pos, sizeof buf - (size_t)pos, ",\n  %s", extra);
    snprintf(buf + pos, sizeof buf - (size_t)pos, "\n}\n");
    lmf_test_write_text(path, buf);
}

typedef struct hf_opts {
    const char *dtype;         /* "F32", "F16", "BF16" */
    int prefix;                /* names start with "transformer." */
    int buffers;               /* h.N.attn.bias / masked_bias buffers present */
    int lm_head;               /* 0 none, 1 equal to wte, 2 different */
    int shards;                /* 0: model.safetensors; 2: two shards + index */
    const char *config_extra;  /* "\"key\": value, " added to config.json */
    const char *skip;          /* leave this tensor out */
    const char *extra_tensor;  /* add an unexpected tensor with this name */
    int transpose_attn;        /* write c_attn.weight with its dimensions swapped */
} hf_opts;

static void tensor_out(st_out *o, const dict *d, int i, const char *dtype, const char *name) {
    snprintf(o->name, sizeof o->name, "%s", name);
    o->dtype = dtype;
    o->nd = d->nd[i];
    o->shape[0] = d->shape[i][0];
    o->shape[1] = d->shape[i][1];
    if (strcmp(dtype, "F32") == 0) {
        o->data = d->val[i];
        o->nbytes = d->numel[i] * 4;
    } else {
        o->data = strcmp(dtype, "F16") == 0 ? (const void *)d->f16[i] : (const void *)d->b16[i];
        o->nbytes = d->numel[i] * 2;
    }
}

/* A Hugging Face GPT-2 directory of the dictionary's weights. */
static void write_hf(const char *dir, const dict *d, const hf_opts *o) {
    char p[4096];
    mkdir_new(dir);
    snprintf(p, sizeof p, "%s/config.json", dir);
    config_json(p, &d->c, o->config_extra);
    st_out *t = calloc(MAXT * 2, sizeof *t);
    int n = 0;
    const char *pre = o->prefix ? "transformer." : "";
    char nm[96];
    size_t T = (size_t)d->c.n_positions;
    float *mask = calloc(T * T, sizeof(float)), zero = 0.0f;
    for (size_t i = 0; i < T; i++)
        for (size_t j = 0; j <= i; j++) mask[i * T + j] = 1.0f;
    for (int i = 0; i < d->n; i++) {
        if (o->skip && strcmp(o->skip, d->name[i]) == 0) continue;
        snprintf(nm, sizeof nm, "%s%s", pre, d->name[i]);
        tensor_out(&t[n], d, i, o->dtype, nm);
        if (o->transpose_attn && strstr(d->name[i], "c_attn.weight")) {
            t[n].shape[0] = d->shape[i][1];
            t[n].shape[1] = d->shape[i][0];
        }
        n++;
        int layer, end = 0;
        if (o->buffers && sscanf(d->name[i], "h.%d.ln_1.weight%n", &layer, &end) == 1 &&
            d->name[i][end] == '\0' && end > 0) {
            snprintf(t[n].name, sizeof t[n].name, "%sh.%d.attn.bias", pre, layer);
            t[n].dtype = "F32";
            t[n].nd = 4;
            t[n].shape[0] = t[n].shape[1] = 1;
            t[n].shape[2] = t[n].shape[3] = (int64_t)T;
            t[n].data = mask;
            t[n].nbytes = T * T * 4;
            n++;
            snprintf(t[n].name, sizeof t[n].name, "%sh.%d.attn.masked_bias", pre, layer);
            t[n].dtype = "F32";
            t[n].nd = 0;
            t[n].data = &zero;
            t[n].nbytes = 4;
            n++;
        }
    }
    float *other = NULL;
    if (o->lm_head) {
        int w = dict_find(d, "wte.weight");
        tensor_out(&t[n], d, w, "F32", "lm_head.weight");
        if (o->lm_head == 2) {
            other = malloc(d->numel[w] * sizeof(float));
            memcpy(other, d->val[w], d->numel[w] * sizeof(float));
            other[3] += 1.0f;
            t[n].data = other;
        }
        n++;
    }
    if (o->extra_tensor) {
        snprintf(t[n].name, sizeof t[n].name, "%s", o->extra_tensor);
        t[n].dtype = "F32";
        t[n].nd = 1;
        t[n].shape[0] = 1;
        t[n].data = &zero;
        t[n].nbytes = 4;
        n++;
    }
    if (o->shards == 0) {
        snprintf(p, sizeof p, "%s/model.safetensors", dir);
        write_st(p, t, n, 1);
    } else {
        /* first half in shard 1, the rest in shard 2, and the index naming each one's file */
        int half = n / 2;
        snprintf(p, sizeof p, "%s/model-00001-of-00002.safetensors", dir);
        write_st(p, t, half, 1);
        snprintf(p, sizeof p, "%s/model-00002-of-00002.safetensors", dir);
        write_st(p, t + half, n - half, 1);
        size_t cap = 1 << 16;
        char *idx = malloc(cap);
        int pos = snprintf(idx, cap, "{\"metadata\": {\"total_size\": 0}, \"weight_map\": {");
        for (int i = 0; i < n; i++)
            pos += snprintf(idx + pos, cap - (size_t)pos, "%s\"%s\": \"model-0000%d-of-00002.safetensors\"",
                            i ? ", " : "", t[i].name, i < half ? 1 : 2);
        snprintf(idx + pos, cap - (size_t)pos, "}}\n");
        snprintf(p, sizeof p, "%s/model.safetensors.index.json", dir);
        lmf_test_write_text(p, idx);
        free(idx);
    }
    free(other);
    free(mask);
    free(t);
}

/* ---- llm.c checkpoint, written by hand from its description ---- */

/* Element (o, i) of an llm.c linear weight (out, in) is element (i, o) of the Hugging Face
 * Conv1D weight (in, out); vectors are shared as they are. pad: value of the padded wte rows. */
static void write_llmc_file(const char *path, const dict *d, int version, float pad) {
    const lmf_gpt_config *c = &d->c;
    int C = c->n_embd, L = c->n_layer, Vp = (c->vocab_size + 127) / 128 * 128;
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    int32_t hdr[256] = {20240326, version, c->n_positions, c->vocab_size, L, c->n_head, C, Vp};
    fwrite(hdr, 4, 256, f);
#define PUT(i, j) do { \
        if (version == 3) fwrite(&d->val[i][j], 4, 1, f); else fwrite(&d->b16[i][j], 2, 1, f); \
    } while (0)
    static const char *const order[16] = {
        "wte.weight", "wpe.weight", "ln_1.weight", "ln_1.bias", "attn.c_attn.weight",
        "attn.c_attn.bias", "attn.c_proj.weight", "attn.c_proj.bias", "ln_2.weight", "ln_2.bias",
        "mlp.c_fc.weight", "mlp.c_fc.bias", "mlp.c_proj.weight", "mlp.c_proj.bias", "ln_f.weight",
        "ln_f.bias"};
    char nm[64];
    for (int k = 0; k < 16; k++) {
        int per_layer = k >= 2 && k <= 13;
        for (int l = 0; l < (per_layer ? L : 1); l++) {
            if (per_layer) snprintf(nm, sizeof nm, "h.%d.%s", l, order[k]);
            else snprintf(nm, sizeof nm, "%s", order[k]);
            int i = dict_find(d, nm);
            if (d->nd[i] == 2 && per_layer) {
                int64_t in = d->shape[i][0], out = d->shape[i][1];
                for (int64_t o = 0; o < out; o++)
                    for (int64_t x = 0; x < in; x++) PUT(i, (size_t)(x * out + o));
            } else {
                for (size_t j = 0; j < d->numel[i]; j++) PUT(i, j);
            }
            if (k == 0) /* padded vocabulary rows */
                for (size_t j = 0; j < (size_t)(Vp - c->vocab_size) * (size_t)C; j++) {
                    uint32_t bits;
                    memcpy(&bits, &pad, 4);
                    uint16_t b = (uint16_t)(bits >> 16);
                    if (version == 3) fwrite(&pad, 4, 1, f); else fwrite(&b, 2, 1, f);
                }
        }
    }
#undef PUT
    assert_int_equal(fclose(f), 0);
}

/* ---- llm.c tokenizer file ---- */

/* ids 0..255 the bytes, then n_words distinct five-byte tokens "#wxyz", then <|endoftext|> */
static void write_llmc_tokenizer(const char *path, int version, uint32_t n_words, int32_t eot_override) {
    uint32_t n = 256 + n_words + 1;
    uint32_t hdr[256] = {20240328, (uint32_t)version, n, eot_override >= 0 ? (uint32_t)eot_override : n - 1};
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fwrite(hdr, 4, 256, f);
    for (uint32_t i = 0; i < n; i++) {
        uint8_t buf[16];
        uint8_t len;
        if (i < 256) {
            buf[0] = (uint8_t)i;
            len = 1;
        } else if (i < n - 1) {
            uint32_t w = i - 256;
            buf[0] = '#';
            buf[1] = (uint8_t)('a' + w % 26);
            buf[2] = (uint8_t)('a' + (w / 26) % 26);
            buf[3] = (uint8_t)('a' + (w / 676) % 26);
            buf[4] = (uint8_t)('a' + (w / 17576) % 26);
            len = 5;
        } else {
            memcpy(buf, "<|endoftext|>", 13);
            len = 13;
        }
        fwrite(&len, 1, 1, f);
        fwrite(buf, 1, len, f);
    }
    assert_int_equal(fclose(f), 0);
}

/* ---- expectations about failures ---- */

static void expect_fail(lmf_status s, const char *name_in_msg, const char *phrase) {
    const char *msg = lmf_last_error();
    if (s == LMF_OK) fail_msg("expected a failure mentioning '%s'", phrase ? phrase : name_in_msg);
    if (!strstr(msg, name_in_msg)) fail_msg("message does not name %s: %s", name_in_msg, msg);
    if (phrase && !strstr(msg, phrase)) fail_msg("message lacks '%s': %s", phrase, msg);
}

static void expect_load_fail(const char *path, const char *name_in_msg, const char *phrase) {
    lmf_gpt *m = (lmf_gpt *)0x1;
    lmf_status s = lmf_model_load_any(path, lmf_kernels_ref(), &m);
    assert_null(m);
    expect_fail(s, name_in_msg, phrase);
}

static lmf_gpt *load_ok(const char *path) {
    lmf_gpt *m = NULL;
    lmf_status s = lmf_model_load_any(path, lmf_kernels_ref(), &m);
    if (s != LMF_OK) fail_msg("%s: %s", path, lmf_last_error());
    return m;
}

/* ---- Hugging Face directories ---- */

static void test_hf_fp32(void **state) {
    (void)state;
    char p[4096];
    dict d;
    dict_make(&d, &CFG, K_F32, 1);
    hf_opts o = {.dtype = "F32", .buffers = 1};
    write_hf(lmf_test_path(p, sizeof p, "hf32"), &d, &o);
    lmf_model_format fmt;
    char load[4096];
    assert_int_equal(lmf_model_detect(p, &fmt, load, sizeof load), LMF_OK);
    assert_int_equal(fmt, LMF_MODEL_HF);
    lmf_gpt *m = load_ok(p);
    check_model(m, &d);
    lmf_gpt_free(m);
    /* the same through the path of its model.safetensors */
    m = load_ok(lmf_test_path(p, sizeof p, "hf32/model.safetensors"));
    check_model(m, &d);
    lmf_gpt_free(m);
    /* "transformer." prefix and a tied lm_head.weight */
    hf_opts o2 = {.dtype = "F32", .prefix = 1, .buffers = 1, .lm_head = 1};
    write_hf(lmf_test_path(p, sizeof p, "hf32p"), &d, &o2);
    m = load_ok(p);
    check_model(m, &d);
    lmf_gpt_free(m);
    dict_free(&d);
}

static void test_hf_half(void **state) {
    (void)state;
    char p[4096];
    dict d;
    dict_make(&d, &CFG, K_EXACT, 2);
    const char *dt[2] = {"F16", "BF16"};
    for (int k = 0; k < 2; k++) {
        hf_opts o = {.dtype = dt[k], .buffers = k};
        write_hf(lmf_test_path(p, sizeof p, "hf_%s", dt[k]), &d, &o);
        lmf_gpt *m = load_ok(p);
        check_model(m, &d);
        lmf_gpt_free(m);
    }
    dict_free(&d);
}

static void test_hf_sharded(void **state) {
    (void)state;
    char p[4096];
    dict d;
    dict_make(&d, &CFG, K_EXACT, 3);
    hf_opts o = {.dtype = "F16", .prefix = 1, .buffers = 1, .shards = 2};
    write_hf(lmf_test_path(p, sizeof p, "hf_sharded"), &d, &o);
    lmf_gpt *m = load_ok(p);
    check_model(m, &d);
    lmf_gpt_free(m);
    m = load_ok(lmf_test_path(p, sizeof p, "hf_sharded/model.safetensors.index.json"));
    check_model(m, &d);
    lmf_gpt_free(m);
    dict_free(&d);
}

static void test_hf_bad(void **state) {
    (void)state;
    char p[4096], f[4096];
    dict d;
    dict_make(&d, &CFG, K_F32, 4);
    struct { const char *dir; hf_opts o; const char *file, *phrase; } cases[] = {
        {"bad_act", {.dtype = "F32", .config_extra = "\"activation_function\": \"relu\""}, "config.json", "activation_function"},
        {"bad_eps", {.dtype = "F32", .config_extra = "\"layer_norm_epsilon\": 1e-6"}, "config.json", "layer_norm_epsilon"},
        {"bad_untied_cfg", {.dtype = "F32", .config_extra = "\"tie_word_embeddings\": false"}, "config.json", "tie_word_embeddings"},
        {"bad_type", {.dtype = "F32", .config_extra = "\"model_type\": \"falcon\""}, "config.json", "model_type"},
        {"bad_transposed", {.dtype = "F32", .transpose_attn = 1}, "model.safetensors", "transposed"},
        {"bad_untied", {.dtype = "F32", .lm_head = 2}, "model.safetensors", "untied"},
        {"bad_extra", {.dtype = "F32", .extra_tensor = "h.0.attn.lora_A"}, "model.safetensors", "unexpected tensor 'h.0.attn.lora_A'"},
        {"bad_twice", {.dtype = "F32", .extra_tensor = "transformer.wte.weight"}, "model.safetensors", "more than once"},
        {"bad_missing", {.dtype = "F32", .skip = "ln_f.bias"}, "model.safetensors", "'ln_f.bias' is missing"},
        {"bad_shard_missing", {.dtype = "F32", .shards = 2, .skip = "h.1.ln_2.bias"}, "index.json", "missing from every shard"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_hf(lmf_test_path(p, sizeof p, "%s", cases[i].dir), &d, &cases[i].o);
        expect_load_fail(p, cases[i].file, cases[i].phrase);
    }
    /* not a JSON object as config */
    hf_opts plain = {.dtype = "F32"};
    write_hf(lmf_test_path(p, sizeof p, "bad_cfg_json"), &d, &plain);
    lmf_test_write_text(lmf_test_path(f, sizeof f, "bad_cfg_json/config.json"), "{\"n_layer\": 2,");
    expect_load_fail(p, f, "not valid JSON");
    /* an absent key takes GPT2Config's default (n_embd 768), as transformers reads it: the
     * weights then disagree with the config, and the message says so */
    lmf_test_write_text(f, "{\"n_layer\": 2, \"n_head\": 2, \"vocab_size\": 50, \"n_positions\": 12}");
    expect_load_fail(p, "model.safetensors", "config.json implies [50, 768]");
    /* only PyTorch weights */
    mkdir_new(lmf_test_path(p, sizeof p, "bad_pickle"));
    config_json(lmf_test_path(f, sizeof f, "bad_pickle/config.json"), &CFG, NULL);
    lmf_test_write_text(lmf_test_path(f, sizeof f, "bad_pickle/pytorch_model.bin"), "PK");
    expect_load_fail(p, "bad_pickle", "pytorch_model.bin");
    /* integer tensor where floats belong */
    write_hf(lmf_test_path(p, sizeof p, "bad_dtype_int"), &d, &plain);
    {
        st_out t[1];
        int w = dict_find(&d, "wte.weight");
        tensor_out(&t[0], &d, w, "F32", "wte.weight");
        t[0].dtype = "I32";
        write_st(lmf_test_path(f, sizeof f, "bad_dtype_int/model.safetensors"), t, 1, 1);
        expect_load_fail(p, f, NULL);
    }
    dict_free(&d);
}

/* damaged safetensors files: each error names the file */
static void test_hf_bad_safetensors(void **state) {
    (void)state;
    char p[4096], f[4096];
    dict d;
    dict_make(&d, &CFG, K_F32, 5);
    hf_opts plain = {.dtype = "F32"};
    const char *headers[] = {
        "this is not json",                                                           /* not JSON */
        "{\"wte.weight\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
        "\"wpe.weight\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",  /* overlap */
        "{\"wte.weight\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", /* past end */
        "{\"wte.weight\":{\"dtype\":\"F9\",\"shape\":[2],\"data_offsets\":[0,8]}}",   /* dtype */
        "{\"wte.weight\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}",  /* size */
    };
    for (size_t i = 0; i < sizeof headers / sizeof headers[0]; i++) {
        write_hf(lmf_test_path(p, sizeof p, "bad_st%zu", i), &d, &plain);
        lmf_test_path(f, sizeof f, "bad_st%zu/model.safetensors", i);
        size_t hl = strlen(headers[i]), pad = (8 - hl % 8) % 8;
        uint8_t *b = calloc(8 + hl + pad + 12, 1);
        uint64_t len = hl + pad;
        memcpy(b, &len, 8);
        memcpy(b + 8, headers[i], hl);
        memset(b + 8 + hl, ' ', pad);
        lmf_test_write_bytes(f, b, 8 + hl + pad + 12);
        free(b);
        expect_load_fail(p, f, NULL);
    }
    /* a header length far past the end of the file, and a truncated file */
    write_hf(lmf_test_path(p, sizeof p, "bad_st_len"), &d, &plain);
    uint64_t huge = (uint64_t)1 << 62;
    lmf_test_write_bytes(lmf_test_path(f, sizeof f, "bad_st_len/model.safetensors"), &huge, 8);
    expect_load_fail(p, f, NULL);
    write_hf(lmf_test_path(p, sizeof p, "bad_st_trunc"), &d, &plain);
    size_t n;
    uint8_t *b = (uint8_t *)lmf_test_read_file(lmf_test_path(f, sizeof f, "bad_st_trunc/model.safetensors"), &n);
    lmf_test_write_bytes(f, b, n - 100);
    free(b);
    expect_load_fail(p, f, NULL);
    dict_free(&d);
}

static void rewrite_index(const char *dir, const char *from, const char *to) {
    char p[4096];
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", dir);
    size_t n;
    char *s = lmf_test_read_file(p, &n);
    s[n] = '\0';
    char *at = strstr(s, from);
    assert_non_null(at);
    char *out = malloc(n + strlen(to) + 1);
    size_t k = (size_t)(at - s);
    memcpy(out, s, k);
    strcpy(out + k, to);
    strcat(out, at + strlen(from));
    lmf_test_write_text(p, out);
    free(out);
    free(s);
}

static void test_hf_bad_index(void **state) {
    (void)state;
    char p[4096], f[4096];
    dict d;
    dict_make(&d, &CFG, K_F32, 6);
    hf_opts o = {.dtype = "F32", .shards = 2};
    /* a token file that is not there */
    write_hf(lmf_test_path(p, sizeof p, "bad_idx_file"), &d, &o);
    rewrite_index(p, "\"wte.weight\": \"model-00001-of-00002.safetensors\"",
                  "\"wte.weight\": \"model-00009-of-00002.safetensors\"");
    expect_load_fail(p, "model-00009-of-00002.safetensors", "does not exist");
    /* the map names the wrong shard */
    write_hf(lmf_test_path(p, sizeof p, "bad_idx_wrong"), &d, &o);
    rewrite_index(p, "\"ln_f.bias\": \"model-00002-of-00002.safetensors\"",
                  "\"ln_f.bias\": \"model-00001-of-00002.safetensors\"");
    expect_load_fail(p, "index.json", "has no such tensor");
    /* a path outside the directory */
    write_hf(lmf_test_path(p, sizeof p, "bad_idx_escape"), &d, &o);
    rewrite_index(p, "\"wte.weight\": \"model-00001-of-00002.safetensors\"",
                  "\"wte.weight\": \"../model-00001-of-00002.safetensors\"");
    expect_load_fail(p, "index.json", "must name a file");
    /* not JSON, and no weight_map */
    write_hf(lmf_test_path(p, sizeof p, "bad_idx_json"), &d, &o);
    lmf_test_write_text(lmf_test_path(f, sizeof f, "bad_idx_json/model.safetensors.index.json"),
                        "{\"weight_map\": ");
    expect_load_fail(p, f, "not valid JSON");
    lmf_test_write_text(f, "{\"metadata\": {}}");
    expect_load_fail(p, f, "weight_map");
    /* a tensor in both shards (wte.weight in shard 1, transformer.wte.weight in shard 2) */
    hf_opts twice = {.dtype = "F32", .shards = 2, .extra_tensor = "transformer.wte.weight"};
    write_hf(lmf_test_path(p, sizeof p, "bad_idx_twice"), &d, &twice);
    expect_load_fail(p, "index.json", "more than once");
    dict_free(&d);
}

/* ---- llm.c checkpoints ---- */

static void test_llmc_load(void **state) {
    (void)state;
    char p[4096];
    dict d;
    dict_make(&d, &CFG, K_EXACT, 7);
    /* v3 with non-zero padding (dropped on load) */
    write_llmc_file(lmf_test_path(p, sizeof p, "v3pad.bin"), &d, 3, 0.5f);
    lmf_model_format fmt;
    char load[4096];
    assert_int_equal(lmf_model_detect(p, &fmt, load, sizeof load), LMF_OK);
    assert_int_equal(fmt, LMF_MODEL_LLMC);
    lmf_gpt *m = load_ok(p);
    check_model(m, &d);
    lmf_gpt_free(m);
    /* v5: the same values as bf16 */
    write_llmc_file(lmf_test_path(p, sizeof p, "v5.bin"), &d, 5, 0.0f);
    m = load_ok(p);
    check_model(m, &d);
    lmf_gpt_free(m);
    /* from memory, as the fuzz harness reads */
    size_t n;
    uint8_t *b = (uint8_t *)lmf_test_read_file(p, &n);
    assert_int_equal(lmf_llmc_load_buffer(b, n, "mem", lmf_kernels_ref(), &m), LMF_OK);
    check_model(m, &d);
    lmf_gpt_free(m);
    free(b);
    dict_free(&d);
}

/* lmforge's llm.c writer against the description: byte-identical files */
static void test_llmc_write(void **state) {
    (void)state;
    char p[4096], q[4096];
    dict d;
    dict_make(&d, &CFG, K_EXACT, 8);
    hf_opts o = {.dtype = "F32"};
    write_hf(lmf_test_path(p, sizeof p, "hf_for_llmc"), &d, &o);
    lmf_gpt *m = load_ok(p);
    for (int v = 3; v <= 5; v += 2) {
        write_llmc_file(lmf_test_path(p, sizeof p, "want_v%d.bin", v), &d, v, 0.0f);
        assert_int_equal(lmf_llmc_save(m, lmf_test_path(q, sizeof q, "got_v%d.bin", v), v), LMF_OK);
        size_t na, nb;
        uint8_t *a = (uint8_t *)lmf_test_read_file(p, &na), *b = (uint8_t *)lmf_test_read_file(q, &nb);
        assert_int_equal(na, nb);
        assert_memory_equal(a, b, na);
        free(a);
        free(b);
    }
    lmf_gpt_free(m);
    /* bf16 export of values that need rounding: nearest, ties to even */
    dict r;
    dict_make(&r, &CFG, K_F32, 9);
    write_hf(lmf_test_path(p, sizeof p, "hf_round"), &r, &o);
    m = load_ok(p);
    assert_int_equal(lmf_llmc_save(m, lmf_test_path(q, sizeof q, "round_v5.bin"), 5), LMF_OK);
    size_t n;
    uint8_t *b = (uint8_t *)lmf_test_read_file(q, &n);
    /* wte is the first tensor after the header: rows of the real vocabulary */
    int w = dict_find(&r, "wte.weight");
    for (size_t j = 0; j < r.numel[w]; j++) {
        uint16_t got;
        memcpy(&got, b + 1024 + 2 * j, 2);
        float x = r.val[w][j];
        uint32_t bits;
        memcpy(&bits, &x, 4);
        uint16_t lo = (uint16_t)(bits >> 16), hi = (uint16_t)(lo + 1);
        uint32_t lb = (uint32_t)lo << 16, hb = (uint32_t)hi << 16;
        float fl, fh;
        memcpy(&fl, &lb, 4);
        memcpy(&fh, &hb, 4);
        double dl = fabs((double)x - fl), dh = fabs((double)x - fh);
        uint16_t want = dl < dh ? lo : dh < dl ? hi : ((lo & 1) ? hi : lo);
        if (got != want) fail_msg("wte[%zu] = %.9g: bf16 %04x, expected %04x", j, (double)x, got, want);
    }
    free(b);
    lmf_gpt_free(m);
    dict_free(&r);
    dict_free(&d);
}

static void put_i32_at(uint8_t *b, int i, int32_t v) { memcpy(b + 4 * i, &v, 4); }

static void test_llmc_bad(void **state) {
    (void)state;
    char p[4096], q[4096];
    dict d;
    dict_make(&d, &CFG, K_EXACT, 10);
    write_llmc_file(lmf_test_path(p, sizeof p, "good.bin"), &d, 3, 0.0f);
    size_t n;
    uint8_t *good = (uint8_t *)lmf_test_read_file(p, &n);
    uint8_t *b = malloc(n + 64);
    struct { const char *file, *phrase; int word; int32_t value; long size_delta; } cases[] = {
        {"trunc.bin", "truncated", -1, 0, -4},
        {"long.bin", "disagree with the data size", -1, 0, 8},
        {"magic.bin", "magic", 0, 12345, 0},
        {"tokmagic.bin", "tokenizer file", 0, 20240328, 0},
        {"shardmagic.bin", "token file", 0, 20240520, 0},
        {"version.bin", "version 4", 1, 4, 0},
        {"version1.bin", "re-export", 1, 1, 0},
        {"channels.bin", "implies", 6, 32, 0},
        {"layers.bin", "implies", 4, 3, 0},
        {"zero.bin", "num_heads is 0", 5, 0, 0},
        {"neg.bin", "max_seq_len is -5", 2, -5, 0},
        {"heads.bin", "not divisible", 5, 3, 0},
        {"padded.bin", "padded_vocab_size 40", 7, 40, 0},
        {"huge.bin", NULL, 4, 2000000000, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        memcpy(b, good, n);
        if (cases[i].word >= 0) put_i32_at(b, cases[i].word, cases[i].value);
        size_t len = (size_t)((long)n + cases[i].size_delta);
        if (cases[i].size_delta > 0) memset(b + n, 0, (size_t)cases[i].size_delta);
        lmf_test_write_bytes(lmf_test_path(q, sizeof q, "%s", cases[i].file), b, len);
        expect_load_fail(q, q, cases[i].phrase);
        lmf_gpt *m = NULL;
        expect_fail(lmf_llmc_load_buffer(b, len, q, lmf_kernels_ref(), &m), q, cases[i].phrase);
        assert_null(m);
    }
    /* shorter than the header */
    lmf_test_write_bytes(lmf_test_path(q, sizeof q, "short.bin"), good, 100);
    expect_load_fail(q, q, "shorter than its 1024-byte header");
    free(b);
    free(good);
    dict_free(&d);
}

/* ---- round trips and logits ---- */

static lmf_gpt *random_model(uint64_t seed) {
    lmf_gpt *m = NULL;
    assert_int_equal(lmf_gpt_create(&CFG, lmf_kernels_ref(), &m), LMF_OK);
    const lmf_param_layout *l = lmf_gpt_layout(m);
    lmf_rng r;
    lmf_rng_seed(&r, seed);
    for (int i = 0; i < l->n_tensors; i++) {
        const lmf_tensor_info *t = &l->tensors[i];
        size_t real = (size_t)t->shape[0] * (size_t)(t->ndim > 1 ? t->shape[1] : 1);
        for (size_t j = 0; j < real; j++)
            lmf_gpt_params(m)[t->offset + j] = (float)(lmf_rng_uniform(&r) - 0.5) * 0.6f;
    }
    return m;
}

static void same_logits(lmf_gpt *a, lmf_gpt *b) {
    enum { BB = 2, TT = 7 };
    int32_t in[BB * TT], tg[BB * TT];
    for (int i = 0; i < BB * TT; i++) {
        in[i] = (i * 13 + 5) % CFG.vocab_size;
        tg[i] = (i * 7 + 2) % CFG.vocab_size;
    }
    float la, lb, ga[64], gb[64];
    assert_int_equal(lmf_gpt_reserve(a, BB, TT, LMF_RESERVE_INFERENCE), LMF_OK);
    assert_int_equal(lmf_gpt_reserve(b, BB, TT, LMF_RESERVE_INFERENCE), LMF_OK);
    assert_int_equal(lmf_gpt_forward(a, in, tg, BB, TT, 0, 1.0f, &la), LMF_OK);
    assert_int_equal(lmf_gpt_forward(b, in, tg, BB, TT, 0, 1.0f, &lb), LMF_OK);
    assert_memory_equal(&la, &lb, sizeof la);
    for (int bb = 0; bb < BB; bb++)
        for (int t = 0; t < TT; t++) {
            lmf_gpt_logits_at(a, bb, t, ga);
            lmf_gpt_logits_at(b, bb, t, gb);
            assert_memory_equal(ga, gb, (size_t)CFG.vocab_size * sizeof(float));
        }
}

static void same_params(lmf_gpt *a, lmf_gpt *b) {
    size_t n = lmf_gpt_layout(a)->total;
    assert_int_equal(n, lmf_gpt_layout(b)->total);
    assert_memory_equal(lmf_gpt_params(a), lmf_gpt_params(b), n * sizeof(float));
}

static void test_round_trips(void **state) {
    (void)state;
    char p[4096], q[4096];
    lmf_gpt *m = random_model(21);
    /* lmforge -> hf -> lmforge */
    assert_int_equal(lmf_hf_save(m, lmf_test_path(p, sizeof p, "rt_hf"), -1), LMF_OK);
    lmf_gpt *h = load_ok(p);
    same_params(m, h);
    same_logits(m, h);
    /* lmforge -> llmc -> lmforge */
    assert_int_equal(lmf_llmc_save(m, lmf_test_path(q, sizeof q, "rt.bin"), 3), LMF_OK);
    lmf_gpt *c = load_ok(q);
    same_params(m, c);
    same_logits(m, c);
    /* hf -> llmc -> hf gives the same safetensors bytes; lmforge's own directory loads too */
    assert_int_equal(lmf_hf_save(c, lmf_test_path(q, sizeof q, "rt_hf2"), -1), LMF_OK);
    size_t na, nb;
    uint8_t *a = (uint8_t *)lmf_test_read_file(lmf_test_path(p, sizeof p, "rt_hf/model.safetensors"), &na);
    uint8_t *b = (uint8_t *)lmf_test_read_file(lmf_test_path(q, sizeof q, "rt_hf2/model.safetensors"), &nb);
    assert_int_equal(na, nb);
    assert_memory_equal(a, b, na);
    free(a);
    free(b);
    assert_int_equal(lmf_hf_save(m, lmf_test_path(p, sizeof p, "rt_lmf"), -1), LMF_OK);
    lmf_gpt *g = load_ok(p);
    same_params(m, g);
    /* bf16: every weight is its nearest bf16 value */
    assert_int_equal(lmf_llmc_save(m, lmf_test_path(q, sizeof q, "rt16.bin"), 5), LMF_OK);
    lmf_gpt *s = load_ok(q);
    const float *x = lmf_gpt_params(m), *y = lmf_gpt_params(s);
    for (size_t i = 0; i < lmf_gpt_layout(m)->total; i++)
        assert_true(fabsf(x[i] - y[i]) <= fabsf(x[i]) * (1.0f / 256.0f));
    lmf_gpt_free(s);
    lmf_gpt_free(g);
    lmf_gpt_free(c);
    lmf_gpt_free(h);
    lmf_gpt_free(m);
}

/* The Hugging Face export read back by hand: every GPT-2 tensor by its name with its shape,
 * F32, the model's values, nothing else; __metadata__ {"format": "pt"}; GPT2Config keys. */
static void test_hf_export_layout(void **state) {
    (void)state;
    char p[4096];
    lmf_gpt *m = random_model(41);
    assert_int_equal(lmf_hf_save(m, lmf_test_path(p, sizeof p, "export_hf"), 7), LMF_OK);
    size_t n;
    uint8_t *b = (uint8_t *)lmf_test_read_file(lmf_test_path(p, sizeof p, "export_hf/model.safetensors"), &n);
    uint64_t hl;
    memcpy(&hl, b, 8);
    assert_true(hl % 8 == 0 && 8 + hl <= n);
    json_error_t err;
    json_t *h = json_loadb((const char *)b + 8, hl, 0, &err);
    assert_non_null(h);
    json_t *meta = json_object_get(h, "__metadata__");
    assert_int_equal(json_object_size(meta), 1);
    assert_string_equal(json_string_value(json_object_get(meta, "format")), "pt");
    dict d;
    dict_names(&d, &CFG);
    assert_int_equal(json_object_size(h), (size_t)d.n + 1);
    for (int i = 0; i < d.n; i++) {
        json_t *e = json_object_get(h, d.name[i]);
        if (!e) fail_msg("export lacks %s", d.name[i]);
        assert_string_equal(json_string_value(json_object_get(e, "dtype")), "F32");
        json_t *sh = json_object_get(e, "shape"), *off = json_object_get(e, "data_offsets");
        assert_int_equal(json_array_size(sh), (size_t)d.nd[i]);
        for (int k = 0; k < d.nd[i]; k++)
            assert_int_equal(json_integer_value(json_array_get(sh, (size_t)k)), d.shape[i][k]);
        size_t a = (size_t)json_integer_value(json_array_get(off, 0)),
               z = (size_t)json_integer_value(json_array_get(off, 1));
        assert_int_equal(z - a, d.numel[i] * 4);
        const lmf_param_layout *l = lmf_gpt_layout(m);
        const float *want = lmf_gpt_params(m) + l->tensors[lmf_layout_find(l, d.name[i])].offset;
        assert_memory_equal(b + 8 + hl + a, want, d.numel[i] * 4);
    }
    json_decref(h);
    free(b);
    b = (uint8_t *)lmf_test_read_file(lmf_test_path(p, sizeof p, "export_hf/config.json"), &n);
    json_t *c = json_loadb((const char *)b, n, JSON_REJECT_DUPLICATES, &err);
    assert_non_null(c);
    assert_string_equal(json_string_value(json_object_get(c, "model_type")), "gpt2");
    assert_string_equal(json_string_value(json_array_get(json_object_get(c, "architectures"), 0)), "GPT2LMHeadModel");
    assert_string_equal(json_string_value(json_object_get(c, "activation_function")), "gelu_new");
    assert_int_equal(json_integer_value(json_object_get(c, "n_layer")), CFG.n_layer);
    assert_int_equal(json_integer_value(json_object_get(c, "n_head")), CFG.n_head);
    assert_int_equal(json_integer_value(json_object_get(c, "n_embd")), CFG.n_embd);
    assert_int_equal(json_integer_value(json_object_get(c, "n_positions")), CFG.n_positions);
    assert_int_equal(json_integer_value(json_object_get(c, "n_ctx")), CFG.n_positions);
    assert_int_equal(json_integer_value(json_object_get(c, "vocab_size")), CFG.vocab_size);
    assert_int_equal(json_integer_value(json_object_get(c, "eos_token_id")), 7);
    assert_true(fabs(json_number_value(json_object_get(c, "layer_norm_epsilon")) - 1e-5) < 1e-12);
    assert_true(json_is_true(json_object_get(c, "tie_word_embeddings")));
    json_decref(c);
    free(b);
    lmf_gpt_free(m);
}

/* ---- format detection and the tokenizer files ---- */

static void test_detect(void **state) {
    (void)state;
    char p[4096], q[4096];
    int32_t shard[256 + 4] = {20240520, 1, 8};
    lmf_test_write_bytes(lmf_test_path(p, sizeof p, "tokens.bin"), shard, sizeof shard);
    expect_load_fail(p, p, "token file");
    write_llmc_tokenizer(lmf_test_path(p, sizeof p, "tok_as_model.bin"), 2, 3, -1);
    expect_load_fail(p, p, "tokenizer file");
    lmf_test_write_text(lmf_test_path(p, sizeof p, "random.txt"), "hello world, not a model at all");
    expect_load_fail(p, p, "not a model");
    mkdir_new(lmf_test_path(p, sizeof p, "empty"));
    expect_load_fail(p, p, "not a model directory");
    expect_load_fail(lmf_test_path(p, sizeof p, "nonexistent"), p, "cannot open");
    /* a run directory that holds only checkpoints (training stopped before its export) */
    uint16_t tok[200];
    for (int i = 0; i < 200; i++) tok[i] = (uint16_t)((i * 7) % CFG.vocab_size);
    int32_t hdr[256] = {20240520, 1, 200};
    FILE *f = fopen(lmf_test_path(p, sizeof p, "detect_train.bin"), "wb");
    assert_non_null(f);
    fwrite(hdr, 4, 256, f);
    fwrite(tok, 2, 200, f);
    fclose(f);
    lmf_train_opts o;
    lmf_train_opts_default(&o);
    o.cfg = CFG;
    o.data = p;
    o.out_dir = lmf_test_path(q, sizeof q, "run");
    o.steps = 2;
    o.batch = 2;
    o.seq = 8;
    o.eval_every = 0;
    o.kernels = "ref";
    lmf_trainer *t = NULL;
    assert_int_equal(lmf_trainer_create(&o, &t), LMF_OK);
    for (int i = 0; i < 2; i++) assert_int_equal(lmf_trainer_step(t, NULL), LMF_OK);
    assert_int_equal(lmf_trainer_save(t), LMF_OK);
    assert_int_equal(lmf_trainer_wait_save(t), LMF_OK);
    lmf_model_format fmt;
    char load[4096];
    if (lmf_model_detect(q, &fmt, load, sizeof load) != LMF_OK) fail_msg("%s", lmf_last_error());
    assert_int_equal(fmt, LMF_MODEL_CKPT);
    assert_true(strstr(load, "/checkpoints/") != NULL);
    lmf_gpt *r = load_ok(q);
    same_params(lmf_trainer_model(t), r);
    lmf_gpt_free(r);
    lmf_trainer_free(t);
}

static void test_llmc_tokenizer(void **state) {
    (void)state;
    char p[4096], q[4096];
    mkdir_new(lmf_test_path(p, sizeof p, "tokdir"));
    write_llmc_tokenizer(lmf_test_path(p, sizeof p, "tokdir/gpt2_tokenizer.bin"), 2, 40, -1);
    lmf_tokenizer *t = NULL;
    assert_int_equal(lmf_tok_load(p, &t), LMF_OK);
    assert_int_equal(lmf_tok_vocab_size(t), 297);
    assert_int_equal(lmf_tok_eot(t), 296);
    assert_int_equal(lmf_tok_decode_only(t), 1);
    uint32_t ids[4] = {72, 256 + 27, 105, 296};
    char out[64];
    size_t n = 0;
    assert_int_equal(lmf_tok_decode(t, ids, 4, out, sizeof out, &n), LMF_OK);
    assert_int_equal(n, 1 + 5 + 1 + 13);
    assert_memory_equal(out, "H#bbaai<|endoftext|>", n);
    lmf_tok_free(t);
    /* found beside an llm.c checkpoint */
    dict d;
    dict_make(&d, &CFG, K_EXACT, 12);
    write_llmc_file(lmf_test_path(q, sizeof q, "tokdir/model.bin"), &d, 3, 0.0f);
    dict_free(&d);
    assert_int_equal(lmf_model_find_tokenizer(q, &t), LMF_OK);
    assert_non_null(t);
    assert_int_equal(lmf_tok_vocab_size(t), 297);
    lmf_tok_free(t);
    /* version 1: GPT-2's 50257 ids, end-of-text 50256 */
    write_llmc_tokenizer(lmf_test_path(p, sizeof p, "tok_v1.bin"), 1, 50000, 0);
    assert_int_equal(lmf_tok_load(p, &t), LMF_OK);
    assert_int_equal(lmf_tok_vocab_size(t), 50257);
    assert_int_equal(lmf_tok_eot(t), 50256);
    lmf_tok_free(t);
    /* bad files */
    write_llmc_tokenizer(lmf_test_path(p, sizeof p, "tok_v1_small.bin"), 1, 40, 0);
    expect_fail(lmf_tok_load(p, &t), p, "50257");
    write_llmc_tokenizer(lmf_test_path(p, sizeof p, "tok_v3.bin"), 3, 40, -1);
    expect_fail(lmf_tok_load(p, &t), p, "version 3");
    write_llmc_tokenizer(lmf_test_path(p, sizeof p, "tok_eot.bin"), 2, 40, 5000);
    expect_fail(lmf_tok_load(p, &t), p, "end-of-text id 5000");
    size_t len;
    uint8_t *b = (uint8_t *)lmf_test_read_file(lmf_test_path(q, sizeof q, "tokdir/gpt2_tokenizer.bin"), &len);
    lmf_test_write_bytes(lmf_test_path(p, sizeof p, "tok_trunc.bin"), b, len - 3);
    expect_fail(lmf_tok_load(p, &t), p, "truncated");
    lmf_test_write_bytes(lmf_test_path(p, sizeof p, "tok_short.bin"), b, 200);
    expect_fail(lmf_tok_load(p, &t), p, "truncated");
    uint8_t *c = malloc(len + 5);
    memcpy(c, b, len);
    memset(c + len, 7, 5);
    lmf_test_write_bytes(lmf_test_path(p, sizeof p, "tok_tail.bin"), c, len + 5);
    expect_fail(lmf_tok_load(p, &t), p, "5 bytes follow");
    memcpy(c, b, len);
    c[1024] = 0; /* token 0 with length 0 */
    lmf_test_write_bytes(lmf_test_path(p, sizeof p, "tok_zero.bin"), c, len);
    expect_fail(lmf_tok_load(p, &t), p, "length 0");
    memcpy(c, b, len);
    c[0] = 1;
    lmf_test_write_bytes(lmf_test_path(p, sizeof p, "tok_magic.bin"), c, len);
    expect_fail(lmf_tok_parse_llmc(c, len, p, &t), p, "not an llm.c tokenizer");
    free(c);
    free(b);
    assert_null(t);
}

/* ---- fixtures for tests/test_model_files_cli.sh ---- */

/* p = dir/name */
#define FIXTURE(name) (snprintf(p, sizeof p, "%s/%s", dir, name), p)

static int write_fixtures(const char *dir) {
    static const lmf_gpt_config fc = {2, 2, 32, 64, 300};
    char p[4096];
    mkdir(dir, 0777);
    dict d;
    dict_make(&d, &fc, K_SMALL, 77);
    hf_opts sharded = {.dtype = "F16", .prefix = 1, .buffers = 1, .shards = 2};
    write_hf(FIXTURE("hf16"), &d, &sharded);
    hf_opts single = {.dtype = "BF16", .buffers = 1};
    write_hf(FIXTURE("hfbf16"), &d, &single);
    mkdir_new(FIXTURE("llmc"));
    write_llmc_file(FIXTURE("llmc/model.bin"), &d, 3, 0.0f);
    write_llmc_file(FIXTURE("llmc/model_bf16.bin"), &d, 5, 0.0f);
    write_llmc_tokenizer(FIXTURE("llmc/gpt2_tokenizer.bin"), 2, 300 - 257, -1);
    dict_free(&d);
    /* a token file (llm.c layout): a repeating pattern the model can learn */
    enum { NT = 6000 };
    static uint16_t tok[NT];
    for (int i = 0; i < NT; i++) tok[i] = (uint16_t)((i * 7 + (i / 11) * 3) % 257);
    int32_t hdr[256] = {20240520, 1, NT};
    FILE *f = fopen(FIXTURE("train.bin"), "wb");
    if (!f) return 1;
    fwrite(hdr, 4, 256, f);
    fwrite(tok, 2, NT, f);
    fclose(f);
    return 0;
}
#undef FIXTURE

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "--write-fixtures") == 0) return write_fixtures(argv[2]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hf_fp32),         cmocka_unit_test(test_hf_half),
        cmocka_unit_test(test_hf_sharded),      cmocka_unit_test(test_hf_bad),
        cmocka_unit_test(test_hf_bad_safetensors), cmocka_unit_test(test_hf_bad_index),
        cmocka_unit_test(test_llmc_load),       cmocka_unit_test(test_llmc_write),
        cmocka_unit_test(test_llmc_bad),        cmocka_unit_test(test_round_trips),
        cmocka_unit_test(test_detect),          cmocka_unit_test(test_llmc_tokenizer),
        cmocka_unit_test(test_hf_export_layout),
    };
    return cmocka_run_group_tests(tests, lmf_test_tmpdir_setup, lmf_test_tmpdir_teardown);
}

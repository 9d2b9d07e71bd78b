/* Hugging Face GPT-2 and Llama directories: single or sharded safetensors in and out (Llama's
 * nn.Linear weights transposed to and from the kernels' layout). */
#include "lmforge/formats.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lmforge/fsutil.h"
#include "lmforge/safetensors.h"

#define INDEX_MAX_BYTES ((size_t)64 << 20)
#define MAX_SHARDS 100000
#define PREFIX "transformer."

/* The files a directory's weights come from. */
typedef struct hf_src {
    int n;
    lmf_st_file **f;
    char **fname;        /* name of each file inside the directory */
    char what[4096];     /* model.safetensors or the index, for messages */
    json_t *index;       /* the parsed index (sharded) or NULL */
    json_t *map;         /* its weight_map */
} hf_src;

static void src_close(hf_src *s) {
    for (int i = 0; i < s->n; i++) {
        lmf_st_close(s->f[i]);
        free(s->fname[i]);
    }
    free(s->f);
    free(s->fname);
    if (s->index) json_decref(s->index);
    memset(s, 0, sizeof *s);
}

static lmf_status src_add(hf_src *s, const char *dir, const char *name) {
    char path[4096];
    lmf_st_file **f = realloc(s->f, (size_t)(s->n + 1) * sizeof *f);
    if (f) s->f = f;
    char **fn = realloc(s->fname, (size_t)(s->n + 1) * sizeof *fn);
    if (fn) s->fname = fn;
    if (!f || !fn) return lmf_fail(LMF_ERR_NOMEM, "%s: out of memory", s->what);
    s->fname[s->n] = strdup(name);
    if (!s->fname[s->n]) return lmf_fail(LMF_ERR_NOMEM, "%s: out of memory", s->what);
    s->f[s->n] = NULL;
    s->n++;
    LMF_TRY(lmf_path_join(path, sizeof path, dir, name));
    if (!lmf_file_exists(path))
        return lmf_fail(LMF_ERR_IO, "%s: names the shard '%s', which does not exist (%s)", s->what,
                        name, path);
    return lmf_st_open(path, &s->f[s->n - 1]);
}

/* a shard file name: a plain name inside the directory (no path separators, not . or ..) */
static int plain_name(const char *n) {
    size_t l = strlen(n);
    return l > 0 && l < 1024 && !strchr(n, '/') && !strchr(n, '\\') && strcmp(n, ".") != 0 &&
           strcmp(n, "..") != 0;
}

static lmf_status open_index(hf_src *s, const char *dir) {
    char *buf = NULL;
    size_t len = 0;
    LMF_TRY(lmf_read_file(s->what, &buf, &len, INDEX_MAX_BYTES));
    json_error_t err;
    s->index = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &err);
    free(buf);
    if (!s->index)
        return lmf_fail(LMF_ERR_FORMAT, "%s: not valid JSON (line %d: %s)", s->what, err.line,
                        err.text);
    s->map = json_is_object(s->index) ? json_object_get(s->index, "weight_map") : NULL;
    if (!json_is_object(s->map))
        return lmf_fail(LMF_ERR_FORMAT, "%s: no \"weight_map\" object (tensor name -> shard file)",
                        s->what);
    if (json_object_size(s->map) == 0) return lmf_fail(LMF_ERR_FORMAT, "%s: weight_map is empty", s->what);
    const char *key;
    json_t *v;
    json_object_foreach(s->map, key, v) {
        if (!json_is_string(v) || !plain_name(json_string_value(v)))
            return lmf_fail(LMF_ERR_FORMAT, "%s: weight_map entry '%s' must name a file in the "
                            "same directory", s->what, key);
        const char *fn = json_string_value(v);
        int seen = 0;
        for (int i = 0; i < s->n && !seen; i++) seen = strcmp(s->fname[i], fn) == 0;
        if (seen) continue;
        if (s->n >= MAX_SHARDS) return lmf_fail(LMF_ERR_FORMAT, "%s: too many shard files", s->what);
        LMF_TRY(src_add(s, dir, fn));
    }
    /* every entry must be in the shard it names */
    json_object_foreach(s->map, key, v) {
        const char *fn = json_string_value(v);
        for (int i = 0; i < s->n; i++)
            if (strcmp(s->fname[i], fn) == 0 && !lmf_st_find(s->f[i], key))
                return lmf_fail(LMF_ERR_FORMAT, "%s: weight_map puts '%s' in %s, but that file "
                                "has no such tensor", s->what, key, fn);
    }
    return LMF_OK;
}

/* Open dir's weights: model.safetensors, else model.safetensors.index.json and its shards. */
static lmf_status src_open(hf_src *s, const char *dir) {
    memset(s, 0, sizeof *s);
    LMF_TRY(lmf_path_join(s->what, sizeof s->what, dir, "model.safetensors"));
    if (lmf_file_exists(s->what)) return src_add(s, dir, "model.safetensors");
    LMF_TRY(lmf_path_join(s->what, sizeof s->what, dir, "model.safetensors.index.json"));
    if (lmf_file_exists(s->what)) return open_index(s, dir);
    char pt[4096];
    LMF_TRY(lmf_path_join(pt, sizeof pt, dir, "pytorch_model.bin"));
    if (lmf_file_exists(pt))
        return lmf_fail(LMF_ERR_FORMAT, "%s: holds only PyTorch pickle weights (pytorch_model.bin); "
                        "lmforge reads safetensors: save the model with "
                        "save_pretrained(..., safe_serialization=True)", dir);
    return lmf_fail(LMF_ERR_IO, "%s: no model.safetensors or model.safetensors.index.json", dir);
}

/* Find `name` (or "transformer." + name) in exactly one place among the files. *t = NULL when
 * absent and allow_missing. */
static lmf_status find_one(hf_src *s, const char *name, int allow_missing, int *file,
                           const lmf_st_tensor **t) {
    char alt[128];
    snprintf(alt, sizeof alt, PREFIX "%s", name);
    const char *variants[2] = {name, alt};
    int hits = 0;
    *t = NULL;
    for (int i = 0; i < s->n; i++) {
        for (int v = 0; v < 2; v++) {
            const lmf_st_tensor *x = lmf_st_find(s->f[i], variants[v]);
            if (!x) continue;
            if (hits++ == 0) {
                *t = x;
                *file = i;
                continue;
            }
            return lmf_fail(LMF_ERR_FORMAT, "%s: tensor '%s' appears more than once (as '%s' in "
                            "%s and as '%s' in %s)", s->what, name, (*t)->name, s->fname[*file],
                            x->name, s->fname[i]);
        }
    }
    if (!hits) {
        if (allow_missing) return LMF_OK;
        return lmf_fail(LMF_ERR_FORMAT, "%s: tensor '%s' is missing%s", s->what, name,
                        s->index ? " from every shard" : "");
    }
    if (s->index) {
        json_t *e = json_object_get(s->map, (*t)->name);
        if (!e)
            return lmf_fail(LMF_ERR_FORMAT, "%s: weight_map has no entry for '%s' (it is in %s)",
                            s->what, (*t)->name, s->fname[*file]);
        if (strcmp(json_string_value(e), s->fname[*file]) != 0)
            return lmf_fail(LMF_ERR_FORMAT, "%s: weight_map puts '%s' in %s, but it is in %s",
                            s->what, (*t)->name, json_string_value(e), s->fname[*file]);
    }
    return LMF_OK;
}

/* Names lmforge reads, plus the buffers it skips: GPT-2's attention masks, older Llama
 * checkpoints' rotary inv_freq, and a tied head. */
static int known_name(const char *name, const lmf_param_layout *l, int n_layer) {
    if (strncmp(name, PREFIX, strlen(PREFIX)) == 0) name += strlen(PREFIX);
    if (lmf_layout_find(l, name) >= 0 || strcmp(name, "lm_head.weight") == 0) return 1;
    int layer = -1, end = 0;
    char what[32];
    if (sscanf(name, "model.layers.%d.self_attn.rotary_emb.inv_%31[a-z_]%n", &layer, what, &end) == 2 &&
        name[end] == '\0' && layer >= 0 && layer < n_layer)
        return strcmp(what, "freq") == 0;
    if (sscanf(name, "h.%d.attn.%31[a-z_]%n", &layer, what, &end) == 2 && name[end] == '\0' &&
        layer >= 0 && layer < n_layer)
        return strcmp(what, "bias") == 0 || strcmp(what, "masked_bias") == 0;
    return 0;
}

static lmf_status check_unknown(hf_src *s, const lmf_param_layout *l, const lmf_gpt_config *c) {
    const char *fam = c->family == LMF_FAMILY_LLAMA ? "Llama" : "GPT-2";
    for (int i = 0; i < s->n; i++)
        for (int j = 0; j < lmf_st_count(s->f[i]); j++) {
            const char *nm = lmf_st_get(s->f[i], j)->name;
            if (!known_name(nm, l, c->n_layer))
                return lmf_fail(LMF_ERR_FORMAT, "%s: unexpected tensor '%s' in %s: not part of a "
                                "%s model with %d layers (lmforge reads plain %s weights)",
                                s->what, nm, s->fname[i], fam, c->n_layer, fam);
        }
    return LMF_OK;
}

static lmf_status check_shape(hf_src *s, const lmf_st_tensor *t, int file, int ndim,
                              const int64_t *shape) {
    int ok = t->ndim == ndim && t->shape[0] == shape[0] && (ndim == 1 || t->shape[1] == shape[1]);
    if (ok) return LMF_OK;
    char got[96] = "", want[64];
    for (int d = 0; d < t->ndim && d < LMF_ST_MAX_DIMS; d++) {
        size_t n = strlen(got);
        snprintf(got + n, sizeof got - n, "%s%lld", d ? ", " : "", (long long)t->shape[d]);
    }
    if (ndim == 1) snprintf(want, sizeof want, "%lld", (long long)shape[0]);
    else snprintf(want, sizeof want, "%lld, %lld", (long long)shape[0], (long long)shape[1]);
    return lmf_fail(LMF_ERR_FORMAT, "%s: tensor '%s' in %s has shape [%s] but config.json implies "
                    "[%s]%s", s->what, t->name, s->fname[file], got, want,
                    ndim == 2 && t->ndim == 2 && t->shape[0] == shape[1] && t->shape[1] == shape[0]
                        ? " (transposed? GPT-2's Conv1D weights are stored (in, out), Llama's "
                          "Linear weights (out, in))" : "");
}

/* A tied model (GPT-2, or Llama with tie_word_embeddings) may still carry lm_head.weight: it
 * must equal the token embedding (tensor 0 of the layout). */
static lmf_status check_tied(hf_src *s, lmf_gpt *m) {
    int file = 0;
    const lmf_st_tensor *t = NULL;
    if (!lmf_config_tied(lmf_gpt_cfg(m))) return LMF_OK; /* lm_head is one of the layout's */
    LMF_TRY(find_one(s, "lm_head.weight", 1, &file, &t));
    if (!t) return LMF_OK;
    const lmf_param_layout *l = lmf_gpt_layout(m);
    const lmf_tensor_info *wte = &l->tensors[0];
    LMF_TRY(check_shape(s, t, file, 2, wte->shape));
    size_t n = (size_t)wte->shape[0] * (size_t)wte->shape[1];
    float *head = malloc(n * sizeof(float));
    if (!head) return lmf_fail(LMF_ERR_NOMEM, "%s: out of memory reading lm_head.weight", s->what);
    lmf_status st = lmf_st_read_f32(s->f[file], t, head, n);
    if (st == LMF_OK && memcmp(head, lmf_gpt_params(m) + wte->offset, n * sizeof(float)) != 0)
        st = lmf_fail(LMF_ERR_FORMAT, "%s: lm_head.weight differs from %s: an untied output "
                      "layer, which config.json's tied embeddings exclude", s->what, wte->name);
    free(head);
    return st;
}

/* dst[c, r] = src[r, c] for src[rows, cols] */
static void transpose(float *dst, const float *src, size_t rows, size_t cols) {
    for (size_t r = 0; r < rows; r++)
        for (size_t c = 0; c < cols; c++) dst[c * rows + r] = src[r * cols + c];
}

/* a Llama Linear weight: (out, in) in the file, (in, out) in the model */
static lmf_status read_transposed(hf_src *s, int file, const lmf_st_tensor *t,
                                  const lmf_tensor_info *ti, float *dst) {
    size_t rows = (size_t)ti->shape[0], cols = (size_t)ti->shape[1];
    float *tmp = malloc(rows * cols * sizeof(float));
    if (!tmp) return lmf_fail(LMF_ERR_NOMEM, "%s: out of memory reading %s", s->what, ti->name);
    lmf_status st = lmf_st_read_f32(s->f[file], t, tmp, rows * cols);
    if (st == LMF_OK) transpose(dst, tmp, rows, cols);
    free(tmp);
    return st;
}

lmf_status lmf_hf_load_weights(lmf_gpt *m, const char *dir) {
    hf_src s;
    lmf_status st = src_open(&s, dir);
    const lmf_param_layout *l = lmf_gpt_layout(m);
    float *p = lmf_gpt_params(m);
    LMF_ASSERT(p != NULL);
    if (st == LMF_OK) st = check_unknown(&s, l, lmf_gpt_cfg(m));
    for (int i = 0; i < l->n_tensors && st == LMF_OK; i++) {
        const lmf_tensor_info *ti = &l->tensors[i];
        const lmf_st_tensor *t = NULL;
        int file = 0;
        st = find_one(&s, ti->name, 0, &file, &t);
        if (st == LMF_OK) st = check_shape(&s, t, file, ti->ndim, ti->shape);
        if (st != LMF_OK) break;
        size_t n = (size_t)ti->shape[0] * (size_t)(ti->ndim > 1 ? ti->shape[1] : 1);
        if (ti->transposed) {
            st = read_transposed(&s, file, t, ti, p + ti->offset);
            continue;
        }
        st = lmf_st_read_f32(s.f[file], t, p + ti->offset, n);
        if (st == LMF_OK && n < ti->numel) /* padded wte rows */
            memset(p + ti->offset + n, 0, (ti->numel - n) * sizeof(float));
    }
    if (st == LMF_OK) st = check_tied(&s, m);
    src_close(&s);
    return st;
}

lmf_status lmf_hf_load(const char *dir, const lmf_kernels *k, lmf_gpt **out) {
    char path[4096];
    struct stat sb;
    *out = NULL;
    if (stat(dir, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return lmf_fail(LMF_ERR_IO, "%s: not a model directory (expected config.json and "
                        "model.safetensors inside)", dir);
    lmf_gpt_config c;
    LMF_TRY(lmf_path_join(path, sizeof path, dir, "config.json"));
    if (!lmf_file_exists(path))
        return lmf_fail(LMF_ERR_IO, "%s: no config.json (a Hugging Face or lmforge model directory "
                        "has config.json and model.safetensors)", dir);
    LMF_TRY(lmf_config_read(path, &c));
    lmf_gpt *m = NULL;
    LMF_TRY(lmf_gpt_create(&c, k, &m));
    lmf_status s = lmf_hf_load_weights(m, dir);
    if (s != LMF_OK) {
        lmf_gpt_free(m);
        return s;
    }
    *out = m;
    return LMF_OK;
}

/* generation_config.json of a Llama directory: what transformers' generate() reads */
static lmf_status write_generation_config(const char *dir, int bos, int eot) {
    char path[4096];
    LMF_TRY(lmf_path_join(path, sizeof path, dir, "generation_config.json"));
    char text[128];
    int n = snprintf(text, sizeof text, "{\n  \"bos_token_id\": %d,\n  \"eos_token_id\": %d\n}\n",
                     bos, eot);
    return lmf_write_file_atomic(path, text, (size_t)n);
}

/* one weights file of the output: tensors [first, end) of the layout */
typedef struct hf_out_shard {
    int first, end;
    char name[64];   /* model.safetensors or model-0000k-of-0000N.safetensors */
} hf_out_shard;

#define SHARD_FMT "model-%05d-of-%05d.safetensors"
#define MAX_OUT_SHARDS 99999
#define STAGED ".staged"

static size_t hf_numel(const lmf_tensor_info *ti) {
    return (size_t)ti->shape[0] * (size_t)(ti->ndim > 1 ? ti->shape[1] : 1);
}

/* Write tensors [first, end) at their Hugging Face names and shapes to path: transposed back to
 * (out, in) where the model holds (in, out), rounded to dtype when not F32. */
static lmf_status write_tensors(lmf_gpt *m, const char *path, lmf_dtype dtype, int first, int end) {
    const lmf_param_layout *l = lmf_gpt_layout(m);
    float *p = lmf_gpt_params(m);
    LMF_ASSERT(p != NULL && first >= 0 && first < end && end <= l->n_tensors);
    int n = end - first;
    lmf_st_out_tensor *t = calloc((size_t)n, sizeof *t);
    float **tmp = calloc((size_t)n, sizeof *tmp);
    lmf_status s = t && tmp ? LMF_OK : lmf_fail(LMF_ERR_NOMEM, "cannot allocate the tensor list");
    for (int k = 0; k < n && s == LMF_OK; k++) {
        const lmf_tensor_info *ti = &l->tensors[first + k];
        t[k].name = ti->name;
        t[k].dtype = LMF_F32;
        t[k].ndim = ti->ndim;
        t[k].shape[0] = ti->shape[0];
        t[k].shape[1] = ti->shape[1];
        t[k].data = p + ti->offset; /* wte: the first vocab_size rows are the real ones */
        if (!ti->transposed && dtype == LMF_F32) continue;
        size_t ne = hf_numel(ti);
        tmp[k] = malloc(ne * sizeof(float));
        if (!tmp[k]) {
            s = lmf_fail(LMF_ERR_NOMEM, "%s: out of memory writing %s", path, ti->name);
            break;
        }
        /* Llama's Linear weights go out (out, in) */
        if (ti->transposed) transpose(tmp[k], p + ti->offset, (size_t)ti->shape[1], (size_t)ti->shape[0]);
        else memcpy(tmp[k], p + ti->offset, ne * sizeof(float));
        t[k].data = tmp[k];
        if (dtype == LMF_F32) continue;
        uint16_t *h = (uint16_t *)tmp[k]; /* in place: element j is read before it is written */
        for (size_t j = 0; j < ne; j++)
            h[j] = dtype == LMF_BF16 ? lmf_f32_to_bf16(tmp[k][j]) : lmf_f32_to_f16(tmp[k][j]);
        t[k].dtype = dtype;
    }
    const char *meta[] = {"format", "pt"};
    if (s == LMF_OK) s = lmf_st_write(path, t, n, meta, 1);
    for (int k = 0; tmp && k < n; k++) free(tmp[k]);
    free(tmp);
    free(t);
    return s;
}

lmf_status lmf_hf_save_weights(lmf_gpt *m, const char *path) {
    return write_tensors(m, path, LMF_F32, 0, lmf_gpt_layout(m)->n_tensors);
}

/* Split the layout's tensors into files of at most max tensor bytes each (a larger tensor alone
 * in its file), in order; *sh gets the files (malloc'd), *total the tensor bytes. */
static lmf_status plan_shards(const lmf_param_layout *l, size_t esize, uint64_t max,
                              hf_out_shard **sh, int *n_sh, uint64_t *total) {
    *sh = NULL;
    *n_sh = 0;
    *total = 0;
    hf_out_shard *v = calloc((size_t)l->n_tensors, sizeof *v);
    if (!v) return lmf_fail(LMF_ERR_NOMEM, "cannot plan the weights files");
    int n = 0;
    uint64_t cur = 0;
    for (int i = 0; i < l->n_tensors; i++) {
        uint64_t nb = (uint64_t)hf_numel(&l->tensors[i]) * esize;
        if (n == 0 || (cur > 0 && cur + nb > max)) {
            v[n].first = i;
            n++;
            cur = 0;
        }
        v[n - 1].end = i + 1;
        cur += nb;
        *total += nb;
    }
    if (n > MAX_OUT_SHARDS) {
        free(v);
        return lmf_fail(LMF_ERR_ARG, "a maximum of %llu bytes per file would split the weights "
                        "into %d files (at most %d): give a larger maximum shard size",
                        (unsigned long long)max, n, MAX_OUT_SHARDS);
    }
    for (int k = 0; k < n; k++) {
        if (n == 1) snprintf(v[k].name, sizeof v[k].name, "model.safetensors");
        else snprintf(v[k].name, sizeof v[k].name, SHARD_FMT, k + 1, n);
    }
    *sh = v;
    *n_sh = n;
    return LMF_OK;
}

/* model.safetensors.index.json's text, as transformers writes it: keys sorted, indent 2 */
static lmf_status index_text(const lmf_param_layout *l, const hf_out_shard *sh, int n_sh,
                             uint64_t total, char **text) {
    json_t *map = json_object();
    json_t *root = map ? json_pack("{s:{s:I}, s:o}", "metadata", "total_size", (json_int_t)total,
                                   "weight_map", map) : NULL;
    lmf_status s = root ? LMF_OK : lmf_fail(LMF_ERR_NOMEM, "cannot build the weights index");
    for (int k = 0; k < n_sh && s == LMF_OK; k++)
        for (int i = sh[k].first; i < sh[k].end && s == LMF_OK; i++)
            if (json_object_set_new(map, l->tensors[i].name, json_string(sh[k].name)) != 0)
                s = lmf_fail(LMF_ERR_NOMEM, "cannot build the weights index");
    *text = s == LMF_OK ? json_dumps(root, JSON_INDENT(2) | JSON_SORT_KEYS) : NULL;
    if (s == LMF_OK && !*text) s = lmf_fail(LMF_ERR_NOMEM, "cannot format the weights index");
    json_decref(root);
    return s;
}

/* 1 when name is a weights file of a split save: model-NNNNN-of-NNNNN.safetensors */
static int shard_file_name(const char *name) {
    static const char pat[] = "model-#####-of-#####.safetensors";
    if (strlen(name) != sizeof pat - 1) return 0;
    for (size_t i = 0; i < sizeof pat - 1; i++)
        if (pat[i] == '#' ? name[i] < '0' || name[i] > '9' : name[i] != pat[i]) return 0;
    return 1;
}

/* Remove dir's weights files that are not among keep[0..n_keep): model.safetensors, the index,
 * model-*-of-*.safetensors. */
static lmf_status remove_stale(const char *dir, const hf_out_shard *keep, int n_keep) {
    DIR *d = opendir(dir);
    if (!d) return lmf_fail(LMF_ERR_IO, "cannot list %s: %s", dir, strerror(errno));
    lmf_status s = LMF_OK;
    struct dirent *e;
    char path[4096];
    while (s == LMF_OK && (e = readdir(d)) != NULL) {
        const char *nm = e->d_name;
        int weights = strcmp(nm, "model.safetensors") == 0 || shard_file_name(nm) ||
                      (strcmp(nm, "model.safetensors.index.json") == 0 && n_keep == 1);
        for (int k = 0; k < n_keep && weights; k++) weights = strcmp(nm, keep[k].name) != 0;
        if (!weights) continue;
        s = lmf_path_join(path, sizeof path, dir, nm);
        if (s == LMF_OK && unlink(path) != 0 && errno != ENOENT)
            s = lmf_fail(LMF_ERR_IO, "cannot remove the replaced weights file %s: %s", path,
                         strerror(errno));
    }
    closedir(d);
    return s;
}

static lmf_status staged_path(char *buf, size_t cap, const char *dir, const char *name) {
    char nm[80];
    snprintf(nm, sizeof nm, "%s" STAGED, name);
    return lmf_path_join(buf, cap, dir, nm);
}

/* Write the weights files of sh[0..n) under staging names, then move them all into place; on a
 * failure every file of this save is removed. */
static lmf_status write_shards(lmf_gpt *m, const char *dir, lmf_dtype dtype,
                               const hf_out_shard *sh, int n) {
    char path[4096], final[4096];
    lmf_status s = LMF_OK;
    int written = 0, moved = 0;
    for (; written < n && s == LMF_OK; written++) {
        s = staged_path(path, sizeof path, dir, sh[written].name);
        if (s == LMF_OK) s = write_tensors(m, path, dtype, sh[written].first, sh[written].end);
    }
    if (s != LMF_OK) written--; /* the failed file left nothing (lmf_st_write cleans up) */
    for (; s == LMF_OK && moved < n; moved++) {
        s = staged_path(path, sizeof path, dir, sh[moved].name);
        if (s == LMF_OK) s = lmf_path_join(final, sizeof final, dir, sh[moved].name);
        if (s == LMF_OK && rename(path, final) != 0)
            s = lmf_fail(LMF_ERR_IO, "cannot rename %s to %s: %s", path, final, strerror(errno));
    }
    if (s == LMF_OK) return lmf_fsync_parent_dir(final);
    if (moved > 0) moved--; /* the failed rename left its staged file */
    for (int k = 0; k < written; k++) {
        lmf_status js = k < moved ? lmf_path_join(path, sizeof path, dir, sh[k].name)
                                  : staged_path(path, sizeof path, dir, sh[k].name);
        if (js == LMF_OK) unlink(path);
    }
    return s;
}

static lmf_status save_split(lmf_gpt *m, const char *dir, lmf_dtype dtype, uint64_t max) {
    const lmf_param_layout *l = lmf_gpt_layout(m);
    hf_out_shard *sh = NULL;
    int n = 0;
    uint64_t total = 0;
    char *index = NULL, path[4096];
    LMF_TRY(plan_shards(l, lmf_dtype_size(dtype), max, &sh, &n, &total));
    lmf_status s = n > 1 ? index_text(l, sh, n, total, &index) : LMF_OK;
    if (s == LMF_OK && n == 1) {
        s = lmf_path_join(path, sizeof path, dir, sh[0].name);
        if (s == LMF_OK) s = write_tensors(m, path, dtype, 0, l->n_tensors);
    } else if (s == LMF_OK) {
        s = write_shards(m, dir, dtype, sh, n);
        /* the index commits the split weights; a model.safetensors beside it would be read first */
        if (s == LMF_OK) s = lmf_path_join(path, sizeof path, dir, "model.safetensors");
        if (s == LMF_OK && unlink(path) != 0 && errno != ENOENT)
            s = lmf_fail(LMF_ERR_IO, "cannot remove the replaced weights file %s: %s", path,
                         strerror(errno));
        if (s == LMF_OK) s = lmf_path_join(path, sizeof path, dir, "model.safetensors.index.json");
        if (s == LMF_OK) s = lmf_write_file_atomic(path, index, strlen(index));
    }
    if (s == LMF_OK) s = remove_stale(dir, sh, n);
    free(index);
    free(sh);
    return s;
}

lmf_status lmf_hf_save_with(lmf_gpt *m, const char *dir, int eot, const lmf_hf_save_opts *o) {
    lmf_dtype dtype = o->dtype;
    uint64_t max = o->max_shard_bytes ? o->max_shard_bytes : LMF_HF_MAX_SHARD_DEFAULT;
    if (dtype != LMF_F32 && dtype != LMF_BF16 && dtype != LMF_F16)
        return lmf_fail(LMF_ERR_ARG, "%s: Hugging Face weights are written as F32, BF16 or F16, "
                        "not %s", dir, lmf_dtype_name(dtype));
    const lmf_gpt_config *c = lmf_gpt_cfg(m);
    char path[4096];
    LMF_TRY(lmf_mkdir_p(dir));
    LMF_TRY(lmf_path_join(path, sizeof path, dir, "config.json"));
    LMF_TRY(lmf_config_write_ids(path, c, o->bos, eot, dtype));
    if (eot < 0 || eot >= c->vocab_size) eot = c->vocab_size - 1;
    int bos = o->bos < 0 || o->bos >= c->vocab_size ? eot : o->bos;
    if (c->family == LMF_FAMILY_LLAMA) LMF_TRY(write_generation_config(dir, bos, eot));
    return save_split(m, dir, dtype, max);
}

lmf_status lmf_hf_save_as(lmf_gpt *m, const char *dir, int eot, lmf_dtype dtype) {
    lmf_hf_save_opts o = {dtype, LMF_HF_MAX_SHARD_DEFAULT, -1};
    return lmf_hf_save_with(m, dir, eot, &o);
}

lmf_status lmf_hf_save(lmf_gpt *m, const char *dir, int eot) {
    return lmf_hf_save_as(m, dir, eot, LMF_F32);
}

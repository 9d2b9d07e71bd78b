/* Checkpoint index (index.json): strict parsing of untrusted text, formatting with a checksum. */
#include "lmforge/ckpt_format.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

const char *const lmf_ckpt_array_names[LMF_CKPT_N_ARRAYS] = {"params", "exp_avg", "exp_avg_sq"};

#define CANON_FLAGS (JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII)
#define MAX_BYTES ((uint64_t)1 << 62)

int lmf_ckpt_name_ok(const char *name) {
    size_t n = strlen(name);
    if (n == 0 || n >= LMF_CKPT_NAME_CAP || name[0] == '.') return 0;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '.' || c == '_' || c == '-';
        if (!ok) return 0;
    }
    return 1;
}

static int parse_hex64(const char *s, uint64_t *out) {
    if (!s || strlen(s) != 16) return 0;
    uint64_t v = 0;
    for (int i = 0; i < 16; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0) return 0;
        v = v << 4 | (uint64_t)d;
    }
    *out = v;
    return 1;
}

static void hex64(uint64_t v, char buf[17]) { snprintf(buf, 17, "%016llx", (unsigned long long)v); }

/* the non-negative integer o[key] <= max into *v; 0 when absent or of another kind */
static int get_u64(json_t *o, const char *key, uint64_t max, uint64_t *v) {
    json_t *j = json_object_get(o, key);
    if (!json_is_integer(j)) return 0;
    json_int_t x = json_integer_value(j);
    if (x < 0 || (uint64_t)x > max) return 0;
    *v = (uint64_t)x;
    return 1;
}

static lmf_status bad(const char *what, const char *problem) {
    return lmf_fail(LMF_ERR_FORMAT, "%s: %s; the checkpoint index is damaged (restore it or "
                    "resume from another checkpoint)", what, problem);
}

static lmf_status check_checksum(json_t *root, const char *what) {
    uint64_t want = 0;
    if (!parse_hex64(json_string_value(json_object_get(root, "index_xxh3")), &want))
        return bad(what, "\"index_xxh3\" is missing or not 16 hex digits");
    json_object_del(root, "index_xxh3");
    char *canon = json_dumps(root, CANON_FLAGS);
    if (!canon) return lmf_fail(LMF_ERR_NOMEM, "%s: out of memory checking the index", what);
    uint64_t got = XXH3_64bits(canon, strlen(canon));
    free(canon);
    if (got != want) {
        char g[17], w[17];
        hex64(got, g);
        hex64(want, w);
        return lmf_fail(LMF_ERR_FORMAT, "%s: checksum mismatch (content hashes to %s, "
                        "\"index_xxh3\" says %s): the index was edited or corrupted", what, g, w);
    }
    return LMF_OK;
}

static lmf_status parse_tensor(json_t *e, const char *what, int i, lmf_ckpt_tensor *t) {
    char msg[160];
    const char *name = json_string_value(json_object_get(e, "name"));
    json_t *shape = json_object_get(e, "shape");
    snprintf(msg, sizeof msg, "tensor %d: needs a name (1..%d bytes), a shape of 1 or 2 "
             "positive sizes, an offset and a numel", i, LMF_CKPT_TENSOR_NAME_CAP - 1);
    if (!json_is_object(e) || !name || strlen(name) == 0 ||
        strlen(name) >= LMF_CKPT_TENSOR_NAME_CAP || !json_is_array(shape) ||
        json_array_size(shape) < 1 || json_array_size(shape) > 2 ||
        !get_u64(e, "offset", LMF_CKPT_MAX_TOTAL, &t->offset) ||
        !get_u64(e, "numel", LMF_CKPT_MAX_TOTAL, &t->numel))
        return bad(what, msg);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->ndim = (int)json_array_size(shape);
    t->shape[1] = 1;
    uint64_t prod = 1;
    for (int d = 0; d < t->ndim; d++) {
        json_t *v = json_array_get(shape, (size_t)d);
        json_int_t x = json_is_integer(v) ? json_integer_value(v) : 0;
        if (x < 1 || (uint64_t)x > LMF_CKPT_MAX_TOTAL) return bad(what, msg);
        t->shape[d] = (int64_t)x;
        prod *= (uint64_t)x; /* both factors < 2^46 after the first: checked below */
        if (prod > LMF_CKPT_MAX_TOTAL) return bad(what, msg);
    }
    if (prod > t->numel) {
        snprintf(msg, sizeof msg, "tensor '%s': shape holds %llu floats but numel is %llu",
                 t->name, (unsigned long long)prod, (unsigned long long)t->numel);
        return bad(what, msg);
    }
    return LMF_OK;
}

static lmf_status parse_tensors(json_t *arr, const char *what, lmf_ckpt_index *ix) {
    if (!json_is_array(arr) || json_array_size(arr) < 1 ||
        json_array_size(arr) > LMF_CKPT_MAX_TENSORS)
        return bad(what, "\"tensors\" must be a non-empty array");
    size_t n = json_array_size(arr);
    ix->tensors = calloc(n, sizeof *ix->tensors);
    if (!ix->tensors) return lmf_fail(LMF_ERR_NOMEM, "%s: out of memory", what);
    ix->n_tensors = (int)n;
    uint64_t next = 0;
    for (size_t i = 0; i < n; i++) {
        lmf_ckpt_tensor *t = &ix->tensors[i];
        LMF_TRY(parse_tensor(json_array_get(arr, i), what, (int)i, t));
        if (t->offset < next || t->numel > ix->total || t->offset > ix->total - t->numel) {
            char msg[160];
            snprintf(msg, sizeof msg, "tensor '%s' at [%llu, +%llu) overlaps the one before or "
                     "runs past the %llu floats of the vector", t->name,
                     (unsigned long long)t->offset, (unsigned long long)t->numel,
                     (unsigned long long)ix->total);
            return bad(what, msg);
        }
        next = t->offset + t->numel;
    }
    return LMF_OK;
}

static lmf_status parse_file(json_t *e, const char *what, int i, const lmf_ckpt_index *ix,
                             lmf_ckpt_file *f) {
    char msg[200];
    const char *name = json_string_value(json_object_get(e, "name"));
    const char *kind = json_string_value(json_object_get(e, "kind"));
    snprintf(msg, sizeof msg, "file %d: needs a plain name ([A-Za-z0-9._-], not starting with "
             "'.'), a kind (shard or meta), bytes and a 16-hex-digit xxh3", i);
    if (!json_is_object(e) || !name || !lmf_ckpt_name_ok(name) || !kind ||
        !get_u64(e, "bytes", MAX_BYTES, &f->bytes) ||
        !parse_hex64(json_string_value(json_object_get(e, "xxh3")), &f->xxh3))
        return bad(what, msg);
    snprintf(f->name, sizeof f->name, "%s", name);
    f->rank = -1;
    if (strcmp(kind, "meta") == 0) {
        f->kind = LMF_CKPT_META;
        return LMF_OK;
    }
    uint64_t rank = 0;
    if (strcmp(kind, "shard") != 0 || !get_u64(e, "rank", (uint64_t)ix->world_size - 1, &rank) ||
        !get_u64(e, "begin", ix->total, &f->begin) || !get_u64(e, "end", ix->total, &f->end) ||
        f->end < f->begin) {
        snprintf(msg, sizeof msg, "file '%s': a shard needs a rank below world_size %d and "
                 "0 <= begin <= end <= %llu", name, ix->world_size, (unsigned long long)ix->total);
        return bad(what, msg);
    }
    f->kind = LMF_CKPT_SHARD;
    f->rank = (int)rank;
    return LMF_OK;
}

static lmf_status parse_files(json_t *arr, const char *what, lmf_ckpt_index *ix) {
    size_t n = json_is_array(arr) ? json_array_size(arr) : 0;
    if (n < 1 || n > (size_t)ix->world_size + 16)
        return bad(what, "\"files\" must be an array of one entry per shard plus the meta files");
    lmf_ckpt_file *tmp = calloc(n, sizeof *tmp);
    ix->files = calloc(n, sizeof *ix->files);
    if (!tmp || !ix->files) {
        free(tmp);
        return lmf_fail(LMF_ERR_NOMEM, "%s: out of memory", what);
    }
    lmf_status s = LMF_OK;
    for (size_t i = 0; i < n && s == LMF_OK; i++)
        s = parse_file(json_array_get(arr, i), what, (int)i, ix, &tmp[i]);
    /* shards first (in the given order), then meta files */
    int k = 0;
    for (int pass = 0; pass < 2 && s == LMF_OK; pass++)
        for (size_t i = 0; i < n; i++)
            if ((pass == 0) == (tmp[i].kind == LMF_CKPT_SHARD)) ix->files[k++] = tmp[i];
    free(tmp);
    LMF_TRY(s);
    ix->n_files = (int)n;
    for (int i = 0; i < ix->n_files; i++)
        for (int j = 0; j < i; j++)
            if (strcmp(ix->files[i].name, ix->files[j].name) == 0) {
                char msg[200];
                snprintf(msg, sizeof msg, "file '%s' is listed twice", ix->files[i].name);
                return bad(what, msg);
            }
    uint64_t next = 0;
    int shards = 0;
    for (int i = 0; i < ix->n_files && ix->files[i].kind == LMF_CKPT_SHARD; i++, shards++) {
        if (ix->files[i].begin != next) {
            char msg[200];
            snprintf(msg, sizeof msg, "shard '%s' starts at float %llu, expected %llu: the shards "
                     "must cover the vector in order without gaps or overlaps", ix->files[i].name,
                     (unsigned long long)ix->files[i].begin, (unsigned long long)next);
            return bad(what, msg);
        }
        next = ix->files[i].end;
    }
    if (shards == 0 || next != ix->total) {
        char msg[160];
        snprintf(msg, sizeof msg, "the shards cover %llu of the %llu floats",
                 (unsigned long long)next, (unsigned long long)ix->total);
        return bad(what, msg);
    }
    const char *need[] = {"config.json", "trainer_state.json"};
    for (int i = 0; i < 2; i++) {
        const lmf_ckpt_file *f = lmf_ckpt_index_find(ix, need[i]);
        if (!f || f->kind != LMF_CKPT_META) {
            char msg[120];
            snprintf(msg, sizeof msg, "no meta file entry for %s", need[i]);
            return bad(what, msg);
        }
    }
    return LMF_OK;
}

static lmf_status parse_root(json_t *root, const char *what, lmf_ckpt_index *ix) {
    if (!json_is_object(root)) return bad(what, "not a JSON object");
    const char *fmt = json_string_value(json_object_get(root, "format"));
    if (!fmt || strcmp(fmt, LMF_CKPT_FORMAT) != 0)
        return lmf_fail(LMF_ERR_FORMAT, "%s: not an lmforge checkpoint index (\"format\" must be "
                        "\"%s\")", what, LMF_CKPT_FORMAT);
    json_t *ver = json_object_get(root, "version");
    if (!json_is_integer(ver) || json_integer_value(ver) != LMF_CKPT_VERSION)
        return lmf_fail(LMF_ERR_FORMAT, "%s: checkpoint format version %lld; this lmforge reads "
                        "version %d", what, json_is_integer(ver) ? (long long)json_integer_value(ver)
                        : -1LL, LMF_CKPT_VERSION);
    LMF_TRY(check_checksum(root, what));
    uint64_t step = 0, world = 0, stage = 0;
    const char *dtype = json_string_value(json_object_get(root, "dtype"));
    json_t *contents = json_object_get(root, "shard_contents");
    int contents_ok = json_is_array(contents) && json_array_size(contents) == LMF_CKPT_N_ARRAYS;
    for (int a = 0; contents_ok && a < LMF_CKPT_N_ARRAYS; a++) {
        const char *s = json_string_value(json_array_get(contents, (size_t)a));
        contents_ok = s && strcmp(s, lmf_ckpt_array_names[a]) == 0;
    }
    if (!parse_hex64(json_string_value(json_object_get(root, "checkpoint_id")), &ix->id) ||
        !get_u64(root, "step", 0x7fffffff, &step) ||
        !get_u64(root, "world_size", LMF_CKPT_MAX_WORLD, &world) || world < 1 ||
        !get_u64(root, "zero_stage", 3, &stage) ||
        !get_u64(root, "flat_total", LMF_CKPT_MAX_TOTAL, &ix->total) || ix->total < 1 ||
        !dtype || strcmp(dtype, "F32") != 0 || !contents_ok)
        return bad(what, "needs checkpoint_id (16 hex digits), step, world_size >= 1, zero_stage "
                   "0..3, flat_total >= 1, dtype \"F32\" and shard_contents [\"params\", "
                   "\"exp_avg\", \"exp_avg_sq\"]");
    ix->step = (int64_t)step;
    ix->world_size = (int)world;
    ix->zero_stage = (int)stage;
    LMF_TRY(parse_tensors(json_object_get(root, "tensors"), what, ix));
    return parse_files(json_object_get(root, "files"), what, ix);
}

lmf_status lmf_ckpt_index_parse(const char *text, size_t len, const char *what,
                                lmf_ckpt_index *out) {
    memset(out, 0, sizeof *out);
    if (len > LMF_CKPT_INDEX_MAX_BYTES)
        return lmf_fail(LMF_ERR_FORMAT, "%s: %zu bytes, more than the %zu an index may have", what,
                        len, LMF_CKPT_INDEX_MAX_BYTES);
    json_error_t e;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &e);
    if (!root)
        return lmf_fail(LMF_ERR_FORMAT, "%s: not valid JSON: %s (line %d, column %d); the "
                        "checkpoint index is damaged", what, e.text, e.line, e.column);
    lmf_status s = parse_root(root, what, out);
    json_decref(root);
    if (s != LMF_OK) lmf_ckpt_index_free(out);
    return s;
}

void lmf_ckpt_index_free(lmf_ckpt_index *ix) {
    if (!ix) return;
    free(ix->tensors);
    free(ix->files);
    memset(ix, 0, sizeof *ix);
}

const lmf_ckpt_file *lmf_ckpt_index_find(const lmf_ckpt_index *ix, const char *name) {
    for (int i = 0; i < ix->n_files; i++)
        if (strcmp(ix->files[i].name, name) == 0) return &ix->files[i];
    return NULL;
}

static json_t *file_json(const lmf_ckpt_file *f) {
    char h[17];
    hex64(f->xxh3, h);
    if (f->kind == LMF_CKPT_META)
        return json_pack("{s:s, s:s, s:I, s:s}", "name", f->name, "kind", "meta", "bytes",
                         (json_int_t)f->bytes, "xxh3", h);
    return json_pack("{s:s, s:s, s:i, s:I, s:I, s:I, s:s}", "name", f->name, "kind", "shard",
                     "rank", f->rank, "begin", (json_int_t)f->begin, "end", (json_int_t)f->end,
                     "bytes", (json_int_t)f->bytes, "xxh3", h);
}

static json_t *build(const lmf_ckpt_index *ix) {
    char id[17];
    hex64(ix->id, id);
    json_t *tensors = json_array(), *files = json_array();
    json_t *root = json_pack("{s:s, s:i, s:s, s:I, s:i, s:i, s:s, s:I, s:[sss], s:s, s:s}",
                             "format", LMF_CKPT_FORMAT, "version", LMF_CKPT_VERSION,
                             "checkpoint_id", id, "step", (json_int_t)ix->step, "world_size",
                             ix->world_size, "zero_stage", ix->zero_stage, "dtype", "F32",
                             "flat_total", (json_int_t)ix->total, "shard_contents",
                             lmf_ckpt_array_names[0], lmf_ckpt_array_names[1],
                             lmf_ckpt_array_names[2], "model_config", "config.json",
                             "trainer_state", "trainer_state.json");
    int ok = root && tensors && files;
    for (int i = 0; ok && i < ix->n_tensors; i++) {
        const lmf_ckpt_tensor *t = &ix->tensors[i];
        json_t *shape = t->ndim == 1 ? json_pack("[I]", (json_int_t)t->shape[0])
                                     : json_pack("[I, I]", (json_int_t)t->shape[0],
                                                 (json_int_t)t->shape[1]);
        ok = json_array_append_new(tensors, json_pack("{s:s, s:o, s:I, s:I}", "name", t->name,
                                                      "shape", shape, "offset",
                                                      (json_int_t)t->offset, "numel",
                                                      (json_int_t)t->numel)) == 0;
    }
    for (int i = 0; ok && i < ix->n_files; i++)
        ok = json_array_append_new(files, file_json(&ix->files[i])) == 0;
    if (ok) ok = json_object_set_new(root, "tensors", tensors) == 0;
    else json_decref(tensors);
    if (ok) ok = json_object_set_new(root, "files", files) == 0;
    else json_decref(files);
    if (!ok) {
        json_decref(root);
        return NULL;
    }
    return root;
}

/* a growable text buffer */
typedef struct text {
    char *p;
    size_t len, cap;
    int failed;
} text;

static void put(text *t, const char *s) {
    size_t n = s ? strlen(s) : 0;
    if (!s) t->failed = 1;
    if (t->failed) return;
    if (t->len + n + 1 > t->cap) {
        size_t cap = (t->len + n + 1) * 2;
        char *q = realloc(t->p, cap);
        if (!q) {
            t->failed = 1;
            return;
        }
        t->p = q;
        t->cap = cap;
    }
    memcpy(t->p + t->len, s, n + 1);
    t->len += n;
}

static void put_json(text *t, json_t *j) {
    char *s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENSURE_ASCII |
                            JSON_ENCODE_ANY);
    put(t, s);
    free(s);
}

/* root as text: one key per line, the entries of arrays of objects one per line */
static char *pretty(json_t *root) {
    text t = {NULL, 0, 0, 0};
    const char *key;
    json_t *v;
    size_t left = json_object_size(root);
    put(&t, "{\n");
    json_object_foreach(root, key, v) {
        json_t *k = json_string(key);
        put(&t, " ");
        put_json(&t, k);
        json_decref(k);
        put(&t, ": ");
        if (json_is_array(v) && json_is_object(json_array_get(v, 0))) {
            put(&t, "[\n");
            for (size_t i = 0; i < json_array_size(v); i++) {
                put(&t, "  ");
                put_json(&t, json_array_get(v, i));
                put(&t, i + 1 < json_array_size(v) ? ",\n" : "\n");
            }
            put(&t, " ]");
        } else {
            put_json(&t, v);
        }
        put(&t, --left ? ",\n" : "\n");
    }
    put(&t, "}\n");
    if (t.failed) {
        free(t.p);
        return NULL;
    }
    return t.p;
}

lmf_status lmf_ckpt_index_format(const lmf_ckpt_index *ix, char **text_out) {
    *text_out = NULL;
    json_t *root = build(ix);
    if (!root) return lmf_fail(LMF_ERR_NOMEM, "out of memory formatting the checkpoint index");
    char *canon = json_dumps(root, CANON_FLAGS);
    char h[17];
    int ok = canon != NULL;
    if (ok) {
        hex64(XXH3_64bits(canon, strlen(canon)), h);
        ok = json_object_set_new(root, "index_xxh3", json_string(h)) == 0;
    }
    free(canon);
    char *out = ok ? pretty(root) : NULL;
    json_decref(root);
    if (!out) return lmf_fail(LMF_ERR_NOMEM, "out of memory formatting the checkpoint index");
    /* what is written must read back */
    lmf_ckpt_index back;
    lmf_status s = lmf_ckpt_index_parse(out, strlen(out), "index.json (being written)", &back);
    lmf_ckpt_index_free(&back);
    if (s != LMF_OK) {
        free(out);
        return lmf_fail_context(LMF_ERR_ARG, "internal: the checkpoint index does not validate: ");
    }
    *text_out = out;
    return LMF_OK;
}

/* safetensors reading: the untrusted JSON header is validated in full before any tensor is read. */
#include "lmforge/safetensors.h"
#include "lmforge/fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "safetensors data is little-endian");

struct lmf_st_file {
    char *what;
    int fd;               /* -1 when reading from memory */
    const uint8_t *mem;   /* the whole file, for lmf_st_parse */
    uint64_t data_off;    /* 8 + header length */
    uint64_t data_len;
    lmf_st_tensor *t;
    int n;
    char **meta;          /* 2 * n_meta strings: key, value */
    int n_meta;
};

void lmf_st_close(lmf_st_file *f) {
    if (!f) return;
    if (f->fd >= 0) close(f->fd);
    for (int i = 0; i < f->n; i++) free((char *)f->t[i].name);
    free(f->t);
    for (int i = 0; i < 2 * f->n_meta; i++) free(f->meta[i]);
    free(f->meta);
    free(f->what);
    free(f);
}

static lmf_status bad(const char *what, const char *name, const char *problem) {
    return lmf_fail(LMF_ERR_FORMAT, "%s: bad safetensors header: tensor '%s': %s", what, name,
                    problem);
}

static lmf_status parse_metadata(lmf_st_file *f, json_t *m) {
    if (!json_is_object(m))
        return lmf_fail(LMF_ERR_FORMAT, "%s: bad safetensors header: __metadata__ is not an object",
                        f->what);
    size_t n = json_object_size(m);
    f->meta = calloc(2 * n + 1, sizeof *f->meta);
    if (!f->meta) return lmf_fail(LMF_ERR_NOMEM, "%s: out of memory reading metadata", f->what);
    const char *k;
    json_t *v;
    json_object_foreach(m, k, v) {
        if (!json_is_string(v))
            return lmf_fail(LMF_ERR_FORMAT,
                            "%s: bad safetensors header: __metadata__ value of '%s' is not a string",
                            f->what, k);
        char *ks = strdup(k), *vs = strdup(json_string_value(v));
        f->meta[2 * f->n_meta] = ks;
        f->meta[2 * f->n_meta + 1] = vs;
        f->n_meta++;
        if (!ks || !vs) return lmf_fail(LMF_ERR_NOMEM, "%s: out of memory reading metadata", f->what);
    }
    return LMF_OK;
}

/* a JSON integer in [0, max] */
static int get_uint(json_t *j, uint64_t max, uint64_t *out) {
    if (!json_is_integer(j)) return 0;
    json_int_t v = json_integer_value(j);
    if (v < 0 || (uint64_t)v > max) return 0;
    *out = (uint64_t)v;
    return 1;
}

static lmf_status parse_tensor(lmf_st_file *f, const char *name, json_t *e, lmf_st_tensor *t) {
    if (!json_is_object(e)) return bad(f->what, name, "entry is not an object");
    json_t *dt = json_object_get(e, "dtype"), *sh = json_object_get(e, "shape"),
           *off = json_object_get(e, "data_offsets");
    if (!dt || !sh || !off) return bad(f->what, name, "needs dtype, shape and data_offsets");
    if (!json_is_string(dt)) return bad(f->what, name, "dtype is not a string");
    if (lmf_dtype_parse(json_string_value(dt), &t->dtype) != 0)
        return lmf_fail(LMF_ERR_FORMAT, "%s: bad safetensors header: tensor '%s': unknown dtype '%s'",
                        f->what, name, json_string_value(dt));
    if (!json_is_array(sh)) return bad(f->what, name, "shape is not an array");
    size_t nd = json_array_size(sh);
    if (nd > LMF_ST_MAX_DIMS)
        return lmf_fail(LMF_ERR_FORMAT,
                        "%s: bad safetensors header: tensor '%s' has %zu dimensions (at most %d "
                        "supported)",
                        f->what, name, nd, LMF_ST_MAX_DIMS);
    t->ndim = (int)nd;
    uint64_t numel = 1;
    for (size_t i = 0; i < nd; i++) {
        uint64_t d;
        if (!get_uint(json_array_get(sh, i), (uint64_t)INT64_MAX, &d))
            return bad(f->what, name, "shape holds a value that is not a non-negative integer");
        t->shape[i] = (int64_t)d;
        if (__builtin_mul_overflow(numel, d, &numel))
            return bad(f->what, name, "the shape's element count overflows");
    }
    uint64_t nbytes;
    if (__builtin_mul_overflow(numel, (uint64_t)lmf_dtype_size(t->dtype), &nbytes))
        return bad(f->what, name, "the tensor's byte size overflows");
    if (!json_is_array(off) || json_array_size(off) != 2 ||
        !get_uint(json_array_get(off, 0), UINT64_MAX, &t->begin) ||
        !get_uint(json_array_get(off, 1), UINT64_MAX, &t->end))
        return bad(f->what, name, "data_offsets is not [begin, end] with non-negative integers");
    if (t->begin > t->end)
        return lmf_fail(LMF_ERR_FORMAT,
                        "%s: bad safetensors header: tensor '%s': data_offsets begin %llu > end %llu",
                        f->what, name, (unsigned long long)t->begin, (unsigned long long)t->end);
    if (t->end > f->data_len)
        return lmf_fail(LMF_ERR_FORMAT,
                        "%s: bad safetensors header: tensor '%s' ends at byte %llu of a %llu-byte "
                        "data section (truncated file?)",
                        f->what, name, (unsigned long long)t->end, (unsigned long long)f->data_len);
    if (t->end - t->begin != nbytes)
        return lmf_fail(LMF_ERR_FORMAT,
                        "%s: bad safetensors header: tensor '%s': shape and dtype need %llu bytes "
                        "but data_offsets span %llu",
                        f->what, name, (unsigned long long)nbytes,
                        (unsigned long long)(t->end - t->begin));
    t->name = strdup(name);
    if (!t->name) return lmf_fail(LMF_ERR_NOMEM, "%s: out of memory", f->what);
    return LMF_OK;
}

static int cmp_range(const void *a, const void *b) {
    const lmf_st_tensor *x = *(const lmf_st_tensor *const *)a, *y = *(const lmf_st_tensor *const *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return (x->end > y->end) - (x->end < y->end);
}

/* no two non-empty byte ranges may share a byte */
static lmf_status check_overlaps(lmf_st_file *f) {
    if (f->n < 2) return LMF_OK;
    const lmf_st_tensor **idx = malloc((size_t)f->n * sizeof *idx);
    if (!idx) return lmf_fail(LMF_ERR_NOMEM, "%s: out of memory", f->what);
    for (int i = 0; i < f->n; i++) idx[i] = &f->t[i];
    qsort(idx, (size_t)f->n, sizeof *idx, cmp_range);
    const lmf_st_tensor *prev = NULL;
    lmf_status s = LMF_OK;
    for (int i = 0; i < f->n && s == LMF_OK; i++) {
        const lmf_st_tensor *t = idx[i];
        if (t->begin == t->end) continue;
        if (prev && t->begin < prev->end)
            s = lmf_fail(LMF_ERR_FORMAT,
                         "%s: bad safetensors header: tensors '%s' [%llu, %llu) and '%s' [%llu, "
                         "%llu) overlap",
                         f->what, prev->name, (unsigned long long)prev->begin,
                         (unsigned long long)prev->end, t->name, (unsigned long long)t->begin,
                         (unsigned long long)t->end);
        if (!prev || t->end > prev->end) prev = t;
    }
    free(idx);
    return s;
}

/* parse hdr[hlen] (the JSON text) of a file of file_len bytes into f */
static lmf_status parse_header(lmf_st_file *f, const uint8_t *hdr, uint64_t hlen) {
    json_error_t err;
    json_t *root = json_loadb((const char *)hdr, (size_t)hlen, JSON_REJECT_DUPLICATES, &err);
    if (!root)
        return lmf_fail(LMF_ERR_FORMAT, "%s: bad safetensors header JSON: %s (line %d, column %d)",
                        f->what, err.text, err.line, err.column);
    lmf_status s = LMF_OK;
    if (!json_is_object(root)) {
        s = lmf_fail(LMF_ERR_FORMAT, "%s: bad safetensors header: not a JSON object", f->what);
        goto out;
    }
    size_t n = json_object_size(root);
    f->t = calloc(n + 1, sizeof *f->t);
    if (!f->t) {
        s = lmf_fail(LMF_ERR_NOMEM, "%s: out of memory for %zu tensors", f->what, n);
        goto out;
    }
    const char *k;
    json_t *v;
    json_object_foreach(root, k, v) {
        if (strcmp(k, "__metadata__") == 0)
            s = parse_metadata(f, v);
        else if ((s = parse_tensor(f, k, v, &f->t[f->n])) == LMF_OK)
            f->n++;
        if (s != LMF_OK) goto out;
    }
    s = check_overlaps(f);
out:
    json_decref(root);
    return s;
}

static uint64_t le64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

/* check the 8-byte length prefix of a file of file_len bytes; sets *hlen */
static lmf_status check_prefix(const char *what, const uint8_t *p8, uint64_t file_len, uint64_t *hlen) {
    if (file_len < 8)
        return lmf_fail(LMF_ERR_FORMAT, "%s: not a safetensors file: %llu bytes, no 8-byte header length",
                        what, (unsigned long long)file_len);
    uint64_t n = le64(p8);
    if (n > LMF_ST_MAX_HEADER)
        return lmf_fail(LMF_ERR_FORMAT,
                        "%s: not a safetensors file: header length %llu is over the %llu-byte limit",
                        what, (unsigned long long)n, (unsigned long long)LMF_ST_MAX_HEADER);
    if (n > file_len - 8)
        return lmf_fail(LMF_ERR_FORMAT,
                        "%s: safetensors header length %llu runs past the end of the %llu-byte file",
                        what, (unsigned long long)n, (unsigned long long)file_len);
    *hlen = n;
    return LMF_OK;
}

static lmf_st_file *new_file(const char *what) {
    lmf_st_file *f = calloc(1, sizeof *f);
    if (!f) return NULL;
    f->fd = -1;
    f->what = strdup(what ? what : "(memory)");
    if (!f->what) {
        free(f);
        return NULL;
    }
    return f;
}

lmf_status lmf_st_parse(const uint8_t *buf, size_t len, const char *what, lmf_st_file **out) {
    *out = NULL;
    if (!what) what = "(memory)";
    uint64_t hlen = 0;
    LMF_TRY(check_prefix(what, buf, len, &hlen));
    lmf_st_file *f = new_file(what);
    if (!f) return lmf_fail(LMF_ERR_NOMEM, "%s: out of memory", what);
    f->mem = buf;
    f->data_off = 8 + hlen;
    f->data_len = len - f->data_off;
    lmf_status s = parse_header(f, buf + 8, hlen);
    if (s != LMF_OK) {
        lmf_st_close(f);
        return s;
    }
    *out = f;
    return LMF_OK;
}

lmf_status lmf_st_open(const char *path, lmf_st_file **out) {
    *out = NULL;
    int fd;
    LMF_TRY(lmf_open_regular(path, NULL, &fd));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        close(fd);
        return lmf_fail(LMF_ERR_IO, "%s is not a readable regular file", path);
    }
    uint64_t file_len = (uint64_t)st.st_size, hlen = 0;
    uint8_t p8[8] = {0};
    lmf_status s = lmf_pread_all(fd, p8, file_len < 8 ? (size_t)file_len : 8, 0, path);
    if (s == LMF_OK) s = check_prefix(path, p8, file_len, &hlen);
    lmf_st_file *f = NULL;
    uint8_t *hdr = NULL;
    if (s == LMF_OK && !(f = new_file(path))) s = lmf_fail(LMF_ERR_NOMEM, "%s: out of memory", path);
    if (s == LMF_OK && !(hdr = malloc(hlen + 1)))
        s = lmf_fail(LMF_ERR_NOMEM, "%s: cannot allocate %llu bytes for the header", path,
                     (unsigned long long)hlen);
    if (s == LMF_OK) s = lmf_pread_all(fd, hdr, (size_t)hlen, 8, path);
    if (s == LMF_OK) {
        f->fd = fd;
        fd = -1;
        f->data_off = 8 + hlen;
        f->data_len = file_len - f->data_off;
        s = parse_header(f, hdr, hlen);
    }
    free(hdr);
    if (fd >= 0) close(fd);
    if (s != LMF_OK) {
        lmf_st_close(f);
        return s;
    }
    *out = f;
    return LMF_OK;
}

int lmf_st_count(const lmf_st_file *f) { return f->n; }

const lmf_st_tensor *lmf_st_get(const lmf_st_file *f, int i) {
    LMF_ASSERT(i >= 0 && i < f->n);
    return &f->t[i];
}

const lmf_st_tensor *lmf_st_find(const lmf_st_file *f, const char *name) {
    for (int i = 0; i < f->n; i++)
        if (strcmp(f->t[i].name, name) == 0) return &f->t[i];
    return NULL;
}

const char *lmf_st_metadata(const lmf_st_file *f, const char *key) {
    for (int i = 0; i < f->n_meta; i++)
        if (strcmp(f->meta[2 * i], key) == 0) return f->meta[2 * i + 1];
    return NULL;
}

uint64_t lmf_st_numel(const lmf_st_tensor *t) {
    uint64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= (uint64_t)t->shape[i]; /* checked when parsed */
    return n;
}

/* bytes [off, off+n) of t's data into dst */
static lmf_status read_span(lmf_st_file *f, const lmf_st_tensor *t, uint64_t off, void *dst, size_t n) {
    if (f->fd < 0) {
        memcpy(dst, f->mem + f->data_off + t->begin + off, n);
        return LMF_OK;
    }
    lmf_status s = lmf_pread_all(f->fd, dst, n, f->data_off + t->begin + off, f->what);
    if (s != LMF_OK) return lmf_fail_context(s, "tensor '%s': ", t->name);
    return LMF_OK;
}

lmf_status lmf_st_read_raw(lmf_st_file *f, const lmf_st_tensor *t, void *dst, size_t nbytes) {
    if ((uint64_t)nbytes != t->end - t->begin)
        return lmf_fail(LMF_ERR_ARG, "%s: tensor '%s' has %llu bytes, not %zu", f->what, t->name,
                        (unsigned long long)(t->end - t->begin), nbytes);
    return read_span(f, t, 0, dst, nbytes);
}

lmf_status lmf_st_read_f32(lmf_st_file *f, const lmf_st_tensor *t, float *dst, size_t n) {
    uint64_t numel = lmf_st_numel(t);
    if ((uint64_t)n != numel)
        return lmf_fail(LMF_ERR_ARG, "%s: tensor '%s' has %llu elements, not %zu", f->what,
                        t->name, (unsigned long long)numel, n);
    if (t->dtype == LMF_F32) return read_span(f, t, 0, dst, n * 4);
    if (t->dtype != LMF_F16 && t->dtype != LMF_BF16)
        return lmf_fail(LMF_ERR_FORMAT, "%s: tensor '%s' is %s; only F32, F16 and BF16 convert to "
                        "fp32", f->what, t->name, lmf_dtype_name(t->dtype));
    enum { CHUNK = 8192 };
    uint16_t buf[CHUNK];
    for (size_t i = 0; i < n; i += CHUNK) {
        size_t m = n - i < CHUNK ? n - i : CHUNK;
        LMF_TRY(read_span(f, t, (uint64_t)i * 2, buf, m * 2));
        if (t->dtype == LMF_F16)
            for (size_t j = 0; j < m; j++) dst[i + j] = lmf_f16_to_f32(buf[j]);
        else
            for (size_t j = 0; j < m; j++) dst[i + j] = lmf_bf16_to_f32(buf[j]);
    }
    return LMF_OK;
}

/* safetensors writing: header JSON in the caller's order, padded to 8 bytes, atomic replace. */
#include "lmforge/safetensors.h"
#include "lmforge/fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* byte size of t, or LMF_ERR_ARG */
static lmf_status out_nbytes(const char *path, const lmf_st_out_tensor *t, uint64_t *out) {
    if (t->ndim < 0 || t->ndim > LMF_ST_MAX_DIMS)
        return lmf_fail(LMF_ERR_ARG, "%s: tensor '%s' has %d dimensions (0..%d allowed)", path,
                        t->name, t->ndim, LMF_ST_MAX_DIMS);
    if ((int)t->dtype < 0 || (int)t->dtype > LMF_BOOL)
        return lmf_fail(LMF_ERR_ARG, "%s: tensor '%s' has an unknown dtype %d", path, t->name,
                        (int)t->dtype);
    uint64_t n = 1;
    for (int i = 0; i < t->ndim; i++) {
        if (t->shape[i] < 0 || __builtin_mul_overflow(n, (uint64_t)t->shape[i], &n))
            return lmf_fail(LMF_ERR_ARG, "%s: tensor '%s' has a negative or overflowing shape",
                            path, t->name);
    }
    if (__builtin_mul_overflow(n, (uint64_t)lmf_dtype_size(t->dtype), &n))
        return lmf_fail(LMF_ERR_ARG, "%s: tensor '%s' is too large", path, t->name);
    if (n > 0 && !t->data)
        return lmf_fail(LMF_ERR_ARG, "%s: tensor '%s' has no data", path, t->name);
    *out = n;
    return LMF_OK;
}

/* the header text (padded with spaces to a multiple of 8) into *text, *len */
static lmf_status build_header(const char *path, const lmf_st_out_tensor *t, int n,
                               const char *const *meta_kv, int n_meta, char **text, size_t *len) {
    json_t *root = json_object();
    lmf_status s = LMF_OK;
    if (!root) return lmf_fail(LMF_ERR_NOMEM, "%s: out of memory", path);
    if (n_meta > 0) {
        json_t *m = json_object();
        if (!m || json_object_set_new(root, "__metadata__", m) != 0) {
            s = lmf_fail(LMF_ERR_NOMEM, "%s: out of memory", path);
            goto out;
        }
        for (int i = 0; i < n_meta; i++) {
            const char *k = meta_kv[2 * i], *v = meta_kv[2 * i + 1];
            json_t *js = v ? json_string(v) : NULL;
            if (!k || !js || json_object_get(m, k) || json_object_set_new(m, k, js) != 0) {
                json_decref(js);
                s = lmf_fail(LMF_ERR_ARG, "%s: metadata key '%s' is missing, repeated or not valid UTF-8",
                             path, k ? k : "(null)");
                goto out;
            }
        }
    }
    uint64_t off = 0;
    for (int i = 0; i < n; i++) {
        uint64_t nb = 0;
        if (!t[i].name) {
            s = lmf_fail(LMF_ERR_ARG, "%s: tensor %d has no name", path, i);
            goto out;
        }
        if ((s = out_nbytes(path, &t[i], &nb)) != LMF_OK) goto out;
        if (strcmp(t[i].name, "__metadata__") == 0 || json_object_get(root, t[i].name)) {
            s = lmf_fail(LMF_ERR_ARG, "%s: tensor name '%s' is reserved or repeated", path, t[i].name);
            goto out;
        }
        json_t *shape = json_array();
        for (int d = 0; shape && d < t[i].ndim; d++)
            if (json_array_append_new(shape, json_integer((json_int_t)t[i].shape[d])) != 0) {
                json_decref(shape);
                shape = NULL;
            }
        json_t *e = shape ? json_pack("{s:s, s:o, s:[I, I]}", "dtype", lmf_dtype_name(t[i].dtype),
                                      "shape", shape, "data_offsets", (json_int_t)off,
                                      (json_int_t)(off + nb))
                          : NULL;
        if (!e || json_object_set_new(root, t[i].name, e) != 0) {
            s = lmf_fail(LMF_ERR_ARG, "%s: cannot describe tensor '%s' (name not valid UTF-8?)",
                         path, t[i].name);
            goto out;
        }
        off += nb;
    }
    char *j = json_dumps(root, JSON_COMPACT);
    if (!j) {
        s = lmf_fail(LMF_ERR_NOMEM, "%s: cannot format the header", path);
        goto out;
    }
    size_t jl = strlen(j), padded = (jl + 7) / 8 * 8;
    char *p = realloc(j, padded + 1);
    if (!p) {
        free(j);
        s = lmf_fail(LMF_ERR_NOMEM, "%s: out of memory", path);
        goto out;
    }
    memset(p + jl, ' ', padded - jl);
    p[padded] = '\0';
    *text = p;
    *len = padded;
out:
    json_decref(root);
    return s;
}

lmf_status lmf_st_write(const char *path, const lmf_st_out_tensor *t, int n,
                        const char *const *meta_kv, int n_meta) {
    if (n < 0 || n_meta < 0)
        return lmf_fail(LMF_ERR_ARG, "%s: negative tensor or metadata count", path);
    char *hdr = NULL;
    size_t hl = 0;
    LMF_TRY(build_header(path, t, n, meta_kv, n_meta, &hdr, &hl));
    char tmp[4200];
    lmf_status s = lmf_tmp_path(tmp, sizeof tmp, path);
    int fd = -1;
    if (s == LMF_OK) {
        fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
        if (fd < 0) s = lmf_fail(LMF_ERR_IO, "cannot create %s: %s", tmp, strerror(errno));
    }
    uint8_t p8[8];
    for (int i = 0; i < 8; i++) p8[i] = (uint8_t)((uint64_t)hl >> (8 * i));
    if (s == LMF_OK) s = lmf_write_all(fd, p8, 8, tmp);
    if (s == LMF_OK) s = lmf_write_all(fd, hdr, hl, tmp);
    for (int i = 0; i < n && s == LMF_OK; i++) {
        uint64_t nb = 0;
        s = out_nbytes(path, &t[i], &nb); /* already checked; recomputed for the size */
        if (s == LMF_OK && nb > 0) s = lmf_write_all(fd, t[i].data, (size_t)nb, tmp);
    }
    free(hdr);
    if (s != LMF_OK) {
        if (fd >= 0) {
            close(fd);
            unlink(tmp);
        }
        return s;
    }
    return lmf_commit_tmp(fd, tmp, path);
}

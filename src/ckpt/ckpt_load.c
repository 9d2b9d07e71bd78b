/* Reading a sharded checkpoint directory: the index, verified meta files, the model
 * configuration checked against the tensor table, and any ranges of params, m and v. */
#include "ckpt/ckpt_io.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <xxhash.h>

#include "lmforge/fsutil.h"

lmf_status lmf_ckpt_index_load(const char *dir, lmf_ckpt_index *ix) {
    char path[4300];
    memset(ix, 0, sizeof *ix);
    snprintf(path, sizeof path, "%s/index.json", dir);
    struct stat st;
    if (stat(path, &st) != 0)
        return lmf_fail(LMF_ERR_IO, "%s: %s; %s is not a complete lmforge checkpoint (format "
                        "version %d)", path, strerror(errno), dir, LMF_CKPT_VERSION);
    char *buf = NULL;
    size_t len = 0;
    LMF_TRY(lmf_read_file(path, &buf, &len, LMF_CKPT_INDEX_MAX_BYTES));
    lmf_status s = lmf_ckpt_index_parse(buf, len, path, ix);
    free(buf);
    return s;
}

lmf_status lmf_ckpt_read_meta(const char *dir, const lmf_ckpt_index *ix, const char *name,
                              char **buf, size_t *len) {
    char path[4300];
    *buf = NULL;
    *len = 0;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    const lmf_ckpt_file *f = lmf_ckpt_index_find(ix, name);
    if (!f || f->kind != LMF_CKPT_META)
        return lmf_fail(LMF_ERR_FORMAT, "%s/index.json does not list %s", dir, name);
    if (!lmf_file_exists(path))
        return lmf_fail(LMF_ERR_IO, "%s: missing, but index.json lists it: the checkpoint is "
                        "incomplete", path);
    char *b = NULL;
    size_t n = 0;
    LMF_TRY(lmf_read_file(path, &b, &n, LMF_CKPT_INDEX_MAX_BYTES));
    lmf_status s = LMF_OK;
    if (n != f->bytes)
        s = lmf_fail(LMF_ERR_FORMAT, "%s: %zu bytes, but index.json lists %llu: the file is "
                     "truncated or was replaced", path, n, (unsigned long long)f->bytes);
    else if (XXH3_64bits(b, n) != f->xxh3)
        s = lmf_fail(LMF_ERR_FORMAT, "%s: checksum mismatch with index.json: the file is "
                     "corrupted or was edited", path);
    if (s != LMF_OK) {
        free(b);
        return s;
    }
    *buf = b;
    *len = n;
    return LMF_OK;
}

lmf_status lmf_ckpt_check_layout(const char *what, const lmf_ckpt_index *ix,
                                 const lmf_param_layout *l) {
    if ((uint64_t)l->total != ix->total || l->n_tensors != ix->n_tensors)
        return lmf_fail(LMF_ERR_FORMAT, "%s: index.json describes %d tensors in %llu floats but "
                        "config.json implies %d in %llu: the files do not belong together", what,
                        ix->n_tensors, (unsigned long long)ix->total, l->n_tensors,
                        (unsigned long long)l->total);
    for (int i = 0; i < l->n_tensors; i++) {
        const lmf_tensor_info *a = &l->tensors[i];
        const lmf_ckpt_tensor *b = &ix->tensors[i];
        int same = strcmp(a->name, b->name) == 0 && a->ndim == b->ndim &&
                   a->shape[0] == b->shape[0] && (a->ndim == 1 || a->shape[1] == b->shape[1]) &&
                   (uint64_t)a->offset == b->offset && (uint64_t)a->numel == b->numel;
        if (!same)
            return lmf_fail(LMF_ERR_FORMAT, "%s: tensor %d of index.json ('%s') differs from the "
                            "layout config.json implies ('%s'): the files do not belong "
                            "together", what, i, b->name, a->name);
    }
    return LMF_OK;
}

lmf_status lmf_ckpt_read_config(const char *dir, const lmf_ckpt_index *ix, lmf_gpt_config *cfg) {
    char *buf = NULL, path[4300];
    size_t len = 0;
    LMF_TRY(lmf_ckpt_read_meta(dir, ix, "config.json", &buf, &len)); /* verified */
    free(buf);
    snprintf(path, sizeof path, "%s/config.json", dir);
    LMF_TRY(lmf_config_load_json(path, cfg));
    lmf_param_layout l;
    LMF_TRY(lmf_layout_build(cfg, &l));
    lmf_status s = lmf_ckpt_check_layout(dir, ix, &l);
    lmf_layout_free(&l);
    return s;
}

lmf_status lmf_ckpt_read_ranges(const char *dir, const lmf_ckpt_index *ix,
                                const lmf_ckpt_want want[LMF_CKPT_N_ARRAYS]) {
    for (int a = 0; a < LMF_CKPT_N_ARRAYS; a++)
        LMF_ASSERT(!want[a].dst || want[a].begin >= want[a].end || want[a].end <= ix->total);
    for (int i = 0; i < ix->n_files; i++) {
        const lmf_ckpt_file *f = &ix->files[i];
        if (f->kind != LMF_CKPT_SHARD) continue;
        int needed = 0;
        for (int a = 0; a < LMF_CKPT_N_ARRAYS; a++)
            needed |= want[a].dst && want[a].begin < f->end && f->begin < want[a].end;
        if (needed) LMF_TRY(lmf_ckpt_shard_read(dir, ix, f, want));
    }
    return LMF_OK;
}

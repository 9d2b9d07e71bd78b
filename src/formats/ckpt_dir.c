/* Reading checkpoint directories: the index, verified meta files, the model configuration
 * checked against the tensor table, any ranges of params, m and v; a run's newest checkpoint;
 * a model from a checkpoint, and its consolidation into a model directory. */
#include "lmforge/ckpt_format.h"

#include <dirent.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <xxhash.h>

#include "lmforge/formats.h"
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
    LMF_TRY(lmf_config_read(path, cfg));
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

/* ---- finding checkpoints ---- */

/* step of "step_N" (digits only), or -1 */
static long long step_of(const char *name) {
    if (strncmp(name, "step_", 5) != 0 || !name[5]) return -1;
    long long v = 0;
    for (const char *p = name + 5; *p; p++) {
        if (*p < '0' || *p > '9' || v > 100000000LL) return -1;
        v = v * 10 + (*p - '0');
    }
    return v;
}

static int complete(const char *ckdir, long long step) {
    char p[4300];
    snprintf(p, sizeof p, "%s/step_%08lld/index.json", ckdir, step);
    return lmf_file_exists(p);
}

/* the newest step_N directory holding index.json (renamed into place only when complete) */
static long long newest_complete(const char *ckdir) {
    DIR *d = opendir(ckdir);
    if (!d) return -1;
    long long best = -1;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        long long s = step_of(e->d_name);
        if (s > best && complete(ckdir, s)) best = s;
    }
    closedir(d);
    return best;
}

lmf_status lmf_ckpt_find_latest(const char *run_dir, lmf_ckpt_info *out) {
    char ckdir[4200], path[4300];
    snprintf(ckdir, sizeof ckdir, "%s/checkpoints", run_dir);
    snprintf(path, sizeof path, "%s/latest", ckdir);
    long long newest = newest_complete(ckdir), named = -1;
    char *buf = NULL;
    size_t len = 0;
    if (lmf_file_exists(path)) {
        LMF_TRY(lmf_read_file(path, &buf, &len, 4096));
        while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == ' ')) buf[--len] = '\0';
        named = step_of(buf);
        free(buf);
        if (named < 0)
            return lmf_fail(LMF_ERR_FORMAT, "%s: does not name a checkpoint (expected step_N); "
                            "write the name of a complete checkpoint directory into it", path);
        if (newest < named)
            return lmf_fail(LMF_ERR_IO, "%s names step_%08lld, but %s/step_%08lld is missing or "
                            "incomplete (no index.json)", path, named, ckdir, named);
    } else if (newest < 0) {
        return lmf_fail(LMF_ERR_IO, "%s has no checkpoint to resume from (no %s); train with "
                        "--save-every N to write checkpoints", run_dir, path);
    }
    int n = snprintf(out->dir, sizeof out->dir, "%s/step_%08lld", ckdir, newest);
    if (n < 0 || (size_t)n >= sizeof out->dir)
        return lmf_fail(LMF_ERR_ARG, "%s: path too long", run_dir);
    out->step = (int)newest;
    return LMF_OK;
}

lmf_status lmf_ckpt_model_config(const lmf_ckpt_info *ck, lmf_gpt_config *cfg) {
    lmf_ckpt_index ix;
    LMF_TRY(lmf_ckpt_index_load(ck->dir, &ix));
    lmf_status s = lmf_ckpt_read_config(ck->dir, &ix, cfg);
    lmf_ckpt_index_free(&ix);
    return s;
}

/* ---- a model from a checkpoint ---- */

/* the checkpoint directory path stands for: itself (index.json) or a run's newest */
static lmf_status resolve(const char *path, char *dir, size_t cap) {
    char p[4300];
    snprintf(p, sizeof p, "%s/index.json", path);
    if (lmf_file_exists(p)) {
        if (strlen(path) >= cap) return lmf_fail(LMF_ERR_ARG, "%s: path too long", path);
        memcpy(dir, path, strlen(path) + 1);
        return LMF_OK;
    }
    snprintf(p, sizeof p, "%s/checkpoints", path);
    if (!lmf_file_exists(p))
        return lmf_fail(LMF_ERR_IO, "%s: neither a checkpoint directory (index.json) nor a run "
                        "directory (checkpoints/)", path);
    lmf_ckpt_info ck;
    LMF_TRY(lmf_ckpt_find_latest(path, &ck));
    if (strlen(ck.dir) >= cap) return lmf_fail(LMF_ERR_ARG, "%s: path too long", ck.dir);
    memcpy(dir, ck.dir, strlen(ck.dir) + 1);
    return LMF_OK;
}

lmf_status lmf_ckpt_load_model(const char *path, const lmf_kernels *k, lmf_gpt **out) {
    *out = NULL;
    char dir[4096];
    LMF_TRY(resolve(path, dir, sizeof dir));
    lmf_ckpt_index ix;
    LMF_TRY(lmf_ckpt_index_load(dir, &ix));
    lmf_gpt_config cfg;
    lmf_gpt *m = NULL;
    lmf_status s = lmf_ckpt_read_config(dir, &ix, &cfg);
    if (s == LMF_OK) s = lmf_gpt_create(&cfg, k, &m);
    if (s == LMF_OK) s = lmf_ckpt_check_layout(dir, &ix, lmf_gpt_layout(m));
    if (s == LMF_OK) {
        lmf_ckpt_want w[LMF_CKPT_N_ARRAYS] = {
            {0, ix.total, lmf_gpt_params(m)}, {0, 0, NULL}, {0, 0, NULL}};
        s = lmf_ckpt_read_ranges(dir, &ix, w);
    }
    lmf_ckpt_index_free(&ix);
    if (s != LMF_OK) {
        lmf_gpt_free(m);
        return s;
    }
    *out = m;
    return LMF_OK;
}

lmf_status lmf_ckpt_consolidate(const char *ckpt_dir, const char *out_model_dir) {
    lmf_gpt *m = NULL;
    LMF_TRY(lmf_ckpt_load_model(ckpt_dir, lmf_kernels_by_name("ref"), &m));
    lmf_status s = lmf_hf_save(m, out_model_dir, -1);
    lmf_gpt_free(m);
    return s;
}

/* A model from a sharded checkpoint, and consolidation into config.json + model.safetensors. */
#include "ckpt/checkpoint.h"

#include <stdio.h>
#include <string.h>

#include "lmforge/fsutil.h"
#include "ckpt/ckpt_io.h"

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
    lmf_status s = lmf_gpt_save(m, out_model_dir);
    lmf_gpt_free(m);
    return s;
}

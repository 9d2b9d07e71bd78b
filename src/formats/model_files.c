/* Model files: config.json + model.safetensors with Hugging Face GPT-2 names and layouts. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "lmforge/fsutil.h"
#include "lmforge/model.h"
#include "lmforge/safetensors.h"

lmf_status lmf_gpt_save_weights(lmf_gpt *m, const char *path) {
    const lmf_param_layout *l = lmf_gpt_layout(m);
    float *p = lmf_gpt_params(m);
    LMF_ASSERT(p != NULL);
    lmf_st_out_tensor *t = calloc((size_t)l->n_tensors, sizeof *t);
    if (!t) return lmf_fail(LMF_ERR_NOMEM, "cannot allocate the tensor list");
    for (int i = 0; i < l->n_tensors; i++) {
        const lmf_tensor_info *ti = &l->tensors[i];
        t[i].name = ti->name;
        t[i].dtype = LMF_F32;
        t[i].ndim = ti->ndim;
        t[i].shape[0] = ti->shape[0];
        t[i].shape[1] = ti->shape[1];
        t[i].data = p + ti->offset; /* wte: the first vocab_size rows are the real ones */
    }
    const char *meta[] = {"format", "pt"};
    lmf_status s = lmf_st_write(path, t, l->n_tensors, meta, 1);
    free(t);
    return s;
}

lmf_status lmf_gpt_save(lmf_gpt *m, const char *dir) {
    char path[4096];
    LMF_TRY(lmf_mkdir_p(dir));
    snprintf(path, sizeof path, "%s/config.json", dir);
    LMF_TRY(lmf_config_save_json(path, lmf_gpt_cfg(m)));
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    return lmf_gpt_save_weights(m, path);
}

lmf_status lmf_gpt_load_weights(lmf_gpt *m, const char *path) {
    lmf_st_file *f = NULL;
    LMF_TRY(lmf_st_open(path, &f));
    const lmf_param_layout *l = lmf_gpt_layout(m);
    float *p = lmf_gpt_params(m);
    lmf_status s = LMF_OK;
    for (int i = 0; i < l->n_tensors && s == LMF_OK; i++) {
        const lmf_tensor_info *ti = &l->tensors[i];
        const lmf_st_tensor *t = lmf_st_find(f, ti->name);
        if (!t) {
            /* some exporters prefix names with "transformer." */
            char alt[64];
            snprintf(alt, sizeof alt, "transformer.%s", ti->name);
            t = lmf_st_find(f, alt);
        }
        if (!t) {
            s = lmf_fail(LMF_ERR_FORMAT, "%s: tensor '%s' is missing", path, ti->name);
            break;
        }
        int ok = t->ndim == ti->ndim && t->shape[0] == ti->shape[0] &&
                 (ti->ndim == 1 || t->shape[1] == ti->shape[1]);
        if (!ok) {
            s = lmf_fail(LMF_ERR_FORMAT,
                         "%s: tensor '%s' has shape [%lld%s%lld] but the config implies "
                         "[%lld%s%lld]; the weights and config.json disagree",
                         path, ti->name, (long long)t->shape[0], t->ndim > 1 ? ", " : "",
                         t->ndim > 1 ? (long long)t->shape[1] : 0LL, (long long)ti->shape[0],
                         ti->ndim > 1 ? ", " : "", ti->ndim > 1 ? (long long)ti->shape[1] : 0LL);
            break;
        }
        size_t n = (size_t)ti->shape[0] * (size_t)(ti->ndim > 1 ? ti->shape[1] : 1);
        s = lmf_st_read_f32(f, t, p + ti->offset, n);
        /* padded wte rows stay zero */
        if (s == LMF_OK && n < ti->numel) memset(p + ti->offset + n, 0, (ti->numel - n) * sizeof(float));
    }
    lmf_st_close(f);
    return s;
}

lmf_status lmf_gpt_load(const char *dir, const lmf_kernels *k, lmf_gpt **out) {
    char path[4096];
    lmf_gpt_config c;
    *out = NULL;
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return lmf_fail(LMF_ERR_IO, "%s: not a model directory (expected config.json and "
                        "model.safetensors inside)", dir);
    snprintf(path, sizeof path, "%s/config.json", dir);
    LMF_TRY(lmf_config_load_json(path, &c));
    lmf_gpt *m = NULL;
    LMF_TRY(lmf_gpt_create(&c, k, &m));
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    lmf_status s = lmf_gpt_load_weights(m, path);
    if (s != LMF_OK) {
        lmf_gpt_free(m);
        return s;
    }
    *out = m;
    return LMF_OK;
}

/* Training checkpoints: weights, AdamW moments and trainer state, written atomically. */
#include "train/checkpoint.h"

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
#include "train/trainer_internal.h"

#define STATE_FORMAT "lmforge.trainer_state"
#define STATE_VERSION 1

lmf_status lmf_ckpt_find_latest(const char *run_dir, lmf_ckpt_info *out) {
    char path[4096];
    snprintf(path, sizeof path, "%s/checkpoints/latest", run_dir);
    char *buf = NULL;
    size_t len = 0;
    if (lmf_read_file(path, &buf, &len, 4096) != LMF_OK)
        return lmf_fail(LMF_ERR_IO, "%s has no checkpoint to resume from (missing %s); train with "
                        "--save-every N to write checkpoints", run_dir, path);
    while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == ' ')) buf[--len] = '\0';
    int step = -1;
    if (sscanf(buf, "step_%d", &step) != 1 || step < 0 || strchr(buf, '/') != NULL) {
        free(buf);
        return lmf_fail(LMF_ERR_FORMAT, "%s: does not name a checkpoint (expected step_N)", path);
    }
    snprintf(out->dir, sizeof out->dir, "%s/checkpoints/%s", run_dir, buf);
    out->step = step;
    free(buf);
    return LMF_OK;
}

static json_t *opts_to_json(const lmf_train_opts *o) {
    return json_pack("{s:s?, s:s?, s:i, s:i, s:i, s:i, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:s,"
                     " s:i, s:I, s:b, s:i, s:i, s:i, s:i}",
                     "data", o->data, "val_data", o->val_data, "steps", o->steps, "batch",
                     o->batch, "seq", o->seq, "grad_accum", o->grad_accum, "lr", (double)o->lr,
                     "min_lr", (double)o->min_lr, "weight_decay", (double)o->weight_decay,
                     "beta1", (double)o->beta1, "beta2", (double)o->beta2, "adam_eps",
                     (double)o->adam_eps, "grad_clip", (double)o->grad_clip, "lr_schedule",
                     o->lr_schedule == LMF_LR_CONSTANT ? "constant" : "cosine", "warmup",
                     o->warmup, "seed", (json_int_t)o->seed, "shuffle", o->shuffle, "eval_every",
                     o->eval_every, "eval_batches", o->eval_batches, "save_every", o->save_every,
                     "keep_checkpoints", o->keep_checkpoints);
}

static lmf_status write_optimizer(lmf_trainer *t, const float *m, const float *v, const char *path) {
    const lmf_param_layout *l = lmf_gpt_layout(t->model);
    int n = l->n_tensors;
    lmf_st_out_tensor *ts = calloc((size_t)n * 2, sizeof *ts);
    char *names = calloc((size_t)n * 2, 64);
    if (!ts || !names) {
        free(ts);
        free(names);
        return lmf_fail(LMF_ERR_NOMEM, "cannot allocate the optimizer tensor list");
    }
    for (int i = 0; i < n; i++) {
        const lmf_tensor_info *ti = &l->tensors[i];
        for (int j = 0; j < 2; j++) {
            lmf_st_out_tensor *o = &ts[2 * i + j];
            char *nm = names + (size_t)(2 * i + j) * 64;
            snprintf(nm, 64, "%s.%s", j == 0 ? "exp_avg" : "exp_avg_sq", ti->name);
            o->name = nm;
            o->dtype = LMF_F32;
            o->ndim = ti->ndim;
            o->shape[0] = ti->shape[0];
            o->shape[1] = ti->shape[1];
            o->data = (j == 0 ? m : v) + ti->offset;
        }
    }
    const char *meta[] = {"format", "lmforge.adamw"};
    lmf_status s = lmf_st_write(path, ts, 2 * n, meta, 1);
    free(ts);
    free(names);
    return s;
}

static lmf_status read_optimizer(lmf_trainer *t, float *m, float *v, const char *path) {
    lmf_st_file *f = NULL;
    LMF_TRY(lmf_st_open(path, &f));
    const lmf_param_layout *l = lmf_gpt_layout(t->model);
    lmf_status s = LMF_OK;
    for (int i = 0; i < l->n_tensors && s == LMF_OK; i++) {
        const lmf_tensor_info *ti = &l->tensors[i];
        size_t n = (size_t)ti->shape[0] * (size_t)(ti->ndim > 1 ? ti->shape[1] : 1);
        for (int j = 0; j < 2 && s == LMF_OK; j++) {
            char nm[64];
            snprintf(nm, sizeof nm, "%s.%s", j == 0 ? "exp_avg" : "exp_avg_sq", ti->name);
            const lmf_st_tensor *st = lmf_st_find(f, nm);
            if (!st) {
                s = lmf_fail(LMF_ERR_FORMAT, "%s: tensor '%s' is missing", path, nm);
                break;
            }
            s = lmf_st_read_f32(f, st, (j == 0 ? m : v) + ti->offset, n);
        }
    }
    lmf_st_close(f);
    return s;
}

static int remove_tree(const char *path) {
    DIR *d = opendir(path);
    if (!d) return unlink(path);
    struct dirent *e;
    char p[4096];
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        snprintf(p, sizeof p, "%s/%s", path, e->d_name);
        remove_tree(p);
    }
    closedir(d);
    return rmdir(path);
}

static int cmp_int(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

/* keep the newest `keep` step_N directories */
static void prune(const char *ckdir, int keep) {
    if (keep <= 0) return;
    DIR *d = opendir(ckdir);
    if (!d) return;
    int steps[4096], n = 0, s;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && n < 4096) {
        char tail;
        if (sscanf(e->d_name, "step_%d%c", &s, &tail) == 1) steps[n++] = s;
    }
    closedir(d);
    qsort(steps, (size_t)n, sizeof(int), cmp_int);
    for (int i = 0; i + keep < n; i++) {
        char p[4096];
        snprintf(p, sizeof p, "%s/step_%08d", ckdir, steps[i]);
        remove_tree(p);
    }
}

/* Rank 0 writes the checkpoint from full copies of the weights and AdamW state. */
static lmf_status write_ckpt(lmf_trainer *t, const float *m, const float *v) {
    char ckdir[4096], tmp[4096], fin[4096], path[4200];
    snprintf(ckdir, sizeof ckdir, "%s/checkpoints", t->o.out_dir);
    LMF_TRY(lmf_mkdir_p(ckdir));
    snprintf(tmp, sizeof tmp, "%s/.tmp-step_%08d", ckdir, t->step);
    snprintf(fin, sizeof fin, "%s/step_%08d", ckdir, t->step);
    remove_tree(tmp);
    LMF_TRY(lmf_gpt_save(t->model, tmp));
    snprintf(path, sizeof path, "%s/optimizer.safetensors", tmp);
    LMF_TRY(write_optimizer(t, m, v, path));

    lmf_loader_state ls;
    lmf_loader_get_state(t->loader, &ls);
    json_t *st = json_pack("{s:s, s:i, s:i, s:i, s:{s:I, s:I, s:I, s:b}, s:o}", "format",
                           STATE_FORMAT, "version", STATE_VERSION, "step", t->step, "world_size",
                           t->world, "loader", "epoch", (json_int_t)ls.epoch, "position",
                           (json_int_t)ls.position, "seed", (json_int_t)ls.seed, "shuffle",
                           ls.shuffle, "opts", opts_to_json(&t->o));
    char *txt = st ? json_dumps(st, JSON_INDENT(2) | JSON_SORT_KEYS) : NULL;
    json_decref(st);
    if (!txt) return lmf_fail(LMF_ERR_NOMEM, "cannot format the trainer state");
    snprintf(path, sizeof path, "%s/trainer_state.json", tmp);
    lmf_status s = lmf_write_file_atomic(path, txt, strlen(txt));
    free(txt);
    LMF_TRY(s);
    remove_tree(fin);
    if (rename(tmp, fin) != 0)
        return lmf_fail(LMF_ERR_IO, "cannot rename %s to %s: %s", tmp, fin, strerror(errno));
    LMF_TRY(lmf_fsync_parent_dir(fin));
    char name[64];
    int len = snprintf(name, sizeof name, "step_%08d\n", t->step);
    snprintf(path, sizeof path, "%s/latest", ckdir);
    LMF_TRY(lmf_write_file_atomic(path, name, (size_t)len));
    prune(ckdir, t->o.keep_checkpoints);
    return LMF_OK;
}

lmf_status lmf_ckpt_save(lmf_trainer *t) {
    size_t n = lmf_gpt_layout(t->model)->total;
    float *m = malloc(n * sizeof(float)), *v = malloc(n * sizeof(float));
    float *full = NULL;
    int own = lmf_gpt_params(t->model) != NULL;
    lmf_status s = LMF_OK;
    if (!m || !v) s = lmf_fail(LMF_ERR_NOMEM, "cannot allocate the optimizer state for saving");
    if (s == LMF_OK) s = lmf_ddp_gather_opt_state(t->ddp, m, v);
    if (s == LMF_OK && !own) { /* ZeRO-3: gather the weights for the file */
        full = malloc(n * sizeof(float));
        if (!full) s = lmf_fail(LMF_ERR_NOMEM, "cannot allocate the weights for saving");
        if (s == LMF_OK) s = lmf_ddp_gather_params(t->ddp, full);
        if (s == LMF_OK) lmf_gpt_adopt_params(t->model, full);
    }
    if (s == LMF_OK && t->rank == 0) s = write_ckpt(t, m, v);
    if (!own && full) lmf_gpt_drop_params(t->model);
    free(m);
    free(v);
    /* every rank learns whether rank 0's write worked */
    int64_t bad = s != LMF_OK;
    if (lmf_comm_allreduce_i64(t->comm, &bad, 1, LMF_COMM_MAX) != LMF_OK) return LMF_ERR_COMM;
    if (bad && s == LMF_OK) return lmf_fail(LMF_ERR_IO, "rank 0 could not write the checkpoint");
    return s;
}

static lmf_status read_state_json(const char *dir, json_t **out) {
    char path[4200];
    snprintf(path, sizeof path, "%s/trainer_state.json", dir);
    json_error_t e;
    json_t *j = json_load_file(path, JSON_REJECT_DUPLICATES, &e);
    if (!j)
        return lmf_fail(LMF_ERR_FORMAT, "%s: %s (line %d, column %d)", path, e.text, e.line,
                        e.column);
    const char *fmt = json_string_value(json_object_get(j, "format"));
    if (!fmt || strcmp(fmt, STATE_FORMAT) != 0 ||
        json_integer_value(json_object_get(j, "version")) != STATE_VERSION) {
        json_decref(j);
        return lmf_fail(LMF_ERR_FORMAT, "%s: not an lmforge trainer state of version %d", path,
                        STATE_VERSION);
    }
    *out = j;
    return LMF_OK;
}

lmf_status lmf_ckpt_load_state(lmf_trainer *t, const lmf_ckpt_info *ck) {
    char path[4200];
    snprintf(path, sizeof path, "%s/optimizer.safetensors", ck->dir);
    size_t n = lmf_gpt_layout(t->model)->total;
    float *m = calloc(n, sizeof(float)), *v = calloc(n, sizeof(float));
    lmf_status rs = m && v ? read_optimizer(t, m, v, path)
                           : lmf_fail(LMF_ERR_NOMEM, "cannot allocate the optimizer state");
    if (rs == LMF_OK) lmf_ddp_load_state(t->ddp, lmf_gpt_params(t->model), m, v);
    free(m);
    free(v);
    LMF_TRY(rs);
    json_t *j = NULL;
    LMF_TRY(read_state_json(ck->dir, &j));
    json_t *ld = json_object_get(j, "loader");
    json_t *step = json_object_get(j, "step");
    lmf_loader_state ls;
    ls.epoch = (uint64_t)json_integer_value(json_object_get(ld, "epoch"));
    ls.position = (uint64_t)json_integer_value(json_object_get(ld, "position"));
    ls.seed = (uint64_t)json_integer_value(json_object_get(ld, "seed"));
    ls.shuffle = json_is_true(json_object_get(ld, "shuffle"));
    int ok = json_is_integer(step) && json_integer_value(step) >= 0 && json_is_object(ld);
    t->step = (int)json_integer_value(step);
    json_decref(j);
    if (!ok) return lmf_fail(LMF_ERR_FORMAT, "%s/trainer_state.json: missing step or loader", ck->dir);
    return lmf_loader_set_state(t->loader, &ls);
}

lmf_status lmf_ckpt_read_opts(const char *run_dir, lmf_train_opts *o) {
    static char data[4096], val[4096];
    lmf_ckpt_info ck;
    LMF_TRY(lmf_ckpt_find_latest(run_dir, &ck));
    json_t *j = NULL;
    LMF_TRY(read_state_json(ck.dir, &j));
    json_t *op = json_object_get(j, "opts");
    const char *sched = NULL, *d = NULL, *v = NULL;
    double lr = o->lr, min_lr = o->min_lr, wd = o->weight_decay, b1 = o->beta1, b2 = o->beta2,
           eps = o->adam_eps, clip = o->grad_clip;
    json_int_t seed = (json_int_t)o->seed;
    int shuffle = o->shuffle;
    json_error_t e;
    if (json_unpack_ex(op, &e, 0,
                       "{s?s, s?s, s?i, s?i, s?i, s?i, s?F, s?F, s?F, s?F, s?F, s?F, s?F, s?s, "
                       "s?i, s?I, s?b, s?i, s?i, s?i, s?i}",
                       "data", &d, "val_data", &v, "steps", &o->steps, "batch", &o->batch, "seq",
                       &o->seq, "grad_accum", &o->grad_accum, "lr", &lr, "min_lr", &min_lr,
                       "weight_decay", &wd, "beta1", &b1, "beta2", &b2, "adam_eps", &eps,
                       "grad_clip", &clip, "lr_schedule", &sched, "warmup", &o->warmup, "seed",
                       &seed, "shuffle", &shuffle, "eval_every", &o->eval_every, "eval_batches",
                       &o->eval_batches, "save_every", &o->save_every, "keep_checkpoints",
                       &o->keep_checkpoints) != 0) {
        json_decref(j);
        return lmf_fail(LMF_ERR_FORMAT, "%s/trainer_state.json: bad opts: %s", ck.dir, e.text);
    }
    if (d) { snprintf(data, sizeof data, "%s", d); o->data = data; }
    if (v) { snprintf(val, sizeof val, "%s", v); o->val_data = val; }
    o->lr = (float)lr; o->min_lr = (float)min_lr; o->weight_decay = (float)wd;
    o->beta1 = (float)b1; o->beta2 = (float)b2; o->adam_eps = (float)eps; o->grad_clip = (float)clip;
    o->seed = (uint64_t)seed;
    o->shuffle = shuffle;
    if (sched) o->lr_schedule = strcmp(sched, "constant") == 0 ? LMF_LR_CONSTANT : LMF_LR_COSINE;
    json_decref(j);
    return LMF_OK;
}

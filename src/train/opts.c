/* The run's options as the JSON object a checkpoint stores (trainer_state.json "opts"), and
 * back: how `--resume` continues a run with the options it was started with. */
#include "lmforge/train.h"

#include "lmforge/ckpt.h"
#include "lmforge/ckpt_format.h"
#include "lmforge/comm.h"
#include "lmforge/fsutil.h"
#include "lmforge/kernels.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* path relative to the run directory when it lies inside it (so the directory can be moved),
 * else NULL */
static const char *in_run_dir(const lmf_train_opts *o, const char *path) {
    if (!path || !o->out_dir) return NULL;
    size_t n = strlen(o->out_dir);
    while (n > 1 && o->out_dir[n - 1] == '/') n--;
    if (strncmp(path, o->out_dir, n) != 0 || path[n] != '/' || !path[n + 1]) return NULL;
    return path + n + 1;
}

char *lmf_train_opts_to_json(const lmf_train_opts *o) {
    json_t *j = json_object();
    if (!j) return NULL;
    int bad = 0;
#define SET(k, v) bad |= json_object_set_new(j, k, v)
    const char *rd = in_run_dir(o, o->data), *rv = in_run_dir(o, o->val_data);
    SET("data", rd ? json_string(rd) : o->data ? json_string(o->data) : json_null());
    SET("val_data", rv ? json_string(rv) : o->val_data ? json_string(o->val_data) : json_null());
    if (rd) SET("data_in_run_dir", json_true());
    if (rv) SET("val_data_in_run_dir", json_true());
    SET("steps", json_integer(o->steps));
    SET("batch", json_integer(o->batch));
    SET("seq", json_integer(o->seq));
    SET("grad_accum", json_integer(o->grad_accum));
    SET("global_batch", json_integer(o->global_batch));
    SET("zero_stage", json_integer(o->zero_stage));
    SET("lr", json_real(o->lr));
    SET("min_lr", json_real(o->min_lr));
    SET("weight_decay", json_real(o->weight_decay));
    SET("beta1", json_real(o->beta1));
    SET("beta2", json_real(o->beta2));
    SET("adam_eps", json_real(o->adam_eps));
    SET("grad_clip", json_real(o->grad_clip));
    SET("lr_schedule", json_string(o->lr_schedule == LMF_LR_CONSTANT ? "constant" : "cosine"));
    SET("warmup", json_integer(o->warmup));
    SET("seed", json_integer((json_int_t)o->seed));
    SET("shuffle", json_boolean(o->shuffle));
    SET("eval_every", json_integer(o->eval_every));
    SET("eval_batches", json_integer(o->eval_batches));
    SET("save_every", json_integer(o->save_every));
    SET("keep_checkpoints", json_integer(o->keep_checkpoints));
    SET("max_bad_steps", json_integer(o->max_bad_steps));
    SET("spike_factor", json_real(o->spike_factor));
    SET("doc_mask_eot", json_integer(o->doc_mask_eot));
    SET("kernels", json_string(o->kernels ? o->kernels : "fast"));
    SET("recompute", json_string(lmf_recompute_name(o->recompute)));
    /* the parallel layout, restored by a resume at the same number of ranks */
    json_t *lay = json_pack("{s:i, s:b, s:i, s:s, s:i}", "tp", o->tp > 1 ? o->tp : 1, "sp",
                            o->sequence_parallel ? 1 : 0, "pp", o->pp > 1 ? o->pp : 1,
                            "schedule", lmf_pp_schedule_name(o->schedule), "virtual_stages",
                            o->virtual_stages > 1 ? o->virtual_stages : 1);
    if (lay) bad |= json_object_set_new(lay, "stage_layers", o->stage_layers
                                                                 ? json_string(o->stage_layers)
                                                                 : json_null());
    SET("layout", lay ? lay : json_null());
#undef SET
    char *text = bad ? NULL : json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(j);
    return text;
}

/* the "layout" object of saved options into *saved (0 on success; else lmf_fail's message) */
static int read_layout(json_t *lay, lmf_saved_opts *saved) {
    json_error_t e;
    const char *sched = NULL;
    json_t *sl = NULL;
    int tp = 1, sp = 0, pp = 1, v = 1;
    if (json_unpack_ex(lay, &e, 0, "{s:i, s:b, s:i, s:s, s:i, s?o}", "tp", &tp, "sp", &sp, "pp",
                       &pp, "schedule", &sched, "virtual_stages", &v, "stage_layers", &sl) != 0)
        return lmf_fail(LMF_ERR_FORMAT, "%s", e.text), -1;
    if (tp < 1 || tp > 4096 || pp < 1 || pp > 1024 || v < 1 || v > 64)
        return lmf_fail(LMF_ERR_FORMAT, "tp %d, pp %d or virtual_stages %d out of range", tp, pp, v), -1;
    if (lmf_pp_schedule_parse(sched, &saved->schedule) != LMF_OK) return -1;
    if (sl && !json_is_null(sl)) {
        if (!json_is_string(sl) || strlen(json_string_value(sl)) >= sizeof saved->stage_layers)
            return lmf_fail(LMF_ERR_FORMAT, "stage_layers must be a short string"), -1;
        snprintf(saved->stage_layers, sizeof saved->stage_layers, "%s", json_string_value(sl));
    } else {
        saved->stage_layers[0] = '\0';
    }
    saved->tp = tp, saved->sequence_parallel = sp, saved->pp = pp, saved->virtual_stages = v;
    saved->has_layout = 1;
    return 0;
}

lmf_status lmf_train_opts_from_json(const char *text, const char *what, lmf_train_opts *o,
                                lmf_saved_opts *saved) {
    json_error_t e;
    json_t *op = json_loads(text, JSON_REJECT_DUPLICATES, &e);
    if (!json_is_object(op)) {
        json_decref(op);
        return lmf_fail(LMF_ERR_FORMAT, "%s: bad opts: not a JSON object", what);
    }
    const char *sched = NULL, *kern = NULL, *rec = NULL;
    json_t *dj = NULL, *vj = NULL, *lay = NULL;
    double lr = o->lr, min_lr = o->min_lr, wd = o->weight_decay, b1 = o->beta1, b2 = o->beta2,
           eps = o->adam_eps, clip = o->grad_clip, spike = o->spike_factor;
    json_int_t seed = (json_int_t)o->seed, gb = o->global_batch;
    int shuffle = o->shuffle;
    saved->data_in_run_dir = saved->val_data_in_run_dir = 0;
    saved->has_layout = saved->layout_fits = 0;
    if (json_unpack_ex(op, &e, 0,
                       "{s?o, s?o, s?b, s?b, s?i, s?i, s?i, s?i, s?I, s?i, s?F, s?F, s?F, s?F, "
                       "s?F, s?F, s?F, s?s, s?i, s?I, s?b, s?i, s?i, s?i, s?i, s?i, s?F, s?i, "
                       "s?s, s?s, s?o}",
                       "data", &dj, "val_data", &vj, "data_in_run_dir", &saved->data_in_run_dir,
                       "val_data_in_run_dir", &saved->val_data_in_run_dir, "steps", &o->steps, "batch", &o->batch, "seq",
                       &o->seq, "grad_accum", &o->grad_accum, "global_batch", &gb, "zero_stage",
                       &o->zero_stage, "lr", &lr, "min_lr", &min_lr, "weight_decay", &wd,
                       "beta1", &b1, "beta2", &b2, "adam_eps", &eps, "grad_clip", &clip,
                       "lr_schedule", &sched, "warmup", &o->warmup, "seed", &seed, "shuffle",
                       &shuffle, "eval_every", &o->eval_every, "eval_batches", &o->eval_batches,
                       "save_every", &o->save_every, "keep_checkpoints", &o->keep_checkpoints,
                       "max_bad_steps", &o->max_bad_steps, "spike_factor", &spike,
                       "doc_mask_eot", &o->doc_mask_eot, "kernels", &kern, "recompute", &rec,
                       "layout", &lay) != 0) {
        json_decref(op);
        return lmf_fail(LMF_ERR_FORMAT, "%s: bad opts: %s", what, e.text);
    }
    if (lay && !json_is_null(lay) && read_layout(lay, saved) != 0) {
        json_decref(op);
        return lmf_fail(LMF_ERR_FORMAT, "%s: bad opts: layout: %s", what, lmf_last_error());
    }
    if ((kern && !lmf_kernels_by_name(kern)) || (rec && lmf_recompute_parse(rec, &o->recompute))) {
        json_decref(op);
        return lmf_fail(LMF_ERR_FORMAT, "%s: bad opts: kernels must be ref or fast and recompute "
                        "none, selective or full", what);
    }
    if (kern) {
        snprintf(saved->kernels, sizeof saved->kernels, "%s", kern);
        o->kernels = saved->kernels;
    }
    if ((dj && !json_is_string(dj) && !json_is_null(dj)) ||
        (vj && !json_is_string(vj) && !json_is_null(vj))) {
        json_decref(op);
        return lmf_fail(LMF_ERR_FORMAT, "%s: bad opts: data and val_data must be paths or null",
                        what);
    }
    if (json_is_string(dj)) {
        snprintf(saved->data, sizeof saved->data, "%s", json_string_value(dj));
        o->data = saved->data;
    }
    if (json_is_string(vj)) {
        snprintf(saved->val_data, sizeof saved->val_data, "%s", json_string_value(vj));
        o->val_data = saved->val_data;
    }
    o->lr = (float)lr;
    o->min_lr = (float)min_lr;
    o->weight_decay = (float)wd;
    o->beta1 = (float)b1;
    o->beta2 = (float)b2;
    o->adam_eps = (float)eps;
    o->grad_clip = (float)clip;
    o->spike_factor = (float)spike;
    o->seed = (uint64_t)seed;
    o->global_batch = gb;
    o->shuffle = shuffle;
    if (sched) o->lr_schedule = strcmp(sched, "constant") == 0 ? LMF_LR_CONSTANT : LMF_LR_COSINE;
    json_decref(op);
    return LMF_OK;
}

lmf_status lmf_train_opts_from_run(const char *run_dir, lmf_train_opts *o, lmf_saved_opts *saved) {
    char *text = NULL, what[4200];
    LMF_TRY(lmf_ckpt_read_opts(run_dir, &text));
    snprintf(what, sizeof what, "%s: the newest checkpoint's trainer_state.json", run_dir);
    lmf_status s = lmf_train_opts_from_json(text, what, o, saved);
    free(text);
    /* the layout, when this launch has the checkpoint's ranks (else it reshards) */
    lmf_ckpt_info ck;
    lmf_ckpt_index ix;
    memset(&ix, 0, sizeof ix);
    if (s == LMF_OK && saved->has_layout && lmf_ckpt_find_latest(run_dir, &ck) == LMF_OK &&
        lmf_ckpt_index_load(ck.dir, &ix) == LMF_OK) {
        int here = lmf_comm_launcher_size();
        saved->layout_fits = (here > 0 ? here : 1) == ix.world_size;
    }
    lmf_ckpt_index_free(&ix);
    /* token files inside the run directory are found in it, wherever it is now */
    char rel[4096];
    if (s == LMF_OK && saved->data_in_run_dir && o->data == saved->data) {
        snprintf(rel, sizeof rel, "%s", saved->data);
        if (lmf_path_join(saved->data, sizeof saved->data, run_dir, rel) != LMF_OK) return LMF_ERR_ARG;
    }
    if (s == LMF_OK && saved->val_data_in_run_dir && o->val_data == saved->val_data) {
        snprintf(rel, sizeof rel, "%s", saved->val_data);
        if (lmf_path_join(saved->val_data, sizeof saved->val_data, run_dir, rel) != LMF_OK)
            return LMF_ERR_ARG;
    }
    return s;
}

void lmf_train_opts_restore_layout(lmf_train_opts *o, const lmf_saved_opts *saved) {
    if (!saved->has_layout || !saved->layout_fits) return;
    o->tp = saved->tp, o->sequence_parallel = saved->sequence_parallel;
    o->pp = saved->pp, o->virtual_stages = saved->virtual_stages;
    o->schedule = saved->schedule;
    o->stage_layers = saved->stage_layers[0] ? saved->stage_layers : NULL;
}

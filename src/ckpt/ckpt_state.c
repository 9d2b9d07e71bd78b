/* trainer_state.json: formatting and strict parsing of the trainer's saved state and options. */
#include "ckpt/ckpt_state.h"

#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static json_t *opts_json(const lmf_train_opts *o) {
    json_t *j = json_object();
    if (!j) return NULL;
    int bad = 0;
#define SET(k, v) bad |= json_object_set_new(j, k, v)
    SET("data", o->data ? json_string(o->data) : json_null());
    SET("val_data", o->val_data ? json_string(o->val_data) : json_null());
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
#undef SET
    if (bad) {
        json_decref(j);
        return NULL;
    }
    return j;
}

char *lmf_ckpt_state_format(const lmf_ckpt_saved *s, const lmf_train_opts *o) {
    json_t *j = json_pack(
        "{s:s, s:i, s:i, s:i, s:i, s:I, s:i, s:i, s:i, s:{s:I, s:I, s:I, s:b},"
        " s:{s:i, s:I, s:i, s:i, s:I, s:f}, s:o?}",
        "format", LMF_CKPT_STATE_FORMAT, "version", LMF_CKPT_STATE_VERSION, "step", s->step,
        "world_size", s->world_size, "zero_stage", s->zero_stage, "tokens_per_step",
        (json_int_t)s->tokens_per_step, "seq", s->seq, "batch", s->batch, "grad_accum",
        s->grad_accum, "loader", "epoch", (json_int_t)s->loader.epoch, "position",
        (json_int_t)s->loader.position, "seed", (json_int_t)s->loader.seed, "shuffle",
        s->loader.shuffle, "faults", "bad_in_row", s->bad_in_row, "skipped_total",
        (json_int_t)s->skipped_total, "rollbacks", s->rollbacks, "stuck", s->stuck, "good_steps",
        (json_int_t)s->good_steps, "loss_ema", isfinite(s->loss_ema) ? s->loss_ema : 0.0,
        "opts", opts_json(o));
    char *txt = j ? json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
    json_decref(j);
    if (!txt) lmf_fail(LMF_ERR_NOMEM, "cannot format the trainer state");
    return txt;
}

static json_t *load(const char *text, size_t len, const char *what, lmf_status *s) {
    json_error_t e;
    json_t *j = json_loadb(text, len, JSON_REJECT_DUPLICATES, &e);
    if (!j) {
        *s = lmf_fail(LMF_ERR_FORMAT, "%s: not valid JSON: %s (line %d, column %d)", what, e.text,
                      e.line, e.column);
        return NULL;
    }
    const char *fmt = json_string_value(json_object_get(j, "format"));
    json_t *ver = json_object_get(j, "version");
    if (!json_is_object(j) || !fmt || strcmp(fmt, LMF_CKPT_STATE_FORMAT) != 0 ||
        !json_is_integer(ver) || json_integer_value(ver) != LMF_CKPT_STATE_VERSION) {
        json_decref(j);
        *s = lmf_fail(LMF_ERR_FORMAT, "%s: not an lmforge trainer state of version %d", what,
                      LMF_CKPT_STATE_VERSION);
        return NULL;
    }
    *s = LMF_OK;
    return j;
}

/* integer j[key] in [lo, hi] into *v */
static int get_int(json_t *j, const char *key, int64_t lo, int64_t hi, int64_t *v) {
    json_t *x = json_object_get(j, key);
    if (!json_is_integer(x) || json_integer_value(x) < lo || json_integer_value(x) > hi) return 0;
    *v = json_integer_value(x);
    return 1;
}

lmf_status lmf_ckpt_state_parse(const char *text, size_t len, const char *what, lmf_ckpt_saved *s) {
    memset(s, 0, sizeof *s);
    lmf_status st;
    json_t *j = load(text, len, what, &st);
    if (!j) return st;
    json_t *ld = json_object_get(j, "loader"), *f = json_object_get(j, "faults");
    json_t *shuffle = json_object_get(ld, "shuffle"), *ema = json_object_get(f, "loss_ema");
    int64_t v[16];
    int ok = get_int(j, "step", 0, INT_MAX, &v[0]) && get_int(j, "world_size", 1, INT_MAX, &v[1]) &&
             get_int(j, "zero_stage", 0, 3, &v[2]) && get_int(j, "batch", 1, INT_MAX, &v[3]) &&
             get_int(j, "grad_accum", 1, INT_MAX, &v[4]) && get_int(j, "seq", 1, INT_MAX, &v[5]) &&
             get_int(j, "tokens_per_step", 1, INT64_MAX, &v[6]) &&
             get_int(ld, "epoch", 0, INT64_MAX, &v[7]) &&
             get_int(ld, "position", 0, INT64_MAX, &v[8]) &&
             get_int(ld, "seed", INT64_MIN, INT64_MAX, &v[9]) && json_is_boolean(shuffle) &&
             get_int(f, "bad_in_row", 0, INT_MAX, &v[10]) &&
             get_int(f, "skipped_total", 0, INT64_MAX, &v[11]) &&
             get_int(f, "rollbacks", 0, INT_MAX, &v[12]) && get_int(f, "stuck", 0, 1, &v[13]) &&
             get_int(f, "good_steps", 0, INT64_MAX, &v[14]) && json_is_number(ema);
    if (ok) {
        s->step = (int)v[0];
        s->world_size = (int)v[1];
        s->zero_stage = (int)v[2];
        s->batch = (int)v[3];
        s->grad_accum = (int)v[4];
        s->seq = (int)v[5];
        s->tokens_per_step = v[6];
        s->loader.epoch = (uint64_t)v[7];
        s->loader.position = (uint64_t)v[8];
        s->loader.seed = (uint64_t)v[9];
        s->loader.shuffle = json_is_true(shuffle);
        s->bad_in_row = (int)v[10];
        s->skipped_total = v[11];
        s->rollbacks = (int)v[12];
        s->stuck = (int)v[13];
        s->good_steps = v[14];
        s->loss_ema = json_number_value(ema);
    }
    json_decref(j);
    if (!ok)
        return lmf_fail(LMF_ERR_FORMAT, "%s: a field is missing or out of range (step, world_size, "
                        "zero_stage, batch, grad_accum, seq, tokens_per_step, loader, faults)", what);
    return LMF_OK;
}

lmf_status lmf_ckpt_state_opts(const char *text, size_t len, const char *what, lmf_train_opts *o) {
    static char data[4096], val[4096];
    lmf_status st;
    json_t *j = load(text, len, what, &st);
    if (!j) return st;
    json_t *op = json_object_get(j, "opts");
    const char *sched = NULL;
    json_t *dj = NULL, *vj = NULL;
    double lr = o->lr, min_lr = o->min_lr, wd = o->weight_decay, b1 = o->beta1, b2 = o->beta2,
           eps = o->adam_eps, clip = o->grad_clip, spike = o->spike_factor;
    json_int_t seed = (json_int_t)o->seed, gb = o->global_batch;
    int shuffle = o->shuffle;
    json_error_t e;
    if (json_unpack_ex(op, &e, 0,
                       "{s?o, s?o, s?i, s?i, s?i, s?i, s?I, s?i, s?F, s?F, s?F, s?F, s?F, s?F, "
                       "s?F, s?s, s?i, s?I, s?b, s?i, s?i, s?i, s?i, s?i, s?F}",
                       "data", &dj, "val_data", &vj, "steps", &o->steps, "batch", &o->batch, "seq",
                       &o->seq, "grad_accum", &o->grad_accum, "global_batch", &gb, "zero_stage",
                       &o->zero_stage, "lr", &lr, "min_lr", &min_lr, "weight_decay", &wd,
                       "beta1", &b1, "beta2", &b2, "adam_eps", &eps, "grad_clip", &clip,
                       "lr_schedule", &sched, "warmup", &o->warmup, "seed", &seed, "shuffle",
                       &shuffle, "eval_every", &o->eval_every, "eval_batches", &o->eval_batches,
                       "save_every", &o->save_every, "keep_checkpoints", &o->keep_checkpoints,
                       "max_bad_steps", &o->max_bad_steps, "spike_factor", &spike) != 0) {
        json_decref(j);
        return lmf_fail(LMF_ERR_FORMAT, "%s: bad opts: %s", what, e.text);
    }
    if ((dj && !json_is_string(dj) && !json_is_null(dj)) ||
        (vj && !json_is_string(vj) && !json_is_null(vj))) {
        json_decref(j);
        return lmf_fail(LMF_ERR_FORMAT, "%s: bad opts: data and val_data must be paths or null",
                        what);
    }
    if (json_is_string(dj)) {
        snprintf(data, sizeof data, "%s", json_string_value(dj));
        o->data = data;
    }
    if (json_is_string(vj)) {
        snprintf(val, sizeof val, "%s", json_string_value(vj));
        o->val_data = val;
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
    json_decref(j);
    return LMF_OK;
}

/* The JSON documents of /api/: a run's status, its metrics since a step, its configuration. */
#include "serve/serve_internal.h"

#include <math.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

static json_t *jnum(double x) { return isfinite(x) ? json_real(x) : json_null(); }

static json_t *read_object(const char *dir, const char *rel);

/* trainer_state.json of the latest checkpoint (NULL if none) */
static json_t *latest_state(const char *dir, int latest_step) {
    if (latest_step < 0) return NULL;
    char rel[80];
    snprintf(rel, sizeof rel, "checkpoints/step_%08d/trainer_state.json", latest_step);
    return read_object(dir, rel);
}

static double get_num(json_t *o, const char *key) {
    json_t *v = json_object_get(o, key);
    return json_is_number(v) ? json_number_value(v) : NAN;
}

json_t *serve_api_status(serve_run *r, double now) {
    int ck_step;
    double ck_mtime;
    json_t *cks = serve_checkpoints(r->dir, &ck_step, &ck_mtime);
    json_t *state = latest_state(r->dir, ck_step);
    /* run.json says what the training in progress was set to do, from its start on; the
     * latest checkpoint's state is the fallback for a run from before it recorded that */
    json_t *plan = read_object(r->dir, "run.json"), *layout = json_object_get(plan, "layout");
    if (!json_is_integer(json_object_get(plan, "total_steps"))) layout = NULL;
    json_t *opts = json_object_get(state, "opts");
    double total = layout ? get_num(plan, "total_steps") : get_num(opts, "steps");
    double tokens_per_step = get_num(layout ? layout : state, "tokens_per_step");
    json_t *world = json_object_get(layout ? layout : state, "world_size");
    json_t *zero = json_object_get(layout ? layout : state, "zero_stage");
    json_t *tp = json_object_get(layout ? layout : state, "tp_size");
    int skipped = 0, rollbacks = 0, spikes = 0;
    for (size_t i = 0; i < r->n_evs; i++) {
        skipped += r->evs[i].kind == SERVE_EV_SKIPPED;
        rollbacks += r->evs[i].kind == SERVE_EV_ROLLBACK;
        spikes += r->evs[i].kind == SERVE_EV_SPIKE;
    }
    const serve_point *last = r->n_pts ? &r->pts[r->n_pts - 1] : NULL;
    int done = last ? last->step + 1 : 0;
    for (size_t i = 0; i < r->n_evs; i++) /* a skipped step is a step done too */
        if (r->evs[i].kind == SERVE_EV_SKIPPED && r->evs[i].step + 1 > done) done = r->evs[i].step + 1;
    /* time left: the steps to go at the last throughput */
    double eta = NAN;
    if (last && isfinite(total) && isfinite(tokens_per_step) && last->tokens_per_s > 0)
        eta = (total - done) * tokens_per_step / last->tokens_per_s;
    if (isfinite(eta) && eta < 0) eta = 0;
    json_t *o = json_object();
    json_object_set_new(o, "name", json_string(r->name));
    json_object_set_new(o, "dir", json_string(r->dir));
    json_object_set_new(o, "step", json_integer(done));
    json_object_set_new(o, "total_steps", isfinite(total) ? json_integer((json_int_t)total) : json_null());
    json_object_set_new(o, "eta_seconds", jnum(eta));
    json_object_set_new(o, "loss", last ? jnum(last->loss) : json_null());
    json_object_set_new(o, "val_loss", r->n_vals ? jnum(r->vals[r->n_vals - 1].val_loss) : json_null());
    json_object_set_new(o, "lr", last ? jnum(last->lr) : json_null());
    json_object_set_new(o, "grad_norm", last ? jnum(last->grad_norm) : json_null());
    json_object_set_new(o, "tokens_per_s", last ? jnum(last->tokens_per_s) : json_null());
    json_object_set_new(o, "mfu", last ? jnum(last->mfu) : json_null());
    json_object_set_new(o, "skipped_steps", json_integer(skipped));
    json_object_set_new(o, "rollbacks", json_integer(rollbacks));
    json_object_set_new(o, "loss_spikes", json_integer(spikes));
    json_object_set_new(o, "checkpoint_step", ck_step >= 0 ? json_integer(ck_step) : json_null());
    json_object_set_new(o, "checkpoint_age_seconds", ck_step >= 0 ? jnum(now - ck_mtime) : json_null());
    json_object_set_new(o, "checkpoints", json_integer((json_int_t)json_array_size(cks)));
    json_object_set_new(o, "world_size", json_is_integer(world) ? json_copy(world) : json_null());
    json_object_set_new(o, "zero_stage", json_is_integer(zero) ? json_copy(zero) : json_null());
    json_object_set_new(o, "tp_size", json_is_integer(tp) ? json_copy(tp) : json_null());
    json_object_set_new(o, "updated_age_seconds", r->mtime > 0 ? jnum(now - r->mtime) : json_null());
    json_decref(cks);
    json_decref(state);
    json_decref(plan);
    return o;
}

/* the metrics answer: records with step >= since and past the cursor's counts */
static json_t *metrics_doc(serve_run *r, long since, const serve_cursor *c) {
    json_t *rows = json_array(), *vals = json_array(), *evs = json_array();
    json_t *phases = json_array(), *memory = json_array(), *samples = json_array();
    for (size_t i = c->pts; i < r->n_pts; i++) {
        const serve_point *p = &r->pts[i];
        if (p->step < since) continue;
        json_array_append_new(rows, json_pack("[i, o, o, o, o, o]", p->step, jnum(p->loss),
                                              jnum(p->lr), jnum(p->grad_norm),
                                              jnum(p->tokens_per_s), jnum(p->mfu)));
    }
    for (size_t i = c->vals; i < r->n_vals; i++)
        if (r->vals[i].step >= since)
            json_array_append_new(vals, json_pack("[i, o]", r->vals[i].step, jnum(r->vals[i].val_loss)));
    for (size_t i = c->evs; i < r->n_evs; i++) {
        const serve_event *e = &r->evs[i];
        if (e->step < since) continue;
        json_t *o = NULL;
        if (e->kind == SERVE_EV_SKIPPED) o = json_pack("{s:i, s:s, s:s}", "step", e->step, "kind", "skipped", "why", e->why);
        else if (e->kind == SERVE_EV_ROLLBACK) o = json_pack("{s:i, s:s, s:i}", "step", e->step, "kind", "rollback", "to_step", e->to_step);
        else o = json_pack("{s:i, s:s, s:o, s:o}", "step", e->step, "kind", "spike", "loss", jnum(e->value), "running_mean", jnum(e->mean));
        json_array_append_new(evs, o);
    }
    for (size_t i = c->phases; i < json_array_size(r->phases); i++) {
        json_t *p = json_array_get(r->phases, i);
        if (json_integer_value(json_object_get(p, "step")) >= since) json_array_append(phases, p);
    }
    for (size_t i = c->memory; i < json_array_size(r->memory); i++) {
        json_t *m = json_array_get(r->memory, i);
        if (json_integer_value(json_array_get(m, 0)) >= since) json_array_append(memory, m);
    }
    for (size_t i = c->samples; i < json_array_size(r->samples); i++) {
        json_t *x = json_array_get(r->samples, i);
        if (json_integer_value(json_object_get(x, "step")) >= since) json_array_append(samples, x);
    }
    json_t *o = json_object();
    json_object_set_new(o, "run", json_string(r->name));
    json_object_set_new(o, "generation", json_integer((json_int_t)r->generation));
    json_object_set_new(o, "columns", json_pack("[s, s, s, s, s, s]", "step", "loss", "lr",
                                                "grad_norm", "tokens_per_s", "mfu"));
    json_object_set_new(o, "rows", rows);
    json_object_set_new(o, "val_columns", json_pack("[s, s]", "step", "val_loss"));
    json_object_set_new(o, "val", vals);
    json_object_set_new(o, "events", evs);
    json_object_set_new(o, "phases", phases);
    json_object_set_new(o, "memory_columns", json_pack("[s, s]", "step", "rss_bytes"));
    json_object_set_new(o, "memory", memory);
    json_object_set_new(o, "samples", samples);
    return o;
}

json_t *serve_api_metrics(serve_run *r, long since) {
    static const serve_cursor all = {0};
    return metrics_doc(r, since, &all);
}

json_t *serve_api_metrics_after(serve_run *r, serve_cursor *c) {
    serve_cursor now = {r->generation, r->n_pts, r->n_vals, r->n_evs,
                        json_array_size(r->phases), json_array_size(r->memory),
                        json_array_size(r->samples)};
    serve_cursor from = *c;
    if (from.generation != r->generation) from = (serve_cursor){0};
    else if (from.pts == now.pts && from.vals == now.vals && from.evs == now.evs &&
             from.phases == now.phases && from.memory == now.memory &&
             from.samples == now.samples)
        return NULL;
    *c = now;
    return metrics_doc(r, 0, &from);
}

/* a JSON object file inside the run (NULL if absent or not an object) */
static json_t *read_object(const char *dir, const char *rel) {
    char *txt = NULL;
    size_t len = 0;
    if (serve_read_in_run(dir, rel, 1u << 20, &txt, &len, NULL) != 0) return NULL;
    json_t *j = json_loadb(txt, len, 0, NULL);
    free(txt);
    if (j && !json_is_object(j)) {
        json_decref(j);
        j = NULL;
    }
    return j;
}

json_t *serve_api_config(const serve_run *r) {
    int ck_step;
    double ck_mtime;
    json_decref(serve_checkpoints(r->dir, &ck_step, &ck_mtime));
    json_t *state = latest_state(r->dir, ck_step);
    /* the model's shape: the latest checkpoint's, else the exported model's */
    char rel[80];
    snprintf(rel, sizeof rel, "checkpoints/step_%08d/config.json", ck_step);
    json_t *model = ck_step >= 0 ? read_object(r->dir, rel) : NULL;
    if (!model) model = read_object(r->dir, "config.json");
    /* before the first checkpoint: what run.json recorded at the start */
    json_t *plan = read_object(r->dir, "run.json");
    if (!model && json_is_object(json_object_get(plan, "model")))
        model = json_copy(json_object_get(plan, "model"));
    if (!state && json_is_object(json_object_get(plan, "layout"))) {
        state = json_copy(json_object_get(plan, "layout"));
        json_object_set(state, "opts", json_object_get(plan, "train"));
    }
    json_decref(plan);
    json_t *layout = json_object();
    static const char *const keys[] = {"world_size", "tp_size", "zero_stage", "batch", "seq",
                                       "grad_accum", "tokens_per_step"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        json_t *v = json_object_get(state, keys[i]);
        if (json_is_integer(v)) json_object_set(layout, keys[i], v);
    }
    json_t *train = json_object_get(state, "opts");
    json_t *o = json_object();
    json_object_set_new(o, "run", json_string(r->name));
    json_object_set_new(o, "checkpoint_step", ck_step >= 0 ? json_integer(ck_step) : json_null());
    json_object_set_new(o, "model", model ? model : json_object());
    json_object_set_new(o, "train", json_is_object(train) ? json_copy(train) : json_object());
    json_object_set_new(o, "layout", layout);
    json_decref(state);
    return o;
}

/* The trainer's whole model and checkpoints: its range of the whole model's vectors put
 * together over the tensor-parallel and pipeline groups, the model made whole for the export
 * and samples, saves, resumes at any layout, and rollbacks. */
#include <stdlib.h>
#include <string.h>

#include "lmforge/formats.h"
#include "train/train_internal.h"
#include "train/trainer_internal.h"

/* the whole model's layout, of which this rank holds a part (tensor or pipeline parallelism,
 * or both: the same unsplit layout) */
static const lmf_param_layout *whole_layout(const lmf_trainer *t) {
    return t->pp ? &t->pp_whole : lmf_tp_whole_layout(t->tp);
}

/* Collective over the pipeline group (and, with tensor parallelism, the tensor-parallel group
 * first): every stage's tensors of a vector (part, in this rank's layout) placed into whole
 * (the whole model's), block 0 from the first stage. Under tensor parallelism each stage's
 * group puts its slices together into the stage's whole tensors, then the stages are summed
 * (each whole tensor is non-zero on one stage only). */
static lmf_status pp_gather_whole(lmf_trainer *t, const float *part, float *whole) {
    const lmf_param_layout *wl = &t->pp_whole;
    memset(whole, 0, wl->total * sizeof(float));
    if (t->tp) LMF_TRY(lmf_tp_gather_range(t->tp, part, (lmf_range){0, wl->total}, whole));
    else lmf_layout_place(lmf_gpt_layout(t->model), wl, part, whole);
    if (t->pp_rank > 0) /* the last stage's copy of block 0 is the first stage's */
        memset(whole + wl->block_offset[0], 0,
               (wl->block_offset[1] - wl->block_offset[0]) * sizeof(float));
    return lmf_comm_allreduce_f32(t->pp_comm, whole, wl->total);
}

/* Collective over the pipeline group: the floats inside range of the whole vector, through
 * the whole vector put together over the stages. */
static lmf_status pp_gather_range(lmf_trainer *t, const float *part, lmf_range range,
                                  float *out) {
    float *whole = malloc(t->pp_whole.total * sizeof(float));
    if (!whole) return lmf_fail(LMF_ERR_NOMEM, "cannot allocate %.1f MB for the whole model",
                                (double)t->pp_whole.total * 4 / 1e6);
    lmf_status s = pp_gather_whole(t, part, whole);
    if (s == LMF_OK) memcpy(out, whole + range.begin, lmf_range_len(range) * sizeof(float));
    free(whole);
    return s;
}

/* Collective (tensor or pipeline parallelism, or both): the floats inside range (which may
 * differ between the ranks) of the whole model's vectors of the weights and, when m and v are
 * not NULL, the AdamW moments: for each in turn the data-parallel parts gathered, then the
 * group's slices put together (tensor parallelism alone: only the range's), or the stages
 * (with or without tensor parallelism: the whole vector, then the range taken from it), so one
 * whole vector's worth exists at a time. lmf_free_big them. */
static lmf_status gather_range(lmf_trainer *t, lmf_range range, float **params, float **m,
                               float **v) {
    size_t n = lmf_gpt_layout(t->model)->total, len = lmf_range_len(range);
    float *part = malloc(n * sizeof(float));
    float *out[3] = {NULL, NULL, NULL};
    int k = m ? 3 : 1;
    lmf_status s = part ? LMF_OK : lmf_fail(LMF_ERR_NOMEM, "cannot allocate the weights");
    for (int i = 0; i < k && s == LMF_OK; i++) {
        out[i] = lmf_calloc_big(len, sizeof(float));
        if (!out[i]) s = lmf_fail(LMF_ERR_NOMEM, "cannot allocate %.1f MB of the whole model",
                                  (double)len * 4 / 1e6);
        else if (i == 0) s = lmf_ddp_gather_params(t->ddp, part);
        else s = lmf_ddp_gather_owned(t->ddp, part, i == 1 ? lmf_optimizer_m(t->opt)
                                                             : lmf_optimizer_v(t->opt));
        if (s == LMF_OK)
            s = t->pp ? pp_gather_range(t, part, range, out[i])
                      : lmf_tp_gather_range(t->tp, part, range, out[i]);
    }
    free(part);
    if (s != LMF_OK) {
        for (int i = 0; i < 3; i++) lmf_free_big(out[i]);
        return s;
    }
    *params = out[0];
    if (m) *m = out[1], *v = out[2];
    return LMF_OK;
}

lmf_status lmf_trainer_materialize(lmf_trainer *t) {
    if (t->tp || t->pp) { /* the whole model in place of this rank's slices or stage */
        float *w;
        LMF_TRY(gather_range(t, (lmf_range){0, whole_layout(t)->total}, &w, NULL, NULL));
        lmf_gpt *whole;
        lmf_status s = lmf_gpt_create(&t->o.cfg, t->k, &whole);
        if (s != LMF_OK) {
            lmf_free_big(w);
            return s;
        }
        lmf_gpt_adopt_params(whole, w);
        lmf_pp_engine_free(t->pp); /* before the stage model it detaches from */
        t->pp = NULL;
        lmf_trainer_free_chunks(t);
        lmf_gpt_free(t->model);
        t->model = whole;
        t->chunks[0] = whole;
        lmf_tp_free(t->tp);
        t->tp = NULL;
        return LMF_OK;
    }
    if (lmf_gpt_params(t->model)) return LMF_OK;
    float *full = lmf_calloc_big(lmf_gpt_layout(t->model)->total, sizeof(float));
    if (!full) return lmf_fail(LMF_ERR_NOMEM, "cannot allocate the full weights");
    lmf_status s = lmf_ddp_gather_params(t->ddp, full);
    if (s != LMF_OK) {
        lmf_free_big(full);
        return s;
    }
    lmf_gpt_set_hooks(t->model, NULL);
    lmf_gpt_adopt_params(t->model, full);
    return LMF_OK;
}

lmf_status lmf_trainer_whole_model(lmf_trainer *t, lmf_gpt **out, int *made) {
    *out = NULL;
    *made = 0;
    if (!t->tp && !t->pp && lmf_gpt_params(t->model)) { /* every rank holds the whole weights */
        if (t->rank == 0) *out = t->model;
        return LMF_OK;
    }
    float *w = NULL;
    if (t->tp || t->pp) {
        LMF_TRY(gather_range(t, (lmf_range){0, whole_layout(t)->total}, &w, NULL, NULL));
    } else {
        w = lmf_calloc_big(lmf_gpt_layout(t->model)->total, sizeof(float));
        if (!w) return lmf_fail(LMF_ERR_NOMEM, "cannot allocate the whole weights");
        lmf_status s = lmf_ddp_gather_params(t->ddp, w);
        if (s != LMF_OK) {
            lmf_free_big(w);
            return s;
        }
    }
    if (t->rank != 0) {
        lmf_free_big(w);
        return LMF_OK;
    }
    lmf_status s = lmf_gpt_create(&t->o.cfg, t->k, out);
    if (s != LMF_OK) {
        lmf_free_big(w);
        return s;
    }
    lmf_gpt_adopt_params(*out, w);
    *made = 1;
    return LMF_OK;
}

/* ---- checkpoints of the trainer's state ---- */

lmf_status lmf_trainer_save(lmf_trainer *t) {
    const lmf_train_opts *o = &t->o;
    if (!t->ckw) {
        lmf_ckpt_faults f = {o->test.ckpt_write_delay_ms, o->test.ckpt_fail_rank == t->rank};
        LMF_TRY(lmf_ckpt_writer_create(t->comm, o->out_dir, o->keep_checkpoints, &f, &t->ckw));
    }
    lmf_ckpt_snapshot snap;
    memset(&snap, 0, sizeof snap);
    lmf_train_state *s = &snap.state;
    memcpy(s->run_id, t->run_id, sizeof s->run_id);
    s->step = t->step;
    s->world_size = t->world;
    s->zero_stage = o->zero_stage;
    s->batch = o->batch;
    s->grad_accum = t->accum;
    s->seq = o->seq;
    s->tokens_per_step = o->global_batch;
    lmf_loader_get_state(t->loader, &s->loader);
    s->faults = t->faults;
    char *opts = t->rank == 0 ? lmf_train_opts_to_json(o) : NULL;
    if (t->rank == 0 && !opts) return lmf_fail(LMF_ERR_NOMEM, "cannot format the run's options");
    snap.opts_json = opts;
    snap.cfg = &o->cfg;
    snap.layout = lmf_gpt_layout(t->model);
    snap.held = lmf_ddp_owned(t->ddp);
    snap.params = lmf_ddp_owned_params(t->ddp);
    snap.m = lmf_optimizer_m(t->opt);
    snap.v = lmf_optimizer_v(t->opt);
    float *w = NULL, *m = NULL, *v = NULL;
    lmf_status st = LMF_OK;
    if (t->tp || t->pp) { /* whole tensors: each rank writes its range of the whole vectors */
        snap.layout = whole_layout(t);
        snap.held = lmf_partition_range(snap.layout->total, t->world, t->rank);
        st = gather_range(t, snap.held, &w, &m, &v);
        snap.params = w;
        snap.m = m;
        snap.v = v;
    }
    if (st == LMF_OK) st = lmf_ckpt_save(t->ckw, &snap);
    lmf_free_big(w);
    lmf_free_big(m);
    lmf_free_big(v);
    free(opts);
    return st;
}

lmf_status lmf_trainer_wait_save(lmf_trainer *t) { return t->ckw ? lmf_ckpt_wait(t->ckw) : LMF_OK; }

/* the run must read the same rows per step as the checkpointed one */
static lmf_status check_compatible(const lmf_trainer *t, const lmf_train_state *sv,
                                   const char *what) {
    if (sv->seq == t->o.seq && sv->tokens_per_step == t->o.global_batch) return LMF_OK;
    return lmf_fail(LMF_ERR_ARG,
                    "%s: the checkpoint was trained with %lld tokens per step in sequences of %d; "
                    "this run has %lld and %d, which would change the data order: keep "
                    "--global-batch %lld and --seq %d (at another number of ranks choose --batch "
                    "so that batch x seq x ranks divides the global batch)",
                    what, (long long)sv->tokens_per_step, sv->seq, (long long)t->o.global_batch,
                    t->o.seq, (long long)sv->tokens_per_step, sv->seq);
}

/* a resume continues the run that wrote the checkpoint; a rollback stays in its own run */
static lmf_status check_same_run(const lmf_trainer *t, const lmf_train_state *sv,
                                 const char *what, int rollback) {
    if (strcmp(sv->run_id, t->run_id) == 0 || (!rollback && (!sv->run_id[0] || !t->run_id[0])))
        return LMF_OK;
    return lmf_fail(LMF_ERR_ARG, "%s belongs to run %s, not to this run %s: %s", what,
                    sv->run_id[0] ? sv->run_id : "(no id)", t->run_id[0] ? t->run_id : "(no id)",
                    rollback ? "no rollback into another run's checkpoint; train into a run "
                               "directory of its own" : "resume the run directory it came from");
}

/* Collective (tensor or pipeline parallelism, or both): checkpoint ck's whole vectors read on
 * every rank, this rank's slices of its stage's tensors (lmf_layout_slice between its layout and
 * the whole one) loaded: the weights into the engine, the moments of its range into the
 * optimizer. */
static lmf_status restore_slices(lmf_trainer *t, const lmf_ckpt_info *ck, lmf_train_state *sv) {
    const lmf_param_layout *wl = whole_layout(t), *l = lmf_gpt_layout(t->model);
    lmf_range all = {0, wl->total}, own = lmf_ddp_owned(t->ddp);
    float *w[3], *part = malloc(l->total * sizeof(float));
    lmf_status s = part ? LMF_OK : lmf_fail(LMF_ERR_NOMEM, "cannot allocate the weights");
    for (int i = 0; i < 3; i++) {
        w[i] = malloc(wl->total * sizeof(float));
        if (!w[i] && s == LMF_OK)
            s = lmf_fail(LMF_ERR_NOMEM, "cannot allocate %.1f MB for the whole model",
                         (double)wl->total * 4 / 1e6);
    }
    if (s == LMF_OK) s = lmf_ckpt_restore(t->comm, ck, wl, w[0], all, w[1], w[2], sv);
    if (s == LMF_OK) {
        lmf_layout_slice(l, wl, w[0], part);
        lmf_ddp_load_params(t->ddp, part);
        float *dst[2] = {lmf_optimizer_m(t->opt), lmf_optimizer_v(t->opt)};
        for (int i = 0; i < 2; i++) {
            lmf_layout_slice(l, wl, w[1 + i], part);
            memcpy(dst[i], part + own.begin, lmf_range_len(own) * sizeof(float));
        }
    }
    for (int i = 0; i < 3; i++) free(w[i]);
    free(part);
    return s;
}

lmf_status lmf_train_restore(lmf_trainer *t, const lmf_ckpt_info *ck, int rollback) {
    const lmf_param_layout *l = lmf_gpt_layout(t->model);
    float *full = lmf_gpt_params(t->model), *tmp = NULL;
    lmf_train_state sv;
    lmf_status s;
    if (t->tp || t->pp) {
        s = restore_slices(t, ck, &sv);
    } else {
        if (!full) { /* ZeRO-3 holds only its part of the weights */
            full = tmp = malloc(l->total * sizeof(float));
            if (!tmp) return lmf_fail(LMF_ERR_NOMEM, "cannot allocate the weights");
        }
        s = lmf_ckpt_restore(t->comm, ck, l, full, lmf_ddp_owned(t->ddp),
                             lmf_optimizer_m(t->opt), lmf_optimizer_v(t->opt), &sv);
        if (s == LMF_OK) lmf_ddp_load_params(t->ddp, full);
    }
    if (s == LMF_OK) s = check_same_run(t, &sv, ck->dir, rollback);
    if (s == LMF_OK) s = check_compatible(t, &sv, ck->dir);
    free(tmp);
    /* a rollback keeps the data position (past the bad batches) and the run's fault counters */
    if (s == LMF_OK && !rollback) s = lmf_loader_set_state(t->loader, &sv.loader);
    if (s != LMF_OK) return s;
    t->step = sv.step;
    if (!rollback) t->faults = sv.faults;
    if (!t->run_id[0]) { /* a resume without an id takes the checkpoint's (or a new one) */
        if (sv.run_id[0]) memcpy(t->run_id, sv.run_id, sizeof t->run_id);
        else lmf_run_id_new(t->run_id); /* the same on every rank: broadcast below */
        if (t->world > 1) LMF_TRY(lmf_comm_broadcast(t->comm, t->run_id, sizeof t->run_id, 0));
    }
    return LMF_OK;
}

lmf_status lmf_train_rollback(lmf_trainer *t, int *to_step) {
    LMF_TRY(lmf_trainer_wait_save(t));
    lmf_ckpt_info ck;
    lmf_status s = lmf_ckpt_agree(t->comm, lmf_ckpt_find_latest(t->o.out_dir, &ck));
    if (s == LMF_OK) s = lmf_train_restore(t, &ck, 1);
    if (s != LMF_OK) return lmf_fail_context(LMF_ERR_NUMERIC, "cannot roll back: ");
    *to_step = t->step;
    return LMF_OK;
}

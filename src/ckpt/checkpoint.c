/* Training checkpoints at the trainer level: finding the newest, saving a snapshot in the
 * background, resuming at any world size and ZeRO stage, rolling back. */
#include "ckpt/checkpoint.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "lmforge/fsutil.h"
#include "ckpt/ckpt_io.h"
#include "ckpt/ckpt_state.h"
#include "train/trainer_internal.h"

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

lmf_status lmf_ckpt_read_opts(const char *run_dir, lmf_train_opts *o) {
    lmf_ckpt_info ck;
    LMF_TRY(lmf_ckpt_find_latest(run_dir, &ck));
    lmf_ckpt_index ix;
    LMF_TRY(lmf_ckpt_index_load(ck.dir, &ix));
    char *buf = NULL, what[4300];
    size_t len = 0;
    lmf_status s = lmf_ckpt_read_meta(ck.dir, &ix, "trainer_state.json", &buf, &len);
    lmf_ckpt_index_free(&ix);
    snprintf(what, sizeof what, "%s/trainer_state.json", ck.dir);
    if (s == LMF_OK) s = lmf_ckpt_state_opts(buf, len, what, o);
    free(buf);
    return s;
}

/* ---- saving ---- */

static void saved_of(const lmf_trainer *t, lmf_ckpt_saved *s) {
    memset(s, 0, sizeof *s);
    s->step = t->step;
    s->world_size = t->world;
    s->zero_stage = t->o.zero_stage;
    s->batch = t->o.batch;
    s->grad_accum = t->accum;
    s->seq = t->o.seq;
    s->tokens_per_step = t->o.global_batch;
    lmf_loader_get_state(t->loader, &s->loader);
    s->bad_in_row = t->bad_in_row;
    s->skipped_total = t->skipped_total;
    s->rollbacks = t->rollbacks;
    s->stuck = t->stuck;
    s->good_steps = t->good_steps;
    s->loss_ema = t->loss_ema;
}

lmf_status lmf_ckpt_save(lmf_trainer *t) {
    if (!t->ckw)
        LMF_TRY(lmf_ckpt_writer_create(t->comm, t->o.out_dir, t->o.keep_checkpoints, &t->ckw));
    LMF_TRY(lmf_ckpt_writer_wait(t->ckw)); /* the previous write, before its buffer is reused */
    const lmf_param_layout *l = lmf_gpt_layout(t->model);
    uint64_t total = l->total, b = 0, e = 0;
    lmf_status s = LMF_OK;
    float *buf = lmf_ckpt_writer_buffer(t->ckw, total, &b, &e);
    if (!buf) s = LMF_ERR_NOMEM;
    if (s == LMF_OK && e > b) {
        /* every rank writes the range it owns, straight from its own weights and optimizer
         * state: no gather, even for ZeRO-3's sharded weights */
        size_t n = e - b;
        float *m, *v;
        lmf_ddp_opt_state(t->ddp, &m, &v);
        lmf_range own = lmf_ddp_owned(t->ddp);
        LMF_ASSERT(own.begin <= b && e <= own.end);
        const float *params = lmf_ddp_owned_params(t->ddp);
        memcpy(buf, params + (b - own.begin), n * sizeof(float));
        memcpy(buf + n, m + (b - own.begin), n * sizeof(float));
        memcpy(buf + 2 * n, v + (b - own.begin), n * sizeof(float));
    }
    char *state = NULL;
    if (s == LMF_OK && t->rank == 0) {
        lmf_ckpt_saved sv;
        saved_of(t, &sv);
        state = lmf_ckpt_state_format(&sv, &t->o);
        if (!state) s = LMF_ERR_NOMEM;
    }
    lmf_ckpt_desc d = {t->step, t->o.zero_stage, total, &t->o.cfg, l, state};
    s = lmf_ckpt_writer_start(t->ckw, s, &d);
    free(state);
    return s;
}

lmf_status lmf_ckpt_poll(lmf_trainer *t) { return t->ckw ? lmf_ckpt_writer_poll(t->ckw) : LMF_OK; }
lmf_status lmf_ckpt_wait(lmf_trainer *t) { return t->ckw ? lmf_ckpt_writer_wait(t->ckw) : LMF_OK; }

void lmf_ckpt_trainer_free(lmf_trainer *t) {
    lmf_ckpt_writer_free(t->ckw);
    t->ckw = NULL;
}

/* ---- loading ---- */

/* the run must read the same rows per step as the checkpointed one */
static lmf_status check_compatible(const lmf_trainer *t, const lmf_ckpt_saved *sv,
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

/* broadcast floats from rank 0 in pieces of at most 1 GiB */
static lmf_status broadcast_floats(lmf_comm *c, float *x, size_t n) {
    const size_t piece = (size_t)1 << 28;
    for (size_t a = 0; a < n; a += piece)
        LMF_TRY(lmf_comm_broadcast(c, x + a, (n - a < piece ? n - a : piece) * sizeof(float), 0));
    return LMF_OK;
}

/* Load ck into t. rollback: keep the data position and the run's fault counters. */
static lmf_status restore(lmf_trainer *t, const lmf_ckpt_info *ck, int rollback) {
    const lmf_param_layout *l = lmf_gpt_layout(t->model);
    char what[4300];
    snprintf(what, sizeof what, "%s/trainer_state.json", ck->dir);
    lmf_ckpt_index ix;
    lmf_ckpt_saved sv;
    char *state = NULL;
    size_t len = 0;
    lmf_status s = lmf_ckpt_index_load(ck->dir, &ix);
    if (s == LMF_OK) s = lmf_ckpt_check_layout(ck->dir, &ix, l);
    if (s == LMF_OK) s = lmf_ckpt_read_meta(ck->dir, &ix, "trainer_state.json", &state, &len);
    if (s == LMF_OK) s = lmf_ckpt_state_parse(state, len, what, &sv);
    free(state);
    if (s == LMF_OK && sv.step != ix.step)
        s = lmf_fail(LMF_ERR_FORMAT, "%s: step %d, but index.json says %lld", what, sv.step,
                     (long long)ix.step);
    if (s == LMF_OK) s = check_compatible(t, &sv, ck->dir);
    /* the weights: rank 0 reads (and so verifies) every shard, then broadcasts */
    float *full = lmf_gpt_params(t->model), *tmp = NULL;
    if (!full) {
        full = tmp = malloc(l->total * sizeof(float));
        if (!tmp && s == LMF_OK) s = lmf_fail(LMF_ERR_NOMEM, "cannot allocate the weights");
    }
    if (s == LMF_OK && t->rank == 0) {
        lmf_ckpt_want w[LMF_CKPT_N_ARRAYS] = {{0, l->total, full}, {0, 0, NULL}, {0, 0, NULL}};
        s = lmf_ckpt_read_ranges(ck->dir, &ix, w);
    }
    s = lmf_ckpt_agree(t->comm, s);
    if (s == LMF_OK && t->world > 1) s = broadcast_floats(t->comm, full, l->total);
    if (s == LMF_OK) {
        /* AdamW m, v: each rank only its own range, from the shards that hold it */
        lmf_ddp_load_state(t->ddp, full, NULL, NULL);
        float *m, *v;
        lmf_ddp_opt_state(t->ddp, &m, &v);
        lmf_range own = lmf_ddp_owned(t->ddp);
        lmf_ckpt_want w[LMF_CKPT_N_ARRAYS] = {
            {0, 0, NULL}, {own.begin, own.end, m}, {own.begin, own.end, v}};
        s = lmf_ckpt_read_ranges(ck->dir, &ix, w);
    }
    free(tmp);
    lmf_ckpt_index_free(&ix);
    s = lmf_ckpt_agree(t->comm, s);
    if (s == LMF_OK && !rollback) s = lmf_loader_set_state(t->loader, &sv.loader);
    if (s != LMF_OK) return s;
    t->step = sv.step;
    if (!rollback) {
        t->bad_in_row = sv.bad_in_row;
        t->skipped_total = sv.skipped_total;
        t->rollbacks = sv.rollbacks;
        t->stuck = sv.stuck;
        t->good_steps = sv.good_steps;
        t->loss_ema = sv.loss_ema;
    }
    return LMF_OK;
}

lmf_status lmf_ckpt_load_state(lmf_trainer *t, const lmf_ckpt_info *ck) {
    return restore(t, ck, 0);
}

lmf_status lmf_ckpt_rollback(lmf_trainer *t, int *to_step) {
    LMF_TRY(lmf_ckpt_wait(t));
    lmf_ckpt_info ck;
    lmf_status s = lmf_ckpt_agree(t->comm, lmf_ckpt_find_latest(t->o.out_dir, &ck));
    if (s == LMF_OK) s = restore(t, &ck, 1);
    if (s != LMF_OK) return lmf_fail_context(LMF_ERR_NUMERIC, "cannot roll back: ");
    *to_step = t->step;
    return LMF_OK;
}

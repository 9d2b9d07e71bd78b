/* Trainer: optimizer steps with gradient accumulation, clipping, evaluation, state. */
#include "lmforge/train.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lmforge/convert.h"
#include "lmforge/data.h"
#include "lmforge/kernels.h"
#include "lmforge/model.h"
#include "lmforge/perf.h"
#include "ckpt/checkpoint.h"
#include "ckpt/ckpt_fault.h"
#include "train/trainer_internal.h"

void lmf_train_opts_default(lmf_train_opts *o) {
    memset(o, 0, sizeof *o);
    lmf_config_preset("mini", &o->cfg);
    o->out_dir = "runs/default";
    o->steps = 600;
    o->batch = 8;
    o->seq = 128;
    o->grad_accum = 1;
    o->lr = 1e-3f;
    o->min_lr = 1e-4f;
    o->weight_decay = 0.1f;
    o->beta1 = 0.9f;
    o->beta2 = 0.95f;
    o->adam_eps = 1e-8f;
    o->grad_clip = 1.0f;
    o->lr_schedule = LMF_LR_COSINE;
    o->warmup = 30;
    o->seed = 1337;
    o->shuffle = 1;
    o->eval_every = 100;
    o->eval_batches = 8;
    o->save_every = 0;
    o->keep_checkpoints = 3;
    o->threads = 0;
    o->kernels = "fast";
    o->zero_stage = 0;
    o->global_batch = 0;
    o->comm = "auto";
    o->comm_timeout = 300.0;
    o->max_bad_steps = 3;
    o->spike_factor = 2.0f;
}

static lmf_status check_opts(const lmf_train_opts *o) {
    if (o->batch < 1 || o->seq < 1 || o->grad_accum < 1 || o->steps < 0)
        return lmf_fail(LMF_ERR_ARG, "batch, seq and grad-accum must be at least 1, steps >= 0");
    if (!o->data) return lmf_fail(LMF_ERR_ARG, "no training data given (use --data FILE.bin)");
    if (o->seq > o->cfg.n_positions)
        return lmf_fail(LMF_ERR_ARG, "--seq %d exceeds the model's n_positions %d", o->seq,
                        o->cfg.n_positions);
    if (!lmf_kernels_by_name(o->kernels))
        return lmf_fail(LMF_ERR_ARG, "unknown kernels '%s' (use ref or fast)", o->kernels);
    return LMF_OK;
}

/* Shard ids must fit the model's vocabulary. */
static lmf_status check_vocab(lmf_tokens *s, const char *path, const lmf_gpt_config *c) {
    uint32_t mx = lmf_tokens_max_token(s);
    if ((int64_t)mx >= c->vocab_size)
        return lmf_fail(LMF_ERR_ARG,
                        "%s holds token id %u but the model's vocab_size is %d; use a model with "
                        "a larger vocabulary (--vocab-size) or data made with its tokenizer",
                        path, mx, c->vocab_size);
    return LMF_OK;
}

lmf_status lmf_trainer_create(const lmf_train_opts *o, lmf_trainer **out) {
    *out = NULL;
    LMF_TRY(check_opts(o));
    lmf_trainer *t = calloc(1, sizeof *t);
    if (!t) return lmf_fail(LMF_ERR_NOMEM, "cannot allocate the trainer");
    t->o = *o;
    lmf_status s = lmf_trainer_setup(t);
    if (s != LMF_OK) {
        lmf_trainer_free(t);
        return s;
    }
    *out = t;
    return LMF_OK;
}

/* Micro-batches per rank per step, from --global-batch or --grad-accum. */
static lmf_status derive_accum(lmf_trainer *t) {
    lmf_train_opts *o = &t->o;
    int64_t per = (int64_t)o->batch * o->seq * t->world;
    if (o->global_batch <= 0) {
        t->accum = o->grad_accum;
        o->global_batch = per * o->grad_accum;
        return LMF_OK;
    }
    if (o->global_batch % per != 0)
        return lmf_fail(LMF_ERR_ARG,
                        "--global-batch %lld tokens is not a multiple of batch x seq x ranks = "
                        "%d x %d x %d = %lld; choose a multiple of %lld",
                        (long long)o->global_batch, o->batch, o->seq, t->world, (long long)per,
                        (long long)per);
    t->accum = (int)(o->global_batch / per);
    o->grad_accum = t->accum;
    return LMF_OK;
}

lmf_status lmf_trainer_setup(lmf_trainer *t) {
    lmf_train_opts *o = &t->o;
    const lmf_kernels *k = lmf_kernels_by_name(o->kernels);
    t->k = k;
    if (o->zero_stage < 0 || o->zero_stage > 3)
        return lmf_fail(LMF_ERR_ARG, "--zero must be 0, 1, 2 or 3, got %d", o->zero_stage);
    LMF_TRY(lmf_comm_create(o->comm ? o->comm : "auto", &t->comm));
    lmf_comm_set_timeout(t->comm, o->comm_timeout);
    t->rank = lmf_comm_rank(t->comm);
    t->world = lmf_comm_size(t->comm);
    LMF_TRY(derive_accum(t));
    LMF_TRY(lmf_tokens_open(o->data, &t->train));
    if (o->val_data) LMF_TRY(lmf_tokens_open(o->val_data, &t->val));

    lmf_ckpt_info ck;
    memset(&ck, 0, sizeof ck);
    if (o->resume_dir) { /* the weights follow in lmf_ckpt_load_state */
        LMF_TRY(lmf_ckpt_find_latest(o->resume_dir, &ck));
        LMF_TRY(lmf_ckpt_model_config(&ck, &o->cfg));
        LMF_TRY(lmf_gpt_create(&o->cfg, k, &t->model));
    } else if (o->init_dir) {
        LMF_TRY(lmf_model_load_any(o->init_dir, k, &t->model));
        o->cfg = *lmf_gpt_cfg(t->model);
    } else {
        LMF_TRY(lmf_gpt_create(&o->cfg, k, &t->model));
        lmf_gpt_init_weights(t->model, o->seed);
    }
    if (o->seq > o->cfg.n_positions)
        return lmf_fail(LMF_ERR_ARG, "--seq %d exceeds the model's n_positions %d", o->seq,
                        o->cfg.n_positions);
    LMF_TRY(check_vocab(t->train, o->data, &o->cfg));
    if (t->val) LMF_TRY(check_vocab(t->val, o->val_data, &o->cfg));
    lmf_gpt_set_recompute(t->model, (lmf_recompute)o->recompute);
    LMF_TRY(lmf_gpt_reserve(t->model, o->batch, o->seq, 2));

    size_t BT = (size_t)o->batch * o->seq;
    t->inputs = malloc(BT * sizeof(int32_t));
    t->targets = malloc(BT * sizeof(int32_t));
    if (!t->inputs || !t->targets) return lmf_fail(LMF_ERR_NOMEM, "cannot allocate batch buffers");
    LMF_TRY(lmf_loader_create(t->train, o->batch, o->seq, o->shuffle, o->seed, &t->loader));
    if (t->val) {
        LMF_TRY(lmf_loader_create(t->val, o->batch, o->seq, 0, 0, &t->val_loader));
        uint64_t avail = lmf_loader_num_windows(t->val_loader) / (uint64_t)o->batch;
        if (avail == 0)
            return lmf_fail(LMF_ERR_ARG, "%s is too small for one %d x %d validation batch",
                            o->val_data, o->batch, o->seq);
        t->eval_batches = o->eval_batches < 1 ? 1 : o->eval_batches;
        if ((uint64_t)t->eval_batches > avail) t->eval_batches = (int)avail;
    }
    t->sched.kind = o->lr_schedule;
    t->sched.lr = o->lr;
    t->sched.min_lr = o->min_lr;
    t->sched.warmup = o->warmup;
    t->sched.total = o->steps;
    t->flops_per_token = lmf_config_train_flops_per_token(&o->cfg, o->seq);

    lmf_ddp_config dc;
    memset(&dc, 0, sizeof dc);
    dc.zero_stage = o->zero_stage;
    LMF_TRY(lmf_ddp_create(t->comm, lmf_gpt_layout(t->model), k, &dc, lmf_gpt_params(t->model),
                           &t->ddp));
    lmf_gpt_hooks h;
    lmf_ddp_hooks(t->ddp, &h);
    lmf_gpt_set_hooks(t->model, &h);
    if (o->resume_dir) LMF_TRY(lmf_ckpt_load_state(t, &ck));
    if (o->zero_stage == 3) lmf_gpt_drop_params(t->model);
    return lmf_fault_parse_inject(getenv("LMF_INJECT_NAN_STEPS"), &t->inject_nan, &t->n_inject);
}

void lmf_trainer_free(lmf_trainer *t) {
    if (!t) return;
    lmf_ckpt_trainer_free(t);
    free(t->inject_nan);
    lmf_loader_free(t->loader);
    lmf_loader_free(t->val_loader);
    lmf_tokens_close(t->train);
    lmf_tokens_close(t->val);
    lmf_gpt_free(t->model);
    lmf_ddp_free(t->ddp);
    lmf_comm_free(t->comm);
    free(t->inputs);
    free(t->targets);
    free(t);
}

int lmf_trainer_next_step(const lmf_trainer *t) { return t->step; }
const lmf_train_opts *lmf_trainer_opts(const lmf_trainer *t) { return &t->o; }
int64_t lmf_trainer_num_params(const lmf_trainer *t) { return lmf_config_num_params(&t->o.cfg); }
double lmf_trainer_flops_per_token(const lmf_trainer *t) { return t->flops_per_token; }
struct lmf_gpt *lmf_trainer_model(lmf_trainer *t) { return t->model; }
int lmf_trainer_rank(const lmf_trainer *t) { return t->rank; }
int lmf_trainer_world(const lmf_trainer *t) { return t->world; }
int lmf_trainer_grad_accum(const lmf_trainer *t) { return t->accum; }

void lmf_trainer_memory(const lmf_trainer *t, lmf_train_memory *m) {
    lmf_ddp_memory dm;
    lmf_ddp_memory_used(t->ddp, &dm);
    m->weights = dm.weights;
    m->grads = dm.grads;
    m->optim = dm.optim;
    m->buffers = dm.buffers;
    m->activations = lmf_gpt_activation_bytes(t->model);
}

int lmf_trainer_any(lmf_trainer *t, int flag) {
    int64_t v = flag != 0;
    if (t->world > 1 && lmf_comm_allreduce_i64(t->comm, &v, 1, LMF_COMM_MAX) != LMF_OK) return 1;
    return v != 0;
}

void lmf_trainer_abort(lmf_trainer *t, const char *msg) {
    if (t->world > 1) lmf_comm_abort(t->comm, 1, msg);
}

lmf_status lmf_trainer_materialize(lmf_trainer *t) {
    if (lmf_gpt_params(t->model)) return LMF_OK;
    float *full = malloc(lmf_gpt_layout(t->model)->total * sizeof(float));
    if (!full) return lmf_fail(LMF_ERR_NOMEM, "cannot allocate the full weights");
    lmf_status s = lmf_ddp_gather_params(t->ddp, full);
    if (s != LMF_OK) {
        free(full);
        return s;
    }
    lmf_gpt_set_hooks(t->model, NULL);
    lmf_gpt_adopt_params(t->model, full);
    return LMF_OK;
}

/* test hook: 1 when step is listed in LMF_INJECT_NAN_STEPS and not used yet (then it is) */
static int take_injection(lmf_trainer *t, int step) {
    for (int i = 0; i < t->n_inject; i++)
        if (t->inject_nan[i] == step) {
            t->inject_nan[i] = -1;
            return 1;
        }
    return 0;
}

#define SPIKE_WARMUP 10  /* good steps before loss spikes are looked for */
#define SPIKE_EMA 0.05   /* weight of the newest loss in the running mean (about 20 steps) */

/* After a step (st filled, t->step advanced): count NaN/Inf steps, roll back after
 * max_bad_steps of them in a row, watch the loss for spikes. */
static lmf_status after_step(lmf_trainer *t, int bad, lmf_step_stats *st) {
    const lmf_train_opts *o = &t->o;
    st->skipped = bad;
    st->rolled_back_to = -1;
    st->spike = 0;
    st->loss_mean = t->good_steps >= SPIKE_WARMUP ? (float)t->loss_ema : 0.0f;
    if (!bad) {
        t->bad_in_row = 0;
        t->stuck = 0;
        st->bad_in_row = 0;
        if (o->spike_factor > 0 && t->good_steps >= SPIKE_WARMUP &&
            st->loss > o->spike_factor * t->loss_ema)
            st->spike = 1;
        t->loss_ema = t->good_steps == 0 ? st->loss
                                         : (1 - SPIKE_EMA) * t->loss_ema + SPIKE_EMA * st->loss;
        t->good_steps++;
        return LMF_OK;
    }
    st->bad_in_row = ++t->bad_in_row;
    t->skipped_total++;
    if (o->max_bad_steps == 0)
        return lmf_fail(LMF_ERR_NUMERIC, "step %d: loss %g, gradient norm %g: not finite "
                        "(--max-bad-steps 0 stops at the first such step)", st->step + 1,
                        (double)st->loss, (double)st->grad_norm);
    if (t->bad_in_row < o->max_bad_steps) return LMF_OK;
    if (t->stuck)
        return lmf_fail(LMF_ERR_NUMERIC, "step %d: %d steps in a row with a NaN/Inf loss or "
                        "gradient norm again, right after rolling back: the fault does not "
                        "come from the data; lower --lr or check the model", st->step + 1,
                        t->bad_in_row);
    int to = -1;
    lmf_status s = lmf_ckpt_rollback(t, &to);
    if (s != LMF_OK)
        return lmf_fail_context(s, "step %d: %d steps in a row with a NaN/Inf loss or gradient "
                                "norm; ", st->step + 1, t->bad_in_row);
    t->bad_in_row = 0;
    t->stuck = 1;
    t->rollbacks++;
    st->rolled_back_to = to;
    return LMF_OK;
}

lmf_status lmf_trainer_step(lmf_trainer *t, lmf_step_stats *out) {
    const lmf_train_opts *o = &t->o;
    double t0 = lmf_now_s();
    double loss_sum = 0.0;
    lmf_comm_set_context(t->comm, "step %d", t->step + 1);
    /* the hook poisons the gradient as a NaN in the forward pass would */
    int inject = take_injection(t, t->step);
    float dloss = inject ? NAN : 1.0f / (float)t->accum;
    for (int a = 0; a < t->accum; a++) {
        float loss;
        LMF_TRY(lmf_ddp_begin_micro(t->ddp, a, t->accum));
        /* this rank's micro-batches of the global batch: rank, rank + world, ... */
        lmf_loader_fill(t->loader, (uint64_t)t->rank + (uint64_t)t->world * (uint64_t)a,
                        t->inputs, t->targets);
        LMF_TRY(lmf_gpt_forward(t->model, t->inputs, t->targets, o->batch, o->seq, 1, dloss,
                                &loss));
        lmf_gpt_backward(t->model);
        loss_sum += loss;
    }
    lmf_loader_advance(t->loader, (uint64_t)t->accum * (uint64_t)t->world);
    LMF_TRY(lmf_comm_allreduce_f64(t->comm, &loss_sum, 1, LMF_COMM_SUM));
    float loss = inject ? NAN : (float)(loss_sum / ((double)t->accum * t->world));
    float lr = lmf_lr_at(&t->sched, t->step);
    lmf_adamw_hp hp = {o->beta1, o->beta2, o->adam_eps, o->weight_decay};
    float norm = 0.0f;
    /* A NaN/Inf anywhere in the forward pass makes the loss (logsumexp - logit) and the
     * softmax gradient non-finite; the engine then skips the update on every rank. */
    lmf_status s = lmf_ddp_step(t->ddp, &hp, lr, t->step + 1, o->grad_clip, &norm);
    if (s != LMF_OK && s != LMF_ERR_NUMERIC) return s;
    int bad = s == LMF_ERR_NUMERIC || !isfinite(loss);
    double dt = lmf_now_s() - t0;
    lmf_step_stats st;
    memset(&st, 0, sizeof st);
    st.step = t->step;
    st.loss = loss;
    st.lr = lr;
    st.grad_norm = norm;
    st.seconds = dt;
    st.tokens = (int64_t)o->batch * o->seq * t->accum * t->world;
    st.tokens_per_s = (double)st.tokens / dt;
    st.flops_per_s = st.tokens_per_s * t->flops_per_token;
    t->step++;
    s = after_step(t, bad, &st);
    if (s == LMF_OK) s = lmf_ckpt_poll(t); /* commit a background checkpoint when done */
    if (out) *out = st;
    return s;
}

lmf_status lmf_trainer_eval(lmf_trainer *t, float *val_loss) {
    if (!t->val_loader) {
        *val_loss = NAN;
        return LMF_OK;
    }
    double sum = 0.0;
    for (int b = 0; b < t->eval_batches; b++) {
        float loss;
        lmf_loader_fill_eval(t->val_loader, (uint64_t)b, t->inputs, t->targets);
        LMF_TRY(lmf_gpt_forward(t->model, t->inputs, t->targets, t->o.batch, t->o.seq, 0, 1.0f,
                                &loss));
        sum += loss;
    }
    *val_loss = (float)(sum / t->eval_batches);
    return LMF_OK;
}

lmf_status lmf_trainer_save(lmf_trainer *t) { return lmf_ckpt_save(t); }

lmf_status lmf_trainer_wait_save(lmf_trainer *t) { return lmf_ckpt_wait(t); }

lmf_status lmf_trainer_export(lmf_trainer *t) { return lmf_gpt_save(t->model, t->o.out_dir); }

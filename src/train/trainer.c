/* The trainer: setup (data, model, engines, optimizer, resume) and optimizer steps with gradient
 * accumulation, numeric-fault handling and evaluation; its checkpoints: trainer_ckpt.c. */
#include "lmforge/train.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lmforge/ckpt.h"
#include "lmforge/comm.h"
#include "lmforge/data.h"
#include "lmforge/ddp.h"
#include "lmforge/formats.h"
#include "lmforge/kernels.h"
#include "lmforge/model.h"
#include "lmforge/perf.h"
#include "lmforge/threads.h"
#include "lmforge/tp.h"
#include "train/train_internal.h"
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
    o->recompute = LMF_RECOMPUTE_NONE;
    o->doc_mask_eot = -1;
    o->global_batch = 0;
    o->comm = "auto";
    o->comm_timeout = 300.0;
    o->max_bad_steps = 3;
    o->spike_factor = 2.0f;
    o->test.ckpt_fail_rank = -1;
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
    if (o->zero_stage < 0 || o->zero_stage > 3)
        return lmf_fail(LMF_ERR_ARG, "--zero must be 0, 1, 2 or 3, got %d", o->zero_stage);
    if (o->tp < 0) return lmf_fail(LMF_ERR_ARG, "--tp must be at least 1, got %d", o->tp);
    if (o->sequence_parallel && o->tp < 2)
        return lmf_fail(LMF_ERR_ARG, "--sp splits over the tensor-parallel group: give --tp 2 "
                        "or more with it");
    if (o->pp < 0) return lmf_fail(LMF_ERR_ARG, "--pp must be at least 1, got %d", o->pp);
    if (o->pp <= 1 && (o->virtual_stages > 1 || o->stage_layers))
        return lmf_fail(LMF_ERR_ARG, "--virtual-stages and --stage-layers split the model over "
                        "pipeline stages: give --pp 2 or more with them");
    if (o->virtual_stages > 1 && o->schedule != LMF_PP_INTERLEAVED)
        return lmf_fail(LMF_ERR_ARG, "--virtual-stages %d runs the interleaved schedule: give "
                        "--schedule interleaved with it (the %s schedule runs one model chunk "
                        "per stage)", o->virtual_stages, lmf_pp_schedule_name(o->schedule));
    return LMF_OK;
}

/* Datasets up to this many tokens are scanned for ids outside the vocabulary before training;
 * larger ones are checked row by row as the loader reads them. */
#define VOCAB_SCAN_MAX_TOKENS (1ull << 26)

/* Token ids must fit the model's vocabulary. */
static lmf_status check_vocab(lmf_dataset *d, const char *spec, const lmf_gpt_config *c) {
    uint64_t n = 0;
    for (int i = 0; i < lmf_dataset_num_sources(d); i++) n += lmf_dataset_source_tokens(d, i);
    if (n > VOCAB_SCAN_MAX_TOKENS) return LMF_OK;
    uint32_t mx = 0;
    LMF_TRY(lmf_dataset_max_token(d, &mx));
    if ((int64_t)mx >= c->vocab_size)
        return lmf_fail(LMF_ERR_ARG,
                        "%s holds token id %u but the model's vocab_size is %d; use a model with "
                        "a larger vocabulary (--vocab-size) or data made with its tokenizer",
                        spec, mx, c->vocab_size);
    return LMF_OK;
}

/* Micro-batches per rank per step, from --global-batch or --grad-accum. */
static lmf_status derive_accum(lmf_trainer *t) {
    lmf_train_opts *o = &t->o;
    int64_t per = (int64_t)o->batch * o->seq * t->dp_size;
    if (o->global_batch <= 0) {
        t->accum = o->grad_accum;
        o->global_batch = per * o->grad_accum;
        return LMF_OK;
    }
    if (o->global_batch % per != 0)
        return lmf_fail(LMF_ERR_ARG,
                        "--global-batch %lld tokens is not a multiple of batch x seq x "
                        "data-parallel ranks = %d x %d x %d = %lld; choose a multiple of %lld",
                        (long long)o->global_batch, o->batch, o->seq, t->dp_size, (long long)per,
                        (long long)per);
    t->accum = (int)(o->global_batch / per);
    o->grad_accum = t->accum;
    return LMF_OK;
}

/* The model: from the checkpoint being resumed (its weights come with the state), from
 * init_dir, or initialised. */
/* this rank's model: its tensor-parallel slice of its pipeline stage's layers */
static lmf_status create_part(lmf_trainer *t) {
    lmf_train_opts *o = &t->o;
    lmf_tp_config tp = {t->tp_size, t->tp_rank, o->sequence_parallel};
    t->n_chunks = 1;
    if (t->pp_size == 1) {
        t->layer0 = 0;
        t->layers = o->cfg.n_layer;
        LMF_TRY(lmf_gpt_create_tp(&o->cfg, t->k, &tp, &t->model));
        t->chunks[0] = t->model;
        return LMF_OK;
    }
    int V = lmf_train_virtual_stages(o), n = t->pp_size * V;
    int *layers = malloc((size_t)n * sizeof *layers);
    t->stage_l0 = malloc((size_t)(n + 1) * sizeof *t->stage_l0);
    if (!layers || !t->stage_l0) {
        free(layers);
        return lmf_fail(LMF_ERR_NOMEM, "cannot allocate the stage table");
    }
    lmf_status s = lmf_train_stage_layers(o, &o->cfg, layers);
    t->stage_l0[0] = 0;
    for (int v = 0; s == LMF_OK && v < n; v++) t->stage_l0[v + 1] = t->stage_l0[v] + layers[v];
    free(layers);
    LMF_TRY(s);
    int l0[LMF_LAYOUT_MAX_RANGES], len[LMF_LAYOUT_MAX_RANGES];
    t->layers = 0;
    for (int c = 0; c < V; c++) { /* chunk c: virtual stage c * P + stage */
        int v = c * t->pp_size + t->pp_rank;
        l0[c] = t->stage_l0[v];
        len[c] = t->stage_l0[v + 1] - l0[c];
        t->layers += len[c];
    }
    t->layer0 = l0[0];
    t->n_chunks = V;
    LMF_TRY(lmf_layout_build(&o->cfg, &t->pp_whole));
    LMF_TRY(lmf_gpt_create_chunks(&o->cfg, t->k, &tp, V, l0, len, t->chunks));
    t->model = t->chunks[0];
    return LMF_OK;
}

static lmf_status make_model(lmf_trainer *t, lmf_ckpt_info *ck) {
    lmf_train_opts *o = &t->o;
    if (o->resume_dir) {
        LMF_TRY(lmf_ckpt_find_latest(o->resume_dir, ck));
        LMF_TRY(lmf_ckpt_model_config(ck, &o->cfg));
        LMF_TRY(lmf_train_check_memory(o, &o->cfg, t->k, t->world));
        return create_part(t);
    }
    if (o->init_dir) { /* the shape comes with the weights, checked before they are read */
        LMF_TRY(lmf_model_config_any(o->init_dir, &o->cfg));
        LMF_TRY(lmf_train_check_memory(o, &o->cfg, t->k, t->world));
        LMF_TRY(lmf_model_load_any(o->init_dir, t->k, &t->model));
        o->cfg = *lmf_gpt_cfg(t->model);
        if (t->tp_size > 1 || t->pp_size > 1) { /* this rank's part of the whole model */
            lmf_gpt *whole = t->model;
            t->model = NULL;
            lmf_status s = create_part(t);
            if (s == LMF_OK)
                lmf_layout_slice(lmf_gpt_layout(t->model), lmf_gpt_layout(whole),
                                 lmf_gpt_params(whole), lmf_gpt_params(t->model));
            lmf_gpt_free(whole);
            LMF_TRY(s);
        }
        return LMF_OK;
    }
    LMF_TRY(lmf_train_check_memory(o, &o->cfg, t->k, t->world));
    LMF_TRY(create_part(t));
    lmf_gpt_init_weights(t->model, o->seed);
    return LMF_OK;
}

/* The groups: tensor-parallel ranks are neighbours in the world (rank = dp_rank * tp + tp_rank),
 * so on a cluster a group stays inside one node, as Megatron-LM lays them out. */
static lmf_status layout_ranks(lmf_trainer *t) {
    const lmf_train_opts *o = &t->o;
    t->tp_size = o->tp > 1 ? o->tp : 1;
    t->pp_size = o->pp > 1 ? o->pp : 1;
    if (t->world % t->tp_size != 0)
        return lmf_fail(LMF_ERR_ARG, "%d ranks cannot be split into tensor-parallel groups of "
                        "--tp %d: start a multiple of %d ranks", t->world, t->tp_size,
                        t->tp_size);
    if (t->world % (t->tp_size * t->pp_size) != 0)
        return lmf_fail(LMF_ERR_ARG, "%d ranks cannot be split into --pp %d pipeline stages of "
                        "--tp %d ranks: start a multiple of %d ranks", t->world, t->pp_size,
                        t->tp_size, t->pp_size * t->tp_size);
    t->dp_size = t->world / (t->tp_size * t->pp_size);
    t->tp_rank = t->rank % t->tp_size;
    t->dp_rank = t->rank / t->tp_size % t->dp_size;
    t->pp_rank = t->rank / (t->tp_size * t->dp_size);
    return LMF_OK;
}

/* Collective: the groups' communicators. */
static lmf_status make_groups(lmf_trainer *t) {
    if (t->pp_size > 1) /* the ranks with the same place in every stage */
        LMF_TRY(lmf_comm_split(t->comm, t->dp_rank * t->tp_size + t->tp_rank, t->pp_rank,
                               "pipeline group", &t->pp_comm));
    if (t->tp_size == 1 && t->pp_size == 1) {
        t->dp_comm = t->comm;
        return LMF_OK;
    }
    if (t->tp_size > 1)
        LMF_TRY(lmf_comm_split(t->comm, t->pp_rank * t->dp_size + t->dp_rank, t->tp_rank,
                               "tensor-parallel group", &t->tp_comm));
    return lmf_comm_split(t->comm, t->pp_rank * t->tp_size + t->tp_rank, t->dp_rank,
                          "data-parallel group", &t->dp_comm);
}

/* the context of failure messages, on every communicator */
static void set_context(lmf_trainer *t, const char *text) {
    lmf_comm_set_context(t->comm, "%s", text);
    if (t->tp_comm) lmf_comm_set_context(t->tp_comm, "%s", text);
    if (t->pp_comm) lmf_comm_set_context(t->pp_comm, "%s", text);
    if (t->dp_comm && t->dp_comm != t->comm) lmf_comm_set_context(t->dp_comm, "%s", text);
}

/* pipeline: the data-parallel engine's micro-step before each of the stage's backwards */
static lmf_status pp_before_backward(void *ctx, int chunk, int index, int n) {
    (void)chunk;
    return lmf_ddp_begin_micro(((lmf_trainer *)ctx)->ddp, index, n);
}

/* The engine over the model, the optimizer over the engine's range. */
static lmf_status make_engine(lmf_trainer *t) {
    const lmf_train_opts *o = &t->o;
    const lmf_param_layout *l = lmf_gpt_layout(t->model);
    lmf_ddp_config dc;
    memset(&dc, 0, sizeof dc);
    dc.zero_stage = o->zero_stage;
    dc.tp_comm = t->tp_comm;
    dc.pp_comm = t->pp_comm;
    LMF_TRY(lmf_ddp_create(t->dp_comm, l, &dc, lmf_gpt_params(t->model), &t->ddp));
    lmf_gpt_hooks h;
    memset(&h, 0, sizeof h);
    lmf_ddp_hooks(t->ddp, &h);
    if (t->tp_size > 1) LMF_TRY(lmf_tp_create(t->tp_comm, &o->cfg, l, &t->tp));
    if (t->pp_size > 1) { /* every rank of the job gets here: a failure is shared */
        lmf_pp_shape sh = {o->schedule, t->pp_size, t->accum, t->n_chunks};
        LMF_TRY(lmf_comm_agree(t->comm, lmf_pp_engine_create(t->pp_comm, &sh, t->chunks, o->batch,
                                                             o->seq, LMF_RESERVE_TRAIN_HOOKED,
                                                             &t->pp)));
        lmf_pp_engine_set_backward_hook(t->pp, pp_before_backward, t);
    }
    for (int c = 0; c < t->n_chunks; c++) { /* each chunk's own interposed copy */
        lmf_gpt_hooks hc = h;
        if (t->pp) lmf_pp_engine_wrap_hooks(t->pp, c, &hc, o->zero_stage >= 2);
        if (t->tp) lmf_tp_hooks(t->tp, &hc);
        lmf_gpt_set_hooks(t->chunks[c], &hc);
    }
    lmf_adamw_hp hp = {o->beta1, o->beta2, o->adam_eps, o->weight_decay};
    return lmf_ddp_optimizer_create(t->ddp, t->k, &hp, o->grad_clip, &t->opt);
}

/* the run's identity: given, new, or (a resume without one) the checkpoint's; rank 0 decides
 * and every rank learns its decision, a refusal included */
static lmf_status agree_run_id(lmf_trainer *t) {
    const lmf_train_opts *o = &t->o;
    char id[LMF_RUN_ID_LEN + 2] = ""; /* the id, then 1 when rank 0 refused the one given */
    if (t->rank == 0) {
        int given = o->run_id && *o->run_id;
        if (given && lmf_run_id_valid(o->run_id)) snprintf(id, LMF_RUN_ID_LEN + 1, "%s", o->run_id);
        else if (given) id[LMF_RUN_ID_LEN + 1] = 1;
        else if (!o->resume_dir) lmf_run_id_new(id);
    }
    if (t->world > 1) LMF_TRY(lmf_comm_broadcast(t->comm, id, sizeof id, 0));
    if (id[LMF_RUN_ID_LEN + 1])
        return lmf_fail(LMF_ERR_ARG, "the run id given is not %d lower-case hex digits",
                        LMF_RUN_ID_LEN);
    memcpy(t->run_id, id, sizeof t->run_id);
    return LMF_OK;
}

/* The part of the set-up that involves no other rank: a failure here is shared with every
 * rank (lmf_comm_agree) before any collective, so no rank waits for one that gave up. */
static lmf_status setup_local(lmf_trainer *t, lmf_ckpt_info *ck) {
    lmf_train_opts *o = &t->o;
    LMF_TRY(layout_ranks(t));
    LMF_TRY(derive_accum(t));
    LMF_TRY(lmf_dataset_open(o->data, &t->train));
    if (o->val_data) LMF_TRY(lmf_dataset_open(o->val_data, &t->val));
    LMF_TRY(make_model(t, ck));
    if (t->n_chunks == 0) { /* a whole model read from --init */
        t->n_chunks = 1;
        t->chunks[0] = t->model;
    }
    if (o->seq > o->cfg.n_positions)
        return lmf_fail(LMF_ERR_ARG, "--seq %d exceeds the model's n_positions %d", o->seq,
                        o->cfg.n_positions);
    LMF_TRY(check_vocab(t->train, o->data, &o->cfg));
    if (t->val) LMF_TRY(check_vocab(t->val, o->val_data, &o->cfg));
    for (int c = 0; c < t->n_chunks; c++) {
        lmf_gpt_set_recompute(t->chunks[c], o->recompute);
        LMF_TRY(lmf_gpt_set_doc_mask(t->chunks[c], o->doc_mask_eot));
    }
    if (t->pp_size == 1) /* else the pipeline engine reserves a slot per micro-batch in flight */
        LMF_TRY(lmf_gpt_reserve(t->model, o->batch, o->seq, LMF_RESERVE_TRAIN_HOOKED));

    /* the pipeline takes every micro-batch of a step at once */
    size_t BT = (size_t)o->batch * o->seq * (t->pp_size > 1 ? (size_t)t->accum : 1);
    t->inputs = malloc(BT * sizeof(int32_t));
    t->targets = malloc(BT * sizeof(int32_t));
    if (!t->inputs || !t->targets) return lmf_fail(LMF_ERR_NOMEM, "cannot allocate batch buffers");
    LMF_TRY(lmf_loader_create(t->train, o->batch, o->seq, o->shuffle, o->seed, &t->loader));
    lmf_loader_set_vocab(t->loader, o->cfg.vocab_size);
    if (t->val) {
        LMF_TRY(lmf_loader_create(t->val, o->batch, o->seq, 0, 0, &t->val_loader));
        lmf_loader_set_vocab(t->val_loader, o->cfg.vocab_size);
        uint64_t avail = lmf_loader_num_windows(t->val_loader) / (uint64_t)o->batch;
        if (avail == 0)
            return lmf_fail(LMF_ERR_ARG, "%s is too small for one %d x %d validation batch",
                            o->val_data, o->batch, o->seq);
        t->eval_batches = o->eval_batches < 1 ? 1 : o->eval_batches;
        if ((uint64_t)t->eval_batches > avail) t->eval_batches = (int)avail;
        if (t->pp_size > 1) { /* the pipeline takes every validation batch at once */
            size_t n = (size_t)t->eval_batches * o->batch * o->seq;
            t->val_inputs = malloc(n * sizeof(int32_t));
            t->val_targets = malloc(n * sizeof(int32_t));
            if (!t->val_inputs || !t->val_targets)
                return lmf_fail(LMF_ERR_NOMEM, "cannot allocate the validation batches (%d of "
                                "%d x %d)", t->eval_batches, o->batch, o->seq);
        }
    }
    t->sched.kind = o->lr_schedule;
    t->sched.lr = o->lr;
    t->sched.min_lr = o->min_lr;
    t->sched.warmup = o->warmup;
    t->sched.total = o->steps;
    t->flops_per_token = lmf_config_train_flops_per_token(&o->cfg, o->seq);
    return LMF_OK;
}

/* Collective: every rank learns what the first rank of each pipeline stage holds (the stages
 * differ: the embeddings, the classifier, the layers' share, the activation slots) */
static lmf_status share_stage_memory(lmf_trainer *t) {
    enum { F = 5 };
    size_t n = (size_t)t->pp_size * F;
    double *v = calloc(n, sizeof *v);
    t->stage_mem = calloc((size_t)t->pp_size, sizeof *t->stage_mem);
    if (!v || !t->stage_mem) {
        free(v);
        return lmf_fail(LMF_ERR_NOMEM, "cannot allocate the stages' memory table");
    }
    if (t->dp_rank == 0 && t->tp_rank == 0) {
        lmf_train_memory m;
        lmf_trainer_memory(t, &m);
        double *d = v + (size_t)t->pp_rank * F;
        d[0] = (double)m.weights, d[1] = (double)m.grads, d[2] = (double)m.optim;
        d[3] = (double)m.activations, d[4] = (double)m.buffers;
    }
    lmf_status s = lmf_comm_allreduce_f64(t->comm, v, n, LMF_COMM_SUM);
    for (int p = 0; s == LMF_OK && p < t->pp_size; p++) {
        const double *d = v + (size_t)p * F;
        t->stage_mem[p] = (lmf_train_memory){(size_t)d[0], (size_t)d[1], (size_t)d[2],
                                             (size_t)d[3], (size_t)d[4]};
    }
    free(v);
    return s;
}

int lmf_train_set_threads(const lmf_train_opts *o) {
    return lmf_threads_set(o->threads > 0 ? o->threads
                                          : lmf_threads_default(lmf_comm_launcher_local_size()));
}

static lmf_status setup(lmf_trainer *t) {
    lmf_train_opts *o = &t->o;
    lmf_train_set_threads(o);
    t->k = lmf_kernels_by_name(o->kernels);
    LMF_TRY(lmf_comm_create(o->comm ? o->comm : "auto", &t->comm));
    lmf_comm_set_timeout(t->comm, o->comm_timeout);
    lmf_comm_set_context(t->comm, "start-up");
    t->rank = lmf_comm_rank(t->comm);
    t->world = lmf_comm_size(t->comm);
    lmf_ckpt_info ck;
    memset(&ck, 0, sizeof ck);
    LMF_TRY(lmf_comm_agree(t->comm, setup_local(t, &ck)));
    LMF_TRY(lmf_train_agree_options(t->comm, o));
    LMF_TRY(agree_run_id(t));
    LMF_TRY(make_groups(t));
    set_context(t, "start-up");
    LMF_TRY(make_engine(t));
    if (o->resume_dir) LMF_TRY(lmf_train_restore(t, &ck, 0));
    if (o->zero_stage == 3) lmf_gpt_drop_params(t->model);
    if (t->pp_size > 1) LMF_TRY(share_stage_memory(t));
    /* MFU against the peak of every rank's threads: each rank's cached or measured peak,
     * summed over the ranks */
    lmf_peak_get(lmf_threads_get(), 0, &t->peak);
    double total = t->peak.gflops * 1e9;
    if (t->world > 1) LMF_TRY(lmf_comm_allreduce_f64(t->comm, &total, 1, LMF_COMM_SUM));
    t->peak_flops = total;
    return LMF_OK;
}

lmf_status lmf_trainer_create(const lmf_train_opts *o, lmf_trainer **out) {
    *out = NULL;
    LMF_TRY(check_opts(o));
    lmf_trainer *t = calloc(1, sizeof *t);
    if (!t) return lmf_fail(LMF_ERR_NOMEM, "cannot allocate the trainer");
    t->o = *o;
    lmf_status s = LMF_OK;
    if (o->test.n_nan_steps > 0) { /* a copy the trainer marks as it uses it */
        size_t n = (size_t)o->test.n_nan_steps;
        t->inject_nan = malloc(n * sizeof *t->inject_nan);
        if (t->inject_nan) memcpy(t->inject_nan, o->test.nan_steps, n * sizeof *t->inject_nan);
        else s = lmf_fail(LMF_ERR_NOMEM, "cannot allocate the test faults");
    }
    t->o.test.nan_steps = t->inject_nan;
    if (s == LMF_OK) s = setup(t);
    if (s != LMF_OK) {
        lmf_trainer_free(t);
        return s;
    }
    *out = t;
    return LMF_OK;
}

void lmf_trainer_free(lmf_trainer *t) {
    if (!t) return;
    free(t->stage_mem);
    lmf_ckpt_writer_free(t->ckw);
    free(t->inject_nan);
    lmf_loader_free(t->loader);
    lmf_loader_free(t->val_loader);
    lmf_dataset_close(t->train);
    lmf_dataset_close(t->val);
    lmf_pp_engine_free(t->pp);
    lmf_trainer_free_chunks(t);
    lmf_gpt_free(t->model);
    lmf_optimizer_free(t->opt);
    lmf_ddp_free(t->ddp);
    lmf_tp_free(t->tp);
    lmf_layout_free(&t->pp_whole);
    free(t->stage_l0);
    lmf_comm_free(t->pp_comm);
    if (t->dp_comm && t->dp_comm != t->comm) lmf_comm_free(t->dp_comm);
    lmf_comm_free(t->tp_comm);
    lmf_comm_free(t->comm);
    free(t->inputs);
    free(t->targets);
    free(t->val_inputs);
    free(t->val_targets);
    free(t);
}

int lmf_trainer_next_step(const lmf_trainer *t) { return t->step; }
const lmf_train_opts *lmf_trainer_opts(const lmf_trainer *t) { return &t->o; }
int64_t lmf_trainer_num_params(const lmf_trainer *t) { return lmf_config_num_params(&t->o.cfg); }
double lmf_trainer_flops_per_token(const lmf_trainer *t) { return t->flops_per_token; }
double lmf_trainer_peak_flops(const lmf_trainer *t) { return t->peak_flops; }
void lmf_trainer_peak(const lmf_trainer *t, lmf_peak *p) { *p = t->peak; }
struct lmf_gpt *lmf_trainer_model(lmf_trainer *t) { return t->model; }
int lmf_trainer_rank(const lmf_trainer *t) { return t->rank; }
int lmf_trainer_world(const lmf_trainer *t) { return t->world; }
void lmf_trainer_ranks(const lmf_trainer *t, lmf_rank_layout *out) {
    out->tp = t->tp_size;
    out->tp_rank = t->tp_rank;
    out->dp = t->dp_size;
    out->dp_rank = t->dp_rank;
    out->pp = t->pp_size;
    out->pp_rank = t->pp_rank;
    out->layer0 = t->layer0;
    out->layers = t->layers;
}
int lmf_trainer_virtual_stages(const lmf_trainer *t) { return t->n_chunks > 1 ? t->n_chunks : 1; }
void lmf_trainer_stage_layers(const lmf_trainer *t, int stage, int chunk, int *layer0,
                              int *layers) {
    int v = chunk * t->pp_size + stage; /* the virtual stage */
    *layer0 = t->stage_l0 ? t->stage_l0[v] : 0;
    *layers = t->stage_l0 ? t->stage_l0[v + 1] - *layer0 : t->o.cfg.n_layer;
}

void lmf_trainer_free_chunks(lmf_trainer *t) {
    for (int c = t->n_chunks - 1; c >= 1; c--) {
        lmf_gpt_free(t->chunks[c]);
        t->chunks[c] = NULL;
    }
    t->n_chunks = t->model ? 1 : 0;
    t->chunks[0] = t->model;
}
const char *lmf_trainer_run_id(const lmf_trainer *t) { return t->run_id; }
int lmf_trainer_grad_accum(const lmf_trainer *t) { return t->accum; }
const lmf_dataset *lmf_trainer_data(const lmf_trainer *t) { return t->train; }
void lmf_trainer_loader_state(const lmf_trainer *t, lmf_loader_state *st) {
    lmf_loader_get_state(t->loader, st);
}

void lmf_trainer_memory(const lmf_trainer *t, lmf_train_memory *m) {
    lmf_ddp_memory dm;
    lmf_ddp_memory_used(t->ddp, &dm);
    m->weights = dm.weights;
    m->grads = dm.grads;
    m->optim = lmf_optimizer_bytes(t->opt);
    m->buffers = dm.buffers;
    m->activations = 0;
    for (int c = 0; c < t->n_chunks; c++) m->activations += lmf_gpt_activation_bytes(t->chunks[c]);
}

void lmf_trainer_stage_memory(const lmf_trainer *t, int stage, lmf_train_memory *m) {
    if (t->stage_mem && stage >= 0 && stage < t->pp_size) *m = t->stage_mem[stage];
    else lmf_trainer_memory(t, m);
}

void lmf_trainer_ckpt_stats(const lmf_trainer *t, lmf_ckpt_write_stats *st) {
    if (t->ckw) lmf_ckpt_writer_stats(t->ckw, st);
    else memset(st, 0, sizeof *st);
}

int lmf_trainer_any(lmf_trainer *t, int flag) {
    int64_t v = flag;
    if (t->world > 1 && lmf_comm_allreduce_i64(t->comm, &v, 1, LMF_COMM_MAX) != LMF_OK)
        return flag ? flag : 1;
    return (int)v;
}

void lmf_trainer_set_stop_check(lmf_trainer *t, int (*check)(void *ctx), void *ctx) {
    t->stop_check = check;
    t->stop_ctx = ctx;
}

int lmf_trainer_stop_value(const lmf_trainer *t) { return t->stop_value; }

void lmf_trainer_abort(lmf_trainer *t, const char *msg) {
    if (t->world > 1) lmf_comm_abort(t->comm, 1, msg);
}

/* test: 1 when step is one of the NaN steps asked for and not used yet (then it is) */
static int take_injection(lmf_trainer *t, int step) {
    for (int i = 0; i < t->o.test.n_nan_steps; i++)
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
    lmf_fault_counters *f = &t->faults;
    st->skipped = bad;
    st->rolled_back_to = -1;
    st->spike = 0;
    st->loss_mean = f->good_steps >= SPIKE_WARMUP ? (float)f->loss_ema : 0.0f;
    if (!bad) {
        f->bad_in_row = 0;
        f->stuck = 0;
        st->bad_in_row = 0;
        if (o->spike_factor > 0 && f->good_steps >= SPIKE_WARMUP &&
            st->loss > o->spike_factor * f->loss_ema)
            st->spike = 1;
        f->loss_ema = f->good_steps == 0 ? st->loss
                                         : (1 - SPIKE_EMA) * f->loss_ema + SPIKE_EMA * st->loss;
        f->good_steps++;
        return LMF_OK;
    }
    st->bad_in_row = ++f->bad_in_row;
    f->skipped_total++;
    if (o->max_bad_steps == 0)
        return lmf_fail(LMF_ERR_NUMERIC, "step %d: loss %g, gradient norm %g: not finite "
                        "(--max-bad-steps 0 stops at the first such step)", st->step + 1,
                        (double)st->loss, (double)st->grad_norm);
    if (f->bad_in_row < o->max_bad_steps) return LMF_OK;
    if (f->stuck)
        return lmf_fail(LMF_ERR_NUMERIC, "step %d: %d steps in a row with a NaN/Inf loss or "
                        "gradient norm again, right after rolling back: the fault does not "
                        "come from the data; lower --lr or check the model", st->step + 1,
                        f->bad_in_row);
    int to = -1;
    lmf_status s = lmf_train_rollback(t, &to);
    if (s != LMF_OK)
        return lmf_fail_context(s, "step %d: %d steps in a row with a NaN/Inf loss or gradient "
                                "norm; ", st->step + 1, f->bad_in_row);
    f->bad_in_row = 0;
    f->stuck = 1;
    f->rollbacks++;
    st->rolled_back_to = to;
    return LMF_OK;
}

lmf_status lmf_trainer_step(lmf_trainer *t, lmf_step_stats *out) {
    const lmf_train_opts *o = &t->o;
    double t0 = lmf_now_s();
    double loss_sum = 0.0;
    lmf_tp_stats tp0 = {0, 0};
    if (t->tp) lmf_tp_stats_get(t->tp, &tp0);
    lmf_ddp_stats d0; /* the engine's blocked time before the step */
    lmf_ddp_stats_get(t->ddp, &d0);
    char ctx[32];
    snprintf(ctx, sizeof ctx, "step %d", t->step + 1);
    set_context(t, ctx);
    /* a test's NaN poisons the gradient as a NaN in the forward pass would */
    int inject = take_injection(t, t->step);
    float dloss = inject ? NAN : 1.0f / (float)t->accum;
    double bubble = 0.0;
    if (t->pp) { /* every micro-batch of the step through the pipeline's schedule */
        size_t BT = (size_t)o->batch * o->seq;
        for (int a = 0; a < t->accum; a++)
            LMF_TRY(lmf_loader_fill(t->loader,
                                    (uint64_t)t->dp_rank + (uint64_t)t->dp_size * (uint64_t)a,
                                    t->inputs + (size_t)a * BT, t->targets + (size_t)a * BT));
        float loss;
        lmf_pp_step_stats ps;
        LMF_TRY(lmf_pp_engine_step(t->pp, t->inputs, t->targets, dloss, &loss, &ps));
        loss_sum = (double)loss * t->accum; /* 0 but on the last stage */
        bubble = ps.bubble;
    }
    for (int a = 0; a < t->accum && !t->pp; a++) {
        float loss;
        /* a stop asked for during a long step ends it here, on every rank at the same
         * micro-step; the state stays that of the last completed step */
        int stop = a > 0 && t->stop_check ? lmf_trainer_any(t, t->stop_check(t->stop_ctx)) : 0;
        if (stop) {
            t->stop_value = stop;
            LMF_TRY(lmf_ddp_abandon_step(t->ddp));
            return lmf_fail(LMF_ERR_INTERRUPTED, "step %d stopped after %d of %d micro-steps",
                            t->step + 1, a, t->accum);
        }
        LMF_TRY(lmf_ddp_begin_micro(t->ddp, a, t->accum));
        /* this replica's micro-batches of the global batch: dp_rank, dp_rank + dp_size, ...
         * (the ranks of a tensor-parallel group read the same ones) */
        LMF_TRY(lmf_loader_fill(t->loader,
                                (uint64_t)t->dp_rank + (uint64_t)t->dp_size * (uint64_t)a,
                                t->inputs, t->targets));
        LMF_TRY(lmf_gpt_forward(t->model, t->inputs, t->targets, o->batch, o->seq, 1, dloss,
                                &loss));
        lmf_gpt_backward(t->model);
        loss_sum += loss;
    }
    uint64_t new_epochs = lmf_loader_advance(t->loader, (uint64_t)t->accum * (uint64_t)t->dp_size);
    double c0 = lmf_now_s();
    LMF_TRY(lmf_comm_allreduce_f64(t->comm, &loss_sum, 1, LMF_COMM_SUM));
    /* the mean over the micro-batches of every replica (the loss of the last stage) */
    float loss = inject ? NAN : (float)(loss_sum / ((double)t->accum * t->world / t->pp_size));
    float lr = lmf_lr_at(&t->sched, t->step);
    float norm = 0.0f;
    /* the update's time, less the engine's communication in it and the tensor-parallel sum,
     * is the optimizer's */
    lmf_ddp_stats d1, d2;
    lmf_ddp_stats_get(t->ddp, &d1);
    double u0 = lmf_now_s(), g0 = u0, g1 = u0;
    /* A NaN/Inf anywhere in the forward pass makes the loss (logsumexp - logit) and the
     * softmax gradient non-finite; the optimizer then skips the update on every rank. */
    lmf_status s = lmf_ddp_reduce_wait(t->ddp);
    if (s == LMF_OK && t->tp) {
        g0 = lmf_now_s();
        s = lmf_tp_reduce_grads(t->tp, lmf_ddp_owned_grads(t->ddp), lmf_ddp_owned(t->ddp));
        g1 = lmf_now_s();
    }
    if (s == LMF_OK)
        s = lmf_optimizer_step(t->opt, lmf_ddp_owned_params(t->ddp), lmf_ddp_owned_grads(t->ddp),
                               lr, t->step + 1, &norm);
    if (s != LMF_OK && s != LMF_ERR_NUMERIC) return s;
    double u1 = lmf_now_s();
    lmf_ddp_stats_get(t->ddp, &d2);
    int bad = s == LMF_ERR_NUMERIC || !isfinite(loss);
    double dt = lmf_now_s() - t0;
    lmf_step_stats st;
    memset(&st, 0, sizeof st);
    st.step = t->step;
    st.loss = loss;
    st.lr = lr;
    st.grad_norm = norm;
    st.seconds = dt;
    st.tokens = (int64_t)o->batch * o->seq * t->accum * t->dp_size;
    if (t->tp) {
        lmf_tp_stats tp1;
        lmf_tp_stats_get(t->tp, &tp1);
        st.tp_comm_s = tp1.seconds - tp0.seconds;
        st.tp_grads_s = g1 - g0;
    }
    double update_comm = d2.wait_s - d1.wait_s;
    st.dp_comm_s = (d2.wait_s - d0.wait_s) + (u0 - c0);
    st.optimizer_s = fmax(0.0, (u1 - u0) - update_comm - st.tp_grads_s);
    st.pp_bubble = bubble;
    st.tokens_per_s = (double)st.tokens / dt;
    st.flops_per_s = st.tokens_per_s * t->flops_per_token;
    st.mfu = t->peak_flops > 0 ? st.flops_per_s / t->peak_flops : 0.0;
    st.data_new_epochs = new_epochs;
    t->step++;
    s = after_step(t, bad, &st);
    if (s == LMF_OK && t->ckw) s = lmf_ckpt_poll(t->ckw); /* commit a background checkpoint */
    if (out) *out = st;
    return s;
}

lmf_status lmf_trainer_eval(lmf_trainer *t, float *val_loss) {
    if (!t->val_loader) {
        *val_loss = NAN;
        return LMF_OK;
    }
    if (t->pp) { /* through the pipeline: every replica the same batches, as below */
        size_t BT = (size_t)t->o.batch * t->o.seq;
        for (int b = 0; b < t->eval_batches; b++)
            LMF_TRY(lmf_loader_fill_eval(t->val_loader, (uint64_t)b, t->val_inputs + b * BT,
                                         t->val_targets + b * BT));
        return lmf_pp_engine_eval(t->pp, t->val_inputs, t->val_targets, t->eval_batches,
                                  val_loss);
    }
    double mean = 0.0;
    LMF_TRY(lmf_evaluate(t->model, t->val_loader, t->o.batch, t->o.seq, t->eval_batches,
                         t->inputs, t->targets, &mean));
    *val_loss = (float)mean;
    return LMF_OK;
}

lmf_status lmf_evaluate(lmf_gpt *m, lmf_loader *l, int B, int T, int batches, int32_t *inputs,
                        int32_t *targets, double *mean_loss) {
    double sum = 0.0;
    for (int b = 0; b < batches; b++) {
        float loss;
        LMF_TRY(lmf_loader_fill_eval(l, (uint64_t)b, inputs, targets));
        LMF_TRY(lmf_gpt_forward(m, inputs, targets, B, T, 0, 1.0f, &loss));
        sum += loss;
    }
    *mean_loss = sum / batches;
    return LMF_OK;
}

lmf_status lmf_trainer_export(lmf_trainer *t) { return lmf_hf_save(t->model, t->o.out_dir, -1); }

/* Planner entry points: checking a layout, evaluating its memory and time with the device
 * model chosen for it, and the derived throughput, utilisation, days, device-hours and cost. */
#include "plan/plan_model.h"

#include <limits.h>
#include <stdio.h>
#include <math.h>
#include <string.h>

void lmf_plan_job_defaults(lmf_plan_job *job, const char *model_name, const lmf_gpt_config *m) {
    memset(job, 0, sizeof *job);
    snprintf(job->model_name, sizeof job->model_name, "%s", model_name ? model_name : "model");
    snprintf(job->model_source, sizeof job->model_source, "%s", job->model_name);
    job->model = *m;
    job->seq = m->n_positions;
    job->global_batch_tokens = fmax(524288.0, (double)m->n_positions);
    job->total_tokens = 20.0 * (double)lmf_config_num_params(m);
}

void lmf_plan_constraints_free(lmf_plan_constraints *k, const lmf_cluster *c) {
    k->dp = k->tp = k->pp = k->micro_batch = k->zero = k->sequence_parallel = -1;
    k->recompute_fixed = 0;
    k->recompute = LMF_RECOMPUTE_NONE;
    k->virtual_stages = k->cp = -1;
    k->schedule_fixed = 0;
    k->schedule = LMF_PP_1F1B;
    k->schedules = 0;
    k->allow_cross_node_tp = 0;
    /* 16-bit mixed precision where the device has it (bf16 first), fp32 otherwise */
    k->dtype = c->peak_flops[LMF_PLAN_BF16] > 0.0   ? LMF_PLAN_BF16
               : c->peak_flops[LMF_PLAN_FP16] > 0.0 ? LMF_PLAN_FP16
                                                    : LMF_PLAN_FP32;
}

/* Sequences per step asked for: global batch tokens / seq, rounded, at least 1. */
static int64_t requested_sequences(const lmf_plan_job *job) {
    double b = floor(job->global_batch_tokens / job->seq + 0.5);
    return b < 1.0 ? 1 : (int64_t)b;
}

/* Micro-batches per pipeline for a replica count and micro-batch size, or 0 when the batch
 * cannot be made of whole micro-batches within the tolerance. */
static int micro_batches_for(int64_t want, int dp, int b, int64_t *used) {
    double per = (double)dp * b;
    double m = floor((double)want / per + 0.5);
    if (m < 1.0) m = 1.0;
    if (m > INT_MAX) return 0;
    double got = m * per;
    if (fabs(got - (double)want) > LMF_PLAN_BATCH_TOLERANCE * (double)want) return 0;
    *used = (int64_t)got;
    return (int)m;
}

/* tp must divide the heads; pp stages of ceil or floor layers each need at least one */
static lmf_status check_split(const lmf_gpt_config *m, int tp, int pp) {
    if (m->n_head % tp != 0)
        return lmf_fail(LMF_ERR_ARG, "tensor-parallel size %d does not divide the model's %d attention heads",
                        tp, m->n_head);
    if (pp > m->n_layer)
        return lmf_fail(LMF_ERR_ARG, "pipeline-parallel size %d exceeds the model's %d layers",
                        pp, m->n_layer);
    return LMF_OK;
}

static lmf_status check_layout(const lmf_cluster *c, const lmf_plan_job *job,
                               const lmf_plan_layout *l) {
    const lmf_gpt_config *m = &job->model;
    LMF_TRY(lmf_config_validate(m));
    if (job->seq < 1 || job->seq > m->n_positions)
        return lmf_fail(LMF_ERR_ARG, "sequence length %d is outside 1..%d (the model's n_positions)",
                        job->seq, m->n_positions);
    if (!(job->global_batch_tokens > 0.0) || !(job->total_tokens > 0.0))
        return lmf_fail(LMF_ERR_ARG, "global batch and total tokens must be positive");
    if (l->dp < 1 || l->tp < 1 || l->pp < 1 || l->micro_batch < 1)
        return lmf_fail(LMF_ERR_ARG, "dp, tp, pp and micro-batch must be at least 1 (got %d, %d, %d, %d)",
                        l->dp, l->tp, l->pp, l->micro_batch);
    if (l->zero < 0 || l->zero > 3)
        return lmf_fail(LMF_ERR_ARG, "ZeRO stage must be 0, 1, 2 or 3 (got %d)", l->zero);
    if ((int)l->dtype < 0 || l->dtype >= LMF_PLAN_NDTYPES || (int)l->recompute < 0 ||
        l->recompute > LMF_RECOMPUTE_FULL)
        return lmf_fail(LMF_ERR_ARG, "unknown dtype or recomputation mode");
    LMF_TRY(check_split(m, l->tp, l->pp));
    if (l->cp < 0 || l->virtual_stages < 0)
        return lmf_fail(LMF_ERR_ARG, "context-parallel size and virtual stages must be at least 1 (got %d, %d)",
                        l->cp, l->virtual_stages);
    int cp = lmf_plan_cp(l), v = lmf_plan_virtual_stages(l);
    if (!lmf_pp_schedule_name(l->schedule))
        return lmf_fail(LMF_ERR_ARG, "unknown pipeline schedule %d", (int)l->schedule);
    if (v > 1 && l->schedule != LMF_PP_1F1B && l->schedule != LMF_PP_INTERLEAVED)
        return lmf_fail(LMF_ERR_ARG, "the %s schedule runs one model chunk per pipeline rank (got %d "
                        "virtual stages); use the interleaved schedule for more",
                        lmf_pp_schedule_name(l->schedule), v);
    if (v == 1 && l->schedule == LMF_PP_INTERLEAVED && l->pp > 1)
        return lmf_fail(LMF_ERR_ARG, "the interleaved schedule needs 2 or more virtual stages per pipeline "
                        "rank; give --virtual-stages V");
    if (job->seq % cp != 0)
        return lmf_fail(LMF_ERR_ARG, "context-parallel size %d does not divide the sequence length %d",
                        cp, job->seq);
    if (v > 1 && l->pp == 1)
        return lmf_fail(LMF_ERR_ARG, "%d virtual stages need pipeline parallelism (pp > 1)", v);
    if (v > 1 && !lmf_plan_chunks_fit(m, l->pp, v))
        return lmf_fail(LMF_ERR_ARG, "%d virtual stages do not split the fullest stage's %.0f layers (of %d "
                        "over pp %d) into equal chunks of at least one layer",
                        v, lmf_plan_stage_layers(m, l->pp), m->n_layer, l->pp);
    int64_t used = (int64_t)l->dp * l->tp * l->pp * cp;
    if (used > lmf_cluster_devices(c))
        return lmf_fail(LMF_ERR_ARG, "dp x tp x pp x cp = %lld devices, but cluster '%s' has %d",
                        (long long)used, c->name, lmf_cluster_devices(c));
    if (!(c->peak_flops[l->dtype] > 0.0))
        return lmf_fail(LMF_ERR_ARG, "device '%s' of cluster '%s' has no %s peak; choose another --dtype",
                        c->device, c->name, lmf_plan_dtype_name(l->dtype));
    return LMF_OK;
}

lmf_status lmf_plan_evaluate(const lmf_cluster *c, const lmf_plan_job *job,
                             const lmf_plan_layout *l, lmf_plan_result *res) {
    return lmf_plan_evaluate_cached(c, job, l, NULL, res);
}

lmf_status lmf_plan_evaluate_cached(const lmf_cluster *c, const lmf_plan_job *job,
                                    const lmf_plan_layout *l, lmf_plan_pipe_cache *cache,
                                    lmf_plan_result *res) {
    LMF_TRY(check_layout(c, job, l));
    memset(res, 0, sizeof *res);
    res->layout = *l;
    if (l->tp == 1) res->layout.sequence_parallel = 0;
    res->layout.cp = lmf_plan_cp(l);
    res->layout.virtual_stages = lmf_plan_virtual_stages(l);
    res->layout.schedule = lmf_plan_schedule_of(l);
    l = &res->layout;
    res->devices = l->dp * l->tp * l->pp * l->cp;
    res->requested_batch = requested_sequences(job);
    res->micro_batches = micro_batches_for(res->requested_batch, l->dp, l->micro_batch,
                                           &res->global_batch);
    if (res->micro_batches == 0)
        return lmf_fail(LMF_ERR_ARG, "a global batch of %lld sequences cannot be split into whole "
                        "micro-batches of %d sequences over %d replicas (within %.0f%%)",
                        (long long)res->requested_batch, l->micro_batch, l->dp,
                        100.0 * LMF_PLAN_BATCH_TOLERANCE);
    /* Megatron-LM's interleaved schedule runs the micro-batches in groups of pp */
    if (l->virtual_stages > 1 && res->micro_batches % l->pp != 0)
        return lmf_fail(LMF_ERR_ARG, "the interleaved schedule needs micro-batches per step (%d) to be a "
                        "multiple of pp (%d); change --global-batch or --micro-batch",
                        res->micro_batches, l->pp);
    res->params = lmf_config_num_params(&job->model);

    lmf_plan_setup s;
    LMF_TRY(lmf_plan_setup_init(&s, c, job, l));
    LMF_TRY(lmf_plan_schedule_prepare(&s, res->micro_batches, cache));
    res->device = s.device->kind;
    s.device->memory(&s, res->micro_batches, LMF_PLAN_STAGE_FIRST, &res->mem);
    if (l->pp > 1) {
        lmf_plan_memory lastm;
        s.device->memory(&s, res->micro_batches, LMF_PLAN_STAGE_LAST, &lastm);
        if (lastm.total > res->mem.total) res->mem = lastm;
    }

    double rec = 0.0;
    lmf_plan_step_time(&s, res->micro_batches, &res->time, &rec);
    res->flops_per_token = lmf_config_train_flops_per_token(&job->model, job->seq);
    res->tokens_per_step = (double)res->global_batch * job->seq;
    res->tokens_per_s = res->tokens_per_step / res->time.step;
    res->model_tflops_per_device = res->flops_per_token * res->tokens_per_s / res->devices / 1e12;
    res->hardware_tflops_per_device = res->model_tflops_per_device + rec / res->time.step / 1e12;
    res->mfu = res->model_tflops_per_device * 1e12 / c->peak_flops[l->dtype];
    res->days = job->total_tokens / res->tokens_per_s / 86400.0;
    res->gpu_hours = res->days * 24.0 * res->devices;
    double price = job->price_per_device_hour > 0.0 ? job->price_per_device_hour
                                                     : c->price_per_device_hour;
    res->cost = price > 0.0 ? price * res->gpu_hours : 0.0;
    return LMF_OK;
}

lmf_status lmf_plan_single(const lmf_cluster *c, const lmf_plan_job *job,
                           const lmf_plan_constraints *k, lmf_plan_result *res) {
    int devices = lmf_cluster_devices(c);
    lmf_plan_layout l = {0};
    l.tp = k->tp > 0 ? k->tp : 1;
    l.pp = k->pp > 0 ? k->pp : 1;
    l.cp = k->cp > 0 ? k->cp : 1;
    l.virtual_stages = k->virtual_stages > 0 ? k->virtual_stages : 1;
    l.schedule = k->schedule_fixed ? k->schedule : LMF_PP_1F1B;
    LMF_TRY(lmf_config_validate(&job->model));
    LMF_TRY(check_split(&job->model, l.tp, l.pp));
    int64_t model_ranks = (int64_t)l.tp * l.pp * l.cp;
    if (k->dp > 0) {
        l.dp = k->dp;
    } else {
        if (model_ranks > devices || devices % model_ranks != 0)
            return lmf_fail(LMF_ERR_ARG, "tp x pp x cp = %lld does not divide the %d devices of cluster '%s'",
                            (long long)model_ranks, devices, c->name);
        l.dp = (int)(devices / model_ranks);
    }
    if ((int64_t)l.dp * model_ranks != devices) {
        if (l.cp > 1)
            return lmf_fail(LMF_ERR_ARG, "dp x tp x pp x cp = %d x %d x %d x %d = %lld, but cluster '%s' has %d "
                            "devices (change the layout, or use --nodes to plan for part of the cluster)",
                            l.dp, l.tp, l.pp, l.cp, (long long)l.dp * model_ranks, c->name, devices);
        return lmf_fail(LMF_ERR_ARG, "dp x tp x pp = %d x %d x %d = %lld, but cluster '%s' has %d devices "
                        "(change the layout, or use --nodes to plan for part of the cluster)",
                        l.dp, l.tp, l.pp, (long long)l.dp * l.tp * l.pp, c->name, devices);
    }
    l.micro_batch = k->micro_batch > 0 ? k->micro_batch : 1;
    l.zero = k->zero >= 0 ? k->zero : 0;
    l.recompute = k->recompute_fixed ? k->recompute : LMF_RECOMPUTE_NONE;
    l.dtype = k->dtype;
    l.sequence_parallel = k->sequence_parallel >= 0 ? k->sequence_parallel : l.tp > 1;
    return lmf_plan_evaluate(c, job, &l, res);
}

/* Planner model of an lmforge run on a calibrated device (a cluster file with a "kernels"
 * object): time from the model's own kernel calls (lmf_gpt_step_work) at the measured rates
 * of lmforge's kernels, memory from lmforge's own accounting (the parameter layout and its
 * gradient buckets, the trainer's activation block, the data-parallel engine, the checkpoint
 * snapshot, the bare process). */
#include "plan/plan_model.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lmforge/pipeline.h"
#include "lmforge/threads.h"

static double block_floats(const lmf_param_layout *p, int b) {
    return (double)(p->block_offset[b + 1] - p->block_offset[b]);
}

/* the tensor-parallel split lmforge train runs for the layout (rank 0's: it holds the
 * replicated tensors and the most vocabulary rows) */
static lmf_tp_config tp_of(const lmf_plan_layout *l) {
    return (lmf_tp_config){l->tp, 0, l->sequence_parallel};
}

/* Pipeline: the trainer's split (lmf_pp_layers_balanced, the classifier weighed in layers'
 * FLOPs on the last stage) into b->stage_layers, and the layout of the stage holding the most
 * floats (ties: the first), as the trainer's memory check takes it. */
static lmf_status largest_stage(lmf_plan_setup *s, const lmf_tp_config *tp, lmf_param_layout *out) {
    const lmf_plan_layout *l = s->layout;
    const lmf_gpt_config *m = &s->job->model;
    lmf_plan_blocks *b = &s->blocks;
    double last = lmf_gpt_classifier_layers(m, tp, l->micro_batch, s->job->seq, l->recompute);
    LMF_TRY(lmf_pp_layers_balanced(m->n_layer, l->pp, 0.0, last, b->stage_layers));
    size_t most = 0;
    for (int st = 0, l0 = 0; st < l->pp; l0 += b->stage_layers[st++]) {
        lmf_param_layout one;
        LMF_TRY(lmf_layout_build_stage(m, tp, l0, b->stage_layers[st], &one));
        if (st == 0 || one.total > most) {
            if (st > 0) lmf_layout_free(out);
            *out = one;
            most = one.total;
            b->largest_stage = st;
        } else {
            lmf_layout_free(&one);
        }
    }
    return LMF_OK;
}

lmf_status lmf_plan_local_prepare(lmf_plan_setup *s) {
    lmf_param_layout p;
    lmf_tp_config tp = tp_of(s->layout);
    LMF_TRY(lmf_layout_build(&s->job->model, &p));
    s->blocks.whole = (double)p.total;
    lmf_layout_free(&p);
    if (s->layout->pp > 1) LMF_TRY(largest_stage(s, &tp, &p));
    else LMF_TRY(lmf_layout_build_tp(&s->job->model, &tp, &p));
    lmf_plan_blocks *b = &s->blocks;
    int *lo = malloc((size_t)p.n_blocks * sizeof *lo), *hi = malloc((size_t)p.n_blocks * sizeof *hi);
    if (!lo || !hi) {
        free(lo);
        free(hi);
        lmf_layout_free(&p);
        return lmf_fail(LMF_ERR_NOMEM, "planner: cannot allocate the model's gradient buckets");
    }
    b->total = (double)p.total;
    b->embeddings = block_floats(&p, 0);
    b->final_norm = block_floats(&p, p.n_blocks - 1);
    for (int i = 1; i < p.n_blocks - 1; i++) b->layer = fmax(b->layer, block_floats(&p, i));
    /* the engine's buckets (src/parallel/ddp.c: target bucket_bytes, at most 2^31-1 floats) */
    b->buckets = lmf_layout_buckets(&p, LMF_DDP_DEFAULT_BUCKET_BYTES / sizeof(float),
                                    (size_t)INT_MAX, lo, hi);
    for (int k = 0; k < b->buckets; k++) {
        if (lo[k] == 0) continue;
        double len = (double)(p.block_offset[hi[k] + 1] - p.block_offset[lo[k]]);
        b->largest_bucket = fmax(b->largest_bucket, len);
    }
    free(lo);
    free(hi);
    lmf_layout_free(&p);
    return LMF_OK;
}

/* seconds for `values` values (or parameters) of element-wise kernel e */
static double ew_time(const lmf_plan_kernel_rates *r, lmf_plan_ew e, double values) {
    return values * lmf_plan_ew_bytes[e] / r->bandwidth[e];
}

/* Seconds of the kernel calls in w at the measured rates (width C, sequence T), added to the
 * parts of *p by kind; returns their sum. */
static double work_time(const lmf_plan_kernel_rates *r, double C, double T,
                        const lmf_step_work *w, lmf_plan_micro *p) {
    double sum = 0.0;
    for (int i = 0; i < LMF_OP_COUNT; i++) {
        const lmf_op_work *o = &w->op[i];
        if (o->calls == 0.0) continue;
        double t;
        switch ((lmf_op)i) {
        case LMF_OP_MATMUL_FORWARD:
            p->matmul += t = o->flops / lmf_plan_curve_at(&r->matmul, C, LMF_PLAN_FORWARD);
            break;
        case LMF_OP_MATMUL_BACKWARD:
            p->matmul += t = o->flops / lmf_plan_curve_at(&r->matmul, C, LMF_PLAN_BACKWARD);
            break;
        case LMF_OP_ATTENTION_FORWARD:
            p->attention += t = o->flops / lmf_plan_curve_at(&r->attention, T, LMF_PLAN_FORWARD);
            break;
        case LMF_OP_ATTENTION_BACKWARD:
            p->attention += t = o->flops / lmf_plan_curve_at(&r->attention, T, LMF_PLAN_BACKWARD);
            break;
        case LMF_OP_CLASSIFIER: /* forward and backward in one kernel: one measured rate */
            p->classifier += t = o->flops / lmf_plan_curve_at(&r->classifier, C, LMF_PLAN_FORWARD);
            break;
        default: {
            lmf_plan_ew e = lmf_plan_ew_of_op((lmf_op)i);
            LMF_ASSERT(e < LMF_PLAN_EW_COUNT); /* every kernel call of the model has a rate */
            p->elementwise += t = ew_time(r, e, o->values);
            break;
        }
        }
        sum += t;
    }
    return sum;
}

/* ZeRO-2/3 gradient staging per micro-batch: the staging slots zeroed (P values), this rank's
 * part of the reduced sum added into its gradient shard (read 2, write 1 per value, at the
 * rate of gelu_bias_backward, a kernel of the same traffic) */
static double staging_time(const lmf_plan_setup *s) {
    const lmf_plan_layout *l = s->layout;
    if (l->zero < 2) return 0.0;
    const lmf_plan_kernel_rates *r = &s->cluster->kernels;
    double P = s->blocks.total;
    return ew_time(r, LMF_PLAN_EW_ZERO, P) +
           ceil(P / l->dp) * 12.0 / r->bandwidth[LMF_PLAN_EW_GELU_BIAS_BWD];
}

/* One micro-batch of a model of `layers` layers: with the classifier (the last pipeline stage,
 * or no pipeline) or without it. */
static void stage_micro(const lmf_plan_setup *s, int layers, int classifier, lmf_plan_micro *out) {
    const lmf_plan_kernel_rates *r = &s->cluster->kernels;
    lmf_gpt_config m = s->job->model;
    const lmf_plan_layout *l = s->layout;
    m.n_layer = layers;
    lmf_step_work fw, bw;
    lmf_tp_config tp = tp_of(l);
    lmf_gpt_step_work_tp(&m, &tp, l->micro_batch, s->job->seq, l->recompute, &fw, &bw);
    if (!classifier) memset(&fw.op[LMF_OP_CLASSIFIER], 0, sizeof fw.op[LMF_OP_CLASSIFIER]);
    memset(out, 0, sizeof *out);
    double C = m.n_embd, T = s->job->seq;
    /* the forward (with the classifier and its backward) and the backward (with
     * recomputation); gradient reductions can hide behind the latter */
    double fwd = work_time(r, C, T, &fw, out);
    out->backward = work_time(r, C, T, &bw, out);
    out->compute = fwd + out->backward + staging_time(s);
    out->compute_layers = out->compute;
    /* FLOPs the backward re-runs: the forward products and attention of recomputation */
    out->recompute_flops = bw.op[LMF_OP_MATMUL_FORWARD].flops + bw.op[LMF_OP_ATTENTION_FORWARD].flops;
}

void lmf_plan_local_micro_batch(const lmf_plan_setup *s, lmf_plan_micro *out) {
    const lmf_plan_layout *l = s->layout;
    if (l->pp == 1) {
        stage_micro(s, s->job->model.n_layer, 1, out);
        return;
    }
    /* a pipeline runs at its slowest stage's pace; the fill and drain pass the first stage */
    lmf_plan_micro st;
    double first = 0.0;
    for (int i = 0; i < l->pp; i++) {
        stage_micro(s, s->blocks.stage_layers[i], i == l->pp - 1, &st);
        if (i == 0) first = st.compute;
        if (i == 0 || st.compute > out->compute) *out = st;
    }
    out->compute_layers = first;
}

/* all-gather bus bandwidth for S bytes: log-linear between the 4 MiB and 64 MiB points */
static double ag_bandwidth(const lmf_cluster *c, double S) {
    const double s0 = 4.0 * 1048576.0, s1 = 64.0 * 1048576.0;
    double b0 = c->intra_ag_small_bandwidth, b1 = c->intra_ag_bandwidth;
    if (S <= s0) return b0;
    if (S >= s1) return b1;
    double f = log(S / s0) / log(s1 / s0);
    return exp(log(b0) + f * (log(b1) - log(b0)));
}

/* one all-gather of a block of `floats` parameters over dp ranks at the rate for its size */
static double block_gather(const lmf_plan_setup *s, double floats, double latency) {
    const lmf_cluster *c = s->cluster;
    double w, g, o, bytes;
    lmf_plan_param_bytes(LMF_PLAN_FP32, &w, &g, &o);
    bytes = floats * w;
    return lmf_plan_gather_time(bytes, s->layout->dp, ag_bandwidth(c, bytes) * c->comm_efficiency,
                                latency);
}

double lmf_plan_local_zero3_gathers(const lmf_plan_setup *s, int micro_batches,
                                    double weight_bytes, const lmf_plan_dp_link *link) {
    const lmf_cluster *c = s->cluster;
    if (!(link->in_node && c->intra_ag_small_bandwidth > 0 && c->intra_ag_bandwidth > 0))
        return lmf_plan_generic_zero3_gathers(s, micro_batches, weight_bytes, link);
    const lmf_plan_blocks *b = &s->blocks;
    /* a pipeline stage gathers its own layers: the fullest stage's, whose time sets the pace */
    double lat = link->latency,
           L = s->layout->pp > 1 ? b->stage_layers[b->largest_stage] : s->job->model.n_layer;
    double layers = 2.0 * L - 1.0; /* forward L, backward L - 1 */
    return block_gather(s, b->embeddings, lat) +
           micro_batches * (layers * block_gather(s, b->layer, lat) + block_gather(s, b->final_norm, lat));
}

/* Engine buffers (src/parallel/ddp.c) in floats: stages 2/3 stage gradients in the model's
 * buckets (lmf_layout_buckets), one slot of block 0's size and up to two of the largest other
 * bucket's; stage 3 gathers weights into one buffer of block 0's size and two of the largest
 * other block's. */
static double engine_buffer_floats(const lmf_plan_blocks *b, int zero) {
    double buf = 0.0;
    if (zero >= 2) {
        int others = b->buckets - 1;
        buf += b->embeddings + (others < 2 ? others : 2) * b->largest_bucket;
    }
    if (zero == 3) buf += b->embeddings + 2.0 * fmax(b->layer, b->final_norm);
    return buf;
}

double lmf_plan_local_activation_bytes(const lmf_cluster *c, const lmf_plan_job *job,
                                       const lmf_plan_layout *l) {
    return lmf_plan_local_stage_activation_bytes(c, job, l, 1);
}

double lmf_plan_local_stage_activation_bytes(const lmf_cluster *c, const lmf_plan_job *job,
                                             const lmf_plan_layout *l, int classifier) {
    const lmf_kernels *k = lmf_kernels_by_name(c->kernels.table);
    if (!k) k = lmf_kernels_fast();
    /* the fast table's attention scratch follows the thread count of the run */
    int saved = lmf_threads_get();
    if (c->kernels.threads > 0) lmf_threads_set(c->kernels.threads);
    lmf_tp_config tp = tp_of(l);
    size_t floats = lmf_gpt_stage_activation_floats(&job->model, &tp, k, l->micro_batch,
                                                    job->seq, LMF_RESERVE_TRAIN_HOOKED,
                                                    l->recompute, job->model.n_layer, classifier);
    lmf_threads_set(saved);
    return 4.0 * (double)floats;
}

/* Bytes a ZB-H1 stage keeps for its deferred weight gradients per micro-batch in flight
 * (src/model/wgrad.c): each linear layer's output gradient, and its input under
 * recomputation or sequence parallelism. */
static double zb_record_bytes(const lmf_plan_setup *s, int layers) {
    const lmf_plan_layout *l = s->layout;
    const lmf_gpt_config *m = &s->job->model;
    double BT = (double)l->micro_batch * s->job->seq, C = m->n_embd, t = l->tp;
    double W = C / t, F = lmf_config_ffn(m) / t;
    int llama = m->family == LMF_FAMILY_LLAMA;
    double KV = llama ? (double)m->n_kv_head * (C / m->n_head) / t : 0.0;
    double dout = llama ? 2 * C + 2 * F + W + 2 * KV : 2 * C + F + 3 * W;
    double inp = l->recompute != LMF_RECOMPUTE_NONE || l->sequence_parallel
                     ? (llama ? 5 * C + F + W : 2 * C + F + W) : 0.0;
    return 4.0 * BT * layers * (dout + inp);
}

void lmf_plan_local_memory(const lmf_plan_setup *s, int micro_batches, lmf_plan_stage stage,
                           lmf_plan_memory *out) {
    (void)stage; /* pipeline: the stage of the most floats, whichever is asked */
    const lmf_cluster *c = s->cluster;
    const lmf_plan_layout *l = s->layout;
    double P = s->blocks.total; /* the rank's slices' floats, padded vocabulary */
    double shard = ceil(P / l->dp);
    memset(out, 0, sizeof *out);
    /* ZeRO-3 keeps a shard of the weights and, at the end of the run, gathers them whole
     * again to write the model (lmf_trainer_materialize); under tensor parallelism that
     * gathering is smaller than the checkpoint's (below), which sets the peak */
    out->weights = 4.0 * (l->zero >= 3 ? shard + (l->tp > 1 ? 0.0 : P) : P);
    out->grads = 4.0 * (l->zero >= 2 ? shard : P);
    out->optimizer = 8.0 * (l->zero >= 1 ? shard : P);
    /* engine buffers, and the batch's ids and targets held by the trainer and the model */
    out->buffers = 4.0 * engine_buffer_floats(&s->blocks, l->zero) +
                   4.0 * 4.0 * (double)l->micro_batch * s->job->seq;
    if (l->pp > 1) {
        /* the largest stage's layers, one activation slot per micro-batch the first stage
         * keeps in flight (as the trainer's memory check), every micro-batch's input and
         * gradient message, ZB-H1's deferred weight gradients */
        lmf_plan_job stage_job = *s->job;
        int layers = s->blocks.stage_layers[s->blocks.largest_stage];
        stage_job.model.n_layer = layers;
        double slots = ceil(s->pipe.ready ? s->pipe.inflight[LMF_PLAN_STAGE_FIRST] : l->pp);
        if (slots > micro_batches) slots = micro_batches;
        int cls = s->blocks.largest_stage == l->pp - 1;
        out->activations = slots * lmf_plan_local_stage_activation_bytes(c, &stage_job, l, cls);
        double rows = (double)l->micro_batch * s->job->seq / (l->sequence_parallel ? l->tp : 1);
        out->buffers += 8.0 * rows * s->job->model.n_embd * micro_batches;
        if (lmf_plan_schedule_of(l) == LMF_PP_ZB_H1) out->activations += slots * zb_record_bytes(s, layers);
    } else {
        out->activations = lmf_plan_local_activation_bytes(c, s->job, l);
    }
    /* checkpoint snapshot: this rank's range of weights, m and v (src/ckpt); under tensor
     * parallelism the rank's range of the whole model's vectors, assembled for the save from
     * its data-parallel parts (4 B x its slices) and every group rank's slices (4 B x tp x its
     * slices, one vector at a time) into the range (12 B x W / ranks), which the snapshot
     * then copies (lmf_trainer_save) */
    double range = ceil(s->blocks.whole / ((double)l->dp * l->tp * l->pp));
    double parts = 4.0 * P * (1.0 + (l->tp > 1 ? l->tp : 0)), W = 4.0 * s->blocks.whole;
    /* pipeline: the parts, the whole vector the stages are summed into and the ranges, or
     * the ranges and the snapshot's copy, or at the end the whole weights put together */
    if (l->pp > 1)
        out->checkpoint = fmax(fmax(parts + W + 12.0 * range, 24.0 * range), parts + 2.0 * W);
    else
        out->checkpoint = l->tp > 1 ? parts + 24.0 * range : 12.0 * shard;
    out->process = c->kernels.process_bytes;
    out->total = out->weights + out->grads + out->optimizer + out->activations + out->buffers +
                 out->checkpoint + out->process;
    out->capacity = c->device_memory - c->memory_reserved;
    out->margin = out->capacity - out->total;
    out->fits = out->margin >= 0.0;
    out->stage = l->pp > 1 && s->blocks.largest_stage == l->pp - 1 ? LMF_PLAN_STAGE_LAST
                                                                    : LMF_PLAN_STAGE_FIRST;
}

double lmf_plan_local_optimizer(const lmf_plan_setup *s, double params) {
    (void)params; /* the layout's own count: the rank's slices (lmf_plan_local_prepare) */
    const lmf_plan_kernel_rates *r = &s->cluster->kernels;
    const lmf_plan_layout *l = s->layout;
    double P = s->blocks.total;
    double own = l->zero >= 1 ? ceil(P / l->dp) : P;
    /* the norm (sumsq) and one AdamW pass over the owned range; stage 1 also zeroes the
     * gradients of the other ranks' ranges */
    double t = ew_time(r, LMF_PLAN_EW_SUMSQ, own) + ew_time(r, LMF_PLAN_EW_ADAMW, own);
    if (l->zero == 1) t += ew_time(r, LMF_PLAN_EW_ZERO, P - own);
    return t;
}

/* one line of the step work: the calls of an op and their seconds at the measured rate */
static void explain_work(FILE *f, const char *pass, const lmf_plan_kernel_rates *r, double C,
                         double T, const lmf_step_work *w) {
    for (int i = 0; i < LMF_OP_COUNT; i++) {
        const lmf_op_work *o = &w->op[i];
        if (o->calls == 0.0) continue;
        lmf_step_work one;
        memset(&one, 0, sizeof one);
        one.op[i] = *o;
        lmf_plan_micro p;
        memset(&p, 0, sizeof p);
        double t = work_time(r, C, T, &one, &p);
        lmf_plan_ew e = lmf_plan_ew_of_op((lmf_op)i);
        char what[64];
        if (e < LMF_PLAN_EW_COUNT)
            snprintf(what, sizeof what, "%.3g M values x %.0f B", o->values / 1e6, lmf_plan_ew_bytes[e]);
        else
            snprintf(what, sizeof what, "%.3g GFLOP", o->flops / 1e9);
        fprintf(f, "                    %-8s %-28s %5.0f x  %-22s %9.3f ms\n", pass,
                lmf_op_name((lmf_op)i), o->calls, what, 1e3 * t);
    }
}

void lmf_plan_local_explain(FILE *f, const lmf_cluster *c, const lmf_plan_job *job,
                            const lmf_plan_layout *l) {
    const lmf_plan_kernel_rates *r = &c->kernels;
    const lmf_gpt_config *m = &job->model;
    double C = m->n_embd, s = job->seq;
    fprintf(f, "calibrated device: lmforge's '%s' kernels, %d thread%s per rank (run with --threads %d)\n",
            r->table, r->threads, r->threads == 1 ? "" : "s", r->threads);
    lmf_linear_desc lin[LMF_LAYER_LINEARS];
    int n = lmf_layer_linears(m, lin);
    fprintf(f, "  matmul          the layer's products (lmf_layer_linears):\n                 ");
    for (int i = 0; i < n; i++)
        fprintf(f, "%s %s %d->%d%s", i ? "," : "", lin[i].name, lin[i].in, lin[i].out,
                lin[i].gelu ? " +GELU" : "");
    fprintf(f, ";\n                  2*N*in*out FLOPs each forward at %.1f GFLOP/s, twice that backward at %.1f\n"
               "                  (measured at width C = %g, %d rows; N = b*s)\n",
            lmf_plan_curve_at(&r->matmul, C, LMF_PLAN_FORWARD) / 1e9,
            lmf_plan_curve_at(&r->matmul, C, LMF_PLAN_BACKWARD) / 1e9, C, r->rows);
    fprintf(f, "  attention       lmf_attention_flops, 2*b*C*s*(s+1) forward at %.1f GFLOP/s, 2.5 times that\n"
               "                  backward at %.1f (flash attention: only the log-sum-exp is kept; measured at s = %g)\n",
            lmf_plan_curve_at(&r->attention, s, LMF_PLAN_FORWARD) / 1e9,
            lmf_plan_curve_at(&r->attention, s, LMF_PLAN_BACKWARD) / 1e9, s);
    fprintf(f, "  classifier      6*N*C*V FLOPs (tied logits, softmax, both gradients) at %.1f GFLOP/s\n",
            lmf_plan_curve_at(&r->classifier, C, LMF_PLAN_FORWARD) / 1e9);
    fprintf(f, "  element-wise    bytes per value at the measured rate of each kernel:\n");
    for (int e = 0; e < LMF_PLAN_EW_COUNT; e++)
        fprintf(f, "                    %-26s %4.0f B at %6.2f GB/s\n", lmf_plan_ew_name((lmf_plan_ew)e),
                lmf_plan_ew_bytes[e], r->bandwidth[e] / 1e9);
    fprintf(f, "  kernel calls    one micro-batch as the model makes it (lmf_gpt_step_work, recompute %s):\n",
            lmf_recompute_name(l->recompute));
    lmf_step_work fw, bw;
    lmf_gpt_step_work(m, l->micro_batch, job->seq, l->recompute, &fw, &bw);
    explain_work(f, "forward", r, C, s, &fw);
    explain_work(f, "backward", r, C, s, &bw);
    fprintf(f, "  optimizer       sumsq and AdamW over the owned parameters (ZeRO-1: the rest of the\n"
               "                  gradients zeroed); ZeRO-2/3 stage and add gradient buckets every micro-batch\n");
    fprintf(f, "  memory          weights, gradients, AdamW m and v as the data-parallel engine holds them\n"
               "                  (ZeRO-3 also the whole weights gathered at the end), activations =\n"
               "                  lmf_gpt_activation_floats (recompute %s: %.1f MiB), engine buckets\n"
               "                  (lmf_layout_buckets), the checkpoint snapshot 12 B x params/ranks, and the\n"
               "                  bare process %.1f MiB: the peak resident memory of each rank\n",
            lmf_recompute_name(l->recompute), lmf_plan_local_activation_bytes(c, job, l) / 1048576.0,
            r->process_bytes / 1048576.0);
}

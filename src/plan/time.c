/* Planner time formulas (matrix-product efficiency, collective costs), the generic device's
 * compute, optimizer and ZeRO-3 gathers, and the time of one step (compute, tensor- and
 * pipeline-parallel communication, bubble, data-parallel reduction, ZeRO-3 gathers, optimizer)
 * with the setup's device model. */
#include "plan/plan_model.h"

#include <assert.h>
#include <math.h>
#include <string.h>

double lmf_plan_equiv_size(double M, double K, double N) {
    double denom = M * N + N * K + M * K;
    return denom > 0.0 ? 3.0 * M * N * K / denom : 0.0;
}

static const lmf_plan_eff_curve *curve_for(const lmf_cluster *c, lmf_plan_dtype d) {
    static const lmf_plan_dtype order[] = {LMF_PLAN_BF16, LMF_PLAN_FP16, LMF_PLAN_FP32,
                                           LMF_PLAN_FP8};
    if (c->gemm_eff[d].n > 0) return &c->gemm_eff[d];
    for (int i = 0; i < 4; i++)
        if (c->gemm_eff[order[i]].n > 0) return &c->gemm_eff[order[i]];
    return NULL;
}

double lmf_plan_gemm_eff(const lmf_cluster *c, lmf_plan_dtype d, double n) {
    const lmf_plan_eff_curve *cv = curve_for(c, d);
    if (!cv) return 0.5;
    int last = cv->n - 1;
    if (n <= cv->size[0]) return cv->frac[0] * n / cv->size[0];
    if (n >= cv->size[last]) return cv->frac[last];
    int i = 0;
    while (i + 1 < last && n >= cv->size[i + 1]) i++;
    double x = (log2(n) - log2(cv->size[i])) / (log2(cv->size[i + 1]) - log2(cv->size[i]));
    return cv->frac[i] + x * (cv->frac[i + 1] - cv->frac[i]);
}

double lmf_plan_gemm_time(const lmf_cluster *c, lmf_plan_dtype d, double M, double K, double N,
                          double count) {
    double peak = c->peak_flops[d];
    assert(peak > 0.0);
    double eff = lmf_plan_gemm_eff(c, d, lmf_plan_equiv_size(M, K, N));
    if (eff < 1e-6) eff = 1e-6;
    return count * 2.0 * M * N * K / (peak * eff);
}

double lmf_plan_fused_time(const lmf_cluster *c, lmf_plan_dtype d, double flops, double bytes) {
    if (flops <= 0.0) return 0.0;
    double peak = c->peak_flops[d];
    assert(peak > 0.0 && bytes > 0.0);
    double eff = lmf_plan_gemm_eff(c, d, 1.5 * lmf_plan_act_elem_bytes(d) * flops / bytes);
    if (eff < 1e-6) eff = 1e-6;
    return flops / (peak * eff);
}

double lmf_plan_allreduce_time(double S, int n, double bw, double lat) {
    if (n <= 1) return 0.0;
    return 2.0 * (n - 1) / n * S / bw + 2.0 * (n - 1) * lat;
}

double lmf_plan_gather_time(double S, int n, double bw, double lat) {
    if (n <= 1) return 0.0;
    return (double)(n - 1) / n * S / bw + (double)(n - 1) * lat;
}

void lmf_plan_group_link(const lmf_cluster *c, int n, int stride, double *bw, double *lat) {
    int D = c->devices_per_node;
    double eff = c->comm_efficiency;
    if ((double)stride * n <= D || c->nodes <= 1) {
        *bw = c->intra_bandwidth * eff;
        *lat = c->intra_latency;
        return;
    }
    /* k members of each ring on a node; the node's D devices form D/k such rings, each
     * crossing the node boundary once in each direction */
    int k = stride < D ? D / stride : 1;
    if (k > n) k = n;
    if (k < 1) k = 1;
    double per_ring = c->inter_bandwidth * k / D;
    *bw = fmin(c->intra_bandwidth, per_ring) * eff;
    *lat = c->inter_latency;
}

/* Bandwidth of the pipeline's point-to-point link: neighbouring stages are stride = tp*dp
 * ranks apart; across nodes, min(stride, D) devices of a node send at once. */
static void p2p_link(const lmf_cluster *c, int stride, int pp, double *bw, double *lat) {
    int D = c->devices_per_node;
    if ((double)stride * pp <= D || c->nodes <= 1) {
        *bw = c->intra_bandwidth * c->comm_efficiency;
        *lat = c->intra_latency;
        return;
    }
    double senders = stride < D ? stride : D;
    *bw = fmin(c->intra_bandwidth, c->inter_bandwidth / senders) * c->comm_efficiency;
    *lat = c->inter_latency;
}

/* The generic device's forward of one layer on one tensor-parallel rank for one micro-batch:
 * seconds by part, and the FLOPs of its products and of its attention core. */
typedef struct layer_forward {
    double linears, attention, elementwise, softmax, total;
    double linear_flops, attention_flops;
    double attention_bwd, elementwise_bwd, softmax_bwd; /* the backward's attention core and
                                                           memory-bound kernels */
    int flash;                                          /* fused attention */
} layer_forward;

static void generic_layer_forward(const lmf_plan_setup *s, layer_forward *f) {
    const lmf_cluster *c = s->cluster;
    const lmf_plan_layout *l = s->layout;
    const lmf_gpt_config *cfg = &s->job->model;
    lmf_plan_dtype d = l->dtype;
    double t = l->tp, seq = s->job->seq, h = cfg->n_embd, a = cfg->n_head;
    double cp = lmf_plan_cp(l), sq = seq / cp; /* this device's share of each sequence */
    double hd = h / a, M = (double)l->micro_batch * sq;
    double e = lmf_plan_act_elem_bytes(d);
    double r = l->sequence_parallel ? 1.0 / t : 1.0;
    double mem_bw = c->memory_bandwidth;
    memset(f, 0, sizeof *f);
    /* the layer's products as the model describes them: a column-parallel weight's outputs and
     * a row-parallel weight's inputs are divided over the tensor-parallel ranks */
    lmf_linear_desc lin[LMF_LAYER_LINEARS];
    int n = lmf_layer_linears(cfg, lin);
    for (int i = 0; i < n; i++) {
        double K = lin[i].in, N = lin[i].out;
        if (lin[i].split == LMF_SPLIT_COLUMN) N /= t;
        else K /= t;
        f->linears += lmf_plan_gemm_time(c, d, M, K, N, 1);
        f->linear_flops += 2.0 * M * K * N;
    }
    int drop = s->job->dropout;
    f->flash = s->job->attention == LMF_PLAN_ATTN_FLASH;
    if (f->flash) {
        /* fused causal attention (FlashAttention): the model's causal FLOPs
         * (lmf_attention_flops: the unmasked half of Q K^T and P V; the backward 2.5 times, as
         * it computes the probabilities again), this device's share of heads (1/t) and of
         * queries (1/cp, the load-balanced split). Its memory traffic is its operands: forward
         * Q, K, V read and the output written; backward Q, K, V, the output and its gradient
         * read, the gradients of Q, K, V written. Each is priced as a product of the same
         * FLOPs per byte. */
        double kvw = lmf_plan_kv_width(cfg), b = l->micro_batch;
        double fl_f = lmf_attention_flops(l->micro_batch, (int)seq, (int)h, 0) / (t * cp);
        double fl_b = lmf_attention_flops(l->micro_batch, (int)seq, (int)h, 1) / (t * cp);
        double by_f = b * e * (2.0 * sq * h + seq * kvw) / t;
        double by_b = b * e * (4.0 * sq * h + 2.0 * seq * kvw) / t;
        f->attention = lmf_plan_fused_time(c, d, fl_f, by_f);
        f->attention_bwd = lmf_plan_fused_time(c, d, fl_b, by_b);
        f->attention_flops = fl_f;
    } else {
        /* attention core, the whole s x s matrix per head: Q K^T, softmax . V; with context
         * parallelism this device's s/cp queries meet the s keys in cp blocks of s/cp x s/cp
         * (ring attention) */
        double heads = l->micro_batch * a / t;
        f->attention = lmf_plan_gemm_time(c, d, sq, hd, sq, heads * cp) +
                       lmf_plan_gemm_time(c, d, sq, sq, hd, heads * cp);
        f->attention_bwd = 2.0 * f->attention;
        f->attention_flops = 4.0 * l->micro_batch * sq * seq * h / t;
    }
    double hidden_drop = drop ? LMF_PLAN_HIDDEN_DROPOUTS : 0.0;
    f->elementwise = M * (LMF_PLAN_ELEM_REPLICATED * e * h * r + hidden_drop * h * r +
                          LMF_PLAN_ELEM_SPLIT * e * h / t) / mem_bw;
    f->elementwise_bwd = M * (LMF_PLAN_ELEM_REPLICATED_BWD * e * h * r +
                              hidden_drop * (2.0 * e + 1.0) * h * r +
                              LMF_PLAN_ELEM_SPLIT_BWD * e * h / t) / mem_bw;
    double score_bytes = e * LMF_PLAN_SOFTMAX_PASSES + (drop ? e * LMF_PLAN_DROPOUT_PASSES + 1.0 : 0.0);
    double score_bytes_bwd = e * LMF_PLAN_SOFTMAX_PASSES_BWD +
                             (drop ? e * LMF_PLAN_DROPOUT_PASSES_BWD + 1.0 : 0.0);
    /* a fused attention keeps the scores on chip: no pass over them in memory */
    double score_passes = f->flash ? 0.0 : M * (a / t) * seq / mem_bw;
    f->softmax = score_bytes * score_passes;
    f->softmax_bwd = score_bytes_bwd * score_passes;
    f->total = f->linears + f->attention + f->elementwise + f->softmax;
}

void lmf_plan_generic_micro_batch(const lmf_plan_setup *s, lmf_plan_micro *out) {
    const lmf_cluster *c = s->cluster;
    const lmf_plan_layout *l = s->layout;
    const lmf_gpt_config *cfg = &s->job->model;
    layer_forward f;
    generic_layer_forward(s, &f);
    double M = (double)l->micro_batch * s->job->seq / lmf_plan_cp(l);
    double Vp = ceil((double)lmf_config_padded_vocab(cfg) / l->tp);
    memset(out, 0, sizeof *out);
    out->attention_core = f.attention + f.softmax;
    /* the backward runs two products per forward product; its memory-bound kernels move what
     * each kernel's gradient reads and writes */
    double bwd = 2.0 * f.linears + f.attention_bwd + f.elementwise_bwd + f.softmax_bwd;
    double rec = 0.0, f_rec = 0.0;
    if (l->recompute == LMF_RECOMPUTE_FULL) {
        rec = f.total;
        f_rec = f.linear_flops + f.attention_flops;
    } else if (l->recompute == LMF_RECOMPUTE_SELECTIVE && !f.flash) {
        /* (a fused attention keeps no scores: selective recomputation has nothing to redo) */
        rec = f.attention + f.softmax;
        f_rec = f.attention_flops;
    }
    double layer = f.total + bwd + rec;
    /* output layer (tied embedding) and loss, on the last stage */
    double t_out = 3.0 * lmf_plan_gemm_time(c, l->dtype, M, cfg->n_embd, Vp, 1) +
                   M * 4.0 * Vp * LMF_PLAN_LOGIT_PASSES / c->memory_bandwidth;
    double lps = lmf_plan_stage_layers(cfg, l->pp);
    /* when pp does not divide the layers, the last stage is one of the lighter ones, floor
     * (n_layer / pp): it also holds the output layer (the Llama 3 paper's balancing, Sec.
     * 3.3.2, one layer off the first and the last stage); the fullest stage's ceil sets the
     * pace unless the last one's layers and output layer take longer */
    double first = lps * layer, last = floor((double)cfg->n_layer / l->pp) * layer + t_out;
    out->compute = l->pp == 1 ? first + t_out : fmax(first, last);
    out->compute_layers = first;
    out->backward = lps * (bwd + rec) + (l->pp == 1 ? 2.0 * t_out / 3.0 : 0.0);
    out->recompute_flops = (double)cfg->n_layer * f_rec / l->pp;
}

double lmf_plan_generic_optimizer(const lmf_plan_setup *s, double params) {
    const lmf_plan_layout *l = s->layout;
    double owned = params / (l->zero >= 1 ? lmf_plan_grad_ranks(l) : 1);
    return owned * LMF_PLAN_ADAM_BYTES / s->cluster->memory_bandwidth;
}

double lmf_plan_generic_zero3_gathers(const lmf_plan_setup *s, int micro_batches,
                                      double weight_bytes, const lmf_plan_dp_link *link) {
    /* the weights gathered for the forward and again for the backward, every micro-batch */
    return micro_batches * 2.0 *
           lmf_plan_gather_time(weight_bytes, lmf_plan_grad_ranks(s->layout), link->all_gather_bw,
                                link->latency);
}

void lmf_plan_cp_exchange(const lmf_plan_setup *s, double attention_core, double *total,
                          double *exposed) {
    const lmf_plan_layout *l = s->layout;
    const lmf_gpt_config *cfg = &s->job->model;
    int cp = lmf_plan_cp(l);
    *total = *exposed = 0.0;
    if (cp <= 1) return;
    double e = lmf_plan_act_elem_bytes(l->dtype);
    /* one K/V block: this device's s/cp tokens of K and V on its tp share of the heads */
    double block = (double)l->micro_batch * s->job->seq / cp * lmf_plan_kv_width(cfg) * e / l->tp;
    double bw, lat;
    lmf_plan_group_link(s->cluster, cp, l->tp, &bw, &lat);
    double step_fwd = block / bw + lat, blk_fwd = attention_core / cp;
    /* the backward sends K, V and their gradients, beside a block of twice the work */
    double step_bwd = 2.0 * block / bw + lat, blk_bwd = 2.0 * attention_core / cp;
    /* recomputation re-runs the attention forward (full: the layer, selective: its core) */
    double fwd_rings = l->recompute == LMF_RECOMPUTE_NONE ? 1.0 : 2.0;
    double steps = cp - 1;
    *total = steps * (fwd_rings * step_fwd + step_bwd);
    *exposed = steps * (fwd_rings * fmax(0.0, step_fwd - blk_fwd) + fmax(0.0, step_bwd - blk_bwd));
}

void lmf_plan_step_time(const lmf_plan_setup *s, int micro_batches, lmf_plan_time *out,
                        double *recompute_flops_per_device) {
    const lmf_cluster *c = s->cluster;
    const lmf_plan_layout *l = s->layout;
    const lmf_gpt_config *cfg = &s->job->model;
    const lmf_plan_device *dev = s->device;
    double h = cfg->n_embd, M = (double)l->micro_batch * s->job->seq / lmf_plan_cp(l);
    double e = lmf_plan_act_elem_bytes(l->dtype);
    double lps = lmf_plan_stage_layers(cfg, l->pp);
    int v = lmf_plan_virtual_stages(l);
    int m = micro_batches;
    memset(out, 0, sizeof *out);

    lmf_plan_micro mb;
    dev->micro_batch(s, &mb);
    double compute_mb = mb.compute, bwd_mb = mb.backward;

    /* tensor parallelism: 2 all-reduces (or reduce-scatter + all-gather) of the b*s*h
     * activations in the forward, 2 in the backward, 2 more when the forward is recomputed */
    double tp_mb = 0.0;
    if (l->tp > 1) {
        double bw, lat;
        lmf_plan_group_link(c, l->tp, 1, &bw, &lat);
        double n_ar = 4.0 + (l->recompute == LMF_RECOMPUTE_FULL ? 2.0 : 0.0);
        tp_mb = lps * n_ar * lmf_plan_allreduce_time(M * h * e, l->tp, bw, lat);
    }
    /* pipeline: each stage sends its output forward and its input gradient backward, once per
     * model chunk (v chunks per rank in the interleaved schedule). With tensor parallelism each
     * of the t ranks sends 1/t of the boundary activation (split already under sequence
     * parallelism; otherwise Megatron-LM's scatter/gather, Narayanan et al. 2021, Sec. 4.1,
     * which all-gathers the parts inside the receiving node) */
    double pp_mb = 0.0, pp_steady = 0.0;
    if (l->pp > 1) {
        double bw, lat;
        p2p_link(c, l->tp * lmf_plan_grad_ranks(l), l->pp, &bw, &lat);
        double boundary = M * h * e, send = boundary / l->tp / bw + lat;
        if (l->tp > 1 && !l->sequence_parallel) {
            double tbw, tlat;
            lmf_plan_group_link(c, l->tp, 1, &tbw, &tlat);
            send += lmf_plan_gather_time(boundary, l->tp, tbw, tlat);
        }
        pp_mb = 2.0 * v * send;
        /* In the steady state a send and the opposite receive run at once over the full-duplex
         * links (Megatron-LM pairs them: send_forward_recv_backward, and one combined exchange
         * per forward-backward pair when interleaved), so what lies on a stage's own time line
         * is the sends it makes: 2v per micro-batch in the middle of the pipeline, 2v - 1 at
         * either end (the model's first chunk sends no gradient back, its last no activation
         * on). The slowest stage sets the pace: the last, holding the classifier, or a fullest
         * stage of layers. */
        double ends = (2.0 * v - 1.0) * send, middle = (l->pp > 2 ? 2.0 * v : 2.0 * v - 1.0) * send;
        pp_steady = fmax(mb.compute_layers + middle, compute_mb + ends) - compute_mb;
    }
    /* context parallelism: ring attention's K/V exchange in every layer */
    double cp_total = 0.0, cp_exposed = 0.0;
    lmf_plan_cp_exchange(s, mb.attention_core, &cp_total, &cp_exposed);
    double cp_mb = lps * cp_exposed;
    out->compute = m * compute_mb;
    out->tp_comm = m * tp_mb;
    out->pp_comm = m * pp_steady;
    out->cp_comm = m * cp_mb;
    out->cp_comm_total = m * lps * cp_total;
    /* the schedule's fill and drain in slots, from its simulation (lmf_plan_schedule_prepare):
     * 1F1B and GPipe (pp - 1), interleaved over v chunks (pp - 1)/v (Narayanan et al. 2021,
     * Sec. 2.2.2), ZB-H1 less. The fill and drain pass through every stage but the slowest
     * once, so their slots are those of the stages holding only layers; the steady state runs
     * at the slowest stage's pace (the last, with the classifier) */
    double fill_slot = fmin(mb.compute_layers, compute_mb) + tp_mb + pp_mb + cp_mb;
    LMF_ASSERT(s->pipe.ready);
    out->bubble = s->pipe.bubble_slots * fill_slot;
    out->bubble_fraction = s->pipe.idle_fraction;

    /* data parallelism over the parameters of the fuller stage */
    double P = fmax(lmf_plan_stage_params(cfg, l->tp, l->pp, LMF_PLAN_STAGE_FIRST),
                    lmf_plan_stage_params(cfg, l->tp, l->pp,
                                          l->pp > 1 ? LMF_PLAN_STAGE_LAST : LMF_PLAN_STAGE_FIRST));
    double bw_p, bg_p, bo_p;
    lmf_plan_param_bytes(l->dtype, &bw_p, &bg_p, &bo_p);
    double Sg = P * bg_p, Sw = P * bw_p;
    double dp_hideable = 0.0, dp_exposed_fixed = 0.0, z3 = 0.0, window = 0.0;
    /* gradients are reduced (and ZeRO shards) over the dp x cp ranks that hold the same
     * weights: context parallelism splits the data, not the model */
    int nd = lmf_plan_grad_ranks(l);
    if (nd > 1) {
        double bw, lat;
        lmf_plan_group_link(c, nd, l->tp, &bw, &lat);
        /* inside one node, reduce-scatter and all-gather run at their own measured rates when
         * the cluster gives them (the all-reduce's link bandwidth otherwise) */
        int in_node = (double)l->tp * nd <= c->devices_per_node || c->nodes <= 1;
        double bw_rs = in_node && c->intra_rs_bandwidth > 0 ? c->intra_rs_bandwidth * c->comm_efficiency : bw;
        double bw_ag = in_node && c->intra_ag_bandwidth > 0 ? c->intra_ag_bandwidth * c->comm_efficiency : bw;
        lmf_plan_dp_link link = {.all_gather_bw = bw_ag, .latency = lat, .in_node = in_node};
        switch (l->zero) {
        case 0: /* all-reduce once, hideable behind the last micro-batch's backward */
            dp_hideable = lmf_plan_allreduce_time(Sg, nd, bw, lat);
            window = bwd_mb;
            break;
        case 1: /* reduce-scatter of gradients, all-gather of updated weights after the step */
            dp_hideable = lmf_plan_gather_time(Sg, nd, bw_rs, lat);
            dp_exposed_fixed = lmf_plan_gather_time(Sw, nd, bw_ag, lat);
            window = bwd_mb;
            break;
        case 2: /* sharded gradients: reduce-scatter after every micro-batch */
            dp_hideable = m * lmf_plan_gather_time(Sg, nd, bw_rs, lat);
            dp_exposed_fixed = lmf_plan_gather_time(Sw, nd, bw_ag, lat);
            window = m * bwd_mb;
            break;
        default: /* ZeRO-3: weights gathered for the forward and again for the backward */
            dp_hideable = m * lmf_plan_gather_time(Sg, nd, bw_rs, lat);
            z3 = dev->zero3_gathers(s, m, Sw, &link);
            window = m * bwd_mb;
            break;
        }
        if (l->pp > 1) window = 0.0; /* reduction after the pipeline flush (Megatron-LM) */
    }
    /* Overlapped communication shares the network: ZeRO-3 gathers hide behind the whole
     * forward and backward, the gradient reduction behind its window of the backward, and
     * together they hide behind no more than the larger of the two windows. */
    double C = m * compute_mb;
    double w_z3 = z3 > 0.0 ? c->overlap_zero3 * C : 0.0;
    double w_dp = c->overlap_dp * window;
    double hidden_all = fmin(z3 + dp_hideable, fmax(w_z3, w_dp));
    double hidden_z3 = fmin(z3, fmin(w_z3, hidden_all));
    double hidden_dp = fmin(dp_hideable, fmin(w_dp, hidden_all - hidden_z3));
    out->dp_comm_total = dp_hideable + dp_exposed_fixed;
    out->dp_comm = dp_hideable - hidden_dp + dp_exposed_fixed;
    out->zero3_gather_total = z3;
    out->zero3_gather = z3 - hidden_z3;

    out->optimizer = dev->optimizer(s, P);
    out->matmul = m * mb.matmul;
    out->attention = m * mb.attention;
    out->elementwise = m * mb.elementwise;
    out->classifier = m * mb.classifier;

    out->step = out->compute + out->tp_comm + out->pp_comm + out->cp_comm + out->bubble +
                out->dp_comm + out->zero3_gather + out->optimizer;
    /* FLOPs of recomputation per device per step, averaged over the pipeline's stages */
    *recompute_flops_per_device = m * mb.recompute_flops;
}

/* Planner model of an lmforge run on a calibrated device (a cluster file with a "kernels"
 * object): time from the measured rates of lmforge's own kernels, memory from lmforge's own
 * accounting (trainer, data-parallel engine, checkpoint snapshot, the bare process). */
#include "plan/plan_model.h"

#include <limits.h>
#include <math.h>
#include <string.h>

#include "lmforge/model.h"
#include "lmforge/threads.h"

/* bytes per value (per parameter for AdamW and sumsq) each element-wise rate counts */
const double lmf_plan_ew_bytes[LMF_PLAN_EW_COUNT] = {
    8.0,  /* layernorm_forward: read x, write out */
    16.0, /* residual_layernorm_forward: read a, b; write res, out */
    16.0, /* layernorm_backward: read dout, x; read and write dinp */
    8.0,  /* gelu_forward: read, write */
    12.0, /* gelu_bias_backward: read inp, dout; write dinp */
    4.0,  /* zero: write */
    12.0, /* encoder_forward: read wte and wpe rows, write out */
    20.0, /* encoder_backward: read dout; read and write dwte, dwpe rows */
    32.0, /* adamw: read param, grad, m, v; write param, grad (zeroed), m, v */
    4.0,  /* sumsq: read */
};

const char *lmf_plan_ew_name(lmf_plan_ew e) {
    static const char *const names[LMF_PLAN_EW_COUNT] = {
        "layernorm_forward", "residual_layernorm_forward", "layernorm_backward", "gelu_forward",
        "gelu_bias_backward", "zero", "encoder_forward", "encoder_backward", "adamw", "sumsq"};
    return (int)e >= 0 && e < LMF_PLAN_EW_COUNT ? names[e] : "?";
}

double lmf_plan_curve_at(const lmf_plan_rate_curve *cv, double x, int backward) {
    const double *y = backward ? cv->bwd : cv->fwd;
    if (cv->n <= 0) return 0.0;
    int last = cv->n - 1;
    if (x <= cv->x[0]) return y[0];
    if (x >= cv->x[last]) return y[last];
    int i = 0;
    while (i + 1 < last && x >= cv->x[i + 1]) i++;
    double f = (log2(x) - log2(cv->x[i])) / (log2(cv->x[i + 1]) - log2(cv->x[i]));
    return y[i] + f * (y[i + 1] - y[i]);
}

int lmf_plan_is_local(const lmf_cluster *c, const lmf_plan_layout *l) {
    return c->kernels.matmul.n > 0 && l->dtype == LMF_PLAN_FP32 && l->tp == 1 && l->pp == 1;
}

/* seconds for `values` values (or parameters) of element-wise kernel e */
static double ew_time(const lmf_plan_kernel_rates *r, lmf_plan_ew e, double values) {
    return values * lmf_plan_ew_bytes[e] / r->bandwidth[e];
}

void lmf_plan_local_micro(const lmf_cluster *c, const lmf_plan_job *job, const lmf_plan_layout *l,
                          lmf_plan_local_parts *p) {
    const lmf_plan_kernel_rates *r = &c->kernels;
    const lmf_gpt_config *m = &job->model;
    double b = l->micro_batch, s = job->seq, C = m->n_embd, L = m->n_layer;
    double V = m->vocab_size, N = b * s, E = N * C;
    double f_mm = 24.0 * N * C * C;        /* one layer's forward products */
    double w_att = b * C * s * (s + 1.0);  /* attention work unit (calibrate_kernels) */
    double mm_f = lmf_plan_curve_at(&r->matmul, C, 0), mm_b = lmf_plan_curve_at(&r->matmul, C, 1);
    double at_f = lmf_plan_curve_at(&r->attention, s, 0), at_b = lmf_plan_curve_at(&r->attention, s, 1);
    memset(p, 0, sizeof *p);

    /* forward (lmf_gpt_forward): encoder; per layer the four products, attention, two fused
     * residual + LayerNorm passes (the first layer's ln1 is a plain LayerNorm; the last
     * layer's second pass is the final LayerNorm) */
    double mm_fwd = L * f_mm / mm_f, att_fwd = L * 2.0 * w_att / at_f;
    double ew_fwd = ew_time(r, LMF_PLAN_EW_ENCODER_FWD, E) +
                    (L > 0 ? ew_time(r, LMF_PLAN_EW_LAYERNORM_FWD, E) : 0.0) +
                    2.0 * L * ew_time(r, LMF_PLAN_EW_RESIDUAL_LN_FWD, E);
    /* classifier + loss, forward and backward in one kernel, over the real vocabulary */
    p->classifier = 6.0 * N * C * V / lmf_plan_curve_at(&r->classifier, C, 0);

    /* backward (lmf_gpt_backward): final LayerNorm; per layer the products' backward,
     * attention backward, GELU + bias, two LayerNorms, 10 values of width C zeroed per token
     * (d4a 4, dqkv 3, dbtc 3 times); encoder */
    double mm_bwd = L * 2.0 * f_mm / mm_b, att_bwd = L * 5.0 * w_att / at_b;
    double ew_bwd = ew_time(r, LMF_PLAN_EW_ZERO, E) + ew_time(r, LMF_PLAN_EW_LAYERNORM_BWD, E) +
                    L * (ew_time(r, LMF_PLAN_EW_ZERO, 10.0 * E) +
                         ew_time(r, LMF_PLAN_EW_GELU_BIAS_BWD, 4.0 * E) +
                         2.0 * ew_time(r, LMF_PLAN_EW_LAYERNORM_BWD, E)) +
                    ew_time(r, LMF_PLAN_EW_ENCODER_BWD, E);
    /* recomputation inside the backward: selective re-applies GELU to the MLP input; full
     * re-runs each layer's forward up to the GELU (LayerNorm, 3 of the 4 products, attention,
     * residual + LayerNorm) */
    double mm_rec = 0.0, att_rec = 0.0, ew_rec = 0.0;
    if (l->recompute == LMF_PLAN_RECOMPUTE_SELECTIVE) {
        ew_rec = L * ew_time(r, LMF_PLAN_EW_GELU_FWD, 4.0 * E);
    } else if (l->recompute == LMF_PLAN_RECOMPUTE_FULL) {
        mm_rec = L * (16.0 / 24.0) * f_mm / mm_f;
        att_rec = L * 2.0 * w_att / at_f;
        ew_rec = L * (ew_time(r, LMF_PLAN_EW_LAYERNORM_FWD, E) +
                      ew_time(r, LMF_PLAN_EW_RESIDUAL_LN_FWD, E));
        p->recompute_flops = L * (16.0 * N * C * C + 2.0 * w_att);
    }
    p->matmul = mm_fwd + mm_bwd + mm_rec;
    p->attention = att_fwd + att_bwd + att_rec;
    p->elementwise = ew_fwd + ew_bwd + ew_rec;
    p->total = p->matmul + p->attention + p->elementwise + p->classifier;
    /* the part after the classifier, behind which gradient reductions could hide */
    p->backward = mm_bwd + att_bwd + ew_bwd + mm_rec + att_rec + ew_rec;
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

double lmf_plan_local_block_gathers(const lmf_cluster *c, const lmf_gpt_config *m, int dp,
                                    int micro_steps, double bytes_per_param, double lat) {
    double C = m->n_embd;
    double blk0 = ((double)lmf_config_padded_vocab(m) * C + (double)m->n_positions * C) *
                  bytes_per_param;
    double layer = (12.0 * C * C + 13.0 * C) * bytes_per_param, last = 2.0 * C * bytes_per_param;
    double eff = c->comm_efficiency;
    double layers = m->n_layer > 0 ? 2.0 * m->n_layer - 1.0 : 0.0;
    return lmf_plan_gather_time(blk0, dp, ag_bandwidth(c, blk0) * eff, lat) +
           micro_steps * (layers * lmf_plan_gather_time(layer, dp, ag_bandwidth(c, layer) * eff, lat) +
                          lmf_plan_gather_time(last, dp, ag_bandwidth(c, last) * eff, lat));
}

/* Engine buffers (src/dist/ddp.c): stages 2/3 stage gradients in buckets grouping blocks
 * L+1 .. 1 until each reaches LMF_DDP_DEFAULT_BUCKET_BYTES, block 0 alone: one slot of block
 * 0's size, and up to two of the largest other bucket's; stage 3 gathers weights into one
 * buffer of block 0's size and two of the largest layer's. In floats. */
static double engine_buffer_floats(const lmf_gpt_config *m, int zero) {
    double C = m->n_embd, L = m->n_layer;
    double blk0 = (double)lmf_config_padded_vocab(m) * C + (double)m->n_positions * C;
    double layer = 12.0 * C * C + 13.0 * C, last = 2.0 * C;
    double target = (double)LMF_DDP_DEFAULT_BUCKET_BYTES / sizeof(float), buf = 0.0;
    if (zero >= 2) {
        /* group blocks L+1, L, ..., 1 in backward order, as build_buckets does */
        double size = 0.0, cap = 0.0;
        int buckets = 0, open = 0;
        for (int b = (int)L + 1; b >= 1; b--) {
            double len = b == (int)L + 1 ? last : layer;
            if (!(open && size < target && size + len <= (double)INT_MAX)) {
                buckets++;
                size = 0.0;
                open = 1;
            }
            size += len;
            cap = fmax(cap, size);
        }
        int slots = buckets < 2 ? buckets : 2;
        buf += blk0 + slots * cap;
    }
    if (zero == 3) buf += blk0 + 2.0 * (L > 0 ? layer : last);
    return buf;
}

double lmf_plan_local_activation_bytes(const lmf_cluster *c, const lmf_plan_job *job,
                                       const lmf_plan_layout *l) {
    const lmf_kernels *k = lmf_kernels_by_name(c->kernels.table);
    if (!k) k = lmf_kernels_fast();
    /* the fast table's attention scratch follows the thread count of the run */
    int saved = lmf_threads_get();
    if (c->kernels.threads > 0) lmf_threads_set(c->kernels.threads);
    size_t floats = lmf_gpt_activation_floats(&job->model, k, l->micro_batch, job->seq, 2,
                                              (lmf_recompute)l->recompute);
    lmf_threads_set(saved);
    return 4.0 * (double)floats;
}

void lmf_plan_local_memory(const lmf_cluster *c, const lmf_plan_job *job, const lmf_plan_layout *l,
                           lmf_plan_memory *out) {
    const lmf_gpt_config *m = &job->model;
    double P = lmf_plan_stage_params(m, 1, 1, 0); /* the layout's floats, padded vocabulary */
    double shard = ceil(P / l->dp);
    memset(out, 0, sizeof *out);
    /* ZeRO-3 keeps a shard of the weights and, at the end of the run, gathers them whole
     * again to write the model (lmf_trainer_materialize) */
    out->weights = 4.0 * (l->zero >= 3 ? shard + P : P);
    out->grads = 4.0 * (l->zero >= 2 ? shard : P);
    out->optimizer = 8.0 * (l->zero >= 1 ? shard : P);
    out->activations = lmf_plan_local_activation_bytes(c, job, l);
    /* engine buffers, and the batch's ids and targets held by the trainer and the model */
    out->buffers = 4.0 * engine_buffer_floats(m, l->zero) +
                   4.0 * 4.0 * (double)l->micro_batch * job->seq;
    /* checkpoint snapshot: this rank's range of weights, m and v (src/train/ckpt_writer.c) */
    out->checkpoint = 12.0 * shard;
    out->process = c->kernels.process_bytes;
    out->total = out->weights + out->grads + out->optimizer + out->activations + out->buffers +
                 out->checkpoint + out->process;
    out->capacity = c->device_memory - c->memory_reserved;
    out->margin = out->capacity - out->total;
    out->fits = out->margin >= 0.0;
    out->stage = 0;
}

double lmf_plan_local_optimizer(const lmf_cluster *c, const lmf_plan_job *job,
                                const lmf_plan_layout *l) {
    const lmf_plan_kernel_rates *r = &c->kernels;
    double P = lmf_plan_stage_params(&job->model, 1, 1, 0);
    double own = l->zero >= 1 ? ceil(P / l->dp) : P;
    /* the norm (sumsq) and one AdamW pass over the owned range; stage 1 also zeroes the
     * gradients of the other ranks' ranges */
    double t = ew_time(r, LMF_PLAN_EW_SUMSQ, own) + ew_time(r, LMF_PLAN_EW_ADAMW, own);
    if (l->zero == 1) t += ew_time(r, LMF_PLAN_EW_ZERO, P - own);
    return t;
}

double lmf_plan_local_staging(const lmf_cluster *c, const lmf_plan_job *job,
                              const lmf_plan_layout *l) {
    if (l->zero < 2) return 0.0;
    const lmf_plan_kernel_rates *r = &c->kernels;
    double P = lmf_plan_stage_params(&job->model, 1, 1, 0);
    /* every micro-batch: the staging slots zeroed (P values), this rank's part of the
     * reduced sum added into its gradient shard (read 2, write 1 per value) */
    return ew_time(r, LMF_PLAN_EW_ZERO, P) +
           ceil(P / l->dp) * 12.0 / r->bandwidth[LMF_PLAN_EW_GELU_BIAS_BWD];
}

void lmf_plan_local_explain(FILE *f, const lmf_cluster *c, const lmf_plan_job *job,
                            const lmf_plan_layout *l) {
    const lmf_plan_kernel_rates *r = &c->kernels;
    const lmf_gpt_config *m = &job->model;
    double C = m->n_embd, s = job->seq;
    fprintf(f, "calibrated device: lmforge's '%s' kernels, %d thread%s per rank (run with --threads %d)\n",
            r->table, r->threads, r->threads == 1 ? "" : "s", r->threads);
    fprintf(f, "  matmul          per layer 24*N*C^2 FLOPs forward at %.1f GFLOP/s, 48*N*C^2 backward at %.1f\n"
               "                  (the layer's four products measured at width C = %g, %d rows; N = b*s)\n",
            lmf_plan_curve_at(&r->matmul, C, 0) / 1e9, lmf_plan_curve_at(&r->matmul, C, 1) / 1e9, C,
            r->rows);
    fprintf(f, "  attention       2*b*C*s*(s+1) FLOPs forward at %.1f GFLOP/s, 5*b*C*s*(s+1) backward at %.1f\n"
               "                  (flash attention: only the log-sum-exp is kept; measured at s = %g)\n",
            lmf_plan_curve_at(&r->attention, s, 0) / 1e9, lmf_plan_curve_at(&r->attention, s, 1) / 1e9, s);
    fprintf(f, "  classifier      6*N*C*V FLOPs (tied logits, softmax, both gradients) at %.1f GFLOP/s\n",
            lmf_plan_curve_at(&r->classifier, C, 0) / 1e9);
    fprintf(f, "  element-wise    bytes per value at the measured rate of each kernel:\n");
    for (int e = 0; e < LMF_PLAN_EW_COUNT; e++)
        fprintf(f, "                    %-26s %4.0f B at %6.2f GB/s\n", lmf_plan_ew_name((lmf_plan_ew)e),
                lmf_plan_ew_bytes[e], r->bandwidth[e] / 1e9);
    fprintf(f, "                  forward: encoder, 1 LayerNorm + 2L residual+LayerNorm over N*C values;\n"
               "                  backward: per layer 10*N*C zeroed, GELU+bias over 4*N*C, 2 LayerNorms; encoder;\n"
               "                  selective recomputation adds GELU over 4*N*C, full a forward up to the GELU\n");
    fprintf(f, "  optimizer       sumsq and AdamW over the owned parameters (ZeRO-1: the rest of the\n"
               "                  gradients zeroed); ZeRO-2/3 stage and add gradient buckets every micro-batch\n");
    fprintf(f, "  memory          weights, gradients, AdamW m and v as the data-parallel engine holds them\n"
               "                  (ZeRO-3 also the whole weights gathered at the end), activations =\n"
               "                  lmf_gpt_activation_floats (recompute %s: %.1f MiB), engine buckets, the\n"
               "                  checkpoint snapshot 12 B x params/ranks, and the bare process %.1f MiB:\n"
               "                  the peak resident memory of each rank\n",
            lmf_plan_recompute_name(l->recompute), lmf_plan_local_activation_bytes(c, job, l) / 1048576.0,
            r->process_bytes / 1048576.0);
}

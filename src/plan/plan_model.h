/* Planner internals: the memory and time formulas (documented in docs/planner.md), shared by
 * evaluation, search, reports and tests. */
#ifndef LMF_PLAN_MODEL_H
#define LMF_PLAN_MODEL_H

#include "lmforge/ddp.h"
#include "lmforge/plan.h"

/* Target size of a gradient bucket: lmforge's data-parallel engine default (32 MiB). */
#define LMF_PLAN_BUCKET_BYTES ((double)LMF_DDP_DEFAULT_BUCKET_BYTES)
/* Largest change of the global batch the planner accepts to make whole micro-batches. */
#define LMF_PLAN_BATCH_TOLERANCE 0.05
/* Bytes the AdamW update reads and writes per owned parameter (param, grad, m, v read;
 * param, m, v written; plus zeroing the gradient), all fp32. */
#define LMF_PLAN_ADAM_BYTES 32.0
/* Passes over the attention matrix per forward in memory-bound kernels (write scores, read
 * and write the softmax, read it for the product with V). */
#define LMF_PLAN_SOFTMAX_PASSES 4.0
/* Activation values of width h per token moved by memory-bound kernels in one layer's
 * forward outside the tensor-parallel regions (2 LayerNorms: 2 each, 2 residual adds: 3
 * each) and inside them (GELU: 4h read, 4h written). */
#define LMF_PLAN_ELEM_REPLICATED 10.0
#define LMF_PLAN_ELEM_SPLIT 8.0
/* Passes over the fp32 logits in the loss (forward max/sum/exp, backward gradient). */
#define LMF_PLAN_LOGIT_PASSES 5.0

/* ---- memory (memory.c) ---- */

/* Bytes per parameter of weights, gradients and optimizer state (AdamW m, v and, in mixed
 * precision, fp32 master weights), before any ZeRO sharding. fp32: 4, 4, 8. bf16/fp8: 2, 2, 12. */
void lmf_plan_param_bytes(lmf_plan_dtype d, double *w, double *g, double *opt);
/* Bytes per activation value: 4 for fp32, 2 otherwise. */
double lmf_plan_act_elem_bytes(lmf_plan_dtype d);
/* Per-device weights, grads and optimizer bytes for P parameters held by a model-parallel
 * rank, sharded across dp ranks by ZeRO stage: 1 shards the optimizer state, 2 also the
 * gradients, 3 also the weights. */
void lmf_plan_state_bytes(lmf_plan_dtype d, int zero, int dp, double P, double *w, double *g,
                          double *opt);

/* Shape of one transformer layer on one device. */
typedef struct lmf_plan_act_shape {
    double s, b, h, a;   /* sequence, micro-batch, width, heads */
    int t;               /* tensor-parallel size */
    int sp;              /* sequence parallel */
    double e;            /* bytes per activation value */
    int dropout;         /* count dropout masks and the attention-dropout output */
} lmf_plan_act_shape;

/* Bytes one layer keeps from its forward until its backward for one micro-batch
 * (Korthikanti et al. 2022, Sec. 4, generalised to e bytes per value):
 *   none:      s*b*h*[(4e + 2m)*r + 12e/t] + a*s*s*b*(e or 2e+1 with dropout)/t
 *   selective: the attention-matrix term dropped
 *   full:      s*b*h*e*r (the layer input)
 * with r = 1/t under sequence parallelism else 1, m = 1 with dropout else 0. */
double lmf_plan_act_layer_bytes(const lmf_plan_act_shape *sh, lmf_plan_recompute rc);

/* Parameters held by one tensor-parallel rank of pipeline stage `stage` (0 first, 1 last; for
 * pp == 1 the whole model). Layer: (12h^2 + 7h)/tp + 6h (LayerNorms and output biases
 * replicated); embeddings: ceil(Vp/tp)*h + n_positions*h on the first stage; the last stage
 * holds the final LayerNorm and, when pp > 1, a copy of the tied output embedding. */
double lmf_plan_stage_params(const lmf_gpt_config *m, int tp, int pp, int stage);
/* Largest single block of parameters a ZeRO-3 rank gathers at once (per tp rank). */
double lmf_plan_layer_params(const lmf_gpt_config *m, int tp);

/* Memory of one stage given the layout; micro_batches = m per pipeline per step. */
void lmf_plan_stage_memory(const lmf_cluster *c, const lmf_plan_job *job, const lmf_plan_layout *l,
                           int micro_batches, int stage, lmf_plan_memory *out);

/* ---- time (time.c) ---- */

/* Equivalent square size 3MNK/(MN+NK+MK) of an M x K by K x N product. */
double lmf_plan_equiv_size(double M, double K, double N);
/* Achievable fraction of peak for a product of equivalent size n in dtype d. Uses the
 * dtype's curve, else the bf16, fp32, fp8 curve in that order, else 0.5. */
double lmf_plan_gemm_eff(const lmf_cluster *c, lmf_plan_dtype d, double n);
/* Seconds for `count` products of M x K by K x N: count * 2MNK / (peak * eff(n)). */
double lmf_plan_gemm_time(const lmf_cluster *c, lmf_plan_dtype d, double M, double K, double N,
                          double count);
/* Ring all-reduce of S bytes over n ranks: 2(n-1)/n * S / bw + 2(n-1) * lat. */
double lmf_plan_allreduce_time(double S, int n, double bw, double lat);
/* Ring reduce-scatter or all-gather of S bytes in total: (n-1)/n * S / bw + (n-1) * lat. */
double lmf_plan_gather_time(double S, int n, double bw, double lat);
/* Bubble of the 1F1B schedule relative to the ideal time: (pp - 1) / m. */
double lmf_plan_bubble_fraction(int pp, int m);
/* Bandwidth (bytes/s, after comm_efficiency) and latency a ring over n ranks spaced `stride`
 * ranks apart gets, all such rings running at once: inside one node when stride*n <= devices
 * per node, else limited by the node's network shared by the devices_per_node/k rings with
 * k members on each node. */
void lmf_plan_group_link(const lmf_cluster *c, int n, int stride, double *bw, double *lat);

/* Time of one optimizer step, and the FLOPs per device spent on recomputation in it. */
void lmf_plan_step_time(const lmf_cluster *c, const lmf_plan_job *job, const lmf_plan_layout *l,
                        int micro_batches, lmf_plan_time *out, double *recompute_flops_per_device);

/* ---- calibrated devices: lmforge's own kernels and memory (local.c) ---- */

/* Bytes per value (per parameter for adamw, sumsq) behind each element-wise rate. */
extern const double lmf_plan_ew_bytes[LMF_PLAN_EW_COUNT];
/* 1 when the cluster carries measured kernel rates and the layout is an lmforge run on them
 * (fp32, tp = pp = 1): the local models below replace the generic ones. */
int lmf_plan_is_local(const lmf_cluster *c, const lmf_plan_layout *l);

/* Seconds of one micro-batch's forward and backward on one rank, by kind of kernel. */
typedef struct lmf_plan_local_parts {
    double matmul, attention, elementwise, classifier, total;
    double backward;          /* the part after the classifier (gradient reductions' window) */
    double recompute_flops;   /* FLOPs re-run by full recomputation */
} lmf_plan_local_parts;
void lmf_plan_local_micro(const lmf_cluster *c, const lmf_plan_job *job, const lmf_plan_layout *l,
                          lmf_plan_local_parts *p);
/* Seconds of the optimizer step (norm, AdamW, zeroing) on one rank. */
double lmf_plan_local_optimizer(const lmf_cluster *c, const lmf_plan_job *job,
                                const lmf_plan_layout *l);
/* printf to the calibration log and flush it; nothing when log is NULL */
void lmf_plan_say(FILE *log, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Seconds of one optimizer step's ZeRO-3 weight gathers over dp ranks on a calibrated device,
 * as lmforge's engine makes them (src/dist/ddp_params.c): block 0 (embeddings) once per step,
 * since it keeps its own buffer until the update; per micro-step the L layers and the final
 * LayerNorm in the forward and the layers the backward cannot reuse from the two other
 * buffers (L - 1). Each is an all-gather of its bytes at the bus bandwidth measured for its
 * size (log-linear between the 4 MiB and 64 MiB measurements, flat outside). */
double lmf_plan_local_block_gathers(const lmf_cluster *c, const lmf_gpt_config *m, int dp,
                                    int micro_steps, double bytes_per_param, double lat);
/* Seconds per micro-batch of ZeRO-2/3 gradient staging (zeroing and adding buckets). */
double lmf_plan_local_staging(const lmf_cluster *c, const lmf_plan_job *job,
                              const lmf_plan_layout *l);
/* Bytes of lmforge's activation block for the layout (lmf_gpt_activation_floats x 4). */
double lmf_plan_local_activation_bytes(const lmf_cluster *c, const lmf_plan_job *job,
                                       const lmf_plan_layout *l);
/* Peak resident memory of one rank, by item. */
void lmf_plan_local_memory(const lmf_cluster *c, const lmf_plan_job *job, const lmf_plan_layout *l,
                           lmf_plan_memory *out);
/* The local time and memory model with this layout's rates (for --explain). */
void lmf_plan_local_explain(FILE *f, const lmf_cluster *c, const lmf_plan_job *job,
                            const lmf_plan_layout *l);

#endif

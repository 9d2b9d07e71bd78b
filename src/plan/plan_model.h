/* Planner internals: the memory and time formulas (documented in docs/planner.md), the device
 * models that use them, shared by evaluation, search, reports and tests. */
#ifndef LMF_PLAN_MODEL_H
#define LMF_PLAN_MODEL_H

#include <stdio.h>

#include "lmforge/ddp.h"
#include "lmforge/model.h"
#include "lmforge/plan.h"

/* Target size of a gradient bucket: lmforge's data-parallel engine default (25 MiB). */
#define LMF_PLAN_BUCKET_BYTES ((double)LMF_DDP_DEFAULT_BUCKET_BYTES)
/* Largest change of the global batch the planner accepts to make whole micro-batches. */
#define LMF_PLAN_BATCH_TOLERANCE 0.05
/* Bytes the AdamW update reads and writes per owned parameter (param, grad, m, v read;
 * param, m, v written; plus zeroing the gradient), all fp32. */
#define LMF_PLAN_ADAM_BYTES 32.0
/* Generic device: passes over the attention matrix per forward in memory-bound kernels: the
 * fused scale, mask and softmax reads the scores and writes the probabilities (Narayanan et al.
 * 2021, Sec. 4.2). Writing the scores and reading the probabilities belong to the two products,
 * whose time already counts their operands and results. */
#define LMF_PLAN_SOFTMAX_PASSES 2.0
/* ... and with dropout (--dropout), the attention dropout reads the probabilities and writes
 * the dropped ones, plus a one-byte mask per score (counted as bytes, below). */
#define LMF_PLAN_DROPOUT_PASSES 2.0
/* Generic device: activation values of width h per token moved by memory-bound kernels in one
 * layer's forward outside the tensor-parallel regions (2 LayerNorms: 2 each, 2 residual adds:
 * 3 each) and inside them (GELU: 4h read, 4h written). */
#define LMF_PLAN_ELEM_REPLICATED 10.0
#define LMF_PLAN_ELEM_SPLIT 8.0
/* ... and in the layer's backward, each kernel's own reads and writes: a LayerNorm's backward
 * reads its input and the output gradient and writes the input gradient (3 each); a residual
 * add's gradient passes to both inputs unchanged, and the branch's gradient is added into the
 * residual stream's (2 reads, 1 write: 3 each); GELU's backward reads its input and the output
 * gradient and writes the input gradient (4h x 3). */
#define LMF_PLAN_ELEM_REPLICATED_BWD 12.0
/* With dropout (--dropout) each residual add's branch passes a dropout first: forward a one-byte
 * mask written per value, backward the gradient read and written and the mask read. */
#define LMF_PLAN_HIDDEN_DROPOUTS 2.0
#define LMF_PLAN_ELEM_SPLIT_BWD 12.0
/* ... over the attention scores in the backward: the softmax's gradient reads the
 * probabilities and their gradient and writes the scores' gradient (3 passes); with dropout,
 * the dropout's gradient reads the gradient and the one-byte mask and writes the gradient
 * (2 passes and the mask). */
#define LMF_PLAN_SOFTMAX_PASSES_BWD 3.0
#define LMF_PLAN_DROPOUT_PASSES_BWD 2.0
/* Generic device: passes over the fp32 logits in the loss (forward max/sum/exp, backward). */
#define LMF_PLAN_LOGIT_PASSES 5.0

/* ---- names and small helpers (common.c: calls no other file of the planner) ---- */

/* Bytes per value (per parameter for adamw, sumsq) behind each element-wise rate. */
extern const double lmf_plan_ew_bytes[LMF_PLAN_EW_COUNT];
/* The measured element-wise kernel that prices a kernel call of the model's step work, or
 * LMF_PLAN_EW_COUNT for the calls priced by a FLOP rate (products, attention, classifier). */
lmf_plan_ew lmf_plan_ew_of_op(lmf_op op);
/* printf to the calibration log and flush it; nothing when log is NULL */
void lmf_plan_say(FILE *log, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Context-parallel size, virtual pipeline stages per rank (0 in a layout means 1), and the
 * ranks that hold the same weights and reduce their gradients: dp x cp. */
static inline int lmf_plan_cp(const lmf_plan_layout *l) { return l->cp > 1 ? l->cp : 1; }
static inline int lmf_plan_virtual_stages(const lmf_plan_layout *l) {
    return l->virtual_stages > 1 ? l->virtual_stages : 1;
}
static inline int lmf_plan_grad_ranks(const lmf_plan_layout *l) { return l->dp * lmf_plan_cp(l); }

/* ---- one evaluation and its device model (device.c) ---- */

/* The model's parameter blocks as lmforge's engine holds them (from lmf_layout_build and
 * lmf_layout_buckets), in floats; filled for the devices that need them (calibrated). */
/* Most pipeline stages the calibrated device model prices (more: the generic model). */
#define LMF_PLAN_LOCAL_MAX_STAGES 64

typedef struct lmf_plan_blocks {
    double total;           /* the layout of one rank's slices (vocabulary padded; the whole
                               model without tensor parallelism) */
    double whole;           /* the whole model's layout */
    double embeddings;      /* block 0: wte and wpe */
    double layer;           /* the largest transformer layer block */
    double final_norm;      /* block L+1: the final LayerNorm */
    double largest_bucket;  /* the largest gradient bucket other than block 0's */
    int buckets;            /* gradient buckets, block 0's included */
    /* a pipeline on a calibrated device (pp > 1): the layers of each stage as lmforge train
     * splits them, and the stage whose slices hold the most floats (the figures above) */
    int stage_layers[LMF_PLAN_LOCAL_MAX_STAGES];
    int largest_stage;
} lmf_plan_blocks;

typedef struct lmf_plan_device lmf_plan_device;

/* The layout's pipeline schedule as one evaluation prices it (schedule.c), from the
 * schedule's own simulation (lmforge/pipeline.h). A slot is one micro-batch's compute on a
 * stage that holds only layers, with its tensor- and pipeline-parallel communication. */
typedef struct lmf_plan_pipe {
    int ready;               /* 1 once lmf_plan_schedule_prepare has filled it */
    double bubble_slots;     /* a stage's idle time per step, in slots */
    double idle_fraction;    /* bubble_slots / (m + bubble_slots) */
    double inflight[2];      /* micro-batches' worth of a stage's layers whose activations it
                                holds at its peak: [LMF_PLAN_STAGE_FIRST], [LMF_PLAN_STAGE_LAST] */
} lmf_plan_pipe;

/* What one evaluation plans: the cluster, the job, the layout, the device model chosen for
 * them (once, by lmf_plan_setup_init) and what that model prepared. */
typedef struct lmf_plan_setup {
    const lmf_cluster *cluster;
    const lmf_plan_job *job;
    const lmf_plan_layout *layout;
    const lmf_plan_device *device;
    lmf_plan_blocks blocks;
    lmf_plan_pipe pipe;
} lmf_plan_setup;

/* One micro-batch's forward and backward on one device of the slowest pipeline stage. */
typedef struct lmf_plan_micro {
    double compute;          /* seconds: forward, backward, recomputation, gradient staging */
    double compute_layers;   /* seconds of a stage that holds only layers (no classifier): what
                                each stage but the slowest adds to a pipeline's fill and drain */
    double backward;         /* seconds of the part behind which gradient reductions can hide */
    double recompute_flops;  /* FLOPs re-run by recomputation, per device (stage average) */
    double attention_core;   /* seconds of one layer's attention core forward (products and
                                softmax), which ring attention's K/V exchange can hide behind */
    double matmul, attention, elementwise, classifier; /* seconds by kind (itemizing devices) */
} lmf_plan_micro;

/* The data-parallel group's link for the gathers of ZeRO-3: bandwidth of all-gathers
 * (after comm_efficiency), latency, and whether the group lies inside one node. */
typedef struct lmf_plan_dp_link {
    double all_gather_bw, latency;
    int in_node;
} lmf_plan_dp_link;

/* A device model: how one kind of device spends memory and time on a layout. */
struct lmf_plan_device {
    lmf_plan_device_kind kind;
    /* what the model needs beyond the layout (NULL: nothing); fails like lmf_layout_build */
    lmf_status (*prepare)(lmf_plan_setup *s);
    /* bytes per device on pipeline stage `stage` with micro_batches per pipeline per step */
    void (*memory)(const lmf_plan_setup *s, int micro_batches, lmf_plan_stage stage,
                   lmf_plan_memory *out);
    /* one micro-batch's compute */
    void (*micro_batch)(const lmf_plan_setup *s, lmf_plan_micro *out);
    /* seconds of the optimizer step over `params` parameters of the fuller stage */
    double (*optimizer)(const lmf_plan_setup *s, double params);
    /* seconds of one step's ZeRO-3 weight gathers, weight_bytes = the stage's weights */
    double (*zero3_gathers)(const lmf_plan_setup *s, int micro_batches, double weight_bytes,
                            const lmf_plan_dp_link *link);
    /* the device's own assumptions for --explain (NULL: none beyond the generic list) */
    void (*explain)(FILE *f, const lmf_cluster *c, const lmf_plan_job *job,
                    const lmf_plan_layout *l);
    /* 1: results itemize compute by kernel kind, memory by checkpoint snapshot and process */
    int itemizes_kernels;
};

/* The device model for a layout on a cluster: calibrated when the cluster carries measured
 * kernel rates and the layout is an lmforge run on them (fp32, tp = pp = 1), else generic. */
const lmf_plan_device *lmf_plan_device_select(const lmf_cluster *c, const lmf_plan_layout *l);
/* The device model of a kind (for reports of a result). */
const lmf_plan_device *lmf_plan_device_of_kind(lmf_plan_device_kind kind);
/* Select the device model and let it prepare; fails (LMF_ERR_NOMEM, LMF_ERR_ARG) when it cannot
 * describe the model. */
lmf_status lmf_plan_setup_init(lmf_plan_setup *s, const lmf_cluster *c, const lmf_plan_job *job,
                               const lmf_plan_layout *l);

/* ---- memory formulas and the generic device's memory (memory.c) ---- */

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
    int flash;           /* fused attention: no score matrix kept, only its log-sum-exp */
    double inner;        /* values per token a layer keeps inside the tensor-parallel regions,
                            before the split over t (lmf_plan_layer_inner_width; 0: GPT-2's 12h) */
} lmf_plan_act_shape;

/* Bytes one layer keeps from its forward until its backward for one micro-batch
 * (Korthikanti et al. 2022, Sec. 4, generalised to e bytes per value):
 *   none:      s*b*h*[(4e + 2m)*r + 12e/t] + a*s*s*b*(e or 2e+1 with dropout)/t
 *   selective: the attention-matrix term dropped
 *   full:      s*b*h*e*r (the layer input)
 * A fused (flash) attention keeps no attention matrix in any mode, only the fp32 log-sum-exp
 * of each query row and head, a*s*b*4/t bytes (with dropout, the mask is drawn again from the
 * generator's state in the backward). 
 * with r = 1/t under sequence parallelism else 1, m = 1 with dropout else 0. The 12 values
 * inside the tensor-parallel regions are GPT-2's; a shape with `inner` set uses inner/h (for
 * the Llama family (2h + 2kv + 3ffn)/h: Q and the attention output's input, K and V with the
 * key/value heads' width kv, gate, up and the SwiGLU output). */
double lmf_plan_act_layer_bytes(const lmf_plan_act_shape *sh, lmf_recompute rc);

/* Parameters of one transformer layer held by one tensor-parallel rank: the ones tensor
 * parallelism splits over tp and the ones it replicates (lmf_layer_params_split). */
double lmf_plan_layer_params(const lmf_gpt_config *m, int tp);
/* layers on the fullest pipeline stage: ceil(n_layer / pp) (stages of ceil or floor layers when
 * pp does not divide the layers; the fullest sets the pipeline's pace and the memory) */
double lmf_plan_stage_layers(const lmf_gpt_config *m, int pp);
/* Whether the interleaved schedule's v chunks per rank fit pp stages: the fullest stage's
 * ceil(n_layer / pp) layers split into v equal chunks, and pp * v chunks have a layer each. */
int lmf_plan_chunks_fit(const lmf_gpt_config *m, int pp, int v);
/* Parameters held by one tensor-parallel rank of pipeline stage `stage` (for pp == 1 the whole
 * model): its layers; embeddings ceil(Vp/tp)*h + n_positions*h on the first stage; the final
 * LayerNorm and, when pp > 1, a copy of the tied output embedding on the last. */
double lmf_plan_stage_params(const lmf_gpt_config *m, int tp, int pp, lmf_plan_stage stage);

/* The generic device's memory of one stage. */
void lmf_plan_generic_memory(const lmf_plan_setup *s, int micro_batches, lmf_plan_stage stage,
                             lmf_plan_memory *out);

/* ---- time formulas, the generic device's compute and the step (time.c) ---- */

/* Equivalent square size 3MNK/(MN+NK+MK) of an M x K by K x N product. */
double lmf_plan_equiv_size(double M, double K, double N);
/* Achievable fraction of peak for a product of equivalent size n in dtype d. Uses the
 * dtype's curve, else the bf16, fp16, fp32, fp8 curve in that order, else 0.5. */
double lmf_plan_gemm_eff(const lmf_cluster *c, lmf_plan_dtype d, double n);
/* Seconds for `count` products of M x K by K x N: count * 2MNK / (peak * eff(n)). */
double lmf_plan_gemm_time(const lmf_cluster *c, lmf_plan_dtype d, double M, double K, double N,
                          double count);
/* Seconds of a fused kernel of `flops` FLOPs that moves `bytes` bytes in device memory (fused
 * attention), priced as the product of the same FLOPs per byte: the square product of size
 * n = 1.5 e flops / bytes at its efficiency eff(n). */
double lmf_plan_fused_time(const lmf_cluster *c, lmf_plan_dtype d, double flops, double bytes);
/* Ring all-reduce of S bytes over n ranks: 2(n-1)/n * S / bw + 2(n-1) * lat. */
double lmf_plan_allreduce_time(double S, int n, double bw, double lat);
/* Ring reduce-scatter or all-gather of S bytes in total: (n-1)/n * S / bw + (n-1) * lat. */
double lmf_plan_gather_time(double S, int n, double bw, double lat);
/* Bandwidth (bytes/s, after comm_efficiency) and latency a ring over n ranks spaced `stride`
 * ranks apart gets, all such rings running at once: inside one node when stride*n <= devices
 * per node, else limited by the node's network shared by the devices_per_node/k rings with
 * k members on each node. */
void lmf_plan_group_link(const lmf_cluster *c, int n, int stride, double *bw, double *lat);

/* The generic device: a micro-batch from GEMM efficiency and memory bandwidth (the layer's
 * products from lmf_layer_linears, split by their tensor-parallel kind), the optimizer at
 * memory bandwidth, ZeRO-3 as two all-gathers of the weights per micro-batch. */
void lmf_plan_generic_micro_batch(const lmf_plan_setup *s, lmf_plan_micro *out);
double lmf_plan_generic_optimizer(const lmf_plan_setup *s, double params);
double lmf_plan_generic_zero3_gathers(const lmf_plan_setup *s, int micro_batches,
                                      double weight_bytes, const lmf_plan_dp_link *link);

/* Values per token one layer keeps inside the tensor-parallel regions, from the model's own
 * list of products (lmf_layer_linears): the output of every column-parallel product and the
 * input of every row-parallel one. GPT-2: QKV 3h, MLP up 4h, the attention output's input h
 * and the MLP down's 4h = 12h; Llama: q h, k and v kv each (n_kv_head heads), gate and up ffn
 * each, o's input h, down's input ffn. */
double lmf_plan_layer_inner_width(const lmf_gpt_config *cfg);
/* Width of one token's K and V together, from the model's description: the outputs of the
 * products that feed attention (the column-parallel ones before the first row-parallel one:
 * GPT-2's fused QKV, Llama's q, k, v) less the query width n_embd; 2 x n_kv_head x head size
 * for grouped-query attention. */
double lmf_plan_kv_width(const lmf_gpt_config *cfg);
/* Context parallelism's K/V exchange (ring attention, Liu et al. 2023) in one layer for one
 * micro-batch, given the seconds of the layer's attention core forward on this device: cp - 1
 * ring steps in the forward, each sending one block of b*(s/cp)*kv_width*e/tp bytes to the next
 * rank of the cp group, and cp - 1 in the backward with K, V and their gradients (twice the
 * bytes); the forward ring runs again when recomputation re-runs attention. Each step overlaps
 * the block of attention computed meanwhile (1/cp of the core forward, twice that backward).
 * total: every step's transfer; exposed: what exceeds the compute beside it. */
void lmf_plan_cp_exchange(const lmf_plan_setup *s, double attention_core, double *total,
                          double *exposed);

/* Time of one optimizer step with the setup's device model, and the FLOPs per device spent
 * on recomputation in it. */
void lmf_plan_step_time(const lmf_plan_setup *s, int micro_batches, lmf_plan_time *out,
                        double *recompute_flops_per_device);

/* ---- the pipeline schedule (schedule.c) ---- */

/* Simulations already made, for a search that evaluates many layouts of the same pipeline
 * shape: a direct-mapped table keyed by the shape and the costs. */
#define LMF_PLAN_PIPE_CACHE 1024
typedef struct lmf_plan_pipe_entry {
    int used;
    lmf_pp_shape shape;
    lmf_pp_costs costs;
    double makespan;
    int peak_first, peak_last;
} lmf_plan_pipe_entry;
typedef struct lmf_plan_pipe_cache {
    lmf_plan_pipe_entry e[LMF_PLAN_PIPE_CACHE];
} lmf_plan_pipe_cache;

/* Price the layout's schedule for m micro-batches per step into s->pipe: simulate it
 * (lmf_pp_simulate, no message time: the sends are counted apart) with the stages of a slot
 * each; min(m, lmf_pp_steady_micro_batches) micro-batches simulated, the rest adding busy
 * slots only. A slot is split 1 : 2 into forward and backward for GPipe, 1F1B and the
 * interleaved schedule, whose bubble in slots does not depend on the split (checked by
 * tests/test_pipeline_schedule.c); ZB-H1 splits it as the device model splits a layers-only
 * stage's micro-batch, its weight half priced as the forward (each linear's weight-gradient
 * product has the forward product's FLOPs). Without pipelining: no bubble, one micro-batch
 * held. cache (NULL: none) keeps simulations for the next call. Fails like lmf_pp_simulate. */
lmf_status lmf_plan_schedule_prepare(lmf_plan_setup *s, int m, lmf_plan_pipe_cache *cache);
/* lmf_plan_evaluate with a cache of schedule simulations (NULL: none). */
lmf_status lmf_plan_evaluate_cached(const lmf_cluster *c, const lmf_plan_job *job,
                                    const lmf_plan_layout *l, lmf_plan_pipe_cache *cache,
                                    lmf_plan_result *res);
/* The layout's schedule: interleaved when it has virtual stages, else its own. */
lmf_pp_schedule lmf_plan_schedule_of(const lmf_plan_layout *l);

/* ---- the calibrated device: an lmforge run on measured kernel rates (local.c) ---- */

/* The model's blocks and gradient buckets (lmf_layout_build, lmf_layout_buckets). */
lmf_status lmf_plan_local_prepare(lmf_plan_setup *s);
/* Peak resident memory of one rank, by item. */
void lmf_plan_local_memory(const lmf_plan_setup *s, int micro_batches, lmf_plan_stage stage,
                           lmf_plan_memory *out);
/* One micro-batch: every kernel call of lmf_gpt_step_work at its measured rate, plus the
 * ZeRO-2/3 gradient staging. */
void lmf_plan_local_micro_batch(const lmf_plan_setup *s, lmf_plan_micro *out);
/* Seconds of the optimizer step (norm, AdamW, zeroing) on one rank. */
double lmf_plan_local_optimizer(const lmf_plan_setup *s, double params);
/* Seconds of one optimizer step's ZeRO-3 weight gathers over dp ranks, as lmforge's engine
 * makes them (src/parallel/ddp_params.c): block 0 (embeddings) once per step, since it keeps
 * its own buffer until the update; per micro-step the L layers and the final LayerNorm in the
 * forward and the layers the backward cannot reuse from the two other buffers (L - 1). Each
 * is an all-gather of its bytes at the bus bandwidth measured for its size (log-linear between
 * the 4 MiB and 64 MiB measurements, flat outside). Without both measurements, or across
 * nodes, the generic device's gathers. */
double lmf_plan_local_zero3_gathers(const lmf_plan_setup *s, int micro_batches,
                                    double weight_bytes, const lmf_plan_dp_link *link);
/* Bytes of lmforge's activation block for the layout (lmf_gpt_activation_floats x 4, a
 * trainer's reservation: LMF_RESERVE_TRAIN_HOOKED). */
double lmf_plan_local_activation_bytes(const lmf_cluster *c, const lmf_plan_job *job,
                                       const lmf_plan_layout *l);
/* The same for a pipeline stage of job->model.n_layer layers, with the classifier's scratch
 * only when it holds the classifier. */
double lmf_plan_local_stage_activation_bytes(const lmf_cluster *c, const lmf_plan_job *job,
                                             const lmf_plan_layout *l, int classifier);
/* The calibrated model with this layout's rates and kernel calls (for --explain). */
void lmf_plan_local_explain(FILE *f, const lmf_cluster *c, const lmf_plan_job *job,
                            const lmf_plan_layout *l);

#endif

/* Capacity planner: memory per device and time per step of training a GPT on a described cluster. */
#ifndef LMFORGE_PLAN_H
#define LMFORGE_PLAN_H

#include <stdint.h>
#include <stdio.h>
#include "lmforge/comm.h"
#include "lmforge/config.h"
#include "lmforge/kernels.h"
#include "lmforge/model.h"
#include "lmforge/pipeline.h"
#include "lmforge/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Number format of the training step. fp32: everything in 4-byte floats (lmforge's CPU
 * trainer). bf16: 16-bit mixed precision (bf16, or fp16 with loss scaling on devices without
 * bf16) with fp32 master weights. fp8: as bf16, but matrix multiplications run at the fp8 peak. */
typedef enum lmf_plan_dtype {
    LMF_PLAN_DTYPE_UNKNOWN = -1, /* lmf_plan_dtype_parse: not a dtype's name */
    LMF_PLAN_FP32 = 0,
    LMF_PLAN_BF16 = 1,
    LMF_PLAN_FP8 = 2,
    LMF_PLAN_FP16 = 3, /* fp16 mixed precision with loss scaling (V100-class devices) */
    LMF_PLAN_NDTYPES = 4
} lmf_plan_dtype;

#define LMF_PLAN_MAX_EFF 16

/* Achievable fraction of a device's peak for a matrix multiplication, as a table over the
 * equivalent square size n = 3MNK / (MN + NK + MK) (a square n x n x n product has size n);
 * interpolated linearly in log2(n), proportional to n below the first point, flat above
 * the last. */
typedef struct lmf_plan_eff_curve {
    int n;
    double size[LMF_PLAN_MAX_EFF];
    double frac[LMF_PLAN_MAX_EFF];
} lmf_plan_eff_curve;

/* Element-wise kernels of lmforge's kernel table whose speed --calibrate measures, each as
 * bytes/s over a fixed count of bytes per element (lmf_plan_ew_bytes in src/plan/common.c,
 * documented in docs/planner.md). The calibrated device prices the model's element-wise
 * kernel calls (lmf_gpt_step_work) with them. */
typedef enum lmf_plan_ew {
    LMF_PLAN_EW_LAYERNORM_FWD = 0,  /* layernorm_forward */
    LMF_PLAN_EW_RESIDUAL_LN_FWD,    /* residual_layernorm_forward */
    LMF_PLAN_EW_LAYERNORM_BWD,      /* layernorm_backward */
    LMF_PLAN_EW_GELU_FWD,           /* gelu_forward */
    LMF_PLAN_EW_GELU_BIAS_BWD,      /* gelu_bias_backward */
    LMF_PLAN_EW_ZERO,               /* memset of gradient buffers */
    LMF_PLAN_EW_ENCODER_FWD,        /* encoder_forward */
    LMF_PLAN_EW_ENCODER_BWD,        /* encoder_backward */
    LMF_PLAN_EW_ADAMW,              /* adamw, per parameter */
    LMF_PLAN_EW_SUMSQ,              /* sumsq, per parameter */
    LMF_PLAN_EW_COUNT
} lmf_plan_ew;

/* A measured rate as a function of one size: points x[i] (increasing) with a forward and a
 * backward rate each (FLOP/s); interpolated linearly in log2(x), flat outside the points. */
typedef enum lmf_plan_pass { LMF_PLAN_FORWARD = 0, LMF_PLAN_BACKWARD } lmf_plan_pass;
typedef struct lmf_plan_rate_curve {
    int n;
    double x[LMF_PLAN_MAX_EFF];
    double fwd[LMF_PLAN_MAX_EFF];
    double bwd[LMF_PLAN_MAX_EFF];
} lmf_plan_rate_curve;

/* Rates of lmforge's own kernel table on one device (a rank with its threads), written by
 * --calibrate (the "kernels" object of a cluster file). With them (n of matmul > 0) the
 * planner models an fp32 lmforge run on that device from its kernels instead of from GEMM
 * efficiency alone; descriptions without them keep the generic model. */
typedef struct lmf_plan_kernel_rates {
    char table[16];               /* kernel table measured: "fast" or "ref" */
    int threads;                  /* threads per rank during the measurement */
    int rows;                     /* rows (B*T) of the matmul measurement */
    lmf_plan_rate_curve matmul;   /* x = width C: the layer's products (lmf_layer_linears) on
                                     `rows` rows, FLOPs 2*rows*in*out each forward, twice that
                                     backward */
    lmf_plan_rate_curve attention;/* x = T: causal attention, head size 64, FLOPs
                                     lmf_attention_flops (forward, backward) */
    lmf_plan_rate_curve classifier; /* x = C: tied classifier and loss, forward with backward,
                                       FLOPs those of lmf_gpt_step_work's classifier (6*N*C*V;
                                       fwd holds the rate; bwd unused) */
    double bandwidth[LMF_PLAN_EW_COUNT]; /* bytes/s per lmf_plan_ew */
    double process_bytes;         /* resident memory of a process with the libraries, threads
                                     and communicator running but no model allocated */
} lmf_plan_kernel_rates;

/* A cluster description (presets/clusters/NAME.json; format in docs/planner.md). All rates
 * in SI units: bytes, bytes/s, FLOP/s, seconds. */
typedef struct lmf_cluster {
    char name[64];
    char device[96];              /* e.g. "NVIDIA A100 80GB SXM" */
    int nodes;
    int devices_per_node;
    int cpu_cores_per_node;       /* informational; 0 when unknown */
    double device_memory;         /* bytes of memory per device */
    double memory_reserved;       /* bytes per device the runtime keeps (context, fragmentation) */
    double peak_flops[LMF_PLAN_NDTYPES]; /* dense peak FLOP/s per device; 0: not supported */
    lmf_plan_eff_curve gemm_eff[LMF_PLAN_NDTYPES]; /* n == 0: not given (see lmf_plan_gemm_eff) */
    double memory_bandwidth;      /* bytes/s of device memory */
    double intra_bandwidth;       /* bytes/s per device and direction between devices of a node */
    double intra_latency;         /* seconds per message step inside a node */
    /* measured bus bandwidths of reduce-scatter and all-gather inside a node, when they differ
     * from the all-reduce's (a calibrated machine: MPI libraries pick other algorithms for
     * them); 0: intra_bandwidth */
    double intra_rs_bandwidth, intra_ag_bandwidth;
    /* the all-gather's bus bandwidth on 4 MiB (a transformer layer's weights: in cache on a
     * CPU); with intra_ag_bandwidth (64 MiB) it prices a calibrated device's ZeRO-3 gathers
     * block by block, log-linear in the block size between the two; 0: not measured */
    double intra_ag_small_bandwidth;
    double inter_bandwidth;       /* bytes/s per node and direction, all its network cards */
    double inter_latency;         /* seconds per message step between nodes */
    double comm_efficiency;       /* fraction of link bandwidth a collective achieves */
    double overlap_dp;            /* fraction of the backward that can hide gradient reduction */
    double overlap_zero3;         /* fraction of forward+backward that can hide ZeRO-3 gathers */
    double price_per_device_hour; /* 0 when unknown */
    lmf_plan_kernel_rates kernels;/* lmforge's kernels on this device; matmul.n == 0: none */
} lmf_cluster;

/* Read a cluster description. Fails with LMF_ERR_IO (cannot read) or LMF_ERR_FORMAT (bad
 * JSON, a missing or out-of-range field), naming the file and the field. */
lmf_status lmf_cluster_load_json(const char *path, lmf_cluster *out);
/* Write a cluster description in the same format (sources: optional strings, may be NULL). */
lmf_status lmf_cluster_save_json(const char *path, const lmf_cluster *c, const char *description,
                                 const char *const *sources, int n_sources);
/* Load a named preset (presets/clusters/NAME.json), or a file when name_or_path ends in
 * ".json" or contains '/'. Unknown names fail with LMF_ERR_ARG listing the presets. */
lmf_status lmf_cluster_resolve(const char *name_or_path, lmf_cluster *out);
/* Directory holding the cluster presets into dir[cap]: $LMF_PRESETS_DIR/clusters, the
 * installed share/lmforge/presets/clusters next to the program, or the source tree's. Fails
 * with LMF_ERR_IO when none exists (or its path does not fit in cap). */
lmf_status lmf_cluster_presets_dir(char *dir, size_t cap);
/* Check a description for consistency (positive sizes and rates, increasing curve sizes). */
lmf_status lmf_cluster_validate(const lmf_cluster *c);
int lmf_cluster_devices(const lmf_cluster *c);

/* One parallel layout. Devices used = dp * tp * pp * cp, ranks ordered tp fastest, then cp,
 * then dp, then pp (Megatron-LM's order). */
typedef struct lmf_plan_layout {
    int dp, tp, pp;
    int micro_batch;               /* sequences per micro-batch */
    int zero;                      /* ZeRO stage 0..3 (Rajbhandari et al. 2020) */
    lmf_recompute recompute;       /* activation recomputation (Korthikanti et al. 2022) */
    lmf_plan_dtype dtype;
    int sequence_parallel;         /* 1: sequence parallelism in the non-tensor-parallel regions */
    int virtual_stages;            /* model chunks per pipeline rank: 1 (or 0) plain 1F1B, more:
                                      the interleaved 1F1B schedule (Narayanan et al. 2021) */
    int cp;                        /* context parallelism: each sequence split over cp devices,
                                      ring attention exchanging K/V blocks (1 or 0: none) */
    lmf_pp_schedule schedule;      /* pipeline schedule (pp > 1): 1F1B unless named; with
                                      virtual_stages > 1 the interleaved one */
} lmf_plan_layout;

/* What to train. */
/* How the attention core runs on a generic device: the scores written to memory and a
 * separate softmax (Megatron-LM 2021), or a fused causal kernel that keeps them on chip and
 * skips the masked half (FlashAttention; Dao et al. 2022). */
typedef enum lmf_plan_attention {
    LMF_PLAN_ATTN_MATERIALIZED = 0,
    LMF_PLAN_ATTN_FLASH,
    LMF_PLAN_ATTN_UNKNOWN = -1
} lmf_plan_attention;
const char *lmf_plan_attention_name(lmf_plan_attention a);
lmf_plan_attention lmf_plan_attention_parse(const char *s); /* LMF_PLAN_ATTN_UNKNOWN if none */

typedef struct lmf_plan_job {
    char model_name[64];
    char model_source[512];        /* the model as the user named it (a preset, or a config.json
                                      path): the launch command passes it to lmforge train */
    lmf_gpt_config model;
    int seq;                       /* tokens per sequence, <= model.n_positions */
    double global_batch_tokens;    /* tokens per optimizer step (rounded to whole sequences) */
    double total_tokens;           /* tokens to train on */
    double price_per_device_hour;  /* overrides the cluster's when > 0 */
    int dropout;                   /* 1: count dropout masks in activations (Megatron-LM);
                                      lmforge itself trains without dropout */
    lmf_plan_attention attention;  /* generic devices; materialized by default */
} lmf_plan_job;

/* Layout fields a user fixed; -1 means free (search) or default (single plan), and so does
 * recompute_fixed = 0 for recompute. */
typedef struct lmf_plan_constraints {
    int dp, tp, pp, micro_batch, zero;
    int recompute_fixed;
    lmf_recompute recompute;
    int sequence_parallel;
    lmf_plan_dtype dtype;
    int virtual_stages;            /* -1 or 0 free; > 1: the interleaved schedule with that many
                                      chunks per rank */
    int schedule_fixed;            /* 1: only `schedule` */
    lmf_pp_schedule schedule;
    unsigned schedules;            /* else the search's menu, bit 1 << lmf_pp_schedule (the
                                      interleaved one with 2..8 chunks); 0: what `lmforge train`
                                      runs, 1F1B and ZB-H1 */
    int cp;                        /* -1 free: 1 (no context parallelism) */
    int allow_cross_node_tp;       /* 0: the search keeps tensor-parallel groups inside a node */
} lmf_plan_constraints;

/* Pipeline stage whose memory is reported: the first holds the embeddings and the most
 * micro-batches in flight, the last the final LayerNorm, the logits and the output embedding.
 * Without pipelining the one stage is both. */
typedef enum lmf_plan_stage { LMF_PLAN_STAGE_FIRST = 0, LMF_PLAN_STAGE_LAST = 1 } lmf_plan_stage;

typedef struct lmf_plan_memory {   /* bytes per device, on the fullest pipeline stage */
    double weights, grads, optimizer, activations, buffers;
    double checkpoint;             /* calibrated devices: the checkpoint snapshot (0 otherwise) */
    double process;                /* calibrated devices: the bare process (0 otherwise) */
    double total;
    double capacity;               /* device_memory - memory_reserved */
    double margin;                 /* capacity - total (negative: does not fit) */
    int fits;
    lmf_plan_stage stage;          /* the fuller stage */
} lmf_plan_memory;

typedef struct lmf_plan_time {     /* seconds per optimizer step */
    double compute;                /* matrix products and memory-bound kernels, all micro-batches */
    double tp_comm;                /* tensor-parallel all-reduces (not overlapped) */
    double pp_comm;                /* pipeline point-to-point sends (not overlapped) */
    double cp_comm;                /* exposed part of the context-parallel K/V exchange */
    double cp_comm_total;          /* whole K/V exchange (ring attention), all micro-batches */
    double bubble;                 /* the schedule's fill and drain, from its simulation
                                      (1F1B: pp-1 micro-batch slots; interleaved: (pp-1)/v) */
    double bubble_fraction;        /* a stage's idle share of the pipeline's time under the
                                      schedule: bubble / (m slots + bubble); 0 without pp */
    double dp_comm;                /* exposed part of the data-parallel gradient reduction */
    double dp_comm_total;          /* whole gradient reduction (+ ZeRO-1/2 parameter gather) */
    double zero3_gather;           /* exposed part of the ZeRO-3 parameter gathers */
    double zero3_gather_total;
    double optimizer;              /* AdamW update of the owned parameters */
    double step;
    /* calibrated devices: compute split by kind of kernel (0 otherwise), all micro-batches */
    double matmul, attention, elementwise, classifier;
} lmf_plan_time;

/* The model of a device the planner evaluated a layout with. generic: any accelerator or CPU
 * from its peak, GEMM efficiency curve and memory bandwidth. calibrated: a device with
 * measured rates of lmforge's own kernels (a cluster file's "kernels" object) running an
 * lmforge layout (fp32, tp = pp = 1); its results also itemize compute by kind of kernel
 * (lmf_plan_time.matmul ...) and memory by checkpoint snapshot and bare process. */
typedef enum lmf_plan_device_kind {
    LMF_PLAN_DEVICE_GENERIC = 0,
    LMF_PLAN_DEVICE_CALIBRATED
} lmf_plan_device_kind;

typedef struct lmf_plan_result {
    lmf_plan_layout layout;
    int devices;                   /* dp * tp * pp * cp */
    int micro_batches;             /* per pipeline per step */
    int64_t global_batch;          /* sequences per step actually used */
    int64_t requested_batch;       /* sequences per step asked for */
    int64_t params;                /* lmf_config_num_params */
    lmf_plan_memory mem;
    lmf_plan_time time;
    double flops_per_token;        /* lmf_config_train_flops_per_token (model FLOPs) */
    double tokens_per_step, tokens_per_s;
    double model_tflops_per_device;    /* model FLOPs only */
    double hardware_tflops_per_device; /* including recomputation */
    double mfu;                    /* model FLOP/s per device / peak of the dtype */
    double days, gpu_hours, cost;  /* cost 0 when no price is known */
    lmf_plan_device_kind device;   /* the device model that produced it */
} lmf_plan_result;

/* Fill a job with defaults: seq = n_positions, global batch 2^19 tokens (at least one
 * sequence), total tokens 20 x parameters (Hoffmann et al. 2022). */
void lmf_plan_job_defaults(lmf_plan_job *job, const char *model_name, const lmf_gpt_config *m);
/* All fields free, dtype bf16 when the device has a bf16 peak, else fp32. */
void lmf_plan_constraints_free(lmf_plan_constraints *k, const lmf_cluster *c);

/* Evaluate one layout. Impossible layouts (tp not dividing the heads, pp above the
 * layers, more devices than the cluster has, a batch that cannot be split, ZeRO-2/3 with
 * pipelining, a dtype the device lacks, ...) fail with LMF_ERR_ARG and a one-line message.
 * A layout that does not fit in memory is still evaluated (res->mem.fits == 0). */
lmf_status lmf_plan_evaluate(const lmf_cluster *c, const lmf_plan_job *job,
                             const lmf_plan_layout *l, lmf_plan_result *res);

/* A single plan from the user's constraints: free fields take defaults (tp = pp = 1,
 * micro-batch 1, ZeRO 0, no recomputation, sequence parallel when tp > 1, dp = the rest of
 * the cluster). dp * tp * pp must equal the cluster's devices. */
lmf_status lmf_plan_single(const lmf_cluster *c, const lmf_plan_job *job,
                           const lmf_plan_constraints *k, lmf_plan_result *res);

/* Enumerate the layouts allowed by the constraints that fit in memory, rank them by time to
 * train (then fewer devices, then less memory), keep the best max_best in best[]. The
 * search may use fewer devices than the cluster has and may change the global batch by up to
 * 5% to make it a whole number of micro-batches per replica. Fails with LMF_ERR_ARG when no
 * layout fits (message gives the least memory any layout needed). */
lmf_status lmf_plan_search(const lmf_cluster *c, const lmf_plan_job *job,
                           const lmf_plan_constraints *k, lmf_plan_result *best, int max_best,
                           int *n_best, int64_t *n_evaluated);

/* The command line that runs a result's layout: `mpirun -np N --npernode D lmforge train`
 * with the model, sequence, micro-batch, global batch, steps for the job's tokens, ZeRO stage,
 * recomputation and, where the layout has them, --tp, --pp, --cp, --schedule (interleaved
 * with --virtual-stages, gpipe, zb; 1F1B is the default) and --dtype (named as the engine will name them; docs/planner.md says which
 * it runs today). Truncated to cap bytes. */
void lmf_plan_command(char *buf, size_t cap, const lmf_cluster *c, const lmf_plan_job *job,
                      const lmf_plan_result *r);
/* The same under Slurm: `srun --nodes K --ntasks N --ntasks-per-node D --mpi=pmix lmforge
 * train ...` (K = N / D rounded up), as docs/distributed.md launches on a cluster. */
void lmf_plan_command_srun(char *buf, size_t cap, const lmf_cluster *c, const lmf_plan_job *job,
                           const lmf_plan_result *r);

/* A schedule's timeline for --explain-schedule: one row per stage, a column per time unit
 * (F = 1, B = 2, or ZB-H1's B = W = 1; a chunk of the interleaved schedule takes the same),
 * cells naming the action and its micro-batch (1-based; a, b, ... the model chunk), then each
 * stage's idle fraction and peak activations, and the closed form the bubble should match.
 * Fails like lmf_pp_simulate, and for schedules wider than 2,000 units. */
lmf_status lmf_plan_print_schedule(FILE *f, const lmf_pp_shape *sh);

/* Reports (text reports end with the command that runs the layout). */
void lmf_plan_print_text(FILE *f, const lmf_cluster *c, const lmf_plan_job *job,
                         const lmf_plan_result *r);
void lmf_plan_print_search(FILE *f, const lmf_cluster *c, const lmf_plan_job *job,
                           const lmf_plan_result *best, int n, int64_t n_evaluated);
/* One JSON object (with "alternatives" when n > 1); returns LMF_ERR_NOMEM on failure. */
lmf_status lmf_plan_print_json(FILE *f, const lmf_cluster *c, const lmf_plan_job *job,
                               const lmf_plan_result *r, int n);
/* Every assumption behind the numbers, with its formula and source. */
void lmf_plan_print_explain(FILE *f, const lmf_cluster *c, const lmf_plan_job *job,
                            const lmf_plan_layout *l);

/* Calibration: measure this machine as a cluster of one node whose devices are the ranks of
 * a local run, each given cores/ranks threads: the FMA peak (lmf_peak_gflops), cblas_sgemm
 * efficiency at square sizes 64 .. max_size, memory (triad) and copy bandwidth, lmforge's fast
 * kernel table (matmul, attention, classifier, element-wise kernels, AdamW: the "kernels"
 * object) and the resident memory of the bare process. With a
 * communicator of several ranks (lmforge started by mpirun) every rank measures at the same
 * time and the all-reduce bus bandwidth and latency come from lmf_comm_allreduce; without one
 * the link between ranks is estimated as half the copy bandwidth. Each rank gets its own
 * measurements (rank 0 writes them).
 * log (may be NULL) receives one line per measurement. */
typedef struct lmf_plan_calib_opts {
    int ranks;                     /* devices per node when comm is NULL or of size 1 */
    int threads;                   /* threads in all; 0: all online processors */
    double seconds_per_point;      /* time per measurement; 0: 0.2 s */
    int max_size;                  /* largest sgemm size; 0: 2048 */
    int no_kernels;                /* 1: skip lmforge's kernel table (no "kernels" object) */
} lmf_plan_calib_opts;
lmf_status lmf_plan_calibrate(const lmf_plan_calib_opts *o, lmf_comm *comm, lmf_cluster *out,
                              FILE *log);

/* Measure lmforge's kernel table k with the current thread count (set by the caller) into
 * r: about `seconds` per point, the best of up to 3 trials each. comm (may be NULL) makes the
 * ranks measure together (a barrier before each point). log (may be NULL) gets one line per
 * measurement. Fails with LMF_ERR_NOMEM or a communication failure. */
lmf_status lmf_plan_calibrate_kernels(const lmf_kernels *k, double seconds, lmf_comm *comm,
                                      lmf_plan_kernel_rates *r, FILE *log);
/* Rate of a curve at x for a pass: linear in log2(x) between points, flat outside (0 when
 * empty). */
double lmf_plan_curve_at(const lmf_plan_rate_curve *cv, double x, lmf_plan_pass pass);
/* Name of an element-wise kernel as written in cluster files ("layernorm_forward", ...). */
const char *lmf_plan_ew_name(lmf_plan_ew e);

/* Names. */
const char *lmf_plan_dtype_name(lmf_plan_dtype d);
/* Parse "fp32"/"bf16"/"fp16"/"fp8"; LMF_PLAN_DTYPE_UNKNOWN (-1) when the name is not one of
 * them. */
lmf_plan_dtype lmf_plan_dtype_parse(const char *s);
const char *lmf_plan_device_kind_name(lmf_plan_device_kind k);

#ifdef __cplusplus
}
#endif
#endif

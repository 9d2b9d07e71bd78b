/* The model (GPT-2 and Llama families): the model described once (layout, products, sizes, work), forward, backward,
 * KV-cached inference and sampling. */
#ifndef LMFORGE_MODEL_H
#define LMFORGE_MODEL_H

#include <stddef.h>
#include <stdint.h>
#include "lmforge/config.h"
#include "lmforge/kernels.h"
#include "lmforge/partition.h"
#include "lmforge/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ==== the model described once (src/model/describe.c, layout.c): pure functions of the
 * configuration, used by the trainer, the inference, the data-parallel engine, the planner and
 * its calibration. A test runs the model over a counting kernel table and checks that these
 * descriptions are what the forward and backward really do. ==== */

/* ---- Megatron-style tensor parallelism (docs/distributed.md): one model replica split over
 * the `size` ranks of a tensor-parallel group. Attention is split by heads (QKV by output
 * columns, the output projection by input rows), the feed-forward the same way (up column-,
 * down row-parallel), the token embedding and the classifier by vocabulary rows; norms and
 * row-parallel biases are replicated. With sequence_parallel the norms and the residual
 * stream are also split, by rows of the B x T positions. size 1 is the unsplit model. */
typedef struct lmf_tp_config {
    int size;               /* ranks in the tensor-parallel group (0 or 1: none) */
    int rank;               /* this rank's place in it, 0..size-1 */
    int sequence_parallel;  /* 1: split norms and the residual stream over the positions too */
} lmf_tp_config;

/* What one tensor-parallel rank computes. */
typedef struct lmf_tp_dims {
    int size, rank;
    int heads;          /* query heads of this rank: n_head / size */
    int kv_heads;       /* key/value heads it computes: n_kv_head / size, or 1 when the
                         * key/value heads are fewer than the ranks (each then shared by
                         * size / n_kv_head ranks) */
    int kv_head0;       /* its first key/value head (of the whole model's) */
    int kv_shared;      /* ranks computing the same key/value heads (1: split) */
    int width;          /* heads * head size */
    int kv_width;       /* kv_heads * head size (GPT-2: width) */
    int ffn;            /* feed-forward width: lmf_config_ffn / size */
    int vocab0;         /* first row of the padded vocabulary it holds */
    int vocab_rows;     /* padded vocabulary / size */
    int vocab_real;     /* of those rows, real tokens (< vocab_size); may be 0 */
    int sequence_parallel;
} lmf_tp_dims;
/* The split of configuration c over tp (NULL: none). LMF_ERR_ARG naming the value when heads,
 * key/value heads, the feed-forward width or the padded vocabulary do not divide by the size
 * (key/value heads may instead be a divisor of it). */
lmf_status lmf_tp_dims_get(const lmf_gpt_config *c, const lmf_tp_config *tp, lmf_tp_dims *d);

/* How a tensor's gradient is made whole over the tensor-parallel group before the optimizer
 * step: not at all (a split tensor: each rank owns its slice), averaged (a replicated tensor
 * whose gradient every rank computes from the same values: the mean keeps the copies equal
 * to the last bit), or summed (each rank's gradient is a partial sum: the norms and
 * row-parallel biases under sequence parallelism, key/value heads shared by several ranks). */
typedef enum lmf_tp_reduce { LMF_TP_REDUCE_NONE = 0, LMF_TP_REDUCE_MEAN, LMF_TP_REDUCE_SUM } lmf_tp_reduce;

/* One named tensor inside the contiguous parameter block. */
typedef struct lmf_tensor_info {
    char name[64];       /* Hugging Face name, e.g. "h.0.attn.c_attn.weight" (GPT-2),
                          * "model.layers.0.self_attn.q_proj.weight" (Llama) */
    int ndim;            /* 1 or 2 */
    int64_t shape[2];    /* Hugging Face (external) shape; wte is (vocab_size, n_embd) */
    int transposed;      /* 1: held internally as (shape[1], shape[0]), the (in, out) layout of
                          * the kernels, while Hugging Face stores (out, in) (Llama's
                          * nn.Linear weights); files transpose it */
    size_t offset;       /* first float in the block */
    size_t numel;        /* floats held internally (wte: padded_vocab * n_embd) */
    int decay;           /* 1: AdamW weight decay applies (2-D weights, embeddings included) */
    int block;           /* 0 embeddings (and Llama's lm_head), 1..n_layer transformer layers,
                          * n_layer+1 final norm */
    /* The slice of the whole tensor this block holds (tensor parallelism; the whole tensor
     * without it). The internal form is 2-D: (in, out) for a product's weight, (padded vocab,
     * n_embd) for an embedding, one row for a 1-D tensor. The slice is the rows
     * [row0, row0 + rows) of full_rows and, in each of `sections` equal column sections of
     * full_cols / sections columns, the columns [col0, col0 + cols) of the section (GPT-2's
     * c_attn has three: q, k and v). numel = rows * sections * cols. */
    int64_t row0, rows, full_rows, col0, cols, full_cols;
    int sections;
    lmf_tp_reduce tp_reduce;
    int tp_copies;       /* tensor-parallel ranks holding this same slice (1: split); a norm
                          * counts each copy once */
    int pp_copies;       /* pipeline stages holding this tensor: 2 for block 0 when the first
                          * and the last stage differ (the tied embedding), else 1 */
} lmf_tensor_info;

/* most layer ranges one layout holds: model chunks of one pipeline stage */
#define LMF_LAYOUT_MAX_RANGES 16

typedef struct lmf_param_layout {
    int n_tensors;
    lmf_tensor_info *tensors;
    size_t total;                 /* floats in the block */
    int n_blocks;                 /* n_layer + 2 */
    size_t *block_offset;         /* [n_blocks + 1]: block b spans [block_offset[b], block_offset[b+1]) */
    lmf_tp_dims tp;               /* the split this layout holds (size 1: the whole model) */
    /* Pipeline parallelism: the stage's layers, n_ranges ascending ranges
     * [range_l0[r], range_l0[r] + range_len[r]) (one for a plain stage and for the whole model,
     * [0, n_layer); V for a stage of the interleaved schedule, one per model chunk); `layers`
     * counts them all. Every block keeps its number and every tensor its name and index; a
     * block the stage does not hold has no floats (tensors of numel 0). The stage holding
     * layer 0 holds block 0 (the embeddings); the one holding the last layer holds block 0
     * (the classifier: tied wte, or lm_head) and n_layer+1. */
    int n_ranges;
    int range_l0[LMF_LAYOUT_MAX_RANGES], range_len[LMF_LAYOUT_MAX_RANGES];
    int layers;
} lmf_param_layout;

/* Views into a parameter (or gradient) block for one layer. GPT-2 uses the first twelve;
 * Llama ln1w (input_layernorm), ln2w (post_attention_layernorm) and the seven products,
 * each (in, out), the others NULL. */
typedef struct lmf_layer_view {
    float *ln1w, *ln1b, *qkvw, *qkvb, *attprojw, *attprojb;
    float *ln2w, *ln2b, *fcw, *fcb, *fcprojw, *fcprojb;
    float *qw, *kw, *vw, *ow, *gatew, *upw, *downw;
} lmf_layer_view;

lmf_status lmf_layout_build(const lmf_gpt_config *c, lmf_param_layout *out);
/* The layout of one tensor-parallel rank's slice of every tensor (tp NULL: lmf_layout_build).
 * Tensors keep their whole model's names and external shapes; offsets and numel are the
 * slice's. */
lmf_status lmf_layout_build_tp(const lmf_gpt_config *c, const lmf_tp_config *tp,
                               lmf_param_layout *out);
/* The layout of one pipeline stage holding layers [layer0, layer0 + layers) of a tensor-parallel
 * rank's slice (tp NULL: unsplit); LMF_ERR_ARG naming the range when it is empty or outside
 * 0..n_layer. lmf_layout_slice and lmf_layout_place work between it and the whole layout. */
lmf_status lmf_layout_build_stage(const lmf_gpt_config *c, const lmf_tp_config *tp, int layer0,
                                  int layers, lmf_param_layout *out);
/* The same for a stage holding n ascending, disjoint layer ranges [l0[r], l0[r] + len[r])
 * (the model chunks of an interleaved pipeline stage); LMF_ERR_ARG naming what is wrong with
 * them. */
lmf_status lmf_layout_build_ranges(const lmf_gpt_config *c, const lmf_tp_config *tp, int n,
                                   const int *l0, const int *len, lmf_param_layout *out);
/* The model chunk of the layout's layers whose backward hands block b over (its gradient is
 * complete then): range r covers its own layers' blocks and the blocks of the layers after
 * it up to the next range, range 0 also those before it; block n_layer+1 goes with the last
 * range, block 0 with the range holding layer 0 or the last layer (the first such), else 0.
 * A data-parallel engine's gradient buckets never mix the blocks of two chunks. */
int lmf_layout_block_chunk(const lmf_param_layout *l, int b);
/* 1 when the layout holds block b (a stage's blocks; every block of a whole model) */
int lmf_layout_has_block(const lmf_param_layout *l, int b);
/* Copy each tensor's slice out of a whole model's vector: part[part_layout->total] from
 * whole[whole_layout->total] (whole_layout: the unsplit layout of the same configuration). */
void lmf_layout_slice(const lmf_param_layout *part_layout, const lmf_param_layout *whole_layout,
                      const float *whole, float *part);
/* The reverse: write the slices of part into their places in whole (other floats untouched). */
void lmf_layout_place(const lmf_param_layout *part_layout, const lmf_param_layout *whole_layout,
                      const float *part, float *whole);
/* The same for the floats of whole inside range only: out[i] = whole[range.begin + i] for the
 * places part's slices cover (others untouched); out holds lmf_range_len(range) floats. */
void lmf_layout_place_range(const lmf_param_layout *part_layout,
                            const lmf_param_layout *whole_layout, const float *part,
                            lmf_range range, float *out);
void lmf_layout_free(lmf_param_layout *l);
/* index of the tensor with this name, or -1 */
int lmf_layout_find(const lmf_param_layout *l, const char *name);
/* views into one transformer layer's block, given the address of the block's first float
 * (params or grads; every layer block has the same internal layout) */
void lmf_layout_layer_view(const lmf_gpt_config *c, float *block_base, lmf_layer_view *v);
/* the same for the layer blocks of a layout (split or whole) */
void lmf_layout_layer_view_of(const lmf_param_layout *l, const lmf_gpt_config *c,
                              float *block_base, lmf_layer_view *v);

/* Gradient buckets: the blocks grouped in backward order (n_blocks-1 down to 1) while a bucket
 * is below target floats and would stay within max floats, then block 0 alone (its gradient is
 * complete last). Bucket i spans blocks [lo[i], hi[i]]; lo and hi have room for n_blocks
 * entries. Returns the number of buckets. The data-parallel engine reduces these buckets and
 * the planner prices them. */
int lmf_layout_buckets(const lmf_param_layout *l, size_t target, size_t max, int *lo, int *hi);

/* How Megatron-style tensor parallelism splits a product's weight: by output columns (each
 * rank computes some outputs) or by input rows (each rank a partial sum of every output). */
typedef enum lmf_tp_split { LMF_SPLIT_COLUMN = 0, LMF_SPLIT_ROW } lmf_tp_split;

/* One matrix product with a weight in a transformer layer: out[N, out] = in[N, in] @ W + b. */
typedef struct lmf_linear_desc {
    const char *name;     /* Hugging Face module name in the layer, e.g. "attn.c_attn" */
    int in, out;          /* weight shape (in, out) */
    int bias;             /* 1: has a bias */
    int gelu;             /* 1: the forward applies bias and GELU in the product's epilogue, and
                           * the backward takes the bias gradient from the GELU's (fused) */
    lmf_tp_split split;
} lmf_linear_desc;
#define LMF_LAYER_LINEARS 7
/* The layer's products in forward order; returns how many. GPT-2 (4): QKV, attention output,
 * MLP up (GELU), MLP down. Llama (7): q, k, v (k and v n_kv_head heads wide), o, gate, up,
 * down. */
int lmf_layer_linears(const lmf_gpt_config *c, lmf_linear_desc out[LMF_LAYER_LINEARS]);
/* Parameters of one transformer layer (GPT-2: 12 C^2 + 13 C; Llama: the seven products and
 * two RMSNorm weights). */
int64_t lmf_layer_params(const lmf_gpt_config *c);
/* Of those, the ones tensor parallelism splits (weights, column-parallel biases) and the ones
 * every tensor-parallel rank keeps whole (LayerNorms, row-parallel biases). */
void lmf_layer_params_split(const lmf_gpt_config *c, int64_t *split, int64_t *replicated);

/* FLOPs of one causal attention call over B x T positions of width C, counting the causal
 * half of Q K^T and of P V: forward 2*B*C*T*(T+1); backward 2.5 times that (the gradients of
 * Q, K, V and the recomputed scores). */
double lmf_attention_flops(int B, int T, int C, int backward);

/* The kernel calls of a training step, by kind: what the forward (with the classifier and its
 * backward, which run inside it) and the backward (with recomputation) of one micro-batch do. */
typedef enum lmf_op {
    LMF_OP_ENCODER_FORWARD = 0,
    LMF_OP_ENCODER_BACKWARD,
    LMF_OP_LAYERNORM_FORWARD,
    LMF_OP_RESIDUAL_LAYERNORM_FORWARD,
    LMF_OP_LAYERNORM_BACKWARD,
    LMF_OP_MATMUL_FORWARD,          /* matmul_forward and matmul_gelu_forward */
    LMF_OP_MATMUL_BACKWARD,
    LMF_OP_ATTENTION_FORWARD,
    LMF_OP_ATTENTION_BACKWARD,
    LMF_OP_GELU_FORWARD,
    LMF_OP_GELU_BIAS_BACKWARD,
    LMF_OP_CLASSIFIER,              /* tied logits, loss and (training) both gradients */
    LMF_OP_ZERO,                    /* buffers cleared with memset */
    LMF_OP_RMSNORM_FORWARD,         /* the Llama family's kernels from here on */
    LMF_OP_RMSNORM_BACKWARD,
    LMF_OP_ROPE,                    /* rope_forward and rope_backward */
    LMF_OP_SWIGLU_FORWARD,
    LMF_OP_SWIGLU_BACKWARD,
    LMF_OP_RESIDUAL,                /* residual_forward: residual adds, summed input gradients */
    LMF_OP_COUNT
} lmf_op;
typedef struct lmf_op_work {
    double calls;
    double flops;   /* matrix products, attention (lmf_attention_flops), classifier 2*N*C*V per
                     * product (3 when training); 0 for the others */
    double values;  /* floats of activation width the call streams: N*C per LayerNorm, RMSNorm,
                     * encoder, residual add or zeroed row set, N*4C per GELU, N*ffn per SwiGLU,
                     * N*(q + k width) per rotary call; rows x output width for the products */
} lmf_op_work;
typedef struct lmf_step_work {
    lmf_op_work op[LMF_OP_COUNT];
} lmf_step_work;
typedef enum lmf_recompute {
    LMF_RECOMPUTE_NONE = 0,
    LMF_RECOMPUTE_SELECTIVE,
    LMF_RECOMPUTE_FULL
} lmf_recompute;
/* "none", "selective" or "full" ("?" for a value outside the enum). */
const char *lmf_recompute_name(lmf_recompute r);
/* The mode named s into *r; LMF_ERR_ARG, with a message that lists the names, otherwise. */
lmf_status lmf_recompute_parse(const char *s, lmf_recompute *r);
/* Work of one training micro-batch of B x T: *forward for lmf_gpt_forward (training), *backward
 * for lmf_gpt_backward with recomputation mode rc. */
void lmf_gpt_step_work(const lmf_gpt_config *c, int B, int T, lmf_recompute rc,
                       lmf_step_work *forward, lmf_step_work *backward);
/* The same for one rank of a tensor-parallel group (tp NULL or size 1: the whole model): its
 * slices of the products, attention and classifier; the norms, residual adds and embeddings
 * over the rows it holds (all of them, or 1/size under sequence parallelism). A tp that
 * lmf_tp_dims_get refuses gives zero work. */
void lmf_gpt_step_work_tp(const lmf_gpt_config *c, const lmf_tp_config *tp, int B, int T,
                          lmf_recompute rc, lmf_step_work *forward, lmf_step_work *backward);
const char *lmf_op_name(lmf_op op);
/* The classifier's FLOPs (the logits, the loss, both gradients) in layers' worth: what a
 * pipeline's last stage carries beyond its layers (a layer is the difference one more layer
 * makes to the step's work). */
double lmf_gpt_classifier_layers(const lmf_gpt_config *cfg, const lmf_tp_config *tp, int B, int T,
                                 lmf_recompute rc);

/* What lmf_gpt_reserve allocates for. */
typedef enum lmf_reserve_mode {
    LMF_RESERVE_INFERENCE = 0,  /* forward passes only (evaluation) */
    LMF_RESERVE_TRAIN,          /* training, with the model's own gradient block */
    LMF_RESERVE_TRAIN_HOOKED    /* training, gradients placed by the block_grads hook */
} lmf_reserve_mode;
/* Floats of the activation block lmf_gpt_reserve(B, T, mode) allocates with kernel table k
 * and recomputation mode recompute (gradient block and batch copies excluded), without a model.
 * The fast table's attention scratch depends on the thread count: call after lmf_threads_set. */
size_t lmf_gpt_activation_floats(const lmf_gpt_config *cfg, const lmf_kernels *k, int B, int T,
                                 lmf_reserve_mode mode, lmf_recompute recompute);
/* The same for one rank of a tensor-parallel group (tp NULL: the whole model). */
size_t lmf_gpt_activation_floats_tp(const lmf_gpt_config *cfg, const lmf_tp_config *tp,
                                    const lmf_kernels *k, int B, int T, lmf_reserve_mode mode,
                                    lmf_recompute recompute);
/* The same for a pipeline stage of `layers` layers (lmf_gpt_create_stage), with the
 * classifier's scratch only when it holds the classifier (the last stage). */
size_t lmf_gpt_stage_activation_floats(const lmf_gpt_config *cfg, const lmf_tp_config *tp,
                                       const lmf_kernels *k, int B, int T, lmf_reserve_mode mode,
                                       lmf_recompute recompute, int layers, int classifier);

/* ==== the model ==== */

/* Hooks let a caller (data parallelism, ZeRO) place and move each block's weights and
 * gradients without the model knowing about communication. Blocks: 0 embeddings (wte, wpe;
 * wte is also the tied classifier), 1..L transformer layers, L+1 final LayerNorm. Offsets of
 * tensors inside a block are the layout's offsets minus block_offset[block].
 * Any hook may be NULL; a NULL result means "use the model's own block".
 * Order in a training step: forward: block_params(0,0) [kept until the end of the backward],
 * block_params(1..L+1, 0) each followed by release_params(b, 0) after use, classifier
 * (block_grads(0) first: dwte accumulates there during the forward); backward:
 * block_params(L+1..1, 1), block_grads(b), ... grads_ready(b), release_params(b, 1) for
 * b = L+1 down to 1, then the encoder backward, grads_ready(0), release_params(0, 1).
 * In evaluation block 0 is released with phase 0 at the end of the forward. */
/* The collectives a tensor-parallel model asks of its group (on floats). SUM, MAX: buf[n] over
 * the group, in place. GATHER: buf[size * n] holds this rank's n floats at buf + rank * n and
 * every rank's on return. REDUCE_SCATTER: buf[size * n] summed over the group, this rank's
 * part (at rank * n) written to out[n]. */
typedef enum lmf_tp_op {
    LMF_TP_SUM = 0,
    LMF_TP_MAX,
    LMF_TP_GATHER,
    LMF_TP_REDUCE_SCATTER
} lmf_tp_op;

typedef struct lmf_gpt_hooks {
    float *(*block_params)(void *ctx, int block, int phase);
    void (*release_params)(void *ctx, int block, int phase);
    float *(*block_grads)(void *ctx, int block);
    void (*grads_ready)(void *ctx, int block);
    void *ctx;
    /* tensor parallelism (a model made with lmf_gpt_create_tp over more than one rank needs
     * it): each layer's all-reduces (or with sequence parallelism its gathers and
     * reduce-scatters), the embedding's sum and the classifier's statistics. A failure is the
     * hook's to report (the communicator stops the job). */
    void (*tp_collective)(void *tp_ctx, lmf_tp_op op, float *buf, float *out, size_t n);
    void *tp_ctx;
} lmf_gpt_hooks;

typedef struct lmf_gpt lmf_gpt;

/* Create a model with the given configuration: parameters allocated (zeroed), no gradients or
 * activations yet. k: the kernel table (NULL: the fast one). */
lmf_status lmf_gpt_create(const lmf_gpt_config *cfg, const lmf_kernels *k, lmf_gpt **out);
/* The same for one rank of a tensor-parallel group (tp NULL or size 1: lmf_gpt_create): the
 * model holds the slices of lmf_layout_build_tp and needs the hooks' tp_collective to run.
 * Training and evaluation only: key/value-cached inference and lmf_gpt_logits_at take the
 * whole model. */
lmf_status lmf_gpt_create_tp(const lmf_gpt_config *cfg, const lmf_kernels *k,
                             const lmf_tp_config *tp, lmf_gpt **out);
/* One pipeline stage of a (tensor-parallel rank's) model: layers [layer0, layer0 + layers),
 * with the embeddings on the first stage and the final norm and classifier on the last
 * (lmf_layout_build_stage; GPT-2's tied wte on both). The whole model is the one stage
 * (0, n_layer). Train it with lmf_gpt_reserve_slots and the lmf_gpt_stage_* calls below. */
lmf_status lmf_gpt_create_stage(const lmf_gpt_config *cfg, const lmf_kernels *k,
                                const lmf_tp_config *tp, int layer0, int layers, lmf_gpt **out);
/* One stage of the interleaved schedule: n model chunks, chunk c running layers
 * [layer0[c], layer0[c] + layers[c]) (ascending, disjoint), into chunks[n]. chunks[0] holds
 * the stage's weights (and, reserved for training without hooks, its gradients) over every
 * chunk's layers (lmf_layout_build_ranges): it is the stage's model for everything but
 * running the other chunks. chunks[c > 0] are views sharing them, each with its own
 * activations (lmf_gpt_reserve_slots), hooks, kernels and settings; their lmf_gpt_params and
 * lmf_gpt_grads are chunk 0's. Each block's gradient is handed over (grads_ready) by one
 * chunk's backward (lmf_layout_block_chunk). Free the views before chunks[0]. n = 1:
 * lmf_gpt_create_stage. */
lmf_status lmf_gpt_create_chunks(const lmf_gpt_config *cfg, const lmf_kernels *k,
                                 const lmf_tp_config *tp, int n, const int *layer0,
                                 const int *layers, lmf_gpt **chunks);
void lmf_gpt_free(lmf_gpt *m);

const lmf_gpt_config *lmf_gpt_cfg(const lmf_gpt *m);
const lmf_param_layout *lmf_gpt_layout(const lmf_gpt *m);
const lmf_kernels *lmf_gpt_kernels(const lmf_gpt *m);
float *lmf_gpt_params(lmf_gpt *m);
/* gradient block, allocated on first call of lmf_gpt_reserve(LMF_RESERVE_TRAIN) */
float *lmf_gpt_grads(lmf_gpt *m);
/* Switch kernel tables; activations already reserved are re-sized for the new table's
 * scratch needs (which differ between tables). */
lmf_status lmf_gpt_set_kernels(lmf_gpt *m, const lmf_kernels *k);
void lmf_gpt_set_hooks(lmf_gpt *m, const lmf_gpt_hooks *h);
/* Free the model's own parameter block (when the block_params hook supplies every block,
 * as in ZeRO-3); lmf_gpt_params then returns NULL. */
void lmf_gpt_drop_params(lmf_gpt *m);
/* Give the model a parameter block (layout.total floats from malloc) to own, freeing any it
 * had; used to bring back full weights after ZeRO-3 training (for sampling or export). */
void lmf_gpt_adopt_params(lmf_gpt *m, float *params);

/* GPT-2 initialisation: N(0, 0.02), residual projections N(0, 0.02/sqrt(2*n_layer)),
 * biases 0, LayerNorm weights 1. Deterministic in seed. */
void lmf_gpt_init_weights(lmf_gpt *m, uint64_t seed);

/* Activation recomputation, set before lmf_gpt_reserve: none keeps every activation for the
 * backward; selective keeps all but each layer's GELU output (4*B*T*C floats a layer), which
 * the backward recomputes from its input; full keeps only each layer's output and re-runs the
 * layer's forward inside the backward (one shared set of layer activations). Losses and
 * gradients are bit-identical in every mode; recomputation costs time, not accuracy. */
void lmf_gpt_set_recompute(lmf_gpt *m, lmf_recompute r);

/* Document masking (Llama 3's packed sequences): with eot_id >= 0, every later training or
 * evaluation forward keeps attention inside documents: position t of a row starts a new
 * document when input t-1 is eot_id, and no query attends to a key of an earlier document
 * (lmf_doc_starts, kernels.h). Positions are not reset: GPT-2's learned positions and Llama's
 * rotary positions stay the row's positions 0..T-1. A batch without eot_id (except in its last
 * column) computes exactly what it does unmasked. eot_id -1 turns masking off (the default);
 * KV-cached inference never masks. LMF_ERR_ARG when eot_id >= vocab_size. */
lmf_status lmf_gpt_set_doc_mask(lmf_gpt *m, int eot_id);

/* Allocate activations (and, for LMF_RESERVE_TRAIN, the gradient block) for batches up to
 * B x T. Fails when T > n_positions. No allocation happens in forward/backward afterwards. */
lmf_status lmf_gpt_reserve(lmf_gpt *m, int B, int T, lmf_reserve_mode mode);
/* The same with activations for `slots` micro-batches in flight at once (1 to
 * LMF_GPT_MAX_SLOTS; a pipeline stage keeps one per micro-batch between its forward and its
 * backward). lmf_gpt_reserve is slots = 1. */
#define LMF_GPT_MAX_SLOTS 64
lmf_status lmf_gpt_reserve_slots(lmf_gpt *m, int B, int T, lmf_reserve_mode mode, int slots);
/* bytes held for activations and gradients after reserve */
size_t lmf_gpt_activation_bytes(const lmf_gpt *m);

/* Forward pass over inputs[B,T]; returns the mean loss over targets[B,T] (targets may be NULL:
 * no loss, *loss = 0). With train != 0 (reserved for training) it also computes the
 * classifier's gradient (dloss_scale multiplies the gradient of the mean loss; use
 * 1/grad_accum) so lmf_gpt_backward can follow. Ids are checked: any id >= vocab_size is an
 * error (LMF_ERR_ARG). */
lmf_status lmf_gpt_forward(lmf_gpt *m, const int32_t *inputs, const int32_t *targets, int B,
                           int T, int train, float dloss_scale, float *loss);
/* Backward pass after a training forward: accumulates into the gradient block. */
void lmf_gpt_backward(lmf_gpt *m);
void lmf_gpt_zero_grad(lmf_gpt *m);

/* ---- pipeline stages: a micro-batch's forward and backward through the stage's layers, in
 * its own activation slot (0 .. slots-1 of lmf_gpt_reserve_slots), so that several are in
 * flight. What passes between stages is the residual stream: lmf_gpt_stage_floats(m, B, T)
 * floats ([B*T, C], or this rank's rows of it under sequence parallelism). ---- */
size_t lmf_gpt_stage_floats(const lmf_gpt *m, int B, int T);
/* Training forward of one micro-batch in slot `slot`: from inputs[B,T] on the first stage,
 * else from x (the previous stage's output); on the last stage the mean loss over
 * targets[B,T] into *loss (0 elsewhere) and the classifier's gradient scaled by dloss_scale,
 * as lmf_gpt_forward. inputs, targets or x may be NULL where the stage does not use them; with
 * document masking (lmf_gpt_set_doc_mask) every stage reads inputs for the documents' starts. */
lmf_status lmf_gpt_stage_forward(lmf_gpt *m, int slot, const int32_t *inputs,
                                 const int32_t *targets, const float *x, int B, int T,
                                 float dloss_scale, float *loss);
/* Evaluation forward of one micro-batch in slot `slot` (no gradient, no backward after it):
 * as lmf_gpt_stage_forward, with lmf_gpt_forward's train = 0 (block 0's weights released at
 * its end); the loss on the last stage equals the whole model's lmf_gpt_forward(train = 0). */
lmf_status lmf_gpt_stage_eval(lmf_gpt *m, int slot, const int32_t *inputs,
                              const int32_t *targets, const float *x, int B, int T,
                              float *loss);
/* The output the next stage takes (not on the last stage): valid until the slot's next
 * forward. */
const float *lmf_gpt_stage_output(lmf_gpt *m, int slot);
/* Backward of the micro-batch in slot `slot` after its forward: from dy (the gradient of this
 * stage's output, lmf_gpt_stage_floats of them; NULL on the last stage, which starts from its
 * loss), accumulating into the gradient block. */
void lmf_gpt_stage_backward(lmf_gpt *m, int slot, const float *dy);
/* fn(ctx) before every kernel call of the model (NULL: none): lets a communication engine move
 * its messages while the model computes (the pipeline's sends and receives). */
void lmf_gpt_set_progress(lmf_gpt *m, void (*fn)(void *ctx), void *ctx);
/* The same backward split in two halves (ZB-H1, Qi et al. 2024): the input half computes the
 * gradient of the stage's input (lmf_gpt_stage_input_grad) and the norms' and embeddings'
 * gradients, and records the linear layers' weight and bias gradients, copying the output
 * gradients they read (and their inputs when recomputation or sequence parallelism does not
 * keep those); no gradient block is handed over (grads_ready) yet. The weight half computes
 * the recorded gradients and hands every block over, last to first. Other slots' forwards and
 * input halves may run in between; the gradients equal lmf_gpt_stage_backward's bit for bit.
 * LMF_ERR_NOMEM when the record cannot grow (it is sized by the first step). */
lmf_status lmf_gpt_stage_backward_input(lmf_gpt *m, int slot, const float *dy);
void lmf_gpt_stage_backward_weights(lmf_gpt *m, int slot);
/* The gradient of the stage's input that the backward left (not on the first stage): valid
 * until the next stage call. */
const float *lmf_gpt_stage_input_grad(lmf_gpt *m);

/* Logits of the last forward at position (b, t): fills logits[vocab_size]. Needs a forward
 * before it (uses the final LayerNorm output). */
void lmf_gpt_logits_at(lmf_gpt *m, int b, int t, float *logits);

/* ---- profiling: wall time per kind of kernel, for the benchmark's breakdown ---- */
typedef enum lmf_phase {
    LMF_PHASE_MATMUL = 0,     /* linear layers, forward and backward */
    LMF_PHASE_ATTENTION,      /* attention forward and backward */
    LMF_PHASE_ELEMENTWISE,    /* embeddings, LayerNorm, GELU, residual adds, buffer zeroing */
    LMF_PHASE_LOSS,           /* tied classifier + cross-entropy */
    LMF_PHASE_TP_COMM,        /* tensor parallelism's collectives inside the model */
    LMF_PHASE_COUNT
} lmf_phase;
/* Turn timing on or off (off by default; on adds a clock read around each kernel call and
 * switches the kernels' busy-time accounting, lmf_busy_enable in perf.h, on or off with it). */
void lmf_gpt_profile(lmf_gpt *m, int on);
/* Seconds spent per phase since the last reset; reset zeroes them. */
void lmf_gpt_profile_read(const lmf_gpt *m, double seconds[LMF_PHASE_COUNT]);
/* Busy thread-seconds per phase since the last reset: the threads' work inside the fast
 * kernels' parallel regions plus the calling thread's time outside them (serial code; the
 * reference kernels are all serial). With n threads and wall seconds s[p], the phase's idle
 * fraction is 1 - busy[p] / (n * s[p]). */
void lmf_gpt_profile_read_busy(const lmf_gpt *m, double busy[LMF_PHASE_COUNT]);
void lmf_gpt_profile_reset(lmf_gpt *m);
const char *lmf_phase_name(lmf_phase p);

/* ---- inference with a key/value cache: the same layer code as training, through the
 * model's kernel table ---- */
typedef struct lmf_kv_cache lmf_kv_cache;
/* A cache for up to max_T positions (max_T <= n_positions), with room to run up to `chunk`
 * new positions at once (a prompt is fed in chunks of that size; 0: 64). */
lmf_status lmf_gpt_kv_create(lmf_gpt *m, int max_T, int chunk, lmf_kv_cache **out);
void lmf_gpt_kv_free(lmf_kv_cache *kv);
/* positions held so far */
int lmf_gpt_kv_length(const lmf_kv_cache *kv);
/* Run tokens[n] at the next n positions (n >= 1, fitting in the cache) and write the logits of
 * the token after the last one to logits[vocab_size]. */
lmf_status lmf_gpt_kv_append(lmf_gpt *m, lmf_kv_cache *kv, const int32_t *tokens, int n,
                             float *logits);

/* Pick a token from logits[V]: temperature (0 = greedy), top_k (0 = off), top_p (1 = off).
 * work: V floats + V ints of scratch (see lmf_sampler_work_bytes). u: uniform in [0, 1). */
size_t lmf_sampler_work_bytes(int V);
int lmf_sample_logits(const float *logits, int V, float temperature, int top_k, float top_p,
                      float u, void *work);

typedef struct lmf_sampling {
    float temperature;    /* 0: greedy */
    int top_k;            /* 0: off */
    float top_p;          /* 1: off */
    uint64_t seed;
} lmf_sampling;
/* Feed prompt[n_prompt] (n_prompt >= 1) and sample up to n_new tokens after it, calling
 * emit(ctx, id) for each; *n_out gets how many were made: fewer than n_new when the model's
 * context (n_positions) is full. A non-zero return from emit stops early (not an error). */
lmf_status lmf_gpt_generate(lmf_gpt *m, const int32_t *prompt, int n_prompt, int n_new,
                            const lmf_sampling *s, int (*emit)(void *ctx, int32_t id), void *ctx,
                            int *n_out);

#ifdef __cplusplus
}
#endif
#endif

/* The model's state and its layer code, shared by training (gpt.c) and KV-cached inference
 * (infer.c); internal to src/model. */
#ifndef LMF_MODEL_GPT_INTERNAL_H
#define LMF_MODEL_GPT_INTERNAL_H

#include "lmforge/model.h"
#include "model/ops.h"

/* Activations of one layer, views into an activation block. */
typedef struct layer_acts {
    float *ln1, *ln1_mean, *ln1_rstd, *qkv, *atty, *att_saved, *residual2;
    float *ln2, *ln2_mean, *ln2_rstd, *fch, *fch_gelu, *residual3;
} layer_acts;

/* Where a forward's attention gets its keys and values: from the rows it computes (training,
 * evaluation), or from a cache that also receives them (inference). */
typedef struct layer_cache {
    float *k, *v;          /* [max_T, C] of this layer */
    float *scratch;        /* attention_kv_scratch_floats(max_T) */
    int past;              /* positions already in k, v */
} layer_cache;

/* What the model has been through since its last backward. */
typedef enum forward_state {
    FORWARD_NONE = 0,      /* no forward, or its backward is done */
    FORWARD_EVAL,          /* a forward without gradients */
    FORWARD_TRAIN,         /* a training forward: lmf_gpt_backward may follow */
    FORWARD_WEIGHTS_DUE    /* a split backward's input half ran: its weight half is due */
} forward_state;

struct lmf_gpt {
    lmf_gpt_config cfg;
    lmf_param_layout layout;
    lmf_ops ops;
    lmf_gpt_hooks hooks;
    int has_hooks;

    float *params;      /* own parameter block (layout.total floats) or NULL */
    float *grads;       /* own gradient block or NULL */
    /* the layers this model runs, [run_l0, run_l0 + run_n): the layout's (chunk 0, or the
     * whole model), or one model chunk's of an interleaved stage (lmf_gpt_create_chunks):
     * chunk c > 0 shares its owner's layout, weights and gradients (owner->params, ->grads;
     * its own stay NULL) and has its own activations */
    lmf_gpt *owner;
    int chunk, run_l0, run_n;

    /* activations for up to B x T */
    int B, T;
    lmf_reserve_mode mode;
    float *acts;
    size_t acts_floats;
    float *encoded, *lnf, *lnf_mean, *lnf_rstd, *losses, *cls_scratch;
    float *cls_stats, *cls_lse;       /* vocabulary parallel: every rank's statistics, lse */
    float *sp_gather, *sp_part;       /* sequence parallel: whole rows gathered [B*T, C]; a
                                       * row-parallel product's partial sums [B*T, C] */
    layer_acts *la;
    /* backward scratch */
    float *dres, *dbtc, *dqkv, *d4a, *att_scratch;
    /* the current batch (views into ids: the slot's inputs, then its targets) */
    int32_t *ids, *inputs, *targets;
    int eot_id;                       /* document masking's end-of-text id; -1: off */
    int *doc_starts;                  /* [slots][B*T]: each slot's document starts */
    int *doc_start;                   /* the current slot's (lmf_doc_starts) */
    const int *cur_doc;               /* doc_start when the slot's batch is masked, else NULL
                                       * (slot_doc: the other slots') */
    int cur_B, cur_T;
    float dloss;
    forward_state state;
    lmf_recompute recompute;          /* asked for */
    lmf_recompute reserved_recompute; /* what the buffers were laid out for */
    /* pipeline micro-batch slots: acts holds `slots` copies of acts_floats floats; the views
     * above are slot `slot`'s; each slot's forward state is kept while another is in use */
    int slots, slot;
    forward_state slot_state[LMF_GPT_MAX_SLOTS];
    const int *slot_doc[LMF_GPT_MAX_SLOTS];
    /* split backward (ZB-H1): each slot's weight gradients left for its weight half */
    lmf_wgrad wgrad;
    lmf_wgrad_list wlist[LMF_GPT_MAX_SLOTS];
};

/* Row widths of a layer's activations on one tensor-parallel rank d (describe.c): statistics
 * per norm (GPT-2 mean and rstd, Llama rstd), qkv (GPT-2 3W; Llama q, k, v one after the
 * other: W + 2 KV), its gradient dqkv (Llama: at least C, the temporary of up's input
 * gradient), fch (GPT-2 F; Llama gate then up: 2F), the activation (GELU's and SwiGLU's F),
 * d4a. W, KV and F are the rank's attention, key/value and feed-forward widths (the whole
 * model's without tensor parallelism). */
typedef struct lmf_act_widths {
    size_t stats, qkv, dqkv, fch, act, d4a;
} lmf_act_widths;
void lmf_gpt_act_widths(const lmf_gpt_config *c, const lmf_tp_dims *d, lmf_act_widths *w);
/* floats of the attention backward's scratch (multi-head or grouped-query) */
size_t lmf_gpt_attention_scratch(const lmf_gpt_config *c, const lmf_tp_dims *d,
                                 const lmf_kernels *k, int B, int T);
/* Rows of the vocabulary-parallel loss per chunk: each chunk's logits are kept from its
 * statistics to its backward (VP_LOSS_ROWS x the rank's vocabulary rows), and its statistics
 * gathered over the group on their own. */
#define LMF_VP_LOSS_ROWS 256

/* floats of the classifier's buffers for N rows: the fused kernel's scratch, or (vocabulary
 * parallel) a chunk's kept logits, every rank's statistics and the log-sum-exp */
size_t lmf_gpt_classifier_floats(const lmf_gpt_config *c, const lmf_tp_dims *d,
                                 const lmf_kernels *k, int N);

/* The next n floats of an activation block being carved into views: returns *p, advances it. */
static inline float *take(float **p, size_t n) {
    float *at = *p;
    *p += n;
    return at;
}

/* A collective over the tensor-parallel group through the hook (nothing without a group),
 * timed as LMF_PHASE_TP_COMM. */
void lmf_gpt_tp(lmf_gpt *m, lmf_tp_op op, float *buf, float *out, size_t n);
/* Rows of the residual stream this rank holds for n rows of a batch (n / size under sequence
 * parallelism, else n). */
int lmf_gpt_local_rows(const lmf_gpt *m, int n);
/* Under sequence parallelism: this rank's rows of local[lmf_gpt_local_rows(BT), C] with every
 * other rank's, as the whole [BT, C] in m->sp_gather (returned); without it: local itself. */
const float *lmf_gpt_sp_gather(lmf_gpt *m, const float *local, int BT);
/* A row-parallel product's partial sums made whole: summed in place in out[BT, C] (out ==
 * part), or under sequence parallelism summed and scattered: this rank's rows into out. The
 * product writes into lmf_gpt_sp_partial(m, out). */
void lmf_gpt_sp_reduce(lmf_gpt *m, float *part, float *out, int BT);
float *lmf_gpt_sp_partial(lmf_gpt *m, float *out);

/* The block's parameters (hook or own) and the matching release. */
float *lmf_gpt_block_params(lmf_gpt *m, int b, int phase);
void lmf_gpt_release_params(lmf_gpt *m, int b, int phase);

/* The transformer layers and the final LayerNorm over x[B*T, C] (embedded positions), into
 * lnf[B*T, C] with its statistics. la: the activations of each layer, or one set reused by
 * every layer (shared = 1, for inference). cache: NULL, or one layer_cache per layer (B = 1):
 * the layers append their keys and values and attend over the cache. */
void lmf_gpt_layers_forward(lmf_gpt *m, layer_acts *la, int shared, const float *x, float *lnf,
                            float *lnf_mean, float *lnf_rstd, int B, int T, layer_cache *cache);

/* The Llama family's layer (llama.c), run by gpt.c's layer loops. */
void lmf_llama_layer_forward(lmf_gpt *m, const lmf_layer_view *w, layer_acts *a, const float *x,
                             int B, int T, int to_output, layer_cache *cache);
void lmf_llama_layer_backward(lmf_gpt *m, const lmf_layer_view *w, const lmf_layer_view *g,
                              layer_acts *a, const float *x, int B, int T);
/* The attention kernels' doc_start for the batch inputs[B,T] (doc_mask.c): m->doc_start filled,
 * or NULL when masking is off or no row holds a document boundary. */
const int *lmf_gpt_doc_mask_batch(lmf_gpt *m, const int32_t *inputs, int B, int T);
/* offset inside block 0 of the classifier's weights: the token embedding (tied) or lm_head */
size_t lmf_gpt_classifier_offset(const lmf_gpt *m);

#endif

/* Data-parallel engine: ZeRO 0-3 sharding, bucketed gradient reduction, sharded AdamW. */
#ifndef LMFORGE_DDP_H
#define LMFORGE_DDP_H

#include <stddef.h>
#include "lmforge/comm.h"
#include "lmforge/kernels.h"
#include "lmforge/model.h"
#include "lmforge/optim.h"
#include "lmforge/partition.h"
#include "lmforge/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- the engine ---- */

typedef struct lmf_ddp lmf_ddp;

typedef struct lmf_ddp_config {
    int zero_stage;      /* 0 replicate all; 1 shard AdamW m, v; 2 + gradients; 3 + weights */
    size_t bucket_bytes; /* gradient bucket size target; 0: LMF_DDP_DEFAULT_BUCKET_BYTES */
    int no_overlap;      /* 1: start the reductions only after the whole backward (for tests
                          * and measurements); 0: each bucket as soon as its gradients are done */
    int no_prefetch;     /* stage 3: 1 disables gathering the next block ahead of use */
    float grad_scale;    /* multiplies the summed gradients; 0: 1/world_size (mean over ranks) */
} lmf_ddp_config;

#define LMF_DDP_DEFAULT_BUCKET_BYTES ((size_t)25 << 20)

/* Bytes held on this rank, by kind. */
typedef struct lmf_ddp_memory {
    size_t weights;  /* parameters: the full block (stages 0-2, the caller's) or the shard (3) */
    size_t grads;    /* gradient accumulator: full (0, 1) or shard (2, 3) */
    size_t optim;    /* AdamW m and v */
    size_t buffers;  /* gradient staging, reduce-scatter and weight-gather buffers */
} lmf_ddp_memory;

/* Create the engine for a model with this layout, over comm (which must outlive it).
 * params: the full parameter block (layout->total floats). Rank 0's values are broadcast to
 * every rank. Stages 0-2 keep using this block in place (it must outlive the engine; usually
 * lmf_gpt_params); stage 3 copies this rank's shard and does not touch it afterwards (the
 * caller may then lmf_gpt_drop_params). k: kernels for AdamW and sums of squares.
 * Fails (LMF_ERR_ARG) for a stage outside 0..3 or a block above 2^31-1 floats, LMF_ERR_NOMEM,
 * or a communication failure. */
lmf_status lmf_ddp_create(lmf_comm *comm, const lmf_param_layout *layout, const lmf_kernels *k,
                          const lmf_ddp_config *cfg, float *params, lmf_ddp **out);
void lmf_ddp_free(lmf_ddp *d);

/* The model hooks placing weights and gradients (pass to lmf_gpt_set_hooks; the model is then
 * reserved with training = 2: the engine owns the gradients). */
void lmf_ddp_hooks(lmf_ddp *d, lmf_gpt_hooks *h);

/* Call before the forward of each micro-step (micro = 0..n_micro-1 within one optimizer step).
 * Stages 0/1 reduce the accumulated gradients during the last micro-step's backward only;
 * stages 2/3 reduce-scatter every micro-step into the gradient shard. Use dloss_scale =
 * 1/n_micro in lmf_gpt_forward; the engine then sums over ranks and applies grad_scale. */
lmf_status lmf_ddp_begin_micro(lmf_ddp *d, int micro, int n_micro);

/* Move outstanding collectives forward (the hooks call it; the trainer may too). */
lmf_status lmf_ddp_progress(lmf_ddp *d);

/* Finish the optimizer step after the last micro-step's backward: wait for every bucket, take
 * the global gradient norm (before clipping; *grad_norm, may be NULL), clip to grad_clip when
 * grad_clip > 0, AdamW (step t >= 1, learning rate lr) over this rank's range, share the new
 * weights (all-gather for stages 1/2; stage 3 regathers on use), zero the gradients.
 * Every rank gets the same norm. A NaN/Inf norm skips the update, zeroes the gradients and
 * returns LMF_ERR_NUMERIC on every rank. */
lmf_status lmf_ddp_step(lmf_ddp *d, const lmf_adamw_hp *hp, float lr, int t, float grad_clip,
                        float *grad_norm);

/* This rank's range of the flat vector for optimizer state (stage 0: everything) and its
 * m, v arrays (length = that range's). */
lmf_range lmf_ddp_owned(const lmf_ddp *d);
void lmf_ddp_opt_state(lmf_ddp *d, float **m, float **v);
/* This rank's up-to-date master weights for its owned range (the element at offset
 * owned.begin): the ZeRO-3 shard, or a pointer into the full weights otherwise. No gather. */
const float *lmf_ddp_owned_params(const lmf_ddp *d);
int lmf_ddp_stage(const lmf_ddp *d);
/* gradient buckets, in the order they are reduced (backward order); blocks [*lo, *hi] */
int lmf_ddp_n_buckets(const lmf_ddp *d);
void lmf_ddp_bucket_blocks(const lmf_ddp *d, int i, int *lo, int *hi);

/* Collective: every rank gets the full weights in full[layout->total]. */
lmf_status lmf_ddp_gather_params(lmf_ddp *d, float *full);
/* Collective: every rank gets the full AdamW m and v (each layout->total floats). */
lmf_status lmf_ddp_gather_opt_state(lmf_ddp *d, float *m_full, float *v_full);
/* Load state from full vectors (every rank passes the same): each rank keeps what it owns.
 * m_full and v_full may be NULL (zeroed state). Not collective; call on every rank. */
void lmf_ddp_load_state(lmf_ddp *d, const float *params_full, const float *m_full,
                        const float *v_full);

/* Time this rank spent, since the engine was created. */
typedef struct lmf_ddp_stats {
    double wait_s; /* blocked waiting for gradient reductions and weight gathers, i.e. the
                    * communication not hidden behind computation */
    double step_s; /* inside lmf_ddp_step (waits, norm, AdamW, weight all-gather) */
    int steps;     /* optimizer steps taken */
    long hidden;   /* bucket reductions and weight gathers that completed in the background,
                    * found done by a progress call between layers */
    long waited;   /* ... that had to be waited for */
} lmf_ddp_stats;
void lmf_ddp_stats_get(const lmf_ddp *d, lmf_ddp_stats *out);

/* Bytes held on this rank now. */
void lmf_ddp_memory_used(const lmf_ddp *d, lmf_ddp_memory *out);
/* What the ZeRO paper's accounting predicts for n parameters over world ranks at a stage
 * (fp32 weights, grads and AdamW m, v; buffers 0). */
void lmf_ddp_memory_theory(size_t n, int world, int zero_stage, lmf_ddp_memory *out);

#ifdef __cplusplus
}
#endif
#endif

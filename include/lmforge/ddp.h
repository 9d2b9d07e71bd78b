/* Data-parallel engine: ZeRO 0-3 partitions, bucketed gradient reduction overlapped with the
 * backward, weight gathers; it places the model's weights and gradients and the optimizer's
 * range through hooks, and only reduces and shards. */
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
    int zero_stage;      /* 0 replicate all; 1 partition the optimizer state; 2 + gradients;
                          * 3 + weights */
    size_t bucket_bytes; /* gradient bucket size target; 0: LMF_DDP_DEFAULT_BUCKET_BYTES */
    int no_overlap;      /* 1: start the reductions only after the whole backward (for tests
                          * and measurements); 0: each bucket as soon as its gradients are done */
    int no_prefetch;     /* stage 3: 1 disables gathering the next block ahead of use */
    float grad_scale;    /* multiplies the summed gradients; 0: 1/world_size (mean over ranks) */
    lmf_comm *tp_comm;   /* the tensor-parallel group the layout is one slice of (NULL: none):
                          * the gradient norm's sum runs over it too */
    lmf_comm *pp_comm;   /* the pipeline group the layout is one stage of (NULL: none): the
                          * gradient norm's sum runs over it too */
} lmf_ddp_config;

#define LMF_DDP_DEFAULT_BUCKET_BYTES ((size_t)25 << 20)

/* Bytes held on this rank, by kind. */
typedef struct lmf_ddp_memory {
    size_t weights;  /* parameters: the full block (stages 0-2, the caller's) or the part (3) */
    size_t grads;    /* gradient accumulator: full (0, 1) or the part (2, 3) */
    size_t optim;    /* AdamW m and v of the owned range (held by the optimizer, lmf_optimizer;
                      * lmf_ddp_memory_used leaves it 0) */
    size_t buffers;  /* gradient staging, reduce-scatter and weight-gather buffers */
} lmf_ddp_memory;

/* Create the engine for a model with this layout, over comm (which must outlive it).
 * params: the full parameter block (layout->total floats). Rank 0's values are broadcast to
 * every rank. Stages 0-2 keep using this block in place (it must outlive the engine; usually
 * lmf_gpt_params); stage 3 copies this rank's part and does not touch it afterwards (the
 * caller may then lmf_gpt_drop_params). Fails (LMF_ERR_ARG) for a stage outside 0..3 or a
 * block above 2^31-1 floats, LMF_ERR_NOMEM, or a communication failure. */
lmf_status lmf_ddp_create(lmf_comm *comm, const lmf_param_layout *layout,
                          const lmf_ddp_config *cfg, float *params, lmf_ddp **out);
void lmf_ddp_free(lmf_ddp *d);

/* The model hooks placing weights and gradients (pass to lmf_gpt_set_hooks; the model is then
 * reserved with LMF_RESERVE_TRAIN_HOOKED: the engine owns the gradients). */
void lmf_ddp_hooks(lmf_ddp *d, lmf_gpt_hooks *h);
/* The optimizer hooks (lmf_optimizer_create): the norm's sum over the ranks (stages 1-3), the
 * gathers to retire before the weights change (stage 3), and after the update the gradients
 * cleared and the new weights shared (all-gather for stages 1/2; stage 3 regathers on use).
 * The optimizer's range is lmf_ddp_owned and its config's grad_scale lmf_ddp_grad_scale. */
void lmf_ddp_optim_hooks(lmf_ddp *d, lmf_optim_hooks *h);
/* An optimizer over this rank's range with the engine's hooks and gradient scale, AdamW with
 * hp, clipping to grad_clip (0: off), kernels k. A step is then lmf_ddp_reduce_wait followed by
 * lmf_optimizer_step(opt, lmf_ddp_owned_params(d), lmf_ddp_owned_grads(d), lr, t, &norm). */
lmf_status lmf_ddp_optimizer_create(lmf_ddp *d, const lmf_kernels *k, const lmf_adamw_hp *hp,
                                    float grad_clip, lmf_optimizer **out);

/* Call before the forward of each micro-step (micro = 0..n_micro-1 within one optimizer step).
 * Stages 0/1 reduce the accumulated gradients during the last micro-step's backward only;
 * stages 2/3 reduce-scatter every micro-step into the gradient shard. Use dloss_scale =
 * 1/n_micro in lmf_gpt_forward; the engine then sums over ranks and applies grad_scale. */
lmf_status lmf_ddp_begin_micro(lmf_ddp *d, int micro, int n_micro);

/* Move outstanding collectives forward (the hooks call it; the trainer may too). */
lmf_status lmf_ddp_progress(lmf_ddp *d);

/* After the last micro-step's backward: wait until every bucket's reduction is complete (and
 * report a failure a hook met), so that the owned range's gradients are final. Then call
 * lmf_optimizer_step with lmf_ddp_owned_params and lmf_ddp_owned_grads. */
lmf_status lmf_ddp_reduce_wait(lmf_ddp *d);

/* Drop the gradients of an optimizer step that stops between two micro-steps (every rank at
 * the same one): complete the collectives in flight, zero the gradients, forget gathered
 * weights; the next micro-step 0 starts a new step. */
lmf_status lmf_ddp_abandon_step(lmf_ddp *d);

/* This rank's range of the flat vector for the optimizer (stage 0: everything). */
lmf_range lmf_ddp_owned(const lmf_ddp *d);
/* What multiplies the summed gradients: the config's grad_scale, or 1/world_size. */
float lmf_ddp_grad_scale(const lmf_ddp *d);
/* This rank's up-to-date master weights and its gradients for the owned range (the element at
 * offset owned.begin): the ZeRO-3 part, or pointers into the full blocks. No gather. */
float *lmf_ddp_owned_params(lmf_ddp *d);
float *lmf_ddp_owned_grads(lmf_ddp *d);
int lmf_ddp_stage(const lmf_ddp *d);
/* gradient buckets, in the order they are reduced (backward order); blocks [*lo, *hi] */
int lmf_ddp_n_buckets(const lmf_ddp *d);
void lmf_ddp_bucket_blocks(const lmf_ddp *d, int i, int *lo, int *hi);

/* Collective: every rank gets the full weights in full[layout->total]. */
lmf_status lmf_ddp_gather_params(lmf_ddp *d, float *full);
/* Collective: every rank gets the full vector in full[layout->total] from each rank's owned
 * range of it in owned_part (e.g. the optimizer's m or v). */
lmf_status lmf_ddp_gather_owned(lmf_ddp *d, float *full, const float *owned_part);
/* Load the weights from a full vector (every rank passes the same): each rank keeps what it
 * holds. Not collective; call on every rank. */
void lmf_ddp_load_params(lmf_ddp *d, const float *params_full);

/* Time this rank spent, since the engine was created. */
typedef struct lmf_ddp_stats {
    double wait_s; /* blocked waiting for gradient reductions and weight gathers, i.e. the
                    * communication not hidden behind computation, and in the gradient norm's
                    * sum over the ranks (stages 1-3) */
    double step_s; /* in the optimizer step's communication: from lmf_ddp_reduce_wait to the
                    * end of the after-update hook (waits, the norm's sum, weight all-gather) */
    int steps;     /* optimizer steps taken */
    long hidden;   /* bucket reductions and weight gathers that completed in the background,
                    * found done by a progress call between layers */
    long waited;   /* ... that had to be waited for */
} lmf_ddp_stats;
void lmf_ddp_stats_get(const lmf_ddp *d, lmf_ddp_stats *out);

/* Bytes held on this rank now (optim: 0, see lmf_ddp_memory). */
void lmf_ddp_memory_used(const lmf_ddp *d, lmf_ddp_memory *out);
/* What the ZeRO paper's accounting predicts for n parameters over world ranks at a stage
 * (fp32 weights, grads and AdamW m, v; buffers 0). */
void lmf_ddp_memory_theory(size_t n, int world, int zero_stage, lmf_ddp_memory *out);

/* The engine's buffers besides the weights and gradients, in floats each. */
typedef struct lmf_ddp_buffers {
    int n_slots;       /* gradient staging slots (stages 2/3; each bucket's reduce-scatter runs
                        * in place in one): 0, or 1 + up to 2 */
    size_t slot[3];    /* [0] block 0's bucket; [1], [2] the largest other bucket */
    int n_gathers;     /* weight-gather buffers (stage 3): 0 or 3 */
    size_t gather[3];  /* [0] block 0; [1], [2] the largest other block */
    size_t bytes;      /* all of them together */
} lmf_ddp_buffers;
/* The buffers an engine over this layout holds at a ZeRO stage with this bucket size (0:
 * LMF_DDP_DEFAULT_BUCKET_BYTES), at any world size: the engine sizes its own with the same
 * computation, so out->bytes equals lmf_ddp_memory_used's buffers. Needs no model or ranks
 * (a memory check before anything big is allocated). LMF_ERR_ARG for a stage outside 0..3,
 * LMF_ERR_NOMEM. */
lmf_status lmf_ddp_size_buffers(const lmf_param_layout *l, int zero_stage, size_t bucket_bytes,
                                lmf_ddp_buffers *out);

#ifdef __cplusplus
}
#endif
#endif

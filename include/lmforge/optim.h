/* Optimizer: the global gradient norm, clipping, the skip decision for non-finite steps and
 * AdamW over a range of the flat parameter vector (a ZeRO partition is just a range);
 * learning-rate schedules. Communication stays outside, behind hooks. */
#ifndef LMFORGE_OPTIM_H
#define LMFORGE_OPTIM_H

#include <stddef.h>
#include "lmforge/kernels.h"
#include "lmforge/model.h"
#include "lmforge/partition.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lmf_adamw_hp {
    float beta1, beta2, eps, weight_decay;
} lmf_adamw_hp;

/* One AdamW step (t >= 1) on the global range [begin, end) of the flat parameter vector, in
 * one pass over memory. params, grads, m, v point at the element with global offset `begin`.
 * The gradient used is grads * grad_scale (rank averaging and clipping); grads is left zeroed
 * for the next accumulation. Weight decay applies only to tensors with decay = 1 in the
 * layout. */
void lmf_adamw_step(const lmf_kernels *k, const lmf_param_layout *layout, size_t begin, size_t end,
                    float *params, float *grads, float *m, float *v,
                    const lmf_adamw_hp *hp, float lr, float grad_scale, int t);

/* What the optimizer asks of whoever holds the gradients (the data-parallel engine gives these,
 * lmf_ddp_optim_hooks); any may be NULL (one rank holding everything). */
typedef struct lmf_optim_hooks {
    /* x[n] summed over the ranks whose ranges together make the whole vector (the norm's
     * partial sums of squares) */
    lmf_status (*sum)(void *ctx, double *x, int n);
    /* the range's weights are about to change */
    lmf_status (*before_update)(void *ctx);
    /* the step is over: updated = 1 when the weights changed (and the range's gradients were
     * zeroed), 0 when the update was skipped (the gradients are still there to be dropped) */
    lmf_status (*after_update)(void *ctx, int updated);
    void *ctx;
} lmf_optim_hooks;

typedef struct lmf_optim_config {
    lmf_adamw_hp hp;
    float grad_clip;     /* clip the global gradient norm to this (0: off) */
    float grad_scale;    /* multiplies the accumulated gradients (e.g. 1/ranks); 0: 1 */
} lmf_optim_config;

/* AdamW over one range of the flat vector: its first and second moments m, v (allocated
 * here, zeroed), the norm, clipping and the skip decision. */
typedef struct lmf_optimizer lmf_optimizer;

lmf_status lmf_optimizer_create(const lmf_kernels *k, const lmf_param_layout *layout,
                                lmf_range range, const lmf_optim_config *cfg,
                                const lmf_optim_hooks *hooks, lmf_optimizer **out);
void lmf_optimizer_free(lmf_optimizer *o);
/* m and v of the range (len(range) floats each), for checkpoints */
float *lmf_optimizer_m(lmf_optimizer *o);
float *lmf_optimizer_v(lmf_optimizer *o);
size_t lmf_optimizer_bytes(const lmf_optimizer *o);

/* One optimizer step t >= 1 at learning rate lr on the range: params and grads point at its
 * first element. The gradient norm over all ranks (sum of squares of the range, summed by the
 * hook, times grad_scale) goes to *grad_norm (may be NULL). A NaN or Inf norm skips the update
 * and returns LMF_ERR_NUMERIC with a message (the hook after_update(0) drops the gradients);
 * otherwise the gradient is clipped to grad_clip, AdamW updates the range and zeroes its
 * gradients, and after_update(1) follows. Every rank gets the same norm and decision. */
lmf_status lmf_optimizer_step(lmf_optimizer *o, float *params, float *grads, float lr, int t,
                              float *grad_norm);

typedef enum lmf_lr_kind { LMF_LR_COSINE = 0, LMF_LR_CONSTANT = 1 } lmf_lr_kind;

typedef struct lmf_lr_schedule {
    lmf_lr_kind kind;
    float lr, min_lr;
    int warmup, total;
} lmf_lr_schedule;

/* Learning rate for 0-based step: linear warmup over `warmup` steps (from lr/warmup to lr),
 * then cosine decay from lr to min_lr at step total-1 (cosine), or lr (constant). */
float lmf_lr_at(const lmf_lr_schedule *s, int step);

#ifdef __cplusplus
}
#endif
#endif

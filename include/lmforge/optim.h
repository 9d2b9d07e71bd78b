/* Optimizer: AdamW over a (possibly sharded) parameter range, learning-rate schedules. */
#ifndef LMFORGE_OPTIM_H
#define LMFORGE_OPTIM_H

#include <stddef.h>
#include "lmforge/kernels.h"
#include "lmforge/model.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lmf_adamw_hp {
    float beta1, beta2, eps, weight_decay;
} lmf_adamw_hp;

/* One AdamW step (t >= 1) on the global range [begin, end) of the flat parameter vector, in
 * one pass over memory. params, grads, m, v point at the element with global offset `begin`
 * (so a ZeRO shard passes its own arrays). The gradient used is grads * grad_scale (rank
 * averaging and clipping); grads is left zeroed for the next accumulation. Weight decay
 * applies only to tensors with decay = 1 in the layout. */
void lmf_adamw_step(const lmf_kernels *k, const lmf_param_layout *layout, size_t begin, size_t end,
                    float *params, float *grads, float *m, float *v,
                    const lmf_adamw_hp *hp, float lr, float grad_scale, int t);

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

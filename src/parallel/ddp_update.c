/* The engine's part of an optimizer step: the reductions finished, the norm's partial sums
 * added over the ranks, gathers retired before the weights change, the gradients cleared and
 * the new weights shared after. The optimizer (optim.h) does the arithmetic. */
#include "parallel/ddp_internal.h"

lmf_status lmf_ddp_reduce_wait(lmf_ddp *d) {
    d->t_step = lmf_now_s();
    LMF_TRY(d->err);
    LMF_TRY(lmf_ddp_finish_buckets(d));
    for (int i = 0; i < d->n_buckets; i++)
        if (!d->buckets[i].reduced)
            return lmf_fail(LMF_ERR_STATE, "optimizer step before the gradients of blocks %d..%d "
                            "were reduced: call lmf_ddp_begin_micro before each micro-step and "
                            "run every backward to its end", d->buckets[i].blk_lo,
                            d->buckets[i].blk_hi);
    return LMF_OK;
}

/* the partial sums of the owned ranges add up over the ranks (stage 0: every rank holds all) */
static lmf_status hook_sum(void *ctx, double *x, int n) {
    lmf_ddp *d = ctx;
    if (d->stage > 0) {
        double t0 = lmf_now_s();
        lmf_status s = lmf_comm_allreduce_f64(d->comm, x, (size_t)n, LMF_COMM_SUM);
        d->stats.wait_s += lmf_now_s() - t0;
        LMF_TRY(s);
    }
    if (d->cfg.tp_comm && lmf_comm_size(d->cfg.tp_comm) > 1)
        LMF_TRY(lmf_comm_allreduce_f64(d->cfg.tp_comm, x, (size_t)n, LMF_COMM_SUM));
    if (d->cfg.pp_comm && lmf_comm_size(d->cfg.pp_comm) > 1)
        LMF_TRY(lmf_comm_allreduce_f64(d->cfg.pp_comm, x, (size_t)n, LMF_COMM_SUM));
    return LMF_OK;
}

/* stage 3: no gather may read the part while it changes; gathered copies become stale */
static lmf_status hook_before_update(void *ctx) {
    lmf_ddp *d = ctx;
    return d->stage == 3 ? lmf_ddp_invalidate_gathers(d) : LMF_OK;
}

static lmf_status after_update(lmf_ddp *d, int updated) {
    if (!updated) {
        lmf_ddp_zero_grads(d);
        return LMF_OK;
    }
    lmf_ddp_reset_grads_after_step(d);
    if (d->stage == 1 || d->stage == 2) {
        double t0 = lmf_now_s();
        lmf_status s = lmf_ddp_gather_flat(d, d->params, NULL);
        d->stats.wait_s += lmf_now_s() - t0;
        return s;
    }
    return LMF_OK;
}

static lmf_status hook_after_update(void *ctx, int updated) {
    lmf_ddp *d = ctx;
    lmf_status s = after_update(d, updated);
    d->stats.step_s += lmf_now_s() - d->t_step;
    d->stats.steps += s == LMF_OK && updated;
    return s;
}

void lmf_ddp_optim_hooks(lmf_ddp *d, lmf_optim_hooks *h) {
    h->sum = hook_sum;
    h->before_update = hook_before_update;
    h->after_update = hook_after_update;
    h->ctx = d;
}

lmf_status lmf_ddp_optimizer_create(lmf_ddp *d, const lmf_kernels *k, const lmf_adamw_hp *hp,
                                    float grad_clip, lmf_optimizer **out) {
    lmf_optim_config oc = {*hp, grad_clip, lmf_ddp_grad_scale(d)};
    lmf_optim_hooks oh;
    lmf_ddp_optim_hooks(d, &oh);
    return lmf_optimizer_create(k, d->layout, d->owned, &oc, &oh, out);
}

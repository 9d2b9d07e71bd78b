/* Engine optimizer step: finish reductions, global norm, clipping, sharded AdamW, all-gather. */
#include "parallel/ddp_internal.h"

#include <math.h>

static lmf_status ddp_step(lmf_ddp *d, const lmf_adamw_hp *hp, float lr, int t,
                           float grad_clip, float *grad_norm) {
    LMF_TRY(d->err);
    LMF_TRY(lmf_ddp_finish_buckets(d));
    for (int i = 0; i < d->n_buckets; i++)
        if (!d->buckets[i].reduced)
            return lmf_fail(LMF_ERR_STATE, "optimizer step before the gradients of blocks %d..%d "
                            "were reduced: call lmf_ddp_begin_micro before each micro-step and "
                            "run every backward to its end", d->buckets[i].blk_lo,
                            d->buckets[i].blk_hi);
    size_t own = lmf_range_len(d->owned);
    /* this rank's gradients for its optimizer range */
    float *g = d->stage >= 2 ? d->grads : d->grads + d->owned.begin;
    float *p = d->stage == 3 ? d->pshard : d->params + d->owned.begin;

    /* norm of the averaged gradient: every rank sums the squares of its own range */
    double ss = own ? d->k->sumsq(g, own) : 0.0;
    if (d->stage >= 1) LMF_TRY(lmf_comm_allreduce_f64(d->comm, &ss, 1, LMF_COMM_SUM));
    float gs = d->cfg.grad_scale > 0 ? d->cfg.grad_scale : 1.0f / (float)d->world;
    double norm = sqrt(ss) * gs;
    if (grad_norm) *grad_norm = (float)norm;
    if (!isfinite(norm)) {
        lmf_ddp_zero_grads(d);
        return lmf_fail(LMF_ERR_NUMERIC, "the gradient norm is %s: the update was skipped "
                        "(lower the learning rate or check the data)", isnan(norm) ? "NaN" : "Inf");
    }
    float clip = 1.0f;
    if (grad_clip > 0 && norm > grad_clip) clip = (float)(grad_clip / (norm + 1e-6));
    /* stage 3: no gather may read the shard while it changes; gathered copies become stale */
    if (d->stage == 3) LMF_TRY(lmf_ddp_invalidate_gathers(d));
    /* one pass: averaging and clipping folded into the update, the owned gradients zeroed */
    lmf_adamw_step(d->k, d->layout, d->owned.begin, d->owned.end, p, g, d->m, d->v, hp, lr,
                   gs * clip, t);
    lmf_ddp_reset_grads_after_step(d);
    if (d->stage == 1 || d->stage == 2) {
        double t0 = lmf_now_s();
        lmf_status s = lmf_ddp_gather_flat(d, d->params, NULL);
        d->stats.wait_s += lmf_now_s() - t0;
        return s;
    }
    return LMF_OK;
}

lmf_status lmf_ddp_step(lmf_ddp *d, const lmf_adamw_hp *hp, float lr, int t, float grad_clip,
                        float *grad_norm) {
    double t0 = lmf_now_s();
    lmf_status s = ddp_step(d, hp, lr, t, grad_clip, grad_norm);
    d->stats.step_s += lmf_now_s() - t0;
    d->stats.steps += s == LMF_OK;
    return s;
}

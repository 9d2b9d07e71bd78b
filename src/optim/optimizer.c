/* The optimizer step over one range: global gradient norm, the skip decision for non-finite
 * steps, clipping, AdamW; the moments m and v of the range. */
#include "lmforge/optim.h"
#include "lmforge/system.h"

#include <math.h>
#include <stdlib.h>

struct lmf_optimizer {
    const lmf_kernels *k;
    const lmf_param_layout *layout;
    lmf_range range;
    lmf_optim_config cfg;
    lmf_optim_hooks hooks;
    float *m, *v;
};

lmf_status lmf_optimizer_create(const lmf_kernels *k, const lmf_param_layout *layout,
                                lmf_range range, const lmf_optim_config *cfg,
                                const lmf_optim_hooks *hooks, lmf_optimizer **out) {
    *out = NULL;
    LMF_ASSERT(range.end <= layout->total);
    lmf_optimizer *o = calloc(1, sizeof *o);
    if (!o) return lmf_fail(LMF_ERR_NOMEM, "cannot allocate the optimizer");
    o->k = k;
    o->layout = layout;
    o->range = range;
    o->cfg = *cfg;
    if (hooks) o->hooks = *hooks;
    size_t n = lmf_range_len(range);
    o->m = lmf_calloc_big(n, sizeof(float));
    o->v = lmf_calloc_big(n, sizeof(float));
    if (!o->m || !o->v) {
        lmf_optimizer_free(o);
        return lmf_fail(LMF_ERR_NOMEM, "cannot allocate the AdamW state (%.1f MB)",
                        (double)n * 8 / 1e6);
    }
    *out = o;
    return LMF_OK;
}

void lmf_optimizer_free(lmf_optimizer *o) {
    if (!o) return;
    lmf_free_big(o->m);
    lmf_free_big(o->v);
    free(o);
}

float *lmf_optimizer_m(lmf_optimizer *o) { return o->m; }
float *lmf_optimizer_v(lmf_optimizer *o) { return o->v; }
size_t lmf_optimizer_bytes(const lmf_optimizer *o) {
    return 2 * lmf_range_len(o->range) * sizeof(float);
}

/* The range's share of the squared norm. Under tensor parallelism a tensor that several ranks
 * of the group hold (replicated, or shared key/value heads) counts 1/copies on each, so that
 * the sum over the group counts every element of the whole model once; so does block 0 on the
 * first and last pipeline stage. */
static double range_sumsq(const lmf_optimizer *o, const float *grads) {
    const lmf_param_layout *l = o->layout;
    size_t n = lmf_range_len(o->range);
    int whole = l->layers == 0 || l->layers == l->n_blocks - 2; /* 0: a layout without stages */
    if (l->tp.size <= 1 && whole) return n ? o->k->sumsq(grads, n) : 0.0;
    double ss = 0.0;
    for (int i = 0; i < l->n_tensors; i++) {
        const lmf_tensor_info *t = &l->tensors[i];
        size_t b = t->offset > o->range.begin ? t->offset : o->range.begin;
        size_t e = t->offset + t->numel < o->range.end ? t->offset + t->numel : o->range.end;
        if (b >= e) continue;
        int copies = (t->tp_copies > 1 ? t->tp_copies : 1) * (t->pp_copies > 1 ? t->pp_copies : 1);
        ss += o->k->sumsq(grads + (b - o->range.begin), e - b) / (double)copies;
    }
    return ss;
}

lmf_status lmf_optimizer_step(lmf_optimizer *o, float *params, float *grads, float lr, int t,
                              float *grad_norm) {
    const lmf_optim_hooks *h = &o->hooks;
    /* the norm of the averaged gradient: each rank sums the squares of its range */
    double ss = range_sumsq(o, grads);
    if (h->sum) LMF_TRY(h->sum(h->ctx, &ss, 1));
    float gs = o->cfg.grad_scale > 0 ? o->cfg.grad_scale : 1.0f;
    double norm = sqrt(ss) * gs;
    if (grad_norm) *grad_norm = (float)norm;
    if (!isfinite(norm)) {
        if (h->after_update) LMF_TRY(h->after_update(h->ctx, 0));
        return lmf_fail(LMF_ERR_NUMERIC, "the gradient norm is %s: the update was skipped "
                        "(lower the learning rate or check the data)", isnan(norm) ? "NaN" : "Inf");
    }
    float clip = 1.0f;
    if (o->cfg.grad_clip > 0 && norm > o->cfg.grad_clip)
        clip = (float)(o->cfg.grad_clip / (norm + 1e-6));
    if (h->before_update) LMF_TRY(h->before_update(h->ctx));
    /* one pass: averaging and clipping folded into the update, the gradients zeroed */
    lmf_adamw_step(o->k, o->layout, o->range.begin, o->range.end, params, grads, o->m, o->v,
                   &o->cfg.hp, lr, gs * clip, t);
    return h->after_update ? h->after_update(h->ctx, 1) : LMF_OK;
}

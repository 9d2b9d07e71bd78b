/* AdamW over a parameter range, with per-tensor weight-decay masks. */
#include "lmforge/optim.h"

void lmf_adamw_step(const lmf_kernels *k, const lmf_param_layout *layout, size_t begin, size_t end,
                    float *params, float *grads, float *m, float *v,
                    const lmf_adamw_hp *hp, float lr, float grad_scale, int t) {
    for (int i = 0; i < layout->n_tensors && begin < end; i++) {
        const lmf_tensor_info *ti = &layout->tensors[i];
        size_t a = ti->offset, b = ti->offset + ti->numel;
        if (b <= begin || a >= end) continue;
        if (a < begin) a = begin;
        if (b > end) b = end;
        size_t o = a - begin;
        k->adamw(params + o, grads + o, m + o, v + o, b - a, lr, hp->beta1, hp->beta2, hp->eps,
                 ti->decay ? hp->weight_decay : 0.0f, grad_scale, t);
    }
}

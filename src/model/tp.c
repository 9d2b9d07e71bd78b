/* The model's side of tensor parallelism: its collectives through the tp_collective hook, and
 * under sequence parallelism the gathers of whole rows and the scatters of partial sums. */
#include <string.h>

#include "model/gpt_internal.h"

/* A collective over the tensor-parallel group (nothing without one). */
void lmf_gpt_tp(lmf_gpt *m, lmf_tp_op op, float *buf, float *out, size_t n) {
    if (m->layout.tp.size == 1) return;
    LMF_ASSERT(m->has_hooks && m->hooks.tp_collective); /* checked by lmf_gpt_forward */
    lmf_op_clock c;
    op_begin(&m->ops, &c);
    m->hooks.tp_collective(m->hooks.tp_ctx, op, buf, out, n);
    op_end(&m->ops, LMF_PHASE_TP_COMM, &c);
}

int lmf_gpt_local_rows(const lmf_gpt *m, int n) {
    return m->layout.tp.sequence_parallel ? n / m->layout.tp.size : n;
}

const float *lmf_gpt_sp_gather(lmf_gpt *m, const float *local, int BT) {
    const lmf_tp_dims *d = &m->layout.tp;
    if (!d->sequence_parallel) return local;
    size_t n = (size_t)lmf_gpt_local_rows(m, BT) * (size_t)m->cfg.n_embd;
    memcpy(m->sp_gather + (size_t)d->rank * n, local, n * sizeof(float));
    lmf_gpt_tp(m, LMF_TP_GATHER, m->sp_gather, NULL, n);
    return m->sp_gather;
}

float *lmf_gpt_sp_partial(lmf_gpt *m, float *out) {
    return m->layout.tp.sequence_parallel ? m->sp_part : out;
}

void lmf_gpt_sp_reduce(lmf_gpt *m, float *part, float *out, int BT) {
    size_t C = (size_t)m->cfg.n_embd;
    if (m->layout.tp.sequence_parallel)
        lmf_gpt_tp(m, LMF_TP_REDUCE_SCATTER, part, out, (size_t)lmf_gpt_local_rows(m, BT) * C);
    else
        lmf_gpt_tp(m, LMF_TP_SUM, out, NULL, (size_t)BT * C);
}

/* The tensor-parallel engine: the model's collectives over the group, the gradients of
 * replicated and shared tensors made whole, whole vectors from every rank's slices. */
#include "lmforge/tp.h"

#include <stdlib.h>
#include <string.h>

#include "lmforge/system.h"

struct lmf_tp {
    lmf_comm *comm;
    int size, rank;
    lmf_param_layout whole;       /* the unsplit layout */
    lmf_param_layout *ranks;      /* [size]: every rank's layout */
    size_t *counts;               /* [size] */
    float *pack;                  /* replicated gradients packed for one all-reduce */
    size_t pack_floats;
    float *gather;                /* [size * largest shared tensor]: shared gradients */
    size_t gather_floats;
    lmf_tp_stats stats;
};

static void account(lmf_tp *tp, double t0) {
    tp->stats.seconds += lmf_now_s() - t0;
    tp->stats.calls++;
}

static void hook_collective(void *ctx, lmf_tp_op op, float *buf, float *out, size_t n) {
    lmf_tp *tp = ctx;
    double t0 = lmf_now_s();
    for (int r = 0; r < tp->size; r++) tp->counts[r] = n;
    /* a failure stops the job (the communicator's policy) after naming rank, group and step */
    switch (op) {
    case LMF_TP_SUM:
        (void)lmf_comm_allreduce_f32(tp->comm, buf, n);
        break;
    case LMF_TP_MAX:
        (void)lmf_comm_allreduce(tp->comm, buf, n, LMF_COMM_F32, LMF_COMM_MAX);
        break;
    case LMF_TP_GATHER:
        (void)lmf_comm_allgather_f32(tp->comm, buf, NULL, tp->counts);
        break;
    case LMF_TP_REDUCE_SCATTER:
        (void)lmf_comm_reduce_scatter_f32(tp->comm, out, buf, tp->counts);
        break;
    }
    account(tp, t0);
}

void lmf_tp_hooks(lmf_tp *tp, lmf_gpt_hooks *h) {
    h->tp_collective = hook_collective;
    h->tp_ctx = tp;
}

/* the part of tensor t inside range: [*b, *e) of the flat vector, 0 when none */
static int clip(const lmf_tensor_info *t, lmf_range range, size_t *b, size_t *e) {
    *b = t->offset > range.begin ? t->offset : range.begin;
    *e = t->offset + t->numel < range.end ? t->offset + t->numel : range.end;
    return *b < *e;
}

lmf_status lmf_tp_create(lmf_comm *group, const lmf_gpt_config *cfg,
                         const lmf_param_layout *layout, lmf_tp **out) {
    *out = NULL;
    int size = lmf_comm_size(group), rank = lmf_comm_rank(group);
    if (layout->tp.size != size || layout->tp.rank != rank)
        return lmf_fail(LMF_ERR_ARG, "the layout is rank %d of %d tensor-parallel ranks, the "
                        "group's communicator rank %d of %d", layout->tp.rank, layout->tp.size,
                        rank, size);
    lmf_tp *tp = calloc(1, sizeof *tp);
    if (!tp) return lmf_fail(LMF_ERR_NOMEM, "cannot allocate the tensor-parallel engine");
    tp->comm = group;
    tp->size = size;
    tp->rank = rank;
    tp->ranks = calloc((size_t)size, sizeof *tp->ranks);
    tp->counts = calloc((size_t)size, sizeof *tp->counts);
    lmf_status s = tp->ranks && tp->counts ? LMF_OK
                                           : lmf_fail(LMF_ERR_NOMEM, "cannot allocate the "
                                                      "tensor-parallel engine");
    if (s == LMF_OK) s = lmf_layout_build(cfg, &tp->whole);
    /* every rank's slices of the same pipeline stage (the whole model without stages) */
    lmf_tp_config c = {size, 0, layout->tp.sequence_parallel};
    for (int r = 0; r < size && s == LMF_OK; r++) {
        c.rank = r;
        s = lmf_layout_build_ranges(cfg, &c, layout->n_ranges, layout->range_l0,
                                    layout->range_len, &tp->ranks[r]);
    }
    if (s == LMF_OK) {
        for (int i = 0; i < layout->n_tensors; i++) {
            const lmf_tensor_info *t = &layout->tensors[i];
            if (t->tp_reduce == LMF_TP_REDUCE_NONE) continue;
            if (t->tp_copies == size) tp->pack_floats += t->numel;
            else if ((size_t)size * t->numel > tp->gather_floats)
                tp->gather_floats = (size_t)size * t->numel;
        }
        tp->pack = malloc((tp->pack_floats ? tp->pack_floats : 1) * sizeof(float));
        tp->gather = malloc((tp->gather_floats ? tp->gather_floats : 1) * sizeof(float));
        if (!tp->pack || !tp->gather)
            s = lmf_fail(LMF_ERR_NOMEM, "cannot allocate the tensor-parallel gradient buffers");
    }
    if (s != LMF_OK) {
        lmf_tp_free(tp);
        return s;
    }
    *out = tp;
    return LMF_OK;
}

void lmf_tp_free(lmf_tp *tp) {
    if (!tp) return;
    if (tp->ranks)
        for (int r = 0; r < tp->size; r++) lmf_layout_free(&tp->ranks[r]);
    lmf_layout_free(&tp->whole);
    free(tp->ranks);
    free(tp->counts);
    free(tp->pack);
    free(tp->gather);
    free(tp);
}

const lmf_param_layout *lmf_tp_whole_layout(const lmf_tp *tp) { return &tp->whole; }

void lmf_tp_stats_get(const lmf_tp *tp, lmf_tp_stats *out) { *out = tp->stats; }

lmf_status lmf_tp_reduce_grads(lmf_tp *tp, float *grads, lmf_range range) {
    if (tp->size == 1) return LMF_OK;
    double t0 = lmf_now_s();
    const lmf_param_layout *l = &tp->ranks[tp->rank];
    /* tensors every rank of the group holds: one all-reduce over all of them */
    size_t n = 0, b, e;
    for (int i = 0; i < l->n_tensors; i++) {
        const lmf_tensor_info *t = &l->tensors[i];
        if (t->tp_reduce == LMF_TP_REDUCE_NONE || t->tp_copies != tp->size || !clip(t, range, &b, &e))
            continue;
        memcpy(tp->pack + n, grads + (b - range.begin), (e - b) * sizeof(float));
        n += e - b;
    }
    if (n) LMF_TRY(lmf_comm_allreduce_f32(tp->comm, tp->pack, n));
    n = 0;
    for (int i = 0; i < l->n_tensors; i++) {
        const lmf_tensor_info *t = &l->tensors[i];
        if (t->tp_reduce == LMF_TP_REDUCE_NONE || t->tp_copies != tp->size || !clip(t, range, &b, &e))
            continue;
        float *g = grads + (b - range.begin);
        float f = t->tp_reduce == LMF_TP_REDUCE_MEAN ? 1.0f / (float)tp->size : 1.0f;
        for (size_t j = 0; j < e - b; j++) g[j] = tp->pack[n + j] * f;
        n += e - b;
    }
    /* tensors shared by some ranks (key/value heads fewer than the ranks): every rank's
     * gradient gathered, each summing those of the ranks holding the same slice */
    for (int i = 0; i < l->n_tensors; i++) {
        const lmf_tensor_info *t = &l->tensors[i];
        if (t->tp_reduce == LMF_TP_REDUCE_NONE || t->tp_copies == tp->size || !clip(t, range, &b, &e))
            continue;
        size_t len = e - b;
        for (int r = 0; r < tp->size; r++) tp->counts[r] = len;
        memcpy(tp->gather + (size_t)tp->rank * len, grads + (b - range.begin), len * sizeof(float));
        LMF_TRY(lmf_comm_allgather_f32(tp->comm, tp->gather, NULL, tp->counts));
        float *g = grads + (b - range.begin);
        memset(g, 0, len * sizeof(float));
        for (int r = 0; r < tp->size; r++) {
            if (tp->ranks[r].tensors[i].col0 != t->col0) continue;
            const float *src = tp->gather + (size_t)r * len;
            for (size_t j = 0; j < len; j++) g[j] += src[j];
        }
    }
    account(tp, t0);
    return LMF_OK;
}

lmf_status lmf_tp_gather_range(lmf_tp *tp, const float *part, lmf_range range, float *out) {
    const lmf_param_layout *l = &tp->ranks[tp->rank];
    if (tp->size == 1) {
        lmf_layout_place_range(l, &tp->whole, part, range, out);
        return LMF_OK;
    }
    size_t n = l->total; /* every rank's slices add up to the same count */
    float *all = malloc((size_t)tp->size * n * sizeof(float));
    if (!all) return lmf_fail(LMF_ERR_NOMEM, "cannot allocate %.1f MB to assemble the whole "
                              "model's tensors", (double)tp->size * (double)n * 4 / 1e6);
    for (int r = 0; r < tp->size; r++) tp->counts[r] = n;
    lmf_status s = lmf_comm_allgather_f32(tp->comm, all, part, tp->counts);
    if (s == LMF_OK)
        for (int r = 0; r < tp->size; r++)
            lmf_layout_place_range(&tp->ranks[r], &tp->whole, all + (size_t)r * n, range, out);
    free(all);
    return s;
}

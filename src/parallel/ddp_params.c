/* Engine weights: the full block (stages 0-2) or per-block gathers with prefetch (stage 3). */
#include "parallel/ddp_internal.h"

#include <string.h>

/* Start gathering block b into buffer g (which must be idle). */
static lmf_status gather_start(lmf_ddp *d, ddp_gbuf *g, int b) {
    LMF_ASSERT(!g->req && !g->held);
    lmf_range r = {d->layout->block_offset[b], d->layout->block_offset[b + 1]};
    lmf_range mine = lmf_range_intersect(r, d->shard);
    const float *send = d->pshard + (mine.begin - d->shard.begin);
    g->block = b;
    g->valid = 0;
    g->started = ++d->gathers;
    return lmf_comm_iallgather_f32(d->comm, g->data, send,
                                   d->block_counts + (size_t)b * (size_t)d->world, &g->req);
}

static lmf_status gather_wait(lmf_ddp *d, ddp_gbuf *g) {
    if (!g->req) return LMF_OK;
    double t0 = lmf_now_s();
    lmf_status s = lmf_comm_wait(d->comm, &g->req);
    d->stats.wait_s += lmf_now_s() - t0;
    d->stats.waited++;
    LMF_TRY(s);
    g->valid = 1;
    return LMF_OK;
}

/* the buffer holding or gathering block b, or NULL */
static ddp_gbuf *gbuf_of(lmf_ddp *d, int b) {
    if (b == 0) return d->gbufs[0].block == 0 ? &d->gbufs[0] : NULL;
    for (int g = 1; g < DDP_N_GBUFS; g++)
        if (d->gbufs[g].block == b) return &d->gbufs[g];
    return NULL;
}

/* an idle buffer for block b (b > 0) other than `avoid`: not held by the model, the one whose
 * gather started first; a gather still in flight in it is completed first. The choice must not
 * depend on which gathers happen to have completed: it decides which blocks stay cached, and so
 * which gathers the replicas start later, and every replica must start the same ones in the
 * same order (a pipeline's interleaved micro-batches ask for blocks again) */
static lmf_status gbuf_take(lmf_ddp *d, int b, const ddp_gbuf *avoid, ddp_gbuf **out) {
    *out = NULL;
    if (b == 0) {
        *out = &d->gbufs[0];
        return gather_wait(d, &d->gbufs[0]);
    }
    for (int g = 1; g < DDP_N_GBUFS; g++) {
        ddp_gbuf *c = &d->gbufs[g];
        if (c->held || c == avoid) continue;
        if (!*out || c->started < (*out)->started) *out = c;
    }
    if (!*out) return LMF_OK;
    LMF_TRY(gather_wait(d, *out));
    (*out)->block = -1;
    (*out)->valid = 0;
    return LMF_OK;
}

/* the block the model asks for after b in this phase (forward upwards, backward downwards;
 * block 0 stays gathered), or -1 */
static int next_block(const lmf_ddp *d, int b, int phase) {
    if (phase == 0) return b + 1 < d->n_blocks ? b + 1 : -1;
    return b - 1 >= 1 ? b - 1 : -1;
}

static lmf_status params_block3(lmf_ddp *d, int b, int phase, ddp_gbuf **out) {
    ddp_gbuf *g = gbuf_of(d, b);
    if (!g) {
        LMF_TRY(gbuf_take(d, b, NULL, &g));
        LMF_ASSERT(g != NULL); /* the model holds at most one block besides block 0 */
        LMF_TRY(gather_start(d, g, b));
    }
    LMF_TRY(gather_wait(d, g));
    g->held = 1;
    *out = g;
    int nb = next_block(d, b, phase);
    if (!d->cfg.no_prefetch && nb > 0 && !gbuf_of(d, nb)) {
        ddp_gbuf *p;
        LMF_TRY(gbuf_take(d, nb, g, &p));
        if (p) LMF_TRY(gather_start(d, p, nb));
    }
    return LMF_OK;
}

float *lmf_ddp_params_block(lmf_ddp *d, int b, int phase) {
    LMF_ASSERT(b >= 0 && b < d->n_blocks);
    if (d->stage < 3) return d->params + d->layout->block_offset[b];
    ddp_gbuf *g = NULL;
    lmf_status s = params_block3(d, b, phase, &g);
    lmf_ddp_note(d, s);
    if (s != LMF_OK || !g) return d->gbufs[b == 0 ? 0 : 1].data; /* the step reports it */
    return g->data;
}

void lmf_ddp_params_release(lmf_ddp *d, int b, int phase) {
    if (d->stage < 3) return;
    ddp_gbuf *g = gbuf_of(d, b);
    if (g) g->held = 0; /* the weights stay valid for reuse until the next update */
}

lmf_status lmf_ddp_invalidate_gathers(lmf_ddp *d) {
    lmf_status first = LMF_OK;
    for (int g = 0; g < DDP_N_GBUFS; g++) {
        ddp_gbuf *b = &d->gbufs[g];
        lmf_status s = gather_wait(d, b);
        if (first == LMF_OK) first = s;
        b->block = -1;
        b->valid = 0;
        b->held = 0;
    }
    return first;
}

/* chunks of at most this many floats per all-gather (far below 2^31-1) */
#define GATHER_CHUNK ((size_t)1 << 28)

lmf_status lmf_ddp_gather_flat(lmf_ddp *d, float *full, const float *send_shard) {
    for (size_t a = 0; a < d->n; a += GATHER_CHUNK) {
        lmf_range r = {a, a + GATHER_CHUNK < d->n ? a + GATHER_CHUNK : d->n};
        lmf_range mine = lmf_range_intersect(r, d->shard);
        lmf_partition_counts(d->n, d->world, r, d->tmp_counts);
        const float *send = send_shard ? send_shard + (mine.begin - d->shard.begin) : NULL;
        LMF_TRY(lmf_comm_allgather_f32(d->comm, full + a, send, d->tmp_counts));
    }
    return LMF_OK;
}

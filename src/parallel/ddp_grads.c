/* Gradient buckets: staging, and all-reduce/reduce-scatter started as each bucket completes. */
#include "parallel/ddp_internal.h"

#include <string.h>

/* A bucket's reduction has completed: stages 2/3 add this rank's part of the sum into the
 * gradient shard and give the staging slot back. */
static void bucket_completed(lmf_ddp *d, ddp_bucket *k) {
    if (d->stage >= 2) {
        ddp_slot *s = &d->slots[k->slot];
        float *dst = d->grads + (k->mine.begin - d->shard.begin);
        size_t n = lmf_range_len(k->mine);
        for (size_t i = 0; i < n; i++) dst[i] += s->send[i];
        s->bucket = -1;
        k->slot = -1;
    }
}

static lmf_status bucket_wait(lmf_ddp *d, ddp_bucket *k) {
    if (!k->req) return LMF_OK;
    double t0 = lmf_now_s();
    lmf_status s = lmf_comm_wait(d->comm, &k->req);
    d->stats.wait_s += lmf_now_s() - t0;
    d->stats.waited++;
    LMF_TRY(s);
    bucket_completed(d, k);
    return LMF_OK;
}

lmf_status lmf_ddp_progress(lmf_ddp *d) {
    for (int i = 0; i < d->n_buckets; i++) {
        ddp_bucket *k = &d->buckets[i];
        if (!k->req) continue;
        int done;
        LMF_TRY(lmf_comm_test(d->comm, &k->req, &done));
        if (done) {
            bucket_completed(d, k);
            d->stats.hidden++;
        }
    }
    for (int g = 0; g < DDP_N_GBUFS; g++) {
        ddp_gbuf *b = &d->gbufs[g];
        if (!b->req) continue;
        int done;
        LMF_TRY(lmf_comm_test(d->comm, &b->req, &done));
        if (done) {
            b->valid = 1;
            d->stats.hidden++;
        }
    }
    return LMF_OK;
}

/* Stages 2/3: give bucket k a zeroed staging slot; block 0's bucket has its own, the others
 * take a free one or the one whose reduction was started longest ago (waiting for it). */
static lmf_status bucket_open(lmf_ddp *d, int ki) {
    ddp_bucket *k = &d->buckets[ki];
    LMF_TRY(bucket_wait(d, k)); /* its reduction of the previous micro-step, if any */
    int s = -1;
    if (k->blk_lo == 0) {
        s = 0;
    } else {
        for (int i = 1; i < d->n_slots && s < 0; i++)
            if (d->slots[i].bucket < 0) s = i;
        /* both busy: buckets are reduced in order, so the lower index started earlier */
        int oldest = -1;
        for (int i = 1; i < d->n_slots && s < 0; i++) {
            int kb = d->slots[i].bucket;
            if (d->buckets[kb].req && (oldest < 0 || kb < d->slots[oldest].bucket)) oldest = i;
        }
        if (s < 0) {
            LMF_ASSERT(oldest >= 0); /* a slot is always either free or reducing */
            LMF_TRY(bucket_wait(d, &d->buckets[d->slots[oldest].bucket]));
            s = oldest;
        }
    }
    ddp_slot *sl = &d->slots[s];
    LMF_ASSERT(sl->bucket < 0 && lmf_range_len(k->range) <= sl->cap);
    memset(sl->send, 0, lmf_range_len(k->range) * sizeof(float));
    sl->bucket = ki;
    k->slot = s;
    return LMF_OK;
}

float *lmf_ddp_grads_block(lmf_ddp *d, int b) {
    LMF_ASSERT(b >= 0 && b < d->n_blocks);
    size_t off = d->layout->block_offset[b];
    if (d->stage < 2) return d->grads + off;
    int ki = d->block_bucket[b];
    ddp_bucket *k = &d->buckets[ki];
    if (k->slot < 0 || k->req) lmf_ddp_note(d, bucket_open(d, ki));
    if (k->slot < 0) return d->slots[0].send; /* failed: the step reports it */
    return d->slots[k->slot].send + (off - k->range.begin);
}

static lmf_status bucket_start(lmf_ddp *d, ddp_bucket *k) {
    if (d->stage < 2 && k->reduced)
        return lmf_fail(LMF_ERR_STATE, "the gradients of blocks %d..%d were about to be summed "
                        "over ranks twice in one optimizer step: with gradient accumulation, call "
                        "lmf_ddp_begin_micro before each micro-step", k->blk_lo, k->blk_hi);
    if (d->stage < 2) {
        LMF_TRY(lmf_comm_iallreduce(d->comm, d->grads + k->range.begin, lmf_range_len(k->range),
                                    LMF_COMM_F32, LMF_COMM_SUM, &k->req));
    } else {
        ddp_slot *s = &d->slots[k->slot];
        LMF_TRY(lmf_comm_ireduce_scatter_f32(d->comm, s->send, s->send, k->counts, &k->req));
    }
    k->reduced = 1;
    if (d->cfg.no_overlap) LMF_TRY(bucket_wait(d, k));
    return LMF_OK;
}

void lmf_ddp_grads_ready(lmf_ddp *d, int b) {
    LMF_ASSERT(b >= 0 && b < d->n_blocks);
    ddp_bucket *k = &d->buckets[d->block_bucket[b]];
    if (++k->n_ready < k->blk_hi - k->blk_lo + 1) return;
    k->n_ready = 0;
    if (!d->reduce_now) return;
    if (d->stage >= 2 && k->slot < 0) return; /* opening it failed; already noted */
    lmf_ddp_note(d, bucket_start(d, k));
}

lmf_status lmf_ddp_finish_buckets(lmf_ddp *d) {
    lmf_status first = LMF_OK;
    for (int i = 0; i < d->n_buckets; i++) {
        lmf_status s = bucket_wait(d, &d->buckets[i]);
        if (first == LMF_OK) first = s;
    }
    return first;
}

static void reset_buckets(lmf_ddp *d) {
    for (int i = 0; i < d->n_buckets; i++) {
        d->buckets[i].reduced = 0;
        d->buckets[i].n_ready = 0;
    }
}

void lmf_ddp_zero_grads(lmf_ddp *d) {
    size_t n = d->stage >= 2 ? lmf_range_len(d->shard) : d->n;
    if (n) memset(d->grads, 0, n * sizeof(float));
    reset_buckets(d);
}

void lmf_ddp_reset_grads_after_step(lmf_ddp *d) {
    /* the AdamW pass zeroed the owned range; stage 1 keeps full-size gradients, whose other
     * ranges this rank reduced for its peers but does not update */
    if (d->stage == 1) {
        memset(d->grads, 0, d->owned.begin * sizeof(float));
        memset(d->grads + d->owned.end, 0, (d->n - d->owned.end) * sizeof(float));
    }
    /* stage 0 owns everything; stages 2 and 3 hold only the owned shard's gradients */
    LMF_ASSERT(d->stage != 0 || lmf_range_len(d->owned) == d->n);
    LMF_ASSERT(d->stage < 2 || lmf_range_len(d->owned) == lmf_range_len(d->shard));
    reset_buckets(d);
}

lmf_status lmf_ddp_abandon_step(lmf_ddp *d) {
    lmf_status s = lmf_ddp_finish_buckets(d);
    if (d->stage == 3) {
        lmf_status g = lmf_ddp_invalidate_gathers(d);
        if (s == LMF_OK) s = g;
    }
    lmf_ddp_zero_grads(d);
    return s;
}

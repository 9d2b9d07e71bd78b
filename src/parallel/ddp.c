/* Data-parallel engine: creation (partition, buckets, buffers), model hooks, state and memory. */
#include "parallel/ddp_internal.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

void lmf_ddp_stats_get(const lmf_ddp *d, lmf_ddp_stats *out) { *out = d->stats; }

static size_t block_len(const lmf_param_layout *l, int b) {
    return l->block_offset[b + 1] - l->block_offset[b];
}

/* The model's gradient buckets (lmf_ddp_group_buckets: blocks in backward order up to the
 * target size, never above 2^31-1 floats, block 0 alone), with this rank's part of each, and
 * the sizes of the staging and gather buffers for them (lmf_ddp_buffer_caps) into *caps. */
static lmf_status build_buckets(lmf_ddp *d, lmf_ddp_buffers *caps) {
    const lmf_param_layout *l = d->layout;
    d->buckets = calloc((size_t)d->n_blocks, sizeof *d->buckets);
    d->block_bucket = calloc((size_t)d->n_blocks, sizeof *d->block_bucket);
    int *lo = calloc((size_t)d->n_blocks, sizeof *lo), *hi = calloc((size_t)d->n_blocks, sizeof *hi);
    if (!d->buckets || !d->block_bucket || !lo || !hi) {
        free(lo);
        free(hi);
        return lmf_fail(LMF_ERR_NOMEM, "cannot allocate buckets");
    }
    d->n_buckets = lmf_ddp_group_buckets(l, d->cfg.bucket_bytes, lo, hi);
    lmf_ddp_buffer_caps(l, d->stage, d->n_buckets, lo, hi, caps);
    for (int i = 0; i < d->n_buckets; i++) {
        ddp_bucket *k = &d->buckets[i];
        k->blk_lo = lo[i];
        k->blk_hi = hi[i];
        for (int b = lo[i]; b <= hi[i]; b++) d->block_bucket[b] = i;
    }
    free(lo);
    free(hi);
    for (int i = 0; i < d->n_buckets; i++) {
        ddp_bucket *k = &d->buckets[i];
        k->range.begin = l->block_offset[k->blk_lo];
        k->range.end = l->block_offset[k->blk_hi + 1];
        k->mine = lmf_range_intersect(k->range, d->shard);
        k->slot = -1;
        k->counts = calloc((size_t)d->world, sizeof(size_t));
        if (!k->counts) return lmf_fail(LMF_ERR_NOMEM, "cannot allocate buckets");
        lmf_partition_counts(d->n, d->world, k->range, k->counts);
    }
    return LMF_OK;
}

static float *alloc_floats(size_t n) { return lmf_calloc_big(n, sizeof(float)); }

/* Stages 2/3: staging slots (block 0's bucket, and up to two for the rest). */
static lmf_status build_slots(lmf_ddp *d, const lmf_ddp_buffers *caps) {
    d->n_slots = caps->n_slots;
    for (int s = 0; s < DDP_MAX_SLOTS; s++) d->slots[s].bucket = -1;
    for (int s = 0; s < d->n_slots; s++) {
        d->slots[s].cap = caps->slot[s];
        d->slots[s].send = alloc_floats(d->slots[s].cap);
        if (!d->slots[s].send)
            return lmf_fail(LMF_ERR_NOMEM, "cannot allocate gradient staging (%.1f MB)",
                            (double)d->slots[s].cap * 4 / 1e6);
    }
    return LMF_OK;
}

/* Stage 3: per-block gather counts and the gather buffers. */
static lmf_status build_gathers(lmf_ddp *d, const lmf_ddp_buffers *caps) {
    const lmf_param_layout *l = d->layout;
    d->block_counts = calloc((size_t)d->n_blocks * (size_t)d->world, sizeof(size_t));
    if (!d->block_counts) return lmf_fail(LMF_ERR_NOMEM, "cannot allocate gather counts");
    for (int b = 0; b < d->n_blocks; b++) {
        lmf_range r = {l->block_offset[b], l->block_offset[b + 1]};
        lmf_partition_counts(d->n, d->world, r, d->block_counts + (size_t)b * (size_t)d->world);
    }
    for (int g = 0; g < DDP_N_GBUFS; g++) {
        d->gbufs[g].cap = caps->gather[g];
        d->gbufs[g].block = -1;
        d->gbufs[g].data = alloc_floats(d->gbufs[g].cap);
        if (!d->gbufs[g].data)
            return lmf_fail(LMF_ERR_NOMEM, "cannot allocate a weight gather buffer (%.1f MB)",
                            (double)d->gbufs[g].cap * 4 / 1e6);
    }
    return LMF_OK;
}

static lmf_status ddp_setup(lmf_ddp *d, float *params) {
    const lmf_param_layout *l = d->layout;
    for (int b = 0; b < d->n_blocks; b++)
        if (block_len(l, b) > (size_t)INT_MAX)
            return lmf_fail(LMF_ERR_ARG, "block %d holds %zu floats, more than one collective "
                            "moves (2^31-1); use a smaller model or more layers", b,
                            block_len(l, b));
    d->tmp_counts = calloc((size_t)d->world, sizeof(size_t));
    if (!d->tmp_counts) return lmf_fail(LMF_ERR_NOMEM, "cannot allocate the engine");
    lmf_ddp_buffers caps;
    LMF_TRY(build_buckets(d, &caps));
    size_t shard = lmf_range_len(d->shard);
    d->grads = alloc_floats(d->stage >= 2 ? shard : d->n);
    if (!d->grads)
        return lmf_fail(LMF_ERR_NOMEM, "cannot allocate the gradients (%.1f MB)",
                        (double)(d->stage >= 2 ? shard : d->n) * 4 / 1e6);
    if (d->stage >= 2) LMF_TRY(build_slots(d, &caps));
    /* every rank starts from rank 0's weights */
    LMF_TRY(lmf_comm_broadcast(d->comm, params, d->n * sizeof(float), 0));
    if (d->stage == 3) {
        LMF_TRY(build_gathers(d, &caps));
        d->pshard = alloc_floats(shard);
        if (!d->pshard) return lmf_fail(LMF_ERR_NOMEM, "cannot allocate the weight shard");
        if (shard) memcpy(d->pshard, params + d->shard.begin, shard * sizeof(float));
    } else {
        d->params = params;
    }
    return LMF_OK;
}

lmf_status lmf_ddp_create(lmf_comm *comm, const lmf_param_layout *layout,
                          const lmf_ddp_config *cfg, float *params, lmf_ddp **out) {
    *out = NULL;
    if (cfg->zero_stage < 0 || cfg->zero_stage > 3)
        return lmf_fail(LMF_ERR_ARG, "ZeRO stage %d: use 0, 1, 2 or 3", cfg->zero_stage);
    lmf_ddp *d = calloc(1, sizeof *d);
    if (!d) return lmf_fail(LMF_ERR_NOMEM, "cannot allocate the data-parallel engine");
    d->comm = comm;
    d->layout = layout;
    d->cfg = *cfg;
    if (d->cfg.bucket_bytes == 0) d->cfg.bucket_bytes = LMF_DDP_DEFAULT_BUCKET_BYTES;
    d->rank = lmf_comm_rank(comm);
    d->world = lmf_comm_size(comm);
    d->stage = cfg->zero_stage;
    d->n_blocks = layout->n_blocks;
    d->n = layout->total;
    d->shard = lmf_partition_range(d->n, d->world, d->rank);
    d->owned = d->stage == 0 ? (lmf_range){0, d->n} : d->shard;
    d->reduce_now = 1;
    lmf_status s = ddp_setup(d, params);
    if (s != LMF_OK) {
        lmf_ddp_free(d);
        return s;
    }
    *out = d;
    return LMF_OK;
}

void lmf_ddp_free(lmf_ddp *d) {
    if (!d) return;
    /* collectives still in flight must end before their buffers go */
    lmf_ddp_note(d, lmf_ddp_finish_buckets(d));
    if (d->stage == 3) lmf_ddp_note(d, lmf_ddp_invalidate_gathers(d));
    if (d->buckets)
        for (int i = 0; i < d->n_buckets; i++) free(d->buckets[i].counts);
    free(d->buckets);
    free(d->block_bucket);
    free(d->block_counts);
    for (int s = 0; s < DDP_MAX_SLOTS; s++) {
        lmf_free_big(d->slots[s].send);
    }
    for (int g = 0; g < DDP_N_GBUFS; g++) lmf_free_big(d->gbufs[g].data);
    free(d->tmp_counts);
    lmf_free_big(d->pshard);
    lmf_free_big(d->grads);
    free(d);
}

/* ---- hooks: every one also moves outstanding collectives forward ---- */

static float *hook_block_params(void *ctx, int b, int phase) {
    lmf_ddp *d = ctx;
    lmf_ddp_note(d, lmf_ddp_progress(d));
    return lmf_ddp_params_block(d, b, phase);
}

static void hook_release_params(void *ctx, int b, int phase) {
    lmf_ddp *d = ctx;
    lmf_ddp_params_release(d, b, phase);
    lmf_ddp_note(d, lmf_ddp_progress(d));
}

static float *hook_block_grads(void *ctx, int b) {
    lmf_ddp *d = ctx;
    lmf_ddp_note(d, lmf_ddp_progress(d));
    return lmf_ddp_grads_block(d, b);
}

static void hook_grads_ready(void *ctx, int b) {
    lmf_ddp *d = ctx;
    lmf_ddp_grads_ready(d, b);
    lmf_ddp_note(d, lmf_ddp_progress(d));
}

void lmf_ddp_hooks(lmf_ddp *d, lmf_gpt_hooks *h) {
    h->block_params = hook_block_params;
    h->release_params = hook_release_params;
    h->block_grads = hook_block_grads;
    h->grads_ready = hook_grads_ready;
    h->ctx = d;
}

lmf_status lmf_ddp_begin_micro(lmf_ddp *d, int micro, int n_micro) {
    if (n_micro < 1 || micro < 0 || micro >= n_micro)
        return lmf_fail(LMF_ERR_ARG, "micro-step %d of %d: need 0 <= micro < n_micro", micro,
                        n_micro);
    d->reduce_now = d->stage >= 2 || micro == n_micro - 1;
    return LMF_OK;
}

/* ---- accessors, state, memory ---- */

lmf_range lmf_ddp_owned(const lmf_ddp *d) { return d->owned; }
float lmf_ddp_grad_scale(const lmf_ddp *d) {
    return d->cfg.grad_scale > 0 ? d->cfg.grad_scale : 1.0f / (float)d->world;
}
float *lmf_ddp_owned_params(lmf_ddp *d) {
    return d->stage == 3 ? d->pshard : d->params + d->owned.begin;
}
float *lmf_ddp_owned_grads(lmf_ddp *d) {
    return d->stage >= 2 ? d->grads : d->grads + d->owned.begin;
}
int lmf_ddp_stage(const lmf_ddp *d) { return d->stage; }
int lmf_ddp_n_buckets(const lmf_ddp *d) { return d->n_buckets; }

void lmf_ddp_bucket_blocks(const lmf_ddp *d, int i, int *lo, int *hi) {
    LMF_ASSERT(i >= 0 && i < d->n_buckets);
    *lo = d->buckets[i].blk_lo;
    *hi = d->buckets[i].blk_hi;
}

lmf_status lmf_ddp_gather_params(lmf_ddp *d, float *full) {
    if (d->stage < 3) {
        if (full != d->params) memcpy(full, d->params, d->n * sizeof(float));
        return LMF_OK;
    }
    return lmf_ddp_gather_flat(d, full, d->pshard);
}

lmf_status lmf_ddp_gather_owned(lmf_ddp *d, float *full, const float *owned_part) {
    if (d->stage == 0) {
        memcpy(full, owned_part, d->n * sizeof(float));
        return LMF_OK;
    }
    return lmf_ddp_gather_flat(d, full, owned_part);
}

void lmf_ddp_load_params(lmf_ddp *d, const float *params_full) {
    size_t sh = lmf_range_len(d->shard);
    if (d->stage == 3) {
        if (sh) memcpy(d->pshard, params_full + d->shard.begin, sh * sizeof(float));
        lmf_ddp_note(d, lmf_ddp_invalidate_gathers(d));
    } else if (params_full != d->params) {
        memcpy(d->params, params_full, d->n * sizeof(float));
    }
}

void lmf_ddp_memory_used(const lmf_ddp *d, lmf_ddp_memory *out) {
    size_t sh = lmf_range_len(d->shard);
    out->weights = (d->stage == 3 ? sh : d->n) * sizeof(float);
    out->grads = (d->stage >= 2 ? sh : d->n) * sizeof(float);
    out->optim = 0;
    size_t buf = 0;
    for (int s = 0; s < DDP_MAX_SLOTS; s++)
        if (d->slots[s].send) buf += d->slots[s].cap;
    for (int g = 0; g < DDP_N_GBUFS; g++)
        if (d->gbufs[g].data) buf += d->gbufs[g].cap;
    out->buffers = buf * sizeof(float);
}

void lmf_ddp_memory_theory(size_t n, int world, int zero_stage, lmf_ddp_memory *out) {
    size_t w = world < 1 ? 1 : (size_t)world, part = (n + w - 1) / w;
    out->weights = (zero_stage >= 3 ? part : n) * sizeof(float);
    out->grads = (zero_stage >= 2 ? part : n) * sizeof(float);
    out->optim = 2 * (zero_stage >= 1 ? part : n) * sizeof(float);
    out->buffers = 0;
}

/* The data-parallel engine's buffers sized from a parameter layout alone (no engine, no ranks). */
#include "parallel/ddp_internal.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

int lmf_ddp_group_buckets(const lmf_param_layout *l, size_t bucket_bytes, int *lo, int *hi) {
    if (bucket_bytes == 0) bucket_bytes = LMF_DDP_DEFAULT_BUCKET_BYTES;
    return lmf_layout_buckets(l, bucket_bytes / sizeof(float), (size_t)INT_MAX, lo, hi);
}

void lmf_ddp_buffer_caps(const lmf_param_layout *l, int zero_stage, int n_buckets,
                         const int *lo, const int *hi, lmf_ddp_buffers *out) {
    memset(out, 0, sizeof *out);
    size_t block0 = l->block_offset[1] - l->block_offset[0], bucket = 0, block = 0;
    for (int i = 0; i < n_buckets; i++) { /* the largest bucket besides block 0's */
        size_t len = l->block_offset[hi[i] + 1] - l->block_offset[lo[i]];
        if (lo[i] != 0 && len > bucket) bucket = len;
    }
    for (int b = 1; b < l->n_blocks; b++) { /* the largest block besides block 0 */
        size_t len = l->block_offset[b + 1] - l->block_offset[b];
        if (len > block) block = len;
    }
    if (zero_stage >= 2) {
        /* block 0's bucket has its own slot; two more let one bucket fill while the previous
         * one is reduced, one is enough with a single other bucket */
        int others = n_buckets - 1;
        out->n_slots = 1 + (others < DDP_MAX_SLOTS - 1 ? others : DDP_MAX_SLOTS - 1);
        out->slot[0] = block0;
        for (int s = 1; s < out->n_slots; s++) out->slot[s] = bucket;
    }
    if (zero_stage == 3) { /* block 0, and two for the layers: one in use, one prefetched */
        out->n_gathers = DDP_N_GBUFS;
        out->gather[0] = block0;
        for (int g = 1; g < DDP_N_GBUFS; g++) out->gather[g] = block;
    }
    size_t floats = 0;
    for (int s = 0; s < out->n_slots; s++) floats += out->slot[s];
    for (int g = 0; g < out->n_gathers; g++) floats += out->gather[g];
    out->bytes = floats * sizeof(float);
}

lmf_status lmf_ddp_size_buffers(const lmf_param_layout *l, int zero_stage, size_t bucket_bytes,
                                lmf_ddp_buffers *out) {
    memset(out, 0, sizeof *out);
    if (zero_stage < 0 || zero_stage > 3)
        return lmf_fail(LMF_ERR_ARG, "ZeRO stage %d: use 0, 1, 2 or 3", zero_stage);
    int *lo = calloc((size_t)l->n_blocks, sizeof *lo), *hi = calloc((size_t)l->n_blocks, sizeof *hi);
    if (!lo || !hi) {
        free(lo);
        free(hi);
        return lmf_fail(LMF_ERR_NOMEM, "cannot allocate the bucket list of %d blocks", l->n_blocks);
    }
    int nb = lmf_ddp_group_buckets(l, bucket_bytes, lo, hi);
    lmf_ddp_buffer_caps(l, zero_stage, nb, lo, hi, out);
    free(lo);
    free(hi);
    return LMF_OK;
}

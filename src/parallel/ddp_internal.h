/* Internal state of the data-parallel engine, shared by its files (buckets, weights, update). */
#ifndef LMF_PARALLEL_DDP_INTERNAL_H
#define LMF_PARALLEL_DDP_INTERNAL_H

#include "lmforge/ddp.h"
#include "lmforge/system.h"

/* A gradient bucket: consecutive blocks [blk_lo, blk_hi], reduced together. */
typedef struct ddp_bucket {
    int blk_lo, blk_hi;
    lmf_range range;       /* its floats in the flat vector */
    lmf_range mine;        /* the part inside this rank's shard */
    size_t *counts;        /* [world]: parts per rank (reduce-scatter) */
    int n_ready;           /* blocks whose gradients are complete in this micro-step */
    int slot;              /* staging slot in use (stages 2/3), -1 when none */
    int reduced;           /* a reduction was started since the last optimizer step */
    lmf_comm_req *req;     /* reduction in flight, or NULL */
} ddp_bucket;

/* Stages 2/3: where one bucket's local gradients accumulate before the reduce-scatter. */
typedef struct ddp_slot {
    float *send;           /* [cap] staged gradients of the bucket; after the in-place
                            * reduce-scatter its start holds this rank's part of the sum */
    size_t cap;
    int bucket;            /* bucket using it, -1 when free */
} ddp_slot;

/* Stage 3: one block's gathered weights. */
typedef struct ddp_gbuf {
    float *data;
    size_t cap;
    int block;             /* block gathered or being gathered, -1 when none */
    int valid;             /* the gather completed and the weights are current */
    int held;              /* the model is using it (between block_params and release) */
    lmf_comm_req *req;     /* gather in flight, or NULL */
    unsigned long started; /* when its last gather started (the engine's gather count) */
} ddp_gbuf;

#define DDP_MAX_SLOTS 3
#define DDP_N_GBUFS 3

struct lmf_ddp {
    lmf_comm *comm;
    const lmf_param_layout *layout;
    lmf_ddp_config cfg;
    int rank, world, stage, n_blocks;
    size_t n;              /* floats in the flat vector */
    lmf_range shard;       /* this rank's part of the partition */
    lmf_range owned;       /* range of the optimizer's state and update: shard (1-3), all (0) */

    float *params;         /* stages 0-2: the caller's full block */
    float *pshard;         /* stage 3: this rank's weights [len(shard)] */
    float *grads;          /* stages 0/1: full [n]; 2/3: shard [len(shard)] */

    int *block_bucket;     /* [n_blocks] */
    size_t *block_counts;  /* [n_blocks * world]: stage 3 gather parts */
    ddp_bucket *buckets;   /* in reduction (backward) order */
    int n_buckets;
    ddp_slot slots[DDP_MAX_SLOTS]; /* 0: block 0's bucket; 1, 2: the others (stages 2/3) */
    int n_slots;           /* slots allocated */
    ddp_gbuf gbufs[DDP_N_GBUFS];   /* 0: block 0; 1, 2: the other blocks (stage 3) */
    unsigned long gathers; /* stage-3 gathers started so far */
    size_t *tmp_counts;    /* [world] scratch for blocking gathers */

    int reduce_now;        /* this micro-step's backward reduces */
    double t_step;         /* when lmf_ddp_reduce_wait began (for stats.step_s) */
    lmf_ddp_stats stats;
    lmf_status err;        /* first failure inside a hook, returned by the next step */
};

_Static_assert(DDP_MAX_SLOTS <= 3 && DDP_N_GBUFS <= 3, "lmf_ddp_buffers holds 3 of each");

/* ddp_sizes.c: the model's gradient buckets for this bucket size (0: the default), as
 * lmf_layout_buckets groups them with at most 2^31-1 floats each (one collective); lo and hi
 * have room for l->n_blocks entries; returns their number */
int lmf_ddp_group_buckets(const lmf_param_layout *l, size_t bucket_bytes, int *lo, int *hi);
/* ddp_sizes.c: the staging slots and gather buffers for these buckets at a stage */
void lmf_ddp_buffer_caps(const lmf_param_layout *l, int zero_stage, int n_buckets,
                         const int *lo, const int *hi, lmf_ddp_buffers *out);

/* ddp_grads.c */
float *lmf_ddp_grads_block(lmf_ddp *d, int b);
void lmf_ddp_grads_ready(lmf_ddp *d, int b);
lmf_status lmf_ddp_finish_buckets(lmf_ddp *d);
void lmf_ddp_zero_grads(lmf_ddp *d);
/* after an AdamW pass that zeroed the owned gradients: zero the rest, reset the buckets */
void lmf_ddp_reset_grads_after_step(lmf_ddp *d);

/* ddp_params.c */
float *lmf_ddp_params_block(lmf_ddp *d, int b, int phase);
void lmf_ddp_params_release(lmf_ddp *d, int b, int phase);
lmf_status lmf_ddp_invalidate_gathers(lmf_ddp *d);
/* all-gather the flat range [0, n) of a vector sharded like the weights, chunk by chunk;
 * send: this rank's part of the shard (NULL: in place inside full) */
lmf_status lmf_ddp_gather_flat(lmf_ddp *d, float *full, const float *send_shard);

/* remember the first failure of a hook (hooks cannot return a status) */
static inline void lmf_ddp_note(lmf_ddp *d, lmf_status s) {
    if (s != LMF_OK && d->err == LMF_OK) d->err = s;
}

#endif

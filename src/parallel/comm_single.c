/* Single-process communicator backend: one rank; every collective completes at once. */
#include "parallel/comm_internal.h"

#include <string.h>

static lmf_status single_init(lmf_comm *c) {
    c->rank = 0;
    c->size = 1;
    c->impl = NULL;
    return LMF_OK;
}

static void single_finalize(lmf_comm *c) { (void)c; }

static lmf_status single_split(lmf_comm *parent, int color, int key, lmf_comm *child) {
    (void)parent, (void)color, (void)key;
    return single_init(child);
}

/* the sum, maximum or minimum over one rank is the value itself */
static lmf_status single_iallreduce(lmf_comm *c, void *buf, size_t n, lmf_comm_dtype dtype,
                                    lmf_comm_op op, lmf_comm_req *r) {
    r->done = 1;
    return LMF_OK;
}

static lmf_status single_ireduce_scatter(lmf_comm *c, float *recv, const float *send,
                                         const size_t *counts, lmf_comm_req *r) {
    if (counts[0] > 0) memmove(recv, send, counts[0] * sizeof(float));
    r->done = 1;
    return LMF_OK;
}

static lmf_status single_iallgather(lmf_comm *c, float *buf, const float *send,
                                    const size_t *counts, lmf_comm_req *r) {
    if (send && send != buf && counts[0] > 0) memmove(buf, send, counts[0] * sizeof(float));
    r->done = 1;
    return LMF_OK;
}

static lmf_status single_ibroadcast(lmf_comm *c, void *buf, size_t bytes, int root,
                                    lmf_comm_req *r) {
    r->done = 1;
    return LMF_OK;
}

static lmf_status single_ibarrier(lmf_comm *c, lmf_comm_req *r) {
    r->done = 1;
    return LMF_OK;
}

static lmf_status single_test(lmf_comm *c, lmf_comm_req *r, int *done) {
    *done = 1;
    return LMF_OK;
}

static void single_release(lmf_comm *c, lmf_comm_req *r) { r->impl = NULL; }

/* one process: nothing else to stop; the caller returns its status and exits */
static void single_abort(lmf_comm *c, int code) { (void)code; }

const lmf_comm_vtable lmf_comm_vt_single = {
    .name = "single",
    .init = single_init,
    .split = single_split,
    .finalize = single_finalize,
    .iallreduce = single_iallreduce,
    .ireduce_scatter_f32 = single_ireduce_scatter,
    .iallgather_f32 = single_iallgather,
    .ibroadcast = single_ibroadcast,
    .ibarrier = single_ibarrier,
    .test = single_test,
    .release = single_release,
    .abort = single_abort,
};

/* Internal view of the communicator: the backend table and the state shared by all backends. */
#ifndef LMF_PARALLEL_COMM_INTERNAL_H
#define LMF_PARALLEL_COMM_INTERNAL_H

#include <signal.h>

#include "lmforge/comm.h"

struct lmf_comm_req {
    lmf_comm_req *prev, *next; /* the communicator's list of outstanding requests */
    const char *op;            /* "allreduce", ... for messages */
    size_t count;              /* elements moved, for messages */
    int done;                  /* set once the backend reported completion */
    void *impl;                /* backend state (MPI requests, count arrays) */
};

/* One backend. The i* functions start an operation and fill r->impl; test reports completion
 * (and may be called again after done); release frees r->impl. Failures return a status with
 * the message set by lmf_fail; the common layer adds rank and context and applies the policy. */
typedef struct lmf_comm_vtable {
    const char *name;
    lmf_status (*init)(lmf_comm *c); /* sets c->rank, c->size, c->impl */
    void (*finalize)(lmf_comm *c);
    lmf_status (*iallreduce)(lmf_comm *c, void *buf, size_t n, lmf_comm_dtype dtype,
                             lmf_comm_op op, lmf_comm_req *r);
    lmf_status (*ireduce_scatter_f32)(lmf_comm *c, float *recv, const float *send,
                                      const size_t *counts, lmf_comm_req *r);
    lmf_status (*iallgather_f32)(lmf_comm *c, float *buf, const float *send,
                                 const size_t *counts, lmf_comm_req *r);
    lmf_status (*ibroadcast)(lmf_comm *c, void *buf, size_t bytes, int root, lmf_comm_req *r);
    lmf_status (*ibarrier)(lmf_comm *c, lmf_comm_req *r);
    /* point to point: bytes of buf to (send = 1) or from (send = 0) rank peer with tag; NULL
     * for backends without other ranks */
    lmf_status (*ip2p)(lmf_comm *c, void *buf, size_t bytes, int peer, int tag, int send,
                       lmf_comm_req *r);
    lmf_status (*test)(lmf_comm *c, lmf_comm_req *r, int *done);
    void (*release)(lmf_comm *c, lmf_comm_req *r);
    /* stop every rank; returns only for backends without a job to stop */
    void (*abort)(lmf_comm *c, int code);
    /* answer other ranks' "are you there" (called by every poll of a wait and by progress);
     * NULL for backends without peers */
    void (*service)(lmf_comm *c);
    /* after a time-out: ask every other rank whether it is there, for up to `grace` seconds;
     * missing[r] = 1 for each rank that did not answer. NULL: unknown. */
    void (*find_missing)(lmf_comm *c, double grace, unsigned char *missing);
    /* a sub-communicator of the ranks with the same color, ordered by key: sets child->rank,
     * child->size, child->impl (collective over parent) */
    lmf_status (*split)(lmf_comm *parent, int color, int key, lmf_comm *child);
} lmf_comm_vtable;

struct lmf_comm {
    const lmf_comm_vtable *be;
    void *impl;
    int rank, size;
    double timeout;             /* seconds; <= 0: forever */
    int abort_on_failure;
    int failed;                 /* a failure happened: refuse further operations */
    char context[128];
    char group[96];             /* "" for the world; for a sub-communicator what it is and this
                                 * rank's place in the world, e.g. " in tensor-parallel group 1
                                 * (world rank 3)", added to failure messages */
    int world_rank;             /* this process's rank in the job */
    lmf_comm_req *pending;      /* outstanding requests, newest first */
    int n_pending;
    lmf_comm_req *spare;        /* finished request structs kept for reuse (a training step
                                 * then allocates nothing), linked through next */
    const char *volatile waiting_in; /* operation being waited for, NULL when none */
};

extern const lmf_comm_vtable lmf_comm_vt_single;
#if LMF_HAVE_MPI
extern const lmf_comm_vtable lmf_comm_vt_mpi;
/* called by the common layer whenever the context changes (for the signal message) */
void lmf_comm_mpi_context_changed(lmf_comm *c);
/* the signal line of lmf_comm_note_signal */
void lmf_comm_mpi_note_signal(int sig);
/* lmf_comm_note_signal_deferred: remember the signal when waiting in a collective */
void lmf_comm_mpi_defer_signal(int sig);
/* called by every poll of a wait (done: the wait completed): writes a deferred signal's line
 * once the wait has outlasted the signal by half a second; a completed wait forgets it */
void lmf_comm_mpi_deferred_poll(lmf_comm *c, int done);
#endif

/* element size of a dtype in bytes (0 for an unknown one) */
static inline size_t lmf_comm_dtype_size(lmf_comm_dtype d) {
    switch (d) {
    case LMF_COMM_F32: return 4;
    case LMF_COMM_F64: return 8;
    case LMF_COMM_I64: return 8;
    }
    return 0;
}

#endif

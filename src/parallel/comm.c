/* Communicator front end: backend choice, blocking ops with deadlines, progress, failures. */
#define _GNU_SOURCE
#include "parallel/comm_internal.h"
#include "lmforge/perf.h"

#include <errno.h>
#include <limits.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LMF_COMM_DEFAULT_TIMEOUT 300.0

int lmf_comm_have_mpi(void) { return LMF_HAVE_MPI; }

static int env_int(const char *name) {
    const char *s = getenv(name);
    if (!s || !*s) return -1;
    char *end;
    long v = strtol(s, &end, 10);
    if (*end != '\0' || v < 0 || v > INT_MAX) return -1;
    return (int)v;
}

int lmf_comm_launcher_size(void) {
    int n;
    if ((n = env_int("OMPI_COMM_WORLD_SIZE")) > 0) return n;
    if ((n = env_int("PMI_SIZE")) > 0) return n;
    if ((n = env_int("PMIX_SIZE")) > 0) return n;
    if (getenv("PMIX_RANK")) {
        n = env_int("SLURM_NTASKS");
        return n > 0 ? n : 1;
    }
    /* srun sets SLURM_STEP_ID for a job step; the batch script itself runs in a step with a
     * reserved id (>= 0xfffffff0), which is not a launch of ranks */
    int step = env_int("SLURM_STEP_ID");
    if (step < 0) step = env_int("SLURM_STEPID");
    if ((n = env_int("SLURM_NTASKS")) > 0 && step >= 0) return n;
    return 0;
}

int lmf_comm_launcher_local_size(void) {
    int n;
    if ((n = env_int("OMPI_COMM_WORLD_LOCAL_SIZE")) > 0) return n;
    if ((n = env_int("MPI_LOCALNRANKS")) > 0) return n;
    if (lmf_comm_launcher_size() > 0 && (n = env_int("SLURM_NTASKS_PER_NODE")) > 0) return n;
    return 1;
}

int lmf_comm_launcher_rank(void) {
    static const char *const vars[] = {"OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK",
                                       "SLURM_PROCID"};
    if (lmf_comm_launcher_size() <= 0) return 0;
    for (int i = 0; i < 4; i++) {
        int r = env_int(vars[i]);
        if (r >= 0) return r;
    }
    return 0;
}

lmf_status lmf_comm_create(const char *backend, lmf_comm **out) {
    *out = NULL;
    const lmf_comm_vtable *be = NULL;
    if (!backend || strcmp(backend, "auto") == 0) {
        int n = lmf_comm_launcher_size();
#if LMF_HAVE_MPI
        be = n > 0 ? &lmf_comm_vt_mpi : &lmf_comm_vt_single;
#else
        if (n > 1)
            return lmf_fail(LMF_ERR_ARG,
                            "started by a launcher with %d ranks, but this lmforge was built "
                            "without MPI; install an MPI (libopenmpi-dev) and rebuild", n);
        be = &lmf_comm_vt_single;
#endif
    } else if (strcmp(backend, "single") == 0) {
        be = &lmf_comm_vt_single;
    } else if (strcmp(backend, "mpi") == 0) {
#if LMF_HAVE_MPI
        be = &lmf_comm_vt_mpi;
#else
        return lmf_fail(LMF_ERR_ARG, "communicator 'mpi': this lmforge was built without MPI; "
                        "install an MPI (libopenmpi-dev) and rebuild");
#endif
    } else {
        return lmf_fail(LMF_ERR_ARG, "unknown communicator '%s' (use auto, single or mpi)",
                        backend);
    }
    lmf_comm *c = calloc(1, sizeof *c);
    if (!c) return lmf_fail(LMF_ERR_NOMEM, "cannot allocate the communicator");
    c->be = be;
    c->timeout = LMF_COMM_DEFAULT_TIMEOUT;
    const char *t = getenv("LMF_COMM_TIMEOUT");
    if (t && *t) {
        char *end;
        double v = strtod(t, &end);
        if (*end != '\0') {
            free(c);
            return lmf_fail(LMF_ERR_ARG, "LMF_COMM_TIMEOUT='%s' is not a number of seconds", t);
        }
        c->timeout = v;
    }
    c->abort_on_failure = 1;
    lmf_status s = be->init(c);
    if (s != LMF_OK) {
        free(c);
        return lmf_fail_context(s, "starting the %s communicator: ", be->name);
    }
    c->world_rank = c->rank;
    *out = c;
    return LMF_OK;
}

static lmf_status comm_failure(lmf_comm *c, const char *op, lmf_status s);

lmf_status lmf_comm_split(lmf_comm *c, int color, int key, const char *name, lmf_comm **out) {
    *out = NULL;
    if (color < 0) return lmf_fail(LMF_ERR_ARG, "communicator split: color %d < 0", color);
    lmf_comm *s = calloc(1, sizeof *s);
    if (!s) return lmf_fail(LMF_ERR_NOMEM, "cannot allocate a sub-communicator");
    s->be = c->be;
    s->timeout = c->timeout;
    s->abort_on_failure = c->abort_on_failure;
    s->world_rank = c->world_rank;
    memcpy(s->context, c->context, sizeof s->context);
    lmf_status st = c->be->split(c, color, key, s);
    if (st != LMF_OK) {
        free(s);
        return comm_failure(c, "split", st);
    }
    snprintf(s->group, sizeof s->group, " in %s %d (world rank %d)", name ? name : "group",
             color, s->world_rank);
    *out = s;
    return LMF_OK;
}

void lmf_comm_free(lmf_comm *c) {
    if (!c) return;
    /* complete what is still in flight (MPI must not be finalised with active requests) */
    while (c->pending && !c->failed) {
        lmf_comm_req *r = c->pending;
        if (lmf_comm_wait(c, &r) != LMF_OK) break;
    }
    while (c->pending) {
        lmf_comm_req *r = c->pending;
        c->pending = r->next;
        c->be->release(c, r);
        free(r);
    }
    while (c->spare) {
        lmf_comm_req *r = c->spare;
        c->spare = r->next;
        free(r);
    }
    c->be->finalize(c);
    free(c);
}

int lmf_comm_rank(const lmf_comm *c) { return c->rank; }
int lmf_comm_size(const lmf_comm *c) { return c->size; }
const char *lmf_comm_backend(const lmf_comm *c) { return c->be->name; }
void lmf_comm_set_timeout(lmf_comm *c, double seconds) { c->timeout = seconds; }
double lmf_comm_timeout(const lmf_comm *c) { return c->timeout; }
void lmf_comm_set_abort_on_failure(lmf_comm *c, int on) { c->abort_on_failure = on; }
const char *lmf_comm_context(const lmf_comm *c) { return c->context; }
int lmf_comm_pending(const lmf_comm *c) { return c->n_pending; }

void lmf_comm_set_context(lmf_comm *c, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->context, sizeof c->context, fmt, ap);
    va_end(ap);
#if LMF_HAVE_MPI
    if (c->be == &lmf_comm_vt_mpi) lmf_comm_mpi_context_changed(c);
#endif
}

void lmf_comm_note_signal(int sig) {
#if LMF_HAVE_MPI
    lmf_comm_mpi_note_signal(sig);
#else
    (void)sig;
#endif
}

void lmf_comm_note_signal_deferred(int sig) {
#if LMF_HAVE_MPI
    lmf_comm_mpi_defer_signal(sig);
#else
    (void)sig;
#endif
}

void lmf_comm_abort(lmf_comm *c, int code, const char *msg) {
    if (msg) {
        fprintf(stderr, "lmforge: rank %d of %d%s%s%s%s: %s\n", c->rank, c->size, c->group,
                c->context[0] ? " (" : "", c->context, c->context[0] ? ")" : "", msg);
        fflush(stderr);
    }
    c->be->abort(c, code);
}

/* A collective failed (status s, message already set): report it with rank, operation and
 * context, then stop the job or return LMF_ERR_COMM, as the policy says. */
static lmf_status comm_failure(lmf_comm *c, const char *op, lmf_status s) {
    if (s == LMF_ERR_ARG) return s; /* a caller's mistake: nothing was started */
    c->failed = 1;
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", lmf_last_error());
    lmf_fail(LMF_ERR_COMM, "rank %d of %d%s%s%s%s: %s: %s", c->rank, c->size, c->group,
             c->context[0] ? " (" : "", c->context, c->context[0] ? ")" : "", op, msg);
    if (c->abort_on_failure) {
        fprintf(stderr, "lmforge: %s; stopping every rank of the job\n", lmf_last_error());
        fflush(stderr);
        c->be->abort(c, 1);
    }
    return LMF_ERR_COMM;
}

static lmf_status check_usable(lmf_comm *c) {
    if (c->failed)
        return lmf_fail(LMF_ERR_STATE, "the communicator already failed; no more collectives");
    return LMF_OK;
}

static void list_remove(lmf_comm *c, lmf_comm_req *r) {
    if (r->prev) r->prev->next = r->next;
    else c->pending = r->next;
    if (r->next) r->next->prev = r->prev;
    c->n_pending--;
}

/* a released request struct goes to the spare list, for req_new to reuse */
static void req_recycle(lmf_comm *c, lmf_comm_req *r) {
    r->next = c->spare;
    c->spare = r;
}

static void req_finish(lmf_comm *c, lmf_comm_req *r) {
    list_remove(c, r);
    c->be->release(c, r);
    req_recycle(c, r);
}

static lmf_comm_req *req_new(lmf_comm *c, const char *op, size_t count) {
    lmf_comm_req *r = c->spare;
    if (r) {
        c->spare = r->next;
        memset(r, 0, sizeof *r);
    } else {
        r = calloc(1, sizeof *r);
        if (!r) return NULL;
    }
    r->op = op;
    r->count = count;
    return r;
}

/* Register a started request (status s from the backend's start function). */
static lmf_status req_started(lmf_comm *c, lmf_comm_req *r, lmf_status s, lmf_comm_req **req) {
    if (s != LMF_OK) {
        const char *op = r->op;
        c->be->release(c, r);
        req_recycle(c, r);
        return comm_failure(c, op, s);
    }
    r->next = c->pending;
    if (c->pending) c->pending->prev = r;
    c->pending = r;
    c->n_pending++;
    *req = r;
    return LMF_OK;
}

lmf_status lmf_comm_test(lmf_comm *c, lmf_comm_req **req, int *done) {
    *done = 0;
    lmf_comm_req *r = *req;
    if (!r) {
        *done = 1;
        return LMF_OK;
    }
    if (!r->done) {
        lmf_status s = c->be->test(c, r, &r->done);
        if (s != LMF_OK) {
            const char *op = r->op;
            req_finish(c, r);
            *req = NULL;
            return comm_failure(c, op, s);
        }
    }
    if (r->done) {
        req_finish(c, r);
        *req = NULL;
        *done = 1;
    }
    return LMF_OK;
}

/* Pause between polls: spin first (a collective usually completes within microseconds to
 * milliseconds), then yield the core, then sleep briefly, so waiting ranks that share cores
 * with working ones (oversubscription) do not starve them. */
static void poll_pause(long polls, double waited) {
    if (polls < 64) return;
    if (waited < 2e-3) {
        sched_yield();
        return;
    }
    struct timespec ts = {0, waited < 0.1 ? 20000 : 200000};
    nanosleep(&ts, NULL);
}

#define LMF_COMM_ASK_S 1.0 /* how long a timed-out rank waits for the others to answer */
#define LMF_COMM_SUSPENDED_S 0.5 /* a gap between two polls: this process did not run */

/* after a time-out: which ranks do not answer (stopped, stuck or dead), as text */
static void missing_ranks(lmf_comm *c, char *buf, size_t cap) {
    snprintf(buf, cap, "another rank has probably failed, stopped or is stuck");
    unsigned char *miss = c->be->find_missing ? calloc((size_t)c->size, 1) : NULL;
    if (!miss) return;
    c->be->find_missing(c, LMF_COMM_ASK_S, miss);
    size_t len = 0;
    int n = 0;
    for (int r = 0; r < c->size; r++) {
        if (!miss[r]) continue;
        if (n < 16) {
            int k = snprintf(buf + len, cap - len, "%s%d", n ? ", " : "rank ", r);
            if (k > 0 && (size_t)k < cap - len) len += (size_t)k;
        }
        n++;
    }
    free(miss);
    if (n == 0) {
        snprintf(buf, cap, "every other rank answers, so one of them skipped this collective or "
                 "called another one");
        return;
    }
    if (n > 16) len += (size_t)snprintf(buf + len, cap - len, " and %d more", n - 16);
    if (len < cap)
        snprintf(buf + len, cap - len, " did not answer within %.1f s: stopped (SIGSTOP), stuck "
                 "in a computation, or dead", LMF_COMM_ASK_S);
    if (n > 1 && strncmp(buf, "rank ", 5) == 0) { /* "ranks 1, 2" */
        memmove(buf + 5, buf + 4, strlen(buf + 4) + 1);
        buf[4] = 's';
    }
}

lmf_status lmf_comm_wait(lmf_comm *c, lmf_comm_req **req) {
    if (!*req) return LMF_OK;
    lmf_comm_req *r = *req;
    double t0 = lmf_now_s(), last = t0;
    c->waiting_in = r->op;
    for (long polls = 0;; polls++) {
        int done;
        lmf_status s = lmf_comm_test(c, req, &done);
#if LMF_HAVE_MPI
        if (c->be == &lmf_comm_vt_mpi) lmf_comm_mpi_deferred_poll(c, s != LMF_OK || done);
#endif
        if (c->be->service && s == LMF_OK && !done) c->be->service(c);
        if (s != LMF_OK || done) {
            c->waiting_in = NULL;
            return s;
        }
        /* polls are at most a fraction of a millisecond apart: a longer gap is time this
         * process did not run (stopped by SIGSTOP, suspended), which is not the others'
         * delay */
        double now = lmf_now_s();
        if (now - last > LMF_COMM_SUSPENDED_S) t0 += now - last;
        last = now;
        double waited = now - t0;
        if (c->timeout > 0 && waited > c->timeout) {
            c->waiting_in = NULL;
            const char *op = r->op;
            size_t count = r->count;
            /* an active MPI collective can be neither completed nor cancelled, and MPI may still
             * use its count arrays: forget the request without freeing it */
            list_remove(c, r);
            *req = NULL;
            char who[512];
            missing_ranks(c, who, sizeof who);
            lmf_fail(LMF_ERR_COMM,
                     "not complete after %.1f s (time-out %.1f s, %zu elements); %s", waited,
                     c->timeout, count, who);
            return comm_failure(c, op, LMF_ERR_COMM);
        }
        poll_pause(polls, waited);
    }
}

lmf_status lmf_comm_progress(lmf_comm *c) {
    if (c->be->service && !c->failed) c->be->service(c);
    for (lmf_comm_req *r = c->pending; r; r = r->next) {
        if (r->done) continue;
        lmf_status s = c->be->test(c, r, &r->done);
        if (s != LMF_OK) {
            const char *op = r->op;
            req_finish(c, r);
            return comm_failure(c, op, s);
        }
    }
    return LMF_OK;
}

/* ---- argument checks shared by blocking and non-blocking forms ---- */

static lmf_status check_counts(lmf_comm *c, const char *op, const size_t *counts, size_t *total) {
    size_t sum = 0;
    for (int i = 0; i < c->size; i++) {
        if (counts[i] > (size_t)INT_MAX)
            return lmf_fail(LMF_ERR_ARG, "%s: rank %d's count %zu exceeds 2^31-1 elements; "
                            "split the buffer", op, i, counts[i]);
        sum += counts[i];
    }
    if (sum > (size_t)INT_MAX)
        return lmf_fail(LMF_ERR_ARG, "%s: %zu elements in all exceed 2^31-1; split the buffer",
                        op, sum);
    *total = sum;
    return LMF_OK;
}

lmf_status lmf_comm_iallreduce(lmf_comm *c, void *buf, size_t n, lmf_comm_dtype dtype,
                               lmf_comm_op op, lmf_comm_req **req) {
    *req = NULL;
    LMF_TRY(check_usable(c));
    if (lmf_comm_dtype_size(dtype) == 0 || (unsigned)op > LMF_COMM_MIN)
        return lmf_fail(LMF_ERR_ARG, "allreduce: unknown data type %d or operation %d",
                        (int)dtype, (int)op);
    lmf_comm_req *r = req_new(c, "allreduce", n);
    if (!r) return lmf_fail(LMF_ERR_NOMEM, "allreduce: cannot allocate a request");
    return req_started(c, r, c->be->iallreduce(c, buf, n, dtype, op, r), req);
}

lmf_status lmf_comm_ireduce_scatter_f32(lmf_comm *c, float *recv, const float *send,
                                        const size_t *counts, lmf_comm_req **req) {
    *req = NULL;
    LMF_TRY(check_usable(c));
    size_t total = 0;
    LMF_TRY(check_counts(c, "reduce-scatter", counts, &total));
    lmf_comm_req *r = req_new(c, "reduce-scatter", total);
    if (!r) return lmf_fail(LMF_ERR_NOMEM, "reduce-scatter: cannot allocate a request");
    return req_started(c, r, c->be->ireduce_scatter_f32(c, recv, send, counts, r), req);
}

lmf_status lmf_comm_iallgather_f32(lmf_comm *c, float *buf, const float *send,
                                   const size_t *counts, lmf_comm_req **req) {
    *req = NULL;
    LMF_TRY(check_usable(c));
    size_t total = 0;
    LMF_TRY(check_counts(c, "all-gather", counts, &total));
    lmf_comm_req *r = req_new(c, "all-gather", total);
    if (!r) return lmf_fail(LMF_ERR_NOMEM, "all-gather: cannot allocate a request");
    return req_started(c, r, c->be->iallgather_f32(c, buf, send, counts, r), req);
}

lmf_status lmf_comm_ibroadcast(lmf_comm *c, void *buf, size_t bytes, int root,
                               lmf_comm_req **req) {
    *req = NULL;
    LMF_TRY(check_usable(c));
    if (root < 0 || root >= c->size)
        return lmf_fail(LMF_ERR_ARG, "broadcast: root %d is not a rank (0..%d)", root,
                        c->size - 1);
    lmf_comm_req *r = req_new(c, "broadcast", bytes);
    if (!r) return lmf_fail(LMF_ERR_NOMEM, "broadcast: cannot allocate a request");
    return req_started(c, r, c->be->ibroadcast(c, buf, bytes, root, r), req);
}

/* a send (send = 1) or a receive of n floats between this rank and peer */
static lmf_status p2p(lmf_comm *c, float *buf, size_t n, int peer, int tag, int send,
                      lmf_comm_req **req) {
    *req = NULL;
    LMF_TRY(check_usable(c));
    const char *op = send ? "send" : "receive";
    if (peer < 0 || peer >= c->size || peer == c->rank || !c->be->ip2p)
        return lmf_fail(LMF_ERR_ARG, "%s: peer %d is not another rank (this is rank %d of %d)",
                        op, peer, c->rank, c->size);
    if (tag < 0 || tag > LMF_COMM_MAX_TAG)
        return lmf_fail(LMF_ERR_ARG, "%s: tag %d outside 0..%d", op, tag, LMF_COMM_MAX_TAG);
    lmf_comm_req *r = req_new(c, op, n);
    if (!r) return lmf_fail(LMF_ERR_NOMEM, "%s: cannot allocate a request", op);
    return req_started(c, r, c->be->ip2p(c, buf, n * sizeof(float), peer, tag, send, r), req);
}

lmf_status lmf_comm_isend_f32(lmf_comm *c, const float *buf, size_t n, int peer, int tag,
                              lmf_comm_req **req) {
    return p2p(c, (float *)buf, n, peer, tag, 1, req);
}

lmf_status lmf_comm_irecv_f32(lmf_comm *c, float *buf, size_t n, int peer, int tag,
                              lmf_comm_req **req) {
    return p2p(c, buf, n, peer, tag, 0, req);
}

lmf_status lmf_comm_ibarrier(lmf_comm *c, lmf_comm_req **req) {
    *req = NULL;
    LMF_TRY(check_usable(c));
    lmf_comm_req *r = req_new(c, "barrier", 0);
    if (!r) return lmf_fail(LMF_ERR_NOMEM, "barrier: cannot allocate a request");
    return req_started(c, r, c->be->ibarrier(c, r), req);
}

/* ---- blocking forms: start, then wait against the time-out ---- */

lmf_status lmf_comm_allreduce(lmf_comm *c, void *buf, size_t n, lmf_comm_dtype dtype,
                              lmf_comm_op op) {
    lmf_comm_req *r;
    LMF_TRY(lmf_comm_iallreduce(c, buf, n, dtype, op, &r));
    return lmf_comm_wait(c, &r);
}

lmf_status lmf_comm_reduce_scatter_f32(lmf_comm *c, float *recv, const float *send,
                                       const size_t *counts) {
    lmf_comm_req *r;
    LMF_TRY(lmf_comm_ireduce_scatter_f32(c, recv, send, counts, &r));
    return lmf_comm_wait(c, &r);
}

lmf_status lmf_comm_allgather_f32(lmf_comm *c, float *buf, const float *send,
                                  const size_t *counts) {
    lmf_comm_req *r;
    LMF_TRY(lmf_comm_iallgather_f32(c, buf, send, counts, &r));
    return lmf_comm_wait(c, &r);
}

lmf_status lmf_comm_broadcast(lmf_comm *c, void *buf, size_t bytes, int root) {
    lmf_comm_req *r;
    LMF_TRY(lmf_comm_ibroadcast(c, buf, bytes, root, &r));
    return lmf_comm_wait(c, &r);
}

lmf_status lmf_comm_barrier(lmf_comm *c) {
    lmf_comm_req *r;
    LMF_TRY(lmf_comm_ibarrier(c, &r));
    return lmf_comm_wait(c, &r);
}

lmf_status lmf_comm_allreduce_f32(lmf_comm *c, float *buf, size_t n) {
    return lmf_comm_allreduce(c, buf, n, LMF_COMM_F32, LMF_COMM_SUM);
}

lmf_status lmf_comm_allreduce_f64(lmf_comm *c, double *buf, size_t n, lmf_comm_op op) {
    return lmf_comm_allreduce(c, buf, n, LMF_COMM_F64, op);
}

lmf_status lmf_comm_allreduce_i64(lmf_comm *c, int64_t *buf, size_t n, lmf_comm_op op) {
    return lmf_comm_allreduce(c, buf, n, LMF_COMM_I64, op);
}

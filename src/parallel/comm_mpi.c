/* MPI communicator backend: non-blocking collectives on a duplicate of MPI_COMM_WORLD. */
#define _GNU_SOURCE
#include "parallel/comm_internal.h"
#include "lmforge/system.h"

#include <limits.h>
#include <mpi.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* largest number of elements one MPI call moves; bigger buffers go in chunks */
#define LMF_MPI_CHUNK ((size_t)1 << 30)

typedef struct mpi_comm {
    MPI_Comm comm;
    int owns_mpi; /* we called MPI_Init_thread, so we finalise */
    MPI_Comm watch;          /* "are you there" messages, apart from the collectives */
    MPI_Request ask_req;     /* the receive of the next question, always posted */
    int ask_in, answer;
} mpi_comm;

#define TAG_ASK 1
#define TAG_ANSWER 2

typedef struct mpi_req {
    int n;             /* MPI requests in reqs */
    MPI_Request *reqs;
    int *counts;       /* [size] for the v-collectives, else NULL */
    int *displs;       /* [size] */
} mpi_req;

static lmf_status mpi_failed(int err, const char *what) {
    char s[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(err, s, &len) != MPI_SUCCESS) snprintf(s, sizeof s, "MPI error %d", err);
    return lmf_fail(LMF_ERR_COMM, "%s: %s", what, s);
}

static MPI_Comm comm_of(lmf_comm *c) { return ((mpi_comm *)c->impl)->comm; }

/* ---- a message when the launcher stops this rank (another rank failed or was killed) ----
 * Open MPI's launcher sends SIGTERM to the surviving ranks when one dies or aborts, and SIGKILL
 * a second later. The handler writes which rank was stopped, at which step and in which
 * collective, then passes the signal on: to the handler installed before (a trainer's graceful
 * stop), or to the default action. The text is prepared outside the handler (two buffers,
 * flipped atomically) so the handler only calls write(). */
static char sig_text[2][192];
static volatile sig_atomic_t sig_which = -1;
static lmf_comm *volatile sig_comm;
static struct sigaction sig_old;

static void sig_write(const char *s) {
    size_t n = strlen(s);
    while (n > 0) {
        ssize_t w = write(STDERR_FILENO, s, n);
        if (w <= 0) return;
        s += w;
        n -= (size_t)w;
    }
}

/* one line for signal sig; only while waiting in a collective unless always */
static void sig_report(int sig, int always) {
    lmf_comm *c = sig_comm;
    const char *op = c ? c->waiting_in : NULL;
    if (sig_which < 0 || (!always && !op)) return;
    char num[12];
    int i = (int)sizeof num - 1;
    num[i] = '\0';
    unsigned v = (unsigned)sig;
    do {
        num[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v && i > 0);
    sig_write(sig_text[sig_which]);
    sig_write("stopped by signal ");
    sig_write(num + i);
    if (op) {
        sig_write(" while waiting in ");
        sig_write(op);
    }
    sig_write(" (another rank failed, or the job is being stopped)\n");
}

void lmf_comm_mpi_note_signal(int sig) { sig_report(sig, 0); }

/* a deferred signal: its number while pending, and when the wait loop first saw it */
static volatile sig_atomic_t sig_deferred;
static double sig_deferred_seen;
#define SIG_DEFER_S 0.5

void lmf_comm_mpi_defer_signal(int sig) {
    lmf_comm *c = sig_comm;
    if (c && c->waiting_in) sig_deferred = sig;
}

void lmf_comm_mpi_deferred_poll(lmf_comm *c, int done) {
    (void)c;
    int sig = sig_deferred;
    if (!sig) return;
    if (done) { /* the collective completed: a graceful stop, nothing to say */
        sig_deferred = 0;
        sig_deferred_seen = 0;
        return;
    }
    double now = lmf_now_s();
    if (sig_deferred_seen == 0) sig_deferred_seen = now;
    if (now - sig_deferred_seen < SIG_DEFER_S) return;
    sig_report(sig, 0);
    sig_deferred = 0;
    sig_deferred_seen = 0;
}

static void on_term(int sig) {
    int chained = (sig_old.sa_flags & SA_SIGINFO) ? 0 : sig_old.sa_handler != SIG_DFL &&
                                                           sig_old.sa_handler != SIG_IGN;
    sig_report(sig, !chained);
    if (chained) {
        sig_old.sa_handler(sig);
        return;
    }
    if (!(sig_old.sa_flags & SA_SIGINFO) && sig_old.sa_handler == SIG_IGN) return;
    signal(sig, SIG_DFL);
    raise(sig);
}

void lmf_comm_mpi_context_changed(lmf_comm *c) {
    if (c != sig_comm) return; /* a sub-communicator: the world's line stands */
    int next = sig_which == 0 ? 1 : 0;
    snprintf(sig_text[next], sizeof sig_text[next], "lmforge: rank %d of %d%s%s%s: ", c->rank,
             c->size, c->context[0] ? " (" : "", c->context, c->context[0] ? ")" : "");
    sig_which = next;
}

static void install_term_handler(lmf_comm *c) {
    struct sigaction sa;
    if (sigaction(SIGTERM, NULL, &sig_old) != 0 || (sig_old.sa_flags & SA_SIGINFO)) return;
    sig_comm = c;
    lmf_comm_mpi_context_changed(c);
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_term;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
}

static void remove_term_handler(lmf_comm *c) {
    if (sig_comm != c) return;
    struct sigaction cur;
    if (sigaction(SIGTERM, NULL, &cur) == 0 && cur.sa_handler == on_term)
        sigaction(SIGTERM, &sig_old, NULL);
    sig_comm = NULL;
    sig_which = -1;
}

/* ---- backend functions ---- */

/* The rest of a communicator's set-up once m->comm exists: the "are you there" channel
 * (watch, made by the caller or MPI_COMM_NULL) with its receive posted, rank, size. */
static void comm_ready(lmf_comm *c, mpi_comm *m, int watch_made) {
    m->ask_req = MPI_REQUEST_NULL;
    if (watch_made) {
        MPI_Comm_set_errhandler(m->watch, MPI_ERRORS_RETURN);
        if (MPI_Irecv(&m->ask_in, 1, MPI_INT, MPI_ANY_SOURCE, TAG_ASK, m->watch, &m->ask_req) !=
            MPI_SUCCESS)
            m->ask_req = MPI_REQUEST_NULL;
    } else {
        m->watch = MPI_COMM_NULL;
    }
    MPI_Comm_rank(m->comm, &c->rank);
    MPI_Comm_size(m->comm, &c->size);
    c->impl = m;
}

static lmf_status mpi_init(lmf_comm *c) {
    mpi_comm *m = calloc(1, sizeof *m);
    if (!m) return lmf_fail(LMF_ERR_NOMEM, "cannot allocate the MPI communicator");
    int inited = 0, err;
    MPI_Initialized(&inited);
    if (!inited) {
        /* Open MPI's non-blocking all-reduce picks a binomial tree below 4 ranks, which moves
         * each bucket twice through one rank; the ring is bandwidth-optimal for buckets of
         * megabytes (see bench/comm.c). A value set by the user wins. */
        setenv("OMPI_MCA_coll_libnbc_iallreduce_algorithm", "ring", 0);
        int provided;
        err = MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided);
        if (err != MPI_SUCCESS) {
            free(m);
            return lmf_fail(LMF_ERR_COMM, "MPI_Init_thread failed (code %d); is the program "
                            "started by mpirun/srun of the MPI it was built with?", err);
        }
        m->owns_mpi = 1;
    }
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    err = MPI_Comm_dup(MPI_COMM_WORLD, &m->comm);
    if (err != MPI_SUCCESS) {
        free(m);
        return mpi_failed(err, "MPI_Comm_dup");
    }
    MPI_Comm_set_errhandler(m->comm, MPI_ERRORS_RETURN);
    comm_ready(c, m, MPI_Comm_dup(MPI_COMM_WORLD, &m->watch) == MPI_SUCCESS);
    install_term_handler(c);
    return LMF_OK;
}

static lmf_status mpi_split(lmf_comm *parent, int color, int key, lmf_comm *child) {
    mpi_comm *pm = parent->impl;
    mpi_comm *m = calloc(1, sizeof *m);
    if (!m) return lmf_fail(LMF_ERR_NOMEM, "cannot allocate the MPI sub-communicator");
    int err = MPI_Comm_split(pm->comm, color, key, &m->comm);
    if (err != MPI_SUCCESS) {
        free(m);
        return mpi_failed(err, "MPI_Comm_split");
    }
    MPI_Comm_set_errhandler(m->comm, MPI_ERRORS_RETURN);
    comm_ready(child, m, pm->watch != MPI_COMM_NULL &&
                             MPI_Comm_split(pm->watch, color, key, &m->watch) == MPI_SUCCESS);
    return LMF_OK;
}

static void mpi_finalize_comm(lmf_comm *c) {
    mpi_comm *m = c->impl;
    remove_term_handler(c);
    if (m->ask_req != MPI_REQUEST_NULL) {
        MPI_Cancel(&m->ask_req);
        MPI_Wait(&m->ask_req, MPI_STATUS_IGNORE);
    }
    if (!c->failed) {
        if (m->watch != MPI_COMM_NULL) MPI_Comm_free(&m->watch);
        MPI_Comm_free(&m->comm);
    }
    if (m->owns_mpi) {
        int fin = 0;
        MPI_Finalized(&fin);
        if (!fin) MPI_Finalize();
    }
    free(m);
    c->impl = NULL;
}

/* room for n MPI requests and, if vcounts, two int arrays of the communicator size */
static mpi_req *req_alloc(lmf_comm *c, int n, int vcounts, lmf_comm_req *r) {
    size_t bytes = sizeof(mpi_req) + (size_t)n * sizeof(MPI_Request) +
                   (vcounts ? 2 * (size_t)c->size * sizeof(int) : 0);
    mpi_req *q = calloc(1, bytes);
    if (!q) return NULL;
    q->reqs = (MPI_Request *)(q + 1);
    for (int i = 0; i < n; i++) q->reqs[i] = MPI_REQUEST_NULL;
    if (vcounts) {
        q->counts = (int *)(q->reqs + n);
        q->displs = q->counts + c->size;
    }
    r->impl = q;
    return q;
}

static MPI_Datatype mpi_type(lmf_comm_dtype d) {
    switch (d) {
    case LMF_COMM_F32: return MPI_FLOAT;
    case LMF_COMM_F64: return MPI_DOUBLE;
    case LMF_COMM_I64: return MPI_INT64_T;
    }
    return MPI_DATATYPE_NULL;
}

static MPI_Op mpi_op(lmf_comm_op op) {
    switch (op) {
    case LMF_COMM_SUM: return MPI_SUM;
    case LMF_COMM_MAX: return MPI_MAX;
    case LMF_COMM_MIN: return MPI_MIN;
    }
    return MPI_OP_NULL;
}

static size_t n_chunks(size_t n) { return n == 0 ? 1 : (n + LMF_MPI_CHUNK - 1) / LMF_MPI_CHUNK; }

static lmf_status mpi_iallreduce(lmf_comm *c, void *buf, size_t n, lmf_comm_dtype dtype,
                                 lmf_comm_op op, lmf_comm_req *r) {
    size_t nc = n_chunks(n), es = lmf_comm_dtype_size(dtype);
    mpi_req *q = req_alloc(c, (int)nc, 0, r);
    if (!q) return lmf_fail(LMF_ERR_NOMEM, "cannot allocate MPI requests");
    q->n = (int)nc;
    for (size_t i = 0; i < nc; i++) {
        size_t off = i * LMF_MPI_CHUNK, cnt = n - off < LMF_MPI_CHUNK ? n - off : LMF_MPI_CHUNK;
        int err = MPI_Iallreduce(MPI_IN_PLACE, (char *)buf + off * es, (int)cnt, mpi_type(dtype),
                                 mpi_op(op), comm_of(c), &q->reqs[i]);
        if (err != MPI_SUCCESS) return mpi_failed(err, "MPI_Iallreduce");
    }
    return LMF_OK;
}

static lmf_status mpi_ireduce_scatter(lmf_comm *c, float *recv, const float *send,
                                      const size_t *counts, lmf_comm_req *r) {
    static float dummy;
    mpi_req *q = req_alloc(c, 1, 1, r);
    if (!q) return lmf_fail(LMF_ERR_NOMEM, "cannot allocate MPI requests");
    q->n = 1;
    for (int i = 0; i < c->size; i++) q->counts[i] = (int)counts[i];
    const void *sb = send == recv && send ? MPI_IN_PLACE : send ? (const void *)send : &dummy;
    int err = MPI_Ireduce_scatter(sb, recv ? recv : &dummy, q->counts, MPI_FLOAT, MPI_SUM,
                                  comm_of(c), &q->reqs[0]);
    return err == MPI_SUCCESS ? LMF_OK : mpi_failed(err, "MPI_Ireduce_scatter");
}

static lmf_status mpi_iallgather(lmf_comm *c, float *buf, const float *send,
                                 const size_t *counts, lmf_comm_req *r) {
    static float dummy;
    mpi_req *q = req_alloc(c, 1, 1, r);
    if (!q) return lmf_fail(LMF_ERR_NOMEM, "cannot allocate MPI requests");
    q->n = 1;
    int d = 0;
    for (int i = 0; i < c->size; i++) {
        q->counts[i] = (int)counts[i];
        q->displs[i] = d;
        d += q->counts[i];
    }
    const void *sb = send ? (const void *)send : MPI_IN_PLACE;
    if (send && counts[c->rank] == 0) sb = &dummy;
    int err = MPI_Iallgatherv(sb, q->counts[c->rank], MPI_FLOAT, buf ? buf : &dummy, q->counts,
                              q->displs, MPI_FLOAT, comm_of(c), &q->reqs[0]);
    return err == MPI_SUCCESS ? LMF_OK : mpi_failed(err, "MPI_Iallgatherv");
}

static lmf_status mpi_ibroadcast(lmf_comm *c, void *buf, size_t bytes, int root,
                                 lmf_comm_req *r) {
    size_t nc = n_chunks(bytes);
    mpi_req *q = req_alloc(c, (int)nc, 0, r);
    if (!q) return lmf_fail(LMF_ERR_NOMEM, "cannot allocate MPI requests");
    q->n = (int)nc;
    for (size_t i = 0; i < nc; i++) {
        size_t off = i * LMF_MPI_CHUNK;
        size_t cnt = bytes - off < LMF_MPI_CHUNK ? bytes - off : LMF_MPI_CHUNK;
        int err = MPI_Ibcast((char *)buf + off, (int)cnt, MPI_BYTE, root, comm_of(c),
                             &q->reqs[i]);
        if (err != MPI_SUCCESS) return mpi_failed(err, "MPI_Ibcast");
    }
    return LMF_OK;
}

static lmf_status mpi_ip2p(lmf_comm *c, void *buf, size_t bytes, int peer, int tag, int send,
                           lmf_comm_req *r) {
    size_t nc = n_chunks(bytes);
    mpi_req *q = req_alloc(c, (int)nc, 0, r);
    if (!q) return lmf_fail(LMF_ERR_NOMEM, "cannot allocate MPI requests");
    q->n = (int)nc;
    for (size_t i = 0; i < nc; i++) { /* the chunks of one tag arrive in the order sent */
        size_t off = i * LMF_MPI_CHUNK;
        size_t cnt = bytes - off < LMF_MPI_CHUNK ? bytes - off : LMF_MPI_CHUNK;
        char *at = (char *)buf + off;
        int err = send ? MPI_Isend(at, (int)cnt, MPI_BYTE, peer, tag, comm_of(c), &q->reqs[i])
                       : MPI_Irecv(at, (int)cnt, MPI_BYTE, peer, tag, comm_of(c), &q->reqs[i]);
        if (err != MPI_SUCCESS) return mpi_failed(err, send ? "MPI_Isend" : "MPI_Irecv");
    }
    return LMF_OK;
}

static lmf_status mpi_ibarrier(lmf_comm *c, lmf_comm_req *r) {
    mpi_req *q = req_alloc(c, 1, 0, r);
    if (!q) return lmf_fail(LMF_ERR_NOMEM, "cannot allocate MPI requests");
    q->n = 1;
    int err = MPI_Ibarrier(comm_of(c), &q->reqs[0]);
    return err == MPI_SUCCESS ? LMF_OK : mpi_failed(err, "MPI_Ibarrier");
}

static lmf_status mpi_test(lmf_comm *c, lmf_comm_req *r, int *done) {
    mpi_req *q = r->impl;
    int flag = 0;
    int err = MPI_Testall(q->n, q->reqs, &flag, MPI_STATUSES_IGNORE);
    if (err != MPI_SUCCESS) return mpi_failed(err, "MPI_Testall");
    *done = flag;
    return LMF_OK;
}

static void mpi_release(lmf_comm *c, lmf_comm_req *r) {
    free(r->impl);
    r->impl = NULL;
}

static void mpi_abort_job(lmf_comm *c, int code) {
    remove_term_handler(c); /* this rank's own message is already out */
    MPI_Abort(c->impl ? comm_of(c) : MPI_COMM_WORLD, code);
}

/* answer the questions that arrived; keep one receive posted */
static void mpi_service(lmf_comm *c) {
    mpi_comm *m = c->impl;
    for (int i = 0; i < 8 && m->ask_req != MPI_REQUEST_NULL; i++) {
        int flag = 0;
        MPI_Status st;
        if (MPI_Test(&m->ask_req, &flag, &st) != MPI_SUCCESS || !flag) return;
        MPI_Request a;
        m->answer = c->rank;
        if (MPI_Isend(&m->answer, 1, MPI_INT, st.MPI_SOURCE, TAG_ANSWER, m->watch, &a) ==
            MPI_SUCCESS)
            MPI_Request_free(&a);
        if (MPI_Irecv(&m->ask_in, 1, MPI_INT, MPI_ANY_SOURCE, TAG_ASK, m->watch, &m->ask_req) !=
            MPI_SUCCESS)
            m->ask_req = MPI_REQUEST_NULL;
    }
}

static void mpi_find_missing(lmf_comm *c, double grace, unsigned char *missing) {
    mpi_comm *m = c->impl;
    int n = c->size;
    MPI_Request *rq = calloc((size_t)n, sizeof *rq);
    int *got = calloc((size_t)n, sizeof *got);
    if (!rq || !got || m->watch == MPI_COMM_NULL) {
        free(rq), free(got);
        return;
    }
    int me = c->rank;
    for (int r = 0; r < n; r++) {
        rq[r] = MPI_REQUEST_NULL;
        if (r == me) continue;
        MPI_Request q;
        if (MPI_Isend(&me, 1, MPI_INT, r, TAG_ASK, m->watch, &q) == MPI_SUCCESS)
            MPI_Request_free(&q);
        if (MPI_Irecv(&got[r], 1, MPI_INT, r, TAG_ANSWER, m->watch, &rq[r]) != MPI_SUCCESS)
            rq[r] = MPI_REQUEST_NULL;
        missing[r] = 1;
    }
    double t0 = lmf_now_s();
    int left = n - 1;
    while (left > 0 && lmf_now_s() - t0 < grace) {
        mpi_service(c); /* a rank timing out at the same moment asks this one */
        for (int r = 0; r < n; r++) {
            int flag = 0;
            if (!missing[r] || rq[r] == MPI_REQUEST_NULL) continue;
            if (MPI_Test(&rq[r], &flag, MPI_STATUS_IGNORE) == MPI_SUCCESS && flag) {
                missing[r] = 0;
                left--;
            }
        }
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    for (int r = 0; r < n; r++)
        if (rq[r] != MPI_REQUEST_NULL) { /* a cancelled receive completes at once */
            MPI_Cancel(&rq[r]);
            MPI_Wait(&rq[r], MPI_STATUS_IGNORE);
        }
    free(rq);
    free(got);
}

const lmf_comm_vtable lmf_comm_vt_mpi = {
    .name = "mpi",
    .init = mpi_init,
    .split = mpi_split,
    .finalize = mpi_finalize_comm,
    .iallreduce = mpi_iallreduce,
    .ireduce_scatter_f32 = mpi_ireduce_scatter,
    .iallgather_f32 = mpi_iallgather,
    .ibroadcast = mpi_ibroadcast,
    .ibarrier = mpi_ibarrier,
    .ip2p = mpi_ip2p,
    .test = mpi_test,
    .release = mpi_release,
    .abort = mpi_abort_job,
    .service = mpi_service,
    .find_missing = mpi_find_missing,
};

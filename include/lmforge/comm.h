/* Communicator: collectives between data-parallel ranks over a table of backends (single, MPI). */
#ifndef LMFORGE_COMM_H
#define LMFORGE_COMM_H

#include <stddef.h>
#include <stdint.h>
#include "lmforge/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A communicator joins the ranks of one job. Backends: "single" (one process, every collective
 * is a copy or nothing), "mpi" (MPI_COMM_WORLD, when built with MPI), "auto" (MPI when the
 * process was started by mpirun/srun, else single). The MPI calls of lmforge all live behind
 * this interface, so another backend (NCCL) plugs in as one more table.
 *
 * Collectives must be called by every rank in the same order. Counts are in elements.
 * Failure policy: a collective that fails or does not complete within the time-out (see
 * lmf_comm_set_timeout) prints one line naming this rank, the operation and the caller's
 * context ("step 17") to stderr and, by default, aborts the whole job (MPI_Abort), so no rank
 * is left waiting. With lmf_comm_set_abort_on_failure(c, 0) it returns LMF_ERR_COMM instead
 * (the communicator is then unusable). Argument errors return LMF_ERR_ARG. */
typedef struct lmf_comm lmf_comm;
/* A non-blocking operation in flight; completed and freed by lmf_comm_wait / lmf_comm_test. */
typedef struct lmf_comm_req lmf_comm_req;

typedef enum lmf_comm_dtype { LMF_COMM_F32 = 0, LMF_COMM_F64, LMF_COMM_I64 } lmf_comm_dtype;
typedef enum lmf_comm_op { LMF_COMM_SUM = 0, LMF_COMM_MAX, LMF_COMM_MIN } lmf_comm_op;

/* Create the communicator. backend: "auto", "single" or "mpi" (NULL = "auto"). The MPI backend
 * initialises MPI if nobody has (and finalises it in lmf_comm_free); MPI can be initialised only
 * once per process, so create at most one MPI communicator per process.
 * Fails with LMF_ERR_ARG for an unknown name or "mpi" in a build without MPI, and when "auto"
 * finds a launcher asking for several ranks in a build without MPI. */
lmf_status lmf_comm_create(const char *backend, lmf_comm **out);
/* Collective over c: a sub-communicator of the ranks that pass the same color (>= 0), ranked
 * by key (ties by their rank in c), as MPI_Comm_split makes; it inherits c's time-out, failure
 * policy and context, and its failure messages name the group ("rank 1 of 2 in
 * tensor-parallel group 3 (world rank 7)": name, then color). Free it before c. */
lmf_status lmf_comm_split(lmf_comm *c, int color, int key, const char *name, lmf_comm **out);
/* Completes requests still in flight (subject to the time-out), then frees. */
void lmf_comm_free(lmf_comm *c);

/* Number of ranks a launcher (mpirun, srun) asked for, from its environment variables
 * (OMPI_COMM_WORLD_SIZE, PMI_SIZE, PMIX_RANK, SLURM_NTASKS inside a job step); 0 when the
 * process was not started by one. */
int lmf_comm_launcher_size(void);
/* Number of ranks the launcher started on this machine (OMPI_COMM_WORLD_LOCAL_SIZE,
 * MPI_LOCALNRANKS, SLURM_NTASKS_PER_NODE inside a job step); 1 when not known. */
int lmf_comm_launcher_local_size(void);
/* This process's rank as the launcher numbered it (0 when there is no launcher). */
int lmf_comm_launcher_rank(void);
/* 1 when this build has the MPI backend */
int lmf_comm_have_mpi(void);

int lmf_comm_rank(const lmf_comm *c);
int lmf_comm_size(const lmf_comm *c);
/* "single" or "mpi" */
const char *lmf_comm_backend(const lmf_comm *c);

/* Time-out in seconds for every wait (blocking collectives and lmf_comm_wait); <= 0 waits
 * forever. Default 300 s, or the environment variable LMF_COMM_TIMEOUT when set. */
void lmf_comm_set_timeout(lmf_comm *c, double seconds);
double lmf_comm_timeout(const lmf_comm *c);
/* Context for failure messages, e.g. "step 17"; printf-style, truncated to 127 chars. */
void lmf_comm_set_context(lmf_comm *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
const char *lmf_comm_context(const lmf_comm *c);
/* 1 (default): abort the job on a failed or timed-out collective; 0: return LMF_ERR_COMM. */
void lmf_comm_set_abort_on_failure(lmf_comm *c, int on);

/* Stop every rank of the job with this exit code after printing msg (if not NULL) with this
 * rank's number. Used when one rank hits an error the others cannot see. With the single
 * backend it prints and returns (the caller then exits normally). */
void lmf_comm_abort(lmf_comm *c, int code, const char *msg);

/* For a SIGTERM/SIGINT handler (async-signal-safe): when this process is waiting in a
 * collective of the MPI communicator, write one line naming the rank, the context and the
 * collective (the launcher's SIGTERM usually means another rank died; SIGKILL follows within
 * a second). The MPI communicator installs such a SIGTERM handler itself; it passes the signal
 * on to a handler installed before lmf_comm_create, but one installed afterwards replaces it,
 * and should call this function. */
void lmf_comm_note_signal(int sig);
/* The same for a handler that stops the program gracefully (a trainer's SIGTERM/SIGINT): the
 * line is written only when the collective this process was waiting in at the signal has still
 * not completed half a second later, i.e. when the signal was the launcher's after another
 * rank failed (its SIGKILL follows about a second later). A graceful stop, whose collectives
 * complete, prints nothing. Async-signal-safe. */
void lmf_comm_note_signal_deferred(int sig);

/* ---- agreement at start-up: collectives that every rank reaches whatever happened ---- */

/* Collective: every rank brings the status of a stage that may fail on some ranks only (opening
 * a file, allocating). LMF_OK on every rank when all succeeded; otherwise every rank returns
 * the status and message of the lowest failing rank, prefixed "rank R of N: ", so that one
 * rank's failure stops all of them at the same place with its own message instead of leaving
 * the others waiting in the next collective. A failure an earlier agreement gave every rank
 * keeps its message (which names the rank that failed) instead of gaining a second prefix. A
 * single rank gets `local` back. */
lmf_status lmf_comm_agree(lmf_comm *c, lmf_status local);
/* Collective: the ranks compare n (1..63) values that must be equal on every rank (the options
 * of a run; names[i] such as "--lr", values[i] as text; the same names in the same order on
 * every rank). LMF_OK when all equal; otherwise LMF_ERR_ARG on every rank with one message
 * naming each value that differs, rank 0's value, the lowest differing rank's value and the
 * ranks that differ. */
lmf_status lmf_comm_agree_values(lmf_comm *c, int n, const char *const *names,
                                 const char *const *values);
/* 1 when the calling thread's current failure message (lmf_last_error) is one that
 * lmf_comm_agree or lmf_comm_agree_values of a job of several ranks gave every rank alike, so
 * that one rank printing it is enough; 0 for any other message (a rank's own failure, a
 * message changed since). */
int lmf_comm_failure_agreed(void);

/* ---- blocking collectives ---- */

/* buf[n] of dtype: element-wise op over all ranks, result on every rank (in place). */
lmf_status lmf_comm_allreduce(lmf_comm *c, void *buf, size_t n, lmf_comm_dtype dtype,
                              lmf_comm_op op);
/* Sum-reduce then scatter. send[sum(counts)] on every rank, laid out rank by rank;
 * recv[counts[rank]] gets this rank's part of the sum. counts[size]: any values, zeros allowed;
 * each count and their sum must fit in an int (2^31 - 1). recv == send works in place: the
 * part is written to the start of send; otherwise recv and send must not overlap. */
lmf_status lmf_comm_reduce_scatter_f32(lmf_comm *c, float *recv, const float *send,
                                       const size_t *counts);
/* Gather. buf[sum(counts)] receives every rank's part, rank by rank. send: this rank's
 * counts[rank] floats, or NULL when they already sit at their place in buf (in place). */
lmf_status lmf_comm_allgather_f32(lmf_comm *c, float *buf, const float *send, const size_t *counts);
/* buf[bytes] from rank root to all. */
lmf_status lmf_comm_broadcast(lmf_comm *c, void *buf, size_t bytes, int root);
lmf_status lmf_comm_barrier(lmf_comm *c);

/* Shorthands: sum of floats; doubles and int64 with an op. */
lmf_status lmf_comm_allreduce_f32(lmf_comm *c, float *buf, size_t n);
lmf_status lmf_comm_allreduce_f64(lmf_comm *c, double *buf, size_t n, lmf_comm_op op);
lmf_status lmf_comm_allreduce_i64(lmf_comm *c, int64_t *buf, size_t n, lmf_comm_op op);

/* ---- non-blocking collectives: same meaning; buffers (and counts) stay untouched and alive
 * until the request completes. *req is set on success. ---- */

lmf_status lmf_comm_iallreduce(lmf_comm *c, void *buf, size_t n, lmf_comm_dtype dtype,
                               lmf_comm_op op, lmf_comm_req **req);
lmf_status lmf_comm_ireduce_scatter_f32(lmf_comm *c, float *recv, const float *send,
                                        const size_t *counts, lmf_comm_req **req);
lmf_status lmf_comm_iallgather_f32(lmf_comm *c, float *buf, const float *send,
                                   const size_t *counts, lmf_comm_req **req);
lmf_status lmf_comm_ibroadcast(lmf_comm *c, void *buf, size_t bytes, int root,
                               lmf_comm_req **req);
lmf_status lmf_comm_ibarrier(lmf_comm *c, lmf_comm_req **req);

/* ---- point to point (pipeline parallelism): n floats to or from another rank. A message
 * matches the receive with the same sender and tag (0..LMF_COMM_MAX_TAG); between two ranks,
 * messages of one tag arrive in the order they were sent. buf stays alive (and, for a send,
 * untouched) until the request completes; the wait has the collectives' time-out and failure
 * policy. LMF_ERR_ARG when peer is this rank or not a rank. ---- */
#define LMF_COMM_MAX_TAG 32767
lmf_status lmf_comm_isend_f32(lmf_comm *c, const float *buf, size_t n, int peer, int tag,
                              lmf_comm_req **req);
lmf_status lmf_comm_irecv_f32(lmf_comm *c, float *buf, size_t n, int peer, int tag,
                              lmf_comm_req **req);

/* Wait for *req (NULL is a no-op), free it and set *req = NULL. Subject to the time-out,
 * counted from the moment the wait begins. */
lmf_status lmf_comm_wait(lmf_comm *c, lmf_comm_req **req);
/* *done = 1 (and *req freed, set to NULL) when complete, else 0. */
lmf_status lmf_comm_test(lmf_comm *c, lmf_comm_req **req, int *done);
/* Move every outstanding request forward (MPI_Test on each); cheap when none. Call it between
 * kernels so non-blocking collectives progress while the computation runs. */
lmf_status lmf_comm_progress(lmf_comm *c);
/* number of requests started and not yet completed by wait/test */
int lmf_comm_pending(const lmf_comm *c);

#ifdef __cplusplus
}
#endif
#endif

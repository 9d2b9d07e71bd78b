/* lmforge status values: every run-time failure is returned as one of these, with a message. */
#ifndef LMFORGE_STATUS_H
#define LMFORGE_STATUS_H

#ifdef __cplusplus
extern "C" {
#endif

typedef enum lmf_status {
    LMF_OK = 0,
    LMF_ERR_ARG,      /* bad argument, flag value or configuration */
    LMF_ERR_IO,       /* a file could not be opened, read, written or renamed */
    LMF_ERR_FORMAT,   /* a file's contents are malformed, truncated or of the wrong kind */
    LMF_ERR_NOMEM,    /* an allocation failed */
    LMF_ERR_COMM,     /* a communication (MPI) failure or time-out */
    LMF_ERR_NUMERIC,  /* NaN/Inf or another numeric fault */
    LMF_ERR_STATE,    /* operation not valid in the current state */
    LMF_ERR_INTERRUPTED
} lmf_status;

/* Record a failure message (printf-style) for the calling thread and return `code`.
 * Typical use: return lmf_fail(LMF_ERR_IO, "%s: cannot open: %s", path, strerror(errno)); */
lmf_status lmf_fail(lmf_status code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The message of the calling thread's most recent failure ("" if none). */
const char *lmf_last_error(void);

/* Prefix the calling thread's current message with more context ("loading X: " + old). */
lmf_status lmf_fail_context(lmf_status code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A short name for a status code ("io error", "bad format", ...). */
const char *lmf_status_name(lmf_status code);

/* Propagate a failure: evaluate expr, return its status if not LMF_OK. */
#define LMF_TRY(expr) do { lmf_status lmf_try_s_ = (expr); if (lmf_try_s_ != LMF_OK) return lmf_try_s_; } while (0)

/* A bug (broken internal invariant, misuse of an API): print file:line and abort, in every
 * build type. Run-time failures return an lmf_status instead. */
void lmf_assert_fail(const char *expr, const char *file, int line) __attribute__((noreturn));
#define LMF_ASSERT(cond) ((cond) ? (void)0 : lmf_assert_fail(#cond, __FILE__, __LINE__))

#ifdef __cplusplus
}
#endif
#endif

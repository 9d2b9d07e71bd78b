/* The run server: a read-only HTTP server over run directories (dashboard page, JSON API,
 * Prometheus text metrics) and the request-target parsing it uses. */
#ifndef LMFORGE_SERVE_H
#define LMFORGE_SERVE_H

#include <stddef.h>
#include "lmforge/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lmf_server lmf_server;

typedef struct lmf_serve_opts {
    const char *host;             /* address to bind (default "127.0.0.1"); a name or a literal */
    int port;                     /* TCP port; 0 picks a free one (lmf_serve_port tells which) */
    const char *const *run_dirs;  /* the run directories served, read only */
    int n_runs;
} lmf_serve_opts;

/* Start serving in the server's own threads and return at once. The server only reads the run
 * directories (a run being written may be served: lines are read as they land). Fails with
 * LMF_ERR_ARG for a bad host or no runs, LMF_ERR_IO when the address cannot be bound. */
lmf_status lmf_serve_start(const lmf_serve_opts *o, lmf_server **out);
/* the bound TCP port */
int lmf_serve_port(const lmf_server *s);
/* Stop the threads, close the connections, free s (NULL is fine). */
void lmf_serve_stop(lmf_server *s);

/* What a request asks for. */
typedef enum lmf_serve_target {
    LMF_SERVE_NOT_FOUND = 0,      /* a well-formed path that names nothing: 404 */
    LMF_SERVE_BAD_REQUEST,        /* a malformed path or query: 400 */
    LMF_SERVE_ASSET,              /* a page asset: asset names it */
    LMF_SERVE_PROMETHEUS,         /* /metrics */
    LMF_SERVE_API_RUNS,           /* /api/runs: every run with its status */
    LMF_SERVE_API_METRICS,        /* /api/runs/NAME/metrics[?since=STEP] */
    LMF_SERVE_API_CONFIG,         /* /api/runs/NAME/config */
    LMF_SERVE_API_CHECKPOINTS,    /* /api/runs/NAME/checkpoints */
    LMF_SERVE_API_EVENTS          /* /api/runs/NAME/events: server-sent events of new records */
} lmf_serve_target;

#define LMF_SERVE_NAME_MAX 64

typedef struct lmf_serve_request {
    lmf_serve_target target;
    char asset[LMF_SERVE_NAME_MAX]; /* LMF_SERVE_ASSET: "index.html", "app.js", "style.css" */
    char run[LMF_SERVE_NAME_MAX];   /* API_METRICS/CONFIG/CHECKPOINTS/EVENTS: the run's name */
    long since;                     /* API_METRICS: first step wanted (0 when not given) */
} lmf_serve_request;

/* Decode %XX escapes of s in place (a '+' stays a '+'); returns the decoded length. A '%' not
 * followed by two hex digits is kept as it is; "%00" becomes the byte 0x01 (which no path or
 * query accepts), so the result is still one C string. */
size_t lmf_serve_unescape(char *s);

/* Parse a decoded request path (path_len bytes, may hold NUL bytes) and the decoded value of
 * its "since" query argument (NULL when absent) into *out. Run names and asset names are
 * [A-Za-z0-9._-]+ and never "." or ".."; anything else ("..", "//", a backslash, a control
 * byte, a NUL) is LMF_SERVE_BAD_REQUEST. A request never names a file: the server opens only
 * fixed names inside the run directories it was given. */
void lmf_serve_parse(const char *path, size_t path_len, const char *since,
                     lmf_serve_request *out);

/* A run's name from its directory: the last path component with every byte outside
 * [A-Za-z0-9._-] replaced by '_' ("run" if nothing is left); buf[cap]. */
void lmf_serve_run_name(const char *dir, char *buf, size_t cap);

#ifdef __cplusplus
}
#endif
#endif

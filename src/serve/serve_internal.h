/* The run server's private parts: a served run and its cached metrics, the JSON and the
 * Prometheus text made from them. */
#ifndef LMF_SERVE_INTERNAL_H
#define LMF_SERVE_INTERNAL_H

#include <jansson.h>
#include <pthread.h>
#include <stddef.h>
#include <sys/types.h>

#include "lmforge/serve.h"

typedef struct serve_point {
    int step;
    float loss, lr, grad_norm, tokens_per_s, mfu; /* NaN where the line held null */
} serve_point;

typedef struct serve_val {
    int step;
    float val_loss;
} serve_val;

typedef enum serve_event_kind { SERVE_EV_SKIPPED, SERVE_EV_ROLLBACK, SERVE_EV_SPIKE } serve_event_kind;

typedef struct serve_event {
    int step;
    serve_event_kind kind;
    int to_step;          /* ROLLBACK */
    float value, mean;    /* SPIKE: the loss and its running mean */
    char why[8];          /* SKIPPED: "nan" or "inf" */
} serve_event;

/* One served run. mu guards everything below it; only server threads take it. */
typedef struct serve_run {
    char name[LMF_SERVE_NAME_MAX];
    char dir[4096];
    pthread_mutex_t mu;
    /* metrics.jsonl as read so far: the file's identity, the bytes consumed (whole lines),
     * the first bytes (to notice a file rewritten in place) and what the lines held */
    dev_t dev;
    ino_t ino;
    off_t offset;
    char head[64];
    size_t head_len;
    unsigned generation;  /* bumped whenever earlier records are dropped or replaced */
    double mtime;         /* of metrics.jsonl, seconds since the epoch; 0 if absent */
    serve_point *pts;
    size_t n_pts, cap_pts;
    serve_val *vals;
    size_t n_vals, cap_vals;
    serve_event *evs;
    size_t n_evs, cap_evs;
    /* profiled steps, [{"step", "seconds", "phases": {name: seconds}}], and memory records,
     * [[step, [rss bytes of rank 0, ...]]], oldest first */
    json_t *phases;
    json_t *memory;
    json_t *samples;  /* [{"step", "prompt", "text"}] */
} serve_run;

/* runs.c: the metrics cache */
void serve_run_init(serve_run *r, const char *dir, const char *name);
void serve_run_free(serve_run *r);
/* Read what was appended to metrics.jsonl since the last call (mu held). A torn last line
 * waits for its newline; a truncated, replaced or rewritten file is read again from the
 * start (generation changes); a missing file is an empty run. Never fails. */
void serve_run_refresh(serve_run *r);

/* files.c: bounded reads that never follow a symbolic link inside the run directory */
/* open dir/rel (flags: O_RDONLY, maybe O_DIRECTORY), each component of rel opened without
 * following links (so a link inside the run directory never leads out of it); fd or -1 */
int serve_open_in_run(const char *dir, const char *rel, int flags);
/* dir/rel where each component of rel is opened without following links; a regular file
 * of at most max bytes into *buf (NUL-terminated; free it). 0 on success, -1 otherwise;
 * *mtime (if not NULL) gets its modification time. */
int serve_read_in_run(const char *dir, const char *rel, size_t max, char **buf, size_t *len,
                      double *mtime);
/* the run's checkpoints/ entries named step_NNNNNNNN as a JSON array (newest last) of
 * {"name", "step", "complete", "latest", "mtime"}; *latest_step and *latest_mtime describe the
 * one checkpoints/latest names (-1 and 0 when none) */
json_t *serve_checkpoints(const char *dir, int *latest_step, double *latest_mtime);

/* api.c: the JSON documents of the API (mu held by the caller where they read the cache) */
json_t *serve_api_status(serve_run *r, double now);
json_t *serve_api_metrics(serve_run *r, long since);
/* How much of a run's cache a stream has sent: the generation and the records of each kind. */
typedef struct serve_cursor {
    unsigned generation;
    size_t pts, vals, evs, phases, memory, samples;
} serve_cursor;
/* The metrics answer of the records past *c (all of them when the generation changed), or NULL
 * when there is nothing new; *c moves to the end. */
json_t *serve_api_metrics_after(serve_run *r, serve_cursor *c);
json_t *serve_api_config(const serve_run *r);

/* prom.c: the Prometheus text exposition of every run (each run's mu taken in turn);
 * a new string (free it) */
char *serve_prometheus(serve_run *runs, int n, double now);

/* events.c: server-sent event streams of new metrics records (/api/runs/NAME/events) */
#define SERVE_STREAMS_MAX 16  /* streams open at once; one more is answered 503 */
typedef struct serve_streams serve_streams;
struct MHD_Connection;
/* the set of streams and its ticker thread; NULL when out of memory or threads */
serve_streams *serve_streams_create(void);
/* Queue an event stream of run r on connection c: 0, 1 when SERVE_STREAMS_MAX are open (the
 * caller answers 503), -1 on failure. */
int serve_streams_open(serve_streams *set, serve_run *r, struct MHD_Connection *c);
/* before the daemon stops: end every stream (none stays suspended) */
void serve_streams_stop(serve_streams *set);
/* after the daemon stopped */
void serve_streams_free(serve_streams *set);

/* assets (generated from web/ at build time) */
typedef struct serve_asset {
    const char *name;
    const char *type;
    const unsigned char *data;
    size_t len;
} serve_asset;
const serve_asset *serve_asset_find(const char *name);

#endif

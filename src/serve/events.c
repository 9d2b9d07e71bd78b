/* Server-sent events: /api/runs/NAME/events streams a run's new metrics records as they land;
 * a bounded number of streams, each parked (suspended) between ticks instead of holding a
 * thread, and freed when its client goes away. */
#define _GNU_SOURCE
#include "serve/serve_internal.h"

#include <microhttpd.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* a parked stream looks for new records this often */
#define TICK_MS 500
/* a stream with nothing to say sends a comment line this often (a client that went away is
 * noticed when a write to it fails) */
#define KEEPALIVE_S 5.0

/* MHD is never called with set->mu held (its callbacks take set->mu): a stream marks itself
 * PARKING, suspends, then PARKED; only a PARKED one is resumed */
typedef enum stream_state { STREAM_RUNNING, STREAM_PARKING, STREAM_PARKED } stream_state;

typedef struct serve_stream {
    serve_streams *set;
    serve_run *run;
    struct MHD_Connection *conn;
    serve_cursor cur;
    stream_state state;  /* set->mu */
    double last_write;
    char *out;           /* formatted bytes not yet handed to MHD */
    size_t out_len, out_pos;
} serve_stream;

struct serve_streams {
    pthread_mutex_t mu;
    pthread_cond_t wake;
    serve_stream *open[SERVE_STREAMS_MAX];
    int n_open;
    int stopping;
    pthread_t ticker;
    int have_ticker;
};

static double mono_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* resume the PARKED streams (set->mu held; released while MHD is called); the number still
 * PARKING */
static int resume_parked(serve_streams *set) {
    struct MHD_Connection *wake[SERVE_STREAMS_MAX];
    int n = 0, parking = 0;
    for (int i = 0; i < set->n_open; i++) {
        if (set->open[i]->state == STREAM_PARKED) {
            set->open[i]->state = STREAM_RUNNING;
            wake[n++] = set->open[i]->conn;
        }
        parking += set->open[i]->state == STREAM_PARKING;
    }
    /* a suspended connection is not closed, so its stream outlives the unlocked calls */
    pthread_mutex_unlock(&set->mu);
    for (int i = 0; i < n; i++) MHD_resume_connection(wake[i]);
    pthread_mutex_lock(&set->mu);
    return parking;
}

/* wake every parked stream once per tick, so it looks for new records */
static void *ticker(void *arg) {
    serve_streams *set = arg;
    pthread_mutex_lock(&set->mu);
    while (!set->stopping) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += (long)TICK_MS * 1000000L;
        until.tv_sec += until.tv_nsec / 1000000000L;
        until.tv_nsec %= 1000000000L;
        pthread_cond_timedwait(&set->wake, &set->mu, &until);
        resume_parked(set);
    }
    pthread_mutex_unlock(&set->mu);
    return NULL;
}

serve_streams *serve_streams_create(void) {
    serve_streams *set = calloc(1, sizeof *set);
    if (!set) return NULL;
    pthread_mutex_init(&set->mu, NULL);
    pthread_cond_init(&set->wake, NULL);
    set->have_ticker = pthread_create(&set->ticker, NULL, ticker, set) == 0;
    if (!set->have_ticker) {
        serve_streams_free(set);
        return NULL;
    }
    return set;
}

void serve_streams_stop(serve_streams *set) {
    if (!set) return;
    pthread_mutex_lock(&set->mu);
    set->stopping = 1;
    pthread_cond_broadcast(&set->wake);
    pthread_mutex_unlock(&set->mu);
    if (set->have_ticker) pthread_join(set->ticker, NULL);
    set->have_ticker = 0;
    /* the daemon must not be stopped with a connection suspended: wake them all (none parks
     * again once stopping is set); each ends its stream at its next read */
    pthread_mutex_lock(&set->mu);
    while (resume_parked(set) > 0) {
        pthread_mutex_unlock(&set->mu);
        nanosleep(&(struct timespec){0, 1000000}, NULL);
        pthread_mutex_lock(&set->mu);
    }
    pthread_mutex_unlock(&set->mu);
}

void serve_streams_free(serve_streams *set) {
    if (!set) return;
    pthread_cond_destroy(&set->wake);
    pthread_mutex_destroy(&set->mu);
    free(set);
}

/* "event: metrics\ndata: JSON\n\n" of the run's records past the stream's cursor, or NULL */
static char *next_event(serve_stream *st, size_t *len) {
    pthread_mutex_lock(&st->run->mu);
    serve_run_refresh(st->run);
    json_t *j = serve_api_metrics_after(st->run, &st->cur);
    pthread_mutex_unlock(&st->run->mu);
    if (!j) return NULL;
    /* compact JSON holds no newline, so it is one data line */
    char *body = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(7));
    json_decref(j);
    if (!body) return NULL;
    char *ev = NULL;
    int n = asprintf(&ev, "event: metrics\ndata: %s\n\n", body);
    free(body);
    if (n < 0) return NULL;
    *len = (size_t)n;
    return ev;
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    serve_stream *st = cls;
    serve_streams *set = st->set;
    if (st->out_pos == st->out_len) {
        free(st->out);
        st->out = NULL;
        st->out_len = st->out_pos = 0;
        pthread_mutex_lock(&set->mu);
        int stopping = set->stopping;
        pthread_mutex_unlock(&set->mu);
        if (stopping) return MHD_CONTENT_READER_END_OF_STREAM;
        st->out = next_event(st, &st->out_len);
        if (!st->out && mono_s() - st->last_write >= KEEPALIVE_S) {
            st->out = strdup(":\n\n");
            st->out_len = st->out ? 3 : 0;
        }
        if (!st->out) { /* nothing to say: park until the next tick */
            pthread_mutex_lock(&set->mu);
            if (set->stopping) {
                pthread_mutex_unlock(&set->mu);
                return MHD_CONTENT_READER_END_OF_STREAM;
            }
            st->state = STREAM_PARKING;
            pthread_mutex_unlock(&set->mu);
            MHD_suspend_connection(st->conn);
            pthread_mutex_lock(&set->mu);
            st->state = STREAM_PARKED;
            pthread_mutex_unlock(&set->mu);
            return 0;
        }
    }
    size_t n = st->out_len - st->out_pos;
    if (n > max) n = max;
    memcpy(buf, st->out + st->out_pos, n);
    st->out_pos += n;
    st->last_write = mono_s();
    return (ssize_t)n;
}

/* the response is gone (its client closed, an error, or the server stopping): free the slot */
static void stream_free(void *cls) {
    serve_stream *st = cls;
    serve_streams *set = st->set;
    pthread_mutex_lock(&set->mu);
    for (int i = 0; i < set->n_open; i++)
        if (set->open[i] == st) {
            set->open[i] = set->open[--set->n_open];
            break;
        }
    pthread_mutex_unlock(&set->mu);
    free(st->out);
    free(st);
}

int serve_streams_open(serve_streams *set, serve_run *run, struct MHD_Connection *conn) {
    serve_stream *st = calloc(1, sizeof *st);
    if (!st) return -1;
    st->set = set;
    st->run = run;
    st->conn = conn;
    st->cur.generation = ~0u; /* the first event holds every record */
    st->last_write = mono_s();
    pthread_mutex_lock(&set->mu);
    int full = set->n_open >= SERVE_STREAMS_MAX || set->stopping;
    if (!full) set->open[set->n_open++] = st;
    pthread_mutex_unlock(&set->mu);
    if (full) {
        free(st);
        return 1;
    }
    struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384,
                                                               stream_read, st, stream_free);
    if (!r) {
        stream_free(st);
        return -1;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/event-stream");
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    enum MHD_Result ok = MHD_queue_response(conn, MHD_HTTP_OK, r);
    MHD_destroy_response(r); /* the connection holds it; stream_free runs when it lets go */
    return ok == MHD_YES ? 0 : -1;
}

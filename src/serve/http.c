/* The HTTP server (libmicrohttpd, in its own threads): requests dispatched to the page's
 * assets, the JSON API and the Prometheus text; nothing here writes to a run directory. */
#define _GNU_SOURCE
#include "serve/serve_internal.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netdb.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <time.h>

struct lmf_server {
    struct MHD_Daemon *d;
    serve_run *runs;
    int n_runs;
    int port;
    serve_streams *streams;
};

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static enum MHD_Result send_buf(struct MHD_Connection *c, unsigned code, const char *type,
                                void *data, size_t len, enum MHD_ResponseMemoryMode mode) {
    struct MHD_Response *r = MHD_create_response_from_buffer(len, data, mode);
    if (!r) {
        if (mode == MHD_RESPMEM_MUST_FREE) free(data);
        return MHD_NO;
    }
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    enum MHD_Result ok = MHD_queue_response(c, code, r);
    MHD_destroy_response(r);
    return ok;
}

static enum MHD_Result send_error(struct MHD_Connection *c, unsigned code, const char *msg) {
    char *body = NULL;
    json_t *j = json_pack("{s:i, s:s}", "status", (int)code, "error", msg);
    body = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!body) return MHD_NO;
    return send_buf(c, code, "application/json", body, strlen(body), MHD_RESPMEM_MUST_FREE);
}

static enum MHD_Result send_json(struct MHD_Connection *c, json_t *j) {
    char *body = j ? json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(7)) : NULL;
    json_decref(j);
    if (!body) return send_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
    return send_buf(c, MHD_HTTP_OK, "application/json", body, strlen(body), MHD_RESPMEM_MUST_FREE);
}

static serve_run *find_run(lmf_server *s, const char *name) {
    for (int i = 0; i < s->n_runs; i++)
        if (strcmp(s->runs[i].name, name) == 0) return &s->runs[i];
    return NULL;
}

static json_t *api_runs(lmf_server *s) {
    json_t *arr = json_array();
    double now = now_s();
    for (int i = 0; i < s->n_runs; i++) {
        serve_run *r = &s->runs[i];
        pthread_mutex_lock(&r->mu);
        serve_run_refresh(r);
        json_array_append_new(arr, serve_api_status(r, now));
        pthread_mutex_unlock(&r->mu);
    }
    return json_pack("{s:o}", "runs", arr);
}

static enum MHD_Result dispatch(lmf_server *s, struct MHD_Connection *c,
                                const lmf_serve_request *q) {
    serve_run *r = NULL;
    if (q->target == LMF_SERVE_API_METRICS || q->target == LMF_SERVE_API_CONFIG ||
        q->target == LMF_SERVE_API_CHECKPOINTS || q->target == LMF_SERVE_API_EVENTS) {
        r = find_run(s, q->run);
        if (!r) return send_error(c, MHD_HTTP_NOT_FOUND, "no such run");
    }
    switch (q->target) {
    case LMF_SERVE_BAD_REQUEST:
        return send_error(c, MHD_HTTP_BAD_REQUEST, "malformed path or query");
    case LMF_SERVE_NOT_FOUND:
        return send_error(c, MHD_HTTP_NOT_FOUND, "not found");
    case LMF_SERVE_ASSET: {
        const serve_asset *a = serve_asset_find(q->asset);
        if (!a) return send_error(c, MHD_HTTP_NOT_FOUND, "not found");
        return send_buf(c, MHD_HTTP_OK, a->type, (void *)a->data, a->len, MHD_RESPMEM_PERSISTENT);
    }
    case LMF_SERVE_PROMETHEUS: {
        char *text = serve_prometheus(s->runs, s->n_runs, now_s());
        if (!text) return send_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
        return send_buf(c, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", text,
                        strlen(text), MHD_RESPMEM_MUST_FREE);
    }
    case LMF_SERVE_API_RUNS:
        return send_json(c, api_runs(s));
    case LMF_SERVE_API_METRICS: {
        pthread_mutex_lock(&r->mu);
        serve_run_refresh(r);
        json_t *j = serve_api_metrics(r, q->since);
        pthread_mutex_unlock(&r->mu);
        return send_json(c, j);
    }
    case LMF_SERVE_API_CONFIG:
        return send_json(c, serve_api_config(r));
    case LMF_SERVE_API_CHECKPOINTS: {
        int step;
        double mt;
        json_t *cks = serve_checkpoints(r->dir, &step, &mt);
        return send_json(c, json_pack("{s:s, s:o}", "run", r->name, "checkpoints", cks));
    }
    case LMF_SERVE_API_EVENTS: {
        int got = serve_streams_open(s->streams, r, c);
        if (got == 1)
            return send_error(c, MHD_HTTP_SERVICE_UNAVAILABLE, "too many event streams open "
                              "(at most 16): close another page, or poll /api/runs/NAME/metrics");
        return got == 0 ? MHD_YES : send_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
    }
    }
    return send_error(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "unhandled request");
}

/* count the query arguments other than "since" (any is an error) */
static enum MHD_Result count_other(void *cls, enum MHD_ValueKind kind, const char *key,
                                   const char *value) {
    (void)kind;
    (void)value;
    if (!key || strcmp(key, "since") != 0) (*(int *)cls)++;
    return MHD_YES;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_size, void **con_cls) {
    (void)version;
    (void)upload_data;
    (void)con_cls;
    lmf_server *s = cls;
    static __thread int niced;
    if (!niced) { /* the server's threads yield the cores to training (Linux: per thread) */
        niced = 1;
        if (setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 19) != 0) { /* best effort */ }
    }
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return send_error(c, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET and HEAD");
    if (*upload_size != 0) {
        *upload_size = 0; /* a body on a GET is ignored */
        return MHD_YES;
    }
    int others = 0;
    MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, count_other, &others);
    /* MHD has unescaped url and the arguments with lmf_serve_unescape */
    const char *since = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "since");
    lmf_serve_request q;
    lmf_serve_parse(url, strlen(url), since, &q);
    if (others > 0 && q.target != LMF_SERVE_ASSET) /* the page's own options are the page's */
        q.target = LMF_SERVE_BAD_REQUEST;
    return dispatch(s, c, &q);
}

static size_t unescape_cb(void *cls, struct MHD_Connection *c, char *s) {
    (void)cls;
    (void)c;
    return lmf_serve_unescape(s);
}

lmf_status lmf_serve_start(const lmf_serve_opts *o, lmf_server **out) {
    *out = NULL;
    if (o->n_runs < 1) return lmf_fail(LMF_ERR_ARG, "no run directories to serve");
    if (o->port < 0 || o->port > 65535)
        return lmf_fail(LMF_ERR_ARG, "port %d is not in 0..65535", o->port);
    const char *host = o->host ? o->host : "127.0.0.1";
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE}, *ai = NULL;
    char port_s[16];
    snprintf(port_s, sizeof port_s, "%d", o->port);
    int g = getaddrinfo(host, port_s, &hints, &ai);
    if (g != 0 || !ai)
        return lmf_fail(LMF_ERR_ARG, "cannot resolve host '%s': %s (give an address such "
                        "as 127.0.0.1, ::1 or 0.0.0.0)", host, gai_strerror(g));
    lmf_server *s = calloc(1, sizeof *s);
    s->runs = s ? calloc((size_t)o->n_runs, sizeof *s->runs) : NULL;
    if (!s || !s->runs) {
        freeaddrinfo(ai);
        free(s);
        return lmf_fail(LMF_ERR_NOMEM, "the run server: out of memory");
    }
    for (int i = 0; i < o->n_runs; i++) {
        char name[LMF_SERVE_NAME_MAX], uniq[LMF_SERVE_NAME_MAX + 16];
        lmf_serve_run_name(o->run_dirs[i], name, sizeof name);
        snprintf(uniq, sizeof uniq, "%s", name);
        for (int k = 2; ; k++) { /* two runs named alike get -2, -3, ... */
            int taken = 0;
            for (int j = 0; j < i; j++) taken |= strcmp(s->runs[j].name, uniq) == 0;
            if (!taken && strlen(uniq) < LMF_SERVE_NAME_MAX) break;
            snprintf(uniq, sizeof uniq, "%.40s-%d", name, k);
        }
        serve_run_init(&s->runs[i], o->run_dirs[i], uniq);
    }
    s->n_runs = o->n_runs;
    /* suspend/resume: an event stream with nothing to send is parked, not polled */
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_ALLOW_SUSPEND_RESUME;
    if (ai->ai_family == AF_INET6) flags |= MHD_USE_IPv6;
    /* the server's threads take no signals: SIGINT and SIGTERM reach the caller's threads */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    s->streams = serve_streams_create();
    if (!s->streams) {
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        freeaddrinfo(ai);
        lmf_serve_stop(s);
        return lmf_fail(LMF_ERR_NOMEM, "the run server: cannot start its event thread");
    }
    s->d = MHD_start_daemon(flags, (uint16_t)o->port, NULL, NULL, on_request, s,
                            MHD_OPTION_SOCK_ADDR, ai->ai_addr,
                            MHD_OPTION_THREAD_POOL_SIZE, (unsigned)2,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)64,
                            MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)32,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30,
                            MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)32768,
                            MHD_OPTION_UNESCAPE_CALLBACK, unescape_cb, NULL,
                            MHD_OPTION_END);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    freeaddrinfo(ai);
    if (!s->d) {
        lmf_serve_stop(s);
        return lmf_fail(LMF_ERR_IO, "the run server cannot listen on %s port %d (in use? try another "
                        "--port, or 0 for any free one)", host, o->port);
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    s->port = info ? info->port : o->port;
    *out = s;
    return LMF_OK;
}

int lmf_serve_port(const lmf_server *s) { return s->port; }

void lmf_serve_stop(lmf_server *s) {
    if (!s) return;
    serve_streams_stop(s->streams);
    if (s->d) MHD_stop_daemon(s->d);
    serve_streams_free(s->streams);
    for (int i = 0; i < s->n_runs; i++) serve_run_free(&s->runs[i]);
    free(s->runs);
    free(s);
}

/* A served run's metrics.jsonl, read incrementally: appended lines as they land, a torn last
 * line left for later, a truncated or replaced file read again from the start. */
#define _GNU_SOURCE
#include "serve/serve_internal.h"

#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* most bytes read in one refresh; the rest comes with the next requests */
#define REFRESH_MAX ((size_t)64 << 20)

void serve_run_init(serve_run *r, const char *dir, const char *name) {
    memset(r, 0, sizeof *r);
    snprintf(r->dir, sizeof r->dir, "%s", dir);
    snprintf(r->name, sizeof r->name, "%s", name);
    pthread_mutex_init(&r->mu, NULL);
    r->phases = json_array();
    r->memory = json_array();
    r->samples = json_array();
}

static void reset(serve_run *r) {
    r->n_pts = r->n_vals = r->n_evs = 0;
    json_array_clear(r->phases);
    json_array_clear(r->memory);
    json_array_clear(r->samples);
    r->offset = 0;
    r->head_len = 0;
    r->generation++;
}

void serve_run_free(serve_run *r) {
    free(r->pts);
    free(r->vals);
    free(r->evs);
    json_decref(r->phases);
    json_decref(r->memory);
    json_decref(r->samples);
    pthread_mutex_destroy(&r->mu);
}

static int grow(void **p, size_t *cap, size_t n, size_t size) {
    if (n < *cap) return 0;
    size_t nc = *cap ? *cap * 2 : 256;
    void *q = realloc(*p, nc * size);
    if (!q) return -1;
    *p = q;
    *cap = nc;
    return 0;
}

static float num(json_t *v) { return json_is_number(v) ? (float)json_number_value(v) : NAN; }

/* the step of a phases or memory record (both start with it) */
static int record_step(json_t *rec) {
    json_t *s = json_is_object(rec) ? json_object_get(rec, "step") : json_array_get(rec, 0);
    return (int)json_integer_value(s);
}

/* drop the records of steps >= step from a JSON array of records */
static void drop_from(json_t *arr, int step) {
    for (size_t i = json_array_size(arr); i-- > 0;)
        if (record_step(json_array_get(arr, i)) >= step) json_array_remove(arr, i);
}

/* {"phases": {"NAME_s": seconds}}: NAME and the number kept (at most 16 phases) */
static json_t *take_phases(int step, json_t *j, json_t *ph) {
    json_t *out = json_object();
    const char *k;
    json_t *v;
    json_object_foreach(ph, k, v) {
        size_t n = strlen(k);
        if (json_object_size(out) >= 16) break;
        if (n < 3 || n > 34 || strcmp(k + n - 2, "_s") != 0) continue;
        char name[40];
        snprintf(name, sizeof name, "%.*s", (int)(n - 2), k);
        json_object_set_new(out, name, isfinite(num(v)) ? json_real(num(v)) : json_null());
    }
    float total = num(json_object_get(j, "step_seconds"));
    return json_pack("{s:i, s:o, s:o}", "step", step, "seconds",
                     isfinite(total) ? json_real(total) : json_null(), "phases", out);
}

/* {"rss_bytes": [n, ...]}: whole numbers, at most 4096 ranks */
static json_t *take_memory(int step, json_t *rss) {
    json_t *out = json_array();
    size_t i;
    json_t *v;
    json_array_foreach(rss, i, v) {
        if (i >= 4096) break;
        json_array_append_new(out, json_is_integer(v) && json_integer_value(v) >= 0
                                       ? json_integer(json_integer_value(v)) : json_null());
    }
    return json_pack("[i, o]", step, out);
}

/* one complete line; lines that are not a metrics object are passed over */
static void take_line(serve_run *r, const char *line, size_t n) {
    json_t *j = json_loadb(line, n, 0, NULL);
    json_t *step = json_object_get(j, "step");
    if (!json_is_integer(step) || json_integer_value(step) < 0 ||
        json_integer_value(step) > 2000000000) {
        json_decref(j);
        return;
    }
    int s = (int)json_integer_value(step);
    json_t *v;
    if (json_object_get(j, "loss")) {
        if (grow((void **)&r->pts, &r->cap_pts, r->n_pts, sizeof *r->pts) == 0)
            r->pts[r->n_pts++] = (serve_point){s, num(json_object_get(j, "loss")),
                                               num(json_object_get(j, "lr")),
                                               num(json_object_get(j, "grad_norm")),
                                               num(json_object_get(j, "tokens_per_s")),
                                               num(json_object_get(j, "mfu"))};
    } else if ((v = json_object_get(j, "val_loss")) != NULL) {
        if (grow((void **)&r->vals, &r->cap_vals, r->n_vals, sizeof *r->vals) == 0)
            r->vals[r->n_vals++] = (serve_val){s, num(v)};
    } else if (json_is_object(v = json_object_get(j, "phases"))) {
        json_array_append_new(r->phases, take_phases(s, j, v));
    } else if (json_is_string(v = json_object_get(j, "sample"))) {
        /* at most 4 KiB of text per sample, cut at a UTF-8 character boundary */
        const char *txt = json_string_value(v);
        size_t tn = json_string_length(v);
        if (tn > 4096) {
            tn = 4096;
            while (tn > 0 && ((unsigned char)txt[tn] & 0xC0) == 0x80) tn--;
        }
        json_t *pr = json_object_get(j, "prompt");
        json_array_append_new(r->samples, json_pack("{s:i, s:s, s:s%}", "step", s, "prompt",
                                                    json_is_string(pr) ? json_string_value(pr) : "",
                                                    "text", txt, tn));
    } else if (json_is_array(v = json_object_get(j, "rss_bytes"))) {
        json_array_append_new(r->memory, take_memory(s, v));
    } else if (grow((void **)&r->evs, &r->cap_evs, r->n_evs, sizeof *r->evs) == 0) {
        serve_event e = {.step = s, .to_step = -1, .value = NAN, .mean = NAN};
        if ((v = json_object_get(j, "skipped")) != NULL) {
            e.kind = SERVE_EV_SKIPPED;
            snprintf(e.why, sizeof e.why, "%s", json_is_string(v) ? json_string_value(v) : "?");
        } else if ((v = json_object_get(j, "rolled_back_to")) != NULL && json_is_integer(v)) {
            e.kind = SERVE_EV_ROLLBACK;
            e.to_step = (int)json_integer_value(v);
            /* the steps from the checkpoint on are trained again: their first records go */
            size_t w = 0;
            for (size_t i = 0; i < r->n_pts; i++)
                if (r->pts[i].step < e.to_step) r->pts[w++] = r->pts[i];
            r->n_pts = w;
            w = 0;
            for (size_t i = 0; i < r->n_vals; i++)
                if (r->vals[i].step <= e.to_step) r->vals[w++] = r->vals[i];
            r->n_vals = w;
            drop_from(r->phases, e.to_step);
            drop_from(r->memory, e.to_step);
            drop_from(r->samples, e.to_step + 1); /* a sample's step is steps done */
            r->generation++;
        } else if ((v = json_object_get(j, "spike")) != NULL) {
            e.kind = SERVE_EV_SPIKE;
            e.value = num(v);
            e.mean = num(json_object_get(j, "running_mean"));
        } else {
            json_decref(j);
            return;
        }
        r->evs[r->n_evs++] = e;
    }
    json_decref(j);
}

void serve_run_refresh(serve_run *r) {
    int fd = serve_open_in_run(r->dir, "metrics.jsonl", O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        if (fd >= 0) close(fd);
        if (r->offset > 0 || r->n_pts || r->n_vals || r->n_evs) reset(r);
        r->mtime = 0;
        return;
    }
    r->mtime = (double)st.st_mtim.tv_sec + 1e-9 * (double)st.st_mtim.tv_nsec;
    /* the same file as before, not shorter, with the same first bytes? */
    int same = st.st_dev == r->dev && st.st_ino == r->ino && st.st_size >= r->offset;
    if (same && r->head_len > 0) {
        char h[sizeof r->head];
        same = pread(fd, h, r->head_len, 0) == (ssize_t)r->head_len &&
               memcmp(h, r->head, r->head_len) == 0;
    }
    if (!same) {
        if (r->offset > 0 || r->n_pts || r->n_vals || r->n_evs) reset(r);
        r->dev = st.st_dev;
        r->ino = st.st_ino;
    }
    size_t want = (size_t)(st.st_size - r->offset);
    if (want > REFRESH_MAX) want = REFRESH_MAX;
    char *buf = want ? malloc(want) : NULL;
    ssize_t got = buf ? pread(fd, buf, want, r->offset) : 0;
    close(fd);
    if (got <= 0) {
        free(buf);
        return;
    }
    if (r->offset == 0) { /* remember the file's first bytes */
        r->head_len = (size_t)got < sizeof r->head ? (size_t)got : sizeof r->head;
        memcpy(r->head, buf, r->head_len);
    }
    size_t pos = 0;
    for (;;) {
        char *nl = memchr(buf + pos, '\n', (size_t)got - pos);
        if (!nl) break; /* a torn last line: read again when its newline lands */
        size_t n = (size_t)(nl - (buf + pos));
        if (n > 0) take_line(r, buf + pos, n);
        pos += n + 1;
    }
    r->offset += (off_t)pos;
    /* the remembered head must lie inside what was consumed, or it may change under us */
    if ((off_t)r->head_len > r->offset) r->head_len = (size_t)r->offset;
    free(buf);
}

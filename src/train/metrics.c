/* metrics.jsonl writer: one JSON object per step and per evaluation, flushed per line. */
#include "lmforge/metrics.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lmforge/fsutil.h"

struct lmf_metrics {
    FILE *f;
    char path[4096];
    char run[64];   /* the run's identity, in every line */
};

/* A line of completed work before the checkpoint of step `limit`, of run `run`: step lines
 * (0-based) below it, an evaluation (taken after `step` steps) up to it. */
static int keep_line(json_t *j, int limit, const char *run) {
    const char *r = json_string_value(json_object_get(j, "run"));
    if (r && strcmp(r, run) != 0) return 0;
    json_int_t step = json_integer_value(json_object_get(j, "step"));
    return step < limit || (step == limit && json_object_get(j, "val_loss"));
}

/* keep only the lines of completed work before the checkpoint of step `limit` */
static lmf_status filter_existing(const char *path, int limit, const char *run) {
    char *buf = NULL;
    size_t len = 0;
    if (limit < 0 || lmf_read_file(path, &buf, &len, (size_t)1 << 31) != LMF_OK) {
        FILE *f = fopen(path, "w");
        if (!f) return lmf_fail(LMF_ERR_IO, "cannot create %s: %s", path, strerror(errno));
        fclose(f);
        return LMF_OK;
    }
    size_t w = 0;
    char *line = buf;
    while (line < buf + len) {
        char *nl = memchr(line, '\n', (size_t)(buf + len - line));
        size_t ll = nl ? (size_t)(nl - line) : (size_t)(buf + len - line);
        json_t *j = json_loadb(line, ll, 0, NULL);
        int keep = j && keep_line(j, limit, run);
        json_decref(j);
        if (keep) {
            memmove(buf + w, line, ll);
            w += ll;
            buf[w++] = '\n';
        }
        line += ll + 1;
    }
    lmf_status s = lmf_write_file_atomic(path, buf, w);
    free(buf);
    return s;
}

lmf_status lmf_metrics_open(const char *path, int resume_step, const char *run_id,
                            lmf_metrics **out) {
    *out = NULL;
    LMF_TRY(filter_existing(path, resume_step, run_id ? run_id : ""));
    lmf_metrics *m = calloc(1, sizeof *m);
    if (!m) return lmf_fail(LMF_ERR_NOMEM, "cannot allocate the metrics writer");
    snprintf(m->path, sizeof m->path, "%s", path);
    snprintf(m->run, sizeof m->run, "%s", run_id ? run_id : "");
    m->f = fopen(path, "a");
    if (!m->f) {
        free(m);
        return lmf_fail(LMF_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    }
    *out = m;
    return LMF_OK;
}

void lmf_metrics_close(lmf_metrics *m) {
    if (!m) return;
    fclose(m->f);
    free(m);
}

static lmf_status put(lmf_metrics *m, json_t *j) {
    if (!j || (m->run[0] && json_object_set_new(j, "run", json_string(m->run)) != 0)) {
        json_decref(j);
        return lmf_fail(LMF_ERR_NOMEM, "cannot format a metrics line");
    }
    int r = json_dumpf(j, m->f, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(7));
    json_decref(j);
    if (r != 0 || fputc('\n', m->f) == EOF || fflush(m->f) != 0)
        return lmf_fail(LMF_ERR_IO, "cannot write %s: %s", m->path, strerror(errno));
    return LMF_OK;
}

static json_t *num(double x) { return isfinite(x) ? json_real(x) : json_null(); }

lmf_status lmf_metrics_step(lmf_metrics *m, int step, double loss, double lr, double grad_norm,
                            double tokens_per_s, double mfu) {
    return put(m, json_pack("{s:i, s:o, s:o, s:o, s:o, s:o}", "step", step, "loss", num(loss),
                            "lr", num(lr), "grad_norm", num(grad_norm), "tokens_per_s",
                            num(tokens_per_s), "mfu", num(mfu)));
}

lmf_status lmf_metrics_eval(lmf_metrics *m, int step, double val_loss) {
    return put(m, json_pack("{s:i, s:o}", "step", step, "val_loss", num(val_loss)));
}

lmf_status lmf_metrics_skip(lmf_metrics *m, int step, const char *why, int bad_in_row) {
    return put(m, json_pack("{s:i, s:s, s:i}", "step", step, "skipped", why, "bad_in_row",
                            bad_in_row));
}

lmf_status lmf_metrics_rollback(lmf_metrics *m, int step, int to_step) {
    return put(m, json_pack("{s:i, s:i}", "step", step, "rolled_back_to", to_step));
}

lmf_status lmf_metrics_spike(lmf_metrics *m, int step, double loss, double mean) {
    return put(m, json_pack("{s:i, s:o, s:o}", "step", step, "spike", num(loss), "running_mean",
                            num(mean)));
}

lmf_status lmf_metrics_phases(lmf_metrics *m, int step, double step_seconds, int n,
                              const char *const *names, const double *seconds) {
    json_t *ph = json_object();
    for (int i = 0; ph && i < n; i++) {
        char key[64];
        snprintf(key, sizeof key, "%s_s", names[i]);
        json_object_set_new(ph, key, num(seconds[i]));
    }
    return put(m, ph ? json_pack("{s:i, s:o, s:o}", "step", step, "step_seconds",
                                 num(step_seconds), "phases", ph) : NULL);
}

lmf_status lmf_metrics_memory(lmf_metrics *m, int step, const int64_t *rss_bytes, int n_ranks) {
    json_t *a = json_array();
    for (int i = 0; a && i < n_ranks; i++) json_array_append_new(a, json_integer(rss_bytes[i]));
    return put(m, a ? json_pack("{s:i, s:o}", "step", step, "rss_bytes", a) : NULL);
}

lmf_status lmf_metrics_sample(lmf_metrics *m, int step, const char *prompt, const char *text) {
    return put(m, json_pack("{s:i, s:s, s:s}", "step", step, "sample", text, "prompt",
                            prompt ? prompt : ""));
}

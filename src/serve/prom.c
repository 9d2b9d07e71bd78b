/* /metrics: every run's latest values in the Prometheus text exposition format (version 0.0.4),
 * one family per metric with HELP and TYPE lines and a run="NAME" label (and phase= or rank=). */
#include "serve/serve_internal.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct sbuf {
    char *p;
    size_t n, cap;
    int failed;
} sbuf;

static void put(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(sbuf *b, const char *fmt, ...) {
    if (b->failed) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(b->p ? b->p + b->n : NULL, b->p ? b->cap - b->n : 0, fmt, ap);
        va_end(ap);
        if (k < 0) { b->failed = 1; return; }
        if (b->p && b->n + (size_t)k < b->cap) { b->n += (size_t)k; return; }
        size_t nc = (b->cap ? b->cap * 2 : 4096) + (size_t)k;
        char *q = realloc(b->p, nc);
        if (!q) { b->failed = 1; return; }
        b->p = q;
        b->cap = nc;
    }
}

typedef enum fam_type { GAUGE, COUNTER } fam_type;

typedef struct family {
    const char *name, *help;
    fam_type type;
    const char *key; /* in the run's status object */
} family;

/* names follow https://prometheus.io/docs/practices/naming/ (base units, _total counters) */
static const family families[] = {
    {"lmforge_step", "Optimizer steps completed.", GAUGE, "step"},
    {"lmforge_target_steps", "Optimizer steps the run is set to take (from run.json, else its latest checkpoint).", GAUGE, "total_steps"},
    {"lmforge_loss", "Training loss (mean cross-entropy, nats per token) of the latest step.", GAUGE, "loss"},
    {"lmforge_val_loss", "Validation loss (nats per token) of the latest evaluation.", GAUGE, "val_loss"},
    {"lmforge_learning_rate", "Learning rate of the latest step.", GAUGE, "lr"},
    {"lmforge_grad_norm", "Global gradient norm of the latest step.", GAUGE, "grad_norm"},
    {"lmforge_tokens_per_second", "Training throughput of the latest step, tokens per second over all ranks.", GAUGE, "tokens_per_s"},
    {"lmforge_mfu", "Model FLOPs utilization of the latest step, as a fraction of the peak FLOP/s.", GAUGE, "mfu"},
    {"lmforge_eta_seconds", "Estimated time until the last step, at the latest throughput.", GAUGE, "eta_seconds"},
    {"lmforge_checkpoint_step", "Step of the latest complete checkpoint.", GAUGE, "checkpoint_step"},
    {"lmforge_checkpoint_age_seconds", "Seconds since the latest complete checkpoint was committed.", GAUGE, "checkpoint_age_seconds"},
    {"lmforge_metrics_age_seconds", "Seconds since metrics.jsonl last changed.", GAUGE, "updated_age_seconds"},
    {"lmforge_skipped_steps_total", "Steps whose update was skipped for a NaN or Inf loss or gradient norm.", COUNTER, "skipped_steps"},
    {"lmforge_rollbacks_total", "Rollbacks to the latest checkpoint after repeated bad steps.", COUNTER, "rollbacks"},
    {"lmforge_loss_spikes_total", "Steps whose loss exceeded the spike factor times its running mean.", COUNTER, "loss_spikes"},
};

/* a label value with \, " and newline escaped; other control bytes and bytes outside ASCII
 * (a directory name need not be UTF-8, a label value must be) become '?' */
static void put_label(sbuf *b, const char *s) {
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '\\') put(b, "\\\\");
        else if (c == '"') put(b, "\\\"");
        else if (c == '\n') put(b, "\\n");
        else put(b, "%c", c < 0x20 || c >= 0x7f ? '?' : c);
    }
}

/* a sample {run="NAME",LABEL="VALUE"} value */
static void put_labelled(sbuf *b, const char *metric, const char *run, const char *label,
                         const char *value, double x) {
    put(b, "%s{run=\"", metric);
    put_label(b, run);
    put(b, "\",%s=\"", label);
    put_label(b, value);
    put(b, x == floor(x) && fabs(x) < 1e15 ? "\"} %.0f\n" : "\"} %.7g\n", x);
}

/* the latest profiled step's seconds by phase ({"step", "seconds", "phases": {name: s}}) and
 * the latest memory record ([step, [bytes of rank 0, ...]]) of each run, as labelled families */
static void put_profile(sbuf *b, serve_run *runs, json_t **ph, json_t **mem, int n) {
    put(b, "# HELP lmforge_step_phase_seconds Seconds of the latest profiled step spent in each "
           "phase on rank 0 (they add up to the step; train --profile-every).\n"
           "# TYPE lmforge_step_phase_seconds gauge\n");
    for (int i = 0; i < n; i++) {
        const char *k;
        json_t *v;
        json_object_foreach(json_object_get(ph[i], "phases"), k, v)
            if (json_is_number(v)) put_labelled(b, "lmforge_step_phase_seconds", runs[i].name,
                                                "phase", k, json_number_value(v));
    }
    put(b, "# HELP lmforge_peak_resident_memory_bytes Peak resident set size of each rank at "
           "the latest profiled step.\n# TYPE lmforge_peak_resident_memory_bytes gauge\n");
    for (int i = 0; i < n; i++) {
        size_t r;
        json_t *v;
        json_array_foreach(json_array_get(mem[i], 1), r, v) {
            if (!json_is_integer(v)) continue;
            char rank[24];
            snprintf(rank, sizeof rank, "%zu", r);
            put_labelled(b, "lmforge_peak_resident_memory_bytes", runs[i].name, "rank", rank,
                         (double)json_integer_value(v));
        }
    }
}

char *serve_prometheus(serve_run *runs, int n, double now) {
    size_t cnt = (size_t)(n > 0 ? n : 1);
    json_t **st = calloc(cnt, sizeof *st), **ph = calloc(cnt, sizeof *ph),
           **mem = calloc(cnt, sizeof *mem);
    if (!st || !ph || !mem) {
        free(st);
        free(ph);
        free(mem);
        return NULL;
    }
    for (int i = 0; i < n; i++) {
        serve_run *r = &runs[i];
        pthread_mutex_lock(&r->mu);
        serve_run_refresh(r);
        st[i] = serve_api_status(r, now);
        /* copies: the records are read after the lock is given back */
        size_t np = json_array_size(r->phases), nm = json_array_size(r->memory);
        ph[i] = np ? json_deep_copy(json_array_get(r->phases, np - 1)) : NULL;
        mem[i] = nm ? json_deep_copy(json_array_get(r->memory, nm - 1)) : NULL;
        pthread_mutex_unlock(&r->mu);
    }
    sbuf b = {0};
    for (size_t f = 0; f < sizeof families / sizeof families[0]; f++) {
        const family *fa = &families[f];
        put(&b, "# HELP %s %s\n# TYPE %s %s\n", fa->name, fa->help, fa->name,
            fa->type == GAUGE ? "gauge" : "counter");
        for (int i = 0; i < n; i++) {
            json_t *v = json_object_get(st[i], fa->key);
            if (!json_is_number(v)) continue; /* unknown yet: no sample */
            put(&b, "%s{run=\"", fa->name);
            put_label(&b, runs[i].name);
            double x = json_number_value(v); /* floats of metrics.jsonl: 7 digits */
            put(&b, x == floor(x) && fabs(x) < 1e15 ? "\"} %.0f\n" : "\"} %.7g\n", x);
        }
    }
    put(&b, "# HELP lmforge_run_info A served run: its directory.\n# TYPE lmforge_run_info gauge\n");
    for (int i = 0; i < n; i++) {
        put(&b, "lmforge_run_info{run=\"");
        put_label(&b, runs[i].name);
        put(&b, "\",dir=\"");
        put_label(&b, runs[i].dir);
        put(&b, "\"} 1\n");
    }
    put_profile(&b, runs, ph, mem, n);
    for (int i = 0; i < n; i++) {
        json_decref(st[i]);
        json_decref(ph[i]);
        json_decref(mem[i]);
    }
    free(st);
    free(ph);
    free(mem);
    if (b.failed) {
        free(b.p);
        return NULL;
    }
    return b.p;
}

/* trainer_state.json: formatting and strict parsing of the training state, with the run's
 * options as an object stored as given. */
#include "lmforge/ckpt.h"

#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

/* the mixture's part of the loader state: "rows" and "sources": [[epoch, position], ...] (the
 * first source's also as "epoch" and "position", as a single-file state has them) */
static int add_sources(json_t *ld, const lmf_loader_state *l) {
    json_t *a = json_array();
    for (int i = 0; a && i < l->n_sources; i++)
        if (json_array_append_new(a, json_pack("[I, I]", (json_int_t)l->src[i].epoch,
                                               (json_int_t)l->src[i].position)) != 0) {
            json_decref(a);
            return -1;
        }
    if (!a || json_object_set_new(ld, "sources", a) != 0) return -1;
    return json_object_set_new(ld, "rows", json_integer((json_int_t)l->rows));
}

/* read add_sources' fields; a state without them (one token file) is one source at
 * (epoch, position) */
static int get_sources(json_t *ld, lmf_loader_state *l) {
    json_t *a = json_object_get(ld, "sources"), *rows = json_object_get(ld, "rows");
    if (!a && !rows) {
        l->n_sources = 1;
        return 1;
    }
    if (!json_is_array(a) || json_array_size(a) < 1 || json_array_size(a) > LMF_DATA_MAX_SOURCES ||
        !json_is_integer(rows) || json_integer_value(rows) < 0)
        return 0;
    l->rows = (uint64_t)json_integer_value(rows);
    l->n_sources = (int)json_array_size(a);
    for (int i = 0; i < l->n_sources; i++) {
        json_t *e = json_array_get(a, (size_t)i), *ep = json_array_get(e, 0),
               *po = json_array_get(e, 1);
        if (json_array_size(e) != 2 || !json_is_integer(ep) || !json_is_integer(po) ||
            json_integer_value(ep) < 0 || json_integer_value(po) < 0)
            return 0;
        l->src[i].epoch = (uint64_t)json_integer_value(ep);
        l->src[i].position = (uint64_t)json_integer_value(po);
    }
    return 1;
}

char *lmf_ckpt_state_format(const lmf_train_state *s, const char *opts_json) {
    json_t *opts = NULL;
    if (opts_json) {
        json_error_t e;
        opts = json_loads(opts_json, JSON_REJECT_DUPLICATES, &e);
        if (!json_is_object(opts)) {
            json_decref(opts);
            lmf_fail(LMF_ERR_ARG, "the run's options for trainer_state.json are not a JSON object");
            return NULL;
        }
    }
    const lmf_fault_counters *f = &s->faults;
    json_t *j = json_pack(
        "{s:s, s:i, s:s*, s:i, s:i, s:i, s:I, s:i, s:i, s:i, s:{s:I, s:I, s:I, s:b},"
        " s:{s:i, s:I, s:i, s:i, s:I, s:f}, s:o?}",
        "format", LMF_CKPT_STATE_FORMAT, "version", LMF_CKPT_STATE_VERSION, "run_id",
        s->run_id[0] ? s->run_id : NULL, "step", s->step,
        "world_size", s->world_size, "zero_stage", s->zero_stage, "tokens_per_step",
        (json_int_t)s->tokens_per_step, "seq", s->seq, "batch", s->batch, "grad_accum",
        s->grad_accum, "loader", "epoch", (json_int_t)s->loader.src[0].epoch, "position",
        (json_int_t)s->loader.src[0].position, "seed", (json_int_t)s->loader.seed, "shuffle",
        s->loader.shuffle, "faults", "bad_in_row", f->bad_in_row, "skipped_total",
        (json_int_t)f->skipped_total, "rollbacks", f->rollbacks, "stuck", f->stuck, "good_steps",
        (json_int_t)f->good_steps, "loss_ema", isfinite(f->loss_ema) ? f->loss_ema : 0.0,
        "opts", opts);
    if (j && add_sources(json_object_get(j, "loader"), &s->loader) != 0) {
        json_decref(j);
        j = NULL;
    }
    char *txt = j ? json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
    json_decref(j);
    if (!txt) lmf_fail(LMF_ERR_NOMEM, "cannot format the trainer state");
    return txt;
}

static json_t *load(const char *text, size_t len, const char *what, lmf_status *s) {
    json_error_t e;
    json_t *j = json_loadb(text, len, JSON_REJECT_DUPLICATES, &e);
    if (!j) {
        *s = lmf_fail(LMF_ERR_FORMAT, "%s: not valid JSON: %s (line %d, column %d)", what, e.text,
                      e.line, e.column);
        return NULL;
    }
    const char *fmt = json_string_value(json_object_get(j, "format"));
    json_t *ver = json_object_get(j, "version");
    if (!json_is_object(j) || !fmt || strcmp(fmt, LMF_CKPT_STATE_FORMAT) != 0 ||
        !json_is_integer(ver) || json_integer_value(ver) != LMF_CKPT_STATE_VERSION) {
        json_decref(j);
        *s = lmf_fail(LMF_ERR_FORMAT, "%s: not an lmforge trainer state of version %d", what,
                      LMF_CKPT_STATE_VERSION);
        return NULL;
    }
    *s = LMF_OK;
    return j;
}

int lmf_run_id_valid(const char *id) {
    if (!id || strlen(id) != LMF_RUN_ID_LEN) return 0;
    for (const char *p = id; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'))) return 0;
    return 1;
}

void lmf_run_id_new(char *id) {
    uint64_t v = 0;
    if (getrandom(&v, sizeof v, GRND_NONBLOCK) != (ssize_t)sizeof v) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t x[3] = {(uint64_t)ts.tv_sec, (uint64_t)ts.tv_nsec, (uint64_t)getpid()};
        v = XXH3_64bits(x, sizeof x);
    }
    snprintf(id, LMF_RUN_ID_LEN + 1, "%016llx", (unsigned long long)v);
}

/* integer j[key] in [lo, hi] into *v */
static int get_int(json_t *j, const char *key, int64_t lo, int64_t hi, int64_t *v) {
    json_t *x = json_object_get(j, key);
    if (!json_is_integer(x) || json_integer_value(x) < lo || json_integer_value(x) > hi) return 0;
    *v = json_integer_value(x);
    return 1;
}

lmf_status lmf_ckpt_state_parse(const char *text, size_t len, const char *what,
                                lmf_train_state *s, char **opts_json) {
    memset(s, 0, sizeof *s);
    if (opts_json) *opts_json = NULL;
    lmf_status st;
    json_t *j = load(text, len, what, &st);
    if (!j) return st;
    json_t *ld = json_object_get(j, "loader"), *f = json_object_get(j, "faults");
    json_t *shuffle = json_object_get(ld, "shuffle"), *ema = json_object_get(f, "loss_ema");
    int64_t v[16];
    int ok = get_int(j, "step", 0, INT_MAX, &v[0]) && get_int(j, "world_size", 1, INT_MAX, &v[1]) &&
             get_int(j, "zero_stage", 0, 3, &v[2]) && get_int(j, "batch", 1, INT_MAX, &v[3]) &&
             get_int(j, "grad_accum", 1, INT_MAX, &v[4]) && get_int(j, "seq", 1, INT_MAX, &v[5]) &&
             get_int(j, "tokens_per_step", 1, INT64_MAX, &v[6]) &&
             get_int(ld, "epoch", 0, INT64_MAX, &v[7]) &&
             get_int(ld, "position", 0, INT64_MAX, &v[8]) &&
             get_int(ld, "seed", INT64_MIN, INT64_MAX, &v[9]) && json_is_boolean(shuffle) &&
             get_int(f, "bad_in_row", 0, INT_MAX, &v[10]) &&
             get_int(f, "skipped_total", 0, INT64_MAX, &v[11]) &&
             get_int(f, "rollbacks", 0, INT_MAX, &v[12]) && get_int(f, "stuck", 0, 1, &v[13]) &&
             get_int(f, "good_steps", 0, INT64_MAX, &v[14]) && json_is_number(ema);
    if (ok) {
        s->step = (int)v[0];
        s->world_size = (int)v[1];
        s->zero_stage = (int)v[2];
        s->batch = (int)v[3];
        s->grad_accum = (int)v[4];
        s->seq = (int)v[5];
        s->tokens_per_step = v[6];
        s->loader.src[0].epoch = (uint64_t)v[7];
        s->loader.src[0].position = (uint64_t)v[8];
        ok = get_sources(ld, &s->loader);
        s->loader.seed = (uint64_t)v[9];
        s->loader.shuffle = json_is_true(shuffle);
        s->faults.bad_in_row = (int)v[10];
        s->faults.skipped_total = v[11];
        s->faults.rollbacks = (int)v[12];
        s->faults.stuck = (int)v[13];
        s->faults.good_steps = v[14];
        s->faults.loss_ema = json_number_value(ema);
    }
    /* the run's identity: absent in checkpoints older than it */
    json_t *rid = json_object_get(j, "run_id");
    if (ok && rid) {
        ok = lmf_run_id_valid(json_string_value(rid));
        if (ok) snprintf(s->run_id, sizeof s->run_id, "%s", json_string_value(rid));
    }
    json_t *opts = json_object_get(j, "opts");
    if (ok && opts && !json_is_object(opts) && !json_is_null(opts)) ok = 0;
    if (ok && opts_json) {
        *opts_json = json_is_object(opts) ? json_dumps(opts, JSON_COMPACT | JSON_PRESERVE_ORDER)
                                          : strdup("{}");
        if (!*opts_json) {
            json_decref(j);
            return lmf_fail(LMF_ERR_NOMEM, "%s: out of memory", what);
        }
    }
    json_decref(j);
    if (!ok)
        return lmf_fail(LMF_ERR_FORMAT, "%s: a field is missing or out of range (run_id, step, "
                        "world_size, zero_stage, batch, grad_accum, seq, tokens_per_step, loader, "
                        "faults, opts)", what);
    return LMF_OK;
}

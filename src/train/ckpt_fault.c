/* Numeric-fault helpers: the NaN injection hook's parser and metrics.jsonl fault lines. */
#include "train/ckpt_fault.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

lmf_status lmf_fault_parse_inject(const char *text, int64_t **steps, int *n) {
    *steps = NULL;
    *n = 0;
    if (!text || !*text) return LMF_OK;
    int cap = 1;
    for (const char *p = text; *p; p++) cap += *p == ',';
    if (cap > 100000)
        return lmf_fail(LMF_ERR_ARG, "LMF_INJECT_NAN_STEPS: more than 100000 entries");
    int64_t *v = malloc((size_t)cap * sizeof *v);
    if (!v) return lmf_fail(LMF_ERR_NOMEM, "out of memory reading LMF_INJECT_NAN_STEPS");
    int k = 0;
    const char *p = text;
    while (*p) {
        char *end;
        errno = 0;
        long long x = strtoll(p, &end, 10);
        if (end == p || errno != 0 || x < 0 || x > 2000000000LL || (*end != ',' && *end)) {
            free(v);
            return lmf_fail(LMF_ERR_ARG, "LMF_INJECT_NAN_STEPS='%s': expected step numbers "
                            "separated by commas, e.g. 5,6,7", text);
        }
        v[k++] = x;
        p = *end ? end + 1 : end;
    }
    *steps = v;
    *n = k;
    return LMF_OK;
}

static lmf_status append(const char *path, json_t *j) {
    char *txt = j ? json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(7))
                  : NULL;
    json_decref(j);
    if (!txt) return lmf_fail(LMF_ERR_NOMEM, "cannot format a metrics line");
    FILE *f = fopen(path, "a");
    lmf_status s = LMF_OK;
    if (!f || fprintf(f, "%s\n", txt) < 0 || fflush(f) != 0)
        s = lmf_fail(LMF_ERR_IO, "cannot append to %s: %s", path, strerror(errno));
    if (f && fclose(f) != 0 && s == LMF_OK)
        s = lmf_fail(LMF_ERR_IO, "cannot append to %s: %s", path, strerror(errno));
    free(txt);
    return s;
}

lmf_status lmf_fault_note_skip(const char *metrics_path, int step, const char *why, int bad_in_row) {
    return append(metrics_path, json_pack("{s:i, s:s, s:i}", "step", step, "skipped", why,
                                          "bad_in_row", bad_in_row));
}

lmf_status lmf_fault_note_rollback(const char *metrics_path, int step, int to_step) {
    return append(metrics_path, json_pack("{s:i, s:i}", "step", step, "rolled_back_to", to_step));
}

lmf_status lmf_fault_note_spike(const char *metrics_path, int step, double loss, double mean) {
    return append(metrics_path, json_pack("{s:i, s:f, s:f}", "step", step, "spike", loss,
                                          "running_mean", mean));
}

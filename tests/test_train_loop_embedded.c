/* The training loop is the library's: a program that embeds liblmforge and calls
 * lmf_trainer_run gets the run `lmforge train` makes with the same options (the same losses,
 * evaluations and final weights, byte for byte), its callbacks see every step and evaluation,
 * and a stop request or --stop-after ends the run after that step with a checkpoint that a
 * resumed run continues exactly. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lmforge/data.h"
#include "lmforge/fsutil.h"
#include "lmforge/train.h"
#include "lib/test_util.h"

static char g_data[1024], g_val[1024];

/* token files the model can learn something from: a repeating pattern with noise */
static int make_data(void **state) {
    if (lmf_test_tmpdir_setup(state) != 0) return -1;
    enum { N = 20000, NV = 3000 };
    uint32_t *t = malloc(N * sizeof *t);
    if (!t) return -1;
    uint64_t x = 12345;
    for (int i = 0; i < N; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        t[i] = (uint32_t)((i % 7) * 3 + ((x >> 60) == 0 ? (x >> 33) % 40 : 0)) % 60;
    }
    lmf_test_path(g_data, sizeof g_data, "train.bin");
    lmf_test_path(g_val, sizeof g_val, "val.bin");
    int bad = lmf_tokens_write(g_data, t, N, 2) != LMF_OK || lmf_tokens_write(g_val, t, NV, 2) != LMF_OK;
    free(t);
    return bad ? -1 : 0;
}

static void opts_for(lmf_train_opts *o, const char *out) {
    lmf_train_opts_default(o);
    lmf_config_preset("tiny", &o->cfg);
    o->cfg.vocab_size = 64;
    o->data = g_data;
    o->val_data = g_val;
    o->out_dir = out;
    o->steps = 12;
    o->batch = 4;
    o->seq = 32;
    o->warmup = 2;
    o->eval_every = 5;
    o->eval_batches = 2;
    o->save_every = 4;
    o->seed = 21;
    o->threads = 2;
    o->comm = "single";
}

typedef struct seen {
    int steps, evals, last_done, stop_at;
    int eval_done[8];
} seen;

static void on_step(void *ctx, const lmf_step_stats *st, int done, int total, double eta) {
    seen *s = ctx;
    assert_int_equal(st->step + 1, done);
    assert_int_equal(total, 12);
    assert_true(isfinite(st->loss) && st->loss > 0 && eta >= 0);
    s->steps++;
    s->last_done = done;
}

static void on_eval(void *ctx, int done, float vl) {
    seen *s = ctx;
    assert_true(isfinite(vl) && s->evals < 8);
    s->eval_done[s->evals++] = done;
}

static int stop_requested(void *ctx) {
    seen *s = ctx;
    return s->stop_at > 0 && s->last_done == s->stop_at;
}

/* the step and evaluation lines of metrics.jsonl without the timing fields and the run's id */
static void numbers(const char *run, char *out, size_t cap) {
    char p[1200];
    snprintf(p, sizeof p, "%s/metrics.jsonl", run);
    char *t = lmf_test_read_file(p, NULL), *line = t;
    size_t n = 0;
    out[0] = '\0';
    while (*line) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = '\0';
        /* only step and evaluation lines (the profiled steps' timings and memory are not
         * numbers of the run, and the command line profiles by default) */
        int keep = strstr(line, "\"loss\":") || strstr(line, "\"val_loss\":");
        char *cut = strstr(line, ",\"tokens_per_s\""); /* timing follows */
        if (!cut) cut = strstr(line, ",\"run\""); /* evaluation lines: the id is last */
        if (cut) *cut = '\0';
        if (keep) n += (size_t)snprintf(out + n, cap - n, "%s\n", line);
        if (!nl) break;
        line = nl + 1;
    }
    free(t);
}

/* runs a and b wrote the same step and evaluation numbers */
static void assert_same_numbers(const char *a, const char *b) {
    static char na[1 << 16], nb[1 << 16];
    numbers(a, na, sizeof na);
    numbers(b, nb, sizeof nb);
    assert_string_equal(na, nb);
}

/* one library run of o from creation to the end, reporting to the callbacks that count into s
 * (no callbacks when s is NULL) */
static lmf_run_result run_library(const lmf_train_opts *o, seen *s) {
    lmf_train_callbacks cb = {on_step, on_eval, stop_requested, NULL, s};
    lmf_trainer *t = NULL;
    lmf_run_result res;
    lmf_test_ok(lmf_trainer_create(o, &t), "lmf_trainer_create");
    lmf_test_ok(lmf_trainer_run(t, s ? &cb : NULL, &res), "lmf_trainer_run");
    lmf_trainer_free(t);
    return res;
}

static void test_library_run_equals_cli_run(void **state) {
    (void)state;
    char lib_run[1024], cli_run[1024], cmd[4096];
    lmf_test_path(lib_run, sizeof lib_run, "lib");
    lmf_test_path(cli_run, sizeof cli_run, "cli");
    lmf_train_opts o;
    opts_for(&o, lib_run);
    seen s = {0};
    lmf_run_result res = run_library(&o, &s);
    assert_int_equal(res.end, LMF_RUN_COMPLETED);
    assert_int_equal(res.steps_done, 12);
    assert_int_equal(s.steps, 12);
    /* evaluations after 5 and 10 steps, and at the end */
    assert_int_equal(s.evals, 3);
    assert_true(s.eval_done[0] == 5 && s.eval_done[1] == 10 && s.eval_done[2] == 12);

    const char *build = getenv("LMF_BUILD_DIR");
    if (!build) fail_msg("LMF_BUILD_DIR is not set (ctest sets it)");
    snprintf(cmd, sizeof cmd,
             "'%s/lmforge' train --model tiny --vocab-size 64 --data '%s' --val-data '%s' "
             "--out '%s' --steps 12 --batch 4 --seq 32 --warmup 2 --eval-every 5 "
             "--eval-batches 2 --save-every 4 --seed 21 --threads 2 --comm single "
             "--sample-tokens 0 --quiet", build, g_data, g_val, cli_run);
    assert_int_equal(system(cmd), 0);
    assert_same_numbers(lib_run, cli_run);
    char *metrics = lmf_test_read_file(lmf_test_path(cmd, sizeof cmd, "lib/metrics.jsonl"), NULL);
    assert_non_null(strstr(metrics, "\"val_loss\""));
    free(metrics);
    char pa[1200], pb[1200];
    snprintf(pa, sizeof pa, "%s/model.safetensors", lib_run);
    snprintf(pb, sizeof pb, "%s/model.safetensors", cli_run);
    size_t la = 0, lb = 0;
    char *wa = NULL, *wb = NULL;
    assert_int_equal(lmf_read_file(pa, &wa, &la, (size_t)1 << 26), LMF_OK);
    assert_int_equal(lmf_read_file(pb, &wb, &lb, (size_t)1 << 26), LMF_OK);
    assert_true(la == lb && memcmp(wa, wb, la) == 0);
    free(wa);
    free(wb);
}

static void test_stop_and_resume(void **state) {
    (void)state;
    char run[1024], ref[1024], p[1200];
    lmf_test_path(run, sizeof run, "stopped");
    lmf_test_path(ref, sizeof ref, "lib"); /* the uninterrupted run of the test above */
    lmf_train_opts o;
    opts_for(&o, run);
    /* a stop request after step 6: every rank stops there, with a checkpoint */
    seen s = {0};
    s.stop_at = 6;
    lmf_run_result res = run_library(&o, &s);
    assert_int_equal(res.end, LMF_RUN_STOPPED);
    assert_int_equal(res.stop_requested_here, 1);
    assert_int_equal(res.steps_done, 6);
    snprintf(p, sizeof p, "%s/checkpoints/latest", run);
    char *latest = lmf_test_read_file(p, NULL);
    assert_string_equal(latest, "step_00000006\n");
    free(latest);
    /* --stop-after 9 on the resumed run */
    lmf_saved_opts saved;
    lmf_train_opts r;
    lmf_train_opts_default(&r);
    r.threads = 2;
    r.comm = "single";
    lmf_test_ok(lmf_train_opts_from_run(run, &r, &saved), "lmf_train_opts_from_run");
    assert_string_equal(r.data, g_data);
    assert_int_equal(r.steps, 12);
    r.cfg = o.cfg;
    r.resume_dir = r.out_dir = run;
    r.stop_after = 9;
    memset(&s, 0, sizeof s);
    s.last_done = 6;
    lmf_train_callbacks cb = {on_step, on_eval, stop_requested, NULL, &s};
    lmf_trainer *t = NULL;
    lmf_test_ok(lmf_trainer_create(&r, &t), "lmf_trainer_create (resume)");
    assert_int_equal(lmf_trainer_next_step(t), 6);
    lmf_test_ok(lmf_trainer_run(t, &cb, &res), "lmf_trainer_run");
    lmf_trainer_free(t);
    assert_int_equal(res.end, LMF_RUN_STOPPED_AFTER);
    assert_int_equal(res.steps_done, 9);
    assert_int_equal(s.steps, 3);
    /* and to the end: the same numbers as the uninterrupted run */
    r.stop_after = 0;
    res = run_library(&r, NULL);
    assert_int_equal(res.end, LMF_RUN_COMPLETED);
    assert_same_numbers(ref, run);
}

/* a run never rolls back into another run's checkpoint, nor resumes one under another id */
static void test_no_rollback_into_another_run(void **state) {
    (void)state;
    char dir[1024];
    lmf_test_path(dir, sizeof dir, "shared");
    lmf_train_opts a;
    opts_for(&a, dir);
    a.steps = 8;
    a.run_id = "00000000000000aa";
    run_library(&a, NULL); /* checkpoints of steps 4 and 8 */
    /* a second run into the same directory (the library does not refuse it; lmforge train
     * does) whose first steps fail: the only checkpoint there is the first run's */
    lmf_train_opts b;
    opts_for(&b, dir);
    b.run_id = "00000000000000bb";
    b.save_every = 0;
    int64_t nan[] = {0, 1};
    b.test.nan_steps = nan;
    b.test.n_nan_steps = 2;
    b.max_bad_steps = 2;
    lmf_trainer *t = NULL;
    lmf_run_result res;
    lmf_test_ok(lmf_trainer_create(&b, &t), "lmf_trainer_create");
    assert_int_equal(lmf_trainer_run(t, NULL, &res), LMF_ERR_NUMERIC);
    assert_non_null(strstr(lmf_last_error(), "belongs to run 00000000000000aa"));
    assert_int_equal(lmf_trainer_next_step(t), 2); /* not the first run's step 8 */
    lmf_trainer_free(t);
    /* resuming the first run's checkpoint as another run is refused */
    lmf_train_opts r;
    opts_for(&r, dir);
    r.resume_dir = dir;
    r.run_id = "00000000000000bb";
    assert_int_equal(lmf_trainer_create(&r, &t), LMF_ERR_ARG);
    assert_non_null(strstr(lmf_last_error(), "resume the run directory it came from"));
    r.run_id = NULL; /* no id given: the checkpoint's */
    lmf_test_ok(lmf_trainer_create(&r, &t), "lmf_trainer_create (resume)");
    assert_string_equal(lmf_trainer_run_id(t), "00000000000000aa");
    lmf_trainer_free(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_library_run_equals_cli_run),
        cmocka_unit_test(test_stop_and_resume),
        cmocka_unit_test(test_no_rollback_into_another_run),
    };
    return cmocka_run_group_tests(tests, make_data, lmf_test_tmpdir_teardown);
}

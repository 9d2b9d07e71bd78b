/* trainer_state.json tests: round trip of the training state and of the run's options stored
 * with it, rejection of bad input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "lmforge/ckpt.h"
#include "lmforge/train.h"

static void sample(lmf_train_state *s) {
    memset(s, 0, sizeof *s);
    snprintf(s->run_id, sizeof s->run_id, "0123456789abcdef");
    s->step = 120;
    s->world_size = 3;
    s->zero_stage = 2;
    s->batch = 4;
    s->grad_accum = 2;
    s->seq = 64;
    s->tokens_per_step = 1536;
    s->loader.n_sources = 3;
    s->loader.rows = 4321;
    s->loader.src[0].epoch = 2;
    s->loader.src[0].position = 77;
    s->loader.src[1].epoch = 9;
    s->loader.src[1].position = 5;
    s->loader.src[2].epoch = 0;
    s->loader.src[2].position = 1234567890123ll;
    s->loader.seed = 0xfedcba9876543210ull; /* above 2^63: stored as a negative integer */
    s->loader.shuffle = 1;
    s->faults.bad_in_row = 1;
    s->faults.skipped_total = 5;
    s->faults.rollbacks = 1;
    s->faults.stuck = 0;
    s->faults.good_steps = 114;
    s->faults.loss_ema = 2.71828182845904;
}

static void test_round_trip(void **state) {
    lmf_train_state a, b;
    sample(&a);
    lmf_train_opts o;
    lmf_train_opts_default(&o);
    o.data = "/data/train.bin";
    o.val_data = NULL;
    o.steps = 1000;
    o.global_batch = 1536;
    o.max_bad_steps = 4;
    o.spike_factor = 3.5f;
    o.lr = 6e-4f;
    o.lr_schedule = LMF_LR_CONSTANT;
    o.kernels = "ref";
    o.recompute = LMF_RECOMPUTE_SELECTIVE;
    o.tp = 2;
    o.sequence_parallel = 1;
    o.pp = 3;
    o.schedule = LMF_PP_INTERLEAVED;
    o.virtual_stages = 2;
    o.stage_layers = "2,2,2,2,2,1";
    char *opts = lmf_train_opts_to_json(&o);
    assert_non_null(opts);
    char *txt = lmf_ckpt_state_format(&a, opts);
    assert_non_null(txt);
    char *back = NULL;
    assert_int_equal(lmf_ckpt_state_parse(txt, strlen(txt), "ts.json", &b, &back), LMF_OK);
    assert_string_equal(b.run_id, "0123456789abcdef");
    assert_int_equal(b.step, 120);
    assert_int_equal(b.world_size, 3);
    assert_int_equal(b.zero_stage, 2);
    assert_int_equal(b.grad_accum, 2);
    assert_int_equal(b.seq, 64);
    assert_int_equal(b.tokens_per_step, 1536);
    assert_int_equal(b.loader.n_sources, 3);
    assert_int_equal(b.loader.rows, 4321);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(b.loader.src[i].epoch, a.loader.src[i].epoch);
        assert_int_equal(b.loader.src[i].position, a.loader.src[i].position);
    }
    assert_true(b.loader.seed == 0xfedcba9876543210ull);
    assert_int_equal(b.loader.shuffle, 1);
    assert_int_equal(b.faults.skipped_total, 5);
    assert_int_equal(b.faults.good_steps, 114);
    assert_true(b.faults.loss_ema == 2.71828182845904);
    /* the options come back into a default set; val_data null stays unset */
    lmf_train_opts r;
    lmf_train_opts_default(&r);
    lmf_saved_opts saved;
    assert_int_equal(lmf_train_opts_from_json(back, "ts.json", &r, &saved), LMF_OK);
    assert_string_equal(r.data, "/data/train.bin");
    assert_null(r.val_data);
    assert_int_equal(r.steps, 1000);
    assert_int_equal(r.global_batch, 1536);
    assert_int_equal(r.max_bad_steps, 4);
    assert_true(r.spike_factor == 3.5f);
    assert_true(r.lr == 6e-4f);
    assert_int_equal(r.lr_schedule, LMF_LR_CONSTANT);
    assert_string_equal(r.kernels, "ref");
    assert_int_equal(r.recompute, LMF_RECOMPUTE_SELECTIVE);
    /* the layout stays in *saved until restored, and comes back whole */
    assert_int_equal(r.tp, 0);
    assert_int_equal(r.pp, 0);
    assert_int_equal(saved.has_layout, 1);
    saved.layout_fits = 1;
    lmf_train_opts_restore_layout(&r, &saved);
    assert_int_equal(r.tp, 2);
    assert_int_equal(r.sequence_parallel, 1);
    assert_int_equal(r.pp, 3);
    assert_int_equal(r.schedule, LMF_PP_INTERLEAVED);
    assert_int_equal(r.virtual_stages, 2);
    assert_string_equal(r.stage_layers, "2,2,2,2,2,1");
    /* at another number of ranks it is not restored */
    lmf_train_opts d;
    lmf_train_opts_default(&d);
    saved.layout_fits = 0;
    lmf_train_opts_restore_layout(&d, &saved);
    assert_int_equal(d.pp, 0);
    assert_null(d.stage_layers);
    free(txt);
    free(back);
    free(opts);
    /* no options stored: an empty object comes back */
    txt = lmf_ckpt_state_format(&a, NULL);
    assert_non_null(txt);
    assert_int_equal(lmf_ckpt_state_parse(txt, strlen(txt), "ts.json", &b, &back), LMF_OK);
    assert_string_equal(back, "{}");
    free(back);
    free(txt);
    /* a state without a run id (made before runs had one) reads as run "" */
    a.run_id[0] = '\0';
    txt = lmf_ckpt_state_format(&a, NULL);
    assert_non_null(txt);
    assert_null(strstr(txt, "run_id"));
    assert_int_equal(lmf_ckpt_state_parse(txt, strlen(txt), "ts.json", &b, NULL), LMF_OK);
    assert_string_equal(b.run_id, "");
    free(txt);
}

/* a state written before mixtures (no "sources", no "rows") reads as one source */
static void test_single_file_state(void **state) {
    lmf_train_state a, b;
    sample(&a);
    char *txt = lmf_ckpt_state_format(&a, NULL);
    assert_non_null(txt);
    json_t *j = json_loads(txt, 0, NULL);
    free(txt);
    json_t *ld = json_object_get(j, "loader");
    assert_int_equal(json_object_del(ld, "sources"), 0);
    assert_int_equal(json_object_del(ld, "rows"), 0);
    txt = json_dumps(j, 0);
    json_decref(j);
    assert_int_equal(lmf_ckpt_state_parse(txt, strlen(txt), "old.json", &b, NULL), LMF_OK);
    assert_int_equal(b.loader.n_sources, 1);
    assert_int_equal(b.loader.rows, 0);
    assert_int_equal(b.loader.src[0].epoch, 2);
    assert_int_equal(b.loader.src[0].position, 77);
    free(txt);
    /* a malformed source list is refused */
    sample(&a);
    txt = lmf_ckpt_state_format(&a, NULL);
    j = json_loads(txt, 0, NULL);
    free(txt);
    json_object_set_new(json_object_get(j, "loader"), "sources", json_pack("[[i]]", 1));
    txt = json_dumps(j, 0);
    json_decref(j);
    assert_int_equal(lmf_ckpt_state_parse(txt, strlen(txt), "bad.json", &b, NULL), LMF_ERR_FORMAT);
    free(txt);
}

static void test_rejected(void **state) {
    lmf_train_state a, b;
    sample(&a);
    lmf_train_opts o;
    lmf_train_opts_default(&o);
    o.data = "x.bin";
    char *opts_txt = lmf_train_opts_to_json(&o);
    assert_non_null(opts_txt);
    char *txt = lmf_ckpt_state_format(&a, opts_txt);
    free(opts_txt);
    assert_non_null(txt);
    struct {
        const char *from, *to;
    } edits[] = {
        {"\"version\": 2", "\"version\": 1"},     {"\"step\": 120", "\"step\": -1"},
        {"\"zero_stage\": 2", "\"zero_stage\": 7"}, {"\"seq\": 64", "\"seq\": 0"},
        {"\"shuffle\": true", "\"shuffle\": 1"},  {"\"position\": 77", "\"position\": \"77\""},
        {"\"stuck\": 0", "\"stuck\": 2"},          {"\"format\": \"lmforge", "\"format\": \"other"},
        {"\"0123456789abcdef\"", "\"0123456789ABCDEF\""}, {"\"0123456789abcdef\"", "7"},
    };
    for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++) {
        const char *at = strstr(txt, edits[i].from);
        if (!at) fail_msg("'%s' not in the formatted state", edits[i].from);
        size_t pre = (size_t)(at - txt);
        char *bad = malloc(strlen(txt) + 32);
        memcpy(bad, txt, pre);
        strcpy(bad + pre, edits[i].to);
        strcat(bad, at + strlen(edits[i].from));
        if (lmf_ckpt_state_parse(bad, strlen(bad), "ts.json", &b, NULL) != LMF_ERR_FORMAT)
            fail_msg("edit '%s' -> '%s' was accepted", edits[i].from, edits[i].to);
        assert_non_null(strstr(lmf_last_error(), "ts.json"));
        free(bad);
    }
    const char *junk[] = {"", "{", "[1,2]", "{\"format\": \"lmforge.trainer_state\", \"version\": 2}"};
    for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++)
        assert_int_equal(lmf_ckpt_state_parse(junk[i], strlen(junk[i]), "ts.json", &b, NULL),
                         LMF_ERR_FORMAT);
    /* options that are not an object, and options of the wrong type */
    const char *edit = "\"opts\": {";
    char *at = strstr(txt, edit);
    assert_non_null(at);
    size_t pre = (size_t)(at - txt);
    char *bad = malloc(strlen(txt) + 32);
    memcpy(bad, txt, pre);
    strcpy(bad + pre, "\"opts\": 5, \"x\": {");
    strcat(bad, at + strlen(edit));
    assert_int_equal(lmf_ckpt_state_parse(bad, strlen(bad), "ts.json", &b, NULL), LMF_ERR_FORMAT);
    free(bad);
    lmf_saved_opts saved;
    assert_int_equal(lmf_train_opts_from_json("{\"data\": 5}", "ts.json", &o, &saved), LMF_ERR_FORMAT);
    assert_int_equal(lmf_train_opts_from_json("[1]", "ts.json", &o, &saved), LMF_ERR_FORMAT);
    /* a layout or kernel table that cannot be is refused by name */
    assert_int_equal(lmf_train_opts_from_json("{\"layout\": {\"tp\": 0, \"sp\": false, \"pp\": 2, "
                                              "\"schedule\": \"1f1b\", \"virtual_stages\": 1}}",
                                              "ts.json", &o, &saved), LMF_ERR_FORMAT);
    assert_non_null(strstr(lmf_last_error(), "layout"));
    assert_int_equal(lmf_train_opts_from_json("{\"layout\": {\"tp\": 1, \"sp\": false, \"pp\": 2, "
                                              "\"schedule\": \"zigzag\", \"virtual_stages\": 1}}",
                                              "ts.json", &o, &saved), LMF_ERR_FORMAT);
    assert_int_equal(lmf_train_opts_from_json("{\"kernels\": \"gpu\"}", "ts.json", &o, &saved),
                     LMF_ERR_FORMAT);
    assert_non_null(strstr(lmf_last_error(), "kernels"));
    free(txt);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_rejected),
        cmocka_unit_test(test_single_file_state),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

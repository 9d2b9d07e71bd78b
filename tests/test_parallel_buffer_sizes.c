/* Tests: the engine's buffers sized from a layout alone equal what an engine allocates. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "lmforge/comm.h"
#include "lmforge/config.h"
#include "lmforge/ddp.h"
#include "lmforge/model.h"
#include "mpi/toy_model.h"

/* the buffers an engine over l really holds at a stage (one rank) */
static size_t engine_buffers(const lmf_param_layout *l, int stage, size_t bucket_bytes) {
    float *params = calloc(l->total, sizeof(float));
    assert_non_null(params);
    lmf_comm *c;
    assert_int_equal(lmf_comm_create("single", &c), LMF_OK);
    lmf_ddp_config cfg = {.zero_stage = stage, .bucket_bytes = bucket_bytes};
    lmf_ddp *d;
    assert_int_equal(lmf_ddp_create(c, l, &cfg, params, &d), LMF_OK);
    lmf_ddp_memory m;
    lmf_ddp_memory_used(d, &m);
    lmf_ddp_free(d);
    lmf_comm_free(c);
    free(params);
    return m.buffers;
}

static const size_t toy_sizes[] = {41, 13, 29, 17, 5};

static void test_toy_layout(void **state) {
    (void)state;
    lmf_param_layout l;
    toy_layout(&l, 3, toy_sizes);
    /* 30-float buckets, from the top: {4, 3, 2} (51 floats), {1} (13), {0} (41) */
    size_t bucket = 30 * sizeof(float);
    /* by hand: stages 0/1 stage nothing; stage 2 stages block 0's bucket (41) and two slots
     * of the largest other bucket (51); stage 3 adds gathers of block 0 and two of the
     * largest other block (29) */
    const size_t want[4] = {0, 0, (41 + 2 * 51) * 4, (41 + 2 * 51 + 41 + 2 * 29) * 4};
    for (int stage = 0; stage <= 3; stage++) {
        lmf_ddp_buffers b;
        assert_int_equal(lmf_ddp_size_buffers(&l, stage, bucket, &b), LMF_OK);
        assert_int_equal(b.bytes, want[stage]);
        assert_int_equal(engine_buffers(&l, stage, bucket), want[stage]);
    }
    lmf_ddp_buffers b;
    assert_int_equal(lmf_ddp_size_buffers(&l, 2, bucket, &b), LMF_OK);
    assert_int_equal(b.n_slots, 3);
    assert_int_equal(b.slot[0], 41);
    assert_int_equal(b.slot[2], 51);
    assert_int_equal(b.n_gathers, 0);
    /* one bucket besides block 0's: a single slot for it */
    assert_int_equal(lmf_ddp_size_buffers(&l, 2, 1000 * sizeof(float), &b), LMF_OK);
    assert_int_equal(b.n_slots, 2);
    assert_int_equal(b.bytes, (41 + 64) * 4);
    assert_int_equal(engine_buffers(&l, 2, 1000 * sizeof(float)), (41 + 64) * 4);
    assert_int_equal(lmf_ddp_size_buffers(&l, 4, bucket, &b), LMF_ERR_ARG);
    toy_layout_free(&l);
}

/* a real model with the default buckets: the numbers the trainer's memory check uses */
static void test_model_layouts(void **state) {
    (void)state;
    const char *presets[] = {"tiny", "llama-tiny"};
    for (size_t p = 0; p < sizeof presets / sizeof presets[0]; p++) {
        lmf_gpt_config cfg;
        assert_int_equal(lmf_config_preset(presets[p], &cfg), LMF_OK);
        cfg.n_layer = 3;
        lmf_param_layout l;
        assert_int_equal(lmf_layout_build(&cfg, &l), LMF_OK);
        size_t block0 = l.block_offset[1], layer = l.block_offset[2] - l.block_offset[1];
        /* a small model: every block besides 0 in one bucket under 25 MiB */
        assert_true((l.total - block0) * 4 < LMF_DDP_DEFAULT_BUCKET_BYTES);
        const size_t want[4] = {0, 0, l.total * 4, (l.total + block0 + 2 * layer) * 4};
        for (int stage = 0; stage <= 3; stage++) {
            lmf_ddp_buffers b;
            assert_int_equal(lmf_ddp_size_buffers(&l, stage, 0, &b), LMF_OK);
            assert_int_equal(b.bytes, want[stage]);
            assert_int_equal(engine_buffers(&l, stage, 0), want[stage]);
        }
        lmf_layout_free(&l);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_toy_layout),
        cmocka_unit_test(test_model_layouts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

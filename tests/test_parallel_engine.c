/* Tests: single-process communicator, shard arithmetic, the engine on one rank vs a reference. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lmforge/comm.h"
#include "lmforge/ddp.h"
#include "lmforge/kernels.h"
#include "lib/test_util.h"
#include "mpi/toy_model.h"

static const char *const launcher_vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE",
                                            "PMIX_RANK", "SLURM_NTASKS", "SLURM_STEP_ID",
                                            "SLURM_STEPID", "LMF_COMM_TIMEOUT"};

static void clear_launcher_env(void) {
    for (size_t i = 0; i < sizeof launcher_vars / sizeof launcher_vars[0]; i++)
        unsetenv(launcher_vars[i]);
}

static void test_launcher_detection(void **state) {
    (void)state;
    clear_launcher_env();
    assert_int_equal(lmf_comm_launcher_size(), 0);
    setenv("OMPI_COMM_WORLD_SIZE", "4", 1);
    assert_int_equal(lmf_comm_launcher_size(), 4);
    clear_launcher_env();
    setenv("PMI_SIZE", "3", 1);
    assert_int_equal(lmf_comm_launcher_size(), 3);
    clear_launcher_env();
    /* inside an allocation but not in a job step (the batch script itself): not launched */
    setenv("SLURM_NTASKS", "8", 1);
    assert_int_equal(lmf_comm_launcher_size(), 0);
    setenv("SLURM_STEP_ID", "0", 1);
    assert_int_equal(lmf_comm_launcher_size(), 8);
    clear_launcher_env();
    setenv("PMIX_RANK", "0", 1);
    assert_int_equal(lmf_comm_launcher_size(), 1);
    setenv("OMPI_COMM_WORLD_SIZE", "garbage", 1);
    assert_int_equal(lmf_comm_launcher_size(), 1);
    clear_launcher_env();
}

static void test_backend_selection(void **state) {
    (void)state;
    clear_launcher_env();
    lmf_comm *c = NULL;
    assert_int_equal(lmf_comm_create("auto", &c), LMF_OK);
    assert_string_equal(lmf_comm_backend(c), "single");
    assert_int_equal(lmf_comm_rank(c), 0);
    assert_int_equal(lmf_comm_size(c), 1);
    lmf_comm_free(c);
    assert_int_equal(lmf_comm_create(NULL, &c), LMF_OK);
    assert_string_equal(lmf_comm_backend(c), "single");
    lmf_comm_free(c);
    assert_int_equal(lmf_comm_create("nccl-of-the-future", &c), LMF_ERR_ARG);
    assert_null(c);
    assert_non_null(strstr(lmf_last_error(), "nccl-of-the-future"));
    if (!lmf_comm_have_mpi()) {
        assert_int_equal(lmf_comm_create("mpi", &c), LMF_ERR_ARG);
        setenv("OMPI_COMM_WORLD_SIZE", "2", 1);
        assert_int_equal(lmf_comm_create("auto", &c), LMF_ERR_ARG);
        assert_non_null(strstr(lmf_last_error(), "without MPI"));
        clear_launcher_env();
    }
}

static void test_settings(void **state) {
    (void)state;
    clear_launcher_env();
    lmf_comm *c;
    setenv("LMF_COMM_TIMEOUT", "2.5", 1);
    assert_int_equal(lmf_comm_create("single", &c), LMF_OK);
    assert_true(lmf_comm_timeout(c) == 2.5);
    lmf_comm_set_timeout(c, 7);
    assert_true(lmf_comm_timeout(c) == 7.0);
    lmf_comm_set_context(c, "step %d", 17);
    assert_string_equal(lmf_comm_context(c), "step 17");
    char longer[300];
    memset(longer, 'x', sizeof longer - 1);
    longer[sizeof longer - 1] = '\0';
    lmf_comm_set_context(c, "%s", longer);
    assert_int_equal(strlen(lmf_comm_context(c)), 127);
    lmf_comm_free(c);
    setenv("LMF_COMM_TIMEOUT", "soon", 1);
    assert_int_equal(lmf_comm_create("single", &c), LMF_ERR_ARG);
    assert_non_null(strstr(lmf_last_error(), "LMF_COMM_TIMEOUT"));
    clear_launcher_env();
}

static void test_single_collectives(void **state) {
    (void)state;
    lmf_comm *c;
    assert_int_equal(lmf_comm_create("single", &c), LMF_OK);
    float f[5] = {1.5f, -2, 3, 0, 7};
    assert_int_equal(lmf_comm_allreduce_f32(c, f, 5), LMF_OK);
    assert_true(f[0] == 1.5f && f[1] == -2 && f[4] == 7);
    double d[2] = {0.25, -8};
    assert_int_equal(lmf_comm_allreduce_f64(c, d, 2, LMF_COMM_MAX), LMF_OK);
    assert_true(d[0] == 0.25 && d[1] == -8);
    int64_t i64[1] = {-((int64_t)1 << 40)};
    assert_int_equal(lmf_comm_allreduce_i64(c, i64, 1, LMF_COMM_MIN), LMF_OK);
    assert_true(i64[0] == -((int64_t)1 << 40));
    /* reduce-scatter of one rank: its part is the whole input */
    float send[7] = {1, 2, 3, 4, 5, 6, 7}, recv[7] = {0};
    size_t counts[1] = {7};
    assert_int_equal(lmf_comm_reduce_scatter_f32(c, recv, send, counts), LMF_OK);
    assert_memory_equal(recv, send, sizeof send);
    assert_int_equal(lmf_comm_reduce_scatter_f32(c, send, send, counts), LMF_OK); /* in place */
    assert_true(send[0] == 1 && send[6] == 7);
    /* all-gather from a separate send buffer, and in place */
    float all[3] = {0}, mine[3] = {9, 8, 7};
    size_t c3[1] = {3};
    assert_int_equal(lmf_comm_allgather_f32(c, all, mine, c3), LMF_OK);
    assert_memory_equal(all, mine, sizeof mine);
    assert_int_equal(lmf_comm_allgather_f32(c, all, NULL, c3), LMF_OK);
    assert_memory_equal(all, mine, sizeof mine);
    size_t c0[1] = {0};
    assert_int_equal(lmf_comm_reduce_scatter_f32(c, NULL, NULL, c0), LMF_OK);
    char text[6] = "hello";
    assert_int_equal(lmf_comm_broadcast(c, text, sizeof text, 0), LMF_OK);
    assert_string_equal(text, "hello");
    assert_int_equal(lmf_comm_broadcast(c, text, sizeof text, 1), LMF_ERR_ARG);
    assert_int_equal(lmf_comm_allreduce(c, f, 1, (lmf_comm_dtype)9, LMF_COMM_SUM), LMF_ERR_ARG);
    assert_int_equal(lmf_comm_barrier(c), LMF_OK);
    assert_int_equal(lmf_comm_pending(c), 0);
    lmf_comm_free(c);
}

static void test_single_nonblocking(void **state) {
    (void)state;
    lmf_comm *c;
    assert_int_equal(lmf_comm_create("single", &c), LMF_OK);
    float a[4] = {1, 2, 3, 4}, r[4] = {0};
    size_t counts[1] = {4};
    lmf_comm_req *q1, *q2, *q3;
    assert_int_equal(lmf_comm_iallreduce(c, a, 4, LMF_COMM_F32, LMF_COMM_SUM, &q1), LMF_OK);
    assert_int_equal(lmf_comm_ireduce_scatter_f32(c, r, a, counts, &q2), LMF_OK);
    assert_int_equal(lmf_comm_ibarrier(c, &q3), LMF_OK);
    assert_int_equal(lmf_comm_pending(c), 3);
    assert_int_equal(lmf_comm_progress(c), LMF_OK);
    int done = 0;
    assert_int_equal(lmf_comm_test(c, &q2, &done), LMF_OK);
    assert_int_equal(done, 1);
    assert_null(q2);
    assert_memory_equal(r, a, sizeof a);
    assert_int_equal(lmf_comm_wait(c, &q1), LMF_OK);
    assert_null(q1);
    assert_int_equal(lmf_comm_wait(c, &q1), LMF_OK); /* NULL request: nothing to do */
    assert_int_equal(lmf_comm_pending(c), 1);
    lmf_comm_free(c); /* frees the request still outstanding */
}

/* ---- shards ---- */

static void test_shard_partition(void **state) {
    (void)state;
    for (size_t n = 0; n <= 60; n++)
        for (int w = 1; w <= 9; w++) {
            size_t next = 0, lo = (size_t)-1, hi = 0;
            for (int r = 0; r < w; r++) {
                lmf_range s = lmf_partition_range(n, w, r);
                assert_int_equal(s.begin, next); /* contiguous, in rank order */
                assert_true(s.end >= s.begin);
                size_t len = lmf_range_len(s);
                if (len < lo) lo = len;
                if (len > hi) hi = len;
                next = s.end;
            }
            assert_int_equal(next, n);       /* covers [0, n) */
            assert_true(hi - lo <= 1);       /* balanced */
            assert_int_equal(hi, (n + (size_t)w - 1) / (size_t)w);
        }
    /* empty shards when n < world */
    lmf_range s = lmf_partition_range(2, 5, 0);
    assert_int_equal(lmf_range_len(s), 0);
}

static void test_shard_large(void **state) {
    (void)state;
    /* 2^40 elements over 7 ranks: the bounds are floor(n*r/7), computed here in 128 bits */
    size_t n = (size_t)1 << 40;
    for (int r = 0; r <= 7; r++) {
        unsigned __int128 want = (unsigned __int128)n * (unsigned)r / 7u;
        size_t got = r < 7 ? lmf_partition_range(n, 7, r).begin : lmf_partition_range(n, 7, 6).end;
        assert_true((unsigned __int128)got == want);
    }
    size_t big = SIZE_MAX / 3;
    lmf_range last = lmf_partition_range(big, 1000, 999);
    assert_int_equal(last.end, big);
}

static void test_shard_counts(void **state) {
    (void)state;
    /* n = 10 over 3 ranks: [0,3) [3,6) [6,10); the range [2, 8) has 1, 3 and 2 there */
    size_t counts[3];
    lmf_partition_counts(10, 3, (lmf_range){2, 8}, counts);
    assert_int_equal(counts[0], 1);
    assert_int_equal(counts[1], 3);
    assert_int_equal(counts[2], 2);
    lmf_partition_counts(10, 3, (lmf_range){4, 5}, counts);
    assert_int_equal(counts[0], 0);
    assert_int_equal(counts[1], 1);
    assert_int_equal(counts[2], 0);
    lmf_range e = lmf_range_intersect((lmf_range){0, 3}, (lmf_range){5, 9});
    assert_int_equal(lmf_range_len(e), 0);
    for (size_t n = 1; n < 40; n += 3)
        for (int w = 1; w < 7; w++)
            for (size_t a = 0; a <= n; a += 2)
                for (size_t b = a; b <= n; b += 3) {
                    size_t cs[7], sum = 0;
                    lmf_partition_counts(n, w, (lmf_range){a, b}, cs);
                    for (int r = 0; r < w; r++) sum += cs[r];
                    assert_int_equal(sum, b - a);
                }
}

/* ---- the engine on one rank ---- */

static const size_t toy_sizes[5] = {41, 13, 29, 17, 5}; /* L = 3: blocks 0..4 */

static void run_engine_vs_reference(int stage, int accum, float clip, size_t bucket_bytes) {
    lmf_param_layout l;
    toy_layout(&l, 3, toy_sizes);
    size_t n = l.total;
    float *params = malloc(n * sizeof(float));
    double *rp = malloc(n * sizeof(double)), *rm = calloc(n, sizeof(double)),
           *rv = calloc(n, sizeof(double));
    for (size_t i = 0; i < n; i++) rp[i] = params[i] = toy_init(i);
    lmf_comm *c;
    assert_int_equal(lmf_comm_create("single", &c), LMF_OK);
    lmf_ddp_config cfg = {.zero_stage = stage, .bucket_bytes = bucket_bytes};
    lmf_ddp *d;
    assert_int_equal(lmf_ddp_create(c, &l, &cfg, params, &d), LMF_OK);
    lmf_gpt_hooks h;
    lmf_ddp_hooks(d, &h);
    lmf_adamw_hp hp = {0.9f, 0.95f, 1e-8f, 0.1f};
    lmf_optimizer *o;
    assert_int_equal(lmf_ddp_optimizer_create(d, lmf_kernels_ref(), &hp, clip, &o), LMF_OK);
    float lr = 0.05f;
    for (int s = 0; s < 6; s++) {
        double loss = 0;
        for (int j = 0; j < accum; j++) {
            assert_int_equal(lmf_ddp_begin_micro(d, j, accum), LMF_OK);
            loss += toy_micro(&h, &l, s, j, 1.0f / (float)accum, 1) / accum;
        }
        float norm;
        assert_int_equal(lmf_test_dp_step(d, o, lr, s + 1, &norm), LMF_OK);
        double rnorm;
        double rloss = toy_reference_step(&l, rp, rm, rv, s, accum, lr, hp.beta1, hp.beta2,
                                          hp.eps, hp.weight_decay, clip, s + 1, &rnorm);
        assert_true(fabs(loss - rloss) <= 1e-5 * fabs(rloss));
        assert_true(fabs(norm - rnorm) <= 1e-5 * rnorm);
        /* evaluation forward sees the updated weights */
        double eval = toy_micro(&h, &l, 100 + s, 0, 0, 0);
        double want = 0;
        for (size_t i = 0; i < n; i++) {
            double w = toy_w(100 + s, 0, i), dd = rp[i] - toy_t(100 + s, 0, i);
            want += 0.5 * w * dd * dd;
        }
        assert_true(fabs(eval - want) <= 1e-4 * want);
    }
    float *full = malloc(n * sizeof(float));
    assert_int_equal(lmf_ddp_gather_params(d, full), LMF_OK);
    for (size_t i = 0; i < n; i++) assert_true(fabs(full[i] - rp[i]) <= 1e-5);
    lmf_optimizer_free(o);
    lmf_ddp_free(d);
    lmf_comm_free(c);
    free(full);
    free(params);
    free(rp);
    free(rm);
    free(rv);
    toy_layout_free(&l);
}

static void test_engine_stages_single(void **state) {
    (void)state;
    for (int stage = 0; stage <= 3; stage++) {
        run_engine_vs_reference(stage, 1, 0, 0);
        run_engine_vs_reference(stage, 3, 0.5f, 40);   /* clipping, 10-float buckets */
        run_engine_vs_reference(stage, 2, 0, 4);       /* one block per bucket */
    }
}

static void test_engine_buckets(void **state) {
    (void)state;
    lmf_param_layout l;
    toy_layout(&l, 3, toy_sizes); /* blocks 41, 13, 29, 17, 5 floats */
    float *params = calloc(l.total, sizeof(float));
    lmf_comm *c;
    assert_int_equal(lmf_comm_create("single", &c), LMF_OK);
    /* 30 floats: from the top, {4, 3} reach 22 < 30, add 2 -> 51; then {1}, then {0} */
    lmf_ddp_config cfg = {.zero_stage = 2, .bucket_bytes = 30 * sizeof(float)};
    lmf_ddp *d;
    assert_int_equal(lmf_ddp_create(c, &l, &cfg, params, &d), LMF_OK);
    assert_int_equal(lmf_ddp_n_buckets(d), 3);
    int lo, hi;
    lmf_ddp_bucket_blocks(d, 0, &lo, &hi);
    assert_true(lo == 2 && hi == 4);
    lmf_ddp_bucket_blocks(d, 1, &lo, &hi);
    assert_true(lo == 1 && hi == 1);
    lmf_ddp_bucket_blocks(d, 2, &lo, &hi);
    assert_true(lo == 0 && hi == 0);
    /* memory on one rank at stage 2: weights, grads 105 floats, staging: block 0 (41) and two
     * slots for the largest other bucket (51 each); the optimizer's m+v 210 */
    lmf_ddp_memory mem;
    lmf_ddp_memory_used(d, &mem);
    assert_int_equal(mem.weights, 105 * 4);
    assert_int_equal(mem.grads, 105 * 4);
    assert_int_equal(mem.optim, 0);
    assert_int_equal(mem.buffers, (41 + 2 * 51) * 4);
    lmf_adamw_hp hp = {0.9f, 0.95f, 1e-8f, 0.0f};
    lmf_optimizer *o;
    assert_int_equal(lmf_ddp_optimizer_create(d, lmf_kernels_ref(), &hp, 0, &o), LMF_OK);
    assert_int_equal(lmf_optimizer_bytes(o), 210 * 4);
    lmf_optimizer_free(o);
    lmf_ddp_free(d);
    lmf_comm_free(c);
    free(params);
    toy_layout_free(&l);
}

static void test_memory_theory(void **state) {
    (void)state;
    lmf_ddp_memory m;
    /* ZeRO accounting for 1000 parameters over 4 ranks (bytes): 4+4+8 per parameter, with
     * the sharded parts divided by 4 */
    lmf_ddp_memory_theory(1000, 4, 0, &m);
    assert_true(m.weights == 4000 && m.grads == 4000 && m.optim == 8000);
    lmf_ddp_memory_theory(1000, 4, 1, &m);
    assert_true(m.weights == 4000 && m.grads == 4000 && m.optim == 2000);
    lmf_ddp_memory_theory(1000, 4, 2, &m);
    assert_true(m.weights == 4000 && m.grads == 1000 && m.optim == 2000);
    lmf_ddp_memory_theory(1000, 4, 3, &m);
    assert_true(m.weights == 1000 && m.grads == 1000 && m.optim == 2000);
    lmf_ddp_memory_theory(10, 3, 3, &m); /* uneven: the largest shard, 4 */
    assert_int_equal(m.weights, 16);
}

static void test_engine_misuse(void **state) {
    (void)state;
    lmf_param_layout l;
    toy_layout(&l, 3, toy_sizes);
    float *params = calloc(l.total, sizeof(float));
    lmf_comm *c;
    assert_int_equal(lmf_comm_create("single", &c), LMF_OK);
    lmf_ddp_config cfg = {.zero_stage = 4};
    lmf_ddp *d;
    assert_int_equal(lmf_ddp_create(c, &l, &cfg, params, &d), LMF_ERR_ARG);
    assert_null(d);
    cfg.zero_stage = 1;
    assert_int_equal(lmf_ddp_create(c, &l, &cfg, params, &d), LMF_OK);
    lmf_adamw_hp hp = {0.9f, 0.95f, 1e-8f, 0.0f};
    lmf_optimizer *o;
    assert_int_equal(lmf_ddp_optimizer_create(d, lmf_kernels_ref(), &hp, 1.0f, &o), LMF_OK);
    /* a step before any backward */
    assert_int_equal(lmf_test_dp_step(d, o, 0.1f, 1, NULL), LMF_ERR_STATE);
    assert_int_equal(lmf_ddp_begin_micro(d, 2, 2), LMF_ERR_ARG);
    /* a NaN gradient: the step is refused, the gradients are cleared, the weights kept */
    lmf_gpt_hooks h;
    lmf_ddp_hooks(d, &h);
    assert_int_equal(lmf_ddp_begin_micro(d, 0, 1), LMF_OK);
    params[3] = NAN;
    toy_micro(&h, &l, 0, 0, 1.0f, 1);
    float norm;
    assert_int_equal(lmf_test_dp_step(d, o, 0.1f, 1, &norm), LMF_ERR_NUMERIC);
    assert_true(isnan(norm));
    params[3] = 0.5f;
    toy_micro(&h, &l, 0, 0, 1.0f, 1);
    assert_int_equal(lmf_test_dp_step(d, o, 0.1f, 1, &norm), LMF_OK);
    assert_true(isfinite(norm));
    /* two micro-steps without lmf_ddp_begin_micro would sum the gradients twice */
    toy_micro(&h, &l, 1, 0, 0.5f, 1);
    toy_micro(&h, &l, 1, 1, 0.5f, 1);
    assert_int_equal(lmf_test_dp_step(d, o, 0.1f, 2, &norm), LMF_ERR_STATE);
    assert_non_null(strstr(lmf_last_error(), "lmf_ddp_begin_micro"));
    lmf_optimizer_free(o);
    lmf_ddp_free(d);
    lmf_comm_free(c);
    free(params);
    toy_layout_free(&l);
}

static void test_engine_state_roundtrip(void **state) {
    (void)state;
    lmf_param_layout l;
    toy_layout(&l, 3, toy_sizes);
    size_t n = l.total;
    float *params = malloc(n * sizeof(float)), *m = malloc(n * 4), *v = malloc(n * 4);
    for (size_t i = 0; i < n; i++) params[i] = toy_init(i);
    lmf_comm *c;
    assert_int_equal(lmf_comm_create("single", &c), LMF_OK);
    for (int stage = 0; stage <= 3; stage++) {
        float *p = malloc(n * sizeof(float));
        memcpy(p, params, n * sizeof(float));
        lmf_ddp_config cfg = {.zero_stage = stage};
        lmf_ddp *d;
        assert_int_equal(lmf_ddp_create(c, &l, &cfg, p, &d), LMF_OK);
        float *fm = malloc(n * 4), *fv = malloc(n * 4), *fp = malloc(n * 4);
        for (size_t i = 0; i < n; i++) {
            m[i] = (float)i;
            v[i] = (float)(2 * i);
            fp[i] = -(float)i;
        }
        lmf_ddp_load_params(d, fp);
        lmf_range own = lmf_ddp_owned(d);
        assert_true(own.begin == 0 && own.end == n);
        /* the optimizer's state of every rank's range gathers into the full vector */
        memset(fm, 0, n * 4);
        memset(fv, 0, n * 4);
        assert_int_equal(lmf_ddp_gather_owned(d, fm, m + own.begin), LMF_OK);
        assert_int_equal(lmf_ddp_gather_owned(d, fv, v + own.begin), LMF_OK);
        assert_memory_equal(fm, m, n * 4);
        assert_memory_equal(fv, v, n * 4);
        memset(fm, 0, n * 4);
        assert_int_equal(lmf_ddp_gather_params(d, fm), LMF_OK);
        assert_memory_equal(fm, fp, n * 4);
        lmf_ddp_free(d);
        free(fm);
        free(fv);
        free(fp);
        free(p);
    }
    lmf_comm_free(c);
    free(params);
    free(m);
    free(v);
    toy_layout_free(&l);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_launcher_detection),
        cmocka_unit_test(test_backend_selection),
        cmocka_unit_test(test_settings),
        cmocka_unit_test(test_single_collectives),
        cmocka_unit_test(test_single_nonblocking),
        cmocka_unit_test(test_shard_partition),
        cmocka_unit_test(test_shard_large),
        cmocka_unit_test(test_shard_counts),
        cmocka_unit_test(test_engine_stages_single),
        cmocka_unit_test(test_engine_buckets),
        cmocka_unit_test(test_memory_theory),
        cmocka_unit_test(test_engine_misuse),
        cmocka_unit_test(test_engine_state_roundtrip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Training with the fast kernels tracks the reference kernels: 50 AdamW steps on a tiny GPT. */
/* Both runs start from the same weights and see the same batches; the per-step losses must
 * agree within LOSS_TOL (relative), and the model must actually learn (the loss falls), so a
 * kernel that silently does nothing cannot pass. T = 70 crosses the fast attention's 64-row
 * block and N = B*T = 280 the classifier's 256-row chunk. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "lmforge/model.h"
#include "lmforge/optim.h"
#include "lmforge/rng.h"
#include "lmforge/threads.h"

/* Float32 training in two summation orders drifts apart as the updates compound; over these
 * 50 steps the worst relative gap seen is 1.0e-7, so 1e-4 leaves a 1000x margin. A backward
 * whose attention probabilities are off by 5% already fails at step 3 (gap 1.1e-4). */
#define LOSS_TOL 1e-4
#define STEPS 50

static const lmf_gpt_config cfg = {2, 3, 48, 80, 101};
enum { B = 4, T = 70 };

/* batches from a fixed pattern with noise: token t+1 = (3 * token t + 1) mod V mostly, so
 * there is something to learn */
static void make_batch(lmf_rng *r, int32_t *in, int32_t *tg) {
    for (int b = 0; b < B; b++) {
        int32_t x = (int32_t)(lmf_rng_u64(r) % (uint64_t)cfg.vocab_size);
        for (int t = 0; t < T; t++) {
            in[b * T + t] = x;
            int32_t nx = (int32_t)((3 * x + 1) % cfg.vocab_size);
            if (lmf_rng_u64(r) % 8 == 0) nx = (int32_t)(lmf_rng_u64(r) % (uint64_t)cfg.vocab_size);
            tg[b * T + t] = nx;
            x = nx;
        }
    }
}

static void train(const lmf_kernels *k, float *losses) {
    lmf_gpt *m = NULL;
    assert_int_equal(lmf_gpt_create(&cfg, k, &m), LMF_OK);
    lmf_gpt_init_weights(m, 3);
    assert_int_equal(lmf_gpt_reserve(m, B, T, LMF_RESERVE_TRAIN), LMF_OK);
    size_t n = lmf_gpt_layout(m)->total;
    float *mo = calloc(n, sizeof(float)), *vo = calloc(n, sizeof(float));
    int32_t in[B * T], tg[B * T];
    assert_non_null(mo);
    assert_non_null(vo);
    lmf_rng r;
    lmf_rng_seed(&r, 11);
    lmf_adamw_hp hp = {0.9f, 0.95f, 1e-8f, 0.1f};
    for (int s = 0; s < STEPS; s++) {
        make_batch(&r, in, tg);
        lmf_gpt_zero_grad(m);
        assert_int_equal(lmf_gpt_forward(m, in, tg, B, T, 1, 1.0f, &losses[s]), LMF_OK);
        lmf_gpt_backward(m);
        lmf_adamw_step(k, lmf_gpt_layout(m), 0, n, lmf_gpt_params(m), lmf_gpt_grads(m), mo, vo,
                       &hp, 3e-3f, 1.0f, s + 1);
    }
    free(mo);
    free(vo);
    lmf_gpt_free(m);
}

static void test_fast_tracks_ref(void **state) {
    (void)state;
    float ref[STEPS], fast[STEPS];
    /* one thread: the kernel tests cover 2; a shared machine makes an OpenMP team crawl */
    lmf_threads_set(1);
    train(lmf_kernels_ref(), ref);
    train(lmf_kernels_fast(), fast);
    double worst = 0;
    for (int s = 0; s < STEPS; s++) {
        double rel = fabs((double)fast[s] - ref[s]) / fabs((double)ref[s]);
        if (rel > worst) worst = rel;
        if (!(rel <= LOSS_TOL)) {
            print_error("step %d: fast loss %.6f, reference %.6f (relative gap %.2e > %.0e)\n", s,
                        (double)fast[s], (double)ref[s], rel, LOSS_TOL);
            fail();
        }
    }
    print_message("losses %.4f -> %.4f (ref), %.4f -> %.4f (fast); worst relative gap %.2e\n",
                  (double)ref[0], (double)ref[STEPS - 1], (double)fast[0], (double)fast[STEPS - 1],
                  worst);
    /* the model learns the pattern: from ~ln(101) = 4.6 to well below it */
    assert_true(ref[STEPS - 1] < 0.75f * ref[0]);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_fast_tracks_ref)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}

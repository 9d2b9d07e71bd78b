/* Model tests: whole-model gradient against double-precision finite differences, fast vs
 * reference kernels, determinism, padded vocabulary, bad input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lmforge/model.h"
#include "lmforge/rng.h"
#include "lib/gpt_double.h"
#include "lib/test_util.h"

static const lmf_gpt_config tiny = {2, 2, 8, 8, 11}; /* vocab 11: padded to 64 */
/* the Llama family: 4 query heads over 2 key/value heads, untied lm_head; and a tied one with
 * a single key/value head */
static const lmf_gpt_config tiny_llama = {2, 4, 16, 8, 11, LMF_FAMILY_LLAMA, 2, 24, 1e-5f, 10000.0f, 0};
static const lmf_gpt_config tiny_llama_mq = {2, 2, 8, 8, 11, LMF_FAMILY_LLAMA, 1, 12, 1e-6f, 500.0f, 1};
/* the configuration under test */
static const lmf_gpt_config *cur = &tiny;
static const lmf_gpt_config *const families[3] = {&tiny, &tiny_llama, &tiny_llama_mq};
enum { B = 2, T = 5 };

/* a model with every parameter (biases and LayerNorm too) randomised, so no gradient is
 * trivially zero */
static lmf_gpt *make_model(const lmf_kernels *k) {
    lmf_gpt *m = NULL;
    assert_int_equal(lmf_gpt_create(cur, k, &m), LMF_OK);
    lmf_gpt_init_weights(m, 42);
    lmf_test_perturb_params(m, 5, 0.3f);
    assert_int_equal(lmf_gpt_reserve(m, B, T, LMF_RESERVE_TRAIN), LMF_OK);
    return m;
}

static void batch(int32_t *in, int32_t *tg) {
    for (int i = 0; i < B * T; i++) {
        in[i] = (i * 7 + 3) % cur->vocab_size;
        tg[i] = (i * 5 + 1) % cur->vocab_size;
    }
}

static void check_grads_fd(const lmf_kernels *k) {
    lmf_gpt *m = make_model(k);
    int32_t in[B * T], tg[B * T];
    batch(in, tg);
    float loss;
    lmf_gpt_zero_grad(m);
    assert_int_equal(lmf_gpt_forward(m, in, tg, B, T, 1, 1.0f, &loss), LMF_OK);
    lmf_gpt_backward(m);
    const lmf_param_layout *l = lmf_gpt_layout(m);
    size_t n = l->total;
    double *pd = malloc(n * sizeof(double));
    for (size_t i = 0; i < n; i++) pd[i] = lmf_gpt_params(m)[i];
    double ld = lmf_test_gpt_loss_double(cur, l, pd, in, tg, B, T);
    /* float forward vs double forward: float rounding only */
    assert_true(fabs(ld - loss) < 1e-5 * fabs(ld) + 1e-6);
    lmf_rng r;
    lmf_rng_seed(&r, 9);
    double worst = 0;
    for (int ti = 0; ti < l->n_tensors; ti++) {
        const lmf_tensor_info *t = &l->tensors[ti];
        size_t real = (size_t)t->shape[0] * (size_t)(t->ndim > 1 ? t->shape[1] : 1);
        for (int s = 0; s < 6; s++) {
            size_t j = t->offset + lmf_rng_u64(&r) % real;
            double h = 1e-5, save = pd[j];
            pd[j] = save + h;
            double lp = lmf_test_gpt_loss_double(cur, l, pd, in, tg, B, T);
            pd[j] = save - h;
            double lm = lmf_test_gpt_loss_double(cur, l, pd, in, tg, B, T);
            pd[j] = save;
            double fd = (lp - lm) / (2 * h), g = lmf_gpt_grads(m)[j];
            /* float gradients: relative error ~1e-5 expected; allow 1e-3 + small absolute */
            double err = fabs(fd - g) / (fabs(fd) + 1e-3);
            if (err > worst) worst = err;
            if (err > 1e-3) fprintf(stderr, "%s[%zu]: fd %.8g model %.8g\n", t->name, j - t->offset, fd, g);
            assert_true(err <= 1e-3);
        }
    }
    /* padded wte rows never get a gradient */
    const lmf_tensor_info *wte = &l->tensors[0];
    for (size_t j = (size_t)cur->vocab_size * cur->n_embd; j < wte->numel; j++)
        assert_true(lmf_gpt_grads(m)[j] == 0.0f);
    fprintf(stderr, "%s kernels: worst relative gradient error %.2e\n", k->name, worst);
    free(pd);
    lmf_gpt_free(m);
}

static void test_grad_ref(void **st) {
    (void)st;
    for (int f = 0; f < 3; f++) {
        cur = families[f];
        check_grads_fd(lmf_kernels_ref());
    }
    cur = &tiny;
}
static void test_grad_fast(void **st) {
    (void)st;
    for (int f = 0; f < 3; f++) {
        cur = families[f];
        check_grads_fd(lmf_kernels_fast());
    }
    cur = &tiny;
}

/* two identical runs give bit-identical losses and gradients */
static void test_deterministic(void **st) {
    (void)st;
    float l1, l2;
    int32_t in[B * T], tg[B * T];
    batch(in, tg);
    lmf_gpt *a = make_model(lmf_kernels_fast()), *b = make_model(lmf_kernels_fast());
    lmf_gpt_zero_grad(a);
    lmf_gpt_zero_grad(b);
    assert_int_equal(lmf_gpt_forward(a, in, tg, B, T, 1, 1.0f, &l1), LMF_OK);
    lmf_gpt_backward(a);
    assert_int_equal(lmf_gpt_forward(b, in, tg, B, T, 1, 1.0f, &l2), LMF_OK);
    lmf_gpt_backward(b);
    assert_memory_equal(&l1, &l2, sizeof l1);
    assert_memory_equal(lmf_gpt_grads(a), lmf_gpt_grads(b), lmf_gpt_layout(a)->total * sizeof(float));
    lmf_gpt_free(a);
    lmf_gpt_free(b);
}

static void test_bad_input(void **st) {
    (void)st;
    lmf_gpt *m = make_model(lmf_kernels_ref());
    int32_t in[B * T], tg[B * T];
    batch(in, tg);
    float loss;
    in[3] = cur->vocab_size; /* one past the real vocabulary (inside the padding) */
    assert_int_equal(lmf_gpt_forward(m, in, tg, B, T, 1, 1.0f, &loss), LMF_ERR_ARG);
    assert_non_null(strstr(lmf_last_error(), "outside the vocabulary"));
    in[3] = -1;
    assert_int_equal(lmf_gpt_forward(m, in, tg, B, T, 1, 1.0f, &loss), LMF_ERR_ARG);
    assert_int_equal(lmf_gpt_reserve(m, 1, cur->n_positions + 1, LMF_RESERVE_TRAIN), LMF_ERR_ARG);
    assert_non_null(strstr(lmf_last_error(), "n_positions"));
    lmf_gpt_free(m);
}

/* Inference with the KV cache runs the training code's layers: the logits at every position
 * equal those of the full forward, whether the tokens come one at a time or in chunks; with
 * the reference kernels exactly (the same arithmetic in the same order), with the fast ones
 * within float rounding. */
static void kv_matches_forward(const lmf_kernels *k, int chunk, float tol) {
    lmf_gpt *m = make_model(k);
    int32_t in[B * T], tg[B * T];
    batch(in, tg);
    float loss, logits[11], full[11];
    assert_int_equal(lmf_gpt_forward(m, in, NULL, B, T, 0, 1.0f, &loss), LMF_OK);
    lmf_kv_cache *kv = NULL;
    assert_int_equal(lmf_gpt_kv_create(m, T, chunk, &kv), LMF_OK);
    /* the first 3 positions in one call (chunks of `chunk`), then one at a time */
    assert_int_equal(lmf_gpt_kv_append(m, kv, in + T, 3, logits), LMF_OK);
    lmf_gpt_logits_at(m, 1, 2, full);
    for (int v = 0; v < cur->vocab_size; v++) assert_true(fabsf(logits[v] - full[v]) <= tol);
    for (int t = 3; t < T; t++) {
        assert_int_equal(lmf_gpt_kv_append(m, kv, &in[T + t], 1, logits), LMF_OK);
        lmf_gpt_logits_at(m, 1, t, full);
        for (int v = 0; v < cur->vocab_size; v++) assert_true(fabsf(logits[v] - full[v]) <= tol);
    }
    assert_int_equal(lmf_gpt_kv_length(kv), T);
    assert_int_equal(lmf_gpt_kv_append(m, kv, in, 1, logits), LMF_ERR_ARG); /* full */
    int32_t bad = cur->vocab_size;
    lmf_gpt_kv_free(kv);
    assert_int_equal(lmf_gpt_kv_create(m, T, chunk, &kv), LMF_OK);
    assert_int_equal(lmf_gpt_kv_append(m, kv, &bad, 1, logits), LMF_ERR_ARG);
    lmf_gpt_kv_free(kv);
    assert_int_equal(lmf_gpt_kv_create(m, cur->n_positions + 1, chunk, &kv), LMF_ERR_ARG);
    assert_null(kv);
    lmf_gpt_free(m);
}

static void test_kv_cache_matches_forward(void **st) {
    (void)st;
    for (int f = 0; f < 3; f++) {
        cur = families[f];
        kv_matches_forward(lmf_kernels_ref(), 0, 0.0f);
        kv_matches_forward(lmf_kernels_ref(), 2, 0.0f);
        kv_matches_forward(lmf_kernels_fast(), 0, 1e-4f);
        kv_matches_forward(lmf_kernels_fast(), 1, 1e-4f);
    }
    cur = &tiny;
}

/* every recomputation mode gives bit-identical losses and gradients, in less memory */
static void recompute_identical(void) {
    int32_t in[B * T], tg[B * T];
    batch(in, tg);
    float loss[3];
    size_t bytes[3];
    float *grads[3];
    const lmf_recompute modes[3] = {LMF_RECOMPUTE_NONE, LMF_RECOMPUTE_SELECTIVE, LMF_RECOMPUTE_FULL};
    lmf_gpt *ms[3];
    for (int i = 0; i < 3; i++) {
        ms[i] = make_model(lmf_kernels_fast());
        lmf_gpt_set_recompute(ms[i], modes[i]);
        assert_int_equal(lmf_gpt_reserve(ms[i], B, T, LMF_RESERVE_TRAIN), LMF_OK);
        bytes[i] = lmf_gpt_activation_bytes(ms[i]);
        /* two steps' worth of forward/backward, so stale shared buffers would show */
        for (int rep = 0; rep < 2; rep++) {
            lmf_gpt_zero_grad(ms[i]);
            assert_int_equal(lmf_gpt_forward(ms[i], in, tg, B, T, 1, 1.0f, &loss[i]), LMF_OK);
            lmf_gpt_backward(ms[i]);
            if (rep == 0) { int32_t t0 = in[0]; in[0] = in[1]; in[1] = t0; }
        }
        int32_t t0 = in[0]; in[0] = in[1]; in[1] = t0;
        grads[i] = lmf_gpt_grads(ms[i]);
    }
    size_t n = lmf_gpt_layout(ms[0])->total;
    for (int i = 1; i < 3; i++) {
        assert_memory_equal(&loss[0], &loss[i], sizeof(float));
        assert_memory_equal(grads[0], grads[i], n * sizeof(float));
    }
    assert_true(bytes[1] < bytes[0]);
    assert_true(bytes[2] < bytes[1]);
    for (int i = 0; i < 3; i++) lmf_gpt_free(ms[i]);
}

static void test_recompute_identical(void **st) {
    (void)st;
    for (int f = 0; f < 3; f++) {
        cur = families[f];
        recompute_identical();
    }
    cur = &tiny;
}

static void test_layout_names(void **st) {
    (void)st;
    lmf_gpt_config g;
    assert_int_equal(lmf_config_preset("gpt2", &g), LMF_OK);
    lmf_param_layout l;
    assert_int_equal(lmf_layout_build(&g, &l), LMF_OK);
    /* 124,439,808 parameters: GPT-2 small with tied embeddings (Hugging Face's count) */
    assert_int_equal(lmf_config_num_params(&g), 124439808);
    int i = lmf_layout_find(&l, "h.11.mlp.c_fc.weight");
    assert_true(i >= 0);
    assert_int_equal(l.tensors[i].shape[0], 768);
    assert_int_equal(l.tensors[i].shape[1], 3072);
    assert_int_equal(l.n_tensors, 2 + 12 * 12 + 2);
    assert_int_equal(lmf_config_padded_vocab(&g), 50304);
    size_t real = 0;
    for (int k = 0; k < l.n_tensors; k++)
        real += (size_t)l.tensors[k].shape[0] * (size_t)(l.tensors[k].ndim > 1 ? l.tensors[k].shape[1] : 1);
    assert_int_equal(real, 124439808);
    assert_int_equal(l.total, real + (50304 - 50257) * 768);
    lmf_layout_free(&l);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layout_names),
        cmocka_unit_test(test_grad_ref),
        cmocka_unit_test(test_grad_fast),
        cmocka_unit_test(test_deterministic),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_kv_cache_matches_forward),
        cmocka_unit_test(test_recompute_identical),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

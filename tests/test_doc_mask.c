/* Document masking: the reference kernels against each document attended alone, and the model
 * with and without an end-of-text token in the batch (GPT-2 and Llama). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lmforge/kernels.h"
#include "lmforge/model.h"
#include "lmforge/rng.h"
#include "lib/test_util.h"

#define UNPACKED_TOL 1e-6

/* the documents of sequence b: their starts are where doc_start changes */
static int next_doc_end(const int *ds, int T, int b, int s) {
    int e = s + 1;
    while (e < T && ds[(size_t)b * T + e] == s) e++;
    return e;
}

/* |got - want| <= tol * max(1, |want|) elementwise */
static void near(const char *what, const float *got, const float *want, size_t n) {
    lmf_test_close_rel(what, got, want, n, UNPACKED_TOL, 1.0, 0);
}

/* GPT-2's attention over packed rows (B=2, T=13, documents of 1 to 6 tokens) against each
 * document run alone through the plain causal kernel: outputs and the gradient of qkv. */
static void test_ref_mha_vs_unpacked(void **state) {
    (void)state;
    const lmf_kernels *R = lmf_kernels_ref();
    enum { B = 2, T = 13, C = 12, NH = 3 };
    const int eot[] = {2, 3, 8};
    int *ds = lmf_test_doc_starts(B, T, eot, 3);
    lmf_test_rng_seed(3);
    size_t nq = (size_t)B * T * 3 * C, no = (size_t)B * T * C;
    float *qkv = lmf_test_fbuf(nq, 2), *dout = lmf_test_fbuf(no, 1);
    float *out = lmf_test_fbuf(no, 1), *dqkv = lmf_test_fbuf(nq, 1);
    float *saved = lmf_test_fbuf(R->attention_saved_floats(B, T, NH), 1);
    float *scratch = lmf_test_fbuf(R->attention_scratch_floats(B, T, NH, C), 1);
    R->attention_forward(out, saved, qkv, ds, B, T, C, NH);
    R->attention_backward(dqkv, scratch, dout, qkv, saved, ds, B, T, C, NH);
    float *o1 = lmf_test_fbuf(no, 1), *d1 = lmf_test_fbuf(nq, 1);
    int docs = 0;
    for (int b = 0; b < B; b++)
        for (int s = 0, e; s < T; s = e, docs++) {
            e = next_doc_end(ds, T, b, s);
            int n = e - s;
            size_t row = (size_t)b * T + s;
            R->attention_forward(o1, saved, qkv + row * 3 * C, NULL, 1, n, C, NH);
            R->attention_backward(d1, scratch, dout + row * C, qkv + row * 3 * C, saved, NULL, 1,
                                  n, C, NH);
            near("attention out, one document", out + row * C, o1, (size_t)n * C);
            near("attention dqkv, one document", dqkv + row * 3 * C, d1, (size_t)n * 3 * C);
        }
    assert_int_equal(docs, 8); /* row 0: 3|1|5|4 tokens; row 1: 4|1|5|3 */
    free(ds); free(qkv); free(dout); free(out); free(dqkv); free(saved); free(scratch);
    free(o1); free(d1);
}

/* The same for grouped-query attention (4 query heads over 2 key/value heads) */
static void test_ref_gqa_vs_unpacked(void **state) {
    (void)state;
    const lmf_kernels *R = lmf_kernels_ref();
    enum { B = 2, T = 11, NH = 4, NKV = 2, hs = 3 };
    const int eot[] = {0, 4, 5};
    int *ds = lmf_test_doc_starts(B, T, eot, 3);
    lmf_test_rng_seed(4);
    size_t qs = NH * hs, ks = NKV * hs, nq = (size_t)B * T * qs, nk = (size_t)B * T * ks;
    float *q = lmf_test_fbuf(nq, 2), *k = lmf_test_fbuf(nk, 2), *v = lmf_test_fbuf(nk, 1);
    float *dout = lmf_test_fbuf(nq, 1), *out = lmf_test_fbuf(nq, 1);
    float *dq = lmf_test_fbuf(nq, 1), *dk = lmf_test_fbuf(nk, 1), *dv = lmf_test_fbuf(nk, 1);
    float *saved = lmf_test_fbuf(R->attention_saved_floats(B, T, NH), 1);
    float *scratch = lmf_test_fbuf(R->gqa_attention_scratch_floats(B, T, NH, NKV), 1);
    R->gqa_attention_forward(out, saved, q, k, v, ds, B, T, NH, NKV, hs);
    R->gqa_attention_backward(dq, dk, dv, scratch, dout, q, k, v, saved, ds, B, T, NH, NKV, hs);
    float *o1 = lmf_test_fbuf(nq, 1), *q1 = lmf_test_fbuf(nq, 1), *k1 = lmf_test_fbuf(nk, 1);
    float *v1 = lmf_test_fbuf(nk, 1);
    for (int b = 0; b < B; b++)
        for (int s = 0, e; s < T; s = e) {
            e = next_doc_end(ds, T, b, s);
            int n = e - s;
            size_t row = (size_t)b * T + s;
            R->gqa_attention_forward(o1, saved, q + row * qs, k + row * ks, v + row * ks, NULL, 1,
                                     n, NH, NKV, hs);
            R->gqa_attention_backward(q1, k1, v1, scratch, dout + row * qs, q + row * qs,
                                      k + row * ks, v + row * ks, saved, NULL, 1, n, NH, NKV, hs);
            near("gqa out, one document", out + row * qs, o1, (size_t)n * qs);
            near("gqa dq, one document", dq + row * qs, q1, (size_t)n * qs);
            near("gqa dk, one document", dk + row * ks, k1, (size_t)n * ks);
            near("gqa dv, one document", dv + row * ks, v1, (size_t)n * ks);
        }
    free(ds); free(q); free(k); free(v); free(dout); free(out); free(dq); free(dk); free(dv);
    free(saved); free(scratch); free(o1); free(q1); free(k1); free(v1);
}

static void test_doc_starts(void **state) {
    (void)state;
    const int32_t ids[] = {5, 9, 1, 9, 9, 2, 3, 9, /* row 2: */ 1, 2, 3, 4, 5, 6, 7, 9};
    int ds[16];
    assert_int_equal(lmf_doc_starts(ds, ids, 2, 8, 9), 1);
    const int want[] = {0, 0, 2, 2, 4, 5, 5, 5, 0, 0, 0, 0, 0, 0, 0, 0};
    assert_memory_equal(ds, want, sizeof want);
    /* an end-of-text token only in the last column starts nothing */
    assert_int_equal(lmf_doc_starts(ds, ids + 8, 1, 8, 9), 0);
}

/* ---- the model ---- */

static const lmf_gpt_config tiny = {2, 2, 8, 16, 11}; /* vocab 11, GPT-2 */
static const lmf_gpt_config tiny_llama = {2, 4, 16, 16, 11, LMF_FAMILY_LLAMA, 2, 24, 1e-5f,
                                          10000.0f, 0};
enum { MB = 2, MT = 9, EOT = 10 };

static lmf_gpt *make_model(const lmf_gpt_config *c, const lmf_kernels *k) {
    lmf_gpt *m = NULL;
    assert_int_equal(lmf_gpt_create(c, k, &m), LMF_OK);
    lmf_gpt_init_weights(m, 42);
    /* larger weights than the initialisation, so attention is far from uniform */
    lmf_test_perturb_params(m, 5, 0.5f);
    assert_int_equal(lmf_gpt_reserve(m, MB, MT, LMF_RESERVE_TRAIN), LMF_OK);
    return m;
}

/* loss and gradient of one training step on in/tg */
static float step(lmf_gpt *m, const int32_t *in, const int32_t *tg, float *grads) {
    float loss;
    lmf_gpt_zero_grad(m);
    assert_int_equal(lmf_gpt_forward(m, in, tg, MB, MT, 1, 1.0f, &loss), LMF_OK);
    lmf_gpt_backward(m);
    memcpy(grads, lmf_gpt_grads(m), lmf_gpt_layout(m)->total * sizeof(float));
    return loss;
}

/* Masking changes nothing for a batch without an end-of-text token before its last column,
 * bit for bit (loss and gradients), and changes the loss of one with such a token. */
static void check_loss_changes_only_with_eot(const lmf_gpt_config *c, const lmf_kernels *k) {
    lmf_gpt *m = make_model(c, k);
    size_t n = lmf_gpt_layout(m)->total;
    float *g0 = malloc(n * sizeof(float)), *g1 = malloc(n * sizeof(float));
    int32_t in[MB * MT], tg[MB * MT];
    for (int i = 0; i < MB * MT; i++) {
        in[i] = (i * 7 + 3) % EOT;
        tg[i] = (i * 5 + 1) % 11;
    }
    in[MT - 1] = EOT; /* the last column: no position after it to mask */
    float plain = step(m, in, tg, g0);
    assert_int_equal(lmf_gpt_set_doc_mask(m, EOT), LMF_OK);
    float masked = step(m, in, tg, g1);
    assert_memory_equal(&plain, &masked, sizeof(float));
    assert_memory_equal(g0, g1, n * sizeof(float));

    in[MT + 3] = EOT; /* row 1 now holds two documents */
    masked = step(m, in, tg, g1);
    assert_int_equal(lmf_gpt_set_doc_mask(m, -1), LMF_OK);
    plain = step(m, in, tg, g0);
    assert_true(fabsf(masked - plain) > 1e-4f * fabsf(plain));
    free(g0); free(g1);
    lmf_gpt_free(m);
}

/* Two rows that differ only in their first document: with masking the second document's
 * logits are the same in both (it sees nothing of the first); without, they differ. Positions
 * are not reset, so the second document sits at the same positions in both rows. */
static void check_documents_isolated(const lmf_gpt_config *c, const lmf_kernels *k) {
    lmf_gpt *m = make_model(c, k);
    int32_t in[MB * MT] = {1, 2, 3, EOT, 4, 5, 6, 7, 8, /* row 1 */ 9, 0, 9, EOT, 4, 5, 6, 7, 8};
    int V = c->vocab_size;
    float *l0 = malloc((size_t)V * sizeof(float)), *l1 = malloc((size_t)V * sizeof(float));
    for (int mask = 1; mask >= 0; mask--) {
        assert_int_equal(lmf_gpt_set_doc_mask(m, mask ? EOT : -1), LMF_OK);
        float loss;
        assert_int_equal(lmf_gpt_forward(m, in, NULL, MB, MT, 0, 1.0f, &loss), LMF_OK);
        double worst = 0.0;
        for (int t = 4; t < MT; t++) {
            lmf_gpt_logits_at(m, 0, t, l0);
            lmf_gpt_logits_at(m, 1, t, l1);
            if (mask) lmf_test_close_rel("second document's logits", l1, l0, (size_t)V, 1e-5, 1.0, 0);
            for (int v = 0; v < V; v++)
                if (fabs((double)l1[v] - l0[v]) > worst) worst = fabs((double)l1[v] - l0[v]);
        }
        if (!mask) assert_true(worst > 1e-3); /* unmasked, the first document is seen */
    }
    free(l0); free(l1);
    lmf_gpt_free(m);
}

static void test_model_gpt2(void **state) {
    (void)state;
    check_loss_changes_only_with_eot(&tiny, lmf_kernels_ref());
    check_loss_changes_only_with_eot(&tiny, lmf_kernels_fast());
    check_documents_isolated(&tiny, lmf_kernels_ref());
    check_documents_isolated(&tiny, lmf_kernels_fast());
}

static void test_model_llama(void **state) {
    (void)state;
    check_loss_changes_only_with_eot(&tiny_llama, lmf_kernels_ref());
    check_loss_changes_only_with_eot(&tiny_llama, lmf_kernels_fast());
    check_documents_isolated(&tiny_llama, lmf_kernels_ref());
    check_documents_isolated(&tiny_llama, lmf_kernels_fast());
}

/* masked training with the fast kernels follows the reference's loss */
static void test_model_fast_vs_ref(void **state) {
    (void)state;
    int32_t in[MB * MT] = {1, 2, EOT, 4, 5, EOT, EOT, 7, 8, 9, 0, 9, 3, EOT, 5, 6, 7, 8};
    int32_t tg[MB * MT];
    for (int i = 0; i < MB * MT; i++) tg[i] = (i * 5 + 1) % 11;
    const lmf_gpt_config *cs[2] = {&tiny, &tiny_llama};
    for (int f = 0; f < 2; f++) {
        float loss[2];
        for (int i = 0; i < 2; i++) {
            lmf_gpt *m = make_model(cs[f], i ? lmf_kernels_fast() : lmf_kernels_ref());
            assert_int_equal(lmf_gpt_set_doc_mask(m, EOT), LMF_OK);
            assert_int_equal(lmf_gpt_forward(m, in, tg, MB, MT, 0, 1.0f, &loss[i]), LMF_OK);
            lmf_gpt_free(m);
        }
        assert_true(fabsf(loss[1] - loss[0]) <= 1e-5f * fabsf(loss[0]));
    }
}

static void test_bad_eot(void **state) {
    (void)state;
    lmf_gpt *m = make_model(&tiny, lmf_kernels_ref());
    assert_int_equal(lmf_gpt_set_doc_mask(m, 11), LMF_ERR_ARG);
    assert_non_null(strstr(lmf_last_error(), "outside the model's vocabulary"));
    lmf_gpt_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_doc_starts),
        cmocka_unit_test(test_ref_mha_vs_unpacked),
        cmocka_unit_test(test_ref_gqa_vs_unpacked),
        cmocka_unit_test(test_model_gpt2),
        cmocka_unit_test(test_model_llama),
        cmocka_unit_test(test_model_fast_vs_ref),
        cmocka_unit_test(test_bad_eot),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

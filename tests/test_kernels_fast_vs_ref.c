/* Fast kernels against the reference kernels, on awkward shapes, 1 and 2 threads; determinism. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lib/test_util.h"
#include "lmforge/kernels.h"
#include "lmforge/perf.h"
#include "lmforge/threads.h"

/* Tolerances: max_i |fast_i - ref_i| <= TOL * max(1e-6, max_i |ref_i|), per output.
 * The fast kernels sum in other orders (8-lane vectors, BLAS blocking), use FMA and an AVX2
 * exp accurate to ~2 ulp, so they differ from the reference by float rounding only:
 *   TOL_ELEM 1e-6  element-wise (residual, encoder, AdamW): at most one rounding apart
 *   TOL_ROW  2e-5  row reductions over C (LayerNorm, GELU's exp-based tanh)
 *   TOL_DOT  1e-4  dot products over C, T or N and softmax sums over V (matmul, attention,
 *                  classifier), where the error grows like sqrt(length) * 6e-8 * |terms|.
 * Worst seen (LMF_FAST_VERBOSE=1 prints them): element-wise 1.8e-7, rows 8e-7, dot products
 * 1.8e-6 (classifier dx), a >10x margin everywhere, while an indexing or masking mistake
 * gives an O(1) difference. */
#define TOL_ELEM 1e-6
#define TOL_ROW 2e-5
#define TOL_DOT 1e-4

/* floor: the smallest scale; 1 for outputs whose size is O(1) by construction (GELU), where
 * the reference itself carries an absolute error of ~6e-7 (1 + tanhf(u) cancels) */
static void close_enough_floor(const char *what, const float *fast, const float *ref, size_t n,
                               double tol, double floor) {
    lmf_test_close_rel(what, fast, ref, n, tol, floor, getenv("LMF_FAST_VERBOSE") != NULL);
}

static void close_enough(const char *what, const float *fast, const float *ref, size_t n,
                         double tol) {
    close_enough_floor(what, fast, ref, n, tol, 1e-6);
}

static const lmf_kernels *R, *F;
static const int thread_counts[] = {1, 2};
#define N_THREAD_COUNTS 2

static int setup(void **state) {
    (void)state;
    R = lmf_kernels_ref();
    F = lmf_kernels_fast();
    return 0;
}
static int teardown(void **state) {
    (void)state;
    lmf_threads_set(2);
    return 0;
}

/* ---------- matmul ---------- */

static void check_matmul(int N, int C, int OC, int with_bias, int with_dinp) {
    lmf_test_rng_seed((uint64_t)N * 1000003u + (uint64_t)C * 101u + (uint64_t)OC);
    size_t ni = (size_t)N * C, nw = (size_t)C * OC, no = (size_t)N * OC;
    float *inp = lmf_test_fbuf(ni, 1), *w = lmf_test_fbuf(nw, 1), *b = lmf_test_fbuf(OC, 1), *dout = lmf_test_fbuf(no, 1);
    float *o_ref = lmf_test_fbuf(no, 1), *dinp0 = lmf_test_fbuf(ni, 1), *dw0 = lmf_test_fbuf(nw, 1), *db0 = lmf_test_fbuf(OC, 1);
    float *dinp_r = lmf_test_fdup(dinp0, ni), *dw_r = lmf_test_fdup(dw0, nw), *db_r = lmf_test_fdup(db0, OC);
    R->matmul_forward(o_ref, inp, w, with_bias ? b : NULL, N, C, OC);
    R->matmul_backward(with_dinp ? dinp_r : NULL, dw_r, with_bias ? db_r : NULL, dout, inp, w, N, C, OC);
    float *first[4] = {0};
    for (int rep = 0; rep < 2; rep++) {
        float *o = lmf_test_fbuf(no, 1), *dinp = lmf_test_fdup(dinp0, ni), *dw = lmf_test_fdup(dw0, nw), *db = lmf_test_fdup(db0, OC);
        F->matmul_forward(o, inp, w, with_bias ? b : NULL, N, C, OC);
        F->matmul_backward(with_dinp ? dinp : NULL, dw, with_bias ? db : NULL, dout, inp, w, N, C, OC);
        if (rep == 0) {
            close_enough("matmul out", o, o_ref, no, TOL_DOT);
            close_enough("matmul dinp", dinp, dinp_r, ni, TOL_DOT);
            close_enough("matmul dweight", dw, dw_r, nw, TOL_DOT);
            close_enough("matmul dbias", db, db_r, OC, TOL_DOT);
            first[0] = o; first[1] = dinp; first[2] = dw; first[3] = db;
        } else { /* same inputs, same threads: bit-identical */
            assert_memory_equal(o, first[0], no * sizeof(float));
            assert_memory_equal(dinp, first[1], ni * sizeof(float));
            assert_memory_equal(dw, first[2], nw * sizeof(float));
            assert_memory_equal(db, first[3], OC * sizeof(float));
            free(o); free(dinp); free(dw); free(db);
        }
    }
    for (int i = 0; i < 4; i++) free(first[i]);
    free(inp); free(w); free(b); free(dout); free(o_ref); free(dinp0); free(dw0); free(db0);
    free(dinp_r); free(dw_r); free(db_r);
}

static void test_matmul(void **state) {
    (void)state;
    for (int t = 0; t < N_THREAD_COUNTS; t++) {
        lmf_threads_set(thread_counts[t]);
        check_matmul(1, 1, 1, 1, 1);
        check_matmul(1, 13, 7, 1, 1);
        check_matmul(67, 76, 229, 1, 1);
        check_matmul(130, 200, 37, 0, 1);
        check_matmul(33, 19, 300, 1, 0);
        check_matmul(256, 96, 288, 1, 1);
    }
}

/* ---------- layernorm ---------- */

static void check_layernorm(int N, int C) {
    lmf_test_rng_seed((uint64_t)N * 7919u + (uint64_t)C);
    size_t n = (size_t)N * C;
    float *inp = lmf_test_fbuf(n, 2), *w = lmf_test_fbuf(C, 1.5f), *b = lmf_test_fbuf(C, 1), *dout = lmf_test_fbuf(n, 1);
    float *o_r = lmf_test_fbuf(n, 1), *m_r = lmf_test_fbuf(N, 1), *s_r = lmf_test_fbuf(N, 1);
    float *dinp0 = lmf_test_fbuf(n, 1), *dw0 = lmf_test_fbuf(C, 1), *db0 = lmf_test_fbuf(C, 1);
    float *dinp_r = lmf_test_fdup(dinp0, n), *dw_r = lmf_test_fdup(dw0, C), *db_r = lmf_test_fdup(db0, C);
    R->layernorm_forward(o_r, m_r, s_r, inp, w, b, N, C);
    R->layernorm_backward(dinp_r, dw_r, db_r, dout, inp, w, m_r, s_r, N, C);
    float *keep[6] = {0};
    for (int rep = 0; rep < 2; rep++) {
        float *o = lmf_test_fbuf(n, 1), *m = lmf_test_fbuf(N, 1), *s = lmf_test_fbuf(N, 1);
        float *dinp = lmf_test_fdup(dinp0, n), *dw = lmf_test_fdup(dw0, C), *db = lmf_test_fdup(db0, C);
        F->layernorm_forward(o, m, s, inp, w, b, N, C);
        /* the backward uses the reference statistics so each kernel is compared alone */
        F->layernorm_backward(dinp, dw, db, dout, inp, w, m_r, s_r, N, C);
        float *cur[6] = {o, m, s, dinp, dw, db};
        size_t len[6] = {n, (size_t)N, (size_t)N, n, (size_t)C, (size_t)C};
        if (rep == 0) {
            close_enough("layernorm out", o, o_r, n, TOL_ROW);
            close_enough("layernorm mean", m, m_r, N, TOL_ROW);
            close_enough("layernorm rstd", s, s_r, N, TOL_ROW);
            close_enough("layernorm dinp", dinp, dinp_r, n, TOL_ROW);
            close_enough("layernorm dweight", dw, dw_r, C, TOL_DOT);
            close_enough("layernorm dbias", db, db_r, C, TOL_DOT);
            memcpy(keep, cur, sizeof keep);
        } else {
            for (int i = 0; i < 6; i++) {
                assert_memory_equal(cur[i], keep[i], len[i] * sizeof(float));
                free(cur[i]);
            }
        }
    }
    for (int i = 0; i < 6; i++) free(keep[i]);
    free(inp); free(w); free(b); free(dout); free(o_r); free(m_r); free(s_r);
    free(dinp0); free(dw0); free(db0); free(dinp_r); free(dw_r); free(db_r);
}

static void test_layernorm(void **state) {
    (void)state;
    for (int t = 0; t < N_THREAD_COUNTS; t++) {
        lmf_threads_set(thread_counts[t]);
        check_layernorm(1, 1);
        check_layernorm(1, 7);
        check_layernorm(37, 76);
        check_layernorm(130, 768);
    }
}

/* ---------- attention ---------- */

static void check_attention(int B, int T, int C, int NH, const int *ds) {
    lmf_test_rng_seed((uint64_t)B * 31u + (uint64_t)T * 17u + (uint64_t)C * 5u + (uint64_t)NH);
    size_t nq = (size_t)B * T * 3 * C, no = (size_t)B * T * C;
    size_t ns_r = R->attention_saved_floats(B, T, NH), ns_f = F->attention_saved_floats(B, T, NH);
    float *qkv = lmf_test_fbuf(nq, 2), *dout = lmf_test_fbuf(no, 1), *o_r = lmf_test_fbuf(no, 1), *sv_r = lmf_test_fbuf(ns_r, 1);
    float *sc_r = lmf_test_fbuf(R->attention_scratch_floats(B, T, NH, C), 1);
    float *d0 = lmf_test_fbuf(nq, 1), *d_r = lmf_test_fdup(d0, nq);
    R->attention_forward(o_r, sv_r, qkv, ds, B, T, C, NH);
    R->attention_backward(d_r, sc_r, dout, qkv, sv_r, ds, B, T, C, NH);
    float *keep[3] = {0};
    for (int rep = 0; rep < 2; rep++) {
        float *o = lmf_test_fbuf(no, 1), *sv = lmf_test_fbuf(ns_f, 1), *d = lmf_test_fdup(d0, nq);
        float *sc = lmf_test_fbuf(F->attention_scratch_floats(B, T, NH, C), 1);
        F->attention_forward(o, sv, qkv, ds, B, T, C, NH);
        F->attention_backward(d, sc, dout, qkv, sv, ds, B, T, C, NH);
        free(sc);
        if (rep == 0) {
            close_enough("attention out", o, o_r, no, TOL_DOT);
            /* the fast table saves only the log-sum-exp per row: [B,NH,T] */
            assert_true(ns_f == (size_t)B * NH * T);
            close_enough("attention dqkv", d, d_r, nq, TOL_DOT);
            keep[0] = o; keep[1] = sv; keep[2] = d;
        } else {
            assert_memory_equal(o, keep[0], no * sizeof(float));
            assert_memory_equal(sv, keep[1], ns_f * sizeof(float));
            assert_memory_equal(d, keep[2], nq * sizeof(float));
            free(o); free(sv); free(d);
        }
    }
    for (int i = 0; i < 3; i++) free(keep[i]);
    free(qkv); free(dout); free(o_r); free(sv_r); free(sc_r); free(d0); free(d_r);
}

static void test_attention(void **state) {
    (void)state;
    for (int t = 0; t < N_THREAD_COUNTS; t++) {
        lmf_threads_set(thread_counts[t]);
        check_attention(1, 1, 8, 1, NULL);
        check_attention(2, 5, 12, 3, NULL);
        check_attention(3, 67, 75, 3, NULL);   /* T crosses the 64-row block, hs = 25 */
        check_attention(1, 130, 64, 1, NULL);  /* NH = 1, three row blocks */
        check_attention(2, 64, 96, 2, NULL);   /* T exactly one block */
        check_attention(1, 300, 18, 2, NULL);  /* crosses the 256-key tile of the online softmax */
        check_attention(2, 257, 32, 4, NULL);  /* one key past a tile, hs = 8 */
    }
}

/* Attention of new positions against a key/value cache (inference): the reference gives, bit
 * for bit, the rows past.. of the reference's full causal attention over the same positions;
 * the fast table gives them within TOL_DOT, deterministically. Queries are read with the
 * stride of the qkv rows, as the model passes them. */
static void check_attention_kv(int T, int past, int C, int NH) {
    lmf_test_rng_seed((uint64_t)T * 7u + (uint64_t)past * 3u + (uint64_t)C);
    int n = T - past;
    size_t C3 = (size_t)3 * C;
    float *qkv = lmf_test_fbuf((size_t)T * C3, 2), *full = lmf_test_fbuf((size_t)T * C, 1);
    float *sv = lmf_test_fbuf(R->attention_saved_floats(1, T, NH), 1);
    R->attention_forward(full, sv, qkv, NULL, 1, T, C, NH);
    float *kc = lmf_test_fbuf((size_t)T * C, 1), *vc = lmf_test_fbuf((size_t)T * C, 1);
    for (int t = 0; t < T; t++) {
        memcpy(kc + (size_t)t * C, qkv + (size_t)t * C3 + C, (size_t)C * sizeof(float));
        memcpy(vc + (size_t)t * C, qkv + (size_t)t * C3 + 2 * C, (size_t)C * sizeof(float));
    }
    const float *q = qkv + (size_t)past * C3;
    float *o_r = lmf_test_fbuf((size_t)n * C, 1), *sc_r = lmf_test_fbuf(R->attention_kv_scratch_floats(T), 1);
    R->attention_kv_forward(o_r, sc_r, q, C3, kc, vc, past, n, C, NH);
    assert_memory_equal(o_r, full + (size_t)past * C, (size_t)n * C * sizeof(float));
    float *keep = NULL;
    for (int rep = 0; rep < 2; rep++) {
        float *o = lmf_test_fbuf((size_t)n * C, 1), *sc = lmf_test_fbuf(F->attention_kv_scratch_floats(T), 1);
        F->attention_kv_forward(o, sc, q, C3, kc, vc, past, n, C, NH);
        free(sc);
        if (rep == 0) {
            close_enough("attention_kv out", o, o_r, (size_t)n * C, TOL_DOT);
            keep = o;
        } else {
            assert_memory_equal(o, keep, (size_t)n * C * sizeof(float));
            free(o);
        }
    }
    free(keep); free(qkv); free(full); free(sv); free(kc); free(vc); free(o_r); free(sc_r);
}

static void test_attention_kv(void **state) {
    (void)state;
    for (int t = 0; t < N_THREAD_COUNTS; t++) {
        lmf_threads_set(thread_counts[t]);
        check_attention_kv(1, 0, 8, 1);     /* the first position alone */
        check_attention_kv(9, 8, 12, 3);    /* one new position, hs = 4 */
        check_attention_kv(40, 0, 75, 3);   /* a prompt at once, hs = 25 */
        check_attention_kv(70, 33, 64, 4);  /* a chunk after a prefix */
        check_attention_kv(130, 129, 96, 2);
    }
}

/* logits of the tied classifier: the reference against a double-precision product, the fast
 * table against the reference; padded rows of wte (NaN here) are never read */
static void check_logits(int N, int C, int V, int Vp) {
    lmf_test_rng_seed((uint64_t)N * 3u + (uint64_t)C * 11u + (uint64_t)V);
    float *x = lmf_test_fbuf((size_t)N * C, 1), *wte = lmf_test_fbuf((size_t)Vp * C, 1);
    for (size_t i = (size_t)V * C; i < (size_t)Vp * C; i++) wte[i] = NAN;
    float *l_r = lmf_test_fbuf((size_t)N * V, 1), *l_f = lmf_test_fbuf((size_t)N * V, 1);
    R->logits_forward(l_r, x, wte, N, C, V);
    double worst = 0.0;
    for (int i = 0; i < N; i++)
        for (int v = 0; v < V; v++) {
            double d = 0.0;
            for (int c = 0; c < C; c++) d += (double)x[(size_t)i * C + c] * wte[(size_t)v * C + c];
            worst = fmax(worst, fabs(d - l_r[(size_t)i * V + v]));
        }
    if (!(worst <= 1e-5 * sqrt((double)C))) fail_msg("logits: reference off by %g", worst);
    F->logits_forward(l_f, x, wte, N, C, V);
    close_enough("logits", l_f, l_r, (size_t)N * V, TOL_DOT);
    free(x); free(wte); free(l_r); free(l_f);
}

static void test_logits(void **state) {
    (void)state;
    for (int t = 0; t < N_THREAD_COUNTS; t++) {
        lmf_threads_set(thread_counts[t]);
        check_logits(1, 8, 3, 64);
        check_logits(1, 75, 1003, 1024);  /* one position, as sampling asks */
        check_logits(13, 40, 77, 128);
    }
}

/* ---------- element-wise: gelu, residual, adamw, sumsq, encoder ---------- */

static void test_gelu(void **state) {
    (void)state;
    for (int t = 0; t < N_THREAD_COUNTS; t++) {
        lmf_threads_set(thread_counts[t]);
        size_t sizes[] = {1, 7, 9, 4099, 20000};
        for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
            size_t n = sizes[k];
            lmf_test_rng_seed(n);
            float *x = lmf_test_fbuf(n, 6), *dout = lmf_test_fbuf(n, 1), *o_r = lmf_test_fbuf(n, 1), *o = lmf_test_fbuf(n, 1);
            if (n > 3) {
                x[0] = -30.0f;
                x[1] = 30.0f;
                x[2] = 0.0f;
            }
            float *d0 = lmf_test_fbuf(n, 1), *d_r = lmf_test_fdup(d0, n), *d = lmf_test_fdup(d0, n), *d2 = lmf_test_fdup(d0, n);
            R->gelu_forward(o_r, x, n);
            F->gelu_forward(o, x, n);
            close_enough_floor("gelu out", o, o_r, n, TOL_ROW, 1.0);
            R->gelu_backward(d_r, x, dout, n);
            F->gelu_backward(d, x, dout, n);
            close_enough_floor("gelu dinp", d, d_r, n, TOL_ROW, 1.0);
            F->gelu_backward(d2, x, dout, n);
            assert_memory_equal(d, d2, n * sizeof(float));
            memcpy(d2, x, n * sizeof(float)); /* in place: out == inp */
            F->gelu_forward(d2, d2, n);
            assert_memory_equal(d2, o, n * sizeof(float));
            free(x); free(dout); free(o_r); free(o); free(d0); free(d_r); free(d); free(d2);
        }
    }
}

static void test_residual_adamw_sumsq(void **state) {
    (void)state;
    for (int t = 0; t < N_THREAD_COUNTS; t++) {
        lmf_threads_set(thread_counts[t]);
        size_t sizes[] = {1, 5, 8, 8193, 100003};
        for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
            size_t n = sizes[k];
            lmf_test_rng_seed(n + 5);
            float *a = lmf_test_fbuf(n, 2), *b = lmf_test_fbuf(n, 2), *o_r = lmf_test_fbuf(n, 1), *o = lmf_test_fbuf(n, 1);
            R->residual_forward(o_r, a, b, n);
            F->residual_forward(o, a, b, n);
            assert_memory_equal(o, o_r, n * sizeof(float)); /* one rounding, same everywhere */
            memcpy(o, b, n * sizeof(float)); /* in place: out == b */
            F->residual_forward(o, a, o, n);
            assert_memory_equal(o, o_r, n * sizeof(float));

            double sr = R->sumsq(a, n), sf = F->sumsq(a, n);
            assert_true(fabs(sr - sf) <= 1e-12 * sr);
            assert_true(F->sumsq(a, n) == sf);

            float *p_r = lmf_test_fbuf(n, 1), *m_r = lmf_test_fbuf(n, 0.1f), *v_r = lmf_test_fbuf(n, 0.1f);
            for (size_t i = 0; i < n; i++) v_r[i] = fabsf(v_r[i]);
            float *p = lmf_test_fdup(p_r, n), *m = lmf_test_fdup(m_r, n), *v = lmf_test_fdup(v_r, n);
            float *g_r = lmf_test_fbuf(n, 0), *g = lmf_test_fbuf(n, 0);
            for (int step = 1; step <= 3; step++) {
                memcpy(g_r, b, n * sizeof(float));
                memcpy(g, b, n * sizeof(float));
                float gs = step == 2 ? 0.3f : 1.0f;
                R->adamw(p_r, g_r, m_r, v_r, n, 3e-4f, 0.9f, 0.95f, 1e-8f, 0.1f, gs, step);
                F->adamw(p, g, m, v, n, 3e-4f, 0.9f, 0.95f, 1e-8f, 0.1f, gs, step);
                for (size_t i = 0; i < n; i++) assert_true(g_r[i] == 0.0f && g[i] == 0.0f);
            }
            free(g_r);
            free(g);
            close_enough("adamw param", p, p_r, n, TOL_ELEM);
            close_enough("adamw m", m, m_r, n, TOL_ELEM);
            close_enough("adamw v", v, v_r, n, TOL_ELEM);
            free(a); free(b); free(o_r); free(o); free(p_r); free(m_r); free(v_r);
            free(p); free(m); free(v);
        }
        assert_true(F->sumsq(NULL, 0) == 0.0);
    }
}

static void test_encoder(void **state) {
    (void)state;
    for (int t = 0; t < N_THREAD_COUNTS; t++) {
        lmf_threads_set(thread_counts[t]);
        int shapes[][4] = {{1, 1, 1, 3}, {2, 3, 13, 5}, {4, 67, 76, 50}, {2, 130, 768, 11}};
        for (int s = 0; s < 4; s++) {
            int B = shapes[s][0], T = shapes[s][1], C = shapes[s][2], Vp = shapes[s][3];
            lmf_test_rng_seed((uint64_t)s + 100);
            int32_t *inp = malloc((size_t)B * T * sizeof *inp);
            for (int i = 0; i < B * T; i++) inp[i] = (int32_t)(lmf_test_uniform() * Vp) % Vp;
            size_t no = (size_t)B * T * C;
            float *wte = lmf_test_fbuf((size_t)Vp * C, 1), *wpe = lmf_test_fbuf((size_t)T * C, 1), *dout = lmf_test_fbuf(no, 1);
            float *o_r = lmf_test_fbuf(no, 1), *o = lmf_test_fbuf(no, 1);
            R->encoder_forward(o_r, inp, wte, wpe, B, T, C);
            F->encoder_forward(o, inp, wte, wpe, B, T, C);
            assert_memory_equal(o, o_r, no * sizeof(float));
            float *dwte0 = lmf_test_fbuf((size_t)Vp * C, 1), *dwpe0 = lmf_test_fbuf((size_t)T * C, 1);
            float *a_r = lmf_test_fdup(dwte0, (size_t)Vp * C), *p_r = lmf_test_fdup(dwpe0, (size_t)T * C);
            float *a_f = lmf_test_fdup(dwte0, (size_t)Vp * C), *p_f = lmf_test_fdup(dwpe0, (size_t)T * C);
            R->encoder_backward(a_r, p_r, dout, inp, B, T, C);
            F->encoder_backward(a_f, p_f, dout, inp, B, T, C);
            /* same additions in the same (position) order: identical */
            assert_memory_equal(a_f, a_r, (size_t)Vp * C * sizeof(float));
            assert_memory_equal(p_f, p_r, (size_t)T * C * sizeof(float));
            free(inp); free(wte); free(wpe); free(dout); free(o_r); free(o); free(dwte0);
            free(dwpe0); free(a_r); free(p_r); free(a_f); free(p_f);
        }
    }
}

/* ---------- classifier ---------- */

static void check_classifier(int N, int C, int V, int Vp, int grad) {
    lmf_test_rng_seed((uint64_t)N * 13u + (uint64_t)V);
    size_t nx = (size_t)N * C, nw = (size_t)Vp * C;
    float *x = lmf_test_fbuf(nx, 1), *wte = lmf_test_fbuf(nw, 1);
    for (size_t i = (size_t)V * C; i < nw; i++) wte[i] = NAN; /* padded rows never count */
    int32_t *tg = malloc((size_t)N * sizeof *tg);
    for (int n = 0; n < N; n++) tg[n] = (int32_t)(lmf_test_uniform() * V) % V;
    tg[N - 1] = V - 1;
    float *l_r = lmf_test_fbuf(N, 1), *sc_r = lmf_test_fbuf(R->classifier_scratch_floats(N, V), 1);
    float *dx_r = lmf_test_fbuf(nx, 1), *dw0 = lmf_test_fbuf(nw, 1), *dw_r = lmf_test_fdup(dw0, nw);
    float dloss = 1.0f / (float)N;
    R->classifier(l_r, grad ? dx_r : NULL, dw_r, sc_r, x, wte, tg, dloss, N, C, V);
    size_t nsf = F->classifier_scratch_floats(N, V);
    /* the fast classifier works in chunks: its scratch never holds all N x V logits */
    if (N > 256) assert_true(nsf < (size_t)N * V);
    float *keep[3] = {0};
    for (int rep = 0; rep < 2; rep++) {
        float *l = lmf_test_fbuf(N, 1), *sc = lmf_test_fbuf(nsf, 1), *dx = lmf_test_fbuf(nx, 1), *dw = lmf_test_fdup(dw0, nw);
        F->classifier(l, grad ? dx : NULL, dw, sc, x, wte, tg, dloss, N, C, V);
        free(sc);
        if (rep == 0) {
            close_enough("classifier losses", l, l_r, N, TOL_DOT);
            if (grad) {
                close_enough("classifier dx", dx, dx_r, nx, TOL_DOT);
                close_enough("classifier dwte", dw, dw_r, (size_t)V * C, TOL_DOT);
            }
            assert_memory_equal(dw + (size_t)V * C, dw0 + (size_t)V * C, (nw - (size_t)V * C) * sizeof(float));
            if (!grad) assert_memory_equal(dw, dw0, nw * sizeof(float));
            keep[0] = l; keep[1] = dx; keep[2] = dw;
        } else {
            assert_memory_equal(l, keep[0], N * sizeof(float));
            if (grad) assert_memory_equal(dx, keep[1], nx * sizeof(float));
            assert_memory_equal(dw, keep[2], nw * sizeof(float));
            free(l); free(dx); free(dw);
        }
    }
    for (int i = 0; i < 3; i++) free(keep[i]);
    free(x); free(wte); free(tg); free(l_r); free(sc_r); free(dx_r); free(dw0); free(dw_r);
}

static void test_classifier(void **state) {
    (void)state;
    for (int t = 0; t < N_THREAD_COUNTS; t++) {
        lmf_threads_set(thread_counts[t]);
        check_classifier(1, 8, 3, 64, 1);
        check_classifier(7, 13, 37, 64, 1);
        check_classifier(300, 40, 1003, 1024, 1); /* 2 chunks, the last one partial */
        check_classifier(300, 40, 1003, 1024, 0); /* forward only */
        check_classifier(513, 24, 77, 128, 1);    /* 3 chunks */
    }
}

/* ---------- vocabulary-parallel embedding and cross-entropy ---------- */

/* one rank's rows [vbegin, vbegin+Vr) of a Vp-row table; ids drawn over all of [0, Vp), so
 * most fall outside the part; fast and reference add the same terms in the same order:
 * identical */
static void check_encoder_vp(int B, int T, int C, int Vp, int vbegin, int Vr, int with_wpe) {
    lmf_test_rng_seed((uint64_t)vbegin * 7u + (uint64_t)Vr);
    int32_t *inp = malloc((size_t)B * T * sizeof *inp);
    for (int i = 0; i < B * T; i++) inp[i] = (int32_t)(lmf_test_uniform() * Vp) % Vp;
    size_t no = (size_t)B * T * C, np = (size_t)Vr * C + 1;
    float *part = lmf_test_fbuf(np, 1), *wpe = with_wpe ? lmf_test_fbuf((size_t)T * C, 1) : NULL;
    float *dout = lmf_test_fbuf(no, 1), *o_r = lmf_test_fbuf(no, 1), *o = lmf_test_fbuf(no, 1);
    R->encoder_vp_forward(o_r, inp, part, wpe, vbegin, Vr, B, T, C);
    F->encoder_vp_forward(o, inp, part, wpe, vbegin, Vr, B, T, C);
    assert_memory_equal(o, o_r, no * sizeof(float));
    float *dp0 = lmf_test_fbuf(np, 1), *dwpe0 = lmf_test_fbuf((size_t)T * C, 1);
    float *dp_r = lmf_test_fdup(dp0, np), *dp_f = lmf_test_fdup(dp0, np);
    float *dwpe_r = lmf_test_fdup(dwpe0, (size_t)T * C), *dwpe_f = lmf_test_fdup(dwpe0, (size_t)T * C);
    R->encoder_vp_backward(dp_r, with_wpe ? dwpe_r : NULL, dout, inp, vbegin, Vr, B, T, C);
    F->encoder_vp_backward(dp_f, with_wpe ? dwpe_f : NULL, dout, inp, vbegin, Vr, B, T, C);
    assert_memory_equal(dp_f, dp_r, np * sizeof(float));
    assert_memory_equal(dwpe_f, dwpe_r, (size_t)T * C * sizeof(float));
    free(inp); free(part); free(wpe); free(dout); free(o_r); free(o); free(dp0); free(dwpe0);
    free(dp_r); free(dp_f); free(dwpe_r); free(dwpe_f);
}

/* stats[N*3] split into its three columns, each compared at its own scale */
static void close_enough_stats(const float *fast, const float *ref, int N) {
    static const char *const names[3] = {"classifier_vp max", "classifier_vp sum",
                                         "classifier_vp target logit"};
    float *a = malloc((size_t)(N ? N : 1) * sizeof *a), *b = malloc((size_t)(N ? N : 1) * sizeof *b);
    for (int j = 0; j < 3; j++) {
        for (int n = 0; n < N; n++) a[n] = fast[3 * n + j], b[n] = ref[3 * n + j];
        close_enough(names[j], a, b, N, TOL_DOT);
    }
    free(a); free(b);
}

/* One rank's rows [vbegin, vbegin+Vr) of a vocabulary of V > vbegin+Vr rows: targets over all
 * of [0, V), so some lie in the part and most outside. lse = this part's log-sum-exp plus the
 * mass of the other parts (a random positive amount), as the combination would give. */
static void check_classifier_vp(int N, int C, int V, int vbegin, int Vr) {
    lmf_test_rng_seed((uint64_t)N * 31u + (uint64_t)Vr * 7u + (uint64_t)vbegin);
    size_t nx = (size_t)N * C, nw = (size_t)Vr * C + 1;
    float *x = lmf_test_fbuf(nx, 1), *w = lmf_test_fbuf(nw, 1);
    int32_t *tg = malloc((size_t)N * sizeof *tg);
    for (int n = 0; n < N; n++) tg[n] = (int32_t)(lmf_test_uniform() * V) % V;
    if (Vr > 0) tg[0] = vbegin, tg[N - 1] = vbegin + Vr - 1; /* the part's first and last rows */
    float *st_r = lmf_test_fbuf((size_t)N * 3, 1), *sc_r = lmf_test_fbuf(R->classifier_vp_scratch_floats(N, Vr) + 1, 1);
    R->classifier_vp_stats(st_r, sc_r, x, w, tg, vbegin, N, C, Vr);
    float *lse = malloc((size_t)N * sizeof *lse);
    for (int n = 0; n < N; n++) {
        double own = Vr > 0 ? st_r[3 * n] + log(st_r[3 * n + 1]) : -INFINITY;
        double other = 2.0 * lmf_test_uniform() + 1.0;
        lse[n] = (float)(Vr > 0 ? fmax(own, other) + log1p(exp(-fabs(own - other))) : other);
    }
    float *dx_r = lmf_test_fbuf(nx, 1), *dw0 = lmf_test_fbuf(nw, 1), *dw_r = lmf_test_fdup(dw0, nw);
    const float dloss = 1.0f / (float)N;
    R->classifier_vp_backward(dx_r, dw_r, sc_r, x, w, tg, lse, dloss, vbegin, N, C, Vr);
    size_t nsf = F->classifier_vp_scratch_floats(N, Vr);
    float *keep[3] = {0};
    for (int rep = 0; rep < 2; rep++) {
        float *st = lmf_test_fbuf((size_t)N * 3, 1), *sc = lmf_test_fbuf(nsf + 1, 1);
        float *dx = lmf_test_fbuf(nx, 1), *dw = lmf_test_fdup(dw0, nw);
        F->classifier_vp_stats(st, sc, x, w, tg, vbegin, N, C, Vr);
        F->classifier_vp_backward(dx, dw, sc, x, w, tg, lse, dloss, vbegin, N, C, Vr);
        free(sc);
        if (rep == 0) {
            if (Vr == 0) {
                assert_memory_equal(st, st_r, (size_t)N * 3 * sizeof(float)); /* -inf, 0, 0 */
                for (size_t i = 0; i < nx; i++) assert_true(dx[i] == 0.0f && dx_r[i] == 0.0f);
            } else {
                close_enough_stats(st, st_r, N);
                close_enough("classifier_vp dx", dx, dx_r, nx, TOL_DOT);
                close_enough("classifier_vp dw_part", dw, dw_r, (size_t)Vr * C, TOL_DOT);
            }
            /* the float past the part is never touched */
            assert_true(dw[nw - 1] == dw0[nw - 1] && dw_r[nw - 1] == dw0[nw - 1]);
            keep[0] = st; keep[1] = dx; keep[2] = dw;
        } else {
            assert_memory_equal(st, keep[0], (size_t)N * 3 * sizeof(float));
            assert_memory_equal(dx, keep[1], nx * sizeof(float));
            assert_memory_equal(dw, keep[2], nw * sizeof(float));
            free(st); free(dx); free(dw);
        }
    }
    for (int i = 0; i < 3; i++) free(keep[i]);
    free(x); free(w); free(tg); free(st_r); free(sc_r); free(lse); free(dx_r); free(dw0); free(dw_r);
}

static void test_vocab_parallel(void **state) {
    (void)state;
    for (int t = 0; t < N_THREAD_COUNTS; t++) {
        lmf_threads_set(thread_counts[t]);
        check_encoder_vp(1, 1, 1, 3, 0, 3, 1);
        check_encoder_vp(2, 3, 45, 50, 17, 13, 1);
        check_encoder_vp(4, 67, 76, 50, 25, 25, 0);
        check_encoder_vp(2, 5, 45, 20, 20, 0, 1);  /* an empty part */
        check_classifier_vp(1, 8, 5, 0, 3);
        check_classifier_vp(7, 45, 200, 64, 37);
        check_classifier_vp(301, 45, 400, 129, 101); /* 2 chunks, the last one partial */
        check_classifier_vp(513, 24, 90, 5, 77);     /* 3 chunks */
        check_classifier_vp(9, 45, 100, 50, 0);      /* an empty part */
    }
}

/* ---------- fused kernels ---------- */

/* residual + LayerNorm: fast vs reference; in both tables the fused kernel equals
 * residual_forward + layernorm_forward bit for bit (the recomputing backward relies on it),
 * in place too (res == a, res == b); two runs are identical */
static void check_residual_layernorm(int N, int C) {
    lmf_test_rng_seed((uint64_t)N * 811u + (uint64_t)C);
    size_t n = (size_t)N * C;
    float *a = lmf_test_fbuf(n, 2), *b = lmf_test_fbuf(n, 2), *w = lmf_test_fbuf(C, 1.5f), *bias = lmf_test_fbuf(C, 1);
    const lmf_kernels *tabs[2] = {R, F};
    float *res_t[2], *out_t[2], *mean_t[2], *rstd_t[2];
    for (int t = 0; t < 2; t++) {
        const lmf_kernels *k = tabs[t];
        float *res = lmf_test_fbuf(n, 9), *out = lmf_test_fbuf(n, 9), *mean = lmf_test_fbuf(N, 9), *rstd = lmf_test_fbuf(N, 9);
        k->residual_layernorm_forward(res, out, mean, rstd, a, b, w, bias, N, C);
        /* unfused, same table */
        float *r2 = lmf_test_fbuf(n, 9), *o2 = lmf_test_fbuf(n, 9), *m2 = lmf_test_fbuf(N, 9), *s2 = lmf_test_fbuf(N, 9);
        k->residual_forward(r2, a, b, n);
        k->layernorm_forward(o2, m2, s2, r2, w, bias, N, C);
        assert_memory_equal(res, r2, n * sizeof(float));
        assert_memory_equal(out, o2, n * sizeof(float));
        assert_memory_equal(mean, m2, N * sizeof(float));
        assert_memory_equal(rstd, s2, N * sizeof(float));
        /* in place, either input */
        for (int which = 0; which < 2; which++) {
            float *ac = lmf_test_fdup(a, n), *bc = lmf_test_fdup(b, n);
            k->residual_layernorm_forward(which ? bc : ac, o2, m2, s2, ac, bc, w, bias, N, C);
            assert_memory_equal(which ? bc : ac, res, n * sizeof(float));
            assert_memory_equal(o2, out, n * sizeof(float));
            free(ac); free(bc);
        }
        free(r2); free(o2); free(m2); free(s2);
        res_t[t] = res; out_t[t] = out; mean_t[t] = mean; rstd_t[t] = rstd;
    }
    assert_memory_equal(res_t[1], res_t[0], n * sizeof(float)); /* one rounding each */
    close_enough("residual_layernorm out", out_t[1], out_t[0], n, TOL_ROW);
    close_enough("residual_layernorm mean", mean_t[1], mean_t[0], N, TOL_ROW);
    close_enough("residual_layernorm rstd", rstd_t[1], rstd_t[0], N, TOL_ROW);
    for (int t = 0; t < 2; t++) { free(res_t[t]); free(out_t[t]); free(mean_t[t]); free(rstd_t[t]); }
    free(a); free(b); free(w); free(bias);
}

static void test_residual_layernorm(void **state) {
    (void)state;
    for (int t = 0; t < N_THREAD_COUNTS; t++) {
        lmf_threads_set(thread_counts[t]);
        check_residual_layernorm(1, 1);
        check_residual_layernorm(1, 7);
        check_residual_layernorm(3, 5);
        check_residual_layernorm(37, 76);
        check_residual_layernorm(130, 768);
    }
}

/* matmul + bias + GELU: fast vs reference (pre and out); in the fast table out equals
 * gelu_forward(pre) bit for bit whatever the GEMM's split and panels (selective recomputation
 * relies on it); deterministic */
static void check_matmul_gelu(int N, int C, int OC, int with_bias) {
    lmf_test_rng_seed((uint64_t)N * 1009u + (uint64_t)C * 31u + (uint64_t)OC);
    size_t ni = (size_t)N * C, nw = (size_t)C * OC, no = (size_t)N * OC;
    float *inp = lmf_test_fbuf(ni, 1), *w = lmf_test_fbuf(nw, 0.5f), *b = lmf_test_fbuf(OC, 1);
    float *pre_r = lmf_test_fbuf(no, 9), *out_r = lmf_test_fbuf(no, 9);
    R->matmul_gelu_forward(pre_r, out_r, inp, w, with_bias ? b : NULL, N, C, OC);
    float *keep[2] = {0};
    for (int rep = 0; rep < 2; rep++) {
        float *pre = lmf_test_fbuf(no, 9), *out = lmf_test_fbuf(no, 9);
        F->matmul_gelu_forward(pre, out, inp, w, with_bias ? b : NULL, N, C, OC);
        if (rep == 0) {
            close_enough("matmul_gelu pre", pre, pre_r, no, TOL_DOT);
            close_enough_floor("matmul_gelu out", out, out_r, no, TOL_DOT, 1.0);
            float *g = lmf_test_fbuf(no, 9);
            F->gelu_forward(g, pre, no);
            assert_memory_equal(g, out, no * sizeof(float));
            free(g);
            keep[0] = pre; keep[1] = out;
        } else {
            assert_memory_equal(pre, keep[0], no * sizeof(float));
            assert_memory_equal(out, keep[1], no * sizeof(float));
            free(pre); free(out);
        }
    }
    free(keep[0]); free(keep[1]);
    free(inp); free(w); free(b); free(pre_r); free(out_r);
}

static void test_matmul_gelu(void **state) {
    (void)state;
    for (int t = 0; t < N_THREAD_COUNTS; t++) {
        lmf_threads_set(thread_counts[t]);
        check_matmul_gelu(1, 1, 1, 1);
        check_matmul_gelu(1, 13, 7, 1);
        check_matmul_gelu(3, 5, 6, 0);   /* OC < 8 */
        check_matmul_gelu(67, 76, 229, 1);
        check_matmul_gelu(300, 20, 517, 1);
        check_matmul_gelu(2100, 9, 37, 1);  /* >= 1024 rows a thread: the epilogue path */
        check_matmul_gelu(2053, 4, 5, 0);   /* the epilogue path with OC < 8, odd rows */
    }
}

/* GELU backward + bias gradient: fast vs reference, dinp written (in place over dout as the
 * model uses it, and into a separate buffer), dbias accumulated; deterministic */
static void check_gelu_bias_backward(int N, int OC) {
    lmf_test_rng_seed((uint64_t)N * 577u + (uint64_t)OC);
    size_t n = (size_t)N * OC;
    float *x = lmf_test_fbuf(n, 6), *dout = lmf_test_fbuf(n, 1), *db0 = lmf_test_fbuf(OC, 1);
    if (n > 3) {
        x[0] = -30.0f;
        x[1] = 30.0f;
        x[2] = 0.0f;
    }
    float *d_r = lmf_test_fbuf(n, 9), *db_r = lmf_test_fdup(db0, OC);
    R->gelu_bias_backward(d_r, db_r, x, dout, N, OC);
    float *keep[2] = {0};
    for (int rep = 0; rep < 2; rep++) {
        float *d = lmf_test_fbuf(n, 9), *db = lmf_test_fdup(db0, OC);
        F->gelu_bias_backward(d, db, x, dout, N, OC);
        if (rep == 0) {
            close_enough_floor("gelu_bias_backward dinp", d, d_r, n, TOL_ROW, 1.0);
            close_enough("gelu_bias_backward dbias", db, db_r, OC, TOL_DOT);
            keep[0] = d; keep[1] = db;
        } else {
            assert_memory_equal(d, keep[0], n * sizeof(float));
            assert_memory_equal(db, keep[1], OC * sizeof(float));
            free(d); free(db);
        }
    }
    /* in place (dinp == dout), and dbias NULL */
    float *ip = lmf_test_fdup(dout, n), *db = lmf_test_fdup(db0, OC);
    F->gelu_bias_backward(ip, db, x, ip, N, OC);
    assert_memory_equal(ip, keep[0], n * sizeof(float));
    assert_memory_equal(db, keep[1], OC * sizeof(float));
    memcpy(ip, dout, n * sizeof(float));
    F->gelu_bias_backward(ip, NULL, x, ip, N, OC);
    assert_memory_equal(ip, keep[0], n * sizeof(float));
    free(ip); free(db); free(keep[0]); free(keep[1]);
    free(x); free(dout); free(db0); free(d_r); free(db_r);
}

static void test_gelu_bias_backward(void **state) {
    (void)state;
    for (int t = 0; t < N_THREAD_COUNTS; t++) {
        lmf_threads_set(thread_counts[t]);
        check_gelu_bias_backward(1, 1);
        check_gelu_bias_backward(1, 7);
        check_gelu_bias_backward(5, 3);
        check_gelu_bias_backward(67, 229);
        check_gelu_bias_backward(256, 3072);
    }
}

/* ---------- threads and perf helpers ---------- */

/* ---------- the Llama family ---------- */

/* RMSNorm and grouped-query attention: against the reference, then again with the same
 * inputs and threads, bit-identical; rotary embedding and SwiGLU element by element. */
static void check_rmsnorm(int N, int C) {
    lmf_test_rng_seed((uint64_t)N * 31u + (uint64_t)C);
    size_t n = (size_t)N * C;
    float *x = lmf_test_fbuf(n, 2), *w = lmf_test_fbuf(C, 1), *d = lmf_test_fbuf(n, 1);
    float *dx0 = lmf_test_fbuf(n, 1), *dw0 = lmf_test_fbuf(C, 1);
    float *o_r = lmf_test_fbuf(n, 1), *r_r = lmf_test_fbuf(N, 1);
    float *dx_r = lmf_test_fdup(dx0, n), *dw_r = lmf_test_fdup(dw0, C);
    R->rmsnorm_forward(o_r, r_r, x, w, 1e-5f, N, C);
    R->rmsnorm_backward(dx_r, dw_r, d, x, w, r_r, N, C);
    float *keep[4] = {0};
    for (int rep = 0; rep < 2; rep++) {
        float *o = lmf_test_fbuf(n, 1), *r = lmf_test_fbuf(N, 1);
        float *dx = lmf_test_fdup(dx0, n), *dw = lmf_test_fdup(dw0, C);
        F->rmsnorm_forward(o, r, x, w, 1e-5f, N, C);
        F->rmsnorm_backward(dx, dw, d, x, w, r, N, C);
        if (rep == 0) {
            close_enough("rmsnorm out", o, o_r, n, TOL_ROW);
            close_enough("rmsnorm rstd", r, r_r, N, TOL_ROW);
            close_enough("rmsnorm dinp", dx, dx_r, n, TOL_ROW);
            close_enough("rmsnorm dweight", dw, dw_r, C, TOL_DOT);
            keep[0] = o; keep[1] = r; keep[2] = dx; keep[3] = dw;
        } else {
            assert_memory_equal(o, keep[0], n * sizeof(float));
            assert_memory_equal(r, keep[1], N * sizeof(float));
            assert_memory_equal(dx, keep[2], n * sizeof(float));
            assert_memory_equal(dw, keep[3], C * sizeof(float));
            free(o); free(r); free(dx); free(dw);
        }
    }
    for (int i = 0; i < 4; i++) free(keep[i]);
    free(x); free(w); free(d); free(dx0); free(dw0); free(o_r); free(r_r); free(dx_r); free(dw_r);
}

static void check_rope(int B, int T, int NH, int NKV, int hs, int pos0, float theta) {
    lmf_test_rng_seed((uint64_t)T * 13u + (uint64_t)hs);
    size_t nq = (size_t)B * T * NH * hs, nk = (size_t)B * T * NKV * hs;
    float *q = lmf_test_fbuf(nq, 1), *k = lmf_test_fbuf(nk, 1);
    float *q_r = lmf_test_fdup(q, nq), *k_r = lmf_test_fdup(k, nk);
    R->rope_forward(q_r, k_r, B, T, NH, NKV, hs, pos0, theta);
    float *q_f = lmf_test_fdup(q, nq), *k_f = lmf_test_fdup(k, nk);
    F->rope_forward(q_f, k_f, B, T, NH, NKV, hs, pos0, theta);
    close_enough("rope q", q_f, q_r, nq, TOL_ELEM);
    close_enough("rope k", k_f, k_r, nk, TOL_ELEM);
    R->rope_backward(q_r, k_r, B, T, NH, NKV, hs, pos0, theta);
    F->rope_backward(q_f, k_f, B, T, NH, NKV, hs, pos0, theta);
    close_enough("rope dq", q_f, q_r, nq, TOL_ELEM);
    close_enough("rope dk", k_f, k_r, nk, TOL_ELEM);
    /* forward then backward is the identity up to rounding */
    close_enough("rope round trip", q_f, q, nq, TOL_ELEM * 4);
    free(q); free(k); free(q_r); free(k_r); free(q_f); free(k_f);
}

static void check_swiglu(size_t n) {
    lmf_test_rng_seed(n);
    float *g = lmf_test_fbuf(n, 6), *u = lmf_test_fbuf(n, 2), *d = lmf_test_fbuf(n, 1);
    float *o_r = lmf_test_fbuf(n, 1), *dg_r = lmf_test_fbuf(n, 1), *du_r = lmf_test_fbuf(n, 1);
    R->swiglu_forward(o_r, g, u, n);
    R->swiglu_backward(dg_r, du_r, d, g, u, n);
    float *o = lmf_test_fbuf(n, 1), *dg = lmf_test_fbuf(n, 1), *du = lmf_test_fbuf(n, 1);
    F->swiglu_forward(o, g, u, n);
    F->swiglu_backward(dg, du, d, g, u, n);
    close_enough("swiglu out", o, o_r, n, TOL_ROW);
    close_enough("swiglu dgate", dg, dg_r, n, TOL_ROW);
    close_enough("swiglu dup", du, du_r, n, TOL_ROW);
    free(g); free(u); free(d); free(o_r); free(dg_r); free(du_r); free(o); free(dg); free(du);
}

static void check_gqa(int B, int T, int NH, int NKV, int hs, const int *ds) {
    lmf_test_rng_seed((uint64_t)T * 5u + (uint64_t)NH * 3u + (uint64_t)NKV);
    size_t nq = (size_t)B * T * NH * hs, nk = (size_t)B * T * NKV * hs;
    float *q = lmf_test_fbuf(nq, 2), *k = lmf_test_fbuf(nk, 2), *v = lmf_test_fbuf(nk, 1);
    float *d = lmf_test_fbuf(nq, 1);
    float *o_r = lmf_test_fbuf(nq, 1), *sv_r = lmf_test_fbuf(R->attention_saved_floats(B, T, NH), 1);
    float *sc_r = lmf_test_fbuf(R->gqa_attention_scratch_floats(B, T, NH, NKV), 1);
    float *dq_r = lmf_test_fbuf(nq, 1), *dk_r = lmf_test_fbuf(nk, 1), *dv_r = lmf_test_fbuf(nk, 1);
    R->gqa_attention_forward(o_r, sv_r, q, k, v, ds, B, T, NH, NKV, hs);
    R->gqa_attention_backward(dq_r, dk_r, dv_r, sc_r, d, q, k, v, sv_r, ds, B, T, NH, NKV, hs);
    float *keep[4] = {0};
    for (int rep = 0; rep < 2; rep++) {
        float *o = lmf_test_fbuf(nq, 1), *sv = lmf_test_fbuf(F->attention_saved_floats(B, T, NH), 1);
        float *sc = lmf_test_fbuf(F->gqa_attention_scratch_floats(B, T, NH, NKV), 1);
        float *dq = lmf_test_fbuf(nq, 1), *dk = lmf_test_fbuf(nk, 1), *dv = lmf_test_fbuf(nk, 1);
        F->gqa_attention_forward(o, sv, q, k, v, ds, B, T, NH, NKV, hs);
        F->gqa_attention_backward(dq, dk, dv, sc, d, q, k, v, sv, ds, B, T, NH, NKV, hs);
        free(sv); free(sc);
        if (rep == 0) {
            close_enough("gqa out", o, o_r, nq, TOL_DOT);
            close_enough("gqa dq", dq, dq_r, nq, TOL_DOT);
            close_enough("gqa dk", dk, dk_r, nk, TOL_DOT);
            close_enough("gqa dv", dv, dv_r, nk, TOL_DOT);
            keep[0] = o; keep[1] = dq; keep[2] = dk; keep[3] = dv;
        } else {
            assert_memory_equal(o, keep[0], nq * sizeof(float));
            assert_memory_equal(dq, keep[1], nq * sizeof(float));
            assert_memory_equal(dk, keep[2], nk * sizeof(float));
            assert_memory_equal(dv, keep[3], nk * sizeof(float));
            free(o); free(dq); free(dk); free(dv);
        }
    }
    /* the cached form over one sequence: the reference gives its full forward's rows bit for
     * bit, the fast table within TOL_DOT (the cache never masks) */
    if (B == 1 && !ds) {
        int past = T / 3, n = T - past;
        size_t qs = (size_t)NH * hs;
        float *c_r = lmf_test_fbuf((size_t)n * qs, 1), *c_f = lmf_test_fbuf((size_t)n * qs, 1);
        float *s_r = lmf_test_fbuf(R->attention_kv_scratch_floats(T), 1);
        float *s_f = lmf_test_fbuf(F->attention_kv_scratch_floats(T), 1);
        R->gqa_attention_kv_forward(c_r, s_r, q + (size_t)past * qs, k, v, past, n, NH, NKV, hs);
        assert_memory_equal(c_r, o_r + (size_t)past * qs, (size_t)n * qs * sizeof(float));
        F->gqa_attention_kv_forward(c_f, s_f, q + (size_t)past * qs, k, v, past, n, NH, NKV, hs);
        close_enough("gqa cached", c_f, c_r, (size_t)n * qs, TOL_DOT);
        free(c_r); free(c_f); free(s_r); free(s_f);
    }
    for (int i = 0; i < 4; i++) free(keep[i]);
    free(q); free(k); free(v); free(d); free(o_r); free(sv_r); free(sc_r); free(dq_r); free(dk_r);
    free(dv_r);
}

static void test_llama_kernels(void **state) {
    (void)state;
    for (int t = 0; t < N_THREAD_COUNTS; t++) {
        lmf_threads_set(thread_counts[t]);
        check_rmsnorm(1, 3);
        check_rmsnorm(7, 75);
        check_rmsnorm(33, 256);
        check_rope(1, 1, 1, 1, 2, 0, 10000.0f);
        check_rope(2, 9, 4, 2, 64, 5, 10000.0f);
        check_rope(1, 5, 3, 1, 150, 1000, 500000.0f); /* chunks of 64 angles and a tail */
        check_swiglu(1);
        check_swiglu(13);
        check_swiglu(1029);
        check_gqa(1, 1, 2, 1, 8, NULL);
        check_gqa(2, 5, 4, 1, 3, NULL);     /* one key/value head */
        check_gqa(2, 7, 4, 4, 5, NULL);     /* as many as query heads */
        check_gqa(1, 67, 6, 2, 25, NULL);   /* groups of three, T crosses the 64-row block */
        check_gqa(1, 300, 4, 2, 8, NULL);   /* crosses the 256-key tile */
        check_gqa(3, 130, 8, 2, 16, NULL);  /* more pairs than threads, three row blocks */
    }
}

/* Document masking: the fast kernels skip the keys before a row block's first document start
 * and mask inside the block; against the reference with documents that begin inside row
 * blocks and key tiles and one-token documents. */
static void test_doc_mask(void **state) {
    (void)state;
    const int e1[] = {0, 1, 3}, e2[] = {20, 63, 64, 65, 100}, e3[] = {2, 259, 280};
    int *d1 = lmf_test_doc_starts(2, 6, e1, 3), *d2 = lmf_test_doc_starts(3, 130, e2, 5);
    int *d3 = lmf_test_doc_starts(2, 300, e3, 3);
    for (int t = 0; t < N_THREAD_COUNTS; t++) {
        lmf_threads_set(thread_counts[t]);
        check_attention(2, 6, 12, 3, d1);
        check_attention(3, 130, 64, 2, d2);
        check_attention(2, 300, 18, 2, d3);
        check_gqa(2, 6, 4, 2, 3, d1);
        check_gqa(3, 130, 8, 2, 16, d2);
        check_gqa(2, 300, 4, 1, 8, d3);
    }
    free(d1); free(d2); free(d3);

}

static void test_threads_perf(void **state) {
    (void)state;
    assert_int_equal(lmf_threads_set(1), 1);
    assert_int_equal(lmf_threads_get(), 1);
    assert_int_equal(lmf_threads_set(2), 2);
    assert_int_equal(lmf_threads_get(), 2);
    assert_true(lmf_threads_set(0) >= 1);
    double t0 = lmf_now_s();
    double g = lmf_peak_gflops(1, 0.02);
    assert_true(lmf_now_s() >= t0 + 0.02);
    assert_true(g > 0.0 && isfinite(g));
    assert_true(lmf_peak_rss_bytes() > 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_threads_perf),
        cmocka_unit_test(test_matmul),
        cmocka_unit_test(test_layernorm),
        cmocka_unit_test(test_attention),
        cmocka_unit_test(test_attention_kv),
        cmocka_unit_test(test_doc_mask),
        cmocka_unit_test(test_logits),
        cmocka_unit_test(test_gelu),
        cmocka_unit_test(test_residual_adamw_sumsq),
        cmocka_unit_test(test_encoder),
        cmocka_unit_test(test_classifier),
        cmocka_unit_test(test_vocab_parallel),
        cmocka_unit_test(test_residual_layernorm),
        cmocka_unit_test(test_matmul_gelu),
        cmocka_unit_test(test_gelu_bias_backward),
        cmocka_unit_test(test_llama_kernels),
    };
    return cmocka_run_group_tests_name("kernels_fast", tests, setup, teardown);
}

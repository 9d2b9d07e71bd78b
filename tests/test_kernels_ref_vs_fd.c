/* Kernel numerics: every backward against double-precision central finite differences. */
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

/* How the checks work. Each op has a double-precision forward written here, independent of
 * the float kernels. For a fixed random R we take the scalar L = sum(out * R) (in double) and
 * differentiate it by central differences, step FD_H, over every input element. The float
 * backward is called with dout = R on gradient buffers pre-filled with random values: the
 * pre-fill is subtracted afterwards from gradients that must ACCUMULATE (parameter gradients,
 * LayerNorm's dinp), and must be gone from those that are WRITTEN (matmul dinp, dqkv, GELU's
 * dinp, classifier dx; see kernels.h), so either mistake fails.
 *
 * Tolerances. Inputs are O(1) and shapes are tiny, so float32 kernels carry about 1e-6
 * relative error, and the double central difference with FD_H = 1e-4 has truncation error
 * ~FD_H^2 * |f'''| ~ 1e-8 and rounding ~1e-16/FD_H ~ 1e-12. We require, per element,
 *   |analytic - fd| <= GRAD_TOL * max(1, max_i |fd_i|),     GRAD_TOL = 2e-5
 * The worst seen is 1.5e-6 (fast GELU), a >10x margin, while a real mistake (wrong index,
 * missing term, overwrite instead of accumulate, wrong eps) is an O(1e-2..1) error.
 * Float forwards against the double forward: |f - d| <= FWD_TOL * max(1, |d|), FWD_TOL = 1e-5.
 * Set LMF_FD_VERBOSE=1 to print the relative error of every gradient check. */
#define FD_H 1e-4
#define GRAD_TOL 2e-5
#define FWD_TOL 1e-5

/* ---------- small helpers ---------- */

static double *dcopy(const float *f, size_t n) {
    double *p = malloc((n ? n : 1) * sizeof *p);
    assert_non_null(p);
    for (size_t i = 0; i < n; i++) p[i] = f[i];
    return p;
}

/* A double-precision scalar loss of the op, over the arrays in ctx. */
typedef double (*loss_fn)(void *ctx);

/* Compare analytic[i] (the float backward's contribution: after[i] - before[i]) with the
 * central difference of f(ctx) in arr[i]. */
static void fd_check(const char *what, loss_fn f, void *ctx, double *arr, size_t n,
                     const float *after, const float *before) {
    double *fd = malloc(n * sizeof *fd);
    assert_non_null(fd);
    double scale = 1.0;
    for (size_t i = 0; i < n; i++) {
        double keep = arr[i];
        arr[i] = keep + FD_H;
        double lp = f(ctx);
        arr[i] = keep - FD_H;
        double lm = f(ctx);
        arr[i] = keep;
        fd[i] = (lp - lm) / (2 * FD_H);
        if (fabs(fd[i]) > scale) scale = fabs(fd[i]);
    }
    double worst = 0.0;
    size_t worst_i = 0;
    for (size_t i = 0; i < n; i++) {
        double a = (double)after[i] - (before ? (double)before[i] : 0.0);
        double e = fabs(a - fd[i]);
        if (e > worst) {
            worst = e;
            worst_i = i;
        }
    }
    int ok = worst <= GRAD_TOL * scale;
    if (getenv("LMF_FD_VERBOSE")) printf("  %-24s relative error %.2e\n", what, worst / scale);
    if (!ok) {
        double a = (double)after[worst_i] - (before ? (double)before[worst_i] : 0.0);
        print_error("%s: element %zu analytic %.9g finite-difference %.9g (error %.3g > %.3g)\n",
                    what, worst_i, a, fd[worst_i], worst, GRAD_TOL * scale);
    }
    free(fd);
    assert_true(ok);
}

static void fwd_check(const char *what, const float *f, const double *d, size_t n) {
    for (size_t i = 0; i < n; i++) {
        double tol = FWD_TOL * fmax(1.0, fabs(d[i]));
        if (!(fabs((double)f[i] - d[i]) <= tol)) {
            print_error("%s: element %zu float %.9g double %.9g\n", what, i, (double)f[i], d[i]);
            fail();
        }
    }
}

static double dot_r(const double *out, const float *R, size_t n) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += out[i] * (double)R[i];
    return s;
}

/* The kernel tables under test: the reference is the one the brief is about; the fast table
 * is checked the same way for extra safety. */
static const lmf_kernels *tables[2];
static int setup_tables(void **state) {
    (void)state;
    tables[0] = lmf_kernels_ref();
    tables[1] = lmf_kernels_fast();
    return 0;
}

/* ---------- encoder ---------- */

typedef struct enc_ctx {
    int B, T, C;
    const int32_t *inp;
    double *wte, *wpe, *out;
    const float *R;
} enc_ctx;

static void enc_fwd_d(enc_ctx *c) {
    for (int b = 0; b < c->B; b++)
        for (int t = 0; t < c->T; t++)
            for (int i = 0; i < c->C; i++)
                c->out[((size_t)b * c->T + t) * c->C + i] =
                    c->wte[(size_t)c->inp[b * c->T + t] * c->C + i] + c->wpe[(size_t)t * c->C + i];
}
static double enc_loss(void *p) {
    enc_ctx *c = p;
    enc_fwd_d(c);
    return dot_r(c->out, c->R, (size_t)c->B * c->T * c->C);
}

static void check_encoder(const lmf_kernels *k, int B, int T, int C, int Vp) {
    lmf_test_rng_seed(11);
    size_t nout = (size_t)B * T * C;
    int32_t *inp = malloc((size_t)B * T * sizeof *inp);
    for (int i = 0; i < B * T; i++) inp[i] = (int32_t)(lmf_test_uniform() * Vp) % Vp;
    if (B * T > 1) inp[B * T - 1] = inp[0]; /* a repeated id must accumulate */
    float *wte = lmf_test_fbuf((size_t)Vp * C, 1), *wpe = lmf_test_fbuf((size_t)(T + 2) * C, 1);
    float *R = lmf_test_fbuf(nout, 1), *out = lmf_test_fbuf(nout, 1);
    enc_ctx c = {B, T, C, inp, dcopy(wte, (size_t)Vp * C), dcopy(wpe, (size_t)(T + 2) * C),
                 malloc(nout * sizeof(double)), R};
    k->encoder_forward(out, inp, wte, wpe, B, T, C);
    enc_fwd_d(&c);
    fwd_check("encoder forward", out, c.out, nout);

    float *dwte0 = lmf_test_fbuf((size_t)Vp * C, 1), *dwpe0 = lmf_test_fbuf((size_t)T * C, 1);
    float *dwte = lmf_test_fdup(dwte0, (size_t)Vp * C), *dwpe = lmf_test_fdup(dwpe0, (size_t)T * C);
    k->encoder_backward(dwte, dwpe, R, inp, B, T, C);
    fd_check("encoder dwte", enc_loss, &c, c.wte, (size_t)Vp * C, dwte, dwte0);
    fd_check("encoder dwpe", enc_loss, &c, c.wpe, (size_t)T * C, dwpe, dwpe0);
    free(inp); free(wte); free(wpe); free(R); free(out); free(c.wte); free(c.wpe); free(c.out);
    free(dwte0); free(dwpe0); free(dwte); free(dwpe);
}

static void test_encoder(void **state) {
    (void)state;
    for (int i = 0; i < 2; i++) {
        check_encoder(tables[i], 2, 3, 13, 11);
        check_encoder(tables[i], 1, 1, 5, 3);
        check_encoder(tables[i], 3, 7, 17, 64);
    }
}

/* ---------- layernorm ---------- */

typedef struct ln_ctx {
    int N, C;
    double *inp, *w, *b, *out, *mean, *rstd;
    const float *R;
} ln_ctx;

static void ln_fwd_d(ln_ctx *c) {
    for (int n = 0; n < c->N; n++) {
        const double *x = c->inp + (size_t)n * c->C;
        double m = 0, v = 0;
        for (int i = 0; i < c->C; i++) m += x[i];
        m /= c->C;
        for (int i = 0; i < c->C; i++) v += (x[i] - m) * (x[i] - m);
        v /= c->C;
        double r = 1.0 / sqrt(v + 1e-5);
        for (int i = 0; i < c->C; i++)
            c->out[(size_t)n * c->C + i] = (x[i] - m) * r * c->w[i] + c->b[i];
        c->mean[n] = m;
        c->rstd[n] = r;
    }
}
static double ln_loss(void *p) {
    ln_ctx *c = p;
    ln_fwd_d(c);
    return dot_r(c->out, c->R, (size_t)c->N * c->C);
}

/* amp: input spread; a small one (variance near eps) makes the eps term matter */
static void check_layernorm(const lmf_kernels *k, int N, int C, float amp) {
    lmf_test_rng_seed(22);
    size_t n = (size_t)N * C;
    float *inp = lmf_test_fbuf(n, amp), *w = lmf_test_fbuf(C, 1.5f), *b = lmf_test_fbuf(C, 1), *R = lmf_test_fbuf(n, 1);
    for (size_t i = 0; i < n; i++) inp[i] += 0.25f * amp; /* a non-zero mean */
    float *out = lmf_test_fbuf(n, 1), *mean = lmf_test_fbuf(N, 1), *rstd = lmf_test_fbuf(N, 1);
    ln_ctx c = {N, C, dcopy(inp, n), dcopy(w, C), dcopy(b, C), malloc(n * sizeof(double)),
                malloc(N * sizeof(double)), malloc(N * sizeof(double)), R};
    k->layernorm_forward(out, mean, rstd, inp, w, b, N, C);
    ln_fwd_d(&c);
    fwd_check("layernorm out", out, c.out, n);
    fwd_check("layernorm mean", mean, c.mean, N);
    fwd_check("layernorm rstd", rstd, c.rstd, N);

    float *dinp0 = lmf_test_fbuf(n, 1), *dw0 = lmf_test_fbuf(C, 1), *db0 = lmf_test_fbuf(C, 1);
    float *dinp = lmf_test_fdup(dinp0, n), *dw = lmf_test_fdup(dw0, C), *db = lmf_test_fdup(db0, C);
    k->layernorm_backward(dinp, dw, db, R, inp, w, mean, rstd, N, C);
    fd_check("layernorm dinp", ln_loss, &c, c.inp, n, dinp, dinp0);
    fd_check("layernorm dweight", ln_loss, &c, c.w, C, dw, dw0);
    fd_check("layernorm dbias", ln_loss, &c, c.b, C, db, db0);
    free(inp); free(w); free(b); free(R); free(out); free(mean); free(rstd);
    free(c.inp); free(c.w); free(c.b); free(c.out); free(c.mean); free(c.rstd);
    free(dinp0); free(dw0); free(db0); free(dinp); free(dw); free(db);
}

static void test_layernorm(void **state) {
    (void)state;
    for (int i = 0; i < 2; i++) {
        check_layernorm(tables[i], 7, 13, 2.0f);
        check_layernorm(tables[i], 1, 3, 2.0f);
        check_layernorm(tables[i], 5, 40, 2.0f);
        check_layernorm(tables[i], 3, 19, 0.03f);
    }
}

/* ---------- matmul ---------- */

typedef struct mm_ctx {
    int N, C, OC, has_bias;
    double *inp, *w, *b, *out;
    const float *R;
} mm_ctx;

static void mm_fwd_d(mm_ctx *c) {
    for (int n = 0; n < c->N; n++)
        for (int o = 0; o < c->OC; o++) {
            double s = c->has_bias ? c->b[o] : 0.0;
            for (int i = 0; i < c->C; i++) s += c->inp[(size_t)n * c->C + i] * c->w[(size_t)i * c->OC + o];
            c->out[(size_t)n * c->OC + o] = s;
        }
}
static double mm_loss(void *p) {
    mm_ctx *c = p;
    mm_fwd_d(c);
    return dot_r(c->out, c->R, (size_t)c->N * c->OC);
}

/* variant bit 0: bias NULL in forward and dbias NULL; bit 1: dinp NULL */
static void check_matmul(const lmf_kernels *k, int N, int C, int OC, int variant) {
    lmf_test_rng_seed(33 + variant);
    int nobias = variant & 1, nodinp = variant & 2;
    size_t ni = (size_t)N * C, nw = (size_t)C * OC, no = (size_t)N * OC;
    float *inp = lmf_test_fbuf(ni, 1), *w = lmf_test_fbuf(nw, 1), *b = lmf_test_fbuf(OC, 1), *R = lmf_test_fbuf(no, 1);
    float *out = lmf_test_fbuf(no, 1);
    mm_ctx c = {N, C, OC, !nobias, dcopy(inp, ni), dcopy(w, nw), dcopy(b, OC),
                malloc(no * sizeof(double)), R};
    k->matmul_forward(out, inp, w, nobias ? NULL : b, N, C, OC);
    mm_fwd_d(&c);
    fwd_check("matmul forward", out, c.out, no);

    float *dinp0 = lmf_test_fbuf(ni, 1), *dw0 = lmf_test_fbuf(nw, 1), *db0 = lmf_test_fbuf(OC, 1);
    float *dinp = lmf_test_fdup(dinp0, ni), *dw = lmf_test_fdup(dw0, nw), *db = lmf_test_fdup(db0, OC);
    k->matmul_backward(nodinp ? NULL : dinp, dw, nobias ? NULL : db, R, inp, w, N, C, OC);
    if (!nodinp) fd_check("matmul dinp", mm_loss, &c, c.inp, ni, dinp, NULL); /* written */
    else assert_memory_equal(dinp, dinp0, ni * sizeof(float));
    fd_check("matmul dweight", mm_loss, &c, c.w, nw, dw, dw0);
    if (!nobias) fd_check("matmul dbias", mm_loss, &c, c.b, OC, db, db0);
    else assert_memory_equal(db, db0, OC * sizeof(float));
    free(inp); free(w); free(b); free(R); free(out); free(c.inp); free(c.w); free(c.b);
    free(c.out); free(dinp0); free(dw0); free(db0); free(dinp); free(dw); free(db);
}

static void test_matmul(void **state) {
    (void)state;
    for (int i = 0; i < 2; i++) {
        check_matmul(tables[i], 5, 13, 7, 0);
        check_matmul(tables[i], 1, 3, 1, 0);
        check_matmul(tables[i], 9, 17, 24, 1);
        check_matmul(tables[i], 4, 8, 11, 2);
        check_matmul(tables[i], 3, 5, 9, 3);
    }
}

/* ---------- attention ---------- */

typedef struct att_ctx {
    int B, T, C, NH;
    double *qkv, *out, *att;
    double *lse; /* [B,NH,T] log-sum-exp of the scaled scores, or NULL */
    const float *R;
    const int *ds; /* document starts [B,T] (row t attends to keys ds[t] .. t), or NULL */
} att_ctx;

/* the first key row t of sequence b attends to */
static int key0(const int *ds, int T, int b, int t) { return ds ? ds[(size_t)b * T + t] : 0; }

static void att_fwd_d(att_ctx *c) {
    int hs = c->C / c->NH, T = c->T;
    size_t C3 = (size_t)3 * c->C;
    double scale = 1.0 / sqrt((double)hs);
    for (int b = 0; b < c->B; b++)
        for (int h = 0; h < c->NH; h++)
            for (int t = 0; t < T; t++) {
                double *a = c->att + (((size_t)b * c->NH + h) * T + t) * T;
                const double *q = c->qkv + ((size_t)b * T + t) * C3 + (size_t)h * hs;
                double mx = -INFINITY, sum = 0;
                int s0 = key0(c->ds, T, b, t);
                for (int u = 0; u < T; u++) {
                    if (u > t || u < s0) {
                        a[u] = 0;
                        continue;
                    }
                    const double *kk = c->qkv + ((size_t)b * T + u) * C3 + c->C + (size_t)h * hs;
                    double s = 0;
                    for (int i = 0; i < hs; i++) s += q[i] * kk[i];
                    a[u] = s * scale;
                    if (a[u] > mx) mx = a[u];
                }
                for (int u = s0; u <= t; u++) sum += (a[u] = exp(a[u] - mx));
                if (c->lse) c->lse[((size_t)b * c->NH + h) * T + t] = mx + log(sum);
                for (int u = s0; u <= t; u++) a[u] /= sum;
                for (int i = 0; i < hs; i++) {
                    double s = 0;
                    for (int u = s0; u <= t; u++)
                        s += a[u] * c->qkv[((size_t)b * T + u) * C3 + 2 * (size_t)c->C + (size_t)h * hs + i];
                    c->out[((size_t)b * T + t) * c->C + (size_t)h * hs + i] = s;
                }
            }
}
static double att_loss(void *p) {
    att_ctx *c = p;
    att_fwd_d(c);
    return dot_r(c->out, c->R, (size_t)c->B * c->T * c->C);
}

static void check_attention(const lmf_kernels *k, int B, int T, int C, int NH, const int *ds) {
    lmf_test_rng_seed(44);
    size_t nq = (size_t)B * T * 3 * C, no = (size_t)B * T * C;
    size_t ns = k->attention_saved_floats(B, T, NH);
    size_t nsc = k->attention_scratch_floats(B, T, NH, C);
    /* the reference saves the probabilities [B,NH,T,T], the fast table the log-sum-exp [B,NH,T] */
    int is_ref = k == lmf_kernels_ref();
    size_t nlse = (size_t)B * NH * T;
    assert_true(ns == (is_ref ? (size_t)B * NH * T * T : nlse));
    float *qkv = lmf_test_fbuf(nq, 1.5f), *R = lmf_test_fbuf(no, 1), *out = lmf_test_fbuf(no, 1);
    float *saved = lmf_test_fbuf(ns, 1), *scratch = lmf_test_fbuf(nsc, 1);
    att_ctx c = {B, T, C, NH, dcopy(qkv, nq), malloc(no * sizeof(double)),
                 malloc((size_t)B * NH * T * T * sizeof(double)), malloc(nlse * sizeof(double)), R,
                 ds};
    k->attention_forward(out, saved, qkv, ds, B, T, C, NH);
    att_fwd_d(&c);
    fwd_check("attention out", out, c.out, no);
    if (is_ref)
        fwd_check("attention probabilities", saved, c.att, (size_t)B * NH * T * T);
    else
        fwd_check("attention log-sum-exp", saved, c.lse, nlse);
    free(c.lse);
    c.lse = NULL;

    float *d0 = lmf_test_fbuf(nq, 1), *d = lmf_test_fdup(d0, nq);
    k->attention_backward(d, scratch, R, qkv, saved, ds, B, T, C, NH);
    fd_check("attention dqkv", att_loss, &c, c.qkv, nq, d, NULL); /* written over d0 */
    free(qkv); free(R); free(out); free(saved); free(scratch); free(c.qkv); free(c.out);
    free(c.att); free(d0); free(d);
}

static void test_attention(void **state) {
    (void)state;
    for (int i = 0; i < 2; i++) {
        check_attention(tables[i], 2, 5, 12, 3, NULL);
        check_attention(tables[i], 1, 1, 8, 1, NULL);
        check_attention(tables[i], 1, 7, 6, 1, NULL);
        check_attention(tables[i], 2, 4, 9, 3, NULL);
        check_attention(tables[i], 1, 9, 40, 2, NULL);
        check_attention(tables[i], 1, 70, 8, 2, NULL);  /* crosses the fast table's 64-row block */
        check_attention(tables[i], 1, 260, 4, 1, NULL); /* crosses the fast forward's 256-key tile */
    }
}

/* Document masking: documents end at the listed positions (row b's shifted by b), including
 * two ends in a row (a one-token document), an end in the last column (no effect) and, at
 * T = 70 and 270, documents that start inside the fast kernels' row blocks and key tiles. */
static void test_attention_doc_mask(void **state) {
    (void)state;
    const int e1[] = {1, 2, 5, 6}, e2[] = {10, 40, 41, 63, 64, 69}, e3[] = {3, 259};
    int *d1 = lmf_test_doc_starts(2, 7, e1, 4), *d2 = lmf_test_doc_starts(2, 70, e2, 6);
    int *d3 = lmf_test_doc_starts(1, 270, e3, 2);
    for (int i = 0; i < 2; i++) {
        check_attention(tables[i], 2, 7, 12, 3, d1);
        check_attention(tables[i], 2, 70, 8, 2, d2);
        check_attention(tables[i], 1, 270, 4, 1, d3);
    }
    free(d1); free(d2); free(d3);
}

/* ---------- gelu ---------- */

typedef struct gelu_ctx {
    size_t n;
    double *inp, *out;
    const float *R;
} gelu_ctx;

static void gelu_fwd_d(gelu_ctx *c) {
    const double s = sqrt(2.0 / M_PI);
    for (size_t i = 0; i < c->n; i++) {
        double x = c->inp[i];
        c->out[i] = 0.5 * x * (1.0 + tanh(s * (x + 0.044715 * x * x * x)));
    }
}
static double gelu_loss(void *p) {
    gelu_ctx *c = p;
    gelu_fwd_d(c);
    return dot_r(c->out, c->R, c->n);
}

static void check_gelu(const lmf_kernels *k, size_t n) {
    lmf_test_rng_seed(55);
    float *inp = lmf_test_fbuf(n, 5), *R = lmf_test_fbuf(n, 1), *out = lmf_test_fbuf(n, 1);
    if (n > 3) {
        inp[0] = 0.0f;
        inp[1] = -12.0f; /* saturated tails */
        inp[2] = 12.0f;
    }
    gelu_ctx c = {n, dcopy(inp, n), malloc(n * sizeof(double)), R};
    k->gelu_forward(out, inp, n);
    gelu_fwd_d(&c);
    fwd_check("gelu forward", out, c.out, n);
    float *d0 = lmf_test_fbuf(n, 1), *d = lmf_test_fdup(d0, n);
    k->gelu_backward(d, inp, R, n);
    fd_check("gelu dinp", gelu_loss, &c, c.inp, n, d, NULL); /* written over d0 */
    free(inp); free(R); free(out); free(c.inp); free(c.out); free(d0); free(d);
}

static void test_gelu(void **state) {
    (void)state;
    for (int i = 0; i < 2; i++) {
        check_gelu(tables[i], 1);
        check_gelu(tables[i], 37);
        check_gelu(tables[i], 1031);
    }
}

/* ---------- fused kernels ---------- */

/* residual + LayerNorm (forward only): res = a + b and LayerNorm(res) against double, in
 * separate buffers and in place (res == a, res == b) */
static void check_residual_layernorm(const lmf_kernels *k, int N, int C) {
    lmf_test_rng_seed(111 + (uint64_t)N * 7 + (uint64_t)C);
    size_t n = (size_t)N * C;
    float *a = lmf_test_fbuf(n, 1.5f), *b = lmf_test_fbuf(n, 1.5f), *w = lmf_test_fbuf(C, 1.5f), *bias = lmf_test_fbuf(C, 1);
    for (size_t i = 0; i < n; i++) b[i] += 0.5f; /* a non-zero mean */
    ln_ctx c = {N, C, malloc(n * sizeof(double)), dcopy(w, C), dcopy(bias, C),
                malloc(n * sizeof(double)), malloc(N * sizeof(double)), malloc(N * sizeof(double)),
                NULL};
    for (size_t i = 0; i < n; i++) c.inp[i] = (double)a[i] + (double)b[i];
    ln_fwd_d(&c);
    for (int mode = 0; mode < 3; mode++) { /* 0: res separate, 1: res == a, 2: res == b */
        float *ac = lmf_test_fdup(a, n), *bc = lmf_test_fdup(b, n), *sep = lmf_test_fbuf(n, 9);
        float *res = mode == 0 ? sep : mode == 1 ? ac : bc;
        float *out = lmf_test_fbuf(n, 9), *mean = lmf_test_fbuf(N, 9), *rstd = lmf_test_fbuf(N, 9);
        k->residual_layernorm_forward(res, out, mean, rstd, ac, bc, w, bias, N, C);
        fwd_check("residual_layernorm res", res, c.inp, n);
        fwd_check("residual_layernorm out", out, c.out, n);
        fwd_check("residual_layernorm mean", mean, c.mean, N);
        fwd_check("residual_layernorm rstd", rstd, c.rstd, N);
        free(ac); free(bc); free(sep); free(out); free(mean); free(rstd);
    }
    free(a); free(b); free(w); free(bias);
    free(c.inp); free(c.w); free(c.b); free(c.out); free(c.mean); free(c.rstd);
}

static void test_residual_layernorm(void **state) {
    (void)state;
    for (int i = 0; i < 2; i++) {
        check_residual_layernorm(tables[i], 1, 1);
        check_residual_layernorm(tables[i], 1, 5);
        check_residual_layernorm(tables[i], 7, 13);
        check_residual_layernorm(tables[i], 4, 40);
    }
}

/* matmul + bias + GELU (forward only): pre and out against double */
static void check_matmul_gelu(const lmf_kernels *k, int N, int C, int OC, int with_bias) {
    lmf_test_rng_seed(122 + (uint64_t)N * 5 + (uint64_t)OC);
    size_t ni = (size_t)N * C, nw = (size_t)C * OC, no = (size_t)N * OC;
    float *inp = lmf_test_fbuf(ni, 1), *w = lmf_test_fbuf(nw, 1), *b = lmf_test_fbuf(OC, 1);
    mm_ctx c = {N, C, OC, with_bias, dcopy(inp, ni), dcopy(w, nw), dcopy(b, OC),
                malloc(no * sizeof(double)), NULL};
    mm_fwd_d(&c);
    gelu_ctx g = {no, c.out, malloc(no * sizeof(double)), NULL};
    gelu_fwd_d(&g);
    float *pre = lmf_test_fbuf(no, 9), *out = lmf_test_fbuf(no, 9);
    k->matmul_gelu_forward(pre, out, inp, w, with_bias ? b : NULL, N, C, OC);
    fwd_check("matmul_gelu pre", pre, c.out, no);
    fwd_check("matmul_gelu out", out, g.out, no);
    free(inp); free(w); free(b); free(c.inp); free(c.w); free(c.b); free(c.out); free(g.out);
    free(pre); free(out);
}

static void test_matmul_gelu(void **state) {
    (void)state;
    for (int i = 0; i < 2; i++) {
        check_matmul_gelu(tables[i], 1, 1, 1, 1);
        check_matmul_gelu(tables[i], 5, 13, 7, 1);
        check_matmul_gelu(tables[i], 9, 6, 20, 0);
    }
}

/* GELU backward + bias gradient. The double loss is sum_nj gelu(inp[n,j] + bias[j]) R[n,j]
 * at bias = 0: its derivative in inp is the written dinp, in bias the accumulated dbias. */
typedef struct gb_ctx {
    int N, OC;
    double *inp, *bias;
    const float *R;
} gb_ctx;

static double gb_loss(void *p) {
    gb_ctx *c = p;
    const double s = sqrt(2.0 / M_PI);
    double L = 0.0;
    for (int n = 0; n < c->N; n++)
        for (int j = 0; j < c->OC; j++) {
            double x = c->inp[(size_t)n * c->OC + j] + c->bias[j];
            L += 0.5 * x * (1.0 + tanh(s * (x + 0.044715 * x * x * x))) * c->R[(size_t)n * c->OC + j];
        }
    return L;
}

/* in_place: dinp == dout (the model's use); with_bias = 0 passes dbias = NULL */
static void check_gelu_bias_backward(const lmf_kernels *k, int N, int OC, int in_place,
                                     int with_bias) {
    lmf_test_rng_seed(133 + (uint64_t)N * 3 + (uint64_t)OC);
    size_t n = (size_t)N * OC;
    float *inp = lmf_test_fbuf(n, 4), *R = lmf_test_fbuf(n, 1);
    if (n > 3) {
        inp[0] = 0.0f;
        inp[1] = -12.0f;
        inp[2] = 12.0f;
    }
    double *bz = calloc((size_t)OC, sizeof(double));
    gb_ctx c = {N, OC, dcopy(inp, n), bz, R};
    float *db0 = lmf_test_fbuf(OC, 1), *db = lmf_test_fdup(db0, OC);
    float *dinp = in_place ? lmf_test_fdup(R, n) : lmf_test_fbuf(n, 777);
    const float *dout = in_place ? dinp : R;
    k->gelu_bias_backward(dinp, with_bias ? db : NULL, inp, dout, N, OC);
    fd_check("gelu_bias_backward dinp", gb_loss, &c, c.inp, n, dinp, NULL);
    if (with_bias) fd_check("gelu_bias_backward dbias", gb_loss, &c, c.bias, OC, db, db0);
    else assert_memory_equal(db, db0, OC * sizeof(float));
    free(inp); free(R); free(bz); free(c.inp); free(db0); free(db); free(dinp);
}

static void test_gelu_bias_backward(void **state) {
    (void)state;
    for (int i = 0; i < 2; i++) {
        check_gelu_bias_backward(tables[i], 1, 1, 0, 1);
        check_gelu_bias_backward(tables[i], 3, 5, 1, 1);
        check_gelu_bias_backward(tables[i], 7, 19, 0, 1);
        check_gelu_bias_backward(tables[i], 4, 24, 1, 0);
    }
}

/* ---------- residual, sumsq, adamw (forward only: checked against double) ---------- */

static void test_residual_sumsq(void **state) {
    (void)state;
    for (int k = 0; k < 2; k++) {
        for (size_t n = 1; n < 100; n += 13) {
            lmf_test_rng_seed(66 + n);
            float *a = lmf_test_fbuf(n, 3), *b = lmf_test_fbuf(n, 3), *out = lmf_test_fbuf(n, 1);
            double *d = malloc(n * sizeof *d);
            tables[k]->residual_forward(out, a, b, n);
            for (size_t i = 0; i < n; i++) d[i] = (double)a[i] + (double)b[i];
            fwd_check("residual", out, d, n);
            tables[k]->residual_forward(a, a, b, n); /* in place */
            assert_memory_equal(a, out, n * sizeof(float));
            double s = 0;
            for (size_t i = 0; i < n; i++) s += (double)b[i] * b[i];
            /* float squares are exact in double; only the summation order differs */
            assert_true(fabs(tables[k]->sumsq(b, n) - s) <= 1e-12 * s);
            free(a); free(b); free(out); free(d);
        }
        assert_true(tables[k]->sumsq(NULL, 0) == 0.0);
    }
}

/* AdamW over 3 steps against the formula in double, with a gradient scale (the folded-in
 * averaging and clipping) and the gradient zeroed by the same pass. Tolerance 1e-5 relative:
 * each step is a handful of float operations on O(1) values (powf vs pow in the corrections). */
static void test_adamw(void **state) {
    (void)state;
    for (int k = 0; k < 2; k++) {
        size_t n = 45;
        lmf_test_rng_seed(77);
        float *p = lmf_test_fbuf(n, 1), *m = lmf_test_fbuf(n, 0), *v = lmf_test_fbuf(n, 0);
        for (size_t i = 0; i < n; i++) m[i] = v[i] = 0.0f;
        double *pd = dcopy(p, n), *md = dcopy(m, n), *vd = dcopy(v, n);
        const double lr = 1e-2, b1 = 0.9, b2 = 0.95, eps = 1e-8, wd = 0.1;
        for (int t = 1; t <= 3; t++) {
            float *g = lmf_test_fbuf(n, 2);
            g[0] = 0.0f;
            double *gd = dcopy(g, n);
            const double gs = t == 2 ? 0.375 : 1.0; /* exact in float */
            tables[k]->adamw(p, g, m, v, n, (float)lr, (float)b1, (float)b2, (float)eps, (float)wd,
                             (float)gs, t);
            for (size_t i = 0; i < n; i++) assert_true(g[i] == 0.0f); /* zeroed in the pass */
            for (size_t i = 0; i < n; i++) {
                double gi = gd[i] * gs;
                md[i] = b1 * md[i] + (1 - b1) * gi;
                vd[i] = b2 * vd[i] + (1 - b2) * gi * gi;
                double mh = md[i] / (1 - pow(b1, t)), vh = vd[i] / (1 - pow(b2, t));
                pd[i] -= lr * (mh / (sqrt(vh) + eps) + wd * pd[i]);
            }
            fwd_check("adamw param", p, pd, n);
            fwd_check("adamw m", m, md, n);
            fwd_check("adamw v", v, vd, n);
            free(g);
            free(gd);
        }
        free(p); free(m); free(v); free(pd); free(md); free(vd);
    }
}

/* ---------- classifier ---------- */

typedef struct cls_ctx {
    int N, C, V;
    double *x, *wte, *losses;
    const int32_t *tg;
    double dloss;
} cls_ctx;

static void cls_fwd_d(cls_ctx *c) {
    double *lg = malloc((size_t)c->V * sizeof *lg);
    for (int n = 0; n < c->N; n++) {
        double mx = -INFINITY, s = 0;
        for (int v = 0; v < c->V; v++) {
            double z = 0;
            for (int i = 0; i < c->C; i++) z += c->x[(size_t)n * c->C + i] * c->wte[(size_t)v * c->C + i];
            lg[v] = z;
            if (z > mx) mx = z;
        }
        for (int v = 0; v < c->V; v++) s += exp(lg[v] - mx);
        c->losses[n] = log(s) + mx - lg[c->tg[n]];
    }
    free(lg);
}
static double cls_loss(void *p) {
    cls_ctx *c = p;
    cls_fwd_d(c);
    double s = 0;
    for (int n = 0; n < c->N; n++) s += c->losses[n];
    return c->dloss * s;
}

/* wte has Vp rows; rows V.. hold NaN so any read of a padded row poisons the result, and
 * dwte's padded rows must come back bit-for-bit unchanged. */
static void check_classifier(const lmf_kernels *k, int N, int C, int V, int Vp, float dloss) {
    lmf_test_rng_seed(88);
    size_t nx = (size_t)N * C, nw = (size_t)Vp * C;
    float *x = lmf_test_fbuf(nx, 1.5f), *wte = lmf_test_fbuf(nw, 1.5f);
    for (size_t i = (size_t)V * C; i < nw; i++) wte[i] = NAN;
    int32_t *tg = malloc((size_t)N * sizeof *tg);
    for (int n = 0; n < N; n++) tg[n] = (int32_t)(lmf_test_uniform() * V) % V;
    tg[0] = V - 1; /* the last real row */
    float *losses = lmf_test_fbuf(N, 1), *scratch = lmf_test_fbuf(k->classifier_scratch_floats(N, V), 1);
    cls_ctx c = {N, C, V, dcopy(x, nx), dcopy(wte, (size_t)V * C), malloc(N * sizeof(double)),
                 tg, dloss};

    /* forward only: dx NULL, dwte untouched */
    k->classifier(losses, NULL, NULL, scratch, x, wte, tg, dloss, N, C, V);
    cls_fwd_d(&c);
    fwd_check("classifier losses (forward only)", losses, c.losses, N);

    float *dx = lmf_test_fbuf(nx, 1), *dw0 = lmf_test_fbuf(nw, 1), *dw = lmf_test_fdup(dw0, nw);
    for (size_t i = 0; i < nx; i++) dx[i] = 777.0f; /* dx is written, not accumulated */
    for (int n = 0; n < N; n++) losses[n] = -1.0f;
    k->classifier(losses, dx, dw, scratch, x, wte, tg, dloss, N, C, V);
    fwd_check("classifier losses", losses, c.losses, N);
    fd_check("classifier dx", cls_loss, &c, c.x, nx, dx, NULL);
    fd_check("classifier dwte", cls_loss, &c, c.wte, (size_t)V * C, dw, dw0);
    assert_memory_equal(dw + (size_t)V * C, dw0 + (size_t)V * C, (nw - (size_t)V * C) * sizeof(float));
    free(x); free(wte); free(tg); free(losses); free(scratch); free(c.x); free(c.wte);
    free(c.losses); free(dx); free(dw0); free(dw);
}

static void test_classifier(void **state) {
    (void)state;
    for (int i = 0; i < 2; i++) {
        check_classifier(tables[i], 6, 13, 37, 64, 1.0f);
        check_classifier(tables[i], 1, 5, 3, 64, 0.25f);
        check_classifier(tables[i], 11, 8, 70, 128, 1.0f / 11);
    }
}

/* Large logits must not overflow: the stable softmax gives finite losses near the exact
 * value. x . wte ~ 1e3 here, where a naive exp() overflows float. */
static void test_classifier_large_logits(void **state) {
    (void)state;
    for (int k = 0; k < 2; k++) {
        int N = 3, C = 4, V = 5;
        lmf_test_rng_seed(99);
        float *x = lmf_test_fbuf((size_t)N * C, 20), *wte = lmf_test_fbuf((size_t)V * C, 20);
        int32_t tg[3] = {0, 2, 4};
        float losses[3], *scratch = lmf_test_fbuf(tables[k]->classifier_scratch_floats(N, V), 1);
        float *dx = lmf_test_fbuf((size_t)N * C, 1), *dw = lmf_test_fbuf((size_t)V * C, 0);
        tables[k]->classifier(losses, dx, dw, scratch, x, wte, tg, 1.0f, N, C, V);
        cls_ctx c = {N, C, V, dcopy(x, (size_t)N * C), dcopy(wte, (size_t)V * C),
                     malloc(N * sizeof(double)), tg, 1.0};
        cls_fwd_d(&c);
        for (int n = 0; n < N; n++) {
            assert_true(isfinite(losses[n]));
            assert_true(fabs(losses[n] - c.losses[n]) <= 1e-4 * fmax(1.0, fabs(c.losses[n])));
        }
        for (int i = 0; i < N * C; i++) assert_true(isfinite(dx[i]));
        free(x); free(wte); free(scratch); free(dx); free(dw); free(c.x); free(c.wte);
        free(c.losses);
    }
}

/* ---------- the Llama family: RMSNorm, rotary embedding, SwiGLU, grouped-query attention ---------- */

typedef struct rms_ctx {
    int N, C;
    double eps;
    double *inp, *w, *out, *rstd;
    const float *R;
} rms_ctx;

static void rms_fwd_d(rms_ctx *c) {
    for (int n = 0; n < c->N; n++) {
        const double *x = c->inp + (size_t)n * c->C;
        double ss = 0;
        for (int i = 0; i < c->C; i++) ss += x[i] * x[i];
        double r = 1.0 / sqrt(ss / c->C + c->eps);
        for (int i = 0; i < c->C; i++) c->out[(size_t)n * c->C + i] = x[i] * r * c->w[i];
        c->rstd[n] = r;
    }
}
static double rms_loss(void *p) {
    rms_ctx *c = p;
    rms_fwd_d(c);
    return dot_r(c->out, c->R, (size_t)c->N * c->C);
}

/* amp: input spread; a small one (mean square near eps) makes the eps term matter */
static void check_rmsnorm(const lmf_kernels *k, int N, int C, float amp, float eps) {
    lmf_test_rng_seed(23);
    size_t n = (size_t)N * C;
    float *inp = lmf_test_fbuf(n, amp), *w = lmf_test_fbuf(C, 1.5f), *R = lmf_test_fbuf(n, 1);
    float *out = lmf_test_fbuf(n, 1), *rstd = lmf_test_fbuf(N, 1);
    rms_ctx c = {N, C, eps, dcopy(inp, n), dcopy(w, C), malloc(n * sizeof(double)),
                 malloc(N * sizeof(double)), R};
    k->rmsnorm_forward(out, rstd, inp, w, eps, N, C);
    rms_fwd_d(&c);
    fwd_check("rmsnorm out", out, c.out, n);
    fwd_check("rmsnorm rstd", rstd, c.rstd, N);
    float *dinp0 = lmf_test_fbuf(n, 1), *dw0 = lmf_test_fbuf(C, 1);
    float *dinp = lmf_test_fdup(dinp0, n), *dw = lmf_test_fdup(dw0, C);
    k->rmsnorm_backward(dinp, dw, R, inp, w, rstd, N, C);
    fd_check("rmsnorm dinp", rms_loss, &c, c.inp, n, dinp, dinp0); /* accumulated */
    fd_check("rmsnorm dweight", rms_loss, &c, c.w, C, dw, dw0);
    free(inp); free(w); free(R); free(out); free(rstd); free(c.inp); free(c.w); free(c.out);
    free(c.rstd); free(dinp0); free(dw0); free(dinp); free(dw);
}

static void test_rmsnorm(void **state) {
    (void)state;
    for (int i = 0; i < 2; i++) {
        check_rmsnorm(tables[i], 7, 13, 2.0f, 1e-5f);
        check_rmsnorm(tables[i], 1, 3, 2.0f, 1e-6f);
        check_rmsnorm(tables[i], 5, 40, 2.0f, 1e-5f);
        check_rmsnorm(tables[i], 3, 19, 0.01f, 1e-4f);
    }
}

/* Rotary embedding, written from the definition in double: for i < hs/2 the pair
 * (x[i], x[i+hs/2]) is rotated by (pos0+t) * theta^(-2i/hs). */
typedef struct rope_ctx {
    int B, T, NH, NKV, hs, pos0;
    double theta;
    double *q, *k, *oq, *ok;
    const float *Rq, *Rk;
} rope_ctx;

static void rope_d(double *out, const double *x, int B, int T, int H, int hs, int pos0,
                   double theta) {
    int half = hs / 2;
    for (int bt = 0; bt < B * T; bt++)
        for (int h = 0; h < H; h++)
            for (int i = 0; i < half; i++) {
                double a = (pos0 + bt % T) * pow(theta, -2.0 * i / hs);
                size_t o = ((size_t)bt * H + h) * hs;
                out[o + i] = x[o + i] * cos(a) - x[o + i + half] * sin(a);
                out[o + i + half] = x[o + i + half] * cos(a) + x[o + i] * sin(a);
            }
}
static double rope_loss(void *p) {
    rope_ctx *c = p;
    rope_d(c->oq, c->q, c->B, c->T, c->NH, c->hs, c->pos0, c->theta);
    rope_d(c->ok, c->k, c->B, c->T, c->NKV, c->hs, c->pos0, c->theta);
    size_t nq = (size_t)c->B * c->T * c->NH * c->hs, nk = (size_t)c->B * c->T * c->NKV * c->hs;
    return dot_r(c->oq, c->Rq, nq) + dot_r(c->ok, c->Rk, nk);
}

static void check_rope(const lmf_kernels *k, int B, int T, int NH, int NKV, int hs, int pos0,
                       float theta) {
    lmf_test_rng_seed(66);
    size_t nq = (size_t)B * T * NH * hs, nk = (size_t)B * T * NKV * hs;
    float *q = lmf_test_fbuf(nq, 1), *kk = lmf_test_fbuf(nk, 1);
    float *Rq = lmf_test_fbuf(nq, 1), *Rk = lmf_test_fbuf(nk, 1);
    rope_ctx c = {B, T, NH, NKV, hs, pos0, theta, dcopy(q, nq), dcopy(kk, nk),
                  malloc(nq * sizeof(double)), malloc(nk * sizeof(double)), Rq, Rk};
    rope_loss(&c);
    k->rope_forward(q, kk, B, T, NH, NKV, hs, pos0, theta);
    fwd_check("rope q", q, c.oq, nq);
    fwd_check("rope k", kk, c.ok, nk);
    float *dq = lmf_test_fdup(Rq, nq), *dk = lmf_test_fdup(Rk, nk);
    k->rope_backward(dq, dk, B, T, NH, NKV, hs, pos0, theta);
    fd_check("rope dq", rope_loss, &c, c.q, nq, dq, NULL);
    fd_check("rope dk", rope_loss, &c, c.k, nk, dk, NULL);
    /* queries alone (k NULL) give the same queries */
    float *q2 = lmf_test_fbuf(nq, 1);
    for (size_t i = 0; i < nq; i++) q2[i] = (float)c.q[i];
    k->rope_forward(q2, NULL, B, T, NH, NKV, hs, pos0, theta);
    assert_memory_equal(q2, q, nq * sizeof(float));
    free(q); free(kk); free(Rq); free(Rk); free(c.q); free(c.k); free(c.oq); free(c.ok);
    free(dq); free(dk); free(q2);
}

static void test_rope(void **state) {
    (void)state;
    for (int i = 0; i < 2; i++) {
        check_rope(tables[i], 2, 5, 4, 2, 8, 0, 10000.0f);
        check_rope(tables[i], 1, 3, 2, 1, 2, 7, 10000.0f);
        check_rope(tables[i], 1, 4, 3, 3, 6, 100, 500000.0f);
        check_rope(tables[i], 2, 2, 2, 1, 200, 3, 10000.0f); /* more than one chunk of angles */
    }
}

typedef struct swiglu_ctx {
    size_t n;
    double *gate, *up, *out;
    const float *R;
} swiglu_ctx;

static double swiglu_loss(void *p) {
    swiglu_ctx *c = p;
    for (size_t i = 0; i < c->n; i++) c->out[i] = c->gate[i] / (1.0 + exp(-c->gate[i])) * c->up[i];
    return dot_r(c->out, c->R, c->n);
}

static void check_swiglu(const lmf_kernels *k, size_t n) {
    lmf_test_rng_seed(77);
    float *g = lmf_test_fbuf(n, 4), *u = lmf_test_fbuf(n, 2), *R = lmf_test_fbuf(n, 1);
    float *out = lmf_test_fbuf(n, 1);
    if (n > 3) {
        g[0] = 0.0f;
        g[1] = -30.0f; /* saturated tails */
        g[2] = 30.0f;
    }
    swiglu_ctx c = {n, dcopy(g, n), dcopy(u, n), malloc(n * sizeof(double)), R};
    k->swiglu_forward(out, g, u, n);
    swiglu_loss(&c);
    fwd_check("swiglu forward", out, c.out, n);
    float *dg0 = lmf_test_fbuf(n, 1), *dg = lmf_test_fdup(dg0, n), *du = lmf_test_fdup(dg0, n);
    k->swiglu_backward(dg, du, R, g, u, n);
    fd_check("swiglu dgate", swiglu_loss, &c, c.gate, n, dg, NULL); /* written */
    fd_check("swiglu dup", swiglu_loss, &c, c.up, n, du, NULL);
    /* dgate may be dout */
    float *d = lmf_test_fdup(R, n);
    k->swiglu_backward(d, du, d, g, u, n);
    assert_memory_equal(d, dg, n * sizeof(float));
    free(g); free(u); free(R); free(out); free(c.gate); free(c.up); free(c.out); free(dg0);
    free(dg); free(du); free(d);
}

static void test_swiglu(void **state) {
    (void)state;
    for (int i = 0; i < 2; i++) {
        check_swiglu(tables[i], 1);
        check_swiglu(tables[i], 13);
        check_swiglu(tables[i], 64);
    }
}

/* Grouped-query attention in double, from the definition: query head h of row t attends over
 * keys and values of head h / (NH/NKV) at rows u <= t. */
typedef struct gqa_ctx {
    int B, T, NH, NKV, hs;
    double *q, *k, *v, *out, *lse;
    const float *R;
    const int *ds; /* document starts [B,T], or NULL */
} gqa_ctx;

static void gqa_fwd_d(gqa_ctx *c) {
    int T = c->T, hs = c->hs, G = c->NH / c->NKV;
    size_t qs = (size_t)c->NH * hs, ks = (size_t)c->NKV * hs;
    double scale = 1.0 / sqrt((double)hs), *a = malloc((size_t)T * sizeof *a);
    for (int b = 0; b < c->B; b++)
        for (int h = 0; h < c->NH; h++)
            for (int t = 0; t < T; t++) {
                const double *q = c->q + ((size_t)b * T + t) * qs + (size_t)h * hs;
                double mx = -INFINITY, sum = 0;
                int s0 = key0(c->ds, T, b, t);
                for (int u = s0; u <= t; u++) {
                    const double *kk = c->k + ((size_t)b * T + u) * ks + (size_t)(h / G) * hs;
                    double s = 0;
                    for (int i = 0; i < hs; i++) s += q[i] * kk[i];
                    a[u] = s * scale;
                    if (a[u] > mx) mx = a[u];
                }
                for (int u = s0; u <= t; u++) sum += (a[u] = exp(a[u] - mx));
                c->lse[((size_t)b * c->NH + h) * T + t] = mx + log(sum);
                for (int i = 0; i < hs; i++) {
                    double s = 0;
                    for (int u = s0; u <= t; u++)
                        s += a[u] / sum * c->v[((size_t)b * T + u) * ks + (size_t)(h / G) * hs + i];
                    c->out[((size_t)b * T + t) * qs + (size_t)h * hs + i] = s;
                }
            }
    free(a);
}
static double gqa_loss(void *p) {
    gqa_ctx *c = p;
    gqa_fwd_d(c);
    return dot_r(c->out, c->R, (size_t)c->B * c->T * c->NH * c->hs);
}

static void check_gqa(const lmf_kernels *k, int B, int T, int NH, int NKV, int hs,
                      const int *ds) {
    lmf_test_rng_seed(88);
    size_t nq = (size_t)B * T * NH * hs, nk = (size_t)B * T * NKV * hs;
    size_t ns = k->attention_saved_floats(B, T, NH), nlse = (size_t)B * NH * T;
    float *q = lmf_test_fbuf(nq, 1.5f), *kk = lmf_test_fbuf(nk, 1.5f), *v = lmf_test_fbuf(nk, 1);
    float *R = lmf_test_fbuf(nq, 1), *out = lmf_test_fbuf(nq, 1), *saved = lmf_test_fbuf(ns, 1);
    float *scratch = lmf_test_fbuf(k->gqa_attention_scratch_floats(B, T, NH, NKV), 1);
    gqa_ctx c = {B, T, NH, NKV, hs, dcopy(q, nq), dcopy(kk, nk), dcopy(v, nk),
                 malloc(nq * sizeof(double)), malloc(nlse * sizeof(double)), R, ds};
    k->gqa_attention_forward(out, saved, q, kk, v, ds, B, T, NH, NKV, hs);
    gqa_fwd_d(&c);
    fwd_check("gqa attention out", out, c.out, nq);
    if (k != lmf_kernels_ref()) fwd_check("gqa attention log-sum-exp", saved, c.lse, nlse);
    float *dq = lmf_test_fbuf(nq, 1), *dk = lmf_test_fbuf(nk, 1), *dv = lmf_test_fbuf(nk, 1);
    k->gqa_attention_backward(dq, dk, dv, scratch, R, q, kk, v, saved, ds, B, T, NH, NKV, hs);
    fd_check("gqa attention dq", gqa_loss, &c, c.q, nq, dq, NULL); /* all written */
    fd_check("gqa attention dk", gqa_loss, &c, c.k, nk, dk, NULL);
    fd_check("gqa attention dv", gqa_loss, &c, c.v, nk, dv, NULL);
    /* the cached form: positions past.. of one sequence against a cache of its keys and
     * values give the rows of the full forward (recomputed: the last difference left c.out
     * perturbed; the cache never masks) */
    c.ds = NULL;
    gqa_fwd_d(&c);
    int past = T / 2, n = T - past;
    size_t qs = (size_t)NH * hs;
    float *o2 = lmf_test_fbuf((size_t)n * qs, 1);
    float *kvs = lmf_test_fbuf(k->attention_kv_scratch_floats(T), 1);
    k->gqa_attention_kv_forward(o2, kvs, q + (size_t)past * qs, kk, v, past, n, NH, NKV, hs);
    fwd_check("gqa attention cached", o2, c.out + (size_t)past * qs, (size_t)n * qs);
    free(q); free(kk); free(v); free(R); free(out); free(saved); free(scratch); free(c.q);
    free(c.k); free(c.v); free(c.out); free(c.lse); free(dq); free(dk); free(dv); free(o2);
    free(kvs);
}

static void test_gqa_attention(void **state) {
    (void)state;
    for (int i = 0; i < 2; i++) {
        check_gqa(tables[i], 2, 5, 4, 1, 3, NULL);  /* one key/value head (multi-query) */
        check_gqa(tables[i], 2, 5, 4, 4, 3, NULL);  /* as many as query heads (multi-head) */
        check_gqa(tables[i], 2, 6, 6, 2, 4, NULL);  /* groups of three */
        check_gqa(tables[i], 1, 1, 2, 1, 2, NULL);
        check_gqa(tables[i], 1, 70, 4, 2, 2, NULL); /* crosses the fast table's 64-row block */
    }
    /* document masking (as test_attention_doc_mask) */
    const int e1[] = {0, 2, 3}, e2[] = {5, 30, 63, 64};
    int *d1 = lmf_test_doc_starts(2, 6, e1, 3), *d2 = lmf_test_doc_starts(1, 70, e2, 4);
    for (int i = 0; i < 2; i++) {
        check_gqa(tables[i], 2, 6, 6, 2, 4, d1);
        check_gqa(tables[i], 1, 70, 4, 2, 2, d2);
    }
    free(d1); free(d2);
}

/* the token embedding alone (no position embedding, as the Llama family has) */
static void test_encoder_without_positions(void **state) {
    (void)state;
    for (int i = 0; i < 2; i++) {
        const lmf_kernels *k = tables[i];
        int B = 2, T = 3, C = 13, Vp = 5;
        int32_t inp[6] = {4, 0, 2, 2, 1, 4};
        float *wte = lmf_test_fbuf((size_t)Vp * C, 1), *out = lmf_test_fbuf((size_t)B * T * C, 1);
        float *d = lmf_test_fbuf((size_t)B * T * C, 1), *dw0 = lmf_test_fbuf((size_t)Vp * C, 1);
        float *dw = lmf_test_fdup(dw0, (size_t)Vp * C);
        k->encoder_forward(out, inp, wte, NULL, B, T, C);
        assert_memory_equal(out + 2 * C, wte + 2 * C, C * sizeof(float));
        for (int bt = 0; bt < B * T; bt++)
            assert_memory_equal(out + (size_t)bt * C, wte + (size_t)inp[bt] * C, C * sizeof(float));
        k->encoder_backward(dw, NULL, d, inp, B, T, C);
        for (int c = 0; c < C; c++) { /* row 4 appears at positions 0 and 5; row 3 nowhere */
            assert_float_equal(dw[4 * C + c], dw0[4 * C + c] + d[c] + d[5 * C + c], 1e-6);
            assert_float_equal(dw[3 * C + c], dw0[3 * C + c], 0);
        }
        free(wte); free(out); free(d); free(dw0); free(dw);
    }
}

/* ---------- vocabulary-parallel embedding and cross-entropy ---------- */

/* One rank's part of the embedding: rows [vbegin, vbegin+Vr) of wte; ids outside give zero. */
typedef struct encvp_ctx {
    int B, T, C, vbegin, Vr;
    const int32_t *inp;
    double *wte_part, *wpe, *out; /* wpe may be NULL */
    const float *R;
} encvp_ctx;

static void encvp_fwd_d(encvp_ctx *c) {
    for (int bt = 0; bt < c->B * c->T; bt++) {
        int row = c->inp[bt] - c->vbegin, t = bt % c->T;
        for (int i = 0; i < c->C; i++) {
            double e = row >= 0 && row < c->Vr ? c->wte_part[(size_t)row * c->C + i] : 0.0;
            c->out[(size_t)bt * c->C + i] = e + (c->wpe ? c->wpe[(size_t)t * c->C + i] : 0.0);
        }
    }
}
static double encvp_loss(void *p) {
    encvp_ctx *c = p;
    encvp_fwd_d(c);
    return dot_r(c->out, c->R, (size_t)c->B * c->T * c->C);
}

/* wte_part has a NaN row after its Vr rows (reading past the part poisons out) and dwte_part
 * an extra row that must come back unchanged */
static void check_encoder_vp(const lmf_kernels *k, int B, int T, int C, int Vp, int vbegin,
                             int Vr, int with_wpe) {
    lmf_test_rng_seed(12);
    size_t nout = (size_t)B * T * C, np = (size_t)(Vr + 1) * C;
    int32_t *inp = malloc((size_t)B * T * sizeof *inp);
    for (int i = 0; i < B * T; i++) inp[i] = (int32_t)(lmf_test_uniform() * Vp) % Vp;
    if (Vr > 0) inp[0] = inp[B * T - 1] = vbegin + Vr - 1; /* this part's last row, twice */
    float *part = lmf_test_fbuf(np, 1), *wpe = with_wpe ? lmf_test_fbuf((size_t)T * C, 1) : NULL;
    for (int i = 0; i < C; i++) part[(size_t)Vr * C + i] = NAN;
    float *R = lmf_test_fbuf(nout, 1), *out = lmf_test_fbuf(nout, 1);
    encvp_ctx c = {B, T, C, vbegin, Vr, inp, dcopy(part, np), wpe ? dcopy(wpe, (size_t)T * C) : NULL,
                   malloc(nout * sizeof(double)), R};
    for (size_t i = 0; i < nout; i++) out[i] = 777.0f; /* written */
    k->encoder_vp_forward(out, inp, part, wpe, vbegin, Vr, B, T, C);
    encvp_fwd_d(&c);
    fwd_check("encoder_vp forward", out, c.out, nout);

    float *dp0 = lmf_test_fbuf(np, 1), *dp = lmf_test_fdup(dp0, np);
    float *dwpe0 = lmf_test_fbuf((size_t)T * C, 1), *dwpe = lmf_test_fdup(dwpe0, (size_t)T * C);
    k->encoder_vp_backward(dp, with_wpe ? dwpe : NULL, R, inp, vbegin, Vr, B, T, C);
    if (Vr > 0) fd_check("encoder_vp dwte_part", encvp_loss, &c, c.wte_part, (size_t)Vr * C, dp, dp0);
    assert_memory_equal(dp + (size_t)Vr * C, dp0 + (size_t)Vr * C, C * sizeof(float));
    if (with_wpe) fd_check("encoder_vp dwpe", encvp_loss, &c, c.wpe, (size_t)T * C, dwpe, dwpe0);
    else assert_memory_equal(dwpe, dwpe0, (size_t)T * C * sizeof(float));
    free(inp); free(part); free(wpe); free(R); free(out); free(c.wte_part); free(c.wpe);
    free(c.out); free(dp0); free(dp); free(dwpe0); free(dwpe);
}

static void test_encoder_vp(void **state) {
    (void)state;
    for (int i = 0; i < 2; i++) {
        check_encoder_vp(tables[i], 2, 3, 13, 11, 0, 5, 1);
        check_encoder_vp(tables[i], 3, 7, 45, 64, 21, 17, 1); /* ids on both sides */
        check_encoder_vp(tables[i], 3, 7, 45, 64, 21, 17, 0);
        check_encoder_vp(tables[i], 2, 5, 9, 20, 20, 0, 1);   /* an empty part */
    }
}

/* The loss over the whole vocabulary [0, V), held by `ranks` parts: part r is rows
 * [vb[r], vb[r]+vr[r]) as w[r], and reads its own copy x[r] of the input, so the finite
 * difference in x[r] is the partial dx that rank r's backward writes. */
#define VP_MAX_RANKS 4
typedef struct clsvp_ctx {
    int N, C, ranks, vb[VP_MAX_RANKS], vr[VP_MAX_RANKS];
    double *x[VP_MAX_RANKS], *w[VP_MAX_RANKS], *losses, *lse;
    double *stats; /* [ranks][N][3], as the kernel defines them */
    const int32_t *tg;
    double dloss;
} clsvp_ctx;

static void clsvp_fwd_d(clsvp_ctx *c) {
    for (int n = 0; n < c->N; n++) {
        double mx = -INFINITY, zt = NAN;
        for (int r = 0; r < c->ranks; r++) {
            double *st = c->stats + ((size_t)r * c->N + n) * 3;
            st[0] = -INFINITY, st[1] = 0.0, st[2] = 0.0;
            for (int v = 0; v < c->vr[r]; v++) {
                double z = 0;
                for (int i = 0; i < c->C; i++)
                    z += c->x[r][(size_t)n * c->C + i] * c->w[r][(size_t)v * c->C + i];
                st[0] = fmax(st[0], z);
            }
            for (int v = 0; v < c->vr[r]; v++) {
                double z = 0;
                for (int i = 0; i < c->C; i++)
                    z += c->x[r][(size_t)n * c->C + i] * c->w[r][(size_t)v * c->C + i];
                st[1] += exp(z - st[0]);
                if (c->vb[r] + v == c->tg[n]) st[2] = zt = z;
            }
            mx = fmax(mx, st[0]);
        }
        double s = 0;
        for (int r = 0; r < c->ranks; r++) {
            double *st = c->stats + ((size_t)r * c->N + n) * 3;
            if (c->vr[r] > 0) s += st[1] * exp(st[0] - mx);
        }
        c->lse[n] = mx + log(s);
        c->losses[n] = c->lse[n] - zt;
    }
}
static double clsvp_loss(void *p) {
    clsvp_ctx *c = p;
    clsvp_fwd_d(c);
    double s = 0;
    for (int n = 0; n < c->N; n++) s += c->losses[n];
    return c->dloss * s;
}

/* Parts given as their row counts; the vocabulary is their concatenation. Each w_part has a
 * NaN row after it and each dw_part an extra row that must stay unchanged; dx is pre-filled
 * (written), dw_part random (accumulated). */
static void check_classifier_vp(const lmf_kernels *k, int N, int C, int ranks, const int *vr,
                                float dloss) {
    lmf_test_rng_seed(89);
    clsvp_ctx c = {N, C, ranks, {0}, {0}, {0}, {0}, malloc(N * sizeof(double)),
                   malloc(N * sizeof(double)), malloc((size_t)ranks * N * 3 * sizeof(double)),
                   NULL, dloss};
    int V = 0;
    float *x = lmf_test_fbuf((size_t)N * C, 1.5f), *w[VP_MAX_RANKS];
    for (int r = 0; r < ranks; r++) {
        c.vb[r] = V, c.vr[r] = vr[r], V += vr[r];
        w[r] = lmf_test_fbuf((size_t)(vr[r] + 1) * C, 1.5f);
        for (int i = 0; i < C; i++) w[r][(size_t)vr[r] * C + i] = NAN;
        c.x[r] = dcopy(x, (size_t)N * C);
        c.w[r] = dcopy(w[r], (size_t)vr[r] * C);
    }
    int32_t *tg = malloc((size_t)N * sizeof *tg);
    for (int n = 0; n < N; n++) tg[n] = (int32_t)(lmf_test_uniform() * V) % V;
    tg[0] = V - 1;
    c.tg = tg;
    clsvp_fwd_d(&c);

    float *stats = lmf_test_fbuf((size_t)ranks * N * 3, 1), *losses = lmf_test_fbuf(N, 1);
    float *lse = lmf_test_fbuf(N, 1), *sc[VP_MAX_RANKS]; /* each part's kept logits */
    for (int r = 0; r < ranks; r++) {
        sc[r] = lmf_test_fbuf(k->classifier_vp_scratch_floats(N, vr[r]) + 1, 1);
        float *st = stats + (size_t)r * N * 3;
        k->classifier_vp_stats(st, sc[r], x, w[r], tg, c.vb[r], N, C, vr[r]);
        for (int n = 0; n < N; n++) {
            const double *sd = c.stats + ((size_t)r * N + n) * 3;
            if (vr[r] == 0) { /* exactly -inf, 0, 0 */
                assert_true(isinf(st[3 * n]) && st[3 * n] < 0);
                assert_true(st[3 * n + 1] == 0.0f && st[3 * n + 2] == 0.0f);
                continue;
            }
            for (int j = 0; j < 3; j++) fwd_check("classifier_vp stats", st + 3 * n + j, sd + j, 1);
        }
    }
    lmf_classifier_vp_combine(losses, lse, stats, ranks, N);
    fwd_check("classifier_vp lse", lse, c.lse, N);
    fwd_check("classifier_vp losses", losses, c.losses, N);

    for (int r = 0; r < ranks; r++) {
        size_t nx = (size_t)N * C, nw = (size_t)(vr[r] + 1) * C;
        float *dx = lmf_test_fbuf(nx, 1), *dw0 = lmf_test_fbuf(nw, 1), *dw = lmf_test_fdup(dw0, nw);
        for (size_t i = 0; i < nx; i++) dx[i] = 777.0f;
        k->classifier_vp_backward(dx, dw, sc[r], x, w[r], tg, lse, dloss, c.vb[r], N, C, vr[r]);
        fd_check("classifier_vp dx (one part)", clsvp_loss, &c, c.x[r], nx, dx, NULL);
        if (vr[r] > 0)
            fd_check("classifier_vp dw_part", clsvp_loss, &c, c.w[r], (size_t)vr[r] * C, dw, dw0);
        assert_memory_equal(dw + (size_t)vr[r] * C, dw0 + (size_t)vr[r] * C, C * sizeof(float));
        free(sc[r]); free(dx); free(dw0); free(dw);
    }
    for (int r = 0; r < ranks; r++) {
        free(w[r]); free(c.x[r]); free(c.w[r]);
    }
    free(x); free(tg); free(stats); free(losses); free(lse); free(c.losses); free(c.lse);
    free(c.stats);
}

static void test_classifier_vp(void **state) {
    (void)state;
    const int one[] = {37}, three[] = {12, 0, 25}, four[] = {1, 20, 9, 0};
    for (int i = 0; i < 2; i++) {
        check_classifier_vp(tables[i], 6, 13, 1, one, 1.0f);
        check_classifier_vp(tables[i], 5, 45, 3, three, 1.0f / 5);
        check_classifier_vp(tables[i], 1, 8, 4, four, 0.25f);
    }
}

/* Logits ~1e3: every part's exponentials are taken against its own max and the combination
 * against the largest, so nothing overflows. */
static void test_classifier_vp_large_logits(void **state) {
    (void)state;
    for (int k = 0; k < 2; k++) {
        const lmf_kernels *kt = tables[k];
        int N = 3, C = 4, vr[2] = {2, 3};
        lmf_test_rng_seed(99);
        float *x = lmf_test_fbuf((size_t)N * C, 20), *wte = lmf_test_fbuf((size_t)5 * C, 20);
        int32_t tg[3] = {0, 2, 4};
        float stats[2 * 3 * 3], losses[3], lse[3], sc[8 * 5];
        assert_true(kt->classifier_vp_scratch_floats(N, 3) <= 8 * 5);
        kt->classifier_vp_stats(stats, sc, x, wte, tg, 0, N, C, vr[0]);
        kt->classifier_vp_stats(stats + 3 * N, sc, x, wte + 2 * C, tg, 2, N, C, vr[1]);
        lmf_classifier_vp_combine(losses, lse, stats, 2, N);
        clsvp_ctx c = {N, C, 2, {0, 2}, {2, 3}, {dcopy(x, 12), dcopy(x, 12)},
                       {dcopy(wte, 8), dcopy(wte + 8, 12)}, malloc(N * sizeof(double)),
                       malloc(N * sizeof(double)), malloc(2 * N * 3 * sizeof(double)), tg, 1.0};
        clsvp_fwd_d(&c);
        float dx[12], dw[12] = {0};
        kt->classifier_vp_backward(dx, dw, sc, x, wte + 2 * C, tg, lse, 1.0f, 2, N, C, vr[1]);
        for (int n = 0; n < N; n++) {
            assert_true(fabs(c.lse[n]) > 100); /* the case is what it claims */
            assert_true(isfinite(losses[n]));
            assert_true(fabs(losses[n] - c.losses[n]) <= 1e-4 * fmax(1.0, fabs(c.losses[n])));
        }
        for (int i = 0; i < N * C; i++) assert_true(isfinite(dx[i]) && isfinite(dw[i]));
        free(x); free(wte); free(c.losses); free(c.lse); free(c.stats);
        for (int r = 0; r < 2; r++) {
            free(c.x[r]); free(c.w[r]);
        }
    }
}

static void test_registry(void **state) {
    (void)state;
    assert_ptr_equal(lmf_kernels_by_name("ref"), lmf_kernels_ref());
    assert_ptr_equal(lmf_kernels_by_name("fast"), lmf_kernels_fast());
    assert_null(lmf_kernels_by_name("cuda-nope"));
    assert_null(lmf_kernels_by_name(NULL));
    assert_string_equal(lmf_kernels_ref()->name, "ref");
    assert_string_equal(lmf_kernels_fast()->name, "fast");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_registry),
        cmocka_unit_test(test_encoder),
        cmocka_unit_test(test_layernorm),
        cmocka_unit_test(test_matmul),
        cmocka_unit_test(test_attention),
        cmocka_unit_test(test_attention_doc_mask),
        cmocka_unit_test(test_gelu),
        cmocka_unit_test(test_residual_layernorm),
        cmocka_unit_test(test_matmul_gelu),
        cmocka_unit_test(test_gelu_bias_backward),
        cmocka_unit_test(test_residual_sumsq),
        cmocka_unit_test(test_adamw),
        cmocka_unit_test(test_classifier),
        cmocka_unit_test(test_classifier_large_logits),
        cmocka_unit_test(test_rmsnorm),
        cmocka_unit_test(test_rope),
        cmocka_unit_test(test_swiglu),
        cmocka_unit_test(test_gqa_attention),
        cmocka_unit_test(test_encoder_without_positions),
        cmocka_unit_test(test_encoder_vp),
        cmocka_unit_test(test_classifier_vp),
        cmocka_unit_test(test_classifier_vp_large_logits),
    };
    return cmocka_run_group_tests_name("kernels_fd", tests, setup_tables, NULL);
}

/* llm.c training equivalence: lmforge against an independent float llm.c training step. */
/* A model written in llm.c's checkpoint layout is trained by lmforge's trainer and by a plain
 * float implementation of llm.c's fp32 CPU step (forward, backward, AdamW with bias correction
 * on every parameter, batches in file order); the losses must agree. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lmforge/formats.h"
#include "lmforge/rng.h"
#include "lmforge/train.h"

#include "lib/test_util.h"

/* the model: vocabulary 50 padded to 128 rows in the file (lmforge pads to 64 internally) */
enum { V = 50, VP = 128, MAXT = 16, L = 2, NH = 2, C = 16, B = 2, T = 8, NTOK = 90, STEPS = 10 };

/* ---- the reference: llm.c's fp32 trainer, written from its algorithm description ---- */

/* parameter tensors in llm.c's order and shapes; linear weights are (out, in) */
enum { WTE, WPE, LN1W, LN1B, QKVW, QKVB, APW, APB, LN2W, LN2B, FCW, FCB, FPW, FPB, LNFW, LNFB, NP };

typedef struct ref {
    size_t size[NP], off[NP], n;
    float *w, *g, *m, *v;          /* parameters, gradients, AdamW moments: n floats each */
} ref;

static float *P(ref *r, int i) { return r->w + r->off[i]; }
static float *G(ref *r, int i) { return r->g + r->off[i]; }

static void ref_init(ref *r) {
    size_t s[NP] = {(size_t)VP * C, (size_t)MAXT * C, L * C, L * C, (size_t)L * 3 * C * C, L * 3 * C,
                    (size_t)L * C * C, L * C, L * C, L * C, (size_t)L * 4 * C * C, L * 4 * C,
                    (size_t)L * C * 4 * C, L * C, C, C};
    r->n = 0;
    for (int i = 0; i < NP; i++) {
        r->size[i] = s[i];
        r->off[i] = r->n;
        r->n += s[i];
    }
    r->w = calloc(r->n, sizeof(float));
    r->g = calloc(r->n, sizeof(float));
    r->m = calloc(r->n, sizeof(float));
    r->v = calloc(r->n, sizeof(float));
}

static void ref_free(ref *r) {
    free(r->w);
    free(r->g);
    free(r->m);
    free(r->v);
}

/* layer normalisation of x[C] with saved mean and 1/std (eps 1e-5, biased variance) */
static void ln_fwd(float *y, float *mean, float *rstd, const float *x, const float *w, const float *b) {
    float mu = 0.0f;
    for (int i = 0; i < C; i++) mu += x[i];
    mu /= C;
    float var = 0.0f;
    for (int i = 0; i < C; i++) var += (x[i] - mu) * (x[i] - mu);
    var /= C;
    float rs = 1.0f / sqrtf(var + 1e-5f);
    for (int i = 0; i < C; i++) y[i] = (x[i] - mu) * rs * w[i] + b[i];
    *mean = mu;
    *rstd = rs;
}

static void ln_bwd(float *dx, float *dw, float *db, const float *dy, const float *x, const float *w,
                   float mean, float rstd) {
    float a = 0.0f, bsum = 0.0f;
    for (int i = 0; i < C; i++) {
        float xn = (x[i] - mean) * rstd, d = w[i] * dy[i];
        a += d;
        bsum += d * xn;
    }
    a /= C;
    bsum /= C;
    for (int i = 0; i < C; i++) {
        float xn = (x[i] - mean) * rstd, d = w[i] * dy[i];
        db[i] += dy[i];
        dw[i] += xn * dy[i];
        dx[i] += (d - a - xn * bsum) * rstd;
    }
}

/* y[OC] = W[OC, IC] x[IC] + b */
static void lin_fwd(float *y, const float *x, const float *W, const float *b, int IC, int OC) {
    for (int o = 0; o < OC; o++) {
        float s = b ? b[o] : 0.0f;
        for (int i = 0; i < IC; i++) s += W[o * IC + i] * x[i];
        y[o] = s;
    }
}

static void lin_bwd(float *dx, float *dW, float *db, const float *dy, const float *x, const float *W,
                    int IC, int OC) {
    for (int o = 0; o < OC; o++) {
        if (db) db[o] += dy[o];
        for (int i = 0; i < IC; i++) {
            dx[i] += W[o * IC + i] * dy[o];
            dW[o * IC + i] += x[i] * dy[o];
        }
    }
}

static const float GELU_K = 0.7978845608028654f; /* sqrt(2/pi) */

static float gelu(float x) { return 0.5f * x * (1.0f + tanhf(GELU_K * (x + 0.044715f * x * x * x))); }

static float gelu_grad(float x) {
    float u = GELU_K * (x + 0.044715f * x * x * x), th = tanhf(u);
    return 0.5f * (1.0f + th) + 0.5f * x * (1.0f - th * th) * GELU_K * (1.0f + 3.0f * 0.044715f * x * x);
}

/* activations of one step; [b][t] rows */
typedef struct acts {
    float x0[B][T][C];
    float ln1[L][B][T][C], m1[L][B][T], r1[L][B][T];
    float qkv[L][B][T][3 * C], att[L][B][NH][T][T], atty[L][B][T][C];
    float res2[L][B][T][C], ln2[L][B][T][C], m2[L][B][T], r2[L][B][T];
    float fch[L][B][T][4 * C], fcg[L][B][T][4 * C], res3[L][B][T][C];
    float lnf[B][T][C], mf[B][T], rf[B][T];
    float probs[B][T][V];
} acts;

/* Forward and backward of one batch: returns the mean loss (summed in float, in order, then
 * divided by B*T), gradients written (zeroed first). */
static float ref_step_grads(ref *r, acts *a, const int *in, const int *tg) {
    const int hs = C / NH;
    const float scale = 1.0f / sqrtf((float)hs);
    memset(r->g, 0, r->n * sizeof(float));
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            for (int i = 0; i < C; i++)
                a->x0[b][t][i] = P(r, WTE)[in[b * T + t] * C + i] + P(r, WPE)[t * C + i];
    for (int l = 0; l < L; l++)
        for (int b = 0; b < B; b++) {
            for (int t = 0; t < T; t++) {
                const float *x = l == 0 ? a->x0[b][t] : a->res3[l - 1][b][t];
                ln_fwd(a->ln1[l][b][t], &a->m1[l][b][t], &a->r1[l][b][t], x, P(r, LN1W) + l * C,
                       P(r, LN1B) + l * C);
                lin_fwd(a->qkv[l][b][t], a->ln1[l][b][t], P(r, QKVW) + l * 3 * C * C,
                        P(r, QKVB) + l * 3 * C, C, 3 * C);
            }
            for (int t = 0; t < T; t++) {
                for (int h = 0; h < NH; h++) {
                    float *row = a->att[l][b][h][t], mx = -1e30f, sum = 0.0f;
                    for (int u = 0; u <= t; u++) {
                        float d = 0.0f;
                        for (int i = 0; i < hs; i++)
                            d += a->qkv[l][b][t][h * hs + i] * a->qkv[l][b][u][C + h * hs + i];
                        row[u] = d * scale;
                        if (row[u] > mx) mx = row[u];
                    }
                    for (int u = 0; u <= t; u++) {
                        row[u] = expf(row[u] - mx);
                        sum += row[u];
                    }
                    for (int u = 0; u < T; u++) row[u] = u <= t ? row[u] / sum : 0.0f;
                    for (int i = 0; i < hs; i++) {
                        float o = 0.0f;
                        for (int u = 0; u <= t; u++) o += row[u] * a->qkv[l][b][u][2 * C + h * hs + i];
                        a->atty[l][b][t][h * hs + i] = o;
                    }
                }
                const float *x = l == 0 ? a->x0[b][t] : a->res3[l - 1][b][t];
                float proj[C];
                lin_fwd(proj, a->atty[l][b][t], P(r, APW) + l * C * C, P(r, APB) + l * C, C, C);
                for (int i = 0; i < C; i++) a->res2[l][b][t][i] = x[i] + proj[i];
                ln_fwd(a->ln2[l][b][t], &a->m2[l][b][t], &a->r2[l][b][t], a->res2[l][b][t],
                       P(r, LN2W) + l * C, P(r, LN2B) + l * C);
                lin_fwd(a->fch[l][b][t], a->ln2[l][b][t], P(r, FCW) + l * 4 * C * C,
                        P(r, FCB) + l * 4 * C, C, 4 * C);
                for (int i = 0; i < 4 * C; i++) a->fcg[l][b][t][i] = gelu(a->fch[l][b][t][i]);
                lin_fwd(proj, a->fcg[l][b][t], P(r, FPW) + l * C * 4 * C, P(r, FPB) + l * C, 4 * C, C);
                for (int i = 0; i < C; i++) a->res3[l][b][t][i] = a->res2[l][b][t][i] + proj[i];
            }
        }
    float loss = 0.0f;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            ln_fwd(a->lnf[b][t], &a->mf[b][t], &a->rf[b][t], a->res3[L - 1][b][t], P(r, LNFW), P(r, LNFB));
            float lg[V], mx = -1e30f, sum = 0.0f;
            lin_fwd(lg, a->lnf[b][t], P(r, WTE), NULL, C, V); /* padded rows never count */
            for (int v = 0; v < V; v++) mx = lg[v] > mx ? lg[v] : mx;
            for (int v = 0; v < V; v++) {
                a->probs[b][t][v] = expf(lg[v] - mx);
                sum += a->probs[b][t][v];
            }
            for (int v = 0; v < V; v++) a->probs[b][t][v] /= sum;
            loss += -logf(a->probs[b][t][tg[b * T + t]]);
        }
    loss /= (float)(B * T);

    /* backward */
    static float dres[B][T][C]; /* gradient flowing into the residual stream */
    memset(dres, 0, sizeof dres);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            float dlg[V], dlnf[C] = {0};
            for (int v = 0; v < V; v++)
                dlg[v] = (a->probs[b][t][v] - (v == tg[b * T + t] ? 1.0f : 0.0f)) / (float)(B * T);
            lin_bwd(dlnf, G(r, WTE), NULL, dlg, a->lnf[b][t], P(r, WTE), C, V);
            ln_bwd(dres[b][t], G(r, LNFW), G(r, LNFB), dlnf, a->res3[L - 1][b][t], P(r, LNFW),
                   a->mf[b][t], a->rf[b][t]);
        }
    for (int l = L - 1; l >= 0; l--)
        for (int b = 0; b < B; b++) {
            static float dqkv[T][3 * C];
            memset(dqkv, 0, sizeof dqkv);
            for (int t = 0; t < T; t++) {
                /* MLP branch: res3 = res2 + proj(gelu(fc(ln2(res2)))) */
                float dfcg[4 * C] = {0}, dfch[4 * C], dln2[C] = {0};
                lin_bwd(dfcg, G(r, FPW) + l * C * 4 * C, G(r, FPB) + l * C, dres[b][t], a->fcg[l][b][t],
                        P(r, FPW) + l * C * 4 * C, 4 * C, C);
                for (int i = 0; i < 4 * C; i++) dfch[i] = gelu_grad(a->fch[l][b][t][i]) * dfcg[i];
                lin_bwd(dln2, G(r, FCW) + l * 4 * C * C, G(r, FCB) + l * 4 * C, dfch, a->ln2[l][b][t],
                        P(r, FCW) + l * 4 * C * C, C, 4 * C);
                ln_bwd(dres[b][t], G(r, LN2W) + l * C, G(r, LN2B) + l * C, dln2, a->res2[l][b][t],
                       P(r, LN2W) + l * C, a->m2[l][b][t], a->r2[l][b][t]);
            }
            /* attention branch: res2 = x + proj(attn(qkv(ln1(x)))) */
            for (int t = 0; t < T; t++) {
                float datty[C] = {0};
                lin_bwd(datty, G(r, APW) + l * C * C, G(r, APB) + l * C, dres[b][t], a->atty[l][b][t],
                        P(r, APW) + l * C * C, C, C);
                for (int h = 0; h < NH; h++) {
                    const float *row = a->att[l][b][h][t];
                    float datt[T] = {0}, dot = 0.0f;
                    for (int u = 0; u <= t; u++)
                        for (int i = 0; i < hs; i++) {
                            datt[u] += a->qkv[l][b][u][2 * C + h * hs + i] * datty[h * hs + i];
                            dqkv[u][2 * C + h * hs + i] += row[u] * datty[h * hs + i];
                        }
                    for (int u = 0; u <= t; u++) dot += row[u] * datt[u];
                    for (int u = 0; u <= t; u++) {
                        float dpre = row[u] * (datt[u] - dot) * scale;
                        for (int i = 0; i < hs; i++) {
                            dqkv[t][h * hs + i] += a->qkv[l][b][u][C + h * hs + i] * dpre;
                            dqkv[u][C + h * hs + i] += a->qkv[l][b][t][h * hs + i] * dpre;
                        }
                    }
                }
            }
            for (int t = 0; t < T; t++) {
                float dln1[C] = {0};
                const float *x = l == 0 ? a->x0[b][t] : a->res3[l - 1][b][t];
                lin_bwd(dln1, G(r, QKVW) + l * 3 * C * C, G(r, QKVB) + l * 3 * C, dqkv[t],
                        a->ln1[l][b][t], P(r, QKVW) + l * 3 * C * C, C, 3 * C);
                ln_bwd(dres[b][t], G(r, LN1W) + l * C, G(r, LN1B) + l * C, dln1, x, P(r, LN1W) + l * C,
                       a->m1[l][b][t], a->r1[l][b][t]);
            }
        }
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            for (int i = 0; i < C; i++) {
                G(r, WTE)[in[b * T + t] * C + i] += dres[b][t][i];
                G(r, WPE)[t * C + i] += dres[b][t][i];
            }
    return loss;
}

/* AdamW on every parameter, llm.c's formula; bias_correction 0 is a deliberately wrong
 * variant used to show the comparison can fail */
static void ref_adamw(ref *r, float lr, float b1, float b2, float eps, float wd, int t,
                     int bias_correction) {
    for (size_t i = 0; i < r->n; i++) {
        float g = r->g[i];
        r->m[i] = b1 * r->m[i] + (1.0f - b1) * g;
        r->v[i] = b2 * r->v[i] + (1.0f - b2) * g * g;
        float mh = bias_correction ? r->m[i] / (1.0f - powf(b1, (float)t)) : r->m[i];
        float vh = bias_correction ? r->v[i] / (1.0f - powf(b2, (float)t)) : r->v[i];
        r->w[i] -= lr * (mh / (sqrtf(vh) + eps) + wd * r->w[i]);
    }
}

/* ---- files written from the format descriptions ---- */

static void put_i32(FILE *f, int32_t v) { assert_int_equal(fwrite(&v, 4, 1, f), 1); }

/* llm.c checkpoint, version 3, of the reference's weights */
static void write_llmc(const char *path, ref *r) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    int32_t hdr[256] = {20240326, 3, MAXT, V, L, NH, C, VP};
    for (int i = 0; i < 256; i++) put_i32(f, hdr[i]);
    assert_int_equal(fwrite(r->w, sizeof(float), r->n, f), r->n);
    fclose(f);
}

/* token file: 256 int32 header (magic 20240520, version 1, count), uint16 tokens */
static void write_shard(const char *path, const uint16_t *tok, int n) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    int32_t hdr[256] = {20240520, 1, n};
    assert_int_equal(fwrite(hdr, 4, 256, f), 256);
    assert_int_equal(fwrite(tok, 2, (size_t)n, f), (size_t)n);
    fclose(f);
}

static void random_weights(ref *r, uint64_t seed) {
    lmf_rng g;
    lmf_rng_seed(&g, seed);
    for (int i = 0; i < NP; i++)
        for (size_t j = 0; j < r->size[i]; j++) {
            float u = lmf_rng_uniform(&g) - 0.5f;
            float *w = P(r, i) + j;
            if (i == LN1W || i == LN2W || i == LNFW) *w = 1.0f + 0.2f * u;
            else if (i == WTE && j >= (size_t)V * C) *w = 0.0f; /* padded rows, as llm.c writes */
            else *w = 0.2f * u;
        }
}

/* llm.c's loader with shuffling off: batch k reads B*T+1 tokens from (k mod nb) * B*T, where
 * nb = (ntok - 1) / (B*T); inputs are the first B*T, targets the same shifted by one */
static void ref_batch(const uint16_t *tok, int k, int *in, int *tg) {
    int nb = (NTOK - 1) / (B * T), start = (k % nb) * B * T;
    for (int i = 0; i < B * T; i++) {
        in[i] = tok[start + i];
        tg[i] = tok[start + i + 1];
    }
}

typedef struct hp {
    float lr, b1, b2, eps;
} hp;

static void ref_losses(const uint16_t *tok, const hp *h, int bias_correction, int batch_offset,
                       float *out) {
    ref r;
    ref_init(&r);
    random_weights(&r, 11);
    acts *a = malloc(sizeof *a);
    int in[B * T], tg[B * T];
    for (int s = 0; s < STEPS; s++) {
        ref_batch(tok, s + batch_offset, in, tg);
        out[s] = ref_step_grads(&r, a, in, tg);
        ref_adamw(&r, h->lr, h->b1, h->b2, h->eps, 0.0f, s + 1, bias_correction);
    }
    free(a);
    ref_free(&r);
}

static void lmforge_losses(const char *model, const char *shard, const hp *h, const char *kernels,
                           float *out) {
    lmf_train_opts o;
    lmf_train_opts_default(&o);
    char run[512];
    lmf_test_path(run, sizeof run, "run_%s", kernels);
    /* the flags of docs/interop.md: --init FILE --data SHARD --no-shuffle --lr-schedule constant
     * --warmup 0 --weight-decay 0 --grad-clip 0 --beta1 --beta2 --adam-eps --batch --seq */
    o.init_dir = model;
    o.data = shard;
    o.out_dir = run;
    o.steps = STEPS;
    o.batch = B;
    o.seq = T;
    o.grad_accum = 1;
    o.lr = h->lr;
    o.beta1 = h->b1;
    o.beta2 = h->b2;
    o.adam_eps = h->eps;
    o.weight_decay = 0.0f;
    o.grad_clip = 0.0f;
    o.lr_schedule = LMF_LR_CONSTANT;
    o.warmup = 0;
    o.shuffle = 0;
    o.eval_every = 0;
    o.kernels = kernels;
    lmf_trainer *t = NULL;
    lmf_status s = lmf_trainer_create(&o, &t);
    if (s != LMF_OK) fprintf(stderr, "%s\n", lmf_last_error());
    assert_int_equal(s, LMF_OK);
    for (int i = 0; i < STEPS; i++) {
        lmf_step_stats st;
        assert_int_equal(lmf_trainer_step(t, &st), LMF_OK);
        out[i] = st.loss;
    }
    lmf_trainer_free(t);
}

/* Tolerance. Both sides compute in float32 and differ only in the order of additions
 * (lmforge's kernels block and vectorise their sums, the reference adds left to right), so a
 * loss near ln(50) = 3.9 carries a few float32 roundings (one ulp there is 2.4e-7), grown a
 * little by ten AdamW steps. Measured: at most 4.8e-7 (2 ulps) with either kernel set.
 * 5e-6 (about 20 ulps) leaves room for other compilers and BLAS builds; the mismatches a
 * wrong semantics causes (no bias correction, batches off by one) are checked below to be
 * more than 100 times larger. */
#define TOL 5e-6

static void check_equivalence(const hp *h) {
    uint16_t tok[NTOK];
    lmf_rng g;
    lmf_rng_seed(&g, 3);
    for (int i = 0; i < NTOK; i++) tok[i] = (uint16_t)(lmf_rng_u64(&g) % V);
    char model[512], shard[512];
    lmf_test_path(model, sizeof model, "model.bin");
    lmf_test_path(shard, sizeof shard, "train.bin");
    ref r;
    ref_init(&r);
    random_weights(&r, 11);
    write_llmc(model, &r);
    ref_free(&r);
    write_shard(shard, tok, NTOK);

    float want[STEPS], got_ref[STEPS], got_fast[STEPS], no_bc[STEPS], shifted[STEPS];
    ref_losses(tok, h, 1, 0, want);
    lmforge_losses(model, shard, h, "ref", got_ref);
    lmforge_losses(model, shard, h, "fast", got_fast);
    double worst = 0, far_bc = 0, far_order = 0;
    ref_losses(tok, h, 0, 0, no_bc);
    ref_losses(tok, h, 1, 1, shifted);
    for (int s = 0; s < STEPS; s++) {
        double d1 = fabs((double)got_ref[s] - want[s]), d2 = fabs((double)got_fast[s] - want[s]);
        if (d1 > worst) worst = d1;
        if (d2 > worst) worst = d2;
        if (fabs((double)no_bc[s] - want[s]) > far_bc) far_bc = fabs((double)no_bc[s] - want[s]);
        if (fabs((double)shifted[s] - want[s]) > far_order) far_order = fabs((double)shifted[s] - want[s]);
        if (d1 > TOL || d2 > TOL)
            fprintf(stderr, "step %d: reference %.7f lmforge ref %.7f fast %.7f\n", s + 1,
                    (double)want[s], (double)got_ref[s], (double)got_fast[s]);
    }
    fprintf(stderr, "lr %g: losses %.5f -> %.5f; largest difference %.2e (tolerance %.0e); "
            "without bias correction %.2e, batches shifted by one %.2e\n", (double)h->lr,
            (double)want[0], (double)want[STEPS - 1], worst, TOL, far_bc, far_order);
    assert_true(worst <= TOL);
    /* the comparison can fail: semantic slips move the losses far past the tolerance */
    assert_true(far_bc > 100 * TOL);
    assert_true(far_order > 100 * TOL);
    /* and training did something */
    assert_true(want[STEPS - 1] < want[0]);
}

/* llm.c's train_gpt2.c settings: lr 1e-4, betas (0.9, 0.999), eps 1e-8, no weight decay */
static void test_llmc_defaults(void **state) {
    (void)state;
    hp h = {1e-4f, 0.9f, 0.999f, 1e-8f};
    check_equivalence(&h);
}

/* a larger learning rate moves the weights further, so drift between the two would show */
static void test_llmc_large_lr(void **state) {
    (void)state;
    hp h = {3e-3f, 0.9f, 0.95f, 1e-8f};
    check_equivalence(&h);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_llmc_defaults),
        cmocka_unit_test(test_llmc_large_lr),
    };
    return cmocka_run_group_tests(tests, lmf_test_tmpdir_setup, lmf_test_tmpdir_teardown);
}

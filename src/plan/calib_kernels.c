/* Planner calibration of lmforge's own kernel table: the layer's matrix products as the model
 * describes them (lmf_layer_linears) by width, attention by sequence length, the classifier by
 * width, element-wise kernels and AdamW; FLOPs from the model's own counts. */
#include "plan/plan_model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lmforge/perf.h"

#define KC_TRIALS 5
#define KC_ROWS 1024        /* rows (B*T) of the matmul measurement */
#define KC_ATT_HEADS 8      /* attention: B = 1, 8 heads of 64: C = 512 */
#define KC_ATT_HS 64
#define KC_CLS_ROWS 256     /* classifier: rows and vocabulary of the measurement */
#define KC_CLS_VOCAB 32768
#define KC_EW_ROWS 2048     /* element-wise: 2048 x 1024 values (8 MiB per array) */
#define KC_EW_COLS 1024
#define KC_ADAMW_N ((size_t)16 << 20)

static const int kc_widths[] = {64, 128, 256, 384, 512, 768, 1024};
static const int kc_seqs[] = {64, 128, 256, 512, 1024};
#define KC_NW ((int)(sizeof kc_widths / sizeof kc_widths[0]))
#define KC_NS ((int)(sizeof kc_seqs / sizeof kc_seqs[0]))

/* What one timed call runs. */
typedef enum kc_what {
    KC_MM_FWD, KC_MM_BWD, KC_ATT_FWD, KC_ATT_BWD, KC_CLS, KC_EW
} kc_what;

typedef struct kc_ctx {
    const lmf_kernels *k;
    kc_what what;
    lmf_plan_ew ew;
    int N, C, T, V;
    lmf_linear_desc lin[LMF_LAYER_LINEARS]; /* the layer's products at width C */
    int n_lin;
    float *a, *b, *c, *d, *e, *w, *dw, *bias, *dbias, *mean, *rstd;
    int32_t *ids;
    size_t n;
} kc_ctx;

/* One call of the measured kernel (sequence) with the shapes in x. */
static void kc_run(kc_ctx *x) {
    const lmf_kernels *k = x->k;
    int N = x->N, C = x->C;
    switch (x->what) {
    case KC_MM_FWD: /* the layer's products in forward order, GELU fused where the model does */
        for (int i = 0; i < x->n_lin; i++) {
            const lmf_linear_desc *d = &x->lin[i];
            const float *bias = d->bias ? x->bias : NULL;
            if (d->gelu) k->matmul_gelu_forward(x->c, x->d, x->a, x->w, bias, N, d->in, d->out);
            else k->matmul_forward(x->c, x->a, x->w, bias, N, d->in, d->out);
        }
        break;
    case KC_MM_BWD: /* their backward in backward order; a bias whose gradient the GELU's
                     * backward takes (fused) gets none here, as in lmf_gpt_backward */
        for (int i = x->n_lin - 1; i >= 0; i--) {
            const lmf_linear_desc *d = &x->lin[i];
            float *dbias = d->bias && !d->gelu ? x->dbias : NULL;
            k->matmul_backward(x->b, x->dw, dbias, x->c, x->a, x->w, N, d->in, d->out);
        }
        break;
    case KC_ATT_FWD:
        k->attention_forward(x->c, x->e, x->a, NULL, 1, x->T, C, KC_ATT_HEADS);
        break;
    case KC_ATT_BWD:
        k->attention_backward(x->b, x->d, x->c, x->a, x->e, NULL, 1, x->T, C, KC_ATT_HEADS);
        break;
    case KC_CLS:
        k->classifier(x->mean, x->b, x->dw, x->d, x->a, x->w, x->ids, 1.0f / (float)N, N, C, x->V);
        break;
    case KC_EW:
        switch (x->ew) {
        case LMF_PLAN_EW_LAYERNORM_FWD:
            k->layernorm_forward(x->c, x->mean, x->rstd, x->a, x->w, x->bias, N, C);
            break;
        case LMF_PLAN_EW_RESIDUAL_LN_FWD:
            k->residual_layernorm_forward(x->b, x->c, x->mean, x->rstd, x->a, x->b, x->w, x->bias, N, C);
            break;
        case LMF_PLAN_EW_LAYERNORM_BWD:
            k->layernorm_backward(x->b, x->dw, x->dbias, x->c, x->a, x->w, x->mean, x->rstd, N, C);
            break;
        case LMF_PLAN_EW_GELU_FWD:
            k->gelu_forward(x->c, x->a, x->n);
            break;
        case LMF_PLAN_EW_GELU_BIAS_BWD:
            k->gelu_bias_backward(x->b, x->dbias, x->a, x->c, N, C);
            break;
        case LMF_PLAN_EW_ZERO:
            memset(x->c, 0, x->n * sizeof(float));
            break;
        case LMF_PLAN_EW_ENCODER_FWD:
            k->encoder_forward(x->c, x->ids, x->w, x->dw, 2, N / 2, C);
            break;
        case LMF_PLAN_EW_ENCODER_BWD:
            k->encoder_backward(x->w, x->dw, x->c, x->ids, 2, N / 2, C);
            break;
        case LMF_PLAN_EW_ADAMW:
            k->adamw(x->a, x->b, x->c, x->d, x->n, 1e-4f, 0.9f, 0.95f, 1e-8f, 0.1f, 1.0f, 1);
            break;
        case LMF_PLAN_EW_SUMSQ: {
            volatile double s = k->sumsq(x->a, x->n);
            (void)s;
            break;
        }
        default:
            break;
        }
        break;
    }
}

/* Best seconds per call: trials of at least one call and about seconds/KC_TRIALS each, at
 * most KC_TRIALS of them, ending after three once `seconds` have passed (slow points). The
 * first trial also pays the first touch of the buffers; the best one does not. On a machine
 * shared with other work the best of several short trials is the undisturbed speed. */
static double kc_time(kc_ctx *x, double seconds, lmf_comm *comm, lmf_status *st) {
    if (*st == LMF_OK && comm && lmf_comm_size(comm) > 1) *st = lmf_comm_barrier(comm);
    double best = INFINITY, start = lmf_now_s();
    for (int trial = 0; trial < KC_TRIALS; trial++) {
        long reps = 0;
        double t0 = lmf_now_s(), el;
        do {
            kc_run(x);
            reps++;
            el = lmf_now_s() - t0;
        } while (el < seconds / KC_TRIALS);
        best = fmin(best, el / (double)reps);
        if (trial >= 2 && lmf_now_s() - start > seconds) break;
    }
    return best;
}

/* n floats of small values (no overflow in exp, no denormals) */
static float *kc_floats(size_t n, float scale) {
    float *p = malloc((n ? n : 1) * sizeof *p);
    if (p)
        for (size_t i = 0; i < n; i++) p[i] = scale * (float)((int)(i % 13) - 6);
    return p;
}

static void kc_free(kc_ctx *x) {
    free(x->a); free(x->b); free(x->c); free(x->d); free(x->e); free(x->w); free(x->dw);
    free(x->bias); free(x->dbias); free(x->mean); free(x->rstd); free(x->ids);
    memset(x, 0, sizeof *x);
}

static lmf_status kc_nomem(kc_ctx *x, const char *what) {
    kc_free(x);
    return lmf_fail(LMF_ERR_NOMEM, "calibration: cannot allocate the %s buffers", what);
}

/* time kernel kinds fwd and bwd at the current shape and append the point (x, their FLOP
 * rates) to cv */
static void curve_point(kc_ctx *x, kc_what fwd, kc_what bwd, double secs, lmf_comm *comm,
                        lmf_status *st, double at, double fwd_flops, double bwd_flops,
                        lmf_plan_rate_curve *cv) {
    x->what = fwd;
    double tf = kc_time(x, secs, comm, st);
    x->what = bwd;
    double tb = kc_time(x, secs, comm, st);
    cv->x[cv->n] = at;
    cv->fwd[cv->n] = fwd_flops / tf;
    cv->bwd[cv->n] = bwd_flops / tb;
    cv->n++;
}

/* A model of width C for the descriptions (only the width matters to them). */
static lmf_gpt_config kc_config(int C, int T, int V) {
    lmf_gpt_config cfg = {.n_layer = 1, .n_head = 1, .n_embd = C, .n_positions = T, .vocab_size = V};
    return cfg;
}

/* x->lin = the layer's products at width C; their FLOPs over x->N rows, forward (the
 * backward computes the input's and the weight's gradients: twice that) */
static double kc_set_linears(kc_ctx *x, int C) {
    lmf_gpt_config cfg = kc_config(C, 1, 1);
    x->C = C;
    x->n_lin = lmf_layer_linears(&cfg, x->lin);
    double flops = 0.0;
    for (int i = 0; i < x->n_lin; i++) flops += 2.0 * x->N * (double)x->lin[i].in * x->lin[i].out;
    return flops;
}

static lmf_status calib_matmul(const lmf_kernels *k, double secs, lmf_comm *comm,
                               lmf_plan_kernel_rates *r, FILE *log) {
    /* buffers for the widest product's activations and the largest weight at the widest C */
    kc_ctx x = {.k = k, .N = KC_ROWS};
    kc_set_linears(&x, kc_widths[KC_NW - 1]);
    size_t width = 0, wn = 0;
    for (int i = 0; i < x.n_lin; i++) {
        size_t in = (size_t)x.lin[i].in, out = (size_t)x.lin[i].out;
        width = in > width ? in : width;
        width = out > width ? out : width;
        wn = in * out > wn ? in * out : wn;
    }
    size_t big = (size_t)KC_ROWS * width;
    x.a = kc_floats(big, 0.01f); x.b = kc_floats(big, 0.0f); x.c = kc_floats(big, 0.01f);
    x.d = kc_floats(big, 0.0f); x.w = kc_floats(wn, 0.01f); x.dw = kc_floats(wn, 0.0f);
    x.bias = kc_floats(width, 0.01f); x.dbias = kc_floats(width, 0.0f);
    if (!x.a || !x.b || !x.c || !x.d || !x.w || !x.dw || !x.bias || !x.dbias) return kc_nomem(&x, "matmul");
    lmf_status st = LMF_OK;
    r->rows = KC_ROWS;
    r->matmul.n = 0;
    for (int i = 0; i < KC_NW && st == LMF_OK; i++) {
        double flops = kc_set_linears(&x, kc_widths[i]);
        lmf_plan_rate_curve *cv = &r->matmul;
        curve_point(&x, KC_MM_FWD, KC_MM_BWD, secs, comm, &st, x.C, flops, 2.0 * flops, cv);
        lmf_plan_say(log, "  matmul C=%-5d      %8.1f GFLOP/s forward, %.1f backward (%d rows)\n", x.C,
            cv->fwd[cv->n - 1] / 1e9, cv->bwd[cv->n - 1] / 1e9, KC_ROWS);
    }
    kc_free(&x);
    return st;
}

static lmf_status calib_attention(const lmf_kernels *k, double secs, lmf_comm *comm,
                                  lmf_plan_kernel_rates *r, FILE *log) {
    int C = KC_ATT_HEADS * KC_ATT_HS, tmax = kc_seqs[KC_NS - 1];
    size_t qkv = (size_t)tmax * 3 * C, out = (size_t)tmax * C;
    kc_ctx x = {.k = k, .C = C};
    x.a = kc_floats(qkv, 0.01f); x.b = kc_floats(qkv, 0.0f); x.c = kc_floats(out, 0.01f);
    x.d = kc_floats(k->attention_scratch_floats(1, tmax, KC_ATT_HEADS, C), 0.0f);
    x.e = kc_floats(k->attention_saved_floats(1, tmax, KC_ATT_HEADS), 0.0f);
    if (!x.a || !x.b || !x.c || !x.d || !x.e) return kc_nomem(&x, "attention");
    lmf_status st = LMF_OK;
    r->attention.n = 0;
    for (int i = 0; i < KC_NS && st == LMF_OK; i++) {
        x.T = kc_seqs[i];
        lmf_plan_rate_curve *cv = &r->attention;
        curve_point(&x, KC_ATT_FWD, KC_ATT_BWD, secs, comm, &st, x.T, lmf_attention_flops(1, x.T, C, 0),
                    lmf_attention_flops(1, x.T, C, 1), cv);
        lmf_plan_say(log, "  attention T=%-5d   %8.1f GFLOP/s forward, %.1f backward\n", x.T,
            cv->fwd[cv->n - 1] / 1e9, cv->bwd[cv->n - 1] / 1e9);
    }
    kc_free(&x);
    return st;
}

static lmf_status calib_classifier(const lmf_kernels *k, double secs, lmf_comm *comm,
                                   lmf_plan_kernel_rates *r, FILE *log) {
    int cmax = kc_widths[KC_NW - 1], N = KC_CLS_ROWS, V = KC_CLS_VOCAB;
    kc_ctx x = {.k = k, .N = N, .V = V};
    x.a = kc_floats((size_t)N * cmax, 0.01f); x.b = kc_floats((size_t)N * cmax, 0.0f);
    x.w = kc_floats((size_t)V * cmax, 0.01f); x.dw = kc_floats((size_t)V * cmax, 0.0f);
    x.d = kc_floats(k->classifier_scratch_floats(N, V), 0.0f);
    x.mean = kc_floats((size_t)N, 0.0f);
    x.ids = malloc((size_t)N * sizeof *x.ids);
    if (!x.a || !x.b || !x.w || !x.dw || !x.d || !x.mean || !x.ids) return kc_nomem(&x, "classifier");
    for (int i = 0; i < N; i++) x.ids[i] = (int32_t)(((uint32_t)i * 2654435761u) % (uint32_t)V);
    lmf_status st = LMF_OK;
    x.what = KC_CLS;
    r->classifier.n = 0;
    for (int i = 0; i < KC_NW && st == LMF_OK; i++) {
        x.C = kc_widths[i];
        double t = kc_time(&x, secs, comm, &st);
        /* the FLOPs the model counts for a training step's classifier over N rows */
        lmf_gpt_config cfg = kc_config(x.C, N, V);
        lmf_step_work fw, bw;
        lmf_gpt_step_work(&cfg, 1, N, LMF_RECOMPUTE_NONE, &fw, &bw);
        lmf_plan_rate_curve *cv = &r->classifier;
        cv->x[cv->n] = x.C;
        cv->fwd[cv->n] = cv->bwd[cv->n] = fw.op[LMF_OP_CLASSIFIER].flops / t;
        lmf_plan_say(log, "  classifier C=%-5d  %8.1f GFLOP/s (%d rows, vocabulary %d)\n", x.C,
            cv->fwd[cv->n] / 1e9, N, V);
        cv->n++;
    }
    kc_free(&x);
    return st;
}

static lmf_status calib_elementwise(const lmf_kernels *k, double secs, lmf_comm *comm,
                                    lmf_plan_kernel_rates *r, FILE *log) {
    int N = KC_EW_ROWS, C = KC_EW_COLS, Vp = 4096;
    size_t n = (size_t)N * C, big = n > KC_ADAMW_N ? n : KC_ADAMW_N;
    kc_ctx x = {.k = k, .N = N, .C = C, .what = KC_EW};
    x.a = kc_floats(big, 0.01f); x.b = kc_floats(big, 0.01f); x.c = kc_floats(big, 0.01f);
    x.d = kc_floats(big, 0.01f);
    x.w = kc_floats((size_t)Vp * C, 0.01f); x.dw = kc_floats((size_t)N * C, 0.0f);
    x.bias = kc_floats((size_t)C, 0.01f); x.dbias = kc_floats((size_t)C, 0.0f);
    x.mean = kc_floats((size_t)N, 0.0f); x.rstd = kc_floats((size_t)N, 1.0f);
    x.ids = malloc((size_t)N * sizeof *x.ids);
    if (!x.a || !x.b || !x.c || !x.d || !x.w || !x.dw || !x.bias || !x.dbias || !x.mean ||
        !x.rstd || !x.ids)
        return kc_nomem(&x, "element-wise");
    for (int i = 0; i < N; i++) x.ids[i] = (int32_t)(((uint32_t)i * 2654435761u) % (uint32_t)Vp);
    for (int i = 0; i < N; i++) x.rstd[i] = 1.0f;
    lmf_status st = LMF_OK;
    for (int e = 0; e < LMF_PLAN_EW_COUNT && st == LMF_OK; e++) {
        x.ew = (lmf_plan_ew)e;
        int per_param = e == LMF_PLAN_EW_ADAMW || e == LMF_PLAN_EW_SUMSQ;
        x.n = per_param ? KC_ADAMW_N : n;
        if (e == LMF_PLAN_EW_ADAMW) /* second moments must stay positive */
            for (size_t i = 0; i < x.n; i++) x.d[i] = 1e-4f;
        double t = kc_time(&x, secs, comm, &st);
        r->bandwidth[e] = lmf_plan_ew_bytes[e] * (double)x.n / t;
        lmf_plan_say(log, "  %-26s %6.2f GB/s (%.0f bytes per %s)\n", lmf_plan_ew_name((lmf_plan_ew)e),
            r->bandwidth[e] / 1e9, lmf_plan_ew_bytes[e], per_param ? "parameter" : "value");
    }
    kc_free(&x);
    return st;
}

lmf_status lmf_plan_calibrate_kernels(const lmf_kernels *k, double seconds, lmf_comm *comm,
                                      lmf_plan_kernel_rates *r, FILE *log) {
    memset(r, 0, sizeof *r);
    snprintf(r->table, sizeof r->table, "%s", k->name);
    double secs = seconds > 0.0 ? seconds : 0.2;
    LMF_TRY(calib_matmul(k, secs, comm, r, log));
    LMF_TRY(calib_attention(k, secs, comm, r, log));
    LMF_TRY(calib_classifier(k, secs, comm, r, log));
    return calib_elementwise(k, secs, comm, r, log);
}

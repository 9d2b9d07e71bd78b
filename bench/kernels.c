/* Kernel benchmark: GFLOP/s (or GB/s) of each fast kernel at GPT-2 124M shapes vs measured peak. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lmforge/kernels.h"
#include "lmforge/perf.h"
#include "lmforge/threads.h"

/* GPT-2 124M */
#define C_ 768
#define NH_ 12
#define L_ 12
#define V_ 50257
#define VP_ 50304
#define NPARAMS 124475904ull /* floats in the padded parameter block (wte padded to VP_) */

static double min_seconds = 0.3; /* per measurement: repeat until this much time has passed */

static float *rnd(size_t n, float a) {
    float *p = malloc(n * sizeof *p);
    if (!p) {
        fprintf(stderr, "bench_kernels: out of memory (%zu floats)\n", n);
        exit(1);
    }
    uint64_t s = 0x1234567ull + n;
    for (size_t i = 0; i < n; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        p[i] = ((float)(s >> 40) / 16777216.0f * 2.0f - 1.0f) * a;
    }
    return p;
}

/* One benchmark case: a closure over its buffers. */
typedef struct bcase {
    const lmf_kernels *k;
    int B, T, N, C, OC, NH, V;
    size_t n;
    float *a, *b, *c, *d, *e, *f, *g, *h, *i;
    int32_t *ids;
} bcase;

typedef void (*bfn)(bcase *x);

/* best time of one call, over repeats lasting at least min_seconds (at least 2 calls) */
static double time_it(bfn f, bcase *x) {
    f(x); /* warm-up */
    double best = 1e30, start = lmf_now_s();
    int reps = 0;
    while (reps < 2 || lmf_now_s() - start < min_seconds) {
        double t0 = lmf_now_s();
        f(x);
        double t = lmf_now_s() - t0;
        if (t < best) best = t;
        reps++;
    }
    return best;
}

static void mm_fwd(bcase *x) { x->k->matmul_forward(x->c, x->a, x->b, x->d, x->N, x->C, x->OC); }
static void mm_bwd(bcase *x) {
    x->k->matmul_backward(x->e, x->f, x->g, x->c, x->a, x->b, x->N, x->C, x->OC);
}
static void att_fwd(bcase *x) {
    x->k->attention_forward(x->b, x->c, x->a, NULL, x->B, x->T, x->C, x->NH);
}
static void att_bwd(bcase *x) {
    x->k->attention_backward(x->d, x->e, x->b, x->a, x->c, NULL, x->B, x->T, x->C, x->NH);
}
static void ln_fwd(bcase *x) { x->k->layernorm_forward(x->b, x->e, x->f, x->a, x->c, x->d, x->N, x->C); }
static void ln_bwd(bcase *x) {
    x->k->layernorm_backward(x->g, x->h, x->i, x->b, x->a, x->c, x->e, x->f, x->N, x->C);
}
/* fused kernels and the unfused pairs they replace */
static void fc_gelu_pair(bcase *x) {
    x->k->matmul_forward(x->c, x->a, x->b, x->d, x->N, x->C, x->OC);
    x->k->gelu_forward(x->e, x->c, (size_t)x->N * x->OC);
}
static void fc_gelu_fused(bcase *x) {
    x->k->matmul_gelu_forward(x->c, x->e, x->a, x->b, x->d, x->N, x->C, x->OC);
}
static void gelu_bwd_only(bcase *x) { /* GELU backward alone, no bias sums */
    x->k->gelu_backward(x->e, x->c, x->f, (size_t)x->N * x->OC);
}
static void gelu_bias_fused(bcase *x) {
    x->k->gelu_bias_backward(x->e, x->d, x->c, x->f, x->N, x->OC);
}
static void res_ln_pair(bcase *x) {
    x->k->residual_forward(x->g, x->a, x->b, (size_t)x->N * x->C);
    x->k->layernorm_forward(x->h, x->e, x->f, x->g, x->c, x->d, x->N, x->C);
}
static void res_ln_fused(bcase *x) {
    x->k->residual_layernorm_forward(x->g, x->h, x->e, x->f, x->a, x->b, x->c, x->d, x->N, x->C);
}
static void gelu_fwd(bcase *x) { x->k->gelu_forward(x->b, x->a, x->n); }
static void gelu_bwd(bcase *x) { x->k->gelu_backward(x->c, x->a, x->b, x->n); }
static void res_fwd(bcase *x) { x->k->residual_forward(x->c, x->a, x->b, x->n); }
static void enc_fwd(bcase *x) { x->k->encoder_forward(x->c, x->ids, x->a, x->b, x->B, x->T, x->C); }
static void enc_bwd(bcase *x) { x->k->encoder_backward(x->d, x->e, x->c, x->ids, x->B, x->T, x->C); }
static void cls_fwd(bcase *x) {
    x->k->classifier(x->c, NULL, NULL, x->d, x->a, x->b, x->ids, 1.0f, x->N, x->C, x->V);
}
static void cls_fwdbwd(bcase *x) {
    x->k->classifier(x->c, x->e, x->f, x->d, x->a, x->b, x->ids, 1.0f / x->N, x->N, x->C, x->V);
}
/* one rank's part of the vocabulary-parallel classifier: stats, then the backward (the lse is
 * whatever the buffer holds; the cost does not depend on it) */
static void cls_vp_fwdbwd(bcase *x) {
    x->k->classifier_vp_stats(x->g, x->d, x->a, x->b, x->ids, 0, x->N, x->C, x->V);
    x->k->classifier_vp_backward(x->e, x->f, x->d, x->a, x->b, x->ids, x->h, 1.0f / x->N, 0,
                                 x->N, x->C, x->V);
}
static void adamw_step(bcase *x) {
    /* b is zeroed by the first call; the step's cost does not depend on the values */
    x->k->adamw(x->a, x->b, x->c, x->d, x->n, 1e-4f, 0.9f, 0.95f, 1e-8f, 0.1f, 1.0f, 3);
}
static volatile double sink;
static void sumsq_run(bcase *x) { sink = x->k->sumsq(x->b, x->n); }

/* Accumulates the estimated time and FLOPs of one training step from per-kernel numbers. */
typedef struct step_total {
    double seconds, flops;
    double part[8]; /* matmul, attention, classifier, layernorm, gelu, residual, encoder, adamw */
} step_total;
static const char *part_names[8] = {"matmuls", "attention", "classifier", "layernorm",
                                    "gelu", "residual", "encoder", "adamw+sumsq"};

static void report(const char *name, const char *shape, double t, double flops, double bytes,
                   double peak, int per_step, int part, step_total *st) {
    if (flops > 0)
        printf("  %-22s %-22s %9.3f ms %8.1f GFLOP/s %5.1f%% of peak\n", name, shape, t * 1e3,
               flops / t * 1e-9, 100.0 * flops / t * 1e-9 / peak);
    else
        printf("  %-22s %-22s %9.3f ms %8.1f GB/s\n", name, shape, t * 1e3, bytes / t * 1e-9);
    if (st) {
        st->seconds += per_step * t;
        st->flops += per_step * flops;
        st->part[part] += per_step * t;
    }
}

static void bench_shape(const lmf_kernels *k, int B, int T, double peak, int with_adamw) {
    const int N = B * T, C = C_;
    char shape[64];
    step_total st;
    memset(&st, 0, sizeof st);
    printf("\n%s kernels, B=%d T=%d (N=%d rows), C=%d, NH=%d, V=%d:\n", k->name, B, T, N, C, NH_, V_);

    /* the four matmuls of a layer: qkv, attention projection, MLP up, MLP down */
    const int mm[4][2] = {{C, 3 * C}, {C, C}, {C, 4 * C}, {4 * C, C}};
    const char *mm_name[4] = {"qkv", "attn.proj", "mlp.fc", "mlp.proj"};
    for (int i = 0; i < 4; i++) {
        int IC = mm[i][0], OC = mm[i][1];
        bcase x = {.k = k, .N = N, .C = IC, .OC = OC};
        x.a = rnd((size_t)N * IC, 1); x.b = rnd((size_t)IC * OC, 0.02f); x.c = rnd((size_t)N * OC, 1);
        x.d = rnd(OC, 0.1f); x.e = rnd((size_t)N * IC, 0); x.f = rnd((size_t)IC * OC, 0); x.g = rnd(OC, 0);
        double fl = 2.0 * N * IC * OC;
        char nm[48];
        snprintf(shape, sizeof shape, "%dx%d @ %dx%d", N, IC, IC, OC);
        snprintf(nm, sizeof nm, "matmul %s fwd", mm_name[i]);
        report(nm, shape, time_it(mm_fwd, &x), fl, 0, peak, L_, 0, &st);
        snprintf(nm, sizeof nm, "matmul %s bwd", mm_name[i]);
        report(nm, shape, time_it(mm_bwd, &x), 2 * fl, 0, peak, L_, 0, &st);
        free(x.a); free(x.b); free(x.c); free(x.d); free(x.e); free(x.f); free(x.g);
    }
    {
        /* fused kernels against the pairs of kernels they replace (not in the step total) */
        bcase x = {.k = k, .N = N, .C = C, .OC = 4 * C};
        size_t no = (size_t)N * 4 * C;
        x.a = rnd((size_t)N * C, 1); x.b = rnd((size_t)C * 4 * C, 0.02f); x.c = rnd(no, 1);
        x.d = rnd(4 * C, 0.1f); x.e = rnd(no, 0); x.f = rnd(no, 1);
        double fl = 2.0 * N * C * 4 * C;
        snprintf(shape, sizeof shape, "%dx%d @ %dx%d", N, C, C, 4 * C);
        report("mlp.fc fwd + gelu fwd", shape, time_it(fc_gelu_pair, &x), fl, 0, peak, 0, 0, NULL);
        report("matmul_gelu (fused)", shape, time_it(fc_gelu_fused, &x), fl, 0, peak, 0, 0, NULL);
        snprintf(shape, sizeof shape, "%zu", no);
        /* the bias sums used to be one more pass over the GELU gradient (in matmul_backward) */
        report("gelu bwd (no bias sum)", shape, time_it(gelu_bwd_only, &x), 0, 12.0 * no, peak, 0, 0, NULL);
        report("gelu+bias bwd (fused)", shape, time_it(gelu_bias_fused, &x), 0, 12.0 * no, peak, 0, 0, NULL);
        free(x.a); free(x.b); free(x.c); free(x.d); free(x.e); free(x.f);
        bcase y = {.k = k, .N = N, .C = C};
        size_t n = (size_t)N * C;
        y.a = rnd(n, 1); y.b = rnd(n, 1); y.c = rnd(C, 1); y.d = rnd(C, 1); y.e = rnd(N, 0);
        y.f = rnd(N, 0); y.g = rnd(n, 0); y.h = rnd(n, 0);
        snprintf(shape, sizeof shape, "%dx%d", N, C);
        report("residual + layernorm", shape, time_it(res_ln_pair, &y), 0, 20.0 * n, peak, 0, 0, NULL);
        report("res+layernorm (fused)", shape, time_it(res_ln_fused, &y), 0, 16.0 * n, peak, 0, 0, NULL);
        free(y.a); free(y.b); free(y.c); free(y.d); free(y.e); free(y.f); free(y.g); free(y.h);
    }
    {
        bcase x = {.k = k, .B = B, .T = T, .C = C, .NH = NH_};
        size_t ns = k->attention_saved_floats(B, T, NH_), nsc = k->attention_scratch_floats(B, T, NH_, C);
        x.a = rnd((size_t)N * 3 * C, 1); x.b = rnd((size_t)N * C, 1); x.c = rnd(ns, 0);
        x.d = rnd((size_t)N * 3 * C, 0); x.e = rnd(nsc, 0);
        /* causal: only the T(T+1)/2 (query, key) pairs that count */
        double fl = 2.0 * 2.0 * B * NH_ * (T * (T + 1.0) / 2.0) * (C / NH_);
        snprintf(shape, sizeof shape, "B%d T%d NH%d hs%d", B, T, NH_, C / NH_);
        report("attention fwd", shape, time_it(att_fwd, &x), fl, 0, peak, L_, 1, &st);
        report("attention bwd", shape, time_it(att_bwd, &x), 2 * fl, 0, peak, L_, 1, &st);
        free(x.a); free(x.b); free(x.c); free(x.d); free(x.e);
    }
    {
        bcase x = {.k = k, .N = N, .C = C};
        x.a = rnd((size_t)N * C, 1); x.b = rnd((size_t)N * C, 1); x.c = rnd(C, 1); x.d = rnd(C, 1);
        x.e = rnd(N, 0); x.f = rnd(N, 0); x.g = rnd((size_t)N * C, 0); x.h = rnd(C, 0); x.i = rnd(C, 0);
        snprintf(shape, sizeof shape, "%dx%d", N, C);
        report("layernorm fwd", shape, time_it(ln_fwd, &x), 0, 8.0 * N * C, peak, 2 * L_ + 1, 3, &st);
        report("layernorm bwd", shape, time_it(ln_bwd, &x), 0, 16.0 * N * C, peak, 2 * L_ + 1, 3, &st);
        free(x.a); free(x.b); free(x.c); free(x.d); free(x.e); free(x.f); free(x.g); free(x.h); free(x.i);
    }
    {
        bcase x = {.k = k, .n = (size_t)N * 4 * C};
        x.a = rnd(x.n, 3); x.b = rnd(x.n, 1); x.c = rnd(x.n, 0);
        snprintf(shape, sizeof shape, "%zu", x.n);
        report("gelu fwd", shape, time_it(gelu_fwd, &x), 0, 8.0 * x.n, peak, L_, 4, &st);
        report("gelu bwd", shape, time_it(gelu_bwd, &x), 0, 16.0 * x.n, peak, L_, 4, &st);
        free(x.a); free(x.b); free(x.c);
    }
    {
        bcase x = {.k = k, .n = (size_t)N * C};
        x.a = rnd(x.n, 1); x.b = rnd(x.n, 1); x.c = rnd(x.n, 0);
        snprintf(shape, sizeof shape, "%zu", x.n);
        /* forward adds twice per layer; the backward of a residual is a second add into dx */
        report("residual", shape, time_it(res_fwd, &x), 0, 12.0 * x.n, peak, 4 * L_, 5, &st);
        free(x.a); free(x.b); free(x.c);
    }
    {
        bcase x = {.k = k, .B = B, .T = T, .C = C};
        x.ids = malloc((size_t)N * sizeof *x.ids);
        for (int i = 0; i < N; i++) x.ids[i] = (int32_t)((i * 7919) % V_);
        x.a = rnd((size_t)VP_ * C, 0.02f); x.b = rnd((size_t)T * C, 0.02f); x.c = rnd((size_t)N * C, 1);
        x.d = rnd((size_t)VP_ * C, 0); x.e = rnd((size_t)T * C, 0);
        snprintf(shape, sizeof shape, "%dx%d", N, C);
        report("encoder fwd", shape, time_it(enc_fwd, &x), 0, 12.0 * N * C, peak, 1, 6, &st);
        report("encoder bwd", shape, time_it(enc_bwd, &x), 0, 16.0 * N * C, peak, 1, 6, &st);
        free(x.b); free(x.c); free(x.d); free(x.e);

        /* classifier over the same wte */
        bcase y = {.k = k, .N = N, .C = C, .V = V_, .ids = x.ids, .b = x.a};
        y.a = rnd((size_t)N * C, 1); y.c = rnd(N, 0); y.d = rnd(k->classifier_scratch_floats(N, V_), 0);
        y.e = rnd((size_t)N * C, 0); y.f = rnd((size_t)VP_ * C, 0);
        double fl = 2.0 * N * (double)V_ * C;
        snprintf(shape, sizeof shape, "%dx%d @ %dx%d", N, C, C, V_);
        report("classifier fwd", shape, time_it(cls_fwd, &y), fl, 0, peak, 0, 2, NULL);
        double t_whole = time_it(cls_fwdbwd, &y);
        report("classifier fwd+bwd", shape, t_whole, 3 * fl, 0, peak, 1, 2, &st);
        free(y.d);

        /* rank 0 of 2 of the vocabulary-parallel classifier (rows [0, VP_/2)): 4 GEMMs, the
         * logits computed twice (stats, then recomputed by the backward) */
        const int Vr = VP_ / 2;
        y.V = Vr;
        y.d = rnd(k->classifier_vp_scratch_floats(N, Vr), 0);
        y.g = rnd((size_t)N * 3, 0); y.h = rnd(N, 0);
        for (int i = 0; i < N; i++) y.h[i] = 12.0f; /* a plausible log-sum-exp */
        double fl_r = 2.0 * N * (double)Vr * C, t_vp = time_it(cls_vp_fwdbwd, &y);
        snprintf(shape, sizeof shape, "%dx%d @ %dx%d", N, C, C, Vr);
        report("classifier_vp 1 of 2", shape, t_vp, 4 * fl_r, 0, peak, 0, 2, NULL);
        printf("  %-22s %.2fx the whole classifier's time (ideal 0.5; 4 GEMMs of half the rows "
               "against 3 of all: 0.67)\n", "", t_vp / t_whole);
        free(y.a); free(y.c); free(y.d); free(y.e); free(y.f); free(y.g); free(y.h); free(x.a);
        free(x.ids);
    }
    if (with_adamw) {
        bcase x = {.k = k, .n = NPARAMS};
        x.a = rnd(x.n, 0.02f); x.b = rnd(x.n, 0.01f); x.c = rnd(x.n, 0); x.d = rnd(x.n, 0);
        snprintf(shape, sizeof shape, "%zu params", x.n);
        report("adamw", shape, time_it(adamw_step, &x), 0, 28.0 * x.n, peak, 1, 7, &st);
        report("sumsq (grad norm)", shape, time_it(sumsq_run, &x), 0, 4.0 * x.n, peak, 1, 7, &st);
        free(x.a); free(x.b); free(x.c); free(x.d);
    }
    printf("  one training step from these kernels (%d layers%s): %.1f ms, %.1f GFLOP/s, %.1f%% of peak\n",
           L_, with_adamw ? ", AdamW" : "", st.seconds * 1e3, st.flops / st.seconds * 1e-9,
           100.0 * st.flops / st.seconds * 1e-9 / peak);
    printf("  where the time goes:");
    for (int i = 0; i < 8; i++)
        if (st.part[i] > 0) printf(" %s %.1f%%", part_names[i], 100.0 * st.part[i] / st.seconds);
    printf("\n");
}

static void usage(FILE *f) {
    fprintf(f, "usage: bench_kernels [--threads N] [--quick] [--ref]\n"
               "  Times every fast kernel at GPT-2 124M shapes (B=4,T=64 and B=8,T=256) and\n"
               "  prints GFLOP/s (GB/s for memory-bound kernels) against the measured FMA peak.\n"
               "  --threads N  kernel threads (default 2)\n"
               "  --quick      shorter measurements, B=4,T=64 only\n"
               "  --ref        also time the reference kernels at B=4,T=64 (slow)\n");
}

int main(int argc, char **argv) {
    int threads = 2, quick = 0, ref = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
            threads = atoi(argv[++i]);
            if (threads < 1) {
                fprintf(stderr, "bench_kernels: error: --threads wants a positive number\n");
                return 2;
            }
        } else if (strcmp(argv[i], "--quick") == 0) {
            quick = 1;
        } else if (strcmp(argv[i], "--ref") == 0) {
            ref = 1;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "bench_kernels: error: unknown argument '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (quick) min_seconds = 0.05;
    lmf_threads_set(threads);
    double peak = lmf_peak_gflops(threads, quick ? 0.2 : 1.0);
    printf("threads %d; measured fp32 FMA peak %.1f GFLOP/s (lmf_peak_gflops)\n", threads, peak);
    bench_shape(lmf_kernels_fast(), 4, 64, peak, !quick);
    if (!quick) bench_shape(lmf_kernels_fast(), 8, 256, peak, 0);
    if (ref) bench_shape(lmf_kernels_ref(), 4, 64, peak, 0);
    double peak2 = lmf_peak_gflops(threads, quick ? 0.2 : 1.0);
    printf("\npeak measured again at the end: %.1f GFLOP/s; peak RSS %.0f MiB\n", peak2,
           (double)lmf_peak_rss_bytes() / (1024.0 * 1024.0));
    return 0;
}

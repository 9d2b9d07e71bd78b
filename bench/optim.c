/* Optimizer-step benchmark: the fused AdamW pass (gradient scale folded in, gradients zeroed in
 * the same pass) against the step done as separate passes, both after the gradient-norm pass,
 * on one flat parameter vector.
 *   bench_optim [MILLION_PARAMS] [REPEATS] [THREADS]   defaults: 124, 9, all processors
 * Separate passes: norm (read g), scale (read and write g), AdamW with scale 1 whose write of
 * zeros stands in for the zeroing pass: 11 floats moved per parameter, as scale + AdamW +
 * memset did before the fusion. Fused: norm + one pass (read g, p, m, v; write p, m, v, g): 9.
 * Prints the median time of each, the bandwidth and the ratio. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lmforge/kernels.h"
#include "lmforge/perf.h"
#include "lmforge/threads.h"
#include "bench_util.h"

#define MAXREP 31

static float *filled(size_t n, float a) {
    float *x = malloc(n * sizeof *x);
    if (x)
        for (size_t i = 0; i < n; i++) x[i] = a * (float)((i * 2654435761u) % 1000) / 1000.0f;
    return x;
}

int main(int argc, char **argv) {
    double mp = argc > 1 ? atof(argv[1]) : 124.0;
    int reps = argc > 2 ? atoi(argv[2]) : 9;
    int threads = lmf_threads_set(argc > 3 ? atoi(argv[3]) : 0);
    if (mp <= 0 || reps < 1 || reps > MAXREP) {
        fprintf(stderr, "bench_optim: usage: bench_optim [MILLION_PARAMS > 0] [REPEATS 1..%d] "
                "[THREADS]\n", MAXREP);
        return 2;
    }
    size_t n = (size_t)(mp * 1e6);
    const lmf_kernels *k = lmf_kernels_fast();
    float *p = filled(n, 1.0f), *g = filled(n, 0.01f), *m = filled(n, 0.0f), *v = filled(n, 0.0f);
    float *g0 = filled(n, 0.01f);
    if (!p || !g || !m || !v || !g0) {
        fprintf(stderr, "bench_optim: cannot allocate 5 x %zu floats\n", n);
        return 1;
    }
    double fused[MAXREP], split[MAXREP];
    const float scale = 0.5f;
    for (int r = 0; r < reps; r++) {
        /* separate passes: the norm, a scale pass, AdamW (+ zeroing) */
        memcpy(g, g0, n * sizeof(float));
        double t0 = lmf_now_s();
        volatile double ss = k->sumsq(g, n);
        (void)ss;
#pragma omp parallel for schedule(static)
        for (long i = 0; i < (long)n; i++) g[i] *= scale;
        k->adamw(p, g, m, v, n, 1e-4f, 0.9f, 0.95f, 1e-8f, 0.1f, 1.0f, r + 1);
        split[r] = lmf_now_s() - t0;
        /* fused: the norm, then one pass */
        memcpy(g, g0, n * sizeof(float));
        t0 = lmf_now_s();
        ss = k->sumsq(g, n);
        k->adamw(p, g, m, v, n, 1e-4f, 0.9f, 0.95f, 1e-8f, 0.1f, scale, r + 1);
        fused[r] = lmf_now_s() - t0;
    }
    double ts = lmf_bench_median(split, reps), tf = lmf_bench_median(fused, reps);
    printf("optimizer step, %.0fM parameters, %d threads, median of %d:\n", mp, threads, reps);
    printf("  norm + scale + AdamW + zero (separate passes)  %8.2f ms  %6.2f GB/s\n", ts * 1e3,
           (double)n * 4 * 11 / ts / 1e9);
    printf("  norm + fused AdamW (scale and zero folded in)  %8.2f ms  %6.2f GB/s\n", tf * 1e3,
           (double)n * 4 * 9 / tf / 1e9);
    printf("  fused speed-up %.2fx\n", ts / tf);
    free(p);
    free(g);
    free(m);
    free(v);
    free(g0);
    return 0;
}

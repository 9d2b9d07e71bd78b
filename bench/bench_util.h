/* Shared by the benchmark programs: the median of repeated timings. */
#ifndef LMF_BENCH_UTIL_H
#define LMF_BENCH_UTIL_H

/* median of x[n] (n >= 1); sorts x in place */
static inline double lmf_bench_median(double *x, int n) {
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && x[j] < x[j - 1]; j--) {
            double t = x[j];
            x[j] = x[j - 1];
            x[j - 1] = t;
        }
    return x[n / 2];
}

#endif

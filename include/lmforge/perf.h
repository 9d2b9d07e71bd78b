/* Performance measurement: machine FMA peak, peak memory use, a monotonic clock. */
#ifndef LMFORGE_PERF_H
#define LMFORGE_PERF_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Measured fp32 peak of `threads` threads (<= 0: the current kernel thread count) running an
 * AVX2 FMA loop with enough independent accumulators to fill both FMA pipes, for about
 * `seconds` (clamped to [0.01, 10]). Returns GFLOP/s of the whole set of threads. Use it as the
 * denominator of MFU on CPUs. */
double lmf_peak_gflops(int threads, double seconds);

/* Peak resident set size of this process so far, in bytes (getrusage), 0 when unknown. */
size_t lmf_peak_rss_bytes(void);

/* Seconds from a monotonic clock (differences only). */
double lmf_now_s(void);

#ifdef __cplusplus
}
#endif
#endif

/* Performance measurement of the kernels: the machine's FMA peak and the threads' busy time. */
#ifndef LMFORGE_PERF_H
#define LMFORGE_PERF_H

#include <stddef.h>
#include "lmforge/system.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Measured fp32 peak of `threads` threads (<= 0: the current kernel thread count) running an
 * AVX2 FMA loop with enough independent accumulators to fill both FMA pipes, for about
 * `seconds` (clamped to [0.01, 10]). Returns GFLOP/s of the whole set of threads. Use it as the
 * denominator of MFU on CPUs. */
double lmf_peak_gflops(int threads, double seconds);
/* The same loop, counted over the time each thread actually ran (its CPU time) rather than the
 * wall time: other processes sharing the cores take time from the threads but cannot lower
 * this rate. The peak MFU is taken against (lmf_peak_get). */
double lmf_peak_gflops_running(int threads, double seconds);

/* The one peak every MFU is taken against (training progress and metrics, lmforge bench): the
 * fp32 FMA peak of `threads` threads, measured long enough to mean something (0.3 s of warm-up,
 * then the best of 5 trials of 0.3 s, each over the threads' CPU time: a busy machine can only
 * make a trial read low) and kept
 * in a cache file per processor model and thread count, so that every report of a machine uses
 * the same figure. The cache is $XDG_CACHE_HOME/lmforge (else ~/.cache/lmforge); a new
 * measurement (refresh, or no cache) keeps the larger of it and the cached value. */
typedef enum lmf_peak_source {
    LMF_PEAK_MEASURED = 0, /* measured now (and written to the cache when it could be) */
    LMF_PEAK_CACHED        /* read from the cache file */
} lmf_peak_source;
typedef struct lmf_peak {
    double gflops;          /* GFLOP/s of the whole set of threads */
    int threads;
    lmf_peak_source source;
    char cache[1024];       /* the cache file read or written; "" when there is none */
    char note[256];         /* why the cache could not be used or written, else "" */
} lmf_peak;
/* threads <= 0: the current kernel thread count. Never fails: without a usable cache the
 * value is measured and note says why it was not cached. */
void lmf_peak_get(int threads, int refresh, lmf_peak *out);
/* "measured" or "cached" */
const char *lmf_peak_source_name(lmf_peak_source s);
/* One line for a report: "233.1 GFLOP/s on 2 threads (cached in FILE)". */
void lmf_peak_describe(const lmf_peak *p, char *buf, size_t cap);

/* Busy-time accounting of the fast kernels, for the idle fraction of the thread team:
 *   idle = 1 - busy thread-seconds / (threads x wall seconds)
 * where busy is the time each thread spends on its share inside a parallel region of the fast
 * kernels, plus the calling thread's time in serial code (which the caller derives as wall
 * time minus region wall time). Spinning at a barrier or waiting to start is not busy.
 * Off by default; while off, every parallel region pays one branch. Switch and read only
 * outside parallel regions. */
void lmf_busy_enable(int on);
int lmf_busy_enabled(void);
/* Totals since the process started, counted only while enabled: busy_thread_s = thread-seconds
 * of work inside parallel regions (all threads); region_wall_s = wall seconds those regions
 * lasted. Either pointer may be NULL. Take differences around the code to measure. */
void lmf_busy_read(double *busy_thread_s, double *region_wall_s);

#ifdef __cplusplus
}
#endif
#endif

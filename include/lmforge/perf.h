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

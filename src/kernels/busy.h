/* Busy-time accounting inside the fast kernels' parallel regions (internal; for the idle fraction). */
#ifndef LMF_KERNELS_BUSY_H
#define LMF_KERNELS_BUSY_H

#include <omp.h>

#include "lmforge/perf.h"

/* How it works. Every parallel region of the fast kernels opens with LMF_BUSY_BEGIN() and
 * closes with LMF_BUSY_END(), both at the region's top level (never inside a worksharing
 * loop; loops inside take `nowait`, so a thread that finishes its share early does not count
 * its wait at the loop's barrier as work). When accounting is on, END adds the thread's
 * seconds from BEGIN to END (its share of the work) to its own slot, then waits at a barrier,
 * after which thread 0 adds the region's wall time (from its BEGIN until every thread is
 * done). Threads that start late, finish early or are not used (teams smaller than the
 * thread count) are therefore idle, whatever OpenMP's wait policy (spinning is not work).
 * When accounting is off each macro costs one predictable branch on a global flag. */

#define LMF_BUSY_SLOTS 256

typedef struct lmf_busy_slot {
    _Alignas(64) double busy_s; /* one cache line per thread: no false sharing */
} lmf_busy_slot;

extern lmf_busy_slot lmf_busy_slots[LMF_BUSY_SLOTS];
extern int lmf_busy_on;
extern double lmf_busy_wall_s; /* written by thread 0 only */

static inline void lmf_busy_add(double t0, double t1) {
    int id = omp_get_thread_num();
    if (id < LMF_BUSY_SLOTS) lmf_busy_slots[id].busy_s += t1 - t0;
}

#define LMF_BUSY_BEGIN() const double lmf_busy_t0_ = lmf_busy_on ? lmf_now_s() : 0.0

#define LMF_BUSY_END()                                                            \
    do {                                                                          \
        if (lmf_busy_on) {                                                        \
            lmf_busy_add(lmf_busy_t0_, lmf_now_s());                              \
            _Pragma("omp barrier");                                               \
            if (omp_get_thread_num() == 0) lmf_busy_wall_s += lmf_now_s() - lmf_busy_t0_; \
        }                                                                         \
    } while (0)

#endif

/* Kernel thread count: OpenMP team size, with OpenBLAS kept single-threaded inside it. */
#include "lmforge/threads.h"

#include <cblas.h>
#include <omp.h>
#include <stdlib.h>
#include <unistd.h>

int lmf_threads_default(int ranks_here) {
    /* OMP_NUM_THREADS as OpenMP reads it: a positive count, the first of a nested list */
    const char *env = getenv("OMP_NUM_THREADS");
    if (env && *env) {
        char *end;
        long v = strtol(env, &end, 10);
        if (end != env && (*end == '\0' || *end == ',') && v > 0 && v <= 4096) return (int)v;
    }
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    int mine = omp_get_num_procs(); /* the processors of this process's affinity mask */
    if (online < 1) online = mine;
    if (ranks_here < 1) ranks_here = 1;
    long share = online / ranks_here;
    int n = share < mine ? (int)share : mine;
    return n > 0 ? n : 1;
}

int lmf_threads_set(int n) {
    if (n <= 0) n = lmf_threads_default(1);
    omp_set_num_threads(n);
    openblas_set_num_threads(1);
    return omp_get_max_threads();
}

int lmf_threads_get(void) { return omp_get_max_threads(); }

/* Kernel thread count: OpenMP team size, with OpenBLAS kept single-threaded inside it. */
#include "lmforge/threads.h"

#include <cblas.h>
#include <omp.h>

int lmf_threads_set(int n) {
    if (n <= 0) n = omp_get_num_procs();
    omp_set_num_threads(n);
    openblas_set_num_threads(1);
    return omp_get_max_threads();
}

int lmf_threads_get(void) { return omp_get_max_threads(); }

/* Thread count of the compute kernels: the OpenMP team and OpenBLAS, set together. */
#ifndef LMFORGE_THREADS_H
#define LMFORGE_THREADS_H

#ifdef __cplusplus
extern "C" {
#endif

/* Use n threads for the kernels (n <= 0: lmf_threads_default(1)). The fast kernels split every
 * GEMM over the OpenMP team themselves and call OpenBLAS from inside it, so OpenBLAS is set to
 * 1 thread: n threads in all, never n * n. Returns the number now in effect. Call it outside
 * any parallel region (typically once, at start-up). */
int lmf_threads_set(int n);

/* The threads one of ranks_here processes on this machine should use by default: OMP_NUM_THREADS
 * when it is set; otherwise the machine's processors shared among those processes, and no more
 * than this process may run on (its CPU affinity: a launcher that binds each rank to one core
 * gives one). At least 1. */
int lmf_threads_default(int ranks_here);

/* The number of threads the kernels use (the OpenMP team size). */
int lmf_threads_get(void);

#ifdef __cplusplus
}
#endif
#endif

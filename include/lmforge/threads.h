/* Thread count of the compute kernels: the OpenMP team and OpenBLAS, set together. */
#ifndef LMFORGE_THREADS_H
#define LMFORGE_THREADS_H

#ifdef __cplusplus
extern "C" {
#endif

/* Use n threads for the kernels (n <= 0: one per processor). The fast kernels split every
 * GEMM over the OpenMP team themselves and call OpenBLAS from inside it, so OpenBLAS is set to
 * 1 thread: n threads in all, never n * n. Returns the number now in effect. Call it outside
 * any parallel region (typically once, at start-up). */
int lmf_threads_set(int n);

/* The number of threads the kernels use (the OpenMP team size). */
int lmf_threads_get(void);

#ifdef __cplusplus
}
#endif
#endif

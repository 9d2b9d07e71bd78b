/* Fast dense layer (Conv1D layout, weight (in, out)): sgemm over the OpenMP team. */
#include "kernels/fast/fast.h"

#include <immintrin.h>
#include <omp.h>

#include "kernels/fast/vec.h"

/* out[N,OC] = inp[N,C] @ weight[C,OC] + bias[OC]: each thread fills its slice of out with the
 * bias and lets sgemm add the product (beta = 1). */
void lmf_fast_matmul_forward(float *out, const float *inp, const float *weight, const float *bias,
                             int N, int C, int OC) {
    lmf_fast_gemm(0, 0, N, OC, C, 1.0f, inp, C, weight, OC, 0.0f, out, OC, bias);
}

/* dbias[OC] += column sums of dout[N,OC]. Threads own column ranges and add rows in order
 * 0..N-1, so the result does not depend on the thread count. */
static void dbias_accumulate(float *dbias, const float *dout, int N, int OC) {
#pragma omp parallel
    {
        size_t lo, hi;
        lmf_fast_range((size_t)OC, omp_get_num_threads(), omp_get_thread_num(), 32, &lo, &hi);
        size_t j = lo;
        for (; j + 32 <= hi; j += 32) {
            __m256 a0 = _mm256_loadu_ps(dbias + j), a1 = _mm256_loadu_ps(dbias + j + 8);
            __m256 a2 = _mm256_loadu_ps(dbias + j + 16), a3 = _mm256_loadu_ps(dbias + j + 24);
            for (int n = 0; n < N; n++) {
                const float *d = dout + (size_t)n * OC + j;
                a0 = _mm256_add_ps(a0, _mm256_loadu_ps(d));
                a1 = _mm256_add_ps(a1, _mm256_loadu_ps(d + 8));
                a2 = _mm256_add_ps(a2, _mm256_loadu_ps(d + 16));
                a3 = _mm256_add_ps(a3, _mm256_loadu_ps(d + 24));
            }
            _mm256_storeu_ps(dbias + j, a0);
            _mm256_storeu_ps(dbias + j + 8, a1);
            _mm256_storeu_ps(dbias + j + 16, a2);
            _mm256_storeu_ps(dbias + j + 24, a3);
        }
        for (; j < hi; j++) {
            float s = dbias[j];
            for (int n = 0; n < N; n++) s += dout[(size_t)n * OC + j];
            dbias[j] = s;
        }
    }
}

/* dinp[N,C] += dout @ weight^T; dweight[C,OC] += inp^T @ dout; dbias[OC] += column sums */
void lmf_fast_matmul_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                              const float *inp, const float *weight, int N, int C, int OC) {
    if (dinp) lmf_fast_gemm(0, 1, N, C, OC, 1.0f, dout, OC, weight, OC, 1.0f, dinp, C, NULL);
    lmf_fast_gemm(1, 0, C, OC, N, 1.0f, inp, C, dout, OC, 1.0f, dweight, OC, NULL);
    if (dbias) dbias_accumulate(dbias, dout, N, OC);
}

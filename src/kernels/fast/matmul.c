/* Fast dense layer (Conv1D layout, weight (in, out)): sgemm over the OpenMP team. */
#include "kernels/fast/fast.h"

#include <immintrin.h>
#include <omp.h>

#include "kernels/busy.h"
#include "kernels/fast/vec.h"

/* out[N,OC] = inp[N,C] @ weight[C,OC] + bias[OC]: each thread fills its slice of out with the
 * bias and lets sgemm add the product (beta = 1). */
void lmf_fast_matmul_forward(float *out, const float *inp, const float *weight, const float *bias,
                             int N, int C, int OC) {
    lmf_fast_gemm(0, 0, N, OC, C, 1.0f, inp, C, weight, OC, 0.0f, out, OC, bias);
}

/* The fused matmul + GELU splits the GEMM by rows and runs GELU on each thread's rows right
 * after its sgemm, while much of them is still in L2/L3, with no barrier in between. sgemm
 * cannot hand back tiles small enough to stay in L2 without repacking the weight for each
 * (measured 8-15% slower sgemm at 64-256-row panels), so the gain is limited to the GELU
 * pass's memory traffic and one fork/join. At GPT-2 MLP shapes on 2 threads it measured
 * 0.4-1% faster than matmul + GELU from 1024 rows per thread up, and 5% slower at 128 rows
 * per thread (the row split is a worse sgemm shape there); below FUSE_MIN_ROWS rows per
 * thread the two kernels run one after the other. */
#define FUSE_MIN_ROWS 1024

typedef struct gelu_epi_ctx {
    float *out;
} gelu_epi_ctx;

/* out[r0:r1, c0:c1] = gelu(pre[r0:r1, c0:c1]) on the tile just computed */
static void gelu_epilogue(void *ctx, float *C, int ldc, int r0, int r1, int c0, int c1) {
    float *out = ((gelu_epi_ctx *)ctx)->out;
    for (int r = r0; r < r1; r++)
        lmf_fast_gelu_span(out + (size_t)r * ldc + c0, C + (size_t)r * ldc + c0, (size_t)(c1 - c0));
}

/* pre[N,OC] = inp @ weight + bias, out[N,OC] = gelu(pre): the GEMM's epilogue applies GELU to
 * each thread's rows right after its sgemm (see FUSE_MIN_ROWS). Either way out is
 * lmf_fast_gelu_span of pre, element by element: bit-identical to lmf_fast_gelu_forward. */
void lmf_fast_matmul_gelu_forward(float *pre, float *out, const float *inp, const float *weight,
                                  const float *bias, int N, int C, int OC) {
    if (N < FUSE_MIN_ROWS * omp_get_max_threads()) {
        lmf_fast_matmul_forward(pre, inp, weight, bias, N, C, OC);
        lmf_fast_gelu_forward(out, pre, (size_t)N * OC);
        return;
    }
    gelu_epi_ctx ctx = {out};
    lmf_fast_gemm_epi(0, 0, N, OC, C, 1.0f, inp, C, weight, OC, 0.0f, pre, OC, bias,
                      gelu_epilogue, &ctx);
}

/* dbias[OC] += column sums of dout[N,OC]. Threads own column ranges and add rows in order
 * 0..N-1, so the result does not depend on the thread count. */
static void dbias_accumulate(float *dbias, const float *dout, int N, int OC) {
#pragma omp parallel
    {
        LMF_BUSY_BEGIN();
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
        LMF_BUSY_END();
    }
}

/* dinp[N,C] = dout @ weight^T (written: beta = 0, no zeroing pass); dweight[C,OC] +=
 * inp^T @ dout; dbias[OC] += column sums */
void lmf_fast_matmul_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                              const float *inp, const float *weight, int N, int C, int OC) {
    if (dinp) lmf_fast_gemm(0, 1, N, C, OC, 1.0f, dout, OC, weight, OC, 0.0f, dinp, C, NULL);
    if (dweight) lmf_fast_gemm(1, 0, C, OC, N, 1.0f, inp, C, dout, OC, 1.0f, dweight, OC, NULL);
    if (dbias) dbias_accumulate(dbias, dout, N, OC);
}

/* Row-major sgemm split over the OpenMP team, OpenBLAS single-threaded inside each part. */
#include "kernels/fast/fast.h"

#include <cblas.h>
#include <omp.h>

#include "kernels/busy.h"
#include "kernels/fast/vec.h"

void lmf_fast_blas_single(void) {
    if (openblas_get_num_threads() != 1) openblas_set_num_threads(1);
}

/* C[r0:r1, c0:c1] (one thread's tile) = alpha op(A) op(B) + beta C, bias rows first */
static void gemm_tile(enum CBLAS_TRANSPOSE ta, enum CBLAS_TRANSPOSE tb, int r0, int r1, int c0,
                      int c1, int K, float alpha, const float *A, int lda, const float *B, int ldb,
                      float beta, float *C, int ldc, const float *bias) {
    float *Cp = C + (size_t)r0 * ldc + c0;
    if (bias) {
        for (int r = r0; r < r1; r++) {
            float *row = C + (size_t)r * ldc;
            for (int c = c0; c < c1; c++) row[c] = bias[c];
        }
    }
    /* op(A) rows r0..r1 and op(B) columns c0..c1 */
    const float *Ap = ta == CblasTrans ? A + r0 : A + (size_t)r0 * lda;
    const float *Bp = tb == CblasTrans ? B + (size_t)c0 * ldb : B + c0;
    if (K > 0) {
        cblas_sgemm(CblasRowMajor, ta, tb, r1 - r0, c1 - c0, K, alpha, Ap, lda, Bp, ldb, beta, Cp,
                    ldc);
    } else if (beta != 1.0f) {
        for (int r = r0; r < r1; r++)
            for (int c = c0; c < c1; c++)
                C[(size_t)r * ldc + c] = beta == 0.0f ? 0.0f : beta * C[(size_t)r * ldc + c];
    }
}

void lmf_fast_gemm_epi(int trans_a, int trans_b, int M, int N, int K, float alpha,
                       const float *A, int lda, const float *B, int ldb, float beta, float *C,
                       int ldc, const float *bias, lmf_fast_epilogue epi, void *ctx) {
    if (M <= 0 || N <= 0) return;
    lmf_fast_blas_single();
    if (bias) beta = 1.0f;
    /* split C along its larger dimension; with an epilogue by rows, so each thread's part is
     * whole rows */
    const int split_rows = epi ? 1 : M > N;
    const enum CBLAS_TRANSPOSE ta = trans_a ? CblasTrans : CblasNoTrans;
    const enum CBLAS_TRANSPOSE tb = trans_b ? CblasTrans : CblasNoTrans;
#pragma omp parallel
    {
        LMF_BUSY_BEGIN();
        size_t lo, hi;
        int nt = omp_get_num_threads(), id = omp_get_thread_num();
        lmf_fast_range(split_rows ? (size_t)M : (size_t)N, nt, id, split_rows ? 4 : 16, &lo, &hi);
        if (hi > lo) {
            int r0 = split_rows ? (int)lo : 0, r1 = split_rows ? (int)hi : M;
            int c0 = split_rows ? 0 : (int)lo, c1 = split_rows ? N : (int)hi;
            gemm_tile(ta, tb, r0, r1, c0, c1, K, alpha, A, lda, B, ldb, beta, C, ldc, bias);
            if (epi) epi(ctx, C, ldc, r0, r1, c0, c1);
        }
        LMF_BUSY_END();
    }
}

void lmf_fast_gemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A,
                   int lda, const float *B, int ldb, float beta, float *C, int ldc,
                   const float *bias) {
    lmf_fast_gemm_epi(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, bias, NULL,
                      NULL);
}

/* Fast RMSNorm forward and backward: rows in parallel (AVX2), the weight's gradient by
 * columns. */
#include "kernels/fast/fast.h"

#include <immintrin.h>
#include <math.h>
#include <omp.h>

#include "kernels/busy.h"
#include "kernels/fast/vec.h"

static float sumsq8(const float *x, int C) {
    __m256 s8 = _mm256_setzero_ps();
    int c = 0;
    for (; c + 8 <= C; c += 8) {
        __m256 v = _mm256_loadu_ps(x + c);
        s8 = _mm256_fmadd_ps(v, v, s8);
    }
    float s = lmf_hsum256(s8);
    for (; c < C; c++) s += x[c] * x[c];
    return s;
}

void lmf_fast_rmsnorm_forward(float *out, float *rstd, const float *inp, const float *weight,
                              float eps, int N, int C) {
#pragma omp parallel
    {
        LMF_BUSY_BEGIN();
#pragma omp for schedule(static) nowait
        for (int n = 0; n < N; n++) {
            const float *x = inp + (size_t)n * C;
            float *o = out + (size_t)n * C;
            float r = 1.0f / sqrtf(sumsq8(x, C) / (float)C + eps);
            __m256 r8 = _mm256_set1_ps(r);
            int c = 0;
            for (; c + 8 <= C; c += 8)
                _mm256_storeu_ps(o + c, _mm256_mul_ps(_mm256_mul_ps(_mm256_loadu_ps(x + c), r8),
                                                      _mm256_loadu_ps(weight + c)));
            for (; c < C; c++) o[c] = x[c] * r * weight[c];
            rstd[n] = r;
        }
        LMF_BUSY_END();
    }
}

/* dx += r * (g - xhat * mean(g * xhat)), g = dout * weight */
static void rms_row_backward(float *dx, const float *d, const float *x, const float *w, float r,
                             int C) {
    __m256 g8 = _mm256_setzero_ps();
    int c = 0;
    for (; c + 8 <= C; c += 8)
        g8 = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_loadu_ps(d + c), _mm256_loadu_ps(w + c)),
                             _mm256_loadu_ps(x + c), g8);
    float gx = lmf_hsum256(g8);
    for (; c < C; c++) gx += d[c] * w[c] * x[c];
    gx = gx * r / (float)C;
    __m256 r8 = _mm256_set1_ps(r), gx8 = _mm256_set1_ps(gx);
    for (c = 0; c + 8 <= C; c += 8) {
        __m256 xh = _mm256_mul_ps(_mm256_loadu_ps(x + c), r8);
        __m256 g = _mm256_fnmadd_ps(xh, gx8, _mm256_mul_ps(_mm256_loadu_ps(d + c), _mm256_loadu_ps(w + c)));
        _mm256_storeu_ps(dx + c, _mm256_fmadd_ps(r8, g, _mm256_loadu_ps(dx + c)));
    }
    for (; c < C; c++) dx[c] += r * (d[c] * w[c] - x[c] * r * gx);
}

/* Rows in parallel for dinp, then each thread sums dweight over all rows for its own columns
 * (as the LayerNorm backward does): no two threads write the same float, no scratch. */
void lmf_fast_rmsnorm_backward(float *dinp, float *dweight, const float *dout, const float *inp,
                               const float *weight, const float *rstd, int N, int C) {
#pragma omp parallel
    {
        LMF_BUSY_BEGIN();
#pragma omp for schedule(static) nowait
        for (int n = 0; n < N; n++)
            rms_row_backward(dinp + (size_t)n * C, dout + (size_t)n * C, inp + (size_t)n * C,
                             weight, rstd[n], C);
        size_t lo, hi;
        lmf_fast_range((size_t)C, omp_get_num_threads(), omp_get_thread_num(), 8, &lo, &hi);
        size_t c = lo;
        for (; c + 8 <= hi; c += 8) {
            __m256 dw = _mm256_loadu_ps(dweight + c);
            for (int n = 0; n < N; n++) {
                __m256 xh = _mm256_mul_ps(_mm256_loadu_ps(inp + (size_t)n * C + c),
                                          _mm256_set1_ps(rstd[n]));
                dw = _mm256_fmadd_ps(_mm256_loadu_ps(dout + (size_t)n * C + c), xh, dw);
            }
            _mm256_storeu_ps(dweight + c, dw);
        }
        for (; c < hi; c++) {
            float dw = dweight[c];
            for (int n = 0; n < N; n++)
                dw += dout[(size_t)n * C + c] * inp[(size_t)n * C + c] * rstd[n];
            dweight[c] = dw;
        }
        LMF_BUSY_END();
    }
}

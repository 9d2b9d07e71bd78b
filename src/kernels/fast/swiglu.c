/* Fast SwiGLU gate forward and backward (AVX2 with the shared exp, OpenMP over the elements). */
#include "kernels/fast/fast.h"

#include <immintrin.h>
#include <math.h>
#include <omp.h>

#include "kernels/busy.h"
#include "kernels/fast/vec.h"

/* sigmoid(g) = 1 / (1 + e^-g) for 8 floats */
static inline __m256 sigmoid8(__m256 g) {
    __m256 one = _mm256_set1_ps(1.0f);
    return _mm256_div_ps(one, _mm256_add_ps(one, lmf_exp256(_mm256_sub_ps(_mm256_setzero_ps(), g))));
}

void lmf_fast_swiglu_forward(float *out, const float *gate, const float *up, size_t N) {
#pragma omp parallel
    {
        LMF_BUSY_BEGIN();
        size_t lo, hi;
        lmf_fast_range(N, omp_get_num_threads(), omp_get_thread_num(), 8, &lo, &hi);
        size_t i = lo;
        for (; i + 8 <= hi; i += 8) {
            __m256 g = _mm256_loadu_ps(gate + i);
            _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_mul_ps(g, sigmoid8(g)), _mm256_loadu_ps(up + i)));
        }
        for (; i < hi; i++) out[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
        LMF_BUSY_END();
    }
}

void lmf_fast_swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate,
                              const float *up, size_t N) {
#pragma omp parallel
    {
        LMF_BUSY_BEGIN();
        size_t lo, hi;
        lmf_fast_range(N, omp_get_num_threads(), omp_get_thread_num(), 8, &lo, &hi);
        size_t i = lo;
        __m256 one = _mm256_set1_ps(1.0f);
        for (; i + 8 <= hi; i += 8) {
            __m256 g = _mm256_loadu_ps(gate + i), d = _mm256_loadu_ps(dout + i), s = sigmoid8(g);
            __m256 u = _mm256_loadu_ps(up + i);
            __m256 ds = _mm256_fmadd_ps(g, _mm256_sub_ps(one, s), one); /* 1 + g (1 - s) */
            _mm256_storeu_ps(dup + i, _mm256_mul_ps(d, _mm256_mul_ps(g, s)));
            _mm256_storeu_ps(dgate + i, _mm256_mul_ps(_mm256_mul_ps(d, u), _mm256_mul_ps(s, ds)));
        }
        for (; i < hi; i++) {
            float g = gate[i], d = dout[i], s = 1.0f / (1.0f + expf(-g));
            dup[i] = d * g * s;
            dgate[i] = d * up[i] * s * (1.0f + g * (1.0f - s));
        }
        LMF_BUSY_END();
    }
}

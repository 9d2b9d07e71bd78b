/* Fast GELU (tanh approximation), AVX2 with an OpenMP split over blocks. */
/* Uses 0.5 (1 + tanh(u)) = 1 / (1 + e^(-2u)), which avoids the cancellation of 1 + tanh(u)
 * for large negative inputs; the result is the same function as the reference. */
#include "kernels/fast/fast.h"

#include <immintrin.h>
#include <math.h>

#include "kernels/fast/vec.h"

#define GELU_S 0.7978845608028654f /* sqrt(2/pi) */
#define GELU_A 0.044715f
#define GELU_BLOCK 4096

/* s = 0.5 (1 + tanh(u)) = sigmoid(2u) = 1 / (1 + e), e = e^(-2u), for 8 lanes; also returns
 * du/dx and e when asked */
static inline __m256 gelu_sig(__m256 x, __m256 *du, __m256 *eout) {
    __m256 x2 = _mm256_mul_ps(x, x);
    __m256 inner = _mm256_fmadd_ps(_mm256_set1_ps(GELU_A), x2, _mm256_set1_ps(1.0f));
    __m256 u = _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(GELU_S), x), inner);
    if (du)
        *du = _mm256_mul_ps(_mm256_set1_ps(GELU_S),
                            _mm256_fmadd_ps(_mm256_set1_ps(3.0f * GELU_A), x2, _mm256_set1_ps(1.0f)));
    __m256 e = lmf_exp256(_mm256_mul_ps(_mm256_set1_ps(-2.0f), u));
    if (eout) *eout = e;
    return _mm256_div_ps(_mm256_set1_ps(1.0f), _mm256_add_ps(_mm256_set1_ps(1.0f), e));
}

static inline float gelu_sig1(float x, float *du, float *eout) {
    float u = GELU_S * (x + GELU_A * x * x * x);
    *du = GELU_S * (1.0f + 3.0f * GELU_A * x * x);
    *eout = expf(fminf(fmaxf(-2.0f * u, -87.3f), 88.3f));
    return 1.0f / (1.0f + *eout);
}

void lmf_fast_gelu_forward(float *out, const float *inp, size_t N) {
    long nb = (long)((N + GELU_BLOCK - 1) / GELU_BLOCK);
#pragma omp parallel for schedule(static)
    for (long blk = 0; blk < nb; blk++) {
        size_t i = (size_t)blk * GELU_BLOCK, end = i + GELU_BLOCK < N ? i + GELU_BLOCK : N;
        for (; i + 8 <= end; i += 8) {
            __m256 x = _mm256_loadu_ps(inp + i);
            _mm256_storeu_ps(out + i, _mm256_mul_ps(x, gelu_sig(x, NULL, NULL)));
        }
        for (; i < end; i++) {
            float du, e;
            out[i] = inp[i] * gelu_sig1(inp[i], &du, &e);
        }
    }
}

/* gelu'(x) = s + 2 x s (1 - s) du/dx with s = sigmoid(2u); s (1 - s) = e s^2 keeps its
 * precision where s is close to 1 (1 - s would cancel) */
void lmf_fast_gelu_backward(float *dinp, const float *inp, const float *dout, size_t N) {
    long nb = (long)((N + GELU_BLOCK - 1) / GELU_BLOCK);
#pragma omp parallel for schedule(static)
    for (long blk = 0; blk < nb; blk++) {
        size_t i = (size_t)blk * GELU_BLOCK, end = i + GELU_BLOCK < N ? i + GELU_BLOCK : N;
        for (; i + 8 <= end; i += 8) {
            __m256 x = _mm256_loadu_ps(inp + i), du, e;
            __m256 s = gelu_sig(x, &du, &e);
            __m256 ss = _mm256_mul_ps(_mm256_mul_ps(e, s), s);
            __m256 g = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_add_ps(x, x), ss), du, s);
            _mm256_storeu_ps(dinp + i, _mm256_fmadd_ps(g, _mm256_loadu_ps(dout + i),
                                                       _mm256_loadu_ps(dinp + i)));
        }
        for (; i < end; i++) {
            float du, e, s = gelu_sig1(inp[i], &du, &e);
            float ss = e * s * s; /* (e s) s: e alone may be ~1e38 */
            dinp[i] += (s + 2.0f * inp[i] * ss * du) * dout[i];
        }
    }
}

/* Fast GELU (tanh approximation), AVX2 with an OpenMP split; also GELU backward fused with
 * the bias gradient of the matmul that produced its input. */
/* Uses 0.5 (1 + tanh(u)) = 1 / (1 + e^(-2u)), which avoids the cancellation of 1 + tanh(u)
 * for large negative inputs; the result is the same function as the reference. Tails shorter
 * than 8 go through the same 8-lane code on a zero-padded copy, so an element's value never
 * depends on where it sits in the array (the fused matmul + GELU relies on it). */
#include "kernels/fast/fast.h"

#include <immintrin.h>
#include <math.h>
#include <omp.h>
#include <string.h>

#include "kernels/busy.h"
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

/* gelu'(x) = s + 2 x s (1 - s) du/dx with s = sigmoid(2u); s (1 - s) = e s^2 keeps its
 * precision where s is close to 1 (1 - s would cancel); (e s) s because e alone may be ~1e38 */
static inline __m256 gelu_grad(__m256 x) {
    __m256 du, e;
    __m256 s = gelu_sig(x, &du, &e);
    __m256 ss = _mm256_mul_ps(_mm256_mul_ps(e, s), s);
    return _mm256_fmadd_ps(_mm256_mul_ps(_mm256_add_ps(x, x), ss), du, s);
}

static inline __m256 load_tail(const float *p, size_t n) {
    float buf[8] = {0};
    memcpy(buf, p, n * sizeof(float));
    return _mm256_loadu_ps(buf);
}

static inline void store_tail(float *p, __m256 v, size_t n) {
    float buf[8];
    _mm256_storeu_ps(buf, v);
    memcpy(p, buf, n * sizeof(float));
}

void lmf_fast_gelu_span(float *out, const float *inp, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 x = _mm256_loadu_ps(inp + i);
        _mm256_storeu_ps(out + i, _mm256_mul_ps(x, gelu_sig(x, NULL, NULL)));
    }
    if (i < n) {
        __m256 x = load_tail(inp + i, n - i);
        store_tail(out + i, _mm256_mul_ps(x, gelu_sig(x, NULL, NULL)), n - i);
    }
}

void lmf_fast_gelu_forward(float *out, const float *inp, size_t N) {
    long nb = (long)((N + GELU_BLOCK - 1) / GELU_BLOCK);
#pragma omp parallel
    {
        LMF_BUSY_BEGIN();
#pragma omp for schedule(static) nowait
        for (long blk = 0; blk < nb; blk++) {
            size_t i = (size_t)blk * GELU_BLOCK, end = i + GELU_BLOCK < N ? i + GELU_BLOCK : N;
            lmf_fast_gelu_span(out + i, inp + i, end - i);
        }
        LMF_BUSY_END();
    }
}

/* dinp = gelu'(inp) * dout (written; dinp may be dout) */
void lmf_fast_gelu_backward(float *dinp, const float *inp, const float *dout, size_t N) {
    long nb = (long)((N + GELU_BLOCK - 1) / GELU_BLOCK);
#pragma omp parallel
    {
        LMF_BUSY_BEGIN();
#pragma omp for schedule(static) nowait
        for (long blk = 0; blk < nb; blk++) {
            size_t i = (size_t)blk * GELU_BLOCK, end = i + GELU_BLOCK < N ? i + GELU_BLOCK : N;
            for (; i + 8 <= end; i += 8) {
                __m256 g = gelu_grad(_mm256_loadu_ps(inp + i));
                _mm256_storeu_ps(dinp + i, _mm256_mul_ps(g, _mm256_loadu_ps(dout + i)));
            }
            if (i < end) {
                size_t r = end - i;
                __m256 g = gelu_grad(load_tail(inp + i, r));
                store_tail(dinp + i, _mm256_mul_ps(g, load_tail(dout + i, r)), r);
            }
        }
        LMF_BUSY_END();
    }
}

/* dinp[N,OC] = gelu'(inp) * dout (written; dinp may be dout), dbias[OC] += column sums of
 * dinp. Threads own column ranges (multiples of 8) and walk the rows in order 0..N-1, adding
 * each row's gradient into their dbias columns while it is in registers: one pass over inp and
 * dout instead of a GELU pass and a bias pass. The sums do not depend on the thread count. */
void lmf_fast_gelu_bias_backward(float *dinp, float *dbias, const float *inp, const float *dout,
                                 int N, int OC) {
#pragma omp parallel
    {
        LMF_BUSY_BEGIN();
        size_t lo, hi;
        lmf_fast_range((size_t)OC, omp_get_num_threads(), omp_get_thread_num(), 8, &lo, &hi);
        for (int n = 0; n < N && hi > lo; n++) {
            size_t o = (size_t)n * OC;
            const float *x = inp + o, *d = dout + o;
            float *di = dinp + o;
            size_t j = lo;
            for (; j + 8 <= hi; j += 8) {
                __m256 g = _mm256_mul_ps(gelu_grad(_mm256_loadu_ps(x + j)), _mm256_loadu_ps(d + j));
                _mm256_storeu_ps(di + j, g);
                if (dbias) _mm256_storeu_ps(dbias + j, _mm256_add_ps(_mm256_loadu_ps(dbias + j), g));
            }
            if (j < hi) {
                size_t r = hi - j;
                __m256 g = _mm256_mul_ps(gelu_grad(load_tail(x + j, r)), load_tail(d + j, r));
                store_tail(di + j, g, r);
                if (dbias) store_tail(dbias + j, _mm256_add_ps(load_tail(dbias + j, r), g), r);
            }
        }
        LMF_BUSY_END();
    }
}

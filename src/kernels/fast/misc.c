/* Fast element-wise kernels: residual add, sum of squares, AdamW (AVX2 + OpenMP). */
#include "kernels/fast/fast.h"

#include <immintrin.h>
#include <math.h>
#include <omp.h>

#include "kernels/busy.h"
#include "kernels/fast/vec.h"

#define MISC_BLOCK 8192
#define SUMSQ_MAX_THREADS 256

void lmf_fast_residual_forward(float *out, const float *a, const float *b, size_t N) {
    long nb = (long)((N + MISC_BLOCK - 1) / MISC_BLOCK);
#pragma omp parallel
    {
        LMF_BUSY_BEGIN();
#pragma omp for schedule(static) nowait
        for (long blk = 0; blk < nb; blk++) {
            size_t i = (size_t)blk * MISC_BLOCK, end = i + MISC_BLOCK < N ? i + MISC_BLOCK : N;
            for (; i + 8 <= end; i += 8)
                _mm256_storeu_ps(out + i, _mm256_add_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i)));
            for (; i < end; i++) out[i] = a[i] + b[i];
        }
        LMF_BUSY_END();
    }
}

/* 8 independent double accumulators (4 lanes each) so the FMA latency is hidden */
static double sumsq_range(const float *x, size_t lo, size_t hi) {
    __m256d s[8];
    for (int k = 0; k < 8; k++) s[k] = _mm256_setzero_pd();
    size_t i = lo;
    for (; i + 32 <= hi; i += 32) {
        for (int k = 0; k < 4; k++) {
            __m256 v = _mm256_loadu_ps(x + i + 8 * k);
            __m256d a = _mm256_cvtps_pd(_mm256_castps256_ps128(v));
            __m256d b = _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1));
            s[2 * k] = _mm256_fmadd_pd(a, a, s[2 * k]);
            s[2 * k + 1] = _mm256_fmadd_pd(b, b, s[2 * k + 1]);
        }
    }
    for (; i + 8 <= hi; i += 8) {
        __m256 v = _mm256_loadu_ps(x + i);
        __m256d a = _mm256_cvtps_pd(_mm256_castps256_ps128(v));
        __m256d b = _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1));
        s[0] = _mm256_fmadd_pd(a, a, s[0]);
        s[1] = _mm256_fmadd_pd(b, b, s[1]);
    }
    __m256d t = _mm256_add_pd(_mm256_add_pd(_mm256_add_pd(s[0], s[1]), _mm256_add_pd(s[2], s[3])),
                              _mm256_add_pd(_mm256_add_pd(s[4], s[5]), _mm256_add_pd(s[6], s[7])));
    double r = lmf_hsum256d(t);
    for (; i < hi; i++) r += (double)x[i] * (double)x[i];
    return r;
}

/* Each thread sums one contiguous range; the partial sums are added in thread order, so the
 * result is the same for the same thread count. */
double lmf_fast_sumsq(const float *x, size_t n) {
    double part[SUMSQ_MAX_THREADS];
    int used = 1;
    part[0] = 0.0;
#pragma omp parallel
    {
        LMF_BUSY_BEGIN();
        int nt = omp_get_num_threads(), id = omp_get_thread_num();
        if (nt > SUMSQ_MAX_THREADS) nt = SUMSQ_MAX_THREADS;
        if (id < nt) {
            size_t lo, hi;
            lmf_fast_range(n, nt, id, 64, &lo, &hi);
            part[id] = sumsq_range(x, lo, hi);
        }
        LMF_BUSY_END();
#pragma omp single
        used = nt;
    }
    double s = 0.0;
    for (int i = 0; i < used; i++) s += part[i];
    return s;
}

/* One pass: read grad, param, m, v; write param, m, v and a zeroed grad. */
void lmf_fast_adamw(float *param, float *grad, float *m, float *v, size_t n, float lr,
                    float beta1, float beta2, float eps, float weight_decay, float grad_scale,
                    int t) {
    const float c1 = 1.0f - powf(beta1, (float)t), c2 = 1.0f - powf(beta2, (float)t);
    const float ob1 = 1.0f - beta1, ob2 = 1.0f - beta2;
    long nb = (long)((n + MISC_BLOCK - 1) / MISC_BLOCK);
#pragma omp parallel
    {
        LMF_BUSY_BEGIN();
#pragma omp for schedule(static) nowait
        for (long blk = 0; blk < nb; blk++) {
            size_t i = (size_t)blk * MISC_BLOCK, end = i + MISC_BLOCK < n ? i + MISC_BLOCK : n;
            const __m256 b1 = _mm256_set1_ps(beta1), b2 = _mm256_set1_ps(beta2);
            const __m256 o1 = _mm256_set1_ps(ob1), o2 = _mm256_set1_ps(ob2);
            const __m256 k1 = _mm256_set1_ps(c1), k2 = _mm256_set1_ps(c2);
            const __m256 e8 = _mm256_set1_ps(eps), wd = _mm256_set1_ps(weight_decay);
            const __m256 lr8 = _mm256_set1_ps(lr), gs8 = _mm256_set1_ps(grad_scale);
            for (; i + 8 <= end; i += 8) {
                __m256 g = _mm256_mul_ps(_mm256_loadu_ps(grad + i), gs8), p = _mm256_loadu_ps(param + i);
                _mm256_storeu_ps(grad + i, _mm256_setzero_ps());
                __m256 mm = _mm256_fmadd_ps(b1, _mm256_loadu_ps(m + i), _mm256_mul_ps(o1, g));
                __m256 vv = _mm256_fmadd_ps(b2, _mm256_loadu_ps(v + i), _mm256_mul_ps(o2, _mm256_mul_ps(g, g)));
                _mm256_storeu_ps(m + i, mm);
                _mm256_storeu_ps(v + i, vv);
                __m256 mh = _mm256_div_ps(mm, k1), vh = _mm256_div_ps(vv, k2);
                __m256 upd = _mm256_fmadd_ps(wd, p, _mm256_div_ps(mh, _mm256_add_ps(_mm256_sqrt_ps(vh), e8)));
                _mm256_storeu_ps(param + i, _mm256_fnmadd_ps(lr8, upd, p));
            }
            for (; i < end; i++) {
                float g = grad[i] * grad_scale;
                grad[i] = 0.0f;
                m[i] = beta1 * m[i] + ob1 * g;
                v[i] = beta2 * v[i] + ob2 * g * g;
                float mh = m[i] / c1, vh = v[i] / c2;
                param[i] -= lr * (mh / (sqrtf(vh) + eps) + weight_decay * param[i]);
            }
        }
        LMF_BUSY_END();
    }
}

/* AVX2/FMA helpers shared by the fast kernels: exp, horizontal sums, work partitioning. */
#ifndef LMF_KERNELS_FAST_VEC_H
#define LMF_KERNELS_FAST_VEC_H

#include <immintrin.h>
#include <math.h>
#include <stddef.h>

/* e^x for 8 floats. x = n ln2 + r with |r| <= ln2/2; e^r by its Taylor series to degree 7
 * (truncation < 1e-8 relative) and 2^n through the exponent bits. Inputs are clamped to
 * [-87.3, 88.3] so the result is always a finite normal float (e^-87.3 ~ 1.2e-38 stands in
 * for smaller values). Accuracy about 2 ulp. */
static inline __m256 lmf_exp256(__m256 x) {
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.3f)), _mm256_set1_ps(88.3f));
    __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    /* ln2 split in a high part exact in float and a low correction */
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693145751953125f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(1.4286068203094172e-06f), r);
    __m256 p = _mm256_set1_ps(1.0f / 5040.0f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 720.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

/* sum of the 8 lanes, in a fixed order */
static inline float lmf_hsum256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline float lmf_hmax256(__m256 v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* Row reductions of the softmax (the classifiers'): 8 lanes, then the tail, in a fixed order.
 * max of x[0..n); -INFINITY when n == 0 */
static inline float lmf_fast_row_max(const float *x, int n) {
    __m256 mx8 = _mm256_set1_ps(-INFINITY);
    int i = 0;
    for (; i + 8 <= n; i += 8) mx8 = _mm256_max_ps(mx8, _mm256_loadu_ps(x + i));
    float mx = lmf_hmax256(mx8);
    for (; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    return mx;
}

/* sum of e^(x[i] - shift) over [0, n); when store, x[i] becomes e^(x[i] - shift) */
static inline float lmf_fast_row_sumexp(float *x, int n, float shift, int store) {
    __m256 m8 = _mm256_set1_ps(shift), s8 = _mm256_setzero_ps();
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 e = lmf_exp256(_mm256_sub_ps(_mm256_loadu_ps(x + i), m8));
        if (store) _mm256_storeu_ps(x + i, e);
        s8 = _mm256_add_ps(s8, e);
    }
    float s = 0.0f;
    s += lmf_hsum256(s8);
    for (; i < n; i++) {
        float e = expf(x[i] - shift);
        if (store) x[i] = e;
        s += e;
    }
    return s;
}

/* x[0..n) *= k */
static inline void lmf_fast_row_scale(float *x, int n, float k) {
    __m256 k8 = _mm256_set1_ps(k);
    int i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), k8));
    for (; i < n; i++) x[i] *= k;
}

static inline double lmf_hsum256d(__m256d v) {
    __m128d s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
    return _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
}

/* Part `id` of `parts` of [0, n): contiguous, sizes rounded up to multiples of `align`. */
static inline void lmf_fast_range(size_t n, int parts, int id, size_t align, size_t *lo,
                                  size_t *hi) {
    size_t chunk = (n + (size_t)parts - 1) / (size_t)parts;
    chunk = (chunk + align - 1) / align * align;
    size_t a = (size_t)id * chunk;
    *lo = a < n ? a : n;
    *hi = a + chunk < n ? a + chunk : n;
}

#endif

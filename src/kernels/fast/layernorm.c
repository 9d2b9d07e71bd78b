/* Fast LayerNorm: AVX2 rows in parallel; dweight/dbias by column ranges. */
/* Each dweight/dbias column is summed over rows in order, so the result does not depend on
 * the thread count. */
#include "kernels/fast/fast.h"

#include <immintrin.h>
#include <math.h>
#include <omp.h>

#include "kernels/busy.h"
#include "kernels/fast/vec.h"

static void ln_row_forward(float *o, float *mean, float *rstd, const float *x, const float *w,
                           const float *b, int C) {
    __m256 s8 = _mm256_setzero_ps();
    int c = 0;
    for (; c + 8 <= C; c += 8) s8 = _mm256_add_ps(s8, _mm256_loadu_ps(x + c));
    float s = lmf_hsum256(s8);
    for (; c < C; c++) s += x[c];
    float m = s / (float)C;
    __m256 m8 = _mm256_set1_ps(m), v8 = _mm256_setzero_ps();
    for (c = 0; c + 8 <= C; c += 8) {
        __m256 d = _mm256_sub_ps(_mm256_loadu_ps(x + c), m8);
        v8 = _mm256_fmadd_ps(d, d, v8);
    }
    float var = lmf_hsum256(v8);
    for (; c < C; c++) var += (x[c] - m) * (x[c] - m);
    var /= (float)C;
    float r = 1.0f / sqrtf(var + 1e-5f);
    __m256 r8 = _mm256_set1_ps(r);
    for (c = 0; c + 8 <= C; c += 8) {
        __m256 xh = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + c), m8), r8);
        _mm256_storeu_ps(o + c, _mm256_fmadd_ps(xh, _mm256_loadu_ps(w + c), _mm256_loadu_ps(b + c)));
    }
    for (; c < C; c++) o[c] = (x[c] - m) * r * w[c] + b[c];
    *mean = m;
    *rstd = r;
}

void lmf_fast_layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                                const float *weight, const float *bias, int N, int C) {
#pragma omp parallel
    {
        LMF_BUSY_BEGIN();
#pragma omp for schedule(static) nowait
        for (int n = 0; n < N; n++)
            ln_row_forward(out + (size_t)n * C, mean + n, rstd + n, inp + (size_t)n * C, weight,
                           bias, C);
        LMF_BUSY_END();
    }
}

/* res = a + b row by row, then the LayerNorm of that row while it is in L1: the row is read
 * twice from cache instead of a residual pass and a LayerNorm pass over memory. The add is
 * exact per element (one rounding, vector or scalar alike) and the row then goes through
 * ln_row_forward, so the results are bit-identical to residual_forward + layernorm_forward. */
void lmf_fast_residual_layernorm_forward(float *res, float *out, float *mean, float *rstd,
                                         const float *a, const float *b, const float *weight,
                                         const float *bias, int N, int C) {
#pragma omp parallel
    {
        LMF_BUSY_BEGIN();
#pragma omp for schedule(static) nowait
        for (int n = 0; n < N; n++) {
            size_t o = (size_t)n * C;
            float *r = res + o;
            const float *x = a + o, *y = b + o;
            int c = 0;
            for (; c + 8 <= C; c += 8)
                _mm256_storeu_ps(r + c, _mm256_add_ps(_mm256_loadu_ps(x + c), _mm256_loadu_ps(y + c)));
            for (; c < C; c++) r[c] = x[c] + y[c];
            ln_row_forward(out + o, mean + n, rstd + n, r, weight, bias, C);
        }
        LMF_BUSY_END();
    }
}

/* dx += r * (g - mean(g) - xhat * mean(g * xhat)), g = dout * weight */
static void ln_row_backward(float *dx, const float *d, const float *x, const float *w, float m,
                            float r, int C) {
    __m256 m8 = _mm256_set1_ps(m), r8 = _mm256_set1_ps(r);
    __m256 g8 = _mm256_setzero_ps(), gx8 = _mm256_setzero_ps();
    int c = 0;
    for (; c + 8 <= C; c += 8) {
        __m256 xh = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + c), m8), r8);
        __m256 g = _mm256_mul_ps(_mm256_loadu_ps(d + c), _mm256_loadu_ps(w + c));
        g8 = _mm256_add_ps(g8, g);
        gx8 = _mm256_fmadd_ps(g, xh, gx8);
    }
    float gs = lmf_hsum256(g8), gxs = lmf_hsum256(gx8);
    for (; c < C; c++) {
        float xh = (x[c] - m) * r, g = d[c] * w[c];
        gs += g;
        gxs += g * xh;
    }
    float gmean = gs / (float)C, gxmean = gxs / (float)C;
    __m256 gm8 = _mm256_set1_ps(gmean), gxm8 = _mm256_set1_ps(gxmean);
    for (c = 0; c + 8 <= C; c += 8) {
        __m256 xh = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + c), m8), r8);
        __m256 g = _mm256_mul_ps(_mm256_loadu_ps(d + c), _mm256_loadu_ps(w + c));
        __m256 t = _mm256_fnmadd_ps(xh, gxm8, _mm256_sub_ps(g, gm8));
        _mm256_storeu_ps(dx + c, _mm256_fmadd_ps(r8, t, _mm256_loadu_ps(dx + c)));
    }
    for (; c < C; c++) {
        float xh = (x[c] - m) * r, g = d[c] * w[c];
        dx[c] += r * (g - gmean - xh * gxmean);
    }
}

void lmf_fast_layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                                 const float *inp, const float *weight, const float *mean,
                                 const float *rstd, int N, int C) {
#pragma omp parallel
    {
        LMF_BUSY_BEGIN();
        /* the column sums below read only dout, inp and the statistics: no barrier needed */
#pragma omp for schedule(static) nowait
        for (int n = 0; n < N; n++)
            ln_row_backward(dinp + (size_t)n * C, dout + (size_t)n * C, inp + (size_t)n * C,
                            weight, mean[n], rstd[n], C);
        /* dweight[c] += sum_n dout * xhat, dbias[c] += sum_n dout over this thread's columns */
        size_t lo, hi;
        lmf_fast_range((size_t)C, omp_get_num_threads(), omp_get_thread_num(), 8, &lo, &hi);
        size_t c = lo;
        for (; c + 8 <= hi; c += 8) {
            __m256 dw = _mm256_loadu_ps(dweight + c), db = _mm256_loadu_ps(dbias + c);
            for (int n = 0; n < N; n++) {
                const float *x = inp + (size_t)n * C + c, *d = dout + (size_t)n * C + c;
                __m256 xh = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x), _mm256_set1_ps(mean[n])),
                                          _mm256_set1_ps(rstd[n]));
                __m256 d8 = _mm256_loadu_ps(d);
                dw = _mm256_fmadd_ps(d8, xh, dw);
                db = _mm256_add_ps(db, d8);
            }
            _mm256_storeu_ps(dweight + c, dw);
            _mm256_storeu_ps(dbias + c, db);
        }
        for (; c < hi; c++) {
            float dw = dweight[c], db = dbias[c];
            for (int n = 0; n < N; n++) {
                float xh = (inp[(size_t)n * C + c] - mean[n]) * rstd[n], d = dout[(size_t)n * C + c];
                dw += d * xh;
                db += d;
            }
            dweight[c] = dw;
            dbias[c] = db;
        }
        LMF_BUSY_END();
    }
}

/* Fast causal self-attention: (batch, head) pairs over OpenMP, sgemm on blocks of rows. */
/* Each block of query rows meets only the keys up to its last row, so the masked upper
 * triangle is mostly skipped; sgemm runs single-threaded inside the OpenMP loop. */
#include "kernels/fast/fast.h"

#include <cblas.h>
#include <immintrin.h>
#include <math.h>

#include "kernels/fast/vec.h"

/* query rows per block: row block [r0, r1) only meets keys [0, r1) */
#define ATT_RB 64

size_t lmf_fast_attention_saved_floats(int B, int T, int NH) {
    return (size_t)B * NH * T * T;
}

/* scratch: dS[B,NH,T,T], one T x T matrix per (batch, head) */
size_t lmf_fast_attention_scratch_floats(int B, int T, int NH, int C) {
    (void)C;
    return (size_t)B * NH * T * T;
}

/* In place: row[0..n) <- softmax(row[0..n)); row[n..len) <- 0 */
static void softmax_row(float *row, int n, int len) {
    __m256 mx8 = _mm256_set1_ps(-INFINITY);
    int i = 0;
    for (; i + 8 <= n; i += 8) mx8 = _mm256_max_ps(mx8, _mm256_loadu_ps(row + i));
    float mx = lmf_hmax256(mx8);
    for (; i < n; i++) mx = row[i] > mx ? row[i] : mx;
    __m256 m8 = _mm256_set1_ps(mx), s8 = _mm256_setzero_ps();
    for (i = 0; i + 8 <= n; i += 8) {
        __m256 e = lmf_exp256(_mm256_sub_ps(_mm256_loadu_ps(row + i), m8));
        _mm256_storeu_ps(row + i, e);
        s8 = _mm256_add_ps(s8, e);
    }
    float s = lmf_hsum256(s8);
    for (; i < n; i++) {
        row[i] = expf(row[i] - mx);
        s += row[i];
    }
    __m256 inv = _mm256_set1_ps(1.0f / s);
    for (i = 0; i + 8 <= n; i += 8) _mm256_storeu_ps(row + i, _mm256_mul_ps(_mm256_loadu_ps(row + i), inv));
    for (; i < n; i++) row[i] *= 1.0f / s;
    for (i = n; i < len; i++) row[i] = 0.0f;
}

void lmf_fast_attention_forward(float *out, float *saved, const float *qkv, int B, int T, int C,
                                int NH) {
    const int hs = C / NH, C3 = 3 * C;
    const float scale = 1.0f / sqrtf((float)hs);
    lmf_fast_blas_single();
#pragma omp parallel for schedule(static)
    for (int bh = 0; bh < B * NH; bh++) {
        int b = bh / NH, h = bh % NH;
        const float *q = qkv + (size_t)b * T * C3 + (size_t)h * hs, *k = q + C, *v = q + 2 * C;
        float *att = saved + (size_t)bh * T * T;
        float *o = out + (size_t)b * T * C + (size_t)h * hs;
        for (int r0 = 0; r0 < T; r0 += ATT_RB) {
            int r1 = r0 + ATT_RB < T ? r0 + ATT_RB : T, rb = r1 - r0;
            float *S = att + (size_t)r0 * T;
            /* S[r0:r1, 0:r1] = scale * Q[r0:r1] K[0:r1]^T */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rb, r1, hs, scale,
                        q + (size_t)r0 * C3, C3, k, C3, 0.0f, S, T);
            for (int t = r0; t < r1; t++) softmax_row(att + (size_t)t * T, t + 1, T);
            /* O[r0:r1] = P[r0:r1, 0:r1] V[0:r1] */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rb, hs, r1, 1.0f, S, T, v, C3,
                        0.0f, o + (size_t)r0 * C, C);
        }
    }
}

/* dS[t, u] = scale * P[t,u] (dP[t,u] - sum_w P[t,w] dP[t,w]) for u <= t, 0 after */
static void dsoftmax_row(float *ds, const float *p, int n, int len, float scale) {
    __m256 d8 = _mm256_setzero_ps();
    int i = 0;
    for (; i + 8 <= n; i += 8) d8 = _mm256_fmadd_ps(_mm256_loadu_ps(p + i), _mm256_loadu_ps(ds + i), d8);
    float dot = lmf_hsum256(d8);
    for (; i < n; i++) dot += p[i] * ds[i];
    __m256 dot8 = _mm256_set1_ps(dot), sc8 = _mm256_set1_ps(scale);
    for (i = 0; i + 8 <= n; i += 8) {
        __m256 t = _mm256_mul_ps(_mm256_loadu_ps(p + i), _mm256_sub_ps(_mm256_loadu_ps(ds + i), dot8));
        _mm256_storeu_ps(ds + i, _mm256_mul_ps(t, sc8));
    }
    for (; i < n; i++) ds[i] = p[i] * (ds[i] - dot) * scale;
    for (i = n; i < len; i++) ds[i] = 0.0f;
}

void lmf_fast_attention_backward(float *dqkv, float *scratch, const float *dout, const float *qkv,
                                 const float *saved, int B, int T, int C, int NH) {
    const int hs = C / NH, C3 = 3 * C;
    const float scale = 1.0f / sqrtf((float)hs);
    lmf_fast_blas_single();
#pragma omp parallel for schedule(static)
    for (int bh = 0; bh < B * NH; bh++) {
        int b = bh / NH, h = bh % NH;
        size_t base = (size_t)b * T * C3 + (size_t)h * hs;
        const float *q = qkv + base, *k = q + C, *v = q + 2 * C;
        float *dq = dqkv + base, *dk = dq + C, *dv = dq + 2 * C;
        const float *att = saved + (size_t)bh * T * T;
        const float *d = dout + (size_t)b * T * C + (size_t)h * hs;
        float *ds = scratch + (size_t)bh * T * T;
        for (int r0 = 0; r0 < T; r0 += ATT_RB) {
            int r1 = r0 + ATT_RB < T ? r0 + ATT_RB : T, rb = r1 - r0;
            const float *P = att + (size_t)r0 * T;
            float *S = ds + (size_t)r0 * T;
            /* dP[r0:r1, 0:r1] = dO[r0:r1] V[0:r1]^T, then dS in place */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, rb, r1, hs, 1.0f,
                        d + (size_t)r0 * C, C, v, C3, 0.0f, S, T);
            for (int t = r0; t < r1; t++)
                dsoftmax_row(ds + (size_t)t * T, att + (size_t)t * T, t + 1, r1, scale);
            /* dQ[r0:r1] += dS K[0:r1]; dK[0:r1] += dS^T Q[r0:r1]; dV[0:r1] += P^T dO[r0:r1] */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, rb, hs, r1, 1.0f, S, T, k, C3,
                        1.0f, dq + (size_t)r0 * C3, C3);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r1, hs, rb, 1.0f, S, T,
                        q + (size_t)r0 * C3, C3, 1.0f, dk, C3);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, r1, hs, rb, 1.0f, P, T,
                        d + (size_t)r0 * C, C, 1.0f, dv, C3);
        }
    }
}

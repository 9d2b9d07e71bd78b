/* Fast tied classifier + cross-entropy: rows in chunks so only chunk x V logits exist. */
#include "kernels/fast/fast.h"

#include <assert.h>
#include <immintrin.h>
#include <math.h>

#include "kernels/busy.h"
#include "kernels/fast/vec.h"

size_t lmf_fast_classifier_scratch_floats(int N, int V) {
    int rows = N < LMF_FAST_CLASSIFIER_CHUNK ? N : LMF_FAST_CLASSIFIER_CHUNK;
    return (size_t)rows * V;
}

/* One row of logits lg[V]: returns the loss for target tgt. If grad, lg becomes
 * dlogits = (softmax - onehot) * dloss. */
static float row_loss(float *lg, int V, int tgt, int grad, float dloss) {
    __m256 mx8 = _mm256_set1_ps(-INFINITY);
    int i = 0;
    for (; i + 8 <= V; i += 8) mx8 = _mm256_max_ps(mx8, _mm256_loadu_ps(lg + i));
    float mx = lmf_hmax256(mx8);
    for (; i < V; i++) mx = lg[i] > mx ? lg[i] : mx;
    const float zt = lg[tgt];
    __m256 m8 = _mm256_set1_ps(mx), s8 = _mm256_setzero_ps();
    float s = 0.0f;
    for (i = 0; i + 8 <= V; i += 8) {
        __m256 e = lmf_exp256(_mm256_sub_ps(_mm256_loadu_ps(lg + i), m8));
        if (grad) _mm256_storeu_ps(lg + i, e);
        s8 = _mm256_add_ps(s8, e);
    }
    s += lmf_hsum256(s8);
    for (; i < V; i++) {
        float e = expf(lg[i] - mx);
        if (grad) lg[i] = e;
        s += e;
    }
    if (grad) {
        float k = dloss / s;
        __m256 k8 = _mm256_set1_ps(k);
        for (i = 0; i + 8 <= V; i += 8) _mm256_storeu_ps(lg + i, _mm256_mul_ps(_mm256_loadu_ps(lg + i), k8));
        for (; i < V; i++) lg[i] *= k;
        lg[tgt] -= dloss;
    }
    return logf(s) + mx - zt;
}

/* Same contract as the reference (kernels.h): losses[N]; if dx != NULL, dx[N,C] written and
 * dwte[:V] accumulated. Rows of wte at and beyond V are never touched. */
void lmf_fast_classifier(float *losses, float *dx, float *dwte, float *scratch, const float *x,
                         const float *wte, const int32_t *targets, float dloss, int N, int C,
                         int V) {
    const int grad = dx != NULL;
    for (int n0 = 0; n0 < N; n0 += LMF_FAST_CLASSIFIER_CHUNK) {
        int R = N - n0 < LMF_FAST_CLASSIFIER_CHUNK ? N - n0 : LMF_FAST_CLASSIFIER_CHUNK;
        const float *xc = x + (size_t)n0 * C;
        /* logits[R, V] = x[n0:n0+R] @ wte[:V]^T */
        lmf_fast_gemm(0, 1, R, V, C, 1.0f, xc, C, wte, C, 0.0f, scratch, V, NULL);
#pragma omp parallel
        {
            LMF_BUSY_BEGIN();
#pragma omp for schedule(static) nowait
            for (int r = 0; r < R; r++) {
                int tgt = targets[n0 + r];
                assert(tgt >= 0 && tgt < V);
                losses[n0 + r] = row_loss(scratch + (size_t)r * V, V, tgt, grad, dloss);
            }
            LMF_BUSY_END();
        }
        if (!grad) continue;
        /* dx[n0:n0+R] = dlogits @ wte[:V]; dwte[:V] += dlogits^T @ x[n0:n0+R] */
        lmf_fast_gemm(0, 0, R, C, V, 1.0f, scratch, V, wte, C, 0.0f, dx + (size_t)n0 * C, C, NULL);
        lmf_fast_gemm(1, 0, V, C, R, 1.0f, scratch, V, xc, C, 1.0f, dwte, C, NULL);
    }
}

/* logits[N, V] = x @ wte[:V]^T, split over the team like the classifier's logits */
void lmf_fast_logits_forward(float *logits, const float *x, const float *wte, int N, int C, int V) {
    lmf_fast_gemm(0, 1, N, V, C, 1.0f, x, C, wte, C, 0.0f, logits, V, NULL);
}

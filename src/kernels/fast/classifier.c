/* Fast tied classifier + cross-entropy: rows in chunks so only chunk x V logits exist. */
#include "kernels/fast/fast.h"

#include <assert.h>
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
    const float mx = lmf_fast_row_max(lg, V);
    const float zt = lg[tgt];
    const float s = lmf_fast_row_sumexp(lg, V, mx, grad);
    if (grad) {
        lmf_fast_row_scale(lg, V, dloss / s);
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

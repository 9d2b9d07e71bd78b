/* Reference tied classifier with softmax cross-entropy over the real vocabulary. */
#include "kernels/ref.h"

#include <assert.h>
#include <math.h>

/* scratch: all logits[N, V] */
size_t lmf_ref_classifier_scratch_floats(int N, int V) {
    return (size_t)N * V;
}

/* logits[n,v] = x[n,:] . wte[v,:] for v < V; losses[n] = logsumexp(logits[n]) - logits[n,target].
 * If dx != NULL: dlogits = (softmax - onehot(target)) * dloss; dx[N,C] = dlogits @ wte[:V]
 * (written); dwte[:V] += dlogits^T @ x. Rows V.. of wte/dwte are never read or written.
 * targets must lie in [0, V). */
void lmf_ref_classifier(float *losses, float *dx, float *dwte, float *scratch, const float *x,
                        const float *wte, const int32_t *targets, float dloss, int N, int C,
                        int V) {
    for (int n = 0; n < N; n++) {
        const float *xn = x + (size_t)n * C;
        float *lg = scratch + (size_t)n * V;
        int tgt = targets[n];
        assert(tgt >= 0 && tgt < V);
        float maxv = -INFINITY;
        for (int v = 0; v < V; v++) {
            const float *w = wte + (size_t)v * C;
            float s = 0.0f;
            for (int c = 0; c < C; c++) s += xn[c] * w[c];
            lg[v] = s;
            if (s > maxv) maxv = s;
        }
        float sum = 0.0f;
        for (int v = 0; v < V; v++) sum += expf(lg[v] - maxv);
        losses[n] = logf(sum) + maxv - lg[tgt];
        if (!dx) continue;
        for (int v = 0; v < V; v++) {
            float p = expf(lg[v] - maxv) / sum;
            lg[v] = (p - (v == tgt ? 1.0f : 0.0f)) * dloss;
        }
        lmf_ref_classifier_row_backward(dx + (size_t)n * C, dwte, lg, xn, wte, C, V);
    }
}

/* dxn[C] = dlogits[V] @ w[V,C] (written); dw[V,C] += dlogits^T xn, rows in order */
void lmf_ref_classifier_row_backward(float *dxn, float *dw, const float *dlogits,
                                     const float *xn, const float *w, int C, int V) {
    for (int c = 0; c < C; c++) dxn[c] = 0.0f;
    for (int v = 0; v < V; v++) {
        const float *wv = w + (size_t)v * C;
        float *dwv = dw + (size_t)v * C;
        float g = dlogits[v];
        for (int c = 0; c < C; c++) {
            dxn[c] += g * wv[c];
            dwv[c] += g * xn[c];
        }
    }
}

/* logits[n, v] = x[n, :] . wte[v, :], the products in the order the classifier takes them */
void lmf_ref_logits_forward(float *logits, const float *x, const float *wte, int N, int C, int V) {
    for (int n = 0; n < N; n++) {
        const float *xn = x + (size_t)n * C;
        for (int v = 0; v < V; v++) {
            const float *w = wte + (size_t)v * C;
            float s = 0.0f;
            for (int c = 0; c < C; c++) s += xn[c] * w[c];
            logits[(size_t)n * V + v] = s;
        }
    }
}

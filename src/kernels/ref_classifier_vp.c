/* Reference vocabulary-parallel classifier + cross-entropy: one rank's rows of the tied wte. */
#include "kernels/ref.h"

#include <math.h>

/* the N rows' logits [N, Vr], kept from the statistics for the backward */
size_t lmf_ref_classifier_vp_scratch_floats(int N, int Vr) {
    return (size_t)N * (size_t)Vr;
}

/* stats[3n..3n+2] = max logit, sum exp(logit - max), the target's logit (0 when it is not
 * this rank's); with Vr == 0: -INFINITY, 0, 0 */
void lmf_ref_classifier_vp_stats(float *stats, float *logits, const float *x,
                                 const float *w_part, const int32_t *targets, int vbegin, int N,
                                 int C, int Vr) {
    for (int n = 0; n < N; n++) {
        float *lg = logits + (size_t)n * Vr;
        lmf_ref_logits_forward(lg, x + (size_t)n * C, w_part, 1, C, Vr);
        float maxv = -INFINITY;
        for (int v = 0; v < Vr; v++)
            if (lg[v] > maxv) maxv = lg[v];
        float sum = 0.0f;
        for (int v = 0; v < Vr; v++) sum += expf(lg[v] - maxv);
        const int64_t t = (int64_t)targets[n] - vbegin;
        stats[3 * (size_t)n] = maxv;
        stats[3 * (size_t)n + 1] = sum;
        stats[3 * (size_t)n + 2] = t >= 0 && t < Vr ? lg[t] : 0.0f;
    }
}

/* dlogit = (exp(logit - lse[n]) - onehot) * dloss from the kept logits; dx[n] = dlogit @ w_part
 * (written); dw_part += dlogit^T x */
void lmf_ref_classifier_vp_backward(float *dx, float *dw_part, float *logits, const float *x,
                                    const float *w_part, const int32_t *targets,
                                    const float *lse, float dloss, int vbegin, int N, int C,
                                    int Vr) {
    for (int n = 0; n < N; n++) {
        const float *xn = x + (size_t)n * C;
        float *lg = logits + (size_t)n * Vr;
        const int64_t t = (int64_t)targets[n] - vbegin;
        for (int v = 0; v < Vr; v++)
            lg[v] = (expf(lg[v] - lse[n]) - (v == t ? 1.0f : 0.0f)) * dloss;
        lmf_ref_classifier_row_backward(dx + (size_t)n * C, dw_part, lg, xn, w_part, C, Vr);
    }
}

/* Fast vocabulary-parallel classifier + cross-entropy: the rows' logits kept from the statistics for the backward. */
#include "kernels/fast/fast.h"

#include <math.h>
#include <string.h>

#include "kernels/busy.h"
#include "kernels/fast/vec.h"

size_t lmf_fast_classifier_vp_scratch_floats(int N, int Vr) {
    return (size_t)N * (size_t)Vr;
}

/* the row of w_part that holds target t, or -1 when another rank holds it */
static inline int64_t part_row(int32_t t, int vbegin, int Vr) {
    const int64_t row = (int64_t)t - vbegin;
    return row >= 0 && row < Vr ? row : -1;
}

/* Same contract as the reference (kernels.h). Per chunk of rows: logits[R, Vr] = x @ w_part^T
 * by a split sgemm, then each row's max, sum of exponentials and target logit, rows over the
 * team. */
void lmf_fast_classifier_vp_stats(float *stats, float *logits, const float *x,
                                  const float *w_part, const int32_t *targets, int vbegin, int N,
                                  int C, int Vr) {
    if (Vr == 0) {
        for (int n = 0; n < N; n++) {
            stats[3 * (size_t)n] = -INFINITY;
            stats[3 * (size_t)n + 1] = 0.0f;
            stats[3 * (size_t)n + 2] = 0.0f;
        }
        return;
    }
    for (int n0 = 0; n0 < N; n0 += LMF_FAST_CLASSIFIER_CHUNK) {
        int R = N - n0 < LMF_FAST_CLASSIFIER_CHUNK ? N - n0 : LMF_FAST_CLASSIFIER_CHUNK;
        float *lc = logits + (size_t)n0 * Vr;
        lmf_fast_gemm(0, 1, R, Vr, C, 1.0f, x + (size_t)n0 * C, C, w_part, C, 0.0f, lc, Vr, NULL);
#pragma omp parallel
        {
            LMF_BUSY_BEGIN();
#pragma omp for schedule(static) nowait
            for (int r = 0; r < R; r++) {
                float *lg = lc + (size_t)r * Vr, *st = stats + 3 * (size_t)(n0 + r);
                const int64_t t = part_row(targets[n0 + r], vbegin, Vr);
                st[2] = t >= 0 ? lg[t] : 0.0f;
                st[0] = lmf_fast_row_max(lg, Vr);
                st[1] = lmf_fast_row_sumexp(lg, Vr, st[0], 0);
            }
            LMF_BUSY_END();
        }
    }
}

/* Per chunk of the kept logits: dlogit = (e^(logit - lse) - onehot) * dloss in place (rows over
 * the team); dx[chunk] = dlogit @ w_part (beta 0), dw_part += dlogit^T @ x[chunk]. */
void lmf_fast_classifier_vp_backward(float *dx, float *dw_part, float *logits, const float *x,
                                     const float *w_part, const int32_t *targets,
                                     const float *lse, float dloss, int vbegin, int N, int C,
                                     int Vr) {
    if (Vr == 0) { /* no logits here: this rank's part of dx is zero */
        memset(dx, 0, (size_t)N * C * sizeof(float));
        return;
    }
    for (int n0 = 0; n0 < N; n0 += LMF_FAST_CLASSIFIER_CHUNK) {
        int R = N - n0 < LMF_FAST_CLASSIFIER_CHUNK ? N - n0 : LMF_FAST_CLASSIFIER_CHUNK;
        const float *xc = x + (size_t)n0 * C;
        float *lc = logits + (size_t)n0 * Vr;
#pragma omp parallel
        {
            LMF_BUSY_BEGIN();
#pragma omp for schedule(static) nowait
            for (int r = 0; r < R; r++) {
                float *lg = lc + (size_t)r * Vr;
                lmf_fast_row_sumexp(lg, Vr, lse[n0 + r], 1);
                lmf_fast_row_scale(lg, Vr, dloss);
                const int64_t t = part_row(targets[n0 + r], vbegin, Vr);
                if (t >= 0) lg[t] -= dloss;
            }
            LMF_BUSY_END();
        }
        lmf_fast_classifier_chunk_backward(dx + (size_t)n0 * C, dw_part, lc, xc, w_part, R, C,
                                           Vr);
    }
}

/* The vocabulary-parallel cross-entropy's combination of every rank's row statistics. */
#include "lmforge/kernels.h"

#include <math.h>

#include "lmforge/status.h"

/* Per row: M = the largest max over the ranks that hold rows (sum != 0); lse = M + log sum_r
 * s_r e^(m_r - M); the target's logit is the sum of the ranks' third entries (one non-zero).
 * Ranks in order, in double, so every rank computes the same bits. A NaN sum (non-finite
 * logits) gives a NaN loss, for the trainer's numeric-fault handling to see. */
void lmf_classifier_vp_combine(float *losses, float *lse, const float *stats_all, int ranks,
                               int N) {
    const size_t stride = 3 * (size_t)N;
    for (int n = 0; n < N; n++) {
        double mx = -INFINITY, zt = 0.0;
        int held = 0;
        for (int r = 0; r < ranks; r++) {
            const float *s = stats_all + (size_t)r * stride + 3 * (size_t)n;
            if (s[1] == 0.0f) continue; /* no rows on this rank */
            held = 1;
            if (s[0] > mx) mx = s[0];
            zt += s[2];
        }
        LMF_ASSERT(held); /* some rank holds rows */
        double sum = 0.0;
        for (int r = 0; r < ranks; r++) {
            const float *s = stats_all + (size_t)r * stride + 3 * (size_t)n;
            if (s[1] != 0.0f) sum += (double)s[1] * exp((double)s[0] - mx);
        }
        const double l = mx + log(sum);
        lse[n] = (float)l;
        losses[n] = (float)(l - zt);
    }
}

/* Fast token (+ position) embedding: rows in parallel forward; channels in parallel backward. */
#include "kernels/fast/fast.h"

#include <immintrin.h>
#include <omp.h>
#include <string.h>

#include "kernels/busy.h"
#include "kernels/fast/vec.h"

void lmf_fast_encoder_forward(float *out, const int32_t *inp, const float *wte, const float *wpe,
                              int B, int T, int C) {
#pragma omp parallel
    {
        LMF_BUSY_BEGIN();
#pragma omp for schedule(static) nowait
        for (int bt = 0; bt < B * T; bt++) {
            float *o = out + (size_t)bt * C;
            const float *we = wte + (size_t)inp[bt] * C;
            if (!wpe) { /* no position embedding */
                memcpy(o, we, (size_t)C * sizeof(float));
                continue;
            }
            const float *pe = wpe + (size_t)(bt % T) * C;
            int c = 0;
            for (; c + 8 <= C; c += 8)
                _mm256_storeu_ps(o + c, _mm256_add_ps(_mm256_loadu_ps(we + c), _mm256_loadu_ps(pe + c)));
            for (; c < C; c++) o[c] = we[c] + pe[c];
        }
        LMF_BUSY_END();
    }
}

/* Several positions may hold the same token, so threads split the channels, not the
 * positions: no two threads touch the same float and each adds in position order. */
void lmf_fast_encoder_backward(float *dwte, float *dwpe, const float *dout, const int32_t *inp,
                               int B, int T, int C) {
#pragma omp parallel
    {
        LMF_BUSY_BEGIN();
        size_t lo, hi;
        lmf_fast_range((size_t)C, omp_get_num_threads(), omp_get_thread_num(), 16, &lo, &hi);
        for (int bt = 0; bt < B * T && hi > lo; bt++) {
            const float *d = dout + (size_t)bt * C;
            float *dwe = dwte + (size_t)inp[bt] * C;
            if (!dwpe) {
                for (size_t c = lo; c < hi; c++) dwe[c] += d[c];
                continue;
            }
            float *dpe = dwpe + (size_t)(bt % T) * C;
            size_t c = lo;
            for (; c + 8 <= hi; c += 8) {
                __m256 g = _mm256_loadu_ps(d + c);
                _mm256_storeu_ps(dwe + c, _mm256_add_ps(_mm256_loadu_ps(dwe + c), g));
                _mm256_storeu_ps(dpe + c, _mm256_add_ps(_mm256_loadu_ps(dpe + c), g));
            }
            for (; c < hi; c++) {
                dwe[c] += d[c];
                dpe[c] += d[c];
            }
        }
        LMF_BUSY_END();
    }
}

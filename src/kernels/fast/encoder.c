/* Fast token (+ position) embedding, whole or vocabulary-parallel: rows in parallel forward;
 * channels in parallel backward. */
#include "kernels/fast/fast.h"

#include <immintrin.h>
#include <limits.h>
#include <omp.h>
#include <string.h>

#include "kernels/busy.h"
#include "kernels/fast/vec.h"

/* the row of this rank's part that holds id, or -1 when id is outside [vbegin, vbegin+Vr) */
static inline int64_t part_row(int32_t id, int vbegin, int Vr) {
    const int64_t row = (int64_t)id - vbegin;
    return row >= 0 && row < Vr ? row : -1;
}

void lmf_fast_encoder_vp_forward(float *out, const int32_t *inp, const float *wte_part,
                                 const float *wpe, int vbegin, int Vr, int B, int T, int C) {
#pragma omp parallel
    {
        LMF_BUSY_BEGIN();
#pragma omp for schedule(static) nowait
        for (int bt = 0; bt < B * T; bt++) {
            float *o = out + (size_t)bt * C;
            const int64_t row = part_row(inp[bt], vbegin, Vr);
            const float *we = row >= 0 ? wte_part + (size_t)row * C : NULL;
            const float *pe = wpe ? wpe + (size_t)(bt % T) * C : NULL;
            if (!we || !pe) { /* one of the two, or neither: a copy */
                if (we || pe) memcpy(o, we ? we : pe, (size_t)C * sizeof(float));
                else memset(o, 0, (size_t)C * sizeof(float));
                continue;
            }
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
void lmf_fast_encoder_vp_backward(float *dwte_part, float *dwpe, const float *dout,
                                  const int32_t *inp, int vbegin, int Vr, int B, int T, int C) {
#pragma omp parallel
    {
        LMF_BUSY_BEGIN();
        size_t lo, hi;
        lmf_fast_range((size_t)C, omp_get_num_threads(), omp_get_thread_num(), 16, &lo, &hi);
        for (int bt = 0; bt < B * T && hi > lo; bt++) {
            const float *d = dout + (size_t)bt * C;
            const int64_t row = part_row(inp[bt], vbegin, Vr);
            float *dwe = row >= 0 ? dwte_part + (size_t)row * C : NULL;
            float *dpe = dwpe ? dwpe + (size_t)(bt % T) * C : NULL;
            if (!dwe || !dpe) {
                float *dst = dwe ? dwe : dpe;
                if (dst)
                    for (size_t c = lo; c < hi; c++) dst[c] += d[c];
                continue;
            }
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

/* the whole table: a range that holds every id */
void lmf_fast_encoder_forward(float *out, const int32_t *inp, const float *wte, const float *wpe,
                              int B, int T, int C) {
    lmf_fast_encoder_vp_forward(out, inp, wte, wpe, 0, INT_MAX, B, T, C);
}

void lmf_fast_encoder_backward(float *dwte, float *dwpe, const float *dout, const int32_t *inp,
                               int B, int T, int C) {
    lmf_fast_encoder_vp_backward(dwte, dwpe, dout, inp, 0, INT_MAX, B, T, C);
}

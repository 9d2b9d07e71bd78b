/* Reference token + position embedding (encoder) forward and backward, whole or vocabulary-parallel. */
#include "kernels/ref.h"

#include <limits.h>

/* out[B,T,C] = (id in [vbegin, vbegin+Vr) ? wte_part[id - vbegin, :] : 0) + wpe[t, :]
 * (wpe NULL: the token embedding alone) */
void lmf_ref_encoder_vp_forward(float *out, const int32_t *inp, const float *wte_part,
                                const float *wpe, int vbegin, int Vr, int B, int T, int C) {
    for (int b = 0; b < B; b++) {
        for (int t = 0; t < T; t++) {
            float *o = out + ((size_t)b * T + t) * C;
            const int64_t row = (int64_t)inp[(size_t)b * T + t] - vbegin;
            const float *we = row >= 0 && row < Vr ? wte_part + (size_t)row * C : NULL;
            const float *pe = wpe ? wpe + (size_t)t * C : NULL;
            for (int c = 0; c < C; c++) {
                float e = we ? we[c] : 0.0f;
                o[c] = pe ? e + pe[c] : e;
            }
        }
    }
}

/* dwte_part[id - vbegin, :] += dout[b,t,:] for ids in [vbegin, vbegin+Vr);
 * dwpe[t, :] += dout[b,t,:] (dwpe may be NULL) */
void lmf_ref_encoder_vp_backward(float *dwte_part, float *dwpe, const float *dout,
                                 const int32_t *inp, int vbegin, int Vr, int B, int T, int C) {
    for (int b = 0; b < B; b++) {
        for (int t = 0; t < T; t++) {
            const float *d = dout + ((size_t)b * T + t) * C;
            const int64_t row = (int64_t)inp[(size_t)b * T + t] - vbegin;
            if (row >= 0 && row < Vr) {
                float *dwe = dwte_part + (size_t)row * C;
                for (int c = 0; c < C; c++) dwe[c] += d[c];
            }
            if (dwpe) {
                float *dpe = dwpe + (size_t)t * C;
                for (int c = 0; c < C; c++) dpe[c] += d[c];
            }
        }
    }
}

/* the whole table: a range that holds every id */
void lmf_ref_encoder_forward(float *out, const int32_t *inp, const float *wte, const float *wpe,
                             int B, int T, int C) {
    lmf_ref_encoder_vp_forward(out, inp, wte, wpe, 0, INT_MAX, B, T, C);
}

void lmf_ref_encoder_backward(float *dwte, float *dwpe, const float *dout, const int32_t *inp,
                              int B, int T, int C) {
    lmf_ref_encoder_vp_backward(dwte, dwpe, dout, inp, 0, INT_MAX, B, T, C);
}

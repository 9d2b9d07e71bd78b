/* Reference token + position embedding (encoder) forward and backward. */
#include "kernels/ref.h"

/* out[B,T,C] = wte[inp[b,t], :] + wpe[t, :] (wpe NULL: the token embedding alone) */
void lmf_ref_encoder_forward(float *out, const int32_t *inp, const float *wte, const float *wpe,
                             int B, int T, int C) {
    for (int b = 0; b < B; b++) {
        for (int t = 0; t < T; t++) {
            float *o = out + ((size_t)b * T + t) * C;
            const float *we = wte + (size_t)inp[(size_t)b * T + t] * C;
            if (!wpe) {
                for (int c = 0; c < C; c++) o[c] = we[c];
                continue;
            }
            const float *pe = wpe + (size_t)t * C;
            for (int c = 0; c < C; c++) o[c] = we[c] + pe[c];
        }
    }
}

/* dwte[inp[b,t], :] += dout[b,t,:]; dwpe[t, :] += dout[b,t,:] (dwpe may be NULL) */
void lmf_ref_encoder_backward(float *dwte, float *dwpe, const float *dout, const int32_t *inp,
                              int B, int T, int C) {
    for (int b = 0; b < B; b++) {
        for (int t = 0; t < T; t++) {
            const float *d = dout + ((size_t)b * T + t) * C;
            float *dwe = dwte + (size_t)inp[(size_t)b * T + t] * C;
            if (!dwpe) {
                for (int c = 0; c < C; c++) dwe[c] += d[c];
                continue;
            }
            float *dpe = dwpe + (size_t)t * C;
            for (int c = 0; c < C; c++) {
                dwe[c] += d[c];
                dpe[c] += d[c];
            }
        }
    }
}

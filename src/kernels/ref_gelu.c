/* Reference GELU (tanh approximation) forward and backward. */
#include "kernels/ref.h"

#include <math.h>

#define LMF_GELU_S 0.7978845608028654f /* sqrt(2/pi) */
#define LMF_GELU_A 0.044715f

/* out[i] = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) */
void lmf_ref_gelu_forward(float *out, const float *inp, size_t N) {
    for (size_t i = 0; i < N; i++) {
        float x = inp[i];
        float u = LMF_GELU_S * (x + LMF_GELU_A * x * x * x);
        out[i] = 0.5f * x * (1.0f + tanhf(u));
    }
}

/* dinp[i] += gelu'(x) dout[i], gelu'(x) = 0.5 (1 + th) + 0.5 x (1 - th^2) s (1 + 3a x^2) */
void lmf_ref_gelu_backward(float *dinp, const float *inp, const float *dout, size_t N) {
    for (size_t i = 0; i < N; i++) {
        float x = inp[i];
        float u = LMF_GELU_S * (x + LMF_GELU_A * x * x * x);
        float th = tanhf(u);
        float du = LMF_GELU_S * (1.0f + 3.0f * LMF_GELU_A * x * x);
        float g = 0.5f * (1.0f + th) + 0.5f * x * (1.0f - th * th) * du;
        dinp[i] += g * dout[i];
    }
}

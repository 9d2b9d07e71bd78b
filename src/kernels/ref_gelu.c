/* Reference GELU (tanh approximation) forward and backward, and its fused forms. */
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

/* dinp[i] = gelu'(x) dout[i] (written), gelu'(x) = 0.5 (1 + th) + 0.5 x (1 - th^2) s (1 + 3a x^2) */
void lmf_ref_gelu_backward(float *dinp, const float *inp, const float *dout, size_t N) {
    for (size_t i = 0; i < N; i++) {
        float x = inp[i];
        float u = LMF_GELU_S * (x + LMF_GELU_A * x * x * x);
        float th = tanhf(u);
        float du = LMF_GELU_S * (1.0f + 3.0f * LMF_GELU_A * x * x);
        float g = 0.5f * (1.0f + th) + 0.5f * x * (1.0f - th * th) * du;
        dinp[i] = g * dout[i];
    }
}

/* pre[N,OC] = inp[N,C] @ weight[C,OC] + bias (bias may be NULL), out[N,OC] = gelu(pre): the
 * reference simply runs its matmul and then its GELU. */
void lmf_ref_matmul_gelu_forward(float *pre, float *out, const float *inp, const float *weight,
                                 const float *bias, int N, int C, int OC) {
    lmf_ref_matmul_forward(pre, inp, weight, bias, N, C, OC);
    lmf_ref_gelu_forward(out, pre, (size_t)N * OC);
}

/* dinp[N,OC] = gelu'(inp) * dout (written; dinp may be dout); dbias[OC] += column sums of
 * dinp, rows in order (dbias may be NULL) */
void lmf_ref_gelu_bias_backward(float *dinp, float *dbias, const float *inp, const float *dout,
                                int N, int OC) {
    for (int n = 0; n < N; n++) {
        for (int j = 0; j < OC; j++) {
            size_t i = (size_t)n * OC + j;
            float x = inp[i];
            float u = LMF_GELU_S * (x + LMF_GELU_A * x * x * x);
            float th = tanhf(u);
            float du = LMF_GELU_S * (1.0f + 3.0f * LMF_GELU_A * x * x);
            float g = (0.5f * (1.0f + th) + 0.5f * x * (1.0f - th * th) * du) * dout[i];
            dinp[i] = g;
            if (dbias) dbias[j] += g;
        }
    }
}

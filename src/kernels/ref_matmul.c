/* Reference dense layer (Hugging Face Conv1D layout, weight (in, out)) forward and backward. */
#include "kernels/ref.h"

/* out[N,OC] = inp[N,C] @ weight[C,OC] + bias[OC] (bias may be NULL) */
void lmf_ref_matmul_forward(float *out, const float *inp, const float *weight, const float *bias,
                            int N, int C, int OC) {
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        float *o = out + (size_t)n * OC;
        for (int j = 0; j < OC; j++) o[j] = bias ? bias[j] : 0.0f;
        for (int c = 0; c < C; c++) {
            const float *w = weight + (size_t)c * OC;
            float xc = x[c];
            for (int j = 0; j < OC; j++) o[j] += xc * w[j];
        }
    }
}

/* dinp[N,C] = dout[N,OC] @ weight^T (written); dweight[C,OC] += inp^T @ dout; dbias[OC] +=
 * column sums of dout. dinp and dbias may be NULL. */
void lmf_ref_matmul_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                             const float *inp, const float *weight, int N, int C, int OC) {
    for (int n = 0; n < N; n++) {
        const float *d = dout + (size_t)n * OC;
        const float *x = inp + (size_t)n * C;
        if (dinp) {
            float *dx = dinp + (size_t)n * C;
            for (int c = 0; c < C; c++) {
                const float *w = weight + (size_t)c * OC;
                float s = 0.0f;
                for (int j = 0; j < OC; j++) s += d[j] * w[j];
                dx[c] = s;
            }
        }
        for (int c = 0; dweight && c < C; c++) {
            float *dw = dweight + (size_t)c * OC;
            float xc = x[c];
            for (int j = 0; j < OC; j++) dw[j] += xc * d[j];
        }
        if (dbias) {
            for (int j = 0; j < OC; j++) dbias[j] += d[j];
        }
    }
}

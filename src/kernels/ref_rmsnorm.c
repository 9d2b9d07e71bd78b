/* Reference RMSNorm forward and backward (the Llama family's normalisation, no mean, no bias). */
#include "kernels/ref.h"

#include <math.h>

/* rstd[n] = 1 / sqrt(mean(inp[n]^2) + eps); out[N,C] = inp * rstd * weight */
void lmf_ref_rmsnorm_forward(float *out, float *rstd, const float *inp, const float *weight,
                             float eps, int N, int C) {
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        float ss = 0.0f;
        for (int c = 0; c < C; c++) ss += x[c] * x[c];
        float r = 1.0f / sqrtf(ss / (float)C + eps);
        float *o = out + (size_t)n * C;
        for (int c = 0; c < C; c++) o[c] = x[c] * r * weight[c];
        rstd[n] = r;
    }
}

/* With xhat = x * rstd and g = dout * weight:
 * dinp += rstd * (g - xhat * mean(g * xhat)); dweight += dout * xhat */
void lmf_ref_rmsnorm_backward(float *dinp, float *dweight, const float *dout, const float *inp,
                              const float *weight, const float *rstd, int N, int C) {
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        const float *d = dout + (size_t)n * C;
        float *dx = dinp + (size_t)n * C;
        float r = rstd[n], gx = 0.0f;
        for (int c = 0; c < C; c++) gx += d[c] * weight[c] * x[c] * r;
        gx /= (float)C;
        for (int c = 0; c < C; c++) {
            float xhat = x[c] * r;
            dweight[c] += d[c] * xhat;
            dx[c] += r * (d[c] * weight[c] - xhat * gx);
        }
    }
}

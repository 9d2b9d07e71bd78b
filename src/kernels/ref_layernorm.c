/* Reference LayerNorm forward and backward (eps 1e-5, biased variance). */
#include "kernels/ref.h"

#include <math.h>

/* out[N,C] = (inp - mean) * rstd * weight + bias; saves mean[N] and rstd[N] */
void lmf_ref_layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                               const float *weight, const float *bias, int N, int C) {
    const float eps = 1e-5f;
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        float m = 0.0f;
        for (int c = 0; c < C; c++) m += x[c];
        m /= (float)C;
        float var = 0.0f;
        for (int c = 0; c < C; c++) {
            float d = x[c] - m;
            var += d * d;
        }
        var /= (float)C;
        float r = 1.0f / sqrtf(var + eps);
        float *o = out + (size_t)n * C;
        for (int c = 0; c < C; c++) o[c] = (x[c] - m) * r * weight[c] + bias[c];
        mean[n] = m;
        rstd[n] = r;
    }
}

/* res[N,C] = a + b (res may be a or b), then LayerNorm of res into out, mean, rstd: each row
 * is added and normalised before the next, by the same code as layernorm_forward, so the
 * results equal residual_forward followed by layernorm_forward bit for bit. */
void lmf_ref_residual_layernorm_forward(float *res, float *out, float *mean, float *rstd,
                                        const float *a, const float *b, const float *weight,
                                        const float *bias, int N, int C) {
    for (int n = 0; n < N; n++) {
        size_t o = (size_t)n * C;
        for (int c = 0; c < C; c++) res[o + c] = a[o + c] + b[o + c];
        lmf_ref_layernorm_forward(out + o, mean + n, rstd + n, res + o, weight, bias, 1, C);
    }
}

/* With xhat = (x - mean) * rstd and g = dout * weight:
 * dinp += rstd * (g - mean(g) - xhat * mean(g * xhat)); dweight += dout * xhat; dbias += dout */
void lmf_ref_layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                                const float *inp, const float *weight, const float *mean,
                                const float *rstd, int N, int C) {
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * C;
        const float *d = dout + (size_t)n * C;
        float *dx = dinp + (size_t)n * C;
        float m = mean[n], r = rstd[n];
        float gmean = 0.0f, gxmean = 0.0f;
        for (int c = 0; c < C; c++) {
            float xhat = (x[c] - m) * r;
            float g = d[c] * weight[c];
            gmean += g;
            gxmean += g * xhat;
        }
        gmean /= (float)C;
        gxmean /= (float)C;
        for (int c = 0; c < C; c++) {
            float xhat = (x[c] - m) * r;
            float g = d[c] * weight[c];
            dbias[c] += d[c];
            dweight[c] += d[c] * xhat;
            dx[c] += r * (g - gmean - xhat * gxmean);
        }
    }
}

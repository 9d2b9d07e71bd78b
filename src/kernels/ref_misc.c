/* Reference element-wise kernels: residual add, sum of squares, AdamW step. */
#include "kernels/ref.h"

#include <math.h>

/* out[N] = a[N] + b[N] (out may alias a or b) */
void lmf_ref_residual_forward(float *out, const float *a, const float *b, size_t N) {
    for (size_t i = 0; i < N; i++) out[i] = a[i] + b[i];
}

/* sum of x[i]^2, accumulated in double */
double lmf_ref_sumsq(const float *x, size_t n) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += (double)x[i] * (double)x[i];
    return s;
}

/* AdamW, decoupled weight decay; t >= 1 is the step number used for bias correction */
void lmf_ref_adamw(float *param, float *grad, float *m, float *v, size_t n, float lr,
                   float beta1, float beta2, float eps, float weight_decay, float grad_scale,
                   int t) {
    float c1 = 1.0f - powf(beta1, (float)t);
    float c2 = 1.0f - powf(beta2, (float)t);
    for (size_t i = 0; i < n; i++) {
        float g = grad[i] * grad_scale;
        grad[i] = 0.0f;
        m[i] = beta1 * m[i] + (1.0f - beta1) * g;
        v[i] = beta2 * v[i] + (1.0f - beta2) * g * g;
        float mhat = m[i] / c1;
        float vhat = v[i] / c2;
        param[i] -= lr * (mhat / (sqrtf(vhat) + eps) + weight_decay * param[i]);
    }
}

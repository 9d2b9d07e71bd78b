/* Reference SwiGLU gate (silu(gate) * up) forward and backward. */
#include "kernels/ref.h"

#include <math.h>

/* out[i] = gate[i] / (1 + e^-gate[i]) * up[i] */
void lmf_ref_swiglu_forward(float *out, const float *gate, const float *up, size_t N) {
    for (size_t i = 0; i < N; i++) {
        float g = gate[i];
        out[i] = g / (1.0f + expf(-g)) * up[i];
    }
}

/* with s = sigmoid(g): dgate = dout up s (1 + g (1 - s)), dup = dout g s (written; dgate may
 * be dout) */
void lmf_ref_swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate,
                             const float *up, size_t N) {
    for (size_t i = 0; i < N; i++) {
        float g = gate[i], d = dout[i];
        float s = 1.0f / (1.0f + expf(-g));
        dup[i] = d * g * s;
        dgate[i] = d * up[i] * s * (1.0f + g * (1.0f - s));
    }
}

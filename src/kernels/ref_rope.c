/* Reference rotary position embedding (Hugging Face's rotate_half convention), forward and
 * its transpose for the backward. */
#include "kernels/ref.h"

#include <math.h>

/* Rotate every head of x[B,T,NH*hs] by the angles of its position; sign -1 rotates back (the
 * transpose, for gradients). */
static void rotate(float *x, int B, int T, int NH, int hs, int pos0, float theta, double sign) {
    int half = hs / 2;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            for (int i = 0; i < half; i++) {
                double f = pow((double)theta, -2.0 * i / (double)hs);
                double a = (double)(pos0 + t) * f;
                float cs = (float)cos(a), sn = (float)(sign * sin(a));
                for (int h = 0; h < NH; h++) {
                    float *p = x + ((size_t)b * T + t) * (size_t)NH * hs + (size_t)h * hs;
                    float x1 = p[i], x2 = p[i + half];
                    p[i] = x1 * cs - x2 * sn;
                    p[i + half] = x2 * cs + x1 * sn;
                }
            }
}

void lmf_ref_rope_forward(float *q, float *k, int B, int T, int NH, int NKV, int hs, int pos0,
                          float theta) {
    rotate(q, B, T, NH, hs, pos0, theta, 1.0);
    if (k) rotate(k, B, T, NKV, hs, pos0, theta, 1.0);
}

/* the rotation is orthogonal: its transpose is the rotation by -a */
void lmf_ref_rope_backward(float *dq, float *dk, int B, int T, int NH, int NKV, int hs, int pos0,
                           float theta) {
    rotate(dq, B, T, NH, hs, pos0, theta, -1.0);
    if (dk) rotate(dk, B, T, NKV, hs, pos0, theta, -1.0);
}

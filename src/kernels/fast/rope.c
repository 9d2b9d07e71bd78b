/* Fast rotary position embedding: queries and keys rotated in one pass, each position's
 * cosines and sines computed once for all its heads. */
#include "kernels/fast/fast.h"

#include <math.h>
#include <omp.h>

#include "kernels/busy.h"

/* angles per chunk of frequencies kept on the stack */
#define ROPE_CHUNK 64

static void rotate_heads(float *x, int nh, int hs, int i0, int i1, const float *cs,
                         const float *sn) {
    int half = hs / 2;
    for (int h = 0; h < nh; h++) {
        float *p = x + (size_t)h * hs;
#pragma omp simd
        for (int i = i0; i < i1; i++) {
            float x1 = p[i], x2 = p[i + half], c = cs[i - i0], s = sn[i - i0];
            p[i] = x1 * c - x2 * s;
            p[i + half] = x2 * c + x1 * s;
        }
    }
}

/* positions in parallel; sign -1 is the transpose (the backward) */
static void rope(float *q, float *k, int B, int T, int NH, int NKV, int hs, int pos0, float theta,
                 double sign) {
    int half = hs / 2;
#pragma omp parallel
    {
        LMF_BUSY_BEGIN();
        float cs[ROPE_CHUNK], sn[ROPE_CHUNK];
#pragma omp for schedule(static) nowait
        for (int bt = 0; bt < B * T; bt++) {
            double pos = (double)(pos0 + bt % T);
            for (int i0 = 0; i0 < half; i0 += ROPE_CHUNK) {
                int i1 = i0 + ROPE_CHUNK < half ? i0 + ROPE_CHUNK : half;
                for (int i = i0; i < i1; i++) {
                    double a = pos * pow((double)theta, -2.0 * i / (double)hs);
                    cs[i - i0] = (float)cos(a);
                    sn[i - i0] = (float)(sign * sin(a));
                }
                rotate_heads(q + (size_t)bt * NH * hs, NH, hs, i0, i1, cs, sn);
                if (k) rotate_heads(k + (size_t)bt * NKV * hs, NKV, hs, i0, i1, cs, sn);
            }
        }
        LMF_BUSY_END();
    }
}

void lmf_fast_rope_forward(float *q, float *k, int B, int T, int NH, int NKV, int hs, int pos0,
                           float theta) {
    rope(q, k, B, T, NH, NKV, hs, pos0, theta, 1.0);
}

void lmf_fast_rope_backward(float *dq, float *dk, int B, int T, int NH, int NKV, int hs, int pos0,
                            float theta) {
    rope(dq, dk, B, T, NH, NKV, hs, pos0, theta, -1.0);
}

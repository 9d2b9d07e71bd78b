/* Reference causal multi-head self-attention forward and backward, with optional document
 * masking (a row attends only to the keys of its own document). */
#include "kernels/ref.h"

#include <math.h>

/* saved: the softmax probabilities att[B,NH,T,T] (row t holds zeros after column t and, with
 * document masking, before its document's start) */
size_t lmf_ref_attention_saved_floats(int B, int T, int NH) {
    return (size_t)B * NH * T * T;
}

/* scratch: one row dpre[T] per (b, h, t) in turn; B*NH*T floats are asked for so that the
 * reference and fast tables need the same amount */
size_t lmf_ref_attention_scratch_floats(int B, int T, int NH, int C) {
    (void)C;
    return (size_t)B * NH * T;
}

/* One query row of one head: att[u] = softmax_u(q . k_u / sqrt(hs)) over s0 <= u <= t, written
 * to att[s0..t] (att[0..s0) = 0); o[hs] = sum_u att[u] v_u. Key and value u of the head start at
 * k + u*stride and v + u*stride. The training forward and the cached inference (s0 = 0) both
 * run it, so they agree bit for bit. */
static void attend_row(float *o, float *att, const float *q, const float *k, const float *v,
                       size_t stride, int s0, int t, int hs, float scale) {
    float maxv = -INFINITY;
    for (int u = 0; u < s0; u++) att[u] = 0.0f;
    for (int u = s0; u <= t; u++) {
        const float *ku = k + (size_t)u * stride;
        float s = 0.0f;
        for (int i = 0; i < hs; i++) s += q[i] * ku[i];
        s *= scale;
        att[u] = s;
        if (s > maxv) maxv = s;
    }
    float sum = 0.0f;
    for (int u = s0; u <= t; u++) {
        att[u] = expf(att[u] - maxv);
        sum += att[u];
    }
    for (int u = s0; u <= t; u++) att[u] /= sum;
    for (int i = 0; i < hs; i++) o[i] = 0.0f;
    for (int u = s0; u <= t; u++) {
        const float *vu = v + (size_t)u * stride;
        for (int i = 0; i < hs; i++) o[i] += att[u] * vu[i];
    }
}

/* first key row t of sequence b may attend to */
static int first_key(const int *doc_start, int T, int b, int t) {
    return doc_start ? doc_start[(size_t)b * T + t] : 0;
}

/* qkv[B,T,3C]: per position q[C], k[C], v[C]; head h uses channels [h*hs, (h+1)*hs).
 * att[b,h,t,u] = softmax_u(q_t . k_u / sqrt(hs)) over s <= u <= t (s = doc_start[b,t], or 0);
 * out[b,t,h*hs+i] = sum_u att * v_u */
void lmf_ref_attention_forward(float *out, float *saved, const float *qkv, const int *doc_start,
                               int B, int T, int C, int NH) {
    int hs = C / NH;
    float scale = 1.0f / sqrtf((float)hs);
    size_t C3 = (size_t)3 * C;
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < NH; h++) {
            const float *base = qkv + (size_t)b * T * C3 + (size_t)h * hs;
            for (int t = 0; t < T; t++) {
                float *att = saved + (((size_t)b * NH + h) * T + t) * T;
                attend_row(out + ((size_t)b * T + t) * C + (size_t)h * hs, att,
                           base + (size_t)t * C3, base + C, base + 2 * (size_t)C, C3,
                           first_key(doc_start, T, b, t), t, hs, scale);
                for (int u = t + 1; u < T; u++) att[u] = 0.0f;
            }
        }
    }
}

/* The backward of one causal attention over strided rows, accumulating (the callers zero the
 * gradients first): q rows of qs floats (head h at h*hs), k and v rows of ks floats, query head
 * h reading key/value head h / group; dq, dk, dv with the same strides; dout rows of ds. Per
 * row: datt_u = dout_t . v_u; dpre_u = att_u * (datt_u - sum_w att_w datt_w);
 * dq_t += scale * sum_u dpre_u k_u; dk_u += scale * dpre_u q_t; dv_u += att_u dout_t */
static void backward_rows(float *dq, float *dk, float *dv, float *scratch, const float *dout,
                          size_t ds, const float *q, const float *k, const float *v, size_t qs,
                          size_t ks, const float *saved, const int *doc_start, int B, int T,
                          int NH, int group, int hs) {
    float scale = 1.0f / sqrtf((float)hs);
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            size_t kvh = (size_t)(h / group) * hs;
            for (int t = 0; t < T; t++) {
                const float *att = saved + (((size_t)b * NH + h) * T + t) * T;
                const float *d = dout + ((size_t)b * T + t) * ds + (size_t)h * hs;
                const float *qt = q + ((size_t)b * T + t) * qs + (size_t)h * hs;
                float *dqt = dq + ((size_t)b * T + t) * qs + (size_t)h * hs;
                float *dpre = scratch + (((size_t)b * NH + h) * T);
                float dot = 0.0f;
                int s0 = first_key(doc_start, T, b, t);
                for (int u = s0; u <= t; u++) {
                    size_t base = ((size_t)b * T + u) * ks + kvh;
                    float da = 0.0f;
                    for (int i = 0; i < hs; i++) {
                        da += d[i] * v[base + i];
                        dv[base + i] += att[u] * d[i];
                    }
                    dpre[u] = da;
                    dot += att[u] * da;
                }
                for (int u = s0; u <= t; u++) {
                    size_t base = ((size_t)b * T + u) * ks + kvh;
                    float g = att[u] * (dpre[u] - dot) * scale;
                    for (int i = 0; i < hs; i++) {
                        dqt[i] += g * k[base + i];
                        dk[base + i] += g * qt[i];
                    }
                }
            }
        }
}

/* dqkv[B,T,3C] = gradient of the forward above (written), given dout[B,T,C] and the saved
 * att: dqkv zeroed, then backward_rows over the interleaved q, k, v (rows of 3C) */
void lmf_ref_attention_backward(float *dqkv, float *scratch, const float *dout, const float *qkv,
                                const float *saved, const int *doc_start, int B, int T, int C,
                                int NH) {
    size_t C3 = (size_t)3 * C;
    for (size_t i = 0; i < (size_t)B * T * C3; i++) dqkv[i] = 0.0f;
    backward_rows(dqkv, dqkv + C, dqkv + 2 * (size_t)C, scratch, dout, (size_t)C, qkv, qkv + C,
                  qkv + 2 * (size_t)C, C3, C3, saved, doc_start, B, T, NH, 1, C / NH);
}

size_t lmf_ref_attention_kv_scratch_floats(int T) { return (size_t)T; }

/* Row past+i of lmf_ref_attention_forward, with keys and values from the cache: the same
 * arithmetic in the same order (attend_row), so the results are identical. */
void lmf_ref_attention_kv_forward(float *out, float *scratch, const float *q, size_t q_stride,
                                  const float *kc, const float *vc, int past, int n, int C,
                                  int NH) {
    int hs = C / NH;
    float scale = 1.0f / sqrtf((float)hs);
    for (int i = 0; i < n; i++)
        for (int h = 0; h < NH; h++)
            attend_row(out + (size_t)i * C + (size_t)h * hs, scratch,
                       q + (size_t)i * q_stride + (size_t)h * hs, kc + (size_t)h * hs,
                       vc + (size_t)h * hs, (size_t)C, 0, past + i, hs, scale);
}

/* ---- grouped-query attention (the Llama family): q, k, v in their own arrays, NKV key/value
 * heads, query head h reading key/value head h / (NH/NKV) ---- */

void lmf_ref_gqa_attention_forward(float *out, float *saved, const float *q, const float *k,
                                   const float *v, const int *doc_start, int B, int T, int NH,
                                   int NKV, int hs) {
    float scale = 1.0f / sqrtf((float)hs);
    size_t qs = (size_t)NH * hs, ks = (size_t)NKV * hs;
    int group = NH / NKV;
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            const float *kb = k + (size_t)b * T * ks + (size_t)(h / group) * hs;
            const float *vb = v + (size_t)b * T * ks + (size_t)(h / group) * hs;
            for (int t = 0; t < T; t++) {
                float *att = saved + (((size_t)b * NH + h) * T + t) * T;
                attend_row(out + ((size_t)b * T + t) * qs + (size_t)h * hs, att,
                           q + ((size_t)b * T + t) * qs + (size_t)h * hs, kb, vb, ks,
                           first_key(doc_start, T, b, t), t, hs, scale);
                for (int u = t + 1; u < T; u++) att[u] = 0.0f;
            }
        }
}

size_t lmf_ref_gqa_attention_scratch_floats(int B, int T, int NH, int NKV) {
    (void)NKV;
    return (size_t)B * NH * T;
}

/* each key/value head receives the sum over its group's query heads (backward_rows) */
void lmf_ref_gqa_attention_backward(float *dq, float *dk, float *dv, float *scratch,
                                    const float *dout, const float *q, const float *k,
                                    const float *v, const float *saved, const int *doc_start,
                                    int B, int T, int NH, int NKV, int hs) {
    size_t qs = (size_t)NH * hs, ks = (size_t)NKV * hs;
    for (size_t i = 0; i < (size_t)B * T * qs; i++) dq[i] = 0.0f;
    for (size_t i = 0; i < (size_t)B * T * ks; i++) dk[i] = dv[i] = 0.0f;
    backward_rows(dq, dk, dv, scratch, dout, qs, q, k, v, qs, ks, saved, doc_start, B, T, NH,
                  NH / NKV, hs);
}

/* row past+i of lmf_ref_gqa_attention_forward with keys and values from the cache */
void lmf_ref_gqa_attention_kv_forward(float *out, float *scratch, const float *q, const float *kc,
                                      const float *vc, int past, int n, int NH, int NKV, int hs) {
    float scale = 1.0f / sqrtf((float)hs);
    size_t qs = (size_t)NH * hs, ks = (size_t)NKV * hs;
    int group = NH / NKV;
    for (int i = 0; i < n; i++)
        for (int h = 0; h < NH; h++)
            attend_row(out + (size_t)i * qs + (size_t)h * hs, scratch, q + (size_t)i * qs + (size_t)h * hs,
                       kc + (size_t)(h / group) * hs, vc + (size_t)(h / group) * hs, ks, 0,
                       past + i, hs, scale);
}

/* Internal declarations of the reference CPU kernels (the numerical truth; see kernels.h). */
#ifndef LMF_KERNELS_REF_H
#define LMF_KERNELS_REF_H

#include <stddef.h>
#include <stdint.h>

void lmf_ref_encoder_forward(float *out, const int32_t *inp, const float *wte, const float *wpe,
                             int B, int T, int C);
void lmf_ref_encoder_backward(float *dwte, float *dwpe, const float *dout, const int32_t *inp,
                              int B, int T, int C);
void lmf_ref_encoder_vp_forward(float *out, const int32_t *inp, const float *wte_part,
                                const float *wpe, int vbegin, int Vr, int B, int T, int C);
void lmf_ref_encoder_vp_backward(float *dwte_part, float *dwpe, const float *dout,
                                 const int32_t *inp, int vbegin, int Vr, int B, int T, int C);

void lmf_ref_layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                               const float *weight, const float *bias, int N, int C);
void lmf_ref_residual_layernorm_forward(float *res, float *out, float *mean, float *rstd,
                                        const float *a, const float *b, const float *weight,
                                        const float *bias, int N, int C);
void lmf_ref_layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                                const float *inp, const float *weight, const float *mean,
                                const float *rstd, int N, int C);

void lmf_ref_matmul_forward(float *out, const float *inp, const float *weight, const float *bias,
                            int N, int C, int OC);
void lmf_ref_matmul_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                             const float *inp, const float *weight, int N, int C, int OC);

size_t lmf_ref_attention_saved_floats(int B, int T, int NH);
size_t lmf_ref_attention_scratch_floats(int B, int T, int NH, int C);
void lmf_ref_attention_forward(float *out, float *saved, const float *qkv, const int *doc_start,
                               int B, int T, int C, int NH);
void lmf_ref_attention_backward(float *dqkv, float *scratch, const float *dout, const float *qkv,
                                const float *saved, const int *doc_start, int B, int T, int C,
                                int NH);

void lmf_ref_gelu_forward(float *out, const float *inp, size_t N);
void lmf_ref_gelu_backward(float *dinp, const float *inp, const float *dout, size_t N);
void lmf_ref_matmul_gelu_forward(float *pre, float *out, const float *inp, const float *weight,
                                 const float *bias, int N, int C, int OC);
void lmf_ref_gelu_bias_backward(float *dinp, float *dbias, const float *inp, const float *dout,
                                int N, int OC);

void lmf_ref_residual_forward(float *out, const float *a, const float *b, size_t N);

size_t lmf_ref_attention_kv_scratch_floats(int T);
void lmf_ref_attention_kv_forward(float *out, float *scratch, const float *q, size_t q_stride,
                                  const float *kc, const float *vc, int past, int n, int C, int NH);
size_t lmf_ref_classifier_scratch_floats(int N, int V);
void lmf_ref_logits_forward(float *logits, const float *x, const float *wte, int N, int C, int V);
void lmf_ref_classifier(float *losses, float *dx, float *dwte, float *scratch, const float *x,
                        const float *wte, const int32_t *targets, float dloss, int N, int C,
                        int V);
/* one row of the classifiers' backward: dxn[C] = dlogits[V] @ w[V,C] (written), dw[V,C] +=
 * dlogits^T xn (shared by the whole and the vocabulary-parallel classifier) */
void lmf_ref_classifier_row_backward(float *dxn, float *dw, const float *dlogits,
                                     const float *xn, const float *w, int C, int V);
size_t lmf_ref_classifier_vp_scratch_floats(int N, int Vr);
void lmf_ref_classifier_vp_stats(float *stats, float *logits, const float *x,
                                 const float *w_part, const int32_t *targets, int vbegin, int N,
                                 int C, int Vr);
void lmf_ref_classifier_vp_backward(float *dx, float *dw_part, float *logits, const float *x,
                                    const float *w_part, const int32_t *targets,
                                    const float *lse, float dloss, int vbegin, int N, int C,
                                    int Vr);

void lmf_ref_adamw(float *param, float *grad, float *m, float *v, size_t n, float lr,
                   float beta1, float beta2, float eps, float weight_decay, float grad_scale, int t);
double lmf_ref_sumsq(const float *x, size_t n);


void lmf_ref_rmsnorm_forward(float *out, float *rstd, const float *inp, const float *weight,
                             float eps, int N, int C);
void lmf_ref_rmsnorm_backward(float *dinp, float *dweight, const float *dout, const float *inp,
                              const float *weight, const float *rstd, int N, int C);
void lmf_ref_rope_forward(float *q, float *k, int B, int T, int NH, int NKV, int hs, int pos0,
                          float theta);
void lmf_ref_rope_backward(float *dq, float *dk, int B, int T, int NH, int NKV, int hs, int pos0,
                           float theta);
void lmf_ref_swiglu_forward(float *out, const float *gate, const float *up, size_t N);
void lmf_ref_swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate,
                             const float *up, size_t N);
void lmf_ref_gqa_attention_forward(float *out, float *saved, const float *q, const float *k,
                                   const float *v, const int *doc_start, int B, int T, int NH,
                                   int NKV, int hs);
size_t lmf_ref_gqa_attention_scratch_floats(int B, int T, int NH, int NKV);
void lmf_ref_gqa_attention_backward(float *dq, float *dk, float *dv, float *scratch,
                                    const float *dout, const float *q, const float *k,
                                    const float *v, const float *saved, const int *doc_start, int B,
                                    int T, int NH, int NKV, int hs);
void lmf_ref_gqa_attention_kv_forward(float *out, float *scratch, const float *q, const float *kc,
                                      const float *vc, int past, int n, int NH, int NKV, int hs);

#endif

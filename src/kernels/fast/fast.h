/* Internal declarations of the fast CPU kernels (BLAS, AVX2+FMA, OpenMP); see kernels.h. */
#ifndef LMF_KERNELS_FAST_H
#define LMF_KERNELS_FAST_H

#include <stddef.h>
#include <stdint.h>

/* Row-major C[M,N] = alpha * op(A) @ op(B) + beta * C, op = transpose when trans_* != 0.
 * When bias != NULL, C's rows are first set to bias[N] and beta is taken as 1.
 * Splits C along its larger dimension over the OpenMP team; each part is one single-threaded
 * sgemm (OpenBLAS is kept at 1 thread). Call it outside any parallel region. */
void lmf_fast_gemm(int trans_a, int trans_b, int M, int N, int K, float alpha, const float *A,
                   int lda, const float *B, int ldb, float beta, float *C, int ldc,
                   const float *bias);
/* Called by the thread that computed it, on a finished tile of C: rows [r0, r1) and columns
 * [c0, c1) (C and ldc as given to the GEMM), while the tile is still in cache. */
typedef void (*lmf_fast_epilogue)(void *ctx, float *C, int ldc, int r0, int r1, int c0, int c1);
/* lmf_fast_gemm with an epilogue: when epi != NULL, C is split by rows (each thread's part is
 * whole rows) and epi(ctx, ...) runs on the thread's part right after its sgemm, before the
 * team's barrier. epi NULL: exactly lmf_fast_gemm. */
void lmf_fast_gemm_epi(int trans_a, int trans_b, int M, int N, int K, float alpha,
                       const float *A, int lda, const float *B, int ldb, float beta, float *C,
                       int ldc, const float *bias, lmf_fast_epilogue epi, void *ctx);
/* Make sure OpenBLAS runs single-threaded (the fast kernels thread around it). */
void lmf_fast_blas_single(void);

void lmf_fast_encoder_forward(float *out, const int32_t *inp, const float *wte, const float *wpe,
                              int B, int T, int C);
void lmf_fast_encoder_backward(float *dwte, float *dwpe, const float *dout, const int32_t *inp,
                               int B, int T, int C);
void lmf_fast_encoder_vp_forward(float *out, const int32_t *inp, const float *wte_part,
                                 const float *wpe, int vbegin, int Vr, int B, int T, int C);
void lmf_fast_encoder_vp_backward(float *dwte_part, float *dwpe, const float *dout,
                                  const int32_t *inp, int vbegin, int Vr, int B, int T, int C);

void lmf_fast_layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                                const float *weight, const float *bias, int N, int C);
void lmf_fast_residual_layernorm_forward(float *res, float *out, float *mean, float *rstd,
                                         const float *a, const float *b, const float *weight,
                                         const float *bias, int N, int C);
void lmf_fast_layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                                 const float *inp, const float *weight, const float *mean,
                                 const float *rstd, int N, int C);

void lmf_fast_matmul_forward(float *out, const float *inp, const float *weight, const float *bias,
                             int N, int C, int OC);
void lmf_fast_matmul_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                              const float *inp, const float *weight, int N, int C, int OC);

size_t lmf_fast_attention_saved_floats(int B, int T, int NH);
size_t lmf_fast_attention_scratch_floats(int B, int T, int NH, int C);
void lmf_fast_attention_forward(float *out, float *saved, const float *qkv, const int *doc_start,
                                int B, int T, int C, int NH);
void lmf_fast_attention_backward(float *dqkv, float *scratch, const float *dout, const float *qkv,
                                 const float *saved, const int *doc_start, int B, int T, int C,
                                 int NH);
size_t lmf_fast_attention_kv_scratch_floats(int T);
void lmf_fast_attention_kv_forward(float *out, float *scratch, const float *q, size_t q_stride,
                                   const float *kc, const float *vc, int past, int n, int C,
                                   int NH);

void lmf_fast_gelu_forward(float *out, const float *inp, size_t N);
void lmf_fast_gelu_backward(float *dinp, const float *inp, const float *dout, size_t N);
/* out[0..n) = gelu(inp[0..n)) on the calling thread; every element's value depends only on
 * its input (tails go through the same 8-lane code), so any split of an array gives the same
 * floats as lmf_fast_gelu_forward. out may be inp. */
void lmf_fast_gelu_span(float *out, const float *inp, size_t n);
void lmf_fast_matmul_gelu_forward(float *pre, float *out, const float *inp, const float *weight,
                                  const float *bias, int N, int C, int OC);
void lmf_fast_gelu_bias_backward(float *dinp, float *dbias, const float *inp, const float *dout,
                                 int N, int OC);

void lmf_fast_residual_forward(float *out, const float *a, const float *b, size_t N);

/* rows of the classifier handled per step; the N x V logits never exist whole */
#define LMF_FAST_CLASSIFIER_CHUNK 256
size_t lmf_fast_classifier_scratch_floats(int N, int V);
void lmf_fast_logits_forward(float *logits, const float *x, const float *wte, int N, int C, int V);
void lmf_fast_classifier(float *losses, float *dx, float *dwte, float *scratch, const float *x,
                         const float *wte, const int32_t *targets, float dloss, int N, int C,
                         int V);
/* both classifiers' backward over one chunk of R rows: dxc[R,C] = dlogits[R,V] @ w[V,C]
 * (written), dw[V,C] += dlogits^T @ xc[R,C]; split sgemms */
void lmf_fast_classifier_chunk_backward(float *dxc, float *dw, const float *dlogits,
                                        const float *xc, const float *w, int R, int C, int V);
/* the vocabulary-parallel classifier: the rows' logits kept, sgemm by chunks of LMF_FAST_CLASSIFIER_CHUNK rows */
size_t lmf_fast_classifier_vp_scratch_floats(int N, int Vr);
void lmf_fast_classifier_vp_stats(float *stats, float *logits, const float *x,
                                  const float *w_part, const int32_t *targets, int vbegin, int N,
                                  int C, int Vr);
void lmf_fast_classifier_vp_backward(float *dx, float *dw_part, float *logits, const float *x,
                                     const float *w_part, const int32_t *targets,
                                     const float *lse, float dloss, int vbegin, int N, int C,
                                     int Vr);

void lmf_fast_adamw(float *param, float *grad, float *m, float *v, size_t n, float lr,
                    float beta1, float beta2, float eps, float weight_decay, float grad_scale, int t);
double lmf_fast_sumsq(const float *x, size_t n);


void lmf_fast_rmsnorm_forward(float *out, float *rstd, const float *inp, const float *weight,
                              float eps, int N, int C);
void lmf_fast_rmsnorm_backward(float *dinp, float *dweight, const float *dout, const float *inp,
                               const float *weight, const float *rstd, int N, int C);
void lmf_fast_rope_forward(float *q, float *k, int B, int T, int NH, int NKV, int hs, int pos0,
                           float theta);
void lmf_fast_rope_backward(float *dq, float *dk, int B, int T, int NH, int NKV, int hs, int pos0,
                            float theta);
void lmf_fast_swiglu_forward(float *out, const float *gate, const float *up, size_t N);
void lmf_fast_swiglu_backward(float *dgate, float *dup, const float *dout, const float *gate,
                              const float *up, size_t N);
void lmf_fast_gqa_attention_forward(float *out, float *saved, const float *q, const float *k,
                                    const float *v, const int *doc_start, int B, int T, int NH,
                                    int NKV, int hs);
size_t lmf_fast_gqa_attention_scratch_floats(int B, int T, int NH, int NKV);
void lmf_fast_gqa_attention_backward(float *dq, float *dk, float *dv, float *scratch,
                                     const float *dout, const float *q, const float *k,
                                     const float *v, const float *saved, const int *doc_start,
                                     int B, int T, int NH, int NKV, int hs);
void lmf_fast_gqa_attention_kv_forward(float *out, float *scratch, const float *q, const float *kc,
                                       const float *vc, int past, int n, int NH, int NKV, int hs);

#endif

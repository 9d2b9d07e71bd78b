/* Compute kernels: a table of function pointers per backend (cpu reference, cpu fast). */
/* Conventions: outputs first, then inputs, then shapes. Row-major. Shapes in the comments.
 * Linear weights use the Hugging Face Conv1D layout (in, out): out = inp @ W + b.
 * Gradients: parameter gradients (dweight, dbias, dwte, dwpe) always ACCUMULATE (+=), so
 * micro-batches add up; callers zero them once per optimizer step. Activation gradients are
 * WRITTEN (=), so no zeroing pass is needed before them: matmul_backward's dinp,
 * attention_backward's dqkv, gelu_backward and gelu_bias_backward's dinp, the classifiers'
 * dx (classifier, classifier_vp_backward). The one activation gradient that accumulates is
 * layernorm_backward's dinp: it adds into the residual stream's gradient, which the residual
 * connection shares.
 * (Before the fused kernels every *_backward accumulated and the model zeroed d4a, d4b,
 * dbtc and dqkv before each use: four passes over memory per layer.)
 * B batch, T time, C channels, NH heads, OC output channels, N = rows (B*T),
 * V real vocabulary, Vp padded vocabulary (rows of wte).
 * Kernels never allocate; outputs must not alias inputs unless a comment says so.
 * The fast table is deterministic: same inputs and same thread count give bit-identical
 * outputs. Its scratch sizes may differ from the reference's: always ask the table. */
#ifndef LMFORGE_KERNELS_H
#define LMFORGE_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lmf_kernels {
    const char *name;

    /* out[B,T,C] = wte[inp[b,t]] + wpe[t]; inp[B,T] ids < Vp; wpe[>=T, C], or NULL for no
     * position embedding (the Llama family) */
    void (*encoder_forward)(float *out, const int32_t *inp, const float *wte, const float *wpe,
                            int B, int T, int C);
    /* dwte[Vp,C] +=, dwpe[T,C] += from dout[B,T,C] (dwpe may be NULL) */
    void (*encoder_backward)(float *dwte, float *dwpe, const float *dout, const int32_t *inp,
                             int B, int T, int C);

    /* out[N,C], mean[N], rstd[N] from inp[N,C], weight[C], bias[C]; eps 1e-5 */
    void (*layernorm_forward)(float *out, float *mean, float *rstd, const float *inp,
                              const float *weight, const float *bias, int N, int C);
    /* dinp[N,C] +=, dweight[C] +=, dbias[C] += */
    void (*layernorm_backward)(float *dinp, float *dweight, float *dbias, const float *dout,
                               const float *inp, const float *weight, const float *mean,
                               const float *rstd, int N, int C);

    /* Fused residual add + LayerNorm: res[N,C] = a + b, then out[N,C], mean[N], rstd[N] =
     * LayerNorm(res) as layernorm_forward computes it, each row normalised while it is still
     * in cache (one pass over memory instead of two). res may be a or b (in place); out, mean
     * and rstd must not alias anything. Bit-identical to residual_forward followed by
     * layernorm_forward of the same table (recomputation relies on it). */
    void (*residual_layernorm_forward)(float *res, float *out, float *mean, float *rstd,
                                       const float *a, const float *b, const float *weight,
                                       const float *bias, int N, int C);

    /* out[N,OC] = inp[N,C] @ weight[C,OC] + bias[OC] (bias may be NULL) */
    void (*matmul_forward)(float *out, const float *inp, const float *weight, const float *bias,
                           int N, int C, int OC);
    /* dinp[N,C] = dout @ weight^T (WRITTEN); dweight[C,OC] += inp^T @ dout;
     * dbias[OC] += sum_n dout (dinp, dweight or dbias may be NULL to skip; weight is read
     * only for dinp; a split backward computes dinp first and the others later) */
    void (*matmul_backward)(float *dinp, float *dweight, float *dbias, const float *dout,
                            const float *inp, const float *weight, int N, int C, int OC);

    /* Causal self-attention, scale 1/sqrt(hs). qkv[B,T,3C] holds q, k, v (each C = NH*hs,
     * NH divides C; head h uses channels [h*hs, (h+1)*hs)) per position; out[B,T,C].
     * saved: attention_saved_floats(B,T,NH) floats kept for the backward; what is stored is
     * the table's own business: the reference keeps the probabilities att[B,NH,T,T] (zeros
     * above the diagonal), the fast table only the log-sum-exp of each row, [B,NH,T].
     * The fast table's attention_scratch_floats depends on the thread count: size the
     * scratch after lmf_threads_set, and again if the count grows.
     * doc_start[B,T] (document masking; NULL: plain causal): row t of sequence b attends only
     * to keys doc_start[b*T+t] .. t, where 0 <= doc_start[b*T+t] <= t and doc_start never
     * decreases along a row (lmf_doc_starts); the backward takes the forward's doc_start. */
    size_t (*attention_saved_floats)(int B, int T, int NH);
    size_t (*attention_scratch_floats)(int B, int T, int NH, int C);
    void (*attention_forward)(float *out, float *saved, const float *qkv, const int *doc_start,
                              int B, int T, int C, int NH);
    /* dqkv[B,T,3C] = (WRITTEN); scratch: attention_scratch_floats(...) floats */
    void (*attention_backward)(float *dqkv, float *scratch, const float *dout, const float *qkv,
                               const float *saved, const int *doc_start, int B, int T, int C,
                               int NH);

    /* Causal attention of n new positions against a key/value cache (inference). q: the queries
     * of positions past .. past+n-1, row i at q + i*q_stride, head h in channels [h*hs,
     * (h+1)*hs); kc, vc: [past+n, C], row t the key and the value of position t; out[n, C].
     * Query i attends to positions 0 .. past+i with scale 1/sqrt(hs), as attention_forward's
     * row past+i does. scratch: attention_kv_scratch_floats(past+n) floats (the fast table's
     * depends on the thread count). */
    size_t (*attention_kv_scratch_floats)(int T);
    void (*attention_kv_forward)(float *out, float *scratch, const float *q, size_t q_stride,
                                 const float *kc, const float *vc, int past, int n, int C, int NH);

    /* GELU, tanh approximation: out = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
     * out[N] (may be inp) */
    void (*gelu_forward)(float *out, const float *inp, size_t N);
    /* dinp[N] = gelu'(inp) * dout (WRITTEN; dinp may be dout) */
    void (*gelu_backward)(float *dinp, const float *inp, const float *dout, size_t N);

    /* Fused dense layer + bias + GELU: pre[N,OC] = inp[N,C] @ weight[C,OC] + bias[OC] (bias
     * may be NULL) and out[N,OC] = gelu(pre); pre is kept for the backward. The fast table
     * applies bias and GELU to each tile of the GEMM's output while it is in cache. out is
     * bit-identical to gelu_forward(pre) of the same table (recomputation relies on it); pre
     * equals matmul_forward's result up to float summation order. No aliasing. */
    void (*matmul_gelu_forward)(float *pre, float *out, const float *inp, const float *weight,
                                const float *bias, int N, int C, int OC);
    /* Fused GELU backward + bias gradient of the matmul that produced inp:
     * dinp[N,OC] = gelu'(inp) * dout (WRITTEN, not accumulated; dinp may be dout) and
     * dbias[OC] += column sums of dinp (dbias may be NULL): one pass over inp and dout. */
    void (*gelu_bias_backward)(float *dinp, float *dbias, const float *inp, const float *dout,
                               int N, int OC);

    /* out[N] = a[N] + b[N] (out may be a or b) */
    void (*residual_forward)(float *out, const float *a, const float *b, size_t N);

    /* Tied classifier + softmax cross-entropy over the real vocabulary.
     * logits[n, v] = x[n,:] . wte[v,:] for v < V (padded rows never count).
     * losses[N] = -log softmax(logits[n])[targets[n]]; every target must be in [0, V).
     * If dx != NULL, also the backward of loss = dloss * sum_n losses[n]:
     *   dlogits = (softmax - onehot) * dloss; dx[N,C] = dlogits @ wte[:V] (written, not
     *   accumulated); dwte[:V,C] += dlogits^T @ x (rows V..Vp-1 untouched). dwte may be NULL
     *   when dx is NULL. scratch: classifier_scratch_floats(N, V) floats (reference: all N*V
     *   logits; fast: one chunk of rows at a time). */
    size_t (*classifier_scratch_floats)(int N, int V);
    void (*classifier)(float *losses, float *dx, float *dwte, float *scratch, const float *x,
                       const float *wte, const int32_t *targets, float dloss, int N, int C, int V);

    /* Logits of the tied classifier: logits[N, V] = x[N, C] @ wte[:V]^T (wte rows are tokens). */
    void (*logits_forward)(float *logits, const float *x, const float *wte, int N, int C, int V);

    /* ---- vocabulary parallelism: wte [Vp, C] split by rows over the tensor-parallel ranks ----
     * This rank holds rows [vbegin, vbegin + Vr) of the padded vocabulary as wte_part /
     * w_part [Vr, C] (Vr >= 0; for the classifier real rows only, so vbegin + Vr <= V). The
     * kernels compute this rank's part; the engine combines the parts over the ranks. */

    /* out[B,T,C] = (vbegin <= inp < vbegin+Vr ? wte_part[inp - vbegin] : 0) (+ wpe[t] when
     * wpe != NULL) (WRITTEN); the engine sums out over the tensor-parallel ranks (and passes
     * wpe on exactly one rank). encoder_forward is this kernel with the whole table. */
    void (*encoder_vp_forward)(float *out, const int32_t *inp, const float *wte_part,
                               const float *wpe, int vbegin, int Vr, int B, int T, int C);
    /* dwte_part[Vr,C] += dout rows of the ids inside [vbegin, vbegin+Vr) (the others are
     * skipped); dwpe[T,C] += dout (when dwpe != NULL) */
    void (*encoder_vp_backward)(float *dwte_part, float *dwpe, const float *dout,
                                const int32_t *inp, int vbegin, int Vr, int B, int T, int C);

    /* Vocabulary-parallel cross-entropy, part 1. logit[n,v] = x[n,:] . w_part[v,:] for v < Vr.
     * stats[N*3] (WRITTEN), per row n: stats[3n] = max_v logit (-INFINITY when Vr == 0),
     * stats[3n+1] = sum_v exp(logit - that max) (0 when Vr == 0), stats[3n+2] = the logit of
     * targets[n] when it lies in [vbegin, vbegin+Vr), else 0. targets[N] are global ids.
     * logits: classifier_vp_scratch_floats(N, Vr) floats, [N, Vr] (WRITTEN): the rows'
     * logits, kept for classifier_vp_backward. The engine gathers every rank's stats and calls
     * lmf_classifier_vp_combine (the model does it per chunk of rows, so the kept logits stay
     * small). */
    size_t (*classifier_vp_scratch_floats)(int N, int Vr);
    void (*classifier_vp_stats)(float *stats, float *logits, const float *x, const float *w_part,
                                const int32_t *targets, int vbegin, int N, int C, int Vr);
    /* Part 2, with lse[N] = the global log-sum-exp of each row (lmf_classifier_vp_combine);
     * the backward of loss = dloss * sum_n losses[n], from the logits classifier_vp_stats kept
     * (not recomputed: three products of the rank's vocabulary rows, as the fused loss has):
     *   dlogit[n,v] = (exp(logit[n,v] - lse[n]) - [targets[n] == vbegin+v]) * dloss;
     *   dx[N,C] = dlogit @ w_part (WRITTEN, zeros when Vr == 0; a partial sum the engine
     *   all-reduces over the ranks); dw_part[Vr,C] += dlogit^T @ x.
     * logits: classifier_vp_stats's for the same x, w_part and N (overwritten by dlogit). */
    void (*classifier_vp_backward)(float *dx, float *dw_part, float *logits, const float *x,
                                   const float *w_part, const int32_t *targets, const float *lse,
                                   float dloss, int vbegin, int N, int C, int Vr);

    /* AdamW step on n elements in one pass over memory; t = step number starting at 1;
     * decoupled weight decay. The gradient used is g = grad[i] * grad_scale (averaging over
     * ranks and clipping folded in); grad[i] is then set to 0, ready for the next accumulation.
     * m, v updated in place; param -= lr * (mhat / (sqrt(vhat) + eps) + wd * param) */
    void (*adamw)(float *param, float *grad, float *m, float *v, size_t n, float lr,
                  float beta1, float beta2, float eps, float weight_decay, float grad_scale,
                  int t);

    /* sum of squares, accumulated in double */
    double (*sumsq)(const float *x, size_t n);

    /* ---- the Llama family (RMSNorm, rotary positions, SwiGLU, grouped-query attention) ---- */

    /* RMSNorm: rstd[N] = 1 / sqrt(mean_c inp[n,c]^2 + eps), out[N,C] = inp * rstd * weight[C] */
    void (*rmsnorm_forward)(float *out, float *rstd, const float *inp, const float *weight,
                            float eps, int N, int C);
    /* dinp[N,C] += (ACCUMULATES, as layernorm_backward's: the residual stream's gradient),
     * dweight[C] += */
    void (*rmsnorm_backward)(float *dinp, float *dweight, const float *dout, const float *inp,
                             const float *weight, const float *rstd, int N, int C);

    /* Rotary position embedding, Hugging Face's rotate_half convention, in place on
     * q[B,T,NH*hs] and k[B,T,NKV*hs] (head h in channels [h*hs, (h+1)*hs), hs even). Row (b,t)
     * is position p = pos0 + t; for i < hs/2, f_i = theta^(-2i/hs), a = p f_i:
     *   x[i] <- x[i] cos a - x[i+hs/2] sin a,   x[i+hs/2] <- x[i+hs/2] cos a + x[i] sin a.
     * The angles are computed in double. k may be NULL (queries only). */
    void (*rope_forward)(float *q, float *k, int B, int T, int NH, int NKV, int hs, int pos0,
                         float theta);
    /* The transposed rotation in place on dq, dk: the gradients with respect to the
     * unrotated q and k (WRITTEN over the rotated ones). */
    void (*rope_backward)(float *dq, float *dk, int B, int T, int NH, int NKV, int hs, int pos0,
                          float theta);

    /* SwiGLU: out[N] = silu(gate) * up, silu(x) = x / (1 + e^-x). out may be gate or up. */
    void (*swiglu_forward)(float *out, const float *gate, const float *up, size_t N);
    /* dgate[N] = silu'(gate) up dout, dup[N] = silu(gate) dout (both WRITTEN; dgate may be
     * dout) */
    void (*swiglu_backward)(float *dgate, float *dup, const float *dout, const float *gate,
                            const float *up, size_t N);

    /* Grouped-query causal attention, scale 1/sqrt(hs): q[B,T,NH*hs], k and v [B,T,NKV*hs]
     * (NKV divides NH); query head h reads key/value head h / (NH/NKV). out[B,T,NH*hs].
     * saved: attention_saved_floats(B,T,NH) floats, and doc_start, as for attention_forward. */
    void (*gqa_attention_forward)(float *out, float *saved, const float *q, const float *k,
                                  const float *v, const int *doc_start, int B, int T, int NH,
                                  int NKV, int hs);
    /* dq[B,T,NH*hs], dk and dv [B,T,NKV*hs] (all WRITTEN; each key/value head's gradient sums
     * its group's query heads). scratch: gqa_attention_scratch_floats(...) floats (the fast
     * table's depends on the thread count). */
    size_t (*gqa_attention_scratch_floats)(int B, int T, int NH, int NKV);
    void (*gqa_attention_backward)(float *dq, float *dk, float *dv, float *scratch,
                                   const float *dout, const float *q, const float *k,
                                   const float *v, const float *saved, const int *doc_start,
                                   int B, int T, int NH, int NKV, int hs);
    /* attention_kv_forward with grouped heads: q[n, NH*hs] (contiguous rows), kc and vc
     * [past+n, NKV*hs]; out[n, NH*hs]. scratch: attention_kv_scratch_floats(past+n). Query i
     * gives what gqa_attention_forward's row past+i gives. */
    void (*gqa_attention_kv_forward)(float *out, float *scratch, const float *q, const float *kc,
                                     const float *vc, int past, int n, int NH, int NKV, int hs);
} lmf_kernels;

/* Combines the vocabulary-parallel stats of every rank (no communication: the engine
 * gathers them first). stats_all[ranks][N*3]: rank by rank, each classifier_vp_stats's
 * output. lse[N] (WRITTEN) = log sum_r stats[3n+1] e^(stats[3n]) = the log-sum-exp of row n
 * over the whole vocabulary; losses[N] (WRITTEN) = lse[n] - sum_r stats[3n+2] (exactly one
 * rank holds each target). Summed in double; ranks with Vr == 0 add nothing. At least one
 * rank must hold some rows. Every rank gets the same bits from the same stats_all. */
void lmf_classifier_vp_combine(float *losses, float *lse, const float *stats_all, int ranks,
                               int N);

/* Document masking of packed sequences: doc_start[B,T] (WRITTEN) for the inputs ids[B,T], the
 * argument of the attention kernels. A position t > 0 of a row begins a new document when
 * ids[t-1] is the end-of-text id eot; doc_start[b*T+t] is the latest beginning <= t (0 when
 * none). Returns 1 when some row holds a beginning after position 0, else 0 (then every
 * doc_start is 0 and the attention is plain causal: callers may pass NULL instead). */
int lmf_doc_starts(int *doc_start, const int32_t *ids, int B, int T, int32_t eot);

const lmf_kernels *lmf_kernels_ref(void);
const lmf_kernels *lmf_kernels_fast(void);
/* "ref" or "fast"; NULL when unknown */
const lmf_kernels *lmf_kernels_by_name(const char *name);

#ifdef __cplusplus
}
#endif
#endif

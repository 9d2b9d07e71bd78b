/* The model's kernel calls, each timed into its phase when profiling is on (internal to
 * src/model): one wrapper per entry of the kernel table, named like it. */
#ifndef LMF_MODEL_OPS_H
#define LMF_MODEL_OPS_H

#include <string.h>

#include "lmforge/kernels.h"
#include "lmforge/model.h"
#include "lmforge/perf.h"
#include "lmforge/system.h"

/* One matmul's weight and bias gradients left for later by a split backward (ZB-H1): where
 * they go (offsets into a block's gradients) and what they read (offsets into the list's
 * store, or the activation itself when it outlives the wait). */
typedef struct lmf_wgrad_entry {
    int block;
    size_t dw, db;        /* db: SIZE_MAX when the matmul has no bias gradient here */
    size_t dout, inp;     /* inp: SIZE_MAX when inp_at is read in place */
    const float *inp_at;
    int N, C, OC;
} lmf_wgrad_entry;

/* One micro-batch slot's deferred weight gradients, in the order the backward met them
 * (blocks from the last to the first). */
typedef struct lmf_wgrad_list {
    lmf_wgrad_entry *e;
    int n, cap;
    float *store;         /* copies of the output gradients (and inputs) they read */
    size_t used, cap_floats;
} lmf_wgrad_list;

/* Recording state of a split backward: set in lmf_ops.defer while it runs. */
typedef struct lmf_wgrad {
    lmf_wgrad_list *list; /* the slot's list being filled */
    int block;            /* the block whose layer the backward is in */
    float *gbase;         /* that block's gradients, as the hooks placed them now */
    int copy_inputs;      /* 1: the inputs do not outlive the wait (recomputed, gathered) */
    lmf_status err;       /* the first failure to grow the list */
} lmf_wgrad;

/* The kernel table and the profile of the calls made through it. */
typedef struct lmf_ops {
    const lmf_kernels *k;
    lmf_wgrad *defer;                   /* non-NULL: matmul_backward leaves dweight and dbias
                                         * to lmf_wgrad_replay (wgrad.c) */
    void (*progress)(void *ctx);        /* called before every kernel (lmf_gpt_set_progress) */
    void *progress_ctx;
    int profile;                        /* 1: time every call */
    double phase_s[LMF_PHASE_COUNT];    /* wall seconds per phase */
    double phase_busy[LMF_PHASE_COUNT]; /* busy thread-seconds (lmf_gpt_profile_read_busy) */
} lmf_ops;

/* A call's timing: wall seconds, and busy thread-seconds = work inside the kernels' parallel
 * regions + the calling thread's time outside them (serial code). */
typedef struct lmf_op_clock {
    double t0, busy0, region0;
} lmf_op_clock;

static inline void op_begin(const lmf_ops *o, lmf_op_clock *c) {
    if (o->progress) o->progress(o->progress_ctx);
    if (!o->profile) return;
    lmf_busy_read(&c->busy0, &c->region0);
    c->t0 = lmf_now_s();
}

static inline void op_end(lmf_ops *o, lmf_phase p, const lmf_op_clock *c) {
    if (!o->profile) return;
    double dt = lmf_now_s() - c->t0, busy1, region1;
    lmf_busy_read(&busy1, &region1);
    o->phase_s[p] += dt;
    o->phase_busy[p] += (busy1 - c->busy0) + (dt - (region1 - c->region0));
}

static inline void encoder_forward(lmf_ops *o, float *out, const int32_t *inp, const float *wte,
                                   const float *wpe, int B, int T, int C) {
    lmf_op_clock c;
    op_begin(o, &c);
    o->k->encoder_forward(out, inp, wte, wpe, B, T, C);
    op_end(o, LMF_PHASE_ELEMENTWISE, &c);
}

static inline void encoder_backward(lmf_ops *o, float *dwte, float *dwpe, const float *dout,
                                    const int32_t *inp, int B, int T, int C) {
    lmf_op_clock c;
    op_begin(o, &c);
    o->k->encoder_backward(dwte, dwpe, dout, inp, B, T, C);
    op_end(o, LMF_PHASE_ELEMENTWISE, &c);
}

static inline void encoder_vp_forward(lmf_ops *o, float *out, const int32_t *inp,
                                      const float *wte_part, const float *wpe, int vbegin, int Vr,
                                      int B, int T, int C) {
    lmf_op_clock c;
    op_begin(o, &c);
    o->k->encoder_vp_forward(out, inp, wte_part, wpe, vbegin, Vr, B, T, C);
    op_end(o, LMF_PHASE_ELEMENTWISE, &c);
}

static inline void encoder_vp_backward(lmf_ops *o, float *dwte_part, float *dwpe,
                                       const float *dout, const int32_t *inp, int vbegin, int Vr,
                                       int B, int T, int C) {
    lmf_op_clock c;
    op_begin(o, &c);
    o->k->encoder_vp_backward(dwte_part, dwpe, dout, inp, vbegin, Vr, B, T, C);
    op_end(o, LMF_PHASE_ELEMENTWISE, &c);
}

static inline void classifier_vp_stats(lmf_ops *o, float *stats, float *logits, const float *x,
                                       const float *w_part, const int32_t *targets, int vbegin,
                                       int N, int C, int Vr) {
    lmf_op_clock c;
    op_begin(o, &c);
    o->k->classifier_vp_stats(stats, logits, x, w_part, targets, vbegin, N, C, Vr);
    op_end(o, LMF_PHASE_LOSS, &c);
}

static inline void classifier_vp_backward(lmf_ops *o, float *dx, float *dw_part, float *logits,
                                          const float *x, const float *w_part,
                                          const int32_t *targets, const float *lse, float dloss,
                                          int vbegin, int N, int C, int Vr) {
    lmf_op_clock c;
    op_begin(o, &c);
    o->k->classifier_vp_backward(dx, dw_part, logits, x, w_part, targets, lse, dloss, vbegin, N,
                                 C, Vr);
    op_end(o, LMF_PHASE_LOSS, &c);
}

static inline void layernorm_forward(lmf_ops *o, float *out, float *mean, float *rstd,
                                     const float *inp, const float *w, const float *b, int N,
                                     int C) {
    lmf_op_clock c;
    op_begin(o, &c);
    o->k->layernorm_forward(out, mean, rstd, inp, w, b, N, C);
    op_end(o, LMF_PHASE_ELEMENTWISE, &c);
}

static inline void layernorm_backward(lmf_ops *o, float *dinp, float *dw, float *db,
                                      const float *dout, const float *inp, const float *w,
                                      const float *mean, const float *rstd, int N, int C) {
    lmf_op_clock c;
    op_begin(o, &c);
    o->k->layernorm_backward(dinp, dw, db, dout, inp, w, mean, rstd, N, C);
    op_end(o, LMF_PHASE_ELEMENTWISE, &c);
}

static inline void residual_layernorm_forward(lmf_ops *o, float *res, float *out, float *mean,
                                              float *rstd, const float *a, const float *b,
                                              const float *w, const float *bias, int N, int C) {
    lmf_op_clock c;
    op_begin(o, &c);
    o->k->residual_layernorm_forward(res, out, mean, rstd, a, b, w, bias, N, C);
    op_end(o, LMF_PHASE_ELEMENTWISE, &c);
}

static inline void matmul_forward(lmf_ops *o, float *out, const float *inp, const float *w,
                                  const float *b, int N, int C, int OC) {
    lmf_op_clock c;
    op_begin(o, &c);
    o->k->matmul_forward(out, inp, w, b, N, C, OC);
    op_end(o, LMF_PHASE_MATMUL, &c);
}

static inline void matmul_gelu_forward(lmf_ops *o, float *pre, float *out, const float *inp,
                                       const float *w, const float *b, int N, int C, int OC) {
    lmf_op_clock c;
    op_begin(o, &c);
    o->k->matmul_gelu_forward(pre, out, inp, w, b, N, C, OC);
    op_end(o, LMF_PHASE_MATMUL, &c);
}

/* Record a matmul's weight and bias gradients into w->list (wgrad.c). */
void lmf_wgrad_record(lmf_wgrad *w, float *dw, float *db, const float *dout, const float *inp,
                      int N, int C, int OC);
/* Compute the entries of `block` from l->e[from] on into its gradients g; returns the index
 * after them. */
int lmf_wgrad_replay(lmf_ops *o, const lmf_wgrad_list *l, int from, int block, float *g);
void lmf_wgrad_list_free(lmf_wgrad_list *l);

static inline void matmul_backward(lmf_ops *o, float *dinp, float *dw, float *db,
                                   const float *dout, const float *inp, const float *w, int N,
                                   int C, int OC) {
    lmf_op_clock c;
    op_begin(o, &c);
    if (o->defer) {
        o->k->matmul_backward(dinp, NULL, NULL, dout, inp, w, N, C, OC);
        lmf_wgrad_record(o->defer, dw, db, dout, inp, N, C, OC);
    } else {
        o->k->matmul_backward(dinp, dw, db, dout, inp, w, N, C, OC);
    }
    op_end(o, LMF_PHASE_MATMUL, &c);
}

static inline void attention_forward(lmf_ops *o, float *out, float *saved, const float *qkv,
                                     const int *doc_start, int B, int T, int C, int NH) {
    lmf_op_clock c;
    op_begin(o, &c);
    o->k->attention_forward(out, saved, qkv, doc_start, B, T, C, NH);
    op_end(o, LMF_PHASE_ATTENTION, &c);
}

static inline void attention_kv_forward(lmf_ops *o, float *out, float *scratch, const float *q,
                                        size_t q_stride, const float *kc, const float *vc,
                                        int past, int n, int C, int NH) {
    lmf_op_clock c;
    op_begin(o, &c);
    o->k->attention_kv_forward(out, scratch, q, q_stride, kc, vc, past, n, C, NH);
    op_end(o, LMF_PHASE_ATTENTION, &c);
}

static inline void attention_backward(lmf_ops *o, float *dqkv, float *scratch, const float *dout,
                                      const float *qkv, const float *saved, const int *doc_start,
                                      int B, int T, int C, int NH) {
    lmf_op_clock c;
    op_begin(o, &c);
    o->k->attention_backward(dqkv, scratch, dout, qkv, saved, doc_start, B, T, C, NH);
    op_end(o, LMF_PHASE_ATTENTION, &c);
}

static inline void gelu_forward(lmf_ops *o, float *out, const float *inp, size_t N) {
    lmf_op_clock c;
    op_begin(o, &c);
    o->k->gelu_forward(out, inp, N);
    op_end(o, LMF_PHASE_ELEMENTWISE, &c);
}

static inline void gelu_bias_backward(lmf_ops *o, float *dinp, float *dbias, const float *inp,
                                      const float *dout, int N, int OC) {
    lmf_op_clock c;
    op_begin(o, &c);
    o->k->gelu_bias_backward(dinp, dbias, inp, dout, N, OC);
    op_end(o, LMF_PHASE_ELEMENTWISE, &c);
}

static inline void classifier(lmf_ops *o, float *losses, float *dx, float *dwte, float *scratch,
                              const float *x, const float *wte, const int32_t *targets,
                              float dloss, int N, int C, int V) {
    lmf_op_clock c;
    op_begin(o, &c);
    o->k->classifier(losses, dx, dwte, scratch, x, wte, targets, dloss, N, C, V);
    op_end(o, LMF_PHASE_LOSS, &c);
}

static inline void logits_forward(lmf_ops *o, float *logits, const float *x, const float *wte,
                                  int N, int C, int V) {
    lmf_op_clock c;
    op_begin(o, &c);
    o->k->logits_forward(logits, x, wte, N, C, V);
    op_end(o, LMF_PHASE_LOSS, &c);
}

static inline void residual_forward(lmf_ops *o, float *out, const float *a, const float *b,
                                    size_t N) {
    lmf_op_clock c;
    op_begin(o, &c);
    o->k->residual_forward(out, a, b, N);
    op_end(o, LMF_PHASE_ELEMENTWISE, &c);
}

/* ---- the Llama family ---- */

static inline void rmsnorm_forward(lmf_ops *o, float *out, float *rstd, const float *inp,
                                   const float *w, float eps, int N, int C) {
    lmf_op_clock c;
    op_begin(o, &c);
    o->k->rmsnorm_forward(out, rstd, inp, w, eps, N, C);
    op_end(o, LMF_PHASE_ELEMENTWISE, &c);
}

static inline void rmsnorm_backward(lmf_ops *o, float *dinp, float *dw, const float *dout,
                                    const float *inp, const float *w, const float *rstd, int N,
                                    int C) {
    lmf_op_clock c;
    op_begin(o, &c);
    o->k->rmsnorm_backward(dinp, dw, dout, inp, w, rstd, N, C);
    op_end(o, LMF_PHASE_ELEMENTWISE, &c);
}

static inline void rope_forward(lmf_ops *o, float *q, float *k, int B, int T, int NH, int NKV,
                                int hs, int pos0, float theta) {
    lmf_op_clock c;
    op_begin(o, &c);
    o->k->rope_forward(q, k, B, T, NH, NKV, hs, pos0, theta);
    op_end(o, LMF_PHASE_ELEMENTWISE, &c);
}

static inline void rope_backward(lmf_ops *o, float *dq, float *dk, int B, int T, int NH, int NKV,
                                 int hs, int pos0, float theta) {
    lmf_op_clock c;
    op_begin(o, &c);
    o->k->rope_backward(dq, dk, B, T, NH, NKV, hs, pos0, theta);
    op_end(o, LMF_PHASE_ELEMENTWISE, &c);
}

static inline void swiglu_forward(lmf_ops *o, float *out, const float *gate, const float *up,
                                  size_t N) {
    lmf_op_clock c;
    op_begin(o, &c);
    o->k->swiglu_forward(out, gate, up, N);
    op_end(o, LMF_PHASE_ELEMENTWISE, &c);
}

static inline void swiglu_backward(lmf_ops *o, float *dgate, float *dup, const float *dout,
                                   const float *gate, const float *up, size_t N) {
    lmf_op_clock c;
    op_begin(o, &c);
    o->k->swiglu_backward(dgate, dup, dout, gate, up, N);
    op_end(o, LMF_PHASE_ELEMENTWISE, &c);
}

static inline void gqa_attention_forward(lmf_ops *o, float *out, float *saved, const float *q,
                                         const float *k, const float *v, const int *doc_start,
                                         int B, int T, int NH, int NKV, int hs) {
    lmf_op_clock c;
    op_begin(o, &c);
    o->k->gqa_attention_forward(out, saved, q, k, v, doc_start, B, T, NH, NKV, hs);
    op_end(o, LMF_PHASE_ATTENTION, &c);
}

static inline void gqa_attention_backward(lmf_ops *o, float *dq, float *dk, float *dv,
                                          float *scratch, const float *dout, const float *q,
                                          const float *k, const float *v, const float *saved,
                                          const int *doc_start, int B, int T, int NH, int NKV,
                                          int hs) {
    lmf_op_clock c;
    op_begin(o, &c);
    o->k->gqa_attention_backward(dq, dk, dv, scratch, dout, q, k, v, saved, doc_start, B, T, NH,
                                 NKV, hs);
    op_end(o, LMF_PHASE_ATTENTION, &c);
}

static inline void gqa_attention_kv_forward(lmf_ops *o, float *out, float *scratch,
                                            const float *q, const float *kc, const float *vc,
                                            int past, int n, int NH, int NKV, int hs) {
    lmf_op_clock c;
    op_begin(o, &c);
    o->k->gqa_attention_kv_forward(out, scratch, q, kc, vc, past, n, NH, NKV, hs);
    op_end(o, LMF_PHASE_ATTENTION, &c);
}

/* buffers cleared for an accumulation */
static inline void zero_floats(lmf_ops *o, float *x, size_t n) {
    lmf_op_clock c;
    op_begin(o, &c);
    memset(x, 0, n * sizeof(float));
    op_end(o, LMF_PHASE_ELEMENTWISE, &c);
}

#endif

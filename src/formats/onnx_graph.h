/* ONNX graph builder: values with types and shapes, nodes of standard operators, weights;
 * the node-writing helpers every model family's graph is made of (onnx_graph.c, onnx_ops.c). */
#ifndef LMF_FORMATS_ONNX_GRAPH_H
#define LMF_FORMATS_ONNX_GRAPH_H

#include <stddef.h>
#include <stdint.h>

#include "lmforge/onnx.h"
#include "lmforge/status.h"

/* The opset the graphs are written for, and the IR version that goes with it (onnx/onnx
 * docs/Versioning.md: opset 17 was released with IR version 8, ONNX 1.12). */
#define LMF_ONNX_OPSET 17
#define LMF_ONNX_IR_VERSION 8
#define LMF_ONNX_MAX_RANK 6
#define LMF_ONNX_MAX_IO 4

/* TensorProto.DataType values (onnx.proto) of the element types the graphs use. */
typedef enum lmf_onnx_elem {
    LMF_ONNX_T_FLOAT = 1,
    LMF_ONNX_T_INT64 = 7,
    LMF_ONNX_T_BOOL = 9,
    LMF_ONNX_T_FLOAT16 = 10
} lmf_onnx_elem;

/* A dimension: a size >= 0, or LMF_ONNX_DYN (known only at run time). */
#define LMF_ONNX_DYN (-1)

typedef struct lmf_onnx_value {
    char *name;
    lmf_onnx_elem type;
    int rank;                             /* -1: unknown */
    int64_t dim[LMF_ONNX_MAX_RANK];
    const char *dim_param[LMF_ONNX_MAX_RANK]; /* graph inputs and outputs: names of dynamic axes */
    int defined;                          /* made by an input, a weight or a node */
} lmf_onnx_value;

typedef enum lmf_onnx_attr_kind {
    LMF_ONNX_ATTR_FLOAT = 1,  /* AttributeProto.AttributeType values */
    LMF_ONNX_ATTR_INT = 2,
    LMF_ONNX_ATTR_INTS = 7
} lmf_onnx_attr_kind;

typedef struct lmf_onnx_attr {
    const char *name;          /* a string literal */
    lmf_onnx_attr_kind kind;
    float f;
    int n;                     /* values in ints */
    int64_t ints[LMF_ONNX_MAX_RANK];
} lmf_onnx_attr;

typedef struct lmf_onnx_node {
    const char *op;            /* a string literal: "MatMul" */
    char *name;
    int n_in, n_out, n_attr;
    int in[LMF_ONNX_MAX_IO], out[LMF_ONNX_MAX_IO];
    lmf_onnx_attr attr[2];
} lmf_onnx_node;

/* A weight or constant: its bytes come from `f32` (converted to the tensor's type when it is
 * written) or from `bytes` (owned, already in the tensor's type). */
typedef struct lmf_onnx_init {
    int value;
    const float *f32;
    void *bytes;
    uint64_t numel;
    uint64_t offset;           /* in model.onnx.data when written as external data */
} lmf_onnx_init;

typedef struct lmf_onnx_graph {
    lmf_onnx_value *values; int n_values, cap_values;
    lmf_onnx_node *nodes; int n_nodes, cap_nodes;
    lmf_onnx_init *inits; int n_inits, cap_inits;
    int *inputs; int n_inputs, cap_inputs;
    int *outputs; int n_outputs, cap_outputs;
    lmf_onnx_elem weight_type;  /* FLOAT or FLOAT16: how weights are stored */
    char scope[64];             /* prefix of the names made now ("/h.3") */
    lmf_status err;             /* first failure: allocation, an undefined input, a bad shape */
} lmf_onnx_graph;

void lmf_onnx_graph_init(lmf_onnx_graph *g, lmf_onnx_elem weight_type);
void lmf_onnx_graph_free(lmf_onnx_graph *g);
/* set the prefix of the value and node names made from now on */
void lmf_onnx_scope(lmf_onnx_graph *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- values ---- */
/* A graph input; dims[rank], where dims[i] == LMF_ONNX_DYN is named params[i]. */
int lmf_onnx_input(lmf_onnx_graph *g, const char *name, lmf_onnx_elem type, int rank,
                   const int64_t *dims, const char *const *params);
/* Mark value v as a graph output named `name` (an Identity node when its name differs), with
 * the names of its dynamic axes. */
void lmf_onnx_output(lmf_onnx_graph *g, int v, const char *name, const char *const *params);
/* A weight of numel floats at data (kept by pointer until the graph is written), stored in
 * the graph's weight type; returns a FLOAT value (through a Cast when stored as FLOAT16). */
int lmf_onnx_weight(lmf_onnx_graph *g, const char *name, const float *data, int rank,
                    const int64_t *dims);
/* constants: int64 vector, float scalar, float vector (always fp32, whatever the weights' type) */
int lmf_onnx_const_i64(lmf_onnx_graph *g, const char *name, int n, const int64_t *v);
int lmf_onnx_const_f32(lmf_onnx_graph *g, const char *name, float v);
int lmf_onnx_const_f32v(lmf_onnx_graph *g, const char *name, int n, const float *v);
int lmf_onnx_const_scalar_i64(lmf_onnx_graph *g, const char *name, int64_t v);

/* A node: op over inputs in[n_in] making one output of type `type`, rank and dims (dims NULL:
 * unknown); returns the output value. Shapes the helpers below compute are checked there. */
int lmf_onnx_node1(lmf_onnx_graph *g, const char *op, const char *name, int n_in, const int *in,
                   lmf_onnx_elem type, int rank, const int64_t *dims, int n_attr,
                   const lmf_onnx_attr *attr);

/* ---- node-writing helpers (onnx_ops.c); every one checks what it can of its shapes ---- */
int lmf_onnx_matmul(lmf_onnx_graph *g, const char *name, int a, int b);
int lmf_onnx_add(lmf_onnx_graph *g, const char *name, int a, int b);
int lmf_onnx_mul(lmf_onnx_graph *g, const char *name, int a, int b);
int lmf_onnx_sub(lmf_onnx_graph *g, const char *name, int a, int b);
int lmf_onnx_unary(lmf_onnx_graph *g, const char *op, const char *name, int a);
/* x @ w (+ b when b >= 0): a linear layer with weight (in, out) */
int lmf_onnx_linear(lmf_onnx_graph *g, const char *name, int x, int w, int b);
int lmf_onnx_layernorm(lmf_onnx_graph *g, const char *name, int x, int w, int b, float eps);
/* GELU, tanh approximation, from Tanh, Mul and Add (Gelu itself is opset 20) */
int lmf_onnx_gelu_tanh(lmf_onnx_graph *g, const char *name, int x);
int lmf_onnx_transpose(lmf_onnx_graph *g, const char *name, int x, int rank, const int64_t *perm);
/* Reshape to shape[n] (0 keeps the input's dimension, -1 is inferred) */
int lmf_onnx_reshape(lmf_onnx_graph *g, const char *name, int x, int n, const int64_t *shape);
int lmf_onnx_gather(lmf_onnx_graph *g, const char *name, int table, int idx, int axis);
int lmf_onnx_concat(lmf_onnx_graph *g, const char *name, int a, int b, int axis);
int lmf_onnx_softmax(lmf_onnx_graph *g, const char *name, int x);
int lmf_onnx_cast(lmf_onnx_graph *g, const char *name, int x, lmf_onnx_elem to);
/* x[..., lo:hi] along the last axis (a Slice) */
int lmf_onnx_slice_last(lmf_onnx_graph *g, const char *name, int x, int64_t lo, int64_t hi);
int lmf_onnx_unsqueeze(lmf_onnx_graph *g, const char *name, int x, int n, const int64_t *axes);
int lmf_onnx_where(lmf_onnx_graph *g, const char *name, int cond, int a, int b);
/* dimension `axis` of x's run-time shape, as an int64 scalar */
int lmf_onnx_dim(lmf_onnx_graph *g, const char *name, int x, int axis);

/* ---- transformer pieces shared by the families ---- */
/* The model's tensor `name` (printf format) as a weight of the graph, named as the layout names
 * it; its shape is the one the model holds it in: (in, out) for a product the layout marks
 * transposed (Llama's nn.Linear weights), so that x @ w is the layer. */
int lmf_onnx_model_weight(lmf_onnx_graph *g, lmf_gpt *m, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The decoder's inputs, as Hugging Face's exporters name them: input_ids int64 [B, T]; with
 * kv_cache also attention_mask, position_ids and past_key_values.N.key/value [B, kv_heads,
 * past, head_dim] in layer order (the first's value returned in *first_past, layer l's key at
 * *first_past + 2l, its value after it). *mask and *pos are -1 without the cache. */
int lmf_onnx_decoder_inputs(lmf_onnx_graph *g, int n_layer, int kv_heads, int head_dim, int kv_cache,
                            int *mask, int *pos, int *first_past);
/* Positions 0 .. T-1 (int64 [T]) of ids [B, T], for a graph without the cache. */
int lmf_onnx_positions(lmf_onnx_graph *g, int ids);
/* The decoder's outputs: logits [B, T, vocab] (checked against it), then with kv_cache
 * present.N.key/value from present[2N], present[2N + 1]. */
void lmf_onnx_decoder_outputs(lmf_onnx_graph *g, int logits, int vocab, int n_layer, int kv_cache,
                              const int *present);
/* [B, T, C] -> [B, heads, T, C/heads] */
int lmf_onnx_split_heads(lmf_onnx_graph *g, const char *name, int x, int heads, int head_dim);
/* Positions allowed to attend, bool [T, past + T] (or [B, 1, T, past + T] with a mask): key j
 * <= query i + past, and, when attention_mask >= 0 (int64 [B, past + T]), where that mask is 1.
 * T is dimension 1 of ids ([B, T]), past + T dimension 2 of keys ([B, H, past + T, D]). */
int lmf_onnx_causal_mask(lmf_onnx_graph *g, int ids, int keys, int attention_mask);
/* softmax(q k^T * scale, masked) v over q [B, H, T, D], k, v [B, H, Tk, D]; returns
 * [B, T, H*D] */
int lmf_onnx_attention(lmf_onnx_graph *g, int q, int k, int v, int mask, float scale, int heads,
                       int head_dim);

/* Check the finished graph as ONNX's checker would: every node input defined before use,
 * names unique, outputs defined, weights' sizes matching their shapes. */
lmf_status lmf_onnx_graph_check(const lmf_onnx_graph *g);

/* ---- the families (onnx_gpt2.c, ...) ---- */
lmf_status lmf_onnx_build_gpt2(lmf_onnx_graph *g, lmf_gpt *m, int kv_cache);
lmf_status lmf_onnx_build_llama(lmf_onnx_graph *g, lmf_gpt *m, int kv_cache);

/* ---- serialization (onnx_write.c) ---- */
/* Write g as model.onnx (and model.onnx.data when external) into dir. */
lmf_status lmf_onnx_graph_write(lmf_onnx_graph *g, const char *dir, int external,
                                lmf_onnx_summary *sum);

#endif

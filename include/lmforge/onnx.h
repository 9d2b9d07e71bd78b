/* ONNX export: a model as a standard ONNX graph (opset 17) that ONNX Runtime runs. */
#ifndef LMFORGE_ONNX_H
#define LMFORGE_ONNX_H

#include <stdint.h>
#include "lmforge/model.h"
#include "lmforge/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* How the weights are stored in the graph. fp16 weights are cast to fp32 inside the graph,
 * so the arithmetic is fp32 in both. */
typedef enum lmf_onnx_dtype { LMF_ONNX_FP32 = 0, LMF_ONNX_FP16 } lmf_onnx_dtype;

/* Weights above this many bytes go to model.onnx.data beside the graph (protobuf messages are
 * limited to 2 GiB; the rest of the graph needs far less than the margin left here). */
#define LMF_ONNX_EXTERNAL_DEFAULT ((uint64_t)2000000000)

typedef struct lmf_onnx_options {
    lmf_onnx_dtype dtype;
    int kv_cache;              /* 1: the decoder-with-past graph */
    uint64_t external_above;   /* weight bytes above which they are written as external data */
    int eot;                   /* end-of-text id for config.json (-1: the last id) */
} lmf_onnx_options;

/* What an export wrote. */
typedef struct lmf_onnx_summary {
    int nodes, initializers, inputs, outputs;
    uint64_t weight_bytes;     /* bytes of weights, inline or external */
    int external;              /* 1: weights in model.onnx.data */
    uint64_t model_bytes;      /* size of model.onnx */
} lmf_onnx_summary;

/* "fp32" / "fp16" into *out; LMF_ERR_ARG with the accepted names otherwise. */
lmf_status lmf_onnx_dtype_parse(const char *s, lmf_onnx_dtype *out);

/* Write dir/model.onnx (and dir/model.onnx.data when external) and dir/config.json (the
 * model's shape, as Hugging Face's exporters leave it beside the graph) for model m (GPT-2 or
 * Llama family): input
 * `input_ids` int64 [batch_size, sequence_length], output `logits` float
 * [batch_size, sequence_length, vocab_size]; with kv_cache also `attention_mask` int64
 * [batch_size, past_sequence_length + sequence_length], `position_ids` int64
 * [batch_size, sequence_length], `past_key_values.N.key` / `.value` float
 * [batch_size, kv_heads, past_sequence_length, head_dim] and outputs `present.N.key` / `.value`
 * [batch_size, kv_heads, past_sequence_length + sequence_length, head_dim] (kv_heads: n_head
 * for GPT-2, n_kv_head for Llama; Llama's keys rotated), the names of Hugging
 * Face's exporters. The graph is checked before it is written (every input defined, shapes
 * consistent); a model that cannot be exported fails with the reason (LMF_ERR_ARG: weights
 * that do not fit fp16, non-finite weights). dir is created when missing; files are written to
 * NAME.tmp and renamed. sum may be NULL. */
lmf_status lmf_onnx_export(lmf_gpt *m, const char *dir, const lmf_onnx_options *o,
                           lmf_onnx_summary *sum);

#ifdef __cplusplus
}
#endif
#endif

/* ONNX export: the checked graph serialized as a ModelProto (onnx/onnx onnx/onnx.proto field
 * numbers), weights inline or in model.onnx.data. */
#include "lmforge/onnx.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "formats/onnx_graph.h"
#include "formats/pb.h"
#include "lmforge/formats.h"
#include "lmforge/fsutil.h"
#include "lmforge/safetensors.h"

#define ONNX_DATA_FILE "model.onnx.data"
#define ONNX_DATA_ALIGN 4096 /* onnx.proto: external offsets SHOULD be multiples of 4096 */
#define PROTOBUF_LIMIT ((uint64_t)INT32_MAX)

/* onnx.proto field numbers */
enum {
    MODEL_IR_VERSION = 1, MODEL_PRODUCER_NAME = 2, MODEL_PRODUCER_VERSION = 3, MODEL_GRAPH = 7,
    MODEL_OPSET_IMPORT = 8,
    OPSET_DOMAIN = 1, OPSET_VERSION = 2,
    GRAPH_NODE = 1, GRAPH_NAME = 2, GRAPH_INITIALIZER = 5, GRAPH_INPUT = 11, GRAPH_OUTPUT = 12,
    NODE_INPUT = 1, NODE_OUTPUT = 2, NODE_NAME = 3, NODE_OP_TYPE = 4, NODE_ATTRIBUTE = 5,
    ATTR_NAME = 1, ATTR_F = 2, ATTR_I = 3, ATTR_INTS = 8, ATTR_TYPE = 20,
    TENSOR_DIMS = 1, TENSOR_DATA_TYPE = 2, TENSOR_NAME = 8, TENSOR_RAW_DATA = 9,
    TENSOR_EXTERNAL_DATA = 13, TENSOR_DATA_LOCATION = 14,
    ENTRY_KEY = 1, ENTRY_VALUE = 2,
    VALUE_INFO_NAME = 1, VALUE_INFO_TYPE = 2,
    TYPE_TENSOR_TYPE = 1, TENSOR_TYPE_ELEM_TYPE = 1, TENSOR_TYPE_SHAPE = 2,
    SHAPE_DIM = 1, DIM_VALUE = 1, DIM_PARAM = 2,
};
#define DATA_LOCATION_EXTERNAL 1

typedef struct wctx {
    const lmf_onnx_graph *g;
    int item;       /* node, initializer or value index */
    int external;   /* weights as external data */
    const char *key, *val;
} wctx;

static size_t elem_size(lmf_onnx_elem t) {
    switch (t) {
    case LMF_ONNX_T_INT64: return 8;
    case LMF_ONNX_T_BOOL: return 1;
    case LMF_ONNX_T_FLOAT16: return 2;
    default: return 4;
    }
}

/* an initializer's bytes as stored */
static uint64_t init_bytes(const lmf_onnx_graph *g, const lmf_onnx_init *in) {
    return in->numel * elem_size(g->values[in->value].type);
}

/* write an initializer's data (converted to its type) through e; COUNT encoders only count */
static void init_data(lmf_pb *e, const lmf_onnx_graph *g, const lmf_onnx_init *in) {
    lmf_onnx_elem t = g->values[in->value].type;
    if (e->mode == LMF_PB_COUNT || in->bytes || t == LMF_ONNX_T_FLOAT) {
        lmf_pb_raw(e, in->bytes ? (const void *)in->bytes : (const void *)in->f32, (size_t)init_bytes(g, in));
        return;
    }
    uint16_t buf[4096];
    for (uint64_t i = 0; i < in->numel; i += 4096) {
        size_t n = in->numel - i < 4096 ? (size_t)(in->numel - i) : 4096;
        for (size_t j = 0; j < n; j++) buf[j] = lmf_f32_to_f16(in->f32[i + j]);
        lmf_pb_raw(e, buf, n * 2);
    }
}

static void entry_body(lmf_pb *e, const void *arg) {
    const wctx *c = arg;
    lmf_pb_str(e, ENTRY_KEY, c->key);
    lmf_pb_str(e, ENTRY_VALUE, c->val);
}

static void tensor_body(lmf_pb *e, const void *arg) {
    const wctx *c = arg;
    const lmf_onnx_init *in = &c->g->inits[c->item];
    const lmf_onnx_value *v = &c->g->values[in->value];
    for (int i = 0; i < v->rank; i++) lmf_pb_int(e, TENSOR_DIMS, v->dim[i]);
    lmf_pb_int(e, TENSOR_DATA_TYPE, v->type);
    lmf_pb_str(e, TENSOR_NAME, v->name);
    if (c->external && in->f32) {
        char off[32], len[32];
        snprintf(off, sizeof off, "%llu", (unsigned long long)in->offset);
        snprintf(len, sizeof len, "%llu", (unsigned long long)init_bytes(c->g, in));
        wctx kv[3] = {{.key = "location", .val = ONNX_DATA_FILE},
                      {.key = "offset", .val = off},
                      {.key = "length", .val = len}};
        for (int i = 0; i < 3; i++) lmf_pb_msg(e, TENSOR_EXTERNAL_DATA, entry_body, &kv[i]);
        lmf_pb_int(e, TENSOR_DATA_LOCATION, DATA_LOCATION_EXTERNAL);
    } else {
        lmf_pb_len(e, TENSOR_RAW_DATA, init_bytes(c->g, in));
        init_data(e, c->g, in);
    }
}

static void attr_body(lmf_pb *e, const void *arg) {
    const lmf_onnx_attr *a = arg;
    lmf_pb_str(e, ATTR_NAME, a->name);
    lmf_pb_int(e, ATTR_TYPE, a->kind);
    if (a->kind == LMF_ONNX_ATTR_FLOAT) lmf_pb_float(e, ATTR_F, a->f);
    else if (a->kind == LMF_ONNX_ATTR_INT) lmf_pb_int(e, ATTR_I, a->ints[0]);
    else
        for (int i = 0; i < a->n; i++) lmf_pb_int(e, ATTR_INTS, a->ints[i]);
}

static void node_body(lmf_pb *e, const void *arg) {
    const wctx *c = arg;
    const lmf_onnx_node *n = &c->g->nodes[c->item];
    for (int i = 0; i < n->n_in; i++) lmf_pb_str(e, NODE_INPUT, c->g->values[n->in[i]].name);
    for (int i = 0; i < n->n_out; i++) lmf_pb_str(e, NODE_OUTPUT, c->g->values[n->out[i]].name);
    lmf_pb_str(e, NODE_NAME, n->name);
    lmf_pb_str(e, NODE_OP_TYPE, n->op);
    for (int i = 0; i < n->n_attr; i++) lmf_pb_msg(e, NODE_ATTRIBUTE, attr_body, &n->attr[i]);
}

static void dim_body(lmf_pb *e, const void *arg) {
    const wctx *c = arg; /* item: value, key: dim_param or NULL, val: unused */
    const lmf_onnx_value *v = &c->g->values[c->item];
    int d = (int)(intptr_t)c->val;
    if (v->dim[d] >= 0) lmf_pb_int(e, DIM_VALUE, v->dim[d]);
    else if (v->dim_param[d]) lmf_pb_str(e, DIM_PARAM, v->dim_param[d]);
}

static void shape_body(lmf_pb *e, const void *arg) {
    const wctx *c = arg;
    const lmf_onnx_value *v = &c->g->values[c->item];
    for (int d = 0; d < v->rank; d++) {
        wctx dc = *c;
        dc.val = (const char *)(intptr_t)d;
        lmf_pb_msg(e, SHAPE_DIM, dim_body, &dc);
    }
}

static void tensor_type_body(lmf_pb *e, const void *arg) {
    const wctx *c = arg;
    lmf_pb_int(e, TENSOR_TYPE_ELEM_TYPE, c->g->values[c->item].type);
    lmf_pb_msg(e, TENSOR_TYPE_SHAPE, shape_body, c);
}

static void type_body(lmf_pb *e, const void *arg) { lmf_pb_msg(e, TYPE_TENSOR_TYPE, tensor_type_body, arg); }

static void value_info_body(lmf_pb *e, const void *arg) {
    const wctx *c = arg;
    lmf_pb_str(e, VALUE_INFO_NAME, c->g->values[c->item].name);
    lmf_pb_msg(e, VALUE_INFO_TYPE, type_body, c);
}

static void graph_body(lmf_pb *e, const void *arg) {
    const wctx *c = arg;
    const lmf_onnx_graph *g = c->g;
    wctx w = *c;
    for (int i = 0; i < g->n_nodes; i++) { w.item = i; lmf_pb_msg(e, GRAPH_NODE, node_body, &w); }
    lmf_pb_str(e, GRAPH_NAME, "lmforge");
    for (int i = 0; i < g->n_inits; i++) { w.item = i; lmf_pb_msg(e, GRAPH_INITIALIZER, tensor_body, &w); }
    for (int i = 0; i < g->n_inputs; i++) { w.item = g->inputs[i]; lmf_pb_msg(e, GRAPH_INPUT, value_info_body, &w); }
    for (int i = 0; i < g->n_outputs; i++) { w.item = g->outputs[i]; lmf_pb_msg(e, GRAPH_OUTPUT, value_info_body, &w); }
}

static void opset_body(lmf_pb *e, const void *arg) {
    (void)arg;
    lmf_pb_str(e, OPSET_DOMAIN, "");
    lmf_pb_int(e, OPSET_VERSION, LMF_ONNX_OPSET);
}

static void model_body(lmf_pb *e, const void *arg) {
    lmf_pb_int(e, MODEL_IR_VERSION, LMF_ONNX_IR_VERSION);
    lmf_pb_str(e, MODEL_PRODUCER_NAME, "lmforge");
    lmf_pb_str(e, MODEL_PRODUCER_VERSION, "0.1.0");
    lmf_pb_msg(e, MODEL_OPSET_IMPORT, opset_body, NULL);
    lmf_pb_msg(e, MODEL_GRAPH, graph_body, arg);
}

/* write `bytes` of body(arg), without a field key, to path through its .tmp */
static lmf_status write_file(const char *path, void (*fn)(lmf_pb *, const void *), const void *arg) {
    char tmp[4096];
    LMF_TRY(lmf_tmp_path(tmp, sizeof tmp, path));
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) return lmf_fail(LMF_ERR_IO, "%s: cannot create: %s", tmp, lmf_io_reason(errno));
    lmf_pb e;
    lmf_pb_init(&e, LMF_PB_FILE, fd, tmp);
    fn(&e, arg);
    lmf_status s = lmf_pb_finish(&e);
    if (s != LMF_OK) {
        close(fd);
        unlink(tmp);
        return s;
    }
    return lmf_commit_tmp(fd, tmp, path);
}

/* model.onnx.data: every weight at an offset aligned to ONNX_DATA_ALIGN */
static void data_body(lmf_pb *e, const void *arg) {
    const lmf_onnx_graph *g = arg;
    static const uint8_t zeros[ONNX_DATA_ALIGN];
    for (int i = 0; i < g->n_inits; i++) {
        const lmf_onnx_init *in = &g->inits[i];
        if (!in->f32) continue;
        lmf_pb_raw(e, zeros, (size_t)(in->offset - e->n));
        init_data(e, g, in);
    }
}

lmf_status lmf_onnx_graph_write(lmf_onnx_graph *g, const char *dir, int external,
                                lmf_onnx_summary *sum) {
    char path[4096], data[4096];
    LMF_TRY(lmf_path_join(path, sizeof path, dir, "model.onnx"));
    LMF_TRY(lmf_path_join(data, sizeof data, dir, ONNX_DATA_FILE));
    uint64_t off = 0, weights = 0;
    for (int i = 0; i < g->n_inits; i++) {
        lmf_onnx_init *in = &g->inits[i];
        if (!in->f32) continue;
        off = (off + ONNX_DATA_ALIGN - 1) / ONNX_DATA_ALIGN * ONNX_DATA_ALIGN;
        in->offset = off;
        off += init_bytes(g, in);
        weights += init_bytes(g, in);
    }
    wctx c = {.g = g, .external = external};
    lmf_pb count;
    lmf_pb_init(&count, LMF_PB_COUNT, -1, path);
    model_body(&count, &c);
    LMF_TRY(lmf_pb_finish(&count));
    if (count.n > PROTOBUF_LIMIT)
        return lmf_fail(LMF_ERR_ARG, "%s would be %llu bytes, past protobuf's 2 GiB limit: write "
                        "the weights as external data (a lower --external-above)", path,
                        (unsigned long long)count.n);
    if (external) LMF_TRY(write_file(data, data_body, g));
    else if (lmf_file_exists(data) && unlink(data) != 0) /* a stale file from an earlier export */
        return lmf_fail(LMF_ERR_IO, "%s: cannot remove: %s", data, strerror(errno));
    LMF_TRY(write_file(path, model_body, &c));
    if (sum) {
        sum->nodes = g->n_nodes;
        sum->initializers = g->n_inits;
        sum->inputs = g->n_inputs;
        sum->outputs = g->n_outputs;
        sum->weight_bytes = weights;
        sum->external = external;
        sum->model_bytes = count.n;
    }
    return LMF_OK;
}

lmf_status lmf_onnx_dtype_parse(const char *s, lmf_onnx_dtype *out) {
    if (strcmp(s, "fp32") == 0) *out = LMF_ONNX_FP32;
    else if (strcmp(s, "fp16") == 0) *out = LMF_ONNX_FP16;
    else return lmf_fail(LMF_ERR_ARG, "ONNX weights are fp32 or fp16, not '%s'", s);
    return LMF_OK;
}

/* Refuse weights the graph cannot carry: non-finite values, or values beyond fp16's range. */
static lmf_status check_weights(lmf_gpt *m, lmf_onnx_dtype dt) {
    const lmf_param_layout *l = lmf_gpt_layout(m);
    const float *p = lmf_gpt_params(m);
    if (!p) return lmf_fail(LMF_ERR_STATE, "ONNX export: the model holds no weights");
    for (int i = 0; i < l->n_tensors; i++) {
        const lmf_tensor_info *t = &l->tensors[i];
        size_t n = (size_t)t->shape[0] * (size_t)(t->ndim == 2 ? t->shape[1] : 1);
        for (size_t j = 0; j < n; j++) {
            float w = p[t->offset + j];
            if (!isfinite(w))
                return lmf_fail(LMF_ERR_ARG, "ONNX export: weight %s[%zu] is %g: the model is "
                                "broken (a diverged run?); export an earlier checkpoint", t->name, j, w);
            if (dt == LMF_ONNX_FP16 && fabsf(w) > 65504.0f)
                return lmf_fail(LMF_ERR_ARG, "ONNX export: weight %s[%zu] is %g, beyond fp16's "
                                "range (65504): export with --dtype fp32", t->name, j, w);
        }
    }
    return LMF_OK;
}

lmf_status lmf_onnx_export(lmf_gpt *m, const char *dir, const lmf_onnx_options *o,
                           lmf_onnx_summary *sum) {
    LMF_TRY(check_weights(m, o->dtype));
    LMF_TRY(lmf_mkdir_p(dir));
    lmf_onnx_graph g;
    lmf_onnx_graph_init(&g, o->dtype == LMF_ONNX_FP16 ? LMF_ONNX_T_FLOAT16 : LMF_ONNX_T_FLOAT);
    lmf_status s = lmf_gpt_cfg(m)->family == LMF_FAMILY_LLAMA ? lmf_onnx_build_llama(&g, m, o->kv_cache)
                                                              : lmf_onnx_build_gpt2(&g, m, o->kv_cache);
    if (s == LMF_OK) s = lmf_onnx_graph_check(&g);
    if (s == LMF_OK) {
        uint64_t weights = 0;
        for (int i = 0; i < g.n_inits; i++)
            if (g.inits[i].f32) weights += init_bytes(&g, &g.inits[i]);
        s = lmf_onnx_graph_write(&g, dir, weights > o->external_above, sum);
    }
    char cfg[4096];
    if (s == LMF_OK) s = lmf_path_join(cfg, sizeof cfg, dir, "config.json");
    if (s == LMF_OK) s = lmf_config_write(cfg, lmf_gpt_cfg(m), o->eot);
    lmf_onnx_graph_free(&g);
    return s;
}

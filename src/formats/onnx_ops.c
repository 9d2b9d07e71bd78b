/* ONNX node-writing helpers: standard operators with their output shapes, and the transformer
 * pieces (heads, causal mask, attention) the model families share. */
#include "formats/onnx_graph.h"

#include <float.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "lmforge/model.h"

/* value v, or NULL; the pointer is good until the next value is made (g->values may move) */
static const lmf_onnx_value *val(const lmf_onnx_graph *g, int v) {
    return v >= 0 && v < g->n_values ? &g->values[v] : NULL;
}

static void shape_error(lmf_onnx_graph *g, const char *name, const char *what) {
    if (g->err == LMF_OK)
        g->err = lmf_fail(LMF_ERR_STATE, "ONNX graph: %s/%s: %s", g->scope, name, what);
}

/* numpy broadcasting of the shapes of a and b into dims; returns the rank (-1 unknown) */
static int broadcast(lmf_onnx_graph *g, const char *name, int a, int b, int64_t *dims) {
    const lmf_onnx_value *x = val(g, a), *y = val(g, b);
    if (!x || !y || x->rank < 0 || y->rank < 0) return -1;
    int r = x->rank > y->rank ? x->rank : y->rank;
    for (int i = 0; i < r; i++) {
        int ix = i - (r - x->rank), iy = i - (r - y->rank);
        int64_t dx = ix >= 0 ? x->dim[ix] : 1, dy = iy >= 0 ? y->dim[iy] : 1;
        if (dx == 1) dims[i] = dy;
        else if (dy == 1) dims[i] = dx;
        else if (dx == LMF_ONNX_DYN) dims[i] = dy;
        else if (dy == LMF_ONNX_DYN || dx == dy) dims[i] = dx;
        else {
            char msg[160];
            snprintf(msg, sizeof msg, "shapes do not broadcast: dimension %d is %lld and %lld", i,
                     (long long)dx, (long long)dy);
            shape_error(g, name, msg);
            return -1;
        }
    }
    return r;
}

/* an int64 vector constant named NAME/suffix */
static int ints(lmf_onnx_graph *g, const char *name, const char *suffix, int n, const int64_t *v) {
    char cn[128];
    snprintf(cn, sizeof cn, "%s/%s", name, suffix);
    return lmf_onnx_const_i64(g, cn, n, v);
}

static lmf_onnx_elem type_of(const lmf_onnx_graph *g, int v) {
    const lmf_onnx_value *x = val(g, v);
    return x ? x->type : LMF_ONNX_T_FLOAT;
}

static int binary(lmf_onnx_graph *g, const char *op, const char *name, int a, int b,
                  lmf_onnx_elem type) {
    int64_t dims[LMF_ONNX_MAX_RANK];
    int r = broadcast(g, name, a, b, dims);
    int in[2] = {a, b};
    return lmf_onnx_node1(g, op, name, 2, in, type, r, r >= 0 ? dims : NULL, 0, NULL);
}

int lmf_onnx_add(lmf_onnx_graph *g, const char *name, int a, int b) {
    return binary(g, "Add", name, a, b, type_of(g, a));
}
int lmf_onnx_mul(lmf_onnx_graph *g, const char *name, int a, int b) {
    return binary(g, "Mul", name, a, b, type_of(g, a));
}
int lmf_onnx_sub(lmf_onnx_graph *g, const char *name, int a, int b) {
    return binary(g, "Sub", name, a, b, type_of(g, a));
}

int lmf_onnx_unary(lmf_onnx_graph *g, const char *op, const char *name, int a) {
    const lmf_onnx_value *x = val(g, a);
    return lmf_onnx_node1(g, op, name, 1, &a, type_of(g, a), x ? x->rank : -1,
                          x && x->rank >= 0 ? x->dim : NULL, 0, NULL);
}

int lmf_onnx_matmul(lmf_onnx_graph *g, const char *name, int a, int b) {
    const lmf_onnx_value *x = val(g, a), *y = val(g, b);
    int64_t dims[LMF_ONNX_MAX_RANK];
    int r = -1;
    if (x && y && x->rank >= 2 && y->rank >= 2) {
        int64_t k1 = x->dim[x->rank - 1], k2 = y->dim[y->rank - 2];
        if (k1 >= 0 && k2 >= 0 && k1 != k2) {
            char msg[160];
            snprintf(msg, sizeof msg, "MatMul of [..., %lld] by [%lld, ...]", (long long)k1, (long long)k2);
            shape_error(g, name, msg);
            return -1;
        }
        r = x->rank > y->rank ? x->rank : y->rank;
        for (int i = 0; i < r - 2; i++) { /* batch dimensions broadcast */
            int ix = i - (r - x->rank), iy = i - (r - y->rank);
            int64_t dx = ix >= 0 ? x->dim[ix] : 1, dy = iy >= 0 ? y->dim[iy] : 1;
            dims[i] = dx == 1 ? dy : dx;
        }
        dims[r - 2] = x->dim[x->rank - 2];
        dims[r - 1] = y->dim[y->rank - 1];
    }
    int in[2] = {a, b};
    return lmf_onnx_node1(g, "MatMul", name, 2, in, type_of(g, a), r, r >= 0 ? dims : NULL, 0, NULL);
}

int lmf_onnx_linear(lmf_onnx_graph *g, const char *name, int x, int w, int b) {
    char n[96];
    snprintf(n, sizeof n, "%s/MatMul", name);
    int y = lmf_onnx_matmul(g, n, x, w);
    if (b < 0) return y;
    snprintf(n, sizeof n, "%s/Add", name);
    return lmf_onnx_add(g, n, y, b);
}

int lmf_onnx_layernorm(lmf_onnx_graph *g, const char *name, int x, int w, int b, float eps) {
    const lmf_onnx_value *xv = val(g, x), *wv = val(g, w);
    if (xv && wv && xv->rank >= 1 && wv->rank == 1 && xv->dim[xv->rank - 1] >= 0 &&
        xv->dim[xv->rank - 1] != wv->dim[0]) {
        shape_error(g, name, "LayerNormalization weight does not match the last dimension");
        return -1;
    }
    lmf_onnx_attr at[2] = {{.name = "axis", .kind = LMF_ONNX_ATTR_INT, .n = 1, .ints = {-1}},
                           {.name = "epsilon", .kind = LMF_ONNX_ATTR_FLOAT, .f = eps}};
    int in[3] = {x, w, b};
    return lmf_onnx_node1(g, "LayerNormalization", name, 3, in, LMF_ONNX_T_FLOAT,
                          xv ? xv->rank : -1, xv && xv->rank >= 0 ? xv->dim : NULL, 2, at);
}

int lmf_onnx_gelu_tanh(lmf_onnx_graph *g, const char *name, int x) {
    /* 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), as the reference kernel computes it */
    char n[96];
#define NM(s) (snprintf(n, sizeof n, "%s/%s", name, s), n)
    int c_a = lmf_onnx_const_f32(g, NM("a"), 0.044715f);
    int c_s = lmf_onnx_const_f32(g, NM("s"), 0.7978845608028654f);
    int c_1 = lmf_onnx_const_f32(g, NM("one"), 1.0f);
    int c_h = lmf_onnx_const_f32(g, NM("half"), 0.5f);
    int x2 = lmf_onnx_mul(g, NM("x2"), x, x);
    int x3 = lmf_onnx_mul(g, NM("x3"), x2, x);
    int ax3 = lmf_onnx_mul(g, NM("ax3"), x3, c_a);
    int inner = lmf_onnx_add(g, NM("inner"), x, ax3);
    int u = lmf_onnx_mul(g, NM("u"), inner, c_s);
    int t = lmf_onnx_unary(g, "Tanh", NM("tanh"), u);
    int t1 = lmf_onnx_add(g, NM("one_plus"), t, c_1);
    int hx = lmf_onnx_mul(g, NM("half_x"), x, c_h);
    return lmf_onnx_mul(g, NM("out"), hx, t1);
#undef NM
}

int lmf_onnx_transpose(lmf_onnx_graph *g, const char *name, int x, int rank, const int64_t *perm) {
    const lmf_onnx_value *xv = val(g, x);
    int64_t dims[LMF_ONNX_MAX_RANK];
    int known = xv && xv->rank == rank;
    if (xv && xv->rank >= 0 && xv->rank != rank) {
        shape_error(g, name, "Transpose permutation of another rank");
        return -1;
    }
    for (int i = 0; known && i < rank; i++) dims[i] = xv->dim[perm[i]];
    lmf_onnx_attr at = {.name = "perm", .kind = LMF_ONNX_ATTR_INTS, .n = rank};
    memcpy(at.ints, perm, (size_t)rank * sizeof *perm);
    return lmf_onnx_node1(g, "Transpose", name, 1, &x, type_of(g, x), known ? rank : -1,
                          known ? dims : NULL, 1, &at);
}

int lmf_onnx_reshape(lmf_onnx_graph *g, const char *name, int x, int n, const int64_t *shape) {
    int s = ints(g, name, "shape", n, shape);
    const lmf_onnx_value *xv = val(g, x); /* after the constant: values may move */
    int64_t dims[LMF_ONNX_MAX_RANK];
    for (int i = 0; i < n; i++) {
        if (shape[i] == 0) dims[i] = xv && xv->rank > i ? xv->dim[i] : LMF_ONNX_DYN;
        else dims[i] = shape[i] < 0 ? LMF_ONNX_DYN : shape[i];
    }
    int in[2] = {x, s};
    return lmf_onnx_node1(g, "Reshape", name, 2, in, type_of(g, x), n, dims, 0, NULL);
}

int lmf_onnx_gather(lmf_onnx_graph *g, const char *name, int table, int idx, int axis) {
    const lmf_onnx_value *t = val(g, table), *i = val(g, idx);
    int64_t dims[LMF_ONNX_MAX_RANK];
    int r = -1;
    if (t && i && t->rank >= 1 && i->rank >= 0 && t->rank - 1 + i->rank <= LMF_ONNX_MAX_RANK) {
        r = 0;
        for (int d = 0; d < axis; d++) dims[r++] = t->dim[d];
        for (int d = 0; d < i->rank; d++) dims[r++] = i->dim[d];
        for (int d = axis + 1; d < t->rank; d++) dims[r++] = t->dim[d];
    }
    lmf_onnx_attr at = {.name = "axis", .kind = LMF_ONNX_ATTR_INT, .n = 1, .ints = {axis}};
    int in[2] = {table, idx};
    return lmf_onnx_node1(g, "Gather", name, 2, in, type_of(g, table), r, r >= 0 ? dims : NULL, 1, &at);
}

int lmf_onnx_concat(lmf_onnx_graph *g, const char *name, int a, int b, int axis) {
    const lmf_onnx_value *x = val(g, a), *y = val(g, b);
    int64_t dims[LMF_ONNX_MAX_RANK];
    int r = -1;
    if (x && y && x->rank >= 0 && x->rank == y->rank) {
        r = x->rank;
        for (int i = 0; i < r; i++) {
            if (i == axis) {
                dims[i] = x->dim[i] >= 0 && y->dim[i] >= 0 ? x->dim[i] + y->dim[i] : LMF_ONNX_DYN;
            } else if (x->dim[i] >= 0 && y->dim[i] >= 0 && x->dim[i] != y->dim[i]) {
                shape_error(g, name, "Concat of tensors that differ outside the axis");
                return -1;
            } else {
                dims[i] = x->dim[i] >= 0 ? x->dim[i] : y->dim[i];
            }
        }
    } else if (x && y && x->rank >= 0 && y->rank >= 0) {
        shape_error(g, name, "Concat of tensors of different ranks");
        return -1;
    }
    lmf_onnx_attr at = {.name = "axis", .kind = LMF_ONNX_ATTR_INT, .n = 1, .ints = {axis}};
    int in[2] = {a, b};
    return lmf_onnx_node1(g, "Concat", name, 2, in, type_of(g, a), r, r >= 0 ? dims : NULL, 1, &at);
}

int lmf_onnx_softmax(lmf_onnx_graph *g, const char *name, int x) {
    const lmf_onnx_value *xv = val(g, x);
    lmf_onnx_attr at = {.name = "axis", .kind = LMF_ONNX_ATTR_INT, .n = 1, .ints = {-1}};
    return lmf_onnx_node1(g, "Softmax", name, 1, &x, type_of(g, x), xv ? xv->rank : -1,
                          xv && xv->rank >= 0 ? xv->dim : NULL, 1, &at);
}

int lmf_onnx_cast(lmf_onnx_graph *g, const char *name, int x, lmf_onnx_elem to) {
    const lmf_onnx_value *xv = val(g, x);
    lmf_onnx_attr at = {.name = "to", .kind = LMF_ONNX_ATTR_INT, .n = 1, .ints = {to}};
    return lmf_onnx_node1(g, "Cast", name, 1, &x, to, xv ? xv->rank : -1,
                          xv && xv->rank >= 0 ? xv->dim : NULL, 1, &at);
}

int lmf_onnx_slice_last(lmf_onnx_graph *g, const char *name, int x, int64_t lo, int64_t hi) {
    const int64_t axis = -1;
    int s = ints(g, name, "starts", 1, &lo), e = ints(g, name, "ends", 1, &hi);
    int a = ints(g, name, "axes", 1, &axis);
    const lmf_onnx_value *xv = val(g, x); /* after the constants: values may move */
    int64_t dims[LMF_ONNX_MAX_RANK];
    int r = xv ? xv->rank : -1;
    if (r >= 1) {
        memcpy(dims, xv->dim, sizeof dims);
        if (xv->dim[r - 1] >= 0 && hi > xv->dim[r - 1]) {
            shape_error(g, name, "Slice past the end of the last dimension");
            return -1;
        }
        dims[r - 1] = hi - lo;
    }
    int in[4] = {x, s, e, a};
    return lmf_onnx_node1(g, "Slice", name, 4, in, type_of(g, x), r, r >= 1 ? dims : NULL, 0, NULL);
}

int lmf_onnx_unsqueeze(lmf_onnx_graph *g, const char *name, int x, int n, const int64_t *axes) {
    int a = ints(g, name, "axes", n, axes);
    const lmf_onnx_value *xv = val(g, x); /* after the constant: values may move */
    int64_t dims[LMF_ONNX_MAX_RANK];
    int r = xv && xv->rank >= 0 && xv->rank + n <= LMF_ONNX_MAX_RANK ? xv->rank + n : -1;
    for (int i = 0, k = 0; r >= 0 && i < r; i++) { /* axes are given in increasing order */
        int ins = 0;
        for (int j = 0; j < n; j++) ins |= axes[j] == i;
        dims[i] = ins ? 1 : xv->dim[k++];
    }
    int in[2] = {x, a};
    return lmf_onnx_node1(g, "Unsqueeze", name, 2, in, type_of(g, x), r, r >= 0 ? dims : NULL, 0, NULL);
}

int lmf_onnx_where(lmf_onnx_graph *g, const char *name, int cond, int a, int b) {
    int64_t d1[LMF_ONNX_MAX_RANK], dims[LMF_ONNX_MAX_RANK];
    int r = broadcast(g, name, a, b, d1);
    if (r >= 0) { /* then with the condition's shape */
        const lmf_onnx_value *c = val(g, cond);
        if (c && c->rank >= 0) {
            int rr = c->rank > r ? c->rank : r;
            for (int i = 0; i < rr; i++) {
                int ic = i - (rr - c->rank), it = i - (rr - r);
                int64_t dc = ic >= 0 ? c->dim[ic] : 1, dt = it >= 0 ? d1[it] : 1;
                dims[i] = dc == 1 ? dt : dt == 1 ? dc : dc >= 0 ? dc : dt;
            }
            r = rr;
        } else {
            r = -1;
        }
    }
    int in[3] = {cond, a, b};
    return lmf_onnx_node1(g, "Where", name, 3, in, type_of(g, a), r, r >= 0 ? dims : NULL, 0, NULL);
}

int lmf_onnx_dim(lmf_onnx_graph *g, const char *name, int x, int axis) {
    char n[96];
    const lmf_onnx_value *xv = val(g, x);
    int64_t r = xv ? xv->rank : -1;
    snprintf(n, sizeof n, "%s/Shape", name);
    int s = lmf_onnx_node1(g, "Shape", n, 1, &x, LMF_ONNX_T_INT64, 1, &r, 0, NULL);
    snprintf(n, sizeof n, "%s/index", name);
    int i = lmf_onnx_const_scalar_i64(g, n, axis);
    int in[2] = {s, i};
    return lmf_onnx_node1(g, "Gather", name, 2, in, LMF_ONNX_T_INT64, 0, NULL, 0, NULL);
}

/* ---- transformer pieces ---- */

static const char *const bt_axes[] = {"batch_size", "sequence_length"};

int lmf_onnx_decoder_inputs(lmf_onnx_graph *g, int n_layer, int kv_heads, int head_dim, int kv_cache,
                            int *mask, int *pos, int *first_past) {
    static const char *const kv_in[] = {"batch_size", NULL, "past_sequence_length", NULL};
    static const char *const mask_axes[] = {"batch_size", "past_sequence_length + sequence_length"};
    const int64_t dyn2[2] = {LMF_ONNX_DYN, LMF_ONNX_DYN};
    const int64_t kv_dims[4] = {LMF_ONNX_DYN, kv_heads, LMF_ONNX_DYN, head_dim};
    int ids = lmf_onnx_input(g, "input_ids", LMF_ONNX_T_INT64, 2, dyn2, bt_axes);
    *mask = *pos = -1;
    if (kv_cache) {
        *mask = lmf_onnx_input(g, "attention_mask", LMF_ONNX_T_INT64, 2, dyn2, mask_axes);
        *pos = lmf_onnx_input(g, "position_ids", LMF_ONNX_T_INT64, 2, dyn2, bt_axes);
    }
    *first_past = g->n_values;
    for (int l = 0; kv_cache && l < n_layer; l++) {
        char n[64];
        snprintf(n, sizeof n, "past_key_values.%d.key", l);
        lmf_onnx_input(g, n, LMF_ONNX_T_FLOAT, 4, kv_dims, kv_in);
        snprintf(n, sizeof n, "past_key_values.%d.value", l);
        lmf_onnx_input(g, n, LMF_ONNX_T_FLOAT, 4, kv_dims, kv_in);
    }
    return ids;
}

int lmf_onnx_positions(lmf_onnx_graph *g, int ids) {
    int t = lmf_onnx_dim(g, "T", ids, 1);
    int zero = lmf_onnx_const_scalar_i64(g, "zero", 0), one = lmf_onnx_const_scalar_i64(g, "one", 1);
    int in[3] = {zero, t, one};
    int64_t dyn = LMF_ONNX_DYN;
    return lmf_onnx_node1(g, "Range", "positions", 3, in, LMF_ONNX_T_INT64, 1, &dyn, 0, NULL);
}

void lmf_onnx_decoder_outputs(lmf_onnx_graph *g, int logits, int vocab, int n_layer, int kv_cache,
                              const int *present) {
    static const char *const kv_out[] = {"batch_size", NULL, "past_sequence_length + sequence_length", NULL};
    static const char *const logit_axes[] = {"batch_size", "sequence_length", NULL};
    if (g->err == LMF_OK && g->values[logits].dim[2] != vocab)
        g->err = lmf_fail(LMF_ERR_STATE, "ONNX graph: logits of width %lld, vocabulary %d",
                          (long long)g->values[logits].dim[2], vocab);
    lmf_onnx_output(g, logits, "logits", logit_axes);
    /* then the cache, in layer order, as Hugging Face lists the outputs */
    for (int l = 0; kv_cache && l < n_layer; l++) {
        char n[64];
        snprintf(n, sizeof n, "present.%d.key", l);
        lmf_onnx_output(g, present[2 * l], n, kv_out);
        snprintf(n, sizeof n, "present.%d.value", l);
        lmf_onnx_output(g, present[2 * l + 1], n, kv_out);
    }
}

int lmf_onnx_split_heads(lmf_onnx_graph *g, const char *name, int x, int heads, int head_dim) {
    char n[96];
    const int64_t shape[4] = {0, 0, heads, head_dim}, perm[4] = {0, 2, 1, 3};
    snprintf(n, sizeof n, "%s/Reshape", name);
    int r = lmf_onnx_reshape(g, n, x, 4, shape);
    snprintf(n, sizeof n, "%s/Transpose", name);
    return lmf_onnx_transpose(g, n, r, 4, perm);
}

int lmf_onnx_causal_mask(lmf_onnx_graph *g, int ids, int keys, int attention_mask) {
    int t = lmf_onnx_dim(g, "T", ids, 1);
    int tk = lmf_onnx_dim(g, "total", keys, 2);
    int past = lmf_onnx_sub(g, "past", tk, t);
    int zero = lmf_onnx_const_scalar_i64(g, "zero", 0), one = lmf_onnx_const_scalar_i64(g, "one", 1);
    int in_q[3] = {past, tk, one}, in_k[3] = {zero, tk, one};
    int64_t dyn = LMF_ONNX_DYN;
    int qpos = lmf_onnx_node1(g, "Range", "query_positions", 3, in_q, LMF_ONNX_T_INT64, 1, &dyn, 0, NULL);
    int kpos = lmf_onnx_node1(g, "Range", "key_positions", 3, in_k, LMF_ONNX_T_INT64, 1, &dyn, 0, NULL);
    const int64_t ax1 = 1, ax12[2] = {1, 2};
    int qcol = lmf_onnx_unsqueeze(g, "query_column", qpos, 1, &ax1);
    int64_t tt[2] = {LMF_ONNX_DYN, LMF_ONNX_DYN};
    int in_le[2] = {kpos, qcol};
    int causal = lmf_onnx_node1(g, "LessOrEqual", "causal", 2, in_le, LMF_ONNX_T_BOOL, 2, tt, 0, NULL);
    if (attention_mask < 0) return causal;
    int am = lmf_onnx_cast(g, "mask_bool", attention_mask, LMF_ONNX_T_BOOL);
    int am4 = lmf_onnx_unsqueeze(g, "mask_4d", am, 2, ax12);
    int in_and[2] = {causal, am4};
    int64_t d4[4] = {LMF_ONNX_DYN, 1, LMF_ONNX_DYN, LMF_ONNX_DYN};
    return lmf_onnx_node1(g, "And", "allowed", 2, in_and, LMF_ONNX_T_BOOL, 4, d4, 0, NULL);
}

int lmf_onnx_attention(lmf_onnx_graph *g, int q, int k, int v, int mask, float scale, int heads,
                       int head_dim) {
    const int64_t kt_perm[4] = {0, 1, 3, 2}, back[4] = {0, 2, 1, 3};
    const int64_t merged[3] = {0, 0, (int64_t)heads * head_dim};
    int kt = lmf_onnx_transpose(g, "attn/k_transposed", k, 4, kt_perm);
    int s = lmf_onnx_matmul(g, "attn/scores", q, kt);
    int sc = lmf_onnx_const_f32(g, "attn/scale", scale);
    s = lmf_onnx_mul(g, "attn/scaled", s, sc);
    /* masked scores take the lowest float: softmax gives them 0, and a row with every key
     * masked (padding) stays finite */
    int low = lmf_onnx_const_f32(g, "attn/masked_value", -FLT_MAX);
    s = lmf_onnx_where(g, "attn/masked", mask, s, low);
    int p = lmf_onnx_softmax(g, "attn/probs", s);
    int o = lmf_onnx_matmul(g, "attn/context", p, v);
    o = lmf_onnx_transpose(g, "attn/merge_heads", o, 4, back);
    return lmf_onnx_reshape(g, "attn/merged", o, 3, merged);
}

int lmf_onnx_model_weight(lmf_onnx_graph *g, lmf_gpt *m, const char *fmt, ...) {
    char name[64];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    const lmf_param_layout *l = lmf_gpt_layout(m);
    int i = lmf_layout_find(l, name);
    if (i < 0) {
        if (g->err == LMF_OK) g->err = lmf_fail(LMF_ERR_STATE, "ONNX export: the model has no tensor %s", name);
        return -1;
    }
    const lmf_tensor_info *t = &l->tensors[i];
    int64_t dims[2] = {t->shape[0], t->ndim == 2 ? t->shape[1] : 0};
    if (t->ndim == 2 && t->transposed) { /* held (in, out): the Hugging Face (out, in) swapped */
        dims[0] = t->shape[1];
        dims[1] = t->shape[0];
    }
    return lmf_onnx_weight(g, name, lmf_gpt_params(m) + t->offset, t->ndim, dims);
}

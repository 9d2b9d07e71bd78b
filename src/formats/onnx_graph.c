/* ONNX graph builder: values, nodes, weights, graph inputs and outputs, and the graph check. */
#include "formats/onnx_graph.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void lmf_onnx_graph_init(lmf_onnx_graph *g, lmf_onnx_elem weight_type) {
    memset(g, 0, sizeof *g);
    g->weight_type = weight_type;
    g->err = LMF_OK;
}

void lmf_onnx_graph_free(lmf_onnx_graph *g) {
    for (int i = 0; i < g->n_values; i++) free(g->values[i].name);
    for (int i = 0; i < g->n_nodes; i++) free(g->nodes[i].name);
    for (int i = 0; i < g->n_inits; i++) free(g->inits[i].bytes);
    free(g->values);
    free(g->nodes);
    free(g->inits);
    free(g->inputs);
    free(g->outputs);
    memset(g, 0, sizeof *g);
}

void lmf_onnx_scope(lmf_onnx_graph *g, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g->scope, sizeof g->scope, fmt, ap);
    va_end(ap);
}

/* grow *arr (of *cap elements of size sz) to hold n + 1; 0 and g->err set when out of memory */
static int grow(lmf_onnx_graph *g, void **arr, int *cap, int n, size_t sz) {
    if (g->err != LMF_OK) return 0;
    if (n < *cap) return 1;
    int nc = *cap ? *cap * 2 : 64;
    void *p = realloc(*arr, (size_t)nc * sz);
    if (!p) {
        g->err = lmf_fail(LMF_ERR_NOMEM, "cannot allocate the ONNX graph");
        return 0;
    }
    *arr = p;
    *cap = nc;
    return 1;
}

static char *scoped(lmf_onnx_graph *g, const char *name) {
    size_t len = strlen(g->scope) + strlen(name) + 2;
    char *s = malloc(len);
    if (!s) {
        if (g->err == LMF_OK) g->err = lmf_fail(LMF_ERR_NOMEM, "cannot allocate the ONNX graph");
        return NULL;
    }
    snprintf(s, len, "%s/%s", g->scope, name);
    return s;
}

/* a new value named `name` (taken over); -1 on failure */
static int new_value(lmf_onnx_graph *g, char *name, lmf_onnx_elem type, int rank,
                     const int64_t *dims) {
    if (!name || !grow(g, (void **)&g->values, &g->cap_values, g->n_values, sizeof *g->values)) {
        free(name);
        return -1;
    }
    if (rank > LMF_ONNX_MAX_RANK) {
        free(name);
        g->err = lmf_fail(LMF_ERR_ARG, "ONNX graph: a value of rank %d (at most %d)", rank, LMF_ONNX_MAX_RANK);
        return -1;
    }
    lmf_onnx_value *v = &g->values[g->n_values];
    memset(v, 0, sizeof *v);
    v->name = name;
    v->type = type;
    v->rank = dims || rank == 0 ? rank : -1;
    for (int i = 0; dims && i < rank; i++) v->dim[i] = dims[i];
    v->defined = 1;
    return g->n_values++;
}

static int push_index(lmf_onnx_graph *g, int **arr, int *n, int *cap, int v) {
    if (!grow(g, (void **)arr, cap, *n, sizeof **arr)) return 0;
    (*arr)[(*n)++] = v;
    return 1;
}

int lmf_onnx_input(lmf_onnx_graph *g, const char *name, lmf_onnx_elem type, int rank,
                   const int64_t *dims, const char *const *params) {
    int v = new_value(g, strdup(name), type, rank, dims);
    if (v < 0) return -1;
    for (int i = 0; i < rank; i++) g->values[v].dim_param[i] = params ? params[i] : NULL;
    return push_index(g, &g->inputs, &g->n_inputs, &g->cap_inputs, v) ? v : -1;
}

static int usable(lmf_onnx_graph *g, int v, const char *user) {
    if (g->err != LMF_OK) return 0;
    if (v < 0 || v >= g->n_values || !g->values[v].defined) {
        g->err = lmf_fail(LMF_ERR_STATE, "ONNX graph: %s/%s uses a value that is not defined",
                          g->scope, user);
        return 0;
    }
    return 1;
}

int lmf_onnx_node1(lmf_onnx_graph *g, const char *op, const char *name, int n_in, const int *in,
                   lmf_onnx_elem type, int rank, const int64_t *dims, int n_attr,
                   const lmf_onnx_attr *attr) {
    LMF_ASSERT(n_in <= LMF_ONNX_MAX_IO && n_attr <= 2 && rank <= LMF_ONNX_MAX_RANK);
    int64_t d[LMF_ONNX_MAX_RANK]; /* dims may point into g->values, which may move below */
    if (dims) memcpy(d, dims, (size_t)(rank > 0 ? rank : 0) * sizeof *d);
    for (int i = 0; i < n_in; i++)
        if (!usable(g, in[i], name)) return -1;
    if (!grow(g, (void **)&g->nodes, &g->cap_nodes, g->n_nodes, sizeof *g->nodes)) return -1;
    char *nn = scoped(g, name);
    int out = new_value(g, scoped(g, name), type, rank, dims ? d : NULL);
    if (!nn || out < 0) { free(nn); return -1; }
    lmf_onnx_node *n = &g->nodes[g->n_nodes++];
    memset(n, 0, sizeof *n);
    n->op = op;
    n->name = nn;
    n->n_in = n_in;
    memcpy(n->in, in, (size_t)n_in * sizeof *in);
    n->n_out = 1;
    n->out[0] = out;
    n->n_attr = n_attr;
    for (int i = 0; i < n_attr; i++) n->attr[i] = attr[i];
    return out;
}

void lmf_onnx_output(lmf_onnx_graph *g, int v, const char *name, const char *const *params) {
    if (!usable(g, v, name)) return;
    if (strcmp(g->values[v].name, name) != 0) { /* an Identity gives it the output's name */
        lmf_onnx_value src = g->values[v];
        char nn[128];
        snprintf(nn, sizeof nn, "output/%s", name);
        v = lmf_onnx_node1(g, "Identity", nn, 1, &v, src.type, src.rank,
                           src.rank >= 0 ? src.dim : NULL, 0, NULL);
        if (v < 0) return;
        free(g->values[v].name);
        g->values[v].name = strdup(name);
        if (!g->values[v].name) { g->err = lmf_fail(LMF_ERR_NOMEM, "cannot allocate the ONNX graph"); return; }
    }
    for (int i = 0; i < g->values[v].rank; i++) g->values[v].dim_param[i] = params ? params[i] : NULL;
    push_index(g, &g->outputs, &g->n_outputs, &g->cap_outputs, v);
}

static int add_init(lmf_onnx_graph *g, char *name, lmf_onnx_elem type, int rank,
                    const int64_t *dims, const float *f32, void *bytes, uint64_t numel) {
    int v = new_value(g, name, type, rank, dims);
    if (v < 0 || !grow(g, (void **)&g->inits, &g->cap_inits, g->n_inits, sizeof *g->inits)) {
        free(bytes);
        return -1;
    }
    lmf_onnx_init *in = &g->inits[g->n_inits++];
    memset(in, 0, sizeof *in);
    in->value = v;
    in->f32 = f32;
    in->bytes = bytes;
    in->numel = numel;
    return v;
}

int lmf_onnx_weight(lmf_onnx_graph *g, const char *name, const float *data, int rank,
                    const int64_t *dims) {
    uint64_t numel = 1;
    for (int i = 0; i < rank; i++) numel *= (uint64_t)dims[i];
    int v = add_init(g, strdup(name), g->weight_type, rank, dims, data, NULL, numel);
    if (v < 0 || g->weight_type == LMF_ONNX_T_FLOAT) return v;
    char cast[128];
    snprintf(cast, sizeof cast, "%s/to_fp32", name);
    char saved[sizeof g->scope];
    memcpy(saved, g->scope, sizeof saved);
    g->scope[0] = '\0';
    lmf_onnx_attr to = {.name = "to", .kind = LMF_ONNX_ATTR_INT, .n = 1, .ints = {LMF_ONNX_T_FLOAT}};
    int out = lmf_onnx_node1(g, "Cast", cast, 1, &v, LMF_ONNX_T_FLOAT, rank, dims, 1, &to);
    memcpy(g->scope, saved, sizeof saved);
    return out;
}

/* a constant of numel values of type `type` copied from data (bytes long) */
static int add_const(lmf_onnx_graph *g, const char *name, lmf_onnx_elem type, int rank,
                     const int64_t *dims, const void *data, size_t bytes, uint64_t numel) {
    void *b = malloc(bytes ? bytes : 1);
    if (!b) {
        if (g->err == LMF_OK) g->err = lmf_fail(LMF_ERR_NOMEM, "cannot allocate the ONNX graph");
        return -1;
    }
    memcpy(b, data, bytes);
    return add_init(g, scoped(g, name), type, rank, dims, NULL, b, numel);
}

int lmf_onnx_const_i64(lmf_onnx_graph *g, const char *name, int n, const int64_t *v) {
    int64_t dim = n;
    return add_const(g, name, LMF_ONNX_T_INT64, 1, &dim, v, (size_t)n * sizeof *v, (uint64_t)n);
}

int lmf_onnx_const_scalar_i64(lmf_onnx_graph *g, const char *name, int64_t v) {
    return add_const(g, name, LMF_ONNX_T_INT64, 0, NULL, &v, sizeof v, 1);
}

int lmf_onnx_const_f32(lmf_onnx_graph *g, const char *name, float v) {
    return add_const(g, name, LMF_ONNX_T_FLOAT, 0, NULL, &v, sizeof v, 1);
}

int lmf_onnx_const_f32v(lmf_onnx_graph *g, const char *name, int n, const float *v) {
    int64_t dim = n;
    return add_const(g, name, LMF_ONNX_T_FLOAT, 1, &dim, v, (size_t)n * sizeof *v, (uint64_t)n);
}

/* ---- the check ---- */

/* Standard operators of the default domain the family graphs may use, each with the opset
 * that introduced its current definition (onnx/onnx docs/Operators.md); all are <= 17. Besides
 * what GPT-2 uses: Pow, ReduceMean, Sqrt, Div (RMSNorm), Neg, Cos, Sin (rotary embeddings), Sigmoid
 * (SwiGLU), Expand (grouped key/value heads), Equal, Gemm, Split. */
static const struct { const char *op; int since; } known_ops[] = {
    {"Add", 14}, {"And", 7}, {"Cast", 13}, {"Concat", 13}, {"Cos", 7}, {"Div", 14}, {"Equal", 13},
    {"Expand", 13}, {"Gather", 13}, {"Gemm", 13}, {"Identity", 16},
    {"LayerNormalization", 17}, {"LessOrEqual", 16}, {"MatMul", 13}, {"Mul", 14}, {"Neg", 13},
    {"Pow", 15}, {"Range", 11}, {"ReduceMean", 13}, {"Reshape", 14}, {"Shape", 15},
    {"Sigmoid", 13}, {"Sin", 7}, {"Slice", 13}, {"Softmax", 13}, {"Split", 13}, {"Sqrt", 13}, {"Sub", 14},
    {"Tanh", 13}, {"Transpose", 13}, {"Unsqueeze", 13}, {"Where", 16},
};

static int op_known(const char *op) {
    for (size_t i = 0; i < sizeof known_ops / sizeof known_ops[0]; i++)
        if (strcmp(known_ops[i].op, op) == 0) return known_ops[i].since <= LMF_ONNX_OPSET;
    return 0;
}

static int value_in(const int *arr, int n, int v) {
    for (int i = 0; i < n; i++)
        if (arr[i] == v) return 1;
    return 0;
}

lmf_status lmf_onnx_graph_check(const lmf_onnx_graph *g) {
    if (g->err != LMF_OK) return g->err;
    lmf_status s = LMF_OK;
    char *made = calloc((size_t)g->n_values + 1, 1);
    if (!made) return lmf_fail(LMF_ERR_NOMEM, "cannot allocate the ONNX graph check");
#define BAD(...) do { s = lmf_fail(LMF_ERR_STATE, "ONNX graph check: " __VA_ARGS__); goto out; } while (0)
    for (int i = 0; i < g->n_inputs; i++) made[g->inputs[i]] = 1;
    for (int i = 0; i < g->n_inits; i++) {
        const lmf_onnx_init *in = &g->inits[i];
        const lmf_onnx_value *v = &g->values[in->value];
        if (made[in->value]) BAD("%s is defined twice", v->name);
        made[in->value] = 1;
        uint64_t numel = 1;
        for (int d = 0; d < v->rank; d++) {
            if (v->dim[d] < 0) BAD("weight %s has a dynamic dimension", v->name);
            numel *= (uint64_t)v->dim[d];
        }
        if (numel != in->numel) BAD("weight %s holds %llu values, its shape %llu", v->name,
                                    (unsigned long long)in->numel, (unsigned long long)numel);
        if (!in->f32 && !in->bytes) BAD("weight %s has no data", v->name);
    }
    for (int i = 0; i < g->n_nodes; i++) {
        const lmf_onnx_node *n = &g->nodes[i];
        if (!op_known(n->op)) BAD("node %s: %s is not a standard operator of opset %d", n->name, n->op, LMF_ONNX_OPSET);
        for (int j = 0; j < n->n_in; j++)
            if (n->in[j] < 0 || n->in[j] >= g->n_values || !made[n->in[j]])
                BAD("node %s (%s): input %d is not defined before it", n->name, n->op, j);
        for (int j = 0; j < n->n_out; j++) {
            if (made[n->out[j]]) BAD("node %s: output %s is defined twice", n->name, g->values[n->out[j]].name);
            made[n->out[j]] = 1;
        }
    }
    if (g->n_outputs == 0) BAD("the graph has no outputs");
    for (int i = 0; i < g->n_outputs; i++) {
        const lmf_onnx_value *v = &g->values[g->outputs[i]];
        if (!made[g->outputs[i]]) BAD("output %s is not computed", v->name);
        if (v->rank < 0) BAD("output %s has no known rank", v->name);
        if (value_in(g->inputs, g->n_inputs, g->outputs[i])) BAD("output %s is an input", v->name);
    }
    /* names are unique across inputs, weights and node outputs */
    for (int i = 0; i < g->n_values; i++)
        for (int j = i + 1; j < g->n_values; j++)
            if (made[i] && made[j] && strcmp(g->values[i].name, g->values[j].name) == 0)
                BAD("two values are named %s", g->values[i].name);
    for (int i = 0; i < g->n_nodes; i++)
        for (int j = i + 1; j < g->n_nodes; j++)
            if (strcmp(g->nodes[i].name, g->nodes[j].name) == 0)
                BAD("two nodes are named %s", g->nodes[i].name);
#undef BAD
out:
    free(made);
    return s;
}

/* ONNX export: the protobuf encoding against bytes worked out by hand from the protobuf
 * encoding rules and onnx.proto, the graph check (undefined inputs, unknown operators, bad
 * shapes, duplicate names), the GPT-2 and Llama graphs' forms, refusals with reasons. With
 * --write-model DIR [big | llama | llama-tied] it writes an odd-width model
 * tests/test_onnx_runtime.sh exports, and with --logits MODEL B T SEED IDS OUT
 * lmforge's own logits (reference kernels) of random ids for ONNX Runtime to match. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "formats/onnx_graph.h"
#include "formats/pb.h"
#include "lmforge/formats.h"
#include "lmforge/onnx.h"
#include "lmforge/rng.h"

#include "lib/test_util.h"

/* odd widths: 45 wide (3 heads of 15), vocabulary 301 (padded to 320 inside lmforge) */
static const lmf_gpt_config ODD = {3, 3, 45, 71, 301};
/* Llama with odd widths and grouped-query heads: 48 wide, 4 heads of 12 over 2 key/value heads,
 * SwiGLU 80 wide, vocabulary 301, rotary base 5000 (not the default), untied */
static const lmf_gpt_config ODD_LLAMA = {.n_layer = 2, .n_head = 4, .n_embd = 48, .n_positions = 128,
                                         .vocab_size = 301, .family = LMF_FAMILY_LLAMA,
                                         .n_kv_head = 2, .ffn_hidden = 80, .rms_norm_eps = 1e-5f,
                                         .rope_theta = 5000.0f, .tie_embeddings = 0};

/* ---- the encoder ---- */

static void encode(void (*fn)(lmf_pb *, const void *), const void *arg, uint8_t **out, size_t *len) {
    lmf_pb e;
    lmf_pb_init(&e, LMF_PB_MEMORY, -1, NULL);
    fn(&e, arg);
    assert_int_equal(lmf_pb_finish(&e), LMF_OK);
    assert_int_equal(e.n, e.len);
    *out = e.buf;
    *len = e.len;
}

static void varints(lmf_pb *e, const void *arg) {
    (void)arg;
    lmf_pb_varint(e, 1);
    lmf_pb_varint(e, 300);
    lmf_pb_int(e, 2, -1);
    lmf_pb_float(e, 2, 1.0f);
}

static void inner(lmf_pb *e, const void *arg) { lmf_pb_str(e, 1, (const char *)arg); }
static void outer(lmf_pb *e, const void *arg) {
    lmf_pb_int(e, 2, 17);
    lmf_pb_msg(e, 3, inner, arg);
}

static void test_pb_encoding(void **state) {
    (void)state;
    uint8_t *b;
    size_t n;
    encode(varints, NULL, &b, &n);
    /* 1 -> 01; 300 -> ac 02 (the protobuf encoding guide's example); field 2 varint -1 -> key 10,
     * ten bytes ff.. 01; field 2 fixed32 1.0f -> key 15, 00 00 80 3f */
    const uint8_t want[] = {0x01, 0xac, 0x02, 0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
                            0xff, 0x01, 0x15, 0x00, 0x00, 0x80, 0x3f};
    assert_int_equal(n, sizeof want);
    assert_memory_equal(b, want, sizeof want);
    free(b);
    /* a nested message: field 3, length 5 = key 0a + length 03 + "abc" after field 2 = 17 */
    encode(outer, "abc", &b, &n);
    const uint8_t want2[] = {0x10, 0x11, 0x1a, 0x05, 0x0a, 0x03, 'a', 'b', 'c'};
    assert_int_equal(n, sizeof want2);
    assert_memory_equal(b, want2, sizeof want2);
    free(b);
}

/* ---- the graph and its check ---- */

static float W[6] = {1, 2, 3, 4, 5, 6};

/* y = x @ w, x float [batch, 2], w [2, 3] */
static void small_graph(lmf_onnx_graph *g) {
    lmf_onnx_graph_init(g, LMF_ONNX_T_FLOAT);
    static const char *const axes[] = {"batch", NULL};
    const int64_t dx[2] = {LMF_ONNX_DYN, 2}, dw[2] = {2, 3};
    int x = lmf_onnx_input(g, "x", LMF_ONNX_T_FLOAT, 2, dx, axes);
    int w = lmf_onnx_weight(g, "w", W, 2, dw);
    int y = lmf_onnx_matmul(g, "mm", x, w);
    int t = lmf_onnx_unary(g, "Tanh", "t", y);
    lmf_onnx_output(g, t, "y", axes);
}

static void test_graph_check(void **state) {
    (void)state;
    lmf_onnx_graph g;
    small_graph(&g);
    assert_int_equal(lmf_onnx_graph_check(&g), LMF_OK);
    assert_int_equal(g.n_nodes, 3); /* MatMul, Tanh, Identity naming the output */
    /* nodes out of order: Tanh's input is defined only after it */
    lmf_onnx_node tmp = g.nodes[0];
    g.nodes[0] = g.nodes[1];
    g.nodes[1] = tmp;
    assert_int_equal(lmf_onnx_graph_check(&g), LMF_ERR_STATE);
    assert_non_null(strstr(lmf_last_error(), "is not defined before it"));
    g.nodes[1] = g.nodes[0];
    g.nodes[0] = tmp;
    /* an operator outside the standard set */
    g.nodes[1].op = "FusedGelu";
    assert_int_equal(lmf_onnx_graph_check(&g), LMF_ERR_STATE);
    assert_non_null(strstr(lmf_last_error(), "FusedGelu is not a standard operator of opset 17"));
    g.nodes[1].op = "Tanh";
    /* a weight whose data does not match its shape */
    g.inits[0].numel = 5;
    assert_int_equal(lmf_onnx_graph_check(&g), LMF_ERR_STATE);
    assert_non_null(strstr(lmf_last_error(), "weight w holds 5 values, its shape 6"));
    g.inits[0].numel = 6;
    assert_int_equal(lmf_onnx_graph_check(&g), LMF_OK);
    lmf_onnx_graph_free(&g);

    /* shapes that do not fit are refused when the node is made */
    lmf_onnx_graph_init(&g, LMF_ONNX_T_FLOAT);
    const int64_t dx[2] = {4, 3}, dw[2] = {2, 3};
    int x = lmf_onnx_input(&g, "x", LMF_ONNX_T_FLOAT, 2, dx, NULL);
    int w = lmf_onnx_weight(&g, "w", W, 2, dw);
    assert_int_equal(lmf_onnx_matmul(&g, "mm", x, w), -1);
    assert_int_equal(lmf_onnx_graph_check(&g), LMF_ERR_STATE);
    assert_non_null(strstr(lmf_last_error(), "MatMul of [..., 3] by [2, ...]"));
    lmf_onnx_graph_free(&g);

    /* a value used before anything defines it */
    lmf_onnx_graph_init(&g, LMF_ONNX_T_FLOAT);
    x = lmf_onnx_input(&g, "x", LMF_ONNX_T_FLOAT, 2, dx, NULL);
    assert_int_equal(lmf_onnx_add(&g, "a", x, x + 5), -1);
    assert_non_null(strstr(lmf_last_error(), "uses a value that is not defined"));
    lmf_onnx_graph_free(&g);

    /* the same output name twice */
    small_graph(&g);
    free(g.values[g.inits[0].value].name);
    g.values[g.inits[0].value].name = strdup("x");
    assert_int_equal(lmf_onnx_graph_check(&g), LMF_ERR_STATE);
    assert_non_null(strstr(lmf_last_error(), "two values are named x"));
    lmf_onnx_graph_free(&g);
}

/* A model file: ModelProto with ir_version 8 first, then (from the producer on) the opset
 * import of the default domain at version 17; the weight's raw bytes as a TensorProto. */
static void test_model_bytes(void **state) {
    (void)state;
    lmf_onnx_graph g;
    small_graph(&g);
    char dir[512];
    lmf_test_fresh_dir(dir, sizeof dir, "small");
    lmf_onnx_summary sum;
    assert_int_equal(lmf_onnx_graph_write(&g, dir, 0, &sum), LMF_OK);
    char path[600];
    snprintf(path, sizeof path, "%s/model.onnx", dir);
    size_t n;
    char *b = lmf_test_read_file(path, &n);
    assert_int_equal(n, sum.model_bytes);
    const uint8_t ir[] = {0x08, 0x08};                              /* field 1 varint 8 */
    const uint8_t opset[] = {0x42, 0x04, 0x0a, 0x00, 0x10, 0x11};   /* field 8: {domain "", version 17} */
    assert_memory_equal(b, ir, 2);
    assert_non_null(memmem(b, n, opset, sizeof opset));
    /* TensorProto of w: dims 2, 3 (keys 08), data_type 1 (key 10), name "w" (key 42), raw_data
     * 24 bytes (key 4a 18) */
    const uint8_t tensor_head[] = {0x08, 0x02, 0x08, 0x03, 0x10, 0x01, 0x42, 0x01, 'w', 0x4a, 0x18};
    const uint8_t *t = memmem(b, n, tensor_head, sizeof tensor_head);
    assert_non_null(t);
    assert_memory_equal(t + sizeof tensor_head, W, sizeof W);
    /* the graph input: ValueInfoProto "x" with dim_param "batch" and dim_value 2 */
    const uint8_t dims[] = {0x0a, 0x07, 0x12, 0x05, 'b', 'a', 't', 'c', 'h', 0x0a, 0x02, 0x08, 0x02};
    assert_non_null(memmem(b, n, dims, sizeof dims));
    free(b);
    lmf_onnx_graph_free(&g);
}

/* ---- the odd-width model ---- */

static lmf_gpt *random_model(const lmf_gpt_config *cfg) {
    lmf_gpt *m = NULL;
    lmf_test_ok(lmf_gpt_create(cfg, lmf_kernels_ref(), &m), "create");
    const lmf_param_layout *l = lmf_gpt_layout(m);
    float *p = lmf_gpt_params(m);
    lmf_rng r;
    lmf_rng_seed(&r, 20261203);
    for (int i = 0; i < l->n_tensors; i++) {
        const lmf_tensor_info *t = &l->tensors[i];
        size_t n = (size_t)t->shape[0] * (size_t)(t->ndim == 2 ? t->shape[1] : 1);
        int ln = strstr(t->name, "ln_") != NULL || strstr(t->name, "norm") != NULL;
        int bias = strstr(t->name, "bias") != NULL;
        float sd = t->ndim == 2 ? (t->block == 0 ? 0.5f : 0.12f) : 0.1f;
        for (size_t j = 0; j < n; j++) p[t->offset + j] = (ln && !bias ? 1.0f : 0.0f) + sd * lmf_rng_normal(&r);
    }
    return m;
}

static lmf_gpt *odd_model(float big) {
    lmf_gpt *m = random_model(&ODD);
    const lmf_param_layout *l = lmf_gpt_layout(m);
    float *p = lmf_gpt_params(m);
    if (big != 0) p[l->tensors[lmf_layout_find(l, "h.1.mlp.c_fc.weight")].offset + 7] = big;
    return m;
}

static lmf_gpt *llama_model(int tied) {
    lmf_gpt_config c = ODD_LLAMA;
    c.tie_embeddings = tied;
    return random_model(&c);
}

/* the odd-width GPT-2 model (with one weight set to `big` when not 0), or the Llama one */
static int write_model(const char *dir, float big, const char *family) {
    lmf_gpt *m = family && strcmp(family, "llama") == 0 ? llama_model(0)
                 : family && strcmp(family, "llama-tied") == 0 ? llama_model(1) : odd_model(big);
    lmf_status s = lmf_hf_save(m, dir, -1);
    lmf_gpt_free(m);
    if (s != LMF_OK) fprintf(stderr, "%s\n", lmf_last_error());
    return s == LMF_OK ? 0 : 1;
}

/* random ids [B, T] to ids_path (int32) and lmforge's logits [B, T, V] to out (float32) */
static int write_logits(const char *model, int B, int T, uint64_t seed, const char *ids_path,
                        const char *out) {
    lmf_gpt *m = NULL;
    if (lmf_model_load_any(model, lmf_kernels_ref(), &m) != LMF_OK ||
        lmf_gpt_reserve(m, B, T, LMF_RESERVE_INFERENCE) != LMF_OK) {
        fprintf(stderr, "%s\n", lmf_last_error());
        lmf_gpt_free(m);
        return 1;
    }
    int V = lmf_gpt_cfg(m)->vocab_size;
    int32_t *ids = malloc((size_t)B * T * sizeof *ids);
    float *logits = malloc((size_t)B * T * V * sizeof *logits);
    lmf_rng r;
    lmf_rng_seed(&r, seed);
    for (int i = 0; i < B * T; i++) ids[i] = (int32_t)(lmf_rng_u64(&r) % (uint64_t)V);
    float loss;
    int rc = lmf_gpt_forward(m, ids, NULL, B, T, 0, 1.0f, &loss) == LMF_OK ? 0 : 1;
    for (int b = 0; rc == 0 && b < B; b++)
        for (int t = 0; t < T; t++) lmf_gpt_logits_at(m, b, t, logits + ((size_t)b * T + t) * V);
    FILE *f1 = fopen(ids_path, "wb"), *f2 = fopen(out, "wb");
    if (rc || !f1 || !f2 || fwrite(ids, sizeof *ids, (size_t)B * T, f1) != (size_t)B * T ||
        fwrite(logits, sizeof *logits, (size_t)B * T * V, f2) != (size_t)B * T * V)
        rc = 1;
    if (f1) fclose(f1);
    if (f2) fclose(f2);
    free(ids);
    free(logits);
    lmf_gpt_free(m);
    return rc;
}

/* ---- refusals ---- */

static void test_export_refusals(void **state) {
    (void)state;
    char dir[512];
    lmf_test_fresh_dir(dir, sizeof dir, "refused");
    lmf_onnx_options o = {LMF_ONNX_FP16, 0, LMF_ONNX_EXTERNAL_DEFAULT, -1};
    lmf_gpt *m = odd_model(1e6f);
    assert_int_equal(lmf_onnx_export(m, dir, &o, NULL), LMF_ERR_ARG);
    assert_non_null(strstr(lmf_last_error(), "h.1.mlp.c_fc.weight[7] is 1e+06, beyond fp16's range"));
    o.dtype = LMF_ONNX_FP32; /* fp32 carries it */
    lmf_onnx_summary sum;
    assert_int_equal(lmf_onnx_export(m, dir, &o, &sum), LMF_OK);
    assert_int_equal(sum.external, 0);
    lmf_gpt_params(m)[lmf_gpt_layout(m)->tensors[1].offset + 3] = NAN;
    assert_int_equal(lmf_onnx_export(m, dir, &o, NULL), LMF_ERR_ARG);
    assert_non_null(strstr(lmf_last_error(), "wpe.weight[3] is nan: the model is broken"));
    lmf_gpt_free(m);
    lmf_onnx_dtype d;
    assert_int_equal(lmf_onnx_dtype_parse("bf16", &d), LMF_ERR_ARG);
    assert_int_equal(lmf_onnx_dtype_parse("fp16", &d), LMF_OK);
    assert_int_equal(d, LMF_ONNX_FP16);
}

/* The GPT-2 graphs pass the check, in both forms and both weight types; the cache form has
 * Hugging Face's input and output names. */
static void test_gpt2_graphs(void **state) {
    (void)state;
    lmf_gpt *m = odd_model(0);
    for (int kv = 0; kv < 2; kv++)
        for (int half = 0; half < 2; half++) {
            lmf_onnx_graph g;
            lmf_onnx_graph_init(&g, half ? LMF_ONNX_T_FLOAT16 : LMF_ONNX_T_FLOAT);
            assert_int_equal(lmf_onnx_build_gpt2(&g, m, kv), LMF_OK);
            assert_int_equal(lmf_onnx_graph_check(&g), LMF_OK);
            assert_int_equal(g.n_inputs, kv ? 3 + 2 * ODD.n_layer : 1);
            assert_int_equal(g.n_outputs, kv ? 1 + 2 * ODD.n_layer : 1);
            assert_string_equal(g.values[g.inputs[0]].name, "input_ids");
            if (kv) {
                assert_string_equal(g.values[g.inputs[1]].name, "attention_mask");
                assert_string_equal(g.values[g.inputs[2]].name, "position_ids");
                assert_string_equal(g.values[g.inputs[3 + 2 * 2 + 1]].name, "past_key_values.2.value");
                assert_string_equal(g.values[g.outputs[1 + 2 * 2 + 1]].name, "present.2.value");
            }
            const lmf_onnx_value *lg = &g.values[g.outputs[0]];
            assert_string_equal(lg->name, "logits");
            assert_int_equal(lg->rank, 3);
            assert_int_equal(lg->dim[2], ODD.vocab_size);
            lmf_onnx_graph_free(&g);
        }
    lmf_gpt_free(m);
}

/* The Llama graphs pass the check in both forms, weight types and classifiers; the cache holds
 * the key/value heads only, under Hugging Face's names; the nodes the family needs are there. */
static void test_llama_graphs(void **state) {
    (void)state;
    for (int tied = 0; tied < 2; tied++) {
        lmf_gpt *m = llama_model(tied);
        for (int kv = 0; kv < 2; kv++)
            for (int half = 0; half < 2; half++) {
                lmf_onnx_graph g;
                lmf_onnx_graph_init(&g, half ? LMF_ONNX_T_FLOAT16 : LMF_ONNX_T_FLOAT);
                assert_int_equal(lmf_onnx_build_llama(&g, m, kv), LMF_OK);
                assert_int_equal(lmf_onnx_graph_check(&g), LMF_OK);
                int L = ODD_LLAMA.n_layer;
                assert_int_equal(g.n_inputs, kv ? 3 + 2 * L : 1);
                assert_int_equal(g.n_outputs, kv ? 1 + 2 * L : 1);
                assert_string_equal(g.values[g.inputs[0]].name, "input_ids");
                if (kv) {
                    assert_string_equal(g.values[g.inputs[2]].name, "position_ids");
                    const lmf_onnx_value *pk = &g.values[g.inputs[3 + 2 * 1 + 1]];
                    assert_string_equal(pk->name, "past_key_values.1.value");
                    assert_int_equal(pk->dim[1], ODD_LLAMA.n_kv_head);
                    assert_int_equal(pk->dim[3], ODD_LLAMA.n_embd / ODD_LLAMA.n_head);
                    const lmf_onnx_value *pr = &g.values[g.outputs[1 + 2 * 1]];
                    assert_string_equal(pr->name, "present.1.key");
                    assert_int_equal(pr->dim[1], ODD_LLAMA.n_kv_head);
                }
                const lmf_onnx_value *lg = &g.values[g.outputs[0]];
                assert_string_equal(lg->name, "logits");
                assert_int_equal(lg->dim[2], ODD_LLAMA.vocab_size);
                int n_expand = 0, n_rm = 0, n_sig = 0, n_cos = 0, n_ln = 0, lm_head = 0;
                for (int i = 0; i < g.n_nodes; i++) {
                    n_expand += strcmp(g.nodes[i].op, "Expand") == 0;
                    n_rm += strcmp(g.nodes[i].op, "ReduceMean") == 0;
                    n_sig += strcmp(g.nodes[i].op, "Sigmoid") == 0;
                    n_cos += strcmp(g.nodes[i].op, "Cos") == 0;
                    n_ln += strcmp(g.nodes[i].op, "LayerNormalization") == 0;
                }
                for (int i = 0; i < g.n_inits; i++)
                    lm_head += strcmp(g.values[g.inits[i].value].name, "lm_head.weight") == 0;
                assert_int_equal(n_expand, 2 * L);  /* keys and values repeated to 4 heads */
                assert_int_equal(n_rm, 2 * L + 1);  /* two RMSNorms a layer and the last */
                assert_int_equal(n_sig, L);
                assert_int_equal(n_cos, 1);         /* the angles, once for every layer */
                assert_int_equal(n_ln, 0);
                assert_int_equal(lm_head, !tied);
                lmf_onnx_graph_free(&g);
            }
        lmf_gpt_free(m);
    }
}

int main(int argc, char **argv) {
    if (argc >= 3 && strcmp(argv[1], "--write-model") == 0) /* DIR [BIG | llama | llama-tied] */
        return write_model(argv[2], argc >= 4 ? strtof(argv[3], NULL) : 0.0f, argc >= 4 ? argv[3] : NULL);
    if (argc == 8 && strcmp(argv[1], "--logits") == 0)
        return write_logits(argv[2], atoi(argv[3]), atoi(argv[4]), strtoull(argv[5], NULL, 10),
                            argv[6], argv[7]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pb_encoding),  cmocka_unit_test(test_graph_check),
        cmocka_unit_test(test_model_bytes),  cmocka_unit_test(test_export_refusals),
        cmocka_unit_test(test_gpt2_graphs),  cmocka_unit_test(test_llama_graphs),
    };
    return cmocka_run_group_tests(tests, lmf_test_tmpdir_setup, lmf_test_tmpdir_teardown);
}

/* The model described once: lmf_gpt_step_work, the layer's products and parameter counts and
 * the gradient buckets are checked against what the model really does, by running its forward
 * and backward over a kernel table that counts every call and reads its shapes. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lmforge/comm.h"
#include "lmforge/ddp.h"
#include "lmforge/kernels.h"
#include "lmforge/model.h"

/* ---- a kernel table that counts: each entry adds to the op it is, then calls the inner table.
 * Shapes come from the arguments the model passes, not from the description under test. ---- */

static const lmf_kernels *g_inner;
static lmf_step_work *g_work; /* where the calls of the current pass are counted */

static void count(lmf_op op, double flops, double values) {
    g_work->op[op].calls += 1;
    g_work->op[op].flops += flops;
    g_work->op[op].values += values;
}

static void c_encoder_forward(float *out, const int32_t *inp, const float *wte, const float *wpe,
                              int B, int T, int C) {
    count(LMF_OP_ENCODER_FORWARD, 0, (double)B * T * C);
    g_inner->encoder_forward(out, inp, wte, wpe, B, T, C);
}
static void c_encoder_backward(float *dwte, float *dwpe, const float *dout, const int32_t *inp,
                               int B, int T, int C) {
    count(LMF_OP_ENCODER_BACKWARD, 0, (double)B * T * C);
    g_inner->encoder_backward(dwte, dwpe, dout, inp, B, T, C);
}
static void c_layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                                const float *w, const float *b, int N, int C) {
    count(LMF_OP_LAYERNORM_FORWARD, 0, (double)N * C);
    g_inner->layernorm_forward(out, mean, rstd, inp, w, b, N, C);
}
static void c_layernorm_backward(float *dinp, float *dw, float *db, const float *dout,
                                 const float *inp, const float *w, const float *mean,
                                 const float *rstd, int N, int C) {
    count(LMF_OP_LAYERNORM_BACKWARD, 0, (double)N * C);
    g_inner->layernorm_backward(dinp, dw, db, dout, inp, w, mean, rstd, N, C);
}
static void c_residual_layernorm_forward(float *res, float *out, float *mean, float *rstd,
                                         const float *a, const float *b, const float *w,
                                         const float *bias, int N, int C) {
    count(LMF_OP_RESIDUAL_LAYERNORM_FORWARD, 0, (double)N * C);
    g_inner->residual_layernorm_forward(res, out, mean, rstd, a, b, w, bias, N, C);
}
static void c_matmul_forward(float *out, const float *inp, const float *w, const float *b, int N,
                             int C, int OC) {
    count(LMF_OP_MATMUL_FORWARD, 2.0 * N * C * OC, (double)N * OC);
    g_inner->matmul_forward(out, inp, w, b, N, C, OC);
}
static void c_matmul_backward(float *dinp, float *dw, float *db, const float *dout,
                              const float *inp, const float *w, int N, int C, int OC) {
    count(LMF_OP_MATMUL_BACKWARD, 4.0 * N * C * OC, (double)N * C);
    g_inner->matmul_backward(dinp, dw, db, dout, inp, w, N, C, OC);
}
static void c_matmul_gelu_forward(float *pre, float *out, const float *inp, const float *w,
                                  const float *b, int N, int C, int OC) {
    count(LMF_OP_MATMUL_FORWARD, 2.0 * N * C * OC, (double)N * OC);
    g_inner->matmul_gelu_forward(pre, out, inp, w, b, N, C, OC);
}
/* causal attention: Q K^T and P V over the (T+1)/2 keys each query sees on average */
static double causal_flops(int B, int T, int C) { return 2.0 * B * C * (double)T * (T + 1); }
static void c_attention_forward(float *out, float *saved, const float *qkv, const int *ds, int B,
                                int T, int C, int NH) {
    count(LMF_OP_ATTENTION_FORWARD, causal_flops(B, T, C), (double)B * T * C);
    g_inner->attention_forward(out, saved, qkv, ds, B, T, C, NH);
}
static void c_attention_backward(float *dqkv, float *scratch, const float *dout, const float *qkv,
                                 const float *saved, const int *ds, int B, int T, int C, int NH) {
    count(LMF_OP_ATTENTION_BACKWARD, 2.5 * causal_flops(B, T, C), (double)B * T * C);
    g_inner->attention_backward(dqkv, scratch, dout, qkv, saved, ds, B, T, C, NH);
}
static void c_gelu_forward(float *out, const float *inp, size_t N) {
    count(LMF_OP_GELU_FORWARD, 0, (double)N);
    g_inner->gelu_forward(out, inp, N);
}
static void c_gelu_bias_backward(float *dinp, float *dbias, const float *inp, const float *dout,
                                 int N, int OC) {
    count(LMF_OP_GELU_BIAS_BACKWARD, 0, (double)N * OC);
    g_inner->gelu_bias_backward(dinp, dbias, inp, dout, N, OC);
}
static void c_classifier(float *losses, float *dx, float *dwte, float *scratch, const float *x,
                         const float *wte, const int32_t *targets, float dloss, int N, int C,
                         int V) {
    count(LMF_OP_CLASSIFIER, (dx ? 3.0 : 1.0) * 2.0 * N * C * V, (double)N * V);
    g_inner->classifier(losses, dx, dwte, scratch, x, wte, targets, dloss, N, C, V);
}

static void c_residual_forward(float *out, const float *a, const float *b, size_t N) {
    count(LMF_OP_RESIDUAL, 0, (double)N);
    g_inner->residual_forward(out, a, b, N);
}
static void c_rmsnorm_forward(float *out, float *rstd, const float *inp, const float *w, float eps,
                              int N, int C) {
    count(LMF_OP_RMSNORM_FORWARD, 0, (double)N * C);
    g_inner->rmsnorm_forward(out, rstd, inp, w, eps, N, C);
}
static void c_rmsnorm_backward(float *dinp, float *dw, const float *dout, const float *inp,
                               const float *w, const float *rstd, int N, int C) {
    count(LMF_OP_RMSNORM_BACKWARD, 0, (double)N * C);
    g_inner->rmsnorm_backward(dinp, dw, dout, inp, w, rstd, N, C);
}
static void c_rope_forward(float *q, float *k, int B, int T, int NH, int NKV, int hs, int pos0,
                           float theta) {
    count(LMF_OP_ROPE, 0, (double)B * T * (NH + (k ? NKV : 0)) * hs);
    g_inner->rope_forward(q, k, B, T, NH, NKV, hs, pos0, theta);
}
static void c_rope_backward(float *q, float *k, int B, int T, int NH, int NKV, int hs, int pos0,
                            float theta) {
    count(LMF_OP_ROPE, 0, (double)B * T * (NH + (k ? NKV : 0)) * hs);
    g_inner->rope_backward(q, k, B, T, NH, NKV, hs, pos0, theta);
}
static void c_swiglu_forward(float *out, const float *g, const float *u, size_t N) {
    count(LMF_OP_SWIGLU_FORWARD, 0, (double)N);
    g_inner->swiglu_forward(out, g, u, N);
}
static void c_swiglu_backward(float *dg, float *du, const float *d, const float *g, const float *u,
                              size_t N) {
    count(LMF_OP_SWIGLU_BACKWARD, 0, (double)N);
    g_inner->swiglu_backward(dg, du, d, g, u, N);
}
static void c_gqa_forward(float *out, float *saved, const float *q, const float *k, const float *v,
                          const int *ds, int B, int T, int NH, int NKV, int hs) {
    count(LMF_OP_ATTENTION_FORWARD, causal_flops(B, T, NH * hs), (double)B * T * NH * hs);
    g_inner->gqa_attention_forward(out, saved, q, k, v, ds, B, T, NH, NKV, hs);
}
static void c_gqa_backward(float *dq, float *dk, float *dv, float *scratch, const float *dout,
                           const float *q, const float *k, const float *v, const float *saved,
                           const int *ds, int B, int T, int NH, int NKV, int hs) {
    count(LMF_OP_ATTENTION_BACKWARD, 2.5 * causal_flops(B, T, NH * hs), (double)B * T * NH * hs);
    g_inner->gqa_attention_backward(dq, dk, dv, scratch, dout, q, k, v, saved, ds, B, T, NH, NKV,
                                   hs);
}

static lmf_kernels counting_table(const lmf_kernels *inner) {
    lmf_kernels t = *inner; /* sizes, adamw, sumsq: not called by the model's passes */
    t.name = "counting";
    t.encoder_forward = c_encoder_forward;
    t.encoder_backward = c_encoder_backward;
    t.layernorm_forward = c_layernorm_forward;
    t.layernorm_backward = c_layernorm_backward;
    t.residual_layernorm_forward = c_residual_layernorm_forward;
    t.matmul_forward = c_matmul_forward;
    t.matmul_backward = c_matmul_backward;
    t.matmul_gelu_forward = c_matmul_gelu_forward;
    t.attention_forward = c_attention_forward;
    t.attention_backward = c_attention_backward;
    t.gelu_forward = c_gelu_forward;
    t.gelu_bias_backward = c_gelu_bias_backward;
    t.classifier = c_classifier;
    t.residual_forward = c_residual_forward;
    t.rmsnorm_forward = c_rmsnorm_forward;
    t.rmsnorm_backward = c_rmsnorm_backward;
    t.rope_forward = c_rope_forward;
    t.rope_backward = c_rope_backward;
    t.swiglu_forward = c_swiglu_forward;
    t.swiglu_backward = c_swiglu_backward;
    t.gqa_attention_forward = c_gqa_forward;
    t.gqa_attention_backward = c_gqa_backward;
    return t;
}

static void expect_same(const char *pass, const lmf_step_work *want, const lmf_step_work *got) {
    for (int op = 0; op < LMF_OP_COUNT; op++) {
        if (op == LMF_OP_ZERO) continue; /* memset: not a kernel call; checked below */
        const lmf_op_work *a = &want->op[op], *b = &got->op[op];
        if (a->calls != b->calls || fabs(a->flops - b->flops) > 1e-9 * fmax(1.0, a->flops) ||
            fabs(a->values - b->values) > 1e-9 * fmax(1.0, a->values))
            fail_msg("%s, %s: described %.0f calls, %.0f flops, %.0f values; the model made %.0f, "
                     "%.0f, %.0f", pass, lmf_op_name((lmf_op)op), a->calls, a->flops, a->values,
                     b->calls, b->flops, b->values);
    }
}

/* one training micro-step of a model of shape c over the counting table, against the
 * description */
static void check_step_work(const lmf_gpt_config *c, int B, int T, lmf_recompute rc,
                            const lmf_kernels *inner) {
    g_inner = inner;
    lmf_kernels table = counting_table(inner);
    lmf_gpt *m = NULL;
    assert_int_equal(lmf_gpt_create(c, &table, &m), LMF_OK);
    lmf_gpt_init_weights(m, 3);
    lmf_gpt_set_recompute(m, rc);
    assert_int_equal(lmf_gpt_reserve(m, B, T, LMF_RESERVE_TRAIN), LMF_OK);
    int32_t *in = malloc((size_t)B * T * sizeof *in), *tg = malloc((size_t)B * T * sizeof *tg);
    for (int i = 0; i < B * T; i++) {
        in[i] = (int32_t)((i * 7 + 1) % c->vocab_size);
        tg[i] = (int32_t)((i * 5 + 2) % c->vocab_size);
    }
    lmf_step_work fw_got, bw_got, fw_want, bw_want;
    memset(&fw_got, 0, sizeof fw_got);
    memset(&bw_got, 0, sizeof bw_got);
    float loss;
    g_work = &fw_got;
    assert_int_equal(lmf_gpt_forward(m, in, tg, B, T, 1, 1.0f, &loss), LMF_OK);
    g_work = &bw_got;
    lmf_gpt_backward(m);
    lmf_gpt_step_work(c, B, T, rc, &fw_want, &bw_want);
    char what[96];
    snprintf(what, sizeof what, "forward (L=%d, C=%d, B=%d, T=%d, recompute %d, %s)", c->n_layer,
             c->n_embd, B, T, (int)rc, inner->name);
    expect_same(what, &fw_want, &fw_got);
    snprintf(what, sizeof what, "backward (L=%d, C=%d, B=%d, T=%d, recompute %d, %s)",
             c->n_layer, c->n_embd, B, T, (int)rc, inner->name);
    expect_same(what, &bw_want, &bw_got);
    /* the only memset of a step: the residual stream's gradient, once per backward */
    assert_true(fw_want.op[LMF_OP_ZERO].calls == 0);
    assert_true(bw_want.op[LMF_OP_ZERO].calls == 1 &&
                bw_want.op[LMF_OP_ZERO].values == (double)B * T * c->n_embd);
    free(in);
    free(tg);
    lmf_gpt_free(m);
}

static void test_step_work_matches_the_model(void **state) {
    (void)state;
    const lmf_gpt_config shapes[] = {{1, 2, 16, 32, 50}, {2, 2, 24, 32, 70}, {3, 4, 32, 64, 97}};
    const lmf_kernels *tables[] = {lmf_kernels_ref(), lmf_kernels_fast()};
    for (int s = 0; s < 3; s++)
        for (int rc = 0; rc < 3; rc++)
            for (int t = 0; t < 2; t++) check_step_work(&shapes[s], 2, 9, (lmf_recompute)rc, tables[t]);
    /* the Llama family: grouped key/value heads (one, some, all), tied and untied */
    const lmf_gpt_config llama[] = {
        {1, 2, 16, 32, 50, LMF_FAMILY_LLAMA, 1, 40, 1e-5f, 10000.0f, 0},
        {2, 4, 32, 32, 70, LMF_FAMILY_LLAMA, 2, 88, 1e-5f, 10000.0f, 1},
        {3, 4, 32, 64, 97, LMF_FAMILY_LLAMA, 4, 24, 1e-6f, 500000.0f, 0}};
    for (int s = 0; s < 3; s++)
        for (int rc = 0; rc < 3; rc++)
            for (int t = 0; t < 2; t++) check_step_work(&llama[s], 2, 9, (lmf_recompute)rc, tables[t]);
}

/* The Llama family's layer against its layout, and its counts against published ones. */
static void test_llama_description(void **state) {
    (void)state;
    const lmf_gpt_config c = {3, 8, 64, 32, 101, LMF_FAMILY_LLAMA, 2, 176, 1e-5f, 10000.0f, 0};
    lmf_param_layout l;
    assert_int_equal(lmf_layout_build(&c, &l), LMF_OK);
    lmf_linear_desc lin[LMF_LAYER_LINEARS];
    int n = lmf_layer_linears(&c, lin);
    assert_int_equal(n, 7);
    for (int i = 0; i < n; i++) {
        char name[96];
        snprintf(name, sizeof name, "model.layers.1.%s.weight", lin[i].name);
        int k = lmf_layout_find(&l, name);
        if (k < 0) fail_msg("no tensor %s in the layout", name);
        /* Hugging Face's nn.Linear shape (out, in), held transposed */
        assert_true(l.tensors[k].shape[0] == lin[i].out && l.tensors[k].shape[1] == lin[i].in);
        assert_int_equal(l.tensors[k].transposed, 1);
        assert_int_equal(lin[i].bias, 0);
    }
    /* k and v are 2 of 8 heads wide (head size 8) */
    assert_int_equal(lin[1].out, 16);
    assert_int_equal(lin[2].out, 16);
    const char *names[] = {"model.embed_tokens.weight", "lm_head.weight", "model.norm.weight",
                           "model.layers.2.input_layernorm.weight",
                           "model.layers.2.post_attention_layernorm.weight"};
    for (int i = 0; i < 5; i++) assert_true(lmf_layout_find(&l, names[i]) >= 0);
    assert_int_equal(l.n_tensors, 2 + 3 * 9 + 1);
    size_t block = l.block_offset[2] - l.block_offset[1];
    assert_int_equal((int64_t)block, lmf_layer_params(&c));
    int64_t split, rep;
    lmf_layer_params_split(&c, &split, &rep);
    assert_int_equal(rep, 2 * 64); /* the two RMSNorm weights */
    int64_t real = 0;
    for (int i = 0; i < l.n_tensors; i++)
        real += l.tensors[i].shape[0] * (l.tensors[i].ndim > 1 ? l.tensors[i].shape[1] : 1);
    assert_int_equal(real, lmf_config_num_params(&c));
    lmf_layout_free(&l);
    /* tied: no lm_head */
    lmf_gpt_config t = c;
    t.tie_embeddings = 1;
    assert_int_equal(lmf_layout_build(&t, &l), LMF_OK);
    assert_true(lmf_layout_find(&l, "lm_head.weight") < 0);
    assert_int_equal(lmf_config_num_params(&t), lmf_config_num_params(&c) - 101 * 64);
    lmf_layout_free(&l);

    /* published parameter counts: Llama 2 7B 6,738,415,616 and Llama 3 8B 8,030,261,248 (the
     * Hugging Face checkpoints' tensors summed) */
    lmf_gpt_config p;
    assert_int_equal(lmf_config_preset("llama2-7b", &p), LMF_OK);
    assert_int_equal(lmf_config_num_params(&p), 6738415616LL);
    assert_int_equal(lmf_config_preset("llama3-8b", &p), LMF_OK);
    assert_int_equal(lmf_config_num_params(&p), 8030261248LL);
    /* training FLOPs: 6 x the products' weights (all parameters but the embedding table and
     * the 2L+1 norm weights) + 12 L C T */
    double prod = 8030261248.0 - 128256.0 * 4096 - (2.0 * 32 + 1) * 4096;
    double want = 6.0 * prod + 12.0 * 32 * 4096 * 8192;
    assert_true(fabs(lmf_config_train_flops_per_token(&p, 8192) - want) <= 1e-9 * want);
    /* every published shape is a valid configuration of the family */
    const char *presets[] = {"llama-tiny", "llama-mini", "llama-small", "llama2-7b", "llama2-13b",
                             "llama2-70b", "llama3-8b", "llama3-70b", "llama3-405b"};
    for (int i = 0; i < 9; i++) {
        assert_int_equal(lmf_config_preset(presets[i], &p), LMF_OK);
        assert_int_equal(p.family, LMF_FAMILY_LLAMA);
        assert_int_equal(lmf_config_validate(&p), LMF_OK);
    }
    /* bad shapes are refused with a message */
    lmf_gpt_config b = c;
    b.n_kv_head = 3;
    assert_int_equal(lmf_config_validate(&b), LMF_ERR_ARG);
    b = c;
    b.rope_theta = 0;
    assert_int_equal(lmf_config_validate(&b), LMF_ERR_ARG);
}

/* the products and parameter counts against the parameter layout the model allocates */
static void test_layer_description_matches_the_layout(void **state) {
    (void)state;
    const lmf_gpt_config c = {3, 4, 40, 32, 101};
    lmf_param_layout l;
    assert_int_equal(lmf_layout_build(&c, &l), LMF_OK);
    lmf_linear_desc lin[LMF_LAYER_LINEARS];
    int n = lmf_layer_linears(&c, lin);
    assert_int_equal(n, 4);
    for (int i = 0; i < n; i++) {
        char name[64];
        snprintf(name, sizeof name, "h.1.%s.weight", lin[i].name);
        int k = lmf_layout_find(&l, name);
        if (k < 0) fail_msg("no tensor %s in the layout", name);
        assert_true(l.tensors[k].shape[0] == lin[i].in && l.tensors[k].shape[1] == lin[i].out);
        snprintf(name, sizeof name, "h.1.%s.bias", lin[i].name);
        assert_int_equal(lmf_layout_find(&l, name) >= 0, lin[i].bias);
    }
    /* a layer block holds exactly the layer's parameters */
    size_t block = l.block_offset[2] - l.block_offset[1];
    assert_int_equal((int64_t)block, lmf_layer_params(&c));
    /* what tensor parallelism keeps whole: the 1-D tensors that are not column-parallel
     * biases, counted from the layout's names and shapes */
    int64_t replicated = 0, split, rep;
    for (int i = 0; i < l.n_tensors; i++) {
        const lmf_tensor_info *t = &l.tensors[i];
        if (t->block != 2 || t->ndim != 1) continue;
        int column_bias = strstr(t->name, "c_attn.bias") || strstr(t->name, "c_fc.bias");
        if (!column_bias) replicated += t->shape[0];
    }
    lmf_layer_params_split(&c, &split, &rep);
    assert_int_equal(rep, replicated);
    assert_int_equal(split + rep, lmf_layer_params(&c));
    /* GPT-2's count: 12 C^2 + 13 C (Radford et al. 2019's shapes) */
    assert_int_equal(lmf_layer_params(&c), 12 * 40 * 40 + 13 * 40);
    /* the model's real parameters: the layout's tensors at their external shapes */
    int64_t real = 0;
    for (int i = 0; i < l.n_tensors; i++)
        real += l.tensors[i].shape[0] * (l.tensors[i].ndim > 1 ? l.tensors[i].shape[1] : 1);
    assert_int_equal(real, lmf_config_num_params(&c));
    lmf_layout_free(&l);
}

/* the gradient buckets: every block once, backward order, block 0 alone, closed only once
 * they reach the target; and the data-parallel engine reduces exactly these */
static void test_buckets(void **state) {
    (void)state;
    const lmf_gpt_config c = {5, 2, 16, 32, 50};
    lmf_param_layout l;
    assert_int_equal(lmf_layout_build(&c, &l), LMF_OK);
    size_t layer = l.block_offset[2] - l.block_offset[1];
    const size_t targets[] = {1, layer, 2 * layer + 1, l.total};
    for (int ti = 0; ti < 4; ti++) {
        int lo[16], hi[16];
        int nb = lmf_layout_buckets(&l, targets[ti], (size_t)1 << 30, lo, hi);
        int next = l.n_blocks - 1;
        for (int i = 0; i < nb; i++) {
            assert_int_equal(hi[i], next);
            assert_true(lo[i] <= hi[i]);
            next = lo[i] - 1;
            size_t size = l.block_offset[hi[i] + 1] - l.block_offset[lo[i]];
            size_t without_last = l.block_offset[hi[i] + 1] - l.block_offset[lo[i] + 1];
            if (lo[i] == 0) assert_int_equal(hi[i], 0);       /* block 0 alone */
            else if (lo[i] > 1) assert_true(without_last < targets[ti]); /* closed at the target */
            (void)size;
        }
        assert_int_equal(next, -1);
        lmf_comm *comm = NULL;
        assert_int_equal(lmf_comm_create("single", &comm), LMF_OK);
        float *params = calloc(l.total, sizeof(float));
        lmf_ddp_config dc = {.zero_stage = 2, .bucket_bytes = targets[ti] * sizeof(float)};
        lmf_ddp *d = NULL;
        assert_int_equal(lmf_ddp_create(comm, &l, &dc, params, &d), LMF_OK);
        assert_int_equal(lmf_ddp_n_buckets(d), nb);
        for (int i = 0; i < nb; i++) {
            int a, b;
            lmf_ddp_bucket_blocks(d, i, &a, &b);
            assert_true(a == lo[i] && b == hi[i]);
        }
        lmf_ddp_free(d);
        free(params);
        lmf_comm_free(comm);
    }
    lmf_layout_free(&l);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_step_work_matches_the_model),
        cmocka_unit_test(test_layer_description_matches_the_layout),
        cmocka_unit_test(test_buckets),
        cmocka_unit_test(test_llama_description),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Pipeline stages inside one process: a model cut into stages (lmf_gpt_create_stage), each
 * stage's output copied into the next one's input and each input gradient back, gives the whole
 * model's losses and gradients over several micro-batches in flight at once (every forward
 * first, then the backwards in another order, so each slot keeps its own activations), for
 * both families, uneven splits and every recomputation mode, with and without document
 * masking, the backward whole or split in its input and weight halves (ZB-H1); the evaluation
 * forward (lmf_gpt_stage_eval) gives the whole model's evaluation loss and leaves the
 * gradients; interleaved stages of two model chunks (views of one model) do the same. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lmforge/kernels.h"
#include "lmforge/model.h"
#include "lmforge/rng.h"

static const lmf_gpt_config gpt2 = {4, 4, 36, 16, 37};
static const lmf_gpt_config llama = {4, 4, 40, 16, 37, LMF_FAMILY_LLAMA, 2, 20, 1e-5f, 10000.0f, 0};
enum { B = 2, S = 6, M = 3, MAX_P = 4 };

/* The whole model's weights, with norms and biases moved away from 1 and 0. */
static lmf_gpt *whole_model(const lmf_gpt_config *cfg, lmf_recompute rc) {
    lmf_gpt *w = NULL;
    assert_int_equal(lmf_gpt_create(cfg, lmf_kernels_ref(), &w), LMF_OK);
    lmf_gpt_init_weights(w, 11);
    const lmf_param_layout *wl = lmf_gpt_layout(w);
    lmf_rng r;
    lmf_rng_seed(&r, 5);
    float *wp = lmf_gpt_params(w);
    for (int i = 0; i < wl->n_tensors; i++) {
        const lmf_tensor_info *t = &wl->tensors[i];
        if (t->ndim == 1)
            for (size_t k = 0; k < t->numel; k++) wp[t->offset + k] += 0.1f * lmf_rng_normal(&r);
    }
    lmf_gpt_set_recompute(w, rc);
    assert_int_equal(lmf_gpt_reserve(w, B, S, LMF_RESERVE_TRAIN), LMF_OK);
    return w;
}

/* M micro-batches of random inputs and targets from the stream `seed` */
static void random_tokens(const lmf_gpt_config *cfg, uint64_t seed, int32_t in[M][B * S],
                          int32_t tg[M][B * S]) {
    lmf_rng r;
    lmf_rng_seed(&r, seed);
    for (int mb = 0; mb < M; mb++)
        for (int i = 0; i < B * S; i++) {
            in[mb][i] = (int32_t)(lmf_rng_u64(&r) % (uint64_t)cfg->vocab_size);
            tg[mb][i] = (int32_t)(lmf_rng_u64(&r) % (uint64_t)cfg->vocab_size);
        }
}

/* stages of split[0..P-1] layers against the whole model, M micro-batches; with eot >= 0 both
 * mask documents at that end-of-text id (each micro-batch holds two boundaries) */
static void check_run(const lmf_gpt_config *cfg, int P, const int *split, lmf_recompute rc,
                      int eot, int halves) {
    lmf_gpt *w = whole_model(cfg, rc);
    const lmf_param_layout *wl = lmf_gpt_layout(w);
    int32_t in[M][B * S], tg[M][B * S];
    random_tokens(cfg, 7, in, tg);
    if (eot >= 0) { /* the mask must change the losses, or this would check nothing */
        float plain[M], masked;
        int changed = 0;
        for (int mb = 0; mb < M; mb++) {
            in[mb][2] = in[mb][S + 3] = eot;
            assert_int_equal(lmf_gpt_forward(w, in[mb], tg[mb], B, S, 1, 0.0f, &plain[mb]), LMF_OK);
        }
        assert_int_equal(lmf_gpt_set_doc_mask(w, eot), LMF_OK);
        for (int mb = 0; mb < M; mb++) {
            assert_int_equal(lmf_gpt_forward(w, in[mb], tg[mb], B, S, 1, 0.0f, &masked), LMF_OK);
            changed += fabsf(masked - plain[mb]) > 1e-6f * fabsf(plain[mb]); /* seen: 1e-5-1e-4 */
        }
        assert_int_equal(changed, M);
    }
    /* the whole model: gradients accumulated over the micro-batches */
    float want[M];
    lmf_gpt_zero_grad(w);
    for (int mb = 0; mb < M; mb++) {
        assert_int_equal(lmf_gpt_forward(w, in[mb], tg[mb], B, S, 1, 1.0f / M, &want[mb]),
                         LMF_OK);
        lmf_gpt_backward(w);
    }

    lmf_gpt *st[MAX_P];
    int l0 = 0;
    for (int p = 0; p < P; p++) {
        assert_int_equal(lmf_gpt_create_stage(cfg, lmf_kernels_ref(), NULL, l0, split[p], &st[p]),
                         LMF_OK);
        l0 += split[p];
        lmf_layout_slice(lmf_gpt_layout(st[p]), wl, lmf_gpt_params(w), lmf_gpt_params(st[p]));
        lmf_gpt_set_recompute(st[p], rc);
        if (eot >= 0) assert_int_equal(lmf_gpt_set_doc_mask(st[p], eot), LMF_OK);
        assert_int_equal(lmf_gpt_reserve_slots(st[p], B, S, LMF_RESERVE_TRAIN, M), LMF_OK);
        lmf_gpt_zero_grad(st[p]);
    }
    assert_int_equal(l0, cfg->n_layer);
    /* every micro-batch's forward through every stage, then the backwards, last micro-batch
     * first, the activations passed as a pipeline would send them */
    size_t n = lmf_gpt_stage_floats(st[0], B, S);
    float *buf = malloc(n * sizeof(float));
    float got[M];
    for (int mb = 0; mb < M; mb++) {
        for (int p = 0; p < P; p++) {
            assert_int_equal(lmf_gpt_stage_forward(st[p], mb, in[mb], tg[mb], p > 0 ? buf : NULL,
                                                   B, S, 1.0f / M, &got[mb]),
                             LMF_OK);
            if (p < P - 1) memcpy(buf, lmf_gpt_stage_output(st[p], mb), n * sizeof(float));
        }
        assert_true(fabsf(got[mb] - want[mb]) <= 1e-5f * fabsf(want[mb]));
    }
    for (int mb = M - 1; mb >= 0; mb--)
        for (int p = P - 1; p >= 0; p--) {
            if (halves)
                assert_int_equal(lmf_gpt_stage_backward_input(st[p], mb, p < P - 1 ? buf : NULL),
                                 LMF_OK);
            else
                lmf_gpt_stage_backward(st[p], mb, p < P - 1 ? buf : NULL);
            if (p > 0) memcpy(buf, lmf_gpt_stage_input_grad(st[p]), n * sizeof(float));
        }
    /* split: every input half first, then the weight halves in the other order, so each waits
     * while the other slots' backwards reuse the scratch and the shared recomputed rows */
    for (int mb = 0; halves && mb < M; mb++)
        for (int p = 0; p < P; p++) lmf_gpt_stage_backward_weights(st[p], mb);
    /* evaluation through the stages, in other slots than the micro-batches': the whole
     * model's evaluation loss, and no gradient touched (checked below) */
    for (int mb = 0; mb < M; mb++) {
        float ev = -1.0f, whole = -2.0f;
        assert_int_equal(lmf_gpt_forward(w, in[mb], tg[mb], B, S, 0, 1.0f, &whole), LMF_OK);
        for (int p = 0; p < P; p++) {
            assert_int_equal(lmf_gpt_stage_eval(st[p], (mb + 1) % M, in[mb], tg[mb],
                                                p > 0 ? buf : NULL, B, S, &ev),
                             LMF_OK);
            if (p < P - 1) memcpy(buf, lmf_gpt_stage_output(st[p], (mb + 1) % M),
                                  n * sizeof(float));
        }
        assert_true(fabsf(ev - whole) <= 1e-5f * fabsf(whole));
    }
    free(buf);

    /* the stages' gradients placed in a whole vector, block 0 summed over the stages that hold
     * it (the first's embedding, the last's classifier), against the whole model's */
    float *sum = calloc(wl->total, sizeof(float)), *one = calloc(wl->total, sizeof(float));
    for (int p = 0; p < P; p++) {
        memset(one, 0, wl->total * sizeof(float));
        lmf_layout_place(lmf_gpt_layout(st[p]), wl, lmf_gpt_grads(st[p]), one);
        for (size_t e = 0; e < wl->total; e++) sum[e] += one[e];
    }
    const float *gw = lmf_gpt_grads(w);
    for (int i = 0; i < wl->n_tensors; i++) {
        const lmf_tensor_info *t = &wl->tensors[i];
        double scale = 1e-12, worst = 0.0;
        for (size_t e = 0; e < t->numel; e++) scale = fmax(scale, fabs(gw[t->offset + e]));
        for (size_t e = 0; e < t->numel; e++)
            worst = fmax(worst, fabs((double)sum[t->offset + e] - gw[t->offset + e]));
        if (!(worst <= 2e-5 * scale)) {
            print_error("%s P=%d %s%s: gradient of %s differs by %.3g (largest %.3g)\n",
                        lmf_family_name(cfg->family), P, lmf_recompute_name(rc),
                        halves ? " split" : "", t->name, worst, scale);
            fail();
        }
    }
    free(sum);
    free(one);
    for (int p = 0; p < P; p++) lmf_gpt_free(st[p]);
    lmf_gpt_free(w);
}

static void check_masked(const lmf_gpt_config *cfg, int P, const int *split, lmf_recompute rc,
                         int eot) {
    check_run(cfg, P, split, rc, eot, 0);
}

static void check(const lmf_gpt_config *cfg, int P, const int *split, lmf_recompute rc) {
    check_masked(cfg, P, split, rc, -1);
}

static void test_gpt2(void **state) {
    (void)state;
    check(&gpt2, 2, (int[]){2, 2}, LMF_RECOMPUTE_NONE);
    check(&gpt2, 3, (int[]){1, 2, 1}, LMF_RECOMPUTE_NONE);
    check(&gpt2, 4, (int[]){1, 1, 1, 1}, LMF_RECOMPUTE_SELECTIVE);
    check(&gpt2, 2, (int[]){3, 1}, LMF_RECOMPUTE_FULL);
    check(&gpt2, 1, (int[]){4}, LMF_RECOMPUTE_NONE);
}

static void test_llama(void **state) {
    (void)state;
    check(&llama, 2, (int[]){2, 2}, LMF_RECOMPUTE_NONE);
    check(&llama, 3, (int[]){2, 1, 1}, LMF_RECOMPUTE_FULL);
    check(&llama, 2, (int[]){1, 3}, LMF_RECOMPUTE_SELECTIVE);
}

/* the backward split in its input and weight halves (ZB-H1): the same gradients, with the
 * weight halves run after every other slot's input half, in every recomputation mode */
static void test_split_backward(void **state) {
    (void)state;
    check_run(&gpt2, 2, (int[]){2, 2}, LMF_RECOMPUTE_NONE, -1, 1);
    check_run(&gpt2, 3, (int[]){1, 2, 1}, LMF_RECOMPUTE_SELECTIVE, 5, 1);
    check_run(&gpt2, 1, (int[]){4}, LMF_RECOMPUTE_FULL, -1, 1);
    check_run(&llama, 2, (int[]){1, 3}, LMF_RECOMPUTE_NONE, -1, 1);
    check_run(&llama, 3, (int[]){2, 1, 1}, LMF_RECOMPUTE_FULL, 7, 1);
    check_run(&llama, 2, (int[]){2, 2}, LMF_RECOMPUTE_SELECTIVE, -1, 1);
}

/* document masking: every stage masks from the ids it is given */
static void test_doc_mask(void **state) {
    (void)state;
    check_masked(&gpt2, 2, (int[]){2, 2}, LMF_RECOMPUTE_NONE, 5);
    check_masked(&gpt2, 3, (int[]){1, 2, 1}, LMF_RECOMPUTE_FULL, 5);
    check_masked(&llama, 2, (int[]){1, 3}, LMF_RECOMPUTE_SELECTIVE, 7);
}

/* A stage's layout keeps every name, and holds only its blocks: the others are empty. */
static void test_layout(void **state) {
    (void)state;
    lmf_param_layout whole, mid, last;
    assert_int_equal(lmf_layout_build(&gpt2, &whole), LMF_OK);
    assert_int_equal(lmf_layout_build_stage(&gpt2, NULL, 1, 2, &mid), LMF_OK);
    assert_int_equal(lmf_layout_build_stage(&gpt2, NULL, 3, 1, &last), LMF_OK);
    assert_int_equal(mid.n_tensors, whole.n_tensors);
    size_t layer = whole.block_offset[2] - whole.block_offset[1];
    assert_int_equal(mid.total, 2 * layer);
    /* the last stage: wte, wpe, its layer and ln_f */
    assert_int_equal(last.total, whole.block_offset[1] + layer +
                                     (whole.block_offset[6] - whole.block_offset[5]));
    for (int b = 0; b < whole.n_blocks; b++) {
        assert_int_equal(lmf_layout_has_block(&mid, b), b == 2 || b == 3);
        assert_int_equal(lmf_layout_has_block(&last, b), b == 0 || b == 4 || b == 5);
        assert_int_equal(lmf_layout_has_block(&whole, b), 1);
    }
    int h0 = lmf_layout_find(&mid, "h.0.attn.c_attn.weight");
    int h1 = lmf_layout_find(&mid, "h.1.attn.c_attn.weight");
    assert_int_equal(mid.tensors[h0].numel, 0);
    assert_int_equal(mid.tensors[h1].numel, whole.tensors[h1].numel);
    lmf_layout_free(&whole);
    lmf_layout_free(&mid);
    lmf_layout_free(&last);
}

/* every block's gradient is handed over exactly once per backward, in backward order, absent
 * blocks included (a data-parallel engine counts them to start its bucket reductions) */
typedef struct ready_log {
    int n, order[16];
} ready_log;
static void note_ready(void *ctx, int b) {
    ready_log *r = ctx;
    if (r->n < 16) r->order[r->n] = b;
    r->n++;
}

static void test_hooks(void **state) {
    (void)state;
    static const int split[3][2] = {{0, 1}, {1, 2}, {3, 1}}; /* first, middle, last of 4 */
    for (int k = 0; k < 3; k++) {
        lmf_gpt *m = NULL;
        assert_int_equal(lmf_gpt_create_stage(&gpt2, lmf_kernels_ref(), NULL, split[k][0],
                                              split[k][1], &m), LMF_OK);
        lmf_gpt_init_weights(m, 1);
        ready_log log = {0, {0}};
        lmf_gpt_hooks h;
        memset(&h, 0, sizeof h);
        h.grads_ready = note_ready;
        h.ctx = &log;
        lmf_gpt_set_hooks(m, &h);
        assert_int_equal(lmf_gpt_reserve_slots(m, B, S, LMF_RESERVE_TRAIN, 1), LMF_OK);
        int32_t ids[B * S] = {0};
        float x[B * S * 36] = {0}, loss;
        assert_int_equal(lmf_gpt_stage_forward(m, 0, ids, ids, x, B, S, 1.0f, &loss), LMF_OK);
        lmf_gpt_stage_backward(m, 0, x);
        assert_int_equal(log.n, gpt2.n_layer + 2);
        for (int i = 0; i < log.n; i++) assert_int_equal(log.order[i], gpt2.n_layer + 1 - i);
        /* split: the input half hands nothing over, the weight half every block in order */
        log.n = 0;
        assert_int_equal(lmf_gpt_stage_forward(m, 0, ids, ids, x, B, S, 1.0f, &loss), LMF_OK);
        assert_int_equal(lmf_gpt_stage_backward_input(m, 0, x), LMF_OK);
        assert_int_equal(log.n, 0);
        lmf_gpt_stage_backward_weights(m, 0);
        assert_int_equal(log.n, gpt2.n_layer + 2);
        for (int i = 0; i < log.n; i++) assert_int_equal(log.order[i], gpt2.n_layer + 1 - i);
        lmf_gpt_free(m);
    }
}

/* Interleaved stages: two stages of two model chunks each over 4 layers (virtual stage c*2 + s
 * is chunk c of stage s, one layer each), chunks 1 views of chunk 0 (lmf_gpt_create_chunks):
 * the micro-batches through the four virtual stages give the whole model's losses and, placed
 * from each stage's one gradient vector, its gradients; each block's gradient is handed over by
 * exactly one chunk of its stage per micro-batch, the gradient buckets never mix two chunks. */
static void check_chunks(const lmf_gpt_config *cfg) {
    lmf_gpt *w = whole_model(cfg, LMF_RECOMPUTE_NONE);
    const lmf_param_layout *wl = lmf_gpt_layout(w);
    int32_t in[M][B * S], tg[M][B * S];
    random_tokens(cfg, 9, in, tg);
    float want[M];
    lmf_gpt_zero_grad(w);
    for (int mb = 0; mb < M; mb++) {
        assert_int_equal(lmf_gpt_forward(w, in[mb], tg[mb], B, S, 1, 1.0f / M, &want[mb]), LMF_OK);
        lmf_gpt_backward(w);
    }
    lmf_gpt *ch[2][2]; /* [stage][chunk] */
    ready_log log[2][2];
    memset(log, 0, sizeof log);
    for (int s = 0; s < 2; s++) {
        int l0[2] = {s, 2 + s}, len[2] = {1, 1};
        assert_int_equal(lmf_gpt_create_chunks(cfg, lmf_kernels_ref(), NULL, 2, l0, len, ch[s]),
                         LMF_OK);
        const lmf_param_layout *l = lmf_gpt_layout(ch[s][0]);
        assert_int_equal(l->n_ranges, 2);
        assert_int_equal(l->layers, 2);
        for (int b = 1; b <= cfg->n_layer; b++)
            assert_int_equal(lmf_layout_has_block(l, b), (b - 1) % 2 == s);
        assert_int_equal(lmf_layout_has_block(l, 0), 1);           /* embeddings or classifier */
        assert_int_equal(lmf_layout_has_block(l, cfg->n_layer + 1), s == 1);
        int lo[16], hi[16], nb = lmf_layout_buckets(l, (size_t)1 << 30, (size_t)1 << 30, lo, hi);
        for (int k = 0; k < nb; k++)
            for (int b = lo[k]; b <= hi[k]; b++)
                assert_int_equal(lmf_layout_block_chunk(l, b), lmf_layout_block_chunk(l, lo[k]));
        lmf_layout_slice(l, wl, lmf_gpt_params(w), lmf_gpt_params(ch[s][0]));
        for (int c = 0; c < 2; c++) {
            assert_ptr_equal(lmf_gpt_params(ch[s][c]), lmf_gpt_params(ch[s][0]));
            lmf_gpt_hooks h;
            memset(&h, 0, sizeof h);
            h.grads_ready = note_ready;
            h.ctx = &log[s][c];
            lmf_gpt_set_hooks(ch[s][c], &h);
            assert_int_equal(lmf_gpt_reserve_slots(ch[s][c], B, S, LMF_RESERVE_TRAIN, M), LMF_OK);
        }
        assert_ptr_equal(lmf_gpt_grads(ch[s][1]), lmf_gpt_grads(ch[s][0]));
        lmf_gpt_zero_grad(ch[s][0]);
    }
    size_t n = lmf_gpt_stage_floats(ch[0][0], B, S);
    float *buf = malloc(n * sizeof(float)), got[M];
    for (int mb = 0; mb < M; mb++) {
        for (int v = 0; v < 4; v++) {
            lmf_gpt *m = ch[v % 2][v / 2];
            assert_int_equal(lmf_gpt_stage_forward(m, mb, in[mb], tg[mb], v > 0 ? buf : NULL, B, S,
                                                   1.0f / M, &got[mb]), LMF_OK);
            if (v < 3) memcpy(buf, lmf_gpt_stage_output(m, mb), n * sizeof(float));
        }
        assert_true(fabsf(got[mb] - want[mb]) <= 1e-5f * fabsf(want[mb]));
    }
    for (int mb = 0; mb < M; mb++)
        for (int v = 3; v >= 0; v--) {
            lmf_gpt *m = ch[v % 2][v / 2];
            lmf_gpt_stage_backward(m, mb, v < 3 ? buf : NULL);
            if (v > 0) memcpy(buf, lmf_gpt_stage_input_grad(m), n * sizeof(float));
        }
    free(buf);
    /* every block once per micro-batch over a stage's chunks, from the chunk that covers it */
    for (int s = 0; s < 2; s++) {
        const lmf_param_layout *l = lmf_gpt_layout(ch[s][0]);
        assert_int_equal(log[s][0].n + log[s][1].n, M * (cfg->n_layer + 2));
        for (int c = 0; c < 2; c++)
            for (int i = 0; i < log[s][c].n && i < 16; i++)
                assert_int_equal(lmf_layout_block_chunk(l, log[s][c].order[i]), c);
    }
    float *sum = calloc(wl->total, sizeof(float)), *one = calloc(wl->total, sizeof(float));
    for (int s = 0; s < 2; s++) {
        memset(one, 0, wl->total * sizeof(float));
        lmf_layout_place(lmf_gpt_layout(ch[s][0]), wl, lmf_gpt_grads(ch[s][0]), one);
        for (size_t e = 0; e < wl->total; e++) sum[e] += one[e];
    }
    const float *gw = lmf_gpt_grads(w);
    double scale = 1e-12, worst = 0.0;
    for (size_t e = 0; e < wl->total; e++) scale = fmax(scale, fabs(gw[e]));
    for (size_t e = 0; e < wl->total; e++) worst = fmax(worst, fabs((double)sum[e] - gw[e]));
    if (!(worst <= 2e-5 * scale)) {
        print_error("%s chunks: gradients differ by %.3g (largest %.3g)\n",
                    lmf_family_name(cfg->family), worst, scale);
        fail();
    }
    free(sum);
    free(one);
    for (int s = 0; s < 2; s++) {
        lmf_gpt_free(ch[s][1]);
        lmf_gpt_free(ch[s][0]);
    }
    lmf_gpt_free(w);
}

static void test_chunks(void **state) {
    (void)state;
    check_chunks(&gpt2);
    check_chunks(&llama);
    /* ranges out of order, overlapping or empty are refused */
    lmf_gpt *m[2] = {NULL, NULL};
    int l0[2] = {2, 0}, len[2] = {1, 1};
    assert_int_equal(lmf_gpt_create_chunks(&gpt2, lmf_kernels_ref(), NULL, 2, l0, len, m),
                     LMF_ERR_ARG);
    l0[0] = 0, l0[1] = 1, len[0] = 2;
    assert_int_equal(lmf_gpt_create_chunks(&gpt2, lmf_kernels_ref(), NULL, 2, l0, len, m),
                     LMF_ERR_ARG);
    len[0] = 1, len[1] = 0;
    assert_int_equal(lmf_gpt_create_chunks(&gpt2, lmf_kernels_ref(), NULL, 2, l0, len, m),
                     LMF_ERR_ARG);
    assert_null(m[0]);
}

/* empty or out-of-range stages and slot counts are refused with the range named */
static void test_refused(void **state) {
    (void)state;
    lmf_gpt *m = NULL;
    assert_int_equal(lmf_gpt_create_stage(&gpt2, lmf_kernels_ref(), NULL, 2, 3, &m), LMF_ERR_ARG);
    assert_non_null(strstr(lmf_last_error(), "[2, 5)"));
    assert_int_equal(lmf_gpt_create_stage(&gpt2, lmf_kernels_ref(), NULL, 1, 0, &m), LMF_ERR_ARG);
    assert_int_equal(lmf_gpt_create_stage(&gpt2, lmf_kernels_ref(), NULL, 1, 2, &m), LMF_OK);
    assert_int_equal(lmf_gpt_reserve_slots(m, B, S, LMF_RESERVE_TRAIN, 0), LMF_ERR_ARG);
    assert_int_equal(lmf_gpt_reserve_slots(m, B, S, LMF_RESERVE_TRAIN, 2), LMF_OK);
    float x[B * S * 36] = {0}, loss;
    assert_int_equal(lmf_gpt_stage_forward(m, 2, NULL, NULL, x, B, S, 1.0f, &loss), LMF_ERR_STATE);
    assert_int_equal(lmf_gpt_stage_eval(m, 2, NULL, NULL, x, B, S, &loss), LMF_ERR_STATE);
    assert_int_equal(lmf_gpt_stage_eval(m, 0, NULL, NULL, NULL, B, S, &loss), LMF_ERR_ARG);
    /* a middle stage needs the previous stage's output */
    assert_int_equal(lmf_gpt_stage_forward(m, 0, NULL, NULL, NULL, B, S, 1.0f, &loss), LMF_ERR_ARG);
    assert_int_equal(lmf_gpt_stage_forward(m, 1, NULL, NULL, x, B, S, 1.0f, &loss), LMF_OK);
    assert_true(loss == 0.0f);
    /* document masking needs the ids on a middle stage too */
    assert_int_equal(lmf_gpt_set_doc_mask(m, 3), LMF_OK);
    assert_int_equal(lmf_gpt_stage_forward(m, 1, NULL, NULL, x, B, S, 1.0f, &loss), LMF_ERR_ARG);
    assert_non_null(strstr(lmf_last_error(), "token ids"));
    lmf_gpt_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gpt2),
        cmocka_unit_test(test_llama),
        cmocka_unit_test(test_split_backward),
        cmocka_unit_test(test_doc_mask),
        cmocka_unit_test(test_layout),
        cmocka_unit_test(test_hooks),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_chunks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

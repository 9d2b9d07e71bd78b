/* Tensor parallelism inside one process: T threads each run one rank's slice of a model
 * (lmf_gpt_create_tp) with the group's collectives done in shared memory, and together give
 * the whole model's loss and gradients: every split (column- and row-parallel products,
 * grouped key/value heads split or shared, vocabulary-parallel embedding and loss) and
 * sequence parallelism, forward and backward, for both families, with odd sizes; and with
 * document masking. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lmforge/kernels.h"
#include "lmforge/model.h"
#include "lmforge/rng.h"

/* 4 heads of 9, feed-forward 144 (GPT-2); 4 heads of 10, feed-forward 20 (Llama, 2 key/value heads: split at T = 2,
 * shared at T = 4), vocabulary 37 padded to 64 */
static const lmf_gpt_config gpt2 = {2, 4, 36, 16, 37};
static const lmf_gpt_config llama = {2, 4, 40, 16, 37, LMF_FAMILY_LLAMA, 2, 20, 1e-5f, 10000.0f, 0};
enum { B = 2, S = 6, MAX_T = 4 };

/* ---- the group: collectives over the threads through shared pointers ---- */
typedef struct group {
    int size;
    pthread_barrier_t bar;
    float *slot[MAX_T];
} group;

typedef struct rank_ctx {
    group *g;
    int rank;
} rank_ctx;

static void collective(void *ctx, lmf_tp_op op, float *buf, float *out, size_t n) {
    rank_ctx *c = ctx;
    group *g = c->g;
    int T = g->size, me = c->rank;
    g->slot[me] = buf;
    pthread_barrier_wait(&g->bar);
    float *tmp = NULL;
    if (op == LMF_TP_SUM || op == LMF_TP_MAX) {
        tmp = malloc(n * sizeof(float));
        for (size_t j = 0; j < n; j++) {
            float v = g->slot[0][j];
            for (int r = 1; r < T; r++)
                v = op == LMF_TP_SUM ? v + g->slot[r][j] : fmaxf(v, g->slot[r][j]);
            tmp[j] = v;
        }
    } else if (op == LMF_TP_REDUCE_SCATTER) {
        tmp = malloc(n * sizeof(float));
        for (size_t j = 0; j < n; j++) {
            float v = 0.0f;
            for (int r = 0; r < T; r++) v += g->slot[r][(size_t)me * n + j];
            tmp[j] = v;
        }
    } else { /* gather: the others' parts from their buffers */
        tmp = malloc((size_t)T * n * sizeof(float));
        for (int r = 0; r < T; r++)
            memcpy(tmp + (size_t)r * n, g->slot[r] + (size_t)r * n, n * sizeof(float));
    }
    pthread_barrier_wait(&g->bar); /* everyone has read every buffer */
    if (op == LMF_TP_REDUCE_SCATTER) memcpy(out, tmp, n * sizeof(float));
    else memcpy(buf, tmp, (op == LMF_TP_GATHER ? (size_t)T : 1) * n * sizeof(float));
    free(tmp);
    pthread_barrier_wait(&g->bar);
}

/* ---- one rank ---- */
typedef struct job {
    const lmf_gpt_config *cfg;
    const float *whole;            /* the whole model's weights */
    const lmf_param_layout *wl;
    const int32_t *in, *tg;
    lmf_tp_config tp;
    lmf_recompute rc;
    int eot;                       /* document masking's end-of-text id, or -1 */
    rank_ctx ctx;
    float loss;
    lmf_gpt *m;                    /* kept for its gradients */
    lmf_status status;
} job;

static void *run_rank(void *arg) {
    job *j = arg;
    lmf_status s = lmf_gpt_create_tp(j->cfg, lmf_kernels_ref(), &j->tp, &j->m);
    if (s == LMF_OK) {
        lmf_layout_slice(lmf_gpt_layout(j->m), j->wl, j->whole, lmf_gpt_params(j->m));
        lmf_gpt_hooks h;
        memset(&h, 0, sizeof h);
        h.tp_collective = collective;
        h.tp_ctx = &j->ctx;
        lmf_gpt_set_hooks(j->m, &h);
        lmf_gpt_set_recompute(j->m, j->rc);
        s = lmf_gpt_set_doc_mask(j->m, j->eot);
        if (s == LMF_OK) s = lmf_gpt_reserve(j->m, B, S, LMF_RESERVE_TRAIN);
    }
    /* every rank must reach the same collectives: a failure here would hang the others, so
     * the test asserts on the status only after joining */
    if (s == LMF_OK) s = lmf_gpt_forward(j->m, j->in, j->tg, B, S, 1, 1.0f, &j->loss);
    if (s == LMF_OK) lmf_gpt_backward(j->m);
    j->status = s;
    return NULL;
}

static void check(const lmf_gpt_config *cfg, int T, int sp, lmf_recompute rc, int eot) {
    /* the whole model, its loss and gradients */
    lmf_gpt *w = NULL;
    assert_int_equal(lmf_gpt_create(cfg, lmf_kernels_ref(), &w), LMF_OK);
    lmf_gpt_init_weights(w, 9);
    const lmf_param_layout *wl = lmf_gpt_layout(w);
    lmf_rng r;
    lmf_rng_seed(&r, 3);
    float *wp = lmf_gpt_params(w);
    for (int i = 0; i < wl->n_tensors; i++) { /* norms and biases away from 1 and 0 too */
        const lmf_tensor_info *t = &wl->tensors[i];
        if (t->ndim == 1)
            for (size_t k = 0; k < t->numel; k++) wp[t->offset + k] += 0.1f * lmf_rng_normal(&r);
    }
    int32_t in[B * S], tg[B * S];
    for (int i = 0; i < B * S; i++) {
        in[i] = (int32_t)(lmf_rng_u64(&r) % (uint64_t)cfg->vocab_size);
        tg[i] = (int32_t)(lmf_rng_u64(&r) % (uint64_t)cfg->vocab_size);
    }
    in[0] = cfg->vocab_size - 1; /* the last real token: the last rank's rows */
    if (eot >= 0) in[2] = in[S + 1] = in[S + 2] = eot; /* (and wherever the ids drew it) */
    lmf_gpt_set_recompute(w, rc);
    assert_int_equal(lmf_gpt_set_doc_mask(w, eot), LMF_OK);
    assert_int_equal(lmf_gpt_reserve(w, B, S, LMF_RESERVE_TRAIN), LMF_OK);
    lmf_gpt_zero_grad(w);
    float loss;
    assert_int_equal(lmf_gpt_forward(w, in, tg, B, S, 1, 1.0f, &loss), LMF_OK);
    lmf_gpt_backward(w);

    group g;
    g.size = T;
    pthread_barrier_init(&g.bar, NULL, (unsigned)T);
    job jobs[MAX_T];
    pthread_t th[MAX_T];
    for (int k = 0; k < T; k++) {
        jobs[k] = (job){cfg, wp, wl, in, tg, {T, k, sp}, rc, eot, {&g, k}, 0.0f, NULL, LMF_OK};
        assert_int_equal(pthread_create(&th[k], NULL, run_rank, &jobs[k]), 0);
    }
    for (int k = 0; k < T; k++) pthread_join(th[k], NULL);
    pthread_barrier_destroy(&g.bar);
    for (int k = 0; k < T; k++) assert_int_equal(jobs[k].status, LMF_OK);

    /* every rank's loss is the whole model's */
    for (int k = 0; k < T; k++) assert_true(fabsf(jobs[k].loss - loss) <= 1e-5f * fabsf(loss));
    /* gradients: each tensor's slices made whole as the engine does (a replicated tensor's
     * averaged or, partial, summed over the ranks holding the same slice), put in place and
     * compared with the whole model's, tensor by tensor */
    const float *gw = lmf_gpt_grads(w);
    float *got = calloc(wl->total, sizeof(float)), *part = NULL;
    for (int i = 0; i < wl->n_tensors; i++) {
        const lmf_param_layout *l0 = lmf_gpt_layout(jobs[0].m);
        size_t n = l0->tensors[i].numel;
        free(part);
        part = calloc(l0->total, sizeof(float));
        for (int k = 0; k < T; k++) {
            const lmf_param_layout *lk = lmf_gpt_layout(jobs[k].m);
            const lmf_tensor_info *t = &lk->tensors[i];
            memset(part, 0, lk->total * sizeof(float));
            for (int q = 0; q < T; q++) { /* the ranks holding rank k's slice */
                const lmf_tensor_info *u = &lmf_gpt_layout(jobs[q].m)->tensors[i];
                if (u->row0 != t->row0 || u->col0 != t->col0) continue;
                const float *gq = lmf_gpt_grads(jobs[q].m) + u->offset;
                float f = t->tp_reduce == LMF_TP_REDUCE_MEAN ? 1.0f / (float)T : 1.0f;
                for (size_t e = 0; e < n; e++) part[t->offset + e] += f * gq[e];
            }
            /* place this tensor only: a layout with just it */
            lmf_param_layout one = *lk, wone = *wl;
            one.tensors = (lmf_tensor_info *)t;
            one.n_tensors = 1;
            wone.tensors = &wl->tensors[i];
            wone.n_tensors = 1;
            lmf_layout_place(&one, &wone, part, got);
        }
        const lmf_tensor_info *wt = &wl->tensors[i];
        double scale = 1e-12, worst = 0.0;
        for (size_t e = 0; e < wt->numel; e++) scale = fmax(scale, fabs(gw[wt->offset + e]));
        for (size_t e = 0; e < wt->numel; e++)
            worst = fmax(worst, fabs((double)got[wt->offset + e] - gw[wt->offset + e]));
        if (!(worst <= 2e-5 * scale)) {
            print_error("%s T=%d sp=%d %s: gradient of %s differs by %.3g (largest %.3g)\n",
                        lmf_family_name(cfg->family), T, sp, lmf_recompute_name(rc), wt->name,
                        worst, scale);
            fail();
        }
    }
    free(part);
    free(got);
    for (int k = 0; k < T; k++) lmf_gpt_free(jobs[k].m);
    lmf_gpt_free(w);
}

static void test_gpt2(void **state) {
    (void)state;
    for (int T = 2; T <= 4; T *= 2)
        for (int sp = 0; sp <= 1; sp++) check(&gpt2, T, sp, LMF_RECOMPUTE_NONE, -1);
    check(&gpt2, 2, 1, LMF_RECOMPUTE_FULL, -1);
    check(&gpt2, 4, 1, LMF_RECOMPUTE_NONE, 5); /* document masking */
}

static void test_llama(void **state) {
    (void)state;
    for (int T = 2; T <= 4; T *= 2)
        for (int sp = 0; sp <= 1; sp++) check(&llama, T, sp, LMF_RECOMPUTE_NONE, -1);
    check(&llama, 4, 1, LMF_RECOMPUTE_SELECTIVE, -1);
    check(&llama, 2, 0, LMF_RECOMPUTE_FULL, 5); /* document masking */
}

/* shapes that do not divide are refused with the value named */
static void test_refused(void **state) {
    (void)state;
    lmf_gpt *m = NULL;
    lmf_tp_config tp = {3, 0, 0};
    assert_int_equal(lmf_gpt_create_tp(&gpt2, lmf_kernels_ref(), &tp, &m), LMF_ERR_ARG);
    assert_non_null(strstr(lmf_last_error(), "4 attention heads"));
    lmf_gpt_config odd = llama;
    odd.n_embd = 48;
    odd.n_head = 6;
    odd.n_kv_head = 3; /* 3 key/value heads over 2 ranks: neither divides the other */
    tp.size = 2;
    assert_int_equal(lmf_gpt_create_tp(&odd, lmf_kernels_ref(), &tp, &m), LMF_ERR_ARG);
    assert_non_null(strstr(lmf_last_error(), "3 key/value heads"));
    tp = (lmf_tp_config){4, 0, 1}; /* sequence parallel: 1 x 5 positions over 4 ranks */
    assert_int_equal(lmf_gpt_create_tp(&gpt2, lmf_kernels_ref(), &tp, &m), LMF_OK);
    assert_int_equal(lmf_gpt_reserve(m, 1, 5, LMF_RESERVE_TRAIN), LMF_ERR_ARG);
    assert_non_null(strstr(lmf_last_error(), "divisible by 4"));
    lmf_gpt_free(m);
}

/* Each rank's slices put back into a range of the whole vector (what a checkpoint writes):
 * with whole[i] = i sliced over the ranks, every range of the whole comes back exactly, for
 * ranges that start and end inside tensors, span several, or hold one float. */
static void check_place_range(const lmf_gpt_config *cfg, int T, int sp) {
    lmf_param_layout wl, pl[4];
    assert_int_equal(lmf_layout_build(cfg, &wl), LMF_OK);
    float *whole = malloc(wl.total * sizeof(float)), *out = malloc(wl.total * sizeof(float));
    float *part[4];
    assert_true(whole && out && wl.total < (1u << 24)); /* indices exact in a float */
    for (size_t i = 0; i < wl.total; i++) whole[i] = (float)i;
    for (int r = 0; r < T; r++) {
        lmf_tp_config tp = {T, r, sp};
        assert_int_equal(lmf_layout_build_tp(cfg, &tp, &pl[r]), LMF_OK);
        part[r] = malloc(pl[r].total * sizeof(float));
        lmf_layout_slice(&pl[r], &wl, whole, part[r]);
    }
    size_t W = wl.total, cuts[][2] = {{0, W}, {0, 1}, {W - 1, W}, {7, W / 3}, {W / 3, 2 * W / 3},
                                      {2 * W / 3 + 5, W - 3}, {W / 2, W / 2 + 1}};
    for (size_t c = 0; c < sizeof cuts / sizeof cuts[0]; c++) {
        lmf_range rg = {cuts[c][0], cuts[c][1]};
        for (size_t i = 0; i < lmf_range_len(rg); i++) out[i] = -1.0f;
        for (int r = 0; r < T; r++) lmf_layout_place_range(&pl[r], &wl, part[r], rg, out);
        for (size_t i = 0; i < lmf_range_len(rg); i++)
            if (out[i] != (float)(rg.begin + i)) {
                print_error("%s T=%d sp=%d range [%zu, %zu): float %zu is %g\n",
                            lmf_family_name(cfg->family), T, sp, rg.begin, rg.end, rg.begin + i,
                            (double)out[i]);
                fail();
            }
    }
    for (int r = 0; r < T; r++) {
        lmf_layout_free(&pl[r]);
        free(part[r]);
    }
    lmf_layout_free(&wl);
    free(whole);
    free(out);
}

static void test_place_range(void **state) {
    (void)state;
    for (int T = 2; T <= 4; T *= 2)
        for (int sp = 0; sp <= 1; sp++) {
            check_place_range(&gpt2, T, sp);
            check_place_range(&llama, T, sp);
        }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_place_range),
        cmocka_unit_test(test_gpt2),
        cmocka_unit_test(test_llama),
        cmocka_unit_test(test_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

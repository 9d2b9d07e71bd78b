/* Vocabulary-parallel kernels split over 1-4 ranks give what the whole-table kernels give. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lib/test_util.h"
#include "lmforge/kernels.h"
#include "lmforge/threads.h"

/* What a tensor-parallel engine does with the kernels, on one process: the padded table wte
 * [Vp, C] (Vp a multiple of the rank count T, real vocabulary V < Vp) split into T row ranges,
 * rank r holding rows [r Vp/T, (r+1) Vp/T). The classifier's parts are the real rows only:
 * Vr = min(V, (r+1) Vp/T) - r Vp/T, clamped at 0, so a rank may hold none. Every rank's
 * stats, the combination, every rank's backward and the sum of the ranks' dx must give the
 * fused classifier's losses, dx and dwte; the ranks' embeddings summed must give
 * encoder_forward, their gradients encoder_backward's.
 *
 * Tolerance: max |split - whole| <= 1e-5 max |whole| per output. The two differ only in the
 * order of float sums (the softmax sum split over ranks and combined in double, dx summed
 * over ranks); worst seen 7.8e-7 (dx; LMF_VP_VERBOSE=1 prints them). The embedding is exact: each
 * element is one table entry plus zeros. */
#define SPLIT_TOL 1e-5

static void close_to_whole(const char *what, const float *split, const float *whole, size_t n) {
    lmf_test_close_rel(what, split, whole, n, SPLIT_TOL, 1e-30, getenv("LMF_VP_VERBOSE") != NULL);
}

/* rank r of T: first row of its range and its count of real rows */
static void part_of(int r, int T, int V, int Vp, int *vbegin, int *Vr) {
    int lo = r * (Vp / T), hi = (r + 1) * (Vp / T);
    *vbegin = lo;
    *Vr = (hi < V ? hi : V) - lo;
    if (*Vr < 0) *Vr = 0;
}

static void check_classifier_split(const lmf_kernels *k, int ranks, int N, int C, int V, int Vp) {
    lmf_test_rng_seed((uint64_t)ranks * 1009u + (uint64_t)N);
    size_t nx = (size_t)N * C, nw = (size_t)Vp * C;
    float *x = lmf_test_fbuf(nx, 1), *wte = lmf_test_fbuf(nw, 1);
    for (size_t i = (size_t)V * C; i < nw; i++) wte[i] = NAN; /* padded rows never count */
    int32_t *tg = malloc((size_t)N * sizeof *tg);
    for (int n = 0; n < N; n++) tg[n] = (int32_t)(lmf_test_uniform() * V) % V;
    tg[0] = V - 1, tg[N - 1] = 0;
    const float dloss = 1.0f / (float)N;

    /* the whole table: the fused classifier */
    float *losses_w = lmf_test_fbuf(N, 1), *dx_w = lmf_test_fbuf(nx, 1);
    float *dwte_w = calloc(nw, sizeof(float)), *sc = lmf_test_fbuf(k->classifier_scratch_floats(N, V), 1);
    assert_non_null(dwte_w);
    k->classifier(losses_w, dx_w, dwte_w, sc, x, wte, tg, dloss, N, C, V);
    free(sc);

    /* the parts: each rank's rows of one dwte buffer, so the padded rows stay zero */
    float *stats = lmf_test_fbuf((size_t)ranks * N * 3, 1), *losses = lmf_test_fbuf(N, 1);
    float *lse = lmf_test_fbuf(N, 1), *dx = calloc(nx, sizeof(float)), *dx_r = lmf_test_fbuf(nx, 1);
    float *dwte = calloc(nw, sizeof(float));
    assert_non_null(dx);
    assert_non_null(dwte);
    int held = 0;
    float **kept = calloc((size_t)ranks, sizeof *kept); /* each part's logits */
    assert_non_null(kept);
    for (int r = 0; r < ranks; r++) {
        int vb, Vr;
        part_of(r, ranks, V, Vp, &vb, &Vr);
        held += Vr;
        kept[r] = lmf_test_fbuf(k->classifier_vp_scratch_floats(N, Vr) + 1, 1);
        k->classifier_vp_stats(stats + (size_t)r * N * 3, kept[r], x, wte + (size_t)vb * C, tg,
                               vb, N, C, Vr);
    }
    assert_int_equal(held, V);
    lmf_classifier_vp_combine(losses, lse, stats, ranks, N);
    for (int r = 0; r < ranks; r++) {
        int vb, Vr;
        part_of(r, ranks, V, Vp, &vb, &Vr);
        k->classifier_vp_backward(dx_r, dwte + (size_t)vb * C, kept[r], x,
                                  wte + (size_t)vb * C, tg, lse, dloss, vb, N, C, Vr);
        for (size_t i = 0; i < nx; i++) dx[i] += dx_r[i]; /* the engine's all-reduce */
        free(kept[r]);
    }
    free(kept);
    close_to_whole("classifier losses", losses, losses_w, N);
    close_to_whole("classifier dx", dx, dx_w, nx);
    close_to_whole("classifier dwte", dwte, dwte_w, nw);
    for (size_t i = (size_t)V * C; i < nw; i++) assert_true(dwte[i] == 0.0f);
    free(x); free(wte); free(tg); free(losses_w); free(dx_w); free(dwte_w); free(stats);
    free(losses); free(lse); free(dx); free(dx_r); free(dwte);
}

/* The embedding's parts are whole ranges of Vp/T rows (padded ones too); wpe on rank 0 only.
 * Sums of one table entry and zeros are exact, so the comparison is bit for bit. */
static void check_encoder_split(const lmf_kernels *k, int ranks, int B, int T, int C, int V,
                                int Vp, int with_wpe) {
    lmf_test_rng_seed((uint64_t)ranks * 17u + (uint64_t)with_wpe);
    size_t no = (size_t)B * T * C, nw = (size_t)Vp * C;
    int32_t *inp = malloc((size_t)B * T * sizeof *inp);
    for (int i = 0; i < B * T; i++) inp[i] = (int32_t)(lmf_test_uniform() * V) % V;
    inp[0] = V - 1;
    float *wte = lmf_test_fbuf(nw, 1), *wpe = with_wpe ? lmf_test_fbuf((size_t)T * C, 1) : NULL;
    float *dout = lmf_test_fbuf(no, 1), *out_w = lmf_test_fbuf(no, 1);
    float *dwte_w = lmf_test_fbuf(nw, 1), *dwpe_w = lmf_test_fbuf((size_t)T * C, 1);
    float *dwte = lmf_test_fdup(dwte_w, nw), *dwpe = lmf_test_fdup(dwpe_w, (size_t)T * C);
    k->encoder_forward(out_w, inp, wte, wpe, B, T, C);
    k->encoder_backward(dwte_w, with_wpe ? dwpe_w : NULL, dout, inp, B, T, C);

    float *out = calloc(no, sizeof(float)), *out_r = lmf_test_fbuf(no, 1);
    assert_non_null(out);
    const int rows = Vp / ranks;
    for (int r = 0; r < ranks; r++) {
        const float *pe = r == 0 ? wpe : NULL;
        k->encoder_vp_forward(out_r, inp, wte + (size_t)r * rows * C, pe, r * rows, rows, B, T, C);
        for (size_t i = 0; i < no; i++) out[i] += out_r[i];
        k->encoder_vp_backward(dwte + (size_t)r * rows * C, r == 0 && with_wpe ? dwpe : NULL,
                               dout, inp, r * rows, rows, B, T, C);
    }
    assert_memory_equal(out, out_w, no * sizeof(float));
    assert_memory_equal(dwte, dwte_w, nw * sizeof(float));
    assert_memory_equal(dwpe, dwpe_w, (size_t)T * C * sizeof(float));
    free(inp); free(wte); free(wpe); free(dout); free(out_w); free(dwte_w); free(dwpe_w);
    free(dwte); free(dwpe); free(out); free(out_r);
}

static void test_split_equals_whole(void **state) {
    (void)state;
    const lmf_kernels *tables[2] = {lmf_kernels_ref(), lmf_kernels_fast()};
    lmf_threads_set(2);
    for (int t = 0; t < 2; t++) {
        for (int ranks = 1; ranks <= 4; ranks++) {
            /* Vp = 192: with 4 ranks the last holds no real row (V = 130), with 3 only 2 */
            check_classifier_split(tables[t], ranks, 7, 45, 130, 192);
            check_classifier_split(tables[t], ranks, 301, 45, 130, 192); /* 2 fast chunks */
            check_classifier_split(tables[t], ranks, 5, 8, 181, 192);
            check_encoder_split(tables[t], ranks, 3, 7, 45, 130, 192, 1);
            check_encoder_split(tables[t], ranks, 3, 7, 45, 130, 192, 0); /* Llama: no wpe */
        }
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split_equals_whole),
    };
    return cmocka_run_group_tests_name("kernels_vocab_parallel", tests, NULL, NULL);
}

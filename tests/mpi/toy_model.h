/* Toy model for engine tests: odd block sizes, quadratic loss, GPT hook order, reference. */
#ifndef LMF_TESTS_TOY_MODEL_H
#define LMF_TESTS_TOY_MODEL_H

#include <math.h>
#include <stdint.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lmforge/model.h"

/* Layout of L layers: block b has sizes[b] floats (n_blocks = L + 2), split into two tensors:
 * the first (2/3 of the block, at least 1 float) with weight decay, the rest without. */
static inline void toy_layout(lmf_param_layout *l, int L, const size_t *sizes) {
    memset(l, 0, sizeof *l);
    l->n_blocks = L + 2;
    l->block_offset = calloc((size_t)l->n_blocks + 1, sizeof(size_t));
    l->tensors = calloc(2 * (size_t)l->n_blocks, sizeof(lmf_tensor_info));
    size_t off = 0;
    for (int b = 0; b < l->n_blocks; b++) {
        l->block_offset[b] = off;
        size_t a = sizes[b] * 2 / 3;
        if (a == 0) a = sizes[b] > 0 ? 1 : 0;
        size_t parts[2] = {a, sizes[b] - a};
        for (int k = 0; k < 2; k++) {
            lmf_tensor_info *t = &l->tensors[l->n_tensors++];
            snprintf(t->name, sizeof t->name, "b%d.t%d", b, k);
            t->ndim = 1;
            t->shape[0] = (int64_t)parts[k];
            t->offset = off;
            t->numel = parts[k];
            t->decay = k == 0;
            t->block = b;
            off += parts[k];
        }
    }
    l->block_offset[l->n_blocks] = off;
    l->total = off;
}

static inline void toy_layout_free(lmf_param_layout *l) {
    free(l->block_offset);
    free(l->tensors);
}

/* deterministic uniform [0, 1) from three integers (splitmix64 finaliser) */
static inline double toy_u(uint64_t a, uint64_t b, uint64_t c) {
    uint64_t z = a * 0x9E3779B97F4A7C15ull ^ (b + 0x632BE59BD9B4E019ull) * 0xBF58476D1CE4E5B9ull ^
                 (c + 1) * 0x94D049BB133111EBull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return (double)(z >> 11) * (1.0 / 9007199254740992.0);
}

/* micro-batch j of step s: loss = sum_i 0.5 * w_i * (p_i - t_i)^2, w in [0.5, 1.5), t in
 * [-1, 1); initial weights in [-1, 1) */
static inline double toy_w(int s, int j, size_t i) { return 0.5 + toy_u((uint64_t)s, (uint64_t)j, i); }
static inline double toy_t(int s, int j, size_t i) {
    return 2.0 * toy_u((uint64_t)s + 1000003u, (uint64_t)j, i) - 1.0;
}
static inline float toy_init(size_t i) { return (float)(2.0 * toy_u(7777777u, 1, i) - 1.0); }

static inline double toy_term(const float *p, size_t base, size_t n, int s, int j, float scale,
                              float *g) {
    double loss = 0.0;
    for (size_t i = 0; i < n; i++) {
        double w = toy_w(s, j, base + i), d = (double)p[i] - toy_t(s, j, base + i);
        loss += 0.5 * w * d * d;
        if (g) g[i] += scale * (float)(w * d);
    }
    return loss;
}

/* One micro-step of micro-batch j at step s through the hooks, in the GPT model's order.
 * Training: gradients (times scale) accumulate through block_grads; block 0's first half
 * during the forward (like the tied classifier), its second half at the end (like the
 * encoder). Returns the loss of the micro-batch. */
static inline double toy_micro_slow(const lmf_gpt_hooks *h, const lmf_param_layout *l, int s,
                                    int j, float scale, int training, long compute_ns);
static inline double toy_micro(const lmf_gpt_hooks *h, const lmf_param_layout *l, int s, int j,
                               float scale, int training) {
    return toy_micro_slow(h, l, s, j, scale, training, 0);
}

/* a layer's computation that takes time: compute_ns nanoseconds of sleep */
static inline void toy_compute(long ns) {
    if (ns <= 0) return;
    struct timespec ts = {ns / 1000000000L, ns % 1000000000L};
    nanosleep(&ts, NULL);
}

/* toy_micro with compute_ns of "computation" per block of the backward */
static inline double toy_micro_slow(const lmf_gpt_hooks *h, const lmf_param_layout *l, int s,
                                    int j, float scale, int training, long compute_ns) {
    int nb = l->n_blocks;
    const size_t *bo = l->block_offset;
    size_t n0 = bo[1] - bo[0], half = n0 / 2;
    float *p0 = h->block_params(h->ctx, 0, 0);
    double loss = 0.0;
    for (int b = 1; b < nb; b++) {
        float *p = h->block_params(h->ctx, b, 0);
        loss += toy_term(p, bo[b], bo[b + 1] - bo[b], s, j, 0, NULL);
        h->release_params(h->ctx, b, 0);
    }
    if (!training) {
        loss += toy_term(p0, 0, n0, s, j, 0, NULL);
        h->release_params(h->ctx, 0, 0);
        return loss;
    }
    float *g0 = h->block_grads(h->ctx, 0);
    loss += toy_term(p0, 0, half, s, j, scale, g0);
    for (int b = nb - 1; b >= 1; b--) {
        float *p = h->block_params(h->ctx, b, 1);
        float *g = h->block_grads(h->ctx, b);
        toy_compute(compute_ns);
        toy_term(p, bo[b], bo[b + 1] - bo[b], s, j, scale, g);
        h->grads_ready(h->ctx, b);
        h->release_params(h->ctx, b, 1);
    }
    g0 = h->block_grads(h->ctx, 0);
    loss += toy_term(p0 + half, half, n0 - half, s, j, scale, g0 + half);
    h->grads_ready(h->ctx, 0);
    h->release_params(h->ctx, 0, 1);
    return loss;
}

/* The serial reference of one optimizer step over G micro-batches, in double: mean gradient,
 * norm, clipping, AdamW with decoupled decay on decay tensors. Returns the mean loss. */
static inline double toy_reference_step(const lmf_param_layout *l, double *p, double *m,
                                        double *v, int s, int G, double lr, double b1, double b2,
                                        double eps, double wd, double clip, int t,
                                        double *norm_out) {
    size_t n = l->total;
    double *g = calloc(n, sizeof(double));
    double loss = 0.0, ss = 0.0;
    for (int j = 0; j < G; j++)
        for (size_t i = 0; i < n; i++) {
            double w = toy_w(s, j, i), d = p[i] - toy_t(s, j, i);
            loss += 0.5 * w * d * d / G;
            g[i] += w * d / G;
        }
    for (size_t i = 0; i < n; i++) ss += g[i] * g[i];
    double norm = sqrt(ss), f = clip > 0 && norm > clip ? clip / (norm + 1e-6) : 1.0;
    double c1 = 1.0 - pow(b1, t), c2 = 1.0 - pow(b2, t);
    for (int k = 0; k < l->n_tensors; k++) {
        const lmf_tensor_info *ti = &l->tensors[k];
        for (size_t i = ti->offset; i < ti->offset + ti->numel; i++) {
            double gi = g[i] * f;
            m[i] = b1 * m[i] + (1 - b1) * gi;
            v[i] = b2 * v[i] + (1 - b2) * gi * gi;
            p[i] -= lr * ((m[i] / c1) / (sqrt(v[i] / c2) + eps) + (ti->decay ? wd : 0.0) * p[i]);
        }
    }
    free(g);
    if (norm_out) *norm_out = norm;
    return loss;
}

#endif

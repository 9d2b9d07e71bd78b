/* Sampling one token from logits: temperature, top-k and top-p (nucleus) filtering. */
#include <math.h>
#include <stdlib.h>

#include "lmforge/model.h"

size_t lmf_sampler_work_bytes(int V) { return (size_t)V * (sizeof(float) + sizeof(int)); }

typedef struct cand {
    float p;
    int id;
} cand;

static int by_prob_desc(const void *a, const void *b) {
    const cand *x = a, *y = b;
    if (x->p != y->p) return x->p < y->p ? 1 : -1;
    return (x->id > y->id) - (x->id < y->id);
}

int lmf_sample_logits(const float *logits, int V, float temperature, int top_k, float top_p,
                      float u, void *work) {
    int best = 0;
    for (int i = 1; i < V; i++)
        if (logits[i] > logits[best]) best = i;
    if (temperature <= 0.0f) return best;
    cand *c = work; /* sizeof(cand) == sizeof(float) + sizeof(int) */
    double sum = 0.0;
    for (int i = 0; i < V; i++) {
        c[i].p = expf((logits[i] - logits[best]) / temperature);
        c[i].id = i;
        sum += c[i].p;
    }
    int n = V;
    if ((top_k > 0 && top_k < V) || top_p < 1.0f) {
        qsort(c, (size_t)V, sizeof(cand), by_prob_desc);
        if (top_k > 0 && top_k < n) n = top_k;
        if (top_p < 1.0f) {
            double acc = 0.0;
            int keep = 0;
            while (keep < n) {
                acc += c[keep].p / sum;
                keep++;
                if (acc >= top_p) break;
            }
            n = keep;
        }
        sum = 0.0;
        for (int i = 0; i < n; i++) sum += c[i].p;
    }
    double r = (double)u * sum, acc = 0.0;
    for (int i = 0; i < n; i++) {
        acc += c[i].p;
        if (r < acc) return c[i].id;
    }
    return c[n - 1].id;
}

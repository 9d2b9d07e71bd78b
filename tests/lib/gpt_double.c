/* A plain double-precision GPT-2 forward for tests (written independently of the kernels). */
#include "lib/gpt_double.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const double *T_(const lmf_param_layout *l, const double *p, const char *name) {
    int i = lmf_layout_find(l, name);
    return i < 0 ? NULL : p + l->tensors[i].offset;
}

static void layernorm(double *out, const double *x, const double *w, const double *b, int C) {
    double mean = 0, var = 0;
    for (int i = 0; i < C; i++) mean += x[i];
    mean /= C;
    for (int i = 0; i < C; i++) var += (x[i] - mean) * (x[i] - mean);
    var /= C;
    double rs = 1.0 / sqrt(var + 1e-5);
    for (int i = 0; i < C; i++) out[i] = (x[i] - mean) * rs * w[i] + b[i];
}

/* out[n] = x[k] @ W[k, n] + b[n] */
static void linear(double *out, const double *x, const double *W, const double *b, int K, int N) {
    for (int j = 0; j < N; j++) {
        double s = b ? b[j] : 0.0;
        for (int i = 0; i < K; i++) s += x[i] * W[(size_t)i * N + j];
        out[j] = s;
    }
}

double lmf_test_gpt_loss_double(const lmf_gpt_config *c, const lmf_param_layout *l,
                                const double *p, const int32_t *inputs, const int32_t *targets,
                                int B, int T) {
    if (c->family == LMF_FAMILY_LLAMA)
        return lmf_test_llama_loss_double(c, l, p, inputs, targets, B, T);
    int C = c->n_embd, NH = c->n_head, hs = C / NH, V = c->vocab_size;
    double *x = calloc((size_t)T * C, sizeof(double)), *ln = calloc((size_t)T * C, sizeof(double));
    double *qkv = calloc((size_t)T * 3 * C, sizeof(double)), *y = calloc((size_t)T * C, sizeof(double));
    double *h = calloc((size_t)4 * C, sizeof(double)), *tmp = calloc((size_t)4 * C, sizeof(double));
    double *att = calloc((size_t)T, sizeof(double));
    const double *wte = T_(l, p, "wte.weight"), *wpe = T_(l, p, "wpe.weight");
    double total = 0.0;
    char nm[64];
#define W_(suffix) (snprintf(nm, sizeof nm, "h.%d.%s", layer, suffix), T_(l, p, nm))
    for (int b = 0; b < B; b++) {
        for (int t = 0; t < T; t++)
            for (int i = 0; i < C; i++)
                x[t * C + i] = wte[(size_t)inputs[b * T + t] * C + i] + wpe[(size_t)t * C + i];
        for (int layer = 0; layer < c->n_layer; layer++) {
            for (int t = 0; t < T; t++) {
                layernorm(ln + t * C, x + t * C, W_("ln_1.weight"), W_("ln_1.bias"), C);
                linear(qkv + (size_t)t * 3 * C, ln + t * C, W_("attn.c_attn.weight"),
                       W_("attn.c_attn.bias"), C, 3 * C);
            }
            for (int t = 0; t < T; t++) {
                for (int hh = 0; hh < NH; hh++) {
                    const double *q = qkv + (size_t)t * 3 * C + hh * hs;
                    double mx = -INFINITY, sum = 0;
                    for (int u = 0; u <= t; u++) {
                        const double *k = qkv + (size_t)u * 3 * C + C + hh * hs;
                        double s = 0;
                        for (int i = 0; i < hs; i++) s += q[i] * k[i];
                        att[u] = s / sqrt((double)hs);
                        if (att[u] > mx) mx = att[u];
                    }
                    for (int u = 0; u <= t; u++) { att[u] = exp(att[u] - mx); sum += att[u]; }
                    for (int i = 0; i < hs; i++) {
                        double s = 0;
                        for (int u = 0; u <= t; u++) s += att[u] / sum * qkv[(size_t)u * 3 * C + 2 * C + hh * hs + i];
                        y[t * C + hh * hs + i] = s;
                    }
                }
            }
            for (int t = 0; t < T; t++) {
                linear(tmp, y + t * C, W_("attn.c_proj.weight"), W_("attn.c_proj.bias"), C, C);
                for (int i = 0; i < C; i++) x[t * C + i] += tmp[i];
                layernorm(ln + t * C, x + t * C, W_("ln_2.weight"), W_("ln_2.bias"), C);
                linear(h, ln + t * C, W_("mlp.c_fc.weight"), W_("mlp.c_fc.bias"), C, 4 * C);
                for (int i = 0; i < 4 * C; i++) {
                    double u = h[i];
                    h[i] = 0.5 * u * (1.0 + tanh(sqrt(2.0 / M_PI) * (u + 0.044715 * u * u * u)));
                }
                linear(tmp, h, W_("mlp.c_proj.weight"), W_("mlp.c_proj.bias"), 4 * C, C);
                for (int i = 0; i < C; i++) x[t * C + i] += tmp[i];
            }
        }
        for (int t = 0; t < T; t++) {
            layernorm(ln + t * C, x + t * C, T_(l, p, "ln_f.weight"), T_(l, p, "ln_f.bias"), C);
            double mx = -INFINITY, sum = 0, tl = 0;
            for (int v = 0; v < V; v++) {
                double s = 0;
                for (int i = 0; i < C; i++) s += ln[t * C + i] * wte[(size_t)v * C + i];
                if (v == targets[b * T + t]) tl = s;
                if (s > mx) mx = s;
            }
            for (int v = 0; v < V; v++) {
                double s = 0;
                for (int i = 0; i < C; i++) s += ln[t * C + i] * wte[(size_t)v * C + i];
                sum += exp(s - mx);
            }
            total += -(tl - mx - log(sum));
        }
    }
#undef W_
    free(x); free(ln); free(qkv); free(y); free(h); free(tmp); free(att);
    return total / ((double)B * T);
}

/* A plain double-precision Llama forward for tests (written from the Llama definition, with
 * Hugging Face's rotate_half rotary convention, independently of the kernels). */
#include "lib/gpt_double.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

static const double *P_(const lmf_param_layout *l, const double *p, const char *name) {
    int i = lmf_layout_find(l, name);
    return i < 0 ? NULL : p + l->tensors[i].offset;
}

static void rmsnorm(double *out, const double *x, const double *w, double eps, int C) {
    double ss = 0;
    for (int i = 0; i < C; i++) ss += x[i] * x[i];
    double r = 1.0 / sqrt(ss / C + eps);
    for (int i = 0; i < C; i++) out[i] = x[i] * r * w[i];
}

/* out[n] = x[k] @ W[k, n]: the model holds its products (in, out) */
static void linear(double *out, const double *x, const double *W, int K, int N) {
    for (int j = 0; j < N; j++) {
        double s = 0.0;
        for (int i = 0; i < K; i++) s += x[i] * W[(size_t)i * N + j];
        out[j] = s;
    }
}

/* x[H*hs] of position pos: the pair (i, i + hs/2) turned by pos * theta^(-2i/hs) */
static void rotary(double *x, int H, int hs, int pos, double theta) {
    for (int h = 0; h < H; h++)
        for (int i = 0; i < hs / 2; i++) {
            double a = pos * pow(theta, -2.0 * i / hs), *p = x + h * hs;
            double x1 = p[i], x2 = p[i + hs / 2];
            p[i] = x1 * cos(a) - x2 * sin(a);
            p[i + hs / 2] = x2 * cos(a) + x1 * sin(a);
        }
}

double lmf_test_llama_loss_double(const lmf_gpt_config *c, const lmf_param_layout *l,
                                  const double *p, const int32_t *inputs, const int32_t *targets,
                                  int B, int T) {
    int C = c->n_embd, NH = c->n_head, NKV = c->n_kv_head, hs = C / NH, KV = NKV * hs;
    int F = c->ffn_hidden, V = c->vocab_size, G = NH / NKV;
    double eps = c->rms_norm_eps, theta = c->rope_theta;
    double *x = calloc((size_t)T * C, sizeof(double)), *ln = calloc((size_t)C, sizeof(double));
    double *q = calloc((size_t)T * C, sizeof(double)), *k = calloc((size_t)T * KV, sizeof(double));
    double *v = calloc((size_t)T * KV, sizeof(double)), *y = calloc((size_t)T * C, sizeof(double));
    double *g = calloc((size_t)F, sizeof(double)), *u = calloc((size_t)F, sizeof(double));
    double *tmp = calloc((size_t)C, sizeof(double)), *att = calloc((size_t)T, sizeof(double));
    const double *emb = P_(l, p, "model.embed_tokens.weight");
    const double *head = c->tie_embeddings ? emb : P_(l, p, "lm_head.weight");
    double total = 0.0;
    char nm[96];
#define W_(suffix) (snprintf(nm, sizeof nm, "model.layers.%d.%s", layer, suffix), P_(l, p, nm))
    for (int b = 0; b < B; b++) {
        for (int t = 0; t < T; t++)
            for (int i = 0; i < C; i++) x[t * C + i] = emb[(size_t)inputs[b * T + t] * C + i];
        for (int layer = 0; layer < c->n_layer; layer++) {
            for (int t = 0; t < T; t++) {
                rmsnorm(ln, x + t * C, W_("input_layernorm.weight"), eps, C);
                linear(q + t * C, ln, W_("self_attn.q_proj.weight"), C, C);
                linear(k + t * KV, ln, W_("self_attn.k_proj.weight"), C, KV);
                linear(v + t * KV, ln, W_("self_attn.v_proj.weight"), C, KV);
                rotary(q + t * C, NH, hs, t, theta);
                rotary(k + t * KV, NKV, hs, t, theta);
            }
            for (int t = 0; t < T; t++)
                for (int hh = 0; hh < NH; hh++) {
                    const double *qt = q + t * C + hh * hs;
                    double mx = -INFINITY, sum = 0;
                    for (int s = 0; s <= t; s++) {
                        double d = 0;
                        for (int i = 0; i < hs; i++) d += qt[i] * k[s * KV + (hh / G) * hs + i];
                        att[s] = d / sqrt((double)hs);
                        if (att[s] > mx) mx = att[s];
                    }
                    for (int s = 0; s <= t; s++) sum += (att[s] = exp(att[s] - mx));
                    for (int i = 0; i < hs; i++) {
                        double d = 0;
                        for (int s = 0; s <= t; s++) d += att[s] / sum * v[s * KV + (hh / G) * hs + i];
                        y[t * C + hh * hs + i] = d;
                    }
                }
            for (int t = 0; t < T; t++) {
                linear(tmp, y + t * C, W_("self_attn.o_proj.weight"), C, C);
                for (int i = 0; i < C; i++) x[t * C + i] += tmp[i];
                rmsnorm(ln, x + t * C, W_("post_attention_layernorm.weight"), eps, C);
                linear(g, ln, W_("mlp.gate_proj.weight"), C, F);
                linear(u, ln, W_("mlp.up_proj.weight"), C, F);
                for (int i = 0; i < F; i++) g[i] = g[i] / (1.0 + exp(-g[i])) * u[i];
                linear(tmp, g, W_("mlp.down_proj.weight"), F, C);
                for (int i = 0; i < C; i++) x[t * C + i] += tmp[i];
            }
        }
        for (int t = 0; t < T; t++) {
            rmsnorm(ln, x + t * C, P_(l, p, "model.norm.weight"), eps, C);
            double mx = -INFINITY, sum = 0, tl = 0;
            for (int w = 0; w < V; w++) {
                double s = 0;
                for (int i = 0; i < C; i++) s += ln[i] * head[(size_t)w * C + i];
                if (w == targets[b * T + t]) tl = s;
                if (s > mx) mx = s;
            }
            for (int w = 0; w < V; w++) {
                double s = 0;
                for (int i = 0; i < C; i++) s += ln[i] * head[(size_t)w * C + i];
                sum += exp(s - mx);
            }
            total += -(tl - mx - log(sum));
        }
    }
#undef W_
    free(x); free(ln); free(q); free(k); free(v); free(y); free(g); free(u); free(tmp); free(att);
    return total / ((double)B * T);
}

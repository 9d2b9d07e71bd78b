/* Parameter layout: Hugging Face GPT-2 and Llama tensor names, shapes and offsets in one flat
 * block, and the gradient buckets over its blocks. */
#include "lmforge/model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LAYER_TENSORS (4 + 2 * LMF_LAYER_LINEARS) /* at most: 2 norms with biases, weight and
                                                   * bias per product */

static void add(lmf_param_layout *l, const char *name, int64_t r, int64_t c, size_t numel,
                int block, size_t *off) {
    lmf_tensor_info *t = &l->tensors[l->n_tensors++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->ndim = c > 0 ? 2 : 1;
    t->shape[0] = r;
    t->shape[1] = c > 0 ? c : 0;
    t->offset = *off;
    t->numel = numel;
    t->decay = t->ndim == 2;
    t->block = block;
    *off += numel;
}

/* One layer's tensors in block order: ln_1, the attention's products, ln_2, the MLP's products
 * (lmf_layer_linears; each weight (in, out) followed by its bias). */
static void add_layer(lmf_param_layout *out, const lmf_gpt_config *c, int l, size_t *off) {
    lmf_linear_desc lin[LMF_LAYER_LINEARS];
    lmf_layer_linears(c, lin);
    char name[64];
    for (int half = 0; half < 2; half++) {
        snprintf(name, sizeof name, "h.%d.ln_%d.weight", l, half + 1);
        add(out, name, c->n_embd, 0, (size_t)c->n_embd, 1 + l, off);
        snprintf(name, sizeof name, "h.%d.ln_%d.bias", l, half + 1);
        add(out, name, c->n_embd, 0, (size_t)c->n_embd, 1 + l, off);
        for (int i = 2 * half; i < 2 * half + 2; i++) {
            snprintf(name, sizeof name, "h.%d.%s.weight", l, lin[i].name);
            add(out, name, lin[i].in, lin[i].out, (size_t)lin[i].in * (size_t)lin[i].out, 1 + l, off);
            if (!lin[i].bias) continue;
            snprintf(name, sizeof name, "h.%d.%s.bias", l, lin[i].name);
            add(out, name, lin[i].out, 0, (size_t)lin[i].out, 1 + l, off);
        }
    }
}

/* One Llama layer's tensors in block order: input_layernorm, q, k, v, o,
 * post_attention_layernorm, gate, up, down. The products are held (in, out) and named with
 * Hugging Face's (out, in) shape (transposed = 1). */
static void add_llama_layer(lmf_param_layout *out, const lmf_gpt_config *c, int l, size_t *off) {
    lmf_linear_desc lin[LMF_LAYER_LINEARS];
    lmf_layer_linears(c, lin);
    char name[64];
    for (int half = 0; half < 2; half++) {
        snprintf(name, sizeof name, "model.layers.%d.%s.weight", l,
                 half ? "post_attention_layernorm" : "input_layernorm");
        add(out, name, c->n_embd, 0, (size_t)c->n_embd, 1 + l, off);
        for (int i = 4 * half; i < (half ? 7 : 4); i++) {
            snprintf(name, sizeof name, "model.layers.%d.%s.weight", l, lin[i].name);
            add(out, name, lin[i].out, lin[i].in, (size_t)lin[i].in * (size_t)lin[i].out, 1 + l, off);
            out->tensors[out->n_tensors - 1].transposed = 1;
        }
    }
}

static lmf_status llama_layout(const lmf_gpt_config *c, lmf_param_layout *out) {
    int L = c->n_layer;
    int64_t C = c->n_embd, Vp = lmf_config_padded_vocab(c);
    size_t off = 0;
    add(out, "model.embed_tokens.weight", c->vocab_size, C, (size_t)(Vp * C), 0, &off);
    if (!lmf_config_tied(c)) add(out, "lm_head.weight", c->vocab_size, C, (size_t)(Vp * C), 0, &off);
    for (int l = 0; l < L; l++) {
        out->block_offset[1 + l] = off;
        add_llama_layer(out, c, l, &off);
    }
    out->block_offset[L + 1] = off;
    add(out, "model.norm.weight", C, 0, (size_t)C, L + 1, &off);
    out->block_offset[L + 2] = off;
    out->total = off;
    return LMF_OK;
}

lmf_status lmf_layout_build(const lmf_gpt_config *c, lmf_param_layout *out) {
    LMF_TRY(lmf_config_validate(c));
    memset(out, 0, sizeof *out);
    int L = c->n_layer;
    int64_t C = c->n_embd, Vp = lmf_config_padded_vocab(c);
    out->tensors = calloc((size_t)L * LAYER_TENSORS + 4, sizeof *out->tensors);
    out->n_blocks = L + 2;
    out->block_offset = calloc((size_t)out->n_blocks + 1, sizeof *out->block_offset);
    if (!out->tensors || !out->block_offset) {
        lmf_layout_free(out);
        return lmf_fail(LMF_ERR_NOMEM, "cannot allocate the parameter layout");
    }
    if (c->family == LMF_FAMILY_LLAMA) return llama_layout(c, out);
    size_t off = 0;
    out->block_offset[0] = 0;
    add(out, "wte.weight", c->vocab_size, C, (size_t)(Vp * C), 0, &off);
    add(out, "wpe.weight", c->n_positions, C, (size_t)c->n_positions * (size_t)C, 0, &off);
    for (int l = 0; l < L; l++) {
        out->block_offset[1 + l] = off;
        add_layer(out, c, l, &off);
    }
    out->block_offset[L + 1] = off;
    add(out, "ln_f.weight", C, 0, (size_t)C, L + 1, &off);
    add(out, "ln_f.bias", C, 0, (size_t)C, L + 1, &off);
    out->block_offset[L + 2] = off;
    out->total = off;
    return LMF_OK;
}

void lmf_layout_free(lmf_param_layout *l) {
    free(l->tensors);
    free(l->block_offset);
    memset(l, 0, sizeof *l);
}

int lmf_layout_find(const lmf_param_layout *l, const char *name) {
    for (int i = 0; i < l->n_tensors; i++)
        if (strcmp(l->tensors[i].name, name) == 0) return i;
    return -1;
}

/* the order of add_layer and add_llama_layer */
void lmf_layout_layer_view(const lmf_gpt_config *c, float *base, lmf_layer_view *v) {
    size_t C = (size_t)c->n_embd;
    float *p = base;
    memset(v, 0, sizeof *v);
    if (c->family == LMF_FAMILY_LLAMA) {
        size_t KV = (size_t)lmf_config_kv_heads(c) * (C / (size_t)c->n_head);
        size_t F = (size_t)lmf_config_ffn(c);
        v->ln1w = p; p += C;
        v->qw = p; p += C * C;
        v->kw = p; p += C * KV;
        v->vw = p; p += C * KV;
        v->ow = p; p += C * C;
        v->ln2w = p; p += C;
        v->gatew = p; p += C * F;
        v->upw = p; p += C * F;
        v->downw = p;
        return;
    }
    v->ln1w = p; p += C;
    v->ln1b = p; p += C;
    v->qkvw = p; p += C * 3 * C;
    v->qkvb = p; p += 3 * C;
    v->attprojw = p; p += C * C;
    v->attprojb = p; p += C;
    v->ln2w = p; p += C;
    v->ln2b = p; p += C;
    v->fcw = p; p += C * 4 * C;
    v->fcb = p; p += 4 * C;
    v->fcprojw = p; p += 4 * C * C;
    v->fcprojb = p;
}

int lmf_layout_buckets(const lmf_param_layout *l, size_t target, size_t max, int *lo, int *hi) {
    if (target == 0) target = 1;
    int nb = 0;
    size_t size = 0;
    for (int b = l->n_blocks - 1; b >= 0; b--) {
        size_t len = l->block_offset[b + 1] - l->block_offset[b];
        int open = nb > 0 && lo[nb - 1] == b + 1 && size < target && b != 0 && size + len <= max;
        if (!open) {
            hi[nb++] = b;
            size = 0;
        }
        lo[nb - 1] = b;
        size += len;
    }
    return nb;
}

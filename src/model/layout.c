/* Parameter layout: Hugging Face GPT-2 tensor names, shapes and offsets in one flat block. */
#include "lmforge/model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Tensors of one transformer layer, in block order. Shapes are (in, out) for Conv1D weights. */
enum { LT_LN1W, LT_LN1B, LT_QKVW, LT_QKVB, LT_PROJW, LT_PROJB, LT_LN2W, LT_LN2B,
       LT_FCW, LT_FCB, LT_FCPROJW, LT_FCPROJB, LT_COUNT };

static const char *const layer_names[LT_COUNT] = {
    "ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias",
    "attn.c_proj.weight", "attn.c_proj.bias", "ln_2.weight", "ln_2.bias",
    "mlp.c_fc.weight", "mlp.c_fc.bias", "mlp.c_proj.weight", "mlp.c_proj.bias"};

/* (rows, cols) of each layer tensor in units of C; cols 0 means 1-D */
static void layer_shape(int i, int64_t C, int64_t *r, int64_t *c) {
    static const int rows[LT_COUNT] = {1, 1, 1, 3, 1, 1, 1, 1, 1, 4, 4, 1};
    static const int cols[LT_COUNT] = {0, 0, 3, 0, 1, 0, 0, 0, 4, 0, 1, 0};
    *r = rows[i] * C;
    *c = cols[i] * C;
}

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

lmf_status lmf_layout_build(const lmf_gpt_config *c, lmf_param_layout *out) {
    LMF_TRY(lmf_config_validate(c));
    memset(out, 0, sizeof *out);
    int L = c->n_layer;
    int64_t C = c->n_embd, Vp = lmf_config_padded_vocab(c);
    out->tensors = calloc((size_t)L * LT_COUNT + 4, sizeof *out->tensors);
    out->n_blocks = L + 2;
    out->block_offset = calloc((size_t)out->n_blocks + 1, sizeof *out->block_offset);
    if (!out->tensors || !out->block_offset) {
        lmf_layout_free(out);
        return lmf_fail(LMF_ERR_NOMEM, "cannot allocate the parameter layout");
    }
    size_t off = 0;
    out->block_offset[0] = 0;
    add(out, "wte.weight", c->vocab_size, C, (size_t)(Vp * C), 0, &off);
    add(out, "wpe.weight", c->n_positions, C, (size_t)c->n_positions * (size_t)C, 0, &off);
    for (int l = 0; l < L; l++) {
        out->block_offset[1 + l] = off;
        for (int i = 0; i < LT_COUNT; i++) {
            char name[48];
            int64_t r, cc;
            layer_shape(i, C, &r, &cc);
            snprintf(name, sizeof name, "h.%d.%s", l, layer_names[i]);
            add(out, name, r, cc, (size_t)(r * (cc > 0 ? cc : 1)), 1 + l, &off);
        }
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

void lmf_layout_layer_view(const lmf_gpt_config *c, float *base, lmf_layer_view *v) {
    size_t C = (size_t)c->n_embd;
    float *p = base;
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

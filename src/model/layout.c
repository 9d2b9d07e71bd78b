/* Parameter layout: Hugging Face GPT-2 and Llama tensor names, shapes and offsets in one flat
 * block, and the gradient buckets over its blocks. */
#include "lmforge/model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LAYER_TENSORS (4 + 2 * LMF_LAYER_LINEARS) /* at most: 2 norms with biases, weight and
                                                   * bias per product */

/* the slice of a tensor, set before add() */
typedef struct slice {
    int64_t row0, rows, full_rows, col0, cols, full_cols;
    int sections;
    lmf_tp_reduce reduce;
    int copies;
} slice;

static slice whole(int64_t rows, int64_t cols, const lmf_tp_dims *d) {
    slice s = {0, rows, rows, 0, cols, cols, 1, LMF_TP_REDUCE_NONE, 1};
    if (d->size > 1) { /* replicated */
        s.reduce = d->sequence_parallel ? LMF_TP_REDUCE_SUM : LMF_TP_REDUCE_MEAN;
        s.copies = d->size;
    }
    return s;
}
/* columns [k * n, (k + 1) * n) of each of `sections` sections of full_cols columns */
static slice columns(int64_t rows, int64_t full_cols, int sections, int64_t n, int64_t k) {
    return (slice){0, rows, rows, k * n, n, full_cols, sections, LMF_TP_REDUCE_NONE, 1};
}
static slice row_range(int64_t full_rows, int64_t cols, int64_t n, int64_t k) {
    return (slice){k * n, n, full_rows, 0, cols, cols, 1, LMF_TP_REDUCE_NONE, 1};
}

static void add(lmf_param_layout *l, const char *name, int64_t r, int64_t c, slice sl, int block,
                size_t *off) {
    if (!lmf_layout_has_block(l, block)) sl.rows = 0; /* another pipeline stage's tensor */
    lmf_tensor_info *t = &l->tensors[l->n_tensors++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->ndim = c > 0 ? 2 : 1;
    t->shape[0] = r;
    t->shape[1] = c > 0 ? c : 0;
    t->offset = *off;
    t->numel = (size_t)(sl.rows * sl.sections * sl.cols);
    t->decay = t->ndim == 2;
    t->block = block;
    t->row0 = sl.row0;
    t->rows = sl.rows;
    t->full_rows = sl.full_rows;
    t->col0 = sl.col0;
    t->cols = sl.cols;
    t->full_cols = sl.full_cols;
    t->sections = sl.sections;
    t->tp_reduce = sl.reduce;
    t->tp_copies = sl.copies;
    t->pp_copies = block == 0 && l->layers < l->n_blocks - 2 ? 2 : 1;
    *off += t->numel;
}

/* a product's weight (in, out) and bias, split as the product is (lmf_linear_desc.split) */
static void add_linear(lmf_param_layout *out, const lmf_linear_desc *lin, const char *wname,
                       const char *bname, int sections, int64_t local, int transposed, int block,
                       size_t *off) {
    const lmf_tp_dims *d = &out->tp;
    int64_t k = d->rank;
    slice w, b;
    if (d->size == 1) {
        w = whole(lin->in, lin->out, d);
        b = whole(1, lin->out, d);
    } else if (lin->split == LMF_SPLIT_COLUMN) {
        if (local * d->size * sections != lin->out) { /* shared key/value heads */
            k = d->kv_head0;
        }
        w = columns(lin->in, lin->out, sections, local, k);
        b = columns(1, lin->out, sections, local, k);
        if (d->kv_shared > 1 && local * d->size * sections != lin->out) {
            w.reduce = b.reduce = LMF_TP_REDUCE_SUM;
            w.copies = b.copies = d->kv_shared;
        }
    } else {
        w = row_range(lin->in, lin->out, local, k);
        b = whole(1, lin->out, d);
    }
    if (transposed) add(out, wname, lin->out, lin->in, w, block, off);
    else add(out, wname, lin->in, lin->out, w, block, off);
    out->tensors[out->n_tensors - 1].transposed = transposed;
    if (lin->bias) add(out, bname, lin->out, 0, b, block, off);
}

/* One layer's tensors in block order: ln_1, the attention's products, ln_2, the MLP's products
 * (lmf_layer_linears; each weight (in, out) followed by its bias). */
static void add_layer(lmf_param_layout *out, const lmf_gpt_config *c, int l, size_t *off) {
    const lmf_tp_dims *d = &out->tp;
    lmf_linear_desc lin[LMF_LAYER_LINEARS];
    lmf_layer_linears(c, lin);
    /* this rank's share of each product's split dimension: q, k, v heads; C/T; 4C/T */
    int64_t local[4] = {d->width, d->width, d->ffn, d->ffn};
    char name[64], bname[64];
    for (int half = 0; half < 2; half++) {
        snprintf(name, sizeof name, "h.%d.ln_%d.weight", l, half + 1);
        add(out, name, c->n_embd, 0, whole(1, c->n_embd, d), 1 + l, off);
        snprintf(name, sizeof name, "h.%d.ln_%d.bias", l, half + 1);
        add(out, name, c->n_embd, 0, whole(1, c->n_embd, d), 1 + l, off);
        for (int i = 2 * half; i < 2 * half + 2; i++) {
            snprintf(name, sizeof name, "h.%d.%s.weight", l, lin[i].name);
            snprintf(bname, sizeof bname, "h.%d.%s.bias", l, lin[i].name);
            add_linear(out, &lin[i], name, bname, i == 0 ? 3 : 1, local[i], 0, 1 + l, off);
        }
    }
}

/* One Llama layer's tensors in block order: input_layernorm, q, k, v, o,
 * post_attention_layernorm, gate, up, down. The products are held (in, out) and named with
 * Hugging Face's (out, in) shape (transposed = 1). */
static void add_llama_layer(lmf_param_layout *out, const lmf_gpt_config *c, int l, size_t *off) {
    const lmf_tp_dims *d = &out->tp;
    lmf_linear_desc lin[LMF_LAYER_LINEARS];
    lmf_layer_linears(c, lin);
    int64_t local[7] = {d->width, d->kv_width, d->kv_width, d->width, d->ffn, d->ffn, d->ffn};
    char name[64];
    for (int half = 0; half < 2; half++) {
        snprintf(name, sizeof name, "model.layers.%d.%s.weight", l,
                 half ? "post_attention_layernorm" : "input_layernorm");
        add(out, name, c->n_embd, 0, whole(1, c->n_embd, d), 1 + l, off);
        for (int i = 4 * half; i < (half ? 7 : 4); i++) {
            snprintf(name, sizeof name, "model.layers.%d.%s.weight", l, lin[i].name);
            add_linear(out, &lin[i], name, NULL, 1, local[i], 1, 1 + l, off);
        }
    }
}

/* the token embedding or the untied classifier: rows of the padded vocabulary */
static void add_vocab(lmf_param_layout *out, const char *name, const lmf_gpt_config *c,
                      size_t *off) {
    const lmf_tp_dims *d = &out->tp;
    int64_t C = c->n_embd, Vp = lmf_config_padded_vocab(c);
    add(out, name, c->vocab_size, C, row_range(Vp, C, d->vocab_rows, d->rank), 0, off);
}

static lmf_status llama_layout(const lmf_gpt_config *c, lmf_param_layout *out) {
    int L = c->n_layer;
    int64_t C = c->n_embd;
    size_t off = 0;
    add_vocab(out, "model.embed_tokens.weight", c, &off);
    if (!lmf_config_tied(c)) add_vocab(out, "lm_head.weight", c, &off);
    for (int l = 0; l < L; l++) {
        out->block_offset[1 + l] = off;
        add_llama_layer(out, c, l, &off);
    }
    out->block_offset[L + 1] = off;
    add(out, "model.norm.weight", C, 0, whole(1, C, &out->tp), L + 1, &off);
    out->block_offset[L + 2] = off;
    out->total = off;
    return LMF_OK;
}

lmf_status lmf_layout_build(const lmf_gpt_config *c, lmf_param_layout *out) {
    return lmf_layout_build_tp(c, NULL, out);
}

lmf_status lmf_layout_build_tp(const lmf_gpt_config *c, const lmf_tp_config *tp,
                               lmf_param_layout *out) {
    return lmf_layout_build_stage(c, tp, 0, c->n_layer, out);
}

/* the range holding layer l, or -1 */
static int range_of(const lmf_param_layout *l, int layer) {
    for (int r = 0; r < l->n_ranges; r++)
        if (layer >= l->range_l0[r] && layer < l->range_l0[r] + l->range_len[r]) return r;
    return -1;
}

int lmf_layout_has_block(const lmf_param_layout *l, int b) {
    int L = l->n_blocks - 2;
    if (b == 0) return range_of(l, 0) >= 0 || range_of(l, L - 1) >= 0;
    if (b == L + 1) return range_of(l, L - 1) >= 0;
    return range_of(l, b - 1) >= 0;
}

int lmf_layout_block_chunk(const lmf_param_layout *l, int b) {
    int L = l->n_blocks - 2, n = l->n_ranges;
    if (n <= 1) return 0;
    if (b == 0) {
        int r0 = range_of(l, 0), rl = range_of(l, L - 1);
        return r0 >= 0 ? r0 : rl >= 0 ? rl : 0;
    }
    if (b == L + 1) return n - 1;
    int r = 0; /* the last range starting at or before layer b-1 */
    while (r + 1 < n && l->range_l0[r + 1] <= b - 1) r++;
    return r;
}

lmf_status lmf_layout_build_stage(const lmf_gpt_config *c, const lmf_tp_config *tp, int layer0,
                                  int layers, lmf_param_layout *out) {
    return lmf_layout_build_ranges(c, tp, 1, &layer0, &layers, out);
}

lmf_status lmf_layout_build_ranges(const lmf_gpt_config *c, const lmf_tp_config *tp, int n,
                                   const int *l0, const int *len, lmf_param_layout *out) {
    memset(out, 0, sizeof *out);
    LMF_TRY(lmf_config_validate(c));
    if (n < 1 || n > LMF_LAYOUT_MAX_RANGES)
        return lmf_fail(LMF_ERR_ARG, "%d model chunks on one pipeline stage: give 1 to %d", n,
                        LMF_LAYOUT_MAX_RANGES);
    for (int r = 0; r < n; r++) {
        int prev_end = r ? l0[r - 1] + len[r - 1] : 0;
        if (len[r] < 1 || l0[r] < prev_end || l0[r] + len[r] > c->n_layer)
            return lmf_fail(LMF_ERR_ARG, "pipeline stage of layers [%d, %d) is not a non-empty "
                            "range of the model's %d layers after the stage's previous chunk; "
                            "give every stage at least one layer", l0[r], l0[r] + len[r],
                            c->n_layer);
        out->range_l0[r] = l0[r];
        out->range_len[r] = len[r];
        out->layers += len[r];
    }
    out->n_ranges = n;
    LMF_TRY(lmf_tp_dims_get(c, tp, &out->tp));
    int L = c->n_layer;
    int64_t C = c->n_embd;
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
    add_vocab(out, "wte.weight", c, &off);
    add(out, "wpe.weight", c->n_positions, C, whole(c->n_positions, C, &out->tp), 0, &off);
    for (int l = 0; l < L; l++) {
        out->block_offset[1 + l] = off;
        add_layer(out, c, l, &off);
    }
    out->block_offset[L + 1] = off;
    add(out, "ln_f.weight", C, 0, whole(1, C, &out->tp), L + 1, &off);
    add(out, "ln_f.bias", C, 0, whole(1, C, &out->tp), L + 1, &off);
    out->block_offset[L + 2] = off;
    out->total = off;
    return LMF_OK;
}

/* copy between a tensor's slice (contiguous) and its place in the whole tensor */
static void copy_slice(const lmf_tensor_info *pt, float *part, const lmf_tensor_info *wt,
                       float *whole, int to_whole) {
    int64_t sec_w = pt->full_cols / pt->sections;
    float *p = part;
    for (int64_t r = 0; r < pt->rows; r++)
        for (int s = 0; s < pt->sections; s++) {
            float *w = whole + wt->offset + (size_t)((pt->row0 + r) * pt->full_cols + s * sec_w +
                                                     pt->col0);
            size_t n = (size_t)pt->cols * sizeof(float);
            if (to_whole) memcpy(w, p, n);
            else memcpy(p, w, n);
            p += pt->cols;
        }
}

void lmf_layout_slice(const lmf_param_layout *pl, const lmf_param_layout *wl, const float *whole,
                      float *part) {
    for (int i = 0; i < pl->n_tensors; i++)
        copy_slice(&pl->tensors[i], part + pl->tensors[i].offset, &wl->tensors[i],
                   (float *)whole, 0);
}

void lmf_layout_place(const lmf_param_layout *pl, const lmf_param_layout *wl, const float *part,
                      float *whole) {
    for (int i = 0; i < pl->n_tensors; i++)
        copy_slice(&pl->tensors[i], (float *)part + pl->tensors[i].offset, &wl->tensors[i], whole,
                   1);
}

void lmf_layout_place_range(const lmf_param_layout *pl, const lmf_param_layout *wl,
                            const float *part, lmf_range range, float *out) {
    for (int i = 0; i < pl->n_tensors; i++) {
        const lmf_tensor_info *pt = &pl->tensors[i], *wt = &wl->tensors[i];
        if (wt->offset >= range.end || wt->offset + wt->numel <= range.begin) continue;
        int64_t sec_w = pt->full_cols / pt->sections;
        const float *p = part + pt->offset;
        for (int64_t r = 0; r < pt->rows; r++)
            for (int s = 0; s < pt->sections; s++, p += pt->cols) {
                /* a run of cols floats at pos of the whole vector, clipped to the range */
                size_t pos = wt->offset +
                             (size_t)((pt->row0 + r) * pt->full_cols + s * sec_w + pt->col0);
                size_t lo = pos > range.begin ? pos : range.begin;
                size_t hi = pos + (size_t)pt->cols < range.end ? pos + (size_t)pt->cols : range.end;
                if (lo < hi) memcpy(out + (lo - range.begin), p + (lo - pos), (hi - lo) * sizeof(float));
            }
    }
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

/* the order of add_layer and add_llama_layer, with the widths of split d */
static void layer_view(const lmf_gpt_config *c, const lmf_tp_dims *d, float *base,
                       lmf_layer_view *v) {
    size_t C = (size_t)c->n_embd, W = (size_t)d->width, F = (size_t)d->ffn;
    float *p = base;
    memset(v, 0, sizeof *v);
    if (c->family == LMF_FAMILY_LLAMA) {
        size_t KV = (size_t)d->kv_width;
        v->ln1w = p; p += C;
        v->qw = p; p += C * W;
        v->kw = p; p += C * KV;
        v->vw = p; p += C * KV;
        v->ow = p; p += W * C;
        v->ln2w = p; p += C;
        v->gatew = p; p += C * F;
        v->upw = p; p += C * F;
        v->downw = p;
        return;
    }
    v->ln1w = p; p += C;
    v->ln1b = p; p += C;
    v->qkvw = p; p += C * 3 * W;
    v->qkvb = p; p += 3 * W;
    v->attprojw = p; p += W * C;
    v->attprojb = p; p += C;
    v->ln2w = p; p += C;
    v->ln2b = p; p += C;
    v->fcw = p; p += C * F;
    v->fcb = p; p += F;
    v->fcprojw = p; p += F * C;
    v->fcprojb = p;
}

void lmf_layout_layer_view(const lmf_gpt_config *c, float *base, lmf_layer_view *v) {
    lmf_tp_dims d;
    lmf_tp_dims_get(c, NULL, &d);
    layer_view(c, &d, base, v);
}

void lmf_layout_layer_view_of(const lmf_param_layout *l, const lmf_gpt_config *c, float *base,
                              lmf_layer_view *v) {
    layer_view(c, &l->tp, base, v);
}

int lmf_layout_buckets(const lmf_param_layout *l, size_t target, size_t max, int *lo, int *hi) {
    if (target == 0) target = 1;
    int nb = 0;
    size_t size = 0;
    for (int b = l->n_blocks - 1; b >= 0; b--) {
        size_t len = l->block_offset[b + 1] - l->block_offset[b];
        int open = nb > 0 && lo[nb - 1] == b + 1 && size < target && b != 0 && size + len <= max &&
                   lmf_layout_block_chunk(l, b) == lmf_layout_block_chunk(l, b + 1);
        if (!open) {
            hi[nb++] = b;
            size = 0;
        }
        lo[nb - 1] = b;
        size += len;
    }
    return nb;
}

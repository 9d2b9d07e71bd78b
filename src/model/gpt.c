/* The model: parameters, activations, forward and backward over a kernel table; the GPT-2
 * layer here, the Llama family's in llama.c. */
#include "lmforge/model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lmforge/perf.h"
#include "lmforge/system.h"
#include "lmforge/rng.h"
#include "model/gpt_internal.h"

void lmf_gpt_profile(lmf_gpt *m, int on) {
    m->ops.profile = on;
    lmf_busy_enable(on);
}
void lmf_gpt_set_recompute(lmf_gpt *m, lmf_recompute r) { m->recompute = r; }
void lmf_gpt_set_progress(lmf_gpt *m, void (*fn)(void *ctx), void *ctx) {
    m->ops.progress = fn;
    m->ops.progress_ctx = fn ? ctx : NULL;
}
void lmf_gpt_profile_reset(lmf_gpt *m) {
    memset(m->ops.phase_s, 0, sizeof m->ops.phase_s);
    memset(m->ops.phase_busy, 0, sizeof m->ops.phase_busy);
}
void lmf_gpt_profile_read_busy(const lmf_gpt *m, double busy[LMF_PHASE_COUNT]) {
    memcpy(busy, m->ops.phase_busy, sizeof m->ops.phase_busy);
}
void lmf_gpt_profile_read(const lmf_gpt *m, double seconds[LMF_PHASE_COUNT]) {
    memcpy(seconds, m->ops.phase_s, sizeof m->ops.phase_s);
}
const char *lmf_phase_name(lmf_phase p) {
    static const char *const names[LMF_PHASE_COUNT] = {"matmul", "attention", "elementwise", "loss",
                                                       "tp_comm"};
    return p < LMF_PHASE_COUNT ? names[p] : "?";
}

lmf_status lmf_gpt_create(const lmf_gpt_config *cfg, const lmf_kernels *k, lmf_gpt **out) {
    return lmf_gpt_create_tp(cfg, k, NULL, out);
}

lmf_status lmf_gpt_create_tp(const lmf_gpt_config *cfg, const lmf_kernels *k,
                             const lmf_tp_config *tp, lmf_gpt **out) {
    return lmf_gpt_create_stage(cfg, k, tp, 0, cfg->n_layer, out);
}

lmf_status lmf_gpt_create_stage(const lmf_gpt_config *cfg, const lmf_kernels *k,
                                const lmf_tp_config *tp, int layer0, int layers, lmf_gpt **out) {
    return lmf_gpt_create_chunks(cfg, k, tp, 1, &layer0, &layers, out);
}

lmf_status lmf_gpt_create_chunks(const lmf_gpt_config *cfg, const lmf_kernels *k,
                                 const lmf_tp_config *tp, int n, const int *layer0,
                                 const int *layers, lmf_gpt **chunks) {
    for (int c = 0; c < n && c < LMF_LAYOUT_MAX_RANGES; c++) chunks[c] = NULL;
    lmf_gpt *m = calloc(1, sizeof *m);
    if (!m) return lmf_fail(LMF_ERR_NOMEM, "cannot allocate the model");
    m->cfg = *cfg;
    m->eot_id = -1;
    m->ops.k = k ? k : lmf_kernels_fast();
    lmf_status s = lmf_layout_build_ranges(cfg, tp, n, layer0, layers, &m->layout);
    if (s != LMF_OK) {
        free(m);
        return s;
    }
    m->run_l0 = layer0[0];
    m->run_n = layers[0];
    m->params = lmf_calloc_big(m->layout.total, sizeof(float));
    if (!m->params) {
        size_t total = m->layout.total;
        lmf_gpt_free(m);
        return lmf_fail(LMF_ERR_NOMEM, "cannot allocate %zu parameters (%.1f MB)", total,
                        (double)total * 4 / 1e6);
    }
    chunks[0] = m;
    for (int c = 1; c < n; c++) { /* views sharing chunk 0's layout, weights and gradients */
        lmf_gpt *v = calloc(1, sizeof *v);
        if (!v) {
            for (int i = c - 1; i >= 0; i--) {
                lmf_gpt_free(chunks[i]);
                chunks[i] = NULL;
            }
            return lmf_fail(LMF_ERR_NOMEM, "cannot allocate the model chunks");
        }
        v->cfg = m->cfg;
        v->eot_id = -1;
        v->ops.k = m->ops.k;
        v->layout = m->layout;
        v->owner = m;
        v->chunk = c;
        v->run_l0 = layer0[c];
        v->run_n = layers[c];
        chunks[c] = v;
    }
    return LMF_OK;
}

void lmf_gpt_free(lmf_gpt *m) {
    if (!m) return;
    if (!m->owner) lmf_layout_free(&m->layout);
    lmf_free_big(m->params);
    lmf_free_big(m->grads);
    lmf_free_big(m->acts);
    free(m->la);
    free(m->ids);
    free(m->doc_starts);
    for (int i = 0; i < LMF_GPT_MAX_SLOTS; i++) lmf_wgrad_list_free(&m->wlist[i]);
    free(m);
}

const lmf_gpt_config *lmf_gpt_cfg(const lmf_gpt *m) { return &m->cfg; }
const lmf_param_layout *lmf_gpt_layout(const lmf_gpt *m) { return &m->layout; }
const lmf_kernels *lmf_gpt_kernels(const lmf_gpt *m) { return m->ops.k; }
float *lmf_gpt_params(lmf_gpt *m) { return m->owner ? m->owner->params : m->params; }
float *lmf_gpt_grads(lmf_gpt *m) { return m->owner ? m->owner->grads : m->grads; }
lmf_status lmf_gpt_set_kernels(lmf_gpt *m, const lmf_kernels *k) {
    if (k == m->ops.k) return LMF_OK;
    m->ops.k = k;
    if (!m->acts) return LMF_OK;
    int B = m->B, T = m->T;
    m->B = 0; /* force a new allocation */
    return lmf_gpt_reserve_slots(m, B, T, m->mode, m->slots);
}

void lmf_gpt_set_hooks(lmf_gpt *m, const lmf_gpt_hooks *h) {
    if (h) {
        m->hooks = *h;
        m->has_hooks = 1;
    } else {
        memset(&m->hooks, 0, sizeof m->hooks);
        m->has_hooks = 0;
    }
}

void lmf_gpt_drop_params(lmf_gpt *m) {
    lmf_free_big(m->params);
    m->params = NULL;
}

void lmf_gpt_adopt_params(lmf_gpt *m, float *params) {
    lmf_free_big(m->params);
    m->params = params;
}

static void init_whole(const lmf_gpt_config *cfg, const lmf_param_layout *l, float *params,
                       uint64_t seed);

void lmf_gpt_init_weights(lmf_gpt *m, uint64_t seed) {
    if (m->layout.tp.size == 1) {
        init_whole(&m->cfg, &m->layout, m->params, seed);
        return;
    }
    /* a slice of the whole model's initialisation, so that every split starts from the
     * same weights */
    lmf_param_layout whole;
    LMF_ASSERT(lmf_layout_build(&m->cfg, &whole) == LMF_OK);
    float *w = malloc(whole.total * sizeof(float));
    LMF_ASSERT(w != NULL);
    init_whole(&m->cfg, &whole, w, seed);
    lmf_layout_slice(&m->layout, &whole, w, m->params);
    free(w);
    lmf_layout_free(&whole);
}

static void init_whole(const lmf_gpt_config *cfg, const lmf_param_layout *l, float *params,
                       uint64_t seed) {
    float resid_std = 0.02f / sqrtf(2.0f * (float)cfg->n_layer);
    int llama = cfg->family == LMF_FAMILY_LLAMA;
    for (int i = 0; i < l->n_tensors; i++) {
        const lmf_tensor_info *t = &l->tensors[i];
        float *p = params + t->offset;
        /* one stream per tensor, so the values do not depend on the layout order */
        lmf_rng r;
        lmf_rng_seed(&r, lmf_rng_mix(seed, (uint64_t)i + 1));
        if (t->ndim == 1) { /* Llama's 1-D tensors are all norm weights */
            float v = llama || (strstr(t->name, "ln_") && strstr(t->name, ".weight")) ? 1.0f : 0.0f;
            for (size_t j = 0; j < t->numel; j++) p[j] = v;
            continue;
        }
        int resid = strstr(t->name, llama ? "o_proj.weight" : "c_proj.weight") != NULL ||
                    (llama && strstr(t->name, "down_proj.weight") != NULL);
        float std = resid ? resid_std : 0.02f;
        size_t real = (size_t)(t->shape[0] * t->shape[1]); /* wte: padded rows stay 0 */
        for (size_t j = 0; j < t->numel; j++) p[j] = j < real ? std * lmf_rng_normal(&r) : 0.0f;
    }
}

lmf_status lmf_gpt_reserve(lmf_gpt *m, int B, int T, lmf_reserve_mode mode) {
    return lmf_gpt_reserve_slots(m, B, T, mode, 1);
}

/* the floats of one slot's activations: the stage's layers only */
static size_t slot_floats(const lmf_gpt *m, int B, int T, lmf_reserve_mode mode) {
    const lmf_tp_dims *d = &m->layout.tp;
    lmf_tp_config tpc = {d->size, d->rank, d->sequence_parallel};
    int last = m->run_l0 + m->run_n == m->cfg.n_layer;
    return lmf_gpt_stage_activation_floats(&m->cfg, &tpc, m->ops.k, B, T, mode, m->recompute,
                                           m->run_n, last);
}

/* Point the activation views at slot s's part of the block (no allocation). */
static void carve(lmf_gpt *m, int s) {
    const lmf_kernels *k = m->ops.k;
    const lmf_tp_dims *d = &m->layout.tp;
    int B = m->B, T = m->T, C = m->cfg.n_embd;
    int training = m->mode != LMF_RESERVE_INFERENCE;
    lmf_recompute rc = m->reserved_recompute;
    size_t BT = (size_t)B * T, BTC = BT * C;
    size_t R = d->sequence_parallel ? BT / (size_t)d->size : BT, RC = R * C;
    size_t att = k->attention_saved_floats(B, T, d->heads);
    lmf_act_widths aw;
    lmf_gpt_act_widths(&m->cfg, d, &aw);
    size_t st = aw.stats - 1; /* floats of the mean per row: 1 (LayerNorm) or 0 (RMSNorm) */
    size_t gelu = BT * aw.act;
    float *base = m->acts + (size_t)s * m->acts_floats;
    float *p = base;
    m->encoded = take(&p, RC);
    layer_acts sh;
    memset(&sh, 0, sizeof sh);
    if (rc == LMF_RECOMPUTE_FULL) {
        sh.ln1 = take(&p, RC); sh.ln1_mean = take(&p, st * R); sh.ln1_rstd = take(&p, R);
        sh.qkv = take(&p, BT * aw.qkv); sh.atty = take(&p, BT * d->width); sh.att_saved = take(&p, att);
        sh.residual2 = take(&p, RC); sh.ln2 = take(&p, RC); sh.ln2_mean = take(&p, st * R); sh.ln2_rstd = take(&p, R);
        sh.fch = take(&p, BT * aw.fch);
    }
    if (rc != LMF_RECOMPUTE_NONE) sh.fch_gelu = take(&p, gelu);
    for (int l = 0; l < m->run_n; l++) {
        layer_acts *a = &m->la[l];
        *a = sh;
        if (rc != LMF_RECOMPUTE_FULL) {
            a->ln1 = take(&p, RC); a->ln1_mean = take(&p, st * R); a->ln1_rstd = take(&p, R);
            a->qkv = take(&p, BT * aw.qkv); a->atty = take(&p, BT * d->width); a->att_saved = take(&p, att);
            a->residual2 = take(&p, RC); a->ln2 = take(&p, RC); a->ln2_mean = take(&p, st * R); a->ln2_rstd = take(&p, R);
            a->fch = take(&p, BT * aw.fch);
        }
        if (rc == LMF_RECOMPUTE_NONE) a->fch_gelu = take(&p, gelu);
        a->residual3 = take(&p, RC);
    }
    m->lnf = take(&p, RC); m->lnf_mean = take(&p, st * R); m->lnf_rstd = take(&p, R);
    m->losses = take(&p, BT);
    if (m->run_l0 + m->run_n < m->cfg.n_layer) { /* no classifier here */
        m->cls_scratch = m->cls_stats = m->cls_lse = NULL;
    } else if (d->size == 1) {
        m->cls_scratch = take(&p, lmf_gpt_classifier_floats(&m->cfg, d, k, (int)BT));
        m->cls_stats = m->cls_lse = NULL;
    } else {
        size_t VR = BT < LMF_VP_LOSS_ROWS ? BT : LMF_VP_LOSS_ROWS; /* a chunk's rows */
        m->cls_scratch = take(&p, k->classifier_vp_scratch_floats((int)VR, d->vocab_real));
        m->cls_stats = take(&p, (size_t)3 * d->size * VR);
        m->cls_lse = take(&p, VR);
    }
    if (d->sequence_parallel) { /* whole rows gathered; partial sums before the scatter */
        m->sp_gather = take(&p, BTC);
        m->sp_part = take(&p, BTC);
    } else {
        m->sp_gather = m->sp_part = NULL;
    }
    if (training) {
        m->dres = take(&p, RC); m->dbtc = take(&p, BTC); m->dqkv = take(&p, BT * aw.dqkv);
        m->d4a = take(&p, BT * aw.d4a);
        m->att_scratch = take(&p, lmf_gpt_attention_scratch(&m->cfg, d, k, B, T));
    } else {
        m->dres = m->dbtc = m->dqkv = m->d4a = m->att_scratch = NULL;
    }
    LMF_ASSERT((size_t)(p - base) == m->acts_floats);
    m->inputs = m->ids + (size_t)s * 2 * BT;
    m->targets = m->inputs + BT;
    m->doc_start = m->doc_starts + (size_t)s * BT;
    m->slot = s;
}

lmf_status lmf_gpt_reserve_slots(lmf_gpt *m, int B, int T, lmf_reserve_mode mode, int slots) {
    if (B < 1 || T < 1)
        return lmf_fail(LMF_ERR_ARG, "batch %d x %d: both must be at least 1", B, T);
    if (slots < 1 || slots > LMF_GPT_MAX_SLOTS)
        return lmf_fail(LMF_ERR_ARG, "%d micro-batch slots: give 1 to %d", slots,
                        LMF_GPT_MAX_SLOTS);
    if (T > m->cfg.n_positions)
        return lmf_fail(LMF_ERR_ARG,
                        "sequence length %d exceeds the model's n_positions %d; use --seq <= %d",
                        T, m->cfg.n_positions, m->cfg.n_positions);
    int training = mode != LMF_RESERVE_INFERENCE;
    lmf_recompute rc = training ? m->recompute : LMF_RECOMPUTE_NONE;
    if (m->acts && m->B == B && m->T == T && m->mode == mode && m->reserved_recompute == rc &&
        m->slots == slots)
        return LMF_OK;
    lmf_free_big(m->acts);
    free(m->la);
    free(m->ids);
    free(m->doc_starts);
    m->acts = NULL;
    m->la = NULL;
    m->ids = NULL;
    m->doc_starts = NULL;
    const lmf_tp_dims *d = &m->layout.tp;
    size_t BT = (size_t)B * T;
    if (d->sequence_parallel && BT % (size_t)d->size != 0)
        return lmf_fail(LMF_ERR_ARG, "sequence parallelism splits the batch's %zu positions "
                        "over --tp %d ranks: choose --batch x --seq divisible by %d", BT,
                        d->size, d->size);
    /* what one layer keeps for its backward; recomputation keeps less per layer and shares
     * one copy of the rest (selective: the GELU output; full: all but the layer's output).
     * The sizes are summed by lmf_gpt_activation_floats; carve's views must add up to it.
     * Each micro-batch slot has its own copy. */
    size_t total = slot_floats(m, B, T, mode);
    m->acts = lmf_calloc_big((size_t)slots * total, sizeof(float));
    m->la = calloc((size_t)m->run_n, sizeof *m->la);
    m->ids = malloc((size_t)slots * 2 * BT * sizeof(int32_t));
    m->doc_starts = malloc((size_t)slots * BT * sizeof(int));
    int own_grads = mode == LMF_RESERVE_TRAIN;
    lmf_gpt *g = m->owner ? m->owner : m; /* a chunk's gradients are its stage's */
    if (own_grads && !g->grads) g->grads = lmf_calloc_big(m->layout.total, sizeof(float));
    if (!m->acts || !m->la || !m->ids || !m->doc_starts || (own_grads && !g->grads))
        return lmf_fail(LMF_ERR_NOMEM, "cannot allocate activations for batch %d x %d (%.1f MB)",
                        B, T, (double)total * slots * 4 / 1e6);
    m->acts_floats = total;
    m->slots = slots;
    m->B = B;
    m->T = T;
    m->mode = mode;
    m->reserved_recompute = rc;
    memset(m->slot_state, 0, sizeof m->slot_state);
    m->state = FORWARD_NONE;
    carve(m, 0);
    return LMF_OK;
}

size_t lmf_gpt_activation_bytes(const lmf_gpt *m) {
    size_t wg = 0; /* a split backward's deferred inputs, as large as the last steps made them */
    for (int i = 0; i < LMF_GPT_MAX_SLOTS; i++)
        wg += m->wlist[i].cap_floats * sizeof(float) + (size_t)m->wlist[i].cap * sizeof(lmf_wgrad_entry);
    return m->acts_floats * (size_t)m->slots * sizeof(float) + wg +
           (m->grads ? m->layout.total * sizeof(float) : 0); /* a chunk's: its stage's */
}

/* ---- block placement through the hooks ---- */

float *lmf_gpt_block_params(lmf_gpt *m, int b, int phase) {
    float *p = NULL;
    if (m->has_hooks && m->hooks.block_params) p = m->hooks.block_params(m->hooks.ctx, b, phase);
    return p ? p : lmf_gpt_params(m) + m->layout.block_offset[b];
}

void lmf_gpt_release_params(lmf_gpt *m, int b, int phase) {
    if (m->has_hooks && m->hooks.release_params) m->hooks.release_params(m->hooks.ctx, b, phase);
}

static float *block_grads(lmf_gpt *m, int b) {
    float *p = NULL;
    if (m->has_hooks && m->hooks.block_grads) p = m->hooks.block_grads(m->hooks.ctx, b);
    return p ? p : lmf_gpt_grads(m) + m->layout.block_offset[b];
}

/* block b's gradient is complete: handed over by the chunk that covers it
 * (lmf_layout_block_chunk), once per micro-batch */
static void grads_ready(lmf_gpt *m, int b) {
    if (lmf_layout_block_chunk(&m->layout, b) != m->chunk) return;
    if (m->has_hooks && m->hooks.grads_ready) m->hooks.grads_ready(m->hooks.ctx, b);
}

/* a row-parallel product's bias: added by one rank of the group, before the sum */
static const float *row_bias(const lmf_gpt *m, const float *b) {
    return m->layout.tp.rank == 0 ? b : NULL;
}
/* its gradient: from the whole rows' output gradient, which every rank has; under sequence
 * parallelism one rank takes it (the engine sums the group's) */
static float *row_bias_grad(const lmf_gpt *m, float *g) {
    return m->layout.tp.sequence_parallel && m->layout.tp.rank != 0 ? NULL : g;
}

/* wpe inside block 0 (GPT-2), or NULL (Llama: no position embedding) */
static float *wpe_of(const lmf_gpt *m, float *block0) {
    return m->cfg.family == LMF_FAMILY_LLAMA ? NULL : block0 + m->layout.tensors[1].offset;
}

size_t lmf_gpt_classifier_offset(const lmf_gpt *m) {
    return lmf_config_tied(&m->cfg) ? 0 : m->layout.tensors[1].offset; /* lm_head */
}

/* The layer's attention: over the rows just computed, or (inference) with their keys and values
 * appended to the cache and the queries attending over all of it. */
static void layer_attention(lmf_gpt *m, layer_acts *a, layer_cache *cache, int B, int T) {
    int C = m->cfg.n_embd, NH = m->cfg.n_head;
    if (!cache) {
        const lmf_tp_dims *d = &m->layout.tp;
        attention_forward(&m->ops, a->atty, a->att_saved, a->qkv, m->cur_doc, B, T, d->width,
                          d->heads);
        return;
    }
    size_t row = (size_t)C * sizeof(float);
    for (int t = 0; t < T; t++) {
        const float *qkv = a->qkv + (size_t)t * 3 * C;
        memcpy(cache->k + (size_t)(cache->past + t) * C, qkv + C, row);
        memcpy(cache->v + (size_t)(cache->past + t) * C, qkv + 2 * C, row);
    }
    attention_kv_forward(&m->ops, a->atty, cache->scratch, a->qkv, (size_t)3 * C, cache->k,
                         cache->v, cache->past, T, C, NH);
    cache->past += T;
}

/* One transformer layer's forward from its input x[B,T,C] into the activations a.
 * ln1_ready: a->ln1 (and its statistics) were already computed by the caller, fused with the
 * previous layer's last residual add; otherwise it is LayerNorm(x) here.
 * to_output = 0 stops after the GELU: what a recomputing backward needs again. With
 * to_output = 1, a->residual3 receives the MLP projection only: the residual add
 * (residual3 = residual2 + projection) is fused into the next LayerNorm (the next layer's
 * ln1, or the final LayerNorm) by the caller. */
static void layer_forward(lmf_gpt *m, const lmf_layer_view *wp, layer_acts *a, const float *x,
                          int B, int T, int to_output, int ln1_ready, layer_cache *cache) {
    lmf_ops *o = &m->ops;
    lmf_layer_view w = *wp;
    int C = m->cfg.n_embd, BT = B * T, W = m->layout.tp.width, F = m->layout.tp.ffn;
    int R = lmf_gpt_local_rows(m, BT); /* the rows of x, the norms and the residual stream */
    if (!ln1_ready) layernorm_forward(o, a->ln1, a->ln1_mean, a->ln1_rstd, x, w.ln1w, w.ln1b, R, C);
    /* tensor parallelism: this rank's heads (columns of q, k and v) over every row ... */
    matmul_forward(o, a->qkv, lmf_gpt_sp_gather(m, a->ln1, BT), w.qkvw, w.qkvb, BT, C, 3 * W);
    layer_attention(m, a, cache, B, T);
    /* ... and their rows of the projection: a partial sum, summed over the group (or summed
     * and scattered by rows). residual2 holds the projection first, then x + projection,
     * normalised into ln2 in the same pass */
    float *part = lmf_gpt_sp_partial(m, a->residual2);
    matmul_forward(o, part, a->atty, w.attprojw, row_bias(m, w.attprojb), BT, W, C);
    lmf_gpt_sp_reduce(m, part, a->residual2, BT);
    residual_layernorm_forward(o, a->residual2, a->ln2, a->ln2_mean, a->ln2_rstd, x, a->residual2,
                               w.ln2w, w.ln2b, R, C);
    /* fch = ln2 @ fcw + fcb and its GELU, in the GEMM's epilogue */
    matmul_gelu_forward(o, a->fch, a->fch_gelu, lmf_gpt_sp_gather(m, a->ln2, BT), w.fcw, w.fcb,
                        BT, C, F);
    if (!to_output) return;
    part = lmf_gpt_sp_partial(m, a->residual3);
    matmul_forward(o, part, a->fch_gelu, w.fcprojw, row_bias(m, w.fcprojb), BT, F, C);
    lmf_gpt_sp_reduce(m, part, a->residual3, BT);
}

/* The Llama family's layers and final RMSNorm (lmf_gpt_layers_forward's contract). */
static void llama_layers_forward(lmf_gpt *m, layer_acts *la, int shared, const float *x,
                                 float *lnf, float *lnf_rstd, int B, int T, layer_cache *cache) {
    int L = m->cfg.n_layer, C = m->cfg.n_embd, BT = lmf_gpt_local_rows(m, B * T);
    int l0 = m->run_l0, n = m->run_n;
    for (int i = 0; i < n; i++) {
        int l = l0 + i;
        lmf_layer_view w;
        lmf_layout_layer_view_of(&m->layout, &m->cfg, lmf_gpt_block_params(m, 1 + l, 0), &w);
        layer_acts *a = shared ? la : &la[i];
        lmf_llama_layer_forward(m, &w, a, x, B, T, 1, cache ? &cache[l] : NULL);
        lmf_gpt_release_params(m, 1 + l, 0);
        x = a->residual3;
    }
    if (l0 + n < L) return; /* a pipeline stage before the last: its output is x */
    float *pf = lmf_gpt_block_params(m, L + 1, 0);
    rmsnorm_forward(&m->ops, lnf, lnf_rstd, x, pf, m->cfg.rms_norm_eps, BT, C);
    lmf_gpt_release_params(m, L + 1, 0);
}

void lmf_gpt_layers_forward(lmf_gpt *m, layer_acts *la, int shared, const float *x, float *lnf,
                            float *lnf_mean, float *lnf_rstd, int B, int T, layer_cache *cache) {
    if (m->cfg.family == LMF_FAMILY_LLAMA) {
        llama_layers_forward(m, la, shared, x, lnf, lnf_rstd, B, T, cache);
        return;
    }
    /* BT: the rows of the residual stream this rank holds; the stage's layers [l0, l0 + n) */
    int L = m->cfg.n_layer, C = m->cfg.n_embd, BT = lmf_gpt_local_rows(m, B * T);
    int l0 = m->run_l0, n = m->run_n;
    for (int i = 0; i < n; i++) {
        int l = l0 + i;
        lmf_layer_view w;
        lmf_layout_layer_view_of(&m->layout, &m->cfg, lmf_gpt_block_params(m, 1 + l, 0), &w);
        layer_acts *a = shared ? la : &la[i];
        if (i > 0) { /* finish the previous layer: residual3 = residual2 + projection, and ln1 */
            layer_acts *p = shared ? la : &la[i - 1];
            residual_layernorm_forward(&m->ops, p->residual3, a->ln1, a->ln1_mean, a->ln1_rstd,
                                       p->residual2, p->residual3, w.ln1w, w.ln1b, BT, C);
        }
        layer_forward(m, &w, a, x, B, T, 1, i > 0, cache ? &cache[l] : NULL);
        lmf_gpt_release_params(m, 1 + l, 0);
        x = a->residual3;
    }
    layer_acts *p = shared ? la : &la[n - 1];
    if (l0 + n < L) { /* a pipeline stage before the last: its output, the residual add done */
        residual_forward(&m->ops, p->residual3, p->residual2, p->residual3, (size_t)BT * C);
        return;
    }
    /* the last layer's residual add, fused with the final LayerNorm */
    float *pf = lmf_gpt_block_params(m, L + 1, 0);
    residual_layernorm_forward(&m->ops, p->residual3, lnf, lnf_mean, lnf_rstd, p->residual2,
                               p->residual3, pf, pf + C, BT, C);
    lmf_gpt_release_params(m, L + 1, 0);
}

/* The vocabulary-parallel cross-entropy: each rank's statistics over its rows of the
 * vocabulary, gathered and combined into every row's log-sum-exp and loss; in training, each
 * rank's part of the input gradient (summed over the group) and its rows' weight gradient, from
 * the logits the statistics kept. Chunk by chunk of LMF_VP_LOSS_ROWS rows, so only a chunk's
 * logits exist; the full logits are never gathered. */
static void vocab_parallel_loss(lmf_gpt *m, float *dx, float *dw, const float *w,
                                const int32_t *targets, int N) {
    const lmf_tp_dims *d = &m->layout.tp;
    int C = m->cfg.n_embd;
    const float *x = lmf_gpt_sp_gather(m, m->lnf, N); /* every row, on every rank */
    for (int n0 = 0; n0 < N; n0 += LMF_VP_LOSS_ROWS) {
        int R = N - n0 < LMF_VP_LOSS_ROWS ? N - n0 : LMF_VP_LOSS_ROWS;
        size_t part = (size_t)3 * R;
        const float *xc = x + (size_t)n0 * C;
        classifier_vp_stats(&m->ops, m->cls_stats + (size_t)d->rank * part, m->cls_scratch, xc,
                            w, targets + n0, d->vocab0, R, C, d->vocab_real);
        lmf_gpt_tp(m, LMF_TP_GATHER, m->cls_stats, NULL, part);
        lmf_classifier_vp_combine(m->losses + n0, m->cls_lse, m->cls_stats, d->size, R);
        if (dx)
            classifier_vp_backward(&m->ops, dx + (size_t)n0 * C, dw, m->cls_scratch, xc, w,
                                   targets + n0, m->cls_lse, m->dloss, d->vocab0, R, C,
                                   d->vocab_real);
    }
    if (!dx) return;
    /* summed over the group; under sequence parallelism this rank's rows into sp_part */
    lmf_gpt_sp_reduce(m, dx, lmf_gpt_sp_partial(m, dx), N);
}

/* one id array checked against the vocabulary */
static lmf_status check_ids(const int32_t *ids, size_t n, int V) {
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= V)
            return lmf_fail(LMF_ERR_ARG,
                            "token id %d at position %zu is outside the vocabulary (size %d); "
                            "the data and the model do not match", ids[i], i, V);
    return LMF_OK;
}

/* The forward of the current slot: from inputs (first stage) or x (a later stage's input),
 * through the stage's layers, to the loss over targets (last stage). */
static lmf_status forward_run(lmf_gpt *m, const int32_t *inputs, const int32_t *targets,
                              const float *x, int B, int T, int train, float dloss_scale,
                              float *loss) {
    int training = train != 0;
    if (!m->acts || B > m->B || T > m->T || (B != m->B && T != m->T) ||
        (training && m->mode == LMF_RESERVE_INFERENCE))
        return lmf_fail(LMF_ERR_STATE, "forward with batch %d x %d%s does not match the reserved "
                        "%d x %d", B, T, training ? " (training)" : "", m->B, m->T);
    if (T > m->cfg.n_positions)
        return lmf_fail(LMF_ERR_ARG, "sequence length %d exceeds n_positions %d", T,
                        m->cfg.n_positions);
    int C = m->cfg.n_embd, V = m->cfg.vocab_size;
    int first = m->run_l0 == 0, last = m->run_l0 + m->run_n == m->cfg.n_layer;
    size_t BT = (size_t)B * T;
    if (!last) targets = NULL;
    if (first ? !inputs : !x)
        return lmf_fail(LMF_ERR_ARG, "a pipeline stage's forward needs %s",
                        first ? "the token ids" : "the previous stage's output");
    if (first) LMF_TRY(check_ids(inputs, BT, V));
    if (targets) LMF_TRY(check_ids(targets, BT, V));
    if (first) memcpy(m->inputs, inputs, BT * sizeof(int32_t));
    if (targets) memcpy(m->targets, targets, BT * sizeof(int32_t));
    m->cur_B = B;
    m->cur_T = T;
    if (m->eot_id >= 0 && !inputs) /* a later stage reads the ids for the mask alone */
        return lmf_fail(LMF_ERR_ARG, "document masking needs the micro-batch's token ids on "
                        "every pipeline stage: pass them to lmf_gpt_stage_forward");
    m->cur_doc = lmf_gpt_doc_mask_batch(m, inputs, B, T);

    const lmf_tp_dims *d = &m->layout.tp;
    if (d->size > 1 && !(m->has_hooks && m->hooks.tp_collective))
        return lmf_fail(LMF_ERR_STATE, "a tensor-parallel model (rank %d of %d) needs the "
                        "tp_collective hook", d->rank, d->size);
    float *p0 = first || last ? lmf_gpt_block_params(m, 0, 0) : NULL;
    if (!first) {
        memcpy(m->encoded, x, lmf_gpt_stage_floats(m, B, T) * sizeof(float));
    } else if (d->size == 1) {
        encoder_forward(&m->ops, m->encoded, inputs, p0, wpe_of(m, p0), B, T, C);
    } else { /* each rank embeds the ids in its rows of the vocabulary; the sum is the lookup */
        float *part = lmf_gpt_sp_partial(m, m->encoded);
        encoder_vp_forward(&m->ops, part, inputs, p0, d->rank == 0 ? wpe_of(m, p0) : NULL,
                           d->vocab0, d->vocab_rows, B, T, C);
        lmf_gpt_sp_reduce(m, part, m->encoded, (int)BT);
    }
    lmf_gpt_layers_forward(m, m->la, 0, m->encoded, m->lnf, m->lnf_mean, m->lnf_rstd, B, T, NULL);

    double sum = 0.0;
    if (targets) {
        const float *wcls = p0 + lmf_gpt_classifier_offset(m);
        float *dx = NULL, *dwte = NULL;
        if (training) {
            dx = m->dbtc;
            dwte = block_grads(m, 0) + lmf_gpt_classifier_offset(m);
        }
        m->dloss = dloss_scale / (float)BT;
        if (d->size == 1)
            classifier(&m->ops, m->losses, dx, dwte, m->cls_scratch, m->lnf, wcls, targets,
                       m->dloss, (int)BT, C, V);
        else
            vocab_parallel_loss(m, dx, dwte, wcls, targets, (int)BT);
        for (size_t i = 0; i < BT; i++) sum += m->losses[i];
    }
    if (!training && p0) lmf_gpt_release_params(m, 0, 0);
    m->state = training ? FORWARD_TRAIN : FORWARD_EVAL;
    if (loss) *loss = targets ? (float)(sum / (double)BT) : 0.0f;
    return LMF_OK;
}

lmf_status lmf_gpt_forward(lmf_gpt *m, const int32_t *inputs, const int32_t *targets, int B,
                           int T, int train, float dloss_scale, float *loss) {
    return forward_run(m, inputs, targets, NULL, B, T, train, dloss_scale, loss);
}

/* The GPT-2 layer's backward: m->dres holds d residual3 and receives d x. */
static void gpt2_layer_backward(lmf_gpt *m, const lmf_layer_view *wp, const lmf_layer_view *gp,
                                layer_acts *a, const float *x, int B, int T) {
    lmf_ops *o = &m->ops;
    lmf_layer_view w = *wp, g = *gp;
    const lmf_tp_dims *d = &m->layout.tp;
    int C = m->cfg.n_embd, BT = B * T, W = d->width, F = d->ffn, NH = d->heads;
    int R = lmf_gpt_local_rows(m, BT); /* rows of x, the norms and dres */
    float *dl = lmf_gpt_sp_partial(m, m->dbtc); /* a norm's output gradient, this rank's rows */
    /* bring back what the forward did not keep (same kernels, same inputs: same values) */
    if (m->reserved_recompute == LMF_RECOMPUTE_FULL)
        layer_forward(m, &w, a, x, B, T, 0, 0, NULL);
    else if (m->reserved_recompute == LMF_RECOMPUTE_SELECTIVE)
        gelu_forward(o, a->fch_gelu, a->fch, (size_t)BT * (size_t)F);
    /* dres = d residual3: MLP branch. matmul_backward, gelu_bias_backward and
     * attention_backward write their activation gradients (d4a, dbtc, dqkv), so nothing
     * is zeroed here; layernorm_backward adds into dres, the residual stream's gradient. */
    matmul_backward(o, m->d4a, g.fcprojw, row_bias_grad(m, g.fcprojb),
                    lmf_gpt_sp_gather(m, m->dres, BT), a->fch_gelu, w.fcprojw, BT, F, C);
    /* d4a becomes d fch in place, and fcb's gradient is summed in the same pass */
    gelu_bias_backward(o, m->d4a, g.fcb, a->fch, m->d4a, BT, F);
    /* column-parallel: each rank's part of the input gradient, summed over the group */
    matmul_backward(o, m->dbtc, g.fcw, NULL, m->d4a, lmf_gpt_sp_gather(m, a->ln2, BT), w.fcw, BT,
                    C, F);
    lmf_gpt_sp_reduce(m, m->dbtc, dl, BT);
    layernorm_backward(o, m->dres, g.ln2w, g.ln2b, dl, a->residual2, w.ln2w, a->ln2_mean,
                       a->ln2_rstd, R, C);
    /* dres = d residual2: attention branch */
    matmul_backward(o, m->dbtc, g.attprojw, row_bias_grad(m, g.attprojb),
                    lmf_gpt_sp_gather(m, m->dres, BT), a->atty, w.attprojw, BT, W, C);
    attention_backward(o, m->dqkv, m->att_scratch, m->dbtc, a->qkv, a->att_saved, m->cur_doc, B,
                       T, W, NH);
    matmul_backward(o, m->dbtc, g.qkvw, g.qkvb, m->dqkv, lmf_gpt_sp_gather(m, a->ln1, BT), w.qkvw,
                    BT, C, 3 * W);
    lmf_gpt_sp_reduce(m, m->dbtc, dl, BT);
    layernorm_backward(o, m->dres, g.ln1w, g.ln1b, dl, x, w.ln1w, a->ln1_mean, a->ln1_rstd, R, C);
}

/* The backward of the current slot: from the loss (last stage) or dy, the gradient of the
 * stage's output; on stages after the first the input's gradient is left in m->dres. With
 * `split` (ZB-H1's input half) the matmuls' weight and bias gradients are recorded for
 * backward_weights and no block is handed over (grads_ready) yet; the norms' and embeddings'
 * small gradients are still added here. */
static lmf_status backward_run(lmf_gpt *m, const float *dy, int split) {
    lmf_ops *o = &m->ops;
    LMF_ASSERT(m->state == FORWARD_TRAIN); /* a backward needs a training forward first */
    int L = m->cfg.n_layer, C = m->cfg.n_embd;
    int B = m->cur_B, T = m->cur_T, BT = B * T;
    int R = lmf_gpt_local_rows(m, BT); /* the residual stream's rows on this rank */
    int llama = m->cfg.family == LMF_FAMILY_LLAMA;
    int l0 = m->run_l0, n = m->run_n, first = l0 == 0, last = l0 + n == L;
    lmf_wgrad *wg = &m->wgrad;
    if (split) {
        m->wlist[m->slot].n = 0;
        m->wlist[m->slot].used = 0;
        wg->list = &m->wlist[m->slot];
        wg->err = LMF_OK;
        /* what the weight half reads must outlive the other slots' backwards: recomputed
         * activations share one copy, gathered rows a scratch buffer */
        wg->copy_inputs = m->reserved_recompute != LMF_RECOMPUTE_NONE ||
                          m->layout.tp.sequence_parallel;
    }
#define READY(b) \
    do { \
        if (!split) grads_ready(m, (b)); \
    } while (0)

    /* blocks of later stages: nothing to compute, their (empty) gradients are complete */
    for (int b = L + 1; !last && b > l0 + n; b--) READY(b);
    if (last) { /* final norm: dlnf (from the classifier: in dbtc, or this rank's rows in
                 * sp_part) -> dres */
        float *pf = lmf_gpt_block_params(m, L + 1, 1);
        float *gf = block_grads(m, L + 1);
        const float *xlast = m->la[n - 1].residual3;
        const float *dlnf = lmf_gpt_sp_partial(m, m->dbtc);
        zero_floats(o, m->dres, (size_t)R * (size_t)C);
        if (llama)
            rmsnorm_backward(o, m->dres, gf, dlnf, xlast, pf, m->lnf_rstd, R, C);
        else
            layernorm_backward(o, m->dres, gf, gf + C, dlnf, xlast, pf, m->lnf_mean, m->lnf_rstd,
                               R, C);
        READY(L + 1);
        lmf_gpt_release_params(m, L + 1, 1);
    } else {
        memcpy(m->dres, dy, (size_t)R * (size_t)C * sizeof(float));
    }

    for (int i = n - 1; i >= 0; i--) {
        int l = l0 + i;
        lmf_layer_view w, g;
        float *gb = block_grads(m, 1 + l);
        lmf_layout_layer_view_of(&m->layout, &m->cfg, lmf_gpt_block_params(m, 1 + l, 1), &w);
        lmf_layout_layer_view_of(&m->layout, &m->cfg, gb, &g);
        layer_acts *a = &m->la[i];
        const float *x = i > 0 ? m->la[i - 1].residual3 : m->encoded;
        if (split) {
            wg->block = 1 + l;
            wg->gbase = gb;
            o->defer = wg;
        }
        if (llama)
            lmf_llama_layer_backward(m, &w, &g, a, x, B, T);
        else
            gpt2_layer_backward(m, &w, &g, a, x, B, T);
        o->defer = NULL;
        READY(1 + l);
        lmf_gpt_release_params(m, 1 + l, 1);
    }
    if (first) {
        float *g0 = block_grads(m, 0);
        const lmf_tp_dims *d = &m->layout.tp;
        if (d->size == 1)
            encoder_backward(o, g0, wpe_of(m, g0), m->dres, m->inputs, B, T, C);
        else /* every position's gradient; under sequence parallelism wpe's on one rank */
            encoder_vp_backward(o, g0, row_bias_grad(m, wpe_of(m, g0)),
                                lmf_gpt_sp_gather(m, m->dres, BT), m->inputs, d->vocab0,
                                d->vocab_rows, B, T, C);
    }
    for (int b = l0; b >= 1; b--) READY(b); /* earlier stages' blocks: empty */
    READY(0); /* block 0: the embeddings' and the classifier's gradients, or empty */
#undef READY
    if (first || last) lmf_gpt_release_params(m, 0, 1);
    m->state = split ? FORWARD_WEIGHTS_DUE : FORWARD_NONE;
    return split ? wg->err : LMF_OK;
}

/* The weight half of the current slot's split backward: the recorded matmuls' weight and
 * bias gradients, block after block from the last, each block handed over as it completes
 * (in the order a whole backward hands them over). */
static void backward_weights(lmf_gpt *m) {
    LMF_ASSERT(m->state == FORWARD_WEIGHTS_DUE); /* after the input half */
    const lmf_wgrad_list *l = &m->wlist[m->slot];
    int i = 0;
    for (int b = m->cfg.n_layer + 1; b >= 0; b--) {
        if (i < l->n && l->e[i].block == b) i = lmf_wgrad_replay(&m->ops, l, i, b, block_grads(m, b));
        grads_ready(m, b);
    }
    LMF_ASSERT(i == l->n); /* recorded from the last block to the first */
    m->state = FORWARD_NONE;
}

void lmf_gpt_backward(lmf_gpt *m) { (void)backward_run(m, NULL, 0); }

/* ---- pipeline stages: slots ---- */

/* make slot s current, keeping the forward state of the one left */
static void use_slot(lmf_gpt *m, int s) {
    LMF_ASSERT(m->acts && s >= 0 && s < m->slots);
    if (s == m->slot) return;
    m->slot_state[m->slot] = m->state;
    m->slot_doc[m->slot] = m->cur_doc;
    carve(m, s);
    m->state = m->slot_state[s];
    m->cur_doc = m->slot_doc[s];
}

size_t lmf_gpt_stage_floats(const lmf_gpt *m, int B, int T) {
    return (size_t)lmf_gpt_local_rows(m, B * T) * (size_t)m->cfg.n_embd;
}

lmf_status lmf_gpt_stage_forward(lmf_gpt *m, int slot, const int32_t *inputs,
                                 const int32_t *targets, const float *x, int B, int T,
                                 float dloss_scale, float *loss) {
    if (!m->acts || slot < 0 || slot >= m->slots)
        return lmf_fail(LMF_ERR_STATE, "micro-batch slot %d: the stage reserved %d", slot,
                        m->acts ? m->slots : 0);
    use_slot(m, slot);
    return forward_run(m, inputs, targets, x, B, T, 1, dloss_scale, loss);
}

lmf_status lmf_gpt_stage_eval(lmf_gpt *m, int slot, const int32_t *inputs,
                              const int32_t *targets, const float *x, int B, int T,
                              float *loss) {
    if (!m->acts || slot < 0 || slot >= m->slots)
        return lmf_fail(LMF_ERR_STATE, "micro-batch slot %d: the stage reserved %d", slot,
                        m->acts ? m->slots : 0);
    use_slot(m, slot);
    return forward_run(m, inputs, targets, x, B, T, 0, 1.0f, loss);
}

const float *lmf_gpt_stage_output(lmf_gpt *m, int slot) {
    use_slot(m, slot);
    return m->la[m->run_n - 1].residual3;
}

void lmf_gpt_stage_backward(lmf_gpt *m, int slot, const float *dy) {
    use_slot(m, slot);
    LMF_ASSERT(dy || m->run_l0 + m->run_n == m->cfg.n_layer);
    (void)backward_run(m, dy, 0);
}

lmf_status lmf_gpt_stage_backward_input(lmf_gpt *m, int slot, const float *dy) {
    use_slot(m, slot);
    LMF_ASSERT(dy || m->run_l0 + m->run_n == m->cfg.n_layer);
    return backward_run(m, dy, 1);
}

void lmf_gpt_stage_backward_weights(lmf_gpt *m, int slot) {
    use_slot(m, slot);
    backward_weights(m);
}

const float *lmf_gpt_stage_input_grad(lmf_gpt *m) { return m->dres; }

void lmf_gpt_zero_grad(lmf_gpt *m) {
    float *g = lmf_gpt_grads(m);
    if (g) memset(g, 0, m->layout.total * sizeof(float));
}

void lmf_gpt_logits_at(lmf_gpt *m, int b, int t, float *logits) {
    LMF_ASSERT(m->layout.tp.size == 1); /* the whole vocabulary's logits: the whole model */
    int C = m->cfg.n_embd, V = m->cfg.vocab_size;
    const float *x = m->lnf + ((size_t)b * m->cur_T + t) * C;
    logits_forward(&m->ops, logits, x, m->params + lmf_gpt_classifier_offset(m), 1, C, V);
}

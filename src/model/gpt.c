/* GPT-2 model: parameters, activations, forward and backward over a kernel table. */
#include "lmforge/model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lmforge/perf.h"
#include "lmforge/rng.h"

/* Activations of one layer, views into the activation block. */
typedef struct layer_acts {
    float *ln1, *ln1_mean, *ln1_rstd, *qkv, *atty, *att_saved, *residual2;
    float *ln2, *ln2_mean, *ln2_rstd, *fch, *fch_gelu, *residual3;
} layer_acts;

struct lmf_gpt {
    lmf_gpt_config cfg;
    lmf_param_layout layout;
    const lmf_kernels *k;
    lmf_gpt_hooks hooks;
    int has_hooks;

    float *params;      /* own parameter block (layout.total floats) or NULL */
    float *grads;       /* own gradient block or NULL */

    /* activations for up to B x T */
    int B, T, training;
    float *acts;
    size_t acts_floats;
    float *encoded, *lnf, *lnf_mean, *lnf_rstd, *losses, *cls_scratch;
    layer_acts *la;
    /* backward scratch */
    float *dres, *dbtc, *dqkv, *d4a, *att_scratch;
    /* the current batch */
    int32_t *inputs, *targets;
    int cur_B, cur_T;
    float dloss;
    int forward_done;
    int profile;
    double phase_s[LMF_PHASE_COUNT];
    double phase_busy[LMF_PHASE_COUNT]; /* busy thread-seconds (see lmf_gpt_profile_read_busy) */
    lmf_recompute recompute;          /* asked for */
    lmf_recompute reserved_recompute; /* what the buffers were laid out for */
};

/* run one kernel call, timing it into a phase when profiling: wall seconds, and busy
 * thread-seconds = work inside the kernels' parallel regions + the calling thread's time
 * outside them (serial code) */
#define PH(phase, call)                                                         \
    do {                                                                        \
        if (m->profile) {                                                       \
            double ph_b0_, ph_w0_, ph_b1_, ph_w1_;                              \
            lmf_busy_read(&ph_b0_, &ph_w0_);                                    \
            double ph_t0_ = lmf_now_s();                                        \
            call;                                                               \
            double ph_dt_ = lmf_now_s() - ph_t0_;                               \
            lmf_busy_read(&ph_b1_, &ph_w1_);                                    \
            m->phase_s[phase] += ph_dt_;                                        \
            m->phase_busy[phase] += (ph_b1_ - ph_b0_) + (ph_dt_ - (ph_w1_ - ph_w0_)); \
        } else {                                                                \
            call;                                                               \
        }                                                                       \
    } while (0)
#define MM(call) PH(LMF_PHASE_MATMUL, call)
#define AT(call) PH(LMF_PHASE_ATTENTION, call)
#define EW(call) PH(LMF_PHASE_ELEMENTWISE, call)

void lmf_gpt_profile(lmf_gpt *m, int on) {
    m->profile = on;
    lmf_busy_enable(on);
}
void lmf_gpt_set_recompute(lmf_gpt *m, lmf_recompute r) { m->recompute = r; }
void lmf_gpt_profile_reset(lmf_gpt *m) {
    memset(m->phase_s, 0, sizeof m->phase_s);
    memset(m->phase_busy, 0, sizeof m->phase_busy);
}
void lmf_gpt_profile_read_busy(const lmf_gpt *m, double busy[LMF_PHASE_COUNT]) {
    memcpy(busy, m->phase_busy, sizeof m->phase_busy);
}
void lmf_gpt_profile_read(const lmf_gpt *m, double seconds[LMF_PHASE_COUNT]) {
    memcpy(seconds, m->phase_s, sizeof m->phase_s);
}
const char *lmf_phase_name(lmf_phase p) {
    static const char *const names[LMF_PHASE_COUNT] = {"matmul", "attention", "elementwise", "loss"};
    return p < LMF_PHASE_COUNT ? names[p] : "?";
}

lmf_status lmf_gpt_create(const lmf_gpt_config *cfg, const lmf_kernels *k, lmf_gpt **out) {
    *out = NULL;
    lmf_gpt *m = calloc(1, sizeof *m);
    if (!m) return lmf_fail(LMF_ERR_NOMEM, "cannot allocate the model");
    m->cfg = *cfg;
    m->k = k ? k : lmf_kernels_fast();
    lmf_status s = lmf_layout_build(cfg, &m->layout);
    if (s != LMF_OK) {
        free(m);
        return s;
    }
    m->params = calloc(m->layout.total, sizeof(float));
    if (!m->params) {
        size_t total = m->layout.total;
        lmf_gpt_free(m);
        return lmf_fail(LMF_ERR_NOMEM, "cannot allocate %zu parameters (%.1f MB)", total,
                        (double)total * 4 / 1e6);
    }
    *out = m;
    return LMF_OK;
}

void lmf_gpt_free(lmf_gpt *m) {
    if (!m) return;
    lmf_layout_free(&m->layout);
    free(m->params);
    free(m->grads);
    free(m->acts);
    free(m->la);
    free(m->inputs);
    free(m->targets);
    free(m);
}

const lmf_gpt_config *lmf_gpt_cfg(const lmf_gpt *m) { return &m->cfg; }
const lmf_param_layout *lmf_gpt_layout(const lmf_gpt *m) { return &m->layout; }
float *lmf_gpt_params(lmf_gpt *m) { return m->params; }
float *lmf_gpt_grads(lmf_gpt *m) { return m->grads; }
lmf_status lmf_gpt_set_kernels(lmf_gpt *m, const lmf_kernels *k) {
    if (k == m->k) return LMF_OK;
    m->k = k;
    if (!m->acts) return LMF_OK;
    int B = m->B, T = m->T, training = m->training;
    m->B = 0; /* force a new allocation */
    return lmf_gpt_reserve(m, B, T, training);
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
    free(m->params);
    m->params = NULL;
}

void lmf_gpt_adopt_params(lmf_gpt *m, float *params) {
    free(m->params);
    m->params = params;
}

void lmf_gpt_init_weights(lmf_gpt *m, uint64_t seed) {
    const lmf_param_layout *l = &m->layout;
    float resid_std = 0.02f / sqrtf(2.0f * (float)m->cfg.n_layer);
    for (int i = 0; i < l->n_tensors; i++) {
        const lmf_tensor_info *t = &l->tensors[i];
        float *p = m->params + t->offset;
        /* one stream per tensor, so the values do not depend on the layout order */
        lmf_rng r;
        lmf_rng_seed(&r, lmf_rng_mix(seed, (uint64_t)i + 1));
        if (t->ndim == 1) {
            float v = strstr(t->name, "ln_") && strstr(t->name, ".weight") ? 1.0f : 0.0f;
            for (size_t j = 0; j < t->numel; j++) p[j] = v;
            continue;
        }
        float std = (strstr(t->name, "c_proj.weight") != NULL) ? resid_std : 0.02f;
        size_t real = (size_t)(t->shape[0] * t->shape[1]); /* wte: padded rows stay 0 */
        for (size_t j = 0; j < t->numel; j++) p[j] = j < real ? std * lmf_rng_normal(&r) : 0.0f;
    }
}

lmf_status lmf_gpt_reserve(lmf_gpt *m, int B, int T, int training) {
    const lmf_kernels *k = m->k;
    if (B < 1 || T < 1)
        return lmf_fail(LMF_ERR_ARG, "batch %d x %d: both must be at least 1", B, T);
    if (T > m->cfg.n_positions)
        return lmf_fail(LMF_ERR_ARG,
                        "sequence length %d exceeds the model's n_positions %d; use --seq <= %d",
                        T, m->cfg.n_positions, m->cfg.n_positions);
    if (m->acts && m->B == B && m->T == T && m->training == training &&
        m->reserved_recompute == (training ? m->recompute : LMF_RECOMPUTE_NONE))
        return LMF_OK;
    free(m->acts);
    free(m->la);
    free(m->inputs);
    free(m->targets);
    m->acts = NULL;
    m->la = NULL;
    int L = m->cfg.n_layer, C = m->cfg.n_embd, NH = m->cfg.n_head, V = m->cfg.vocab_size;
    size_t BT = (size_t)B * T, BTC = BT * C;
    size_t att = k->attention_saved_floats(B, T, NH);
    /* what one layer keeps for its backward; recomputation keeps less per layer and shares
     * one copy of the rest (selective: the GELU output; full: all but the layer's output).
     * The sizes are summed by lmf_gpt_activation_floats; the views below must add up to it. */
    size_t gelu = 4 * BTC;
    lmf_recompute rc = training ? m->recompute : LMF_RECOMPUTE_NONE;
    size_t total = lmf_gpt_activation_floats(&m->cfg, k, B, T, training, m->recompute);
    m->acts = malloc(total * sizeof(float));
    m->la = calloc((size_t)L, sizeof *m->la);
    m->inputs = malloc(BT * sizeof(int32_t));
    m->targets = malloc(BT * sizeof(int32_t));
    if (training == 1 && !m->grads) m->grads = calloc(m->layout.total, sizeof(float));
    if (!m->acts || !m->la || !m->inputs || !m->targets || (training == 1 && !m->grads))
        return lmf_fail(LMF_ERR_NOMEM, "cannot allocate activations for batch %d x %d (%.1f MB)",
                        B, T, (double)total * 4 / 1e6);
    memset(m->acts, 0, total * sizeof(float));
    float *p = m->acts;
#define TAKE(dst, n) do { (dst) = p; p += (n); } while (0)
    TAKE(m->encoded, BTC);
    layer_acts sh;
    memset(&sh, 0, sizeof sh);
    if (rc == LMF_RECOMPUTE_FULL) {
        TAKE(sh.ln1, BTC); TAKE(sh.ln1_mean, BT); TAKE(sh.ln1_rstd, BT);
        TAKE(sh.qkv, 3 * BTC); TAKE(sh.atty, BTC); TAKE(sh.att_saved, att);
        TAKE(sh.residual2, BTC); TAKE(sh.ln2, BTC); TAKE(sh.ln2_mean, BT); TAKE(sh.ln2_rstd, BT);
        TAKE(sh.fch, 4 * BTC);
    }
    if (rc != LMF_RECOMPUTE_NONE) TAKE(sh.fch_gelu, gelu);
    for (int l = 0; l < L; l++) {
        layer_acts *a = &m->la[l];
        *a = sh;
        if (rc != LMF_RECOMPUTE_FULL) {
            TAKE(a->ln1, BTC); TAKE(a->ln1_mean, BT); TAKE(a->ln1_rstd, BT);
            TAKE(a->qkv, 3 * BTC); TAKE(a->atty, BTC); TAKE(a->att_saved, att);
            TAKE(a->residual2, BTC); TAKE(a->ln2, BTC); TAKE(a->ln2_mean, BT); TAKE(a->ln2_rstd, BT);
            TAKE(a->fch, 4 * BTC);
        }
        if (rc == LMF_RECOMPUTE_NONE) TAKE(a->fch_gelu, gelu);
        TAKE(a->residual3, BTC);
    }
    TAKE(m->lnf, BTC); TAKE(m->lnf_mean, BT); TAKE(m->lnf_rstd, BT);
    TAKE(m->losses, BT);
    TAKE(m->cls_scratch, k->classifier_scratch_floats((int)BT, V));
    if (training) {
        TAKE(m->dres, BTC); TAKE(m->dbtc, BTC); TAKE(m->dqkv, 3 * BTC);
        TAKE(m->d4a, 4 * BTC);
        TAKE(m->att_scratch, k->attention_scratch_floats(B, T, NH, C));
    } else {
        m->dres = m->dbtc = m->dqkv = m->d4a = m->att_scratch = NULL;
    }
#undef TAKE
    LMF_ASSERT((size_t)(p - m->acts) == total);
    m->acts_floats = total;
    m->B = B;
    m->T = T;
    m->training = training;
    m->reserved_recompute = rc;
    m->forward_done = 0;
    return LMF_OK;
}

size_t lmf_gpt_activation_bytes(const lmf_gpt *m) {
    return m->acts_floats * sizeof(float) + (m->grads ? m->layout.total * sizeof(float) : 0);
}

/* ---- block placement through the hooks ---- */

static float *block_params(lmf_gpt *m, int b, int phase) {
    float *p = NULL;
    if (m->has_hooks && m->hooks.block_params) p = m->hooks.block_params(m->hooks.ctx, b, phase);
    return p ? p : m->params + m->layout.block_offset[b];
}

static void release_params(lmf_gpt *m, int b, int phase) {
    if (m->has_hooks && m->hooks.release_params) m->hooks.release_params(m->hooks.ctx, b, phase);
}

static float *block_grads(lmf_gpt *m, int b) {
    float *p = NULL;
    if (m->has_hooks && m->hooks.block_grads) p = m->hooks.block_grads(m->hooks.ctx, b);
    return p ? p : m->grads + m->layout.block_offset[b];
}

static void grads_ready(lmf_gpt *m, int b) {
    if (m->has_hooks && m->hooks.grads_ready) m->hooks.grads_ready(m->hooks.ctx, b);
}

/* offset of wpe inside block 0 */
static size_t wpe_offset(const lmf_gpt *m) { return m->layout.tensors[1].offset; }

/* One transformer layer's forward from its input x[B,T,C] into the activations a.
 * ln1_ready: a->ln1 (and its statistics) were already computed by the caller, fused with the
 * previous layer's last residual add; otherwise it is LayerNorm(x) here.
 * to_output = 0 stops after the GELU: what a recomputing backward needs again. With
 * to_output = 1, a->residual3 receives the MLP projection only: the residual add
 * (residual3 = residual2 + projection) is fused into the next LayerNorm (the next layer's
 * ln1, or the final LayerNorm) by the caller. */
static void layer_forward(lmf_gpt *m, const lmf_layer_view *wp, layer_acts *a, const float *x,
                          int B, int T, int to_output, int ln1_ready) {
    const lmf_kernels *k = m->k;
    lmf_layer_view w = *wp;
    int C = m->cfg.n_embd, NH = m->cfg.n_head;
    size_t BT = (size_t)B * T;
    if (!ln1_ready)
        EW(k->layernorm_forward(a->ln1, a->ln1_mean, a->ln1_rstd, x, w.ln1w, w.ln1b, (int)BT, C));
    MM(k->matmul_forward(a->qkv, a->ln1, w.qkvw, w.qkvb, (int)BT, C, 3 * C));
    AT(k->attention_forward(a->atty, a->att_saved, a->qkv, B, T, C, NH));
    /* residual2 holds the projection first, then x + projection, normalised into ln2 in the
     * same pass */
    MM(k->matmul_forward(a->residual2, a->atty, w.attprojw, w.attprojb, (int)BT, C, C));
    EW(k->residual_layernorm_forward(a->residual2, a->ln2, a->ln2_mean, a->ln2_rstd, x,
                                     a->residual2, w.ln2w, w.ln2b, (int)BT, C));
    /* fch = ln2 @ fcw + fcb and its GELU, in the GEMM's epilogue */
    MM(k->matmul_gelu_forward(a->fch, a->fch_gelu, a->ln2, w.fcw, w.fcb, (int)BT, C, 4 * C));
    if (!to_output) return;
    MM(k->matmul_forward(a->residual3, a->fch_gelu, w.fcprojw, w.fcprojb, (int)BT, 4 * C, C));
}

lmf_status lmf_gpt_forward(lmf_gpt *m, const int32_t *inputs, const int32_t *targets, int B,
                           int T, int training, float dloss_scale, float *loss) {
    const lmf_kernels *k = m->k;
    if (!m->acts || B > m->B || T > m->T || (B != m->B && T != m->T) || (training && !m->training))
        return lmf_fail(LMF_ERR_STATE, "forward with batch %d x %d%s does not match the reserved "
                        "%d x %d", B, T, training ? " (training)" : "", m->B, m->T);
    if (T > m->cfg.n_positions)
        return lmf_fail(LMF_ERR_ARG, "sequence length %d exceeds n_positions %d", T,
                        m->cfg.n_positions);
    int L = m->cfg.n_layer, C = m->cfg.n_embd, V = m->cfg.vocab_size;
    size_t BT = (size_t)B * T;
    for (size_t i = 0; i < BT; i++) {
        if (inputs[i] < 0 || inputs[i] >= V || (targets && (targets[i] < 0 || targets[i] >= V)))
            return lmf_fail(LMF_ERR_ARG,
                            "token id %d at position %zu is outside the vocabulary (size %d); "
                            "the data and the model do not match",
                            inputs[i] < 0 || inputs[i] >= V ? inputs[i] : targets[i], i, V);
    }
    memcpy(m->inputs, inputs, BT * sizeof(int32_t));
    if (targets) memcpy(m->targets, targets, BT * sizeof(int32_t));
    m->cur_B = B;
    m->cur_T = T;

    float *p0 = block_params(m, 0, 0);
    const float *wte = p0, *wpe = p0 + wpe_offset(m);
    EW(k->encoder_forward(m->encoded, inputs, wte, wpe, B, T, C));
    const float *x = m->encoded;
    for (int l = 0; l < L; l++) {
        lmf_layer_view w;
        lmf_layout_layer_view(&m->cfg, block_params(m, 1 + l, 0), &w);
        layer_acts *a = &m->la[l];
        if (l > 0) { /* finish the previous layer: residual3 = residual2 + projection, and ln1 */
            layer_acts *p = &m->la[l - 1];
            EW(k->residual_layernorm_forward(p->residual3, a->ln1, a->ln1_mean, a->ln1_rstd,
                                             p->residual2, p->residual3, w.ln1w, w.ln1b,
                                             (int)BT, C));
        }
        layer_forward(m, &w, a, x, B, T, 1, l > 0);
        release_params(m, 1 + l, 0);
        x = a->residual3;
    }
    float *pf = block_params(m, L + 1, 0);
    if (L > 0) { /* the last layer's residual add, fused with the final LayerNorm */
        layer_acts *p = &m->la[L - 1];
        EW(k->residual_layernorm_forward(p->residual3, m->lnf, m->lnf_mean, m->lnf_rstd,
                                         p->residual2, p->residual3, pf, pf + C, (int)BT, C));
    } else {
        EW(k->layernorm_forward(m->lnf, m->lnf_mean, m->lnf_rstd, x, pf, pf + C, (int)BT, C));
    }
    release_params(m, L + 1, 0);

    double sum = 0.0;
    if (targets) {
        float *dx = NULL, *dwte = NULL;
        if (training) {
            dx = m->dbtc;
            dwte = block_grads(m, 0);
        }
        m->dloss = dloss_scale / (float)BT;
        PH(LMF_PHASE_LOSS, k->classifier(m->losses, dx, dwte, m->cls_scratch, m->lnf, wte, targets, m->dloss,
                      (int)BT, C, V));
        for (size_t i = 0; i < BT; i++) sum += m->losses[i];
    }
    if (!training) release_params(m, 0, 0);
    m->forward_done = training ? 2 : 1;
    if (loss) *loss = targets ? (float)(sum / (double)BT) : 0.0f;
    return LMF_OK;
}

void lmf_gpt_backward(lmf_gpt *m) {
    const lmf_kernels *k = m->k;
    LMF_ASSERT(m->forward_done == 2); /* a backward needs a training forward first */
    int L = m->cfg.n_layer, C = m->cfg.n_embd, NH = m->cfg.n_head;
    int B = m->cur_B, T = m->cur_T;
    size_t BT = (size_t)B * T, BTC = BT * (size_t)C;

    /* final LayerNorm: dlnf (in dbtc, from the classifier) -> dres */
    float *pf = block_params(m, L + 1, 1);
    float *gf = block_grads(m, L + 1);
    const float *xlast = L > 0 ? m->la[L - 1].residual3 : m->encoded;
    EW(memset(m->dres, 0, BTC * sizeof(float)));
    EW(k->layernorm_backward(m->dres, gf, gf + C, m->dbtc, xlast, pf, m->lnf_mean, m->lnf_rstd,
                          (int)BT, C));
    grads_ready(m, L + 1);
    release_params(m, L + 1, 1);

    for (int l = L - 1; l >= 0; l--) {
        lmf_layer_view w, g;
        lmf_layout_layer_view(&m->cfg, block_params(m, 1 + l, 1), &w);
        lmf_layout_layer_view(&m->cfg, block_grads(m, 1 + l), &g);
        layer_acts *a = &m->la[l];
        const float *x = l > 0 ? m->la[l - 1].residual3 : m->encoded;
        /* bring back what the forward did not keep (same kernels, same inputs: same values) */
        if (m->reserved_recompute == LMF_RECOMPUTE_FULL)
            layer_forward(m, &w, a, x, B, T, 0, 0);
        else if (m->reserved_recompute == LMF_RECOMPUTE_SELECTIVE)
            EW(k->gelu_forward(a->fch_gelu, a->fch, 4 * BTC));
        /* dres = d residual3: MLP branch. matmul_backward, gelu_bias_backward and
         * attention_backward write their activation gradients (d4a, dbtc, dqkv), so nothing
         * is zeroed here; layernorm_backward adds into dres, the residual stream's gradient. */
        MM(k->matmul_backward(m->d4a, g.fcprojw, g.fcprojb, m->dres, a->fch_gelu, w.fcprojw,
                           (int)BT, 4 * C, C));
        /* d4a becomes d fch in place, and fcb's gradient is summed in the same pass */
        EW(k->gelu_bias_backward(m->d4a, g.fcb, a->fch, m->d4a, (int)BT, 4 * C));
        MM(k->matmul_backward(m->dbtc, g.fcw, NULL, m->d4a, a->ln2, w.fcw, (int)BT, C, 4 * C));
        EW(k->layernorm_backward(m->dres, g.ln2w, g.ln2b, m->dbtc, a->residual2, w.ln2w,
                              a->ln2_mean, a->ln2_rstd, (int)BT, C));
        /* dres = d residual2: attention branch */
        MM(k->matmul_backward(m->dbtc, g.attprojw, g.attprojb, m->dres, a->atty, w.attprojw,
                           (int)BT, C, C));
        AT(k->attention_backward(m->dqkv, m->att_scratch, m->dbtc, a->qkv, a->att_saved, B, T, C,
                              NH));
        MM(k->matmul_backward(m->dbtc, g.qkvw, g.qkvb, m->dqkv, a->ln1, w.qkvw, (int)BT, C, 3 * C));
        EW(k->layernorm_backward(m->dres, g.ln1w, g.ln1b, m->dbtc, x, w.ln1w, a->ln1_mean,
                              a->ln1_rstd, (int)BT, C));
        grads_ready(m, 1 + l);
        release_params(m, 1 + l, 1);
    }
    float *g0 = block_grads(m, 0);
    EW(k->encoder_backward(g0, g0 + wpe_offset(m), m->dres, m->inputs, B, T, C));
    grads_ready(m, 0);
    release_params(m, 0, 1);
    m->forward_done = 0;
}

void lmf_gpt_zero_grad(lmf_gpt *m) {
    if (m->grads) memset(m->grads, 0, m->layout.total * sizeof(float));
}

void lmf_gpt_logits_at(lmf_gpt *m, int b, int t, float *logits) {
    int C = m->cfg.n_embd, V = m->cfg.vocab_size;
    const float *x = m->lnf + ((size_t)b * m->cur_T + t) * C;
    const float *wte = m->params;
    /* logits[1, V] = x[1, C] @ wte[:V]^T, as one row of the classifier */
    for (int v = 0; v < V; v++) {
        const float *w = wte + (size_t)v * C;
        float s = 0.0f;
        for (int c = 0; c < C; c++) s += x[c] * w[c];
        logits[v] = s;
    }
}

/* Floats of the activation block lmf_gpt_reserve(B, T, training) allocates for this
 * configuration, kernel table and recomputation mode (the gradient block and the int32 batch
 * copies not included). Pure: the same sum as lmf_gpt_reserve, so planners can size a run
 * without allocating it. The fast table's attention scratch depends on the current thread
 * count (kernels.h): call it after lmf_threads_set, as a run would. */
size_t lmf_gpt_activation_floats(const lmf_gpt_config *cfg, const lmf_kernels *k, int B, int T,
                                 int training, lmf_recompute recompute) {
    int L = cfg->n_layer, C = cfg->n_embd, NH = cfg->n_head, V = cfg->vocab_size;
    size_t BT = (size_t)B * T, BTC = BT * C;
    size_t att = k->attention_saved_floats(B, T, NH);
    size_t gelu = 4 * BTC;
    size_t inner = BTC /*ln1*/ + 2 * BT + 3 * BTC /*qkv*/ + BTC /*atty*/ + att +
                   BTC /*residual2*/ + BTC /*ln2*/ + 2 * BT + 4 * BTC /*fch*/;
    lmf_recompute rc = training ? recompute : LMF_RECOMPUTE_NONE;
    size_t per_layer = BTC /*residual3*/ + (rc == LMF_RECOMPUTE_FULL ? 0 : inner) +
                       (rc == LMF_RECOMPUTE_NONE ? gelu : 0);
    size_t shared = (rc == LMF_RECOMPUTE_FULL ? inner : 0) + (rc != LMF_RECOMPUTE_NONE ? gelu : 0);
    size_t total = BTC /*encoded*/ + (size_t)L * per_layer + shared + BTC + 2 * BT /*lnf*/ +
                   BT /*losses*/ + k->classifier_scratch_floats((int)BT, V);
    if (training)
        total += BTC /*dres*/ + BTC /*dbtc*/ + 3 * BTC /*dqkv*/ + 4 * BTC /*d4a*/ +
                 k->attention_scratch_floats(B, T, NH, C);
    return total;
}

/* The memory one rank of a run will hold, estimated from the model's description before
 * anything big is allocated, against what the process can have: a run that cannot fit is
 * refused with the estimate and what would make it fit, instead of being killed later. */
#include "lmforge/comm.h"
#include "lmforge/ddp.h"
#include "lmforge/kernels.h"
#include "lmforge/pipeline.h"
#include "lmforge/system.h"
#include "lmforge/train.h"
#include "train/train_internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

typedef struct mem_estimate {
    double weights, grads, optim, activations, buffers, checkpoint, total;
} mem_estimate;

/* What the estimate needs besides the options tried: the model, its tensor-parallel split,
 * its pipeline stage and the sizes that follow from them. */
typedef struct mem_ctx {
    lmf_gpt_config stage; /* the model, n_layer the stage's layers (pipeline: the largest) */
    const lmf_kernels *k;
    lmf_tp_config tp;
    int T;
    int pp;               /* pipeline stages (1: none) */
    int slots;            /* micro-batches whose activations a stage holds at once */
    int classifier;       /* 1: the stage counted holds the classifier (and its scratch) */
    int micro_batches;    /* per step (pipeline: every one's messages are kept) */
    int chunks;           /* model chunks per pipeline stage (V; 1 without interleaving) */
    double rank_floats;   /* the rank's slices of its stage (the whole model without tensor or
                             pipeline parallelism) */
    double whole_floats;  /* the whole model's layout */
    double buffers[4];    /* the data-parallel engine's staging and gather buffers at stages
                             0..3, as it will size them over the rank's layout (the same at
                             every world size) */
} mem_ctx;

/* pipeline: the stage holding the most floats of the layout (ties: the first), as its V
 * model chunks' layer ranges */
static lmf_status largest_stage(const lmf_train_opts *o, const lmf_gpt_config *cfg,
                                const lmf_tp_config *tp, int V, int *layer0, int *layers) {
    size_t most = 0;
    for (int s = 0; s < o->pp; s++) {
        int l0[LMF_LAYOUT_MAX_RANGES], n[LMF_LAYOUT_MAX_RANGES];
        LMF_TRY(lmf_train_stage_chunks(o, cfg, s, l0, n));
        lmf_param_layout l;
        LMF_TRY(lmf_layout_build_ranges(cfg, tp, V, l0, n, &l));
        if (l.total > most) {
            most = l.total;
            for (int c = 0; c < V; c++) layer0[c] = l0[c], layers[c] = n[c];
        }
        lmf_layout_free(&l);
    }
    return LMF_OK;
}

static lmf_status mem_ctx_init(mem_ctx *c, const lmf_train_opts *o, const lmf_gpt_config *cfg,
                               const lmf_kernels *k) {
    c->stage = *cfg;
    c->k = k;
    c->tp = (lmf_tp_config){o->tp > 1 ? o->tp : 1, 0, o->sequence_parallel};
    c->T = o->seq;
    c->pp = o->pp > 1 ? o->pp : 1;
    c->slots = 1;
    c->classifier = 1;
    c->micro_batches = o->grad_accum > 0 ? o->grad_accum : 1;
    int layer0[LMF_LAYOUT_MAX_RANGES] = {0}, layers[LMF_LAYOUT_MAX_RANGES] = {cfg->n_layer};
    c->chunks = 1;
    if (c->pp > 1) {
        int V = c->chunks = lmf_train_virtual_stages(o);
        LMF_TRY(largest_stage(o, cfg, &c->tp, V, layer0, layers));
        lmf_pp_shape sh = {o->schedule, c->pp, c->micro_batches, V};
        if (lmf_pp_peak_inflight(&sh, 0, &c->slots) != LMF_OK) c->slots = sh.micro_batches * V;
        if (c->slots > sh.micro_batches * V) c->slots = sh.micro_batches * V;
        /* each (micro-batch, chunk) in flight holds one chunk's activations: the largest's */
        c->stage.n_layer = 0;
        for (int i = 0; i < V; i++)
            if (layers[i] > c->stage.n_layer) c->stage.n_layer = layers[i];
        c->classifier = layer0[V - 1] + layers[V - 1] == cfg->n_layer;
    }
    lmf_param_layout l;
    LMF_TRY(lmf_layout_build(cfg, &l));
    c->whole_floats = (double)l.total;
    lmf_layout_free(&l);
    LMF_TRY(lmf_layout_build_ranges(cfg, &c->tp, c->chunks, layer0, layers, &l));
    c->rank_floats = c->tp.size > 1 || c->pp > 1 ? (double)l.total
                                                 : (double)lmf_config_num_params(cfg);
    lmf_status s = LMF_OK;
    for (int zero = 0; zero <= 3 && s == LMF_OK; zero++) {
        lmf_ddp_buffers b;
        s = lmf_ddp_size_buffers(&l, zero, 0, &b); /* the trainer's engine: default buckets */
        c->buffers[zero] = (double)b.bytes;
    }
    lmf_layout_free(&l);
    return s;
}

/* Bytes per rank over dp data-parallel ranks: the rank's part of the weights, gradients and
 * AdamW moments (lmf_ddp_memory_theory over its slices of its stage) and, with ZeRO-3 alone,
 * the full weights again when the run gathers them at the end; the activations of one
 * micro-batch (lmf_gpt_activation_floats_tp; a pipeline stage: its layers, for each
 * micro-batch in flight); the engine's gradient staging (reduce-scatter) and weight-gather
 * buffers, and the pipeline's message buffers; and the copy a checkpoint takes of the rank's
 * weights and moments while it is written in the background (under tensor or pipeline
 * parallelism also what the save holds while it puts the rank's range of the whole vectors
 * together). */
static mem_estimate estimate(const mem_ctx *c, int B, lmf_recompute rc, int dp, int zero) {
    mem_estimate e;
    size_t n = (size_t)c->rank_floats;
    int tp = c->tp.size, pp = c->pp;
    lmf_ddp_memory th;
    lmf_ddp_memory_theory(n, dp, zero, &th);
    double part = (double)th.optim / 2; /* bytes of the range this rank updates */
    e.weights = (double)th.weights + (zero >= 3 && tp == 1 && pp == 1 ? 4.0 * (double)n : 0.0);
    e.grads = (double)th.grads;
    e.optim = (double)th.optim;
    e.activations = 4.0 * c->slots *
                    (double)lmf_gpt_stage_activation_floats(&c->stage, &c->tp, c->k, B, c->T,
                                                            LMF_RESERVE_TRAIN_HOOKED, rc,
                                                            c->stage.n_layer, c->classifier);
    e.buffers = c->buffers[zero];
    if (pp > 1) { /* every micro-batch's input and gradient messages */
        double rows = (double)B * c->T / (c->tp.sequence_parallel ? tp : 1);
        e.buffers += 8.0 * rows * c->stage.n_embd * c->micro_batches * c->chunks;
    }
    /* the save's data-parallel parts; tensor parallelism: every group rank's slices (one
     * vector at a time); the rank's range of the whole three vectors and the snapshot's copy.
     * Pipeline: the parts, the whole vector the stages are summed into (one at a time) and the
     * ranges, or later the ranges and their copy, or at the end of the run the parts, that
     * whole vector and the whole weights it puts together (lmf_trainer_materialize) */
    double world = (double)dp * tp * pp, range = 4.0 * c->whole_floats / world;
    double parts = 4.0 * c->rank_floats * (1.0 + (tp > 1 ? tp : 0));
    if (pp > 1)
        e.checkpoint = fmax(fmax(parts + 4.0 * c->whole_floats + 3.0 * range, 6.0 * range),
                            parts + 8.0 * c->whole_floats);
    else if (tp > 1)
        e.checkpoint = parts + 6.0 * range;
    else
        e.checkpoint = 3.0 * part;
    e.total = e.weights + e.grads + e.optim + e.activations + e.buffers + e.checkpoint;
    return e;
}

/* "1.2 GB" or "640 MB" into one of four rotating buffers */
static const char *size_text(double bytes) {
    static _Thread_local char buf[8][32];
    static _Thread_local int next;
    char *b = buf[next++ % 8];
    if (bytes >= 1e9) snprintf(b, sizeof buf[0], "%.1f GB", bytes / 1e9);
    else snprintf(b, sizeof buf[0], "%.0f MB", bytes / 1e6);
    return b;
}

lmf_status lmf_train_check_memory(const lmf_train_opts *o, const lmf_gpt_config *cfg,
                                  const lmf_kernels *k, int world) {
    char what[160];
    unsigned long long room = lmf_memory_available(what, sizeof what);
    if (room == 0) return LMF_OK; /* nothing known to compare with */
    int here = lmf_comm_launcher_local_size();
    if (here < 1) here = 1;
    double per_rank = (double)room / here;
    mem_ctx c;
    LMF_TRY(mem_ctx_init(&c, o, cfg, k));
    int replica = c.tp.size * c.pp; /* the ranks of one data-parallel replica */
    int dp = world / replica > 0 ? world / replica : 1;
    mem_estimate e = estimate(&c, o->batch, o->recompute, dp, o->zero_stage);
    if (e.total <= per_rank) return LMF_OK;

    char fix[1024] = "";
    size_t len = 0;
#define FIX(...) (len += (size_t)snprintf(fix + len, len < sizeof fix ? sizeof fix - len : 0, __VA_ARGS__))
    int zmax = 3;
    if (o->zero_stage < zmax && dp > 1 &&
        estimate(&c, o->batch, o->recompute, dp, zmax).total <= per_rank)
        FIX("%s--zero %d", len ? ", " : "", zmax);
    if (o->recompute != LMF_RECOMPUTE_FULL &&
        estimate(&c, o->batch, LMF_RECOMPUTE_FULL, dp, o->zero_stage).total <= per_rank)
        FIX("%s--recompute full", len ? ", " : "");
    for (int b = o->batch / 2; b >= 1; b /= 2)
        if (estimate(&c, b, o->recompute, dp, o->zero_stage).total <= per_rank) {
            FIX("%s--batch %d (with --grad-accum or --global-batch to keep the tokens per step)",
                len ? ", " : "", b);
            break;
        }
    for (int w = dp * 2; w <= (1 << 20); w *= 2)
        if (estimate(&c, o->batch, o->recompute, w, zmax).total <= per_rank) {
            FIX("%s%d ranks or more with --zero %d (%d per machine on more machines)",
                len ? ", " : "", w * replica, zmax, here);
            break;
        }
#undef FIX
    double np = (double)lmf_config_num_params(cfg);
    int all = 0; /* ranks that fit with every saving at once */
    for (int w = dp; !fix[0] && !all && w <= (1 << 20); w *= 2)
        if (estimate(&c, 1, LMF_RECOMPUTE_FULL, w, zmax).total <= per_rank) all = w * replica;
    if (!fix[0] && all)
        snprintf(fix, sizeof fix, "--zero %d --recompute full --batch 1 over %d ranks or more "
                 "(%d per machine)", zmax, all, here);
    else if (!fix[0])
        snprintf(fix, sizeof fix, "nothing: the weights alone (made whole on every rank), "
                 "one sequence's activations and the engine's buffers (%s) exceed it; choose a "
                 "smaller model",
                 size_text(estimate(&c, 1, LMF_RECOMPUTE_FULL, 1 << 20, zmax).total));
    return lmf_fail(LMF_ERR_NOMEM,
                    "the run needs about %s per rank (%.2f%s parameters: weights %s, gradients "
                    "%s, AdamW moments %s, activations %s, data-parallel buffers %s, checkpoint "
                    "copy %s) but this process can have %s (%s%s); what would fit: %s",
                    size_text(e.total), np >= 1e9 ? np / 1e9 : np / 1e6, np >= 1e9 ? "B" : "M",
                    size_text(e.weights), size_text(e.grads), size_text(e.optim),
                    size_text(e.activations), size_text(e.buffers), size_text(e.checkpoint), size_text(per_rank), what,
                    here > 1 ? ", shared by the ranks of this machine" : "", fix);
}

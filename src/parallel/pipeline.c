/* The pipeline-parallel engine: a stage's model chunks run through its schedule's actions with
 * non-blocking sends and receives of activations and gradients between stages, and a
 * forward-only pass of the same messages for evaluation. */
#include "lmforge/pipeline.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lmforge/system.h"

/* one chunk's model hooks, interposed (lmf_pp_engine_wrap_hooks) */
typedef struct pp_wrap {
    lmf_pp_engine *e;
    int chunk, every;
    int block0_ready;      /* the backward just run handed block 0 over: pass it on */
    int block0_due;        /* interleaved ends: block 0 summed and passed on after the step */
    lmf_gpt_hooks inner;
} pp_wrap;

struct lmf_pp_engine {
    lmf_comm *comm;        /* the pipeline group: rank = stage */
    lmf_comm *tie;         /* the first and last stage (the embedding group); NULL when P = 1 */
    lmf_pp_shape sh;
    int P, V, M, stage, slots;
    int B, T;
    size_t n;              /* floats of one message: lmf_gpt_stage_floats */
    lmf_gpt **chunks;      /* [V] */
    lmf_pp_action *actions;
    int n_actions;
    float *xbuf, *dybuf;   /* [M * V * n]: each (mb, chunk)'s received input and gradient */
    lmf_comm_req **recv_x, **recv_dy;   /* [M * V] */
    lmf_comm_req **send_f, **send_b;    /* [V * slots]: the sends out of each slot's buffers */
    int *occupant;         /* [V * slots]: the micro-batch in each slot, -1 when free */
    char context[128];     /* the caller's communicator context, restored after a step */
    lmf_status (*before_backward)(void *ctx, int chunk, int index, int n);
    void *bb_ctx;
    pp_wrap *wrap;         /* [V] */
    int *backwards;        /* [V]: backwards of each chunk begun in this step */
    lmf_status hook_err;   /* a failure met while moving messages inside a model hook */
};

static void kernel_progress(void *ctx);

lmf_status lmf_pp_layers(int L, int n, const int *split, int *layers) {
    if (n < 1 || n > L)
        return lmf_fail(LMF_ERR_ARG, "%d pipeline stages (times virtual stages) for a model of %d "
                        "layers: each needs at least one layer; use fewer stages", n, L);
    if (!split) {
        for (int i = 0; i < n; i++) layers[i] = L / n + (i < L % n);
        return LMF_OK;
    }
    int sum = 0;
    for (int i = 0; i < n; i++) {
        if (split[i] < 1)
            return lmf_fail(LMF_ERR_ARG, "--stage-layers: stage %d has %d layers; give every "
                            "stage at least one", i, split[i]);
        sum += split[i];
        layers[i] = split[i];
    }
    if (sum != L)
        return lmf_fail(LMF_ERR_ARG, "--stage-layers adds up to %d layers, the model has %d", sum,
                        L);
    return LMF_OK;
}

lmf_status lmf_pp_layers_balanced(int L, int n, double first, double last, int *layers) {
    if (n < 1 || n > L)
        return lmf_fail(LMF_ERR_ARG, "%d pipeline stages for a model of %d layers: each needs at "
                        "least one layer; use fewer stages", n, L);
    if (!(first >= 0 && last >= 0 && isfinite(first) && isfinite(last)))
        return lmf_fail(LMF_ERR_ARG, "the pipeline ends' extra work must be finite and not "
                        "negative (got %g and %g layers)", first, last);
    /* the smallest bound t on a stage's cost that the stages can meet: t = k + extra of some
     * stage; each stage s can then take floor(t - extra_s) layers, at least one */
    double best = INFINITY;
    for (int s = 0; s < n; s++) {
        double e = s == 0 ? first : 0.0;
        if (s == n - 1) e += last;
        for (int k = 1; k <= L; k++) {
            double t = k + e;
            if (t >= best) break;
            long total = 0;
            int ok = 1;
            for (int q = 0; q < n && ok; q++) {
                double eq = (q == 0 ? first : 0.0) + (q == n - 1 ? last : 0.0);
                long cap = (long)floor(t - eq + 1e-9);
                if (cap < 1) ok = 0;
                total += cap > L ? L : cap;
            }
            if (ok && total >= L) best = t;
        }
    }
    long total = 0;
    for (int q = 0; q < n; q++) {
        double eq = (q == 0 ? first : 0.0) + (q == n - 1 ? last : 0.0);
        long cap = (long)floor(best - eq + 1e-9);
        layers[q] = (int)(cap > L ? L : cap);
        total += layers[q];
    }
    /* the surplus comes off the costliest stages, the later ones first on a tie */
    while (total > L) {
        int worst = -1;
        double wc = -1.0;
        for (int q = n - 1; q >= 0; q--) {
            double c = layers[q] + (q == 0 ? first : 0.0) + (q == n - 1 ? last : 0.0);
            if (layers[q] > 1 && c > wc + 1e-12) {
                wc = c;
                worst = q;
            }
        }
        LMF_ASSERT(worst >= 0);
        layers[worst]--;
        total--;
    }
    return LMF_OK;
}

void lmf_pp_engine_free(lmf_pp_engine *e) {
    if (!e) return;
    for (int c = 0; e->chunks && c < e->V; c++)
        if (e->chunks[c]) lmf_gpt_set_progress(e->chunks[c], NULL, NULL);
    for (int i = 0; e->recv_x && i < e->M * e->V; i++) {
        lmf_comm_wait(e->comm, &e->recv_x[i]);
        lmf_comm_wait(e->comm, &e->recv_dy[i]);
    }
    for (int i = 0; e->send_f && i < e->V * e->slots; i++) {
        lmf_comm_wait(e->comm, &e->send_f[i]);
        lmf_comm_wait(e->comm, &e->send_b[i]);
    }
    if (e->tie) lmf_comm_free(e->tie);
    free(e->chunks);
    free(e->actions);
    free(e->xbuf);
    free(e->dybuf);
    free(e->recv_x);
    free(e->recv_dy);
    free(e->send_f);
    free(e->send_b);
    free(e->occupant);
    free(e->wrap);
    free(e->backwards);
    free(e);
}

lmf_status lmf_pp_engine_create(lmf_comm *comm, const lmf_pp_shape *sh, lmf_gpt *const *chunks,
                                int B, int T, lmf_reserve_mode mode, lmf_pp_engine **out) {
    *out = NULL;
    int P = lmf_comm_size(comm), stage = lmf_comm_rank(comm);
    if (sh->stages != P)
        return lmf_fail(LMF_ERR_ARG, "a schedule of %d stages on a pipeline group of %d ranks",
                        sh->stages, P);
    LMF_TRY(lmf_pp_shape_check(sh));
    int V = sh->virtual_stages, M = sh->micro_batches;
    if (V > 1 && P == 1)
        return lmf_fail(LMF_ERR_ARG, "--virtual-stages %d needs --pp of at least 2", V);
    if ((size_t)M * (size_t)P * (size_t)V * 2 > LMF_COMM_MAX_TAG)
        return lmf_fail(LMF_ERR_ARG, "%d micro-batches over %d x %d virtual stages: too many "
                        "messages to tell apart; use fewer micro-batches", M, P, V);
    lmf_pp_engine *e = calloc(1, sizeof *e);
    if (!e) return lmf_fail(LMF_ERR_NOMEM, "cannot allocate the pipeline engine");
    e->comm = comm;
    e->sh = *sh;
    e->P = P;
    e->V = V;
    e->M = M;
    e->stage = stage;
    e->B = B;
    e->T = T;
    lmf_status s = lmf_pp_peak_inflight(sh, stage, &e->slots);
    /* the first and last stage sum block 0's gradient (every rank takes part in the split) */
    if (s == LMF_OK && P > 1) {
        int ends = stage == 0 || stage == P - 1;
        s = lmf_comm_split(comm, ends ? 0 : 1 + stage, stage, "embedding", &e->tie);
        if (s == LMF_OK && !ends) {
            lmf_comm_free(e->tie);
            e->tie = NULL;
        }
    }
    if (s != LMF_OK) {
        lmf_pp_engine_free(e);
        return s;
    }
    if (e->slots > M) e->slots = M;
    e->n_actions = lmf_pp_stage_actions(sh);
    size_t mv = (size_t)M * V, vs = (size_t)V * e->slots;
    e->chunks = calloc((size_t)V, sizeof *e->chunks);
    e->actions = calloc((size_t)e->n_actions, sizeof *e->actions);
    e->recv_x = calloc(mv, sizeof *e->recv_x);
    e->recv_dy = calloc(mv, sizeof *e->recv_dy);
    e->send_f = calloc(vs, sizeof *e->send_f);
    e->send_b = calloc(vs, sizeof *e->send_b);
    e->occupant = malloc(vs * sizeof *e->occupant);
    e->wrap = calloc((size_t)V, sizeof *e->wrap);
    e->backwards = calloc((size_t)V, sizeof *e->backwards);
    if (!e->chunks || !e->actions || !e->recv_x || !e->recv_dy || !e->send_f || !e->send_b ||
        !e->occupant || !e->wrap || !e->backwards) {
        lmf_pp_engine_free(e);
        return lmf_fail(LMF_ERR_NOMEM, "cannot allocate the pipeline engine");
    }
    for (size_t i = 0; i < vs; i++) e->occupant[i] = -1;
    s = lmf_pp_schedule_actions(sh, stage, e->actions);
    for (int c = 0; c < V && s == LMF_OK; c++) {
        e->chunks[c] = chunks[c];
        s = lmf_gpt_reserve_slots(chunks[c], B, T, mode, e->slots);
        /* without cross-memory attach a large message moves only inside MPI calls */
        lmf_gpt_set_progress(chunks[c], kernel_progress, e);
    }
    if (s == LMF_OK) {
        e->n = lmf_gpt_stage_floats(chunks[0], B, T);
        e->xbuf = malloc(mv * e->n * sizeof(float));
        e->dybuf = malloc(mv * e->n * sizeof(float));
        if (!e->xbuf || !e->dybuf)
            s = lmf_fail(LMF_ERR_NOMEM, "cannot allocate the pipeline's message buffers "
                         "(%.1f MB)", 2.0 * (double)(mv * e->n) * 4 / 1e6);
    }
    if (s != LMF_OK) {
        lmf_pp_engine_free(e);
        return s;
    }
    *out = e;
    return LMF_OK;
}

void lmf_pp_engine_set_backward_hook(lmf_pp_engine *e,
                                     lmf_status (*before_backward)(void *ctx, int chunk,
                                                                   int index, int n),
                                     void *ctx) {
    e->before_backward = before_backward;
    e->bb_ctx = ctx;
}

/* The stage's sends and receives move on while it computes: MPI moves a message only inside
 * a call into it, and a rendezvous-sized activation left alone until the next action would
 * hold the next stage up for a whole forward or backward. Called before each block. */
static void hook_progress(lmf_pp_engine *e) {
    if (e && e->hook_err == LMF_OK) e->hook_err = lmf_comm_progress(e->comm);
}
static void kernel_progress(void *ctx) { hook_progress(ctx); }

static float *wrap_block_params(void *ctx, int b, int phase) {
    pp_wrap *w = ctx;
    hook_progress(w->e);
    return w->inner.block_params ? w->inner.block_params(w->inner.ctx, b, phase) : NULL;
}
static void wrap_release_params(void *ctx, int b, int phase) {
    pp_wrap *w = ctx;
    if (w->inner.release_params) w->inner.release_params(w->inner.ctx, b, phase);
}
static float *wrap_block_grads(void *ctx, int b) {
    pp_wrap *w = ctx;
    return w->inner.block_grads ? w->inner.block_grads(w->inner.ctx, b) : NULL;
}
/* block 0 is held back (block0_done passes it on once the backward's message is sent) */
static void wrap_grads_ready(void *ctx, int b) {
    pp_wrap *w = ctx;
    if (b == 0) w->block0_ready = 1;
    else if (w->inner.grads_ready) w->inner.grads_ready(w->inner.ctx, b);
}

/* chunk c's block 0 gradient summed over the embedding group (when sum), then handed on */
static lmf_status block0_pass(lmf_pp_engine *e, int c, int sum) {
    pp_wrap *w = &e->wrap[c];
    if (sum) {
        const lmf_param_layout *l = lmf_gpt_layout(e->chunks[c]);
        float *g = wrap_block_grads(w, 0);
        if (!g) g = lmf_gpt_grads(e->chunks[c]) + l->block_offset[0];
        LMF_TRY(lmf_comm_allreduce_f32(e->tie, g, l->block_offset[1] - l->block_offset[0]));
    }
    if (w->inner.grads_ready) w->inner.grads_ready(w->inner.ctx, 0);
    return LMF_OK;
}

/* After a backward of chunk c and the send of its input gradient: block 0 of the tied chunks
 * summed over the embedding group (a blocking exchange, so only once the stage before has
 * what it waits for), then handed on. */
static lmf_status block0_done(lmf_pp_engine *e, int c) {
    pp_wrap *w = &e->wrap[c];
    if (!w->e || !w->block0_ready) return LMF_OK;
    w->block0_ready = 0;
    int ends = (e->stage == 0 && c == 0) || (e->stage == e->P - 1 && c == e->V - 1);
    if (e->tie && ends && e->V > 1) {
        /* the two ends' chunks run their backwards at different points of the interleaved
         * schedule (the last stage's chunk V-1 long before its chunk 0): a sum between them
         * inside the step would wait for each other's pipeline. The gradient keeps
         * accumulating in place; block0_after_step sums and hands it over once. */
        w->block0_due = 1;
        return LMF_OK;
    }
    return block0_pass(e, c, e->tie && ends && (w->every || e->backwards[c] == e->M));
}

/* After the step's last action (interleaved ends): block 0's gradient of every micro-batch,
 * summed between the two ends and handed over, under the last backward's micro-step (chunk 0's
 * last: a reducing one). */
static lmf_status block0_after_step(lmf_pp_engine *e) {
    for (int c = 0; c < e->V; c++) {
        if (!e->wrap[c].e || !e->wrap[c].block0_due) continue;
        e->wrap[c].block0_due = 0;
        LMF_TRY(block0_pass(e, c, 1));
    }
    return LMF_OK;
}

void lmf_pp_engine_wrap_hooks(lmf_pp_engine *e, int chunk, lmf_gpt_hooks *h, int every) {
    pp_wrap *w = &e->wrap[chunk];
    w->e = e;
    w->chunk = chunk;
    w->every = every;
    w->inner = *h;
    h->block_params = wrap_block_params;
    h->release_params = wrap_release_params;
    h->block_grads = wrap_block_grads;
    h->grads_ready = wrap_grads_ready;
    h->ctx = w;
}

/* message tags: the input (dir 0) or output gradient (dir 1) of virtual stage v for mb */
static int tag_of(const lmf_pp_engine *e, int mb, int v, int dir) {
    return (mb * e->P * e->V + v) * 2 + dir;
}

/* post every receive of the step: each (mb, chunk)'s input from the stage before and its
 * output's gradient from the stage after */
static lmf_status post_receives(lmf_pp_engine *e) {
    int PV = e->P * e->V, prev = (e->stage + e->P - 1) % e->P, next = (e->stage + 1) % e->P;
    for (int mb = 0; mb < e->M; mb++)
        for (int c = 0; c < e->V; c++) {
            int v = c * e->P + e->stage;
            size_t i = (size_t)mb * e->V + c;
            if (v > 0)
                LMF_TRY(lmf_comm_irecv_f32(e->comm, e->xbuf + i * e->n, e->n, prev,
                                           tag_of(e, mb, v, 0), &e->recv_x[i]));
            if (v < PV - 1)
                LMF_TRY(lmf_comm_irecv_f32(e->comm, e->dybuf + i * e->n, e->n, next,
                                           tag_of(e, mb, v, 1), &e->recv_dy[i]));
        }
    return LMF_OK;
}

/* block 0's gradient summed between the chunks that hold it: chunk 0 of stage 0 (the
 * embeddings) and chunk V-1 of the last stage (the classifier) */
static lmf_status tie_grads(lmf_pp_engine *e) {
    int first = e->stage == 0, last = e->stage == e->P - 1;
    lmf_gpt *m = e->chunks[first ? 0 : e->V - 1];
    const lmf_param_layout *l = lmf_gpt_layout(m);
    size_t n0 = l->block_offset[1] - l->block_offset[0];
    float *g = lmf_gpt_grads(m);
    if (!g) return LMF_OK; /* gradients placed by hooks: their owner sums them */
    if (e->P == 1 || !(first || last)) return LMF_OK; /* one stage holds the whole block */
    return lmf_comm_allreduce_f32(e->tie, g + l->block_offset[0], n0);
}

/* One micro-batch's forward through chunk c (training or evaluation): its input received on
 * later stages, the slot's last send retired (its output buffer is rewritten), the stage's
 * layers run, the output sent on to the next stage. Every stage gets the ids: the first embeds
 * them, any stage masks documents; only the last reads the targets. */
static lmf_status forward_one(lmf_pp_engine *e, int c, int mb, const int32_t *inputs,
                              const int32_t *targets, int train, float dloss_scale, float *loss,
                              double *busy) {
    int P = e->P, PV = P * e->V, S = e->slots;
    int v = c * P + e->stage, k = c * S + mb % S, next = (e->stage + 1) % P;
    size_t at = (size_t)mb * e->V + c;
    lmf_gpt *m = e->chunks[c];
    const float *x = NULL;
    if (v > 0) {
        LMF_TRY(lmf_comm_wait(e->comm, &e->recv_x[at]));
        x = e->xbuf + at * e->n;
    }
    LMF_TRY(lmf_comm_wait(e->comm, &e->send_f[k]));
    if (v < PV - 1) targets = NULL;
    double c0 = lmf_now_s();
    lmf_status s = train ? lmf_gpt_stage_forward(m, mb % S, inputs, targets, x, e->B, e->T,
                                                 dloss_scale, loss)
                         : lmf_gpt_stage_eval(m, mb % S, inputs, targets, x, e->B, e->T, loss);
    *busy += lmf_now_s() - c0;
    LMF_TRY(s);
    if (v == PV - 1) return LMF_OK;
    return lmf_comm_isend_f32(e->comm, lmf_gpt_stage_output(m, mb % S), e->n, next,
                              tag_of(e, mb, v + 1, 0), &e->send_f[k]);
}

/* Before an action that adds chunk c's weight gradients (a whole backward, or ZB-H1's weight
 * half): the data-parallel engine's micro-step, and the count of them. */
static lmf_status begin_gradients(lmf_pp_engine *e, int c) {
    if (e->before_backward) LMF_TRY(e->before_backward(e->bb_ctx, c, e->backwards[c], e->M));
    e->backwards[c]++;
    return LMF_OK;
}

lmf_status lmf_pp_engine_step(lmf_pp_engine *e, const int32_t *inputs, const int32_t *targets,
                              float dloss_scale, float *loss, lmf_pp_step_stats *stats) {
    int P = e->P, PV = P * e->V, S = e->slots;
    int prev = (e->stage + P - 1) % P;
    size_t BT = (size_t)e->B * e->T;
    snprintf(e->context, sizeof e->context, "%s", lmf_comm_context(e->comm));
    double t0 = lmf_now_s(), busy = 0.0, sum = 0.0;
    memset(e->backwards, 0, (size_t)e->V * sizeof *e->backwards);
    e->hook_err = LMF_OK;
    lmf_status s = post_receives(e);
    for (int i = 0; i < e->n_actions && s == LMF_OK; i++) {
        const lmf_pp_action *a = &e->actions[i];
        int c = a->chunk, mb = a->mb, v = c * P + e->stage, k = c * S + mb % S;
        size_t at = (size_t)mb * e->V + c;
        lmf_gpt *m = e->chunks[c];
        int fwd = a->op == LMF_PP_FORWARD;
        static const char *const what[] = {[LMF_PP_FORWARD] = "forward",
                                           [LMF_PP_BACKWARD] = "backward",
                                           [LMF_PP_BACKWARD_INPUT] = "backward (input half)",
                                           [LMF_PP_BACKWARD_WEIGHT] = "backward (weight half)"};
        lmf_comm_set_context(e->comm, "%s%spipeline stage %d, micro-batch %d, %s", e->context,
                             e->context[0] ? ", " : "", v, mb, what[a->op]);
        if (a->op == LMF_PP_BACKWARD_WEIGHT) { /* ZB-H1: the weight gradients, handed over */
            if ((s = begin_gradients(e, c)) != LMF_OK) break;
            double c0 = lmf_now_s();
            lmf_gpt_stage_backward_weights(m, mb % S);
            busy += lmf_now_s() - c0;
            e->occupant[k] = -1;
            s = block0_done(e, c);
        } else if (fwd) {
            if (e->occupant[k] >= 0) { /* the schedule keeps more in flight than its peak */
                s = lmf_fail(LMF_ERR_STATE, "pipeline stage %d: micro-batch %d's slot still "
                             "holds micro-batch %d", v, mb, e->occupant[k]);
                break;
            }
            float l = 0.0f;
            s = forward_one(e, c, mb, inputs + (size_t)mb * BT, targets + (size_t)mb * BT, 1,
                            dloss_scale, &l, &busy);
            if (s != LMF_OK) break;
            e->occupant[k] = mb;
            sum += l;
        } else {
            const float *dy = NULL;
            if (v < PV - 1) {
                if ((s = lmf_comm_wait(e->comm, &e->recv_dy[at])) != LMF_OK) break;
                dy = e->dybuf + at * e->n;
            }
            if ((s = lmf_comm_wait(e->comm, &e->send_b[k])) != LMF_OK) break;
            int whole = a->op == LMF_PP_BACKWARD; /* else ZB-H1's input half: the slot stays */
            if (whole && (s = begin_gradients(e, c)) != LMF_OK) break;
            double c0 = lmf_now_s();
            if (whole) {
                lmf_gpt_stage_backward(m, mb % S, dy);
                e->occupant[k] = -1;
            } else {
                s = lmf_gpt_stage_backward_input(m, mb % S, dy);
            }
            busy += lmf_now_s() - c0;
            if (s != LMF_OK) break;
            if (v > 0)
                s = lmf_comm_isend_f32(e->comm, lmf_gpt_stage_input_grad(m), e->n, prev,
                                       tag_of(e, mb, v - 1, 1), &e->send_b[k]);
            if (s == LMF_OK) s = block0_done(e, c);
        }
        if (s == LMF_OK) s = e->hook_err;
        if (s == LMF_OK) s = lmf_comm_progress(e->comm);
    }
    for (int k = 0; k < e->V * S && s == LMF_OK; k++) {
        s = lmf_comm_wait(e->comm, &e->send_f[k]);
        if (s == LMF_OK) s = lmf_comm_wait(e->comm, &e->send_b[k]);
    }
    lmf_comm_set_context(e->comm, "%s%sembedding gradients", e->context,
                         e->context[0] ? ", " : "");
    if (s == LMF_OK && !e->wrap[0].e) s = tie_grads(e); /* wrapped: summed in the backward */
    if (s == LMF_OK) s = block0_after_step(e);
    lmf_comm_set_context(e->comm, "%s", e->context);
    if (loss) *loss = e->stage == P - 1 && s == LMF_OK ? (float)(sum / e->M) : 0.0f;
    if (stats) {
        stats->seconds = lmf_now_s() - t0;
        stats->busy = busy;
        stats->bubble = stats->seconds > 0.0 ? 1.0 - busy / stats->seconds : 0.0;
    }
    return s;
}

/* One group of g <= M evaluation micro-batches (mb0 the first's index in inputs and targets):
 * each chunk in turn runs them in order, receiving its input from the stage before and sending
 * its output to the stage after; an order every stage can follow without waiting on a later
 * one (a chunk's input comes from the same chunk of the stage before, or from the previous
 * chunk of the last stage). *sum gathers the last virtual stage's losses. */
static lmf_status eval_group(lmf_pp_engine *e, const int32_t *inputs, const int32_t *targets,
                             int mb0, int g, double *sum) {
    int P = e->P;
    int prev = (e->stage + P - 1) % P;
    size_t BT = (size_t)e->B * e->T;
    for (int mb = 0; mb < g; mb++)
        for (int c = 0; c < e->V; c++) {
            int v = c * P + e->stage;
            size_t i = (size_t)mb * e->V + c;
            if (v > 0)
                LMF_TRY(lmf_comm_irecv_f32(e->comm, e->xbuf + i * e->n, e->n, prev,
                                           tag_of(e, mb, v, 0), &e->recv_x[i]));
        }
    lmf_status s = LMF_OK;
    for (int c = 0; c < e->V && s == LMF_OK; c++)
        for (int mb = 0; mb < g && s == LMF_OK; mb++) {
            int v = c * P + e->stage;
            size_t row = (size_t)(mb0 + mb) * BT;
            lmf_comm_set_context(e->comm, "%s%spipeline stage %d, evaluation micro-batch %d",
                                 e->context, e->context[0] ? ", " : "", v, mb0 + mb);
            float l = 0.0f;
            double busy = 0.0;
            s = forward_one(e, c, mb, inputs + row, targets + row, 0, 1.0f, &l, &busy);
            if (s == LMF_OK) s = e->hook_err;
            if (s != LMF_OK) break;
            *sum += l;
            s = lmf_comm_progress(e->comm);
        }
    for (int k = 0; k < e->V * e->slots && s == LMF_OK; k++) s = lmf_comm_wait(e->comm, &e->send_f[k]);
    return s;
}

lmf_status lmf_pp_engine_eval(lmf_pp_engine *e, const int32_t *inputs, const int32_t *targets,
                              int n_micro, float *loss) {
    *loss = 0.0f;
    if (n_micro < 1)
        return lmf_fail(LMF_ERR_ARG, "an evaluation of %d micro-batches: give at least one",
                        n_micro);
    snprintf(e->context, sizeof e->context, "%s", lmf_comm_context(e->comm));
    double sum = 0.0;
    lmf_status s = LMF_OK;
    e->hook_err = LMF_OK;
    for (int mb0 = 0; mb0 < n_micro && s == LMF_OK; mb0 += e->M)
        s = eval_group(e, inputs, targets, mb0, n_micro - mb0 < e->M ? n_micro - mb0 : e->M,
                       &sum);
    /* the last stage's mean, and 0 elsewhere, summed over the group: every stage has it */
    float mean = e->stage == e->P - 1 ? (float)(sum / n_micro) : 0.0f;
    if (s == LMF_OK && e->P > 1) {
        lmf_comm_set_context(e->comm, "%s%sevaluation loss", e->context,
                             e->context[0] ? ", " : "");
        s = lmf_comm_allreduce_f32(e->comm, &mean, 1);
    }
    lmf_comm_set_context(e->comm, "%s", e->context);
    if (s == LMF_OK) *loss = mean;
    return s;
}

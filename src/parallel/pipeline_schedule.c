/* Pipeline schedules (GPipe, 1F1B, interleaved 1F1B, ZB-H1): each stage's ordered actions, their
 * dependencies, and a discrete-event simulation of a step (makespan, bubble, activations held). */
#include "lmforge/pipeline.h"

#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

/* Largest number of actions of all stages together that a shape may have. */
#define PP_MAX_ACTIONS ((int64_t)1 << 26)

static const char *const names[LMF_PP_NSCHEDULES] = {
    [LMF_PP_1F1B] = "1f1b", [LMF_PP_GPIPE] = "gpipe", [LMF_PP_INTERLEAVED] = "interleaved",
    [LMF_PP_ZB_H1] = "zb"};

const char *lmf_pp_schedule_name(lmf_pp_schedule s) {
    return (int)s >= 0 && s < LMF_PP_NSCHEDULES ? names[s] : NULL;
}

lmf_status lmf_pp_schedule_parse(const char *name, lmf_pp_schedule *out) {
    for (int i = 0; i < LMF_PP_NSCHEDULES; i++)
        if (name && strcmp(name, names[i]) == 0) {
            *out = (lmf_pp_schedule)i;
            return LMF_OK;
        }
    return lmf_fail(LMF_ERR_ARG, "unknown pipeline schedule '%s'; use gpipe, 1f1b, interleaved or zb",
                    name ? name : "");
}

lmf_status lmf_pp_schedule_parse_list(const char *list, unsigned *mask) {
    unsigned m = 0;
    char name[32];
    const char *p = list ? list : "";
    for (;;) {
        size_t len = strcspn(p, ",");
        if (len == 0 || len >= sizeof name) {
            *mask = 0;
            return lmf_fail(LMF_ERR_ARG, "'%s' is not a list of pipeline schedules; give names "
                            "separated by commas, e.g. 1f1b,zb", list ? list : "");
        }
        snprintf(name, sizeof name, "%.*s", (int)len, p);
        lmf_pp_schedule one = LMF_PP_1F1B;
        if (lmf_pp_schedule_parse(name, &one) != LMF_OK) {
            *mask = 0;
            return LMF_ERR_ARG;
        }
        m |= 1u << one;
        if (p[len] != ',') break;
        p += len + 1;
    }
    *mask = m;
    return LMF_OK;
}

static int split_backward(const lmf_pp_shape *sh) { return sh->schedule == LMF_PP_ZB_H1; }

lmf_status lmf_pp_shape_check(const lmf_pp_shape *sh) {
    const char *name = lmf_pp_schedule_name(sh->schedule);
    if (!name) return lmf_fail(LMF_ERR_ARG, "unknown pipeline schedule %d", (int)sh->schedule);
    if (sh->stages < 1 || sh->micro_batches < 1 || sh->virtual_stages < 1)
        return lmf_fail(LMF_ERR_ARG, "pipeline stages, micro-batches and virtual stages must be at least 1 "
                        "(got %d, %d, %d)", sh->stages, sh->micro_batches, sh->virtual_stages);
    if (sh->virtual_stages > 1 && sh->schedule != LMF_PP_INTERLEAVED)
        return lmf_fail(LMF_ERR_ARG, "the %s schedule runs one model chunk per stage (got %d virtual "
                        "stages); use the interleaved schedule for more", name, sh->virtual_stages);
    if (sh->virtual_stages > 1 && sh->micro_batches % sh->stages != 0)
        return lmf_fail(LMF_ERR_ARG, "the interleaved schedule runs micro-batches in groups of the %d "
                        "stages: %d micro-batches is not a multiple; change the micro-batches per step",
                        sh->stages, sh->micro_batches);
    int64_t total = (int64_t)sh->stages * sh->micro_batches * sh->virtual_stages * 3;
    if (total > PP_MAX_ACTIONS)
        return lmf_fail(LMF_ERR_ARG, "a schedule of %d stages, %d micro-batches and %d virtual stages "
                        "has more than %lld actions; use fewer micro-batches",
                        sh->stages, sh->micro_batches, sh->virtual_stages, (long long)PP_MAX_ACTIONS);
    return LMF_OK;
}

int lmf_pp_stage_actions(const lmf_pp_shape *sh) {
    return (split_backward(sh) ? 3 : 2) * sh->micro_batches * sh->virtual_stages;
}

/* ---- the generators ---- */

static lmf_pp_action act(lmf_pp_op op, int mb, int chunk) {
    lmf_pp_action a = {op, mb, chunk};
    return a;
}

/* Interleaved 1F1B as Megatron-LM orders it (1F1B when V = 1, micro-batch k in order): the k-th
 * forward of a stage runs chunk (k / P) mod V of micro-batch (k / (P V)) P + k mod P; the k-th
 * backward the same micro-batch of chunk V - 1 - (k / P) mod V. Warm-up: P - s - 1 forwards
 * (V = 1), or 2 (P - s - 1) + (V - 1) P (V > 1), at most all of them. */
static void gen_1f1b(const lmf_pp_shape *sh, int s, lmf_pp_action *out) {
    int P = sh->stages, M = sh->micro_batches, V = sh->virtual_stages, total = M * V;
    int64_t warm = V == 1 ? P - s - 1 : 2 * (int64_t)(P - s - 1) + (int64_t)(V - 1) * P;
    int w = warm < total ? (int)warm : total;
    int n = 0;
#define FWD(k) act(LMF_PP_FORWARD, ((k) / (P * V)) * P + (k) % P, ((k) / P) % V)
#define BWD(k) act(LMF_PP_BACKWARD, ((k) / (P * V)) * P + (k) % P, V - 1 - ((k) / P) % V)
    for (int k = 0; k < w; k++) out[n++] = FWD(k);
    for (int k = 0; k < total - w; k++) {
        out[n++] = FWD(w + k);
        out[n++] = BWD(k);
    }
    for (int k = total - w; k < total; k++) out[n++] = BWD(k);
#undef FWD
#undef BWD
}

static void gen_gpipe(const lmf_pp_shape *sh, lmf_pp_action *out) {
    int M = sh->micro_batches;
    for (int k = 0; k < M; k++) out[k] = act(LMF_PP_FORWARD, k, 0);
    for (int k = 0; k < M; k++) out[M + k] = act(LMF_PP_BACKWARD, k, 0);
}

/* ZB-H1 for all stages at once, into all[P][3M]. The forwards and input halves B keep 1F1B's
 * order (warm-up of P - s - 1 forwards on stage s, then one of each in turn); the weight halves
 * W go where a list scheduler puts them when F, B and W take one time unit each: a W runs
 * before the next forward when that forward would make the stage hold more than P
 * micro-batches (forward done, W not): stage 0 of 1F1B's most, so the peak stays 1F1B's; and a
 * W runs whenever the next F or B is still waiting for its input. With F = B = W and M >= P
 * every stage then idles P - 1 units, (P - 1)(F + B - W) as Qi et al. give for ZB-H1. */
typedef struct zb_stage {
    int nf, nb, nw;   /* forwards, input halves, weight halves done */
    int busy_until;   /* time unit the running action ends */
    int count;        /* actions listed */
    int pos;          /* next entry of the stage's 1F1B order of F and B */
} zb_stage;

static lmf_status gen_zb_all(const lmf_pp_shape *sh, lmf_pp_action *all) {
    int P = sh->stages, M = sh->micro_batches, n = 3 * M;
    /* end time unit of each stage's forward and input half of each micro-batch (-1: not run) */
    int *fend = malloc(sizeof(int) * (size_t)P * M), *bend = malloc(sizeof(int) * (size_t)P * M);
    zb_stage *st = calloc((size_t)P, sizeof *st);
    lmf_pp_action *order = malloc(sizeof *order * (size_t)2 * M * P); /* each stage's 1F1B order */
    if (!fend || !bend || !st || !order) {
        free(fend), free(bend), free(st), free(order);
        return lmf_fail(LMF_ERR_NOMEM, "out of memory for a ZB-H1 schedule of %d stages and %d micro-batches", P, M);
    }
    for (int64_t i = 0; i < (int64_t)P * M; i++) fend[i] = bend[i] = -1;
    int64_t left = (int64_t)P * n;
    lmf_pp_shape plain = {LMF_PP_1F1B, P, M, 1};
    for (int s = 0; s < P; s++) gen_1f1b(&plain, s, order + (int64_t)s * 2 * M);
#define DONE(tab, stage, mb) ((tab)[(stage) * M + (mb)] >= 0 && (tab)[(stage) * M + (mb)] <= t)
    for (int t = 0; left > 0; t++) {
        /* every action takes one unit; with equal costs no stage waits longer than the chain
         * through all stages, so this bound only catches an ordering bug */
        LMF_ASSERT(t <= 4 * n + 4 * P);
        for (int s = 0; s < P; s++) {
            zb_stage *z = &st[s];
            if (z->busy_until > t) continue;
            lmf_pp_action *out = all + (int64_t)s * n;
            const lmf_pp_action *x = z->pos < 2 * M ? &order[(int64_t)s * 2 * M + z->pos] : NULL;
            int w_ready = z->nw < z->nb && DONE(bend, s, z->nw);
            int x_ready = 0;
            if (x && x->op == LMF_PP_FORWARD) x_ready = s == 0 || DONE(fend, s - 1, x->mb);
            else if (x) x_ready = DONE(fend, s, x->mb) && (s == P - 1 || DONE(bend, s + 1, x->mb));
            int forced = x && x->op == LMF_PP_FORWARD && z->nf - z->nw >= P;
            if (forced || (!x_ready && w_ready)) {
                if (!w_ready) continue;
                out[z->count++] = act(LMF_PP_BACKWARD_WEIGHT, z->nw++, 0);
            } else if (x_ready && x->op == LMF_PP_FORWARD) {
                out[z->count++] = act(LMF_PP_FORWARD, x->mb, 0);
                fend[s * M + x->mb] = t + 1;
                z->nf++, z->pos++;
            } else if (x_ready) {
                out[z->count++] = act(LMF_PP_BACKWARD_INPUT, x->mb, 0);
                bend[s * M + x->mb] = t + 1;
                z->nb++, z->pos++;
            } else {
                continue;
            }
            z->busy_until = t + 1;
            left--;
        }
    }
#undef DONE
    free(fend), free(bend), free(st), free(order);
    return LMF_OK;
}

/* Every stage's actions into all[P * n], n = lmf_pp_stage_actions(sh). */
static lmf_status gen_all(const lmf_pp_shape *sh, lmf_pp_action *all) {
    int n = lmf_pp_stage_actions(sh);
    switch (sh->schedule) {
    case LMF_PP_ZB_H1: return gen_zb_all(sh, all);
    case LMF_PP_GPIPE:
        for (int s = 0; s < sh->stages; s++) gen_gpipe(sh, all + (int64_t)s * n);
        return LMF_OK;
    default:
        for (int s = 0; s < sh->stages; s++) gen_1f1b(sh, s, all + (int64_t)s * n);
        return LMF_OK;
    }
}

lmf_status lmf_pp_schedule_actions(const lmf_pp_shape *sh, int stage, lmf_pp_action *out) {
    LMF_TRY(lmf_pp_shape_check(sh));
    if (stage < 0 || stage >= sh->stages)
        return lmf_fail(LMF_ERR_ARG, "stage %d is outside 0..%d", stage, sh->stages - 1);
    int n = lmf_pp_stage_actions(sh);
    switch (sh->schedule) {
    case LMF_PP_GPIPE: gen_gpipe(sh, out); return LMF_OK;
    case LMF_PP_ZB_H1: {
        lmf_pp_action *all = malloc(sizeof *all * (size_t)sh->stages * (size_t)n);
        if (!all) return lmf_fail(LMF_ERR_NOMEM, "out of memory for a schedule of %d stages", sh->stages);
        lmf_status st = gen_zb_all(sh, all);
        if (st == LMF_OK) memcpy(out, all + (int64_t)stage * n, sizeof *out * (size_t)n);
        free(all);
        return st;
    }
    default: gen_1f1b(sh, stage, out); return LMF_OK;
    }
}

int lmf_pp_action_deps(const lmf_pp_shape *sh, int stage, const lmf_pp_action *a,
                       lmf_pp_dep out[2]) {
    int P = sh->stages, last = P * sh->virtual_stages - 1;
    int vs = a->chunk * P + stage; /* virtual stage */
    int k = 0;
    switch (a->op) {
    case LMF_PP_FORWARD:
        if (vs > 0) out[k++] = (lmf_pp_dep){(vs - 1) % P, act(LMF_PP_FORWARD, a->mb, (vs - 1) / P)};
        break;
    case LMF_PP_BACKWARD:
    case LMF_PP_BACKWARD_INPUT:
        out[k++] = (lmf_pp_dep){stage, act(LMF_PP_FORWARD, a->mb, a->chunk)};
        if (vs < last) out[k++] = (lmf_pp_dep){(vs + 1) % P, act(a->op, a->mb, (vs + 1) / P)};
        break;
    case LMF_PP_BACKWARD_WEIGHT:
        out[k++] = (lmf_pp_dep){stage, act(LMF_PP_BACKWARD_INPUT, a->mb, a->chunk)};
        break;
    }
    return k;
}

/* ---- the simulation ---- */

/* Row of an action's kind in a stage's table of end times. */
static int op_row(lmf_pp_op op) {
    return op == LMF_PP_FORWARD ? 0 : op == LMF_PP_BACKWARD_WEIGHT ? 2 : 1;
}

static int releases(const lmf_pp_shape *sh, lmf_pp_op op) {
    return split_backward(sh) ? op == LMF_PP_BACKWARD_WEIGHT : op == LMF_PP_BACKWARD;
}

static int peak_of(const lmf_pp_shape *sh, const lmf_pp_action *a, int n) {
    int held = 0, peak = 0;
    for (int i = 0; i < n; i++) {
        if (a[i].op == LMF_PP_FORWARD && ++held > peak) peak = held;
        if (releases(sh, a[i].op)) held--;
    }
    return peak;
}

lmf_status lmf_pp_peak_inflight(const lmf_pp_shape *sh, int stage, int *peak) {
    LMF_TRY(lmf_pp_shape_check(sh));
    int n = lmf_pp_stage_actions(sh);
    lmf_pp_action *a = malloc(sizeof *a * (size_t)n);
    if (!a) return lmf_fail(LMF_ERR_NOMEM, "out of memory for a schedule of %d actions", n);
    lmf_status st = lmf_pp_schedule_actions(sh, stage, a);
    if (st == LMF_OK) *peak = peak_of(sh, a, n);
    free(a);
    return st;
}

static double cost_of(const lmf_pp_costs *c, lmf_pp_op op) {
    return op == LMF_PP_FORWARD ? c->forward : op == LMF_PP_BACKWARD_WEIGHT ? c->weight : c->backward;
}

lmf_status lmf_pp_simulate(const lmf_pp_shape *sh, const lmf_pp_costs *costs,
                           lmf_pp_stage_result *stages, lmf_pp_timing *timing,
                           lmf_pp_summary *out) {
    LMF_TRY(lmf_pp_shape_check(sh));
    const double cv[4] = {costs->forward, costs->backward, costs->weight, costs->p2p};
    for (int i = 0; i < 4; i++)
        if (!isfinite(cv[i]) || cv[i] < 0.0)
            return lmf_fail(LMF_ERR_ARG, "pipeline action costs must be finite and not negative "
                            "(forward %g, backward %g, weight %g, p2p %g)", cv[0], cv[1], cv[2], cv[3]);
    int P = sh->stages, M = sh->micro_batches, V = sh->virtual_stages;
    int n = lmf_pp_stage_actions(sh);
    size_t per = (size_t)3 * M * V; /* end times per stage: [row][mb][chunk] */
    lmf_pp_action *all = malloc(sizeof *all * (size_t)P * n);
    double *end = malloc(sizeof *end * (size_t)P * per);
    double *free_at = calloc((size_t)P, sizeof *free_at), *busy = calloc((size_t)P, sizeof *busy);
    int *next = calloc((size_t)P, sizeof *next);
    lmf_status st = LMF_OK;
    if (!all || !end || !free_at || !busy || !next) {
        st = lmf_fail(LMF_ERR_NOMEM, "out of memory simulating %d stages of %d actions", P, n);
        goto done;
    }
    if ((st = gen_all(sh, all)) != LMF_OK) goto done;
    for (size_t i = 0; i < (size_t)P * per; i++) end[i] = -1.0;

    int64_t left = (int64_t)P * n;
    /* Sweep the stages, alternately up and down (forwards flow up, backwards down), running
     * each one's actions while their dependencies have ended; an action's times are final once
     * set, so the order of sweeps does not change them. */
    for (int sweep = 0; left > 0; sweep++) {
        int64_t before = left;
        for (int i = 0; i < P; i++) {
            int s = sweep % 2 ? P - 1 - i : i;
            const lmf_pp_action *list = all + (int64_t)s * n;
            while (next[s] < n) {
                const lmf_pp_action *a = &list[next[s]];
                lmf_pp_dep d[2];
                int nd = lmf_pp_action_deps(sh, s, a, d);
                double start = free_at[s];
                int ready = 1;
                for (int j = 0; j < nd && ready; j++) {
                    double e = end[(size_t)d[j].stage * per +
                                   ((size_t)op_row(d[j].action.op) * M + d[j].action.mb) * V + d[j].action.chunk];
                    if (e < 0.0) ready = 0;
                    else start = fmax(start, e + (d[j].stage != s ? costs->p2p : 0.0));
                }
                if (!ready) break;
                double c = cost_of(costs, a->op), fin = start + c;
                end[(size_t)s * per + ((size_t)op_row(a->op) * M + a->mb) * V + a->chunk] = fin;
                if (timing) timing[(int64_t)s * n + next[s]] = (lmf_pp_timing){start, fin};
                free_at[s] = fin;
                busy[s] += c;
                next[s]++;
                left--;
            }
        }
        if (left == before) {
            int s = 0;
            while (next[s] >= n) s++;
            const lmf_pp_action *a = &all[(int64_t)s * n + next[s]];
            st = lmf_fail(LMF_ERR_STATE, "the %s schedule deadlocks: stage %d waits forever at action %d "
                          "(op %d, micro-batch %d, chunk %d)", lmf_pp_schedule_name(sh->schedule), s,
                          next[s], (int)a->op, a->mb, a->chunk);
            goto done;
        }
    }
    memset(out, 0, sizeof *out);
    for (int s = 0; s < P; s++) out->makespan = fmax(out->makespan, free_at[s]);
    for (int s = 0; s < P; s++) {
        double idle = out->makespan > 0.0 ? 1.0 - busy[s] / out->makespan : 0.0;
        int peak = peak_of(sh, all + (int64_t)s * n, n);
        if (stages) stages[s] = (lmf_pp_stage_result){busy[s], idle, peak};
        if (idle > out->idle_max) out->idle_max = idle;
        if (peak > out->peak_max) out->peak_max = peak;
        if (s == 0) out->idle_first = idle, out->peak_first = peak;
    }
done:
    free(all), free(end), free(free_at), free(busy), free(next);
    return st;
}

int lmf_pp_steady_micro_batches(lmf_pp_schedule s, int stages, int virtual_stages) {
    /* 1F1B, GPipe and ZB-H1 reach their steady state within 2P micro-batches; the interleaved
     * schedule within two groups of P beyond its warm-up of about (V + 1) P chunks */
    if (s == LMF_PP_GPIPE) return INT_MAX; /* its activations grow with every micro-batch */
    int groups = s == LMF_PP_INTERLEAVED && virtual_stages > 1 ? 4 : 2;
    return groups * stages;
}

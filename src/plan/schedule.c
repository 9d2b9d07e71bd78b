/* The planner's price of a pipeline schedule: its bubble and activations held, from the
 * schedule's own simulation (src/parallel/pipeline_schedule.c). */
#include "plan/plan_model.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

lmf_pp_schedule lmf_plan_schedule_of(const lmf_plan_layout *l) {
    return lmf_plan_virtual_stages(l) > 1 ? LMF_PP_INTERLEAVED : l->schedule;
}

static unsigned hash_key(const lmf_pp_shape *sh, const lmf_pp_costs *c) {
    uint64_t h = 1469598103934665603ull;
    const int ints[4] = {(int)sh->schedule, sh->stages, sh->micro_batches, sh->virtual_stages};
    const double dbl[4] = {c->forward, c->backward, c->weight, c->p2p};
    unsigned char buf[sizeof ints + sizeof dbl];
    memcpy(buf, ints, sizeof ints);
    memcpy(buf + sizeof ints, dbl, sizeof dbl);
    for (size_t i = 0; i < sizeof buf; i++) h = (h ^ buf[i]) * 1099511628211ull;
    return (unsigned)(h % LMF_PLAN_PIPE_CACHE);
}

static int same_key(const lmf_plan_pipe_entry *e, const lmf_pp_shape *sh, const lmf_pp_costs *c) {
    return e->used && e->shape.schedule == sh->schedule && e->shape.stages == sh->stages &&
           e->shape.micro_batches == sh->micro_batches &&
           e->shape.virtual_stages == sh->virtual_stages && e->costs.forward == c->forward &&
           e->costs.backward == c->backward && e->costs.weight == c->weight && e->costs.p2p == c->p2p;
}

/* The simulation of sh with costs c: from the cache, or run (and kept there). */
static lmf_status simulate(const lmf_pp_shape *sh, const lmf_pp_costs *c, lmf_plan_pipe_cache *cache,
                           lmf_plan_pipe_entry *out) {
    lmf_plan_pipe_entry *e = cache ? &cache->e[hash_key(sh, c)] : NULL;
    if (e && same_key(e, sh, c)) {
        *out = *e;
        return LMF_OK;
    }
    lmf_pp_stage_result *st = malloc(sizeof *st * (size_t)sh->stages);
    if (!st) return lmf_fail(LMF_ERR_NOMEM, "out of memory simulating %d pipeline stages", sh->stages);
    lmf_pp_summary sum;
    lmf_status rc = lmf_pp_simulate(sh, c, st, NULL, &sum);
    if (rc == LMF_OK) {
        *out = (lmf_plan_pipe_entry){1, *sh, *c, sum.makespan, st[0].peak_inflight,
                                     st[sh->stages - 1].peak_inflight};
        if (e) *e = *out;
    }
    free(st);
    return rc;
}

lmf_status lmf_plan_schedule_prepare(lmf_plan_setup *s, int m, lmf_plan_pipe_cache *cache) {
    const lmf_plan_layout *l = s->layout;
    lmf_plan_pipe *p = &s->pipe;
    *p = (lmf_plan_pipe){.ready = 1, .inflight = {1.0, 1.0}};
    if (l->pp == 1) return LMF_OK;
    int v = lmf_plan_virtual_stages(l);
    lmf_pp_schedule k = lmf_plan_schedule_of(l);
    int steady = lmf_pp_steady_micro_batches(k, l->pp, v);
    lmf_pp_shape sh = {k, l->pp, m < steady ? m : steady, v};

    lmf_pp_costs c = {1.0 / 3.0 / v, 2.0 / 3.0 / v, 0.0, 0.0};
    if (k == LMF_PP_ZB_H1) {
        /* one slot split as the device splits a layers-only stage's micro-batch */
        lmf_plan_micro mb;
        s->device->micro_batch(s, &mb);
        double f = mb.compute_layers > 0.0 ? 1.0 - mb.backward / mb.compute_layers : 1.0 / 3.0;
        f = fmin(fmax(f, 0.0), 1.0);
        c.forward = f;
        c.weight = fmin(f, 1.0 - f);
        c.backward = 1.0 - f - c.weight;
    }
    lmf_plan_pipe_entry r;
    LMF_TRY(simulate(&sh, &c, cache, &r));
    /* every stage computes sh.micro_batches slots; the rest of m adds slots, no idle time */
    p->bubble_slots = fmax(0.0, r.makespan - sh.micro_batches);
    p->idle_fraction = p->bubble_slots / (m + p->bubble_slots);
    /* peaks counted in model chunks, 1/v of the stage's layers each */
    p->inflight[LMF_PLAN_STAGE_FIRST] = (double)r.peak_first / v;
    p->inflight[LMF_PLAN_STAGE_LAST] = (double)r.peak_last / v;
    return LMF_OK;
}

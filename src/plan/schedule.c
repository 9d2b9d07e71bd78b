/* The planner's price of a pipeline schedule: its bubble and activations held, from the
 * schedule's own simulation (src/parallel/pipeline_schedule.c). */
#include "plan/plan_model.h"

#include <math.h>
#include <stdlib.h>

lmf_pp_schedule lmf_plan_schedule_of(const lmf_plan_layout *l) {
    return lmf_plan_virtual_stages(l) > 1 ? LMF_PP_INTERLEAVED : l->schedule;
}

lmf_status lmf_plan_schedule_prepare(lmf_plan_setup *s, int m) {
    const lmf_plan_layout *l = s->layout;
    lmf_plan_pipe *p = &s->pipe;
    *p = (lmf_plan_pipe){.ready = 1, .inflight = {1.0, 1.0}};
    if (l->pp == 1) return LMF_OK;
    int v = lmf_plan_virtual_stages(l);
    lmf_pp_schedule k = lmf_plan_schedule_of(l);
    int steady = lmf_pp_steady_micro_batches(k, l->pp, v);
    lmf_pp_shape sh = {k, l->pp, m < steady ? m : steady, v};

    /* one slot split as the device splits a layers-only stage's micro-batch */
    lmf_plan_micro mb;
    s->device->micro_batch(s, &mb);
    double f = mb.compute_layers > 0.0 ? 1.0 - mb.backward / mb.compute_layers : 0.5;
    f = fmin(fmax(f, 0.0), 1.0);
    lmf_pp_costs c = {f / v, (1.0 - f) / v, 0.0, 0.0};
    if (k == LMF_PP_ZB_H1) {
        c.weight = fmin(f, 1.0 - f);
        c.backward = 1.0 - f - c.weight;
    }
    lmf_pp_stage_result *st = malloc(sizeof *st * (size_t)l->pp);
    if (!st) return lmf_fail(LMF_ERR_NOMEM, "out of memory simulating %d pipeline stages", l->pp);
    lmf_pp_summary sum;
    lmf_status rc = lmf_pp_simulate(&sh, &c, st, NULL, &sum);
    if (rc == LMF_OK) {
        /* every stage computes sh.micro_batches slots; the rest of m adds slots, no idle time */
        p->bubble_slots = fmax(0.0, sum.makespan - sh.micro_batches);
        p->idle_fraction = p->bubble_slots / (m + p->bubble_slots);
        /* peaks counted in model chunks, 1/v of the stage's layers each */
        p->inflight[LMF_PLAN_STAGE_FIRST] = (double)st[0].peak_inflight / v;
        p->inflight[LMF_PLAN_STAGE_LAST] = (double)st[l->pp - 1].peak_inflight / v;
    }
    free(st);
    return rc;
}

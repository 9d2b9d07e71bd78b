/* Planner search: enumerate parallel layouts that fit, rank them by time to train. */
#include "plan/plan_model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_CAND 64
#define MAX_VIRTUAL 8

/* divisors of n that are <= cap, ascending, into out[MAX_CAND] */
static int divisors(int n, int cap, int *out) {
    int k = 0;
    for (int d = 1; d <= n && d <= cap && k < MAX_CAND; d++)
        if (n % d == 0) out[k++] = d;
    return k;
}

static int add_unique(int *v, int n, int x) {
    for (int i = 0; i < n; i++)
        if (v[i] == x) return n;
    if (n < MAX_CAND) v[n++] = x;
    return n;
}

/* a before b? shorter time to train, then fewer devices, then less memory */
static int better(const lmf_plan_result *a, const lmf_plan_result *b) {
    double ta = a->days, tb = b->days;
    if (fabs(ta - tb) > 1e-9 * fmax(ta, tb)) return ta < tb;
    if (a->devices != b->devices) return a->devices < b->devices;
    return a->mem.total < b->mem.total;
}

static int same_shape(const lmf_plan_layout *a, const lmf_plan_layout *b) {
    return a->dp == b->dp && a->tp == b->tp && a->pp == b->pp && a->cp == b->cp &&
           a->micro_batch == b->micro_batch;
}

/* Keep best[0..n) sorted; one entry per (dp, tp, pp, micro-batch), the best variant of it. */
static void offer(lmf_plan_result *best, int max_best, int *n, const lmf_plan_result *r) {
    for (int i = 0; i < *n; i++) {
        if (same_shape(&best[i].layout, &r->layout)) {
            if (!better(r, &best[i])) return;
            memmove(&best[i], &best[i + 1], (size_t)(*n - i - 1) * sizeof *best);
            (*n)--;
            break;
        }
    }
    int pos = *n;
    while (pos > 0 && better(r, &best[pos - 1])) pos--;
    if (pos >= max_best) return;
    int keep = *n < max_best ? *n : max_best - 1;
    memmove(&best[pos + 1], &best[pos], (size_t)(keep - pos) * sizeof *best);
    best[pos] = *r;
    if (*n < max_best) (*n)++;
}

static lmf_status search(const lmf_cluster *c, const lmf_plan_job *job,
                         const lmf_plan_constraints *k, lmf_plan_result *best, int max_best,
                         int *n_best, int64_t *n_evaluated, lmf_plan_pipe_cache *cache) {
    const lmf_gpt_config *m = &job->model;
    int devices = lmf_cluster_devices(c);
    *n_best = 0;
    *n_evaluated = 0;
    if (max_best < 1) return lmf_fail(LMF_ERR_ARG, "search needs room for at least one result");
    LMF_TRY(lmf_config_validate(m));
    if (job->seq < 1 || job->seq > m->n_positions)
        return lmf_fail(LMF_ERR_ARG, "sequence length %d is outside 1..%d (the model's n_positions)",
                        job->seq, m->n_positions);
    if (!(c->peak_flops[k->dtype] > 0.0))
        return lmf_fail(LMF_ERR_ARG, "device '%s' of cluster '%s' has no %s peak; choose another --dtype",
                        c->device, c->name, lmf_plan_dtype_name(k->dtype));
    double want_d = floor(job->global_batch_tokens / job->seq + 0.5);
    int64_t want = want_d < 1.0 ? 1 : (int64_t)fmin(want_d, 1e15);

    int tps[MAX_CAND], pps[MAX_CAND], bs[MAX_CAND];
    /* tensor parallelism all-reduces in every layer: its group stays inside a node (on the
     * node's fast links) unless the user fixes tp or allows crossing nodes */
    int tp_cap = k->allow_cross_node_tp || c->nodes <= 1 ? devices
                 : (c->devices_per_node < devices ? c->devices_per_node : devices);
    int n_tp = k->tp > 0 ? (tps[0] = k->tp, 1) : divisors(m->n_head, tp_cap, tps);
    int cp = k->cp > 0 ? k->cp : 1;
    int n_pp = k->pp > 0 ? (pps[0] = k->pp, 1) : divisors(m->n_layer, devices, pps);
    int n_b = 0;
    if (k->micro_batch > 0) bs[n_b++] = k->micro_batch;
    else
        for (int b = 1; b <= 256 && b <= want; b *= 2) bs[n_b++] = b;
    int z_lo = k->zero >= 0 ? k->zero : 0, z_hi = k->zero >= 0 ? k->zero : 3;
    int fixed_rc = k->recompute_fixed;
    int r_lo = fixed_rc ? (int)k->recompute : LMF_RECOMPUTE_NONE;
    int r_hi = fixed_rc ? (int)k->recompute : LMF_RECOMPUTE_FULL;

    lmf_plan_result r;
    double least_mem = INFINITY;
    lmf_plan_layout least_l = {0};
    lmf_status last_err = LMF_OK;
    char last_msg[256] = "";
    for (int it = 0; it < n_tp; it++) {
        for (int ip = 0; ip < n_pp; ip++) {
            int tp = tps[it], pp = pps[ip];
            if ((int64_t)tp * pp * cp > devices) continue;
            /* schedules: the one asked for, else the menu (by default what `lmforge train`
             * runs but GPipe, whose bubble is 1F1B's with more held: 1F1B, ZB-H1 and the
             * interleaved one); the interleaved one with the virtual_stages given, else with
             * each of 2 to MAX_VIRTUAL chunks per rank that split the fullest stage's layers */
            unsigned menu = k->schedule_fixed ? 1u << k->schedule
                            : k->schedules ? k->schedules
                                           : (1u << LMF_PP_1F1B) | (1u << LMF_PP_ZB_H1) |
                                                 (1u << LMF_PP_INTERLEAVED);
            if (k->virtual_stages > 1) menu = 1u << LMF_PP_INTERLEAVED;
            if (pp == 1) menu = 1u << LMF_PP_1F1B; /* no pipeline: the schedule does not apply */
            int vs[MAX_VIRTUAL + LMF_PP_NSCHEDULES], n_v = 0;
            lmf_pp_schedule scheds[MAX_VIRTUAL + LMF_PP_NSCHEDULES];
            for (int sc = 0; sc < LMF_PP_NSCHEDULES; sc++) {
                if (!(menu & (1u << sc))) continue;
                if (sc != LMF_PP_INTERLEAVED) {
                    scheds[n_v] = (lmf_pp_schedule)sc, vs[n_v++] = 1;
                } else if (k->virtual_stages > 1) {
                    if (lmf_plan_chunks_fit(m, pp, k->virtual_stages))
                        scheds[n_v] = LMF_PP_INTERLEAVED, vs[n_v++] = k->virtual_stages;
                } else {
                    for (int v = 2; v <= MAX_VIRTUAL; v++)
                        if (lmf_plan_chunks_fit(m, pp, v)) scheds[n_v] = LMF_PP_INTERLEAVED, vs[n_v++] = v;
                }
            }
            if (n_v == 0) continue;
            int dp_max = (int)(devices / ((int64_t)tp * pp * cp));
            for (int ib = 0; ib < n_b; ib++) {
                int b = bs[ib];
                /* replica counts: as many as fit, and those giving whole micro-batch counts
                 * near the smallest possible one */
                int dps[MAX_CAND], n_dp = 0;
                if (k->dp > 0) {
                    dps[n_dp++] = k->dp;
                } else {
                    double m_min = ceil((double)want / ((double)b * dp_max));
                    double ms[12] = {m_min, m_min + 1, m_min + 2, m_min + 3, 2 * m_min, 3 * m_min,
                                     4 * m_min, 8 * m_min, 16 * m_min, 32 * m_min, 64 * m_min, 128 * m_min};
                    n_dp = add_unique(dps, n_dp, dp_max);
                    for (int i = 0; i < 12; i++) {
                        double dp = floor((double)want / (b * ms[i]) + 0.5);
                        if (dp >= 1.0 && dp <= dp_max) n_dp = add_unique(dps, n_dp, (int)dp);
                    }
                }
                for (int id = 0; id < n_dp; id++) {
                    for (int z = z_lo; z <= z_hi; z++) {
                        if (z > 0 && dps[id] == 1 && k->zero < 0) continue; /* same as ZeRO-0 */
                        for (int rc = r_lo; rc <= r_hi; rc++)
                        for (int iv = 0; iv < n_v; iv++) {
                            lmf_plan_layout l = {dps[id], tp, pp, b, z, (lmf_recompute)rc,
                                                 k->dtype, k->sequence_parallel >= 0 ? k->sequence_parallel : tp > 1,
                                                 vs[iv], cp, scheds[iv]};
                            lmf_status st = lmf_plan_evaluate_cached(c, job, &l, cache, &r);
                            if (st != LMF_OK) {
                                last_err = st;
                                snprintf(last_msg, sizeof last_msg, "%s", lmf_last_error());
                                continue;
                            }
                            (*n_evaluated)++;
                            if (!r.mem.fits) {
                                if (r.mem.total < least_mem) {
                                    least_mem = r.mem.total;
                                    least_l = r.layout;
                                }
                                continue;
                            }
                            offer(best, max_best, n_best, &r);
                        }
                    }
                }
            }
        }
    }
    if (*n_best > 0) return LMF_OK;
    if (*n_evaluated == 0)
        return last_err != LMF_OK ? lmf_fail(last_err, "no layout is possible: %s", last_msg)
                                  : lmf_fail(LMF_ERR_ARG, "no layout is possible under the given constraints");
    double cap = c->device_memory - c->memory_reserved;
    return lmf_fail(LMF_ERR_ARG, "no layout fits in %.1f GiB per device: the least any needs is "
                    "%.1f GiB (dp %d, tp %d, pp %d, micro-batch %d, ZeRO-%d, recompute %s); "
                    "use more or larger devices",
                    cap / 1073741824.0, least_mem / 1073741824.0, least_l.dp, least_l.tp,
                    least_l.pp, least_l.micro_batch, least_l.zero,
                    lmf_recompute_name(least_l.recompute));
}

lmf_status lmf_plan_search(const lmf_cluster *c, const lmf_plan_job *job,
                           const lmf_plan_constraints *k, lmf_plan_result *best, int max_best,
                           int *n_best, int64_t *n_evaluated) {
    *n_best = 0;
    *n_evaluated = 0;
    /* layouts that differ in replicas, ZeRO or recomputation share their pipeline's simulation */
    lmf_plan_pipe_cache *cache = calloc(1, sizeof *cache);
    if (!cache) return lmf_fail(LMF_ERR_NOMEM, "out of memory for the search's schedule simulations");
    lmf_status st = search(c, job, k, best, max_best, n_best, n_evaluated, cache);
    free(cache);
    return st;
}

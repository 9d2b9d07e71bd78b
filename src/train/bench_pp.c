/* The pipeline benchmark of `lmforge bench --pp`: a schedule's measured bubble on this
 * machine's ranks beside the schedule's own, with the stages' compute and tokens/s. */
#include <stdlib.h>
#include <string.h>

#include "lmforge/bench.h"
#include "lmforge/perf.h"
#include "lmforge/rng.h"
#include "lmforge/system.h"
#include "train/train_internal.h"

/* the schedule's bubble with every action one time unit (the idlest stage's) */
static lmf_status schedule_bubble(const lmf_pp_shape *sh, double *out) {
    lmf_pp_costs c = {1.0, 1.0, 1.0, 0.0};
    lmf_pp_summary sum;
    LMF_TRY(lmf_pp_simulate(sh, &c, NULL, NULL, &sum));
    *out = sum.idle_max;
    return LMF_OK;
}

lmf_status lmf_bench_pipeline(const lmf_gpt_config *cfg, lmf_comm *group, lmf_pp_schedule schedule,
                              int V, int M, int B, int T, const lmf_kernels *k, int warm, int steps,
                              lmf_bench_pp_result *res) {
    int P = lmf_comm_size(group), stage = lmf_comm_rank(group);
    memset(res, 0, sizeof *res);
    if (P < 2 || P > LMF_BENCH_MAX_STAGES)
        return lmf_fail(LMF_ERR_ARG, "the pipeline benchmark runs 2 to %d stages, one per rank "
                        "(mpirun -np P lmforge bench --pp P); this launch has %d",
                        LMF_BENCH_MAX_STAGES, P);
    if (steps < 1 || warm < 0 || M < 1)
        return lmf_fail(LMF_ERR_ARG, "pipeline benchmark: steps >= 1, warm-up >= 0 and "
                        "micro-batches >= 1, got %d, %d, %d", steps, warm, M);
    if (schedule != LMF_PP_INTERLEAVED || V < 1) V = 1;
    lmf_pp_shape sh = {schedule, P, M, V};
    LMF_TRY(lmf_pp_shape_check(&sh));
    LMF_TRY(schedule_bubble(&sh, &res->schedule_bubble));
    lmf_train_opts o;
    lmf_train_opts_default(&o);
    o.pp = P;
    o.schedule = schedule;
    o.virtual_stages = V;
    o.batch = B;
    o.seq = T;
    o.recompute = LMF_RECOMPUTE_NONE;
    if (V > LMF_LAYOUT_MAX_RANGES)
        return lmf_fail(LMF_ERR_ARG, "--virtual-stages %d: at most %d", V, LMF_LAYOUT_MAX_RANGES);
    int l0[LMF_LAYOUT_MAX_RANGES], len[LMF_LAYOUT_MAX_RANGES];
    for (int p = 0; p < P; p++) {
        LMF_TRY(lmf_train_stage_chunks(&o, cfg, p, l0, len));
        for (int c = 0; c < V; c++) res->layers[p] += len[c];
    }
    LMF_TRY(lmf_train_stage_chunks(&o, cfg, stage, l0, len));
    lmf_gpt *chunks[LMF_LAYOUT_MAX_RANGES], *m = NULL;
    lmf_pp_engine *e = NULL;
    LMF_TRY(lmf_gpt_create_chunks(cfg, k, NULL, V, l0, len, chunks));
    m = chunks[0];
    lmf_gpt_init_weights(m, 1);
    lmf_status s = lmf_pp_engine_create(group, &sh, chunks, B, T, LMF_RESERVE_TRAIN, &e);
    size_t BT = (size_t)B * T;
    int32_t *in = malloc((size_t)M * BT * sizeof(int32_t)), *tg = malloc((size_t)M * BT * sizeof(int32_t));
    if (s == LMF_OK && (!in || !tg)) s = lmf_fail(LMF_ERR_NOMEM, "bench: out of memory for the tokens");
    lmf_rng r;
    lmf_rng_seed(&r, 7);
    for (size_t i = 0; s == LMF_OK && i < (size_t)M * BT; i++) {
        in[i] = (int32_t)(lmf_rng_u64(&r) % (uint64_t)cfg->vocab_size);
        tg[i] = (int32_t)(lmf_rng_u64(&r) % (uint64_t)cfg->vocab_size);
    }
    double seconds = 0.0, busy = 0.0, bubble = 0.0;
    for (int it = 0; s == LMF_OK && it < warm + steps; it++) {
        lmf_gpt_zero_grad(m);
        lmf_pp_step_stats st;
        float loss;
        s = lmf_pp_engine_step(e, in, tg, 1.0f / (float)M, &loss, &st);
        if (s == LMF_OK && it >= warm) {
            seconds += st.seconds;
            busy += st.busy;
            bubble += st.bubble;
        }
    }
    /* every stage's figures to every rank: each fills its own entry of a zeroed table */
    double t[2 * LMF_BENCH_MAX_STAGES + 1] = {0};
    t[stage] = bubble / steps;
    t[LMF_BENCH_MAX_STAGES + stage] = busy / steps;
    t[2 * LMF_BENCH_MAX_STAGES] = seconds / steps;
    if (s == LMF_OK) s = lmf_comm_allreduce_f64(group, t, 2 * LMF_BENCH_MAX_STAGES, LMF_COMM_SUM);
    if (s == LMF_OK) s = lmf_comm_allreduce_f64(group, t + 2 * LMF_BENCH_MAX_STAGES, 1, LMF_COMM_MAX);
    if (s == LMF_OK) {
        for (int p = 0; p < P; p++) {
            res->bubble[p] = t[p];
            res->busy_s[p] = t[LMF_BENCH_MAX_STAGES + p];
        }
        res->step_s = t[2 * LMF_BENCH_MAX_STAGES];
        res->tokens_per_s = res->step_s > 0 ? (double)M * (double)BT / res->step_s : 0.0;
    }
    free(in);
    free(tg);
    lmf_pp_engine_free(e);
    for (int c = V - 1; c >= 0; c--) lmf_gpt_free(chunks[c]);
    return s;
}

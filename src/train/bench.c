/* The training-step benchmark of `lmforge bench`: a model's forward, backward and AdamW timed
 * per phase, with the threads' idle fraction. */
#include "lmforge/bench.h"

#include <stdlib.h>
#include <string.h>

#include "lmforge/optim.h"
#include "lmforge/perf.h"
#include "lmforge/rng.h"
#include "lmforge/threads.h"
#include "lmforge/tp.h"

lmf_status lmf_bench_train_step(const lmf_gpt_config *cfg, int B, int T, const lmf_kernels *k,
                                lmf_recompute rc, int warm, int steps, double peak,
                                const lmf_bench_tp *tp, lmf_bench_result *res) {
    lmf_gpt *m = NULL;
    lmf_tp *engine = NULL;
    int group = tp && tp->group ? lmf_comm_size(tp->group) : 1;
    lmf_tp_config tc = {group, group > 1 ? lmf_comm_rank(tp->group) : 0,
                        group > 1 && tp->sequence_parallel};
    LMF_TRY(lmf_gpt_create_tp(cfg, k, &tc, &m));
    lmf_gpt_init_weights(m, 1);
    lmf_gpt_set_recompute(m, rc);
    lmf_status s = LMF_OK;
    if (group > 1 && (s = lmf_tp_create(tp->group, cfg, lmf_gpt_layout(m), &engine)) == LMF_OK) {
        lmf_gpt_hooks h;
        memset(&h, 0, sizeof h);
        lmf_tp_hooks(engine, &h);
        lmf_gpt_set_hooks(m, &h);
    }
    if (s == LMF_OK) s = lmf_gpt_reserve(m, B, T, LMF_RESERVE_TRAIN);
    size_t n = lmf_gpt_layout(m)->total, BT = (size_t)B * T;
    float *mo = calloc(n, sizeof(float)), *vo = calloc(n, sizeof(float));
    int32_t *in = malloc(BT * sizeof(int32_t)), *tg = malloc(BT * sizeof(int32_t));
    if (s == LMF_OK && (!mo || !vo || !in || !tg)) s = lmf_fail(LMF_ERR_NOMEM, "bench: out of memory");
    lmf_rng r;
    lmf_rng_seed(&r, 7);
    for (size_t i = 0; s == LMF_OK && i < BT; i++) {
        in[i] = (int32_t)(lmf_rng_u64(&r) % (uint64_t)cfg->vocab_size);
        tg[i] = (int32_t)(lmf_rng_u64(&r) % (uint64_t)cfg->vocab_size);
    }
    lmf_adamw_hp hp = {0.9f, 0.95f, 1e-8f, 0.1f};
    double total = 0, opt = 0, opt_busy = 0, opt_region = 0;
    lmf_tp_stats tp0 = {0, 0}, tp1 = {0, 0};
    /* AdamW leaves the gradients zeroed (as in training): zero them once, not every step */
    lmf_gpt_zero_grad(m);
    for (int it = 0; s == LMF_OK && it < warm + steps; it++) {
        if (it == warm) {
            lmf_gpt_profile(m, 1); /* also switches the kernels' busy accounting on */
            lmf_gpt_profile_reset(m);
            if (engine) lmf_tp_stats_get(engine, &tp0);
        }
        double t0 = lmf_now_s();
        float loss;
        s = lmf_gpt_forward(m, in, tg, B, T, 1, 1.0f, &loss);
        if (s != LMF_OK) break;
        lmf_gpt_backward(m);
        /* the replicated tensors' gradients made whole over the group (timed with the
         * collectives, inside the step) */
        if (engine && (s = lmf_tp_reduce_grads(engine, lmf_gpt_grads(m),
                                                (lmf_range){0, n})) != LMF_OK)
            break;
        double b0, w0, b1, w1;
        lmf_busy_read(&b0, &w0);
        double t1 = lmf_now_s();
        lmf_adamw_step(k, lmf_gpt_layout(m), 0, n, lmf_gpt_params(m), lmf_gpt_grads(m), mo, vo,
                       &hp, 1e-4f, 1.0f, it + 1);
        double t2 = lmf_now_s();
        lmf_busy_read(&b1, &w1);
        if (it >= warm) {
            total += t2 - t0;
            opt += t2 - t1;
            opt_busy += (b1 - b0) + ((t2 - t1) - (w1 - w0)); /* regions' work + serial time */
            opt_region += w1 - w0;
        }
    }
    lmf_gpt_profile(m, 0);
    if (engine) lmf_tp_stats_get(engine, &tp1);
    if (s == LMF_OK) {
        double flops = lmf_config_train_flops_per_token(cfg, T) * (double)BT;
        res->step_s = total / steps;
        res->tokens_per_s = (double)BT / res->step_s;
        res->gflops = flops / group / res->step_s / 1e9;
        res->tp_comm_s = (tp1.seconds - tp0.seconds) / steps;
        res->tp_calls = (double)(tp1.calls - tp0.calls) / steps;
        res->mfu = res->gflops * 1e9 / peak;
        res->rss_mb = (double)lmf_peak_rss_bytes() / 1e6;
        res->act_mb = (double)lmf_gpt_activation_bytes(m) / 1e6;
        double known = opt;
        lmf_gpt_profile_read(m, res->phase_s);
        for (int p = 0; p < LMF_PHASE_COUNT; p++) {
            res->phase_s[p] /= steps;
            known += res->phase_s[p] * steps;
        }
        res->phase_s[LMF_PHASE_COUNT] = opt / steps;
        res->phase_s[LMF_PHASE_COUNT + 1] = (total - known) / steps;
        /* idle = 1 - busy / (threads x wall); time outside the phases ("other") is serial */
        double busy[LMF_PHASE_COUNT], nt = lmf_threads_get();
        lmf_gpt_profile_read_busy(m, busy);
        double busy_all = 0;
        for (int p = 0; p < LMF_PHASE_COUNT; p++) {
            double wall = res->phase_s[p] * steps;
            res->idle[p] = wall > 0 ? 1.0 - busy[p] / (nt * wall) : 0.0;
            busy_all += busy[p];
        }
        /* a fast kernel with no busy accounting shows no region time although it ran in
         * parallel: its idle fraction is unknown rather than "serial" */
        int opt_known = !(k == lmf_kernels_fast() && nt > 1 && opt_region <= 0.0);
        res->idle[LMF_PHASE_COUNT] = opt_known && opt > 0 ? 1.0 - opt_busy / (nt * opt) : -1.0;
        double other = total - known;
        /* serial by construction; not shown ("-", null) when under 0.1% of the step */
        res->idle[LMF_PHASE_COUNT + 1] = other > 1e-3 * total ? 1.0 - 1.0 / nt : -1.0;
        busy_all += (other > 0 ? other : 0) + (opt_known ? opt_busy : 0);
        /* over the step; without the optimizer's own figure, over the rest of the step */
        double span = total - (opt_known ? 0 : opt);
        res->idle_step = span > 0 ? 1.0 - busy_all / (nt * span) : 0.0;
    }
    free(mo); free(vo); free(in); free(tg);
    lmf_gpt_free(m);
    lmf_tp_free(engine);
    return s;
}


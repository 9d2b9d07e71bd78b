/* lmforge bench: peak FLOP/s of this machine, then training-step throughput and MFU. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "lmforge/model.h"
#include "lmforge/optim.h"
#include "lmforge/perf.h"
#include "lmforge/rng.h"
#include "lmforge/threads.h"

typedef struct bench_case {
    const char *preset;
    int B, T;
} bench_case;

typedef struct bench_result {
    double tokens_per_s, gflops, mfu, step_s, rss_mb;
    double act_mb; /* the step's activation and scratch buffers (lmf_gpt_activation_bytes) */
    double phase_s[LMF_PHASE_COUNT + 2]; /* model phases, optimizer, other; per step */
    /* idle fraction of the thread team per phase (same order) and over the whole step:
     * 1 - busy thread-seconds / (threads x wall seconds); < 0 when not measured (the
     * optimizer when its kernel has no busy accounting) */
    double idle[LMF_PHASE_COUNT + 2], idle_step;
} bench_result;

/* name of a column of the per-phase breakdown: the model's phases, then optimizer, other */
static const char *phase_label(int p) {
    return p < LMF_PHASE_COUNT ? lmf_phase_name((lmf_phase)p)
                               : p == LMF_PHASE_COUNT ? "optimizer" : "other";
}

/* Time `steps` full training steps (forward, backward, AdamW) after `warm` untimed ones. */
static lmf_status bench_train(const lmf_gpt_config *cfg, int B, int T, const lmf_kernels *k,
                              lmf_recompute rc,
                              int warm, int steps, double peak, bench_result *res) {
    lmf_gpt *m = NULL;
    LMF_TRY(lmf_gpt_create(cfg, k, &m));
    lmf_gpt_init_weights(m, 1);
    lmf_gpt_set_recompute(m, rc);
    lmf_status s = lmf_gpt_reserve(m, B, T, 1);
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
    /* AdamW leaves the gradients zeroed (as in training): zero them once, not every step */
    lmf_gpt_zero_grad(m);
    for (int it = 0; s == LMF_OK && it < warm + steps; it++) {
        if (it == warm) {
            lmf_gpt_profile(m, 1); /* also switches the kernels' busy accounting on */
            lmf_gpt_profile_reset(m);
        }
        double t0 = lmf_now_s();
        float loss;
        s = lmf_gpt_forward(m, in, tg, B, T, 1, 1.0f, &loss);
        if (s != LMF_OK) break;
        lmf_gpt_backward(m);
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
    if (s == LMF_OK) {
        double flops = lmf_config_train_flops_per_token(cfg, T) * (double)BT;
        res->step_s = total / steps;
        res->tokens_per_s = (double)BT / res->step_s;
        res->gflops = flops / res->step_s / 1e9;
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
    return s;
}

int lmf_cmd_bench(int argc, char **argv) {
    if (argc >= 2 && strcmp(argv[1], "tokenizer") == 0) return lmf_bench_tokenizer(argc - 1, argv + 1);
    const char *model = NULL, *kernels = "fast", *recompute = "none";
    int B = 0, T = 0, steps = 5, warm = 2, threads = 0, json = 0;
    lmf_opt opts[] = {
        {"--model", LMF_OPT_STR, &model, "PRESET", "one model preset (default: the standard cases)", LMF_NOLIMIT, NULL},
        {"--batch", LMF_OPT_INT, &B, "B", "batch size for --model", 1, 1e6, NULL},
        {"--seq", LMF_OPT_INT, &T, "T", "sequence length for --model", 1, 1e7, NULL},
        {"--steps", LMF_OPT_INT, &steps, "N", "timed steps per case (default 5)", 1, 1e6, NULL},
        {"--warmup-steps", LMF_OPT_INT, &warm, "N", "untimed steps first (default 2)", 0, 1e6, NULL},
        {"--threads", LMF_OPT_INT, &threads, "N", "compute threads (default: all cores)", 0, 4096, NULL},
        {"--kernels", LMF_OPT_STR, &kernels, "ref|fast", "kernel backend (default fast)", LMF_NOLIMIT, NULL},
        {"--recompute", LMF_OPT_STR, &recompute, "none|selective|full", "activation recomputation (default none)", LMF_NOLIMIT, NULL},
        {"--json", LMF_OPT_FLAG, &json, NULL, "one JSON object per case", LMF_NOLIMIT, NULL},
    };
    int r = lmf_args_parse("bench", "[tokenizer] [options]", opts, (int)(sizeof opts / sizeof opts[0]),
                           argc, argv, NULL, 0, NULL);
    if (r) return r == 1 ? 0 : 2;
    const lmf_kernels *k = lmf_kernels_by_name(kernels);
    if (!k) { lmf_cli_error("bench", "--kernels must be ref or fast, got '%s'", kernels); return 2; }
    lmf_recompute rc;
    if (strcmp(recompute, "none") == 0) rc = LMF_RECOMPUTE_NONE;
    else if (strcmp(recompute, "selective") == 0) rc = LMF_RECOMPUTE_SELECTIVE;
    else if (strcmp(recompute, "full") == 0) rc = LMF_RECOMPUTE_FULL;
    else { lmf_cli_error("bench", "--recompute must be none, selective or full, got '%s'", recompute); return 2; }
    lmf_threads_set(threads);
    int nt = lmf_threads_get();
    double peak = lmf_peak_gflops(nt, 1.0) * 1e9;
    if (!json) printf("peak fp32 FMA: %.1f GFLOP/s on %d threads (measured)\n", peak / 1e9, nt);
    bench_case def[] = {{"gpt2", 4, 64}, {"small", 8, 256}, {"gpt2", 8, 1024}};
    bench_case one = {model, B ? B : 4, T ? T : 64};
    bench_case *cases = model ? &one : def;
    int ncases = model ? 1 : 2;
    for (int i = 0; i < ncases; i++) {
        lmf_gpt_config cfg;
        if (lmf_config_preset(cases[i].preset, &cfg) != LMF_OK) {
            lmf_cli_error("bench", "%s", lmf_last_error());
            return 2;
        }
        bench_result res;
        if (bench_train(&cfg, cases[i].B, cases[i].T, k, rc, warm, steps, peak, &res) != LMF_OK) {
            lmf_cli_error("bench", "%s", lmf_last_error());
            return 1;
        }
        if (json) {
            printf("{\"model\": \"%s\", \"batch\": %d, \"seq\": %d, \"threads\": %d, \"kernels\": \"%s\", "
                   "\"step_s\": %.5f, \"tokens_per_s\": %.1f, \"gflops\": %.2f, \"peak_gflops\": %.2f, "
                   "\"mfu\": %.4f, \"peak_rss_mb\": %.1f, \"activation_mb\": %.1f, \"idle\": {",
                   cases[i].preset, cases[i].B, cases[i].T, nt, k->name, res.step_s,
                   res.tokens_per_s, res.gflops, peak / 1e9, res.mfu, res.rss_mb, res.act_mb);
            for (int p = 0; p < LMF_PHASE_COUNT + 2; p++) {
                if (res.idle[p] < 0) printf("\"%s\": null, ", phase_label(p));
                else printf("\"%s\": %.4f, ", phase_label(p), res.idle[p]);
            }
            printf("\"step\": %.4f}}\n", res.idle_step);
        } else {
            printf("%-8s B=%-3d T=%-5d %8.1f tok/s  %7.1f GFLOP/s  MFU %5.1f%%  step %.3f s  peak RSS %.0f MB"
                   "  activations %.0f MB\n",
                   cases[i].preset, cases[i].B, cases[i].T, res.tokens_per_s, res.gflops,
                   100 * res.mfu, res.step_s, res.rss_mb, res.act_mb);
            printf("         time per step:");
            for (int p = 0; p < LMF_PHASE_COUNT + 2; p++)
                printf(" %s %.1f%%", phase_label(p), 100 * res.phase_s[p] / res.step_s);
            printf("\n         idle threads:");
            for (int p = 0; p < LMF_PHASE_COUNT + 2; p++) {
                if (res.idle[p] < 0) printf(" %s -", phase_label(p));
                else printf(" %s %.1f%%", phase_label(p), 100 * res.idle[p]);
            }
            printf("  step %.1f%%%s\n", 100 * res.idle_step,
                   res.idle[LMF_PHASE_COUNT] < 0 ? " (without the optimizer)" : "");
        }
    }
    return 0;
}


/* lmforge bench: peak FLOP/s of this machine, then training-step throughput and MFU; with
 * --pp, the pipeline schedules' measured bubbles. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/cli_util.h"
#include "cli/commands.h"
#include "lmforge/bench.h"
#include "lmforge/comm.h"
#include "lmforge/model.h"
#include "lmforge/perf.h"
#include "lmforge/threads.h"

typedef struct bench_case {
    const char *preset;
    int B, T;
} bench_case;

/* name of a column of the per-phase breakdown: the model's phases, then optimizer, other */
static const char *phase_label(int p) {
    return p < LMF_PHASE_COUNT ? lmf_phase_name((lmf_phase)p)
                               : p == LMF_PHASE_COUNT ? "optimizer" : "other";
}

/* The launch's ranks as one group of n (flag: the option that asked for them), or NULL with
 * the error printed. From here on a rank's error is its own: it prints it at once. */
static lmf_comm *launch_group(const char *flag, int n) {
    lmf_cli_ranks_meet();
    lmf_comm *group = NULL;
    if (lmf_comm_create("auto", &group) != LMF_OK) {
        lmf_cli_error("bench", "%s", lmf_last_error());
        return NULL;
    }
    if (lmf_comm_size(group) != n) {
        lmf_cli_error("bench", "%s %d needs %d ranks (mpirun -np %d lmforge bench %s %d ...), "
                      "this launch has %d", flag, n, n, n, flag, n, lmf_comm_size(group));
        lmf_comm_free(group);
        return NULL;
    }
    return group;
}

#define PP_MAX_ROUNDS 64

static double mean_bubble(const lmf_bench_pp_result *r, int P) {
    double m = 0.0;
    for (int p = 0; p < P; p++) m += r->bubble[p] / P;
    return m;
}

/* the round whose mean bubble is the median of the rounds' (the lower middle one; equal
 * bubbles ordered by round) */
static const lmf_bench_pp_result *median_round(const lmf_bench_pp_result *res, int rounds, int P) {
    for (int r = 0; r < rounds; r++) {
        double v = mean_bubble(&res[r], P);
        int below = 0; /* rounds ordered before r */
        for (int q = 0; q < rounds; q++) {
            double w = mean_bubble(&res[q], P);
            below += w < v || (w == v && q < r);
        }
        if (below == (rounds - 1) / 2) return &res[r];
    }
    return &res[0];
}

static void print_schedule(const char *model, lmf_pp_schedule sched, const lmf_bench_pp_result *res,
                           int P, int M, int B, int T, int rounds, int json) {
    const char *name = lmf_pp_schedule_name(sched);
    double mb = mean_bubble(res, P);
    if (json) {
        printf("{\"model\": \"%s\", \"pp\": %d, \"schedule\": \"%s\", \"micro_batches\": %d, "
               "\"batch\": %d, \"seq\": %d, \"rounds\": %d, \"step_s\": %.5f, "
               "\"tokens_per_s\": %.1f, \"schedule_bubble\": %.4f, \"mean_bubble\": %.4f, "
               "\"stages\": [", model, P, name, M, B, T, rounds, res->step_s, res->tokens_per_s,
               res->schedule_bubble, mb);
        for (int p = 0; p < P; p++)
            printf("%s{\"layers\": %d, \"busy_s\": %.5f, \"bubble\": %.4f}", p ? ", " : "",
                   res->layers[p], res->busy_s[p], res->bubble[p]);
        printf("]}\n");
        return;
    }
    printf("%-11s %8.1f tok/s  step %.3f s  bubble %.1f%% (schedule %.1f%%):", name,
           res->tokens_per_s, res->step_s, 100 * mb, 100 * res->schedule_bubble);
    for (int p = 0; p < P; p++)
        printf(" stage %d %.1f%% (%d layers, busy %.3f s)", p, 100 * res->bubble[p],
               res->layers[p], res->busy_s[p]);
    printf("\n");
}

/* --pp P: a model's stages over the launch's P ranks, each schedule's bubble and tokens/s;
 * with rounds > 1 the schedules take turns, round after round, and each is reported by its
 * median round (by mean bubble), so that a change in the machine's speed falls on all */
static int bench_pipeline(const char *model, const lmf_gpt_config *cfg, int B, int T,
                          const lmf_kernels *k, int P, int M, const char *schedule, int V,
                          int warm, int steps, int rounds, int threads, int json) {
    const lmf_pp_schedule all[4] = {LMF_PP_GPIPE, LMF_PP_1F1B, LMF_PP_INTERLEAVED, LMF_PP_ZB_H1};
    unsigned mask = (1u << LMF_PP_GPIPE) | (1u << LMF_PP_1F1B) | (1u << LMF_PP_ZB_H1);
    if (schedule && lmf_pp_schedule_parse_list(schedule, &mask) != LMF_OK) {
        lmf_cli_error("bench", "--schedule: %s", lmf_last_error());
        return 2;
    }
    if (V > 1 && !(mask & (1u << LMF_PP_INTERLEAVED))) {
        lmf_cli_error("bench", "--virtual-stages %d runs the interleaved schedule: name it in "
                      "--schedule (e.g. 1f1b,interleaved)", V);
        return 2;
    }
    if (V < 2) V = 2; /* the interleaved schedule's chunks, as `lmforge train` takes them */
    lmf_pp_schedule list[4];
    int n = 0;
    for (int i = 0; i < 4; i++)
        if (mask & (1u << all[i])) list[n++] = all[i];
    if (!B) B = 2;
    if (!T) T = 256;
    lmf_comm *group = launch_group("--pp", P);
    if (!group) return 2;
    lmf_threads_set(threads > 0 ? threads : 1); /* one thread per stage unless --threads says */
    int r0 = lmf_comm_rank(group) == 0;
    const char *name = model ? model : "gpt2";
    if (r0 && !json)
        printf("pipeline: %s, %d stages of %d thread%s, %d micro-batches of %d x %d per step, "
               "%d timed steps after %d%s\n", name, P, lmf_threads_get(),
               lmf_threads_get() == 1 ? "" : "s", M, B, T, steps, warm,
               rounds > 1 ? ", schedules in turn" : "");
    static lmf_bench_pp_result res[4][PP_MAX_ROUNDS];
    for (int r = 0; r < rounds; r++)
        for (int i = 0; i < n; i++) {
            if (lmf_bench_pipeline(cfg, group, list[i], V, M, B, T, k, warm, steps, &res[i][r]) != LMF_OK) {
                lmf_cli_error("bench", "%s", lmf_last_error());
                lmf_comm_free(group);
                return 1;
            }
            if (r0 && !json && rounds > 1)
                printf("  round %d %-11s bubble %.1f%%, %.1f tok/s\n", r + 1,
                       lmf_pp_schedule_name(list[i]), 100 * mean_bubble(&res[i][r], P),
                       res[i][r].tokens_per_s);
        }
    const lmf_bench_pp_result *med[4] = {NULL, NULL, NULL, NULL};
    for (int i = 0; i < n; i++) {
        med[i] = median_round(res[i], rounds, P);
        if (r0) print_schedule(name, list[i], med[i], P, M, B, T, rounds, json);
    }
    /* the zero-bubble and interleaved schedules against 1F1B, measured in this run */
    int i1 = -1;
    for (int i = 0; i < n; i++)
        if (list[i] == LMF_PP_1F1B) i1 = i;
    for (int i = 0; r0 && !json && i1 >= 0 && i < n; i++) {
        if (list[i] != LMF_PP_ZB_H1 && list[i] != LMF_PP_INTERLEAVED) continue;
        if (!(mean_bubble(med[i1], P) > 0)) break;
        char alone[48];
        if (list[i] == LMF_PP_ZB_H1) snprintf(alone, sizeof alone, "ZB-H1's schedule alone");
        else snprintf(alone, sizeof alone, "the schedule alone with %d chunks", V);
        printf("bubble, %s over 1f1b: %.2fx (%s: %.2fx)%s\n", lmf_pp_schedule_name(list[i]),
               mean_bubble(med[i], P) / mean_bubble(med[i1], P), alone,
               med[i]->schedule_bubble / med[i1]->schedule_bubble,
               rounds > 1 ? ", median rounds" : "");
    }
    lmf_comm_free(group);
    return 0;
}

int lmf_cmd_bench(int argc, char **argv) {
    if (argc >= 2 && strcmp(argv[1], "tokenizer") == 0) return lmf_bench_tokenizer(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "loader") == 0) return lmf_bench_loader(argc - 1, argv + 1);
    const char *model = NULL, *kernels = "fast", *recompute = "none";
    int B = 0, T = 0, steps = 5, warm = 2, threads = 0, json = 0, refresh = 0, tpn = 1, sp = 0;
    int ppn = 1, micro = 8, rounds = 1, vstages = 0;
    const char *schedule = NULL;
    lmf_opt opts[] = {
        {"--model", LMF_OPT_STR, &model, "PRESET|FILE", "one model preset or config.json (default: the standard cases)", LMF_NOLIMIT, NULL},
        {"--batch", LMF_OPT_INT, &B, "B", "batch size for --model", 1, 1e6, NULL},
        {"--seq", LMF_OPT_INT, &T, "T", "sequence length for --model", 1, 1e7, NULL},
        {"--steps", LMF_OPT_INT, &steps, "N", "timed steps per case (default 5)", 1, 1e6, NULL},
        {"--warmup-steps", LMF_OPT_INT, &warm, "N", "untimed steps first (default 2)", 0, 1e6, NULL},
        {"--threads", LMF_OPT_INT, &threads, "N", "compute threads (default: all cores)", 0, 4096, NULL},
        {"--kernels", LMF_OPT_STR, &kernels, "ref|fast", "kernel backend (default fast)", LMF_NOLIMIT, NULL},
        {"--recompute", LMF_OPT_STR, &recompute, "none|selective|full", "activation recomputation (default none)", LMF_NOLIMIT, NULL},
        {"--tp", LMF_OPT_INT, &tpn, "N", "tensor-parallel group of N ranks (run under mpirun -np N)", 1, 4096, NULL},
        {"--sp", LMF_OPT_FLAG, &sp, NULL, "with --tp: sequence parallelism", LMF_NOLIMIT, NULL},
        {"--pp", LMF_OPT_INT, &ppn, "P", "pipeline of P stages, one per rank (run under mpirun -np P): each schedule's measured bubble", 1, LMF_BENCH_MAX_STAGES, NULL},
        {"--micro-batches", LMF_OPT_INT, &micro, "M", "with --pp: micro-batches per step (default 8)", 1, 4096, NULL},
        {"--schedule", LMF_OPT_STR, &schedule, "gpipe|1f1b|interleaved|zb", "with --pp: one schedule or a comma list (default: gpipe,1f1b,zb)", LMF_NOLIMIT, NULL},
        {"--virtual-stages", LMF_OPT_INT, &vstages, "V", "with --schedule interleaved: model chunks per stage (default 2)", 1, 16, NULL},
        {"--rounds", LMF_OPT_INT, &rounds, "R", "with --pp: the schedules take turns R times; each reported by its median round (default 1)", 1, PP_MAX_ROUNDS, NULL},
        {"--json", LMF_OPT_FLAG, &json, NULL, "one JSON object per case", LMF_NOLIMIT, NULL},
        {"--refresh-peak", LMF_OPT_FLAG, &refresh, NULL, "measure the peak again (it is cached per processor and thread count)", LMF_NOLIMIT, NULL},
    };
    int r = lmf_args_parse("bench", "[tokenizer|loader] [options]", opts, (int)(sizeof opts / sizeof opts[0]),
                           argc, argv, NULL, 0, NULL);
    if (r) return r == 1 ? 0 : 2;
    const lmf_kernels *k = lmf_kernels_by_name(kernels);
    if (!k) { lmf_cli_error("bench", "--kernels must be ref or fast, got '%s'", kernels); return 2; }
    lmf_recompute rc;
    if (lmf_recompute_parse(recompute, &rc) != LMF_OK) {
        lmf_cli_error("bench", "--recompute: %s", lmf_last_error());
        return 2;
    }
    if (sp && tpn < 2) { lmf_cli_error("bench", "--sp needs --tp 2 or more"); return 2; }
    if (ppn > 1 && tpn > 1) { lmf_cli_error("bench", "give --pp or --tp, not both"); return 2; }
    if (ppn == 1 && (schedule || micro != 8 || rounds != 1 || vstages)) {
        lmf_cli_error("bench", "--schedule, --micro-batches, --virtual-stages and --rounds measure a pipeline: give --pp 2 or more");
        return 2;
    }
    lmf_gpt_config one_cfg; /* --model (a pipeline's default: gpt2), read before anything is measured */
    if ((model || ppn > 1) && lmf_cli_model_config(model ? model : "gpt2", &one_cfg) != LMF_OK) {
        lmf_cli_error("bench", "%s", lmf_last_error());
        return 2;
    }
    if (ppn > 1)
        return bench_pipeline(model, &one_cfg, B, T, k, ppn, micro, schedule, vstages, warm, steps,
                              rounds, threads, json);
    lmf_comm *group = NULL;
    if (tpn > 1) { /* every rank of the launch is one rank of the group */
        if (!(group = launch_group("--tp", tpn))) return 2;
        /* the machine's cores shared by the ranks on it unless --threads says */
        if (threads == 0) threads = lmf_threads_default(lmf_comm_launcher_local_size());
    }
    int r0 = !group || lmf_comm_rank(group) == 0; /* the rank that prints */
    lmf_threads_set(threads);
    int nt = lmf_threads_get();
    lmf_peak pk;
    lmf_peak_get(nt, refresh, &pk);
    double peak = pk.gflops * 1e9;
    char where[1400];
    lmf_peak_describe(&pk, where, sizeof where);
    if (!json && r0) printf("peak fp32 FMA: %s\n", where);
    if (!json && r0 && group)
        printf("tensor parallelism: %d ranks of %d thread%s, one model split over them%s\n", tpn,
               nt, nt == 1 ? "" : "s", sp ? ", sequence parallel" : "");
    /* the Llama family beside GPT-2 at the same width, depth and tokens per step */
    bench_case def[] = {{"gpt2", 4, 64}, {"small", 8, 256}, {"llama-small", 8, 256}, {"gpt2", 8, 1024}};
    bench_case one = {model, B ? B : 4, T ? T : 64};
    bench_case *cases = model ? &one : def;
    int ncases = model ? 1 : 3;
    for (int i = 0; i < ncases; i++) {
        lmf_gpt_config cfg;
        if (model) cfg = one_cfg;
        else if (lmf_config_preset(cases[i].preset, &cfg) != LMF_OK) {
            lmf_cli_error("bench", "%s", lmf_last_error());
            lmf_comm_free(group);
            return 2;
        }
        lmf_bench_result res;
        lmf_bench_tp tp = {group, sp};
        if (lmf_bench_train_step(&cfg, cases[i].B, cases[i].T, k, rc, warm, steps, peak, &tp,
                                 &res) != LMF_OK) {
            lmf_cli_error("bench", "%s", lmf_last_error());
            lmf_comm_free(group);
            return 1;
        }
        if (!r0) continue;
        if (json) {
            printf("{\"model\": \"%s\", \"batch\": %d, \"seq\": %d, \"threads\": %d, \"kernels\": \"%s\", "
                   "\"step_s\": %.5f, \"tokens_per_s\": %.1f, \"gflops\": %.2f, \"peak_gflops\": %.2f, "
                   "\"peak_source\": \"%s\", \"mfu\": %.4f, \"peak_rss_mb\": %.1f, \"activation_mb\": %.1f, \"idle\": {",
                   cases[i].preset, cases[i].B, cases[i].T, nt, k->name, res.step_s,
                   res.tokens_per_s, res.gflops, peak / 1e9, lmf_peak_source_name(pk.source), res.mfu,
                   res.rss_mb, res.act_mb);
            for (int p = 0; p < LMF_PHASE_COUNT + 2; p++) {
                if (res.idle[p] < 0) printf("\"%s\": null, ", phase_label(p));
                else printf("\"%s\": %.4f, ", phase_label(p), res.idle[p]);
            }
            printf("\"step\": %.4f}", res.idle_step);
            if (group)
                printf(", \"tp\": %d, \"sp\": %s, \"tp_comm_s\": %.5f, \"tp_collectives\": %.0f, "
                       "\"tp_comm_hidden_s\": 0", tpn, sp ? "true" : "false", res.tp_comm_s,
                       res.tp_calls);
            printf("}\n");
        } else {
            printf("%-11s B=%-3d T=%-5d %8.1f tok/s  %7.1f GFLOP/s  MFU %5.1f%%  step %.3f s  peak RSS %.0f MB"
                   "  activations %.0f MB\n",
                   cases[i].preset, cases[i].B, cases[i].T, res.tokens_per_s, res.gflops,
                   100 * res.mfu, res.step_s, res.rss_mb, res.act_mb);
            printf("            time per step:");
            for (int p = 0; p < LMF_PHASE_COUNT + 2; p++)
                printf(" %s %.1f%%", phase_label(p), 100 * res.phase_s[p] / res.step_s);
            printf("\n            idle threads:");
            for (int p = 0; p < LMF_PHASE_COUNT + 2; p++) {
                if (res.idle[p] < 0) printf(" %s -", phase_label(p));
                else printf(" %s %.1f%%", phase_label(p), 100 * res.idle[p]);
            }
            printf("  step %.1f%%%s\n", 100 * res.idle_step,
                   res.idle[LMF_PHASE_COUNT] < 0 ? " (without the optimizer)" : "");
            if (group)
                printf("            tensor-parallel collectives: %.1f ms per step (%.1f%%), %.0f calls; "
                       "hidden behind compute: 0 ms (each blocks until the group joins)\n",
                       1e3 * res.tp_comm_s, 100 * res.tp_comm_s / res.step_s, res.tp_calls);
        }
    }
    lmf_comm_free(group);
    return 0;
}


/* lmforge plan: capacity planner (memory, time, cost of training a GPT on a cluster), layout
 * search, and calibration of this machine. */
#include <stdio.h>
#include <unistd.h>
#include <sys/stat.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/args.h"
#include "cli/cli_util.h"
#include "cli/commands.h"
#include "lmforge/comm.h"
#include "lmforge/formats.h"
#include "lmforge/plan.h"

#define CMD "plan"
#define MAX_TOP 50

typedef struct plan_opts {
    const char *model, *cluster, *recompute, *dtype, *sp, *out, *schedule, *explain_schedule, *attention;
    int seq, dp, tp, pp, cp, virtual_stages, micro_batch, micro_batches, zero, nodes, top, ranks, threads;
    double global_batch, tokens, price, seconds;
    int search, json, explain, calibrate, dropout, cross_node_tp;
    int seen_gb, seen_tokens, seen_zero;
} plan_opts;

/* --model: a preset or a config.json; name is what the report calls it */
static int resolve_model(const char *arg, lmf_gpt_config *cfg, char *name, size_t cap) {
    const char *base = strrchr(arg, '/');
    snprintf(name, cap, "%s", base ? base + 1 : arg);
    if (lmf_cli_model_config(arg, cfg) != LMF_OK) {
        lmf_cli_error(CMD, "%s", lmf_last_error());
        return 2;
    }
    return 0;
}

/* 0 when the cluster file can be written at path (checked before the measurements) */
static int check_out(const char *path) {
    struct stat st;
    errno = 0;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        lmf_cli_error(CMD, "--out %s is a directory; give a file name, e.g. %s/cluster-local.json",
                      path, path);
        return 2;
    }
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash) snprintf(dir, sizeof dir, ".");
    else if (slash == dir) dir[1] = '\0';
    else *slash = '\0';
    errno = 0;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode) || access(dir, W_OK) != 0) {
        lmf_cli_error(CMD, "--out %s: %s is not a directory that can be written (%s); create it "
                      "or choose another --out", path, dir, strerror(errno ? errno : ENOTDIR));
        return 2;
    }
    return 0;
}

static int run_calibrate(const plan_opts *o) {
    int bad = check_out(o->out);
    if (bad) return bad;
    lmf_comm *comm = NULL;
    lmf_cli_ranks_meet();
    if (lmf_comm_launcher_size() > 1 && lmf_comm_create("auto", &comm) != LMF_OK) {
        lmf_cli_error(CMD, "%s", lmf_last_error());
        return 1;
    }
    int rank = comm ? lmf_comm_rank(comm) : 0;
    lmf_plan_calib_opts co = {o->ranks, o->threads, o->seconds, 0, 0};
    lmf_cluster c;
    lmf_status st = lmf_plan_calibrate(&co, comm, &c, rank == 0 ? stderr : NULL);
    if (st == LMF_OK && rank == 0) {
        char when[64], desc[256], cmd[160];
        time_t now = time(NULL);
        struct tm tmv;
        strftime(when, sizeof when, "%Y-%m-%d", gmtime_r(&now, &tmv));
        snprintf(desc, sizeof desc, "this machine as measured by lmforge plan --calibrate on %s: "
                 "one node, %d device%s (planned ranks)", when, c.devices_per_node,
                 c.devices_per_node > 1 ? "s" : "");
        snprintf(cmd, sizeof cmd, "measured: %slmforge plan --calibrate --ranks %d",
                 comm ? "mpirun -np N " : "", c.devices_per_node);
        const char *src[] = {cmd, comm ? "rank link: lmf_comm_allreduce bus bandwidth"
                                       : "rank link: estimated as copy bandwidth / 2 (no MPI measurement)",
                             "kernels: lmforge's fast kernel table timed at each point (docs/planner.md)"};
        st = lmf_cluster_save_json(o->out, &c, desc, src, 3);
        if (st == LMF_OK) fprintf(stderr, "wrote %s (use it with --cluster %s)\n", o->out, o->out);
    }
    if (st != LMF_OK) lmf_cli_error(CMD, "%s", lmf_last_error());
    lmf_comm_free(comm);
    return st == LMF_OK ? 0 : 1;
}

/* --explain-schedule NAME --pp P [--micro-batches M] [--virtual-stages V]: the timeline */
static int run_explain_schedule(const plan_opts *o) {
    lmf_pp_shape sh = {LMF_PP_1F1B, o->pp, o->micro_batches, o->virtual_stages > 0 ? o->virtual_stages : 1};
    if (lmf_pp_schedule_parse(o->explain_schedule, &sh.schedule) != LMF_OK) {
        lmf_cli_error(CMD, "--explain-schedule: %s", lmf_last_error());
        return 2;
    }
    if (o->pp < 1) {
        lmf_cli_error(CMD, "--explain-schedule needs the number of stages: give --pp P");
        return 2;
    }
    if (sh.micro_batches < 1) sh.micro_batches = 2 * o->pp;
    if (sh.schedule == LMF_PP_INTERLEAVED && o->virtual_stages < 0) sh.virtual_stages = 2;
    if (lmf_plan_print_schedule(stdout, &sh) != LMF_OK) {
        lmf_cli_error(CMD, "--explain-schedule: %s", lmf_last_error());
        return 2;
    }
    return 0;
}

int lmf_cmd_plan(int argc, char **argv) {
    plan_opts o = {.recompute = NULL, .dtype = NULL, .sp = NULL, .out = "cluster-local.json",
                   .dp = -1, .tp = -1, .pp = -1, .cp = -1, .virtual_stages = -1, .micro_batch = -1,
                   .micro_batches = -1,
                   .zero = -1, .top = 5,
                   .ranks = 1};
    lmf_opt opts[] = {
        {"--model", LMF_OPT_STR, &o.model, "PRESET|config.json", "model (gpt2, gpt3-175b, gpt-1t, llama2-70b, llama3-405b, ... or a config.json)", LMF_NOLIMIT, NULL},
        {"--cluster", LMF_OPT_STR, &o.cluster, "PRESET|cluster.json", "cluster (azure-openai-2020, dgx-a100-superpod, h100-cluster, local, or a file)", LMF_NOLIMIT, NULL},
        {"--nodes", LMF_OPT_INT, &o.nodes, "N", "override the cluster's number of nodes", 1, 1e7, NULL},
        {"--seq", LMF_OPT_INT, &o.seq, "T", "tokens per sequence (default: the model's context)", 1, 1e8, NULL},
        {"--global-batch", LMF_OPT_DOUBLE, &o.global_batch, "TOKENS", "tokens per optimizer step (default 2^19)", 1, 1e15, &o.seen_gb},
        {"--tokens", LMF_OPT_DOUBLE, &o.tokens, "TOTAL", "tokens to train on (default 20 x parameters)", 1, 1e20, &o.seen_tokens},
        {"--dp", LMF_OPT_INT, &o.dp, "N", "data-parallel replicas", 1, 1e8, NULL},
        {"--tp", LMF_OPT_INT, &o.tp, "N", "tensor-parallel size", 1, 1e6, NULL},
        {"--pp", LMF_OPT_INT, &o.pp, "N", "pipeline stages", 1, 1e6, NULL},
        {"--cp", LMF_OPT_INT, &o.cp, "N", "context parallelism: each sequence split over N devices (ring attention)", 1, 1e6, NULL},
        {"--virtual-stages", LMF_OPT_INT, &o.virtual_stages, "V", "model chunks per pipeline rank (V > 1: interleaved 1F1B)", 1, 1e6, NULL},
        {"--schedule", LMF_OPT_STR, &o.schedule, "gpipe|1f1b|interleaved|zb", "pipeline schedule (default 1f1b; --search: 1f1b, zb and interleaved, or a comma list)", LMF_NOLIMIT, NULL},
        {"--explain-schedule", LMF_OPT_STR, &o.explain_schedule, "gpipe|1f1b|interleaved|zb", "print the schedule's timeline for --pp P stages and its bubble", LMF_NOLIMIT, NULL},
        {"--micro-batches", LMF_OPT_INT, &o.micro_batches, "M", "--explain-schedule: micro-batches per step (default 2 x pp)", 1, 1e6, NULL},
        {"--micro-batch", LMF_OPT_INT, &o.micro_batch, "B", "sequences per micro-batch", 1, 1e6, NULL},
        {"--zero", LMF_OPT_INT, &o.zero, "S", "ZeRO stage 0-3", 0, 3, &o.seen_zero},
        {"--recompute", LMF_OPT_STR, &o.recompute, "none|selective|full", "activation recomputation", LMF_NOLIMIT, NULL},
        {"--dtype", LMF_OPT_STR, &o.dtype, "fp32|bf16|fp16|fp8", "number format (default bf16, else fp16, where the device has it)", LMF_NOLIMIT, NULL},
        {"--sp", LMF_OPT_STR, &o.sp, "on|off", "sequence parallelism (default on when tp > 1)", LMF_NOLIMIT, NULL},
        {"--dropout", LMF_OPT_FLAG, &o.dropout, NULL, "count dropout masks in activations (Megatron-LM)", LMF_NOLIMIT, NULL},
        {"--attention", LMF_OPT_STR, &o.attention, "materialized|flash", "attention core of a GPU: scores in memory (default) or a fused causal kernel", LMF_NOLIMIT, NULL},
        {"--price", LMF_OPT_DOUBLE, &o.price, "X", "price per device-hour (default: the cluster file's)", 0, 1e9, NULL},
        {"--search", LMF_OPT_FLAG, &o.search, NULL, "rank the layouts that fit by time to train", LMF_NOLIMIT, NULL},
        {"--top", LMF_OPT_INT, &o.top, "N", "layouts shown by --search (default 5)", 1, MAX_TOP, NULL},
        {"--allow-cross-node-tp", LMF_OPT_FLAG, &o.cross_node_tp, NULL, "--search: let tensor-parallel groups span nodes", LMF_NOLIMIT, NULL},
        {"--json", LMF_OPT_FLAG, &o.json, NULL, "print one JSON object", LMF_NOLIMIT, NULL},
        {"--explain", LMF_OPT_FLAG, &o.explain, NULL, "print every assumption with its formula", LMF_NOLIMIT, NULL},
        {"--calibrate", LMF_OPT_FLAG, &o.calibrate, NULL, "measure this machine and write a cluster file", LMF_NOLIMIT, NULL},
        {"--ranks", LMF_OPT_INT, &o.ranks, "N", "--calibrate: devices (ranks) to plan for (default 1; mpirun sets it)", 1, 4096, NULL},
        {"--threads", LMF_OPT_INT, &o.threads, "N", "--calibrate: threads in all (default: all processors)", 1, 4096, NULL},
        {"--seconds", LMF_OPT_DOUBLE, &o.seconds, "S", "--calibrate: seconds per measurement (default 0.2)", 0.01, 60, NULL},
        {"--out", LMF_OPT_STR, &o.out, "FILE", "--calibrate: cluster file to write (default cluster-local.json)", LMF_NOLIMIT, NULL},
    };
    int rc = lmf_args_parse(CMD, "--model M --cluster C [options] | --calibrate [--ranks N] [--out FILE]",
                            opts, (int)(sizeof opts / sizeof opts[0]), argc, argv, NULL, 0, NULL);
    if (rc) return rc == 1 ? 0 : 2;
    if (o.calibrate) return run_calibrate(&o);
    if (o.explain_schedule) return run_explain_schedule(&o);
    if (o.micro_batches > 0) {
        lmf_cli_error(CMD, "--micro-batches is for --explain-schedule; a plan takes its micro-batches "
                      "from --global-batch, --micro-batch and dp");
        return 2;
    }
    if (!o.model || !o.cluster) {
        lmf_cli_error(CMD, "--model and --cluster are required (or --calibrate); see lmforge plan --help");
        return 2;
    }

    lmf_gpt_config cfg;
    char model_name[64];
    if (resolve_model(o.model, &cfg, model_name, sizeof model_name)) return 2;
    lmf_cluster c;
    lmf_status st = lmf_cluster_resolve(o.cluster, &c);
    if (st != LMF_OK) {
        lmf_cli_error(CMD, "%s", lmf_last_error());
        return 2;
    }
    if (o.nodes > 0) {
        c.nodes = o.nodes;
        if (lmf_cluster_validate(&c) != LMF_OK) {
            lmf_cli_error(CMD, "--nodes %d: %s", o.nodes, lmf_last_error());
            return 2;
        }
    }

    lmf_plan_job job;
    lmf_plan_job_defaults(&job, model_name, &cfg);
    snprintf(job.model_source, sizeof job.model_source, "%s", o.model);
    if (o.seq > 0) job.seq = o.seq;
    if (o.seen_gb) job.global_batch_tokens = o.global_batch;
    if (o.seen_tokens) job.total_tokens = o.tokens;
    job.price_per_device_hour = o.price;
    job.dropout = o.dropout;
    if (o.attention) {
        job.attention = lmf_plan_attention_parse(o.attention);
        if (job.attention == LMF_PLAN_ATTN_UNKNOWN) {
            lmf_cli_error(CMD, "--attention must be materialized or flash (got '%s')", o.attention);
            return 2;
        }
    }

    lmf_plan_constraints k;
    lmf_plan_constraints_free(&k, &c);
    k.dp = o.dp;
    k.tp = o.tp;
    k.pp = o.pp;
    k.cp = o.cp;
    k.virtual_stages = o.virtual_stages;
    if (o.schedule && strchr(o.schedule, ',')) { /* --search's menu: "1f1b,interleaved" */
        if (!o.search) {
            lmf_cli_error(CMD, "--schedule %s: a list of schedules is for --search; a plan "
                          "prices one", o.schedule);
            return 2;
        }
        if (lmf_pp_schedule_parse_list(o.schedule, &k.schedules) != LMF_OK) {
            lmf_cli_error(CMD, "--schedule: %s", lmf_last_error());
            return 2;
        }
    } else if (o.schedule) {
        if (lmf_pp_schedule_parse(o.schedule, &k.schedule) != LMF_OK) {
            lmf_cli_error(CMD, "--schedule: %s", lmf_last_error());
            return 2;
        }
        k.schedule_fixed = 1;
        if (k.schedule != LMF_PP_INTERLEAVED && o.virtual_stages > 1) {
            lmf_cli_error(CMD, "--virtual-stages %d needs --schedule interleaved (the %s schedule runs one "
                          "model chunk per pipeline rank)", o.virtual_stages, o.schedule);
            return 2;
        }
    }
    k.allow_cross_node_tp = o.cross_node_tp;
    k.micro_batch = o.micro_batch;
    k.zero = o.seen_zero ? o.zero : -1;
    if (o.recompute) {
        if (lmf_recompute_parse(o.recompute, &k.recompute) != LMF_OK) {
            lmf_cli_error(CMD, "--recompute: %s", lmf_last_error());
            return 2;
        }
        k.recompute_fixed = 1;
    }
    if (o.dtype) {
        int d = lmf_plan_dtype_parse(o.dtype);
        if (d < 0) {
            lmf_cli_error(CMD, "--dtype must be fp32, bf16, fp16 or fp8 (got '%s')", o.dtype);
            return 2;
        }
        k.dtype = (lmf_plan_dtype)d;
    }
    if (o.sp) {
        if (strcmp(o.sp, "on") != 0 && strcmp(o.sp, "off") != 0) {
            lmf_cli_error(CMD, "--sp must be on or off (got '%s')", o.sp);
            return 2;
        }
        k.sequence_parallel = strcmp(o.sp, "on") == 0;
    }

    lmf_plan_result res[MAX_TOP];
    int n = 1;
    int64_t evaluated = 1;
    if (o.search) st = lmf_plan_search(&c, &job, &k, res, o.top, &n, &evaluated);
    else st = lmf_plan_single(&c, &job, &k, &res[0]);
    if (st != LMF_OK) {
        lmf_cli_error(CMD, "%s", lmf_last_error());
        return 2;
    }
    if (o.json) {
        if (lmf_plan_print_json(stdout, &c, &job, res, n) != LMF_OK) {
            lmf_cli_error(CMD, "%s", lmf_last_error());
            return 1;
        }
    } else if (o.search) {
        lmf_plan_print_search(stdout, &c, &job, res, n, evaluated);
    } else {
        lmf_plan_print_text(stdout, &c, &job, &res[0]);
    }
    if (o.explain) {
        FILE *f = o.json ? stderr : stdout;
        fprintf(f, "\n");
        lmf_plan_print_explain(f, &c, &job, &res[0].layout);
    }
    return 0;
}

/* Planner reports: the text breakdown, the search table, the JSON object and the list of
 * assumptions (--explain); what a report itemizes follows the device model of the result. */
#include "plan/plan_model.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GiB 1073741824.0

/* 174.6 B, 1.3 M, 950 */
static const char *human(double x, char *buf, size_t cap) {
    const char *suf[] = {"", " k", " M", " B", " T", " P"};
    int i = 0;
    while (fabs(x) >= 1000.0 && i < 5) {
        x /= 1000.0;
        i++;
    }
    snprintf(buf, cap, i == 0 ? "%.0f%s" : "%.1f%s", x, suf[i]);
    return buf;
}

/* seconds as "12.3 ms", "4.56 s" */
static const char *dur(double s, char *buf, size_t cap) {
    if (s < 1e-3) snprintf(buf, cap, "%.1f us", s * 1e6);
    else if (s < 1.0) snprintf(buf, cap, "%.2f ms", s * 1e3);
    else snprintf(buf, cap, "%.3f s", s);
    return buf;
}

/* a training time: "34.1 days", "5.2 hours", "12.0 minutes", "8.3 s" */
static const char *span(double s, char *buf, size_t cap) {
    if (s >= 86400.0) snprintf(buf, cap, "%.1f days", s / 86400.0);
    else if (s >= 3600.0) snprintf(buf, cap, "%.1f hours", s / 3600.0);
    else if (s >= 60.0) snprintf(buf, cap, "%.1f minutes", s / 60.0);
    else snprintf(buf, cap, "%.1f s", s);
    return buf;
}

/* 1: the result's device model itemizes compute by kernel kind and memory by checkpoint
 * snapshot and process */
static int itemized(const lmf_plan_result *r) {
    return lmf_plan_device_of_kind(r->device)->itemizes_kernels;
}

static const char *stage_name(const lmf_plan_result *r) {
    if (r->layout.pp == 1) return "single";
    return r->mem.stage == LMF_PLAN_STAGE_FIRST ? "first" : "last";
}

static void layout_line(FILE *f, const lmf_plan_result *r) {
    const lmf_plan_layout *l = &r->layout;
    fprintf(f, "dp %d x tp %d x pp %d", l->dp, l->tp, l->pp);
    if (l->cp > 1) fprintf(f, " x cp %d", l->cp);
    fprintf(f, " = %d devices, %d micro-batch%s of %d per step, ZeRO-%d, recompute %s, %s%s",
            r->devices, r->micro_batches, r->micro_batches > 1 ? "es" : "", l->micro_batch, l->zero,
            lmf_recompute_name(l->recompute), lmf_plan_dtype_name(l->dtype),
            l->sequence_parallel ? ", sequence parallel" : "");
    if (l->virtual_stages > 1) fprintf(f, ", interleaved %d", l->virtual_stages);
    else if (l->pp > 1 && l->schedule != LMF_PP_1F1B)
        fprintf(f, ", %s schedule", lmf_pp_schedule_name(l->schedule));
}

static void memory_lines(FILE *f, const lmf_plan_result *r, const char *ind) {
    const lmf_plan_memory *m = &r->mem;
    fprintf(f, "%sweights %.2f + grads %.2f + optimizer %.2f + activations %.2f + buffers %.2f "
               "= %.2f GiB of %.2f: %s (margin %.2f GiB, %.0f%%)\n",
            ind, m->weights / GiB, m->grads / GiB, m->optimizer / GiB, m->activations / GiB,
            m->buffers / GiB, m->total / GiB, m->capacity / GiB, m->fits ? "fits" : "DOES NOT FIT",
            m->margin / GiB, 100.0 * m->margin / m->capacity);
}

static void time_line(FILE *f, const lmf_plan_result *r, const char *ind) {
    const lmf_plan_time *t = &r->time;
    char a[32], b[32], c[32], d[32], e[32], g[32], h[32], s[32], k[32];
    fprintf(f, "%sstep %s = compute %s + tp %s + pp %s", ind, dur(t->step, s, sizeof s),
            dur(t->compute, a, sizeof a), dur(t->tp_comm, b, sizeof b), dur(t->pp_comm, c, sizeof c));
    if (r->layout.cp > 1) fprintf(f, " + cp %s", dur(t->cp_comm, k, sizeof k));
    fprintf(f, " + bubble %s + dp %s + zero3 %s + optimizer %s\n", dur(t->bubble, d, sizeof d),
            dur(t->dp_comm, e, sizeof e), dur(t->zero3_gather, g, sizeof g),
            dur(t->optimizer, h, sizeof h));
}

static void pct_row(FILE *f, const char *name, double v, double step, const char *note) {
    char b[32];
    fprintf(f, "  %-22s %12s %6.1f%%  %s\n", name, dur(v, b, sizeof b), 100.0 * v / step, note);
}

/* append printf text to buf[cap] at *len, never past its end */
static void cat(char *buf, size_t cap, size_t *len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void cat(char *buf, size_t cap, size_t *len, const char *fmt, ...) {
    if (*len >= cap) return;
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(buf + *len, cap - *len, fmt, ap);
    va_end(ap);
    if (k > 0) *len = *len + (size_t)k < cap ? *len + (size_t)k : cap - 1;
}

/* the launch (mpirun or srun) and then `lmforge train` with the layout's flags */
static void launch_command(char *buf, size_t cap, const lmf_cluster *c, const lmf_plan_job *job,
                           const lmf_plan_result *r, int srun) {
    const lmf_plan_layout *l = &r->layout;
    const char *src = job->model_source[0] ? job->model_source : job->model_name;
    size_t n = strlen(src), len = 0;
    int is_file = strchr(src, '/') != NULL || (n > 5 && strcmp(src + n - 5, ".json") == 0);
    if (cap == 0) return;
    buf[0] = '\0';
    int per_node = r->devices < c->devices_per_node ? r->devices : c->devices_per_node;
    double steps = ceil(job->total_tokens / r->tokens_per_step);
    if (srun)
        cat(buf, cap, &len, "srun --nodes %d --ntasks %d --ntasks-per-node %d --mpi=pmix",
            (r->devices + per_node - 1) / per_node, r->devices, per_node);
    else
        cat(buf, cap, &len, "mpirun -np %d --npernode %d", r->devices, per_node);
    cat(buf, cap, &len, " lmforge train %s %s --seq %d --batch %d --global-batch %.0f "
        "--steps %.0f --zero %d --recompute %s", is_file ? "--config" : "--model", src, job->seq,
        l->micro_batch, r->tokens_per_step, steps, l->zero, lmf_recompute_name(l->recompute));
    if (l->tp > 1) cat(buf, cap, &len, " --tp %d%s", l->tp, l->sequence_parallel ? " --sp" : "");
    if (l->pp > 1) cat(buf, cap, &len, " --pp %d", l->pp);
    if (l->cp > 1) cat(buf, cap, &len, " --cp %d", l->cp);
    if (l->virtual_stages > 1)
        cat(buf, cap, &len, " --schedule interleaved --virtual-stages %d", l->virtual_stages);
    else if (l->pp > 1 && l->schedule != LMF_PP_1F1B)
        cat(buf, cap, &len, " --schedule %s", lmf_pp_schedule_name(l->schedule));
    if (l->dtype != LMF_PLAN_FP32) cat(buf, cap, &len, " --dtype %s", lmf_plan_dtype_name(l->dtype));
}

void lmf_plan_command(char *buf, size_t cap, const lmf_cluster *c, const lmf_plan_job *job,
                      const lmf_plan_result *r) {
    launch_command(buf, cap, c, job, r, 0);
}

void lmf_plan_command_srun(char *buf, size_t cap, const lmf_cluster *c, const lmf_plan_job *job,
                           const lmf_plan_result *r) {
    launch_command(buf, cap, c, job, r, 1);
}

static void command_lines(FILE *f, const lmf_cluster *c, const lmf_plan_job *job,
                          const lmf_plan_result *r) {
    char cmd[1024];
    lmf_plan_command(cmd, sizeof cmd, c, job, r);
    fprintf(f, "command     %s\n", cmd);
    lmf_plan_command_srun(cmd, sizeof cmd, c, job, r);
    fprintf(f, "slurm       %s\n", cmd);
}

void lmf_plan_print_text(FILE *f, const lmf_cluster *c, const lmf_plan_job *job,
                         const lmf_plan_result *r) {
    char b1[32], b2[32], b3[32], note[160];
    const lmf_plan_layout *l = &r->layout;
    const lmf_plan_memory *m = &r->mem;
    const lmf_plan_time *t = &r->time;
    fprintf(f, "model    %s: %s parameters, %d layers, %d heads, width %d, vocabulary %d, sequence %d",
            job->model_name, human((double)r->params, b1, sizeof b1), job->model.n_layer,
            job->model.n_head, job->model.n_embd, job->model.vocab_size, job->seq);
    if (job->model.family == LMF_FAMILY_LLAMA)
        fprintf(f, "; llama: %d key/value heads, SwiGLU %d, %s embeddings", job->model.n_kv_head,
                job->model.ffn_hidden, lmf_config_tied(&job->model) ? "tied" : "untied");
    fputc('\n', f);
    fprintf(f, "cluster  %s: %d nodes x %d %s = %d devices", c->name, c->nodes, c->devices_per_node,
            c->device, lmf_cluster_devices(c));
    if (r->devices < lmf_cluster_devices(c)) fprintf(f, " (this layout uses %d)", r->devices);
    fprintf(f, "\nlayout   ");
    layout_line(f, r);
    if (job->attention == LMF_PLAN_ATTN_FLASH && r->device == LMF_PLAN_DEVICE_GENERIC)
        fprintf(f, ", fused causal attention");
    fprintf(f, "\nbatch    %lld sequences = %s tokens per step", (long long)r->global_batch,
            human(r->tokens_per_step, b1, sizeof b1));
    if (r->global_batch != r->requested_batch)
        fprintf(f, " (asked for %lld; rounded to whole micro-batches)", (long long)r->requested_batch);
    fprintf(f, "\n\nmemory per device (%s pipeline stage)\n", stage_name(r));
    double bw, bg, bo;
    lmf_plan_param_bytes(l->dtype, &bw, &bg, &bo);
    snprintf(note, sizeof note, "%.0f B/param%s", bw, l->zero >= 3 ? ", sharded by ZeRO-3" : "");
    fprintf(f, "  %-22s %9.2f GiB  %s\n", "weights", m->weights / GiB, note);
    snprintf(note, sizeof note, "%.0f B/param%s", bg, l->zero >= 2 ? ", sharded by ZeRO-2+" : "");
    fprintf(f, "  %-22s %9.2f GiB  %s\n", "gradients", m->grads / GiB, note);
    snprintf(note, sizeof note, "%.0f B/param (%s)%s", bo,
             l->dtype == LMF_PLAN_FP32 ? "AdamW m, v" : "fp32 master, AdamW m, v",
             l->zero >= 1 ? ", sharded by ZeRO-1+" : "");
    fprintf(f, "  %-22s %9.2f GiB  %s\n", "optimizer state", m->optimizer / GiB, note);
    snprintf(note, sizeof note, "recompute %s%s", lmf_recompute_name(l->recompute),
             l->pp > 1 && m->stage == LMF_PLAN_STAGE_FIRST ? ", pipeline micro-batches in flight" : "");
    fprintf(f, "  %-22s %9.2f GiB  %s\n", "activations", m->activations / GiB, note);
    fprintf(f, "  %-22s %9.2f GiB%s\n", "communication buffers", m->buffers / GiB,
            itemized(r) ? "  engine buckets and gathers, batch ids" : "");
    if (itemized(r)) {
        fprintf(f, "  %-22s %9.2f GiB  weights, m, v of this rank's range\n", "checkpoint snapshot",
                m->checkpoint / GiB);
        fprintf(f, "  %-22s %9.2f GiB  libraries, threads, communicator (calibrated)\n", "process",
                m->process / GiB);
    }
    fprintf(f, "  %-22s %9.2f GiB  of %.2f usable (%.2f - %.2f reserved): %s, margin %.2f GiB (%.0f%%)\n",
            "total", m->total / GiB, m->capacity / GiB, c->device_memory / GiB,
            c->memory_reserved / GiB, m->fits ? "fits" : "DOES NOT FIT", m->margin / GiB,
            100.0 * m->margin / m->capacity);

    fprintf(f, "\ntime per step\n");
    pct_row(f, "compute", t->compute, t->step, "matrix products + memory-bound kernels");
    if (itemized(r)) {
        pct_row(f, "  matmul", t->matmul, t->step, "lmforge's kernels at their measured rates");
        pct_row(f, "  attention", t->attention, t->step, "");
        pct_row(f, "  element-wise", t->elementwise, t->step, "");
        pct_row(f, "  classifier", t->classifier, t->step, "tied logits and loss");
    }
    pct_row(f, "tensor-parallel comm", t->tp_comm, t->step, "all-reduces, not overlapped");
    pct_row(f, "pipeline send/recv", t->pp_comm, t->step, "not overlapped");
    if (l->cp > 1) {
        snprintf(note, sizeof note, "K/V ring, exposed part of %s", dur(t->cp_comm_total, b1, sizeof b1));
        pct_row(f, "context-parallel comm", t->cp_comm, t->step, note);
    }
    if (l->pp == 1)
        snprintf(note, sizeof note, "no pipeline");
    else if (l->virtual_stages > 1)
        snprintf(note, sizeof note, "interleaved schedule, v = %d: stages idle %.1f%% of the pipeline's time",
                 l->virtual_stages, 100.0 * t->bubble_fraction);
    else
        snprintf(note, sizeof note, "%s schedule: stages idle %.1f%% of the pipeline's time",
                 lmf_pp_schedule_name(l->schedule), 100.0 * t->bubble_fraction);
    pct_row(f, "pipeline bubble", t->bubble, t->step, note);
    snprintf(note, sizeof note, "exposed part of %s", dur(t->dp_comm_total, b1, sizeof b1));
    pct_row(f, "data-parallel comm", t->dp_comm, t->step, note);
    snprintf(note, sizeof note, "exposed part of %s", dur(t->zero3_gather_total, b1, sizeof b1));
    pct_row(f, "ZeRO-3 gathers", t->zero3_gather, t->step, note);
    pct_row(f, "optimizer", t->optimizer, t->step, "AdamW, memory-bound");
    fprintf(f, "  %-22s %12s\n", "step", dur(t->step, b1, sizeof b1));

    fprintf(f, "\nthroughput  %s tokens/s; %.1f TFLOP/s per device of model FLOPs (MFU %.1f%%), "
               "%.1f TFLOP/s with recomputation\n",
            human(r->tokens_per_s, b1, sizeof b1), r->model_tflops_per_device, 100.0 * r->mfu,
            r->hardware_tflops_per_device);
    fprintf(f, "training    %s tokens in %s, %s device-hours",
            human(job->total_tokens, b2, sizeof b2), span(r->days * 86400.0, b1, sizeof b1),
            human(r->gpu_hours, b3, sizeof b3));
    if (r->cost > 0.0) fprintf(f, ", cost %s", human(r->cost, b1, sizeof b1));
    fprintf(f, "\n");
    command_lines(f, c, job, r);
}

void lmf_plan_print_search(FILE *f, const lmf_cluster *c, const lmf_plan_job *job,
                           const lmf_plan_result *best, int n, int64_t n_evaluated) {
    char b[32];
    fprintf(f, "search: %lld layouts evaluated; the best %d by time to train %s tokens\n\n",
            (long long)n_evaluated, n, human(job->total_tokens, b, sizeof b));
    for (int i = 0; i < n; i++) {
        const lmf_plan_result *r = &best[i];
        char b1[32], b2[32];
        fprintf(f, "#%d  %s, %s tokens/s, MFU %.1f%%: ", i + 1, span(r->days * 86400.0, b1, sizeof b1),
                human(r->tokens_per_s, b2, sizeof b2), 100.0 * r->mfu);
        layout_line(f, r);
        fprintf(f, "\n");
        memory_lines(f, r, "    memory: ");
        time_line(f, r, "    time:   ");
    }
    if (n > 0) {
        fprintf(f, "\nbest layout in detail\n\n");
        lmf_plan_print_text(f, c, job, &best[0]);
    }
}

static json_t *result_json(const lmf_cluster *c, const lmf_plan_job *job, const lmf_plan_result *r) {
    const lmf_plan_layout *l = &r->layout;
    const lmf_plan_memory *m = &r->mem;
    const lmf_plan_time *t = &r->time;
    json_t *o = json_object();
    json_object_set_new(o, "model", json_string(job->model_name));
    json_object_set_new(o, "cluster", json_string(c->name));
    json_object_set_new(o, "device_model", json_string(lmf_plan_device_kind_name(r->device)));
    json_object_set_new(o, "parameters", json_integer(r->params));
    json_object_set_new(o, "seq", json_integer(job->seq));
    json_object_set_new(o, "attention", json_string(lmf_plan_attention_name(job->attention)));
    json_object_set_new(o, "global_batch", json_integer(r->global_batch));
    json_object_set_new(o, "tokens_per_step", json_real(r->tokens_per_step));
    json_object_set_new(o, "layout", json_pack("{s:i,s:i,s:i,s:i,s:s,s:i,s:i,s:i,s:s,s:s,s:b,s:i,s:i}",
        "dp", l->dp, "tp", l->tp, "pp", l->pp, "cp", l->cp,
        "schedule", lmf_pp_schedule_name(l->schedule), "virtual_stages", l->virtual_stages,
        "micro_batch", l->micro_batch, "zero", l->zero,
        "recompute", lmf_recompute_name(l->recompute), "dtype", lmf_plan_dtype_name(l->dtype),
        "sequence_parallel", l->sequence_parallel, "devices", r->devices,
        "micro_batches", r->micro_batches));
    json_object_set_new(o, "memory", json_pack("{s:f,s:f,s:f,s:f,s:f,s:f,s:f,s:f,s:f,s:f,s:s}",
        "weights", m->weights, "grads", m->grads, "optimizer", m->optimizer,
        "activations", m->activations, "buffers", m->buffers, "checkpoint", m->checkpoint,
        "process", m->process, "total", m->total,
        "capacity", m->capacity, "margin", m->margin,
        "stage", stage_name(r)));
    json_object_set_new(o, "fits", json_boolean(m->fits));
    json_object_set_new(o, "step_time_s", json_real(t->step));
    json_object_set_new(o, "time", json_pack("{s:f,s:f,s:f,s:f,s:f,s:f,s:f,s:f,s:f,s:f,s:f,s:f}",
        "compute", t->compute, "tp_comm", t->tp_comm, "pp_comm", t->pp_comm,
        "cp_comm", t->cp_comm, "cp_comm_total", t->cp_comm_total,
        "bubble", t->bubble, "bubble_fraction", t->bubble_fraction, "dp_comm", t->dp_comm, "dp_comm_total", t->dp_comm_total,
        "zero3_gather", t->zero3_gather, "zero3_gather_total", t->zero3_gather_total,
        "optimizer", t->optimizer));
    if (itemized(r))
        json_object_set_new(o, "compute", json_pack("{s:f,s:f,s:f,s:f}", "matmul", t->matmul,
            "attention", t->attention, "elementwise", t->elementwise, "classifier", t->classifier));
    json_object_set_new(o, "tokens_per_s", json_real(r->tokens_per_s));
    json_object_set_new(o, "flops_per_token", json_real(r->flops_per_token));
    json_object_set_new(o, "model_tflops_per_device", json_real(r->model_tflops_per_device));
    json_object_set_new(o, "hardware_tflops_per_device", json_real(r->hardware_tflops_per_device));
    json_object_set_new(o, "mfu", json_real(r->mfu));
    json_object_set_new(o, "total_tokens", json_real(job->total_tokens));
    json_object_set_new(o, "days", json_real(r->days));
    json_object_set_new(o, "gpu_hours", json_real(r->gpu_hours));
    json_object_set_new(o, "cost", r->cost > 0.0 ? json_real(r->cost) : json_null());
    char cmd[1024];
    lmf_plan_command(cmd, sizeof cmd, c, job, r);
    json_object_set_new(o, "command", json_string(cmd));
    lmf_plan_command_srun(cmd, sizeof cmd, c, job, r);
    json_object_set_new(o, "slurm_command", json_string(cmd));
    return o;
}

lmf_status lmf_plan_print_json(FILE *f, const lmf_cluster *c, const lmf_plan_job *job,
                               const lmf_plan_result *r, int n) {
    json_t *o = result_json(c, job, &r[0]);
    if (n > 1) {
        json_t *alt = json_array();
        for (int i = 1; i < n; i++) json_array_append_new(alt, result_json(c, job, &r[i]));
        json_object_set_new(o, "alternatives", alt);
    }
    char *s = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(8));
    json_decref(o);
    if (!s) return lmf_fail(LMF_ERR_NOMEM, "cannot format the plan as JSON");
    fprintf(f, "%s\n", s);
    free(s);
    return LMF_OK;
}

void lmf_plan_print_explain(FILE *f, const lmf_cluster *c, const lmf_plan_job *job,
                            const lmf_plan_layout *l) {
    lmf_plan_dtype d = l->dtype;
    double w, g, o;
    lmf_plan_param_bytes(d, &w, &g, &o);
    fprintf(f, "assumptions (formulas and sources: docs/planner.md)\n");
    fprintf(f, "  parameters      N = V*h + n_pos*h + L*(12h^2 + 13h) + 2h (tied embedding; lmforge's layout);\n"
               "                  the device holds vocabulary rows padded to %d\n", LMF_VOCAB_PAD);
    fprintf(f, "  model FLOPs     6N + 12*L*h*s per token (lmforge's count; MFU uses it)\n");
    fprintf(f, "  state bytes     %s: weights %.0f, gradients %.0f, optimizer %.0f per parameter; ZeRO-1 shards\n"
               "                  the optimizer, ZeRO-2 also gradients, ZeRO-3 also weights over dp (Rajbhandari et al. 2020)\n",
            lmf_plan_dtype_name(d), w, g, o);
    fprintf(f, "  activations     per layer and micro-batch: s*b*h*[(4e + 2m)*r + 12e/t] + a*s^2*b*(e or 2e+1)/t,\n"
               "                  e = %.0f bytes, m = %d (dropout), r = 1/t with sequence parallelism; selective\n"
               "                  recomputation drops the a*s^2 term, full keeps s*b*h*e*r (Korthikanti et al. 2022);\n"
               "                  fused attention (--attention flash) keeps a*s*b*4/t bytes of log-sum-exp instead;\n"
               "                  each stage keeps the micro-batches its schedule holds at the peak (1F1B: min(pp, m)\n"
               "                  on the first); plus one layer's full activations as working set and fp32\n"
               "                  logits on the last stage\n",
            lmf_plan_act_elem_bytes(d), job->dropout);
    fprintf(f, "  buffers         as lmforge's data-parallel engine: ZeRO-2/3 gradient buckets of %.0f MiB,\n"
               "                  ZeRO-3 gathered embeddings + 2 layers; pipeline send/recv of one activation\n",
            LMF_PLAN_BUCKET_BYTES / 1048576.0);
    fprintf(f, "  memory          %.2f GiB per device, %.2f GiB reserved for the runtime\n",
            c->device_memory / GiB, c->memory_reserved / GiB);
    fprintf(f, "  peak            %.4g TFLOP/s (%s) per device\n", c->peak_flops[d] / 1e12,
            lmf_plan_dtype_name(d));
    fprintf(f, "  GEMM efficiency fraction of peak vs equivalent size n = 3MNK/(MN+NK+MK), log-linear between:\n   ");
    static const double probe[] = {64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384};
    for (size_t i = 0; i < sizeof probe / sizeof probe[0]; i++)
        fprintf(f, " n=%g: %.2f", probe[i], lmf_plan_gemm_eff(c, d, probe[i]));
    fprintf(f, "\n");
    fprintf(f, "  memory-bound    %.0f GB/s of device memory; per layer forward %g+%g values of width h per\n"
               "                  token and %g passes over the attention matrix, backward %g+%g values and %g passes\n"
               "                  (each gradient kernel's reads and writes; none over the scores with fused attention)\n",
            c->memory_bandwidth / 1e9, LMF_PLAN_ELEM_REPLICATED, LMF_PLAN_ELEM_SPLIT,
            LMF_PLAN_SOFTMAX_PASSES, LMF_PLAN_ELEM_REPLICATED_BWD, LMF_PLAN_ELEM_SPLIT_BWD,
            LMF_PLAN_SOFTMAX_PASSES_BWD);
    fprintf(f, "  attention       %s\n", job->attention == LMF_PLAN_ATTN_FLASH
               ? "fused causal kernel: the model's causal FLOPs (backward 2.5x), priced as a product of\n"
                 "                  the same FLOPs per byte of Q, K, V and output (and their gradients)"
               : "the s x s scores per head written and read in memory (two products and a softmax)");
    fprintf(f, "  step compute    forward + backward (2x the products) + recomputation (full: 1 forward;\n"
               "                  selective: the attention core); hardware FLOPs = model FLOPs + recomputed ones,\n"
               "                  24*b*s*h^2*(1 + s/(6h)) (full) or 4*b*s^2*h (selective) per layer and micro-batch\n");
    fprintf(f, "  links           intra-node %.0f GB/s per device per direction, latency %.1f us; network %.0f Gb/s\n"
               "                  per node, latency %.1f us; collectives reach %.0f%% of link bandwidth\n",
            c->intra_bandwidth / 1e9, c->intra_latency * 1e6, c->inter_bandwidth * 8.0 / 1e9,
            c->inter_latency * 1e6, 100.0 * c->comm_efficiency);
    if (c->intra_rs_bandwidth > 0 || c->intra_ag_bandwidth > 0)
        fprintf(f, "                  inside a node, measured: reduce-scatter %.2f GB/s, all-gather %.2f GB/s\n"
                   "                  (bus bandwidth; the all-reduce's figure above otherwise)\n",
                (c->intra_rs_bandwidth > 0 ? c->intra_rs_bandwidth : c->intra_bandwidth) / 1e9,
                (c->intra_ag_bandwidth > 0 ? c->intra_ag_bandwidth : c->intra_bandwidth) / 1e9);
    fprintf(f, "  collectives     ring all-reduce 2(n-1)/n*S/bw + 2(n-1)*latency; reduce-scatter, all-gather\n"
               "                  (n-1)/n*S/bw + (n-1)*latency; a group spanning nodes shares the node's network among\n"
               "                  devices_per_node/k rings (k members per node); ranks ordered tp, dp, pp\n");
    fprintf(f, "  tensor parallel 4 all-reduces of b*s*h values per layer per micro-batch (6 with full\n"
               "                  recomputation), not overlapped (Shoeybi et al. 2019)\n");
    fprintf(f, "  pipeline        bubble and activations held from a simulation of the schedule's own action lists\n"
               "                  (lmforge/pipeline.h): 1F1B and GPipe (pp-1) slots, interleaved over v chunks (pp-1)/v,\n"
               "                  ZB-H1 (pp-1)(F+B-W)/(F+B+W) with W priced as the forward; 2v sends of b*s*h/t\n"
               "                  values per micro-batch per stage (scatter/gather: without sequence parallelism the\n"
               "                  parts are all-gathered inside the receiving node), not overlapped (Narayanan et al. 2021)\n");
    fprintf(f, "  context par.    cp splits each sequence: activations, tokens and attention blocks per device / cp;\n"
               "                  ring attention sends cp-1 K/V blocks of b*(s/cp)*kv/t values per layer forward\n"
               "                  (twice the bytes backward, once more with recomputation), each hidden behind\n"
               "                  the attention block computed meanwhile (Liu et al. 2023); gradients reduce over dp x cp\n");
    fprintf(f, "  data parallel   ZeRO-0: all-reduce; ZeRO-1: reduce-scatter + all-gather of weights; ZeRO-2:\n"
               "                  reduce-scatter every micro-batch + all-gather; ZeRO-3: reduce-scatter and 2 weight\n"
               "                  gathers every micro-batch. Hidden behind the backward up to %.0f%% (pp = 1 only:\n"
               "                  with pipelining the reduction follows the flush); ZeRO-3 gathers hidden behind\n"
               "                  compute up to %.0f%%\n",
            100.0 * c->overlap_dp, 100.0 * c->overlap_zero3);
    fprintf(f, "  optimizer       AdamW reads and writes %.0f bytes per owned parameter at memory bandwidth\n",
            LMF_PLAN_ADAM_BYTES);
    fprintf(f, "  batch           global batch rounded to whole micro-batches per replica (at most %.0f%% change)\n",
            100.0 * LMF_PLAN_BATCH_TOLERANCE);
    const lmf_plan_device *dev = lmf_plan_device_select(c, l);
    if (dev->explain) {
        fprintf(f, "\n");
        dev->explain(f, c, job, l);
    }
}

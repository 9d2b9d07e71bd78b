/* Planner cluster descriptions, presets, search and calibration: files read and written,
 * bad files rejected with one-line messages, search results ranked and within constraints. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lmforge/plan.h"
#include "lib/test_util.h"

static void write_text(const char *name, const char *text, char *path) {
    lmf_test_path(path, 512, "%s", name);
    lmf_test_write_text(path, text);
}

#define GOOD_BODY                                                                        \
    "\"nodes\": 2, \"node\": {\"devices\": 4, \"intra_bandwidth_GBps\": 100},"           \
    "\"device\": {\"name\": \"X\", \"memory_GiB\": 16, \"memory_bandwidth_GBps\": 500,"  \
    "\"peak_tflops\": {\"bf16\": 100, \"fp32\": 10},"                                    \
    "\"gemm_efficiency\": {\"bf16\": [[256, 0.3], [4096, 0.7]]}},"                        \
    "\"network\": {\"node_bandwidth_Gbps\": 800, \"latency_us\": 4}"

static void test_presets(void **state) {
    const char *names[] = {"azure-openai-2020", "dgx-a100-superpod", "h100-cluster", "local"};
    const int devices[] = {10000, 1120, 1024, -1};
    for (int i = 0; i < 4; i++) {
        lmf_cluster c;
        if (lmf_cluster_resolve(names[i], &c) != LMF_OK) fail_msg("%s: %s", names[i], lmf_last_error());
        assert_string_equal(c.name, names[i]);
        if (devices[i] > 0) assert_int_equal(lmf_cluster_devices(&c), devices[i]);
        assert_int_equal(lmf_cluster_validate(&c), LMF_OK);
    }
    lmf_cluster az;
    assert_int_equal(lmf_cluster_resolve("azure-openai-2020", &az), LMF_OK);
    /* 400 Gb/s per GPU server */
    assert_true(fabs(az.inter_bandwidth - 400e9 / 8) < 1.0);
    assert_int_equal(az.devices_per_node, 8);
}

static void test_unknown_preset(void **state) {
    lmf_cluster c;
    assert_int_equal(lmf_cluster_resolve("dgx-z900", &c), LMF_ERR_ARG);
    const char *m = lmf_last_error();
    assert_non_null(strstr(m, "unknown cluster preset 'dgx-z900'"));
    assert_non_null(strstr(m, "azure-openai-2020"));
    assert_non_null(strstr(m, "h100-cluster"));
    assert_null(strchr(m, '\n'));
    char path[512];
    lmf_test_path(path, sizeof path, "none.json");
    assert_int_equal(lmf_cluster_resolve(path, &c), LMF_ERR_IO);
}

static void test_bad_files(void **state) {
    struct {
        const char *text, *msg;
        lmf_status code;
    } bad[] = {
        {"{ \"nodes\": 2, ", "malformed JSON", LMF_ERR_FORMAT},
        {"[1, 2]", "must be a JSON object", LMF_ERR_FORMAT},
        {"{\"nodes\": 2, \"device\": {}}", "missing object \"node\"", LMF_ERR_FORMAT},
        {"{" GOOD_BODY ", \"comm_efficiency\": \"high\"}", "\"comm_efficiency\" must be a number", LMF_ERR_FORMAT},
        {"{" GOOD_BODY ", \"comm_efficiency\": 1.5}", "comm_efficiency", LMF_ERR_FORMAT},
        {"{\"nodes\": 2, \"node\": {\"devices\": 4, \"intra_bandwidth_GBps\": 100},"
         "\"device\": {\"memory_GiB\": 16, \"peak_tflops\": {\"bf16\": 100}}}",
         "device.memory_bandwidth_GBps", LMF_ERR_FORMAT},
        {"{\"nodes\": -2, \"node\": {\"devices\": 4}}", "\"nodes\"", LMF_ERR_FORMAT},
        {"{\"nodes\": 2.5, \"node\": {\"devices\": 4}}", "whole number", LMF_ERR_FORMAT},
        {"{\"nodes\": 2, \"node\": {\"devices\": 4, \"intra_bandwidth_GBps\": 100},"
         "\"device\": {\"memory_GiB\": 16, \"memory_bandwidth_GBps\": 500, \"peak_tflops\": {}},"
         "\"network\": {\"node_bandwidth_Gbps\": 800}}", "positive peak", LMF_ERR_FORMAT},
        {"{\"nodes\": 2, \"node\": {\"devices\": 4, \"intra_bandwidth_GBps\": 100},"
         "\"device\": {\"memory_GiB\": 16, \"memory_bandwidth_GBps\": 500, \"peak_tflops\": {\"bf16\": 1},"
         "\"gemm_efficiency\": {\"bf16\": [[512, 0.3], [256, 0.5]]}},"
         "\"network\": {\"node_bandwidth_Gbps\": 800}}", "must increase", LMF_ERR_FORMAT},
        {"{\"nodes\": 2, \"node\": {\"devices\": 4, \"intra_bandwidth_GBps\": 100},"
         "\"device\": {\"memory_GiB\": 16, \"memory_bandwidth_GBps\": 500, \"peak_tflops\": {\"bf16\": 1},"
         "\"gemm_efficiency\": {\"bf16\": [[512]]}}}", "[size, fraction]", LMF_ERR_FORMAT},
        {"{\"nodes\": 2, \"node\": {\"devices\": 4, \"intra_bandwidth_GBps\": 100},"
         "\"device\": {\"memory_GiB\": 16, \"memory_bandwidth_GBps\": 500, \"peak_tflops\": {\"bf16\": 1}}}",
         "network bandwidth", LMF_ERR_FORMAT},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char path[512];
        lmf_cluster c;
        write_text("bad.json", bad[i].text, path);
        lmf_status st = lmf_cluster_load_json(path, &c);
        if (st != bad[i].code || !strstr(lmf_last_error(), bad[i].msg))
            fail_msg("case %zu: status %d, message '%s' (wanted '%s')", i, st, lmf_last_error(), bad[i].msg);
        assert_non_null(strstr(lmf_last_error(), "bad.json"));
        assert_null(strchr(lmf_last_error(), '\n'));
    }
}

static void test_round_trip(void **state) {
    char path[512], out[512];
    write_text("good.json", "{" GOOD_BODY ", \"price_per_device_hour\": 2.5}", path);
    lmf_cluster a, b;
    assert_int_equal(lmf_cluster_load_json(path, &a), LMF_OK);
    assert_string_equal(a.name, "good"); /* from the file name */
    assert_int_equal(a.nodes, 2);
    assert_true(fabs(a.device_memory - 16.0 * 1073741824.0) < 1.0);
    assert_true(fabs(a.inter_bandwidth - 100e9) < 1.0);
    assert_true(fabs(a.inter_latency - 4e-6) < 1e-12);
    assert_true(fabs(a.comm_efficiency - 0.8) < 1e-12); /* default */
    assert_int_equal(a.gemm_eff[LMF_PLAN_BF16].n, 2);
    lmf_test_path(out, sizeof out, "saved.json");
    const char *src[] = {"test"};
    assert_int_equal(lmf_cluster_save_json(out, &a, "a test cluster", src, 1), LMF_OK);
    assert_int_equal(lmf_cluster_load_json(out, &b), LMF_OK);
    assert_string_equal(b.name, a.name);
    assert_string_equal(b.device, a.device);
    assert_int_equal(b.nodes, a.nodes);
    assert_int_equal(b.devices_per_node, a.devices_per_node);
    const double pa[] = {a.device_memory, a.memory_bandwidth, a.intra_bandwidth, a.inter_bandwidth,
                         a.inter_latency, a.peak_flops[LMF_PLAN_BF16], a.peak_flops[LMF_PLAN_FP32],
                         a.price_per_device_hour, a.gemm_eff[LMF_PLAN_BF16].frac[1]};
    const double pb[] = {b.device_memory, b.memory_bandwidth, b.intra_bandwidth, b.inter_bandwidth,
                         b.inter_latency, b.peak_flops[LMF_PLAN_BF16], b.peak_flops[LMF_PLAN_FP32],
                         b.price_per_device_hour, b.gemm_eff[LMF_PLAN_BF16].frac[1]};
    for (int i = 0; i < 9; i++) assert_true(fabs(pa[i] - pb[i]) <= 1e-5 * fabs(pa[i]));
    /* measured reduce-scatter and all-gather rates: absent above, kept when given */
    assert_true(a.intra_rs_bandwidth == 0.0 && a.intra_ag_bandwidth == 0.0);
    a.intra_rs_bandwidth = 0.25e9;
    a.intra_ag_bandwidth = 0.95e9;
    assert_int_equal(lmf_cluster_save_json(out, &a, "a test cluster", src, 1), LMF_OK);
    assert_int_equal(lmf_cluster_load_json(out, &b), LMF_OK);
    assert_true(fabs(b.intra_rs_bandwidth - 0.25e9) <= 1.0 && fabs(b.intra_ag_bandwidth - 0.95e9) <= 1.0);
}

/* Measured reduce-scatter and all-gather rates price ZeRO-1's two collectives inside a node:
 * time = (n-1)/n * S / bw + (n-1) * latency each, so with both at half the link bandwidth the
 * exposed data-parallel time doubles less the latency terms; ZeRO-0 (all-reduce) is unchanged. */
static void test_collective_rates(void **state) {
    (void)state;
    char path[512];
    write_text("one_node.json", "{" GOOD_BODY "}", path);
    lmf_cluster c;
    assert_int_equal(lmf_cluster_load_json(path, &c), LMF_OK);
    c.nodes = 1;
    c.overlap_dp = 0.0;
    lmf_gpt_config cfg;
    assert_int_equal(lmf_config_preset("gpt2", &cfg), LMF_OK);
    lmf_plan_job job;
    lmf_plan_job_defaults(&job, "gpt2", &cfg);
    job.global_batch_tokens = 2.0 * 4 * 1024;
    job.total_tokens = 1e9;
    lmf_plan_layout l = {2, 1, 1, 4, 1, LMF_RECOMPUTE_NONE, LMF_PLAN_FP32, 0, 1, 1};
    lmf_plan_result r0, r1, z0a, z0b;
    assert_int_equal(lmf_plan_evaluate(&c, &job, &l, &r0), LMF_OK);
    l.zero = 0;
    assert_int_equal(lmf_plan_evaluate(&c, &job, &l, &z0a), LMF_OK);
    c.intra_rs_bandwidth = c.intra_ag_bandwidth = c.intra_bandwidth / 2;
    assert_int_equal(lmf_plan_evaluate(&c, &job, &l, &z0b), LMF_OK);
    l.zero = 1;
    assert_int_equal(lmf_plan_evaluate(&c, &job, &l, &r1), LMF_OK);
    assert_true(z0a.time.dp_comm == z0b.time.dp_comm);
    double lat2 = 2.0 * c.intra_latency; /* (n-1) * latency, two collectives */
    assert_true(r0.time.dp_comm > 0.0);
    assert_true(fabs((r1.time.dp_comm - lat2) - 2.0 * (r0.time.dp_comm - lat2)) <=
                1e-9 * r1.time.dp_comm);
}

static lmf_plan_job job_for(const char *model, double batch_tokens, double tokens) {
    lmf_gpt_config cfg;
    assert_int_equal(lmf_config_preset(model, &cfg), LMF_OK);
    lmf_plan_job job;
    lmf_plan_job_defaults(&job, model, &cfg);
    job.global_batch_tokens = batch_tokens;
    job.total_tokens = tokens;
    return job;
}

static void test_search(void **state) {
    lmf_cluster c;
    assert_int_equal(lmf_cluster_resolve("dgx-a100-superpod", &c), LMF_OK);
    c.nodes = 128;
    lmf_plan_job job = job_for("gpt3-175b", 1536.0 * 2048, 300e9);
    lmf_plan_constraints k;
    lmf_plan_constraints_free(&k, &c);
    assert_int_equal(k.dtype, LMF_PLAN_BF16);
    lmf_plan_result best[8];
    int n = 0;
    int64_t evaluated = 0;
    assert_int_equal(lmf_plan_search(&c, &job, &k, best, 8, &n, &evaluated), LMF_OK);
    assert_int_equal(n, 8);
    assert_true(evaluated > 1000);
    for (int i = 0; i < n; i++) {
        assert_true(best[i].mem.fits);
        assert_true(best[i].devices <= 1024);
        assert_int_equal(best[i].devices, best[i].layout.dp * best[i].layout.tp * best[i].layout.pp);
        if (i > 0) assert_true(best[i].days >= best[i - 1].days);
    }
    /* the best found beats or equals the published layout */
    lmf_plan_layout pub = {16, 8, 8, 1, 0, LMF_RECOMPUTE_FULL, LMF_PLAN_BF16, 1, 1, 1};
    lmf_plan_result r;
    assert_int_equal(lmf_plan_evaluate(&c, &job, &pub, &r), LMF_OK);
    assert_true(best[0].days <= r.days);
    /* constraints hold */
    k.tp = 8;
    k.recompute = LMF_RECOMPUTE_FULL;
    k.recompute_fixed = 1;
    assert_int_equal(lmf_plan_search(&c, &job, &k, best, 8, &n, &evaluated), LMF_OK);
    for (int i = 0; i < n; i++) {
        assert_int_equal(best[i].layout.tp, 8);
        assert_int_equal(best[i].layout.recompute, LMF_RECOMPUTE_FULL);
    }
    /* 1T parameters cannot train on one 8 x 32 GB node */
    lmf_cluster az;
    assert_int_equal(lmf_cluster_resolve("azure-openai-2020", &az), LMF_OK);
    az.nodes = 1;
    lmf_plan_job big = job_for("gpt-1t", 1024.0 * 2048, 1e12);
    lmf_plan_constraints_free(&k, &az);
    assert_int_equal(lmf_plan_search(&az, &big, &k, best, 8, &n, &evaluated), LMF_ERR_ARG);
    assert_non_null(strstr(lmf_last_error(), "no layout fits"));
}

/* The search over the 10,000-GPU preset, as the CLI runs it: the batch kept within 5%, tensor
 * parallelism inside a node unless allowed to cross. */
static void test_search_azure(void **state) {
    lmf_cluster c;
    assert_int_equal(lmf_cluster_resolve("azure-openai-2020", &c), LMF_OK);
    lmf_plan_job job = job_for("gpt3-175b", 3.2e6, 300e9);
    lmf_plan_constraints k;
    lmf_plan_constraints_free(&k, &c);
    assert_int_equal(k.dtype, LMF_PLAN_FP16); /* a V100 has fp16 tensor cores, no bf16 */
    assert_true(c.peak_flops[LMF_PLAN_BF16] == 0.0 && c.peak_flops[LMF_PLAN_FP16] == 125e12);
    lmf_plan_result best[10];
    int n = 0;
    int64_t evaluated = 0;
    assert_int_equal(lmf_plan_search(&c, &job, &k, best, 10, &n, &evaluated), LMF_OK);
    assert_int_equal(n, 10);
    for (int i = 0; i < n; i++) {
        assert_true(best[i].mem.fits);
        double rel = fabs((double)best[i].global_batch - 1563.0) / 1563.0;
        assert_true(rel <= 0.05);
        /* tensor-parallel groups stay inside a node (once this search chose tp 24) */
        assert_true(best[i].layout.tp <= c.devices_per_node);
    }
    /* unless allowed to cross nodes (under 1F1B, whose bubble favours fewer stages: ZB-H1's
     * best layouts keep tp inside the node here) */
    int crossing = 0;
    k.allow_cross_node_tp = 1;
    k.schedule_fixed = 1;
    k.schedule = LMF_PP_1F1B;
    assert_int_equal(lmf_plan_search(&c, &job, &k, best, 10, &n, &evaluated), LMF_OK);
    for (int i = 0; i < n; i++) crossing += best[i].layout.tp > c.devices_per_node;
    assert_true(crossing > 0);
    /* a tp the user fixes is kept, in a node or not */
    k.allow_cross_node_tp = 0;
    k.tp = 16;
    assert_int_equal(lmf_plan_search(&c, &job, &k, best, 10, &n, &evaluated), LMF_OK);
    for (int i = 0; i < n; i++) assert_int_equal(best[i].layout.tp, 16);
}

/* fp16 and bf16 share the tensor-core peak on an A100 (312 TFLOP/s dense) and an H100 SXM
 * (989): the datasheets' figures, and --dtype fp16 plans there. */
static void test_fp16_peaks(void **state) {
    const char *names[] = {"dgx-a100-superpod", "h100-cluster"};
    const double peak[] = {312e12, 989e12};
    for (int i = 0; i < 2; i++) {
        lmf_cluster c;
        assert_int_equal(lmf_cluster_resolve(names[i], &c), LMF_OK);
        assert_true(c.peak_flops[LMF_PLAN_FP16] == peak[i]);
        assert_true(c.peak_flops[LMF_PLAN_BF16] == peak[i]);
        c.nodes = 16;
        lmf_plan_job job = job_for("gpt3-175b", 1024.0 * 2048, 300e9);
        lmf_plan_layout l = {16, 8, 1, 1, 1, LMF_RECOMPUTE_FULL, LMF_PLAN_FP16, 1, 1, 1};
        lmf_plan_result r16, r_bf;
        assert_int_equal(lmf_plan_evaluate(&c, &job, &l, &r16), LMF_OK);
        l.dtype = LMF_PLAN_BF16;
        assert_int_equal(lmf_plan_evaluate(&c, &job, &l, &r_bf), LMF_OK);
        /* same peak, same state bytes, same curve: the same plan */
        assert_true(r16.time.step == r_bf.time.step && r16.mem.total == r_bf.mem.total);
        assert_true(fabs(r16.mfu - r16.model_tflops_per_device * 1e12 / peak[i]) < 1e-12);
    }
}

/* The launch command of a layout: ranks, per-node ranks, the model as named, the batch, the
 * steps that cover the tokens, and the layout's flags. */
static void test_command(void **state) {
    lmf_cluster c;
    assert_int_equal(lmf_cluster_resolve("dgx-a100-superpod", &c), LMF_OK);
    c.nodes = 64;
    lmf_plan_job job = job_for("gpt3-175b", 1536.0 * 2048, 300e9);
    snprintf(job.model_source, sizeof job.model_source, "models/m175.json");
    lmf_plan_layout l = {8, 8, 8, 1, 1, LMF_RECOMPUTE_FULL, LMF_PLAN_BF16, 1, 2, 1};
    lmf_plan_result r;
    assert_int_equal(lmf_plan_evaluate(&c, &job, &l, &r), LMF_OK);
    char cmd[1024];
    lmf_plan_command(cmd, sizeof cmd, &c, &job, &r);
    char want[512];
    /* 300e9 tokens / (1536 x 2048) per step = 95,367.4: 95,368 steps */
    snprintf(want, sizeof want, "mpirun -np 512 --npernode 8 lmforge train --config models/m175.json "
             "--seq 2048 --batch 1 --global-batch 3145728 --steps 95368 --zero 1 --recompute full "
             "--tp 8 --sp --pp 8 --schedule interleaved --virtual-stages 2 --dtype bf16");
    assert_string_equal(cmd, want);
    /* under Slurm: 512 tasks on 64 nodes of 8, the same `lmforge train` */
    char srun[1024];
    lmf_plan_command_srun(srun, sizeof srun, &c, &job, &r);
    const char *pre = "srun --nodes 64 --ntasks 512 --ntasks-per-node 8 --mpi=pmix ";
    assert_int_equal(strncmp(srun, pre, strlen(pre)), 0);
    assert_string_equal(srun + strlen(pre), strstr(want, "lmforge train"));
    /* an fp32 data-parallel run on one node names a preset and no model-parallel flags */
    snprintf(job.model_source, sizeof job.model_source, "gpt2");
    lmf_plan_layout d = {4, 1, 1, 8, 0, LMF_RECOMPUTE_NONE, LMF_PLAN_FP32, 0, 1, 1};
    job.global_batch_tokens = 4.0 * 8 * 2048;
    assert_int_equal(lmf_plan_evaluate(&c, &job, &d, &r), LMF_OK);
    lmf_plan_command(cmd, sizeof cmd, &c, &job, &r);
    assert_non_null(strstr(cmd, "mpirun -np 4 --npernode 4 lmforge train --model gpt2 "));
    lmf_plan_command_srun(srun, sizeof srun, &c, &job, &r); /* 4 tasks: one node */
    assert_non_null(strstr(srun, "srun --nodes 1 --ntasks 4 --ntasks-per-node 4 --mpi=pmix lmforge train --model gpt2 "));
    assert_null(strstr(cmd, "--tp"));
    assert_null(strstr(cmd, "--dtype"));
    char small[16];
    lmf_plan_command(small, sizeof small, &c, &job, &r); /* truncated, terminated */
    assert_int_equal(strlen(small), 15);
}

static void test_calibrate(void **state) {
    lmf_plan_calib_opts o = {.ranks = 2, .threads = 2, .seconds_per_point = 0.01, .max_size = 256};
    lmf_cluster c;
    assert_int_equal(lmf_plan_calibrate(&o, NULL, &c, NULL), LMF_OK);
    assert_int_equal(c.nodes, 1);
    assert_int_equal(c.devices_per_node, 2);
    assert_true(c.peak_flops[LMF_PLAN_FP32] > 1e8);
    assert_true(c.peak_flops[LMF_PLAN_BF16] == 0.0);
    assert_int_equal(c.gemm_eff[LMF_PLAN_FP32].n, 3); /* 64, 128, 256 */
    assert_true(c.memory_bandwidth > 1e8 && c.intra_bandwidth > 1e7);
    char out[512];
    lmf_test_path(out, sizeof out, "local.json");
    assert_int_equal(lmf_cluster_save_json(out, &c, "calibrated", NULL, 0), LMF_OK);
    lmf_cluster back;
    assert_int_equal(lmf_cluster_load_json(out, &back), LMF_OK);
    /* lmforge's kernels were measured, per rank of 1 thread, and read back */
    assert_string_equal(back.kernels.table, "fast");
    assert_int_equal(back.kernels.threads, 1);
    assert_int_equal(back.kernels.matmul.n, c.kernels.matmul.n);
    assert_true(back.kernels.matmul.n >= 5 && back.kernels.attention.n >= 5 &&
                back.kernels.classifier.n >= 5);
    assert_true(fabs(back.kernels.matmul.bwd[2] - c.kernels.matmul.bwd[2]) <=
                1e-4 * c.kernels.matmul.bwd[2]);
    for (int e = 0; e < LMF_PLAN_EW_COUNT; e++)
        assert_true(fabs(back.kernels.bandwidth[e] - c.kernels.bandwidth[e]) <=
                    1e-4 * c.kernels.bandwidth[e]);
    assert_true(back.kernels.process_bytes > 1048576.0);
    /* plan a tiny run on it: fp32 is the default dtype without a bf16 peak */
    lmf_plan_job job = job_for("tiny", 8.0 * 64, 1e6);
    lmf_plan_constraints k;
    lmf_plan_constraints_free(&k, &back);
    assert_int_equal(k.dtype, LMF_PLAN_FP32);
    lmf_plan_result r;
    assert_int_equal(lmf_plan_single(&back, &job, &k, &r), LMF_OK);
    assert_int_equal(r.layout.dp, 2);
    assert_true(r.tokens_per_s > 0.0 && r.mem.fits);
    assert_true(r.time.matmul > 0.0 && r.time.classifier > 0.0 && r.mem.checkpoint > 0.0);
    /* a kernels object with a missing rate or decreasing sizes is refused */
    char bad[512];
    write_text("bad-kernels.json", "{" GOOD_BODY ", \"kernels\": {\"threads\": 1, \"rows\": 1024, "
               "\"process_MiB\": 40, \"matmul_GFLOPs\": [[256, 100, 100], [128, 90, 90]], "
               "\"attention_GFLOPs\": [[64, 50, 50]], \"classifier_GFLOPs\": [[64, 80]], "
               "\"bandwidth_GBps\": {\"zero\": 10}}}", bad);
    assert_int_equal(lmf_cluster_load_json(bad, &back), LMF_ERR_FORMAT);
    assert_non_null(strstr(lmf_last_error(), "layernorm_forward"));
    o.max_size = 32;
    assert_int_equal(lmf_plan_calibrate(&o, NULL, &c, NULL), LMF_ERR_ARG);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_presets),
        cmocka_unit_test(test_unknown_preset),
        cmocka_unit_test(test_bad_files),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_collective_rates),
        cmocka_unit_test(test_search),
        cmocka_unit_test(test_search_azure),
        cmocka_unit_test(test_fp16_peaks),
        cmocka_unit_test(test_command),
        cmocka_unit_test(test_calibrate),
    };
    return cmocka_run_group_tests(tests, lmf_test_tmpdir_setup, lmf_test_tmpdir_teardown);
}

/* Planner formulas against published ones: ring all-reduce, ZeRO memory, Korthikanti
 * activations, 1F1B bubble, Narayanan FLOPs and the 175B/1,024-GPU training-time anchor; the
 * model's description as the planner uses it (layer sizes, products by tensor-parallel split)
 * against counts made here by hand; the calibrated-device model against lmforge's own
 * allocations and kernel calls counted here. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lmforge/comm.h"
#include "lmforge/ddp.h"
#include "lmforge/model.h"
#include "lmforge/plan.h"
#include "lmforge/threads.h"
#include "plan/plan_model.h"

#define REL(a, b) (fabs((a) - (b)) / fabs(b))

static void assert_close(double got, double want, double rel) {
    if (!(REL(got, want) <= rel)) fail_msg("got %.9g, expected %.9g (rel. tolerance %g)", got, want, rel);
}

/* A small two-node cluster with round numbers, no preset file needed. */
static lmf_cluster toy_cluster(void) {
    lmf_cluster c;
    memset(&c, 0, sizeof c);
    snprintf(c.name, sizeof c.name, "toy");
    snprintf(c.device, sizeof c.device, "toy device");
    c.nodes = 2;
    c.devices_per_node = 4;
    c.device_memory = 64e9;
    c.memory_reserved = 0;
    c.peak_flops[LMF_PLAN_FP32] = 10e12;
    c.peak_flops[LMF_PLAN_BF16] = 100e12;
    c.memory_bandwidth = 1e12;
    c.intra_bandwidth = 100e9;
    c.inter_bandwidth = 40e9; /* per node */
    c.comm_efficiency = 1.0;
    c.overlap_dp = 0.0;
    c.overlap_zero3 = 0.0;
    return c;
}

/* GPT-2 124M (its preset) with its own context as the sequence, `sequences` per step. */
static lmf_plan_job gpt2_job(double sequences, lmf_gpt_config *cfg) {
    assert_int_equal(lmf_config_preset("gpt2", cfg), LMF_OK);
    lmf_plan_job job;
    lmf_plan_job_defaults(&job, "gpt2", cfg);
    job.global_batch_tokens = sequences * cfg->n_positions;
    return job;
}

static void test_ring_allreduce(void **state) {
    /* 2(n-1)/n * S / bw + 2(n-1) * latency */
    assert_close(lmf_plan_allreduce_time(1e9, 8, 1e11, 0.0), 2.0 * 7 / 8 * 1e9 / 1e11, 1e-12);
    assert_close(lmf_plan_allreduce_time(4e6, 4, 1e10, 5e-6), 1.5 * 4e6 / 1e10 + 6 * 5e-6, 1e-12);
    assert_true(lmf_plan_allreduce_time(1e9, 1, 1e9, 1e-3) == 0.0);
    /* reduce-scatter + all-gather move the same bytes as one all-reduce */
    double rs = lmf_plan_gather_time(3e8, 16, 2e10, 1e-6);
    assert_close(2.0 * rs, lmf_plan_allreduce_time(3e8, 16, 2e10, 1e-6), 1e-12);
}

static void test_group_links(void **state) {
    lmf_cluster c = toy_cluster();
    double bw, lat;
    lmf_plan_group_link(&c, 4, 1, &bw, &lat); /* one node */
    assert_close(bw, 100e9, 1e-12);
    lmf_plan_group_link(&c, 2, 4, &bw, &lat); /* one member per node: 4 rings share the NIC */
    assert_close(bw, 40e9 / 4, 1e-12);
    lmf_plan_group_link(&c, 8, 1, &bw, &lat); /* all 8: one ring, 4 members per node */
    assert_close(bw, 40e9, 1e-12);
    lmf_plan_group_link(&c, 4, 2, &bw, &lat); /* 2 members per node, 2 rings per node */
    assert_close(bw, 20e9, 1e-12);
}

/* ZeRO paper (Rajbhandari et al. 2020), Fig. 1: 7.5B parameters, Nd = 64, K = 12:
 * baseline 120 GB, P_os 31.4 GB, P_os+g 16.6 GB, P_os+g+p 1.88 GB. */
static void test_zero_memory(void **state) {
    double psi = 7.5e9, nd = 64, K = 12;
    const double paper[4] = {120e9, 31.4e9, 16.6e9, 1.88e9};
    const double exact[4] = {(2 + 2 + K) * psi, 2 * psi + 2 * psi + K * psi / nd,
                             2 * psi + (2 + K) * psi / nd, (2 + 2 + K) * psi / nd};
    for (int z = 0; z <= 3; z++) {
        double w, g, o;
        lmf_plan_state_bytes(LMF_PLAN_BF16, z, 64, psi, &w, &g, &o);
        assert_close(w + g + o, exact[z], 1e-12);
        assert_close(w + g + o, paper[z], 0.005);
    }
    /* fp32 (lmforge's CPU trainer): 16 bytes per parameter, as lmforge's data-parallel engine
     * accounts them */
    size_t n = 1000000;
    for (int world = 1; world <= 8; world *= 2) {
        for (int z = 0; z <= 3; z++) {
            double w, g, o;
            lmf_ddp_memory th;
            lmf_plan_state_bytes(LMF_PLAN_FP32, z, world, (double)n, &w, &g, &o);
            lmf_ddp_memory_theory(n, world, z, &th);
            assert_close(w, (double)th.weights, 1e-12);
            assert_close(g, (double)th.grads, 1e-12);
            assert_close(o, (double)th.optim, 1e-12);
        }
    }
    double w, g, o;
    lmf_plan_state_bytes(LMF_PLAN_FP32, 0, 4, 1.0, &w, &g, &o);
    assert_close(w + g + o, 16.0, 1e-12);
}

/* Korthikanti et al. 2022, Sec. 4 (16-bit activations, dropout): bytes per layer
 * sbh(34 + 5as/h) without parallelism; sbh(10 + 24/t + 5as/(ht)) with tensor parallelism;
 * sbh/t (34 + 5as/h) with sequence parallelism too; 34 sbh/t with selective recomputation;
 * 2sbh (2sbh/t with sequence parallelism) with full recomputation. */
static void test_activations(void **state) {
    double s = 2048, b = 1, h = 12288, a = 96, t = 8;
    double sbh = s * b * h;
    lmf_plan_act_shape sh = {.s = s, .b = b, .h = h, .a = a, .t = 1, .sp = 0, .e = 2.0, .dropout = 1};
    assert_close(lmf_plan_act_layer_bytes(&sh, LMF_RECOMPUTE_NONE), sbh * (34 + 5 * a * s / h), 1e-12);
    assert_close(lmf_plan_act_layer_bytes(&sh, LMF_RECOMPUTE_FULL), 2 * sbh, 1e-12);
    sh.t = 8;
    assert_close(lmf_plan_act_layer_bytes(&sh, LMF_RECOMPUTE_NONE),
                 sbh * (10 + 24 / t + 5 * a * s / (h * t)), 1e-12);
    sh.sp = 1;
    assert_close(lmf_plan_act_layer_bytes(&sh, LMF_RECOMPUTE_NONE), sbh / t * (34 + 5 * a * s / h), 1e-12);
    assert_close(lmf_plan_act_layer_bytes(&sh, LMF_RECOMPUTE_SELECTIVE), 34 * sbh / t, 1e-12);
    assert_close(lmf_plan_act_layer_bytes(&sh, LMF_RECOMPUTE_FULL), 2 * sbh / t, 1e-12);
    /* lmforge's trainer: fp32, no dropout: 16 values of width h and the attention matrix */
    lmf_plan_act_shape f32 = {.s = 64, .b = 4, .h = 128, .a = 4, .t = 1, .sp = 0, .e = 4.0, .dropout = 0};
    assert_close(lmf_plan_act_layer_bytes(&f32, LMF_RECOMPUTE_NONE),
                 4.0 * (16 * 64 * 4 * 128 + 4 * 64 * 64 * 4), 1e-12);
}

/* The planner's parameter count for one device with no model parallelism is exactly what
 * lmforge allocates: its parameter layout, padded vocabulary included. */
static void test_params_match_layout(void **state) {
    const char *names[] = {"tiny", "gpt2", "gpt2-xl", "gpt3-2.7b"};
    for (int i = 0; i < 4; i++) {
        lmf_gpt_config cfg;
        lmf_param_layout lay;
        assert_int_equal(lmf_config_preset(names[i], &cfg), LMF_OK);
        assert_int_equal(lmf_layout_build(&cfg, &lay), LMF_OK);
        assert_close(lmf_plan_stage_params(&cfg, 1, 1, LMF_PLAN_STAGE_FIRST), (double)lay.total, 1e-12);
        /* pipeline stages together hold everything once, plus the tied output copy */
        double two = lmf_plan_stage_params(&cfg, 1, 2, LMF_PLAN_STAGE_FIRST) +
                     lmf_plan_stage_params(&cfg, 1, 2, LMF_PLAN_STAGE_LAST);
        double vp = lmf_config_padded_vocab(&cfg);
        assert_close(two, (double)lay.total + vp * cfg.n_embd, 1e-12);
        /* one layer per tensor-parallel rank, counted here: the weights (3h^2 + h^2 + 4h^2 +
         * 4h^2) and the QKV and MLP-up biases (3h + 4h) split, the two LayerNorms (4h) and the
         * two output-projection biases (2h) replicated (Megatron-LM) */
        double h = cfg.n_embd;
        for (int tp = 1; tp <= 4; tp *= 2)
            assert_close(lmf_plan_layer_params(&cfg, tp), (12 * h * h + 7 * h) / tp + 6 * h, 1e-12);
        lmf_layout_free(&lay);
    }
}

/* The generic device's layer products follow their tensor-parallel split: with memory traffic
 * made free, full recomputation costs one forward of the layer's products more than selective
 * recomputation, i.e. the four products counted here: (b*s) x h x 3h/t (QKV, column),
 * (b*s) x h/t x h (attention output, row), (b*s) x h x 4h/t (MLP up, column), (b*s) x 4h/t x h
 * (MLP down, row), at the efficiency of each one's shape. */
static void test_generic_products(void **state) {
    (void)state;
    lmf_cluster c = toy_cluster();
    c.memory_bandwidth = 1e30;
    c.gemm_eff[LMF_PLAN_BF16].n = 3;
    const double sz[] = {128, 1024, 8192}, fr[] = {0.1, 0.5, 0.8};
    for (int i = 0; i < 3; i++) {
        c.gemm_eff[LMF_PLAN_BF16].size[i] = sz[i];
        c.gemm_eff[LMF_PLAN_BF16].frac[i] = fr[i];
    }
    lmf_gpt_config cfg;
    assert_int_equal(lmf_config_preset("gpt2", &cfg), LMF_OK);
    lmf_plan_job job;
    lmf_plan_job_defaults(&job, "gpt2", &cfg);
    job.seq = 512;
    job.global_batch_tokens = 2.0 * 2 * 512;
    for (int tp = 1; tp <= 4; tp *= 4) {
        lmf_plan_layout l = {.dp = 8 / tp, .tp = tp, .pp = 1, .micro_batch = 2, .zero = 0,
                             .recompute = LMF_RECOMPUTE_SELECTIVE, .dtype = LMF_PLAN_BF16,
                             .sequence_parallel = tp > 1};
        job.global_batch_tokens = (double)l.dp * 2 * 512;
        lmf_plan_result sel, full;
        assert_int_equal(lmf_plan_evaluate(&c, &job, &l, &sel), LMF_OK);
        l.recompute = LMF_RECOMPUTE_FULL;
        assert_int_equal(lmf_plan_evaluate(&c, &job, &l, &full), LMF_OK);
        assert_int_equal(full.device, LMF_PLAN_DEVICE_GENERIC);
        double M = 2.0 * 512, h = cfg.n_embd, t = tp;
        double one = lmf_plan_gemm_time(&c, LMF_PLAN_BF16, M, h, 3 * h / t, 1) +
                     lmf_plan_gemm_time(&c, LMF_PLAN_BF16, M, h / t, h, 1) +
                     lmf_plan_gemm_time(&c, LMF_PLAN_BF16, M, h, 4 * h / t, 1) +
                     lmf_plan_gemm_time(&c, LMF_PLAN_BF16, M, 4 * h / t, h, 1);
        assert_int_equal(full.micro_batches, 1);
        assert_close(full.time.compute - sel.time.compute, cfg.n_layer * one, 1e-9);
    }
}

static void test_efficiency_curve(void **state) {
    lmf_cluster c = toy_cluster();
    c.gemm_eff[LMF_PLAN_BF16].n = 2;
    c.gemm_eff[LMF_PLAN_BF16].size[0] = 100;
    c.gemm_eff[LMF_PLAN_BF16].frac[0] = 0.2;
    c.gemm_eff[LMF_PLAN_BF16].size[1] = 400;
    c.gemm_eff[LMF_PLAN_BF16].frac[1] = 0.6;
    assert_close(lmf_plan_gemm_eff(&c, LMF_PLAN_BF16, 200), 0.4, 1e-12); /* log midpoint */
    assert_close(lmf_plan_gemm_eff(&c, LMF_PLAN_BF16, 50), 0.1, 1e-12);  /* proportional below */
    assert_close(lmf_plan_gemm_eff(&c, LMF_PLAN_BF16, 4000), 0.6, 1e-12); /* flat above */
    /* fp32 has no curve of its own: falls back to the bf16 one */
    assert_close(lmf_plan_gemm_eff(&c, LMF_PLAN_FP32, 400), 0.6, 1e-12);
    /* equivalent size: n for a cube, symmetric in M, K, N */
    assert_close(lmf_plan_equiv_size(512, 512, 512), 512, 1e-12);
    assert_close(lmf_plan_equiv_size(64, 1024, 4096), lmf_plan_equiv_size(4096, 64, 1024), 1e-12);
    /* 2 * 512^3 FLOPs at 100 TFLOP/s and efficiency 0.6 (flat above 400) */
    assert_close(lmf_plan_gemm_time(&c, LMF_PLAN_BF16, 512, 512, 512, 3),
                 3 * 2.0 * 512 * 512 * 512 / (100e12 * 0.6), 1e-12);
}

/* pp stages of micro-batches of 2 sequences, bf16, nothing else: 8 micro-batches of the
 * 16-sequence gpt2_job per step */
static lmf_plan_layout pipeline_layout(int pp) {
    lmf_plan_layout l = {.dp = 1, .tp = 1, .pp = pp, .micro_batch = 2, .zero = 0,
                         .recompute = LMF_RECOMPUTE_NONE, .dtype = LMF_PLAN_BF16};
    return l;
}

/* One pipeline stage's memory as an evaluation computes it, for m micro-batches per step. */
static void stage_memory(const lmf_cluster *c, const lmf_plan_job *job, const lmf_plan_layout *l,
                         int m, lmf_plan_stage stage, lmf_plan_memory *out) {
    lmf_plan_setup su;
    assert_int_equal(lmf_plan_setup_init(&su, c, job, l), LMF_OK);
    assert_int_equal(lmf_plan_schedule_prepare(&su, m, NULL), LMF_OK);
    su.device->memory(&su, m, stage, out);
}

/* 1F1B: bubble = (pp - 1) micro-batch slots = (pp - 1)/m of the ideal time, the slots of the
 * stages that hold only layers. */
static void test_bubble(void **state) {
    lmf_gpt_config cfg;
    lmf_plan_job job = gpt2_job(16.0, &cfg); /* 12 layers, 1024 tokens per sequence */
    /* pp, and the link between stages: fast (the last stage, with the classifier, sets the
     * pace) and slow (a middle stage's two sends per micro-batch set it) */
    const struct { int pp; double link; } cases[] = {{2, 100e9}, {4, 100e9}, {4, 1e8}};
    for (int i = 0; i < 3; i++) {
        int pp = cases[i].pp;
        lmf_cluster c = toy_cluster();
        c.intra_bandwidth = cases[i].link;
        lmf_plan_layout l = {.dp = 1, .tp = 1, .pp = pp, .micro_batch = 2, .zero = 0,
                             .recompute = LMF_RECOMPUTE_NONE, .dtype = LMF_PLAN_BF16};
        lmf_plan_result r;
        assert_int_equal(lmf_plan_evaluate(&c, &job, &l, &r), LMF_OK);
        assert_int_equal(r.micro_batches, 8);
        /* the steady state runs at the slowest stage's pace: the last (layers and classifier)
         * or, with the slow link, a middle one; the fill and drain pass once through each of
         * the other pp - 1 stages (layers only) */
        lmf_plan_setup su;
        assert_int_equal(lmf_plan_setup_init(&su, &c, &job, &r.layout), LMF_OK);
        lmf_plan_micro mb;
        lmf_plan_generic_micro_batch(&su, &mb);
        assert_true(mb.compute_layers < mb.compute);
        assert_close(r.time.compute, 8 * mb.compute, 1e-12);
        /* one send: a micro-batch's boundary activation (2 x 1024 tokens x 768, bf16) inside
         * a node; a stage in the middle sends two per micro-batch (the activation on, the
         * gradient back), the first and the last one, each at once with the opposite receive */
        double send = 2.0 * 1024 * 768 * 2 / cases[i].link;
        double middle = pp > 2 ? 2.0 * send : send;
        double slot = fmax(mb.compute_layers + middle, mb.compute + send);
        assert_close(r.time.pp_comm, 8 * (slot - mb.compute), 1e-12);
        if (i == 1) assert_close(r.time.pp_comm, 8 * send, 1e-12);
        if (i == 2) assert_close(r.time.pp_comm, 8 * (mb.compute_layers + 2.0 * send - mb.compute), 1e-12);
        /* a fill or drain slot: a stage's forward and backward and the two sends between */
        double fill_slot = mb.compute_layers + r.time.tp_comm / 8 + 2.0 * send;
        assert_close(r.time.bubble, (pp - 1) * fill_slot, 1e-12);
        /* a stage idles (pp - 1) of its m + pp - 1 slots */
        assert_close(r.time.bubble_fraction, (pp - 1) / (8.0 + pp - 1), 1e-12);
    }
}

/* The schedule a layout names prices its pipeline: GPipe has 1F1B's bubble but holds all m
 * micro-batches on every stage; ZB-H1 with the generic device's F = B = W (each linear's
 * weight-gradient product is its forward's) idles a third of 1F1B's time and keeps its
 * first-stage memory, its last stage holding pp micro-batches instead of one (Qi et al. 2024).
 * Names that cannot go together fail. */
static void test_schedules(void **state) {
    lmf_cluster c = toy_cluster();
    lmf_gpt_config cfg;
    lmf_plan_job job = gpt2_job(16.0, &cfg); /* 12 layers, 1024 tokens per sequence */
    int pp = 4, m = 8;
    lmf_plan_layout l = pipeline_layout(pp);
    lmf_plan_result r1, rg, rz;
    assert_int_equal(lmf_plan_evaluate(&c, &job, &l, &r1), LMF_OK);
    l.schedule = LMF_PP_GPIPE;
    assert_int_equal(lmf_plan_evaluate(&c, &job, &l, &rg), LMF_OK);
    l.schedule = LMF_PP_ZB_H1;
    assert_int_equal(lmf_plan_evaluate(&c, &job, &l, &rz), LMF_OK);
    assert_int_equal(r1.micro_batches, m);
    assert_int_equal(r1.layout.schedule, LMF_PP_1F1B);
    assert_int_equal(rz.layout.schedule, LMF_PP_ZB_H1);
    assert_close(rg.time.bubble, r1.time.bubble, 1e-12);
    /* the generic device's backward is not exactly twice its forward (its memory-bound
     * kernels' gradients move other bytes than their forwards), so F = B = W, where ZB-H1's
     * bubble is exactly a third of 1F1B's (test_pipeline_schedule), holds only roughly here:
     * at most half, as the zero-bubble paper's ZB-H1 promises, and the step shorter by it */
    assert_true(rz.time.bubble > 0 && rz.time.bubble <= r1.time.bubble / 2.0);
    assert_true(rz.time.bubble_fraction <= r1.time.bubble_fraction / 2.0);
    assert_close(rz.time.step, r1.time.step - (r1.time.bubble - rz.time.bubble), 1e-6);

    lmf_plan_act_shape sh = {.s = 1024, .b = 2, .h = 768, .a = 12, .t = 1, .sp = 0, .e = 2.0, .dropout = 0};
    double per_layer = lmf_plan_act_layer_bytes(&sh, LMF_RECOMPUTE_NONE), layers = cfg.n_layer / (double)pp;
    lmf_plan_memory m1[2], mg[2], mz[2];
    for (int st = 0; st < 2; st++) {
        stage_memory(&c, &job, &r1.layout, m, (lmf_plan_stage)st, &m1[st]);
        stage_memory(&c, &job, &rg.layout, m, (lmf_plan_stage)st, &mg[st]);
        stage_memory(&c, &job, &rz.layout, m, (lmf_plan_stage)st, &mz[st]);
    }
    /* 1F1B: pp on the first stage, 1 on the last; GPipe: m on both; ZB-H1: pp on both */
    assert_close(mg[0].activations - m1[0].activations, (m - pp) * layers * per_layer, 1e-9);
    assert_close(mg[1].activations - m1[1].activations, (m - 1) * layers * per_layer, 1e-9);
    assert_close(mz[0].activations, m1[0].activations, 1e-12);
    assert_close(mz[1].activations - m1[1].activations, (pp - 1) * layers * per_layer, 1e-9);

    char cmd[1024];
    lmf_plan_command(cmd, sizeof cmd, &c, &job, &rz);
    assert_non_null(strstr(cmd, " --pp 4 --schedule zb"));
    lmf_plan_command(cmd, sizeof cmd, &c, &job, &r1);
    assert_null(strstr(cmd, "--schedule"));

    lmf_plan_result r;
    l.virtual_stages = 3; /* chunks are the interleaved schedule's */
    assert_int_equal(lmf_plan_evaluate(&c, &job, &l, &r), LMF_ERR_ARG);
    assert_non_null(strstr(lmf_last_error(), "the zb schedule runs one model chunk"));
    l.virtual_stages = 1;
    l.schedule = LMF_PP_INTERLEAVED;
    assert_int_equal(lmf_plan_evaluate(&c, &job, &l, &r), LMF_ERR_ARG);
    assert_non_null(strstr(lmf_last_error(), "--virtual-stages"));
    l.schedule = (lmf_pp_schedule)9;
    assert_int_equal(lmf_plan_evaluate(&c, &job, &l, &r), LMF_ERR_ARG);
}

/* Data-parallel gradient reduction, ZeRO-0, no overlap: one ring all-reduce of the 2-byte
 * gradients of every parameter, between the two nodes (one member per node, 4 rings). */
static void test_dp_reduction(void **state) {
    lmf_cluster c = toy_cluster();
    lmf_gpt_config cfg;
    lmf_plan_job job = gpt2_job(8.0, &cfg); /* 12 layers, 1024 tokens per sequence */
    lmf_plan_layout l = {.dp = 2, .tp = 4, .pp = 1, .micro_batch = 1, .zero = 0,
                         .recompute = LMF_RECOMPUTE_NONE, .dtype = LMF_PLAN_BF16,
                         .sequence_parallel = 1};
    lmf_plan_result r;
    assert_int_equal(lmf_plan_evaluate(&c, &job, &l, &r), LMF_OK);
    double h = cfg.n_embd, L = cfg.n_layer, vp = lmf_config_padded_vocab(&cfg);
    double P = L * ((12 * h * h + 7 * h) / 4 + 6 * h) + vp / 4 * h + cfg.n_positions * h + 2 * h;
    double S = 2.0 * P, bw = 40e9 / 4;
    assert_close(r.time.dp_comm_total, 2.0 * 1 / 2 * S / bw, 1e-9);
    assert_close(r.time.dp_comm, r.time.dp_comm_total, 1e-12); /* overlap 0 */
    c.overlap_dp = 1.0; /* the last micro-batch's backward hides it in part or whole */
    lmf_plan_result r2;
    assert_int_equal(lmf_plan_evaluate(&c, &job, &l, &r2), LMF_OK);
    assert_true(r2.time.dp_comm < r.time.dp_comm);
    assert_close(r2.time.dp_comm_total, r.time.dp_comm_total, 1e-12);
}

/* Narayanan et al. 2021, Sec. 5.1: GPT-3 175B, 300B tokens, 1,024 A100s at X = 140 TFLOP/s
 * per GPU: time = 8TP/(nX), about 34 days. The planner, with their layout (tp 8, pp 8,
 * dp 16, batch 1536, micro-batch 1, full recomputation), must land within 15%. */
static void test_narayanan_anchor(void **state) {
    lmf_cluster c;
    assert_int_equal(lmf_cluster_resolve("dgx-a100-superpod", &c), LMF_OK);
    c.nodes = 128;
    lmf_gpt_config cfg;
    assert_int_equal(lmf_config_preset("gpt3-175b", &cfg), LMF_OK);
    lmf_plan_job job;
    lmf_plan_job_defaults(&job, "gpt3-175b", &cfg);
    double B = 1536, s = 2048, T = 300e9, n = 1024, X = 140e12;
    job.global_batch_tokens = B * s;
    job.total_tokens = T;
    lmf_plan_layout l = {.dp = 16, .tp = 8, .pp = 8, .micro_batch = 1, .zero = 0,
                         .recompute = LMF_RECOMPUTE_FULL, .dtype = LMF_PLAN_BF16,
                         .sequence_parallel = 1};
    lmf_plan_result r;
    assert_int_equal(lmf_plan_evaluate(&c, &job, &l, &r), LMF_OK);
    assert_true(r.mem.fits);
    double l_ = cfg.n_layer, h = cfg.n_embd, V = cfg.vocab_size;
    /* parameters: their Sec. 5.1 count, 12lh^2 (1 + 13/(12h) + (V + s)/(12lh)) */
    double P = 12 * l_ * h * h * (1 + 13 / (12 * h) + (V + s) / (12 * l_ * h));
    double days = 8.0 * T * P / (n * X) / 86400.0;
    assert_true(days > 33.0 && days < 35.0); /* "about 34 days" */
    if (REL(r.days, days) > 0.15) fail_msg("planner %.2f days vs Narayanan %.2f days", r.days, days);
    /* their FLOPs per iteration with recomputation: 96 B s l h^2 (1 + s/(6h) + V/(16lh)) */
    double F = 96 * B * s * l_ * h * h * (1 + s / (6 * h) + V / (16 * l_ * h));
    double hw = r.hardware_tflops_per_device * 1e12 * r.devices * r.time.step;
    assert_close(hw, F, 0.01);
    /* and their model FLOPs: 3/4 of that without recomputation of the layers */
    double model = r.model_tflops_per_device * 1e12 * r.devices * r.time.step;
    assert_close(model, 72 * B * s * l_ * h * h * (1 + s / (6 * h) + V / (12 * l_ * h)), 0.01);
}

/* Interleaved 1F1B (Narayanan et al. 2021, Sec. 2.2.2): with v model chunks per rank the
 * bubble is (pp - 1)/v slots and each micro-batch crosses 2v stage boundaries per rank; the
 * first rank keeps L(1 + (p - 1)/(pv)) layers' activations (Korthikanti et al. 2022) instead of
 * L. Expected values from those formulas and the plain schedule's own terms. */
static void test_interleaved(void **state) {
    lmf_cluster c = toy_cluster();
    lmf_gpt_config cfg;
    lmf_plan_job job = gpt2_job(16.0, &cfg); /* 12 layers, 1024 tokens per sequence */
    int pp = 2, m = 8;
    lmf_plan_layout l = pipeline_layout(pp);
    lmf_plan_result r1, r3;
    assert_int_equal(lmf_plan_evaluate(&c, &job, &l, &r1), LMF_OK);
    l.virtual_stages = 3;
    assert_int_equal(lmf_plan_evaluate(&c, &job, &l, &r3), LMF_OK);
    assert_int_equal(r3.micro_batches, m);
    assert_int_equal(r3.layout.virtual_stages, 3);
    assert_close(r3.time.compute, r1.time.compute, 1e-12);
    /* both stages are ends of the pipeline: 2v - 1 sends per micro-batch (the model's first
     * chunk sends no gradient back, its last no activation on), 5 instead of 1; a fill or drain
     * slot holds a chunk's 2v sends, and there are (pp - 1)/v of them */
    double send = 2.0 * 1024 * 768 * 2 / 100e9;
    assert_close(r1.time.pp_comm, m * send, 1e-12);
    assert_close(r3.time.pp_comm, m * 5.0 * send, 1e-12);
    assert_close(r3.time.bubble, r1.time.bubble / 3.0 + (pp - 1) / 3.0 * (6.0 - 2.0) * send, 1e-12);
    assert_close(r3.time.bubble_fraction, (pp - 1) / (3.0 * m + pp - 1), 1e-12);
    /* activations of the first stage: (pp + (pp-1)/v) instead of pp micro-batches in flight;
     * of the last: Megatron-LM's warm-up of (v-1) pp chunks plus one, ((v-1) pp + 1)/v
     * micro-batches of its layers, instead of 1F1B's one */
    lmf_plan_act_shape sh = {.s = 1024, .b = 2, .h = 768, .a = 12, .t = 1, .sp = 0, .e = 2.0, .dropout = 0};
    double per_layer = lmf_plan_act_layer_bytes(&sh, LMF_RECOMPUTE_NONE);
    double layers = cfg.n_layer / (double)pp;
    lmf_plan_memory m1[2], m3[2];
    for (int st = 0; st < 2; st++) {
        stage_memory(&c, &job, &r1.layout, m, (lmf_plan_stage)st, &m1[st]);
        stage_memory(&c, &job, &r3.layout, m, (lmf_plan_stage)st, &m3[st]);
    }
    assert_int_equal(r1.mem.stage, LMF_PLAN_STAGE_FIRST);
    assert_close(m3[LMF_PLAN_STAGE_FIRST].activations - m1[LMF_PLAN_STAGE_FIRST].activations,
                 (pp - 1) / 3.0 * layers * per_layer, 1e-9);
    assert_close(m3[LMF_PLAN_STAGE_LAST].activations - m1[LMF_PLAN_STAGE_LAST].activations,
                 ((2.0 * pp + 1) / 3.0 - 1.0) * layers * per_layer, 1e-9);
    assert_int_equal(r3.mem.stage, LMF_PLAN_STAGE_LAST); /* the logits and 5/3 micro-batches */
    assert_close(r3.mem.total, m3[LMF_PLAN_STAGE_LAST].total, 1e-12);
    /* impossible interleavings */
    l.virtual_stages = 5; /* 5 chunks do not split a stage's 6 layers */
    lmf_plan_result r;
    assert_int_equal(lmf_plan_evaluate(&c, &job, &l, &r), LMF_ERR_ARG);
    assert_non_null(strstr(lmf_last_error(), "5 virtual stages do not split the fullest stage's 6 layers"));
    l.virtual_stages = 2;
    l.pp = 1;
    assert_int_equal(lmf_plan_evaluate(&c, &job, &l, &r), LMF_ERR_ARG);
    assert_non_null(strstr(lmf_last_error(), "need pipeline parallelism"));
    l.pp = 3;
    l.micro_batch = 8; /* 2 micro-batches, not a multiple of pp = 3 */
    assert_int_equal(lmf_plan_evaluate(&c, &job, &l, &r), LMF_ERR_ARG);
    assert_non_null(strstr(lmf_last_error(), "multiple of pp"));
}

/* Megatron-LM's scatter/gather (Narayanan et al. 2021, Sec. 4.1): without sequence
 * parallelism each of the t ranks sends 1/t of the boundary activation to the next stage, and
 * the receiving node all-gathers the parts over its tp group. */
static void test_scatter_gather(void **state) {
    lmf_cluster c = toy_cluster();
    c.nodes = 4;
    lmf_gpt_config cfg;
    lmf_plan_job job = gpt2_job(8.0, &cfg); /* 12 layers, 1024 tokens per sequence */
    lmf_plan_layout l = {.dp = 1, .tp = 4, .pp = 4, .micro_batch = 1, .zero = 0,
                         .recompute = LMF_RECOMPUTE_NONE, .dtype = LMF_PLAN_BF16,
                         .sequence_parallel = 0};
    lmf_plan_result r;
    assert_int_equal(lmf_plan_evaluate(&c, &job, &l, &r), LMF_OK);
    double S = 1024.0 * 768 * 2;  /* one micro-batch's boundary activation, bytes */
    double net = 40e9 / 4;        /* a node's 4 devices send at once over its 40 GB/s */
    double send = S / 4 / net + 3.0 / 4 * S / 100e9; /* 1/t over the network, all-gather in node */
    /* the bubble's slots hold two sends each (pp - 1 = 3 slots, no tensor-parallel time in a
     * slot beyond the step's own per micro-batch) */
    double tp_mb = r.time.tp_comm / r.micro_batches;
    lmf_plan_setup su;
    assert_int_equal(lmf_plan_setup_init(&su, &c, &job, &r.layout), LMF_OK);
    lmf_plan_micro mb;
    lmf_plan_generic_micro_batch(&su, &mb);
    assert_close(r.time.bubble, 3.0 * (mb.compute_layers + tp_mb + 2.0 * send), 1e-12);
    l.sequence_parallel = 1; /* already split: no all-gather */
    assert_int_equal(lmf_plan_evaluate(&c, &job, &l, &r), LMF_OK);
    assert_int_equal(lmf_plan_setup_init(&su, &c, &job, &r.layout), LMF_OK);
    lmf_plan_generic_micro_batch(&su, &mb);
    tp_mb = r.time.tp_comm / r.micro_batches;
    assert_close(r.time.bubble, 3.0 * (mb.compute_layers + tp_mb + 2.0 * S / 4 / net), 1e-12);
}

/* Context parallelism (--cp N): the sequence split over N devices. Expected values from first
 * principles: activations per device / N, tokens per device / N, the ring's K/V blocks of
 * b*(s/N)*2h*e/t bytes, N - 1 steps forward and backward (twice the bytes), each hidden behind
 * 1/N of the attention core (twice that backward). */
static void test_context_parallel(void **state) {
    lmf_cluster c = toy_cluster(); /* 2 nodes x 4 devices */
    c.intra_bandwidth = 5e9;       /* slow enough that part of the exchange shows */
    lmf_gpt_config cfg = {.n_layer = 4, .n_head = 8, .n_embd = 1024, .n_positions = 8192,
                          .vocab_size = 1000};
    lmf_plan_job job;
    lmf_plan_job_defaults(&job, "long", &cfg);
    job.global_batch_tokens = 2.0 * 8192;
    lmf_plan_layout l = {.dp = 2, .tp = 1, .pp = 1, .micro_batch = 1, .zero = 0,
                         .recompute = LMF_RECOMPUTE_NONE, .dtype = LMF_PLAN_BF16, .cp = 1};
    lmf_plan_result r1, r4;
    assert_int_equal(lmf_plan_evaluate(&c, &job, &l, &r1), LMF_OK);
    l.cp = 4;
    assert_int_equal(lmf_plan_evaluate(&c, &job, &l, &r4), LMF_OK);
    assert_int_equal(r4.devices, 8);
    assert_int_equal(r4.micro_batches, 1);
    /* memory: activations / 4; weights, gradients, optimizer state unchanged (ZeRO-0) */
    assert_close(r4.mem.activations, r1.mem.activations / 4, 1e-12);
    assert_close(r4.mem.weights + r4.mem.grads + r4.mem.optimizer,
                 r1.mem.weights + r1.mem.grads + r1.mem.optimizer, 1e-12);
    /* by hand: one layer, bf16, s = 8192, s/cp = 2048 tokens per device */
    double s = 8192, cp = 4, sq = s / cp, h = 1024, a = 8, hd = h / a, e = 2, bw = 5e9;
    double peak = 100e12;
    /* the toy device has no curve: 0.5 of peak for every product */
    /* products at 0.5 of peak; the fused softmax reads the scores and writes the probabilities */
    double core = (2.0 * 2 * sq * sq * hd * a * cp) / (peak * 0.5) + sq * e * 2 * a * s / 1e12;
    double block = sq * 2 * h * e; /* K and V of 2048 tokens */
    double fwd = block / bw, bwd = 2 * block / bw;
    double want_total = (cp - 1) * (fwd + bwd) * cfg.n_layer;
    double want_exposed = (cp - 1) * (fmax(0, fwd - core / cp) + fmax(0, bwd - 2 * core / cp)) * cfg.n_layer;
    assert_close(r4.time.cp_comm_total, want_total, 1e-9);
    assert_close(r4.time.cp_comm, want_exposed, 1e-9);
    assert_true(r4.time.cp_comm > 0.0 && r4.time.cp_comm < r4.time.cp_comm_total);
    /* the products run on a quarter of the tokens; the attention core is cp blocks of s/cp */
    lmf_plan_setup su;
    assert_int_equal(lmf_plan_setup_init(&su, &c, &job, &r4.layout), LMF_OK);
    lmf_plan_micro mb;
    lmf_plan_generic_micro_batch(&su, &mb);
    assert_close(mb.attention_core, core, 1e-9);
    /* gradients reduce over the dp x cp = 8 devices that hold the same weights */
    double P = (double)lmf_config_num_params(&cfg) - (double)cfg.vocab_size * h +
               (double)lmf_config_padded_vocab(&cfg) * h;
    double ring_bw = 5e9; /* 8 devices in one ring, 4 on each node: the whole 40 GB/s NIC, but
                             no more than the 5 GB/s inside a node */
    assert_close(r4.time.dp_comm_total, 2.0 * 7 / 8 * P * 2 / ring_bw, 1e-9);
    /* recomputation runs the forward ring once more */
    l.recompute = LMF_RECOMPUTE_FULL;
    lmf_plan_result rf;
    assert_int_equal(lmf_plan_evaluate(&c, &job, &l, &rf), LMF_OK);
    assert_close(rf.time.cp_comm_total, (cp - 1) * (2 * fwd + bwd) * cfg.n_layer, 1e-9);
    /* bad layouts */
    l.cp = 3;
    lmf_plan_result r;
    assert_int_equal(lmf_plan_evaluate(&c, &job, &l, &r), LMF_ERR_ARG);
    assert_non_null(strstr(lmf_last_error(), "does not divide the sequence length 8192"));
    l.cp = 8; /* 2 x 8 = 16 devices */
    assert_int_equal(lmf_plan_evaluate(&c, &job, &l, &r), LMF_ERR_ARG);
    assert_non_null(strstr(lmf_last_error(), "dp x tp x pp x cp = 16"));
}

/* Narayanan et al. 2021, Table 1: the weak-scaling rows, each with the paper's layout as its
 * artifact runs it (NVIDIA/Megatron-LM examples/sc21/run_table_1.sh: tensor and pipeline sizes,
 * micro-batch, layers per virtual stage), fp16 without sequence parallelism (which came later,
 * Korthikanti et al. 2022), full recomputation, vocabulary 51,200, sequence 2048. Their
 * TFLOP/s per GPU count recomputation: the planner's hardware figure. Nothing in the planner
 * was fitted to this table (the A100's GEMM efficiency comes from another measurement,
 * test_korthikanti_layer). Every row must be within 5% of the paper (the 1T row is 4.97% low:
 * docs/planner.md, "Megatron-LM 2021, Table 1"). */
static void test_megatron_table1(void **state) {
    static const struct {
        double billions;
        int heads, hidden, layers, tp, pp, gpus, batch, mbs, v;
        double tflops, bound;
    } rows[] = {
        {1.7, 24, 2304, 24, 1, 1, 32, 512, 16, 1, 137, 0.05},
        {3.6, 32, 3072, 30, 2, 1, 64, 512, 16, 1, 138, 0.05},
        {7.5, 32, 4096, 36, 4, 1, 128, 512, 16, 1, 142, 0.05},
        {18.4, 48, 6144, 40, 8, 1, 256, 1024, 8, 1, 135, 0.05},
        {39.1, 64, 8192, 48, 8, 2, 512, 1536, 4, 1, 138, 0.05},
        {76.1, 80, 10240, 60, 8, 4, 1024, 1792, 2, 3, 140, 0.05},
        {145.6, 96, 12288, 80, 8, 8, 1536, 2304, 2, 2, 148, 0.05},
        {310.1, 128, 16384, 96, 8, 16, 1920, 2160, 1, 2, 155, 0.05},
        {529.6, 128, 20480, 105, 8, 35, 2520, 2520, 1, 3, 163, 0.05},
        {1008.0, 160, 25600, 128, 8, 64, 3072, 3072, 1, 1, 163, 0.05},
    };
    lmf_cluster c;
    assert_int_equal(lmf_cluster_resolve("dgx-a100-superpod", &c), LMF_OK);
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        lmf_gpt_config cfg = {.n_layer = rows[i].layers, .n_head = rows[i].heads,
                              .n_embd = rows[i].hidden, .n_positions = 2048, .vocab_size = 51200};
        assert_close((double)lmf_config_num_params(&cfg), rows[i].billions * 1e9, 0.03);
        c.nodes = rows[i].gpus / 8;
        lmf_plan_job job;
        lmf_plan_job_defaults(&job, "table1", &cfg);
        job.global_batch_tokens = rows[i].batch * 2048.0;
        job.dropout = 1; /* Megatron-LM's defaults: attention and hidden dropout */
        lmf_plan_layout l = {.dp = rows[i].gpus / (rows[i].tp * rows[i].pp), .tp = rows[i].tp,
                             .pp = rows[i].pp, .micro_batch = rows[i].mbs, .zero = 0,
                             .recompute = LMF_RECOMPUTE_FULL, .dtype = LMF_PLAN_FP16,
                             .sequence_parallel = 0, .virtual_stages = rows[i].v, .cp = 1};
        lmf_plan_result r;
        if (lmf_plan_evaluate(&c, &job, &l, &r) != LMF_OK) fail_msg("row %zu: %s", i, lmf_last_error());
        assert_true(r.mem.fits);
        assert_int_equal(r.global_batch, rows[i].batch);
        double got = r.hardware_tflops_per_device;
        printf("Table 1 %7.1fB: planner %.1f TFLOP/s per GPU, paper %.0f (%+.1f%%)\n", rows[i].billions,
               got, rows[i].tflops, 100.0 * (got - rows[i].tflops) / rows[i].tflops);
        if (REL(got, rows[i].tflops) > rows[i].bound)
            fail_msg("%.1fB: planner %.1f TFLOP/s per GPU, paper %.0f: off by more than %.0f%%",
                     rows[i].billions, got, rows[i].tflops, 100.0 * rows[i].bound);
    }
}

/* The A100 preset's GEMM efficiency comes from one measured layer, not from Table 1:
 * Korthikanti et al. 2022 ("Reducing Activation Recomputation in Large Transformer Models",
 * arXiv 2205.05198), Table 4, first row: one layer of their 22B model (h 6144, 64 heads, tp 8,
 * micro-batch 4, sequence 2048, mixed precision, Megatron-LM's dropout, no recomputation) took
 * 7.7 ms forward and 11.9 ms backward on A100 80GB, the backward's tensor-parallel all-reduces
 * overlapped with the weight-gradient products (their Sec. 6.2). The planner's layer (products,
 * attention core, memory-bound kernels) plus the forward's two all-reduces must take that
 * 19.6 ms within 1% (the table rounds to 0.1 ms). */
static void test_korthikanti_layer(void **state) {
    (void)state;
    lmf_cluster c;
    assert_int_equal(lmf_cluster_resolve("dgx-a100-superpod", &c), LMF_OK);
    c.nodes = 1;
    lmf_gpt_config cfg = {.n_layer = 48, .n_head = 64, .n_embd = 6144, .n_positions = 2048,
                          .vocab_size = 51200};
    lmf_plan_job job;
    lmf_plan_job_defaults(&job, "22b", &cfg);
    job.global_batch_tokens = 4 * 2048.0;
    job.dropout = 1;
    lmf_plan_layout l = {.dp = 1, .tp = 8, .pp = 1, .micro_batch = 4, .zero = 0,
                         .recompute = LMF_RECOMPUTE_NONE, .dtype = LMF_PLAN_FP16,
                         .sequence_parallel = 0, .virtual_stages = 1, .cp = 1};
    lmf_plan_setup su;
    assert_int_equal(lmf_plan_setup_init(&su, &c, &job, &l), LMF_OK);
    lmf_plan_micro mb;
    lmf_plan_generic_micro_batch(&su, &mb);
    double layer = mb.compute_layers / cfg.n_layer; /* forward + backward of one layer */
    double bw, lat;
    lmf_plan_group_link(&c, 8, 1, &bw, &lat);
    double fwd_allreduces = 2.0 * lmf_plan_allreduce_time(4 * 2048.0 * 6144 * 2, 8, bw, lat);
    double got = layer + fwd_allreduces;
    printf("22B layer: planner %.2f ms, Korthikanti et al. 2022 19.6 ms\n", 1e3 * got);
    if (REL(got, 19.6e-3) > 0.01) fail_msg("22B layer: planner %.2f ms, measured 19.6 ms", 1e3 * got);
}

/* Impossible layouts fail with LMF_ERR_ARG and a message naming the problem. */
/* Stages of ceil or floor layers when pp does not divide them: 12 layers over pp = 5 puts 3
 * layers on the fullest stage (12 = 2 x 3 + 3 x 2), the same as each of pp = 4's stages, so the
 * fill and drain run at pp = 4's pace; the last stage holds 2 layers and the output layer (the
 * lighter stages at the ends, as the Llama 3 paper balances its pipeline), one layer less than
 * pp = 4's last stage. Memory counts the first stage with the fullest stage's 3 layers (an
 * upper bound): its weights, 3 layers and the embeddings, are counted here by hand; its activations hold min(pp, m) = 5 micro-batches of 3
 * layers instead of 4. Interleaving needs the fullest stage's layers in equal chunks. */
static void test_uneven_stages(void **state) {
    (void)state;
    lmf_cluster c = toy_cluster();
    lmf_gpt_config cfg;
    lmf_plan_job job = gpt2_job(16.0, &cfg); /* 12 layers */
    assert_close(lmf_plan_stage_layers(&cfg, 5), 3.0, 0.0);
    assert_close(lmf_plan_stage_layers(&cfg, 7), 2.0, 0.0);
    assert_close(lmf_plan_stage_layers(&cfg, 12), 1.0, 0.0);
    lmf_plan_layout l = {.dp = 1, .tp = 1, .pp = 4, .micro_batch = 1, .zero = 0,
                         .recompute = LMF_RECOMPUTE_NONE, .dtype = LMF_PLAN_BF16};
    lmf_plan_result r4, r5;
    assert_int_equal(lmf_plan_evaluate(&c, &job, &l, &r4), LMF_OK);
    l.pp = 5;
    assert_int_equal(lmf_plan_evaluate(&c, &job, &l, &r5), LMF_OK);
    assert_int_equal(r5.micro_batches, 16);
    /* the last stage is a lighter one, 2 layers and the output layer (3 + it over pp = 4) */
    lmf_plan_setup su;
    assert_int_equal(lmf_plan_setup_init(&su, &c, &job, &r4.layout), LMF_OK);
    lmf_plan_micro mb4;
    lmf_plan_generic_micro_batch(&su, &mb4);
    double one_layer = mb4.compute_layers / 3.0;
    assert_close(r5.time.compute, r4.time.compute - 16 * one_layer, 1e-12);
    double h = cfg.n_embd;
    double layer = 12.0 * h * h + 13.0 * h; /* GPT-2 block: 4 matrices, biases, 2 LayerNorms */
    double embed = (double)lmf_config_padded_vocab(&cfg) * h + (double)cfg.n_positions * h;
    assert_int_equal(r5.mem.stage, LMF_PLAN_STAGE_FIRST);
    assert_close(r5.mem.weights, 2.0 * (3.0 * layer + embed), 1e-12);
    assert_close(r5.mem.weights, r4.mem.weights, 1e-12);
    lmf_plan_act_shape sh = {.s = 1024, .b = 1, .h = 768, .a = 12, .t = 1, .sp = 0, .e = 2.0, .dropout = 0};
    double per_layer = lmf_plan_act_layer_bytes(&sh, LMF_RECOMPUTE_NONE);
    assert_close(r5.mem.activations - r4.mem.activations, (5 - 4) * 3.0 * per_layer, 1e-9);
    /* Llama 3 405B over pp 16: 126 = 14 x 8 + 2 x 7 layers; chunks of 4, 2 or 1 layers */
    lmf_gpt_config big;
    assert_int_equal(lmf_config_preset("llama3-405b", &big), LMF_OK);
    assert_close(lmf_plan_stage_layers(&big, 16), 8.0, 0.0);
    assert_true(lmf_plan_chunks_fit(&big, 16, 2) && lmf_plan_chunks_fit(&big, 16, 4));
    assert_false(lmf_plan_chunks_fit(&big, 16, 3)); /* 8 layers are not 3 equal chunks */
    assert_false(lmf_plan_chunks_fit(&big, 16, 8)); /* 128 chunks for 126 layers */
    /* pp = 5 with v = 3: 15 chunks for 12 layers */
    l.virtual_stages = 3;
    l.micro_batch = 2;
    job.global_batch_tokens = 20.0 * 1024; /* 10 micro-batches, a multiple of pp */
    assert_int_equal(lmf_plan_evaluate(&c, &job, &l, &r5), LMF_ERR_ARG);
    assert_non_null(strstr(lmf_last_error(), "3 virtual stages do not split the fullest stage's 3 layers"));
}

/* Llama 3 405B on H100s as the Llama 3 paper trained it (Llama Team 2024, "The Llama 3 Herd of
 * Models", arXiv 2407.21783, Table 4): per row the GPUs, tp, cp, pp, dp, sequence, sequences
 * per replica and the published TFLOP/s per GPU and BF16 MFU. The planner searches the rest
 * (micro-batch, schedule, ZeRO, recomputation) with the paper's tp, cp, pp, dp fixed, on the
 * h100-cluster preset with the node count of the row, with a fused causal attention kernel
 * (--attention flash). The bounds hold today's predictions within 1.5 points (docs/planner.md
 * says where and why they differ from the paper), so a change of the model shows here and in
 * the docs' table together. */
static void test_llama3_table4(void **state) {
    (void)state;
    struct {
        int gpus, tp, cp, pp, dp, seq, per_dp;
        double paper_tflops, paper_mfu, planner_mfu;
    } rows[] = {
        {8192, 8, 1, 16, 64, 8192, 32, 430, 0.43, 0.346},
        {16384, 8, 1, 16, 128, 8192, 16, 400, 0.41, 0.394},
        {16384, 8, 16, 16, 8, 131072, 16, 380, 0.38, 0.555},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        lmf_cluster c;
        if (lmf_cluster_resolve("h100-cluster", &c) != LMF_OK) fail_msg("%s", lmf_last_error());
        assert_int_equal(c.devices_per_node, 8);
        c.nodes = rows[i].gpus / c.devices_per_node;
        lmf_gpt_config cfg;
        assert_int_equal(lmf_config_preset("llama3-405b", &cfg), LMF_OK);
        cfg.n_positions = rows[i].seq; /* the 128K row: the long-context stage */
        lmf_plan_job job;
        lmf_plan_job_defaults(&job, "llama3-405b", &cfg);
        job.seq = rows[i].seq;
        job.global_batch_tokens = (double)rows[i].dp * rows[i].per_dp * rows[i].seq;
        job.attention = LMF_PLAN_ATTN_FLASH;
        lmf_plan_constraints k;
        lmf_plan_constraints_free(&k, &c);
        k.tp = rows[i].tp;
        k.cp = rows[i].cp;
        k.pp = rows[i].pp;
        k.dp = rows[i].dp;
        k.virtual_stages = 0;
        /* the schedules of the paper's time: 1F1B and interleaved 1F1B, its chunks searched */
        k.schedules = (1u << LMF_PP_1F1B) | (1u << LMF_PP_INTERLEAVED);
        lmf_plan_result best[1];
        int n = 0;
        int64_t evaluated = 0;
        if (lmf_plan_search(&c, &job, &k, best, 1, &n, &evaluated) != LMF_OK)
            fail_msg("row %zu: %s", i, lmf_last_error());
        const lmf_plan_result *r = &best[0];
        assert_int_equal(r->devices, rows[i].gpus);
        assert_true(r->mem.fits);
        /* 16M tokens per step, as the paper's rows */
        assert_int_equal(r->global_batch, (int64_t)rows[i].dp * rows[i].per_dp);
        /* MFU is model TFLOP/s over the 989 TFLOP/s bf16 peak */
        assert_close(r->mfu, r->model_tflops_per_device / 989.0, 1e-9);
        printf("Table 4 row %zu: planner %.1f TFLOP/s per GPU (MFU %.3f), paper %.0f (%.2f)\n", i,
               r->model_tflops_per_device, r->mfu, rows[i].paper_tflops, rows[i].paper_mfu);
        if (fabs(r->mfu - rows[i].planner_mfu) > 0.015)
            fail_msg("row %zu: planner MFU %.3f drifted from %.3f (paper %.2f, %.0f TFLOP/s)", i, r->mfu,
                     rows[i].planner_mfu, rows[i].paper_mfu, rows[i].paper_tflops);
        /* never above the published run by more than the 5% asked of Megatron-LM's table;
         * the 128K row is an open exception: the planner predicts 1.44x the paper counting the
         * whole score matrix in the model FLOPs, 1.03x counting its causal half, which the fused
         * kernel computes (docs/planner.md, "Llama 3 405B") */
        assert_true(r->model_tflops_per_device < (i == 2 ? 1.5 : 1.05) * rows[i].paper_tflops);
    }
}

static void test_bad_layouts(void **state) {
    lmf_cluster c = toy_cluster();
    lmf_gpt_config cfg;
    assert_int_equal(lmf_config_preset("gpt2", &cfg), LMF_OK);
    lmf_plan_job job;
    lmf_plan_job_defaults(&job, "gpt2", &cfg);
    lmf_plan_layout ok = {.dp = 2, .tp = 4, .pp = 1, .micro_batch = 1, .zero = 0,
                          .recompute = LMF_RECOMPUTE_NONE, .dtype = LMF_PLAN_BF16};
    lmf_plan_result r;
    assert_int_equal(lmf_plan_evaluate(&c, &job, &ok, &r), LMF_OK);
    struct {
        lmf_plan_layout l;
        const char *msg;
    } bad[] = {
        {{2, 5, 1, 1, 0, LMF_RECOMPUTE_NONE, LMF_PLAN_BF16, 0, 1, 1}, "does not divide the model's 12 attention heads"},
        {{1, 1, 13, 1, 0, LMF_RECOMPUTE_NONE, LMF_PLAN_BF16, 0, 1, 1}, "size 13 exceeds the model's 12 layers"},
        {{4, 4, 1, 1, 0, LMF_RECOMPUTE_NONE, LMF_PLAN_BF16, 0, 1, 1}, "16 devices"},
        {{2, 4, 1, 1, 0, LMF_RECOMPUTE_NONE, LMF_PLAN_FP8, 0, 1, 1}, "no fp8 peak"},
        {{2, 4, 1, 1, 4, LMF_RECOMPUTE_NONE, LMF_PLAN_BF16, 0, 1, 1}, "ZeRO stage"},
        {{2, 4, 1, 0, 0, LMF_RECOMPUTE_NONE, LMF_PLAN_BF16, 0, 1, 1}, "at least 1"},
        {{2, 4, 1, 300, 0, LMF_RECOMPUTE_NONE, LMF_PLAN_BF16, 0, 1, 1}, "whole micro-batches"},
    };
    /* ZeRO-3 over a pipeline stage's replicas is a layout (the trainer runs it): the stage's
     * weights sharded over its dp 2, their gathers priced */
    lmf_plan_layout z3 = {2, 1, 2, 1, 3, LMF_RECOMPUTE_NONE, LMF_PLAN_BF16, 0, 1, 1}, z0 = z3;
    z0.zero = 0;
    lmf_plan_result r3;
    assert_int_equal(lmf_plan_evaluate(&c, &job, &z3, &r3), LMF_OK);
    assert_int_equal(lmf_plan_evaluate(&c, &job, &z0, &r), LMF_OK);
    assert_true(r3.mem.weights < 0.51 * r.mem.weights && r3.mem.weights > 0.49 * r.mem.weights);
    assert_true(r3.time.zero3_gather_total > 0.0 && r.time.zero3_gather_total == 0.0);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(lmf_plan_evaluate(&c, &job, &bad[i].l, &r), LMF_ERR_ARG);
        if (!strstr(lmf_last_error(), bad[i].msg))
            fail_msg("case %zu: message '%s' lacks '%s'", i, lmf_last_error(), bad[i].msg);
        assert_null(strchr(lmf_last_error(), '\n'));
    }
    /* a single plan must use the whole cluster */
    lmf_plan_constraints k;
    lmf_plan_constraints_free(&k, &c);
    k.dp = 1;
    k.tp = 4;
    assert_int_equal(lmf_plan_single(&c, &job, &k, &r), LMF_ERR_ARG);
    assert_non_null(strstr(lmf_last_error(), "has 8 devices"));
    k.dp = -1;
    k.tp = 3;
    assert_int_equal(lmf_plan_single(&c, &job, &k, &r), LMF_ERR_ARG);
    job.seq = 4096;
    k.tp = 4;
    assert_int_equal(lmf_plan_single(&c, &job, &k, &r), LMF_ERR_ARG);
    assert_non_null(strstr(lmf_last_error(), "n_positions"));
}

/* lmf_gpt_activation_floats is what lmf_gpt_reserve allocates, for both kernel tables, every
 * recomputation mode, inference and training with and without the own gradient block */
static void test_activation_floats(void **state) {
    (void)state;
    lmf_threads_set(2);
    const lmf_gpt_config cfgs[] = {{2, 2, 64, 64, 256}, {3, 4, 96, 128, 1000}};
    const lmf_kernels *tables[] = {lmf_kernels_fast(), lmf_kernels_ref()};
    for (int ci = 0; ci < 2; ci++)
        for (int ti = 0; ti < 2; ti++)
            for (int rc = 0; rc < 3; rc++)
                for (int training = 0; training < 3; training++) {
                    lmf_gpt *m = NULL;
                    assert_int_equal(lmf_gpt_create(&cfgs[ci], tables[ti], &m), LMF_OK);
                    lmf_gpt_set_recompute(m, (lmf_recompute)rc);
                    int B = 3, T = cfgs[ci].n_positions / 2;
                    assert_int_equal(lmf_gpt_reserve(m, B, T, (lmf_reserve_mode)training), LMF_OK);
                    size_t want = 4 * lmf_gpt_activation_floats(&cfgs[ci], tables[ti], B, T,
                                                                (lmf_reserve_mode)training, (lmf_recompute)rc);
                    if (training == 1) want += 4 * lmf_gpt_layout(m)->total; /* own gradients */
                    assert_int_equal(lmf_gpt_activation_bytes(m), want);
                    lmf_gpt_free(m);
                }
}

/* Fused causal attention on the generic device (--attention flash), counted here by hand on
 * the toy device (every product at half its 100 TFLOP/s peak, 1 TB/s): the attention core does
 * the model's causal FLOPs (forward 2bhs(s+1), backward 2.5 times), moves no scores through
 * memory and keeps only a log-sum-exp per query row and head; selective recomputation then has
 * nothing to redo. */
static void test_flash_attention(void **state) {
    (void)state;
    lmf_cluster c = toy_cluster();
    lmf_gpt_config cfg = {.n_layer = 4, .n_head = 8, .n_embd = 1024, .n_positions = 4096,
                          .vocab_size = 1000};
    lmf_plan_job job;
    lmf_plan_job_defaults(&job, "flash", &cfg);
    job.global_batch_tokens = 4.0 * 4096;
    lmf_plan_layout l = {.dp = 2, .tp = 2, .pp = 1, .micro_batch = 1, .zero = 0,
                         .recompute = LMF_RECOMPUTE_NONE, .dtype = LMF_PLAN_BF16, .cp = 1};
    double s = 4096, b = 1, h = 1024, a = 8, t = 2, e = 2, L = 4, peak = 100e12, bw = 1e12;
    lmf_plan_result mat, fl;
    assert_int_equal(lmf_plan_evaluate(&c, &job, &l, &mat), LMF_OK);
    job.attention = LMF_PLAN_ATTN_FLASH;
    assert_int_equal(lmf_plan_evaluate(&c, &job, &l, &fl), LMF_OK);
    /* memory: per layer (L kept and one working) the a*s^2*b*e/t scores give way to a*s*b*4/t */
    assert_close(mat.mem.activations - fl.mem.activations,
                 (L + 1) * (a * s * s * b * e / t - a * s * b * 4 / t), 1e-9);
    /* time of one layer's attention: materialized, 2 products of 4bs^2h/(2t) FLOPs at 0.5 of
     * peak forward, twice that backward, and the softmax's 2 passes forward and 3 backward over
     * the a/t x s x s scores; fused, the causal FLOPs at 0.5 of peak */
    double mat_att = 3.0 * (4 * b * s * s * h / t) / (peak * 0.5) + (2 + 3) * e * (a / t) * s * s * b / bw;
    double f_fwd = 2 * b * h * s * (s + 1) / t;
    double fl_att = 3.5 * f_fwd / (peak * 0.5);
    double per_mb = L * (mat_att - fl_att);
    assert_int_equal(fl.micro_batches, 2);
    assert_close(mat.time.compute - fl.time.compute, fl.micro_batches * per_mb, 1e-9);
    lmf_plan_setup su;
    assert_int_equal(lmf_plan_setup_init(&su, &c, &job, &fl.layout), LMF_OK);
    lmf_plan_micro mb;
    lmf_plan_generic_micro_batch(&su, &mb);
    assert_close(mb.attention_core, f_fwd / (peak * 0.5), 1e-12);
    /* selective recomputation: nothing to recompute, the same memory and time as none */
    l.recompute = LMF_RECOMPUTE_SELECTIVE;
    lmf_plan_result sel;
    assert_int_equal(lmf_plan_evaluate(&c, &job, &l, &sel), LMF_OK);
    assert_close(sel.time.step, fl.time.step, 1e-12);
    assert_close(sel.mem.activations, fl.mem.activations, 1e-12);
    /* full recomputation re-runs the causal forward: hardware FLOPs add the products and it */
    l.recompute = LMF_RECOMPUTE_FULL;
    lmf_plan_result full;
    assert_int_equal(lmf_plan_evaluate(&c, &job, &l, &full), LMF_OK);
    double lin = 24.0 * b * s * h * h / t; /* GPT-2's four products per layer, 1/t of them */
    double per_device = (full.hardware_tflops_per_device - full.model_tflops_per_device) * 1e12 *
                        full.time.step;
    assert_close(per_device, full.micro_batches * L * (lin + f_fwd), 1e-6);
    /* names */
    assert_int_equal(lmf_plan_attention_parse("flash"), LMF_PLAN_ATTN_FLASH);
    assert_int_equal(lmf_plan_attention_parse("materialized"), LMF_PLAN_ATTN_MATERIALIZED);
    assert_int_equal(lmf_plan_attention_parse("fused"), LMF_PLAN_ATTN_UNKNOWN);
    assert_string_equal(lmf_plan_attention_name(LMF_PLAN_ATTN_FLASH), "flash");
}

/* A calibrated device with round-number rates (GFLOP/s, GB/s). */
static lmf_cluster local_cluster(double rate) {
    lmf_cluster c = toy_cluster();
    c.nodes = 1;
    c.devices_per_node = 2;
    lmf_plan_kernel_rates *k = &c.kernels;
    snprintf(k->table, sizeof k->table, "fast");
    k->threads = 1;
    k->rows = 1024;
    lmf_plan_rate_curve *cv[] = {&k->matmul, &k->attention, &k->classifier};
    for (int i = 0; i < 3; i++) {
        cv[i]->n = 2;
        cv[i]->x[0] = 64;
        cv[i]->x[1] = 1024;
        cv[i]->fwd[0] = cv[i]->fwd[1] = cv[i]->bwd[0] = cv[i]->bwd[1] = rate * 1e9;
    }
    for (int e = 0; e < LMF_PLAN_EW_COUNT; e++) k->bandwidth[e] = rate * 1e9;
    k->process_bytes = 50.0 * 1048576.0;
    return c;
}

/* Grouped-query attention in the planner's memory and context-parallel models: the K/V widths
 * are n_kv_head heads wide, taken from the model's description. Counted here by hand for a
 * Llama layer of 8 query heads and 2 key/value heads. */
static void test_gqa_widths(void **state) {
    (void)state;
    lmf_gpt_config cfg = {.n_layer = 2, .n_head = 8, .n_embd = 512, .n_positions = 4096,
                          .vocab_size = 1000, .family = LMF_FAMILY_LLAMA, .n_kv_head = 2,
                          .ffn_hidden = 1376, .rms_norm_eps = 1e-5f, .rope_theta = 10000.0f};
    double h = 512, hd = 64, kv = 2 * hd, F = 1376, s = 4096;
    assert_close(lmf_plan_kv_width(&cfg), 2 * kv, 0.0);
    assert_close(lmf_plan_layer_inner_width(&cfg), h + 2 * kv + 2 * F + h + F, 0.0);
    lmf_gpt_config gpt2;
    assert_int_equal(lmf_config_preset("gpt2", &gpt2), LMF_OK);
    assert_close(lmf_plan_kv_width(&gpt2), 2.0 * 768, 0.0);
    assert_close(lmf_plan_layer_inner_width(&gpt2), 12.0 * 768, 0.0);

    /* generic device, bf16, t = 2 without sequence parallelism, no recomputation: per layer
     * s*b*[4eh + (2h + 2kv + 3F)e/t] + a*s^2*b*e/t, plus the working layer, plus the last
     * stage's final norm input and output and fp32 logits */
    lmf_cluster c = toy_cluster();
    c.devices_per_node = 8;
    c.nodes = 1;
    lmf_plan_job job;
    lmf_plan_job_defaults(&job, "gqa", &cfg);
    job.global_batch_tokens = 2.0 * s;
    lmf_plan_layout l = {.dp = 1, .tp = 2, .pp = 1, .micro_batch = 2, .zero = 0,
                         .recompute = LMF_RECOMPUTE_NONE, .dtype = LMF_PLAN_BF16, .cp = 1};
    lmf_plan_result r;
    assert_int_equal(lmf_plan_evaluate(&c, &job, &l, &r), LMF_OK);
    double b = 2, e = 2, t = 2, a = 8;
    double layer = s * b * (4 * e * h + (2 * h + 2 * kv + 3 * F) * e / t) + a * s * s * b * e / t;
    double Vp = (double)lmf_config_padded_vocab(&cfg);
    double want = 3 * layer + 2 * s * b * h * e + 4 * s * b * ceil(Vp / t);
    assert_close(r.mem.activations, want, 1e-12);

    /* context parallelism sends K and V of the key/value heads: cp = 2 without recomputation,
     * one ring step forward (b*(s/2)*2kv*e/t bytes) and one backward (twice that) per layer
     * and micro-batch */
    c.intra_bandwidth = 1e9; /* slow, so the sends are long */
    l.tp = 1;
    l.cp = 2;
    l.micro_batch = 1;
    assert_int_equal(lmf_plan_evaluate(&c, &job, &l, &r), LMF_OK);
    assert_int_equal(r.micro_batches, 2);
    double block = 1 * (s / 2) * 2 * kv * e / 1;
    assert_close(r.time.cp_comm_total, 2 * cfg.n_layer * (block + 2 * block) / 1e9, 1e-6);

    /* calibrated device (an lmforge run: fp32, t = p = 1): the activations are the model's own
     * allocation for the grouped-query layer, in every recomputation mode */
    lmf_threads_set(1);
    lmf_cluster lc = local_cluster(100.0);
    lmf_plan_job lj;
    lmf_plan_job_defaults(&lj, "gqa", &cfg);
    lj.seq = 256;
    lj.global_batch_tokens = 2 * 2 * 256;
    for (int rc = 0; rc < 3; rc++) {
        lmf_plan_layout ll = {.dp = 2, .tp = 1, .pp = 1, .micro_batch = 2, .zero = 1,
                              .recompute = (lmf_recompute)rc, .dtype = LMF_PLAN_FP32};
        lmf_plan_result lr;
        assert_int_equal(lmf_plan_evaluate(&lc, &lj, &ll, &lr), LMF_OK);
        assert_int_equal(lr.device, LMF_PLAN_DEVICE_CALIBRATED);
        size_t floats = lmf_gpt_activation_floats(&cfg, lmf_kernels_fast(), 2, 256,
                                                  LMF_RESERVE_TRAIN_HOOKED, (lmf_recompute)rc);
        assert_close(lr.mem.activations, 4.0 * (double)floats, 1e-12);
        /* and fewer than the same model with every head a key/value head */
        lmf_gpt_config mha = cfg;
        mha.n_kv_head = 8;
        assert_true(floats < lmf_gpt_activation_floats(&mha, lmf_kernels_fast(), 2, 256,
                                                       LMF_RESERVE_TRAIN_HOOKED,
                                                       (lmf_recompute)rc) ||
                    rc == LMF_RECOMPUTE_FULL);
    }
}

/* A calibrated device of 2 ranks running the `mini` preset (4 layers, width 256, vocabulary
 * 50257 padded to 50304, 256 positions), with its setup as lmf_plan_evaluate makes it. */
static void mini_setup(lmf_cluster *c, lmf_plan_job *job, lmf_plan_layout *l, lmf_plan_setup *s) {
    *c = local_cluster(100.0);
    lmf_gpt_config m;
    assert_int_equal(lmf_config_preset("mini", &m), LMF_OK);
    lmf_plan_job_defaults(job, "mini", &m);
    *l = (lmf_plan_layout){.dp = 2, .tp = 1, .pp = 1, .micro_batch = 1, .zero = 3,
                           .recompute = LMF_RECOMPUTE_NONE, .dtype = LMF_PLAN_FP32};
    assert_int_equal(lmf_plan_setup_init(s, c, job, l), LMF_OK);
    assert_int_equal(s->device->kind, LMF_PLAN_DEVICE_CALIBRATED);
}

/* ZeRO-3 gathers on a calibrated device, counted by hand for `mini`: block 0 once per step,
 * then per micro-step 2L - 1 = 7 layers and the final LayerNorm; 2 ranks move half of each
 * block. */
static void test_block_gathers(void **state) {
    (void)state;
    lmf_cluster c;
    lmf_plan_job job;
    lmf_plan_layout l;
    lmf_plan_setup s;
    mini_setup(&c, &job, &l, &s);
    c.intra_ag_small_bandwidth = c.intra_ag_bandwidth = 1e9;
    lmf_plan_dp_link link = {.all_gather_bw = 1e9, .latency = 0.0, .in_node = 1};
    double blk0 = (50304.0 * 256 + 256.0 * 256) * 4, layer = (12.0 * 256 * 256 + 13 * 256) * 4,
           last = 2.0 * 256 * 4;
    double want = 0.5 * (blk0 + 3 * (7 * layer + last)) / 1e9;
    assert_close(s.device->zero3_gathers(&s, 3, 123.0, &link), want, 1e-12);
    /* without the 4 MiB measurement, or across nodes: the generic gathers, the stage's weights
     * twice per micro-batch */
    c.intra_ag_small_bandwidth = 0.0;
    assert_close(s.device->zero3_gathers(&s, 3, 1e9, &link), 3 * 2 * 0.5 * 1e9 / 1e9, 1e-12);
    c.intra_ag_small_bandwidth = 1e9;
    link.in_node = 0;
    assert_close(s.device->zero3_gathers(&s, 3, 1e9, &link), 3 * 2 * 0.5 * 1e9 / 1e9, 1e-12);

    /* size-dependent rate: a block of 16 MiB (the geometric middle of 4 and 64 MiB) moves at
     * the geometric mean of the two measured rates; blocks below 4 MiB at the 4 MiB rate */
    lmf_gpt_config w = {.n_layer = 1, .n_head = 1, .n_embd = 64, .n_positions = 256,
                        .vocab_size = 16 * 1048576 / (4 * 64) - 256};
    lmf_plan_job_defaults(&job, "w", &w);
    assert_int_equal(lmf_plan_setup_init(&s, &c, &job, &l), LMF_OK);
    c.intra_ag_small_bandwidth = 4e9;
    c.intra_ag_bandwidth = 1e9;
    link.in_node = 1;
    double b0 = (65280.0 * 64 + 256.0 * 64) * 4;
    assert_close(b0, 16.0 * 1048576, 1e-12);
    double layer1 = (12.0 * 64 * 64 + 13 * 64) * 4, last1 = 2.0 * 64 * 4;
    want = 0.5 * b0 / 2e9 + 1 * (0.5 * (layer1 + last1) / 4e9);
    assert_close(s.device->zero3_gathers(&s, 1, 0.0, &link), want, 1e-9);
}

/* The calibrated model: memory items as the engine and the checkpoint writer hold them, and
 * compute from the kernel calls of one training micro-step counted here (gpt.c's forward and
 * backward), each kind at its own rate. */
static void test_local_model(void **state) {
    (void)state;
    lmf_threads_set(1);
    lmf_cluster c = local_cluster(100.0);
    /* distinct rates per kind, so a call priced at the wrong rate shows */
    lmf_plan_kernel_rates *k = &c.kernels;
    for (int i = 0; i < 2; i++) {
        k->matmul.fwd[i] = 100e9;
        k->matmul.bwd[i] = 50e9;
        k->attention.fwd[i] = 40e9;
        k->attention.bwd[i] = 20e9;
        k->classifier.fwd[i] = k->classifier.bwd[i] = 80e9;
    }
    double bw[LMF_PLAN_EW_COUNT];
    for (int e = 0; e < LMF_PLAN_EW_COUNT; e++) bw[e] = k->bandwidth[e] = (10.0 + 3.0 * e) * 1e9;
    assert_int_equal(lmf_cluster_validate(&c), LMF_OK);
    lmf_gpt_config cfg = {4, 4, 256, 256, 50257};
    lmf_plan_job job;
    lmf_plan_job_defaults(&job, "mini", &cfg);
    job.seq = 128;
    job.global_batch_tokens = 2 * 4 * 128;
    lmf_plan_layout l = {.dp = 2, .tp = 1, .pp = 1, .micro_batch = 4, .zero = 2,
                         .recompute = LMF_RECOMPUTE_NONE, .dtype = LMF_PLAN_FP32};
    assert_int_equal(lmf_plan_device_select(&c, &l)->kind, LMF_PLAN_DEVICE_CALIBRATED);
    lmf_plan_result r;
    assert_int_equal(lmf_plan_evaluate(&c, &job, &l, &r), LMF_OK);
    assert_int_equal(r.device, LMF_PLAN_DEVICE_CALIBRATED);
    assert_int_equal(r.micro_batches, 1);
    lmf_param_layout lay;
    assert_int_equal(lmf_layout_build(&cfg, &lay), LMF_OK);
    double P = (double)lay.total, shard = ceil(P / 2);
    assert_close(r.mem.weights, 4 * P, 1e-12);
    assert_close(r.mem.grads, 4 * shard, 1e-12);
    assert_close(r.mem.optimizer, 8 * shard, 1e-12);
    assert_close(r.mem.checkpoint, 12 * shard, 1e-12);
    assert_close(r.mem.process, 50.0 * 1048576.0, 1e-12);
    assert_close(r.mem.activations,
                 4.0 * (double)lmf_gpt_activation_floats(&cfg, lmf_kernels_fast(), 4, 128,
                                                         LMF_RESERVE_TRAIN_HOOKED,
                                                         LMF_RECOMPUTE_NONE), 1e-12);
    /* the engine's buffers at one rank (its own accounting) plus the 4 batch copies of ids */
    lmf_comm *comm = NULL;
    assert_int_equal(lmf_comm_create("single", &comm), LMF_OK);
    for (int zero = 0; zero <= 3; zero++) {
        float *params = calloc(lay.total, sizeof(float));
        lmf_ddp_config dc = {.zero_stage = zero};
        lmf_ddp *d = NULL;
        assert_int_equal(lmf_ddp_create(comm, &lay, &dc, params, &d), LMF_OK);
        lmf_ddp_memory dm;
        lmf_ddp_memory_used(d, &dm);
        lmf_plan_layout l1 = l;
        l1.dp = 1;
        l1.zero = zero;
        lmf_plan_setup s;
        assert_int_equal(lmf_plan_setup_init(&s, &c, &job, &l1), LMF_OK);
        lmf_plan_memory mem;
        s.device->memory(&s, 1, LMF_PLAN_STAGE_FIRST, &mem);
        assert_close(mem.buffers, (double)dm.buffers + 16.0 * 4 * 128, 1e-12);
        /* the optimizer's m and v: 8 bytes per parameter of the (whole, one rank) range */
        assert_close(mem.grads + mem.optimizer, (double)dm.grads + 8.0 * (double)lay.total, 1e-12);
        lmf_ddp_free(d);
        free(params);
    }
    lmf_comm_free(comm);
    lmf_layout_free(&lay);

    /* time, one micro-batch of N = 4 x 128 tokens, C = 256, L = 4, V = 50257 */
    double N = 4.0 * 128, C = 256, L = 4, V = 50257, E = N * C, A = 2.0 * 4 * C * 128 * 129;
    /* products: 12 C^2 weights, 2 FLOPs per weight and token forward, 4 backward */
    assert_close(r.time.matmul, L * (24.0 * N * C * C / 100e9 + 48.0 * N * C * C / 50e9), 1e-12);
    /* causal attention: 2*b*C*s*(s+1) forward, 2.5 times that backward */
    assert_close(r.time.attention, L * (A / 40e9 + 2.5 * A / 20e9), 1e-12);
    assert_close(r.time.classifier, 6.0 * N * C * V / 80e9, 1e-12);
    /* element-wise calls of gpt.c, bytes per value as documented: forward the encoder, layer
     * 0's LayerNorm, 2L residual + LayerNorm passes; backward the residual stream's gradient
     * zeroed once, 1 + 2L LayerNorm backwards, L GELU + bias backwards over 4 N C, the encoder */
    double ew = E * 12 / bw[LMF_PLAN_EW_ENCODER_FWD] + E * 8 / bw[LMF_PLAN_EW_LAYERNORM_FWD] +
                2 * L * E * 16 / bw[LMF_PLAN_EW_RESIDUAL_LN_FWD] + E * 4 / bw[LMF_PLAN_EW_ZERO] +
                (1 + 2 * L) * E * 16 / bw[LMF_PLAN_EW_LAYERNORM_BWD] +
                L * 4 * E * 12 / bw[LMF_PLAN_EW_GELU_BIAS_BWD] + E * 20 / bw[LMF_PLAN_EW_ENCODER_BWD];
    assert_close(r.time.elementwise, ew, 1e-12);
    /* ZeRO-2 staging: the P staged values zeroed, this rank's half added (12 B per value) */
    double staging = P * 4 / bw[LMF_PLAN_EW_ZERO] + shard * 12 / bw[LMF_PLAN_EW_GELU_BIAS_BWD];
    assert_close(r.time.compute, r.time.matmul + r.time.attention + ew + r.time.classifier + staging,
                 1e-12);
    /* optimizer: the norm and AdamW over this rank's half */
    assert_close(r.time.optimizer, shard * 4 / bw[LMF_PLAN_EW_SUMSQ] + shard * 32 / bw[LMF_PLAN_EW_ADAMW],
                 1e-12);
    assert_true(r.hardware_tflops_per_device == r.model_tflops_per_device);

    /* selective recomputation re-applies the GELU (4 N C values per layer); full recomputation
     * re-runs, per layer, a LayerNorm, the products but the MLP's down projection (8 C^2
     * weights), the attention and a residual + LayerNorm */
    lmf_plan_result rs, rf;
    l.recompute = LMF_RECOMPUTE_SELECTIVE;
    assert_int_equal(lmf_plan_evaluate(&c, &job, &l, &rs), LMF_OK);
    assert_close(rs.time.elementwise - ew, L * 4 * E * 8 / bw[LMF_PLAN_EW_GELU_FWD], 1e-9);
    l.recompute = LMF_RECOMPUTE_FULL;
    assert_int_equal(lmf_plan_evaluate(&c, &job, &l, &rf), LMF_OK);
    assert_close(rf.time.matmul - r.time.matmul, L * 16.0 * N * C * C / 100e9, 1e-9);
    assert_close(rf.time.attention - r.time.attention, L * A / 40e9, 1e-9);
    assert_close(rf.time.elementwise - ew,
                 L * (E * 8 / bw[LMF_PLAN_EW_LAYERNORM_FWD] + E * 16 / bw[LMF_PLAN_EW_RESIDUAL_LN_FWD]),
                 1e-9);
    /* hardware FLOPs = model FLOPs + the recomputed ones, per device and step */
    double rec = (rf.hardware_tflops_per_device - rf.model_tflops_per_device) * 1e12 * rf.time.step;
    assert_close(rec, L * (16.0 * N * C * C + A), 1e-9);

    /* twice the rates: compute takes half as long */
    lmf_cluster c2 = c;
    lmf_plan_rate_curve *cv[] = {&c2.kernels.matmul, &c2.kernels.attention, &c2.kernels.classifier};
    for (int j = 0; j < 3; j++)
        for (int i = 0; i < 2; i++) {
            cv[j]->fwd[i] *= 2;
            cv[j]->bwd[i] *= 2;
        }
    for (int e = 0; e < LMF_PLAN_EW_COUNT; e++) c2.kernels.bandwidth[e] *= 2;
    l.recompute = LMF_RECOMPUTE_NONE;
    lmf_plan_result r2;
    assert_int_equal(lmf_plan_evaluate(&c2, &job, &l, &r2), LMF_OK);
    assert_close(r2.time.compute, r.time.compute / 2, 1e-9);
    assert_close(r2.time.optimizer, r.time.optimizer / 2, 1e-9);
    /* without kernel rates, or in bf16, or with an interleaved pipeline, the generic model
     * applies; tensor and pipeline parallelism, which lmforge runs, stay on the calibrated one */
    l.dtype = LMF_PLAN_BF16;
    assert_int_equal(lmf_plan_device_select(&c, &l)->kind, LMF_PLAN_DEVICE_GENERIC);
    l.dtype = LMF_PLAN_FP32;
    l.tp = 2;
    assert_int_equal(lmf_plan_device_select(&c, &l)->kind, LMF_PLAN_DEVICE_CALIBRATED);
    l.tp = 1;
    l.pp = 2;
    assert_int_equal(lmf_plan_device_select(&c, &l)->kind, LMF_PLAN_DEVICE_CALIBRATED);
    l.virtual_stages = 2;
    assert_int_equal(lmf_plan_device_select(&c, &l)->kind, LMF_PLAN_DEVICE_GENERIC);
    l.virtual_stages = 1;
    l.pp = 1;
    c.kernels.matmul.n = 0;
    assert_int_equal(lmf_plan_device_select(&c, &l)->kind, LMF_PLAN_DEVICE_GENERIC);
    assert_int_equal(lmf_plan_evaluate(&c, &job, &l, &r), LMF_OK);
    assert_int_equal(r.device, LMF_PLAN_DEVICE_GENERIC);
    assert_true(r.mem.checkpoint == 0.0 && r.time.matmul == 0.0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ring_allreduce),
        cmocka_unit_test(test_group_links),
        cmocka_unit_test(test_zero_memory),
        cmocka_unit_test(test_activations),
        cmocka_unit_test(test_params_match_layout),
        cmocka_unit_test(test_efficiency_curve),
        cmocka_unit_test(test_generic_products),
        cmocka_unit_test(test_bubble),
        cmocka_unit_test(test_schedules),
        cmocka_unit_test(test_dp_reduction),
        cmocka_unit_test(test_narayanan_anchor),
        cmocka_unit_test(test_interleaved),
        cmocka_unit_test(test_scatter_gather),
        cmocka_unit_test(test_context_parallel),
        cmocka_unit_test(test_megatron_table1),
        cmocka_unit_test(test_korthikanti_layer),
        cmocka_unit_test(test_uneven_stages),
        cmocka_unit_test(test_llama3_table4),
        cmocka_unit_test(test_bad_layouts),
        cmocka_unit_test(test_activation_floats),
        cmocka_unit_test(test_gqa_widths),
        cmocka_unit_test(test_flash_attention),
        cmocka_unit_test(test_block_gathers),
        cmocka_unit_test(test_local_model),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

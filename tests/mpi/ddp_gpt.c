/* Data-parallel training (GPT-2 or Llama) under mpirun checked against a serial run on rank 0. */
/* Same seed, data and global batch, so every step's loss and the final weights must agree.
 * Usage: mpi_ddp_gpt ZERO_STAGE [STEPS] [BUCKET_BYTES] [gpt2|llama]. Rank 0 prints one line per step and
 * "ddp_gpt zero=Z np=N: ok" when the losses agree within 1e-5 (relative) and the final weights
 * within 1e-4 (absolute); exit code 1 otherwise. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lmforge/comm.h"
#include "lmforge/ddp.h"
#include "lmforge/kernels.h"
#include "lmforge/model.h"
#include "lmforge/optim.h"
#include "lib/test_util.h"

enum { B = 2, T = 16, G = 6, SEED = 1234 };
#define LOSS_RTOL 1e-5
#define WEIGHT_ATOL 1e-4

static lmf_gpt_config cfg = {.n_layer = 2, .n_head = 2, .n_embd = 32, .n_positions = 32,
                             .vocab_size = 100};
/* the Llama family: grouped key/value heads, untied lm_head (block 0 holds both embeddings) */
static const lmf_gpt_config llama_cfg = {.n_layer = 2, .n_head = 4, .n_embd = 32,
                                         .n_positions = 32, .vocab_size = 100,
                                         .family = LMF_FAMILY_LLAMA, .n_kv_head = 2,
                                         .ffn_hidden = 88, .rms_norm_eps = 1e-5f,
                                         .rope_theta = 10000.0f};
static const lmf_adamw_hp hp = {0.9f, 0.95f, 1e-8f, 0.1f};
static const float lr = 3e-3f, clip = 1.0f;

/* micro-batch j of step s: a noisy counting pattern, so the loss has something to learn */
static void batch(int s, int j, int32_t *in, int32_t *tg) {
    uint64_t x = (uint64_t)s * 1000003u + (uint64_t)j * 7919u + 17u;
    for (int i = 0; i < B * T + 1; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        int noise = (int)((x >> 33) % 7u) == 0;
        int32_t tok = (int32_t)(((uint64_t)(i + j) * 3u + (noise ? (x >> 40) : 0)) % 100u);
        if (i < B * T) in[i] = tok;
        if (i > 0) tg[i - 1] = tok;
    }
}

static int fail(const char *what) {
    fprintf(stderr, "ddp_gpt: %s: %s\n", what, lmf_last_error());
    return 1;
}

/* the serial run: one model, all G micro-batches, AdamW over everything */
static int reference(const lmf_kernels *k, int steps, double *losses, float **final) {
    lmf_gpt *m;
    if (lmf_gpt_create(&cfg, k, &m) != LMF_OK) return fail("reference model");
    lmf_gpt_init_weights(m, SEED);
    if (lmf_gpt_reserve(m, B, T, LMF_RESERVE_TRAIN) != LMF_OK) return fail("reserve");
    const lmf_param_layout *l = lmf_gpt_layout(m);
    size_t n = l->total;
    float *mm = calloc(n, sizeof(float)), *vv = calloc(n, sizeof(float));
    int32_t in[B * T], tg[B * T];
    for (int s = 0; s < steps; s++) {
        lmf_gpt_zero_grad(m);
        double sum = 0;
        for (int j = 0; j < G; j++) {
            float loss;
            batch(s, j, in, tg);
            if (lmf_gpt_forward(m, in, tg, B, T, 1, 1.0f / G, &loss) != LMF_OK)
                return fail("forward");
            lmf_gpt_backward(m);
            sum += loss;
        }
        losses[s] = sum / G;
        float *g = lmf_gpt_grads(m);
        double norm = sqrt(k->sumsq(g, n));
        float gs = norm > clip ? (float)(clip / (norm + 1e-6)) : 1.0f;
        lmf_adamw_step(k, l, 0, n, lmf_gpt_params(m), g, mm, vv, &hp, lr, gs, s + 1);
    }
    *final = malloc(n * sizeof(float));
    memcpy(*final, lmf_gpt_params(m), n * sizeof(float));
    free(mm);
    free(vv);
    lmf_gpt_free(m);
    return 0;
}

int main(int argc, char **argv) {
    int stage = argc > 1 ? atoi(argv[1]) : 0;
    int steps = argc > 2 ? atoi(argv[2]) : 20;
    size_t bucket = argc > 3 ? (size_t)atoll(argv[3]) : 0;
    if (argc > 4 && strcmp(argv[4], "llama") == 0) cfg = llama_cfg;
    if (steps < 1 || steps > 1000) steps = 20;
    const lmf_kernels *k = lmf_kernels_fast();
    lmf_comm *c;
    if (lmf_comm_create("auto", &c) != LMF_OK) return fail("communicator");
    int rank = lmf_comm_rank(c), world = lmf_comm_size(c);
    if (G % world != 0) {
        fprintf(stderr, "ddp_gpt: %d micro-batches do not split over %d ranks\n", G, world);
        lmf_comm_free(c);
        return 1;
    }
    double *ref_loss = calloc((size_t)steps, sizeof(double));
    float *ref_w = NULL;
    int bad = 0;
    if (rank == 0 && reference(k, steps, ref_loss, &ref_w) != 0) lmf_comm_abort(c, 1, "reference");

    lmf_gpt *m;
    if (lmf_gpt_create(&cfg, k, &m) != LMF_OK) return fail("model");
    lmf_gpt_init_weights(m, SEED);
    const lmf_param_layout *l = lmf_gpt_layout(m);
    size_t n = l->total;
    lmf_ddp_config dc = {.zero_stage = stage, .bucket_bytes = bucket};
    lmf_ddp *d;
    if (lmf_ddp_create(c, l, &dc, lmf_gpt_params(m), &d) != LMF_OK) return fail("engine");
    lmf_optimizer *o = NULL;
    if (lmf_ddp_optimizer_create(d, k, &hp, clip, &o) != LMF_OK) return fail("optimizer");
    if (stage == 3) lmf_gpt_drop_params(m);
    lmf_gpt_hooks h;
    lmf_ddp_hooks(d, &h);
    lmf_gpt_set_hooks(m, &h);
    if (lmf_gpt_reserve(m, B, T, LMF_RESERVE_TRAIN_HOOKED) != LMF_OK) return fail("reserve");
    int accum = G / world;
    int32_t in[B * T], tg[B * T];
    for (int s = 0; s < steps; s++) {
        lmf_comm_set_context(c, "step %d", s);
        double sum = 0;
        for (int j = 0; j < accum; j++) {
            float loss;
            if (lmf_ddp_begin_micro(d, j, accum) != LMF_OK) return fail("micro-step");
            batch(s, rank * accum + j, in, tg);
            if (lmf_gpt_forward(m, in, tg, B, T, 1, 1.0f / (float)accum, &loss) != LMF_OK)
                return fail("forward");
            lmf_gpt_backward(m);
            sum += loss;
        }
        if (lmf_comm_allreduce_f64(c, &sum, 1, LMF_COMM_SUM) != LMF_OK) return fail("loss");
        float norm;
        if (lmf_test_dp_step(d, o, lr, s + 1, &norm) != LMF_OK) return fail("step");
        double loss = sum / G;
        if (rank == 0) {
            double rel = fabs(loss - ref_loss[s]) / fabs(ref_loss[s]);
            printf("step %2d loss %.9f reference %.9f rel %.2e norm %.6f\n", s, loss, ref_loss[s],
                   rel, norm);
            if (!(rel <= LOSS_RTOL)) bad++;
        }
    }
    float *w = malloc(n * sizeof(float));
    if (lmf_ddp_gather_params(d, w) != LMF_OK) return fail("gather");
    if (rank == 0) {
        double worst = 0;
        for (size_t i = 0; i < n; i++) worst = fmax(worst, fabs((double)w[i] - ref_w[i]));
        printf("final weights: max |difference| %.3g (tolerance %.0e)\n", worst, WEIGHT_ATOL);
        if (!(worst <= WEIGHT_ATOL)) bad++;
        lmf_ddp_memory mem;
        lmf_ddp_memory_used(d, &mem);
        printf("rank 0 bytes: weights %zu grads %zu optimizer %zu buffers %zu\n", mem.weights,
               mem.grads, mem.optim, mem.buffers);
        lmf_ddp_stats st;
        lmf_ddp_stats_get(d, &st);
        printf("collectives completed in the background %ld, waited for %ld\n", st.hidden,
               st.waited);
        if (bad == 0) printf("ddp_gpt zero=%d np=%d: ok\n", stage, world);
    }
    int64_t b64 = bad;
    lmf_comm_allreduce_i64(c, &b64, 1, LMF_COMM_SUM);
    lmf_optimizer_free(o);
    lmf_ddp_free(d);
    lmf_gpt_free(m);
    lmf_comm_free(c);
    free(w);
    free(ref_w);
    free(ref_loss);
    return b64 == 0 ? 0 : 1;
}

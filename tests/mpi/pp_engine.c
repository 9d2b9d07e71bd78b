/* The pipeline engine under mpirun against the whole model on one rank: losses, gradients and
 * the forward-only evaluation pass. */
/* Usage: mpi_pp_engine gpipe|1f1b|interleaved|zb V M gpt2|llama [a,b,...]. Every rank holds
 * the whole model too: it computes the step's losses and gradients alone, runs its stage of the
 * pipeline (the ranks are the stages; V chunks each; the layers split by lmf_pp_layers or by
 * the list given), twice (the second step reuses every buffer), and compares its chunks'
 * gradients, tensor by tensor (block 0 tied between the first and last stage included), and on
 * the last stage the loss. Then an evaluation of M + 3 micro-batches (more than one group of M)
 * must give every stage the whole model's evaluation loss and leave the gradients as the
 * steps left them. Rank 0 prints "pp_engine SCHEDULE P=.. V=.. M=.. FAMILY: ok (bubble
 * B)" when every rank agrees; exit code 1 otherwise (2 when the engine refuses the shape, with
 * its message). With LMF_PP_TEST_STALL=1 in the environment the last stage sleeps 30 s before
 * its first step and the others, with a 2 s time-out, must stop the job naming where they
 * waited. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lmforge/comm.h"
#include "lmforge/kernels.h"
#include "lmforge/model.h"
#include "lmforge/pipeline.h"

enum { B = 2, T = 8, MAX_CHUNKS = 16, MAX_M = 16, EVAL_MORE = 3 };

static const lmf_gpt_config gpt2 = {.n_layer = 8, .n_head = 2, .n_embd = 16, .n_positions = 16,
                                    .vocab_size = 50};
static const lmf_gpt_config llama = {.n_layer = 8, .n_head = 4, .n_embd = 16, .n_positions = 16,
                                     .vocab_size = 50, .family = LMF_FAMILY_LLAMA,
                                     .n_kv_head = 2, .ffn_hidden = 24, .rms_norm_eps = 1e-5f,
                                     .rope_theta = 10000.0f};

static int32_t token(int mb, int i) { return (int32_t)(((unsigned)mb * 131u + (unsigned)i * 17u + 3u) % 50u); }

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: mpi_pp_engine SCHEDULE V M gpt2|llama [a,b,...]\n");
        return 2;
    }
    lmf_comm *comm;
    if (lmf_comm_create("auto", &comm) != LMF_OK) {
        fprintf(stderr, "pp_engine: %s\n", lmf_last_error());
        return 1;
    }
    int P = lmf_comm_size(comm), stage = lmf_comm_rank(comm);
    lmf_pp_shape sh = {LMF_PP_1F1B, P, atoi(argv[3]), atoi(argv[2])};
    const lmf_gpt_config *cfg = strcmp(argv[4], "llama") == 0 ? &llama : &gpt2;
    int split[MAX_CHUNKS], layers[MAX_CHUNKS], n_split = 0, M = sh.micro_batches;
    if (argc > 5)
        for (char *p = argv[5]; *p && n_split < MAX_CHUNKS; n_split++) {
            split[n_split] = (int)strtol(p, &p, 10);
            if (*p == ',') p++;
        }
    lmf_status s = lmf_pp_schedule_parse(argv[1], &sh.schedule);
    if (s == LMF_OK && (P * sh.virtual_stages > MAX_CHUNKS || M < 1 || M > MAX_M))
        s = lmf_fail(LMF_ERR_ARG, "at most %d chunks and %d micro-batches", MAX_CHUNKS, MAX_M);
    if (s == LMF_OK && n_split && n_split != P * sh.virtual_stages)
        s = lmf_fail(LMF_ERR_ARG, "%d stage sizes for %d chunks", n_split, P * sh.virtual_stages);
    if (s == LMF_OK) s = lmf_pp_layers(cfg->n_layer, P * sh.virtual_stages, n_split ? split : NULL,
                                       layers);

    /* the whole model: every micro-batch's loss, the gradients of their mean */
    int32_t in[MAX_M + EVAL_MORE][B * T], tg[MAX_M + EVAL_MORE][B * T];
    int n_eval = M + EVAL_MORE;
    for (int mb = 0; mb < n_eval && mb < MAX_M + EVAL_MORE; mb++)
        for (int i = 0; i < B * T; i++) {
            in[mb][i] = token(mb, i);
            tg[mb][i] = token(mb, i + 1);
        }
    lmf_gpt *w = NULL, *chunks[MAX_CHUNKS] = {0};
    double want = 0.0;
    if (s == LMF_OK) s = lmf_gpt_create(cfg, lmf_kernels_ref(), &w);
    if (s == LMF_OK) {
        lmf_gpt_init_weights(w, 21);
        s = lmf_gpt_reserve(w, B, T, LMF_RESERVE_TRAIN);
    }
    for (int mb = 0; mb < M && s == LMF_OK; mb++) {
        float l;
        s = lmf_gpt_forward(w, in[mb], tg[mb], B, T, 1, 1.0f / (float)M, &l);
        lmf_gpt_backward(w);
        want += l;
    }
    want /= M;
    /* the evaluation loss: lmf_evaluate's loop over n_eval batches (no gradient) */
    double want_eval = 0.0;
    for (int mb = 0; mb < n_eval && s == LMF_OK; mb++) {
        float l;
        s = lmf_gpt_forward(w, in[mb], tg[mb], B, T, 0, 1.0f, &l);
        want_eval += l;
    }
    want_eval = (float)(want_eval / n_eval);
    /* this stage's chunks: virtual stage c * P + stage */
    for (int c = 0; c < sh.virtual_stages && s == LMF_OK; c++) {
        int v = c * P + stage, l0 = 0;
        for (int u = 0; u < v; u++) l0 += layers[u];
        s = lmf_gpt_create_stage(cfg, lmf_kernels_ref(), NULL, l0, layers[v], &chunks[c]);
        if (s == LMF_OK)
            lmf_layout_slice(lmf_gpt_layout(chunks[c]), lmf_gpt_layout(w), lmf_gpt_params(w),
                             lmf_gpt_params(chunks[c]));
    }
    lmf_pp_engine *e = NULL;
    s = lmf_comm_agree(comm, s);
    if (s == LMF_OK) s = lmf_comm_agree(comm, lmf_pp_engine_create(comm, &sh, chunks, B, T,
                                                                   LMF_RESERVE_TRAIN, &e));
    if (s != LMF_OK) {
        if (stage == 0) printf("pp_engine: refused: %s\n", lmf_last_error());
        for (int c = 0; c < MAX_CHUNKS; c++) lmf_gpt_free(chunks[c]);
        lmf_gpt_free(w);
        lmf_comm_free(comm);
        return 2;
    }
    float loss = 0.0f;
    lmf_pp_step_stats st = {0};
    int bad = 0;
    const char *stall = getenv("LMF_PP_TEST_STALL");
    if (stall && *stall == '1') {
        lmf_comm_set_timeout(comm, 2.0);
        lmf_comm_set_context(comm, "step 1");
        if (stage == P - 1) sleep(30);
    }
    for (int step = 0; step < 2 && !bad; step++) {
        for (int c = 0; c < sh.virtual_stages; c++) lmf_gpt_zero_grad(chunks[c]);
        if (lmf_pp_engine_step(e, &in[0][0], &tg[0][0], 1.0f / (float)M, &loss, &st) != LMF_OK) {
            fprintf(stderr, "pp_engine: rank %d: %s\n", stage, lmf_last_error());
            bad = 1;
        }
    }
    if (!bad && stage == P - 1 && !(fabs(loss - want) <= 1e-5 * fabs(want))) {
        fprintf(stderr, "pp_engine: loss %.8f, the whole model's %.8f\n", loss, want);
        bad = 1;
    }
    /* forward only, after the steps: every stage gets the loss, no gradient moves */
    float eval_loss = -1.0f;
    if (!bad && lmf_pp_engine_eval(e, &in[0][0], &tg[0][0], n_eval, &eval_loss) != LMF_OK) {
        fprintf(stderr, "pp_engine: rank %d: evaluation: %s\n", stage, lmf_last_error());
        bad = 1;
    }
    if (!bad && !(fabs(eval_loss - want_eval) <= 1e-5 * fabs(want_eval))) {
        fprintf(stderr, "pp_engine: rank %d: evaluation loss %.8f, the whole model's %.8f\n",
                stage, eval_loss, want_eval);
        bad = 1;
    }
    if (!bad && stage == 0 && lmf_pp_engine_eval(e, &in[0][0], &tg[0][0], 0, &eval_loss) !=
                                  LMF_ERR_ARG) {
        fprintf(stderr, "pp_engine: an evaluation of 0 micro-batches was not refused\n");
        bad = 1;
    }
    if (!bad && !(st.bubble >= 0.0 && st.bubble < 1.0 && st.busy > 0.0)) {
        fprintf(stderr, "pp_engine: rank %d: bubble %g busy %g\n", stage, st.bubble, st.busy);
        bad = 1;
    }
    /* each chunk's tensors against the whole model's gradients */
    const lmf_param_layout *wl = lmf_gpt_layout(w);
    const float *gw = lmf_gpt_grads(w);
    float *got = calloc(wl->total, sizeof(float));
    for (int c = 0; c < sh.virtual_stages && !bad; c++) {
        const lmf_param_layout *cl = lmf_gpt_layout(chunks[c]);
        memset(got, 0, wl->total * sizeof(float));
        lmf_layout_place(cl, wl, lmf_gpt_grads(chunks[c]), got);
        for (int i = 0; i < wl->n_tensors && !bad; i++) {
            const lmf_tensor_info *t = &wl->tensors[i];
            if (cl->tensors[i].numel == 0) continue;
            double scale = 1e-12, worst = 0.0;
            for (size_t k = 0; k < t->numel; k++) scale = fmax(scale, fabs(gw[t->offset + k]));
            for (size_t k = 0; k < t->numel; k++)
                worst = fmax(worst, fabs((double)got[t->offset + k] - gw[t->offset + k]));
            if (!(worst <= 2e-5 * scale)) {
                fprintf(stderr, "pp_engine: rank %d chunk %d: gradient of %s differs by %.3g "
                        "(largest %.3g)\n", stage, c, t->name, worst, scale);
                bad = 1;
            }
        }
    }
    free(got);
    int64_t fails = bad;
    double bubble = st.bubble;
    lmf_comm_allreduce_i64(comm, &fails, 1, LMF_COMM_SUM);
    lmf_comm_allreduce_f64(comm, &bubble, 1, LMF_COMM_MAX);
    if (stage == 0 && fails == 0)
        printf("pp_engine %s P=%d V=%d M=%d %s: ok (bubble %.3f)\n", argv[1], P,
               sh.virtual_stages, M, argv[4], bubble);
    lmf_pp_engine_free(e);
    for (int c = 0; c < sh.virtual_stages; c++) lmf_gpt_free(chunks[c]);
    lmf_gpt_free(w);
    lmf_comm_free(comm);
    return fails ? 1 : 0;
}

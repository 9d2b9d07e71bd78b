/* What the ranks of one run must agree on before it starts: the options that change the
 * arithmetic, the data order or the checkpoints, and the contents of the token files. */
#include "lmforge/comm.h"
#include "lmforge/fsutil.h"
#include "lmforge/train.h"
#include "train/train_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N_AGREED 28

/* a token file's identity: "none", or its size and content hash (paths may differ between
 * machines; the bytes may not) */
static lmf_status data_identity(const char *path, char *buf, size_t cap) {
    if (!path) {
        snprintf(buf, cap, "none");
        return LMF_OK;
    }
    uint64_t size, hash;
    LMF_TRY(lmf_file_fingerprint(path, &size, &hash));
    snprintf(buf, cap, "%" PRIu64 " bytes, content hash %016" PRIx64, size, hash);
    return LMF_OK;
}

/* a float as its shortest decimal that reads back as the same float */
static void fmt_float(char *buf, size_t cap, float x) {
    for (int digits = 6; digits <= 9; digits++) {
        snprintf(buf, cap, "%.*g", digits, (double)x);
        if (strtof(buf, NULL) == x) return;
    }
}

lmf_status lmf_train_agree_options(lmf_comm *c, const lmf_train_opts *o) {
    if (lmf_comm_size(c) == 1) return LMF_OK;
    char v[N_AGREED][192];
    const char *names[N_AGREED], *values[N_AGREED];
    int n = 0;
    /* identities first: a rank that cannot read its data fails here, and all ranks with it */
    lmf_status s = data_identity(o->data, v[n], sizeof v[n]);
    names[n++] = "--data";
    if (s == LMF_OK) s = data_identity(o->val_data, v[n], sizeof v[n]);
    names[n++] = "--val-data";
    LMF_TRY(lmf_comm_agree(c, s));
#define ADD(flag, ...) (snprintf(v[n], sizeof v[n], __VA_ARGS__), names[n++] = flag)
    const lmf_gpt_config *g = &o->cfg;
    ADD("--model/--config/--init/--vocab-size",
        "n_layer %d, n_head %d, n_embd %d, n_positions %d, vocab_size %d", g->n_layer, g->n_head,
        g->n_embd, g->n_positions, g->vocab_size);
    ADD("--steps", "%d", o->steps);
    ADD("--batch", "%d", o->batch);
    ADD("--seq", "%d", o->seq);
    ADD("--grad-accum/--global-batch", "%d micro-steps, %" PRId64 " tokens", o->grad_accum,
        o->global_batch);
    fmt_float(v[n], sizeof v[n], o->lr), names[n++] = "--lr";
    fmt_float(v[n], sizeof v[n], o->min_lr), names[n++] = "--min-lr";
    ADD("--lr-schedule", "%s", o->lr_schedule == LMF_LR_CONSTANT ? "constant" : "cosine");
    ADD("--warmup", "%d", o->warmup);
    fmt_float(v[n], sizeof v[n], o->weight_decay), names[n++] = "--weight-decay";
    fmt_float(v[n], sizeof v[n], o->beta1), names[n++] = "--beta1";
    fmt_float(v[n], sizeof v[n], o->beta2), names[n++] = "--beta2";
    fmt_float(v[n], sizeof v[n], o->adam_eps), names[n++] = "--adam-eps";
    fmt_float(v[n], sizeof v[n], o->grad_clip), names[n++] = "--grad-clip";
    ADD("--seed", "%" PRIu64, o->seed);
    ADD("--no-shuffle", "%s", o->shuffle ? "off" : "on");
    ADD("--eval-every/--eval-batches", "%d, %d", o->eval_every, o->eval_batches);
    ADD("--save-every", "%d", o->save_every);
    ADD("--keep-checkpoints", "%d", o->keep_checkpoints);
    ADD("--stop-after", "%d", o->stop_after);
    ADD("--kernels", "%s", o->kernels);
    ADD("--zero", "%d", o->zero_stage);
    ADD("--recompute", "%s", lmf_recompute_name(o->recompute));
    ADD("--max-bad-steps", "%d", o->max_bad_steps);
    fmt_float(v[n], sizeof v[n], o->spike_factor), names[n++] = "--spike-factor";
    ADD("--out/--resume", "%s%s", o->out_dir, o->resume_dir ? " (resumed)" : "");
#undef ADD
    LMF_ASSERT(n == N_AGREED);
    for (int i = 0; i < n; i++) values[i] = v[i];
    return lmf_comm_agree_values(c, n, names, values);
}

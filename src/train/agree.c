/* What the ranks of one run must agree on before it starts: the options that change the
 * arithmetic, the data order or the checkpoints, and the contents of the token files. */
#include "lmforge/comm.h"
#include "lmforge/data.h"
#include "lmforge/fsutil.h"
#include "lmforge/train.h"
#include "train/train_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N_AGREED 30

/* FNV-1a over bytes, to fold the files of a data spec into one identity */
static uint64_t fold(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

/* a data spec's identity: "none", or its files' sizes and content hashes with the sources'
 * weights (paths may differ between machines; the bytes and the mixture may not). Specs of
 * more than 16 files are identified by each file's size and name, and the content of the
 * first and the last, so that start-up does not read thousands of files. */
static lmf_status data_identity(const char *spec, char *buf, size_t cap) {
    if (!spec) {
        snprintf(buf, cap, "none");
        return LMF_OK;
    }
    lmf_dataset *d;
    LMF_TRY(lmf_dataset_open(spec, &d));
    uint64_t h = 1469598103934665603ull, total = 0;
    lmf_status s = LMF_OK;
    int nf = lmf_dataset_num_files(d), ns = lmf_dataset_num_sources(d);
    for (int i = 0; i < ns; i++) {
        double w = lmf_dataset_source_weight(d, i);
        h = fold(h, &w, sizeof w);
    }
    for (int i = 0; i < nf && s == LMF_OK; i++) {
        const char *path = lmf_dataset_file_path(d, i);
        uint64_t size = 0, fh = 0;
        if (nf <= 16 || i == 0 || i == nf - 1) {
            s = lmf_file_fingerprint(path, &size, &fh);
        } else {
            const char *base = strrchr(path, '/');
            base = base ? base + 1 : path;
            size = lmf_dataset_file_tokens(d, i);
            fh = fold(1469598103934665603ull, base, strlen(base));
        }
        h = fold(fold(h, &size, sizeof size), &fh, sizeof fh);
        total += lmf_dataset_file_tokens(d, i);
    }
    lmf_dataset_close(d);
    LMF_TRY(s);
    snprintf(buf, cap, "%d files, %" PRIu64 " tokens, content hash %016" PRIx64, nf, total, h);
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
        "%s, n_layer %d, n_head %d, n_kv_head %d, n_embd %d, ffn %d, n_positions %d, "
        "vocab_size %d", lmf_family_name(g->family), g->n_layer, g->n_head, g->n_kv_head,
        g->n_embd, g->ffn_hidden, g->n_positions, g->vocab_size);
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
    ADD("--tp/--sp", "%d, %s", o->tp > 1 ? o->tp : 1, o->sequence_parallel ? "on" : "off");
    ADD("--pp/--schedule/--virtual-stages/--stage-layers", "%d, %s, %d, %s", o->pp > 1 ? o->pp : 1,
        lmf_pp_schedule_name(o->schedule), o->virtual_stages > 1 ? o->virtual_stages : 1,
        o->stage_layers ? o->stage_layers : "balanced");
    ADD("--recompute", "%s", lmf_recompute_name(o->recompute));
    ADD("--max-bad-steps", "%d", o->max_bad_steps);
    fmt_float(v[n], sizeof v[n], o->spike_factor), names[n++] = "--spike-factor";
    ADD("--out/--resume", "%s%s", o->out_dir, o->resume_dir ? " (resumed)" : "");
#undef ADD
    LMF_ASSERT(n == N_AGREED);
    for (int i = 0; i < n; i++) values[i] = v[i];
    return lmf_comm_agree_values(c, n, names, values);
}

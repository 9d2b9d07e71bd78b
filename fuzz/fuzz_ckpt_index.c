/* libFuzzer harness: checkpoint index.json and trainer_state.json parsers. An index that parses
 * must satisfy its invariants and survive a format/parse round trip unchanged. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lmforge/ckpt.h"
#include "lmforge/ckpt_format.h"
#include "lmforge/train.h"

static void check_invariants(const lmf_ckpt_index *ix) {
    if (ix->world_size < 1 || ix->zero_stage < 0 || ix->zero_stage > 3 || ix->total < 1) abort();
    uint64_t next = 0;
    int i = 0;
    for (; i < ix->n_files && ix->files[i].kind == LMF_CKPT_SHARD; i++) {
        const lmf_ckpt_file *f = &ix->files[i];
        if (f->begin != next || f->end < f->begin || f->rank < 0 || f->rank >= ix->world_size ||
            !lmf_ckpt_name_ok(f->name))
            abort();
        next = f->end;
    }
    if (next != ix->total) abort();
    for (; i < ix->n_files; i++)
        if (ix->files[i].kind != LMF_CKPT_META || !lmf_ckpt_name_ok(ix->files[i].name)) abort();
    uint64_t t = 0;
    for (int k = 0; k < ix->n_tensors; k++) {
        const lmf_ckpt_tensor *x = &ix->tensors[k];
        if (x->offset < t || x->offset + x->numel > ix->total || x->ndim < 1 || x->ndim > 2) abort();
        t = x->offset + x->numel;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    lmf_ckpt_index ix;
    if (lmf_ckpt_index_parse((const char *)data, size, "fuzz/index.json", &ix) == LMF_OK) {
        check_invariants(&ix);
        char *txt = NULL;
        if (lmf_ckpt_index_format(&ix, &txt) != LMF_OK) abort(); /* what parsed, formats */
        lmf_ckpt_index back;
        if (lmf_ckpt_index_parse(txt, strlen(txt), "fuzz/again.json", &back) != LMF_OK) abort();
        if (back.id != ix.id || back.step != ix.step || back.total != ix.total ||
            back.n_files != ix.n_files || back.n_tensors != ix.n_tensors)
            abort();
        for (int i = 0; i < ix.n_files; i++) {
            const lmf_ckpt_file *a = &ix.files[i], *b = &back.files[i];
            if (strcmp(a->name, b->name) != 0 || a->kind != b->kind || a->bytes != b->bytes ||
                a->xxh3 != b->xxh3 || a->rank != b->rank || a->begin != b->begin ||
                a->end != b->end)
                abort();
        }
        lmf_ckpt_index_free(&back);
        free(txt);
    }
    lmf_ckpt_index_free(&ix);

    lmf_train_state sv;
    char *opts = NULL;
    if (lmf_ckpt_state_parse((const char *)data, size, "fuzz/trainer_state.json", &sv, &opts) ==
        LMF_OK) {
        if (sv.step < 0 || sv.world_size < 1 || sv.zero_stage > 3 || sv.loader.shuffle > 1 || !opts)
            abort();
        lmf_train_opts o;
        lmf_train_opts_default(&o);
        lmf_saved_opts saved;
        lmf_train_opts_from_json(opts, "fuzz/trainer_state.json", &o, &saved);
    }
    free(opts);
    return 0;
}

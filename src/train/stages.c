/* The layers of each pipeline stage's model chunks, from --pp, --virtual-stages and
 * --stage-layers or balanced by FLOPs (the trainer's stages and the memory check's estimate of
 * the largest one). */
#include <stdlib.h>

#include "lmforge/model.h"
#include "lmforge/pipeline.h"
#include "train/train_internal.h"

int lmf_train_virtual_stages(const lmf_train_opts *o) {
    if (o->virtual_stages > 1) return o->virtual_stages;
    return o->pp > 1 && o->schedule == LMF_PP_INTERLEAVED && o->virtual_stages < 1 ? 2 : 1;
}

lmf_status lmf_train_stage_layers(const lmf_train_opts *o, const lmf_gpt_config *cfg,
                                  int *layers) {
    int P = o->pp > 1 ? o->pp : 1, V = lmf_train_virtual_stages(o), n = 0;
    if (P > LMF_TRAIN_MAX_STAGES)
        return lmf_fail(LMF_ERR_ARG, "--pp %d: at most %d stages", P, LMF_TRAIN_MAX_STAGES);
    if (V > LMF_LAYOUT_MAX_RANGES || P * V > LMF_TRAIN_MAX_STAGES)
        return lmf_fail(LMF_ERR_ARG, "--virtual-stages %d: at most %d model chunks per stage "
                        "and %d virtual stages in all", V, LMF_LAYOUT_MAX_RANGES,
                        LMF_TRAIN_MAX_STAGES);
    int *split = malloc((size_t)P * V * sizeof *split);
    if (!split) return lmf_fail(LMF_ERR_NOMEM, "cannot allocate the stage table");
    lmf_status s = LMF_OK;
    for (const char *p = o->stage_layers; p && *p && s == LMF_OK; n++) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || (*end && *end != ','))
            s = lmf_fail(LMF_ERR_ARG, "--stage-layers '%s': give layers per stage as a comma "
                         "list, e.g. 5,7", o->stage_layers);
        else if (n >= P * V)
            s = lmf_fail(LMF_ERR_ARG, "--stage-layers gives more than %d stages, --pp %d%s", P * V,
                         P, V > 1 ? " x --virtual-stages (one value per virtual stage)" : "");
        else
            split[n] = (int)v;
        p = *end ? end + 1 : end;
    }
    if (s == LMF_OK && o->stage_layers && n != P * V)
        s = V > 1 ? lmf_fail(LMF_ERR_ARG, "--stage-layers gives %d values; --pp %d x "
                             "--virtual-stages %d needs %d, one per virtual stage in pipeline "
                             "order", n, P, V, P * V)
                  : lmf_fail(LMF_ERR_ARG, "--stage-layers gives %d stages, --pp %d", n, P);
    if (s == LMF_OK && (o->stage_layers || P == 1)) {
        s = lmf_pp_layers(cfg->n_layer, P * V, o->stage_layers ? split : NULL, layers);
    } else if (s == LMF_OK) {
        /* the last stage's classifier weighs as much as its share of layers' FLOPs (its
         * rank's slice under tensor parallelism, as the layers' are) */
        lmf_tp_config tp = {o->tp > 1 ? o->tp : 1, 0, o->sequence_parallel};
        double last = lmf_gpt_classifier_layers(cfg, &tp, o->batch, o->seq, o->recompute);
        s = lmf_pp_layers_balanced(cfg->n_layer, P * V, 0.0, last, layers);
    }
    free(split);
    return s;
}

lmf_status lmf_train_stage_chunks(const lmf_train_opts *o, const lmf_gpt_config *cfg, int stage,
                                  int *layer0, int *layers) {
    int P = o->pp > 1 ? o->pp : 1, V = lmf_train_virtual_stages(o);
    int *split = malloc((size_t)P * V * sizeof *split);
    if (!split) return lmf_fail(LMF_ERR_NOMEM, "cannot allocate the stage table");
    lmf_status s = lmf_train_stage_layers(o, cfg, split);
    for (int v = 0, l0 = 0; s == LMF_OK && v < P * V; l0 += split[v++])
        if (v % P == stage) {
            layer0[v / P] = l0;
            layers[v / P] = split[v];
        }
    free(split);
    return s;
}

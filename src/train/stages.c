/* The layers of each pipeline stage, from --pp and --stage-layers or balanced by FLOPs (the
 * trainer's stages and the memory check's estimate of the largest one). */
#include <stdlib.h>

#include "lmforge/model.h"
#include "lmforge/pipeline.h"
#include "train/train_internal.h"

lmf_status lmf_train_stage_layers(const lmf_train_opts *o, const lmf_gpt_config *cfg,
                                  int *layers) {
    int split[LMF_TRAIN_MAX_STAGES], n = 0, P = o->pp > 1 ? o->pp : 1;
    if (P > LMF_TRAIN_MAX_STAGES)
        return lmf_fail(LMF_ERR_ARG, "--pp %d: at most %d stages", P, LMF_TRAIN_MAX_STAGES);
    for (const char *p = o->stage_layers; p && *p && n < LMF_TRAIN_MAX_STAGES; n++) {
        char *end;
        split[n] = (int)strtol(p, &end, 10);
        if (end == p || (*end && *end != ','))
            return lmf_fail(LMF_ERR_ARG, "--stage-layers '%s': give layers per stage as a comma "
                            "list, e.g. 5,7", o->stage_layers);
        p = *end ? end + 1 : end;
    }
    if (o->stage_layers && n != P)
        return lmf_fail(LMF_ERR_ARG, "--stage-layers gives %d stages, --pp %d", n, P);
    if (o->stage_layers || P == 1) return lmf_pp_layers(cfg->n_layer, P, o->stage_layers ? split : NULL, layers);
    /* the last stage's classifier weighs as much as its share of layers' FLOPs (its rank's
     * slice under tensor parallelism, as the layers' are) */
    lmf_tp_config tp = {o->tp > 1 ? o->tp : 1, 0, o->sequence_parallel};
    double last = lmf_gpt_classifier_layers(cfg, &tp, o->batch, o->seq, o->recompute);
    return lmf_pp_layers_balanced(cfg->n_layer, P, 0.0, last, layers);
}

/* The layers of each pipeline stage, from --pp and --stage-layers (the trainer's stages and
 * the memory check's estimate of the largest one). */
#include <stdlib.h>

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
    return lmf_pp_layers(cfg->n_layer, P, o->stage_layers ? split : NULL, layers);
}

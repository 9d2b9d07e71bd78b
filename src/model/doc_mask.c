/* Document masking of packed sequences: the end-of-text id and each batch's document starts. */
#include "model/gpt_internal.h"

#include "lmforge/status.h"

lmf_status lmf_gpt_set_doc_mask(lmf_gpt *m, int eot_id) {
    if (eot_id >= m->cfg.vocab_size)
        return lmf_fail(LMF_ERR_ARG, "document masking: end-of-text id %d is outside the "
                        "model's vocabulary (%d ids); give the id of the data's end-of-text token "
                        "(--eot-id)", eot_id, m->cfg.vocab_size);
    m->eot_id = eot_id < 0 ? -1 : eot_id;
    return LMF_OK;
}

const int *lmf_gpt_doc_mask_batch(lmf_gpt *m, const int32_t *inputs, int B, int T) {
    if (m->eot_id < 0) return NULL;
    return lmf_doc_starts(m->doc_start, inputs, B, T, m->eot_id) ? m->doc_start : NULL;
}

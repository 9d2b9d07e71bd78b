/* libFuzzer harness: a safetensors file in memory is parsed, then every tensor is read. */
#include <stdint.h>
#include <stdlib.h>

#include "lmforge/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    lmf_st_file *f = NULL;
    if (lmf_st_parse(data, size, "fuzz-input", &f) != LMF_OK) return 0;
    lmf_st_metadata(f, "format");
    for (int i = 0; i < lmf_st_count(f); i++) {
        const lmf_st_tensor *t = lmf_st_get(f, i);
        if (lmf_st_find(f, t->name) == NULL) abort(); /* every listed tensor is found */
        uint64_t nb = t->end - t->begin, numel = lmf_st_numel(t);
        if (nb > (1u << 20)) continue;
        void *raw = malloc(nb ? nb : 1);
        float *fl = malloc((numel ? numel : 1) * sizeof(float));
        if (raw && fl) {
            if (lmf_st_read_raw(f, t, raw, nb) != LMF_OK) abort(); /* validated: must succeed */
            lmf_status s = lmf_st_read_f32(f, t, fl, numel);
            int convertible = t->dtype == LMF_F32 || t->dtype == LMF_F16 || t->dtype == LMF_BF16;
            if ((s == LMF_OK) != convertible) abort();
        }
        free(raw);
        free(fl);
    }
    lmf_st_close(f);
    return 0;
}

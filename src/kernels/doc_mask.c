/* Document starts of packed sequences, the argument of the attention kernels' masking. */
#include "lmforge/kernels.h"

int lmf_doc_starts(int *doc_start, const int32_t *ids, int B, int T, int32_t eot) {
    int any = 0;
    for (int b = 0; b < B; b++) {
        const int32_t *row = ids + (size_t)b * T;
        int *ds = doc_start + (size_t)b * T;
        int s = 0;
        for (int t = 0; t < T; t++) {
            if (t > 0 && row[t - 1] == eot) {
                s = t;
                any = 1;
            }
            ds[t] = s;
        }
    }
    return any;
}

/* The loader's benchmark: micro-batches assembled per second, as the trainer calls the loader. */
#include "lmforge/data.h"

#include <stdlib.h>

#include "lmforge/system.h"

lmf_status lmf_loader_bench(lmf_loader *l, uint64_t micro, double seconds,
                            lmf_loader_bench_result *r) {
    uint64_t bt = lmf_loader_batch_tokens(l);
    int32_t *in = malloc(bt * sizeof *in), *tg = malloc(bt * sizeof *tg);
    if (!in || !tg) {
        free(in);
        free(tg);
        return lmf_fail(LMF_ERR_NOMEM, "out of memory for the loader benchmark");
    }
    lmf_status s = LMF_OK;
    double t0 = 0;
    uint64_t steps = 0;
    for (uint64_t step = 0; s == LMF_OK; step++) {
        if (step == 1) t0 = lmf_now_s(); /* step 0 is untimed */
        for (uint64_t i = 0; s == LMF_OK && i < micro; i++) s = lmf_loader_fill(l, i, in, tg);
        lmf_loader_advance(l, micro);
        if (step >= 1) steps++;
        if (steps >= 3 && lmf_now_s() - t0 >= seconds) break;
    }
    double dt = lmf_now_s() - t0;
    free(in);
    free(tg);
    if (s != LMF_OK) return s;
    r->steps = steps;
    r->seconds = dt;
    r->tokens = steps * micro * bt;
    r->tokens_per_s = dt > 0 ? (double)r->tokens / dt : 0.0;
    return LMF_OK;
}

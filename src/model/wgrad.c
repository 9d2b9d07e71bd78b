/* The weight-gradient half of a split backward (ZB-H1): matmuls' weight and bias gradients
 * recorded while the input gradient is computed, and computed later from copies of what they
 * read. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "model/ops.h"

/* n floats of the list's store, grown as needed (the first step sizes it for good); offset of
 * the copy, or SIZE_MAX when it cannot grow */
static size_t store_copy(lmf_wgrad *w, const float *src, size_t n) {
    lmf_wgrad_list *l = w->list;
    if (l->used + n > l->cap_floats) {
        size_t cap = l->cap_floats ? l->cap_floats : 1;
        while (cap < l->used + n) cap *= 2;
        float *p = realloc(l->store, cap * sizeof(float));
        if (!p) {
            w->err = lmf_fail(LMF_ERR_NOMEM, "cannot hold the deferred weight gradients' "
                              "inputs (%.1f MB); use the 1f1b schedule or a smaller --batch",
                              (double)cap * 4 / 1e6);
            return SIZE_MAX;
        }
        l->store = p;
        l->cap_floats = cap;
    }
    size_t at = l->used;
    memcpy(l->store + at, src, n * sizeof(float));
    l->used += n;
    return at;
}

void lmf_wgrad_record(lmf_wgrad *w, float *dw, float *db, const float *dout, const float *inp,
                      int N, int C, int OC) {
    lmf_wgrad_list *l = w->list;
    if (w->err != LMF_OK) return;
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 16;
        lmf_wgrad_entry *e = realloc(l->e, (size_t)cap * sizeof *e);
        if (!e) {
            w->err = lmf_fail(LMF_ERR_NOMEM, "cannot list the deferred weight gradients");
            return;
        }
        l->e = e;
        l->cap = cap;
    }
    lmf_wgrad_entry *e = &l->e[l->n];
    e->block = w->block;
    e->dw = (size_t)(dw - w->gbase);
    e->db = db ? (size_t)(db - w->gbase) : SIZE_MAX;
    e->N = N;
    e->C = C;
    e->OC = OC;
    e->dout = store_copy(w, dout, (size_t)N * OC);
    e->inp = SIZE_MAX;
    e->inp_at = inp;
    if (w->copy_inputs && e->dout != SIZE_MAX) e->inp = store_copy(w, inp, (size_t)N * C);
    if (w->err == LMF_OK) l->n++;
}

int lmf_wgrad_replay(lmf_ops *o, const lmf_wgrad_list *l, int from, int block, float *g) {
    int i = from;
    for (; i < l->n && l->e[i].block == block; i++) {
        const lmf_wgrad_entry *e = &l->e[i];
        const float *inp = e->inp == SIZE_MAX ? e->inp_at : l->store + e->inp;
        matmul_backward(o, NULL, g + e->dw, e->db == SIZE_MAX ? NULL : g + e->db,
                        l->store + e->dout, inp, NULL, e->N, e->C, e->OC);
    }
    return i;
}

void lmf_wgrad_list_free(lmf_wgrad_list *l) {
    free(l->e);
    free(l->store);
    memset(l, 0, sizeof *l);
}

/* Restoring a checkpoint at any world size and ZeRO stage: the weights read by rank 0 and
 * broadcast, each rank's range of AdamW m and v read from the shards that hold it, the state;
 * and the options a run was saved with. */
#include "lmforge/ckpt.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* trainer_state.json of checkpoint dir (listed in ix, verified) */
static lmf_status read_state(const char *dir, const lmf_ckpt_index *ix, lmf_train_state *st,
                             char **opts_json) {
    char what[4300], *text = NULL;
    size_t len = 0;
    snprintf(what, sizeof what, "%s/trainer_state.json", dir);
    LMF_TRY(lmf_ckpt_read_meta(dir, ix, "trainer_state.json", &text, &len));
    lmf_status s = lmf_ckpt_state_parse(text, len, what, st, opts_json);
    free(text);
    if (s == LMF_OK && st->step != ix->step)
        s = lmf_fail(LMF_ERR_FORMAT, "%s: step %d, but index.json says %lld", what, st->step,
                     (long long)ix->step);
    return s;
}

lmf_status lmf_ckpt_read_opts(const char *run_dir, char **opts_json) {
    *opts_json = NULL;
    lmf_ckpt_info ck;
    LMF_TRY(lmf_ckpt_find_latest(run_dir, &ck));
    lmf_ckpt_index ix;
    LMF_TRY(lmf_ckpt_index_load(ck.dir, &ix));
    lmf_train_state st;
    lmf_status s = read_state(ck.dir, &ix, &st, opts_json);
    lmf_ckpt_index_free(&ix);
    return s;
}

/* broadcast floats from rank 0 in pieces of at most 1 GiB */
static lmf_status broadcast_floats(lmf_comm *c, float *x, size_t n) {
    const size_t piece = (size_t)1 << 28;
    for (size_t a = 0; a < n; a += piece)
        LMF_TRY(lmf_comm_broadcast(c, x + a, (n - a < piece ? n - a : piece) * sizeof(float), 0));
    return LMF_OK;
}

lmf_status lmf_ckpt_restore(lmf_comm *comm, const lmf_ckpt_info *ck, const lmf_param_layout *l,
                            float *full, lmf_range held, float *m, float *v,
                            lmf_train_state *state) {
    lmf_ckpt_index ix;
    lmf_status s = lmf_ckpt_index_load(ck->dir, &ix);
    if (s == LMF_OK) s = lmf_ckpt_check_layout(ck->dir, &ix, l);
    if (s == LMF_OK) s = read_state(ck->dir, &ix, state, NULL);
    /* the weights: rank 0 reads (and so verifies) every shard, then broadcasts */
    if (s == LMF_OK && lmf_comm_rank(comm) == 0) {
        lmf_ckpt_want w[LMF_CKPT_N_ARRAYS] = {{0, l->total, full}, {0, 0, NULL}, {0, 0, NULL}};
        s = lmf_ckpt_read_ranges(ck->dir, &ix, w);
    }
    s = lmf_ckpt_agree(comm, s);
    if (s == LMF_OK && lmf_comm_size(comm) > 1) s = broadcast_floats(comm, full, l->total);
    if (s == LMF_OK) { /* AdamW m, v: each rank only its own range, from the shards holding it */
        lmf_ckpt_want w[LMF_CKPT_N_ARRAYS] = {
            {0, 0, NULL}, {held.begin, held.end, m}, {held.begin, held.end, v}};
        s = lmf_ckpt_read_ranges(ck->dir, &ix, w);
    }
    lmf_ckpt_index_free(&ix);
    return lmf_ckpt_agree(comm, s);
}

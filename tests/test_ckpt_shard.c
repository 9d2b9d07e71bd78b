/* Checkpoint shards and the writer (single rank): commit, latest, pruning, verified partial
 * reads, corruption detection, a failed write leaving the previous checkpoint, consolidation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lmforge/comm.h"
#include "lmforge/config.h"
#include "lmforge/fsutil.h"
#include "lmforge/model.h"
#include "lmforge/ckpt.h"
#include "lmforge/formats.h"

#include "lib/test_util.h"

/* the values every test writes: params i, m -i, v i + 0.5, step added to params */
static float pv(uint64_t i, int step) { return (float)i + 1000.0f * (float)step; }
static float mv(uint64_t i) { return -(float)i; }
static float vv(uint64_t i) { return (float)i + 0.5f; }

static void flip_byte(const char *path, long off) {
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    assert_int_equal(fseek(f, off, SEEK_SET), 0);
    int c = fgetc(f);
    assert_int_equal(fseek(f, off, SEEK_SET), 0);
    fputc(c ^ 0x10, f);
    fclose(f);
}

static void test_shard_round_trip_and_corruption(void **state) {
    const char *dir = lmf_test_dir();
    char path[512];
    lmf_test_path(path, sizeof path, "shard-00001-of-00002.safetensors");
    uint64_t begin = 100, end = 1100, n = end - begin;
    float *data = malloc(3 * n * sizeof(float));
    for (uint64_t i = 0; i < n; i++) {
        data[i] = pv(begin + i, 0);
        data[n + i] = mv(begin + i);
        data[2 * n + i] = vv(begin + i);
    }
    lmf_ckpt_shard_meta m = {0xabcull, 1, 2, 7, begin, end};
    uint64_t bytes = 0, h = 0;
    assert_int_equal(lmf_ckpt_shard_write(path, &m, data, NULL, &bytes, &h), LMF_OK);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal((uint64_t)st.st_size, bytes);
    /* an existing file is never overwritten */
    uint64_t b2, h2;
    assert_int_equal(lmf_ckpt_shard_write(path, &m, data, NULL, &b2, &h2), LMF_ERR_IO);

    lmf_ckpt_file f = {"shard-00001-of-00002.safetensors", LMF_CKPT_SHARD, bytes, h, 1, begin, end};
    lmf_ckpt_index ix;
    memset(&ix, 0, sizeof ix);
    ix.id = 0xabc;
    ix.total = 2000;
    /* wanted ranges that start before, end after, and lie inside the shard */
    float p[300], mm[2000], vx[10];
    lmf_ckpt_want w[3] = {{0, 300, p}, {900, 2000, mm}, {500, 510, vx}};
    for (int i = 0; i < 300; i++) p[i] = -7.0f;
    assert_int_equal(lmf_ckpt_shard_read(dir, &ix, &f, w), LMF_OK);
    assert_true(p[99] == -7.0f); /* not in this shard: untouched */
    for (int i = 100; i < 300; i++) assert_true(p[i] == pv((uint64_t)i, 0));
    for (int i = 900; i < 1100; i++) assert_true(mm[i - 900] == mv((uint64_t)i));
    for (int i = 500; i < 510; i++) assert_true(vx[i - 500] == vv((uint64_t)i));

    /* another checkpoint's id */
    ix.id = 0xabd;
    assert_int_equal(lmf_ckpt_shard_read(dir, &ix, &f, w), LMF_ERR_FORMAT);
    assert_non_null(strstr(lmf_last_error(), "another checkpoint"));
    assert_non_null(strstr(lmf_last_error(), "shard-00001-of-00002.safetensors"));
    ix.id = 0xabc;
    /* one flipped data byte */
    flip_byte(path, (long)bytes - 5);
    assert_int_equal(lmf_ckpt_shard_read(dir, &ix, &f, w), LMF_ERR_FORMAT);
    assert_non_null(strstr(lmf_last_error(), "checksum mismatch"));
    assert_non_null(strstr(lmf_last_error(), path));
    flip_byte(path, (long)bytes - 5);
    assert_int_equal(lmf_ckpt_shard_read(dir, &ix, &f, w), LMF_OK);
    /* truncated */
    assert_int_equal(truncate(path, (off_t)bytes - 4), 0);
    assert_int_equal(lmf_ckpt_shard_read(dir, &ix, &f, w), LMF_ERR_FORMAT);
    assert_non_null(strstr(lmf_last_error(), "truncated"));
    /* missing */
    unlink(path);
    assert_int_equal(lmf_ckpt_shard_read(dir, &ix, &f, w), LMF_ERR_IO);
    assert_non_null(strstr(lmf_last_error(), "missing"));
    free(data);
}

static void test_empty_shard(void **state) {
    const char *dir = lmf_test_dir();
    char path[512];
    lmf_test_path(path, sizeof path, "shard-00002-of-00003.safetensors");
    lmf_ckpt_shard_meta m = {5, 2, 3, 1, 10, 10};
    uint64_t bytes = 0, h = 0;
    float dummy = 0;
    assert_int_equal(lmf_ckpt_shard_write(path, &m, &dummy, NULL, &bytes, &h), LMF_OK);
    lmf_ckpt_file f = {"shard-00002-of-00003.safetensors", LMF_CKPT_SHARD, bytes, h, 2, 10, 10};
    lmf_ckpt_index ix;
    memset(&ix, 0, sizeof ix);
    ix.id = 5;
    ix.total = 10;
    float p[10];
    lmf_ckpt_want w[3] = {{0, 10, p}, {0, 0, NULL}, {0, 0, NULL}};
    assert_int_equal(lmf_ckpt_shard_read(dir, &ix, &f, w), LMF_OK);
}

/* write checkpoint `step` of run `run` ("": none) of a tiny model through the writer */
static lmf_status save_run(lmf_ckpt_writer *w, const lmf_gpt_config *cfg,
                           const lmf_param_layout *l, int step, const char *run) {
    uint64_t n = l->total;
    float *p = malloc(3 * n * sizeof(float));
    assert_non_null(p);
    for (uint64_t i = 0; i < n; i++) {
        p[i] = pv(i, step);
        p[n + i] = mv(i);
        p[2 * n + i] = vv(i);
    }
    lmf_ckpt_snapshot snap;
    memset(&snap, 0, sizeof snap);
    snap.state.step = step;
    snprintf(snap.state.run_id, sizeof snap.state.run_id, "%s", run);
    snap.state.world_size = 1;
    snap.state.batch = snap.state.grad_accum = snap.state.seq = 1;
    snap.state.tokens_per_step = 1;
    snap.state.loader.n_sources = 1; /* a loader reads at least one source */
    snap.opts_json = "{\"note\": \"test\"}";
    snap.cfg = cfg;
    snap.layout = l;
    snap.held = (lmf_range){0, n};
    snap.params = p;
    snap.m = p + n;
    snap.v = p + 2 * n;
    lmf_status s = lmf_ckpt_save(w, &snap);
    free(p); /* the writer copied what it writes */
    if (s != LMF_OK) return s;
    assert_true(lmf_ckpt_pending(w));
    return lmf_ckpt_wait(w);
}

static lmf_status save(lmf_ckpt_writer *w, const lmf_gpt_config *cfg, const lmf_param_layout *l,
                       int step) {
    return save_run(w, cfg, l, step, "");
}

static int exists(const char *rel) {
    char p[512];
    lmf_test_path(p, sizeof p, "%s", rel);
    return lmf_file_exists(p);
}

/* a single-rank writer into dir keeping 2 checkpoints, for a tiny model of 257 ids */
static void tiny_writer(const char *dir, lmf_gpt_config *cfg, lmf_param_layout *l, lmf_comm **c,
                        lmf_ckpt_writer **w) {
    assert_int_equal(lmf_config_preset("tiny", cfg), LMF_OK);
    cfg->vocab_size = 257;
    assert_int_equal(lmf_layout_build(cfg, l), LMF_OK);
    assert_int_equal(lmf_comm_create("single", c), LMF_OK);
    assert_int_equal(lmf_ckpt_writer_create(*c, dir, 2, NULL, w), LMF_OK);
}

/* checkpoints/latest holds want */
static void assert_latest(const char *want) {
    char *latest = NULL, p[512];
    size_t len = 0;
    lmf_test_path(p, sizeof p, "checkpoints/latest");
    assert_int_equal(lmf_read_file(p, &latest, &len, 100), LMF_OK);
    assert_string_equal(latest, want);
    free(latest);
}

static void test_writer_commit_prune_fail(void **state) {
    const char *dir = lmf_test_dir();
    lmf_gpt_config cfg;
    lmf_param_layout l;
    lmf_comm *c = NULL;
    lmf_ckpt_writer *w = NULL;
    tiny_writer(dir, &cfg, &l, &c, &w);
    for (int step = 1; step <= 3; step++) assert_int_equal(save(w, &cfg, &l, step), LMF_OK);
    assert_false(exists("checkpoints/step_00000001")); /* pruned: keep 2 */
    assert_true(exists("checkpoints/step_00000002/index.json"));
    assert_true(exists("checkpoints/step_00000003/shard-00000-of-00001.safetensors"));
    assert_latest("step_00000003\n");
    lmf_ckpt_write_stats ws;
    lmf_ckpt_writer_stats(w, &ws);
    assert_true(ws.bytes > 12 * l.total);

    /* a failed write: the previous checkpoint stays the newest and intact */
    lmf_ckpt_faults fail = {0, 1};
    lmf_ckpt_writer *wf = NULL;
    assert_int_equal(lmf_ckpt_writer_create(c, dir, 2, &fail, &wf), LMF_OK);
    assert_int_equal(save(wf, &cfg, &l, 4), LMF_ERR_IO);
    lmf_ckpt_writer_free(wf);
    assert_non_null(strstr(lmf_last_error(), "injected failure"));
    assert_non_null(strstr(lmf_last_error(), "previous one is intact"));
    assert_false(exists("checkpoints/step_00000004"));
    assert_false(exists("checkpoints/.tmp-step_00000004"));
    lmf_ckpt_info ck;
    assert_int_equal(lmf_ckpt_find_latest(dir, &ck), LMF_OK);
    assert_int_equal(ck.step, 3);

    /* partial reads of m and v */
    lmf_ckpt_index ix;
    assert_int_equal(lmf_ckpt_index_load(ck.dir, &ix), LMF_OK);
    assert_int_equal(ix.step, 3);
    assert_int_equal(ix.world_size, 1);
    assert_int_equal(lmf_ckpt_check_layout(ck.dir, &ix, &l), LMF_OK);
    float *m = malloc(5000 * sizeof(float)), *v = malloc(5000 * sizeof(float));
    lmf_ckpt_want want[3] = {{0, 0, NULL}, {1000, 6000, m}, {1000, 6000, v}};
    assert_int_equal(lmf_ckpt_read_ranges(ck.dir, &ix, want), LMF_OK);
    for (int i = 0; i < 5000; i++) {
        assert_true(m[i] == mv((uint64_t)i + 1000));
        assert_true(v[i] == vv((uint64_t)i + 1000));
    }
    free(m);
    free(v);
    lmf_ckpt_index_free(&ix);

    /* consolidation: one model file holding the params of step 3 */
    char out[512];
    lmf_test_path(out, sizeof out, "model");
    assert_int_equal(lmf_ckpt_consolidate(dir, out), LMF_OK);
    lmf_gpt *g = NULL;
    assert_int_equal(lmf_hf_load(out, lmf_kernels_by_name("ref"), &g), LMF_OK);
    const float *gp = lmf_gpt_params(g);
    for (int t = 0; t < l.n_tensors; t++) {
        const lmf_tensor_info *ti = &l.tensors[t];
        size_t real = (size_t)ti->shape[0] * (size_t)(ti->ndim > 1 ? ti->shape[1] : 1);
        for (size_t i = 0; i < real; i++) assert_true(gp[ti->offset + i] == pv(ti->offset + i, 3));
    }
    lmf_gpt_free(g);

    /* a flipped byte in the newest checkpoint: loading names the file, never falls back */
    char p[4200];
    snprintf(p, sizeof p, "%s/shard-00000-of-00001.safetensors", ck.dir);
    flip_byte(p, 4000);
    assert_int_equal(lmf_ckpt_load_model(dir, lmf_kernels_by_name("ref"), &g), LMF_ERR_FORMAT);
    assert_non_null(strstr(lmf_last_error(), "shard-00000-of-00001.safetensors"));
    assert_null(g);

    lmf_ckpt_writer_free(w);
    lmf_comm_free(c);
    lmf_layout_free(&l);
}

static void test_find_latest(void **state) {
    const char *dir = lmf_test_dir();
    char p[512];
    lmf_ckpt_info ck;
    assert_int_equal(lmf_ckpt_find_latest(dir, &ck), LMF_ERR_IO); /* nothing yet */
    assert_non_null(strstr(lmf_last_error(), "no checkpoint"));
    /* complete directories are those with index.json; a newer one than latest wins */
    const char *dirs[] = {"step_00000005", "step_00000009", "step_00000012", ".tmp-step_00000015"};
    for (int i = 0; i < 4; i++) {
        lmf_test_path(p, sizeof p, "checkpoints/%s", dirs[i]);
        assert_int_equal(lmf_mkdir_p(p), LMF_OK);
        lmf_test_path(p, sizeof p, "checkpoints/%s/index.json", dirs[i]);
        if (i != 2) assert_int_equal(lmf_write_file_atomic(p, "{}", 2), LMF_OK);
    }
    assert_int_equal(lmf_ckpt_find_latest(dir, &ck), LMF_OK); /* no latest: newest complete */
    assert_int_equal(ck.step, 9);
    lmf_test_path(p, sizeof p, "checkpoints/latest");
    assert_int_equal(lmf_write_file_atomic(p, "step_00000005\n", 14), LMF_OK);
    assert_int_equal(lmf_ckpt_find_latest(dir, &ck), LMF_OK); /* crash before latest moved */
    assert_int_equal(ck.step, 9);
    assert_non_null(strstr(ck.dir, "checkpoints/step_00000009"));
    assert_int_equal(lmf_write_file_atomic(p, "step_00000012\n", 14), LMF_OK);
    assert_int_equal(lmf_ckpt_find_latest(dir, &ck), LMF_ERR_IO); /* names an incomplete one */
    assert_non_null(strstr(lmf_last_error(), "step_00000012"));
    assert_int_equal(lmf_write_file_atomic(p, "garbage", 7), LMF_OK);
    assert_int_equal(lmf_ckpt_find_latest(dir, &ck), LMF_ERR_FORMAT);
    assert_non_null(strstr(lmf_last_error(), "latest"));
}

/* two runs' checkpoints in one directory: each prunes only its own, never replaces the other's
 * checkpoint of the same step, and `latest` always names one that exists */
static void test_writer_prunes_only_its_run(void **state) {
    const char *dir = lmf_test_dir();
    lmf_gpt_config cfg;
    lmf_param_layout l;
    lmf_comm *c = NULL;
    lmf_ckpt_writer *w = NULL;
    tiny_writer(dir, &cfg, &l, &c, &w);
    const char *old = "00000000000000aa", *now = "00000000000000bb";
    for (int step = 10; step <= 20; step += 5) assert_int_equal(save_run(w, &cfg, &l, step, old), LMF_OK);
    assert_false(exists("checkpoints/step_00000010"));
    for (int step = 4; step <= 12; step += 4) assert_int_equal(save_run(w, &cfg, &l, step, now), LMF_OK);
    /* the newer run kept its own newest two; the other run's step 15 and 20 stay */
    assert_false(exists("checkpoints/step_00000004"));
    assert_true(exists("checkpoints/step_00000008/index.json"));
    assert_true(exists("checkpoints/step_00000012/index.json"));
    assert_true(exists("checkpoints/step_00000015/index.json"));
    assert_true(exists("checkpoints/step_00000020/index.json"));
    assert_latest("step_00000012\n");
    char p[512];
    /* the other run's checkpoint of step 20 is not replaced */
    assert_int_equal(save_run(w, &cfg, &l, 20, now), LMF_ERR_IO);
    assert_non_null(strstr(lmf_last_error(), "belongs to another run"));
    assert_non_null(strstr(lmf_last_error(), old));
    lmf_ckpt_info ck;
    assert_int_equal(lmf_ckpt_find_latest(dir, &ck), LMF_OK);
    lmf_test_path(p, sizeof p, "checkpoints/step_00000020/trainer_state.json");
    char *ts = lmf_test_read_file(p, NULL);
    assert_non_null(strstr(ts, old));
    free(ts);
    lmf_ckpt_writer_free(w);
    lmf_comm_free(c);
    lmf_layout_free(&l);
}

/* every test in a new, empty directory */
#define IN_NEW_DIR(t) cmocka_unit_test_setup_teardown(t, lmf_test_tmpdir_setup, lmf_test_tmpdir_teardown)

int main(void) {
    const struct CMUnitTest tests[] = {
        IN_NEW_DIR(test_shard_round_trip_and_corruption),
        IN_NEW_DIR(test_empty_shard),
        IN_NEW_DIR(test_writer_commit_prune_fail),
        IN_NEW_DIR(test_find_latest),
        IN_NEW_DIR(test_writer_prunes_only_its_run),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

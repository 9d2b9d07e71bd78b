/* Split Hugging Face weights: model-0000k-of-0000N.safetensors files with their index, read back. */
/* lmf_hf_save_with and a small maximum: the files and the index (checked from the written
 * safetensors headers, not from the writer's plan), byte-identical tensors against a
 * single-file save, the model read back exactly, earlier weights replaced, and a failed save
 * leaving no file of its own and the previous weights intact. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lmforge/formats.h"
#include "lmforge/safetensors.h"

#include "lib/test_util.h"

/* odd widths, grouped K/V heads, untied lm_head */
static const lmf_gpt_config LLAMA = {3, 4, 24, 16, 37, LMF_FAMILY_LLAMA, 2, 40, 1e-5f, 10000.0f, 0};
static const lmf_gpt_config GPT2 = {2, 2, 16, 12, 50};

static lmf_gpt *model(const lmf_gpt_config *c, uint64_t seed) {
    lmf_gpt *m = NULL;
    lmf_test_ok(lmf_gpt_create(c, lmf_kernels_ref(), &m), "lmf_gpt_create");
    lmf_gpt_init_weights(m, seed);
    return m;
}

static int exists(const char *dir, const char *name) {
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    struct stat sb;
    return stat(p, &sb) == 0;
}

/* names in dir that start with prefix (or contain `part` when prefix is NULL) */
static int count_names(const char *dir, const char *prefix, const char *part) {
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += prefix ? strncmp(e->d_name, prefix, strlen(prefix)) == 0 : strstr(e->d_name, part) != NULL;
    closedir(d);
    return n;
}

/* The raw bytes of tensor `name` in dir's weights, wherever they are (single file or the file
 * the index names); malloc'd, *nb its size. */
static void *tensor_bytes(const char *dir, const char *name, size_t *nb, lmf_dtype *dt) {
    char p[4096], file[256] = "model.safetensors";
    if (!exists(dir, file)) {
        snprintf(p, sizeof p, "%s/model.safetensors.index.json", dir);
        json_error_t err;
        json_t *ix = json_load_file(p, 0, &err);
        assert_non_null(ix);
        json_t *f = json_object_get(json_object_get(ix, "weight_map"), name);
        assert_true(json_is_string(f));
        snprintf(file, sizeof file, "%s", json_string_value(f));
        json_decref(ix);
    }
    snprintf(p, sizeof p, "%s/%s", dir, file);
    lmf_st_file *st = NULL;
    lmf_test_ok(lmf_st_open(p, &st), p);
    const lmf_st_tensor *t = lmf_st_find(st, name);
    assert_non_null(t);
    *nb = (size_t)(t->end - t->begin);
    *dt = t->dtype;
    void *buf = malloc(*nb ? *nb : 1);
    assert_non_null(buf);
    lmf_test_ok(lmf_st_read_raw(st, t, buf, *nb), "lmf_st_read_raw");
    lmf_st_close(st);
    return buf;
}

/* Check a split directory against its own files: every model-k-of-N file exists, holds exactly
 * the tensors the index gives it, and at most max tensor bytes unless it holds one tensor;
 * total_size is the sum; the files are in order (a file's tensors all come before the next
 * file's in the single-file save `single`). Returns N. */
static int check_split(const char *dir, const char *single, uint64_t max) {
    char p[4096];
    snprintf(p, sizeof p, "%s/model.safetensors.index.json", dir);
    json_error_t err;
    json_t *ix = json_load_file(p, JSON_REJECT_DUPLICATES, &err);
    assert_non_null(ix);
    json_t *map = json_object_get(ix, "weight_map");
    assert_true(json_is_object(map));
    json_t *total = json_object_get(json_object_get(ix, "metadata"), "total_size");
    assert_true(json_is_integer(total));
    int n = count_names(dir, "model-", NULL);
    assert_true(n >= 2);
    snprintf(p, sizeof p, "%s/model.safetensors", single);
    lmf_st_file *one = NULL;
    lmf_test_ok(lmf_st_open(p, &one), p);
    assert_int_equal(json_object_size(map), (size_t)lmf_st_count(one));
    uint64_t sum = 0;
    int in_files = 0, last_index = -1;
    for (int k = 1; k <= n; k++) {
        char name[64];
        snprintf(name, sizeof name, "model-%05d-of-%05d.safetensors", k, n);
        snprintf(p, sizeof p, "%s/%s", dir, name);
        lmf_st_file *f = NULL;
        lmf_test_ok(lmf_st_open(p, &f), p);
        assert_string_equal(lmf_st_metadata(f, "format"), "pt");
        uint64_t bytes = 0;
        for (int i = 0; i < lmf_st_count(f); i++) {
            const lmf_st_tensor *t = lmf_st_get(f, i);
            json_t *e = json_object_get(map, t->name);
            assert_true(json_is_string(e));
            assert_string_equal(json_string_value(e), name);
            bytes += t->end - t->begin;
            /* the same place in the order as in the single file */
            int at = -1;
            for (int j = 0; j < lmf_st_count(one); j++)
                if (strcmp(lmf_st_get(one, j)->name, t->name) == 0) at = j;
            assert_int_equal(at, last_index + 1);
            last_index = at;
        }
        assert_true(lmf_st_count(f) >= 1);
        assert_true(bytes <= max || lmf_st_count(f) == 1);
        sum += bytes;
        in_files += lmf_st_count(f);
        lmf_st_close(f);
    }
    assert_int_equal(in_files, lmf_st_count(one));
    assert_int_equal((uint64_t)json_integer_value(total), sum);
    lmf_st_close(one);
    json_decref(ix);
    return n;
}

/* every tensor of a's weights has b's bytes and dtype */
static void same_tensors(const char *a, const char *b, const lmf_gpt *m) {
    const lmf_param_layout *l = lmf_gpt_layout((lmf_gpt *)m);
    for (int i = 0; i < l->n_tensors; i++) {
        size_t na = 0, nb = 0;
        lmf_dtype da, db;
        void *x = tensor_bytes(a, l->tensors[i].name, &na, &da);
        void *y = tensor_bytes(b, l->tensors[i].name, &nb, &db);
        assert_int_equal(na, nb);
        assert_int_equal(da, db);
        assert_memory_equal(x, y, na);
        free(x);
        free(y);
    }
}

static void same_params(lmf_gpt *a, const char *dir) {
    lmf_gpt *b = NULL;
    lmf_test_ok(lmf_hf_load(dir, lmf_kernels_ref(), &b), dir);
    const lmf_param_layout *l = lmf_gpt_layout(a);
    assert_int_equal(lmf_gpt_layout(b)->n_tensors, l->n_tensors);
    for (int i = 0; i < l->n_tensors; i++)
        assert_memory_equal(lmf_gpt_params(a) + l->tensors[i].offset,
                            lmf_gpt_params(b) + l->tensors[i].offset,
                            (size_t)l->tensors[i].numel * sizeof(float));
    lmf_gpt_free(b);
}

static void roundtrip(const lmf_gpt_config *c, lmf_dtype dt, uint64_t max) {
    lmf_gpt *m = model(c, 11);
    char single[4096], split[4096], again[4096];
    lmf_test_fresh_dir(single, sizeof single, "single");
    lmf_test_fresh_dir(split, sizeof split, "split");
    lmf_test_fresh_dir(again, sizeof again, "again");
    lmf_hf_save_opts one = {dt, 0, -1}, small = {dt, max, -1};
    lmf_test_ok(lmf_hf_save_with(m, single, -1, &one), "single save");
    assert_true(exists(single, "model.safetensors"));
    assert_false(exists(single, "model.safetensors.index.json"));
    lmf_test_ok(lmf_hf_save_with(m, split, -1, &small), "split save");
    assert_false(exists(split, "model.safetensors"));
    assert_int_equal(count_names(split, NULL, ".staged"), 0);
    assert_int_equal(count_names(split, NULL, ".tmp"), 0);
    int n = check_split(split, single, max);
    print_message("%s %s, at most %llu bytes a file: %d files\n", lmf_family_name(c->family),
                  lmf_dtype_name(dt), (unsigned long long)max, n);
    same_tensors(split, single, m);
    if (dt == LMF_F32) same_params(m, split);
    /* read back and written again, split the same way: the same files byte for byte */
    lmf_gpt *b = NULL;
    lmf_test_ok(lmf_hf_load(split, lmf_kernels_ref(), &b), "load split");
    lmf_test_ok(lmf_hf_save_with(b, again, -1, &small), "save again");
    for (int k = 1; k <= n; k++) {
        char name[64], pa[4096], pb[4096];
        snprintf(name, sizeof name, "model-%05d-of-%05d.safetensors", k, n);
        snprintf(pa, sizeof pa, "%s/%s", split, name);
        snprintf(pb, sizeof pb, "%s/%s", again, name);
        size_t la = 0, lb = 0;
        char *x = lmf_test_read_file(pa, &la), *y = lmf_test_read_file(pb, &lb);
        assert_int_equal(la, lb);
        assert_memory_equal(x, y, la);
        free(x);
        free(y);
    }
    lmf_gpt_free(b);
    lmf_gpt_free(m);
}

static void test_llama_split_fp32(void **st) {
    (void)st;
    roundtrip(&LLAMA, LMF_F32, 6000);
}

static void test_llama_split_bf16(void **st) {
    (void)st;
    roundtrip(&LLAMA, LMF_BF16, 2500);
}

/* GPT-2: the padded embedding rows stay out of the files */
static void test_gpt2_split(void **st) {
    (void)st;
    roundtrip(&GPT2, LMF_F16, 3000);
}

/* A maximum below every tensor: one tensor a file. */
static void test_one_tensor_per_file(void **st) {
    (void)st;
    lmf_gpt *m = model(&LLAMA, 3);
    char dir[4096];
    lmf_test_fresh_dir(dir, sizeof dir, "each");
    lmf_hf_save_opts o = {LMF_F32, 1, -1};
    lmf_test_ok(lmf_hf_save_with(m, dir, -1, &o), "save");
    assert_int_equal(count_names(dir, "model-", NULL), lmf_gpt_layout(m)->n_tensors);
    same_params(m, dir);
    lmf_gpt_free(m);
}

/* Saving over earlier weights replaces them: single -> split -> split in another count ->
 * single, each time the directory holds exactly the new model. */
static void test_replaces_earlier_weights(void **st) {
    (void)st;
    lmf_gpt *a = model(&LLAMA, 1), *b = model(&LLAMA, 2), *c = model(&LLAMA, 3);
    char dir[4096];
    lmf_test_fresh_dir(dir, sizeof dir, "replace");
    lmf_hf_save_opts one = {LMF_F32, 0, -1}, three = {LMF_F32, 20000, -1}, many = {LMF_F32, 3000, -1};
    lmf_test_ok(lmf_hf_save_with(a, dir, -1, &one), "single");
    lmf_test_ok(lmf_hf_save_with(b, dir, -1, &many), "split");
    assert_false(exists(dir, "model.safetensors"));
    int n_many = count_names(dir, "model-", NULL);
    same_params(b, dir);
    lmf_test_ok(lmf_hf_save_with(c, dir, -1, &three), "split again");
    int n_three = count_names(dir, "model-", NULL);
    assert_true(n_three >= 2 && n_three < n_many);
    char name[64];
    snprintf(name, sizeof name, "model-%05d-of-%05d.safetensors", 1, n_three);
    assert_true(exists(dir, name));
    same_params(c, dir);
    lmf_test_ok(lmf_hf_save_with(a, dir, -1, &one), "single again");
    assert_int_equal(count_names(dir, "model-", NULL), 0);
    assert_false(exists(dir, "model.safetensors.index.json"));
    same_params(a, dir);
    lmf_gpt_free(a);
    lmf_gpt_free(b);
    lmf_gpt_free(c);
}

/* A save that fails while writing its third file (a directory stands where that file's
 * temporary goes) leaves none of its files and the earlier weights as they were. */
static void test_failed_save_leaves_nothing(void **st) {
    (void)st;
    lmf_gpt *a = model(&LLAMA, 1), *b = model(&LLAMA, 2);
    char dir[4096], probe[4096], block[4096];
    lmf_test_fresh_dir(probe, sizeof probe, "probe");
    lmf_hf_save_opts one = {LMF_F32, 0, -1}, many = {LMF_F32, 3000, -1};
    lmf_test_ok(lmf_hf_save_with(b, probe, -1, &many), "probe");
    int n = count_names(probe, "model-", NULL);
    assert_true(n >= 4);
    for (int earlier = 0; earlier < 2; earlier++) {
        lmf_test_fresh_dir(dir, sizeof dir, "failed%d", earlier);
        lmf_test_ok(lmf_hf_save_with(a, dir, -1, earlier ? &many : &one), "earlier weights");
        int before = count_names(dir, "model", NULL);
        snprintf(block, sizeof block, "%s/model-%05d-of-%05d.safetensors.staged.tmp", dir, 3, n);
        assert_int_equal(mkdir(block, 0777), 0);
        assert_int_not_equal(lmf_hf_save_with(b, dir, -1, &many), LMF_OK);
        print_message("refused: %s\n", lmf_last_error());
        assert_non_null(strstr(lmf_last_error(), "model-00003-of-"));
        assert_int_equal(rmdir(block), 0);
        assert_int_equal(count_names(dir, NULL, ".staged"), 0);
        assert_int_equal(count_names(dir, "model", NULL), before);
        same_params(a, dir);
    }
    lmf_gpt_free(a);
    lmf_gpt_free(b);
}

/* lmf_hf_save (what the trainer's export calls) stays one file below 5 GB */
static void test_default_is_one_file(void **st) {
    (void)st;
    lmf_gpt *m = model(&LLAMA, 5);
    char dir[4096];
    lmf_test_fresh_dir(dir, sizeof dir, "default");
    lmf_test_ok(lmf_hf_save(m, dir, -1), "save");
    assert_true(exists(dir, "model.safetensors"));
    assert_int_equal(count_names(dir, "model-", NULL), 0);
    assert_int_equal(LMF_HF_MAX_SHARD_DEFAULT, 5000000000ull);
    lmf_gpt_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_llama_split_fp32),
        cmocka_unit_test(test_llama_split_bf16),
        cmocka_unit_test(test_gpt2_split),
        cmocka_unit_test(test_one_tensor_per_file),
        cmocka_unit_test(test_replaces_earlier_weights),
        cmocka_unit_test(test_failed_save_leaves_nothing),
        cmocka_unit_test(test_default_is_one_file),
    };
    return cmocka_run_group_tests(tests, lmf_test_tmpdir_setup, lmf_test_tmpdir_teardown);
}

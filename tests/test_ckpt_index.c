/* Checkpoint index (index.json) tests: round trip, checksum, and rejection of malformed input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "lmforge/ckpt_format.h"

/* A valid index: 2 ranks over 100 floats, 3 tensors, 2 shards and the 2 meta files. */
static void sample(lmf_ckpt_index *ix, lmf_ckpt_tensor *t, lmf_ckpt_file *f) {
    memset(ix, 0, sizeof *ix);
    memset(t, 0, 3 * sizeof *t);
    memset(f, 0, 4 * sizeof *f);
    ix->id = 0x0123456789abcdefull;
    ix->step = 42;
    ix->world_size = 2;
    ix->zero_stage = 2;
    ix->total = 100;
    snprintf(t[0].name, sizeof t[0].name, "wte.weight");
    t[0].ndim = 2, t[0].shape[0] = 5, t[0].shape[1] = 8, t[0].offset = 0, t[0].numel = 48;
    snprintf(t[1].name, sizeof t[1].name, "ln_f.weight");
    t[1].ndim = 1, t[1].shape[0] = 8, t[1].shape[1] = 1, t[1].offset = 48, t[1].numel = 8;
    snprintf(t[2].name, sizeof t[2].name, "ln_f.bias");
    t[2].ndim = 1, t[2].shape[0] = 44, t[2].shape[1] = 1, t[2].offset = 56, t[2].numel = 44;
    ix->n_tensors = 3;
    ix->tensors = t;
    for (int r = 0; r < 2; r++) {
        snprintf(f[r].name, sizeof f[r].name, "shard-%05d-of-00002.safetensors", r);
        f[r].kind = LMF_CKPT_SHARD;
        f[r].rank = r;
        f[r].begin = r ? 50 : 0;
        f[r].end = r ? 100 : 50;
        f[r].bytes = 800 + (uint64_t)r;
        f[r].xxh3 = 0xfedcba9876543210ull + (uint64_t)r;
    }
    snprintf(f[2].name, sizeof f[2].name, "config.json");
    snprintf(f[3].name, sizeof f[3].name, "trainer_state.json");
    for (int i = 2; i < 4; i++) f[i].kind = LMF_CKPT_META, f[i].rank = -1, f[i].bytes = 10, f[i].xxh3 = 7;
    ix->n_files = 4;
    ix->files = f;
}

static char *sample_text(void) {
    lmf_ckpt_index ix;
    lmf_ckpt_tensor t[3];
    lmf_ckpt_file f[4];
    sample(&ix, t, f);
    char *txt = NULL;
    assert_int_equal(lmf_ckpt_index_format(&ix, &txt), LMF_OK);
    return txt;
}

/* The documented checksum: XXH3-64 of the compact, key-sorted, ASCII form without the field. */
static char *resign(json_t *root) {
    json_object_del(root, "index_xxh3");
    char *canon = json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII);
    assert_non_null(canon);
    char h[17];
    snprintf(h, sizeof h, "%016llx", (unsigned long long)XXH3_64bits(canon, strlen(canon)));
    free(canon);
    json_object_set_new(root, "index_xxh3", json_string(h));
    char *out = json_dumps(root, JSON_INDENT(3));
    json_decref(root);
    return out;
}

static json_t *sample_json(void) {
    char *txt = sample_text();
    json_t *j = json_loads(txt, 0, NULL);
    free(txt);
    assert_non_null(j);
    return j;
}

static lmf_status parse(const char *txt, lmf_ckpt_index *ix) {
    return lmf_ckpt_index_parse(txt, strlen(txt), "ck/index.json", ix);
}

static void test_round_trip(void **state) {
    char *txt = sample_text();
    lmf_ckpt_index ix;
    assert_int_equal(parse(txt, &ix), LMF_OK);
    assert_true(ix.id == 0x0123456789abcdefull);
    assert_int_equal(ix.step, 42);
    assert_int_equal(ix.world_size, 2);
    assert_int_equal(ix.zero_stage, 2);
    assert_int_equal(ix.total, 100);
    assert_int_equal(ix.n_tensors, 3);
    assert_string_equal(ix.tensors[0].name, "wte.weight");
    assert_int_equal(ix.tensors[0].shape[1], 8);
    assert_int_equal(ix.tensors[2].offset, 56);
    assert_int_equal(ix.n_files, 4);
    assert_int_equal(ix.files[1].kind, LMF_CKPT_SHARD);
    assert_int_equal(ix.files[1].begin, 50);
    assert_int_equal(ix.files[1].bytes, 801);
    assert_true(ix.files[1].xxh3 == 0xfedcba9876543211ull);
    const lmf_ckpt_file *c = lmf_ckpt_index_find(&ix, "trainer_state.json");
    assert_non_null(c);
    assert_int_equal(c->kind, LMF_CKPT_META);
    assert_null(lmf_ckpt_index_find(&ix, "nope"));
    lmf_ckpt_index_free(&ix);
    free(txt);
}

static void test_whitespace_and_order_do_not_matter(void **state) {
    json_t *j = sample_json();
    char *txt = json_dumps(j, JSON_INDENT(4) | JSON_SORT_KEYS); /* same content, other layout */
    json_decref(j);
    lmf_ckpt_index ix;
    assert_int_equal(parse(txt, &ix), LMF_OK);
    lmf_ckpt_index_free(&ix);
    free(txt);
}

static void test_tampered_value_fails_checksum(void **state) {
    json_t *j = sample_json();
    json_t *f0 = json_array_get(json_object_get(j, "files"), 0);
    json_object_set_new(f0, "bytes", json_integer(799)); /* not re-signed */
    char *txt = json_dumps(j, 0);
    json_decref(j);
    lmf_ckpt_index ix;
    assert_int_equal(parse(txt, &ix), LMF_ERR_FORMAT);
    assert_non_null(strstr(lmf_last_error(), "ck/index.json"));
    assert_non_null(strstr(lmf_last_error(), "checksum mismatch"));
    assert_int_equal(ix.n_files, 0);
    free(txt);
}

static void test_missing_checksum(void **state) {
    json_t *j = sample_json();
    json_object_del(j, "index_xxh3");
    char *txt = json_dumps(j, 0);
    json_decref(j);
    lmf_ckpt_index ix;
    assert_int_equal(parse(txt, &ix), LMF_ERR_FORMAT);
    assert_non_null(strstr(lmf_last_error(), "index_xxh3"));
    free(txt);
}

/* edits that keep a valid checksum but break a rule; each must be rejected */
typedef void (*edit_fn)(json_t *root);
static json_t *file_at(json_t *r, size_t i) { return json_array_get(json_object_get(r, "files"), i); }
static json_t *tensor_at(json_t *r, size_t i) { return json_array_get(json_object_get(r, "tensors"), i); }
static void e_gap(json_t *r) { json_object_set_new(file_at(r, 1), "begin", json_integer(51)); }
static void e_overlap(json_t *r) { json_object_set_new(file_at(r, 1), "begin", json_integer(49)); }
static void e_short(json_t *r) { json_object_set_new(file_at(r, 1), "end", json_integer(99)); }
static void e_past_total(json_t *r) { json_object_set_new(file_at(r, 1), "end", json_integer(101)); }
static void e_slash(json_t *r) { json_object_set_new(file_at(r, 0), "name", json_string("../x")); }
static void e_dotname(json_t *r) { json_object_set_new(file_at(r, 0), "name", json_string(".hidden")); }
static void e_dup_name(json_t *r) { json_object_set_new(file_at(r, 1), "name", json_string("shard-00000-of-00002.safetensors")); }
static void e_no_config(json_t *r) { json_array_remove(json_object_get(r, "files"), 2); }
static void e_rank(json_t *r) { json_object_set_new(file_at(r, 1), "rank", json_integer(2)); }
static void e_kind(json_t *r) { json_object_set_new(file_at(r, 1), "kind", json_string("blob")); }
static void e_hex(json_t *r) { json_object_set_new(file_at(r, 0), "xxh3", json_string("0123456789abcdeg")); }
static void e_neg_bytes(json_t *r) { json_object_set_new(file_at(r, 0), "bytes", json_integer(-1)); }
static void e_bytes_str(json_t *r) { json_object_set_new(file_at(r, 0), "bytes", json_string("800")); }
static void e_world0(json_t *r) { json_object_set_new(r, "world_size", json_integer(0)); }
static void e_stage(json_t *r) { json_object_set_new(r, "zero_stage", json_integer(4)); }
static void e_total0(json_t *r) { json_object_set_new(r, "flat_total", json_integer(0)); }
static void e_dtype(json_t *r) { json_object_set_new(r, "dtype", json_string("BF16")); }
static void e_contents(json_t *r) { json_object_set_new(r, "shard_contents", json_pack("[ss]", "params", "exp_avg")); }
static void e_step(json_t *r) { json_object_set_new(r, "step", json_real(1.5)); }
static void e_id(json_t *r) { json_object_set_new(r, "checkpoint_id", json_string("1234")); }
static void e_t_overlap(json_t *r) { json_object_set_new(tensor_at(r, 1), "offset", json_integer(40)); }
static void e_t_past(json_t *r) { json_object_set_new(tensor_at(r, 2), "numel", json_integer(45)); }
static void e_t_numel(json_t *r) { json_object_set_new(tensor_at(r, 0), "numel", json_integer(39)); }
static void e_t_shape0(json_t *r) { json_object_set_new(tensor_at(r, 0), "shape", json_pack("[i, i]", 0, 8)); }
static void e_t_shape3(json_t *r) { json_object_set_new(tensor_at(r, 0), "shape", json_pack("[i, i, i]", 1, 1, 8)); }
static void e_t_name(json_t *r) { json_object_set_new(tensor_at(r, 0), "name", json_string("")); }
static void e_t_none(json_t *r) { json_object_set_new(r, "tensors", json_array()); }
static void e_files_obj(json_t *r) { json_object_set_new(r, "files", json_object()); }
static void e_huge(json_t *r) { json_object_set_new(file_at(r, 1), "end", json_integer(INT64_MAX)); }

static void test_rule_violations_rejected(void **state) {
    struct {
        const char *what;
        edit_fn fn;
    } cases[] = {
        {"gap between shards", e_gap},     {"overlapping shards", e_overlap},
        {"shards short of total", e_short}, {"shard past total", e_past_total},
        {"path in a name", e_slash},        {"hidden name", e_dotname},
        {"duplicate name", e_dup_name},     {"no config.json", e_no_config},
        {"rank >= world", e_rank},          {"unknown kind", e_kind},
        {"bad hex", e_hex},                 {"negative bytes", e_neg_bytes},
        {"bytes as string", e_bytes_str},   {"world 0", e_world0},
        {"stage 4", e_stage},               {"total 0", e_total0},
        {"dtype", e_dtype},                 {"contents", e_contents},
        {"real step", e_step},              {"short id", e_id},
        {"tensor overlap", e_t_overlap},    {"tensor past total", e_t_past},
        {"numel < shape", e_t_numel},       {"zero dim", e_t_shape0},
        {"3 dims", e_t_shape3},             {"empty tensor name", e_t_name},
        {"no tensors", e_t_none},           {"files not array", e_files_obj},
        {"huge end", e_huge},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *j = sample_json();
        cases[i].fn(j);
        char *txt = resign(j);
        lmf_ckpt_index ix;
        lmf_status s = parse(txt, &ix);
        if (s != LMF_ERR_FORMAT) fail_msg("case '%s' was accepted", cases[i].what);
        assert_non_null(strstr(lmf_last_error(), "ck/index.json"));
        assert_int_equal(ix.n_files, 0);
        assert_null(ix.files);
        free(txt);
    }
}

static void test_version_and_format(void **state) {
    json_t *j = sample_json();
    json_object_set_new(j, "version", json_integer(3));
    char *txt = resign(j);
    lmf_ckpt_index ix;
    assert_int_equal(parse(txt, &ix), LMF_ERR_FORMAT);
    assert_non_null(strstr(lmf_last_error(), "version 3"));
    free(txt);
    j = sample_json();
    json_object_set_new(j, "format", json_string("something.else"));
    txt = resign(j);
    assert_int_equal(parse(txt, &ix), LMF_ERR_FORMAT);
    assert_non_null(strstr(lmf_last_error(), "not an lmforge checkpoint index"));
    free(txt);
}

static void test_not_json(void **state) {
    const char *bad[] = {"", "{", "[]", "null", "{\"format\": \"lmforge.checkpoint\"",
                         "{\"a\":1,\"a\":2}", "\x01\x02\x03"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        lmf_ckpt_index ix;
        assert_int_equal(parse(bad[i], &ix), LMF_ERR_FORMAT);
        assert_non_null(strstr(lmf_last_error(), "ck/index.json"));
    }
    /* a truncated valid index at every length fails cleanly */
    char *txt = sample_text();
    size_t n = strlen(txt);
    for (size_t k = 0; k + 2 < n; k += 7) {
        lmf_ckpt_index ix;
        assert_int_equal(lmf_ckpt_index_parse(txt, k, "ck/index.json", &ix), LMF_ERR_FORMAT);
    }
    free(txt);
}

static void test_names(void **state) {
    assert_true(lmf_ckpt_name_ok("shard-00000-of-00002.safetensors"));
    assert_true(lmf_ckpt_name_ok("config.json"));
    assert_false(lmf_ckpt_name_ok(""));
    assert_false(lmf_ckpt_name_ok("."));
    assert_false(lmf_ckpt_name_ok(".."));
    assert_false(lmf_ckpt_name_ok("a/b"));
    assert_false(lmf_ckpt_name_ok("/etc/passwd"));
    assert_false(lmf_ckpt_name_ok("a b"));
    char longname[200];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    assert_false(lmf_ckpt_name_ok(longname));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_whitespace_and_order_do_not_matter),
        cmocka_unit_test(test_tampered_value_fails_checksum),
        cmocka_unit_test(test_missing_checksum),
        cmocka_unit_test(test_rule_violations_rejected),
        cmocka_unit_test(test_version_and_format),
        cmocka_unit_test(test_not_json),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

/* Datasets and mixtures: data specs (file, directory, glob, list, weights, JSON, backslash
 * escapes for paths with spec characters), errors that
 * name the token file, thousands of files through a few descriptors, truncation while in use,
 * the shard-end rule against one concatenated file, mixture shares, epochs per source, resume
 * and world sizes with a mixture; many spans read at once against one read each. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lmforge/data.h"

#include "lib/test_util.h"

/* a token file of n tokens base, base+1, ... (tb bytes per token); returns path in p */
static char *make_tokens(char *p, size_t cap, const char *name, uint64_t n, uint32_t base, int tb) {
    lmf_test_path(p, cap, "%s", name);
    uint32_t *t = malloc((n ? n : 1) * sizeof *t);
    for (uint64_t i = 0; i < n; i++) t[i] = base + (uint32_t)i;
    lmf_test_ok(lmf_tokens_write(p, t, n, tb), "write tokens");
    free(t);
    return p;
}

/* the same without fsync, for thousands of files: header words magic, version, count */
static void quick_tokens(const char *path, uint64_t n, uint32_t base, int tb) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    int32_t h[256] = {LMF_TOKENS_MAGIC, tb == 2 ? 1 : 2, (int32_t)n};
    assert_int_equal(fwrite(h, sizeof h, 1, f), 1);
    for (uint64_t i = 0; i < n; i++) {
        uint32_t v = base + (uint32_t)i;
        uint16_t v16 = (uint16_t)v;
        assert_int_equal(fwrite(tb == 2 ? (void *)&v16 : (void *)&v, (size_t)tb, 1, f), 1);
    }
    assert_int_equal(fclose(f), 0);
}

static lmf_dataset *open_ok(const char *spec) {
    lmf_dataset *d = NULL;
    lmf_test_ok(lmf_dataset_open(spec, &d), spec);
    return d;
}

static void expect_fail(const char *spec, const char *needle1, const char *needle2) {
    lmf_dataset *d = NULL;
    assert_int_not_equal(lmf_dataset_open(spec, &d), LMF_OK);
    assert_null(d);
    const char *m = lmf_last_error();
    if (!strstr(m, needle1) || (needle2 && !strstr(m, needle2)))
        fail_msg("spec %s: error '%s' does not say '%s' / '%s'", spec, m, needle1,
                 needle2 ? needle2 : "");
}

static void test_spec_forms(void **state) {
    char dir[512], p[512], spec[2048];
    lmf_test_fresh_dir(dir, sizeof dir, "forms");
    make_tokens(p, sizeof p, "forms/b_001.bin", 100, 0, 2);
    make_tokens(p, sizeof p, "forms/a_000.bin", 50, 0, 4); /* version 2 mixes with version 1 */
    make_tokens(p, sizeof p, "forms/c_002.bin", 70, 0, 2);
    lmf_test_path(p, sizeof p, "forms/notes.txt");
    lmf_test_write_text(p, "not a token file, and not *.bin");

    lmf_dataset *d = open_ok(dir); /* a directory: its *.bin files, sorted */
    assert_int_equal(lmf_dataset_num_sources(d), 1);
    assert_int_equal(lmf_dataset_num_files(d), 3);
    assert_non_null(strstr(lmf_dataset_file_path(d, 0), "a_000.bin"));
    assert_non_null(strstr(lmf_dataset_file_path(d, 2), "c_002.bin"));
    assert_int_equal(lmf_dataset_source_tokens(d, 0), 220);
    assert_int_equal(lmf_dataset_open_files(d), 0); /* nothing held open */
    int32_t got[5];
    lmf_test_ok(lmf_dataset_read(d, 0, 45, 5, got), "read v2");
    for (int i = 0; i < 5; i++) assert_int_equal(got[i], 45 + i);
    lmf_test_ok(lmf_dataset_read(d, 1, 95, 5, got), "read v1");
    for (int i = 0; i < 5; i++) assert_int_equal(got[i], 95 + i);
    lmf_dataset_close(d);

    snprintf(spec, sizeof spec, "%s/[bc]_*.bin", dir); /* a glob, sorted */
    d = open_ok(spec);
    assert_int_equal(lmf_dataset_num_files(d), 2);
    assert_non_null(strstr(lmf_dataset_file_path(d, 0), "b_001.bin"));
    lmf_dataset_close(d);

    snprintf(spec, sizeof spec, "%s/c_002.bin,%s/a_000.bin", dir, dir); /* a list, in its order */
    d = open_ok(spec);
    assert_int_equal(lmf_dataset_num_sources(d), 1);
    assert_int_equal(lmf_dataset_num_files(d), 2);
    assert_non_null(strstr(lmf_dataset_file_path(d, 0), "c_002.bin"));
    lmf_dataset_close(d);

    snprintf(spec, sizeof spec, "3:%s/a_000.bin,1:%s/[bc]_*.bin", dir, dir); /* weights */
    d = open_ok(spec);
    assert_int_equal(lmf_dataset_num_sources(d), 2);
    assert_true(lmf_dataset_source_weight(d, 0) == 0.75);
    assert_true(lmf_dataset_source_weight(d, 1) == 0.25);
    int first, count;
    lmf_dataset_source_files(d, 1, &first, &count);
    assert_int_equal(first, 1);
    assert_int_equal(count, 2);
    assert_int_equal(lmf_dataset_source_tokens(d, 1), 170);
    lmf_dataset_close(d);

    /* a mixture file; paths relative to it */
    lmf_test_path(p, sizeof p, "forms/mix.json");
    lmf_test_write_text(p, "{\"sources\": [{\"name\": \"web\", \"weight\": 0.7, \"data\": \"b_*.bin,c_002.bin\"},"
                           " {\"name\": \"code\", \"weight\": 0.3, \"data\": \"a_000.bin\"}]}");
    d = open_ok(p);
    assert_int_equal(lmf_dataset_num_sources(d), 2);
    assert_string_equal(lmf_dataset_source_name(d, 0), "web");
    assert_string_equal(lmf_dataset_source_name(d, 1), "code");
    assert_true(lmf_dataset_source_weight(d, 0) > 0.6999 && lmf_dataset_source_weight(d, 0) < 0.7001);
    assert_int_equal(lmf_dataset_source_tokens(d, 0), 170);
    lmf_dataset_close(d);
}

static void test_spec_errors(void **state) {
    char dir[512], p[512], spec[2048];
    lmf_test_fresh_dir(dir, sizeof dir, "errs");
    make_tokens(p, sizeof p, "errs/good.bin", 100, 0, 2);
    snprintf(spec, sizeof spec, "%s/good.bin,%s/missing.bin", dir, dir);
    expect_fail(spec, "missing.bin", "cannot open");
    lmf_test_path(p, sizeof p, "errs/empty.bin");
    lmf_test_write_bytes(p, "", 0);
    snprintf(spec, sizeof spec, "%s/good.bin,%s", dir, p);
    expect_fail(spec, "empty.bin", "empty");
    make_tokens(p, sizeof p, "errs/none.bin", 0, 0, 2);
    expect_fail(p, "none.bin", "no tokens");
    lmf_test_path(p, sizeof p, "errs/bad.bin");
    char text[1200];
    memset(text, 'x', sizeof text - 1);
    text[sizeof text - 1] = '\0';
    lmf_test_write_text(p, text); /* longer than a header, no magic number */
    snprintf(spec, sizeof spec, "%s/*.bin", dir); /* the glob finds the malformed one */
    expect_fail(spec, "bad.bin", "magic");
    make_tokens(p, sizeof p, "errs/cut.bin", 100, 0, 2);
    assert_int_equal(truncate(p, 1024 + 150), 0);
    expect_fail(p, "cut.bin", "truncated");
    snprintf(spec, sizeof spec, "%s/nothing_*.bin", dir);
    expect_fail(spec, "matches no files", NULL);
    lmf_test_fresh_dir(p, sizeof p, "errs/emptydir");
    expect_fail(p, "holds no token files", NULL);
    snprintf(spec, sizeof spec, "0.5:%s/good.bin,%s/good.bin", dir, dir);
    expect_fail(spec, "mixes weighted", NULL);
    snprintf(spec, sizeof spec, "0:%s/good.bin,1:%s/good.bin", dir, dir);
    expect_fail(spec, "weight", "positive");
    snprintf(spec, sizeof spec, "%s/good.bin,", dir);
    expect_fail(spec, "empty item", NULL);
    lmf_test_path(p, sizeof p, "errs/mix.json");
    lmf_test_write_text(p, "{\"sources\": [{\"name\": \"x\", \"data\": \"good.bin\"}]}");
    expect_fail(p, "mix.json", "weight");
    lmf_test_write_text(p, "{\"sources\": [");
    expect_fail(p, "mix.json", "not valid JSON");
}

/* paths holding the spec's own characters (comma, colon, glob characters, backslash), named
 * with backslash escapes, in every form of spec; the files are told apart by their sizes */
static void test_spec_escapes(void **state) {
    char dir[512], p[512], spec[4096];
    lmf_test_fresh_dir(dir, sizeof dir, "esc,dir");
    make_tokens(p, sizeof p, "esc,dir/a,b.bin", 11, 0, 2);
    make_tokens(p, sizeof p, "esc,dir/0.5:c.bin", 12, 0, 2);
    make_tokens(p, sizeof p, "esc,dir/d[1]*?.bin", 13, 0, 2);
    make_tokens(p, sizeof p, "esc,dir/back\\slash.bin", 14, 0, 2);
    make_tokens(p, sizeof p, "esc,dir/plain.bin", 15, 0, 2);
    char edir[600]; /* the directory, its comma escaped */
    snprintf(edir, sizeof edir, "%s", dir);
    char *c = strrchr(edir, ',');
    memmove(c + 1, c, strlen(c) + 1);
    *c = '\\';
    /* a list: one file per item, comma, colon, glob characters and backslash literal */
    snprintf(spec, sizeof spec, "%s/a\\,b.bin,%s/0.5\\:c.bin,%s/d\\[1\\]\\*\\?.bin,%s/back\\\\slash.bin",
             edir, edir, edir, edir);
    lmf_dataset *d = open_ok(spec);
    assert_int_equal(lmf_dataset_num_sources(d), 1);
    assert_int_equal(lmf_dataset_num_files(d), 4);
    for (int i = 0; i < 4; i++) assert_int_equal(lmf_dataset_file_tokens(d, i), 11 + i);
    assert_non_null(strstr(lmf_dataset_file_path(d, 0), "esc,dir/a,b.bin"));
    assert_non_null(strstr(lmf_dataset_file_path(d, 3), "back\\slash.bin"));
    lmf_dataset_close(d);
    /* weights: an escaped colon is no weight; the source's name is the path unescaped */
    snprintf(spec, sizeof spec, "3:%s/a\\,b.bin,1:%s/0.5\\:c.bin", edir, edir);
    d = open_ok(spec);
    assert_int_equal(lmf_dataset_num_sources(d), 2);
    assert_true(lmf_dataset_source_weight(d, 0) == 0.75);
    assert_int_equal(lmf_dataset_source_tokens(d, 0), 11);
    assert_int_equal(lmf_dataset_source_tokens(d, 1), 12);
    assert_non_null(strstr(lmf_dataset_source_name(d, 1), "esc,dir/0.5:c.bin"));
    lmf_dataset_close(d);
    /* a glob in an escaped directory, with an escaped '[' kept literal by glob */
    snprintf(spec, sizeof spec, "%s/d\\[1]*.bin", edir);
    d = open_ok(spec);
    assert_int_equal(lmf_dataset_num_files(d), 1);
    assert_int_equal(lmf_dataset_file_tokens(d, 0), 13);
    lmf_dataset_close(d);
    snprintf(spec, sizeof spec, "%s/*.bin", edir); /* all five, sorted */
    d = open_ok(spec);
    assert_int_equal(lmf_dataset_num_files(d), 5);
    lmf_dataset_close(d);
    /* the directory as an item */
    d = open_ok(edir);
    assert_int_equal(lmf_dataset_num_files(d), 5);
    lmf_dataset_close(d);
    /* a mixture file: the same escapes in "data" (JSON doubles the backslash) */
    lmf_test_path(p, sizeof p, "esc,dir/mix.json");
    lmf_test_write_text(p, "{\"sources\": [{\"name\": \"x\", \"weight\": 1, \"data\": "
                           "\"a\\\\,b.bin,plain.bin\"}]}");
    d = open_ok(p);
    assert_int_equal(lmf_dataset_num_files(d), 2);
    assert_int_equal(lmf_dataset_source_tokens(d, 0), 11 + 15);
    lmf_dataset_close(d);
    /* unescaped, the comma splits the path: the error names the first piece */
    snprintf(spec, sizeof spec, "%s/a,b.bin", edir);
    expect_fail(spec, "esc,dir/a:", "cannot open");
    snprintf(spec, sizeof spec, "%s/plain.bin\\", edir);
    expect_fail(spec, "lone backslash", "\\\\");
}

/* inputs/targets hold rows of T+1 consecutive values */
static void check_row_shape(const int32_t *in, const int32_t *tg, int B, int T) {
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            assert_int_equal(tg[b * T + t], in[b * T + t] + 1);
            if (t) assert_int_equal(in[b * T + t], in[b * T + t - 1] + 1);
        }
}

static int count_fds(void) {
    DIR *d = opendir("/proc/self/fd");
    if (!d) return -1;
    int n = 0;
    while (readdir(d)) n++;
    closedir(d);
    return n;
}

/* 2,000 token files: opening checks them all and keeps none open; training reads through a few
 * descriptors */
static void test_many_files_lazy(void **state) {
    enum { FILES = 2000, N = 41, B = 4, T = 8 };
    char dir[512], p[512];
    lmf_test_fresh_dir(dir, sizeof dir, "many");
    for (int f = 0; f < FILES; f++) {
        quick_tokens(lmf_test_path(p, sizeof p, "many/part_%05d.bin", f), N,
                     (uint32_t)(f % 1000) * 50, f % 2 ? 2 : 4);
    }
    int fds0 = count_fds();
    lmf_dataset *d = open_ok(dir);
    assert_int_equal(lmf_dataset_num_files(d), FILES);
    assert_int_equal(count_fds(), fds0);
    lmf_loader *l = NULL;
    lmf_test_ok(lmf_loader_create(d, B, T, 1, 5, &l), "loader");
    assert_int_equal(lmf_loader_num_windows(l), (uint64_t)FILES * 5);
    int32_t in[B * T], tg[B * T];
    for (int step = 0; step < 600; step++) { /* 2,400 rows over 2,000 files */
        lmf_test_ok(lmf_loader_fill(l, 0, in, tg), "fill");
        check_row_shape(in, tg, B, T);
        for (int b = 0; b < B; b++) assert_int_equal(in[b * T] % 50 % T, 0); /* row starts */
        lmf_loader_advance(l, 1);
        assert_true(lmf_dataset_open_files(d) <= LMF_DATASET_MAX_OPEN);
        assert_true(count_fds() <= fds0 + LMF_DATASET_MAX_OPEN);
    }
    assert_int_equal(lmf_dataset_open_files(d), LMF_DATASET_MAX_OPEN); /* the cache was full */
    lmf_loader_free(l);
    lmf_dataset_close(d);
    assert_int_equal(count_fds(), fds0);
}

/* a token file cut short while training: the fill fails naming it, no signal */
static void test_truncated_while_in_use(void **state) {
    char p[512];
    make_tokens(p, sizeof p, "trunc.bin", 4001, 0, 2);
    lmf_dataset *d = open_ok(p);
    lmf_loader *l = NULL;
    lmf_test_ok(lmf_loader_create(d, 4, 10, 0, 1, &l), "loader");
    int32_t in[40], tg[40];
    lmf_test_ok(lmf_loader_fill(l, 0, in, tg), "fill before");
    assert_int_equal(truncate(p, 1024 + 2 * 100), 0); /* the descriptor stays open */
    for (int step = 0; step < 5; step++) lmf_loader_advance(l, 1);
    assert_int_equal(lmf_loader_fill(l, 0, in, tg), LMF_ERR_IO);
    assert_non_null(strstr(lmf_last_error(), "trunc.bin"));
    assert_non_null(strstr(lmf_last_error(), "truncated"));
    lmf_loader_free(l);
    lmf_dataset_close(d);
    /* opened again (a new descriptor): the size check says so */
    make_tokens(p, sizeof p, "trunc2.bin", 4001, 0, 2);
    char spec[1100];
    snprintf(spec, sizeof spec, "%s,%s", p, p); /* the same file twice: files 0 and 1 */
    d = open_ok(spec);
    lmf_test_ok(lmf_dataset_read(d, 0, 0, 10, in), "read");
    assert_int_equal(truncate(p, 1024 + 2 * 100), 0);
    assert_int_equal(lmf_dataset_read(d, 1, 0, 10, in), LMF_ERR_IO);
    assert_non_null(strstr(lmf_last_error(), "truncated"));
    lmf_dataset_close(d);
}

/* lmf_dataset_read_spans gives what lmf_dataset_read gives span by span: over more files than
 * descriptors, both token widths, spans of one token to more than the read buffer, in groups
 * larger than one submission; and a file truncated while in use fails naming it. */
static void test_read_spans(void **state) {
    (void)state;
    enum { FILES = 70, N = 3000, SPANS = 300 };
    char dir[512], p[512];
    lmf_test_fresh_dir(dir, sizeof dir, "spans");
    for (int f = 0; f < FILES; f++)
        quick_tokens(lmf_test_path(p, sizeof p, "spans/part_%03d.bin", f),
                     f == 7 ? 100000 : N, (uint32_t)f * 100000, f % 3 ? 2 : 4);
    lmf_dataset *d = open_ok(dir);
    lmf_dataset_span sp[SPANS];
    int32_t *got = malloc(SPANS * 2000 * sizeof(int32_t) + 100000 * sizeof(int32_t));
    int32_t *want = malloc(100000 * sizeof(int32_t));
    assert_non_null(got);
    assert_non_null(want);
    lmf_test_rng_seed(11);
    size_t at = 0;
    for (int i = 0; i < SPANS; i++) {
        int f = (int)(lmf_test_uniform() * FILES);
        size_t n = 1 + (size_t)(lmf_test_uniform() * (i % 10 ? 300 : 1999));
        if (i == 200) f = 7, n = 100000; /* 400 KB of uint32: more than the buffer */
        uint64_t start = (uint64_t)(lmf_test_uniform() * (double)(lmf_dataset_file_tokens(d, f) - n));
        sp[i] = (lmf_dataset_span){f, start, n, got + at};
        at += n;
    }
    lmf_test_ok(lmf_dataset_read_spans(d, sp, SPANS), "read spans");
    for (int i = 0; i < SPANS; i++) {
        lmf_test_ok(lmf_dataset_read(d, sp[i].file, sp[i].start, sp[i].n, want), "read");
        assert_memory_equal(sp[i].dst, want, sp[i].n * sizeof(int32_t));
        uint32_t first = (uint32_t)sp[i].file * 100000 + (uint32_t)sp[i].start;
        assert_int_equal((uint32_t)sp[i].dst[0], sp[i].file % 3 ? (uint16_t)first : first);
    }
    assert_true(lmf_dataset_open_files(d) <= LMF_DATASET_MAX_OPEN);
    /* file 5 cut to 100 tokens: a span past its end among others fails naming it */
    lmf_test_ok(lmf_dataset_read(d, 5, 0, 10, want), "open file 5");
    assert_int_equal(truncate(lmf_test_path(p, sizeof p, "spans/part_005.bin"), 1024 + 2 * 100), 0);
    lmf_dataset_span cut[3] = {{4, 0, 50, got}, {5, 2000, 50, got + 50}, {6, 0, 50, got + 100}};
    assert_int_equal(lmf_dataset_read_spans(d, cut, 3), LMF_ERR_IO);
    assert_non_null(strstr(lmf_last_error(), "part_005.bin"));
    assert_non_null(strstr(lmf_last_error(), "truncated"));
    free(got);
    free(want);
    lmf_dataset_close(d);
}

/* The shard-end rule: five files in file order read as one concatenated file without the rows
 * that cross a file end (sizes are multiples of T, so the rows line up). */
static void test_five_files_match_concatenation(void **state) {
    enum { T = 6, B = 2 };
    const uint64_t sizes[5] = {60, 36, 120, 18, 66};
    char dir[512], p[512], name[64];
    lmf_test_fresh_dir(dir, sizeof dir, "five");
    uint64_t total = 0, base[6];
    for (int f = 0; f < 5; f++) {
        base[f] = total;
        snprintf(name, sizeof name, "five/part_%d.bin", f);
        make_tokens(p, sizeof p, name, sizes[f], (uint32_t)total, f == 2 ? 4 : 2);
        total += sizes[f];
    }
    base[5] = total;
    make_tokens(p, sizeof p, "concat.bin", total, 0, 2);
    lmf_dataset *dm = open_ok(dir), *dc = open_ok(p);
    lmf_loader *lm = NULL, *lc = NULL;
    lmf_test_ok(lmf_loader_create(dm, B, T, 0, 0, &lm), "loader (5 files)");
    lmf_test_ok(lmf_loader_create(dc, 1, T, 0, 0, &lc), "loader (concatenated)");
    /* the concatenated file's rows, without those crossing a file end, in order */
    uint64_t nc = lmf_loader_num_windows(lc), kept = 0;
    int32_t *expect = malloc(nc * T * sizeof(int32_t)), row[T], rt[T];
    for (uint64_t k = 0; k < nc; k++) {
        lmf_test_ok(lmf_loader_fill_eval(lc, k, row, rt), "concatenated row");
        uint64_t first = (uint64_t)row[0], last = (uint64_t)rt[T - 1];
        int crosses = 0;
        for (int f = 1; f < 5; f++) crosses |= first < base[f] && last >= base[f];
        if (crosses) continue;
        memcpy(expect + kept * T, row, sizeof row);
        kept++;
    }
    assert_int_equal(kept, lmf_loader_num_windows(lm)); /* 5 junction rows dropped... */
    assert_int_equal(nc - kept, 4);                     /* ...one at each of the 4 junctions */
    int32_t in[B * T], tg[B * T];
    uint64_t at = 0;
    for (int step = 0; step < 20; step++) { /* 2 micro-batches per step; past an epoch */
        for (uint64_t i = 0; i < 2; i++) {
            lmf_test_ok(lmf_loader_fill(lm, i, in, tg), "fill");
            check_row_shape(in, tg, B, T);
            for (int b = 0; b < B; b++) {
                assert_memory_equal(in + b * T, expect + (at % kept) * T, T * sizeof(int32_t));
                at++;
            }
        }
        lmf_loader_advance(lm, 2);
        if (at % kept > kept - 4) at += kept - at % kept; /* the epoch's tail is skipped */
    }
    free(expect);
    lmf_loader_free(lm);
    lmf_loader_free(lc);
    lmf_dataset_close(dm);
    lmf_dataset_close(dc);
}

/* three sources of very different sizes, tokens in separate ranges: which source a row came
 * from is read off its first token */
#define SRC_BASE(i) ((uint32_t)(i) * 10000000u)
static lmf_dataset *three_sources(const char *w) {
    static const uint64_t rows[3] = {40, 3000, 200000};
    char p[3][512], spec[2048];
    for (int i = 0; i < 3; i++) {
        char name[32];
        snprintf(name, sizeof name, "src%d.bin", i);
        make_tokens(p[i], sizeof p[i], name, rows[i] * 4 + 1, SRC_BASE(i), 4);
    }
    const char *ws[3] = {w, strchr(w, ',') + 1, strrchr(w, ',') + 1};
    snprintf(spec, sizeof spec, "%.*s:%s,%.*s:%s,%s:%s", (int)strcspn(ws[0], ","), ws[0], p[0],
             (int)strcspn(ws[1], ","), ws[1], p[1], ws[2], p[2]);
    return open_ok(spec);
}

static int source_of_token(int32_t t) { return (int)((uint32_t)t / 10000000u); }

/* shares within 1% of the weights over 10,000 rows, read from the rows themselves; the small
 * source runs through many epochs, each a permutation of its rows */
static void test_mixture_shares_and_epochs(void **state) {
    enum { B = 10, T = 4, STEPS = 1000 };
    const double w[3] = {0.2, 0.5, 0.3};
    lmf_dataset *d = three_sources("0.2,0.5,0.3");
    lmf_loader *l = NULL;
    lmf_test_ok(lmf_loader_create(d, B, T, 1, 77, &l), "loader");
    int32_t in[B * T], tg[B * T];
    uint64_t seen[3] = {0}, counted[3] = {0}, epochs0 = 0;
    unsigned char small_seen[40] = {0};
    int small_in_epoch = 0;
    for (int step = 0; step < STEPS; step++) {
        uint64_t c[3];
        lmf_loader_batch_counts(l, 1, c);
        for (int i = 0; i < 3; i++) counted[i] += c[i];
        lmf_test_ok(lmf_loader_fill(l, 0, in, tg), "fill");
        check_row_shape(in, tg, B, T);
        for (int b = 0; b < B; b++) {
            int s = source_of_token(in[b * T]);
            seen[s]++;
            if (s == 0) { /* every row of the small source once per epoch */
                uint32_t r = ((uint32_t)in[b * T] - SRC_BASE(0)) / T;
                assert_int_equal(small_seen[r], 0);
                small_seen[r] = 1;
                small_in_epoch++;
            }
        }
        uint64_t mask = lmf_loader_advance(l, 1);
        if (mask & 1) {
            assert_true(small_in_epoch <= 40 && small_in_epoch > 40 - B);
            memset(small_seen, 0, sizeof small_seen);
            small_in_epoch = 0;
            epochs0++;
        }
        assert_int_equal(mask & 4, 0); /* the big source is never used up */
    }
    for (int i = 0; i < 3; i++) {
        double share = (double)seen[i] / (STEPS * B);
        if (share < w[i] - 0.01 || share > w[i] + 0.01)
            fail_msg("source %d: share %.4f, weight %.2f", i, share, w[i]);
        assert_int_equal(seen[i], counted[i]);
    }
    lmf_loader_state st;
    lmf_loader_get_state(l, &st);
    assert_int_equal(st.src[0].epoch, epochs0);
    assert_true(epochs0 >= 45); /* 2,000 rows of a 40-row source */
    assert_int_equal(st.rows, STEPS * B);
    lmf_loader_free(l);
    lmf_dataset_close(d);
}

/* the rows of each global batch seen by all ranks of a world of W, sorted, for a mixture */
static int cmp_i32(const void *x, const void *y) {
    int32_t a = *(const int32_t *)x, b = *(const int32_t *)y;
    return (a > b) - (a < b);
}

static void mixture_rows(lmf_dataset *d, int W, int B, int steps, const lmf_loader_state *from,
                         int32_t *out) {
    enum { T = 4, MICRO = 6 };
    lmf_loader *l[3];
    for (int r = 0; r < W; r++) {
        lmf_test_ok(lmf_loader_create(d, B, T, 1, 3, &l[r]), "loader");
        if (from) lmf_test_ok(lmf_loader_set_state(l[r], from), "set state");
    }
    int per = MICRO * 2; /* rows per step with B * (MICRO * 2 / B)... */
    (void)per;
    int32_t in[12 * T], tg[12 * T];
    int rows_per_step = 12;
    for (int step = 0; step < steps; step++) {
        int32_t *rows = out + (size_t)step * rows_per_step;
        int k = 0;
        int micro = rows_per_step / B;
        for (int r = 0; r < W; r++) {
            for (int i = r; i < micro; i += W) {
                lmf_test_ok(lmf_loader_fill(l[r], (uint64_t)i, in, tg), "fill");
                for (int b = 0; b < B; b++) rows[k++] = in[b * T];
            }
            lmf_loader_advance(l[r], (uint64_t)micro);
        }
        assert_int_equal(k, rows_per_step);
        qsort(rows, (size_t)k, sizeof *rows, cmp_i32);
    }
    for (int r = 0; r < W; r++) lmf_loader_free(l[r]);
}

/* any world size and micro-batch split reads the same rows per step; a restored state goes on
 * with the same rows */
static void test_mixture_world_sizes_and_resume(void **state) {
    enum { STEPS = 300, PER = 12 };
    lmf_dataset *d = three_sources("0.2,0.5,0.3");
    int32_t *ref = malloc(STEPS * PER * sizeof(int32_t)), *got = malloc(STEPS * PER * sizeof(int32_t));
    mixture_rows(d, 1, 2, STEPS, NULL, ref);  /* 1 rank, 6 micro-batches of 2 */
    mixture_rows(d, 2, 2, STEPS, NULL, got);  /* 2 ranks */
    assert_memory_equal(ref, got, STEPS * PER * sizeof(int32_t));
    mixture_rows(d, 3, 2, STEPS, NULL, got);  /* 3 ranks */
    assert_memory_equal(ref, got, STEPS * PER * sizeof(int32_t));
    mixture_rows(d, 2, 3, STEPS, NULL, got);  /* 2 ranks of 2 micro-batches of 3 */
    assert_memory_equal(ref, got, STEPS * PER * sizeof(int32_t));
    mixture_rows(d, 1, 12, STEPS, NULL, got); /* one micro-batch of 12 */
    assert_memory_equal(ref, got, STEPS * PER * sizeof(int32_t));
    /* resume: the state after 137 steps continues the same rows, at another world size */
    lmf_loader *l = NULL;
    lmf_test_ok(lmf_loader_create(d, 2, 4, 1, 3, &l), "loader");
    for (int s = 0; s < 137; s++) lmf_loader_advance(l, 6);
    lmf_loader_state st;
    lmf_loader_get_state(l, &st);
    assert_int_equal(st.n_sources, 3);
    assert_true(st.src[0].epoch > 0);
    mixture_rows(d, 3, 2, STEPS - 137, &st, got);
    assert_memory_equal(ref + 137 * PER, got, (STEPS - 137) * PER * sizeof(int32_t));
    /* a state of another number of sources is refused */
    st.n_sources = 2;
    assert_int_equal(lmf_loader_set_state(l, &st), LMF_ERR_FORMAT);
    assert_non_null(strstr(lmf_last_error(), "sources"));
    lmf_loader_free(l);
    free(ref);
    free(got);
    lmf_dataset_close(d);
}

/* a token id outside the vocabulary is named with its file */
static void test_vocab_check(void **state) {
    char p[512];
    make_tokens(p, sizeof p, "vocab.bin", 200, 0, 2);
    lmf_dataset *d = open_ok(p);
    lmf_loader *l = NULL;
    lmf_test_ok(lmf_loader_create(d, 2, 8, 0, 0, &l), "loader");
    uint32_t mx = 0;
    lmf_test_ok(lmf_dataset_max_token(d, &mx), "max");
    assert_int_equal(mx, 199);
    lmf_loader_set_vocab(l, 100);
    int32_t in[16], tg[16];
    lmf_test_ok(lmf_loader_fill(l, 0, in, tg), "fill within the vocabulary");
    for (int s = 0; s < 7; s++) lmf_loader_advance(l, 1); /* rows from token 112 */
    assert_int_equal(lmf_loader_fill(l, 0, in, tg), LMF_ERR_ARG);
    assert_non_null(strstr(lmf_last_error(), "vocab.bin"));
    assert_non_null(strstr(lmf_last_error(), "vocab_size is 100"));
    lmf_loader_free(l);
    lmf_dataset_close(d);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spec_forms),
        cmocka_unit_test(test_spec_errors),
        cmocka_unit_test(test_spec_escapes),
        cmocka_unit_test(test_many_files_lazy),
        cmocka_unit_test(test_truncated_while_in_use),
        cmocka_unit_test(test_read_spans),
        cmocka_unit_test(test_five_files_match_concatenation),
        cmocka_unit_test(test_mixture_shares_and_epochs),
        cmocka_unit_test(test_mixture_world_sizes_and_resume),
        cmocka_unit_test(test_vocab_check),
    };
    return cmocka_run_group_tests(tests, lmf_test_tmpdir_setup, lmf_test_tmpdir_teardown);
}

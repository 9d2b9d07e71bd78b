/* Token file tests: v1/v2 byte layout and round trips, streaming writer, bad files rejected. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lmforge/data.h"
#include "lmforge/fsutil.h"
#include "lib/test_util.h"

static void path_of(char *buf, const char *name) { lmf_test_path(buf, 512, "%s", name); }

/* bytes of a file, built independently of the writer */
static void put32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static void write_bytes(const char *path, const uint8_t *b, size_t n) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    if (n) assert_int_equal(fwrite(b, 1, n, f), n);
    fclose(f);
}

/* a hand-made header + payload: words[0..3] then payload bytes */
static void write_hand(const char *path, uint32_t magic, uint32_t version, uint32_t lo,
                       uint32_t hi, size_t payload) {
    size_t n = 1024 + payload;
    uint8_t *b = calloc(1, n);
    put32(b, magic);
    put32(b + 4, version);
    put32(b + 8, lo);
    put32(b + 12, hi);
    for (size_t i = 0; i < payload; i++) b[1024 + i] = (uint8_t)(i * 7);
    write_bytes(path, b, n);
    free(b);
}

/* the file at path is the 1024-byte header (magic, version, token count, then zeros) followed
 * by exactly the payload bytes */
static void expect_file_bytes(const char *path, uint32_t version, uint32_t count,
                              const uint8_t *payload, size_t n) {
    size_t len;
    uint8_t *b = (uint8_t *)lmf_test_read_file(path, &len);
    assert_int_equal(len, 1024 + n);
    uint8_t want[16] = {0};
    put32(want, 20240520);
    put32(want + 4, version);
    put32(want + 8, count);
    assert_memory_equal(b, want, 16);
    for (int i = 16; i < 1024; i++) assert_int_equal(b[i], 0);
    assert_memory_equal(b + 1024, payload, n);
    free(b);
}

static void expect_format_error(const char *path, const char *needle) {
    lmf_tokens *s = (lmf_tokens *)0x1;
    assert_int_equal(lmf_tokens_open(path, &s), LMF_ERR_FORMAT);
    assert_null(s);
    assert_non_null(strstr(lmf_last_error(), path));
    if (needle) {
        if (!strstr(lmf_last_error(), needle)) fail_msg("message '%s' lacks '%s'", lmf_last_error(), needle);
    }
}

static void test_v1_layout(void **state) {
    char p[512];
    path_of(p, "v1.bin");
    const uint32_t toks[] = {1, 2, 65535, 258, 0};
    assert_int_equal(lmf_tokens_write(p, toks, 5, 2), LMF_OK);
    const uint8_t payload[] = {1, 0, 2, 0, 0xff, 0xff, 2, 1, 0, 0};
    expect_file_bytes(p, 1, 5, payload, sizeof payload);

    lmf_tokens *s = NULL;
    assert_int_equal(lmf_tokens_open(p, &s), LMF_OK);
    assert_int_equal(lmf_tokens_num_tokens(s), 5);
    assert_int_equal(lmf_tokens_token_bytes(s), 2);
    int32_t got[5];
    lmf_tokens_read(s, 0, 5, got);
    for (int i = 0; i < 5; i++) assert_int_equal(got[i], (int32_t)toks[i]);
    lmf_tokens_read(s, 2, 2, got);
    assert_int_equal(got[0], 65535);
    assert_int_equal(got[1], 258);
    assert_int_equal(lmf_tokens_max_token(s), 65535);
    assert_int_equal(lmf_tokens_max_token(s), 65535); /* cached */
    lmf_tokens_close(s);
    assert_false(lmf_file_exists(strcat(p, ".tmp")));
}

static void test_v2_layout(void **state) {
    char p[512];
    path_of(p, "v2.bin");
    const uint32_t toks[] = {70000, 3, 0x12345678};
    assert_int_equal(lmf_tokens_write(p, toks, 3, 4), LMF_OK);
    const uint8_t payload[] = {0x70, 0x11, 0x01, 0, 3, 0, 0, 0, 0x78, 0x56, 0x34, 0x12};
    expect_file_bytes(p, 2, 3, payload, sizeof payload);
    lmf_tokens *s = NULL;
    assert_int_equal(lmf_tokens_open(p, &s), LMF_OK);
    assert_int_equal(lmf_tokens_token_bytes(s), 4);
    int32_t got[3];
    lmf_tokens_read(s, 0, 3, got);
    assert_int_equal(got[0], 70000);
    assert_int_equal(got[2], 0x12345678);
    assert_int_equal(lmf_tokens_max_token(s), 0x12345678u);
    lmf_tokens_close(s);
}

/* a long random stream through the streaming writer, in uneven pieces, both versions */
static void test_streaming_roundtrip(void **state) {
    enum { N = 100003 };
    uint32_t *t = malloc(N * sizeof *t);
    uint64_t x = 88172645463325252ull;
    for (int i = 0; i < N; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        t[i] = (uint32_t)(x % 50257);
    }
    for (int tb = 2; tb <= 4; tb += 2) {
        char p[512];
        path_of(p, tb == 2 ? "s1.bin" : "s2.bin");
        lmf_tokens_writer *w = NULL;
        assert_int_equal(lmf_tokens_writer_open(p, tb, &w), LMF_OK);
        size_t off = 0, piece = 1;
        while (off < N) {
            size_t m = N - off < piece ? N - off : piece;
            assert_int_equal(lmf_tokens_writer_append(w, t + off, m), LMF_OK);
            off += m;
            piece = piece * 3 + 1;
        }
        assert_int_equal(lmf_tokens_writer_count(w), N);
        assert_false(lmf_file_exists(p)); /* only the temporary exists until close */
        assert_int_equal(lmf_tokens_writer_close(w), LMF_OK);
        lmf_tokens *s = NULL;
        assert_int_equal(lmf_tokens_open(p, &s), LMF_OK);
        assert_int_equal(lmf_tokens_num_tokens(s), N);
        int32_t *got = malloc(N * sizeof *got);
        lmf_tokens_read(s, 0, N, got);
        uint32_t mx = 0;
        for (int i = 0; i < N; i++) {
            assert_int_equal(got[i], (int32_t)t[i]);
            mx = t[i] > mx ? t[i] : mx;
        }
        assert_int_equal(lmf_tokens_max_token(s), mx);
        free(got);
        lmf_tokens_close(s);
    }
    free(t);
}

static void test_empty_tokens_file(void **state) {
    char p[512];
    path_of(p, "empty.bin");
    assert_int_equal(lmf_tokens_write(p, NULL, 0, 2), LMF_OK);
    lmf_tokens *s = NULL;
    assert_int_equal(lmf_tokens_open(p, &s), LMF_OK);
    assert_int_equal(lmf_tokens_num_tokens(s), 0);
    assert_int_equal(lmf_tokens_max_token(s), 0);
    lmf_tokens_close(s);
}

static void test_uint16_refuses_big_id(void **state) {
    char p[512];
    path_of(p, "big.bin");
    const uint32_t toks[] = {5, 70000, 6};
    assert_int_equal(lmf_tokens_write(p, toks, 3, 2), LMF_ERR_ARG);
    assert_non_null(strstr(lmf_last_error(), "70000"));
    assert_non_null(strstr(lmf_last_error(), p));
    assert_false(lmf_file_exists(p));
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.tmp", p);
    assert_false(lmf_file_exists(tmp));
    /* a failed append writes nothing: the writer goes on */
    lmf_tokens_writer *w = NULL;
    assert_int_equal(lmf_tokens_writer_open(p, 2, &w), LMF_OK);
    assert_int_equal(lmf_tokens_writer_append(w, toks, 1), LMF_OK);
    assert_int_equal(lmf_tokens_writer_append(w, toks, 3), LMF_ERR_ARG);
    assert_int_equal(lmf_tokens_writer_append(w, toks + 2, 1), LMF_OK);
    assert_int_equal(lmf_tokens_writer_close(w), LMF_OK);
    lmf_tokens *s = NULL;
    assert_int_equal(lmf_tokens_open(p, &s), LMF_OK);
    int32_t got[2];
    assert_int_equal(lmf_tokens_num_tokens(s), 2);
    lmf_tokens_read(s, 0, 2, got);
    assert_int_equal(got[0], 5);
    assert_int_equal(got[1], 6);
    lmf_tokens_close(s);
    /* abort leaves nothing behind */
    path_of(p, "aborted.bin");
    assert_int_equal(lmf_tokens_writer_open(p, 4, &w), LMF_OK);
    assert_int_equal(lmf_tokens_writer_append(w, toks, 3), LMF_OK);
    lmf_tokens_writer_abort(w);
    assert_false(lmf_file_exists(p));
    snprintf(tmp, sizeof tmp, "%s.tmp", p);
    assert_false(lmf_file_exists(tmp));
    assert_int_equal(lmf_tokens_writer_open(p, 3, &w), LMF_ERR_ARG);
}

static void test_hand_made_good(void **state) {
    char p[512];
    path_of(p, "hand.bin");
    write_hand(p, 20240520, 1, 4, 0, 8);
    lmf_tokens *s = NULL;
    assert_int_equal(lmf_tokens_open(p, &s), LMF_OK);
    int32_t got[4];
    lmf_tokens_read(s, 0, 4, got);
    /* payload bytes are i*7: 0,7,14,21,28,35,42,49 */
    assert_int_equal(got[0], 0 | 7 << 8);
    assert_int_equal(got[3], 42 | 49 << 8);
    lmf_tokens_close(s);
}

static void test_bad_files(void **state) {
    char p[512];
    path_of(p, "bad.bin");
    write_hand(p, 20240521, 1, 4, 0, 8);
    expect_format_error(p, "magic");
    write_hand(p, 20240520, 3, 4, 0, 8);
    expect_format_error(p, "version 3");
    write_hand(p, 20240520, 0, 4, 0, 8);
    expect_format_error(p, "version 0");
    write_hand(p, 20240520, 1, 4, 0, 7); /* truncated */
    expect_format_error(p, "truncated");
    write_hand(p, 20240520, 1, 4, 0, 9); /* extra byte */
    expect_format_error(p, "extra");
    write_hand(p, 20240520, 2, 4, 0, 8); /* v2 needs 16 bytes */
    expect_format_error(p, "1040");
    write_hand(p, 20240520, 1, 4, 1, 8); /* v1 with a high count word */
    expect_format_error(p, "word 3");
    write_hand(p, 20240520, 2, 0, 0x40000000u, 0); /* count*4 would overflow 64 bits */
    expect_format_error(p, NULL);
    write_hand(p, 20240520, 2, 0xffffffffu, 0xffffffffu, 0);
    expect_format_error(p, NULL);
    uint8_t small[100] = {0};
    write_bytes(p, small, sizeof small);
    expect_format_error(p, "shorter");
    write_bytes(p, small, 0);
    expect_format_error(p, "shorter");
    lmf_tokens *s = NULL;
    path_of(p, "missing.bin");
    assert_int_equal(lmf_tokens_open(p, &s), LMF_ERR_IO);
    assert_non_null(strstr(lmf_last_error(), p));
    assert_int_equal(lmf_tokens_open(lmf_test_dir(), &s), LMF_ERR_IO);
}

static void test_validate_header_in_memory(void **state) {
    uint8_t h[1024] = {0};
    put32(h, 20240520);
    put32(h + 4, 2);
    put32(h + 8, 5);
    put32(h + 12, 1);
    uint64_t n = 0;
    int tb = 0;
    uint64_t size = 1024 + ((1ull << 32) + 5) * 4;
    assert_int_equal(lmf_tokens_validate_header(h, sizeof h, size, "mem", &n, &tb), LMF_OK);
    assert_int_equal(n, (1ull << 32) + 5);
    assert_int_equal(tb, 4);
    assert_int_equal(lmf_tokens_validate_header(h, sizeof h, size - 4, "mem", &n, &tb), LMF_ERR_FORMAT);
    assert_int_equal(lmf_tokens_validate_header(h, 1000, size, "mem", &n, &tb), LMF_ERR_FORMAT);
}

/* token files written by an independent writer (Python's struct; fuzz/seeds/tokens) */
static void test_foreign_files(void **state) {
    lmf_tokens *s = NULL;
    assert_int_equal(lmf_tokens_open(LMF_SOURCE_DIR "/fuzz/seeds/tokens/v1.bin", &s), LMF_OK);
    assert_int_equal(lmf_tokens_num_tokens(s), 40);
    assert_int_equal(lmf_tokens_token_bytes(s), 2);
    int32_t got[40];
    lmf_tokens_read(s, 0, 40, got);
    for (int i = 0; i < 40; i++) assert_int_equal(got[i], (i * 37) % 50257);
    lmf_tokens_close(s);
    assert_int_equal(lmf_tokens_open(LMF_SOURCE_DIR "/fuzz/seeds/tokens/v2.bin", &s), LMF_OK);
    assert_int_equal(lmf_tokens_num_tokens(s), 30);
    assert_int_equal(lmf_tokens_token_bytes(s), 4);
    lmf_tokens_read(s, 0, 30, got);
    for (int i = 0; i < 30; i++) assert_int_equal(got[i], (i * 7919) % 100000);
    lmf_tokens_close(s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_v1_layout),
        cmocka_unit_test(test_v2_layout),
        cmocka_unit_test(test_streaming_roundtrip),
        cmocka_unit_test(test_empty_tokens_file),
        cmocka_unit_test(test_uint16_refuses_big_id),
        cmocka_unit_test(test_hand_made_good),
        cmocka_unit_test(test_bad_files),
        cmocka_unit_test(test_validate_header_in_memory),
        cmocka_unit_test(test_foreign_files),
    };
    return cmocka_run_group_tests(tests, lmf_test_tmpdir_setup, lmf_test_tmpdir_teardown);
}

/* safetensors tests: exact byte layout, round trips of every dtype, fp16/bf16 conversion,
 * and every kind of malformed header rejected with the file named. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lmforge/fsutil.h"
#include "lmforge/safetensors.h"

#include "lib/test_util.h"

static float f_of(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static uint32_t bits_of(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

/* ---- exact layout ---- */

static void test_byte_layout(void **state) {
    char p[512];
    lmf_test_path(p, sizeof p, "layout.safetensors");
    const float w[4] = {1.0f, -2.0f, 0.5f, 3.0f};
    const uint16_t b[3] = {0x3c00, 0x0000, 0xc000};
    lmf_st_out_tensor t[2] = {
        {"wte.weight", LMF_F32, 2, {2, 2}, w},
        {"h.0.ln_1.bias", LMF_F16, 1, {3}, b},
    };
    const char *meta[] = {"format", "pt", "step", "12"};
    assert_int_equal(lmf_st_write(p, t, 2, meta, 2), LMF_OK);
    const char *json = "{\"__metadata__\":{\"format\":\"pt\",\"step\":\"12\"},"
                       "\"wte.weight\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]},"
                       "\"h.0.ln_1.bias\":{\"dtype\":\"F16\",\"shape\":[3],\"data_offsets\":[16,22]}}";
    size_t jl = strlen(json), hl = (jl + 7) / 8 * 8;
    char *buf = NULL;
    size_t len = 0;
    assert_int_equal(lmf_read_file(p, &buf, &len, 1 << 20), LMF_OK);
    assert_int_equal(len, 8 + hl + 22);
    for (int i = 0; i < 8; i++) assert_int_equal((uint8_t)buf[i], (uint8_t)((uint64_t)hl >> (8 * i)));
    assert_memory_equal(buf + 8, json, jl);
    for (size_t i = jl; i < hl; i++) assert_int_equal(buf[8 + i], ' ');
    assert_memory_equal(buf + 8 + hl, w, 16);
    const uint8_t hb[6] = {0x00, 0x3c, 0x00, 0x00, 0x00, 0xc0};
    assert_memory_equal(buf + 8 + hl + 16, hb, 6);
    free(buf);
    assert_false(lmf_file_exists(strcat(p, ".tmp")));
}

/* ---- round trips ---- */

static void test_roundtrip_all_dtypes(void **state) {
    char p[512];
    lmf_test_path(p, sizeof p, "all.safetensors");
    enum { ND = LMF_BOOL + 1 };
    lmf_st_out_tensor t[ND + 2];
    uint8_t data[ND][6 * 8];
    char names[ND][32];
    for (int d = 0; d < ND; d++) {
        for (int i = 0; i < 48; i++) data[d][i] = (uint8_t)(d * 31 + i * 7 + 1);
        snprintf(names[d], sizeof names[d], "h.%d.mlp.c_fc.weight", d);
        t[d] = (lmf_st_out_tensor){names[d], (lmf_dtype)d, 2, {2, 3}, data[d]};
    }
    const double scalar = 2.5;
    t[ND] = (lmf_st_out_tensor){"scalar", LMF_F64, 0, {0}, &scalar};
    t[ND + 1] = (lmf_st_out_tensor){"empty", LMF_F32, 2, {0, 4}, NULL};
    assert_int_equal(lmf_st_write(p, t, ND + 2, NULL, 0), LMF_OK);
    lmf_st_file *f = NULL;
    assert_int_equal(lmf_st_open(p, &f), LMF_OK);
    assert_int_equal(lmf_st_count(f), ND + 2);
    assert_null(lmf_st_metadata(f, "format"));
    uint64_t off = 0;
    static const size_t sizes[ND] = {4, 2, 2, 4, 8, 1, 2, 4, 8, 1, 8, 2, 1};
    static const char *const dnames[ND] = {"F32", "F16", "BF16", "I32", "I64", "U8", "U16",
                                           "U32", "F64", "I8", "U64", "I16", "BOOL"};
    for (int d = 0; d < ND; d++) {
        const lmf_st_tensor *g = lmf_st_get(f, d); /* header order is the written order */
        assert_string_equal(g->name, names[d]);
        assert_ptr_equal(lmf_st_find(f, names[d]), g);
        assert_int_equal(g->dtype, d);
        assert_string_equal(lmf_dtype_name((lmf_dtype)d), dnames[d]);
        assert_int_equal(lmf_dtype_size((lmf_dtype)d), sizes[d]);
        assert_int_equal(g->ndim, 2);
        assert_int_equal(g->shape[0], 2);
        assert_int_equal(g->shape[1], 3);
        assert_int_equal(lmf_st_numel(g), 6);
        assert_int_equal(g->begin, off);
        assert_int_equal(g->end, off + 6 * sizes[d]);
        off = g->end;
        uint8_t got[48];
        assert_int_equal(lmf_st_read_raw(f, g, got, 6 * sizes[d]), LMF_OK);
        assert_memory_equal(got, data[d], 6 * sizes[d]);
        assert_int_equal(lmf_st_read_raw(f, g, got, 6 * sizes[d] - 1), LMF_ERR_ARG);
    }
    const lmf_st_tensor *s = lmf_st_find(f, "scalar");
    assert_non_null(s);
    assert_int_equal(s->ndim, 0);
    assert_int_equal(lmf_st_numel(s), 1);
    double sv = 0;
    assert_int_equal(lmf_st_read_raw(f, s, &sv, 8), LMF_OK);
    assert_true(sv == 2.5);
    const lmf_st_tensor *e = lmf_st_find(f, "empty");
    assert_int_equal(lmf_st_numel(e), 0);
    assert_int_equal(e->begin, e->end);
    float dummy;
    assert_int_equal(lmf_st_read_f32(f, e, &dummy, 0), LMF_OK);
    assert_null(lmf_st_find(f, "h.99.mlp.c_fc.weight"));
    lmf_st_close(f);
}

static void test_metadata_and_hf_names(void **state) {
    char p[512];
    lmf_test_path(p, sizeof p, "hf.safetensors");
    static const char *const names[] = {"wte.weight", "wpe.weight", "h.0.attn.c_attn.weight",
                                        "h.0.attn.c_attn.bias", "h.11.mlp.c_proj.weight",
                                        "transformer.ln_f.bias", "caf\xc3\xa9 \"quoted\"\\"};
    enum { N = sizeof names / sizeof names[0] };
    float v[N][5];
    lmf_st_out_tensor t[N];
    for (int i = 0; i < N; i++) {
        for (int j = 0; j < 5; j++) v[i][j] = (float)(i * 10 + j) * 0.25f;
        t[i] = (lmf_st_out_tensor){names[i], LMF_F32, 1, {5}, v[i]};
    }
    const char *meta[] = {"step", "1200", "rng", "{\"state\": [1, 2]}", "empty", ""};
    assert_int_equal(lmf_st_write(p, t, N, meta, 3), LMF_OK);
    lmf_st_file *f = NULL;
    assert_int_equal(lmf_st_open(p, &f), LMF_OK);
    assert_string_equal(lmf_st_metadata(f, "step"), "1200");
    assert_string_equal(lmf_st_metadata(f, "rng"), "{\"state\": [1, 2]}");
    assert_string_equal(lmf_st_metadata(f, "empty"), "");
    assert_null(lmf_st_metadata(f, "missing"));
    for (int i = 0; i < N; i++) {
        const lmf_st_tensor *g = lmf_st_find(f, names[i]);
        assert_non_null(g);
        float got[5];
        assert_int_equal(lmf_st_read_f32(f, g, got, 5), LMF_OK);
        assert_memory_equal(got, v[i], sizeof got);
        assert_int_equal(lmf_st_read_f32(f, g, got, 4), LMF_ERR_ARG);
    }
    lmf_st_close(f);
    /* rewriting replaces the file atomically */
    assert_int_equal(lmf_st_write(p, t, 1, NULL, 0), LMF_OK);
    assert_int_equal(lmf_st_open(p, &f), LMF_OK);
    assert_int_equal(lmf_st_count(f), 1);
    lmf_st_close(f);
}

static void test_write_rejects(void **state) {
    char p[512];
    lmf_test_path(p, sizeof p, "rejected.safetensors");
    float x[2] = {0};
    lmf_st_out_tensor dup[2] = {{"a", LMF_F32, 1, {2}, x}, {"a", LMF_F32, 1, {2}, x}};
    assert_int_equal(lmf_st_write(p, dup, 2, NULL, 0), LMF_ERR_ARG);
    lmf_st_out_tensor reserved = {"__metadata__", LMF_F32, 1, {2}, x};
    assert_int_equal(lmf_st_write(p, &reserved, 1, NULL, 0), LMF_ERR_ARG);
    lmf_st_out_tensor many = {"a", LMF_F32, 9, {1, 1, 1, 1, 1, 1, 1, 1}, x};
    assert_int_equal(lmf_st_write(p, &many, 1, NULL, 0), LMF_ERR_ARG);
    lmf_st_out_tensor neg = {"a", LMF_F32, 1, {-2}, x};
    assert_int_equal(lmf_st_write(p, &neg, 1, NULL, 0), LMF_ERR_ARG);
    lmf_st_out_tensor nodata = {"a", LMF_F32, 1, {2}, NULL};
    assert_int_equal(lmf_st_write(p, &nodata, 1, NULL, 0), LMF_ERR_ARG);
    lmf_st_out_tensor badutf = {"\xff\xfe", LMF_F32, 1, {2}, x};
    assert_int_equal(lmf_st_write(p, &badutf, 1, NULL, 0), LMF_ERR_ARG);
    const char *meta[] = {"k", "1", "k", "2"};
    assert_int_equal(lmf_st_write(p, dup, 1, meta, 2), LMF_ERR_ARG);
    assert_false(lmf_file_exists(p));
    char missing[600];
    lmf_test_path(missing, sizeof missing, "no/such/dir/x.safetensors");
    assert_int_equal(lmf_st_write(missing, dup, 1, NULL, 0), LMF_ERR_IO);
    assert_non_null(strstr(lmf_last_error(), missing));
}

/* ---- fp16 / bf16 ---- */

/* the value of a binary16 pattern from its definition */
static double f16_value(uint16_t h) {
    int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    double v = e == 0 ? ldexp(m, -24) : ldexp(1024 + m, e - 25);
    return s ? -v : v;
}

static void test_f16_widening_exhaustive(void **state) {
    for (uint32_t h = 0; h < 65536; h++) {
        float f = lmf_f16_to_f32((uint16_t)h);
        int e = (h >> 10) & 31;
        if (e == 31) {
            if (h & 1023) {
                assert_true(isnan(f));
            } else {
                assert_true(isinf(f));
                assert_int_equal(signbit(f) != 0, (h >> 15) != 0);
            }
            continue;
        }
        assert_true((double)f == f16_value((uint16_t)h));
        assert_int_equal(signbit(f) != 0, (h >> 15) != 0); /* -0 stays -0 */
        assert_int_equal(lmf_f32_to_f16(f), h);               /* exact values round-trip */
    }
    assert_true(lmf_f16_to_f32(0x0001) == ldexpf(1.0f, -24));
    assert_true(lmf_f16_to_f32(0x7bff) == 65504.0f);
    assert_true(isnan(lmf_f16_to_f32(lmf_f32_to_f16(NAN))));
}

/* nearest binary16 by bisection over the ordered positive patterns; ties to even */
static uint16_t f16_nearest(float x) {
    uint16_t sign = signbit(x) ? 0x8000 : 0;
    double a = fabs((double)x);
    if (a >= 65520.0) return sign | 0x7c00;
    uint32_t lo = 0, hi = 0x7bff; /* f16_value(lo) <= a */
    if (a >= f16_value(0x7bff)) return sign | 0x7bff;
    while (hi - lo > 1) {
        uint32_t mid = (lo + hi) / 2;
        if (f16_value((uint16_t)mid) <= a) lo = mid;
        else hi = mid;
    }
    double dl = a - f16_value((uint16_t)lo), dh = f16_value((uint16_t)hi) - a;
    uint32_t r = dl < dh ? lo : dh < dl ? hi : (lo % 2 == 0 ? lo : hi);
    return (uint16_t)(sign | r);
}

static void test_f16_narrowing(void **state) {
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (int i = 0; i < 300000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        /* exponents around the half range: 2^-30 .. 2^17 */
        uint32_t u = (uint32_t)(x & 0x807fffffu) | (uint32_t)(97 + (x >> 40) % 48) << 23;
        float f = f_of(u);
        uint16_t want = f16_nearest(f), got = lmf_f32_to_f16(f);
        if (want != got) fail_msg("f16(%a) = %04x, want %04x", (double)f, got, want);
    }
    /* halfway cases between adjacent halves, by construction */
    for (uint32_t h = 0; h < 0x7bff; h += 37) {
        double mid = (f16_value((uint16_t)h) + f16_value((uint16_t)(h + 1))) / 2;
        uint16_t even = (h % 2 == 0) ? (uint16_t)h : (uint16_t)(h + 1);
        assert_int_equal(lmf_f32_to_f16((float)mid), even);
    }
    assert_int_equal(lmf_f32_to_f16(65519.0f), 0x7bff);
    assert_int_equal(lmf_f32_to_f16(65520.0f), 0x7c00);
    assert_int_equal(lmf_f32_to_f16(-1e10f), 0xfc00);
    assert_int_equal(lmf_f32_to_f16(-INFINITY), 0xfc00);
    assert_int_equal(lmf_f32_to_f16(ldexpf(1.0f, -25)), 0x0000);              /* tie to 0 */
    assert_int_equal(lmf_f32_to_f16(ldexpf(1.5f, -25)), 0x0001);
    assert_int_equal(lmf_f32_to_f16(-ldexpf(1.0f, -26)), 0x8000);
}

static void test_bf16(void **state) {
    assert_true(lmf_bf16_to_f32(0x3f80) == 1.0f);
    assert_true(lmf_bf16_to_f32(0xc040) == -3.0f);
    assert_true(isinf(lmf_bf16_to_f32(0x7f80)));
    assert_true(isnan(lmf_bf16_to_f32(0x7fc0)));
    assert_true(lmf_bf16_to_f32(0x0001) == ldexpf(1.0f, -133));
    /* exact ties go to the even pattern */
    assert_int_equal(lmf_f32_to_bf16(f_of(0x3f808000u)), 0x3f80);
    assert_int_equal(lmf_f32_to_bf16(f_of(0x3f818000u)), 0x3f82);
    assert_int_equal(lmf_f32_to_bf16(f_of(0xbf818000u)), 0xbf82);
    assert_int_equal(lmf_f32_to_bf16(f_of(0x7f7f8000u)), 0x7f80); /* max + half ulp: inf */
    assert_int_equal(lmf_f32_to_bf16(f_of(0x7f7f7fffu)), 0x7f7f);
    assert_int_equal(lmf_f32_to_bf16(INFINITY), 0x7f80);
    assert_true(isnan(lmf_bf16_to_f32(lmf_f32_to_bf16(f_of(0x7f800001u))))); /* low-bit nan */
    uint64_t x = 12345;
    for (int i = 0; i < 200000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        uint32_t u = (uint32_t)x;
        float f = f_of(u);
        if (isnan(f)) {
            assert_true(isnan(lmf_bf16_to_f32(lmf_f32_to_bf16(f))));
            continue;
        }
        /* candidates: truncation and the next pattern up in magnitude */
        uint32_t lo = u & 0xffff0000u, hi = lo + 0x10000u;
        if ((u & 0x7fffffffu) >= 0x7f800000u) continue; /* infinities: checked above */
        /* rounding up to infinity counts as reaching 2^128 */
        double vl = fabs((double)f_of(lo));
        double vh = (hi & 0x7fffffffu) == 0x7f800000u ? ldexp(1.0, 128) : fabs((double)f_of(hi));
        double dl = fabs((double)f) - vl, dh = vh - fabs((double)f);
        uint16_t want;
        if (dl < dh) want = (uint16_t)(lo >> 16);
        else if (dh < dl) want = (uint16_t)(hi >> 16);
        else want = (uint16_t)(((lo >> 16) & 1) ? hi >> 16 : lo >> 16);
        assert_int_equal(lmf_f32_to_bf16(f), want);
        assert_int_equal(bits_of(lmf_bf16_to_f32(want)), (uint32_t)want << 16);
    }
}

static void test_read_f32_conversions(void **state) {
    char p[512];
    lmf_test_path(p, sizeof p, "half.safetensors");
    const uint16_t h[] = {0x3c00, 0xc000, 0x0001, 0x03ff, 0x7bff, 0x7c00, 0xfc00, 0x7e00, 0x8000};
    const uint16_t b[] = {0x3f80, 0xc040, 0x0001, 0x7f80, 0x7fc0};
    const int32_t ints[] = {1, 2};
    lmf_st_out_tensor t[3] = {{"h", LMF_F16, 1, {9}, h}, {"b", LMF_BF16, 1, {5}, b},
                              {"i", LMF_I32, 1, {2}, ints}};
    assert_int_equal(lmf_st_write(p, t, 3, NULL, 0), LMF_OK);
    lmf_st_file *f = NULL;
    assert_int_equal(lmf_st_open(p, &f), LMF_OK);
    float v[9];
    assert_int_equal(lmf_st_read_f32(f, lmf_st_find(f, "h"), v, 9), LMF_OK);
    assert_true(v[0] == 1.0f && v[1] == -2.0f);
    assert_true(v[2] == ldexpf(1.0f, -24));
    assert_true(v[3] == ldexpf(1023.0f, -24));
    assert_true(v[4] == 65504.0f);
    assert_true(isinf(v[5]) && v[5] > 0 && isinf(v[6]) && v[6] < 0);
    assert_true(isnan(v[7]));
    assert_true(v[8] == 0.0f && signbit(v[8]));
    assert_int_equal(lmf_st_read_f32(f, lmf_st_find(f, "b"), v, 5), LMF_OK);
    assert_true(v[0] == 1.0f && v[1] == -3.0f && v[2] == ldexpf(1.0f, -133));
    assert_true(isinf(v[3]) && isnan(v[4]));
    assert_int_equal(lmf_st_read_f32(f, lmf_st_find(f, "i"), v, 2), LMF_ERR_FORMAT);
    assert_non_null(strstr(lmf_last_error(), "I32"));
    lmf_st_close(f);
}

/* a large F16 tensor crosses the reader's chunk boundary */
static void test_read_f32_large(void **state) {
    char p[512];
    lmf_test_path(p, sizeof p, "large.safetensors");
    enum { N = 20011 };
    uint16_t *h = malloc(N * 2);
    for (int i = 0; i < N; i++) h[i] = (uint16_t)(i % 0x7c00);
    lmf_st_out_tensor t = {"x", LMF_F16, 2, {1, N}, h};
    assert_int_equal(lmf_st_write(p, &t, 1, NULL, 0), LMF_OK);
    lmf_st_file *f = NULL;
    assert_int_equal(lmf_st_open(p, &f), LMF_OK);
    float *v = malloc(N * sizeof *v);
    assert_int_equal(lmf_st_read_f32(f, lmf_st_get(f, 0), v, N), LMF_OK);
    for (int i = 0; i < N; i++) assert_true((double)v[i] == f16_value(h[i]));
    lmf_st_close(f);
    /* the file shrinking under an open handle is reported, not read past */
    assert_int_equal(lmf_st_open(p, &f), LMF_OK);
    assert_int_equal(truncate(p, 200), 0);
    assert_int_equal(lmf_st_read_f32(f, lmf_st_get(f, 0), v, N), LMF_ERR_FORMAT);
    assert_non_null(strstr(lmf_last_error(), p));
    lmf_st_close(f);
    free(v);
    free(h);
}

/* ---- malformed files, made by hand ---- */

/* [u64 header length][json][data_len zero bytes] into buf; returns the length */
static size_t make_bytes(uint8_t *buf, uint64_t hl_field, const char *json, size_t data_len) {
    size_t jl = strlen(json);
    for (int i = 0; i < 8; i++) buf[i] = (uint8_t)(hl_field >> (8 * i));
    memcpy(buf + 8, json, jl);
    memset(buf + 8 + jl, 0, data_len);
    return 8 + jl + data_len;
}

/* both the file reader and the memory parser must refuse with LMF_ERR_FORMAT, naming the file
 * and mentioning `needle` */
static void expect_bad_raw(const uint8_t *bytes, size_t n, const char *needle) {
    char p[512];
    lmf_test_path(p, sizeof p, "bad.safetensors");
    lmf_test_write_bytes(p, bytes, n);
    lmf_st_file *f = (lmf_st_file *)0x1;
    lmf_status s = lmf_st_open(p, &f);
    if (s != LMF_ERR_FORMAT) fail_msg("expected a format error for %.*s, got %d (%s)", (int)(n > 8 ? n - 8 : 0), bytes + 8, s, lmf_last_error());
    assert_null(f);
    const char *m = lmf_last_error();
    if (!strstr(m, p)) fail_msg("message '%s' does not name the file", m);
    if (needle && !strstr(m, needle)) fail_msg("message '%s' lacks '%s'", m, needle);
    assert_int_equal(lmf_st_parse(bytes, n, "memfile", &f), LMF_ERR_FORMAT);
    assert_null(f);
    assert_non_null(strstr(lmf_last_error(), "memfile"));
}

static void expect_bad(const char *json, size_t data_len, const char *needle) {
    uint8_t *b = malloc(8 + strlen(json) + data_len);
    size_t n = make_bytes(b, strlen(json), json, data_len);
    expect_bad_raw(b, n, needle);
    free(b);
}

#define T1(extra) "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}" extra "}"

static void test_good_hand_made(void **state) {
    /* padded header, extra key in an entry, zero tensors: all fine */
    uint8_t b[256];
    const char *j = T1("") "        ";
    size_t n = make_bytes(b, strlen(j), j, 8);
    lmf_st_file *f = NULL;
    assert_int_equal(lmf_st_parse(b, n, "ok", &f), LMF_OK);
    assert_int_equal(lmf_st_count(f), 1);
    float v[2];
    b[n - 8 + 3] = 0x3f, b[n - 8 + 2] = 0x80; /* first float = 1.0 */
    assert_int_equal(lmf_st_read_f32(f, lmf_st_get(f, 0), v, 2), LMF_OK);
    assert_true(v[0] == 1.0f && v[1] == 0.0f);
    lmf_st_close(f);
    n = make_bytes(b, 2, "{}", 0);
    assert_int_equal(lmf_st_parse(b, n, "ok", &f), LMF_OK);
    assert_int_equal(lmf_st_count(f), 0);
    lmf_st_close(f);
    /* holes between tensors and a zero-size tensor inside another's range are not overlaps */
    j = "{\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]},"
        "\"z\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[1,1]},"
        "\"b\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[4,6]}}";
    n = make_bytes(b, strlen(j), j, 6);
    assert_int_equal(lmf_st_parse(b, n, "ok", &f), LMF_OK);
    lmf_st_close(f);
}

static void test_bad_headers(void **state) {
    uint8_t b[64] = {0};
    /* length prefix */
    expect_bad_raw(b, 0, "8-byte");
    expect_bad_raw(b, 5, "8-byte");
    size_t n = make_bytes(b, 200000000ull, "{}", 0);
    expect_bad_raw(b, n, "limit");
    n = make_bytes(b, 3, "{}", 0);
    expect_bad_raw(b, n, "past the end");
    n = make_bytes(b, UINT64_MAX, "{}", 0);
    expect_bad_raw(b, n, NULL);
    /* JSON */
    expect_bad("{\"a\": ", 0, "line 1");
    expect_bad("{}x", 0, "JSON");
    n = make_bytes(b, 7, "{\"a\":1}", 0);
    b[8 + 5] = 0; /* a NUL byte inside the header */
    expect_bad_raw(b, n, "JSON");
    expect_bad("[1, 2]", 0, "not a JSON object");
    expect_bad("\"str\"", 0, "expected");
    /* entries */
    expect_bad("{\"a\":3}", 0, "not an object");
    expect_bad("{\"a\":{\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "dtype");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}}", 8, "shape");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8, "data_offsets");
    expect_bad("{\"a\":{\"dtype\":5,\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "dtype");
    expect_bad("{\"a\":{\"dtype\":\"Q4\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "unknown dtype 'Q4'");
    expect_bad("{\"a\":{\"dtype\":\"f32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "unknown dtype");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":2,\"data_offsets\":[0,8]}}", 8, "shape");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8, "non-negative");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2.0],\"data_offsets\":[0,8]}}", 8, "integer");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[\"2\"],\"data_offsets\":[0,8]}}", 8, "integer");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 4,
               "9 dimensions");
    expect_bad("{\"a\":{\"dtype\":\"U8\",\"shape\":[4294967296,4294967296,16],\"data_offsets\":[0,8]}}",
               8, "overflows");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904],\"data_offsets\":[0,8]}}",
               8, "overflows");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[99999999999999999999],\"data_offsets\":[0,8]}}",
               8, NULL);
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0]}}", 8, "data_offsets");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8,9]}}", 8, "data_offsets");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[-8,0]}}", 8, "data_offsets");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,\"8\"]}}", 8, "data_offsets");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,0]}}", 8, "begin 8 > end 0");
    expect_bad(T1(""), 7, "ends at byte 8 of a 7-byte");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,12]}}", 12, "need 8 bytes");
    expect_bad("{\"a\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "need 4 bytes");
    /* overlaps, in header order and reversed */
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
               "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "overlap");
    expect_bad("{\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[12,16]},"
               "\"c\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[8,12]},"
               "\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 16, "overlap");
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
               "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "overlap");
    /* duplicates */
    expect_bad("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
               "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "duplicate");
    /* metadata */
    expect_bad(T1(",\"__metadata__\":[1]"), 8, "__metadata__");
    expect_bad(T1(",\"__metadata__\":{\"k\":1}"), 8, "__metadata__");
    expect_bad("{\"__metadata__\":{\"k\":\"v\"},\"__metadata__\":{}}", 0, "duplicate");
}

/* a file written by an independent writer (Python's json + struct; fuzz/seeds/safetensors) */
static void test_foreign_file(void **state) {
    lmf_st_file *f = NULL;
    assert_int_equal(lmf_st_open(LMF_SOURCE_DIR "/fuzz/seeds/safetensors/gpt2_like.safetensors", &f),
                     LMF_OK);
    assert_int_equal(lmf_st_count(f), 3);
    assert_string_equal(lmf_st_metadata(f, "format"), "pt");
    assert_string_equal(lmf_st_metadata(f, "step"), "7");
    float v[8];
    const lmf_st_tensor *t = lmf_st_find(f, "wte.weight");
    assert_non_null(t);
    assert_int_equal(t->ndim, 2);
    assert_int_equal(t->shape[0], 4);
    assert_int_equal(lmf_st_read_f32(f, t, v, 8), LMF_OK);
    for (int i = 0; i < 8; i++) assert_true(v[i] == 0.5f * (float)i);
    assert_int_equal(lmf_st_read_f32(f, lmf_st_find(f, "h.0.ln_1.bias"), v, 3), LMF_OK);
    assert_true(v[0] == 1.0f && v[1] == ldexpf(1.0f, -24) && isinf(v[2]));
    assert_int_equal(lmf_st_read_f32(f, lmf_st_find(f, "h.0.attn.c_attn.weight"), v, 2), LMF_OK);
    assert_true(v[0] == 1.0f && v[1] == -3.0f);
    lmf_st_close(f);
}

static void test_missing_file(void **state) {
    const char *dir = lmf_test_dir();
    char p[512];
    lmf_test_path(p, sizeof p, "nope.safetensors");
    lmf_st_file *f = NULL;
    assert_int_equal(lmf_st_open(p, &f), LMF_ERR_IO);
    assert_non_null(strstr(lmf_last_error(), p));
    assert_int_equal(lmf_st_open(dir, &f), LMF_ERR_IO);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_byte_layout),
        cmocka_unit_test(test_roundtrip_all_dtypes),
        cmocka_unit_test(test_metadata_and_hf_names),
        cmocka_unit_test(test_write_rejects),
        cmocka_unit_test(test_f16_widening_exhaustive),
        cmocka_unit_test(test_f16_narrowing),
        cmocka_unit_test(test_bf16),
        cmocka_unit_test(test_read_f32_conversions),
        cmocka_unit_test(test_read_f32_large),
        cmocka_unit_test(test_good_hand_made),
        cmocka_unit_test(test_bad_headers),
        cmocka_unit_test(test_foreign_file),
        cmocka_unit_test(test_missing_file),
    };
    return cmocka_run_group_tests(tests, lmf_test_tmpdir_setup, lmf_test_tmpdir_teardown);
}

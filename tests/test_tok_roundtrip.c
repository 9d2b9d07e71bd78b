/* Tests: round trips, safe cut points, merge-loop agreement, re-encoding the corpus. */
/* decode(encode(x)) == x for random bytes (invalid UTF-8 included) and for every file of the
 * default corpus; encoding in pieces cut at lmf_tok_split_point equals encoding the whole; the
 * two BPE merge loops (array and heap) agree; a tokenizer trained on the corpus re-encodes it
 * to the trainer's own ids. Uses GPT-2's vocabulary too when $LMF_SHARED_DIR/gpt2 has it. */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "lmforge/tokenizer.h"
#include "tokenizer/tok_internal.h"

#define FORTUNES "/usr/share/games/fortunes"

static uint64_t g_rng = 0x9E3779B97F4A7C15ull;
static uint64_t rnd(void) {
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return g_rng;
}

static char *slurp(const char *path, size_t *len) {
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    if (fread(b, 1, (size_t)n, f) != (size_t)n) n = 0;
    fclose(f);
    *len = (size_t)n;
    return b;
}

/* the corpus's text files: regular files (not symlinks) without a .dat or .u8 suffix */
static int corpus_files(char paths[][512], int max) {
    DIR *d = opendir(FORTUNES);
    if (!d) return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < max) {
        size_t l = strlen(e->d_name);
        if ((l > 4 && strcmp(e->d_name + l - 4, ".dat") == 0) || (l > 3 && strcmp(e->d_name + l - 3, ".u8") == 0))
            continue;
        char p[512];
        snprintf(p, sizeof p, "%s/%s", FORTUNES, e->d_name);
        struct stat sb;
        if (lstat(p, &sb) != 0 || !S_ISREG(sb.st_mode)) continue;
        memcpy(paths[n++], p, sizeof p);
    }
    closedir(d);
    return n;
}

static lmf_tokenizer *g_trained, *g_gpt2;
static lmf_tok_train_trace g_trace;

static int setup(void **state) {
    (void)state;
    char paths[256][512];
    int n = corpus_files(paths, 256);
    lmf_tok_train_opts o = {.vocab_size = 4000, .threads = 2};
    if (n > 0) {
        /* train on the whole corpus, joined (the trace needs one buffer) */
        size_t total = 0;
        char *all = NULL;
        for (int i = 0; i < n; i++) {
            size_t len = 0;
            char *b = slurp(paths[i], &len);
            if (!b) return -1;
            all = realloc(all, total + len);
            memcpy(all + total, b, len);
            total += len;
            free(b);
        }
        if (lmf_tok_train_buffer_traced(all, total, &o, &g_trained, &g_trace) != LMF_OK) return -1;
        free(all);
    } else {
        static const char text[] = "a small fallback corpus, used when the fortunes are not installed";
        if (lmf_tok_train_buffer_traced(text, sizeof text - 1, &o, &g_trained, &g_trace) != LMF_OK) return -1;
    }
    const char *sd = getenv("LMF_SHARED_DIR");
    if (sd) {
        char p[4096];
        snprintf(p, sizeof p, "%s/gpt2", sd);
        if (lmf_tok_load(p, &g_gpt2) != LMF_OK) g_gpt2 = NULL;
    }
    if (!g_gpt2) fprintf(stderr, "note: GPT-2 files not found ($LMF_SHARED_DIR/gpt2); checking the trained tokenizer only\n");
    return 0;
}

static int teardown(void **state) {
    (void)state;
    lmf_tok_free(g_trained);
    lmf_tok_free(g_gpt2);
    lmf_tok_train_trace_free(&g_trace);
    return 0;
}

static void roundtrip(const lmf_tokenizer *t, const char *x, size_t n, const char *what) {
    uint32_t *ids = malloc((n + 1) * sizeof *ids);
    char *back = malloc(n + 1);
    size_t ni, nb;
    assert_int_equal(lmf_tok_encode(t, x, n, 0, ids, n + 1, &ni), LMF_OK);
    assert_true(ni <= n);
    assert_int_equal(lmf_tok_decode(t, ids, ni, back, n + 1, &nb), LMF_OK);
    if (nb != n || memcmp(back, x, n) != 0) fail_msg("%s: decode(encode(x)) differs from x", what);
    free(ids);
    free(back);
}

static void test_random_bytes(void **state) {
    (void)state;
    char buf[4096];
    static const char utf8ish[] = "ab 'sd\n\xc3\xa9\xe2\x80\xa8\xf0\x9f\x98\x80\xff";
    for (int k = 0; k < 400; k++) {
        size_t n = rnd() % sizeof buf;
        int mode = k % 3;
        for (size_t i = 0; i < n; i++) {
            uint64_t r = rnd();
            if (mode == 0) buf[i] = (char)r;                                /* any byte */
            else if (mode == 1) buf[i] = (char)(r % 8 == 0 ? 0x80 + r % 128 : ' ' + r % 95); /* mostly ASCII */
            else buf[i] = utf8ish[r % (sizeof utf8ish - 1)]; /* pieces of UTF-8 */
        }
        roundtrip(g_trained, buf, n, "trained, random bytes");
        if (g_gpt2) roundtrip(g_gpt2, buf, n, "gpt2, random bytes");
    }
}

static void test_corpus_files(void **state) {
    (void)state;
    char paths[256][512];
    int n = corpus_files(paths, 256);
    if (n == 0) {
        fprintf(stderr, "SKIP: %s not found\n", FORTUNES);
        skip();
    }
    for (int i = 0; i < n; i++) {
        size_t len = 0;
        char *b = slurp(paths[i], &len);
        assert_non_null(b);
        roundtrip(g_trained, b, len, paths[i]);
        if (g_gpt2) roundtrip(g_gpt2, b, len, paths[i]);
        free(b);
    }
}

/* the trainer's final ids of every distinct word equal encoding the word with the tokenizer */
static void test_trained_reencode(void **state) {
    (void)state;
    uint32_t *ids = malloc(1 << 20);
    size_t bad = 0;
    for (size_t w = 0; w < g_trace.n_words; w++) {
        size_t wl = g_trace.word_off[w + 1] - g_trace.word_off[w], n;
        assert_int_equal(lmf_tok_encode(g_trained, g_trace.word_bytes + g_trace.word_off[w], wl, 0,
                                        ids, (1 << 20) / 4, &n), LMF_OK);
        size_t want = g_trace.ids_off[w + 1] - g_trace.ids_off[w];
        if (n != want || memcmp(ids, g_trace.ids + g_trace.ids_off[w], n * 4) != 0) bad++;
    }
    free(ids);
    assert_int_equal(bad, 0);
}

static void split_check(const lmf_tokenizer *t, const char *x, size_t n) {
    uint32_t *whole = malloc((n + 1) * sizeof *whole), *parts = malloc((n + 1) * sizeof *parts);
    size_t nw, np = 0;
    assert_int_equal(lmf_tok_encode(t, x, n, 0, whole, n + 1, &nw), LMF_OK);
    for (size_t pos = 0; pos < n;) {
        size_t cut = lmf_tok_split_point(x, n, pos + 1 + rnd() % 40);
        assert_true(cut > pos && cut <= n);
        size_t k;
        assert_int_equal(lmf_tok_encode(t, x + pos, cut - pos, 0, parts + np, n + 1 - np, &k), LMF_OK);
        np += k;
        pos = cut;
    }
    assert_int_equal(np, nw);
    assert_memory_equal(parts, whole, nw * sizeof *whole);
    free(whole);
    free(parts);
}

static void test_split_points(void **state) {
    (void)state;
    char buf[3000];
    static const char *const pieces[] = {" ", "  ", "\n", "\t", "\r\n", "a", "b", "Z", "'s", "'", "7",
                                         "42", ".", "!", "\xc2\xa0", "\xe3\x80\x80", "\xc3\xa9", "\xff",
                                         "\xe2\x82", "x", " the", "\xf0\x9f\x98\x80"};
    for (int k = 0; k < 300; k++) {
        size_t n = 0, target = rnd() % 2900;
        while (n < target) {
            const char *p = pieces[rnd() % (sizeof pieces / sizeof pieces[0])];
            size_t l = strlen(p);
            memcpy(buf + n, p, l);
            n += l;
        }
        split_check(g_trained, buf, n);
        if (g_gpt2) split_check(g_gpt2, buf, n);
    }
}

/* the array and the heap merge loops give the same ids, short and long words alike */
static void test_bpe_methods_agree(void **state) {
    (void)state;
    const lmf_tokenizer *toks[2] = {g_trained, g_gpt2};
    for (int ti = 0; ti < 2; ti++) {
        const lmf_tokenizer *t = toks[ti];
        if (!t) continue;
        lmf_tok_ctx *c = lmf_tok_ctx_get(t);
        assert_non_null(c);
        uint8_t w[3000];
        uint32_t a[3000], h[3000];
        for (int k = 0; k < 300; k++) {
            size_t n = 1 + rnd() % (k % 2 ? 3000 : 40);
            const char *alpha = k % 3 == 0 ? "aaab" : k % 3 == 1 ? "etaoinshrdlu" : " \n";
            size_t na = strlen(alpha);
            for (size_t i = 0; i < n; i++) w[i] = (uint8_t)alpha[rnd() % na];
            size_t na_ = lmf_tok_bpe_word(t, c, w, n, a, LMF_TOK_BPE_ARRAY);
            size_t nh = lmf_tok_bpe_word(t, c, w, n, h, LMF_TOK_BPE_HEAP);
            assert_int_equal(na_, nh);
            assert_memory_equal(a, h, na_ * sizeof *a);
        }
        lmf_tok_ctx_put(t, c);
    }
}

/* Encoding a piece the word cache has seen gives BPE's ids: letter words of 2..24 bytes (one
 * pre-token each; up to a dozen ids, past what a cache entry holds) and runs of 2..24 NUL bytes
 * (zero padding must not make them equal), each encoded twice (the second from the cache) after
 * all the others, against the merge loop alone. */
static void test_word_cache_agrees(void **state) {
    (void)state;
    const lmf_tokenizer *toks[2] = {g_trained, g_gpt2};
    for (int ti = 0; ti < 2; ti++) {
        const lmf_tokenizer *t = toks[ti];
        if (!t) continue;
        lmf_tok_ctx *c = lmf_tok_ctx_create(); /* BPE's own; the encoder takes the pool's (the
                                                 * same one every call, on one thread) */
        assert_non_null(c);
        enum { N = 600 };
        static uint8_t words[N][24];
        size_t lens[N];
        for (int k = 0; k < N; k++) {
            lens[k] = 2 + (size_t)k % 23;
            for (size_t i = 0; i < lens[k]; i++)
                words[k][i] = k < 46 ? 0 : (uint8_t)"etaoinshrdluETAOINSHRDLUxqzjkv"[rnd() % 30];
        }
        for (int pass = 0; pass < 2; pass++)
            for (int k = 0; k < N; k++) {
                uint32_t want[32], got[32];
                size_t nw = lmf_tok_bpe_word(t, c, words[k], lens[k], want, LMF_TOK_BPE_ARRAY), ng = 0;
                assert_int_equal(lmf_tok_encode(t, (const char *)words[k], lens[k], 0, got, 32, &ng), LMF_OK);
                if (ng != nw || memcmp(got, want, nw * sizeof *got) != 0)
                    fail_msg("pass %d, word %d (%zu bytes): %zu ids from the encoder, %zu from BPE",
                             pass, k, lens[k], ng, nw);
            }
        lmf_tok_ctx_free(c);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_bytes),     cmocka_unit_test(test_corpus_files),
        cmocka_unit_test(test_trained_reencode), cmocka_unit_test(test_split_points),
        cmocka_unit_test(test_bpe_methods_agree), cmocka_unit_test(test_word_cache_agrees),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

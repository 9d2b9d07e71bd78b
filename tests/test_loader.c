/* Data loader tests: file-order token ranges, Feistel permutation, epochs, state, ranks, reads
 * of a micro-batch's rows together against one read per row. */
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

#include "lib/test_util.h"

/* a token file whose token i is i (uint32), so every value read tells its position */
static lmf_dataset *iota_tokens(uint64_t n) {
    char p[512];
    lmf_test_path(p, sizeof p, "iota_%llu.bin", (unsigned long long)n);
    uint32_t *t = malloc((n ? n : 1) * sizeof *t);
    for (uint64_t i = 0; i < n; i++) t[i] = (uint32_t)i;
    assert_int_equal(lmf_tokens_write(p, t, n, 4), LMF_OK);
    free(t);
    lmf_dataset *s = NULL;
    assert_int_equal(lmf_dataset_open(p, &s), LMF_OK);
    return s;
}

/* a one-source state */
static lmf_loader_state state1(uint64_t epoch, uint64_t position, uint64_t seed, int shuffle) {
    lmf_loader_state st;
    memset(&st, 0, sizeof st);
    st.seed = seed;
    st.shuffle = shuffle;
    st.n_sources = 1;
    st.src[0].epoch = epoch;
    st.src[0].position = position;
    return st;
}

/* inputs/targets of a micro-batch must be the rows starting at tokens row_start[b] */
static void check_rows(const int32_t *in, const int32_t *tg, int B, int T, const int64_t *row_start) {
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            assert_int_equal(in[b * T + t], row_start[b] + t);
            assert_int_equal(tg[b * T + t], row_start[b] + t + 1);
        }
}

static void test_file_order_ranges(void **state) {
    enum { N = 1000, B = 3, T = 7, MICRO = 2 };
    lmf_dataset *s = iota_tokens(N);
    lmf_loader *l = NULL;
    assert_int_equal(lmf_loader_create(s, B, T, 0, 123, &l), LMF_OK);
    /* (1000 - 1) / 7 = 142 rows; a global batch is 6 rows, so 23 steps per epoch */
    assert_int_equal(lmf_loader_num_windows(l), 142);
    int32_t in[B * T], tg[B * T];
    for (int step = 0; step < 60; step++) {
        int64_t pos = (int64_t)(step % 23) * 6; /* rows */
        for (int i = 0; i < MICRO; i++) {
            assert_int_equal(lmf_loader_fill(l, (uint64_t)i, in, tg), LMF_OK);
            /* micro-batch i is the B*T+1 contiguous tokens from (pos + i*B)*T */
            int64_t start = pos * T + (int64_t)i * B * T;
            for (int x = 0; x < B * T; x++) {
                assert_int_equal(in[x], start + x);
                assert_int_equal(tg[x], start + x + 1);
            }
        }
        lmf_loader_advance(l, MICRO);
        lmf_loader_state st;
        lmf_loader_get_state(l, &st);
        assert_int_equal(st.src[0].epoch, (uint64_t)(step + 1) / 23);
        assert_int_equal(st.src[0].position, (uint64_t)((step + 1) % 23) * 6);
    }
    lmf_loader_free(l);
    lmf_dataset_close(s);
}

/* a token file whose token i is base + i (uint32) */
static void write_iota(const char *name, uint64_t n, uint32_t base, char *p, size_t cap) {
    lmf_test_path(p, cap, "%s", name);
    uint32_t *t = malloc(n * sizeof *t);
    for (uint64_t i = 0; i < n; i++) t[i] = base + (uint32_t)i;
    assert_int_equal(lmf_tokens_write(p, t, n, 4), LMF_OK);
    free(t);
}

/* Rows read together (the default) are the rows read one by one: one source of three files of
 * sizes that are not multiples of T and a two-source mixture, in file order and shuffled, small
 * and large micro-batches (300 x 300 needs more than one read per file run), over epochs. */
static void test_batched_reads_match_row_reads(void **state) {
    char a[512], b[512], c[512], spec[2048];
    write_iota("br_a.bin", 5003, 0, a, sizeof a);
    write_iota("br_b.bin", 777, 10000000, b, sizeof b);
    write_iota("br_c.bin", 120011, 20000000, c, sizeof c);
    static const int shapes[][2] = {{1, 5}, {5, 3}, {37, 16}, {300, 300}};
    for (int mix = 0; mix < 2; mix++) {
        if (mix) snprintf(spec, sizeof spec, "0.3:%s,0.7:%s", a, c);
        else snprintf(spec, sizeof spec, "%s,%s,%s", a, b, c);
        lmf_dataset *d = NULL;
        lmf_test_ok(lmf_dataset_open(spec, &d), spec);
        for (int shuffle = 0; shuffle < 2; shuffle++)
            for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
                int B = shapes[k][0], T = shapes[k][1];
                lmf_loader *one = NULL, *many = NULL;
                lmf_test_ok(lmf_loader_create(d, B, T, shuffle, 99, &one), "loader");
                lmf_test_ok(lmf_loader_create(d, B, T, shuffle, 99, &many), "loader");
                lmf_loader_set_batch_reads(one, 0);
                size_t n = (size_t)B * (size_t)T;
                int32_t *i1 = malloc(n * 4), *t1 = malloc(n * 4), *i2 = malloc(n * 4), *t2 = malloc(n * 4);
                for (int step = 0; step < (B > 100 ? 6 : 40); step++) {
                    for (uint64_t m = 0; m < 3; m++) {
                        lmf_test_ok(lmf_loader_fill(one, m, i1, t1), "row reads");
                        lmf_test_ok(lmf_loader_fill(many, m, i2, t2), "batched reads");
                        assert_memory_equal(i1, i2, n * 4);
                        assert_memory_equal(t1, t2, n * 4);
                        for (size_t x = 0; x < n; x++) assert_int_equal(t2[x], i2[x] + 1);
                    }
                    lmf_loader_advance(one, 3);
                    lmf_loader_advance(many, 3);
                }
                /* evaluation batches (file order across sources) the same both ways */
                uint64_t nb = lmf_loader_num_windows(many) / (uint64_t)B;
                for (uint64_t e = 0; e < nb && e < 40; e += 1 + nb / 13) {
                    lmf_test_ok(lmf_loader_fill_eval(one, e, i1, t1), "row reads, eval");
                    lmf_test_ok(lmf_loader_fill_eval(many, e, i2, t2), "batched reads, eval");
                    assert_memory_equal(i1, i2, n * 4);
                    assert_memory_equal(t1, t2, n * 4);
                }
                free(i1), free(t1), free(i2), free(t2);
                lmf_loader_free(one);
                lmf_loader_free(many);
            }
        lmf_dataset_close(d);
    }
}

/* the row order of one epoch, read through the public API with T = 1, B = 1 */
static void read_order(lmf_loader *l, uint64_t n, uint64_t *order) {
    int32_t in, tg;
    for (uint64_t i = 0; i < n; i++) {
        assert_int_equal(lmf_loader_fill(l, i, &in, &tg), LMF_OK);
        assert_int_equal(tg, in + 1);
        order[i] = (uint64_t)in;
    }
}

static void test_permutation_bijection(void **state) {
    const uint64_t ns[] = {1, 2, 3, 4, 5, 7, 8, 13, 16, 31, 64, 97, 255, 256, 1000, 1024, 4099, 65537};
    for (size_t c = 0; c < sizeof ns / sizeof ns[0]; c++) {
        uint64_t n = ns[c];
        lmf_dataset *s = iota_tokens(n + 1); /* n rows of T = 1 */
        lmf_loader *l = NULL;
        assert_int_equal(lmf_loader_create(s, 1, 1, 1, 42 + c, &l), LMF_OK);
        assert_int_equal(lmf_loader_num_windows(l), n);
        uint64_t *order = malloc(n * sizeof *order);
        unsigned char *seen = calloc(n, 1);
        for (uint64_t e = 0; e < 3; e++) {
            lmf_loader_state st = state1(e, 0, 42 + c, 1);
            assert_int_equal(lmf_loader_set_state(l, &st), LMF_OK);
            read_order(l, n, order);
            memset(seen, 0, n);
            uint64_t fixed = 0;
            for (uint64_t i = 0; i < n; i++) {
                assert_true(order[i] < n);
                assert_int_equal(seen[order[i]], 0);
                seen[order[i]] = 1;
                fixed += order[i] == i;
            }
            /* a random permutation has about one fixed point */
            if (n >= 256) assert_true(fixed < 16);
        }
        free(seen);
        free(order);
        lmf_loader_free(l);
        lmf_dataset_close(s);
    }
}

static int differs(const uint64_t *a, const uint64_t *b, uint64_t n) {
    uint64_t d = 0;
    for (uint64_t i = 0; i < n; i++) d += a[i] != b[i];
    return d > n / 2;
}

static void test_epochs_and_seeds_differ(void **state) {
    enum { N = 500 };
    lmf_dataset *s = iota_tokens(N + 1);
    lmf_loader *l = NULL;
    assert_int_equal(lmf_loader_create(s, 1, 1, 1, 7, &l), LMF_OK);
    uint64_t *o[4];
    for (int k = 0; k < 4; k++) o[k] = malloc(N * sizeof(uint64_t));
    read_order(l, N, o[0]); /* seed 7 epoch 0 */
    lmf_loader_state st = state1(1, 0, 7, 1);
    assert_int_equal(lmf_loader_set_state(l, &st), LMF_OK);
    read_order(l, N, o[1]); /* seed 7 epoch 1 */
    st.src[0].epoch = 0;
    st.seed = 8;
    assert_int_equal(lmf_loader_set_state(l, &st), LMF_OK);
    read_order(l, N, o[2]); /* seed 8 epoch 0 */
    st.seed = 7;
    assert_int_equal(lmf_loader_set_state(l, &st), LMF_OK);
    read_order(l, N, o[3]); /* seed 7 epoch 0 again */
    assert_true(differs(o[0], o[1], N));
    assert_true(differs(o[0], o[2], N));
    assert_true(differs(o[1], o[2], N));
    assert_memory_equal(o[0], o[3], N * sizeof(uint64_t));
    for (int k = 0; k < 4; k++) free(o[k]);
    lmf_loader_free(l);
    lmf_dataset_close(s);

    /* on two rows both orders must occur across seeds */
    s = iota_tokens(3);
    int swapped = 0, kept = 0;
    uint64_t two[2];
    for (uint64_t seed = 0; seed < 64; seed++) {
        assert_int_equal(lmf_loader_create(s, 1, 1, 1, seed, &l), LMF_OK);
        read_order(l, 2, two);
        swapped += two[0] == 1;
        kept += two[0] == 0;
        lmf_loader_free(l);
    }
    assert_true(swapped > 10 && kept > 10);
    lmf_dataset_close(s);
}

/* the shuffled stream over several epochs: B rows per micro-batch, two micro-batches a step */
static void test_state_restore(void **state) {
    enum { N = 2000, B = 4, T = 16, MICRO = 2, STEPS = 40, SAVE_AT = 13 };
    lmf_dataset *s = iota_tokens(N);
    lmf_loader *a = NULL, *b = NULL;
    assert_int_equal(lmf_loader_create(s, B, T, 1, 99, &a), LMF_OK);
    /* different creation seed and shuffle flag: the restored state must take over */
    assert_int_equal(lmf_loader_create(s, B, T, 0, 5, &b), LMF_OK);
    int32_t *ia = malloc(B * T * sizeof(int32_t)), *ta = malloc(B * T * sizeof(int32_t));
    int32_t *ib = malloc(B * T * sizeof(int32_t)), *tb = malloc(B * T * sizeof(int32_t));
    lmf_loader_state saved;
    for (int step = 0; step < STEPS; step++) {
        if (step == SAVE_AT) {
            lmf_loader_get_state(a, &saved);
            assert_int_equal(lmf_loader_set_state(b, &saved), LMF_OK);
        }
        for (int i = 0; i < MICRO; i++) {
            assert_int_equal(lmf_loader_fill(a, (uint64_t)i, ia, ta), LMF_OK);
            /* every row is T+1 consecutive tokens starting at a multiple of T */
            for (int r = 0; r < B; r++) {
                assert_int_equal(ia[r * T] % T, 0);
                int64_t start = ia[r * T];
                int64_t rs[1] = {start};
                check_rows(ia + r * T, ta + r * T, 1, T, rs);
            }
            if (step >= SAVE_AT) {
                assert_int_equal(lmf_loader_fill(b, (uint64_t)i, ib, tb), LMF_OK);
                assert_memory_equal(ia, ib, B * T * sizeof(int32_t));
                assert_memory_equal(ta, tb, B * T * sizeof(int32_t));
            }
        }
        lmf_loader_advance(a, MICRO);
        if (step >= SAVE_AT) lmf_loader_advance(b, MICRO);
    }
    lmf_loader_state sa, sb;
    lmf_loader_get_state(a, &sa);
    lmf_loader_get_state(b, &sb);
    assert_memory_equal(&sa, &sb, sizeof sa);
    assert_true(sa.src[0].epoch >= 1); /* 124 rows, 8 per step: the run crossed epochs */

    /* bad states are refused and change nothing */
    lmf_loader_state bad = sa;
    bad.src[0].position = lmf_loader_num_windows(a);
    assert_int_equal(lmf_loader_set_state(a, &bad), LMF_ERR_FORMAT);
    assert_non_null(strstr(lmf_last_error(), "position"));
    bad = sa;
    bad.shuffle = 2;
    assert_int_equal(lmf_loader_set_state(a, &bad), LMF_ERR_FORMAT);
    lmf_loader_get_state(a, &sb);
    assert_memory_equal(&sa, &sb, sizeof sa);
    free(ia), free(ta), free(ib), free(tb);
    lmf_loader_free(a);
    lmf_loader_free(b);
    lmf_dataset_close(s);
}

static int cmp_i64(const void *x, const void *y) {
    int64_t a = *(const int64_t *)x, b = *(const int64_t *)y;
    return (a > b) - (a < b);
}

/* the rows of each global batch, as seen by all ranks of a world of size W, sorted */
static void rows_for_world(lmf_dataset *s, int W, int shuffle, int steps, int64_t *out) {
    enum { B = 2, T = 5, MICRO = 6 };
    lmf_loader *l[3];
    for (int r = 0; r < W; r++) assert_int_equal(lmf_loader_create(s, B, T, shuffle, 11, &l[r]), LMF_OK);
    int32_t in[B * T], tg[B * T];
    for (int step = 0; step < steps; step++) {
        int64_t *rows = out + (size_t)step * MICRO * B;
        int k = 0;
        for (int r = 0; r < W; r++) {
            for (int i = r; i < MICRO; i += W) {
                assert_int_equal(lmf_loader_fill(l[r], (uint64_t)i, in, tg), LMF_OK);
                for (int b = 0; b < B; b++) rows[k++] = in[b * T] / T;
            }
            lmf_loader_advance(l[r], MICRO);
        }
        assert_int_equal(k, MICRO * B);
        qsort(rows, (size_t)k, sizeof *rows, cmp_i64);
    }
    for (int r = 0; r < W; r++) lmf_loader_free(l[r]);
}

static void test_world_sizes_cover_same_rows(void **state) {
    enum { STEPS = 9, PER = 12 };
    lmf_dataset *s = iota_tokens(301); /* 60 rows of 5, 12 rows per global batch: 5 steps/epoch */
    int64_t ref[STEPS * PER], got[STEPS * PER];
    for (int shuffle = 0; shuffle <= 1; shuffle++) {
        rows_for_world(s, 1, shuffle, STEPS, ref);
        for (int step = 0; step < STEPS; step++)
            for (int k = 1; k < PER; k++)
                assert_true(ref[step * PER + k - 1] != ref[step * PER + k]); /* distinct rows */
        for (int W = 2; W <= 3; W++) {
            rows_for_world(s, W, shuffle, STEPS, got);
            assert_memory_equal(ref, got, sizeof ref);
        }
    }
    /* in file order the first global batch is rows 0..11 */
    rows_for_world(s, 2, 0, 1, got);
    for (int k = 0; k < PER; k++) assert_int_equal(got[k], k);
    lmf_dataset_close(s);
}

static void test_too_small_and_bad_args(void **state) {
    lmf_dataset *s = iota_tokens(10);
    lmf_loader *l = NULL;
    assert_int_equal(lmf_loader_create(s, 3, 3, 0, 0, &l), LMF_OK); /* needs exactly 10 */
    assert_int_equal(lmf_loader_num_windows(l), 3);
    lmf_loader_free(l);
    l = NULL;
    assert_int_equal(lmf_loader_create(s, 3, 4, 0, 0, &l), LMF_ERR_ARG);
    assert_null(l);
    const char *m = lmf_last_error();
    assert_non_null(strstr(m, lmf_dataset_file_path(s, 0)));
    assert_non_null(strstr(m, "2 rows"));
    assert_non_null(strstr(m, "--batch"));
    assert_int_equal(lmf_loader_create(s, 0, 4, 0, 0, &l), LMF_ERR_ARG);
    assert_int_equal(lmf_loader_create(s, 2, -1, 0, 0, &l), LMF_ERR_ARG);
    lmf_dataset_close(s);
}

static void test_eval_and_wrap(void **state) {
    enum { B = 2, T = 2 };
    lmf_dataset *s = iota_tokens(11); /* rows: (11-1)/2 = 5 */
    lmf_loader *l = NULL;
    assert_int_equal(lmf_loader_create(s, B, T, 1, 3, &l), LMF_OK);
    int32_t in[B * T], tg[B * T];
    /* evaluation ignores shuffling: batch k is rows 2k, 2k+1 */
    for (int k = 0; k < 2; k++) {
        assert_int_equal(lmf_loader_fill_eval(l, (uint64_t)k, in, tg), LMF_OK);
        int64_t rs[2] = {4 * k, 4 * k + 2};
        check_rows(in, tg, B, T, rs);
    }
    lmf_loader_free(l);
    /* a global batch of 3 micro-batches (6 rows) is larger than the 5 rows: the last slot
     * reads slot 0 of the next epoch, then the epoch advances */
    assert_int_equal(lmf_loader_create(s, B, T, 0, 3, &l), LMF_OK);
    assert_int_equal(lmf_loader_fill(l, 2, in, tg), LMF_OK);
    int64_t rs[2] = {8, 0};
    check_rows(in, tg, B, T, rs);
    lmf_loader_advance(l, 3);
    lmf_loader_state st;
    lmf_loader_get_state(l, &st);
    assert_int_equal(st.src[0].epoch, 1);
    assert_int_equal(st.src[0].position, 0);
    lmf_loader_free(l);
    lmf_dataset_close(s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_file_order_ranges),
        cmocka_unit_test(test_permutation_bijection),
        cmocka_unit_test(test_epochs_and_seeds_differ),
        cmocka_unit_test(test_state_restore),
        cmocka_unit_test(test_world_sizes_cover_same_rows),
        cmocka_unit_test(test_too_small_and_bad_args),
        cmocka_unit_test(test_eval_and_wrap),
        cmocka_unit_test(test_batched_reads_match_row_reads),
    };
    return cmocka_run_group_tests(tests, lmf_test_tmpdir_setup, lmf_test_tmpdir_teardown);
}

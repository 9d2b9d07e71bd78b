/* lmf_calloc_big: zeroed, aligned to 2 MiB from 4 MiB up, on transparent huge pages where the
 * kernel gives them on request, freed by lmf_free_big; overflow refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "lmforge/system.h"

#define MIB ((size_t)1 << 20)

/* "AnonHugePages: N kB" of the mapping that holds address p, in kB; -1 when unreadable */
static long huge_kb_at(const void *p) {
    FILE *f = fopen("/proc/self/smaps", "r");
    if (!f) return -1;
    char line[512];
    int inside = 0;
    long kb = -1;
    while (fgets(line, sizeof line, f)) {
        unsigned long lo, hi;
        if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2 && strchr(line, '-') < strchr(line, ' ')) {
            inside = (uintptr_t)p >= lo && (uintptr_t)p < hi;
            continue;
        }
        if (inside && sscanf(line, "AnonHugePages: %ld kB", &kb) == 1) break;
    }
    fclose(f);
    return kb;
}

/* 1 when the kernel gives huge pages on request (madvise) or always */
static int thp_on(void) {
    FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
    if (!f) return 0;
    char mode[128] = "";
    size_t n = fread(mode, 1, sizeof mode - 1, f);
    fclose(f);
    mode[n] = 0;
    return strstr(mode, "[madvise]") || strstr(mode, "[always]");
}

static void test_zeroed_and_aligned(void **state) {
    (void)state;
    size_t sizes[] = {0, 1, 1000, 4 * MIB - 4, 4 * MIB, 9 * MIB + 12};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t n = sizes[i] / sizeof(float);
        float *a = lmf_calloc_big(n, sizeof(float));
        assert_non_null(a);
        assert_int_equal((uintptr_t)a % 16, 0);
        if (n * sizeof(float) >= 4 * MIB) assert_int_equal((uintptr_t)a % (2 * MIB), 0);
        for (size_t j = 0; j < n; j++) assert_true(a[j] == 0.0f);
        for (size_t j = 0; j < n; j++) a[j] = (float)j; /* the whole array is writable */
        if (n) assert_true(a[n - 1] == (float)(n - 1));
        lmf_free_big(a);
    }
    lmf_free_big(NULL);
}

static void test_overflow_refused(void **state) {
    (void)state;
    assert_null(lmf_calloc_big(SIZE_MAX / 2, 4));
    assert_null(lmf_calloc_big(SIZE_MAX - 4, 1));
}

static void test_huge_pages_backed(void **state) {
    (void)state;
    if (!thp_on()) {
        skip(); /* the kernel gives no huge pages: nothing to see */
        return;
    }
    size_t bytes = 64 * MIB;
    char *a = lmf_calloc_big(bytes, 1);
    assert_non_null(a);
    memset(a, 1, bytes);
    long kb = huge_kb_at(a);
    if (kb < 0) {
        lmf_free_big(a);
        skip(); /* no /proc/self/smaps */
        return;
    }
    /* the kernel may be short of free huge pages; some of the array is on them */
    printf("64 MiB array: %ld kB on huge pages\n", kb);
    assert_true(kb >= 2048);
    lmf_free_big(a);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_zeroed_and_aligned),
        cmocka_unit_test(test_overflow_refused),
        cmocka_unit_test(test_huge_pages_backed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

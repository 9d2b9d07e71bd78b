/* The monotonic clock, large arrays on huge pages, the process's peak resident memory and
 * the memory it can still take. */
#include "lmforge/system.h"

#include <stdio.h>
#include <string.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>

double lmf_now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

#define HUGE_PAGE ((size_t)2 << 20)
#define BIG_MAGIC 0x6c6d66626967ULL /* "lmfbig" */

/* what sits just below a big array: its mapping, and a mark that tells it from calloc's */
typedef struct {
    void *base;
    size_t len;
    unsigned long long magic;
    unsigned long long pad; /* 32 bytes: the array after it keeps calloc's alignment */
} big_header;

void *lmf_calloc_big(size_t n, size_t size) {
    if (size && n > SIZE_MAX / size) return NULL;
    size_t bytes = n * size;
    if (bytes < 2 * HUGE_PAGE) {
        /* small: calloc's block, with the header in front so lmf_free_big knows it */
        big_header *h = calloc(1, sizeof(big_header) + (bytes ? bytes : 1));
        if (!h) return NULL;
        h->magic = 0;
        return h + 1;
    }
    if (bytes > SIZE_MAX - 3 * HUGE_PAGE) return NULL;
    /* a huge page for the header in front, and one of slack to align the array */
    size_t padded = (bytes + HUGE_PAGE - 1) & ~(HUGE_PAGE - 1), len = padded + 2 * HUGE_PAGE;
    char *base = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED) return NULL;
    char *p = (char *)(((uintptr_t)base + 2 * HUGE_PAGE - 1) & ~(uintptr_t)(HUGE_PAGE - 1));
#ifdef MADV_HUGEPAGE
    (void)madvise(p, padded, MADV_HUGEPAGE); /* advice: ignored where huge pages are off */
#endif
    big_header *h = (big_header *)p - 1;
    h->base = base;
    h->len = len;
    h->magic = BIG_MAGIC;
    return p;
}

void lmf_free_big(void *p) {
    if (!p) return;
    big_header *h = (big_header *)p - 1;
    if (h->magic == BIG_MAGIC) munmap(h->base, h->len);
    else free(h);
}

size_t lmf_peak_rss_bytes(void) {
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
    return (size_t)ru.ru_maxrss * 1024; /* Linux reports kilobytes */
}

/* the first number after `key` in file path (a "Key: N kB" or a bare number file); 0 if none */
static int read_number(const char *path, const char *key, unsigned long long *v) {
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    char line[512];
    int found = 0;
    while (!found && fgets(line, sizeof line, f)) {
        const char *p = line;
        if (key) {
            if (strncmp(line, key, strlen(key)) != 0) continue;
            p += strlen(key);
        }
        found = sscanf(p, " %llu", v) == 1;
    }
    fclose(f);
    return found;
}

/* take limit (bytes) when below *best */
static void consider(unsigned long long limit, const char *name, unsigned long long *best,
                     char *what, size_t cap) {
    if (limit == 0 || (*best != 0 && limit >= *best)) return;
    *best = limit;
    snprintf(what, cap, "%s", name);
}

/* one cgroup's room, limit less usage, from its two files; 0 when the usage cannot be read */
static int cgroup_try(const char *dir, const char *limit_file, const char *usage_file,
                      const char *name, unsigned long long *best, char *what, size_t cap) {
    char lim[1200], use[1200];
    unsigned long long l = 0, u = 0;
    snprintf(lim, sizeof lim, "%s/%s", dir, limit_file);
    snprintf(use, sizeof use, "%s/%s", dir, usage_file);
    if (!read_number(use, NULL, &u)) return 0;
    /* v2 "max" reads as no number; v1 "no limit" is a huge one */
    if (read_number(lim, NULL, &l) && l < (1ULL << 60)) consider(l > u ? l - u : 1, name, best, what, cap);
    return 1;
}

/* the cgroup's room, v1 or v2, at this process's cgroup (or the mount's root) */
static void cgroup_room(unsigned long long *best, char *what, size_t cap) {
    FILE *f = fopen("/proc/self/cgroup", "r");
    char line[1024], v1[1024] = "", v2[1024] = "";
    while (f && fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        const char *c = strchr(line, ':');
        if (!c) continue;
        if (strncmp(c, ":memory:", 8) == 0) snprintf(v1, sizeof v1, "%s", c + 8);
        else if (strncmp(line, "0::", 3) == 0) snprintf(v2, sizeof v2, "%s", line + 3);
    }
    if (f) fclose(f);
    char dir[1200];
    const char *v1name = "the cgroup's memory.limit_in_bytes less its usage";
    const char *v2name = "the cgroup's memory.max less its usage";
    snprintf(dir, sizeof dir, "/sys/fs/cgroup/memory%s", v1);
    if (v1[0] && cgroup_try(dir, "memory.limit_in_bytes", "memory.usage_in_bytes", v1name, best, what, cap)) return;
    if (cgroup_try("/sys/fs/cgroup/memory", "memory.limit_in_bytes", "memory.usage_in_bytes", v1name, best, what, cap)) return;
    snprintf(dir, sizeof dir, "/sys/fs/cgroup%s", v2);
    if (v2[0] && cgroup_try(dir, "memory.max", "memory.current", v2name, best, what, cap)) return;
    cgroup_try("/sys/fs/cgroup", "memory.max", "memory.current", v2name, best, what, cap);
}

unsigned long long lmf_memory_available(char *what, size_t cap) {
    unsigned long long best = 0, kb = 0;
    snprintf(what, cap, "unknown");
    if (read_number("/proc/meminfo", "MemAvailable:", &kb))
        consider(kb * 1024, "MemAvailable of /proc/meminfo", &best, what, cap);
    cgroup_room(&best, what, cap);
    struct rlimit rl;
    if (getrlimit(RLIMIT_AS, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
        unsigned long long vm = 0;
        read_number("/proc/self/status", "VmSize:", &vm);
        unsigned long long lim = (unsigned long long)rl.rlim_cur, used = vm * 1024;
        consider(lim > used ? lim - used : 1, "the address-space limit (RLIMIT_AS, ulimit -v) less the space in use", &best, what, cap);
    }
    return best;
}

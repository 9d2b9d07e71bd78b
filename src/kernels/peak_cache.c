/* The machine's peak for MFU: the best of several warmed trials, cached per processor model
 * and thread count so that every report uses the same figure. */
#define _GNU_SOURCE
#include "lmforge/perf.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "lmforge/fsutil.h"
#include "lmforge/threads.h"

#define PEAK_WARMUP_S 0.3
#define PEAK_TRIAL_S 0.3
#define PEAK_TRIALS 5

const char *lmf_peak_source_name(lmf_peak_source s) {
    return s == LMF_PEAK_CACHED ? "cached" : "measured";
}

/* the processor's model name (first "model name" of /proc/cpuinfo), or "unknown" */
static void cpu_model(char *buf, size_t cap) {
    snprintf(buf, cap, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "model name", 10) != 0) continue;
        const char *v = strchr(line, ':');
        if (!v) break;
        v++;
        while (*v == ' ' || *v == '\t') v++;
        snprintf(buf, cap, "%s", v);
        buf[strcspn(buf, "\n")] = '\0';
        break;
    }
    fclose(f);
}

/* the cache directory: $XDG_CACHE_HOME/lmforge or $HOME/.cache/lmforge; 0 when neither is set */
static int cache_dir(char *buf, size_t cap) {
    const char *x = getenv("XDG_CACHE_HOME"), *h = getenv("HOME");
    int n;
    if (x && x[0] == '/') n = snprintf(buf, cap, "%s/lmforge", x);
    else if (h && h[0]) n = snprintf(buf, cap, "%s/.cache/lmforge", h);
    else return 0;
    return n > 0 && (size_t)n < cap;
}

/* the cached GFLOP/s for this cpu and thread count, or 0 */
static double cache_read(const char *path, const char *cpu, int threads) {
    char *text = NULL;
    size_t len = 0;
    if (access(path, F_OK) != 0 || lmf_read_file(path, &text, &len, 4096) != LMF_OK) return 0;
    double g = 0;
    int th = 0;
    char want[400];
    snprintf(want, sizeof want, "cpu=%s\n", cpu);
    const char *gl = strstr(text, "gflops="), *tl = strstr(text, "threads=");
    if (strstr(text, want) && gl && tl && sscanf(gl, "gflops=%lf", &g) == 1 &&
        sscanf(tl, "threads=%d", &th) == 1 && th == threads && g > 0 && g < 1e9)
        ;
    else
        g = 0;
    free(text);
    return g;
}

/* write the cache file through a private temporary name (ranks on one machine may race) */
static int cache_write(const char *dir, const char *path, const char *cpu, int threads,
                       double g, char *note, size_t note_cap) {
    if (lmf_mkdir_p(dir) != LMF_OK) {
        snprintf(note, note_cap, "%s", lmf_last_error());
        return 0;
    }
    char tmp[1100], text[600];
    snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid());
    int n = snprintf(text, sizeof text,
                     "# lmforge: fp32 FMA peak, best of %d trials of %.1f s after %.1f s warm-up, over the threads' CPU time\n"
                     "cpu=%s\nthreads=%d\ngflops=%.3f\n",
                     PEAK_TRIALS, PEAK_TRIAL_S, PEAK_WARMUP_S, cpu, threads, g);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        snprintf(note, note_cap, "cannot write %s: %s", tmp, strerror(errno));
        return 0;
    }
    if (lmf_write_all(fd, text, (size_t)n, tmp) != LMF_OK) {
        snprintf(note, note_cap, "%s", lmf_last_error());
        close(fd);
        unlink(tmp);
        return 0;
    }
    if (lmf_commit_tmp(fd, tmp, path) != LMF_OK) {
        snprintf(note, note_cap, "%s", lmf_last_error());
        return 0;
    }
    return 1;
}

void lmf_peak_get(int threads, int refresh, lmf_peak *out) {
    memset(out, 0, sizeof *out);
    if (threads <= 0) threads = lmf_threads_get();
    out->threads = threads;
    char cpu[256], dir[900];
    cpu_model(cpu, sizeof cpu);
    double cached = 0;
    int have_dir = cache_dir(dir, sizeof dir);
    if (have_dir) {
        snprintf(out->cache, sizeof out->cache, "%s/fma-peak-%016llx-%dt.txt", dir,
                 (unsigned long long)XXH3_64bits(cpu, strlen(cpu)), threads);
        cached = cache_read(out->cache, cpu, threads);
    } else {
        snprintf(out->note, sizeof out->note, "not cached: neither XDG_CACHE_HOME nor HOME is set");
    }
    if (cached > 0 && !refresh) {
        out->gflops = cached;
        out->source = LMF_PEAK_CACHED;
        return;
    }
    lmf_peak_gflops_running(threads, PEAK_WARMUP_S); /* clocks up, threads started */
    double best = 0;
    for (int i = 0; i < PEAK_TRIALS; i++) {
        double g = lmf_peak_gflops_running(threads, PEAK_TRIAL_S);
        if (g > best) best = g;
    }
    /* a trial can only read low; kept to the cache file's precision, so that a report made
     * now and one made from the cache print the same figure */
    out->gflops = round((best > cached ? best : cached) * 1000.0) / 1000.0;
    out->source = LMF_PEAK_MEASURED;
    if (have_dir && !cache_write(dir, out->cache, cpu, threads, out->gflops, out->note,
                                 sizeof out->note))
        out->cache[0] = '\0';
}

void lmf_peak_describe(const lmf_peak *p, char *buf, size_t cap) {
    if (p->source == LMF_PEAK_CACHED)
        snprintf(buf, cap, "%.1f GFLOP/s on %d threads (cached in %s; lmforge bench "
                 "--refresh-peak measures again)", p->gflops, p->threads, p->cache);
    else if (p->cache[0])
        snprintf(buf, cap, "%.1f GFLOP/s on %d threads (measured now, best of %d trials; "
                 "cached in %s)", p->gflops, p->threads, PEAK_TRIALS, p->cache);
    else
        snprintf(buf, cap, "%.1f GFLOP/s on %d threads (measured now, best of %d trials; %s)",
                 p->gflops, p->threads, PEAK_TRIALS, p->note);
}

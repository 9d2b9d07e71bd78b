/* Reading inside a run directory without following symbolic links: bounded file reads and the
 * list of checkpoints. */
#define _GNU_SOURCE
#include "serve/serve_internal.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* open dir/rel component by component, none of them a link; the fd or -1 */
int serve_open_in_run(const char *dir, const char *rel, int flags) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return -1;
    char part[256];
    const char *p = rel;
    while (fd >= 0) {
        const char *slash = strchr(p, '/');
        size_t n = slash ? (size_t)(slash - p) : strlen(p);
        if (n == 0 || n >= sizeof part) { close(fd); return -1; }
        memcpy(part, p, n);
        part[n] = '\0';
        if (strcmp(part, ".") == 0 || strcmp(part, "..") == 0) { close(fd); return -1; }
        int f = slash ? (O_RDONLY | O_DIRECTORY) : flags;
        int next = openat(fd, part, f | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
        close(fd);
        fd = next;
        if (!slash) break;
        p = slash + 1;
    }
    return fd;
}

int serve_read_in_run(const char *dir, const char *rel, size_t max, char **buf, size_t *len,
                      double *mtime) {
    *buf = NULL;
    *len = 0;
    int fd = serve_open_in_run(dir, rel, O_RDONLY);
    if (fd < 0) return -1;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (size_t)st.st_size > max) {
        close(fd);
        return -1;
    }
    size_t cap = (size_t)st.st_size;
    char *b = malloc(cap + 1);
    size_t got = 0;
    while (b && got < cap) {
        ssize_t r = read(fd, b + got, cap - got);
        if (r <= 0) break; /* a file that shrank is read as far as it goes */
        got += (size_t)r;
    }
    close(fd);
    if (!b) return -1;
    b[got] = '\0';
    *buf = b;
    *len = got;
    if (mtime) *mtime = (double)st.st_mtim.tv_sec + 1e-9 * (double)st.st_mtim.tv_nsec;
    return 0;
}

/* 0 and *mtime when dir/rel is a regular file (no links followed) */
static int regular_mtime(const char *dir, const char *rel, double *mtime) {
    int fd = serve_open_in_run(dir, rel, O_RDONLY);
    if (fd < 0) return -1;
    struct stat st;
    int ok = fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
    close(fd);
    if (!ok) return -1;
    *mtime = (double)st.st_mtim.tv_sec + 1e-9 * (double)st.st_mtim.tv_nsec;
    return 0;
}

/* "step_00000120" -> 120; -1 if not such a name */
static int step_of(const char *name) {
    if (strncmp(name, "step_", 5) != 0 || strlen(name) != 13) return -1;
    if (strspn(name + 5, "0123456789") != 8) return -1;
    return atoi(name + 5);
}

static int by_step(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

json_t *serve_checkpoints(const char *dir, int *latest_step, double *latest_mtime) {
    *latest_step = -1;
    *latest_mtime = 0;
    json_t *arr = json_array();
    char *txt = NULL;
    size_t len = 0;
    int latest = -1;
    if (serve_read_in_run(dir, "checkpoints/latest", 256, &txt, &len, NULL) == 0) {
        while (len > 0 && (txt[len - 1] == '\n' || txt[len - 1] == ' ')) txt[--len] = '\0';
        latest = step_of(txt);
    }
    free(txt);
    int fd = serve_open_in_run(dir, "checkpoints", O_RDONLY | O_DIRECTORY);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        if (fd >= 0) close(fd);
        return arr;
    }
    int steps[4096], n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && n < 4096) {
        int s = step_of(e->d_name);
        if (s >= 0) steps[n++] = s;
    }
    closedir(d);
    qsort(steps, (size_t)n, sizeof *steps, by_step);
    for (int i = 0; i < n; i++) {
        char rel[64];
        snprintf(rel, sizeof rel, "checkpoints/step_%08d/index.json", steps[i]);
        double mt = 0;
        /* a committed checkpoint has its index (written last); its mtime is the commit time */
        int complete = regular_mtime(dir, rel, &mt) == 0;
        char name[16];
        snprintf(name, sizeof name, "step_%08d", steps[i]);
        json_t *o = json_pack("{s:s, s:i, s:b, s:b}", "name", name, "step", steps[i],
                              "complete", complete, "latest", steps[i] == latest);
        json_object_set_new(o, "mtime", complete ? json_real(mt) : json_null());
        json_array_append_new(arr, o);
        if (steps[i] == latest && complete) {
            *latest_step = latest;
            *latest_mtime = mt;
        }
    }
    return arr;
}

/* File-system helpers: mkdir -p, full writes and reads, atomic whole-file writes, bounded
 * whole-file reads, path joins. */
#include "lmforge/fsutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

lmf_status lmf_mkdir_p(const char *path) {
    size_t n = strlen(path);
    if (n == 0) return lmf_fail(LMF_ERR_ARG, "cannot create a directory with an empty name");
    char *p = malloc(n + 1);
    if (!p) return lmf_fail(LMF_ERR_NOMEM, "out of memory creating %s", path);
    memcpy(p, path, n + 1);
    lmf_status s = LMF_OK;
    /* create each prefix ending before a '/', then the whole path */
    for (size_t i = 1; i <= n && s == LMF_OK; i++) {
        if (i < n && p[i] != '/') continue;
        if (i < n && p[i - 1] == '/') continue; /* repeated slashes */
        char saved = p[i];
        p[i] = '\0';
        if (mkdir(p, 0777) != 0 && errno != EEXIST)
            s = lmf_fail(LMF_ERR_IO, "cannot create directory %s: %s", p, strerror(errno));
        p[i] = saved;
    }
    struct stat st;
    if (s == LMF_OK && (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)))
        s = lmf_fail(LMF_ERR_IO, "cannot create directory %s: a file of that name is in the way",
                     path);
    free(p);
    return s;
}

const char *lmf_io_reason(int e) {
    if (e == ENOSPC) return "no space left on device (free space or point --out at a larger disk)";
    if (e == EFBIG) return "file too large (a file size limit such as ulimit -f is in the way)";
    if (e == EDQUOT) return "disk quota exceeded";
    return strerror(e);
}

lmf_status lmf_write_all(int fd, const void *data, size_t len, const char *path) {
    const char *b = data;
    while (len > 0) {
        size_t chunk = len > ((size_t)1 << 30) ? ((size_t)1 << 30) : len;
        ssize_t w = write(fd, b, chunk);
        if (w < 0 && errno == EINTR) continue;
        /* write() returning 0 for a regular file means no room */
        if (w <= 0)
            return lmf_fail(LMF_ERR_IO, "cannot write %s: %s", path,
                            lmf_io_reason(w < 0 ? errno : ENOSPC));
        b += w;
        len -= (size_t)w;
    }
    return LMF_OK;
}

lmf_status lmf_pread_all(int fd, void *dst, size_t len, uint64_t off, const char *path) {
    char *b = dst;
    while (len > 0) {
        size_t chunk = len > ((size_t)1 << 30) ? ((size_t)1 << 30) : len;
        ssize_t r = pread(fd, b, chunk, (off_t)off);
        if (r < 0) {
            if (errno == EINTR) continue;
            return lmf_fail(LMF_ERR_IO, "cannot read %s: %s", path, strerror(errno));
        }
        if (r == 0) return lmf_fail(LMF_ERR_FORMAT, "%s: unexpected end of file", path);
        b += r;
        len -= (size_t)r;
        off += (uint64_t)r;
    }
    return LMF_OK;
}

lmf_status lmf_fsync_parent_dir(const char *path) {
    const char *slash = strrchr(path, '/');
    char dir[4096];
    if (!slash) {
        strcpy(dir, ".");
    } else if (slash == path) {
        strcpy(dir, "/");
    } else {
        size_t n = (size_t)(slash - path);
        if (n >= sizeof dir) return lmf_fail(LMF_ERR_ARG, "path too long: %s", path);
        memcpy(dir, path, n);
        dir[n] = '\0';
    }
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return lmf_fail(LMF_ERR_IO, "cannot open directory %s: %s", dir, strerror(errno));
    /* some file systems refuse fsync on directories (EINVAL); that is not a failure */
    int r = fsync(fd);
    int e = errno;
    close(fd);
    if (r != 0 && e != EINVAL && e != EROFS)
        return lmf_fail(LMF_ERR_IO, "cannot sync directory %s: %s", dir, strerror(e));
    return LMF_OK;
}

lmf_status lmf_tmp_path(char *tmp, size_t cap, const char *path) {
    int n = snprintf(tmp, cap, "%s.tmp", path);
    if (n < 0 || (size_t)n >= cap) return lmf_fail(LMF_ERR_ARG, "path too long: %s", path);
    return LMF_OK;
}

lmf_status lmf_commit_tmp(int fd, const char *tmp, const char *path) {
    if (fsync(fd) != 0) {
        lmf_status s = lmf_fail(LMF_ERR_IO, "cannot sync %s: %s", tmp, strerror(errno));
        close(fd);
        unlink(tmp);
        return s;
    }
    if (close(fd) != 0) {
        lmf_status s = lmf_fail(LMF_ERR_IO, "cannot close %s: %s", tmp, strerror(errno));
        unlink(tmp);
        return s;
    }
    if (rename(tmp, path) != 0) {
        lmf_status s =
            lmf_fail(LMF_ERR_IO, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
        unlink(tmp);
        return s;
    }
    return lmf_fsync_parent_dir(path);
}

lmf_status lmf_write_file_atomic(const char *path, const void *data, size_t len) {
    char tmp[4200];
    LMF_TRY(lmf_tmp_path(tmp, sizeof tmp, path));
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (fd < 0) return lmf_fail(LMF_ERR_IO, "cannot create %s: %s", tmp, strerror(errno));
    lmf_status s = lmf_write_all(fd, data, len, tmp);
    if (s != LMF_OK) {
        close(fd);
        unlink(tmp);
        return s;
    }
    return lmf_commit_tmp(fd, tmp, path);
}

const char *lmf_file_kind(unsigned mode) {
    if (S_ISREG(mode)) return "a regular file";
    if (S_ISDIR(mode)) return "a directory";
    if (S_ISFIFO(mode)) return "a FIFO (named pipe)";
    if (S_ISCHR(mode)) return "a character device";
    if (S_ISBLK(mode)) return "a block device";
    if (S_ISSOCK(mode)) return "a socket";
    return "not a regular file";
}

lmf_status lmf_open_regular(const char *path, const char *what, int *fd) {
    *fd = -1;
    const char *w = what ? what : "", *sep = what ? " " : "";
    /* O_NONBLOCK: opening a FIFO for reading would wait for a writer */
    int f = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (f < 0) return lmf_fail(LMF_ERR_IO, "cannot open %s%s%s: %s", w, sep, path, strerror(errno));
    struct stat st;
    if (fstat(f, &st) != 0) {
        lmf_status s = lmf_fail(LMF_ERR_IO, "cannot stat %s%s%s: %s", w, sep, path, strerror(errno));
        close(f);
        return s;
    }
    if (!S_ISREG(st.st_mode)) {
        close(f);
        return lmf_fail(LMF_ERR_IO, "%s%s%s is %s, not a regular file; give the path of a file",
                        w, sep, path, lmf_file_kind(st.st_mode));
    }
    int fl = fcntl(f, F_GETFL);
    if (fl < 0 || fcntl(f, F_SETFL, fl & ~O_NONBLOCK) != 0) {
        lmf_status s = lmf_fail(LMF_ERR_IO, "cannot read %s%s%s: %s", w, sep, path, strerror(errno));
        close(f);
        return s;
    }
    *fd = f;
    return LMF_OK;
}

/* lmf_open_regular, and the file's size */
static lmf_status open_sized(const char *path, int *fd, uint64_t *size) {
    LMF_TRY(lmf_open_regular(path, NULL, fd));
    struct stat st;
    if (fstat(*fd, &st) != 0) {
        lmf_status s = lmf_fail(LMF_ERR_IO, "cannot stat %s: %s", path, strerror(errno));
        close(*fd);
        *fd = -1;
        return s;
    }
    *size = (uint64_t)st.st_size;
    return LMF_OK;
}

#define FP_PIECE ((uint64_t)64 << 10)
#define FP_PIECES 64

lmf_status lmf_file_fingerprint(const char *path, uint64_t *size, uint64_t *hash) {
    *size = 0;
    *hash = 0;
    int fd;
    uint64_t n;
    LMF_TRY(open_sized(path, &fd, &n));
    XXH3_state_t *h = XXH3_createState();
    char *buf = malloc(FP_PIECE);
    lmf_status s = h && buf ? LMF_OK : lmf_fail(LMF_ERR_NOMEM, "cannot hash %s", path);
    if (s == LMF_OK) {
        XXH3_64bits_reset(h);
        XXH3_64bits_update(h, &n, sizeof n);
    }
    /* piece k starts at k/(P-1) of the room before the last piece; overlaps when small */
    uint64_t room = n > FP_PIECE ? n - FP_PIECE : 0, prev_end = 0;
    for (int k = 0; s == LMF_OK && k < FP_PIECES; k++) {
        uint64_t off = room * (uint64_t)k / (FP_PIECES - 1);
        if (off < prev_end) off = prev_end; /* no byte twice */
        uint64_t len = n - off < FP_PIECE ? n - off : FP_PIECE;
        if (len == 0) break;
        s = lmf_pread_all(fd, buf, (size_t)len, off, path);
        if (s == LMF_OK) XXH3_64bits_update(h, buf, (size_t)len);
        prev_end = off + len;
    }
    if (s == LMF_OK) {
        *size = n;
        *hash = XXH3_64bits_digest(h);
    }
    XXH3_freeState(h);
    free(buf);
    close(fd);
    return s;
}

lmf_status lmf_read_file(const char *path, char **buf, size_t *len, size_t max_len) {
    *buf = NULL;
    *len = 0;
    int fd;
    uint64_t size;
    LMF_TRY(open_sized(path, &fd, &size));
    if (size > (uint64_t)max_len) {
        close(fd);
        return lmf_fail(LMF_ERR_IO, "%s is %lld bytes, more than the %zu allowed", path,
                        (long long)size, max_len);
    }
    size_t n = (size_t)size;
    char *b = malloc(n + 1);
    if (!b) {
        close(fd);
        return lmf_fail(LMF_ERR_NOMEM, "cannot allocate %zu bytes to read %s", n + 1, path);
    }
    lmf_status s = n ? lmf_pread_all(fd, b, n, 0, path) : LMF_OK;
    close(fd);
    if (s != LMF_OK) {
        free(b);
        return s == LMF_ERR_FORMAT ? lmf_fail(LMF_ERR_IO, "%s changed size while being read", path)
                                   : s;
    }
    b[n] = '\0';
    *buf = b;
    *len = n;
    return LMF_OK;
}

lmf_status lmf_path_join(char *buf, size_t cap, const char *a, const char *b) {
    int n;
    size_t la = strlen(a);
    if (b[0] == '/' || la == 0)
        n = snprintf(buf, cap, "%s", b);
    else if (a[la - 1] == '/')
        n = snprintf(buf, cap, "%s%s", a, b);
    else
        n = snprintf(buf, cap, "%s/%s", a, b);
    if (n < 0 || (size_t)n >= cap) {
        if (cap > 0) buf[0] = '\0';
        return lmf_fail(LMF_ERR_ARG, "path %s/%s is too long (limit %zu bytes)", a, b, cap);
    }
    return LMF_OK;
}

int lmf_file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

void lmf_remove_tree(const char *path) {
    struct stat st;
    if (lstat(path, &st) != 0) return;
    if (!S_ISDIR(st.st_mode)) {
        unlink(path);
        return;
    }
    DIR *d = opendir(path);
    if (d) {
        struct dirent *e;
        char p[4400];
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
            int n = snprintf(p, sizeof p, "%s/%s", path, e->d_name);
            if (n > 0 && (size_t)n < sizeof p) lmf_remove_tree(p);
        }
        closedir(d);
    }
    rmdir(path);
}

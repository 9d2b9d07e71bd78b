/* Datasets: the token files of a data spec, checked when opened, read with pread (or, many
 * spans at once, native AIO) through a few descriptors opened on demand (memory and descriptors
 * do not grow with the number of files). */
#include "lmforge/data.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/aio_abi.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "data/spec.h"
#include "lmforge/fsutil.h"

#define READ_CHUNK 65536    /* tokens per pread when scanning */

typedef struct dfile {
    char *path;
    uint64_t n;         /* tokens */
    uint64_t size;      /* bytes when opened */
    int tb;             /* bytes per token */
    int slot;           /* the descriptor slot it had last (it may have been taken since) */
} dfile;

typedef struct dsource {
    char *name;
    double weight;
    int first, count;
    uint64_t tokens;
} dsource;

typedef struct slot {
    int file;           /* -1: free */
    int fd;
    uint64_t used;      /* last use, for eviction */
} slot;

struct lmf_dataset {
    dfile *files;
    int n_files;
    dsource src[LMF_DATA_MAX_SOURCES];
    int n_src;
    slot slots[LMF_DATASET_MAX_OPEN];
    uint64_t clock;
    uint8_t *buf;       /* READ_CHUNK * 4 bytes */
    int aio;            /* 0: not tried yet; 1: aio_ctx set up; -1: no AIO here (pread) */
    aio_context_t aio_ctx;
};

static uint32_t le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* header and size of one token file */
static lmf_status check_file(const char *path, dfile *f) {
    int fd;
    LMF_TRY(lmf_open_regular(path, "token file", &fd));
    struct stat st;
    lmf_status s = LMF_OK;
    if (fstat(fd, &st) != 0)
        s = lmf_fail(LMF_ERR_IO, "cannot stat token file %s: %s", path, strerror(errno));
    else if (st.st_size == 0)
        s = lmf_fail(LMF_ERR_FORMAT, "token file %s is empty (0 bytes)", path);
    uint8_t hdr[LMF_TOKENS_HEADER_BYTES];
    uint64_t size = s == LMF_OK ? (uint64_t)st.st_size : 0;
    size_t hl = size < sizeof hdr ? (size_t)size : sizeof hdr;
    if (s == LMF_OK) s = lmf_pread_all(fd, hdr, hl, 0, path);
    if (s == LMF_OK) s = lmf_tokens_validate_header(hdr, hl, size, path, &f->n, &f->tb);
    if (s == LMF_OK && f->n == 0)
        s = lmf_fail(LMF_ERR_FORMAT, "token file %s holds no tokens; remove it from the data",
                     path);
    close(fd);
    f->size = size;
    return s;
}

void lmf_dataset_close(lmf_dataset *d) {
    if (!d) return;
    for (int i = 0; i < LMF_DATASET_MAX_OPEN; i++)
        if (d->slots[i].file >= 0) close(d->slots[i].fd);
    if (d->aio == 1) syscall(SYS_io_destroy, d->aio_ctx);
    for (int i = 0; i < d->n_files; i++) free(d->files[i].path);
    for (int i = 0; i < d->n_src; i++) free(d->src[i].name);
    free(d->files);
    free(d->buf);
    free(d);
}

lmf_status lmf_dataset_open(const char *spec, lmf_dataset **out) {
    *out = NULL;
    lmf_spec sp;
    LMF_TRY(lmf_spec_parse(spec, &sp));
    lmf_dataset *d = calloc(1, sizeof *d);
    int total = 0;
    double wsum = 0;
    for (int i = 0; i < sp.n_src; i++) {
        total += sp.src[i].n_paths;
        wsum += sp.src[i].weight;
    }
    lmf_status s = LMF_OK;
    if (d) {
        d->files = calloc((size_t)total, sizeof *d->files);
        d->buf = malloc(READ_CHUNK * 4);
        for (int i = 0; i < LMF_DATASET_MAX_OPEN; i++) d->slots[i].file = -1;
    }
    if (!d || !d->files || !d->buf) s = lmf_fail(LMF_ERR_NOMEM, "out of memory opening %s", spec);
    for (int i = 0; s == LMF_OK && i < sp.n_src; i++) {
        dsource *ds = &d->src[d->n_src];
        ds->first = d->n_files;
        ds->weight = sp.src[i].weight / wsum;
        ds->name = sp.src[i].name;
        sp.src[i].name = NULL;
        d->n_src++;
        for (int k = 0; s == LMF_OK && k < sp.src[i].n_paths; k++) {
            dfile *f = &d->files[d->n_files];
            f->path = sp.src[i].paths[k];
            sp.src[i].paths[k] = NULL;
            d->n_files++;
            s = check_file(f->path, f);
            ds->tokens += f->n;
            ds->count++;
        }
    }
    lmf_spec_free(&sp);
    if (s != LMF_OK) {
        lmf_dataset_close(d);
        return s;
    }
    *out = d;
    return LMF_OK;
}

int lmf_dataset_num_sources(const lmf_dataset *d) { return d->n_src; }
const char *lmf_dataset_source_name(const lmf_dataset *d, int i) { return d->src[i].name; }
double lmf_dataset_source_weight(const lmf_dataset *d, int i) { return d->src[i].weight; }
uint64_t lmf_dataset_source_tokens(const lmf_dataset *d, int i) { return d->src[i].tokens; }
void lmf_dataset_source_files(const lmf_dataset *d, int i, int *first, int *count) {
    *first = d->src[i].first;
    *count = d->src[i].count;
}
int lmf_dataset_num_files(const lmf_dataset *d) { return d->n_files; }
uint64_t lmf_dataset_file_tokens(const lmf_dataset *d, int f) { return d->files[f].n; }
const char *lmf_dataset_file_path(const lmf_dataset *d, int f) { return d->files[f].path; }

int lmf_dataset_open_files(const lmf_dataset *d) {
    int n = 0;
    for (int i = 0; i < LMF_DATASET_MAX_OPEN; i++) n += d->slots[i].file >= 0;
    return n;
}

/* a descriptor for file f: kept open, or opened in place of the least recently used one */
static lmf_status get_fd(lmf_dataset *d, int f, int *fd) {
    slot *victim = &d->slots[0], *last = &d->slots[d->files[f].slot];
    d->clock++;
    if (last->file == f) {
        last->used = d->clock;
        *fd = last->fd;
        return LMF_OK;
    }
    for (int i = 0; i < LMF_DATASET_MAX_OPEN; i++) {
        slot *sl = &d->slots[i];
        if (sl->file == f) {
            sl->used = d->clock;
            *fd = sl->fd;
            return LMF_OK;
        }
        if (sl->file < 0 || (victim->file >= 0 && sl->used < victim->used)) victim = sl;
    }
    const dfile *df = &d->files[f];
    int nfd = open(df->path, O_RDONLY | O_CLOEXEC);
    if (nfd < 0)
        return lmf_fail(LMF_ERR_IO, "cannot open token file %s: %s (it was there when training "
                        "started)", df->path, strerror(errno));
    struct stat st;
    if (fstat(nfd, &st) != 0 || (uint64_t)st.st_size != df->size) {
        uint64_t now = fstat(nfd, &st) == 0 ? (uint64_t)st.st_size : 0;
        close(nfd);
        return lmf_fail(LMF_ERR_IO, "token file %s was %s while in use: it had %llu bytes, now "
                        "%llu; restore it and resume from the last checkpoint", df->path,
                        now < df->size ? "truncated" : "changed", (unsigned long long)df->size,
                        (unsigned long long)now);
    }
    if (victim->file >= 0) close(victim->fd);
    victim->file = f;
    victim->fd = nfd;
    victim->used = d->clock;
    d->files[f].slot = (int)(victim - d->slots);
    *fd = nfd;
    return LMF_OK;
}

/* n tokens of file f from token `start` into d->buf-like dst bytes (n * tb bytes) */
static lmf_status read_bytes(lmf_dataset *d, int f, uint64_t start, size_t n, uint8_t *dst) {
    const dfile *df = &d->files[f];
    int fd = -1;
    LMF_TRY(get_fd(d, f, &fd));
    size_t len = n * (size_t)df->tb, done = 0;
    uint64_t off = LMF_TOKENS_HEADER_BYTES + start * (uint64_t)df->tb;
    while (done < len) {
        ssize_t r = pread(fd, dst + done, len - done, (off_t)(off + done));
        if (r < 0 && errno == EINTR) continue;
        if (r < 0)
            return lmf_fail(LMF_ERR_IO, "cannot read token file %s: %s", df->path,
                            strerror(errno));
        if (r == 0)
            return lmf_fail(LMF_ERR_IO, "token file %s was truncated while in use: it had %llu "
                            "bytes, reading ends at byte %llu; restore it and resume from the "
                            "last checkpoint", df->path, (unsigned long long)df->size,
                            (unsigned long long)(off + done));
        done += (size_t)r;
    }
    return LMF_OK;
}

/* m tokens of file df's layout at p -> dst[m] */
static void to_int32(const dfile *df, const uint8_t *p, size_t m, int32_t *dst) {
    if (df->tb == 2)
        for (size_t i = 0; i < m; i++)
            dst[i] = (int32_t)((uint32_t)p[2 * i] | (uint32_t)p[2 * i + 1] << 8);
    else
        for (size_t i = 0; i < m; i++) dst[i] = (int32_t)le32(p + 4 * i);
}

lmf_status lmf_dataset_read(lmf_dataset *d, int f, uint64_t start, size_t n, int32_t *dst) {
    const dfile *df = &d->files[f];
    LMF_ASSERT(start <= df->n && n <= df->n - start);
    while (n > 0) {
        size_t m = n < READ_CHUNK ? n : READ_CHUNK;
        LMF_TRY(read_bytes(d, f, start, m, d->buf));
        to_int32(df, d->buf, m, dst);
        dst += m;
        start += m;
        n -= m;
    }
    return LMF_OK;
}

/* ---- many spans per system call: Linux native AIO. Buffered reads complete inside io_submit,
 * so one io_submit and one io_getevents replace a pread per span. ---- */

static int aio_ready(lmf_dataset *d) {
    if (d->aio == 0) d->aio = syscall(SYS_io_setup, LMF_DATASET_MAX_OPEN, &d->aio_ctx) == 0 ? 1 : -1;
    return d->aio == 1;
}

/* spans sp[0..n) (n <= LMF_DATASET_MAX_OPEN, their bytes together within d->buf) through one
 * submission; a span the kernel did not complete in full is read again with pread, which
 * finishes it or names what is wrong */
static lmf_status read_group(lmf_dataset *d, const lmf_dataset_span *sp, size_t n) {
    struct iocb cb[LMF_DATASET_MAX_OPEN], *cbs[LMF_DATASET_MAX_OPEN];
    size_t at[LMF_DATASET_MAX_OPEN], used = 0;
    int done[LMF_DATASET_MAX_OPEN];
    for (size_t i = 0; i < n; i++) { /* every descriptor first: at most n files, all kept */
        const dfile *df = &d->files[sp[i].file];
        int fd = -1;
        LMF_ASSERT(sp[i].start <= df->n && sp[i].n <= df->n - sp[i].start);
        LMF_TRY(get_fd(d, sp[i].file, &fd));
        memset(&cb[i], 0, sizeof cb[i]);
        cb[i].aio_data = i;
        cb[i].aio_lio_opcode = IOCB_CMD_PREAD;
        cb[i].aio_fildes = (uint32_t)fd;
        cb[i].aio_buf = (uint64_t)(uintptr_t)(d->buf + used);
        cb[i].aio_nbytes = sp[i].n * (size_t)df->tb;
        cb[i].aio_offset = (int64_t)(LMF_TOKENS_HEADER_BYTES + sp[i].start * (uint64_t)df->tb);
        cbs[i] = &cb[i];
        at[i] = used;
        used += cb[i].aio_nbytes;
        done[i] = 0;
    }
    size_t sub = 0, got = 0;
    while (sub < n) {
        long r = syscall(SYS_io_submit, d->aio_ctx, (long)(n - sub), cbs + sub);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break; /* the rest by pread */
        sub += (size_t)r;
    }
    struct io_event ev[LMF_DATASET_MAX_OPEN];
    while (got < sub) {
        long r = syscall(SYS_io_getevents, d->aio_ctx, (long)(sub - got), (long)(sub - got), ev,
                         NULL);
        if (r < 0 && errno == EINTR) continue;
        LMF_ASSERT(r > 0); /* a submitted read always completes */
        for (long e = 0; e < r; e++) {
            size_t i = (size_t)ev[e].data;
            done[i] = ev[e].res == (int64_t)cb[i].aio_nbytes;
        }
        got += (size_t)r;
    }
    for (size_t i = 0; i < n; i++) {
        const dfile *df = &d->files[sp[i].file];
        if (!done[i]) LMF_TRY(read_bytes(d, sp[i].file, sp[i].start, sp[i].n, d->buf + at[i]));
        to_int32(df, d->buf + at[i], sp[i].n, sp[i].dst);
    }
    return LMF_OK;
}

lmf_status lmf_dataset_read_spans(lmf_dataset *d, const lmf_dataset_span *sp, size_t n) {
    for (size_t i = 0; i < n;) {
        size_t e = i, bytes = 0; /* the group [i, e) */
        while (e < n && e - i < LMF_DATASET_MAX_OPEN) {
            size_t len = sp[e].n * (size_t)d->files[sp[e].file].tb;
            if (bytes + len > (size_t)READ_CHUNK * 4) break;
            bytes += len;
            e++;
        }
        if (e - i >= 2 && aio_ready(d)) {
            LMF_TRY(read_group(d, sp + i, e - i));
            i = e;
        } else { /* one span (perhaps larger than the buffer), or no AIO */
            LMF_TRY(lmf_dataset_read(d, sp[i].file, sp[i].start, sp[i].n, sp[i].dst));
            i++;
        }
    }
    return LMF_OK;
}

lmf_status lmf_dataset_max_token(lmf_dataset *d, uint32_t *out) {
    uint32_t mx = 0;
    for (int f = 0; f < d->n_files; f++) {
        const dfile *df = &d->files[f];
        for (uint64_t at = 0; at < df->n; at += READ_CHUNK) {
            size_t m = df->n - at < READ_CHUNK ? (size_t)(df->n - at) : READ_CHUNK;
            LMF_TRY(read_bytes(d, f, at, m, d->buf));
            const uint8_t *p = d->buf;
            for (size_t i = 0; i < m; i++) {
                uint32_t v = df->tb == 2 ? ((uint32_t)p[2 * i] | (uint32_t)p[2 * i + 1] << 8)
                                         : le32(p + 4 * i);
                mx = v > mx ? v : mx;
            }
        }
    }
    *out = mx;
    return LMF_OK;
}

/* Checkpoint shard files: safetensors written with a running XXH3-64 checksum, verified reads
 * that copy out the wanted ranges in the same pass. */
#define _GNU_SOURCE
#include "lmforge/ckpt_format.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "lmforge/fsutil.h"
#include "lmforge/safetensors.h"

#define CHUNK ((size_t)8 << 20) /* bytes per write/read call */

static void sleep_ms(int ms) {
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static void hex64(uint64_t v, char buf[17]) { snprintf(buf, 17, "%016llx", (unsigned long long)v); }

/* The header JSON (padded with spaces so that 8 + *hlen is a multiple of 8). */
static char *shard_header(const lmf_ckpt_shard_meta *m, size_t *hlen) {
    char id[17], rank[24], world[24], step[24], begin[24], end[24];
    hex64(m->id, id);
    snprintf(rank, sizeof rank, "%d", m->rank);
    snprintf(world, sizeof world, "%d", m->world);
    snprintf(step, sizeof step, "%lld", (long long)m->step);
    snprintf(begin, sizeof begin, "%llu", (unsigned long long)m->begin);
    snprintf(end, sizeof end, "%llu", (unsigned long long)m->end);
    json_int_t nb = (json_int_t)((m->end - m->begin) * sizeof(float));
    json_t *h = json_pack("{s:{s:s, s:s, s:s, s:s, s:s, s:s, s:s}}", "__metadata__", "format",
                          LMF_CKPT_SHARD_FORMAT, "checkpoint", id, "rank", rank, "world_size",
                          world, "step", step, "begin", begin, "end", end);
    for (int a = 0; h && a < LMF_CKPT_N_ARRAYS; a++) {
        json_t *t = json_pack("{s:s, s:[I], s:[I, I]}", "dtype", "F32", "shape",
                              (json_int_t)(m->end - m->begin), "data_offsets", nb * a,
                              nb * (a + 1));
        if (!t || json_object_set_new(h, lmf_ckpt_array_names[a], t) != 0) {
            json_decref(h);
            h = NULL;
        }
    }
    char *txt = h ? json_dumps(h, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(h);
    if (!txt) return NULL;
    size_t n = strlen(txt), padded = (n + 7) / 8 * 8;
    char *out = realloc(txt, padded + 1);
    if (!out) {
        free(txt);
        return NULL;
    }
    memset(out + n, ' ', padded - n);
    out[padded] = '\0';
    *hlen = padded;
    return out;
}

lmf_status lmf_ckpt_shard_write(const char *path, const lmf_ckpt_shard_meta *m, const float *data,
                                const lmf_ckpt_faults *faults, uint64_t *bytes, uint64_t *xxh3) {
    LMF_ASSERT(m->end >= m->begin);
    size_t hlen = 0;
    char *hdr = shard_header(m, &hlen);
    XXH3_state_t *hs = XXH3_createState();
    if (!hdr || !hs) {
        free(hdr);
        XXH3_freeState(hs);
        return lmf_fail(LMF_ERR_NOMEM, "out of memory writing %s", path);
    }
    uint64_t dbytes = 3 * (m->end - m->begin) * sizeof(float);
    uint64_t total = 8 + hlen + dbytes;
    lmf_status s = LMF_OK;
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) s = lmf_fail(LMF_ERR_IO, "cannot create %s: %s", path, lmf_io_reason(errno));
    /* reserve the space first, so that a full disk fails before anything is written */
    if (s == LMF_OK && fallocate(fd, 0, 0, (off_t)total) != 0 &&
        (errno == ENOSPC || errno == EFBIG || errno == EDQUOT))
        s = lmf_fail(LMF_ERR_IO, "cannot write %s (%llu bytes): %s", path,
                     (unsigned long long)total, lmf_io_reason(errno));
    uint8_t pre[8];
    for (int i = 0; i < 8; i++) pre[i] = (uint8_t)((uint64_t)hlen >> (8 * i));
    XXH3_64bits_reset(hs);
    if (s == LMF_OK) {
        XXH3_64bits_update(hs, pre, 8);
        XXH3_64bits_update(hs, hdr, hlen);
        s = lmf_write_all(fd, pre, 8, path);
    }
    if (s == LMF_OK) s = lmf_write_all(fd, hdr, hlen, path);
    const char *p = (const char *)data;
    int hooked = 0;
    for (uint64_t off = 0; s == LMF_OK && off < dbytes;) {
        size_t c = dbytes - off > CHUNK ? CHUNK : (size_t)(dbytes - off);
        XXH3_64bits_update(hs, p + off, c);
        s = lmf_write_all(fd, p + off, c, path);
        off += c;
        if (s == LMF_OK && faults && !hooked && off >= dbytes / 2) { /* a test's faults */
            hooked = 1;
            if (faults->write_delay_ms > 0) sleep_ms(faults->write_delay_ms);
            if (faults->fail)
                s = lmf_fail(LMF_ERR_IO, "cannot write %s: injected failure (--test-ckpt-fail-rank "
                             "%d)", path, m->rank);
        }
    }
    if (s == LMF_OK && fsync(fd) != 0)
        s = lmf_fail(LMF_ERR_IO, "cannot sync %s: %s", path, lmf_io_reason(errno));
    if (fd >= 0 && close(fd) != 0 && s == LMF_OK)
        s = lmf_fail(LMF_ERR_IO, "cannot close %s: %s", path, lmf_io_reason(errno));
    if (s != LMF_OK && fd >= 0) unlink(path);
    *bytes = total;
    *xxh3 = XXH3_64bits_digest(hs);
    XXH3_freeState(hs);
    free(hdr);
    return s;
}

lmf_status lmf_ckpt_small_write(const char *path, const void *data, size_t len, uint64_t *xxh3) {
    *xxh3 = XXH3_64bits(data, len);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) return lmf_fail(LMF_ERR_IO, "cannot create %s: %s", path, lmf_io_reason(errno));
    lmf_status s = lmf_write_all(fd, data, len, path);
    if (s == LMF_OK && fsync(fd) != 0)
        s = lmf_fail(LMF_ERR_IO, "cannot sync %s: %s", path, lmf_io_reason(errno));
    if (close(fd) != 0 && s == LMF_OK)
        s = lmf_fail(LMF_ERR_IO, "cannot close %s: %s", path, lmf_io_reason(errno));
    if (s != LMF_OK) unlink(path);
    return s;
}

/* The header of shard f must describe exactly this checkpoint's shard. */
static lmf_status check_header(const char *path, const lmf_ckpt_index *ix, const lmf_ckpt_file *f,
                               uint64_t data_off, uint64_t size) {
    lmf_st_file *sf = NULL;
    LMF_TRY(lmf_st_open(path, &sf));
    char id[17], want_id[17], begin[24], end[24];
    hex64(ix->id, want_id);
    snprintf(begin, sizeof begin, "%llu", (unsigned long long)f->begin);
    snprintf(end, sizeof end, "%llu", (unsigned long long)f->end);
    const char *fmt = lmf_st_metadata(sf, "format"), *ck = lmf_st_metadata(sf, "checkpoint");
    const char *b = lmf_st_metadata(sf, "begin"), *e = lmf_st_metadata(sf, "end");
    snprintf(id, sizeof id, "%s", ck ? ck : "(none)");
    lmf_status s = LMF_OK;
    uint64_t n = f->end - f->begin;
    if (!fmt || strcmp(fmt, LMF_CKPT_SHARD_FORMAT) != 0)
        s = lmf_fail(LMF_ERR_FORMAT, "%s: not an lmforge checkpoint shard (metadata format is "
                     "not \"%s\")", path, LMF_CKPT_SHARD_FORMAT);
    else if (!ck || strcmp(ck, want_id) != 0)
        s = lmf_fail(LMF_ERR_FORMAT, "%s: belongs to checkpoint %s, but index.json is for "
                     "checkpoint %s: the file comes from another checkpoint or run, or is "
                     "corrupted", path, id, want_id);
    else if (!b || !e || strcmp(b, begin) != 0 || strcmp(e, end) != 0)
        s = lmf_fail(LMF_ERR_FORMAT, "%s: holds floats [%s, %s) but index.json lists [%s, %s)",
                     path, b ? b : "?", e ? e : "?", begin, end);
    else if (lmf_st_count(sf) != LMF_CKPT_N_ARRAYS || data_off + 3 * n * sizeof(float) != size)
        s = lmf_fail(LMF_ERR_FORMAT, "%s: expected exactly the tensors params, exp_avg and "
                     "exp_avg_sq filling the file", path);
    for (int a = 0; a < LMF_CKPT_N_ARRAYS && s == LMF_OK; a++) {
        const lmf_st_tensor *t = lmf_st_find(sf, lmf_ckpt_array_names[a]);
        uint64_t nb = n * sizeof(float);
        if (!t || t->dtype != LMF_F32 || t->ndim != 1 || (uint64_t)t->shape[0] != n ||
            t->begin != nb * (uint64_t)a || t->end != nb * (uint64_t)(a + 1))
            s = lmf_fail(LMF_ERR_FORMAT, "%s: tensor %s is missing or not a 1-D F32 array of "
                         "%llu floats at its place", path, lmf_ckpt_array_names[a],
                         (unsigned long long)n);
    }
    lmf_st_close(sf);
    return s;
}

/* copy the bytes of chunk [pos, pos + c) that belong to the wanted floats */
static void scatter(const lmf_ckpt_file *f, uint64_t data_off, const lmf_ckpt_want *want,
                    const char *chunk, uint64_t pos, size_t c) {
    uint64_t n = f->end - f->begin;
    for (int a = 0; a < LMF_CKPT_N_ARRAYS; a++) {
        const lmf_ckpt_want *w = &want[a];
        uint64_t lo = w->begin > f->begin ? w->begin : f->begin;
        uint64_t hi = w->end < f->end ? w->end : f->end;
        if (!w->dst || lo >= hi) continue;
        uint64_t A = data_off + (uint64_t)a * n * sizeof(float) + (lo - f->begin) * sizeof(float);
        uint64_t B = A + (hi - lo) * sizeof(float);
        uint64_t x = A > pos ? A : pos, y = B < pos + c ? B : pos + c;
        if (x >= y) continue;
        memcpy((char *)w->dst + (lo - w->begin) * sizeof(float) + (x - A), chunk + (x - pos),
               (size_t)(y - x));
    }
}

lmf_status lmf_ckpt_shard_read(const char *dir, const lmf_ckpt_index *ix, const lmf_ckpt_file *f,
                               const lmf_ckpt_want want[LMF_CKPT_N_ARRAYS]) {
    char path[4300];
    snprintf(path, sizeof path, "%s/%s", dir, f->name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT)
        return lmf_fail(LMF_ERR_IO, "%s: missing, but index.json lists it: the checkpoint is "
                        "incomplete (restore the file or resume from an older checkpoint)", path);
    if (fd < 0) return lmf_fail(LMF_ERR_IO, "cannot open %s: %s", path, strerror(errno));
    struct stat st;
    lmf_status s = LMF_OK;
    if (fstat(fd, &st) != 0) s = lmf_fail(LMF_ERR_IO, "cannot stat %s: %s", path, strerror(errno));
    else if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size != f->bytes)
        s = lmf_fail(LMF_ERR_FORMAT, "%s: %llu bytes, but index.json lists %llu: the file is "
                     "truncated or was replaced", path, (unsigned long long)st.st_size,
                     (unsigned long long)f->bytes);
    uint8_t pre[8];
    uint64_t hlen = 0;
    if (s == LMF_OK && f->bytes < 8)
        s = lmf_fail(LMF_ERR_FORMAT, "%s: too short for a shard", path);
    if (s == LMF_OK) s = lmf_pread_all(fd, pre, 8, 0, path);
    for (int i = 0; i < 8 && s == LMF_OK; i++) hlen |= (uint64_t)pre[i] << (8 * i);
    if (s == LMF_OK && (hlen > LMF_ST_MAX_HEADER || hlen > f->bytes - 8))
        s = lmf_fail(LMF_ERR_FORMAT, "%s: header length %llu does not fit the file", path,
                     (unsigned long long)hlen);
    if (s == LMF_OK) s = check_header(path, ix, f, 8 + hlen, f->bytes);
    char *buf = s == LMF_OK ? malloc(CHUNK) : NULL;
    XXH3_state_t *hs = s == LMF_OK ? XXH3_createState() : NULL;
    if (s == LMF_OK && (!buf || !hs)) s = lmf_fail(LMF_ERR_NOMEM, "out of memory reading %s", path);
    if (s == LMF_OK) XXH3_64bits_reset(hs);
    for (uint64_t pos = 0; s == LMF_OK && pos < f->bytes;) {
        size_t c = f->bytes - pos > CHUNK ? CHUNK : (size_t)(f->bytes - pos);
        s = lmf_pread_all(fd, buf, c, pos, path);
        if (s != LMF_OK) break;
        XXH3_64bits_update(hs, buf, c);
        scatter(f, 8 + hlen, want, buf, pos, c);
        pos += c;
    }
    if (s == LMF_OK) {
        uint64_t got = XXH3_64bits_digest(hs);
        if (got != f->xxh3) {
            char g[17], w[17];
            hex64(got, g);
            hex64(f->xxh3, w);
            s = lmf_fail(LMF_ERR_FORMAT, "%s: checksum mismatch (XXH3 %s, index.json lists %s): "
                         "the file is corrupted", path, g, w);
        }
    }
    XXH3_freeState(hs);
    free(buf);
    close(fd);
    return s;
}

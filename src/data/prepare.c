/* lmf_data_prepare: text files -> train/val shards, encoded in parallel. */
/* Documents are cut into work units (whole documents, or pieces of a long one cut where
 * encoding is unaffected), encoded in batches on all cores and appended in input order, so the
 * shards do not depend on the thread count. */
#include "lmforge/prepare.h"

#include <errno.h>
#include <fcntl.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lmforge/data.h"
#include "lmforge/fsutil.h"

#define UNIT_BYTES ((size_t)256 << 10)  /* whole documents are grouped up to this size */
#define PIECE_BYTES ((size_t)1 << 20)   /* longer documents are cut into pieces of about this */

typedef struct pfile {
    const char *path;
    const char *data;   /* mapped while units refer to it */
    size_t len;
} pfile;

typedef struct unit {
    int file;
    size_t start, end;  /* byte range in the file */
    size_t n_docs;      /* documents that end in this unit (each gets an end-of-text id) */
    int piece;          /* 1: raw text of one document (end-of-text only when n_docs == 1) */
    int val;
    uint32_t *ids;      /* the batch slot's buffer (see prep.bufs) */
    size_t n_ids;
    lmf_status st;
    char err[512];
} unit;

typedef struct buf {     /* id buffers kept across batches: no page faults on every unit */
    uint32_t *ids;
    size_t cap;
} buf;

typedef struct prep {
    const lmf_prepare_opts *o;
    const char *sep;
    size_t sep_len;
    uint32_t eot;
    pfile *files;
    unit *units;
    buf *bufs;           /* [cap_units] */
    size_t n_units, cap_units, batch_bytes;
    lmf_shard_writer *train, *val;
    lmf_prepare_stats st;
    uint64_t bytes_total, bytes_done;
    int threads;
} prep;

/* The next non-empty document at or after pos (a line start) in d[0..len): [*ds, *de), and
 * *np where the search goes on. Without a separator the rest of the file is one document. */
static int next_doc(const prep *p, const char *d, size_t len, size_t pos, size_t *ds, size_t *de,
                    size_t *np) {
    while (pos < len) {
        if (!p->sep) {
            *ds = pos;
            *de = *np = len;
            return 1;
        }
        size_t doc_end = len, next = len;
        for (size_t ls = pos; ls < len;) {
            const char *nl = memchr(d + ls, '\n', len - ls);
            size_t le = nl ? (size_t)(nl - d) : len, ce = le;
            if (ce > ls && d[ce - 1] == '\r') ce--;
            if (ce - ls == p->sep_len && memcmp(d + ls, p->sep, p->sep_len) == 0) {
                doc_end = ls;
                next = nl ? le + 1 : len;
                break;
            }
            ls = nl ? le + 1 : len;
        }
        if (doc_end > pos) {
            *ds = pos;
            *de = doc_end;
            *np = next;
            return 1;
        }
        pos = next;
    }
    return 0;
}

static lmf_status map_file(pfile *f) {
    if (f->len == 0 || f->data) return LMF_OK;
    int fd = open(f->path, O_RDONLY);
    if (fd < 0) return lmf_fail(LMF_ERR_IO, "%s: cannot open: %s", f->path, strerror(errno));
    void *m = mmap(NULL, f->len, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (m == MAP_FAILED) return lmf_fail(LMF_ERR_IO, "%s: cannot map: %s", f->path, strerror(errno));
    madvise(m, f->len, MADV_SEQUENTIAL);
    f->data = m;
    return LMF_OK;
}

static void unmap_file(pfile *f) {
    if (f->data) munmap((void *)f->data, f->len);
    f->data = NULL;
}

static void encode_unit(const prep *p, unit *u, buf *b) {
    const pfile *f = &p->files[u->file];
    size_t cap = (u->end - u->start) + u->n_docs;
    if (b->cap < cap) {
        free(b->ids);
        b->cap = cap + cap / 4;
        b->ids = malloc(b->cap * sizeof *b->ids);
        if (!b->ids) {
            b->cap = 0;
            u->st = LMF_ERR_NOMEM;
            snprintf(u->err, sizeof u->err, "out of memory");
            return;
        }
    }
    u->ids = b->ids;
    size_t n = 0;
    size_t pos = u->start, ds, de, np;
    while (pos < u->end) {
        if (u->piece) {
            ds = u->start;
            de = np = u->end;
        } else if (!next_doc(p, f->data, f->len, pos, &ds, &de, &np) || ds >= u->end) {
            break;
        }
        if (p->o->tok) {
            size_t k;
            lmf_status s = lmf_tok_encode(p->o->tok, f->data + ds, de - ds, 0, u->ids + n, cap - n, &k);
            if (s != LMF_OK) {
                u->st = s;
                snprintf(u->err, sizeof u->err, "%s: %s", f->path, lmf_last_error());
                return;
            }
            n += k;
        } else {
            for (size_t i = ds; i < de; i++) u->ids[n++] = (uint8_t)f->data[i];
        }
        if (!u->piece || u->n_docs) u->ids[n++] = p->eot;
        pos = np;
    }
    u->n_ids = n;
}

/* Encode the collected units in parallel, append them in order, release finished files. */
static lmf_status run_batch(prep *p, int current_file) {
    unit *us = p->units;
    long nu = (long)p->n_units;
#pragma omp parallel for schedule(dynamic, 1) num_threads(p->threads)
    for (long k = 0; k < nu; k++) encode_unit(p, &us[k], &p->bufs[k]);
    lmf_status s = LMF_OK;
    for (long k = 0; k < nu; k++) {
        unit *u = &us[k];
        if (s == LMF_OK && u->st != LMF_OK) s = lmf_fail(u->st, "%s", u->err);
        if (s == LMF_OK) {
            lmf_shard_writer *w = u->val ? p->val : p->train;
            s = lmf_shard_writer_append(w, u->ids, u->n_ids);
            if (u->val) p->st.val_tokens += u->n_ids;
            else p->st.train_tokens += u->n_ids;
            p->bytes_done += u->end - u->start;
        }
        u->ids = NULL;
    }
    p->n_units = 0;
    p->batch_bytes = 0;
    for (int f = 0; f < current_file; f++) unmap_file(&p->files[f]);
    if (s == LMF_OK && p->o->progress)
        p->o->progress(p->o->progress_ctx, p->bytes_done, p->bytes_total,
                       p->st.train_tokens + p->st.val_tokens);
    return s;
}

static lmf_status add_unit(prep *p, const unit *u, int current_file) {
    if (p->n_units == p->cap_units) {
        size_t cap = p->cap_units ? 2 * p->cap_units : 64;
        unit *nu = realloc(p->units, cap * sizeof *nu);
        if (nu) p->units = nu;
        buf *nb = realloc(p->bufs, cap * sizeof *nb);
        if (nb) p->bufs = nb;
        if (!nu || !nb) return lmf_fail(LMF_ERR_NOMEM, "data prepare: out of memory");
        for (size_t k = p->cap_units; k < cap; k++) p->bufs[k] = (buf){NULL, 0};
        p->cap_units = cap;
    }
    p->units[p->n_units++] = *u;
    p->batch_bytes += u->end - u->start;
    size_t max_units = (size_t)(8 * p->threads > 32 ? 8 * p->threads : 32);
    if (p->n_units >= max_units || p->batch_bytes >= max_units * UNIT_BYTES) return run_batch(p, current_file);
    return LMF_OK;
}

static lmf_status make_units(prep *p, int fi, uint64_t *doc_index, uint64_t first_val) {
    pfile *f = &p->files[fi];
    LMF_TRY(map_file(f));
    unit cur = {0};
    int have = 0;
    size_t pos = 0, ds, de, np;
    while (next_doc(p, f->data, f->len, pos, &ds, &de, &np)) {
        int val = *doc_index >= first_val;
        int long_doc = de - ds > 2 * PIECE_BYTES;
        if (have && (long_doc || cur.val != val || (cur.end - cur.start) + (de - ds) > UNIT_BYTES)) {
            LMF_TRY(add_unit(p, &cur, fi));
            have = 0;
        }
        if (long_doc) { /* pieces cut where encoding is unaffected */
            for (size_t a = ds; a < de;) {
                size_t b = de - a > 2 * PIECE_BYTES
                               ? ds + lmf_tok_split_point(f->data + ds, de - ds, a - ds + PIECE_BYTES)
                               : de;
                unit u = {.file = fi, .start = a, .end = b, .piece = 1, .n_docs = b == de, .val = val};
                LMF_TRY(add_unit(p, &u, fi));
                a = b;
            }
        } else {
            if (!have) cur = (unit){.file = fi, .start = ds, .val = val};
            have = 1;
            cur.end = np;
            cur.n_docs++;
        }
        (*doc_index)++;
        pos = np;
    }
    if (have) LMF_TRY(add_unit(p, &cur, fi));
    return LMF_OK;
}

/* documents in a file (pass 1, for the validation split) */
static lmf_status count_docs(prep *p, pfile *f, uint64_t *n) {
    *n = 0;
    if (f->len == 0) return LMF_OK;
    if (!p->sep) {
        *n = 1;
        return LMF_OK;
    }
    LMF_TRY(map_file(f));
    size_t pos = 0, ds, de, np;
    while (next_doc(p, f->data, f->len, pos, &ds, &de, &np)) {
        (*n)++;
        pos = np;
    }
    unmap_file(f);
    return LMF_OK;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

lmf_status lmf_data_prepare(const lmf_prepare_opts *o, lmf_prepare_stats *stats) {
    double t0 = now_s();
    if (!o->inputs || o->n_inputs <= 0) return lmf_fail(LMF_ERR_ARG, "data prepare: no input files");
    if (!o->out_dir || !*o->out_dir) return lmf_fail(LMF_ERR_ARG, "data prepare: no output directory");
    if (!(o->val_fraction >= 0.0 && o->val_fraction < 1.0))
        return lmf_fail(LMF_ERR_ARG, "data prepare: the validation fraction must be in [0, 1), got %g",
                        o->val_fraction);
    if (o->doc_separator && (!*o->doc_separator || strchr(o->doc_separator, '\n')))
        return lmf_fail(LMF_ERR_ARG, "data prepare: the document separator must be a non-empty "
                        "string without a newline");
    if (o->tok && lmf_tok_eot(o->tok) < 0)
        return lmf_fail(LMF_ERR_ARG, "data prepare: the tokenizer has no end-of-text token to "
                        "separate documents; train one with a special token");
    prep p = {.o = o, .sep = o->doc_separator};
    p.sep_len = p.sep ? strlen(p.sep) : 0;
    p.eot = o->tok ? (uint32_t)lmf_tok_eot(o->tok) : 256u;
    p.st.vocab_size = o->tok ? lmf_tok_vocab_size(o->tok) : 257;
    p.st.token_bytes = p.st.vocab_size > 65536 ? 4 : 2;
    p.threads = o->threads > 0 ? o->threads : omp_get_max_threads();
    p.st.threads = p.threads;
    p.files = calloc((size_t)o->n_inputs, sizeof *p.files);
    if (!p.files) return lmf_fail(LMF_ERR_NOMEM, "data prepare: out of memory");
    lmf_status s = LMF_OK;
    uint64_t n_docs = 0;
    for (int i = 0; i < o->n_inputs && s == LMF_OK; i++) {
        struct stat sb;
        p.files[i].path = o->inputs[i];
        if (stat(o->inputs[i], &sb) != 0) {
            s = lmf_fail(LMF_ERR_IO, "%s: cannot open: %s", o->inputs[i], strerror(errno));
        } else if (!S_ISREG(sb.st_mode)) {
            s = lmf_fail(LMF_ERR_IO, "%s: not a regular file", o->inputs[i]);
        } else {
            p.files[i].len = (size_t)sb.st_size;
            p.bytes_total += (uint64_t)sb.st_size;
            uint64_t nd;
            s = count_docs(&p, &p.files[i], &nd);
            n_docs += nd;
        }
    }
    uint64_t n_val = 0;
    if (s == LMF_OK && o->val_fraction > 0 && n_docs >= 2) {
        n_val = (uint64_t)((double)n_docs * o->val_fraction + 0.5);
        if (n_val == 0) n_val = 1;
        if (n_val >= n_docs) n_val = n_docs - 1;
    }
    char path[4200];
    if (s == LMF_OK) s = lmf_mkdir_p(o->out_dir);
    if (s == LMF_OK) {
        snprintf(path, sizeof path, "%s/train.bin", o->out_dir);
        s = lmf_shard_writer_open(path, p.st.token_bytes, &p.train);
    }
    if (s == LMF_OK && o->val_fraction > 0) {
        snprintf(path, sizeof path, "%s/val.bin", o->out_dir);
        s = lmf_shard_writer_open(path, p.st.token_bytes, &p.val);
    }
    uint64_t doc_index = 0;
    for (int i = 0; i < o->n_inputs && s == LMF_OK; i++) s = make_units(&p, i, &doc_index, n_docs - n_val);
    if (s == LMF_OK && p.n_units) s = run_batch(&p, o->n_inputs);
    for (size_t k = 0; k < p.cap_units; k++) free(p.bufs[k].ids);
    free(p.bufs);
    for (int i = 0; i < o->n_inputs; i++) unmap_file(&p.files[i]);
    free(p.units);
    free(p.files);
    if (s == LMF_OK && p.train) {
        s = lmf_shard_writer_close(p.train);
        p.train = NULL;
    }
    if (s == LMF_OK && p.val) {
        s = lmf_shard_writer_close(p.val);
        p.val = NULL;
    }
    if (p.train) lmf_shard_writer_abort(p.train);
    if (p.val) lmf_shard_writer_abort(p.val);
    if (s != LMF_OK) return s;
    p.st.bytes = p.bytes_total;
    p.st.docs = n_docs;
    p.st.val_docs = n_val;
    p.st.seconds = now_s() - t0;
    if (stats) *stats = p.st;
    return LMF_OK;
}

/* lmf_data_prepare: text files -> train/val token files, encoded in parallel. */
/* The calling thread cuts documents into work units (whole documents, or pieces of a long one
 * cut where encoding is unaffected) and puts them in a ring; worker threads encode them; the
 * calling thread appends them in input order, so the token files do not depend on the thread count.
 * Plain text is memory-mapped; compressed and JSON Lines inputs are decoded as streams, a window
 * at a time (a document running past a window's end is carried into the next, or cut into
 * pieces when long), so memory does not grow with a file.
 * Waiting blocks on condition variables (no spinning), which keeps shared machines fast. */
#include "lmforge/prepare.h"

#include <errno.h>
#include <fcntl.h>
#include <omp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "data/input.h"
#include "lmforge/data.h"
#include "lmforge/fsutil.h"
#include "lmforge/system.h"

#define UNIT_BYTES ((size_t)256 << 10)  /* whole documents are grouped up to this size */
#define PIECE_BYTES ((size_t)1 << 20)   /* longer documents are cut into pieces of about this */
#define WINDOW_BYTES ((size_t)16 << 20) /* decoded bytes read at a time from a streamed input */

typedef struct pfile {
    const char *path;
    size_t len;          /* bytes on disk */
    lmf_input_kind kind;
} pfile;

/* documents in decoded bytes data[0..len): a mapped file or a window of a streamed one */
typedef struct view {
    const char *data;
    size_t len;
    lmf_input_kind kind;
    int cont;            /* data[0] continues a document (in the middle of a line) */
} view;

/* memory units point into: a mapped file or a decoded window */
typedef struct seg {
    char *mem;
    size_t len;
    int mapped;
} seg;

typedef struct unit {
    int file;           /* the input, for its path */
    size_t seg;         /* the memory it reads */
    view v;
    uint64_t base;      /* offset of v.data[0] in the decoded file (for messages) */
    size_t start, end;  /* byte range in v */
    size_t n_docs;      /* documents that end in this unit (each gets an end-of-text id) */
    int piece;          /* 1: raw text of one document (end-of-text only when n_docs == 1) */
    int val;
} unit;

enum { SLOT_FREE, SLOT_READY, SLOT_BUSY, SLOT_DONE };

typedef struct slot {    /* one place in the ring: a unit and its ids */
    unit u;
    int state;
    uint32_t *ids;       /* kept across units: no page faults for every unit */
    size_t cap, n_ids;
    lmf_status st;
    char err[512];
} slot;

typedef struct prep {
    const lmf_prepare_opts *o;
    const char *sep;
    size_t sep_len;
    uint32_t eot;
    size_t window;       /* decoded bytes read at a time */
    pfile *files;
    lmf_tokens_writer *train, *val;
    lmf_prepare_stats st;
    uint64_t bytes_total, bytes_done;
    int threads;
    /* segments: [segs_freed, n_segs) still held */
    seg *segs;
    size_t n_segs, cap_segs, segs_freed;
    /* the ring: units [appended, produced) are in flight; workers take them in order */
    slot *ring;
    size_t n_slots;
    uint64_t produced, taken, appended;
    int stop;
    pthread_mutex_t mu;
    pthread_cond_t work, done;
    /* pass 1 */
    int next_file;
    uint64_t *file_docs;
    lmf_status count_st;
    char count_err[600];
} prep;

static int is_jsonl(lmf_input_kind k) { return k == LMF_INPUT_JSONL || k == LMF_INPUT_JSONL_ZSTD; }

/* 1 when the line starting at q is the separator; *after = the start of the next line */
static int is_sep_line(const prep *p, const char *d, size_t len, size_t q, size_t *after) {
    size_t e = q + p->sep_len;
    if (e > len || memcmp(d + q, p->sep, p->sep_len) != 0) return 0;
    if (e < len && d[e] == '\r') e++;
    if (e == len) {
        *after = len;
        return 1;
    }
    if (d[e] != '\n') return 0;
    *after = e + 1;
    return 1;
}

/* start of the first separator line at or after pos (a line start, except position 0 of a view
 * that continues a document) in v (len if none): candidates are the separator's first byte at
 * the start of a line, found with memchr */
static size_t find_sep(const prep *p, const view *v, size_t pos, size_t *after) {
    const char *d = v->data;
    size_t len = v->len;
    for (size_t q = pos;;) {
        if ((q > 0 || !v->cont) && is_sep_line(p, d, len, q, after)) return q;
        size_t from = q + 1;
        for (;;) {
            const char *f = from < len ? memchr(d + from, p->sep[0], len - from) : NULL;
            if (!f) {
                *after = len;
                return len;
            }
            size_t c = (size_t)(f - d);
            if (d[c - 1] == '\n') {
                q = c;
                break;
            }
            from = c + 1;
        }
    }
}

/* The next non-empty document at or after pos in v: [*ds, *de), and *np where the search goes
 * on. Without a separator the rest of the view is one document. */
static int next_doc(const prep *p, const view *v, size_t pos, size_t *ds, size_t *de,
                    size_t *np) {
    const char *d = v->data;
    size_t len = v->len;
    while (pos < len && is_jsonl(v->kind)) {
        const char *z = memchr(d + pos, '\0', len - pos);
        size_t q = z ? (size_t)(z - d) : len;
        if (q > pos) {
            *ds = pos;
            *de = q;
            *np = q < len ? q + 1 : len;
            return 1;
        }
        pos = q + 1;
    }
    while (pos < len) {
        if (!p->sep) {
            *ds = pos;
            *de = *np = len;
            return 1;
        }
        size_t after, q = find_sep(p, v, pos, &after);
        if (q > pos) {
            *ds = pos;
            *de = q;
            *np = after;
            return 1;
        }
        pos = after;
    }
    return 0;
}

static lmf_status map_file(const pfile *f, char **mem) {
    int fd = open(f->path, O_RDONLY);
    if (fd < 0) return lmf_fail(LMF_ERR_IO, "%s: cannot open: %s", f->path, strerror(errno));
    void *m = mmap(NULL, f->len, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (m == MAP_FAILED) return lmf_fail(LMF_ERR_IO, "%s: cannot map: %s", f->path, strerror(errno));
    madvise(m, f->len, MADV_SEQUENTIAL);
    *mem = m;
    return LMF_OK;
}

static void free_seg(seg *s) {
    if (s->mapped) munmap(s->mem, s->len);
    else free(s->mem);
    s->mem = NULL;
}

/* Encode the unit of slot sl into its buffer (called by a worker, without the lock). */
static void encode_unit(const prep *p, slot *sl) {
    const unit *u = &sl->u;
    const pfile *f = &p->files[u->file];
    const char *data = u->v.data;
    size_t cap = (u->end - u->start) + u->n_docs;
    sl->st = LMF_OK;
    sl->n_ids = 0;
    if (sl->cap < cap) {
        free(sl->ids);
        sl->cap = cap + cap / 4;
        sl->ids = malloc(sl->cap * sizeof *sl->ids);
        if (!sl->ids) {
            sl->cap = 0;
            sl->st = LMF_ERR_NOMEM;
            snprintf(sl->err, sizeof sl->err, "data prepare: out of memory");
            return;
        }
    }
    if (!is_jsonl(f->kind)) {
        size_t bad = u->start + lmf_input_utf8_check(data + u->start, u->end - u->start);
        if (bad < u->end) {
            sl->st = LMF_ERR_FORMAT;
            snprintf(sl->err, sizeof sl->err, "%s: not valid UTF-8 at %sbyte offset %llu (0x%02x); "
                     "convert the file to UTF-8 (e.g. iconv -f latin1 -t utf-8) or leave it out",
                     f->path, f->kind == LMF_INPUT_TEXT_ZSTD ? "decompressed " : "",
                     (unsigned long long)(u->base + bad), (unsigned)(uint8_t)data[bad]);
            return;
        }
    }
    uint32_t *ids = sl->ids;
    size_t n = 0, pos = u->start, ds, de, np;
    while (pos < u->end) {
        if (u->piece) {
            ds = u->start;
            de = np = u->end;
        } else if (!next_doc(p, &u->v, pos, &ds, &de, &np) || ds >= u->end) {
            break;
        }
        if (p->o->tok) {
            size_t k;
            lmf_status s = lmf_tok_encode(p->o->tok, data + ds, de - ds, 0, ids + n, cap - n, &k);
            if (s != LMF_OK) {
                sl->st = s;
                snprintf(sl->err, sizeof sl->err, "%s: %s", f->path, lmf_last_error());
                return;
            }
            n += k;
        } else {
            for (size_t i = ds; i < de; i++) ids[n++] = (uint8_t)data[i];
        }
        if (!u->piece || u->n_docs) ids[n++] = p->eot;
        pos = np;
    }
    sl->n_ids = n;
}

static void *worker(void *arg) {
    prep *p = arg;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->stop && p->taken == p->produced) pthread_cond_wait(&p->work, &p->mu);
        if (p->taken == p->produced) break; /* stopping, nothing left */
        slot *sl = &p->ring[p->taken % p->n_slots];
        p->taken++;
        sl->state = SLOT_BUSY;
        pthread_mutex_unlock(&p->mu);
        encode_unit(p, sl);
        pthread_mutex_lock(&p->mu);
        sl->state = SLOT_DONE;
        pthread_cond_broadcast(&p->done);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* Wait for the oldest unit in flight, append it, free its slot and the segments before its own
 * (all their units are out). */
static lmf_status append_oldest(prep *p) {
    slot *sl = &p->ring[p->appended % p->n_slots];
    pthread_mutex_lock(&p->mu);
    while (sl->state != SLOT_DONE) pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
    lmf_status s = sl->st;
    if (s != LMF_OK) return lmf_fail(s, "%s", sl->err);
    s = lmf_tokens_writer_append(sl->u.val ? p->val : p->train, sl->ids, sl->n_ids);
    if (s != LMF_OK) return s;
    if (sl->u.val) p->st.val_tokens += sl->n_ids;
    else p->st.train_tokens += sl->n_ids;
    p->bytes_done += sl->u.end - sl->u.start;
    while (p->segs_freed < sl->u.seg) free_seg(&p->segs[p->segs_freed++]);
    pthread_mutex_lock(&p->mu);
    sl->state = SLOT_FREE;
    p->appended++;
    pthread_mutex_unlock(&p->mu);
    if (p->o->progress && (p->appended % 16 == 0 || p->appended == p->produced))
        p->o->progress(p->o->progress_ctx, p->bytes_done, p->bytes_total,
                       p->st.train_tokens + p->st.val_tokens);
    return LMF_OK;
}

/* Hand a unit to the workers, first appending the oldest one when the ring is full. */
static lmf_status add_unit(prep *p, const unit *u) {
    if (p->produced - p->appended == p->n_slots) LMF_TRY(append_oldest(p));
    slot *sl = &p->ring[p->produced % p->n_slots];
    pthread_mutex_lock(&p->mu);
    sl->u = *u;
    sl->state = SLOT_READY;
    p->produced++;
    pthread_cond_signal(&p->work);
    pthread_mutex_unlock(&p->mu);
    return LMF_OK;
}

/* A new segment holding mem (owned from now on); its index in *idx. */
static lmf_status add_seg(prep *p, char *mem, size_t len, int mapped, size_t *idx) {
    if (p->n_segs == p->cap_segs) {
        size_t c = p->cap_segs ? 2 * p->cap_segs : 16;
        seg *v = realloc(p->segs, c * sizeof *v);
        if (!v) return lmf_fail(LMF_ERR_NOMEM, "data prepare: out of memory");
        p->segs = v;
        p->cap_segs = c;
    }
    p->segs[p->n_segs] = (seg){mem, len, mapped};
    *idx = p->n_segs++;
    return LMF_OK;
}

/* The documents of view v (input fi, segment sg, at decoded offset base): with counting, only
 * counted; else cut into units. *doc_index counts documents as they end. A document that runs
 * to the view's end ends there only when eof; otherwise it is left for the next window: *keep
 * is where the undecided tail begins (a long document's pieces before it are made now, cut at
 * lmf_tok_split_point); *keep = v->len when nothing is left. */
static lmf_status view_units(prep *p, const view *v, int fi, size_t sg, uint64_t base, int eof,
                             int counting, uint64_t *doc_index, uint64_t first_val, size_t *keep) {
    const char *d = v->data;
    unit cur = {0};
    int have = 0;
    size_t pos = 0, ds, de, np;
    *keep = v->len;
    while (next_doc(p, v, pos, &ds, &de, &np)) {
        int val = *doc_index >= first_val;
        int complete = eof || de < v->len || is_jsonl(v->kind);
        int long_doc = de - ds > 2 * PIECE_BYTES;
        if (!counting && have &&
            (long_doc || !complete || cur.val != val || (cur.end - cur.start) + (de - ds) > UNIT_BYTES)) {
            LMF_TRY(add_unit(p, &cur));
            have = 0;
        }
        if (long_doc) { /* pieces cut where encoding is unaffected; an open document keeps a tail */
            size_t a = ds;
            while (de - a > 2 * PIECE_BYTES) {
                size_t b = ds + lmf_tok_split_point(d + ds, de - ds, a - ds + PIECE_BYTES);
                if (b >= de) break;
                unit u = {.file = fi, .seg = sg, .v = *v, .base = base, .start = a, .end = b,
                          .piece = 1, .val = val};
                if (!counting) LMF_TRY(add_unit(p, &u));
                a = b;
            }
            if (!complete) {
                *keep = a;
                break;
            }
            unit u = {.file = fi, .seg = sg, .v = *v, .base = base, .start = a, .end = de,
                      .piece = 1, .n_docs = 1, .val = val};
            if (!counting) LMF_TRY(add_unit(p, &u));
        } else if (!complete) {
            *keep = ds;
            break;
        } else if (!counting) {
            if (!have) cur = (unit){.file = fi, .seg = sg, .v = *v, .base = base, .start = ds, .val = val};
            have = 1;
            cur.end = np;
            cur.n_docs++;
        }
        (*doc_index)++;
        pos = np;
    }
    if (have) LMF_TRY(add_unit(p, &cur));
    return LMF_OK;
}

/* The documents of input fi, counted (counting: into *doc_index, on any thread, touching no
 * shared state) or cut into units (the calling thread). */
static lmf_status input_units(prep *p, int fi, int counting, uint64_t *doc_index,
                              uint64_t first_val) {
    const pfile *f = &p->files[fi];
    if (f->len == 0) return LMF_OK;
    size_t keep, sg = 0;
    if (f->kind == LMF_INPUT_TEXT) {
        char *mem = NULL;
        LMF_TRY(map_file(f, &mem));
        view v = {mem, f->len, f->kind, 0};
        if (counting) {
            lmf_status s = view_units(p, &v, fi, sg, 0, 1, 1, doc_index, first_val, &keep);
            munmap(mem, f->len);
            return s;
        }
        lmf_status s = add_seg(p, mem, f->len, 1, &sg);
        if (s != LMF_OK) munmap(mem, f->len);
        return s == LMF_OK ? view_units(p, &v, fi, sg, 0, 1, 0, doc_index, first_val, &keep) : s;
    }
    lmf_input_reader *r = NULL;
    LMF_TRY(lmf_input_open(f->path, f->kind, p->o->jsonl_key, &r));
    char *buf = NULL;
    size_t len = 0, cap = 0;
    uint64_t base = 0;
    int eof = 0, cont = 0;
    lmf_status s = LMF_OK;
    while (s == LMF_OK && !eof) {
        s = lmf_input_read(r, &buf, &len, &cap, p->window, &eof);
        if (s != LMF_OK) break;
        size_t vlen = len;
        if (!eof && p->sep && !is_jsonl(f->kind)) { /* whole lines only: a separator is a line */
            while (vlen > 0 && buf[vlen - 1] != '\n') vlen--;
        }
        if (!counting && cap > p->st.window_bytes) p->st.window_bytes = cap;
        view v = {buf, vlen, f->kind, cont};
        uint64_t before = counting ? 0 : p->produced;
        if (!counting) s = add_seg(p, buf, len, 0, &sg);
        if (s == LMF_OK) s = view_units(p, &v, fi, sg, base, eof, counting, doc_index, first_val, &keep);
        if (s != LMF_OK) {
            if (!counting && p->produced == before) p->n_segs--;
            else if (!counting) buf = NULL; /* units in flight read it: freed with its segment */
            break;
        }
        cont = keep == 0 ? cont : buf[keep - 1] != '\n';
        base += keep;
        size_t rest = len - keep;
        if (counting || p->produced == before) { /* no unit reads this window: reuse it */
            if (!counting) p->n_segs--;
            if (keep) memmove(buf, buf + keep, rest);
        } else { /* the window belongs to its units now; the tail goes to a new one */
            char *nb = malloc(rest + p->window + 1);
            if (!nb) {
                s = lmf_fail(LMF_ERR_NOMEM, "data prepare: out of memory");
                buf = NULL; /* held by its segment */
                break;
            }
            memcpy(nb, buf + keep, rest);
            buf = nb;
            cap = rest + p->window + 1;
        }
        len = rest;
    }
    free(buf);
    lmf_input_close(r);
    return s;
}

/* documents in a file (pass 1, for the validation split); the message goes to err */
static lmf_status count_docs(prep *p, int fi, uint64_t *n, char *err, size_t err_cap) {
    *n = 0;
    const pfile *f = &p->files[fi];
    if (f->len == 0) return LMF_OK;
    if (!p->sep && !is_jsonl(f->kind)) {
        *n = 1;
        return LMF_OK;
    }
    lmf_status s = input_units(p, fi, 1, n, UINT64_MAX);
    if (s != LMF_OK) snprintf(err, err_cap, "%s", lmf_last_error());
    return s;
}

/* pass-1 worker: count the documents of the files it takes */
static void *count_worker(void *arg) {
    prep *p = arg;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        int i = p->next_file++;
        pthread_mutex_unlock(&p->mu);
        if (i >= p->o->n_inputs) break;
        uint64_t nd = 0;
        char e[600];
        lmf_status r = count_docs(p, i, &nd, e, sizeof e);
        pthread_mutex_lock(&p->mu);
        p->file_docs[i] = nd;
        if (r != LMF_OK && p->count_st == LMF_OK) {
            p->count_st = r;
            snprintf(p->count_err, sizeof p->count_err, "%s", e);
        }
        pthread_mutex_unlock(&p->mu);
    }
    return NULL;
}

/* run fn on n threads and wait for them; fails when not even one thread starts */
static lmf_status run_threads(prep *p, void *(*fn)(void *), int n, pthread_t *th, int *started) {
    *started = 0;
    for (int i = 0; i < n; i++) {
        if (pthread_create(&th[i], NULL, fn, p) != 0) break;
        (*started)++;
    }
    if (*started == 0) return lmf_fail(LMF_ERR_STATE, "data prepare: cannot start threads");
    return LMF_OK;
}

/* move train.bin and val.bin from tmpdir into out_dir (val.bin first: train.bin is what a
 * later run finds); without a val.bin, one left from an earlier preparation is removed */
static lmf_status commit_outputs(const char *out_dir, const char *tmpdir, int with_val) {
    char from[4300], to[4300];
    snprintf(to, sizeof to, "%s/val.bin", out_dir);
    if (with_val) {
        snprintf(from, sizeof from, "%s/val.bin", tmpdir);
        if (rename(from, to) != 0)
            return lmf_fail(LMF_ERR_IO, "cannot move %s to %s: %s", from, to, strerror(errno));
    } else if (unlink(to) != 0 && errno != ENOENT) {
        return lmf_fail(LMF_ERR_IO, "cannot remove the old %s: %s", to, strerror(errno));
    }
    snprintf(from, sizeof from, "%s/train.bin", tmpdir);
    snprintf(to, sizeof to, "%s/train.bin", out_dir);
    if (rename(from, to) != 0)
        return lmf_fail(LMF_ERR_IO, "cannot move %s to %s: %s", from, to, strerror(errno));
    return lmf_fsync_parent_dir(to);
}

uint64_t lmf_data_val_docs(uint64_t docs, double fraction) {
    if (!(fraction > 0) || docs < 2) return 0;
    uint64_t n = (uint64_t)((double)docs * fraction + 0.5);
    if (n == 0) n = 1;
    if (n >= docs) n = docs - 1;
    return n;
}

lmf_status lmf_data_prepare(const lmf_prepare_opts *o, lmf_prepare_stats *stats) {
    double t0 = lmf_now_s();
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
    p.window = o->window_bytes ? o->window_bytes : WINDOW_BYTES;
    p.st.threads = p.threads;
    p.files = calloc((size_t)o->n_inputs, sizeof *p.files);
    if (!p.files) return lmf_fail(LMF_ERR_NOMEM, "data prepare: out of memory");
    lmf_status s = LMF_OK;
    uint64_t n_docs = 0;
    for (int i = 0; i < o->n_inputs && s == LMF_OK; i++) {
        struct stat sb;
        p.files[i].path = o->inputs[i];
        p.files[i].kind = lmf_input_kind_of(o->inputs[i]);
        if (stat(o->inputs[i], &sb) != 0) {
            s = lmf_fail(LMF_ERR_IO, "%s: cannot open: %s", o->inputs[i], strerror(errno));
        } else if (!S_ISREG(sb.st_mode)) {
            s = lmf_fail(LMF_ERR_IO, "input %s is %s, not a regular file; give text files",
                         o->inputs[i], lmf_file_kind(sb.st_mode));
        } else {
            p.files[i].len = (size_t)sb.st_size;
            p.bytes_total += (uint64_t)sb.st_size;
        }
    }
    p.file_docs = calloc((size_t)o->n_inputs, sizeof *p.file_docs);
    p.n_slots = (size_t)(4 * p.threads > 8 ? 4 * p.threads : 8);
    p.ring = calloc(p.n_slots, sizeof *p.ring);
    pthread_t *th = calloc((size_t)p.threads, sizeof *th);
    if (s == LMF_OK && (!p.file_docs || !p.ring || !th)) s = lmf_fail(LMF_ERR_NOMEM, "data prepare: out of memory");
    pthread_mutex_init(&p.mu, NULL);
    pthread_cond_init(&p.work, NULL);
    pthread_cond_init(&p.done, NULL);
    /* pass 1: documents per file, on all threads (for the validation split) */
    int started = 0;
    if (s == LMF_OK) {
        s = run_threads(&p, count_worker, p.threads < o->n_inputs ? p.threads : o->n_inputs, th, &started);
        for (int i = 0; i < started; i++) pthread_join(th[i], NULL);
        if (s == LMF_OK && p.count_st != LMF_OK) s = lmf_fail(p.count_st, "%s", p.count_err);
        for (int i = 0; s == LMF_OK && i < o->n_inputs; i++) n_docs += p.file_docs[i];
    }
    uint64_t n_val = s == LMF_OK ? lmf_data_val_docs(n_docs, o->val_fraction) : 0;
    if (s == LMF_OK && o->val_fraction > 0 && n_docs < 2)
        s = lmf_fail(LMF_ERR_ARG, "data prepare: the input is too small: %llu document(s), and "
                     "a validation split needs at least two (one for val.bin, one for "
                     "train.bin); give more text, or ask for no val.bin", (unsigned long long)n_docs);
    /* both files are written into a temporary directory and moved into place together */
    char tmpdir[4200], path[4300];
    int made_out = 0, made_tmp = 0;
    if (s == LMF_OK) {
        made_out = !lmf_file_exists(o->out_dir);
        s = lmf_mkdir_p(o->out_dir);
    }
    if (s == LMF_OK) {
        snprintf(tmpdir, sizeof tmpdir, "%s/.prepare-XXXXXX", o->out_dir);
        made_tmp = mkdtemp(tmpdir) != NULL;
        if (!made_tmp) s = lmf_fail(LMF_ERR_IO, "cannot create %s: %s", tmpdir, strerror(errno));
    }
    if (s == LMF_OK) {
        snprintf(path, sizeof path, "%s/train.bin", tmpdir);
        s = lmf_tokens_writer_open(path, p.st.token_bytes, &p.train);
    }
    if (s == LMF_OK && o->val_fraction > 0) {
        snprintf(path, sizeof path, "%s/val.bin", tmpdir);
        s = lmf_tokens_writer_open(path, p.st.token_bytes, &p.val);
    }
    /* pass 2: this thread makes and appends units, the workers encode them */
    started = 0;
    if (s == LMF_OK) s = run_threads(&p, worker, p.threads, th, &started);
    uint64_t doc_index = 0;
    for (int i = 0; i < o->n_inputs && s == LMF_OK; i++) s = input_units(&p, i, 0, &doc_index, n_docs - n_val);
    while (s == LMF_OK && p.appended < p.produced) s = append_oldest(&p);
    pthread_mutex_lock(&p.mu);
    p.stop = 1;
    pthread_cond_broadcast(&p.work);
    pthread_mutex_unlock(&p.mu);
    for (int i = 0; i < started; i++) pthread_join(th[i], NULL);
    for (size_t k = 0; p.ring && k < p.n_slots; k++) free(p.ring[k].ids);
    free(p.ring);
    free(th);
    free(p.file_docs);
    pthread_cond_destroy(&p.work);
    pthread_cond_destroy(&p.done);
    pthread_mutex_destroy(&p.mu);
    while (p.segs_freed < p.n_segs) free_seg(&p.segs[p.segs_freed++]);
    free(p.segs);
    free(p.files);
    if (s == LMF_OK && p.train) {
        s = lmf_tokens_writer_close(p.train);
        p.train = NULL;
    }
    if (s == LMF_OK && p.val) {
        s = lmf_tokens_writer_close(p.val);
        p.val = NULL;
    }
    if (p.train) lmf_tokens_writer_abort(p.train);
    if (p.val) lmf_tokens_writer_abort(p.val);
    if (s == LMF_OK) s = commit_outputs(o->out_dir, tmpdir, o->val_fraction > 0);
    if (made_tmp) lmf_remove_tree(tmpdir);
    if (s != LMF_OK && made_out) rmdir(o->out_dir); /* only when it is empty */
    if (s != LMF_OK) return s;
    p.st.bytes = p.bytes_total;
    p.st.docs = n_docs;
    p.st.val_docs = n_val;
    p.st.seconds = lmf_now_s() - t0;
    if (stats) *stats = p.st;
    return LMF_OK;
}

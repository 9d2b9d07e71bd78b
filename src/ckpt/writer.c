/* Background checkpoint writer: a snapshot copied per rank, shard threads, collective
 * agreement, and the commit (index.json, rename into place, `latest`, pruning) that makes a
 * checkpoint appear atomically. */
#define _GNU_SOURCE
#include "lmforge/ckpt.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "lmforge/formats.h"
#include "lmforge/fsutil.h"
#include "lmforge/system.h"

#define MSG_CAP 1024

struct lmf_ckpt_writer {
    lmf_comm *comm;
    int rank, world, keep;
    lmf_ckpt_faults faults;      /* what a test asked this rank's shard writes to do */
    char ckdir[4200];
    float *buf;
    size_t cap;                  /* floats in buf */
    uint64_t begin, end;         /* this rank's range of the snapshot */

    /* the write in flight */
    int pending;
    int threaded;                /* 1: thread must be joined */
    pthread_t thread;
    atomic_int done;
    int64_t step;
    int zero_stage;
    uint64_t total, id;
    char tmp[4300], fin[4300];
    lmf_gpt_config cfg;          /* rank 0 */
    lmf_ckpt_tensor *tensors;    /* rank 0 */
    int n_tensors;
    char *state_json;            /* rank 0 */
    char run_id[LMF_RUN_ID_LEN + 1]; /* rank 0: the run the snapshot belongs to */
    double t_start;

    /* results of the thread */
    lmf_status st;
    char msg[MSG_CAP];
    uint64_t shard_bytes, shard_xxh3;
    lmf_ckpt_file meta[2];       /* rank 0: config.json, trainer_state.json */
    double t_written;

    int64_t *res;                /* [2 * world]: every rank's shard size and checksum */
    lmf_ckpt_write_stats stats;  /* of the last committed write */
};

/* ---- agreement ---- */

lmf_status lmf_ckpt_agree(lmf_comm *c, lmf_status s) { return lmf_comm_agree(c, s); }

/* ---- directories ---- */

/* remove leftovers of interrupted writes and prunes (.tmp-*, .trash-*) */
static void clean_leftovers(const char *ckdir) {
    DIR *d = opendir(ckdir);
    if (!d) return;
    struct dirent *e;
    char p[4400];
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, ".tmp-", 5) != 0 && strncmp(e->d_name, ".trash-", 7) != 0) continue;
        snprintf(p, sizeof p, "%s/%s", ckdir, e->d_name);
        lmf_remove_tree(p);
    }
    closedir(d);
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* step of a directory name "step_N" (digits only after the prefix), or -1 */
static int64_t step_of(const char *name) {
    if (strncmp(name, "step_", 5) != 0 || !name[5]) return -1;
    int64_t v = 0;
    for (const char *p = name + 5; *p; p++) {
        if (*p < '0' || *p > '9' || v > 100000000000LL) return -1;
        v = v * 10 + (*p - '0');
    }
    return v;
}

/* the run that wrote checkpoint directory dir (its trainer_state.json), into id[LMF_RUN_ID_LEN
 * + 1]; "" when it cannot be read or names none */
static void run_of(const char *dir, char *id) {
    char path[4400], *text = NULL;
    size_t len = 0;
    lmf_train_state st;
    id[0] = '\0';
    snprintf(path, sizeof path, "%s/trainer_state.json", dir);
    if (lmf_read_file(path, &text, &len, LMF_CKPT_INDEX_MAX_BYTES) != LMF_OK) return;
    if (lmf_ckpt_state_parse(text, len, path, &st, NULL) == LMF_OK)
        memcpy(id, st.run_id, sizeof st.run_id);
    free(text);
}

/* keep the newest `keep` step_N directories of run `run_id` (checkpoints without an id count
 * as the run "" ): older ones are renamed away, then removed; another run's checkpoints are
 * never touched, nor the one just made */
static void prune(const char *ckdir, int keep, const char *run_id, int64_t current) {
    if (keep <= 0) return;
    DIR *d = opendir(ckdir);
    if (!d) return;
    size_t n = 0, cap = 64;
    int64_t *steps = malloc(cap * sizeof *steps);
    struct dirent *e;
    while (steps && (e = readdir(d)) != NULL) {
        int64_t s = step_of(e->d_name);
        if (s < 0 || s == current) continue;
        char dir[4400], id[LMF_RUN_ID_LEN + 1];
        snprintf(dir, sizeof dir, "%s/%s", ckdir, e->d_name);
        run_of(dir, id);
        if (strcmp(id, run_id) != 0) continue;
        if (n == cap) {
            int64_t *more = realloc(steps, 2 * cap * sizeof *steps);
            if (!more) break;
            steps = more;
            cap *= 2;
        }
        steps[n++] = s;
    }
    closedir(d);
    if (!steps) return;
    qsort(steps, n, sizeof *steps, cmp_i64);
    for (size_t i = 0; i + (size_t)keep - 1 < n; i++) { /* the current one is the keep-th */
        char p[4400], q[4400];
        snprintf(p, sizeof p, "%s/step_%08lld", ckdir, (long long)steps[i]);
        snprintf(q, sizeof q, "%s/.trash-step_%08lld", ckdir, (long long)steps[i]);
        if (rename(p, q) == 0) lmf_remove_tree(q);
    }
    free(steps);
}

/* ---- the writer ---- */

lmf_status lmf_ckpt_writer_create(lmf_comm *comm, const char *run_dir, int keep,
                                  const lmf_ckpt_faults *test_faults, lmf_ckpt_writer **out) {
    *out = NULL;
    lmf_ckpt_writer *w = calloc(1, sizeof *w);
    if (!w) return lmf_fail(LMF_ERR_NOMEM, "cannot allocate the checkpoint writer");
    w->comm = comm;
    w->rank = lmf_comm_rank(comm);
    w->world = lmf_comm_size(comm);
    w->keep = keep;
    if (test_faults) w->faults = *test_faults;
    snprintf(w->ckdir, sizeof w->ckdir, "%s/checkpoints", run_dir);
    atomic_init(&w->done, 0);
    w->res = calloc(2 * (size_t)w->world, sizeof *w->res);
    if (!w->res) {
        free(w);
        return lmf_fail(LMF_ERR_NOMEM, "cannot allocate the checkpoint writer");
    }
    *out = w;
    return LMF_OK;
}

static void clear_job(lmf_ckpt_writer *w) {
    free(w->tensors);
    free(w->state_json);
    w->tensors = NULL;
    w->state_json = NULL;
    w->n_tensors = 0;
    w->pending = 0;
    w->threaded = 0;
}

void lmf_ckpt_writer_free(lmf_ckpt_writer *w) {
    if (!w) return;
    if (w->pending && w->threaded) pthread_join(w->thread, NULL);
    clear_job(w);
    free(w->buf);
    free(w->res);
    free(w);
}

/* The snapshot buffer for this rank's part of a vector of `total` floats: 3 * len floats
 * (params, m, v), grown as needed; NULL with a message when it cannot be allocated. */
static float *snapshot_buffer(lmf_ckpt_writer *w, uint64_t total, uint64_t *begin, uint64_t *end) {
    LMF_ASSERT(!w->pending);
    lmf_range r = lmf_partition_range((size_t)total, w->world, w->rank);
    size_t need = 3 * lmf_range_len(r);
    if (need > w->cap || !w->buf) {
        float *b = realloc(w->buf, (need ? need : 1) * sizeof(float));
        if (!b) {
            lmf_fail(LMF_ERR_NOMEM, "cannot allocate %.1f MB for the checkpoint snapshot",
                     (double)need * 4 / 1e6);
            return NULL;
        }
        w->buf = b;
        w->cap = need;
    }
    w->begin = *begin = r.begin;
    w->end = *end = r.end;
    return w->buf;
}

int lmf_ckpt_pending(const lmf_ckpt_writer *w) { return w->pending; }

static lmf_status write_meta(lmf_ckpt_writer *w) {
    char path[4400];
    lmf_ckpt_file *c = &w->meta[0], *t = &w->meta[1];
    snprintf(path, sizeof path, "%s/config.json", w->tmp);
    LMF_TRY(lmf_config_write(path, &w->cfg, -1));
    char *buf = NULL;
    size_t len = 0;
    LMF_TRY(lmf_read_file(path, &buf, &len, LMF_CKPT_INDEX_MAX_BYTES));
    snprintf(c->name, sizeof c->name, "config.json");
    c->kind = LMF_CKPT_META;
    c->rank = -1;
    c->bytes = len;
    c->xxh3 = XXH3_64bits(buf, len);
    free(buf);
    snprintf(path, sizeof path, "%s/trainer_state.json", w->tmp);
    snprintf(t->name, sizeof t->name, "trainer_state.json");
    t->kind = LMF_CKPT_META;
    t->rank = -1;
    t->bytes = strlen(w->state_json);
    return lmf_ckpt_small_write(path, w->state_json, t->bytes, &t->xxh3);
}

static void shard_name(char *buf, size_t cap, int rank, int world) {
    snprintf(buf, cap, "shard-%05d-of-%05d.safetensors", rank, world);
}

/* the I/O of one rank: its shard, rank 0 also the meta files; no collectives */
static void *job(void *arg) {
    lmf_ckpt_writer *w = arg;
    char name[64], path[4400];
    shard_name(name, sizeof name, w->rank, w->world);
    snprintf(path, sizeof path, "%s/%s", w->tmp, name);
    lmf_ckpt_shard_meta m = {w->id, w->rank, w->world, w->step, w->begin, w->end};
    lmf_status s = lmf_ckpt_shard_write(path, &m, w->buf, &w->faults, &w->shard_bytes, &w->shard_xxh3);
    if (s == LMF_OK && w->rank == 0) s = write_meta(w);
    if (s == LMF_OK) s = lmf_fsync_parent_dir(path); /* this rank's directory entries */
    w->st = s;
    snprintf(w->msg, sizeof w->msg, "%s", s == LMF_OK ? "" : lmf_last_error());
    w->t_written = lmf_now_s();
    atomic_store(&w->done, 1);
    return NULL;
}

static uint64_t new_id(int64_t step) {
    uint64_t v = 0;
    if (getrandom(&v, sizeof v, GRND_NONBLOCK) != (ssize_t)sizeof v) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        uint64_t x[4] = {(uint64_t)ts.tv_sec, (uint64_t)ts.tv_nsec, (uint64_t)getpid(),
                         (uint64_t)step};
        v = XXH3_64bits(x, sizeof x);
    }
    return v;
}

/* rank 0: a fresh temporary directory, and a copy of what the meta files and index need */
static lmf_status prepare(lmf_ckpt_writer *w, const lmf_ckpt_snapshot *snap) {
    LMF_TRY(lmf_mkdir_p(w->ckdir));
    clean_leftovers(w->ckdir);
    if (mkdir(w->tmp, 0777) != 0)
        return lmf_fail(LMF_ERR_IO, "cannot create %s: %s", w->tmp, strerror(errno));
    LMF_ASSERT(snap->cfg && snap->layout);
    w->cfg = *snap->cfg;
    memcpy(w->run_id, snap->state.run_id, sizeof w->run_id);
    w->state_json = lmf_ckpt_state_format(&snap->state, snap->opts_json);
    if (!w->state_json) return LMF_ERR_NOMEM;
    w->tensors = calloc((size_t)snap->layout->n_tensors, sizeof *w->tensors);
    if (!w->tensors) return lmf_fail(LMF_ERR_NOMEM, "cannot allocate the checkpoint description");
    w->n_tensors = snap->layout->n_tensors;
    for (int i = 0; i < w->n_tensors; i++) {
        const lmf_tensor_info *ti = &snap->layout->tensors[i];
        lmf_ckpt_tensor *t = &w->tensors[i];
        snprintf(t->name, sizeof t->name, "%s", ti->name);
        t->ndim = ti->ndim;
        t->shape[0] = ti->shape[0];
        t->shape[1] = ti->ndim > 1 ? ti->shape[1] : 1;
        t->offset = ti->offset;
        t->numel = ti->numel;
    }
    return LMF_OK;
}

/* Start writing the snapshot copied into w->buf in the background; `local` is this rank's
 * status so far (every rank calls even after a local failure, so that all agree). */
static lmf_status start(lmf_ckpt_writer *w, lmf_status local, const lmf_ckpt_snapshot *snap) {
    LMF_ASSERT(!w->pending);
    lmf_status s = local;
    int64_t step = snap->state.step;
    w->step = step;
    w->zero_stage = snap->state.zero_stage;
    w->total = snap->layout->total;
    w->t_start = lmf_now_s();
    snprintf(w->tmp, sizeof w->tmp, "%s/.tmp-step_%08lld", w->ckdir, (long long)step);
    snprintf(w->fin, sizeof w->fin, "%s/step_%08lld", w->ckdir, (long long)step);
    if (s == LMF_OK && w->rank == 0) s = prepare(w, snap);
    s = lmf_ckpt_agree(w->comm, s); /* also: nobody writes before the directory exists */
    if (s == LMF_OK && w->world > 1) {
        uint64_t id = w->rank == 0 ? new_id(step) : 0;
        s = lmf_comm_broadcast(w->comm, &id, sizeof id, 0);
        w->id = id;
    } else if (s == LMF_OK) {
        w->id = new_id(step);
    }
    if (s != LMF_OK) {
        if (w->rank == 0) lmf_remove_tree(w->tmp);
        clear_job(w);
        return lmf_fail_context(s, "checkpoint step %lld: ", (long long)step);
    }
    atomic_store(&w->done, 0);
    w->pending = 1;
    w->threaded = pthread_create(&w->thread, NULL, job, w) == 0;
    if (!w->threaded) job(w); /* no thread to be had: write now */
    return LMF_OK;
}

lmf_status lmf_ckpt_save(lmf_ckpt_writer *w, const lmf_ckpt_snapshot *snap) {
    LMF_TRY(lmf_ckpt_wait(w)); /* the previous write, before its buffer is reused */
    uint64_t total = snap->layout->total, b = 0, e = 0;
    lmf_status s = LMF_OK;
    float *buf = snapshot_buffer(w, total, &b, &e);
    if (!buf) s = LMF_ERR_NOMEM;
    if (s == LMF_OK && e > b) {
        /* every rank writes its part straight from the range it holds: no gather, even for
         * ZeRO-3's sharded weights */
        LMF_ASSERT(snap->held.begin <= b && e <= snap->held.end);
        size_t n = e - b, off = b - snap->held.begin;
        memcpy(buf, snap->params + off, n * sizeof(float));
        memcpy(buf + n, snap->m + off, n * sizeof(float));
        memcpy(buf + 2 * n, snap->v + off, n * sizeof(float));
    }
    return start(w, s, snap);
}

/* rank 0: index.json, rename into place, `latest`, prune */
static lmf_status commit(lmf_ckpt_writer *w, const int64_t *res) {
    lmf_ckpt_index ix;
    memset(&ix, 0, sizeof ix);
    ix.id = w->id;
    ix.step = w->step;
    ix.world_size = w->world;
    ix.zero_stage = w->zero_stage;
    ix.total = w->total;
    ix.n_tensors = w->n_tensors;
    ix.tensors = w->tensors;
    ix.n_files = w->world + 2;
    ix.files = calloc((size_t)ix.n_files, sizeof *ix.files);
    if (!ix.files) return lmf_fail(LMF_ERR_NOMEM, "cannot allocate the checkpoint index");
    for (int r = 0; r < w->world; r++) {
        lmf_ckpt_file *f = &ix.files[r];
        lmf_range rr = lmf_partition_range((size_t)w->total, w->world, r);
        shard_name(f->name, sizeof f->name, r, w->world);
        f->kind = LMF_CKPT_SHARD;
        f->rank = r;
        f->begin = rr.begin;
        f->end = rr.end;
        f->bytes = (uint64_t)res[2 * r];
        f->xxh3 = (uint64_t)res[2 * r + 1];
    }
    ix.files[w->world] = w->meta[0];
    ix.files[w->world + 1] = w->meta[1];
    char *text = NULL, path[4400];
    lmf_status s = lmf_ckpt_index_format(&ix, &text);
    free(ix.files);
    LMF_TRY(s);
    snprintf(path, sizeof path, "%s/index.json", w->tmp);
    s = lmf_write_file_atomic(path, text, strlen(text)); /* also syncs the directory */
    free(text);
    LMF_TRY(s);
    struct stat st;
    char trash[4400];
    snprintf(trash, sizeof trash, "%s/.trash-step_%08lld", w->ckdir, (long long)w->step);
    if (stat(w->fin, &st) == 0) { /* a checkpoint of this step: this run's, after a rollback */
        char owner[LMF_RUN_ID_LEN + 1];
        run_of(w->fin, owner);
        if (strcmp(owner, w->run_id) != 0)
            return lmf_fail(LMF_ERR_IO, "%s belongs to another run (%s); it is left as it is: "
                            "train into another --out", w->fin, owner[0] ? owner : "no run id");
        if (rename(w->fin, trash) != 0)
            return lmf_fail(LMF_ERR_IO, "cannot move the old %s aside: %s", w->fin,
                            strerror(errno));
    }
    if (rename(w->tmp, w->fin) != 0)
        return lmf_fail(LMF_ERR_IO, "cannot rename %s to %s: %s", w->tmp, w->fin,
                        strerror(errno));
    LMF_TRY(lmf_fsync_parent_dir(w->fin));
    char name[64];
    int len = snprintf(name, sizeof name, "step_%08lld\n", (long long)w->step);
    snprintf(path, sizeof path, "%s/latest", w->ckdir);
    LMF_TRY(lmf_write_file_atomic(path, name, (size_t)len));
    lmf_remove_tree(trash);
    prune(w->ckdir, w->keep, w->run_id, w->step);
    return LMF_OK;
}

lmf_status lmf_ckpt_wait(lmf_ckpt_writer *w) {
    if (!w->pending) return LMF_OK;
    if (w->threaded) pthread_join(w->thread, NULL);
    w->threaded = 0;
    lmf_status s = w->st;
    if (s != LMF_OK) lmf_fail(s, "%s", w->msg);
    int64_t *res = w->res;
    memset(res, 0, 2 * (size_t)w->world * sizeof *res);
    res[2 * w->rank] = (int64_t)w->shard_bytes;
    res[2 * w->rank + 1] = (int64_t)w->shard_xxh3;
    if (w->world > 1 && lmf_comm_allreduce_i64(w->comm, res, 2 * (size_t)w->world,
                                               LMF_COMM_SUM) != LMF_OK && s == LMF_OK)
        s = lmf_fail(LMF_ERR_COMM, "cannot collect the shard checksums");
    s = lmf_ckpt_agree(w->comm, s);
    if (s == LMF_OK && w->rank == 0) s = commit(w, res);
    if (w->rank == 0 && lmf_file_exists(w->tmp)) lmf_remove_tree(w->tmp); /* a failed write */
    s = lmf_ckpt_agree(w->comm, s);
    if (s == LMF_OK) {
        w->stats.bytes = w->shard_bytes + (w->rank == 0 ? w->meta[0].bytes + w->meta[1].bytes : 0);
        w->stats.write_s = w->t_written - w->t_start;
        w->stats.total_s = lmf_now_s() - w->t_start;
    }
    int64_t step = w->step;
    clear_job(w);
    if (s != LMF_OK)
        return lmf_fail_context(s, "checkpoint step %lld not written (the previous one is "
                                "intact): ", (long long)step);
    return LMF_OK;
}

lmf_status lmf_ckpt_poll(lmf_ckpt_writer *w) {
    if (!w->pending) return LMF_OK;
    int64_t done = atomic_load(&w->done);
    if (w->world > 1 && lmf_comm_allreduce_i64(w->comm, &done, 1, LMF_COMM_MIN) != LMF_OK)
        return lmf_fail(LMF_ERR_COMM, "cannot poll the checkpoint writers");
    return done ? lmf_ckpt_wait(w) : LMF_OK;
}

void lmf_ckpt_writer_stats(const lmf_ckpt_writer *w, lmf_ckpt_write_stats *st) {
    *st = w->stats;
}

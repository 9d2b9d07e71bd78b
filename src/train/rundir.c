/* Run directories: the lock that keeps a second training out, the run's identity in run.json,
 * refusing or moving aside another run, and removing what a failed start made. */
#include "lmforge/rundir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lmforge/fsutil.h"
#include "lmforge/train.h"

#define RUN_FORMAT "lmforge.run"

struct lmf_run_dir {
    char path[4096];
    int lock_fd;
    int created;                       /* this open made the directory */
    char id[LMF_RUN_ID_LEN + 1];
    char moved_to[4200];
};

static void join(char *buf, size_t cap, const char *dir, const char *name) {
    snprintf(buf, cap, "%s/%s", dir, name);
}

/* 1 when dir has an entry besides . and .. */
static int dir_nonempty(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    struct dirent *e;
    int any = 0;
    while (!any && (e = readdir(d)) != NULL)
        any = strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return any;
}

/* the first thing in dir that belongs to a run (run.json counted when with_id), or NULL */
static const char *run_evidence(const char *dir, int with_id) {
    static const char *const files[] = {"run.json", "metrics.jsonl", "model.safetensors"};
    char p[4300];
    for (int i = with_id ? 0 : 1; i < 3; i++) {
        join(p, sizeof p, dir, files[i]);
        if (lmf_file_exists(p)) return files[i];
    }
    join(p, sizeof p, dir, "checkpoints");
    return dir_nonempty(p) ? "checkpoints/" : NULL;
}

/* the id in dir/run.json into id (""; when missing or unreadable) */
static void read_id(const char *dir, char *id) {
    char p[4300];
    join(p, sizeof p, dir, "run.json");
    id[0] = '\0';
    json_t *j = json_load_file(p, 0, NULL);
    const char *v = json_string_value(json_object_get(j, "run_id"));
    if (lmf_run_id_valid(v)) snprintf(id, LMF_RUN_ID_LEN + 1, "%s", v);
    json_decref(j);
}

static lmf_status write_id(const char *dir, const char *id) {
    char p[4300], text[256];
    join(p, sizeof p, dir, "run.json");
    int n = snprintf(text, sizeof text, "{\"format\": \"%s\", \"version\": 1, \"run_id\": \"%s\"}\n",
                     RUN_FORMAT, id);
    return lmf_write_file_atomic(p, text, (size_t)n);
}

/* lock dir/.lock without waiting; the holder's pid goes into it */
static lmf_status lock_dir(const char *dir, int *fd_out) {
    char p[4300];
    join(p, sizeof p, dir, ".lock");
    int fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) return lmf_fail(LMF_ERR_IO, "cannot open %s: %s", p, strerror(errno));
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;
        char pid[32] = "";
        ssize_t n = pread(fd, pid, sizeof pid - 1, 0);
        close(fd);
        if (e != EWOULDBLOCK)
            return lmf_fail(LMF_ERR_IO, "cannot lock %s: %s", p, strerror(e));
        pid[n > 0 ? n : 0] = '\0';
        pid[strcspn(pid, "\n")] = '\0';
        return lmf_fail(LMF_ERR_ARG, "%s is in use by another training (pid %s); wait for it to "
                        "end or train into another --out", dir, pid[0] ? pid : "unknown");
    }
    char pid[32];
    int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, pid, (size_t)n, 0) != n) {
        lmf_status s = lmf_fail(LMF_ERR_IO, "cannot write %s: %s", p, lmf_io_reason(errno));
        close(fd);
        return s;
    }
    *fd_out = fd;
    return LMF_OK;
}

/* rename the run in d->path to PATH.RUN_ID and lock a fresh directory in its place */
static lmf_status move_aside(lmf_run_dir *d) {
    char old[LMF_RUN_ID_LEN + 1];
    read_id(d->path, old);
    if (!old[0]) lmf_run_id_new(old); /* a run from before identities */
    size_t n = strlen(d->path);
    while (n > 1 && d->path[n - 1] == '/') n--;
    snprintf(d->moved_to, sizeof d->moved_to, "%.*s.%s", (int)n, d->path, old);
    if (lmf_file_exists(d->moved_to))
        return lmf_fail(LMF_ERR_ARG, "cannot move the run in %s aside: %s exists; move or "
                        "remove it", d->path, d->moved_to);
    if (rename(d->path, d->moved_to) != 0)
        return lmf_fail(LMF_ERR_IO, "cannot move %s to %s: %s", d->path, d->moved_to,
                        strerror(errno));
    int old_fd = d->lock_fd;
    d->lock_fd = -1;
    lmf_status s = lmf_mkdir_p(d->path);
    if (s == LMF_OK) s = lock_dir(d->path, &d->lock_fd);
    close(old_fd);
    return s;
}

static lmf_status open_dir(lmf_run_dir *d, lmf_run_dir_mode mode) {
    struct stat st;
    int existed = stat(d->path, &st) == 0;
    if (mode == LMF_RUN_DIR_RESUME && !existed)
        return lmf_fail(LMF_ERR_ARG, "%s does not exist: nothing to resume", d->path);
    LMF_TRY(lmf_mkdir_p(d->path));
    d->created = !existed;
    LMF_TRY(lock_dir(d->path, &d->lock_fd));
    if (mode == LMF_RUN_DIR_RESUME) {
        read_id(d->path, d->id);
        return LMF_OK;
    }
    const char *ev = run_evidence(d->path, 1);
    if (ev && mode == LMF_RUN_DIR_NEW) {
        char id[LMF_RUN_ID_LEN + 1];
        read_id(d->path, id);
        return lmf_fail(LMF_ERR_ARG, "%s holds another run (%s%s%s): continue it with --resume "
                        "%s, train into another --out, or add --move-aside to move it to %s.%s",
                        d->path, ev, id[0] ? ", run " : "", id, d->path, d->path,
                        id[0] ? id : "RUN_ID");
    }
    if (ev) LMF_TRY(move_aside(d));
    lmf_run_id_new(d->id);
    return write_id(d->path, d->id);
}

lmf_status lmf_run_dir_open(const char *path, lmf_run_dir_mode mode, lmf_run_dir **out) {
    *out = NULL;
    lmf_run_dir *d = calloc(1, sizeof *d);
    if (!d) return lmf_fail(LMF_ERR_NOMEM, "cannot allocate the run directory");
    d->lock_fd = -1;
    int n = snprintf(d->path, sizeof d->path, "%s", path);
    lmf_status s = n > 0 && (size_t)n < sizeof d->path
                       ? open_dir(d, mode)
                       : lmf_fail(LMF_ERR_ARG, "run directory name is empty or too long");
    if (s != LMF_OK) {
        d->id[0] = '\0'; /* nothing of ours to keep */
        lmf_run_dir_close(d, 1);
        return s;
    }
    *out = d;
    return LMF_OK;
}

const char *lmf_run_dir_id(const lmf_run_dir *d) { return d->id; }
const char *lmf_run_dir_moved_to(const lmf_run_dir *d) { return d->moved_to; }

lmf_status lmf_run_dir_adopt(lmf_run_dir *d, const char *run_id) {
    if (d->id[0] || !lmf_run_id_valid(run_id)) return LMF_OK;
    snprintf(d->id, sizeof d->id, "%s", run_id);
    return write_id(d->path, d->id);
}

void lmf_run_dir_close(lmf_run_dir *d, int failed) {
    if (!d) return;
    char p[4300];
    if (failed && d->lock_fd >= 0 && !run_evidence(d->path, 0)) {
        if (d->id[0]) { /* the identity of a run that never started */
            join(p, sizeof p, d->path, "run.json");
            unlink(p);
        }
        join(p, sizeof p, d->path, ".lock"); /* before the lock is released */
        unlink(p);
        if (d->created) rmdir(d->path); /* only when nothing else is in it */
    }
    if (d->lock_fd >= 0) close(d->lock_fd);
    free(d);
}

/* the model's shape under GPT2Config's names, the Llama family's fields when it is one */
static json_t *shape_json(const lmf_gpt_config *c) {
    json_t *m = json_pack("{s:s, s:i, s:i, s:i, s:i, s:i}", "family", lmf_family_name(c->family),
                          "n_layer", c->n_layer, "n_head", c->n_head, "n_embd", c->n_embd,
                          "n_positions", c->n_positions, "vocab_size", c->vocab_size);
    if (m && c->family == LMF_FAMILY_LLAMA) {
        json_object_set_new(m, "n_kv_head", json_integer(c->n_kv_head));
        json_object_set_new(m, "ffn_hidden", json_integer(c->ffn_hidden));
        json_object_set_new(m, "tie_embeddings", json_boolean(c->tie_embeddings));
    }
    return m;
}

lmf_status lmf_run_dir_record_start(const char *run_dir, struct lmf_trainer *t) {
    const lmf_train_opts *o = lmf_trainer_opts(t);
    char p[4300];
    join(p, sizeof p, run_dir, "run.json");
    json_t *j = json_load_file(p, 0, NULL);
    if (!json_is_object(j)) {
        json_decref(j);
        j = json_pack("{s:s, s:i}", "format", RUN_FORMAT, "version", 1);
    }
    char *opts = lmf_train_opts_to_json(o);
    json_t *train = opts ? json_loads(opts, 0, NULL) : NULL;
    free(opts);
    lmf_rank_layout rl;
    lmf_trainer_ranks(t, &rl);
    json_t *layout = json_pack("{s:i, s:i, s:i, s:i, s:i, s:i, s:I}", "world_size",
                               lmf_trainer_world(t), "tp_size", rl.tp, "zero_stage",
                               o->zero_stage, "batch", o->batch, "seq", o->seq, "grad_accum",
                               lmf_trainer_grad_accum(t), "tokens_per_step",
                               (json_int_t)o->global_batch);
    int bad = !j || !train || !layout;
    if (!bad) {
        bad |= json_object_set_new(j, "run_id", json_string(lmf_trainer_run_id(t)));
        bad |= json_object_set_new(j, "total_steps", json_integer(o->steps));
        bad |= json_object_set_new(j, "started", json_integer((json_int_t)time(NULL)));
        bad |= json_object_set_new(j, "model", shape_json(&o->cfg));
        bad |= json_object_set_new(j, "train", train);
        bad |= json_object_set_new(j, "layout", layout);
    } else {
        json_decref(train);
        json_decref(layout);
    }
    char *text = bad ? NULL : json_dumps(j, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
    json_decref(j);
    if (!text) return lmf_fail(LMF_ERR_NOMEM, "cannot format %s", p);
    size_t n = strlen(text);
    text[n] = '\n'; /* json_dumps leaves room for the NUL it wrote: replace it, write n + 1 */
    lmf_status s = lmf_write_file_atomic(p, text, n + 1);
    free(text);
    return s;
}

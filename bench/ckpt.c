/* Checkpoint benchmark: write throughput of lmforge's checkpoint writer against the disk's
 * sequential write speed measured in the same run (write + fdatasync of a file of the same
 * size, as `dd conv=fdatasync` does), and the time the training loop is blocked (the copy of
 * the state into the snapshot buffer plus starting the writer) against the whole write.
 *   bench_ckpt [PRESET] [DIR] [REPEATS]   defaults: small, ./bench-ckpt.tmp, 3
 *   bench_ckpt train [PRESET] [DIR]       a real training loop checkpointing every 3rd step:
 *                                         how long lmf_trainer_save blocks it, against a step
 * One rank (the single communicator); each rank of a job writes its own shard the same way. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lmforge/comm.h"
#include "lmforge/config.h"
#include "lmforge/fsutil.h"
#include "lmforge/data.h"
#include "lmforge/model.h"
#include "lmforge/train.h"
#include "lmforge/perf.h"
#include "lmforge/ckpt.h"
#include "lmforge/system.h"
#include "bench_util.h"

#define MAXREP 16

static int die(const char *what) {
    fprintf(stderr, "bench_ckpt: %s: %s\n", what, lmf_last_error());
    return 1;
}

/* seconds to write `bytes` bytes of buf to path in 8 MB writes and fdatasync (dd's way) */
static double disk_write(const char *path, const char *buf, size_t bytes) {
    unlink(path);
    double t0 = lmf_now_s();
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) return -1;
    const size_t chunk = (size_t)8 << 20;
    for (size_t off = 0; off < bytes;) {
        size_t c = bytes - off < chunk ? bytes - off : chunk;
        ssize_t w = write(fd, buf + off % ((size_t)64 << 20), c);
        if (w <= 0) {
            close(fd);
            return -1;
        }
        off += (size_t)w;
    }
    if (fdatasync(fd) != 0) {
        close(fd);
        return -1;
    }
    close(fd);
    double t = lmf_now_s() - t0;
    unlink(path);
    return t;
}

static void remove_run(const char *dir) {
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s/checkpoints'", dir);
    if (system(cmd) != 0) fprintf(stderr, "bench_ckpt: could not clean %s\n", dir);
}

/* Train 15 steps of PRESET on random tokens, checkpointing after every 3rd; print the step time,
 * the time each lmf_trainer_save call took (the loop is blocked that long) and the write. */
static int bench_train(const char *preset, const char *dir) {
    lmf_gpt_config cfg;
    if (lmf_config_preset(preset, &cfg) != LMF_OK) return die("preset");
    if (lmf_mkdir_p(dir) != LMF_OK) return die(dir);
    char data[4200], run[4200];
    snprintf(data, sizeof data, "%s/bench_train.bin", dir);
    snprintf(run, sizeof run, "%s/run", dir);
    uint64_t nt = 1 << 18;
    uint32_t *tok = malloc(nt * sizeof *tok);
    if (!tok) return die("allocation");
    for (uint64_t i = 0; i < nt; i++) tok[i] = (uint32_t)((i * 2654435761u) % (uint32_t)cfg.vocab_size);
    lmf_status s = lmf_tokens_write(data, tok, nt, cfg.vocab_size <= 65536 ? 2 : 4);
    free(tok);
    if (s != LMF_OK) return die("data");
    lmf_train_opts o;
    lmf_train_opts_default(&o);
    o.cfg = cfg;
    o.data = data;
    o.out_dir = run;
    o.steps = 15;
    o.batch = 2;
    o.seq = 64;
    o.eval_every = 0;
    o.keep_checkpoints = 2;
    lmf_trainer *t = NULL;
    if (lmf_trainer_create(&o, &t) != LMF_OK) return die("trainer");
    double step_s[15], save_s[5];
    int ns = 0, nv = 0;
    for (int i = 0; i < 15; i++) {
        lmf_step_stats st;
        double t0 = lmf_now_s();
        if (lmf_trainer_step(t, &st) != LMF_OK) return die("step");
        double t1 = lmf_now_s();
        step_s[ns++] = t1 - t0;
        if ((i + 1) % 3 == 0) {
            if (lmf_trainer_save(t) != LMF_OK) return die("save");
            save_s[nv++] = lmf_now_s() - t1;
        }
    }
    if (lmf_trainer_wait_save(t) != LMF_OK) return die("final save");
    lmf_ckpt_write_stats ws;
    lmf_trainer_ckpt_stats(t, &ws);
    size_t n = lmf_gpt_layout(lmf_trainer_model(t))->total;
    /* the copy alone: 3 x n floats */
    float *a = malloc(3 * n * sizeof(float)), *b = malloc(3 * n * sizeof(float));
    if (!a || !b) return die("allocation");
    memset(a, 1, 3 * n * sizeof(float));
    memset(b, 0, 3 * n * sizeof(float));
    double cp[3];
    for (int k = 0; k < 3; k++) {
        double c0 = lmf_now_s();
        memcpy(b, a, 3 * n * sizeof(float));
        cp[k] = lmf_now_s() - c0;
        a[k] += b[n]; /* keeps the copy */
    }
    double copy = lmf_bench_median(cp, 3);
    /* steps right after a save run beside the background write */
    double beside[5], alone[15];
    int nb = 0, na = 0;
    for (int i = 1; i < ns; i++) {
        if (i % 3 == 0) beside[nb++] = step_s[i];
        else alone[na++] = step_s[i];
    }
    printf("training %s (%.1fM parameters, batch 2 x 64), a checkpoint of %.1f MB every 3rd step:\n",
           preset, (double)n / 1e6, (double)ws.bytes / 1e6);
    printf("  step (median)                   %.3f s; beside a background write %.3f s\n",
           lmf_bench_median(alone, na), lmf_bench_median(beside, nb));
    printf("  lmf_trainer_save blocks (median) %.3f s; a plain memcpy of the state takes %.3f s\n",
           lmf_bench_median(save_s, nv), copy);
    printf("  the write itself (last one)     %.3f s in the background, %.3f s to complete\n",
           ws.write_s, ws.total_s);
    free(a);
    free(b);
    lmf_trainer_free(t);
    char cmd[4400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s'", run, data);
    return system(cmd) == 0 ? 0 : 1;
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "train") == 0)
        return bench_train(argc > 2 ? argv[2] : "small", argc > 3 ? argv[3] : "bench-ckpt.tmp");
    const char *preset = argc > 1 ? argv[1] : "small";
    const char *dir = argc > 2 ? argv[2] : "bench-ckpt.tmp";
    int reps = argc > 3 ? atoi(argv[3]) : 3;
    if (reps < 1 || reps > MAXREP) reps = 3;
    lmf_gpt_config cfg;
    if (lmf_config_preset(preset, &cfg) != LMF_OK) return die("preset");
    lmf_param_layout l;
    if (lmf_layout_build(&cfg, &l) != LMF_OK) return die("layout");
    size_t n = l.total;
    /* the "training state" the loop would hold: weights, m, v */
    float *p = malloc(n * sizeof(float)), *m = malloc(n * sizeof(float)),
          *v = malloc(n * sizeof(float));
    char *junk = malloc((size_t)64 << 20);
    if (!p || !m || !v || !junk) return die("allocation");
    for (size_t i = 0; i < n; i++) {
        p[i] = (float)(i % 1000) * 1e-3f;
        m[i] = (float)(i % 77) * 1e-5f;
        v[i] = (float)(i % 91) * 1e-7f;
    }
    for (size_t i = 0; i < ((size_t)64 << 20); i++) junk[i] = (char)(i * 131);
    if (lmf_mkdir_p(dir) != LMF_OK) return die(dir);
    lmf_comm *c = NULL;
    if (lmf_comm_create("single", &c) != LMF_OK) return die("communicator");
    lmf_ckpt_writer *w = NULL;
    if (lmf_ckpt_writer_create(c, dir, 1, NULL, &w) != LMF_OK) return die("writer");
    char ddpath[4200];
    snprintf(ddpath, sizeof ddpath, "%s/dd-test.bin", dir);

    /* a plain copy of the state, for comparison with what lmf_ckpt_save blocks */
    float *snap_copy = malloc(3 * n * sizeof(float));
    if (!snap_copy) return die("allocation");
    double td[MAXREP], tc[MAXREP], tcopy[MAXREP], tstart[MAXREP], tw[MAXREP];
    uint64_t bytes = 0;
    for (int r = 0; r <= reps; r++) { /* round 0 warms up and is not counted */
        remove_run(dir);
        double c0 = lmf_now_s();
        memcpy(snap_copy, p, n * sizeof(float));
        memcpy(snap_copy + n, m, n * sizeof(float));
        memcpy(snap_copy + 2 * n, v, n * sizeof(float));
        double t0 = lmf_now_s();
        /* the step loop's part: lmf_ckpt_save copies the state and starts the writer */
        lmf_ckpt_snapshot snap;
        memset(&snap, 0, sizeof snap);
        snap.state.step = r + 1;
        snap.state.world_size = snap.state.batch = snap.state.grad_accum = snap.state.seq = 1;
        snap.state.tokens_per_step = 1;
        snap.opts_json = "{\"bench\": true}";
        snap.cfg = &cfg;
        snap.layout = &l;
        snap.held = (lmf_range){0, n};
        snap.params = p;
        snap.m = m;
        snap.v = v;
        if (lmf_ckpt_save(w, &snap) != LMF_OK) return die("save");
        double t2 = lmf_now_s();
        if (lmf_ckpt_wait(w) != LMF_OK) return die("write");
        double t3 = lmf_now_s();
        lmf_ckpt_write_stats st;
        lmf_ckpt_writer_stats(w, &st);
        bytes = st.bytes;
        double dd = disk_write(ddpath, junk, (size_t)bytes);
        if (dd < 0) {
            fprintf(stderr, "bench_ckpt: cannot write %s: %s\n", ddpath, strerror(errno));
            return 1;
        }
        if (r == 0) continue;
        tcopy[r - 1] = t0 - c0;  /* a plain copy of the state */
        tstart[r - 1] = t2 - t0; /* lmf_ckpt_save: the loop is blocked this long */
        tc[r - 1] = t3 - t0;     /* save to committed (index, rename, latest) */
        tw[r - 1] = st.write_s;
        td[r - 1] = dd;
    }
    remove_run(dir);
    double copy = lmf_bench_median(tcopy, reps), start = lmf_bench_median(tstart, reps), total = lmf_bench_median(tc, reps);
    double wr = lmf_bench_median(tw, reps), dd = lmf_bench_median(td, reps), best = td[0];
    for (int r = 1; r < reps; r++) best = td[r] < best ? td[r] : best;
    double mb = (double)bytes / 1e6;
    printf("checkpoint of preset %s: %.1fM parameters, %.1f MB (weights + AdamW m, v + meta), "
           "in %s; median of %d\n", preset, (double)n / 1e6, mb, dir, reps);
    printf("disk sequential write (write + fdatasync, as dd conv=fdatasync): %8.0f MB/s (%.3f s), "
           "best %.0f MB/s\n", mb / dd, dd, mb / best);
    printf("checkpoint shard + meta files written and fsynced:              %8.0f MB/s (%.3f s)\n",
           mb / wr, wr);
    printf("checkpoint complete (+ index.json, rename, latest, fsyncs):      %8.0f MB/s (%.3f s)\n",
           mb / total, total);
    printf("throughput ratio checkpoint / disk: %.2f (complete), %.2f (files); complete / best "
           "disk run %.2f\n", dd / total, dd / wr, best / total);
    printf("training loop blocked in lmf_ckpt_save: %.3f s (a plain copy of the state takes %.3f s, "
           "%.0f MB/s); %.1f%% of the complete write\n", start, copy, mb / copy,
           100 * start / total);
    lmf_ckpt_writer_free(w);
    lmf_comm_free(c);
    lmf_layout_free(&l);
    free(p);
    free(m);
    free(v);
    free(junk);
    free(snap_copy);
    return 0;
}

/* lmforge bench tokenizer: encode/decode throughput and training time. */
/* GPT-2's vocabulary on one thread and on all threads, exactness checked. */
#include <dirent.h>
#include <errno.h>
#include <omp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "lmforge/tokenizer.h"
#include "lmforge/perf.h"

#define CMD "bench tokenizer"
#define PIECE ((size_t)64 << 10)

/* this thread's CPU time: unlike wall time, not inflated when other processes share the cores */
static double cpu_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int is_dir_with(const char *dir, const char *name) {
    char p[4200];
    struct stat sb;
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return stat(p, &sb) == 0 && S_ISREG(sb.st_mode);
}

/* GPT-2's files: $LMF_SHARED_DIR/gpt2, then shared/gpt2 next to the source tree (from the
 * executable's directory or the working directory). */
static int find_gpt2(char *out, size_t cap) {
    char cands[4][4200];
    int n = 0;
    const char *sd = getenv("LMF_SHARED_DIR");
    if (sd) snprintf(cands[n++], sizeof cands[0], "%s/gpt2", sd);
    char exe[4096];
    ssize_t l = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (l > 0) {
        exe[l] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash) *slash = '\0';
        snprintf(cands[n++], sizeof cands[0], "%s/../../shared/gpt2", exe);
        snprintf(cands[n++], sizeof cands[0], "%s/../shared/gpt2", exe);
    }
    snprintf(cands[n++], sizeof cands[0], "../shared/gpt2");
    for (int i = 0; i < n; i++)
        if (is_dir_with(cands[i], "encoder.json") && is_dir_with(cands[i], "vocab.bpe")) {
            char real[4096];
            snprintf(out, cap, "%s", realpath(cands[i], real) ? real : cands[i]);
            return 1;
        }
    return 0;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* the corpus's text files (regular, not .dat/.u8), sorted, joined */
static char *read_corpus(const char *dir, size_t *len, int *n_files) {
    DIR *d = opendir(dir);
    if (!d) return NULL;
    char *names[1024];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 1024) {
        size_t l = strlen(e->d_name);
        if (e->d_name[0] == '.' || (l > 4 && strcmp(e->d_name + l - 4, ".dat") == 0) ||
            (l > 3 && strcmp(e->d_name + l - 3, ".u8") == 0))
            continue;
        char p[4200];
        struct stat sb;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        if (lstat(p, &sb) != 0 || !S_ISREG(sb.st_mode)) continue;
        names[n++] = strdup(p);
    }
    closedir(d);
    qsort(names, (size_t)n, sizeof names[0], cmp_str);
    char *all = NULL;
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        FILE *f = fopen(names[i], "rb");
        if (f) {
            fseek(f, 0, SEEK_END);
            long sz = ftell(f);
            fseek(f, 0, SEEK_SET);
            char *na = sz > 0 ? realloc(all, total + (size_t)sz + 1) : all;
            if (na) {
                all = na;
                total += fread(all + total, 1, (size_t)(sz > 0 ? sz : 0), f);
            }
            fclose(f);
        }
        free(names[i]);
    }
    *len = total;
    *n_files = n;
    return all;
}

typedef struct par_job {
    const lmf_tokenizer *t;
    const char *text;
    const size_t *cuts;
    size_t n_cuts;
    uint32_t *ids;
    size_t *piece_n;
    pthread_mutex_t mu;
    size_t next;
    int errors;
} par_job;

/* take pieces until none is left; piece k writes its ids at offset cuts[k-1] (a piece never
 * has more ids than bytes) */
static void *par_worker(void *arg) {
    par_job *j = arg;
    for (;;) {
        pthread_mutex_lock(&j->mu);
        size_t k = j->next++;
        pthread_mutex_unlock(&j->mu);
        if (k >= j->n_cuts) break;
        size_t a = k ? j->cuts[k - 1] : 0, b = j->cuts[k];
        if (lmf_tok_encode(j->t, j->text + a, b - a, 0, j->ids + a, b - a, &j->piece_n[k]) != LMF_OK) {
            pthread_mutex_lock(&j->mu);
            j->errors++;
            pthread_mutex_unlock(&j->mu);
        }
    }
    return NULL;
}

/* encode text on nt threads in pieces cut at safe points; returns seconds, ids in order */
static double encode_parallel(const lmf_tokenizer *t, const char *text, int nt, const size_t *cuts,
                              size_t n_cuts, uint32_t *ids, size_t *n_ids, size_t *piece_n, int *bad) {
    par_job j = {t, text, cuts, n_cuts, ids, piece_n, PTHREAD_MUTEX_INITIALIZER, 0, 0};
    pthread_t th[256];
    int started = 0;
    if (nt > 256) nt = 256;
    double t0 = lmf_now_s();
    for (int i = 0; i < nt; i++)
        if (pthread_create(&th[i], NULL, par_worker, &j) == 0) started++;
    if (started == 0) par_worker(&j);
    for (int i = 0; i < started; i++) pthread_join(th[i], NULL);
    double dt = lmf_now_s() - t0;
    size_t o = 0; /* compact the pieces into one sequence */
    for (size_t k = 0; k < n_cuts; k++) {
        size_t a = k ? cuts[k - 1] : 0;
        memmove(ids + o, ids + a, piece_n[k] * sizeof *ids);
        o += piece_n[k];
    }
    *n_ids = o;
    *bad = j.errors;
    return dt;
}

int lmf_bench_tokenizer(int argc, char **argv) {
    const char *tokdir = NULL, *corpus = "/usr/share/games/fortunes";
    lmf_strs train_inputs = {0};
    int threads = 0, reps = 5, train_vocab = 16384, no_train = 0;
    double train_mb = 10;
    lmf_opt opts[] = {
        {"--tokenizer", LMF_OPT_STR, &tokdir, "DIR", "vocabulary to encode with (default: GPT-2's, from $LMF_SHARED_DIR/gpt2)", LMF_NOLIMIT, NULL},
        {"--corpus", LMF_OPT_STR, &corpus, "DIR", "text files to encode (default /usr/share/games/fortunes)", LMF_NOLIMIT, NULL},
        {"--threads", LMF_OPT_INT, &threads, "N", "threads for the parallel runs (default: all cores)", 0, 4096, NULL},
        {"--repeat", LMF_OPT_INT, &reps, "N", "timed runs per measurement, best kept (default 5)", 1, 1000, NULL},
        {"--train-vocab", LMF_OPT_INT, &train_vocab, "N", "vocabulary size for the training run (default 16384)", 257, 1 << 22, NULL},
        {"--train-mb", LMF_OPT_DOUBLE, &train_mb, "MB", "training text: the corpus repeated to this size (default 10)", 0.001, 1e5, NULL},
        {"--train-input", LMF_OPT_STRS, &train_inputs, "FILE...", "train on these files instead", LMF_NOLIMIT, NULL},
        {"--no-train", LMF_OPT_FLAG, &no_train, NULL, "skip the training run", LMF_NOLIMIT, NULL},
    };
    int r = lmf_args_parse(CMD, "[options]", opts, (int)(sizeof opts / sizeof opts[0]), argc, argv,
                           NULL, 0, NULL);
    if (r) return r == 1 ? 0 : 2;
    char gpt2[4200];
    if (!tokdir) {
        if (!find_gpt2(gpt2, sizeof gpt2)) {
            lmf_cli_error(CMD, "GPT-2's encoder.json + vocab.bpe not found; pass --tokenizer DIR "
                          "or set LMF_SHARED_DIR (the directory holding gpt2/)");
            return 1;
        }
        tokdir = gpt2;
    }
    size_t len = 0;
    int n_files = 0;
    char *text = read_corpus(corpus, &len, &n_files);
    if (!text || len == 0) {
        lmf_cli_error(CMD, "corpus %s: no text files could be read", corpus);
        free(text);
        return 1;
    }
    int nt = threads > 0 ? threads : omp_get_max_threads();
    lmf_tokenizer *t = NULL;
    if (lmf_tok_load(tokdir, &t) != LMF_OK) {
        lmf_cli_error(CMD, "%s", lmf_last_error());
        free(text);
        return 1;
    }
    uint32_t *ref = malloc(len * sizeof *ref), *ids = malloc(len * sizeof *ids);
    char *back = malloc(len);
    size_t n_cuts = 0, *cuts = malloc((len / PIECE + 2) * sizeof *cuts), *piece_n = NULL;
    if (!ref || !ids || !back || !cuts) {
        lmf_cli_error(CMD, "out of memory");
        return 1;
    }
    for (size_t pos = 0; pos < len;) {
        size_t c = lmf_tok_split_point(text, len, pos + PIECE);
        cuts[n_cuts++] = c;
        pos = c;
    }
    piece_n = malloc(n_cuts * sizeof *piece_n);
    printf("tokenizer bench: %d ids from %s; corpus %s: %d files, %.2f MB; %d threads\n",
           lmf_tok_vocab_size(t), tokdir, corpus, n_files, (double)len / 1e6, nt);
    double mb = (double)len / 1e6;
    /* one thread, cold: a freshly loaded tokenizer each time, its word cache empty */
    size_t n_ref = 0, n = 0;
    double cold = 1e30, cold_cpu = 1e30, best1 = 1e30, best1_cpu = 1e30, t0, c0;
    lmf_status s = LMF_OK;
    for (int k = 0; k < reps && s == LMF_OK; k++) {
        if (k > 0) {
            lmf_tok_free(t);
            t = NULL;
            s = lmf_tok_load(tokdir, &t);
            if (s != LMF_OK) break;
        }
        t0 = lmf_now_s();
        c0 = cpu_s();
        s = lmf_tok_encode(t, text, len, 0, ref, len, &n_ref);
        double dt = lmf_now_s() - t0, dc = cpu_s() - c0;
        if (dt < cold) cold = dt;
        if (dc < cold_cpu) cold_cpu = dc;
    }
    for (int k = 0; k < reps && s == LMF_OK; k++) {
        t0 = lmf_now_s();
        c0 = cpu_s();
        s = lmf_tok_encode(t, text, len, 0, ids, len, &n);
        double dt = lmf_now_s() - t0, dc = cpu_s() - c0;
        if (dt < best1) best1 = dt;
        if (dc < best1_cpu) best1_cpu = dc;
    }
    int exact = s == LMF_OK && n == n_ref && memcmp(ids, ref, n * sizeof *ids) == 0;
    size_t nb = 0;
    double bestd = 1e30;
    for (int k = 0; k < reps && s == LMF_OK; k++) {
        t0 = lmf_now_s();
        s = lmf_tok_decode(t, ref, n_ref, back, len, &nb);
        double dt = lmf_now_s() - t0;
        if (dt < bestd) bestd = dt;
    }
    int roundtrip = s == LMF_OK && nb == len && memcmp(back, text, len) == 0;
    /* all threads: pieces cut at safe points, ids must equal the one-call result */
    double bestp = 1e30;
    int bad = 0;
    for (int k = 0; k <= reps && s == LMF_OK; k++) { /* the first run warms every thread's cache */
        double dt = encode_parallel(t, text, nt, cuts, n_cuts, ids, &n, piece_n, &bad);
        if (k > 0 && dt < bestp) bestp = dt;
        exact = exact && !bad && n == n_ref && memcmp(ids, ref, n * sizeof *ids) == 0;
    }
    if (s != LMF_OK) {
        lmf_cli_error(CMD, "%s", lmf_last_error());
        return 1;
    }
    printf("encode, 1 thread : %7.1f MB/s cold (first pass), %7.1f MB/s warm (best of %d each); %zu ids\n",
           mb / cold, mb / best1, reps, n_ref);
    printf("   per CPU second: %7.1f MB/s cold, %7.1f MB/s warm (the same runs, timed by CPU time)\n",
           mb / cold_cpu, mb / best1_cpu);
    printf("encode, %d threads: %7.1f MB/s warm (%.2fx one thread)\n", nt, mb / bestp, best1 / bestp);
    printf("decode, 1 thread : %7.1f MB/s\n", mb / bestd);
    printf("exact: %s (threads agree with one call), round trip: %s\n", exact ? "yes" : "NO",
           roundtrip ? "yes" : "NO");
    printf("one thread vs the 40 MB/s target: %.2fx (cold), %.2fx (warm)\n", mb / cold / 40.0,
           mb / best1 / 40.0);
    lmf_tok_free(t);
    free(ref);
    free(ids);
    free(back);
    free(cuts);
    free(piece_n);
    int rc = exact && roundtrip ? 0 : 1;
    if (!no_train) {
        lmf_tok_train_opts o = {train_vocab, NULL, threads, 0};
        lmf_tokenizer *tt = NULL;
        double dt;
        if (train_inputs.n > 0) {
            t0 = lmf_now_s();
            s = lmf_tok_train_files(train_inputs.v, train_inputs.n, &o, &tt);
            dt = lmf_now_s() - t0;
            if (s == LMF_OK)
                printf("train: %d-id vocabulary from %d file%s in %.2f s\n", lmf_tok_vocab_size(tt),
                       train_inputs.n, train_inputs.n == 1 ? "" : "s", dt);
        } else {
            size_t want = (size_t)(train_mb * 1e6), have = 0;
            char *big = malloc(want + 1);
            if (!big) {
                lmf_cli_error(CMD, "out of memory");
                free(text);
                return 1;
            }
            while (have < want) {
                size_t k = want - have < len ? want - have : len;
                memcpy(big + have, text, k);
                have += k;
            }
            t0 = lmf_now_s();
            s = lmf_tok_train_buffer(big, want, &o, &tt);
            dt = lmf_now_s() - t0;
            free(big);
            if (s == LMF_OK)
                printf("train: %d-id vocabulary on %.1f MB (the corpus repeated %.1fx) in %.2f s\n",
                       lmf_tok_vocab_size(tt), (double)want / 1e6, (double)want / (double)len, dt);
        }
        if (s != LMF_OK) {
            lmf_cli_error(CMD, "%s", lmf_last_error());
            rc = 1;
        }
        lmf_tok_free(tt);
    }
    free(text);
    return rc;
}

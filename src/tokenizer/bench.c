/* Tokenizer benchmark: encode and decode throughput, exactness across threads, training time. */
/* Measures through the public functions only (load, encode, decode, split points, train); the
 * caller (`lmforge bench tokenizer`) prints the figures. */
#include <omp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "lmforge/system.h"
#include "tokenizer/tok_internal.h"

#define PIECE ((size_t)64 << 10)  /* the parallel runs encode pieces of about this size */
#define MAX_THREADS 256

/* this thread's CPU time: unlike wall time, not inflated when other processes share the cores */
static double cpu_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* the files' text, joined in order, into a new buffer (*text, free() it) */
static lmf_status read_inputs(const char *const *inputs, int n_inputs, char **text, size_t *len) {
    *text = NULL;
    *len = 0;
    if (n_inputs <= 0) return lmf_fail(LMF_ERR_ARG, "tokenizer bench: no input files");
    char *all = NULL;
    size_t total = 0;
    for (int i = 0; i < n_inputs; i++) {
        char *b = NULL;
        size_t n = 0;
        lmf_status s = lmf_tok_read_file(inputs[i], &b, &n);
        char *na = s == LMF_OK ? realloc(all, total + n + 1) : NULL;
        if (s == LMF_OK && !na) s = lmf_fail(LMF_ERR_NOMEM, "tokenizer bench: out of memory");
        if (s != LMF_OK) {
            free(b);
            free(all);
            return s;
        }
        all = na;
        memcpy(all + total, b, n);
        total += n;
        free(b);
    }
    if (total == 0) {
        free(all);
        return lmf_fail(LMF_ERR_ARG, "tokenizer bench: the input files hold no text");
    }
    *text = all;
    *len = total;
    return LMF_OK;
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
    pthread_t th[MAX_THREADS];
    int started = 0;
    if (nt > MAX_THREADS) nt = MAX_THREADS;
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

/* The measurements of lmf_tok_bench on text[0..len) with the loaded tokenizer *tp (reloaded
 * from path for each cold run after the first). */
static lmf_status measure(const lmf_tok_bench_opts *o, const char *text, size_t len,
                          lmf_tokenizer **tp, lmf_tok_bench_result *r) {
    int reps = o->repeat;
    uint32_t *ref = malloc(len * sizeof *ref), *ids = malloc(len * sizeof *ids);
    char *back = malloc(len);
    size_t n_cuts = 0, *cuts = malloc((len / PIECE + 2) * sizeof *cuts), *piece_n = NULL;
    lmf_status s = ref && ids && back && cuts ? LMF_OK : lmf_fail(LMF_ERR_NOMEM, "tokenizer bench: out of memory");
    if (s == LMF_OK) {
        for (size_t pos = 0; pos < len;) {
            size_t c = lmf_tok_split_point(text, len, pos + PIECE);
            cuts[n_cuts++] = c;
            pos = c;
        }
        piece_n = malloc(n_cuts * sizeof *piece_n);
        if (!piece_n) s = lmf_fail(LMF_ERR_NOMEM, "tokenizer bench: out of memory");
    }
    /* one thread, cold: a freshly loaded tokenizer each time, its word cache empty */
    size_t n_ref = 0, n = 0;
    double cold = 1e30, cold_cpu = 1e30, best1 = 1e30, best1_cpu = 1e30, t0, c0;
    for (int k = 0; k < reps && s == LMF_OK; k++) {
        if (k > 0) {
            lmf_tok_free(*tp);
            *tp = NULL;
            s = lmf_tok_load(o->tokenizer, tp);
            if (s != LMF_OK) break;
        }
        t0 = lmf_now_s();
        c0 = cpu_s();
        s = lmf_tok_encode(*tp, text, len, 0, ref, len, &n_ref);
        double dt = lmf_now_s() - t0, dc = cpu_s() - c0;
        if (dt < cold) cold = dt;
        if (dc < cold_cpu) cold_cpu = dc;
    }
    const lmf_tokenizer *t = *tp;
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
        double dt = encode_parallel(t, text, r->threads, cuts, n_cuts, ids, &n, piece_n, &bad);
        if (k > 0 && dt < bestp) bestp = dt;
        exact = exact && !bad && n == n_ref && memcmp(ids, ref, n * sizeof *ids) == 0;
    }
    if (s == LMF_OK) {
        r->n_ids = n_ref;
        r->cold_s = cold;
        r->cold_cpu_s = cold_cpu;
        r->warm_s = best1;
        r->warm_cpu_s = best1_cpu;
        r->parallel_s = bestp;
        r->decode_s = bestd;
        r->exact = exact;
        r->roundtrip = roundtrip;
    }
    free(ref);
    free(ids);
    free(back);
    free(cuts);
    free(piece_n);
    return s;
}

lmf_status lmf_tok_bench(const lmf_tok_bench_opts *o, lmf_tok_bench_result *r) {
    memset(r, 0, sizeof *r);
    if (!o->tokenizer) return lmf_fail(LMF_ERR_ARG, "tokenizer bench: no tokenizer given");
    if (o->repeat < 1)
        return lmf_fail(LMF_ERR_ARG, "tokenizer bench: repeat must be at least 1 (got %d)", o->repeat);
    char *text = NULL;
    size_t len = 0;
    LMF_TRY(read_inputs(o->inputs, o->n_inputs, &text, &len));
    lmf_tokenizer *t = NULL;
    lmf_status s = lmf_tok_load(o->tokenizer, &t);
    if (s == LMF_OK) {
        r->vocab_size = lmf_tok_vocab_size(t);
        r->bytes = len;
        r->threads = o->threads > 0 ? o->threads : omp_get_max_threads();
        s = measure(o, text, len, &t, r);
    }
    lmf_tok_free(t);
    free(text);
    return s;
}

lmf_status lmf_tok_bench_train(const lmf_tok_bench_train_opts *o, lmf_tok_bench_train_result *r) {
    memset(r, 0, sizeof *r);
    lmf_tok_train_opts to = {.vocab_size = o->vocab_size, .threads = o->threads};
    lmf_tokenizer *t = NULL;
    lmf_status s;
    double t0;
    if (o->text == LMF_TOK_BENCH_FILES) {
        if (o->n_inputs <= 0) return lmf_fail(LMF_ERR_ARG, "tokenizer bench: no input files");
        for (int i = 0; i < o->n_inputs; i++) {
            struct stat sb;
            if (stat(o->inputs[i], &sb) == 0) r->input_bytes += (size_t)sb.st_size;
        }
        r->bytes = r->input_bytes;
        t0 = lmf_now_s();
        s = lmf_tok_train_files(o->inputs, o->n_inputs, &to, &t);
        r->seconds = lmf_now_s() - t0;
    } else {
        if (o->bytes == 0) return lmf_fail(LMF_ERR_ARG, "tokenizer bench: no training text (bytes is 0)");
        char *text = NULL;
        size_t len = 0;
        LMF_TRY(read_inputs(o->inputs, o->n_inputs, &text, &len));
        size_t want = o->bytes, have = 0;
        char *big = malloc(want + 1);
        if (!big) {
            free(text);
            return lmf_fail(LMF_ERR_NOMEM, "tokenizer bench: out of memory for %zu bytes of "
                            "training text", want);
        }
        while (have < want) {
            size_t k = want - have < len ? want - have : len;
            memcpy(big + have, text, k);
            have += k;
        }
        free(text);
        r->input_bytes = len;
        r->bytes = want;
        t0 = lmf_now_s();
        s = lmf_tok_train_buffer(big, want, &to, &t);
        r->seconds = lmf_now_s() - t0;
        free(big);
    }
    if (s == LMF_OK) r->vocab_size = lmf_tok_vocab_size(t);
    lmf_tok_free(t);
    return s;
}

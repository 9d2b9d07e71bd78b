/* lmforge bench tokenizer: its flags, and the figures of lmf_tok_bench / lmf_tok_bench_train printed. */
/* GPT-2's vocabulary (or another) on one thread and on all threads, exactness checked, optionally
 * beside a second vocabulary in the same run; then a training run. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "lmforge/prepare.h"
#include "lmforge/tokenizer.h"

#define CMD "bench tokenizer"

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

/* the faster of two results, field by field (the counts are the same runs') */
static void keep_best(lmf_tok_bench_result *best, const lmf_tok_bench_result *b, int first) {
    if (first) {
        *best = *b;
        return;
    }
#define MIN_OF(f) if (b->f < best->f) best->f = b->f
    MIN_OF(cold_s); MIN_OF(cold_cpu_s); MIN_OF(warm_s); MIN_OF(warm_cpu_s); MIN_OF(parallel_s);
    MIN_OF(decode_s);
#undef MIN_OF
    best->exact &= b->exact;
    best->roundtrip &= b->roundtrip;
}

/* Benchmark tokenizer path[0] and, when path[1], path[1] too, alternating `rounds` times so
 * that both see the same machine; res[k] keeps each one's best. */
static lmf_status bench_alternating(const char *const path[2], const lmf_corpus *c, int threads,
                                    int reps, int rounds, lmf_tok_bench_result res[2]) {
    for (int round = 0; round < rounds; round++)
        for (int k = 0; k < 2 && path[k]; k++) {
            lmf_tok_bench_opts bo = {path[k], (const char *const *)c->paths, c->n, threads, reps};
            lmf_tok_bench_result b;
            LMF_TRY(lmf_tok_bench(&bo, &b));
            keep_best(&res[k], &b, round == 0);
        }
    return LMF_OK;
}

static void print_result(const lmf_tok_bench_result *b, const char *tokdir, const char *corpus,
                         int n_files, int reps) {
    double mb = (double)b->bytes / 1e6;
    printf("tokenizer bench: %d ids from %s; corpus %s: %d files, %.2f MB; %d threads\n",
           b->vocab_size, tokdir, corpus, n_files, mb, b->threads);
    printf("encode, 1 thread : %7.1f MB/s cold (first pass), %7.1f MB/s warm (best of %d each); %zu ids\n",
           mb / b->cold_s, mb / b->warm_s, reps, b->n_ids);
    printf("   per CPU second: %7.1f MB/s cold, %7.1f MB/s warm (the same runs, timed by CPU time)\n",
           mb / b->cold_cpu_s, mb / b->warm_cpu_s);
    printf("encode, %d threads: %7.1f MB/s warm (%.2fx one thread)\n", b->threads, mb / b->parallel_s,
           b->warm_s / b->parallel_s);
    printf("decode, 1 thread : %7.1f MB/s\n", mb / b->decode_s);
    printf("exact: %s (threads agree with one call), round trip: %s\n", b->exact ? "yes" : "NO",
           b->roundtrip ? "yes" : "NO");
    printf("one thread vs the 40 MB/s target: %.2fx (cold), %.2fx (warm)\n", mb / b->cold_s / 40.0,
           mb / b->warm_s / 40.0);
}

int lmf_bench_tokenizer(int argc, char **argv) {
    const char *tokdir = NULL, *versus = NULL, *corpus = LMF_DEFAULT_CORPUS;
    lmf_strs train_inputs = {0};
    int threads = 0, reps = 5, train_vocab = 16384, no_train = 0;
    double train_mb = 10;
    lmf_opt opts[] = {
        {"--tokenizer", LMF_OPT_STR, &tokdir, "DIR", "vocabulary to encode with (default: GPT-2's, from $LMF_SHARED_DIR/gpt2)", LMF_NOLIMIT, NULL},
        {"--versus", LMF_OPT_STR, &versus, "DIR", "a second vocabulary, measured in turn with the first (3 rounds, best kept)", LMF_NOLIMIT, NULL},
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
    lmf_corpus c;
    if (lmf_data_corpus_list(corpus, &c) != LMF_OK) {
        lmf_cli_error(CMD, "corpus %s: no text files could be read", corpus);
        return 1;
    }
    const char *paths[2] = {tokdir, versus};
    lmf_tok_bench_result res[2];
    if (bench_alternating(paths, &c, threads, reps, versus ? 3 : 1, res) != LMF_OK) {
        lmf_cli_error(CMD, "%s", lmf_last_error());
        lmf_data_corpus_free(&c);
        return 1;
    }
    print_result(&res[0], tokdir, corpus, c.n, reps);
    int rc = res[0].exact && res[0].roundtrip ? 0 : 1;
    if (versus) {
        const lmf_tok_bench_result *a = &res[0], *v = &res[1];
        print_result(v, versus, corpus, c.n, reps);
        rc |= v->exact && v->roundtrip ? 0 : 1;
        /* seconds per byte of text, the second vocabulary's over the first's */
#define RATIO(f) ((v->f / (double)v->bytes) / (a->f / (double)a->bytes))
        printf("time per byte, %s over %s: CPU %.2fx cold, %.2fx warm; wall %.2fx cold, %.2fx warm\n",
               versus, tokdir, RATIO(cold_cpu_s), RATIO(warm_cpu_s), RATIO(cold_s), RATIO(warm_s));
#undef RATIO
    }
    if (!no_train) {
        lmf_tok_bench_train_opts to = {(const char *const *)c.paths, c.n, LMF_TOK_BENCH_REPEATED,
                                       (size_t)(train_mb * 1e6), train_vocab, threads};
        if (train_inputs.n > 0) {
            to.inputs = train_inputs.v;
            to.n_inputs = train_inputs.n;
            to.text = LMF_TOK_BENCH_FILES;
        }
        lmf_tok_bench_train_result tr;
        if (lmf_tok_bench_train(&to, &tr) != LMF_OK) {
            lmf_cli_error(CMD, "%s", lmf_last_error());
            rc = 1;
        } else if (to.text == LMF_TOK_BENCH_FILES) {
            printf("train: %d-id vocabulary from %d file%s in %.2f s\n", tr.vocab_size,
                   train_inputs.n, train_inputs.n == 1 ? "" : "s", tr.seconds);
        } else {
            printf("train: %d-id vocabulary on %.1f MB (the corpus repeated %.1fx) in %.2f s\n",
                   tr.vocab_size, (double)tr.bytes / 1e6,
                   (double)tr.bytes / (double)tr.input_bytes, tr.seconds);
        }
    }
    lmf_data_corpus_free(&c);
    return rc;
}

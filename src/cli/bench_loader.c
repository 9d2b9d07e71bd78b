/* lmforge bench loader: batch assembly speed over token files in the page cache (one source in
 * file order, shuffled, and a shuffled mixture of many files), or over a given data spec; each
 * case with the rows of a micro-batch read together and, from the same state, one read per row
 * (two rounds each, in turn, the better kept), and the ratio of the two. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "lmforge/data.h"
#include "lmforge/fsutil.h"

#define CMD "bench loader"

/* the synthetic set: web/ 48 files of 1M uint16 tokens, code/ 16 files of 1M uint32 tokens */
static int write_set(const char *dir) {
    uint32_t *t = malloc((1u << 20) * sizeof *t);
    if (!t) return -1;
    uint64_t x = 88172645463325252ull;
    char sub[4200], p[4300];
    int rc = 0;
    for (int src = 0; src < 2 && rc == 0; src++) {
        snprintf(sub, sizeof sub, "%s/%s", dir, src ? "code" : "web");
        if (lmf_mkdir_p(sub) != LMF_OK) rc = -1;
        for (int f = 0; f < (src ? 16 : 48) && rc == 0; f++) {
            for (size_t i = 0; i < (1u << 20); i++) {
                x ^= x << 13, x ^= x >> 7, x ^= x << 17;
                t[i] = (uint32_t)(x % 50257);
            }
            snprintf(p, sizeof p, "%s/part_%03d.bin", sub, f);
            if (lmf_tokens_write(p, t, 1u << 20, src ? 4 : 2) != LMF_OK) rc = -1;
        }
    }
    free(t);
    return rc;
}

static int run_case(const char *label, const char *spec, int B, int T, int micro, int shuffle,
                    double secs, int json) {
    lmf_dataset *d = NULL;
    lmf_loader *l = NULL;
    uint32_t mx;
    lmf_loader_bench_result r, r1;
    lmf_loader_state st0;
    lmf_status s = lmf_dataset_open(spec, &d);
    if (s == LMF_OK) s = lmf_dataset_max_token(d, &mx); /* reads every file: the page cache */
    if (s == LMF_OK) s = lmf_loader_create(d, B, T, shuffle, 1337, &l);
    /* one read per row and batched reads in turn, twice, each from the same state; the better
     * round of each is kept (on a shared machine the slower one met more interference) */
    if (s == LMF_OK) lmf_loader_get_state(l, &st0);
    r.tokens_per_s = r1.tokens_per_s = 0;
    for (int round = 0; s == LMF_OK && round < 4; round++) {
        lmf_loader_bench_result x;
        lmf_loader_set_batch_reads(l, round & 1);
        s = lmf_loader_set_state(l, &st0);
        if (s == LMF_OK) s = lmf_loader_bench(l, (uint64_t)micro, secs, &x);
        lmf_loader_bench_result *best = round & 1 ? &r : &r1;
        if (s == LMF_OK && x.tokens_per_s > best->tokens_per_s) *best = x;
    }
    double ratio = s == LMF_OK && r1.tokens_per_s > 0 ? r.tokens_per_s / r1.tokens_per_s : 0;
    if (s != LMF_OK) lmf_cli_error(CMD, "%s", lmf_last_error());
    else if (json)
        printf("{\"case\": \"%s\", \"files\": %d, \"sources\": %d, \"batch\": %d, \"seq\": %d, "
               "\"micro_batches\": %d, \"tokens_per_s\": %.0f, \"steps\": %llu, "
               "\"tokens_per_s_row_reads\": %.0f, \"ratio\": %.2f}\n", label,
               lmf_dataset_num_files(d), lmf_dataset_num_sources(d), B, T, micro, r.tokens_per_s,
               (unsigned long long)r.steps, r1.tokens_per_s, ratio);
    else
        printf("%-34s %5d files %2d sources  B=%d T=%d x%d  %8.1f M tokens/s  (one read per row "
               "%.1f M: x%.2f)\n", label, lmf_dataset_num_files(d), lmf_dataset_num_sources(d), B,
               T, micro, r.tokens_per_s / 1e6, r1.tokens_per_s / 1e6, ratio);
    lmf_loader_free(l);
    lmf_dataset_close(d);
    return s == LMF_OK ? 0 : 1;
}

int lmf_bench_loader(int argc, char **argv) {
    const char *spec = NULL;
    int B = 8, T = 1024, micro = 8, json = 0, no_shuffle = 0;
    double secs = 1.0;
    lmf_opt opts[] = {
        {"--data", LMF_OPT_STR, &spec, "SPEC", "token files or a mixture (default: a synthetic set of 64 files, 160 MB, in $TMPDIR)", LMF_NOLIMIT, NULL},
        {"--batch", LMF_OPT_INT, &B, "B", "micro-batch rows (default 8)", 1, 1e6, NULL},
        {"--seq", LMF_OPT_INT, &T, "T", "sequence length (default 1024)", 1, 1e7, NULL},
        {"--micro-batches", LMF_OPT_INT, &micro, "N", "micro-batches per step (default 8)", 1, 1e6, NULL},
        {"--seconds", LMF_OPT_DOUBLE, &secs, "S", "timed seconds per round (default 1; 4 rounds per case)", 0, 3600, NULL},
        {"--no-shuffle", LMF_OPT_FLAG, &no_shuffle, NULL, "with --data: file order", LMF_NOLIMIT, NULL},
        {"--json", LMF_OPT_FLAG, &json, NULL, "one JSON object per case", LMF_NOLIMIT, NULL},
    };
    int r = lmf_args_parse(CMD, "[--data SPEC] [options]", opts, (int)(sizeof opts / sizeof opts[0]),
                           argc, argv, NULL, 0, NULL);
    if (r) return r == 1 ? 0 : 2;
    if (spec) return run_case(spec, spec, B, T, micro, !no_shuffle, secs, json);
    const char *tmp = getenv("TMPDIR");
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/lmf-bench-loader-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        lmf_cli_error(CMD, "cannot make a directory in %s for the token files; set TMPDIR",
                      tmp && *tmp ? tmp : "/tmp");
        return 1;
    }
    int rc = write_set(dir);
    if (rc != 0) lmf_cli_error(CMD, "cannot write the token files: %s", lmf_last_error());
    char web[4200], mix[8500];
    snprintf(web, sizeof web, "%s/web/part_000.bin", dir);
    if (rc == 0) rc = run_case("one file, file order", web, B, T, micro, 0, secs, json);
    if (rc == 0) rc = run_case("one file, shuffled", web, B, T, micro, 1, secs, json);
    snprintf(mix, sizeof mix, "0.7:%s/web,0.3:%s/code", dir, dir);
    if (rc == 0) rc = run_case("mixture 0.7/0.3 of 64 files, shuffled", mix, B, T, micro, 1, secs, json);
    char cmd[4300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "lmforge %s: note: could not remove %s\n", CMD, dir);
    return rc;
}

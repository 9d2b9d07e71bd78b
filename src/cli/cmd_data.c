/* lmforge data prepare: text files -> train/val token files, on all cores, with a progress bar;
 * lmforge data inspect: the loader run dry over a data spec, per-source rows and shares. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "lmforge/comm.h"
#include "lmforge/data.h"
#include "lmforge/prepare.h"
#include "lmforge/tokenizer.h"

typedef struct bar {
    int tty;
    int last_pct;
} bar;

/* progress callback: a bar on a terminal, nothing otherwise */
static void show_progress(void *ctx, uint64_t done, uint64_t total, uint64_t tokens) {
    bar *b = ctx;
    if (!b->tty || total == 0) return;
    int pct = (int)(100.0 * (double)done / (double)total);
    if (pct == b->last_pct) return;
    b->last_pct = pct;
    char cells[41];
    int full = pct * 40 / 100;
    for (int i = 0; i < 40; i++) cells[i] = i < full ? '#' : '.';
    cells[40] = '\0';
    fprintf(stderr, "\r[%s] %3d%%  %.1f / %.1f MB  %llu tokens", cells, pct, (double)done / 1e6,
            (double)total / 1e6, (unsigned long long)tokens);
    fflush(stderr);
}

/* "100M", "2G", "5000" -> tokens; 0 when malformed */
static uint64_t parse_count(const char *s) {
    char *end;
    double v = strtod(s, &end);
    double mul = *end == 'K' || *end == 'k' ? 1e3 : *end == 'M' || *end == 'm' ? 1e6
               : *end == 'G' || *end == 'g' ? 1e9 : *end == '\0' ? 1 : 0;
    if (*end && end[1]) mul = 0;
    return v >= 1 && mul > 0 && v * mul < 1e15 ? (uint64_t)(v * mul) : 0;
}

/* the phases of a sharded preparation, every rank of the launcher; a failure on any rank stops
 * all of them after the phase (each names its own error) */
static int prepare_shards(lmf_shards_opts *so, int quiet, int crash) {
    lmf_comm *comm = NULL;
    lmf_cli_ranks_meet();
    if (lmf_comm_create("auto", &comm) != LMF_OK) {
        lmf_cli_error("data prepare", "%s", lmf_last_error());
        return 1;
    }
    int rank = lmf_comm_rank(comm), world = lmf_comm_size(comm), rc = 0;
    lmf_shards_stats st;
    memset(&st, 0, sizeof st);
    for (int phase = 0; phase < 4 && rc == 0; phase++) {
        lmf_status s = phase == 0 ? lmf_shards_begin(so, rank)
                     : phase == 1 ? lmf_shards_tokenize(so, rank, world, &st)
                     : phase == 2 ? lmf_shards_write(so, rank, world, &st)
                                  : lmf_shards_finish(so, rank, &st);
        if (s != LMF_OK && crash) _exit(9); /* the test's crash: no cleanup, no collective */
        if (s != LMF_OK) lmf_cli_error("data prepare", "%s", lmf_last_error());
        int64_t bad = s != LMF_OK;
        if (lmf_comm_allreduce_i64(comm, &bad, 1, LMF_COMM_MAX) != LMF_OK || bad) rc = 1;
    }
    int64_t sum[4] = {st.parts_done, st.parts_kept, st.shards_done, st.shards_kept};
    if (rc == 0 && lmf_comm_allreduce_i64(comm, sum, 4, LMF_COMM_SUM) != LMF_OK) rc = 1;
    if (rc == 0 && rank == 0 && !quiet) {
        if (st.complete) printf("%s is complete already (manifest.json); nothing to do\n", so->out_dir);
        else
            printf("prepared %d inputs on %d ranks into %d token files of up to %llu tokens in %s "
                   "(%llu tokens, %llu documents) and %d validation files in %s/val (%llu tokens, "
                   "%llu documents); inputs tokenized %lld, kept %lld; files written %lld, kept "
                   "%lld\n",
                   so->n_inputs, world, st.n_shards, (unsigned long long)so->shard_tokens,
                   so->out_dir, (unsigned long long)(st.tokens - st.val_tokens),
                   (unsigned long long)(st.docs - st.val_docs), st.n_val_shards, so->out_dir,
                   (unsigned long long)st.val_tokens, (unsigned long long)st.val_docs,
                   (long long)sum[0], (long long)sum[1], (long long)sum[2], (long long)sum[3]);
    }
    lmf_comm_free(comm);
    return rc;
}

static int cmd_prepare(int argc, char **argv) {
    const char *tokdir = NULL, *out = NULL, *sep = NULL, *jsonl_key = "text", *shard = NULL;
    lmf_strs inputs = {0};
    double val = 0.05;
    int bytes = 0, threads = 0, quiet = 0, crash_after = 0;
    lmf_opt opts[] = {
        {"--tokenizer", LMF_OPT_STR, &tokdir, "DIR", "tokenizer directory (or tokenizer.json / encoder.json)", LMF_NOLIMIT, NULL},
        {"--bytes", LMF_OPT_FLAG, &bytes, NULL, "no tokenizer: raw bytes (ids 0..255, end-of-text 256)", LMF_NOLIMIT, NULL},
        {"--input", LMF_OPT_STRS, &inputs, "FILE...", "inputs, in this order: text files, *.zst compressed text, *.jsonl / *.jsonl.zst JSON Lines", LMF_NOLIMIT, NULL},
        {"--shard-tokens", LMF_OPT_STR, &shard, "N", "write OUT/train_NNNNNN.bin of N tokens each (100M, 2G, ...), the validation documents as OUT/val/val_NNNNNN.bin, and manifest.json; under mpirun the ranks split the work (same files at any rank count); a rerun continues", LMF_NOLIMIT, NULL},
        {"--test-crash-after", LMF_OPT_INT, &crash_after, "N", "test: end the process abruptly once it has written N files (with --shard-tokens)", 0, 1e9, NULL},
        {"--jsonl-key", LMF_OPT_STR, &jsonl_key, "KEY", "the text field of JSON Lines inputs (default text)", LMF_NOLIMIT, NULL},
        {"--out", LMF_OPT_STR, &out, "DIR", "write train.bin and val.bin here", LMF_NOLIMIT, NULL},
        {"--val-fraction", LMF_OPT_DOUBLE, &val, "F", "last fraction of documents for val.bin, or OUT/val/ with --shard-tokens (default 0.05; 0 = none)", 0, 0.999999, NULL},
        {"--doc-separator", LMF_OPT_STR, &sep, "STRING", "a line holding only STRING ends a document (e.g. % for fortunes); default: one document per file", LMF_NOLIMIT, NULL},
        {"--threads", LMF_OPT_INT, &threads, "N", "encoding threads (default: all cores)", 0, 4096, NULL},
        {"--quiet", LMF_OPT_FLAG, &quiet, NULL, "no progress bar", LMF_NOLIMIT, NULL},
    };
    int r = lmf_args_parse("data prepare", "(--tokenizer DIR | --bytes) --input FILE... --out DIR [options]",
                           opts, (int)(sizeof opts / sizeof opts[0]), argc, argv, NULL, 0, NULL);
    if (r) return r == 1 ? 0 : 2;
    if (inputs.n == 0 || !out) {
        lmf_cli_error("data prepare", "--input and --out are required");
        return 2;
    }
    if (!tokdir == !bytes) {
        lmf_cli_error("data prepare", "give exactly one of --tokenizer DIR and --bytes");
        return 2;
    }
    lmf_tokenizer *tok = NULL;
    if (tokdir && lmf_tok_load(tokdir, &tok) != LMF_OK) {
        lmf_cli_error("data prepare", "%s", lmf_last_error());
        return 1;
    }
    if (shard) {
        lmf_shards_opts so = {tok, inputs.v, inputs.n, out, parse_count(shard), sep, jsonl_key,
                              tokdir ? tokdir : "bytes", threads, crash_after, val};
        int rc = so.shard_tokens ? prepare_shards(&so, quiet, crash_after > 0) : 2;
        if (!so.shard_tokens)
            lmf_cli_error("data prepare", "--shard-tokens '%s': expected a token count such as "
                          "100M, 2G or 50000", shard);
        lmf_tok_free(tok);
        return rc;
    }
    bar b = {!quiet && isatty(2), -1};
    lmf_prepare_opts o = {tok, inputs.v, inputs.n, out, val, sep, threads, show_progress, &b,
                          jsonl_key};
    lmf_prepare_stats st;
    lmf_status s = lmf_data_prepare(&o, &st);
    if (b.tty && b.last_pct >= 0) fputc('\n', stderr);
    lmf_tok_free(tok);
    if (s != LMF_OK) {
        lmf_cli_error("data prepare", "%s", lmf_last_error());
        return s == LMF_ERR_ARG ? 2 : 1;
    }
    double secs = st.seconds > 0 ? st.seconds : 1e-9;
    printf("prepared %llu documents (%.2f MB) into %s: train %llu tokens, val %llu tokens "
           "(%llu documents), uint%d, vocabulary %d\n",
           (unsigned long long)st.docs, (double)st.bytes / 1e6, out,
           (unsigned long long)st.train_tokens, (unsigned long long)st.val_tokens,
           (unsigned long long)st.val_docs, 8 * st.token_bytes, st.vocab_size);
    printf("throughput: %.1f MB/s, %.2f M tokens/s in %.2f s on %d threads\n",
           (double)st.bytes / 1e6 / secs, (double)(st.train_tokens + st.val_tokens) / 1e6 / secs,
           st.seconds, st.threads);
    return 0;
}

/* Run the loader over `steps` global batches without a model (the row draws and epoch changes
 * the trainer makes: lmf_loader_batch_counts and lmf_loader_advance) and print per source. */
static int cmd_inspect(int argc, char **argv) {
    const char *spec = NULL;
    int B = 8, T = 128, steps = 100, world = 1, accum = 1, no_shuffle = 0, json = 0;
    int64_t seed = 1337;
    lmf_opt opts[] = {
        {"--data", LMF_OPT_STR, &spec, "SPEC", "token files or a mixture, as train --data", LMF_NOLIMIT, NULL},
        {"--batch", LMF_OPT_INT, &B, "B", "micro-batch rows (default 8)", 1, 1e6, NULL},
        {"--seq", LMF_OPT_INT, &T, "T", "sequence length (default 128)", 1, 1e7, NULL},
        {"--steps", LMF_OPT_INT, &steps, "N", "optimizer steps (default 100)", 0, 2e9, NULL},
        {"--world", LMF_OPT_INT, &world, "W", "data-parallel ranks (default 1)", 1, 1e6, NULL},
        {"--grad-accum", LMF_OPT_INT, &accum, "K", "micro-batches per rank per step (default 1)", 1, 1e6, NULL},
        {"--seed", LMF_OPT_I64, &seed, "N", "the run's seed (default 1337, as train)", LMF_NOLIMIT, NULL},
        {"--no-shuffle", LMF_OPT_FLAG, &no_shuffle, NULL, "file order, as train --no-shuffle", LMF_NOLIMIT, NULL},
        {"--json", LMF_OPT_FLAG, &json, NULL, "one JSON object", LMF_NOLIMIT, NULL},
    };
    int r = lmf_args_parse("data inspect", "--data SPEC [--batch B --seq T --steps N --world W]",
                           opts, (int)(sizeof opts / sizeof opts[0]), argc, argv, NULL, 0, NULL);
    if (r) return r == 1 ? 0 : 2;
    if (!spec) {
        lmf_cli_error("data inspect", "--data is required");
        return 2;
    }
    lmf_dataset *d = NULL;
    lmf_loader *l = NULL;
    lmf_status s = lmf_dataset_open(spec, &d);
    if (s == LMF_OK) s = lmf_loader_create(d, B, T, !no_shuffle, (uint64_t)seed, &l);
    if (s != LMF_OK) {
        lmf_cli_error("data inspect", "%s", lmf_last_error());
        lmf_dataset_close(d);
        return s == LMF_ERR_ARG ? 2 : 1;
    }
    int n = lmf_dataset_num_sources(d);
    uint64_t drawn[LMF_DATA_MAX_SOURCES] = {0}, c[LMF_DATA_MAX_SOURCES];
    uint64_t micro = (uint64_t)world * (uint64_t)accum, total = 0;
    for (int step = 0; step < steps; step++) {
        lmf_loader_batch_counts(l, micro, c);
        for (int i = 0; i < n; i++) drawn[i] += c[i];
        lmf_loader_advance(l, micro);
    }
    for (int i = 0; i < n; i++) total += drawn[i];
    lmf_loader_state st;
    lmf_loader_get_state(l, &st);
    json_t *srcs = json ? json_array() : NULL;
    if (!json)
        printf("%d steps of %llu rows of %d tokens (%d ranks x %d micro-batches of %d): %llu rows\n"
               "%-24s %6s %14s %14s %12s %8s %9s %8s %10s\n",
               steps, (unsigned long long)micro * (unsigned long long)B, T, world, accum, B,
               (unsigned long long)total, "source", "files", "tokens", "rows avail", "rows drawn",
               "share", "weight", "epochs", "position");
    for (int i = 0; i < n; i++) {
        int first, count;
        lmf_dataset_source_files(d, i, &first, &count);
        double share = total ? (double)drawn[i] / (double)total : 0.0;
        if (json)
            json_array_append_new(srcs, json_pack(
                "{s:s, s:i, s:I, s:I, s:I, s:f, s:f, s:I, s:I}", "name",
                lmf_dataset_source_name(d, i), "files", count, "tokens",
                (json_int_t)lmf_dataset_source_tokens(d, i), "rows",
                (json_int_t)lmf_loader_source_rows(l, i), "rows_drawn", (json_int_t)drawn[i],
                "share", share, "weight", lmf_dataset_source_weight(d, i), "epochs",
                (json_int_t)st.src[i].epoch, "position", (json_int_t)st.src[i].position));
        else
            printf("%-24s %6d %14llu %14llu %12llu %7.2f%% %8.2f%% %8llu %10llu\n",
                   lmf_dataset_source_name(d, i), count,
                   (unsigned long long)lmf_dataset_source_tokens(d, i),
                   (unsigned long long)lmf_loader_source_rows(l, i), (unsigned long long)drawn[i],
                   100 * share, 100 * lmf_dataset_source_weight(d, i),
                   (unsigned long long)st.src[i].epoch, (unsigned long long)st.src[i].position);
    }
    if (json) {
        json_t *j = json_pack("{s:i, s:I, s:o}", "steps", steps, "rows", (json_int_t)total,
                              "sources", srcs);
        char *txt = j ? json_dumps(j, JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(8)) : NULL;
        if (txt) printf("%s\n", txt);
        free(txt);
        json_decref(j);
    }
    lmf_loader_free(l);
    lmf_dataset_close(d);
    return 0;
}

static void usage(FILE *f) {
    fprintf(f, "usage: lmforge data SUBCOMMAND [options]   (SUBCOMMAND --help for details)\n\n"
               "  prepare  text files -> train/val token files (llm.c .bin layout)\n"
               "  inspect  run the loader dry over a data spec: rows and shares per source\n");
}

int lmf_cmd_data(int argc, char **argv) {
    if (argc < 2) {
        lmf_cli_error("data", "missing subcommand: prepare or inspect (see lmforge data --help)");
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "prepare") == 0) return cmd_prepare(argc - 1, argv + 1);
    if (strcmp(argv[1], "inspect") == 0) return cmd_inspect(argc - 1, argv + 1);
    lmf_cli_error("data", "unknown subcommand '%s' (prepare, inspect)", argv[1]);
    return 2;
}

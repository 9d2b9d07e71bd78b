/* Command-line flag parsing shared by every subcommand. */
#include "cli/args.h"
#include "lmforge/comm.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Seconds a rank other than the launcher's rank 0 waits before printing an error that came
 * before the ranks met: long enough for mpirun to end the job once rank 0 has failed the same
 * way (which it does at rank 0's exit), short beside a start-up. */
#define LMF_CLI_ERROR_DEFER_S 2

static int g_ranks_met;

void lmf_cli_ranks_meet(void) { g_ranks_met = 1; }

/* Under a launcher, before the ranks have a communicator, every rank runs the same command
 * line and fails the same way: rank 0 prints at once; the others wait first, and a launcher
 * that ends the job at the first failed rank (mpirun) ends them before they print. A rank that
 * is still alive then (rank 0 did not fail: its command line differed, or the launcher keeps
 * the job, as srun does by default) prints its own line. */
static void defer_unless_first(void) {
    if (g_ranks_met || lmf_comm_launcher_size() <= 1 || lmf_comm_launcher_rank() == 0) return;
    struct timespec ts = {.tv_sec = LMF_CLI_ERROR_DEFER_S, .tv_nsec = 0};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* The line is formatted first and written with one call, so the lines of several ranks that
 * share a terminal or log file do not interleave inside a line. */
void lmf_cli_error(const char *cmd, const char *fmt, ...) {
    char line[2048];
    int n = snprintf(line, sizeof line, "lmforge %s: error: ", cmd);
    va_list ap;
    va_start(ap, fmt);
    if (n >= 0 && (size_t)n < sizeof line) vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
    va_end(ap);
    size_t len = strnlen(line, sizeof line - 2);
    line[len++] = '\n';
    line[len] = '\0';
    defer_unless_first();
    fputs(line, stderr);
    fflush(stderr);
}

static void print_help(const char *cmd, const char *synopsis, const lmf_opt *opts, int n) {
    printf("usage: lmforge %s %s\n\n", cmd, synopsis ? synopsis : "[options]");
    for (int i = 0; i < n; i++) {
        char left[64];
        snprintf(left, sizeof left, "%s%s%s", opts[i].name, opts[i].meta ? " " : "",
                 opts[i].meta ? opts[i].meta : "");
        printf("  %-26s %s\n", left, opts[i].help ? opts[i].help : "");
    }
    printf("  %-26s %s\n", "--help", "show this help");
}

static int parse_number(const char *cmd, const lmf_opt *o, const char *s) {
    char *end = NULL;
    errno = 0;
    double d;
    if (o->type == LMF_OPT_DOUBLE) {
        d = strtod(s, &end);
        if (!isfinite(d)) end = NULL;
    } else {
        long long v = strtoll(s, &end, 10);
        d = (double)v;
        if (o->type == LMF_OPT_INT && (v > 2147483647LL || v < -2147483647LL)) errno = ERANGE;
    }
    if (end == NULL || end == s || *end != '\0' || errno == ERANGE) {
        lmf_cli_error(cmd, "%s expects %s, got '%s'", o->name,
                      o->type == LMF_OPT_DOUBLE ? "a number" : "an integer", s);
        return 2;
    }
    if (o->min <= o->max && (d < o->min || d > o->max)) {
        lmf_cli_error(cmd, "%s must be between %g and %g, got %s", o->name, o->min, o->max, s);
        return 2;
    }
    if (o->type == LMF_OPT_DOUBLE) *(double *)o->dst = d;
    else if (o->type == LMF_OPT_INT) *(int *)o->dst = (int)d;
    else *(int64_t *)o->dst = strtoll(s, NULL, 10);
    return 0;
}

int lmf_args_parse(const char *cmd, const char *synopsis, const lmf_opt *opts, int n_opts,
                   int argc, char **argv, const char **positional, int max_pos, int *n_pos) {
    int np = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            print_help(cmd, synopsis, opts, n_opts);
            return 1;
        }
        if (strncmp(a, "--", 2) != 0 || strcmp(a, "--") == 0) {
            if (strcmp(a, "--") == 0) continue;
            if (positional == NULL || np >= max_pos) {
                lmf_cli_error(cmd, "unexpected argument '%s' (see lmforge %s --help)", a, cmd);
                return 2;
            }
            positional[np++] = a;
            continue;
        }
        /* allow --name=value */
        char name[128];
        const char *eq = strchr(a, '=');
        const char *inl = NULL;
        size_t nl = eq ? (size_t)(eq - a) : strlen(a);
        if (nl >= sizeof name) nl = sizeof name - 1;
        memcpy(name, a, nl);
        name[nl] = '\0';
        if (eq) inl = eq + 1;
        const lmf_opt *o = NULL;
        for (int k = 0; k < n_opts; k++)
            if (strcmp(opts[k].name, name) == 0) { o = &opts[k]; break; }
        if (!o) {
            lmf_cli_error(cmd, "unknown flag '%s' (see lmforge %s --help)", name, cmd);
            return 2;
        }
        if (o->seen) *o->seen = 1;
        if (o->type == LMF_OPT_FLAG) {
            if (inl) { lmf_cli_error(cmd, "%s takes no value", o->name); return 2; }
            *(int *)o->dst = 1;
            continue;
        }
        if (o->type == LMF_OPT_STRS) {
            lmf_strs *s = (lmf_strs *)o->dst;
            int start = i + 1;
            int cnt = 0;
            while (start + cnt < argc && strncmp(argv[start + cnt], "--", 2) != 0) cnt++;
            if (inl) { lmf_cli_error(cmd, "write %s VALUE... with spaces, not '='", o->name); return 2; }
            if (cnt == 0) { lmf_cli_error(cmd, "%s needs at least one value", o->name); return 2; }
            s->v = (const char **)&argv[start];
            s->n = cnt;
            i += cnt;
            continue;
        }
        const char *val = inl;
        if (!val) {
            if (i + 1 >= argc) { lmf_cli_error(cmd, "%s needs a value", o->name); return 2; }
            val = argv[++i];
        }
        if (o->type == LMF_OPT_STR) {
            *(const char **)o->dst = val;
        } else if (parse_number(cmd, o, val)) {
            return 2;
        }
    }
    if (n_pos) *n_pos = np;
    return 0;
}

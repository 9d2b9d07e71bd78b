/* lmforge serve: the dashboard, JSON API and Prometheus metrics of run directories, until
 * interrupted. */
#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/serve_cli.h"
#include "lmforge/fsutil.h"
#include "lmforge/serve.h"

#define MAX_RUNS 64

/* every directory under runs/ holding a metrics.jsonl */
static int default_runs(char paths[][4096], int cap) {
    DIR *d = opendir("runs");
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL && n < cap) {
        if (e->d_name[0] == '.') continue;
        char m[4200];
        snprintf(paths[n], 4096, "runs/%s", e->d_name);
        snprintf(m, sizeof m, "%s/metrics.jsonl", paths[n]);
        if (lmf_file_exists(m)) n++;
    }
    if (d) closedir(d);
    return n;
}

int lmf_cmd_serve(int argc, char **argv) {
    const char *host = "127.0.0.1", *pos[MAX_RUNS];
    int port = LMF_SERVE_DEFAULT_PORT, np = 0;
    lmf_opt opts[] = {
        {"--port", LMF_OPT_INT, &port, "PORT", "TCP port (default 6006; 0 picks a free one)", 0, 65535, NULL},
        {"--host", LMF_OPT_STR, &host, "ADDR", "address to listen on (default 127.0.0.1: this machine only; 0.0.0.0 for every interface)", LMF_NOLIMIT, NULL},
    };
    int r = lmf_args_parse("serve", "[RUN_DIR ...] [--port 6006] [--host 127.0.0.1]", opts, 2,
                           argc, argv, pos, MAX_RUNS, &np);
    if (r) return r == 1 ? 0 : 2;
    static char found[MAX_RUNS][4096];
    if (np == 0) {
        np = default_runs(found, MAX_RUNS);
        for (int i = 0; i < np; i++) pos[i] = found[i];
        if (np == 0) {
            lmf_cli_error("serve", "no run directories given and none under runs/ (give one: "
                          "lmforge serve RUN_DIR)");
            return 2;
        }
    }
    for (int i = 0; i < np; i++) {
        struct stat st;
        if (stat(pos[i], &st) != 0 || !S_ISDIR(st.st_mode)) {
            lmf_cli_error("serve", "%s is not a directory (give run directories, e.g. runs/default)", pos[i]);
            return 2;
        }
    }
    /* the server's threads start with these signals blocked; this thread waits for them */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    lmf_serve_opts o = {host, port, pos, np};
    lmf_server *s = NULL;
    lmf_status st = lmf_serve_start(&o, &s);
    if (st != LMF_OK) {
        lmf_cli_error("serve", "%s", lmf_last_error());
        return st == LMF_ERR_ARG ? 2 : 1;
    }
    int ipv6 = strchr(host, ':') != NULL;
    printf("http://%s%s%s:%d/\n", ipv6 ? "[" : "", host, ipv6 ? "]" : "", lmf_serve_port(s));
    fflush(stdout);
    fprintf(stderr, "lmforge serve: %d run%s; Ctrl-C stops\n", np, np == 1 ? "" : "s");
    int sig = 0;
    sigwait(&set, &sig);
    lmf_serve_stop(s);
    return 0;
}

/* The --serve flag of lmforge train: parsing "--serve [PORT]" and starting the run server. */
#include "cli/serve_cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"

int lmf_cli_serve_flag(const char *cmd, int *argc, char **argv, int *port) {
    *port = -1;
    for (int i = 1; i < *argc; i++) {
        if (strcmp(argv[i], "--serve") != 0) continue;
        int take = 1;
        *port = LMF_SERVE_DEFAULT_PORT;
        if (i + 1 < *argc && argv[i + 1][0] != '-') {
            char *end;
            long p = strtol(argv[i + 1], &end, 10);
            if (*end || end == argv[i + 1] || p < 0 || p > 65535) {
                lmf_cli_error(cmd, "--serve PORT: '%s' is not a port number (0..65535; 0 picks a "
                              "free one)", argv[i + 1]);
                return 2;
            }
            *port = (int)p;
            take = 2;
        }
        memmove(argv + i, argv + i + take, (size_t)(*argc - i - take + 1) * sizeof *argv);
        *argc -= take;
        i--;
    }
    return 0;
}

lmf_server *lmf_cli_serve_start(const char *cmd, const char *run_dir, int port) {
    const char *dirs[1] = {run_dir};
    lmf_serve_opts o = {"127.0.0.1", port, dirs, 1};
    lmf_server *s = NULL;
    if (lmf_serve_start(&o, &s) != LMF_OK) {
        lmf_cli_error(cmd, "%s", lmf_last_error());
        return NULL;
    }
    /* printed even with --quiet: with port 0 it is the only way to know the port */
    fprintf(stderr, "lmforge %s: dashboard at http://127.0.0.1:%d/\n", cmd, lmf_serve_port(s));
    return s;
}

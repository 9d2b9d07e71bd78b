/* The --serve flag of lmforge train: the run server beside a training run. */
#ifndef LMF_CLI_SERVE_CLI_H
#define LMF_CLI_SERVE_CLI_H

#include "lmforge/serve.h"

#define LMF_SERVE_DEFAULT_PORT 6006

/* Take "--serve [PORT]" out of argv (PORT optional: the next argument when it is a number);
 * *port is the port, or -1 when the flag is absent. 0 on success, 2 after printing an error
 * for a bad PORT. */
int lmf_cli_serve_flag(const char *cmd, int *argc, char **argv, int *port);
/* Serve run_dir on 127.0.0.1:port and print its address on stderr; NULL after printing an
 * error. */
lmf_server *lmf_cli_serve_start(const char *cmd, const char *run_dir, int port);

#endif

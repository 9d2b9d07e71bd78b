/* Command-line flag parsing shared by every subcommand: typed, range-checked, with --help. */
#ifndef LMF_CLI_ARGS_H
#define LMF_CLI_ARGS_H

#include <stdint.h>

typedef enum lmf_opt_type {
    LMF_OPT_INT,     /* int *            */
    LMF_OPT_I64,     /* int64_t *        */
    LMF_OPT_DOUBLE,  /* double *         */
    LMF_OPT_STR,     /* const char **    */
    LMF_OPT_FLAG,    /* int * (set to 1) */
    LMF_OPT_STRS     /* lmf_strs *: one or more values up to the next flag */
} lmf_opt_type;

typedef struct lmf_strs {
    const char **v;
    int n;
} lmf_strs;

typedef struct lmf_opt {
    const char *name;     /* "--steps" */
    lmf_opt_type type;
    void *dst;
    const char *meta;     /* "N" */
    const char *help;
    double min, max;      /* numeric range; ignored when min > max */
    int *seen;            /* optional: set to 1 when given */
} lmf_opt;

/* Parse argv[1..argc). Positional arguments (not starting with "--") go to positional (if not
 * NULL; at most max_pos of them). Returns 0 on success, 1 if --help was printed (caller exits
 * 0), 2 on an error (a one-line message already printed to stderr; caller exits 2). */
int lmf_args_parse(const char *cmd, const char *synopsis, const lmf_opt *opts, int n_opts,
                   int argc, char **argv, const char **positional, int max_pos, int *n_pos);

/* Print "lmforge CMD: error: MSG" to stderr. Under a launcher (mpirun, srun) and before
 * lmf_cli_ranks_meet, a rank other than rank 0 waits a moment first, so that a failure every
 * rank shares is printed once (by rank 0) when the launcher ends the job at its exit. */
void lmf_cli_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The ranks are about to make their communicator: from now on each rank's error is its own
 * (or agreed on by all, lmf_comm_agree) and is printed at once. */
void lmf_cli_ranks_meet(void);

#define LMF_NOLIMIT 1.0, 0.0

#endif

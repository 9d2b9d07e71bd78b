/* lmforge command-line entry point: dispatches to one subcommand. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/commands.h"

typedef struct lmf_command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *help;
} lmf_command;

static const lmf_command commands[] = {
    {"train", lmf_cmd_train, "train a GPT (defaults: the mini model on the fortunes corpus)"},
    {"eval", lmf_cmd_eval, "mean loss of a model on a token file"},
    {"sample", lmf_cmd_sample, "generate text from a model"},
    {"plot", lmf_cmd_plot, "draw a run's loss curves as SVG"},
    {"serve", lmf_cmd_serve, "live dashboard, JSON API and Prometheus metrics of runs"},
    {"bench", lmf_cmd_bench, "measure peak FLOP/s, training throughput and MFU"},
    {"convert", lmf_cmd_convert, "convert a model between lmforge, Hugging Face and llm.c files"},
    {"plan", lmf_cmd_plan, "capacity planner: memory, time and cost of training on a cluster"},
    {"tokenizer", lmf_cmd_tokenizer, "train a BPE tokenizer; encode or decode text"},
    {"data", lmf_cmd_data, "prepare train/val token files from text files"},
    /* more commands register here */
};

static void usage(FILE *f) {
    fprintf(f, "usage: lmforge COMMAND [options]   (lmforge COMMAND --help for details)\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].help);
}

/* The process's whole heap on transparent huge pages when the kernel gives them on request
 * only ("[madvise]"): glibc does so for every malloc (the MPI library's temporary buffers, the
 * BLAS's, ours) with the tunable glibc.malloc.hugetlb=1, which it reads at start-up only, so the
 * program starts itself once more with it set. Measured on a 2-core virtual machine, mpirun
 * -np 2 train --model mini --zero 1: 5 thousand page faults per rank instead of 80-190
 * thousand, and 1500-1600 tokens/s instead of 800-1300 (docs/kernels.md). A
 * GLIBC_TUNABLES that already names glibc.malloc.hugetlb is the user's choice and is kept. */
static void start_on_huge_pages(char **argv) {
    char mode[128] = "";
    FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
    if (!f) return;
    size_t n = fread(mode, 1, sizeof mode - 1, f);
    fclose(f);
    mode[n] = 0;
    if (!strstr(mode, "[madvise]")) return; /* "always" needs no advice; "never" takes none */
    const char *old = getenv("GLIBC_TUNABLES");
    if (old && strstr(old, "glibc.malloc.hugetlb")) return;
    char tun[4096];
    int len = snprintf(tun, sizeof tun, "%s%sglibc.malloc.hugetlb=1", old ? old : "",
                       old && *old ? ":" : "");
    if (len < 0 || (size_t)len >= sizeof tun) return;
    if (setenv("GLIBC_TUNABLES", tun, 1) != 0) return;
    execv("/proc/self/exe", argv);
    /* no exec (no /proc): run as started, the variable marks that it was tried */
}

int main(int argc, char **argv) {
    start_on_huge_pages(argv);
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("lmforge 0.1.0\n");
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(argv[1], commands[i].name) == 0) return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "lmforge: error: unknown command '%s' (see lmforge --help)\n", argv[1]);
    return 2;
}

/* lmforge command-line entry point: dispatches to one subcommand. */
#include <stdio.h>
#include <string.h>

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

int main(int argc, char **argv) {
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

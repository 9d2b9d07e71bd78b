/* The subcommands of the lmforge CLI: each takes argc/argv (argv[0] is its name), returns the exit code. */
#ifndef LMF_CLI_COMMANDS_H
#define LMF_CLI_COMMANDS_H

int lmf_cmd_train(int argc, char **argv);
int lmf_cmd_eval(int argc, char **argv);
int lmf_cmd_sample(int argc, char **argv);
int lmf_cmd_data(int argc, char **argv);
int lmf_cmd_tokenizer(int argc, char **argv);
int lmf_cmd_plan(int argc, char **argv);
int lmf_cmd_bench(int argc, char **argv);
int lmf_cmd_plot(int argc, char **argv);
int lmf_cmd_serve(int argc, char **argv);
int lmf_cmd_convert(int argc, char **argv);
int lmf_bench_tokenizer(int argc, char **argv);
int lmf_bench_loader(int argc, char **argv);

#endif

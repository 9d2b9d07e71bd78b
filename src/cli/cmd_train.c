/* lmforge train: parse flags, prepare the default data if needed, run the library's training
 * loop and print its progress. */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/args.h"
#include "cli/cli_util.h"
#include "cli/commands.h"
#include "cli/default_data.h"
#include "cli/serve_cli.h"
#include "lmforge/formats.h"
#include "lmforge/comm.h"
#include "lmforge/fsutil.h"
#include "lmforge/rundir.h"
#include "lmforge/system.h"
#include "lmforge/threads.h"
#include "lmforge/train.h"

static volatile sig_atomic_t g_stop = 0;
static void on_signal(int sig) {
    g_stop = sig;
    /* names this rank and step if it stays stuck in a collective (another rank failed); a
     * graceful stop, whose collectives complete, prints nothing */
    lmf_comm_note_signal_deferred(sig);
}

typedef struct train_cli {
    lmf_train_opts o;
    lmf_saved_opts saved;     /* strings of a resumed run's options */
    const char *model, *config, *schedule, *corpus, *tokenizer, *prompt, *recompute;
    const char *inject_nan;   /* --test-inject-nan */
    const char *pp_schedule;  /* --schedule */
    const char *dtype;        /* --dtype: fp32, the one the CPU kernels compute in */
    int64_t nan_steps[1024];
    int no_shuffle, vocab_size, log_every, bpe_vocab, sample_tokens, quiet, tty, move_aside;
    int doc_mask, eot_id;     /* --doc-mask, --eot-id (-1: not given) */
    double lr, min_lr, wd, b1, b2, eps, clip, spike;
    int64_t seed;
    lmf_trainer *t;           /* set once created: names the data sources in the log */
    int serve_port;           /* --serve [PORT]: taken out of argv first (serve_cli.c) */
} train_cli;

#define NOPT 64
static int build_opts(train_cli *c, lmf_opt *opts) {
    lmf_train_opts *o = &c->o;
    int n = 0;
#define O(name, type, dst, meta, help, ...) opts[n++] = (lmf_opt){name, type, dst, meta, help, __VA_ARGS__, NULL}
    O("--model", LMF_OPT_STR, &c->model, "PRESET", "model preset (tiny, mini, small, gpt2, gpt2-medium, ..., llama-tiny, llama-mini, llama-small, llama3-8b, ...; default mini)", LMF_NOLIMIT);
    O("--config", LMF_OPT_STR, &c->config, "FILE", "model shape from a Hugging Face config.json (GPT2Config or LlamaConfig)", LMF_NOLIMIT);
    O("--init", LMF_OPT_STR, &o->init_dir, "MODEL_DIR", "start from these weights (lmforge or Hugging Face directory, llm.c checkpoint)", LMF_NOLIMIT);
    O("--vocab-size", LMF_OPT_INT, &c->vocab_size, "N", "override the preset's vocabulary size", 1, 1e8);
    O("--data", LMF_OPT_STR, &o->data, "SPEC", "training token files: FILE.bin, DIR, 'GLOB', a comma list, a mixture 'W:FILES,W:FILES' or MIX.json (docs/file-formats.md; default: prepare the fortunes corpus)", LMF_NOLIMIT);
    O("--val-data", LMF_OPT_STR, &o->val_data, "SPEC", "validation token files (as --data; read in file order)", LMF_NOLIMIT);
    O("--corpus", LMF_OPT_STR, &c->corpus, "DIR", "text corpus for the default data (default /usr/share/games/fortunes)", LMF_NOLIMIT);
    O("--tokenizer", LMF_OPT_STR, &c->tokenizer, "DIR", "use this tokenizer for the default data instead of training one", LMF_NOLIMIT);
    O("--bpe-vocab", LMF_OPT_INT, &c->bpe_vocab, "N", "vocabulary size of the tokenizer trained for the default data (default 4096; 0 = bytes)", 0, 1e7);
    O("--out", LMF_OPT_STR, &o->out_dir, "RUN_DIR", "run directory (default runs/default)", LMF_NOLIMIT);
    O("--resume", LMF_OPT_STR, &o->resume_dir, "RUN_DIR", "continue the run in RUN_DIR from its latest checkpoint", LMF_NOLIMIT);
    O("--move-aside", LMF_OPT_FLAG, &c->move_aside, NULL, "when --out holds another run, rename it to RUN_DIR.RUN_ID first", LMF_NOLIMIT);
    O("--steps", LMF_OPT_INT, &o->steps, "N", "optimizer steps (default 600)", 0, 1e9);
    O("--batch", LMF_OPT_INT, &o->batch, "B", "micro-batch size in sequences (default 8)", 1, 1e6);
    O("--seq", LMF_OPT_INT, &o->seq, "T", "sequence length (default 128)", 1, 1e7);
    O("--grad-accum", LMF_OPT_INT, &o->grad_accum, "K", "micro-batches per optimizer step (default 1)", 1, 1e6);
    O("--lr", LMF_OPT_DOUBLE, &c->lr, "X", "peak learning rate (default 1e-3)", 0, 1e3);
    O("--lr-schedule", LMF_OPT_STR, &c->schedule, "cosine|constant", "learning-rate schedule after warmup (default cosine)", LMF_NOLIMIT);
    O("--warmup", LMF_OPT_INT, &o->warmup, "N", "linear warmup steps (default 30)", 0, 1e9);
    O("--min-lr", LMF_OPT_DOUBLE, &c->min_lr, "X", "final learning rate of the cosine decay (default 1e-4)", 0, 1e3);
    O("--weight-decay", LMF_OPT_DOUBLE, &c->wd, "X", "AdamW decoupled weight decay on 2-D weights (default 0.1; 0 = off)", 0, 1e3);
    O("--beta1", LMF_OPT_DOUBLE, &c->b1, "X", "AdamW beta1 (default 0.9)", 0, 0.999999);
    O("--beta2", LMF_OPT_DOUBLE, &c->b2, "X", "AdamW beta2 (default 0.95)", 0, 0.9999999);
    O("--adam-eps", LMF_OPT_DOUBLE, &c->eps, "X", "AdamW epsilon (default 1e-8)", 0, 1);
    O("--grad-clip", LMF_OPT_DOUBLE, &c->clip, "X", "clip the global gradient norm to X (default 1; 0 = off)", 0, 1e9);
    O("--seed", LMF_OPT_I64, &c->seed, "S", "seed for initialisation and data order (default 1337)", 0, 9.2e18);
    O("--no-shuffle", LMF_OPT_FLAG, &c->no_shuffle, NULL, "read batches in file order (each batch the next B*T+1 tokens)", LMF_NOLIMIT);
    O("--eval-every", LMF_OPT_INT, &o->eval_every, "N", "validation loss every N steps (default 100; 0 = off)", 0, 1e9);
    O("--eval-batches", LMF_OPT_INT, &o->eval_batches, "K", "validation batches per evaluation (default 8)", 1, 1e9);
    O("--save-every", LMF_OPT_INT, &o->save_every, "N", "checkpoint every N steps (default 0 = only at the end)", 0, 1e9);
    O("--keep-checkpoints", LMF_OPT_INT, &o->keep_checkpoints, "K", "keep the newest K checkpoints (default 3)", 1, 1e6);
    O("--threads", LMF_OPT_INT, &o->threads, "N", "compute threads per rank (default: OMP_NUM_THREADS, else the cores shared by the ranks on this machine)", 0, 4096);
    O("--kernels", LMF_OPT_STR, &o->kernels, "ref|fast", "kernel backend (default fast)", LMF_NOLIMIT);
    O("--doc-mask", LMF_OPT_FLAG, &c->doc_mask, NULL, "document masking: attention does not cross end-of-text tokens inside a packed sequence (the id: --eot-id, else the run directory's tokenizer)", LMF_NOLIMIT);
    O("--eot-id", LMF_OPT_INT, &c->eot_id, "N", "the data's end-of-text id, for --doc-mask", 0, 1e9);
    O("--recompute", LMF_OPT_STR, &c->recompute, "none|selective|full", "recompute activations in the backward to save memory (default none)", LMF_NOLIMIT);
    O("--zero", LMF_OPT_INT, &o->zero_stage, "0|1|2|3", "ZeRO stage over data-parallel ranks (default 0)", 0, 3);
    O("--tp", LMF_OPT_INT, &o->tp, "T", "tensor parallelism: split every layer over groups of T neighbouring ranks (default 1)", 1, 4096);
    O("--pp", LMF_OPT_INT, &o->pp, "P", "pipeline parallelism: split the layers into P stages, the outermost groups of ranks (ranks = P x data-parallel x --tp; default 1)", 1, 1024);
    O("--schedule", LMF_OPT_STR, &c->pp_schedule, "gpipe|1f1b|interleaved|zb", "pipeline schedule of the micro-batches (the gradient-accumulation micro-steps; default 1f1b)", LMF_NOLIMIT);
    O("--virtual-stages", LMF_OPT_INT, &o->virtual_stages, "V", "model chunks per pipeline stage (interleaved schedule; default 1)", 1, 64);
    O("--stage-layers", LMF_OPT_STR, &o->stage_layers, "A,B,...", "layers of each pipeline stage (default: balanced)", LMF_NOLIMIT);
    O("--dtype", LMF_OPT_STR, &c->dtype, "fp32", "number format of weights and arithmetic: fp32, the CPU kernels' (lmforge plan names bf16, fp16 and fp8 for GPU devices)", LMF_NOLIMIT);
    O("--sp", LMF_OPT_FLAG, &o->sequence_parallel, NULL, "sequence parallelism: also split the norms and the residual stream over the --tp group", LMF_NOLIMIT);
    O("--global-batch", LMF_OPT_I64, &o->global_batch, "TOKENS", "tokens per optimizer step over all ranks (sets the accumulation steps)", 1, 9.2e18);
    O("--comm", LMF_OPT_STR, &o->comm, "auto|single|mpi", "communication backend (default auto: MPI under mpirun/srun)", LMF_NOLIMIT);
    O("--comm-timeout", LMF_OPT_DOUBLE, &o->comm_timeout, "SECONDS", "abort every rank when a collective stalls this long (default 300)", 0.1, 1e7);
    O("--log-every", LMF_OPT_INT, &c->log_every, "N", "log line every N steps when not on a terminal (default 10)", 1, 1e9);
    O("--sample-tokens", LMF_OPT_INT, &c->sample_tokens, "N", "tokens to sample at the end (default 200; 0 = none)", 0, 1e6);
    O("--prompt", LMF_OPT_STR, &c->prompt, "TEXT", "prompt for the final sample", LMF_NOLIMIT);
    O("--sample-every", LMF_OPT_INT, &o->sample_every, "N", "every N steps, write a sample of the model's text (64 tokens) to metrics.jsonl (default 0 = off)", 0, 1e9);
    O("--sample-prompt", LMF_OPT_STR, &o->sample_prompt, "TEXT", "prompt of the samples --sample-every writes (default none)", LMF_NOLIMIT);
    O("--profile-every", LMF_OPT_INT, &o->profile_every, "N", "every N steps, write the step's time by phase and each rank's peak memory to metrics.jsonl (default 10; 0 = off)", 0, 1e9);
    O("--max-bad-steps", LMF_OPT_INT, &o->max_bad_steps, "K", "roll back to the latest checkpoint after K steps in a row with a NaN/Inf loss or gradient norm, skipping their data (default 3; 0 = stop at the first)", 0, 1e6);
    O("--spike-factor", LMF_OPT_DOUBLE, &c->spike, "F", "log a loss above F times its running mean (default 2; 0 = off)", 0, 1e6);
    O("--stop-after", LMF_OPT_INT, &o->stop_after, "N", "stop with a checkpoint after step N, as a pre-emption would", 1, 1e9);
    O("--serve", LMF_OPT_INT, &c->serve_port, "[PORT]", "serve the run's dashboard on 127.0.0.1:PORT while it trains (default 6006; rank 0)", 0, 65535);
    O("--quiet", LMF_OPT_FLAG, &c->quiet, NULL, "no progress output", LMF_NOLIMIT);
    O("--test-inject-nan", LMF_OPT_STR, &c->inject_nan, "STEPS", "(tests) make the gradients of these 0-based steps NaN, e.g. 5,6,7", LMF_NOLIMIT);
    O("--test-ckpt-write-delay", LMF_OPT_INT, &o->test.ckpt_write_delay_ms, "MS", "(tests) every checkpoint shard write sleeps MS half way", 0, 1e6);
    O("--test-ckpt-fail-rank", LMF_OPT_INT, &o->test.ckpt_fail_rank, "R", "(tests) rank R's checkpoint shard writes fail half way", -1, 1e6);
#undef O
    return n;
}

static void set_floats_from(train_cli *c) {
    c->lr = c->o.lr; c->min_lr = c->o.min_lr; c->wd = c->o.weight_decay; c->b1 = c->o.beta1;
    c->b2 = c->o.beta2; c->eps = c->o.adam_eps; c->clip = c->o.grad_clip; c->seed = (int64_t)c->o.seed;
    c->no_shuffle = !c->o.shuffle;
    c->spike = c->o.spike_factor;
    c->schedule = c->o.lr_schedule == LMF_LR_CONSTANT ? "constant" : "cosine";
}

/* "5,6,7" into steps[cap]; 0 on success */
static int parse_steps(const char *text, int64_t *steps, int cap, int *n) {
    *n = 0;
    for (const char *p = text; *p;) {
        char *end;
        errno = 0;
        long long x = strtoll(p, &end, 10);
        if (end == p || errno != 0 || x < 0 || x > 2000000000LL || (*end != ',' && *end) || *n >= cap)
            return -1;
        steps[(*n)++] = x;
        p = *end ? end + 1 : end;
    }
    return *n > 0 ? 0 : -1;
}

static int finish_opts(train_cli *c) {
    lmf_train_opts *o = &c->o;
    o->lr = (float)c->lr; o->min_lr = (float)c->min_lr; o->weight_decay = (float)c->wd;
    o->beta1 = (float)c->b1; o->beta2 = (float)c->b2; o->adam_eps = (float)c->eps;
    o->grad_clip = (float)c->clip; o->seed = (uint64_t)c->seed; o->shuffle = !c->no_shuffle;
    o->spike_factor = (float)c->spike;
    if (strcmp(c->schedule, "cosine") == 0) o->lr_schedule = LMF_LR_COSINE;
    else if (strcmp(c->schedule, "constant") == 0) o->lr_schedule = LMF_LR_CONSTANT;
    else { lmf_cli_error("train", "--lr-schedule must be cosine or constant, got '%s'", c->schedule); return 2; }
    if (c->dtype && strcmp(c->dtype, "fp32") != 0) {
        lmf_cli_error("train", "--dtype %s: lmforge train computes in fp32 (its CPU kernels); "
                      "give --dtype fp32 or leave it out", c->dtype);
        return 2;
    }
    if (c->pp_schedule && lmf_pp_schedule_parse(c->pp_schedule, &o->schedule) != LMF_OK) {
        lmf_cli_error("train", "--schedule: %s", lmf_last_error());
        return 2;
    }
    if (c->recompute) {
        if (lmf_recompute_parse(c->recompute, &o->recompute) != LMF_OK) {
            lmf_cli_error("train", "--recompute: %s", lmf_last_error());
            return 2;
        }
    }
    if (c->model && c->config) { lmf_cli_error("train", "give --model or --config, not both"); return 2; }
    if (c->config) {
        if (lmf_config_read(c->config, &o->cfg) != LMF_OK) { lmf_cli_error("train", "%s", lmf_last_error()); return 2; }
    } else if (c->model && lmf_config_preset(c->model, &o->cfg) != LMF_OK) {
        lmf_cli_error("train", "%s", lmf_last_error());
        return 2;
    }
    if (c->vocab_size > 0) o->cfg.vocab_size = c->vocab_size;
    if (!lmf_kernels_by_name(o->kernels)) { lmf_cli_error("train", "--kernels must be ref or fast, got '%s'", o->kernels); return 2; }
    if (o->val_data && !o->data) { lmf_cli_error("train", "--val-data needs --data too"); return 2; }
    if (c->inject_nan && parse_steps(c->inject_nan, c->nan_steps, 1024, &o->test.n_nan_steps) != 0) {
        lmf_cli_error("train", "--test-inject-nan '%s': expected step numbers separated by commas, "
                      "e.g. 5,6,7", c->inject_nan);
        return 2;
    }
    o->test.nan_steps = c->nan_steps;
    return 0;
}

/* ---- what the loop reports ---- */

static void on_step(void *ctx, const lmf_step_stats *st, int done, int total, double eta) {
    train_cli *c = ctx;
    if (c->quiet) return;
    int last = done == total;
    char etab[32];
    lmf_cli_format_duration(eta, etab, sizeof etab);
    if (c->tty) {
        fprintf(stderr, "\r\033[Kstep %d/%d | loss %.4f | lr %.2e | %.0f tok/s | MFU %.1f%% | ETA %s",
                st->step + 1, total, (double)st->loss, (double)st->lr, st->tokens_per_s,
                100 * st->mfu, etab);
        if (last) fputc('\n', stderr);
        fflush(stderr);
    } else if ((st->step + 1) % c->log_every == 0 || last || st->step == 0) {
        char tp[48] = ""; /* tensor parallelism: the step's time in its collectives */
        if (st->tp_comm_s > 0) snprintf(tp, sizeof tp, " tp_comm_ms %.1f", 1e3 * st->tp_comm_s);
        if (st->pp_bubble > 0) /* pipeline: rank 0's stage idle in the step */
            snprintf(tp + strlen(tp), sizeof tp - strlen(tp), " bubble %.1f%%", 100 * st->pp_bubble);
        fprintf(stderr, "step %d/%d loss %.4f lr %.3e grad_norm %.3f tok/s %.0f mfu %.1f%%%s eta %s\n",
                st->step + 1, total, (double)st->loss, (double)st->lr, (double)st->grad_norm,
                st->tokens_per_s, 100 * st->mfu, tp, etab);
    }
    const char *cr = c->tty ? "\r\033[K" : "";
    if (st->skipped) { /* numeric faults: docs/checkpoints.md */
        int nan = isnan(st->loss) || isnan(st->grad_norm);
        fprintf(stderr, "%slmforge train: step %d: %s loss or gradient norm; update skipped (%d in a row)\n",
                cr, st->step + 1, nan ? "NaN" : "Inf", st->bad_in_row);
    }
    if (st->spike)
        fprintf(stderr, "%slmforge train: step %d: loss spike %.4f (running mean %.4f)\n", cr,
                st->step + 1, (double)st->loss, (double)st->loss_mean);
    if (st->data_new_epochs && c->t) {
        const lmf_dataset *d = lmf_trainer_data(c->t);
        lmf_loader_state ls;
        lmf_trainer_loader_state(c->t, &ls);
        for (int i = 0; i < lmf_dataset_num_sources(d) && i < 64; i++)
            if (st->data_new_epochs >> i & 1)
                fprintf(stderr, "%slmforge train: step %d: data source %s used up; its epoch %llu "
                        "begins\n", cr, st->step + 1, lmf_dataset_source_name(d, i),
                        (unsigned long long)ls.src[i].epoch + 1);
    }
    if (st->rolled_back_to >= 0)
        fprintf(stderr, "%slmforge train: rolled back to the checkpoint of step %d after %d bad steps; "
                "their data is skipped\n", cr, st->rolled_back_to, st->bad_in_row);
}

static void on_eval(void *ctx, int done, float val_loss) {
    train_cli *c = ctx;
    if (!c->quiet) fprintf(stderr, "%sstep %d: val_loss %.4f\n", c->tty ? "\r\033[K" : "", done, (double)val_loss);
}

/* "SIGINT", "SIGTERM", ... for a stop's signal number */
static void signal_name(int sig, char *buf, size_t cap) {
    const char *n = sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : sig == SIGHUP ? "SIGHUP" : NULL;
    if (n) snprintf(buf, cap, "%s", n);
    else snprintf(buf, cap, "signal %d", sig);
}

static int stop_requested(void *ctx) { (void)ctx; return (int)g_stop; }

static void on_note(void *ctx, const char *msg) {
    train_cli *c = ctx;
    if (!c->quiet) fprintf(stderr, "lmforge train: note: %s\n", msg);
}

static int fail_rt(const char *what) {
    lmf_cli_error("train", "%s%s", what, lmf_last_error());
    return 1;
}

/* A start-up failure the ranks agreed on (lmf_comm_agree: one rank's error, or options that
 * differ) is the same message on every rank: rank 0 prints it, the others exit non-zero
 * without a word, a moment later, so that a launcher that ends the job at the first failed
 * rank (mpirun) does not stop rank 0 before its line is out. */
static int fail_start(void) {
    if (!lmf_comm_failure_agreed() || lmf_comm_launcher_rank() == 0) return fail_rt("");
    usleep(300 * 1000);
    return 1;
}

/* Rank 0 failed (its message printed) after the trainer was made: the other ranks are on
 * their way into the first step's collectives, which rank 0 will never reach, and its own
 * MPI_Finalize would wait for them; end the job now (returns with a single rank). */
static int stop_job(lmf_trainer *t) {
    lmf_trainer_abort(t, NULL);
    lmf_trainer_free(t);
    return 1;
}

/* The tokenizer of a run: the run directory's, or (a run that starts from another model's
 * weights) the --init model's. NULL when neither has one. */
static lmf_status run_tokenizer(const char *out_dir, const char *init_dir, lmf_tokenizer **tok) {
    LMF_TRY(lmf_model_find_tokenizer(out_dir, tok));
    if (!*tok && init_dir) LMF_TRY(lmf_model_find_tokenizer(init_dir, tok));
    return LMF_OK;
}

/* A run from --init keeps that model's tokenizer: written into the run directory when it has
 * none, so the final sample, `convert` and later runs find it there. */
static void keep_init_tokenizer(const train_cli *c, const char *out_dir, const char *init_dir) {
    lmf_tokenizer *tok = NULL;
    if (lmf_model_find_tokenizer(out_dir, &tok) == LMF_OK && tok) {
        lmf_tok_free(tok);
        return;
    }
    char dir[4096];
    lmf_status s = lmf_model_find_tokenizer(init_dir, &tok);
    if (s == LMF_OK && tok && (s = lmf_path_join(dir, sizeof dir, out_dir, "tokenizer")) == LMF_OK)
        s = lmf_tok_save(tok, dir);
    if (s != LMF_OK && !c->quiet)
        fprintf(stderr, "lmforge train: note: the tokenizer of %s not kept: %s\n", init_dir,
                lmf_last_error());
    lmf_tok_free(tok);
}

static void print_start(const train_cli *c, lmf_trainer *t) {
    const lmf_train_opts *o = lmf_trainer_opts(t);
    int start = lmf_trainer_next_step(t);
    char resumed[64] = "";
    if (o->resume_dir) snprintf(resumed, sizeof resumed, " (resumed from the checkpoint of step %d)", start);
    char family[64] = ""; /* the Llama family says so, with its key/value heads */
    if (o->cfg.family == LMF_FAMILY_LLAMA)
        snprintf(family, sizeof family, "llama, %d key/value heads, feed-forward %d, ",
                 o->cfg.n_kv_head, o->cfg.ffn_hidden);
    lmf_rank_layout rl;
    lmf_trainer_ranks(t, &rl);
    /* the micro-batches of a step come from the data-parallel replicas: a tensor-parallel
     * group or a pipeline reads one stream between its ranks */
    fprintf(stderr, "lmforge train: %s%d layers, %d heads, %d wide, vocab %d: %.2fM parameters; "
            "batch %d x %d, %d micro-steps x %d data-parallel replica%s = %lld tokens/step; %d rank%s, "
            "ZeRO-%d; %d threads/rank, %s kernels; MFU against a peak of %.1f GFLOP/s%s\n",
            family, o->cfg.n_layer, o->cfg.n_head, o->cfg.n_embd, o->cfg.vocab_size,
            (double)lmf_trainer_num_params(t) / 1e6, o->batch, o->seq, lmf_trainer_grad_accum(t),
            rl.dp, rl.dp == 1 ? "" : "s", (long long)o->global_batch, lmf_trainer_world(t),
            lmf_trainer_world(t) == 1 ? "" : "s", o->zero_stage, lmf_threads_get(), o->kernels,
            lmf_trainer_peak_flops(t) / 1e9, resumed);
    if (rl.tp > 1 && rl.pp == 1) {
        fprintf(stderr, "layout: %d ranks = %d data-parallel x %d tensor-parallel%s; "
                "tensor-parallel groups are neighbouring ranks:", lmf_trainer_world(t), rl.dp,
                rl.tp, o->sequence_parallel ? " (sequence parallel)" : "");
        int w = lmf_trainer_world(t);
        for (int r = 0; r < w && r < 32; r++)
            fprintf(stderr, "%s rank %d: tp %d/%d, dp %d/%d", r ? "," : "", r, r % rl.tp, rl.tp,
                    r / rl.tp, rl.dp);
        fprintf(stderr, "%s\n", w > 32 ? ", ..." : "");
    }
    if (o->doc_mask_eot >= 0)
        fprintf(stderr, "document masking: attention stays inside documents ended by token %d\n",
                o->doc_mask_eot);
    if (rl.pp > 1) { /* which ranks hold which layers */
        int V = lmf_trainer_virtual_stages(t);
        char chunks[48] = "";
        if (V > 1) snprintf(chunks, sizeof chunks, " with %d model chunks per stage", V);
        fprintf(stderr, "layout: %d ranks = %d pipeline stages x %d data-parallel x %d "
                "tensor-parallel%s (stages outermost%s), schedule %s%s:", lmf_trainer_world(t),
                rl.pp, rl.dp, rl.tp, rl.tp > 1 && o->sequence_parallel ? " (sequence parallel)" : "",
                rl.tp > 1 ? ", tensor-parallel groups neighbouring ranks" : "",
                lmf_pp_schedule_name(o->schedule), chunks);
        int per = rl.dp * rl.tp;
        for (int s = 0; s < rl.pp && s < 64; s++) {
            fprintf(stderr, "%s stage %d: ranks %d-%d, layers ", s ? ";" : "", s, s * per,
                    s * per + per - 1);
            for (int k = 0; k < V; k++) {
                int l0, n;
                lmf_trainer_stage_layers(t, s, k, &l0, &n);
                fprintf(stderr, "%s%d-%d", k ? " and " : "", l0, l0 + n - 1);
            }
            fprintf(stderr, "%s%s", s == 0 ? " and the embeddings" : "",
                    s == rl.pp - 1 ? ", the final norm and the classifier" : "");
        }
        fprintf(stderr, "%s\n", rl.pp > 64 ? "; ..." : "");
    }
    lmf_peak pk;
    char peak[1400];
    lmf_trainer_peak(t, &pk);
    lmf_peak_describe(&pk, peak, sizeof peak);
    fprintf(stderr, "peak per rank: %s\n", peak);
    lmf_train_memory mem;
    if (rl.pp > 1) { /* the stages hold different layers, embeddings and activation slots */
        fprintf(stderr, "memory per rank, by pipeline stage:");
        for (int s = 0; s < rl.pp && s < 64; s++) {
            lmf_trainer_stage_memory(t, s, &mem);
            fprintf(stderr, "%s stage %d: weights %.2f MB, gradients %.2f MB, optimizer %.2f MB, "
                    "activations %.2f MB, buffers %.2f MB", s ? ";" : "", s, mem.weights / 1e6,
                    mem.grads / 1e6, mem.optim / 1e6, mem.activations / 1e6, mem.buffers / 1e6);
        }
        fprintf(stderr, "%s\n", rl.pp > 64 ? "; ..." : "");
        return;
    }
    lmf_trainer_memory(t, &mem);
    fprintf(stderr, "memory per rank: weights %.1f MB, gradients %.1f MB, optimizer %.1f MB, "
            "activations %.1f MB, buffers %.1f MB\n", mem.weights / 1e6, mem.grads / 1e6,
            mem.optim / 1e6, mem.activations / 1e6, mem.buffers / 1e6);
}

static void describe_model(const lmf_gpt_config *g, char *buf, size_t cap) {
    snprintf(buf, cap, "%d layers, %d heads, %d wide, %d positions, vocab %d", g->n_layer,
             g->n_head, g->n_embd, g->n_positions, g->vocab_size);
}

/* A resumed run keeps its checkpoint's model and continues past its step: flags that
 * contradict them are refused (0: go on). */
static int check_resume(train_cli *c) {
    const lmf_train_opts *o = &c->o;
    lmf_ckpt_info ck;
    if (lmf_ckpt_find_latest(o->resume_dir, &ck) != LMF_OK) {
        lmf_cli_error("train", "%s", lmf_last_error());
        return 2;
    }
    if (o->init_dir) {
        lmf_cli_error("train", "--init %s contradicts --resume: the weights come from the "
                      "checkpoint %s; drop --init", o->init_dir, ck.dir);
        return 2;
    }
    if (c->model || c->config || c->vocab_size > 0) {
        lmf_gpt_config saved;
        if (lmf_ckpt_model_config(&ck, &saved) != LMF_OK) {
            lmf_cli_error("train", "%s", lmf_last_error());
            return 2;
        }
        const lmf_gpt_config *g = &o->cfg;
        int shape = (c->model || c->config) &&
                    (g->n_layer != saved.n_layer || g->n_head != saved.n_head ||
                     g->n_embd != saved.n_embd || g->n_positions != saved.n_positions);
        int vocab = (c->config || c->vocab_size > 0) && g->vocab_size != saved.vocab_size;
        if (shape || vocab) {
            char flag[4200], a[200], b[200];
            if (c->config) snprintf(flag, sizeof flag, "--config %s", c->config);
            else if (c->model) snprintf(flag, sizeof flag, "--model %s", c->model);
            else snprintf(flag, sizeof flag, "--vocab-size %d", c->vocab_size);
            describe_model(g, a, sizeof a);
            describe_model(&saved, b, sizeof b);
            lmf_cli_error("train", "%s (%s) contradicts the model of the checkpoint %s (%s): drop "
                          "it to resume, or start a new run with another --out", flag, a, ck.dir,
                          b);
            return 2;
        }
    }
    if (o->steps < ck.step) {
        lmf_cli_error("train", "%s: the checkpoint is at step %d, past --steps %d: nothing to "
                      "train; give --steps above %d to train further", o->resume_dir, ck.step,
                      o->steps, ck.step);
        return 2;
    }
    if (o->steps == ck.step && !c->quiet)
        fprintf(stderr, "lmforge train: %s is complete at step %d (--steps %d): nothing to train; "
                "give --steps above %d to continue\n", o->resume_dir, ck.step, o->steps, ck.step);
    return 0;
}

/* --doc-mask's end-of-text id into the options: --eot-id, else that of the run directory's
 * tokenizer (the default data's); a resumed run keeps its checkpoint's unless --doc-mask is
 * given again (0: go on) */
static int doc_mask_eot(train_cli *c) {
    if (c->eot_id >= 0 && !c->doc_mask) {
        lmf_cli_error("train", "--eot-id is the end-of-text id of --doc-mask: give --doc-mask too, "
                      "or drop --eot-id");
        return 2;
    }
    if (!c->doc_mask) return 0;
    if (c->eot_id >= 0) {
        c->o.doc_mask_eot = c->eot_id;
        return 0;
    }
    lmf_tokenizer *tok = NULL;
    if (lmf_model_find_tokenizer(c->o.out_dir, &tok) != LMF_OK) return fail_rt("");
    c->o.doc_mask_eot = tok ? lmf_tok_eot(tok) : -1;
    lmf_tok_free(tok);
    if (c->o.doc_mask_eot < 0) {
        lmf_cli_error("train", "--doc-mask needs the data's end-of-text id, and %s has no "
                      "tokenizer that names one: give --eot-id N (lmforge tokenizer info --tokenizer "
                      "DIR prints it as end_of_text; 256 for data prepared with --bytes)",
                      c->o.out_dir);
        return 2;
    }
    return 0;
}

/* the training itself, in the run directory taken for it */
static int train(train_cli *c, lmf_run_dir *dir) {
    char train_path[4096], val_path[4096];
    if (!c->o.data && lmf_comm_launcher_size() > 1) {
        lmf_cli_error("train", "with several ranks, give --data (make the default data once "
                      "with a single-process run, e.g. lmforge train --steps 1, or with lmforge "
                      "data prepare)");
        return 2;
    }
    if (!c->o.data) {
        lmf_default_data dd = {c->corpus, c->tokenizer, c->bpe_vocab, c->o.out_dir, c->quiet};
        int vocab = 0;
        if (lmf_cli_default_data(&dd, train_path, val_path, sizeof train_path, &vocab) != LMF_OK)
            return fail_rt("");
        c->o.data = train_path;
        c->o.val_data = val_path;
        if (!c->o.init_dir && c->vocab_size == 0) c->o.cfg.vocab_size = vocab;
    }

    /* a text prompt for the final sample needs the run directory's tokenizer: refused now,
     * not after the training (rank 0 samples) */
    if (lmf_comm_launcher_rank() == 0 && c->sample_tokens > 0 && c->prompt &&
        c->prompt[strspn(c->prompt, "0123456789 \t\n")] != '\0') {
        lmf_tokenizer *tok = NULL;
        if (run_tokenizer(c->o.out_dir, c->o.resume_dir ? NULL : c->o.init_dir, &tok) != LMF_OK)
            return fail_rt("");
        int none = tok == NULL;
        lmf_tok_free(tok);
        if (none) {
            lmf_cli_error("train", "--prompt is text but %s has no tokenizer to encode it (the "
                          "run trains on --data); give the prompt as token ids separated by "
                          "spaces, or --sample-tokens 0", c->o.out_dir);
            return 2;
        }
    }

    if (doc_mask_eot(c) != 0) return 2;
    lmf_trainer *t = NULL;
    lmf_cli_ranks_meet();
    if (lmf_trainer_create(&c->o, &t) != LMF_OK) return fail_start();
    const lmf_train_opts *o = lmf_trainer_opts(t);
    int rank = lmf_trainer_rank(t);
    if (dir && lmf_run_dir_adopt(dir, lmf_trainer_run_id(t)) != LMF_OK) {
        fail_rt("");
        return stop_job(t);
    }
    if (rank != 0) c->quiet = 1;
    if (rank == 0 && o->init_dir && !o->resume_dir) keep_init_tokenizer(c, o->out_dir, o->init_dir);
    c->t = t;
    c->tty = isatty(2);
    if (!c->quiet) print_start(c, t);
    lmf_server *srv = NULL; /* reads the run directory in its own threads; the steps never wait */
    if (rank == 0 && c->serve_port >= 0 &&
        !(srv = lmf_cli_serve_start("train", o->out_dir, c->serve_port)))
        return stop_job(t);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGXFSZ, SIG_IGN); /* a file size limit fails the write with EFBIG instead */
    lmf_train_callbacks cb = {on_step, on_eval, stop_requested, on_note, c};
    lmf_run_result res;
    int rc = 0;
    if (lmf_trainer_run(t, &cb, &res) != LMF_OK) {
        /* the other ranks may be waiting in a collective this rank will never reach: stop the
         * job now, with this rank's message (returns with a single rank) */
        char msg[1200];
        snprintf(msg, sizeof msg, "%s", lmf_last_error());
        lmf_trainer_abort(t, msg);
        rc = fail_rt("");
    }
    if (rc == 0 && res.end != LMF_RUN_COMPLETED && !c->quiet) {
        char why[32];
        if (res.end == LMF_RUN_STOPPED_AFTER) snprintf(why, sizeof why, "--stop-after");
        else signal_name(res.stop_value, why, sizeof why);
        fprintf(stderr, "%slmforge train: stopped by %s after step %d; checkpoint saved "
                "in %s/checkpoints (resume with --resume %s)\n", c->tty ? "\n" : "", why,
                res.steps_done, o->out_dir, o->out_dir);
    }
    if (rank != 0) {
        lmf_trainer_free(t);
        return rc;
    }
    if (rc == 0 && res.end == LMF_RUN_COMPLETED && c->sample_tokens > 0) {
        lmf_tokenizer *tok = NULL;
        if (lmf_model_find_tokenizer(o->out_dir, &tok) != LMF_OK) tok = NULL;
        if (!c->quiet) fprintf(stderr, "sample:\n");
        int made = 0;
        if (lmf_cli_generate(lmf_trainer_model(t), tok, c->prompt, c->sample_tokens, 0.8f, 40,
                             1.0f, o->seed, stdout, &made) != LMF_OK)
            rc = fail_rt("sample: ");
        lmf_tok_free(tok);
    }
    if (!c->quiet)
        fprintf(stderr, "peak resident memory: %.1f MB\n", (double)lmf_peak_rss_bytes() / 1e6);
    if (rc == 0 && !c->quiet)
        fprintf(stderr, "lmforge train: run directory %s (model.safetensors, config.json, "
                "metrics.jsonl, loss.svg, checkpoints/)\n", o->out_dir);
    lmf_serve_stop(srv);
    lmf_trainer_free(t);
    return rc;
}

int lmf_cmd_train(int argc, char **argv) {
    train_cli c; /* the run's options point into it until the end */
    memset(&c, 0, sizeof c);
    lmf_train_opts_default(&c.o);
    c.log_every = 10;
    c.bpe_vocab = 4096;
    c.sample_tokens = 200;
    c.eot_id = -1;
    c.o.profile_every = 10;
    set_floats_from(&c);
    if (lmf_cli_serve_flag("train", &argc, argv, &c.serve_port) != 0) return 2;
    lmf_opt opts[NOPT];
    int n = build_opts(&c, opts);
    static const char *const layout_flags[] = {"--tp", "--sp", "--pp", "--schedule",
                                               "--virtual-stages", "--stage-layers"};
    int layout_given = 0; /* any of them on the command line */
    for (int k = 0; k < n; k++)
        for (size_t f = 0; f < sizeof layout_flags / sizeof layout_flags[0]; f++)
            if (strcmp(opts[k].name, layout_flags[f]) == 0) opts[k].seen = &layout_given;
    /* a resumed run starts from its saved options; flags given now override them */
    for (int i = 1; i + 1 < argc; i++) {
        if (strcmp(argv[i], "--resume") == 0) {
            if (lmf_train_opts_from_run(argv[i + 1], &c.o, &c.saved) != LMF_OK) {
                lmf_cli_error("train", "%s", lmf_last_error());
                return 2;
            }
            c.o.out_dir = argv[i + 1];
            set_floats_from(&c);
        }
    }
    int seq = c.o.seq;
    c.o.seq = 0; /* 0 after parsing: --seq not given */
    int r = lmf_args_parse("train", "[options]", opts, n, argc, argv, NULL, 0, NULL);
    if (r) return r == 1 ? 0 : 2;
    /* a resume keeps the checkpoint's parallel layout, as a whole, unless one is given */
    if (c.o.resume_dir && !layout_given) lmf_train_opts_restore_layout(&c.o, &c.saved);
    if ((r = finish_opts(&c)) != 0) return r;
    if (c.o.seq == 0) /* the default fits the model: tiny's context is shorter */
        c.o.seq = c.o.resume_dir || c.o.init_dir || seq <= c.o.cfg.n_positions
                      ? seq : c.o.cfg.n_positions;
    if (c.o.resume_dir && strcmp(c.o.resume_dir, c.o.out_dir) != 0) {
        lmf_cli_error("train", "--resume continues in its own run directory; drop --out");
        return 2;
    }
    if (c.o.resume_dir && c.move_aside) {
        lmf_cli_error("train", "--move-aside starts a new run; it cannot go with --resume");
        return 2;
    }
    /* checked before anything is written */
    if (!c.o.resume_dir && !c.o.init_dir && c.o.seq > c.o.cfg.n_positions) {
        lmf_cli_error("train", "--seq %d exceeds the model's n_positions %d; give --seq %d or "
                      "less", c.o.seq, c.o.cfg.n_positions, c.o.cfg.n_positions);
        return 2;
    }
    if (c.o.resume_dir && (r = check_resume(&c)) != 0) return r;
    lmf_train_set_threads(&c.o);

    /* one training per run directory, rank 0 holding it (docs/checkpoints.md) */
    lmf_run_dir *dir = NULL;
    if (lmf_comm_launcher_rank() == 0) {
        lmf_run_dir_mode mode = c.o.resume_dir ? LMF_RUN_DIR_RESUME
                                : c.move_aside ? LMF_RUN_DIR_MOVE_ASIDE : LMF_RUN_DIR_NEW;
        if (lmf_run_dir_open(c.o.out_dir, mode, &dir) != LMF_OK) {
            lmf_cli_error("train", "%s", lmf_last_error());
            return 2;
        }
        if (lmf_run_dir_moved_to(dir)[0] && !c.quiet)
            fprintf(stderr, "lmforge train: the run that was in %s is now in %s\n", c.o.out_dir,
                    lmf_run_dir_moved_to(dir));
        c.o.run_id = lmf_run_dir_id(dir);
    }
    r = train(&c, dir);
    lmf_run_dir_close(dir, r != 0);
    return r;
}

/* lmforge convert: move a model between lmforge, Hugging Face GPT-2 and llm.c files, or export
 * it as an ONNX graph. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "lmforge/formats.h"
#include "lmforge/fsutil.h"
#include "lmforge/onnx.h"

static int fail_rt(void) {
    lmf_cli_error("convert", "%s", lmf_last_error());
    return 1;
}

/* create the directory that will hold the file `path` */
static lmf_status make_parent(const char *path) {
    char dir[4096];
    const char *slash = strrchr(path, '/');
    if (!slash || slash == path) return LMF_OK;
    snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    return lmf_mkdir_p(dir);
}

/* Write the tokenizer next to the export when it can be written as GPT-2 BPE files; a
 * problem here does not fail the conversion (the weights are what was asked for). */
static void save_tokenizer(const lmf_tokenizer *tok, const char *dir, int quiet) {
    if (!tok) return;
    if (lmf_tok_decode_only(tok)) {
        if (!quiet)
            fprintf(stderr, "lmforge convert: note: the llm.c tokenizer file holds no merges; no "
                    "tokenizer written to %s\n", dir);
        return;
    }
    if (lmf_tok_save(tok, dir) != LMF_OK && !quiet)
        fprintf(stderr, "lmforge convert: note: tokenizer not written: %s\n", lmf_last_error());
}

/* A size as transformers' max_shard_size takes it: bytes, or digits and a unit (KB, MB, GB, TB:
 * powers of 1000; KiB, MiB, GiB, TiB: powers of 1024; any case). 0 for anything else. */
static uint64_t parse_size(const char *s) {
    static const struct { const char *unit; uint64_t mul; } units[] = {
        {"", 1}, {"B", 1}, {"KB", 1000ull}, {"MB", 1000000ull}, {"GB", 1000000000ull},
        {"TB", 1000000000000ull}, {"KIB", 1ull << 10}, {"MIB", 1ull << 20}, {"GIB", 1ull << 30},
        {"TIB", 1ull << 40}};
    if (!isdigit((unsigned char)s[0])) return 0;
    errno = 0;
    char *end = NULL;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || v == 0) return 0;
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        uint64_t r;
        if (strcasecmp(end, units[i].unit) == 0)
            return __builtin_mul_overflow((uint64_t)v, units[i].mul, &r) ? 0 : r;
    }
    return 0;
}

int lmf_cmd_convert(int argc, char **argv) {
    const char *to = NULL, *out = NULL, *dtype = "fp32", *max_shard = NULL;
    int quiet = 0, npos = 0, kv_cache = 0;
    int64_t external_above = (int64_t)LMF_ONNX_EXTERNAL_DEFAULT;
    const char *pos[1] = {NULL};
    lmf_opt opts[] = {
        {"--to", LMF_OPT_STR, &to, "hf|llmc|lmforge|onnx", "output format: Hugging Face directory (GPT-2 or Llama), llm.c checkpoint file, lmforge model directory, ONNX graph directory", LMF_NOLIMIT, NULL},
        {"--out", LMF_OPT_STR, &out, "PATH", "output directory (hf, lmforge, onnx) or file (llmc)", LMF_NOLIMIT, NULL},
        {"--dtype", LMF_OPT_STR, &dtype, "fp32|bf16|fp16", "tensor type (default fp32); llm.c: fp32 (version 3) or bf16 (version 5); hf: fp32, bf16 or fp16; onnx: fp32 or fp16", LMF_NOLIMIT, NULL},
        {"--max-shard-size", LMF_OPT_STR, &max_shard, "SIZE", "hf, lmforge: split the weights into model-0000k-of-0000N.safetensors files of at most SIZE bytes of tensors (e.g. 2GB, 500MiB, 1000000; default 5GB)", LMF_NOLIMIT, NULL},
        {"--kv-cache", LMF_OPT_FLAG, &kv_cache, NULL, "onnx: the decoder-with-past graph (past_key_values inputs, present outputs)", LMF_NOLIMIT, NULL},
        {"--external-above", LMF_OPT_I64, &external_above, "BYTES", "onnx: weights larger than this go to model.onnx.data (default 2000000000)", 0, 9.2e18, NULL},
        {"--quiet", LMF_OPT_FLAG, &quiet, NULL, "no summary line", LMF_NOLIMIT, NULL},
    };
    int r = lmf_args_parse("convert", "INPUT --to hf|llmc|lmforge|onnx --out PATH [--dtype fp32|bf16|fp16] [--max-shard-size SIZE] [--kv-cache]\n\n"
                           "INPUT: a Hugging Face GPT-2 directory (config.json + model.safetensors or\n"
                           "a sharded index), an lmforge model or run directory, or an llm.c checkpoint\n"
                           "(.bin); its format is found from its content.",
                           opts, (int)(sizeof opts / sizeof opts[0]), argc, argv, pos, 1, &npos);
    if (r) return r == 1 ? 0 : 2;
    if (npos != 1) { lmf_cli_error("convert", "give one INPUT model (see lmforge convert --help)"); return 2; }
    if (!to || !out) { lmf_cli_error("convert", "--to and --out are required"); return 2; }
    int to_hf = strcmp(to, "hf") == 0, to_llmc = strcmp(to, "llmc") == 0,
        to_lmf = strcmp(to, "lmforge") == 0, to_onnx = strcmp(to, "onnx") == 0;
    if (!to_hf && !to_llmc && !to_lmf && !to_onnx) {
        lmf_cli_error("convert", "--to must be hf, llmc, lmforge or onnx, got '%s'", to);
        return 2;
    }
    int bf16 = strcmp(dtype, "bf16") == 0, fp16 = strcmp(dtype, "fp16") == 0;
    if (!bf16 && !fp16 && strcmp(dtype, "fp32") != 0) {
        lmf_cli_error("convert", "--dtype must be fp32, bf16 or fp16, got '%s'", dtype);
        return 2;
    }
    if ((bf16 || fp16) && to_lmf) {
        lmf_cli_error("convert", "--dtype %s applies to --to llmc (bf16), --to hf and --to onnx "
                      "(fp16); lmforge model directories are fp32", dtype);
        return 2;
    }
    if (bf16 && to_onnx) {
        lmf_cli_error("convert", "--dtype bf16: ONNX exports are fp32 or fp16");
        return 2;
    }
    if (!to_onnx && (kv_cache || external_above != (int64_t)LMF_ONNX_EXTERNAL_DEFAULT)) {
        lmf_cli_error("convert", "--kv-cache and --external-above apply to --to onnx");
        return 2;
    }
    if (fp16 && to_llmc) {
        lmf_cli_error("convert", "--dtype fp16: llm.c checkpoints are fp32 or bf16");
        return 2;
    }
    uint64_t max_shard_bytes = LMF_HF_MAX_SHARD_DEFAULT;
    if (max_shard && !to_hf && !to_lmf) {
        lmf_cli_error("convert", "--max-shard-size applies to --to hf and --to lmforge");
        return 2;
    }
    if (max_shard && !(max_shard_bytes = parse_size(max_shard))) {
        lmf_cli_error("convert", "--max-shard-size must be a positive size such as 2GB, 500MiB or "
                      "1000000 (bytes), got '%s'", max_shard);
        return 2;
    }
    lmf_dtype hf_dtype = bf16 ? LMF_BF16 : fp16 ? LMF_F16 : LMF_F32;
    struct stat sb;
    if (to_llmc && stat(out, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        lmf_cli_error("convert", "--out %s is a directory; an llm.c checkpoint is one file "
                      "(e.g. %s/model.bin)", out, out);
        return 2;
    }

    lmf_model_format fmt;
    char load[4096];
    if (lmf_model_detect(pos[0], &fmt, load, sizeof load) != LMF_OK) return fail_rt();
    lmf_gpt *m = NULL;
    if (lmf_model_load_any(pos[0], lmf_kernels_ref(), &m) != LMF_OK) return fail_rt();
    lmf_tokenizer *tok = NULL;
    if (lmf_model_find_tokenizer(pos[0], &tok) != LMF_OK) {
        if (!quiet) fprintf(stderr, "lmforge convert: note: tokenizer not copied: %s\n", lmf_last_error());
        tok = NULL;
    }
    int rc = 0;
    lmf_status s;
    lmf_onnx_summary os = {0};
    if (to_onnx) {
        lmf_onnx_options oo = {fp16 ? LMF_ONNX_FP16 : LMF_ONNX_FP32, kv_cache,
                               (uint64_t)external_above, tok ? lmf_tok_eot(tok) : -1};
        s = lmf_onnx_export(m, out, &oo, &os);
        if (s == LMF_OK) save_tokenizer(tok, out, quiet);
    } else if (to_hf) {
        lmf_hf_save_opts ho = {hf_dtype, max_shard_bytes, tok ? lmf_tok_bos(tok) : -1};
        s = lmf_hf_save_with(m, out, tok ? lmf_tok_eot(tok) : -1, &ho);
        if (s == LMF_OK) save_tokenizer(tok, out, quiet);
        /* what AutoTokenizer needs to read tokenizer.json as it is */
        if (s == LMF_OK && tok && !lmf_tok_decode_only(tok) &&
            lmf_tok_save_hf_config(tok, out, lmf_gpt_cfg(m)->n_positions) != LMF_OK && !quiet)
            fprintf(stderr, "lmforge convert: note: tokenizer_config.json not written: %s\n", lmf_last_error());
    } else if (to_lmf) {
        lmf_hf_save_opts ho = {LMF_F32, max_shard_bytes, tok ? lmf_tok_bos(tok) : -1};
        s = lmf_hf_save_with(m, out, tok ? lmf_tok_eot(tok) : -1, &ho);
        char tdir[4096];
        if (s == LMF_OK && lmf_path_join(tdir, sizeof tdir, out, "tokenizer") == LMF_OK)
            save_tokenizer(tok, tdir, quiet);
    } else {
        s = make_parent(out);
        if (s == LMF_OK) s = lmf_llmc_save(m, out, bf16 ? 5 : 3);
    }
    if (s != LMF_OK) {
        rc = fail_rt();
    } else if (!quiet && to_onnx) {
        fprintf(stderr, "lmforge convert: %s (%s) -> %s/model.onnx (opset 17, %s weights%s): %d nodes, %.1f MB of weights%s\n", pos[0], lmf_model_format_name(fmt), out,
                fp16 ? "fp16" : "fp32", kv_cache ? ", key/value cache" : "", os.nodes, (double)os.weight_bytes / 1e6,
                os.external ? " in model.onnx.data" : "");
    } else if (!quiet) {
        const lmf_gpt_config *c = lmf_gpt_cfg(m);
        fprintf(stderr, "lmforge convert: %s (%s) -> %s (%s%s): %d layers, %d heads, %d wide, "
                "context %d, vocabulary %d, %.2fM parameters\n", pos[0],
                lmf_model_format_name(fmt), out, to, to_lmf ? "" : bf16 ? ", bf16" : fp16 ? ", fp16" : ", fp32",
                c->n_layer, c->n_head, c->n_embd, c->n_positions, c->vocab_size,
                (double)lmf_config_num_params(c) / 1e6);
    }
    lmf_tok_free(tok);
    lmf_gpt_free(m);
    return rc;
}

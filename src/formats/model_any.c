/* Models and tokenizers from any supported format, detected from the content. */
#include "lmforge/formats.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lmforge/fsutil.h"
#include "lmforge/ckpt_format.h"
#include "lmforge/data.h"

const char *lmf_model_format_name(lmf_model_format f) {
    switch (f) {
    case LMF_MODEL_HF: return "hf";
    case LMF_MODEL_RUN: return "lmforge";
    case LMF_MODEL_LLMC: return "llmc";
    case LMF_MODEL_CKPT: return "lmforge-checkpoint";
    default: return "unknown";
    }
}

static int is_dir(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}

static int has(const char *dir, const char *name) {
    char p[4096];
    return lmf_path_join(p, sizeof p, dir, name) == LMF_OK && lmf_file_exists(p);
}

/* the directory part of a file path into buf ("." when there is none) */
static void dir_of(const char *path, char *buf, size_t cap) {
    const char *slash = strrchr(path, '/');
    if (!slash) snprintf(buf, cap, ".");
    else if (slash == path) snprintf(buf, cap, "/");
    else snprintf(buf, cap, "%.*s", (int)(slash - path), path);
}

static const char *base_of(const char *path) {
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

static lmf_status set_path(char *dst, size_t cap, const char *src) {
    if (strlen(src) >= cap) return lmf_fail(LMF_ERR_ARG, "%s: path too long", src);
    memcpy(dst, src, strlen(src) + 1);
    return LMF_OK;
}

static lmf_status detect_dir(const char *path, lmf_model_format *fmt, char *load, size_t cap) {
    int cfg = has(path, "config.json");
    if (cfg && (has(path, "model.safetensors") || has(path, "model.safetensors.index.json"))) {
        *fmt = has(path, "checkpoints") || has(path, "metrics.jsonl") ? LMF_MODEL_RUN : LMF_MODEL_HF;
        return set_path(load, cap, path);
    }
    if (has(path, "index.json")) { /* one training checkpoint */
        *fmt = LMF_MODEL_CKPT;
        return set_path(load, cap, path);
    }
    if (has(path, "checkpoints")) { /* a run stopped before its export: its newest checkpoint */
        lmf_ckpt_info ck;
        LMF_TRY(lmf_ckpt_find_latest(path, &ck));
        *fmt = LMF_MODEL_CKPT;
        return set_path(load, cap, ck.dir);
    }
    if (cfg && has(path, "pytorch_model.bin"))
        return lmf_fail(LMF_ERR_FORMAT, "%s: holds only PyTorch pickle weights (pytorch_model.bin); "
                        "lmforge reads safetensors: save the model with "
                        "save_pretrained(..., safe_serialization=True)", path);
    if (cfg)
        return lmf_fail(LMF_ERR_IO, "%s: has config.json but no model.safetensors or "
                        "model.safetensors.index.json", path);
    return lmf_fail(LMF_ERR_IO, "%s: not a model directory: expected config.json with "
                    "model.safetensors (Hugging Face or lmforge), an lmforge run directory, or "
                    "an lmforge checkpoint (index.json)", path);
}

lmf_status lmf_model_detect(const char *path, lmf_model_format *fmt, char *load, size_t cap) {
    *fmt = LMF_MODEL_UNKNOWN;
    struct stat sb;
    if (stat(path, &sb) != 0) return lmf_fail(LMF_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    if (S_ISDIR(sb.st_mode)) return detect_dir(path, fmt, load, cap);
    int fd;
    LMF_TRY(lmf_open_regular(path, "model", &fd));
    uint8_t head[9] = {0};
    ssize_t got = read(fd, head, sizeof head);
    close(fd);
    if (got < 0) return lmf_fail(LMF_ERR_IO, "%s: cannot read: %s", path, strerror(errno));
    int32_t magic = 0;
    if (got >= 4) memcpy(&magic, head, 4);
    uint64_t st_len = 0;
    if (got >= 8) memcpy(&st_len, head, 8);
    char dir[4096];
    dir_of(path, dir, sizeof dir);
    if (magic == LMF_LLMC_MAGIC) {
        *fmt = LMF_MODEL_LLMC;
        return set_path(load, cap, path);
    }
    if (magic == LMF_LLMC_TOKENIZER_MAGIC)
        return lmf_fail(LMF_ERR_FORMAT, "%s: an llm.c tokenizer file, not a model (lmforge finds "
                        "it by itself beside the checkpoint when it is named gpt2_tokenizer.bin)", path);
    if (magic == LMF_TOKENS_MAGIC) return lmf_fail(LMF_ERR_FORMAT, "%s: a token file, not a model", path);
    int is_st = got == 9 && head[8] == '{' && st_len > 0;
    const char *base = base_of(path);
    if ((is_st && strcmp(base, "model.safetensors") == 0) || strcmp(base, "config.json") == 0 ||
        strcmp(base, "model.safetensors.index.json") == 0)
        return detect_dir(dir, fmt, load, cap);
    if (is_st)
        return lmf_fail(LMF_ERR_FORMAT, "%s: a safetensors file needs its config.json: give the "
                        "directory holding config.json and model.safetensors", path);
    return lmf_fail(LMF_ERR_FORMAT, "%s: not a model: expected a Hugging Face or lmforge model "
                    "directory, an lmforge run directory, or an llm.c checkpoint (magic %d)", path,
                    LMF_LLMC_MAGIC);
}

lmf_status lmf_model_load_any(const char *path, const lmf_kernels *k, lmf_gpt **out) {
    lmf_model_format fmt;
    char load[4096];
    *out = NULL;
    LMF_TRY(lmf_model_detect(path, &fmt, load, sizeof load));
    if (fmt == LMF_MODEL_LLMC) return lmf_llmc_load(load, k, out);
    if (fmt == LMF_MODEL_CKPT) return lmf_ckpt_load_model(load, k, out);
    return lmf_hf_load(load, k, out);
}

lmf_status lmf_model_config_any(const char *path, lmf_gpt_config *cfg) {
    lmf_model_format fmt;
    char load[4096], p[4096];
    LMF_TRY(lmf_model_detect(path, &fmt, load, sizeof load));
    if (fmt == LMF_MODEL_CKPT) {
        lmf_ckpt_index ix;
        LMF_TRY(lmf_ckpt_index_load(load, &ix));
        lmf_status s = lmf_ckpt_read_config(load, &ix, cfg);
        lmf_ckpt_index_free(&ix);
        return s;
    }
    if (fmt == LMF_MODEL_LLMC) {
        int fd;
        LMF_TRY(lmf_open_regular(load, "llm.c checkpoint", &fd));
        struct stat sb;
        memset(&sb, 0, sizeof sb);
        uint8_t hdr[LMF_LLMC_HEADER_BYTES];
        lmf_status s = fstat(fd, &sb) == 0 ? LMF_OK
                       : lmf_fail(LMF_ERR_IO, "%s: cannot stat: %s", load, strerror(errno));
        size_t hlen = (uint64_t)sb.st_size < sizeof hdr ? (size_t)sb.st_size : sizeof hdr;
        if (s == LMF_OK) s = lmf_pread_all(fd, hdr, hlen, 0, load);
        close(fd);
        lmf_llmc_header h;
        if (s == LMF_OK) s = lmf_llmc_parse_header(hdr, hlen, (uint64_t)sb.st_size, load, &h);
        if (s == LMF_OK) *cfg = h.cfg;
        return s;
    }
    LMF_TRY(lmf_path_join(p, sizeof p, load, "config.json"));
    return lmf_config_read(p, cfg);
}

/* 1 when path starts with the magic number of llm.c's tokenizer files */
static int llmc_tokenizer_file(const char *path) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    int32_t magic = 0;
    ssize_t got = read(fd, &magic, 4);
    close(fd);
    return got == 4 && magic == LMF_LLMC_TOKENIZER_MAGIC;
}

lmf_status lmf_model_find_tokenizer(const char *model_path, lmf_tokenizer **out) {
    char dir[4096], p[4096];
    *out = NULL;
    if (is_dir(model_path)) LMF_TRY(set_path(dir, sizeof dir, model_path));
    else dir_of(model_path, dir, sizeof dir);
    /* GPT-2 BPE files (they encode too) come before llm.c's decode-only table */
    static const char *const bpe[] = {"tokenizer/tokenizer.json", "tokenizer/encoder.json",
                                      "tokenizer/vocab.json",     "tokenizer.json",
                                      "encoder.json",             "vocab.json"};
    for (size_t i = 0; i < sizeof bpe / sizeof bpe[0]; i++) {
        LMF_TRY(lmf_path_join(p, sizeof p, dir, bpe[i]));
        if (!lmf_file_exists(p)) continue;
        char *slash = strrchr(p, '/');
        slash[slash == p] = '\0'; /* the directory holding the file ("/" stays) */
        return lmf_tok_load(p, out);
    }
    static const char *const llmc[] = {"gpt2_tokenizer.bin", "tokenizer.bin"};
    for (size_t i = 0; i < sizeof llmc / sizeof llmc[0]; i++) {
        LMF_TRY(lmf_path_join(p, sizeof p, dir, llmc[i]));
        if (lmf_file_exists(p) && llmc_tokenizer_file(p)) return lmf_tok_load(p, out);
    }
    return LMF_OK;
}

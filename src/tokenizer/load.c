/* lmf_tok_load: finds the vocabulary files and hands them to the loader of their kind. */
/* GPT-2 pair, tokenizer.json, tiktoken or llm.c file; looks in a directory, or next to a given file. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "tokenizer/tok_internal.h"

static int is_file(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISREG(sb.st_mode);
}

static int ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0 && (a == b || s[a - b - 1] == '/');
}

/* dir + "/" + name into buf */
static const char *join(char *buf, size_t cap, const char *dir, size_t dir_len, const char *name) {
    snprintf(buf, cap, "%.*s%s%s", (int)dir_len, dir, dir_len && dir[dir_len - 1] != '/' ? "/" : "", name);
    return buf;
}

/* Load the pair from dir (encoder.json + vocab.bpe, or vocab.json + merges.txt). */
static lmf_status load_pair_in(const char *dir, size_t dir_len, lmf_tokenizer **out) {
    char e[4096], m[4096];
    static const char *const pairs[2][2] = {{"encoder.json", "vocab.bpe"}, {"vocab.json", "merges.txt"}};
    for (int k = 0; k < 2; k++) {
        join(e, sizeof e, dir, dir_len, pairs[k][0]);
        join(m, sizeof m, dir, dir_len, pairs[k][1]);
        if (is_file(e) && is_file(m)) return lmf_tok_load_gpt2_pair(e, m, out);
        if (is_file(e) || is_file(m))
            return lmf_fail(LMF_ERR_IO, "%s: found %s but not %s next to it; GPT-2's vocabulary "
                            "needs both files", is_file(e) ? e : m,
                            is_file(e) ? pairs[k][0] : pairs[k][1], is_file(e) ? pairs[k][1] : pairs[k][0]);
    }
    return lmf_fail(LMF_ERR_IO, "%.*s: no tokenizer files (expected tokenizer.json, encoder.json "
                    "+ vocab.bpe, or a tiktoken file: tokenizer.model or *.tiktoken)", (int)dir_len, dir);
}

/* 1 when the file's first line reads "BASE64 RANK" */
static int sniff_tiktoken(const char *path) {
    char head[256];
    FILE *f = fopen(path, "rb");
    size_t got = f ? fread(head, 1, sizeof head, f) : 0;
    if (f) fclose(f);
    return got > 0 && lmf_tok_looks_tiktoken(head, got);
}

static lmf_status not_tiktoken(const char *path) {
    return lmf_fail(LMF_ERR_FORMAT, "%s: not a tiktoken BPE file (\"BASE64 RANK\" lines); a "
                    "SentencePiece model (Llama 2's tokenizer.model) is not supported", path);
}

/* 1 when dir holds either file of a GPT-2 pair */
static int is_pair_in(const char *dir) {
    static const char *const names[] = {"encoder.json", "vocab.bpe", "vocab.json", "merges.txt"};
    char p[4096];
    for (int k = 0; k < 4; k++)
        if (is_file(join(p, sizeof p, dir, strlen(dir), names[k]))) return 1;
    return 0;
}

/* dir/tokenizer.model, else the first dir/ *.tiktoken by name, into buf; NULL if none */
static const char *find_tiktoken(const char *dir, char *buf, size_t cap) {
    if (is_file(join(buf, cap, dir, strlen(dir), "tokenizer.model"))) return buf;
    DIR *d = opendir(dir);
    if (!d) return NULL;
    char best[256] = "";
    for (struct dirent *e; (e = readdir(d));) {
        size_t n = strlen(e->d_name);
        if (n > 9 && n < sizeof best && strcmp(e->d_name + n - 9, ".tiktoken") == 0 &&
            (!best[0] || strcmp(e->d_name, best) < 0))
            memcpy(best, e->d_name, n + 1);
    }
    closedir(d);
    return best[0] && is_file(join(buf, cap, dir, strlen(dir), best)) ? buf : NULL;
}

lmf_status lmf_tok_load(const char *path, lmf_tokenizer **out) {
    *out = NULL;
    struct stat sb;
    if (stat(path, &sb) != 0) return lmf_fail(LMF_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    if (strlen(path) > 3000) return lmf_fail(LMF_ERR_ARG, "tokenizer path too long");
    if (S_ISDIR(sb.st_mode)) {
        char p[4096];
        join(p, sizeof p, path, strlen(path), "tokenizer.json");
        if (is_file(p)) return lmf_tok_load_file(p, lmf_tok_parse_hf_json, out);
        lmf_status st = load_pair_in(path, strlen(path), out);
        if (st != LMF_ERR_IO || is_pair_in(path)) return st;
        const char *tiktoken = find_tiktoken(path, p, sizeof p);
        if (!tiktoken) return st;
        if (!sniff_tiktoken(tiktoken)) return not_tiktoken(tiktoken);
        return lmf_tok_load_file(tiktoken, lmf_tok_parse_tiktoken, out);
    }
    if (S_ISREG(sb.st_mode)) { /* llm.c's tokenizer file by its magic number, tiktoken's by its first line */
        FILE *f = fopen(path, "rb");
        uint32_t magic = 0;
        size_t got = f ? fread(&magic, 1, 4, f) : 0;
        if (f) fclose(f);
        if (got == 4 && magic == LMF_LLMC_TOKENIZER_MAGIC) return lmf_tok_load_llmc(path, out);
        if (sniff_tiktoken(path)) return lmf_tok_load_file(path, lmf_tok_parse_tiktoken, out);
        if (ends_with(path, "tokenizer.model") ||
            (strlen(path) > 9 && strcmp(path + strlen(path) - 9, ".tiktoken") == 0))
            return not_tiktoken(path);
    }
    const char *slash = strrchr(path, '/');
    const char *dir = slash ? path : ".";
    size_t dir_len = !slash ? 1 : slash == path ? 1 : (size_t)(slash - path);
    if (ends_with(path, "encoder.json") || ends_with(path, "vocab.json") ||
        ends_with(path, "vocab.bpe") || ends_with(path, "merges.txt"))
        return load_pair_in(dir, dir_len, out);
    return lmf_tok_load_file(path, lmf_tok_parse_hf_json, out);
}

/* lmf_tok_load: finds the vocabulary files and hands them to the loader of their kind. */
/* GPT-2 pair, tokenizer.json or llm.c file; looks in a directory, or next to a given file. */
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
    return lmf_fail(LMF_ERR_IO, "%.*s: no tokenizer files (expected tokenizer.json, or encoder.json "
                    "+ vocab.bpe)", (int)dir_len, dir);
}

lmf_status lmf_tok_load(const char *path, lmf_tokenizer **out) {
    *out = NULL;
    struct stat sb;
    if (stat(path, &sb) != 0) return lmf_fail(LMF_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    if (strlen(path) > 3000) return lmf_fail(LMF_ERR_ARG, "tokenizer path too long");
    if (S_ISDIR(sb.st_mode)) {
        char p[4096];
        join(p, sizeof p, path, strlen(path), "tokenizer.json");
        if (is_file(p)) return lmf_tok_load_hf_json(p, out);
        return load_pair_in(path, strlen(path), out);
    }
    if (S_ISREG(sb.st_mode)) { /* llm.c's tokenizer file, by its magic number */
        FILE *f = fopen(path, "rb");
        uint32_t magic = 0;
        size_t got = f ? fread(&magic, 1, 4, f) : 0;
        if (f) fclose(f);
        if (got == 4 && magic == LMF_LLMC_TOKENIZER_MAGIC) return lmf_tok_load_llmc(path, out);
    }
    const char *slash = strrchr(path, '/');
    const char *dir = slash ? path : ".";
    size_t dir_len = !slash ? 1 : slash == path ? 1 : (size_t)(slash - path);
    if (ends_with(path, "encoder.json") || ends_with(path, "vocab.json") ||
        ends_with(path, "vocab.bpe") || ends_with(path, "merges.txt"))
        return load_pair_in(dir, dir_len, out);
    return lmf_tok_load_hf_json(path, out);
}

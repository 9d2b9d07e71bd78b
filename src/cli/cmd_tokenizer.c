/* lmforge tokenizer train|encode|decode|info. */
/* Train a byte-level BPE; encode or decode stdin to stdout with a tokenizer directory. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "lmforge/system.h"
#include "lmforge/tokenizer.h"

#define IO_BLOCK ((size_t)1 << 20)

static int cmd_train(int argc, char **argv) {
    lmf_strs inputs = {0}, specials = {0};
    const char *out = NULL;
    const char *pattern = "gpt2";
    int vocab = 0, threads = 0, no_special = 0, quiet = 0;
    lmf_opt opts[] = {
        {"--input", LMF_OPT_STRS, &inputs, "FILE...", "text files to learn from", LMF_NOLIMIT, NULL},
        {"--vocab-size", LMF_OPT_INT, &vocab, "N", "ids in all: 256 bytes + merges + special tokens", 257, 1e6, NULL},
        {"--out", LMF_OPT_STR, &out, "DIR", "write tokenizer.json here (and GPT-2's encoder.json + vocab.bpe with --pattern gpt2)", LMF_NOLIMIT, NULL},
        {"--pattern", LMF_OPT_STR, &pattern, "gpt2|cl100k", "the pre-tokenizer: GPT-2's or cl100k_base's / Llama 3's (default gpt2)", LMF_NOLIMIT, NULL},
        {"--special", LMF_OPT_STRS, &specials, "TOKEN...", "special tokens, the last ids (default <|endoftext|>)", LMF_NOLIMIT, NULL},
        {"--no-special", LMF_OPT_FLAG, &no_special, NULL, "no special tokens at all", LMF_NOLIMIT, NULL},
        {"--threads", LMF_OPT_INT, &threads, "N", "threads for counting words (default: all cores)", 0, 4096, NULL},
        {"--quiet", LMF_OPT_FLAG, &quiet, NULL, "no progress on stderr", LMF_NOLIMIT, NULL},
    };
    int r = lmf_args_parse("tokenizer train", "--input FILE... --vocab-size N --out DIR [options]", opts,
                           (int)(sizeof opts / sizeof opts[0]), argc, argv, NULL, 0, NULL);
    if (r) return r == 1 ? 0 : 2;
    if (inputs.n == 0 || !vocab || !out) {
        lmf_cli_error("tokenizer train", "--input, --vocab-size and --out are required");
        return 2;
    }
    if (no_special && specials.n) {
        lmf_cli_error("tokenizer train", "--special and --no-special exclude each other");
        return 2;
    }
    lmf_tok_pattern pat;
    if (lmf_tok_pattern_parse(pattern, &pat) != LMF_OK) {
        lmf_cli_error("tokenizer train", "--pattern: %s", lmf_last_error());
        return 2;
    }
    const char **sp = calloc((size_t)specials.n + 1, sizeof *sp);
    if (!sp) return 1;
    for (int i = 0; i < specials.n; i++) sp[i] = specials.v[i];
    lmf_tok_train_opts o = {.vocab_size = vocab, .specials = (specials.n || no_special) ? sp : NULL,
                            .threads = threads, .verbose = !quiet, .pattern = pat};
    lmf_tokenizer *t = NULL;
    double t0 = lmf_now_s();
    lmf_status s = lmf_tok_train_files(inputs.v, inputs.n, &o, &t);
    double dt = lmf_now_s() - t0;
    free(sp);
    if (s == LMF_OK) s = lmf_tok_save(t, out);
    if (s != LMF_OK) {
        lmf_cli_error("tokenizer train", "%s", lmf_last_error());
        lmf_tok_free(t);
        return s == LMF_ERR_ARG ? 2 : 1;
    }
    printf("trained a %d-id vocabulary (%d merges) in %.2f s -> %s\n", lmf_tok_vocab_size(t),
           lmf_tok_num_merges(t), dt, out);
    lmf_tok_free(t);
    return 0;
}

static lmf_tokenizer *load_or_complain(const char *cmd, const char *dir) {
    lmf_tokenizer *t = NULL;
    if (lmf_tok_load(dir, &t) != LMF_OK) {
        lmf_cli_error(cmd, "%s", lmf_last_error());
        return NULL;
    }
    return t;
}

/* write ids as decimal text, separated by spaces */
static int write_ids_text(const uint32_t *ids, size_t n, int *first) {
    char buf[1 << 16];
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (o > sizeof buf - 16) {
            if (fwrite(buf, 1, o, stdout) != o) return -1;
            o = 0;
        }
        if (!*first) buf[o++] = ' ';
        *first = 0;
        char tmp[12];
        int k = 0;
        uint32_t v = ids[i];
        do {
            tmp[k++] = (char)('0' + v % 10);
            v /= 10;
        } while (v);
        while (k) buf[o++] = tmp[--k];
    }
    return fwrite(buf, 1, o, stdout) == o ? 0 : -1;
}

static int write_ids_binary(const uint32_t *ids, size_t n) {
    unsigned char buf[4096];
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        buf[o++] = (unsigned char)ids[i];
        buf[o++] = (unsigned char)(ids[i] >> 8);
        buf[o++] = (unsigned char)(ids[i] >> 16);
        buf[o++] = (unsigned char)(ids[i] >> 24);
        if (o == sizeof buf) {
            if (fwrite(buf, 1, o, stdout) != o) return -1;
            o = 0;
        }
    }
    return fwrite(buf, 1, o, stdout) == o ? 0 : -1;
}

/* Encode stdin in blocks cut at safe points (the whole input at once with special tokens). */
static int cmd_encode(int argc, char **argv) {
    const char *dir = NULL;
    int binary = 0, allow = 0, no_template = 0;
    lmf_opt opts[] = {
        {"--tokenizer", LMF_OPT_STR, &dir, "DIR", "tokenizer directory, or tokenizer.json / encoder.json / a tiktoken file", LMF_NOLIMIT, NULL},
        {"--binary", LMF_OPT_FLAG, &binary, NULL, "write ids as uint32 little-endian (default: decimal text)", LMF_NOLIMIT, NULL},
        {"--allow-special", LMF_OPT_FLAG, &allow, NULL, "turn special-token strings into their ids", LMF_NOLIMIT, NULL},
        {"--no-template", LMF_OPT_FLAG, &no_template, NULL, "the text's ids only, without the tokens a tokenizer.json's post-processor puts around them (Llama 3's <|begin_of_text|>)", LMF_NOLIMIT, NULL},
    };
    int r = lmf_args_parse("tokenizer encode", "--tokenizer DIR [options] < TEXT > IDS", opts,
                           (int)(sizeof opts / sizeof opts[0]), argc, argv, NULL, 0, NULL);
    if (r) return r == 1 ? 0 : 2;
    if (!dir) {
        lmf_cli_error("tokenizer encode", "--tokenizer DIR is required");
        return 2;
    }
    lmf_tokenizer *t = load_or_complain("tokenizer encode", dir);
    if (!t) return 1;
    size_t cap = 2 * IO_BLOCK, len = 0;
    char *buf = malloc(cap);
    uint32_t *ids = NULL;
    size_t ids_cap = 0;
    int first = 1, rc = 0, eof = 0;
    /* the template's tokens around the whole input, as transformers' tokenizer(text) adds them */
    const uint32_t *tpl_pre, *tpl_suf;
    size_t n_pre, n_suf;
    lmf_tok_template(t, &tpl_pre, &n_pre, &tpl_suf, &n_suf);
    if (no_template) n_pre = n_suf = 0;
    if (n_pre && (binary ? write_ids_binary(tpl_pre, n_pre) : write_ids_text(tpl_pre, n_pre, &first)) != 0) {
        lmf_cli_error("tokenizer encode", "writing stdout: %s", strerror(errno));
        rc = 1;
    }
    while (buf && !eof && rc == 0) {
        if (cap - len < IO_BLOCK) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) break;
            buf = nb;
            cap *= 2;
        }
        size_t got = fread(buf + len, 1, IO_BLOCK, stdin);
        len += got;
        if (got < IO_BLOCK) {
            if (ferror(stdin)) {
                lmf_cli_error("tokenizer encode", "reading stdin: %s", strerror(errno));
                rc = 1;
                break;
            }
            eof = 1;
        }
        size_t cut = eof ? len : allow ? 0 : lmf_tok_split_point(buf, len, len / 2);
        if (cut == len && !eof) cut = 0; /* no safe point yet: read more */
        if (cut == 0) continue;
        if (ids_cap < cut) {
            free(ids);
            ids_cap = cut;
            ids = malloc(ids_cap * sizeof *ids);
            if (!ids) break;
        }
        size_t n;
        if (lmf_tok_encode(t, buf, cut, allow, ids, ids_cap, &n) != LMF_OK) {
            lmf_cli_error("tokenizer encode", "%s", lmf_last_error());
            rc = 1;
            break;
        }
        if ((binary ? write_ids_binary(ids, n) : write_ids_text(ids, n, &first)) != 0) {
            lmf_cli_error("tokenizer encode", "writing stdout: %s", strerror(errno));
            rc = 1;
            break;
        }
        memmove(buf, buf + cut, len - cut);
        len -= cut;
    }
    if (rc == 0 && (!buf || (!eof && !ids))) {
        lmf_cli_error("tokenizer encode", "out of memory");
        rc = 1;
    }
    if (rc == 0 && n_suf &&
        (binary ? write_ids_binary(tpl_suf, n_suf) : write_ids_text(tpl_suf, n_suf, &first)) != 0) {
        lmf_cli_error("tokenizer encode", "writing stdout: %s", strerror(errno));
        rc = 1;
    }
    if (rc == 0 && !binary && !first) putchar('\n');
    if (rc == 0 && fflush(stdout) != 0) rc = 1;
    free(buf);
    free(ids);
    lmf_tok_free(t);
    return rc;
}

typedef struct decoder {
    const lmf_tokenizer *t;
    uint32_t *ids;
    size_t n, cap;
    char *out;
    size_t out_cap;
    uint64_t done;   /* ids decoded so far */
} decoder;

/* decode and write the collected ids; 0 on success */
static int decoder_flush(decoder *d) {
    size_t nb = 0;
    if (d->n == 0) return 0;
    lmf_status s = lmf_tok_decode(d->t, d->ids, d->n, d->out, d->out_cap, &nb);
    if (s != LMF_OK && nb > d->out_cap) { /* long tokens: grow the buffer and retry */
        char *no = realloc(d->out, nb);
        if (!no) {
            lmf_cli_error("tokenizer decode", "out of memory");
            return 1;
        }
        d->out = no;
        d->out_cap = nb;
        s = lmf_tok_decode(d->t, d->ids, d->n, d->out, d->out_cap, &nb);
    }
    if (s != LMF_OK) {
        for (size_t i = 0; i < d->n; i++)
            if (!lmf_tok_token_bytes(d->t, d->ids[i], NULL)) {
                lmf_cli_error("tokenizer decode", "id %u (number %llu of the input) is not in the "
                              "vocabulary of %d ids", d->ids[i], (unsigned long long)(d->done + i + 1),
                              lmf_tok_vocab_size(d->t));
                return 1;
            }
        lmf_cli_error("tokenizer decode", "%s", lmf_last_error());
        return 1;
    }
    if (fwrite(d->out, 1, nb, stdout) != nb) {
        lmf_cli_error("tokenizer decode", "writing stdout: %s", strerror(errno));
        return 1;
    }
    d->done += d->n;
    d->n = 0;
    return 0;
}

static int decoder_push(decoder *d, uint32_t id) {
    d->ids[d->n++] = id;
    return d->n == d->cap ? decoder_flush(d) : 0;
}

/* Read ids (decimal text separated by white space or commas, or uint32 little-endian) from
 * stdin and decode them, in blocks, to stdout. */
static int cmd_decode(int argc, char **argv) {
    const char *dir = NULL;
    int binary = 0;
    lmf_opt opts[] = {
        {"--tokenizer", LMF_OPT_STR, &dir, "DIR", "tokenizer directory, or tokenizer.json / encoder.json / a tiktoken file", LMF_NOLIMIT, NULL},
        {"--binary", LMF_OPT_FLAG, &binary, NULL, "read ids as uint32 little-endian (default: decimal text)", LMF_NOLIMIT, NULL},
    };
    int r = lmf_args_parse("tokenizer decode", "--tokenizer DIR [options] < IDS > TEXT", opts,
                           (int)(sizeof opts / sizeof opts[0]), argc, argv, NULL, 0, NULL);
    if (r) return r == 1 ? 0 : 2;
    if (!dir) {
        lmf_cli_error("tokenizer decode", "--tokenizer DIR is required");
        return 2;
    }
    lmf_tokenizer *t = load_or_complain("tokenizer decode", dir);
    if (!t) return 1;
    decoder d = {.t = t, .cap = 65536, .out_cap = (size_t)1 << 22};
    d.ids = malloc(d.cap * sizeof *d.ids);
    d.out = malloc(d.out_cap);
    int rc = d.ids && d.out ? 0 : 1;
    if (rc) lmf_cli_error("tokenizer decode", "out of memory");
    uint64_t value = 0;
    int in_number = 0;
    unsigned char in[IO_BLOCK / 16], part[4];
    size_t carry = 0, got;
    while (rc == 0 && (got = fread(in, 1, sizeof in, stdin)) > 0) {
        for (size_t i = 0; i < got && rc == 0; i++) {
            unsigned char c = in[i];
            if (binary) {
                part[carry++] = c;
                if (carry == 4) {
                    rc = decoder_push(&d, (uint32_t)part[0] | (uint32_t)part[1] << 8 |
                                              (uint32_t)part[2] << 16 | (uint32_t)part[3] << 24);
                    carry = 0;
                }
            } else if (c >= '0' && c <= '9') {
                value = value * 10 + (uint64_t)(c - '0');
                in_number = 1;
                if (value > 0xFFFFFFFFu) {
                    lmf_cli_error("tokenizer decode", "id number %llu is too large",
                                  (unsigned long long)(d.done + d.n + 1));
                    rc = 1;
                }
            } else if (c == ' ' || c == '\n' || c == '\t' || c == '\r' || c == ',') {
                if (in_number) rc = decoder_push(&d, (uint32_t)value);
                value = 0;
                in_number = 0;
            } else {
                lmf_cli_error("tokenizer decode", "unexpected byte 0x%02x after id number %llu; "
                              "expected decimal ids separated by spaces", c,
                              (unsigned long long)(d.done + d.n));
                rc = 1;
            }
        }
    }
    if (rc == 0 && ferror(stdin)) {
        lmf_cli_error("tokenizer decode", "reading stdin: %s", strerror(errno));
        rc = 1;
    }
    if (rc == 0 && in_number) rc = decoder_push(&d, (uint32_t)value);
    if (rc == 0 && carry) {
        lmf_cli_error("tokenizer decode", "the binary input ends with %zu stray bytes (not a "
                      "multiple of 4)", carry);
        rc = 1;
    }
    if (rc == 0) rc = decoder_flush(&d);
    if (fflush(stdout) != 0) rc = 1;
    free(d.ids);
    free(d.out);
    lmf_tok_free(t);
    return rc;
}

static int cmd_info(int argc, char **argv) {
    const char *dir = NULL;
    lmf_opt opts[] = {
        {"--tokenizer", LMF_OPT_STR, &dir, "DIR", "tokenizer directory, or tokenizer.json / encoder.json / a tiktoken file", LMF_NOLIMIT, NULL},
    };
    int r = lmf_args_parse("tokenizer info", "--tokenizer DIR", opts, 1, argc, argv, NULL, 0, NULL);
    if (r) return r == 1 ? 0 : 2;
    if (!dir) {
        lmf_cli_error("tokenizer info", "--tokenizer DIR is required");
        return 2;
    }
    lmf_tokenizer *t = load_or_complain("tokenizer info", dir);
    if (!t) return 1;
    int n_special = 0;
    for (int id = 0; id < lmf_tok_vocab_size(t); id++) n_special += lmf_tok_is_special(t, (uint32_t)id);
    printf("vocab_size %d\nmerges %d\npattern %s\nend_of_text %d\nspecial_tokens %d\n",
           lmf_tok_vocab_size(t), lmf_tok_num_merges(t), lmf_tok_pattern_name(lmf_tok_get_pattern(t)),
           lmf_tok_eot(t), n_special);
    for (int id = 0; id < lmf_tok_vocab_size(t); id++) {
        size_t n;
        const char *b = lmf_tok_token_bytes(t, (uint32_t)id, &n);
        if (lmf_tok_is_special(t, (uint32_t)id)) printf("  %d %.*s\n", id, (int)n, b);
    }
    /* the post-processor's template, as "template <|begin_of_text|> TEXT" */
    const uint32_t *tp[2];
    size_t tn[2];
    lmf_tok_template(t, &tp[0], &tn[0], &tp[1], &tn[1]);
    printf("template");
    for (int side = 0; side < 2; side++) {
        for (size_t i = 0; i < tn[side]; i++) {
            size_t n;
            const char *b = lmf_tok_token_bytes(t, tp[side][i], &n);
            printf(" %.*s", (int)n, b);
        }
        if (side == 0) printf(" TEXT");
    }
    printf("\n");
    lmf_tok_free(t);
    return 0;
}

static void usage(FILE *f) {
    fprintf(f, "usage: lmforge tokenizer SUBCOMMAND [options]   (SUBCOMMAND --help for details)\n\n"
               "  train    learn a byte-level BPE from text files (GPT-2's or cl100k's pre-tokenisation)\n"
               "  encode   text on stdin -> ids on stdout\n"
               "  decode   ids on stdin -> text on stdout\n"
               "  info     vocabulary size, merges and special tokens of a tokenizer\n");
}

int lmf_cmd_tokenizer(int argc, char **argv) {
    if (argc < 2) {
        lmf_cli_error("tokenizer", "missing subcommand: train, encode, decode or info (see lmforge tokenizer --help)");
        return 2;
    }
    const char *sub = argv[1];
    if (strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0 || strcmp(sub, "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(sub, "train") == 0) return cmd_train(argc - 1, argv + 1);
    if (strcmp(sub, "encode") == 0) return cmd_encode(argc - 1, argv + 1);
    if (strcmp(sub, "decode") == 0) return cmd_decode(argc - 1, argv + 1);
    if (strcmp(sub, "info") == 0) return cmd_info(argc - 1, argv + 1);
    lmf_cli_error("tokenizer", "unknown subcommand '%s' (train, encode, decode, info)", sub);
    return 2;
}

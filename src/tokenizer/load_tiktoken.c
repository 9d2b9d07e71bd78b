/* Loading a tiktoken BPE file (cl100k_base.tiktoken, Llama 3's tokenizer.model): ranks, merges, special tokens. */
/* Each line is "BASE64 RANK"; the rank is the token's id. Every split of a token into two
 * tokens becomes a merge (ordered by the token's rank, then the two parts' ranks), and the
 * tokenizer merges in tiktoken's order (LMF_TOK_MERGE_BY_RESULT). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tok_internal.h"

/* RFC 4648 base64 (with '=' padding) of s[0..n) into out (capacity >= n); returns the byte
 * count, -1 when s is not canonical base64. */
static long base64_decode(const char *s, size_t n, uint8_t *out) {
    if (n == 0 || n % 4 != 0) return -1;
    size_t o = 0;
    for (size_t i = 0; i < n; i += 4) {
        uint32_t v = 0;
        int pad = 0;
        for (int k = 0; k < 4; k++) {
            char c = s[i + k];
            int d = c >= 'A' && c <= 'Z' ? c - 'A' : c >= 'a' && c <= 'z' ? c - 'a' + 26
                  : c >= '0' && c <= '9' ? c - '0' + 52 : c == '+' ? 62 : c == '/' ? 63 : -1;
            if (c == '=' && i + 4 == n && k >= 2 && (k == 3 || s[i + 3] == '=')) {
                pad++;
                d = 0;
            } else if (d < 0 || pad) {
                return -1;
            }
            v = v << 6 | (uint32_t)d;
        }
        if ((pad == 1 && (v & 0xFF)) || (pad == 2 && (v & 0xFFFF))) return -1; /* stray bits */
        out[o++] = (uint8_t)(v >> 16);
        if (pad < 2) out[o++] = (uint8_t)(v >> 8);
        if (pad < 1) out[o++] = (uint8_t)v;
    }
    return (long)o;
}

/* Parse "BASE64 RANK" in line[0..n): the token's bytes into tok (capacity >= n), its rank. */
static int parse_line(const char *line, size_t n, uint8_t *tok, long *tok_len, uint32_t *rank) {
    const char *sp = memchr(line, ' ', n);
    if (!sp) return 0;
    size_t b64 = (size_t)(sp - line), digits = n - b64 - 1;
    if (digits == 0 || digits > 7) return 0;
    uint32_t r = 0;
    for (size_t k = 0; k < digits; k++) {
        char c = sp[1 + k];
        if (c < '0' || c > '9') return 0;
        r = r * 10 + (uint32_t)(c - '0');
    }
    *tok_len = base64_decode(line, b64, tok);
    *rank = r;
    return *tok_len > 0;
}

int lmf_tok_looks_tiktoken(const char *buf, size_t len) {
    const char *nl = memchr(buf, '\n', len);
    size_t n = nl ? (size_t)(nl - buf) : len;
    if (n > 0 && buf[n - 1] == '\r') n--;
    uint8_t tok[128];
    long tl;
    uint32_t r;
    return n > 0 && n < sizeof tok && parse_line(buf, n, tok, &tl, &r);
}

/* The special tokens of the two published files, from the first id on */
static const char *const cl100k_specials[] = {"<|endoftext|>", "<|fim_prefix|>", "<|fim_middle|>",
                                              "<|fim_suffix|>"};
#define CL100K_RANKS 100256u
#define LLAMA3_RANKS 128000u
#define LLAMA3_SPECIALS 256u

static lmf_status add_specials(lmf_tokenizer *t, uint32_t n_ranks, const char *what) {
    char name[64];
    if (n_ranks == CL100K_RANKS) {
        for (uint32_t k = 0; k < 4; k++)
            LMF_TRY(lmf_tok_set_token(t, CL100K_RANKS + 1 + k, cl100k_specials[k],
                                      strlen(cl100k_specials[k]), LMF_TOK_KIND_SPECIAL, what));
        return lmf_tok_set_token(t, 100276, "<|endofprompt|>", 15, LMF_TOK_KIND_SPECIAL, what);
    }
    if (n_ranks == LLAMA3_RANKS) {
        static const char *const named[] = {"<|begin_of_text|>", "<|end_of_text|>", NULL, NULL, NULL,
                                            NULL, "<|start_header_id|>", "<|end_header_id|>", NULL,
                                            "<|eot_id|>"};
        int reserved = 0;
        for (uint32_t k = 0; k < LLAMA3_SPECIALS; k++) {
            const char *s = k < 10 ? named[k] : NULL;
            if (!s) {
                snprintf(name, sizeof name, "<|reserved_special_token_%d|>", reserved++);
                s = name;
            }
            LMF_TRY(lmf_tok_set_token(t, LLAMA3_RANKS + k, s, strlen(s), LMF_TOK_KIND_SPECIAL, what));
        }
    }
    return LMF_OK;
}

typedef struct split { uint32_t left, right; } split;

static int cmp_split(const void *a, const void *b) {
    const split *x = a, *y = b;
    if (x->left != y->left) return x->left < y->left ? -1 : 1;
    return x->right < y->right ? -1 : x->right > y->right;
}

/* Every split of every token (in rank order) into two tokens becomes a merge. */
static lmf_status add_merges(lmf_tokenizer *t, uint32_t n_ranks, const char *what) {
    split *sp = NULL;
    size_t cap = 0;
    lmf_status st = LMF_OK;
    for (uint32_t id = 0; id < n_ranks && st == LMF_OK; id++) {
        uint32_t n = t->len[id];
        if (n == LMF_TOK_NONE || n < 2) continue;
        if (n - 1 > cap) {
            cap = 2 * (n - 1);
            split *ns = realloc(sp, cap * sizeof *ns);
            if (!ns) {
                st = lmf_fail(LMF_ERR_NOMEM, "tokenizer: out of memory");
                break;
            }
            sp = ns;
        }
        const char *b = t->bytes + t->off[id];
        size_t m = 0;
        for (uint32_t k = 1; k < n; k++) {
            uint32_t l = lmf_tok_find(t, b, k);
            if (l == LMF_TOK_NONE || l >= n_ranks) continue;
            uint32_t r = lmf_tok_find(t, b + k, n - k);
            if (r != LMF_TOK_NONE && r < n_ranks) sp[m++] = (split){l, r};
        }
        qsort(sp, m, sizeof *sp, cmp_split);
        for (size_t k = 0; k < m && st == LMF_OK; k++) st = lmf_tok_add_merge(t, sp[k].left, sp[k].right, what);
    }
    free(sp);
    return st;
}

static lmf_status parse(lmf_tokenizer *t, const char *buf, size_t len, const char *what) {
    uint8_t *tok = malloc(len + 1);
    if (!tok) return lmf_fail(LMF_ERR_NOMEM, "tokenizer: out of memory");
    lmf_status st = LMF_OK;
    uint32_t n_ranks = 0, max_rank = 0;
    size_t line_no = 0;
    for (size_t pos = 0; pos < len && st == LMF_OK;) {
        const char *nl = memchr(buf + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - buf) : len, n = end - pos;
        line_no++;
        if (n > 0 && buf[end - 1] == '\r') n--;
        if (n > 0) {
            long tl;
            uint32_t rank;
            if (!parse_line(buf + pos, n, tok, &tl, &rank))
                st = lmf_fail(LMF_ERR_FORMAT, "%s: line %zu is not \"BASE64 RANK\" (a tiktoken BPE "
                              "file has one token a line)", what, line_no);
            else
                st = lmf_tok_set_token(t, rank, (const char *)tok, (size_t)tl, LMF_TOK_KIND_NORMAL, what);
            n_ranks++;
            if (rank + 1 > max_rank) max_rank = rank + 1;
        }
        pos = end + 1;
    }
    free(tok);
    LMF_TRY(st);
    if (n_ranks == 0) return lmf_fail(LMF_ERR_FORMAT, "%s: no tokens (an empty tiktoken file)", what);
    if (max_rank != n_ranks)
        return lmf_fail(LMF_ERR_FORMAT, "%s: %u tokens but ranks run up to %u; a tiktoken file "
                        "ranks its tokens 0, 1, 2, ... without gaps", what, n_ranks, max_rank - 1);
    LMF_TRY(add_specials(t, n_ranks, what));
    LMF_TRY(add_merges(t, n_ranks, what));
    t->pattern = LMF_TOK_PATTERN_CL100K;
    t->order = LMF_TOK_MERGE_BY_RESULT;
    t->ignore_merges = 1;
    LMF_TRY(lmf_tok_finish(t, 0, what));
    LMF_TRY(lmf_tok_build_join_table(t));
    return lmf_tok_prune_whole_words(t);
}

lmf_status lmf_tok_parse_tiktoken(const char *buf, size_t len, const char *what, lmf_tokenizer **out) {
    *out = NULL;
    lmf_tokenizer *t = lmf_tok_alloc();
    if (!t) return LMF_ERR_NOMEM;
    lmf_status st = parse(t, buf, len, what);
    if (st != LMF_OK) {
        lmf_tok_free(t);
        return st;
    }
    *out = t;
    return LMF_OK;
}

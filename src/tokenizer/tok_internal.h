/* Tokenizer internals shared by src/tokenizer: the lmf_tokenizer layout and helpers. */
/* The handle, the vocabulary builder used by the loaders and the trainer, the BPE word encoder
 * and its per-thread cache, the loaders of each file kind. The files call one way: bytemap,
 * pretok and read_file call no other file; vocab calls bytemap; bpe calls vocab and pretok;
 * handle calls bpe (to free the context pool); encode calls bpe; the loaders and the trainer
 * call handle, vocab, bytemap and read_file (the tiktoken and tokenizer.json loaders also bpe;
 * the tokenizer.json loader and save also post); post calls encode; load picks a loader; bench
 * calls the public functions. */
#ifndef LMF_TOK_INTERNAL_H
#define LMF_TOK_INTERNAL_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "lmforge/tokenizer.h"

#define LMF_TOK_NONE 0xFFFFFFFFu      /* "no id" / "no rank" */
#define LMF_TOK_MAX_IDS (1u << 20)    /* largest vocabulary (ids fit in 20 bits) */
#define LMF_TOK_MAX_MERGES ((1u << 24) - 2)
#define LMF_TOK_TEMPLATE_MAX 8        /* tokens a post-processor's template may add */

/* A slot of the (left, right) -> rank merge table packs left (20 bits), right (20 bits) and
 * rank (24 bits) into 8 bytes, so that GPT-2's table (50,000 merges) takes 1 MiB;
 * LMF_TOK_EMPTY_SLOT (never a valid slot: ranks stay below 2^24 - 1) when unused. */
#define LMF_TOK_EMPTY_SLOT 0xFFFFFFFFFFFFFFFFull

/* Pool of encoding contexts (word cache + scratch), one taken per lmf_tok_encode call. */
typedef struct lmf_tok_ctx lmf_tok_ctx;
typedef struct lmf_tok_pool {
    pthread_mutex_t mu;
    lmf_tok_ctx *free_list;
} lmf_tok_pool;

/* Which adjacent pair a BPE step merges. */
typedef enum lmf_tok_merge_order {
    /* GPT-2's: the pair of the lowest merge rank, every occurrence of it left to right in one
     * pass (merges files, tokenizer.json, trained vocabularies) */
    LMF_TOK_MERGE_BY_RANK = 0,
    /* tiktoken's: the pair whose concatenation is the token of the lowest id (= rank), only
     * the leftmost one, then look again. The merge table holds every split of every token
     * into two tokens, so a pair's priority is t->merge_result of its merge. */
    LMF_TOK_MERGE_BY_RESULT = 1,
} lmf_tok_merge_order;

struct lmf_tokenizer {
    uint32_t n_ids;          /* vocabulary size: largest id + 1 */
    uint32_t cap_ids;
    uint32_t *off;           /* [cap_ids] offset of each token's bytes in `bytes` */
    uint32_t *len;           /* [cap_ids] byte length; LMF_TOK_NONE for an unused id */
    uint8_t *kind;           /* [cap_ids] LMF_TOK_KIND_* */
    char *bytes;
    size_t n_bytes, cap_bytes;

    /* token bytes -> id (every token, special ones included), open addressing */
    uint32_t *map;           /* [map_mask + 1] ids, LMF_TOK_NONE when empty */
    uint64_t map_mask;
    uint32_t map_count;

    uint32_t byte_id[256];   /* id of the one-byte token for each byte value */

    uint32_t n_merges, cap_merges;
    uint32_t *merge_left, *merge_right, *merge_result; /* [n_merges], index = rank */
    uint64_t *mtab;          /* [mtab_mask + 1] packed slots */
    uint64_t mtab_mask;
    int mtab_shift;          /* 64 - log2(mtab_mask + 1): slots are found by the hash's top bits */
    /* tiktoken's order only (lmf_tok_build_join_table): (left, right) -> the token they make,
     * for the pairs a merge can ever join, in mtab's slot format with the made token in place
     * of the rank; NULL until built (the encoder then uses mtab and merge_result) */
    uint64_t *jtab;
    uint64_t jtab_mask;
    int jtab_shift;

    uint32_t n_special;
    uint32_t *special_ids;   /* [n_special] sorted by byte length, longest first */
    int eot;
    int ignore_merges;       /* tokenizer.json "ignore_merges": a word that is a token is kept whole */
    lmf_tok_pattern pattern; /* the pre-tokenizer's pattern */
    lmf_tok_merge_order order;

    /* tokenizer.json's post-processor template: tpl[0..n_tpl_prefix) go before a text's ids,
     * the next n_tpl_suffix after (lmf_tok_encode_template) */
    uint32_t tpl[LMF_TOK_TEMPLATE_MAX];
    uint32_t n_tpl_prefix, n_tpl_suffix;

    lmf_tok_pool *pool;
};

enum { LMF_TOK_KIND_UNSET = 0, LMF_TOK_KIND_NORMAL = 1, LMF_TOK_KIND_SPECIAL = 2 };

/* ---- the handle (handle.c) ---- */

/* A new, empty tokenizer (no ids), or NULL (with a message) when out of memory. Freed with
 * lmf_tok_free. */
lmf_tokenizer *lmf_tok_alloc(void);

/* ---- vocabulary building (vocab.c) ---- */

/* Give id the bytes b[0..n). kind: LMF_TOK_KIND_NORMAL or _SPECIAL. Fails (LMF_ERR_FORMAT)
 * when the id is already used or another id has the same bytes; `what` names the source
 * file in the message. */
lmf_status lmf_tok_set_token(lmf_tokenizer *t, uint32_t id, const char *b, size_t n, int kind,
                             const char *what);
/* id of the token with bytes b[0..n), or LMF_TOK_NONE */
uint32_t lmf_tok_find(const lmf_tokenizer *t, const char *b, size_t n);
/* Append merge (left, right) with the next rank; the result is the token spelled
 * bytes(left) + bytes(right), which must exist. Fails (LMF_ERR_FORMAT) on an unknown
 * result, a special operand or a repeated pair. */
lmf_status lmf_tok_add_merge(lmf_tokenizer *t, uint32_t left, uint32_t right, const char *what);
/* Finish: check that every byte has a one-byte token, build the merge table, list the special
 * tokens, set eot. With unreached_special, tokens that are neither bytes nor merge results
 * become special (the GPT-2 file pair marks no special tokens); too many of them means a
 * truncated or mismatched merges file and fails. */
lmf_status lmf_tok_finish(lmf_tokenizer *t, int unreached_special, const char *what);
/* home slot of the pair key (left << 20 | right) in a table of 2^(64 - shift) slots */
static inline uint64_t lmf_tok_pair_home(uint64_t key, int shift) {
    return (key * 0x9E3779B97F4A7C15ull) >> shift;
}
static inline uint64_t lmf_tok_merge_home(const lmf_tokenizer *t, uint64_t key) {
    return lmf_tok_pair_home(key, t->mtab_shift);
}
/* The 24-bit value of (left, right) in a table of packed slots (key << 24 | value, linear
 * probing from the home slot); LMF_TOK_NONE when the pair is not there. */
static inline uint32_t lmf_tok_pair_find(const uint64_t *tab, uint64_t mask, int shift,
                                         uint32_t left, uint32_t right) {
    uint64_t key = (uint64_t)left << 20 | right;
    for (uint64_t h = lmf_tok_pair_home(key, shift);; h++) {
        uint64_t v = tab[h & mask];
        if (v >> 24 == key) return (uint32_t)(v & 0xFFFFFF);
        if (v == LMF_TOK_EMPTY_SLOT) return LMF_TOK_NONE;
    }
}
/* rank of the merge (left, right); LMF_TOK_NONE when there is none. The merged token is
 * t->merge_result[rank]. */
static inline uint32_t lmf_tok_merge_rank(const lmf_tokenizer *t, uint32_t left, uint32_t right) {
    return lmf_tok_pair_find(t->mtab, t->mtab_mask, t->mtab_shift, left, right);
}

/* ---- GPT-2's byte <-> unicode mapping (bytemap.c) ---- */

/* Append the GPT-2 byte-level spelling (UTF-8) of b[0..n) to out (capacity >= 2n + 1,
 * NUL-terminated); returns the length written. */
size_t lmf_tok_bytes_to_unicode(const char *b, size_t n, char *out);
/* Inverse: decode a byte-level spelling s[0..n) into bytes out (capacity >= n). Returns the
 * byte count, or -1 when s holds a character outside the 256-character alphabet or invalid
 * UTF-8. */
long lmf_tok_unicode_to_bytes(const char *s, size_t n, char *out);

/* ---- BPE of one pre-token (bpe.c) ---- */

lmf_tok_ctx *lmf_tok_ctx_create(void);
void lmf_tok_ctx_free(lmf_tok_ctx *c);
lmf_tok_ctx *lmf_tok_ctx_get(const lmf_tokenizer *t);   /* NULL when out of memory */
void lmf_tok_ctx_put(const lmf_tokenizer *t, lmf_tok_ctx *c);
void lmf_tok_pool_drain(lmf_tok_pool *p);               /* frees the pooled contexts */
/* The merge loop of lmf_tok_bpe_word; all give the same ids. */
typedef enum lmf_tok_bpe_method {
    LMF_TOK_BPE_AUTO = 0,   /* array for short words, heap for long ones */
    LMF_TOK_BPE_ARRAY = 1,  /* array rescans, O(n^2) */
    LMF_TOK_BPE_HEAP = 2,   /* a heap of (rank, position) over a linked list, O(n log n) */
} lmf_tok_bpe_method;
/* BPE-encode one pre-token w[0..n) (n >= 1) to ids; returns their count (<= n). ids must hold
 * n entries. Returns 0 when scratch memory cannot be had. */
size_t lmf_tok_bpe_word(const lmf_tokenizer *t, lmf_tok_ctx *c, const uint8_t *w, size_t n,
                        uint32_t *ids, lmf_tok_bpe_method method);
/* With t->ignore_merges, a piece that is a token is that token; when BPE makes every token
 * from its own bytes anyway, that rule changes nothing and costs a lookup a piece: clear it
 * then. LMF_ERR_NOMEM when scratch memory cannot be had. */
lmf_status lmf_tok_prune_whole_words(lmf_tokenizer *t);
/* tiktoken's order: build t->jtab. A token is made at a place only as BPE of its own bytes
 * makes it (merges inside its span never depend on what is outside), so the only pair that
 * ever joins into token z is the last merge of BPE(bytes of z), and only when that BPE gives
 * z itself; any other split of z, adjacent, is never the lowest pair (it would make z), so
 * leaving it out changes no output. cl100k_base: 233,378 splits, a table of 4 MiB, become
 * one pair per token. Nothing for GPT-2's order. LMF_ERR_NOMEM when memory cannot be had. */
lmf_status lmf_tok_build_join_table(lmf_tokenizer *t);
/* Encode text without special-token handling, appending to ids[cap] from *count on (ids past
 * cap are only counted). Returns LMF_ERR_NOMEM on allocation failure. */
lmf_status lmf_tok_encode_plain(const lmf_tokenizer *t, lmf_tok_ctx *c, const uint8_t *s,
                                size_t n, uint32_t *ids, size_t cap, size_t *count);

/* ---- loading one kind of file (load_gpt2.c, load_json.c, load_llmc.c, load_tiktoken.c); lmf_tok_load (load.c)
 * picks the kind. The parsers from memory are public (tokenizer.h). ---- */
lmf_status lmf_tok_load_gpt2_pair(const char *encoder_path, const char *merges_path,
                                  lmf_tokenizer **out);
lmf_status lmf_tok_load_llmc(const char *path, lmf_tokenizer **out);
/* 1 when the first line of buf[0..len) reads "BASE64 RANK" (a tiktoken file) */
int lmf_tok_looks_tiktoken(const char *buf, size_t len);
/* ---- tokenizer.json's post-processor (post.c) ---- */
struct json_t;
/* Read a post_processor (NULL or JSON null: none) into t->tpl; the vocabulary must be complete.
 * LMF_ERR_FORMAT naming `what` for an unsupported processor or an unknown token. */
lmf_status lmf_tok_parse_post(lmf_tokenizer *t, const struct json_t *pp, const char *what);
/* The post_processor object to write for t (ByteLevel, or a Sequence of ByteLevel and its
 * TemplateProcessing as Llama 3's); NULL when out of memory. */
struct json_t *lmf_tok_post_json(const lmf_tokenizer *t);

/* cl100k's pattern as tokenizer.json's Split spells it (load_json.c) */
extern const char *const lmf_tok_cl100k_regex;

/* ---- trainer trace, for tests: the trainer's final segmentation of every distinct word ---- */
typedef struct lmf_tok_train_trace {
    size_t n_words;
    char *word_bytes;       /* all words, concatenated */
    size_t *word_off;       /* [n_words + 1] */
    uint64_t *word_count;   /* [n_words] occurrences in the corpus */
    uint32_t *ids;          /* all words' ids, concatenated */
    size_t *ids_off;        /* [n_words + 1] */
} lmf_tok_train_trace;
lmf_status lmf_tok_train_buffer_traced(const char *text, size_t len, const lmf_tok_train_opts *o,
                                       lmf_tokenizer **out, lmf_tok_train_trace *trace);
void lmf_tok_train_trace_free(lmf_tok_train_trace *tr);

/* ---- input files (read_file.c) ---- */
/* Read a whole file into a malloc'd buffer (NUL-terminated, *len without the NUL). Fails with
 * LMF_ERR_IO ("PATH: cannot open: REASON", "PATH: not a regular file", "PATH: read failed") or
 * LMF_ERR_NOMEM; *data is NULL on failure. */
lmf_status lmf_tok_read_file(const char *path, char **data, size_t *len);
/* A parser of one kind of file from memory (lmf_tok_parse_hf_json, lmf_tok_parse_tiktoken) */
typedef lmf_status (*lmf_tok_parse_fn)(const char *buf, size_t len, const char *what,
                                       lmf_tokenizer **out);
/* Read the file at path and parse it with `parse`, the path naming it in messages */
lmf_status lmf_tok_load_file(const char *path, lmf_tok_parse_fn parse, lmf_tokenizer **out);

#endif

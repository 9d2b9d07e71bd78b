/* Byte-level BPE tokenizers (GPT-2's and cl100k's / Llama 3's patterns): load, train, encode, decode, save, benchmark. */
/* A loaded tokenizer is read-only: encode, decode and the getters may be called from many
 * threads at once (each encode call borrows a word cache from a pool). */
#ifndef LMFORGE_TOKENIZER_H
#define LMFORGE_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>
#include "lmforge/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lmf_tokenizer lmf_tokenizer;

/* The pre-tokenizer's pattern: the regular expression that cuts text into pieces before BPE. */
typedef enum lmf_tok_pattern {
    /* GPT-2's: 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ */
    LMF_TOK_PATTERN_GPT2 = 0,
    /* cl100k_base's, also Llama 3's: (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|
     * \p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+ */
    LMF_TOK_PATTERN_CL100K = 1,
} lmf_tok_pattern;
/* "gpt2" or "cl100k" */
const char *lmf_tok_pattern_name(lmf_tok_pattern p);
/* The pattern named s ("gpt2", "cl100k"); LMF_ERR_ARG with a message for another name. */
lmf_status lmf_tok_pattern_parse(const char *s, lmf_tok_pattern *p);
/* The pattern of a tokenizer */
lmf_tok_pattern lmf_tok_get_pattern(const lmf_tokenizer *t);

/* Load from a directory holding encoder.json + vocab.bpe (or the same pair named vocab.json +
 * merges.txt), or tokenizer.json (either is enough; tokenizer.json is preferred when both
 * exist), or a tiktoken file named tokenizer.model or *.tiktoken (when neither of the others
 * is there), or from a path to one of those files, to a tiktoken file (recognised by its first
 * line; see lmf_tok_parse_tiktoken) or to an llm.c tokenizer file (recognised by its magic
 * number; see lmf_tok_parse_llmc). Fails with LMF_ERR_IO when no file can be read
 * and LMF_ERR_FORMAT, with a message naming the file and the fault, for malformed or
 * unsupported files (bad JSON, unknown or repeated merges, duplicate ids, a missing byte
 * token, a tokenizer.json pipeline other than a byte-level BPE with GPT-2's or cl100k's
 * pattern). A tokenizer.json's pre_tokenizer is GPT-2's ByteLevel, or a Sequence of a Split
 * carrying cl100k's pattern (behavior Isolated) and ByteLevel without its own regex, as Llama
 * 3's is. Its post_processor may be ByteLevel, TemplateProcessing (Llama 3's adds
 * <|begin_of_text|> in front of a text) or a Sequence of them: the template's tokens are what
 * lmf_tok_template gives and lmf_tok_encode_template adds; lmf_tok_encode never adds them. */
lmf_status lmf_tok_load(const char *path, lmf_tokenizer **out);
void lmf_tok_free(lmf_tokenizer *t);

/* The same from memory, one kind of file each (the fuzz harnesses use them). The result and
 * the failures are lmf_tok_load's, with the given names in the messages.
 * GPT-2's pair: enc[0..enc_len) is encoder.json (token -> id), merges[0..merges_len) is
 * vocab.bpe (one merge per line); enc_name and merges_name name them in messages (a fault of
 * the vocabulary as a whole names enc_name). */
lmf_status lmf_tok_parse_gpt2_pair(const char *enc, size_t enc_len, const char *enc_name,
                                   const char *merges, size_t merges_len, const char *merges_name,
                                   lmf_tokenizer **out);
/* Hugging Face tokenizer.json: json[0..len), named `what` in messages. */
lmf_status lmf_tok_parse_hf_json(const char *json, size_t len, const char *what,
                                 lmf_tokenizer **out);

/* tiktoken's BPE file (cl100k_base.tiktoken; Llama 3's tokenizer.model): one "BASE64 RANK"
 * line per token, the rank being its id; buf[len] is the whole file, `what` names it in
 * messages. The pattern is cl100k's and BPE follows tiktoken: the pair whose concatenation
 * has the lowest rank merges first (the leftmost of equals), and a piece that is itself a
 * token is that token. The file holds no special tokens; those of the two published files
 * are added, recognised by the rank count: 100,256 ranks (cl100k_base) get <|endoftext|>
 * 100257, <|fim_prefix|> 100258, <|fim_middle|> 100259, <|fim_suffix|> 100260,
 * <|endofprompt|> 100276; 128,000 ranks (Llama 3) get Llama 3's 256 from 128000 on
 * (<|begin_of_text|>, <|end_of_text|>, <|reserved_special_token_0..3|>, <|start_header_id|>,
 * <|end_header_id|>, <|reserved_special_token_4|>, <|eot_id|>, then
 * <|reserved_special_token_5..250|>). Another count gets none. Fails with LMF_ERR_FORMAT
 * naming the line for a malformed line, bad base64, a repeated token or rank, or a missing
 * byte token. */
lmf_status lmf_tok_parse_tiktoken(const char *buf, size_t len, const char *what,
                                  lmf_tokenizer **out);

/* Number of ids (including special tokens): the model's vocab_size. */
int lmf_tok_vocab_size(const lmf_tokenizer *t);
/* id of <|endoftext|>, else of <|end_of_text|>, else of the first special token; -1 if none */
int lmf_tok_eot(const lmf_tokenizer *t);
/* id of the special token <|begin_of_text|> (Llama 3's start of a text), else lmf_tok_eot */
int lmf_tok_bos(const lmf_tokenizer *t);

/* Encode len bytes of text (any bytes: invalid UTF-8 is kept, byte for byte) into ids[cap];
 * *n_out gets the count, never more than len. If the output would not fit, returns
 * LMF_ERR_ARG with *n_out set to the count needed. Special tokens in the text are recognised
 * only when allow_special is non-zero; otherwise they are plain text. */
lmf_status lmf_tok_encode(const lmf_tokenizer *t, const char *text, size_t len, int allow_special,
                          uint32_t *ids, size_t cap, size_t *n_out);
/* The special tokens a tokenizer.json's post-processor template puts around one text, as
 * Hugging Face's tokenizer(text) does by default (add_special_tokens=True): prefix[n_prefix]
 * before the text's ids, suffix[n_suffix] after. Both counts are 0 for a tokenizer without a
 * template (GPT-2's, tiktoken files, trained ones). The arrays belong to t. */
void lmf_tok_template(const lmf_tokenizer *t, const uint32_t **prefix, size_t *n_prefix,
                      const uint32_t **suffix, size_t *n_suffix);
/* lmf_tok_encode with the template's tokens around the text's ids: Llama 3's tokenizer.json
 * gives <|begin_of_text|> then the text's ids. *n_out counts them all; LMF_ERR_ARG with the
 * needed count when they do not fit in cap. */
lmf_status lmf_tok_encode_template(const lmf_tokenizer *t, const char *text, size_t len,
                                   int allow_special, uint32_t *ids, size_t cap, size_t *n_out);
/* Decode ids into bytes out[cap]; *n_out gets the byte count (needed size if it does not fit,
 * with LMF_ERR_ARG). Ids out of range fail with LMF_ERR_ARG. */
lmf_status lmf_tok_decode(const lmf_tokenizer *t, const uint32_t *ids, size_t n, char *out,
                          size_t cap, size_t *n_out);
/* bytes of one token (not NUL-terminated); NULL for an unknown id */
const char *lmf_tok_token_bytes(const lmf_tokenizer *t, uint32_t id, size_t *len);

/* 1 when id is a special token (recognised in text only with allow_special), else 0 */
int lmf_tok_is_special(const lmf_tokenizer *t, uint32_t id);
/* number of merges (ranks) */
int lmf_tok_num_merges(const lmf_tokenizer *t);

/* llm.c tokenizer files: 256 little-endian uint32 header: [0] magic 20240328, [1] version (1 or
 * 2), [2] vocab_size, [3] end-of-text id (version 2; version 1 means GPT-2: 50257 ids,
 * end-of-text 50256); then per id a uint8 length (>= 1) and that many bytes. The result
 * decodes ids; it has no merges, so encoding text with it gives one id per byte (GPT-2's real
 * encoding needs its merges). buf[len] is the whole file; `what` names it in messages. */
#define LMF_LLMC_TOKENIZER_MAGIC 20240328
lmf_status lmf_tok_parse_llmc(const void *buf, size_t len, const char *what, lmf_tokenizer **out);
/* 1 when t can only decode (it came from an llm.c tokenizer file, see above) */
int lmf_tok_decode_only(const lmf_tokenizer *t);

/* A cut point in text[0..len): the first p >= from (p >= 1) such that encoding text[0..p) and
 * text[p..len) separately (without special tokens) gives exactly the ids of encoding the
 * whole, for every tokenizer; len when there is none. Used to encode long texts in pieces,
 * on several threads. */
size_t lmf_tok_split_point(const char *text, size_t len, size_t from);

/* Train a byte-level BPE on the text of the given files (each pre-tokenised on its own) or
 * buffer, with the pre-tokenisation of o->pattern (GPT-2's by default), deterministically (the
 * same result for any thread count), to vocab_size ids in total: 256 byte tokens (id = byte value), one token per merge,
 * then the special tokens (the last ids, as in GPT-2). Special-token strings in the text are
 * plain text. Stops early, with fewer ids, when no pair is left to merge. specials:
 * NULL-terminated list (NULL = {"<|endoftext|>", NULL}; an empty list = none).
 * Fails with LMF_ERR_ARG for vocab_size < 256 + number of specials or for special tokens that
 * are empty, repeated, not valid UTF-8 or equal to an ordinary token; LMF_ERR_IO for
 * unreadable files. */
typedef struct lmf_tok_train_opts {
    int vocab_size;
    const char *const *specials;
    int threads;            /* 0 = all cores */
    int verbose;            /* progress to stderr */
    lmf_tok_pattern pattern; /* the pre-tokenizer (0 = GPT-2's) */
} lmf_tok_train_opts;
lmf_status lmf_tok_train_files(const char *const *paths, int n_paths, const lmf_tok_train_opts *o,
                               lmf_tokenizer **out);
lmf_status lmf_tok_train_buffer(const char *text, size_t len, const lmf_tok_train_opts *o,
                                lmf_tokenizer **out);
/* Write encoder.json, vocab.bpe (GPT-2's pair, only for GPT-2's pattern: the pair cannot say
 * another) and tokenizer.json (Hugging Face, byte-level BPE; with cl100k's pattern as Llama
 * 3's is written) into dir, created if missing; each file goes to a temporary name and is renamed into
 * place when complete. Fails with LMF_ERR_IO when a file cannot be written. */
lmf_status lmf_tok_save(const lmf_tokenizer *t, const char *dir);
/* Write tokenizer_config.json into dir for transformers' AutoTokenizer beside a Hugging Face
 * model: tokenizer_class PreTrainedTokenizerFast, which reads tokenizer.json as it is (without
 * it, a Llama config.json's model_type picks LlamaTokenizerFast, whose defaults are
 * SentencePiece's <s> and </s> and a template adding <s>), as Llama 3's own directories have it;
 * bos_token (<|begin_of_text|> when the vocabulary has it, else the end-of-text token) and
 * eos_token (the end-of-text token), when there is one; model_max_length when > 0. */
lmf_status lmf_tok_save_hf_config(const lmf_tokenizer *t, const char *dir, int model_max_length);

/* Benchmark (`lmforge bench tokenizer`). lmf_tok_bench loads the tokenizer, joins the input
 * files' text and measures, each `repeat` times keeping the best: encoding on one thread cold
 * (a freshly loaded tokenizer per run, its word cache empty) and warm, wall and this thread's
 * CPU time; decoding; and encoding on `threads` threads, the text cut at lmf_tok_split_point
 * into pieces of about 64 KiB (after one warm-up run). A mismatch is a result (exact,
 * roundtrip), not a failure. Fails with LMF_ERR_ARG (no inputs, no text, repeat < 1),
 * LMF_ERR_IO (unreadable files), lmf_tok_load's failures, or LMF_ERR_NOMEM. */
typedef struct lmf_tok_bench_opts {
    const char *tokenizer;        /* a path for lmf_tok_load */
    const char *const *inputs;    /* text files, joined in this order: the text */
    int n_inputs;
    int threads;                  /* threads of the parallel runs; 0 = all cores */
    int repeat;                   /* timed runs per measurement, the best kept (>= 1) */
} lmf_tok_bench_opts;
typedef struct lmf_tok_bench_result {
    int vocab_size;
    int threads;                  /* threads of the parallel runs */
    size_t bytes;                 /* bytes of text */
    size_t n_ids;                 /* its ids */
    double cold_s, cold_cpu_s;    /* one thread, empty word cache: wall and CPU seconds */
    double warm_s, warm_cpu_s;    /* one thread, warm word cache */
    double parallel_s;            /* `threads` threads, warm */
    double decode_s;              /* decoding the ids, one thread */
    int exact;                    /* 1: every run gave the ids of the first one */
    int roundtrip;                /* 1: decoding gave the text back */
} lmf_tok_bench_result;
lmf_status lmf_tok_bench(const lmf_tok_bench_opts *o, lmf_tok_bench_result *r);

/* What lmf_tok_bench_train trains on. */
typedef enum lmf_tok_bench_text {
    LMF_TOK_BENCH_FILES,          /* the input files, each pre-tokenised on its own
                                   * (lmf_tok_train_files) */
    LMF_TOK_BENCH_REPEATED,       /* their text joined, repeated and cut to `bytes` bytes, as one
                                   * buffer (lmf_tok_train_buffer) */
} lmf_tok_bench_text;
typedef struct lmf_tok_bench_train_opts {
    const char *const *inputs;
    int n_inputs;
    lmf_tok_bench_text text;
    size_t bytes;                 /* LMF_TOK_BENCH_REPEATED: bytes of training text (> 0) */
    int vocab_size;               /* as lmf_tok_train_opts (default special tokens) */
    int threads;                  /* 0 = all cores */
} lmf_tok_bench_train_opts;
typedef struct lmf_tok_bench_train_result {
    int vocab_size;               /* ids of the trained vocabulary */
    size_t bytes;                 /* bytes trained on */
    size_t input_bytes;           /* bytes of the input files */
    double seconds;               /* wall time of the training call alone */
} lmf_tok_bench_train_result;
/* Time one training run (the vocabulary is discarded). Fails as lmf_tok_train_files /
 * lmf_tok_train_buffer do, and with LMF_ERR_ARG for no inputs or a zero `bytes`. */
lmf_status lmf_tok_bench_train(const lmf_tok_bench_train_opts *o, lmf_tok_bench_train_result *r);

#ifdef __cplusplus
}
#endif
#endif

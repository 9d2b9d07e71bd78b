/* Model files: the config.json codec, Hugging Face GPT-2 directories, llm.c checkpoints, and
 * loading a model from any of them (or from an lmforge run or checkpoint, ckpt_format.h). */
#ifndef LMFORGE_FORMATS_H
#define LMFORGE_FORMATS_H

#include <stddef.h>
#include <stdint.h>
#include "lmforge/config.h"
#include "lmforge/kernels.h"
#include "lmforge/model.h"
#include "lmforge/safetensors.h"
#include "lmforge/status.h"
#include "lmforge/tokenizer.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- config.json: the one codec for every model directory, run and checkpoint ----
 * Read as transformers reads a GPT2Config: n_layer, n_head, n_embd, n_positions, vocab_size,
 * or their attribute_map names num_hidden_layers, num_attention_heads, hidden_size,
 * max_position_embeddings (n_ctx in older files); an absent key takes GPT2Config's default
 * (12, 12, 768, 1024, 50257). Settings lmforge does not compute exactly (model_type other
 * than gpt2, another activation or LayerNorm epsilon, n_inner other than 4 * n_embd, untied
 * embeddings, attention scaled by layer, cross-attention) are refused (LMF_ERR_FORMAT) with a
 * message naming the file and the key; an impossible shape is LMF_ERR_ARG. */
lmf_status lmf_config_read(const char *path, lmf_gpt_config *out);
/* Write config.json for transformers' GPT2LMHeadModel, atomically; eot: bos/eos_token_id, or
 * -1 for the last id. */
lmf_status lmf_config_write(const char *path, const lmf_gpt_config *c, int eot);
/* The same with torch_dtype naming the weights' type (LMF_BF16: "bfloat16", LMF_F16:
 * "float16", else "float32"), as transformers writes it beside bf16 or fp16 weights. */
lmf_status lmf_config_write_as(const char *path, const lmf_gpt_config *c, int eot, lmf_dtype dtype);
/* The same with bos_token_id apart from eos_token_id = eot (bos < 0: eot), as Llama 3's
 * config.json has them (128000 and 128001). */
lmf_status lmf_config_write_ids(const char *path, const lmf_gpt_config *c, int bos, int eot,
                                lmf_dtype dtype);

/* ---- llm.c checkpoints ----
 * 256 little-endian int32 header: [0] magic 20240326, [1] version (3: fp32 tensors, 5: bf16
 * tensors), [2] max_seq_len, [3] vocab_size, [4] num_layers, [5] num_heads, [6] channels,
 * [7] padded_vocab_size; then 16 tensors, each for all layers at once: wte (Vp,C), wpe (maxT,C),
 * ln1w (L,C), ln1b (L,C), qkvw (L,3C,C), qkvb (L,3C), attprojw (L,C,C), attprojb (L,C),
 * ln2w (L,C), ln2b (L,C), fcw (L,4C,C), fcb (L,4C), fcprojw (L,C,4C), fcprojb (L,C), lnfw (C),
 * lnfb (C). Linear weights are (out, in): the transpose of Hugging Face's Conv1D (in, out). */
#define LMF_LLMC_MAGIC 20240326
#define LMF_LLMC_TOKENIZER_MAGIC 20240328
#define LMF_LLMC_HEADER_BYTES 1024
#define LMF_LLMC_VOCAB_MULTIPLE 128  /* llm.c pads wte rows to a multiple of 128 on export */

typedef struct lmf_llmc_header {
    int version;          /* 3 (fp32) or 5 (bf16) */
    lmf_gpt_config cfg;   /* n_positions = max_seq_len */
    int padded_vocab;     /* rows of wte in the file (>= vocab_size) */
} lmf_llmc_header;

/* Validate an llm.c checkpoint header. buf holds the first len bytes of a file of file_size
 * bytes (len >= min(file_size, 1024)). Checks the magic, the version, the shapes (positive,
 * n_embd divisible by n_head, padded >= vocab) and that file_size equals the header plus the
 * tensors the header implies exactly. Errors (LMF_ERR_FORMAT) name `what` and the problem. */
lmf_status lmf_llmc_parse_header(const void *buf, size_t len, uint64_t file_size, const char *what,
                                 lmf_llmc_header *out);
/* Create a model from an llm.c checkpoint file (fp32 or bf16; padded wte rows are dropped). */
lmf_status lmf_llmc_load(const char *path, const lmf_kernels *k, lmf_gpt **out);
/* The same from a whole file held in memory (what names it in messages; used by fuzzing). */
lmf_status lmf_llmc_load_buffer(const void *buf, size_t len, const char *what,
                                const lmf_kernels *k, lmf_gpt **out);
/* Write the model's weights as an llm.c checkpoint (version 3: fp32, 5: bf16 rounded to nearest
 * even), wte padded with zero rows to a multiple of 128; atomically (PATH.tmp, renamed). */
lmf_status lmf_llmc_save(lmf_gpt *m, const char *path, int version);

/* ---- Hugging Face GPT-2 and Llama directories ----
 * config.json (GPT2Config or LlamaConfig) with model.safetensors, or with model.safetensors.index.json naming
 * the shard of every tensor. Tensors F32, F16 or BF16, names with or without "transformer.";
 * the attention buffers h.N.attn.bias / h.N.attn.masked_bias are ignored; a lm_head.weight must
 * equal wte (tied). Configurations lmforge does not compute exactly (another activation, layer
 * norm epsilon, untied head, ...) are refused with a message. */
lmf_status lmf_hf_load(const char *dir, const lmf_kernels *k, lmf_gpt **out);
/* Load the weights of dir (single file or sharded) into m, whose configuration must match. */
lmf_status lmf_hf_load_weights(lmf_gpt *m, const char *dir);
/* Write dir/config.json (GPT2Config keys for transformers' GPT2LMHeadModel, or LlamaConfig's) and
 * dir/model.safetensors (fp32, __metadata__ {"format": "pt"}; split into shards past
 * LMF_HF_MAX_SHARD_DEFAULT, see lmf_hf_save_with); eot: the end-of-text id for
 * bos/eos_token_id, or -1 for the last id. dir is created if missing. */
lmf_status lmf_hf_save(lmf_gpt *m, const char *dir, int eot);
/* Write only the weights to a safetensors file at path (Hugging Face names and shapes, fp32,
 * __metadata__ {"format": "pt"}), atomically. Needs the model's own parameter block. */
lmf_status lmf_hf_save_weights(lmf_gpt *m, const char *path);
/* lmf_hf_save with the tensors in dtype (LMF_F32, LMF_BF16 or LMF_F16, rounded to nearest
 * even; LMF_ERR_ARG otherwise). A Llama model also gets generation_config.json (its bos and
 * eos token ids). */
lmf_status lmf_hf_save_as(lmf_gpt *m, const char *dir, int eot, lmf_dtype dtype);

/* The largest weights file lmf_hf_save and lmf_hf_save_as write before splitting: 5 GB (10^9
 * bytes), transformers' save_pretrained default max_shard_size. */
#define LMF_HF_MAX_SHARD_DEFAULT 5000000000ull
typedef struct lmf_hf_save_opts {
    lmf_dtype dtype;            /* LMF_F32, LMF_BF16 or LMF_F16 */
    uint64_t max_shard_bytes;   /* tensor bytes per weights file; 0 = LMF_HF_MAX_SHARD_DEFAULT */
    int bos;                    /* bos_token_id (lmf_tok_bos); < 0: the eot argument */
} lmf_hf_save_opts;
/* lmf_hf_save_as, splitting the weights as transformers' save_pretrained does: tensors in the
 * layout's order fill a file until the next would take it past max_shard_bytes of tensor data
 * (a larger tensor gets a file of its own). One file is model.safetensors; more are
 * model-00001-of-0000N.safetensors ... with model.safetensors.index.json ({"metadata":
 * {"total_size": tensor bytes}, "weight_map": {name: file}}). All or nothing: every weights
 * file is written and synced under a staging name (NAME.staged) first, and only when all are
 * complete are they renamed into place and the index written (the index last: it commits a
 * split save); a failure while writing (a full disk, an unwritable file) removes this save's
 * files and leaves the directory's previous weights as they were. After the new weights are in
 * place, the ones they replace (model.safetensors, an index, model-*-of-*.safetensors files
 * not in the new index) are removed, so the directory holds one model. More than 99,999 files
 * fail with LMF_ERR_ARG (give a larger max_shard_bytes). */
lmf_status lmf_hf_save_with(lmf_gpt *m, const char *dir, int eot, const lmf_hf_save_opts *o);

/* ---- any format ---- */
typedef enum lmf_model_format {
    LMF_MODEL_UNKNOWN = 0,
    LMF_MODEL_HF,       /* config.json + model.safetensors (or its sharded index) */
    LMF_MODEL_RUN,      /* an lmforge run directory with its exported model */
    LMF_MODEL_LLMC,     /* an llm.c checkpoint file */
    LMF_MODEL_CKPT      /* an lmforge training checkpoint (or a run that has only those) */
} lmf_model_format;

/* "hf", "lmforge", "llmc", "lmforge-checkpoint" */
const char *lmf_model_format_name(lmf_model_format f);

/* Find what path holds, from its content: the format and the path to load it from (the
 * directory itself, the newest complete checkpoint of a run directory that has no exported
 * model, the llm.c file). A path to a
 * file inside a model directory (config.json, *.safetensors) means that directory. Fails with
 * a message saying what was found instead (a token file, a tokenizer file, ...). */
lmf_status lmf_model_detect(const char *path, lmf_model_format *fmt, char *load_path, size_t cap);
/* Create a model from a Hugging Face directory, an lmforge model or run directory, or an llm.c
 * checkpoint, whichever path holds. */
lmf_status lmf_model_load_any(const char *path, const lmf_kernels *k, lmf_gpt **out);
/* The configuration of the model lmf_model_load_any would create from path, read without its
 * weights (config.json, a checkpoint's verified config.json, an llm.c header): what a memory
 * check needs before gigabytes are read. */
lmf_status lmf_model_config_any(const char *path, lmf_gpt_config *cfg);

/* The tokenizer that belongs to a model path (directory or llm.c file): DIR/tokenizer/,
 * DIR/tokenizer.json, DIR/encoder.json, DIR/vocab.json, then llm.c's gpt2_tokenizer.bin or
 * tokenizer.bin, in the directory (or beside the file). *out = NULL and LMF_OK when there is
 * none; a tokenizer file that exists but is broken is an error. */
lmf_status lmf_model_find_tokenizer(const char *model_path, lmf_tokenizer **out);

#ifdef __cplusplus
}
#endif
#endif

/* Internals shared by the Hugging Face GPT-2 reader and writer (src/io/hf*.c). */
#ifndef LMF_IO_HF_INTERNAL_H
#define LMF_IO_HF_INTERNAL_H

#include "lmforge/config.h"
#include "lmforge/status.h"

/* Write a GPT2Config config.json for c at path (atomically); eot: bos/eos id, or -1 for the
 * last id. */
lmf_status lmf_hf_write_config(const char *path, const lmf_gpt_config *c, int eot);

#endif

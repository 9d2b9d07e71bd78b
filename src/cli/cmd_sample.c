/* lmforge sample: generate text from a model with a key/value cache. */
#include <stdio.h>
#include <string.h>

#include "cli/args.h"
#include "cli/cli_util.h"
#include "cli/commands.h"
#include "lmforge/formats.h"
#include "lmforge/model.h"

int lmf_cmd_sample(int argc, char **argv) {
    const char *model = NULL, *prompt = NULL, *kernels = "fast";
    int tokens = 200, top_k = 0;
    double temperature = 1.0, top_p = 1.0;
    int64_t seed = 1337;
    lmf_opt opts[] = {
        {"--model", LMF_OPT_STR, &model, "MODEL_DIR", "model: lmforge run or model directory, Hugging Face GPT-2 directory or llm.c checkpoint", LMF_NOLIMIT, NULL},
        {"--prompt", LMF_OPT_STR, &prompt, "TEXT", "text to continue (ids when the model has no tokenizer)", LMF_NOLIMIT, NULL},
        {"--tokens", LMF_OPT_INT, &tokens, "N", "tokens to generate (default 200)", 0, 1e7, NULL},
        {"--temperature", LMF_OPT_DOUBLE, &temperature, "X", "softmax temperature (default 1; 0 = greedy)", 0, 100, NULL},
        {"--top-k", LMF_OPT_INT, &top_k, "K", "sample among the K most likely tokens (default 0 = all)", 0, 1e8, NULL},
        {"--top-p", LMF_OPT_DOUBLE, &top_p, "P", "nucleus sampling mass (default 1 = off)", 1e-6, 1, NULL},
        {"--seed", LMF_OPT_I64, &seed, "S", "random seed (default 1337)", 0, 9.2e18, NULL},
        {"--kernels", LMF_OPT_STR, &kernels, "ref|fast", "kernel backend (default fast)", LMF_NOLIMIT, NULL},
    };
    int r = lmf_args_parse("sample", "--model MODEL_DIR [options]", opts,
                           (int)(sizeof opts / sizeof opts[0]), argc, argv, NULL, 0, NULL);
    if (r) return r == 1 ? 0 : 2;
    if (!model) { lmf_cli_error("sample", "--model is required"); return 2; }
    const lmf_kernels *k = lmf_kernels_by_name(kernels);
    if (!k) { lmf_cli_error("sample", "--kernels must be ref or fast, got '%s'", kernels); return 2; }
    lmf_gpt *m = NULL;
    lmf_tokenizer *tok = NULL;
    int rc = 1;
    if (lmf_model_load_any(model, k, &m) != LMF_OK) goto fail;
    if (lmf_model_find_tokenizer(model, &tok) != LMF_OK) goto fail;
    if (tok && lmf_tok_vocab_size(tok) > lmf_gpt_cfg(m)->vocab_size) {
        lmf_cli_error("sample", "the tokenizer has %d ids but the model only %d",
                      lmf_tok_vocab_size(tok), lmf_gpt_cfg(m)->vocab_size);
        goto out;
    }
    if (tok && prompt && *prompt && lmf_tok_decode_only(tok)) {
        lmf_cli_error("sample", "this model's tokenizer (llm.c's .bin) can only decode: put GPT-2's "
                      "tokenizer.json or encoder.json + vocab.bpe beside the model to use --prompt");
        goto out;
    }
    int made = 0;
    if (lmf_cli_generate(m, tok, prompt, tokens, (float)temperature, top_k, (float)top_p,
                         (uint64_t)seed, stdout, &made) != LMF_OK)
        goto fail;
    if (made < tokens)
        fprintf(stderr, "lmforge sample: note: stopped after %d tokens: the model's context of %d "
                "positions is full\n", made, lmf_gpt_cfg(m)->n_positions);
    rc = 0;
    goto out;
fail:
    lmf_cli_error("sample", "%s", lmf_last_error());
out:
    lmf_tok_free(tok);
    lmf_gpt_free(m);
    return rc;
}

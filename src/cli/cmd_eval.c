/* lmforge eval: mean loss of a model over the first K batches of token files, in file order. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/args.h"
#include "cli/commands.h"
#include "lmforge/formats.h"
#include "lmforge/data.h"
#include "lmforge/model.h"
#include "lmforge/threads.h"
#include "lmforge/train.h"

int lmf_cmd_eval(int argc, char **argv) {
    const char *model = NULL, *data = NULL, *kernels = "fast";
    int B = 4, T = 0, batches = 0, json = 0, threads = 0, doc_mask = 0, eot = -1;
    lmf_opt opts[] = {
        {"--model", LMF_OPT_STR, &model, "MODEL_DIR", "lmforge or Hugging Face model directory, or llm.c checkpoint", LMF_NOLIMIT, NULL},
        {"--data", LMF_OPT_STR, &data, "SPEC", "token files (FILE.bin, DIR, 'GLOB', a comma list; read in file order)", LMF_NOLIMIT, NULL},
        {"--batch", LMF_OPT_INT, &B, "B", "batch size (default 4)", 1, 1e6, NULL},
        {"--seq", LMF_OPT_INT, &T, "T", "sequence length (default: the model's n_positions)", 1, 1e7, NULL},
        {"--batches", LMF_OPT_INT, &batches, "K", "batches to average (default: all that fit)", 1, 1e9, NULL},
        {"--json", LMF_OPT_FLAG, &json, NULL, "print one JSON object", LMF_NOLIMIT, NULL},
        {"--threads", LMF_OPT_INT, &threads, "N", "compute threads (default: all cores)", 0, 4096, NULL},
        {"--kernels", LMF_OPT_STR, &kernels, "ref|fast", "kernel backend (default fast)", LMF_NOLIMIT, NULL},
        {"--doc-mask", LMF_OPT_FLAG, &doc_mask, NULL, "document masking: attention does not cross end-of-text tokens (the id: --eot-id, else the model's tokenizer)", LMF_NOLIMIT, NULL},
        {"--eot-id", LMF_OPT_INT, &eot, "N", "the data's end-of-text id, for --doc-mask", 0, 1e9, NULL},
    };
    int r = lmf_args_parse("eval", "--model MODEL_DIR --data SHARD [options]", opts,
                           (int)(sizeof opts / sizeof opts[0]), argc, argv, NULL, 0, NULL);
    if (r) return r == 1 ? 0 : 2;
    if (!model || !data) { lmf_cli_error("eval", "--model and --data are required"); return 2; }
    if (eot >= 0 && !doc_mask) {
        lmf_cli_error("eval", "--eot-id is the end-of-text id of --doc-mask: give --doc-mask too, "
                      "or drop --eot-id");
        return 2;
    }
    const lmf_kernels *k = lmf_kernels_by_name(kernels);
    if (!k) { lmf_cli_error("eval", "--kernels must be ref or fast, got '%s'", kernels); return 2; }
    lmf_threads_set(threads);
    lmf_gpt *m = NULL;
    lmf_dataset *s = NULL;
    uint32_t mx = 0;
    lmf_loader *l = NULL;
    int32_t *in = NULL, *tg = NULL;
    int rc = 1;
    if (lmf_model_load_any(model, k, &m) != LMF_OK) goto fail;
    if (T == 0) T = lmf_gpt_cfg(m)->n_positions;
    if (doc_mask && eot < 0) { /* the model's tokenizer names it */
        lmf_tokenizer *tok = NULL;
        if (lmf_model_find_tokenizer(model, &tok) != LMF_OK) goto fail;
        eot = tok ? lmf_tok_eot(tok) : -1;
        lmf_tok_free(tok);
        if (eot < 0) {
            lmf_cli_error("eval", "--doc-mask needs the data's end-of-text id, and %s has no "
                          "tokenizer that names one: give --eot-id N", model);
            rc = 2;
            goto out;
        }
    }
    if (doc_mask && lmf_gpt_set_doc_mask(m, eot) != LMF_OK) goto fail;
    if (lmf_dataset_open(data, &s) != LMF_OK || lmf_dataset_max_token(s, &mx) != LMF_OK) goto fail;
    if ((int64_t)mx >= lmf_gpt_cfg(m)->vocab_size) {
        lmf_cli_error("eval", "%s holds token id %u, outside the model's vocabulary (%d)", data,
                      mx, lmf_gpt_cfg(m)->vocab_size);
        goto out;
    }
    if (lmf_gpt_reserve(m, B, T, LMF_RESERVE_INFERENCE) != LMF_OK) goto fail;
    if (lmf_loader_create(s, B, T, 0, 0, &l) != LMF_OK) goto fail;
    uint64_t avail = lmf_loader_num_windows(l) / (uint64_t)B;
    if (batches == 0 || (uint64_t)batches > avail) batches = (int)avail;
    in = malloc((size_t)B * T * sizeof(int32_t));
    tg = malloc((size_t)B * T * sizeof(int32_t));
    if (!in || !tg) { lmf_cli_error("eval", "out of memory"); goto out; }
    double mean = 0.0;
    if (lmf_evaluate(m, l, B, T, batches, in, tg, &mean) != LMF_OK) goto fail;
    if (json)
        printf("{\"loss\": %.7g, \"batches\": %d, \"batch\": %d, \"seq\": %d, \"tokens\": %lld}\n",
               mean, batches, B, T, (long long)batches * B * T);
    else
        printf("loss %.6f over %d batches of %d x %d (%lld tokens)\n", mean, batches, B, T,
               (long long)batches * B * T);
    rc = 0;
    goto out;
fail:
    lmf_cli_error("eval", "%s", lmf_last_error());
out:
    free(in);
    free(tg);
    lmf_loader_free(l);
    lmf_dataset_close(s);
    lmf_gpt_free(m);
    return rc;
}

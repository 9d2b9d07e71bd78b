/* The --model argument of plan and bench: a preset name or a config.json path. */
#include <string.h>

#include "cli/cli_util.h"
#include "lmforge/config.h"
#include "lmforge/formats.h"

lmf_status lmf_cli_model_config(const char *arg, lmf_gpt_config *cfg) {
    size_t l = strlen(arg);
    int is_file = strchr(arg, '/') || (l > 5 && strcmp(arg + l - 5, ".json") == 0);
    LMF_TRY(is_file ? lmf_config_read(arg, cfg) : lmf_config_preset(arg, cfg));
    return lmf_config_validate(cfg);
}

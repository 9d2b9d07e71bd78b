/* Data specs (file, directory, glob, list, weighted mixture, mixture JSON) -> sources of paths. */
#ifndef LMFORGE_DATA_SPEC_H
#define LMFORGE_DATA_SPEC_H

#include "lmforge/status.h"

typedef struct lmf_spec_source {
    char *name;
    double weight;      /* as given (> 0); 1 for an unweighted spec */
    char **paths;       /* [n_paths] token files, in reading order */
    int n_paths;
} lmf_spec_source;

typedef struct lmf_spec {
    lmf_spec_source *src;
    int n_src;
} lmf_spec;

/* Expand spec into sources of paths (lmforge/data.h, lmf_dataset_open, says the forms). Fails
 * with LMF_ERR_ARG naming the part that is wrong: a bad weight, weighted and unweighted items
 * mixed, a glob or directory that matches no token file, a malformed mixture file; *out is
 * empty on failure. The paths are not opened. */
lmf_status lmf_spec_parse(const char *spec, lmf_spec *out);
void lmf_spec_free(lmf_spec *s);

#endif

/* Numeric-fault test hook: the parser of LMF_INJECT_NAN_STEPS. */
#include "ckpt/ckpt_fault.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

lmf_status lmf_fault_parse_inject(const char *text, int64_t **steps, int *n) {
    *steps = NULL;
    *n = 0;
    if (!text || !*text) return LMF_OK;
    int cap = 1;
    for (const char *p = text; *p; p++) cap += *p == ',';
    if (cap > 100000)
        return lmf_fail(LMF_ERR_ARG, "LMF_INJECT_NAN_STEPS: more than 100000 entries");
    int64_t *v = malloc((size_t)cap * sizeof *v);
    if (!v) return lmf_fail(LMF_ERR_NOMEM, "out of memory reading LMF_INJECT_NAN_STEPS");
    int k = 0;
    const char *p = text;
    while (*p) {
        char *end;
        errno = 0;
        long long x = strtoll(p, &end, 10);
        if (end == p || errno != 0 || x < 0 || x > 2000000000LL || (*end != ',' && *end)) {
            free(v);
            return lmf_fail(LMF_ERR_ARG, "LMF_INJECT_NAN_STEPS='%s': expected step numbers "
                            "separated by commas, e.g. 5,6,7", text);
        }
        v[k++] = x;
        p = *end ? end + 1 : end;
    }
    *steps = v;
    *n = k;
    return LMF_OK;
}

/* Thread-local failure messages behind lmf_status. */
#include "lmforge/status.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LMF_ERRMSG_CAP 1024
static _Thread_local char lmf_errmsg[LMF_ERRMSG_CAP];

lmf_status lmf_fail(lmf_status code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(lmf_errmsg, sizeof lmf_errmsg, fmt, ap);
    va_end(ap);
    return code;
}

lmf_status lmf_fail_context(lmf_status code, const char *fmt, ...) {
    char prefix[LMF_ERRMSG_CAP], old[LMF_ERRMSG_CAP];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, lmf_errmsg, sizeof old);
    size_t pl = strnlen(prefix, LMF_ERRMSG_CAP - 1);
    size_t ol = strnlen(old, LMF_ERRMSG_CAP - 1);
    if (ol > LMF_ERRMSG_CAP - 1 - pl) ol = LMF_ERRMSG_CAP - 1 - pl;
    memcpy(lmf_errmsg, prefix, pl);
    memcpy(lmf_errmsg + pl, old, ol);
    lmf_errmsg[pl + ol] = '\0';
    return code;
}

const char *lmf_last_error(void) { return lmf_errmsg; }

const char *lmf_status_name(lmf_status code) {
    switch (code) {
    case LMF_OK: return "ok";
    case LMF_ERR_ARG: return "bad argument";
    case LMF_ERR_IO: return "i/o error";
    case LMF_ERR_FORMAT: return "bad format";
    case LMF_ERR_NOMEM: return "out of memory";
    case LMF_ERR_COMM: return "communication error";
    case LMF_ERR_NUMERIC: return "numeric fault";
    case LMF_ERR_STATE: return "invalid state";
    case LMF_ERR_INTERRUPTED: return "interrupted";
    }
    return "unknown error";
}

void lmf_assert_fail(const char *expr, const char *file, int line) {
    fprintf(stderr, "lmforge: internal error: %s:%d: assertion failed: %s\n", file, line, expr);
    abort();
}

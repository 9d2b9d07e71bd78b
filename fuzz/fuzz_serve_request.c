/* libFuzzer harness: a request target "PATH?QUERY" goes through the run server's decoding and
 * routing as a request would; whatever is accepted names nothing outside the served runs. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lmforge/serve.h"

static int name_ok(const char *s) {
    size_t n = strlen(s);
    if (n == 0 || strcmp(s, ".") == 0 || strcmp(s, "..") == 0) return 0;
    return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 4096) return 0;
    char *t = malloc(size + 1);
    if (!t) return 0;
    memcpy(t, data, size);
    t[size] = '\0';
    /* the server sees a C string: libmicrohttpd ends the target at a NUL */
    char *q = strchr(t, '?');
    if (q) *q++ = '\0';
    const char *since = NULL;
    for (char *arg = q; arg && *arg;) { /* "since=5&x=y": each part decoded like the server */
        char *amp = strchr(arg, '&');
        if (amp) *amp = '\0';
        char *eq = strchr(arg, '=');
        if (eq) *eq++ = '\0';
        lmf_serve_unescape(arg);
        if (eq) lmf_serve_unescape(eq);
        if (strcmp(arg, "since") == 0 && eq) since = eq; /* other arguments: the server's */
        arg = amp ? amp + 1 : NULL;
    }
    size_t n = lmf_serve_unescape(t);
    if (n != strlen(t)) abort(); /* the decoded path is one C string */
    lmf_serve_request r;
    lmf_serve_parse(t, n, since, &r);
    if (r.target != LMF_SERVE_BAD_REQUEST) {
        /* an accepted path has no "..", no empty segment, no backslash or control byte */
        if (strstr(t, "/../") || strstr(t, "/./") || strstr(t, "//") || strchr(t, '\\')) abort();
        if ((n >= 3 && strcmp(t + n - 3, "/..") == 0) || (n >= 2 && strcmp(t + n - 2, "/.") == 0))
            abort();
        for (size_t i = 0; i < n; i++)
            if ((unsigned char)t[i] < 0x20 || (unsigned char)t[i] == 0x7f) abort();
        if (since && (r.since < 0 || strspn(since, "0123456789") != strlen(since))) abort();
    }
    if (r.target == LMF_SERVE_ASSET && !name_ok(r.asset)) abort();
    if ((r.target == LMF_SERVE_API_METRICS || r.target == LMF_SERVE_API_CONFIG ||
         r.target == LMF_SERVE_API_CHECKPOINTS || r.target == LMF_SERVE_API_EVENTS) &&
        !name_ok(r.run))
        abort();
    free(t);
    return 0;
}

/* Request targets: percent-decoding, path and query validation, and what a path asks for. */
#include "lmforge/serve.h"

#include <stdio.h>
#include <string.h>

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

size_t lmf_serve_unescape(char *s) {
    size_t r = 0, w = 0;
    while (s[r]) {
        int hi, lo;
        if (s[r] == '%' && (hi = hexval(s[r + 1])) >= 0 && (lo = hexval(s[r + 2])) >= 0) {
            int c = hi * 16 + lo;
            s[w++] = (char)(c ? c : 1); /* "%00" would end the string: a byte no path takes */
            r += 3;
        } else {
            s[w++] = s[r++];
        }
    }
    s[w] = '\0';
    return w;
}

static int name_byte(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '.' || c == '_' || c == '-';
}

/* a path segment s[n] that may name a run or an asset */
static int name_ok(const char *s, size_t n) {
    if (n == 0 || n >= LMF_SERVE_NAME_MAX) return 0;
    if ((n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.')) return 0;
    for (size_t i = 0; i < n; i++)
        if (!name_byte((unsigned char)s[i])) return 0;
    return 1;
}

static int seg_is(const char *s, size_t n, const char *lit) {
    return strlen(lit) == n && memcmp(s, lit, n) == 0;
}

#define MAX_SEGS 8

void lmf_serve_parse(const char *path, size_t path_len, const char *since,
                     lmf_serve_request *out) {
    memset(out, 0, sizeof *out);
    out->target = LMF_SERVE_BAD_REQUEST;
    if (!path || path_len == 0 || path[0] != '/' || path_len > 1024) return;
    /* split into segments; every segment must be a name (so no "..", "//", "\\", NUL, ...) */
    const char *seg[MAX_SEGS];
    size_t len[MAX_SEGS];
    int ns = 0;
    size_t i = 1;
    while (i < path_len) {
        size_t j = i;
        while (j < path_len && path[j] != '/') j++;
        if (ns == MAX_SEGS || !name_ok(path + i, j - i)) {
            /* one trailing slash is allowed ("/api/runs/") */
            if (!(j == i && j == path_len)) return;
            break;
        }
        seg[ns] = path + i;
        len[ns++] = j - i;
        i = j + 1;
    }
    if (since) {
        size_t n = strlen(since);
        if (n == 0 || n > 9 || strspn(since, "0123456789") != n) return;
        long v = 0;
        for (size_t k = 0; k < n; k++) v = v * 10 + (since[k] - '0');
        out->since = v;
    }
    out->target = LMF_SERVE_NOT_FOUND;
    if (ns == 0) {
        out->target = LMF_SERVE_ASSET;
        snprintf(out->asset, sizeof out->asset, "index.html");
    } else if (ns == 1 && seg_is(seg[0], len[0], "metrics")) {
        out->target = LMF_SERVE_PROMETHEUS;
    } else if (ns == 1 && !seg_is(seg[0], len[0], "api")) {
        out->target = LMF_SERVE_ASSET;
        memcpy(out->asset, seg[0], len[0]);
    } else if (ns >= 2 && seg_is(seg[0], len[0], "api") && seg_is(seg[1], len[1], "runs")) {
        if (ns == 2) {
            out->target = LMF_SERVE_API_RUNS;
        } else if (ns == 4) {
            memcpy(out->run, seg[2], len[2]);
            if (seg_is(seg[3], len[3], "metrics")) out->target = LMF_SERVE_API_METRICS;
            else if (seg_is(seg[3], len[3], "config")) out->target = LMF_SERVE_API_CONFIG;
            else if (seg_is(seg[3], len[3], "checkpoints")) out->target = LMF_SERVE_API_CHECKPOINTS;
            else if (seg_is(seg[3], len[3], "events")) out->target = LMF_SERVE_API_EVENTS;
            else out->run[0] = '\0';
        }
    }
}

void lmf_serve_run_name(const char *dir, char *buf, size_t cap) {
    if (cap == 0) return;
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/') n--; /* "runs/a/" names a */
    size_t b = n;
    while (b > 0 && dir[b - 1] != '/') b--;
    size_t w = 0;
    for (size_t k = b; k < n && w + 1 < cap && w + 1 < LMF_SERVE_NAME_MAX; k++)
        buf[w++] = name_byte((unsigned char)dir[k]) ? dir[k] : '_';
    buf[w] = '\0';
    if (w == 0 || strcmp(buf, ".") == 0 || strcmp(buf, "..") == 0) snprintf(buf, cap, "run");
}

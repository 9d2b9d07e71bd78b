/* Start-up agreement between ranks: one rank's failure shared with all, options compared. */
#include "lmforge/comm.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#define AGREE_MSG_CAP 1024
#define AGREE_VALUE_CAP 160 /* characters of one value shown in a message */
#define AGREE_RANKS_SHOWN 8 /* ranks listed per differing value before "and N more" */

/* the failure message the calling thread's last agreement gave every rank ("" when none) */
static _Thread_local char agreed_msg[AGREE_MSG_CAP + 64];

/* record lmf_last_error() as the message every rank now holds; returns code */
static lmf_status agreed(lmf_status code) {
    snprintf(agreed_msg, sizeof agreed_msg, "%s", lmf_last_error());
    return code;
}

int lmf_comm_failure_agreed(void) {
    return agreed_msg[0] && strcmp(agreed_msg, lmf_last_error()) == 0;
}

lmf_status lmf_comm_agree(lmf_comm *c, lmf_status local) {
    int rank = lmf_comm_rank(c), world = lmf_comm_size(c);
    if (world == 1) return local;
    int64_t first = local != LMF_OK ? rank : world;
    if (lmf_comm_allreduce_i64(c, &first, 1, LMF_COMM_MIN) != LMF_OK)
        return lmf_fail(LMF_ERR_COMM, "ranks could not agree: %s", lmf_last_error());
    if (first >= world) return LMF_OK;
    struct {
        int64_t code;
        int64_t named; /* the message already names its rank (an earlier agreement's) */
        char msg[AGREE_MSG_CAP];
    } m;
    memset(&m, 0, sizeof m);
    if (rank == first) {
        m.code = local;
        m.named = lmf_comm_failure_agreed();
        snprintf(m.msg, sizeof m.msg, "%s", lmf_last_error());
    }
    if (lmf_comm_broadcast(c, &m, sizeof m, (int)first) != LMF_OK)
        return lmf_fail(LMF_ERR_COMM, "rank %d of %d failed, and its message could not be "
                        "shared", (int)first, world);
    m.msg[AGREE_MSG_CAP - 1] = '\0';
    lmf_status code = m.code > LMF_OK && m.code <= LMF_ERR_INTERRUPTED ? (lmf_status)m.code
                                                                        : LMF_ERR_STATE;
    if (m.named) return agreed(lmf_fail(code, "%s", m.msg));
    return agreed(lmf_fail(code, "rank %d of %d: %s", (int)first, world, m.msg));
}

/* append printf text to buf[cap] at *len, truncating */
static void add(char *buf, size_t cap, size_t *len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void add(char *buf, size_t cap, size_t *len, const char *fmt, ...) {
    if (*len >= cap - 1) return;
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(buf + *len, cap - *len, fmt, ap);
    va_end(ap);
    if (k > 0) *len += (size_t)k < cap - *len ? (size_t)k : cap - 1 - *len;
}

/* every rank's values, truncated, as one block rank r broadcasts */
static lmf_status share_values(lmf_comm *c, int n, const char *const *values, int root,
                               char *block) {
    if (lmf_comm_rank(c) == root)
        for (int i = 0; i < n; i++)
            snprintf(block + (size_t)i * AGREE_VALUE_CAP, AGREE_VALUE_CAP, "%s", values[i]);
    return lmf_comm_broadcast(c, block, (size_t)n * AGREE_VALUE_CAP, root);
}

lmf_status lmf_comm_agree_values(lmf_comm *c, int n, const char *const *names,
                                 const char *const *values) {
    int rank = lmf_comm_rank(c), world = lmf_comm_size(c);
    if (n < 1 || n > 63) /* one bit each in a non-negative int64 (combined by MAX) */
        return lmf_fail(LMF_ERR_ARG, "agreeing on %d values: between 1 and 63 at a time", n);
    if (world == 1) return LMF_OK;
    int64_t h[63], h0[63];
    for (int i = 0; i < n; i++) h[i] = h0[i] = (int64_t)XXH3_64bits(values[i], strlen(values[i]));
    int64_t *mask = calloc((size_t)world, sizeof *mask);
    char *mine0 = calloc((size_t)n, AGREE_VALUE_CAP), *other = calloc((size_t)n, AGREE_VALUE_CAP);
    if (!mask || !mine0 || !other) {
        free(mask), free(mine0), free(other);
        return lmf_fail(LMF_ERR_NOMEM, "cannot allocate the comparison of the ranks' options");
    }
    /* rank 0's hashes to all; every rank marks the values it differs in; all marks to all */
    lmf_status s = lmf_comm_broadcast(c, h0, (size_t)n * sizeof *h0, 0);
    if (s == LMF_OK) {
        for (int i = 0; i < n; i++)
            if (h[i] != h0[i]) mask[rank] |= (int64_t)1 << i;
        s = lmf_comm_allreduce_i64(c, mask, (size_t)world, LMF_COMM_MAX);
    }
    int first = -1; /* lowest rank that differs */
    for (int r = 1; s == LMF_OK && r < world && first < 0; r++)
        if (mask[r]) first = r;
    if (s == LMF_OK && first > 0) {
        s = share_values(c, n, values, 0, mine0);
        if (s == LMF_OK) s = share_values(c, n, values, first, other);
    }
    if (s != LMF_OK) {
        free(mask), free(mine0), free(other);
        return lmf_fail(LMF_ERR_COMM, "ranks could not compare their options: %s",
                        lmf_last_error());
    }
    if (first < 0) {
        free(mask), free(mine0), free(other);
        return LMF_OK;
    }
    char msg[4096];
    size_t len = 0;
    add(msg, sizeof msg, &len, "the ranks were started with different options:");
    int shown = 0;
    for (int i = 0; i < n; i++) {
        int differ = 0;
        for (int r = 1; r < world; r++) differ += (mask[r] >> i) & 1;
        if (!differ) continue;
        add(msg, sizeof msg, &len, "%s %s: rank 0 has '%s'", shown++ ? ";" : "", names[i],
            mine0 + (size_t)i * AGREE_VALUE_CAP);
        if ((mask[first] >> i) & 1)
            add(msg, sizeof msg, &len, ", rank %d has '%s'", first,
                other + (size_t)i * AGREE_VALUE_CAP);
        add(msg, sizeof msg, &len, " (differ%s: rank%s", differ > 1 ? "ing" : "s",
            differ > 1 ? "s" : "");
        int listed = 0;
        for (int r = 1; r < world; r++) {
            if (!((mask[r] >> i) & 1)) continue;
            if (listed < AGREE_RANKS_SHOWN) add(msg, sizeof msg, &len, "%s %d", listed ? "," : "", r);
            listed++;
        }
        if (listed > AGREE_RANKS_SHOWN)
            add(msg, sizeof msg, &len, " and %d more", listed - AGREE_RANKS_SHOWN);
        add(msg, sizeof msg, &len, ")");
    }
    add(msg, sizeof msg, &len, "; start every rank with the same options and data");
    free(mask), free(mine0), free(other);
    return agreed(lmf_fail(LMF_ERR_ARG, "%s", msg));
}

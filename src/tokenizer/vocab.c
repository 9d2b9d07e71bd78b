/* Building the vocabulary: ids and bytes, the bytes -> id map, merges, special tokens. */
/* Used by the loaders and the trainer on a handle from lmf_tok_alloc; checked by lmf_tok_finish. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "tokenizer/tok_internal.h"

/* A token's spelling for messages: byte-level form, shortened. */
static const char *show(const lmf_tokenizer *t, uint32_t id, char *buf, size_t cap) {
    if (id >= t->n_ids || t->len[id] == LMF_TOK_NONE) {
        snprintf(buf, cap, "#%u", id);
        return buf;
    }
    size_t n = t->len[id];
    const char *b = t->bytes + t->off[id];
    if (n > (cap - 1) / 2) n = (cap - 1) / 2;
    lmf_tok_bytes_to_unicode(b, n, buf);
    return buf;
}

static uint64_t hash_bytes(const char *b, size_t n) { return XXH3_64bits(b, n); }

static lmf_status map_grow(lmf_tokenizer *t) {
    uint64_t size = t->map ? (t->map_mask + 1) * 2 : 1024;
    uint32_t *m = malloc(size * sizeof *m);
    if (!m) return lmf_fail(LMF_ERR_NOMEM, "tokenizer: out of memory");
    memset(m, 0xFF, size * sizeof *m);
    for (uint64_t i = 0; t->map && i <= t->map_mask; i++) {
        uint32_t id = t->map[i];
        if (id == LMF_TOK_NONE) continue;
        uint64_t h = hash_bytes(t->bytes + t->off[id], t->len[id]);
        while (m[h & (size - 1)] != LMF_TOK_NONE) h++;
        m[h & (size - 1)] = id;
    }
    free(t->map);
    t->map = m;
    t->map_mask = size - 1;
    return LMF_OK;
}

uint32_t lmf_tok_find(const lmf_tokenizer *t, const char *b, size_t n) {
    if (!t->map) return LMF_TOK_NONE;
    uint64_t h = hash_bytes(b, n);
    for (;; h++) {
        uint32_t id = t->map[h & t->map_mask];
        if (id == LMF_TOK_NONE) return LMF_TOK_NONE;
        if (t->len[id] == n && memcmp(t->bytes + t->off[id], b, n) == 0) return id;
    }
}

static lmf_status grow_ids(lmf_tokenizer *t, uint32_t need) {
    if (need <= t->cap_ids) return LMF_OK;
    uint32_t cap = t->cap_ids ? t->cap_ids : 1024;
    while (cap < need) cap *= 2;
    uint32_t *off = realloc(t->off, (size_t)cap * sizeof *off);
    if (off) t->off = off;
    uint32_t *len = realloc(t->len, (size_t)cap * sizeof *len);
    if (len) t->len = len;
    uint8_t *kind = realloc(t->kind, cap);
    if (kind) t->kind = kind;
    if (!off || !len || !kind) return lmf_fail(LMF_ERR_NOMEM, "tokenizer: out of memory");
    for (uint32_t i = t->cap_ids; i < cap; i++) {
        t->len[i] = LMF_TOK_NONE;
        t->off[i] = 0;
        t->kind[i] = LMF_TOK_KIND_UNSET;
    }
    t->cap_ids = cap;
    return LMF_OK;
}

lmf_status lmf_tok_set_token(lmf_tokenizer *t, uint32_t id, const char *b, size_t n, int kind,
                             const char *what) {
    char s1[96], s2[96];
    if (id >= LMF_TOK_MAX_IDS)
        return lmf_fail(LMF_ERR_FORMAT, "%s: token id %u is too large (at most %u ids)", what, id,
                        LMF_TOK_MAX_IDS);
    if (n == 0) return lmf_fail(LMF_ERR_FORMAT, "%s: token id %u is empty", what, id);
    if (n > 65535) return lmf_fail(LMF_ERR_FORMAT, "%s: token id %u is longer than 65535 bytes", what, id);
    LMF_TRY(grow_ids(t, id + 1));
    if (t->len[id] != LMF_TOK_NONE)
        return lmf_fail(LMF_ERR_FORMAT, "%s: id %u is given to two tokens ('%s' and '%s')", what, id,
                        show(t, id, s1, sizeof s1), (lmf_tok_bytes_to_unicode(b, n < 40 ? n : 40, s2), s2));
    uint32_t other = lmf_tok_find(t, b, n);
    if (other != LMF_TOK_NONE)
        return lmf_fail(LMF_ERR_FORMAT, "%s: token '%s' appears twice (ids %u and %u)", what,
                        show(t, other, s1, sizeof s1), other, id);
    if (t->n_bytes + n > 0xFFFFFFFFu)
        return lmf_fail(LMF_ERR_FORMAT, "%s: vocabulary too large", what);
    if (t->n_bytes + n > t->cap_bytes) {
        size_t cap = t->cap_bytes ? t->cap_bytes : 65536;
        while (cap < t->n_bytes + n) cap *= 2;
        char *nb = realloc(t->bytes, cap);
        if (!nb) return lmf_fail(LMF_ERR_NOMEM, "tokenizer: out of memory");
        t->bytes = nb;
        t->cap_bytes = cap;
    }
    if (!t->map || (uint64_t)(t->map_count + 1) * 2 > t->map_mask + 1) LMF_TRY(map_grow(t));
    memcpy(t->bytes + t->n_bytes, b, n);
    t->off[id] = (uint32_t)t->n_bytes;
    t->len[id] = (uint32_t)n;
    t->kind[id] = (uint8_t)kind;
    t->n_bytes += n;
    uint64_t h = hash_bytes(b, n);
    while (t->map[h & t->map_mask] != LMF_TOK_NONE) h++;
    t->map[h & t->map_mask] = id;
    t->map_count++;
    if (id + 1 > t->n_ids) t->n_ids = id + 1;
    return LMF_OK;
}

static lmf_status mtab_grow(lmf_tokenizer *t) {
    uint64_t size = t->mtab ? (t->mtab_mask + 1) * 2 : 1024;
    uint64_t *m = malloc(size * sizeof *m);
    if (!m) return lmf_fail(LMF_ERR_NOMEM, "tokenizer: out of memory");
    memset(m, 0xFF, size * sizeof *m);
    int bits = 0;
    while (((uint64_t)1 << bits) < size) bits++;
    uint64_t *old = t->mtab, old_mask = t->mtab_mask;
    t->mtab = m;
    t->mtab_mask = size - 1;
    t->mtab_shift = 64 - bits;
    for (uint64_t i = 0; old && i <= old_mask; i++) {
        if (old[i] == LMF_TOK_EMPTY_SLOT) continue;
        uint64_t h = lmf_tok_merge_home(t, old[i] >> 24);
        while (m[h & t->mtab_mask] != LMF_TOK_EMPTY_SLOT) h++;
        m[h & t->mtab_mask] = old[i];
    }
    free(old);
    return LMF_OK;
}

lmf_status lmf_tok_add_merge(lmf_tokenizer *t, uint32_t left, uint32_t right, const char *what) {
    char s1[96], s2[96], s3[200];
    uint32_t ids[2] = {left, right};
    for (int k = 0; k < 2; k++) {
        if (ids[k] >= t->n_ids || t->len[ids[k]] == LMF_TOK_NONE)
            return lmf_fail(LMF_ERR_FORMAT, "%s: merge %u names unknown token id %u", what,
                            t->n_merges + 1, ids[k]);
        if (t->kind[ids[k]] == LMF_TOK_KIND_SPECIAL)
            return lmf_fail(LMF_ERR_FORMAT, "%s: merge %u uses special token '%s'", what,
                            t->n_merges + 1, show(t, ids[k], s1, sizeof s1));
    }
    size_t nl = t->len[left], nr = t->len[right];
    char *cat = malloc(nl + nr);
    if (!cat) return lmf_fail(LMF_ERR_NOMEM, "tokenizer: out of memory");
    memcpy(cat, t->bytes + t->off[left], nl);
    memcpy(cat + nl, t->bytes + t->off[right], nr);
    uint32_t res = lmf_tok_find(t, cat, nl + nr);
    if (res == LMF_TOK_NONE) {
        size_t m = nl + nr < 60 ? nl + nr : 60;
        lmf_tok_bytes_to_unicode(cat, m, s3);
        free(cat);
        return lmf_fail(LMF_ERR_FORMAT,
                        "%s: merge %u ('%s' + '%s') makes '%s', which is not in the vocabulary",
                        what, t->n_merges + 1, show(t, left, s1, sizeof s1),
                        show(t, right, s2, sizeof s2), s3);
    }
    free(cat);
    if (t->kind[res] == LMF_TOK_KIND_SPECIAL)
        return lmf_fail(LMF_ERR_FORMAT, "%s: merge %u makes special token '%s'", what,
                        t->n_merges + 1, show(t, res, s1, sizeof s1));
    if (t->n_merges >= LMF_TOK_MAX_MERGES)
        return lmf_fail(LMF_ERR_FORMAT, "%s: more than %u merges", what, LMF_TOK_MAX_MERGES);
    if (t->mtab && lmf_tok_merge_rank(t, left, right) != LMF_TOK_NONE)
        return lmf_fail(LMF_ERR_FORMAT, "%s: merge %u ('%s' + '%s') repeats an earlier merge",
                        what, t->n_merges + 1, show(t, left, s1, sizeof s1), show(t, right, s2, sizeof s2));
    if (t->n_merges == t->cap_merges) {
        uint32_t cap = t->cap_merges ? t->cap_merges * 2 : 1024;
        uint32_t *a = realloc(t->merge_left, cap * sizeof *a);
        if (a) t->merge_left = a;
        uint32_t *b = realloc(t->merge_right, cap * sizeof *b);
        if (b) t->merge_right = b;
        uint32_t *c = realloc(t->merge_result, cap * sizeof *c);
        if (c) t->merge_result = c;
        if (!a || !b || !c) return lmf_fail(LMF_ERR_NOMEM, "tokenizer: out of memory");
        t->cap_merges = cap;
    }
    if (!t->mtab || (uint64_t)(t->n_merges + 1) * 2 > t->mtab_mask + 1) LMF_TRY(mtab_grow(t));
    uint64_t key = (uint64_t)left << 20 | right;
    uint64_t h = lmf_tok_merge_home(t, key);
    while (t->mtab[h & t->mtab_mask] != LMF_TOK_EMPTY_SLOT) h++;
    t->mtab[h & t->mtab_mask] = key << 24 | t->n_merges;
    t->merge_left[t->n_merges] = left;
    t->merge_right[t->n_merges] = right;
    t->merge_result[t->n_merges] = res;
    t->n_merges++;
    return LMF_OK;
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

lmf_status lmf_tok_finish(lmf_tokenizer *t, int unreached_special, const char *what) {
    char s1[96];
    if (t->n_ids == 0) return lmf_fail(LMF_ERR_FORMAT, "%s: the vocabulary is empty", what);
    uint32_t used = 0;
    for (uint32_t i = 0; i < t->n_ids; i++) used += t->len[i] != LMF_TOK_NONE;
    if (t->n_ids > 2 * used + 1024)
        return lmf_fail(LMF_ERR_FORMAT, "%s: ids run up to %u but only %u are used; ids must be "
                        "(nearly) contiguous from 0", what, t->n_ids - 1, used);
    for (int b = 0; b < 256; b++) {
        char c = (char)b;
        uint32_t id = lmf_tok_find(t, &c, 1);
        if (id == LMF_TOK_NONE || t->kind[id] != LMF_TOK_KIND_NORMAL)
            return lmf_fail(LMF_ERR_FORMAT, "%s: the vocabulary has no token for byte 0x%02x; a "
                            "byte-level BPE needs all 256 byte tokens", what, b);
        t->byte_id[b] = id;
    }
    if (!t->mtab) LMF_TRY(mtab_grow(t));
    /* unreached tokens: neither a byte nor a merge result */
    uint8_t *reached = calloc(t->n_ids, 1);
    if (!reached) return lmf_fail(LMF_ERR_NOMEM, "tokenizer: out of memory");
    for (int b = 0; b < 256; b++) reached[t->byte_id[b]] = 1;
    for (uint32_t r = 0; r < t->n_merges; r++) reached[t->merge_result[r]] = 1;
    uint32_t n_unreached = 0, first = LMF_TOK_NONE;
    for (uint32_t i = 0; i < t->n_ids; i++) {
        if (t->len[i] == LMF_TOK_NONE || reached[i] || t->kind[i] != LMF_TOK_KIND_NORMAL) continue;
        if (first == LMF_TOK_NONE) first = i;
        n_unreached++;
        if (unreached_special) t->kind[i] = LMF_TOK_KIND_SPECIAL;
    }
    free(reached);
    if (unreached_special && n_unreached > 256)
        return lmf_fail(LMF_ERR_FORMAT, "%s: %u tokens (the first: '%s', id %u) are neither bytes "
                        "nor made by any merge; the merges file looks truncated or belongs to "
                        "another vocabulary", what, n_unreached, show(t, first, s1, sizeof s1), first);
    /* special tokens, longest first (the longest match wins where several start) */
    uint32_t ns = 0;
    for (uint32_t i = 0; i < t->n_ids; i++) ns += t->kind[i] == LMF_TOK_KIND_SPECIAL;
    free(t->special_ids);
    t->special_ids = malloc((ns ? ns : 1) * sizeof *t->special_ids);
    uint64_t *keys = malloc((ns ? ns : 1) * sizeof *keys);
    if (!t->special_ids || !keys) {
        free(keys);
        return lmf_fail(LMF_ERR_NOMEM, "tokenizer: out of memory");
    }
    ns = 0;
    for (uint32_t i = 0; i < t->n_ids; i++)
        if (t->kind[i] == LMF_TOK_KIND_SPECIAL) keys[ns++] = (uint64_t)(0xFFFFFFFFu - t->len[i]) << 32 | i;
    qsort(keys, ns, sizeof *keys, cmp_u64);
    for (uint32_t k = 0; k < ns; k++) t->special_ids[k] = (uint32_t)keys[k];
    t->n_special = ns;
    free(keys);
    t->eot = -1;
    uint32_t eot = lmf_tok_find(t, "<|endoftext|>", 13);
    if (eot == LMF_TOK_NONE || t->kind[eot] != LMF_TOK_KIND_SPECIAL)
        eot = lmf_tok_find(t, "<|end_of_text|>", 15); /* Llama 3's */
    if (eot != LMF_TOK_NONE && t->kind[eot] == LMF_TOK_KIND_SPECIAL) {
        t->eot = (int)eot;
    } else {
        for (uint32_t i = 0; i < t->n_ids; i++)
            if (t->kind[i] == LMF_TOK_KIND_SPECIAL) {
                t->eot = (int)i;
                break;
            }
    }
    return LMF_OK;
}

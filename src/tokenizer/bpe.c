/* BPE encoding of pre-tokens: merge loops, a per-context word cache, the context pool. */
/* Short words use array rescans, long ones a heap, in GPT-2's order or tiktoken's; each context
 * caches word -> ids, and a pool hands contexts to threads. */
#include <stdlib.h>
#include <string.h>

#include "tokenizer/pretok.h"
#include "tokenizer/tok_internal.h"

#define CACHE_BITS 17     /* entries of the word cache: 2^17 x 32 bytes = 4 MiB */
#define CACHE_WORD 16     /* longest cached pre-token, bytes */
#define CACHE_IDS 4       /* most ids of a cached pre-token */
#define HEAP_MIN 128    /* words at least this long use the heap method */
#define SCRATCH_KEEP ((size_t)1 << 16) /* larger scratch is freed after its word */

/* A cached pre-token in 32 bytes, two to a 64-byte line (a lookup reads one line): the word
 * zero-padded, and its ids in the low 20 bits of v (LMF_TOK_MAX_IDS = 2^20) with, in the high
 * 12 bits, the word's length (v[0]; 0: an empty slot), the id count (v[1]) and a saturating use
 * count (v[2]), halved when the line's other slot is replaced. */
typedef struct cache_entry {
    uint64_t w[2];
    uint32_t v[CACHE_IDS];
} cache_entry;
_Static_assert(sizeof(cache_entry) == 32, "two cache entries to a 64-byte line");
#define ID_BITS 20
#define ID_MASK ((1u << ID_BITS) - 1)
#define HITS_MAX 255u

struct lmf_tok_ctx {
    lmf_tok_ctx *next;         /* pool link */
    cache_entry *cache;        /* [1 << CACHE_BITS], 64-byte aligned, inside cache_mem */
    void *cache_mem;
    size_t cap;                /* capacity of the scratch arrays below */
    uint32_t *sym, *rk;
    uint8_t *mark;
    int32_t *prev, *nxt;
    uint64_t *heap;            /* rank << 32 | position */
    uint32_t *pend;
};

lmf_tok_ctx *lmf_tok_ctx_create(void) {
    lmf_tok_ctx *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    /* calloc (zero pages the kernel maps when first touched), aligned by hand to a line */
    c->cache_mem = calloc(((size_t)1 << CACHE_BITS) + 2, sizeof *c->cache);
    c->cache = (cache_entry *)(((uintptr_t)c->cache_mem + 63) & ~(uintptr_t)63);
    if (!c->cache_mem) {
        free(c);
        return NULL;
    }
    return c;
}

static void free_scratch(lmf_tok_ctx *c) {
    free(c->sym);
    free(c->rk);
    free(c->mark);
    free(c->prev);
    free(c->nxt);
    free(c->heap);
    free(c->pend);
    c->sym = c->rk = c->pend = NULL;
    c->mark = NULL;
    c->prev = c->nxt = NULL;
    c->heap = NULL;
    c->cap = 0;
}

void lmf_tok_ctx_free(lmf_tok_ctx *c) {
    if (!c) return;
    free_scratch(c);
    free(c->cache_mem);
    free(c);
}

static int ensure_scratch(lmf_tok_ctx *c, size_t n) {
    if (n <= c->cap) return 1;
    size_t cap = c->cap ? c->cap : 256;
    while (cap < n) cap *= 2;
    free_scratch(c);
    c->sym = malloc(cap * sizeof *c->sym);
    c->rk = malloc(cap * sizeof *c->rk);
    c->mark = calloc(cap, 1);
    c->prev = malloc(cap * sizeof *c->prev);
    c->nxt = malloc(cap * sizeof *c->nxt);
    c->heap = malloc(3 * cap * sizeof *c->heap);
    c->pend = malloc(2 * cap * sizeof *c->pend);
    if (!c->sym || !c->rk || !c->mark || !c->prev || !c->nxt || !c->heap ||
        !c->pend) {
        free_scratch(c);
        return 0;
    }
    c->cap = cap;
    return 1;
}

lmf_tok_ctx *lmf_tok_ctx_get(const lmf_tokenizer *t) {
    lmf_tok_pool *p = t->pool;
    pthread_mutex_lock(&p->mu);
    lmf_tok_ctx *c = p->free_list;
    if (c) p->free_list = c->next;
    pthread_mutex_unlock(&p->mu);
    if (!c) c = lmf_tok_ctx_create();
    if (c && !ensure_scratch(c, 256)) {
        lmf_tok_ctx_free(c);
        c = NULL;
    }
    return c;
}

void lmf_tok_ctx_put(const lmf_tokenizer *t, lmf_tok_ctx *c) {
    lmf_tok_pool *p = t->pool;
    pthread_mutex_lock(&p->mu);
    c->next = p->free_list;
    p->free_list = c;
    pthread_mutex_unlock(&p->mu);
}

void lmf_tok_pool_drain(lmf_tok_pool *p) {
    lmf_tok_ctx *c = p->free_list;
    while (c) {
        lmf_tok_ctx *next = c->next;
        lmf_tok_ctx_free(c);
        c = next;
    }
    p->free_list = NULL;
}

/* the lowest of rk[0..n) and, in *at, its first position (LMF_TOK_NONE, 0 when all are) */
static inline uint32_t lowest(const uint32_t *rk, size_t n, size_t *at) {
    uint32_t best = LMF_TOK_NONE;
    *at = 0;
    for (size_t i = 0; i < n; i++)
        if (rk[i] < best) {
            best = rk[i];
            *at = i;
        }
    return best;
}

/* GPT-2's loop with array rescans: find the lowest-ranked adjacent pair, merge all its
 * occurrences left to right, repeat. rk[i] caches the rank of (sym[i], sym[i+1]). O(n^2). */
static size_t bpe_array(const lmf_tokenizer *t, lmf_tok_ctx *c, size_t m) {
    uint32_t *sym = c->sym, *rk = c->rk;
    uint8_t *mark = c->mark;
    for (size_t i = 0; i + 1 < m; i++) rk[i] = lmf_tok_merge_rank(t, sym[i], sym[i + 1]);
    while (m > 1) {
        size_t bi;
        uint32_t best = lowest(rk, m - 1, &bi);
        if (best == LMF_TOK_NONE) break;
        uint32_t z = t->merge_result[best];
        size_t o = bi, i = bi;
        while (i < m) {
            if (i + 1 < m && rk[i] == best) { /* a rank names one pair */
                sym[o] = z;
                mark[o] = 1;
                o++;
                i += 2;
            } else {
                sym[o] = sym[i];
                rk[o] = rk[i];
                o++;
                i++;
            }
        }
        m = o;
        for (size_t j = bi > 0 ? bi - 1 : 0; j < m; j++) {
            if (j + 1 < m && (mark[j] || mark[j + 1])) rk[j] = lmf_tok_merge_rank(t, sym[j], sym[j + 1]);
        }
        for (size_t j = bi; j < m; j++) mark[j] = 0;
    }
    return m;
}

static void heap_push(uint64_t *h, size_t *n, uint64_t v) {
    size_t i = (*n)++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (h[p] <= v) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = v;
}

static uint64_t heap_pop(uint64_t *h, size_t *n) {
    uint64_t top = h[0], v = h[--(*n)];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1;
        if (l >= *n) break;
        if (l + 1 < *n && h[l + 1] < h[l]) l++;
        if (h[l] >= v) break;
        h[i] = h[l];
        i = l;
    }
    if (*n > 0) h[i] = v;
    return top;
}

/* tiktoken's priority of the pair (left, right): the id of the token they make, or
 * LMF_TOK_NONE (LMF_TOK_MERGE_BY_RESULT); from the join table once it is built */
static inline uint32_t result_prio(const lmf_tokenizer *t, uint32_t left, uint32_t right) {
    if (t->jtab) return lmf_tok_pair_find(t->jtab, t->jtab_mask, t->jtab_shift, left, right);
    uint32_t r = lmf_tok_merge_rank(t, left, right);
    return r == LMF_TOK_NONE ? r : t->merge_result[r];
}

/* Link sym[0..m) as a list (prev, nxt) and push every adjacent pair that merges on the heap as
 * (priority << 32 | position), the priority being the rank (GPT-2's order) or the made token
 * (tiktoken's); returns the heap's size. */
static size_t heap_start(const lmf_tokenizer *t, lmf_tok_ctx *c, size_t m) {
    uint32_t *sym = c->sym;
    size_t hn = 0;
    for (size_t i = 0; i < m; i++) {
        c->prev[i] = (int32_t)i - 1;
        c->nxt[i] = i + 1 < m ? (int32_t)(i + 1) : -1;
    }
    for (size_t i = 0; i + 1 < m; i++) {
        uint32_t r = t->order == LMF_TOK_MERGE_BY_RESULT ? result_prio(t, sym[i], sym[i + 1])
                                                        : lmf_tok_merge_rank(t, sym[i], sym[i + 1]);
        if (r != LMF_TOK_NONE) heap_push(c->heap, &hn, (uint64_t)r << 32 | i);
    }
    return hn;
}

/* The same merges with a min-heap of (rank, position) over a linked list: each pass pops every
 * entry of the lowest rank in position order (left to right, as the array loop), and pushes
 * the pairs it changed only after the pass. O(n log n). */
static size_t bpe_heap(const lmf_tokenizer *t, lmf_tok_ctx *c, size_t m) {
    uint32_t *sym = c->sym;
    int32_t *prev = c->prev, *nxt = c->nxt;
    uint64_t *heap = c->heap;
    uint32_t *pend = c->pend;
    size_t hn = heap_start(t, c, m);
    uint8_t *dead = c->mark; /* all zero on entry */
    size_t alive = m;
    while (hn > 0) {
        uint32_t r = (uint32_t)(heap[0] >> 32);
        size_t np = 0;
        while (hn > 0 && (uint32_t)(heap[0] >> 32) == r) {
            uint32_t p = (uint32_t)heap_pop(heap, &hn);
            if (dead[p] || nxt[p] < 0) continue;
            int32_t q = nxt[p];
            if (lmf_tok_merge_rank(t, sym[p], sym[q]) != r) continue;
            sym[p] = t->merge_result[r];
            dead[q] = 1;
            alive--;
            nxt[p] = nxt[q];
            if (nxt[q] >= 0) prev[nxt[q]] = (int32_t)p;
            pend[np++] = p;
            if (prev[p] >= 0) pend[np++] = (uint32_t)prev[p];
        }
        for (size_t k = 0; k < np; k++) {
            uint32_t p = pend[k];
            if (dead[p] || nxt[p] < 0) continue;
            uint32_t r2 = lmf_tok_merge_rank(t, sym[p], sym[nxt[p]]);
            if (r2 != LMF_TOK_NONE) heap_push(heap, &hn, (uint64_t)r2 << 32 | p);
        }
    }
    size_t o = 0;
    for (int32_t i = 0; i >= 0; i = nxt[i]) sym[o++] = sym[i];
    for (size_t i = 0; i < m; i++) dead[i] = 0;
    (void)alive;
    return o;
}

/* tiktoken's loop with array rescans: merge the leftmost pair of the lowest priority, one at a
 * time. rk[i] is the priority of (sym[i], sym[i+1]). O(n^2). With `last`, the key
 * (left << 20 | right) of the last pair merged (unset when none was). */
static size_t bpe_array_result(const lmf_tokenizer *t, lmf_tok_ctx *c, size_t m, uint64_t *last) {
    uint32_t *sym = c->sym, *rk = c->rk;
    for (size_t i = 0; i + 1 < m; i++) rk[i] = result_prio(t, sym[i], sym[i + 1]);
    while (m > 1) {
        size_t bi;
        uint32_t best = lowest(rk, m - 1, &bi);
        if (best == LMF_TOK_NONE) break;
        if (last) *last = (uint64_t)sym[bi] << 20 | sym[bi + 1];
        sym[bi] = best;
        memmove(sym + bi + 1, sym + bi + 2, (m - bi - 2) * sizeof *sym);
        memmove(rk + bi + 1, rk + bi + 2, (m - bi - 2) * sizeof *rk);
        m--;
        if (bi + 1 < m) rk[bi] = result_prio(t, sym[bi], sym[bi + 1]);
        if (bi > 0) rk[bi - 1] = result_prio(t, sym[bi - 1], sym[bi]);
    }
    return m;
}

/* The same with a min-heap of (priority, position) over a linked list: pop the lowest entry,
 * skip it when its pair has changed, merge, push the two pairs the merge made. O(n log n). */
static size_t bpe_heap_result(const lmf_tokenizer *t, lmf_tok_ctx *c, size_t m) {
    uint32_t *sym = c->sym;
    int32_t *prev = c->prev, *nxt = c->nxt;
    uint64_t *heap = c->heap;
    uint8_t *dead = c->mark; /* all zero on entry */
    size_t hn = heap_start(t, c, m);
    while (hn > 0) {
        uint64_t top = heap_pop(heap, &hn);
        uint32_t r = (uint32_t)(top >> 32), p = (uint32_t)top;
        if (dead[p] || nxt[p] < 0) continue;
        int32_t q = nxt[p];
        if (result_prio(t, sym[p], sym[q]) != r) continue;
        sym[p] = r;
        dead[q] = 1;
        nxt[p] = nxt[q];
        if (nxt[q] >= 0) prev[nxt[q]] = (int32_t)p;
        if (nxt[p] >= 0) {
            uint32_t r2 = result_prio(t, sym[p], sym[nxt[p]]);
            if (r2 != LMF_TOK_NONE) heap_push(heap, &hn, (uint64_t)r2 << 32 | p);
        }
        if (prev[p] >= 0) {
            uint32_t r2 = result_prio(t, sym[prev[p]], sym[p]);
            if (r2 != LMF_TOK_NONE) heap_push(heap, &hn, (uint64_t)r2 << 32 | (uint32_t)prev[p]);
        }
    }
    size_t o = 0;
    for (int32_t i = 0; i >= 0; i = nxt[i]) sym[o++] = sym[i];
    for (size_t i = 0; i < m; i++) dead[i] = 0;
    return o;
}

/* BPE of w[0..n) into c->sym; returns the id count, 0 when out of memory. */
static size_t bpe_sym(const lmf_tokenizer *t, lmf_tok_ctx *c, const uint8_t *w, size_t n,
                      lmf_tok_bpe_method method) {
    if (!ensure_scratch(c, n)) return 0;
    if (t->ignore_merges) {
        uint32_t id = lmf_tok_find(t, (const char *)w, n);
        if (id != LMF_TOK_NONE && t->kind[id] == LMF_TOK_KIND_NORMAL) {
            c->sym[0] = id;
            return 1;
        }
    }
    for (size_t i = 0; i < n; i++) c->sym[i] = t->byte_id[w[i]];
    if (method == LMF_TOK_BPE_AUTO) method = n >= HEAP_MIN ? LMF_TOK_BPE_HEAP : LMF_TOK_BPE_ARRAY;
    if (t->order == LMF_TOK_MERGE_BY_RESULT)
        return method == LMF_TOK_BPE_HEAP ? bpe_heap_result(t, c, n) : bpe_array_result(t, c, n, NULL);
    return method == LMF_TOK_BPE_HEAP ? bpe_heap(t, c, n) : bpe_array(t, c, n);
}

lmf_status lmf_tok_prune_whole_words(lmf_tokenizer *t) {
    if (!t->ignore_merges) return LMF_OK;
    lmf_tok_ctx *c = lmf_tok_ctx_create();
    if (!c) return lmf_fail(LMF_ERR_NOMEM, "tokenizer: out of memory");
    t->ignore_merges = 0;
    int needed = 0;
    for (uint32_t id = 0; id < t->n_ids && !needed; id++) {
        if (t->len[id] == LMF_TOK_NONE || t->len[id] < 2 || t->kind[id] != LMF_TOK_KIND_NORMAL) continue;
        const uint8_t *w = (const uint8_t *)t->bytes + t->off[id];
        if (!ensure_scratch(c, t->len[id])) {
            lmf_tok_ctx_free(c);
            t->ignore_merges = 1;
            return lmf_fail(LMF_ERR_NOMEM, "tokenizer: out of memory");
        }
        size_t m = bpe_sym(t, c, w, t->len[id], LMF_TOK_BPE_AUTO);
        needed = m != 1 || c->sym[0] != id;
    }
    t->ignore_merges = needed;
    lmf_tok_ctx_free(c);
    return LMF_OK;
}

lmf_status lmf_tok_build_join_table(lmf_tokenizer *t) {
    if (t->order != LMF_TOK_MERGE_BY_RESULT) return LMF_OK;
    free(t->jtab);
    t->jtab = NULL; /* BPE below runs over every split (mtab) */
    lmf_tok_ctx *c = lmf_tok_ctx_create();
    uint64_t *joins = malloc(((size_t)t->n_ids + 1) * sizeof *joins); /* key << 24 | token */
    size_t nj = 0;
    if (!c || !joins) {
        lmf_tok_ctx_free(c);
        free(joins);
        return lmf_fail(LMF_ERR_NOMEM, "tokenizer: out of memory");
    }
    for (uint32_t id = 0; id < t->n_ids; id++) {
        uint32_t n = t->len[id];
        if (n == LMF_TOK_NONE || n < 2 || t->kind[id] != LMF_TOK_KIND_NORMAL) continue;
        if (!ensure_scratch(c, n)) {
            lmf_tok_ctx_free(c);
            free(joins);
            return lmf_fail(LMF_ERR_NOMEM, "tokenizer: out of memory");
        }
        const uint8_t *w = (const uint8_t *)t->bytes + t->off[id];
        for (uint32_t i = 0; i < n; i++) c->sym[i] = t->byte_id[w[i]];
        uint64_t last = 0;
        if (bpe_array_result(t, c, n, &last) == 1 && c->sym[0] == id) joins[nj++] = last << 24 | id;
    }
    lmf_tok_ctx_free(c);
    int bits = 10;
    while (((size_t)1 << bits) < 2 * nj) bits++; /* at most half full */
    size_t size = (size_t)1 << bits;
    uint64_t *tab = malloc(size * sizeof *tab);
    if (!tab) {
        free(joins);
        return lmf_fail(LMF_ERR_NOMEM, "tokenizer: out of memory");
    }
    memset(tab, 0xFF, size * sizeof *tab);
    for (size_t k = 0; k < nj; k++) {
        uint64_t h = lmf_tok_pair_home(joins[k] >> 24, 64 - bits);
        while (tab[h & (size - 1)] != LMF_TOK_EMPTY_SLOT) h++;
        tab[h & (size - 1)] = joins[k];
    }
    free(joins);
    t->jtab = tab;
    t->jtab_mask = size - 1;
    t->jtab_shift = 64 - bits;
    return LMF_OK;
}

size_t lmf_tok_bpe_word(const lmf_tokenizer *t, lmf_tok_ctx *c, const uint8_t *w, size_t n,
                        uint32_t *ids, lmf_tok_bpe_method method) {
    size_t m = bpe_sym(t, c, w, n, method);
    memcpy(ids, c->sym, m * sizeof *ids);
    if (c->cap > SCRATCH_KEEP) free_scratch(c);
    return m;
}

static inline uint64_t load64(const uint8_t *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static inline uint64_t low_bytes(uint64_t v, size_t k) { return k >= 8 ? v : v & ((1ull << (8 * k)) - 1); }

lmf_status lmf_tok_encode_plain(const lmf_tokenizer *t, lmf_tok_ctx *c, const uint8_t *s,
                                size_t n, uint32_t *ids, size_t cap, size_t *count) {
    size_t cnt = *count;
    const uint64_t cmask = ((uint64_t)1 << CACHE_BITS) - 1;
    size_t pos = 0;
    const int cl100k = t->pattern == LMF_TOK_PATTERN_CL100K;
    while (pos < n) {
        size_t end = cl100k ? lmf_pretok_next_cl100k(s, n, pos) : lmf_pretok_next(s, n, pos);
        size_t wl = end - pos;
        const uint8_t *p = s + pos;
        pos = end;
        if (wl == 1) {
            if (cnt < cap) ids[cnt] = t->byte_id[p[0]];
            cnt++;
            continue;
        }
        if (wl <= CACHE_WORD) {
            uint64_t w0, w1 = 0;
            if (p + 16 <= s + n) {
                w0 = low_bytes(load64(p), wl);
                if (wl > 8) w1 = low_bytes(load64(p + 8), wl - 8);
            } else {
                uint8_t buf[16] = {0};
                memcpy(buf, p, wl);
                w0 = load64(buf);
                w1 = load64(buf + 8);
            }
            uint64_t h = (w0 * 0x9E3779B97F4A7C15ull) ^ (w1 * 0xC2B2AE3D27D4EB4Full) ^ wl;
            h ^= h >> 29;
            h *= 0xBF58476D1CE4E5B9ull;
            h ^= h >> 32;
            cache_entry *e = &c->cache[h & cmask & ~(uint64_t)1];
            const uint32_t tag = (uint32_t)wl << ID_BITS;
            if (!((e->v[0] & ~ID_MASK) == tag && e->w[0] == w0 && e->w[1] == w1)) e++;
            if ((e->v[0] & ~ID_MASK) == tag && e->w[0] == w0 && e->w[1] == w1) {
                if ((e->v[2] >> ID_BITS) < HITS_MAX) e->v[2] += 1u << ID_BITS;
                unsigned k = e->v[1] >> ID_BITS;
                for (unsigned j = 0; j < k; j++, cnt++)
                    if (cnt < cap) ids[cnt] = e->v[j] & ID_MASK;
                continue;
            }
            size_t k = bpe_sym(t, c, p, wl, LMF_TOK_BPE_AUTO);
            if (k == 0) return lmf_fail(LMF_ERR_NOMEM, "tokenizer: out of memory");
            if (k <= CACHE_IDS) {
                /* two slots per line: replace the less used one, and age the other */
                cache_entry *o = e - 1;
                if ((o->v[2] >> ID_BITS) < (e->v[2] >> ID_BITS)) {
                    cache_entry *x = o;
                    o = e;
                    e = x;
                }
                o->v[2] = (o->v[2] & ID_MASK) | ((o->v[2] >> ID_BITS) >> 1) << ID_BITS;
                e->w[0] = w0;
                e->w[1] = w1;
                for (unsigned j = 0; j < CACHE_IDS; j++) e->v[j] = j < k ? c->sym[j] : 0;
                e->v[0] |= tag;
                e->v[1] |= (uint32_t)k << ID_BITS;
            }
            for (size_t i = 0; i < k; i++, cnt++)
                if (cnt < cap) ids[cnt] = c->sym[i];
            continue;
        }
        size_t k = bpe_sym(t, c, p, wl, LMF_TOK_BPE_AUTO);
        if (k == 0) return lmf_fail(LMF_ERR_NOMEM, "tokenizer: out of memory");
        for (size_t i = 0; i < k; i++, cnt++)
            if (cnt < cap) ids[cnt] = c->sym[i];
        if (c->cap > SCRATCH_KEEP) free_scratch(c); /* ~50 bytes a byte: do not keep it pooled */
    }
    *count = cnt;
    return LMF_OK;
}

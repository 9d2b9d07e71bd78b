/* BPE training: count pre-tokens, then merge the most frequent pair, deterministically. */
/* Pair counts are updated incrementally and kept in a lazy max-heap; ties go to the pair whose
 * (left bytes, right bytes) sort first. */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "lmforge/tokenizer.h"
#include "tokenizer/tok_internal.h"
#include "tokenizer/train_count.h"

#define NONE32 0xFFFFFFFFu

typedef struct hent {
    int64_t count;
    uint32_t pair;
} hent;

typedef struct trainer {
    /* tokens: id -> bytes, bytes -> id */
    uint32_t n_tok, cap_tok;
    uint64_t *toff;
    uint32_t *tlen;
    char *tb;
    size_t tb_len, tb_cap;
    uint32_t *tmap;
    uint64_t tmask;
    /* merges, in rank order */
    uint32_t *ml, *mr;
    /* words: symbols in one arena, shrinking in place */
    size_t n_words;
    const uint64_t *wcount;
    uint32_t *sym;
    uint64_t *woff;
    uint32_t *wlen, *wstamp;
    /* pairs */
    uint64_t *pkey;
    uint32_t *pslot;
    uint64_t pmask;
    uint32_t np, pcap;
    uint32_t *pa, *pb, *pstamp, *wn, *wcap;
    uint32_t **where;
    int64_t *pcount;
    uint8_t *banned;
    /* heap */
    hent *heap;
    size_t hn, hcap;
    int oom;
} trainer;

static void *grow(void *p, size_t n, size_t size, int *oom) {
    void *q = realloc(p, n * size);
    if (!q) *oom = 1;
    return q ? q : p;
}

static uint32_t tok_find(const trainer *T, const char *b, size_t n, uint64_t h) {
    for (;; h++) {
        uint32_t id = T->tmap[h & T->tmask];
        if (id == NONE32) return NONE32;
        if (T->tlen[id] == n && memcmp(T->tb + T->toff[id], b, n) == 0) return id;
    }
}

static void tok_map_insert(trainer *T, uint32_t id) {
    uint64_t h = XXH3_64bits(T->tb + T->toff[id], T->tlen[id]);
    while (T->tmap[h & T->tmask] != NONE32) h++;
    T->tmap[h & T->tmask] = id;
}

/* New token spelled a[0..na) (when x == NONE32) or bytes(x) + bytes(y); NONE32 when out of
 * memory. */
static uint32_t tok_add(trainer *T, const char *a, size_t na, uint32_t x, uint32_t y) {
    size_t n = x == NONE32 ? na : (size_t)T->tlen[x] + T->tlen[y];
    if (T->n_tok == T->cap_tok) {
        T->cap_tok = T->cap_tok ? 2 * T->cap_tok : 1024;
        T->toff = grow(T->toff, T->cap_tok, sizeof *T->toff, &T->oom);
        T->tlen = grow(T->tlen, T->cap_tok, sizeof *T->tlen, &T->oom);
        if (T->oom) return NONE32;
    }
    if (T->tb_len + n > T->tb_cap) {
        size_t cap = T->tb_cap ? T->tb_cap : 65536;
        while (cap < T->tb_len + n) cap *= 2;
        char *nbuf = grow(T->tb, cap, 1, &T->oom);
        if (T->oom) return NONE32;
        T->tb = nbuf;
        T->tb_cap = cap;
    }
    uint32_t id = T->n_tok++;
    T->toff[id] = T->tb_len;
    if (x == NONE32) {
        memcpy(T->tb + T->tb_len, a, na);
    } else {
        memcpy(T->tb + T->tb_len, T->tb + T->toff[x], T->tlen[x]);
        memcpy(T->tb + T->tb_len + T->tlen[x], T->tb + T->toff[y], T->tlen[y]);
    }
    T->tlen[id] = (uint32_t)n;
    T->tb_len += n;
    if ((uint64_t)T->n_tok * 2 > T->tmask + 1) {
        uint64_t size = (T->tmask + 1) * 2;
        uint32_t *m = malloc(size * sizeof *m);
        if (!m) {
            T->oom = 1;
            return NONE32;
        }
        memset(m, 0xFF, size * sizeof *m);
        free(T->tmap);
        T->tmap = m;
        T->tmask = size - 1;
        for (uint32_t i = 0; i < T->n_tok; i++) tok_map_insert(T, i);
    } else {
        tok_map_insert(T, id);
    }
    return id;
}

static uint32_t pair_get(trainer *T, uint32_t a, uint32_t b, int create) {
    uint64_t key = (uint64_t)a << 32 | b;
    uint64_t h = (key * 0x9E3779B97F4A7C15ull) >> 17;
    for (;; h++) {
        uint32_t q = T->pslot[h & T->pmask];
        if (q == NONE32) break;
        if (T->pkey[q] == key) return q;
    }
    if (!create) return NONE32;
    if (T->np == T->pcap) {
        uint32_t cap = T->pcap ? 2 * T->pcap : 4096;
        T->pkey = grow(T->pkey, cap, sizeof *T->pkey, &T->oom);
        T->pa = grow(T->pa, cap, sizeof *T->pa, &T->oom);
        T->pb = grow(T->pb, cap, sizeof *T->pb, &T->oom);
        T->pstamp = grow(T->pstamp, cap, sizeof *T->pstamp, &T->oom);
        T->wn = grow(T->wn, cap, sizeof *T->wn, &T->oom);
        T->wcap = grow(T->wcap, cap, sizeof *T->wcap, &T->oom);
        T->where = grow(T->where, cap, sizeof *T->where, &T->oom);
        T->pcount = grow(T->pcount, cap, sizeof *T->pcount, &T->oom);
        T->banned = grow(T->banned, cap, 1, &T->oom);
        if (T->oom) return NONE32;
        T->pcap = cap;
    }
    if ((uint64_t)(T->np + 1) * 2 > T->pmask + 1) {
        uint64_t size = (T->pmask + 1) * 2;
        uint32_t *s = malloc(size * sizeof *s);
        if (!s) {
            T->oom = 1;
            return NONE32;
        }
        memset(s, 0xFF, size * sizeof *s);
        for (uint32_t i = 0; i < T->np; i++) {
            uint64_t g = (T->pkey[i] * 0x9E3779B97F4A7C15ull) >> 17;
            while (s[g & (size - 1)] != NONE32) g++;
            s[g & (size - 1)] = i;
        }
        free(T->pslot);
        T->pslot = s;
        T->pmask = size - 1;
        h = (key * 0x9E3779B97F4A7C15ull) >> 17;
        while (T->pslot[h & T->pmask] != NONE32) h++;
    }
    uint32_t q = T->np++;
    T->pslot[h & T->pmask] = q;
    T->pkey[q] = key;
    T->pa[q] = a;
    T->pb[q] = b;
    T->pstamp[q] = 0;
    T->wn[q] = T->wcap[q] = 0;
    T->where[q] = NULL;
    T->pcount[q] = 0;
    T->banned[q] = 0;
    return q;
}

static void where_add(trainer *T, uint32_t q, uint32_t w) {
    if (T->wn[q] > 0 && T->where[q][T->wn[q] - 1] == w) return;
    if (T->wn[q] == T->wcap[q]) {
        uint32_t cap = T->wcap[q] ? 2 * T->wcap[q] : 4;
        uint32_t *nw = grow(T->where[q], cap, sizeof *nw, &T->oom);
        if (T->oom) return;
        T->where[q] = nw;
        T->wcap[q] = cap;
    }
    T->where[q][T->wn[q]++] = w;
}

static int bytes_cmp(const trainer *T, uint32_t x, uint32_t y) {
    uint32_t lx = T->tlen[x], ly = T->tlen[y];
    int c = memcmp(T->tb + T->toff[x], T->tb + T->toff[y], lx < ly ? lx : ly);
    if (c) return c;
    return lx < ly ? -1 : lx > ly;
}

/* x goes before y: larger count, then smaller (left bytes, right bytes) */
static int hent_before(const trainer *T, const hent *x, const hent *y) {
    if (x->count != y->count) return x->count > y->count;
    if (x->pair == y->pair) return 0;
    int c = bytes_cmp(T, T->pa[x->pair], T->pa[y->pair]);
    if (c) return c < 0;
    return bytes_cmp(T, T->pb[x->pair], T->pb[y->pair]) < 0;
}

static void heap_push(trainer *T, int64_t count, uint32_t pair) {
    if (T->hn == T->hcap) {
        size_t cap = T->hcap ? 2 * T->hcap : 4096;
        hent *h = grow(T->heap, cap, sizeof *h, &T->oom);
        if (T->oom) return;
        T->heap = h;
        T->hcap = cap;
    }
    hent v = {count, pair};
    size_t i = T->hn++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!hent_before(T, &v, &T->heap[p])) break;
        T->heap[i] = T->heap[p];
        i = p;
    }
    T->heap[i] = v;
}

static hent heap_pop(trainer *T) {
    hent top = T->heap[0], v = T->heap[--T->hn];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1;
        if (l >= T->hn) break;
        if (l + 1 < T->hn && hent_before(T, &T->heap[l + 1], &T->heap[l])) l++;
        if (!hent_before(T, &T->heap[l], &v)) break;
        T->heap[i] = T->heap[l];
        i = l;
    }
    if (T->hn > 0) T->heap[i] = v;
    return top;
}

static void trainer_free(trainer *T) {
    free(T->toff);
    free(T->tlen);
    free(T->tb);
    free(T->tmap);
    free(T->ml);
    free(T->mr);
    free(T->sym);
    free(T->woff);
    free(T->wlen);
    free(T->wstamp);
    free(T->pkey);
    free(T->pslot);
    free(T->pa);
    free(T->pb);
    free(T->pstamp);
    free(T->wn);
    free(T->wcap);
    for (uint32_t q = 0; T->where && q < T->np; q++) free(T->where[q]);
    free(T->where);
    free(T->pcount);
    free(T->banned);
    free(T->heap);
}

/* Merge pair p = (a, b) into new token z in every word that holds it, updating pair counts and
 * the words each pair occurs in; push the pairs that gained counts. */
static void apply_merge(trainer *T, uint32_t p, uint32_t z, uint32_t step, uint32_t **touched,
                        size_t *n_touched, size_t *touched_cap) {
    uint32_t a = T->pa[p], b = T->pb[p];
    uint32_t *list = T->where[p];
    uint32_t n_list = T->wn[p];
    T->where[p] = NULL;
    T->wn[p] = T->wcap[p] = 0;
    *n_touched = 0;
    for (uint32_t k = 0; k < n_list && !T->oom; k++) {
        uint32_t w = list[k];
        if (T->wstamp[w] == step) continue;
        T->wstamp[w] = step;
        uint32_t *s = T->sym + T->woff[w];
        uint32_t L = T->wlen[w];
        int found = 0;
        for (uint32_t i = 0; i + 1 < L; i++)
            if (s[i] == a && s[i + 1] == b) {
                found = 1;
                break;
            }
        if (!found) continue;
        int64_t cw = (int64_t)T->wcount[w];
        for (uint32_t i = 0; i + 1 < L; i++) {
            uint32_t q = pair_get(T, s[i], s[i + 1], 0);
            assert(q != NONE32); /* every adjacent pair of every word has an entry */
            T->pcount[q] -= cw;
        }
        uint32_t o = 0;
        for (uint32_t i = 0; i < L;) {
            if (i + 1 < L && s[i] == a && s[i + 1] == b) {
                s[o++] = z;
                i += 2;
            } else {
                s[o++] = s[i++];
            }
        }
        T->wlen[w] = L = o;
        for (uint32_t i = 0; i + 1 < L && !T->oom; i++) {
            uint32_t q = pair_get(T, s[i], s[i + 1], 1);
            if (q == NONE32) break;
            T->pcount[q] += cw;
            if (s[i] == z || s[i + 1] == z) {
                where_add(T, q, w);
                if (T->pstamp[q] != step) {
                    T->pstamp[q] = step;
                    if (*n_touched == *touched_cap) {
                        size_t cap = *touched_cap ? 2 * *touched_cap : 1024;
                        uint32_t *nt = grow(*touched, cap, sizeof *nt, &T->oom);
                        if (T->oom) break;
                        *touched = nt;
                        *touched_cap = cap;
                    }
                    (*touched)[(*n_touched)++] = q;
                }
            }
        }
    }
    free(list);
    for (size_t k = 0; k < *n_touched && !T->oom; k++) {
        uint32_t q = (*touched)[k];
        if (T->pcount[q] > 0) heap_push(T, T->pcount[q], q);
    }
}

static int utf8_ok(const char *s) {
    const uint8_t *u = (const uint8_t *)s;
    while (*u) {
        size_t k = *u < 0x80 ? 1 : (*u >= 0xC2 && *u <= 0xDF) ? 2 : (*u >= 0xE0 && *u <= 0xEF) ? 3
                 : (*u >= 0xF0 && *u <= 0xF4) ? 4 : 0;
        if (!k) return 0;
        for (size_t j = 1; j < k; j++)
            if ((u[j] & 0xC0) != 0x80) return 0;
        u += k;
    }
    return 1;
}

static const char *const default_specials[] = {"<|endoftext|>", NULL};

static lmf_status train_core(const char *const *bufs, const size_t *lens, size_t n_bufs,
                             const lmf_tok_train_opts *o, lmf_tokenizer **out,
                             lmf_tok_train_trace *trace) {
    *out = NULL;
    const char *const *specials = o->specials ? o->specials : default_specials;
    int n_special = 0;
    while (specials[n_special]) {
        const char *sp = specials[n_special];
        if (!*sp || !utf8_ok(sp))
            return lmf_fail(LMF_ERR_ARG, "tokenizer training: special token %d is empty or not "
                            "valid UTF-8", n_special + 1);
        if (strlen(sp) == 1)
            return lmf_fail(LMF_ERR_ARG, "tokenizer training: special token '%s' is a single byte, "
                            "which is already an ordinary token; choose another string", sp);
        for (int k = 0; k < n_special; k++)
            if (strcmp(specials[k], sp) == 0)
                return lmf_fail(LMF_ERR_ARG, "tokenizer training: special token '%s' is given twice", sp);
        n_special++;
    }
    if (o->vocab_size < 256 + n_special || o->vocab_size > (int)LMF_TOK_MAX_IDS)
        return lmf_fail(LMF_ERR_ARG, "tokenizer training: vocab size %d must be between %d "
                        "(256 bytes + %d special) and %u", o->vocab_size, 256 + n_special,
                        n_special, LMF_TOK_MAX_IDS);
    if (o->pattern != LMF_TOK_PATTERN_GPT2 && o->pattern != LMF_TOK_PATTERN_CL100K)
        return lmf_fail(LMF_ERR_ARG, "tokenizer training: unknown pattern %d", (int)o->pattern);
    lmf_wordmap wm;
    uint64_t total = 0;
    LMF_TRY(lmf_tok_count_words(bufs, lens, n_bufs, o->pattern, o->threads, &wm, &total));
    if (o->verbose)
        fprintf(stderr, "tokenizer: %llu pre-tokens, %zu distinct\n", (unsigned long long)total, wm.n);

    trainer T = {0};
    T.tmask = 1023;
    T.tmap = malloc(1024 * sizeof *T.tmap);
    T.pmask = 4095;
    T.pslot = malloc(4096 * sizeof *T.pslot);
    T.n_words = wm.n;
    T.wcount = wm.count;
    T.sym = malloc((wm.arena_len ? wm.arena_len : 1) * sizeof *T.sym);
    T.woff = malloc((wm.n ? wm.n : 1) * sizeof *T.woff);
    T.wlen = malloc((wm.n ? wm.n : 1) * sizeof *T.wlen);
    T.wstamp = calloc(wm.n ? wm.n : 1, sizeof *T.wstamp);
    uint32_t n_target = (uint32_t)(o->vocab_size - n_special);
    T.ml = malloc((n_target - 256 + 1) * sizeof *T.ml);
    T.mr = malloc((n_target - 256 + 1) * sizeof *T.mr);
    if (!T.tmap || !T.pslot || !T.sym || !T.woff || !T.wlen || !T.wstamp || !T.ml || !T.mr) T.oom = 1;
    if (!T.oom) {
        memset(T.tmap, 0xFF, 1024 * sizeof *T.tmap);
        memset(T.pslot, 0xFF, 4096 * sizeof *T.pslot);
        for (int b = 0; b < 256 && !T.oom; b++) {
            char c = (char)b;
            tok_add(&T, &c, 1, NONE32, NONE32);
        }
    }
    /* words as byte symbols; initial pair counts and where-lists */
    for (size_t w = 0; w < wm.n && !T.oom; w++) {
        const uint8_t *src = (const uint8_t *)wm.arena + wm.off[w];
        uint32_t L = wm.len[w];
        T.woff[w] = wm.off[w];
        T.wlen[w] = L;
        uint32_t *s = T.sym + wm.off[w];
        for (uint32_t i = 0; i < L; i++) s[i] = src[i];
        for (uint32_t i = 0; i + 1 < L && !T.oom; i++) {
            uint32_t q = pair_get(&T, s[i], s[i + 1], 1);
            if (q == NONE32) break;
            T.pcount[q] += (int64_t)wm.count[w];
            where_add(&T, q, (uint32_t)w);
        }
    }
    for (uint32_t q = 0; q < T.np && !T.oom; q++) heap_push(&T, T.pcount[q], q);

    uint32_t *touched = NULL;
    size_t n_touched = 0, touched_cap = 0;
    uint32_t n_merges = 0;
    while (T.n_tok < n_target && T.hn > 0 && !T.oom) {
        hent top = heap_pop(&T);
        uint32_t p = top.pair;
        if (T.banned[p] || T.pcount[p] <= 0) continue;
        if (top.count != T.pcount[p]) {
            heap_push(&T, T.pcount[p], p);
            continue;
        }
        uint32_t a = T.pa[p], b = T.pb[p];
        size_t na = T.tlen[a], nb = T.tlen[b];
        /* A merge whose bytes are already a token would give two merge paths to one token.
         * With one global merge order that cannot happen (where both pieces of a string sit
         * between token boundaries, earlier merges split it the same way everywhere), so this
         * only guards the invariant that every merge makes a new token, on which encoding
         * reproducing training rests. */
        char *cat = malloc(na + nb);
        if (!cat) {
            T.oom = 1;
            break;
        }
        memcpy(cat, T.tb + T.toff[a], na);
        memcpy(cat + na, T.tb + T.toff[b], nb);
        uint32_t have = tok_find(&T, cat, na + nb, XXH3_64bits(cat, na + nb));
        free(cat);
        if (have != NONE32) {
            T.banned[p] = 1;
            continue;
        }
        uint32_t z = tok_add(&T, NULL, 0, a, b);
        if (z == NONE32) break;
        T.ml[n_merges] = a;
        T.mr[n_merges] = b;
        n_merges++;
        apply_merge(&T, p, z, n_merges, &touched, &n_touched, &touched_cap);
        if (o->verbose && (n_merges % 1000 == 0 || T.n_tok == n_target))
            fprintf(stderr, "\rtokenizer: %u/%u merges (last pair seen %lld times)", n_merges,
                    n_target - 256, (long long)top.count);
    }
    free(touched);
    if (o->verbose) fprintf(stderr, "\n");
    lmf_status st = LMF_OK;
    if (T.oom) st = lmf_fail(LMF_ERR_NOMEM, "tokenizer training: out of memory");
    if (st == LMF_OK && o->verbose && T.n_tok < n_target)
        fprintf(stderr, "tokenizer: the corpus allows only %u merges; the vocabulary has %u ids\n",
                n_merges, T.n_tok + (uint32_t)n_special);

    /* the tokenizer: bytes, merge results, then special tokens */
    lmf_tokenizer *t = NULL;
    if (st == LMF_OK) {
        t = lmf_tok_alloc();
        if (!t) st = LMF_ERR_NOMEM;
        else t->pattern = o->pattern;
    }
    for (uint32_t i = 0; st == LMF_OK && i < T.n_tok; i++)
        st = lmf_tok_set_token(t, i, T.tb + T.toff[i], T.tlen[i], LMF_TOK_KIND_NORMAL, "training");
    for (int k = 0; st == LMF_OK && k < n_special; k++) {
        st = lmf_tok_set_token(t, T.n_tok + (uint32_t)k, specials[k], strlen(specials[k]),
                               LMF_TOK_KIND_SPECIAL, "training");
        if (st != LMF_OK)
            st = lmf_fail(LMF_ERR_ARG, "tokenizer training: special token '%s' is also an ordinary "
                          "token of the vocabulary; choose another string", specials[k]);
    }
    for (uint32_t r = 0; st == LMF_OK && r < n_merges; r++) st = lmf_tok_add_merge(t, T.ml[r], T.mr[r], "training");
    if (st == LMF_OK) st = lmf_tok_finish(t, 0, "training");

    if (st == LMF_OK && trace) {
        memset(trace, 0, sizeof *trace);
        trace->n_words = wm.n;
        trace->word_bytes = malloc(wm.arena_len ? wm.arena_len : 1);
        trace->word_off = malloc((wm.n + 1) * sizeof *trace->word_off);
        trace->word_count = malloc((wm.n ? wm.n : 1) * sizeof *trace->word_count);
        trace->ids = malloc((wm.arena_len ? wm.arena_len : 1) * sizeof *trace->ids);
        trace->ids_off = malloc((wm.n + 1) * sizeof *trace->ids_off);
        if (!trace->word_bytes || !trace->word_off || !trace->word_count || !trace->ids || !trace->ids_off) {
            lmf_tok_train_trace_free(trace);
            st = lmf_fail(LMF_ERR_NOMEM, "tokenizer training: out of memory");
        } else {
            size_t bo = 0, io = 0;
            for (size_t w = 0; w < wm.n; w++) {
                trace->word_off[w] = bo;
                memcpy(trace->word_bytes + bo, wm.arena + wm.off[w], wm.len[w]);
                bo += wm.len[w];
                trace->word_count[w] = wm.count[w];
                trace->ids_off[w] = io;
                memcpy(trace->ids + io, T.sym + T.woff[w], T.wlen[w] * sizeof *trace->ids);
                io += T.wlen[w];
            }
            trace->word_off[wm.n] = bo;
            trace->ids_off[wm.n] = io;
        }
    }
    trainer_free(&T);
    lmf_wordmap_free(&wm);
    if (st != LMF_OK) {
        lmf_tok_free(t);
        return st;
    }
    *out = t;
    return LMF_OK;
}

void lmf_tok_train_trace_free(lmf_tok_train_trace *tr) {
    if (!tr) return;
    free(tr->word_bytes);
    free(tr->word_off);
    free(tr->word_count);
    free(tr->ids);
    free(tr->ids_off);
    memset(tr, 0, sizeof *tr);
}

lmf_status lmf_tok_train_buffer_traced(const char *text, size_t len, const lmf_tok_train_opts *o,
                                       lmf_tokenizer **out, lmf_tok_train_trace *trace) {
    return train_core(&text, &len, 1, o, out, trace);
}

lmf_status lmf_tok_train_buffer(const char *text, size_t len, const lmf_tok_train_opts *o,
                                lmf_tokenizer **out) {
    return train_core(&text, &len, 1, o, out, NULL);
}

lmf_status lmf_tok_train_files(const char *const *paths, int n_paths, const lmf_tok_train_opts *o,
                               lmf_tokenizer **out) {
    *out = NULL;
    if (n_paths <= 0) return lmf_fail(LMF_ERR_ARG, "tokenizer training: no input files");
    char **bufs = calloc((size_t)n_paths, sizeof *bufs);
    size_t *lens = calloc((size_t)n_paths, sizeof *lens);
    lmf_status st = bufs && lens ? LMF_OK : lmf_fail(LMF_ERR_NOMEM, "tokenizer training: out of memory");
    for (int i = 0; i < n_paths && st == LMF_OK; i++) st = lmf_tok_read_file(paths[i], &bufs[i], &lens[i]);
    if (st == LMF_OK) st = train_core((const char *const *)bufs, lens, (size_t)n_paths, o, out, NULL);
    for (int i = 0; bufs && i < n_paths; i++) free(bufs[i]);
    free(bufs);
    free(lens);
    return st;
}

/* Counting a training corpus's pre-tokens on several threads, in a fixed order. */
/* One hash map per thread, merged afterwards; the distinct words are then sorted so the result
 * does not depend on the threads. */
#include "tokenizer/train_count.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "lmforge/tokenizer.h"
#include "tokenizer/pretok.h"

#define NO_ENTRY 0xFFFFFFFFu
#define CHUNK (1u << 20)

void lmf_wordmap_free(lmf_wordmap *m) {
    free(m->slots);
    free(m->hash);
    free(m->count);
    free(m->off);
    free(m->len);
    free(m->arena);
    memset(m, 0, sizeof *m);
}

static int grow_slots(lmf_wordmap *m) {
    uint64_t size = m->slots ? (m->mask + 1) * 2 : 4096;
    uint32_t *s = malloc(size * sizeof *s);
    if (!s) return 0;
    memset(s, 0xFF, size * sizeof *s);
    for (size_t e = 0; e < m->n; e++) {
        uint64_t h = m->hash[e];
        while (s[h & (size - 1)] != NO_ENTRY) h++;
        s[h & (size - 1)] = (uint32_t)e;
    }
    free(m->slots);
    m->slots = s;
    m->mask = size - 1;
    return 1;
}

static int grow_entries(lmf_wordmap *m) {
    size_t cap = m->cap ? m->cap * 2 : 4096;
    uint64_t *h = realloc(m->hash, cap * sizeof *h);
    if (h) m->hash = h;
    uint64_t *c = realloc(m->count, cap * sizeof *c);
    if (c) m->count = c;
    uint64_t *o = realloc(m->off, cap * sizeof *o);
    if (o) m->off = o;
    uint32_t *l = realloc(m->len, cap * sizeof *l);
    if (l) m->len = l;
    if (!h || !c || !o || !l) return 0;
    m->cap = cap;
    return 1;
}

/* add `count` occurrences of w[0..n); 0 when out of memory */
static int wordmap_add(lmf_wordmap *m, const char *w, size_t n, uint64_t h, uint64_t count) {
    if (!m->slots || (m->n + 1) * 2 > m->mask + 1)
        if (!grow_slots(m)) return 0;
    uint64_t i = h;
    for (;; i++) {
        uint32_t e = m->slots[i & m->mask];
        if (e == NO_ENTRY) break;
        if (m->hash[e] == h && m->len[e] == n && memcmp(m->arena + m->off[e], w, n) == 0) {
            m->count[e] += count;
            return 1;
        }
    }
    if (m->n == m->cap && !grow_entries(m)) return 0;
    if (m->arena_len + n > m->arena_cap) {
        size_t cap = m->arena_cap ? m->arena_cap : 65536;
        while (cap < m->arena_len + n) cap *= 2;
        char *a = realloc(m->arena, cap);
        if (!a) return 0;
        m->arena = a;
        m->arena_cap = cap;
    }
    memcpy(m->arena + m->arena_len, w, n);
    size_t e = m->n++;
    m->hash[e] = h;
    m->count[e] = count;
    m->off[e] = m->arena_len;
    m->len[e] = (uint32_t)n;
    m->arena_len += n;
    m->slots[i & m->mask] = (uint32_t)e;
    return 1;
}

typedef struct piece {
    const char *p;
    size_t n;
} piece;

typedef struct word_ref {
    const char *p;
    uint64_t count;
    uint32_t len;
} word_ref;

static int cmp_word(const void *a, const void *b) {
    const word_ref *x = a, *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->p, y->p, n);
    if (c) return c;
    return x->len < y->len ? -1 : x->len > y->len;
}

/* rebuild m with its words in byte order */
static int sort_words(lmf_wordmap *m) {
    word_ref *r = malloc((m->n ? m->n : 1) * sizeof *r);
    lmf_wordmap s = {0};
    if (!r) return 0;
    for (size_t e = 0; e < m->n; e++) r[e] = (word_ref){m->arena + m->off[e], m->count[e], m->len[e]};
    qsort(r, m->n, sizeof *r, cmp_word);
    int ok = 1;
    for (size_t e = 0; e < m->n && ok; e++)
        ok = wordmap_add(&s, r[e].p, r[e].len, XXH3_64bits(r[e].p, r[e].len), r[e].count);
    free(r);
    if (!ok) {
        lmf_wordmap_free(&s);
        return 0;
    }
    lmf_wordmap_free(m);
    *m = s;
    return 1;
}

lmf_status lmf_tok_count_words(const char *const *bufs, const size_t *lens, size_t n_bufs,
                               lmf_tok_pattern p, int threads, lmf_wordmap *out, uint64_t *total) {
    lmf_pretok_init();
    memset(out, 0, sizeof *out);
    *total = 0;
    /* cut every buffer into pieces of about CHUNK bytes at safe points */
    size_t n_pieces = 0, cap = 64;
    piece *pieces = malloc(cap * sizeof *pieces);
    if (!pieces) return lmf_fail(LMF_ERR_NOMEM, "tokenizer training: out of memory");
    for (size_t b = 0; b < n_bufs; b++) {
        for (size_t pos = 0; pos < lens[b];) {
            size_t end = pos + CHUNK >= lens[b] ? lens[b] : lmf_tok_split_point(bufs[b], lens[b], pos + CHUNK);
            if (n_pieces == cap) {
                piece *np = realloc(pieces, 2 * cap * sizeof *np);
                if (!np) {
                    free(pieces);
                    return lmf_fail(LMF_ERR_NOMEM, "tokenizer training: out of memory");
                }
                pieces = np;
                cap *= 2;
            }
            pieces[n_pieces++] = (piece){bufs[b] + pos, end - pos};
            pos = end;
        }
    }
    int nt = threads > 0 ? threads : omp_get_max_threads();
    if ((size_t)nt > n_pieces) nt = n_pieces > 0 ? (int)n_pieces : 1;
    lmf_wordmap *local = calloc((size_t)nt, sizeof *local);
    uint64_t *counted = calloc((size_t)nt, sizeof *counted);
    int failed = 0;
    if (!local || !counted) failed = 1;
    if (!failed) {
#pragma omp parallel num_threads(nt)
        {
            int me = omp_get_thread_num(), bad = 0;
#pragma omp for schedule(dynamic, 1)
            for (size_t k = 0; k < n_pieces; k++) {
                const uint8_t *s = (const uint8_t *)pieces[k].p;
                size_t n = pieces[k].n;
                for (size_t pos = 0; pos < n && !bad;) {
                    size_t end = lmf_pretok_piece(p, s, n, pos);
                    const char *w = (const char *)s + pos;
                    if (!wordmap_add(&local[me], w, end - pos, XXH3_64bits(w, end - pos), 1)) bad = 1;
                    counted[me]++;
                    pos = end;
                }
            }
            if (bad) {
#pragma omp atomic write
                failed = 1;
            }
        }
    }
    for (int k = 0; k < nt && !failed; k++) {
        for (size_t e = 0; e < local[k].n && !failed; e++)
            if (!wordmap_add(out, local[k].arena + local[k].off[e], local[k].len[e], local[k].hash[e],
                             local[k].count[e]))
                failed = 1;
        *total += counted[k];
    }
    for (int k = 0; local && k < nt; k++) lmf_wordmap_free(&local[k]);
    free(local);
    free(counted);
    free(pieces);
    if (!failed && !sort_words(out)) failed = 1;
    if (failed) {
        lmf_wordmap_free(out);
        return lmf_fail(LMF_ERR_NOMEM, "tokenizer training: out of memory while counting words");
    }
    return LMF_OK;
}

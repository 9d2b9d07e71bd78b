/* Batch loader over a dataset: overlapping rows per token file, sources mixed by a Weyl
 * sequence of the global row number, each source in file order or a keyed Feistel permutation
 * per epoch, micro-batches for data parallelism, resumable state (lmforge/data.h has the rule).
 * A micro-batch's rows are read together: sorted by file and position, rows in one file that
 * lie close together come from one span, and the spans from one call of
 * lmf_dataset_read_spans (one system call for many). */
#include "lmforge/data.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FEISTEL_ROUNDS 6

#define WEYL_STEP 0x9E3779B97F4A7C15ull /* 2^64 / golden ratio, odd */

#define SPAN_TOKENS 65536 /* tokens one batched read covers at most */

typedef struct rowref {  /* a row of the micro-batch being filled */
    int file;
    uint64_t start;      /* its first token in the file */
    uint32_t b;          /* its place in the micro-batch */
    const int32_t *tok;  /* its T + 1 tokens once read (inside a span) */
} rowref;

typedef struct lsource {
    int first, count;        /* the source's files in the dataset */
    uint64_t *rows_before;   /* [count + 1]: rows of the source's files before file k */
    uint64_t n_rows;
    uint64_t threshold;      /* x < threshold (and >= the previous source's) picks it */
} lsource;

struct lmf_loader {
    lmf_dataset *d;
    int B, T;
    int vocab;
    int n_src;
    lsource src[LMF_DATA_MAX_SOURCES];
    uint64_t n_rows;         /* all sources */
    uint64_t u;              /* the Weyl sequence's start, from the seed */
    int32_t *row;            /* [max(T + 1, SPAN_TOKENS)]: one read's tokens, or several spans' */
    size_t row_cap;
    rowref *refs;            /* [B] */
    lmf_dataset_span *spans; /* [B] */
    int batch_reads;         /* 1: rows read together (the default); 0: one read per row */
    lmf_loader_state st;
};

/* The permutation of [0, n) for one (seed, epoch): a balanced Feistel network on 2*h bits
 * (2^(2h) >= n, at most about 4n), restricted to [0, n) by cycle walking. */
typedef struct perm {
    uint64_t n;
    int h;
    uint64_t mask;
    uint64_t key[FEISTEL_ROUNDS];
} perm;

/* a 64-bit finaliser with full avalanche (the constants of splitmix64) */
static uint64_t mix64(uint64_t x) {
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return x;
}

static void perm_init(perm *p, uint64_t n, uint64_t seed, uint64_t epoch, int source) {
    int bits = 0;
    while (bits < 64 && (n - 1) >> bits) bits++; /* bits needed for n - 1 */
    p->n = n;
    p->h = bits < 2 ? 1 : (bits + 1) / 2;
    p->mask = p->h >= 64 ? ~0ull : (1ull << p->h) - 1;
    /* source 0 keeps the key of the single-file loader, so its order is unchanged */
    uint64_t base = mix64(seed ^ 0x6c6d66726f6f7473ull) ^ mix64(epoch + 0x9e3779b97f4a7c15ull) ^
                    (source ? mix64((uint64_t)source * 0xa0761d6478bd642full) : 0);
    for (int r = 0; r < FEISTEL_ROUNDS; r++) p->key[r] = mix64(base + (uint64_t)(r + 1) * 0xd1b54a32d192ed03ull);
}

static uint64_t feistel(const perm *p, uint64_t x) {
    uint64_t L = x >> p->h, R = x & p->mask;
    for (int r = 0; r < FEISTEL_ROUNDS; r++) {
        uint64_t t = L ^ (mix64(R ^ p->key[r]) & p->mask);
        L = R;
        R = t;
    }
    return L << p->h | R;
}

static uint64_t perm_apply(const perm *p, uint64_t i) {
    uint64_t x = i;
    do x = feistel(p, x);
    while (x >= p->n);
    return x;
}

static uint64_t weyl_start(uint64_t seed) { return mix64(seed ^ 0x6d6978747572650aull); }

void lmf_loader_free(lmf_loader *l) {
    if (!l) return;
    for (int i = 0; i < l->n_src; i++) free(l->src[i].rows_before);
    free(l->row);
    free(l->refs);
    free(l->spans);
    free(l);
}

lmf_status lmf_loader_create(lmf_dataset *d, int B, int T, int shuffle, uint64_t seed,
                             lmf_loader **out) {
    *out = NULL;
    if (B < 1 || T < 1)
        return lmf_fail(LMF_ERR_ARG, "batch size and sequence length must be positive (got %d x %d)",
                        B, T);
    lmf_loader *l = calloc(1, sizeof *l);
    size_t row_cap = (size_t)T + 1 > SPAN_TOKENS ? (size_t)T + 1 : SPAN_TOKENS;
    if (!l || !(l->row = malloc(row_cap * sizeof(int32_t))) ||
        !(l->refs = malloc((size_t)B * sizeof *l->refs)) ||
        !(l->spans = malloc((size_t)B * sizeof *l->spans))) {
        if (l) {
            free(l->row);
            free(l->refs);
        }
        free(l);
        return lmf_fail(LMF_ERR_NOMEM, "out of memory creating the data loader");
    }
    l->row_cap = row_cap;
    l->batch_reads = 1;
    l->d = d;
    l->B = B;
    l->T = T;
    l->n_src = lmf_dataset_num_sources(d);
    double cum = 0.0;
    lmf_status s = LMF_OK;
    for (int i = 0; s == LMF_OK && i < l->n_src; i++) {
        lsource *ls = &l->src[i];
        lmf_dataset_source_files(d, i, &ls->first, &ls->count);
        ls->rows_before = malloc(((size_t)ls->count + 1) * sizeof(uint64_t));
        if (!ls->rows_before) {
            s = lmf_fail(LMF_ERR_NOMEM, "out of memory creating the data loader");
            break;
        }
        uint64_t rows = 0;
        for (int k = 0; k < ls->count; k++) {
            ls->rows_before[k] = rows;
            rows += (lmf_dataset_file_tokens(d, ls->first + k) - 1) / (uint64_t)T;
        }
        ls->rows_before[ls->count] = rows;
        ls->n_rows = rows;
        l->n_rows += rows;
        cum += lmf_dataset_source_weight(d, i);
        /* 2^64 * cum, the last source catching everything */
        ls->threshold = i == l->n_src - 1 || cum >= 1.0 ? UINT64_MAX
                                                       : (uint64_t)(cum * 18446744073709551616.0);
        /* one source must fill a micro-batch; in a mixture every source needs a row */
        if (rows < (l->n_src == 1 ? (uint64_t)B : 1)) {
            const char *one = ls->count == 1 ? lmf_dataset_file_path(d, ls->first) : NULL;
            s = lmf_fail(LMF_ERR_ARG,
                         "%s %s has %llu rows of %d+1 tokens; a batch of %d x %d needs at least "
                         "%d (B*T+1 tokens in one file); use a smaller --batch/--seq or more data",
                         one ? "token file" : "source", one ? one : lmf_dataset_source_name(d, i),
                         (unsigned long long)rows, T, B, T, l->n_src == 1 ? B : 1);
        }
    }
    l->u = weyl_start(seed);
    l->st.seed = seed;
    l->st.shuffle = shuffle ? 1 : 0;
    l->st.n_sources = l->n_src;
    if (s != LMF_OK) {
        lmf_loader_free(l);
        return s;
    }
    *out = l;
    return LMF_OK;
}

void lmf_loader_set_vocab(lmf_loader *l, int vocab_size) { l->vocab = vocab_size; }

void lmf_loader_set_batch_reads(lmf_loader *l, int on) { l->batch_reads = on ? 1 : 0; }

/* the source of global row g */
static int source_of(const lmf_loader *l, uint64_t g) {
    if (l->n_src == 1) return 0;
    uint64_t x = l->u + g * WEYL_STEP;
    int i = 0;
    while (i < l->n_src - 1 && x >= l->src[i].threshold) i++;
    return i;
}

/* row k of source i: its file (in the dataset) and first token */
static rowref locate_row(const lmf_loader *l, int i, uint64_t k) {
    const lsource *ls = &l->src[i];
    int lo = 0, hi = ls->count - 1; /* the file holding row k: last with rows_before <= k */
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (ls->rows_before[mid] <= k) lo = mid;
        else hi = mid - 1;
    }
    return (rowref){ls->first + lo, (k - ls->rows_before[lo]) * (uint64_t)l->T, 0, NULL};
}

/* the row of r, its T + 1 tokens at tok, -> inputs[T], targets[T], checked against the
 * vocabulary */
static lmf_status put_row(const lmf_loader *l, const rowref *r, const int32_t *tok,
                          int32_t *inputs, int32_t *targets) {
    size_t n = (size_t)l->T + 1;
    if (l->vocab > 0)
        for (size_t t = 0; t < n; t++)
            if (tok[t] < 0 || tok[t] >= l->vocab)
                return lmf_fail(LMF_ERR_ARG,
                                "token file %s holds token id %u (token %llu) but the model's "
                                "vocab_size is %d; use a model with a larger vocabulary "
                                "(--vocab-size) or data made with its tokenizer",
                                lmf_dataset_file_path(l->d, r->file), (unsigned)tok[t],
                                (unsigned long long)(r->start + t), l->vocab);
    memcpy(inputs, tok, (size_t)l->T * sizeof(int32_t));
    memcpy(targets, tok + 1, (size_t)l->T * sizeof(int32_t));
    return LMF_OK;
}

/* row k of source i -> inputs[T], targets[T] */
static lmf_status read_row(lmf_loader *l, int i, uint64_t k, int32_t *inputs, int32_t *targets) {
    rowref r = locate_row(l, i, k);
    LMF_TRY(lmf_dataset_read(l->d, r.file, r.start, (size_t)l->T + 1, l->row));
    return put_row(l, &r, l->row, inputs, targets);
}

static int cmp_ref(const void *a, const void *b) {
    const rowref *x = a, *y = b;
    if (x->file != y->file) return x->file < y->file ? -1 : 1;
    if (x->start != y->start) return x->start < y->start ? -1 : 1;
    return x->b < y->b ? -1 : x->b > y->b;
}

/* the spans l->spans[0..ns) read, then rows refs[a0..a) (inside them) into the micro-batch */
static lmf_status flush_spans(lmf_loader *l, const rowref *refs, size_t a0, size_t a, size_t ns,
                              int32_t *inputs, int32_t *targets) {
    const uint64_t T = (uint64_t)l->T;
    LMF_TRY(lmf_dataset_read_spans(l->d, l->spans, ns));
    for (size_t j = a0; j < a; j++)
        LMF_TRY(put_row(l, &refs[j], refs[j].tok, inputs + refs[j].b * T, targets + refs[j].b * T));
    return LMF_OK;
}

/* The rows refs[0..n) into the micro-batch: sorted by file and position, each run of rows of
 * one file with gaps of at most T tokens between them, spanning at most row_cap tokens, is one
 * span; the spans that fit row_cap together are read by one lmf_dataset_read_spans. */
static lmf_status read_rows(lmf_loader *l, rowref *refs, size_t n, int32_t *inputs,
                            int32_t *targets) {
    const uint64_t T = (uint64_t)l->T;
    int sorted = 1;
    for (size_t j = 1; j < n && sorted; j++) sorted = cmp_ref(&refs[j - 1], &refs[j]) <= 0;
    if (!sorted) qsort(refs, n, sizeof *refs, cmp_ref);
    size_t used = 0, ns = 0, a0 = 0; /* tokens of l->row taken; spans; their first row */
    for (size_t a = 0; a < n;) {
        uint64_t lo = refs[a].start, hi = lo + T + 1;
        size_t e = a + 1;
        while (e < n && refs[e].file == refs[a].file && refs[e].start <= hi + T &&
               refs[e].start + T + 1 - lo <= l->row_cap) {
            if (refs[e].start + T + 1 > hi) hi = refs[e].start + T + 1;
            e++;
        }
        size_t len = (size_t)(hi - lo);
        if (used + len > l->row_cap) {
            LMF_TRY(flush_spans(l, refs, a0, a, ns, inputs, targets));
            used = ns = 0;
            a0 = a;
        }
        l->spans[ns++] = (lmf_dataset_span){refs[a].file, lo, len, l->row + used};
        for (size_t j = a; j < e; j++) refs[j].tok = l->row + used + (refs[j].start - lo);
        used += len;
        a = e;
    }
    return flush_spans(l, refs, a0, n, ns, inputs, targets);
}

/* slot j of source i's row stream (from its state) -> the row's index in the source */
static uint64_t slot_row(const lmf_loader *l, int i, uint64_t j, perm *p, uint64_t *p_epoch,
                         int *have) {
    const lsource *ls = &l->src[i];
    uint64_t epoch = l->st.src[i].epoch + j / ls->n_rows, r = j % ls->n_rows;
    if (!l->st.shuffle) return r;
    if (!*have || *p_epoch != epoch) {
        perm_init(p, ls->n_rows, l->st.seed, epoch, i);
        *p_epoch = epoch;
        *have = 1;
    }
    return perm_apply(p, r);
}

lmf_status lmf_loader_fill(lmf_loader *l, uint64_t index, int32_t *inputs, int32_t *targets) {
    const uint64_t B = (uint64_t)l->B, T = (uint64_t)l->T;
    uint64_t taken[LMF_DATA_MAX_SOURCES] = {0}; /* rows of each source before this micro-batch */
    uint64_t g0 = l->st.rows;
    if (l->n_src == 1) taken[0] = index * B;
    else
        for (uint64_t j = 0; j < index * B; j++) taken[source_of(l, g0 + j)]++;
    perm p[1] = {{0}};
    uint64_t p_epoch = 0;
    int have = 0, p_src = -1;
    for (uint64_t b = 0; b < B; b++) {
        int i = source_of(l, g0 + index * B + b);
        if (i != p_src) have = 0; /* the cached permutation is one source's */
        p_src = i;
        uint64_t k = slot_row(l, i, l->st.src[i].position + taken[i]++, p, &p_epoch, &have);
        if (!l->batch_reads) {
            LMF_TRY(read_row(l, i, k, inputs + b * T, targets + b * T));
            continue;
        }
        l->refs[b] = locate_row(l, i, k);
        l->refs[b].b = (uint32_t)b;
    }
    return l->batch_reads ? read_rows(l, l->refs, (size_t)B, inputs, targets) : LMF_OK;
}

void lmf_loader_batch_counts(const lmf_loader *l, uint64_t n, uint64_t *counts) {
    memset(counts, 0, (size_t)l->n_src * sizeof *counts);
    uint64_t rows = n * (uint64_t)l->B;
    if (l->n_src == 1) counts[0] = rows;
    else
        for (uint64_t j = 0; j < rows; j++) counts[source_of(l, l->st.rows + j)]++;
}

uint64_t lmf_loader_advance(lmf_loader *l, uint64_t n) {
    uint64_t c[LMF_DATA_MAX_SOURCES], mask = 0;
    lmf_loader_batch_counts(l, n, c);
    l->st.rows += n * (uint64_t)l->B;
    for (int i = 0; i < l->n_src; i++) l->st.src[i].position += c[i];
    lmf_loader_batch_counts(l, n, c); /* the next batch of the same size */
    for (int i = 0; i < l->n_src; i++) {
        lmf_loader_source_state *s = &l->st.src[i];
        uint64_t R = l->src[i].n_rows;
        if (s->position >= R || c[i] > R - s->position) {
            s->epoch++;
            s->position = 0;
            if (i < 64) mask |= 1ull << i;
        }
    }
    return mask;
}

lmf_status lmf_loader_fill_eval(lmf_loader *l, uint64_t k, int32_t *inputs, int32_t *targets) {
    const uint64_t B = (uint64_t)l->B, T = (uint64_t)l->T;
    LMF_ASSERT(k < l->n_rows / B);
    for (uint64_t b = 0; b < B; b++) {
        uint64_t r = k * B + b;
        int i = 0;
        while (r >= l->src[i].n_rows) r -= l->src[i++].n_rows;
        if (!l->batch_reads) {
            LMF_TRY(read_row(l, i, r, inputs + b * T, targets + b * T));
            continue;
        }
        l->refs[b] = locate_row(l, i, r); /* consecutive rows: one span per file */
        l->refs[b].b = (uint32_t)b;
    }
    return l->batch_reads ? read_rows(l, l->refs, (size_t)B, inputs, targets) : LMF_OK;
}

uint64_t lmf_loader_num_windows(const lmf_loader *l) { return l->n_rows; }
uint64_t lmf_loader_batch_tokens(const lmf_loader *l) { return (uint64_t)l->B * (uint64_t)l->T; }
uint64_t lmf_loader_source_rows(const lmf_loader *l, int i) { return l->src[i].n_rows; }

void lmf_loader_get_state(const lmf_loader *l, lmf_loader_state *st) { *st = l->st; }

lmf_status lmf_loader_set_state(lmf_loader *l, const lmf_loader_state *st) {
    if (st->shuffle != 0 && st->shuffle != 1)
        return lmf_fail(LMF_ERR_FORMAT, "data loader state: shuffle must be 0 or 1, got %d",
                        st->shuffle);
    if (st->n_sources != l->n_src)
        return lmf_fail(LMF_ERR_FORMAT,
                        "data loader state: it has %d data sources, the data given has %d; resume "
                        "with the same --data", st->n_sources, l->n_src);
    for (int i = 0; i < l->n_src; i++)
        if (st->src[i].position >= l->src[i].n_rows)
            return lmf_fail(LMF_ERR_FORMAT,
                            "data loader state: position %llu is past the %llu rows of %d tokens "
                            "of source %s; resume with the same data and --seq",
                            (unsigned long long)st->src[i].position,
                            (unsigned long long)l->src[i].n_rows, l->T,
                            lmf_dataset_source_name(l->d, i));
    l->st = *st;
    l->u = weyl_start(st->seed);
    return LMF_OK;
}

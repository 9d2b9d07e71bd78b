/* Batch loader over one token file: overlapping rows, file order or a keyed Feistel
 * permutation per epoch, micro-batches for data parallelism, resumable state. */
#include "lmforge/data.h"

#include <stdlib.h>

#define FEISTEL_ROUNDS 6

struct lmf_loader {
    lmf_tokens *s;
    int B, T;
    uint64_t n_rows;
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

static void perm_init(perm *p, uint64_t n, uint64_t seed, uint64_t epoch) {
    int bits = 0;
    while (bits < 64 && (n - 1) >> bits) bits++; /* bits needed for n - 1 */
    p->n = n;
    p->h = bits < 2 ? 1 : (bits + 1) / 2;
    p->mask = p->h >= 64 ? ~0ull : (1ull << p->h) - 1;
    uint64_t base = mix64(seed ^ 0x6c6d66726f6f7473ull) ^ mix64(epoch + 0x9e3779b97f4a7c15ull);
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

lmf_status lmf_loader_create(lmf_tokens *s, int B, int T, int shuffle, uint64_t seed,
                             lmf_loader **out) {
    *out = NULL;
    if (B < 1 || T < 1)
        return lmf_fail(LMF_ERR_ARG, "batch size and sequence length must be positive (got %d x %d)",
                        B, T);
    uint64_t n = lmf_tokens_num_tokens(s);
    uint64_t need = (uint64_t)B * (uint64_t)T + 1;
    if (n < need)
        return lmf_fail(LMF_ERR_ARG,
                        "token file %s has %llu tokens; a batch of %d x %d needs at least "
                        "B*T+1 = %llu; use a smaller --batch/--seq or more data",
                        lmf_tokens_path(s), (unsigned long long)n, B, T,
                        (unsigned long long)need);
    lmf_loader *l = calloc(1, sizeof *l);
    if (!l) return lmf_fail(LMF_ERR_NOMEM, "out of memory creating the data loader");
    l->s = s;
    l->B = B;
    l->T = T;
    l->n_rows = (n - 1) / (uint64_t)T;
    l->st.seed = seed;
    l->st.shuffle = shuffle ? 1 : 0;
    *out = l;
    return LMF_OK;
}

void lmf_loader_free(lmf_loader *l) { free(l); }

/* rows [k*T, k*T + T] -> inputs[T], targets[T] */
static void read_row(const lmf_loader *l, uint64_t k, int32_t *inputs, int32_t *targets) {
    uint64_t start = k * (uint64_t)l->T;
    lmf_tokens_read(l->s, start, (size_t)l->T, inputs);
    lmf_tokens_read(l->s, start + 1, (size_t)l->T, targets);
}

void lmf_loader_fill(lmf_loader *l, uint64_t index, int32_t *inputs, int32_t *targets) {
    const uint64_t B = (uint64_t)l->B, T = (uint64_t)l->T;
    perm p = {0};
    uint64_t p_epoch = 0;
    int have_perm = 0;
    for (uint64_t b = 0; b < B; b++) {
        /* slot j of the row stream; a batch running past n_rows continues in the next epoch
         * (only when the state or the global batch size does not fit the token file) */
        uint64_t j = l->st.position + index * B + b;
        uint64_t epoch = l->st.epoch + j / l->n_rows, r = j % l->n_rows;
        uint64_t k = r;
        if (l->st.shuffle) {
            if (!have_perm || p_epoch != epoch) {
                perm_init(&p, l->n_rows, l->st.seed, epoch);
                p_epoch = epoch;
                have_perm = 1;
            }
            k = perm_apply(&p, r);
        }
        read_row(l, k, inputs + b * T, targets + b * T);
    }
}

void lmf_loader_advance(lmf_loader *l, uint64_t n) {
    uint64_t rows = n * (uint64_t)l->B;
    l->st.position += rows;
    if (l->st.position >= l->n_rows || rows > l->n_rows - l->st.position) {
        l->st.epoch++;
        l->st.position = 0;
    }
}

void lmf_loader_fill_eval(lmf_loader *l, uint64_t k, int32_t *inputs, int32_t *targets) {
    const uint64_t B = (uint64_t)l->B, T = (uint64_t)l->T;
    LMF_ASSERT(k < l->n_rows / B);
    for (uint64_t b = 0; b < B; b++) read_row(l, k * B + b, inputs + b * T, targets + b * T);
}

uint64_t lmf_loader_num_windows(const lmf_loader *l) { return l->n_rows; }

void lmf_loader_get_state(const lmf_loader *l, lmf_loader_state *st) { *st = l->st; }

lmf_status lmf_loader_set_state(lmf_loader *l, const lmf_loader_state *st) {
    if (st->shuffle != 0 && st->shuffle != 1)
        return lmf_fail(LMF_ERR_FORMAT, "data loader state: shuffle must be 0 or 1, got %d",
                        st->shuffle);
    if (st->position >= l->n_rows)
        return lmf_fail(LMF_ERR_FORMAT,
                        "data loader state: position %llu is past the %llu rows of %d tokens in "
                        "the token file; resume with the same data and --seq",
                        (unsigned long long)st->position, (unsigned long long)l->n_rows, l->T);
    l->st = *st;
    return LMF_OK;
}

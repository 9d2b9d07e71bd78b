/* Counting the pre-tokens (words) of a training corpus. */
/* A bytes -> count hash map, filled on several threads and merged, its words sorted for a
 * deterministic order. */
#ifndef LMF_TOK_TRAIN_COUNT_H
#define LMF_TOK_TRAIN_COUNT_H

#include <stddef.h>
#include <stdint.h>

#include "lmforge/status.h"
#include "lmforge/tokenizer.h"

typedef struct lmf_wordmap {
    uint32_t *slots;        /* [mask + 1] entry index, UINT32_MAX when empty */
    uint64_t mask;
    uint64_t *hash;         /* [cap] per entry */
    uint64_t *count;        /* [cap] occurrences */
    uint64_t *off;          /* [cap] offset of the word in arena */
    uint32_t *len;          /* [cap] word length */
    size_t n, cap;
    char *arena;
    size_t arena_len, arena_cap;
} lmf_wordmap;

void lmf_wordmap_free(lmf_wordmap *m);

/* Pre-tokenise the buffers bufs[i][0..lens[i]) (each on its own) with pattern p on `threads` threads
 * (0 = all) and count every distinct pre-token into *out, whose words are then sorted by
 * their bytes. *total gets the number of pre-tokens. */
lmf_status lmf_tok_count_words(const char *const *bufs, const size_t *lens, size_t n_bufs,
                               lmf_tok_pattern p, int threads, lmf_wordmap *out, uint64_t *total);

#endif

/* Partitions of a flat vector over ranks: contiguous, balanced ranges, and their overlaps. */
#ifndef LMFORGE_PARTITION_H
#define LMFORGE_PARTITION_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A range [begin, end) of a flat vector; empty when begin >= end. */
typedef struct lmf_range {
    size_t begin, end;
} lmf_range;

static inline size_t lmf_range_len(lmf_range r) { return r.end > r.begin ? r.end - r.begin : 0; }
/* the common part of a and b (an empty range with begin == end when they do not meet) */
lmf_range lmf_range_intersect(lmf_range a, lmf_range b);

/* A vector of n elements is partitioned over W ranks into contiguous, balanced ranges: rank r
 * owns [floor(n*r/W), floor(n*(r+1)/W)). Any n and W >= 1 work; a part may be empty (n < W).
 * ZeRO's sharded optimizer state, gradients and weights, and the per-rank files of a
 * checkpoint, all follow this partition. */
lmf_range lmf_partition_range(size_t n, int world, int rank);
/* counts[world]: how many elements of r lie in each rank's part of n (they sum to len(r) when
 * r lies inside [0, n)); the pieces follow each other rank by rank. */
void lmf_partition_counts(size_t n, int world, lmf_range r, size_t *counts);

#ifdef __cplusplus
}
#endif
#endif

/* Balanced contiguous partitions of a flat vector over ranks, and their overlaps with ranges. */
#include "lmforge/partition.h"

#include "lmforge/status.h"

/* floor(n * r / W) without overflow: n = q*W + m, so n*r/W = q*r + m*r/W with m*r < W*W. */
static size_t part_start(size_t n, int world, int r) {
    size_t w = (size_t)world, q = n / w, m = n % w;
    return q * (size_t)r + (m * (size_t)r) / w;
}

lmf_range lmf_partition_range(size_t n, int world, int rank) {
    LMF_ASSERT(world >= 1 && rank >= 0 && rank < world);
    lmf_range s = {part_start(n, world, rank), part_start(n, world, rank + 1)};
    return s;
}

lmf_range lmf_range_intersect(lmf_range a, lmf_range b) {
    lmf_range r = {a.begin > b.begin ? a.begin : b.begin, a.end < b.end ? a.end : b.end};
    if (r.end < r.begin) r.end = r.begin;
    return r;
}

void lmf_partition_counts(size_t n, int world, lmf_range r, size_t *counts) {
    for (int i = 0; i < world; i++)
        counts[i] = lmf_range_len(lmf_range_intersect(r, lmf_partition_range(n, world, i)));
}

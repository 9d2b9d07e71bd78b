/* Deterministic random numbers (xoshiro256**, seeded by splitmix64): init, shuffling, sampling. */
#ifndef LMFORGE_RNG_H
#define LMFORGE_RNG_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lmf_rng {
    uint64_t s[4];
} lmf_rng;

void lmf_rng_seed(lmf_rng *r, uint64_t seed);
uint64_t lmf_rng_u64(lmf_rng *r);
/* uniform in [0, 1) with 24 random bits */
float lmf_rng_uniform(lmf_rng *r);
/* standard normal (Box-Muller, one value per call) */
float lmf_rng_normal(lmf_rng *r);
/* mixes two values into one seed (for per-epoch or per-tensor streams) */
uint64_t lmf_rng_mix(uint64_t a, uint64_t b);

#ifdef __cplusplus
}
#endif
#endif

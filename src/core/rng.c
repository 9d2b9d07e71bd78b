/* xoshiro256** generator seeded through splitmix64 (Blackman and Vigna, 2018). */
#include "lmforge/rng.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

void lmf_rng_seed(lmf_rng *r, uint64_t seed) {
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t lmf_rng_u64(lmf_rng *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

float lmf_rng_uniform(lmf_rng *r) { return (float)(lmf_rng_u64(r) >> 40) / 16777216.0f; }

float lmf_rng_normal(lmf_rng *r) {
    /* u1 in (0, 1] so log is finite */
    double u1 = ((double)(lmf_rng_u64(r) >> 11) + 1.0) / 9007199254740992.0;
    double u2 = (double)(lmf_rng_u64(r) >> 11) / 9007199254740992.0;
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

uint64_t lmf_rng_mix(uint64_t a, uint64_t b) {
    uint64_t x = a ^ (b * 0xD6E8FEB86659FD93ULL);
    return splitmix64(&x);
}

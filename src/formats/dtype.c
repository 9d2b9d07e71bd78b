/* safetensors dtypes (names, sizes) and fp16 / bf16 <-> fp32 conversion. */
#include "lmforge/safetensors.h"

#include <string.h>

static const struct {
    const char *name;
    size_t size;
} dtypes[] = {
    [LMF_F32] = {"F32", 4}, [LMF_F16] = {"F16", 2}, [LMF_BF16] = {"BF16", 2},
    [LMF_I32] = {"I32", 4}, [LMF_I64] = {"I64", 8}, [LMF_U8] = {"U8", 1},
    [LMF_U16] = {"U16", 2}, [LMF_U32] = {"U32", 4}, [LMF_F64] = {"F64", 8},
    [LMF_I8] = {"I8", 1},   [LMF_U64] = {"U64", 8}, [LMF_I16] = {"I16", 2},
    [LMF_BOOL] = {"BOOL", 1},
};
#define N_DTYPES ((int)(sizeof dtypes / sizeof dtypes[0]))

size_t lmf_dtype_size(lmf_dtype d) {
    LMF_ASSERT((int)d >= 0 && (int)d < N_DTYPES);
    return dtypes[d].size;
}

const char *lmf_dtype_name(lmf_dtype d) {
    LMF_ASSERT((int)d >= 0 && (int)d < N_DTYPES);
    return dtypes[d].name;
}

int lmf_dtype_parse(const char *name, lmf_dtype *out) {
    for (int i = 0; i < N_DTYPES; i++) {
        if (strcmp(dtypes[i].name, name) == 0) {
            *out = (lmf_dtype)i;
            return 0;
        }
    }
    return -1;
}

static float bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

/* binary16: 1 sign, 5 exponent (bias 15), 10 mantissa bits */
float lmf_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    if (exp == 0x1f) return bits_f32(sign | 0x7f800000u | man << 13); /* inf, nan */
    if (exp == 0) {
        /* zero or subnormal: man * 2^-24, exact in fp32 */
        float v = (float)man * (1.0f / 16777216.0f);
        return sign ? -v : v;
    }
    return bits_f32(sign | (exp + 112) << 23 | man << 13); /* 112 = 127 - 15 */
}

float lmf_bf16_to_f32(uint16_t h) { return bits_f32((uint32_t)h << 16); }

uint16_t lmf_f32_to_bf16(float f) {
    uint32_t u = f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* quiet nan */
    u += 0x7fffu + ((u >> 16) & 1); /* round to nearest even (overflow becomes inf) */
    return (uint16_t)(u >> 16);
}

uint16_t lmf_f32_to_f16(float f) {
    uint32_t u = f32_bits(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000);
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return (uint16_t)(sign | 0x7e00 | ((a >> 13) & 0x3ff)); /* nan */
    if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00); /* >= 65520 rounds to inf */
    if (a < 0x38800000u) {
        /* below the smallest normal 2^-14: subnormal result man * 2^-24, rounded */
        if (a < 0x33000000u) return sign; /* < 2^-25: rounds to zero (2^-25 ties to even 0) */
        uint32_t e = a >> 23, m = (a & 0x7fffff) | 0x800000; /* value = m * 2^(e - 150) */
        int shift = (int)(126 - e); /* result = m >> (126 - e + ... ) : see below */
        /* man16 = value * 2^24 = m * 2^(e - 126); shift right by 126 - e (14..24) */
        uint32_t q = m >> shift, rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (q & 1))) q++;
        return (uint16_t)(sign | q);
    }
    /* normal: rebias the exponent, round the 13 dropped bits to nearest even */
    uint32_t r = a - 0x38000000u; /* exponent - 112 */
    r += 0xfffu + ((r >> 13) & 1);
    return (uint16_t)(sign | (r >> 13));
}

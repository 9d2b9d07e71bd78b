/* GPT-2's byte-level alphabet: the printable character that spells each byte value. */
/* Used by the vocabulary files (encoder.json, vocab.bpe, tokenizer.json). */
#include "tokenizer/tok_internal.h"

/* Bytes that are printable in Latin-1 ('!'..'~', U+00A1..U+00AC, U+00AE..U+00FF) stand for
 * themselves; the other 68 bytes, in increasing order, take U+0100, U+0101, ... */
static uint32_t byte_to_cp(uint8_t b) {
    if (b <= 0x20) return 256u + b;                     /* 33 bytes: U+0100..U+0120 */
    if (b <= 0x7E) return b;
    if (b <= 0xA0) return 256u + 33u + (b - 0x7Fu);     /* 34 bytes: U+0121..U+0142 */
    if (b == 0xAD) return 256u + 67u;                   /* U+0143 */
    return b;
}

/* byte for a code point of the alphabet, -1 for any other code point */
static int cp_to_byte(uint32_t cp) {
    if (cp >= 256u && cp <= 288u) return (int)(cp - 256u);
    if (cp >= 289u && cp <= 322u) return (int)(cp - 289u + 0x7Fu);
    if (cp == 323u) return 0xAD;
    if ((cp >= 0x21 && cp <= 0x7E) || (cp >= 0xA1 && cp <= 0xAC) || (cp >= 0xAE && cp <= 0xFF))
        return (int)cp;
    return -1;
}

size_t lmf_tok_bytes_to_unicode(const char *b, size_t n, char *out) {
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t cp = byte_to_cp((uint8_t)b[i]);
        if (cp < 0x80) {
            out[o++] = (char)cp;
        } else {
            out[o++] = (char)(0xC0 | (cp >> 6));
            out[o++] = (char)(0x80 | (cp & 0x3F));
        }
    }
    out[o] = '\0';
    return o;
}

long lmf_tok_unicode_to_bytes(const char *s, size_t n, char *out) {
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        uint8_t c = (uint8_t)s[i];
        uint32_t cp;
        if (c < 0x80) {
            cp = c;
            i++;
        } else if ((c & 0xE0) == 0xC0 && i + 1 < n && ((uint8_t)s[i + 1] & 0xC0) == 0x80) {
            cp = (uint32_t)(c & 0x1F) << 6 | ((uint8_t)s[i + 1] & 0x3F);
            if (cp < 0x80) return -1; /* overlong */
            i += 2;
        } else {
            return -1; /* 3- and 4-byte characters are never in the alphabet */
        }
        int b = cp_to_byte(cp);
        if (b < 0) return -1;
        out[o++] = (char)b;
    }
    return (long)o;
}

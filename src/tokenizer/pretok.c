/* The pre-tokenisations (GPT-2's and cl100k's patterns) as hand-written scanners over utf8proc's classes. */
/* Each scanner is equivalent to its regular expression; classes come from utf8proc's Unicode
 * tables (a 64K lookup table for the BMP). */
#include "tokenizer/pretok.h"

#include <pthread.h>
#include <utf8proc.h>

static uint8_t g_bmp[65536];
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

/* \p{L} = Lu Ll Lt Lm Lo, \p{N} = Nd Nl No. \s is Unicode White_Space: the separators
 * (Zs, Zl, Zp) plus the controls TAB, LF, VT, FF, CR and NEL, which Unicode's PropList gives
 * White_Space although their category is Cc. */
static int class_slow(uint32_t cp) {
    if (cp > 0x10FFFF) return LMF_CC_OTHER;
    if ((cp >= 0x09 && cp <= 0x0D) || cp == 0x85) return LMF_CC_SPACE;
    switch (utf8proc_category((utf8proc_int32_t)cp)) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO:
        return LMF_CC_LETTER;
    case UTF8PROC_CATEGORY_ND: case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_NO:
        return LMF_CC_NUMBER;
    case UTF8PROC_CATEGORY_ZS: case UTF8PROC_CATEGORY_ZL: case UTF8PROC_CATEGORY_ZP:
        return LMF_CC_SPACE;
    default:
        return LMF_CC_OTHER;
    }
}

static void build_tables(void) {
    for (uint32_t cp = 0; cp < 65536; cp++) g_bmp[cp] = (uint8_t)class_slow(cp);
}

void lmf_pretok_init(void) { pthread_once(&g_once, build_tables); }

int lmf_pretok_class(uint32_t cp) { return cp < 65536 ? g_bmp[cp] : class_slow(cp); }

/* Class and length of the character at s[i], i < n (strict UTF-8: no overlong forms, no
 * surrogates, nothing above U+10FFFF; anything else is a one-byte OTHER). */
static inline int char_at(const uint8_t *s, size_t n, size_t i, size_t *len) {
    uint8_t b = s[i];
    if (b < 0x80) {
        *len = 1;
        return g_bmp[b];
    }
    if (b >= 0xC2 && b <= 0xDF) {
        if (i + 1 < n && (s[i + 1] & 0xC0) == 0x80) {
            *len = 2;
            return g_bmp[(uint32_t)(b & 0x1F) << 6 | (s[i + 1] & 0x3F)];
        }
    } else if (b >= 0xE0 && b <= 0xEF) {
        if (i + 2 < n) {
            uint8_t b1 = s[i + 1], b2 = s[i + 2];
            uint8_t lo = b == 0xE0 ? 0xA0 : 0x80, hi = b == 0xED ? 0x9F : 0xBF;
            if (b1 >= lo && b1 <= hi && (b2 & 0xC0) == 0x80) {
                *len = 3;
                return g_bmp[(uint32_t)(b & 0x0F) << 12 | (uint32_t)(b1 & 0x3F) << 6 | (b2 & 0x3F)];
            }
        }
    } else if (b >= 0xF0 && b <= 0xF4) {
        if (i + 3 < n) {
            uint8_t b1 = s[i + 1], b2 = s[i + 2], b3 = s[i + 3];
            uint8_t lo = b == 0xF0 ? 0x90 : 0x80, hi = b == 0xF4 ? 0x8F : 0xBF;
            if (b1 >= lo && b1 <= hi && (b2 & 0xC0) == 0x80 && (b3 & 0xC0) == 0x80) {
                *len = 4;
                return class_slow((uint32_t)(b & 0x07) << 18 | (uint32_t)(b1 & 0x3F) << 12 |
                                  (uint32_t)(b2 & 0x3F) << 6 | (b3 & 0x3F));
            }
        }
    }
    *len = 1;
    return LMF_CC_OTHER;
}

int lmf_pretok_char(const uint8_t *s, size_t n, size_t i, size_t *len) { return char_at(s, n, i, len); }

/* end of the run of class-`cls` characters starting at j */
static inline size_t scan_run(const uint8_t *s, size_t n, size_t j, int cls) {
    for (;;) {
        while (j < n && s[j] < 0x80) {
            if (g_bmp[s[j]] != cls) return j;
            j++;
        }
        if (j >= n) return j;
        size_t l;
        if (char_at(s, n, j, &l) != cls) return j;
        j += l;
    }
}

/* The alternatives are tried in the pattern's order at i; each one is greedy, and only the
 * whitespace alternatives can backtrack (by one character, for the look-ahead). */
size_t lmf_pretok_next(const uint8_t *s, size_t n, size_t i) {
    uint8_t b = s[i];
    if (b == '\'' && i + 1 < n) { /* 's 't 're 've 'm 'll 'd (case-sensitive) */
        uint8_t c = s[i + 1];
        if (c == 's' || c == 't' || c == 'm' || c == 'd') return i + 2;
        if (i + 2 < n) {
            uint8_t d = s[i + 2];
            if ((c == 'r' && d == 'e') || (c == 'v' && d == 'e') || (c == 'l' && d == 'l')) return i + 3;
        }
    }
    size_t len;
    int cls = char_at(s, n, i, &len);
    size_t j = i + len;
    if (b == ' ' && j < n) { /* " ?\p{L}+", " ?\p{N}+", " ?[^\s\p{L}\p{N}]+" with the space */
        size_t l2;
        int c2 = char_at(s, n, j, &l2);
        if (c2 != LMF_CC_SPACE) return scan_run(s, n, j + l2, c2);
    }
    if (cls != LMF_CC_SPACE) return scan_run(s, n, j, cls);
    /* \s+(?!\S): the run, less its last character when a non-space follows; \s+ when the run
     * is that one character */
    size_t last = i;
    while (j < n) {
        size_t l;
        if (char_at(s, n, j, &l) != LMF_CC_SPACE) break;
        last = j;
        j += l;
    }
    if (j == n) return n;
    return last > i ? last : j;
}

static inline int is_crlf(uint8_t b) { return b == '\r' || b == '\n'; }

static inline int lower_ascii(uint8_t b) { return b >= 'A' && b <= 'Z' ? b + 32 : b; }

/* Length of the contraction (?i:'s|'t|'re|'ve|'m|'ll|'d) at s[i] (s[i] == '\''), 0 if none. The
 * match is case-insensitive with Unicode's simple case folding, which adds one character: the
 * long s U+017F (bytes C5 BF) folds to s. */
static size_t contraction(const uint8_t *s, size_t n, size_t i) {
    if (i + 1 >= n) return 0;
    int c = lower_ascii(s[i + 1]);
    if (c == 's' || c == 't' || c == 'm' || c == 'd') return 2;
    if (s[i + 1] == 0xC5 && i + 2 < n && s[i + 2] == 0xBF) return 3;
    if (i + 2 >= n) return 0;
    int d = lower_ascii(s[i + 2]);
    if ((c == 'r' && d == 'e') || (c == 'v' && d == 'e') || (c == 'l' && d == 'l')) return 3;
    return 0;
}

/* The alternatives in the pattern's order; as in GPT-2's, each is greedy and only the
 * whitespace alternatives backtrack. */
size_t lmf_pretok_next_cl100k(const uint8_t *s, size_t n, size_t i) {
    uint8_t b = s[i];
    if (b == '\'') {
        size_t k = contraction(s, n, i);
        if (k) return i + k;
    }
    size_t len;
    int cls = char_at(s, n, i, &len);
    size_t j = i + len;
    if (cls == LMF_CC_LETTER) return scan_run(s, n, j, LMF_CC_LETTER);
    if (cls != LMF_CC_NUMBER && !is_crlf(b) && j < n) { /* [^\r\n\p{L}\p{N}]\p{L}+ */
        size_t l2;
        if (char_at(s, n, j, &l2) == LMF_CC_LETTER) return scan_run(s, n, j + l2, LMF_CC_LETTER);
    }
    if (cls == LMF_CC_NUMBER) { /* \p{N}{1,3} */
        for (int k = 1; k < 3 && j < n; k++) {
            size_t l2;
            if (char_at(s, n, j, &l2) != LMF_CC_NUMBER) break;
            j += l2;
        }
        return j;
    }
    if (b == ' ' && j < n) { /* " [^\s\p{L}\p{N}]+[\r\n]*" */
        size_t l2;
        if (char_at(s, n, j, &l2) == LMF_CC_OTHER) cls = LMF_CC_OTHER, j += l2;
    }
    if (cls == LMF_CC_OTHER) { /* [^\s\p{L}\p{N}]+[\r\n]* */
        j = scan_run(s, n, j, LMF_CC_OTHER);
        while (j < n && is_crlf(s[j])) j++;
        return j;
    }
    /* a whitespace run: \s*[\r\n]+ ends after its last CR or LF; else \s+(?!\S) is the run
     * less its last character when a non-space follows; else \s+ */
    size_t last = i, after_crlf = is_crlf(b) ? j : 0;
    while (j < n) {
        size_t l;
        if (char_at(s, n, j, &l) != LMF_CC_SPACE) break;
        last = j;
        j += l;
        if (l == 1 && is_crlf(s[last])) after_crlf = j;
    }
    if (after_crlf) return after_crlf;
    if (j == n) return n;
    return last > i ? last : j;
}

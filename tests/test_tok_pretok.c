/* Tests: GPT-2 pre-tokenisation pieces, Unicode classes, invalid UTF-8. */
/* GPT-2 pre-tokenisation: the scanner's pieces against splits worked out by hand from the
 * pattern (and checked against a regular-expression engine), Unicode classes, invalid UTF-8. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "tokenizer/pretok.h"

/* Split text with the scanner and compare with the expected pieces (NULL-terminated). */
static void check_split(const char *text, size_t len, const char *const *want) {
    const uint8_t *s = (const uint8_t *)text;
    size_t pos = 0, k = 0;
    while (pos < len) {
        size_t end = lmf_pretok_next(s, len, pos);
        assert_true(end > pos && end <= len);
        if (!want[k]) fail_msg("'%s': more pieces than expected (extra at %zu)", text, pos);
        size_t wl = strlen(want[k]);
        if (end - pos != wl || memcmp(s + pos, want[k], wl) != 0)
            fail_msg("'%s': piece %zu is '%.*s', expected '%s'", text, k, (int)(end - pos),
                     text + pos, want[k]);
        pos = end;
        k++;
    }
    if (want[k]) fail_msg("'%s': fewer pieces than expected (missing '%s')", text, want[k]);
}

#define SPLIT(text, ...) do { \
        static const char *const w_[] = {__VA_ARGS__, NULL}; \
        check_split(text, sizeof(text) - 1, w_); \
    } while (0)

static void test_ascii(void **state) {
    (void)state;
    SPLIT("Hello world", "Hello", " world");
    SPLIT("abc123def", "abc", "123", "def");
    SPLIT("12,345.67", "12", ",", "345", ".", "67");
    SPLIT(" 42 ", " 42", " ");
    SPLIT(" !!  ?", " !!", " ", " ?");
    SPLIT("a", "a");
    SPLIT("<|endoftext|>", "<|", "endoftext", "|>");
}

static void test_contractions(void **state) {
    (void)state;
    SPLIT("I'm", "I", "'m");
    SPLIT("DON'T", "DON", "'", "T");
    SPLIT("''s", "''", "s");
    SPLIT("'sup", "'s", "up");
    SPLIT("'S", "'", "S");
    SPLIT("  'll", " ", " '", "ll");
    SPLIT("don't stop'em", "don", "'t", " stop", "'", "em");
    SPLIT("we've they're you'd", "we", "'ve", " they", "'re", " you", "'d");
    SPLIT("'", "'");
    SPLIT("'l", "'", "l");
}

static void test_whitespace(void **state) {
    (void)state;
    SPLIT("hello   \n  world", "hello", "   \n ", " world");
    SPLIT("x\t\ty", "x", "\t", "\t", "y");
    SPLIT("x  ", "x", "  ");
    SPLIT("  x", " ", " x");
    SPLIT("a\r\n\r\nb", "a", "\r\n\r", "\n", "b");
    SPLIT(" \n x", " \n", " x");
    SPLIT("\n", "\n");
    SPLIT("   ", "   ");
    SPLIT("x\n\n\n\ny", "x", "\n\n\n", "\n", "y");
}

static void test_unicode(void **state) {
    (void)state;
    SPLIT("a\xc2\xa0" "b", "a", "\xc2\xa0", "b");                        /* NBSP is \s */
    SPLIT("\xe3\x80\x80\xe3\x80\x80x", "\xe3\x80\x80", "\xe3\x80\x80", "x"); /* U+3000 */
    SPLIT("x\xe2\x80\xa8y", "x", "\xe2\x80\xa8", "y");                   /* U+2028 */
    SPLIT("\xd9\xa3\xd9\xa4 x", "\xd9\xa3\xd9\xa4", " x");               /* Arabic-Indic digits: \p{N} */
    SPLIT("e\xcc\x81x", "e", "\xcc\x81", "x");                           /* combining mark: other */
    SPLIT("na\xc3\xafve caf\xc3\xa9", "na\xc3\xafve", " caf\xc3\xa9");   /* letters */
    SPLIT("zero\xe2\x80\x8bwidth", "zero", "\xe2\x80\x8b", "width");     /* U+200B is Cf, not \s */
    SPLIT("\xf0\x9f\x98\x80!", "\xf0\x9f\x98\x80!");                     /* emoji + '!' : one other run */
    SPLIT("x\x1cy", "x", "\x1c", "y");                                   /* U+001C: not White_Space */
    SPLIT("\xe2\x85\xa0\xe2\x85\xa1", "\xe2\x85\xa0\xe2\x85\xa1");       /* Roman numerals: Nl */
}

static void test_invalid_utf8(void **state) {
    (void)state;
    SPLIT("a\xff" "b", "a", "\xff", "b");
    SPLIT(" \xff\xfe!", " \xff\xfe!");
    SPLIT("\xe2\x82" "a", "\xe2\x82", "a");      /* truncated 3-byte sequence: two others */
    SPLIT("\xc0\xaf" "x", "\xc0\xaf", "x");      /* overlong */
    SPLIT("\xed\xa0\x80" "x", "\xed\xa0\x80", "x"); /* encoded surrogate */
    SPLIT("x \x80", "x", " \x80");
    SPLIT("\xc3", "\xc3");                       /* truncated at the end */
    /* each invalid byte is one character: a letter after a lone lead byte still starts a run */
    size_t len;
    assert_int_equal(lmf_pretok_char((const uint8_t *)"\xc3" "a", 2, 0, &len), LMF_CC_OTHER);
    assert_int_equal(len, 1);
    assert_int_equal(lmf_pretok_char((const uint8_t *)"\xc3\xa9", 2, 0, &len), LMF_CC_LETTER);
    assert_int_equal(len, 2);
}

static void test_classes(void **state) {
    (void)state;
    assert_int_equal(lmf_pretok_class('a'), LMF_CC_LETTER);
    assert_int_equal(lmf_pretok_class('7'), LMF_CC_NUMBER);
    assert_int_equal(lmf_pretok_class(' '), LMF_CC_SPACE);
    assert_int_equal(lmf_pretok_class(0x0B), LMF_CC_SPACE);
    assert_int_equal(lmf_pretok_class(0x85), LMF_CC_SPACE);
    assert_int_equal(lmf_pretok_class(0x1F), LMF_CC_OTHER);
    assert_int_equal(lmf_pretok_class(0x01C5), LMF_CC_LETTER);  /* titlecase Dz */
    assert_int_equal(lmf_pretok_class(0x02B0), LMF_CC_LETTER);  /* modifier letter */
    assert_int_equal(lmf_pretok_class(0x00BD), LMF_CC_NUMBER);  /* vulgar fraction: No */
    assert_int_equal(lmf_pretok_class(0x4E2D), LMF_CC_LETTER);  /* CJK */
    assert_int_equal(lmf_pretok_class(0x20000), LMF_CC_LETTER); /* CJK extension B */
    assert_int_equal(lmf_pretok_class(0x1F600), LMF_CC_OTHER);  /* emoji */
    assert_int_equal(lmf_pretok_class(0x110000), LMF_CC_OTHER);
}

int main(void) {
    lmf_pretok_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ascii),       cmocka_unit_test(test_contractions),
        cmocka_unit_test(test_whitespace),  cmocka_unit_test(test_unicode),
        cmocka_unit_test(test_invalid_utf8), cmocka_unit_test(test_classes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

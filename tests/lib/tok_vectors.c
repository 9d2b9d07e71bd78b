/* Tokenizer test vectors checked line by line: ids exact, decoding gives the text back. */
#include "lib/tok_vectors.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>
#include <jansson.h>

int lmf_test_tok_vectors(const lmf_tokenizer *t, const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) fail_msg("cannot open the vectors %s", path);
    static char line[65536], dec[16384];
    static uint32_t ids[4096];
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        json_error_t err;
        json_t *o = json_loads(line, 0, &err);
        assert_non_null(o);
        const json_t *text = json_object_get(o, "text"), *want = json_object_get(o, "ids");
        assert_true(json_is_string(text) && json_is_array(want));
        int allow = json_is_true(json_object_get(o, "special"));
        size_t n_ids;
        assert_int_equal(lmf_tok_encode(t, json_string_value(text), json_string_length(text), allow,
                                        ids, 4096, &n_ids), LMF_OK);
        if (n_ids != json_array_size(want))
            fail_msg("line %d ('%s'): %zu ids, expected %zu", n + 1, json_string_value(text), n_ids,
                     json_array_size(want));
        for (size_t i = 0; i < n_ids; i++)
            if (ids[i] != (uint32_t)json_integer_value(json_array_get(want, i)))
                fail_msg("line %d ('%s'): id %zu is %u, expected %lld", n + 1, json_string_value(text),
                         i, ids[i], (long long)json_integer_value(json_array_get(want, i)));
        size_t n_dec;
        assert_int_equal(lmf_tok_decode(t, ids, n_ids, dec, sizeof dec, &n_dec), LMF_OK);
        assert_int_equal(n_dec, json_string_length(text));
        assert_memory_equal(dec, json_string_value(text), n_dec);
        json_decref(o);
        n++;
    }
    fclose(f);
    return n;
}

/* libFuzzer harness: a token file header is validated in memory; a valid token file is opened
 * from a memory file and read through the batch loader. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "lmforge/data.h"

static void exercise_loader(const char *path, const uint8_t *data, size_t size) {
    int B = 1 + (size > 20 ? data[16] % 4 : 0), T = 1 + (size > 20 ? data[17] % 8 : 0);
    int shuffle = size > 20 ? data[18] & 1 : 0;
    lmf_dataset *d = NULL;
    if (lmf_dataset_open(path, &d) != LMF_OK) {
        if (lmf_tokens_validate_header(data, size, size, "fuzz-input", &(uint64_t){0},
                                       &(int){0}) == LMF_OK && size > LMF_TOKENS_HEADER_BYTES)
            abort(); /* a valid, non-empty token file must open as a dataset */
        return;
    }
    lmf_loader *l = NULL;
    if (lmf_loader_create(d, B, T, shuffle, size, &l) != LMF_OK) {
        lmf_dataset_close(d);
        return;
    }
    int32_t in[32], tg[32];
    for (int step = 0; step < 4; step++) {
        for (uint64_t i = 0; i < 3; i++) {
            if (lmf_loader_fill(l, i, in, tg) != LMF_OK) abort();
            for (int k = 0; k < B * T - 1; k++)
                if (k % T != T - 1 && in[k + 1] != tg[k]) abort(); /* targets are shifted inputs */
        }
        lmf_loader_advance(l, 3);
    }
    if (lmf_loader_fill_eval(l, 0, in, tg) != LMF_OK) abort();
    lmf_loader_state st;
    lmf_loader_get_state(l, &st);
    if (lmf_loader_set_state(l, &st) != LMF_OK) abort();
    lmf_loader_free(l);
    lmf_dataset_close(d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    uint64_t n = 0;
    int tb = 0;
    if (lmf_tokens_validate_header(data, size, size, "fuzz-input", &n, &tb) != LMF_OK) return 0;
    if ((uint64_t)size != LMF_TOKENS_HEADER_BYTES + n * (uint64_t)tb) abort();
    int fd = memfd_create("tokens", 0);
    if (fd < 0) return 0;
    if (write(fd, data, size) == (ssize_t)size) {
        char path[64];
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        lmf_tokens *s = NULL;
        if (lmf_tokens_open(path, &s) != LMF_OK) abort(); /* validated bytes must open */
        if (lmf_tokens_num_tokens(s) != n || lmf_tokens_token_bytes(s) != tb) abort();
        lmf_tokens_max_token(s);
        exercise_loader(path, data, size);
        lmf_tokens_close(s);
    }
    close(fd);
    return 0;
}

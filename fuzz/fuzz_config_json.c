/* libFuzzer harness: a config.json (held in a memory file) is loaded; a loaded config saves. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "lmforge/config.h"
#include "lmforge/formats.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    int fd = memfd_create("config", 0);
    if (fd < 0) return 0;
    if (write(fd, data, size) == (ssize_t)size) {
        char path[64];
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        lmf_gpt_config c;
        if (lmf_config_read(path, &c) == LMF_OK && lmf_config_validate(&c) != LMF_OK)
            abort(); /* a loaded config is always valid */
    }
    close(fd);
    return 0;
}

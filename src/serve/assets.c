/* The dashboard's files (web/), embedded into the library at build time. */
#include "serve/serve_internal.h"

#include <string.h>

/* serve_assets.inc, made by scripts/embed_assets.cmake: static const serve_asset assets[] */
#include "serve_assets.inc"

const serve_asset *serve_asset_find(const char *name) {
    for (size_t i = 0; i < sizeof assets / sizeof assets[0]; i++)
        if (strcmp(assets[i].name, name) == 0) return &assets[i];
    return NULL;
}

/* Data specs: a file, a directory, a glob, a comma list, weighted items or a mixture JSON file,
 * expanded to sources of token-file paths; a backslash makes the next character literal. */
#include "data/spec.h"

#include <dirent.h>
#include <errno.h>
#include <glob.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "lmforge/data.h"
#include "lmforge/fsutil.h"

typedef struct strv {
    char **v;
    int n, cap;
} strv;

static lmf_status strv_add(strv *s, const char *p) {
    if (s->n == s->cap) {
        int cap = s->cap ? 2 * s->cap : 16;
        char **v = realloc(s->v, (size_t)cap * sizeof *v);
        if (!v) return lmf_fail(LMF_ERR_NOMEM, "out of memory listing token files");
        s->v = v;
        s->cap = cap;
    }
    if ((s->v[s->n] = strdup(p)) == NULL)
        return lmf_fail(LMF_ERR_NOMEM, "out of memory listing token files");
    s->n++;
    return LMF_OK;
}

static void strv_free(strv *s) {
    for (int i = 0; i < s->n; i++) free(s->v[i]);
    free(s->v);
    memset(s, 0, sizeof *s);
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcmp(s + a - b, suf) == 0;
}

/* the *.bin regular files of a directory, sorted */
static lmf_status add_dir(strv *out, const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return lmf_fail(LMF_ERR_IO, "cannot read directory %s: %s", dir, strerror(errno));
    strv found = {0};
    lmf_status s = LMF_OK;
    struct dirent *e;
    char p[4096];
    while (s == LMF_OK && (e = readdir(d)) != NULL) {
        struct stat st;
        if (e->d_name[0] == '.' || !ends_with(e->d_name, ".bin")) continue;
        s = lmf_path_join(p, sizeof p, dir, e->d_name);
        if (s == LMF_OK && stat(p, &st) == 0 && S_ISREG(st.st_mode)) s = strv_add(&found, p);
    }
    closedir(d);
    if (s == LMF_OK && found.n == 0)
        s = lmf_fail(LMF_ERR_ARG, "directory %s holds no token files (*.bin)", dir);
    if (s == LMF_OK) qsort(found.v, (size_t)found.n, sizeof(char *), cmp_str);
    for (int i = 0; s == LMF_OK && i < found.n; i++) s = strv_add(out, found.v[i]);
    strv_free(&found);
    return s;
}

/* Split s at the commas not escaped by a backslash into items that keep their escapes. Fails
 * for a backslash at the end. */
static lmf_status split_items(const char *s, strv *items) {
    size_t n = strlen(s);
    char *buf = malloc(n + 1);
    if (!buf) return lmf_fail(LMF_ERR_NOMEM, "out of memory parsing the data spec");
    lmf_status st = LMF_OK;
    size_t k = 0;
    for (size_t i = 0; st == LMF_OK; i++) {
        if (s[i] == '\\' && s[i + 1] == '\0') {
            st = lmf_fail(LMF_ERR_ARG, "data spec '%s' ends with a lone backslash; a backslash "
                          "makes the next character literal (write \\\\ for a backslash)", s);
        } else if (s[i] == '\\') {
            buf[k++] = s[i++];
            buf[k++] = s[i];
        } else if (s[i] == ',' || s[i] == '\0') {
            buf[k] = '\0';
            st = strv_add(items, buf);
            k = 0;
            if (s[i] == '\0') break;
        } else {
            buf[k++] = s[i];
        }
    }
    free(buf);
    return st;
}

/* s with its escapes removed, written into out[strlen(s) + 1]: every "\c" becomes c, except,
 * when keep_glob is set, a backslash before a glob character or a backslash, which glob(3)
 * itself reads as an escape */
static void unescape(const char *s, char *out, int keep_glob) {
    for (; *s; s++) {
        if (*s == '\\' && s[1]) {
            if (keep_glob && strchr("*?[]\\", s[1])) *out++ = *s;
            s++;
        }
        *out++ = *s;
    }
    *out = '\0';
}

/* 1 when s (with escapes) holds a glob character that is not escaped */
static int has_glob(const char *s) {
    for (; *s; s++) {
        if (*s == '\\' && s[1]) s++;
        else if (strchr("*?[", *s)) return 1;
    }
    return 0;
}

/* one item (escapes still in): a glob, a directory or a file; base (may be NULL) prefixes a
 * relative item */
static lmf_status add_item(strv *out, const char *raw, const char *base) {
    char p[4096], item[4096];
    if (!*raw) return lmf_fail(LMF_ERR_ARG, "an empty item in the data spec (two commas, or a "
                               "comma at an end?)");
    if (strlen(raw) >= sizeof item) return lmf_fail(LMF_ERR_ARG, "a data spec item is too long");
    int glob_item = has_glob(raw);
    unescape(raw, item, glob_item);
    LMF_TRY(lmf_path_join(p, sizeof p, base ? base : "", item));
    if (glob_item) {
        glob_t g;
        int r = glob(p, 0, NULL, &g);
        if (r == GLOB_NOMATCH || (r == 0 && g.gl_pathc == 0)) {
            if (r == 0) globfree(&g);
            return lmf_fail(LMF_ERR_ARG, "'%s' matches no files", p);
        }
        if (r != 0) return lmf_fail(LMF_ERR_IO, "cannot expand '%s'", p);
        lmf_status s = LMF_OK;
        for (size_t i = 0; s == LMF_OK && i < g.gl_pathc; i++) {
            struct stat st;
            if (stat(g.gl_pathv[i], &st) == 0 && S_ISDIR(st.st_mode)) continue;
            s = strv_add(out, g.gl_pathv[i]); /* glob sorts */
        }
        globfree(&g);
        return s;
    }
    struct stat st;
    if (stat(p, &st) == 0 && S_ISDIR(st.st_mode)) return add_dir(out, p);
    return strv_add(out, p); /* checked when the dataset opens it */
}

/* comma-separated items into one list of paths */
static lmf_status add_list(strv *out, const char *list, const char *base) {
    strv items = {0};
    lmf_status s = split_items(list, &items);
    for (int i = 0; s == LMF_OK && i < items.n; i++) s = add_item(out, items.v[i], base);
    strv_free(&items);
    return s;
}

/* "W:REST" with W a number (the first colon, which an escaped one is not): *w and *rest set, 1;
 * else 0 */
static int split_weight(const char *item, double *w, const char **rest) {
    const char *c = item;
    while (*c && *c != ':') c += *c == '\\' && c[1] ? 2 : 1;
    if (!*c || c == item) return 0;
    char num[64];
    size_t n = (size_t)(c - item);
    if (n >= sizeof num) return 0;
    memcpy(num, item, n);
    num[n] = '\0';
    char *end;
    errno = 0;
    double v = strtod(num, &end);
    if (*end || errno) return 0;
    *w = v;
    *rest = c + 1;
    return 1;
}

static lmf_status add_source(lmf_spec *sp, const char *name, double w, strv *paths) {
    if (sp->n_src == LMF_DATA_MAX_SOURCES)
        return lmf_fail(LMF_ERR_ARG, "a data mixture may have at most %d sources",
                        LMF_DATA_MAX_SOURCES);
    if (!(w > 0) || !isfinite(w))
        return lmf_fail(LMF_ERR_ARG, "source '%s' has weight %g; weights must be positive numbers",
                        name, w);
    lmf_spec_source *v = realloc(sp->src, (size_t)(sp->n_src + 1) * sizeof *v);
    if (!v) return lmf_fail(LMF_ERR_NOMEM, "out of memory parsing the data spec");
    sp->src = v;
    lmf_spec_source *s = &v[sp->n_src];
    if ((s->name = strdup(name)) == NULL)
        return lmf_fail(LMF_ERR_NOMEM, "out of memory parsing the data spec");
    s->weight = w;
    s->paths = paths->v;
    s->n_paths = paths->n;
    memset(paths, 0, sizeof *paths);
    sp->n_src++;
    return LMF_OK;
}

/* {"sources": [{"name": N, "weight": W, "data": ITEMS}, ...]} */
static lmf_status parse_json(lmf_spec *sp, const char *path) {
    json_error_t e;
    json_t *j = json_load_file(path, JSON_REJECT_DUPLICATES, &e);
    if (!j)
        return lmf_fail(LMF_ERR_ARG, "%s: not valid JSON: %s (line %d)", path, e.text, e.line);
    char base[4096];
    snprintf(base, sizeof base, "%s", path);
    char *slash = strrchr(base, '/');
    if (slash) slash[1] = '\0';
    else base[0] = '\0';
    json_t *arr = json_object_get(j, "sources");
    lmf_status s = LMF_OK;
    if (!json_is_array(arr) || json_array_size(arr) == 0)
        s = lmf_fail(LMF_ERR_ARG, "%s: expected {\"sources\": [{\"name\": ..., \"weight\": ..., "
                     "\"data\": ...}, ...]}", path);
    for (size_t i = 0; s == LMF_OK && i < json_array_size(arr); i++) {
        json_t *o = json_array_get(arr, i);
        const char *data = json_string_value(json_object_get(o, "data"));
        const char *name = json_string_value(json_object_get(o, "name"));
        json_t *w = json_object_get(o, "weight");
        if (!data || !json_is_number(w)) {
            s = lmf_fail(LMF_ERR_ARG, "%s: source %zu needs \"data\" (a string) and \"weight\" (a "
                         "number)", path, i);
            break;
        }
        strv paths = {0};
        s = add_list(&paths, data, base);
        if (s == LMF_OK) s = add_source(sp, name ? name : data, json_number_value(w), &paths);
        strv_free(&paths);
    }
    json_decref(j);
    return s;
}

static lmf_status parse(lmf_spec *sp, const char *spec) {
    struct stat st;
    if (ends_with(spec, ".json") && stat(spec, &st) == 0 && S_ISREG(st.st_mode))
        return parse_json(sp, spec);
    /* weighted items: every item is W:ITEM */
    strv items = {0};
    lmf_status s = split_items(spec, &items);
    int weighted = 0, plain = 0;
    for (int i = 0; s == LMF_OK && i < items.n; i++) {
        double w;
        const char *rest;
        if (split_weight(items.v[i], &w, &rest)) weighted++;
        else plain++;
    }
    if (weighted && plain)
        s = lmf_fail(LMF_ERR_ARG, "data spec '%s' mixes weighted (W:FILES) and unweighted items; "
                     "give every item a weight, or none", spec);
    if (s == LMF_OK && !weighted) {
        strv paths = {0};
        s = add_list(&paths, spec, NULL);
        if (s == LMF_OK) s = add_source(sp, spec, 1.0, &paths);
        strv_free(&paths);
    } else if (s == LMF_OK) {
        for (int i = 0; s == LMF_OK && i < items.n; i++) {
            double w = 0;
            const char *rest = items.v[i];
            split_weight(items.v[i], &w, &rest);
            strv paths = {0};
            s = add_item(&paths, rest, NULL);
            char *name = strdup(rest);
            if (s == LMF_OK && !name) s = lmf_fail(LMF_ERR_NOMEM, "out of memory parsing the data spec");
            if (s == LMF_OK) unescape(rest, name, 0);
            if (s == LMF_OK) s = add_source(sp, name, w, &paths);
            free(name);
            strv_free(&paths);
        }
    }
    strv_free(&items);
    return s;
}

lmf_status lmf_spec_parse(const char *spec, lmf_spec *out) {
    memset(out, 0, sizeof *out);
    if (!spec || !*spec) return lmf_fail(LMF_ERR_ARG, "empty data spec");
    lmf_status s = parse(out, spec);
    if (s != LMF_OK) lmf_spec_free(out);
    return s;
}

void lmf_spec_free(lmf_spec *s) {
    for (int i = 0; i < s->n_src; i++) {
        for (int k = 0; k < s->src[i].n_paths; k++) free(s->src[i].paths[k]);
        free(s->src[i].paths);
        free(s->src[i].name);
    }
    free(s->src);
    memset(s, 0, sizeof *s);
}

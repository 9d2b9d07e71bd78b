/* Data specs: a file, a directory, a glob, a comma list, weighted items or a mixture JSON file,
 * expanded to sources of token-file paths. */
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

/* one item: a glob, a directory or a file; base (may be NULL) prefixes a relative item */
static lmf_status add_item(strv *out, const char *item, const char *base) {
    char p[4096];
    if (!*item) return lmf_fail(LMF_ERR_ARG, "an empty item in the data spec (two commas, or a "
                                "comma at an end?)");
    LMF_TRY(lmf_path_join(p, sizeof p, base ? base : "", item));
    if (strpbrk(item, "*?[")) {
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
    char *copy = strdup(list);
    if (!copy) return lmf_fail(LMF_ERR_NOMEM, "out of memory parsing the data spec");
    lmf_status s = LMF_OK;
    char *p = copy;
    for (;;) {
        char *c = strchr(p, ',');
        if (c) *c = '\0';
        s = add_item(out, p, base);
        if (s != LMF_OK || !c) break;
        p = c + 1;
    }
    free(copy);
    return s;
}

/* "W:REST" with W a number: *w and *rest set, 1; else 0 */
static int split_weight(const char *item, double *w, const char **rest) {
    const char *c = strchr(item, ':');
    if (!c || c == item) return 0;
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
    char *copy = strdup(spec);
    if (!copy) return lmf_fail(LMF_ERR_NOMEM, "out of memory parsing the data spec");
    int weighted = 0, plain = 0;
    for (char *p = copy, *c;; p = c + 1) {
        c = strchr(p, ',');
        if (c) *c = '\0';
        double w;
        const char *rest;
        if (split_weight(p, &w, &rest)) weighted++;
        else plain++;
        if (!c) break;
    }
    lmf_status s = LMF_OK;
    if (weighted && plain)
        s = lmf_fail(LMF_ERR_ARG, "data spec '%s' mixes weighted (W:FILES) and unweighted items; "
                     "give every item a weight, or none", spec);
    if (s == LMF_OK && !weighted) {
        strv paths = {0};
        s = add_list(&paths, spec, NULL);
        if (s == LMF_OK) s = add_source(sp, spec, 1.0, &paths);
        strv_free(&paths);
    } else if (s == LMF_OK) {
        strcpy(copy, spec);
        for (char *p = copy, *c; s == LMF_OK; p = c + 1) {
            c = strchr(p, ',');
            if (c) *c = '\0';
            double w = 0;
            const char *rest = p;
            split_weight(p, &w, &rest);
            strv paths = {0};
            s = add_item(&paths, rest, NULL);
            if (s == LMF_OK) s = add_source(sp, rest, w, &paths);
            strv_free(&paths);
            if (!c) break;
        }
    }
    free(copy);
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

/* Cluster descriptions for the planner: JSON reading and writing, validation, presets. */
#include "lmforge/plan.h"

#include <ctype.h>
#include <dirent.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lmforge/fsutil.h"

#define GiB 1073741824.0

int lmf_cluster_devices(const lmf_cluster *c) {
    return c->nodes * c->devices_per_node;
}

static lmf_status validate_curve(const char *n, const char *what, const lmf_plan_rate_curve *cv) {
    if (cv->n < 1 || cv->n > LMF_PLAN_MAX_EFF)
        return lmf_fail(LMF_ERR_ARG, "%s: kernels.%s needs 1 to %d points", n, what, LMF_PLAN_MAX_EFF);
    for (int i = 0; i < cv->n; i++) {
        if (!(cv->x[i] >= 1.0) || !(cv->fwd[i] > 0.0) || !(cv->bwd[i] > 0.0) ||
            !isfinite(cv->fwd[i]) || !isfinite(cv->bwd[i]))
            return lmf_fail(LMF_ERR_ARG, "%s: kernels.%s point %d needs a size >= 1 and positive rates",
                            n, what, i);
        if (i > 0 && !(cv->x[i] > cv->x[i - 1]))
            return lmf_fail(LMF_ERR_ARG, "%s: kernels.%s sizes must increase", n, what);
    }
    return LMF_OK;
}

/* measured kernel rates: absent (matmul.n == 0) or complete */
static lmf_status validate_kernels(const char *n, const lmf_plan_kernel_rates *r) {
    if (r->matmul.n == 0) return LMF_OK;
    if (!lmf_kernels_by_name(r->table))
        return lmf_fail(LMF_ERR_ARG, "%s: kernels.table '%s' is not a kernel table (ref or fast)", n,
                        r->table);
    if (r->threads < 1 || r->rows < 1)
        return lmf_fail(LMF_ERR_ARG, "%s: kernels.threads and kernels.rows must be at least 1", n);
    LMF_TRY(validate_curve(n, "matmul_GFLOPs", &r->matmul));
    LMF_TRY(validate_curve(n, "attention_GFLOPs", &r->attention));
    LMF_TRY(validate_curve(n, "classifier_GFLOPs", &r->classifier));
    for (int e = 0; e < LMF_PLAN_EW_COUNT; e++)
        if (!(r->bandwidth[e] > 0.0) || !isfinite(r->bandwidth[e]))
            return lmf_fail(LMF_ERR_ARG, "%s: kernels.bandwidth_GBps.%s must be positive", n,
                            lmf_plan_ew_name((lmf_plan_ew)e));
    if (!(r->process_bytes >= 0.0))
        return lmf_fail(LMF_ERR_ARG, "%s: kernels.process_MiB must not be negative", n);
    return LMF_OK;
}

lmf_status lmf_cluster_validate(const lmf_cluster *c) {
    const char *n = c->name[0] ? c->name : "cluster";
    if (c->nodes < 1 || c->devices_per_node < 1 ||
        (int64_t)c->nodes * c->devices_per_node > 100000000)
        return lmf_fail(LMF_ERR_ARG, "%s: nodes (%d) and devices per node (%d) must be at least 1",
                        n, c->nodes, c->devices_per_node);
    if (!(c->device_memory > 0.0) || !(c->memory_reserved >= 0.0) ||
        c->memory_reserved >= c->device_memory)
        return lmf_fail(LMF_ERR_ARG, "%s: device memory must be positive and larger than the reserved part", n);
    int any = 0;
    for (int d = 0; d < LMF_PLAN_NDTYPES; d++) {
        if (!(c->peak_flops[d] >= 0.0))
            return lmf_fail(LMF_ERR_ARG, "%s: peak FLOP/s must not be negative", n);
        any |= c->peak_flops[d] > 0.0;
        const lmf_plan_eff_curve *cv = &c->gemm_eff[d];
        if (cv->n < 0 || cv->n > LMF_PLAN_MAX_EFF)
            return lmf_fail(LMF_ERR_ARG, "%s: efficiency curve has %d points (at most %d)", n, cv->n,
                            LMF_PLAN_MAX_EFF);
        for (int i = 0; i < cv->n; i++) {
            if (!(cv->size[i] >= 1.0) || !(cv->frac[i] > 0.0 && cv->frac[i] <= 1.0))
                return lmf_fail(LMF_ERR_ARG, "%s: %s efficiency point %d needs size >= 1 and a fraction in (0, 1]",
                                n, lmf_plan_dtype_name((lmf_plan_dtype)d), i);
            if (i > 0 && !(cv->size[i] > cv->size[i - 1]))
                return lmf_fail(LMF_ERR_ARG, "%s: %s efficiency sizes must increase", n,
                                lmf_plan_dtype_name((lmf_plan_dtype)d));
        }
    }
    if (!any) return lmf_fail(LMF_ERR_ARG, "%s: the device needs a positive peak for some dtype", n);
    if (!(c->memory_bandwidth > 0.0) || !(c->intra_bandwidth > 0.0))
        return lmf_fail(LMF_ERR_ARG, "%s: memory and intra-node bandwidths must be positive", n);
    if (c->nodes > 1 && !(c->inter_bandwidth > 0.0))
        return lmf_fail(LMF_ERR_ARG, "%s: a cluster of %d nodes needs a positive network bandwidth", n,
                        c->nodes);
    if (!(c->intra_latency >= 0.0) || !(c->inter_latency >= 0.0) || !(c->inter_bandwidth >= 0.0) ||
        !(c->intra_rs_bandwidth >= 0.0) || !(c->intra_ag_bandwidth >= 0.0) ||
        !(c->intra_ag_small_bandwidth >= 0.0))
        return lmf_fail(LMF_ERR_ARG, "%s: latencies and bandwidths must not be negative", n);
    if (!(c->comm_efficiency > 0.0 && c->comm_efficiency <= 1.0) ||
        !(c->overlap_dp >= 0.0 && c->overlap_dp <= 1.0) ||
        !(c->overlap_zero3 >= 0.0 && c->overlap_zero3 <= 1.0))
        return lmf_fail(LMF_ERR_ARG, "%s: comm_efficiency must lie in (0, 1] and overlaps in [0, 1]", n);
    if (!(c->price_per_device_hour >= 0.0))
        return lmf_fail(LMF_ERR_ARG, "%s: price must not be negative", n);
    return validate_kernels(n, &c->kernels);
}

/* ---- reading ---- */

typedef struct reader {
    const char *path;
    lmf_status err;
} reader;

static int failed(reader *r) { return r->err != LMF_OK; }

/* Number at obj[key] scaled by `unit` into *out. Missing: *out = def when !required. */
static void get_num(reader *r, json_t *obj, const char *where, const char *key, double unit,
                    int required, double def, double *out) {
    if (failed(r)) return;
    json_t *v = obj ? json_object_get(obj, key) : NULL;
    if (!v) {
        if (required)
            r->err = lmf_fail(LMF_ERR_FORMAT, "%s: missing number \"%s%s\"", r->path, where, key);
        else *out = def;
        return;
    }
    if (!json_is_number(v)) {
        r->err = lmf_fail(LMF_ERR_FORMAT, "%s: \"%s%s\" must be a number", r->path, where, key);
        return;
    }
    double x = json_number_value(v);
    if (!isfinite(x) || x < 0.0) {
        r->err = lmf_fail(LMF_ERR_FORMAT, "%s: \"%s%s\" must be a non-negative number", r->path,
                          where, key);
        return;
    }
    *out = x * unit;
}

static void get_int(reader *r, json_t *obj, const char *where, const char *key, int required,
                    int def, int *out) {
    double x = def;
    get_num(r, obj, where, key, 1.0, required, def, &x);
    if (failed(r)) return;
    if (x != floor(x) || x > 1e9) {
        r->err = lmf_fail(LMF_ERR_FORMAT, "%s: \"%s%s\" must be a whole number", r->path, where, key);
        return;
    }
    *out = (int)x;
}

static json_t *get_obj(reader *r, json_t *obj, const char *key, int required) {
    if (failed(r)) return NULL;
    json_t *v = json_object_get(obj, key);
    if (!v) {
        if (required) r->err = lmf_fail(LMF_ERR_FORMAT, "%s: missing object \"%s\"", r->path, key);
        return NULL;
    }
    if (!json_is_object(v)) {
        r->err = lmf_fail(LMF_ERR_FORMAT, "%s: \"%s\" must be an object", r->path, key);
        return NULL;
    }
    return v;
}

static void get_str(reader *r, json_t *obj, const char *where, const char *key, char *dst,
                    size_t cap) {
    if (failed(r)) return;
    json_t *v = json_object_get(obj, key);
    if (!v) return;
    if (!json_is_string(v)) {
        r->err = lmf_fail(LMF_ERR_FORMAT, "%s: \"%s%s\" must be a string", r->path, where, key);
        return;
    }
    snprintf(dst, cap, "%s", json_string_value(v));
}

static void get_curve(reader *r, json_t *arr, const char *dname, lmf_plan_eff_curve *cv) {
    if (failed(r)) return;
    if (!json_is_array(arr) || json_array_size(arr) < 1 || json_array_size(arr) > LMF_PLAN_MAX_EFF) {
        r->err = lmf_fail(LMF_ERR_FORMAT, "%s: \"device.gemm_efficiency.%s\" must be an array of 1 to "
                          "%d [size, fraction] pairs", r->path, dname, LMF_PLAN_MAX_EFF);
        return;
    }
    cv->n = (int)json_array_size(arr);
    for (int i = 0; i < cv->n; i++) {
        json_t *p = json_array_get(arr, (size_t)i);
        if (!json_is_array(p) || json_array_size(p) != 2 || !json_is_number(json_array_get(p, 0)) ||
            !json_is_number(json_array_get(p, 1))) {
            r->err = lmf_fail(LMF_ERR_FORMAT, "%s: \"device.gemm_efficiency.%s\"[%d] must be "
                              "[size, fraction]", r->path, dname, i);
            return;
        }
        cv->size[i] = json_number_value(json_array_get(p, 0));
        cv->frac[i] = json_number_value(json_array_get(p, 1));
    }
}

/* How a rate curve is written: [[x, forward, backward], ...], or [[x, rate], ...] for a kernel
 * measured forward and backward in one call (bwd = fwd). */
typedef enum curve_format { CURVE_FWD_BWD, CURVE_ONE_RATE } curve_format;

/* a rate curve in GFLOP/s into cv */
static void get_rate_curve(reader *r, json_t *obj, const char *key, curve_format fmt,
                           lmf_plan_rate_curve *cv) {
    if (failed(r)) return;
    json_t *arr = json_object_get(obj, key);
    int pairs = fmt == CURVE_ONE_RATE;
    int want = pairs ? 2 : 3;
    if (!json_is_array(arr) || json_array_size(arr) < 1 || json_array_size(arr) > LMF_PLAN_MAX_EFF) {
        r->err = lmf_fail(LMF_ERR_FORMAT, "%s: \"kernels.%s\" must be an array of 1 to %d [%s] "
                          "points", r->path, key, LMF_PLAN_MAX_EFF,
                          pairs ? "size, GFLOP/s" : "size, forward GFLOP/s, backward GFLOP/s");
        return;
    }
    cv->n = (int)json_array_size(arr);
    for (int i = 0; i < cv->n; i++) {
        json_t *p = json_array_get(arr, (size_t)i);
        int ok = json_is_array(p) && (int)json_array_size(p) == want;
        for (int j = 0; ok && j < want; j++) ok = json_is_number(json_array_get(p, (size_t)j));
        if (!ok) {
            r->err = lmf_fail(LMF_ERR_FORMAT, "%s: \"kernels.%s\"[%d] must hold %d numbers", r->path,
                              key, i, want);
            return;
        }
        cv->x[i] = json_number_value(json_array_get(p, 0));
        cv->fwd[i] = json_number_value(json_array_get(p, 1)) * 1e9;
        cv->bwd[i] = pairs ? cv->fwd[i] : json_number_value(json_array_get(p, 2)) * 1e9;
    }
}

/* the optional "kernels" object (measured by --calibrate) */
static void get_kernels(reader *r, json_t *root, lmf_plan_kernel_rates *k) {
    json_t *obj = get_obj(r, root, "kernels", 0);
    if (!obj) return;
    snprintf(k->table, sizeof k->table, "fast");
    get_str(r, obj, "kernels.", "table", k->table, sizeof k->table);
    get_int(r, obj, "kernels.", "threads", 1, 1, &k->threads);
    get_int(r, obj, "kernels.", "rows", 1, 1, &k->rows);
    get_num(r, obj, "kernels.", "process_MiB", 1048576.0, 1, 0, &k->process_bytes);
    get_rate_curve(r, obj, "matmul_GFLOPs", CURVE_FWD_BWD, &k->matmul);
    get_rate_curve(r, obj, "attention_GFLOPs", CURVE_FWD_BWD, &k->attention);
    get_rate_curve(r, obj, "classifier_GFLOPs", CURVE_ONE_RATE, &k->classifier);
    json_t *bw = get_obj(r, obj, "bandwidth_GBps", 1);
    for (int e = 0; e < LMF_PLAN_EW_COUNT; e++)
        get_num(r, bw, "kernels.bandwidth_GBps.", lmf_plan_ew_name((lmf_plan_ew)e), 1e9, 1, 0,
                &k->bandwidth[e]);
}

/* name from the file name: "dir/foo.json" -> "foo" */
static void name_from_path(const char *path, char *dst, size_t cap) {
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    snprintf(dst, cap, "%s", base);
    char *dot = strrchr(dst, '.');
    if (dot && strcmp(dot, ".json") == 0) *dot = '\0';
}

lmf_status lmf_cluster_load_json(const char *path, lmf_cluster *out) {
    memset(out, 0, sizeof *out);
    char *text = NULL;
    size_t len = 0;
    lmf_status st = lmf_read_file(path, &text, &len, 1 << 20);
    if (st != LMF_OK) return lmf_fail_context(st, "cluster description: ");
    json_error_t jerr;
    json_t *root = json_loadb(text, len, 0, &jerr);
    free(text);
    if (!root)
        return lmf_fail(LMF_ERR_FORMAT, "%s:%d:%d: malformed JSON: %s", path, jerr.line,
                        jerr.column, jerr.text);
    reader r = {path, LMF_OK};
    if (!json_is_object(root))
        r.err = lmf_fail(LMF_ERR_FORMAT, "%s: a cluster description must be a JSON object", path);
    name_from_path(path, out->name, sizeof out->name);
    if (!failed(&r)) get_str(&r, root, "", "name", out->name, sizeof out->name);
    get_int(&r, root, "", "nodes", 1, 1, &out->nodes);
    json_t *node = get_obj(&r, root, "node", 1);
    json_t *dev = get_obj(&r, root, "device", 1);
    json_t *net = get_obj(&r, root, "network", 0);
    json_t *ovl = get_obj(&r, root, "overlap", 0);
    get_int(&r, node, "node.", "devices", 1, 1, &out->devices_per_node);
    get_int(&r, node, "node.", "cpu_cores", 0, 0, &out->cpu_cores_per_node);
    get_num(&r, node, "node.", "intra_bandwidth_GBps", 1e9, 1, 0, &out->intra_bandwidth);
    get_num(&r, node, "node.", "intra_latency_us", 1e-6, 0, 0, &out->intra_latency);
    get_num(&r, node, "node.", "intra_reduce_scatter_GBps", 1e9, 0, 0, &out->intra_rs_bandwidth);
    get_num(&r, node, "node.", "intra_all_gather_GBps", 1e9, 0, 0, &out->intra_ag_bandwidth);
    get_num(&r, node, "node.", "intra_all_gather_4MiB_GBps", 1e9, 0, 0, &out->intra_ag_small_bandwidth);
    snprintf(out->device, sizeof out->device, "device");
    if (!failed(&r)) get_str(&r, dev, "device.", "name", out->device, sizeof out->device);
    get_num(&r, dev, "device.", "memory_GiB", GiB, 1, 0, &out->device_memory);
    get_num(&r, dev, "device.", "reserved_GiB", GiB, 0, 0, &out->memory_reserved);
    get_num(&r, dev, "device.", "memory_bandwidth_GBps", 1e9, 1, 0, &out->memory_bandwidth);
    json_t *peak = get_obj(&r, dev, "peak_tflops", 1);
    json_t *eff = dev ? get_obj(&r, dev, "gemm_efficiency", 0) : NULL;
    for (int d = 0; d < LMF_PLAN_NDTYPES; d++) {
        const char *dn = lmf_plan_dtype_name((lmf_plan_dtype)d);
        get_num(&r, peak, "device.peak_tflops.", dn, 1e12, 0, 0, &out->peak_flops[d]);
        json_t *cv = eff && !failed(&r) ? json_object_get(eff, dn) : NULL;
        if (cv) get_curve(&r, cv, dn, &out->gemm_eff[d]);
    }
    get_num(&r, net, "network.", "node_bandwidth_Gbps", 1e9 / 8.0, 0, 0, &out->inter_bandwidth);
    get_num(&r, net, "network.", "latency_us", 1e-6, 0, 0, &out->inter_latency);
    get_num(&r, root, "", "comm_efficiency", 1.0, 0, 0.8, &out->comm_efficiency);
    get_num(&r, ovl, "overlap.", "dp", 1.0, 0, 1.0, &out->overlap_dp);
    get_num(&r, ovl, "overlap.", "zero3", 1.0, 0, 1.0, &out->overlap_zero3);
    get_num(&r, root, "", "price_per_device_hour", 1.0, 0, 0, &out->price_per_device_hour);
    get_kernels(&r, root, &out->kernels);
    json_decref(root);
    if (failed(&r)) return r.err;
    st = lmf_cluster_validate(out);
    if (st != LMF_OK) return lmf_fail_context(LMF_ERR_FORMAT, "%s: ", path);
    return LMF_OK;
}

/* ---- writing ---- */

/* Append printf-style text to buf[cap] at *len; *len may exceed cap on overflow. */
static void put(char *buf, size_t cap, size_t *len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void put(char *buf, size_t cap, size_t *len, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(*len < cap ? buf + *len : NULL, *len < cap ? cap - *len : 0, fmt, ap);
    va_end(ap);
    if (n > 0) *len += (size_t)n;
}

/* s as a JSON string literal (jansson does the escaping) */
static void put_str(char *buf, size_t cap, size_t *len, const char *s) {
    json_t *j = json_string(s ? s : "");
    char *t = j ? json_dumps(j, JSON_ENCODE_ANY) : NULL;
    put(buf, cap, len, "%s", t ? t : "\"\"");
    free(t);
    json_decref(j);
}

static void put_rate_curve(char *b, size_t cap, size_t *len, const char *key,
                           const lmf_plan_rate_curve *cv, curve_format fmt) {
    put(b, cap, len, ",\n    \"%s\": [", key);
    for (int i = 0; i < cv->n; i++) {
        put(b, cap, len, "%s[%.6g, %.5g", i ? ", " : "", cv->x[i], cv->fwd[i] / 1e9);
        if (fmt == CURVE_FWD_BWD) put(b, cap, len, ", %.5g", cv->bwd[i] / 1e9);
        put(b, cap, len, "]");
    }
    put(b, cap, len, "]");
}

/* ",\n  "kernels": {...}" when the description carries measured kernel rates */
static void put_kernels(char *b, size_t cap, size_t *len, const lmf_plan_kernel_rates *k) {
    if (k->matmul.n == 0) return;
    put(b, cap, len, ",\n  \"kernels\": {\n    \"table\": ");
    put_str(b, cap, len, k->table);
    put(b, cap, len, ",\n    \"threads\": %d,\n    \"rows\": %d,\n    \"process_MiB\": %.6g",
        k->threads, k->rows, k->process_bytes / 1048576.0);
    put_rate_curve(b, cap, len, "matmul_GFLOPs", &k->matmul, CURVE_FWD_BWD);
    put_rate_curve(b, cap, len, "attention_GFLOPs", &k->attention, CURVE_FWD_BWD);
    put_rate_curve(b, cap, len, "classifier_GFLOPs", &k->classifier, CURVE_ONE_RATE);
    put(b, cap, len, ",\n    \"bandwidth_GBps\": {");
    for (int e = 0; e < LMF_PLAN_EW_COUNT; e++)
        put(b, cap, len, "%s\n      \"%s\": %.5g", e ? "," : "", lmf_plan_ew_name((lmf_plan_ew)e),
            k->bandwidth[e] / 1e9);
    put(b, cap, len, "\n    }\n  }");
}

lmf_status lmf_cluster_save_json(const char *path, const lmf_cluster *c, const char *description,
                                 const char *const *sources, int n_sources) {
    LMF_TRY(lmf_cluster_validate(c));
    size_t cap = 65536, len = 0;
    char *b = malloc(cap);
    if (!b) return lmf_fail(LMF_ERR_NOMEM, "cannot format the cluster description");
    put(b, cap, &len, "{\n  \"name\": ");
    put_str(b, cap, &len, c->name);
    put(b, cap, &len, ",\n  \"description\": ");
    put_str(b, cap, &len, description);
    put(b, cap, &len, ",\n  \"sources\": [");
    for (int i = 0; i < n_sources; i++) {
        put(b, cap, &len, "%s\n    ", i ? "," : "");
        put_str(b, cap, &len, sources[i]);
    }
    put(b, cap, &len, "%s],\n", n_sources ? "\n  " : "");
    put(b, cap, &len, "  \"nodes\": %d,\n  \"node\": {\n    \"devices\": %d,\n    \"cpu_cores\": %d,\n"
        "    \"intra_bandwidth_GBps\": %.6g,\n    \"intra_latency_us\": %.6g",
        c->nodes, c->devices_per_node, c->cpu_cores_per_node, c->intra_bandwidth / 1e9,
        c->intra_latency / 1e-6);
    if (c->intra_rs_bandwidth > 0)
        put(b, cap, &len, ",\n    \"intra_reduce_scatter_GBps\": %.6g", c->intra_rs_bandwidth / 1e9);
    if (c->intra_ag_bandwidth > 0)
        put(b, cap, &len, ",\n    \"intra_all_gather_GBps\": %.6g", c->intra_ag_bandwidth / 1e9);
    if (c->intra_ag_small_bandwidth > 0)
        put(b, cap, &len, ",\n    \"intra_all_gather_4MiB_GBps\": %.6g",
            c->intra_ag_small_bandwidth / 1e9);
    put(b, cap, &len, "\n  },\n");
    put(b, cap, &len, "  \"device\": {\n    \"name\": ");
    put_str(b, cap, &len, c->device);
    put(b, cap, &len, ",\n    \"memory_GiB\": %.6g,\n    \"reserved_GiB\": %.6g,\n"
        "    \"memory_bandwidth_GBps\": %.6g,\n    \"peak_tflops\": {",
        c->device_memory / GiB, c->memory_reserved / GiB, c->memory_bandwidth / 1e9);
    int first = 1;
    for (int d = 0; d < LMF_PLAN_NDTYPES; d++) {
        if (!(c->peak_flops[d] > 0.0)) continue;
        put(b, cap, &len, "%s\"%s\": %.6g", first ? "" : ", ", lmf_plan_dtype_name((lmf_plan_dtype)d),
            c->peak_flops[d] / 1e12);
        first = 0;
    }
    put(b, cap, &len, "},\n    \"gemm_efficiency\": {");
    first = 1;
    for (int d = 0; d < LMF_PLAN_NDTYPES; d++) {
        const lmf_plan_eff_curve *cv = &c->gemm_eff[d];
        if (cv->n == 0) continue;
        put(b, cap, &len, "%s\n      \"%s\": [", first ? "" : ",", lmf_plan_dtype_name((lmf_plan_dtype)d));
        for (int i = 0; i < cv->n; i++)
            put(b, cap, &len, "%s[%.6g, %.4g]", i ? ", " : "", cv->size[i], cv->frac[i]);
        put(b, cap, &len, "]");
        first = 0;
    }
    put(b, cap, &len, "%s}\n  },\n", first ? "" : "\n    ");
    put(b, cap, &len, "  \"network\": {\"node_bandwidth_Gbps\": %.6g, \"latency_us\": %.6g},\n"
        "  \"comm_efficiency\": %.6g,\n  \"overlap\": {\"dp\": %.6g, \"zero3\": %.6g},\n"
        "  \"price_per_device_hour\": %.6g",
        c->inter_bandwidth * 8.0 / 1e9, c->inter_latency / 1e-6, c->comm_efficiency,
        c->overlap_dp, c->overlap_zero3, c->price_per_device_hour);
    put_kernels(b, cap, &len, &c->kernels);
    put(b, cap, &len, "\n}\n");
    lmf_status st = len < cap ? lmf_write_file_atomic(path, b, len)
                              : lmf_fail(LMF_ERR_ARG, "%s: cluster description too long", path);
    free(b);
    return st;
}

/* ---- presets ---- */

static int is_dir(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISDIR(sb.st_mode);
}

/* dir[cap] = base followed by suffix; 1 when it fits and names a directory */
static int try_dir(char *dir, size_t cap, const char *base, const char *suffix) {
    int n = snprintf(dir, cap, "%s%s", base, suffix);
    return n > 0 && (size_t)n < cap && is_dir(dir);
}

lmf_status lmf_cluster_presets_dir(char *dir, size_t cap) {
    const char *env = getenv("LMF_PRESETS_DIR");
    if (env && *env && try_dir(dir, cap, env, "/clusters")) return LMF_OK;
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = '\0';
            if (try_dir(dir, cap, exe, "/../share/lmforge/presets/clusters")) return LMF_OK;
        }
    }
#ifdef LMF_SOURCE_DIR
    if (try_dir(dir, cap, LMF_SOURCE_DIR, "/presets/clusters")) return LMF_OK;
#endif
    if (cap > 0) dir[0] = '\0';
    return lmf_fail(LMF_ERR_IO, "cannot find the cluster presets directory (set LMF_PRESETS_DIR "
                    "to the presets/ folder of the lmforge sources)");
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* "a, b, c" of the preset names in dir (sorted) into list[cap]. */
static void preset_list(const char *dir, char *list, size_t cap) {
    list[0] = '\0';
    DIR *dp = dir ? opendir(dir) : NULL;
    if (!dp) return;
    char names[64][64];
    const char *ptrs[64];
    int n = 0;
    struct dirent *de;
    while ((de = readdir(dp)) != NULL && n < 64) {
        size_t l = strlen(de->d_name);
        if (l > 5 && l < 64 && strcmp(de->d_name + l - 5, ".json") == 0) {
            snprintf(names[n], sizeof names[n], "%.*s", (int)(l - 5), de->d_name);
            ptrs[n] = names[n];
            n++;
        }
    }
    closedir(dp);
    qsort(ptrs, (size_t)n, sizeof ptrs[0], cmp_str);
    for (int i = 0; i < n; i++) {
        strncat(list, ptrs[i], cap - strlen(list) - 1);
        if (i + 1 < n) strncat(list, ", ", cap - strlen(list) - 1);
    }
}

lmf_status lmf_cluster_resolve(const char *name_or_path, lmf_cluster *out) {
    size_t l = strlen(name_or_path);
    if (strchr(name_or_path, '/') || (l > 5 && strcmp(name_or_path + l - 5, ".json") == 0))
        return lmf_cluster_load_json(name_or_path, out);
    char dir[4096];
    LMF_TRY(lmf_cluster_presets_dir(dir, sizeof dir));
    for (const char *p = name_or_path; *p; p++)
        if (!(isalnum((unsigned char)*p) || *p == '-' || *p == '_' || *p == '.'))
            return lmf_fail(LMF_ERR_ARG, "bad cluster preset name '%s'", name_or_path);
    char path[4200];
    if (snprintf(path, sizeof path, "%s/%s.json", dir, name_or_path) >= (int)sizeof path)
        return lmf_fail(LMF_ERR_ARG, "cluster preset name '%s' is too long", name_or_path);
    if (!lmf_file_exists(path)) {
        char list[1024];
        preset_list(dir, list, sizeof list);
        return lmf_fail(LMF_ERR_ARG, "unknown cluster preset '%s' (known: %s; or give a .json file)",
                        name_or_path, list);
    }
    return lmf_cluster_load_json(path, out);
}

/* Sharded data preparation split over ranks: inputs tokenized into parts, parts cut into train
 * and validation token files of a fixed size, a manifest; every file atomic, so a rerun
 * continues. */
#include "lmforge/prepare.h"

#include <dirent.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lmforge/data.h"
#include "lmforge/fsutil.h"

#define MANIFEST "manifest.json"
#define COPY_CHUNK ((size_t)1 << 20)

/* the test hook of lmf_shards_opts: fail once this rank has written test_fail_after files */
static lmf_status test_stop(const lmf_shards_opts *o, const lmf_shards_stats *st) {
    if (o->test_fail_after > 0 && st->parts_done + st->shards_done >= o->test_fail_after)
        return lmf_fail(LMF_ERR_STATE, "data prepare: stopped after %d files (--test-crash-after)",
                        o->test_fail_after);
    return LMF_OK;
}

static void part_dir(const lmf_shards_opts *o, int i, char *buf, size_t cap) {
    snprintf(buf, cap, "%s/.parts/part_%06d", o->out_dir, i);
}

/* token file k of the train files (val = 0) or of the val files (val = 1) */
static void shard_path(const lmf_shards_opts *o, int val, int k, char *buf, size_t cap) {
    if (val) snprintf(buf, cap, "%s/val/val_%06d.bin", o->out_dir, k);
    else snprintf(buf, cap, "%s/train_%06d.bin", o->out_dir, k);
}

/* a part's tokens and, beside them, its number of documents (written after the tokens: a part
 * is done when its documents file exists) */
static void part_file(const lmf_shards_opts *o, int i, const char *name, char *buf, size_t cap) {
    snprintf(buf, cap, "%s/.parts/part_%06d/%s", o->out_dir, i, name);
}

/* the plan: inputs (path, size), options */
static json_t *plan_json(const lmf_shards_opts *o) {
    json_t *in = json_array();
    for (int i = 0; in && i < o->n_inputs; i++) {
        struct stat sb;
        json_int_t size = stat(o->inputs[i], &sb) == 0 ? (json_int_t)sb.st_size : -1;
        json_array_append_new(in, json_pack("{s:s, s:I}", "path", o->inputs[i], "bytes", size));
    }
    return json_pack("{s:o, s:I, s:s, s:s?, s:s, s:f}", "inputs", in, "shard_tokens",
                     (json_int_t)o->shard_tokens, "tokenizer", o->tokenizer_id ? o->tokenizer_id : "",
                     "doc_separator", o->doc_separator, "jsonl_key",
                     o->jsonl_key ? o->jsonl_key : "text", "val_fraction", o->val_fraction);
}

static lmf_status write_manifest(const lmf_shards_opts *o, json_t *plan, json_t *shards,
                                 json_t *val) {
    char p[4200];
    LMF_TRY(lmf_path_join(p, sizeof p, o->out_dir, MANIFEST));
    json_t *m = json_pack("{s:s, s:O, s:b, s:O?, s:O?}", "format", "lmforge-data-shards", "plan",
                          plan, "complete", shards != NULL, "shards", shards, "val_shards", val);
    char *txt = m ? json_dumps(m, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
    json_decref(m);
    if (!txt) return lmf_fail(LMF_ERR_NOMEM, "cannot format %s", p);
    lmf_status s = lmf_write_file_atomic(p, txt, strlen(txt));
    free(txt);
    return s;
}

lmf_status lmf_shards_begin(const lmf_shards_opts *o, int rank) {
    if (o->n_inputs <= 0 || !o->out_dir || o->shard_tokens == 0)
        return lmf_fail(LMF_ERR_ARG, "data prepare: inputs, an output directory and a shard size "
                        "are needed");
    if (!(o->val_fraction >= 0.0 && o->val_fraction < 1.0))
        return lmf_fail(LMF_ERR_ARG, "data prepare: the validation fraction must be in [0, 1), got %g",
                        o->val_fraction);
    if (rank != 0) return LMF_OK;
    char p[4200], parts[4200];
    LMF_TRY(lmf_path_join(parts, sizeof parts, o->out_dir, ".parts"));
    LMF_TRY(lmf_mkdir_p(parts));
    LMF_TRY(lmf_path_join(p, sizeof p, o->out_dir, MANIFEST));
    json_t *plan = plan_json(o);
    if (!plan) return lmf_fail(LMF_ERR_NOMEM, "cannot describe the preparation");
    lmf_status s = LMF_OK;
    if (lmf_file_exists(p)) {
        json_error_t e;
        json_t *old = json_load_file(p, 0, &e);
        if (!old || !json_equal(json_object_get(old, "plan"), plan))
            s = lmf_fail(LMF_ERR_ARG, "%s describes another preparation (other inputs, sizes or "
                         "options); use another --out, or remove that directory to start again",
                         p);
        json_decref(old);
    } else {
        s = write_manifest(o, plan, NULL, NULL);
    }
    json_decref(plan);
    return s;
}

/* 1 when OUT/manifest.json says the preparation is complete */
static int manifest_complete(const lmf_shards_opts *o) {
    char p[4200];
    if (lmf_path_join(p, sizeof p, o->out_dir, MANIFEST) != LMF_OK) return 0;
    json_t *m = json_load_file(p, 0, NULL);
    int done = json_is_true(json_object_get(m, "complete"));
    json_decref(m);
    return done;
}

lmf_status lmf_shards_tokenize(const lmf_shards_opts *o, int rank, int world,
                               lmf_shards_stats *st) {
    st->complete = manifest_complete(o);
    if (st->complete) return LMF_OK;
    for (int i = rank; i < o->n_inputs; i += world) {
        char dir[4200], docs[4300];
        part_dir(o, i, dir, sizeof dir);
        part_file(o, i, "docs", docs, sizeof docs);
        if (lmf_file_exists(docs)) { /* complete: written atomically by an earlier run */
            st->parts_kept++;
            continue;
        }
        const char *in[1] = {o->inputs[i]};
        lmf_prepare_opts po = {o->tok, in, 1, dir, 0.0, o->doc_separator, o->threads, NULL, NULL,
                               o->jsonl_key};
        lmf_prepare_stats ps;
        LMF_TRY(lmf_data_prepare(&po, &ps));
        char num[32];
        int len = snprintf(num, sizeof num, "%llu\n", (unsigned long long)ps.docs);
        LMF_TRY(lmf_write_file_atomic(docs, num, (size_t)len));
        st->parts_done++;
        LMF_TRY(test_stop(o, st));
    }
    return LMF_OK;
}

/* tokens (from their headers) and documents of every part */
static lmf_status part_counts(const lmf_shards_opts *o, uint64_t *n, uint64_t *docs, int *tb) {
    for (int i = 0; i < o->n_inputs; i++) {
        char bin[4300], dp[4300];
        part_file(o, i, "train.bin", bin, sizeof bin);
        part_file(o, i, "docs", dp, sizeof dp);
        char *txt = NULL, *end = NULL;
        size_t len = 0;
        lmf_tokens *t = NULL;
        lmf_status s = lmf_read_file(dp, &txt, &len, 64);
        if (s == LMF_OK) {
            docs[i] = strtoull(txt, &end, 10);
            if (end == txt || *end != '\n')
                s = lmf_fail(LMF_ERR_FORMAT, "%s: expected a document count; remove the directory "
                             "%s/.parts and run again", dp, o->out_dir);
            free(txt);
        }
        if (s == LMF_OK) s = lmf_tokens_open(bin, &t);
        if (s != LMF_OK)
            return lmf_fail_context(s, "data prepare: the tokens of input %s are missing "
                                    "(did every rank finish tokenizing?): ", o->inputs[i]);
        n[i] = lmf_tokens_num_tokens(t);
        if (i == 0 || lmf_tokens_token_bytes(t) > *tb) *tb = lmf_tokens_token_bytes(t);
        lmf_tokens_close(t);
    }
    return LMF_OK;
}

/* The token where the validation documents begin: after the first `first_val` end-of-text ids
 * of the concatenated parts (every document ends with one, and only documents end so). */
static lmf_status val_start(const lmf_shards_opts *o, const uint64_t *n, const uint64_t *docs,
                            uint64_t first_val, int32_t *buf, uint64_t *at) {
    const int32_t eot = o->tok ? (int32_t)lmf_tok_eot(o->tok) : 256;
    uint64_t base = 0;
    int i = 0;
    while (i < o->n_inputs && first_val >= docs[i]) { /* whole parts before it */
        first_val -= docs[i];
        base += n[i++];
    }
    *at = base;
    if (first_val == 0) return LMF_OK;
    char bin[4300];
    part_file(o, i, "train.bin", bin, sizeof bin);
    lmf_tokens *t = NULL;
    LMF_TRY(lmf_tokens_open(bin, &t));
    for (uint64_t pos = 0; pos < n[i]; pos += COPY_CHUNK) {
        size_t m = n[i] - pos < COPY_CHUNK ? (size_t)(n[i] - pos) : COPY_CHUNK;
        lmf_tokens_read(t, pos, m, buf);
        for (size_t k = 0; k < m; k++)
            if (buf[k] == eot && --first_val == 0) {
                *at = base + pos + k + 1;
                lmf_tokens_close(t);
                return LMF_OK;
            }
    }
    lmf_tokens_close(t);
    return lmf_fail(LMF_ERR_FORMAT, "data prepare: %s holds fewer end-of-text ids than its %llu "
                    "documents; remove the directory %s/.parts and run again", bin,
                    (unsigned long long)docs[i], o->out_dir);
}

/* tokens [from, to) of the concatenated parts appended to w */
static lmf_status copy_range(const lmf_shards_opts *o, const uint64_t *n, uint64_t from,
                             uint64_t to, lmf_tokens_writer *w, int32_t *buf) {
    uint64_t base = 0;
    for (int i = 0; i < o->n_inputs && from < to; i++) {
        uint64_t end = base + n[i];
        if (from < end) {
            char bin[4300];
            part_dir(o, i, bin, sizeof bin);
            strcat(bin, "/train.bin");
            lmf_tokens *t = NULL;
            LMF_TRY(lmf_tokens_open(bin, &t));
            lmf_status s = LMF_OK;
            while (s == LMF_OK && from < to && from < end) {
                uint64_t m = (to < end ? to : end) - from;
                if (m > COPY_CHUNK) m = COPY_CHUNK;
                lmf_tokens_read(t, from - base, (size_t)m, buf);
                s = lmf_tokens_writer_append(w, (const uint32_t *)buf, (size_t)m);
                from += m;
            }
            lmf_tokens_close(t);
            LMF_TRY(s);
        }
        base = end;
    }
    return LMF_OK;
}

lmf_status lmf_shards_write(const lmf_shards_opts *o, int rank, int world, lmf_shards_stats *st) {
    if (st->complete) return LMF_OK;
    uint64_t *n = calloc((size_t)o->n_inputs, sizeof *n), total = 0, n_docs = 0;
    uint64_t *docs = calloc((size_t)o->n_inputs, sizeof *docs);
    int32_t *buf = malloc(COPY_CHUNK * sizeof *buf);
    int tb = 2;
    lmf_status s = n && docs && buf ? part_counts(o, n, docs, &tb)
                                    : lmf_fail(LMF_ERR_NOMEM, "data prepare: out of memory");
    for (int i = 0; s == LMF_OK && i < o->n_inputs; i++) {
        total += n[i];
        n_docs += docs[i];
    }
    uint64_t n_val = lmf_data_val_docs(n_docs, o->val_fraction), split = total;
    if (s == LMF_OK && o->val_fraction > 0 && n_docs < 2)
        s = lmf_fail(LMF_ERR_ARG, "data prepare: the input is too small: %llu document(s), and "
                     "a validation split needs at least two; give more text, or --val-fraction 0",
                     (unsigned long long)n_docs);
    if (s == LMF_OK && n_val > 0) s = val_start(o, n, docs, n_docs - n_val, buf, &split);
    if (s == LMF_OK && n_val > 0) { /* every rank makes OUT/val/ before writing into it */
        char vd[4200];
        snprintf(vd, sizeof vd, "%s/val", o->out_dir);
        s = lmf_mkdir_p(vd);
    }
    int shards = (int)((split + o->shard_tokens - 1) / o->shard_tokens);
    int vshards = (int)((total - split + o->shard_tokens - 1) / o->shard_tokens);
    for (int j = rank; s == LMF_OK && j < shards + vshards; j += world) {
        int val = j >= shards, k = val ? j - shards : j;
        char p[4200];
        shard_path(o, val, k, p, sizeof p);
        uint64_t lo = val ? split : 0, hi = val ? total : split;
        uint64_t from = lo + (uint64_t)k * o->shard_tokens, to = from + o->shard_tokens;
        if (to > hi) to = hi;
        if (lmf_file_exists(p)) {
            st->shards_kept++;
            continue;
        }
        lmf_tokens_writer *w = NULL;
        s = lmf_tokens_writer_open(p, tb, &w);
        if (s == LMF_OK) s = copy_range(o, n, from, to, w, buf);
        if (s == LMF_OK) s = lmf_tokens_writer_close(w);
        else lmf_tokens_writer_abort(w);
        if (s == LMF_OK) st->shards_done++;
        if (s == LMF_OK) s = test_stop(o, st);
    }
    st->n_shards = shards;
    st->n_val_shards = vshards;
    st->tokens = total;
    st->val_tokens = total - split;
    st->docs = n_docs;
    st->val_docs = n_val;
    free(n);
    free(docs);
    free(buf);
    return s;
}

lmf_status lmf_shards_finish(const lmf_shards_opts *o, int rank, lmf_shards_stats *st) {
    if (rank != 0 || st->complete) return LMF_OK;
    json_t *plan = plan_json(o), *list = json_array(), *vlist = json_array();
    lmf_status s = plan && list && vlist ? LMF_OK : lmf_fail(LMF_ERR_NOMEM, "out of memory");
    for (int j = 0; s == LMF_OK && j < st->n_shards + st->n_val_shards; j++) {
        int val = j >= st->n_shards;
        char p[4200];
        shard_path(o, val, val ? j - st->n_shards : j, p, sizeof p);
        lmf_tokens *t = NULL;
        s = lmf_tokens_open(p, &t);
        if (s != LMF_OK) break;
        /* the name relative to OUT */
        json_array_append_new(val ? vlist : list,
                              json_pack("{s:s, s:I}", "file", p + strlen(o->out_dir) + 1,
                                        "tokens", (json_int_t)lmf_tokens_num_tokens(t)));
        lmf_tokens_close(t);
    }
    if (s == LMF_OK) s = write_manifest(o, plan, list, st->n_val_shards ? vlist : NULL);
    json_decref(plan);
    json_decref(list);
    json_decref(vlist);
    for (int i = 0; s == LMF_OK && i < o->n_inputs; i++) { /* the parts are done with */
        char dir[4200], f[4300];
        part_dir(o, i, dir, sizeof dir);
        part_file(o, i, "docs", f, sizeof f);
        unlink(f);
        part_file(o, i, "train.bin", f, sizeof f);
        unlink(f);
        rmdir(dir);
    }
    if (s == LMF_OK) {
        char parts[4200];
        snprintf(parts, sizeof parts, "%s/.parts", o->out_dir);
        rmdir(parts);
    }
    return s;
}

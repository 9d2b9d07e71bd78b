/* Sharded data preparation split over ranks: inputs tokenized into parts, parts cut into token
 * files of a fixed size, a manifest; every file atomic, so a rerun continues. */
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

static void shard_path(const lmf_shards_opts *o, int k, char *buf, size_t cap) {
    snprintf(buf, cap, "%s/train_%06d.bin", o->out_dir, k);
}

/* the plan: inputs (path, size), options */
static json_t *plan_json(const lmf_shards_opts *o) {
    json_t *in = json_array();
    for (int i = 0; in && i < o->n_inputs; i++) {
        struct stat sb;
        json_int_t size = stat(o->inputs[i], &sb) == 0 ? (json_int_t)sb.st_size : -1;
        json_array_append_new(in, json_pack("{s:s, s:I}", "path", o->inputs[i], "bytes", size));
    }
    return json_pack("{s:o, s:I, s:s, s:s?, s:s}", "inputs", in, "shard_tokens",
                     (json_int_t)o->shard_tokens, "tokenizer", o->tokenizer_id ? o->tokenizer_id : "",
                     "doc_separator", o->doc_separator, "jsonl_key",
                     o->jsonl_key ? o->jsonl_key : "text");
}

static lmf_status write_manifest(const lmf_shards_opts *o, json_t *plan, json_t *shards) {
    char p[4200];
    LMF_TRY(lmf_path_join(p, sizeof p, o->out_dir, MANIFEST));
    json_t *m = json_pack("{s:s, s:O, s:b, s:O?}", "format", "lmforge-data-shards", "plan", plan,
                          "complete", shards != NULL, "shards", shards);
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
        s = write_manifest(o, plan, NULL);
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
        char dir[4200], bin[4300];
        part_dir(o, i, dir, sizeof dir);
        snprintf(bin, sizeof bin, "%s/train.bin", dir);
        if (lmf_file_exists(bin)) { /* complete: written atomically by an earlier run */
            st->parts_kept++;
            continue;
        }
        const char *in[1] = {o->inputs[i]};
        lmf_prepare_opts po = {o->tok, in, 1, dir, 0.0, o->doc_separator, o->threads, NULL, NULL,
                               o->jsonl_key};
        LMF_TRY(lmf_data_prepare(&po, NULL));
        st->parts_done++;
        LMF_TRY(test_stop(o, st));
    }
    return LMF_OK;
}

/* tokens of every part (from their headers) */
static lmf_status part_counts(const lmf_shards_opts *o, uint64_t *n, int *tb) {
    for (int i = 0; i < o->n_inputs; i++) {
        char bin[4300];
        part_dir(o, i, bin, sizeof bin);
        strcat(bin, "/train.bin");
        lmf_tokens *t = NULL;
        lmf_status s = lmf_tokens_open(bin, &t);
        if (s != LMF_OK)
            return lmf_fail_context(s, "data prepare: the tokens of input %s are missing "
                                    "(did every rank finish tokenizing?): ", o->inputs[i]);
        n[i] = lmf_tokens_num_tokens(t);
        if (i == 0 || lmf_tokens_token_bytes(t) > *tb) *tb = lmf_tokens_token_bytes(t);
        lmf_tokens_close(t);
    }
    return LMF_OK;
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
    uint64_t *n = calloc((size_t)o->n_inputs, sizeof *n), total = 0;
    int32_t *buf = malloc(COPY_CHUNK * sizeof *buf);
    int tb = 2;
    lmf_status s = n && buf ? part_counts(o, n, &tb)
                            : lmf_fail(LMF_ERR_NOMEM, "data prepare: out of memory");
    for (int i = 0; s == LMF_OK && i < o->n_inputs; i++) total += n[i];
    int shards = (int)((total + o->shard_tokens - 1) / o->shard_tokens);
    for (int k = rank; s == LMF_OK && k < shards; k += world) {
        char p[4200];
        shard_path(o, k, p, sizeof p);
        uint64_t from = (uint64_t)k * o->shard_tokens, to = from + o->shard_tokens;
        if (to > total) to = total;
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
    st->tokens = total;
    free(n);
    free(buf);
    return s;
}

lmf_status lmf_shards_finish(const lmf_shards_opts *o, int rank, lmf_shards_stats *st) {
    if (rank != 0 || st->complete) return LMF_OK;
    json_t *plan = plan_json(o), *list = json_array();
    lmf_status s = plan && list ? LMF_OK : lmf_fail(LMF_ERR_NOMEM, "out of memory");
    for (int k = 0; s == LMF_OK && k < st->n_shards; k++) {
        char p[4200];
        shard_path(o, k, p, sizeof p);
        lmf_tokens *t = NULL;
        s = lmf_tokens_open(p, &t);
        if (s != LMF_OK) break;
        json_array_append_new(list, json_pack("{s:s, s:I}", "file", strrchr(p, '/') + 1, "tokens",
                                              (json_int_t)lmf_tokens_num_tokens(t)));
        lmf_tokens_close(t);
    }
    if (s == LMF_OK) s = write_manifest(o, plan, list);
    json_decref(plan);
    json_decref(list);
    for (int i = 0; s == LMF_OK && i < o->n_inputs; i++) { /* the parts are done with */
        char dir[4200], bin[4300];
        part_dir(o, i, dir, sizeof dir);
        snprintf(bin, sizeof bin, "%s/train.bin", dir);
        unlink(bin);
        rmdir(dir);
    }
    if (s == LMF_OK) {
        char parts[4200];
        snprintf(parts, sizeof parts, "%s/.parts", o->out_dir);
        rmdir(parts);
    }
    return s;
}

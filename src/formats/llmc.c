/* llm.c checkpoints (fp32 v3, bf16 v5): header validation, loading and writing. */
#include "lmforge/formats.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lmforge/fsutil.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "llm.c files are little-endian");

/* The 16 tensors in file order. Layer tensors (per_layer = 1) hold one slice per layer, each
 * out_c*C rows; a linear weight (in_c > 0) is (out_c*C, in_c*C) in llm.c, i.e. the transpose of
 * the Hugging Face (in, out) layout lmforge keeps. */
typedef struct llmc_tensor {
    const char *name;     /* Hugging Face name, or its suffix after "h.N." for layer tensors */
    int per_layer;
    int out_c, in_c;
} llmc_tensor;

enum { T_WTE = 0, T_WPE = 1, T_LNFW = 14, T_LNFB = 15, N_TENSORS = 16 };

static const llmc_tensor tensors[N_TENSORS] = {
    {"wte.weight", 0, 0, 0},         {"wpe.weight", 0, 0, 0},
    {"ln_1.weight", 1, 1, 0},        {"ln_1.bias", 1, 1, 0},
    {"attn.c_attn.weight", 1, 3, 1}, {"attn.c_attn.bias", 1, 3, 0},
    {"attn.c_proj.weight", 1, 1, 1}, {"attn.c_proj.bias", 1, 1, 0},
    {"ln_2.weight", 1, 1, 0},        {"ln_2.bias", 1, 1, 0},
    {"mlp.c_fc.weight", 1, 4, 1},    {"mlp.c_fc.bias", 1, 4, 0},
    {"mlp.c_proj.weight", 1, 1, 4},  {"mlp.c_proj.bias", 1, 1, 0},
    {"ln_f.weight", 0, 0, 0},        {"ln_f.bias", 0, 0, 0},
};

static int mul_ok(uint64_t a, uint64_t b, uint64_t *r) { return !__builtin_mul_overflow(a, b, r); }
static int add_ok(uint64_t a, uint64_t b, uint64_t *r) { return !__builtin_add_overflow(a, b, r); }

/* elements of one layer's slice of tensor i */
static uint64_t layer_numel(int i, uint64_t C) {
    const llmc_tensor *t = &tensors[i];
    return (uint64_t)t->out_c * C * (t->in_c ? (uint64_t)t->in_c * C : 1);
}

/* elements of tensor i in the file (all layers); 0 on overflow */
static uint64_t file_numel(int i, const lmf_llmc_header *h) {
    uint64_t C = (uint64_t)h->cfg.n_embd, r = 0;
    switch (i) {
    case T_WTE: return mul_ok((uint64_t)h->padded_vocab, C, &r) ? r : 0;
    case T_WPE: return mul_ok((uint64_t)h->cfg.n_positions, C, &r) ? r : 0;
    case T_LNFW:
    case T_LNFB: return C;
    default: {
        uint64_t per;
        if (!mul_ok((uint64_t)tensors[i].out_c * C, tensors[i].in_c ? (uint64_t)tensors[i].in_c * C : 1, &per)) return 0;
        return mul_ok(per, (uint64_t)h->cfg.n_layer, &r) ? r : 0;
    }
    }
}

static int32_t get_i32(const uint8_t *b, int i) {
    int32_t v;
    memcpy(&v, b + 4 * i, 4);
    return v;
}

static const char *magic_hint(int32_t magic) {
    switch (magic) {
    case LMF_LLMC_TOKENIZER_MAGIC: return " (that is an llm.c tokenizer file, not a model)";
    case 20240520: return " (that is a token file, not a model)";
    case 20240801:
    case 20240803: return " (that is an llm.c Llama 3 checkpoint; lmforge reads GPT-2 checkpoints)";
    default: return "";
    }
}

lmf_status lmf_llmc_parse_header(const void *buf, size_t len, uint64_t file_size, const char *what,
                                 lmf_llmc_header *out) {
    const uint8_t *b = buf;
    memset(out, 0, sizeof *out);
    if (file_size < 4 || len < 4)
        return lmf_fail(LMF_ERR_FORMAT, "%s: not an llm.c checkpoint: the file has only %llu bytes",
                        what, (unsigned long long)file_size);
    int32_t magic = get_i32(b, 0);
    if (magic != LMF_LLMC_MAGIC)
        return lmf_fail(LMF_ERR_FORMAT, "%s: not an llm.c checkpoint: magic %d, expected %d%s", what,
                        (int)magic, LMF_LLMC_MAGIC, magic_hint(magic));
    if (file_size < LMF_LLMC_HEADER_BYTES || len < LMF_LLMC_HEADER_BYTES)
        return lmf_fail(LMF_ERR_FORMAT, "%s: truncated llm.c checkpoint: %llu bytes, shorter than "
                        "its %d-byte header", what, (unsigned long long)file_size,
                        LMF_LLMC_HEADER_BYTES);
    int32_t version = get_i32(b, 1);
    if (version != 3 && version != 5)
        return lmf_fail(LMF_ERR_FORMAT, "%s: llm.c checkpoint version %d is not supported (3 = fp32, "
                        "5 = bf16, both with a padded vocabulary); %s", what, (int)version,
                        version == 1 || version == 2 ? "re-export it with a current llm.c "
                        "train_gpt2.py" : "the file may be damaged");
    int32_t v[6];
    static const char *const names[6] = {"max_seq_len", "vocab_size", "num_layers", "num_heads",
                                         "channels", "padded_vocab_size"};
    for (int i = 0; i < 6; i++) {
        v[i] = get_i32(b, 2 + i);
        if (v[i] < 1)
            return lmf_fail(LMF_ERR_FORMAT, "%s: llm.c header field %s is %d; it must be positive",
                            what, names[i], (int)v[i]);
    }
    out->version = version;
    out->cfg.n_positions = v[0];
    out->cfg.vocab_size = v[1];
    out->cfg.n_layer = v[2];
    out->cfg.n_head = v[3];
    out->cfg.n_embd = v[4];
    out->padded_vocab = v[5];
    if (v[4] % v[3] != 0)
        return lmf_fail(LMF_ERR_FORMAT, "%s: llm.c header: channels %d is not divisible by "
                        "num_heads %d", what, (int)v[4], (int)v[3]);
    if (v[5] < v[1])
        return lmf_fail(LMF_ERR_FORMAT, "%s: llm.c header: padded_vocab_size %d is smaller than "
                        "vocab_size %d", what, (int)v[5], (int)v[1]);
    if (lmf_config_validate(&out->cfg) != LMF_OK)
        return lmf_fail_context(LMF_ERR_FORMAT, "%s: llm.c header describes an invalid model: ",
                                what);
    uint64_t esize = version == 3 ? 4 : 2, total = 0;
    for (int i = 0; i < N_TENSORS; i++) {
        uint64_t n = file_numel(i, out);
        if (n == 0 || !add_ok(total, n, &total))
            return lmf_fail(LMF_ERR_FORMAT, "%s: llm.c header shapes overflow 64-bit sizes", what);
    }
    uint64_t expect;
    if (!mul_ok(total, esize, &expect) || !add_ok(expect, LMF_LLMC_HEADER_BYTES, &expect))
        return lmf_fail(LMF_ERR_FORMAT, "%s: llm.c header shapes overflow 64-bit sizes", what);
    if (file_size != expect)
        return lmf_fail(LMF_ERR_FORMAT,
                        "%s: file is %llu bytes but its llm.c header (%d layers, %d heads, %d "
                        "channels, context %d, vocabulary %d padded to %d, %s) implies %llu: %s",
                        what, (unsigned long long)file_size, (int)v[2], (int)v[3], (int)v[4],
                        (int)v[0], (int)v[1], (int)v[5], version == 3 ? "fp32" : "bf16",
                        (unsigned long long)expect,
                        file_size < expect ? "the file is truncated"
                                           : "the header's shapes disagree with the data size");
    return LMF_OK;
}

/* ---- reading ---- */

typedef struct llmc_src {
    int fd;               /* -1 when reading from memory */
    const uint8_t *mem;
    const char *what;
} llmc_src;

static lmf_status src_read(const llmc_src *s, void *dst, size_t n, uint64_t off) {
    if (s->mem) {
        memcpy(dst, s->mem + off, n); /* in bounds: the size was validated against the header */
        return LMF_OK;
    }
    return lmf_pread_all(s->fd, dst, n, off, s->what);
}

static float bf16_to_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* n values (fp32 or bf16 per esize) at byte offset off into dst[n] as fp32 */
static lmf_status read_values(const llmc_src *s, int esize, float *dst, uint64_t n, uint64_t off) {
    if (esize == 4) return src_read(s, dst, (size_t)n * 4, off);
    uint16_t tmp[8192];
    for (uint64_t i = 0; i < n;) {
        size_t k = n - i < 8192 ? (size_t)(n - i) : 8192;
        LMF_TRY(src_read(s, tmp, k * 2, off + i * 2));
        for (size_t j = 0; j < k; j++) dst[i + j] = bf16_to_f32(tmp[j]);
        i += k;
    }
    return LMF_OK;
}

static float *param_of(lmf_gpt *m, const char *name) {
    int i = lmf_layout_find(lmf_gpt_layout(m), name);
    LMF_ASSERT(i >= 0);
    return lmf_gpt_params(m) + lmf_gpt_layout(m)->tensors[i].offset;
}

static void layer_name(char *buf, size_t cap, int l, const char *suffix) {
    snprintf(buf, cap, "h.%d.%s", l, suffix);
}

static lmf_status read_tensors(const llmc_src *s, const lmf_llmc_header *h, lmf_gpt *m) {
    const uint64_t C = (uint64_t)h->cfg.n_embd, V = (uint64_t)h->cfg.vocab_size;
    const int esize = h->version == 3 ? 4 : 2;
    float *scratch = malloc((size_t)(4 * C * C) * sizeof(float));
    if (!scratch) return lmf_fail(LMF_ERR_NOMEM, "%s: out of memory reading the weights", s->what);
    lmf_status st = LMF_OK;
    uint64_t off = LMF_LLMC_HEADER_BYTES;
    char name[64];
    for (int i = 0; i < N_TENSORS && st == LMF_OK; i++) {
        const llmc_tensor *t = &tensors[i];
        if (!t->per_layer) {
            /* wte: only the first vocab_size rows are real; the padded rows are skipped */
            uint64_t n = i == T_WTE ? V * C : file_numel(i, h);
            st = read_values(s, esize, param_of(m, t->name), n, off);
            off += file_numel(i, h) * (uint64_t)esize;
            continue;
        }
        uint64_t n = layer_numel(i, C);
        for (int l = 0; l < h->cfg.n_layer && st == LMF_OK; l++, off += n * (uint64_t)esize) {
            layer_name(name, sizeof name, l, t->name);
            float *dst = param_of(m, name);
            if (!t->in_c) {
                st = read_values(s, esize, dst, n, off);
                continue;
            }
            /* llm.c (O, I) -> Conv1D (I, O) */
            const uint64_t O = (uint64_t)t->out_c * C, I = (uint64_t)t->in_c * C;
            st = read_values(s, esize, scratch, n, off);
            if (st != LMF_OK) break;
            for (uint64_t o = 0; o < O; o++)
                for (uint64_t k = 0; k < I; k++) dst[k * O + o] = scratch[o * I + k];
        }
    }
    free(scratch);
    return st;
}

static lmf_status load_from(const llmc_src *s, const uint8_t *hdr, size_t hlen, uint64_t size,
                            const lmf_kernels *k, lmf_gpt **out) {
    lmf_llmc_header h;
    *out = NULL;
    LMF_TRY(lmf_llmc_parse_header(hdr, hlen, size, s->what, &h));
    lmf_gpt *m = NULL;
    LMF_TRY(lmf_gpt_create(&h.cfg, k, &m));
    lmf_status st = read_tensors(s, &h, m);
    if (st != LMF_OK) {
        lmf_gpt_free(m);
        return st;
    }
    *out = m;
    return LMF_OK;
}

lmf_status lmf_llmc_load_buffer(const void *buf, size_t len, const char *what,
                                const lmf_kernels *k, lmf_gpt **out) {
    llmc_src s = {-1, buf, what};
    return load_from(&s, buf, len, len, k, out);
}

lmf_status lmf_llmc_load(const char *path, const lmf_kernels *k, lmf_gpt **out) {
    *out = NULL;
    int fd;
    LMF_TRY(lmf_open_regular(path, "llm.c checkpoint", &fd));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        close(fd);
        return lmf_fail(LMF_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
    }
    uint8_t hdr[LMF_LLMC_HEADER_BYTES];
    uint64_t size = (uint64_t)sb.st_size;
    size_t hlen = size < sizeof hdr ? (size_t)size : sizeof hdr;
    lmf_status st = lmf_pread_all(fd, hdr, hlen, 0, path);
    llmc_src s = {fd, NULL, path};
    if (st == LMF_OK) st = load_from(&s, hdr, hlen, size, k, out);
    close(fd);
    return st;
}

/* ---- writing ---- */

typedef struct llmc_writer {
    int fd;
    const char *path;
    int esize;
    size_t n;
    uint8_t buf[1 << 16];
} llmc_writer;

static lmf_status w_bytes(llmc_writer *w, const void *p, size_t len) {
    const uint8_t *b = p;
    while (len > 0) {
        if (w->n == sizeof w->buf) {
            LMF_TRY(lmf_write_all(w->fd, w->buf, w->n, w->path));
            w->n = 0;
        }
        size_t k = sizeof w->buf - w->n < len ? sizeof w->buf - w->n : len;
        memcpy(w->buf + w->n, b, k);
        w->n += k;
        b += k;
        len -= k;
    }
    return LMF_OK;
}

/* fp32 -> bf16, round to nearest even; NaN stays a (quiet) NaN */
static uint16_t f32_to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

static lmf_status w_values(llmc_writer *w, const float *x, uint64_t n) {
    if (w->esize == 4) return w_bytes(w, x, (size_t)n * 4);
    for (uint64_t i = 0; i < n; i++) {
        uint16_t b = f32_to_bf16(x[i]);
        LMF_TRY(w_bytes(w, &b, 2));
    }
    return LMF_OK;
}

static lmf_status w_zeros(llmc_writer *w, uint64_t n) {
    static const uint8_t z[4] = {0, 0, 0, 0};
    for (uint64_t i = 0; i < n; i++) LMF_TRY(w_bytes(w, z, (size_t)w->esize));
    return LMF_OK;
}

static lmf_status write_all_tensors(llmc_writer *w, lmf_gpt *m, float *scratch, int Vp) {
    const lmf_gpt_config *c = lmf_gpt_cfg(m);
    const uint64_t C = (uint64_t)c->n_embd, V = (uint64_t)c->vocab_size;
    char name[64];
    for (int i = 0; i < N_TENSORS; i++) {
        const llmc_tensor *t = &tensors[i];
        if (!t->per_layer) {
            const float *src = param_of(m, t->name);
            if (i == T_WTE) {
                LMF_TRY(w_values(w, src, V * C));
                LMF_TRY(w_zeros(w, ((uint64_t)Vp - V) * C));
            } else {
                LMF_TRY(w_values(w, src, i == T_WPE ? (uint64_t)c->n_positions * C : C));
            }
            continue;
        }
        uint64_t n = layer_numel(i, C);
        for (int l = 0; l < c->n_layer; l++) {
            layer_name(name, sizeof name, l, t->name);
            const float *src = param_of(m, name);
            if (!t->in_c) {
                LMF_TRY(w_values(w, src, n));
                continue;
            }
            /* Conv1D (I, O) -> llm.c (O, I) */
            const uint64_t O = (uint64_t)t->out_c * C, I = (uint64_t)t->in_c * C;
            for (uint64_t o = 0; o < O; o++)
                for (uint64_t k = 0; k < I; k++) scratch[o * I + k] = src[k * O + o];
            LMF_TRY(w_values(w, scratch, n));
        }
    }
    return lmf_write_all(w->fd, w->buf, w->n, w->path);
}

lmf_status lmf_llmc_save(lmf_gpt *m, const char *path, int version) {
    if (version != 3 && version != 5)
        return lmf_fail(LMF_ERR_ARG, "llm.c checkpoint version must be 3 (fp32) or 5 (bf16), got %d",
                        version);
    LMF_ASSERT(lmf_gpt_params(m) != NULL);
    const lmf_gpt_config *c = lmf_gpt_cfg(m);
    if (c->family != LMF_FAMILY_GPT2)
        return lmf_fail(LMF_ERR_ARG, "%s: llm.c checkpoints hold GPT-2 models; write a %s model "
                        "as a Hugging Face directory (--format hf)", path,
                        lmf_family_name(c->family));
    int64_t Vp = ((int64_t)c->vocab_size + LMF_LLMC_VOCAB_MULTIPLE - 1) / LMF_LLMC_VOCAB_MULTIPLE *
                 LMF_LLMC_VOCAB_MULTIPLE;
    if (Vp > INT32_MAX) return lmf_fail(LMF_ERR_ARG, "%s: vocabulary too large for llm.c", path);
    int32_t hdr[256];
    memset(hdr, 0, sizeof hdr);
    hdr[0] = LMF_LLMC_MAGIC;
    hdr[1] = version;
    hdr[2] = c->n_positions;
    hdr[3] = c->vocab_size;
    hdr[4] = c->n_layer;
    hdr[5] = c->n_head;
    hdr[6] = c->n_embd;
    hdr[7] = (int32_t)Vp;

    char tmp[4096];
    LMF_TRY(lmf_tmp_path(tmp, sizeof tmp, path));
    llmc_writer *w = malloc(sizeof *w);
    float *scratch = malloc((size_t)4 * (size_t)c->n_embd * (size_t)c->n_embd * sizeof(float));
    if (!w || !scratch) {
        free(w);
        free(scratch);
        return lmf_fail(LMF_ERR_NOMEM, "%s: out of memory writing the checkpoint", path);
    }
    w->fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    w->path = path;
    w->esize = version == 3 ? 4 : 2;
    w->n = 0;
    lmf_status st;
    if (w->fd < 0) {
        st = lmf_fail(LMF_ERR_IO, "%s: cannot create: %s", tmp, strerror(errno));
    } else {
        st = w_bytes(w, hdr, sizeof hdr);
        if (st == LMF_OK) st = write_all_tensors(w, m, scratch, (int)Vp);
        if (st == LMF_OK) {
            st = lmf_commit_tmp(w->fd, tmp, path); /* closes fd */
        } else {
            close(w->fd);
            unlink(tmp);
        }
    }
    free(w);
    free(scratch);
    return st;
}

/* safetensors files: read (header untrusted, fully validated) and write (atomic). */
#ifndef LMFORGE_SAFETENSORS_H
#define LMFORGE_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>
#include "lmforge/status.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum lmf_dtype { LMF_F32 = 0, LMF_F16, LMF_BF16, LMF_I32, LMF_I64, LMF_U8, LMF_U16, LMF_U32, LMF_F64, LMF_I8, LMF_U64, LMF_I16, LMF_BOOL } lmf_dtype;
size_t lmf_dtype_size(lmf_dtype d);
const char *lmf_dtype_name(lmf_dtype d); /* "F32", "BF16", ... as in the safetensors header */

/* parse a header dtype name; returns 0 and sets *out, or -1 when unknown */
int lmf_dtype_parse(const char *name, lmf_dtype *out);

/* fp16 (IEEE binary16) and bfloat16 <-> fp32. Widening is exact (subnormals, infinities and
 * NaN included); narrowing rounds to nearest even, overflows to infinity, keeps NaN a NaN. */
float lmf_f16_to_f32(uint16_t h);
float lmf_bf16_to_f32(uint16_t h);
uint16_t lmf_f32_to_f16(float f);
uint16_t lmf_f32_to_bf16(float f);

#define LMF_ST_MAX_DIMS 8
#define LMF_ST_MAX_HEADER ((uint64_t)100 * 1000 * 1000) /* bytes of JSON header accepted */

/* ---- reading ---- */
typedef struct lmf_st_tensor {
    const char *name;
    lmf_dtype dtype;
    int ndim;
    int64_t shape[LMF_ST_MAX_DIMS];
    uint64_t begin, end;       /* byte offsets relative to the data section */
} lmf_st_tensor;

typedef struct lmf_st_file lmf_st_file;

/* Open and validate a file: header length bounded (100 MB) and inside the file, JSON parsed,
 * every entry has a known dtype, shape product * dtype size == end - begin, offsets inside the
 * data section, no overlaps. Errors name the file and the problem. */
lmf_status lmf_st_open(const char *path, lmf_st_file **out);
/* Validate a header held in memory (for fuzzing): buf is the whole file, `what` names it in
 * messages. The result borrows buf: it must outlive f when tensors are read from f. */
lmf_status lmf_st_parse(const uint8_t *buf, size_t len, const char *what, lmf_st_file **out);
void lmf_st_close(lmf_st_file *f);
int lmf_st_count(const lmf_st_file *f);
const lmf_st_tensor *lmf_st_get(const lmf_st_file *f, int i);
const lmf_st_tensor *lmf_st_find(const lmf_st_file *f, const char *name); /* NULL if absent */
/* __metadata__ value for key, or NULL */
const char *lmf_st_metadata(const lmf_st_file *f, const char *key);
/* Element count of t (the product of its shape; 1 for a scalar). */
uint64_t lmf_st_numel(const lmf_st_tensor *t);
/* Read tensor t converted to fp32 into dst[n] (n must equal the tensor's element count);
 * F32, F16 and BF16 are converted, others fail with LMF_ERR_FORMAT. A wrong n is LMF_ERR_ARG. */
lmf_status lmf_st_read_f32(lmf_st_file *f, const lmf_st_tensor *t, float *dst, size_t n);
/* Raw bytes of t (little-endian, as stored) into dst[nbytes]; nbytes must be end - begin. */
lmf_status lmf_st_read_raw(lmf_st_file *f, const lmf_st_tensor *t, void *dst, size_t nbytes);

/* ---- writing ---- */
typedef struct lmf_st_out_tensor {
    const char *name;
    lmf_dtype dtype;
    int ndim;
    int64_t shape[LMF_ST_MAX_DIMS];
    const void *data;          /* numel * dtype size bytes */
} lmf_st_out_tensor;

/* Write tensors (in the given order, 8-byte aligned header) with __metadata__ key/value pairs
 * (meta_kv has 2*n_meta strings; the header lists __metadata__ first, keys in the given order,
 * and omits it when n_meta is 0). Written to PATH.tmp, fsynced, renamed onto path, directory
 * fsynced. Fails with LMF_ERR_ARG (nothing written) for duplicate or non-UTF-8 names, a name
 * "__metadata__", ndim outside 0..8, negative dims or a size that overflows. */
lmf_status lmf_st_write(const char *path, const lmf_st_out_tensor *t, int n, const char *const *meta_kv,
                        int n_meta);

#ifdef __cplusplus
}
#endif
#endif

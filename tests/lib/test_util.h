/* Helpers shared by the C tests: a temporary directory per test program, paths and small files
 * in it, the exit code that reports "skipped" to ctest, a data-parallel optimizer step. */
#ifndef LMF_TEST_UTIL_H
#define LMF_TEST_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "lmforge/ddp.h"
#include "lmforge/optim.h"
#include "lmforge/status.h"

/* ctest's SKIP_RETURN_CODE for every test (CMakeLists.txt): a test that cannot run on this
 * machine exits with it and is reported as skipped, never as passed. */
#define LMF_TEST_SKIP 77

/* cmocka group setup and teardown: a fresh directory under $TMPDIR (or /tmp), removed with
 * everything in it at the end. Given to cmocka_unit_test_setup_teardown instead, they give
 * every test its own empty directory. */
int lmf_test_tmpdir_setup(void **state);
int lmf_test_tmpdir_teardown(void **state);
/* the directory made by lmf_test_tmpdir_setup */
const char *lmf_test_dir(void);
/* buf[cap] = the test directory + "/" + the formatted name; returns buf */
char *lmf_test_path(char *buf, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* lmf_test_path(buf, cap, fmt, ...) made a new, empty directory: whatever was at that path is
 * removed first, so a test never sees another test's files (fails the test when it cannot);
 * returns buf */
char *lmf_test_fresh_dir(char *buf, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* write text / len bytes to path, replacing the file (fails the test when it cannot) */
void lmf_test_write_text(const char *path, const char *text);
void lmf_test_write_bytes(const char *path, const void *data, size_t len);
/* the whole file at path, NUL-terminated, its length in *len unless len is NULL; malloc'd
 * (fails the test when the file cannot be read) */
char *lmf_test_read_file(const char *path, size_t *len);
/* dir[cap] = $LMF_SHARED_DIR/sub (the reference data beside the source tree); 1 when it
 * holds every file of the NULL-terminated list, 0 otherwise (the test then skips) */
int lmf_test_shared_dir(char *dir, size_t cap, const char *sub, const char *const *files);
/* remove path and everything under it; 0 on success */
int lmf_test_remove_tree(const char *path);

/* len bytes of text-like bytes (words, spaces, newlines, a few multi-byte UTF-8 characters),
 * deterministic in seed; malloc'd, NUL-terminated */
char *lmf_test_pseudo_text(size_t len, uint64_t seed);

/* Random test inputs: one xorshift generator per test program, reseeded by lmf_test_rng_seed
 * so that each test case draws the same values whatever ran before it. */
void lmf_test_rng_seed(uint64_t seed);
double lmf_test_uniform(void);            /* in [0, 1) */
float lmf_test_sym(float a);              /* in [-a, a) */
/* malloc'd n values from lmf_test_sym(a) / a copy of f[n] (fail the test when out of memory) */
float *lmf_test_fbuf(size_t n, float a);
float *lmf_test_fdup(const float *f, size_t n);
/* malloc'd document starts [B,T] (lmf_doc_starts) of rows whose positions eot[0..n) + b (those
 * below T) hold the end-of-text token: row b's documents end one position later than row
 * b-1's */
int *lmf_test_doc_starts(int B, int T, const int *eot, int n);
/* adds amp * (uniform - 0.5) (an rng seeded with seed) to every real parameter of the model's
 * own block (biases and norms too; not the padded vocabulary rows), so no gradient is trivially
 * zero */
typedef struct lmf_gpt lmf_gpt;
void lmf_test_perturb_params(lmf_gpt *m, uint64_t seed, float amp);

/* Float outputs against an expected result: passes when max_i |got_i - want_i| <= tol *
 * max(floor, max_i |want_i|) (a NaN difference fails); otherwise fails the test naming `what`
 * and the worst element. verbose: print the worst relative difference. */
void lmf_test_close_rel(const char *what, const float *got, const float *want, size_t n,
                        double tol, double floor, int verbose);

/* fail the test with lmf_last_error() when s is not LMF_OK; `what` names the call */
void lmf_test_ok(lmf_status s, const char *what);

/* One optimizer step of a data-parallel engine: wait for the reductions, then the optimizer
 * over the engine's range (lmf_ddp_optimizer_create). */
lmf_status lmf_test_dp_step(lmf_ddp *d, lmf_optimizer *o, float lr, int t, float *grad_norm);

#endif

/* Small file-system helpers: directories, whole-file reads, atomic writes, path joins. */
#ifndef LMFORGE_FSUTIL_H
#define LMFORGE_FSUTIL_H

#include <stddef.h>
#include "lmforge/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Create directory `path` and any missing parents (mode 0777 before umask). An existing
 * directory is success; an existing non-directory fails with LMF_ERR_IO. */
lmf_status lmf_mkdir_p(const char *path);

/* Write data[len] to `path` atomically: written to "path.tmp", fsynced, renamed onto path,
 * then the containing directory is fsynced. On failure the temporary file is removed and
 * an existing file at path is left untouched. */
lmf_status lmf_write_file_atomic(const char *path, const void *data, size_t len);

/* Read the whole of `path` into a new buffer (*buf, free() it) of *len bytes, followed by a
 * NUL byte not counted in *len. Fails with LMF_ERR_IO when the file cannot be read or is
 * larger than max_len bytes; *buf is NULL on failure. */
lmf_status lmf_read_file(const char *path, char **buf, size_t *len, size_t max_len);

/* Join a and b with one '/' into buf[cap] (no '/' added when a is empty or already ends in
 * one; b is used alone when it is absolute). Fails with LMF_ERR_ARG if it does not fit. */
lmf_status lmf_path_join(char *buf, size_t cap, const char *a, const char *b);

/* 1 if path exists (any kind of file), else 0. */
int lmf_file_exists(const char *path);

/* fsync the directory holding `path` (a file path), so that a rename into it is durable. */
lmf_status lmf_fsync_parent_dir(const char *path);

#ifdef __cplusplus
}
#endif
#endif

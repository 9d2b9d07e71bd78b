/* File-system helpers: directories, whole-file reads, full writes and reads, atomic writes, paths. */
#ifndef LMFORGE_FSUTIL_H
#define LMFORGE_FSUTIL_H

#include <stddef.h>
#include <stdint.h>
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

/* Open `path` for reading, refusing anything but a regular file by name: a FIFO, a directory,
 * a device or a socket fails with LMF_ERR_IO ("PATH: is a FIFO (named pipe), not a regular
 * file; ...") at once, instead of blocking on a FIFO without a writer. The open does not
 * block; the returned descriptor (close it) is in blocking mode. `what` names the file in
 * messages ("token file", "config"; NULL: just the path). */
lmf_status lmf_open_regular(const char *path, const char *what, int *fd);
/* The kind of file mode `mode` (st_mode) is, in words: "a FIFO (named pipe)", "a directory",
 * ..., "a regular file". */
const char *lmf_file_kind(unsigned mode);

/* The identity of a regular file's contents, to tell whether two copies (say, the data on two
 * machines) hold the same: *size and an XXH3 hash of the size and of up to 64 pieces of 64 KiB
 * evenly spread over the file, first and last included (the whole file up to 4 MiB). */
lmf_status lmf_file_fingerprint(const char *path, uint64_t *size, uint64_t *hash);
/* Remove path and, when it is a directory, everything under it (symbolic links are removed,
 * not followed). Best effort: what cannot be removed stays. */
void lmf_remove_tree(const char *path);

/* 1 if path exists (any kind of file), else 0. */
int lmf_file_exists(const char *path);

/* fsync the directory holding `path` (a file path), so that a rename into it is durable. */
lmf_status lmf_fsync_parent_dir(const char *path);

/* Write all len bytes to fd, retrying short writes and EINTR; path names the file in errors
 * (a full disk or a file size limit is reported as such). */
lmf_status lmf_write_all(int fd, const void *data, size_t len, const char *path);
/* Read exactly len bytes at offset off; LMF_ERR_FORMAT when the file ends first. */
lmf_status lmf_pread_all(int fd, void *dst, size_t len, uint64_t off, const char *path);
/* tmp[cap] = path + ".tmp" */
lmf_status lmf_tmp_path(char *tmp, size_t cap, const char *path);
/* fsync and close fd (open on tmp), rename tmp onto path, fsync the directory. On failure tmp
 * is removed. fd is closed in every case. */
lmf_status lmf_commit_tmp(int fd, const char *tmp, const char *path);
/* A message for errno e that says what to do about the usual ones (a full disk, a file size
 * limit, a quota). */
const char *lmf_io_reason(int e);

#ifdef __cplusplus
}
#endif
#endif

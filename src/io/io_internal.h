/* Internal I/O helpers shared by src/io and src/data: full writes/reads and tmp-file commits. */
#ifndef LMFORGE_IO_INTERNAL_H
#define LMFORGE_IO_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include "lmforge/status.h"

/* write all len bytes to fd (retrying short writes and EINTR); path names it in errors */
lmf_status lmf_io_write_all(int fd, const void *data, size_t len, const char *path);
/* read exactly len bytes at offset off; LMF_ERR_FORMAT on a premature end of file */
lmf_status lmf_io_pread_all(int fd, void *dst, size_t len, uint64_t off, const char *path);
/* tmp = path + ".tmp" into tmp[cap] */
lmf_status lmf_io_tmp_path(char *tmp, size_t cap, const char *path);
/* fsync and close fd (open on tmp), rename tmp onto path, fsync the directory. On failure
 * tmp is removed. fd is closed in every case. */
lmf_status lmf_io_commit_tmp(int fd, const char *tmp, const char *path);

#endif

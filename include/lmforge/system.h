/* The process and the machine: a monotonic clock, the peak resident memory and the memory
 * the process can still take. */
#ifndef LMFORGE_SYSTEM_H
#define LMFORGE_SYSTEM_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Seconds from a monotonic clock (differences only). */
double lmf_now_s(void);

/* Bytes of memory this process can still take, and which limit binds (its name into
 * what[cap], e.g. "MemAvailable of /proc/meminfo"): the smallest of the machine's available
 * memory, the cgroup's limit less its usage (v2 memory.max, v1 memory.limit_in_bytes) and
 * RLIMIT_AS less the address space in use. 0 when none can be read. */
unsigned long long lmf_memory_available(char *what, size_t cap);

/* Peak resident set size of this process so far, in bytes (getrusage), 0 when unknown. */
size_t lmf_peak_rss_bytes(void);

#ifdef __cplusplus
}
#endif
#endif

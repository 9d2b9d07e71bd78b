/* The process and the machine: a monotonic clock, large zeroed arrays, the peak resident
 * memory and the memory the process can still take. */
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

/* n x size zeroed bytes for a large array (weights, gradients, optimizer state,
 * activations); give it back with lmf_free_big. From 4 MiB up the array is mapped on its own,
 * aligned to 2 MiB and asked for transparent huge pages (madvise MADV_HUGEPAGE, honoured when
 * /sys/kernel/mm/transparent_hugepage/enabled is "always" or "madvise"): one TLB entry then
 * maps 512 times as much, which streaming kernels such as AdamW feel most. Pages are taken on
 * first touch, as calloc's are. NULL when out of memory or when n x size overflows. */
void *lmf_calloc_big(size_t n, size_t size);
/* Frees what lmf_calloc_big returned (NULL is fine). */
void lmf_free_big(void *p);

/* Peak resident set size of this process so far, in bytes (getrusage), 0 when unknown. */
size_t lmf_peak_rss_bytes(void);

#ifdef __cplusplus
}
#endif
#endif

/* The process and the machine: a monotonic clock and the peak resident memory. */
#ifndef LMFORGE_SYSTEM_H
#define LMFORGE_SYSTEM_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Seconds from a monotonic clock (differences only). */
double lmf_now_s(void);

/* Peak resident set size of this process so far, in bytes (getrusage), 0 when unknown. */
size_t lmf_peak_rss_bytes(void);

#ifdef __cplusplus
}
#endif
#endif

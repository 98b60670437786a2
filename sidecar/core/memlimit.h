/*
 * memlimit.h -- a worker's memory, as memory_limit sees it: its resident
 * set between jobs, and a hard address-space cap during a job.
 */

#ifndef OFFLOAD_MEMLIMIT_H
#define OFFLOAD_MEMLIMIT_H

#include <sys/types.h>

/* The process's resident set size in bytes, or -1. */
long long offload_rss_bytes(void);

/* Another process's (0: this one's), or -1. */
long long offload_rss_bytes_of(pid_t pid);

/* Caps the address space at its current size plus `growth` bytes
 * (RLIMIT_AS), so a job that allocates past it gets NULL from malloc
 * instead of taking the machine's memory.  Returns 0, 1 when the build
 * cannot have a cap (AddressSanitizer reserves terabytes of address
 * space), or -1 with errno set. */
int offload_memlimit_cap(long long growth);

#endif /* OFFLOAD_MEMLIMIT_H */

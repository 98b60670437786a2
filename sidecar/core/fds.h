/*
 * fds.h -- how many file descriptors a process holds, and how many it may:
 * a handler that leaks them fails every job once they run out (EMFILE),
 * so a worker counts its own after jobs and leaves near its limit, and
 * the supervisor shows each worker's count beside its memory.
 */

#ifndef OFFLOAD_FDS_H
#define OFFLOAD_FDS_H

#include <sys/types.h>

/* The descriptors pid (0: this process) holds, its entries in
 * /proc/<pid>/fd; -1 with errno set when they cannot be read (the process
 * is gone; EMFILE: this process has none left to read them with). */
int offload_fds_count(pid_t pid);

/* This process's soft RLIMIT_NOFILE, or 0 when it has none. */
long offload_fds_limit(void);

#endif /* OFFLOAD_FDS_H */

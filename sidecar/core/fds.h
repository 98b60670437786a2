/*
 * fds.h -- how many file descriptors a process holds, and how many it may:
 * what a worker watches for a handler that leaks them (worker/fd_watch.c).
 */

#ifndef OFFLOAD_FDS_H
#define OFFLOAD_FDS_H

#include <sys/types.h>

/* The descriptors pid (0: this process) holds, its entries in
 * /proc/<pid>/fd; -1 with errno set when they cannot be read (the process
 * is gone; EMFILE: this process has none left to read them with). */
long offload_fds_count(pid_t pid);

/* The soft RLIMIT_NOFILE of pid (0: this process), or 0 when it has none
 * or it cannot be read. */
long offload_fds_limit(pid_t pid);

#endif /* OFFLOAD_FDS_H */

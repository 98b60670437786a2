/*
 * fd_watch.h -- a worker's watch for a handler that leaks file
 * descriptors (fd_watch.c).
 */

#ifndef OFFLOAD_FD_WATCH_H
#define OFFLOAD_FD_WATCH_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* One process's count: the worker's own, or its exec handler process's. */
typedef struct {
    long     base;          /* its count after its first job, -1 before */
    long     count;         /* its last count */
} offload_fd_meter_t;

typedef struct {
    offload_fd_meter_t  own;
    offload_fd_meter_t  child;
    long                total;      /* the last count, both processes */
    long                jobs;       /* jobs since it */
    long                due;        /* after how many jobs the next is */
    int64_t             counted_us; /* its time, monotonic */
    int                 off;        /* /proc could not be read: said */
} offload_fd_watch_t;

/* Starts the watch: the worker's count now (before its handler's). */
void offload_fd_watch_init(offload_fd_watch_t *fw);

/* After a job (ok: it succeeded), with the exec handler's process or 0.
 * Returns 1 when the worker should recycle, why (a count and a limit) in
 * why; 0 when not; -1 with errno set when this process's descriptors
 * cannot be counted (the watch is off from then on). */
int offload_fd_watch_job(offload_fd_watch_t *fw, pid_t child, int ok,
    char *why, size_t size);

/* Both processes' count now, for status, when no job's count was made
 * within the last second (an idle worker, an exec handler's long job);
 * -1 when one was, or they cannot be counted.  Judges nothing. */
long offload_fd_watch_now(const offload_fd_watch_t *fw, pid_t child);

#endif /* OFFLOAD_FD_WATCH_H */

/*
 * fd_watch.c -- a worker's watch for a handler that leaks file
 * descriptors (a file opened and never closed).  Such a handler fails
 * every job once they run out (EMFILE), and a new process is the only
 * cure, so the worker recycles itself first, between jobs.
 *
 * A process leaks when its count is at 90% of its limit and has grown,
 * since its first job, by half the room it had then: a handler that holds
 * many descriptors by design (a pool of 950 sockets under a limit of
 * 1024) is no leak, and its worker is not replaced after every job.  Each
 * process is judged by its own limit (a Go or Java exec handler raises its
 * soft one).
 *
 * A count is a directory read, so it is made after a failed job, once a
 * second, and, while the count grows, again after half the jobs its pace
 * leaves before the threshold: a leak at a steady pace is counted before
 * it runs out.  One that starts suddenly, faster than the limit a second,
 * is counted at its first failed job.
 */

#include <errno.h>
#include <limits.h>
#include <stdio.h>

#include "clock.h"
#include "fd_watch.h"
#include "fds.h"

#define FD_WATCH_EVERY_US  1000000


/* The count at which a process leaks (see above). */
static long
meter_threshold(const offload_fd_meter_t *m, long limit)
{
    long  mark = limit * 9 / 10, grown = m->base + (limit - m->base) / 2;

    return grown > mark ? grown : mark;
}


/* Counts pid's descriptors into m, and *left: how many more it may open
 * before the threshold (0 or less: it leaks; LONG_MAX: it has no limit).
 * Returns 0, or -1 with errno set when they cannot be read. */
static int
meter_count(offload_fd_meter_t *m, pid_t pid, long *limit, long *left)
{
    long  n;

    *limit = offload_fds_limit(pid);
    n = offload_fds_count(pid);

    if (n == -1) {
        if (pid != 0 || errno != EMFILE) {
            return -1;
        }
        n = *limit;                 /* none left to count them with */
    }

    m->count = n;
    if (m->base < 0) {
        m->base = n;
    }

    *left = *limit == 0 ? LONG_MAX : meter_threshold(m, *limit) - n;
    return 0;
}


void
offload_fd_watch_init(offload_fd_watch_t *fw)
{
    fw->own.base = -1;
    fw->child.base = -1;
    fw->total = offload_fds_count(0);
    fw->jobs = 0;
    fw->due = 1;                    /* how fast it grows: from the first */
    fw->counted_us = offload_mono_us();
    fw->off = 0;
}


int
offload_fd_watch_job(offload_fd_watch_t *fw, pid_t child, int ok,
    char *why, size_t size)
{
    long     left, child_left, limit, total, grown;
    int64_t  now_us = offload_mono_us();

    fw->jobs++;

    if (fw->off
        || (ok && fw->jobs < fw->due
            && now_us - fw->counted_us < FD_WATCH_EVERY_US))
    {
        return 0;
    }

    if (meter_count(&fw->own, 0, &limit, &left) != 0) {
        fw->off = 1;
        return -1;
    }

    if (left <= 0) {
        snprintf(why, size, "%ld file descriptors open, of a limit of %ld",
                 fw->own.count, limit);
        return 1;
    }

    total = fw->own.count;

    /* a process that left, or one this user may not read: not judged */
    if (child > 0
        && meter_count(&fw->child, child, &limit, &child_left) == 0)
    {
        if (child_left <= 0) {
            snprintf(why, size, "%ld file descriptors open in its handler's "
                     "process, of a limit of %ld", fw->child.count, limit);
            return 1;
        }

        if (child_left < left) {
            left = child_left;
        }
        total += fw->child.count;
    }

    /* either process's leak grows the sum */
    grown = total - fw->total;
    fw->due = grown > 0 && left != LONG_MAX ? left * fw->jobs / grown / 2
                                            : LONG_MAX;
    fw->total = total;
    fw->jobs = 0;
    fw->counted_us = now_us;
    return 0;
}


long
offload_fd_watch_now(const offload_fd_watch_t *fw, pid_t child)
{
    long  own, theirs;

    if (fw->off || offload_mono_us() - fw->counted_us < FD_WATCH_EVERY_US) {
        return -1;
    }

    own = offload_fds_count(0);
    theirs = child > 0 ? offload_fds_count(child) : 0;

    return own == -1 ? -1 : own + (theirs > 0 ? theirs : 0);
}

/*
 * fds.c -- counts a process's open file descriptors by its /proc entry,
 * and reads its limit (fds.h).  A count is a directory read: callers count
 * after jobs, not per line.
 */

#include <dirent.h>
#include <stdio.h>
#include <sys/resource.h>

#include "fds.h"


long
offload_fds_count(pid_t pid)
{
    long            n = 0;
    DIR            *dir;
    char            path[32];
    struct dirent  *e;

    if (pid == 0) {
        snprintf(path, sizeof(path), "/proc/self/fd");
    } else {
        snprintf(path, sizeof(path), "/proc/%d/fd", (int) pid);
    }

    dir = opendir(path);
    if (dir == NULL) {
        return -1;
    }

    while ((e = readdir(dir)) != NULL) {
        if (e->d_name[0] != '.') {
            n++;
        }
    }

    closedir(dir);

    /* the directory read was one of this process's own */
    return pid == 0 ? n - 1 : n;
}


long
offload_fds_limit(pid_t pid)
{
    struct rlimit  rl;

    /* another process's own: a Go or Java handler raises its soft limit */
    if (prlimit(pid, RLIMIT_NOFILE, NULL, &rl) != 0
        || rl.rlim_cur == RLIM_INFINITY)
    {
        return 0;
    }

    return (long) rl.rlim_cur;
}

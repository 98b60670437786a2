/*
 * memlimit.c -- reads the worker's memory use from /proc/self/statm (one
 * small read between jobs, in the worker, never in the supervisor's loop),
 * and its exec handler process's from /proc/<pid>/statm, and sets
 * RLIMIT_AS.
 */

#include <stdio.h>
#include <sys/resource.h>
#include <unistd.h>

#include "memlimit.h"


/* statm fields 1 and 2: total program size and resident set, in pages. */
static int
read_statm(pid_t pid, long long *size, long long *resident)
{
    int    n;
    char   path[64];
    FILE  *fp;

    if (pid == 0) {
        snprintf(path, sizeof(path), "/proc/self/statm");
    } else {
        snprintf(path, sizeof(path), "/proc/%d/statm", (int) pid);
    }

    fp = fopen(path, "r");
    if (fp == NULL) {
        return -1;
    }

    n = fscanf(fp, "%lld %lld", size, resident);
    fclose(fp);

    return n == 2 ? 0 : -1;
}


long long
offload_rss_bytes(void)
{
    return offload_rss_bytes_of(0);
}


long long
offload_rss_bytes_of(pid_t pid)
{
    long long  size, resident;

    if (read_statm(pid, &size, &resident) != 0) {
        return -1;
    }

    return resident * sysconf(_SC_PAGESIZE);
}


int
offload_memlimit_cap(long long growth)
{
#if defined(__SANITIZE_ADDRESS__)
    (void) growth;
    return 1;
#else
    long long      size, resident;
    struct rlimit  rl;

    if (read_statm(0, &size, &resident) != 0) {
        return -1;
    }

    rl.rlim_cur = (rlim_t) (size * sysconf(_SC_PAGESIZE) + growth);
    rl.rlim_max = rl.rlim_cur;

    return setrlimit(RLIMIT_AS, &rl);
#endif
}

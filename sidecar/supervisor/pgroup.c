/*
 * pgroup.c -- a worker's process group (pgroup.h), so that nothing a
 * handler starts outlives its worker: systemd's KillMode=control-group,
 * without cgroups.
 *
 * PR_SET_PDEATHSIG kills a worker's exec process with it, but not what
 * that process or a C handler starts (a subprocess, system(), a shell's
 * background job): those run on, reparented to init, after their job has
 * failed.  Each worker leads its own group, which they inherit, so the
 * supervisor's every SIGKILL of a worker (its job's timeout, a cancel, the
 * stop deadline) goes to the group; and once it has reaped a worker,
 * however it ended (a crash, an exit, a graceful stop), it SIGKILLs the
 * group once more for what was left there.  That last kill does not reach
 * a stranger: Linux gives no new process the id of a group that still has
 * members, and an empty group answers ESRCH, unless in the microseconds
 * since the reap its pid went to a new process that made itself a group
 * leader (pids are handed out in turn: a full lap of pid_max).  SIGTERM,
 * a graceful stop, goes to the worker alone: it finishes its job first.
 *
 * Out of reach: a process that leaves the group itself (setsid, setpgid),
 * and, when the supervisor itself is SIGKILLed, what the workers started
 * (they and their exec processes die by PR_SET_PDEATHSIG): systemd's
 * KillMode (conf/offload-sidecar.service) covers both.
 */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "pgroup.h"


int
offload_slot_kill(offload_slot_t *slot)
{
    /* kill(-0) is the caller's own group: the supervisor's */
    if (slot->pid <= 0) {
        errno = ESRCH;
        return -1;
    }

    if (kill(-slot->pid, SIGKILL) != 0) {
        return -1;
    }

    slot->killed = 1;
    return 0;
}


/*
 * How many processes of group pgid still run, but the worker's exec
 * process, read from /proc.  Neither of those two is the handler's
 * leftover: the exec process dies with the worker (PR_SET_PDEATHSIG) at
 * this very moment, and a zombie only waits for its parent, here maybe an
 * init that never reaps (a container's).  Read only at the reap of a
 * worker the supervisor did not kill, in a group that is not empty.
 */
static int
group_running(pid_t pgid, pid_t except)
{
    int             fd, n = 0, ppid, pgrp;
    char            path[64], stat[512], state, *end;
    long            pid;
    DIR            *proc;
    ssize_t         len;
    struct dirent  *de;

    proc = opendir("/proc");
    if (proc == NULL) {
        return 0;
    }

    while ((de = readdir(proc)) != NULL) {
        pid = strtol(de->d_name, &end, 10);
        if (*end != '\0' || pid <= 0 || pid == except) {
            continue;
        }

        snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd == -1) {
            continue;
        }

        len = read(fd, stat, sizeof(stat) - 1);
        close(fd);
        if (len <= 0) {
            continue;
        }
        stat[len] = '\0';

        /* "pid (comm) state ppid pgrp ...": comm may hold anything */
        end = strrchr(stat, ')');
        if (end != NULL
            && sscanf(end + 1, " %c %d %d", &state, &ppid, &pgrp) == 3
            && pgrp == pgid && state != 'Z' && state != 'X')
        {
            n++;
        }
    }

    closedir(proc);
    return n;
}


void
offload_pgroup_sweep(offload_slot_t *slot, pid_t pid)
{
    int  left;

    if (kill(-pid, 0) != 0) {
        return;                         /* an empty group */
    }

    /* After our own SIGKILL of the group, its members may still be on
     * their way out: nothing was left behind by the handler then. */
    left = slot->killed ? 0 : group_running(pid, slot->sb->child_pid);

    (void) kill(-pid, SIGKILL);

    if (left > 0) {
        log_notice("worker %s:%d: pid %d left %d process%s behind: killed",
                   slot->pool->queue->name, slot->index, (int) pid, left,
                   left == 1 ? "" : "es");
    }
}

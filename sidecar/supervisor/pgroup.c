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

#include <errno.h>
#include <signal.h>

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


void
offload_pgroup_sweep(offload_slot_t *slot, pid_t pid)
{
    /* After our own SIGKILL of the group, its members may still be on
     * their way out: nothing was left behind by the handler then. */
    if (kill(-pid, SIGKILL) == 0 && !slot->killed) {
        log_notice("worker %s:%d: pid %d left processes behind: killed",
                   slot->pool->queue->name, slot->index, (int) pid);
    }
}

/*
 * running.c -- tells Redis which job each busy worker of this node runs
 * (running.h), and that it runs none once idle.
 *
 * The supervisor knows it from the scoreboard, and fails that job's
 * attempt when its worker dies (reclaim.c).  When the whole node dies
 * with it (the sidecar SIGKILLed, the OOM killer, a host's reboot) nobody
 * does: the slot's next worker, under the same consumer name, finds in
 * its pending history the job that was running, those that had finished
 * in the same slice of work without being completed yet, and those only
 * read.  Its order does not tell them apart; this mark does (worker.c).
 * Without it, a job that kills its node ran again at the same attempt at
 * every restart: forever, and a one-attempt queue's job twice.
 *
 * One HSET a round (0.1 s) per slot whose job changed, one HDEL when it
 * turned idle, nothing while it stays so: at most 10 a second a slot,
 * whatever the job rate.  The mark lags by a round: a job that kills its
 * node before the round after its start is not marked, and runs again at
 * its attempt; one that ended in the round before the death (its
 * completion lost with the node) may still be, and fails an attempt as
 * if it had been running: its answer was lost either way.  The worker
 * sends the completions of its slice of work as soon as a marked job
 * ends, so that a job started after it in the same slice does not leave
 * the mark on a finished job while it runs.
 */

#include <stdio.h>
#include <string.h>

#include "running.h"
#include "supervisor.h"


/* The entry the slot's worker runs now, copied whole: 0, or -1 when it
 * is not busy, 1 when it moved on to another job while it was copied. */
static int
running_entry(const offload_sb_slot_t *sb, char *buf, size_t size,
    uint64_t *seq)
{
    if (offload_sb_state(sb) != OFFLOAD_SB_BUSY) {
        return -1;
    }

    *seq = __atomic_load_n(&sb->job_seq, __ATOMIC_ACQUIRE);
    snprintf(buf, size, "%s", sb->entry_id);
    __atomic_thread_fence(__ATOMIC_ACQUIRE);

    if (offload_sb_state(sb) != OFFLOAD_SB_BUSY
        || __atomic_load_n(&sb->job_seq, __ATOMIC_RELAXED) != *seq)
    {
        return 1;
    }

    return 0;
}


void
offload_running_round(offload_supervisor_t *sup)
{
    int                    rc;
    char                   key[OFFLOAD_KEY_MAX];
    char                   consumer[OFFLOAD_CONSUMER_MAX];
    char                   entry[OFFLOAD_SB_ENTRY_ID_MAX];
    uint64_t               seq = 0;
    offload_slot_t        *slot;
    offload_redis_conn_t  *conn;
    offload_slot_iter_t    it = { 0, 0, 0 };

    /* a node that does not hold its name marks nothing under it */
    if (!sup->leased) {
        return;
    }

    while ((slot = offload_slot_next(sup, &it)) != NULL) {
        if (slot->pid == 0) {
            continue;
        }

        rc = running_entry(slot->sb, entry, sizeof(entry), &seq);

        if (rc == 1
            || (rc == 0 && slot->marked_seq == seq)
            || (rc == -1 && slot->marked_seq == 0))
        {
            continue;
        }

        conn = offload_pool_conn(slot->pool);
        if (!conn->ready) {
            continue;
        }

        snprintf(key, sizeof(key), OFFLOAD_RUNNING_FMT,
                 slot->pool->queue->name);
        snprintf(consumer, sizeof(consumer), OFFLOAD_CONSUMER_FMT,
                 sup->conf->node_name, slot->pool->queue->name, slot->index);

        /* the worker sends what its slice finished as soon as this job
         * ends, not after the next one (worker.c, work_cb); a job that
         * ended before it could see that is not marked: the next round
         * looks again */
        if (rc == 0) {
            __atomic_store_n(&slot->sb->marked_seq, seq, __ATOMIC_SEQ_CST);

            if (offload_sb_state(slot->sb) != OFFLOAD_SB_BUSY
                || __atomic_load_n(&slot->sb->job_seq, __ATOMIC_SEQ_CST)
                   != seq)
            {
                continue;
            }
        }

        /* idle: the job it ran ended, whether or not its completion got
         * through (held, refused): not the one it runs at its death */
        if ((rc == 0
             ? offload_redis_command(conn, NULL, NULL, "HSET %s %s %s", key,
                                     consumer, entry)
             : offload_redis_command(conn, NULL, NULL, "HDEL %s %s", key,
                                     consumer))
            == REDIS_OK)
        {
            slot->marked_seq = (rc == 0) ? seq : 0;
        }
    }
}

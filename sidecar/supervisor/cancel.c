/*
 * cancel.c -- stopping the worker of a running job that was cancelled
 * (cancel.h).
 *
 * The jobs endpoint's script marks the job's record cancelled, wakes its
 * long polls and pushes "<queue> <slot> <job id>" on the list of the node
 * whose worker runs it (the start script wrote node and slot into the
 * record): offload:{<queue>}:cancel:<node>, in the queue's slot.  The
 * supervisor pops its list of each queue, on that queue's Redis, while
 * any of its workers is busy (a list, not pub/sub: the sidecar has no
 * subscriber connection, and a round is one small command per queue) and
 * kills the worker, with its process group (pgroup.c), if the scoreboard
 * says it still runs that job.
 * worker_exited() then treats the death as asked for: no crash, no retry,
 * no dead letter; the worker's entries go back to the queue unchanged and
 * the start script drops the cancelled one.
 *
 * The record says running from the start script on, the scoreboard only
 * once the worker has the job's body and calls its handler: a request
 * popped in between finds the job not running yet.  It is kept and looked
 * at again every round for OFFLOAD_CANCEL_GRACE_S, not dropped.
 */

#include <stdio.h>
#include <string.h>

#include "cancel.h"
#include "log.h"
#include "pgroup.h"
#include "supervisor.h"


/* requests whose job did not run yet when they came, looked at again */
typedef struct {
    char        line[OFFLOAD_QUEUE_NAME_MAX + OFFLOAD_SB_JOB_ID_MAX + 16];
    ev_tstamp   until;
} cancel_pending_t;

static cancel_pending_t  pending[OFFLOAD_CANCEL_BATCH];
static size_t            npending;


/* Kills the worker of slot <slot> of <queue> if it runs <job id>.
 * Returns 1 when done with the request, 0 when the slot has a worker that
 * does not run the job (yet). */
static int
stop_job(offload_supervisor_t *sup, const char *line)
{
    int                   index, live = 0;
    char                  queue[OFFLOAD_QUEUE_NAME_MAX + 1];
    char                  job_id[OFFLOAD_SB_JOB_ID_MAX];
    offload_slot_t       *slot;
    offload_slot_iter_t   it = { 0, 0, 0 };

    if (sscanf(line, "%64s %d %128s", queue, &index, job_id) != 3) {
        log_warn("cancel: unexpected request \"%s\"", line);
        return 1;
    }

    while ((slot = offload_slot_next(sup, &it)) != NULL) {
        if (slot->index != index || slot->pid == 0
            || strcmp(slot->pool->queue->name, queue) != 0)
        {
            continue;
        }

        live = 1;

        if (offload_sb_state(slot->sb) != OFFLOAD_SB_BUSY
            || strcmp(slot->sb->job_id, job_id) != 0)
        {
            continue;
        }

        log_notice("worker %s:%d: job %s cancelled while it ran, killing "
                   "pid %d", queue, index, job_id, (int) slot->pid);

        if (offload_slot_kill(slot) == 0) {
            slot->cancelled = 1;
        }

        return 1;
    }

    if (live) {
        return 0;
    }

    log_info("cancel: job %s of %s:%d no longer runs here", job_id, queue,
             index);
    return 1;
}


/* A request that found its job not running: kept for the next rounds. */
static void
keep_pending(offload_supervisor_t *sup, const char *line)
{
    if (npending == OFFLOAD_CANCEL_BATCH) {
        log_warn("cancel: too many cancels waiting, \"%s\" dropped", line);
        return;
    }

    strcpy(pending[npending].line, line);
    pending[npending].until = ev_now(sup->loop) + OFFLOAD_CANCEL_GRACE_S;
    npending++;
}


/* The kept requests again: done, given up after the grace, or kept. */
static void
retry_pending(offload_supervisor_t *sup)
{
    size_t  i = 0;

    while (i < npending) {
        if (stop_job(sup, pending[i].line) == 0
            && pending[i].until > ev_now(sup->loop))
        {
            i++;
            continue;
        }

        pending[i] = pending[--npending];
    }
}


static void
popped_cb(redisAsyncContext *ac, void *r, void *privdata)
{
    size_t                 i;
    char                   line[sizeof(pending[0].line)];
    redisReply            *reply = r, *e;
    offload_supervisor_t  *sup = privdata;

    (void) ac;

    if (reply == NULL) {
        return;
    }

    if (reply->type == REDIS_REPLY_ERROR) {
        log_error("cancel: LPOP failed: %s", reply->str);
        return;
    }

    if (reply->type != REDIS_REPLY_ARRAY) {
        return;                 /* nil: nothing to stop */
    }

    for (i = 0; i < reply->elements; i++) {
        e = reply->element[i];

        if (e->type != REDIS_REPLY_STRING || e->len >= sizeof(line)) {
            continue;
        }

        memcpy(line, e->str, e->len);
        line[e->len] = '\0';

        if (stop_job(sup, line) == 0) {
            keep_pending(sup, line);
        }
    }
}


void
offload_cancel_round(offload_supervisor_t *sup)
{
    size_t                 p;
    char                   key[OFFLOAD_KEY_MAX];
    offload_slot_t        *slot;
    offload_slot_iter_t    it = { 0, 0, 0 };
    offload_redis_conn_t  *conn;

    if (sup->stopping) {
        return;
    }

    retry_pending(sup);

    while ((slot = offload_slot_next(sup, &it)) != NULL) {
        if (slot->pid != 0 && offload_sb_state(slot->sb) == OFFLOAD_SB_BUSY) {
            break;
        }
    }

    if (slot == NULL) {
        return;                 /* nothing runs here that could be stopped */
    }

    /* Each queue's list is in the queue's slot, on its Redis (a cluster's
     * master of that slot). */
    for (p = 0; p < sup->npools; p++) {
        conn = offload_pool_conn(&sup->pools[p]);
        if (!conn->ready) {
            continue;
        }

        snprintf(key, sizeof(key), OFFLOAD_CANCEL_FMT,
                 sup->pools[p].queue->name, sup->conf->node_name);
        offload_redis_command(conn, popped_cb, sup, "LPOP %s %d", key,
                              OFFLOAD_CANCEL_BATCH);
    }
}

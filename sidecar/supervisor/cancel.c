/*
 * cancel.c -- stopping the worker of a running job that was cancelled
 * (cancel.h).
 *
 * The jobs endpoint's script marks the job's record cancelled, wakes its
 * long polls and pushes "<queue> <slot> <job id>" on the list of the node
 * whose worker runs it (the start script wrote node and slot into the
 * record).  The supervisor pops that list while any of its workers is busy
 * (a list, not pub/sub: the sidecar has no subscriber connection, and a
 * round is one small command) and kills the worker if the scoreboard says
 * it still runs that job.  worker_exited() then treats the death as asked
 * for: no crash, no retry, no dead letter; the worker's entries go back to
 * the queue unchanged and the start script drops the cancelled one.
 */

#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cancel.h"
#include "log.h"
#include "supervisor.h"


/* Kills the worker of slot <slot> of <queue> if it runs <job id>. */
static void
stop_job(offload_supervisor_t *sup, const char *msg, size_t len)
{
    int                   index;
    char                  queue[OFFLOAD_QUEUE_NAME_MAX + 1];
    char                  job_id[OFFLOAD_SB_JOB_ID_MAX];
    char                  line[OFFLOAD_QUEUE_NAME_MAX + OFFLOAD_SB_JOB_ID_MAX
                               + 16];
    offload_slot_t       *slot;
    offload_slot_iter_t   it = { 0, 0, 0 };

    if (len >= sizeof(line)) {
        return;
    }

    memcpy(line, msg, len);
    line[len] = '\0';

    if (sscanf(line, "%64s %d %128s", queue, &index, job_id) != 3) {
        log_warn("cancel: unexpected request \"%s\"", line);
        return;
    }

    while ((slot = offload_slot_next(sup, &it)) != NULL) {
        if (slot->index != index || slot->pid == 0
            || strcmp(slot->pool->queue->name, queue) != 0
            || offload_sb_state(slot->sb) != OFFLOAD_SB_BUSY
            || strcmp(slot->sb->job_id, job_id) != 0)
        {
            continue;
        }

        log_notice("worker %s:%d: job %s cancelled while it ran, killing "
                   "pid %d", queue, index, job_id, (int) slot->pid);

        if (kill(slot->pid, SIGKILL) == 0) {
            slot->cancelled = 1;
        }

        return;
    }

    log_info("cancel: job %s of %s:%d no longer runs here", job_id, queue,
             index);
}


static void
popped_cb(redisAsyncContext *ac, void *r, void *privdata)
{
    size_t                 i;
    redisReply            *reply = r;
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
        if (reply->element[i]->type == REDIS_REPLY_STRING) {
            stop_job(sup, reply->element[i]->str, reply->element[i]->len);
        }
    }
}


void
offload_cancel_round(offload_supervisor_t *sup)
{
    char                  key[OFFLOAD_KEY_MAX];
    offload_slot_t       *slot;
    offload_slot_iter_t   it = { 0, 0, 0 };

    if (!sup->registry.conn.ready || sup->stopping) {
        return;
    }

    while ((slot = offload_slot_next(sup, &it)) != NULL) {
        if (slot->pid != 0 && offload_sb_state(slot->sb) == OFFLOAD_SB_BUSY) {
            break;
        }
    }

    if (slot == NULL) {
        return;                 /* nothing runs here that could be stopped */
    }

    snprintf(key, sizeof(key), OFFLOAD_CANCEL_FMT, sup->conf->node_name);

    offload_redis_command(&sup->registry.conn, popped_cb, sup, "LPOP %s %d",
                          key, OFFLOAD_CANCEL_BATCH);
}

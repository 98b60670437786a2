/*
 * reclaim.c -- the supervisor's Redis side of a worker's death (see
 * reclaim.h): the held job fails one attempt, the rest goes back.
 *
 * Every step is one Lua script (proto/offload_proto.c), so a crash of the
 * supervisor between steps leaves each entry either still pending (claimed
 * again later) or fully moved, never half; each script acks its entry last,
 * so one Redis refuses halfway leaves it pending too.  Scripts go with EVAL
 * rather than EVALSHA: this path runs once per dead worker, not per job.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "reclaim.h"


/* One offload_reclaim_worker() in progress. */
typedef struct {
    offload_redis_conn_t         *conn;
    const offload_conf_t         *conf;
    const offload_conf_queue_t   *queue;
    char                          stream[OFFLOAD_KEY_MAX];
    char                          consumer[256];
    char                          held[64];
    char                          cut[64];     /* the entry a stop cut
                                                  short, or "" */
    offload_failure_t             failure;
    offload_reclaim_done_pt       done;
    void                         *data;
} reclaim_t;


static void
reclaim_free(reclaim_t *r)
{
    json_decref(r->failure.report);
    free(r);
}


static void
handback_cb(redisAsyncContext *ac, void *rep, void *privdata)
{
    reclaim_t   *r = privdata;
    redisReply  *reply = rep;

    (void) ac;

    if (reply != NULL && reply->type == REDIS_REPLY_ERROR
        && strncmp(reply->str, "NOGROUP", 7) != 0)
    {
        log_error("queue %s: handing back the jobs of %s: %s",
                  r->queue->name, r->consumer, reply->str);

    } else if (reply != NULL && reply->type == REDIS_REPLY_INTEGER
               && reply->integer > 0)
    {
        log_info("queue %s: %lld job(s) of %s went back to the queue",
                 r->queue->name, reply->integer, r->consumer);
    }

    r->done(r->data);
    reclaim_free(r);
}


/* The last step: hands back what the consumer still holds. */
static void
hand_back(void *data)
{
    reclaim_t  *r = data;

    if (!r->conn->ready
        || offload_redis_command(r->conn, handback_cb, r, "EVAL %s 1 %s %s %s "
                                 "%s %s", offload_handback_script, r->stream,
                                 OFFLOAD_GROUP, r->consumer, r->held, r->cut)
           != REDIS_OK)
    {
        r->done(r->data);
        reclaim_free(r);
    }
}


/* The held job failed (or Redis refused: then it stays pending, read
 * again by the slot's next worker or claimed): the rest goes back. */
static void
failed(void *data, offload_fail_outcome_e outcome)
{
    (void) outcome;

    hand_back(data);
}


static void
held_entry_cb(redisAsyncContext *ac, void *rep, void *privdata)
{
    reclaim_t   *r = privdata;
    redisReply  *reply = rep;

    (void) ac;

    /* [[id, [field, value, ...]]]; an empty reply means the entry is gone
     * (its job was completed just before the worker died). */
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY
        || reply->elements != 1
        || offload_fail_attempt(r->conn, r->conf, r->queue,
                                reply->element[0], &r->failure, failed, r)
           != 0)
    {
        hand_back(r);
    }
}


int
offload_reclaim_worker(offload_redis_conn_t *conn,
    const offload_conf_t *conf, const offload_conf_queue_t *q,
    const char *consumer, const char *held_entry,
    const offload_failure_t *failure, offload_reclaim_done_pt done,
    void *data)
{
    int         rc;
    reclaim_t  *r;

    if (!conn->ready) {
        return -1;
    }

    r = calloc(1, sizeof(reclaim_t));
    if (r == NULL) {
        return -1;
    }

    r->conn = conn;
    r->conf = conf;
    r->queue = q;
    r->done = done;
    r->data = data;
    snprintf(r->consumer, sizeof(r->consumer), "%s", consumer);
    offload_stream_key(r->stream, sizeof(r->stream), q->name,
                       strlen(q->name));

    if (held_entry == NULL || failure == NULL) {
        /* a job the stop cut short goes back too, marked */
        snprintf(r->cut, sizeof(r->cut), "%s",
                 held_entry != NULL ? held_entry : "");
        hand_back(r);
        return 0;
    }

    snprintf(r->held, sizeof(r->held), "%s", held_entry);
    r->failure = *failure;
    r->failure.report = json_incref(failure->report);

    rc = offload_redis_command(conn, held_entry_cb, r, "XRANGE %s %s %s",
                               r->stream, r->held, r->held);
    if (rc != REDIS_OK) {
        reclaim_free(r);
        return -1;
    }

    return 0;
}

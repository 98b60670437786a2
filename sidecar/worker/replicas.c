/*
 * replicas.c -- wait_replicas: after a worker's completions, WAIT on the
 * same link until that many replicas have them (or redis_timeout passed),
 * so that a failover right after a job loses neither its ack nor its
 * result.  With wait_replicas all, the count is the replicas the master's
 * ROLE lists online.
 */

#include <stdio.h>
#include <string.h>

#include "log.h"
#include "redis_conn.h"
#include "worker_state.h"


static void
wait_cb(redisAsyncContext *ac, void *r, void *privdata)
{
    offload_worker_t  *w = privdata;
    redisReply        *reply = r;
    int                want = w->wait_sent;

    (void) ac;

    if (reply != NULL && reply->type == REDIS_REPLY_ERROR) {
        log_error("%s: WAIT failed: %s", w->name, reply->str);

    } else if (reply != NULL && reply->type == REDIS_REPLY_INTEGER) {
        if (reply->integer < want && !w->wait_short) {
            log_warn("%s: WAIT: %lld of %d replicas have the job's "
                     "completion after %d ms", w->name, reply->integer,
                     want, w->queue->redis.timeout_ms);
        }
        w->wait_short = reply->integer < want;
    }

    w->in_flight--;
    offload_worker_maybe_exit(w);
}


/* ROLE of the master: ["master", offset, [[ip, port, offset]...]], its
 * replicas online (those WAIT counts).  Refused (an ACL user without
 * +role, ROLE renamed): one replica, the least "all" can mean, rather
 * than the most, whose WAIT would hold the connection redis_timeout after
 * every completion. */
static void
role_cb(redisAsyncContext *ac, void *r, void *privdata)
{
    offload_worker_t  *w = privdata;
    redisReply        *reply = r;

    (void) ac;

    if (reply != NULL && reply->type == REDIS_REPLY_ERROR) {
        if (!w->role_refused) {
            log_error("%s: ROLE refused (%s): wait_replicas=all needs the "
                      "+role permission (and +wait) to count the replicas; "
                      "waiting for 1 meanwhile", w->name, reply->str);
            w->role_refused = 1;
        }

        w->replicas = 1;

    } else if (reply != NULL && reply->type == REDIS_REPLY_ARRAY
        && reply->elements == 3
        && reply->element[0]->type == REDIS_REPLY_STRING
        && strcmp(reply->element[0]->str, "master") == 0
        && reply->element[2]->type == REDIS_REPLY_ARRAY)
    {
        w->replicas = (int) reply->element[2]->elements;
    }

    w->in_flight--;
    offload_worker_maybe_exit(w);
}


/* wait_replicas all: asks the master for its replicas online. */
void
offload_replicas_ask(offload_worker_t *w)
{
    if (offload_redis_command(&w->conn, role_cb, w, "ROLE") == REDIS_OK) {
        w->in_flight++;
    }
}


/* wait_replicas: WAIT behind the completion script on the same link: the
 * worker's later commands (its next read) run, and it exits, only once
 * that many replicas have the ack and the result, or redis_timeout
 * passed, so a failover right after a job loses neither.  Nothing is sent
 * when it is 0.  wait_replicas all: as many as the master's ROLE listed
 * on connect and after the last completion (unknown: the most there may
 * be); a count asked right before would let the next read in ahead of the
 * WAIT.  ROLE is asked again after every completion, also when no WAIT
 * went (none listed): a master that had no replica online, or a new
 * master before its replicas followed it, is waited for once they are.
 */
void
offload_replicas_wait(offload_worker_t *w)
{
    char         n[16], ms[16];
    const char  *argv[3];

    w->wait_sent = w->queue->redis.wait_replicas;

    if (w->wait_sent == OFFLOAD_WAIT_ALL) {
        w->wait_sent = w->replicas >= 0 ? w->replicas
                                        : OFFLOAD_WAIT_REPLICAS_MAX;
    }

    if (w->wait_sent > 0) {
        snprintf(n, sizeof(n), "%d", w->wait_sent);
        snprintf(ms, sizeof(ms), "%d", w->queue->redis.timeout_ms);
        argv[0] = "WAIT";
        argv[1] = n;
        argv[2] = ms;

        if (offload_redis_command_block(&w->conn,
                                        w->queue->redis.timeout_ms, wait_cb,
                                        w, 3, argv, NULL)
            == REDIS_OK)
        {
            w->in_flight++;
        }
    }

    /* refused once: not asked again on this connection (each refusal is
     * a command and an ACL LOG entry per completion) */
    if (w->queue->redis.wait_replicas == OFFLOAD_WAIT_ALL && !w->role_refused)
    {
        offload_replicas_ask(w);
    }
}

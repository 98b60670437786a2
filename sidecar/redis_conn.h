/*
 * redis_conn.h -- one self-healing async Redis connection on a libev loop.
 *
 * Connects, sends AUTH and SELECT when configured, then calls on_ready.
 * When the connection fails or drops it calls on_lost (if it was ready) and
 * reconnects forever with exponential backoff (100 ms .. 2 s, with jitter),
 * each time with a new hiredis context.  Both the supervisor's registry and
 * every worker use it, so this logic lives in exactly one place.
 */

#ifndef OFFLOAD_REDIS_CONN_H
#define OFFLOAD_REDIS_CONN_H

#include <ev.h>
#include <hiredis/async.h>

#include "conf.h"

typedef struct offload_redis_conn_s  offload_redis_conn_t;

typedef void (*offload_redis_conn_pt)(offload_redis_conn_t *rc);

struct offload_redis_conn_s {
    struct ev_loop         *loop;
    const offload_conf_t   *conf;
    const char             *name;       /* for log lines */
    redisAsyncContext      *ac;         /* NULL while not connected */
    int                     ready;      /* connected, AUTH/SELECT done */
    int                     stopped;
    int                     failures;   /* in a row, for the backoff */
    ev_timer                retry;
    offload_redis_conn_pt   on_ready;
    offload_redis_conn_pt   on_lost;
    void                   *data;
};

void offload_redis_conn_init(offload_redis_conn_t *rc, struct ev_loop *loop,
    const offload_conf_t *conf, const char *name,
    offload_redis_conn_pt on_ready, offload_redis_conn_pt on_lost, void *data);

/* Starts connecting (asynchronously). */
void offload_redis_conn_start(offload_redis_conn_t *rc);

/* Stops reconnecting and frees the context: pending callbacks run with a
 * NULL reply.  on_lost is not called. */
void offload_redis_conn_stop(offload_redis_conn_t *rc);

/* In a forked child: forget the parent's connection without touching the
 * server (closes the inherited socket only). */
void offload_redis_conn_forget(offload_redis_conn_t *rc);

#endif /* OFFLOAD_REDIS_CONN_H */

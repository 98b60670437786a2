/*
 * redis_conn.c -- connect, authenticate, select, and reconnect with backoff:
 * the life cycle of every async Redis connection of the sidecar.
 *
 * hiredis 0.14 rules followed here: a failed connect calls the connect
 * callback with an error and then frees the context; the disconnect
 * callback fires only for a connection that was up, and the context is
 * freed after it.  A context is never reused: every attempt makes a new one.
 */

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <hiredis/adapters/libev.h>

#include "log.h"
#include "redis_conn.h"

#define BACKOFF_MIN_MS  100
#define BACKOFF_MAX_MS  2000


static void connect_now(offload_redis_conn_t *rc);


static void
retry_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void) loop;
    (void) revents;

    connect_now(w->data);
}


/* Waits 100 ms, 200 ms, 400 ms ... up to 2 s, each +-25% of jitter so that
 * many workers do not reconnect in lockstep after a Redis restart. */
static void
schedule_retry(offload_redis_conn_t *rc)
{
    double  ms;
    int     shift;

    if (rc->stopped) {
        return;
    }

    shift = rc->failures < 5 ? rc->failures : 5;
    ms = (double) BACKOFF_MIN_MS * (double) (1 << shift);
    if (ms > BACKOFF_MAX_MS) {
        ms = BACKOFF_MAX_MS;
    }
    ms *= 0.75 + 0.5 * ((double) random() / (double) RAND_MAX);

    rc->failures++;

    ev_timer_set(&rc->retry, ms / 1000.0, 0.0);
    ev_timer_start(rc->loop, &rc->retry);
}


static void
became_ready(offload_redis_conn_t *rc)
{
    rc->ready = 1;
    rc->failures = 0;
    log_info("%s: connected to redis", rc->name);
    rc->on_ready(rc);
}


static int
setup_failed(offload_redis_conn_t *rc, redisAsyncContext *ac,
    redisReply *reply, const char *what)
{
    if (reply == NULL) {
        return 1;                       /* disconnected meanwhile */
    }

    if (reply->type == REDIS_REPLY_ERROR) {
        log_error("%s: redis %s failed: %s", rc->name, what, reply->str);
        redisAsyncDisconnect(ac);
        return 1;
    }

    return 0;
}


static void
select_cb(redisAsyncContext *ac, void *r, void *privdata)
{
    offload_redis_conn_t  *rc = privdata;

    if (!setup_failed(rc, ac, r, "SELECT")) {
        became_ready(rc);
    }
}


static void
send_select(offload_redis_conn_t *rc)
{
    if (rc->conf->db == 0) {
        became_ready(rc);
        return;
    }

    if (redisAsyncCommand(rc->ac, select_cb, rc, "SELECT %d", rc->conf->db)
        != REDIS_OK)
    {
        log_error("%s: cannot send SELECT", rc->name);
        redisAsyncDisconnect(rc->ac);
    }
}


static void
auth_cb(redisAsyncContext *ac, void *r, void *privdata)
{
    offload_redis_conn_t  *rc = privdata;

    if (!setup_failed(rc, ac, r, "AUTH")) {
        send_select(rc);
    }
}


static void
connect_cb(const redisAsyncContext *ac, int status)
{
    offload_redis_conn_t  *rc = ac->data;

    if (status != REDIS_OK) {
        if (rc->failures == 0) {
            log_warn("%s: cannot connect to redis: %s", rc->name, ac->errstr);
        }
        rc->ac = NULL;                  /* hiredis frees it */
        schedule_retry(rc);
        return;
    }

    if (rc->conf->password == NULL) {
        send_select(rc);
        return;
    }

    if ((rc->conf->redis_user != NULL
         ? redisAsyncCommand(rc->ac, auth_cb, rc, "AUTH %s %s",
                             rc->conf->redis_user, rc->conf->password)
         : redisAsyncCommand(rc->ac, auth_cb, rc, "AUTH %s",
                             rc->conf->password))
        != REDIS_OK)
    {
        log_error("%s: cannot send AUTH", rc->name);
        redisAsyncDisconnect(rc->ac);
    }
}


static void
disconnect_cb(const redisAsyncContext *ac, int status)
{
    offload_redis_conn_t  *rc = ac->data;
    int                    was_ready = rc->ready;

    rc->ac = NULL;                      /* hiredis frees it */
    rc->ready = 0;

    if (rc->stopped) {
        return;
    }

    if (status != REDIS_OK || was_ready) {
        log_warn("%s: lost redis connection%s%s", rc->name,
                 ac->errstr[0] ? ": " : "", ac->errstr);
    }

    if (was_ready && rc->on_lost) {
        rc->on_lost(rc);
    }

    schedule_retry(rc);
}


static void
connect_now(offload_redis_conn_t *rc)
{
    redisAsyncContext  *ac;
    const offload_addr_t  *addr = &rc->conf->redis;

    ac = addr->is_unix ? redisAsyncConnectUnix(addr->host)
                       : redisAsyncConnect(addr->host, addr->port);
    if (ac == NULL) {
        log_error("%s: out of memory for a redis context", rc->name);
        schedule_retry(rc);
        return;
    }

    if (ac->err) {
        if (rc->failures == 0) {
            log_warn("%s: cannot connect to redis: %s", rc->name, ac->errstr);
        }
        redisAsyncFree(ac);
        schedule_retry(rc);
        return;
    }

    ac->data = rc;
    rc->ac = ac;

    /* Event hooks first: the connect is detected by the first write event. */
    if (redisLibevAttach(rc->loop, ac) != REDIS_OK
        || redisAsyncSetConnectCallback(ac, connect_cb) != REDIS_OK
        || redisAsyncSetDisconnectCallback(ac, disconnect_cb) != REDIS_OK)
    {
        log_error("%s: cannot set up the redis context", rc->name);
        rc->ac = NULL;
        redisAsyncFree(ac);
        schedule_retry(rc);
    }
}


void
offload_redis_conn_init(offload_redis_conn_t *rc, struct ev_loop *loop,
    const offload_conf_t *conf, const char *name,
    offload_redis_conn_pt on_ready, offload_redis_conn_pt on_lost, void *data)
{
    memset(rc, 0, sizeof(*rc));
    rc->loop = loop;
    rc->conf = conf;
    rc->name = name;
    rc->on_ready = on_ready;
    rc->on_lost = on_lost;
    rc->data = data;
    ev_timer_init(&rc->retry, retry_cb, 0.0, 0.0);
    rc->retry.data = rc;
}


void
offload_redis_conn_start(offload_redis_conn_t *rc)
{
    rc->stopped = 0;
    connect_now(rc);
}


void
offload_redis_conn_stop(offload_redis_conn_t *rc)
{
    redisAsyncContext  *ac = rc->ac;

    rc->stopped = 1;
    rc->ready = 0;
    ev_timer_stop(rc->loop, &rc->retry);

    if (ac != NULL) {
        rc->ac = NULL;
        redisAsyncFree(ac);
    }
}


void
offload_redis_conn_forget(offload_redis_conn_t *rc)
{
    rc->stopped = 1;
    rc->ready = 0;

    /* The context stays allocated (and referenced, so leak checkers see
     * it as reachable): freeing it would write to the parent's socket. */
    if (rc->ac != NULL) {
        close(rc->ac->c.fd);
    }
}

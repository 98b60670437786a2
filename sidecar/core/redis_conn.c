/*
 * redis_conn.c -- connect, authenticate, select, and reconnect with backoff:
 * the life cycle of every async Redis connection of the sidecar.
 *
 * hiredis 0.14 rules followed here: a failed connect calls the connect
 * callback with an error and then frees the context; the disconnect
 * callback fires only for a connection that was up, and the context is
 * freed after it.  A context is never reused: every attempt makes a new one.
 *
 * hiredis 0.14 has no timeouts of its own: the watchdog here bounds the
 * connect and each command.  Every command goes through one small record
 * (recycled) that remembers when it was sent and how long it may take, so
 * the oldest unanswered one is always the FIFO's head.  The connection is
 * dropped only when the head's deadline has passed and nothing moved since:
 * no reply, no byte waiting to be read, no byte of the output buffer
 * written.  That last check matters for workers, whose loop stands still
 * while a job runs: a deadline that passes during a long job finds the
 * answer in the socket, or the command still unsent, and waits on.  The
 * watched sentinel's PING is judged the same way.
 *
 * Every context's reader refuses the replies hiredis 0.14 would assert()
 * on (proto/offload_reply_guard.c): a broken or hostile server, sentinel
 * or proxy then costs the connection, not the process, and the usual
 * reconnect and backoff follow.
 */

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <hiredis/adapters/libev.h>
#include <hiredis/sds.h>

#include "clock.h"
#include "cluster_map.h"
#include "log.h"
#include "offload_proto.h"
#include "offload_reply_guard.h"
#include "redis_conn.h"
#include "offload_resp.h"

/* A command's text up to this size is made on the stack (a batch of 32
 * small results' completion fits), a bigger one in one malloc. */
#define FORMAT_STACK  16384

/* hiredis' output buffer is kept from write to write up to this size
 * (offload_redis_write()) */
#define KEEP_OBUF     65536


struct offload_redis_cmd_s {
    offload_redis_cmd_t   *next;
    offload_redis_conn_t  *rc;
    redisCallbackFn       *fn;
    void                  *privdata;
    double                 sent_at;
    double                 allowed;     /* s: redis_timeout + block time */
    int                    proves;      /* its answer shows the link up */
};


static void connect_now(offload_redis_conn_t *rc);
static void connect_to(offload_redis_conn_t *rc, const offload_addr_t *addr);
static void drop(offload_redis_conn_t *rc);


/* Deadlines count on the monotonic clock, as libev's timers do: a wall
 * clock stepped by NTP must neither hide a silent Redis nor drop a healthy
 * connection. */
static double
now_s(void)
{
    return (double) offload_mono_us() / 1e6;
}


static void
retry_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void) loop;
    (void) revents;

    connect_now(w->data);
}


/* Waits offload_reconnect_delay_ms(), as nginx's links do. */
static void
schedule_retry(offload_redis_conn_t *rc)
{
    unsigned  ms;

    if (rc->stopped) {
        return;
    }

    ms = offload_reconnect_delay_ms((unsigned) rc->failures, random());
    rc->failures++;

    ev_timer_set(&rc->retry, ms / 1000.0, 0.0);
    ev_timer_start(rc->loop, &rc->retry);
}


static void
watchdog_arm(offload_redis_conn_t *rc, double after)
{
    ev_timer_stop(rc->loop, &rc->watchdog);
    ev_timer_set(&rc->watchdog, after > 0.001 ? after : 0.001, 0.0);
    ev_timer_start(rc->loop, &rc->watchdog);
}


static void
became_ready(offload_redis_conn_t *rc)
{
    rc->ready = 1;
    rc->read_only = 0;
    rc->refused[0] = '\0';
    rc->failures_then = rc->failures;
    log_info("%s: connected to redis", rc->name);
    rc->on_ready(rc);
}


/* A refused setup is a failed connect, tried again at the backoff's pace;
 * it is logged once until the link is ready again or the refusal changes,
 * not at every try. */
static int
setup_failed(offload_redis_conn_t *rc, redisAsyncContext *ac,
    redisReply *reply, const char *what)
{
    if (reply == NULL) {
        return 1;                       /* disconnected meanwhile */
    }

    if (reply->type == REDIS_REPLY_ERROR) {
        if (strncmp(rc->refused, reply->str, sizeof(rc->refused) - 1) != 0) {
            log_error("%s: redis %s failed: %s", rc->name, what, reply->str);
            snprintf(rc->refused, sizeof(rc->refused), "%s", reply->str);
        }
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


/* PONG, or an error that is an answer all the same
 * (offload_ping_error_answers()); anything else is a server out of step. */
static void
ping_cb(redisAsyncContext *ac, void *r, void *privdata)
{
    redisReply            *reply = r;
    offload_redis_conn_t  *rc = privdata;

    if (reply != NULL && reply->type == REDIS_REPLY_ERROR
        && offload_ping_error_answers(reply->str))
    {
        became_ready(rc);
        return;
    }

    if (setup_failed(rc, ac, reply, "PING")) {
        return;
    }

    if (reply->type != REDIS_REPLY_STATUS || strcmp(reply->str, "PONG") != 0)
    {
        offload_redis_conn_out_of_step(rc, "PING answered with no PONG");
        return;
    }

    became_ready(rc);
}


/*
 * The link is ready once Redis has answered its setup: AUTH, then SELECT,
 * or with neither a PING.  A server that accepts the connection and
 * refuses every command (a password it requires now: NOAUTH; maxclients)
 * is so a failed connect, not a link up whose every command fails.
 */
static void
send_select(offload_redis_conn_t *rc)
{
    int  sent;

    if (rc->ep->db != 0) {
        sent = offload_redis_command(rc, select_cb, rc, "SELECT %d",
                                     rc->ep->db);

    } else if (rc->ep->password == NULL) {
        sent = offload_redis_command(rc, ping_cb, rc, "PING");

    } else {
        became_ready(rc);
        return;
    }

    if (sent != REDIS_OK) {
        log_error("%s: cannot send its setup to redis", rc->name);
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
        ev_timer_stop(rc->loop, &rc->watchdog);
        schedule_retry(rc);
        return;
    }

    /* Finds a dead peer on an idle connection; the watchdog covers the
     * busy ones sooner. */
    if (rc->ac->c.connection_type == REDIS_CONN_TCP
        && redisEnableKeepAlive(&rc->ac->c) != 0)
    {
        log_warn("%s: cannot enable TCP keepalive: %s", rc->name,
                 rc->ac->c.errstr);
    }

    if (rc->ep->password == NULL) {
        send_select(rc);
        return;
    }

    if ((rc->ep->user != NULL
         ? offload_redis_command(rc, auth_cb, rc, "AUTH %s %s",
                                 rc->ep->user, rc->ep->password)
         : offload_redis_command(rc, auth_cb, rc, "AUTH %s",
                                 rc->ep->password))
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

    /* a reply refused by reply_refused() reads as hiredis' "Out of
     * memory": its reason was logged then */
    if (status != REDIS_OK || was_ready) {
        log_warn("%s: lost redis connection%s%s", rc->name,
                 rc->protocol_error || ac->errstr[0] ? ": " : "",
                 rc->protocol_error ? "protocol error" : ac->errstr);
    }

    if (was_ready && rc->on_lost) {
        rc->on_lost(rc);
    }

    schedule_retry(rc);
}


/* A reply of ac hiredis would assert() on, refused: hiredis frees ac
 * next, as for a reader error (the disconnect callback, or for a
 * sentinel's or seed's context its reply callbacks with NULL, reconnect
 * or ask elsewhere).  Every context of rc has ac->data = rc. */
static void
reply_refused(redisAsyncContext *ac, const char *why)
{
    offload_redis_conn_t  *rc = ac->data;

    if (ac == rc->ac) {
        rc->protocol_error = 1;
        log_error("%s: redis protocol error: %s: dropping the connection",
                  rc->name, why);
        return;
    }

    log_error("%s: %s %s:%d: protocol error: %s: dropping the connection",
              rc->name, rc->ep->nseeds > 0 ? "cluster seed" : "sentinel",
              ac->c.tcp.host, ac->c.tcp.port, why);
}


/* Made ready for use by rc: its replies checked. */
static void
guard(offload_redis_conn_t *rc, redisAsyncContext *ac)
{
    ac->data = rc;
    offload_reply_guard(ac, reply_refused);
}


/* ---- progress of a connection: bytes that moved ---------------------- */


static void
bytes_note(redisAsyncContext *ac, offload_redis_bytes_t *seen)
{
    seen->obuf = sdslen(ac->c.obuf);
    seen->reader[0] = ac->c.reader->len;
    seen->reader[1] = ac->c.reader->pos;
}


/* Whether bytes moved since the last note or look: an answer waits in the
 * socket, part of one was read (the reader's buffer changed), or some of
 * the output buffer was written.  A deadline that passed asks this before
 * blaming the server: a worker's loop stands still while a job runs, and
 * an answer that came meanwhile is still unread. */
static int
bytes_moved(redisAsyncContext *ac, offload_redis_bytes_t *seen)
{
    int                    readable = 0;
    offload_redis_bytes_t  last = *seen;

    bytes_note(ac, seen);

    if (ioctl(ac->c.fd, FIONREAD, &readable) == 0 && readable > 0) {
        return 1;
    }

    return seen->obuf != last.obuf || seen->reader[0] != last.reader[0]
           || seen->reader[1] != last.reader[1];
}


/* ---- Redis Sentinel: which server is the master ---------------------- */


static void ask_next_discovery(offload_redis_conn_t *rc);


/* Drops the sentinel connection: its pending reply callback then runs
 * with a NULL reply and finds it no longer asked. */
static void
stop_asking(offload_redis_conn_t *rc)
{
    redisAsyncContext  *ac = rc->asking;

    ev_timer_stop(rc->loop, &rc->ask_deadline);

    if (ac != NULL) {
        rc->asking = NULL;
        redisAsyncFree(ac);
    }
}


static void
stop_watching(offload_redis_conn_t *rc)
{
    redisAsyncContext  *ac = rc->watching;

    if (ac != NULL) {
        rc->watching = NULL;
        redisAsyncFree(ac);
    }
}


/* From a reply callback of the watched sentinel: it is freed once the
 * callback returns (not disconnected: a subscribed context would wait for
 * every pending reply first, from a sentinel that may never send them),
 * and the next tick watches another one. */
static void
let_go_watching(offload_redis_conn_t *rc, redisAsyncContext *ac)
{
    rc->watching = NULL;

    if (!(ac->c.flags & REDIS_FREEING)) {
        redisAsyncFree(ac);
    }
}


/* AUTH with the sentinels' own login (a cluster seed: with the data's,
 * a seed being one of its nodes), queued before anything else is asked of
 * a sentinel or seed; REDIS_OK without one. */
static void discovery_auth_cb(redisAsyncContext *ac, void *r, void *privdata);

static int
discovery_auth(offload_redis_conn_t *rc, redisAsyncContext *ac)
{
    const offload_redis_endpoint_t  *ep = rc->ep;
    const char                      *user, *password;

    user = ep->nseeds > 0 ? ep->user : ep->sentinel_user;
    password = ep->nseeds > 0 ? ep->password : ep->sentinel_password;

    if (password == NULL) {
        return REDIS_OK;
    }

    return user != NULL
           ? redisAsyncCommand(ac, discovery_auth_cb, rc, "AUTH %s %s",
                               user, password)
           : redisAsyncCommand(ac, discovery_auth_cb, rc, "AUTH %s",
                               password);
}


/* The sentinels name another master than ours: the connection to the old
 * one goes, or, while a reconnect waits out its backoff (the old master
 * died: the sentinels named it until they agreed on a new one), the wait
 * is cut short. */
static void
master_moved(offload_redis_conn_t *rc)
{
    if (rc->ac == NULL && ev_is_active(&rc->retry)) {
        ev_timer_stop(rc->loop, &rc->retry);
        connect_now(rc);
        return;
    }

    drop(rc);
}


/* ["pmessage", "+switch-master", "+switch-master", "<name> <old ip> <old
 * port> <new ip> <new port>"]: ours, to another server: drop the
 * connection to the old master (its pending callbacks get NULL replies)
 * and reconnect, asking again.  Also the subscription's confirmation and
 * the answers to PINGs (see watch_tick_cb): any reply proves the sentinel
 * alive. */
static void
switch_master_cb(redisAsyncContext *ac, void *r, void *privdata)
{
    char                   name[OFFLOAD_MASTER_NAME_MAX + 1], host[256];
    int                    port;
    redisReply            *reply = r, *msg;
    offload_redis_conn_t  *rc = privdata;

    if (ac != rc->watching) {
        return;                 /* dropped by stop_watching() */
    }

    if (reply == NULL) {
        rc->watching = NULL;    /* the sentinel went away: the next tick
                                   watches another one */
        return;
    }

    rc->watch_unheard = 0;

    if (reply->type == REDIS_REPLY_ERROR) {
        log_error("%s: sentinel %s:%d refused to subscribe: %s", rc->name,
                  ac->c.tcp.host, ac->c.tcp.port, reply->str);
        let_go_watching(rc, ac);
        return;
    }

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 4
        || reply->element[0]->type != REDIS_REPLY_STRING
        || strcmp(reply->element[0]->str, "pmessage") != 0)
    {
        return;                 /* a confirmation, a pong */
    }

    msg = reply->element[3];
    if (msg->type != REDIS_REPLY_STRING
        || sscanf(msg->str, "%64s %*s %*d %255s %d", name, host, &port) != 3
        || strcmp(name, rc->ep->master) != 0
        || (port == rc->master.port && strcmp(host, rc->master.host) == 0))
    {
        return;
    }

    log_warn("%s: sentinel: master \"%s\" moved to %s:%d, reconnecting",
             rc->name, name, host, port);

    master_moved(rc);
}


/* From the sentinel's reply callback: not freed from inside its own
 * callback, hiredis disconnects once it returns (or frees it already when
 * the reply is NULL). */
static void
done_asking(offload_redis_conn_t *rc, redisAsyncContext *ac,
    redisReply *reply)
{
    rc->asking = NULL;
    ev_timer_stop(rc->loop, &rc->ask_deadline);

    if (reply != NULL) {
        redisAsyncDisconnect(ac);
    }
}


/*
 * PSUBSCRIBE, not SUBSCRIBE, to the channel: hiredis 0.14 takes the reply
 * to a PING on a subscribed connection, ["pong", <argument>], for a message
 * to the pattern <argument>, so PING +switch-master is answered to
 * switch_master_cb() too (a PING sent through redisAsyncCommand would
 * leave a callback behind that never runs).
 */
static int
subscribe(offload_redis_conn_t *rc, redisAsyncContext *ac)
{
    if (redisAsyncCommand(ac, switch_master_cb, rc, "PSUBSCRIBE %s",
                          "+switch-master")
        != REDIS_OK)
    {
        return REDIS_ERR;
    }

    rc->watching = ac;
    rc->watch_unheard = now_s();        /* until it confirms */
    bytes_note(ac, &rc->watch_seen);    /* commands queued are no progress */
    return REDIS_OK;
}


/* The answer of a sentinel watched anew: a master other than ours means
 * a failover announced while nobody listened. */
static void
recheck_cb(redisAsyncContext *ac, void *r, void *privdata)
{
    redisReply            *reply = r;
    offload_redis_conn_t  *rc = privdata;

    if (ac != rc->watching || reply == NULL
        || reply->type != REDIS_REPLY_ARRAY || reply->elements != 2
        || reply->element[0]->type != REDIS_REPLY_STRING
        || reply->element[1]->type != REDIS_REPLY_STRING)
    {
        return;
    }

    if (strcmp(reply->element[0]->str, rc->master.host) == 0
        && strtol(reply->element[1]->str, NULL, 10) == rc->master.port)
    {
        return;
    }

    log_warn("%s: sentinel: master \"%s\" is at %s:%s now, reconnecting",
             rc->name, rc->ep->master, reply->element[0]->str,
             reply->element[1]->str);

    master_moved(rc);
}


/* Subscribes on the sentinel after the one that went quiet or away,
 * asking it first for the master. */
static void
watch_next_sentinel(offload_redis_conn_t *rc)
{
    redisAsyncContext     *ac;
    const offload_addr_t  *s;

    rc->watched = (rc->watched + 1) % rc->ep->nsentinels;
    s = &rc->ep->sentinels[rc->watched];

    ac = redisAsyncConnect(s->host, s->port);
    if (ac == NULL) {
        return;
    }

    guard(rc, ac);

    if (ac->err || redisLibevAttach(rc->loop, ac) != REDIS_OK
        || discovery_auth(rc, ac) != REDIS_OK
        || redisAsyncCommand(ac, recheck_cb, rc,
                             "SENTINEL get-master-addr-by-name %s",
                             rc->ep->master)
           != REDIS_OK
        || subscribe(rc, ac) != REDIS_OK)
    {
        rc->watching = NULL;
        redisAsyncFree(ac);
    }
}


/* Every second while connected to the master or waiting to reconnect: a
 * PING to the watched sentinel, or, when it owes an answer for longer
 * than redis_timeout or is gone, another one watched. */
static void
watch_tick_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    double                 now;
    redisAsyncContext     *ac;
    offload_redis_conn_t  *rc = w->data;

    (void) loop;
    (void) revents;

    ac = rc->watching;
    now = now_s();

    if (ac != NULL && rc->watch_unheard != 0
        && now - rc->watch_unheard > rc->ep->timeout_ms / 1000.0)
    {
        if (bytes_moved(ac, &rc->watch_seen)) {
            rc->watch_unheard = now;    /* the loop stood still: the answer
                                           may be in, or the PING unsent */
            return;
        }

        log_warn("%s: sentinel %s:%d did not answer in %d ms, watching "
                 "the next one", rc->name, ac->c.tcp.host, ac->c.tcp.port,
                 rc->ep->timeout_ms);
        stop_watching(rc);
        ac = NULL;
    }

    if (ac == NULL) {
        if (rc->ready || ev_is_active(&rc->retry)) {
            watch_next_sentinel(rc);
        }
        return;
    }

    if (rc->watch_unheard != 0) {
        return;                         /* an answer owed, not late yet */
    }

    bytes_note(ac, &rc->watch_seen);

    if (redisAppendCommand(&ac->c, "PING %s", "+switch-master") == REDIS_OK) {
        ac->ev.addWrite(ac->ev.data);
        rc->watch_unheard = now;
    }
}


static void
discovery_auth_cb(redisAsyncContext *ac, void *r, void *privdata)
{
    redisReply            *reply = r;
    offload_redis_conn_t  *rc = privdata;

    if (reply == NULL || reply->type != REDIS_REPLY_ERROR
        || (ac != rc->asking && ac != rc->watching))
    {
        return;
    }

    /* the reply names no secret: WRONGPASS, or AUTH without requirepass */
    if (rc->failures == 0 || ac == rc->watching) {
        log_error("%s: %s %s:%d refused AUTH with %s: %s", rc->name,
                  rc->ep->nseeds > 0 ? "cluster seed" : "sentinel",
                  ac->c.tcp.host, ac->c.tcp.port,
                  rc->ep->nseeds > 0 ? "redis_user/password"
                                     : "sentinel_user/sentinel_password",
                  reply->str);
    }

    if (ac == rc->watching) {
        let_go_watching(rc, ac);
        return;
    }

    done_asking(rc, ac, reply);
    ask_next_discovery(rc);
}


/* [host, port] of the master, or nil when the sentinel does not know
 * the name. */
static void
master_addr_cb(redisAsyncContext *ac, void *r, void *privdata)
{
    long                   port;
    redisReply            *reply = r;
    offload_redis_conn_t  *rc = privdata;

    if (ac != rc->asking) {
        return;                 /* dropped by stop_asking() */
    }

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY
        || reply->elements != 2
        || reply->element[0]->type != REDIS_REPLY_STRING
        || reply->element[1]->type != REDIS_REPLY_STRING
        || reply->element[0]->len >= sizeof(rc->master.host)
        || (port = strtol(reply->element[1]->str, NULL, 10)) <= 0
        || port > 65535)
    {
        if (rc->failures == 0 && reply == NULL) {
            log_warn("%s: sentinel %s:%d: %s", rc->name, ac->c.tcp.host,
                     ac->c.tcp.port, ac->errstr[0] ? ac->errstr
                                                   : "connection lost");
        } else if (rc->failures == 0) {
            log_warn("%s: sentinel %s:%d has no master \"%s\"%s%s",
                     rc->name, ac->c.tcp.host, ac->c.tcp.port, rc->ep->master,
                     reply->type == REDIS_REPLY_ERROR ? ": " : "",
                     reply->type == REDIS_REPLY_ERROR ? reply->str : "");
        }

        done_asking(rc, ac, reply);
        ask_next_discovery(rc);
        return;
    }

    memset(&rc->master, 0, sizeof(rc->master));
    memcpy(rc->master.host, reply->element[0]->str, reply->element[0]->len);
    rc->master.port = (int) port;

    rc->asking = NULL;
    ev_timer_stop(rc->loop, &rc->ask_deadline);

    if (subscribe(rc, ac) == REDIS_OK) {
        rc->watched = rc->asked - 1;
    } else {
        redisAsyncDisconnect(ac);
    }

    connect_to(rc, &rc->master);
}


/* A cluster seed's slot map: connect to the master of our slot. */
static void
slots_cb(redisAsyncContext *ac, void *r, void *privdata)
{
    redisReply            *reply = r;
    offload_addr_t         master;
    offload_redis_conn_t  *rc = privdata;

    if (ac != rc->asking) {
        return;                 /* dropped by stop_asking() */
    }

    if (offload_cluster_slot_master(reply, rc->ep->slot, ac->c.tcp.host,
                                    &master)
        != 0)
    {
        if (rc->failures == 0) {
            log_warn("%s: cluster seed %s:%d names no master of slot %d: "
                     "%s", rc->name, ac->c.tcp.host, ac->c.tcp.port,
                     rc->ep->slot,
                     reply == NULL ? (ac->errstr[0] ? ac->errstr
                                                    : "connection lost")
                     : reply->type == REDIS_REPLY_ERROR ? reply->str
                     : "not in its slot map");
        }

        done_asking(rc, ac, reply);
        ask_next_discovery(rc);
        return;
    }

    /* asked first next time */
    rc->seed_first = (rc->seed_first + rc->asked - 1) % rc->ep->nseeds;

    if (master.port != rc->master.port
        || strcmp(master.host, rc->master.host) != 0)
    {
        log_info("%s: slot %d is served by %s:%d", rc->name, rc->ep->slot,
                 master.host, master.port);
        rc->master = master;
    }

    done_asking(rc, ac, reply);
    connect_to(rc, &rc->master);
}


static void
ask_deadline_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    offload_redis_conn_t  *rc = w->data;

    (void) loop;
    (void) revents;

    if (rc->failures == 0) {
        log_warn("%s: %s did not answer in %d ms", rc->name,
                 rc->ep->nseeds > 0 ? "cluster seed" : "sentinel",
                 rc->ep->timeout_ms);
    }

    stop_asking(rc);
    ask_next_discovery(rc);
}


/* Discovery: asks the next sentinel of the list for the master, or the
 * next cluster seed (from the one that answered last) for its slot map,
 * or gives up this round (the backoff then starts over). */
static void
ask_next_discovery(offload_redis_conn_t *rc)
{
    int                    n;
    redisAsyncContext     *ac;
    const offload_addr_t  *s, *hosts;

    hosts = rc->ep->nseeds > 0 ? rc->ep->seeds : rc->ep->sentinels;
    n = rc->ep->nseeds > 0 ? rc->ep->nseeds : rc->ep->nsentinels;

    while (rc->asked < n) {
        s = &hosts[rc->ep->nseeds > 0 ? (rc->seed_first + rc->asked++) % n
                                      : rc->asked++];

        ac = redisAsyncConnect(s->host, s->port);
        if (ac == NULL) {
            continue;
        }

        guard(rc, ac);

        if (ac->err || redisLibevAttach(rc->loop, ac) != REDIS_OK) {
            redisAsyncFree(ac);
            continue;
        }

        rc->asking = ac;

        if (discovery_auth(rc, ac) != REDIS_OK
            || (rc->ep->nseeds > 0
                ? redisAsyncCommand(ac, slots_cb, rc, "CLUSTER SLOTS")
                : redisAsyncCommand(ac, master_addr_cb, rc,
                                    "SENTINEL get-master-addr-by-name %s",
                                    rc->ep->master))
               != REDIS_OK)
        {
            rc->asking = NULL;
            redisAsyncFree(ac);
            continue;
        }

        ev_timer_set(&rc->ask_deadline, rc->ep->timeout_ms / 1000.0, 0.0);
        ev_timer_start(rc->loop, &rc->ask_deadline);
        return;
    }

    if (rc->failures == 0 && rc->ep->nseeds > 0) {
        log_warn("%s: no cluster seed named the master of slot %d",
                 rc->name, rc->ep->slot);

    } else if (rc->failures == 0) {
        log_warn("%s: no sentinel named the master \"%s\"", rc->name,
                 rc->ep->master);
    }

    schedule_retry(rc);
}


static void
connect_now(offload_redis_conn_t *rc)
{
    if (rc->ep->nsentinels == 0 && rc->ep->nseeds == 0) {
        connect_to(rc, &rc->ep->addr);
        return;
    }

    /* A MOVED named the slot's master: straight there (should that fail,
     * the retry asks the seeds). */
    if (rc->moved) {
        rc->moved = 0;
        log_info("%s: slot %d moved to %s:%d: connecting there", rc->name,
                 rc->ep->slot, rc->master.host, rc->master.port);
        connect_to(rc, &rc->master);
        return;
    }

    stop_watching(rc);
    rc->asked = 0;
    ask_next_discovery(rc);
}


static void
connect_to(offload_redis_conn_t *rc, const offload_addr_t *addr)
{
    redisAsyncContext     *ac;

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

    guard(rc, ac);
    rc->ac = ac;
    rc->protocol_error = 0;
    memset(&rc->seen, 0, sizeof(rc->seen));
    rc->connect_deadline = now_s() + rc->ep->timeout_ms / 1000.0;
    watchdog_arm(rc, rc->ep->timeout_ms / 1000.0);

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


/* ---- commands and their deadlines ------------------------------------ */


static void
reply_cb(redisAsyncContext *ac, void *reply, void *privdata)
{
    int                    proves;
    void                  *fn_data;
    redisCallbackFn       *fn;
    offload_redis_cmd_t   *cmd = privdata;
    offload_redis_conn_t  *rc = cmd->rc;

    /* Redis answers in order: this is the head. */
    rc->head = cmd->next;
    if (rc->head == NULL) {
        rc->tail = NULL;
    }

    fn = cmd->fn;
    fn_data = cmd->privdata;
    proves = cmd->proves;

    if (rc->stopped) {
        free(cmd);              /* offload_redis_conn_stop() emptied the
                                   spare list already */
    } else {
        cmd->next = rc->free_cmds;
        rc->free_cmds = cmd;
    }

    if (reply != NULL) {
        rc->progress_at = now_s();
        bytes_note(ac, &rc->seen);

        /* Not on AUTH's or SELECT's error: a refused connection must back
         * off, not reconnect ten times a second; nor on a keyless
         * command's answer (proves_up()). */
        if (rc->ready && proves && !rc->read_only
            && ((redisReply *) reply)->type != REDIS_REPLY_ERROR)
        {
            rc->failures = rc->failures_then = 0;
        }

        /* A master turned replica (a failover, or a sentinel's stale
         * answer): find the master again.  What a replica answered (a
         * read: ZCARD, XPENDING) showed no master: the backoff grows as
         * if it had not answered at all. */
        if (((redisReply *) reply)->type == REDIS_REPLY_ERROR
            && strncmp(((redisReply *) reply)->str, "READONLY", 8) == 0
            && !(ac->c.flags & REDIS_DISCONNECTING))
        {
            log_warn("%s: redis is a replica now (READONLY): reconnecting",
                     rc->name);
            rc->read_only = 1;
            rc->failures = rc->failures_then;
            redisAsyncDisconnect(ac);
        }

        /* The slot is served elsewhere (MOVED; ASK: being moved), or not
         * now (TRYAGAIN, CLUSTERDOWN): the command was not run.  Its
         * caller sees a lost connection, as do those of the commands
         * after it (freed once this returns: no waiting for a blocked
         * read), and the reconnect, after its backoff, asks the seeds
         * again for the slot's master. */
        if (((redisReply *) reply)->type == REDIS_REPLY_ERROR
            && rc->ep->nseeds > 0
            && offload_cluster_redirected(((redisReply *) reply)->str))
        {
            if (!(ac->c.flags & REDIS_FREEING)) {
                log_warn("%s: %s: reconnecting to the slot's master",
                         rc->name, ((redisReply *) reply)->str);
                rc->moved = offload_cluster_moved_to(
                                ((redisReply *) reply)->str, rc->ep->slot,
                                ac->c.tcp.host, &rc->master)
                            == 0;
                redisAsyncFree(ac);
            }
            reply = NULL;
        }
    }

    if (fn != NULL) {
        fn(ac, reply, fn_data);
    }
}


/*
 * Whether an answer to the command named (name, len: its first word) shows
 * that the link serves what it is for, which resets the reconnect backoff.
 * Only a command on a key does: Redis answers the others (a worker's
 * SCRIPT LOAD first of all, MULTI before a completion's commands) even
 * when every keyed command is refused, READONLY from a master turned
 * replica, MOVED, ASK, TRYAGAIN or CLUSTERDOWN on a cluster, and a link so
 * refused must back off, not reconnect ten times a second.
 */
static int
proves_up(const char *name, size_t len)
{
    size_t              i;
    static const char  *keyless[] = {
        "SCRIPT", "PING", "ROLE", "WAIT", "CLIENT", "CLUSTER", "INFO",
        "PUBLISH", "AUTH", "SELECT", "MULTI", "TIME"
    };

    for (i = 0; i < sizeof(keyless) / sizeof(keyless[0]); i++) {
        if (strlen(keyless[i]) == len
            && strncasecmp(keyless[i], name, len) == 0)
        {
            return 0;
        }
    }

    return 1;
}


static offload_redis_cmd_t *
cmd_get(offload_redis_conn_t *rc, redisCallbackFn *fn, void *privdata,
    int block_ms, const char *name, size_t len)
{
    offload_redis_cmd_t  *cmd = rc->free_cmds;

    if (cmd != NULL) {
        rc->free_cmds = cmd->next;
    } else {
        cmd = malloc(sizeof(offload_redis_cmd_t));
        if (cmd == NULL) {
            return NULL;
        }
        cmd->rc = rc;
    }

    cmd->next = NULL;
    cmd->fn = fn;
    cmd->privdata = privdata;
    cmd->sent_at = now_s();
    cmd->allowed = (rc->ep->timeout_ms + block_ms) / 1000.0;
    cmd->proves = proves_up(name, len);

    return cmd;
}


/* After hiredis took the command (status REDIS_OK) or refused it. */
static int
cmd_sent(offload_redis_conn_t *rc, offload_redis_cmd_t *cmd, int status)
{
    if (status != REDIS_OK) {
        cmd->next = rc->free_cmds;
        rc->free_cmds = cmd;
        return REDIS_ERR;
    }

    if (rc->tail != NULL) {
        rc->tail->next = cmd;
    } else {
        rc->head = cmd;
    }
    rc->tail = cmd;

    if (!ev_is_active(&rc->watchdog)) {
        watchdog_arm(rc, cmd->allowed);
    }

    return REDIS_OK;
}


int
offload_redis_command(offload_redis_conn_t *rc, redisCallbackFn *fn,
    void *privdata, const char *format, ...)
{
    int                   status;
    va_list               ap;
    offload_redis_cmd_t  *cmd;

    if (rc->ac == NULL
        || (cmd = cmd_get(rc, fn, privdata, 0, format, strcspn(format, " ")))
           == NULL)
    {
        return REDIS_ERR;
    }

    va_start(ap, format);
    status = redisvAsyncCommand(rc->ac, reply_cb, cmd, format, ap);
    va_end(ap);

    return cmd_sent(rc, cmd, status);
}


int
offload_redis_command_block(offload_redis_conn_t *rc, int block_ms,
    redisCallbackFn *fn, void *privdata, int argc, const char **argv,
    const size_t *argvlen)
{
    int                   status;
    char                  stack[FORMAT_STACK], *text;
    size_t                len;
    offload_redis_cmd_t  *cmd;

    if (rc->ac == NULL
        || (cmd = cmd_get(rc, fn, privdata, block_ms, argv[0],
                          argvlen != NULL ? argvlen[0] : strlen(argv[0])))
           == NULL)
    {
        return REDIS_ERR;
    }

    /* formatted here (offload_resp.h), not by redisAsyncCommandArgv(): hiredis
     * copies the text into its output buffer either way */
    len = offload_resp_size(argc, argv, argvlen);
    text = len < sizeof(stack) ? stack : malloc(len + 1);
    if (text == NULL) {
        return cmd_sent(rc, cmd, REDIS_ERR);
    }

    offload_resp_write(text, argc, argv, argvlen);
    status = redisAsyncFormattedCommand(rc->ac, reply_cb, cmd, text, len);

    if (text != stack) {
        free(text);
    }

    return cmd_sent(rc, cmd, status);
}


int
offload_redis_command_argv(offload_redis_conn_t *rc, redisCallbackFn *fn,
    void *privdata, int argc, const char **argv, const size_t *argvlen)
{
    return offload_redis_command_block(rc, 0, fn, privdata, argc, argv,
                                       argvlen);
}


int
offload_redis_command_formatted(offload_redis_conn_t *rc, redisCallbackFn *fn,
    void *privdata, const char *name, const char *cmd, size_t len)
{
    offload_redis_cmd_t  *c;

    if (rc->ac == NULL
        || (c = cmd_get(rc, fn, privdata, 0, name, strlen(name))) == NULL)
    {
        return REDIS_ERR;
    }

    return cmd_sent(rc, c, redisAsyncFormattedCommand(rc->ac, reply_cb, c,
                                                      cmd, len));
}


/*
 * hiredis' own write (redisBufferWrite) frees its output buffer once all
 * of it is sent and starts an empty one, which the next command reallocs:
 * a large block, for which glibc's malloc first merges every small block
 * freed since (malloc_consolidate), and a worker frees hundreds with each
 * read's reply.  Written here, a buffer up to KEEP_OBUF is kept.  A write
 * that leaves bytes over, would block or fails, and a bigger buffer, go on
 * hiredis' way: redisAsyncHandleWrite() arms the write watcher, or drops
 * the connection.
 */
void
offload_redis_write(offload_redis_conn_t *rc)
{
    size_t              len;
    ssize_t             n;
    redisAsyncContext  *ac = rc->ac;

    if (ac == NULL || !(ac->c.flags & REDIS_CONNECTED)
        || (len = sdslen(ac->c.obuf)) == 0)
    {
        return;
    }

    if (sdsalloc(ac->c.obuf) <= KEEP_OBUF) {
        n = write(ac->c.fd, ac->c.obuf, len);

        if (n == (ssize_t) len) {
            sdsclear(ac->c.obuf);

            /* what redisAsyncHandleWrite() does once all is written */
            if (ac->ev.delWrite != NULL) {
                ac->ev.delWrite(ac->ev.data);
            }
            if (ac->ev.addRead != NULL) {
                ac->ev.addRead(ac->ev.data);
            }
            return;
        }

        if (n > 0) {
            sdsrange(ac->c.obuf, (int) n, -1);
        }
    }

    redisAsyncHandleWrite(ac);
}


int
offload_redis_send_plain(void *conn, int argc, const char **argv,
    const size_t *argvlen)
{
    return offload_redis_command_argv(conn, NULL, NULL, argc, argv, argvlen);
}


/* Frees the context and reconnects: from disconnect_cb for a connection
 * that was up (its pending callbacks run with NULL replies first), at once
 * for one still connecting (hiredis calls no disconnect callback then). */
static void
drop(offload_redis_conn_t *rc)
{
    redisAsyncContext  *ac = rc->ac;

    if (ac == NULL) {
        return;
    }

    if (ac->c.flags & REDIS_CONNECTED) {
        redisAsyncFree(ac);
        return;
    }

    rc->ac = NULL;
    ev_timer_stop(rc->loop, &rc->watchdog);
    redisAsyncFree(ac);
    schedule_retry(rc);
}


void
offload_redis_conn_out_of_step(offload_redis_conn_t *rc, const char *what)
{
    redisAsyncContext  *ac = rc->ac;

    if (ac == NULL || (ac->c.flags & (REDIS_DISCONNECTING | REDIS_FREEING))) {
        return;
    }

    rc->protocol_error = 1;
    log_error("%s: redis protocol error: %s: dropping the connection",
              rc->name, what);

    /* not redisAsyncDisconnect(): that waits for every pending reply, and
     * a server out of step may owe one for good */
    drop(rc);
}


static void
watchdog_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    double                 now, deadline;
    redisAsyncContext     *ac;
    offload_redis_conn_t  *rc = w->data;

    (void) loop;
    (void) revents;

    ac = rc->ac;
    if (ac == NULL) {
        return;
    }

    now = now_s();

    if (!(ac->c.flags & REDIS_CONNECTED)) {
        if (now < rc->connect_deadline) {
            watchdog_arm(rc, rc->connect_deadline - now);
            return;
        }

        if (rc->failures == 0) {
            log_warn("%s: cannot connect to redis: no answer in %d ms",
                     rc->name, rc->ep->timeout_ms);
        }

        drop(rc);
        return;
    }

    if (rc->head == NULL) {
        return;                         /* nothing to wait for */
    }

    deadline = (rc->head->sent_at > rc->progress_at ? rc->head->sent_at
                                                    : rc->progress_at)
               + rc->head->allowed;

    if (now < deadline) {
        watchdog_arm(rc, deadline - now);
        return;
    }

    if (bytes_moved(ac, &rc->seen)) {
        rc->progress_at = now;
        watchdog_arm(rc, rc->head->allowed);
        return;
    }

    if (rc->failures == 0) {
        log_warn("%s: redis did not answer in %.0f ms: dropping the "
                 "connection", rc->name, rc->head->allowed * 1000);
    }

    drop(rc);
}



void
offload_redis_conn_init(offload_redis_conn_t *rc, struct ev_loop *loop,
    const offload_redis_endpoint_t *ep, const char *name,
    offload_redis_conn_pt on_ready, offload_redis_conn_pt on_lost, void *data)
{
    memset(rc, 0, sizeof(*rc));
    rc->loop = loop;
    rc->ep = ep;
    rc->name = name;
    rc->on_ready = on_ready;
    rc->on_lost = on_lost;
    rc->data = data;
    ev_timer_init(&rc->retry, retry_cb, 0.0, 0.0);
    rc->retry.data = rc;
    ev_timer_init(&rc->watchdog, watchdog_cb, 0.0, 0.0);
    rc->watchdog.data = rc;
    ev_timer_init(&rc->ask_deadline, ask_deadline_cb, 0.0, 0.0);
    rc->ask_deadline.data = rc;
    ev_timer_init(&rc->watch_tick, watch_tick_cb, 1.0, 1.0);
    rc->watch_tick.data = rc;
}


void
offload_redis_conn_start(offload_redis_conn_t *rc)
{
    rc->stopped = 0;

    if (rc->ep->nsentinels > 0) {
        ev_timer_start(rc->loop, &rc->watch_tick);
    }

    connect_now(rc);
}


void
offload_redis_conn_stop(offload_redis_conn_t *rc)
{
    redisAsyncContext    *ac = rc->ac;
    offload_redis_cmd_t  *cmd;

    rc->stopped = 1;
    rc->ready = 0;
    ev_timer_stop(rc->loop, &rc->retry);
    ev_timer_stop(rc->loop, &rc->watchdog);
    ev_timer_stop(rc->loop, &rc->watch_tick);
    stop_asking(rc);
    stop_watching(rc);

    if (ac != NULL) {
        rc->ac = NULL;
        redisAsyncFree(ac);
    }

    while ((cmd = rc->free_cmds) != NULL) {
        rc->free_cmds = cmd->next;
        free(cmd);
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

    if (rc->asking != NULL) {
        close(rc->asking->c.fd);
    }

    if (rc->watching != NULL) {
        close(rc->watching->c.fd);
    }
}

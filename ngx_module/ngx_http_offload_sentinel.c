
/*
 * ngx_http_offload_sentinel.c -- Redis high availability for a peer:
 *
 * offload_redis sentinel://host:port,.../<master>: before one of the peer's
 * connections (command, subscriber, bulk) connects, this worker asks the
 * sentinels in turn, on a link of its own (with the link's connect timeout
 * and watchdog as each one's deadline), SENTINEL get-master-addr-by-name;
 * the connections waiting then connect to the answer.  Every reconnect asks
 * again; an answer naming another master than the last (a failover unheard)
 * drops the connections still up too.  A second link per worker subscribes
 * to +switch-master on one sentinel: a failover drops the peer's
 * connections at once, so they ask again; a READONLY or MASTERDOWN reply (a
 * master demoted under us, or a stale sentinel's answer) drops the
 * connection that got it, and the next round asks the next sentinel: the
 * query link, which stays up after an answer, would ask the same one,
 * which may go on naming a replica.  So does a ROLE other than master,
 * which every connection asks first (ngx_http_offload_link_open).  No
 * sentinel
 * answering is a failed connect: the usual backoff, and 503
 * redis_unavailable meanwhile.  With sentinel_password= both links AUTH
 * first (ngx_http_offload_link_open).
 *
 * The subscribed link is PINGed every NGX_HTTP_OFFLOAD_PING_INTERVAL: a
 * sentinel that stops answering without closing (a frozen process, a dead
 * host) is dropped by the link's watchdog and the next one subscribed to;
 * a failover announced meanwhile is found by asking the sentinels again
 * once subscribed anew.
 *
 * wait_replicas=N: a job's acceptance (an async 202; for a sync job, not
 * being refused) waits for WAIT N to count N replicas that have its XADD.
 * WAIT blocks the command connection, so one at a time is on its way: the
 * jobs accepted meanwhile share the next one.
 *
 * wait_replicas=all: N is every replica the sentinels could promote: those
 * SENTINEL REPLICAS lists for the master without s_down, o_down or
 * disconnected (a sentinel promotes none of those) and with its link to
 * the master up (only those can acknowledge a write), asked with every round
 * and every NGX_HTTP_OFFLOAD_COUNT_INTERVAL on the query link, together with
 * the master they are of: a count of another master than the one the
 * connections went to is a failover unheard (they reconnect).  Not the
 * master's own count of its replicas: during SENTINEL FAILOVER the replica
 * being promoted leaves the old master, which takes writes until demoted,
 * and its count would drop to the replicas that will lose them.  The
 * sentinels' count drops too, for a moment, before they name the new
 * master: the failover's leader kills the other sentinels' connections to
 * the replica it promotes, which they list "disconnected" meanwhile.  So a
 * count of fewer replicas is taken only once it has stood
 * NGX_HTTP_OFFLOAD_COUNT_SETTLE (a replica lost for good: jobs are 503
 * not_replicated that long); a count of more, at once.  Until the
 * sentinels answered (and after a failover, until they answer again), a
 * job is 503 not_replicated.
 *
 * cluster://: each master's peer WAITs on its own command connection, the
 * one that took the job's XADD (ngx_http_offload_cluster.c made it with
 * the cluster's wait_replicas=); "all" is the master's replicas in the
 * last slot map (CLUSTER SLOTS lists those not failed that synced once),
 * asked every NGX_HTTP_OFFLOAD_COUNT_INTERVAL then.
 */


#include "ngx_http_offload_module.h"


static ngx_http_offload_link_t *ngx_http_offload_master_link(
    ngx_http_offload_peer_t *peer, ngx_uint_t i);
static void ngx_http_offload_sentinel_query_up(ngx_http_offload_link_t *link);
static void ngx_http_offload_sentinel_query_down(
    ngx_http_offload_link_t *link);
static void ngx_http_offload_sentinel_round(ngx_http_offload_sentinel_t *s);
static void ngx_http_offload_sentinel_question(ngx_http_offload_link_t *link);
static void ngx_http_offload_sentinel_answer(redisAsyncContext *ac, void *r,
    void *privdata);
static ngx_int_t ngx_http_offload_sentinel_master(offload_addr_t *master,
    redisReply *reply);
static void ngx_http_offload_sentinel_none(ngx_http_offload_peer_t *peer);
static void ngx_http_offload_sentinel_watch_up(ngx_http_offload_link_t *link);
static void ngx_http_offload_sentinel_watch_down(
    ngx_http_offload_link_t *link);
static void ngx_http_offload_sentinel_switched(redisAsyncContext *ac,
    void *r, void *privdata);
static void ngx_http_offload_sentinel_ping(ngx_event_t *ev);
static void ngx_http_offload_sentinel_drop_all(ngx_http_offload_peer_t *peer);
static void ngx_http_offload_sentinel_refuted(ngx_http_offload_peer_t *peer);
static void ngx_http_offload_sentinel_count_tick(ngx_event_t *ev);
static ngx_int_t ngx_http_offload_sentinel_command(
    ngx_http_offload_link_t *link, const char *what, redisCallbackFn *fn,
    void *privdata);
static void ngx_http_offload_sentinel_count_ask(ngx_http_offload_link_t *link);
static void ngx_http_offload_sentinel_count_master(redisAsyncContext *ac,
    void *r, void *privdata);
static void ngx_http_offload_sentinel_counted(redisAsyncContext *ac, void *r,
    void *privdata);
static ngx_int_t ngx_http_offload_sentinel_up_replicas(redisReply *reply);
static redisReply *ngx_http_offload_sentinel_field(redisReply *entry,
    const char *name);
static void ngx_http_offload_wait_send(ngx_http_offload_peer_t *peer);
static void ngx_http_offload_wait_done(redisAsyncContext *ac, void *r,
    void *privdata);


/* the peer's connections to its master, for i = 0, 1, 2 */

static ngx_http_offload_link_t *
ngx_http_offload_master_link(ngx_http_offload_peer_t *peer, ngx_uint_t i)
{
    switch (i) {
    case 0:
        return &peer->command;
    case 1:
        return &peer->subscriber;
    case 2:
        return &peer->bulk;
    default:
        return NULL;
    }
}


/* before the peer's connections connect (ngx_http_offload_peer_start) */

void
ngx_http_offload_sentinel_start(ngx_http_offload_peer_t *peer, ngx_log_t *log)
{
    ngx_uint_t                    i;
    ngx_http_offload_link_t      *link;
    ngx_http_offload_sentinel_t  *s;

    s = peer->sentinels;

    for (i = 0; (link = ngx_http_offload_master_link(peer, i)); i++) {
        link->addr = &s->master;
        link->ask_sentinel = 1;
    }

    ngx_http_offload_link_init(&s->query, peer, "sentinel query",
                               ngx_http_offload_sentinel_query_up, log);
    s->query.on_down = ngx_http_offload_sentinel_query_down;
    s->query.to_sentinel = 1;
    s->asked = ngx_random() % s->naddrs;
    s->query.addr = &s->addrs[s->asked];

    ngx_http_offload_link_init(&s->watch, peer, "sentinel watch",
                               ngx_http_offload_sentinel_watch_up, log);
    s->watch.on_down = ngx_http_offload_sentinel_watch_down;
    s->watch.to_sentinel = 1;
    s->watched = ngx_random() % s->naddrs;
    s->watch.addr = &s->addrs[s->watched];

    s->ping.handler = ngx_http_offload_sentinel_ping;
    s->ping.data = &s->watch;
    s->ping.log = log;
    s->ping.cancelable = 1;

    s->replicas = -1;
    s->count.handler = ngx_http_offload_sentinel_count_tick;
    s->count.data = &s->query;
    s->count.log = log;
    s->count.cancelable = 1;

    if (peer->wait_replicas == NGX_HTTP_OFFLOAD_WAIT_ALL) {
        ngx_add_timer(&s->count, NGX_HTTP_OFFLOAD_COUNT_INTERVAL);
    }

    ngx_http_offload_link_connect(&s->watch);
}


void
ngx_http_offload_sentinel_stop(ngx_http_offload_peer_t *peer)
{
    if (peer->sentinels->ping.timer_set) {
        ngx_del_timer(&peer->sentinels->ping);
    }

    if (peer->sentinels->count.timer_set) {
        ngx_del_timer(&peer->sentinels->count);
    }

    ngx_http_offload_link_close(&peer->sentinels->query);
    ngx_http_offload_link_close(&peer->sentinels->watch);
}


/*
 * One of the peer's connections wants the master's address: it waits for
 * the round of questions on its way, or starts one.
 */

void
ngx_http_offload_sentinel_ask(ngx_http_offload_link_t *link)
{
    ngx_http_offload_sentinel_t  *s;

    s = link->peer->sentinels;

    link->awaiting = 1;

    ngx_http_offload_sentinel_round(s);
}


/* a round of questions, unless one is on its way */

static void
ngx_http_offload_sentinel_round(ngx_http_offload_sentinel_t *s)
{
    if (s->asking) {
        return;
    }

    s->asking = 1;
    s->tried = 0;

    ngx_http_offload_link_begin(&s->query,
                                ngx_http_offload_sentinel_question);
}


static void
ngx_http_offload_sentinel_query_up(ngx_http_offload_link_t *link)
{
    if (link->peer->sentinels->asking) {
        ngx_http_offload_sentinel_question(link);

    } else if (link->peer->wait_replicas == NGX_HTTP_OFFLOAD_WAIT_ALL) {
        ngx_http_offload_sentinel_count_ask(link);
    }
}


static void
ngx_http_offload_sentinel_question(ngx_http_offload_link_t *link)
{
    /* maybe inside the connect callback, where freeing the context is
     * unsafe: if the question cannot be sent, the watchdog drops it */

    if (ngx_http_offload_sentinel_command(link, "get-master-addr-by-name",
                                          ngx_http_offload_sentinel_answer,
                                          NULL)
        != NGX_OK)
    {
        ngx_add_timer(&link->watchdog, 1);
    }
}


/* the query connection is gone or was never made: the next sentinel */

static void
ngx_http_offload_sentinel_query_down(ngx_http_offload_link_t *link)
{
    ngx_http_offload_sentinel_t  *s;

    s = link->peer->sentinels;

    if (ngx_http_offload_link_rotate(link, s->addrs, s->naddrs, &s->asked,
                                     &s->tried, s->asking)
        == NGX_DONE)
    {
        ngx_http_offload_sentinel_none(link->peer);
    }
}


static void
ngx_http_offload_sentinel_answer(redisAsyncContext *ac, void *r,
    void *privdata)
{
    redisReply                   *reply = r;
    ngx_uint_t                    i;
    offload_addr_t                was;
    ngx_http_offload_peer_t      *peer;
    ngx_http_offload_link_t      *link, *waiting;
    ngx_http_offload_sentinel_t  *s;

    link = ngx_http_offload_link_replied(ac, reply);
    peer = link->peer;
    s = peer->sentinels;

    if (reply == NULL || !s->asking) {
        return;                 /* the query's on_down goes on */
    }

    was = s->master;

    if (ngx_http_offload_sentinel_master(&s->master, reply) != NGX_OK) {
        /* an error: NOAUTH (no sentinel_password= given) ... */
        ngx_log_error(NGX_LOG_WARN, link->log, 0,
                      "offload: redis %V: sentinel %s:%d names no usable "
                      "master for \"%V\"%s%s, asking the next one",
                      &peer->name, link->addr->host, link->addr->port,
                      &s->master_name,
                      reply->type == REDIS_REPLY_ERROR ? ": " : "",
                      reply->type == REDIS_REPLY_ERROR ? reply->str : "");
        ngx_http_offload_link_drop(link);
        return;
    }

    ngx_log_error(NGX_LOG_INFO, link->log, 0,
                  "offload: redis %V: sentinel %s:%d names master %s:%d",
                  &peer->name, link->addr->host, link->addr->port,
                  s->master.host, s->master.port);

    s->asking = 0;
    s->refuted = 0;

    /*
     * A failover gone unheard: while the watch subscribed anew, or on a
     * sentinel that never announces it (one cut off with the old master),
     * asked by one connection's reconnect.  The connections still up are
     * on the old master, which takes writes until it is demoted: they go
     * too.  After a +switch-master the old master is forgotten (was.port
     * is 0): those connections went already.
     */

    if (was.port != 0
        && (was.port != s->master.port
            || ngx_strcmp(was.host, s->master.host) != 0))
    {
        ngx_log_error(NGX_LOG_NOTICE, link->log, 0,
                      "offload: redis %V: master moved from %s:%d to "
                      "%s:%d unheard, reconnecting", &peer->name,
                      was.host, was.port, s->master.host, s->master.port);

        ngx_http_offload_sentinel_drop_all(peer);
    }

    /* the count of the master named, asked after any drop_all, which
     * would take it for the old master's */

    if (peer->wait_replicas == NGX_HTTP_OFFLOAD_WAIT_ALL) {
        ngx_http_offload_sentinel_count_ask(link);
    }

    for (i = 0; (waiting = ngx_http_offload_master_link(peer, i)); i++) {
        if (waiting->awaiting) {
            waiting->awaiting = 0;
            ngx_http_offload_link_open(waiting);
        }
    }
}


/*
 * [ip, port]: only an address is used, never a host name, which hiredis
 * would resolve with a blocking getaddrinfo() in the worker.
 */

static ngx_int_t
ngx_http_offload_sentinel_master(offload_addr_t *master, redisReply *reply)
{
    u_char           buf[sizeof(struct in6_addr)];
    ngx_int_t        port;
    redisReply      *host, *p;

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2
        || reply->element[0]->type != REDIS_REPLY_STRING
        || reply->element[1]->type != REDIS_REPLY_STRING)
    {
        return NGX_ERROR;
    }

    host = reply->element[0];
    p = reply->element[1];

    if (host->len >= sizeof(master->host)) {
        return NGX_ERROR;
    }

    port = ngx_atoi((u_char *) p->str, p->len);

    if (port < 1 || port > 65535) {
        return NGX_ERROR;
    }

    if (inet_pton(AF_INET, host->str, buf) != 1
        && inet_pton(AF_INET6, host->str, buf) != 1)
    {
        return NGX_ERROR;
    }

    ngx_memcpy(master->host, host->str, host->len + 1);
    master->port = (int) port;
    master->is_unix = 0;

    return NGX_OK;
}


/* no sentinel named the master: a failed connect for everyone waiting */

static void
ngx_http_offload_sentinel_none(ngx_http_offload_peer_t *peer)
{
    ngx_uint_t                i;
    ngx_http_offload_link_t  *link;

    peer->sentinels->asking = 0;

    for (i = 0; (link = ngx_http_offload_master_link(peer, i)); i++) {
        if (link->awaiting) {
            link->awaiting = 0;
            ngx_http_offload_link_retry(link, "no sentinel named the master");
        }
    }
}


/*
 * PSUBSCRIBE, not SUBSCRIBE, to the channel: the reply to a PING on a
 * subscribed connection, ["pong", <argument>], is taken by hiredis 0.14
 * for a message to the pattern <argument>, so PING +switch-master is
 * answered to ngx_http_offload_sentinel_switched() too.
 */

static void
ngx_http_offload_sentinel_watch_up(ngx_http_offload_link_t *link)
{
    const char                   *argv[2];
    size_t                        argvlen[2];
    ngx_http_offload_sentinel_t  *s;

    s = link->peer->sentinels;

    argv[0] = "PSUBSCRIBE";
    argvlen[0] = sizeof("PSUBSCRIBE") - 1;
    argv[1] = "+switch-master";
    argvlen[1] = sizeof("+switch-master") - 1;

    /* inside the connect callback: see ngx_http_offload_subscriber_up() */

    if (ngx_http_offload_link_send(link, ngx_http_offload_sentinel_switched,
                                   NULL, 2, argv, argvlen)
        != NGX_OK)
    {
        ngx_add_timer(&link->watchdog, 1);
        return;
    }

    ngx_add_timer(&s->ping, NGX_HTTP_OFFLOAD_PING_INTERVAL);

    /* a failover may have gone unheard meanwhile: the answer tells */

    if (s->watched_once) {
        ngx_http_offload_sentinel_round(s);
    }

    s->watched_once = 1;
}


/* the watch moves on to the next sentinel, after the backoff */

static void
ngx_http_offload_sentinel_watch_down(ngx_http_offload_link_t *link)
{
    ngx_http_offload_sentinel_t  *s;

    s = link->peer->sentinels;

    if (s->ping.timer_set) {
        ngx_del_timer(&s->ping);
    }

    s->watched = (s->watched + 1) % s->naddrs;
    link->addr = &s->addrs[s->watched];

    ngx_http_offload_link_schedule(link);
}


/*
 * The reply comes to ngx_http_offload_sentinel_switched(), which restarts
 * the link's watchdog (ngx_http_offload_link_replied): a sentinel silent
 * for NGX_HTTP_OFFLOAD_WATCHDOG is dropped, and the next one watched.
 */

static void
ngx_http_offload_sentinel_ping(ngx_event_t *ev)
{
    ngx_http_offload_link_t  *link = ev->data;

    if (ngx_http_offload_link_ping(link, "+switch-master") != NGX_OK) {
        return;                 /* the link is going: its on_down follows */
    }

    ngx_add_timer(ev, NGX_HTTP_OFFLOAD_PING_INTERVAL);
}


/*
 * "pmessage" "+switch-master" "+switch-master"
 * "<master> <old ip> <old port> <new ip> <new port>"; or the subscription's
 * confirmation, a pong, an error (NOAUTH: no sentinel_password= given).
 */

static void
ngx_http_offload_sentinel_switched(redisAsyncContext *ac, void *r,
    void *privdata)
{
    redisReply                   *reply = r;
    redisReply                   *payload;
    ngx_uint_t                    message;
    ngx_http_offload_peer_t      *peer;
    ngx_http_offload_link_t      *link;
    ngx_http_offload_sentinel_t  *s;

    message = reply != NULL && reply->type == REDIS_REPLY_ARRAY
              && reply->elements == 4
              && reply->element[0]->type == REDIS_REPLY_STRING
              && reply->element[0]->len == 8
              && ngx_strncmp(reply->element[0]->str, "pmessage", 8) == 0
              && reply->element[3]->type == REDIS_REPLY_STRING;

    /* a message answers no command: the watchdog goes on waiting for the
     * pong of a PING sent before the message came */
    link = message ? ac->data : ngx_http_offload_link_replied(ac, reply);
    peer = link->peer;
    s = peer->sentinels;

    if (reply != NULL && reply->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_ERR, link->log, 0,
                      "offload: redis %V: sentinel %s:%d refused to "
                      "subscribe: %s", &peer->name, link->addr->host,
                      link->addr->port, reply->str);
        ngx_http_offload_link_drop(link);
        return;
    }

    if (!message) {
        return;
    }

    payload = reply->element[3];

    if (payload->len <= s->master_name.len
        || ngx_strncmp(payload->str, s->master_name.data,
                       s->master_name.len) != 0
        || payload->str[s->master_name.len] != ' ')
    {
        return;
    }

    ngx_log_error(NGX_LOG_NOTICE, link->log, 0,
                  "offload: redis %V: failover: %s, reconnecting",
                  &peer->name, payload->str);

    s->master.port = 0;         /* heard: the next answer is no news */

    ngx_http_offload_sentinel_drop_all(peer);
}


/*
 * The connections go and ask again, those waiting out a backoff too (the
 * master they could not reach is replaced now).  A round on its way may
 * bring the old master: it is cut short, and the next sentinel asked.
 * The count of replicas was the old master's, and so is the reply to a
 * SENTINEL REPLICAS asked before: a new epoch has it ignored.
 */

static void
ngx_http_offload_sentinel_drop_all(ngx_http_offload_peer_t *peer)
{
    ngx_uint_t                i;
    ngx_http_offload_link_t  *link;

    peer->sentinels->replicas = -1;
    peer->sentinels->fewer_since = 0;
    peer->sentinels->epoch++;

    if (peer->sentinels->asking) {
        ngx_http_offload_link_drop(&peer->sentinels->query);
    }

    for (i = 0; (link = ngx_http_offload_master_link(peer, i)); i++) {

        if (link->reconnect.timer_set) {
            ngx_del_timer(&link->reconnect);
            link->retries = 0;
            ngx_http_offload_link_connect(link);
            continue;
        }

        ngx_http_offload_link_drop(link);
    }
}


/* wait_replicas=all: the count again, on the idle query link */

static void
ngx_http_offload_sentinel_count_tick(ngx_event_t *ev)
{
    ngx_http_offload_link_t      *link = ev->data;
    ngx_http_offload_sentinel_t  *s;

    s = link->peer->sentinels;

    ngx_add_timer(ev, NGX_HTTP_OFFLOAD_COUNT_INTERVAL);

    if (s->asking) {
        return;                 /* the round asks it too */
    }

    if (link->up) {
        ngx_http_offload_sentinel_count_ask(link);

    } else if (link->ac == NULL) {
        ngx_http_offload_link_connect(link);    /* its on_up asks */
    }
}


/*
 * The master first, then its replicas, in one write on the same link: the
 * sentinel answers both from the same view, so the count is known to be
 * of the master it names.  Not sent: the link is going, the next tick
 * asks again.
 */

static void
ngx_http_offload_sentinel_count_ask(ngx_http_offload_link_t *link)
{
    void                         *epoch;
    ngx_http_offload_sentinel_t  *s;

    s = link->peer->sentinels;
    epoch = (void *) (uintptr_t) s->epoch;

    if (ngx_http_offload_sentinel_command(link, "get-master-addr-by-name",
                                      ngx_http_offload_sentinel_count_master,
                                      epoch)
        != NGX_OK)
    {
        return;
    }

    (void) ngx_http_offload_sentinel_command(link, "REPLICAS",
                                         ngx_http_offload_sentinel_counted,
                                         epoch);
}


/*
 * The master the count to come is of.  Another than the one the peer's
 * connections went to: the sentinel asked has switched to the new master
 * while the one watched has not announced it yet (the failover's leader
 * publishes +switch-master only once the other replicas follow the new
 * master, the others as soon as they learn of it), and the count is of
 * the new master's replicas, maybe none yet, while the command connection
 * still writes to the old master: WAIT for that count would accept jobs
 * the old master's demotion drops.  The failover is taken as heard: every
 * connection is dropped (drop_all, which also starts a new epoch, so the
 * count's own reply is ignored) and asks again.  With no master known (the
 * connections are asking already) the count waits for their round.
 */

static void
ngx_http_offload_sentinel_count_master(redisAsyncContext *ac, void *r,
    void *privdata)
{
    redisReply                   *reply = r;
    offload_addr_t                named;
    ngx_http_offload_peer_t      *peer;
    ngx_http_offload_link_t      *link;
    ngx_http_offload_sentinel_t  *s;

    link = ngx_http_offload_link_replied(ac, reply);
    peer = link->peer;
    s = peer->sentinels;

    if (reply == NULL || (ngx_uint_t) (uintptr_t) privdata != s->epoch
        || ngx_http_offload_sentinel_master(&named, reply) != NGX_OK)
    {
        return;                 /* an error: the REPLICAS reply logs it */
    }

    if (s->master.port == 0) {
        s->epoch++;
        return;
    }

    if (named.port == s->master.port
        && ngx_strcmp(named.host, s->master.host) == 0)
    {
        return;
    }

    ngx_log_error(NGX_LOG_NOTICE, link->log, 0,
                  "offload: redis %V: sentinel %s:%d counts the replicas "
                  "of master %s:%d, not %s:%d: a failover unheard, "
                  "reconnecting", &peer->name, link->addr->host,
                  link->addr->port, named.host, named.port, s->master.host,
                  s->master.port);

    s->master.port = 0;         /* heard: the next answer is no news */

    ngx_http_offload_sentinel_drop_all(peer);
}


/* SENTINEL <what> <master name>, its reply to fn with privdata. */

static ngx_int_t
ngx_http_offload_sentinel_command(ngx_http_offload_link_t *link,
    const char *what, redisCallbackFn *fn, void *privdata)
{
    const char                   *argv[3];
    size_t                        argvlen[3];
    ngx_http_offload_sentinel_t  *s;

    s = link->peer->sentinels;

    argv[0] = "SENTINEL";
    argvlen[0] = sizeof("SENTINEL") - 1;
    argv[1] = what;
    argvlen[1] = ngx_strlen(what);
    argv[2] = (const char *) s->master_name.data;
    argvlen[2] = s->master_name.len;

    return ngx_http_offload_link_send(link, fn, privdata, 3, argv, argvlen);
}


static void
ngx_http_offload_sentinel_counted(redisAsyncContext *ac, void *r,
    void *privdata)
{
    redisReply                   *reply = r;
    ngx_int_t                     n;
    ngx_http_offload_link_t      *link;
    ngx_http_offload_sentinel_t  *s;

    link = ngx_http_offload_link_replied(ac, reply);
    s = link->peer->sentinels;

    if (reply == NULL || (ngx_uint_t) (uintptr_t) privdata != s->epoch) {
        return;                 /* asked of the master before a failover */
    }

    n = ngx_http_offload_sentinel_up_replicas(reply);

    if (n == NGX_ERROR) {
        /* the last count stands: a sentinel's error, or one not watching
         * this master, says nothing about its replicas */
        ngx_log_error(NGX_LOG_WARN, link->log, 0,
                      "offload: redis %V: sentinel %s:%d did not list the "
                      "replicas of \"%V\"%s%s", &link->peer->name,
                      link->addr->host, link->addr->port, &s->master_name,
                      reply->type == REDIS_REPLY_ERROR ? ": " : "",
                      reply->type == REDIS_REPLY_ERROR ? reply->str : "");
        return;
    }

    if (n < s->replicas) {

        if (s->fewer_since == 0) {
            s->fewer_since = ngx_current_msec | 1;      /* never 0 */

            ngx_log_error(NGX_LOG_NOTICE, link->log, 0,
                          "offload: redis %V: wait_replicas=all: replicas "
                          "up: %i of %i, says sentinel %s:%d: taken if "
                          "still so in %M ms", &link->peer->name, n,
                          s->replicas, link->addr->host, link->addr->port,
                          (ngx_msec_t) NGX_HTTP_OFFLOAD_COUNT_SETTLE);
        }

        /* signed: the mark may be a millisecond ahead ("| 1") */

        if ((ngx_msec_int_t) (ngx_current_msec - s->fewer_since)
            < NGX_HTTP_OFFLOAD_COUNT_SETTLE)
        {
            return;
        }
    }

    s->fewer_since = 0;

    if (n != s->replicas) {
        ngx_log_error(NGX_LOG_NOTICE, link->log, 0,
                      "offload: redis %V: wait_replicas=all: replicas "
                      "up: %i, says sentinel %s:%d", &link->peer->name, n,
                      link->addr->host, link->addr->port);
        s->replicas = n;
    }
}


/*
 * SENTINEL REPLICAS: an array of replicas, each an array of field, value;
 * the ones whose "flags" have none of s_down, o_down, disconnected and
 * whose "master-link-status" is "ok": a replica in a full resync (after a
 * restart) or with a broken link acknowledges no write, and a WAIT that
 * counted it would never be met.
 */

static ngx_int_t
ngx_http_offload_sentinel_up_replicas(redisReply *reply)
{
    size_t       i;
    ngx_int_t    n;
    redisReply  *replica, *flags, *link;

    if (reply->type != REDIS_REPLY_ARRAY) {
        return NGX_ERROR;
    }

    n = 0;

    for (i = 0; i < reply->elements; i++) {
        replica = reply->element[i];

        if (replica->type != REDIS_REPLY_ARRAY) {
            return NGX_ERROR;
        }

        flags = ngx_http_offload_sentinel_field(replica, "flags");

        if (flags == NULL) {
            return NGX_ERROR;
        }

        link = ngx_http_offload_sentinel_field(replica, "master-link-status");

        if (ngx_strstr(flags->str, "s_down") == NULL
            && ngx_strstr(flags->str, "o_down") == NULL
            && ngx_strstr(flags->str, "disconnected") == NULL
            && link != NULL && link->len == 2
            && ngx_strncmp(link->str, "ok", 2) == 0)
        {
            n++;
        }
    }

    return n;
}


/* the string value of a field of a SENTINEL REPLICAS entry, or NULL */

static redisReply *
ngx_http_offload_sentinel_field(redisReply *entry, const char *name)
{
    size_t       k, len;
    redisReply  *field;

    len = ngx_strlen(name);

    for (k = 0; k + 1 < entry->elements; k += 2) {
        field = entry->element[k];

        if (field->type == REDIS_REPLY_STRING && field->len == len
            && ngx_strncmp(field->str, name, len) == 0
            && entry->element[k + 1]->type == REDIS_REPLY_STRING)
        {
            return entry->element[k + 1];
        }
    }

    return NULL;
}


/*
 * A master demoted to a replica answers writes with READONLY, a replica
 * cut off from its master answers with MASTERDOWN: the connection is as
 * good as lost.  Called inside a reply callback: the drop is deferred.
 */

void
ngx_http_offload_sentinel_error(ngx_http_offload_link_t *link,
    redisReply *reply)
{
    if (ngx_strncmp(reply->str, "READONLY", 8) != 0
        && ngx_strncmp(reply->str, "MASTERDOWN", 10) != 0)
    {
        return;
    }

    ngx_log_error(NGX_LOG_WARN, link->log, 0,
                  "offload: redis %V %s connection: %s, reconnecting",
                  &link->peer->name, link->role, reply->str);

    ngx_http_offload_sentinel_refuted(link->peer);
    ngx_http_offload_link_drop(link);
}


/*
 * ROLE's reply on a connection to the master named: NGX_OK for a master,
 * else (a replica, a sentinel: a stale sentinel's answer) the next
 * sentinel is asked, NGX_DECLINED.  Logged as a failed connect is.
 */

ngx_int_t
ngx_http_offload_sentinel_role(ngx_http_offload_link_t *link,
    redisReply *reply)
{
    ngx_uint_t   level;
    redisReply  *role;

    if (reply->elements == 0
        || reply->element[0]->type != REDIS_REPLY_STRING)
    {
        return NGX_OK;          /* not a ROLE reply Redis sends */
    }

    role = reply->element[0];

    if (role->len == 6 && ngx_strncmp(role->str, "master", 6) == 0) {
        return NGX_OK;
    }

    level = (link->failures == 0) ? NGX_LOG_WARN : NGX_LOG_INFO;

    ngx_log_error(level, link->log, 0,
                  "offload: redis %V %s connection: %s:%d, named by the "
                  "sentinels, is a %s, not a master: asking the next "
                  "sentinel", &link->peer->name, link->role,
                  link->addr->host, link->addr->port, role->str);

    ngx_http_offload_sentinel_refuted(link->peer);

    return NGX_DECLINED;
}


/*
 * The master the last answer named is none (any more): the sentinel that
 * named it may be stale (cut off, or not told of a failover yet) and would
 * name it again.  The next round asks the next sentinel: the query link
 * goes (its on_down moves on), or, gone already, moves on now, unless a
 * round is on its way (which moves on by itself).  Once per answer:
 * several connections may find it out.  An answer naming another master
 * then moves every connection (a failover unheard).
 */

static void
ngx_http_offload_sentinel_refuted(ngx_http_offload_peer_t *peer)
{
    ngx_http_offload_sentinel_t  *s;

    s = peer->sentinels;

    if (s->refuted || s->naddrs == 1) {
        return;
    }

    s->refuted = 1;

    if (s->query.ac != NULL) {
        ngx_http_offload_link_drop(&s->query);

    } else if (!s->asking) {
        (void) ngx_http_offload_link_rotate(&s->query, s->addrs, s->naddrs,
                                            &s->asked, &s->tried, 0);
    }
}


/* the job's XADD took: it is answered once WAIT counted its replicas */

void
ngx_http_offload_replicate(ngx_http_offload_ctx_t *ctx)
{
    ngx_http_offload_peer_t  *peer;

    peer = ctx->peer;

    ngx_queue_insert_tail(&peer->replicating, &ctx->replication);
    ctx->replicating = 1;

    if (!peer->waiting) {
        ngx_http_offload_wait_send(peer);
    }
}


/* the request ends first (an answer, a client gone) */

void
ngx_http_offload_replicate_stop(ngx_http_offload_ctx_t *ctx)
{
    if (ctx->replicating) {
        ngx_queue_remove(&ctx->replication);
        ctx->replicating = 0;
    }
}


/*
 * On the command connection, which sent the XADDs of every job waiting:
 * WAIT counts the replicas that have all this connection wrote before it.
 */

static void
ngx_http_offload_wait_send(ngx_http_offload_peer_t *peer)
{
    u_char                   replicas[NGX_INT_T_LEN], timeout[NGX_INT_T_LEN];
    ngx_queue_t             *q;
    const char              *argv[3];
    size_t                   argvlen[3];
    ngx_http_offload_ctx_t  *ctx;

    if (peer->wait_replicas != NGX_HTTP_OFFLOAD_WAIT_ALL) {
        peer->wait_sent = peer->wait_replicas;

    } else if (peer->parent != NULL) {
        if (!peer->counted) {
            goto failed;        /* a master a redirect named, not mapped */
        }

        peer->wait_sent = peer->replicas;       /* a cluster's master */

    } else if (peer->sentinels->replicas >= 0) {
        peer->wait_sent = peer->sentinels->replicas;

    } else {
        goto failed;            /* not counted yet */
    }

    argv[0] = "WAIT";
    argvlen[0] = sizeof("WAIT") - 1;
    argv[1] = (const char *) replicas;
    argvlen[1] = ngx_sprintf(replicas, "%ui", peer->wait_sent) - replicas;
    argv[2] = (const char *) timeout;
    argvlen[2] = ngx_sprintf(timeout, "%M", peer->wait_timeout) - timeout;

    if (ngx_http_offload_link_send(&peer->command, ngx_http_offload_wait_done,
                                   NULL, 3, argv, argvlen)
        == NGX_OK)
    {
        ngx_queue_add(&peer->waited, &peer->replicating);
        ngx_queue_init(&peer->replicating);
        peer->waiting = 1;
        return;
    }

failed:

    /* the connection is gone: nobody can tell whether replicas have them */

    while (!ngx_queue_empty(&peer->replicating)) {
        q = ngx_queue_head(&peer->replicating);
        ctx = ngx_queue_data(q, ngx_http_offload_ctx_t, replication);
        ngx_http_offload_not_replicated(ctx);
    }
}


static void
ngx_http_offload_wait_done(redisAsyncContext *ac, void *r, void *privdata)
{
    redisReply               *reply = r;
    ngx_uint_t                ok;
    ngx_queue_t              *q;
    ngx_http_offload_peer_t  *peer;
    ngx_http_offload_link_t  *link;
    ngx_http_offload_ctx_t   *ctx;

    link = ngx_http_offload_link_replied(ac, reply);
    peer = link->peer;

    peer->waiting = 0;

    ok = reply != NULL && reply->type == REDIS_REPLY_INTEGER
         && reply->integer >= (long long) peer->wait_sent;

    if (reply != NULL && !ok) {
        ngx_log_error(NGX_LOG_WARN, link->log, 0,
                      "offload: redis %V: WAIT %ui %M: %s",
                      &peer->name, peer->wait_sent, peer->wait_timeout,
                      reply->type == REDIS_REPLY_INTEGER ? "too few replicas"
                      : reply->type == REDIS_REPLY_ERROR ? reply->str
                      : "unexpected reply");
    }

    while (!ngx_queue_empty(&peer->waited)) {
        q = ngx_queue_head(&peer->waited);
        ctx = ngx_queue_data(q, ngx_http_offload_ctx_t, replication);

        if (!ok) {
            ngx_http_offload_not_replicated(ctx);
            continue;
        }

        ngx_http_offload_replicate_stop(ctx);

        if (ctx->async) {
            ngx_http_offload_accepted(ctx, (u_char *) "queued", 6);
        }
    }

    if (!ngx_queue_empty(&peer->replicating)) {
        ngx_http_offload_wait_send(peer);
    }
}


/*
 * 503: the job is in the stream and may well run, but a failover now
 * could lose it; the client may retry (with an Idempotency-Key, safely).
 */

void
ngx_http_offload_not_replicated(ngx_http_offload_ctx_t *ctx)
{
    ngx_http_offload_replicate_stop(ctx);

    ngx_http_offload_answer_job_error(ctx, NGX_HTTP_SERVICE_UNAVAILABLE,
                                      "not_replicated",
                                      "the job did not reach its replicas "
                                      "in time: it may still run");
}

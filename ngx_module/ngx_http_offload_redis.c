
/*
 * ngx_http_offload_redis.c -- a hiredis 0.14 async context driven by nginx:
 * the context's socket is wrapped in an nginx connection and its event
 * hooks map onto nginx events.  hiredis 0.14 has no timeouts of its own, so
 * the connect timeout, the command watchdog and the reconnect backoff are
 * nginx timers.  A context is never reused: every reconnect makes a new one.
 *
 * A link connected is not yet usable: a server may accept the connection
 * and refuse what the link needs (a wrong password, an ACL user without
 * the channels it subscribes to, maxclients, a proxy with no server
 * behind it).  Only once the link's setup is answered -- its first
 * subscription confirmed, or, on a link that does not subscribe, its AUTH
 * and SELECT (or, with neither, a PING) answered OK, and on a master the
 * sentinels named, ROLE saying it is one -- is it "up" in the log and the
 * metrics, and do its backoff and its count of failures in a row start
 * again: a server that accepts and refuses is tried at the backoff's
 * pace, and logged at info after the first time.
 */


#include "ngx_http_offload_module.h"
#include "offload_reply_guard.h"
#include "offload_resp.h"


/*
 * hiredis's own reply dispatch, what redisAsyncHandleRead() runs after its
 * read: exported by every hiredis (0.14 and 1.x), declared only in 1.x's
 * async_private.h.
 */
void redisProcessCallbacks(redisAsyncContext *ac);


static void ngx_http_offload_reply_refused(redisAsyncContext *ac,
    const char *why);
static ngx_int_t ngx_http_offload_refusal(redisReply *reply);
static void ngx_http_offload_troubled(ngx_http_offload_peer_t *peer);
static void ngx_http_offload_link_read_handler(ngx_event_t *rev);
static void ngx_http_offload_link_write_handler(ngx_event_t *wev);
static void ngx_http_offload_link_write(ngx_http_offload_link_t *link,
    redisAsyncContext *ac);
static void ngx_http_offload_link_handle_write(ngx_http_offload_link_t *link,
    redisAsyncContext *ac);
static ngx_http_offload_stream_t *ngx_http_offload_link_blank(
    ngx_http_offload_stream_t *st, ngx_log_t *log);
static void ngx_http_offload_link_add_read(void *privdata);
static void ngx_http_offload_link_del_read(void *privdata);
static void ngx_http_offload_link_add_write(void *privdata);
static void ngx_http_offload_link_del_write(void *privdata);
static void ngx_http_offload_link_cleanup(void *privdata);
static void ngx_http_offload_link_connected(const redisAsyncContext *ac,
    int status);
static void ngx_http_offload_link_disconnected(const redisAsyncContext *ac,
    int status);
static void ngx_http_offload_link_setup_done(redisAsyncContext *ac,
    void *r, void *privdata);
static void ngx_http_offload_link_probed(redisAsyncContext *ac, void *r,
    void *privdata);
static void ngx_http_offload_link_role_done(redisAsyncContext *ac, void *r,
    void *privdata);
static void ngx_http_offload_link_refused(ngx_http_offload_link_t *link,
    redisReply *reply);
static void ngx_http_offload_link_usable(ngx_http_offload_link_t *link);
static void ngx_http_offload_link_watch(ngx_http_offload_link_t *link);
static ngx_uint_t ngx_http_offload_subscribed_reply(redisReply *reply);
static void ngx_http_offload_link_failed(ngx_http_offload_link_t *link,
    const char *err);
static void ngx_http_offload_link_again(ngx_http_offload_link_t *link);
static void ngx_http_offload_link_reconnect_handler(ngx_event_t *ev);
static void ngx_http_offload_link_timeout_handler(ngx_event_t *ev);
static void ngx_http_offload_link_sent(ngx_http_offload_link_t *link);
static ngx_int_t ngx_http_offload_link_feed(ngx_http_offload_link_t *link);
static ngx_int_t ngx_http_offload_link_send_small(
    ngx_http_offload_link_t *link, ngx_http_offload_small_t *small);
static ngx_uint_t ngx_http_offload_window(ngx_http_offload_cursor_t *at,
    size_t len, ngx_str_t *part);
static size_t ngx_http_offload_resp_len(int from, int to,
    const size_t *argvlen);
static u_char *ngx_http_offload_resp_args(u_char *p, int from, int to,
    const char **argv, const size_t *argvlen);


void
ngx_http_offload_link_init(ngx_http_offload_link_t *link,
    ngx_http_offload_peer_t *peer, const char *role,
    ngx_http_offload_link_up_pt on_up, ngx_log_t *log)
{
    link->peer = peer;
    link->role = role;
    link->on_up = on_up;
    link->on_down = NULL;
    link->addr = &peer->addr;
    link->log = log;

    ngx_queue_init(&link->streams);

    link->reconnect.handler = ngx_http_offload_link_reconnect_handler;
    link->reconnect.data = link;
    link->reconnect.log = log;
    link->reconnect.cancelable = 1;

    link->connect_timer.handler = ngx_http_offload_link_timeout_handler;
    link->connect_timer.data = link;
    link->connect_timer.log = log;
    link->connect_timer.cancelable = 1;

    /* no cancelable timer: ngx_http_offload_link_watch() */

    link->watchdog.handler = ngx_http_offload_link_timeout_handler;
    link->watchdog.data = link;
    link->watchdog.log = log;
}


/* a peer named by its sentinels asks them where its master is first */

void
ngx_http_offload_link_connect(ngx_http_offload_link_t *link)
{
    if (link->ask_sentinel) {
        ngx_http_offload_sentinel_ask(link);
        return;
    }

    ngx_http_offload_link_open(link);
}


/*
 * The query link of sentinels or of a cluster's seeds, which asks the
 * addresses in turn: a round's question now if the link is up, else once
 * it is (its on_up asks) -- it is made now unless on its way.
 */

void
ngx_http_offload_link_begin(ngx_http_offload_link_t *link,
    ngx_http_offload_link_up_pt question)
{
    if (link->up) {
        question(link);

    } else if (link->ac == NULL) {
        if (link->reconnect.timer_set) {
            ngx_del_timer(&link->reconnect);
        }

        ngx_http_offload_link_open(link);
    }
}


/*
 * Such a query link gone or never made: the next address.  NGX_DECLINED
 * when no round is on (made again when needed), NGX_DONE when every
 * address of the round failed, NGX_OK when the next is tried (not from
 * inside hiredis' free of the old context: from a timer).
 */

ngx_int_t
ngx_http_offload_link_rotate(ngx_http_offload_link_t *link,
    offload_addr_t *addrs, ngx_uint_t naddrs, ngx_uint_t *asked,
    ngx_uint_t *tried, ngx_uint_t asking)
{
    *asked = (*asked + 1) % naddrs;
    link->addr = &addrs[*asked];

    if (!asking) {
        return NGX_DECLINED;
    }

    if (++*tried == naddrs) {
        return NGX_DONE;
    }

    ngx_add_timer(&link->reconnect, 1);

    return NGX_OK;
}


void
ngx_http_offload_link_open(ngx_http_offload_link_t *link)
{
    int                      n;
    char                     db[NGX_INT_T_LEN + 1];
    ngx_uint_t               use_db;
    const char              *argv[3];
    size_t                   argvlen[3];
    ngx_str_t               *user, *password;
    ngx_connection_t        *c;
    redisAsyncContext       *ac;
    ngx_http_offload_peer_t *peer;

    peer = link->peer;

    if (link->addr->is_unix) {
        ac = redisAsyncConnectUnix(link->addr->host);

    } else {
        ac = redisAsyncConnect(link->addr->host, link->addr->port);
    }

    if (ac == NULL) {
        ngx_log_error(NGX_LOG_ALERT, link->log, 0,
                      "offload: redis %V: cannot allocate a context",
                      &peer->name);
        ngx_http_offload_link_again(link);
        return;
    }

    if (ac->err) {
        ngx_http_offload_link_failed(link, ac->errstr);
        redisAsyncFree(ac);
        ngx_http_offload_link_again(link);
        return;
    }

    /* nginx says why (worker_connections), this says which link */

    c = ngx_get_connection(ac->c.fd, link->log);
    if (c == NULL) {
        ngx_http_offload_link_failed(link, "no free connection of nginx's "
                                     "worker_connections");
        redisAsyncFree(ac);
        ngx_http_offload_link_again(link);
        return;
    }

    c->data = link;
    c->read->handler = ngx_http_offload_link_read_handler;
    c->write->handler = ngx_http_offload_link_write_handler;
    c->read->log = link->log;
    c->write->log = link->log;

    link->ac = ac;
    link->connection = c;
    link->generation++;
    link->written = 0;

    ac->data = link;
    link->protocol_error = 0;

    offload_reply_guard(ac, ngx_http_offload_reply_refused);

    /* the hooks must be in place before the connect callback is set:
     * hiredis learns that the socket connected from the first write event */

    ac->ev.data = c;
    ac->ev.addRead = ngx_http_offload_link_add_read;
    ac->ev.delRead = ngx_http_offload_link_del_read;
    ac->ev.addWrite = ngx_http_offload_link_add_write;
    ac->ev.delWrite = ngx_http_offload_link_del_write;
    ac->ev.cleanup = ngx_http_offload_link_cleanup;

    redisAsyncSetConnectCallback(ac, ngx_http_offload_link_connected);
    redisAsyncSetDisconnectCallback(ac, ngx_http_offload_link_disconnected);

    /* queued now, written first once connected: before a sentinel is
     * asked anything or subscribed to */

    if (link->to_sentinel) {
        user = &peer->sentinels->user;
        password = &peer->sentinels->password;

    } else {
        user = &peer->user;
        password = &peer->password;
    }

    use_db = peer->db && !link->to_sentinel;
    link->probe = (password->len == 0 && !use_db && !link->ask_sentinel);

    if (password->len) {
        n = 1;
        argv[0] = "AUTH";
        argvlen[0] = 4;

        if (user->len) {            /* AUTH <user> <password>: Redis 6 ACL */
            argv[n] = (const char *) user->data;
            argvlen[n++] = user->len;
        }

        argv[n] = (const char *) password->data;
        argvlen[n++] = password->len;

        /* the last setup command (privdata) answered makes it usable */

        (void) ngx_http_offload_link_send(link,
                                          ngx_http_offload_link_setup_done,
                                          (use_db || link->ask_sentinel)
                                          ? NULL : link,
                                          n, argv, argvlen);
    }

    if (use_db) {
        argv[0] = "SELECT";
        argvlen[0] = 6;
        argv[1] = db;
        argvlen[1] = ngx_sprintf((u_char *) db, "%ui", peer->db)
                     - (u_char *) db;

        (void) ngx_http_offload_link_send(link,
                                          ngx_http_offload_link_setup_done,
                                          link->ask_sentinel ? NULL : link,
                                          2, argv, argvlen);
    }

    /* a master the sentinels named: a stale sentinel may name a replica */

    if (link->ask_sentinel) {
        argv[0] = "ROLE";
        argvlen[0] = sizeof("ROLE") - 1;

        (void) ngx_http_offload_link_send(link,
                                          ngx_http_offload_link_role_done,
                                          NULL, 1, argv, argvlen);
    }

    ngx_add_timer(&link->connect_timer, NGX_HTTP_OFFLOAD_CONNECT_TIMEOUT);
}


/*
 * Frees the context now (or, from inside one of its callbacks, as soon as
 * that callback returns).  Pending callbacks run with reply == NULL and the
 * cleanup hook schedules the reconnect.
 */

void
ngx_http_offload_link_drop(ngx_http_offload_link_t *link)
{
    if (link->ac) {
        redisAsyncFree(link->ac);
    }
}


void
ngx_http_offload_link_close(ngx_http_offload_link_t *link)
{
    link->exiting = 1;

    if (link->reconnect.timer_set) {
        ngx_del_timer(&link->reconnect);
    }

    ngx_http_offload_link_drop(link);
}


/*
 * PING <arg> on a subscribed link, which the watchdog then watches.
 * hiredis 0.14 would keep a callback for it that never runs (the reply,
 * ["pong", <arg>], looks like a message to the pattern <arg>): the command
 * goes into the output buffer bare, and the callback of the pattern <arg>,
 * which the link must be subscribed to, gets the reply.
 */

ngx_int_t
ngx_http_offload_link_ping(ngx_http_offload_link_t *link, const char *arg)
{
    if (link->ac == NULL || !link->up
        || redisAppendCommand(&link->ac->c, "PING %s", arg) != REDIS_OK)
    {
        return NGX_ERROR;
    }

    ngx_http_offload_link_add_write(link->connection);
    ngx_http_offload_link_sent(link);

    return NGX_OK;
}


/*
 * The command is formatted here (proto/offload_resp.c, as the sidecar's),
 * not by redisAsyncCommandArgv(): hiredis 0.14 formats each argument's
 * length with sdscatfmt() and grows an sds a piece at a time, a quarter of
 * the instructions nginx spent on an echo job.  A small command is
 * formatted on the stack, NUL-terminated: hiredis looks one byte past a
 * command's first argument (for a second one).
 */

ngx_int_t
ngx_http_offload_link_send(ngx_http_offload_link_t *link, redisCallbackFn *fn,
    void *privdata, int argc, const char **argv, const size_t *argvlen)
{
    int      rc;
    char    *cmd, buf[NGX_HTTP_OFFLOAD_SEND_BUF];
    size_t   len;

    if (link->ac == NULL) {
        return NGX_ERROR;
    }

    len = offload_resp_size(argc, argv, argvlen);

    if (len < sizeof(buf)) {
        cmd = buf;

    } else {
        cmd = ngx_alloc(len + 1, link->log);
        if (cmd == NULL) {
            return NGX_ERROR;
        }
    }

    offload_resp_write(cmd, argc, argv, argvlen);

    rc = redisAsyncFormattedCommand(link->ac, fn, privdata, cmd, len);

    if (cmd != buf) {
        ngx_free(cmd);
    }

    if (rc != REDIS_OK) {
        return NGX_ERROR;
    }

    ngx_http_offload_link_sent(link);

    return NGX_OK;
}


/*
 * Arms the link's watchdog, NGX_HTTP_OFFLOAD_WATCHDOG from now, while
 * commands await their replies.  It is no cancelable timer: an exiting
 * worker (a reload, a graceful stop) stays for the replies its links
 * await, so that a read sent for a request is answered, not lost with the
 * link when the worker exits under it.  But for at most
 * NGX_HTTP_OFFLOAD_WATCHDOG after it began to exit: the pings and reads
 * its cancelable timers go on sending meanwhile must not keep it alive
 * while Redis does not answer.
 */

static void
ngx_http_offload_link_watch(ngx_http_offload_link_t *link)
{
    static ngx_msec_t  exit_by;

    if (ngx_exiting) {
        if (exit_by == 0) {
            exit_by = ngx_current_msec + NGX_HTTP_OFFLOAD_WATCHDOG;
        }

        if ((ngx_msec_int_t) (exit_by - ngx_current_msec) <= 0) {
            link->watchdog.cancelable = 1;
        }
    }

    ngx_add_timer(&link->watchdog, NGX_HTTP_OFFLOAD_WATCHDOG);
}


static void
ngx_http_offload_link_sent(ngx_http_offload_link_t *link)
{
    link->inflight++;

    if (!link->watchdog.timer_set) {
        ngx_http_offload_link_watch(link);
    }
}


/* puts a stream behind the link's others; the write handler sends it */

static void
ngx_http_offload_link_queue(ngx_http_offload_link_t *link,
    ngx_http_offload_stream_t *st)
{
    st->queued = 1;

    ngx_queue_insert_tail(&link->streams, &st->queue);

    if (link->up) {
        ngx_post_event(link->connection->write, &ngx_posted_events);
    }
}


/*
 * Queues a command whose argument argv[big] is too big to be copied into
 * hiredis' output buffer at once: the write handler hands it over piece by
 * piece (ngx_http_offload_link_feed), straight from argv[big], or, with at,
 * from the buffers at points to (argvlen[big] bytes from there; at moves
 * past them).  The data must stay in place until the command is sent or
 * ngx_http_offload_link_unstream() took it back.  The reply comes to fn as
 * for ngx_http_offload_link_send().  A link that is not up keeps the
 * command until it is.  Before the event loop turns, the caller may give
 * it small commands to go right before and after it (st->small, made by
 * ngx_http_offload_link_small()): a MULTI and an EXEC around it.
 */

ngx_int_t
ngx_http_offload_link_stream(ngx_http_offload_link_t *link,
    ngx_http_offload_stream_t *st, ngx_pool_t *pool, redisCallbackFn *fn,
    void *privdata, int argc, const char **argv, const size_t *argvlen,
    int big, ngx_http_offload_cursor_t *at)
{
    u_char     *p;
    size_t      len[2];
    ngx_str_t  *part;
    ngx_uint_t  n;

    len[0] = sizeof("*\r\n") - 1 + NGX_INT_T_LEN
             + sizeof("$\r\n") - 1 + NGX_SIZE_T_LEN
             + ngx_http_offload_resp_len(0, big, argvlen);
    len[1] = sizeof("\r\n") - 1
             + ngx_http_offload_resp_len(big + 1, argc, argvlen);

    n = 2 + (at ? ngx_http_offload_window(at, argvlen[big], NULL) : 1);

    part = ngx_palloc(pool, n * sizeof(ngx_str_t));
    p = ngx_pnalloc(pool, len[0] + len[1]);

    if (part == NULL || p == NULL) {
        return NGX_ERROR;
    }

    st->part = part;

    part->data = p;
    p = (u_char *) offload_resp_line((char *) p, '*', argc);
    p = ngx_http_offload_resp_args(p, 0, big, argv, argvlen);
    p = (u_char *) offload_resp_line((char *) p, '$', argvlen[big]);
    part->len = p - part->data;
    part++;

    if (at) {
        part += ngx_http_offload_window(at, argvlen[big], part);

    } else {
        part->data = (u_char *) argv[big];
        part->len = argvlen[big];
        part++;
    }

    part->data = p;
    p = ngx_cpymem(p, "\r\n", 2);
    p = ngx_http_offload_resp_args(p, big + 1, argc, argv, argvlen);
    part->len = p - part->data;

    st->nparts = part + 1 - st->part;
    st->total = st->part[0].len + argvlen[big] + part->len;
    st->sent = 0;
    st->fn = fn;
    st->privdata = privdata;
    st->small = NULL;
    st->nbefore = 0;
    st->nsmall = 0;
    ngx_http_offload_link_queue(link, st);

    return NGX_OK;
}


/*
 * The parts len bytes from at take in the body's buffers: with part NULL
 * only counted; else described in part[], and at moves past them.  A
 * cursor, not a search from the first buffer: a chunked body may come in
 * millions of small buffers.
 */

static ngx_uint_t
ngx_http_offload_window(ngx_http_offload_cursor_t *at, size_t len,
    ngx_str_t *part)
{
    size_t        pos, take, size;
    ngx_uint_t    n;
    ngx_chain_t  *cl;

    n = 0;
    pos = at->pos;

    for (cl = at->cl; cl && len; /* void */) {
        size = cl->buf->last - cl->buf->pos;
        take = ngx_min(size - pos, len);

        if (take && part) {
            part[n].data = cl->buf->pos + pos;
            part[n].len = take;
        }

        n += take ? 1 : 0;
        len -= take;
        pos += take;

        if (pos == size) {
            cl = cl->next;
            pos = 0;
        }
    }

    if (part) {
        at->cl = cl;
        at->pos = pos;
    }

    return n;
}


/*
 * Queues a small command no request waits for (an UNLINK) behind the
 * link's streamed commands, in memory of its own: its request may be gone
 * already.  Its reply comes to fn (privdata argv[0]),
 * or with fn NULL only an error is logged, with argv[0].  argv[0] must be
 * a constant.
 */

ngx_int_t
ngx_http_offload_link_post(ngx_http_offload_link_t *link,
    redisCallbackFn *fn, int argc, const char **argv, const size_t *argvlen)
{
    size_t                      len;
    ngx_http_offload_stream_t  *st;

    len = offload_resp_size(argc, argv, argvlen);

    st = ngx_alloc(sizeof(ngx_http_offload_stream_t) + sizeof(ngx_str_t)
                   + len + 1, link->log);
    if (st == NULL) {
        return NGX_ERROR;
    }

    ngx_memzero(st, sizeof(ngx_http_offload_stream_t));

    st->part = (ngx_str_t *) (st + 1);
    st->part->data = (u_char *) (st->part + 1);

    offload_resp_write((char *) st->part->data, argc, argv, argvlen);

    st->part->len = len;
    st->nparts = 1;
    st->total = st->part->len;
    st->fn = fn ? fn : ngx_http_offload_link_logged;
    st->privdata = (void *) argv[0];
    st->owned = 1;

    ngx_http_offload_link_queue(link, st);

    return NGX_OK;
}


/* UNLINK of a key, its reply to fn (NULL: an error logged): its request
 * may be gone next */

ngx_int_t
ngx_http_offload_link_unlink(ngx_http_offload_link_t *link,
    redisCallbackFn *fn, ngx_str_t *key)
{
    const char  *argv[2];
    size_t       argvlen[2];

    argv[0] = "UNLINK";
    argvlen[0] = 6;
    argv[1] = (char *) key->data;
    argvlen[1] = key->len;

    return ngx_http_offload_link_post(link, fn, 2, argv, argvlen);
}


/*
 * A small command to go along with a streamed one, formatted into pool
 * memory, NUL-terminated: hiredis looks one byte past a command's first
 * argument (for a second one).  Its reply comes to fn (privdata), or with
 * fn NULL only an error is logged, with argv[0], which must then be a
 * constant.
 */

ngx_int_t
ngx_http_offload_link_small(ngx_pool_t *pool,
    ngx_http_offload_small_t *small, redisCallbackFn *fn, void *privdata,
    int argc, const char **argv, const size_t *argvlen)
{
    size_t  len;

    len = offload_resp_size(argc, argv, argvlen);

    small->cmd.data = ngx_pnalloc(pool, len + 1);
    if (small->cmd.data == NULL) {
        return NGX_ERROR;
    }

    offload_resp_write((char *) small->cmd.data, argc, argv, argvlen);
    small->cmd.len = len;

    small->fn = fn;
    small->privdata = privdata;
    small->name = argv[0];

    return NGX_OK;
}


static ngx_int_t
ngx_http_offload_link_send_small(ngx_http_offload_link_t *link,
    ngx_http_offload_small_t *small)
{
    if (redisAsyncFormattedCommand(link->ac,
                                   small->fn ? small->fn
                                             : ngx_http_offload_link_logged,
                                   small->fn ? small->privdata
                                             : (void *) small->name,
                                   (char *) small->cmd.data, small->cmd.len)
        != REDIS_OK)
    {
        return NGX_ERROR;
    }

    ngx_http_offload_link_sent(link);

    return NGX_OK;
}


/* A command nobody waits for: an error is logged, privdata naming it. */

void
ngx_http_offload_link_logged(redisAsyncContext *ac, void *r, void *privdata)
{
    redisReply               *reply = r;
    ngx_http_offload_link_t  *link;

    link = ngx_http_offload_link_replied(ac, reply);

    if (reply != NULL && reply->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_ERR, link->log, 0,
                      "offload: redis %V: %s failed: %s",
                      &link->peer->name, (char *) privdata, reply->str);
    }

    /* the EXEC of a transaction whose request went meanwhile */

    if (ngx_strcmp((char *) privdata, "EXEC") == 0) {
        ngx_http_offload_link_exec_done(link, reply);
    }
}


/*
 * An EXEC's reply.  MULTI or EXEC refused for good (renamed away, an ACL;
 * not a refusal that passes, nor a queued command's, which EXECABORT
 * answers "because of previous errors", nor a cluster's redirect): the
 * peer's big bodies begin by a script from then on
 * (ngx_http_offload_upload.c).  Refused with its MULTI left open
 * (offload_exec_left_multi_open()), every later command of the link would
 * be queued into that MULTI: the link is dropped, and made again after
 * the backoff.
 */

void
ngx_http_offload_link_exec_done(ngx_http_offload_link_t *link,
    redisReply *reply)
{
    const char  *err, *because;

    if (reply == NULL || reply->type != REDIS_REPLY_ERROR) {
        return;
    }

    err = reply->str;

    if (ngx_strncmp(err, "EXECABORT", 9) == 0) {
        because = ngx_strstr(err, "because of: ");
        err = because ? because + 12 : NULL;
    }

    if (err != NULL && !offload_refusal_passes(err) && !offload_redirect(err)
        && !link->peer->no_transactions)
    {
        ngx_log_error(NGX_LOG_ERR, link->log, 0,
                      "offload: redis %V refused MULTI or EXEC (%s): big "
                      "bodies begin by a script from now on",
                      &link->peer->name, err);
        link->peer->no_transactions = 1;
    }

    if (offload_exec_left_multi_open(reply->str)) {
        ngx_log_error(NGX_LOG_ERR, link->log, 0,
                      "offload: redis %V %s connection: EXEC refused with "
                      "its MULTI open (%s), dropping the connection",
                      &link->peer->name, link->role, reply->str);
        ngx_http_offload_link_drop(link);
    }
}


static size_t
ngx_http_offload_resp_len(int from, int to, const size_t *argvlen)
{
    int     i;
    size_t  len;

    len = 0;

    for (i = from; i < to; i++) {
        len += sizeof("$\r\n\r\n") - 1 + NGX_SIZE_T_LEN + argvlen[i];
    }

    return len;
}


static u_char *
ngx_http_offload_resp_args(u_char *p, int from, int to, const char **argv,
    const size_t *argvlen)
{
    int  i;

    for (i = from; i < to; i++) {
        p = (u_char *) offload_resp_line((char *) p, '$', argvlen[i]);
        p = ngx_cpymem(p, argv[i], argvlen[i]);
        *p++ = '\r';
        *p++ = '\n';
    }

    return p;
}


/*
 * Takes back a command not yet wholly handed to hiredis.  Half of it may be
 * in the output buffer already, and its request's memory is about to go:
 * the rest is then written as a blank copy (ngx_http_offload_link_blank),
 * so that Redis reads one whole command and the commands behind it, on the
 * same link, are not lost.  A blank slice of a body lands in a key that is
 * deleted next.  Only when that copy cannot be made does the link go (what
 * was sent on it answers "connection lost").
 */

void
ngx_http_offload_link_unstream(ngx_http_offload_link_t *link,
    ngx_http_offload_stream_t *st)
{
    ngx_http_offload_stream_t  *blank;

    if (!st->queued) {
        return;
    }

    blank = st->sent ? ngx_http_offload_link_blank(st, link->log) : NULL;

    if (blank != NULL) {
        ngx_queue_insert_after(&st->queue, &blank->queue);
    }

    ngx_queue_remove(&st->queue);
    st->queued = 0;

    if (st->sent && blank == NULL) {
        ngx_log_error(NGX_LOG_WARN, link->log, 0,
                      "offload: redis %V %s connection: a command was "
                      "withdrawn half sent, dropping the connection",
                      &link->peer->name, link->role);
        ngx_http_offload_link_drop(link);
    }
}


/*
 * The rest of a half-written command, in memory of its own: spaces for
 * what is left of its big argument, then a copy of what is left of its
 * tail, and of the small commands that go after it (an EXEC: no MULTI
 * left open), whose replies nobody waits for now.  NULL when out of
 * memory.
 */

static ngx_http_offload_stream_t *
ngx_http_offload_link_blank(ngx_http_offload_stream_t *st, ngx_log_t *log)
{
    static u_char               spaces[NGX_HTTP_OFFLOAD_PIECE];

    u_char                     *tail;
    size_t                      left, size, tail_len, tail_off;
    ngx_uint_t                  i, n, after;
    ngx_str_t                  *t;
    ngx_http_offload_small_t   *small;
    ngx_http_offload_stream_t  *blank;

    if (spaces[0] == '\0') {
        ngx_memset(spaces, ' ', sizeof(spaces));
    }

    /* what is left of the big argument, and of the tail (the last part) */

    t = &st->part[st->nparts - 1];

    if (st->total - st->sent >= t->len) {
        left = st->total - st->sent - t->len;
        tail_off = 0;

    } else {
        left = 0;               /* in the tail already */
        tail_off = t->len - (st->total - st->sent);
    }

    tail_len = t->len - tail_off;

    n = (left + sizeof(spaces) - 1) / sizeof(spaces);
    after = st->nsmall - st->nbefore;
    size = sizeof(ngx_http_offload_stream_t) + (n + 1) * sizeof(ngx_str_t)
           + after * sizeof(ngx_http_offload_small_t) + tail_len;

    for (i = st->nbefore; i < st->nsmall; i++) {
        size += st->small[i].cmd.len + 1;
    }

    blank = ngx_alloc(size, log);
    if (blank == NULL) {
        return NULL;
    }

    ngx_memzero(blank, sizeof(ngx_http_offload_stream_t));
    blank->part = (ngx_str_t *) (blank + 1);

    for (i = 0; i < n; i++) {
        blank->part[i].data = spaces;
        blank->part[i].len = ngx_min(left - i * sizeof(spaces),
                                     sizeof(spaces));
    }

    small = (ngx_http_offload_small_t *) &blank->part[n + 1];
    tail = (u_char *) &small[after];
    ngx_memcpy(tail, t->data + tail_off, tail_len);
    blank->part[n].data = tail;
    blank->part[n].len = tail_len;
    tail += tail_len;

    for (i = 0; i < after; i++) {
        small[i] = st->small[st->nbefore + i];
        small[i].cmd.data = tail;
        small[i].fn = NULL;
        tail = ngx_cpymem(tail, st->small[st->nbefore + i].cmd.data,
                          small[i].cmd.len + 1);
    }

    blank->small = small;
    blank->nsmall = after;

    blank->nparts = n + 1;
    blank->total = left + tail_len;
    blank->queued = 1;
    blank->owned = 1;
    blank->blank = 1;

    return blank;
}


/*
 * Keeps up to NGX_HTTP_OFFLOAD_PIECE bytes of the queued commands in
 * hiredis' output buffer.  The first piece, the whole head, goes with the
 * reply callback (hiredis reads the command's name from it and answers
 * callbacks in the order of the commands); the others are appended bare.
 */

static ngx_int_t
ngx_http_offload_link_feed(ngx_http_offload_link_t *link)
{
    int                         rc;
    size_t                      off, n, room;
    ngx_uint_t                  i;
    redisContext               *rctx;
    ngx_http_offload_stream_t  *st;

    rctx = &link->ac->c;

    while (!ngx_queue_empty(&link->streams)
           && sdslen(rctx->obuf) < NGX_HTTP_OFFLOAD_PIECE)
    {
        st = ngx_queue_data(ngx_queue_head(&link->streams),
                            ngx_http_offload_stream_t, queue);

        room = NGX_HTTP_OFFLOAD_PIECE - sdslen(rctx->obuf);

        if (st->sent == 0 && !st->blank) {
            for (i = 0; i < st->nbefore; i++) {
                if (ngx_http_offload_link_send_small(link, &st->small[i])
                    != NGX_OK)
                {
                    return NGX_ERROR;
                }
            }

            rc = redisAsyncFormattedCommand(link->ac, st->fn, st->privdata,
                                            (char *) st->part[0].data,
                                            st->part[0].len);
            n = st->part[0].len;
            st->at = 1;
            st->at_off = 0;

            /* awaited from its first byte: the watchdog sees a Redis
             * that stops reading in the middle of it */
            if (rc == REDIS_OK) {
                ngx_http_offload_link_sent(link);
            }

        } else {
            /* a cursor, not a search from the start: a chunked body may
             * come in millions of small buffers */
            while (st->at_off == st->part[st->at].len) {
                st->at++;
                st->at_off = 0;
            }

            i = st->at;
            off = st->at_off;
            n = ngx_min(st->part[i].len - off, room);
            rc = redisAppendFormattedCommand(rctx,
                                         (char *) st->part[i].data + off, n);
            st->at_off += n;
        }

        if (rc != REDIS_OK) {
            return NGX_ERROR;
        }

        st->sent += n;

        if (st->sent == st->total) {
            for (i = st->nbefore; i < st->nsmall; i++) {
                if (ngx_http_offload_link_send_small(link, &st->small[i])
                    != NGX_OK)
                {
                    return NGX_ERROR;
                }
            }

            ngx_queue_remove(&st->queue);
            st->queued = 0;

            if (st->owned) {
                ngx_free(st);
            }
        }
    }

    return NGX_OK;
}


/*
 * Every reply callback of a command sent with ngx_http_offload_link_send()
 * starts here: a reply proves the connection alive, so the watchdog restarts
 * while commands remain unanswered.
 */

/*
 * Redis refusing a command for its own state, not for the command: out
 * of memory, a failed save, a replica, loading, a script running too long
 * (the cluster's and the sentinels' own are theirs to handle above).
 */
static ngx_int_t
ngx_http_offload_refusal(redisReply *reply)
{
    ngx_uint_t  i;

    static const char  *refusals[] = {
        "OOM ", "MISCONF ", "READONLY ", "LOADING ", "BUSY ", "NOREPLICAS ",
        "MASTERDOWN ", NULL
    };

    for (i = 0; refusals[i] != NULL; i++) {
        if (ngx_strncmp(reply->str, refusals[i], ngx_strlen(refusals[i]))
            == 0)
        {
            return 1;
        }
    }

    return 0;
}


/*
 * The peer's Redis was in trouble for this worker just now: its node
 * registry, which the nodes could not write meanwhile, says nothing of
 * which queues are served for a while (ngx_http_offload_admission.c).
 */
static void
ngx_http_offload_troubled(ngx_http_offload_peer_t *peer)
{
    peer->troubled_at = ngx_current_msec | 1;      /* never 0 */

    if (peer->parent) {
        peer->parent->troubled_at = peer->troubled_at;
    }
}


ngx_http_offload_link_t *
ngx_http_offload_link_replied(redisAsyncContext *ac, redisReply *reply)
{
    ngx_http_offload_link_t  *link;

    link = ac->data;

    if (reply == NULL) {
        return link;
    }

    if (!link->usable && (ac->c.flags & REDIS_SUBSCRIBED)
        && ngx_http_offload_subscribed_reply(reply))
    {
        ngx_http_offload_link_usable(link);
    }

    if (reply->type == REDIS_REPLY_ERROR && link->ask_sentinel) {
        ngx_http_offload_sentinel_error(link, reply);
    }

    if (reply->type == REDIS_REPLY_ERROR && link->peer->parent) {
        ngx_http_offload_cluster_error(link, reply);
    }

    if (reply->type == REDIS_REPLY_ERROR
        && ngx_http_offload_refusal(reply))
    {
        ngx_http_offload_troubled(link->peer);
    }

    if (link->inflight) {
        link->inflight--;
    }

    if (link->inflight) {
        ngx_http_offload_link_watch(link);

    } else if (link->watchdog.timer_set) {
        ngx_del_timer(&link->watchdog);
    }

    return link;
}


/*
 * A reply hiredis 0.14 would assert() on (proto/offload_reply_guard.c), on
 * a link set up with offload_reply_guard() in link_open: hiredis frees the
 * context next, and the link reconnects after the usual backoff.
 */

static void
ngx_http_offload_reply_refused(redisAsyncContext *ac, const char *why)
{
    ngx_http_offload_link_t  *link;

    link = ac->data;

    /* hiredis frees the context when the read fails: no second report */

    if (link->protocol_error) {
        return;
    }

    link->protocol_error = 1;

    ngx_log_error(NGX_LOG_ERR, link->log, 0,
                  "offload: redis %V %s connection: protocol error: %s",
                  &link->peer->name, link->role, why);
}


static void
ngx_http_offload_link_read_handler(ngx_event_t *rev)
{
    size_t                    total;
    ssize_t                   n;
    ngx_socket_t              fd;
    ngx_connection_t         *c;
    redisAsyncContext        *ac;
    ngx_http_offload_link_t  *link;

    static char               buf[NGX_HTTP_OFFLOAD_READ];

    c = rev->data;
    link = c->data;
    ac = link->ac;
    fd = c->fd;

    if (!(ac->c.flags & REDIS_CONNECTED)) {
        redisAsyncHandleRead(ac);
        return;
    }

    /*
     * redisBufferRead() reads 16 KB a call, a syscall per 16 KB of a big
     * reply: the module reads the socket itself and hands hiredis the
     * bytes.  Events are edge-triggered: read until a read comes short
     * (the socket was empty; more data raises a new event), or, past
     * NGX_HTTP_OFFLOAD_TURN bytes (a big reply), go on in the next turn of
     * the event loop.  An end of file or an error goes to hiredis, whose
     * own read meets it again and disconnects, after the replies before
     * it.  A callback may free the context (and close c): only the saved
     * fd and link are used after one.
     */

    for (total = 0; total < NGX_HTTP_OFFLOAD_TURN; total += n) {

        n = recv(fd, buf, sizeof(buf), 0);

        if (n == -1 && ngx_socket_errno == NGX_EAGAIN) {
            return;
        }

        if (n == -1 && ngx_socket_errno == NGX_EINTR) {
            n = 0;
            continue;
        }

        if (n <= 0 || redisReaderFeed(ac->c.reader, buf, n) != REDIS_OK) {
            redisAsyncHandleRead(ac);
            return;
        }

        redisProcessCallbacks(ac);

        if (link->ac != ac) {
            return;
        }

        /* a big reply coming in proves the connection alive as a reply
         * does: it may take longer than the watchdog to arrive whole */

        if (link->inflight) {
            ngx_http_offload_link_watch(link);
        }

        /* a short read emptied the socket, but an end of file that came
         * with the data raises no further event: read on to meet it */

        if ((size_t) n < sizeof(buf) && !rev->pending_eof) {
            return;
        }
    }

    ngx_post_event(rev, &ngx_posted_next_events);
}


/* link->writing tells ngx_http_offload_link_add_write() that hiredis asks
 * for the write event from inside its own writing */

static void
ngx_http_offload_link_write_handler(ngx_event_t *wev)
{
    ngx_connection_t         *c;
    redisAsyncContext        *ac;
    ngx_http_offload_link_t  *link;

    c = wev->data;
    link = c->data;
    ac = link->ac;

    if (ac == NULL) {
        return;
    }

    link->writing = 1;
    ngx_http_offload_link_write(link, ac);

    /* the context and the link's connection may be gone */
    link->writing = 0;
}


/*
 * With commands queued by ngx_http_offload_link_stream(), hiredis writes
 * one piece after another until the socket is full (hiredis keeps the write
 * event armed then) or NGX_HTTP_OFFLOAD_TURN bytes went in this turn of the
 * event loop.
 */

static void
ngx_http_offload_link_write(ngx_http_offload_link_t *link,
    redisAsyncContext *ac)
{
    size_t  len, written;

    if (!link->up || ngx_queue_empty(&link->streams)) {
        ngx_http_offload_link_handle_write(link, ac);
        return;
    }

    for (written = 0; written < NGX_HTTP_OFFLOAD_TURN; written += len) {

        if (ngx_http_offload_link_feed(link) != NGX_OK) {
            ngx_log_error(NGX_LOG_ALERT, link->log, 0,
                          "offload: redis %V %s connection: cannot buffer "
                          "a command", &link->peer->name, link->role);
            ngx_http_offload_link_drop(link);
            return;
        }

        len = sdslen(ac->c.obuf);

        if (len == 0) {
            return;
        }

        ngx_http_offload_link_handle_write(link, ac);

        if (link->ac != ac) {
            return;
        }

        /* bytes going out prove the connection alive as a reply does: a
         * big command may take longer than the watchdog to write */

        if (sdslen(ac->c.obuf) < len && link->inflight) {
            ngx_http_offload_link_watch(link);
        }

        if (sdslen(ac->c.obuf) != 0) {
            return;
        }
    }

    ngx_post_event(link->connection->write, &ngx_posted_next_events);
}


/*
 * hiredis writes only from redisAsyncHandleWrite(), one write() a call: what
 * left its output buffer went to the socket.  A write that fails writes
 * nothing (and frees the context: the count is then of no use).  The first
 * call connects first, and the connect callback adds to the buffer before
 * the write: it sets link->unwritten again.
 */

static void
ngx_http_offload_link_handle_write(ngx_http_offload_link_t *link,
    redisAsyncContext *ac)
{
    link->unwritten = sdslen(ac->c.obuf);

    redisAsyncHandleWrite(ac);

    if (link->ac == ac) {
        link->written += link->unwritten - sdslen(ac->c.obuf);
    }
}


/*
 * Where the commands handed to the link so far end, counted in the bytes
 * of the link's context: once ngx_http_offload_link_wrote() says the link
 * wrote up to there, the last of them went to the socket whole, and Redis
 * may have run it even if its reply never comes.  Before that, Redis has
 * not run it (a command cut short by a lost connection is not run).
 */

uint64_t
ngx_http_offload_link_mark(ngx_http_offload_link_t *link)
{
    if (link->ac == NULL) {
        return 0;
    }

    return link->written + sdslen(link->ac->c.obuf);
}


ngx_uint_t
ngx_http_offload_link_wrote(ngx_http_offload_link_t *link, uint64_t mark)
{
    return link->ac != NULL && link->written >= mark;
}


static ngx_uint_t
ngx_http_offload_event_flags(void)
{
    return (ngx_event_flags & NGX_USE_CLEAR_EVENT) ? NGX_CLEAR_EVENT
                                                   : NGX_LEVEL_EVENT;
}


static void
ngx_http_offload_link_add_read(void *privdata)
{
    ngx_connection_t  *c = privdata;

    if (!c->read->active
        && ngx_add_event(c->read, NGX_READ_EVENT,
                         ngx_http_offload_event_flags())
           != NGX_OK)
    {
        ngx_log_error(NGX_LOG_ALERT, c->log, 0,
                      "offload: cannot add a redis read event");
    }
}


static void
ngx_http_offload_link_del_read(void *privdata)
{
    ngx_connection_t  *c = privdata;

    if (c->read->active) {
        (void) ngx_del_event(c->read, NGX_READ_EVENT,
                             ngx_http_offload_event_flags());
    }
}


/*
 * Adding the write event (re)arms it with EPOLL_CTL_ADD/MOD, which reports
 * a writable socket at once even under edge triggering.  Under edge
 * triggering it stays armed once added, as nginx's own connections do:
 * hiredis asks for it with every command and lets it go when its buffer
 * is written, two epoll_ctl() calls for every write.  Commands queued on a
 * connected socket are written by the write event posted for the next turn
 * of the loop, after the events that turn brings (as the re-armed event
 * came before), all in one write; a write that filled the socket (hiredis
 * asks again from inside the write handler) waits for the edge of the
 * socket's room coming back.
 */

static void
ngx_http_offload_link_add_write(void *privdata)
{
    ngx_connection_t         *c = privdata;
    ngx_http_offload_link_t  *link;

    if (c->write->active) {
        link = c->data;

        if ((ngx_event_flags & NGX_USE_CLEAR_EVENT)
            && !link->writing
            && link->ac != NULL
            && (link->ac->c.flags & REDIS_CONNECTED))
        {
            ngx_post_event(c->write, &ngx_posted_next_events);
        }

        return;
    }

    if (ngx_add_event(c->write, NGX_WRITE_EVENT,
                      ngx_http_offload_event_flags())
        != NGX_OK)
    {
        ngx_log_error(NGX_LOG_ALERT, c->log, 0,
                      "offload: cannot add a redis write event");
    }
}


static void
ngx_http_offload_link_del_write(void *privdata)
{
    ngx_connection_t  *c = privdata;

    if (c->write->active && !(ngx_event_flags & NGX_USE_CLEAR_EVENT)) {
        (void) ngx_del_event(c->write, NGX_WRITE_EVENT,
                             ngx_http_offload_event_flags());
    }
}


/*
 * hiredis calls this exactly once for every context it frees, whatever the
 * cause: failed connect, lost connection, redisAsyncFree().  So this is the
 * one place that schedules the reconnect.
 */

static void
ngx_http_offload_link_cleanup(void *privdata)
{
    ngx_connection_t           *c = privdata;
    ngx_http_offload_link_t    *link;
    ngx_http_offload_stream_t  *st;

    link = c->data;

    ngx_close_connection(c);

    /* hiredis would close the fd again, and it may be reused by now */
    link->ac->c.fd = -1;

    link->ac = NULL;
    link->connection = NULL;
    link->up = 0;

    /* a command half sent is lost with the connection: its callback has
     * run with no reply, the others wait for the next connection */

    if (!ngx_queue_empty(&link->streams)) {
        st = ngx_queue_data(ngx_queue_head(&link->streams),
                            ngx_http_offload_stream_t, queue);

        if (st->sent || st->blank) {
            ngx_queue_remove(&st->queue);
            st->queued = 0;

            if (st->owned) {
                ngx_free(st);
            }
        }
    }

    link->subscribed = 0;
    link->inflight = 0;

    if (link->connect_timer.timer_set) {
        ngx_del_timer(&link->connect_timer);
    }

    if (link->watchdog.timer_set) {
        ngx_del_timer(&link->watchdog);
    }

    if (!link->exiting) {
        ngx_http_offload_link_again(link);
    }
}


static void
ngx_http_offload_link_connected(const redisAsyncContext *ac, int status)
{
    const char               *argv[1];
    size_t                    argvlen[1];
    ngx_http_offload_link_t  *link;

    link = ac->data;

    if (status != REDIS_OK) {
        /* hiredis frees the context after this; see the cleanup hook */
        ngx_http_offload_link_failed(link, ac->errstr);
        return;
    }

    if (link->connect_timer.timer_set) {
        ngx_del_timer(&link->connect_timer);
    }

    /* connected, not yet usable: the backoff goes on until it is */

    link->up = 1;
    link->usable = 0;

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, link->log, 0,
                   "offload: redis %V %s connection connected, %ui sent",
                   &link->peer->name, link->role, link->inflight);

    if (link->on_up) {
        link->on_up(link);
    }

    /*
     * A subscribed link is usable once a subscription is confirmed
     * (ngx_http_offload_link_replied); any other once its last setup
     * command, AUTH, SELECT or ROLE, is answered OK, or, with none, a PING: a
     * server that sends an error and closes (maxclients) or just closes
     * (a proxy with no server behind it) never lets it be.  Not sent: the
     * link is going (see on_up).
     */

    if (!(ac->c.flags & REDIS_SUBSCRIBED) && link->probe) {
        argv[0] = "PING";
        argvlen[0] = sizeof("PING") - 1;

        (void) ngx_http_offload_link_send(link, ngx_http_offload_link_probed,
                                          NULL, 1, argv, argvlen);
    }

    if (!ngx_queue_empty(&link->streams)) {
        ngx_post_event(link->connection->write, &ngx_posted_events);
    }

    /* on_up and the PING added to the buffer inside the write that
     * connected: the count starts from here */

    if (link->ac != NULL) {
        link->unwritten = sdslen(link->ac->c.obuf);
    }
}


static void
ngx_http_offload_link_probed(redisAsyncContext *ac, void *r, void *privdata)
{
    redisReply               *reply = r;
    ngx_http_offload_link_t  *link;

    link = ngx_http_offload_link_replied(ac, reply);

    if (reply == NULL) {
        return;
    }

    /* PONG, or an error that is an answer all the same; any other error
     * refuses the link, as a refused AUTH does, not each command sent on
     * it (offload_ping_error_answers()) */

    if ((reply->type == REDIS_REPLY_STATUS && reply->len == 4
         && ngx_strncmp(reply->str, "PONG", 4) == 0)
        || (reply->type == REDIS_REPLY_ERROR
            && offload_ping_error_answers(reply->str)))
    {
        ngx_http_offload_link_usable(link);
        return;
    }

    if (reply->type == REDIS_REPLY_ERROR) {
        ngx_http_offload_link_refused(link, reply);
        return;
    }

    ngx_log_error(NGX_LOG_ERR, link->log, 0,
                  "offload: redis %V %s connection: PING answered with no "
                  "PONG: dropping it", &link->peer->name, link->role);

    ngx_http_offload_link_drop(link);
}


/* a subscription confirmed: ["subscribe", <channel>, <count>], psubscribe */

static ngx_uint_t
ngx_http_offload_subscribed_reply(redisReply *reply)
{
    redisReply  *kind;

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 3
        || reply->element[0]->type != REDIS_REPLY_STRING)
    {
        return 0;
    }

    kind = reply->element[0];

    return (kind->len == 9 && ngx_strncmp(kind->str, "subscribe", 9) == 0)
           || (kind->len == 10
               && ngx_strncmp(kind->str, "psubscribe", 10) == 0);
}


/* the link's setup answered: the backoff and the failures start again */

static void
ngx_http_offload_link_usable(ngx_http_offload_link_t *link)
{
    link->usable = 1;
    link->retries = 0;
    link->failures = 0;
    link->refused = 0;
    link->failed = 0;

    if (link->was_up) {
        ngx_http_offload_metrics_redis(NGX_HTTP_OFFLOAD_REDIS_RECONNECT);
    }

    link->was_up = 1;

    ngx_log_error(NGX_LOG_NOTICE, link->log, 0,
                  "offload: redis %V %s connection up",
                  &link->peer->name, link->role);
}


static void
ngx_http_offload_link_disconnected(const redisAsyncContext *ac, int status)
{
    ngx_http_offload_link_t  *link;

    link = ac->data;

    if (link->exiting) {
        return;
    }

    /* the peer's own connections: a sentinel's or a cluster seed's going
     * (a rotation, a map refreshed) says nothing of the Redis */
    if (link == &link->peer->command || link == &link->peer->subscriber
        || link == &link->peer->bulk)
    {
        ngx_http_offload_troubled(link->peer);
    }

    /* a connection that was never usable is one more failed attempt (the
     * cleanup hook, which ran first, left usable as it was) */

    if (!link->usable) {
        ngx_http_offload_link_failed(link,
                                     (status == REDIS_OK
                                      || ac->errstr[0] == '\0')
                                     ? "closed before its setup was answered"
                                     : ac->errstr);
        return;
    }

    ngx_http_offload_metrics_redis(NGX_HTTP_OFFLOAD_REDIS_FAILURE);

    /* a reply refused by offload_reply_guard() reads as hiredis'
     * "Out of memory": its reason was logged then */

    ngx_log_error(NGX_LOG_WARN, link->log, 0,
                  "offload: redis %V %s connection lost: %s",
                  &link->peer->name, link->role,
                  link->protocol_error ? "protocol error"
                  : (status == REDIS_OK || ac->errstr[0] == '\0')
                  ? "dropped" : ac->errstr);
}


static void
ngx_http_offload_link_setup_done(redisAsyncContext *ac, void *r,
    void *privdata)
{
    redisReply               *reply = r;
    ngx_http_offload_link_t  *link;

    link = ngx_http_offload_link_replied(ac, reply);

    if (reply == NULL) {
        return;
    }

    if (reply->type != REDIS_REPLY_ERROR) {
        if (privdata != NULL && !(ac->c.flags & REDIS_SUBSCRIBED)) {
            ngx_http_offload_link_usable(link);
        }

        return;
    }

    ngx_http_offload_link_refused(link, reply);
}


/*
 * ROLE, the last setup command of a connection to the master the sentinels
 * named: anything but a master is refused, and the next sentinel asked
 * (ngx_http_offload_sentinel_role).  A user without +role (NOPERM) skips
 * the check: a replica's READONLY tells then.
 */

static void
ngx_http_offload_link_role_done(redisAsyncContext *ac, void *r,
    void *privdata)
{
    redisReply               *reply = r;
    ngx_http_offload_link_t  *link;

    link = ngx_http_offload_link_replied(ac, reply);

    if (reply == NULL) {
        return;
    }

    if (reply->type == REDIS_REPLY_ERROR
        && ngx_strncmp(reply->str, "NOPERM", 6) != 0)
    {
        ngx_http_offload_link_refused(link, reply);
        return;
    }

    if (reply->type == REDIS_REPLY_ARRAY
        && ngx_http_offload_sentinel_role(link, reply) != NGX_OK)
    {
        ngx_http_offload_link_drop(link);
        return;
    }

    if (!(ac->c.flags & REDIS_SUBSCRIBED)) {
        ngx_http_offload_link_usable(link);
    }
}


/* a setup command refused: the first time in a row an error, then info
 * (the disconnect callback counts the failure), an error again when the
 * refusal changes (Redis came back asking for a password) */

static void
ngx_http_offload_link_refused(ngx_http_offload_link_t *link,
    redisReply *reply)
{
    uint32_t    crc;
    ngx_uint_t  level;

    crc = ngx_crc32_short((u_char *) reply->str, reply->len);

    level = (link->failures == 0 || crc != link->refused) ? NGX_LOG_ERR
                                                           : NGX_LOG_INFO;
    link->refused = crc;

    if (link->to_sentinel) {
        /* AUTH is the only setup command a sentinel gets */
        ngx_log_error(level, link->log, 0,
                      "offload: redis %V %s connection: sentinel %s:%d "
                      "refused AUTH with sentinel_user=/sentinel_password=: "
                      "%s", &link->peer->name, link->role, link->addr->host,
                      link->addr->port, reply->str);

    } else {
        ngx_log_error(level, link->log, 0,
                      "offload: redis %V %s connection setup failed: %s",
                      &link->peer->name, link->role, reply->str);
    }

    ngx_http_offload_link_drop(link);
}


/* the first failure in a row is worth a warning, the retries are not,
 * unless the failure changes */

static void
ngx_http_offload_link_failed(ngx_http_offload_link_t *link, const char *err)
{
    uint32_t    crc;
    ngx_uint_t  level;

    crc = ngx_crc32_short((u_char *) err, ngx_strlen(err));

    level = (link->failures++ == 0 || crc != link->failed) ? NGX_LOG_WARN
                                                            : NGX_LOG_INFO;
    link->failed = crc;

    ngx_http_offload_metrics_redis(NGX_HTTP_OFFLOAD_REDIS_FAILURE);

    ngx_log_error(level, link->log, 0,
                  "offload: redis %V %s connection failed: %s",
                  &link->peer->name, link->role, err);
}


void
ngx_http_offload_link_schedule(ngx_http_offload_link_t *link)
{
    ngx_msec_t  delay;

    delay = offload_reconnect_delay_ms(link->retries++, ngx_random());

    /* the sentinels name a new master a few seconds into a failover (and
     * not every one of them says so on +switch-master at once): ask them
     * again sooner than a lone Redis is tried again */

    if (link->ask_sentinel && delay > NGX_HTTP_OFFLOAD_REMAP_RETRY) {
        delay = NGX_HTTP_OFFLOAD_REMAP_RETRY;
    }

    ngx_add_timer(&link->reconnect, delay);
}


/* a connection gone or not made: its on_down hook, or the backoff */

static void
ngx_http_offload_link_again(ngx_http_offload_link_t *link)
{
    if (link->peer->parent) {
        ngx_http_offload_cluster_lost(link->peer);
    }

    if (link->on_down) {
        link->on_down(link);
        return;
    }

    ngx_http_offload_link_schedule(link);
}


/* a connection that could not even be tried (no master known): counted and
 * retried as a failed connect */

void
ngx_http_offload_link_retry(ngx_http_offload_link_t *link, const char *err)
{
    ngx_http_offload_link_failed(link, err);
    ngx_http_offload_link_schedule(link);
}


static void
ngx_http_offload_link_reconnect_handler(ngx_event_t *ev)
{
    ngx_http_offload_link_t  *link = ev->data;

    if (link->ac == NULL && !link->exiting) {
        ngx_http_offload_link_connect(link);
    }
}


/* the connect timeout and the watchdog: either way the link is dropped */

static void
ngx_http_offload_link_timeout_handler(ngx_event_t *ev)
{
    ngx_http_offload_link_t  *link = ev->data;

    ngx_log_error(NGX_LOG_WARN, link->log, 0,
                  "offload: redis %V %s connection: %s, dropping it",
                  &link->peer->name, link->role,
                  ev == &link->connect_timer ? "connect timed out"
                                             : "no reply in time");

    ngx_http_offload_link_drop(link);
}

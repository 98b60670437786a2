
/*
 * ngx_http_offload_poll.c -- a long poll parked without its request.
 *
 * A GET <jobs>/<id>?wait=<s> whose job has not ended would hold its whole
 * nginx request while it waits: the request, its pool and the header
 * buffer, about 9 KB (90 MB for 10,000 polls).  Where it can, the poll
 * lets its request go as nginx lets an answered keepalive request go
 * (ngx_http_set_keepalive(): the request and its header buffer freed, the
 * connection kept), and keeps the request's head, the job id
 * and the wait's deadline, in a struct of the connection's pool, listed
 * among its peer's waiters like a job read.
 *
 * When the job ends, or the wait passes, the poll comes back: its head is
 * handed to nginx's keepalive handler as if the client had sent it again
 * (c->recv gives it back once), so nginx makes a request of it, runs its
 * phases, and offload_jobs answers it with what is left of the wait
 * (ngx_http_offload_poll_resumed()).  That request is the one logged,
 * with the first one's start time: one access log line a poll.
 *
 * A client that closes its connection meanwhile is noticed at once, and
 * its poll comes back too, to be answered 499 and logged.
 *
 * It parks only what nginx would keep alive as it is: HTTP/1.x (over TLS
 * too: c->recv is then ngx_ssl_recv, given back the same way; not
 * HTTP/2), keepalive on, the head in the connection's buffer with nothing
 * after it, no body, not a subrequest nor an internal redirect.  Any other
 * poll waits holding its request (ngx_http_offload_jobs.c).
 *
 * While parked the connection is not idle: a graceful shutdown waits for
 * it as for a request, and worker_connections does not take it back.
 * Modules of the phases before content (limit_req, auth_request, mirror)
 * see a poll again when it comes back, as they would see the client
 * asking again; limit_conn does not count it while it is parked.
 */


#include "ngx_http_offload_module.h"


typedef struct {
    ngx_http_offload_waiter_t     waiter;     /* first: in the peer's
                                                 job_waiters while parked */
    ngx_connection_t             *connection;
    ngx_http_offload_peer_t      *peer;
    ngx_event_handler_pt          keepalive;  /* the read handler nginx's
                                                 keepalive left */
    ngx_recv_pt                   recv;       /* c->recv, while the head
                                                 is given back */
    u_char                       *head;       /* the request's head */
    size_t                        len;
    size_t                        given;
    ngx_msec_t                    deadline;
    time_t                        start_sec;
    ngx_msec_t                    start_msec;
    ngx_uint_t                    request;    /* c->requests of the request
                                                 it comes back as, or 0 */
    u_char                        id[OFFLOAD_JOB_ID_LEN];
    unsigned                      linked:1;
    unsigned                      gone:1;     /* the client closed */
} ngx_http_offload_poll_t;


static ngx_int_t ngx_http_offload_poll_parkable(ngx_http_request_t *r,
    ngx_msec_t deadline);
static u_char *ngx_http_offload_poll_head(ngx_http_request_t *r,
    size_t *len);
static ngx_http_offload_poll_t *ngx_http_offload_poll_of(ngx_connection_t *c);
static void ngx_http_offload_poll_read_handler(ngx_event_t *rev);
static ngx_int_t ngx_http_offload_poll_client_gone(ngx_connection_t *c);
static void ngx_http_offload_poll_wake(ngx_http_offload_waiter_t *w);
static void ngx_http_offload_poll_resume(ngx_http_offload_poll_t *poll);
static ssize_t ngx_http_offload_poll_recv(ngx_connection_t *c, u_char *buf,
    size_t size);
static void ngx_http_offload_poll_cleanup(void *data);


/*
 * Parks a long poll whose job has not ended, until deadline; r is then
 * gone, finalized.  A poll that cannot be parked is left as it is.
 */

void
ngx_http_offload_poll_park(ngx_http_request_t *r,
    ngx_http_offload_peer_t *peer, u_char *id, ngx_msec_t deadline)
{
    size_t                    len;
    u_char                   *head;
    ngx_event_t              *rev;
    ngx_connection_t         *c;
    ngx_pool_cleanup_t       *cln;
    ngx_http_offload_poll_t  *poll;

    if (ngx_http_offload_poll_parkable(r, deadline) != NGX_OK) {
        return;
    }

    c = r->connection;

    /* one a connection, for its life: a pool keeps what it is given */

    poll = ngx_http_offload_poll_of(c);

    if (poll == NULL) {
        cln = ngx_pool_cleanup_add(c->pool, sizeof(ngx_http_offload_poll_t));
        if (cln == NULL) {
            return;
        }

        poll = cln->data;
        ngx_memzero(poll, sizeof(ngx_http_offload_poll_t));
        poll->connection = c;

        cln->handler = ngx_http_offload_poll_cleanup;
    }

    head = ngx_http_offload_poll_head(r, &len);
    if (head == NULL) {
        return;
    }

    poll->head = head;
    poll->len = len;
    poll->given = 0;
    poll->request = 0;
    poll->gone = 0;
    poll->peer = peer;
    poll->deadline = deadline;
    poll->start_sec = r->start_sec;
    poll->start_msec = r->start_msec;
    ngx_memcpy(poll->id, id, OFFLOAD_JOB_ID_LEN);

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, c->log, 0,
                   "offload: poll of job %*s parked",
                   (size_t) OFFLOAD_JOB_ID_LEN, id);

    /* logged once, as the request it comes back as */
    r->logged = 1;

    /* to nginx's keepalive: ngx_http_finalize_connection() takes that way
     * for what ngx_http_offload_poll_parkable() lets through */

    ngx_http_finalize_request(r, NGX_DONE);

    if (c->fd == (ngx_socket_t) -1 || !c->idle) {
        /* closed on the way: the poll went with the connection's pool */
        return;
    }

    /* waits as a request would: not idle, not reusable, its own read
     * handler and timer */

    c->idle = 0;
    ngx_reusable_connection(c, 0);
    c->log->action = "waiting for its job";

    rev = c->read;

    poll->keepalive = rev->handler;
    rev->handler = ngx_http_offload_poll_read_handler;

    if (rev->timer_set) {
        ngx_del_timer(rev);
    }

    ngx_add_timer(rev, deadline - ngx_current_msec);

    poll->waiter.id = poll->id;
    poll->waiter.wake = ngx_http_offload_poll_wake;
    poll->waiter.node.key = ngx_crc32_short(poll->id, OFFLOAD_JOB_ID_LEN);
    ngx_rbtree_insert(&peer->job_waiters, &poll->waiter.node);
    poll->linked = 1;
}


/* what ngx_http_finalize_connection() keeps alive with nothing to read,
 * and a wait not yet over */

static ngx_int_t
ngx_http_offload_poll_parkable(ngx_http_request_t *r, ngx_msec_t deadline)
{
    ngx_connection_t          *c;
    ngx_http_core_loc_conf_t  *clcf;

    c = r->connection;
    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

#if (NGX_HTTP_V2)
    if (r->stream) {
        return NGX_DECLINED;
    }
#endif

    /* not a request with a body (discarded, its length is 0 by now, but
     * its head would say there is one), nor one redirected inside nginx
     * (its head would go through the redirecting location again) */

    if (r != r->main
        || r->internal
        || r->count != 1
        || r->blocked
        || !r->keepalive
        || clcf->keepalive_timeout == 0
        || ngx_exiting
        || ngx_terminate
        || r->header_in != c->buffer
        || r->header_in->pos != r->header_in->last
        || r->headers_in.content_length != NULL
        || r->headers_in.transfer_encoding != NULL
        || r->discard_body
        || r->reading_body
        || r->lingering_close
        || c->read->eof
        || c->read->pending_eof
        || c->error
        || (ngx_msec_int_t) (deadline - ngx_current_msec) <= 0)
    {
        return NGX_DECLINED;
    }

    return NGX_OK;
}


/*
 * The request's head as the client sent it, from the request line and the
 * header list (nginx's parser ended each header's name and value with a
 * NUL in the buffer itself), without Expect: its 100 Continue was sent.
 */

static u_char *
ngx_http_offload_poll_head(ngx_http_request_t *r, size_t *len)
{
    u_char           *head, *p;
    size_t            n;
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    n = r->request_line.len + sizeof(CRLF CRLF) - 1;

    for (part = &r->headers_in.headers.part; part; part = part->next) {
        h = part->elts;

        for (i = 0; i < part->nelts; i++) {
            if (&h[i] != r->headers_in.expect) {
                n += h[i].key.len + sizeof(": " CRLF) - 1 + h[i].value.len;
            }
        }
    }

    head = ngx_alloc(n, r->connection->log);
    if (head == NULL) {
        return NULL;
    }

    p = ngx_cpymem(head, r->request_line.data, r->request_line.len);
    *p++ = CR; *p++ = LF;

    for (part = &r->headers_in.headers.part; part; part = part->next) {
        h = part->elts;

        for (i = 0; i < part->nelts; i++) {
            if (&h[i] == r->headers_in.expect) {
                continue;
            }

            p = ngx_cpymem(p, h[i].key.data, h[i].key.len);
            *p++ = ':'; *p++ = ' ';
            p = ngx_cpymem(p, h[i].value.data, h[i].value.len);
            *p++ = CR; *p++ = LF;
        }
    }

    *p++ = CR; *p++ = LF;

    *len = n;

    return head;
}


static ngx_http_offload_poll_t *
ngx_http_offload_poll_of(ngx_connection_t *c)
{
    return ngx_http_offload_cleanup_data(c->pool,
                                         ngx_http_offload_poll_cleanup);
}


/* the parked connection's read events: the wait passed, the client went,
 * or the worker closes its connections */

static void
ngx_http_offload_poll_read_handler(ngx_event_t *rev)
{
    ngx_connection_t         *c;
    ngx_http_offload_poll_t  *poll;

    c = rev->data;
    poll = ngx_http_offload_poll_of(c);

    if (c->close) {
        ngx_http_close_connection(c);
        return;
    }

    if (rev->timedout) {
        rev->timedout = 0;
        ngx_http_offload_poll_resume(poll);
        return;
    }

    /* back as a request that is answered 499 and logged, as a poll that
     * holds its request is when its client goes */

    if (ngx_http_offload_poll_client_gone(c)) {
        ngx_log_error(NGX_LOG_INFO, c->log, 0,
                      "client prematurely closed connection, poll of job %*s",
                      (size_t) OFFLOAD_JOB_ID_LEN, poll->id);
        poll->gone = 1;
        ngx_http_offload_poll_resume(poll);
    }
}


/* as ngx_http_test_reading(): what the client sent after the poll (a
 * pipelined request) is left for after its answer */

static ngx_int_t
ngx_http_offload_poll_client_gone(ngx_connection_t *c)
{
    int           n;
    char          buf[1];
    ngx_err_t     err;
    ngx_event_t  *rev;

    rev = c->read;

#if (NGX_HAVE_EPOLLRDHUP)

    if ((ngx_event_flags & NGX_USE_EPOLL_EVENT) && ngx_use_epoll_rdhup) {
        return rev->pending_eof;
    }

#endif

    n = recv(c->fd, buf, 1, MSG_PEEK);

    if (n == 0) {
        return 1;
    }

    if (n == -1) {
        err = ngx_socket_errno;

        if (err != NGX_EAGAIN) {
            return 1;
        }

        rev->ready = 0;
        return 0;
    }

    if ((ngx_event_flags & NGX_USE_LEVEL_EVENT) && rev->active) {
        if (ngx_del_event(rev, NGX_READ_EVENT, 0) != NGX_OK) {
            return 1;
        }
    }

    return 0;
}


static void
ngx_http_offload_poll_wake(ngx_http_offload_waiter_t *w)
{
    ngx_http_offload_poll_resume((ngx_http_offload_poll_t *) w);
}


/*
 * The poll comes back: its head is given back to nginx's keepalive
 * handler, run from the posted events (not inside the Redis reply that
 * woke it), which makes a request of it.
 */

static void
ngx_http_offload_poll_resume(ngx_http_offload_poll_t *poll)
{
    ngx_event_t               *rev;
    ngx_connection_t          *c;
    ngx_http_connection_t     *hc;
    ngx_http_core_srv_conf_t  *cscf;

    c = poll->connection;
    rev = c->read;

    if (poll->linked) {
        ngx_rbtree_delete(&poll->peer->job_waiters, &poll->waiter.node);
        poll->linked = 0;
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, c->log, 0,
                   "offload: poll of job %*s back",
                   (size_t) OFFLOAD_JOB_ID_LEN, poll->id);

    poll->request = c->requests + 1;
    poll->recv = c->recv;
    c->recv = ngx_http_offload_poll_recv;
    rev->handler = poll->keepalive;

    /* the keepalive handler takes off the read timer it expects: the time
     * a head may take, as nginx gives a request it reads; not the wait's
     * timer, which could fire before the posted event runs */

    if (rev->timer_set) {
        ngx_del_timer(rev);
    }

    hc = c->data;
    cscf = ngx_http_get_module_srv_conf(hc->conf_ctx, ngx_http_core_module);
    ngx_add_timer(rev, cscf->client_header_timeout);

    ngx_post_event(rev, &ngx_posted_events);
}


/* c->recv while a poll comes back: its head, then the socket again */

static ssize_t
ngx_http_offload_poll_recv(ngx_connection_t *c, u_char *buf, size_t size)
{
    size_t                    n;
    ngx_http_offload_poll_t  *poll;

    poll = ngx_http_offload_poll_of(c);

    n = ngx_min(size, poll->len - poll->given);
    ngx_memcpy(buf, poll->head + poll->given, n);
    poll->given += n;

    if (poll->given < poll->len) {
        /* read again at once */
        c->read->ready = 1;
        return n;
    }

    c->recv = poll->recv;

    ngx_free(poll->head);
    poll->head = NULL;

    return n;
}


/*
 * A request that comes back from a parked poll: its first request's start
 * time, and *wait what is left of the poll's wait; NGX_DECLINED when its
 * client has gone.  Any other request is left as it is: NGX_OK.
 */

ngx_int_t
ngx_http_offload_poll_resumed(ngx_http_request_t *r, ngx_msec_t *wait)
{
    ngx_msec_int_t            left;
    ngx_connection_t         *c;
    ngx_http_offload_poll_t  *poll;

    c = r->connection;

    if (r != r->main) {
        return NGX_OK;
    }

    poll = ngx_http_offload_poll_of(c);

    if (poll == NULL || poll->request != c->requests) {
        return NGX_OK;
    }

    poll->request = 0;

    r->start_sec = poll->start_sec;
    r->start_msec = poll->start_msec;

    if (poll->gone) {
        poll->gone = 0;
        return NGX_DECLINED;
    }

    left = (ngx_msec_int_t) (poll->deadline - ngx_current_msec);
    *wait = left > 0 ? (ngx_msec_t) left : 0;

    return NGX_OK;
}


/* the connection is closed */

static void
ngx_http_offload_poll_cleanup(void *data)
{
    ngx_http_offload_poll_t  *poll = data;

    if (poll->linked) {
        ngx_rbtree_delete(&poll->peer->job_waiters, &poll->waiter.node);
        poll->linked = 0;
    }

    if (poll->head) {
        ngx_free(poll->head);
        poll->head = NULL;
    }
}

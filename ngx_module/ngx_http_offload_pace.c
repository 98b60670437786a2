
/*
 * ngx_http_offload_pace.c -- a big body read from its client a slice per
 * turn of the event loop.
 *
 * nginx reads a request body for as long as its socket has bytes
 * (ngx_http_do_read_client_request_body() loops while the read event is
 * ready, and epoll keeps it ready until recv() says EAGAIN).  A client on
 * a fast link keeps the socket filled while it is read: one turn of the
 * worker's loop read 2.7 MB in one recv(), 5 to 6 ms, with every other
 * request of the worker waiting behind it (a 64 MB echo job, strace).
 *
 * So an HTTP/1 job's body is read at most NGX_HTTP_OFFLOAD_TURN bytes a
 * turn, as the module writes and reads its Redis links and checks a big
 * body's JSON: past them the connection's recv says "again", and its read
 * event is posted for the next turn (ngx_posted_next_events, as nginx's
 * TLS does with bytes it holds), after the events of every other
 * connection.  An HTTP/2 body comes in its connection's frames, read by
 * nginx's HTTP/2 code: left as it is.
 *
 * The pace is the connection's (a struct of its pool, one however many
 * bodies it sends), found by its pool cleanup as a parked poll is; the
 * request's pool cleanup gives c->recv back.
 */


#include "ngx_http_offload_module.h"


typedef struct {
    ngx_recv_pt                   recv;       /* the socket's (or TLS's) */
    size_t                        left;       /* this turn may read */
} ngx_http_offload_pace_t;


static ssize_t ngx_http_offload_pace_recv(ngx_connection_t *c, u_char *buf,
    size_t size);
static ngx_http_offload_pace_t *ngx_http_offload_pace_of(
    ngx_connection_t *c);
static void ngx_http_offload_pace_forget(void *data);
static void ngx_http_offload_pace_end(void *data);


/* Before r's body is read (a chunked one, or one over a turn's bytes):
 * NGX_ERROR only when out of memory. */

ngx_int_t
ngx_http_offload_pace_body(ngx_http_request_t *r)
{
    ngx_connection_t         *c;
    ngx_pool_cleanup_t       *cln;
    ngx_http_offload_pace_t  *pace;

    c = r->connection;

    if (r != r->main
#if (NGX_HTTP_V2)
        || r->stream
#endif
        || c->recv == ngx_http_offload_pace_recv
        || !(r->headers_in.chunked
             || r->headers_in.content_length_n > NGX_HTTP_OFFLOAD_TURN))
    {
        return NGX_OK;
    }

    pace = ngx_http_offload_pace_of(c);

    if (pace == NULL) {
        cln = ngx_pool_cleanup_add(c->pool, sizeof(ngx_http_offload_pace_t));
        if (cln == NULL) {
            return NGX_ERROR;
        }

        cln->handler = ngx_http_offload_pace_forget;
        pace = cln->data;
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_ERROR;
    }

    cln->handler = ngx_http_offload_pace_end;
    cln->data = c;

    pace->recv = c->recv;
    pace->left = NGX_HTTP_OFFLOAD_TURN;
    c->recv = ngx_http_offload_pace_recv;

    return NGX_OK;
}


/*
 * c->recv while a body is read.  A call while the read event is posted for
 * the next turn is still this turn's, even one woken by epoll then; the
 * first one after it, the next turn's (a turn woken by epoll before the
 * budget ran out goes on with what is left of it).
 */

static ssize_t
ngx_http_offload_pace_recv(ngx_connection_t *c, u_char *buf, size_t size)
{
    ssize_t                   n;
    ngx_http_offload_pace_t  *pace;

    if (c->read->posted) {
        c->read->ready = 0;
        return NGX_AGAIN;
    }

    pace = ngx_http_offload_pace_of(c);

    if (pace->left == 0) {
        pace->left = NGX_HTTP_OFFLOAD_TURN;
    }

    /* an "again" of this turn's cleared it, and epoll, edge-triggered,
     * says nothing of bytes the socket held then: the socket's recv
     * clears it again when it finds none */

    c->read->ready = 1;

    n = pace->recv(c, buf, ngx_min(size, pace->left));

    if (n > 0) {
        pace->left -= n;

        if (pace->left == 0) {
            /* what the socket still holds is read next turn */
            ngx_post_event(c->read, &ngx_posted_next_events);
        }
    }

    return n;
}


static ngx_http_offload_pace_t *
ngx_http_offload_pace_of(ngx_connection_t *c)
{
    return ngx_http_offload_cleanup_data(c->pool,
                                         ngx_http_offload_pace_forget);
}


/* the connection's pool cleanup: only what finds its pace */

static void
ngx_http_offload_pace_forget(void *data)
{
    (void) data;
}


/* the request's: the connection's own recv back, before nginx reads the
 * next request, lingers or closes */

static void
ngx_http_offload_pace_end(void *data)
{
    ngx_connection_t  *c = data;

    ngx_http_offload_pace_t  *pace;

    if (c->recv == ngx_http_offload_pace_recv) {
        pace = ngx_http_offload_pace_of(c);
        c->recv = pace->recv;
    }
}


/*
 * ngx_http_offload_module.c -- turns a POST into a job on a Redis stream
 * and answers with the job's result: the directives, the request flow from
 * body to parked request, and the HTTP responses.
 *
 *   offload_redis ...;                   (ngx_http_offload_peer_conf.c)
 *   offload_pass <queue>;
 *   offload_timeout <time>;
 *   offload_validate_json on | off;
 *   offload_max_backlog <n> | off;       (ngx_http_offload_admission.c)
 *   offload_mode sync | async;
 *   offload_jobs_url <prefix>;
 *   offload_result_ttl <time>;
 *   offload_idempotency_ttl <time> | off;
 *   offload_jobs;
 *   offload_cancel_running on | off;
 *   offload_jobs_memory <size>;
 *
 * A location with offload_pass and no offload_redis in effect talks to
 * 127.0.0.1:6379, the address job queues usually default to.
 */


#include <sys/random.h>

#include "ngx_http_offload_module.h"
#include "offload_slot.h"


/* random bytes fetched at once for $request_id: 256 requests' worth */
#define NGX_HTTP_OFFLOAD_RID_POOL  4096

#define ngx_http_offload_timing(p, name, us)                                 \
    ngx_http_offload_timing_metric(p, (u_char *) name, sizeof(name) - 1, us)


static ngx_int_t ngx_http_offload_handler(ngx_http_request_t *r);
static ngx_http_variable_value_t *ngx_http_offload_rid(ngx_http_request_t *r);
static void ngx_http_offload_body_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_offload_submit(ngx_http_request_t *r,
    ngx_http_offload_ctx_t *ctx);
static void ngx_http_offload_check_handler(ngx_event_t *ev);
static ngx_int_t ngx_http_offload_bad_json(ngx_http_request_t *r,
    size_t offset, const char *err);
static ngx_int_t ngx_http_offload_enqueue(ngx_http_request_t *r,
    ngx_http_offload_ctx_t *ctx);
static ngx_int_t ngx_http_offload_body(ngx_http_request_t *r, ngx_str_t *body);
static void ngx_http_offload_count_answer(ngx_http_offload_ctx_t *ctx,
    ngx_uint_t status);
static void ngx_http_offload_cleanup(void *data);
static void ngx_http_offload_cancel_sync(ngx_http_offload_ctx_t *ctx);
static ngx_int_t ngx_http_offload_refuse(ngx_http_request_t *r,
    ngx_uint_t status, const char *code, const char *message);
static ngx_int_t ngx_http_offload_send_error_more(ngx_http_request_t *r,
    ngx_uint_t status, const char *code, const char *message,
    ngx_str_t *more);
static u_char *ngx_http_offload_timing_metric(u_char *p, u_char *name,
    size_t len, int64_t us);
static void ngx_http_offload_finish(ngx_http_offload_ctx_t *ctx,
    ngx_int_t rc);
static char *ngx_http_offload_pass(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_offload_positive_msec(ngx_conf_t *cf, void *post,
    void *data);
static char *ngx_http_offload_jobs_url_check(ngx_conf_t *cf, void *post,
    void *data);
static void *ngx_http_offload_create_main_conf(ngx_conf_t *cf);
static void *ngx_http_offload_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_offload_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static ngx_int_t ngx_http_offload_postconfiguration(ngx_conf_t *cf);
static ngx_int_t ngx_http_offload_init_process(ngx_cycle_t *cycle);
static void ngx_http_offload_exit_process(ngx_cycle_t *cycle);


ngx_http_offload_worker_t  ngx_http_offload_worker;


/*
 * Times that 0 would make nonsense of: a job with a 0 ms deadline is
 * answered 504 before any worker can take it, and a record that lives
 * 0 ms is taken by the workers for no record at all.
 */
static ngx_conf_post_t  ngx_http_offload_positive_msec_post =
    { ngx_http_offload_positive_msec };

/* The status URL's prefix goes as it is into a Location header and a JSON
 * string: a path or an absolute URL, without variables (not expanded). */
static ngx_conf_post_t  ngx_http_offload_jobs_url_post =
    { ngx_http_offload_jobs_url_check };


static ngx_conf_enum_t  ngx_http_offload_modes[] = {
    { ngx_string("sync"), NGX_HTTP_OFFLOAD_SYNC },
    { ngx_string("async"), NGX_HTTP_OFFLOAD_ASYNC },
    { ngx_null_string, 0 }
};


static ngx_command_t  ngx_http_offload_commands[] = {

    { ngx_string("offload_redis"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_offload_redis,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("offload_pass"),
      NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_offload_pass,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("offload_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_offload_loc_conf_t, timeout),
      &ngx_http_offload_positive_msec_post },

    { ngx_string("offload_validate_json"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_offload_loc_conf_t, validate_json),
      NULL },

    { ngx_string("offload_max_backlog"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_offload_max_backlog,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("offload_mode"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_enum_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_offload_loc_conf_t, mode),
      &ngx_http_offload_modes },

    { ngx_string("offload_jobs_url"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_offload_loc_conf_t, jobs_url),
      &ngx_http_offload_jobs_url_post },

    { ngx_string("offload_result_ttl"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_offload_loc_conf_t, result_ttl),
      &ngx_http_offload_positive_msec_post },

    { ngx_string("offload_idempotency_ttl"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_offload_idempotency_ttl,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("offload_jobs"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_offload_jobs,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("offload_cancel_running"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_offload_loc_conf_t, cancel_running),
      NULL },

    { ngx_string("offload_jobs_memory"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_offload_loc_conf_t, jobs_memory),
      NULL },

    { ngx_string("offload_metrics_zone"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_offload_metrics_zone,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("offload_status_cache"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE12,
      ngx_http_offload_status_cache,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("offload_status"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_offload_status,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("offload_metrics"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_offload_metrics,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("offload_dashboard"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_offload_dashboard,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_offload_module_ctx = {
    ngx_http_offload_trace_add_variables,  /* preconfiguration */
    ngx_http_offload_postconfiguration,    /* postconfiguration */

    ngx_http_offload_create_main_conf,     /* create main configuration */
    NULL,                                  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_offload_create_loc_conf,      /* create location configuration */
    ngx_http_offload_merge_loc_conf        /* merge location configuration */
};


ngx_module_t  ngx_http_offload_module = {
    NGX_MODULE_V1,
    &ngx_http_offload_module_ctx,          /* module context */
    ngx_http_offload_commands,             /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_http_offload_init_process,         /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    ngx_http_offload_exit_process,         /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_str_t  ngx_http_offload_request_id = ngx_string("request_id");


static ngx_int_t
ngx_http_offload_handler(ngx_http_request_t *r)
{
    ngx_int_t                     rc;
    ngx_str_t                     queue, idem;
    ngx_msec_t                    timeout;
    ngx_http_offload_ctx_t       *ctx;
    ngx_http_offload_loc_conf_t  *olcf;

    if (!(r->method & NGX_HTTP_POST)) {
        if (ngx_http_offload_add_header(r, "Allow", (u_char *) "POST", 4)
            != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return ngx_http_offload_refuse(r, NGX_HTTP_NOT_ALLOWED,
                                       "method_not_allowed",
                                       "only POST is allowed");
    }

    olcf = ngx_http_get_module_loc_conf(r, ngx_http_offload_module);

    if (ngx_http_complex_value(r, olcf->queue, &queue) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (!offload_queue_name_valid((char *) queue.data, queue.len)) {
        return ngx_http_offload_refuse(r, NGX_HTTP_BAD_REQUEST, "bad_queue",
                                       "invalid queue name");
    }

    if (ngx_http_offload_admission_timeout(r, olcf->timeout, &timeout)
        != NGX_OK)
    {
        return ngx_http_offload_refuse(r, NGX_HTTP_BAD_REQUEST,
                                       "bad_timeout",
                                       "X-Offload-Timeout must be "
                                       "given once, a number of seconds "
                                       "over 0, at most 3 decimals");
    }

    ngx_str_null(&idem);

    if (olcf->idempotency_ttl
        && ngx_http_offload_idempotency_key(r, &idem) != NGX_OK)
    {
        return ngx_http_offload_refuse(r, NGX_HTTP_BAD_REQUEST,
                                       "bad_idempotency_key",
                                       "Idempotency-Key must be given "
                                       "once, 1 to 255 visible ASCII "
                                       "characters (or those in double "
                                       "quotes)");
    }

    /* known by its Content-Length: refused before the body is asked for
     * (a chunked one is, once read: ngx_http_offload_submit()) */

    if (idem.len && r->headers_in.content_length_n > OFFLOAD_BODY_OVER) {
        return ngx_http_offload_refuse(r, NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                       "too_large",
                                       "a job with an Idempotency-Key "
                                       "carries at most 1 MB");
    }

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_offload_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->request = r;
    ctx->peer = olcf->peer;
    ctx->queue = queue;
    ctx->timeout = timeout;
    ctx->idem_key = idem;
    ctx->start_us = ngx_http_offload_now_us();
    ctx->metrics = ngx_http_offload_metrics_queue(
                                    ngx_http_offload_worker.metrics, &queue, 0);

    ngx_http_offload_async_wanted(ctx);

    ngx_http_set_ctx(r, ctx, ngx_http_offload_module);

    r->request_body_in_single_buf = 1;

    if (ngx_http_offload_pace_body(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_read_client_request_body(r, ngx_http_offload_body_handler);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    /* the rest of a big body, still to come, lands in memory not written
     * yet: on huge pages, the event loop does not stand still in a fault
     * every 4 KB of it (offload_hugepage.c) */

    if (rc == NGX_AGAIN && r->request_body && r->request_body->buf) {
        offload_hugepage_advise(r->request_body->buf->last,
                                r->request_body->buf->end
                                - r->request_body->buf->last);
    }

    return NGX_DONE;
}


/*
 * A request refused by its headers, before its body is read: the body is
 * discarded, and a client that waits for "100 Continue" is not asked for
 * it (as nginx refuses a body over client_max_body_size).
 */

static ngx_int_t
ngx_http_offload_refuse(ngx_http_request_t *r, ngx_uint_t status,
    const char *code, const char *message)
{
    ngx_int_t  rc;

    r->expect_tested = 1;

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    return ngx_http_offload_send_error(r, status, code, message);
}


static void
ngx_http_offload_body_handler(ngx_http_request_t *r)
{
    ngx_int_t                rc;
    ngx_http_offload_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_offload_module);

    rc = ngx_http_offload_submit(r, ctx);

    if (rc != NGX_DONE) {
        ngx_http_finalize_request(r, rc);
    }
}


/*
 * Returns NGX_DONE with the request parked (or its body being checked), or
 * what to finalize it with.
 */

static ngx_int_t
ngx_http_offload_submit(ngx_http_request_t *r, ngx_http_offload_ctx_t *ctx)
{
    size_t                        offset;
    ngx_int_t                     rc;
    ngx_str_t                    *body;
    const char                   *err;
    ngx_http_cleanup_t           *cln;
    ngx_http_core_loc_conf_t     *clcf;
    ngx_http_offload_loc_conf_t  *olcf;

    body = &ctx->body;

    rc = ngx_http_offload_body(r, body);

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    /* the client's doing: nginx reads a chunked body's framing into the
     * buffer too, and this one's took more than the room left for it */

    if (rc == NGX_DECLINED && r->headers_in.chunked
        && clcf->client_max_body_size && !r->request_body_in_file_only)
    {
        return ngx_http_offload_send_error(r,
                                           NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                           "too_large",
                                           "the body's chunked encoding "
                                           "takes too much room: send it in "
                                           "fewer, bigger chunks, or with "
                                           "a Content-Length");
    }

    if (rc == NGX_DECLINED) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "offload: the request body was buffered to a file, "
                      "offload_pass needs it in memory "
                      "(client_body_in_file_only?)");

        return ngx_http_offload_send_error(r, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                           "internal",
                                           "request body not in memory");
    }

    if (rc != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (body->len == 0) {
        return ngx_http_offload_send_error(r, NGX_HTTP_BAD_REQUEST,
                                           "bad_json", "empty body");
    }

    /* nginx -t bounds the body, but with client_max_body_size 0 nginx
     * keeps a little more than client_body_buffer_size in memory */

    if (body->len > OFFLOAD_BODY_MAX) {
        return ngx_http_offload_send_error(r,
                                           NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                           "too_large",
                                           "the body is more than a job "
                                           "can carry");
    }

    /* its SHA1 is taken in Redis, where a big body is never loaded */

    if (ctx->idem_key.len && body->len > OFFLOAD_BODY_OVER) {
        return ngx_http_offload_send_error(r,
                                           NGX_HTTP_REQUEST_ENTITY_TOO_LARGE,
                                           "too_large",
                                           "a job with an Idempotency-Key "
                                           "carries at most 1 MB");
    }

    cln = ngx_http_cleanup_add(r, 0);
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln->handler = ngx_http_offload_cleanup;
    cln->data = ctx;

    olcf = ngx_http_get_module_loc_conf(r, ngx_http_offload_module);

    if (!olcf->validate_json) {
        return ngx_http_offload_enqueue(r, ctx);
    }

    if (body->data != NULL && body->len <= NGX_HTTP_OFFLOAD_TURN) {
        if (offload_json_check_payload((char *) body->data, body->len,
                                       &offset, &err)
            != 0)
        {
            return ngx_http_offload_bad_json(r, offset, err);
        }

        return ngx_http_offload_enqueue(r, ctx);
    }

    /* a big body is checked a slice per turn of the event loop */

    ctx->check = ngx_pcalloc(r->pool, sizeof(ngx_http_offload_check_t));
    if (ctx->check == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    offload_json_scan_init(&ctx->check->scan);
    ctx->check->scan.pairs = 1;             /* a payload */
    ctx->check->cl = r->request_body->bufs;

    ctx->check->ev.handler = ngx_http_offload_check_handler;
    ctx->check->ev.data = ctx;
    ctx->check->ev.log = r->connection->log;
    ctx->checking = 1;

    r->read_event_handler = ngx_http_test_reading;
    r->write_event_handler = ngx_http_request_empty_handler;

    ngx_post_event(&ctx->check->ev, &ngx_posted_events);

    return NGX_DONE;
}


/* up to NGX_HTTP_OFFLOAD_TURN bytes of the body's buffers per turn */

static void
ngx_http_offload_check_handler(ngx_event_t *ev)
{
    size_t                     len, budget;
    ngx_int_t                  rc;
    ngx_buf_t                 *b;
    offload_json_scan_t       *scan;
    ngx_http_offload_ctx_t    *ctx = ev->data;
    ngx_http_offload_check_t  *check;

    check = ctx->check;
    scan = &check->scan;

    for (budget = NGX_HTTP_OFFLOAD_TURN; budget && check->cl; budget -= len) {
        b = check->cl->buf;
        len = ngx_min((size_t) (b->last - b->pos) - check->pos, budget);

        if (offload_json_scan(scan, (char *) b->pos + check->pos, len) != 0) {
            break;
        }

        check->pos += len;

        if (check->pos == (size_t) (b->last - b->pos)) {
            check->cl = check->cl->next;
            check->pos = 0;
        }
    }

    if (scan->err == NULL) {
        if (check->cl) {
            ngx_post_event(ev, &ngx_posted_next_events);
            return;
        }

        if (offload_json_scan_end(scan) == 0) {
            ctx->checking = 0;
            rc = ngx_http_offload_enqueue(ctx->request, ctx);

            if (rc != NGX_DONE) {
                ngx_http_offload_finish(ctx, rc);
            }

            return;
        }
    }

    ctx->checking = 0;
    ngx_http_offload_finish(ctx, ngx_http_offload_bad_json(ctx->request,
                                                           scan->offset,
                                                           scan->err));
}


static ngx_int_t
ngx_http_offload_bad_json(ngx_http_request_t *r, size_t offset,
    const char *err)
{
    u_char  buf[128];

    ngx_snprintf(buf, sizeof(buf) - 1, "invalid JSON at offset %uz: %s%Z",
                 offset, err);
    buf[sizeof(buf) - 1] = '\0';

    return ngx_http_offload_send_error(r, NGX_HTTP_BAD_REQUEST, "bad_json",
                                       (char *) buf);
}


/*
 * The checked body becomes a job and the request waits parked.  A body
 * over OFFLOAD_BODY_OVER goes into its body key first, in slices on the
 * bulk link (ngx_http_offload_upload.c); the deadline counts from here.
 */

static ngx_int_t
ngx_http_offload_enqueue(ngx_http_request_t *r, ngx_http_offload_ctx_t *ctx)
{
    char                      tag[OFFLOAD_SLOT_TAG_LEN];
    uint64_t                  seq;
    ngx_int_t                 rc;
    ngx_http_offload_peer_t  *peer;

    /* a cluster's: the master of the queue's slot */

    peer = ngx_http_offload_cluster_peer(ctx->peer, ctx->queue.data,
                                         ctx->queue.len);
    if (peer == NULL) {
        return ngx_http_offload_send_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                           "redis_unavailable",
                                           "the redis cluster's slot map is "
                                           "not known yet");
    }

    ctx->peer = peer;

    if (!ctx->peer->command.up) {

        /* a cluster's master down: maybe replaced, the map tells */
        if (peer->parent) {
            ngx_http_offload_cluster_refresh(peer->parent);
        }

        return ngx_http_offload_send_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                           "redis_unavailable",
                                           "redis is not reachable");
    }

    /* with an Idempotency-Key, the submit script tells a duplicate, which
     * is answered all the same, from a new job, which it does not add */

    if (ngx_http_offload_admission_served(ctx) != NGX_OK) {
        if (ctx->idem_key.len == 0) {
            return ngx_http_offload_send_error(r,
                                               NGX_HTTP_SERVICE_UNAVAILABLE,
                                               "no_workers",
                                               NGX_HTTP_OFFLOAD_NO_WORKERS);
        }

        ctx->unserved = 1;
        ctx->retry_after = 0;       /* no_workers' only if it says so */
    }

    /* the id names the queue's slot: its record goes there */
    offload_slot_tag(offload_key_slot((char *) ctx->queue.data,
                                      ctx->queue.len),
                     tag);

    seq = ++ngx_http_offload_worker.seq;
    offload_job_id_format((char *) ctx->id, ngx_http_offload_worker.nonce,
                          tag, seq);
    ctx->node.key = (ngx_rbtree_key_t) seq;

    ctx->submitted_ms = ngx_http_offload_clock_now(ctx->peer);

    if (ctx->body.len > OFFLOAD_BODY_OVER) {
        rc = ngx_http_offload_upload(ctx);

    } else {
        rc = ngx_http_offload_xadd(ctx);
    }

    if (rc != NGX_OK) {
        return ngx_http_offload_send_error(r, NGX_HTTP_SERVICE_UNAVAILABLE,
                                           "redis_unavailable",
                                           "redis is not reachable");
    }

    ngx_http_offload_park(ctx, ctx->timeout);

    /* notice a client that gives up: 499 */
    r->read_event_handler = ngx_http_test_reading;
    r->write_event_handler = ngx_http_request_empty_handler;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "offload: job %*s parked", (size_t) OFFLOAD_JOB_ID_LEN,
                   ctx->id);

    return NGX_DONE;
}


/* The request's next header called name, from where the walk stopped
 * (zeroed: from the first), or NULL: nginx 1.22 keeps no index of the
 * headers it does not know.  A walk over all of them is one pass. */

ngx_table_elt_t *
ngx_http_offload_header_next(ngx_http_request_t *r, ngx_str_t *name,
    ngx_http_offload_header_walk_t *walk)
{
    ngx_uint_t        i;
    ngx_table_elt_t  *h;

    if (walk->part == NULL) {
        walk->part = &r->headers_in.headers.part;
        walk->next = 0;
    }

    h = walk->part->elts;

    for (i = walk->next; /* void */ ; i++) {

        if (i >= walk->part->nelts) {
            if (walk->part->next == NULL) {
                walk->next = i;
                return NULL;
            }

            walk->part = walk->part->next;
            h = walk->part->elts;
            i = 0;
        }

        if (h[i].key.len == name->len
            && ngx_strncasecmp(h[i].key.data, name->data, name->len) == 0)
        {
            walk->next = i + 1;
            return &h[i];
        }
    }
}


/* The one request header called name: NGX_OK with *h (NULL: none), or
 * NGX_DECLINED when there are several. */

ngx_int_t
ngx_http_offload_header_once(ngx_http_request_t *r, ngx_str_t *name,
    ngx_table_elt_t **h)
{
    ngx_http_offload_header_walk_t  walk;

    ngx_memzero(&walk, sizeof(walk));

    *h = ngx_http_offload_header_next(r, name, &walk);

    if (*h != NULL && ngx_http_offload_header_next(r, name, &walk) != NULL) {
        return NGX_DECLINED;
    }

    return NGX_OK;
}


/* A number (at most decimals digits after a '.') that ngx_atoi() or
 * ngx_atofp() refused only for being too big to count: it asks for more
 * than any limit, and gets the limit. */

ngx_uint_t
ngx_http_offload_beyond_count(ngx_str_t *value, ngx_uint_t decimals)
{
    u_char      *p, *dot;
    ngx_uint_t   digits;

    dot = NULL;
    digits = 0;

    for (p = value->data; p < value->data + value->len; p++) {

        if (*p >= '0' && *p <= '9') {
            digits++;
            continue;
        }

        if (*p != '.' || dot || decimals == 0) {
            return 0;
        }

        dot = p;
    }

    return digits && (dot == NULL
                      || (ngx_uint_t) (p - dot - 1) <= decimals);
}


/*
 * The job's XADD, on the command link: the body inline, or, once a big
 * body is in its body key, an empty payload and "body <length>".
 */

ngx_int_t
ngx_http_offload_xadd(ngx_http_offload_ctx_t *ctx)
{
    int                            argc;
    char                           stream[OFFLOAD_KEY_MAX];
    u_char                         channel[OFFLOAD_KEY_MAX];
    ngx_int_t                      rc;
    const char                    *argv[OFFLOAD_JOB_ARGC];
    size_t                         argvlen[OFFLOAD_JOB_ARGC];
    ngx_str_t                      tp, ts;
    offload_entry_t                job;
    ngx_http_request_t            *r;
    offload_job_scratch_t          scratch;
    ngx_http_variable_value_t     *rid;
    ngx_http_offload_loc_conf_t   *olcf;

    r = ctx->request;
    olcf = ngx_http_get_module_loc_conf(r, ngx_http_offload_module);

    ngx_memzero(&job, sizeof(offload_entry_t));
    job.version = OFFLOAD_PROTO_VERSION;
    job.id.data = (char *) ctx->id;
    job.id.len = OFFLOAD_JOB_ID_LEN;

    if (ctx->body_key.len) {
        job.payload.data = "";
        job.body_len = (int64_t) ctx->body.len;

    } else {
        job.payload.data = (char *) ctx->body.data;
        job.payload.len = ctx->body.len;
    }

    /* this worker's channel; a cluster's: the queue's sharded one */
    ngx_http_offload_cluster_reply(ctx, channel, &job.reply);
    job.submitted_ms = ctx->submitted_ms;
    job.deadline_ms = ctx->submitted_ms + ctx->timeout;
    job.attempt = 1;

    rid = ngx_http_offload_rid(r);
    if (rid != NULL && !rid->not_found) {
        job.request_id.data = (char *) rid->data;
        job.request_id.len = rid->len;
    }

    /* the handler runs as a child of nginx's span */
    if (ngx_http_offload_traceparent(r, &tp) != NULL) {
        if (ngx_http_offload_tracestate(r, &ts) != NGX_OK) {
            return NGX_ERROR;
        }

        job.traceparent.data = (char *) tp.data;
        job.traceparent.len = tp.len;
        job.tracestate.data = (char *) ts.data;
        job.tracestate.len = ts.len;
    }

    if (offload_stream_key(stream, sizeof(stream), (char *) ctx->queue.data,
                           ctx->queue.len)
        < 0)
    {
        return NGX_ERROR;
    }

    /* an async job, or one with an Idempotency-Key, has a record: the
     * jobs endpoint and a duplicate read its end there */

    if (ctx->async || ctx->idem_key.len) {
        if (ctx->async) {
            job.reply.len = 0;  /* stored for the jobs endpoint only */
        }

        job.record_ttl_ms = ngx_http_offload_record_ttl(ctx);
        argc = offload_job_argv(&job, stream, &scratch, argv, argvlen);

        rc = ngx_http_offload_xadd_record(ctx, stream, argc, argv, argvlen);

    } else {
        argc = offload_job_argv(&job, stream, &scratch, argv, argvlen);

        if (olcf->max_backlog) {
            rc = ngx_http_offload_admission_xadd(ctx, argc, argv, argvlen);

        } else {
            rc = ngx_http_offload_link_send(&ctx->peer->command,
                                            ngx_http_offload_xadd_done,
                                            (void *) (uintptr_t)
                                                ctx->node.key,
                                            argc, argv, argvlen);
        }
    }

    /* once this much is written, Redis may have the job
     * (ngx_http_offload_submit_ctx) */
    ctx->sent_mark = ngx_http_offload_link_mark(&ctx->peer->command);

    return rc;
}


/*
 * The body as one piece of memory, or, over OFFLOAD_BODY_OVER in several
 * buffers, left in them (data NULL: copying it into fresh memory is a
 * stall of the event loop); never from a file: NGX_DECLINED when nginx
 * wrote it to one.
 */

static ngx_int_t
ngx_http_offload_body(ngx_http_request_t *r, ngx_str_t *body)
{
    u_char       *p;
    size_t        len;
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    body->data = NULL;
    body->len = 0;

    if (r->request_body == NULL) {
        return NGX_OK;
    }

    if (r->request_body->temp_file) {
        return NGX_DECLINED;
    }

    len = 0;

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        b = cl->buf;

        if (b->in_file) {
            return NGX_DECLINED;
        }

        len += b->last - b->pos;
    }

    cl = r->request_body->bufs;

    if (cl == NULL || len == 0) {
        return NGX_OK;
    }

    body->len = len;

    if (cl->next == NULL) {
        body->data = cl->buf->pos;
        return NGX_OK;
    }

    /* a big body is checked and sent from its buffers, not copied */

    if (len > OFFLOAD_BODY_OVER) {
        return NGX_OK;
    }

    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    body->data = p;
    body->len = len;

    for ( /* void */ ; cl; cl = cl->next) {
        p = ngx_cpymem(p, cl->buf->pos, cl->buf->last - cl->buf->pos);
    }

    return NGX_OK;
}


/*
 * Redis has the job: a request that waits for its end needs its body no
 * more.  What nginx allocated for it on its own (a body past the header
 * buffer, over the pool's small size, or a copy of one) is freed and the
 * request forgets its buffers ($request_body is then empty).  Under
 * HTTP/2 they stay: the stream's body reader may look at them again; and
 * while anything else holds the request (a mirror's subrequest, whose
 * upstream may still be sending these very buffers), they stay too.
 */

void
ngx_http_offload_body_free(ngx_http_offload_ctx_t *ctx)
{
    ngx_chain_t         *cl;
    ngx_http_request_t  *r;

    r = ctx->request;

#if (NGX_HTTP_V2)
    if (r->stream) {
        return;
    }
#endif

    if (r->request_body == NULL || r->request_body->temp_file
        || r->main->count > 1)
    {
        return;
    }

    /* ngx_pfree() frees only the pool's own big allocations */

    if (ctx->body.data != NULL) {
        (void) ngx_pfree(r->pool, ctx->body.data);
    }

    for (cl = r->request_body->bufs; cl; cl = cl->next) {
        if (cl->buf->start != NULL) {
            (void) ngx_pfree(r->pool, cl->buf->start);
        }
    }

    /* a chunked body's buffers start past their chunks' size lines, in
     * the buffer nginx read the body into: that one goes too */

    if (r->request_body->buf != NULL && r->request_body->buf->start != NULL)
    {
        (void) ngx_pfree(r->pool, r->request_body->buf->start);
    }

    r->request_body->bufs = NULL;
    r->request_body->buf = NULL;
    ngx_str_null(&ctx->body);
}


/* An answer counts under its queue, or, for a queue not known to exist
 * (no counters yet, the job not accepted), among the requests without
 * one. */

static void
ngx_http_offload_count_answer(ngx_http_offload_ctx_t *ctx, ngx_uint_t status)
{
    ngx_http_offload_main_conf_t  *omcf;

    if (ctx->metrics == NULL) {
        omcf = ngx_http_get_module_main_conf(ctx->request,
                                             ngx_http_offload_module);
        ngx_http_offload_metrics_invalid(omcf->metrics, status);
        return;
    }

    ngx_http_offload_metrics_answered(ctx->metrics, status);
    ngx_http_offload_metrics_observe(ctx->metrics,
                                     NGX_HTTP_OFFLOAD_HIST_REQUEST,
                                     ngx_http_offload_now_us() - ctx->start_us);
}


static void
ngx_http_offload_cleanup(void *data)
{
    ngx_http_offload_ctx_t  *ctx = data;

    /* a request that waited for its check or its result (or, handed to a
     * job read, for its job's end) and got no answer: the client went
     * away */

    if (!ctx->answered && (ctx->parked || ctx->checking || ctx->replaying)) {
        ngx_http_offload_count_answer(ctx, NGX_HTTP_CLIENT_CLOSED_REQUEST);
    }

    /*
     * nobody waits for a sync job any more: it need not run; unless it has
     * an Idempotency-Key, whose duplicates may be waiting for its result
     */

    if (!ctx->answered && ctx->parked && !ctx->async && !ctx->uploading
        && ctx->idem_key.len == 0)
    {
        ngx_http_offload_cancel_sync(ctx);
    }

    ngx_http_offload_unpark(ctx);

    if (ctx->check && ctx->check->ev.posted) {
        ngx_delete_posted_event(&ctx->check->ev);
    }
}


/*
 * Marks the job in its queue's cancelled set (offload_cancel_sync_script),
 * fire and forget: a worker that reads its entry later drops it.  One
 * that runs it already answers to nobody.
 */

static void
ngx_http_offload_cancel_sync(ngx_http_offload_ctx_t *ctx)
{
    int                       n, len;
    u_char                   *end, deadline[NGX_INT64_LEN];
    char                      key[OFFLOAD_KEY_MAX], stream[OFFLOAD_KEY_MAX];
    const char               *argv[7];
    size_t                    argvlen[7];
    ngx_http_offload_link_t  *link;

    n = offload_cancelled_key(key, sizeof(key), (char *) ctx->queue.data,
                              ctx->queue.len);
    len = offload_stream_key(stream, sizeof(stream),
                             (char *) ctx->queue.data, ctx->queue.len);
    if (n < 0 || len < 0) {
        return;
    }

    end = ngx_sprintf(deadline, "%L", ctx->submitted_ms + ctx->timeout);

    argv[0] = "EVAL";
    argv[1] = offload_cancel_sync_script;
    argv[2] = "1";
    argv[3] = key;
    argv[4] = (char *) deadline;
    argv[5] = (char *) ctx->id;
    argv[6] = stream;

    argvlen[0] = 4;
    argvlen[1] = ngx_strlen(offload_cancel_sync_script);
    argvlen[2] = 1;
    argvlen[3] = n;
    argvlen[4] = end - deadline;
    argvlen[5] = OFFLOAD_JOB_ID_LEN;
    argvlen[6] = len;

    /* the connection down or going: sent once it is up again */

    link = &ctx->peer->command;

    if (ngx_http_offload_link_send(link, ngx_http_offload_link_logged,
                                   "cancelling a job", 7, argv, argvlen)
        != NGX_OK
        && (link->exiting
            || ngx_http_offload_link_post(link, NULL, 7, argv, argvlen)
               != NGX_OK))
    {
        ngx_log_error(NGX_LOG_WARN, ctx->request->connection->log, 0,
                      "offload: job %*s: nobody waits for it, but redis "
                      "is not reachable to cancel it",
                      (size_t) OFFLOAD_JOB_ID_LEN, ctx->id);
        return;
    }

    ngx_log_error(NGX_LOG_INFO, ctx->request->connection->log, 0,
                  "offload: job %*s: nobody waits for it, the job is "
                  "cancelled unless a worker has taken it",
                  (size_t) OFFLOAD_JOB_ID_LEN, ctx->id);
}


/*
 * The job's XADD (or script) went to Redis whole, but its reply was lost
 * with the connection, or did not come before the deadline: Redis may
 * hold the job, or may not.  503 outcome_unknown, not redis_unavailable
 * (nothing queued), with the job's id (and X-Offload-Job-Id).  An async
 * job, or one with an Idempotency-Key, has a record if it exists: its
 * status URL tells (404 unknown_job: it was not queued, or not yet: a
 * command Redis has not read yet may still land).  A sync job without a
 * key is cancelled as if its client went away (a command queued for the
 * next connection); one with a key is not: the same request with the
 * same key gets its result.
 */

void
ngx_http_offload_outcome_unknown(ngx_http_offload_ctx_t *ctx,
    const char *why)
{
    u_char      *p, msg[256];
    const char  *then;

    if (ctx->async) {
        then = "it may have been queued: its status_url tells";

    } else if (ctx->idem_key.len) {
        then = "it may run: the same request with the same "
               "Idempotency-Key gets its result";

    } else {
        then = "it may have been queued, and is cancelled unless a "
               "worker has taken it";
        ngx_http_offload_cancel_sync(ctx);
    }

    p = ngx_snprintf(msg, sizeof(msg) - 1, "%s; %s", why, then);
    *p = '\0';

    ngx_http_offload_answer_job_error(ctx, NGX_HTTP_SERVICE_UNAVAILABLE,
                                      "outcome_unknown", (char *) msg);
}


/*
 * An error for a job Redis holds, or may (a 503; a keyed sync job's 504):
 * its id (in the body and in X-Offload-Job-Id) and, when it has a record
 * to read (async, or an Idempotency-Key), its status URL.
 */

void
ngx_http_offload_answer_job_error(ngx_http_offload_ctx_t *ctx,
    ngx_uint_t status, const char *code, const char *message)
{
    u_char                       *p, *url, *more;
    size_t                        len;
    ngx_str_t                     extra;
    ngx_http_request_t           *r;
    ngx_http_offload_loc_conf_t  *olcf;

    r = ctx->request;
    olcf = ngx_http_get_module_loc_conf(r, ngx_http_offload_module);

    len = olcf->jobs_url.len + OFFLOAD_JOB_ID_LEN;

    url = ngx_pnalloc(r->pool, len);
    more = ngx_pnalloc(r->pool, sizeof(",\"id\":\"\",\"status_url\":\"\"") - 1
                                + OFFLOAD_JOB_ID_LEN + 6 * len);

    if (url == NULL || more == NULL
        || ngx_http_offload_add_header(r, "X-Offload-Job-Id", ctx->id,
                                       OFFLOAD_JOB_ID_LEN)
           != NGX_OK)
    {
        ngx_http_offload_answer_error(ctx, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                      "internal", "out of memory");
        return;
    }

    p = ngx_sprintf(more, ",\"id\":\"%*s\"", (size_t) OFFLOAD_JOB_ID_LEN,
                    ctx->id);

    if (ctx->async || ctx->idem_key.len) {
        ngx_sprintf(url, "%V%*s", &olcf->jobs_url,
                    (size_t) OFFLOAD_JOB_ID_LEN, ctx->id);

        p = ngx_cpymem(p, ",\"status_url\":\"", 15);
        p = (u_char *) ngx_escape_json(p, url, len);
        *p++ = '"';
    }

    extra.data = more;
    extra.len = p - more;

    ngx_http_offload_unpark(ctx);

    ngx_http_offload_finish(ctx, ngx_http_offload_send_error_more(
                                     r, status, code, message, &extra));
}



void
ngx_http_offload_answer_result(ngx_http_offload_ctx_t *ctx,
    offload_result_t *res)
{
    off_t                len;
    u_char              *p, *t,
                         timing[128 + NGX_HTTP_OFFLOAD_TRACE_TIMING_LEN];
    ngx_int_t            rc;
    ngx_chain_t         *out;
    ngx_http_request_t  *r;

    r = ctx->request;

    ngx_http_offload_unpark(ctx);

    /* a result can come before the XADD's reply (two connections): a
     * worker served the queue, so it has counters */
    if (ctx->metrics == NULL) {
        ctx->metrics = ngx_http_offload_metrics_queue(
                                ngx_http_offload_worker.metrics, &ctx->queue,
                                1);
    }

    if (!ngx_http_offload_result_final(r, res, ctx->id)) {
        ngx_http_offload_answer_error(ctx, NGX_HTTP_BAD_GATEWAY, "bad_result",
                                      NGX_HTTP_OFFLOAD_NOT_FINAL);
        return;
    }

    /* a big result's elements were read into the request's pool already,
     * a buffer each: they are the answer, the header cut off the first */

    if (ctx->result_read) {
        out = ngx_http_offload_list_body(&ctx->result, res, &len);

    } else {
        p = ngx_pnalloc(r->pool, res->body.len);
        out = ngx_http_offload_chain_of(r->pool, p, res->body.len);

        if (p == NULL || out == NULL) {
            ngx_http_offload_finish(ctx, NGX_HTTP_INTERNAL_SERVER_ERROR);
            return;
        }

        ngx_memcpy(p, res->body.data, res->body.len);
        len = res->body.len;
    }

    rc = ngx_http_offload_add_header(r, "X-Offload-Job-Id", ctx->id,
                                     OFFLOAD_JOB_ID_LEN);

    if (rc == NGX_OK) {
        t = ngx_http_offload_timing(timing, "queue;dur=", res->queue_us);
        t = ngx_http_offload_timing(t, ", run;dur=", res->run_us);

        /* a result of an older sidecar has no CPU time */
        if (res->cpu_us >= 0) {
            t = ngx_http_offload_timing(t, ", cpu;dur=", res->cpu_us);
        }

        t = ngx_http_offload_trace_timing(r, t, timing);
        ctx->timed = 1;

        rc = ngx_http_offload_add_header(r, "Server-Timing", timing,
                                         t - timing);
    }

    if (res->status == NGX_HTTP_OK && res->cpu_us >= 0) {
        ngx_http_offload_metrics_observe(ctx->metrics,
                                         NGX_HTTP_OFFLOAD_HIST_QUEUE,
                                         res->queue_us);
        ngx_http_offload_metrics_observe(ctx->metrics,
                                         NGX_HTTP_OFFLOAD_HIST_RUN,
                                         res->run_us);
        ngx_http_offload_metrics_observe(ctx->metrics,
                                         NGX_HTTP_OFFLOAD_HIST_CPU,
                                         res->cpu_us);
        ngx_http_offload_metrics_observe(ctx->metrics,
                                         NGX_HTTP_OFFLOAD_HIST_RSS,
                                         res->rss_kb * 1024);
    }

    if (rc == NGX_OK) {
        rc = ngx_http_offload_send(r, res->status, out, len);
    }

    ngx_http_offload_finish(ctx, rc);
}


/*
 * A Server-Timing metric's name and its duration in milliseconds, made of
 * us microseconds (offload_result_decode() takes at most 18 digits: the
 * three metrics fit in 128 bytes).  By hand: ngx_snprintf() cost more than
 * a tenth of the module's instructions on an echo job's answer.
 */

static u_char *
ngx_http_offload_timing_metric(u_char *p, u_char *name, size_t len,
    int64_t us)
{
    p = ngx_cpymem(p, name, len);
    p = (u_char *) offload_decimal((char *) p, us / 1000);

    *p++ = '.';
    *p++ = (u_char) ('0' + us / 100 % 10);
    *p++ = (u_char) ('0' + us / 10 % 10);
    *p++ = (u_char) ('0' + us % 10);

    return p;
}


/*
 * Whether a decoded result can go out as the final answer: a status below
 * 200 (offload_result_decode() takes 100 to 599) would go as an interim
 * one, a body after it.  The sidecar never makes one, a consumer of its
 * own may (PROTOCOL.md): logged, the caller answers 502 bad_result.
 */

ngx_uint_t
ngx_http_offload_result_final(ngx_http_request_t *r, offload_result_t *res,
    u_char *id)
{
    if (res->status >= NGX_HTTP_OK) {
        return 1;
    }

    ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                  "offload: the result of job %*s has status %d, "
                  "answered 502", (size_t) OFFLOAD_JOB_ID_LEN, id,
                  res->status);

    return 0;
}


/* An answer the module makes itself (a 202), a JSON body in the request's
 * pool. */

void
ngx_http_offload_answer_body(ngx_http_offload_ctx_t *ctx, ngx_uint_t status,
    u_char *body, size_t len)
{
    ngx_chain_t  *out;

    ngx_http_offload_unpark(ctx);

    out = ngx_http_offload_chain_of(ctx->request->pool, body, len);

    ngx_http_offload_finish(ctx, out == NULL
                                 ? NGX_HTTP_INTERNAL_SERVER_ERROR
                                 : ngx_http_offload_send(ctx->request, status,
                                                         out, len));
}


void
ngx_http_offload_answer_error(ngx_http_offload_ctx_t *ctx, ngx_uint_t status,
    const char *code, const char *message)
{
    ngx_http_offload_unpark(ctx);

    ngx_http_offload_finish(ctx, ngx_http_offload_send_error(ctx->request,
                                                             status, code,
                                                             message));
}


/* Finalizes a parked request from a foreign event: a redis fd, a timer. */

static void
ngx_http_offload_finish(ngx_http_offload_ctx_t *ctx, ngx_int_t rc)
{
    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    r = ctx->request;
    c = r->connection;

    ngx_http_finalize_request(r, rc);
    ngx_http_run_posted_requests(c);
}


/* Every answer carries X-Request-Id: the $request_id the job took along, so
 * one grep follows a request through nginx's and the workers' logs; an
 * answer of offload_pass also its traceparent (ngx_http_offload_trace.c)
 * and counts in the metrics zone. */

ngx_int_t
ngx_http_offload_send(ngx_http_request_t *r, ngx_uint_t status,
    ngx_chain_t *out, off_t len)
{
    ngx_str_t                      type = ngx_string("application/json");
    ngx_http_offload_ctx_t        *ctx;
    ngx_http_offload_loc_conf_t   *olcf;
    ngx_http_offload_main_conf_t  *omcf;

    omcf = ngx_http_get_module_main_conf(r, ngx_http_offload_module);
    olcf = ngx_http_get_module_loc_conf(r, ngx_http_offload_module);
    ctx = ngx_http_get_module_ctx(r, ngx_http_offload_module);

    if (ctx != NULL && !ctx->answered) {
        ctx->answered = 1;
        ngx_http_offload_count_answer(ctx, status);

    } else if (ctx == NULL && olcf->queue != NULL) {
        ngx_http_offload_metrics_invalid(omcf->metrics, status);
    }

    if (olcf->queue != NULL && ngx_http_offload_trace_answer(r) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_offload_send_chain(r, status, &type, out, len);
}


ngx_int_t
ngx_http_offload_send_body(ngx_http_request_t *r, ngx_uint_t status,
    ngx_str_t *type, u_char *body, size_t len)
{
    ngx_chain_t  *out;

    out = ngx_http_offload_chain_of(r->pool, body, len);
    if (out == NULL) {
        return NGX_ERROR;
    }

    return ngx_http_offload_send_chain(r, status, type, out, len);
}


/*
 * $request_id, made here before nginx's own handler would make it: that
 * one asks OpenSSL's RAND_bytes() for each request, and OpenSSL asks the
 * kernel for its pid on each call (to notice a fork), a system call per
 * request.  The same 16 random bytes in hex, from the kernel's random
 * source, fetched NGX_HTTP_OFFLOAD_RID_POOL bytes at a time.  The value
 * is the variable's for the whole request (the access log, a proxied
 * header); one evaluated before (a "set" in the location) is kept.
 */

static ngx_http_variable_value_t *
ngx_http_offload_rid(ngx_http_request_t *r)
{
    u_char                        *id;
    ssize_t                        n;
    ngx_http_variable_value_t     *v;
    ngx_http_offload_main_conf_t  *omcf;

    static u_char     pool[NGX_HTTP_OFFLOAD_RID_POOL];
    static size_t     left;
    static ngx_pid_t  pid;

    omcf = ngx_http_get_module_main_conf(r, ngx_http_offload_module);
    v = &r->variables[omcf->request_id_index];

    if (v->valid || v->not_found) {
        return v;
    }

    /* a forked process draws its own bytes */
    if (pid != ngx_pid) {
        pid = ngx_pid;
        left = 0;
    }

    if (left < 16) {
        n = getrandom(pool, sizeof(pool), GRND_NONBLOCK);

        if (n < 16) {
            /* not ready yet (early boot): nginx's own way */
            return ngx_http_get_indexed_variable(r, omcf->request_id_index);
        }

        left = (size_t) n / 16 * 16;
    }

    id = ngx_pnalloc(r->pool, 32);
    if (id == NULL) {
        return NULL;
    }

    left -= 16;
    ngx_hex_dump(id, pool + left, 16);

    v->len = 32;
    v->data = id;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;

    return v;
}


/* one buffer of memory (len 0: an empty one, to carry last_buf) */

ngx_chain_t *
ngx_http_offload_chain_of(ngx_pool_t *pool, u_char *data, size_t len)
{
    ngx_buf_t    *b;
    ngx_chain_t  *cl;

    b = ngx_calloc_buf(pool);
    cl = ngx_alloc_chain_link(pool);

    if (b == NULL || cl == NULL) {
        return NULL;
    }

    b->pos = data;
    b->last = data + len;
    b->memory = len ? 1 : 0;

    cl->buf = b;
    cl->next = NULL;

    return cl;
}


/* The answer: headers, then out (len bytes in all; NULL when none). */

ngx_int_t
ngx_http_offload_send_chain(ngx_http_request_t *r, ngx_uint_t status,
    ngx_str_t *type, ngx_chain_t *out, off_t len)
{
    ngx_int_t                   rc;
    ngx_chain_t                *cl;
    ngx_http_variable_value_t  *rid;

    rid = ngx_http_offload_rid(r);
    if (rid != NULL && !rid->not_found
        && ngx_http_offload_add_header(r, "X-Request-Id", rid->data,
                                       rid->len)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    r->headers_out.status = status;
    r->headers_out.content_length_n = len;

    /* no answer is a resource's state: If-Unmodified-Since or If-Match
     * would have nginx answer 412 (or 304) after the job ran */
    r->disable_not_modified = 1;

    /* nginx knows no reason phrase for a handler's 422 */
    if (status == NGX_HTTP_OFFLOAD_UNPROCESSABLE) {
        ngx_str_set(&r->headers_out.status_line, "422 Unprocessable Entity");
    }

    r->headers_out.content_type = *type;
    r->headers_out.content_type_len = type->len;
    r->headers_out.content_type_lowcase = NULL;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    if (out == NULL) {
        out = ngx_http_offload_chain_of(r->pool, NULL, 0);
        if (out == NULL) {
            return NGX_ERROR;
        }
    }

    for (cl = out; cl->next; cl = cl->next) { /* void */ }

    cl->buf->last_buf = (r == r->main) ? 1 : 0;
    cl->buf->last_in_chain = 1;

    return ngx_http_output_filter(r, out);
}


/* {"error":{"code":…,"message":…}}; the message is escaped, code is not */

ngx_int_t
ngx_http_offload_send_error(ngx_http_request_t *r, ngx_uint_t status,
    const char *code, const char *message)
{
    return ngx_http_offload_send_error_more(r, status, code, message, NULL);
}


/* ... with more members of the error object after the message: JSON, each
 * led by a comma */

static ngx_int_t
ngx_http_offload_send_error_more(ngx_http_request_t *r, ngx_uint_t status,
    const char *code, const char *message, ngx_str_t *more)
{
    u_char                  *p, *last, retry[NGX_INT_T_LEN];
    size_t                   len, mlen;
    ngx_chain_t             *out;
    ngx_http_offload_ctx_t  *ctx;

    static u_char  head[] = "{\"error\":{\"code\":\"";
    static u_char  middle[] = "\",\"message\":\"";
    static u_char  tail[] = "\"}}";

    if (status == NGX_HTTP_SERVICE_UNAVAILABLE) {
        ctx = ngx_http_get_module_ctx(r, ngx_http_offload_module);

        p = ngx_sprintf(retry, "%ui",
                        ctx && ctx->retry_after ? ctx->retry_after : 1);

        if (ngx_http_offload_add_header(r, "Retry-After", retry, p - retry)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    mlen = ngx_strlen(message);

    len = sizeof(head) - 1 + ngx_strlen(code) + sizeof(middle) - 1
          + mlen + ngx_escape_json(NULL, (u_char *) message, mlen)
          + (more ? more->len : 0) + sizeof(tail) - 1;

    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    last = ngx_cpymem(p, head, sizeof(head) - 1);
    last = ngx_cpymem(last, code, ngx_strlen(code));
    last = ngx_cpymem(last, middle, sizeof(middle) - 1);
    last = (u_char *) ngx_escape_json(last, (u_char *) message, mlen);
    last = ngx_cpymem(last, tail, 1);

    if (more) {
        last = ngx_cpymem(last, more->data, more->len);
    }

    last = ngx_cpymem(last, tail + 1, sizeof(tail) - 2);

    out = ngx_http_offload_chain_of(r->pool, p, last - p);
    if (out == NULL) {
        return NGX_ERROR;
    }

    return ngx_http_offload_send(r, status, out, last - p);
}


ngx_int_t
ngx_http_offload_add_header(ngx_http_request_t *r, const char *name,
    u_char *value, size_t len)
{
    u_char           *p;
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        h->hash = 0;
        return NGX_ERROR;
    }

    ngx_memcpy(p, value, len);

    h->hash = 1;
    h->key.data = (u_char *) name;
    h->key.len = ngx_strlen(name);
    h->value.data = p;
    h->value.len = len;

    return NGX_OK;
}


/* 405 with the Allow header RFC 9110 requires, for nginx's error page or
 * the JSON one of the locations that answer JSON */

ngx_int_t
ngx_http_offload_not_allowed(ngx_http_request_t *r, const char *allow)
{
    if (ngx_http_offload_add_header(r, "Allow", (u_char *) allow,
                                    ngx_strlen(allow))
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return NGX_HTTP_NOT_ALLOWED;
}


/*
 * A location answers with one content handler: the same directive twice is
 * a duplicate, two of the module's (offload_pass and offload_jobs, say) a
 * conflict said as such.
 */

char *
ngx_http_offload_content(ngx_conf_t *cf, ngx_command_t *cmd,
    ngx_http_offload_loc_conf_t *olcf)
{
    if (olcf->content == NULL) {
        olcf->content = &cmd->name;
        return NGX_CONF_OK;
    }

    if (olcf->content == &cmd->name) {
        return "is duplicate";
    }

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "\"%V\" and \"%V\" cannot share a location: each "
                       "answers its requests", olcf->content, &cmd->name);

    return NGX_CONF_ERROR;
}


static char *
ngx_http_offload_pass(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_offload_loc_conf_t *olcf = conf;

    char                              *rv;
    ngx_str_t                         *value;
    ngx_http_core_loc_conf_t          *clcf;
    ngx_http_compile_complex_value_t   ccv;

    rv = ngx_http_offload_content(cf, cmd, olcf);
    if (rv != NGX_CONF_OK) {
        return rv;
    }

    value = cf->args->elts;

    olcf->queue = ngx_palloc(cf->pool, sizeof(ngx_http_complex_value_t));
    if (olcf->queue == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));

    ccv.cf = cf;
    ccv.value = &value[1];
    ccv.complex_value = olcf->queue;

    if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (olcf->queue->lengths == NULL
        && !offload_queue_name_valid((char *) value[1].data, value[1].len))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid queue name \"%V\" in \"%V\" directive",
                           &value[1], &cmd->name);
        return NGX_CONF_ERROR;
    }

    olcf->handler = ngx_http_offload_handler;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = olcf->handler;

    return NGX_CONF_OK;
}


static char *
ngx_http_offload_positive_msec(ngx_conf_t *cf, void *post, void *data)
{
    ngx_msec_t  *ms = data;

    if (*ms == 0) {
        return "must be more than 0";
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_offload_jobs_url_check(ngx_conf_t *cf, void *post, void *data)
{
    u_char     *p;
    ngx_str_t  *url = data;

    for (p = url->data; p < url->data + url->len; p++) {
        if (*p == '$') {
            return "takes no variables: the prefix is sent as it is";
        }

        if (*p <= ' ' || *p == '"' || *p == '\\' || *p == 0x7f) {
            return "may not hold spaces, quotes, backslashes or control "
                   "characters";
        }
    }

    if (url->len == 0
        || (url->data[0] != '/'
            && ngx_strncmp(url->data, "http://", 7) != 0
            && ngx_strncmp(url->data, "https://", 8) != 0))
    {
        return "must be a path (\"/...\") or an absolute http:// or "
               "https:// URL";
    }

    return NGX_CONF_OK;
}


static void *
ngx_http_offload_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_offload_main_conf_t  *omcf;

    omcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_offload_main_conf_t));
    if (omcf == NULL) {
        return NULL;
    }

    if (ngx_array_init(&omcf->peers, cf->pool, 2,
                       sizeof(ngx_http_offload_peer_t *))
        != NGX_OK)
    {
        return NULL;
    }

    omcf->request_id_index = NGX_ERROR;
    omcf->metrics_size = NGX_CONF_UNSET;
    omcf->status_size = NGX_CONF_UNSET;
    omcf->status_interval = NGX_CONF_UNSET_MSEC;

    return omcf;
}


static void *
ngx_http_offload_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_offload_loc_conf_t  *olcf;

    olcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_offload_loc_conf_t));
    if (olcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     olcf->queue = NULL;
     *     olcf->jobs_url = { 0, NULL };
     */

    olcf->peer = NGX_CONF_UNSET_PTR;
    olcf->timeout = NGX_CONF_UNSET_MSEC;
    olcf->validate_json = NGX_CONF_UNSET;
    olcf->max_backlog = NGX_CONF_UNSET_UINT;
    olcf->reads_nodes = NGX_CONF_UNSET;
    olcf->mode = NGX_CONF_UNSET_UINT;
    olcf->result_ttl = NGX_CONF_UNSET_MSEC;
    olcf->idempotency_ttl = NGX_CONF_UNSET_MSEC;
    olcf->cancel_running = NGX_CONF_UNSET;
    olcf->jobs_memory = NGX_CONF_UNSET_SIZE;

    return olcf;
}


static char *
ngx_http_offload_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_offload_loc_conf_t *prev = parent;
    ngx_http_offload_loc_conf_t *conf = child;

    size_t                     size;
    ngx_str_t                  addr, user, password;
    ngx_http_core_loc_conf_t  *clcf;

    ngx_conf_merge_ptr_value(conf->peer, prev->peer, NULL);
    ngx_conf_merge_msec_value(conf->timeout, prev->timeout, 30000);
    ngx_conf_merge_value(conf->validate_json, prev->validate_json, 1);
    ngx_conf_merge_uint_value(conf->max_backlog, prev->max_backlog, 0);
    ngx_conf_merge_uint_value(conf->mode, prev->mode, NGX_HTTP_OFFLOAD_SYNC);
    ngx_conf_merge_str_value(conf->jobs_url, prev->jobs_url, "/jobs/");
    ngx_conf_merge_msec_value(conf->result_ttl, prev->result_ttl, 3600000);
    ngx_conf_merge_msec_value(conf->idempotency_ttl, prev->idempotency_ttl,
                              86400000);

    ngx_conf_merge_value(conf->cancel_running, prev->cancel_running, 0);
    ngx_conf_merge_size_value(conf->jobs_memory, prev->jobs_memory,
                              256 * 1024 * 1024);

    /* offload_pass, like proxy_pass, is not inherited, nor are
     * offload_jobs, offload_status and offload_metrics; but the blocks
     * inside a location (if, limit_except) are that location, as for
     * proxy_pass: its handler runs with their configuration */

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (clcf->noname && conf->handler == NULL) {
        conf->queue = prev->queue;
        conf->jobs = prev->jobs;
        conf->report = prev->report;
        conf->reads_nodes = prev->reads_nodes;
        conf->handler = prev->handler;
    }

    /* a limit_except block has the requests it lets by answered by its
     * own handler: nginx's static one without this */

    if (clcf->lmt_excpt && clcf->handler == NULL) {
        clcf->handler = conf->handler;
    }

    if (conf->queue == NULL && conf->reads_nodes != 1) {
        return NGX_CONF_OK;
    }

    if (conf->peer == NULL) {
        ngx_str_set(&addr, NGX_HTTP_OFFLOAD_DEFAULT_REDIS);
        ngx_str_null(&user);
        ngx_str_null(&password);

        conf->peer = ngx_http_offload_peer_get(cf, &addr, &user, &password,
                                               0, 0, 0, &user, &password);
        if (conf->peer == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    conf->peer->used = 1;

    if (conf->jobs) {
        conf->peer->jobs = 1;
    }

    if (conf->queue == NULL) {
        return NGX_CONF_OK;
    }

    conf->peer->passes = 1;

    /* a duplicate submission waits for its first job's end as a long
     * poll does */

    if (conf->idempotency_ttl) {
        conf->peer->jobs = 1;
    }

    /*
     * The job carries the body, so it must be read into one memory buffer:
     * raise client_body_buffer_size to client_max_body_size so that nginx
     * never spills it to a temp file.  During the merge cf->ctx holds this
     * location's configurations.
     */

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    /* with client_max_body_size 0 the buffer is the limit (below) */

    if (clcf->client_max_body_size > OFFLOAD_BODY_MAX
        || (clcf->client_max_body_size == 0
            && clcf->client_body_buffer_size > OFFLOAD_BODY_MAX))
    {
        /* checked at the merge: the line is the end of the block that
         * holds the location, so the location is named */
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%s\" is %O in location \"%V\", more than a "
                           "job can carry with \"offload_pass\": the body "
                           "travels as one Redis string, and Redis takes at "
                           "most 512m in one (proto-max-bulk-len), less the "
                           "result's header: set it to %uzm or less",
                           clcf->client_max_body_size
                           ? "client_max_body_size"
                           : "client_body_buffer_size",
                           clcf->client_max_body_size
                           ? clcf->client_max_body_size
                           : (off_t) clcf->client_body_buffer_size,
                           &clcf->name, (size_t) (OFFLOAD_BODY_MAX >> 20));
        return NGX_CONF_ERROR;
    }

    /* client_max_body_size 0, no limit to nginx, would write a body over
     * the buffer to a temporary file, however big, only for the module to
     * refuse it: the buffer is the limit then, refused as nginx refuses a
     * body over client_max_body_size (413, before a byte is read when the
     * Content-Length says so) */

    if (clcf->client_max_body_size == 0) {
        clcf->client_max_body_size = (off_t) clcf->client_body_buffer_size;
    }

    /* and an eighth more: nginx reads a chunked body's framing into the
     * same buffer (a chunk of 50 bytes or more, without extensions,
     * takes at most an eighth more; nginx compacts a smaller chunk's
     * bytes, but the room they were read into stays taken) */

    size = (size_t) clcf->client_max_body_size;
    size += size / 8;

    if (clcf->client_max_body_size > 0
        && clcf->client_body_buffer_size < size)
    {
        clcf->client_body_buffer_size = size;
    }

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_offload_postconfiguration(ngx_conf_t *cf)
{
    ngx_http_offload_main_conf_t  *omcf;

    omcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_offload_module);

    omcf->request_id_index = ngx_http_get_variable_index(cf,
                                                 &ngx_http_offload_request_id);
    if (omcf->request_id_index == NGX_ERROR) {
        return NGX_ERROR;
    }

    if (ngx_http_offload_metrics_add_zone(cf, omcf) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_http_offload_errors_init(cf) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_offload_status_add_zone(cf, omcf);
}


/*
 * The worker's nonce names its jobs and its reply channel: random bytes
 * mixed with the pid, so two workers never share one even if the random
 * source fails.
 */

static void
ngx_http_offload_make_nonce(ngx_cycle_t *cycle)
{
    ssize_t    n;
    uint64_t   v;
    ngx_fd_t   fd;
    ngx_uint_t i;

    v = 0;

    fd = ngx_open_file("/dev/urandom", NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);

    if (fd != NGX_INVALID_FILE) {
        n = read(fd, &v, sizeof(v));

        if (n != (ssize_t) sizeof(v)) {
            v = 0;
        }

        (void) ngx_close_file(fd);
    }

    if (v == 0) {
        ngx_log_error(NGX_LOG_WARN, cycle->log, ngx_errno,
                      "offload: no random nonce from /dev/urandom");
        v = ((uint64_t) ngx_time() << 32) ^ (uint64_t) ngx_random();
    }

    v ^= (uint64_t) ngx_pid << 40;

    for (i = 0; i < OFFLOAD_NONCE_LEN; i++) {
        ngx_http_offload_worker.nonce[OFFLOAD_NONCE_LEN - 1 - i] =
            "0123456789abcdef"[v & 0xf];
        v >>= 4;
    }
}


static ngx_int_t
ngx_http_offload_init_process(ngx_cycle_t *cycle)
{
    int                             len;
    ngx_uint_t                      i;
    ngx_http_offload_peer_t       **peerp;
    ngx_http_offload_main_conf_t   *omcf;

    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return NGX_OK;
    }

    omcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_offload_module);
    if (omcf == NULL) {
        return NGX_OK;
    }

    ngx_http_offload_make_nonce(cycle);

    len = offload_reply_channel(ngx_http_offload_worker.channel,
                                sizeof(ngx_http_offload_worker.channel),
                                ngx_http_offload_worker.nonce,
                                OFFLOAD_NONCE_LEN);
    if (len < 0) {
        return NGX_ERROR;
    }

    ngx_http_offload_worker.channel_len = len;
    ngx_http_offload_worker.seq = 0;
    ngx_http_offload_worker.metrics = omcf->metrics;
    ngx_http_offload_metrics_join(omcf->metrics, cycle->log);

    peerp = omcf->peers.elts;

    for (i = 0; i < omcf->peers.nelts; i++) {
        if (peerp[i]->used) {
            ngx_http_offload_peer_start(peerp[i], cycle->log);
        }

        if (peerp[i]->passes
            && ngx_http_offload_admission_start(peerp[i], cycle) != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


static void
ngx_http_offload_exit_process(ngx_cycle_t *cycle)
{
    ngx_uint_t                      i;
    ngx_http_offload_peer_t       **peerp;
    ngx_http_offload_main_conf_t   *omcf;

    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        return;
    }

    omcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_offload_module);
    if (omcf == NULL) {
        return;
    }

    peerp = omcf->peers.elts;

    for (i = 0; i < omcf->peers.nelts; i++) {
        if (peerp[i]->used) {
            ngx_http_offload_admission_stop(peerp[i]);
            ngx_http_offload_peer_stop(peerp[i]);
        }
    }

    /* the requests still open are not finalized: they leave the gauges */
    ngx_http_offload_metrics_leave(omcf->metrics, cycle->log);
}

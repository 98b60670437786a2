/*
 * ngx_http_offload_status.c -- offload_status (JSON) and offload_metrics
 * (Prometheus text): this nginx's metrics zone, plus every live sidecar
 * node's document, fetched from Redis in one round trip
 * (offload_nodes_script).  The zone is read without a lock; the Redis part
 * is a single EVALSHA_RO on the worker's command connection, so the answer
 * never waits on the sidecars, however busy their workers are.  The script
 * itself travels only when Redis does not know it yet (NOSCRIPT: a new or
 * flushed Redis): then one EVAL_RO, which also caches it.
 */



#include "ngx_http_offload_module.h"


#define NGX_HTTP_OFFLOAD_LIMIT_MAX  100000


typedef struct {
    ngx_http_request_t           *request;     /* NULL once it is gone */
    ngx_http_cleanup_t           *cleanup;
    ngx_http_offload_peer_t      *peer;
    ngx_uint_t                    report;
    ngx_str_t                     sort;
    ngx_str_t                     limit;
    unsigned                      by_sha:1;
} ngx_http_offload_status_ctx_t;


static ngx_int_t ngx_http_offload_status_sort(ngx_http_request_t *r,
    ngx_str_t *sort);
static ngx_int_t ngx_http_offload_status_limit(ngx_http_request_t *r,
    ngx_str_t *limit);
static ngx_int_t ngx_http_offload_status_query(
    ngx_http_offload_status_ctx_t *sctx);
static void ngx_http_offload_status_cleanup(void *data);
static void ngx_http_offload_status_done(redisAsyncContext *ac, void *r,
    void *privdata);
static ngx_int_t ngx_http_offload_status_send(ngx_http_request_t *r,
    ngx_uint_t report, redisReply *nodes);


static ngx_str_t  ngx_http_offload_json_type = ngx_string("application/json");
static ngx_str_t  ngx_http_offload_prom_type =
    ngx_string("text/plain; version=0.0.4; charset=utf-8");

static const char  *ngx_http_offload_sorts[] = {
    "memory", "cpu", "queue", "restarts", "jobs", NULL
};

/* the script's SHA1, hex, as EVALSHA takes it; made on first use */
static u_char  ngx_http_offload_nodes_sha[40];
static size_t  ngx_http_offload_nodes_sha_len;


ngx_int_t
ngx_http_offload_status_handler(ngx_http_request_t *r)
{
    ngx_int_t                       rc;
    ngx_str_t                       sort, limit;
    ngx_http_offload_peer_t        *peer;
    ngx_http_offload_loc_conf_t    *olcf;
    ngx_http_offload_status_ctx_t  *sctx;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    olcf = ngx_http_get_module_loc_conf(r, ngx_http_offload_module);
    peer = olcf->peer;

    ngx_str_null(&sort);
    ngx_str_null(&limit);

    if (olcf->report == NGX_HTTP_OFFLOAD_REPORT_JSON) {
        if (ngx_http_offload_status_sort(r, &sort) != NGX_OK) {
            return ngx_http_offload_send_error(r, NGX_HTTP_BAD_REQUEST,
                       "bad_sort", "sort must be one of memory, cpu, queue, "
                       "restarts, jobs");
        }

        if (ngx_http_offload_status_limit(r, &limit) != NGX_OK) {
            return ngx_http_offload_send_error(r, NGX_HTTP_BAD_REQUEST,
                       "bad_limit", "limit must be an integer from 1 to "
                       "100000");
        }
    }

    if (!peer->command.up) {
        return ngx_http_offload_status_send(r, olcf->report, NULL);
    }

    sctx = ngx_alloc(sizeof(ngx_http_offload_status_ctx_t),
                     r->connection->log);
    if (sctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    sctx->cleanup = ngx_http_cleanup_add(r, 0);
    if (sctx->cleanup == NULL) {
        ngx_free(sctx);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    sctx->request = r;
    sctx->peer = peer;
    sctx->report = olcf->report;
    sctx->sort = sort;
    sctx->limit = limit;
    sctx->by_sha = 1;
    sctx->cleanup->handler = ngx_http_offload_status_cleanup;
    sctx->cleanup->data = sctx;

    if (ngx_http_offload_status_query(sctx) != NGX_OK) {
        sctx->cleanup->handler = NULL;
        ngx_free(sctx);
        return ngx_http_offload_status_send(r, olcf->report, NULL);
    }

    /* answered from the reply callback; notice a client that leaves */
    r->main->count++;
    r->read_event_handler = ngx_http_test_reading;
    r->write_event_handler = ngx_http_request_empty_handler;

    return NGX_DONE;
}


/*
 * EVALSHA_RO, or EVAL_RO with the script once Redis answered NOSCRIPT.
 * _RO (Redis 7): the script only reads, and a read-only ACL user
 * (%R~ on the registry keys) may run it; EVAL would need write access to
 * its KEYS as well.
 */

static ngx_int_t
ngx_http_offload_status_query(ngx_http_offload_status_ctx_t *sctx)
{
    int          argc;
    const char  *argv[9];
    size_t       argvlen[9];

    if (ngx_http_offload_nodes_sha_len == 0) {
        ngx_http_offload_nodes_sha_len = ngx_http_offload_script_sha(
                                             offload_nodes_script,
                                             ngx_http_offload_nodes_sha);
    }

    argc = 0;

    if (sctx->by_sha) {
        argv[argc] = "EVALSHA_RO";
        argvlen[argc++] = 10;
        argv[argc] = (char *) ngx_http_offload_nodes_sha;
        argvlen[argc++] = ngx_http_offload_nodes_sha_len;

    } else {
        argv[argc] = "EVAL_RO";
        argvlen[argc++] = 7;
        argv[argc] = offload_nodes_script;
        argvlen[argc++] = ngx_strlen(offload_nodes_script);
    }

    argv[argc] = "2";
    argvlen[argc++] = 1;
    argv[argc] = OFFLOAD_NODES_KEY;
    argvlen[argc++] = sizeof(OFFLOAD_NODES_KEY) - 1;
    argv[argc] = OFFLOAD_CRASHES_KEY;
    argvlen[argc++] = sizeof(OFFLOAD_CRASHES_KEY) - 1;

    if (sctx->report == NGX_HTTP_OFFLOAD_REPORT_JSON) {
        argv[argc] = "json";
        argvlen[argc++] = 4;
    } else {
        argv[argc] = "prom";
        argvlen[argc++] = 4;
    }

    argv[argc] = (char *) sctx->sort.data;
    argvlen[argc++] = sctx->sort.len;
    argv[argc] = (char *) sctx->limit.data;
    argvlen[argc++] = sctx->limit.len;
    argv[argc] = OFFLOAD_NODE_PREFIX;
    argvlen[argc++] = sizeof(OFFLOAD_NODE_PREFIX) - 1;

    return ngx_http_offload_link_send(&sctx->peer->command,
                                      ngx_http_offload_status_done, sctx,
                                      argc, argv, argvlen);
}


/* ?sort=memory|cpu|queue|restarts|jobs; absent or empty is none (node,
 * queue, slot) */

static ngx_int_t
ngx_http_offload_status_sort(ngx_http_request_t *r, ngx_str_t *sort)
{
    ngx_uint_t  i;

    if (ngx_http_arg(r, (u_char *) "sort", 4, sort) != NGX_OK
        || sort->len == 0)
    {
        return NGX_OK;
    }

    for (i = 0; ngx_http_offload_sorts[i]; i++) {
        if (sort->len == ngx_strlen(ngx_http_offload_sorts[i])
            && ngx_strncmp(sort->data, ngx_http_offload_sorts[i], sort->len)
               == 0)
        {
            return NGX_OK;
        }
    }

    return NGX_ERROR;
}


/* ?limit=N, 1 to NGX_HTTP_OFFLOAD_LIMIT_MAX; absent is no limit */

static ngx_int_t
ngx_http_offload_status_limit(ngx_http_request_t *r, ngx_str_t *limit)
{
    ngx_int_t  n;

    if (ngx_http_arg(r, (u_char *) "limit", 5, limit) != NGX_OK) {
        return NGX_OK;
    }

    n = ngx_atoi(limit->data, limit->len);

    return (n == NGX_ERROR || n < 1 || n > NGX_HTTP_OFFLOAD_LIMIT_MAX)
           ? NGX_ERROR : NGX_OK;
}


static void
ngx_http_offload_status_cleanup(void *data)
{
    ngx_http_offload_status_ctx_t  *sctx = data;

    sctx->request = NULL;
}


static void
ngx_http_offload_status_done(redisAsyncContext *ac, void *r, void *privdata)
{
    redisReply                     *reply = r;
    ngx_int_t                       rc;
    ngx_connection_t               *c;
    ngx_http_request_t             *req;
    ngx_http_offload_status_ctx_t  *sctx = privdata;

    (void) ngx_http_offload_link_replied(ac, reply);

    req = sctx->request;

    if (req == NULL) {
        ngx_free(sctx);
        return;
    }

    if (reply != NULL && reply->type == REDIS_REPLY_ERROR && sctx->by_sha
        && ngx_strncmp(reply->str, "NOSCRIPT", 8) == 0)
    {
        sctx->by_sha = 0;

        if (ngx_http_offload_status_query(sctx) == NGX_OK) {
            return;
        }

        reply = NULL;
    }

    sctx->cleanup->handler = NULL;

    if (reply != NULL && reply->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_ERR, req->connection->log, 0,
                      "offload: status script: %s", reply->str);
    }

    c = req->connection;

    rc = ngx_http_offload_status_send(req, sctx->report,
                                      reply != NULL
                                      && reply->type == REDIS_REPLY_STRING
                                      ? reply : NULL);
    ngx_free(sctx);

    ngx_http_finalize_request(req, rc);
    ngx_http_run_posted_requests(c);
}


/*
 * The zone's part and the nodes' part (nodes NULL: Redis did not answer,
 * the document says so).  JSON: {"nginx":{...},"redis":"ok",<nodes part>}.
 */

static ngx_int_t
ngx_http_offload_status_send(ngx_http_request_t *r, ngx_uint_t report,
    redisReply *nodes)
{
    u_char                      *p, *last, *body;
    size_t                       size;
    ngx_http_offload_metrics_t  *m = ngx_http_offload_worker.metrics;

    static u_char  no_nodes[] = "\"redis\":\"unavailable\",\"nodes\":[],"
                                "\"queues\":{},\"workers\":[],"
                                "\"workers_total\":0,\"crashes\":[]";

    if (report == NGX_HTTP_OFFLOAD_REPORT_JSON) {
        size = ngx_http_offload_metrics_json_size(m) + sizeof(no_nodes)
               + (nodes ? nodes->len : 0) + 32;
    } else {
        size = ngx_http_offload_metrics_prom_size(m) + 256
               + (nodes ? nodes->len : 0);
    }

    body = ngx_pnalloc(r->pool, size);
    if (body == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = body;
    last = body + size;

    if (report == NGX_HTTP_OFFLOAD_REPORT_JSON) {
        p = ngx_slprintf(p, last, "{\"nginx\":");
        p = ngx_http_offload_metrics_json(m, p, last);

        if (nodes) {
            p = ngx_slprintf(p, last, ",\"redis\":\"ok\",%*s}",
                             nodes->len, nodes->str);
        } else {
            p = ngx_slprintf(p, last, ",%s}", no_nodes);
        }

        return ngx_http_offload_send_body(r, NGX_HTTP_OK,
                                          &ngx_http_offload_json_type, body,
                                          p - body);
    }

    p = ngx_http_offload_metrics_prom(m, p, last);
    p = ngx_slprintf(p, last, "# HELP offload_redis_up Whether this nginx "
                     "worker reached Redis for this scrape.\n"
                     "# TYPE offload_redis_up gauge\n"
                     "offload_redis_up %d\n", nodes ? 1 : 0);

    if (nodes) {
        p = ngx_cpymem(p, nodes->str, ngx_min(nodes->len,
                                              (size_t) (last - p)));
    }

    return ngx_http_offload_send_body(r, NGX_HTTP_OK,
                                      &ngx_http_offload_prom_type, body,
                                      p - body);
}


/* offload_status, offload_metrics, offload_dashboard: the location answers
 * a report of the nodes (and so needs a Redis peer). */

char *
ngx_http_offload_report(ngx_conf_t *cf, void *conf, ngx_uint_t report,
    ngx_http_handler_pt handler)
{
    ngx_http_offload_loc_conf_t *olcf = conf;

    ngx_http_core_loc_conf_t  *clcf;

    if (olcf->report || olcf->queue) {
        return "is duplicate";
    }

    olcf->report = report;
    olcf->reads_nodes = 1;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = handler;

    return NGX_CONF_OK;
}


char *
ngx_http_offload_status(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    return ngx_http_offload_report(cf, conf, NGX_HTTP_OFFLOAD_REPORT_JSON,
                                   ngx_http_offload_status_handler);
}


char *
ngx_http_offload_metrics(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    return ngx_http_offload_report(cf, conf, NGX_HTTP_OFFLOAD_REPORT_PROM,
                                   ngx_http_offload_status_handler);
}


/*
 * ngx_http_offload_reply.c -- the way back: the pending-request table, the
 * subscriber on this worker's reply channel, and the delivery of results.
 * A big result, a list of slices, is read by ngx_http_offload_list_*(): an
 * LINDEX per element on the bulk link, into a chain; the jobs endpoint
 * reads its big results with them too.
 *
 * hiredis callbacks never see a request: their privdata is the job's
 * sequence number, looked up in the peer's pending tree.  A request that is
 * gone has left the tree (its cleanup did that), so a late reply finds
 * nothing and is dropped.
 */


#include "ngx_http_offload_module.h"


/* how ngx_http_offload_fetch_result() reads a result key */
#define NGX_HTTP_OFFLOAD_READ_LOOK   0  /* its first slice, if a string */
#define NGX_HTTP_OFFLOAD_READ_LIST   1  /* a big result, by element */
#define NGX_HTTP_OFFLOAD_READ_WHOLE  2  /* a string over one slice */


static ngx_http_offload_ctx_t *ngx_http_offload_lookup(
    ngx_http_offload_peer_t *peer, void *privdata);
static ngx_http_offload_ctx_t *ngx_http_offload_replied_ctx(
    redisAsyncContext *ac, redisReply *reply, void *privdata);
static void ngx_http_offload_deliver(ngx_http_offload_peer_t *peer,
    ngx_http_offload_ctx_t *ctx, const char *msg, size_t len);
static void ngx_http_offload_fetch_result(ngx_http_offload_ctx_t *ctx,
    ngx_uint_t how);
static void ngx_http_offload_result_delete(ngx_http_offload_ctx_t *ctx);
static void ngx_http_offload_result_deleted(redisAsyncContext *ac, void *r,
    void *privdata);
static void ngx_http_offload_notice(ngx_http_offload_peer_t *peer,
    offload_str_t *id);
static void ngx_http_offload_recover(ngx_http_offload_peer_t *peer);
static void ngx_http_offload_command_up(ngx_http_offload_link_t *link);
static void ngx_http_offload_subscriber_up(ngx_http_offload_link_t *link);
static void ngx_http_offload_look_done(redisAsyncContext *ac, void *r,
    void *privdata);
static void ngx_http_offload_whole_done(redisAsyncContext *ac, void *r,
    void *privdata);
static void ngx_http_offload_nothing_stored(ngx_http_offload_ctx_t *ctx);
static void ngx_http_offload_look_failed(ngx_http_offload_ctx_t *ctx,
    redisReply *reply);
static void ngx_http_offload_bad_result(ngx_http_offload_ctx_t *ctx);
static void ngx_http_offload_fetch_big(ngx_http_offload_ctx_t *ctx,
    redisCallbackFn *fn, int argc, const char **argv, size_t *argvlen);
static ngx_int_t ngx_http_offload_list_slice(ngx_http_offload_list_t *lr);
static void ngx_http_offload_llen_done(redisAsyncContext *ac, void *r,
    void *privdata);
static void ngx_http_offload_index_done(redisAsyncContext *ac, void *r,
    void *privdata);
static void ngx_http_offload_timed_out(ngx_http_offload_ctx_t *ctx);
static void ngx_http_offload_deadline_handler(ngx_event_t *ev);
static void ngx_http_offload_ping_handler(ngx_event_t *ev);
static void ngx_http_offload_ping_done(redisAsyncContext *ac, void *r,
    void *privdata);


void
ngx_http_offload_peer_start(ngx_http_offload_peer_t *peer, ngx_log_t *log)
{
    ngx_rbtree_init(&peer->pending, &peer->sentinel,
                    ngx_rbtree_insert_value);
    ngx_rbtree_init(&peer->job_waiters, &peer->job_waiters_sentinel,
                    ngx_rbtree_insert_value);
    ngx_rbtree_init(&peer->job_reading, &peer->job_sentinel,
                    ngx_rbtree_insert_value);
    ngx_http_offload_clock_start(peer);

    ngx_http_offload_link_init(&peer->command, peer, "command",
                               ngx_http_offload_command_up, log);
    ngx_http_offload_link_init(&peer->subscriber, peer, "subscriber",
                               ngx_http_offload_subscriber_up, log);
    ngx_http_offload_link_init(&peer->bulk, peer, "bulk", NULL, log);

    peer->ping.handler = ngx_http_offload_ping_handler;
    peer->ping.data = peer;
    peer->ping.log = log;
    peer->ping.cancelable = 1;

    ngx_queue_init(&peer->replicating);
    ngx_queue_init(&peer->waited);

    /* a cluster's links are its masters' */

    if (peer->cluster) {
        ngx_http_offload_cluster_start(peer, log);
        return;
    }

    if (peer->sentinels) {
        ngx_http_offload_sentinel_start(peer, log);
    }

    ngx_http_offload_link_connect(&peer->command);
    ngx_http_offload_link_connect(&peer->subscriber);
    ngx_http_offload_link_connect(&peer->bulk);

    ngx_add_timer(&peer->ping, NGX_HTTP_OFFLOAD_PING_INTERVAL);
}


void
ngx_http_offload_peer_stop(ngx_http_offload_peer_t *peer)
{
    if (peer->ping.timer_set) {
        ngx_del_timer(&peer->ping);
    }

    /* the process is leaving: callbacks run by the frees below must not
     * answer requests any more */
    ngx_rbtree_init(&peer->pending, &peer->sentinel,
                    ngx_rbtree_insert_value);

    if (peer->cluster) {
        ngx_http_offload_cluster_stop(peer);
        return;
    }

    if (peer->sentinels) {
        ngx_http_offload_sentinel_stop(peer);
    }

    ngx_http_offload_link_close(&peer->command);
    ngx_http_offload_link_close(&peer->subscriber);
    ngx_http_offload_link_close(&peer->bulk);
}


/*
 * offload_timeout passed: 504, counted apart from a worker's 504s.  A sync
 * job with an Idempotency-Key that Redis took is left to run: its id and
 * status URL say where to find it.
 */

static void
ngx_http_offload_timed_out(ngx_http_offload_ctx_t *ctx)
{
    ngx_http_offload_metrics_timeout(ctx->metrics);

    if (ctx->idem_key.len && ctx->submitted && !ctx->async) {
        ngx_http_offload_answer_job_error(ctx, NGX_HTTP_GATEWAY_TIME_OUT,
                                          "timeout", "no result in time; "
                                          "it may still run: its "
                                          "status_url tells");
        return;
    }

    ngx_http_offload_answer_error(ctx, NGX_HTTP_GATEWAY_TIME_OUT, "timeout",
                                  "no result in time");
}


void
ngx_http_offload_park(ngx_http_offload_ctx_t *ctx, ngx_msec_t timeout)
{
    ngx_rbtree_insert(ngx_http_offload_pending_of(ctx->peer), &ctx->node);
    ctx->parked = 1;
    ngx_http_offload_metrics_in_flight(ctx->metrics, 1);

    ctx->deadline.handler = ngx_http_offload_deadline_handler;
    ctx->deadline.data = ctx;
    ctx->deadline.log = ctx->request->connection->log;

    ngx_add_timer(&ctx->deadline, timeout);
}


/*
 * Idempotent: runs before answering and again as the request's cleanup.
 * Slice commands not yet sent are withdrawn (the body may be freed soon),
 * after the request left the tree: withdrawing one may drop the bulk link,
 * whose callbacks then must not find this request.  A body key written
 * for no job is deleted.
 */

void
ngx_http_offload_unpark(ngx_http_offload_ctx_t *ctx)
{
    ngx_uint_t  i;

    if (ctx->parked) {
        ngx_rbtree_delete(ngx_http_offload_pending_of(ctx->peer),
                          &ctx->node);
        ctx->parked = 0;
        ngx_http_offload_metrics_in_flight(ctx->metrics, -1);
    }

    if (ctx->deadline.timer_set) {
        ngx_del_timer(&ctx->deadline);
    }

    ngx_http_offload_replicate_stop(ctx);

    for (i = 0; ctx->stream && i < NGX_HTTP_OFFLOAD_SLICES; i++) {
        ngx_http_offload_link_unstream(&ctx->peer->bulk, &ctx->stream[i]);
    }

    ngx_http_offload_list_stop(&ctx->result);

    if (ctx->uploading) {
        ngx_http_offload_upload_stop(ctx);
    }
}


static ngx_http_offload_ctx_t *
ngx_http_offload_lookup(ngx_http_offload_peer_t *peer, void *privdata)
{
    ngx_rbtree_t       *pending;
    ngx_rbtree_key_t    key;
    ngx_rbtree_node_t  *node, *sentinel;

    key = (ngx_rbtree_key_t) (uintptr_t) privdata;
    pending = ngx_http_offload_pending_of(peer);
    node = pending->root;
    sentinel = pending->sentinel;

    while (node != sentinel) {

        if (key == node->key) {
            return (ngx_http_offload_ctx_t *) node;
        }

        node = (key < node->key) ? node->left : node->right;
    }

    return NULL;
}


/* The parked request a command's reply belongs to, or NULL if it is gone. */

static ngx_http_offload_ctx_t *
ngx_http_offload_replied_ctx(redisAsyncContext *ac, redisReply *reply,
    void *privdata)
{
    ngx_http_offload_link_t  *link;

    link = ngx_http_offload_link_replied(ac, reply);

    return ngx_http_offload_lookup(link->peer, privdata);
}


/*
 * As ngx_http_offload_replied_ctx(), for a command its request cannot do
 * without (its XADD, a big body's or result's slices): a connection lost
 * under it answers 503 at once rather than at the deadline, and gives NULL
 * too.
 */

ngx_http_offload_ctx_t *
ngx_http_offload_needed_ctx(redisAsyncContext *ac, redisReply *reply,
    void *privdata)
{
    ngx_http_offload_ctx_t  *ctx;

    ctx = ngx_http_offload_replied_ctx(ac, reply, privdata);

    if (ctx != NULL && reply == NULL) {
        ngx_http_offload_answer_error(ctx, NGX_HTTP_SERVICE_UNAVAILABLE,
                                      "redis_unavailable",
                                      "the redis connection was lost");
        return NULL;
    }

    return ctx;
}


/*
 * As ngx_http_offload_needed_ctx(), for the command that submits the job:
 * its XADD, the admission or the submit script.  A connection lost before
 * the command went to the socket whole queued nothing: 503
 * redis_unavailable.  Lost after, Redis may have run it (a Redis that
 * froze, restarted, a path that went silent): the answer says so
 * (ngx_http_offload_outcome_unknown), not that nothing was queued.
 */

ngx_http_offload_ctx_t *
ngx_http_offload_submit_ctx(redisAsyncContext *ac, redisReply *reply,
    void *privdata)
{
    ngx_http_offload_ctx_t  *ctx;

    ctx = ngx_http_offload_replied_ctx(ac, reply, privdata);

    if (ctx == NULL || reply != NULL) {
        return ctx;
    }

    if (ngx_http_offload_link_wrote(ac->data, ctx->sent_mark)) {
        ngx_http_offload_outcome_unknown(ctx, "the redis connection was "
                                         "lost after the job was sent");

    } else {
        ngx_http_offload_answer_error(ctx, NGX_HTTP_SERVICE_UNAVAILABLE,
                                      "redis_unavailable",
                                      "the redis connection was lost "
                                      "before the job was sent: nothing "
                                      "was queued");
    }

    return NULL;
}


void
ngx_http_offload_xadd_done(redisAsyncContext *ac, void *r, void *privdata)
{
    redisReply              *reply = r;
    ngx_http_offload_ctx_t  *ctx;

    ctx = ngx_http_offload_submit_ctx(ac, reply, privdata);
    if (ctx == NULL) {
        return;
    }

    ngx_http_offload_xadd_result(ctx, reply);
}


/* the reply to a job's XADD (or admission script): its id, nil, an error */

void
ngx_http_offload_xadd_result(ngx_http_offload_ctx_t *ctx, redisReply *reply)
{
    /* a cluster's MOVED, ASK, TRYAGAIN: the job was not added */

    if (reply->type == REDIS_REPLY_ERROR
        && ngx_http_offload_cluster_redirect(ctx, reply) == NGX_OK)
    {
        return;
    }

    if (reply->type == REDIS_REPLY_ERROR || reply->type == REDIS_REPLY_NIL) {
        /* no job: its body key goes, behind its last slice */
        if (ctx->body_key.len) {
            ngx_http_offload_body_delete(ctx);
        }
    }

    if (reply->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_ERR, ctx->request->connection->log, 0,
                      "offload: XADD to queue \"%V\" failed: %s",
                      &ctx->queue, reply->str);
        ngx_http_offload_answer_error(ctx, NGX_HTTP_SERVICE_UNAVAILABLE,
                                      "redis_unavailable",
                                      "redis refused the job");
        return;
    }

    if (reply->type == REDIS_REPLY_NIL) {
        /* NOMKSTREAM: no worker ever created this queue's stream (or it
         * went since a big body's EXISTS) */
        ngx_http_offload_admission_no_stream(ctx);
        return;
    }

    /* an entry id; any other reply is none Redis gives (a proxy's, a peer
     * that is not Redis): the job may or may not be there, never 202 */

    if (reply->type != REDIS_REPLY_STRING) {
        ngx_log_error(NGX_LOG_ERR, ctx->request->connection->log, 0,
                      "offload: XADD to queue \"%V\" got a reply of type "
                      "%d, not an entry id", &ctx->queue, reply->type);
        ngx_http_offload_outcome_unknown(ctx, "redis answered the job with "
                                         "no entry id");
        return;
    }

    ngx_http_offload_submitted(ctx);

    if (ctx->peer->wait_replicas) {
        ngx_http_offload_replicate(ctx);
        return;
    }

    if (ctx->async) {
        ngx_http_offload_accepted(ctx, (u_char *) "queued", 6);
    }
}


/* Redis took the job (or, for a duplicate, has it already): the queue
 * exists, it has counters */

void
ngx_http_offload_submitted(ngx_http_offload_ctx_t *ctx)
{
    ctx->submitted = 1;

    ngx_http_offload_body_free(ctx);
    ngx_http_offload_cluster_submitted(ctx);

    if (ctx->metrics == NULL) {
        ctx->metrics = ngx_http_offload_metrics_queue(
                                ngx_http_offload_worker.metrics, &ctx->queue,
                                1);
        ngx_http_offload_metrics_in_flight(ctx->metrics, 1);
    }
}


/*
 * Decodes a result and answers its request.  With ctx known (a GET of the
 * result key) an undecodable result fails that request with 502; from the
 * channel, the request is found by the id in the result.
 */

static void
ngx_http_offload_deliver(ngx_http_offload_peer_t *peer,
    ngx_http_offload_ctx_t *ctx, const char *msg, size_t len)
{
    uint64_t           seq;
    ngx_uint_t         stored;
    const char        *err;
    offload_result_t   res;

    stored = (ctx != NULL);             /* read from the job's result key */

    if (offload_result_decode(&res, msg, len, &err) != 0) {

        if (ctx == NULL) {
            ngx_log_error(NGX_LOG_INFO, peer->subscriber.log, 0,
                          "offload: ignored a message on %s: %s",
                          ngx_http_offload_worker.channel, err);
            return;
        }

        ngx_log_error(NGX_LOG_ERR, ctx->request->connection->log, 0,
                      "offload: undecodable result on queue \"%V\": %s",
                      &ctx->queue, err);
        ngx_http_offload_answer_error(ctx, NGX_HTTP_BAD_GATEWAY,
                                      "bad_result",
                                      "the worker's result is undecodable");
        return;
    }

    if (ctx == NULL) {
        if (offload_job_id_seq(res.id.data, res.id.len, &seq) != 0) {
            ngx_log_error(NGX_LOG_INFO, peer->subscriber.log, 0,
                          "offload: ignored a result for a foreign id");
            return;
        }

        ctx = ngx_http_offload_lookup(peer, (void *) (uintptr_t) seq);
        if (ctx == NULL) {
            return;
        }
    }

    if (res.id.len != OFFLOAD_JOB_ID_LEN
        || ngx_memcmp(res.id.data, ctx->id, OFFLOAD_JOB_ID_LEN) != 0)
    {
        if (!stored) {
            ngx_log_error(NGX_LOG_INFO, peer->subscriber.log, 0,
                          "offload: ignored a result for a foreign id");
            return;
        }

        /* no worker writes another job's result under this job's key:
         * no result will come, and the key is left to be looked at */

        ngx_log_error(NGX_LOG_ERR, ctx->request->connection->log, 0,
                      "offload: the result key of a job on queue \"%V\" "
                      "holds another job's result", &ctx->queue);
        ngx_http_offload_answer_error(ctx, NGX_HTTP_BAD_GATEWAY,
                                      "bad_result",
                                      "the worker's result is another "
                                      "job's");
        return;
    }

    /* one below 200 is answered 502: left there to be looked at */
    if (ctx->result_read && res.status >= NGX_HTTP_OK) {
        ngx_http_offload_result_delete(ctx);
    }

    ngx_http_offload_answer_result(ctx, &res);
}


/*
 * A sync job's big result, read whole and its own, has no reader but its
 * request: it goes now, not result_ttl later (megabytes of Redis' memory
 * meanwhile).  One with a record (an Idempotency-Key) is kept for its
 * duplicates and reads; one read from the node an ASK named is left to its
 * TTL, and so is every one of a Redis that refused such an UNLINK.
 */

static void
ngx_http_offload_result_delete(ngx_http_offload_ctx_t *ctx)
{
    ngx_http_offload_link_t  *link;

    link = ctx->result.link;

    if (ctx->idem_key.len || ctx->asked || link->peer->keeps_results) {
        return;
    }

    if (ngx_http_offload_link_unlink(link, ngx_http_offload_result_deleted,
                                     &ctx->result.key)
        != NGX_OK)
    {
        ngx_log_error(NGX_LOG_ERR, ctx->request->connection->log, 0,
                      "offload: cannot delete the result key \"%V\", it "
                      "goes at its expiry", &ctx->result.key);
    }
}


/* Refused for good (NOPERM: an ACL from before nginx deleted them), said
 * once: the peer's results are left to their TTL from then on (in this
 * worker, until a reload: the next one asks again).  Any other
 * error (a slot that moved meanwhile) leaves that one key to its TTL. */

static void
ngx_http_offload_result_deleted(redisAsyncContext *ac, void *r,
    void *privdata)
{
    redisReply               *reply = r;
    ngx_http_offload_link_t  *link;

    link = ngx_http_offload_link_replied(ac, reply);

    if (reply == NULL || reply->type != REDIS_REPLY_ERROR) {
        return;
    }

    if (ngx_strncmp(reply->str, "NOPERM", 6) != 0) {
        ngx_log_error(NGX_LOG_NOTICE, link->log, 0,
                      "offload: redis %V: a big result read stays its "
                      "result_ttl: UNLINK failed: %s",
                      &link->peer->name, reply->str);
        return;
    }

    if (!link->peer->keeps_results) {
        link->peer->keeps_results = 1;
        ngx_log_error(NGX_LOG_WARN, link->log, 0,
                      "offload: redis %V refused the UNLINK of a big "
                      "result read (%s): big results stay their result_ttl; "
                      "the module's ACL user needs "
                      "(+unlink ~offload:{*}:result:*) (README)",
                      &link->peer->name, reply->str);
    }
}


/*
 * A read of the job's result key.  A result over OFFLOAD_NOTICE_OVER is a
 * list of slices (the first starts with the header line), read on the bulk
 * link: LLEN, then an LINDEX per element, two on their way, each copied
 * after the one before into one buffer in the request's pool, the answer
 * a chain of them.
 * One GET would have hiredis copy it all at once into fresh memory, a
 * stall of the event loop, and Redis would stall every client while it
 * writes the reply.  Its commands are queued on the bulk link like a big
 * body's slices, so none lands inside one being written.  The last look
 * and the looks after a reconnect (NGX_HTTP_OFFLOAD_READ_LOOK) read a
 * slice of a string on the command link; a list answers WRONGTYPE and is
 * read as after a notice.
 */

static void
ngx_http_offload_fetch_result(ngx_http_offload_ctx_t *ctx, ngx_uint_t how)
{
    int          len;
    char        *key;
    const char  *argv[4];
    size_t       argvlen[4];

    /* a big read under way goes on alone */

    if (ctx->result.key.len) {
        return;
    }

    key = ngx_pnalloc(ctx->request->pool, OFFLOAD_KEY_MAX);
    if (key == NULL) {
        return;
    }

    len = offload_result_key(key, OFFLOAD_KEY_MAX, (char *) ctx->queue.data,
                             ctx->queue.len, (char *) ctx->id,
                             OFFLOAD_JOB_ID_LEN);
    if (len < 0) {
        return;
    }

    argv[1] = key;
    argvlen[1] = len;

    /* a string result is at most OFFLOAD_NOTICE_OVER bytes: one that
     * fills the look's slice is read whole on the bulk link */

    if (how == NGX_HTTP_OFFLOAD_READ_LIST
        || how == NGX_HTTP_OFFLOAD_READ_WHOLE)
    {
        ngx_http_offload_list_init(&ctx->result, &ctx->peer->bulk,
                                   ctx->request->pool,
                                   ngx_http_offload_index_done,
                                   (void *) (uintptr_t) ctx->node.key);
        ctx->result.key.data = (u_char *) key;
        ctx->result.key.len = len;

        if (how == NGX_HTTP_OFFLOAD_READ_LIST) {
            argv[0] = "LLEN";
            argvlen[0] = 4;
            ngx_http_offload_fetch_big(ctx, ngx_http_offload_llen_done, 2,
                                       argv, argvlen);

        } else {
            argv[0] = "GET";
            argvlen[0] = 3;
            ngx_http_offload_fetch_big(ctx, ngx_http_offload_whole_done, 2,
                                       argv, argvlen);
        }

        return;
    }

    /* At most one slice on the command connection, whatever the result's
     * size: a longer one is then read the big way. */

    argv[0] = "GETRANGE";
    argvlen[0] = 8;
    argv[2] = "0";
    argvlen[2] = 1;
    argv[3] = NGX_HTTP_OFFLOAD_SLICE_LAST;
    argvlen[3] = sizeof(NGX_HTTP_OFFLOAD_SLICE_LAST) - 1;

    (void) ngx_http_offload_link_send(&ctx->peer->command,
                                      ngx_http_offload_look_done,
                                      (void *) (uintptr_t) ctx->node.key,
                                      4, argv, argvlen);
}


/* slice n's stream of a big body or result, from the array *stream
 * (made on first use); NULL: out of memory */

ngx_http_offload_stream_t *
ngx_http_offload_stream(ngx_pool_t *pool, ngx_http_offload_stream_t **stream,
    size_t n)
{
    if (*stream == NULL) {
        *stream = ngx_pcalloc(pool, NGX_HTTP_OFFLOAD_SLICES
                                    * sizeof(ngx_http_offload_stream_t));
        if (*stream == NULL) {
            return NULL;
        }
    }

    return &(*stream)[n % NGX_HTTP_OFFLOAD_SLICES];
}


/* a big result's read to come: where its commands go, whose they are */

void
ngx_http_offload_list_init(ngx_http_offload_list_t *lr,
    ngx_http_offload_link_t *link, ngx_pool_t *pool, redisCallbackFn *fn,
    void *privdata)
{
    lr->link = link;
    lr->pool = pool;
    lr->fn = fn;
    lr->privdata = privdata;
}


/* command n of a big result's read (n % NGX_HTTP_OFFLOAD_SLICES names
 * its stream), queued on the bulk link like a big body's slices, so none
 * lands inside one being written; NGX_ERROR: out of memory */

ngx_int_t
ngx_http_offload_list_send(ngx_http_offload_list_t *lr, size_t n,
    redisCallbackFn *fn, int argc, const char **argv, const size_t *argvlen)
{
    ngx_http_offload_stream_t  *st;

    st = ngx_http_offload_stream(lr->pool, &lr->stream, n);

    if (st == NULL
        || ngx_http_offload_link_stream(lr->link, st, lr->pool, fn,
                                        lr->privdata, argc, argv, argvlen,
                                        1, NULL)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* the LINDEX of the next element of a big result, if any is left */

static ngx_int_t
ngx_http_offload_list_slice(ngx_http_offload_list_t *lr)
{
    u_char       index[NGX_INT_T_LEN];
    const char  *argv[3];
    size_t       argvlen[3];

    if (lr->sliced == lr->n) {
        return NGX_OK;
    }

    argv[0] = "LINDEX";
    argvlen[0] = 6;
    argv[1] = (char *) lr->key.data;
    argvlen[1] = lr->key.len;
    argv[2] = (char *) index;
    argvlen[2] = ngx_sprintf(index, "%ui", lr->sliced) - index;

    if (ngx_http_offload_list_send(lr, lr->sliced, lr->fn, 3, argv, argvlen)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    lr->sliced++;

    return NGX_OK;
}


/*
 * The read of a list of n elements (its LLEN) begins.  NGX_DECLINED: no
 * worker's result has that many (a worker writes a header line, then
 * slices of the body it could have sent); NGX_ERROR: out of memory.
 */

/* The memory the read of a big result of n elements takes (its buffer in
 * the pool), or 0 when no worker's result has that many. */

size_t
ngx_http_offload_list_size(long long n)
{
    if (n <= 0 || n > OFFLOAD_BODY_MAX / OFFLOAD_SLICE + 2) {
        return 0;
    }

    return (size_t) n * OFFLOAD_SLICE;
}


ngx_int_t
ngx_http_offload_list_start(ngx_http_offload_list_t *lr, long long n)
{
    size_t      size;
    ngx_uint_t  i;

    size = ngx_http_offload_list_size(n);
    if (size == 0) {
        return NGX_DECLINED;
    }

    /* the kernel backs the buffer only as it is written, and with huge
     * pages: a fault a 4 KB page stalls the event loop
     * (offload_hugepage.c) */

    lr->pos = ngx_pnalloc(lr->pool, size);
    if (lr->pos == NULL) {
        return NGX_ERROR;
    }

    offload_hugepage_advise(lr->pos, size);

    lr->out = NULL;
    lr->last = &lr->out;
    lr->n = (ngx_uint_t) n;
    lr->sliced = 0;
    lr->got = 0;
    lr->len = 0;

    for (i = 0; i < NGX_HTTP_OFFLOAD_SLICES; i++) {
        if (ngx_http_offload_list_slice(lr) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/*
 * An element's reply (not NULL): copied after the one before, the next
 * LINDEX sent.  NGX_AGAIN: more to come; NGX_OK: all read;
 * NGX_DECLINED: not an element of a worker's result (a result is stored
 * once and never changes: one missing means the key went, or was
 * replaced, under the read); NGX_ERROR: out of memory.
 */

ngx_int_t
ngx_http_offload_list_got(ngx_http_offload_list_t *lr, redisReply *reply)
{
    u_char       *p;
    ngx_chain_t  *cl;

    if (reply->type != REDIS_REPLY_STRING || reply->len > OFFLOAD_SLICE) {
        return NGX_DECLINED;
    }

    /* the first element always has a buffer: it holds the header line */

    if (reply->len || lr->got == 0) {
        p = lr->pos;
        cl = ngx_http_offload_chain_of(lr->pool, p, reply->len);

        if (cl == NULL) {
            return NGX_ERROR;
        }

        lr->pos = ngx_cpymem(p, reply->str, reply->len);

        *lr->last = cl;
        lr->last = &cl->next;
        lr->len += lr->got ? reply->len : 0;
    }

    if (++lr->got < lr->n) {
        return ngx_http_offload_list_slice(lr) == NGX_OK ? NGX_AGAIN
                                                         : NGX_ERROR;
    }

    return NGX_OK;
}


/* The result's body as read, res decoded from the first element: a chain
 * (NULL: empty) of len bytes, the header line cut off the first. */

ngx_chain_t *
ngx_http_offload_list_body(ngx_http_offload_list_t *lr,
    offload_result_t *res, off_t *len)
{
    ngx_chain_t  *out;

    out = lr->out;
    out->buf->pos = (u_char *) res->body.data;
    *len = lr->len + res->body.len;

    return res->body.len ? out : out->next;
}


/* its commands not yet sent withdrawn (the pool may be freed soon) */

void
ngx_http_offload_list_stop(ngx_http_offload_list_t *lr)
{
    ngx_uint_t  i;

    for (i = 0; lr->stream && i < NGX_HTTP_OFFLOAD_SLICES; i++) {
        ngx_http_offload_link_unstream(lr->link, &lr->stream[i]);
    }
}


/* whether a command of the read waits in its link's queue, unsent: a
 * link that is down keeps it until it is up again, a big body being
 * written ahead of it holds it, and the link's watchdog bounds only what
 * the link sent */

static ngx_uint_t
ngx_http_offload_list_queued(ngx_http_offload_list_t *lr)
{
    ngx_uint_t  i;

    for (i = 0; lr->stream && i < NGX_HTTP_OFFLOAD_SLICES; i++) {
        if (lr->stream[i].queued) {
            return 1;
        }
    }

    return 0;
}


/* the first command of a big result's read (LLEN, or a GET), queued on
 * the bulk link */

static void
ngx_http_offload_fetch_big(ngx_http_offload_ctx_t *ctx, redisCallbackFn *fn,
    int argc, const char **argv, size_t *argvlen)
{
    if (ngx_http_offload_list_send(&ctx->result, 0, fn, argc, argv, argvlen)
        != NGX_OK)
    {
        ngx_http_offload_answer_error(ctx, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                      "internal", "out of memory");
    }
}


/* a big result that is not (any longer) what a worker stored */

static void
ngx_http_offload_bad_result(ngx_http_offload_ctx_t *ctx)
{
    ngx_log_error(NGX_LOG_ERR, ctx->request->connection->log, 0,
                  "offload: the result of a job on queue \"%V\" "
                  "changed while it was read, or is not a worker's",
                  &ctx->queue);
    ngx_http_offload_answer_error(ctx, NGX_HTTP_BAD_GATEWAY, "bad_result",
                                  "the worker's result changed while it was "
                                  "read");
}


static void
ngx_http_offload_llen_done(redisAsyncContext *ac, void *r, void *privdata)
{
    redisReply              *reply = r;
    ngx_int_t                rc;
    ngx_http_offload_ctx_t  *ctx;

    /* the notice will not come again: do not wait for the deadline */
    ctx = ngx_http_offload_needed_ctx(ac, reply, privdata);
    if (ctx == NULL) {
        return;
    }

    if (reply->type == REDIS_REPLY_ERROR) {
        ngx_http_offload_look_failed(ctx, reply);
        return;
    }

    if (reply->type != REDIS_REPLY_INTEGER || reply->integer <= 0) {
        /* gone (its TTL passed?) or not there: as a GET finding nothing;
         * the last look may try again */
        ngx_str_null(&ctx->result.key);
        ngx_http_offload_nothing_stored(ctx);
        return;
    }

    rc = ngx_http_offload_list_start(&ctx->result, reply->integer);

    if (rc == NGX_DECLINED) {
        ngx_http_offload_bad_result(ctx);

    } else if (rc == NGX_ERROR) {
        ngx_http_offload_answer_error(ctx, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                      "internal", "out of memory");
    }
}


static void
ngx_http_offload_index_done(redisAsyncContext *ac, void *r, void *privdata)
{
    redisReply              *reply = r;
    ngx_int_t                rc;
    ngx_http_offload_ctx_t  *ctx;

    ctx = ngx_http_offload_needed_ctx(ac, reply, privdata);
    if (ctx == NULL) {
        return;
    }

    rc = ngx_http_offload_list_got(&ctx->result, reply);

    if (rc == NGX_AGAIN) {
        return;
    }

    if (rc == NGX_DECLINED) {
        ngx_http_offload_bad_result(ctx);
        return;
    }

    if (rc == NGX_ERROR) {
        ngx_http_offload_answer_error(ctx, NGX_HTTP_INTERNAL_SERVER_ERROR,
                                      "internal", "out of memory");
        return;
    }

    ctx->result_read = 1;

    ngx_http_offload_deliver(ctx->peer, ctx,
                             (char *) ctx->result.out->buf->pos,
                             ctx->result.out->buf->last
                             - ctx->result.out->buf->pos);
}


/*
 * A look: the first slice of the result key on the command link.  A look
 * whose answer comes while a big read of the key is under way (a notice's,
 * or an earlier look's) leaves it alone: that read answers.
 */

static void
ngx_http_offload_look_done(redisAsyncContext *ac, void *r, void *privdata)
{
    redisReply              *reply = r;
    ngx_http_offload_ctx_t  *ctx;

    ctx = ngx_http_offload_replied_ctx(ac, reply, privdata);
    if (ctx == NULL || ctx->result.key.len) {
        return;
    }

    /* a cluster's slot moved (or is moving: ASK): the look again on the
     * node named */

    if (reply != NULL
        && ngx_http_offload_cluster_follow(ctx, reply, 1) == NGX_OK)
    {
        ngx_http_offload_fetch_result(ctx, NGX_HTTP_OFFLOAD_READ_LOOK);
        return;
    }

    /* a list is a big result */

    if (reply != NULL && reply->type == REDIS_REPLY_ERROR
        && ngx_strncmp(reply->str, "WRONGTYPE", 9) == 0)
    {
        ngx_http_offload_fetch_result(ctx, NGX_HTTP_OFFLOAD_READ_LIST);
        return;
    }

    if (reply != NULL && reply->type == REDIS_REPLY_ERROR) {
        ngx_http_offload_look_failed(ctx, reply);
        return;
    }

    /* GETRANGE of a key that is not there is "": nothing stored */

    if (reply != NULL && reply->type == REDIS_REPLY_STRING
        && reply->len > 0)
    {
        if (reply->len < OFFLOAD_SLICE) {
            ngx_http_offload_deliver(ctx->peer, ctx, reply->str, reply->len);

        } else {
            ngx_http_offload_fetch_result(ctx, NGX_HTTP_OFFLOAD_READ_WHOLE);
        }

        return;
    }

    ngx_http_offload_nothing_stored(ctx);
}


/* A string result that filled a look's slice, read whole on the bulk link */

static void
ngx_http_offload_whole_done(redisAsyncContext *ac, void *r, void *privdata)
{
    redisReply              *reply = r;
    ngx_http_offload_ctx_t  *ctx;

    ctx = ngx_http_offload_replied_ctx(ac, reply, privdata);
    if (ctx == NULL) {
        return;
    }

    if (reply != NULL && reply->type == REDIS_REPLY_STRING
        && reply->len > 0)
    {
        ngx_http_offload_deliver(ctx->peer, ctx, reply->str, reply->len);
        return;
    }

    if (reply != NULL && reply->type == REDIS_REPLY_ERROR) {
        ngx_http_offload_look_failed(ctx, reply);
        return;
    }

    ngx_str_null(&ctx->result.key);
    ngx_http_offload_nothing_stored(ctx);
}


/* nothing stored: a recovery look keeps waiting, the last look ends */

static void
ngx_http_offload_nothing_stored(ngx_http_offload_ctx_t *ctx)
{
    if (ctx->expired) {
        ngx_http_offload_timed_out(ctx);
    }
}


/*
 * Redis did not say whether a result is stored (a cluster's MOVED or ASK
 * past the look's redirects or not followed, TRYAGAIN, CLUSTERDOWN): never
 * an empty result.  A recovery look keeps waiting; the last look answers
 * 503 with Retry-After (the job may have run: its result may be there).
 */

static void
ngx_http_offload_look_failed(ngx_http_offload_ctx_t *ctx, redisReply *reply)
{
    ngx_str_null(&ctx->result.key);

    if (!ctx->expired) {
        return;
    }

    ngx_log_error(NGX_LOG_WARN, ctx->request->connection->log, 0,
                  "offload: job %*s: its result could not be read: %s",
                  (size_t) OFFLOAD_JOB_ID_LEN, ctx->id, reply->str);

    ctx->retry_after = 1;
    ngx_http_offload_answer_error(ctx, NGX_HTTP_SERVICE_UNAVAILABLE,
                                  "redis_unavailable",
                                  "the result could not be read (the redis "
                                  "cluster is moving the queue or is down): "
                                  "try again");
}


/*
 * Results published while the subscriber was not listening are in their
 * result keys: look for those of every submitted job.
 */

static void
ngx_http_offload_recover(ngx_http_offload_peer_t *peer)
{
    if (peer->command.up && peer->subscriber.subscribed) {
        ngx_http_offload_recover_jobs(peer, NULL);
    }
}


/*
 * The looks of the submitted jobs of the table peer is in: with queue,
 * that queue's (a cluster's sharded reply channel subscribed anew), else
 * peer's own (a cluster's masters share their table).
 */

void
ngx_http_offload_recover_jobs(ngx_http_offload_peer_t *peer,
    ngx_str_t *queue)
{
    ngx_rbtree_t            *pending;
    ngx_rbtree_node_t       *node;
    ngx_http_offload_ctx_t  *ctx;

    pending = ngx_http_offload_pending_of(peer);

    if (pending->root == pending->sentinel) {
        return;
    }

    for (node = ngx_rbtree_min(pending->root, pending->sentinel);
         node;
         node = ngx_rbtree_next(pending, node))
    {
        ctx = (ngx_http_offload_ctx_t *) node;

        /* an async job here waits for its WAIT, not for a result */

        if (!ctx->submitted || ctx->async) {
            continue;
        }

        ngx_http_offload_cluster_repeer(ctx);

        if (queue ? ctx->queue.len == queue->len
                    && ngx_memcmp(ctx->queue.data, queue->data, queue->len)
                       == 0
                  : ctx->peer == peer)
        {
            ngx_http_offload_fetch_result(ctx, NGX_HTTP_OFFLOAD_READ_LOOK);
        }
    }
}


static void
ngx_http_offload_command_up(ngx_http_offload_link_t *link)
{
    ngx_http_offload_clock_ask(link->peer);
    ngx_http_offload_recover(link->peer);
}


static void
ngx_http_offload_subscriber_up(ngx_http_offload_link_t *link)
{
    const char  *argv[3];
    size_t       argvlen[3];

    /* this worker's results, and, for long polls, the ends of async jobs
     * (only where offload_jobs is: an ACL user may have no right to it) */

    argv[0] = "SUBSCRIBE";
    argvlen[0] = 9;
    argv[1] = ngx_http_offload_worker.channel;
    argvlen[1] = ngx_http_offload_worker.channel_len;
    argv[2] = OFFLOAD_JOBS_DONE;
    argvlen[2] = sizeof(OFFLOAD_JOBS_DONE) - 1;

    /*
     * This runs inside hiredis' connect callback, where freeing the context
     * is unsafe: if SUBSCRIBE cannot be sent, let the watchdog drop it.
     */

    if (ngx_http_offload_link_send(link, ngx_http_offload_message, NULL,
                                   link->peer->jobs ? 3 : 2, argv, argvlen)
        != NGX_OK)
    {
        ngx_add_timer(&link->watchdog, 1);
        return;
    }

    /* a cluster's master: the sharded reply channels of its queues */

    if (link->peer->parent) {
        ngx_http_offload_cluster_resubscribe(link->peer);
    }
}


void
ngx_http_offload_message(redisAsyncContext *ac, void *r, void *privdata)
{
    redisReply               *reply = r;
    redisReply               *kind, *channel, *payload;
    offload_str_t             id;
    ngx_http_offload_link_t  *link;

    link = ngx_http_offload_link_replied(ac, reply);

    if (reply == NULL) {
        return;
    }

    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 3
        || reply->element[0]->type != REDIS_REPLY_STRING)
    {
        ngx_log_error(NGX_LOG_INFO, link->log, 0,
                      "offload: unexpected reply on the subscriber");
        return;
    }

    kind = reply->element[0];
    channel = reply->element[1];
    payload = reply->element[2];

    if (link->peer->parent
        && ngx_http_offload_cluster_message(link, kind, channel) == NGX_OK)
    {
        return;
    }

    if (kind->len == 9 && ngx_strncmp(kind->str, "subscribe", 9) == 0
        && channel->type == REDIS_REPLY_STRING
        && channel->len == sizeof(OFFLOAD_JOBS_DONE) - 1
        && ngx_strncmp(channel->str, OFFLOAD_JOBS_DONE, channel->len) == 0)
    {
        /* ends missed while unsubscribed: the long polls look again */
        ngx_http_offload_jobs_ended(link->peer, NULL, 0);
        return;
    }

    if (kind->len == 9 && ngx_strncmp(kind->str, "subscribe", 9) == 0) {
        link->subscribed = 1;
        link->peer->ping_unheard = 0;
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, link->log, 0,
                       "offload: subscribed to %s",
                       ngx_http_offload_worker.channel);
        ngx_http_offload_recover(link->peer);
        return;
    }

    /* "smessage": on a cluster's sharded reply channel */

    if (!((kind->len == 7 && ngx_strncmp(kind->str, "message", 7) == 0)
          || (kind->len == 8 && ngx_strncmp(kind->str, "smessage", 8) == 0))
        || payload->type != REDIS_REPLY_STRING)
    {
        return;
    }

    link->peer->ping_unheard = 0;       /* any message proves it alive */

    if (channel->type == REDIS_REPLY_STRING
        && channel->len == sizeof(OFFLOAD_JOBS_DONE) - 1
        && ngx_strncmp(channel->str, OFFLOAD_JOBS_DONE, channel->len) == 0)
    {
        ngx_http_offload_jobs_ended(link->peer, (u_char *) payload->str,
                                    payload->len);
        return;
    }

    if (payload->len == sizeof(OFFLOAD_REPLY_PING) - 1
        && ngx_strncmp(payload->str, OFFLOAD_REPLY_PING,
                       sizeof(OFFLOAD_REPLY_PING) - 1) == 0)
    {
        return;
    }

    if (offload_notice_decode(&id, payload->str, payload->len) == 0) {
        ngx_http_offload_notice(link->peer, &id);
        return;
    }

    ngx_http_offload_deliver(link->peer, NULL, payload->str, payload->len);
}


/*
 * A big result was stored, not published: read it on the bulk link, where
 * its bytes hold up no small job's reply.
 */

static void
ngx_http_offload_notice(ngx_http_offload_peer_t *peer, offload_str_t *id)
{
    uint64_t                 seq;
    ngx_http_offload_ctx_t  *ctx;

    if (offload_job_id_seq(id->data, id->len, &seq) != 0) {
        ngx_log_error(NGX_LOG_INFO, peer->subscriber.log, 0,
                      "offload: ignored a notice for a foreign id");
        return;
    }

    ctx = ngx_http_offload_lookup(peer, (void *) (uintptr_t) seq);

    if (ctx == NULL
        || ngx_memcmp(id->data, ctx->id, OFFLOAD_JOB_ID_LEN) != 0)
    {
        return;
    }

    ngx_http_offload_cluster_repeer(ctx);
    ngx_http_offload_fetch_result(ctx, NGX_HTTP_OFFLOAD_READ_LIST);
}


/*
 * The deadline: first the last look at the result key (the sidecar stores
 * a result before it publishes it), then 504.  A big read under way (a
 * notice's, or the last look's) is left to answer: the job ended, its
 * result is being read, and every end of that read answers once expired
 * is set (the result, 502, 503, or 504 if nothing was there).  Its link's
 * watchdog bounds what the link sent, not a command still in its queue:
 * the read is looked at every NGX_HTTP_OFFLOAD_LAST_LOOK, and one whose
 * command still waits there with nothing asked or answered since the last
 * look answers then, 503 if its link is down (a Redis that does not let
 * it connect again), else 504.
 */

static void
ngx_http_offload_deadline_handler(ngx_event_t *ev)
{
    ngx_uint_t               seen;
    ngx_http_offload_ctx_t  *ctx = ev->data;

    /*
     * An async job waits for no result, only for Redis to take it.  Its
     * XADD not acknowledged: written whole, Redis may have run it, and a
     * worker taken the job already; else it lands, if ever, past its
     * deadline, and no worker runs it.  Acknowledged, it is still here
     * only while its WAIT counts replicas (wait_replicas=): queued, not
     * known to be replicated.
     */

    if (ctx->async) {
        if (ctx->submitted) {
            ngx_http_offload_not_replicated(ctx);
            return;
        }

        if (!ctx->uploading
            && ngx_http_offload_link_wrote(&ctx->peer->command,
                                           ctx->sent_mark))
        {
            ngx_http_offload_outcome_unknown(ctx, "redis did not "
                                             "acknowledge the job before "
                                             "its deadline");
            return;
        }

        ngx_http_offload_timed_out(ctx);
        return;
    }

    if (ctx->result.key.len) {
        seen = ctx->result.sliced + ctx->result.got;

        if (ctx->result_looked && seen == ctx->result_seen
            && ngx_http_offload_list_queued(&ctx->result))
        {
            if (!ctx->result.link->up) {
                ngx_http_offload_answer_error(ctx,
                                              NGX_HTTP_SERVICE_UNAVAILABLE,
                                              "redis_unavailable",
                                              "the redis connection was "
                                              "lost");
                return;
            }

            ngx_http_offload_timed_out(ctx);
            return;
        }

        ctx->expired = 1;
        ctx->result_looked = 1;
        ctx->result_seen = seen;
        ngx_add_timer(ev, NGX_HTTP_OFFLOAD_LAST_LOOK);
        return;
    }

    /* a body still being written: no job, no result to look for */

    if (ctx->submitted && !ctx->expired) {
        ngx_http_offload_cluster_repeer(ctx);
    }

    if (ctx->expired || ctx->uploading || !ctx->peer->command.up) {
        ngx_http_offload_timed_out(ctx);
        return;
    }

    ctx->expired = 1;

    ngx_http_offload_fetch_result(ctx, NGX_HTTP_OFFLOAD_READ_LOOK);

    ngx_add_timer(ev, NGX_HTTP_OFFLOAD_LAST_LOOK);
}


/*
 * Subscriber liveness: PING does not work on a subscribed context in
 * hiredis 0.14, so the command connection publishes "ping" on our own
 * channel.  Nobody receiving it means the subscription is gone; a ping not
 * heard back within the watchdog means the connection went silent (a dead
 * path that Redis still counts as a subscriber).
 */

static void
ngx_http_offload_ping_handler(ngx_event_t *ev)
{
    void                     *privdata;
    const char               *argv[3];
    size_t                    argvlen[3];
    ngx_http_offload_peer_t  *peer = ev->data;

    if (peer->ping_unheard
        && ngx_current_msec - peer->ping_unheard >= NGX_HTTP_OFFLOAD_WATCHDOG)
    {
        peer->ping_unheard = 0;

        if (peer->subscriber.subscribed) {
            ngx_log_error(NGX_LOG_WARN, peer->subscriber.log, 0,
                          "offload: redis %V subscriber heard no ping in "
                          "%M ms, reconnecting it", &peer->name,
                          (ngx_msec_t) NGX_HTTP_OFFLOAD_WATCHDOG);

            ngx_http_offload_link_drop(&peer->subscriber);
        }
    }

    if (peer->command.up && peer->subscriber.subscribed) {
        argv[0] = "PUBLISH";
        argvlen[0] = 7;
        argv[1] = ngx_http_offload_worker.channel;
        argvlen[1] = ngx_http_offload_worker.channel_len;
        argv[2] = OFFLOAD_REPLY_PING;
        argvlen[2] = sizeof(OFFLOAD_REPLY_PING) - 1;

        privdata = (void *) (uintptr_t) peer->subscriber.generation;

        if (ngx_http_offload_link_send(&peer->command,
                                       ngx_http_offload_ping_done,
                                       privdata, 3, argv, argvlen)
            == NGX_OK
            && peer->ping_unheard == 0)
        {
            peer->ping_unheard = ngx_current_msec | 1;    /* never 0 */
        }
    }

    /* Without the subscription (refused: maxclients, an ACL without the
     * channel; or not back yet) results are not heard: they are looked
     * for in their keys every interval, not only at their deadlines. */

    if (peer->command.up && !peer->subscriber.subscribed) {
        ngx_http_offload_recover_jobs(peer, NULL);
    }

    ngx_http_offload_clock_ask(peer);

    ngx_add_timer(ev, NGX_HTTP_OFFLOAD_PING_INTERVAL);
}


static void
ngx_http_offload_ping_done(redisAsyncContext *ac, void *r, void *privdata)
{
    redisReply               *reply = r;
    ngx_http_offload_link_t  *link, *sub;

    link = ngx_http_offload_link_replied(ac, reply);
    sub = &link->peer->subscriber;

    /* A command connection lost with the ping unanswered leaves it
     * unheard: the subscriber is then made again too, which costs one
     * reconnect when it was fine, and finds it at once when both went
     * down one dead path. */

    if (reply == NULL || reply->type != REDIS_REPLY_INTEGER
        || reply->integer != 0
        || sub->generation != (ngx_uint_t) (uintptr_t) privdata
        || !sub->subscribed)
    {
        return;
    }

    ngx_log_error(NGX_LOG_WARN, sub->log, 0,
                  "offload: redis %V subscriber receives nothing, "
                  "reconnecting it", &link->peer->name);

    ngx_http_offload_link_drop(sub);
}

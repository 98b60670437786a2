
/*
 * ngx_http_offload_upload.c -- a big body's way into Redis.  Redis runs one
 * command at a time, so a body over OFFLOAD_BODY_OVER never travels in one
 * (docs/PROTOCOL.md, "The module's steps"):
 *
 *   EXISTS <stream>                  command link: a queue nobody serves
 *                                    gets nothing written, 404
 *   MULTI                            bulk link: the key never lives
 *   RPUSH <body key> <slice 0>       without its lifetime;
 *   PEXPIRE <body key> <ms>          OFFLOAD_SLICE bytes a slice,
 *   EXEC                             straight from the body's buffers,
 *   RPUSHX <body key> <slice n> ...  NGX_HTTP_OFFLOAD_SLICES on their way
 *   XADD ... payload "" body <len>   command link, once Redis holds it all
 *
 * Where Redis refuses MULTI or EXEC for good (renamed away, an ACL: the
 * bodies whose EXECs are refused are answered 503), the first slice and its
 * lifetime go by one script instead, offload_stage_first_script (EVAL:
 * its text is short beside a slice), as a worker stages a big result.
 *
 * A list, one element a slice: APPENDs to a growing string make Redis
 * copy the whole string again every megabyte or so (quadratic, stalls of
 * hundreds of ms at 64 MB); an RPUSH costs the same at any length.  A
 * request that goes before its XADD (client gone, deadline, an error)
 * sends no more slices and UNLINKs the key behind those on their way
 * (Redis frees a big value off its main thread).
 */


#include "ngx_http_offload_module.h"


static void ngx_http_offload_exists_done(redisAsyncContext *ac, void *r,
    void *privdata);
static ngx_int_t ngx_http_offload_upload_slice(ngx_http_offload_ctx_t *ctx);
static ngx_int_t ngx_http_offload_upload_first_by_script(
    ngx_http_offload_ctx_t *ctx, ngx_http_offload_stream_t *st, size_t len);
static u_char *ngx_http_offload_body_ttl(ngx_http_offload_ctx_t *ctx,
    u_char *buf);
static void ngx_http_offload_slice_done(redisAsyncContext *ac, void *r,
    void *privdata);
static void ngx_http_offload_exec_done(redisAsyncContext *ac, void *r,
    void *privdata);
static void ngx_http_offload_queued_done(redisAsyncContext *ac, void *r,
    void *privdata);


ngx_int_t
ngx_http_offload_upload(ngx_http_offload_ctx_t *ctx)
{
    int          len;
    char         stream[OFFLOAD_KEY_MAX];
    u_char      *key;
    const char  *argv[2];
    size_t       argvlen[2];

    key = ngx_pnalloc(ctx->request->pool, OFFLOAD_KEY_MAX);
    if (key == NULL) {
        return NGX_ERROR;
    }

    len = offload_body_key((char *) key, OFFLOAD_KEY_MAX,
                           (char *) ctx->queue.data, ctx->queue.len,
                           (char *) ctx->id, OFFLOAD_JOB_ID_LEN);
    if (len < 0) {
        return NGX_ERROR;
    }

    ctx->body_key.data = key;
    ctx->body_key.len = len;

    len = offload_stream_key(stream, sizeof(stream), (char *) ctx->queue.data,
                             ctx->queue.len);
    if (len < 0) {
        return NGX_ERROR;
    }

    /* a stream only a worker makes: XADD NOMKSTREAM's check, made before
     * megabytes go into Redis for a queue nobody serves */

    argv[0] = "EXISTS";
    argvlen[0] = 6;
    argv[1] = stream;
    argvlen[1] = len;

    if (ngx_http_offload_link_send(&ctx->peer->command,
                                   ngx_http_offload_exists_done,
                                   (void *) (uintptr_t) ctx->node.key,
                                   2, argv, argvlen)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    ctx->body_at.cl = ctx->request->request_body->bufs;
    ctx->body_at.pos = 0;
    ctx->uploading = 1;

    return NGX_OK;
}


static void
ngx_http_offload_exists_done(redisAsyncContext *ac, void *r, void *privdata)
{
    redisReply              *reply = r;
    ngx_uint_t               i;
    ngx_http_offload_ctx_t  *ctx;

    ctx = ngx_http_offload_needed_ctx(ac, reply, privdata);
    if (ctx == NULL) {
        return;
    }

    /* a cluster's slot moving (ASK): the slices, on the bulk link, could
     * not follow it; try again soon */

    if (ctx->peer->parent && reply->type == REDIS_REPLY_ERROR
        && reply->len > 4 && ngx_strncmp(reply->str, "ASK ", 4) == 0)
    {
        ctx->retry_after = 1;
        ngx_http_offload_answer_error(ctx, NGX_HTTP_SERVICE_UNAVAILABLE,
                                      "redis_unavailable",
                                      "the redis cluster is moving the "
                                      "queue: try again");
        return;
    }

    /* a cluster's slot moved: nothing written yet, all on its master */

    if (ngx_http_offload_cluster_follow(ctx, reply, 0) == NGX_OK) {
        ctx->uploading = 0;

        if (ngx_http_offload_upload(ctx) != NGX_OK) {
            ngx_http_offload_answer_error(ctx, NGX_HTTP_SERVICE_UNAVAILABLE,
                                          "redis_unavailable",
                                          "redis is not reachable");
        }

        return;
    }

    if (reply->type != REDIS_REPLY_INTEGER) {
        ngx_log_error(NGX_LOG_ERR, ctx->request->connection->log, 0,
                      "offload: EXISTS of queue \"%V\" failed: %s",
                      &ctx->queue,
                      reply->type == REDIS_REPLY_ERROR ? reply->str
                                                       : "not a number");
        ngx_http_offload_answer_error(ctx, NGX_HTTP_SERVICE_UNAVAILABLE,
                                      "redis_unavailable",
                                      "redis refused the job");
        return;
    }

    if (reply->integer == 0) {
        ngx_http_offload_admission_no_stream(ctx);
        return;
    }

    for (i = 0; i < NGX_HTTP_OFFLOAD_SLICES; i++) {
        if (ngx_http_offload_upload_slice(ctx) != NGX_OK) {
            ngx_http_offload_answer_error(ctx,
                                          NGX_HTTP_INTERNAL_SERVER_ERROR,
                                          "internal", "out of memory");
            return;
        }
    }
}


/*
 * The next slice, if any is left: the first an RPUSH inside a MULTI with
 * the PEXPIRE that gives the key its lifetime (or both by a script, where
 * Redis refuses MULTI or EXEC); the others an
 * RPUSHX, which does not make the key again if it went meanwhile (as a
 * partial body with no lifetime, left for good if this worker dies before
 * its UNLINK).
 */

static ngx_int_t
ngx_http_offload_upload_slice(ngx_http_offload_ctx_t *ctx)
{
    u_char                        ttl[NGX_INT64_LEN];
    size_t                        len;
    const char                   *argv[3];
    size_t                        argvlen[3];
    ngx_http_offload_small_t     *small;
    ngx_http_offload_stream_t    *st;

    if (ctx->sliced == ctx->body.len) {
        return NGX_OK;
    }

    len = ngx_min(ctx->body.len - ctx->sliced, OFFLOAD_SLICE);
    st = ngx_http_offload_stream(ctx->request->pool, &ctx->stream,
                                 ctx->sliced / OFFLOAD_SLICE);
    if (st == NULL) {
        return NGX_ERROR;
    }

    if (ctx->sliced == 0 && ctx->peer->no_transactions) {
        if (ngx_http_offload_upload_first_by_script(ctx, st, len)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        ctx->first_by_script = 1;
        ctx->sliced += len;

        return NGX_OK;
    }

    argv[0] = ctx->sliced ? "RPUSHX" : "RPUSH";
    argvlen[0] = ctx->sliced ? 6 : 5;
    argv[1] = (char *) ctx->body_key.data;
    argvlen[1] = ctx->body_key.len;
    argvlen[2] = len;                   /* from the cursor */

    /* inside the MULTI, the first RPUSH answers QUEUED, the EXEC counts */

    if (ngx_http_offload_link_stream(&ctx->peer->bulk, st, ctx->request->pool,
                                     ctx->sliced ? ngx_http_offload_slice_done
                                                 : ngx_http_offload_queued_done,
                                     (void *) (uintptr_t) ctx->node.key,
                                     3, argv, argvlen, 2, &ctx->body_at)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (ctx->sliced == 0) {
        small = ngx_palloc(ctx->request->pool,
                           3 * sizeof(ngx_http_offload_small_t));
        if (small == NULL) {
            return NGX_ERROR;
        }

        argv[0] = "MULTI";
        argvlen[0] = 5;

        if (ngx_http_offload_link_small(ctx->request->pool, &small[0], NULL,
                                        NULL, 1, argv, argvlen)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        argv[0] = "PEXPIRE";
        argvlen[0] = 7;
        argv[2] = (char *) ttl;
        argvlen[2] = ngx_http_offload_body_ttl(ctx, ttl) - ttl;

        if (ngx_http_offload_link_small(ctx->request->pool, &small[1], NULL,
                                        NULL, 3, argv, argvlen)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        argv[0] = "EXEC";
        argvlen[0] = 4;

        if (ngx_http_offload_link_small(ctx->request->pool, &small[2],
                                        ngx_http_offload_exec_done,
                                        (void *) (uintptr_t) ctx->node.key,
                                        1, argv, argvlen)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        st->small = small;
        st->nbefore = 1;
        st->nsmall = 3;
    }

    ctx->sliced += len;

    return NGX_OK;
}


/* the first slice by offload_stage_first_script: UNLINK (of nothing: the
 * key is the job's own), RPUSH, PEXPIRE */

static ngx_int_t
ngx_http_offload_upload_first_by_script(ngx_http_offload_ctx_t *ctx,
    ngx_http_offload_stream_t *st, size_t len)
{
    u_char       ttl[NGX_INT64_LEN];
    size_t       argvlen[6];
    const char  *argv[6];

    argv[0] = "EVAL";
    argv[1] = offload_stage_first_script;
    argv[2] = "1";
    argv[3] = (char *) ctx->body_key.data;
    argv[5] = (char *) ttl;

    argvlen[0] = 4;
    argvlen[1] = ngx_strlen(offload_stage_first_script);
    argvlen[2] = 1;
    argvlen[3] = ctx->body_key.len;
    argvlen[4] = len;                   /* from the cursor */
    argvlen[5] = ngx_http_offload_body_ttl(ctx, ttl) - ttl;

    return ngx_http_offload_link_stream(&ctx->peer->bulk, st,
                                        ctx->request->pool,
                                        ngx_http_offload_slice_done,
                                        (void *) (uintptr_t) ctx->node.key,
                                        6, argv, argvlen, 4, &ctx->body_at);
}


/* the body key's lifetime (ms): the deadline, and a grace for a worker
 * that picked the job up just before it */

static u_char *
ngx_http_offload_body_ttl(ngx_http_offload_ctx_t *ctx, u_char *buf)
{
    int64_t  ms;

    ms = ctx->submitted_ms + ctx->timeout + OFFLOAD_BODY_GRACE_MS
         - ngx_http_offload_clock_now(ctx->peer);

    return ngx_sprintf(buf, "%L", ngx_max(ms, 1));
}


/*
 * The first RPUSH's reply, QUEUED or an error the EXEC reports too: only a
 * connection lost in the middle of it matters here.
 */

static void
ngx_http_offload_queued_done(redisAsyncContext *ac, void *r, void *privdata)
{
    (void) ngx_http_offload_needed_ctx(ac, r, privdata);
}


/* The first slice's EXEC: a slice's reply, and an EXEC's
 * (ngx_http_offload_link_exec_done). */

static void
ngx_http_offload_exec_done(redisAsyncContext *ac, void *r, void *privdata)
{
    ngx_http_offload_link_t  *link = ac->data;

    ngx_http_offload_slice_done(ac, r, privdata);
    ngx_http_offload_link_exec_done(link, r);
}


/* A slice is in: the next one goes, or, after the last, the XADD. */

static void
ngx_http_offload_slice_done(redisAsyncContext *ac, void *r, void *privdata)
{
    redisReply              *reply = r;
    size_t                   len, n, first;
    ngx_http_offload_ctx_t  *ctx;

    ctx = ngx_http_offload_needed_ctx(ac, reply, privdata);
    if (ctx == NULL) {
        return;
    }

    if (reply->type == REDIS_REPLY_ERROR) {
        ngx_log_error(NGX_LOG_ERR, ctx->request->connection->log, 0,
                      "offload: writing the body of a job on queue \"%V\" "
                      "failed: %s", &ctx->queue, reply->str);
        ngx_http_offload_answer_error(ctx, NGX_HTTP_SERVICE_UNAVAILABLE,
                                      "redis_unavailable",
                                      "redis refused the job");
        return;
    }

    /* an RPUSHX answers the list's new length, the EXEC the first RPUSH's
     * and the PEXPIRE's 1, the script an UNLINK's before them: any other
     * means the key went (an RPUSHX answers 0 then) */

    len = ngx_min(ctx->body.len - ctx->body_stored, OFFLOAD_SLICE);
    n = ctx->body_stored / OFFLOAD_SLICE + 1;
    first = ctx->first_by_script ? 3 : 2;

    if (reply->type == REDIS_REPLY_ARRAY && ctx->body_stored == 0
        && reply->elements == first
        && reply->element[first - 1]->type == REDIS_REPLY_INTEGER
        && reply->element[first - 1]->integer == 1)
    {
        reply = reply->element[first - 2];
    }

    if (reply->type != REDIS_REPLY_INTEGER
        || reply->integer != (long long) n)
    {
        ngx_log_error(NGX_LOG_ERR, ctx->request->connection->log, 0,
                      "offload: the body key of a job on queue \"%V\" "
                      "changed while it was written", &ctx->queue);
        ngx_http_offload_answer_error(ctx, NGX_HTTP_SERVICE_UNAVAILABLE,
                                      "redis_unavailable",
                                      "the job's body was lost in redis");
        return;
    }

    ctx->body_stored += len;

    if (ctx->body_stored < ctx->body.len) {
        if (ngx_http_offload_upload_slice(ctx) != NGX_OK) {
            ngx_http_offload_answer_error(ctx,
                                          NGX_HTTP_INTERNAL_SERVER_ERROR,
                                          "internal", "out of memory");
        }

        return;
    }

    if (ngx_http_offload_xadd(ctx) != NGX_OK) {
        ngx_http_offload_answer_error(ctx, NGX_HTTP_SERVICE_UNAVAILABLE,
                                      "redis_unavailable",
                                      "redis is not reachable");
        return;
    }

    /* the job needs its key now: its request going does not delete it */
    ctx->uploading = 0;
}


/*
 * The request goes before its XADD, its slices were taken back (one half
 * written is finished blank): the key is unlinked after those on their
 * way, in the bulk link's order, so that no RPUSH makes it again.
 */

void
ngx_http_offload_upload_stop(ngx_http_offload_ctx_t *ctx)
{
    ctx->uploading = 0;

    if (ctx->sliced) {
        ngx_http_offload_body_delete(ctx);
    }
}


/* UNLINK of the body key */

void
ngx_http_offload_body_delete(ngx_http_offload_ctx_t *ctx)
{
    if (ngx_http_offload_link_unlink(&ctx->peer->bulk, NULL, &ctx->body_key)
        != NGX_OK)
    {
        ngx_log_error(NGX_LOG_ERR, ctx->request->connection->log, 0,
                      "offload: cannot delete the body key \"%V\", it "
                      "goes at its expiry", &ctx->body_key);
    }
}
